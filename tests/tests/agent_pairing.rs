//! Request/response pairing on the real kernel: the agent watches the host end of a
//! testbed veth (TC egress sees the requests, XDP ingress the responses) while the mock
//! upstream in the namespace answers by its plan, and every outcome the agent reports
//! (metrics and journal) must equal what the mock says it did, exactly.
//!
//! - a 200 whose body segment starts with `HTTP/1.1 429` is one 200, never a 429;
//! - RST, FIN and silence become `reset`, `closed` and `timeout`, and every request
//!   ends exactly once;
//! - `Retry-After` (seconds, HTTP-date) and `retry-after-ms` land in the histogram;
//! - the OpenAI Python SDK's hidden retries show in `ratewire_client_retries_total`.
//!
//! Every test holds the machine-wide "agent" lock and starts its own agent with its own
//! journal directory and metrics port.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};
use ratewire_tests::agent::Agent;
use ratewire_tests::journal;
use ratewire_tests::lock;
use ratewire_tests::mock::counts::Counts;
use ratewire_tests::netns::Testbed;
use ratewire_tests::prom::Metrics;
use ratewire_tests::run::{self, MockServer};
use ratewire_tests::tmp::TempDir;

const RESPONSES: &str = "ratewire_http_responses_total";
const NO_RESPONSE: &str = "ratewire_http_no_response_total";
const CHAT: &str = "/v1/chat/completions";
/// Counters come from kernel maps and are exact at once; timeouts are decided by the
/// agent's 200 ms sweep. Both settle well within this.
const SETTLE: Duration = Duration::from_secs(10);

fn expected(mock: &Counts) -> Counts {
    ratewire_tests::mock::counts::as_wire_outcomes(mock)
}

fn wait_outcomes(agent: &Agent, upstream: &str, want: &Counts) -> Result<Metrics> {
    agent.wait_outcomes(SETTLE, upstream, want)
}

fn total(counts: &Counts) -> u64 {
    counts.values().sum()
}

/// A 200 whose body arrives as its own segment starting with `HTTP/1.1 429 Too Many
/// Requests`: the flow no longer awaits a response when it arrives, so it is not a
/// response. Counted once, as 200.
#[test]
fn split429_body_is_one_200_never_a_429() -> Result<()> {
    let _lock = lock::exclusive("agent")?;
    let bed = Testbed::new()?;
    let data = TempDir::new("split429")?;
    let listen = SocketAddr::from((bed.peer_v4(), 8000));
    let upstream = listen.to_string();
    let mock = MockServer::start(
        Some(&bed),
        &[listen],
        &["--plan", "200,split429", "--split-pause-ms", "20"],
    )?;
    // Wire only: the unpaired counter is global, and with the TLS uprobes on it would
    // also count other processes' HTTPS traffic.
    let agent = Agent::start_with(&[bed.host_iface()], data.path(), &["--tls", "off"])?;

    let requests = 200;
    let summary = run::load(None, listen, requests, 4, &[])?;
    let sent = mock.finish()?;
    ensure!(
        sent == [("200".into(), 100), ("split429".into(), 100)].into(),
        "mock sent {sent:?}"
    );
    ensure!(
        summary.statuses == [("200".to_string(), requests)].into(),
        "the client should read {requests} 200s: {summary:?}"
    );
    let want: Counts = [("200".to_string(), requests)].into();
    let m = wait_outcomes(&agent, &upstream, &want)?;
    let by_route = m.counts_by(RESPONSES, &[("upstream", &upstream)], "route")?;
    ensure!(
        by_route == [(CHAT.to_string(), requests)].into(),
        "routes: {by_route:?}"
    );
    let tls = m.counts_by(RESPONSES, &[("upstream", &upstream)], "tls")?;
    ensure!(
        tls == [("false".to_string(), requests)].into(),
        "tls: {tls:?}"
    );
    let unpaired = m
        .value("ratewire_http_unpaired_responses_total", &[])?
        .unwrap_or(0.0);
    // Each misleading body segment starts with a status line on a flow that awaits
    // nothing: that is what the unpaired counter is for.
    ensure!(
        unpaired == 100.0,
        "ratewire_http_unpaired_responses_total is {unpaired}, expected one per misleading \
         body segment (100)"
    );
    agent.stop()?;

    let records = journal::read_dir(data.path())?;
    let outcomes = journal::outcomes_of(&records, &upstream);
    ensure!(
        outcomes == want,
        "journal outcomes {outcomes:?}, expected {want:?}"
    );
    Ok(())
}

