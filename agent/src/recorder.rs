//! The recorder: drains the events ring buffer into the journal and the per-event
//! metrics, marks lost events with gap records, and decides timeouts by sweeping the
//! kernel's table of requests awaiting a response.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use anyhow::Context as _;
use aya::maps::{MapData, RingBuf};
use log::{error, warn};
use ratewire_common::{
    http::{HEADER_LINE_WINDOW, WANTED_HEADERS},
    types::{
        Event, FlowKey, PendingRequest, TlsKey, CLIENT_RETRY_LINE, NO_FD, OUTCOME_CLOSED,
        OUTCOME_RESET, OUTCOME_RESPONSE, OUTCOME_TIMEOUT, OUTCOME_TLS_SOCKET, STAT_EVENTS_LOST,
    },
};
use ratewire_journal::{writer::JournalWriter, Record};
use tokio::{io::unix::AsyncFd, sync::watch, time::interval};

use crate::{
    clock, events,
    metrics::Metrics,
    probe::{Counters, Flows, TlsFds, TlsFlows, TlsHellos},
    routes::RouteTable,
    tls::SocketResolver,
    upstream,
};

/// What the recorder needs for TLS: the kernel's pending TLS requests (timeouts), the
/// SSL objects' sockets, and the /proc resolver of sockets to connections.
pub struct TlsState {
    pub flows: TlsFlows,
    pub fds: TlsFds,
    pub resolver: SocketResolver,
    /// ClientHellos seen on TC egress (kernel LRU map), compared with `attributed`.
    pub hellos: TlsHellos,
    /// Connections the uprobes were attributed to: flow -> when (monotonic ns).
    pub attributed: HashMap<FlowKey, u64>,
}

/// How long after its ClientHello a TLS connection has to show up in a uprobe event
/// before it counts as unobserved.
pub const HELLO_GRACE: Duration = Duration::from_secs(5);
/// Attributed connections are remembered this long (well past the grace period).
const ATTRIBUTED_KEEP: Duration = Duration::from_secs(60);

/// How often timeouts are decided, lost events checked and the journal flushed.
const TICK: Duration = Duration::from_millis(200);

pub struct Recorder {
    events: AsyncFd<RingBuf<MapData>>,
    flows: Flows,
    counters: Arc<Mutex<Counters>>,
    metrics: Arc<Metrics>,
    routes: RouteTable,
    journal: Option<JournalWriter>,
    timeout: Duration,
    /// `STAT_EVENTS_LOST` already marked in the journal.
    lost_marked: u64,
    batch: Vec<Record>,
    tls: Option<TlsState>,
}

impl Recorder {
    pub fn new(
        events: RingBuf<MapData>,
        flows: Flows,
        counters: Arc<Mutex<Counters>>,
        metrics: Arc<Metrics>,
        routes: RouteTable,
        journal: Option<JournalWriter>,
        timeout: Duration,
    ) -> anyhow::Result<Recorder> {
        Ok(Recorder {
            // SAFETY: the ring buffer owns its fd and lives inside the AsyncFd, so the fd
            // stays open for as long as it is registered.
            events: unsafe { AsyncFd::register(events) }
                .map_err(|e| anyhow::anyhow!("polling the events ring buffer: {e}"))?,
            flows,
            counters,
            metrics,
            routes,
            journal,
            timeout,
            lost_marked: 0,
            batch: Vec::new(),
            tls: None,
        })
    }

    /// Also record TLS outcomes (the uprobes are loaded).
    pub fn with_tls(mut self, tls: TlsState) -> Recorder {
        self.tls = Some(tls);
        self
    }

    pub async fn run(mut self, mut stop: watch::Receiver<bool>) -> anyhow::Result<()> {
        let mut tick = interval(TICK);
        let mut ticks = 0u64;
        loop {
            tokio::select! {
                readable = self.events.readable_mut() => {
                    let mut guard = readable.context("waiting for events")?;
                    guard.clear_ready();
                    drop(guard);
                    self.drain_events();
                }
                _ = tick.tick() => {
                    self.drain_events();
                    self.sweep_timeouts();
                    self.sweep_tls_timeouts();
                    ticks += 1;
                    if ticks.is_multiple_of(5) {
                        self.check_hellos();
                    }
                    self.mark_lost_events();
                    self.flush()?;
                }
                _ = stop.changed() => break,
            }
            if self.batch.len() >= 4096 {
                self.flush()?;
            }
        }
        // Last words: everything the kernel already handed over reaches the journal.
        self.drain_events();
        self.mark_lost_events();
        self.flush()?;
        if let Some(journal) = self.journal.take() {
            journal.close().context("closing the journal")?;
        }
        Ok(())
    }

