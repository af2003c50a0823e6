//! Reconciliation: the wire ([`Wire`]) against each input ([`Report`]), run by run, at
//! the finest grain the input allows.
//!
//! - **request** grain: the report lists requests with times (Envoy, nginx, aiperf,
//!   vLLM `--save-detailed`, JSON Lines) or connections (LiteLLM/uvicorn): each is
//!   paired with a wire response ([`matching`]), and each pair, each unpaired report
//!   line and each unpaired wire response gets a verdict.
//! - **run** grain: the report only has counts (genai-bench, Locust, guidellm, vLLM
//!   without details): counts per status are compared ([`counts`]); second-resolution
//!   error lines (genai_bench.log) locate the differences in time.
//! - **counter** grain: gateway counters against the wire over the whole journal
//!   ([`gateway`]).
//!
//! Before any of that, wire attempts that an SDK retried (a later request from the same
//! client with `x-stainless-retry-count` one higher) are set aside as `retry_absorbed`
//! for benchmark reports: the benchmark saw only the final attempt. Gateways retry on
//! their upstream leg; their `attempts=`/`$upstream_status` and the client/upstream
//! legs of the journal show those.
//!
//! Run edges: a wire response the report never mentions is `boundary` when it lies
//! outside the run's window, within the window's precision (+250 ms) of an edge, or
//! was in flight across an edge; otherwise `dropped`. A run without a window uses the
//! span of its reported requests (request grain) or of its wire scope (run grain).

pub mod counts;
pub mod gateway;
pub mod ledger;
pub mod matching;

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Serialize;

use crate::formats::Format;
use crate::model::{
    Coverage, Problems, Report, ReportedRequest, Run, Window, WireEvent, NS_PER_MS,
};
use crate::verdict::{classify_pair, Verdict, VerdictCounts};
use crate::wire::{final_attempt, link_client_retries, successors, Wire};
use ledger::{Finding, Ledger, ReportRef, Row};
use matching::{match_requests, MatchOptions};

/// Slack added to a window's precision when deciding "near an edge".
pub const BOUNDARY_SLACK_NS: u64 = 250 * NS_PER_MS;

#[derive(Clone, Debug)]
pub struct AuditOptions {
    pub max_skew_ns: u64,
    pub tolerance: u64,
}

impl Default for AuditOptions {
    fn default() -> AuditOptions {
        AuditOptions {
            max_skew_ns: matching::DEFAULT_MAX_SKEW_NS,
            tolerance: 0,
        }
    }
}

/// Whether an input is a client's view (benchmark) or a gateway's.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Benchmark,
    Gateway,
}

pub struct Input {
    pub report: Report,
    pub role: Role,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Grain {
    Request,
    Second,
    Run,
    Counter,
}

impl Grain {
    pub fn as_str(self) -> &'static str {
        match self {
            Grain::Request => "request",
            Grain::Second => "second",
            Grain::Run => "run",
            Grain::Counter => "counter",
        }
    }
}

/// The audit of one run of one input.
#[derive(Clone, Debug, Serialize)]
pub struct RunAudit {
    pub name: String,
    pub grain: Grain,
    /// The run's window on the wire's clock (RFC 3339), when known.
    pub window: Option<[String; 2]>,
    /// How report times were put on the wire's clock.
    pub clock: String,
    /// Upstreams whose wire events were compared.
    pub upstreams: Vec<String>,
    /// Events the agent lost inside the window: counts there are lower bounds.
    pub wire_events_lost: u64,
    pub verdicts: VerdictCounts,
    pub rows: Vec<Row>,
    pub findings: Vec<Finding>,
}

/// The audit of one input.
#[derive(Clone, Debug, Serialize)]
pub struct SourceAudit {
    pub path: PathBuf,
    pub format: Format,
    pub role: Role,
    pub notes: Vec<String>,
    pub skipped_lines: u64,
    pub problems: Vec<String>,
    pub verdicts: VerdictCounts,
    pub runs: Vec<RunAudit>,
}

