//! Run-grain reconciliation: a report that only has counts per outcome.
//!
//! Counts are paired in this order, each step taking what the previous left:
//! 1. the same status on both sides (and "no response" with "no response");
//! 2. a report's "success"/"failure" without a code with the wire's 2xx / non-2xx;
//! 3. wire errors (429 first, then 503, other 5xx, other 4xx) with the report's other
//!    codes: `misreported`;
//! 4. the report's failures with the wire's successes, and any reported status with
//!    the wire's no-responses: `phantom`;
//! 5. what the report still counts: `phantom` (the wire carried nothing);
//! 6. what the wire still carried: `boundary` at the run's edges, else `dropped`.
//!
//! Counts do not say which requests differ; the events named as examples are chosen
//! charitably: those nearest to second-resolution error lines of the report (when it
//! has them) for misreports and phantoms, those nearest to the run's edges for
//! responses the report misses.

use std::collections::BTreeMap;

use super::ledger::{Example, Ledger, ReportRef};
use super::{
    edge_distance, in_scope, set_aside_sdk_retries, shift, window_strings, Context, EdgeRule,
    Grain, RunAudit, BOUNDARY_SLACK_NS,
};
use crate::model::{
    Location, Reported, ReportedRequest, Run, Tally, Window, WireOutcome, NS_PER_SEC,
};
use crate::verdict::{classify_pair, Verdict};

/// One line of the count plan: `count` requests of `wire` reported as `reported`.
struct Planned {
    verdict: Verdict,
    wire: Option<WireOutcome>,
    reported: Option<Reported>,
    count: u64,
}

fn error_priority(o: WireOutcome) -> u8 {
    match o {
        WireOutcome::Status(429) => 0,
        WireOutcome::Status(503) => 1,
        WireOutcome::Status(500..=599) => 2,
        WireOutcome::Status(_) => 3,
        WireOutcome::NoResponse => 4,
    }
}

/// Pair counts (steps 1-5 of the module docs).
fn plan(
    wire: &BTreeMap<WireOutcome, u64>,
    reported: &BTreeMap<Reported, u64>,
) -> (Vec<Planned>, BTreeMap<WireOutcome, u64>) {
    let mut w = wire.clone();
    let mut r = reported.clone();
    let mut out = Vec::new();
    let pair = |w: &mut BTreeMap<WireOutcome, u64>,
                r: &mut BTreeMap<Reported, u64>,
                wo: WireOutcome,
                ro: Reported,
                out: &mut Vec<Planned>| {
        let n = w
            .get(&wo)
            .copied()
            .unwrap_or(0)
            .min(r.get(&ro).copied().unwrap_or(0));
        if n > 0 {
            *w.get_mut(&wo).unwrap() -= n;
            *r.get_mut(&ro).unwrap() -= n;
            out.push(Planned {
                verdict: classify_pair(wo, ro),
                wire: Some(wo),
                reported: Some(ro),
                count: n,
            });
        }
    };
    let wire_keys: Vec<WireOutcome> = w.keys().copied().collect();
    let mut errors: Vec<WireOutcome> = wire_keys
        .iter()
        .copied()
        .filter(|o| !o.is_success())
        .collect();
    errors.sort_by_key(|&o| (error_priority(o), o));
    // 1. exact
    for &o in &wire_keys {
        let ro = match o {
            WireOutcome::Status(c) => Reported::Status(c),
            WireOutcome::NoResponse => Reported::NoResponse,
        };
        pair(&mut w, &mut r, o, ro, &mut out);
    }
    // 2. generic success / failure
    for &o in wire_keys.iter().filter(|o| o.is_success()) {
        pair(&mut w, &mut r, o, Reported::Success, &mut out);
    }
    for &o in &errors {
        pair(&mut w, &mut r, o, Reported::Failure, &mut out);
    }
    // 3. wire errors reported otherwise
    let report_keys: Vec<Reported> = r.keys().copied().collect();
    let mut other_claims: Vec<Reported> = report_keys.clone();
    other_claims.sort_by_key(|ro| match ro {
        Reported::Status(c) if *c >= 400 => (0, *c),
        Reported::NoResponse => (1, 0),
        Reported::Status(c) => (2, *c),
        Reported::Success => (3, 0),
        Reported::Failure => (4, 0),
    });
    for &o in errors.iter().filter(|o| **o != WireOutcome::NoResponse) {
        for &ro in &other_claims {
            pair(&mut w, &mut r, o, ro, &mut out);
        }
    }
    // 4. statuses where the wire carried no response (clients invent 503/408/500 for
    //    connection errors and timeouts: those first), then failures where it carried
    //    a success
    let mut invented = other_claims.clone();
    invented.sort_by_key(|ro| match ro {
        Reported::Status(c) => [503, 408, 500, 504, 502]
            .iter()
            .position(|x| x == c)
            .unwrap_or(5),
        _ => 6,
    });
    for &ro in &invented {
        pair(&mut w, &mut r, WireOutcome::NoResponse, ro, &mut out);
    }
    for &o in wire_keys.iter().filter(|o| o.is_success()) {
        for &ro in &other_claims {
            pair(&mut w, &mut r, o, ro, &mut out);
        }
    }
    // 5. the report counts more than the wire carried
    for (ro, n) in r {
        if n > 0 {
            out.push(Planned {
                verdict: Verdict::Phantom,
                wire: None,
                reported: Some(ro),
                count: n,
            });
        }
    }
    (out, w)
}

