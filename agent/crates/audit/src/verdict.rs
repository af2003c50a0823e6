//! The one taxonomy the audit speaks (see the design notes): every difference between
//! the wire and a report gets exactly one [`Verdict`], and every failure a
//! [`FailureClass`].

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;

use crate::model::{Reported, WireOutcome};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// The report matches the wire.
    Consistent,
    /// The wire carried an error (429, 503, ...) and the report says another code.
    Misreported,
    /// The wire carried a response the report never mentions.
    Dropped,
    /// The wire carried an error a client or gateway retried into a later outcome that
    /// the report shows as one request. Not a bug, but the report hides it.
    RetryAbsorbed,
    /// The report says a failure where the wire carried a success, or anything where
    /// the wire carried nothing.
    Phantom,
    /// A difference explained by requests in flight at the run's start or stop.
    Boundary,
}

impl Verdict {
    pub const ALL: [Verdict; 6] = [
        Verdict::Consistent,
        Verdict::Misreported,
        Verdict::Dropped,
        Verdict::RetryAbsorbed,
        Verdict::Phantom,
        Verdict::Boundary,
    ];

    /// Counted against `--tolerance`: the report is wrong, not merely incomplete in an
    /// explained way (retries and run edges are shown but do not fail the audit).
    pub fn is_discrepancy(self) -> bool {
        matches!(
            self,
            Verdict::Misreported | Verdict::Dropped | Verdict::Phantom
        )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Consistent => "consistent",
            Verdict::Misreported => "misreported",
            Verdict::Dropped => "dropped",
            Verdict::RetryAbsorbed => "retry_absorbed",
            Verdict::Phantom => "phantom",
            Verdict::Boundary => "boundary",
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Provider failure classes, named like the seeds name them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureClass {
    Ok,
    /// 429
    RateLimited,
    /// 503 and other 5xx
    ProviderUnavailable,
    /// 401, 403
    Auth,
    /// 404
    ModelNotFound,
    /// Other 4xx (400, 408, 409, 422, ...)
    ClientError,
    /// No response: reset, closed, timeout
    NoResponse,
    /// 1xx, 3xx
    Other,
}

impl FailureClass {
    pub fn of_status(code: u16) -> FailureClass {
        match code {
            200..=299 => FailureClass::Ok,
            429 => FailureClass::RateLimited,
            401 | 403 => FailureClass::Auth,
            404 => FailureClass::ModelNotFound,
            400..=499 => FailureClass::ClientError,
            500..=599 => FailureClass::ProviderUnavailable,
            _ => FailureClass::Other,
        }
    }

    pub fn of_wire(outcome: WireOutcome) -> FailureClass {
        match outcome {
            WireOutcome::Status(code) => FailureClass::of_status(code),
            WireOutcome::NoResponse => FailureClass::NoResponse,
        }
    }

    /// The class of a finding: the wire's when it carried something, else the report's.
    pub fn of_finding(wire: Option<WireOutcome>, reported: Option<Reported>) -> FailureClass {
        match (wire, reported) {
            (Some(w), _) => FailureClass::of_wire(w),
            (None, Some(Reported::Status(code))) => FailureClass::of_status(code),
            (None, Some(Reported::Success)) => FailureClass::Ok,
            (None, Some(Reported::NoResponse)) => FailureClass::NoResponse,
            (None, Some(Reported::Failure)) | (None, None) => FailureClass::Other,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            FailureClass::Ok => "ok",
            FailureClass::RateLimited => "rate_limited",
            FailureClass::ProviderUnavailable => "provider_unavailable",
            FailureClass::Auth => "auth",
            FailureClass::ModelNotFound => "model_not_found",
            FailureClass::ClientError => "client_error",
            FailureClass::NoResponse => "no_response",
            FailureClass::Other => "other",
        }
    }
}

/// The verdict for a wire outcome and the report's claim about the same request.
pub fn classify_pair(wire: WireOutcome, reported: Reported) -> Verdict {
    use Reported as R;
    use WireOutcome as W;
    match (wire, reported) {
        (W::Status(w), R::Status(r)) if w == r => Verdict::Consistent,
        (W::Status(w), R::Success) if (200..300).contains(&w) => Verdict::Consistent,
        (W::Status(w), R::Failure) if !(200..300).contains(&w) => Verdict::Consistent,
        (W::NoResponse, R::NoResponse | R::Failure) => Verdict::Consistent,
        // The wire carried an error (or an unexpected success code) and the report
        // names something else: another code, a success, or "no response".
        (W::Status(w), _) if !(200..300).contains(&w) => Verdict::Misreported,
        (W::Status(_), R::Status(r)) if (200..300).contains(&r) => Verdict::Misreported,
        // The wire carried a success; the report says failure (an in-stream error, a
        // client-side timeout) — or the wire carried no status and the report invented one.
        (W::Status(_), _) | (W::NoResponse, _) => Verdict::Phantom,
    }
}

/// Counts per verdict, all six always present (stable JSON).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VerdictCounts(pub BTreeMap<Verdict, u64>);

impl VerdictCounts {
    pub fn add(&mut self, verdict: Verdict, count: u64) {
        *self.0.entry(verdict).or_default() += count;
    }

    pub fn get(&self, verdict: Verdict) -> u64 {
        self.0.get(&verdict).copied().unwrap_or(0)
    }

    pub fn merge(&mut self, other: &VerdictCounts) {
        for (&v, &n) in &other.0 {
            self.add(v, n);
        }
    }

    pub fn discrepancies(&self) -> u64 {
        self.0
            .iter()
            .filter(|(v, _)| v.is_discrepancy())
            .map(|(_, n)| n)
            .sum()
    }
}

impl Serialize for VerdictCounts {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = s.serialize_map(Some(Verdict::ALL.len()))?;
        for v in Verdict::ALL {
            map.serialize_entry(v.as_str(), &self.get(v))?;
        }
        map.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Reported as R;
    use WireOutcome as W;

    #[test]
    fn pairs_classify_by_the_taxonomy() {
        assert_eq!(
            classify_pair(W::Status(429), R::Status(429)),
            Verdict::Consistent
        );
        assert_eq!(
            classify_pair(W::Status(200), R::Success),
            Verdict::Consistent
        );
        assert_eq!(
            classify_pair(W::Status(503), R::Failure),
            Verdict::Consistent
        );
        assert_eq!(
            classify_pair(W::NoResponse, R::NoResponse),
            Verdict::Consistent
        );
        // genai-bench's Cohere/Bedrock users: 429 reported as 500.
        assert_eq!(
            classify_pair(W::Status(429), R::Status(500)),
            Verdict::Misreported
        );
        assert_eq!(
            classify_pair(W::Status(429), R::Success),
            Verdict::Misreported
        );
        // 200 with an SSE error event reported as 429.
        assert_eq!(
            classify_pair(W::Status(200), R::Status(429)),
            Verdict::Phantom
        );
        // genai-bench: ConnectionError reported as 503 where nothing came back.
        assert_eq!(
            classify_pair(W::NoResponse, R::Status(503)),
            Verdict::Phantom
        );
    }

    #[test]
    fn failure_classes() {
        assert_eq!(FailureClass::of_status(429), FailureClass::RateLimited);
        assert_eq!(
            FailureClass::of_status(503),
            FailureClass::ProviderUnavailable
        );
        assert_eq!(
            FailureClass::of_status(502),
            FailureClass::ProviderUnavailable
        );
        assert_eq!(FailureClass::of_status(401), FailureClass::Auth);
        assert_eq!(FailureClass::of_status(403), FailureClass::Auth);
        assert_eq!(FailureClass::of_status(404), FailureClass::ModelNotFound);
        assert_eq!(
            FailureClass::of_wire(WireOutcome::NoResponse),
            FailureClass::NoResponse
        );
    }
}
