//! genai-bench experiment folders (sgl-project/genai-bench).
//!
//! - `experiment_metadata.json`: the command line (`--api-base` names the upstream),
//!   backend, concurrencies.
//! - one JSON per run: `aggregated_metrics.error_codes_frequency` and
//!   `num_completed_requests` are the run's counts (the per-request list has no
//!   wall-clock times, so genai-bench reconciles per run).
//! - `genai_bench.log` (in the folder, or wherever genai-bench ran): second-resolution
//!   local times. It gives each run's window ("Starting benchmark" ... "has finished
//!   after N seconds") and one "Error code: N" line per failed request, which locates
//!   failures in time.
//!
//! Traps (see the design notes): requests in flight when a run's time ends are never
//! recorded (boundary); users map exceptions to codes (Cohere/Bedrock: every
//! RequestException → 500; ConnectionError → 503 with nothing on the wire); an SSE
//! `error` event inside a 200 is reported with its `error.code`.

use std::path::{Path, PathBuf};

use serde_json::Value;

use super::{
    parse_json, read_to_string, upstream_of_url, Format, Probe, ReadOptions, ReportReader,
};
use crate::error::AuditError;
use crate::model::{
    Coverage, Location, Report, Reported, ReportedRequest, Run, Tally, TimeAnchor, Window,
    NS_PER_SEC,
};
use crate::scrub::scrub;
use crate::timefmt::parse_naive_datetime;

pub struct GenaiBenchReader;

const METADATA: &str = "experiment_metadata.json";
const LOG: &str = "genai_bench.log";

impl ReportReader for GenaiBenchReader {
    fn format(&self) -> Format {
        Format::GenaiBench
    }

    fn sniff(&self, probe: &Probe<'_>) -> u8 {
        if probe.is_dir {
            return if probe.path.join(METADATA).is_file() {
                100
            } else {
                0
            };
        }
        if probe.head.contains("\"aggregated_metrics\"") || probe.file_name() == METADATA {
            90
        } else if probe.file_name() == LOG || probe.head.contains("genai_bench.") {
            60
        } else {
            0
        }
    }

    fn read(&self, path: &Path, _options: &ReadOptions) -> Result<Report, AuditError> {
        let (dir, run_files) = if path.is_dir() {
            (path.to_owned(), run_files_in(path)?)
        } else if path.file_name().is_some_and(|n| n == LOG) {
            (parent(path), Vec::new())
        } else if path.file_name().is_some_and(|n| n == METADATA) {
            let dir = parent(path);
            let files = run_files_in(&dir)?;
            (dir, files)
        } else {
            (parent(path), vec![path.to_owned()])
        };
        let mut report = Report::new(path, Format::GenaiBench);

        let metadata = read_metadata(&dir, &mut report)?;
        let upstream = metadata.api_base.as_deref().and_then(upstream_of_url);
        if let (Some(base), None) = (&metadata.api_base, &upstream) {
            report.notes.push(format!(
                "--api-base {} is not an IP address: pass --upstream to name the upstream",
                scrub(base)
            ));
        }

        for file in &run_files {
            match read_run(file, &mut report) {
                Ok(mut run) => {
                    run.upstream.clone_from(&upstream);
                    report.runs.push(run);
                }
                Err(e) => return Err(e),
            }
        }

        let log = dir.join(LOG);
        let log = if path.file_name().is_some_and(|n| n == LOG) {
            path.to_owned()
        } else {
            log
        };
        if log.is_file() {
            let log_runs = read_log(&log, &mut report)?;
            attach_log_runs(&mut report, log_runs, upstream.as_ref());
        } else if !report.runs.is_empty() {
            report.notes.push(format!(
                "no {LOG} next to the runs: run windows unknown, failures not located in time"
            ));
        }
        if report.runs.is_empty() {
            return Err(AuditError::invalid(
                path,
                None,
                "expected genai-bench run JSONs (aggregated_metrics) or a genai_bench.log with runs",
            ));
        }
        Ok(report)
    }
}

fn parent(path: &Path) -> PathBuf {
    path.parent()
        .map(Path::to_owned)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// Run JSONs of an experiment folder, in name order (genai-bench names them by scenario
/// and iteration). `debug_for_run_*` files are written when aggregation failed; they
/// hold the same counts and are read too.
fn run_files_in(dir: &Path) -> Result<Vec<PathBuf>, AuditError> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| AuditError::io(dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension().is_some_and(|x| x == "json")
                && p.file_name().is_some_and(|n| n != METADATA)
        })
        .collect();
    files.sort();
    Ok(files)
}

#[derive(Default)]
struct Metadata {
    api_base: Option<String>,
}

