//! TC egress: request heads leaving mark their flow as awaiting a response.

use core::ffi::c_void;

use aya_ebpf::{
    bindings::TC_ACT_UNSPEC,
    helpers::{bpf_ktime_get_ns, gen::bpf_skb_load_bytes},
    macros::classifier,
    programs::TcContext,
};
use aya_log_ebpf::warn;
use ratewire_common::{
    http::{self, HEAD_SCAN_LEN, REQUEST_START_LEN},
    types::{
        FlowKey, CLIENT_RETRY_LINE, ROUTE_PATH_LEN, STAT_FLOW_MAP_FULL, STAT_PIPELINED,
        STAT_TLS_HELLO_MAP_FULL,
    },
};

use crate::{
    headscan,
    maps::{count_stat, FLOWS, PATH_KEY, PENDING, ROUTES, SCRATCH_TC, SLOT_TC, TLS_HELLOS},
    packet::{tcp_segment, Packet, TcpSegment},
};

/// Only insert when the flow has no pending request (`BPF_NOEXIST`).
const BPF_NOEXIST: u64 = 1;

#[classifier]
pub fn ratewire_tc_egress(ctx: TcContext) -> i32 {
    observe_request(&ctx);
    TC_ACT_UNSPEC // let the next program (or the default action) decide
}

/// A TLS connection starting: remember it for the unobserved-TLS comparison.
#[inline(always)]
fn note_client_hello(seg: &TcpSegment) {
    let flow = FlowKey {
        client_addr: seg.src_addr,
        upstream_addr: seg.dst_addr,
        client_port: seg.src_port,
        upstream_port: seg.dst_port,
    };
    // SAFETY: helper without preconditions.
    let now = unsafe { bpf_ktime_get_ns() };
    if TLS_HELLOS.insert(&flow, &now, 0).is_err() {
        count_stat(STAT_TLS_HELLO_MAP_FULL);
    }
}

#[inline(always)]
fn observe_request(ctx: &TcContext) {
    let pkt = Packet {
        start: ctx.data(),
        end: ctx.data_end(),
    };
    let Some(seg) = tcp_segment(&pkt) else { return };
    // The payload may live in page fragments past the linear part: copy it with the
    // helper, bounded, rather than reading packet memory directly.
    let available = (ctx.len() as usize).saturating_sub(seg.payload_offset);
    let len = available.min(HEAD_SCAN_LEN);
    if len < REQUEST_START_LEN {
        return;
    }
    // Most segments are not request heads: look at the first bytes before copying more.
    let mut first = [0u8; REQUEST_START_LEN];
    // SAFETY: `first` is REQUEST_START_LEN bytes; len >= REQUEST_START_LEN.
    let loaded = unsafe {
        bpf_skb_load_bytes(
            ctx.skb.skb as *const c_void,
            seg.payload_offset as u32,
            first.as_mut_ptr() as *mut c_void,
            REQUEST_START_LEN as u32,
        )
    };
    if loaded != 0 {
        return;
    }
    if http::parse_request_start(&first).is_none() {
        if http::is_tls_client_hello(&first) {
            note_client_hello(&seg);
        }
        return;
    }
    let Some(buf) = headscan::clean_scratch(SCRATCH_TC, len) else {
        return;
    };
    // SAFETY: `buf` is this CPU's scratch slot, at least HEAD_SCAN_LEN bytes long.
    let loaded = unsafe {
        bpf_skb_load_bytes(
            ctx.skb.skb as *const c_void,
            seg.payload_offset as u32,
            buf as *mut c_void,
            len as u32,
        )
    };
    if loaded != 0 {
        return;
    }
    // SAFETY: filled just above; only this program uses the TC slot on this CPU.
    let Some(head) = (unsafe { &*buf }).get(..len) else {
        return;
    };
    let Some(start) = http::parse_request_start(head) else {
        return;
    };
    let Some(path) = PATH_KEY.get_ptr_mut(SLOT_TC) else {
        return;
    };
    // SAFETY: this CPU's slot; the programs do not nest on one CPU.
    let path = unsafe { &mut *path };
    *path = [0; ROUTE_PATH_LEN];
    http::copy_path(head, start.target_offset, path);
    // SAFETY: the value is copied out at once.
    let route = unsafe { ROUTES.get(path) }.copied().unwrap_or(0);
    let found = headscan::scan(SCRATCH_TC, len);

    let flow = FlowKey {
        client_addr: seg.src_addr,
        upstream_addr: seg.dst_addr,
        client_port: seg.src_port,
        upstream_port: seg.dst_port,
    };
    // Built off-stack: with its 64-byte header line it would not fit beside the scan.
    let Some(pending) = PENDING.get_ptr_mut(SLOT_TC) else {
        return;
    };
    // SAFETY: this CPU's slot; the programs do not nest on one CPU.
    let pending = unsafe { &mut *pending };
    // SAFETY: helper without preconditions.
    pending.request_ns = unsafe { bpf_ktime_get_ns() };
    pending.route = route;
    pending.method = start.method as u8;
    pending.tls = 0;
    pending.reserved = [0; 4];
    pending.client_retry_line = found.line(CLIENT_RETRY_LINE);
    if FLOWS.insert(&flow, pending, BPF_NOEXIST).is_err() {
        // SAFETY: only checks presence.
        if unsafe { FLOWS.get(&flow) }.is_some() {
            count_stat(STAT_PIPELINED);
        } else {
            count_stat(STAT_FLOW_MAP_FULL);
            warn!(ctx, "ratewire: flow table full; request not tracked");
        }
    }
}
