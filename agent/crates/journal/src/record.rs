//! One journal line. The schema is documented field by field here and in the README;
//! change it only by bumping [`SCHEMA_VERSION`] and keeping readers of older versions.

use serde::{Deserialize, Serialize};

/// Version written in every record's `v` field.
pub const SCHEMA_VERSION: u32 = 1;

/// What a record says happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// A final HTTP response (status line) was seen for a request.
    Response,
    /// A request got no response: see `reason` (`reset`, `closed`, `timeout`).
    NoResponse,
    /// Events were lost (ring buffer full); `lost` says how many. Counts stay exact:
    /// the Prometheus counters include them, the journal marks where they are missing.
    Gap,
}

/// One journal line (JSON object). Optional fields are omitted when unknown.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// Schema version ([`SCHEMA_VERSION`]).
    pub v: u32,
    pub kind: Kind,
    /// Wall-clock time the status line (or the outcome) was seen, Unix nanoseconds (UTC).
    pub unix_ns: u64,
    /// The same instant as RFC 3339 UTC with nanoseconds, for people and `jq`.
    pub time: String,
    /// Wall-clock time the request head was sent, Unix nanoseconds, when it was seen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_unix_ns: Option<u64>,
    /// Client side of the connection, `ip:port` (`[v6]:port`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client: Option<String>,
    /// Upstream (server) side of the connection, `ip:port` (`[v6]:port`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream: Option<String>,
    /// HTTP status code (kind `response` only). Never invented.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// Why there was no response (kind `no_response`): `reset`, `closed` or `timeout`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Request method, when the request head was seen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// Route label of the request path (bounded set, `other` for the rest).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route: Option<String>,
    /// Retry-After / retry-after-ms of the response, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_ms: Option<u64>,
    /// `x-stainless-retry-count` of the request (0 = first try).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_retry: Option<u32>,
    /// Seen as TLS plaintext through the libssl uprobes.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub tls: bool,
    /// Who recorded it: `xdp` (live), `replay` (a capture file), `tls` (uprobes).
    pub source: String,
    /// Number of events lost at this point (kind `gap` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lost: Option<u64>,
}

/// Why a request got no response (the `reason` of a [`Kind::NoResponse`] record).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum NoResponseReason {
    /// The connection was reset (RST) before the final response.
    Reset,
    /// The server closed the connection (FIN) before the final response.
    Closed,
    /// Nothing came back in time, or the observation ended first.
    Timeout,
}

impl NoResponseReason {
    pub const fn as_str(self) -> &'static str {
        match self {
            NoResponseReason::Reset => "reset",
            NoResponseReason::Closed => "closed",
            NoResponseReason::Timeout => "timeout",
        }
    }
}

impl Record {
    /// A record of `kind` at `unix_ns` with its `time` filled in and nothing else known.
    fn bare(kind: Kind, unix_ns: u64, source: &str) -> Record {
        Record {
            v: SCHEMA_VERSION,
            kind,
            unix_ns,
            time: crate::time::format_rfc3339_nanos(unix_ns),
            request_unix_ns: None,
            client: None,
            upstream: None,
            status: None,
            reason: None,
            method: None,
            route: None,
            retry_after_ms: None,
            client_retry: None,
            tls: false,
            source: source.to_owned(),
            lost: None,
        }
    }

    /// A final response with `status` from `upstream`, seen at `unix_ns` by `source`.
    /// Set the other fields (client, method, route, ...) on the result when known.
    pub fn response(unix_ns: u64, upstream: String, status: u16, source: &str) -> Record {
        Record {
            upstream: Some(upstream),
            status: Some(status),
            ..Record::bare(Kind::Response, unix_ns, source)
        }
    }

    /// A request to `upstream` that got no response, decided at `unix_ns`.
    pub fn no_response(
        unix_ns: u64,
        upstream: String,
        reason: NoResponseReason,
        source: &str,
    ) -> Record {
        Record {
            upstream: Some(upstream),
            reason: Some(reason.as_str().to_owned()),
            ..Record::bare(Kind::NoResponse, unix_ns, source)
        }
    }

    /// `lost` events missing at `unix_ns`.
    pub fn gap(unix_ns: u64, lost: u64, source: &str) -> Record {
        Record {
            lost: Some(lost),
            ..Record::bare(Kind::Gap, unix_ns, source)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constructors_fill_version_and_time() {
        let r = Record::response(1_000_000_001, "10.0.0.2:8000".into(), 429, "replay");
        assert_eq!(r.v, SCHEMA_VERSION);
        assert_eq!(r.time, "1970-01-01T00:00:01.000000001Z");
        assert_eq!((r.kind, r.status), (Kind::Response, Some(429)));
        let line = serde_json::to_string(&r).unwrap();
        assert_eq!(
            line,
            r#"{"v":1,"kind":"response","unix_ns":1000000001,"time":"1970-01-01T00:00:01.000000001Z","upstream":"10.0.0.2:8000","status":429,"source":"replay"}"#
        );
        let n = Record::no_response(5, "[::1]:80".into(), NoResponseReason::Reset, "xdp");
        assert_eq!(n.reason.as_deref(), Some("reset"));
        assert_eq!(Record::gap(5, 7, "xdp").lost, Some(7));
    }
}
