//! The audit's normalised picture of its inputs: what the wire carried ([`WireEvent`])
//! and what a report or log claims ([`Report`] → [`Run`] → [`ReportedRequest`] or
//! [`Tally`]). Every reader in [`crate::formats`] produces a [`Report`]; reconciliation
//! never looks at a file format again.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

pub const NS_PER_SEC: u64 = 1_000_000_000;
pub const NS_PER_MS: u64 = 1_000_000;

/// What the wire carried for one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum WireOutcome {
    Status(u16),
    /// Reset, closed or timed out before a status line: never a status code.
    NoResponse,
}

impl WireOutcome {
    pub fn is_success(self) -> bool {
        matches!(self, WireOutcome::Status(200..=299))
    }

    /// What SDKs and gateways retry: 408, 409, 429, 5xx and no response.
    pub fn is_retryable(self) -> bool {
        match self {
            WireOutcome::Status(code) => matches!(code, 408 | 409 | 429 | 500..=599),
            WireOutcome::NoResponse => true,
        }
    }

    pub fn label(self) -> String {
        match self {
            WireOutcome::Status(code) => code.to_string(),
            WireOutcome::NoResponse => "none".into(),
        }
    }
}

/// What a report says happened to one request (or a class of requests in a tally).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Reported {
    /// An HTTP status code the report names (or one its error text names unambiguously).
    Status(u16),
    /// Counted as a success without a code (Locust's request count, aiperf without error).
    Success,
    /// Counted as a failure without a code (Locust's JSON failure count).
    Failure,
    /// Reported as having had no response (timeout, connection error) without a code.
    NoResponse,
}

impl Reported {
    pub fn is_success(self) -> bool {
        matches!(self, Reported::Success | Reported::Status(200..=299))
    }

    /// True when the report does not say which code: the row of the wire's code is used.
    pub fn is_generic(self) -> bool {
        matches!(self, Reported::Success | Reported::Failure)
    }

    pub fn label(self) -> String {
        match self {
            Reported::Status(code) => code.to_string(),
            Reported::Success => "success".into(),
            Reported::Failure => "failure".into(),
            Reported::NoResponse => "none".into(),
        }
    }
}

/// Where a claim or an observation comes from: a file and, when known, its 1-based line.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Location {
    pub file: PathBuf,
    pub line: Option<u64>,
}

impl Location {
    pub fn new(file: impl Into<PathBuf>, line: Option<u64>) -> Location {
        Location {
            file: file.into(),
            line,
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        Ok(())
    }
}

/// One response (or no-response outcome) from the wire journal.
#[derive(Clone, Debug, PartialEq)]
pub struct WireEvent {
    /// 1-based position among the journal's records (gaps included), for evidence.
    pub record: u64,
    /// When the status line (or the outcome) was seen, Unix ns.
    pub unix_ns: u64,
    /// When the request head was sent, Unix ns, if seen.
    pub request_ns: Option<u64>,
    pub client: Option<String>,
    pub upstream: String,
    pub outcome: WireOutcome,
    /// `reset` / `closed` / `timeout` for no-response outcomes.
    pub reason: Option<String>,
    pub method: Option<String>,
    pub route: Option<String>,
    pub retry_after_ms: Option<u64>,
    /// `x-stainless-retry-count` of the request (0 = first try).
    pub client_retry: Option<u32>,
}

impl WireEvent {
    /// When the request started, or the response time when the request was not seen.
    pub fn start_ns(&self) -> u64 {
        self.request_ns.unwrap_or(self.unix_ns).min(self.unix_ns)
    }

    /// The client's IP without the port (retries may use a new connection).
    pub fn client_ip(&self) -> Option<&str> {
        self.client.as_deref().map(host_of)
    }
}

/// `1.2.3.4:80` → `1.2.3.4`, `[::1]:80` → `[::1]`.
pub fn host_of(addr: &str) -> &str {
    match addr.rfind(':') {
        Some(i)
            if !addr[i + 1..].is_empty() && addr[i + 1..].bytes().all(|b| b.is_ascii_digit()) =>
        {
            &addr[..i]
        }
        _ => addr,
    }
}

/// When a reported request happened, as precisely as the report says it, in the
/// report's own clock (reconciliation estimates the offset to the wire's clock).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimeAnchor {
    /// The request was sent at this instant (aiperf, vLLM detailed, Envoy without duration).
    Start(u64),
    /// The response was complete at this instant (a log line written on completion).
    End(u64),
    /// The whole exchange lies within [start, end] (Envoy START_TIME + DURATION).
    Span { start: u64, end: u64 },
    /// Somewhere within the request's lifetime, unknown which end (generic JSON Lines).
    Point(u64),
    /// Completed within the whole second starting here (second-resolution logs).
    Second(u64),
}

