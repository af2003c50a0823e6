//! Bounded, allocation-free HTTP/1.x head recognition.
//!
//! Everything here must also pass the eBPF verifier: no allocation, no recursion, no
//! `memcmp` (byte comparisons are spelled out), loops bounded by constants, and every
//! index checked against the slice length first.

/// Bytes needed to recognise a status line: `HTTP/1.1 200` followed by SP or CR.
pub const STATUS_LINE_LEN: usize = 13;

/// Status code if `head` starts with an HTTP/1.0 or HTTP/1.1 status line.
///
/// Accepts `HTTP/1.x DDD` followed by a space (reason phrase) or CR (no reason phrase,
/// which RFC 9112 allows). Anything else, including codes below 100, is not a status line:
/// the parser never guesses a code.
#[inline(always)]
pub fn parse_status_line(head: &[u8]) -> Option<u16> {
    let h = head.get(..STATUS_LINE_LEN)?;
    if h[0] != b'H' || h[1] != b'T' || h[2] != b'T' || h[3] != b'P' || h[4] != b'/' {
        return None;
    }
    if h[5] != b'1' || h[6] != b'.' || (h[7] != b'0' && h[7] != b'1') || h[8] != b' ' {
        return None;
    }
    let code = digit(h[9])? * 100 + digit(h[10])? * 10 + digit(h[11])?;
    if code < 100 || (h[12] != b' ' && h[12] != b'\r') {
        return None;
    }
    Some(code)
}

/// 1xx responses (`100 Continue`, `103 Early Hints`) are interim: the final response
/// to the same request is still to come.
#[inline(always)]
pub const fn is_interim(status: u16) -> bool {
    status >= 100 && status < 200
}

#[inline(always)]
fn digit(b: u8) -> Option<u16> {
    if b.is_ascii_digit() {
        Some((b - b'0') as u16)
    } else {
        None
    }
}

/// Request methods ratewire recognises at the start of a TCP payload.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    Get = 1,
    Post = 2,
    Put = 3,
    Delete = 4,
    Head = 5,
    Options = 6,
    Patch = 7,
}

impl Method {
    pub const fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Delete => "DELETE",
            Method::Head => "HEAD",
            Method::Options => "OPTIONS",
            Method::Patch => "PATCH",
        }
    }
}

/// The start of a request line: its method and where its target (path) begins.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RequestStart {
    pub method: Method,
    /// Offset of the request target in the head (just after `METHOD `).
    pub target_offset: usize,
}

/// Bytes needed to recognise a request start: the longest method, a space and `/`.
pub const REQUEST_START_LEN: usize = 9;

/// Recognise `METHOD SP /...` (origin form) or `METHOD SP http...` (absolute form) at the
/// start of `head`.
#[inline(always)]
pub fn parse_request_start(head: &[u8]) -> Option<RequestStart> {
    let (method, len) = match head.first()? {
        b'G' if starts_with(head, b"GET ") => (Method::Get, 3),
        b'P' if starts_with(head, b"POST ") => (Method::Post, 4),
        b'P' if starts_with(head, b"PUT ") => (Method::Put, 3),
        b'P' if starts_with(head, b"PATCH ") => (Method::Patch, 5),
        b'D' if starts_with(head, b"DELETE ") => (Method::Delete, 6),
        b'H' if starts_with(head, b"HEAD ") => (Method::Head, 4),
        b'O' if starts_with(head, b"OPTIONS ") => (Method::Options, 7),
        _ => return None,
    };
    let target_offset = len + 1;
    match head.get(target_offset)? {
        b'/' | b'h' | b'*' => Some(RequestStart {
            method,
            target_offset,
        }),
        _ => None,
    }
}

/// Copy the request target (up to the next space, CR or the end) into `out`, bounded by
/// `out`'s length; the query string is cut off (`?...`) so no key in a URL is kept.
/// Returns the number of bytes written.
#[inline(always)]
pub fn copy_path(head: &[u8], start: usize, out: &mut [u8]) -> usize {
    let mut n = 0;
    while n < out.len() {
        let Some(&b) = head.get(start + n) else { break };
        if b == b' ' || b == b'\r' || b == b'\n' || b == b'?' || b == b'#' {
            break;
        }
        out[n] = b;
        n += 1;
    }
    n
}

