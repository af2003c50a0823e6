//! Child processes owned by a test: output captured, killed and reaped on drop (also
//! when the test panics), so no mock, load client or agent outlives its test.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// A running child with its stdout and stderr collected by background threads.
pub struct Proc {
    name: String,
    child: Child,
    stdout: Arc<Mutex<String>>,
    stderr: Arc<Mutex<String>>,
    readers: Vec<JoinHandle<()>>,
}

impl Proc {
    /// Spawn `cmd` with piped stdout/stderr; `name` labels errors.
    pub fn spawn(name: &str, mut cmd: Command) -> Result<Proc> {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting {name}: {cmd:?}"))?;
        let stdout = Arc::new(Mutex::new(String::new()));
        let stderr = Arc::new(Mutex::new(String::new()));
        let readers = vec![
            collect(child.stdout.take().expect("piped"), stdout.clone()),
            collect(child.stderr.take().expect("piped"), stderr.clone()),
        ];
        Ok(Proc {
            name: name.to_string(),
            child,
            stdout,
            stderr,
            readers,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn stdout(&self) -> String {
        self.stdout.lock().expect("stdout lock").clone()
    }

    pub fn stderr(&self) -> String {
        self.stderr.lock().expect("stderr lock").clone()
    }

    /// Wait until stdout has `n` lines starting with `prefix`; the rest of each.
    pub fn wait_for_lines(
        &mut self,
        prefix: &str,
        n: usize,
        timeout: Duration,
    ) -> Result<Vec<String>> {
        let start = Instant::now();
        loop {
            let found: Vec<String> = self
                .stdout()
                .lines()
                .filter_map(|l| l.strip_prefix(prefix).map(str::to_string))
                .collect();
            if found.len() >= n {
                return Ok(found);
            }
            if let Some(status) = self.child.try_wait()? {
                bail!(
                    "{} exited ({status}) before printing {n} {prefix:?} lines\n{}",
                    self.name,
                    self.output()
                );
            }
            if start.elapsed() > timeout {
                bail!(
                    "{} printed fewer than {n} {prefix:?} lines within {timeout:?}\n{}",
                    self.name,
                    self.output()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Whether it is still running.
    pub fn running(&mut self) -> Result<bool> {
        Ok(self.child.try_wait()?.is_none())
    }

    pub fn signal(&self, signal: libc::c_int) -> Result<()> {
        // SAFETY: kill(2) on our own child's pid, which stays reserved until we reap it.
        if unsafe { libc::kill(self.pid() as libc::pid_t, signal) } != 0 {
            return Err(std::io::Error::last_os_error())
                .with_context(|| format!("signalling {} ({})", self.name, self.pid()));
        }
        Ok(())
    }

    /// Wait for exit (bounded); all output has been collected when this returns.
    pub fn wait(&mut self, timeout: Duration) -> Result<ExitStatus> {
        let start = Instant::now();
        let status = loop {
            if let Some(status) = self.child.try_wait()? {
                break status;
            }
            if start.elapsed() > timeout {
                bail!(
                    "{} still running after {timeout:?}\n{}",
                    self.name,
                    self.output()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        for reader in self.readers.drain(..) {
            let _ = reader.join();
        }
        Ok(status)
    }

    /// Both streams, for error messages.
    pub fn output(&self) -> String {
        format!(
            "--- {} stdout ---\n{}--- {} stderr ---\n{}",
            self.name,
            self.stdout(),
            self.name,
            self.stderr()
        )
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn collect(stream: impl Read + Send + 'static, into: Arc<Mutex<String>>) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let mut reader = BufReader::new(stream);
        let mut line = String::new();
        while matches!(reader.read_line(&mut line), Ok(n) if n > 0) {
            into.lock().expect("output lock").push_str(&line);
            line.clear();
        }
    })
}
