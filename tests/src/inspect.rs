//! What the kernel says is there, asked independently of the agent: namespaces,
//! links, and attached XDP/TC programs (through `ip` and `bpftool`).

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
