//! TLS through OpenSSL's own API: uprobes on `SSL_write`/`SSL_write_ex` see request
//! heads before encryption, uretprobes on `SSL_read`/`SSL_read_ex` see response heads
//! after decryption. The pairing is the wire's, keyed by the SSL object (`SSL *` in a
//! process) instead of the TCP flow: a request written marks the SSL object as awaiting
//! a response; the next final status line read on it ends the wait.
//!
//! libssl does not know (or tell) the peer's address. The thread's socket syscalls made
//! inside an SSL call (syscall tracepoints) tell which fd the SSL object uses; events
//! carry (tgid, fd) and userspace resolves the connection from /proc. The kernel counts
//! nothing for TLS in `RESPONSES` (it does not know the upstream): userspace counts the
//! events, so TLS counts are exact unless events are lost (counted in STATS).

use core::ffi::c_void;

use aya_ebpf::{
    helpers::{
        bpf_get_current_pid_tgid, bpf_ktime_get_ns, bpf_probe_read_kernel, bpf_probe_read_user,
        gen::bpf_probe_read_user as probe_read_user_raw,
    },
    macros::{raw_tracepoint, uprobe, uretprobe},
    programs::{ProbeContext, RawTracePointContext, RetProbeContext},
    EbpfContext as _,
};
use ratewire_common::{
    http::{self, HEADER_LINE_WINDOW, HEAD_SCAN_LEN, REQUEST_START_LEN, STATUS_LINE_LEN},
    types::{
        Event, FlowKey, TlsKey, CLIENT_RETRY_LINE, NO_FD, OUTCOME_CLOSED, OUTCOME_RESPONSE,
        OUTCOME_TLS_SOCKET, ROUTE_PATH_LEN, STAT_TLS_FLOW_MAP_FULL, STAT_TLS_PIPELINED,
        STAT_TLS_UNPAIRED,
    },
};

use crate::{
    headscan::{self, Found},
    maps::{
        count_stat, TlsRead, EVENTS, PATH_KEY, PENDING, ROUTES, SCRATCH_TLS, SLOT_TLS, TLS_FDS,
        TLS_FLOWS, TLS_INSIDE, TLS_READS,
    },
    report::{self, Seen},
};

/// Only insert when the key has no entry (`BPF_NOEXIST`).
const BPF_NOEXIST: u64 = 1;

const EMPTY_FLOW: FlowKey = FlowKey {
    client_addr: [0; 16],
    upstream_addr: [0; 16],
    client_port: 0,
    upstream_port: 0,
};

#[inline(always)]
fn tls_key(ssl: u64) -> TlsKey {
    TlsKey {
        tgid: (bpf_get_current_pid_tgid() >> 32) as u32,
        reserved: 0,
        ssl,
    }
}

/// `SSL_write(ssl, buf, num)` and `SSL_write_ex(ssl, buf, num, written)` entry.
#[uprobe]
pub fn ratewire_ssl_write(ctx: ProbeContext) -> u32 {
    let (Some(ssl), Some(buf), Some(num)) =
        (ctx.arg::<u64>(0), ctx.arg::<u64>(1), ctx.arg::<u32>(2))
    else {
        return 0;
    };
    let _ = TLS_INSIDE.insert(&bpf_get_current_pid_tgid(), &ssl, 0);
    observe_write(ssl, buf, num as usize);
    0
}

/// `SSL_write(_ex)` return: the thread is no longer inside an SSL call.
#[uretprobe]
pub fn ratewire_ssl_write_ret(_ctx: RetProbeContext) -> u32 {
    let _ = TLS_INSIDE.remove(&bpf_get_current_pid_tgid());
    0
}

