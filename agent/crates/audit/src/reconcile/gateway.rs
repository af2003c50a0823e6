//! Gateways: their retries on the upstream leg, and their counters.
//!
//! - **Logged attempts** (Plano `attempts=N`, nginx `$upstream_status: 429, 200`): a
//!   line stands for N upstream responses; the N−1 before the final one are unpaired
//!   wire errors just before it, set aside as `retry_absorbed`.
//! - **Two legs in one journal** (LiteLLM): requests to the proxy's listener are the
//!   client leg, the proxy's requests to providers the upstream leg. Every upstream
//!   response that lies within a client request's lifetime (request sent → status line
//!   returned) belongs to it: the last one, preferring the status the client got, is
//!   the one passed on (`consistent`, or `misreported` when the proxy changed the
//!   status); the earlier ones were retried by the proxy (`retry_absorbed`). Upstream
//!   responses outside every client request are `dropped` (the proxy made requests no
//!   client asked for, or the client leg was not captured).
//! - **Counters** (Prometheus): each counter against the wire's count of the same
//!   upstream (LiteLLM `api_base`) or of the listener (client leg) and status over the
//!   whole journal: a lower counter means the gateway's metrics dropped responses, a
//!   higher one that they count responses the wire never carried.

use std::collections::{BTreeMap, HashSet};

use super::ledger::{Example, Ledger, ReportRef};
use super::matching::Matching;
use super::{request_grain, window_strings, Context, Grain, Role, RunAudit};
use crate::model::{
    CounterKind, CounterSample, Leg, Report, Reported, Run, WireEvent, WireOutcome, NS_PER_MS,
    NS_PER_SEC,
};
use crate::verdict::Verdict;
use crate::wire::Wire;

/// How far before its final attempt a logged earlier attempt may lie.
const MAX_ATTEMPT_GAP_NS: u64 = 120 * NS_PER_SEC;

/// LLM calls are POSTs; GETs to a provider are model lists and health checks, which
/// gateways neither log as requests nor count in their LLM metrics.
fn is_llm_call(e: &WireEvent) -> bool {
    e.method.as_deref().is_none_or(|m| m == "POST")
}

/// The listener of a LiteLLM log without a banner: the upstream its clients' connections
/// went to.
pub(super) fn infer_listener(wire: &Wire, report: &Report) -> Option<String> {
    let clients: HashSet<&str> = report
        .runs
        .iter()
        .flat_map(|r| r.requests.iter().filter_map(|q| q.client.as_deref()))
        .collect();
    let mut votes: BTreeMap<&str, usize> = BTreeMap::new();
    for e in &wire.events {
        if e.client.as_deref().is_some_and(|c| clients.contains(c)) {
            *votes.entry(e.upstream.as_str()).or_default() += 1;
        }
    }
    votes
        .into_iter()
        .max_by_key(|&(_, n)| n)
        .map(|(u, _)| u.to_owned())
}

/// Earlier attempts of requests whose gateway logged several (see the module docs).
pub(super) fn absorb_logged_attempts(
    ctx: &Context<'_>,
    run: &Run,
    matching: &Matching,
    offset: i64,
    scope: &[usize],
    used: &mut [bool],
    ledger: &mut Ledger,
) {
    let events = ctx.events();
    let final_of: BTreeMap<usize, usize> = matching
        .pairs
        .iter()
        .map(|p| (p.request, p.event))
        .collect();
    let mut by_time: Vec<usize> = scope.to_vec();
    by_time.sort_by_key(|&i| events[i].unix_ns);
    for (r, request) in run.requests.iter().enumerate() {
        let attempts = request
            .attempts
            .unwrap_or(1)
            .max(request.attempt_statuses.len() as u32);
        if attempts <= 1 {
            continue;
        }
        let before = match (final_of.get(&r), request.time) {
            (Some(&e), _) => events[e].start_ns(),
            (None, Some(a)) => a.shifted(offset).instant(),
            (None, None) => continue,
        };
        // Statuses of the earlier attempts when logged (nginx), newest first.
        let mut wanted: Vec<Option<u16>> = request
            .attempt_statuses
            .iter()
            .rev()
            .skip(1)
            .map(|&c| Some(c))
            .collect();
        wanted.resize(attempts as usize - 1, None);
        let how = if request.attempt_statuses.len() > 1 {
            format!(
                "nginx $upstream_status lists {} attempts for one logged request",
                request.attempt_statuses.len()
            )
        } else {
            format!("the gateway logged attempts={attempts} for one request; only the final code is in the log")
        };
        for want in wanted {
            let pick = by_time
                .iter()
                .rev()
                .copied()
                .filter(|&i| !used[i] && events[i].unix_ns <= before + NS_PER_MS)
                .take_while(|&i| before.saturating_sub(events[i].unix_ns) <= MAX_ATTEMPT_GAP_NS)
                .find(|&i| {
                    let e = &events[i];
                    e.outcome.is_retryable()
                        && want.is_none_or(|c| e.outcome == WireOutcome::Status(c))
                });
            let Some(i) = pick else { break };
            used[i] = true;
            ledger.add_event(
                Verdict::RetryAbsorbed,
                &events[i],
                None,
                how.clone(),
                Some(ReportRef::new(&request.at, Some(request.outcome), None)),
                Some("an earlier attempt of the logged request".into()),
            );
        }
    }
}

