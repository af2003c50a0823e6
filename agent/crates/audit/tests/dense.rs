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
