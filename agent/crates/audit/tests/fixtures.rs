//! Exact verdicts on the fixtures made with the real tools (scripts/make-fixtures.sh)
//! and on the hand-made ones (scripts/make_synthetic_fixtures.py).

use std::path::{Path, PathBuf};

use ratewire_audit::formats::{self, Format, ReadOptions};
use ratewire_audit::reconcile::{audit, Audit, AuditOptions, Input, Role};
use ratewire_audit::verdict::Verdict;
use ratewire_audit::wire::Wire;

fn fixture(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(path)
}

fn run(wire: &str, reports: &[&str], gateways: &[&str]) -> Audit {
    let wire = Wire::load(&[fixture(wire)], &[], None).expect("wire journal");
    let options = ReadOptions {
        field_time: Some("ts".into()),
        field_status: Some("status".into()),
    };
    let mut inputs = Vec::new();
    for (paths, role) in [(reports, Role::Benchmark), (gateways, Role::Gateway)] {
        for p in paths {
            let report = formats::read(&fixture(p), None, &options).expect("readable input");
            inputs.push(Input { report, role });
        }
    }
    audit(&wire, inputs, &AuditOptions::default())
}

/// (verdict, upstream, wire, reported, count) of every finding of source `s`, summed
/// over runs and reasons, sorted.
fn findings(a: &Audit, s: usize) -> Vec<(Verdict, String, String, String, u64)> {
    let mut map = std::collections::BTreeMap::new();
    for run in &a.sources[s].runs {
        for f in &run.findings {
            let key = (
                f.verdict,
                f.upstream.clone().unwrap_or_else(|| "-".into()),
                f.wire.clone().unwrap_or_else(|| "-".into()),
                f.reported.clone().unwrap_or_else(|| "-".into()),
            );
            *map.entry(key).or_insert(0u64) += f.count;
        }
    }
    map.into_iter()
        .map(|((v, u, w, r), n)| (v, u, w, r, n))
        .collect()
}

fn f(
    v: Verdict,
    upstream: &str,
    wire: &str,
    reported: &str,
    n: u64,
) -> (Verdict, String, String, String, u64) {
    (v, upstream.into(), wire.into(), reported.into(), n)
}

use Verdict::{Boundary, Consistent, Dropped, Misreported, Phantom, RetryAbsorbed};

#[test]
fn detects_every_fixture_format() {
    for (path, format) in [
        ("genai-bench-clean/experiment", Format::GenaiBench),
        (
            "genai-bench-clean/experiment/D10_10_text-to-text_num_concurrency_2_time_1s.json",
            Format::GenaiBench,
        ),
        (
            "genai-bench-clean/experiment/genai_bench.log",
            Format::GenaiBench,
        ),
        ("locust-boundary/locust_stats.csv", Format::LocustCsv),
        ("locust-boundary/locust_failures.csv", Format::LocustCsv),
        ("locust-boundary/locust", Format::LocustCsv),
        ("locust-boundary/locust.json", Format::LocustJson),
        ("litellm-gateway/litellm.log", Format::Litellm),
        ("litellm-gateway/litellm-metrics.prom", Format::Prometheus),
        ("synthetic/envoy/plano-access.log", Format::Envoy),
        ("synthetic/envoy/envoy-default.log", Format::Envoy),
        ("synthetic/nginx/access.log", Format::Nginx),
        ("synthetic/benchmarks/vllm-result.json", Format::Vllm),
        ("synthetic/benchmarks/profile_export.jsonl", Format::Aiperf),
        ("synthetic/benchmarks/benchmarks.json", Format::Guidellm),
        ("synthetic/benchmarks/requests.jsonl", Format::Jsonl),
    ] {
        assert_eq!(formats::detect(&fixture(path)).unwrap(), format, "{path}");
    }
}

#[test]
fn clean_genai_bench_run_is_all_consistent() {
    let a = run(
        "genai-bench-clean/wire.jsonl",
        &["genai-bench-clean/experiment"],
        &[],
    );
    assert_eq!(
        findings(&a, 0),
        vec![f(Consistent, "127.0.0.1:9111", "200", "success", 42)]
    );
    assert!(a.passed);
    assert_eq!(a.discrepancies, 0);
}

