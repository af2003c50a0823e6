//! HTTPS upstreams counted through the OpenSSL uprobes: a Python `http.server` + `ssl`
//! upstream (self-signed certificate made here with `openssl req -x509`) answers
//! scripted statuses to two real clients that use the system's libssl differently —
//! Python `requests` (a venv; `SSL_write_ex`/`SSL_read_ex` on a socket BIO) and `curl`
//! (`SSL_write`/`SSL_read` through its own BIO) — over keep-alive connections. The
//! agent's `ratewire_http_responses_total{tls="true"}` for the upstream must equal what
//! the upstream says it sent, exactly, and every 429's `Retry-After` must land in the
//! histogram.
//!
//! A client whose TLS the uprobes cannot see (`wget`, which Debian links with GnuTLS)
//! must show up instead: its ClientHellos count in `ratewire_tls_connections_total` and
//! `ratewire_tls_unobserved_connections_total`, while the two OpenSSL clients' do not
//! count as unobserved.
//!
//! Everything runs inside a testbed namespace (upstream on its 127.0.0.1, agent on its
//! `lo`); the uprobes themselves are machine-wide, so the upstream port is random and
//! the assertions are per upstream.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};
use ratewire_tests::agent::Agent;
use ratewire_tests::lock;
use ratewire_tests::netns::Testbed;
use ratewire_tests::prom::Metrics;
use ratewire_tests::tmp::TempDir;

const PYTHON_REQUESTS: u64 = 1_200;
const FRESH_REQUESTS: u64 = 200;
const CURL_REQUESTS: u64 = 1_000;
const WGET_REQUESTS: u64 = 3;
const PLAN: [u16; 6] = [200, 200, 429, 200, 500, 200];
const SETTLE: Duration = Duration::from_secs(15);

fn here() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/tls")
}

fn output_ok(what: &str, cmd: &mut Command) -> Result<String> {
    let out = cmd.output().with_context(|| format!("{what}: {cmd:?}"))?;
    ensure!(
        out.status.success(),
        "{what} failed ({}): {}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn self_signed(dir: &Path) -> Result<(PathBuf, PathBuf)> {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    output_ok(
        "openssl req -x509 (a self-signed certificate)",
        Command::new("openssl")
            .args([
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            ])
            .args(["-subj", "/CN=localhost", "-keyout"])
            .arg(&key)
            .arg("-out")
            .arg(&cert),
    )?;
    Ok((cert, key))
}

/// `python3 -m venv` + `pip install requests`: the venv's python.
fn venv_python(dir: &Path) -> Result<PathBuf> {
    let venv = dir.join("venv");
    output_ok(
        "creating a Python venv (Debian: apt-get install python3-venv)",
        Command::new("python3").arg("-m").arg("venv").arg(&venv),
    )?;
    output_ok(
        "pip install requests",
        Command::new(venv.join("bin/pip")).args([
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "requests",
        ]),
    )?;
    Ok(venv.join("bin/python"))
}

fn random_port() -> u16 {
    20_000 + (std::process::id() as u16 % 20_000)
}

fn json_counts(line: &str) -> Result<BTreeMap<u16, u64>> {
    let v: BTreeMap<String, u64> =
        serde_json::from_str(line.trim()).with_context(|| format!("not a JSON count: {line:?}"))?;
    v.into_iter().map(|(k, n)| Ok((k.parse()?, n))).collect()
}

/// `ratewire_http_responses_total{upstream, tls="true"}` per status, summed over routes.
fn tls_counts(m: &Metrics, upstream: &str) -> BTreeMap<u16, u64> {
    let mut counts = BTreeMap::new();
    for s in m.select(
        "ratewire_http_responses_total",
        &[("upstream", upstream), ("tls", "true")],
    ) {
        if let Some(status) = s.label("status").and_then(|v| v.parse().ok()) {
            *counts.entry(status).or_default() += s.value as u64;
        }
    }
    counts
}

