//! Bench: audit a 10-million-line Envoy access log (the Envoy reader and the
//! per-upstream, per-status counting path) and compare its speed with
//! `awk '{print $5}' FILE | sort | uniq -c` on the same file, in the same run.
//!
//! `cargo run --release -p ratewire-audit --example bench_audit [-- LINES]`
//! (wired as `cargo xtask bench audit`). The log is written to a temporary directory
//! and removed afterwards. Both counts must agree, or the bench fails.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Instant;

use ratewire_audit::formats::envoy::tally_statuses;

const DEFAULT_LINES: u64 = 10_000_000;
const UPSTREAMS: [&str; 4] = [
    "10.0.0.2:8000",
    "10.0.0.3:8000",
    "10.0.0.4:8000",
    "10.0.0.5:8000",
];

/// Removes the temporary directory however the bench ends.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A deterministic mix: 90 % 200, 6 % 429, 2 % 503, 1 % 500, 1 % 404; flags RL/URX on
/// a few; Plano's `attempts=` on every 7th line.
fn write_log(path: &Path, lines: u64) -> std::io::Result<u64> {
    let mut out = BufWriter::with_capacity(1 << 20, File::create(path)?);
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut bytes = 0u64;
    let mut line = String::with_capacity(256);
    for i in 0..lines {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let roll = state % 100;
        let (status, flags) = match roll {
            0..=89 => (200, "-"),
            90..=95 => (429, if roll == 95 { "RL" } else { "-" }),
            96..=97 => (503, "URX"),
            98 => (500, "-"),
            _ => (404, "-"),
        };
        let ms = i / 4; // 4000 requests per second
        let (s, frac) = (ms / 1000, ms % 1000);
        line.clear();
        use std::fmt::Write as _;
        let _ = write!(
            line,
            "[2026-11-23T{:02}:{:02}:{:02}.{frac:03}Z] \"POST /v1/chat/completions HTTP/1.1\" {status} {flags} 512 {} {} {} \"-\" \"OpenAI/Python 2.54.0\" \"{:016x}\" \"gw.local\" \"{}\"",
            (s / 3600) % 24,
            (s / 60) % 60,
            s % 60,
            900 + state % 4000,
            20 + state % 900,
            18 + state % 880,
            state,
            UPSTREAMS[(state >> 20) as usize % UPSTREAMS.len()],
        );
        if i % 7 == 0 {
            line.push_str(" \"llm_cluster\" attempts=1");
        }
        line.push('\n');
        out.write_all(line.as_bytes())?;
        bytes += line.len() as u64;
    }
    out.flush()?;
    Ok(bytes)
}

fn main() -> ExitCode {
    let lines: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(DEFAULT_LINES);
    let dir =
        TempDir(std::env::temp_dir().join(format!("ratewire-bench-audit-{}", std::process::id())));
    if let Err(e) = std::fs::create_dir_all(&dir.0) {
        eprintln!("bench: {}: {e}", dir.0.display());
        return ExitCode::FAILURE;
    }
    let log = dir.0.join("envoy-access.log");

    let t = Instant::now();
    let bytes = match write_log(&log, lines) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("bench: writing {}: {e}", log.display());
            return ExitCode::FAILURE;
        }
    };
    println!(
        "generated {lines} Envoy access log lines ({:.2} GB) in {:.2} s: {}",
        bytes as f64 / 1e9,
        t.elapsed().as_secs_f64(),
        log.display()
    );

    // ratewire audit's Envoy reader + counting.
    let t = Instant::now();
    let tally = match tally_statuses(&log) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("bench: {e}");
            return ExitCode::FAILURE;
        }
    };
    let ours = t.elapsed().as_secs_f64();
    let our_counts = tally.by_status();

    // The shell pipeline, on the same (now cached) file.
    let t = Instant::now();
    let output = Command::new("sh")
        .arg("-c")
        .arg("awk '{print $5}' \"$1\" | sort | uniq -c")
        .arg("sh")
        .arg(&log)
        .env("LC_ALL", "C")
        .output();
    let pipeline = t.elapsed().as_secs_f64();
    let output = match output {
        Ok(o) if o.status.success() => o,
        Ok(o) => {
            eprintln!(
                "bench: the pipeline failed: {}",
                String::from_utf8_lossy(&o.stderr)
            );
            return ExitCode::FAILURE;
        }
        Err(e) => {
            eprintln!("bench: sh: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut their_counts: BTreeMap<u16, u64> = BTreeMap::new();
    for l in String::from_utf8_lossy(&output.stdout).lines() {
        let mut parts = l.split_whitespace();
        if let (Some(n), Some(code)) = (parts.next(), parts.next()) {
            if let (Ok(n), Ok(code)) = (n.parse::<u64>(), code.parse::<u16>()) {
                their_counts.insert(code, n);
            }
        }
    }

    let per_s = |secs: f64| lines as f64 / secs;
    println!("per-status counts: {our_counts:?}");
    println!(
        "ratewire audit (Envoy reader + per-upstream/status counts): {ours:.3} s, {:.1} M lines/s, {:.2} GB/s; {} line(s) skipped",
        per_s(ours) / 1e6,
        bytes as f64 / 1e9 / ours,
        tally.problems.skipped
    );
    println!(
        "awk '{{print $5}}' | sort | uniq -c:                          {pipeline:.3} s, {:.1} M lines/s",
        per_s(pipeline) / 1e6
    );
    println!(
        "ratio: ratewire audit is {:.1}x the pipeline's speed",
        pipeline / ours
    );
    if our_counts != their_counts {
        eprintln!("bench: the counts differ: pipeline {their_counts:?}");
        return ExitCode::FAILURE;
    }
    if tally.lines != lines {
        eprintln!("bench: read {} lines of {lines}", tally.lines);
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
