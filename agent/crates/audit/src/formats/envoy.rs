//! Envoy access logs in the default format, and Plano's variant.
//!
//! ```text
//! [%START_TIME%] "%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%"
//! %RESPONSE_CODE% %RESPONSE_FLAGS% %BYTES_RECEIVED% %BYTES_SENT% %DURATION%
//! %RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% "%REQ(X-FORWARDED-FOR)%" "%REQ(USER-AGENT)%"
//! "%REQ(X-REQUEST-ID)%" "%REQ(:AUTHORITY)%" "%UPSTREAM_HOST%"
//! ```
//!
//! Plano appends `"%UPSTREAM_CLUSTER%"`, and its LLM log `attempts=N`
//! (`%UPSTREAM_REQUEST_ATTEMPT_COUNT%`). Envoy logs only the final code when it
//! retried; `attempts` says how many upstream responses the one line stands for.
//!
//! What a line says about the *upstream* leg (what the wire journal sees): the response
//! code, except when the response flags say Envoy answered by itself (`RL`, `UO`, `NR`,
//! `UH`, ...: no upstream request) or the upstream gave no response (`UF`, `UC`, `UT`:
//! Envoy's 503/504 stands for "no response" on the wire).
//!
//! Parsing is zero-copy over bytes ([`parse_line`]), and [`tally_statuses`] streams a
//! file of any size without a per-line allocation: the path the bench measures.

use std::fs::File;
use std::io::Read;
use std::path::Path;

use memchr::memchr;

use super::{Format, Probe, ReadOptions, ReportReader};
use crate::error::AuditError;
use crate::model::{
    Location, Problems, Report, Reported, ReportedRequest, Run, TimeAnchor, NS_PER_MS,
};
use crate::timefmt::parse_rfc3339;

pub struct EnvoyReader;

/// Response flags meaning Envoy answered without an upstream request.
const LOCAL_REPLY_FLAGS: &[&str] = &[
    "RL", "RLSE", "UO", "NR", "UH", "NC", "LH", "IH", "DPE", "UMSDR", "SI",
];
/// Response flags meaning the upstream gave no response (connect failure, reset, timeout).
const NO_UPSTREAM_RESPONSE_FLAGS: &[&str] = &["UF", "UC", "UT", "LR", "UR"];

/// One access log line, borrowed from the input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EnvoyLine<'a> {
    pub start_time: &'a [u8],
    pub method: &'a [u8],
    pub path: &'a [u8],
    /// `%RESPONSE_CODE%`; 0 when no response was sent downstream.
    pub status: u16,
    pub flags: &'a [u8],
    /// `%DURATION%` in ms, `None` for `-`.
    pub duration_ms: Option<u64>,
    pub upstream_host: &'a [u8],
    pub upstream_cluster: Option<&'a [u8]>,
    pub attempts: Option<u32>,
}

