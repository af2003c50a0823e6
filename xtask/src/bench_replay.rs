//! `ratewire replay` against tshark on the same synthetic capture.
//!
//! Builds the release `ratewire` binary and the `synth_capture` example of `ratewire-replay`,
//! writes a capture of 100,000 HTTP/1.1 exchanges (interleaved keep-alive connections to
//! four upstreams, IPv4 and IPv6, 429s, 5xx and chunked event streams), then times
//! `ratewire replay FILE --output ...` and `tshark -r FILE -Y http.response -T fields -e
//! http.response.code`. Both must find exactly the statuses the synthesizer wrote; the
//! figures are packets/s and MB/s of capture file, and replay's speed-up over tshark.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};

/// Exchanges in the capture.
const RESPONSES: u64 = 100_000;
/// Replay is timed as the best of this many runs (it takes well under a second).
const REPLAY_RUNS: usize = 5;
/// The upstream port the synthesizer uses, which tshark must be told is HTTP.
const UPSTREAM_PORT: u16 = 8000;
/// Required speed-up over tshark.
const TARGET_SPEEDUP: f64 = 20.0;

pub fn run(workspace_root: &Path) -> Result<()> {
    let release = build_release(workspace_root)?;
    let examples = release.join("examples");
    let dir = std::env::temp_dir().join("ratewire-bench-replay");
    fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let pcap = dir.join("bench.pcap");

    let (packets, expected) = synthesize(&examples.join("synth_capture"), &pcap)?;
    let file_bytes = fs::metadata(&pcap)?.len();
    let total: u64 = expected.values().sum();
    println!(
        "capture: {} ({packets} packets, {:.1} MB, {total} responses)",
        pcap.display(),
        file_bytes as f64 / 1e6
    );

    let journal = dir.join("replay.jsonl");
    let replay_time = (0..REPLAY_RUNS)
        .map(|_| time_replay(&release.join("ratewire"), &pcap, &journal))
        .collect::<Result<Vec<_>>>()?
        .into_iter()
        .min()
        .expect("at least one run");
    let replayed = statuses_in_journal(&journal)?;
    ensure!(
        replayed == expected,
        "replay found {replayed:?}, the capture holds {expected:?}"
    );

    let tshark_out = dir.join("tshark.txt");
    let tshark_time = time_tshark(&pcap, &tshark_out)?;
    let tsharked = statuses_in_tshark_output(&tshark_out)?;
    ensure!(
        tsharked == expected,
        "tshark found {tsharked:?}, the capture holds {expected:?}"
    );

    let row = |name: &str, t: Duration| {
        let secs = t.as_secs_f64();
        println!(
            "{name:<16} {secs:>8.3} s {:>12.0} packets/s {:>9.1} MB/s",
            packets as f64 / secs,
            file_bytes as f64 / 1e6 / secs
        );
    };
    row("ratewire replay", replay_time);
    row("tshark", tshark_time);
    let speedup = tshark_time.as_secs_f64() / replay_time.as_secs_f64();
    println!("speed-up: {speedup:.1}x tshark (target >= {TARGET_SPEEDUP}x); both counted {total} responses exactly");
    if speedup < TARGET_SPEEDUP {
        bail!("replay is only {speedup:.1}x faster than tshark; the target is {TARGET_SPEEDUP}x");
    }
    Ok(())
}

/// Build the release binary and synthesizer; returns the release directory.
fn build_release(root: &Path) -> Result<PathBuf> {
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .current_dir(root)
        .args(["build", "--release", "-p", "ratewire", "--bin", "ratewire"])
        .args(["-p", "ratewire-replay", "--example", "synth_capture"])
        .status()
        .context("running cargo build")?;
    ensure!(
        status.success(),
        "cargo build of the replay examples failed"
    );
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    Ok(target.join("release"))
}

/// Write the capture; returns its packet count and the responses per status in it.
fn synthesize(synth: &Path, pcap: &Path) -> Result<(u64, BTreeMap<String, u64>)> {
    let out = Command::new(synth)
        .arg(pcap)
        .arg(RESPONSES.to_string())
        .output()
        .with_context(|| format!("running {}", synth.display()))?;
    ensure!(
        out.status.success(),
        "synth_capture failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout)?;
    let mut packets = None;
    let mut expected = BTreeMap::new();
    for line in text.lines() {
        let fields: BTreeMap<&str, &str> = line
            .split_whitespace()
            .filter_map(|kv| kv.split_once('='))
            .collect();
        if let Some(n) = fields.get("packets") {
            packets = Some(n.parse()?);
        }
        if let (Some(status), Some(count)) = (fields.get("status"), fields.get("count")) {
            expected.insert(status.to_string(), count.parse()?);
        }
    }
    Ok((
        packets.context("synth_capture printed no packet count")?,
        expected,
    ))
}

fn time_replay(replay: &Path, pcap: &Path, journal: &Path) -> Result<Duration> {
    let started = Instant::now();
    let status = Command::new(replay)
        .arg("replay")
        .arg(pcap)
        .arg("--output")
        .arg(journal)
        .stdout(Stdio::null())
        .status()
        .with_context(|| format!("running {}", replay.display()))?;
    let elapsed = started.elapsed();
    ensure!(status.success(), "replay failed on {}", pcap.display());
    Ok(elapsed)
}

fn time_tshark(pcap: &Path, out: &Path) -> Result<Duration> {
    let started = Instant::now();
    let status = Command::new("tshark")
        .arg("-r")
        .arg(pcap)
        .args(["-d", &format!("tcp.port=={UPSTREAM_PORT},http")])
        .args([
            "-Y",
            "http.response",
            "-T",
            "fields",
            "-e",
            "http.response.code",
        ])
        .stdout(fs::File::create(out)?)
        .stderr(Stdio::null())
        .status()
        .context("running tshark (apt-get install tshark)")?;
    let elapsed = started.elapsed();
    ensure!(status.success(), "tshark failed on {}", pcap.display());
    Ok(elapsed)
}

/// Responses per status in a replay journal (JSON Lines), without a JSON dependency:
/// the journal writes `"status":NNN` only on response records.
fn statuses_in_journal(journal: &Path) -> Result<BTreeMap<String, u64>> {
    let text = fs::read_to_string(journal)?;
    let mut counts = BTreeMap::new();
    for line in text.lines() {
        if let Some(rest) = line.split_once("\"status\":").map(|(_, r)| r) {
            let code: String = rest.chars().take_while(char::is_ascii_digit).collect();
            *counts.entry(code).or_default() += 1;
        }
    }
    Ok(counts)
}

fn statuses_in_tshark_output(out: &Path) -> Result<BTreeMap<String, u64>> {
    let mut counts = BTreeMap::new();
    for code in fs::read_to_string(out)?.lines() {
        *counts.entry(code.trim().to_owned()).or_default() += 1;
    }
    Ok(counts)
}
