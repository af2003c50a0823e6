//! nginx access logs: `combined`, optionally followed by `$upstream_addr` and
//! `$upstream_status` (positional, or as `upstream_addr=`/`upstream_status=` pairs).
//!
//! ```text
//! $remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent "$http_referer" "$http_user_agent"
//! ```
//!
//! `$time_local` is written when the request completes and has one-second resolution.
//! `$upstream_status` lists every upstream attempt (`429, 200`: retried to the next
//! upstream via `proxy_next_upstream`); without it, retries are invisible. `499` means
//! the client closed the connection: nginx sent no response.

use std::path::Path;

use super::{Format, Probe, ReadOptions, ReportReader};
use crate::error::AuditError;
use crate::model::{Location, Report, Reported, ReportedRequest, Run, TimeAnchor};
use crate::timefmt::parse_nginx_time;

pub struct NginxReader;

/// The fields the audit uses from one line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NginxLine<'a> {
    pub remote_addr: &'a str,
    pub time_local: &'a str,
    pub request: &'a str,
    pub status: u16,
    pub upstream_addrs: Vec<String>,
    pub upstream_statuses: Vec<u16>,
}

/// Split `rest` into tokens: `"quoted strings"` (without quotes) or bare words; bare
/// lists (`429, 200`, `429 : 200`) stay one token.
fn tokens(mut rest: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut joining = false; // the previous bare token continues (ended with `,` or was `:`)
    loop {
        rest = rest.trim_start();
        if rest.is_empty() {
            return out;
        }
        let (tok, quoted, next) = if let Some(body) = rest.strip_prefix('"') {
            let end = body.find('"').unwrap_or(body.len());
            (&body[..end], true, body.get(end + 1..).unwrap_or(""))
        } else {
            let end = rest.find(' ').unwrap_or(rest.len());
            (&rest[..end], false, &rest[end..])
        };
        rest = next;
        if !quoted && (joining || tok == ":") {
            if let Some(last) = out.last_mut() {
                last.push(' ');
                last.push_str(tok);
                joining = tok.ends_with(',') || tok == ":";
                continue;
            }
        }
        joining = !quoted && tok.ends_with(',');
        out.push(tok.to_owned());
    }
}

fn list_items(value: &str) -> impl Iterator<Item = &str> {
    value
        .split([',', ':'])
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

fn as_status_list(value: &str) -> Option<Vec<u16>> {
    let items: Vec<&str> = list_items(value).collect();
    if items.is_empty()
        || !items
            .iter()
            .all(|s| *s == "-" || (s.len() == 3 && s.bytes().all(|b| b.is_ascii_digit())))
    {
        return None;
    }
    Some(items.iter().filter_map(|s| s.parse().ok()).collect())
}

fn is_addr_list(value: &str) -> bool {
    value.split(',').map(str::trim).all(|a| {
        a.rsplit_once(':').is_some_and(|(h, p)| {
            !h.is_empty()
                && p.parse::<u16>().is_ok()
                && (h.parse::<std::net::Ipv4Addr>().is_ok() || h.starts_with('['))
        })
    })
}

/// Parse one line; the error says what was expected.
pub fn parse_line(line: &str) -> Result<NginxLine<'_>, &'static str> {
    let (remote_addr, rest) = line
        .split_once(' ')
        .ok_or("`$remote_addr - $remote_user [$time_local]`")?;
    let open = rest.find('[').ok_or("`[$time_local]`")?;
    let close = rest[open..].find(']').ok_or("`]` closing $time_local")? + open;
    let time_local = &rest[open + 1..close];
    let rest = rest[close + 1..].trim_start();
    let rest = rest
        .strip_prefix('"')
        .ok_or("`\"$request\"` after the time")?;
    let end = rest.find('"').ok_or("`\"` closing $request")?;
    let request = &rest[..end];
    let rest = rest[end + 1..].trim_start();
    let (status, rest) = rest.split_once(' ').unwrap_or((rest, ""));
    let status = status
        .parse::<u16>()
        .map_err(|_| "a numeric $status after $request")?;
    let toks = tokens(rest);
    // body_bytes_sent, "referer", "user agent", then the optional upstream fields.
    if toks.len() < 3 {
        return Err("$body_bytes_sent \"$http_referer\" \"$http_user_agent\" after $status");
    }
    let mut upstream_addrs = Vec::new();
    let mut upstream_statuses = Vec::new();
    for tok in &toks[3..] {
        let (key, value) = match tok.split_once('=') {
            Some((k, v)) if k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') => {
                (Some(k), v.trim_matches('"'))
            }
            _ => (None, tok.as_str()),
        };
        match key {
            Some("upstream_status" | "us" | "ups") => {
                upstream_statuses =
                    as_status_list(value).ok_or("a list of status codes in upstream_status")?
            }
            Some("upstream_addr" | "upstream" | "ua_addr") => {
                upstream_addrs = list_items_addr(value)
            }
            Some(_) => {}
            None if as_status_list(value).is_some() && upstream_statuses.is_empty() => {
                upstream_statuses = as_status_list(value).unwrap_or_default()
            }
            None if is_addr_list(value) => upstream_addrs = list_items_addr(value),
            None => {}
        }
    }
    Ok(NginxLine {
        remote_addr,
        time_local,
        request,
        status,
        upstream_addrs,
        upstream_statuses,
    })
}

