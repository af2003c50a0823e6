//! Pairing reported requests with wire responses by time (and by connection when the
//! report names one).
//!
//! # Algorithm
//!
//! 1. **Keys.** A reported request that names its upstream (Envoy `%UPSTREAM_HOST%`)
//!    only pairs with wire events of that upstream; one that names its client
//!    connection (uvicorn's `ip:port`) only with events of that connection. A report
//!    with connections but no times (uvicorn) pairs line *n* of a connection with the
//!    *n*-th response on it: one connection carries one request at a time.
//! 2. **Clock offset.** Reports written on another clock (genai-bench's local-time log,
//!    vLLM's `perf_counter` start times) are shifted onto the wire's clock first.
//!    Candidates: 0; when the report is not in Unix time, every multiple of 15 minutes
//!    within ±14 h (time zones) and the difference between the first wire request and
//!    the first reported request. The candidate under which most reported requests
//!    (up to 500, evenly sampled) have a wire event within the skew window wins (ties:
//!    the smallest shift). It is then refined by the median residual of those pairs
//!    when that median lies within the window. The offset used is in the output.
//! 3. **Skew window.** After the shift, a reported request pairs only with wire events
//!    whose time lies within `max_skew` (default 2 s, `--max-skew`) of the reported
//!    time, interval or second.
//! 4. **Assignment.** Each pairing has a cost: (distance outside the reported
//!    interval, in ms; distance between the reported and the wire request start — for
//!    a gateway line that made several attempts, between the ends — in ms; 0 if the
//!    statuses agree, 1 if both say failure, 2 otherwise; exact distance). Every
//!    reported request examines its 64 nearest free wire events (walking outward from
//!    its time) and keeps its 16 cheapest; all those pairs are then taken cheapest
//!    first, each request and each wire event at most once (a greedy minimum-cost
//!    matching, over chunks of 8192 requests in time order to bound memory), so a
//!    request whose own response is missing from the wire cannot take its
//!    neighbour's. When time cannot tell two requests apart (same second, same
//!    millisecond), the pairing that agrees is preferred, so a misreport or phantom is
//!    only declared when no agreeing pairing exists: the discrepancies found are lower
//!    bounds.

use std::collections::HashMap;

use crate::model::{ReportedRequest, TimeAnchor, WireEvent, NS_PER_MS, NS_PER_SEC};
use crate::verdict::{classify_pair, Verdict};

/// How far a reported time may be from the wire's, after the offset.
pub const DEFAULT_MAX_SKEW_NS: u64 = 2 * NS_PER_SEC;
/// Wire candidates examined per reported request, nearest to its time first (bounds
/// the cost on dense logs).
const MAX_CANDIDATES: usize = 64;
/// Cheapest candidates kept per reported request for the assignment.
const EDGES_PER_REQUEST: usize = 16;
/// Reported requests whose candidates are assigned together (bounds memory on huge
/// logs; requests are in time order, so a chunk's edges are its neighbourhood's).
const REQUESTS_PER_CHUNK: usize = 8192;
/// How long before its response a request may have started (header latency bound for
/// searching by start time).
const MAX_REQUEST_LATENCY_NS: u64 = 600 * NS_PER_SEC;

#[derive(Clone, Copy, Debug)]
pub struct MatchOptions {
    pub max_skew_ns: u64,
    /// The report's times are Unix time from a synchronised clock: only offset 0 and
    /// its refinement are tried.
    pub unix_clock: bool,
}

/// A reported request paired with a wire event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pair {
    pub request: usize,
    pub event: usize,
    /// |reported − wire| in ns after the offset (0 inside a reported interval).
    pub distance_ns: u64,
}

#[derive(Clone, Debug, Default)]
pub struct Matching {
    pub pairs: Vec<Pair>,
    /// Shift applied to the report's times (report + offset = wire), ns.
    pub offset_ns: i64,
    /// How the offset was found, for the output.
    pub offset_basis: String,
}

/// Cost of pairing: lexicographic, see the module docs.
type Cost = (u64, u64, u8, u64);

