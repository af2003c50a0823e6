//! Finding the header lines ratewire reads, in the kernel: a `bpf_loop` callback visits
//! each byte of the head and, at each LF, asks the shared parser's `match_header`
//! whether the next line is one of the few wanted headers; if so it remembers where the
//! line starts. The programs forward those line windows (and no other byte of the head)
//! in their events, and userspace reads the values with the shared `read_line`.
//!
//! Why not parse the values here: the verifier explores value parsing per byte position
//! and exceeds its 1M-instruction budget; name matching in a callback verifies in well
//! under 200k. The scratch buffer is zeroed before a head is copied in, so a window that
//! runs past the head reads zeros, exactly as userspace pads its windows.

use core::ffi::c_void;

use aya_ebpf::helpers::gen::bpf_loop;
use ratewire_common::http::{
    match_header, LineWindow, HEADER_LINE_WINDOW, HEAD_SCAN_LEN, WANTED_HEADERS,
};

use crate::maps::{HeadBuf, SCRATCH};

/// This CPU's scratch slot, ready for a head of `len` bytes to be copied in: the
/// window after the head is zeroed (the head itself is overwritten by the copy), so
/// line windows that run past the head read zeros. Zeroing 64 bytes instead of the
/// whole buffer keeps the per-request cost down.
#[inline(always)]
pub fn clean_scratch(slot: u32, len: usize) -> Option<*mut HeadBuf> {
    let buf = SCRATCH.get_ptr_mut(slot)?;
    if len > HEAD_SCAN_LEN {
        return None;
    }
    // SAFETY: this CPU's slot of a per-CPU array (the programs do not nest on a CPU);
    // len <= HEAD_SCAN_LEN, so the 64 bytes at len are inside the buffer.
    unsafe {
        let tail = (buf as *mut u8).add(len) as *mut [u64; HEADER_LINE_WINDOW / 8];
        core::ptr::write_unaligned(tail, [0; HEADER_LINE_WINDOW / 8]);
    }
    Some(buf)
}

/// Where each wanted header's line starts in the head (0 = not found; a header line
/// never starts at 0, which is the first line).
pub struct Found {
    pub line_start: [u16; WANTED_HEADERS],
    slot: u32,
}

/// Find the wanted header lines of the head held in `SCRATCH[slot][..len]`.
#[inline(always)]
pub fn scan(slot: u32, len: usize) -> Found {
    let mut found = Found {
        line_start: [0; WANTED_HEADERS],
        slot,
    };
    // SAFETY: the callback only touches `found` during this call.
    unsafe {
        bpf_loop(
            len.min(HEAD_SCAN_LEN) as u32,
            find_step as *mut c_void,
            &mut found as *mut Found as *mut c_void,
            0,
        );
    }
    found
}

impl Found {
    /// The line window of wanted header `k`, zeros when it was not found.
    #[inline(always)]
    pub fn line(&self, k: usize) -> LineWindow {
        let start = match self.line_start.get(k) {
            Some(&s) if s != 0 => s as usize,
            _ => return [0; HEADER_LINE_WINDOW],
        };
        SCRATCH
            .get(self.slot)
            .and_then(|buf| window(buf, start))
            .copied()
            .unwrap_or([0; HEADER_LINE_WINDOW])
    }
}

extern "C" fn find_step(index: u64, ctx: *mut c_void) -> i64 {
    // SAFETY: `ctx` is the `Found` passed to bpf_loop by `scan`.
    let found = unsafe { &mut *(ctx as *mut Found) };
    let Some(buf) = SCRATCH.get(found.slot) else {
        return 1;
    };
    let i = index as usize & (HEAD_SCAN_LEN - 1);
    if buf[i] != b'\n' {
        return 0;
    }
    let Some(line) = window(buf, i + 1) else {
        return 1;
    };
    if matches!(line[0], b'\r' | b'\n' | 0) {
        return 1; // blank line: end of head
    }
    if let Some((k, _)) = match_header(line) {
        if let Some(start) = found.line_start.get_mut(k) {
            *start = (i + 1) as u16;
        }
    }
    0
}

#[inline(always)]
fn window(buf: &HeadBuf, start: usize) -> Option<&LineWindow> {
    buf.get(start..start + HEADER_LINE_WINDOW)?.try_into().ok()
}