/// What the wire journal held.
#[derive(Clone, Debug, Serialize)]
pub struct WireSummary {
    pub paths: Vec<PathBuf>,
    pub records: u64,
    pub responses: u64,
    pub no_responses: u64,
    pub events_lost: u64,
    pub torn_lines: u64,
    pub unusable_records: u64,
    pub first: Option<String>,
    pub last: Option<String>,
    /// Per upstream: counts per status (`none` for no response).
    pub upstreams: BTreeMap<String, BTreeMap<String, u64>>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Audit {
    pub wire: WireSummary,
    pub sources: Vec<SourceAudit>,
    pub totals: VerdictCounts,
    /// misreported + dropped + phantom
    pub discrepancies: u64,
    pub tolerance: u64,
    /// `discrepancies <= tolerance`
    pub passed: bool,
}

/// Shared state for one audit.
struct Context<'a> {
    wire: &'a Wire,
    options: &'a AuditOptions,
    /// For every wire event, the SDK retry that followed it.
    next_attempt: Vec<Option<usize>>,
    /// Gateway listeners named by any input (LiteLLM's uvicorn banner).
    listeners: Vec<String>,
}

impl Context<'_> {
    fn events(&self) -> &[WireEvent] {
        &self.wire.events
    }
}

/// Reconcile every input with the wire.
pub fn audit(wire: &Wire, inputs: Vec<Input>, options: &AuditOptions) -> Audit {
    let predecessor = link_client_retries(&wire.events);
    let mut ctx = Context {
        wire,
        options,
        next_attempt: successors(&predecessor),
        listeners: inputs
            .iter()
            .filter_map(|i| i.report.listener.clone())
            .collect(),
    };
    // A LiteLLM log without a banner: its listener is where its client connections went.
    for input in &inputs {
        if input.report.format == Format::Litellm && input.report.listener.is_none() {
            if let Some(l) = gateway::infer_listener(wire, &input.report) {
                ctx.listeners.push(l);
            }
        }
    }
    let sources: Vec<SourceAudit> = inputs
        .into_iter()
        .map(|input| audit_source(&ctx, input))
        .collect();
    let mut totals = VerdictCounts::default();
    for s in &sources {
        totals.merge(&s.verdicts);
    }
    let discrepancies = totals.discrepancies();
    Audit {
        wire: summarise(wire),
        sources,
        discrepancies,
        tolerance: options.tolerance,
        passed: discrepancies <= options.tolerance,
        totals,
    }
}

fn summarise(wire: &Wire) -> WireSummary {
    let mut upstreams: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
    let mut no_responses = 0;
    for e in &wire.events {
        *upstreams
            .entry(e.upstream.clone())
            .or_default()
            .entry(e.outcome.label())
            .or_default() += 1;
        if e.outcome == crate::model::WireOutcome::NoResponse {
            no_responses += 1;
        }
    }
    WireSummary {
        paths: wire.paths.clone(),
        records: wire.records,
        responses: wire.events.len() as u64 - no_responses,
        no_responses,
        events_lost: wire.lost_in(None),
        torn_lines: wire.torn_count,
        unusable_records: wire.unusable,
        first: wire
            .events
            .first()
            .map(|e| crate::timefmt::format_rfc3339_nanos(e.unix_ns)),
        last: wire
            .events
            .last()
            .map(|e| crate::timefmt::format_rfc3339_nanos(e.unix_ns)),
        upstreams,
    }
}

