//! `report compare BASE NEW`: a run against a baseline, for release gating.
//! Per latency metric (all samples) and statistic (p50, p99, max) the ratio
//! NEW/BASE; a ratio above 1 + tolerance is a regression (exit 3), and a
//! kind of violation NEW has that BASE did not is a new failure (exit 1,
//! which wins, as it does for a run).

use std::fmt::Write;

use crate::check::Guarantee;
use crate::check::rules::METRICS;
use crate::check::verdict::MetricSummary;
use crate::exit::Exit;
use crate::report::summary::{Summary, fmt_us};

/// The statistics compared: the middle, the tail, the worst.
pub const STATS: [&str; 3] = ["p50", "p99", "max"];

/// The default tolerance when none is given: 10 %.
pub const DEFAULT_TOLERANCE: f64 = 0.10;

/// How much worse NEW may be, overall and per metric or metric.stat.
#[derive(Debug, Clone, PartialEq)]
pub struct Tolerance {
    pub default: f64,
    /// (`reconnect` or `reconnect.p99`, fraction); the most specific wins.
    pub overrides: Vec<(String, f64)>,
}

impl Default for Tolerance {
    fn default() -> Self {
        Tolerance {
            default: DEFAULT_TOLERANCE,
            overrides: Vec::new(),
        }
    }
}

impl Tolerance {
    /// `--tolerance` values: `15%` sets the default, `reconnect=25%` one
    /// metric, `reconnect.p99=25%` one statistic. The error names the fix.
    pub fn parse(args: &[String]) -> Result<Tolerance, String> {
        let mut t = Tolerance::default();
        for arg in args {
            match arg.split_once('=') {
                None => t.default = percent(arg)?,
                Some((key, value)) => {
                    let key = key.trim();
                    let known = METRICS.contains(&key)
                        || key
                            .rsplit_once('.')
                            .is_some_and(|(m, s)| METRICS.contains(&m) && STATS.contains(&s));
                    if !known {
                        return Err(format!(
                            "--tolerance {arg}: `{key}` is not a metric or metric.stat; metrics: {}; stats: {}",
                            METRICS.join(", "),
                            STATS.join(", ")
                        ));
                    }
                    let v = percent(value)?;
                    t.overrides.retain(|(k, _)| k != key);
                    t.overrides.push((key.to_owned(), v));
                }
            }
        }
        Ok(t)
    }

    pub fn get(&self, metric: &str, stat: &str) -> f64 {
        let exact = format!("{metric}.{stat}");
        let find = |k: &str| self.overrides.iter().find(|(o, _)| o == k).map(|(_, v)| *v);
        find(&exact)
            .or_else(|| find(metric))
            .unwrap_or(self.default)
    }
}

fn percent(s: &str) -> Result<f64, String> {
    let s = s.trim();
    let n = s
        .strip_suffix('%')
        .and_then(|n| n.trim().parse::<f64>().ok())
        .filter(|n| n.is_finite() && *n >= 0.0)
        .ok_or_else(|| {
            format!("--tolerance: `{s}` is not a percentage; write e.g. 10% or reconnect.p99=25%")
        })?;
    Ok(n / 100.0)
}

/// One compared figure.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub metric: String,
    pub stat: &'static str,
    pub base: u64,
    pub new: u64,
    pub ratio: f64,
    pub tolerance: f64,
}

