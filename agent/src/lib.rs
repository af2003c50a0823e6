//! ratewire's userspace: the daemon (probe, recorder, metrics, exporter) as a library,
//! so the binary, the benchmarks and the tests share one implementation.

pub mod cli;
pub mod clock;
pub mod daemon;
pub mod events;
pub mod exporter;
pub mod metrics;
pub mod netif;
pub mod probe;
pub mod recorder;
pub mod routes;
pub mod tls;
pub mod upstream;