fn audit_source(ctx: &Context<'_>, input: Input) -> SourceAudit {
    let Input { report, role } = input;
    let mut runs = Vec::new();
    let mut notes = report.notes.clone();
    match report.format {
        Format::Prometheus => runs.push(gateway::audit_counters(ctx, &report, &mut notes)),
        Format::Litellm => runs.extend(gateway::audit_litellm(ctx, &report, &mut notes)),
        _ => {
            let mut claimed = vec![false; ctx.events().len()];
            for (i, run) in report.runs.iter().enumerate() {
                // A run owns no request issued after the next run started.
                let limit = report.runs[i + 1..]
                    .iter()
                    .find_map(|r| r.window.map(|w| w.start));
                runs.push(audit_run(ctx, run, role, limit, &mut claimed));
            }
        }
    }
    let mut verdicts = VerdictCounts::default();
    for r in &runs {
        verdicts.merge(&r.verdicts);
    }
    SourceAudit {
        path: report.path.clone(),
        format: report.format,
        role,
        notes,
        skipped_lines: report.problems.skipped,
        problems: problem_lines(&report.problems),
        verdicts,
        runs,
    }
}

fn problem_lines(problems: &Problems) -> Vec<String> {
    let mut lines: Vec<String> = problems.first.iter().map(ToString::to_string).collect();
    if problems.skipped > problems.first.len() as u64 {
        lines.push(format!(
            "... {} more skipped line(s)",
            problems.skipped - problems.first.len() as u64
        ));
    }
    lines
}

/// Upstreams a run is compared against: the one it names (`--api-base`; `--upstream`
/// instead when given and the journal never saw the named one), else those its
/// requests name, else a gateway listener the audit
/// knows (a benchmark behind a gateway talks to the gateway), else every upstream of
/// the journal (as `--upstream` filtered it).
fn scope_upstreams(ctx: &Context<'_>, run: &Run, role: Role) -> Vec<String> {
    let on_wire = ctx.wire.upstreams();
    // Behind NAT or a port mapping, `--api-base` names an address the wire never saw:
    // then `--upstream`, when given, decides.
    if let Some(u) = &run.upstream {
        if on_wire.contains(u) || ctx.wire.upstream_filter.is_empty() {
            return vec![u.clone()];
        }
        return ctx.wire.upstream_filter.clone();
    }
    let mut named: Vec<String> = run
        .requests
        .iter()
        .filter_map(|r| r.upstream.clone())
        .collect();
    named.sort();
    named.dedup();
    if !named.is_empty() {
        return named;
    }
    if role == Role::Benchmark && !ctx.listeners.is_empty() {
        return ctx.listeners.clone();
    }
    on_wire
}

/// Wire events of `upstreams` not claimed by an earlier run of the same input.
fn events_of(ctx: &Context<'_>, upstreams: &[String], claimed: &[bool]) -> Vec<usize> {
    ctx.events()
        .iter()
        .enumerate()
        .filter(|(i, e)| !claimed[*i] && upstreams.contains(&e.upstream))
        .map(|(i, _)| i)
        .collect()
}

/// Decides whether a wire response a report never mentions is `boundary` or `dropped`.
///
/// Boundary: outside the run's window (the report had stopped, or not yet started,
/// counting), or inside it but within `margin` of an edge, as many per edge as the run
/// keeps requests in flight (its concurrency, when the report says).
pub(crate) struct EdgeRule {
    window: Window,
    margin: u64,
    /// Boundary places left inside the window at the start and at the end.
    budget: [Option<u64>; 2],
}

impl EdgeRule {
    pub(crate) fn new(window: Window, margin: u64, concurrency: Option<u32>) -> EdgeRule {
        let budget = concurrency.map(u64::from);
        EdgeRule {
            window,
            margin,
            budget: [budget, budget],
        }
    }

