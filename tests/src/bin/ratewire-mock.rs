//! ratewire-mock: scripted OpenAI-style upstream for ratewire's end-to-end tests.
//!
//! Prints `listening on ADDR` once per bound address, then serves until SIGTERM or
//! SIGINT. Counts of what it sent are written as JSON to `--counts FILE`: on SIGUSR1
//! (a snapshot; it keeps serving) and on SIGTERM/SIGINT (final; then it exits 0).
//! The file is replaced atomically, so a reader never sees a partial write.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Parser;
use ratewire_tests::mock::{self, plan::Plan, response::RetryHints, Mock, MockConfig};
use tokio::net::TcpListener;
use tokio::signal::unix::{signal, SignalKind};

#[derive(Parser)]
#[command(about = "Scripted OpenAI-style upstream that reports exactly what it sent")]
struct Args {
    /// Address to listen on (repeatable); port 0 picks a free one.
    #[arg(long, required = true)]
    listen: Vec<SocketAddr>,
    /// Steps cycled across all connections, e.g. `200x6,429x2,500,503`. Steps: a
    /// status (200..=599), reset, close, stall, split429; `xN` repeats.
    #[arg(long)]
    plan: Plan,
    /// Add `Retry-After: SECS` to 429 and 503 responses.
    #[arg(long, value_name = "SECS")]
    retry_after: Option<u64>,
    /// Send Retry-After as an HTTP-date (now + --retry-after) instead of seconds.
    #[arg(long, requires = "retry_after")]
    retry_after_date: bool,
    /// Add `retry-after-ms: MS` to 429 and 503 responses.
    #[arg(long, value_name = "MS")]
    retry_after_ms: Option<u64>,
    /// Pause between head and body of a split429 step.
    #[arg(long, value_name = "MS", default_value_t = 20)]
    split_pause_ms: u64,
    /// Where the JSON counts go (on SIGUSR1, and on SIGTERM/SIGINT before exiting).
    #[arg(long, value_name = "FILE")]
    counts: PathBuf,
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    let args = Args::parse();
    let mock = Arc::new(Mock::new(MockConfig {
        plan: args.plan,
        hints: RetryHints {
            after_secs: args.retry_after,
            as_date: args.retry_after_date,
            after_ms: args.retry_after_ms,
        },
        split_pause: Duration::from_millis(args.split_pause_ms),
    }));
    // An empty report up front proves the path is writable before any traffic.
    mock.tally.write(&args.counts)?;

    // Handlers first: a test may signal as soon as it reads the ready line.
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut usr1 = signal(SignalKind::user_defined1())?;

    for addr in &args.listen {
        let listener = TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding {addr}"))?;
        println!("listening on {}", listener.local_addr()?);
        tokio::spawn(mock::serve(listener, mock.clone()));
    }

    loop {
        tokio::select! {
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = usr1.recv() => mock.tally.write(&args.counts)?,
        }
    }
    mock.tally.write(&args.counts)
}
