//! What a capacity run leaves beside its stage folders: capacity.json (the
//! outcome, for CI), capacity.csv (one row per stage, for a spreadsheet),
//! capacity.html (the table and two charts, inline SVG, no scripts or
//! network), and the table printed at the end.

use std::fmt::Write as _;
use std::path::Path;

use crate::run::capacity::{CapacityOutcome, Knee, Stage};

pub fn write_all(dir: &Path, out: &CapacityOutcome) -> std::io::Result<()> {
    std::fs::write(
        dir.join("capacity.json"),
        serde_json::to_string_pretty(out)? + "\n",
    )?;
    std::fs::write(dir.join("capacity.csv"), csv(out))?;
    std::fs::write(dir.join("capacity.html"), html(out))
}

const COLUMNS: &str = "stage,users,conversations,offered_msgs_per_s,accepted_msgs_per_s,delivered_per_s,knee_actual_ms,delivery_p50_ms,delivery_p99_ms,delivery_max_ms,connect_p99_ms,harness_cpu_max,harness_suspect,exit_code,status";

pub fn csv(out: &CapacityOutcome) -> String {
    let mut s = format!("{COLUMNS}\n");
    for r in &out.stages {
        let _ = writeln!(
            s,
            "{},{},{},{:.1},{:.1},{:.1},{},{:.3},{:.3},{:.3},{:.3},{:.3},{},{},{}",
            r.stage,
            r.users,
            r.conversations,
            r.offered_per_s,
            r.accepted_per_s,
            r.delivered_per_s,
            r.knee_actual_us
                .map_or(String::new(), |a| format!("{:.3}", a / 1e3)),
            ms(r.delivery_p50_us),
            ms(r.delivery_p99_us),
            ms(r.delivery_max_us),
            ms(r.connect_p99_us),
            r.harness_cpu_max,
            r.harness_suspect,
            r.exit_code,
            r.status
        );
    }
    s
}

fn ms(us: u64) -> f64 {
    us as f64 / 1e3
}

