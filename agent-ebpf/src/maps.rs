//! Every map the programs share with each other and with userspace.

use aya_ebpf::{
    macros::map,
    maps::{HashMap, LruHashMap, PerCpuArray, PerCpuHashMap, RingBuf},
};
use ratewire_common::{
    http::{HEADER_LINE_WINDOW, HEAD_SCAN_LEN},
    types::{
        FlowKey, PendingRequest, ResponseKey, TlsKey, EVENTS_DEFAULT_BYTES, FLOWS_MAX_ENTRIES,
        RESPONSES_MAX_ENTRIES, ROUTES_MAX_ENTRIES, ROUTE_PATH_LEN, STAT_SLOTS,
        TLS_FLOWS_MAX_ENTRIES,
    },
};

/// Outcomes per (upstream, status, route, tls, outcome); summed over CPUs by userspace.
#[map]
pub static RESPONSES: PerCpuHashMap<ResponseKey, u64> =
    PerCpuHashMap::with_max_entries(RESPONSES_MAX_ENTRIES, 0);

/// Requests awaiting their response, one per flow. A plain hash (not LRU): an entry is
/// never evicted silently; a full map is counted in `STATS[STAT_FLOW_MAP_FULL]`.
#[map]
pub static FLOWS: HashMap<FlowKey, PendingRequest> =
    HashMap::with_max_entries(FLOWS_MAX_ENTRIES, 0);

/// Route path (zero-padded) -> route id, written by userspace before attaching.
#[map]
pub static ROUTES: HashMap<[u8; ROUTE_PATH_LEN], u16> =
    HashMap::with_max_entries(ROUTES_MAX_ENTRIES, 0);

/// What could not be recorded or paired, by cause (`STAT_*`).
#[map]
pub static STATS: PerCpuArray<u64> = PerCpuArray::with_max_entries(STAT_SLOTS, 0);

/// One event per outcome, for the journal and the histograms.
#[map]
pub static EVENTS: RingBuf = RingBuf::with_byte_size(EVENTS_DEFAULT_BYTES, 0);

/// Per-CPU copy of the head being parsed (too big for the 512-byte stack). The padding
/// past `HEAD_SCAN_LEN` lets a header line window start anywhere in the head.
pub type HeadBuf = [u8; HEAD_SCAN_LEN + HEADER_LINE_WINDOW];

#[map]
pub static SCRATCH: PerCpuArray<HeadBuf> = PerCpuArray::with_max_entries(3, 0);
/// The request path as a `ROUTES` key, built off-stack (the TC program's frame must
/// leave room for the header scan's).
#[map]
pub static PATH_KEY: PerCpuArray<[u8; ROUTE_PATH_LEN]> = PerCpuArray::with_max_entries(2, 0);

/// A request being recorded, built off-stack before it is inserted into `FLOWS`.
#[map]
pub static PENDING: PerCpuArray<PendingRequest> = PerCpuArray::with_max_entries(2, 0);

/// `SCRATCH` slots, one per program, so ingress and egress never share a buffer.
pub const SCRATCH_XDP: u32 = 0;
pub const SCRATCH_TC: u32 = 1;
/// The TLS uprobes run in process context and can be interrupted by TC/XDP (softirq)
/// on the same CPU: they use their own slot of every per-CPU buffer.
pub const SCRATCH_TLS: u32 = 2;
/// `PATH_KEY` and `PENDING` slots: 0 for TC, 1 for the TLS uprobes.
pub const SLOT_TC: u32 = 0;
pub const SLOT_TLS: u32 = 1;

/// TLS requests awaiting their response, one per SSL object (`SSL *` in a process).
#[map]
pub static TLS_FLOWS: HashMap<TlsKey, PendingRequest> =
    HashMap::with_max_entries(TLS_FLOWS_MAX_ENTRIES, 0);

/// The socket fd each SSL object was last seen on (from the syscalls it makes).
#[map]
pub static TLS_FDS: LruHashMap<TlsKey, u32> = LruHashMap::with_max_entries(65_536, 0);

/// TLS ClientHellos seen on TC egress, per connection (client -> upstream): when.
/// Userspace compares them with the connections the uprobes attributed, so TLS that
/// the uprobes cannot see (another TLS library) is visible as such. Not LRU: nothing
/// is evicted silently; a full map is counted in `STATS[STAT_TLS_HELLO_MAP_FULL]`.
#[map]
pub static TLS_HELLOS: HashMap<FlowKey, u64> = HashMap::with_max_entries(65_536, 0);

/// Threads inside an SSL_read/SSL_write call: pid_tgid -> `SSL *`. LRU: an entry whose
/// return probe never ran (the thread died inside the call) must not fill the map.
#[map]
pub static TLS_INSIDE: LruHashMap<u64, u64> = LruHashMap::with_max_entries(16_384, 0);

/// SSL_read(_ex) calls in progress: pid_tgid -> where the plaintext will land (LRU,
/// for the same reason).
#[map]
pub static TLS_READS: LruHashMap<u64, TlsRead> = LruHashMap::with_max_entries(16_384, 0);

/// The arguments of an SSL_read(_ex) call, kept for its return.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct TlsRead {
    pub ssl: u64,
    pub buf: u64,
    /// `size_t *readbytes` of SSL_read_ex; 0 for SSL_read.
    pub readbytes: u64,
}

#[inline(always)]
pub fn count_stat(slot: u32) {
    if let Some(n) = STATS.get_ptr_mut(slot) {
        // SAFETY: per-CPU value; the programs do not nest on one CPU.
        unsafe { *n += 1 };
    }
}
