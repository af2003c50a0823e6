//! XDP on ingress: count HTTP/1.x status lines per (upstream, status).

use aya_ebpf::{
    bindings::xdp_action,
    macros::{map, xdp},
    maps::{PerCpuArray, PerCpuHashMap},
    programs::XdpContext,
};
use ratewire_ebpf::{
    http::{self, STATUS_LINE_LEN},
    types::{ResponseKey, LOSS_RESPONSE_MAP_FULL, LOSS_SLOTS, RESPONSES_MAX_ENTRIES},
};

use crate::packet::{tcp_segment, Packet};

/// Responses seen, per (upstream, status, route, tls); summed over CPUs by userspace.
#[map]
static RESPONSES: PerCpuHashMap<ResponseKey, u64> =
    PerCpuHashMap::with_max_entries(RESPONSES_MAX_ENTRIES, 0);

/// Observations that could not be recorded, by cause (`LOSS_*`).
#[map]
static LOSSES: PerCpuArray<u64> = PerCpuArray::with_max_entries(LOSS_SLOTS, 0);

#[xdp]
pub fn ratewire_xdp(ctx: XdpContext) -> u32 {
    let pkt = Packet {
        start: ctx.data(),
        end: ctx.data_end(),
    };
    observe(&pkt);
    xdp_action::XDP_PASS
}

#[inline(always)]
fn observe(pkt: &Packet) {
    let Some(seg) = tcp_segment(pkt) else { return };
    let Some(head) = pkt.bytes::<STATUS_LINE_LEN>(seg.payload_offset) else {
        return;
    };
    let Some(status) = http::parse_status_line(&head) else {
        return;
    };
    if http::is_interim(status) {
        return; // 100 Continue and friends: the real response is still to come.
    }
    count_response(&ResponseKey {
        addr: seg.src_addr,
        port: seg.src_port,
        status,
        route: 0,
        tls: 0,
    });
}

#[inline(always)]
fn count_response(key: &ResponseKey) {
    if let Some(count) = RESPONSES.get_ptr_mut(key) {
        // SAFETY: per-CPU value, and XDP does not nest on one CPU.
        unsafe { *count += 1 };
        return;
    }
    // New key. Per-CPU update touches only this CPU's slot, which is 0 here even if
    // another CPU inserted the key meanwhile, so writing 1 is exact. Failure = map full.
    if RESPONSES.insert(key, &1, 0).is_err() {
        count_loss(LOSS_RESPONSE_MAP_FULL);
    }
}

#[inline(always)]
fn count_loss(slot: u32) {
    if let Some(lost) = LOSSES.get_ptr_mut(slot) {
        // SAFETY: per-CPU value, and XDP does not nest on one CPU.
        unsafe { *lost += 1 };
    }
}