fn read_metadata(dir: &Path, report: &mut Report) -> Result<Metadata, AuditError> {
    let path = dir.join(METADATA);
    if !path.is_file() {
        return Ok(Metadata::default());
    }
    let value = parse_json(&path, &read_to_string(&path)?)?;
    let cmd = value.get("cmd").and_then(Value::as_str).unwrap_or("");
    let mut words = cmd.split_whitespace();
    let mut api_base = None;
    while let Some(word) = words.next() {
        if word == "--api-base" {
            api_base = words.next().map(str::to_owned);
        } else if let Some(v) = word.strip_prefix("--api-base=") {
            api_base = Some(v.to_owned());
        }
    }
    if let Some(backend) = value.get("api_backend").and_then(Value::as_str) {
        report.notes.push(format!("genai-bench backend: {backend}"));
        if matches!(
            backend,
            "cohere" | "aws-bedrock" | "oci-cohere" | "oci-genai"
        ) {
            report.notes.push(format!(
                "the {backend} user maps client exceptions to 500: upstream 429s may be reported as 500"
            ));
        }
    }
    Ok(Metadata { api_base })
}

fn read_run(path: &Path, report: &mut Report) -> Result<Run, AuditError> {
    let value = parse_json(path, &read_to_string(path)?)?;
    let Some(agg) = value.get("aggregated_metrics") else {
        return Err(AuditError::invalid(
            path,
            None,
            "expected a genai-bench run JSON with \"aggregated_metrics\"",
        ));
    };
    let at = Location::new(path, None);
    let mut tally = Tally::default();
    let completed = agg.get("num_completed_requests").and_then(Value::as_u64);
    match completed {
        Some(n) => tally.add(Reported::Success, n),
        None => report
            .problems
            .skip(at.clone(), "aggregated_metrics.num_completed_requests"),
    }
    match agg.get("error_codes_frequency").and_then(Value::as_object) {
        Some(codes) => {
            for (code, count) in codes {
                let count = count.as_u64().unwrap_or(0);
                match code.parse::<i64>() {
                    Ok(c) if (100..=599).contains(&c) => {
                        tally.add(Reported::Status(c as u16), count)
                    }
                    // An SSE error event without a numeric code is reported as -1.
                    _ => tally.add(Reported::Failure, count),
                }
            }
        }
        None => report
            .problems
            .skip(at.clone(), "aggregated_metrics.error_codes_frequency"),
    }
    tally.sources.push(at);

    let scenario = agg.get("scenario").and_then(Value::as_str).unwrap_or("?");
    let iteration_type = agg
        .get("iteration_type")
        .and_then(Value::as_str)
        .unwrap_or("num_concurrency");
    let iteration = agg.get(iteration_type).and_then(Value::as_u64);
    let mut run = Run::new(format!(
        "{scenario} {iteration_type}={}",
        iteration
            .map(|i| i.to_string())
            .unwrap_or_else(|| "?".into())
    ));
    run.concurrency = iteration.and_then(|i| u32::try_from(i).ok());
    // Error messages per request: a message that names another code than the one
    // recorded is evidence of a mapping (e.g. "429 Client Error" recorded as 500).
    if let Some(items) = value
        .get("individual_request_metrics")
        .and_then(Value::as_array)
    {
        let mut renamed: std::collections::BTreeMap<(u16, u16), u64> = Default::default();
        for item in items {
            let code = item.get("error_code").and_then(super::json_status);
            let named = item
                .get("error_message")
                .and_then(Value::as_str)
                .and_then(crate::model::status_from_text);
            if let (Some(code), Some(named)) = (code, named) {
                if code != named {
                    *renamed.entry((named, code)).or_default() += 1;
                }
            }
        }
        for ((named, code), n) in renamed {
            report.notes.push(format!(
                "{}: {n} request(s) recorded as {code} whose error_message names {named}",
                path.file_name().unwrap_or_default().to_string_lossy()
            ));
        }
    }
    run.tally = Some(tally);
    run.unix_clock = false; // times come from the log, in local time
    Ok(run)
}

/// What genai_bench.log says about one run.
struct LogRun {
    concurrency: Option<u32>,
    scenario: Option<String>,
    start: u64,
    end: Option<u64>,
    errors: Vec<ReportedRequest>,
}

