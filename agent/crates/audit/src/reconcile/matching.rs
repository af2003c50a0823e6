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
//!    the smallest shift). It is then refined by the median residual of those samples
//!    to their nearest wire request start when that median lies within the window.
//!    Nearest neighbours are biased towards 0 on a dense log (several samples take
//!    the same nearby request), so for reports that say exactly when each request was
//!    sent (start times: aiperf without an end, Envoy without a duration) the
//!    refinement is redone from the one-to-one pairs of a first assignment (step 4),
//!    and the requests are paired again when that moves the offset by ¼ ms or more.
//!    Points and spans (JSON Lines times, Envoy `START_TIME` + `DURATION`) are not
//!    re-centred: they only have to contain their exchange, and centring them on the
//!    wire's starts would push half of them off it. The offset used is in the output.
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
//!    neighbour's. Requests left without a partner (all their 16 went to others) try
//!    again, up to twice, among the events still free.
//! 5. **Ties.** Time only tells requests apart down to the report's precision and
//!    jitter: Locust's `start_time` is taken before gevent gets to write the request,
//!    a few ms off, while 4 users' requests leave within 0.5 ms of each other. The
//!    *tie window* W is the report's time precision (the largest power of ten of ns
//!    that all its times are multiples of; second-resolution times already stand for
//!    their second and do not count) plus twice the 90th percentile of the time
//!    distances of the pairs of step 4 (how far its times lie from their responses),
//!    at least 1 ms, at most the skew window. When W > 1 ms, step 4 is redone with the
//!    time distances compared in whole multiples of W instead of ms, so among
//!    candidates in the same multiple the status decides. Then a repair pass swaps the
//!    responses of two disagreeing pairs when that makes more of them agree (or puts
//!    two failures together), both stay within the skew window and neither pair's
//!    time distance grows by more than W (an agreeing pair never gains from a swap).
//!    So a misreport or phantom is only declared when no agreeing pairing within the
//!    tie window exists: the discrepancies found are lower bounds. A report that
//!    writes every 429 as 500 still pairs every 500 with a 429 (nothing agrees with a
//!    500, two failures are preferred), and a misreport and a phantom that the
//!    report's times do tell apart (further apart than W) both stay. The swaps and W
//!    are in the output (with the offset). Limit: only swaps of two pairs are
//!    searched; on far denser logs (2000 requests/s of one key, times 0-3 ms off, ~6
//!    requests inside the jitter) rotations through longer chains of agreeing pairs
//!    are missed: of 200 000 honest requests, 0.8 % then came out misreported and as
//!    many phantom (15 % were discrepancies without step 4's retry and step 5).

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
/// Pairs needed before their median residual refines the clock offset.
const MIN_PAIRS_TO_REFINE: usize = 8;
/// A refinement from the pairs this large (or larger) pairs the requests again.
const REMATCH_SHIFT_NS: u64 = NS_PER_MS / 4;
/// Disagreeing pairs examined on either side (in time) of one for a swap.
const MAX_SWAP_CANDIDATES: usize = 256;
/// Further rounds of the assignment for requests left unpaired.
const LEFTOVER_ROUNDS: usize = 2;
/// Passes of the swap repair (each one only improves; usually one suffices).
const MAX_REPAIR_PASSES: usize = 4;

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

/// Cost of pairing: lexicographic, see the module docs; the last field (the distance
/// outside the reported time, ns) only decides whether the pairing is within the skew.
type Cost = (u64, u64, u8, u64, u64);
/// How good a swap is, best first: (−agreements gained, disagreement levels after,
/// time distances after).
type SwapRank = (i8, u8, u64);

/// `quantum`: time differences are compared in whole multiples of it (1 ms, or the tie
/// window).
fn cost(anchor: TimeAnchor, request: &ReportedRequest, e: &WireEvent, quantum: u64) -> Cost {
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
    (
        outside / quantum,
        start_gap / quantum,
        disagreement(request, e),
        outside + start_gap,
        outside,
    )
}

/// Whether a pairing lies within the skew window (outside the reported time by at most
/// `max_skew`, in whole ms).
fn within_skew(c: Cost, options: MatchOptions) -> bool {
    c.4 / NS_PER_MS * NS_PER_MS <= options.max_skew_ns
}

/// 0: the statuses agree; 1: both say failure (a misreported code is likelier than a
/// failure where the wire had a success); 2: otherwise.
fn disagreement(request: &ReportedRequest, e: &WireEvent) -> u8 {
    if classify_pair(e.outcome, request.outcome) == Verdict::Consistent {
        0
    } else if !e.outcome.is_success() && !request.outcome.is_success() {
        1
    } else {
        2
    }
}

