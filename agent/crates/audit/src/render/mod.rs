//! Output: a terminal table (default), JSON (stable schema, see [`json`]) and Markdown.

pub mod json;
pub mod markdown;
pub mod table;

use crate::reconcile::ledger::Example;
use crate::verdict::{Verdict, VerdictCounts};

/// `consistent 36, retry_absorbed 11` (non-zero verdicts only).
pub(crate) fn verdict_list(counts: &VerdictCounts) -> String {
    let parts: Vec<String> = Verdict::ALL
        .iter()
        .filter(|v| counts.get(**v) > 0)
        .map(|v| format!("{v} {}", counts.get(*v)))
        .collect();
    if parts.is_empty() {
        "-".into()
    } else {
        parts.join(", ")
    }
}

/// One line describing an example.
pub(crate) fn example_line(example: &Example) -> String {
    let mut parts = Vec::new();
    if let Some(w) = &example.wire {
        let mut s = format!(
            "wire record {} {} {} {}",
            w.record, w.time, w.upstream, w.status
        );
        if let Some(c) = &w.client {
            s.push_str(&format!(" client {c}"));
        }
        if let Some(r) = w.client_retry {
            s.push_str(&format!(" retry-count {r}"));
        }
        parts.push(s);
    }
    if let Some(r) = &example.report {
        let mut s = format!("report {}", r.at);
        if let Some(reported) = &r.reported {
            s.push_str(&format!(" says {reported}"));
        }
        if let Some(m) = &r.message {
            let m: String = m.chars().take(120).collect();
            s.push_str(&format!(" \"{m}\""));
        }
        parts.push(s);
    }
    if let Some(d) = &example.detail {
        parts.push(d.clone());
    }
    parts.join("; ")
}
