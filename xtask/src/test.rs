//! `cargo xtask test`: everything CI checks, in the order that fails fastest.

use std::process::Command;

use crate::{root, sh};

pub fn run(filter: Option<&str>) -> anyhow::Result<()> {
    sh::cargo(&["fmt", "--all", "--", "--check"])?;
    sh::cargo(&[
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ])?;
    clippy_ebpf()?;
    // The end-to-end tests drive the real binaries: build them all first.
    sh::cargo(&["build", "--workspace", "--bins"])?;
    let bin = root().join("target/debug/ratewire");
    let mut test = Command::new(sh::cargo_bin());
    test.args(["test", "--workspace", "--no-fail-fast"])
        .env("RATEWIRE_BIN", &bin);
    if let Some(filter) = filter {
        test.arg("--").arg(filter);
    }
    sh::run_with(&mut test)
}

/// Clippy on the kernel programs, compiled for the BPF target as aya-build does.
fn clippy_ebpf() -> anyhow::Result<()> {
    let target_dir = root().join("target/clippy-ebpf");
    sh::run_with(
        Command::new("rustup")
            .args(["run", "nightly", "cargo", "clippy"])
            .args(["--package", "ratewire-ebpf", "--bins", "--release"])
            .args(["--target", "bpfel-unknown-none", "-Z", "build-std=core"])
            .arg("--target-dir")
            .arg(&target_dir)
            .args(["--", "-D", "warnings"])
            .env(
                "CARGO_ENCODED_RUSTFLAGS",
                "--cfg=bpf_target_arch=\"x86_64\"",
            )
            .env_remove("RUSTC")
            .env_remove("RUSTC_WORKSPACE_WRAPPER")
            .env_remove("RUSTUP_TOOLCHAIN"),
    )
}
