//! summary.md: the run as a CI job summary (GitHub's `$GITHUB_STEP_SUMMARY`,
//! a GitLab MR note). A reader sees the outcome in the first line, then
//! tables small enough to scan: guarantees, thresholds, latency, excluded
//! counts, and the first violations in words.

use std::fmt::Write;

use super::escape::md_cell;
use super::summary::{Summary, fmt_limit, fmt_us};
use crate::check::Mode;
use crate::exit::Exit;

/// Violations listed in words at the end (the rest are in violations.csv).
const FIRST_VIOLATIONS: usize = 10;

pub fn render(s: &Summary) -> String {
    let v = &s.verdict;
    let c = &v.counts;
    let mut out = String::new();
    let icon = match s.exit() {
        Exit::Pass => "✅",
        Exit::Violation => "❌",
        Exit::Threshold => "⏱️",
        _ => "⚠️",
    };
    let _ = writeln!(
        out,
        "### {icon} reconnoiter `{}`: {}\n",
        md_cell(&s.scenario),
        md_cell(&s.headline())
    );
    let _ = writeln!(
        out,
        "{} users in {} conversations of {} against `{}` for {:.1} s · seed {} · run `{}` · exit {}{}\n",
        s.users,
        s.conversations,
        s.members,
        md_cell(&s.target),
        s.elapsed_seconds,
        s.seed,
        md_cell(&s.run_id),
        s.exit_code,
        if s.drained {
            ""
        } else {
            " · **did not drain**"
        }
    );
    let _ = writeln!(
        out,
        "sent {} · accepted {} · delivered {} · connects {} (reconnects {}, failures {}) · faults {}\n",
        c.sent,
        c.accepted,
        c.deliveries(),
        c.connects,
        c.reconnects,
        c.connect_failures,
        c.faults
    );

    out += "| guarantee | promise | mode | violations | result |\n|---|---|---|---:|---|\n";
    for g in &v.guarantees {
        let result = match (g.violations, g.passed) {
            (0, _) => "✅ held",
            (_, true) => "➖ allowed",
            _ => "❌ violated",
        };
        let mode = match g.mode {
            Mode::Fail => "fail",
            Mode::Allow => "allow",
        };
        let _ = writeln!(
            out,
            "| {} | {} | {mode} | {} | {result} |",
            g.guarantee.name(),
            g.guarantee.promise(),
            g.violations
        );
    }

    if !v.thresholds.is_empty() {
        out += "\n| threshold | limit | actual | result |\n|---|---|---|---|\n";
        for t in &v.thresholds {
            let _ = writeln!(
                out,
                "| `{}` | {} {} | {} | {} |",
                md_cell(&t.name),
                t.op,
                fmt_limit(&t.name, t.limit),
                t.actual
                    .map_or("no samples".into(), |a| fmt_limit(&t.name, a)),
                if t.passed { "✅ met" } else { "❌ missed" }
            );
        }
    }

    let overall: Vec<_> = v.metrics.iter().filter(|m| m.tag.is_none()).collect();
    if !overall.is_empty() {
        out += "\n| latency | samples | p50 | p99 | max |\n|---|---:|---:|---:|---:|\n";
        for m in overall {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} |",
                m.metric,
                m.count,
                fmt_us(m.p50),
                fmt_us(m.p99),
                fmt_us(m.max)
            );
        }
    }

    let e = &v.excluded;
    let excluded = [
        ("membership change in flight", e.membership_in_flight),
        ("forfeited by removal", e.forfeited_by_removal),
        ("token expired in flight", e.auth_in_flight),
        (
            "live deliveries without seq (order)",
            e.unordered_deliveries,
        ),
        ("deliveries without temp_id", e.without_temp_id),
        ("interrupted before the drain", e.interrupted_pairs),
        ("recipient never came back", e.recipient_offline),
        ("sender's client gave up", e.sender_gave_up),
        ("messages from before the run", e.before_run),
    ];
    if excluded.iter().any(|(_, n)| *n > 0) {
        out += "\n| excluded (not decided) | count |\n|---|---:|\n";
        for (what, n) in excluded.iter().filter(|(_, n)| *n > 0) {
            let _ = writeln!(out, "| {what} | {n} |");
        }
    }

    let h = &v.harness;
    if h.suspect || !s.fault_failures.is_empty() {
        out += "\n";
    }
    if h.suspect {
        let _ = writeln!(
            out,
            "> ⚠️ **Harness {}:** {}",
            if h.severe { "saturated" } else { "suspect" },
            md_cell(&h.reasons.join("; "))
        );
    }
    for f in &s.fault_failures {
        let _ = writeln!(out, "> ⚠️ **Fault step failed:** {}", md_cell(f));
    }

    if !v.violations.is_empty() {
        out += "\n**First violations**\n\n";
        for viol in v.violations.iter().take(FIRST_VIOLATIONS) {
            let _ = writeln!(
                out,
                "- `{}` at {:.3} s: {}",
                viol.kind.name(),
                viol.t as f64 / 1e6,
                md_cell(&viol.explanation)
            );
        }
        let total: u64 = v.guarantees.iter().map(|g| g.violations).sum();
        if total as usize > FIRST_VIOLATIONS.min(v.violations.len()) {
            let _ = writeln!(
                out,
                "\n{total} violations in all; see violations.csv and report.html."
            );
        }
    }
    out
}
