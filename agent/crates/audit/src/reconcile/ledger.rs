//! Verdicts as they are found, grouped into [`Finding`]s and summarised into [`Row`]s.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::model::{Location, Reported, WireEvent, WireOutcome};
use crate::verdict::{FailureClass, Verdict, VerdictCounts};

/// How many concrete examples a finding keeps.
pub const EXAMPLES_PER_FINDING: usize = 5;

/// A wire event named as evidence.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct WireRef {
    /// 1-based record number in the journal (gap records included).
    pub record: u64,
    pub time: String,
    pub upstream: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client: Option<String>,
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_retry: Option<u32>,
}

impl WireRef {
    pub fn of(e: &WireEvent) -> WireRef {
        WireRef {
            record: e.record,
            time: crate::timefmt::format_rfc3339_nanos(e.unix_ns),
            upstream: e.upstream.clone(),
            client: e.client.clone(),
            status: e.outcome.label(),
            client_retry: e.client_retry,
        }
    }
}

/// A report line (or file) named as evidence.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ReportRef {
    pub at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reported: Option<String>,
    /// Scrubbed error text the report gives for it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

impl ReportRef {
    pub fn new(at: &Location, reported: Option<Reported>, message: Option<&str>) -> ReportRef {
        ReportRef {
            at: at.to_string(),
            reported: reported.map(Reported::label),
            message: message.map(|m| crate::scrub::scrub(m).into_owned()),
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Example {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wire: Option<WireRef>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub report: Option<ReportRef>,
    /// Anything else that ties them (time difference, chain, attempt).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// `count` requests that got the same verdict for the same reason.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Finding {
    pub verdict: Verdict,
    pub count: u64,
    pub upstream: Option<String>,
    /// What the wire carried (`429`, `none`), or null when it carried nothing.
    pub wire: Option<String>,
    /// What the report says (`500`, `success`, `failure`, `none`), or null when it never
    /// mentions the request.
    pub reported: Option<String>,
    pub class: FailureClass,
    /// What the verdict rests on, in one sentence.
    pub evidence: String,
    pub examples: Vec<Example>,
    #[serde(skip)]
    pub wire_outcome: Option<WireOutcome>,
    #[serde(skip)]
    pub reported_outcome: Option<Reported>,
}

/// One (upstream, status) line of the summary table.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Row {
    pub upstream: String,
    pub status: String,
    pub class: FailureClass,
    /// Responses with this status the wire carried (in the run's scope).
    pub wire: u64,
    /// Requests the report gives this status (for reports that only say success or
    /// failure, the wire's status of the request it was paired with).
    pub reported: u64,
    pub verdicts: VerdictCounts,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Key {
    verdict: Verdict,
    upstream: Option<String>,
    wire: Option<WireOutcome>,
    reported: Option<Reported>,
    evidence: String,
}

/// Collects verdicts for one run.
#[derive(Clone, Debug, Default)]
pub struct Ledger {
    findings: BTreeMap<Key, Finding>,
}

impl Ledger {
    #[allow(clippy::too_many_arguments)]
    pub fn add(
        &mut self,
        verdict: Verdict,
        upstream: Option<&str>,
        wire: Option<WireOutcome>,
        reported: Option<Reported>,
        evidence: impl Into<String>,
        count: u64,
        example: Option<Example>,
    ) {
        if count == 0 {
            return;
        }
        let evidence = evidence.into();
        let key = Key {
            verdict,
            upstream: upstream.map(str::to_owned),
            wire,
            reported,
            evidence: evidence.clone(),
        };
        let finding = self.findings.entry(key).or_insert_with(|| Finding {
            verdict,
            count: 0,
            upstream: upstream.map(str::to_owned),
            wire: wire.map(WireOutcome::label),
            reported: reported.map(Reported::label),
            class: FailureClass::of_finding(wire, reported),
            evidence,
            examples: Vec::new(),
            wire_outcome: wire,
            reported_outcome: reported,
        });
        finding.count += count;
        if let Some(example) = example {
            if finding.examples.len() < EXAMPLES_PER_FINDING {
                finding.examples.push(example);
            }
        }
    }

    /// A verdict about one wire event (and optionally the report item it pairs with).
    pub fn add_event(
        &mut self,
        verdict: Verdict,
        e: &WireEvent,
        reported: Option<Reported>,
        evidence: impl Into<String>,
        report: Option<ReportRef>,
        detail: Option<String>,
    ) {
        let example = Example {
            wire: Some(WireRef::of(e)),
            report,
            detail,
        };
        self.add(
            verdict,
            Some(&e.upstream),
            Some(e.outcome),
            reported,
            evidence,
            1,
            Some(example),
        );
    }

    pub fn findings(&self) -> Vec<Finding> {
        let mut out: Vec<Finding> = self.findings.values().cloned().collect();
        // Discrepancies first, then by size.
        out.sort_by(|a, b| {
            (
                !a.verdict.is_discrepancy(),
                a.verdict == Verdict::Consistent,
                std::cmp::Reverse(a.count),
            )
                .cmp(&(
                    !b.verdict.is_discrepancy(),
                    b.verdict == Verdict::Consistent,
                    std::cmp::Reverse(b.count),
                ))
        });
        out
    }

    pub fn verdicts(&self) -> VerdictCounts {
        let mut counts = VerdictCounts::default();
        for f in self.findings.values() {
            counts.add(f.verdict, f.count);
        }
        counts
    }

    /// Per (upstream, status): the wire's count, the report's count, the verdicts (a
    /// verdict is counted on the wire's status, or on the report's when the wire
    /// carried nothing).
    pub fn rows(&self) -> Vec<Row> {
        let mut rows: BTreeMap<(String, String), Row> = BTreeMap::new();
        for f in self.findings.values() {
            let upstream = f.upstream.clone().unwrap_or_else(|| "-".into());
            let wire_label = f.wire_outcome.map(WireOutcome::label);
            let reported_label = match (f.reported_outcome, f.wire_outcome) {
                // "success"/"failure" without a code: shown on the wire's status it matched.
                (Some(r), Some(w))
                    if r.is_generic()
                        && crate::verdict::classify_pair(w, r) == Verdict::Consistent =>
                {
                    Some(w.label())
                }
                (Some(r), _) => Some(r.label()),
                (None, _) => None,
            };
            if let Some(label) = &wire_label {
                let r = rows_entry(&mut rows, &upstream, label);
                r.wire += f.count;
                r.verdicts.add(f.verdict, f.count);
            }
            if let Some(label) = &reported_label {
                let r = rows_entry(&mut rows, &upstream, label);
                r.reported += f.count;
                if wire_label.is_none() {
                    r.verdicts.add(f.verdict, f.count);
                }
            }
        }
        rows.into_values().collect()
    }
}

fn rows_entry<'a>(
    rows: &'a mut BTreeMap<(String, String), Row>,
    upstream: &str,
    label: &str,
) -> &'a mut Row {
    rows.entry((upstream.to_owned(), label.to_owned()))
        .or_insert_with(|| Row {
            upstream: upstream.to_owned(),
            status: label.to_owned(),
            class: class_of_label(label),
            wire: 0,
            reported: 0,
            verdicts: VerdictCounts::default(),
        })
}

fn class_of_label(label: &str) -> FailureClass {
    match label {
        "none" => FailureClass::NoResponse,
        "success" => FailureClass::Ok,
        _ => label
            .parse::<u16>()
            .map(FailureClass::of_status)
            .unwrap_or(FailureClass::Other),
    }
}
