//! "Violations by kind": a bar per guarantee (zero shown, so a reader sees
//! what held as well as what broke), then the first examples of each kind
//! in words with their ids and the history lines around them.

use std::fmt::Write;

use super::svg::{Frame, Scale, Svg};
use crate::check::verdict::GuaranteeResult;
use crate::check::{Mode, Violation};
use crate::report::escape::xml;

const FAILED: &str = "#e03131";
const ALLOWED: &str = "#f08c00";
/// Examples listed per kind (the rest are in violations.csv).
const EXAMPLES: usize = 3;

/// One horizontal bar per guarantee, labelled with its count.
pub fn bars(results: &[GuaranteeResult]) -> String {
    let row = 30.0;
    let f = Frame {
        w: 1100.0,
        h: 12.0 + row * results.len() as f64,
        left: 120.0,
        right: 490.0,
        top: 6.0,
        bottom: 6.0,
    };
    let most = results
        .iter()
        .map(|r| r.violations)
        .max()
        .unwrap_or(0)
        .max(1) as f64;
    let x = Scale::linear(0.0, most, f.x0(), f.x1());
    let mut svg = Svg::new(&f, "violations by kind");
    for (i, r) in results.iter().enumerate() {
        let y = f.top + row * i as f64;
        let name = r.guarantee.name();
        svg.text(f.x0() - 10.0, y + row / 2.0 + 5.0, "end", "bar-label", name);
        svg.rect(f.x0(), y + 5.0, f.x1() - f.x0(), row - 10.0, "bar-track");
        svg.text(
            f.x1() + 110.0,
            y + row / 2.0 + 4.0,
            "start",
            "bar-promise",
            r.guarantee.promise(),
        );
        let (colour, note) = match (r.violations, r.passed) {
            (0, _) => ("", "held".to_owned()),
            (n, false) => (FAILED, n.to_string()),
            (n, true) => (ALLOWED, format!("{n} (allowed)")),
        };
        if r.violations > 0 {
            let w = (x.px(r.violations as f64) - f.x0()).max(3.0);
            svg.titled(&format!("{name}: {}", r.guarantee.promise()), |s| {
                s.rect_fill(f.x0(), y + 5.0, w, row - 10.0, colour, 0.9);
            });
            svg.text(
                f.x0() + w + 8.0,
                y + row / 2.0 + 5.0,
                "start",
                "bar-value",
                &note,
            );
        } else {
            svg.text(
                f.x0() + 8.0,
                y + row / 2.0 + 5.0,
                "start",
                "bar-held",
                "✓ held",
            );
        }
    }
    svg.finish()
}

/// The first examples of each violated kind, as HTML.
pub fn examples(results: &[GuaranteeResult], violations: &[Violation]) -> String {
    let mut out = String::from(r#"<div class="kinds">"#);
    for r in results.iter().filter(|r| r.violations > 0) {
        let g = r.guarantee;
        let shown: Vec<&Violation> = violations
            .iter()
            .filter(|v| v.kind == g)
            .take(EXAMPLES)
            .collect();
        let _ = write!(
            out,
            r#"<div class="kind"><h3><span class="dot {}"></span>{} <small>{} · {}</small></h3><ol>"#,
            if r.passed { "allowed" } else { "failed" },
            g.name(),
            xml(g.promise()),
            count_note(r, shown.len()),
        );
        for v in shown {
            example(&mut out, v);
        }
        out.push_str("</ol></div>");
    }
    if results.iter().all(|r| r.violations == 0) {
        return r#"<p class="quiet">No violations: every guarantee held.</p>"#.into();
    }
    out + "</div>"
}

fn count_note(r: &GuaranteeResult, shown: usize) -> String {
    let mode = match r.mode {
        Mode::Fail => "",
        Mode::Allow => ", allowed by the scenario",
    };
    if (shown as u64) < r.violations {
        format!("{} found{mode}, first {shown} shown", r.violations)
    } else {
        format!("{} found{mode}", r.violations)
    }
}

fn example(out: &mut String, v: &Violation) {
    let _ = write!(
        out,
        r#"<li><span class="t">{:.3}s</span> {}<div class="ids">"#,
        v.t as f64 / 1e6,
        xml(&v.explanation)
    );
    for (k, val) in [
        ("message", &v.message_id),
        ("temp_id", &v.temp_id),
        ("sender", &v.sender),
        ("recipient", &v.recipient),
        ("conversation", &v.conversation),
    ] {
        if let Some(val) = val {
            let _ = write!(out, r#"<span class="chip"><b>{k}</b> {}</span>"#, xml(val));
        }
    }
    out.push_str("</div>");
    if !v.evidence.is_empty() {
        let _ = write!(
            out,
            "<details><summary>history around it ({} {})</summary><pre>{}</pre></details>",
            v.evidence.len(),
            if v.evidence.len() == 1 {
                "line"
            } else {
                "lines"
            },
            xml(&v.evidence.join("\n"))
        );
    }
    out.push_str("</li>");
}
