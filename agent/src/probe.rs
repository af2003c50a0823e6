//! The kernel side as userspace sees it: load the embedded eBPF object, fill the route
//! table, attach XDP (ingress) and TC (egress) to interfaces, and hand out the maps.
//!
//! Every attachment is a bpf_link owned by the loaded object (XDP links, TCX links):
//! dropping [`Probe`] detaches cleanly, and if the process dies (even `kill -9`) the
//! kernel closes the links' file descriptors and detaches them itself. Nothing is
//! pinned, so nothing outlives us.

use anyhow::{anyhow, bail, Context as _};
use aya::{
    maps::{HashMap, MapData, PerCpuArray, PerCpuHashMap, RingBuf},
    programs::{
        links::LinkOrder,
        tc::{SchedClassifier, TcAttachOptions, TcAttachType},
        RawTracePoint, UProbe, Xdp, XdpFlags,
    },
    Ebpf, EbpfLoader,
};
use log::{info, warn};
use ratewire_common::types::{
    FlowKey, PendingRequest, ResponseKey, TlsKey, ROUTE_PATH_LEN, STAT_SLOTS,
};
use std::{collections::HashSet, path::Path};

use crate::{netif, routes::RouteTable, tls};

/// The kernel programs, compiled by build.rs for bpfel-unknown-none.
pub const OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/ratewire-probes"));

/// Program names in [`OBJECT`].
pub const XDP_PROGRAM: &str = "ratewire_xdp";
pub const TC_PROGRAM: &str = "ratewire_tc_egress";
pub const TLS_SOCKET_PROGRAM: &str = "ratewire_tls_socket";

/// One hook the probe is attached to.
#[derive(Clone, Debug)]
pub struct Attachment {
    pub iface: String,
    /// `native` or `generic` (XDP ingress), `tcx` (TC egress).
    pub mode: &'static str,
}

/// How to load the probe.
pub struct ProbeConfig<'a> {
    pub ifaces: &'a [String],
    pub routes: &'a RouteTable,
    /// Size of the events ring buffer: a power of two, a multiple of the page size.
    pub events_buffer_bytes: u32,
    /// Load the TLS uprobes (attached per library with [`Probe::attach_tls_lib`]).
    pub tls: bool,
}

/// One libssl function the TLS uprobes are attached to (or failed to attach to).
#[derive(Clone, Debug)]
pub struct TlsAttachment {
    pub lib: String,
    pub function: &'static str,
    /// Why attaching failed (`None`: attached).
    pub error: Option<String>,
}

/// The loaded programs, their attachments and their maps.
pub struct Probe {
    /// Owns the programs and their links; dropping it detaches everything.
    ebpf: Ebpf,
    pub attachments: Vec<Attachment>,
    /// Whether the TLS programs are loaded.
    tls: bool,
    /// Libraries (device, inode) the TLS uprobes were tried on.
    tls_libs: HashSet<(u64, u64)>,
}

impl Probe {
    /// Load the eBPF object and attach both programs to every interface.
    pub fn attach(config: &ProbeConfig) -> anyhow::Result<Probe> {
        for iface in config.ifaces {
            netif::ensure_exists(iface)?;
        }
        raise_memlock_limit();
        let mut ebpf = EbpfLoader::new()
            .set_max_entries("EVENTS", config.events_buffer_bytes)
            .load(OBJECT)
            .map_err(|e| explain_privileges(anyhow!(e)))
            .context("loading ratewire's eBPF object")?;
        start_kernel_log(&mut ebpf);
        fill_routes(&mut ebpf, config.routes)?;

        let mut attachments = Vec::new();
        let xdp: &mut Xdp = program(&mut ebpf, XDP_PROGRAM)?.try_into()?;
        xdp.load()
            .map_err(|e| explain_privileges(anyhow!(e)))
            .context("the kernel refused the XDP program")?;
        for iface in config.ifaces {
            let mode = attach_xdp(xdp, iface)?;
            info!("attached XDP ingress to {iface} ({mode} mode)");
            attachments.push(Attachment {
                iface: iface.clone(),
                mode,
            });
        }
        let tc: &mut SchedClassifier = program(&mut ebpf, TC_PROGRAM)?.try_into()?;
        tc.load().context("the kernel refused the TC program")?;
        for iface in config.ifaces {
            // TCX (Linux >= 6.6) attaches through a bpf_link, like XDP: no qdisc to
            // create or clean up, and nothing left behind if we die.
            tc.attach_with_options(
                iface,
                TcAttachType::Egress,
                TcAttachOptions::TcxOrder(LinkOrder::default()),
            )
            .with_context(|| format!("cannot attach TC egress (TCX, Linux >= 6.6) to '{iface}'"))?;
            info!("attached TC egress to {iface} (tcx)");
            attachments.push(Attachment {
                iface: iface.clone(),
                mode: "tcx",
            });
        }
        if config.tls {
            load_tls(&mut ebpf)?;
        }
        Ok(Probe {
            ebpf,
            attachments,
            tls: config.tls,
            tls_libs: HashSet::new(),
        })
    }