/// The table and the outcome, for the terminal.
pub fn render(out: &CapacityOutcome) -> String {
    let fmt = crate::report::summary::fmt_us;
    let mut s = format!(
        "{}: knee threshold {}, {:.0} s of chat per stage\n\
         stage  users  offered/s  accepted/s  delivered/s  {:>12}  delivery p50  harness cpu  status\n",
        out.scenario,
        out.knee_threshold,
        out.hold_seconds,
        out.knee_threshold
            .split_whitespace()
            .next()
            .unwrap_or("knee"),
    );
    for r in &out.stages {
        // The knee only where a later stage broke the threshold; where
        // every stage held, or one could not be judged, the last clean
        // stage is a lower bound, not a knee.
        let mark = match (Some(r.stage) == out.knee_stage, &out.result) {
            (false, _) => "",
            (true, Knee::Found) => "  <- knee",
            (true, _) => "  <- last held",
        };
        let _ = writeln!(
            s,
            "{:>5}  {:>5}  {:>9.0}  {:>10.0}  {:>11.0}  {:>12}  {:>12}  {:>10.0}%  {}{}{mark}",
            r.stage,
            r.users,
            r.offered_per_s,
            r.accepted_per_s,
            r.delivered_per_s,
            r.knee_actual_us
                .map_or("-".into(), |a| fmt(a.max(0.0) as u64)),
            fmt(r.delivery_p50_us),
            r.harness_cpu_max * 100.0,
            r.status,
            if r.harness_suspect {
                " (harness suspect)"
            } else {
                ""
            },
        );
    }
    s += &out.headline();
    s
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// One self-contained page: the outcome, the knee metric against users
/// with the threshold drawn in, throughput against users, and the table.
pub fn html(out: &CapacityOutcome) -> String {
    let knee_chart = chart(
        &format!("{} by users", out.knee_threshold_metric()),
        &out.stages,
        &[Series {
            name: out.knee_threshold_metric(),
            colour: "#1f6feb",
            value: &|r: &Stage| r.knee_actual_us.map(|a| a / 1e3),
        }],
        Some((out.knee_limit_us / 1e3, &out.knee_threshold)),
        "ms",
        out.knee_stage,
    );
    let rate_chart = chart(
        "Throughput by users",
        &out.stages,
        &[
            Series {
                name: "offered msg/s",
                colour: "#8b949e",
                value: &|r: &Stage| Some(r.offered_per_s),
            },
            Series {
                name: "accepted msg/s",
                colour: "#2da44e",
                value: &|r: &Stage| Some(r.accepted_per_s),
            },
        ],
        None,
        "msg/s",
        out.knee_stage,
    );
    let mut rows = String::new();
    for r in &out.stages {
        let class = match r.exit_code {
            0 => "pass",
            3 => "miss",
            _ => "fail",
        };
        let _ = write!(
            rows,
            "<tr class=\"{class}\"><td>{}</td><td>{}</td><td>{}</td><td>{:.0}</td><td>{:.0}</td><td>{:.0}</td><td>{}</td><td>{:.1}</td><td>{:.1}</td><td>{:.0}%{}</td><td><a href=\"{}/\">{}</a></td></tr>",
            r.stage,
            r.users,
            r.conversations,
            r.offered_per_s,
            r.accepted_per_s,
            r.delivered_per_s,
            r.knee_actual_us
                .map_or("–".into(), |a| format!("{:.1}", a / 1e3)),
            ms(r.delivery_p50_us),
            ms(r.delivery_p99_us),
            r.harness_cpu_max * 100.0,
            if r.harness_suspect { " (suspect)" } else { "" },
            esc(&r.dir),
            esc(&r.status),
        );
    }
    format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title} capacity</title>
<style>
body {{ font: 14px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 980px; color: #1f2328; }}
h1 {{ font-size: 1.4em; }} .headline {{ font-size: 1.15em; font-weight: 600; padding: .6em .9em; border-radius: 6px; background: #f6f8fa; }}
.headline.ok {{ border-left: 5px solid #2da44e; }} .headline.bad {{ border-left: 5px solid #cf222e; }}
table {{ border-collapse: collapse; width: 100%; margin-top: 1em; }} th, td {{ padding: .3em .6em; border-bottom: 1px solid #d0d7de; text-align: right; }}
th {{ background: #f6f8fa; }} tr.miss td {{ background: #fff8c5; }} tr.fail td {{ background: #ffebe9; }}
.charts {{ display: flex; flex-wrap: wrap; gap: 1em; }} svg {{ background: #fff; border: 1px solid #d0d7de; border-radius: 6px; }}
svg text {{ font: 11px system-ui, sans-serif; fill: #57606a; }} svg .title {{ font-size: 13px; fill: #1f2328; font-weight: 600; }}
</style></head><body>
<h1>{title}: capacity</h1>
<p class="headline {class}">{headline}</p>
<p>Each stage is a full run of {hold:.0} s of chat at a fixed user count (its report is in its folder); stepping stops at the first stage that does not pass. The knee is the last stage that held <code>{threshold}</code>.</p>
<div class="charts">{knee_chart}{rate_chart}</div>
<table><thead><tr><th>stage</th><th>users</th><th>conversations</th><th>offered msg/s</th><th>accepted msg/s</th><th>deliveries/s</th><th>{metric} (ms)</th><th>delivery p50 (ms)</th><th>delivery p99 (ms)</th><th>harness CPU</th><th>status</th></tr></thead>
<tbody>{rows}</tbody></table>
</body></html>
"#,
        title = esc(&out.scenario),
        class = if out.exit_code == 0 { "ok" } else { "bad" },
        headline = esc(&out.headline()),
        hold = out.hold_seconds,
        threshold = esc(&out.knee_threshold),
        metric = esc(out.knee_threshold_metric()),
    )
}

impl CapacityOutcome {
    /// "delivery.p99" of "delivery.p99 < 250ms".
    pub fn knee_threshold_metric(&self) -> &str {
        self.knee_threshold
            .split_whitespace()
            .next()
            .unwrap_or("knee")
    }
}

struct Series<'a> {
    name: &'a str,
    colour: &'a str,
    value: &'a dyn Fn(&Stage) -> Option<f64>,
}

const W: f64 = 470.0;
const H: f64 = 280.0;
const LEFT: f64 = 56.0;
const RIGHT: f64 = 16.0;
const TOP: f64 = 34.0;
const BOTTOM: f64 = 40.0;

/// A line chart over users, linear axes from zero; an optional dashed
/// limit line; the knee stage ringed.
fn chart(
    title: &str,
    stages: &[Stage],
    series: &[Series<'_>],
    limit: Option<(f64, &str)>,
    unit: &str,
    knee: Option<usize>,
) -> String {
    let max_x = stages.iter().map(|r| r.users).max().unwrap_or(1).max(1) as f64;
    let max_y = stages
        .iter()
        .flat_map(|r| series.iter().filter_map(|s| (s.value)(r)))
        .chain(limit.map(|l| l.0))
        .fold(0.0f64, f64::max)
        .max(1e-9)
        * 1.1;
    let x = |u: f64| LEFT + u / max_x * (W - LEFT - RIGHT);
    let y = |v: f64| H - BOTTOM - v / max_y * (H - TOP - BOTTOM);
    let mut svg = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" role="img"><title>{t}</title><text class="title" x="{LEFT}" y="20">{t}</text>"#,
        t = esc(title)
    );
    // Axes and five gridlines with labels.
    for i in 0..=4 {
        let v = max_y * i as f64 / 4.0;
        let _ = write!(
            svg,
            r##"<line x1="{LEFT}" x2="{x2}" y1="{yy:.1}" y2="{yy:.1}" stroke="#eaeef2"/><text x="{lx}" y="{ty:.1}" text-anchor="end">{v:.0}</text>"##,
            x2 = W - RIGHT,
            yy = y(v),
            lx = LEFT - 6.0,
            ty = y(v) + 4.0,
        );
    }
    for r in stages {
        let _ = write!(
            svg,
            r#"<text x="{:.1}" y="{}" text-anchor="middle">{}</text>"#,
            x(r.users as f64),
            H - BOTTOM + 16.0,
            r.users
        );
    }
    let _ = write!(
        svg,
        r#"<text x="{:.1}" y="{}" text-anchor="middle">users</text><text x="12" y="{:.1}" transform="rotate(-90 12 {:.1})" text-anchor="middle">{}</text>"#,
        (LEFT + W - RIGHT) / 2.0,
        H - 6.0,
        H / 2.0,
        H / 2.0,
        esc(unit)
    );
    if let Some((v, label)) = limit {
        let _ = write!(
            svg,
            r##"<line x1="{LEFT}" x2="{x2}" y1="{yy:.1}" y2="{yy:.1}" stroke="#cf222e" stroke-dasharray="6 4"/><text x="{x2}" y="{ty:.1}" text-anchor="end" style="fill:#cf222e">{l}</text>"##,
            x2 = W - RIGHT,
            yy = y(v),
            ty = y(v) - 5.0,
            l = esc(label)
        );
    }
    for (n, s) in series.iter().enumerate() {
        let points: Vec<(f64, f64)> = stages
            .iter()
            .filter_map(|r| (s.value)(r).map(|v| (x(r.users as f64), y(v))))
            .collect();
        let path = points
            .iter()
            .map(|(px, py)| format!("{px:.1},{py:.1}"))
            .collect::<Vec<_>>()
            .join(" ");
        let _ = write!(
            svg,
            r#"<polyline fill="none" stroke="{c}" stroke-width="2" points="{path}"/>"#,
            c = s.colour
        );
        for (px, py) in &points {
            let _ = write!(
                svg,
                r#"<circle cx="{px:.1}" cy="{py:.1}" r="3.5" fill="{c}"/>"#,
                c = s.colour
            );
        }
        let _ = write!(
            svg,
            r#"<rect x="{lx:.1}" y="{ly}" width="10" height="10" fill="{c}"/><text x="{tx:.1}" y="{ty}">{name}</text>"#,
            lx = LEFT + 8.0 + n as f64 * 130.0,
            ly = TOP - 2.0,
            c = s.colour,
            tx = LEFT + 22.0 + n as f64 * 130.0,
            ty = TOP + 7.0,
            name = esc(s.name)
        );
    }
    if let Some(k) = knee.and_then(|k| stages.get(k - 1)) {
        let v = series.first().and_then(|s| (s.value)(k)).unwrap_or(0.0);
        let _ = write!(
            svg,
            r##"<circle cx="{cx:.1}" cy="{cy:.1}" r="8" fill="none" stroke="#1f2328" stroke-width="1.5"/><text x="{cx:.1}" y="{ty:.1}" text-anchor="middle" style="fill:#1f2328">knee</text>"##,
            cx = x(k.users as f64),
            cy = y(v),
            ty = y(v) - 12.0,
        );
    }
    svg += "</svg>";
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stage(n: usize, users: u32, p99_ms: f64, exit_code: i32) -> Stage {
        Stage {
            stage: n,
            users,
            conversations: users / 10,
            offered_per_s: users as f64 / 4.0,
            accepted_per_s: users as f64 / 4.0,
            delivered_per_s: users as f64 * 2.5,
            knee_actual_us: Some(p99_ms * 1e3),
            delivery_p50_us: 1_000,
            delivery_p99_us: (p99_ms * 1e3) as u64,
            delivery_max_us: 90_000,
            connect_p99_us: 2_000,
            harness_cpu_max: 0.5,
            harness_suspect: false,
            exit_code,
            status: if exit_code == 0 {
                "pass"
            } else {
                "threshold_missed"
            }
            .into(),
            headline: String::new(),
            dir: format!("stage-{n:02}"),
        }
    }

    fn outcome() -> CapacityOutcome {
        CapacityOutcome {
            dir: Default::default(),
            scenario: "capacity <&>".into(),
            knee_threshold: "delivery.p99 < 250ms".into(),
            knee_limit_us: 250_000.0,
            hold_seconds: 20.0,
            stages: vec![
                stage(1, 200, 20.0, 0),
                stage(2, 400, 90.0, 0),
                stage(3, 600, 400.0, 3),
            ],
            result: Knee::Found,
            knee_stage: Some(2),
            exit_code: 0,
            not_run: None,
        }
    }

    #[test]
    fn table_csv_and_page_name_the_knee() {
        let o = outcome();
        let text = render(&o);
        assert!(text.contains("<- knee"), "{text}");
        assert!(
            text.ends_with("KNEE at 400 users (100 msg/s offered, 100 accepted, 1000 deliveries/s): 600 users broke delivery.p99 < 250ms (actual 400.0ms)"),
            "{text}"
        );
        let csv = csv(&o);
        assert_eq!(csv.lines().count(), 4);
        assert!(csv.lines().nth(3).unwrap().starts_with("3,600,60,150.0,"));
        assert_eq!(
            csv.lines().next().unwrap().split(',').count(),
            csv.lines().nth(1).unwrap().split(',').count()
        );
        let page = html(&o);
        assert!(page.contains("<svg") && page.contains(">knee</text>"));
        assert!(page.contains("capacity &lt;&amp;&gt;"), "escaped");
        assert!(!page.contains("<script"), "self-contained, no scripts");
    }

    /// Every stage held: the last one is where the steps stopped, not a
    /// knee, and the table says so as the headline does.
    #[test]
    fn a_run_that_never_broke_marks_no_knee() {
        let mut o = outcome();
        o.stages.pop();
        o.result = Knee::NotReached;
        let text = render(&o);
        assert!(!text.contains("<- knee"), "{text}");
        assert!(text.contains("<- last held"), "{text}");
    }

    /// A stage that could not start leaves only stages that held: the
    /// headline names the stage that did not run, not the last row.
    #[test]
    fn a_stage_that_did_not_run_is_named_not_the_last_that_held() {
        let mut o = outcome();
        o.stages.pop();
        o.result = Knee::Harness;
        o.not_run = Some("stage 3/3 (600 users) could not run (refused)".into());
        let text = render(&o);
        assert!(
            text.ends_with("HARNESS: stage 3/3 (600 users) could not run (refused); the knee is at least 400 users (100 msg/s offered, 100 accepted, 1000 deliveries/s)"),
            "{text}"
        );
    }
}