fn read_log(path: &Path, report: &mut Report) -> Result<Vec<LogRun>, AuditError> {
    let mut runs: Vec<LogRun> = Vec::new();
    super::for_each_line(path, |line_no, line| {
        // `LEVEL    YYYY-MM-DD HH:MM:SS.%f - module:function - message`; other lines are
        // continuations (tracebacks, rich panels) and not errors.
        let Some((level, rest)) = line.split_once(' ') else {
            return;
        };
        if !matches!(level, "DEBUG" | "INFO" | "WARNING" | "ERROR" | "CRITICAL") {
            return;
        }
        let rest = rest.trim_start();
        let at = Location::new(path, Some(line_no));
        let (Some(stamp), Some(message)) = (
            rest.get(..19),
            rest.split_once(" - ")
                .and_then(|(_, m)| m.split_once(" - "))
                .map(|(_, m)| m),
        ) else {
            report.problems.skip(
                at,
                "`LEVEL YYYY-MM-DD HH:MM:SS.%f - module:function - message`",
            );
            return;
        };
        let Some(second) = parse_naive_datetime(stamp) else {
            report
                .problems
                .skip(at, "a `YYYY-MM-DD HH:MM:SS` timestamp after the level");
            return;
        };
        if let Some(rest) = message.strip_prefix("Starting benchmark with concurrency=") {
            let concurrency = rest
                .split(|c: char| !c.is_ascii_digit())
                .next()
                .and_then(|n| n.parse().ok());
            runs.push(LogRun {
                concurrency,
                scenario: None,
                start: second,
                end: None,
                errors: Vec::new(),
            });
        } else if message.contains("has finished after") && message.contains("Run for scenario") {
            if let Some(run) = runs.last_mut().filter(|r| r.end.is_none()) {
                run.end = Some(second + NS_PER_SEC);
                run.scenario = message
                    .split_once("Run for scenario ")
                    .and_then(|(_, r)| r.split_once(", "))
                    .map(|(s, _)| s.to_owned());
            }
        } else if let Some(rest) = message.split_once("Error code: ").map(|(_, r)| r) {
            let (code, text) = rest
                .split_once(", message: ")
                .unwrap_or((rest.trim_end_matches('.'), ""));
            let outcome = match code.trim().parse::<i64>() {
                Ok(c) if (100..=599).contains(&c) => Reported::Status(c as u16),
                _ => Reported::Failure,
            };
            let mut request = ReportedRequest::new(at, outcome);
            request.time = Some(TimeAnchor::Second(second));
            let text = text.trim_end_matches('.');
            request.message = (!text.is_empty()).then(|| scrub(text).into_owned());
            match runs.last_mut() {
                Some(run) if run.end.is_none() => run.errors.push(request),
                _ => report.problems.skip(
                    request.at,
                    "an error line inside a run (after `Starting benchmark`)",
                ),
            }
        }
    })?;
    Ok(runs)
}

/// Give each run JSON its window and located errors from the log, in order; a log
/// without run JSONs becomes runs of its own (errors only, no totals).
fn attach_log_runs(report: &mut Report, log_runs: Vec<LogRun>, upstream: Option<&String>) {
    let finished: Vec<LogRun> = log_runs.into_iter().filter(|r| r.end.is_some()).collect();
    if report.runs.is_empty() {
        for (i, lr) in finished.into_iter().enumerate() {
            let mut run = Run::new(format!(
                "{} num_concurrency={} (log only, #{})",
                lr.scenario.as_deref().unwrap_or("?"),
                lr.concurrency
                    .map(|c| c.to_string())
                    .unwrap_or_else(|| "?".into()),
                i + 1
            ));
            fill_from_log(&mut run, lr);
            run.upstream = upstream.cloned();
            report.runs.push(run);
        }
        return;
    }
    // The log may hold earlier experiments too (genai-bench appends): pair each run JSON
    // with the latest finished log run of the same scenario and iteration. Run files
    // are named, not numbered, so their order is not the order the runs happened in.
    let mut log_runs: Vec<Option<LogRun>> = finished.into_iter().map(Some).collect();
    let mut unpaired = 0;
    for run in report.runs.iter_mut() {
        let scenario = run.name.split(' ').next().unwrap_or("").to_owned();
        let found = log_runs.iter().rposition(|lr| {
            lr.as_ref().is_some_and(|lr| {
                lr.concurrency == run.concurrency
                    && lr.scenario.as_deref().is_none_or(|s| s == scenario)
            })
        });
        match found.and_then(|i| log_runs[i].take()) {
            Some(lr) => fill_from_log(run, lr),
            None => unpaired += 1,
        }
    }
    if unpaired > 0 {
        report.notes.push(format!(
            "{LOG}: no finished run for {unpaired} run JSON(s): their windows are unknown"
        ));
    }
    // Reconcile runs in the order they happened: each claims its wire responses first.
    report.runs.sort_by_key(|r| r.window.map(|w| w.start));
}

fn fill_from_log(run: &mut Run, lr: LogRun) {
    run.window = Some(Window {
        start: lr.start,
        end: lr.end.unwrap_or(lr.start + NS_PER_SEC),
    });
    run.window_precision_ns = NS_PER_SEC;
    run.requests = lr.errors;
    run.coverage = Coverage::ErrorsOnly;
    run.unix_clock = false;
    if run.concurrency.is_none() {
        run.concurrency = lr.concurrency;
    }
}