    /// Attach the TLS uprobes to the libssl at `path`, unless that file (inode) was
    /// already tried. Returns what happened per function (empty: nothing new).
    pub fn attach_tls_lib(&mut self, path: &Path) -> Vec<TlsAttachment> {
        let Some(id) = tls::file_id(path) else {
            return Vec::new();
        };
        if !self.tls || !self.tls_libs.insert(id) {
            return Vec::new();
        }
        let lib = path.display().to_string();
        let mut results = Vec::new();
        for (function, entry, ret) in tls::FUNCTIONS {
            let mut attach = |name: &str| -> anyhow::Result<()> {
                let prog: &mut UProbe = program(&mut self.ebpf, name)?.try_into()?;
                prog.attach(Some(function), 0, path, None)?;
                Ok(())
            };
            let error = attach(entry)
                .and_then(|()| ret.map_or(Ok(()), &mut attach))
                .err()
                .map(|e| format!("{e:#}"));
            results.push(TlsAttachment {
                lib: lib.clone(),
                function,
                error,
            });
        }
        results
    }

    /// Per loaded program: (name, runs, total run time in ns). Counted by the kernel
    /// only while BPF run-time stats are enabled (`aya::sys::enable_stats`).
    pub fn program_stats(&self) -> Vec<(String, u64, u64)> {
        self.ebpf
            .programs()
            .filter_map(|(name, prog)| {
                let info = prog.info().ok()?;
                Some((
                    name.to_owned(),
                    info.run_count(),
                    info.run_time().as_nanos() as u64,
                ))
            })
            .collect()
    }

    /// The TLS requests awaiting a response and the sockets of SSL objects (for the
    /// timeout sweep). Call once.
    pub fn take_tls_maps(&mut self) -> anyhow::Result<(TlsFlows, TlsFds, TlsHellos)> {
        Ok((
            HashMap::try_from(take_map(&mut self.ebpf, "TLS_FLOWS")?)?,
            HashMap::try_from(take_map(&mut self.ebpf, "TLS_FDS")?)?,
            HashMap::try_from(take_map(&mut self.ebpf, "TLS_HELLOS")?)?,
        ))
    }

    /// Hand the counter maps to their reader (the metrics collector). Call once.
    pub fn take_counters(&mut self) -> anyhow::Result<Counters> {
        Ok(Counters {
            responses: PerCpuHashMap::try_from(take_map(&mut self.ebpf, "RESPONSES")?)?,
            stats: PerCpuArray::try_from(take_map(&mut self.ebpf, "STATS")?)?,
        })
    }

    /// The requests awaiting a response (for the timeout sweep). Call once.
    pub fn take_flows(&mut self) -> anyhow::Result<Flows> {
        Ok(HashMap::try_from(take_map(&mut self.ebpf, "FLOWS")?)?)
    }

    /// The events ring buffer. Call once.
    pub fn take_events(&mut self) -> anyhow::Result<RingBuf<MapData>> {
        Ok(RingBuf::try_from(take_map(&mut self.ebpf, "EVENTS")?)?)
    }
}

pub type Flows = HashMap<MapData, FlowKey, PendingRequest>;
pub type TlsFlows = HashMap<MapData, TlsKey, PendingRequest>;
pub type TlsFds = HashMap<MapData, TlsKey, u32>;
pub type TlsHellos = HashMap<MapData, FlowKey, u64>;

