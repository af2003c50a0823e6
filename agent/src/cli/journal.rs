//! `ratewire journal`: query what was recorded.

use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

use ratewire_journal::query::{per_second, SecondCount, Selection, StatusFilter, UpstreamFilter};
use ratewire_journal::reader::read_path;
use ratewire_journal::record::{Kind, Record};
use ratewire_journal::time::{format_rfc3339_nanos, parse_rfc3339};

/// Query a journal file or data directory.
#[derive(clap::Args, Clone, Debug)]
#[command(group = clap::ArgGroup::new("journal").required(true))]
pub struct QueryArgs {
    /// A journal file (journal-*.jsonl) or data directory.
    #[arg(value_name = "PATH", group = "journal")]
    pub path: Option<PathBuf>,
    /// The daemon's journal data directory.
    #[arg(long, value_name = "DIR", group = "journal")]
    pub data_dir: Option<PathBuf>,
    /// Only records at or after T (RFC 3339, or Unix seconds).
    #[arg(long, value_name = "T", value_parser = parse_time_arg)]
    pub since: Option<u64>,
    /// Only records before T (RFC 3339, or Unix seconds).
    #[arg(long, value_name = "T", value_parser = parse_time_arg)]
    pub until: Option<u64>,
    /// Only this upstream; repeat for several.
    #[arg(long = "upstream", value_name = "ADDR:PORT")]
    pub upstreams: Vec<UpstreamFilter>,
    /// Only this status (429), class (4xx) or no_response; repeat for several.
    #[arg(long = "status", value_name = "CODE|Nxx|no_response")]
    pub statuses: Vec<StatusFilter>,
    /// Only this route label (/v1/chat/completions, ..., other); repeat for several.
    #[arg(long = "route", value_name = "ROUTE")]
    pub routes: Vec<String>,
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    /// Print counts per (second, upstream, status) instead of records.
    #[arg(long)]
    pub per_second: bool,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Table,
    Jsonl,
    Csv,
}

/// `--since`/`--until`: RFC 3339 or Unix seconds (fractions allowed), to Unix ns.
pub fn parse_time_arg(text: &str) -> Result<u64, String> {
    if let Some(ns) = parse_rfc3339(text) {
        return Ok(ns);
    }
    let secs: f64 = text
        .parse()
        .ok()
        .filter(|s: &f64| s.is_finite() && *s >= 0.0 && *s < 1.8e10)
        .ok_or_else(|| {
            format!(
                "'{text}' is not a time: expected RFC 3339 (2026-05-01T12:00:00Z) or Unix seconds"
            )
        })?;
    // Whole seconds exactly; the fraction to the nearest nanosecond.
    let whole = secs.trunc() as u64;
    Ok(whole * 1_000_000_000 + ((secs - secs.trunc()) * 1e9).round() as u64)
}

/// Run `ratewire journal`. Torn lines go to stderr and do not fail the query.
pub fn run(args: &QueryArgs) -> anyhow::Result<ExitCode> {
    let path = args
        .path
        .as_ref()
        .or(args.data_dir.as_ref())
        .context("give a journal PATH or --data-dir DIR")?;
    let read = read_path(path)?;
    for torn in &read.torn {
        eprintln!("{torn}");
    }
    let selection = Selection {
        since_ns: args.since,
        until_ns: args.until,
        upstreams: args.upstreams.clone(),
        statuses: args.statuses.clone(),
        routes: args.routes.clone(),
    };
    let mut records: Vec<&Record> = read
        .records
        .iter()
        .filter(|r| selection.matches(r))
        .collect();
    records.sort_by_key(|r| r.unix_ns); // stable: file order within a nanosecond
    let lost: u64 = records
        .iter()
        .filter(|r| r.kind == Kind::Gap)
        .map(|r| r.lost.unwrap_or(0))
        .sum();
    if lost > 0 {
        eprintln!(
            "note: {lost} events were lost (ring buffer full) in this range; \
             gap rows show where, the Prometheus counters include them"
        );
    }

    let stdout = io::stdout();
    let mut out = io::BufWriter::new(stdout.lock());
    let written = if args.per_second {
        print_per_second(&mut out, args.format, &per_second(records.iter().copied()))
    } else {
        print_records(&mut out, args.format, &records)
    };
    match written.and_then(|()| out.flush()) {
        Ok(()) => Ok(ExitCode::SUCCESS),
        // `ratewire journal ... | head` is not an error.
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(ExitCode::SUCCESS),
        Err(e) => Err(e).context("writing to stdout"),
    }
}

