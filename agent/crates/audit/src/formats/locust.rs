//! Locust's `--csv PREFIX` files and `--json-file`.
//!
//! CSV: `PREFIX_stats.csv` (request and failure counts per name, and an `Aggregated`
//! row), `PREFIX_failures.csv` (occurrences per error text: a 429 reads
//! `HTTPError('429 Client Error: Too Many Requests for url: ...')`),
//! `PREFIX_stats_history.csv` (one row per second: the run's window). The CSV writer
//! runs once a second and does no final write, so the last second or two of a run are
//! missing from every CSV (boundary, not dropped).
//!
//! JSON: one entry per request name with `num_requests`, `num_failures`, `start_time`
//! and `last_request_timestamp`; complete, but failures carry no status code.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::{parse_json, read_to_string, Format, Probe, ReadOptions, ReportReader};
use crate::error::AuditError;
use crate::model::{status_from_text, Location, Report, Reported, Run, Tally, Window, NS_PER_SEC};
use crate::timefmt::unix_ns_from_number;

pub struct LocustCsvReader;
pub struct LocustJsonReader;

const STATS_HEADER: &str = "Type,Name,Request Count,Failure Count";
const FAILURES_HEADER: &str = "Method,Name,Error,Occurrences";
const HISTORY_HEADER: &str = "Timestamp,User Count,Type,Name";
/// The CSV writer's interval is 1 s and the run ends without a last write: the run may
/// go on this long after the last history row (plus requests still finishing).
const CSV_UNRECORDED_TAIL_NS: u64 = 2 * NS_PER_SEC;
const SUFFIXES: [&str; 4] = [
    "_stats.csv",
    "_failures.csv",
    "_stats_history.csv",
    "_exceptions.csv",
];

/// The `--csv` prefix of a Locust CSV file, or of a prefix path itself.
pub fn csv_prefix(path: &Path) -> Option<PathBuf> {
    let text = path.to_str()?;
    for suffix in SUFFIXES {
        if let Some(prefix) = text.strip_suffix(suffix) {
            return Some(PathBuf::from(prefix));
        }
    }
    let stats = PathBuf::from(format!("{text}_stats.csv"));
    stats.is_file().then(|| path.to_owned())
}

fn sibling(prefix: &Path, suffix: &str) -> PathBuf {
    PathBuf::from(format!("{}{suffix}", prefix.display()))
}

impl ReportReader for LocustCsvReader {
    fn format(&self) -> Format {
        Format::LocustCsv
    }

    fn sniff(&self, probe: &Probe<'_>) -> u8 {
        let name = probe.file_name();
        let header_known = [STATS_HEADER, FAILURES_HEADER, HISTORY_HEADER]
            .iter()
            .any(|h| probe.head.starts_with(h));
        let exceptions =
            name.ends_with(".csv") && probe.head.starts_with("Count,Message,Traceback");
        let prefix = !probe.path.exists() && csv_prefix(probe.path).is_some();
        if header_known || exceptions || prefix {
            95
        } else {
            0
        }
    }

    fn read(&self, path: &Path, _options: &ReadOptions) -> Result<Report, AuditError> {
        let prefix = csv_prefix(path).ok_or_else(|| {
            AuditError::invalid(
                path,
                None,
                "expected a Locust --csv file (PREFIX_stats.csv, ...) or prefix",
            )
        })?;
        let stats_path = sibling(&prefix, "_stats.csv");
        let mut report = Report::new(path, Format::LocustCsv);
        let (requests, failures, row_at) = read_stats(&stats_path, &mut report)?;

        let mut tally = Tally::default();
        tally.add(Reported::Success, requests.saturating_sub(failures));
        let failures_path = sibling(&prefix, "_failures.csv");
        let mut coded = 0;
        if failures_path.is_file() {
            for (outcome, count) in read_failures(&failures_path, &mut report)? {
                tally.add(outcome, count);
                coded += count;
            }
        }
        if coded < failures {
            // Failures whose text names no status (connection errors, exceptions).
            tally.add(Reported::Failure, failures - coded);
        } else if coded > failures {
            report.notes.push(format!(
                "{}: failures.csv counts {coded} failures, stats.csv {failures}",
                prefix.display()
            ));
        }
        tally.sources.push(row_at);
        if failures_path.is_file() {
            tally.sources.push(Location::new(&failures_path, None));
        }

        let mut run = Run::new("locust (csv)");
        run.tally = Some(tally);
        let history_path = sibling(&prefix, "_stats_history.csv");
        if history_path.is_file() {
            if let Some((window, users)) = read_history(&history_path, &mut report)? {
                run.window = Some(window);
                run.window_precision_ns = NS_PER_SEC;
                run.unrecorded_tail_ns = CSV_UNRECORDED_TAIL_NS;
                run.concurrency = users;
                report.notes.push(
                    "Locust's CSV writer does no final write: the run's last second(s) are missing from the CSVs"
                        .into(),
                );
            }
        } else {
            report
                .notes
                .push("no _stats_history.csv: run window unknown".into());
        }
        report.runs.push(run);
        Ok(report)
    }
}