fn cost(anchor: TimeAnchor, request: &ReportedRequest, e: &WireEvent) -> Cost {
    let (ws, we) = (e.start_ns(), e.unix_ns);
    let (outside, start_gap) = match anchor {
        TimeAnchor::Start(t) => match e.request_ns {
            Some(_) => (t.abs_diff(ws), 0),
            None => (t.saturating_sub(we), 0),
        },
        TimeAnchor::End(t) => (t.abs_diff(we), 0),
        // One attempt starts right after the logged start; of several (a gateway that
        // retried), the logged line stands for the last, which ends near the end.
        TimeAnchor::Span { start, end } => (
            start.saturating_sub(ws) + we.saturating_sub(end),
            if request.attempts_unknown {
                0 // any attempt inside may be the logged one: the status decides
            } else if request.attempts.unwrap_or(1) > 1 {
                end.abs_diff(we)
            } else {
                start.abs_diff(ws)
            },
        ),
        TimeAnchor::Point(t) => (
            if t < ws { ws - t } else { t.saturating_sub(we) },
            t.abs_diff(ws),
        ),
        TimeAnchor::Second(s) => {
            let end = s + NS_PER_SEC;
            (
                if we < s {
                    s - we
                } else {
                    we.saturating_sub(end)
                },
                0,
            )
        }
    };
    // 0: the statuses agree; 1: both say failure (a misreported code is likelier than
    // a failure where the wire had a success); 2: otherwise.
    let disagree = if classify_pair(e.outcome, request.outcome) == Verdict::Consistent {
        0
    } else if !e.outcome.is_success() && !request.outcome.is_success() {
        1
    } else {
        2
    };
    (
        outside / NS_PER_MS,
        start_gap / NS_PER_MS,
        disagree,
        outside + start_gap,
    )
}

/// The instant a request's partner should lie nearest to, and whether that is the wire
/// request start (else the response): candidates are examined nearest first.
fn reference_point(anchor: TimeAnchor, request: &ReportedRequest) -> Option<(u64, bool)> {
    Some(match anchor {
        TimeAnchor::Start(t) | TimeAnchor::Point(t) => (t, true),
        TimeAnchor::Span { end, .. } if request.attempts.unwrap_or(1) > 1 => (end, false),
        TimeAnchor::Span { start, .. } => (start, true),
        TimeAnchor::End(t) => (t, false),
        TimeAnchor::Second(s) => (s + NS_PER_SEC / 2, false),
    })
}

/// Range of wire times to search for `anchor`, and whether to search by request start.
fn search_range(anchor: TimeAnchor, skew: u64) -> (u64, u64, bool) {
    match anchor {
        TimeAnchor::Start(t) => (t.saturating_sub(skew), t + skew, true),
        TimeAnchor::Span { start, end } => (start.saturating_sub(skew), end + skew, true),
        TimeAnchor::Point(t) => (
            t.saturating_sub(skew + MAX_REQUEST_LATENCY_NS),
            t + skew,
            true,
        ),
        TimeAnchor::End(t) => (t.saturating_sub(skew), t + skew, false),
        TimeAnchor::Second(s) => (s.saturating_sub(skew), s + NS_PER_SEC + skew, false),
    }
}

/// Wire events of one key (upstream or client), sorted two ways.
struct Candidates {
    by_start: Vec<usize>,
    by_end: Vec<usize>,
}

impl Candidates {
    fn new(events: &[WireEvent], members: Vec<usize>) -> Candidates {
        let mut by_start = members.clone();
        by_start.sort_by_key(|&i| (events[i].start_ns(), i));
        let mut by_end = members;
        by_end.sort_by_key(|&i| (events[i].unix_ns, i));
        Candidates { by_start, by_end }
    }
}

