//! The bytes of the mock's responses, as the list of writes that carry them. Each
//! write is flushed on its own (TCP_NODELAY), so on an idle link it is one segment:
//! the tests depend on where segment boundaries fall.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// One write, optionally preceded by a pause.
pub struct Segment {
    pub pause: Duration,
    pub bytes: Vec<u8>,
}

impl Segment {
    fn now(bytes: impl Into<Vec<u8>>) -> Self {
        Segment {
            pause: Duration::ZERO,
            bytes: bytes.into(),
        }
    }
}

/// How 429 and 503 responses advertise when to retry.
#[derive(Debug, Clone, Default)]
pub struct RetryHints {
    /// `Retry-After: SECS`.
    pub after_secs: Option<u64>,
    /// Send `Retry-After` as an HTTP-date (now + `after_secs`) instead of seconds.
    pub as_date: bool,
    /// `retry-after-ms: MS` (the OpenAI/Azure extension).
    pub after_ms: Option<u64>,
}

impl RetryHints {
    fn headers(&self) -> String {
        let mut out = String::new();
        if let Some(secs) = self.after_secs {
            let value = if self.as_date {
                http_date(SystemTime::now() + Duration::from_secs(secs))
            } else {
                secs.to_string()
            };
            out += &format!("Retry-After: {value}\r\n");
        }
        if let Some(ms) = self.after_ms {
            out += &format!("retry-after-ms: {ms}\r\n");
        }
        out
    }
}

/// A complete response with `status`. 200s are a chat completion (SSE when the
/// request asked to stream); others are an OpenAI-style error object.
pub fn status(status: u16, stream: bool, close: bool, hints: &RetryHints) -> Vec<Segment> {
    let connection = if close { "Connection: close\r\n" } else { "" };
    let reason = reason(status);
    if status == 200 && stream {
        // Head first, then one chunk per event, as a streaming server flushes them.
        let mut segments = vec![Segment::now(format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n\
             Transfer-Encoding: chunked\r\n{connection}\r\n"
        ))];
        let events = ["Hel", "lo", "!"]
            .iter()
            .map(|piece| {
                format!(
                    r#"data: {{"id":"chatcmpl-mock","object":"chat.completion.chunk","model":"mock","choices":[{{"index":0,"delta":{{"content":"{piece}"}},"finish_reason":null}}]}}"#
                ) + "\n\n"
            })
            .chain(["data: [DONE]\n\n".to_string()]);
        segments.extend(events.map(|event| Segment::now(chunk(&event))));
        segments.push(Segment::now("0\r\n\r\n"));
        return segments;
    }
    let (body, extra) = if status == 200 {
        (CHAT_COMPLETION.to_string(), String::new())
    } else {
        let hints = if status == 429 || status == 503 {
            hints.headers()
        } else {
            String::new()
        };
        (error_body(status), hints)
    };
    vec![Segment::now(format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n{extra}{connection}\r\n{body}",
        body.len()
    ))]
}

/// A 200 whose body segment, sent `pause` after the head, starts like a 429 head.
pub fn split429(pause: Duration, close: bool) -> Vec<Segment> {
    let connection = if close { "Connection: close\r\n" } else { "" };
    let body = "HTTP/1.1 429 Too Many Requests\r\n(this is body text of a 200, not a response)\n";
    vec![
        Segment::now(format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n{connection}\r\n",
            body.len()
        )),
        Segment {
            pause,
            bytes: body.into(),
        },
    ]
}

const CHAT_COMPLETION: &str = r#"{"id":"chatcmpl-mock","object":"chat.completion","created":0,"model":"mock","choices":[{"index":0,"message":{"role":"assistant","content":"Hello!"},"finish_reason":"stop"}],"usage":{"prompt_tokens":1,"completion_tokens":2,"total_tokens":3}}"#;

fn error_body(status: u16) -> String {
    let (kind, code) = match status {
        429 => ("rate_limit_error", "rate_limit_exceeded"),
        503 => ("server_error", "overloaded"),
        401 | 403 => ("authentication_error", "invalid_api_key"),
        404 => ("invalid_request_error", "model_not_found"),
        _ => ("server_error", "mock_error"),
    };
    format!(
        r#"{{"error":{{"message":"mock upstream answered {status}","type":"{kind}","code":"{code}"}}}}"#
    )
}

fn chunk(data: &str) -> String {
    format!("{:x}\r\n{data}\r\n", data.len())
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Mock Status",
    }
}

/// RFC 9110 IMF-fixdate, e.g. `Sun, 06 Nov 1994 08:49:37 GMT`.
fn http_date(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let days = secs / 86_400;
    let (hh, mm, ss) = (secs % 86_400 / 3600, secs % 3600 / 60, secs % 60);
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = days + 719_468;
    let (era, doe) = (z / 146_097, z % 146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    const WEEKDAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    format!(
        "{}, {day:02} {} {year} {hh:02}:{mm:02}:{ss:02} GMT",
        WEEKDAYS[(days % 7) as usize],
        MONTHS[(month - 1) as usize]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_date_matches_rfc_example() {
        let t = UNIX_EPOCH + Duration::from_secs(784_111_777);
        assert_eq!(http_date(t), "Sun, 06 Nov 1994 08:49:37 GMT");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
        assert_eq!(http_date(leap), "Tue, 29 Feb 2000 00:00:00 GMT");
    }

    #[test]
    fn retry_hints_only_on_429_and_503() {
        let hints = RetryHints {
            after_secs: Some(3),
            as_date: false,
            after_ms: Some(1500),
        };
        let text = |s| String::from_utf8(status(s, false, false, &hints)[0].bytes.clone()).unwrap();
        assert!(text(429).contains("Retry-After: 3\r\nretry-after-ms: 1500\r\n"));
        assert!(text(503).contains("Retry-After: 3\r\n"));
        assert!(!text(500).contains("Retry-After"));
        assert!(text(200).starts_with("HTTP/1.1 200 OK\r\n"));
    }
}