/// Index of each column in a CSV header.
fn columns(header: &str) -> HashMap<String, usize> {
    split_csv(header)
        .into_iter()
        .enumerate()
        .map(|(i, c)| (c, i))
        .collect()
}

/// Split one CSV line (RFC 4180 quotes; Locust quotes error texts and tracebacks).
fn split_csv(line: &str) -> Vec<String> {
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                field.push('"');
                chars.next();
            }
            ('"', _) => quoted = !quoted,
            (',', false) => fields.push(std::mem::take(&mut field)),
            _ => field.push(c),
        }
    }
    fields.push(field);
    fields
}

/// Request and failure counts from `_stats.csv`: the `Aggregated` row.
fn read_stats(path: &Path, report: &mut Report) -> Result<(u64, u64, Location), AuditError> {
    let text = read_to_string(path)?;
    let mut lines = text.lines().enumerate();
    let header = match lines.next() {
        Some((_, h)) if h.starts_with(STATS_HEADER) => columns(h),
        _ => {
            return Err(AuditError::invalid(
                path,
                Some(1),
                format!("expected the Locust stats header `{STATS_HEADER},...`"),
            ))
        }
    };
    let (name_col, req_col, fail_col) = (
        header["Name"],
        header["Request Count"],
        header["Failure Count"],
    );
    let mut per_name = (0u64, 0u64);
    for (i, line) in lines {
        let at = Location::new(path, Some(i as u64 + 1));
        let fields = split_csv(line);
        let counts = (
            fields.get(req_col).and_then(|v| v.parse::<u64>().ok()),
            fields.get(fail_col).and_then(|v| v.parse::<u64>().ok()),
        );
        let (Some(requests), Some(failures)) = counts else {
            report
                .problems
                .skip(at, "integer `Request Count` and `Failure Count` columns");
            continue;
        };
        if fields.get(name_col).is_some_and(|n| n == "Aggregated") {
            return Ok((requests, failures, at));
        }
        per_name.0 += requests;
        per_name.1 += failures;
    }
    Ok((per_name.0, per_name.1, Location::new(path, None)))
}

/// Failure counts from `_failures.csv`, by the status their error text names.
fn read_failures(path: &Path, report: &mut Report) -> Result<Vec<(Reported, u64)>, AuditError> {
    let text = read_to_string(path)?;
    let mut lines = text.lines().enumerate();
    let header = match lines.next() {
        Some((_, h)) if h.starts_with(FAILURES_HEADER) => columns(h),
        _ => {
            report.problems.skip(
                Location::new(path, Some(1)),
                format!("the Locust failures header `{FAILURES_HEADER},...`"),
            );
            return Ok(Vec::new());
        }
    };
    let (err_col, occ_col) = (header["Error"], header["Occurrences"]);
    let mut out = Vec::new();
    for (i, line) in lines {
        let fields = split_csv(line);
        let occurrences = fields.get(occ_col).and_then(|v| v.parse::<u64>().ok());
        let (Some(error), Some(count)) = (fields.get(err_col), occurrences) else {
            report.problems.skip(
                Location::new(path, Some(i as u64 + 1)),
                "`Error` text and integer `Occurrences`",
            );
            continue;
        };
        let outcome = status_from_text(error)
            .map(Reported::Status)
            .unwrap_or(Reported::Failure);
        out.push((outcome, count));
    }
    Ok(out)
}