/// Load the TLS programs and attach the socket-attribution tracepoints (libraries are
/// attached later, one by one).
fn load_tls(ebpf: &mut Ebpf) -> anyhow::Result<()> {
    let mut names: Vec<&str> = tls::FUNCTIONS
        .iter()
        .flat_map(|(_, entry, ret)| [Some(*entry), *ret])
        .flatten()
        .collect();
    names.sort_unstable();
    names.dedup();
    for name in names {
        let prog: &mut UProbe = program(ebpf, name)?.try_into()?;
        prog.load()
            .with_context(|| format!("the kernel refused the TLS uprobe {name}"))?;
    }
    let tp: &mut RawTracePoint = program(ebpf, TLS_SOCKET_PROGRAM)?.try_into()?;
    tp.load()
        .context("the kernel refused the TLS socket tracepoint program")?;
    tp.attach("sys_enter")
        .context("cannot attach the TLS socket program to raw tracepoint sys_enter")?;
    Ok(())
}

fn program<'a>(ebpf: &'a mut Ebpf, name: &str) -> anyhow::Result<&'a mut aya::programs::Program> {
    ebpf.program_mut(name)
        .ok_or_else(|| anyhow!("the eBPF object has no program {name}"))
}

fn take_map(ebpf: &mut Ebpf, name: &str) -> anyhow::Result<aya::maps::Map> {
    ebpf.take_map(name)
        .ok_or_else(|| anyhow!("the eBPF object has no map {name} (or it was taken)"))
}

fn fill_routes(ebpf: &mut Ebpf, routes: &RouteTable) -> anyhow::Result<()> {
    let mut map: HashMap<_, [u8; ROUTE_PATH_LEN], u16> = HashMap::try_from(
        ebpf.map_mut("ROUTES")
            .ok_or_else(|| anyhow!("the eBPF object has no map ROUTES"))?,
    )?;
    for (path, id) in routes.kernel_entries() {
        map.insert(path, id, 0).context("filling the route table")?;
    }
    Ok(())
}

/// Native mode where the driver supports it (veth, most NICs), generic otherwise (`lo`).
fn attach_xdp(xdp: &mut Xdp, iface: &str) -> anyhow::Result<&'static str> {
    let native_err = match xdp.attach(iface, XdpFlags::DRV_MODE) {
        Ok(_) => return Ok("native"),
        Err(e) => e,
    };
    match xdp.attach(iface, XdpFlags::SKB_MODE) {
        Ok(_) => Ok("generic"),
        Err(generic_err) => bail!(
            "cannot attach XDP to '{iface}': {generic_err:#} (native mode: {native_err:#}); \
             is another XDP program attached? (`bpftool net show dev {iface}`)"
        ),
    }
}

/// The kernel counters, summed over CPUs when read.
pub struct Counters {
    responses: PerCpuHashMap<MapData, ResponseKey, u64>,
    stats: PerCpuArray<MapData, u64>,
}

/// The counters at one instant.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// Outcomes per (upstream, status, route, tls, outcome); keys are unique.
    pub responses: Vec<(ResponseKey, u64)>,
    /// `STAT_*` slots summed over CPUs.
    pub stats: [u64; STAT_SLOTS as usize],
}

impl Counters {
    pub fn snapshot(&self) -> anyhow::Result<Snapshot> {
        let mut snapshot = Snapshot::default();
        for entry in self.responses.iter() {
            let (key, per_cpu) = entry.context("reading the RESPONSES map")?;
            snapshot.responses.push((key, per_cpu.iter().sum()));
        }
        for (slot, total) in snapshot.stats.iter_mut().enumerate() {
            *total = self
                .stats
                .get(&(slot as u32), 0)
                .context("reading the STATS map")?
                .iter()
                .sum();
        }
        Ok(snapshot)
    }

    /// One `STAT_*` slot, summed over CPUs.
    pub fn stat(&self, slot: u32) -> anyhow::Result<u64> {
        Ok(self
            .stats
            .get(&slot, 0)
            .context("reading the STATS map")?
            .iter()
            .sum())
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