/// Parse one line; the error says what was expected where.
pub fn parse_line(line: &[u8]) -> Result<EnvoyLine<'_>, &'static str> {
    let rest = line
        .strip_prefix(b"[")
        .ok_or("`[START_TIME]` at the start of the line")?;
    let close = memchr(b']', rest).ok_or("`]` closing the start time")?;
    let start_time = &rest[..close];
    let rest = rest[close + 1..]
        .strip_prefix(b" \"")
        .ok_or("`\"METHOD PATH PROTOCOL\"` after the start time")?;
    let close = memchr(b'"', rest).ok_or("`\"` closing the request line")?;
    let request = &rest[..close];
    let mut parts = request.splitn(3, |&b| b == b' ');
    let method = parts.next().unwrap_or_default();
    let path = parts.next().unwrap_or_default();
    let mut rest = &rest[close + 1..];

    // %RESPONSE_CODE% %RESPONSE_FLAGS% %BYTES_RECEIVED% %BYTES_SENT% %DURATION% %UPSTREAM_SERVICE_TIME%
    let mut fields: [&[u8]; 6] = [&[]; 6];
    for field in &mut fields {
        rest = rest
            .strip_prefix(b" ")
            .ok_or("six space-separated fields after the request line")?;
        let end = memchr(b' ', rest).unwrap_or(rest.len());
        *field = &rest[..end];
        rest = &rest[end..];
    }
    let status = parse_u64(fields[0])
        .and_then(|s| u16::try_from(s).ok())
        .ok_or("a numeric %RESPONSE_CODE%")?;
    let duration_ms = if fields[4] == b"-" {
        None
    } else {
        Some(parse_u64(fields[4]).ok_or("a numeric %DURATION% or `-`")?)
    };

    // Quoted fields: X-FORWARDED-FOR, USER-AGENT, X-REQUEST-ID, AUTHORITY, UPSTREAM_HOST
    // [, UPSTREAM_CLUSTER]; bare `key=value` tokens (Plano's attempts=N) may follow.
    let mut quoted: [&[u8]; 6] = [&[]; 6];
    let mut n_quoted = 0;
    let mut attempts = None;
    loop {
        let skip = rest.iter().take_while(|&&b| b == b' ').count();
        rest = &rest[skip..];
        match rest.first() {
            None => break,
            Some(b'"') => {
                let close = memchr(b'"', &rest[1..]).ok_or("a closing `\"`")?;
                if n_quoted < quoted.len() {
                    quoted[n_quoted] = &rest[1..1 + close];
                }
                n_quoted += 1;
                rest = &rest[close + 2..];
            }
            Some(_) => {
                let end = memchr(b' ', rest).unwrap_or(rest.len());
                if let Some(v) = rest[..end].strip_prefix(b"attempts=") {
                    attempts = Some(
                        parse_u64(v)
                            .and_then(|a| u32::try_from(a).ok())
                            .ok_or("a number after attempts=")?,
                    );
                }
                rest = &rest[end..];
            }
        }
    }
    if n_quoted < 5 {
        return Err("five quoted fields: X-FORWARDED-FOR, USER-AGENT, X-REQUEST-ID, AUTHORITY, UPSTREAM_HOST");
    }
    Ok(EnvoyLine {
        start_time,
        method,
        path,
        status,
        flags: fields[1],
        duration_ms,
        upstream_host: quoted[4],
        upstream_cluster: (n_quoted >= 6).then_some(quoted[5]),
        attempts,
    })
}

fn parse_u64(b: &[u8]) -> Option<u64> {
    if b.is_empty() || b.len() > 19 {
        return None;
    }
    b.iter().try_fold(0u64, |n, &c| {
        c.is_ascii_digit().then(|| n * 10 + u64::from(c - b'0'))
    })
}

fn has_flag(flags: &[u8], set: &[&str]) -> Option<String> {
    flags
        .split(|&b| b == b',')
        .filter_map(|f| std::str::from_utf8(f).ok())
        .find(|f| set.contains(f))
        .map(str::to_owned)
}

impl ReportReader for EnvoyReader {
    fn format(&self) -> Format {
        Format::Envoy
    }

    fn sniff(&self, probe: &Probe<'_>) -> u8 {
        let lines: Vec<&str> = probe
            .head
            .lines()
            .filter(|l| !l.is_empty())
            .take(5)
            .collect();
        if !lines.is_empty()
            && lines
                .iter()
                .take(lines.len().saturating_sub(1).max(1))
                .all(|l| parse_line(l.as_bytes()).is_ok())
        {
            95
        } else {
            0
        }
    }

