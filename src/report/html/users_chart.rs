//! "Users over time" and "traffic over time": the run second by second from
//! `verdict.timeline`, with the fault windows shaded, so a reader sees a
//! cohort drop out when its fault starts and how long it takes to come back.

use std::collections::BTreeMap;

use super::svg::{Frame, Scale, Svg, linear_ticks};
use crate::check::verdict::TimelineRow;

pub const CONNECTED: &str = "#2f9e44";
pub const RECONNECTING: &str = "#f08c00";
pub const OFFLINE: &str = "#e03131";
const SENDS: &str = "#1c7ed6";
const DELIVERIES: &str = "#7048e8";
/// One colour per fault lane, in order of first appearance.
const FAULT_COLOURS: [&str; 6] = [
    "#7048e8", "#d6336c", "#0c8599", "#e8590c", "#5c940d", "#495057",
];

/// At most this many points per series: an hours-long soak is averaged
/// into buckets so the page stays light.
const MAX_POINTS: usize = 900;

/// A fault's active seconds as `[start, end)` runs, keyed by name.
pub fn fault_windows(rows: &[TimelineRow]) -> Vec<(String, Vec<(u32, u32)>)> {
    let mut order: Vec<String> = Vec::new();
    let mut runs: BTreeMap<String, Vec<(u32, u32)>> = BTreeMap::new();
    for r in rows {
        for f in &r.active_faults {
            if !runs.contains_key(f) {
                order.push(f.clone());
            }
            let v = runs.entry(f.clone()).or_default();
            match v.last_mut() {
                Some(last) if last.1 == r.second => last.1 = r.second + 1,
                _ => v.push((r.second, r.second + 1)),
            }
        }
    }
    order
        .into_iter()
        .map(|f| {
            let r = runs.remove(&f).unwrap_or_default();
            (f, r)
        })
        .collect()
}

/// Averages rows into at most `MAX_POINTS` buckets, each as two points
/// (its first and last second) so the lines are steps: a second's count
/// holds for the whole second.
fn buckets(rows: &[TimelineRow], f: impl Fn(&TimelineRow) -> [f64; 3]) -> Vec<(f64, [f64; 3])> {
    let per = rows.len().div_ceil(MAX_POINTS).max(1);
    rows.chunks(per)
        .flat_map(|c| {
            let mut sum = [0.0; 3];
            for r in c {
                for (s, v) in sum.iter_mut().zip(f(r)) {
                    *s += v;
                }
            }
            let n = c.len() as f64;
            let start = c[0].second as f64;
            let v = sum.map(|s| s / n);
            [(start, v), (start + n, v)]
        })
        .collect()
}

fn frame(h: f64) -> Frame {
    Frame {
        w: 1100.0,
        h,
        left: 120.0,
        right: 16.0,
        top: 12.0,
        bottom: 28.0,
    }
}

fn x_scale(f: &Frame, rows: &[TimelineRow]) -> Scale {
    let end = rows.last().map_or(1, |r| r.second + 1) as f64;
    Scale::linear(0.0, end, f.x0(), f.x1())
}

/// Shades the seconds when any fault was active with a hatch over the plot
/// (drawn last, so it shows over filled areas too), edges dashed. Which
/// fault it was is in the lanes below, one colour per fault.
fn shade(svg: &mut Svg, f: &Frame, x: &Scale, rows: &[TimelineRow], id: &str) {
    svg.hatch(id);
    let any: Vec<TimelineRow> = rows
        .iter()
        .filter(|r| !r.active_faults.is_empty())
        .map(|r| TimelineRow {
            second: r.second,
            active_faults: vec![String::new()],
            ..Default::default()
        })
        .collect();
    for (_, runs) in fault_windows(&any) {
        for (a, b) in runs {
            let (xa, xb) = (x.px(a as f64), x.px(b as f64));
            let names: Vec<String> = rows
                .iter()
                .filter(|r| r.second >= a && r.second < b)
                .flat_map(|r| r.active_faults.iter().cloned())
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .collect();
            svg.titled(&format!("{a}s–{b}s: {}", names.join(", ")), |s| {
                s.rect(xa, f.y1(), xb - xa, f.y0() - f.y1(), &format!("hatch-{id}"));
                s.line(xa, f.y1(), xa, f.y0(), "fault-edge");
                s.line(xb, f.y1(), xb, f.y0(), "fault-edge");
            });
        }
    }
}

fn x_axis(svg: &mut Svg, f: &Frame, x: &Scale) {
    for t in linear_ticks(x.min, x.max, 10) {
        let px = x.px(t);
        svg.line(px, f.y0(), px, f.y0() + 4.0, "axis");
        svg.text(px, f.y0() + 17.0, "middle", "tick", &format!("{t}s"));
    }
    svg.line(f.x0(), f.y0(), f.x1(), f.y0(), "axis");
}

fn y_axis(svg: &mut Svg, f: &Frame, y: &Scale, n: usize) {
    for t in linear_ticks(y.min, y.max, n) {
        let py = y.px(t);
        svg.line(f.x0(), py, f.x1(), py, "grid");
        svg.text(f.x0() - 8.0, py + 4.0, "end", "tick", &format_count(t));
    }
}

