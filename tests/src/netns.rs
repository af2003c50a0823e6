//! The netns testbed: a network namespace joined to the root namespace by a veth
//! pair, so an upstream in the namespace sends its responses into the host side of
//! the pair, where the agent's XDP program sees them on ingress. Real kernel, real
//! veth: this is how the agent meets traffic in production.
//!
//! Everything a testbed creates is named with the `rwt` prefix and deleted on drop,
//! also when the test panics; [`reap_stale`] removes what a crashed run left behind.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use anyhow::{bail, Context, Result};
use serde::Deserialize;

use crate::cmd::{self, ip};
use crate::proc::Proc;

/// Namespaces are `rwt-<pid>-<n>`: the pid tells the reaper whether the owner lives.
const NS_PREFIX: &str = "rwt-";

/// A namespace, its veth pair and addresses; all deleted on drop.
pub struct Testbed {
    ns: String,
    /// The `N` in `rwt<N>h` and in the `10.231.N.0/24` and `fd00:231:N::/64` subnets.
    index: u8,
    /// Set once the veth pair exists, so a half-built testbed is cleaned up too.
    host_iface: Option<String>,
    /// Pids started by `spawn_in_ns`: killed on drop even if `ip netns exec` had not
    /// yet entered the namespace (then `ip netns pids` would not list them).
    spawned: std::sync::Mutex<Vec<u32>>,
}

impl Testbed {
    /// Create a testbed. Errors say which capability is missing (root, iproute2,
    /// netns, veth, IPv6): a test without its testbed must fail, never skip.
    pub fn new() -> Result<Testbed> {
        preflight()?;
        reap_stale().context("removing testbeds left by earlier runs")?;
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let ns = format!(
            "{NS_PREFIX}{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        ip(&["netns", "add", &ns]).with_context(|| {
            format!("creating network namespace {ns} (kernel without CONFIG_NET_NS, or /run/netns not writable?)")
        })?;
        let mut bed = Testbed {
            ns,
            index: 0,
            host_iface: None,
            spawned: Default::default(),
        };
        bed.create_veth()?;
        bed.configure()?;
        Ok(bed)
    }

    /// Name of the namespace.
    pub fn ns(&self) -> &str {
        &self.ns
    }

    /// Root-namespace end of the veth pair: where the agent attaches.
    pub fn host_iface(&self) -> &str {
        self.host_iface
            .as_deref()
            .expect("veth exists once new() returned")
    }

    /// Namespace end of the veth pair.
    pub fn ns_iface(&self) -> String {
        format!("rwt{}n", self.index)
    }

    pub fn host_v4(&self) -> Ipv4Addr {
        Ipv4Addr::new(10, 231, self.index, 1)
    }

    pub fn peer_v4(&self) -> Ipv4Addr {
        Ipv4Addr::new(10, 231, self.index, 2)
    }

    pub fn host_v6(&self) -> Ipv6Addr {
        Ipv6Addr::new(0xfd00, 0x231, self.index.into(), 0, 0, 0, 0, 1)
    }

    pub fn peer_v6(&self) -> Ipv6Addr {
        Ipv6Addr::new(0xfd00, 0x231, self.index.into(), 0, 0, 0, 0, 2)
    }

    /// Start `cmd` inside the namespace (`ip netns exec`, which execs it: the pid is
    /// the command's own). It is also killed when the testbed is dropped.
    pub fn spawn_in_ns(&self, name: &str, cmd: &Command) -> Result<Proc> {
        let mut wrapped = Command::new("ip");
        wrapped
            .args(["netns", "exec", &self.ns])
            .arg(cmd.get_program())
            .args(cmd.get_args());
        for (key, value) in cmd.get_envs() {
            match value {
                Some(value) => wrapped.env(key, value),
                None => wrapped.env_remove(key),
            };
        }
        if let Some(dir) = cmd.get_current_dir() {
            wrapped.current_dir(dir);
        }
        let proc = Proc::spawn(name, wrapped)?;
        self.spawned
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(proc.pid());
        Ok(proc)
    }

    /// Create the pair with its peer end directly inside the namespace, taking the
    /// first free index: `File exists` means another testbed (maybe in another
    /// process) has it, and creating the link is the atomic claim.
    fn create_veth(&mut self) -> Result<()> {
        for index in 1..=254u8 {
            let host = format!("rwt{index}h");
            let peer = format!("rwt{index}n");
            let added = ip(&[
                "link", "add", &host, "type", "veth", "peer", "name", &peer, "netns", &self.ns,
            ]);
            match added {
                Ok(_) => {
                    self.index = index;
                    self.host_iface = Some(host);
                    return Ok(());
                }
                Err(e) if e.to_string().contains("File exists") => continue,
                Err(e) => {
                    return Err(e.context("creating a veth pair (kernel without CONFIG_VETH?)"))
                }
            }
        }
        bail!("all 254 testbed indexes (rwt1h..rwt254h) are taken")
    }

    fn configure(&self) -> Result<()> {
        let (host, peer, ns) = (self.host_iface(), self.ns_iface(), self.ns.as_str());
        let host4 = format!("{}/24", self.host_v4());
        let peer4 = format!("{}/24", self.peer_v4());
        let host6 = format!("{}/64", self.host_v6());
        let peer6 = format!("{}/64", self.peer_v6());
        ip(&["addr", "add", &host4, "dev", host])?;
        ip(&["-n", ns, "addr", "add", &peer4, "dev", &peer])?;
        // nodad: usable at once, instead of "tentative" for a second or two.
        ip(&["-6", "addr", "add", &host6, "dev", host, "nodad"])
            .and_then(|_| ip(&["-n", ns, "-6", "addr", "add", &peer6, "dev", &peer, "nodad"]))
            .context("adding IPv6 addresses (IPv6 disabled? see net.ipv6.conf.all.disable_ipv6)")?;
        ip(&["link", "set", host, "up"])?;
        ip(&["-n", ns, "link", "set", &peer, "up"])?;
        ip(&["-n", ns, "link", "set", "lo", "up"])?;
        Ok(())
    }
}