/// Byte-wise `head.starts_with(prefix)`, spelled out so no `memcmp` reaches the eBPF object.
#[inline(always)]
fn starts_with(head: &[u8], prefix: &[u8]) -> bool {
    if head.len() < prefix.len() {
        return false;
    }
    let mut i = 0;
    while i < prefix.len() {
        if head[i] != prefix[i] {
            return false;
        }
        i += 1;
    }
    true
}

/// ASCII case-insensitive `line.starts_with(name)` where `name` is lowercase.
#[inline(always)]
fn starts_with_ignore_case(line: &[u8], name: &[u8]) -> bool {
    if line.len() < name.len() {
        return false;
    }
    let mut i = 0;
    while i < name.len() {
        if line[i].to_ascii_lowercase() != name[i] {
            return false;
        }
        i += 1;
    }
    true
}

/// Marker for "header absent" in the `u32` fields of [`HeadFacts`].
pub const ABSENT: u32 = u32::MAX;

/// The few header values ratewire reads from a head; every other header is skipped
/// unread (no auth headers, no cookies, no bodies). Fields hold [`ABSENT`] when missing
/// or unparseable.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeadFacts {
    /// `Retry-After: <delta-seconds>`.
    pub retry_after_secs: u32,
    /// `Retry-After: <HTTP-date>` as Unix seconds (the reader subtracts the response time).
    pub retry_after_unix: u32,
    /// `retry-after-ms: <milliseconds>`.
    pub retry_after_ms: u32,
    /// `x-ratelimit-remaining-requests`.
    pub remaining_requests: u32,
    /// `x-ratelimit-remaining-tokens`.
    pub remaining_tokens: u32,
    /// `x-stainless-retry-count` (request header of the OpenAI/Anthropic SDKs).
    pub client_retry: u32,
}

impl HeadFacts {
    pub const NONE: HeadFacts = HeadFacts {
        retry_after_secs: ABSENT,
        retry_after_unix: ABSENT,
        retry_after_ms: ABSENT,
        remaining_requests: ABSENT,
        remaining_tokens: ABSENT,
        client_retry: ABSENT,
    };
}

/// Upper bound on header lines scanned, so the scan terminates in the verifier's eyes.
pub const MAX_HEADER_LINES: usize = 64;

/// Scan the header lines of a head (after its first line) for the values in
/// [`HeadFacts`]. Stops at the blank line ending the head, at the end of `head` (a head
/// split across segments yields what the first part holds), or after
/// [`MAX_HEADER_LINES`]. Header names match case-insensitively; optional whitespace
/// around values (including obsolete line folding's leading spaces) is skipped.
pub fn scan_head(head: &[u8]) -> HeadFacts {
    let mut facts = HeadFacts::NONE;
    let mut line_start = match next_line(head, 0) {
        Some(s) => s,
        None => return facts,
    };
    let mut lines = 0;
    while lines < MAX_HEADER_LINES {
        lines += 1;
        let Some(line) = head.get(line_start..) else {
            break;
        };
        if line.first() == Some(&b'\r') || line.first() == Some(&b'\n') || line.is_empty() {
            break; // end of head
        }
        read_header(line, &mut facts);
        match next_line(head, line_start) {
            Some(s) => line_start = s,
            None => break,
        }
    }
    facts
}

/// Offset just past the next LF at or after `from`.
fn next_line(head: &[u8], from: usize) -> Option<usize> {
    let mut i = from;
    while i < head.len() {
        if head[i] == b'\n' {
            return Some(i + 1);
        }
        i += 1;
    }
    None
}

fn read_header(line: &[u8], facts: &mut HeadFacts) {
    if let Some(v) = header_value(line, b"retry-after-ms:") {
        facts.retry_after_ms = parse_u32(v).unwrap_or(ABSENT);
    } else if let Some(v) = header_value(line, b"retry-after:") {
        if let Some(secs) = parse_u32(v) {
            facts.retry_after_secs = secs;
        } else if let Some(unix) = parse_http_date(v) {
            facts.retry_after_unix = unix;
        }
    } else if let Some(v) = header_value(line, b"x-ratelimit-remaining-requests:") {
        facts.remaining_requests = parse_u32(v).unwrap_or(ABSENT);
    } else if let Some(v) = header_value(line, b"x-ratelimit-remaining-tokens:") {
        facts.remaining_tokens = parse_u32(v).unwrap_or(ABSENT);
    } else if let Some(v) = header_value(line, b"x-stainless-retry-count:") {
        facts.client_retry = parse_u32(v).unwrap_or(ABSENT);
    }
}

