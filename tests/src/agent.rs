//! The real agent, run as a child process the way an operator runs it:
//! `ratewire run --iface IFACE... --listen 127.0.0.1:PORT`.

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::bins;
use crate::http;
use crate::netns::Testbed;
use crate::proc::Proc;
use crate::prom::Metrics;

/// Loading and verifying the eBPF object takes a moment; a minute means it is stuck.
const ATTACH_TIMEOUT: Duration = Duration::from_secs(60);
const SCRAPE_TIMEOUT: Duration = Duration::from_secs(5);
/// Metrics port of an agent inside a testbed namespace: nothing else listens there.
const NS_METRICS_PORT: u16 = 9429;

pub struct Agent {
    proc: Proc,
    listen: SocketAddr,
}

impl Agent {
    /// Start the agent on `ifaces` with a free metrics port, and wait until
    /// `/metrics` shows `ratewire_probe_attached{iface=...} 1` for each of them.
    pub fn start(ifaces: &[&str]) -> Result<Agent> {
        Self::launch(ifaces, free_port()?, |cmd| Proc::spawn("ratewire", cmd))
    }

    /// Like [`Agent::start`], but inside `bed`'s namespace (watching its interfaces,
    /// such as its own `lo`), with metrics on the namespace's veth address so the
    /// test can scrape them from the root namespace.
    pub fn start_in(bed: &Testbed, ifaces: &[&str]) -> Result<Agent> {
        let listen = SocketAddr::from((bed.peer_v4(), NS_METRICS_PORT));
        Self::launch(ifaces, listen, |cmd| bed.spawn_in_ns("ratewire", &cmd))
    }

    fn launch(
        ifaces: &[&str],
        listen: SocketAddr,
        spawn: impl FnOnce(Command) -> Result<Proc>,
    ) -> Result<Agent> {
        let mut cmd = Command::new(bins::agent()?);
        cmd.arg("run");
        for iface in ifaces {
            cmd.args(["--iface", iface]);
        }
        cmd.args(["--listen", &listen.to_string()]);
        let mut agent = Agent {
            proc: spawn(cmd)?,
            listen,
        };
        agent.wait_attached(ifaces)?;
        Ok(agent)
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
                Ok(m)
                    if ifaces.iter().all(|iface| {
                        m.select("ratewire_probe_attached", &[("iface", iface)])
                            .any(|s| s.value == 1.0)
                    }) =>
                {
                    return Ok(());
                }
                Ok(_) => "scrape has no ratewire_probe_attached 1 for every iface".to_string(),
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

/// A port nobody listens on right now (the agent binds it a moment later).
fn free_port() -> Result<SocketAddr> {
    let listener =
        TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).context("finding a free local port")?;
    Ok(listener.local_addr()?)
}
