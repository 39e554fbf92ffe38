//! report.html: the run on one self-contained page a person would rather
//! look at than read: the outcome and key counts, violations by kind with
//! the first examples (first, since they are why a run failed), users over
//! time with the fault windows shaded, the latency percentile spectrum of
//! every metric, and the tables. Inline CSS
//! and inline SVG drawn here; no script, no fonts or files fetched, so it
//! opens the same from a CI artifact, offline, years later.

mod spectrum;
mod svg;
mod tables;
mod users_chart;
mod violations;

use std::fmt::Write;

use crate::check::Latencies;
use crate::report::escape::xml;
use crate::report::summary::{Summary, fmt_us};

const STYLE: &str = include_str!("style.css");

pub fn render(s: &Summary, lat: &Latencies) -> String {
    let mut out = String::with_capacity(64 * 1024);
    let _ = write!(
        out,
        r#"<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{} · {} · reconnoiter</title>
<style>{STYLE}</style></head><body><main>"#,
        xml(&s.scenario),
        xml(&s.status)
    );
    header(&mut out, s);
    cards(&mut out, s);
    let v = &s.verdict;
    let _ = write!(
        out,
        r#"<section><h2>Violations by kind</h2><p class="what">Every guarantee, with how many times it broke; then the first examples of each kind (up to 100 of each, with the history lines around them, are in summary.json and violations.csv).</p>{}{}</section>"#,
        violations::bars(&v.guarantees),
        violations::examples(&v.guarantees, &v.violations)
    );
    timeline(&mut out, s);
    latency(&mut out, lat);
    let _ = write!(
        out,
        r#"<div class="cols">
<section><h2>Thresholds</h2>{}</section>
<section><h2>Harness</h2>{}</section>
<section><h2>Excluded, not decided</h2><p class="what">Moments the checker refused to guess about.</p>{}</section>
<section><h2>Run</h2>{}</section>
</div>"#,
        tables::thresholds(s),
        tables::harness(s),
        tables::excluded(s),
        tables::facts(s)
    );
    let _ = write!(
        out,
        r#"<footer>reconnoiter {} · beside this page: summary.json, summary.md, junit.xml, violations.csv, timeline.csv, latency/*.hgrm, latency.hlog, history.jsonl</footer>
</main></body></html>
"#,
        env!("CARGO_PKG_VERSION")
    );
    out
}

fn header(out: &mut String, s: &Summary) {
    let badge = match s.status.as_str() {
        "pass" => "PASS",
        "violated" => "FAIL",
        "threshold_missed" => "THRESHOLD MISSED",
        "interrupted" => "INTERRUPTED",
        _ => "HARNESS",
    };
    let _ = write!(
        out,
        r#"<header class="top {status}">
<div><div class="brand">reconnoiter run report</div><h1>{scenario}</h1>
<div class="sub">{run} · started {started} · against <code>{target}</code> · seed {seed}</div></div>
<div class="status"><div class="badge">{badge}</div><div class="exit">exit code {code}</div></div>
<div class="headline">{headline}</div>
</header>"#,
        status = xml(&s.status),
        scenario = xml(&s.scenario),
        run = xml(&s.run_id),
        started = xml(&s.started_at),
        target = xml(&s.target),
        seed = s.seed,
        headline = xml(&s.headline()),
        code = s.exit_code,
    );
}