/// The value of a header line named `name` (lowercase, with its colon), trimmed of
/// surrounding whitespace and of the line end.
fn header_value<'a>(line: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    if !starts_with_ignore_case(line, name) {
        return None;
    }
    let mut v = &line[name.len()..];
    while let [b' ' | b'\t', rest @ ..] = v {
        v = rest;
    }
    let mut end = 0;
    while end < v.len() && v[end] != b'\r' && v[end] != b'\n' {
        end += 1;
    }
    let mut v = &v[..end];
    while let [rest @ .., b' ' | b'\t'] = v {
        v = rest;
    }
    Some(v)
}

/// A non-empty run of ASCII digits that fits a `u32` (and is not [`ABSENT`]).
fn parse_u32(v: &[u8]) -> Option<u32> {
    if v.is_empty() || v.len() > 10 {
        return None;
    }
    let mut n: u64 = 0;
    for &b in v {
        n = n * 10 + digit(b)? as u64;
    }
    if n >= ABSENT as u64 {
        return None;
    }
    Some(n as u32)
}

/// IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`, RFC 9110 §5.6.7) to Unix seconds.
/// The obsolete RFC 850 and asctime forms are not accepted: no LLM API sends them.
pub fn parse_http_date(v: &[u8]) -> Option<u32> {
    // "Sun, 06 Nov 1994 08:49:37 GMT" is exactly 29 bytes.
    if v.len() != 29 || v[3] != b',' || v[4] != b' ' || v[7] != b' ' || v[11] != b' ' {
        return None;
    }
    if v[16] != b' ' || v[19] != b':' || v[22] != b':' || v[25] != b' ' {
        return None;
    }
    if v[26] != b'G' || v[27] != b'M' || v[28] != b'T' {
        return None;
    }
    let two = |i: usize| -> Option<u32> { Some((digit(v[i])? * 10 + digit(v[i + 1])?) as u32) };
    let day = two(5)?;
    let year = two(12)? * 100 + two(14)?;
    let (hour, min, sec) = (two(17)?, two(20)?, two(23)?);
    let month = month_number([v[8], v[9], v[10]])?;
    if !(1..=31).contains(&day) || hour > 23 || min > 59 || sec > 60 || year < 1970 {
        return None;
    }
    let days = days_from_civil(year as i64, month, day as i64);
    let unix = days * 86_400 + (hour * 3600 + min * 60 + sec) as i64;
    u32::try_from(unix).ok().filter(|&u| u != ABSENT)
}

