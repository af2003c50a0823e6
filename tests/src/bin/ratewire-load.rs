//! ratewire-load: bounded keep-alive load against an OpenAI-style upstream; prints a
//! JSON summary of the statuses received (see `ratewire_tests::load`). Exits 0 when
//! every request was attempted, 2 when the deadline left some unsent.

use std::time::Duration;

use anyhow::{ensure, Result};
use clap::Parser;
use ratewire_tests::load::{self, LoadConfig};

#[derive(Parser)]
#[command(about = "Bounded keep-alive load client that reports every request's outcome")]
struct Args {
    /// Upstream as HOST:PORT (`[::1]:8000` for IPv6).
    #[arg(long)]
    target: String,
    /// Keep-alive connections used in parallel.
    #[arg(long, default_value_t = 8)]
    connections: usize,
    /// Total requests across all connections.
    #[arg(long)]
    requests: u64,
    /// Ask for SSE streaming (`"stream": true`).
    #[arg(long)]
    stream: bool,
    /// Stop starting requests after this many seconds.
    #[arg(long, default_value_t = 60)]
    timeout_secs: u64,
    /// Give up on one request (and its connection) after this long.
    #[arg(long, default_value_t = 5000)]
    request_timeout_ms: u64,
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    let args = Args::parse();
    ensure!(args.connections > 0, "--connections must be at least 1");
    let summary = load::run(LoadConfig {
        target: args.target,
        connections: args.connections,
        requests: args.requests,
        stream: args.stream,
        deadline: Duration::from_secs(args.timeout_secs),
        request_timeout: Duration::from_millis(args.request_timeout_ms),
    })
    .await;
    println!("{}", serde_json::to_string(&summary)?);
    if summary.unsent > 0 {
        eprintln!(
            "ratewire-load: deadline of {}s passed with {} of {} requests unsent",
            args.timeout_secs, summary.unsent, summary.requests
        );
        std::process::exit(2);
    }
    Ok(())
}