/// Whether a request may pair with an event at all: same connection or upstream when
/// the report names one (step 1).
fn compatible(request: &ReportedRequest, e: &WireEvent) -> bool {
    match (&request.client, &request.upstream) {
        (Some(c), _) => e.client.as_deref() == Some(c.as_str()),
        (None, Some(u)) => e.upstream == *u,
        (None, None) => true,
    }
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
    let mut order = timed;
    order.sort_by_key(|&r| requests[r].time.map(TimeAnchor::instant));
    let greedy = |offset: i64, quantum: u64| {
        let mut paired = paired_event.clone();
        let mut pairs = assign(
            events,
            requests,
            &order,
            &lists,
            &all,
            offset,
            quantum,
            options,
            &mut paired,
        );
        // Requests all of whose cheapest candidates went to others try again among
        // the events still free (on a very dense log a request's 16 cheapest can all
        // be taken while its own response is free a little further out).
        for _ in 0..LEFTOVER_ROUNDS {
            let mut done = vec![false; requests.len()];
            for p in &pairs {
                done[p.request] = true;
            }
            let left: Vec<usize> = order.iter().copied().filter(|&r| !done[r]).collect();
            if left.is_empty() {
                break;
            }
            let more = assign(
                events,
                requests,
                &left,
                &lists,
                &all,
                offset,
                quantum,
                options,
                &mut paired,
            );
            if more.is_empty() {
                break;
            }
            pairs.extend(more);
        }
        pairs
    };

    // Step 2's refinement again, from the one-to-one pairs: nearest neighbours in a
    // dense log are biased towards 0, a matching is not.
    let mut pairs = greedy(offset, NS_PER_MS);
    let (mut offset, mut basis) = (offset, basis);
    if let Some(shift) = paired_residual(events, requests, &pairs, offset, options) {
        if shift.unsigned_abs() >= REMATCH_SHIFT_NS {
            offset += shift;
            basis = format!(
                "{basis}; {:+.3} ms from the median residual of the paired requests",
                shift as f64 / 1e6
            );
            pairs = greedy(offset, NS_PER_MS);
        }
    }
    // Step 5: times closer than the tie window count as equal, so the statuses decide.
    let tie_ns = tie_window(requests, &order, &pairs, options);
    if tie_ns > NS_PER_MS {
        pairs = greedy(offset, tie_ns);
    }
    let swaps = repair(events, requests, &mut pairs, offset, tie_ns, options);
    if tie_ns > NS_PER_MS || swaps > 0 {
        basis = format!(
            "{basis}; tie window {:.1} ms, {swaps} swaps of paired responses to agreeing statuses",
            tie_ns as f64 / 1e6
        );
    }
    matching.offset_ns = offset;
    matching.offset_basis = basis;
    matching.pairs.extend(pairs);
    matching
}

/// Step 4's greedy assignment of the timed requests (`order`: in time order) under
/// `offset`; marks the events it pairs in `paired_event`.
#[allow(clippy::too_many_arguments)]
fn assign(
    events: &[WireEvent],
    requests: &[ReportedRequest],
    order: &[usize],
    lists: &HashMap<(u8, &str), Candidates>,
    all: &Candidates,
    offset: i64,
    quantum: u64,
    options: MatchOptions,
    paired_event: &mut [bool],
) -> Vec<Pair> {
    // Candidate edges: each request's cheapest free events within the skew window;
    // then the cheapest edges first, so that a request whose partner is missing from
    // the wire cannot take its neighbour's. Requests go in time order, in chunks (the
    // edges of a chunk are all in memory at once; events taken by an earlier chunk
    // are no longer free).
    let mut pairs = Vec::new();
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
                None => all,
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
                let c = cost(anchor, request, &events[e], quantum);
                if within_skew(c, options) {
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
                pairs.push(Pair {
                    request: r,
                    event: e,
                    distance_ns: c.3,
                });
            }
        }
    }
    pairs
}

/// The reported start of a request, when the report says exactly when it was sent.
/// Not for a point or span that only has to contain the wire exchange (centring those
/// on the wire's starts would push half of them off their own exchange), nor for
/// second-resolution anchors.
fn start_of(anchor: TimeAnchor) -> Option<u64> {
    match anchor {
        TimeAnchor::Start(t) => Some(t),
        _ => None,
    }
}

