//! `cargo xtask layout`: the house rules a reviewer would otherwise check by hand.
//!
//! - No library crate depends on clap or anyhow (only the `ratewire` binary has a CLI).
//! - No module cycle: at every level of every crate, sibling modules that reference each
//!   other (through `crate::`, `super::` or `self::` paths) form a directed graph that
//!   must be acyclic, so the code reads in one direction (probe → collect → export,
//!   formats → model → reconcile → render).
//! - No source file over [`MAX_CODE_LINES`] lines of code (blank and comment-only lines and
//!   everything from the first `#[cfg(test)]` on are not counted).

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::{root, sh};

/// Library packages: CLI-free.
const LIBRARIES: &[&str] = &[
    "ratewire-common",
    "ratewire-journal",
    "ratewire-replay",
    "ratewire-audit",
];
/// Crates only a binary may use.
const CLI_CRATES: &[&str] = &["clap", "anyhow"];
/// Source trees checked for cycles and size (each a crate's `src/`, or examples).
const SOURCE_TREES: &[&str] = &[
    "agent/src",
    "agent/crates/journal/src",
    "agent/crates/replay/src",
    "agent/crates/audit/src",
    "agent-common/src",
    "agent-ebpf/src",
    "xtask/src",
];
/// Largest file, in lines of code, outside tests, fixtures and generated code.
pub const MAX_CODE_LINES: usize = 400;

pub fn run() -> Result<()> {
    let mut problems = Vec::new();
    problems.extend(cli_free_libraries()?);
    for tree in SOURCE_TREES {
        let dir = root().join(tree);
        let files = rust_files(&dir)?;
        problems.extend(module_cycles(&dir, &files)?);
        problems.extend(oversized(&files)?);
    }
    if problems.is_empty() {
        eprintln!("xtask: layout: libraries CLI-free, no module cycles, no file over {MAX_CODE_LINES} lines of code");
        return Ok(());
    }
    for problem in &problems {
        eprintln!("xtask: layout: {problem}");
    }
    bail!("{} layout problem(s)", problems.len())
}

fn cli_free_libraries() -> Result<Vec<String>> {
    let mut problems = Vec::new();
    for lib in LIBRARIES {
        let out = Command::new(sh::cargo_bin())
            .current_dir(root())
            .args(["tree", "--package", lib, "--edges", "normal"])
            .args(["--prefix", "none", "--format", "{p}"])
            .output()
            .with_context(|| format!("cargo tree -p {lib}"))?;
        if !out.status.success() {
            bail!(
                "cargo tree -p {lib} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let text = String::from_utf8_lossy(&out.stdout);
        for krate in CLI_CRATES {
            if text
                .lines()
                .any(|l| l.split_whitespace().next() == Some(krate))
            {
                problems.push(format!(
                    "library {lib} depends on {krate} (only the ratewire binary may)"
                ));
            }
        }
    }
    Ok(problems)
}

fn rust_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in fs::read_dir(&d).with_context(|| format!("reading {}", d.display()))? {
            let path = entry?.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    files.sort();
    Ok(files)
}

/// The part of a file that is not unit tests.
fn non_test_source(path: &Path) -> Result<String> {
    let text = fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let end = text
        .lines()
        .position(|l| l.trim_start().starts_with("#[cfg(test)]"))
        .unwrap_or(usize::MAX);
    Ok(text.lines().take(end).collect::<Vec<_>>().join("\n"))
}

fn code_lines(source: &str) -> usize {
    source
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("//"))
        .count()
}

fn oversized(files: &[PathBuf]) -> Result<Vec<String>> {
    let mut problems = Vec::new();
    for file in files {
        let lines = code_lines(&non_test_source(file)?);
        if lines > MAX_CODE_LINES {
            problems.push(format!(
                "{}: {lines} lines of code (at most {MAX_CODE_LINES}): split it by job",
                file.strip_prefix(root()).unwrap_or(file).display()
            ));
        }
    }
    Ok(problems)
}

/// A module's path below its crate root: `reconcile/matching.rs` is `[reconcile, matching]`.
fn module_path(src: &Path, file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(src).unwrap_or(file);
    let mut parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    let last = parts.pop().unwrap_or_default();
    let stem = last.trim_end_matches(".rs");
    if !matches!(stem, "mod" | "lib" | "main") {
        parts.push(stem.to_owned());
    }
    parts
}

fn module_cycles(src: &Path, files: &[PathBuf]) -> Result<Vec<String>> {
    let modules: BTreeSet<Vec<String>> = files.iter().map(|f| module_path(src, f)).collect();
    // parent module -> (child -> children it references)
    let mut graphs: BTreeMap<Vec<String>, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
    for file in files {
        let from = module_path(src, file);
        for target in references(&non_test_source(file)?, &from) {
            let common = from.iter().zip(&target).take_while(|(a, b)| a == b).count();
            let (Some(a), Some(b)) = (from.get(common), target.get(common)) else {
                continue; // a reference to an ancestor or descendant, not a sibling
            };
            let mut sibling = target[..=common].to_vec();
            if !modules.iter().any(|m| m.starts_with(&sibling)) {
                continue; // an item of the parent module, not a module
            }
            sibling.truncate(common);
            graphs
                .entry(sibling)
                .or_default()
                .entry(a.clone())
                .or_default()
                .insert(b.clone());
        }
    }
    let mut problems = Vec::new();
    for (parent, graph) in &graphs {
        if let Some(cycle) = find_cycle(graph) {
            let at = if parent.is_empty() {
                "crate root".to_owned()
            } else {
                parent.join("::")
            };
            problems.push(format!(
                "{}: module cycle under {at}: {}",
                src.strip_prefix(root()).unwrap_or(src).display(),
                cycle.join(" -> ")
            ));
        }
    }
    Ok(problems)
}

fn find_cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        stack: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(i) = stack.iter().position(|n| n == node) {
            let mut cycle = stack[i..].to_vec();
            cycle.push(node.to_owned());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        stack.push(node.to_owned());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, graph, stack, done) {
                return Some(cycle);
            }
        }
        stack.pop();
        done.insert(node.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    for node in graph.keys() {
        if let Some(cycle) = visit(node, graph, &mut Vec::new(), &mut done) {
            return Some(cycle);
        }
    }
    None
}

