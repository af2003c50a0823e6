//! `ratewire run`: the daemon's flags.

use std::{net::SocketAddr, path::PathBuf};

use clap::Args;

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Interface to watch (repeatable): XDP on ingress, TC on egress.
    /// Default: the default-route interface and `lo`.
    #[arg(long = "iface", value_name = "IFACE")]
    pub ifaces: Vec<String>,

    /// Address of the Prometheus metrics endpoint (`/metrics`).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:9429")]
    pub listen: SocketAddr,

    /// Request path to label as its own route (repeatable, exact match, query ignored).
    /// Default: /v1/chat/completions, /v1/completions, /v1/embeddings, /v1/messages;
    /// every other path is `other`.
    #[arg(long = "route", value_name = "PATH")]
    pub routes: Vec<String>,

    /// Seconds a request may wait for its status line before it counts as a timeout.
    #[arg(long, value_name = "SECS", default_value_t = 60.0, value_parser = positive_secs)]
    pub response_timeout: f64,

    /// Directory of the journal (one JSON line per response, rotated by size).
    #[arg(long, value_name = "DIR", default_value = "/var/lib/ratewire")]
    pub data_dir: PathBuf,

    /// Keep no journal (metrics only).
    #[arg(long)]
    pub no_journal: bool,

    /// Start a new journal file past this size.
    #[arg(long, value_name = "MIB", default_value_t = 64)]
    pub journal_max_file_mib: u64,

    /// Keep at most this many journal files, deleting the oldest.
    #[arg(long, value_name = "N", default_value_t = 64)]
    pub journal_max_files: usize,

    /// Delete journal files older than this many hours (default: keep).
    #[arg(long, value_name = "HOURS")]
    pub journal_max_age_hours: Option<u64>,

    /// Size of the kernel-to-userspace event ring buffer: a power of two, at least 4096.
    #[arg(long, value_name = "BYTES", default_value_t = 4 << 20, value_parser = ring_size)]
    pub events_buffer_bytes: u32,

    /// TLS uprobes: `auto` attaches to the system libssl and to every libssl a running
    /// process maps (rescanned every few seconds); `off` watches plaintext only.
    #[arg(long, value_enum, default_value_t = TlsMode::Auto)]
    pub tls: TlsMode,

    /// An OpenSSL libssl to attach the TLS uprobes to, besides those found (repeatable).
    #[arg(long = "tls-lib", value_name = "PATH")]
    pub tls_libs: Vec<PathBuf>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum TlsMode {
    Auto,
    Off,
}

fn positive_secs(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v > 0.0 && v.is_finite() => Ok(v),
        _ => Err(format!("'{s}' is not a positive number of seconds")),
    }
}

fn ring_size(s: &str) -> Result<u32, String> {
    match s.parse::<u32>() {
        Ok(v) if v >= 4096 && v.is_power_of_two() => Ok(v),
        _ => Err(format!("'{s}' is not a power of two of at least 4096")),
    }
}