impl Row {
    pub fn regressed(&self) -> bool {
        self.ratio > 1.0 + self.tolerance + 1e-9
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Comparison {
    pub rows: Vec<Row>,
    /// Metrics with samples in only one of the runs: not compared.
    pub only_base: Vec<String>,
    pub only_new: Vec<String>,
    /// Kinds NEW violated that BASE did not: (kind, count in NEW).
    pub new_violations: Vec<(Guarantee, u64)>,
    pub scenarios: (String, String),
}

pub fn compare(base: &Summary, new: &Summary, tol: &Tolerance) -> Comparison {
    let overall = |s: &Summary| -> Vec<MetricSummary> {
        s.verdict
            .metrics
            .iter()
            .filter(|m| m.tag.is_none() && m.count > 0)
            .cloned()
            .collect()
    };
    let (b, n) = (overall(base), overall(new));
    let mut rows = Vec::new();
    for bm in &b {
        let Some(nm) = n.iter().find(|m| m.metric == bm.metric) else {
            continue;
        };
        for stat in STATS {
            let pick = |m: &MetricSummary| match stat {
                "p50" => m.p50,
                "p99" => m.p99,
                _ => m.max,
            };
            let (bv, nv) = (pick(bm), pick(nm));
            let ratio = match (bv, nv) {
                (0, 0) => 1.0,
                (0, _) => f64::INFINITY,
                _ => nv as f64 / bv as f64,
            };
            rows.push(Row {
                metric: bm.metric.clone(),
                stat,
                base: bv,
                new: nv,
                ratio,
                tolerance: tol.get(&bm.metric, stat),
            });
        }
    }
    let names = |v: &[MetricSummary], other: &[MetricSummary]| -> Vec<String> {
        v.iter()
            .filter(|m| !other.iter().any(|o| o.metric == m.metric))
            .map(|m| m.metric.clone())
            .collect()
    };
    let new_violations = Guarantee::ALL
        .iter()
        .filter(|g| new.verdict.count(**g) > 0 && base.verdict.count(**g) == 0)
        .map(|g| (*g, new.verdict.count(*g)))
        .collect();
    Comparison {
        rows,
        only_base: names(&b, &n),
        only_new: names(&n, &b),
        new_violations,
        scenarios: (base.scenario.clone(), new.scenario.clone()),
    }
}

impl Comparison {
    /// 1 for new kinds of violation, else 3 for a regression, else 0.
    pub fn exit(&self) -> Exit {
        if !self.new_violations.is_empty() {
            Exit::Violation
        } else if self.rows.iter().any(Row::regressed) {
            Exit::Threshold
        } else {
            Exit::Pass
        }
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        if self.scenarios.0 != self.scenarios.1 {
            let _ = writeln!(
                out,
                "note: comparing different scenarios ({} vs {})",
                self.scenarios.0, self.scenarios.1
            );
        }
        let _ = writeln!(
            out,
            "{:<18} {:<4} {:>10} {:>10} {:>7} {:>7}",
            "metric", "stat", "base", "new", "ratio", "limit"
        );
        for r in &self.rows {
            let _ = writeln!(
                out,
                "{:<18} {:<4} {:>10} {:>10} {:>7.3} {:>7.2}{}",
                r.metric,
                r.stat,
                fmt_us(r.base),
                fmt_us(r.new),
                r.ratio,
                1.0 + r.tolerance,
                if r.regressed() { "  WORSE" } else { "" }
            );
        }
        if !self.only_base.is_empty() {
            let _ = writeln!(
                out,
                "not in new (not compared): {}",
                self.only_base.join(", ")
            );
        }
        if !self.only_new.is_empty() {
            let _ = writeln!(
                out,
                "only in new (not compared): {}",
                self.only_new.join(", ")
            );
        }
        for (g, n) in &self.new_violations {
            let _ = writeln!(
                out,
                "new violations: {n} {} (the baseline had none)",
                g.name()
            );
        }
        let worse = self.rows.iter().filter(|r| r.regressed()).count();
        out += &match self.exit() {
            Exit::Pass => format!(
                "PASS: {} figures within tolerance of the baseline",
                self.rows.len()
            ),
            Exit::Violation => "FAIL: new kinds of violation".to_owned(),
            _ => format!(
                "FAIL: {worse} figure{} worse than the baseline beyond tolerance",
                if worse == 1 { "" } else { "s" }
            ),
        };
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tolerance_most_specific_wins() {
        let t = Tolerance::parse(&[
            "20%".into(),
            "reconnect=30%".into(),
            "reconnect.p99=50%".into(),
            "handshake.tcp.max=5%".into(),
        ])
        .unwrap();
        assert!((t.get("reconnect", "p99") - 0.5).abs() < 1e-12);
        assert!((t.get("reconnect", "p50") - 0.3).abs() < 1e-12);
        assert!((t.get("delivery", "p50") - 0.2).abs() < 1e-12);
        assert!((t.get("handshake.tcp", "max") - 0.05).abs() < 1e-12);
        assert_eq!(Tolerance::parse(&[]).unwrap().default, DEFAULT_TOLERANCE);
    }

    #[test]
    fn tolerance_errors_name_the_fix() {
        assert!(
            Tolerance::parse(&["10".into()])
                .unwrap_err()
                .contains("write e.g. 10%")
        );
        assert!(
            Tolerance::parse(&["reconect.p99=5%".into()])
                .unwrap_err()
                .contains("not a metric")
        );
        assert!(Tolerance::parse(&["reconnect.p95=5%".into()]).is_err());
        assert!(Tolerance::parse(&["-5%".into()]).is_err());
    }
}
