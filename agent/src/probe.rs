//! The kernel side as userspace sees it: load the embedded eBPF object, attach the XDP
//! program to interfaces, and read its counters.
//!
//! Every attachment is a bpf_link owned by the loaded object: dropping [`Probe`] detaches
//! cleanly, and if the process dies (even `kill -9`) the kernel closes the links' file
//! descriptors and detaches them itself. Nothing is pinned, so nothing outlives us.

use std::fmt;

use anyhow::{anyhow, bail, Context as _};
use aya::{
    maps::{MapData, PerCpuArray, PerCpuHashMap},
    programs::{Xdp, XdpFlags},
    Ebpf,
};
use log::{info, warn};
use ratewire_ebpf::types::{ResponseKey, LOSS_RESPONSE_MAP_FULL};

use crate::netif;

/// The kernel programs, compiled by build.rs for bpfel-unknown-none.
pub const OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/ratewire-probes"));

/// Name of the XDP ingress program in [`OBJECT`].
pub const XDP_PROGRAM: &str = "ratewire_xdp";

/// How XDP runs on an interface: in the driver, or in the generic (skb) path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum XdpMode {
    Native,
    Generic,
}

impl fmt::Display for XdpMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            XdpMode::Native => "native",
            XdpMode::Generic => "generic",
        })
    }
}

/// One interface the XDP program is attached to.
#[derive(Clone, Debug)]
pub struct Attachment {
    pub iface: String,
    pub mode: XdpMode,
}

/// The loaded programs, their attachments and their maps.
pub struct Probe {
    /// Owns the programs and their links; dropping it detaches everything.
    ebpf: Ebpf,
    pub attachments: Vec<Attachment>,
}

impl Probe {
    /// Load the eBPF object and attach XDP to every interface in `ifaces`.
    pub fn attach(ifaces: &[String]) -> anyhow::Result<Probe> {
        for iface in ifaces {
            netif::ensure_exists(iface)?;
        }
        raise_memlock_limit();
        let mut ebpf = Ebpf::load(OBJECT)
            .map_err(|e| explain_privileges(anyhow!(e)))
            .context("loading ratewire's eBPF object")?;
        start_kernel_log(&mut ebpf);

        let xdp: &mut Xdp = ebpf
            .program_mut(XDP_PROGRAM)
            .ok_or_else(|| anyhow!("the eBPF object has no program {XDP_PROGRAM}"))?
            .try_into()?;
        xdp.load()
            .map_err(|e| explain_privileges(anyhow!(e)))
            .context("the kernel refused the XDP program")?;

        let mut attachments = Vec::with_capacity(ifaces.len());
        for iface in ifaces {
            let mode = attach_xdp(xdp, iface)?;
            info!("attached XDP to {iface} ({mode} mode)");
            attachments.push(Attachment {
                iface: iface.clone(),
                mode,
            });
        }
        Ok(Probe { ebpf, attachments })
    }

    /// Hand the counter maps to their reader (the metrics collector). Call once.
    pub fn take_counters(&mut self) -> anyhow::Result<Counters> {
        Counters::take_from(&mut self.ebpf)
    }
}

/// Native mode where the driver supports it (veth, most NICs), generic otherwise (`lo`).
fn attach_xdp(xdp: &mut Xdp, iface: &str) -> anyhow::Result<XdpMode> {
    let native_err = match xdp.attach(iface, XdpFlags::DRV_MODE) {
        Ok(_) => return Ok(XdpMode::Native),
        Err(e) => e,
    };
    match xdp.attach(iface, XdpFlags::SKB_MODE) {
        Ok(_) => Ok(XdpMode::Generic),
        Err(generic_err) => bail!(
            "cannot attach XDP to '{iface}': {generic_err:#} (native mode: {native_err:#}); \
             is another XDP program attached? (`bpftool net show dev {iface}`)"
        ),
    }
}

/// The kernel counters, summed over CPUs when read.
pub struct Counters {
    responses: PerCpuHashMap<MapData, ResponseKey, u64>,
    losses: PerCpuArray<MapData, u64>,
}

/// The counters at one instant.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// Responses per (upstream, status, route, tls); keys are unique.
    pub responses: Vec<(ResponseKey, u64)>,
    /// Responses not counted because the responses map was full.
    pub response_map_full: u64,
}

impl Counters {
    fn take_from(ebpf: &mut Ebpf) -> anyhow::Result<Counters> {
        let mut take = |name: &str| {
            ebpf.take_map(name)
                .ok_or_else(|| anyhow!("the eBPF object has no map {name}"))
        };
        Ok(Counters {
            responses: PerCpuHashMap::try_from(take("RESPONSES")?)?,
            losses: PerCpuArray::try_from(take("LOSSES")?)?,
        })
    }

    pub fn snapshot(&self) -> anyhow::Result<Snapshot> {
        let mut responses = Vec::new();
        for entry in self.responses.iter() {
            let (key, per_cpu) = entry.context("reading the RESPONSES map")?;
            responses.push((key, per_cpu.iter().sum()));
        }
        let response_map_full = self
            .losses
            .get(&LOSS_RESPONSE_MAP_FULL, 0)
            .context("reading the LOSSES map")?
            .iter()
            .sum();
        Ok(Snapshot {
            responses,
            response_map_full,
        })
    }
}

/// Kernels before 5.11 charge BPF maps to RLIMIT_MEMLOCK; lifting it is harmless after.
fn raise_memlock_limit() {
    let unlimited = libc::rlimit {
        rlim_cur: libc::RLIM_INFINITY,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: plain syscall with a valid pointer.
    if unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &unlimited) } != 0 {
        log::debug!("could not lift RLIMIT_MEMLOCK (fine on kernels >= 5.11)");
    }
}

/// Forward the programs' rare-path log lines (aya-log) to our logger.
fn start_kernel_log(ebpf: &mut Ebpf) {
    if let Err(e) = aya_log::EbpfLogger::init(ebpf) {
        warn!("kernel-side log unavailable: {e}");
    }
}

/// Say what to do when the failure is a missing privilege rather than a kernel refusal.
fn explain_privileges(err: anyhow::Error) -> anyhow::Error {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let denied = err.chain().any(|cause| {
        let text = cause.to_string();
        text.contains("Operation not permitted") || text.contains("Permission denied")
    });
    if denied && !root {
        err.context(
            "permission denied: ratewire run needs root (or CAP_BPF, CAP_NET_ADMIN and \
             CAP_PERFMON); run it with sudo",
        )
    } else {
        err
    }
}
