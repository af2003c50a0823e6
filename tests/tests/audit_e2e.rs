//! `ratewire audit` on real benchmark runs: Locust (installed from PyPI into a
//! throw-away venv) loads two mock upstreams in the netns testbed while one agent
//! watches the host end of the veth and journals every response; then `ratewire
//! audit` reconciles Locust's own reports with that journal.
//!
//! - Run A, 4 users against `:8000`, honest: Locust's `--json-file` must pass (exit 0)
//!   with every wire response `consistent`; its `--csv` files too, except that Locust
//!   stops writing them up to two seconds before the end, so the run's last responses
//!   are `boundary` (and only those).
//! - Run B, 1 user against `:8001`, with a per-request JSON Lines log written from
//!   Locust's `request` event (`--field-time ts --field-status status`): with the true
//!   statuses it must pass, all `consistent`; with every 429 written as 500, as
//!   genai-bench's Cohere user does (`except RequestException: 500`), it must fail
//!   with exit 1 and exactly one `misreported` per wire 429. One user: a request's
//!   time alone tells it apart on the wire (see `CONCURRENT_TIMES` below).
//!
//! The wire side of every audit must equal what the mock says it sent.
//!
//! `RATEWIRE_KEEP_TMP=1` keeps the temporary directory (venv, journal, reports).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use serde_json::Value;

use ratewire_tests::agent::Agent;
use ratewire_tests::bins;
use ratewire_tests::journal;
use ratewire_tests::lock;
use ratewire_tests::mock::counts::Counts;
use ratewire_tests::netns::Testbed;
use ratewire_tests::proc::Proc;
use ratewire_tests::run::MockServer;
use ratewire_tests::tmp::TempDir;

const PLAN: &[&str] = &["--plan", "200x4,429", "--retry-after", "1"];
const LOCUST: &str = "locust==2.47.0";
const RUN_TIME: &str = "10s";
/// Time for the agent's counters to reach the mock's after the runs.
const SETTLE: Duration = Duration::from_secs(5);

// CONCURRENT_TIMES: why the per-request log comes from a one-user run. With 4 users
// (20 ms wait) the users' requests leave in bunches: the median gap between
// consecutive wire request heads was 0.4 ms, less than Locust's own timing jitter, so
// a timestamp cannot say which wire response is whose. The matcher ranks time
// distance (in ms) before status agreement, so on honest 4-user logs it paired some
// 429s with a neighbour's 200 and failed the audit (exit 1) with N `misreported`
// 429 -> 200 and N `phantom` 200 -> 429: N = 25 logging the request's start, 3 its
// middle, 1 its end, in one run of 1,784 requests.

/// A plain HttpUser: every non-2xx is a failure whose text names the status
/// (`HTTPError('429 Client Error: ...')`). With `RW_TRUE_LOG`/`RW_MAPPED_LOG` set,
/// every request is also logged from Locust's `request` event: `ts` = when Locust
/// started it (Unix seconds), `status` as received, or 500 for a 429 in the mapped
/// log.
const LOCUSTFILE: &str = r#"
import json
import os

from locust import HttpUser, constant, events, task

if os.environ.get("RW_TRUE_LOG"):
    TRUE_LOG = open(os.environ["RW_TRUE_LOG"], "w", buffering=1)
    MAPPED_LOG = open(os.environ["RW_MAPPED_LOG"], "w", buffering=1)

    @events.request.add_listener
    def log_request(response_time, response, exception, start_time=None, **_kwargs):
        status = getattr(response, "status_code", 0) or "connection error"
        line = {"ts": start_time, "status": status}
        TRUE_LOG.write(json.dumps(line) + "\n")
        line["status"] = 500 if status == 429 else status
        MAPPED_LOG.write(json.dumps(line) + "\n")


class ChatUser(HttpUser):
    wait_time = constant(0.02)

    @task
    def chat(self):
        body = {"model": "mock-model", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 8}
        with self.client.post("/v1/chat/completions", json=body, catch_response=True) as resp:
            if resp.status_code == 200:
                resp.success()
            # Anything else: Locust's own raise_for_status makes it a failure.
"#;

