//! Generic JSON Lines reports: one request per line, the user names the time and
//! status fields (`--field-time ts --field-status status`, dotted paths allowed).
//!
//! Time: a number (Unix s, ms, µs or ns, told by magnitude) or an RFC 3339 string; it
//! is taken as some instant within the request (matched against the wire's request to
//! response span). Status: a number or numeric string; `null`, `""`, `"ok"` and
//! `"success"` are a success; other text is read for a status ("Too Many Requests") or
//! counted as a failure without a code.

use std::path::Path;

use serde_json::Value;

use super::{json_path, json_status, Format, Probe, ReadOptions, ReportReader};
use crate::error::AuditError;
use crate::model::{
    status_from_text, Location, Report, Reported, ReportedRequest, Run, TimeAnchor,
};
use crate::scrub::scrub;
use crate::timefmt::unix_ns_from_json;

pub struct JsonlReader;

impl ReportReader for JsonlReader {
    fn format(&self) -> Format {
        Format::Jsonl
    }

    fn sniff(&self, probe: &Probe<'_>) -> u8 {
        let first = probe.head.lines().next().unwrap_or("").trim();
        if first.starts_with('{') && first.ends_with('}') {
            10 // any JSON Lines: the last resort, and only with --field-* options
        } else {
            0
        }
    }

    fn read(&self, path: &Path, options: &ReadOptions) -> Result<Report, AuditError> {
        let (Some(time_field), Some(status_field)) = (&options.field_time, &options.field_status)
        else {
            return Err(AuditError::MissingFields { path: path.into() });
        };
        let mut report = Report::new(path, Format::Jsonl);
        let mut run = Run::new("json lines");
        super::for_each_line(path, |line_no, line| {
            if line.trim().is_empty() {
                return;
            }
            let at = Location::new(path, Some(line_no));
            let Ok(value) = serde_json::from_str::<Value>(line) else {
                report.problems.skip(at, "a JSON object per line");
                return;
            };
            let Some(time) = json_path(&value, time_field).and_then(unix_ns_from_json) else {
                report.problems.skip(
                    at,
                    format!("`{time_field}`: a Unix time or RFC 3339 string"),
                );
                return;
            };
            let status = json_path(&value, status_field);
            let outcome = match status {
                None | Some(Value::Null) => Reported::Success,
                Some(v) => match json_status(v) {
                    Some(code) => Reported::Status(code),
                    None => match v.as_str().map(str::trim) {
                        Some("" | "ok" | "OK" | "success") => Reported::Success,
                        Some(text) => status_from_text(text)
                            .map(Reported::Status)
                            .unwrap_or(Reported::Failure),
                        None => {
                            report
                                .problems
                                .skip(at, format!("`{status_field}`: a status code or text"));
                            return;
                        }
                    },
                },
            };
            let mut request = ReportedRequest::new(at, outcome);
            request.time = Some(TimeAnchor::Point(time));
            if let Some(Value::String(text)) = status {
                if json_status(&Value::String(text.clone())).is_none() && !text.is_empty() {
                    request.message = Some(scrub(text).into_owned());
                }
            }
            run.requests.push(request);
        })?;
        if run.requests.is_empty() {
            return Err(AuditError::invalid(
                path,
                None,
                format!("no line had both `{time_field}` and `{status_field}`"),
            ));
        }
        report.runs.push(run);
        Ok(report)
    }
}
