//! `cargo xtask bench WHICH`: each benchmark measures its baseline in the same run and
//! prints the figures as ratios to it.

use clap::ValueEnum;

use crate::sh;

#[derive(Clone, Copy, ValueEnum)]
pub enum Which {
    /// XDP program per-packet cost via BPF_PROG_TEST_RUN, vs an empty XDP_PASS program.
    Xdp,
}

pub fn run(which: Which) -> anyhow::Result<()> {
    match which {
        Which::Xdp => sh::cargo(&[
            "run",
            "--release",
            "--package",
            "ratewire",
            "--example",
            "bench_probes",
            "--",
            "xdp",
        ]),
    }
}
