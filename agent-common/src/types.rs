//! `#[repr(C)]` types shared by the kernel programs and userspace. Every struct is laid
//! out with explicit fields and no implicit padding, so the bytes the kernel writes are
//! exactly the bytes userspace reads (the tests below pin the sizes).

use crate::http::{LineWindow, WANTED_HEADERS};

/// How a request ended, as counted in `RESPONSES` and reported in [`Event`]s.
pub const OUTCOME_RESPONSE: u8 = 0;
/// The upstream reset the connection (RST) while the request awaited its response.
pub const OUTCOME_RESET: u8 = 1;
/// The upstream closed the connection (FIN) while the request awaited its response.
pub const OUTCOME_CLOSED: u8 = 2;
/// No response within the configured time (decided by userspace, never by the kernel).
pub const OUTCOME_TIMEOUT: u8 = 3;

/// Key of the `RESPONSES` map: where an outcome came from and what it was.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ResponseKey {
    /// Upstream (response source) address; IPv4 is stored IPv4-mapped (`::ffff:a.b.c.d`).
    pub addr: [u8; 16],
    /// Upstream port, host byte order.
    pub port: u16,
    /// HTTP status code (100..=999); 0 when `outcome` is not [`OUTCOME_RESPONSE`].
    pub status: u16,
    /// Route id of the request (index into the userspace route table; 0 = other).
    pub route: u16,
    /// 1 when seen through the TLS uprobes, 0 on the wire.
    pub tls: u8,
    /// `OUTCOME_*`.
    pub outcome: u8,
}

/// One TCP connection, from the client's side: key of the `FLOWS` map.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FlowKey {
    pub client_addr: [u8; 16],
    pub upstream_addr: [u8; 16],
    pub client_port: u16,
    pub upstream_port: u16,
}

/// Index of the request's `x-stainless-retry-count` line in [`Event::lines`]; the
/// others hold response header lines, in the order of `http::WANTED_HEADERS`.
pub const CLIENT_RETRY_LINE: usize = 4;

/// A request head that left on a flow and awaits its response: value of `FLOWS`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PendingRequest {
    /// `bpf_ktime_get_ns()` (CLOCK_MONOTONIC) when the request head left.
    pub request_ns: u64,
    /// Route id (0 = other).
    pub route: u16,
    /// [`crate::http::Method`] as `u8`.
    pub method: u8,
    pub tls: u8,
    pub reserved: [u8; 4],
    /// The request's `x-stainless-retry-count` line (zeros when absent).
    pub client_retry_line: LineWindow,
}

/// One outcome, sent to userspace through the `EVENTS` ring buffer.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Event {
    /// `bpf_ktime_get_ns()` (CLOCK_MONOTONIC, ns since boot) when the status line (or
    /// the RST/FIN) arrived. Userspace converts it to wall-clock time.
    pub seen_ns: u64,
    /// `bpf_ktime_get_ns()` when the request head left.
    pub request_ns: u64,
    pub flow: FlowKey,
    /// HTTP status code; 0 when `outcome` is not [`OUTCOME_RESPONSE`].
    pub status: u16,
    pub route: u16,
    /// `OUTCOME_*`.
    pub outcome: u8,
    pub method: u8,
    pub tls: u8,
    pub reserved: [u8; 5],
    /// TLS events (`tls` = 1): the process (tgid) and the socket fd the SSL object was
    /// seen writing to or reading from (`NO_FD` when not seen). The kernel cannot see
    /// the peer address through libssl, so `flow` is zero and userspace resolves it
    /// from `/proc/<tgid>/fd/<fd>`. Zero for events seen on the wire.
    pub tgid: u32,
    pub fd: u32,
    /// The header lines ratewire reads, found by the kernel with the shared parser's
    /// `match_header` and read by userspace with its `read_line` (zeros when absent):
    /// never any other header, never a body.
    pub lines: [LineWindow; WANTED_HEADERS],
}

/// No outcome: a TLS hint that the SSL object `(tgid, ssl)` was seen on socket `fd`, so
/// userspace can resolve the connection's addresses while it is still open.
pub const OUTCOME_TLS_SOCKET: u8 = 4;

/// [`Event::fd`] when the SSL object's socket was not seen.
pub const NO_FD: u32 = u32::MAX;

/// One OpenSSL connection (`SSL *`) in one process: key of `TLS_FLOWS` and `TLS_FDS`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TlsKey {
    pub tgid: u32,
    pub reserved: u32,
    pub ssl: u64,
}

