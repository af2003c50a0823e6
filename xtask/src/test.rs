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
    // The layout rules (`cargo xtask layout`) are reported, not yet enforced: issue 9's
    // splits of the audit's reconcile modules and the agent's metrics are still to do.
    if let Err(e) = crate::layout::run() {
        eprintln!("xtask: layout (not enforced yet): {e:#}");
    }
    // The end-to-end tests drive the real binaries: build them all first.
    sh::cargo(&["build", "--workspace", "--bins"])?;
    let bin = root().join("target/debug/ratewire");
    // Unit and library tests first, as a contributor without root runs them: every
    // capability dropped, so a test that needs privileges fails here instead of passing
    // only because CI is root.
    let mut unit = Command::new("setpriv");
    unit.args(UNPRIVILEGED)
        .arg(sh::cargo_bin())
        .args(["test", "--no-fail-fast"]);
    // Then the privileged end-to-end suites (real kernel, netns, veth) on the real binary.
    let mut e2e = Command::new(sh::cargo_bin());
    e2e.args(["test", "--package", "ratewire-tests", "--no-fail-fast"])
        .env("RATEWIRE_BIN", &bin);
    if let Some(filter) = filter {
        unit.arg("--").arg(filter);
        e2e.arg("--").arg(filter);
    }
    let mut tally = Tally::default();
    let unit_result = run_counting(&mut unit, &mut tally);
    let result = run_counting(&mut e2e, &mut tally).and(unit_result);
    let result = result.and_then(|()| match filter {
        None => fuzz(),
        Some(_) => Ok(()),
    });
    // One plain closing line for CI, summed over every test binary (`cargo test`
    // prints one `test result:` line per binary, the last of which is often a doc-test
    // binary with 0 tests).
    println!("tests: {} passed, {} failed", tally.passed, tally.failed);
    result
}

#[derive(Default)]
struct Tally {
    passed: u64,
    failed: u64,
}

/// `setpriv` arguments that run a command with no capability at all (still uid 0, so
/// the toolchain under /root stays readable).
const UNPRIVILEGED: &[&str] = &[
    "--inh-caps=-all",
    "--ambient-caps=-all",
    "--bounding-set=-all",
    "--",
];

/// Run `cargo test`, echoing its stdout while adding its `test result:` lines to `tally`.
fn run_counting(cmd: &mut Command, tally: &mut Tally) -> anyhow::Result<()> {
    use std::io::{BufRead as _, BufReader};

    eprintln!("xtask: $ {cmd:?}");
    let child = cmd
        .current_dir(root())
        .stdout(std::process::Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(child) => child,
        Err(e) => return Err(anyhow::anyhow!("cannot start cargo test: {e}")),
    };
    if let Some(stdout) = child.stdout.take() {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            println!("{line}");
            if let Some(rest) = line.strip_prefix("test result: ") {
                tally.passed += count_before(rest, " passed");
                tally.failed += count_before(rest, " failed");
            }
        }
    }
    match child.wait() {
        Ok(status) if status.success() => Ok(()),
        Ok(status) => Err(anyhow::anyhow!("cargo test failed ({status})")),
        Err(e) => Err(anyhow::anyhow!("waiting for cargo test: {e}")),
    }
}

/// The number just before `word` in `ok. 12 passed; 0 failed; ...`.
fn count_before(text: &str, word: &str) -> u64 {
    text.split(';')
        .find_map(|part| {
            part.trim()
                .trim_start_matches("ok. ")
                .trim_start_matches("FAILED. ")
                .strip_suffix(word.trim_start())
        })
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0)
}

/// Fuzz targets run briefly on every test run: the shared parser, and replay's capture
/// and stream paths, seeded from real captures (`tests/fuzz/seeds`). A crash fails the
/// run and leaves its input under `tests/fuzz/artifacts`.
const FUZZ_TARGETS: &[(&str, &[&str])] = &[
    ("http_parser", &[]),
    // Without AddressSanitizer: ~10x more executions for the pure-Rust replay path.
    ("replay_capture", &["-s", "none"]),
    ("replay_streams", &["-s", "none"]),
];
const FUZZ_SECONDS: u32 = 15;

fn fuzz() -> anyhow::Result<()> {
    let fuzz_dir = root().join("tests/fuzz");
    for (target, flags) in FUZZ_TARGETS {
        let corpus = std::env::temp_dir().join(format!("ratewire-fuzz-{target}"));
        std::fs::create_dir_all(&corpus)?;
        sh::run_with(
            Command::new("rustup")
                .args(["run", "nightly", "cargo", "fuzz", "run", "-O"])
                .args(*flags)
                .arg(target)
                .arg(&corpus)
                .arg(fuzz_dir.join("seeds").join(target))
                .arg("--")
                .arg(format!("-max_total_time={FUZZ_SECONDS}"))
                .current_dir(&fuzz_dir)
                .env_remove("RUSTUP_TOOLCHAIN")
                .env_remove("RUSTC"),
        )?;
    }
    Ok(())
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
