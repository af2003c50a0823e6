//! LiteLLM proxy output: the uvicorn access lines among LiteLLM's own messages.
//!
//! ```text
//! INFO:     127.0.0.1:54526 - "POST /v1/chat/completions HTTP/1.1" 429 Too Many Requests
//! ```
//!
//! No timestamps, but the client's `ip:port`: each line is matched to the wire's
//! responses on that client connection, in order. The banner `Uvicorn running on
//! http://HOST:PORT` names the proxy's listener, which separates the client leg
//! (requests to the proxy) from the upstream leg (the proxy's requests to providers)
//! in the wire journal. LiteLLM's router retries (`num_retries`) happen on the upstream
//! leg and never reach these lines; `LiteLLM Retried: N times` messages are counted.

use std::path::Path;

use super::{upstream_of_url, Format, Probe, ReadOptions, ReportReader};
use crate::error::AuditError;
use crate::model::{Location, Report, Reported, ReportedRequest, Run};

pub struct LitellmReader;

/// One uvicorn access line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AccessLine<'a> {
    pub client: &'a str,
    pub method: &'a str,
    pub path: &'a str,
    pub status: u16,
}

/// The access line in `line`, `None` if it is not one, `Err` with what was expected if
/// it looks like one but is not whole.
pub fn parse_access_line(line: &str) -> Option<Result<AccessLine<'_>, &'static str>> {
    let rest = line.strip_prefix("INFO:")?.trim_start();
    let (client, rest) = rest.split_once(" - \"")?;
    Some((|| {
        let (request, rest) = rest
            .split_once("\" ")
            .ok_or("`\"METHOD PATH HTTP/x\" STATUS`")?;
        let mut parts = request.split(' ');
        let method = parts.next().ok_or("a request method")?;
        let path = parts.next().ok_or("a request path")?;
        let status = rest
            .split(' ')
            .next()
            .and_then(|s| s.parse::<u16>().ok())
            .ok_or("a numeric status after the request")?;
        if !client.contains(':') {
            return Err("the client as `ip:port`");
        }
        Ok(AccessLine {
            client,
            method,
            path,
            status,
        })
    })())
}

impl ReportReader for LitellmReader {
    fn format(&self) -> Format {
        Format::Litellm
    }

    fn sniff(&self, probe: &Probe<'_>) -> u8 {
        let h = probe.head;
        let access = h
            .lines()
            .any(|l| matches!(parse_access_line(l), Some(Ok(_))));
        if h.contains("LiteLLM") && (access || h.contains("Uvicorn running on")) {
            95
        } else if access {
            70
        } else {
            0
        }
    }

    fn read(&self, path: &Path, _options: &ReadOptions) -> Result<Report, AuditError> {
        let mut report = Report::new(path, Format::Litellm);
        let mut run = Run::new("litellm proxy (client leg)");
        let mut retried_messages = 0u64;
        let mut retries = 0u64;
        super::for_each_line(path, |line_no, line| {
            let at = Location::new(path, Some(line_no));
            if let Some(i) = line.find("Uvicorn running on ") {
                let url = line[i + "Uvicorn running on ".len()..]
                    .split_whitespace()
                    .next()
                    .unwrap_or("");
                report.listener = upstream_of_url(url);
                return;
            }
            if let Some(i) = line.find("LiteLLM Retried: ") {
                let n = line[i + "LiteLLM Retried: ".len()..]
                    .split(' ')
                    .next()
                    .and_then(|n| n.parse::<u64>().ok());
                retried_messages += 1;
                retries += n.unwrap_or(0);
                return;
            }
            match parse_access_line(line) {
                None => {}
                Some(Err(expected)) => report.problems.skip(at, expected),
                Some(Ok(access)) => {
                    let mut request = ReportedRequest::new(at, Reported::Status(access.status));
                    request.client = Some(access.client.to_owned());
                    request.method = Some(access.method.to_owned());
                    request.path = Some(access.path.to_owned());
                    run.requests.push(request);
                }
            }
        })?;
        if run.requests.is_empty() && report.listener.is_none() {
            return Err(AuditError::invalid(
                path,
                None,
                "expected uvicorn access lines (`INFO:     ip:port - \"POST ...\" 200 OK`)",
            ));
        }
        if retried_messages > 0 {
            report.notes.push(format!(
                "LiteLLM logged {retried_messages} failed request(s) after {retries} router retries in total"
            ));
        }
        match &report.listener {
            Some(l) => report
                .notes
                .push(format!("proxy listener {l} (from the uvicorn banner)")),
            None => report
                .notes
                .push("no uvicorn banner: proxy listener taken from the client connections".into()),
        }
        report.runs.push(run);
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uvicorn_lines() {
        let l = r#"INFO:     127.0.0.1:54526 - "POST /v1/chat/completions HTTP/1.1" 429 Too Many Requests"#;
        assert_eq!(
            parse_access_line(l),
            Some(Ok(AccessLine {
                client: "127.0.0.1:54526",
                method: "POST",
                path: "/v1/chat/completions",
                status: 429
            }))
        );
        assert_eq!(
            parse_access_line("INFO:     Application startup complete."),
            None
        );
        assert_eq!(parse_access_line("random"), None);
        assert_eq!(
            parse_access_line(r#"INFO:     127.0.0.1:1 - "POST /x HTTP/1.1" abc"#),
            Some(Err("a numeric status after the request"))
        );
    }
}
