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
