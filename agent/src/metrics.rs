//! Prometheus view of the probe. The kernel maps are the only source of truth: every
//! scrape reads them afresh (a custom collector), so there is no second copy of the
//! counts to drift, and a scrape always shows exact values.
//!
//! Cardinality is bounded by the kernel map: at most `RESPONSES_MAX_ENTRIES` series of
//! `ratewire_http_responses_total`; responses beyond it are counted in
//! `ratewire_map_overflow_total`, never dropped silently.

use std::sync::{Arc, Mutex};

use log::error;
use prometheus::{
    core::{Collector, Desc},
    proto::MetricFamily,
    Encoder as _, GaugeVec, IntCounter, IntCounterVec, IntGaugeVec, Opts, Registry, TextEncoder,
};

use crate::probe::{Attachment, Counters};
use crate::upstream;

/// Everything `/metrics` shows.
pub struct Metrics {
    registry: Registry,
}

impl Metrics {
    pub fn new(counters: Counters, attachments: &[Attachment]) -> anyhow::Result<Metrics> {
        let registry = Registry::new();
        registry.register(Box::new(ProbeCollector::new(counters)?))?;

        let attached = IntGaugeVec::new(
            Opts::new(
                "ratewire_probe_attached",
                "1 for each interface a probe is attached to, by attach mode",
            ),
            &["iface", "mode"],
        )?;
        for a in attachments {
            attached
                .with_label_values(&[a.iface.as_str(), &a.mode.to_string()])
                .set(1);
        }
        registry.register(Box::new(attached))?;

        let build = GaugeVec::new(
            Opts::new(
                "ratewire_build_info",
                "ratewire build; the value is always 1",
            ),
            &["version"],
        )?;
        build
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1.0);
        registry.register(Box::new(build))?;
        Ok(Metrics { registry })
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> anyhow::Result<Vec<u8>> {
        let mut out = Vec::new();
        TextEncoder::new().encode(&self.registry.gather(), &mut out)?;
        Ok(out)
    }
}

/// Reads the kernel counters on every scrape.
struct ProbeCollector {
    counters: Arc<Mutex<Counters>>,
    // Unregistered templates: they carry the descriptors and build each scrape's families.
    responses: IntCounterVec,
    overflow: IntCounter,
}

impl ProbeCollector {
    fn new(counters: Counters) -> anyhow::Result<ProbeCollector> {
        Ok(ProbeCollector {
            counters: Arc::new(Mutex::new(counters)),
            responses: responses_vec()?,
            overflow: overflow_counter()?,
        })
    }
}

fn responses_vec() -> prometheus::Result<IntCounterVec> {
    IntCounterVec::new(
        Opts::new(
            "ratewire_http_responses_total",
            "HTTP/1.x responses seen on the wire, by upstream (ip:port) and status code",
        ),
        &["upstream", "status"],
    )
}

fn overflow_counter() -> prometheus::Result<IntCounter> {
    IntCounter::new(
        "ratewire_map_overflow_total",
        "Responses seen but not counted per upstream because the kernel map was full",
    )
}

impl Collector for ProbeCollector {
    fn desc(&self) -> Vec<&Desc> {
        let mut descs = self.responses.desc();
        descs.extend(self.overflow.desc());
        descs
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let snapshot = match self.counters.lock() {
            Ok(counters) => counters.snapshot(),
            Err(poisoned) => poisoned.into_inner().snapshot(),
        };
        let snapshot = match snapshot {
            Ok(s) => s,
            Err(e) => {
                // A failed read must not look like zero: omit the families for this scrape.
                error!("reading kernel counters: {e:#}");
                return Vec::new();
            }
        };
        // Fresh vectors each scrape, so series reflect the maps exactly.
        let (Ok(responses), Ok(overflow)) = (responses_vec(), overflow_counter()) else {
            return Vec::new();
        };
        for (key, count) in &snapshot.responses {
            let upstream = upstream::label(key.addr, key.port);
            responses
                .with_label_values(&[upstream.as_str(), &key.status.to_string()])
                .inc_by(*count);
        }
        overflow.inc_by(snapshot.response_map_full);
        let mut families = responses.collect();
        families.extend(overflow.collect());
        families
    }
}