    fn read(&self, path: &Path, _options: &ReadOptions) -> Result<Report, AuditError> {
        let mut report = Report::new(path, Format::Envoy);
        let mut run = Run::new("envoy access log");
        let mut lines = 0u64;
        for_each_line_bytes(path, |line_no, line| {
            if line.is_empty() {
                return;
            }
            lines += 1;
            let at = Location::new(path, Some(line_no));
            let parsed = match parse_line(line) {
                Ok(p) => p,
                Err(expected) => {
                    report.problems.skip(at, expected);
                    return;
                }
            };
            let Some(start) = std::str::from_utf8(parsed.start_time)
                .ok()
                .and_then(parse_rfc3339)
            else {
                report
                    .problems
                    .skip(at, "an RFC 3339 %START_TIME% like 2024-05-01T12:00:00.000Z");
                return;
            };
            let local = has_flag(parsed.flags, LOCAL_REPLY_FLAGS);
            let no_upstream_response = has_flag(parsed.flags, NO_UPSTREAM_RESPONSE_FLAGS);
            let outcome = if parsed.status == 0 || no_upstream_response.is_some() {
                Reported::NoResponse
            } else {
                Reported::Status(parsed.status)
            };
            let mut request = ReportedRequest::new(at, outcome);
            request.time = Some(match parsed.duration_ms {
                // START_TIME has ms resolution and DURATION whole ms: widen by 1 ms.
                Some(d) => TimeAnchor::Span {
                    start,
                    end: start + (d + 1) * NS_PER_MS,
                },
                None => TimeAnchor::Start(start),
            });
            let host = String::from_utf8_lossy(parsed.upstream_host);
            request.upstream = (host != "-" && !host.is_empty()).then(|| host.into_owned());
            request.attempts = parsed.attempts;
            request.attempts_unknown = parsed.attempts.is_none();
            request.method = Some(String::from_utf8_lossy(parsed.method).into_owned());
            request.path = Some(String::from_utf8_lossy(parsed.path).into_owned());
            if let Some(flag) = &no_upstream_response {
                request.message = Some(format!(
                    "Envoy answered {} with flag {flag}: no upstream response",
                    parsed.status
                ));
            }
            request.local_reply = local;
            run.requests.push(request);
        })?;
        if run.requests.is_empty() {
            return Err(AuditError::invalid(
                path,
                report.problems.first.first().and_then(|p| p.at.line),
                format!(
                    "no Envoy access log line could be read ({} line(s)); expected the default format",
                    lines
                ),
            ));
        }
        if run.requests.iter().any(|r| r.attempts.is_some()) {
            report.notes.push(
                "Plano attempts= present: each line stands for that many upstream responses".into(),
            );
        } else {
            report.notes.push(
                "Envoy logs one line per downstream request with the final code; retries are invisible here".into(),
            );
        }
        report.runs.push(run);
        Ok(report)
    }
}

/// Each line of a file as bytes with its 1-based number, streamed in large blocks.
pub(crate) fn for_each_line_bytes(
    path: &Path,
    mut each: impl FnMut(u64, &[u8]),
) -> Result<(), AuditError> {
    let mut file = File::open(path).map_err(|e| AuditError::io(path, e))?;
    let mut buf = vec![0u8; 1 << 20];
    let mut filled = 0; // bytes of `buf` holding data
    let mut line_no = 0u64;
    loop {
        if filled == buf.len() {
            buf.resize(buf.len() * 2, 0); // a line longer than the buffer
        }
        let n = file
            .read(&mut buf[filled..])
            .map_err(|e| AuditError::io(path, e))?;
        let eof = n == 0;
        filled += n;
        let mut start = 0;
        while let Some(i) = memchr(b'\n', &buf[start..filled]) {
            line_no += 1;
            let mut line = &buf[start..start + i];
            if let [head @ .., b'\r'] = line {
                line = head;
            }
            each(line_no, line);
            start += i + 1;
        }
        if eof {
            if start < filled {
                line_no += 1;
                each(line_no, &buf[start..filled]);
            }
            return Ok(());
        }
        buf.copy_within(start..filled, 0);
        filled -= start;
    }
}

/// Response counts per upstream host and status code from an access log.
#[derive(Clone, Debug, Default)]
pub struct StatusTally {
    /// (upstream host, counts indexed by status code 0..=999).
    upstreams: Vec<(Vec<u8>, Box<[u64; 1000]>)>,
    pub lines: u64,
    pub problems: Problems,
}

impl StatusTally {
    /// (upstream, status, count) for every non-zero count, sorted.
    pub fn counts(&self) -> Vec<(String, u16, u64)> {
        let mut out: Vec<(String, u16, u64)> = self
            .upstreams
            .iter()
            .flat_map(|(host, counts)| {
                let host = String::from_utf8_lossy(host).into_owned();
                counts
                    .iter()
                    .enumerate()
                    .filter(|(_, &n)| n > 0)
                    .map(move |(code, &n)| (host.clone(), code as u16, n))
            })
            .collect();
        out.sort();
        out
    }