    pub(crate) fn judge(&mut self, e: &WireEvent) -> (Verdict, &'static str) {
        let (start, end) = (e.start_ns(), e.unix_ns);
        let w = self.window;
        if start < w.start || end >= w.end {
            return (Verdict::Boundary, "the report never mentions it: it was in flight at the run's start or stop, outside the report's window");
        }
        let edge = if end + self.margin > w.end {
            1
        } else if start < w.start + self.margin {
            0
        } else {
            return (
                Verdict::Dropped,
                "the wire carried it; the report never mentions it",
            );
        };
        match &mut self.budget[edge] {
            Some(0) => (Verdict::Dropped, "the wire carried it; the report never mentions it (more than the run's concurrency at its edge)"),
            Some(n) => {
                *n -= 1;
                (Verdict::Boundary, "the report never mentions it, and it was at the run's edge (within the window's precision)")
            }
            None => (Verdict::Boundary, "the report never mentions it, and it was at the run's edge (within the window's precision)"),
        }
    }
}

/// Whether `e` belongs to a run with `window` (on the wire clock): its request started
/// or its response came inside the window widened by `margin`.
fn in_scope(e: &WireEvent, window: Window, margin: u64) -> bool {
    let near = |t: u64| t + margin >= window.start && t < window.end.saturating_add(margin);
    near(e.start_ns()) || near(e.unix_ns)
}

fn window_strings(window: Option<Window>) -> Option<[String; 2]> {
    window.map(|w| {
        [
            crate::timefmt::format_rfc3339_nanos(w.start),
            crate::timefmt::format_rfc3339_nanos(w.end),
        ]
    })
}

fn shift(window: Window, offset: i64) -> Window {
    Window {
        start: window.start.saturating_add_signed(offset),
        end: window.end.saturating_add_signed(offset),
    }
}

/// SDK-retried attempts among `scope`: set aside as retry_absorbed (the client saw
/// only the chain's final attempt); returns the rest.
fn set_aside_sdk_retries(ctx: &Context<'_>, scope: Vec<usize>, ledger: &mut Ledger) -> Vec<usize> {
    let events = ctx.events();
    let mut finals = Vec::with_capacity(scope.len());
    for i in scope {
        match ctx.next_attempt[i] {
            Some(_) => {
                let last = final_attempt(&ctx.next_attempt, i);
                let f = &events[last];
                ledger.add_event(
                    Verdict::RetryAbsorbed,
                    &events[i],
                    None,
                    "retried by the client SDK: a later request from the same client carried x-stainless-retry-count one higher",
                    None,
                    Some(format!(
                        "chain ends at record {} ({}, x-stainless-retry-count {})",
                        f.record,
                        f.outcome.label(),
                        f.client_retry.unwrap_or(0)
                    )),
                );
            }
            None => finals.push(i),
        }
    }
    finals
}

/// `limit`: the next run's start (report clock), if any.
fn audit_run(
    ctx: &Context<'_>,
    run: &Run,
    role: Role,
    limit: Option<u64>,
    claimed: &mut [bool],
) -> RunAudit {
    let upstreams = scope_upstreams(ctx, run, role);
    let base = events_of(ctx, &upstreams, claimed);
    let timed_all = run.coverage == Coverage::All && !run.requests.is_empty();
    let mut audit = if timed_all {
        request_grain(ctx, run, role, base, limit, claimed, false)
    } else if let Some(tally) = &run.tally {
        counts::run_grain(ctx, run, tally, base, &upstreams, limit, claimed)
    } else {
        request_grain(ctx, run, role, base, limit, claimed, true)
    };
    audit.upstreams = upstreams;
    audit
}