/// 200, 429, RST, FIN and silence, with `--response-timeout 1` and a client that waits
/// 5 s: each no-response outcome under its reason with the mock's exact count, and
/// every request ends exactly once.
#[test]
fn no_response_outcomes_each_counted_once() -> Result<()> {
    let _lock = lock::exclusive("agent")?;
    let bed = Testbed::new()?;
    let data = TempDir::new("noresp")?;
    let listen = SocketAddr::from((bed.peer_v4(), 8000));
    let upstream = listen.to_string();
    let mock = MockServer::start(
        Some(&bed),
        &[listen],
        &["--plan", "200,429,reset,close,stall"],
    )?;
    let agent = Agent::start_with(
        &[bed.host_iface()],
        data.path(),
        &["--response-timeout", "1"],
    )?;

    // One connection per request or so: each stalled request holds its connection
    // for the client's 5 s, and they should wait side by side, not in turn.
    let requests = 50;
    let summary = run::load(
        None,
        listen,
        requests,
        requests as usize,
        &["--request-timeout-ms", "5000"],
    )?;
    let sent = mock.finish()?;
    let per_step = requests / 5;
    let want_sent: Counts = ["200", "429", "reset", "close", "stall"]
        .iter()
        .map(|s| (s.to_string(), per_step))
        .collect();
    ensure!(sent == want_sent, "mock sent {sent:?}");
    let client: Counts = summary
        .statuses
        .iter()
        .chain(&summary.failures)
        .map(|(k, v)| (k.clone(), *v))
        .collect();
    let want_client: Counts = [
        ("200", per_step),
        ("429", per_step),
        ("reset", per_step),
        ("closed", per_step),
        ("timeout", per_step),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), *v))
    .collect();
    ensure!(
        client == want_client,
        "client outcomes {client:?}, expected {want_client:?}"
    );

    let want = expected(&sent);
    let m = wait_outcomes(&agent, &upstream, &want)?;
    let labels = [("upstream", upstream.as_str())];
    let responses = m.sum(RESPONSES, &labels);
    let no_response = m.sum(NO_RESPONSE, &labels);
    ensure!(
        responses + no_response == requests as f64
            && summary.sent == requests
            && total(&sent) == requests,
        "responses {responses} + no_response {no_response} must equal the {requests} \
         requests sent (client sent {}, mock saw {})",
        summary.sent,
        total(&sent)
    );
    let routes = m.counts_by(NO_RESPONSE, &labels, "route")?;
    ensure!(
        routes == [(CHAT.to_string(), 3 * per_step)].into(),
        "no_response routes: {routes:?}"
    );
    agent.stop()?;

    let records = journal::read_dir(data.path())?;
    let outcomes = journal::outcomes_of(&records, &upstream);
    ensure!(
        outcomes == want,
        "journal outcomes {outcomes:?}, expected {want:?}"
    );
    for r in records.iter().filter(|r| r.kind == "no_response") {
        ensure!(
            r.status.is_none() && r.method.as_deref() == Some("POST"),
            "no_response record with a status or without its request: {r:?}"
        );
    }
    for r in records
        .iter()
        .filter(|r| r.reason.as_deref() == Some("timeout"))
    {
        let waited = r.unix_ns - r.request_unix_ns.context("timeout without request time")?;
        ensure!(
            (1_000_000_000..5_000_000_000).contains(&waited),
            "a timeout decided {waited} ns after the request (--response-timeout 1, \
             client gives up at 5 s): {r:?}"
        );
    }
    Ok(())
}

