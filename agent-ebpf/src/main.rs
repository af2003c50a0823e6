//! ratewire's kernel programs.
//!
//! `ratewire_xdp` (XDP, ingress) finds HTTP/1.x status lines at the start of TCP
//! payloads and counts them per (upstream address, upstream port, status) in a per-CPU
//! hash map. Nothing is ever dropped or rewritten: every packet gets `XDP_PASS`.
#![cfg_attr(target_arch = "bpf", no_std)]
#![cfg_attr(target_arch = "bpf", no_main)]

#[cfg(target_arch = "bpf")]
mod packet;
#[cfg(target_arch = "bpf")]
mod xdp;

#[cfg(target_arch = "bpf")]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    // The verifier rejects any program with a reachable panic path; this is never run.
    loop {}
}

#[cfg(target_arch = "bpf")]
#[link_section = "license"]
#[no_mangle]
static LICENSE: [u8; 4] = *b"GPL\0";

// On the host this crate's binary is an empty shell: the kernel programs only exist
// for bpfel-unknown-none (built by agent/build.rs through aya-build).
#[cfg(not(target_arch = "bpf"))]
fn main() {}
