//! Command-line surface: one subcommand per job.

pub mod audit;
pub mod journal;
pub mod replay;
pub mod run;

use clap::{Parser, Subcommand};

pub use run::{RunArgs, TlsMode};

#[derive(Debug, Parser)]
#[command(name = "ratewire", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Attach the probes, serve Prometheus metrics and journal every response until
    /// SIGINT/SIGTERM (needs root).
    Run(RunArgs),
    /// Count responses in a pcap/pcapng capture with the probes' own parser (no
    /// privileges) and write the same journal.
    Replay(replay::ReplayArgs),
    /// Query a journal: filter by time, upstream, status, route; table, JSON Lines, CSV.
    Journal(journal::QueryArgs),
    /// Reconcile the wire journal with benchmark reports and gateway logs.
    Audit(audit::AuditArgs),
}