/// Pair `requests` with the events `scope` (indices into `events`).
pub fn match_requests(
    events: &[WireEvent],
    scope: &[usize],
    requests: &[ReportedRequest],
    options: MatchOptions,
) -> Matching {
    let mut matching = Matching::default();
    // A gateway's own replies (Envoy RL, UO, ...) made no upstream request: never paired.
    let timed: Vec<usize> = (0..requests.len())
        .filter(|&r| requests[r].time.is_some() && requests[r].local_reply.is_none())
        .collect();
    let untimed_by_client: Vec<usize> = (0..requests.len())
        .filter(|&r| requests[r].time.is_none() && requests[r].client.is_some())
        .collect();

    let mut paired_event = vec![false; events.len()];
    if !untimed_by_client.is_empty() {
        pair_by_connection(
            events,
            scope,
            requests,
            &untimed_by_client,
            &mut paired_event,
            &mut matching,
        );
        matching.offset_basis =
            "paired by client connection and order (no times in the report)".into();
    }
    if timed.is_empty() {
        return matching;
    }

    let (offset, basis) = estimate_offset(events, scope, requests, &timed, options);
    matching.offset_ns = offset;
    matching.offset_basis = basis;

    // Candidate lists per key: all, per upstream, per client.
    let free_scope: Vec<usize> = scope
        .iter()
        .copied()
        .filter(|&i| !paired_event[i])
        .collect();
    let mut keyed: HashMap<(u8, &str), Vec<usize>> = HashMap::new();
    for &i in &free_scope {
        keyed
            .entry((0, events[i].upstream.as_str()))
            .or_default()
            .push(i);
        if let Some(c) = events[i].client.as_deref() {
            keyed.entry((1, c)).or_default().push(i);
        }
    }
    let lists: HashMap<(u8, &str), Candidates> = keyed
        .into_iter()
        .map(|(k, m)| (k, Candidates::new(events, m)))
        .collect();
    let all = Candidates::new(events, free_scope);

    // Candidate edges: each request's cheapest free events within the skew window;
    // then the cheapest edges first, so that a request whose partner is missing from
    // the wire cannot take its neighbour's. Requests go in time order, in chunks (the
    // edges of a chunk are all in memory at once; events taken by an earlier chunk
    // are no longer free).
    let mut order = timed;
    order.sort_by_key(|&r| requests[r].time.map(TimeAnchor::instant));
    let mut request_done = vec![false; requests.len()];
    let mut edges: Vec<(Cost, usize, usize)> = Vec::new();
    for chunk in order.chunks(REQUESTS_PER_CHUNK) {
        edges.clear();
        for &r in chunk {
            let request = &requests[r];
            let anchor = request.time.expect("timed").shifted(offset);
            let key = match (&request.client, &request.upstream) {
                (Some(c), _) => Some((1u8, c.as_str())),
                (None, Some(u)) => Some((0u8, u.as_str())),
                (None, None) => None,
            };
            let list = match key {
                Some(k) => match lists.get(&k) {
                    Some(l) => l,
                    None => continue, // nothing on the wire for this upstream/connection
                },
                None => &all,
            };
            let (lo, hi, by_start) = search_range(anchor, options.max_skew_ns);
            let (reference, by_start) = reference_point(anchor, request).unwrap_or((lo, by_start));
            let (sorted, time_of): (&[usize], fn(&WireEvent) -> u64) = if by_start {
                (&list.by_start, WireEvent::start_ns)
            } else {
                (&list.by_end, |e| e.unix_ns)
            };
            // Walk outward from the reference point, nearest first, within [lo, hi].
            let mut right = sorted.partition_point(|&i| time_of(&events[i]) < reference);
            let mut left = right;
            let mut mine: Vec<(Cost, usize)> = Vec::new();
            let mut examined = 0;
            while examined < MAX_CANDIDATES {
                let l = (left > 0)
                    .then(|| sorted[left - 1])
                    .filter(|&e| time_of(&events[e]) >= lo);
                let r = sorted
                    .get(right)
                    .copied()
                    .filter(|&e| time_of(&events[e]) <= hi);
                let take_left = match (l, r) {
                    (None, None) => break,
                    (Some(_), None) => true,
                    (None, Some(_)) => false,
                    (Some(a), Some(b)) => {
                        reference - time_of(&events[a]) <= time_of(&events[b]) - reference
                    }
                };
                let e = if take_left {
                    left -= 1;
                    sorted[left]
                } else {
                    right += 1;
                    sorted[right - 1]
                };
                if paired_event[e] {
                    continue;
                }
                examined += 1;
                let c = cost(anchor, request, &events[e]);
                if c.0 * NS_PER_MS <= options.max_skew_ns {
                    mine.push((c, e));
                }
            }
            mine.sort_unstable();
            mine.truncate(EDGES_PER_REQUEST);
            edges.extend(mine.into_iter().map(|(c, e)| (c, r, e)));
        }
        edges.sort_unstable();
        for &(c, r, e) in &edges {
            if !request_done[r] && !paired_event[e] {
                request_done[r] = true;
                paired_event[e] = true;
                matching.pairs.push(Pair {
                    request: r,
                    event: e,
                    distance_ns: c.3,
                });
            }
        }
    }
    matching
}