impl Drop for Testbed {
    fn drop(&mut self) {
        let spawned = std::mem::take(&mut *self.spawned.lock().unwrap_or_else(|p| p.into_inner()));
        for pid in spawned {
            kill_if_our_child(pid);
        }
        // Drop cannot fail; say what could not be removed so the next reap is explained.
        if let Err(e) = remove(&self.ns, self.host_iface.as_deref()) {
            eprintln!("warning: testbed {} not fully removed: {e:#}", self.ns);
        }
    }
}

/// Kill what runs in `ns`, then delete the veth pair and the namespace.
fn remove(ns: &str, host_iface: Option<&str>) -> Result<()> {
    kill_all_in(ns)?;
    // Deleting one end deletes both, synchronously; the namespace's own teardown
    // would do it too, but only later, from a kernel work queue.
    if let Some(iface) = host_iface {
        if Path::new("/sys/class/net").join(iface).exists() {
            ip(&["link", "del", iface])?;
        }
    }
    ip(&["netns", "del", ns])?;
    Ok(())
}

/// SIGKILL `pid` if it is still a child of this process (not reaped and reused).
fn kill_if_our_child(pid: u32) {
    let ours = std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        // Fields after "(comm) ": state, ppid, ...
        stat.rsplit(") ")
            .next()
            .and_then(|rest| rest.split_whitespace().nth(1))
            .is_some_and(|ppid| ppid == std::process::id().to_string())
    });
    if ours {
        // SAFETY: plain kill(2) of our own child.
        unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
    }
}

