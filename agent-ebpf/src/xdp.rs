//! XDP on ingress: responses (and RST/FIN) arriving on flows that await a response.

use core::ffi::c_void;

use aya_ebpf::{
    bindings::xdp_action, helpers::gen::bpf_xdp_load_bytes, macros::xdp, programs::XdpContext,
};
use ratewire_common::{
    http::{self, HEAD_SCAN_LEN, STATUS_LINE_LEN},
    types::{
        FlowKey, ResponseKey, OUTCOME_CLOSED, OUTCOME_RESET, OUTCOME_RESPONSE,
        STAT_RESPONSE_MAP_FULL, STAT_UNPAIRED,
    },
};

use crate::{
    headscan::{self, Found},
    maps::{count_stat, FLOWS, RESPONSES, SCRATCH_XDP},
    packet::{tcp_segment, Packet, TcpSegment, TCP_FIN, TCP_RST},
    report::{self, Seen},
};

#[xdp]
pub fn ratewire_xdp(ctx: XdpContext) -> u32 {
    observe(&ctx);
    xdp_action::XDP_PASS
}

#[inline(always)]
fn observe(ctx: &XdpContext) {
    let pkt = Packet {
        start: ctx.data(),
        end: ctx.data_end(),
    };
    let Some(seg) = tcp_segment(&pkt) else { return };
    // Ingress carries the upstream's packets: the source is the upstream.
    let flow = FlowKey {
        client_addr: seg.dst_addr,
        upstream_addr: seg.src_addr,
        client_port: seg.dst_port,
        upstream_port: seg.src_port,
    };
    let status = pkt
        .bytes::<STATUS_LINE_LEN>(seg.payload_offset)
        .and_then(|head| http::parse_status_line(&head));
    if let Some(status) = status {
        if http::is_interim(status) {
            return; // 100 Continue and friends: the final response is still to come.
        }
        // Only a flow awaiting a response can carry one: this is what stops a body
        // segment that happens to start with `HTTP/1.1 429 ` from being counted.
        if FLOWS.get_ptr(&flow).is_none() {
            count_stat(STAT_UNPAIRED);
            return;
        }
        let found = scan_response_head(ctx, &seg);
        finish(&flow, status, OUTCOME_RESPONSE, found.as_ref());
        return;
    }
    let outcome = if seg.flags & TCP_RST != 0 {
        OUTCOME_RESET
    } else if seg.flags & TCP_FIN != 0 {
        OUTCOME_CLOSED
    } else {
        return;
    };
    finish(&flow, 0, outcome, None);
}

/// Copy the response head (bounded) into the scratch buffer and find its wanted lines.
#[inline(always)]
fn scan_response_head(ctx: &XdpContext, seg: &TcpSegment) -> Option<Found> {
    let len = seg.payload_len.min(HEAD_SCAN_LEN);
    if len < STATUS_LINE_LEN {
        return None;
    }
    let buf = headscan::clean_scratch(SCRATCH_XDP, len)?;
    // SAFETY: `buf` is this CPU's scratch slot, at least HEAD_SCAN_LEN bytes long.
    let loaded = unsafe {
        bpf_xdp_load_bytes(
            ctx.ctx,
            seg.payload_offset as u32,
            buf as *mut c_void,
            len as u32,
        )
    };
    (loaded == 0).then(|| headscan::scan(SCRATCH_XDP, len))
}

/// End the flow's pending request with `outcome`: claim it, count it, report it.
///
/// Userspace's timeout sweep may claim the same request at the same moment; only the
/// one whose delete succeeds counts it, so every request ends exactly once.
#[inline(always)]
fn finish(flow: &FlowKey, status: u16, outcome: u8, found: Option<&Found>) {
    let Some(pending) = FLOWS.get_ptr(flow) else {
        return;
    };
    // SAFETY: map value pointer valid until the entry is deleted below.
    let (route, tls) = unsafe { ((*pending).route, (*pending).tls) };
    let seen = Seen {
        flow,
        tls,
        tgid: 0,
        fd: 0,
    };
    let entry = report::reserve_event(pending, &seen, status, outcome, found);
    let claimed = FLOWS.remove(flow).is_ok();
    report::settle(entry, claimed);
    if !claimed {
        return;
    }
    count(&ResponseKey {
        addr: flow.upstream_addr,
        port: flow.upstream_port,
        status,
        route,
        tls,
        outcome,
    });
}

#[inline(always)]
fn count(key: &ResponseKey) {
    if let Some(count) = RESPONSES.get_ptr_mut(key) {
        // SAFETY: per-CPU value, and the programs do not nest on one CPU.
        unsafe { *count += 1 };
        return;
    }
    // New key. Per-CPU update touches only this CPU's slot, which is 0 here even if
    // another CPU inserted the key meanwhile, so writing 1 is exact. Failure = map full.
    if RESPONSES.insert(key, &1, 0).is_err() {
        count_stat(STAT_RESPONSE_MAP_FULL);
    }
}