impl TimeAnchor {
    /// A representative instant (for sorting and windows).
    pub fn instant(self) -> u64 {
        match self {
            TimeAnchor::Start(t) | TimeAnchor::End(t) | TimeAnchor::Point(t) => t,
            TimeAnchor::Span { end, .. } => end,
            TimeAnchor::Second(s) => s + NS_PER_SEC / 2,
        }
    }

    pub fn shifted(self, offset_ns: i64) -> TimeAnchor {
        let s = |t: u64| t.saturating_add_signed(offset_ns);
        match self {
            TimeAnchor::Start(t) => TimeAnchor::Start(s(t)),
            TimeAnchor::End(t) => TimeAnchor::End(s(t)),
            TimeAnchor::Point(t) => TimeAnchor::Point(s(t)),
            TimeAnchor::Second(t) => TimeAnchor::Second(s(t)),
            TimeAnchor::Span { start, end } => TimeAnchor::Span {
                start: s(start),
                end: s(end),
            },
        }
    }
}

/// One request as a report or log describes it.
#[derive(Clone, Debug, PartialEq)]
pub struct ReportedRequest {
    pub at: Location,
    pub time: Option<TimeAnchor>,
    /// The upstream the request went to, when the report says (Envoy `%UPSTREAM_HOST%`).
    pub upstream: Option<String>,
    /// The client connection, when the report says (uvicorn's `ip:port`).
    pub client: Option<String>,
    pub outcome: Reported,
    /// Upstream attempts a gateway made for it (Plano `attempts=`, nginx `$upstream_status`).
    pub attempts: Option<u32>,
    /// Every attempt's upstream status, oldest first, when logged (nginx `$upstream_status`).
    pub attempt_statuses: Vec<u16>,
    /// A gateway line that may stand for several upstream attempts without saying how
    /// many (Envoy's default format logs only the final code).
    pub attempts_unknown: bool,
    /// The gateway answered by itself (Envoy flags RL, UO, NR, ...): no upstream request.
    pub local_reply: Option<String>,
    pub method: Option<String>,
    pub path: Option<String>,
    /// Error text, already scrubbed.
    pub message: Option<String>,
}

impl ReportedRequest {
    pub fn new(at: Location, outcome: Reported) -> ReportedRequest {
        ReportedRequest {
            at,
            time: None,
            upstream: None,
            client: None,
            outcome,
            attempts: None,
            attempt_statuses: Vec::new(),
            attempts_unknown: false,
            local_reply: None,
            method: None,
            path: None,
            message: None,
        }
    }
}

/// Counts a report gives for a run, by outcome.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Tally {
    pub by_outcome: BTreeMap<Reported, u64>,
    /// Where each count was read from (evidence).
    pub sources: Vec<Location>,
}

impl Tally {
    pub fn add(&mut self, outcome: Reported, count: u64) {
        if count > 0 {
            *self.by_outcome.entry(outcome).or_default() += count;
        }
    }

    pub fn total(&self) -> u64 {
        self.by_outcome.values().sum()
    }
}

/// Which requests a run's `requests` list covers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Coverage {
    /// Every request of the run.
    All,
    /// Only failed requests (a log that prints errors): they locate failures in time,
    /// the run's [`Tally`] gives the totals.
    ErrorsOnly,
}

/// A time interval [start, end) in some clock, Unix ns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    pub start: u64,
    pub end: u64,
}

impl Window {
    pub fn contains(&self, t: u64) -> bool {
        self.start <= t && t < self.end
    }
}

/// One run of a benchmark (or the whole of a log): a set of claims over one window.
#[derive(Clone, Debug, PartialEq)]
pub struct Run {
    pub name: String,
    /// Where the tool sent its requests, when it says (`--api-base`), as `ip:port`.
    pub upstream: Option<String>,
    /// The run's window in the report's clock, when known.
    pub window: Option<Window>,
    /// How precisely `window` is known (1 s for second-resolution logs).
    pub window_precision_ns: u64,
    /// How long the run may have gone on after `window` without the report recording
    /// it (Locust's CSV writer stops up to a couple of seconds before the run does).
    pub unrecorded_tail_ns: u64,
    pub requests: Vec<ReportedRequest>,
    pub coverage: Coverage,
    /// Per-run counts; `None` when the report only lists requests.
    pub tally: Option<Tally>,
    /// Requests the tool kept in flight (concurrency / users), when known.
    pub concurrency: Option<u32>,
    /// True when the report's clock is the wire's (Unix time from the same host):
    /// no offset is estimated for windows.
    pub unix_clock: bool,
}

impl Run {
    pub fn new(name: impl Into<String>) -> Run {
        Run {
            name: name.into(),
            upstream: None,
            window: None,
            window_precision_ns: 0,
            unrecorded_tail_ns: 0,
            requests: Vec::new(),
            coverage: Coverage::All,
            tally: None,
            concurrency: None,
            unix_clock: true,
        }
    }
}

