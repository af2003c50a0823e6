//! `ratewire audit` as a user runs it (the real binary): exit codes, outputs, bad input,
//! scrubbing.

use std::path::{Path, PathBuf};
use std::process::Command;

fn fixture(path: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("crates/audit/fixtures")
        .join(path)
        .display()
        .to_string()
}

/// What one `ratewire audit ...` printed and how it exited.
struct Outcome {
    code: i32,
    stdout: String,
    stderr: String,
}

fn audit(args: &[&str]) -> Outcome {
    let out = Command::new(env!("CARGO_BIN_EXE_ratewire"))
        .arg("audit")
        .args(args)
        .output()
        .expect("run the ratewire binary");
    Outcome {
        code: out.status.code().expect("exited, not killed"),
        stdout: String::from_utf8(out.stdout).expect("UTF-8 stdout"),
        stderr: String::from_utf8(out.stderr).expect("UTF-8 stderr"),
    }
}

/// stdout and whether the audit passed (exit 0; 1 is a failed audit, anything else a bug).
fn prepare_and_audit(args: &[&str]) -> Result<(String, bool), String> {
    let out = audit(args);
    match out.code {
        0 => Ok((out.stdout, true)),
        1 => Ok((out.stdout, false)),
        _ => Err(out.stderr),
    }
}

/// A scratch directory removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(tag: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("ratewire-audit-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    fn file(&self, name: &str, text: &str) -> String {
        let path = self.0.join(name);
        std::fs::write(&path, text).unwrap();
        path.display().to_string()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn exit_codes() {
    let clean = [
        "--wire",
        &fixture("genai-bench-clean/wire.jsonl"),
        "--report",
        &fixture("genai-bench-clean/experiment"),
    ];
    assert_eq!(audit(&clean).code, 0);

    let cohere = [
        "--wire",
        &fixture("genai-bench-cohere/wire.jsonl"),
        "--report",
        &fixture("genai-bench-cohere/experiment"),
    ];
    assert_eq!(audit(&cohere).code, 1);
    let mut tolerant = cohere.to_vec();
    tolerant.extend(["--tolerance", "12"]);
    assert_eq!(audit(&tolerant).code, 0);

    // Usage and input errors: 2, never a panic or a process::exit.
    let nothing = audit(&["--wire", &fixture("genai-bench-clean/wire.jsonl")]);
    assert_eq!(nothing.code, 2);
    assert!(
        nothing.stderr.contains("nothing to audit"),
        "{}",
        nothing.stderr
    );
    let missing = audit(&[
        "--wire",
        "/nonexistent/wire.jsonl",
        "--report",
        &fixture("genai-bench-clean/experiment"),
    ]);
    assert_eq!(missing.code, 2);
    assert!(
        missing.stderr.contains("/nonexistent/wire.jsonl"),
        "the error names the file: {}",
        missing.stderr
    );
    let scratch = Scratch::new("exit");
    let unknown = scratch.file("notes.txt", "just some words\n");
    let unknown = audit(&[
        "--wire",
        &fixture("genai-bench-clean/wire.jsonl"),
        "--report",
        &unknown,
    ]);
    assert_eq!(unknown.code, 2);
    assert!(unknown.stderr.contains("notes.txt"), "{}", unknown.stderr);
    // A wrong flag value is a usage error naming the flag, not a panic.
    let bad_skew = audit(&["--wire", "w", "--report", "r", "--max-skew=-1"]);
    assert_eq!(bad_skew.code, 2);
    assert!(
        bad_skew.stderr.contains("--max-skew"),
        "{}",
        bad_skew.stderr
    );
}