    fn drain_events(&mut self) {
        let offset = clock::wall_offset_ns();
        loop {
            let parsed = match self.events.get_mut().next() {
                Some(item) => events::parse(&item).ok_or(item.len()),
                None => break,
            };
            match parsed {
                Ok(ev) => self.observe(&ev, offset),
                Err(len) => warn!("short event ({len} bytes) skipped"),
            }
        }
    }

    fn observe(&mut self, ev: &Event, offset: i128) {
        let mut ev = *ev;
        let mut attributed = true;
        if ev.tls != 0 {
            match self.attribute_tls(&mut ev) {
                None => return, // a socket hint, not an outcome
                Some(found) => attributed = found,
            }
        }
        let ev = &ev;
        let facts = events::facts(ev);
        let mut record = events::to_record(ev, &facts, offset, &self.routes);
        if !attributed {
            record.upstream = None;
            record.client = None;
            if self.journal.is_some() {
                self.batch.push(record);
            }
            return;
        }
        self.metrics.per_event.observe(ev, &facts, &self.routes);
        if let (Some(ms), Some(upstream)) = (record.retry_after_ms, &record.upstream) {
            self.metrics
                .per_event
                .observe_retry_after(upstream.clone(), ms);
        }
        if self.journal.is_some() {
            self.batch.push(record);
        }
    }

    /// A TLS event: resolve its connection from (tgid, fd) and count it. `None` for a
    /// socket hint (resolved and cached now, while the connection is surely open);
    /// otherwise whether the connection was found.
    fn attribute_tls(&mut self, ev: &mut Event) -> Option<bool> {
        let tls = self.tls.as_mut()?;
        let flow = tls.resolver.resolve(ev.tgid, ev.fd);
        if let Some(flow) = flow {
            tls.attributed.insert(flow, clock::monotonic_ns());
        }
        if ev.outcome == OUTCOME_TLS_SOCKET {
            return None;
        }
        let Some(flow) = flow else {
            self.metrics.tls_unattributed.inc();
            return Some(false);
        };
        ev.flow = flow;
        let (what, response) = match ev.outcome {
            OUTCOME_RESPONSE => (ev.status.to_string(), true),
            OUTCOME_RESET => ("reset".to_owned(), false),
            OUTCOME_CLOSED => ("closed".to_owned(), false),
            _ => ("timeout".to_owned(), false),
        };
        self.metrics.count_tls(
            upstream::label(flow.upstream_addr, flow.upstream_port),
            self.routes.label(ev.route).to_owned(),
            what,
            response,
        );
        Some(true)
    }

    /// ClientHellos older than the grace period: counted per upstream, and as
    /// unobserved when no uprobe event was attributed to their connection.
    fn check_hellos(&mut self) {
        let Some(tls) = self.tls.as_mut() else {
            return;
        };
        let now = clock::monotonic_ns();
        let grace = HELLO_GRACE.as_nanos() as u64;
        let due: Vec<(FlowKey, u64)> = tls
            .hellos
            .iter()
            .filter_map(Result::ok)
            .filter(|(_, at)| now.saturating_sub(*at) > grace)
            .collect();
        for (flow, hello_at) in due {
            if tls.hellos.remove(&flow).is_err() {
                continue;
            }
            let label = self
                .metrics
                .per_event
                .upstream_label(upstream::label(flow.upstream_addr, flow.upstream_port));
            self.metrics
                .tls_connections
                .with_label_values(&[label.as_str()])
                .inc();
            // Only an attribution after this hello counts: an earlier connection with
            // the same addresses and ports (an ephemeral port reused) is another one.
            let observed = tls
                .attributed
                .get(&flow)
                .is_some_and(|&seen| seen >= hello_at);
            if !observed {
                self.metrics
                    .tls_unobserved
                    .with_label_values(&[label.as_str()])
                    .inc();
            }
        }
        let keep = ATTRIBUTED_KEEP.as_nanos() as u64;
        tls.attributed
            .retain(|_, seen| now.saturating_sub(*seen) <= keep);
    }

