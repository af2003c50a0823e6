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
/// to the same request is still to come. `101 Switching Protocols` is the last HTTP/1
/// response on its connection, so it is final.
#[inline(always)]
pub const fn is_interim(status: u16) -> bool {
    status >= 100 && status < 200 && status != 101
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
    /// The method stored as `u8` in shared structs.
    pub const fn from_u8(v: u8) -> Option<Method> {
        Some(match v {
            1 => Method::Get,
            2 => Method::Post,
            3 => Method::Put,
            4 => Method::Delete,
            5 => Method::Head,
            6 => Method::Options,
            7 => Method::Patch,
            _ => return None,
        })
    }

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

/// A TLS record carrying a ClientHello at the start of `head`: content type 22
/// (handshake), version 3.0-3.4 (TLS 1.3 hellos say 3.1), handshake type 1.
#[inline(always)]
pub fn is_tls_client_hello(head: &[u8]) -> bool {
    match head.get(..6) {
        Some(h) => h[0] == 0x16 && h[1] == 0x03 && h[2] <= 0x04 && h[5] == 0x01,
        None => false,
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

/// Bytes of a head the probes scan for headers; later header lines are not read.
/// Real 429 heads from hosted APIs run to about 1 KiB; a power of two (the kernel masks
/// indices with it).
pub const HEAD_SCAN_LEN: usize = 1024;
/// Bytes of one header line (name and value) the parser looks at; the headers it reads
/// are short, so a longer line is simply cut.
pub const HEADER_LINE_WINDOW: usize = 64;

/// Whether a head continues after the line just read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LineStep {
    Continue,
    /// The blank line ending the head (or the end of the bytes we have).
    EndOfHead,
}

/// A header line's first [`HEADER_LINE_WINDOW`] bytes, zero-padded past the end of
/// the bytes available (NUL never occurs in a valid head, so it reads as "end").
pub type LineWindow = [u8; HEADER_LINE_WINDOW];

/// Read one header line into `facts`. This is the step both homes share: userspace
/// calls it for every line of a head ([`scan_head`]); the kernel for every LF it finds,
/// on a window of its zeroed scratch buffer. A fixed-size window keeps every index
/// constant-bounded, so the eBPF verifier's work per line is small.
#[inline(always)]
pub fn read_line(window: &LineWindow, facts: &mut HeadFacts) -> LineStep {
    match window[0] {
        b'\r' | b'\n' | 0 => LineStep::EndOfHead,
        _ => {
            read_header(window, facts);
            LineStep::Continue
        }
    }
}

/// The values in the header lines the kernel forwarded (see `types::Event::lines`).
pub fn facts_from_lines(lines: &[LineWindow]) -> HeadFacts {
    let mut facts = HeadFacts::NONE;
    for line in lines {
        read_line(line, &mut facts);
    }
    facts
}

/// Scan the header lines of a head (after its first line) for the values in
/// [`HeadFacts`], within the first [`HEAD_SCAN_LEN`] bytes. Stops at the blank line
/// ending the head; a head split across segments yields what the first part holds.
/// Header names match case-insensitively; up to two blanks around values are skipped.
pub fn scan_head(head: &[u8]) -> HeadFacts {
    let mut facts = HeadFacts::NONE;
    let head = &head[..head.len().min(HEAD_SCAN_LEN)];
    for (lf, _) in head.iter().enumerate().filter(|(_, &b)| b == b'\n') {
        let rest = &head[lf + 1..];
        let mut window = [0u8; HEADER_LINE_WINDOW];
        let n = rest.len().min(HEADER_LINE_WINDOW);
        window[..n].copy_from_slice(&rest[..n]);
        if read_line(&window, &mut facts) == LineStep::EndOfHead {
            break;
        }
    }
    facts
}

/// Which [`HeadFacts`] field a header line feeds.
#[derive(Clone, Copy)]
enum Wanted {
    RetryAfterMs,
    RetryAfter,
    RemainingRequests,
    RemainingTokens,
    ClientRetry,
}

/// A header name (with its colon) as up to four 8-byte words, compared a word at a
/// time: a handful of branches instead of a loop per byte, which keeps the eBPF
/// verifier's work small. `fold` lowercases letters (`| 0x20` only where the name has
/// a letter), `care` masks the bytes past the end of the name.
struct NamePattern {
    words: [u64; 4],
    fold: [u64; 4],
    care: [u64; 4],
    len: usize,
    wanted: Wanted,
}

const fn pattern(name: &[u8], wanted: Wanted) -> NamePattern {
    let mut p = NamePattern {
        words: [0; 4],
        fold: [0; 4],
        care: [0; 4],
        len: name.len(),
        wanted,
    };
    let mut i = 0;
    while i < name.len() {
        let shift = (i % 8) * 8;
        p.words[i / 8] |= (name[i] as u64) << shift;
        p.care[i / 8] |= 0xff << shift;
        if name[i].is_ascii_lowercase() {
            p.fold[i / 8] |= 0x20 << shift;
        }
        i += 1;
    }
    p
}

/// How many headers ratewire reads (the length of `WANTED`).
pub const WANTED_HEADERS: usize = 5;

/// Header names (lowercase, with the colon); `retry-after-ms:` before `retry-after:`.
const WANTED: [NamePattern; WANTED_HEADERS] = [
    pattern(b"retry-after-ms:", Wanted::RetryAfterMs),
    pattern(b"retry-after:", Wanted::RetryAfter),
    pattern(
        b"x-ratelimit-remaining-requests:",
        Wanted::RemainingRequests,
    ),
    pattern(b"x-ratelimit-remaining-tokens:", Wanted::RemainingTokens),
    pattern(b"x-stainless-retry-count:", Wanted::ClientRetry),
];

/// Eight bytes of the window at `off` (a constant), little-endian.
#[inline(always)]
fn word_at(line: &LineWindow, off: usize) -> u64 {
    u64::from_le_bytes([
        line[off],
        line[off + 1],
        line[off + 2],
        line[off + 3],
        line[off + 4],
        line[off + 5],
        line[off + 6],
        line[off + 7],
    ])
}

#[inline(always)]
fn matches(line: &LineWindow, p: &NamePattern) -> bool {
    let mut k = 0;
    while k < 4 {
        if (word_at(line, k * 8) | p.fold[k]) & p.care[k] != p.words[k] {
            return false;
        }
        k += 1;
    }
    true
}

/// Which wanted header (index into the table, 0..5) a line is, and where its value
/// starts in the window.
#[inline(always)]
pub fn match_header(line: &LineWindow) -> Option<(usize, usize)> {
    let mut k = 0;
    while k < WANTED.len() {
        if matches(line, &WANTED[k]) {
            return Some((k, WANTED[k].len));
        }
        k += 1;
    }
    None
}

#[inline(always)]
fn read_header(line: &LineWindow, facts: &mut HeadFacts) {
    if let Some((k, value_start)) = match_header(line) {
        store(line, value_start, WANTED[k].wanted, facts);
    }
}

#[inline(always)]
fn store(line: &[u8], value_start: usize, wanted: Wanted, facts: &mut HeadFacts) {
    let value = scan_value(line, value_start);
    let number = value.number.unwrap_or(ABSENT);
    match wanted {
        Wanted::RetryAfterMs => facts.retry_after_ms = number,
        Wanted::RemainingRequests => facts.remaining_requests = number,
        Wanted::RemainingTokens => facts.remaining_tokens = number,
        Wanted::ClientRetry => facts.client_retry = number,
        Wanted::RetryAfter => {
            if value.number.is_some() {
                facts.retry_after_secs = number;
            } else if let Some(start) = value.text_start {
                let date = line.get(start..start + 29).and_then(parse_http_date);
                if let (Some(unix), true) = (date, ends_value(line, start + 29)) {
                    facts.retry_after_unix = unix;
                }
            }
        }
    }
}

/// A header value: a number, or where a non-numeric value starts.
struct Value {
    number: Option<u32>,
    text_start: Option<usize>,
}

/// Up to two spaces or tabs, then up to 10 digits (and up to two more blanks) ending
/// the line; or the start of a text value. Bounded by constants, with few branches (the
/// verifier's cost); longer runs of whitespace are not accepted.
#[inline(always)]
fn scan_value(line: &[u8], start: usize) -> Value {
    let start = start + blanks_at(line, start);
    let mut n: u64 = 0;
    let mut digits = 0;
    while digits < 11 {
        match line.get(start + digits) {
            Some(&b) if b.is_ascii_digit() => n = n * 10 + (b - b'0') as u64,
            _ => break,
        }
        digits += 1;
    }
    if digits == 0 {
        let text = matches!(line.get(start), Some(&b) if b != b'\r' && b != b'\n' && b != 0);
        return Value {
            number: None,
            text_start: if text { Some(start) } else { None },
        };
    }
    let number = if digits <= 10 && n < ABSENT as u64 && ends_value(line, start + digits) {
        Some(n as u32)
    } else {
        None
    };
    Value {
        number,
        text_start: None,
    }
}

/// The value ends at `at` (after at most two blanks): end of the bytes we have
/// (or of the zero padding), CR or LF.
#[inline(always)]
fn ends_value(line: &[u8], at: usize) -> bool {
    matches!(
        line.get(at + blanks_at(line, at)),
        None | Some(b'\r') | Some(b'\n') | Some(0)
    )
}

/// How many spaces or tabs (0 to 2) start at `at`.
#[inline(always)]
fn blanks_at(line: &[u8], at: usize) -> usize {
    let blank = |i: usize| matches!(line.get(i), Some(b' ') | Some(b'\t'));
    match (blank(at), blank(at + 1)) {
        (true, true) => 2,
        (true, false) => 1,
        _ => 0,
    }
}

#[cfg(test)]
fn parse_u32(v: &[u8]) -> Option<u32> {
    scan_value(v, 0)
        .number
        .filter(|_| !v.is_empty() && !v[0].is_ascii_whitespace())
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
    if day < 1 || day > days_in_month(year, month) || hour > 23 || min > 59 || sec > 60 {
        return None;
    }
    if year < 1970 {
        return None;
    }
    let days = days_from_civil(year as i64, month, day as i64);
    let unix = days * 86_400 + (hour * 3600 + min * 60 + sec) as i64;
    u32::try_from(unix).ok().filter(|&u| u != ABSENT)
}

fn month_number(m: [u8; 3]) -> Option<i64> {
    // A match rather than a table search: no loop and no `bcmp` in the eBPF object.
    Some(match &m {
        b"Jan" => 1,
        b"Feb" => 2,
        b"Mar" => 3,
        b"Apr" => 4,
        b"May" => 5,
        b"Jun" => 6,
        b"Jul" => 7,
        b"Aug" => 8,
        b"Sep" => 9,
        b"Oct" => 10,
        b"Nov" => 11,
        b"Dec" => 12,
        _ => return None,
    })
}

fn days_in_month(year: u32, month: i64) -> u32 {
    match month {
        4 | 6 | 9 | 11 => 30,
        2 if year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400)) => {
            29
        }
        2 => 28,
        _ => 31,
    }
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
    fn client_hellos() {
        assert!(is_tls_client_hello(&[0x16, 3, 1, 2, 0, 1, 0, 1, 0xfc]));
        assert!(!is_tls_client_hello(&[0x16, 3, 3, 0, 0x7a, 2, 0, 0])); // ServerHello
        assert!(!is_tls_client_hello(&[0x17, 3, 3, 0, 0x7a, 1]));
        assert!(!is_tls_client_hello(b"GET / HT"));
        assert!(!is_tls_client_hello(&[0x16, 3, 1]));
    }

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
        assert!(
            !is_interim(101),
            "101 Switching Protocols ends HTTP/1 on the connection"
        );
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
            RETRY-AFTER:  2  \r\n\
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
        assert_eq!(parse_http_date(b"Sun, 31 Nov 1994 08:49:37 GMT"), None);
        assert_eq!(parse_http_date(b"Sun, 29 Feb 2023 08:49:37 GMT"), None);
        assert!(parse_http_date(b"Thu, 29 Feb 2024 08:49:37 GMT").is_some());
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