#[test]
fn https_statuses_counted_exactly_through_openssl_uprobes() -> Result<()> {
    let _lock = lock::exclusive("agent")?;
    let tmp = TempDir::new("tls")?;
    let (cert, key) = self_signed(tmp.path())?;
    let python = venv_python(tmp.path())?;
    let bed = Testbed::new()?;
    let port = random_port();
    let upstream = format!("127.0.0.1:{port}");

    let agent = Agent::start_in(&bed, &["lo"])?;
    agent.wait_for(Duration::from_secs(30), |m| {
        let attached = m
            .select("ratewire_tls_probe_attached", &[])
            .filter(|s| s.value == 1.0)
            .count();
        Ok((attached < 5).then(|| format!("{attached} libssl functions attached")))
    })?;

    let mut server_cmd = Command::new("python3");
    server_cmd
        .arg(here().join("https_upstream.py"))
        .args(["127.0.0.1", &port.to_string()])
        .arg(&cert)
        .arg(&key);
    let mut server = bed.spawn_in_ns("https-upstream", &server_cmd)?;
    server.wait_for_lines("ready", 1, Duration::from_secs(20))?;

    // Client 1: Python requests, one keep-alive session; then requests on a new
    // connection each (short-lived connections, SSL objects freed and reused).
    let plan = PLAN.map(|s| s.to_string()).join(",");
    for (mode, n) in [("session", PYTHON_REQUESTS), ("fresh", FRESH_REQUESTS)] {
        let mut py_cmd = Command::new(&python);
        py_cmd
            .arg(here().join("requests_client.py"))
            .arg(format!("https://{upstream}"))
            .arg(n.to_string())
            .arg(&plan)
            .arg(mode);
        let mut py = bed.spawn_in_ns("requests-client", &py_cmd)?;
        let status = py.wait(Duration::from_secs(300))?;
        ensure!(
            status.success(),
            "requests client ({mode}): {status}\n{}",
            py.output()
        );
        let py_seen = json_counts(py.stdout().lines().next().unwrap_or(""))?;
        ensure!(py_seen.values().sum::<u64>() == n, "{mode}: {py_seen:?}");
    }

    // Client 2: curl, all URLs in one invocation (one keep-alive connection).
    let mut config = String::new();
    for i in 0..CURL_REQUESTS {
        let status = PLAN[i as usize % PLAN.len()];
        writeln!(
            config,
            "url = \"https://{upstream}/v1/chat/completions?status={status}\"\noutput = \"/dev/null\""
        )?;
    }
    let config_path = tmp.join("curl.conf");
    std::fs::write(&config_path, config)?;
    let mut curl_cmd = Command::new("curl");
    curl_cmd
        .args(["-sSk", "--keepalive", "-w", "%{http_code}\\n", "-K"])
        .arg(&config_path);
    let mut curl = bed.spawn_in_ns("curl", &curl_cmd)?;
    let status = curl.wait(Duration::from_secs(300))?;
    ensure!(status.success(), "curl: {status}\n{}", curl.output());
    let curl_lines = curl.stdout().lines().count() as u64;
    ensure!(
        curl_lines == CURL_REQUESTS,
        "curl printed {curl_lines} codes"
    );

    // Client 3: wget (GnuTLS): invisible to the uprobes, visible as unobserved TLS.
    ensure!(
        ratewire_tests::cmd::on_path("wget"),
        "wget (GnuTLS) is needed as the uncovered TLS client: apt-get install wget"
    );
    for i in 0..WGET_REQUESTS {
        let mut wget = Command::new("wget");
        wget.args(["-q", "--no-check-certificate", "-O", "/dev/null"])
            .arg(format!(
                "https://{upstream}/v1/chat/completions?status=201&i={i}"
            ));
        let mut wget = bed.spawn_in_ns("wget", &wget)?;
        let status = wget.wait(Duration::from_secs(60))?;
        ensure!(status.success(), "wget: {status}\n{}", wget.output());
    }

    server.signal(libc::SIGTERM)?;
    server.wait(Duration::from_secs(10))?;
    let mut sent = json_counts(server.stdout().lines().nth(1).unwrap_or(""))?;
    // wget's 201s went through GnuTLS: not seen by the uprobes.
    ensure!(
        sent.remove(&201) == Some(WGET_REQUESTS),
        "the upstream answered {sent:?}"
    );
    ensure!(
        sent.values().sum::<u64>() == PYTHON_REQUESTS + FRESH_REQUESTS + CURL_REQUESTS,
        "the upstream answered {sent:?}"
    );

    let metrics = agent.wait_for(SETTLE, |m| {
        let counted = tls_counts(m, &upstream);
        let labels = [("upstream", upstream.as_str())];
        let hellos = m.value("ratewire_tls_connections_total", &labels)?;
        let unobserved = m.value("ratewire_tls_unobserved_connections_total", &labels)?;
        // One keep-alive connection each for the session and curl, one per fresh
        // request and per wget run.
        let want_hellos = (2 + FRESH_REQUESTS + WGET_REQUESTS) as f64;
        Ok(if counted != sent {
            Some(format!("agent {counted:?} != upstream {sent:?}"))
        } else if hellos != Some(want_hellos) || unobserved != Some(WGET_REQUESTS as f64) {
            Some(format!(
                "TLS connections {hellos:?} (want {want_hellos}), unobserved {unobserved:?} \
                 (want {WGET_REQUESTS})"
            ))
        } else {
            None
        })
    })?;
    let n429 = sent.get(&429).copied().unwrap_or(0) as f64;
    ensure!(n429 > 0.0);
    let ra_count = metrics
        .value(
            "ratewire_retry_after_seconds_count",
            &[("upstream", &upstream)],
        )?
        .unwrap_or(0.0);
    let ra_sum = metrics
        .value(
            "ratewire_retry_after_seconds_sum",
            &[("upstream", &upstream)],
        )?
        .unwrap_or(0.0);
    ensure!(
        ra_count == n429 && (ra_sum - 7.0 * n429).abs() < 1e-6,
        "Retry-After histogram count {ra_count} sum {ra_sum}, want {n429} x 7 s"
    );
    let routed: f64 = metrics
        .select(
            "ratewire_http_responses_total",
            &[
                ("upstream", &upstream),
                ("route", "/v1/chat/completions"),
                ("tls", "true"),
            ],
        )
        .map(|s| s.value)
        .sum();
    ensure!(
        routed as u64 == PYTHON_REQUESTS + FRESH_REQUESTS + CURL_REQUESTS,
        "route label: {routed}"
    );
    if let Some(n) = metrics.value("ratewire_tls_unattributed_total", &[])? {
        if n != 0.0 {
            bail!("{n} TLS outcomes unattributed\n{}", agent.output());
        }
    }
    agent.stop()
}