const RECORD_COLUMNS: [&str; 10] = [
    "time",
    "kind",
    "upstream",
    "status",
    "reason",
    "lost",
    "method",
    "route",
    "retry_after_ms",
    "client_retry",
];

fn record_cells(r: &Record) -> [String; 10] {
    let opt = |v: Option<String>| v.unwrap_or_else(|| "-".into());
    [
        r.time.clone(),
        match r.kind {
            Kind::Response => "response",
            Kind::NoResponse => "no_response",
            Kind::Gap => "gap",
        }
        .into(),
        opt(r.upstream.clone()),
        opt(r.status.map(|s| s.to_string())),
        opt(r.reason.clone()),
        opt(r.lost.map(|n| n.to_string())),
        opt(r.method.clone()),
        opt(r.route.clone()),
        opt(r.retry_after_ms.map(|n| n.to_string())),
        opt(r.client_retry.map(|n| n.to_string())),
    ]
}

fn print_records(out: &mut impl Write, format: Format, records: &[&Record]) -> io::Result<()> {
    match format {
        Format::Jsonl => ratewire_journal::writer::write_jsonl(out, records.iter().copied()),
        Format::Csv => {
            // Every schema field, so nothing the journal knows is dropped.
            writeln!(
                out,
                "unix_ns,{},request_unix_ns,client,tls,source",
                RECORD_COLUMNS.join(",")
            )?;
            for r in records {
                let mut cells = vec![r.unix_ns.to_string()];
                cells.extend(record_cells(r).map(|c| if c == "-" { String::new() } else { c }));
                cells.push(r.request_unix_ns.map(|n| n.to_string()).unwrap_or_default());
                cells.push(r.client.clone().unwrap_or_default());
                cells.push(r.tls.to_string());
                cells.push(r.source.clone());
                write_csv_row(out, &cells)?;
            }
            Ok(())
        }
        Format::Table => {
            let rows: Vec<[String; 10]> = records.iter().map(|r| record_cells(r)).collect();
            write_table(out, &RECORD_COLUMNS, &rows)?;
            let count = |k: Kind| records.iter().filter(|r| r.kind == k).count();
            writeln!(
                out,
                "{} records: {} responses, {} no_response, {} gap records",
                records.len(),
                count(Kind::Response),
                count(Kind::NoResponse),
                count(Kind::Gap)
            )
        }
    }
}

fn print_per_second(out: &mut impl Write, format: Format, rows: &[SecondCount]) -> io::Result<()> {
    let second_time = |s: u64| {
        // Whole second: drop the all-zero nanoseconds.
        let t = format_rfc3339_nanos(s.saturating_mul(1_000_000_000));
        format!("{}Z", &t[..19])
    };
    match format {
        Format::Jsonl => {
            for row in rows {
                let line = serde_json::json!({
                    "second": row.second,
                    "time": second_time(row.second),
                    "upstream": row.upstream,
                    "status": row.outcome.to_string(),
                    "count": row.count,
                });
                writeln!(out, "{line}")?;
            }
            Ok(())
        }
        Format::Csv => {
            writeln!(out, "second,time,upstream,status,count")?;
            for row in rows {
                write_csv_row(
                    out,
                    &[
                        row.second.to_string(),
                        second_time(row.second),
                        row.upstream.clone(),
                        row.outcome.to_string(),
                        row.count.to_string(),
                    ],
                )?;
            }
            Ok(())
        }
        Format::Table => {
            let cells: Vec<[String; 5]> = rows
                .iter()
                .map(|row| {
                    [
                        second_time(row.second),
                        row.second.to_string(),
                        row.upstream.clone(),
                        row.outcome.to_string(),
                        row.count.to_string(),
                    ]
                })
                .collect();
            write_table(
                out,
                &["time", "unix", "upstream", "status", "count"],
                &cells,
            )
        }
    }
}

