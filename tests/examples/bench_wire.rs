//! `cargo xtask bench wire`: what watching a busy HTTP server costs it, end to end.
//!
//! nginx (Debian) answers small keep-alive responses inside a testbed namespace; wrk
//! (Debian) loads it from the root namespace through the veth, whose host end the agent
//! watches (XDP ingress sees every response, TC egress every request). Runs alternate
//! without and with the agent in one process, so drift on this shared machine hits both
//! alike; each figure is the median over the rounds:
//! - throughput with the agent as a ratio to without;
//! - the agent's CPU (utime + stime from /proc/PID/stat) per response;
//! - in-kernel ns per run of each ratewire program (BPF stats, `bpftool prog show`).
//!
//! The agent runs as users run it (journal on), with `--tls off` so that only the wire
//! path is measured (`cargo xtask bench tls` measures the TLS probes).

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};
use ratewire_tests::agent::Agent;
use ratewire_tests::netns::Testbed;
use ratewire_tests::proc::Proc;
use ratewire_tests::tmp::TempDir;

const ROUNDS: usize = 5;
const SECONDS: u32 = 5;
const CONNECTIONS: u32 = 16;
const PORT: u16 = 8080;

fn main() -> Result<()> {
    for tool in ["nginx", "wrk", "bpftool"] {
        ensure!(
            ratewire_tests::cmd::on_path(tool),
            "{tool} not found: run `cargo xtask setup`"
        );
    }
    let bed = Testbed::new()?;
    let dir = TempDir::new("bench-wire")?;
    let _nginx = start_nginx(&bed, &dir)?;
    let url = format!("http://{}:{PORT}/", bed.peer_v4());
    wrk(&url, 1).context("warm-up")?;
    set_bpf_stats(true)?;

    let mut without = Vec::new();
    let mut with = Vec::new();
    let mut cpu_us = Vec::new();
    let mut bpf_ns: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for round in 0..ROUNDS {
        let base = wrk(&url, SECONDS)?;
        without.push(base.rps);

        let data = TempDir::new("bench-wire-journal")?;
        let agent = Agent::start_with(&[bed.host_iface()], data.path(), &["--tls", "off"])?;
        let cpu_before = cpu_ticks(agent.pid())?;
        let progs_before = bpf_programs()?;
        let run = wrk(&url, SECONDS)?;
        let progs_after = bpf_programs()?;
        let cpu_after = cpu_ticks(agent.pid())?;
        agent.stop()?;
        with.push(run.rps);
        let ticks_per_sec = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
        let us = (cpu_after - cpu_before) as f64 / ticks_per_sec * 1e6 / run.requests as f64;
        cpu_us.push(us);
        for (name, (ns, cnt)) in &progs_after {
            let (ns0, cnt0) = progs_before.get(name).copied().unwrap_or((0, 0));
            if cnt > &cnt0 {
                bpf_ns
                    .entry(name.clone())
                    .or_default()
                    .push((ns - ns0) as f64 / (cnt - cnt0) as f64);
            }
        }
        println!(
            "round {round}: without {:.0} req/s, with {:.0} req/s ({:.3}x), agent {us:.2} µs CPU/response",
            base.rps,
            run.rps,
            run.rps / base.rps
        );
    }
    set_bpf_stats(false)?;

    let ratios: Vec<f64> = with.iter().zip(&without).map(|(w, b)| w / b).collect();
    println!(
        "\nwire: nginx in a netns, wrk -c{CONNECTIONS} -d{SECONDS}s, {ROUNDS} alternating rounds (median):"
    );
    println!(
        "  throughput without agent {:.0} req/s, with agent {:.0} req/s: ratio {:.3}x",
        median(&without),
        median(&with),
        median(&ratios)
    );
    println!(
        "  agent CPU per response: {:.2} µs (journal on, --tls off)",
        median(&cpu_us)
    );
    for (name, runs) in &bpf_ns {
        println!("  {name}: {:.0} ns per run (BPF stats)", median(runs));
    }
    Ok(())
}