/// Line n of a connection ↔ the n-th response on it.
fn pair_by_connection(
    events: &[WireEvent],
    scope: &[usize],
    requests: &[ReportedRequest],
    untimed: &[usize],
    paired_event: &mut [bool],
    matching: &mut Matching,
) {
    let mut by_client: HashMap<&str, Vec<usize>> = HashMap::new();
    for &i in scope {
        if let Some(c) = events[i].client.as_deref() {
            by_client.entry(c).or_default().push(i);
        }
    }
    for list in by_client.values_mut() {
        list.sort_by_key(|&i| (events[i].unix_ns, i));
    }
    let mut cursor: HashMap<&str, usize> = HashMap::new();
    for &r in untimed {
        let client = requests[r].client.as_deref().expect("client");
        let Some(list) = by_client.get(client) else {
            continue;
        };
        let at = cursor.entry(client).or_default();
        if let Some(&e) = list.get(*at) {
            *at += 1;
            paired_event[e] = true;
            matching.pairs.push(Pair {
                request: r,
                event: e,
                distance_ns: 0,
            });
        }
    }
}

/// Clock offset report → wire (see the module docs), and how it was found.
fn estimate_offset(
    events: &[WireEvent],
    scope: &[usize],
    requests: &[ReportedRequest],
    timed: &[usize],
    options: MatchOptions,
) -> (i64, String) {
    if scope.is_empty() {
        return (0, "no wire events in scope".into());
    }
    let mut starts: Vec<u64> = scope.iter().map(|&i| events[i].start_ns()).collect();
    starts.sort_unstable();
    let step = (timed.len() / 500).max(1);
    let sample: Vec<TimeAnchor> = timed
        .iter()
        .step_by(step)
        .filter_map(|&r| requests[r].time)
        .collect();

    let mut candidates: Vec<i64> = vec![0];
    if !options.unix_clock {
        let quarter = 15 * 60 * NS_PER_SEC as i64;
        candidates.extend((-56..=56).filter(|&q| q != 0).map(|q| q * quarter));
        if let Some(first) = sample.iter().map(|a| a.instant()).min() {
            candidates.push(starts[0] as i64 - first as i64);
        }
    }
    let score = |offset: i64| -> usize {
        sample
            .iter()
            .filter(|a| {
                nearest_gap(&starts, a.shifted(offset).instant())
                    <= options.max_skew_ns + NS_PER_SEC
            })
            .count()
    };
    let (best, hits) = candidates
        .iter()
        .map(|&c| (c, score(c)))
        .max_by_key(|&(c, s)| (s, std::cmp::Reverse(c.unsigned_abs())))
        .unwrap_or((0, 0));
    // Refine with the median residual of request starts (second-resolution anchors are
    // too coarse to refine: they only confirm the candidate).
    let mut residuals: Vec<i64> = sample
        .iter()
        .filter_map(|a| {
            let t = match a.shifted(best) {
                TimeAnchor::Start(t) | TimeAnchor::Point(t) => t,
                TimeAnchor::Span { start, .. } => start,
                _ => return None,
            };
            let i = starts.partition_point(|&s| s < t);
            let near = [i.checked_sub(1), Some(i)]
                .into_iter()
                .flatten()
                .filter_map(|i| starts.get(i))
                .min_by_key(|&&s| s.abs_diff(t))?;
            let r = *near as i64 - t as i64;
            (r.unsigned_abs() <= options.max_skew_ns).then_some(r)
        })
        .collect();
    residuals.sort_unstable();
    let refined = residuals.get(residuals.len() / 2).copied().unwrap_or(0);
    let offset = best + refined;
    let basis = format!(
        "clock offset {:+.3} s ({} of {} sampled requests within the skew window{})",
        offset as f64 / 1e9,
        hits,
        sample.len(),
        if residuals.is_empty() {
            String::new()
        } else {
            format!("; median residual of {} pairs", residuals.len())
        }
    );
    (offset, basis)
}