/// `Command::output`, failing with the command line and its output unless it
/// exited 0.
fn output_ok(what: &str, cmd: &mut Command) -> Result<Output> {
    let out = cmd
        .output()
        .with_context(|| format!("{what}: could not start {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{what} failed ({}): {cmd:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(out)
}

/// `python3 -m venv DIR/venv` and `pip install PACKAGES` into it: the venv's `bin`.
/// Nothing is cached outside `dir` but pip's own download cache. A failure is the
/// test's failure, with pip's message: the tool under test must be the real one.
fn venv_with(dir: &Path, packages: &[&str]) -> Result<PathBuf> {
    let venv = dir.join("venv");
    output_ok(
        "creating a Python venv (Debian: apt-get install python3-venv)",
        Command::new("python3").arg("-m").arg("venv").arg(&venv),
    )?;
    let bin = venv.join("bin");
    output_ok(
        &format!("pip install {}", packages.join(" ")),
        Command::new(bin.join("pip"))
            .args(["install", "--quiet", "--disable-pip-version-check"])
            .args(packages),
    )?;
    Ok(bin)
}

/// One `ratewire audit --output json` run: its exit code and document.
struct AuditRun {
    code: i32,
    doc: Value,
    /// The command and its stderr, for failure messages.
    context: String,
}

impl AuditRun {
    fn u64_at(&self, pointer: &str) -> u64 {
        self.doc
            .pointer(pointer)
            .and_then(Value::as_u64)
            .unwrap_or_else(|| panic!("no integer at {pointer}\n{}", self.context))
    }

    fn totals(&self) -> BTreeMap<String, u64> {
        verdicts(&self.doc["totals"])
    }

    /// (verdict, wire, reported, count) of every finding of the one source, summed
    /// over runs, sorted; `-` for null.
    fn findings(&self) -> Vec<(String, String, String, u64)> {
        let mut map = BTreeMap::new();
        for run in self.doc["sources"][0]["runs"]
            .as_array()
            .into_iter()
            .flatten()
        {
            for f in run["findings"].as_array().into_iter().flatten() {
                let text = |v: &Value| v.as_str().unwrap_or("-").to_string();
                let key = (text(&f["verdict"]), text(&f["wire"]), text(&f["reported"]));
                *map.entry(key).or_insert(0) += f["count"].as_u64().unwrap_or(0);
            }
        }
        map.into_iter().map(|((v, w, r), n)| (v, w, r, n)).collect()
    }
}

fn verdicts(v: &Value) -> BTreeMap<String, u64> {
    v.as_object()
        .into_iter()
        .flatten()
        .map(|(k, n)| (k.clone(), n.as_u64().unwrap_or(u64::MAX)))
        .collect()
}

/// The six verdicts, all present (the schema always has all six).
fn expect_totals(pairs: &[(&str, u64)]) -> BTreeMap<String, u64> {
    let mut out: BTreeMap<String, u64> = [
        "consistent",
        "misreported",
        "dropped",
        "retry_absorbed",
        "phantom",
        "boundary",
    ]
    .into_iter()
    .map(|k| (k.to_string(), 0))
    .collect();
    for (k, n) in pairs {
        out.insert(k.to_string(), *n);
    }
    out
}

fn finding(verdict: &str, wire: &str, reported: &str, n: u64) -> (String, String, String, u64) {
    (verdict.into(), wire.into(), reported.into(), n)
}

/// `ratewire audit --wire DATA_DIR --upstream UPSTREAM --report REPORT --output json
/// ARGS...` (a Locust report does not name its upstream: the audit is told).
fn audit(data_dir: &Path, upstream: &str, report: &Path, args: &[&str]) -> Result<AuditRun> {
    let mut cmd = Command::new(bins::agent()?);
    cmd.arg("audit")
        .arg("--wire")
        .arg(data_dir)
        .args(["--upstream", upstream])
        .arg("--report")
        .arg(report)
        .args(["--output", "json"])
        .args(args);
    let out = cmd.output().with_context(|| format!("starting {cmd:?}"))?;
    let code = out.status.code().unwrap_or(-1);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let context = format!(
        "{cmd:?} exited {code}\n--- stderr ---\n{}--- stdout ---\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: Value = serde_json::from_str(&stdout)
        .with_context(|| format!("audit output is not JSON\n{context}"))?;
    ensure!(
        doc["schema"] == "ratewire.audit/v1",
        "schema is {}\n{context}",
        doc["schema"]
    );
    ensure!(
        doc["exit_code"].as_i64() == Some(code.into()),
        "exit status {code} but the document says exit_code {}\n{context}",
        doc["exit_code"]
    );
    let run = AuditRun { code, doc, context };
    eprintln!(
        "audit {} {}: exit {code}, totals {:?}, findings {:?}",
        report.file_name().unwrap_or_default().to_string_lossy(),
        args.join(" "),
        run.totals(),
        run.findings()
    );
    Ok(run)
}

/// The wire side of an audit is the journal the agent wrote: for `upstream` it must
/// hold exactly what that mock sent, with `records` records in all (both upstreams),
/// nothing lost, nothing torn, no request without a response.
fn check_wire(a: &AuditRun, upstream: &str, sent: &Counts, records: u64) -> Result<()> {
    let total: u64 = sent.values().sum();
    let wire = &a.doc["wire"];
    let upstreams = wire["upstreams"]
        .as_object()
        .with_context(|| format!("no wire.upstreams\n{}", a.context))?;
    ensure!(
        upstreams.keys().collect::<Vec<_>>() == [upstream],
        "journal upstreams {:?}, expected only {upstream}\n{}",
        upstreams.keys().collect::<Vec<_>>(),
        a.context
    );
    let seen: Counts = verdicts(&wire["upstreams"][upstream]);
    ensure!(
        &seen == sent,
        "journal per status {seen:?}, mock sent {sent:?}\n{}",
        a.context
    );
    for (field, expected) in [
        ("/wire/responses", total),
        ("/wire/records", records),
        ("/wire/no_responses", 0),
        ("/wire/events_lost", 0),
        ("/wire/torn_lines", 0),
        ("/wire/unusable_records", 0),
        ("/sources/0/skipped_lines", 0),
    ] {
        ensure!(
            a.u64_at(field) == expected,
            "{field} is {}, expected {expected}\n{}",
            a.u64_at(field),
            a.context
        );
    }
    Ok(())
}

/// Unix ns of an RFC 3339 UTC time with nanoseconds (`2026-11-23T11:49:08.366044000Z`),
/// the only form the audit writes.
fn unix_ns(rfc3339: &str) -> Result<u64> {
    let bad = || format!("not an RFC 3339 UTC time: {rfc3339:?}");
    let (date, time) = rfc3339.split_once('T').with_context(bad)?;
    let ymd: Vec<i64> = date
        .split('-')
        .map(str::parse)
        .collect::<Result<_, _>>()
        .with_context(bad)?;
    let time = time.strip_suffix('Z').with_context(bad)?;
    let (hms, frac) = time.split_once('.').unwrap_or((time, "0"));
    let hms: Vec<i64> = hms
        .split(':')
        .map(str::parse)
        .collect::<Result<_, _>>()
        .with_context(bad)?;
    ensure!(ymd.len() == 3 && hms.len() == 3, bad());
    // Days from civil (Howard Hinnant's algorithm).
    let (y, m, d) = (ymd[0] - i64::from(ymd[1] <= 2), ymd[1], ymd[2]);
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + hms[0] * 3600 + hms[1] * 60 + hms[2];
    let frac_ns: u64 = format!("{frac:0<9}")[..9].parse().with_context(bad)?;
    Ok(secs as u64 * 1_000_000_000 + frac_ns)
}

/// Status → `ratewire_http_responses_total` for `upstream`, summed over the other
/// labels (route, tls).
fn agent_counts(agent: &Agent, upstream: &str) -> Result<Counts> {
    Ok(agent
        .metrics()?
        .sum_by(
            "ratewire_http_responses_total",
            &[("upstream", upstream)],
            "status",
        )?
        .into_iter()
        .map(|(status, v)| (status, v as u64))
        .collect())
}

/// A headless Locust run of `LOCUSTFILE`: `users` users against `target` for
/// `RUN_TIME`, writing `DIR/locust.json` and `DIR/locust_*.csv`, and with `log`, the
/// per-request logs `DIR/requests.jsonl` and `DIR/requests-429-as-500.jsonl`.
struct LocustRun {
    name: &'static str,
    dir: PathBuf,
    proc: Proc,
}

impl LocustRun {
    fn start(
        bin: &Path,
        locustfile: &Path,
        dir: PathBuf,
        name: &'static str,
        target: SocketAddr,
        users: u32,
        log: bool,
    ) -> Result<LocustRun> {
        std::fs::create_dir_all(&dir)?;
        let mut cmd = Command::new(bin.join("locust"));
        cmd.current_dir(&dir)
            .arg("-f")
            .arg(locustfile)
            .args(["--headless", "--only-summary", "--loglevel", "WARNING"])
            .args(["-u", &users.to_string(), "-r", &users.to_string()])
            .args(["-t", RUN_TIME])
            // Users finish the request in hand at the stop: nothing is cut off in flight.
            .args(["--stop-timeout", "5"])
            // 429s are failures; that is the point, not a reason to exit 1.
            .args(["--exit-code-on-error", "0"])
            .args(["--host", &format!("http://{target}")])
            // Locust adds `.json` to the name it is given.
            .args(["--json-file", "locust", "--csv", "locust"]);
        if log {
            cmd.env("RW_TRUE_LOG", dir.join("requests.jsonl"))
                .env("RW_MAPPED_LOG", dir.join("requests-429-as-500.jsonl"));
        }
        Ok(LocustRun {
            name,
            proc: Proc::spawn(name, cmd)?,
            dir,
        })
    }

    fn wait(mut self) -> Result<PathBuf> {
        let status = self.proc.wait(Duration::from_secs(60))?;
        ensure!(
            status.success(),
            "{} exited with {status}\n{}",
            self.name,
            self.proc.output()
        );
        Ok(self.dir)
    }
}

/// Locust's own `locust.json` must count what the mock sent: `total` requests,
/// `failures` of them failed.
fn check_locust_json(path: &Path, total: u64, failures: u64) -> Result<()> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let entries: Vec<Value> = serde_json::from_str(&text)?;
    let sum = |field: &str| -> u64 { entries.iter().filter_map(|e| e[field].as_u64()).sum() };
    ensure!(
        (sum("num_requests"), sum("num_failures")) == (total, failures),
        "{} counts {} requests / {} failures; the mock sent {total}, {failures} of them 429",
        path.display(),
        sum("num_requests"),
        sum("num_failures")
    );
    Ok(())
}

fn n_status(counts: &Counts, status: &str) -> u64 {
    counts.get(status).copied().unwrap_or(0)
}

/// The mock sent 200s and 429s only, in the plan's 4:1 cycle.
fn check_plan(name: &str, sent: &Counts) -> Result<()> {
    let total: u64 = sent.values().sum();
    let n429 = n_status(sent, "429");
    ensure!(
        sent.keys().all(|k| k == "200" || k == "429") && n429 > 0,
        "mock {name} sent {sent:?}: expected 200s and 429s only"
    );
    ensure!(
        n429 == total / 5,
        "mock {name} counts off the plan's 200x4,429 cycle: {sent:?}"
    );
    Ok(())
}

#[test]
fn locust_runs_audited_against_the_agent_journal() -> Result<()> {
    let started = Instant::now();
    let tmp = TempDir::new("audit-e2e")?;
    // Installing first, outside the agent lock: it takes a while the first time.
    // The version the audit's Locust readers were made with (the audit README).
    let bin = venv_with(tmp.path(), &[LOCUST])?;
    let version = output_ok(
        "locust --version",
        Command::new(bin.join("locust")).arg("--version"),
    )?;
    let version = String::from_utf8_lossy(&version.stdout);
    eprintln!(
        "{} (venv ready after {:.1?})",
        version.split(" from ").next().unwrap_or_default().trim(),
        started.elapsed()
    );

    let _lock = lock::exclusive("agent")?;
    let bed = Testbed::new()?;
    let (target_a, target_b) = (
        SocketAddr::from((bed.peer_v4(), 8000)),
        SocketAddr::from((bed.peer_v4(), 8001)),
    );
    let (up_a, up_b) = (target_a.to_string(), target_b.to_string());
    let mock_a = MockServer::start(Some(&bed), &[target_a], PLAN)?;
    let mock_b = MockServer::start(Some(&bed), &[target_b], PLAN)?;
    let data_dir = tmp.path().join("journal");
    std::fs::create_dir_all(&data_dir)?;
    // Wire only: the TLS uprobes would also journal every other process's HTTPS
    // (pip, other tests), which must not enter the whole-journal identities below.
    let agent = Agent::start_with(&[bed.host_iface()], &data_dir, &["--tls", "off"])?;

    // Locust on the host: requests leave through the veth (TC egress), the mock's
    // responses come back into it (XDP ingress). Both runs at once.
    let locustfile = tmp.path().join("locustfile.py");
    std::fs::write(&locustfile, LOCUSTFILE)?;
    let run_a = LocustRun::start(
        &bin,
        &locustfile,
        tmp.path().join("a"),
        "locust A",
        target_a,
        4,
        false,
    )?;
    let run_b = LocustRun::start(
        &bin,
        &locustfile,
        tmp.path().join("b"),
        "locust B",
        target_b,
        1,
        true,
    )?;
    let (dir_a, dir_b) = (run_a.wait()?, run_b.wait()?);

    let (sent_a, sent_b) = (mock_a.finish()?, mock_b.finish()?);
    check_plan("A", &sent_a)?;
    check_plan("B", &sent_b)?;
    let settle = Instant::now();
    loop {
        let seen = (agent_counts(&agent, &up_a)?, agent_counts(&agent, &up_b)?);
        if seen == (sent_a.clone(), sent_b.clone()) {
            break;
        }
        ensure!(
            settle.elapsed() < SETTLE,
            "agent counts {seen:?}, mocks sent {sent_a:?} / {sent_b:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // SIGTERM: the journal is flushed on the way out.
    agent.stop()?;
    eprintln!(
        "runs done after {:.1?}: mock A sent {sent_a:?}, mock B sent {sent_b:?}",
        started.elapsed()
    );
    let (total_a, total_b) = (sent_a.values().sum::<u64>(), sent_b.values().sum::<u64>());
    let (a200, a429) = (n_status(&sent_a, "200"), n_status(&sent_a, "429"));
    let (b200, b429) = (n_status(&sent_b, "200"), n_status(&sent_b, "429"));
    // The journal, read directly: every response of each mock, nothing else.
    let records = journal::read_dir(&data_dir)?;
    for (upstream, sent) in [(&up_a, &sent_a), (&up_b, &sent_b)] {
        let journaled = journal::outcomes_of(&records, upstream);
        ensure!(
            &journaled == sent,
            "journal for {upstream}: {journaled:?}, the mock sent {sent:?}"
        );
    }
    ensure!(
        records.len() as u64 == total_a + total_b,
        "{} journal records for {} responses",
        records.len(),
        total_a + total_b
    );
    let records = records.len() as u64;

    // Locust's own view of the runs, before anyone judges them.
    check_locust_json(&dir_a.join("locust.json"), total_a, a429)?;
    check_locust_json(&dir_b.join("locust.json"), total_b, b429)?;
    let (true_log, mapped_log) = (
        dir_b.join("requests.jsonl"),
        dir_b.join("requests-429-as-500.jsonl"),
    );
    let logged = std::fs::read_to_string(&true_log)
        .with_context(|| format!("reading {}", true_log.display()))?
        .lines()
        .count() as u64;
    ensure!(
        logged == total_b,
        "{} has {logged} lines for {total_b} requests",
        true_log.display()
    );

    // 1. Run A, Locust's JSON: complete, failures without codes. Every wire response
    //    is consistent; nothing was in flight at the edges (--stop-timeout).
    let a = audit(&data_dir, &up_a, &dir_a.join("locust.json"), &[])?;
    check_wire(&a, &up_a, &sent_a, records)?;
    ensure!(a.code == 0, "honest Locust JSON must pass\n{}", a.context);
    ensure!(
        a.doc["sources"][0]["format"] == "locust-json",
        "{}",
        a.context
    );
    ensure!(
        a.totals() == expect_totals(&[("consistent", total_a)]),
        "locust.json totals {:?}\n{}",
        a.totals(),
        a.context
    );
    ensure!(
        a.findings()
            == [
                finding("consistent", "200", "success", a200),
                finding("consistent", "429", "failure", a429),
            ],
        "locust.json findings {:?}\n{}",
        a.findings(),
        a.context
    );

    // 2. Run A, Locust's CSV (by prefix): failures carry their code, but the writer's
    //    last tick is up to ~2 s before the end. The rest is consistent, 429 as 429;
    //    what it misses is boundary, and it is the run's last responses.
    let prefix_a = dir_a.join("locust");
    let a = audit(&data_dir, &up_a, &prefix_a, &[])?;
    check_wire(&a, &up_a, &sent_a, records)?;
    ensure!(a.code == 0, "honest Locust CSV must pass\n{}", a.context);
    ensure!(
        a.doc["sources"][0]["format"] == "locust-csv",
        "{}",
        a.context
    );
    let stats = std::fs::read_to_string(dir_a.join("locust_stats.csv"))?;
    let aggregated: Vec<&str> = stats
        .lines()
        .find(|l| l.starts_with(",Aggregated,"))
        .context("no Aggregated row in locust_stats.csv")?
        .split(',')
        .collect();
    let (csv_requests, csv_failures): (u64, u64) = (aggregated[2].parse()?, aggregated[3].parse()?);
    let boundary = total_a - csv_requests;
    ensure!(
        a.totals() == expect_totals(&[("consistent", csv_requests), ("boundary", boundary)]),
        "locust csv totals {:?}; the CSV counts {csv_requests} of {total_a} requests\n{}",
        a.totals(),
        a.context
    );
    let mut expected = vec![
        finding("consistent", "200", "success", csv_requests - csv_failures),
        finding("consistent", "429", "429", csv_failures),
        finding("boundary", "200", "-", a200 - (csv_requests - csv_failures)),
        finding("boundary", "429", "-", a429 - csv_failures),
    ];
    expected.retain(|f| f.3 > 0);
    expected.sort();
    ensure!(
        a.findings() == expected,
        "locust csv findings {:?}, expected {expected:?}\n{}",
        a.findings(),
        a.context
    );
    // The window ends at the last stats-history row, a whole second: the row was
    // written during that second. So the responses the CSV missed are the run's last
    // ones: all of them after the second began, at least those after it ended.
    let window = &a.doc["sources"][0]["runs"][0]["window"];
    let end = unix_ns(window[1].as_str().context("window end")?)?;
    let times: Vec<u64> = journal::read_dir(&data_dir)?
        .iter()
        .filter(|r| r.upstream.as_deref() == Some(up_a.as_str()))
        .map(|r| r.unix_ns)
        .collect();
    let after = |t0: u64| times.iter().filter(|&&t| t >= t0).count() as u64;
    let (surely, maybe) = (after(end + 1_000_000_000), after(end));
    eprintln!(
        "locust csv: last history row {}, {maybe} wire responses from then, {surely} after \
         that second; {boundary} boundary",
        window[1]
    );
    ensure!(
        (surely..=maybe).contains(&boundary),
        "{boundary} boundary, but {maybe} responses from the last history row's second on, \
         {surely} after it\n{}",
        a.context
    );

    // 3. Run B, the per-request log with the true statuses: request grain, all consistent.
    let fields = ["--field-time", "ts", "--field-status", "status"];
    let a = audit(&data_dir, &up_b, &true_log, &fields)?;
    check_wire(&a, &up_b, &sent_b, records)?;
    ensure!(a.code == 0, "honest request log must pass\n{}", a.context);
    ensure!(a.doc["sources"][0]["format"] == "jsonl", "{}", a.context);
    ensure!(
        a.doc["sources"][0]["runs"][0]["grain"] == "request",
        "{}",
        a.context
    );
    ensure!(
        a.totals() == expect_totals(&[("consistent", total_b)]),
        "requests.jsonl totals {:?}\n{}",
        a.totals(),
        a.context
    );
    ensure!(
        a.findings()
            == [
                finding("consistent", "200", "200", b200),
                finding("consistent", "429", "429", b429),
            ],
        "requests.jsonl findings {:?}\n{}",
        a.findings(),
        a.context
    );

    // 4. The same run with its 429s written as 500: the gate closes, exit 1, one
    //    misreport per wire 429 and nothing else.
    let a = audit(&data_dir, &up_b, &mapped_log, &fields)?;
    check_wire(&a, &up_b, &sent_b, records)?;
    ensure!(
        a.code == 1,
        "the 429-as-500 log must fail with exit 1\n{}",
        a.context
    );
    ensure!(
        a.totals() == expect_totals(&[("consistent", b200), ("misreported", b429)]),
        "429-as-500 totals {:?}\n{}",
        a.totals(),
        a.context
    );
    ensure!(
        a.u64_at("/discrepancies") == b429 && a.doc["passed"] == false,
        "{}",
        a.context
    );
    ensure!(
        a.findings()
            == [
                finding("consistent", "200", "200", b200),
                finding("misreported", "429", "500", b429),
            ],
        "429-as-500 findings {:?}\n{}",
        a.findings(),
        a.context
    );
    // --tolerance is the gate's one knob: exactly the misreports pass, one fewer fails.
    let at = b429.to_string();
    let a = audit(
        &data_dir,
        &up_b,
        &mapped_log,
        &[&fields[..], &["--tolerance", &at]].concat(),
    )?;
    ensure!(a.code == 0, "--tolerance {at} must pass\n{}", a.context);
    let below = (b429 - 1).to_string();
    let a = audit(
        &data_dir,
        &up_b,
        &mapped_log,
        &[&fields[..], &["--tolerance", &below]].concat(),
    )?;
    ensure!(a.code == 1, "--tolerance {below} must fail\n{}", a.context);

    drop(bed);
    eprintln!("audit e2e done in {:.1?}", started.elapsed());
    Ok(())
}
