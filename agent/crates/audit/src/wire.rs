//! The wire side: journal records as [`WireEvent`]s, and the retry chains that the
//! `x-stainless-retry-count` header (journal field `client_retry`) reveals.

use std::collections::HashMap;
use std::path::PathBuf;

use ratewire_journal::{read_path, Kind, TornLine};

use crate::error::AuditError;
use crate::model::{Window, WireEvent, WireOutcome, NS_PER_MS, NS_PER_SEC};

/// Everything the audit uses from the wire journal(s).
#[derive(Clone, Debug, Default)]
pub struct Wire {
    pub paths: Vec<PathBuf>,
    /// The `--upstream` filter it was loaded with (empty: all upstreams).
    pub upstream_filter: Vec<String>,
    /// Responses and no-response outcomes inside `--window` and `--upstream`, by time.
    pub events: Vec<WireEvent>,
    /// Records read, before filtering (gaps included).
    pub records: u64,
    /// Lines that were not whole records (crash-cut), first few kept.
    pub torn: Vec<TornLine>,
    pub torn_count: u64,
    /// Events the agent lost (ring buffer full): (time, count). Counts in the journal are
    /// incomplete there, and verdicts near them say so.
    pub gaps: Vec<(u64, u64)>,
    /// Response records without a status or upstream: skipped, never given a status.
    pub unusable: u64,
}

impl Wire {
    /// Read journal files or directories, keeping `upstreams` (all when empty) inside
    /// `window` (all when `None`).
    pub fn load(
        paths: &[PathBuf],
        upstreams: &[String],
        window: Option<Window>,
    ) -> Result<Wire, AuditError> {
        let mut wire = Wire {
            paths: paths.to_vec(),
            upstream_filter: upstreams.to_vec(),
            ..Wire::default()
        };
        for path in paths {
            let read = read_path(path)?;
            wire.torn_count += read.torn.len() as u64;
            wire.torn.extend(read.torn.into_iter().take(5));
            for record in read.records {
                wire.records += 1;
                let position = wire.records;
                if record.kind == Kind::Gap {
                    wire.gaps.push((record.unix_ns, record.lost.unwrap_or(0)));
                    continue;
                }
                let outcome = match (record.kind, record.status) {
                    (Kind::Response, Some(code)) => WireOutcome::Status(code),
                    (Kind::NoResponse, _) => WireOutcome::NoResponse,
                    _ => {
                        wire.unusable += 1;
                        continue;
                    }
                };
                let Some(upstream) = record.upstream else {
                    wire.unusable += 1;
                    continue;
                };
                if !upstreams.is_empty() && !upstreams.contains(&upstream) {
                    continue;
                }
                if window.is_some_and(|w| !w.contains(record.unix_ns)) {
                    continue;
                }
                wire.events.push(WireEvent {
                    record: position,
                    unix_ns: record.unix_ns,
                    request_ns: record.request_unix_ns,
                    client: record.client,
                    upstream,
                    outcome,
                    reason: record.reason,
                    method: record.method,
                    route: record.route,
                    retry_after_ms: record.retry_after_ms,
                    client_retry: record.client_retry,
                });
            }
        }
        wire.events.sort_by_key(|e| (e.unix_ns, e.record));
        Ok(wire)
    }

    /// Upstreams with events, sorted.
    pub fn upstreams(&self) -> Vec<String> {
        let mut ups: Vec<String> = self.events.iter().map(|e| e.upstream.clone()).collect();
        ups.sort();
        ups.dedup();
        ups
    }

    /// Events lost within `window` (all when `None`).
    pub fn lost_in(&self, window: Option<Window>) -> u64 {
        self.gaps
            .iter()
            .filter(|(t, _)| window.is_none_or(|w| w.contains(*t)))
            .map(|(_, n)| n)
            .sum()
    }
}

/// How long after a retryable response an SDK retry may come: the response's
/// Retry-After plus the SDK's own backoff (openai-python: 0.5 s doubling to 8 s, with
/// jitter), bounded by the 60 s the SDKs honour.
fn max_retry_gap_ns(previous: &WireEvent) -> u64 {
    let retry_after = previous.retry_after_ms.unwrap_or(0).min(120_000) * NS_PER_MS;
    retry_after + 20 * NS_PER_SEC
}

