//! The journal on the real kernel: what the agent writes to disk must agree with its own
//! counters, with `ratewire replay` of a tcpdump capture of the same traffic, with
//! tshark's independent HTTP dissector, and with the mock upstream; it must account
//! for every event a too-small ring buffer loses; and it must stay readable after the
//! agent is killed with SIGKILL mid-run.
//!
//! Every test holds the machine-wide "agent" lock and starts its own agent with its own
//! journal directory and metrics port.

use std::collections::BTreeMap;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use ratewire_tests::agent::Agent;
use ratewire_tests::cmd;
use ratewire_tests::inspect;
use ratewire_tests::journal::{self, Record};
use ratewire_tests::lock;
use ratewire_tests::mock::counts::Counts;
use ratewire_tests::netns::Testbed;
use ratewire_tests::proc::Proc;
use ratewire_tests::prom::Metrics;
use ratewire_tests::run::{self, MockServer};
use ratewire_tests::tmp::TempDir;

const RESPONSES: &str = "ratewire_http_responses_total";
const CHAT: &str = "/v1/chat/completions";
const SETTLE: Duration = Duration::from_secs(10);
/// These tests check the journal as a whole (every record, every gap), so the agent
/// watches the wire only: with the TLS uprobes on (`--tls auto`, the default) it also
/// journals the HTTPS traffic of every other process on the machine.
const WIRE_ONLY: [&str; 2] = ["--tls", "off"];

fn expected(mock: &Counts) -> Counts {
    ratewire_tests::mock::counts::as_wire_outcomes(mock)
}

fn wait_outcomes(agent: &Agent, upstream: &str, want: &Counts) -> Result<Metrics> {
    agent.wait_outcomes(SETTLE, upstream, want)
}

fn total(counts: &Counts) -> u64 {
    counts.values().sum()
}

/// (upstream, outcome, route) → count over response and no_response records.
type ByRoute = BTreeMap<(String, String, String), u64>;

fn by_route(records: &[Record]) -> ByRoute {
    journal::count(records, |r| {
        (r.kind != "gap").then(|| {
            (
                r.upstream.clone().unwrap_or_default(),
                r.outcome(),
                r.route.clone().unwrap_or_default(),
            )
        })
    })
}

/// `tcpdump -w FILE -U` on `iface`, stopped with SIGINT. Its exit report must show
/// that it wrote every packet the kernel gave it and that the kernel dropped none, or
/// the capture is not a fair witness.
struct Capture {
    proc: Proc,
    file: PathBuf,
}