/// Capacity of the `TLS_FLOWS` map (TLS requests awaiting a response at once).
pub const TLS_FLOWS_MAX_ENTRIES: u32 = 16_384;

/// Capacity of the `RESPONSES` map. Keys beyond it are not stored: each outcome that
/// cannot be counted is counted in `STATS[STAT_RESPONSE_MAP_FULL]` instead.
pub const RESPONSES_MAX_ENTRIES: u32 = 16_384;
/// Capacity of the `FLOWS` map (requests awaiting a response at once).
pub const FLOWS_MAX_ENTRIES: u32 = 65_536;
/// Capacity of the `ROUTES` map (configured route paths).
pub const ROUTES_MAX_ENTRIES: u32 = 64;
/// The LLM API routes labelled as their own route when none are configured (by
/// `ratewire run` and `ratewire replay` alike); every other path is `other`.
pub const DEFAULT_ROUTES: [&str; 4] = [
    "/v1/chat/completions",
    "/v1/completions",
    "/v1/embeddings",
    "/v1/messages",
];
/// Route paths are matched on this many bytes (zero-padded); longer paths are `other`.
pub const ROUTE_PATH_LEN: usize = 32;
/// Default size of the `EVENTS` ring buffer (userspace may resize it before loading).
pub const EVENTS_DEFAULT_BYTES: u32 = 4 << 20;

/// Slots of the per-CPU `STATS` array: what the probe saw but could not record, and
/// what it saw but could not pair. All are exported, so nothing is lost silently.
pub const STAT_RESPONSE_MAP_FULL: u32 = 0;
/// A request could not be tracked: the `FLOWS` map was full.
pub const STAT_FLOW_MAP_FULL: u32 = 1;
/// An event did not fit in the ring buffer (the counters still include it).
pub const STAT_EVENTS_LOST: u32 = 2;
/// A status line arrived on a flow with no request awaiting it (started mid-flight,
/// request not seen, or a body segment that looks like a status line).
pub const STAT_UNPAIRED: u32 = 3;
/// A request head left while the flow's previous request still awaited its response
/// (HTTP pipelining: the older one is counted as answered by the first response).
pub const STAT_PIPELINED: u32 = 4;
/// A TLS request could not be tracked: the `TLS_FLOWS` map was full.
pub const STAT_TLS_FLOW_MAP_FULL: u32 = 5;
/// A TLS status line arrived for an SSL object with no request awaiting it.
pub const STAT_TLS_UNPAIRED: u32 = 6;
/// A TLS request was written while the previous one on its SSL object still awaited.
pub const STAT_TLS_PIPELINED: u32 = 7;
/// A TLS ClientHello could not be noted: the `TLS_HELLOS` map was full.
pub const STAT_TLS_HELLO_MAP_FULL: u32 = 8;
pub const STAT_SLOTS: u32 = 16;

/// Store an IPv4 address (network byte order octets) as IPv4-mapped IPv6.
#[inline(always)]
pub const fn ipv4_mapped(octets: [u8; 4]) -> [u8; 16] {
    [
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, octets[0], octets[1], octets[2], octets[3],
    ]
}

#[cfg(feature = "user")]
mod pod {
    // SAFETY: plain old data, #[repr(C)], no padding, every bit pattern valid.
    unsafe impl aya::Pod for super::ResponseKey {}
    unsafe impl aya::Pod for super::FlowKey {}
    unsafe impl aya::Pod for super::PendingRequest {}
    unsafe impl aya::Pod for super::Event {}
    unsafe impl aya::Pod for super::TlsKey {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::mem::{align_of, size_of};

    #[test]
    fn shared_structs_have_no_padding() {
        assert_eq!(size_of::<ResponseKey>(), 16 + 2 + 2 + 2 + 1 + 1);
        assert_eq!(align_of::<ResponseKey>(), 2);
        assert_eq!(size_of::<FlowKey>(), 16 + 16 + 2 + 2);
        assert_eq!(size_of::<PendingRequest>(), 8 + 2 + 1 + 1 + 4 + 64);
        assert_eq!(
            size_of::<Event>(),
            8 + 8 + size_of::<FlowKey>() + 2 * 2 + 3 + 5 + 4 + 4 + 64 * WANTED_HEADERS
        );
        assert_eq!(size_of::<Event>() % align_of::<Event>(), 0);
        assert_eq!(size_of::<TlsKey>(), 4 + 4 + 8);
    }
}