#[test]
fn json_output_has_the_documented_shape() {
    let a = [
        "--wire",
        &fixture("locust-sdk-retries/wire.jsonl"),
        "--report",
        &fixture("locust-sdk-retries/locust.json"),
        "--output",
        "json",
    ];
    let (text, passed) = prepare_and_audit(&a).unwrap();
    assert!(passed);
    let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(doc["schema"], "ratewire.audit/v1");
    assert_eq!(doc["exit_code"], 0);
    assert_eq!(doc["discrepancies"], 0);
    for verdict in [
        "consistent",
        "misreported",
        "dropped",
        "retry_absorbed",
        "phantom",
        "boundary",
    ] {
        assert!(doc["totals"][verdict].is_u64(), "{verdict}");
    }
    assert_eq!(doc["totals"]["retry_absorbed"], 11);
    assert_eq!(doc["wire"]["upstreams"]["127.0.0.1:9114"]["429"], 11);
    let source = &doc["sources"][0];
    assert_eq!(source["format"], "locust-json");
    assert_eq!(source["role"], "benchmark");
    let run = &source["runs"][0];
    assert_eq!(run["grain"], "run");
    let finding = run["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["verdict"] == "retry_absorbed")
        .unwrap();
    assert_eq!(finding["wire"], "429");
    assert!(finding["reported"].is_null());
    assert_eq!(finding["class"], "rate_limited");
    assert!(finding["evidence"]
        .as_str()
        .unwrap()
        .contains("x-stainless-retry-count"));
    assert!(finding["examples"][0]["wire"]["record"].is_u64());
    let row = run["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["status"] == "200")
        .unwrap();
    assert_eq!(row["wire"], 36);
    assert_eq!(row["reported"], 36);
}

#[test]
fn markdown_and_table_outputs() {
    let base = [
        "--wire",
        &fixture("genai-bench-cohere/wire.jsonl"),
        "--report",
        &fixture("genai-bench-cohere/experiment"),
    ];
    let mut md = base.to_vec();
    md.extend(["--output", "markdown"]);
    let (text, _) = prepare_and_audit(&md).unwrap();
    assert!(text.starts_with("# ratewire audit: FAIL"));
    assert!(text.contains("| upstream | status | class | wire | reported | verdicts |"));
    assert!(text.contains("**misreported** ×12"));
    let (table, _) = prepare_and_audit(&base).unwrap();
    assert!(table.contains("misreported 12"));
    assert!(table.contains("FAIL (tolerance 0) → exit 1"));
}

#[test]
fn malformed_lines_are_located_and_skipped() {
    let scratch = Scratch::new("malformed");
    let good = std::fs::read_to_string(fixture("synthetic/nginx/access.log")).unwrap();
    let mut lines: Vec<&str> = good.lines().collect();
    lines.insert(
        2,
        "192.168.1.20 - - [23/Nov/2026:12:00:02 +0000] \"POST /v1 HTTP/1.1\" abc 1 \"-\" \"-\"",
    );
    lines.insert(5, "\u{fffd}\u{fffd} binary junk");
    let log = scratch.file("access.log", &(lines.join("\n") + "\n"));
    let a = [
        "--wire",
        &fixture("synthetic/nginx/wire.jsonl"),
        "--gateway",
        &log,
        "--format",
        "nginx",
        "--output",
        "json",
    ];
    let (text, _) = prepare_and_audit(&a).unwrap();
    let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
    let source = &doc["sources"][0];
    assert_eq!(source["skipped_lines"], 2);
    let problems: Vec<&str> = source["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap())
        .collect();
    assert!(
        problems[0].ends_with("access.log:3: skipped: expected a numeric $status after $request"),
        "{problems:?}"
    );
    assert!(
        problems[1].contains("access.log:6: skipped: expected"),
        "{problems:?}"
    );
    // The good lines were still audited.
    assert_eq!(doc["totals"]["consistent"], 9);
}

#[test]
fn a_broken_report_is_an_input_error_with_its_location() {
    let scratch = Scratch::new("broken");
    let run = scratch.file(
        "run.json",
        "{\"aggregated_metrics\": {\"num_requests\": 3,\n  \"error_codes_frequency\": {\"429\": \n",
    );
    let a = [
        "--wire",
        &fixture("genai-bench-clean/wire.jsonl"),
        "--report",
        &run,
        "--format",
        "genai-bench",
    ];
    let err = prepare_and_audit(&a).unwrap_err().to_string();
    assert!(
        err.contains("run.json:3: expected a JSON document"),
        "{err}"
    );
}

#[test]
fn secrets_in_inputs_never_reach_the_output() {
    let scratch = Scratch::new("secrets");
    let wire = std::fs::read_to_string(fixture("synthetic/benchmarks/wire.jsonl")).unwrap();
    let first: serde_json::Value = serde_json::from_str(wire.lines().next().unwrap()).unwrap();
    let t = first["request_unix_ns"].as_u64().unwrap() as f64 / 1e9 + 0.02;
    let report = scratch.file(
        "requests.jsonl",
        &format!(
            "{{\"ts\": {t}, \"status\": \"Incorrect API key provided: sk-proj-abcdef0123456789 (Authorization: Bearer tok.en.value)\"}}\n"
        ),
    );
    let a = [
        "--wire",
        &fixture("synthetic/benchmarks/wire.jsonl"),
        "--report",
        &report,
        "--field-time",
        "ts",
        "--field-status",
        "status",
        "--output",
        "json",
    ];
    let (text, _) = prepare_and_audit(&a).unwrap();
    assert!(
        text.contains("Incorrect API key provided: sk-***"),
        "the message is kept, scrubbed"
    );
    assert!(!text.contains("abcdef0123456789"));
    assert!(!text.contains("tok.en.value"));
    // genai-bench's log echoes its --api-key; nothing of it may appear either.
    for output in ["json", "table", "markdown"] {
        let a = [
            "--wire",
            &fixture("genai-bench-cohere/wire.jsonl"),
            "--report",
            &fixture("genai-bench-cohere/experiment"),
            "--output",
            output,
        ];
        let (text, _) = prepare_and_audit(&a).unwrap();
        assert!(!text.contains("sk-fixture"), "{output}");
    }
}

#[test]
fn window_and_upstream_filters() {
    let a = [
        "--wire",
        &fixture("litellm-gateway/wire.jsonl"),
        "--gateway",
        &fixture("litellm-gateway/litellm-metrics.prom"),
        "--upstream",
        "127.0.0.1:9121",
        "--output",
        "json",
    ];
    let (text, _) = prepare_and_audit(&a).unwrap();
    let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
    let ups: Vec<&String> = doc["wire"]["upstreams"]
        .as_object()
        .unwrap()
        .keys()
        .collect();
    assert_eq!(ups, vec!["127.0.0.1:9121"]);
    let a = [
        "--wire",
        &fixture("genai-bench-clean/wire.jsonl"),
        "--report",
        &fixture("genai-bench-clean/experiment"),
        "--window",
        "..2000-01-01T00:00:00Z",
        "--output",
        "json",
    ];
    let (text, _) = prepare_and_audit(&a).unwrap();
    let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(doc["wire"]["responses"], 0);
    // The report still counts 42: phantom against an empty wire.
    assert_eq!(doc["totals"]["phantom"], 42);
}