fn month_number(m: [u8; 3]) -> Option<i64> {
    const MONTHS: [[u8; 3]; 12] = [
        *b"Jan", *b"Feb", *b"Mar", *b"Apr", *b"May", *b"Jun", *b"Jul", *b"Aug", *b"Sep", *b"Oct",
        *b"Nov", *b"Dec",
    ];
    let mut i = 0;
    while i < 12 {
        if MONTHS[i] == m {
            return Some(i as i64 + 1);
        }
        i += 1;
    }
    None
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_lines() {
        assert_eq!(parse_status_line(b"HTTP/1.1 200 OK\r\n"), Some(200));
        assert_eq!(
            parse_status_line(b"HTTP/1.1 429 Too Many Requests\r\n"),
            Some(429)
        );
        assert_eq!(
            parse_status_line(b"HTTP/1.0 503 Service Unavailable"),
            Some(503)
        );
        assert_eq!(parse_status_line(b"HTTP/1.1 204\r\n"), Some(204));
        assert_eq!(parse_status_line(b"HTTP/1.1 100 Continue\r\n"), Some(100));
    }

    #[test]
    fn not_status_lines() {
        for bad in [
            &b""[..],
            b"HTTP/1.1 200", // too short to know the code ends there
            b"HTTP/1.1 2000 OK\r\n",
            b"HTTP/2 200 OK\r\n\r\n",
            b"HTTP/1.2 200 OK\r\n",
            b"http/1.1 200 OK\r\n",
            b"HTTP/1.1 099 Old\r\n",
            b"HTTP/1.1 20x OK\r\n",
            b"HTTP/1.1  200 OK\r\n",
            b"GET / HTTP/1.1\r\n\r\n",
            b"data: HTTP/1.1 429 \r\n",
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03abcdef",
        ] {
            assert_eq!(
                parse_status_line(bad),
                None,
                "{:?}",
                core::str::from_utf8(bad)
            );
        }
    }

    #[test]
    fn interim() {
        assert!(is_interim(100) && is_interim(103) && !is_interim(200) && !is_interim(429));
    }

    #[test]
    fn request_starts() {
        let head = b"POST /v1/chat/completions?key=sk-x HTTP/1.1\r\n";
        let start = parse_request_start(head).unwrap();
        assert_eq!(start.method, Method::Post);
        let mut path = [0u8; 32];
        let n = copy_path(head, start.target_offset, &mut path);
        assert_eq!(&path[..n], b"/v1/chat/completions");
        assert_eq!(
            parse_request_start(b"GET /health HTTP/1.1").unwrap().method,
            Method::Get
        );
        assert_eq!(parse_request_start(b"PUT /x").unwrap().method, Method::Put);
        assert_eq!(
            parse_request_start(b"PATCH /x").unwrap().method,
            Method::Patch
        );
        assert_eq!(
            parse_request_start(b"OPTIONS * HTTP/1.1").unwrap().method,
            Method::Options
        );
        assert_eq!(parse_request_start(b"POSTAL /x"), None);
        assert_eq!(parse_request_start(b"GET x"), None);
        assert_eq!(parse_request_start(b"HTTP/1.1 200 OK"), None);
        assert_eq!(parse_request_start(b"GET "), None);
    }

    #[test]
    fn copy_path_is_bounded() {
        let head = b"GET /a/very/long/path/that/does/not/fit HTTP/1.1";
        let mut out = [0u8; 8];
        assert_eq!(copy_path(head, 4, &mut out), 8);
        assert_eq!(&out, b"/a/very/");
        assert_eq!(copy_path(b"GET /ab", 4, &mut out), 3);
    }

    #[test]
    fn head_facts() {
        let head = b"HTTP/1.1 429 Too Many Requests\r\n\
            content-type: application/json\r\n\
            RETRY-AFTER:   2  \r\n\
            retry-after-ms: 1500\r\n\
            x-ratelimit-remaining-requests: 0\r\n\
            X-RateLimit-Remaining-Tokens:\t12345\r\n\
            \r\n\
            x-stainless-retry-count: 9\r\n";
        let f = scan_head(head);
        assert_eq!(f.retry_after_secs, 2);
        assert_eq!(f.retry_after_ms, 1500);
        assert_eq!(f.retry_after_unix, ABSENT);
        assert_eq!(f.remaining_requests, 0);
        assert_eq!(f.remaining_tokens, 12345);
        assert_eq!(
            f.client_retry, ABSENT,
            "past the blank line is body, not head"
        );
    }

    #[test]
    fn head_facts_request_and_split_head() {
        let f = scan_head(
            b"POST /v1/chat/completions HTTP/1.1\r\nx-stainless-retry-count: 2\r\nauthoriz",
        );
        assert_eq!(f.client_retry, 2);
        assert_eq!(scan_head(b"HTTP/1.1 200 OK"), HeadFacts::NONE);
        // LF-only line ends are tolerated.
        assert_eq!(
            scan_head(b"HTTP/1.1 429 x\nretry-after: 7\n\n").retry_after_secs,
            7
        );
    }

    #[test]
    fn http_dates() {
        assert_eq!(
            parse_http_date(b"Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(784_111_777)
        );
        assert_eq!(parse_http_date(b"Thu, 01 Jan 1970 00:00:00 GMT"), Some(0));
        assert_eq!(
            parse_http_date(b"Mon, 23 Nov 2026 11:40:00 GMT"),
            Some(1_795_434_000)
        );
        let f = scan_head(b"HTTP/1.1 503 x\r\nRetry-After: Wed, 21 Oct 2015 07:28:00 GMT\r\n\r\n");
        assert_eq!(f.retry_after_unix, 1_445_412_480);
        assert_eq!(f.retry_after_secs, ABSENT);
        assert_eq!(parse_http_date(b"Sun, 06 Foo 1994 08:49:37 GMT"), None);
        assert_eq!(parse_http_date(b"Sunday, 06-Nov-94 08:49:37 GMT"), None);
        assert_eq!(parse_http_date(b"Sun, 32 Nov 1994 08:49:37 GMT"), None);
    }

    #[test]
    fn numbers() {
        assert_eq!(parse_u32(b"0"), Some(0));
        assert_eq!(parse_u32(b"4294967294"), Some(4_294_967_294));
        assert_eq!(parse_u32(b"4294967295"), None);
        assert_eq!(parse_u32(b"99999999999"), None);
        assert_eq!(parse_u32(b"1.5"), None);
        assert_eq!(parse_u32(b""), None);
    }
}