/// One agent, three mocks announcing the same 2 s three ways. The histogram's count is
/// the number of 429s; its sum is exact for `Retry-After: 2` and `retry-after-ms: 1500`.
/// An HTTP-date has 1 s resolution: the mock writes now+2 s truncated to the second,
/// and the agent counts from the response's arrival (after it was written), so each
/// value is in (1 s - delivery time, 2 s]; 250 ms bounds the delivery time, 10 ms the
/// realtime/monotonic conversion.
#[test]
fn retry_after_seconds_date_and_ms() -> Result<()> {
    let _lock = lock::exclusive("agent")?;
    let bed = Testbed::new()?;
    let data = TempDir::new("retryafter")?;
    let plan = ["--plan", "429,200"];
    let runs: [(&str, u16, Vec<&str>); 3] = [
        ("seconds", 8001, vec!["--retry-after", "2"]),
        (
            "date",
            8002,
            vec!["--retry-after", "2", "--retry-after-date"],
        ),
        ("ms", 8003, vec!["--retry-after-ms", "1500"]),
    ];
    let agent = Agent::start_with(&[bed.host_iface()], data.path(), &[])?;
    let requests = 20;
    let mut sent_429 = BTreeMap::new();
    for (name, port, args) in &runs {
        let listen = SocketAddr::from((bed.peer_v4(), *port));
        let mock = MockServer::start(Some(&bed), &[listen], &[&plan[..], args].concat())?;
        run::load(None, listen, requests, 2, &[])?;
        let sent = mock.finish()?;
        ensure!(
            sent == [("200".into(), requests / 2), ("429".into(), requests / 2)].into(),
            "{name}: mock sent {sent:?}"
        );
        wait_outcomes(&agent, &listen.to_string(), &sent)?;
        sent_429.insert(*name, (listen.to_string(), sent["429"]));
    }
    // The histogram is built from ring-buffer events, a moment after the counters.
    let m = agent.wait_for(SETTLE, |m| {
        for (name, (upstream, n)) in &sent_429 {
            let count = m
                .value(
                    "ratewire_retry_after_seconds_count",
                    &[("upstream", upstream)],
                )?
                .unwrap_or(0.0);
            if count != *n as f64 {
                return Ok(Some(format!(
                    "{name}: ratewire_retry_after_seconds_count{{upstream={upstream}}} is \
                     {count}, the mock sent {n} 429s"
                )));
            }
        }
        Ok(None)
    })?;
    let hist = |suffix: &str, upstream: &str, le: Option<&str>| -> Result<f64> {
        let name = format!("ratewire_retry_after_seconds_{suffix}");
        let mut labels = vec![("upstream", upstream)];
        labels.extend(le.map(|le| ("le", le)));
        m.value(&name, &labels)?
            .with_context(|| format!("no {name} for {upstream} {le:?}"))
    };
    let (up, n) = &sent_429["seconds"];
    let n = *n as f64;
    ensure!(
        hist("sum", up, None)? == 2.0 * n,
        "Retry-After: 2 x {n}: sum {}",
        hist("sum", up, None)?
    );
    ensure!(
        hist("bucket", up, Some("1"))? == 0.0 && hist("bucket", up, Some("2"))? == n,
        "Retry-After: 2 must fall in the le=2 bucket and not le=1"
    );
    let (up, _) = &sent_429["ms"];
    ensure!(
        hist("sum", up, None)? == 1.5 * n,
        "retry-after-ms: 1500 x {n}: sum {}",
        hist("sum", up, None)?
    );
    ensure!(
        hist("bucket", up, Some("1"))? == 0.0 && hist("bucket", up, Some("2"))? == n,
        "retry-after-ms: 1500 must fall in the le=2 bucket and not le=1"
    );
    let (up, _) = &sent_429["date"];
    let sum = hist("sum", up, None)?;
    ensure!(
        sum > n * 0.75 && sum <= n * 2.01,
        "Retry-After as an HTTP-date now+2 s: sum {sum} outside ({}, {}]",
        n * 0.75,
        n * 2.01
    );
    ensure!(
        hist("bucket", up, Some("0.5"))? == 0.0 && hist("bucket", up, Some("5"))? == n,
        "Retry-After as an HTTP-date now+2 s: every value must be in (0.5 s, 5 s]"
    );
    eprintln!("retry-after: HTTP-date sum {sum} s over {n} responses");
    agent.stop()?;

    let records = journal::read_dir(data.path())?;
    for (name, (upstream, _)) in &sent_429 {
        for r in records
            .iter()
            .filter(|r| r.upstream.as_deref() == Some(upstream))
        {
            let ok = match (r.status, *name) {
                (Some(200), _) => r.retry_after_ms.is_none(),
                (Some(429), "seconds") => r.retry_after_ms == Some(2000),
                (Some(429), "ms") => r.retry_after_ms == Some(1500),
                (Some(429), "date") => r
                    .retry_after_ms
                    .is_some_and(|ms| (750..=2010).contains(&ms)),
                _ => false,
            };
            ensure!(ok, "{name}: journal record {r:?}");
        }
    }
    Ok(())
}

