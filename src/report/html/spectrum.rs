//! The latency percentile spectrum, as HdrHistogram's plotter draws it:
//! x is 1/(1-percentile) on a log scale (0 %, 90 %, 99 %, 99.9 % ... equally
//! spaced), y the latency on a log scale. A tail that a mean or a p99 would
//! hide shows as the line bending up on the right.

use hdrhistogram::Histogram;

use super::svg::{Frame, Scale, Svg, log_ticks, step_ceil, step_floor};
use crate::check::{Latencies, MetricKey};
use crate::report::summary::fmt_us;

/// The spectrum's right edge: 99.999 %, i.e. 1/(1-p) = 10^5.
const NINES: f64 = 5.0;
/// Points per series (over the five decades).
const STEPS: usize = 200;
/// Tagged series drawn beside the overall one, the largest first.
const MAX_TAGS: usize = 6;

pub const SERIES: [&str; 8] = [
    "#1864ab", "#e8590c", "#2f9e44", "#d6336c", "#7048e8", "#0c8599", "#f08c00", "#495057",
];

/// One chart: a title, the SVG, and the legend rows (colour, name, figures).
pub struct Chart {
    pub title: &'static str,
    pub what: &'static str,
    pub svg: String,
    pub legend: Vec<(&'static str, String, String)>,
}

/// Which histograms share a chart.
const GROUPS: [(&str, &str, &[&str]); 6] = [
    (
        "Reconnect",
        "transport lost → connected again",
        &["reconnect"],
    ),
    (
        "Recovery",
        "transport lost → rooms rejoined, missed messages synced, outbox flushed",
        &["recovery"],
    ),
    (
        "Heal to recovery",
        "fault healed → user recovered",
        &["heal_to_recovery"],
    ),
    ("Detection", "fault started → user noticed", &["detection"]),
    ("Delivery", "sent → received, per recipient", &["delivery"]),
    (
        "Handshake phases",
        "TCP, WebSocket upgrade, Engine.IO open, Socket.IO connect",
        &[
            "handshake.tcp",
            "handshake.upgrade",
            "handshake.open",
            "handshake.connect",
        ],
    ),
];

/// A round latency as an axis label: 100µs, 2ms, 500ms, 10s.
fn tick(us: f64) -> String {
    let (v, unit) = if us >= 1e6 {
        (us / 1e6, "s")
    } else if us >= 1e3 {
        (us / 1e3, "ms")
    } else {
        (us, "µs")
    };
    format!("{}{unit}", (v * 1000.0).round() / 1000.0)
}

/// The x position (in nines) of a quantile, and back.
pub fn nines(q: f64) -> f64 {
    (1.0 / (1.0 - q).max(1e-12)).log10()
}

fn quantile_at(x: f64) -> f64 {
    1.0 - 10f64.powf(-x)
}

/// The points of one histogram's spectrum, (nines, µs). A series ends where
/// its samples run out (a p99.99 of 200 samples is just the max).
pub fn points(h: &Histogram<u64>) -> Vec<(f64, f64)> {
    let end = (h.len() as f64).log10().clamp(1.0, NINES);
    (0..=STEPS)
        .map(|i| end * i as f64 / STEPS as f64)
        .map(|x| (x, h.value_at_quantile(quantile_at(x)) as f64))
        .chain(std::iter::once((end, h.max() as f64)))
        .collect()
}

/// Every chart that has samples, in the order of `GROUPS`.
pub fn charts(lat: &Latencies) -> Vec<Chart> {
    GROUPS
        .iter()
        .filter_map(|(title, what, metrics)| {
            let mut series: Vec<(String, &Histogram<u64>)> = Vec::new();
            for m in *metrics {
                if let Some(h) = lat.get(m).filter(|h| !h.is_empty()) {
                    let name = if metrics.len() > 1 {
                        m.trim_start_matches("handshake.").to_owned()
                    } else {
                        "all".to_owned()
                    };
                    series.push((name, h));
                }
            }
            if metrics.len() == 1 {
                let mut tagged: Vec<(&MetricKey, &Histogram<u64>)> = lat
                    .hists
                    .iter()
                    .filter(|(k, h)| k.metric == metrics[0] && k.tag.is_some() && !h.is_empty())
                    .collect();
                tagged.sort_by_key(|(_, h)| std::cmp::Reverse(h.len()));
                series.extend(
                    tagged
                        .into_iter()
                        .take(MAX_TAGS)
                        .map(|(k, h)| (k.tag.clone().unwrap_or_default(), h)),
                );
            }
            (!series.is_empty()).then(|| chart(title, what, &series))
        })
        .collect()
}

fn chart(title: &'static str, what: &'static str, series: &[(String, &Histogram<u64>)]) -> Chart {
    let f = Frame {
        w: 540.0,
        h: 270.0,
        left: 58.0,
        right: 30.0,
        top: 12.0,
        bottom: 34.0,
    };
    let lo = series
        .iter()
        .map(|(_, h)| h.min().max(1))
        .min()
        .unwrap_or(1) as f64;
    let hi = series.iter().map(|(_, h)| h.max()).max().unwrap_or(1) as f64;
    let y = Scale::log(step_floor(lo), step_ceil(hi * 1.01), f.y0(), f.y1());
    // The axis reaches as many nines as the largest series has samples
    // for (at least 99 %), so a small run does not leave it half empty.
    let most = series.iter().map(|(_, h)| h.len()).max().unwrap_or(1);
    let right = (most as f64).log10().ceil().clamp(2.0, NINES);
    let x = Scale::linear(0.0, right, f.x0(), f.x1());
    let mut svg = Svg::new(&f, &format!("{title} latency by percentile"));
    for t in log_ticks(y.min, y.max) {
        let py = y.px(t);
        svg.line(f.x0(), py, f.x1(), py, "grid");
        svg.text(f.x0() - 7.0, py + 4.0, "end", "tick", &tick(t));
    }
    for (n, label) in [
        (0.0, "0%"),
        (0.9, "90%"),
        (0.99, "99%"),
        (0.999, "99.9%"),
        (0.9999, "99.99%"),
        (0.99999, "99.999%"),
    ] {
        let n = nines(n);
        if n > right + 1e-9 {
            continue;
        }
        let px = x.px(n);
        svg.line(px, f.y0(), px, f.y1(), "grid-v");
        svg.text(px, f.y0() + 16.0, "middle", "tick", label);
    }
    svg.text(
        (f.x0() + f.x1()) / 2.0,
        f.h - 3.0,
        "middle",
        "axis-title",
        "percentile (log scale of 1/(1−p))",
    );
    svg.line(f.x0(), f.y0(), f.x1(), f.y0(), "axis");
    let mut legend = Vec::new();
    // Tags under the overall line: draw in reverse so "all" is on top.
    for (i, (name, h)) in series.iter().enumerate().rev() {
        let colour = SERIES[i % SERIES.len()];
        let pts: Vec<(f64, f64)> = points(h)
            .into_iter()
            .map(|(n, us)| (x.px(n), y.px(us)))
            .collect();
        let width = if i == 0 { 2.6 } else { 1.6 };
        svg.polyline(&pts, colour, width);
        if let Some((px, py)) = pts.last() {
            svg.titled(&format!("{name}: max {}", fmt_us(h.max())), |s| {
                s.circle(*px, *py, 3.2, colour);
            });
        }
        legend.push((
            colour,
            name.clone(),
            format!(
                "n={} · p50 {} · p99 {} · p99.9 {} · max {}",
                h.len(),
                fmt_us(h.value_at_quantile(0.5)),
                fmt_us(h.value_at_quantile(0.99)),
                fmt_us(h.value_at_quantile(0.999)),
                fmt_us(h.max())
            ),
        ));
    }
    legend.reverse();
    Chart {
        title,
        what,
        svg: svg.finish(),
        legend,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::latency::new_histogram;

    #[test]
    fn a_series_rises_to_its_max_and_stops_where_samples_run_out() {
        let mut h = new_histogram();
        for v in 1..=1000u64 {
            h.record(v * 1000).unwrap();
        }
        let pts = points(&h);
        assert_eq!(pts[0].0, 0.0);
        assert!(
            (pts.last().unwrap().0 - 3.0).abs() < 1e-9,
            "1000 samples: 3 nines"
        );
        assert!(pts.windows(2).all(|w| w[0].1 <= w[1].1), "monotonic");
        assert_eq!(pts.last().unwrap().1, h.max() as f64);
        assert!((nines(0.99) - 2.0).abs() < 1e-9);
    }
}
