//! `cargo xtask setup`: idempotent; installs only what is missing and says what it did.

use std::process::Command;

use anyhow::Context as _;

use crate::sh;

/// Debian packages: LLVM 22 to build bpf-linker; the tools the tests and benches use
/// as independent parts (tshark, tcpdump, prometheus/promtool, bpftool, iproute2, wrk,
/// curl and wget (an OpenSSL and a GnuTLS client), openssl for test certificates).
const DEBIAN_PACKAGES: &[&str] = &[
    "llvm-22-dev",
    "libpolly-22-dev",
    "libzstd-dev",
    "iproute2",
    "bpftool",
    "tcpdump",
    "tshark",
    "prometheus",
    "wrk",
    "nginx",
    "curl",
    "wget",
    "openssl",
];

const LLVM_BIN: &str = "/usr/lib/llvm-22/bin";

pub fn run() -> anyhow::Result<()> {
    let mut did = Vec::new();
    debian_packages(&mut did)?;
    rust_components(&mut did)?;
    cargo_tool(
        &mut did,
        "bpf-linker",
        &["bpf-linker", "--version"],
        &["--no-default-features", "--features", "llvm-22"],
    )?;
    cargo_tool(&mut did, "cargo-fuzz", &["cargo", "fuzz", "--version"], &[])?;
    if did.is_empty() {
        eprintln!("xtask: setup: everything already installed");
    } else {
        eprintln!("xtask: setup: installed {}", did.join(", "));
    }
    Ok(())
}

fn debian_packages(did: &mut Vec<String>) -> anyhow::Result<()> {
    let missing: Vec<&str> = DEBIAN_PACKAGES
        .iter()
        .copied()
        .filter(|pkg| !debian_installed(pkg))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    sh::run_with(Command::new("apt-get").arg("update").arg("-q"))?;
    // tshark asks whether non-root users may capture; answer for it (no).
    sh::run_with(
        Command::new("apt-get")
            .args(["install", "-y", "-q", "--no-install-recommends"])
            .args(&missing)
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )
    .context("installing Debian packages (xtask setup needs root)")?;
    did.extend(missing.iter().map(|p| format!("{p} (apt)")));
    Ok(())
}

fn debian_installed(pkg: &str) -> bool {
    sh::output(Command::new("dpkg-query").args(["-W", "-f=${Status}", pkg]))
        .is_ok_and(|status| status.contains("install ok installed"))
}

/// The eBPF object needs nightly's rust-src (`-Z build-std=core`) and nightly clippy.
fn rust_components(did: &mut Vec<String>) -> anyhow::Result<()> {
    let installed = sh::output(Command::new("rustup").args([
        "component",
        "list",
        "--toolchain",
        "nightly",
        "--installed",
    ]))
    .unwrap_or_default();
    if installed.is_empty() {
        sh::run(
            "rustup",
            &["toolchain", "install", "nightly", "--profile", "minimal"],
        )?;
        did.push("nightly toolchain".to_owned());
    }
    for component in ["rust-src", "clippy", "rustfmt"] {
        if !installed.lines().any(|l| l.starts_with(component)) {
            sh::run(
                "rustup",
                &["component", "add", component, "--toolchain", "nightly"],
            )?;
            did.push(format!("nightly {component}"));
        }
    }
    for component in ["clippy", "rustfmt"] {
        let stable = sh::output(Command::new("rustup").args(["component", "list", "--installed"]))
            .unwrap_or_default();
        if !stable.lines().any(|l| l.starts_with(component)) {
            sh::run("rustup", &["component", "add", component])?;
            did.push(component.to_owned());
        }
    }
    Ok(())
}

/// `cargo install` a tool unless `probe` runs; bpf-linker links against LLVM 22.
fn cargo_tool(
    did: &mut Vec<String>,
    tool: &str,
    probe: &[&str],
    features: &[&str],
) -> anyhow::Result<()> {
    if sh::succeeds(Command::new(probe[0]).args(&probe[1..])) {
        return Ok(());
    }
    let path = format!("{LLVM_BIN}:{}", std::env::var("PATH").unwrap_or_default());
    sh::run_with(
        Command::new(sh::cargo_bin())
            .args(["install", "--locked", tool])
            .args(features)
            .env("PATH", path),
    )?;
    did.push(tool.to_owned());
    Ok(())
}