/// Median of wire start − reported start over the pairs, when there are enough of
/// them and it lies within the skew window.
fn paired_residual(
    events: &[WireEvent],
    requests: &[ReportedRequest],
    pairs: &[Pair],
    offset: i64,
    options: MatchOptions,
) -> Option<i64> {
    let mut residuals: Vec<i64> = pairs
        .iter()
        .filter_map(|p| {
            let t = start_of(requests[p.request].time?.shifted(offset))?;
            let r = events[p.event].start_ns() as i64 - t as i64;
            (r.unsigned_abs() <= options.max_skew_ns).then_some(r)
        })
        .collect();
    if residuals.len() < MIN_PAIRS_TO_REFINE {
        return None;
    }
    let mid = residuals.len() / 2;
    Some(*residuals.select_nth_unstable(mid).1)
}

/// Step 5's tie window: how far apart in time two pairings may be and still count as
/// equally likely. The report's time precision (the largest power of ten of ns, up to
/// 1 s, that all its times are multiples of: 1 ms for Envoy's `%START_TIME%`; anchors
/// that stand for a whole second already cover it and do not count) plus twice the 90th percentile of the time distances of the pairs
/// (how far a reported time typically lies from its response: a few ms for a
/// benchmark's own timestamps); at least 1 ms, at most the skew window.
fn tie_window(
    requests: &[ReportedRequest],
    order: &[usize],
    pairs: &[Pair],
    options: MatchOptions,
) -> u64 {
    let mut precision = NS_PER_SEC;
    let mut timed = false;
    for &r in order {
        let times = match requests[r].time {
            // A second-resolution time already stands for its whole second.
            None | Some(TimeAnchor::Second(_)) => continue,
            Some(TimeAnchor::Span { start, end }) => [start, end],
            Some(a) => [a.instant(), a.instant()],
        };
        timed = true;
        while precision > 1 && times.iter().any(|t| t % precision != 0) {
            precision /= 10;
        }
    }
    if !timed {
        precision = 0;
    }
    let mut distances: Vec<u64> = pairs.iter().map(|p| p.distance_ns).collect();
    let spread = if distances.is_empty() {
        0
    } else {
        let at = distances.len() * 9 / 10;
        *distances.select_nth_unstable(at).1
    };
    (precision + 2 * spread).clamp(NS_PER_MS, options.max_skew_ns.max(NS_PER_MS))
}