    /// Counts per status over all upstreams.
    pub fn by_status(&self) -> std::collections::BTreeMap<u16, u64> {
        let mut out = std::collections::BTreeMap::new();
        for (_, code, n) in self.counts() {
            *out.entry(code).or_default() += n;
        }
        out
    }
}

/// Count responses per upstream and status in an Envoy access log, streaming: no
/// allocation per line (only per new upstream host), malformed lines counted with the
/// first few located.
pub fn tally_statuses(path: &Path) -> Result<StatusTally, AuditError> {
    let mut tally = StatusTally::default();
    let mut last: usize = usize::MAX; // index of the previous line's upstream
    for_each_line_bytes(path, |line_no, line| {
        if line.is_empty() {
            return;
        }
        tally.lines += 1;
        match parse_line(line) {
            Ok(parsed) if parsed.status < 1000 => {
                let host = parsed.upstream_host;
                let idx = if tally
                    .upstreams
                    .get(last)
                    .is_some_and(|(h, _)| h.as_slice() == host)
                {
                    last
                } else if let Some(i) = tally
                    .upstreams
                    .iter()
                    .position(|(h, _)| h.as_slice() == host)
                {
                    i
                } else {
                    tally
                        .upstreams
                        .push((host.to_vec(), Box::new([0u64; 1000])));
                    tally.upstreams.len() - 1
                };
                last = idx;
                tally.upstreams[idx].1[usize::from(parsed.status)] += 1;
            }
            Ok(_) => tally.problems.skip(
                Location::new(path, Some(line_no)),
                "a status code below 1000",
            ),
            Err(expected) => tally
                .problems
                .skip(Location::new(path, Some(line_no)), expected),
        }
    })?;
    Ok(tally)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEFAULT: &str = r#"[2026-11-23T11:50:10.123Z] "POST /v1/chat/completions HTTP/1.1" 429 - 120 85 12 11 "-" "python-requests/2.34" "5f1c-aa" "api.local" "127.0.0.1:9001""#;
    const PLANO: &str = r#"[2026-11-23T11:50:10.123Z] "POST /v1/chat/completions HTTP/1.1" 200 - 120 900 340 338 "-" "OpenAI/Python 2.54" "77aa" "gw" "127.0.0.1:9002" "openai_cluster" attempts=3"#;

    #[test]
    fn parses_the_default_format() {
        let l = parse_line(DEFAULT.as_bytes()).unwrap();
        assert_eq!(l.status, 429);
        assert_eq!(l.method, b"POST");
        assert_eq!(l.path, b"/v1/chat/completions");
        assert_eq!(l.flags, b"-");
        assert_eq!(l.duration_ms, Some(12));
        assert_eq!(l.upstream_host, b"127.0.0.1:9001");
        assert_eq!(l.upstream_cluster, None);
        assert_eq!(l.attempts, None);
    }

    #[test]
    fn parses_plano_with_cluster_and_attempts() {
        let l = parse_line(PLANO.as_bytes()).unwrap();
        assert_eq!(l.status, 200);
        assert_eq!(l.upstream_host, b"127.0.0.1:9002");
        assert_eq!(l.upstream_cluster, Some(&b"openai_cluster"[..]));
        assert_eq!(l.attempts, Some(3));
    }

    #[test]
    fn says_what_it_expected() {
        assert_eq!(
            parse_line(b"garbage").unwrap_err(),
            "`[START_TIME]` at the start of the line"
        );
        assert_eq!(
            parse_line(br#"[2026-11-23T11:50:10.123Z] "GET / HTTP/1.1" abc - 1 2 3 4"#)
                .unwrap_err(),
            "a numeric %RESPONSE_CODE%"
        );
        assert!(parse_line(br#"[t] "GET / HTTP/1.1" 200 - 1 2 3 4 "-" "ua""#).is_err());
    }

    #[test]
    fn flags_tell_local_replies() {
        assert_eq!(has_flag(b"RL", LOCAL_REPLY_FLAGS).as_deref(), Some("RL"));
        assert_eq!(
            has_flag(b"URX,UF", NO_UPSTREAM_RESPONSE_FLAGS).as_deref(),
            Some("UF")
        );
        assert_eq!(has_flag(b"-", LOCAL_REPLY_FLAGS), None);
    }
}