fn format_count(v: f64) -> String {
    if v >= 10_000.0 {
        format!("{:.0}k", v / 1000.0)
    } else if v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

/// Connected, reconnecting and offline users stacked, fault windows shaded.
pub fn users(rows: &[TimelineRow], users: u32) -> String {
    let f = frame(300.0);
    let mut svg = Svg::new(&f, "users connected, reconnecting and offline over time");
    if rows.is_empty() {
        svg.text(
            f.w / 2.0,
            f.h / 2.0,
            "middle",
            "empty",
            "no timeline recorded",
        );
        return svg.finish();
    }
    let x = x_scale(&f, rows);
    let top = rows
        .iter()
        .map(|r| r.connected + r.reconnecting + r.offline)
        .max()
        .unwrap_or(0)
        .max(users)
        .max(1) as f64;
    let y = Scale::linear(0.0, top, f.y0(), f.y1());
    y_axis(&mut svg, &f, &y, 5);
    x_axis(&mut svg, &f, &x);
    let pts = buckets(rows, |r| {
        [r.connected as f64, r.reconnecting as f64, r.offline as f64]
    });
    // Stacked from the bottom: connected, then reconnecting, then offline.
    let mut base: Vec<(f64, f64)> = pts.iter().map(|(s, _)| (x.px(*s), y.px(0.0))).collect();
    let mut level = vec![0.0; pts.len()];
    for (i, colour) in [CONNECTED, RECONNECTING, OFFLINE].into_iter().enumerate() {
        for (l, (_, v)) in level.iter_mut().zip(&pts) {
            *l += v[i];
        }
        let top: Vec<(f64, f64)> = pts
            .iter()
            .zip(&level)
            .map(|((s, _), l)| (x.px(*s), y.px(*l)))
            .collect();
        svg.band(&top, &base, colour);
        base = top;
    }
    shade(&mut svg, &f, &x, rows, "users");
    svg.finish()
}

/// Fault lanes under the users chart: one row per fault name, a bar for
/// each window, so overlapping faults stay readable.
pub fn fault_lanes(rows: &[TimelineRow]) -> String {
    let faults = fault_windows(rows);
    if faults.is_empty() {
        return String::new();
    }
    let lane = 22.0;
    let f = Frame {
        h: 8.0 + lane * faults.len() as f64,
        top: 4.0,
        bottom: 4.0,
        ..frame(0.0)
    };
    let x = x_scale(&f, rows);
    let mut svg = Svg::new(&f, "fault windows");
    for (i, (name, runs)) in faults.iter().enumerate() {
        let colour = FAULT_COLOURS[i % FAULT_COLOURS.len()];
        let y = f.top + lane * i as f64;
        svg.line(f.x0(), y + lane / 2.0, f.x1(), y + lane / 2.0, "lane");
        for (a, b) in runs {
            let (xa, xb) = (x.px(*a as f64), x.px(*b as f64));
            svg.titled(&format!("{name}: {a}s–{b}s"), |s| {
                s.rect_fill(xa, y + 4.0, (xb - xa).max(2.0), lane - 8.0, colour, 0.85);
            });
        }
        svg.text(
            f.x0() - 8.0,
            y + lane / 2.0 + 4.0,
            "end",
            "lane-label",
            name,
        );
    }
    svg.finish()
}

/// Sends and deliveries per second, with a red mark where violations were
/// found (by the second they were seen).
pub fn traffic(rows: &[TimelineRow]) -> String {
    let f = frame(220.0);
    let mut svg = Svg::new(&f, "sends and deliveries per second");
    if rows.is_empty() {
        return svg.finish();
    }
    let x = x_scale(&f, rows);
    let pts = buckets(rows, |r| {
        [r.sends as f64, r.deliveries as f64, r.violations as f64]
    });
    let top = pts.iter().map(|(_, v)| v[0].max(v[1])).fold(1.0, f64::max);
    let y = Scale::linear(0.0, top * 1.08, f.y0(), f.y1());
    y_axis(&mut svg, &f, &y, 4);
    x_axis(&mut svg, &f, &x);
    shade(&mut svg, &f, &x, rows, "traffic");
    for (i, colour) in [(1, DELIVERIES), (0, SENDS)] {
        let line: Vec<(f64, f64)> = pts.iter().map(|(s, v)| (x.px(*s), y.px(v[i]))).collect();
        svg.polyline(&line, colour, 1.8);
    }
    for r in rows.iter().filter(|r| r.violations > 0) {
        let px = x.px(r.second as f64 + 0.5);
        svg.titled(
            &format!("{} violations found in second {}", r.violations, r.second),
            |s| {
                s.line(px, f.y0(), px, f.y1(), "violation-mark");
                s.circle(px, f.y1() + 4.0, 3.5, OFFLINE);
            },
        );
    }
    svg.finish()
}

/// A legend: (colour, what it stands for).
pub type Legend = [(&'static str, &'static str); 3];

/// The legends of the users chart and the traffic chart.
pub const USERS_LEGEND: Legend = [
    (CONNECTED, "connected"),
    (RECONNECTING, "reconnecting"),
    (OFFLINE, "offline (gave up or not yet connected)"),
];
pub const TRAFFIC_LEGEND: Legend = [
    (SENDS, "sends/s"),
    (DELIVERIES, "deliveries/s"),
    (OFFLINE, "violations found"),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fault_windows_are_runs_of_seconds_in_order_of_appearance() {
        let row = |s: u32, f: &[&str]| TimelineRow {
            second: s,
            active_faults: f.iter().map(|x| x.to_string()).collect(),
            ..Default::default()
        };
        let rows = [
            row(0, &[]),
            row(1, &["b"]),
            row(2, &["b", "a"]),
            row(3, &["a"]),
            row(4, &[]),
            row(5, &["b"]),
        ];
        assert_eq!(
            fault_windows(&rows),
            [
                ("b".to_owned(), vec![(1, 3), (5, 6)]),
                ("a".to_owned(), vec![(2, 4)])
            ]
        );
    }
}