/// The window's offset for a report not in Unix time: the time-zone shift (multiple of
/// 15 minutes within ±14 h, 0 first) under which the most wire events fall in the
/// window.
fn window_offset(ctx: &Context<'_>, base: &[usize], window: Window, margin: u64) -> i64 {
    let events = ctx.events();
    let quarter = 15 * 60 * NS_PER_SEC as i64;
    let mut best = (0usize, 0i64);
    for q in std::iter::once(0).chain((1..=56).flat_map(|q| [q, -q])) {
        let offset = q * quarter;
        let w = shift(window, offset);
        let n = base
            .iter()
            .filter(|&&i| in_scope(&events[i], w, margin))
            .count();
        if n > best.0 {
            best = (n, offset);
        }
    }
    best.1
}

pub(super) fn run_grain(
    ctx: &Context<'_>,
    run: &Run,
    tally: &Tally,
    base: Vec<usize>,
    upstreams: &[String],
    limit: Option<u64>,
    claimed: &mut [bool],
) -> RunAudit {
    let events = ctx.events();
    let mut ledger = Ledger::default();
    let margin = run.window_precision_ns + BOUNDARY_SLACK_NS;
    let (window, clock) = match run.window {
        Some(w) if run.unix_clock => (Some(w), "report in Unix time: no offset".to_owned()),
        Some(w) => {
            let offset = window_offset(ctx, &base, w, margin);
            (Some(shift(w, offset)), format!("report in local time: offset {:+} s (the time-zone shift that fits the wire best)", offset / NS_PER_SEC as i64))
        }
        None => (
            None,
            "no run window in the report: the whole wire scope is the run".to_owned(),
        ),
    };
    let scope: Vec<usize> = match window {
        Some(w) => {
            let reach = Window {
                start: w.start,
                end: w.end + run.unrecorded_tail_ns,
            };
            let offset = w.start as i64 - run.window.map_or(w.start, |r| r.start) as i64;
            let limit = limit.map(|l| l.saturating_add_signed(offset));
            base.into_iter()
                .filter(|&i| in_scope(&events[i], reach, margin))
                .filter(|&i| limit.is_none_or(|l| events[i].start_ns() < l))
                .collect()
        }
        None => base,
    };
    for &i in &scope {
        claimed[i] = true;
    }
    let offset = match (run.window, window) {
        (Some(a), Some(b)) => b.start as i64 - a.start as i64,
        _ => 0,
    };
    let finals = set_aside_sdk_retries(ctx, scope, &mut ledger);

    // The edges: the window's, else the span of the scope.
    let edges = window.or_else(|| {
        let lo = finals.iter().map(|&i| events[i].start_ns()).min()?;
        let hi = finals.iter().map(|&i| events[i].unix_ns).max()?;
        Some(Window {
            start: lo,
            end: hi + 1,
        })
    });

    let mut wire_counts: BTreeMap<WireOutcome, u64> = BTreeMap::new();
    let mut by_outcome: BTreeMap<WireOutcome, Vec<usize>> = BTreeMap::new();
    for &i in &finals {
        *wire_counts.entry(events[i].outcome).or_default() += 1;
        by_outcome.entry(events[i].outcome).or_default().push(i);
    }
    let (planned, leftover) = plan(&wire_counts, &tally.by_outcome);

    let source = tally
        .sources
        .first()
        .cloned()
        .unwrap_or_else(|| Location::new("report", None));
    let located: Vec<(&ReportedRequest, u64)> = run
        .requests
        .iter()
        .filter_map(|r| r.time.map(|t| (r, t.shifted(offset).instant())))
        .collect();

    // Events for misreports and phantoms first (nearest the report's own error lines),
    // then for what the report misses (nearest the edges), the rest are consistent.
    let mut free: BTreeMap<WireOutcome, Vec<usize>> = by_outcome;
    let mut located_used = vec![false; located.len()];
    for p in planned
        .iter()
        .filter(|p| matches!(p.verdict, Verdict::Misreported | Verdict::Phantom))
    {
        let (Some(wo), Some(ro)) = (p.wire, p.reported) else {
            continue;
        };
        let pool = free.get_mut(&wo).expect("planned from these counts");
        for _ in 0..p.count {
            // The nearest unused error line of the reported status, and the nearest event to it.
            let line = located
                .iter()
                .enumerate()
                .filter(|(k, (r, _))| !located_used[*k] && r.outcome == ro)
                .map(|(k, (r, t))| (k, *r, *t))
                .next();
            let pick = match line {
                Some((_, _, t)) => pool
                    .iter()
                    .enumerate()
                    .min_by_key(|(_, &i)| events[i].unix_ns.abs_diff(t))
                    .map(|(k, _)| k),
                None => (!pool.is_empty()).then_some(0),
            };
            let Some(k) = pick else { break };
            let i = pool.remove(k);
            let report = match line {
                Some((k, r, _)) => {
                    located_used[k] = true;
                    ReportRef::new(&r.at, Some(r.outcome), r.message.as_deref())
                }
                None => ReportRef::new(&source, Some(ro), None),
            };
            let evidence = match (p.verdict, line.is_some()) {
                (Verdict::Misreported, true) => format!("the run's counts give {} where the wire carried {}; the report's error lines at those seconds say {}", ro.label(), wo.label(), ro.label()),
                (Verdict::Misreported, false) => format!("the run's counts give {} where the wire carried {}", ro.label(), wo.label()),
                (_, true) => format!("the run's counts give {} where the wire carried {}; the report's error lines at those seconds say {}", ro.label(), wo.label(), ro.label()),
                (_, false) => format!("the run's counts give {} where the wire carried {}", ro.label(), wo.label()),
            };
            ledger.add_event(
                p.verdict,
                &events[i],
                Some(ro),
                evidence,
                Some(report),
                None,
            );
        }
    }
    // What the report misses, nearest the edges first (all statuses share the edges'
    // in-flight budget).
    let mut missed: Vec<usize> = Vec::new();
    for (wo, n) in &leftover {
        let pool = free.get_mut(wo).expect("leftover of these counts");
        if let Some(e) = edges {
            pool.sort_by_key(|&i| edge_distance(&events[i], e));
        }
        missed.extend(pool.drain(..(*n as usize).min(pool.len())));
    }
    if let Some(e) = edges {
        missed.sort_by_key(|&i| edge_distance(&events[i], e));
    }
    let mut edge_rule = edges.map(|w| EdgeRule::new(w, margin, run.concurrency));
    for i in missed {
        let e = &events[i];
        let (verdict, evidence) = match &mut edge_rule {
            Some(rule) => rule.judge(e),
            None => (
                Verdict::Dropped,
                "the wire carried it; the report never mentions it",
            ),
        };
        let evidence = evidence.replace("the report never mentions it", "the run's counts miss it");
        ledger.add_event(verdict, e, None, evidence, None, None);
    }
    for p in planned.iter().filter(|p| p.verdict == Verdict::Consistent) {
        let (Some(wo), Some(ro)) = (p.wire, p.reported) else {
            continue;
        };
        let pool = free.get_mut(&wo).expect("planned from these counts");
        for i in pool.drain(..(p.count as usize).min(pool.len())) {
            ledger.add_event(
                Verdict::Consistent,
                &events[i],
                Some(ro),
                "the run's counts agree",
                Some(ReportRef::new(&source, Some(ro), None)),
                None,
            );
        }
    }
    for p in planned.iter().filter(|p| p.wire.is_none()) {
        let ro = p.reported.expect("report-only plan");
        let upstream = run.upstream.as_deref().or(match upstreams {
            [only] => Some(only.as_str()),
            _ => None,
        });
        ledger.add(
            Verdict::Phantom,
            upstream,
            None,
            Some(ro),
            format!(
                "the run's counts give {} more {} than the wire carried in the run",
                p.count,
                ro.label()
            ),
            p.count,
            Some(Example {
                wire: None,
                report: Some(ReportRef::new(&source, Some(ro), None)),
                detail: None,
            }),
        );
    }
    RunAudit {
        name: run.name.clone(),
        grain: Grain::Run,
        window: window_strings(window),
        clock,
        upstreams: Vec::new(),
        wire_events_lost: ctx.wire.lost_in(window),
        verdicts: ledger.verdicts(),
        rows: ledger.rows(),
        findings: ledger.findings(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts<K: Ord + Copy>(items: &[(K, u64)]) -> BTreeMap<K, u64> {
        items.iter().copied().collect()
    }

    fn summary(planned: &[Planned]) -> Vec<(Verdict, Option<WireOutcome>, Option<Reported>, u64)> {
        planned
            .iter()
            .map(|p| (p.verdict, p.wire, p.reported, p.count))
            .collect()
    }

    #[test]
    fn cohere_style_429_reported_as_500() {
        let wire = counts(&[
            (WireOutcome::Status(200), 28),
            (WireOutcome::Status(429), 12),
        ]);
        let reported = counts(&[(Reported::Success, 28), (Reported::Status(500), 12)]);
        let (planned, left) = plan(&wire, &reported);
        assert_eq!(
            summary(&planned),
            vec![
                (
                    Verdict::Consistent,
                    Some(WireOutcome::Status(200)),
                    Some(Reported::Success),
                    28
                ),
                (
                    Verdict::Misreported,
                    Some(WireOutcome::Status(429)),
                    Some(Reported::Status(500)),
                    12
                ),
            ]
        );
        assert!(left.values().all(|&n| n == 0));
    }

    #[test]
    fn sse_error_reported_as_429_is_phantom() {
        let wire = counts(&[(WireOutcome::Status(200), 42)]);
        let reported = counts(&[(Reported::Success, 35), (Reported::Status(429), 7)]);
        let (planned, _) = plan(&wire, &reported);
        assert_eq!(
            summary(&planned)[1],
            (
                Verdict::Phantom,
                Some(WireOutcome::Status(200)),
                Some(Reported::Status(429)),
                7
            )
        );
    }

    #[test]
    fn missing_and_invented() {
        let wire = counts(&[(WireOutcome::Status(200), 10), (WireOutcome::NoResponse, 1)]);
        let reported = counts(&[
            (Reported::Success, 8),
            (Reported::Status(503), 1),
            (Reported::Status(429), 1),
        ]);
        let (planned, left) = plan(&wire, &reported);
        let s = summary(&planned);
        // The connection error genai-bench reports as 503 pairs with the no-response.
        assert!(s.contains(&(
            Verdict::Phantom,
            Some(WireOutcome::NoResponse),
            Some(Reported::Status(503)),
            1
        )));
        assert!(s.contains(&(
            Verdict::Phantom,
            Some(WireOutcome::Status(200)),
            Some(Reported::Status(429)),
            1
        )));
        assert_eq!(left[&WireOutcome::Status(200)], 1);
    }
}