/// The run window from `_stats_history.csv` (first to last row) and the highest user
/// count.
fn read_history(
    path: &Path,
    report: &mut Report,
) -> Result<Option<(Window, Option<u32>)>, AuditError> {
    let text = read_to_string(path)?;
    let mut lines = text.lines().enumerate();
    let header = match lines.next() {
        Some((_, h)) if h.starts_with(HISTORY_HEADER) => columns(h),
        _ => {
            report.problems.skip(
                Location::new(path, Some(1)),
                format!("the history header `{HISTORY_HEADER},...`"),
            );
            return Ok(None);
        }
    };
    let (ts_col, users_col) = (header["Timestamp"], header["User Count"]);
    let mut first = None;
    let mut last = None;
    let mut users = None;
    for (i, line) in lines {
        let fields = split_csv(line);
        let Some(ts) = fields
            .get(ts_col)
            .and_then(|v| v.parse::<f64>().ok())
            .and_then(unix_ns_from_number)
        else {
            report.problems.skip(
                Location::new(path, Some(i as u64 + 1)),
                "a Unix `Timestamp`",
            );
            continue;
        };
        first.get_or_insert(ts);
        last = Some(ts);
        if let Some(u) = fields.get(users_col).and_then(|v| v.parse::<u32>().ok()) {
            users = Some(users.map_or(u, |m: u32| m.max(u)));
        }
    }
    // A row is written at some instant of its (whole) second: the counts it carries end
    // there. The window ends where the last snapshot may have been taken earliest, so
    // responses after it are outside (boundary) however many there were.
    Ok(first.zip(last).map(|(start, end)| {
        (
            Window {
                start,
                end: end.max(start + 1),
            },
            users,
        )
    }))
}

impl ReportReader for LocustJsonReader {
    fn format(&self) -> Format {
        Format::LocustJson
    }

    fn sniff(&self, probe: &Probe<'_>) -> u8 {
        let h = probe.head.trim_start();
        if h.starts_with('[')
            && h.contains("\"num_failures\"")
            && h.contains("\"num_reqs_per_sec\"")
        {
            95
        } else {
            0
        }
    }

    fn read(&self, path: &Path, _options: &ReadOptions) -> Result<Report, AuditError> {
        let value = parse_json(path, &read_to_string(path)?)?;
        let Some(entries) = value.as_array() else {
            return Err(AuditError::invalid(
                path,
                Some(1),
                "expected a JSON array of Locust stats entries",
            ));
        };
        let mut report = Report::new(path, Format::LocustJson);
        let mut tally = Tally::default();
        let mut window: Option<Window> = None;
        for (i, entry) in entries.iter().enumerate() {
            let at = Location::new(path, None);
            let counts = (
                entry.get("num_requests").and_then(Value::as_u64),
                entry.get("num_failures").and_then(Value::as_u64),
            );
            let (Some(requests), Some(failures)) = counts else {
                report.problems.skip(
                    at,
                    format!("entry {i}: integer num_requests and num_failures"),
                );
                continue;
            };
            tally.add(Reported::Success, requests.saturating_sub(failures));
            tally.add(Reported::Failure, failures);
            let start = entry
                .get("start_time")
                .and_then(Value::as_f64)
                .and_then(unix_ns_from_number);
            let last = entry
                .get("last_request_timestamp")
                .and_then(Value::as_f64)
                .and_then(unix_ns_from_number);
            if let (Some(start), Some(last)) = (start, last) {
                let w = window.get_or_insert(Window { start, end: last });
                w.start = w.start.min(start);
                // The last request was logged at `last`; its response came just before.
                w.end = w.end.max(last + 1);
            }
        }
        tally.sources.push(Location::new(path, None));
        let mut run = Run::new("locust (json)");
        run.tally = Some(tally);
        run.window = window;
        report
            .notes
            .push("Locust's JSON counts failures without status codes".into());
        report.runs.push(run);
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_lines_with_quotes() {
        assert_eq!(
            split_csv(r#"POST,/v1,"HTTPError('429 Client Error: x, y')",4,"a ""q"""#),
            vec![
                "POST",
                "/v1",
                "HTTPError('429 Client Error: x, y')",
                "4",
                "a \"q\""
            ]
        );
    }

    #[test]
    fn prefixes() {
        assert_eq!(
            csv_prefix(Path::new("/x/run_stats.csv")),
            Some(PathBuf::from("/x/run"))
        );
        assert_eq!(
            csv_prefix(Path::new("/x/run_stats_history.csv")),
            Some(PathBuf::from("/x/run"))
        );
    }
}
