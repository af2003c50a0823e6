//! The agent's `/metrics` through a real Prometheus server (Debian's `prometheus`,
//! installed by `cargo xtask setup`): Prometheus scrapes the agent every second, and
//! what its HTTP API answers must equal what the mock upstream reports it sent,
//! exactly. `promtool check metrics` must find nothing to say about the exposition.
//!
//! The agent, the mock and the load client run inside a testbed namespace, on its own
//! `lo` (as agent_e2e's loopback test does); Prometheus runs in the root namespace on
//! 127.0.0.1 and scrapes the agent on the namespace's veth address.

use std::collections::BTreeMap;
use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use serde_json::Value;

use ratewire_tests::agent::Agent;
use ratewire_tests::cmd;
use ratewire_tests::http;
use ratewire_tests::lock;
use ratewire_tests::mock::counts::Counts;
use ratewire_tests::netns::Testbed;
use ratewire_tests::proc::Proc;
use ratewire_tests::run::{self, MockServer};
use ratewire_tests::tmp::TempDir;

const PLAN: &[&str] = &["--plan", "200x6,429x2,500,503", "--retry-after", "2"];
const REQUESTS: u64 = 2_000;
const CONNECTIONS: usize = 4;
/// `Agent::start_in` serves metrics on the namespace's veth address, this port.
const AGENT_METRICS_PORT: u16 = 9429;
const JOB: &str = "ratewire";
/// Prometheus starts in a second or two; a scrape every second.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
const SCRAPE_TIMEOUT: Duration = Duration::from_secs(15);

/// A Prometheus server scraping `target` every second, its storage in `dir`. Killed
/// on drop if still running (also when the test fails); [`Prometheus::stop`] is the
/// clean SIGTERM.
struct Prometheus {
    proc: Proc,
    addr: SocketAddr,
}