/// A throw-away venv with `packages` from PyPI; its `bin` directory. A pip failure is a
/// test failure that says so (never a skip).
fn venv_with(dir: &Path, packages: &[&str]) -> Result<PathBuf> {
    let venv = dir.join("venv");
    let out = Command::new("python3")
        .args(["-m", "venv"])
        .arg(&venv)
        .output()
        .context("running `python3 -m venv` (is python3 with the venv module installed?)")?;
    if !out.status.success() {
        bail!(
            "`python3 -m venv {}` failed: {}",
            venv.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let bin = venv.join("bin");
    let out = Command::new(bin.join("pip"))
        .args(["install", "--quiet"])
        .args(packages)
        .output()
        .context("running pip")?;
    if !out.status.success() {
        bail!(
            "pip could not install {packages:?} (PyPI unreachable?), so the SDK test cannot \
             run:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(bin)
}

const SDK_SCRIPT: &str = r#"
import json, sys, openai
base_url, calls = sys.argv[1], int(sys.argv[2])
client = openai.OpenAI(base_url=base_url, api_key="sk-test", max_retries=2, timeout=10)
ok = 0
for _ in range(calls):
    r = client.chat.completions.create(model="mock", messages=[{"role": "user", "content": "hi"}])
    ok += r.choices[0].message.content == "Hello!"
print(json.dumps({"calls": calls, "ok": ok, "openai": openai.__version__}))
"#;

/// The OpenAI Python SDK retries a 429 on its own and its caller never sees it; the
/// SDK marks each retry with `x-stainless-retry-count`, and the agent counts them.
/// Plan `429,200` with one sequential client: every call's first try gets a 429 and
/// its retry (after `retry-after-ms: 10`) a 200, so the SDK made exactly as many
/// retries as the mock sent 429s.
#[test]
fn openai_sdk_retries_are_counted() -> Result<()> {
    let _lock = lock::exclusive("agent")?;
    let dir = TempDir::new("openai")?;
    let bin = venv_with(dir.path(), &["openai"])?;
    let script = dir.join("calls.py");
    std::fs::write(&script, SDK_SCRIPT)?;

    let bed = Testbed::new()?;
    let listen = SocketAddr::from((bed.peer_v4(), 8000));
    let upstream = listen.to_string();
    let mock = MockServer::start(
        Some(&bed),
        &[listen],
        &["--plan", "429,200", "--retry-after-ms", "10"],
    )?;
    let data = dir.join("data");
    let agent = Agent::start_with(&[bed.host_iface()], &data, &[])?;

    let calls = 10u64;
    let out = Command::new(bin.join("python"))
        .arg(&script)
        .arg(format!("http://{listen}/v1"))
        .arg(calls.to_string())
        .output()
        .context("running the OpenAI SDK script")?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    ensure!(
        out.status.success(),
        "the SDK script failed ({}):\n{stdout}{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value =
        serde_json::from_str(stdout.trim()).with_context(|| format!("SDK output {stdout:?}"))?;
    ensure!(
        report["ok"] == calls,
        "every call should succeed after its retry: {report}"
    );
    let sent = mock.finish()?;
    // Every 429 the mock sent was retried: all calls succeeded, each with one 200.
    let retries = sent.get("429").copied().unwrap_or(0);
    ensure!(
        sent == [("200".into(), calls), ("429".into(), retries)].into() && retries == calls,
        "mock sent {sent:?} for {calls} calls"
    );

    wait_outcomes(&agent, &upstream, &sent)?;
    let m = agent.wait_for(SETTLE, |m| {
        let by_attempt = m.counts_by(
            "ratewire_client_retries_total",
            &[("upstream", &upstream)],
            "attempt",
        )?;
        let want: Counts = [("1".to_string(), retries)].into();
        Ok((by_attempt != want).then(|| {
            format!(
                "ratewire_client_retries_total for {upstream} by attempt: {by_attempt:?}, \
                 the SDK retried {retries} times (mock: {sent:?})"
            )
        }))
    })?;
    let routes = m.counts_by(RESPONSES, &[("upstream", &upstream)], "route")?;
    ensure!(
        routes == [(CHAT.to_string(), 2 * calls)].into(),
        "routes: {routes:?}"
    );
    agent.stop()?;

    let records = journal::read_dir(&data)?;
    let by_retry = journal::count(&records, |r| {
        (r.upstream.as_deref() == Some(upstream.as_str())).then(|| (r.outcome(), r.client_retry))
    });
    let want = [
        (("200".to_string(), Some(1)), calls),
        (("429".to_string(), Some(0)), calls),
    ]
    .into();
    ensure!(
        by_retry == want,
        "journal (status, client_retry) counts {by_retry:?}, expected {want:?}"
    );
    eprintln!("openai {}: {retries} retries counted", report["openai"]);
    Ok(())
}