#[test]
fn sdk_retries_behind_locust_are_retry_absorbed() {
    // openai-python's default max_retries=2: Locust shows 36 successes, no failure; the
    // wire carried 11 more 429s, each followed by a retry with x-stainless-retry-count+1.
    let a = run(
        "locust-sdk-retries/wire.jsonl",
        &["locust-sdk-retries/locust.json"],
        &[],
    );
    assert_eq!(
        findings(&a, 0),
        vec![
            f(Consistent, "127.0.0.1:9114", "200", "success", 36),
            f(RetryAbsorbed, "127.0.0.1:9114", "429", "-", 11),
        ]
    );
    assert!(a.passed, "retries are explained, not discrepancies");
    let absorbed = a.sources[0].runs[0]
        .findings
        .iter()
        .find(|f| f.verdict == RetryAbsorbed)
        .unwrap();
    assert!(absorbed.evidence.contains("x-stainless-retry-count"));
    assert!(absorbed.examples[0]
        .detail
        .as_deref()
        .unwrap()
        .contains("chain ends at record"));
}

#[test]
fn locust_csv_misses_the_last_second_as_boundary() {
    let a = run(
        "locust-sdk-retries/wire.jsonl",
        &["locust-sdk-retries/locust_stats.csv"],
        &[],
    );
    assert_eq!(
        findings(&a, 0),
        vec![
            f(Consistent, "127.0.0.1:9114", "200", "success", 27),
            f(RetryAbsorbed, "127.0.0.1:9114", "429", "-", 11),
            f(Boundary, "127.0.0.1:9114", "200", "-", 9),
        ]
    );
    let a = run(
        "locust-boundary/wire.jsonl",
        &[
            "locust-boundary/locust_stats.csv",
            "locust-boundary/locust.json",
        ],
        &[],
    );
    assert_eq!(
        findings(&a, 0),
        vec![
            f(Consistent, "127.0.0.1:9115", "200", "success", 16),
            f(Consistent, "127.0.0.1:9115", "429", "429", 4),
            f(Boundary, "127.0.0.1:9115", "200", "-", 10),
            f(Boundary, "127.0.0.1:9115", "429", "-", 2),
        ]
    );
    // The JSON file of the same run is complete (its failures carry no code).
    assert_eq!(
        findings(&a, 1),
        vec![
            f(Consistent, "127.0.0.1:9115", "200", "success", 26),
            f(Consistent, "127.0.0.1:9115", "429", "failure", 6),
        ]
    );
    assert!(a.passed);
}

#[test]
fn genai_bench_cohere_user_reports_429_as_500() {
    let a = run(
        "genai-bench-cohere/wire.jsonl",
        &["genai-bench-cohere/experiment"],
        &[],
    );
    assert_eq!(
        findings(&a, 0),
        vec![
            f(Consistent, "127.0.0.1:9112", "200", "success", 28),
            f(Misreported, "127.0.0.1:9112", "429", "500", 12),
        ]
    );
    assert!(!a.passed);
    let mis = a.sources[0].runs[0]
        .findings
        .iter()
        .find(|f| f.verdict == Misreported)
        .unwrap();
    // Located by genai_bench.log's error lines, whose own text names the 429.
    let example = mis.examples[0].report.as_ref().unwrap();
    assert!(example.at.contains("genai_bench.log:"), "{}", example.at);
    assert!(example
        .message
        .as_deref()
        .unwrap()
        .contains("429 Client Error"));
}

#[test]
fn sse_error_inside_a_200_reported_as_429_is_phantom() {
    let a = run(
        "genai-bench-sse-error/wire.jsonl",
        &["genai-bench-sse-error/experiment"],
        &[],
    );
    assert_eq!(
        findings(&a, 0),
        vec![
            f(Consistent, "127.0.0.1:9113", "200", "success", 35),
            f(Phantom, "127.0.0.1:9113", "200", "429", 7),
        ]
    );
    assert_eq!(a.discrepancies, 7);
}

#[test]
fn genai_bench_log_alone_locates_each_error() {
    // Without the run JSONs, the log's one line per failure is paired by second with
    // the wire's failures (a failure is likelier than a success, given the choice).
    let a = run(
        "genai-bench-cohere/wire.jsonl",
        &["genai-bench-cohere/experiment/genai_bench.log"],
        &[],
    );
    assert_eq!(
        findings(&a, 0),
        vec![f(Misreported, "127.0.0.1:9112", "429", "500", 12)]
    );
    assert_eq!(
        a.sources[0].runs[0].grain,
        ratewire_audit::reconcile::Grain::Second
    );
    let a = run(
        "genai-bench-sse-error/wire.jsonl",
        &["genai-bench-sse-error/experiment/genai_bench.log"],
        &[],
    );
    assert_eq!(
        findings(&a, 0),
        vec![f(Phantom, "127.0.0.1:9113", "200", "429", 7)]
    );
}