fn list_items_addr(value: &str) -> Vec<String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty() && *s != "-")
        .map(str::to_owned)
        .collect()
}

impl ReportReader for NginxReader {
    fn format(&self) -> Format {
        Format::Nginx
    }

    fn sniff(&self, probe: &Probe<'_>) -> u8 {
        let lines: Vec<&str> = probe
            .head
            .lines()
            .filter(|l| !l.is_empty())
            .take(5)
            .collect();
        let complete = lines.len().saturating_sub(1).max(1);
        if !lines.is_empty()
            && lines
                .iter()
                .take(complete)
                .all(|l| parse_line(l).is_ok_and(|p| parse_nginx_time(p.time_local).is_some()))
        {
            90
        } else {
            0
        }
    }

    fn read(&self, path: &Path, _options: &ReadOptions) -> Result<Report, AuditError> {
        let mut report = Report::new(path, Format::Nginx);
        let mut run = Run::new("nginx access log");
        let mut with_upstream_status = 0u64;
        super::for_each_line(path, |line_no, line| {
            if line.trim().is_empty() {
                return;
            }
            let at = Location::new(path, Some(line_no));
            let parsed = match parse_line(line) {
                Ok(p) => p,
                Err(expected) => {
                    report.problems.skip(at, expected);
                    return;
                }
            };
            let Some(time) = parse_nginx_time(parsed.time_local) else {
                report
                    .problems
                    .skip(at, "$time_local like 10/Oct/2000:13:55:36 -0700");
                return;
            };
            // What the upstream leg carried last: the final $upstream_status if logged.
            let final_upstream = parsed.upstream_statuses.last().copied();
            let outcome = match (parsed.status, final_upstream) {
                (_, Some(code)) => Reported::Status(code),
                (499, None) => Reported::NoResponse,
                (code, None) => Reported::Status(code),
            };
            let mut request = ReportedRequest::new(at, outcome);
            request.time = Some(TimeAnchor::Second(time));
            request.upstream = parsed.upstream_addrs.last().cloned();
            if !parsed.upstream_statuses.is_empty() {
                with_upstream_status += 1;
                request.attempts = Some(parsed.upstream_statuses.len() as u32);
                request.attempt_statuses = parsed.upstream_statuses.clone();
                if Some(parsed.status) != final_upstream {
                    request.message = Some(format!(
                        "nginx answered {} after upstream {}",
                        parsed.status,
                        final_upstream.unwrap_or_default()
                    ));
                }
            }
            let mut parts = parsed.request.split(' ');
            request.method = parts.next().map(str::to_owned);
            request.path = parts.next().map(str::to_owned);
            run.requests.push(request);
        })?;
        if run.requests.is_empty() {
            return Err(AuditError::invalid(
                path,
                None,
                "no nginx `combined` line could be read",
            ));
        }
        if with_upstream_status == 0 {
            report.notes.push(
                "no $upstream_status: nginx's own retries (proxy_next_upstream) are invisible here"
                    .into(),
            );
        }
        report.runs.push(run);
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn combined() {
        let l = parse_line(r#"127.0.0.1 - - [23/Nov/2026:11:50:10 +0000] "POST /v1/chat/completions HTTP/1.1" 429 85 "-" "python-requests/2.34""#).unwrap();
        assert_eq!(l.status, 429);
        assert_eq!(l.request, "POST /v1/chat/completions HTTP/1.1");
        assert!(l.upstream_statuses.is_empty());
    }

    #[test]
    fn combined_with_upstream_fields() {
        let l = parse_line(r#"10.0.0.1 - - [23/Nov/2026:11:50:10 +0000] "POST /v1 HTTP/1.1" 200 900 "-" "ua x" "127.0.0.1:9001, 127.0.0.1:9002" "429, 200""#).unwrap();
        assert_eq!(l.upstream_addrs, vec!["127.0.0.1:9001", "127.0.0.1:9002"]);
        assert_eq!(l.upstream_statuses, vec![429, 200]);
        let l = parse_line(r#"10.0.0.1 - - [23/Nov/2026:11:50:10 +0000] "POST /v1 HTTP/1.1" 200 900 "-" "ua" upstream_addr=127.0.0.1:9002 upstream_status=200"#).unwrap();
        assert_eq!(l.upstream_statuses, vec![200]);
        let l = parse_line(r#"10.0.0.1 - - [23/Nov/2026:11:50:10 +0000] "POST /v1 HTTP/1.1" 200 900 "-" "ua" 127.0.0.1:9001, 127.0.0.1:9002 429, 200"#).unwrap();
        assert_eq!(l.upstream_addrs, vec!["127.0.0.1:9001", "127.0.0.1:9002"]);
        assert_eq!(l.upstream_statuses, vec![429, 200]);
    }

    #[test]
    fn errors_name_the_field() {
        assert_eq!(
            parse_line("nonsense").unwrap_err(),
            "`$remote_addr - $remote_user [$time_local]`"
        );
        assert_eq!(
            parse_line(
                r#"1.2.3.4 - - [23/Nov/2026:11:50:10 +0000] "GET / HTTP/1.1" abc 1 "-" "-""#
            )
            .unwrap_err(),
            "a numeric $status after $request"
        );
    }
}