#[inline(always)]
fn observe_write(ssl: u64, buf: u64, num: usize) {
    if num < REQUEST_START_LEN {
        return;
    }
    // Most writes are not request heads: look at the first bytes before copying more.
    // SAFETY: reads user memory through the helper, which faults safely.
    let Ok(first) = (unsafe { bpf_probe_read_user(buf as *const [u8; REQUEST_START_LEN]) }) else {
        return;
    };
    if http::parse_request_start(&first).is_none() {
        return;
    }
    let len = if num > HEAD_SCAN_LEN {
        HEAD_SCAN_LEN
    } else {
        num
    };
    let Some(scratch) = read_head(buf, len) else {
        return;
    };
    // SAFETY: filled just above; only the TLS programs use this slot on this CPU.
    let Some(head) = (unsafe { &*scratch }).get(..len) else {
        return;
    };
    let Some(start) = http::parse_request_start(head) else {
        return;
    };
    let Some(path) = PATH_KEY.get_ptr_mut(SLOT_TLS) else {
        return;
    };
    // SAFETY: this CPU's TLS slot.
    let path = unsafe { &mut *path };
    *path = [0; ROUTE_PATH_LEN];
    http::copy_path(head, start.target_offset, path);
    // SAFETY: the value is copied out at once.
    let route = unsafe { ROUTES.get(path) }.copied().unwrap_or(0);
    let found = headscan::scan(SCRATCH_TLS, len);

    let Some(pending) = PENDING.get_ptr_mut(SLOT_TLS) else {
        return;
    };
    // SAFETY: this CPU's TLS slot.
    let pending = unsafe { &mut *pending };
    // SAFETY: helper without preconditions.
    pending.request_ns = unsafe { bpf_ktime_get_ns() };
    pending.route = route;
    pending.method = start.method as u8;
    pending.tls = 1;
    pending.reserved = [0; 4];
    pending.client_retry_line = found.line(CLIENT_RETRY_LINE);
    let key = tls_key(ssl);
    if TLS_FLOWS.insert(&key, pending, BPF_NOEXIST).is_err() {
        // SAFETY: only checks presence.
        if unsafe { TLS_FLOWS.get(&key) }.is_some() {
            count_stat(STAT_TLS_PIPELINED);
        } else {
            count_stat(STAT_TLS_FLOW_MAP_FULL);
        }
    }
}

/// Copy `len` (<= HEAD_SCAN_LEN) bytes of user memory at `buf` into the TLS scratch slot.
#[inline(always)]
fn read_head(buf: u64, len: usize) -> Option<*mut crate::maps::HeadBuf> {
    let scratch = headscan::clean_scratch(SCRATCH_TLS, len)?;
    if len > HEAD_SCAN_LEN {
        return None;
    }
    // SAFETY: `scratch` holds at least HEAD_SCAN_LEN bytes; len <= HEAD_SCAN_LEN.
    let read =
        unsafe { probe_read_user_raw(scratch as *mut c_void, len as u32, buf as *const c_void) };
    (read == 0).then_some(scratch)
}

/// `SSL_free(ssl)`: the connection is over. A request still awaiting its response ends
/// as `closed`, and the SSL object's socket is forgotten, so an `SSL *` address reused
/// by a later connection starts clean.
#[uprobe]
pub fn ratewire_ssl_free(ctx: ProbeContext) -> u32 {
    let Some(ssl) = ctx.arg::<u64>(0) else {
        return 0;
    };
    let key = tls_key(ssl);
    finish(&key, 0, OUTCOME_CLOSED, None);
    let _ = TLS_FDS.remove(&key);
    0
}

/// `SSL_read(ssl, buf, num)` entry: remember where the plaintext will land.
#[uprobe]
pub fn ratewire_ssl_read(ctx: ProbeContext) -> u32 {
    enter_read(&ctx, false);
    0
}

/// `SSL_read_ex(ssl, buf, num, readbytes)` entry.
#[uprobe]
pub fn ratewire_ssl_read_ex(ctx: ProbeContext) -> u32 {
    enter_read(&ctx, true);
    0
}

#[inline(always)]
fn enter_read(ctx: &ProbeContext, ex: bool) {
    let (Some(ssl), Some(buf)) = (ctx.arg::<u64>(0), ctx.arg::<u64>(1)) else {
        return;
    };
    let readbytes = if ex {
        ctx.arg::<u64>(3).unwrap_or(0)
    } else {
        0
    };
    let id = bpf_get_current_pid_tgid();
    let _ = TLS_INSIDE.insert(&id, &ssl, 0);
    let _ = TLS_READS.insert(
        &id,
        &TlsRead {
            ssl,
            buf,
            readbytes,
        },
        0,
    );
}

/// `SSL_read(_ex)` return: a final status line at the start of what was read ends the
/// SSL object's pending request; SSL_read returning 0 (the peer closed) ends it as
/// `closed`.
#[uretprobe]
pub fn ratewire_ssl_read_ret(ctx: RetProbeContext) -> u32 {
    let id = bpf_get_current_pid_tgid();
    let _ = TLS_INSIDE.remove(&id);
    // SAFETY: copied out at once.
    let Some(read) = (unsafe { TLS_READS.get(&id) }).copied() else {
        return 0;
    };
    let _ = TLS_READS.remove(&id);
    let ret = ctx.ret::<i32>().unwrap_or(-1);
    let n = if read.readbytes == 0 {
        if ret == 0 {
            finish(&tls_key(read.ssl), 0, OUTCOME_CLOSED, None);
            return 0;
        }
        ret as i64
    } else if ret == 1 {
        // SAFETY: user memory read through the helper.
        match unsafe { bpf_probe_read_user(read.readbytes as *const u64) } {
            Ok(n) => n as i64,
            Err(_) => return 0,
        }
    } else {
        return 0; // SSL_read_ex failure: closed, or just "try again"; not told apart
    };
    if n < STATUS_LINE_LEN as i64 {
        return 0;
    }
    // SAFETY: user memory read through the helper.
    let Ok(first) = (unsafe { bpf_probe_read_user(read.buf as *const [u8; STATUS_LINE_LEN]) })
    else {
        return 0;
    };
    let Some(status) = http::parse_status_line(&first) else {
        return 0;
    };
    if http::is_interim(status) {
        return 0;
    }
    let key = tls_key(read.ssl);
    // SAFETY: only checks presence.
    if unsafe { TLS_FLOWS.get(&key) }.is_none() {
        count_stat(STAT_TLS_UNPAIRED);
        return 0;
    }
    let len = if n > HEAD_SCAN_LEN as i64 {
        HEAD_SCAN_LEN
    } else {
        n as usize
    };
    let found = read_head(read.buf, len).map(|_| headscan::scan(SCRATCH_TLS, len));
    finish(&key, status, OUTCOME_RESPONSE, found.as_ref());
    0
}

