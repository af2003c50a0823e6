//! The agent's journal as the tests read it: JSON Lines files `journal-<unix ns>.jsonl`
//! in a data directory (or one file from `ratewire replay --output`), parsed here
//! independently of the agent's own reader, plus runs of the `ratewire journal` and
//! `ratewire replay` subcommands.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use anyhow::{bail, Context, Result};
use serde::Deserialize;

use crate::bins;

/// One journal line (schema v1; see the README). Unknown fields are ignored.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Record {
    pub v: u32,
    /// `response`, `no_response` or `gap`.
    pub kind: String,
    pub unix_ns: u64,
    pub time: String,
    pub request_unix_ns: Option<u64>,
    pub client: Option<String>,
    pub upstream: Option<String>,
    pub status: Option<u16>,
    /// `reset`, `closed`, `timeout` (no_response only).
    pub reason: Option<String>,
    pub method: Option<String>,
    pub route: Option<String>,
    pub retry_after_ms: Option<u64>,
    pub client_retry: Option<u32>,
    #[serde(default)]
    pub tls: bool,
    pub source: String,
    pub lost: Option<u64>,
}

impl Record {
    /// The status (`"429"`) of a response, the reason (`"reset"`) of a no_response,
    /// `"gap"` for a gap.
    pub fn outcome(&self) -> String {
        match (self.status, &self.reason) {
            (Some(status), _) => status.to_string(),
            (None, Some(reason)) => reason.clone(),
            (None, None) => self.kind.clone(),
        }
    }
}

/// The journal files of a data directory, oldest first (by the start time in the name).
pub fn files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))? {
        let path = entry?.path();
        let start = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_prefix("journal-")?.strip_suffix(".jsonl"))
            .and_then(|ns| ns.parse::<u64>().ok());
        if let Some(start) = start {
            files.push((start, path));
        }
    }
    files.sort();
    Ok(files.into_iter().map(|(_, p)| p).collect())
}

/// Every record of every journal file in `dir`. Strict: a journal written by an agent
/// that stopped cleanly has no torn lines, so any line that is not a record is an error.
pub fn read_dir(dir: &Path) -> Result<Vec<Record>> {
    let files = files(dir)?;
    if files.is_empty() {
        bail!("no journal-*.jsonl files in {}", dir.display());
    }
    let mut records = Vec::new();
    for file in files {
        records.extend(read_file(&file)?);
    }
    Ok(records)
}

/// Every record of one JSON Lines file (strict, see [`read_dir`]).
pub fn read_file(path: &Path) -> Result<Vec<Record>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    if !text.is_empty() && !text.ends_with('\n') {
        bail!(
            "{} does not end with a newline (torn last line)",
            path.display()
        );
    }
    parse_jsonl(&text, &path.display().to_string())
}

/// Records from JSON Lines text (`what` names it in errors).
pub fn parse_jsonl(text: &str, what: &str) -> Result<Vec<Record>> {
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(n, line)| {
            serde_json::from_str(line).with_context(|| format!("{what}:{}: {line:?}", n + 1))
        })
        .collect()
}

/// How many records map to each key (records mapping to None are left out).
pub fn count<K: Ord>(records: &[Record], key: impl Fn(&Record) -> Option<K>) -> BTreeMap<K, u64> {
    let mut out = BTreeMap::new();
    for r in records {
        if let Some(k) = key(r) {
            *out.entry(k).or_default() += 1;
        }
    }
    out
}

/// Outcome (`"200"`, `"reset"`, ...) → count, over response and no_response records of
/// `upstream`: comparable with the mock's counts once `close`/`stall` are renamed.
pub fn outcomes_of(records: &[Record], upstream: &str) -> BTreeMap<String, u64> {
    count(records, |r| {
        (r.kind != "gap" && r.upstream.as_deref() == Some(upstream)).then(|| r.outcome())
    })
}

/// Sum of `lost` over the gap records.
pub fn gaps_lost(records: &[Record]) -> u64 {
    records
        .iter()
        .filter(|r| r.kind == "gap")
        .map(|r| r.lost.unwrap_or(0))
        .sum()
}

/// Run `ratewire ARGS...` (the agent binary's offline subcommands) to completion.
pub fn ratewire(args: &[&str]) -> Result<Output> {
    let bin = bins::agent()?;
    Command::new(&bin)
        .args(args)
        .output()
        .with_context(|| format!("running {} {}", bin.display(), args.join(" ")))
}

/// Like [`ratewire`], but a non-zero exit is an error that shows the output.
pub fn ratewire_ok(args: &[&str]) -> Result<Output> {
    let out = ratewire(args)?;
    if !out.status.success() {
        bail!(
            "`ratewire {}` exited with {}\n--- stdout ---\n{}--- stderr ---\n{}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_records_and_counts_outcomes() {
        let text = r#"{"v":1,"kind":"response","unix_ns":2,"time":"t","client":"c","upstream":"u:1","status":429,"method":"POST","route":"/v1/chat/completions","retry_after_ms":2000,"source":"xdp"}
{"v":1,"kind":"no_response","unix_ns":3,"time":"t","upstream":"u:1","reason":"reset","source":"xdp"}
{"v":1,"kind":"gap","unix_ns":4,"time":"t","source":"xdp","lost":7}
{"v":1,"kind":"response","unix_ns":5,"time":"t","upstream":"other:1","status":200,"source":"xdp","future_field":true}
"#;
        let records = parse_jsonl(text, "test").unwrap();
        assert_eq!(records.len(), 4);
        assert_eq!(records[0].retry_after_ms, Some(2000));
        assert_eq!(
            outcomes_of(&records, "u:1"),
            [("429".into(), 1), ("reset".into(), 1)].into()
        );
        assert_eq!(gaps_lost(&records), 7);
        assert!(parse_jsonl("{\"v\":1,\"kind\":\"resp", "torn").is_err());
    }
}