/// `--tls auto` finds a libssl that only a running process maps (a private copy loaded
/// through `LD_LIBRARY_PATH`, so another inode than the system's) on its periodic
/// rescan, attaches to it, and counts that process's HTTPS.
#[test]
fn private_libssl_copy_found_by_rescan() -> Result<()> {
    const REQUESTS: u64 = 50;
    let _lock = lock::exclusive("agent")?;
    let tmp = TempDir::new("tls-copy")?;
    let (cert, key) = self_signed(tmp.path())?;
    let lib_dir = tmp.join("lib");
    std::fs::create_dir_all(&lib_dir)?;
    let copy = lib_dir.join("libssl.so.3");
    std::fs::copy("/lib/x86_64-linux-gnu/libssl.so.3", &copy)
        .context("copying the system libssl (Debian: libssl3)")?;
    let bed = Testbed::new()?;
    let port = random_port() + 1;
    let upstream = format!("127.0.0.1:{port}");
    let agent = Agent::start_in(&bed, &["lo"])?;

    let mut server_cmd = Command::new("python3");
    server_cmd
        .arg(here().join("https_upstream.py"))
        .args(["127.0.0.1", &port.to_string()])
        .arg(&cert)
        .arg(&key);
    let mut server = bed.spawn_in_ns("https-upstream", &server_cmd)?;
    server.wait_for_lines("ready", 1, Duration::from_secs(20))?;

    // The client maps the copy at start and waits for the rescan before its requests.
    let script = format!(
        "import http.client, ssl, time\n\
         ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)\n\
         ctx.check_hostname = False\n\
         ctx.verify_mode = ssl.CERT_NONE\n\
         print('started', flush=True)\n\
         time.sleep(8)\n\
         c = http.client.HTTPSConnection('127.0.0.1', {port}, context=ctx)\n\
         for i in range({REQUESTS}):\n    \
             c.request('GET', '/v1/embeddings?status=503')\n    \
             c.getresponse().read()\n\
         time.sleep(1)\n"
    );
    let mut client_cmd = Command::new("python3");
    client_cmd
        .args(["-c", &script])
        .env("LD_LIBRARY_PATH", &lib_dir);
    let mut client = bed.spawn_in_ns("private-libssl-client", &client_cmd)?;
    let status = client.wait(Duration::from_secs(60))?;
    ensure!(status.success(), "client: {status}\n{}", client.output());

    let lib = copy.display().to_string();
    let metrics = agent.wait_for(SETTLE, |m| {
        let counted = tls_counts(m, &upstream);
        Ok((counted.get(&503) != Some(&REQUESTS)).then(|| format!("counted {counted:?}")))
    })?;
    let attached = metrics
        .select("ratewire_tls_probe_attached", &[("lib", lib.as_str())])
        .filter(|s| s.value == 1.0)
        .count();
    ensure!(
        attached == 5,
        "{attached} functions attached to {lib}\n{}",
        agent.output()
    );
    agent.stop()
}

