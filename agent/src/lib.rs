//! ratewire's userspace: the daemon (probe, metrics, exporter) as a library, so the
//! binary, the benchmarks and the tests share one implementation.

pub mod cli;
pub mod daemon;
pub mod exporter;
pub mod metrics;
pub mod netif;
pub mod probe;
pub mod upstream;
