//! Prometheus view of the probe.
//!
//! Two sources, one registry:
//! - kernel counters (responses, no-response outcomes, losses) are read from the maps
//!   at every scrape by a custom collector: the maps are the single source of truth,
//!   so a scrape always shows exact values and nothing can drift;
//! - per-event metrics (latency and Retry-After histograms, rate-limit gauges, client
//!   retries) are updated from the ring-buffer events. Events lost to a full buffer are
//!   missing from these and counted in `ratewire_events_lost_total`.
//!
//! Cardinality is bounded: kernel series by the map sizes (overflow counted in
//! `ratewire_map_overflow_total`), routes by the route table, and upstreams in
//! per-event metrics by [`MAX_EVENT_UPSTREAMS`] (the rest are labelled `overflow`).

use std::{
    collections::{BTreeMap, HashSet},
    sync::{Arc, Mutex},
};

use log::error;
use prometheus::{
    core::{Collector, Desc},
    proto::MetricFamily,
    Encoder as _, GaugeVec, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGaugeVec,
    Opts, Registry, TextEncoder,
};
use ratewire_common::http::HeadFacts;
use ratewire_common::types::{
    Event, OUTCOME_CLOSED, OUTCOME_RESET, OUTCOME_RESPONSE, STAT_EVENTS_LOST, STAT_FLOW_MAP_FULL,
    STAT_PIPELINED, STAT_RESPONSE_MAP_FULL, STAT_TLS_FLOW_MAP_FULL, STAT_TLS_HELLO_MAP_FULL,
    STAT_TLS_PIPELINED, STAT_TLS_UNPAIRED, STAT_UNPAIRED,
};

use crate::{
    events,
    probe::{Attachment, Counters},
    routes::RouteTable,
    upstream,
};

/// Upstreams tracked by per-event metrics before new ones are labelled `overflow`.
pub const MAX_EVENT_UPSTREAMS: usize = 1024;

/// Timeouts decided by userspace, per (upstream, route): part of the no-response counter.
pub type Timeouts = Arc<Mutex<BTreeMap<(String, String), u64>>>;

/// Outcomes seen through the TLS uprobes, counted by userspace (the kernel does not know
/// the upstream): (upstream, route, status or no-response reason, is a response).
pub type TlsCounts = Arc<Mutex<BTreeMap<(String, String, String, bool), u64>>>;

/// Everything `/metrics` shows.
pub struct Metrics {
    registry: Registry,
    pub per_event: EventMetrics,
    pub timeouts: Timeouts,
    pub tls_counts: TlsCounts,
    /// TLS outcomes whose connection could not be resolved (upstream `unknown`).
    pub tls_unattributed: IntCounter,
    /// 1 per (libssl, function) the uprobes are attached to, 0 when attaching failed.
    pub tls_attached: IntGaugeVec,
    /// TLS connections seen starting (ClientHello on TC egress), per upstream.
    pub tls_connections: IntCounterVec,
    /// Of those, connections no uprobe event was attributed to within the grace period.
    pub tls_unobserved: IntCounterVec,
}