/// Absolute module paths named by `crate::`, `super::` and `self::` paths in `source`
/// (use-trees with braces expanded), as seen from module `from`.
fn references(source: &str, from: &[String]) -> Vec<Vec<String>> {
    let code: String = source
        .lines()
        .map(|l| l.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n");
    let bytes = code.as_bytes();
    let mut found = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let starts_word = i == 0
            || !(bytes[i - 1].is_ascii_alphanumeric()
                || bytes[i - 1] == b'_'
                || bytes[i - 1] == b':');
        if starts_word
            && ["crate::", "super::", "self::"]
                .iter()
                .any(|p| bytes[i..].starts_with(p.as_bytes()))
        {
            let mut paths = Vec::new();
            let end = parse_tree(&code, i, Vec::new(), &mut paths);
            for path in paths {
                if let Some(abs) = resolve(&path, from) {
                    found.push(abs);
                }
            }
            i = end.max(i + 1);
        } else {
            i += 1;
        }
    }
    found
}

/// Parse a path or use-tree at `at`; push every leaf path under `prefix`. Returns where
/// it ended.
fn parse_tree(
    code: &str,
    mut at: usize,
    mut prefix: Vec<String>,
    out: &mut Vec<Vec<String>>,
) -> usize {
    let bytes = code.as_bytes();
    loop {
        while at < bytes.len() && bytes[at].is_ascii_whitespace() {
            at += 1;
        }
        if at < bytes.len() && bytes[at] == b'{' {
            at += 1;
            loop {
                at = parse_tree(code, at, prefix.clone(), out);
                while at < bytes.len() && (bytes[at].is_ascii_whitespace() || bytes[at] == b',') {
                    at += 1;
                }
                if at >= bytes.len() || bytes[at] == b'}' {
                    return at + 1;
                }
            }
        }
        let start = at;
        while at < bytes.len() && (bytes[at].is_ascii_alphanumeric() || bytes[at] == b'_') {
            at += 1;
        }
        if start == at {
            out.push(prefix);
            return at;
        }
        prefix.push(code[start..at].to_owned());
        if bytes[at..].starts_with(b"::") {
            at += 2;
        } else {
            out.push(prefix);
            return at;
        }
    }
}

fn resolve(path: &[String], from: &[String]) -> Option<Vec<String>> {
    let mut base: Vec<String> = from.to_vec();
    let mut rest = path;
    match rest.first().map(String::as_str) {
        Some("crate") => {
            base.clear();
            rest = &rest[1..];
        }
        Some("self") => rest = &rest[1..],
        Some("super") => {
            // `a/b.rs` is module `a::b` and `a/mod.rs` is `a`: either way `super` pops one.
            while rest.first().map(String::as_str) == Some("super") {
                base.pop()?;
                rest = &rest[1..];
            }
        }
        _ => return None,
    }
    base.extend(rest.iter().filter(|s| s.as_str() != "self").cloned());
    Some(base)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn use_trees_are_expanded_and_resolved() {
        let src = "use crate::{model::{Report, Run}, scrub};\nuse super::ledger::Example;\n// crate::ignored\nfn f() { crate::wire::Wire::load(); }";
        let refs = references(src, &s(&["reconcile", "matching"]));
        assert!(refs.contains(&s(&["model", "Report"])));
        assert!(refs.contains(&s(&["model", "Run"])));
        assert!(refs.contains(&s(&["scrub"])));
        assert!(refs.contains(&s(&["reconcile", "ledger", "Example"])));
        assert!(refs.contains(&s(&["wire", "Wire", "load"])));
        assert!(!refs.iter().any(|r| r.contains(&"ignored".to_owned())));
    }

    #[test]
    fn a_two_module_cycle_is_found() {
        let mut graph = BTreeMap::new();
        graph.insert("model".to_owned(), BTreeSet::from(["formats".to_owned()]));
        graph.insert("formats".to_owned(), BTreeSet::from(["model".to_owned()]));
        graph.insert("render".to_owned(), BTreeSet::from(["model".to_owned()]));
        let cycle = find_cycle(&graph).expect("a cycle");
        assert_eq!(cycle.first(), cycle.last());
        assert_eq!(cycle.len(), 3);
        graph.remove("formats");
        assert_eq!(find_cycle(&graph), None);
    }

    #[test]
    fn code_lines_skip_blanks_and_comments() {
        assert_eq!(
            code_lines("//! doc\n\nfn a() {}\n    // note\nlet x = 1;\n"),
            2
        );
    }
}
