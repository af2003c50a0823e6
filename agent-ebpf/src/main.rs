//! ratewire's kernel programs.
//!
//! - `ratewire_tc_egress` (TC egress): a request head leaving marks its flow as
//!   awaiting a response, with its time, route and client retry count.
//! - `ratewire_xdp` (XDP ingress): a status line on an awaiting flow is counted per
//!   (upstream, status, route) and sent to userspace as an event; an RST or FIN on an
//!   awaiting flow is counted as a no-response outcome.
//!
//! - `ratewire_ssl_*` (uprobes on libssl) and `ratewire_tls_socket` (syscall
//!   tracepoints): the same pairing on the plaintext of OpenSSL connections.
//!
//! Nothing is ever dropped or rewritten: every packet passes.
#![cfg_attr(target_arch = "bpf", no_std)]
#![cfg_attr(target_arch = "bpf", no_main)]

#[cfg(target_arch = "bpf")]
mod headscan;
#[cfg(target_arch = "bpf")]
mod maps;
#[cfg(target_arch = "bpf")]
mod packet;
#[cfg(target_arch = "bpf")]
mod report;
#[cfg(target_arch = "bpf")]
mod tc;
#[cfg(target_arch = "bpf")]
mod tls;
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
