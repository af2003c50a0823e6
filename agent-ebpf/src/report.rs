//! Reporting the end of a pending request, shared by XDP (the wire) and the TLS
//! uretprobe: the event is written straight into the ring buffer (no 384-byte copy on
//! the stack) before the request is claimed, and published only if the claim wins.

use aya_ebpf::{helpers::bpf_ktime_get_ns, maps::ring_buf::RingBufEntry};
use ratewire_common::{
    http::HEADER_LINE_WINDOW,
    types::{Event, FlowKey, PendingRequest, CLIENT_RETRY_LINE, STAT_EVENTS_LOST},
};

use crate::{
    headscan::Found,
    maps::{count_stat, EVENTS},
};

/// Where the outcome was seen: a TCP flow on the wire, or a process's TLS socket.
pub struct Seen<'a> {
    pub flow: &'a FlowKey,
    pub tls: u8,
    pub tgid: u32,
    pub fd: u32,
}

/// Reserve and fill the event for `pending` ending with `status`/`outcome`, with the
/// response's wanted header lines from `found`. `None` when the ring buffer is full.
#[inline(always)]
pub fn reserve_event(
    pending: *const PendingRequest,
    seen: &Seen,
    status: u16,
    outcome: u8,
    found: Option<&Found>,
) -> Option<RingBufEntry<Event>> {
    let entry = EVENTS.reserve::<Event>(0)?;
    let ev = entry.as_ptr() as *mut Event;
    // SAFETY: `ev` is the reserved slot and `pending` a live map value (the caller has
    // not deleted it yet); every field is written before the event is submitted.
    unsafe {
        (*ev).seen_ns = bpf_ktime_get_ns();
        (*ev).request_ns = (*pending).request_ns;
        (*ev).flow = *seen.flow;
        (*ev).status = status;
        (*ev).route = (*pending).route;
        (*ev).outcome = outcome;
        (*ev).method = (*pending).method;
        (*ev).tls = seen.tls;
        (*ev).reserved = [0; 5];
        (*ev).tgid = seen.tgid;
        (*ev).fd = seen.fd;
        let mut k = 0;
        while k < CLIENT_RETRY_LINE {
            (*ev).lines[k] = match found {
                Some(found) => found.line(k),
                None => [0; HEADER_LINE_WINDOW],
            };
            k += 1;
        }
        (*ev).lines[CLIENT_RETRY_LINE] = (*pending).client_retry_line;
    }
    Some(entry)
}

/// Publish the event if this program claimed the request (its delete succeeded),
/// discard it otherwise; a claimed request whose event did not fit is counted lost.
#[inline(always)]
pub fn settle(entry: Option<RingBufEntry<Event>>, claimed: bool) {
    match (entry, claimed) {
        (Some(entry), true) => entry.submit(0),
        (Some(entry), false) => entry.discard(0),
        (None, true) => count_stat(STAT_EVENTS_LOST),
        (None, false) => {}
    }
}
