//! `ratewire audit`: arguments and the entry point the `ratewire` binary calls.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use crate::error::AuditError;
use crate::formats::{self, Format, ReadOptions};
use crate::model::{Window, NS_PER_SEC};
use crate::reconcile::{audit, AuditOptions, Input, Role};
use crate::render::{self, Output};
use crate::scrub::scrub;
use crate::wire::Wire;

/// Exit code when discrepancies exceed `--tolerance`.
pub const EXIT_DISCREPANCIES: u8 = 1;
/// Exit code for usage and input errors.
pub const EXIT_USAGE: u8 = 2;

/// Audit benchmark reports and gateway logs against the wire journal.
///
/// Each input's format is detected (--format forces one for all). Exit status: 0 when
/// misreported + dropped + phantom <= --tolerance, 1 when more, 2 on usage or input
/// errors.
#[derive(clap::Args, Clone, Debug)]
pub struct AuditArgs {
    /// Wire journal: a journal file or the agent's data directory (repeatable).
    #[arg(long = "wire", value_name = "JOURNAL_OR_DIR", required = true)]
    pub wire: Vec<PathBuf>,
    /// A benchmark report: genai-bench experiment folder, Locust CSV (file or prefix)
    /// or JSON, vLLM result JSON, aiperf profile_export.jsonl, guidellm benchmarks.json,
    /// JSON Lines (with --field-time/--field-status). Repeatable.
    #[arg(long = "report", value_name = "PATH")]
    pub reports: Vec<PathBuf>,
    /// A gateway log or metrics snapshot: Envoy/Plano access log, nginx access log,
    /// LiteLLM proxy output, Prometheus text (LiteLLM metrics, Envoy stats). Repeatable.
    #[arg(long = "gateway", value_name = "PATH")]
    pub gateways: Vec<PathBuf>,
    /// Only these upstreams of the journal (repeatable; default: all).
    #[arg(long = "upstream", value_name = "ADDR:PORT", value_parser = parse_upstream)]
    pub upstreams: Vec<String>,
    /// Only wire responses in this window: RFC 3339 or Unix seconds, either side may be
    /// empty (`2026-11-23T11:50:00Z..`, `..1795434700`).
    #[arg(long, value_name = "START..END", value_parser = parse_window)]
    pub window: Option<Window>,
    /// Read every --report/--gateway as this format instead of detecting it.
    #[arg(long, value_enum, value_name = "FMT")]
    pub format: Option<Format>,
    /// Discrepancies (misreported + dropped + phantom) allowed before exit status 1.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub tolerance: u64,
    #[arg(long, value_enum, default_value_t = Output::Table)]
    pub output: Output,
    /// JSON Lines reports: dotted path of the time field (Unix s/ms/µs/ns or RFC 3339).
    #[arg(long, value_name = "FIELD")]
    pub field_time: Option<String>,
    /// JSON Lines reports: dotted path of the status field.
    #[arg(long, value_name = "FIELD")]
    pub field_status: Option<String>,
    /// Largest clock difference, in seconds, between a reported time and the wire's
    /// after the estimated offset (see the matching docs).
    #[arg(long, value_name = "SECONDS", default_value_t = 2.0)]
    pub max_skew: f64,
}

fn parse_upstream(text: &str) -> Result<String, String> {
    text.parse::<std::net::SocketAddr>()
        .map(|a| a.to_string())
        .map_err(|_| format!("expected ADDR:PORT like 127.0.0.1:8000, got {text:?}"))
}

/// `START..END`, either side optional.
pub fn parse_window(text: &str) -> Result<Window, String> {
    let (start, end) = text
        .split_once("..")
        .ok_or_else(|| format!("expected START..END, got {text:?}"))?;
    let side = |s: &str, default: u64| -> Result<u64, String> {
        if s.is_empty() {
            Ok(default)
        } else {
            ratewire_journal::cli::parse_time_arg(s)
        }
    };
    let window = Window {
        start: side(start, 0)?,
        end: side(end, u64::MAX)?,
    };
    if window.start >= window.end {
        return Err(format!("the window {text:?} is empty"));
    }
    Ok(window)
}

/// Run `ratewire audit`. Never exits the process: returns the exit status.
pub fn run(args: &AuditArgs) -> anyhow::Result<ExitCode> {
    match prepare_and_audit(args) {
        Ok((text, passed)) => {
            let mut stdout = std::io::stdout().lock();
            match stdout
                .write_all(text.as_bytes())
                .and_then(|()| stdout.flush())
            {
                // `ratewire audit ... | head`: the reader has what it wanted.
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
                other => other?,
            }
            Ok(ExitCode::from(if passed { 0 } else { EXIT_DISCREPANCIES }))
        }
        Err(e) => {
            eprintln!("ratewire audit: {}", scrub(&e.to_string()));
            Ok(ExitCode::from(EXIT_USAGE))
        }
    }
}

/// The rendered audit and whether it passed, or why it could not run.
pub fn prepare_and_audit(args: &AuditArgs) -> Result<(String, bool), AuditError> {
    if args.reports.is_empty() && args.gateways.is_empty() {
        return Err(AuditError::Usage(
            "nothing to audit: give at least one --report or --gateway".into(),
        ));
    }
    if !(args.max_skew.is_finite() && args.max_skew >= 0.0) {
        return Err(AuditError::Usage(
            "--max-skew must be a non-negative number of seconds".into(),
        ));
    }
    let wire = Wire::load(&args.wire, &args.upstreams, args.window)?;
    let options = ReadOptions {
        field_time: args.field_time.clone(),
        field_status: args.field_status.clone(),
    };
    let mut inputs = Vec::new();
    for (paths, role) in [
        (&args.reports, Role::Benchmark),
        (&args.gateways, Role::Gateway),
    ] {
        for path in paths {
            let mut report = formats::read(path, args.format, &options)?;
            if let Some(window) = args.window {
                restrict_to_window(&mut report, window);
            }
            inputs.push(Input { report, role });
        }
    }
    let audit_options = AuditOptions {
        max_skew_ns: (args.max_skew * NS_PER_SEC as f64) as u64,
        tolerance: args.tolerance,
    };
    let result = audit(&wire, inputs, &audit_options);
    let text = match args.output {
        Output::Table => render::table::render(&result),
        Output::Json => render::json::render(&result),
        Output::Markdown => render::markdown::render(&result),
    };
    Ok((text, result.passed))
}

/// `--window` also limits reported requests that have Unix times.
fn restrict_to_window(report: &mut crate::model::Report, window: Window) {
    for run in &mut report.runs {
        if run.unix_clock {
            run.requests
                .retain(|r| r.time.is_none_or(|t| window.contains(t.instant())));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows() {
        let w = parse_window("1795434600..1795434700").unwrap();
        assert_eq!(w.start, 1_795_434_600 * NS_PER_SEC);
        assert_eq!(w.end, 1_795_434_700 * NS_PER_SEC);
        assert_eq!(parse_window("..1").unwrap().start, 0);
        assert_eq!(
            parse_window("2026-11-23T11:50:00Z..").unwrap().end,
            u64::MAX
        );
        assert!(parse_window("5..5").is_err());
        assert!(parse_window("nonsense").is_err());
    }

    #[test]
    fn upstreams_are_socket_addresses() {
        assert_eq!(parse_upstream("127.0.0.1:9000").unwrap(), "127.0.0.1:9000");
        assert!(parse_upstream("localhost").is_err());
    }
}