impl Capture {
    fn start(iface: &str, file: &Path) -> Result<Capture> {
        ensure!(
            cmd::on_path("tcpdump"),
            "tcpdump not found on PATH (apt-get install tcpdump; the project's setup does)"
        );
        let mut c = Command::new("tcpdump");
        // Immediate mode: otherwise packets wait in the kernel's ring for its block
        // timeout, and those still there when tcpdump stops never reach the file. No
        // capture filter: the testbed veth carries only the test's traffic.
        // A 64 MiB kernel buffer (-B, in KiB): in immediate mode tcpdump wakes for every
        // packet, and at full load speed the default 2 MiB overflows.
        c.args(["-i", iface, "--immediate-mode", "-U", "-n", "-s", "0"])
            .args(["-B", "65536", "-w"])
            .arg(file);
        let proc = Proc::spawn("tcpdump", c)?;
        let start = Instant::now();
        // "listening on IFACE, link-type ..." on stderr once the socket is bound.
        while !proc.stderr().contains("listening on") {
            ensure!(
                start.elapsed() < Duration::from_secs(10),
                "tcpdump did not start listening\n{}",
                proc.output()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        // Some kernels deliver the first packets to a new capture socket a moment late.
        std::thread::sleep(Duration::from_millis(200));
        Ok(Capture {
            proc,
            file: file.to_path_buf(),
        })
    }

    fn stop(mut self) -> Result<()> {
        // Let the last packets reach the file: stop once it has not grown for 300 ms.
        let mut size = 0;
        let mut stable_since = Instant::now();
        let start = Instant::now();
        while stable_since.elapsed() < Duration::from_millis(300)
            && start.elapsed() < Duration::from_secs(5)
        {
            let now = std::fs::metadata(&self.file).map_or(0, |m| m.len());
            if now != size {
                size = now;
                stable_since = Instant::now();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.proc.signal(libc::SIGINT)?;
        let status = self.proc.wait(Duration::from_secs(10))?;
        let err = self.proc.stderr();
        ensure!(status.success(), "tcpdump exited with {status}\n{err}");
        let stat = |suffix: &str| -> Result<u64> {
            err.lines()
                .find_map(|l| l.strip_suffix(suffix))
                .and_then(|n| n.trim().parse().ok())
                .with_context(|| format!("tcpdump printed no {suffix:?}:\n{err}"))
        };
        let (captured, received, dropped) = (
            stat(" packets captured")?,
            stat(" packets received by filter")?,
            stat(" packets dropped by kernel")?,
        );
        ensure!(
            dropped == 0 && captured == received,
            "tcpdump captured {captured} of {received} packets, {dropped} dropped by \
             kernel: the capture is incomplete\n{err}"
        );
        Ok(())
    }
}

/// (upstream, status) → count of HTTP responses by tshark's own dissector.
fn tshark_responses(pcap: &Path, ports: &[u16]) -> Result<BTreeMap<(String, String), u64>> {
    ensure!(
        cmd::on_path("tshark"),
        "tshark not found on PATH (apt-get install tshark; the project's setup does)"
    );
    let mut c = Command::new("tshark");
    c.arg("-n").arg("-r").arg(pcap);
    for port in ports {
        c.args(["-d", &format!("tcp.port=={port},http")]);
    }
    c.args(["-Y", "http.response", "-T", "fields", "-E", "separator=/t"])
        .args(["-e", "ip.src", "-e", "ipv6.src", "-e", "tcp.srcport"])
        .args(["-e", "http.response.code"]);
    let out = c.output().context("running tshark")?;
    ensure!(
        out.status.success(),
        "tshark failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let mut counts = BTreeMap::new();
    for line in String::from_utf8(out.stdout)?.lines() {
        let f: Vec<&str> = line.split('\t').collect();
        ensure!(f.len() == 4, "unexpected tshark line {line:?}");
        let upstream = match (f[0], f[1]) {
            (v4, "") if !v4.is_empty() => format!("{v4}:{}", f[2]),
            ("", v6) if !v6.is_empty() => format!("[{v6}]:{}", f[2]),
            _ => bail!("tshark line without one source address: {line:?}"),
        };
        // Several responses in one frame come as one comma-separated field.
        for code in f[3].split(',') {
            *counts
                .entry((upstream.clone(), code.to_string()))
                .or_default() += 1;
        }
    }
    Ok(counts)
}

/// Issue 4: one run of mixed traffic to an IPv4 and an IPv6 upstream, seen four ways.
/// The live journal, `ratewire replay` of a tcpdump capture of the same packets, and
/// tshark's dissector of that capture must agree exactly, and with both mocks.
#[test]
fn journal_replay_and_tshark_agree() -> Result<()> {
    let _lock = lock::exclusive("agent")?;
    let bed = Testbed::new()?;
    let dir = TempDir::new("replay")?;
    let data = dir.join("data");
    let pcap = dir.join("capture.pcap");
    let replayed = dir.join("replay.jsonl");
    let v4 = SocketAddr::from((bed.peer_v4(), 8000));
    let v6 = SocketAddr::from((bed.peer_v6(), 8001));
    let mock4 = MockServer::start(
        Some(&bed),
        &[v4],
        &[
            "--plan",
            "200x5,429x2,500,503,reset,close",
            "--retry-after",
            "2",
        ],
    )?;
    let mock6 = MockServer::start(
        Some(&bed),
        &[v6],
        &["--plan", "200x3,429,503", "--retry-after-ms", "250"],
    )?;
    let agent = Agent::start_with(&[bed.host_iface()], &data, &WIRE_ONLY)?;
    let capture = Capture::start(bed.host_iface(), &pcap)?;

    let (n4, n6) = (2200, 1500);
    let load4 = run::spawn_load(None, v4, n4, 4, &[], 60)?;
    let load6 = run::spawn_load(None, v6, n6, 4, &[], 60)?;
    let (sum4, sum6) = (load4.finish()?, load6.finish()?);
    ensure!(
        sum4.sent == n4 && sum6.sent == n6,
        "clients: {sum4:?} {sum6:?}"
    );
    let sent4 = mock4.finish()?;
    let sent6 = mock6.finish()?;
    ensure!(
        total(&sent4) == n4 && total(&sent6) == n6,
        "mocks: {sent4:?} {sent6:?}"
    );
    let (up4, up6) = (v4.to_string(), v6.to_string());
    let (want4, want6) = (expected(&sent4), expected(&sent6));
    wait_outcomes(&agent, &up4, &want4)?;
    let m = wait_outcomes(&agent, &up6, &want6)?;
    ensure!(
        m.value("ratewire_events_lost_total", &[])? == Some(0.0),
        "events lost"
    );
    capture.stop()?;
    agent.stop()?;

    let live = journal::read_dir(&data)?;
    let foreign: Vec<&Record> = live
        .iter()
        .filter(|r| !matches!(r.upstream.as_deref(), Some(u) if u == up4 || u == up6))
        .collect();
    ensure!(
        foreign.is_empty(),
        "live journal records of neither upstream (or gaps): {:?}",
        &foreign[..foreign.len().min(3)]
    );
    let summary = journal::ratewire_ok(&[
        "replay",
        pcap.to_str().context("path")?,
        "--output",
        replayed.to_str().context("path")?,
    ])?;
    let replay = journal::read_file(&replayed)?;
    ensure!(
        replay.iter().all(|r| r.source == "replay") && live.iter().all(|r| r.source == "xdp"),
        "sources: replay records must say replay, live ones xdp"
    );
    ensure!(
        !replay.iter().any(|r| r.kind == "gap") && !live.iter().any(|r| r.kind == "gap"),
        "gap records where nothing was lost"
    );

    // Per (upstream, outcome, route): live journal = replay = mocks.
    let mut want: ByRoute = BTreeMap::new();
    for (up, w) in [(&up4, &want4), (&up6, &want6)] {
        for (outcome, n) in w {
            want.insert((up.clone(), outcome.clone(), CHAT.to_string()), *n);
        }
    }
    let (live_counts, replay_counts) = (by_route(&live), by_route(&replay));
    ensure!(
        live_counts == want,
        "live journal {live_counts:?}\nmocks        {want:?}"
    );
    ensure!(
        replay_counts == want,
        "replay       {replay_counts:?}\nmocks        {want:?}\nreplay said:\n{}",
        String::from_utf8_lossy(&summary.stdout)
    );
    // Record by record (which connection, what outcome, what Retry-After): the same
    // multiset, since both run the same parser on the same packets.
    let identity = |r: &Record| {
        Some((
            r.kind.clone(),
            r.client.clone(),
            r.upstream.clone(),
            r.outcome(),
            r.route.clone(),
            r.method.clone(),
            r.retry_after_ms,
        ))
    };
    let (live_ids, replay_ids) = (
        journal::count(&live, identity),
        journal::count(&replay, identity),
    );
    if live_ids != replay_ids {
        let only_live: Vec<_> = live_ids
            .iter()
            .filter(|(k, n)| replay_ids.get(*k) != Some(n))
            .take(5)
            .collect();
        bail!("live and replayed records differ, e.g. (live side) {only_live:?}");
    }

    // tshark: responses per (upstream, status).
    let tshark = tshark_responses(&pcap, &[v4.port(), v6.port()])?;
    let live_status = journal::count(&live, |r| {
        (r.kind == "response").then(|| (r.upstream.clone().unwrap_or_default(), r.outcome()))
    });
    ensure!(
        tshark == live_status,
        "tshark {tshark:?}\nlive   {live_status:?}"
    );
    eprintln!(
        "journal = replay = tshark = mocks: {} responses, {} no-responses",
        live_status.values().sum::<u64>(),
        live.iter().filter(|r| r.kind == "no_response").count()
    );
    Ok(())
}

/// Figures of one high-rate run.
struct Run {
    requests: u64,
    rate: f64,
    lost: u64,
    gaps_lost: u64,
    journal_responses: u64,
    /// Status → response records in the journal.
    journal_outcomes: Counts,
    /// What the mock sent.
    sent: Counts,
}

/// `requests` through several connections at full speed with the agent given `args`;
/// the counters must equal the mock's counts, and the journal's response records plus
/// the `lost` of its gap records must equal the counters.
fn high_rate_run(requests: u64, args: &[&str]) -> Result<Run> {
    let bed = Testbed::new()?;
    let data = TempDir::new("rate")?;
    let listen = SocketAddr::from((bed.peer_v4(), 8000));
    let upstream = listen.to_string();
    let mock = MockServer::start(
        Some(&bed),
        &[listen],
        &["--plan", "200x6,429x2,500,503", "--retry-after", "1"],
    )?;
    let args = [&WIRE_ONLY[..], args].concat();
    let agent = Agent::start_with(&[bed.host_iface()], data.path(), &args)?;
    let summary = run::spawn_load(None, listen, requests, 16, &[], 150)?.finish()?;
    let sent = mock.finish()?;
    ensure!(
        summary.sent == requests && summary.statuses == sent && total(&sent) == requests,
        "client {summary:?}, mock {sent:?}"
    );
    let m = wait_outcomes(&agent, &upstream, &sent)?;
    let overflow = m.counts_by("ratewire_map_overflow_total", &[], "map")?;
    ensure!(
        overflow.values().all(|n| *n == 0),
        "map overflow {overflow:?}"
    );
    let metric_total = m.sum(RESPONSES, &[("upstream", &upstream)]) as u64;
    agent.stop()?;
    // After the stop: the agent's last tick has marked every loss in the journal.
    let records = journal::read_dir(data.path())?;
    let foreign: Vec<&Record> = records
        .iter()
        .filter(|r| r.kind != "gap" && r.upstream.as_deref() != Some(upstream.as_str()))
        .collect();
    ensure!(
        foreign.is_empty(),
        "{} records of other upstreams than {upstream}, e.g. {:?}",
        foreign.len(),
        &foreign[..foreign.len().min(3)]
    );
    let run = Run {
        requests,
        rate: requests as f64 / summary.elapsed_secs,
        lost: m
            .value("ratewire_events_lost_total", &[])?
            .context("no ratewire_events_lost_total")? as u64,
        gaps_lost: journal::gaps_lost(&records),
        journal_responses: records.iter().filter(|r| r.kind == "response").count() as u64,
        journal_outcomes: journal::outcomes_of(&records, &upstream),
        sent,
    };
    ensure!(
        run.journal_responses + run.gaps_lost == metric_total,
        "journal responses {} + lost {} != counters {metric_total}",
        run.journal_responses,
        run.gaps_lost
    );
    ensure!(
        run.lost == run.gaps_lost,
        "ratewire_events_lost_total {} but the journal's gaps say {}",
        run.lost,
        run.gaps_lost
    );
    Ok(run)
}

/// 100,000 responses as fast as the testbed goes: nothing lost, and journal = counters
/// = mock, exactly.
#[test]
fn hundred_thousand_responses_none_lost() -> Result<()> {
    let _lock = lock::exclusive("agent")?;
    let run = high_rate_run(100_000, &[])?;
    eprintln!(
        "100k run: {} requests at {:.0}/s, {} events lost, {} journal responses",
        run.requests, run.rate, run.lost, run.journal_responses
    );
    ensure!(
        run.lost == 0,
        "{} events lost with the default buffer",
        run.lost
    );
    ensure!(
        run.journal_outcomes == run.sent,
        "journal {:?}, mock {:?}",
        run.journal_outcomes,
        run.sent
    );
    Ok(())
}

/// A deliberately tiny ring buffer (4096 bytes, a handful of events) loses events under
/// load; every lost one must be accounted for by a gap record, so journal + gaps =
/// counters exactly.
#[test]
fn tiny_ring_buffer_loses_nothing_silently() -> Result<()> {
    let _lock = lock::exclusive("agent")?;
    let run = high_rate_run(100_000, &["--events-buffer-bytes", "4096"])?;
    eprintln!(
        "tiny buffer: {} requests at {:.0}/s, {} events lost (gap records), {} journal \
         responses; {} + {} = {}",
        run.requests,
        run.rate,
        run.lost,
        run.journal_responses,
        run.journal_responses,
        run.gaps_lost,
        run.journal_responses + run.gaps_lost
    );
    Ok(())
}

/// SIGKILL mid-run: the kernel drops both bpf_links (no XDP, no tcx left), the journal
/// the agent had flushed reads back with `ratewire journal`, and a torn last line (as a
/// crash mid-write leaves it) is reported with file and line, not fatal.
#[test]
fn kill9_mid_run_leaves_a_readable_journal() -> Result<()> {
    let _lock = lock::exclusive("agent")?;
    let bed = Testbed::new()?;
    let data = TempDir::new("kill9")?;
    let iface = bed.host_iface();
    let listen = SocketAddr::from((bed.peer_v4(), 8000));
    let mock = MockServer::start(Some(&bed), &[listen], &["--plan", "200x3,429"])?;
    let agent = Agent::start_with(&[iface], data.path(), &WIRE_ONLY)?;
    let links = agent.bpf_links()?;
    let ifindex = inspect::ifindex(iface)?;
    let kinds: Vec<&str> = links
        .iter()
        .filter(|l| l.ifindex == Some(ifindex))
        .map(|l| l.link_type.as_str())
        .collect();
    ensure!(
        kinds.contains(&"xdp") && kinds.contains(&"tcx"),
        "the agent should hold an xdp and a tcx link on {iface} (ifindex {ifindex}): {links:?}"
    );

    let load = run::spawn_load(None, listen, 20_000, 4, &[], 60)?;
    // Kill once the journal has records on disk (it is flushed every 200 ms).
    let start = Instant::now();
    loop {
        let written: u64 = journal::files(data.path())?
            .iter()
            .map(|f| std::fs::metadata(f).map(|m| m.len()).unwrap_or(0))
            .sum();
        if written > 20_000 {
            break;
        }
        ensure!(
            start.elapsed() < Duration::from_secs(20),
            "the journal stayed under 20 kB for 20 s of load\n{}",
            agent.output()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    agent.kill9()?;
    let summary = load.finish()?;
    mock.finish()?;
    ensure!(summary.sent == 20_000, "client: {summary:?}");

    // Nothing stays attached: no XDP, no TC program on the device, and neither link
    // exists any more (bpftool 7.1 cannot show tcx per device; the link ids can).
    let gone = Instant::now();
    loop {
        let xdp = inspect::xdp_programs(None, iface)?;
        let tc = inspect::tc_programs(None, iface)?;
        let all = inspect::bpf_link_ids()?;
        let left: Vec<_> = links.iter().filter(|l| all.contains(&l.id)).collect();
        if xdp.is_empty() && tc.is_empty() && left.is_empty() {
            break;
        }
        ensure!(
            gone.elapsed() < Duration::from_secs(5),
            "5 s after kill -9: xdp {xdp:?}, tc {tc:?}, links still there {left:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    let dir = data.path().to_str().context("path")?;
    let query = ["journal", "--data-dir", dir, "--format", "jsonl"];
    let first = journal::ratewire_ok(&query)?;
    let first_out = String::from_utf8(first.stdout)?;
    let records = journal::parse_jsonl(&first_out, "ratewire journal")?;
    let responses = records.iter().filter(|r| r.kind == "response").count();
    ensure!(
        responses > 0,
        "ratewire journal read no responses after kill -9"
    );
    ensure!(
        records
            .iter()
            .all(|r| r.kind == "gap" || r.status.is_some()),
        "only responses expected: {records:?}"
    );

    // A crash mid-write: half a JSON object, no newline, at the end of the newest file.
    let newest = journal::files(data.path())?
        .pop()
        .context("no journal files")?;
    let text = std::fs::read(&newest)?;
    let half = r#"{"v":1,"kind":"response","unix_ns":17000000000000000"#;
    std::fs::OpenOptions::new()
        .append(true)
        .open(&newest)?
        .write_all(half.as_bytes())?;
    // The torn line is the one after the last newline (if the kill itself left a
    // partial line, the half object extends that same line).
    let line = text.iter().filter(|&&b| b == b'\n').count() + 1;
    let name = newest
        .file_name()
        .and_then(|n| n.to_str())
        .context("file name")?;

    let second = journal::ratewire(&query)?;
    let stderr = String::from_utf8_lossy(&second.stderr);
    ensure!(
        second.status.success(),
        "ratewire journal failed on a torn line ({}):\n{stderr}",
        second.status
    );
    ensure!(
        String::from_utf8(second.stdout)? == first_out,
        "the good records should read back unchanged with a torn line at the end"
    );
    let want = format!("{name}:{line}: torn line");
    ensure!(
        stderr.contains(&want),
        "stderr should report {want:?}:\n{stderr}"
    );
    eprintln!(
        "kill -9: {responses} responses read back; torn line reported as: {}",
        stderr.lines().find(|l| l.contains("torn")).unwrap_or("")
    );
    Ok(())
}
