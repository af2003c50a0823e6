//! aiperf `profile_export.jsonl`: one JSON object per request with
//! `metadata.request_start_ns` / `request_end_ns` (Unix ns) and `error`
//! (`{code, type, message}` or null).

use std::path::Path;

use serde_json::Value;

use super::{json_path, json_status, Format, Probe, ReadOptions, ReportReader};
use crate::error::AuditError;
use crate::model::{
    status_from_text, Location, Report, Reported, ReportedRequest, Run, TimeAnchor,
};
use crate::scrub::scrub;
use crate::timefmt::unix_ns_from_json;

pub struct AiperfReader;

impl ReportReader for AiperfReader {
    fn format(&self) -> Format {
        Format::Aiperf
    }

    fn sniff(&self, probe: &Probe<'_>) -> u8 {
        let first = probe.head.lines().next().unwrap_or("");
        if first.starts_with('{') && first.contains("\"request_start_ns\"") {
            90
        } else {
            0
        }
    }

    fn read(&self, path: &Path, _options: &ReadOptions) -> Result<Report, AuditError> {
        let mut report = Report::new(path, Format::Aiperf);
        let mut run = Run::new("aiperf profile");
        super::for_each_line(path, |line_no, line| {
            if line.trim().is_empty() {
                return;
            }
            let at = Location::new(path, Some(line_no));
            let Ok(value) = serde_json::from_str::<Value>(line) else {
                report.problems.skip(at, "a JSON object per line");
                return;
            };
            let start = json_path(&value, "metadata.request_start_ns").and_then(unix_ns_from_json);
            let end = json_path(&value, "metadata.request_end_ns").and_then(unix_ns_from_json);
            let outcome = match value.get("error") {
                None | Some(Value::Null) => Reported::Success,
                Some(error) => {
                    let text = error.get("message").and_then(Value::as_str).unwrap_or("");
                    match error.get("code").and_then(json_status) {
                        Some(code) => Reported::Status(code),
                        None => match status_from_text(text) {
                            Some(code) => Reported::Status(code),
                            None if is_no_response(error) => Reported::NoResponse,
                            None => Reported::Failure,
                        },
                    }
                }
            };
            let mut request = ReportedRequest::new(at.clone(), outcome);
            request.message = value
                .get("error")
                .and_then(|e| e.get("message"))
                .and_then(Value::as_str)
                .map(|m| scrub(m).into_owned());
            request.time = match (start, end) {
                (Some(start), Some(end)) if end >= start => Some(TimeAnchor::Span { start, end }),
                (Some(start), _) => Some(TimeAnchor::Start(start)),
                _ => {
                    report
                        .problems
                        .skip(at, "metadata.request_start_ns (Unix ns)");
                    None
                }
            };
            run.requests.push(request);
        })?;
        if run.requests.is_empty() {
            return Err(AuditError::invalid(
                path,
                None,
                "expected aiperf records (one JSON object per line)",
            ));
        }
        report.runs.push(run);
        Ok(report)
    }
}

fn is_no_response(error: &Value) -> bool {
    let kind = error
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_ascii_lowercase();
    ["timeout", "connect", "reset", "disconnect"]
        .iter()
        .any(|k| kind.contains(k))
}