/// Envoy's default log has one line per downstream request with the final code: a
/// retryable wire error inside a logged request's span, ending before the attempt
/// paired with that line started, was retried by the gateway. Only for lines that do
/// not say how many attempts they made.
pub(super) fn absorb_unlogged_retries(
    ctx: &Context<'_>,
    run: &Run,
    matching: &Matching,
    offset: i64,
    scope: &[usize],
    used: &mut [bool],
    ledger: &mut Ledger,
) {
    let events = ctx.events();
    for &i in scope {
        let e = &events[i];
        if used[i] || !e.outcome.is_retryable() {
            continue;
        }
        let holder = matching.pairs.iter().find(|p| {
            let r = &run.requests[p.request];
            let Some(crate::model::TimeAnchor::Span { start, end }) =
                r.time.map(|t| t.shifted(offset))
            else {
                return false;
            };
            r.attempts_unknown
                && start <= e.start_ns() + NS_PER_MS
                && e.unix_ns <= end
                && e.unix_ns <= events[p.event].start_ns() + NS_PER_MS
        });
        if let Some(p) = holder {
            let r = &run.requests[p.request];
            used[i] = true;
            ledger.add_event(
                Verdict::RetryAbsorbed,
                e,
                None,
                "inside a logged request that ended with a later attempt: the gateway retried it (its log keeps only the final code)",
                Some(ReportRef::new(&r.at, Some(r.outcome), None)),
                Some(format!("final attempt: record {}", events[p.event].record)),
            );
        }
    }
}

