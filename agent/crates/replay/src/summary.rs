//! The per-upstream summary `ratewire replay` prints: counts per (upstream, status) and
//! no-responses per reason, built from the records themselves so it always agrees with
//! the journal.

use std::collections::BTreeMap;
use std::io::{self, Write};

use ratewire_journal::query::Outcome;
use ratewire_journal::{Kind, Record};

/// Counts per (upstream, outcome).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    counts: BTreeMap<(String, Outcome), u64>,
}

impl Summary {
    pub fn add(&mut self, record: &Record) {
        let outcome = match (record.kind, record.status) {
            (Kind::Response, Some(status)) => Outcome::Status(status),
            (Kind::NoResponse, _) => {
                Outcome::NoResponse(record.reason.clone().unwrap_or_else(|| "unknown".into()))
            }
            _ => return,
        };
        let upstream = record.upstream.clone().unwrap_or_else(|| "-".into());
        *self.counts.entry((upstream, outcome)).or_default() += 1;
    }

    /// How many records of `outcome` came from `upstream`.
    pub fn count(&self, upstream: &str, outcome: &Outcome) -> u64 {
        self.counts
            .get(&(upstream.to_owned(), outcome.clone()))
            .copied()
            .unwrap_or(0)
    }

    /// Rows sorted by upstream, then statuses before no-responses.
    pub fn rows(&self) -> impl Iterator<Item = (&str, &Outcome, u64)> {
        self.counts
            .iter()
            .map(|((upstream, outcome), n)| (upstream.as_str(), outcome, *n))
    }

    pub fn is_empty(&self) -> bool {
        self.counts.is_empty()
    }

    /// An aligned `upstream  status  count` table.
    pub fn write_table(&self, out: &mut dyn Write) -> io::Result<()> {
        let rows: Vec<[String; 3]> = self
            .rows()
            .map(|(u, o, n)| [u.to_owned(), o.to_string(), n.to_string()])
            .collect();
        let header = ["upstream", "status", "count"];
        let mut widths = header.map(str::len);
        for row in &rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.len());
            }
        }
        let [w0, w1, w2] = widths;
        writeln!(
            out,
            "{:<w0$}  {:<w1$}  {:>w2$}",
            header[0], header[1], header[2]
        )?;
        for [u, o, n] in &rows {
            writeln!(out, "{u:<w0$}  {o:<w1$}  {n:>w2$}")?;
        }
        Ok(())
    }
}