    /// TLS requests older than the timeout end as `timeout`, like plaintext ones.
    fn sweep_tls_timeouts(&mut self) {
        let Some(tls) = self.tls.as_mut() else {
            return;
        };
        let now = clock::monotonic_ns();
        let limit = self.timeout.as_nanos() as u64;
        let expired: Vec<(TlsKey, PendingRequest)> = tls
            .flows
            .iter()
            .filter_map(Result::ok)
            .filter(|(_, p)| now.saturating_sub(p.request_ns) > limit)
            .collect();
        let mut ended = Vec::new();
        for (key, pending) in expired {
            if tls.flows.remove(&key).is_err() {
                continue; // the response won the race
            }
            let fd = tls.fds.get(&key, 0).unwrap_or(NO_FD);
            let mut ev = timeout_event(
                FlowKey {
                    client_addr: [0; 16],
                    upstream_addr: [0; 16],
                    client_port: 0,
                    upstream_port: 0,
                },
                pending,
                now,
            );
            ev.tls = 1;
            ev.tgid = key.tgid;
            ev.fd = fd;
            ended.push(ev);
        }
        let offset = clock::wall_offset_ns();
        for ev in ended {
            self.observe(&ev, offset);
        }
    }

    /// Requests older than the timeout end as `timeout`. The kernel may pair a response
    /// with the same request at the same moment: whoever deletes the entry counts it.
    fn sweep_timeouts(&mut self) {
        let now = clock::monotonic_ns();
        let limit = self.timeout.as_nanos() as u64;
        let expired: Vec<(FlowKey, PendingRequest)> = self
            .flows
            .iter()
            .filter_map(Result::ok)
            .filter(|(_, p)| now.saturating_sub(p.request_ns) > limit)
            .collect();
        let offset = clock::wall_offset_ns();
        for (flow, pending) in expired {
            if self.flows.remove(&flow).is_err() {
                continue; // the response (or RST/FIN) won the race
            }
            let ev = timeout_event(flow, pending, now);
            self.metrics.count_timeout(
                upstream::label(flow.upstream_addr, flow.upstream_port),
                self.routes.label(pending.route).to_owned(),
            );
            self.observe(&ev, offset);
        }
    }

    /// A gap record for every event the kernel could not hand over since the last one.
    fn mark_lost_events(&mut self) {
        let lost = match self
            .counters
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .stat(STAT_EVENTS_LOST)
        {
            Ok(n) => n,
            Err(e) => {
                error!("{e:#}");
                return;
            }
        };
        if lost > self.lost_marked {
            let now = clock::to_unix_ns(clock::monotonic_ns(), clock::wall_offset_ns());
            if self.journal.is_some() {
                self.batch
                    .push(Record::gap(now, lost - self.lost_marked, events::SOURCE));
            }
            warn!("{} events lost (ring buffer full)", lost - self.lost_marked);
            self.lost_marked = lost;
        }
    }

    fn flush(&mut self) -> anyhow::Result<()> {
        let Some(journal) = self.journal.as_mut() else {
            return Ok(());
        };
        if !self.batch.is_empty() {
            journal
                .write_batch(&self.batch)
                .context("writing the journal")?;
            self.batch.clear();
        }
        journal.flush().context("flushing the journal")?;
        Ok(())
    }
}

/// The event the kernel would have sent had the timeout been its decision.
fn timeout_event(flow: FlowKey, pending: PendingRequest, now: u64) -> Event {
    let mut lines = [[0u8; HEADER_LINE_WINDOW]; WANTED_HEADERS];
    lines[CLIENT_RETRY_LINE] = pending.client_retry_line;
    Event {
        seen_ns: now,
        request_ns: pending.request_ns,
        flow,
        status: 0,
        route: pending.route,
        outcome: OUTCOME_TIMEOUT,
        method: pending.method,
        tls: pending.tls,
        reserved: [0; 5],
        tgid: 0,
        fd: 0,
        lines,
    }
}