/// Left-aligned columns, two spaces apart, widths from the widest cell.
fn write_table<const N: usize>(
    out: &mut impl Write,
    header: &[&str; N],
    rows: &[[String; N]],
) -> io::Result<()> {
    let mut widths = header.map(str::len);
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    let mut line = String::new();
    let mut write_row = |cells: &mut dyn Iterator<Item = &str>| {
        line.clear();
        for (i, (cell, w)) in cells.zip(widths).enumerate() {
            if i + 1 < N {
                line.push_str(&format!("{cell:<w$}  "));
            } else {
                line.push_str(cell);
            }
        }
        writeln!(out, "{}", line.trim_end())
    };
    write_row(&mut header.iter().copied())?;
    for row in rows {
        write_row(&mut row.iter().map(String::as_str))?;
    }
    Ok(())
}

fn write_csv_row(out: &mut impl Write, cells: &[String]) -> io::Result<()> {
    for (i, cell) in cells.iter().enumerate() {
        if i > 0 {
            out.write_all(b",")?;
        }
        if cell.contains([',', '"', '\n', '\r']) {
            write!(out, "\"{}\"", cell.replace('"', "\"\""))?;
        } else {
            out.write_all(cell.as_bytes())?;
        }
    }
    out.write_all(b"\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        args: QueryArgs,
    }

    #[test]
    fn parses_times() {
        assert_eq!(parse_time_arg("1714564800"), Ok(1_714_564_800_000_000_000));
        assert_eq!(
            parse_time_arg("1714564800.25"),
            Ok(1_714_564_800_250_000_000)
        );
        assert_eq!(
            parse_time_arg("2024-05-01T12:00:00Z"),
            Ok(1_714_564_800_000_000_000)
        );
        for bad in ["", "-1", "yesterday", "NaN", "1e30", "2024-05-01"] {
            assert!(parse_time_arg(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn parses_the_documented_command_line() {
        let cli = Cli::try_parse_from([
            "journal",
            "--data-dir",
            "/d",
            "--since",
            "1714564800",
            "--status",
            "4xx",
            "--status",
            "503",
            "--upstream",
            "[::1]:8000",
            "--route",
            "other",
            "--format",
            "csv",
            "--per-second",
        ])
        .unwrap();
        assert_eq!(cli.args.statuses.len(), 2);
        assert!(cli.args.per_second && cli.args.format == Format::Csv);
        assert!(
            Cli::try_parse_from(["journal"]).is_err(),
            "a journal is required"
        );
        assert!(Cli::try_parse_from(["journal", "f", "--data-dir", "d"]).is_err());
        let err = Cli::try_parse_from(["journal", "f", "--status", "42"])
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("'42' is not a status"), "{err}");
    }

    #[test]
    fn prints_aligned_tables_and_escaped_csv() {
        let mut out = Vec::new();
        write_table(
            &mut out,
            &["a", "bb"],
            &[["xyz".into(), "1".into()], ["q".into(), "22".into()]],
        )
        .unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "a    bb\nxyz  1\nq    22\n"
        );
        let mut out = Vec::new();
        write_csv_row(&mut out, &["a,b".into(), "say \"hi\"".into(), "c".into()]).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "\"a,b\",\"say \"\"hi\"\"\",c\n"
        );
    }
}
