//! `ratewire audit`: arguments, and the exit status from the library's verdicts.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::builder::PossibleValue;
use ratewire_audit::formats::{Format, ReadOptions};
use ratewire_audit::model::{Window, NS_PER_SEC};
use ratewire_audit::scrub::scrub;
use ratewire_audit::{audit_inputs, render, AuditOptions, AuditRequest};

use super::journal::parse_time_arg;

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
    pub format: Option<FormatArg>,
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
    #[arg(long, value_name = "SECONDS", default_value_t = 2.0, value_parser = parse_skew)]
    pub max_skew: f64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    Table,
    Json,
    Markdown,
}

/// `--format`: the library's formats, named and described as the library names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FormatArg(pub Format);

impl clap::ValueEnum for FormatArg {
    fn value_variants<'a>() -> &'a [Self] {
        const ALL: [FormatArg; Format::ALL.len()] = {
            let mut all = [FormatArg(Format::GenaiBench); Format::ALL.len()];
            let mut i = 0;
            while i < all.len() {
                all[i] = FormatArg(Format::ALL[i]);
                i += 1;
            }
            all
        };
        &ALL
    }

    fn to_possible_value(&self) -> Option<PossibleValue> {
        Some(PossibleValue::new(self.0.name()).help(self.0.describe()))
    }
}

fn parse_upstream(text: &str) -> Result<String, String> {
    text.parse::<std::net::SocketAddr>()
        .map(|a| a.to_string())
        .map_err(|_| format!("expected ADDR:PORT like 127.0.0.1:8000, got {text:?}"))
}

fn parse_skew(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.0 => Ok(v),
        _ => Err(format!("'{text}' is not a non-negative number of seconds")),
    }
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
            parse_time_arg(s)
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

impl AuditArgs {
    fn request(&self) -> AuditRequest {
        AuditRequest {
            wire: self.wire.clone(),
            reports: self.reports.clone(),
            gateways: self.gateways.clone(),
            upstreams: self.upstreams.clone(),
            window: self.window,
            format: self.format.map(|f| f.0),
            read: ReadOptions {
                field_time: self.field_time.clone(),
                field_status: self.field_status.clone(),
            },
            options: AuditOptions {
                max_skew_ns: (self.max_skew * NS_PER_SEC as f64) as u64,
                tolerance: self.tolerance,
            },
        }
    }
}

/// Run `ratewire audit`. Never exits the process: returns the exit status.
pub fn run(args: &AuditArgs) -> anyhow::Result<ExitCode> {
    let audit = match audit_inputs(&args.request()) {
        Ok(audit) => audit,
        Err(e) => {
            // Inputs carry API keys (command lines, error bodies): nothing echoed unscrubbed.
            eprintln!("ratewire audit: {}", scrub(&error_chain(&e)));
            return Ok(ExitCode::from(EXIT_USAGE));
        }
    };
    let text = match args.output {
        Output::Table => render::table::render(&audit),
        Output::Json => render::json::render(&audit),
        Output::Markdown => render::markdown::render(&audit),
    };
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        // `ratewire audit ... | head`: the reader has what it wanted.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
        other => other?,
    }
    Ok(ExitCode::from(if audit.passed {
        0
    } else {
        EXIT_DISCREPANCIES
    }))
}

/// `outer: inner: innermost`, as anyhow's `{:#}` prints it.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
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

    #[test]
    fn every_format_has_a_value() {
        use clap::ValueEnum as _;
        let names: Vec<String> = FormatArg::value_variants()
            .iter()
            .map(|f| f.to_possible_value().unwrap().get_name().to_owned())
            .collect();
        assert_eq!(names.len(), Format::ALL.len());
        assert!(names.iter().all(|n| Format::from_name(n).is_some()));
    }
}