fn cards(out: &mut String, s: &Summary) {
    let v = &s.verdict;
    let c = &v.counts;
    let total: u64 = v.guarantees.iter().map(|g| g.violations).sum();
    let failing = v.guarantees.iter().filter(|g| !g.passed).count();
    let reconnect_p99 = v
        .metrics
        .iter()
        .find(|m| m.metric == "reconnect" && m.tag.is_none())
        .map_or("–".to_owned(), |m| fmt_us(m.p99));
    let delivered = if c.owed > 0 {
        let came = c.delivered_owed.unwrap_or(c.delivered);
        format!("{:.2} %", came as f64 * 100.0 / c.owed as f64)
    } else {
        "–".into()
    };
    let cards = [
        (
            "users",
            s.users.to_string(),
            format!("{} conversations", s.conversations),
            "",
        ),
        (
            "duration",
            format!("{:.1} s", s.elapsed_seconds),
            if s.drained {
                "drained".into()
            } else {
                "did not drain".into()
            },
            if s.drained { "" } else { "warn" },
        ),
        (
            "messages sent",
            c.sent.to_string(),
            format!("{} accepted", c.accepted),
            "",
        ),
        ("delivered", delivered, c.deliveries(), ""),
        (
            "reconnects",
            c.reconnects.to_string(),
            format!("p99 {reconnect_p99}"),
            "",
        ),
        (
            "faults",
            c.faults.to_string(),
            format!("{} failed", s.fault_failures.len()),
            if s.fault_failures.is_empty() {
                ""
            } else {
                "bad"
            },
        ),
        (
            "violations",
            total.to_string(),
            format!(
                "{failing} guarantee{} failed",
                if failing == 1 { "" } else { "s" }
            ),
            if failing > 0 {
                "bad"
            } else if total > 0 {
                "warn"
            } else {
                "ok"
            },
        ),
    ];
    out.push_str(r#"<section class="cards">"#);
    for (label, value, note, class) in cards {
        let _ = write!(
            out,
            r#"<div class="card {class}"><div class="label">{label}</div><div class="value">{}</div><div class="note">{}</div></div>"#,
            xml(&value),
            xml(&note)
        );
    }
    out.push_str("</section>");
}

fn legend(items: &[(&str, &str)]) -> String {
    let mut out = String::from(r#"<div class="legend">"#);
    for (colour, name) in items {
        let _ = write!(
            out,
            r#"<span><i style="background:{colour}"></i>{}</span>"#,
            xml(name)
        );
    }
    out + "</div>"
}

fn timeline(out: &mut String, s: &Summary) {
    let rows = &s.verdict.timeline;
    let lanes = users_chart::fault_lanes(rows);
    let _ = write!(
        out,
        r#"<section><h2>Users over time</h2><p class="what">Every second of the run, ramp to stop; shaded: a fault was active.</p>{}{}{}
<h3>Traffic</h3>{}{}</section>"#,
        legend(&users_chart::USERS_LEGEND),
        users_chart::users(rows, s.users),
        if lanes.is_empty() {
            r#"<p class="quiet">No faults in this run.</p>"#.to_owned()
        } else {
            format!(r#"<div class="lanes">{lanes}</div>"#)
        },
        legend(&users_chart::TRAFFIC_LEGEND),
        users_chart::traffic(rows),
    );
}

fn latency(out: &mut String, lat: &Latencies) {
    let charts = spectrum::charts(lat);
    out.push_str(
        r#"<section><h2>Latency percentile spectrum</h2><p class="what">Each line is one histogram: the latency (log scale) at each percentile, with the tail stretched out to the right as HdrHistogram plots it. A line ends where its samples run out; the dot is the max.</p>"#,
    );
    if charts.is_empty() {
        out.push_str(r#"<p class="quiet">No latency samples were recorded.</p>"#);
    }
    out.push_str(r#"<div class="grid">"#);
    for c in charts {
        let _ = write!(
            out,
            r#"<figure><figcaption><b>{}</b> <span>{}</span></figcaption>{}<div class="series">"#,
            c.title,
            xml(c.what),
            c.svg
        );
        for (colour, name, figures) in c.legend {
            let _ = write!(
                out,
                r#"<div><i style="background:{colour}"></i><b>{}</b> <span>{}</span></div>"#,
                xml(&name),
                xml(&figures)
            );
        }
        out.push_str("</div></figure>");
    }
    out.push_str("</div></section>");
}
