//! `--output table`: for people at a terminal.

use std::fmt::Write;

use super::{example_line, verdict_list};
use crate::reconcile::{Audit, RunAudit};
use crate::verdict::Verdict;

/// Examples shown per finding (discrepancies and explained differences only).
const EXAMPLES_SHOWN: usize = 3;

pub fn render(audit: &Audit) -> String {
    let mut out = String::new();
    let w = &audit.wire;
    let paths: Vec<String> = w.paths.iter().map(|p| p.display().to_string()).collect();
    let _ = writeln!(
        out,
        "wire: {}: {} responses, {} without response, {} events lost, {} torn lines",
        paths.join(", "),
        w.responses,
        w.no_responses,
        w.events_lost,
        w.torn_lines
    );
    for (upstream, statuses) in &w.upstreams {
        let list: Vec<String> = statuses.iter().map(|(s, n)| format!("{s}×{n}")).collect();
        let _ = writeln!(out, "  {upstream:<22} {}", list.join("  "));
    }
    for source in &audit.sources {
        let _ = writeln!(
            out,
            "\n== {} ({}, {}){}",
            source.path.display(),
            source.format.name(),
            match source.role {
                crate::reconcile::Role::Benchmark => "benchmark",
                crate::reconcile::Role::Gateway => "gateway",
            },
            if source.skipped_lines > 0 {
                format!(", {} line(s) skipped", source.skipped_lines)
            } else {
                String::new()
            }
        );
        for p in &source.problems {
            let _ = writeln!(out, "   ! {p}");
        }
        for n in &source.notes {
            let _ = writeln!(out, "   note: {n}");
        }
        for run in &source.runs {
            render_run(&mut out, run);
        }
    }
    let t = &audit.totals;
    let _ = writeln!(
        out,
        "\nresult: {} discrepancies (misreported {}, dropped {}, phantom {}); explained: retry_absorbed {}, boundary {}; consistent {}",
        audit.discrepancies,
        t.get(Verdict::Misreported),
        t.get(Verdict::Dropped),
        t.get(Verdict::Phantom),
        t.get(Verdict::RetryAbsorbed),
        t.get(Verdict::Boundary),
        t.get(Verdict::Consistent)
    );
    let _ = writeln!(
        out,
        "{} (tolerance {}) → exit {}",
        if audit.passed { "PASS" } else { "FAIL" },
        audit.tolerance,
        if audit.passed { 0 } else { 1 }
    );
    out
}

fn render_run(out: &mut String, run: &RunAudit) {
    let window = run
        .window
        .as_ref()
        .map(|[a, b]| format!("  window {a} .. {b}"))
        .unwrap_or_default();
    let _ = writeln!(
        out,
        "-- {}  [{} grain]{window}",
        run.name,
        run.grain.as_str()
    );
    let _ = writeln!(out, "   clock: {}", run.clock);
    if run.wire_events_lost > 0 {
        let _ = writeln!(
            out,
            "   ! the agent lost {} events in this window: wire counts are lower bounds",
            run.wire_events_lost
        );
    }
    if run.rows.is_empty() {
        let _ = writeln!(out, "   (nothing to compare)");
        return;
    }
    let header = [
        "UPSTREAM", "STATUS", "CLASS", "WIRE", "REPORTED", "VERDICTS",
    ];
    let rows: Vec<[String; 6]> = run
        .rows
        .iter()
        .map(|r| {
            [
                r.upstream.clone(),
                r.status.clone(),
                r.class.as_str().to_owned(),
                r.wire.to_string(),
                r.reported.to_string(),
                verdict_list(&r.verdicts),
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: [&str; 6]| {
        format!(
            "   {:<w0$}  {:<w1$}  {:<w2$}  {:>w3$}  {:>w4$}  {}",
            cells[0],
            cells[1],
            cells[2],
            cells[3],
            cells[4],
            cells[5],
            w0 = widths[0],
            w1 = widths[1],
            w2 = widths[2],
            w3 = widths[3],
            w4 = widths[4]
        )
    };
    let _ = writeln!(out, "{}", line(header));
    for r in &rows {
        let _ = writeln!(out, "{}", line([&r[0], &r[1], &r[2], &r[3], &r[4], &r[5]]));
    }
    for f in &run.findings {
        let _ = writeln!(
            out,
            "   {:<14} ×{:<5} {} wire {} → report {}: {}",
            f.verdict.as_str(),
            f.count,
            f.upstream.as_deref().unwrap_or("-"),
            f.wire.as_deref().unwrap_or("—"),
            f.reported.as_deref().unwrap_or("—"),
            f.evidence
        );
        if f.verdict != Verdict::Consistent {
            for e in f.examples.iter().take(EXAMPLES_SHOWN) {
                let _ = writeln!(out, "        e.g. {}", example_line(e));
            }
        }
    }
}
