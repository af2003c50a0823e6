//! Network interfaces: which exist, and which one carries the default route.

use std::fs;

use anyhow::{bail, Context as _};

/// The interfaces to watch when none are named: the default-route interface(s) and `lo`.
pub fn default_ifaces() -> anyhow::Result<Vec<String>> {
    let mut ifaces = default_route_ifaces()?;
    if !ifaces.iter().any(|i| i == "lo") {
        ifaces.push("lo".to_owned());
    }
    Ok(ifaces)
}

/// Interfaces holding an IPv4 default route, from `/proc/net/route`.
fn default_route_ifaces() -> anyhow::Result<Vec<String>> {
    let table = fs::read_to_string("/proc/net/route").context("reading /proc/net/route")?;
    let mut ifaces = Vec::new();
    // Columns: Iface Destination Gateway Flags ... ; Destination 00000000 = default.
    for line in table.lines().skip(1) {
        let mut cols = line.split_whitespace();
        if let (Some(iface), Some("00000000")) = (cols.next(), cols.next()) {
            if !ifaces.iter().any(|i| i == iface) {
                ifaces.push(iface.to_owned());
            }
        }
    }
    Ok(ifaces)
}

/// Fail early, with the interface's name, if it does not exist.
pub fn ensure_exists(iface: &str) -> anyhow::Result<()> {
    if iface.is_empty() || iface.len() > 15 || iface.contains('/') {
        bail!("'{iface}' is not a valid interface name");
    }
    if !std::path::Path::new("/sys/class/net").join(iface).exists() {
        bail!("interface '{iface}' does not exist (`ip link` lists the interfaces)");
    }
    Ok(())
}
