//! The real agent, run as a child process the way an operator runs it:
//! `ratewire run --iface IFACE... --listen 127.0.0.1:PORT --data-dir DIR`, always with
//! its own metrics port and journal directory, so agents never share state.

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::bins;
use crate::http;
use crate::inspect;
use crate::netns::Testbed;
use crate::proc::Proc;
use crate::prom::Metrics;
use crate::tmp::TempDir;

/// Loading and verifying the eBPF object takes a moment; a minute means it is stuck.
const ATTACH_TIMEOUT: Duration = Duration::from_secs(60);
const SCRAPE_TIMEOUT: Duration = Duration::from_secs(5);
/// Metrics port of an agent inside a testbed namespace: nothing else listens there.
const NS_METRICS_PORT: u16 = 9429;

pub struct Agent {
    proc: Proc,
    listen: SocketAddr,
    data_dir: PathBuf,
    /// The data dir when the agent made its own (removed with the agent).
    _own_dir: Option<TempDir>,
}

impl Agent {
    /// Start the agent on `ifaces` with a free metrics port and a private journal
    /// directory, and wait until `/metrics` shows both probes of every iface attached:
    /// `ratewire_probe_attached{iface,mode="native"|"generic"}` (XDP ingress) and
    /// `{mode="tcx"}` (TC egress).
    pub fn start(ifaces: &[&str]) -> Result<Agent> {
        let dir = TempDir::new("agent")?;
        let mut agent = Self::start_with(ifaces, dir.path(), &[])?;
        agent._own_dir = Some(dir);
        Ok(agent)
    }

    /// Like [`Agent::start`], with the journal in `data_dir` (which outlives the agent,
    /// for reading the journal after it stopped) and `args` added to `ratewire run`.
    pub fn start_with(ifaces: &[&str], data_dir: &Path, args: &[&str]) -> Result<Agent> {
        Self::launch(ifaces, free_port()?, data_dir, args, |cmd| {
            Proc::spawn("ratewire", cmd)
        })
    }

    /// Like [`Agent::start`], but inside `bed`'s namespace (watching its interfaces,
    /// such as its own `lo`), with metrics on the namespace's veth address so the
    /// test can scrape them from the root namespace.
    pub fn start_in(bed: &Testbed, ifaces: &[&str]) -> Result<Agent> {
        let dir = TempDir::new("agent")?;
        let listen = SocketAddr::from((bed.peer_v4(), NS_METRICS_PORT));
        let mut agent = Self::launch(ifaces, listen, dir.path(), &[], |cmd| {
            bed.spawn_in_ns("ratewire", &cmd)
        })?;
        agent._own_dir = Some(dir);
        Ok(agent)
    }

    fn launch(
        ifaces: &[&str],
        listen: SocketAddr,
        data_dir: &Path,
        args: &[&str],
        spawn: impl FnOnce(Command) -> Result<Proc>,
    ) -> Result<Agent> {
        let mut cmd = Command::new(bins::agent()?);
        cmd.arg("run");
        for iface in ifaces {
            cmd.args(["--iface", iface]);
        }
        cmd.args(["--listen", &listen.to_string()])
            .arg("--data-dir")
            .arg(data_dir)
            .args(args);
        let mut agent = Agent {
            proc: spawn(cmd)?,
            listen,
            data_dir: data_dir.to_path_buf(),
            _own_dir: None,
        };
        agent.wait_attached(ifaces)?;
        Ok(agent)
    }

    /// The journal directory (`--data-dir`).
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The bpf_links the agent holds (from its fdinfo): what the kernel must drop
    /// when the agent dies.
    pub fn bpf_links(&self) -> Result<Vec<inspect::BpfLink>> {
        inspect::bpf_links_of(self.pid())
    }

    pub fn pid(&self) -> u32 {
        self.proc.pid()
    }

    /// Everything the agent printed so far, for failure messages.
    pub fn output(&self) -> String {
        self.proc.output()
    }

    /// Scrape and parse `/metrics`.
    pub fn metrics(&self) -> Result<Metrics> {
        let (head, body) = http::request(self.listen, "GET", "/metrics", "", SCRAPE_TIMEOUT)
            .with_context(|| format!("scraping http://{}/metrics", self.listen))?;
        let text = String::from_utf8(body).context("/metrics is not UTF-8")?;
        if head.status() != Some(200) {
            bail!("/metrics answered {}: {text}", head.start_line);
        }
        Metrics::parse(&text).context("parsing /metrics")
    }

