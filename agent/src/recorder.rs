//! The recorder: drains the events ring buffer into the journal and the per-event
//! metrics, marks lost events with gap records, and decides timeouts by sweeping the
//! kernel's table of requests awaiting a response.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use anyhow::Context as _;
use aya::maps::{MapData, RingBuf};
use log::{error, warn};
use ratewire_ebpf::{
    http::{HEADER_LINE_WINDOW, WANTED_HEADERS},
    types::{Event, FlowKey, PendingRequest, CLIENT_RETRY_LINE, OUTCOME_TIMEOUT, STAT_EVENTS_LOST},
};
use ratewire_journal::{writer::JournalWriter, Record};
use tokio::{io::unix::AsyncFd, sync::watch, time::interval};

use crate::{
    clock, events,
    metrics::Metrics,
    probe::{Counters, Flows},
    routes::RouteTable,
    upstream,
};

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
        })
    }

    pub async fn run(mut self, mut stop: watch::Receiver<bool>) -> anyhow::Result<()> {
        let mut tick = interval(TICK);
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
        let facts = events::facts(ev);
        let record = events::to_record(ev, &facts, offset, &self.routes);
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
        lines,
    }
}
