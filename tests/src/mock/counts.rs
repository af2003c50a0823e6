//! What the mock actually sent, per outcome, and the JSON file that reports it.
//!
//! Keys are plan step names (`"200"`, `"429"`, `"reset"`, `"close"`, `"stall"`,
//! `"split429"`) plus `"write_failed"` (the peer went away while a response was being
//! written) and `"bad_request"` (a request the mock could not parse). Only outcomes
//! that happened appear.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Mutex;

use anyhow::{Context, Result};

/// Outcome name → how many times it happened.
pub type Counts = BTreeMap<String, u64>;

/// Counts shared by all connection tasks.
#[derive(Default)]
pub struct Tally(Mutex<Counts>);

impl Tally {
    pub fn record(&self, outcome: &str) {
        let mut counts = self.0.lock().expect("tally lock poisoned");
        *counts.entry(outcome.to_string()).or_default() += 1;
    }

    pub fn snapshot(&self) -> Counts {
        self.0.lock().expect("tally lock poisoned").clone()
    }

    /// Write the counts as one JSON object. Written to a temporary file and renamed,
    /// so a reader polling the file never sees half of it.
    pub fn write(&self, path: &Path) -> Result<()> {
        let json = serde_json::to_string(&self.snapshot())? + "\n";
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, json).with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, path).with_context(|| format!("renaming to {}", path.display()))
    }
}

/// Read a counts file written by [`Tally::write`].
/// The mock's step names as the agent names outcomes on the wire: `close` is a FIN
/// (`closed`), `stall` gets no answer (`timeout`), `split429` is a 200 whose body
/// looks like a 429.
pub fn as_wire_outcomes(mock: &Counts) -> Counts {
    let mut out = Counts::new();
    for (step, n) in mock {
        let outcome = match step.as_str() {
            "close" => "closed",
            "stall" => "timeout",
            "split429" => "200",
            other => other,
        };
        *out.entry(outcome.to_string()).or_default() += n;
    }
    out
}

pub fn read(path: &Path) -> Result<Counts> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("parsing counts in {}", path.display()))
}
