//! `vllm bench serve --save-result [--save-detailed]` result JSON.
//!
//! Counts: `completed`, `failed`. With `--save-detailed`, per-request lists aligned by
//! index: `errors` (reason text, "" for success: "Too Many Requests", not a number),
//! `start_times` (often `time.perf_counter()`: a clock of its own, so reconciliation
//! estimates the offset) and `latencies` / `e2els` (seconds). An SSE error event inside
//! a 200 is counted as completed by vLLM.

use std::path::Path;

use serde_json::Value;

use super::{parse_json, read_to_string, Format, Probe, ReadOptions, ReportReader};
use crate::error::AuditError;
use crate::model::{
    status_from_text, Location, Report, Reported, ReportedRequest, Run, Tally, TimeAnchor,
};
use crate::scrub::scrub;

pub struct VllmReader;

impl ReportReader for VllmReader {
    fn format(&self) -> Format {
        Format::Vllm
    }

    fn sniff(&self, probe: &Probe<'_>) -> u8 {
        let h = probe.head;
        if h.trim_start().starts_with('{')
            && h.contains("\"completed\"")
            && (h.contains("\"request_throughput\"") || h.contains("\"failed\""))
        {
            85
        } else {
            0
        }
    }

    fn read(&self, path: &Path, _options: &ReadOptions) -> Result<Report, AuditError> {
        let value = parse_json(path, &read_to_string(path)?)?;
        let mut report = Report::new(path, Format::Vllm);
        let at = Location::new(path, None);
        let completed = value.get("completed").and_then(Value::as_u64);
        let failed = value.get("failed").and_then(Value::as_u64);
        let Some(completed) = completed else {
            return Err(AuditError::invalid(
                path,
                None,
                "expected a vLLM bench result with \"completed\"",
            ));
        };
        let mut run = Run::new("vllm bench serve");
        run.unix_clock = false;
        run.concurrency = value
            .get("max_concurrency")
            .and_then(Value::as_u64)
            .and_then(|c| u32::try_from(c).ok());

        let list = |key: &str| value.get(key).and_then(Value::as_array);
        let errors = list("errors");
        let starts = list("start_times");
        let latencies = list("latencies").or_else(|| list("e2els"));
        let aligned = match (errors, starts) {
            (Some(e), Some(s)) => {
                e.len() == s.len() && e.len() as u64 == completed + failed.unwrap_or(0)
            }
            _ => false,
        };
        if let (true, Some(errors), Some(starts)) = (aligned, errors, starts) {
            for (i, (error, start)) in errors.iter().zip(starts).enumerate() {
                let text = error.as_str().unwrap_or("");
                let outcome = if text.is_empty() {
                    Reported::Success
                } else {
                    status_from_text(text)
                        .map(Reported::Status)
                        .unwrap_or(Reported::Failure)
                };
                let mut request = ReportedRequest::new(Location::new(path, None), outcome);
                request.message = (!text.is_empty()).then(|| scrub(text).into_owned());
                let start_s = start.as_f64();
                let latency_s = latencies.and_then(|l| l.get(i)).and_then(Value::as_f64);
                request.time = match (start_s, latency_s) {
                    (Some(s), Some(l)) if s >= 0.0 && l >= 0.0 => Some(TimeAnchor::Span {
                        start: (s * 1e9) as u64,
                        end: ((s + l) * 1e9) as u64,
                    }),
                    (Some(s), _) if s >= 0.0 => Some(TimeAnchor::Start((s * 1e9) as u64)),
                    _ => {
                        report
                            .problems
                            .skip(at.clone(), format!("start_times[{i}]: a number of seconds"));
                        None
                    }
                };
                run.requests.push(request);
            }
        } else {
            let mut tally = Tally::default();
            tally.add(Reported::Success, completed);
            tally.add(Reported::Failure, failed.unwrap_or(0));
            tally.sources.push(at);
            run.tally = Some(tally);
            if errors.is_some() {
                report.notes.push(
                    "errors/start_times are not aligned per request: reconciled per run".into(),
                );
            }
        }
        report
            .notes
            .push("vLLM counts a 200 whose stream carries an error event as completed".into());
        report.runs.push(run);
        Ok(report)
    }
}
