//! `--output markdown`: for issues and pull requests.

use std::fmt::Write;

use super::{example_line, verdict_list};
use crate::reconcile::Audit;
use crate::verdict::Verdict;

fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}

pub fn render(audit: &Audit) -> String {
    let mut out = String::new();
    let t = &audit.totals;
    let _ = writeln!(
        out,
        "# ratewire audit: {}\n",
        if audit.passed { "PASS" } else { "FAIL" }
    );
    let _ = writeln!(
        out,
        "**{} discrepancies** (misreported {}, dropped {}, phantom {}; tolerance {}). Explained: retry_absorbed {}, boundary {}. Consistent: {}.\n",
        audit.discrepancies,
        t.get(Verdict::Misreported),
        t.get(Verdict::Dropped),
        t.get(Verdict::Phantom),
        audit.tolerance,
        t.get(Verdict::RetryAbsorbed),
        t.get(Verdict::Boundary),
        t.get(Verdict::Consistent)
    );
    let w = &audit.wire;
    let _ = writeln!(out, "## Wire\n");
    let _ = writeln!(
        out,
        "{} responses, {} without response, {} events lost, {} torn lines.\n",
        w.responses, w.no_responses, w.events_lost, w.torn_lines
    );
    let _ = writeln!(out, "| upstream | statuses |\n|---|---|");
    for (upstream, statuses) in &w.upstreams {
        let list: Vec<String> = statuses.iter().map(|(s, n)| format!("{s}×{n}")).collect();
        let _ = writeln!(out, "| `{upstream}` | {} |", list.join(", "));
    }
    for source in &audit.sources {
        let _ = writeln!(
            out,
            "\n## `{}` ({})\n",
            source.path.display(),
            source.format.name()
        );
        if source.skipped_lines > 0 {
            let _ = writeln!(out, "{} line(s) skipped:\n", source.skipped_lines);
            for p in &source.problems {
                let _ = writeln!(out, "- {}", cell(p));
            }
            out.push('\n');
        }
        for n in &source.notes {
            let _ = writeln!(out, "> {}", cell(n));
        }
        for run in &source.runs {
            let _ = writeln!(out, "\n### {} ({} grain)\n", run.name, run.grain.as_str());
            if let Some([a, b]) = &run.window {
                let _ = writeln!(out, "Window {a} .. {b}. ");
            }
            let _ = writeln!(out, "Clock: {}.\n", cell(&run.clock));
            let _ = writeln!(out, "| upstream | status | class | wire | reported | verdicts |\n|---|---|---|---:|---:|---|");
            for r in &run.rows {
                let _ = writeln!(
                    out,
                    "| `{}` | {} | {} | {} | {} | {} |",
                    r.upstream,
                    r.status,
                    r.class.as_str(),
                    r.wire,
                    r.reported,
                    verdict_list(&r.verdicts)
                );
            }
            out.push('\n');
            for f in run
                .findings
                .iter()
                .filter(|f| f.verdict != Verdict::Consistent)
            {
                let _ = writeln!(
                    out,
                    "- **{}** ×{} `{}`: wire {} → report {}. {}",
                    f.verdict,
                    f.count,
                    f.upstream.as_deref().unwrap_or("-"),
                    f.wire.as_deref().unwrap_or("—"),
                    f.reported.as_deref().unwrap_or("—"),
                    cell(&f.evidence)
                );
                for e in f.examples.iter().take(3) {
                    let _ = writeln!(out, "  - {}", cell(&example_line(e)));
                }
            }
        }
    }
    out
}