/// What a gateway counter counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CounterKind {
    Status(u16),
    /// A status class like 4xx (Envoy `upstream_rq_4xx`): compared with the wire's class.
    Class(u8),
    Success,
    Failure,
    Total,
    /// Retries the gateway made (Envoy `upstream_rq_retry`).
    Retries,
}

/// Which side of a gateway a counter describes.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Leg {
    /// Requests the gateway sent to this upstream (`ip:port`).
    Upstream(String),
    /// Requests the gateway sent to a named cluster whose hosts are not known.
    Cluster(String),
    /// Requests clients sent to the gateway itself.
    Downstream,
}

/// One sample of a gateway's Prometheus (or Envoy stats) counters.
#[derive(Clone, Debug, PartialEq)]
pub struct CounterSample {
    pub at: Location,
    pub metric: String,
    pub leg: Leg,
    pub kind: CounterKind,
    pub route: Option<String>,
    pub value: u64,
}

/// A line (or record) a reader skipped, with what it expected there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub at: Location,
    pub expected: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: skipped: expected {}", self.at, self.expected)
    }
}

/// Skipped lines of one input: all counted, the first few kept for the output.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Problems {
    pub skipped: u64,
    pub first: Vec<Problem>,
}

impl Problems {
    pub const KEEP: usize = 5;

    pub fn skip(&mut self, at: Location, expected: impl Into<String>) {
        self.skipped += 1;
        if self.first.len() < Self::KEEP {
            self.first.push(Problem {
                at,
                expected: crate::scrub::scrub(&expected.into()).into_owned(),
            });
        }
    }
}

/// Everything one input file (or experiment folder) says.
#[derive(Clone, Debug, PartialEq)]
pub struct Report {
    pub path: PathBuf,
    pub format: crate::format::Format,
    pub runs: Vec<Run>,
    pub counters: Vec<CounterSample>,
    /// The gateway's own listening address, when the input says (uvicorn's banner).
    pub listener: Option<String>,
    /// Facts the reader learned that a verdict may rest on (scrubbed).
    pub notes: Vec<String>,
    pub problems: Problems,
}

impl Report {
    pub fn new(path: impl Into<PathBuf>, format: crate::format::Format) -> Report {
        Report {
            path: path.into(),
            format,
            runs: Vec::new(),
            counters: Vec::new(),
            listener: None,
            notes: Vec::new(),
            problems: Problems::default(),
        }
    }
}

/// A status code from an HTTP reason phrase or error text that names one
/// ("Too Many Requests", "429 Client Error", "Error code: 503"). `None` if unsure.
pub fn status_from_text(text: &str) -> Option<u16> {
    const PHRASES: &[(&str, u16)] = &[
        ("too many requests", 429),
        ("rate limit", 429),
        ("ratelimit", 429),
        ("service unavailable", 503),
        ("bad gateway", 502),
        ("gateway timeout", 504),
        ("internal server error", 500),
        ("unauthorized", 401),
        ("forbidden", 403),
        ("not found", 404),
        ("request timeout", 408),
        ("bad request", 400),
    ];
    // An explicit "NNN Client Error" / "NNN Server Error" / "Error code: NNN" / "status NNN".
    let lower = text.to_ascii_lowercase();
    for marker in [
        "error code: ",
        "status code ",
        "status_code=",
        "status=",
        "status ",
    ] {
        if let Some(i) = lower.find(marker) {
            if let Some(code) = leading_status(&lower[i + marker.len()..]) {
                return Some(code);
            }
        }
    }
    for marker in [" client error", " server error"] {
        if let Some(i) = lower.find(marker) {
            if i >= 3 {
                if let Some(code) = leading_status(&lower[i - 3..i]) {
                    return Some(code);
                }
            }
        }
    }
    PHRASES
        .iter()
        .find(|(phrase, _)| lower.contains(phrase))
        .map(|&(_, code)| code)
}

fn leading_status(text: &str) -> Option<u16> {
    let digits: String = text.chars().take_while(char::is_ascii_digit).collect();
    match digits.parse::<u16>() {
        Ok(code) if digits.len() == 3 && (100..=599).contains(&code) => Some(code),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_from_error_texts() {
        assert_eq!(
            status_from_text("HTTPError('429 Client Error: Too Many Requests for url: /v1')"),
            Some(429)
        );
        assert_eq!(
            status_from_text("Error code: 503 - {'error': ...}"),
            Some(503)
        );
        assert_eq!(status_from_text("Too Many Requests"), Some(429));
        assert_eq!(status_from_text("Service Unavailable"), Some(503));
        assert_eq!(status_from_text("ConnectionResetError(104)"), None);
        assert_eq!(status_from_text(""), None);
    }

    #[test]
    fn host_of_strips_ports() {
        assert_eq!(host_of("127.0.0.1:9000"), "127.0.0.1");
        assert_eq!(host_of("[::1]:9000"), "[::1]");
        assert_eq!(host_of("example"), "example");
    }
}