impl Metrics {
    pub fn new(
        counters: Arc<Mutex<Counters>>,
        routes: RouteTable,
        attachments: &[Attachment],
    ) -> anyhow::Result<Metrics> {
        let registry = Registry::new();
        let timeouts = Timeouts::default();
        let tls_counts = TlsCounts::default();
        registry.register(Box::new(ProbeCollector {
            counters,
            routes,
            timeouts: timeouts.clone(),
            tls_counts: tls_counts.clone(),
        }))?;
        let tls_unattributed = IntCounter::new(
            "ratewire_tls_unattributed_total",
            "TLS outcomes (responses and no-responses) whose TCP connection could not be resolved; journalled without upstream, not in the per-upstream counters",
        )?;
        registry.register(Box::new(tls_unattributed.clone()))?;
        let tls_attached = IntGaugeVec::new(
            Opts::new(
                "ratewire_tls_probe_attached",
                "1 for each libssl function the TLS uprobes are attached to, 0 when attaching failed",
            ),
            &["lib", "function"],
        )?;
        registry.register(Box::new(tls_attached.clone()))?;
        let tls_connections = IntCounterVec::new(
            Opts::new(
                "ratewire_tls_connections_total",
                "TLS connections seen starting (ClientHello on TC egress), by upstream; counted once the grace period for the uprobes to see them has passed",
            ),
            &["upstream"],
        )?;
        registry.register(Box::new(tls_connections.clone()))?;
        let tls_unobserved = IntCounterVec::new(
            Opts::new(
                "ratewire_tls_unobserved_connections_total",
                "TLS connections (ClientHello seen) that the OpenSSL uprobes never attributed: a TLS library ratewire cannot see into (statically linked OpenSSL, BoringSSL, rustls, Go, GnuTLS, NSS, Java...)",
            ),
            &["upstream"],
        )?;
        registry.register(Box::new(tls_unobserved.clone()))?;
        let per_event = EventMetrics::new(&registry)?;

        let attached = IntGaugeVec::new(
            Opts::new(
                "ratewire_probe_attached",
                "1 for each interface and direction a probe is attached to, by mode",
            ),
            &["iface", "mode"],
        )?;
        for a in attachments {
            attached
                .with_label_values(&[a.iface.as_str(), a.mode])
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
        Ok(Metrics {
            registry,
            per_event,
            timeouts,
            tls_counts,
            tls_unattributed,
            tls_attached,
            tls_connections,
            tls_unobserved,
        })
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> anyhow::Result<Vec<u8>> {
        let mut out = Vec::new();
        TextEncoder::new().encode(&self.registry.gather(), &mut out)?;
        Ok(out)
    }

    pub fn count_timeout(&self, upstream: String, route: String) {
        let mut timeouts = self.timeouts.lock().unwrap_or_else(|p| p.into_inner());
        *timeouts.entry((upstream, route)).or_default() += 1;
    }

    /// One TLS outcome: a response with `status`, or a no-response `reason`.
    pub fn count_tls(
        &self,
        upstream: String,
        route: String,
        status_or_reason: String,
        response: bool,
    ) {
        let mut counts = self.tls_counts.lock().unwrap_or_else(|p| p.into_inner());
        *counts
            .entry((upstream, route, status_or_reason, response))
            .or_default() += 1;
    }
}

/// Reads the kernel counters on every scrape.
struct ProbeCollector {
    counters: Arc<Mutex<Counters>>,
    routes: RouteTable,
    timeouts: Timeouts,
    tls_counts: TlsCounts,
}

/// Fresh (unregistered) metric vectors for one scrape; also the collector's descriptors.
struct KernelFamilies {
    responses: IntCounterVec,
    no_response: IntCounterVec,
    overflow: IntCounterVec,
    events_lost: IntCounter,
    unpaired: IntCounter,
    pipelined: IntCounter,
}

impl KernelFamilies {
    fn new() -> prometheus::Result<KernelFamilies> {
        Ok(KernelFamilies {
            responses: IntCounterVec::new(
                Opts::new(
                    "ratewire_http_responses_total",
                    "HTTP/1.x final responses paired with their request, by upstream (ip:port), route, status and whether seen through TLS",
                ),
                &["upstream", "route", "status", "tls"],
            )?,
            no_response: IntCounterVec::new(
                Opts::new(
                    "ratewire_http_no_response_total",
                    "Requests that got no response: reset (RST), closed (FIN) or timeout",
                ),
                &["upstream", "route", "reason"],
            )?,
            overflow: IntCounterVec::new(
                Opts::new(
                    "ratewire_map_overflow_total",
                    "Observations not recorded because a kernel map was full, by map",
                ),
                &["map"],
            )?,
            events_lost: IntCounter::new(
                "ratewire_events_lost_total",
                "Events dropped because the ring buffer was full (counters still include them; the journal has gap markers)",
            )?,
            unpaired: IntCounter::new(
                "ratewire_http_unpaired_responses_total",
                "Status lines seen on flows with no request awaiting a response (not counted as responses)",
            )?,
            pipelined: IntCounter::new(
                "ratewire_http_pipelined_requests_total",
                "Request heads sent while the flow's previous request still awaited its response (pipelining or retransmission; not tracked)",
            )?,
        })
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let mut families = self.responses.collect();
        families.extend(self.no_response.collect());
        families.extend(self.overflow.collect());
        families.extend(self.events_lost.collect());
        families.extend(self.unpaired.collect());
        families.extend(self.pipelined.collect());
        families
    }
}

static DESCRIPTORS: std::sync::OnceLock<Option<KernelFamilies>> = std::sync::OnceLock::new();

impl Collector for ProbeCollector {
    fn desc(&self) -> Vec<&Desc> {
        let Some(f) = DESCRIPTORS.get_or_init(|| KernelFamilies::new().ok()) else {
            return Vec::new();
        };
        let mut descs = f.responses.desc();
        descs.extend(f.no_response.desc());
        descs.extend(f.overflow.desc());
        descs.extend(f.events_lost.desc());
        descs.extend(f.unpaired.desc());
        descs.extend(f.pipelined.desc());
        descs
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let snapshot = self
            .counters
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .snapshot();
        let (snapshot, f) = match (snapshot, KernelFamilies::new()) {
            (Ok(s), Ok(f)) => (s, f),
            (Err(e), _) => {
                // A failed read must not look like zero: omit the families this scrape.
                error!("reading kernel counters: {e:#}");
                return Vec::new();
            }
            (_, Err(e)) => {
                error!("building metric families: {e}");
                return Vec::new();
            }
        };
        for (key, count) in &snapshot.responses {
            let upstream = upstream::label(key.addr, key.port);
            let route = self.routes.label(key.route);
            let tls = if key.tls != 0 { "true" } else { "false" };
            let reason = match key.outcome {
                OUTCOME_RESPONSE => {
                    let status = key.status.to_string();
                    f.responses
                        .with_label_values(&[upstream.as_str(), route, &status, tls])
                        .inc_by(*count);
                    continue;
                }
                OUTCOME_RESET => "reset",
                OUTCOME_CLOSED => "closed",
                _ => "timeout",
            };
            f.no_response
                .with_label_values(&[upstream.as_str(), route, reason])
                .inc_by(*count);
        }
        for ((upstream, route), count) in self
            .timeouts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
        {
            f.no_response
                .with_label_values(&[upstream.as_str(), route.as_str(), "timeout"])
                .inc_by(*count);
        }
        for ((upstream, route, what, response), count) in self
            .tls_counts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
        {
            if *response {
                f.responses
                    .with_label_values(&[upstream.as_str(), route.as_str(), what.as_str(), "true"])
                    .inc_by(*count);
            } else {
                f.no_response
                    .with_label_values(&[upstream.as_str(), route.as_str(), what.as_str()])
                    .inc_by(*count);
            }
        }
        let stat = |slot: u32| snapshot.stats[slot as usize];
        f.overflow
            .with_label_values(&["responses"])
            .inc_by(stat(STAT_RESPONSE_MAP_FULL));
        f.overflow
            .with_label_values(&["flows"])
            .inc_by(stat(STAT_FLOW_MAP_FULL));
        f.overflow
            .with_label_values(&["tls_flows"])
            .inc_by(stat(STAT_TLS_FLOW_MAP_FULL));
        f.overflow
            .with_label_values(&["tls_hellos"])
            .inc_by(stat(STAT_TLS_HELLO_MAP_FULL));
        f.events_lost.inc_by(stat(STAT_EVENTS_LOST));
        f.unpaired
            .inc_by(stat(STAT_UNPAIRED) + stat(STAT_TLS_UNPAIRED));
        f.pipelined
            .inc_by(stat(STAT_PIPELINED) + stat(STAT_TLS_PIPELINED));
        f.collect()
    }
}

/// Metrics derived from each event.
pub struct EventMetrics {
    response_seconds: HistogramVec,
    retry_after_seconds: HistogramVec,
    remaining_requests: IntGaugeVec,
    remaining_tokens: IntGaugeVec,
    client_retries: IntCounterVec,
    upstreams: Mutex<HashSet<String>>,
}

impl EventMetrics {
    fn new(registry: &Registry) -> prometheus::Result<EventMetrics> {
        let m = EventMetrics {
            response_seconds: HistogramVec::new(
                HistogramOpts::new(
                    "ratewire_http_response_seconds",
                    "Time from the request head leaving to the status line arriving",
                )
                .buckets(vec![
                    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                    10.0, 30.0, 60.0, 120.0,
                ]),
                &["upstream", "route", "status_class"],
            )?,
            retry_after_seconds: HistogramVec::new(
                HistogramOpts::new(
                    "ratewire_retry_after_seconds",
                    "Retry-After (or retry-after-ms) announced by responses",
                )
                .buckets(vec![
                    0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 3600.0,
                ]),
                &["upstream"],
            )?,
            remaining_requests: IntGaugeVec::new(
                Opts::new(
                    "ratewire_ratelimit_remaining_requests",
                    "Last x-ratelimit-remaining-requests seen from the upstream",
                ),
                &["upstream"],
            )?,
            remaining_tokens: IntGaugeVec::new(
                Opts::new(
                    "ratewire_ratelimit_remaining_tokens",
                    "Last x-ratelimit-remaining-tokens seen from the upstream",
                ),
                &["upstream"],
            )?,
            client_retries: IntCounterVec::new(
                Opts::new(
                    "ratewire_client_retries_total",
                    "Requests sent as retries by OpenAI/Anthropic SDKs (x-stainless-retry-count >= 1), by attempt",
                ),
                &["upstream", "attempt"],
            )?,
            upstreams: Mutex::new(HashSet::new()),
        };
        registry.register(Box::new(m.response_seconds.clone()))?;
        registry.register(Box::new(m.retry_after_seconds.clone()))?;
        registry.register(Box::new(m.remaining_requests.clone()))?;
        registry.register(Box::new(m.remaining_tokens.clone()))?;
        registry.register(Box::new(m.client_retries.clone()))?;
        Ok(m)
    }

    pub fn observe(&self, ev: &Event, facts: &HeadFacts, routes: &RouteTable) {
        let upstream = self.upstream_label(upstream::label(
            ev.flow.upstream_addr,
            ev.flow.upstream_port,
        ));
        let client_retry = events::present(facts.client_retry).unwrap_or(0);
        if client_retry >= 1 {
            let attempt = match client_retry {
                n @ 1..=9 => n.to_string(),
                _ => "10+".to_owned(),
            };
            self.client_retries
                .with_label_values(&[upstream.as_str(), &attempt])
                .inc();
        }
        if ev.outcome != OUTCOME_RESPONSE {
            return;
        }
        let class = format!("{}xx", ev.status / 100);
        let seconds = ev.seen_ns.saturating_sub(ev.request_ns) as f64 / 1e9;
        self.response_seconds
            .with_label_values(&[upstream.as_str(), routes.label(ev.route), &class])
            .observe(seconds);
        if let Some(v) = events::present(facts.remaining_requests) {
            self.remaining_requests
                .with_label_values(&[upstream.as_str()])
                .set(v as i64);
        }
        if let Some(v) = events::present(facts.remaining_tokens) {
            self.remaining_tokens
                .with_label_values(&[upstream.as_str()])
                .set(v as i64);
        }
    }

    pub fn observe_retry_after(&self, upstream_label: String, ms: u64) {
        let upstream = self.upstream_label(upstream_label);
        self.retry_after_seconds
            .with_label_values(&[upstream.as_str()])
            .observe(ms as f64 / 1000.0);
    }

    /// The upstream's label, or `overflow` once [`MAX_EVENT_UPSTREAMS`] are tracked.
    pub fn upstream_label(&self, label: String) -> String {
        let mut seen = self.upstreams.lock().unwrap_or_else(|p| p.into_inner());
        if seen.contains(&label) || seen.len() < MAX_EVENT_UPSTREAMS {
            seen.insert(label.clone());
            label
        } else {
            "overflow".to_owned()
        }
    }
}