impl Prometheus {
    fn start(dir: &Path, target: SocketAddr) -> Result<Prometheus> {
        if !cmd::on_path("prometheus") {
            bail!("prometheus not found on PATH: run `cargo xtask setup` (apt-get install prometheus)");
        }
        let config = dir.join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
                 scrape_configs:\n  - job_name: {JOB}\n    static_configs:\n      \
                 - targets: ['{target}']\n"
            ),
        )?;
        let addr = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .context("finding a free local port")?
            .local_addr()?;
        let mut command = Command::new("prometheus");
        command
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .arg("--log.level=warn");
        let mut prometheus = Prometheus {
            proc: Proc::spawn("prometheus", command)?,
            addr,
        };
        let start = Instant::now();
        loop {
            if !prometheus.proc.running()? {
                bail!("prometheus exited at start\n{}", prometheus.proc.output());
            }
            if let Ok((head, _)) = http::request(addr, "GET", "/-/ready", "", SCRAPE_TIMEOUT) {
                if head.status() == Some(200) {
                    return Ok(prometheus);
                }
            }
            if start.elapsed() > READY_TIMEOUT {
                bail!(
                    "prometheus not ready on {addr} within {READY_TIMEOUT:?}\n{}",
                    prometheus.proc.output()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// GET an API path; the `data` of a `"status": "success"` answer.
    fn api(&self, path: &str) -> Result<Value> {
        let (head, body) = http::request(self.addr, "GET", path, "", SCRAPE_TIMEOUT)
            .with_context(|| format!("GET http://{}{path}", self.addr))?;
        let body = String::from_utf8_lossy(&body);
        ensure!(
            head.status() == Some(200),
            "GET {path}: {}\n{body}",
            head.start_line
        );
        let doc: Value =
            serde_json::from_str(&body).with_context(|| format!("GET {path}: {body}"))?;
        ensure!(doc["status"] == "success", "GET {path}: {body}");
        Ok(doc["data"].clone())
    }

    /// An instant query: label set → value of each series of the resulting vector.
    fn query(&self, promql: &str) -> Result<BTreeMap<BTreeMap<String, String>, f64>> {
        let data = self.api(&format!("/api/v1/query?query={}", url_encode(promql)))?;
        ensure!(data["resultType"] == "vector", "{promql}: {data}");
        let mut out = BTreeMap::new();
        for series in data["result"].as_array().into_iter().flatten() {
            let labels = series["metric"]
                .as_object()
                .into_iter()
                .flatten()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                .collect();
            let value: f64 = series["value"][1]
                .as_str()
                .with_context(|| format!("{promql}: no value in {series}"))?
                .parse()
                .with_context(|| format!("{promql}: {series}"))?;
            out.insert(labels, value);
        }
        Ok(out)
    }

    /// `sum by (LABEL) (EXPR)` as label value → count.
    fn sum_by(&self, label: &str, expr: &str) -> Result<Counts> {
        self.query(&format!("sum by ({label}) ({expr})"))?
            .into_iter()
            .map(|(labels, v)| {
                let key = labels.get(label).cloned().unwrap_or_default();
                ensure!(
                    v.fract() == 0.0 && v >= 0.0,
                    "{label}={key}: {v} is not a count"
                );
                Ok((key, v as u64))
            })
            .collect()
    }

    /// The one value of a scalar-like query (`sum(...)`); None when the vector is empty.
    fn value(&self, promql: &str) -> Result<Option<f64>> {
        let result = self.query(promql)?;
        ensure!(result.len() <= 1, "{promql}: several series {result:?}");
        Ok(result.into_values().next())
    }

    /// SIGTERM, and a clean exit within 10 s.
    fn stop(mut self) -> Result<()> {
        self.proc.signal(libc::SIGTERM)?;
        let status = self.proc.wait(Duration::from_secs(10))?;
        ensure!(
            status.success(),
            "prometheus exited with {status} on SIGTERM\n{}",
            self.proc.output()
        );
        Ok(())
    }
}

/// Percent-encode everything but RFC 3986's unreserved characters.
fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The agent's `/metrics` as text, the way Prometheus gets it.
fn scrape_text(agent: SocketAddr) -> Result<String> {
    let (head, body) = http::request(agent, "GET", "/metrics", "", SCRAPE_TIMEOUT)
        .with_context(|| format!("scraping http://{agent}/metrics"))?;
    ensure!(
        head.status() == Some(200),
        "/metrics answered {}",
        head.start_line
    );
    let content_type = head.header("content-type").unwrap_or_default();
    ensure!(
        content_type.starts_with("text/plain"),
        "/metrics Content-Type {content_type:?}, expected text/plain (version=0.0.4)"
    );
    String::from_utf8(body).context("/metrics is not UTF-8")
}

/// `promtool check metrics < text`: must exit 0 and report no problem at all.
fn promtool_check(text: &str) -> Result<()> {
    if !cmd::on_path("promtool") {
        bail!("promtool not found on PATH: run `cargo xtask setup` (apt-get install prometheus)");
    }
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("starting promtool check metrics")?;
    child
        .stdin
        .take()
        .expect("piped")
        .write_all(text.as_bytes())
        .context("writing /metrics to promtool")?;
    let out = child.wait_with_output()?;
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    ensure!(
        out.status.success() && said.trim().is_empty(),
        "promtool check metrics ({}): {said}\n--- /metrics ---\n{text}",
        out.status
    );
    Ok(())
}

/// Wait (bounded) until Prometheus's per-status sum for `upstream` equals `sent`:
/// a scrape after the last response. Then the values must stay there.
fn wait_for_prometheus(prom: &Prometheus, upstream: &str, sent: &Counts) -> Result<()> {
    let expr = format!("ratewire_http_responses_total{{upstream=\"{upstream}\"}}");
    let start = Instant::now();
    loop {
        let seen = prom.sum_by("status", &expr)?;
        if &seen == sent {
            break;
        }
        if start.elapsed() > SCRAPE_TIMEOUT {
            bail!(
                "Prometheus's sum by (status) ({expr}) is {seen:?}, the mock sent {sent:?} \
                 (after {SCRAPE_TIMEOUT:?})\ntargets: {}",
                prom.api("/api/v1/targets").unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    // Two more scrape intervals: equal is the goal, not "eventually at least".
    std::thread::sleep(Duration::from_millis(2_100));
    let later = prom.sum_by("status", &expr)?;
    ensure!(
        &later == sent,
        "Prometheus's counts moved after matching: {later:?} vs {sent:?}"
    );
    Ok(())
}

#[test]
fn prometheus_scrapes_the_mocks_counts() -> Result<()> {
    let started = Instant::now();
    let _lock = lock::exclusive("agent")?;
    let tmp = TempDir::new("prometheus-e2e")?;
    let bed = Testbed::new()?;
    let listen = SocketAddr::from((Ipv4Addr::LOCALHOST, 8000));
    let upstream = listen.to_string();
    let mock = MockServer::start(Some(&bed), &[listen], PLAN)?;
    let agent = Agent::start_in(&bed, &["lo"])?;
    let agent_addr = SocketAddr::from((bed.peer_v4(), AGENT_METRICS_PORT));
    let prom = Prometheus::start(tmp.path(), agent_addr)?;

    // The target is up and the agent's series are there before any traffic, with no
    // response counted for the mock yet.
    let start = Instant::now();
    while prom.value(&format!("up{{job=\"{JOB}\"}}"))? != Some(1.0) {
        ensure!(
            start.elapsed() < SCRAPE_TIMEOUT,
            "Prometheus has no up{{job=\"{JOB}\"}} 1 after {SCRAPE_TIMEOUT:?}: {}",
            prom.api("/api/v1/targets")?
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    let attached = prom.query(&format!(
        "ratewire_probe_attached{{job=\"{JOB}\",iface=\"lo\"}}"
    ))?;
    ensure!(
        !attached.is_empty() && attached.values().all(|&v| v == 1.0),
        "ratewire_probe_attached for lo in Prometheus: {attached:?}"
    );
    let early = prom.value(&format!(
        "sum(ratewire_http_responses_total{{upstream=\"{upstream}\"}})"
    ))?;
    ensure!(
        early.is_none(),
        "responses from {upstream} before any traffic: {early:?}"
    );

    let summary = run::load(Some(&bed), listen, REQUESTS, CONNECTIONS, &[])?;
    let sent = mock.finish()?;
    ensure!(
        summary.statuses == sent,
        "load saw {summary:?}, the mock sent {sent:?}"
    );
    let total: u64 = sent.values().sum();
    ensure!(
        total == REQUESTS,
        "the mock sent {sent:?} for {REQUESTS} requests"
    );
    wait_for_prometheus(&prom, &upstream, &sent)?;

    // The same truth through other series and queries.
    let sel = format!("{{job=\"{JOB}\",upstream=\"{upstream}\"}}");
    let expect = |what: &str, got: Option<f64>, want: u64| -> Result<()> {
        ensure!(
            got == Some(want as f64),
            "{what}: Prometheus says {got:?}, expected {want} (mock sent {sent:?})"
        );
        Ok(())
    };
    expect(
        "sum(ratewire_http_responses_total)",
        prom.value(&format!("sum(ratewire_http_responses_total{sel})"))?,
        total,
    )?;
    let n = |s: &str| sent.get(s).copied().unwrap_or(0);
    expect(
        "responses with status=\"429\"",
        prom.value(&format!(
            "sum(ratewire_http_responses_total{{job=\"{JOB}\",upstream=\"{upstream}\",status=\"429\"}})"
        ))?,
        n("429"),
    )?;
    expect(
        "sum(ratewire_http_response_seconds_count)",
        prom.value(&format!("sum(ratewire_http_response_seconds_count{sel})"))?,
        total,
    )?;
    let classes = prom.sum_by(
        "status_class",
        &format!("ratewire_http_response_seconds_count{sel}"),
    )?;
    let want_classes: Counts = [
        ("2xx", n("200")),
        ("4xx", n("429")),
        ("5xx", n("500") + n("503")),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    ensure!(
        classes == want_classes,
        "ratewire_http_response_seconds_count by status_class: {classes:?}, expected {want_classes:?}"
    );
    // The mock sends Retry-After on every 429 and 503.
    expect(
        "ratewire_retry_after_seconds_count",
        prom.value(&format!("sum(ratewire_retry_after_seconds_count{sel})"))?,
        n("429") + n("503"),
    )?;
    for (metric, want) in [
        ("ratewire_events_lost_total", 0),
        ("ratewire_http_unpaired_responses_total", 0),
        ("ratewire_http_pipelined_requests_total", 0),
    ] {
        expect(
            metric,
            prom.value(&format!("sum({metric}{{job=\"{JOB}\"}})"))?,
            want,
        )?;
    }
    let no_response = prom.value(&format!("sum(ratewire_http_no_response_total{sel})"))?;
    ensure!(
        no_response.unwrap_or(0.0) == 0.0,
        "ratewire_http_no_response_total for {upstream}: {no_response:?}"
    );

    // Prometheus's own view of the scrape: healthy, no error.
    let targets = prom.api("/api/v1/targets")?;
    let active = targets["activeTargets"]
        .as_array()
        .context("no activeTargets")?;
    ensure!(
        active.len() == 1
            && active[0]["health"] == "up"
            && active[0]["lastError"].as_str() == Some(""),
        "Prometheus's target: {targets}"
    );

    // And the agent agrees with what Prometheus stored.
    let agent_counts: Counts = agent
        .metrics()?
        .sum_by(
            "ratewire_http_responses_total",
            &[("upstream", &upstream)],
            "status",
        )?
        .into_iter()
        .map(|(k, v)| (k, v as u64))
        .collect();
    ensure!(
        agent_counts == sent,
        "the agent's own /metrics: {agent_counts:?}, the mock sent {sent:?}"
    );

    // The exposition passes promtool's lint with nothing to say.
    promtool_check(&scrape_text(agent_addr)?)?;

    prom.stop()?;
    agent.stop()?;
    drop(bed);
    eprintln!(
        "prometheus e2e: mock sent {sent:?}, Prometheus and the agent agree; {:.1?}",
        started.elapsed()
    );
    Ok(())
}
