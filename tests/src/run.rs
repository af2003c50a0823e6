//! Running `ratewire-mock` and `ratewire-load` from tests: start, wait for ready,
//! and collect their reports.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::bins;
use crate::load::Summary;
use crate::mock::counts::{self, Counts};
use crate::netns::Testbed;
use crate::proc::Proc;

const READY_TIMEOUT: Duration = Duration::from_secs(10);

/// A running mock upstream; its counts file is removed on drop.
pub struct MockServer {
    proc: Proc,
    addrs: Vec<SocketAddr>,
    counts: PathBuf,
}

impl MockServer {
    /// Start `ratewire-mock --listen ADDR... ARGS...`, inside `testbed`'s namespace
    /// if given, and wait until every address is bound (port 0 picks a free one).
    pub fn start(testbed: Option<&Testbed>, listen: &[SocketAddr], args: &[&str]) -> Result<Self> {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let counts = std::env::temp_dir().join(format!(
            "ratewire-mock-{}-{}.json",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let mut cmd = Command::new(bins::mock()?);
        for addr in listen {
            cmd.args(["--listen", &addr.to_string()]);
        }
        cmd.arg("--counts").arg(&counts).args(args);
        let mut proc = match testbed {
            Some(bed) => bed.spawn_in_ns("ratewire-mock", &cmd)?,
            None => Proc::spawn("ratewire-mock", cmd)?,
        };
        let addrs = proc
            .wait_for_lines("listening on ", listen.len(), READY_TIMEOUT)?
            .iter()
            .map(|a| {
                a.parse()
                    .with_context(|| format!("mock printed a bad address {a:?}"))
            })
            .collect::<Result<_>>()?;
        Ok(MockServer {
            proc,
            addrs,
            counts,
        })
    }

    /// The first bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addrs[0]
    }

    pub fn addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    /// Counts so far (SIGUSR1), while it keeps serving.
    pub fn snapshot(&self) -> Result<Counts> {
        // The mock replaces the file atomically; removing it first tells us when the
        // snapshot for this signal has landed.
        std::fs::remove_file(&self.counts)
            .with_context(|| format!("removing {}", self.counts.display()))?;
        self.proc.signal(libc::SIGUSR1)?;
        let start = Instant::now();
        while !self.counts.exists() {
            if start.elapsed() > READY_TIMEOUT {
                bail!(
                    "ratewire-mock wrote no counts after SIGUSR1\n{}",
                    self.proc.output()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        counts::read(&self.counts)
    }

    /// Stop it (SIGTERM) and return its final counts.
    pub fn finish(mut self) -> Result<Counts> {
        self.proc.signal(libc::SIGTERM)?;
        let status = self.proc.wait(Duration::from_secs(10))?;
        if !status.success() {
            bail!("ratewire-mock exited with {status}\n{}", self.proc.output());
        }
        counts::read(&self.counts)
    }
}

impl Drop for MockServer {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.counts);
    }
}

/// Run `ratewire-load` to completion, in `testbed`'s namespace if given, else in the
/// root namespace; its summary.
pub fn load(
    testbed: Option<&Testbed>,
    target: SocketAddr,
    requests: u64,
    connections: usize,
    extra: &[&str],
) -> Result<Summary> {
    spawn_load(testbed, target, requests, connections, extra, 60)?.finish()
}

/// A `ratewire-load` running in the background (killed on drop).
pub struct LoadRun {
    proc: Proc,
    timeout: Duration,
}

/// Start `ratewire-load` without waiting for it: for tests that act on the agent while
/// the load runs. `timeout_secs` is the client's `--timeout-secs`.
pub fn spawn_load(
    testbed: Option<&Testbed>,
    target: SocketAddr,
    requests: u64,
    connections: usize,
    extra: &[&str],
    timeout_secs: u64,
) -> Result<LoadRun> {
    let mut cmd = Command::new(bins::load()?);
    cmd.args(["--target", &target.to_string()])
        .args(["--requests", &requests.to_string()])
        .args(["--connections", &connections.to_string()])
        .args(["--timeout-secs", &timeout_secs.to_string()])
        .args(extra);
    let proc = match testbed {
        Some(bed) => bed.spawn_in_ns("ratewire-load", &cmd)?,
        None => Proc::spawn("ratewire-load", cmd)?,
    };
    Ok(LoadRun {
        proc,
        timeout: Duration::from_secs(timeout_secs + 10),
    })
}

impl LoadRun {
    /// Wait for the client to finish; its summary (an error unless every request was
    /// attempted).
    pub fn finish(mut self) -> Result<Summary> {
        let status = self.proc.wait(self.timeout)?;
        if !status.success() {
            bail!("ratewire-load exited with {status}\n{}", self.proc.output());
        }
        serde_json::from_str(self.proc.stdout().trim()).with_context(|| {
            format!(
                "parsing the summary of ratewire-load\n{}",
                self.proc.output()
            )
        })
    }
}
