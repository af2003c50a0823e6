//! guidellm `benchmarks.json`: per benchmark, `metrics.request_totals`
//! `{successful, errored, incomplete, total}`, and per request (`requests.successful`,
//! `requests.errored`, ...) an `info.error` holding the repr of the client error
//! (text: the status is read from it, e.g. "429 Too Many Requests").
//! `incomplete` requests were cancelled at the run's end: they are left out of the
//! counts, so what the wire carried for them shows as boundary.

use std::path::Path;

use serde_json::Value;

use super::{json_path, parse_json, read_to_string, Format, Probe, ReadOptions, ReportReader};
use crate::error::AuditError;
use crate::model::{
    status_from_text, Coverage, Location, Report, Reported, ReportedRequest, Run, Tally,
    TimeAnchor, Window,
};
use crate::scrub::scrub;
use crate::timefmt::unix_ns_from_json;

pub struct GuidellmReader;

const START_KEYS: &[&str] = &[
    "info.timings.request_start",
    "timings.request_start",
    "scheduler_info.request_timings.request_start",
    "request_start_time",
    "start_time",
];
const END_KEYS: &[&str] = &[
    "info.timings.request_end",
    "timings.request_end",
    "scheduler_info.request_timings.request_end",
    "request_end_time",
    "end_time",
];

impl ReportReader for GuidellmReader {
    fn format(&self) -> Format {
        Format::Guidellm
    }

    fn sniff(&self, probe: &Probe<'_>) -> u8 {
        let h = probe.head;
        if h.contains("\"benchmarks\"")
            && (h.contains("guidellm") || h.contains("\"request_totals\""))
        {
            85
        } else if probe.file_name() == "benchmarks.json" {
            50
        } else {
            0
        }
    }

    fn read(&self, path: &Path, _options: &ReadOptions) -> Result<Report, AuditError> {
        let value = parse_json(path, &read_to_string(path)?)?;
        let Some(benchmarks) = value.get("benchmarks").and_then(Value::as_array) else {
            return Err(AuditError::invalid(
                path,
                None,
                "expected guidellm output with a \"benchmarks\" array",
            ));
        };
        let mut report = Report::new(path, Format::Guidellm);
        for (i, bench) in benchmarks.iter().enumerate() {
            let at = Location::new(path, None);
            let totals = json_path(bench, "metrics.request_totals");
            let count = |k: &str| totals.and_then(|t| t.get(k)).and_then(Value::as_u64);
            let (Some(successful), Some(errored)) = (count("successful"), count("errored")) else {
                report.problems.skip(
                    at,
                    format!("benchmarks[{i}].metrics.request_totals.successful/errored"),
                );
                continue;
            };
            let mut run = Run::new(format!("guidellm benchmark {i}"));
            let mut tally = Tally::default();
            tally.add(Reported::Success, successful);
            let errored_list = json_path(bench, "requests.errored").and_then(Value::as_array);
            let mut coded = 0;
            for request in errored_list.into_iter().flatten() {
                let text = json_path(request, "info.error")
                    .or_else(|| request.get("error"))
                    .and_then(Value::as_str)
                    .unwrap_or("");
                let outcome = status_from_text(text)
                    .map(Reported::Status)
                    .unwrap_or(Reported::Failure);
                if let Reported::Status(_) = outcome {
                    coded += 1;
                }
                tally.add(outcome, 1);
                let mut located = ReportedRequest::new(at.clone(), outcome);
                located.message = (!text.is_empty()).then(|| scrub(text).into_owned());
                let start = START_KEYS
                    .iter()
                    .find_map(|k| json_path(request, k))
                    .and_then(unix_ns_from_json);
                let end = END_KEYS
                    .iter()
                    .find_map(|k| json_path(request, k))
                    .and_then(unix_ns_from_json);
                located.time = match (start, end) {
                    (Some(s), Some(e)) if e >= s => Some(TimeAnchor::Span { start: s, end: e }),
                    (Some(s), _) => Some(TimeAnchor::Start(s)),
                    (None, Some(e)) => Some(TimeAnchor::End(e)),
                    _ => None,
                };
                if located.time.is_some() {
                    run.requests.push(located);
                }
            }
            let listed = errored_list.map_or(0, |l| l.len() as u64);
            if listed < errored {
                tally.add(Reported::Failure, errored - listed);
            }
            if coded < errored {
                report.notes.push(format!(
                    "benchmark {i}: {} errored request(s) without a status in their error text",
                    errored - coded
                ));
            }
            if let Some(incomplete) = count("incomplete").filter(|&n| n > 0) {
                report.notes.push(format!(
                    "benchmark {i}: {incomplete} incomplete request(s) (cancelled at the end) are not counted"
                ));
            }
            tally.sources.push(at);
            run.tally = Some(tally);
            run.coverage = Coverage::ErrorsOnly;
            let start = [
                "start_time",
                "scheduler_metrics.request_start_time",
                "run_stats.start_time",
            ]
            .iter()
            .find_map(|k| json_path(bench, k))
            .and_then(unix_ns_from_json);
            let end = [
                "end_time",
                "scheduler_metrics.request_end_time",
                "run_stats.end_time",
            ]
            .iter()
            .find_map(|k| json_path(bench, k))
            .and_then(unix_ns_from_json);
            if let (Some(start), Some(end)) = (start, end) {
                run.window = (end > start).then_some(Window { start, end });
            }
            report.runs.push(run);
        }
        if report.runs.is_empty() {
            return Err(AuditError::invalid(
                path,
                None,
                "expected at least one benchmark with request_totals",
            ));
        }
        Ok(report)
    }
}