/// Step 5: swaps the events of two pairs when that makes more of them agree (or
/// brings both failures together), keeps both within the skew window, and lengthens
/// neither by more than `tie_ns`. Returns the number of swaps.
fn repair(
    events: &[WireEvent],
    requests: &[ReportedRequest],
    pairs: &mut [Pair],
    offset: i64,
    tie_ns: u64,
    options: MatchOptions,
) -> usize {
    let anchor = |r: usize| requests[r].time.expect("timed").shifted(offset);
    // Only two disagreeing pairs can gain from a swap: with an agreeing pair, at best
    // one agreement is traded for another.
    let mut open: Vec<usize> = (0..pairs.len())
        .filter(|&i| disagreement(&requests[pairs[i].request], &events[pairs[i].event]) > 0)
        .collect();
    open.sort_by_key(|&i| (events[pairs[i].event].start_ns(), i));
    let reach = 2 * options.max_skew_ns + tie_ns;
    let mut swaps = 0;
    for _pass in 0..MAX_REPAIR_PASSES {
        let before = swaps;
        for a in 0..open.len() {
            loop {
                let i = open[a];
                let (ri, ei) = (pairs[i].request, pairs[i].event);
                let level_i = disagreement(&requests[ri], &events[ei]);
                if level_i == 0 {
                    break;
                }
                let at = events[ei].start_ns();
                let mut best: Option<(SwapRank, usize, Cost, Cost)> = None;
                let near = (a.saturating_sub(MAX_SWAP_CANDIDATES)
                    ..(a + 1 + MAX_SWAP_CANDIDATES).min(open.len()))
                    .filter(|&b| b != a);
                for b in near {
                    let j = open[b];
                    let (rj, ej) = (pairs[j].request, pairs[j].event);
                    if events[ej].start_ns().abs_diff(at) > reach {
                        continue;
                    }
                    let level_j = disagreement(&requests[rj], &events[ej]);
                    if level_j == 0 {
                        continue;
                    }
                    if !compatible(&requests[ri], &events[ej])
                        || !compatible(&requests[rj], &events[ei])
                    {
                        continue;
                    }
                    let (ci, cj) = (
                        cost(anchor(ri), &requests[ri], &events[ej], NS_PER_MS),
                        cost(anchor(rj), &requests[rj], &events[ei], NS_PER_MS),
                    );
                    let fits = |c: Cost, old: u64| within_skew(c, options) && c.3 <= old + tie_ns;
                    if !fits(ci, pairs[i].distance_ns) || !fits(cj, pairs[j].distance_ns) {
                        continue;
                    }
                    let agree = |l: u8| i8::from(l == 0);
                    let gained = agree(ci.2) + agree(cj.2) - agree(level_i) - agree(level_j);
                    let levels = (level_i + level_j, ci.2 + cj.2);
                    if gained < 0 || (gained == 0 && levels.1 >= levels.0) {
                        continue;
                    }
                    let rank = (-gained, levels.1, ci.3 + cj.3);
                    if best.as_ref().is_none_or(|(k, ..)| rank < *k) {
                        best = Some((rank, j, ci, cj));
                    }
                }
                let Some((_, j, ci, cj)) = best else {
                    break;
                };
                let (ej, ei) = (pairs[j].event, pairs[i].event);
                pairs[i].event = ej;
                pairs[i].distance_ns = ci.3;
                pairs[j].event = ei;
                pairs[j].distance_ns = cj.3;
                swaps += 1;
            }
        }
        if swaps == before {
            break;
        }
    }
    swaps
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
    fn keeps_a_misreport_and_a_phantom_that_time_tells_apart() {
        // A 429 reported as 200 and, a second later, a 200 reported as 429: swapping
        // them would make both agree, but the report's times (within 0.3 ms of their
        // own responses) say which is which, so both discrepancies stay.
        let events = vec![wire(BASE, 429), wire(BASE + 1000, 200)];
        let requests = vec![
            reported(TimeAnchor::Start(BASE * NS_PER_MS + 300_000), 200),
            reported(TimeAnchor::Start((BASE + 1000) * NS_PER_MS + 300_000), 429),
        ];
        let opts = MatchOptions {
            max_skew_ns: DEFAULT_MAX_SKEW_NS,
            unix_clock: true,
        };
        let m = match_requests(&events, &[0, 1], &requests, opts);
        let mut pairs: Vec<(usize, usize)> = m.pairs.iter().map(|p| (p.request, p.event)).collect();
        pairs.sort();
        assert_eq!(pairs, vec![(0, 0), (1, 1)], "{}", m.offset_basis);
    }

    #[test]
    fn swaps_pairs_whose_times_cannot_tell_them_apart() {
        // Four requests within 0.3 ms, the first a 429, logged 1.5 ms late give or
        // take a ms: time first, a 200 logged early takes the 429 and the 429 logged
        // late is left the last 200; swapping lengthens each pair by 0.3 ms.
        let at = |us: u64| BASE * NS_PER_MS + us * 1000;
        let mut events: Vec<WireEvent> = [429, 200, 200, 200]
            .iter()
            .enumerate()
            .map(|(i, &s)| {
                let mut e = wire(BASE, s);
                e.record = i as u64;
                e.request_ns = Some(at(100 * i as u64));
                e
            })
            .collect();
        // Plenty of well-separated pairs around them fix the offset and tie window.
        for k in 1..=20u64 {
            events.push(wire(BASE + k * 100, 200));
            events.push(wire(BASE - k * 100, 200));
        }
        let mut requests = vec![
            reported(TimeAnchor::Start(at(600)), 200),
            reported(TimeAnchor::Start(at(2_000)), 200),
            reported(TimeAnchor::Start(at(2_100)), 200),
            reported(TimeAnchor::Start(at(3_750)), 429),
        ];
        for e in &events[4..] {
            requests.push(reported(
                TimeAnchor::Start(e.request_ns.unwrap() + 1_500_000),
                200,
            ));
        }
        let scope: Vec<usize> = (0..events.len()).collect();
        let opts = MatchOptions {
            max_skew_ns: DEFAULT_MAX_SKEW_NS,
            unix_clock: true,
        };
        let m = match_requests(&events, &scope, &requests, opts);
        assert_eq!(m.pairs.len(), events.len());
        assert!(m.offset_basis.contains(", 1 swaps"), "{}", m.offset_basis);
        for p in &m.pairs {
            assert_eq!(
                disagreement(&requests[p.request], &events[p.event]),
                0,
                "{}",
                m.offset_basis
            );
        }
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
