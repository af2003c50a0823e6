//! `cargo xtask bench tls`: what the OpenSSL uprobes cost a TLS client and server.
//!
//! A local TLS loop (Python `ssl`, i.e. the system libssl: each round trip is one
//! `SSL_write_ex` + one `SSL_read_ex` on each side, so 4 probed calls, and their
//! socket syscalls) is timed without the probes and with ratewire's TLS programs
//! attached to that libssl, alternating in one run (median of the rounds). Printed:
//! ns per round trip each way, the added ns per probed SSL call, and the throughput
//! ratio. Every round trip is a real request/response pair, so the "with" rounds
//! include the pairing, the header scan and the event (drained by a thread, as the
//! daemon does).

use std::{
    io::{BufRead as _, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc,
    },
    time::Duration,
};

use anyhow::{bail, Context as _};
use ratewire::{
    probe::{Probe, ProbeConfig},
    routes::RouteTable,
    tls,
};

const ROUND_TRIPS: u32 = 20_000;
const ROUNDS: usize = 5;
const PORT: u16 = 18_653;

fn main() -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(format!("ratewire-bench-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    // The probe's kernel-log forwarder needs a runtime, as in the daemon.
    let runtime = tokio::runtime::Runtime::new()?;
    let _guard = runtime.enter();
    let result = run(&dir);
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn run(dir: &Path) -> anyhow::Result<()> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/bench_tls_loop.py");
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let status = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        ])
        .args(["-subj", "/CN=bench", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stderr(Stdio::null())
        .status()
        .context("openssl req")?;
    if !status.success() {
        bail!("openssl req failed");
    }
    let mut server = Server(
        Command::new("python3")
            .arg(&script)
            .args(["server", &PORT.to_string()])
            .arg(&cert)
            .arg(&key)
            .stdout(Stdio::piped())
            .spawn()
            .context("starting the TLS server")?,
    );
    let mut ready = String::new();
    BufReader::new(server.0.stdout.take().context("stdout")?).read_line(&mut ready)?;
    if ready.trim() != "ready" {
        bail!("the TLS server did not start");
    }
    let lib = tls::system_libs()
        .into_iter()
        .next()
        .unwrap_or_else(|| PathBuf::from(tls::SYSTEM_LIBSSL));
    let routes = RouteTable::new(&[])?;

    println!(
        "tls: TLS loop over loopback ({lib}), {ROUND_TRIPS} request/response round trips \
         (4 probed SSL calls each), median of {ROUNDS} rounds",
        lib = lib.display()
    );
    // Kernel-side run time per program (BPF_ENABLE_STATS, for this process's lifetime).
    let _stats = aya::sys::enable_stats(aya::sys::Stats::RunTime).ok();
    let mut kernel: std::collections::BTreeMap<String, (u64, u64)> = Default::default();
    let (mut without, mut with, mut events) = (Vec::new(), Vec::new(), 0u64);
    for _ in 0..ROUNDS {
        without.push(client(&script)?);
        let mut probe = Probe::attach(&ProbeConfig {
            ifaces: &[],
            routes: &routes,
            events_buffer_bytes: 4 << 20,
            tls: true,
        })?;
        let attached = probe.attach_tls_lib(&lib);
        if let Some(err) = attached.iter().find_map(|a| a.error.clone()) {
            bail!("attaching to {}: {err}", lib.display());
        }
        let mut ring = probe.take_events()?;
        let stop = Arc::new(AtomicBool::new(false));
        let count = Arc::new(AtomicU64::new(0));
        let drain = {
            let (stop, count) = (stop.clone(), count.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    while ring.next().is_some() {
                        count.fetch_add(1, Ordering::Relaxed);
                    }
                    std::thread::sleep(Duration::from_millis(1));
                }
            })
        };
        with.push(client(&script)?);
        stop.store(true, Ordering::Relaxed);
        drain.join().ok();
        events += count.load(Ordering::Relaxed);
        for (name, runs, ns) in probe.program_stats() {
            let entry = kernel.entry(name).or_default();
            entry.0 += runs;
            entry.1 += ns;
        }
        drop(probe);
    }
    let (base, probed) = (median(&mut without), median(&mut with));
    println!("{:<34} {:>12.0} ns", "round trip, no probes", base);
    println!(
        "{:<34} {:>12.0} ns",
        "round trip, TLS probes attached", probed
    );
    println!(
        "{:<34} {:>12.0} ns",
        "added per probed SSL call",
        (probed - base) / 4.0
    );
    println!(
        "{:<34} {:>12.3}x  (round trips/s with / without)",
        "throughput ratio",
        base / probed
    );
    println!("in-kernel run time per program run (BPF stats; excludes the uprobe trap itself):");
    let trips = ROUNDS as f64 * (ROUND_TRIPS + 200) as f64;
    let mut per_trip = 0.0;
    for (name, (runs, ns)) in &kernel {
        if *runs > 0 {
            println!(
                "  {name:<32} {:>12.0} ns  ({:.2} runs per round trip)",
                *ns as f64 / *runs as f64,
                *runs as f64 / trips
            );
            per_trip += *ns as f64 / trips;
        }
    }
    println!(
        "{:<34} {:>12.0} ns  (all programs; the sys_enter one also runs for every other \
         process's syscalls)",
        "in-kernel per round trip", per_trip
    );
    println!(
        "{:<34} {:>12}     (>= {} per round: one per response; the probes are \
         machine-wide, so other processes' TLS adds some)",
        "events per round (mean)",
        events / ROUNDS as u64,
        ROUND_TRIPS + 200
    );
    Ok(())
}

fn client(script: &Path) -> anyhow::Result<f64> {
    let out = Command::new("python3")
        .arg(script)
        .args(["client", &PORT.to_string(), &ROUND_TRIPS.to_string()])
        .output()
        .context("running the TLS client")?;
    if !out.status.success() {
        bail!("client: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().parse()?)
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Killed on drop.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