/// SIGKILL everything in `ns` and wait (bounded) until it is gone: delivery is
/// asynchronous, and on a loaded machine a killed process can take a moment to exit.
fn kill_all_in(ns: &str) -> Result<()> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let pids = ip(&["netns", "pids", ns])?;
        if pids.trim().is_empty() {
            return Ok(());
        }
        if std::time::Instant::now() > deadline {
            anyhow::bail!(
                "processes {} in {ns} survived SIGKILL for 10 s",
                pids.trim()
            );
        }
        for pid in pids.split_whitespace() {
            let pid: libc::pid_t = pid
                .parse()
                .with_context(|| format!("pid {pid:?} in {ns}"))?;
            // SAFETY: plain kill(2); a pid that is already gone just fails with ESRCH.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// Delete testbeds whose owning process is gone: `rwt-` namespaces of dead pids
/// (and their processes), and `rwt<N>h` links whose peer namespace has no name any
/// more. Testbeds of live processes, including concurrent test runs, are left alone.
pub fn reap_stale() -> Result<()> {
    // Links first: listing them gives each peer namespace an id that the namespace
    // list below then shows.
    let links: Vec<LinkInfo> = serde_json::from_str(&ip(&["-j", "-d", "link", "show"])?)
        .context("parsing `ip -j link show`")?;
    let namespaces: Vec<NsInfo> = match ip(&["-j", "netns", "list"])?.trim() {
        "" => Vec::new(), // iproute2 prints nothing at all when there are none
        json => serde_json::from_str(json).context("parsing `ip -j netns list`")?,
    };
    for ns in namespaces.iter().filter(|ns| is_stale(&ns.name)) {
        let host_iface = links
            .iter()
            .find(|l| ns.id.is_some() && l.link_netnsid == ns.id && is_testbed_link(&l.ifname))
            .map(|l| l.ifname.as_str());
        unless_gone(remove(&ns.name, host_iface))
            .with_context(|| format!("removing stale {}", ns.name))?;
    }
    let named: Vec<Option<i64>> = namespaces.iter().map(|ns| ns.id).collect();
    for link in links.iter().filter(|l| is_testbed_link(&l.ifname)) {
        if link.link_netnsid.is_none() || !named.contains(&link.link_netnsid) {
            unless_gone(ip(&["link", "del", &link.ifname]))
                .with_context(|| format!("removing orphan link {}", link.ifname))?;
        }
    }
    Ok(())
}

/// Another process (a concurrent reaper, or an owner finishing its drop) may delete
/// the same thing first; that is success.
fn unless_gone<T>(result: Result<T>) -> Result<()> {
    let Err(e) = result else { return Ok(()) };
    let text = format!("{e:#}");
    if text.contains("Cannot find device") || text.contains("No such file or directory") {
        return Ok(());
    }
    Err(e)
}

#[derive(Deserialize)]
struct LinkInfo {
    ifname: String,
    link_netnsid: Option<i64>,
}

#[derive(Deserialize)]
struct NsInfo {
    name: String,
    id: Option<i64>,
}

fn is_testbed_link(name: &str) -> bool {
    name.strip_prefix("rwt")
        .and_then(|rest| rest.strip_suffix('h'))
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// An `rwt-` namespace whose creator is no longer running (or was not us at all).
fn is_stale(ns: &str) -> bool {
    let Some(rest) = ns.strip_prefix(NS_PREFIX) else {
        return false;
    };
    let owner = rest
        .split('-')
        .next()
        .and_then(|pid| pid.parse::<u32>().ok());
    !owner.is_some_and(|pid| Path::new(&format!("/proc/{pid}")).exists())
}

/// Fail with the exact missing capability instead of a confusing `ip` error later.
fn preflight() -> Result<()> {
    // SAFETY: geteuid has no preconditions.
    let uid = unsafe { libc::geteuid() };
    if uid != 0 {
        bail!(
            "the netns testbed needs root (CAP_NET_ADMIN and CAP_SYS_ADMIN, to create \
             network namespaces and veth pairs); running as uid {uid}"
        );
    }
    if !cmd::on_path("ip") {
        bail!("the netns testbed needs `ip` from iproute2 on PATH (apt-get install iproute2)");
    }
    if !Path::new("/proc/self/ns/net").exists() {
        bail!("the kernel has no network namespaces (CONFIG_NET_NS): /proc/self/ns/net is missing");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_only_testbed_names() {
        assert!(is_testbed_link("rwt12h"));
        assert!(!is_testbed_link("rwt12n"));
        assert!(!is_testbed_link("rwth"));
        assert!(!is_testbed_link("eth0"));
        assert!(!is_stale("other-ns"));
        assert!(is_stale("rwt-garbage"));
        assert!(!is_stale(&format!("rwt-{}-0", std::process::id())));
    }
}