#[test]
fn requests_in_flight_at_the_stop_are_boundary() {
    let a = run(
        "genai-bench-boundary/wire.jsonl",
        &["genai-bench-boundary/experiment"],
        &[],
    );
    assert_eq!(
        findings(&a, 0),
        vec![
            f(Consistent, "127.0.0.1:9116", "200", "success", 6),
            f(Consistent, "127.0.0.1:9116", "429", "429", 2),
            f(Boundary, "127.0.0.1:9116", "200", "-", 3),
            f(Boundary, "127.0.0.1:9116", "429", "-", 1),
        ]
    );
    assert!(a.passed);
}

#[test]
fn each_run_of_an_experiment_owns_its_own_responses() {
    // Concurrency 2 then 10; "..._10_..." sorts before "..._2_...": the log's order wins.
    let a = run(
        "genai-bench-multi/wire.jsonl",
        &["genai-bench-multi/experiment"],
        &[],
    );
    let runs = &a.sources[0].runs;
    assert_eq!(runs.len(), 2);
    assert_eq!(runs[0].name, "D(10,10) num_concurrency=2");
    assert_eq!(runs[1].name, "D(10,10) num_concurrency=10");
    let [first, second] = [&runs[0].verdicts, &runs[1].verdicts];
    assert_eq!((first.get(Consistent), first.get(Boundary)), (6, 2));
    assert_eq!((second.get(Consistent), second.get(Boundary)), (24, 8));
    // At most `concurrency` requests can be in flight at a stop.
    assert!(second.get(Boundary) <= 10);
    assert!(a.passed);
}

#[test]
fn litellm_router_retries_are_absorbed_and_its_counters_agree() {
    let a = run(
        "litellm-gateway/wire.jsonl",
        &["litellm-gateway/experiment"],
        &[
            "litellm-gateway/litellm.log",
            "litellm-gateway/litellm-metrics.prom",
        ],
    );
    // genai-bench, behind the proxy, saw 37 successes: so did the client leg.
    assert_eq!(
        findings(&a, 0),
        vec![f(Consistent, "127.0.0.1:9120", "200", "success", 37)]
    );
    // The proxy's log: every access line pairs with its connection's response (the
    // 38th is the /metrics scrape).
    let litellm = &a.sources[1];
    assert_eq!(litellm.runs.len(), 2);
    assert_eq!(litellm.runs[0].verdicts.get(Consistent), 38);
    // The upstream leg: upstream A's 11 429s were retried (to A or B) into 200s.
    assert_eq!(
        findings(&a, 1),
        vec![
            f(Consistent, "127.0.0.1:9120", "200", "200", 38),
            f(Consistent, "127.0.0.1:9121", "200", "200", 10),
            f(Consistent, "127.0.0.1:9122", "200", "200", 27),
            f(RetryAbsorbed, "127.0.0.1:9121", "429", "-", 11),
        ]
    );
    // LiteLLM's own counters agree with the wire, per deployment and status.
    assert_eq!(
        findings(&a, 2),
        vec![
            f(Consistent, "127.0.0.1:9120", "200", "200", 37),
            f(Consistent, "127.0.0.1:9121", "200", "success", 10),
            f(Consistent, "127.0.0.1:9121", "429", "429", 11),
            f(Consistent, "127.0.0.1:9122", "200", "success", 27),
        ]
    );
    assert!(a.passed);
}

#[test]
fn plano_attempts_local_replies_and_gaps() {
    let a = run(
        "synthetic/envoy/wire.jsonl",
        &[],
        &["synthetic/envoy/plano-access.log"],
    );
    assert_eq!(
        findings(&a, 0),
        vec![
            f(Consistent, "10.0.0.2:8000", "200", "200", 16),
            f(Consistent, "10.0.0.2:8000", "429", "429", 1),
            f(Consistent, "10.0.0.3:8000", "200", "200", 1),
            f(Dropped, "10.0.0.2:8000", "503", "-", 1),
            f(RetryAbsorbed, "10.0.0.2:8000", "429", "-", 1),
            f(RetryAbsorbed, "10.0.0.3:8000", "429", "-", 1),
            f(Phantom, "-", "-", "429", 1),
            f(Boundary, "10.0.0.2:8000", "200", "-", 1),
        ]
    );
    let source = &a.sources[0];
    assert_eq!(source.skipped_lines, 1);
    assert!(source.problems[0].ends_with(
        "plano-access.log:5: skipped: expected `[START_TIME]` at the start of the line"
    ));
    let phantom = source.runs[0]
        .findings
        .iter()
        .find(|f| f.verdict == Phantom)
        .unwrap();
    assert!(phantom.evidence.contains("flag RL"));
}

