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
    }
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
