//! `cargo xtask bench WHICH`: each benchmark measures its baseline in the same run and
//! prints the figures as ratios to it.

use clap::ValueEnum;

use crate::{bench_replay, root, sh};

#[derive(Clone, Copy, ValueEnum)]
pub enum Which {
    /// XDP program per-packet cost via BPF_PROG_TEST_RUN, vs an empty XDP_PASS program.
    Xdp,
    /// TC egress program per-packet cost via BPF_PROG_TEST_RUN, vs an empty TC program.
    Tc,
    /// OpenSSL uprobes: per-call cost on a local TLS loop, with vs without, one run.
    Tls,
    /// `ratewire replay` throughput vs tshark on the same 100k-response capture.
    Replay,
    /// `ratewire audit` on a 10M-line Envoy access log vs `awk | sort | uniq -c`.
    Audit,
    /// wrk against nginx in a netns, alternating without and with the agent: throughput
    /// ratio, agent CPU per response, BPF ns per run of each program.
    Wire,
}

pub fn run(which: Which) -> anyhow::Result<()> {
    match which {
        Which::Xdp => probes("xdp"),
        Which::Tc => probes("tc"),
        Which::Tls => sh::cargo(&[
            "run",
            "--release",
            "--package",
            "ratewire",
            "--example",
            "bench_tls",
        ]),
        Which::Replay => bench_replay::run(&root()),
        Which::Audit => sh::cargo(&[
            "run",
            "--release",
            "--package",
            "ratewire-audit",
            "--example",
            "bench_audit",
        ]),
        Which::Wire => wire(),
    }
}

/// The release agent under test, then the benchmark (it lives with the testbed).
fn wire() -> anyhow::Result<()> {
    sh::cargo(&[
        "build",
        "--release",
        "--package",
        "ratewire",
        "--bin",
        "ratewire",
    ])?;
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| root().join("target"));
    sh::run_with(
        std::process::Command::new(sh::cargo_bin())
            .current_dir(root())
            .args(["run", "--release", "--package", "ratewire-tests"])
            .args(["--example", "bench_wire"])
            .env("RATEWIRE_BIN", target.join("release/ratewire")),
    )
}

fn probes(which: &str) -> anyhow::Result<()> {
    sh::cargo(&[
        "run",
        "--release",
        "--package",
        "ratewire",
        "--example",
        "bench_probes",
        "--",
        which,
    ])
}