fn nearest_gap(sorted: &[u64], t: u64) -> u64 {
    let i = sorted.partition_point(|&s| s < t);
    [i.checked_sub(1), Some(i)]
        .into_iter()
        .flatten()
        .filter_map(|i| sorted.get(i))
        .map(|&s| s.abs_diff(t))
        .min()
        .unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Location, Reported, WireOutcome};

    fn wire(t_ms: u64, status: u16) -> WireEvent {
        WireEvent {
            record: t_ms,
            unix_ns: (t_ms + 20) * NS_PER_MS,
            request_ns: Some(t_ms * NS_PER_MS),
            client: None,
            upstream: "u:1".into(),
            outcome: WireOutcome::Status(status),
            reason: None,
            method: None,
            route: None,
            retry_after_ms: None,
            client_retry: None,
        }
    }

    fn reported(anchor: TimeAnchor, status: u16) -> ReportedRequest {
        let mut r = ReportedRequest::new(Location::new("r", None), Reported::Status(status));
        r.time = Some(anchor);
        r
    }

    const BASE: u64 = 1_800_000_000_000; // ms

    #[test]
    fn pairs_by_start_time_and_prefers_agreement_on_ties() {
        let events = vec![wire(BASE, 200), wire(BASE + 1, 429), wire(BASE + 500, 200)];
        let scope: Vec<usize> = (0..3).collect();
        // Two requests in the same second: the 429 pairs with the 429.
        let requests = vec![
            reported(TimeAnchor::Second((BASE / 1000) * NS_PER_SEC), 429),
            reported(TimeAnchor::Start((BASE + 500) * NS_PER_MS), 200),
        ];
        let opts = MatchOptions {
            max_skew_ns: DEFAULT_MAX_SKEW_NS,
            unix_clock: true,
        };
        let m = match_requests(&events, &scope, &requests, opts);
        let mut pairs: Vec<(usize, usize)> = m.pairs.iter().map(|p| (p.request, p.event)).collect();
        pairs.sort();
        assert_eq!(pairs, vec![(0, 1), (1, 2)]);
    }

    #[test]
    fn finds_a_time_zone_offset() {
        let events: Vec<WireEvent> = (0..20).map(|i| wire(BASE + i * 1000, 200)).collect();
        let scope: Vec<usize> = (0..20).collect();
        let two_hours = 2 * 3600 * NS_PER_SEC;
        let requests: Vec<ReportedRequest> = (0..20)
            .map(|i| {
                reported(
                    TimeAnchor::Start((BASE + i * 1000) * NS_PER_MS + two_hours + 3 * NS_PER_MS),
                    200,
                )
            })
            .collect();
        let opts = MatchOptions {
            max_skew_ns: DEFAULT_MAX_SKEW_NS,
            unix_clock: false,
        };
        let m = match_requests(&events, &scope, &requests, opts);
        assert_eq!(m.offset_ns, -(two_hours as i64) - 3_000_000);
        assert_eq!(m.pairs.len(), 20);
        assert!(m.pairs.iter().all(|p| p.request == p.event));
    }

    #[test]
    fn nothing_pairs_outside_the_skew_window() {
        let events = vec![wire(BASE, 200)];
        let requests = vec![reported(
            TimeAnchor::Start((BASE + 10_000) * NS_PER_MS),
            200,
        )];
        let opts = MatchOptions {
            max_skew_ns: DEFAULT_MAX_SKEW_NS,
            unix_clock: true,
        };
        assert!(match_requests(&events, &[0], &requests, opts)
            .pairs
            .is_empty());
    }
}
