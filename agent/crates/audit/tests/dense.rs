//! Matching on a dense log: thousands of requests per second, several per millisecond
//! (Envoy's START_TIME resolution), a few lines missing. Every line must pair with its
//! own response, and exactly the missing ones be dropped.

use std::io::Write;

use ratewire_audit::formats::{self, ReadOptions};
use ratewire_audit::reconcile::{audit, AuditOptions, Input, Role};
use ratewire_audit::verdict::Verdict;
use ratewire_audit::wire::Wire;
use ratewire_journal::Record;

const T0: u64 = 1_795_435_200_000_000_000;
const MS: u64 = 1_000_000;

fn envoy_time(ns: u64) -> String {
    let t = ratewire_journal::format_rfc3339_nanos(ns);
    format!("{}Z", &t[..23]) // millisecond resolution, like %START_TIME%
}

#[test]
fn dense_envoy_log_pairs_every_line_with_its_own_response() {
    let dir = std::env::temp_dir().join(format!("ratewire-audit-dense-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (wire_path, log_path) = (dir.join("wire.jsonl"), dir.join("envoy.log"));
    let mut wire = std::io::BufWriter::new(std::fs::File::create(&wire_path).unwrap());
    let mut log = std::io::BufWriter::new(std::fs::File::create(&log_path).unwrap());
    let mut state: u64 = 7;
    let missing = [1_000, 1_001, 4_321, 7_777, 9_998];
    for i in 0..10_000u64 {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let start = T0 + i * MS / 4 + (state >> 33) % (3 * MS); // 4000/s, jittered
        let upstream = if i % 2 == 0 {
            "10.0.0.2:8000"
        } else {
            "10.0.0.3:8000"
        };
        let status = if (state >> 20) % 100 < 7 { 429 } else { 200 };
        let mut r = Record::response(start + 17 * MS, upstream.into(), status, "replay");
        r.request_unix_ns = Some(start + 2 * MS);
        serde_json::to_writer(&mut wire, &r).unwrap();
        wire.write_all(b"\n").unwrap();
        if !missing.contains(&i) {
            writeln!(
                log,
                "[{}] \"POST /v1/chat/completions HTTP/1.1\" {status} - 120 900 20 18 \"-\" \"ua\" \"r{i}\" \"gw\" \"{upstream}\"",
                envoy_time(start)
            )
            .unwrap();
        }
    }
    drop((wire, log));
    let wire = Wire::load(&[wire_path], &[], None).unwrap();
    let report = formats::read(&log_path, None, &ReadOptions::default()).unwrap();
    let a = audit(
        &wire,
        vec![Input {
            report,
            role: Role::Gateway,
        }],
        &AuditOptions::default(),
    );
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(
        a.totals.get(Verdict::Consistent),
        10_000 - missing.len() as u64
    );
    assert_eq!(
        a.totals.get(Verdict::Dropped) + a.totals.get(Verdict::Boundary),
        missing.len() as u64
    );
    assert_eq!(a.totals.get(Verdict::Misreported), 0);
    assert_eq!(a.totals.get(Verdict::Phantom), 0);
}

/// When a per-request JSON Lines report says a request happened, relative to its wire
/// request head (`head`) and response (`end`), with Locust-like timing jitter.
#[derive(Clone, Copy, Debug)]
enum Logged {
    /// Locust's `start_time`: taken before the request is written, which gevent may
    /// delay by a few ms.
    Start,
    /// Half-way through, give or take a couple of ms.
    Middle,
    /// Once the response is in, a little late.
    End,
}

struct Bunches {
    /// (head, end, status) per request, in wire order.
    wire: Vec<(u64, u64, u16)>,
    /// (reported time, status) per request, in report order.
    lines: Vec<(u64, u16)>,
    /// Wire 429s.
    rate_limited: u64,
}

/// Four users whose requests leave in bunches (4 request heads within 0.5 ms every
/// ~22 ms, median gap between heads well under 1 ms), a mock answering one at a time
/// in 1-3 ms with the plan 200x4,429 (every fifth response a 429), and the report's
/// times jittered by a few ms, so that a line's time alone cannot tell which of its
/// bunch's responses is its own. `RW_SEED=N` tries another draw.
fn bunches(logged: Logged, map_429_to: Option<u16>) -> Bunches {
    let seed: u64 = std::env::var("RW_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed);
    let mut state: u64 = seed ^ logged as u64;
    let mut rand = move |n: u64| {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (state >> 33) % n
    };
    let (mut wire, mut lines, mut rate_limited) = (Vec::new(), Vec::new(), 0);
    let mut mock_free = 0u64;
    let mut served = 0u64;
    for b in 0..500u64 {
        let burst = T0 + b * 22 * MS + rand(2 * MS);
        let mut heads: Vec<u64> = (0..4).map(|_| burst + rand(MS / 2)).collect();
        heads.sort_unstable();
        for head in heads {
            let end = head.max(mock_free) + MS + rand(2 * MS);
            mock_free = end;
            served += 1;
            let status = if served.is_multiple_of(5) { 429 } else { 200 };
            rate_limited += u64::from(status == 429);
            wire.push((head, end, status));
            let t = match logged {
                Logged::Start => head - MS / 5 - rand(3 * MS),
                Logged::Middle => (head + end) / 2 + rand(4 * MS) - 2 * MS,
                Logged::End => end + rand(2 * MS),
            };
            let reported = match (status, map_429_to) {
                (429, Some(code)) => code,
                _ => status,
            };
            lines.push((t, reported));
        }
    }
    lines.sort_unstable(); // a log is written in its own time order
    let mut gaps: Vec<u64> = wire.windows(2).map(|w| w[1].0 - w[0].0).collect();
    gaps.sort_unstable();
    assert!(
        gaps[gaps.len() / 2] < MS / 2,
        "median gap between request heads"
    );
    Bunches {
        wire,
        lines,
        rate_limited,
    }
}

fn audit_bursts(
    logged: Logged,
    map_429_to: Option<u16>,
) -> (ratewire_audit::reconcile::Audit, u64, u64) {
    let b = bunches(logged, map_429_to);
    let dir = std::env::temp_dir().join(format!(
        "ratewire-audit-bunches-{}-{logged:?}-{}",
        std::process::id(),
        map_429_to.unwrap_or(0)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let (wire_path, log_path) = (dir.join("wire.jsonl"), dir.join("requests.jsonl"));
    let mut wire = std::io::BufWriter::new(std::fs::File::create(&wire_path).unwrap());
    for &(head, end, status) in &b.wire {
        let mut r = Record::response(end, "127.0.0.1:8000".into(), status, "replay");
        r.request_unix_ns = Some(head);
        serde_json::to_writer(&mut wire, &r).unwrap();
        wire.write_all(b"\n").unwrap();
    }
    let mut log = std::io::BufWriter::new(std::fs::File::create(&log_path).unwrap());
    for &(t, status) in &b.lines {
        // Float Unix seconds, like Locust's `start_time`.
        writeln!(
            log,
            "{{\"ts\": {:.6}, \"status\": {status}}}",
            t as f64 / 1e9
        )
        .unwrap();
    }
    drop((wire, log));
    let wire = Wire::load(&[wire_path], &[], None).unwrap();
    let options = ReadOptions {
        field_time: Some("ts".into()),
        field_status: Some("status".into()),
    };
    let report = formats::read(&log_path, None, &options).unwrap();
    let a = audit(
        &wire,
        vec![Input {
            report,
            role: Role::Benchmark,
        }],
        &AuditOptions::default(),
    );
    let _ = std::fs::remove_dir_all(&dir);
    (a, b.wire.len() as u64, b.rate_limited)
}

#[test]
fn honest_bunched_requests_are_all_consistent() {
    let mut seen = Vec::new();
    for logged in [Logged::Start, Logged::Middle, Logged::End] {
        let (a, total, _) = audit_bursts(logged, None);
        let t = &a.totals;
        let got = [
            Verdict::Consistent,
            Verdict::Misreported,
            Verdict::Phantom,
            Verdict::Dropped,
            Verdict::Boundary,
        ]
        .map(|v| t.get(v));
        seen.push((logged, got, [total, 0, 0, 0, 0]));
    }
    for (logged, got, want) in seen {
        assert_eq!(
            got, want,
            "{logged:?}: consistent, misreported, phantom, dropped, boundary"
        );
    }
}

#[test]
fn bunched_requests_with_every_429_reported_as_500_are_misreported() {
    let mut seen = Vec::new();
    for logged in [Logged::Start, Logged::Middle, Logged::End] {
        let (a, total, rate_limited) = audit_bursts(logged, Some(500));
        let t = &a.totals;
        let got = [
            Verdict::Consistent,
            Verdict::Misreported,
            Verdict::Phantom,
            Verdict::Dropped,
            Verdict::Boundary,
        ]
        .map(|v| t.get(v));
        seen.push((logged, got, [total - rate_limited, rate_limited, 0, 0, 0]));
    }
    for (logged, got, want) in seen {
        assert_eq!(
            got, want,
            "{logged:?}: consistent, misreported, phantom, dropped, boundary"
        );
    }
}
