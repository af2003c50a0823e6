//! Command-line surface: one subcommand per job.

use std::net::SocketAddr;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "ratewire", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Attach the probes and serve Prometheus metrics until SIGINT/SIGTERM (needs root).
    Run(RunArgs),
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Interface to watch on ingress (repeatable). Default: the default-route interface and `lo`.
    #[arg(long = "iface", value_name = "IFACE")]
    pub ifaces: Vec<String>,

    /// Address of the Prometheus metrics endpoint (`/metrics`).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:9429")]
    pub listen: SocketAddr,
}