/// Request-grain reconciliation (see the module docs); `errors_only` when the report
/// lists only failed requests (wire successes it does not mention are not judged).
fn request_grain(
    ctx: &Context<'_>,
    run: &Run,
    role: Role,
    base: Vec<usize>,
    limit: Option<u64>,
    claimed: &mut [bool],
    errors_only: bool,
) -> RunAudit {
    let events = ctx.events();
    let mut ledger = Ledger::default();
    let requests = &run.requests;
    let options = MatchOptions {
        max_skew_ns: ctx.options.max_skew_ns,
        unix_clock: run.unix_clock,
    };
    // Benchmarks see only the last attempt of an SDK retry chain; gateways see each
    // attempt as its own request.
    let candidates: Vec<usize> = match role {
        Role::Benchmark => base
            .iter()
            .copied()
            .filter(|&i| ctx.next_attempt[i].is_none())
            .collect(),
        Role::Gateway => base.clone(),
    };
    let matching = match_requests(events, &candidates, requests, options);
    let offset = matching.offset_ns;

    // The run's window on the wire's clock: its own, or the span of its requests.
    let (window, precision) = match run.window {
        Some(w) => (Some(shift(w, offset)), run.window_precision_ns),
        None => (request_span(requests).map(|w| shift(w, offset)), 0),
    };
    let margin = precision + BOUNDARY_SLACK_NS;
    let scope: Vec<usize> = match window {
        Some(w) => {
            let reach = Window {
                start: w.start,
                end: w.end + run.unrecorded_tail_ns,
            };
            let limit = limit.map(|l| l.saturating_add_signed(offset));
            base.iter()
                .copied()
                .filter(|&i| in_scope(&events[i], reach, margin + ctx.options.max_skew_ns))
                .filter(|&i| limit.is_none_or(|l| events[i].start_ns() < l))
                .collect()
        }
        None => base.clone(),
    };
    let mut in_run = vec![false; events.len()];
    for &i in &scope {
        in_run[i] = true;
    }
    let scope = if role == Role::Benchmark {
        set_aside_sdk_retries(ctx, scope, &mut ledger)
    } else {
        scope
    };

    let mut paired_request = vec![None; requests.len()];
    let mut used = vec![false; events.len()];
    for p in &matching.pairs {
        paired_request[p.request] = Some(p.event);
        used[p.event] = true;
        in_run[p.event] = true;
    }
    // Pairs.
    for p in &matching.pairs {
        let r = &requests[p.request];
        let e = &events[p.event];
        let verdict = classify_pair(e.outcome, r.outcome);
        let evidence = pair_evidence(verdict, r, run.window_precision_ns);
        ledger.add_event(
            verdict,
            e,
            Some(r.outcome),
            evidence,
            Some(ReportRef::new(&r.at, Some(r.outcome), r.message.as_deref())),
            (p.distance_ns > 0).then(|| format!("{:.3} s apart", p.distance_ns as f64 / 1e9)),
        );
    }
    // Gateway attempts (Plano attempts=N, nginx $upstream_status): the earlier attempts
    // are unpaired wire errors inside the request's span.
    gateway::absorb_logged_attempts(ctx, run, &matching, offset, &scope, &mut used, &mut ledger);
    if role == Role::Gateway {
        gateway::absorb_unlogged_retries(
            ctx,
            run,
            &matching,
            offset,
            &scope,
            &mut used,
            &mut ledger,
        );
    }

    // Unpaired wire events of the run, nearest the edges first.
    let mut edge_rule = window.map(|w| EdgeRule::new(w, margin, run.concurrency));
    let mut unpaired: Vec<usize> = scope.iter().copied().filter(|&i| !used[i]).collect();
    if let Some(w) = window {
        unpaired.sort_by_key(|&i| edge_distance(&events[i], w));
    }
    for i in unpaired {
        let e = &events[i];
        if errors_only && e.outcome.is_success() {
            continue; // an error log says nothing about successes
        }
        let (verdict, evidence) = match &mut edge_rule {
            Some(rule) => rule.judge(e),
            None => (
                Verdict::Dropped,
                "the wire carried it; the report never mentions it",
            ),
        };
        ledger.add_event(verdict, e, None, evidence, None, None);
    }
    // Unpaired reported requests.
    for (r, request) in requests.iter().enumerate() {
        if paired_request[r].is_some() {
            continue;
        }
        let wire_time = request.time.map(|a| a.shifted(offset).instant());
        let near_edge = match (window, wire_time) {
            (Some(w), Some(t)) => t < w.start + margin || t + margin > w.end,
            _ => false,
        };
        let evidence = match (&request.local_reply, near_edge) {
            (Some(flag), _) => format!("the gateway answered by itself (flag {flag}): no upstream request was made"),
            (None, true) => "no wire response within the skew window, at the run's edge (the capture may have started or stopped there)".into(),
            (None, false) => match (request.time, &request.client) {
                (Some(_), _) => format!("no wire response within ±{:.1} s", ctx.options.max_skew_ns as f64 / 1e9),
                (None, Some(c)) => format!("no (further) wire response on connection {c}"),
                (None, None) => "no wire response to pair with".into(),
            },
        };
        let verdict = if near_edge && request.local_reply.is_none() {
            Verdict::Boundary
        } else {
            Verdict::Phantom
        };
        let upstream = request.upstream.as_deref().or(run.upstream.as_deref());
        ledger.add(
            verdict,
            upstream,
            None,
            Some(request.outcome),
            evidence,
            1,
            Some(ledger::Example {
                wire: None,
                report: Some(ReportRef::new(
                    &request.at,
                    Some(request.outcome),
                    request.message.as_deref(),
                )),
                detail: wire_time
                    .map(|t| format!("at {}", crate::timefmt::format_rfc3339_nanos(t))),
            }),
        );
    }
    for (i, c) in claimed.iter_mut().enumerate() {
        *c |= in_run[i] || used[i];
    }
    let lost = ctx.wire.lost_in(window);
    RunAudit {
        name: run.name.clone(),
        grain: if requests
            .iter()
            .any(|r| matches!(r.time, Some(crate::model::TimeAnchor::Second(_))))
        {
            Grain::Second
        } else {
            Grain::Request
        },
        window: window_strings(window),
        clock: if matching.offset_basis.is_empty() {
            "no requests to pair".into()
        } else {
            matching.offset_basis.clone()
        },
        upstreams: Vec::new(),
        wire_events_lost: lost,
        verdicts: ledger.verdicts(),
        rows: ledger.rows(),
        findings: ledger.findings(),
    }
}

