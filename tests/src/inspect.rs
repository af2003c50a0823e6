//! What the kernel says is there, asked independently of the agent: namespaces,
//! links, and attached XDP/TC programs and bpf_links (through `ip`, `bpftool` and
//! `/proc/PID/fdinfo`).

use anyhow::{bail, Context, Result};
use serde_json::Value;

use crate::cmd::{self, ip};

/// `ip netns list` has a namespace called `name`.
pub fn netns_exists(name: &str) -> Result<bool> {
    Ok(ip(&["netns", "list"])?
        .lines()
        .any(|line| line.split_whitespace().next() == Some(name)))
}

/// `ip link` has an interface called `name`.
pub fn link_exists(name: &str) -> Result<bool> {
    Ok(ip(&["-br", "link", "show"])?.lines().any(|line| {
        // `rwt1h@if2   UP ...`: the name ends at '@' for veths.
        let first = line.split_whitespace().next().unwrap_or_default();
        first.split('@').next() == Some(name)
    }))
}

/// Interfaces that `bpftool net show` lists with any program (XDP, TC, ...).
pub fn bpftool_net_devices() -> Result<Vec<String>> {
    let json = bpftool(None, &["-j", "net", "show"])?;
    let mut names = Vec::new();
    collect_devnames(&json, &mut names);
    Ok(names)
}

/// Ids of the XDP programs on `iface` (in network namespace `ns`, or the root one),
/// from bpftool; cross-checked against the `xdp` marker of `ip link show`, so the
/// two tools must agree.
pub fn xdp_programs(ns: Option<&str>, iface: &str) -> Result<Vec<u64>> {
    let json = bpftool(ns, &["-j", "net", "show", "dev", iface])?;
    let ids: Vec<u64> = json
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|section| section.get("xdp")?.as_array())
        .flatten()
        .filter_map(|prog| prog.get("id")?.as_u64())
        .collect();
    let link = match ns {
        Some(ns) => ip(&["-n", ns, "-d", "link", "show", "dev", iface])?,
        None => ip(&["-d", "link", "show", "dev", iface])?,
    };
    let ip_says_attached = link.contains("prog/xdp") || link.contains(" xdp");
    let bpftool_says_attached = !ids.is_empty();
    if ip_says_attached != bpftool_says_attached {
        bail!("bpftool (xdp ids {ids:?}) and `ip link show {iface}` disagree:\n{link}");
    }
    Ok(ids)
}

/// Entries of the `tc` section of `bpftool net show dev IFACE` (classic TC and, with a
/// bpftool that knows them, tcx programs).
pub fn tc_programs(ns: Option<&str>, iface: &str) -> Result<Vec<Value>> {
    let json = bpftool(ns, &["-j", "net", "show", "dev", iface])?;
    Ok(json
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|section| section.get("tc")?.as_array())
        .flatten()
        .cloned()
        .collect())
}

/// One bpf_link a process holds, as its `/proc/PID/fdinfo` describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BpfLink {
    pub id: u64,
    /// `xdp`, `tcx`, ...
    pub link_type: String,
    pub prog_id: Option<u64>,
    pub ifindex: Option<u32>,
    /// e.g. `47 (egress)` for a tcx link.
    pub attach_type: Option<String>,
}

/// The bpf_links process `pid` holds open. Read from the kernel's fdinfo, because
/// Debian 12's bpftool (7.1) shows a tcx link only as `type 11` without its device,
/// and `bpftool net show` does not list tcx programs at all.
pub fn bpf_links_of(pid: u32) -> Result<Vec<BpfLink>> {
    let dir = format!("/proc/{pid}/fdinfo");
    let mut links = Vec::new();
    for entry in std::fs::read_dir(&dir).with_context(|| format!("listing {dir}"))? {
        let path = entry?.path();
        // An fd closed since the listing is simply not there any more.
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        let field = |name: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
                .map(|v| v.trim().to_string())
        };
        let (Some(link_type), Some(id)) = (field("link_type"), field("link_id")) else {
            continue;
        };
        links.push(BpfLink {
            id: id
                .parse()
                .with_context(|| format!("link_id {id:?} in {}", path.display()))?,
            link_type,
            prog_id: field("prog_id").and_then(|v| v.parse().ok()),
            ifindex: field("ifindex").and_then(|v| v.parse().ok()),
            attach_type: field("attach_type"),
        });
    }
    links.sort_by_key(|l| l.id);
    Ok(links)
}

/// Ids of every bpf_link in the kernel (`bpftool link show`).
pub fn bpf_link_ids() -> Result<Vec<u64>> {
    let json = bpftool(None, &["-j", "link", "show"])?;
    Ok(json
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|link| link.get("id")?.as_u64())
        .collect())
}

/// The ifindex of `iface` in the root namespace.
pub fn ifindex(iface: &str) -> Result<u32> {
    let path = format!("/sys/class/net/{iface}/ifindex");
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    text.trim()
        .parse()
        .with_context(|| format!("{path} holds {text:?}"))
}

/// `bpftool ARGS` (inside `ns` if given), parsed as JSON.
fn bpftool(ns: Option<&str>, args: &[&str]) -> Result<Value> {
    if !cmd::on_path("bpftool") {
        bail!("bpftool not found on PATH: install it (apt-get install bpftool; the project's setup does)");
    }
    let out = match ns {
        Some(ns) => ip(&[&["netns", "exec", ns, "bpftool"], args].concat())?,
        None => cmd::run("bpftool", args)?,
    };
    serde_json::from_str(&out).with_context(|| format!("parsing `bpftool {}`", args.join(" ")))
}

fn collect_devnames(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Array(items) => items.iter().for_each(|i| collect_devnames(i, out)),
        Value::Object(map) => {
            if let Some(Value::String(name)) = map.get("devname") {
                out.push(name.clone());
            }
            map.values().for_each(|i| collect_devnames(i, out));
        }
        _ => {}
    }
}