fn start_nginx(bed: &Testbed, dir: &TempDir) -> Result<Proc> {
    let conf = dir.path().join("nginx.conf");
    let root = dir.path();
    std::fs::write(
        &conf,
        format!(
            "daemon off;\nworker_processes 1;\npid {root}/nginx.pid;\nerror_log {root}/error.log;\n\
             events {{ worker_connections 1024; }}\n\
             http {{\n  access_log off;\n  keepalive_requests 1000000;\n\
             client_body_temp_path {root}/body; proxy_temp_path {root}/proxy;\n\
             fastcgi_temp_path {root}/fastcgi; uwsgi_temp_path {root}/uwsgi; scgi_temp_path {root}/scgi;\n\
             server {{\n    listen {ip}:{PORT};\n    location / {{ default_type application/json; return 200 '{{\"ok\":true}}'; }}\n  }}\n}}\n",
            root = root.display(),
            ip = bed.peer_v4(),
        ),
    )?;
    let mut cmd = Command::new("nginx");
    cmd.arg("-c").arg(&conf).arg("-p").arg(root);
    let nginx = bed.spawn_in_ns("nginx", &cmd)?;
    // Ready when it accepts a request.
    let url = format!("http://{}:{PORT}/", bed.peer_v4());
    for _ in 0..100 {
        if Command::new("curl")
            .args(["-sf", "-o", "/dev/null", &url])
            .status()
            .is_ok_and(|s| s.success())
        {
            return Ok(nginx);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    bail!("nginx did not answer on {url}: {}", nginx.output())
}

struct WrkRun {
    rps: f64,
    requests: u64,
}

fn wrk(url: &str, seconds: u32) -> Result<WrkRun> {
    let out = Command::new("wrk")
        .args(["-t", "1", "-c", &CONNECTIONS.to_string()])
        .args(["-d", &format!("{seconds}s"), url])
        .output()
        .context("running wrk")?;
    let text = String::from_utf8_lossy(&out.stdout);
    ensure!(out.status.success(), "wrk failed: {text}");
    ensure!(
        !text.contains("Non-2xx") && !text.contains("Socket errors"),
        "wrk saw errors: {text}"
    );
    let requests = text
        .lines()
        .find_map(|l| l.trim().split_once(" requests in "))
        .and_then(|(n, _)| n.trim().parse().ok())
        .with_context(|| format!("no request count in wrk's output: {text}"))?;
    let rps = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
        .with_context(|| format!("no Requests/sec in wrk's output: {text}"))?;
    Ok(WrkRun { rps, requests })
}

/// utime + stime of a process, in clock ticks.
fn cpu_ticks(pid: u32) -> Result<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the `(comm)`, which may hold spaces: state is field 3, utime 14, stime 15.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .context("malformed /proc/PID/stat")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11).context("no utime")?.parse()?;
    let stime: u64 = fields.get(12).context("no stime")?.parse()?;
    Ok(utime + stime)
}

fn set_bpf_stats(on: bool) -> Result<()> {
    std::fs::write(
        "/proc/sys/kernel/bpf_stats_enabled",
        if on { "1" } else { "0" },
    )
    .context("setting kernel.bpf_stats_enabled")
}

/// run_time_ns and run_cnt of every loaded `ratewire_*` program, summed by name.
fn bpf_programs() -> Result<BTreeMap<String, (u64, u64)>> {
    let out = Command::new("bpftool")
        .args(["prog", "show", "-j"])
        .output()
        .context("running bpftool")?;
    ensure!(out.status.success(), "bpftool prog show failed");
    let progs: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    let mut totals = BTreeMap::new();
    for prog in progs.as_array().into_iter().flatten() {
        let Some(name) = prog["name"].as_str() else {
            continue;
        };
        if !name.starts_with("ratewire") {
            continue;
        }
        let entry: &mut (u64, u64) = totals.entry(name.to_owned()).or_default();
        entry.0 += prog["run_time_ns"].as_u64().unwrap_or(0);
        entry.1 += prog["run_cnt"].as_u64().unwrap_or(0);
    }
    Ok(totals)
}

fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}