/// The LiteLLM proxy: its client leg (uvicorn lines vs responses on the listener) and
/// its upstream leg (router retries).
pub(super) fn audit_litellm(
    ctx: &Context<'_>,
    report: &Report,
    notes: &mut Vec<String>,
) -> Vec<RunAudit> {
    let listener = report
        .listener
        .clone()
        .or_else(|| infer_listener(ctx.wire, report));
    let Some(listener) = listener else {
        notes.push("the proxy's listener is unknown (no banner, no client connection on the wire): nothing to compare".into());
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut claimed = vec![false; ctx.events().len()];
    if let Some(run) = report.runs.first() {
        let mut run = run.clone();
        run.upstream = Some(listener.clone());
        let base: Vec<usize> = (0..ctx.events().len())
            .filter(|&i| ctx.events()[i].upstream == listener)
            .collect();
        let mut audit = request_grain(ctx, &run, Role::Gateway, base, None, &mut claimed, false);
        audit.upstreams = vec![listener.clone()];
        out.push(audit);
    }
    out.push(upstream_leg(ctx, &listener));
    out
}

/// Router retries on the upstream leg (see the module docs).
fn upstream_leg(ctx: &Context<'_>, listener: &str) -> RunAudit {
    let events = ctx.events();
    let mut ledger = Ledger::default();
    let is_listener = |e: &WireEvent| e.upstream == listener || ctx.listeners.contains(&e.upstream);
    let mut clients: Vec<usize> = (0..events.len())
        .filter(|&i| {
            events[i].upstream == listener
                && events[i].request_ns.is_some()
                && is_llm_call(&events[i])
        })
        .collect();
    clients.sort_by_key(|&i| events[i].unix_ns);
    let upstream: Vec<usize> = (0..events.len())
        .filter(|&i| !is_listener(&events[i]) && is_llm_call(&events[i]))
        .collect();
    let control = (0..events.len())
        .filter(|&i| !is_listener(&events[i]) && !is_llm_call(&events[i]))
        .count();
    let contains = |c: &WireEvent, e: &WireEvent| {
        c.start_ns() <= e.start_ns() + NS_PER_MS && e.unix_ns <= c.unix_ns + NS_PER_MS
    };

    // Rebuild each client request's chain of upstream attempts, in the order the
    // attempts started (see `attempt_chains`).
    let chains = attempt_chains(events, &clients, &upstream, contains);
    let mut final_of: BTreeMap<usize, usize> = BTreeMap::new(); // client event → final attempt
    let mut owned = vec![false; events.len()];
    for (&c, attempts) in &chains {
        let (&last, earlier) = attempts.split_last().expect("chains are never empty");
        final_of.insert(c, last);
        owned[last] = true;
        let fin = &events[last];
        for &u in earlier {
            owned[u] = true;
            ledger.add_event(
                Verdict::RetryAbsorbed,
                &events[u],
                None,
                "retried by the proxy: a later attempt of the same client request was passed on",
                None,
                Some(format!(
                    "client request record {} got {}; passed on: record {} ({} from {})",
                    events[c].record,
                    events[c].outcome.label(),
                    fin.record,
                    fin.outcome.label(),
                    fin.upstream
                )),
            );
        }
    }
    for &u in &upstream {
        if !owned[u] {
            ledger.add_event(
                Verdict::Dropped,
                &events[u],
                None,
                "an upstream response no client request on the wire explains",
                None,
                None,
            );
        }
    }
    for &c in &clients {
        let ce = &events[c];
        let client_got = match ce.outcome {
            WireOutcome::Status(code) => Reported::Status(code),
            WireOutcome::NoResponse => Reported::NoResponse,
        };
        match final_of.get(&c) {
            Some(&u) => {
                let ue = &events[u];
                let verdict = if ue.outcome == ce.outcome {
                    Verdict::Consistent
                } else {
                    Verdict::Misreported
                };
                let evidence = if verdict == Verdict::Consistent {
                    "the proxy passed the upstream's status on to its client"
                } else {
                    "the proxy answered its client with another status than the upstream's"
                };
                ledger.add_event(
                    verdict,
                    ue,
                    Some(client_got),
                    evidence,
                    None,
                    Some(format!("client request record {}", ce.record)),
                );
            }
            None if !ce.outcome.is_success() => ledger.add(
                Verdict::Phantom,
                Some(listener),
                None,
                Some(client_got),
                "the proxy answered this error without an upstream response inside the request",
                1,
                Some(Example {
                    wire: Some(super::ledger::WireRef::of(ce)),
                    report: None,
                    detail: None,
                }),
            ),
            None => {} // served without an upstream request (cache, /metrics, health)
        }
    }
    let mut ups: Vec<String> = upstream
        .iter()
        .map(|&i| events[i].upstream.clone())
        .collect();
    ups.sort();
    ups.dedup();
    let mut clock =
        "the wire alone: upstream responses inside client requests on the listener".to_owned();
    if control > 0 {
        clock.push_str(&format!(
            "; {control} non-POST upstream request(s) (model lists, health checks) not compared"
        ));
    }
    RunAudit {
        name: "litellm proxy (upstream leg: router retries)".into(),
        grain: Grain::Request,
        window: None,
        clock,
        upstreams: ups,
        wire_events_lost: ctx.wire.lost_in(None),
        verdicts: ledger.verdicts(),
        rows: ledger.rows(),
        findings: ledger.findings(),
    }
}

/// Each client request's upstream attempts, oldest first.
///
/// 1. **Finals.** The attempt a proxy passes on started after its client request and
///    answered before the proxy's status line to the client. Client requests and such
///    attempts are paired as a maximum matching (augmenting paths, Kuhn), each client
///    trying its candidates nearest-first (smallest gap between the two status lines),
///    first among attempts with the status the client got, then among any (a proxy
///    that changed the status). Maximum, so that one client's cheap choice never leaves
///    another without its only candidate.
/// 2. **Earlier attempts.** Every other retryable attempt inside a client request
///    that ended before that request's final attempt started is one it retried; among
///    several such requests, the one whose final attempt followed soonest.
///
/// Attempts that fit no client request are left out (dropped by the caller).
fn attempt_chains(
    events: &[WireEvent],
    clients: &[usize],
    upstream: &[usize],
    contains: impl Fn(&WireEvent, &WireEvent) -> bool,
) -> BTreeMap<usize, Vec<usize>> {
    const MAX_CANDIDATES: usize = 64;
    let mut by_start: Vec<usize> = clients.to_vec();
    by_start.sort_by_key(|&c| (events[c].start_ns(), c));
    let candidates = |c: usize, same_status: bool| -> Vec<usize> {
        let ce = &events[c];
        let mut list: Vec<usize> = upstream
            .iter()
            .copied()
            .filter(|&u| {
                contains(ce, &events[u]) && (!same_status || events[u].outcome == ce.outcome)
            })
            .collect();
        list.sort_by_key(|&u| (ce.unix_ns.abs_diff(events[u].unix_ns), u));
        list.truncate(MAX_CANDIDATES);
        list
    };
    let mut client_of: BTreeMap<usize, usize> = BTreeMap::new(); // final attempt → client
    for same_status in [true, false] {
        let matched: HashSet<usize> = client_of.values().copied().collect();
        let adjacency: BTreeMap<usize, Vec<usize>> = by_start
            .iter()
            .filter(|c| !matched.contains(c))
            .map(|&c| (c, candidates(c, same_status)))
            .collect();
        for &c in by_start.iter().filter(|c| adjacency.contains_key(c)) {
            let mut visited = HashSet::new();
            augment(c, &adjacency, &mut client_of, &mut visited);
        }
    }
    let mut chains: BTreeMap<usize, Vec<usize>> =
        client_of.iter().map(|(&u, &c)| (c, vec![u])).collect();
    let finals: HashSet<usize> = client_of.keys().copied().collect();
    for &u in upstream {
        if finals.contains(&u) || !events[u].outcome.is_retryable() {
            continue;
        }
        let ue = &events[u];
        let owner = chains
            .iter()
            .filter_map(|(&c, attempts)| {
                let fin = &events[attempts[attempts.len() - 1]];
                (contains(&events[c], ue) && ue.unix_ns <= fin.start_ns() + NS_PER_MS)
                    .then(|| (fin.start_ns().saturating_sub(ue.unix_ns), c))
            })
            .min();
        if let Some((_, c)) = owner {
            chains.get_mut(&c).expect("owner has a chain").insert(0, u);
        }
    }
    for attempts in chains.values_mut() {
        let last = attempts.pop().expect("a final attempt");
        attempts.sort_by_key(|&u| (events[u].start_ns(), u));
        attempts.push(last);
    }
    chains
}

/// Kuhn's augmenting path from client `c`.
fn augment(
    c: usize,
    adjacency: &BTreeMap<usize, Vec<usize>>,
    client_of: &mut BTreeMap<usize, usize>,
    visited: &mut HashSet<usize>,
) -> bool {
    for &u in adjacency.get(&c).map(Vec::as_slice).unwrap_or_default() {
        if !visited.insert(u) {
            continue;
        }
        let free = match client_of.get(&u) {
            None => true,
            Some(&other) => {
                adjacency.contains_key(&other) && augment(other, adjacency, client_of, visited)
            }
        };
        if free {
            client_of.insert(u, c);
            return true;
        }
    }
    false
}

/// A counter series without the labels the audit does not compare.
type CounterKey = (Leg, CounterKind, Option<String>);

/// Gateway counters against the wire (see the module docs).
pub(super) fn audit_counters(
    ctx: &Context<'_>,
    report: &Report,
    notes: &mut Vec<String>,
) -> RunAudit {
    let events = ctx.events();
    let mut ledger = Ledger::default();
    // Sum series that differ only in labels we do not compare (user agent, key hash, ...).
    let mut sums: BTreeMap<CounterKey, (u64, Vec<&CounterSample>)> = BTreeMap::new();
    for s in &report.counters {
        let e = sums
            .entry((s.leg.clone(), s.kind, s.route.clone()))
            .or_default();
        e.0 += s.value;
        e.1.push(s);
    }
    let named: HashSet<String> = report
        .counters
        .iter()
        .filter_map(|s| match &s.leg {
            Leg::Upstream(u) => Some(u.clone()),
            _ => None,
        })
        .collect();
    let listener = ctx.listeners.first().cloned().or_else(|| {
        let others: Vec<String> = ctx
            .wire
            .upstreams()
            .into_iter()
            .filter(|u| !named.contains(u))
            .collect();
        (others.len() == 1).then(|| others[0].clone())
    });
    let legs_with_codes: HashSet<Leg> = sums
        .keys()
        .filter(|(_, k, _)| matches!(k, CounterKind::Status(_)))
        .map(|(l, _, _)| l.clone())
        .collect();
    let mut compared = HashSet::new();
    for ((leg, kind, route), (value, samples)) in &sums {
        let members: Vec<&WireEvent> = match leg {
            Leg::Upstream(u) => events
                .iter()
                .filter(|e| e.upstream == *u && is_llm_call(e))
                .collect(),
            Leg::Downstream => {
                match &listener {
                    Some(l) => events.iter().filter(|e| e.upstream == *l).collect(),
                    None => {
                        notes.push(format!("{}: the gateway's listener is unknown; client-leg counters not compared", samples[0].metric));
                        continue;
                    }
                }
            }
            Leg::Cluster(_) => events
                .iter()
                .filter(|e| listener.as_deref() != Some(e.upstream.as_str()) && is_llm_call(e))
                .collect(),
        };
        let members: Vec<&WireEvent> = members
            .into_iter()
            .filter(|e| match (route, &e.route) {
                (Some(r), Some(er)) => r == er,
                _ => true,
            })
            .collect();
        let (selected, reported): (Vec<&WireEvent>, Reported) = match kind {
            CounterKind::Status(code) => (members.iter().copied().filter(|e| e.outcome == WireOutcome::Status(*code)).collect(), Reported::Status(*code)),
            CounterKind::Success => (members.iter().copied().filter(|e| e.outcome.is_success()).collect(), Reported::Success),
            CounterKind::Failure => (members.iter().copied().filter(|e| !e.outcome.is_success()).collect(), Reported::Failure),
            CounterKind::Class(class) if !legs_with_codes.contains(leg) => (
                members.iter().copied().filter(|e| matches!(e.outcome, WireOutcome::Status(c) if c / 100 == u16::from(*class))).collect(),
                Reported::Failure,
            ),
            CounterKind::Total | CounterKind::Retries | CounterKind::Class(_) => {
                notes.push(format!(
                    "{} = {value} (not compared: {})",
                    samples[0].metric,
                    match kind {
                        CounterKind::Total => format!("totals; the wire carried {} on that leg", members.len()),
                        CounterKind::Retries => "retries are shown as retry_absorbed on the wire".into(),
                        _ => "per-code counters of the same leg are compared instead".into(),
                    }
                ));
                continue;
            }
        };
        let wire_count = selected.len() as u64;
        // The wire status to show: the commonest among the selected events.
        let mut common: BTreeMap<WireOutcome, u64> = BTreeMap::new();
        for e in &selected {
            *common.entry(e.outcome).or_default() += 1;
        }
        let shown = common
            .iter()
            .max_by_key(|(_, n)| **n)
            .map(|(o, _)| *o)
            .or(match reported {
                Reported::Status(c) => Some(WireOutcome::Status(c)),
                _ => None,
            });
        let upstream = match leg {
            Leg::Upstream(u) => u.clone(),
            Leg::Downstream => listener.clone().unwrap_or_default(),
            Leg::Cluster(c) => format!("cluster {c}"),
        };
        compared.insert(upstream.clone());
        let metric = &samples[0].metric;
        let at = ReportRef::new(&samples[0].at, Some(reported), None);
        let example = |detail: String| Example {
            wire: None,
            report: Some(at.clone()),
            detail: Some(detail),
        };
        let series = if samples.len() > 1 {
            format!(" (sum of {} series)", samples.len())
        } else {
            String::new()
        };
        let agree = (*value).min(wire_count);
        ledger.add(
            Verdict::Consistent,
            Some(&upstream),
            shown,
            Some(reported),
            format!("{metric} agrees with the wire"),
            agree,
            Some(example(format!(
                "{metric} = {value}{series}; wire {wire_count}"
            ))),
        );
        if wire_count > *value {
            ledger.add(
                Verdict::Dropped,
                Some(&upstream),
                shown,
                None,
                format!("{metric} counts fewer than the wire carried"),
                wire_count - value,
                Some(example(format!(
                    "{metric} = {value}{series}; wire {wire_count}"
                ))),
            );
        } else if *value > wire_count {
            ledger.add(
                Verdict::Phantom,
                Some(&upstream),
                None,
                Some(reported),
                format!("{metric} counts more than the wire carried"),
                value - wire_count,
                Some(example(format!(
                    "{metric} = {value}{series}; wire {wire_count}"
                ))),
            );
        }
    }
    let mut upstreams: Vec<String> = compared.into_iter().collect();
    upstreams.sort();
    RunAudit {
        name: "gateway counters".into(),
        grain: Grain::Counter,
        window: window_strings(None),
        clock: "counters are cumulative: compared with the whole journal (or --window)".into(),
        upstreams,
        wire_events_lost: ctx.wire.lost_in(None),
        verdicts: ledger.verdicts(),
        rows: ledger.rows(),
        findings: ledger.findings(),
    }
}