#[test]
fn envoy_default_format_retries_are_inferred_from_spans() {
    let a = run(
        "synthetic/envoy/wire.jsonl",
        &[],
        &["synthetic/envoy/envoy-default.log"],
    );
    let got = findings(&a, 0);
    assert!(
        got.contains(&f(RetryAbsorbed, "10.0.0.2:8000", "429", "-", 1)),
        "{got:?}"
    );
    assert!(
        got.contains(&f(RetryAbsorbed, "10.0.0.3:8000", "429", "-", 1)),
        "{got:?}"
    );
    assert!(
        got.contains(&f(Consistent, "10.0.0.3:8000", "200", "200", 1)),
        "{got:?}"
    );
}

#[test]
fn nginx_upstream_status_and_invented_502() {
    let a = run(
        "synthetic/nginx/wire.jsonl",
        &[],
        &["synthetic/nginx/access.log"],
    );
    assert_eq!(
        findings(&a, 0),
        vec![
            f(Consistent, "10.0.0.2:8000", "200", "200", 7),
            f(Consistent, "10.0.0.2:8000", "429", "429", 1),
            f(Consistent, "10.0.0.3:8000", "200", "200", 1),
            f(RetryAbsorbed, "10.0.0.2:8000", "429", "-", 1),
            f(Phantom, "10.0.0.2:8000", "none", "502", 1),
        ]
    );
}

#[test]
fn vllm_aiperf_guidellm_and_json_lines() {
    let up = "10.0.0.2:8000";
    let a = run(
        "synthetic/benchmarks/wire.jsonl",
        &[
            "synthetic/benchmarks/vllm-result.json",
            "synthetic/benchmarks/profile_export.jsonl",
            "synthetic/benchmarks/benchmarks.json",
            "synthetic/benchmarks/requests.jsonl",
        ],
        &[],
    );
    // vLLM: perf_counter start times, an offset of its own; reason texts → 429.
    assert_eq!(
        findings(&a, 0),
        vec![
            f(Consistent, up, "200", "success", 10),
            f(Consistent, up, "429", "429", 2)
        ]
    );
    assert!(a.sources[0].runs[0].clock.contains("12 of 12"));
    // aiperf: one 429 recorded with code 500.
    assert_eq!(
        findings(&a, 1),
        vec![
            f(Consistent, up, "200", "success", 10),
            f(Consistent, up, "429", "429", 1),
            f(Misreported, up, "429", "500", 1),
        ]
    );
    // guidellm: counts, the status read from the httpx error text.
    assert_eq!(
        findings(&a, 2),
        vec![
            f(Consistent, up, "200", "success", 10),
            f(Consistent, up, "429", "429", 2)
        ]
    );
    // JSON Lines: one line missing mid-run.
    assert_eq!(
        findings(&a, 3),
        vec![
            f(Consistent, up, "200", "200", 10),
            f(Consistent, up, "429", "429", 1),
            f(Dropped, up, "429", "-", 1)
        ]
    );
}

#[test]
fn every_wire_event_gets_exactly_one_verdict_per_source() {
    // Invariant: for sources that cover the whole wire, the wire counts in the rows add
    // up to the journal's events.
    for (wire, report) in [
        (
            "genai-bench-cohere/wire.jsonl",
            "genai-bench-cohere/experiment",
        ),
        (
            "locust-sdk-retries/wire.jsonl",
            "locust-sdk-retries/locust.json",
        ),
        (
            "locust-boundary/wire.jsonl",
            "locust-boundary/locust_stats.csv",
        ),
        (
            "genai-bench-boundary/wire.jsonl",
            "genai-bench-boundary/experiment",
        ),
    ] {
        let a = run(wire, &[report], &[]);
        let wire_total: u64 = a.sources[0]
            .runs
            .iter()
            .flat_map(|r| &r.rows)
            .map(|r| r.wire)
            .sum();
        assert_eq!(
            wire_total,
            a.wire.responses + a.wire.no_responses,
            "{report}"
        );
    }
}