/// End the SSL object's pending request with `outcome`: claim it, report it. Only the
/// one whose delete succeeds (this, or userspace's timeout sweep) reports it.
#[inline(always)]
fn finish(key: &TlsKey, status: u16, outcome: u8, found: Option<&Found>) {
    let Some(pending) = TLS_FLOWS.get_ptr(key) else {
        return;
    };
    // SAFETY: copied out at once.
    let fd = unsafe { TLS_FDS.get(key) }.copied().unwrap_or(NO_FD);
    let seen = Seen {
        flow: &EMPTY_FLOW,
        tls: 1,
        tgid: key.tgid,
        fd,
    };
    let entry = report::reserve_event(pending, &seen, status, outcome, found);
    report::settle(entry, TLS_FLOWS.remove(key).is_ok());
}

/// x86_64 syscall numbers of the socket I/O libssl's BIOs make: read, write, sendto,
/// recvfrom, sendmsg, recvmsg.
const SYS_READ: u64 = 0;
const SYS_WRITE: u64 = 1;
const SYS_SENDTO: u64 = 44;
const SYS_RECVMSG: u64 = 47;
/// Offset of `di` (the first syscall argument) in x86_64 `struct pt_regs`.
const PT_REGS_DI: usize = 14 * 8;

/// Raw tracepoint `sys_enter` (no tracefs needed): a thread inside an SSL call making a
/// read/write/send/recv syscall on fd N means its SSL object uses socket N (libssl's
/// socket BIO, and custom BIOs such as curl's, make exactly these calls). A new or
/// changed attribution is told to userspace at once, so it can resolve the connection
/// while it is open.
#[raw_tracepoint(tracepoint = "sys_enter")]
pub fn ratewire_tls_socket(ctx: RawTracePointContext) -> i32 {
    let args = ctx.as_ptr() as *const u64;
    // SAFETY: raw tracepoint context: args[0] = struct pt_regs *, args[1] = syscall id.
    let (regs, nr) = unsafe { (*args, *args.add(1)) };
    if !(nr == SYS_READ || nr == SYS_WRITE || (SYS_SENDTO..=SYS_RECVMSG).contains(&nr)) {
        return 0;
    }
    let id = bpf_get_current_pid_tgid();
    // SAFETY: copied out at once.
    let Some(ssl) = (unsafe { TLS_INSIDE.get(&id) }).copied() else {
        return 0;
    };
    // SAFETY: kernel memory read through the helper.
    let Ok(fd) = (unsafe { bpf_probe_read_kernel((regs as usize + PT_REGS_DI) as *const u64) })
    else {
        return 0;
    };
    let fd = fd as u32;
    let key = tls_key(ssl);
    // SAFETY: copied out at once.
    if unsafe { TLS_FDS.get(&key) }.copied() == Some(fd) {
        return 0;
    }
    let _ = TLS_FDS.insert(&key, &fd, 0);
    // A hint only: if it does not fit, userspace resolves the socket at response time.
    let Some(entry) = EVENTS.reserve::<Event>(0) else {
        return 0;
    };
    let ev = entry.as_ptr() as *mut Event;
    // SAFETY: `ev` is the reserved slot; every field is written before submit.
    unsafe {
        (*ev).seen_ns = bpf_ktime_get_ns();
        (*ev).request_ns = 0;
        (*ev).flow = EMPTY_FLOW;
        (*ev).status = 0;
        (*ev).route = 0;
        (*ev).outcome = OUTCOME_TLS_SOCKET;
        (*ev).method = 0;
        (*ev).tls = 1;
        (*ev).reserved = [0; 5];
        (*ev).tgid = key.tgid;
        (*ev).fd = fd;
        let mut k = 0;
        while k <= CLIENT_RETRY_LINE {
            (*ev).lines[k] = [0; HEADER_LINE_WINDOW];
            k += 1;
        }
    }
    entry.submit(0);
    0
}