/// How far inside `w` the event lies from its nearest edge (0 outside).
pub(crate) fn edge_distance(e: &WireEvent, w: Window) -> u64 {
    let from_start = e.start_ns().saturating_sub(w.start);
    let to_end = w.end.saturating_sub(e.unix_ns);
    from_start.min(to_end)
}

fn pair_evidence(verdict: Verdict, r: &ReportedRequest, precision: u64) -> String {
    let how = if r.time.is_none() && r.client.is_some() {
        "paired by client connection and order".to_owned()
    } else if precision >= crate::model::NS_PER_SEC
        || matches!(r.time, Some(crate::model::TimeAnchor::Second(_)))
    {
        "paired by time (second resolution)".to_owned()
    } else {
        "paired by time".to_owned()
    };
    match verdict {
        Verdict::Consistent => format!("{how}; statuses agree"),
        Verdict::Misreported => {
            format!("{how}; the wire carried another status than the report says")
        }
        Verdict::Phantom => format!(
            "{how}; the wire carried a success (or no status) where the report says failure"
        ),
        _ => how,
    }
}

/// [first, last] of a run's reported request times (report clock).
fn request_span(requests: &[ReportedRequest]) -> Option<Window> {
    let mut lo = u64::MAX;
    let mut hi = 0;
    for a in requests.iter().filter_map(|r| r.time) {
        let (s, e) = match a {
            crate::model::TimeAnchor::Span { start, end } => (start, end),
            crate::model::TimeAnchor::Second(s) => (s, s + crate::model::NS_PER_SEC),
            other => (other.instant(), other.instant()),
        };
        lo = lo.min(s);
        hi = hi.max(e);
    }
    (lo <= hi).then_some(Window {
        start: lo,
        end: hi + 1,
    })
}