/// Requests that get no response over TLS end exactly once, as on the wire: a client
/// that gives up and closes its connection (`SSL_free`) ends its request as `closed`;
/// one that keeps waiting past `--response-timeout` ends it as `timeout`.
#[test]
fn tls_requests_without_response_end_closed_or_timeout() -> Result<()> {
    let _lock = lock::exclusive("agent")?;
    let tmp = TempDir::new("tls-noresp")?;
    let (cert, key) = self_signed(tmp.path())?;
    let bed = Testbed::new()?;
    let port = random_port() + 2;
    let upstream = format!("127.0.0.1:{port}");
    // The TLS outcomes come from the uprobes; the agent's interface is the testbed's
    // own veth so that no other agent's XDP is in the way.
    let agent = Agent::start_with(
        &[bed.host_iface()],
        tmp.path(),
        &["--response-timeout", "2"],
    )?;

    let mut server_cmd = Command::new("python3");
    server_cmd
        .arg(here().join("https_upstream.py"))
        .args(["127.0.0.1", &port.to_string()])
        .arg(&cert)
        .arg(&key);
    let mut server = bed.spawn_in_ns("https-upstream", &server_cmd)?;
    server.wait_for_lines("ready", 1, Duration::from_secs(20))?;

    // One answered request first on each connection, then one that never is: give up
    // after 0.5 s and close (closed), or wait 5 s with the connection open (timeout).
    let script = format!(
        "import http.client, ssl, sys, time\n\
         ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)\n\
         ctx.check_hostname = False\n\
         ctx.verify_mode = ssl.CERT_NONE\n\
         wait = float(sys.argv[1])\n\
         c = http.client.HTTPSConnection('127.0.0.1', {port}, context=ctx, timeout=wait)\n\
         c.request('GET', '/v1/messages?status=200')\n\
         c.getresponse().read()\n\
         c.request('POST', '/v1/messages?status=hang', body=b'{{}}')\n\
         try:\n    c.getresponse()\n\
         except Exception:\n    pass\n\
         c.close()\n\
         time.sleep(1)\n"
    );
    for wait in ["0.5", "5"] {
        let mut cmd = Command::new("python3");
        cmd.args(["-c", &script, wait]);
        let mut client = bed.spawn_in_ns("client", &cmd)?;
        let status = client.wait(Duration::from_secs(30))?;
        ensure!(status.success(), "client: {status}\n{}", client.output());
    }

    let labels = |reason: &'static str| {
        [
            ("upstream", upstream.clone()),
            ("route", "/v1/messages".to_owned()),
            ("reason", reason.to_owned()),
        ]
    };
    agent.wait_for(SETTLE, |m| {
        let get = |reason| -> Result<Option<f64>> {
            let l = labels(reason);
            let l: Vec<(&str, &str)> = l.iter().map(|(k, v)| (*k, v.as_str())).collect();
            m.value("ratewire_http_no_response_total", &l)
        };
        let (closed, timeout) = (get("closed")?, get("timeout")?);
        let ok = tls_counts(m, &upstream).get(&200) == Some(&2);
        Ok(
            (!(ok && closed == Some(1.0) && timeout == Some(1.0))).then(|| {
                format!(
                    "200s {:?}, closed {closed:?}, timeout {timeout:?}",
                    tls_counts(m, &upstream)
                )
            }),
        )
    })?;
    // Each ended exactly once: a few more sweeps change nothing.
    std::thread::sleep(Duration::from_secs(3));
    let m = agent.metrics()?;
    let total: f64 = m
        .select(
            "ratewire_http_no_response_total",
            &[("upstream", upstream.as_str())],
        )
        .map(|s| s.value)
        .sum();
    ensure!(total == 2.0, "no-response outcomes for {upstream}: {total}");
    agent.stop()?;

    // The journal says the same, as TLS records with both ends of the connection.
    let records = ratewire_tests::journal::read_dir(tmp.path())?;
    let outcomes = ratewire_tests::journal::outcomes_of(&records, &upstream);
    let want: BTreeMap<String, u64> = [("200", 2), ("closed", 1), ("timeout", 1)]
        .into_iter()
        .map(|(k, n)| (k.to_owned(), n))
        .collect();
    ensure!(
        outcomes == want,
        "journal outcomes for {upstream}: {outcomes:?}"
    );
    for r in records
        .iter()
        .filter(|r| r.upstream.as_deref() == Some(upstream.as_str()))
    {
        ensure!(
            r.tls && r.source == "uprobe" && r.route.as_deref() == Some("/v1/messages"),
            "journal record {r:?}"
        );
        ensure!(
            r.client
                .as_deref()
                .is_some_and(|c| c.starts_with("127.0.0.1:")),
            "journal record without the client end: {r:?}"
        );
    }
    Ok(())
}