    /// Scrape until `check` is satisfied (returns `None`) or `timeout` passes (then
    /// fail with the last mismatch `check` described); the satisfying scrape.
    pub fn wait_for(
        &self,
        timeout: Duration,
        mut check: impl FnMut(&Metrics) -> Result<Option<String>>,
    ) -> Result<Metrics> {
        let start = Instant::now();
        loop {
            let metrics = self.metrics()?;
            let Some(mismatch) = check(&metrics)? else {
                return Ok(metrics);
            };
            if start.elapsed() > timeout {
                bail!("after {timeout:?}: {mismatch}\n{}", self.output());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn wait_attached(&mut self, ifaces: &[&str]) -> Result<()> {
        let start = Instant::now();
        loop {
            if !self.proc.running()? {
                bail!(
                    "the agent exited before attaching to {ifaces:?}\n{}",
                    self.output()
                );
            }
            let last = match self.metrics() {
                Ok(m) => match ifaces.iter().find(|iface| !fully_attached(&m, iface)) {
                    None => return Ok(()),
                    Some(iface) => format!(
                        "no XDP (native/generic) and tcx ratewire_probe_attached 1 for {iface}"
                    ),
                },
                Err(e) => format!("{e:#}"),
            };
            if start.elapsed() > ATTACH_TIMEOUT {
                bail!(
                    "the agent did not report ratewire_probe_attached for {ifaces:?} within \
                     {ATTACH_TIMEOUT:?} (last: {last})\n{}",
                    self.output()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// SIGTERM, and require a clean exit within 10 s.
    pub fn stop(mut self) -> Result<()> {
        self.proc.signal(libc::SIGTERM)?;
        let status = self.proc.wait(Duration::from_secs(10))?;
        if !status.success() {
            bail!(
                "the agent exited with {status} on SIGTERM\n{}",
                self.output()
            );
        }
        Ok(())
    }

    /// SIGKILL, as a crash would: nothing in the agent gets to clean up.
    pub fn kill9(mut self) -> Result<()> {
        self.proc.signal(libc::SIGKILL)?;
        self.proc.wait(Duration::from_secs(10))?;
        Ok(())
    }
}

/// Both hooks of `iface` report 1: XDP ingress (`native` or `generic`) and TC egress
/// (`tcx`).
fn fully_attached(m: &Metrics, iface: &str) -> bool {
    let attached = |mode: &str| {
        m.select(
            "ratewire_probe_attached",
            &[("iface", iface), ("mode", mode)],
        )
        .any(|s| s.value == 1.0)
    };
    (attached("native") || attached("generic")) && attached("tcx")
}

/// A port nobody listens on right now (the agent binds it a moment later).
fn free_port() -> Result<SocketAddr> {
    let listener =
        TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).context("finding a free local port")?;
    Ok(listener.local_addr()?)
}

/// Outcome (status, or no-response reason) → count for `upstream`, from the agent's
/// `ratewire_http_responses_total` and `ratewire_http_no_response_total`, summed over
/// route and tls; zero series left out.
pub fn outcomes(m: &Metrics, upstream: &str) -> Result<crate::mock::counts::Counts> {
    let labels = [("upstream", upstream)];
    let mut out = m.counts_by("ratewire_http_responses_total", &labels, "status")?;
    for (reason, n) in m.counts_by("ratewire_http_no_response_total", &labels, "reason")? {
        anyhow::ensure!(
            out.insert(reason.clone(), n).is_none(),
            "status and reason both {reason}"
        );
    }
    out.retain(|_, n| *n > 0);
    Ok(out)
}

impl Agent {
    /// Wait (up to `timeout`) until the agent's outcomes for `upstream` equal `want`;
    /// returns that scrape.
    pub fn wait_outcomes(
        &self,
        timeout: Duration,
        upstream: &str,
        want: &crate::mock::counts::Counts,
    ) -> Result<Metrics> {
        self.wait_for(timeout, |m| {
            let seen = outcomes(m, upstream)?;
            Ok((&seen != want)
                .then(|| format!("agent outcomes for {upstream}: {seen:?}, expected {want:?}")))
        })
        .with_context(|| format!("waiting for the agent's counts for {upstream}"))
    }
}