/// Attempts that can belong to one SDK retry chain: (client IP, upstream, route).
type RetryGroup<'a> = (Option<&'a str>, &'a str, Option<&'a str>);

/// For every event, the earlier attempt it retried (its predecessor in an SDK retry
/// chain), found through `client_retry` (x-stainless-retry-count):
///
/// attempt k > 0 is linked to an attempt k-1 from the same client IP (the SDK may open
/// a new connection) to the same upstream and route, whose outcome is retryable (408,
/// 409, 429, 5xx, none), which ended before attempt k started and at most
/// Retry-After + 20 s before it; among several, the latest. Each attempt is linked at
/// most once, so concurrent chains on one client cannot share an attempt.
pub fn link_client_retries(events: &[WireEvent]) -> Vec<Option<usize>> {
    let mut predecessor = vec![None; events.len()];
    let mut taken = vec![false; events.len()];
    let mut groups: HashMap<RetryGroup<'_>, Vec<usize>> = HashMap::new();
    for (i, e) in events.iter().enumerate() {
        if e.client_retry.is_some() {
            groups
                .entry((e.client_ip(), e.upstream.as_str(), e.route.as_deref()))
                .or_default()
                .push(i);
        }
    }
    for members in groups.values() {
        let mut retries: Vec<usize> = members
            .iter()
            .copied()
            .filter(|&i| events[i].client_retry.is_some_and(|k| k > 0))
            .collect();
        retries.sort_by_key(|&i| events[i].start_ns());
        for i in retries {
            let e = &events[i];
            let want = e.client_retry.unwrap_or(0) - 1;
            let started = e.start_ns();
            let best = members
                .iter()
                .copied()
                .filter(|&p| {
                    let prev = &events[p];
                    !taken[p]
                        && prev.client_retry == Some(want)
                        && prev.outcome.is_retryable()
                        && prev.unix_ns <= started + NS_PER_MS
                        && started.saturating_sub(prev.unix_ns) <= max_retry_gap_ns(prev)
                })
                .max_by_key(|&p| (events[p].unix_ns, p));
            if let Some(p) = best {
                taken[p] = true;
                predecessor[i] = Some(p);
            }
        }
    }
    predecessor
}

/// The inverse of [`link_client_retries`]: for every event, the attempt that retried it.
pub fn successors(predecessor: &[Option<usize>]) -> Vec<Option<usize>> {
    let mut next = vec![None; predecessor.len()];
    for (i, p) in predecessor.iter().enumerate() {
        if let Some(p) = p {
            next[*p] = Some(i);
        }
    }
    next
}

/// The final attempt of the chain `i` belongs to.
pub fn final_attempt(next: &[Option<usize>], mut i: usize) -> usize {
    while let Some(n) = next[i] {
        i = n;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(t_ms: u64, status: u16, retry: u32) -> WireEvent {
        WireEvent {
            record: t_ms,
            unix_ns: t_ms * NS_PER_MS + 10 * NS_PER_MS,
            request_ns: Some(t_ms * NS_PER_MS),
            client: Some(format!("127.0.0.1:{}", 40000 + t_ms)),
            upstream: "127.0.0.1:9000".into(),
            outcome: WireOutcome::Status(status),
            reason: None,
            method: Some("POST".into()),
            route: Some("/v1/chat/completions".into()),
            retry_after_ms: Some(100),
            client_retry: Some(retry),
        }
    }

    #[test]
    fn chains_follow_the_retry_count() {
        // Two concurrent chains: 429 → 429 → 200 and 429 → 200; one plain 200.
        let events = vec![
            event(0, 429, 0),
            event(5, 429, 0),
            event(100, 200, 0),
            event(200, 429, 1),
            event(210, 200, 1),
            event(500, 200, 2),
        ];
        let pred = link_client_retries(&events);
        assert_eq!(pred[3], Some(1)); // the latest eligible attempt 0
        assert_eq!(pred[4], Some(0));
        assert_eq!(pred[5], Some(3));
        assert_eq!(pred[2], None);
        let next = successors(&pred);
        assert_eq!(final_attempt(&next, 1), 5);
        assert_eq!(final_attempt(&next, 0), 4);
    }

    #[test]
    fn a_success_is_never_retried() {
        let events = vec![event(0, 200, 0), event(100, 200, 1)];
        assert_eq!(link_client_retries(&events), vec![None, None]);
    }
}
