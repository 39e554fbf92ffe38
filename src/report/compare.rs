//! `report compare BASE NEW`: a run against a baseline, for release gating.
//! Per latency metric (all samples) and statistic (p50, p99, max) the ratio
//! NEW/BASE; a ratio above 1 + tolerance that is also more than the floor
//! (1 ms unless told) is a regression (exit 3), and a kind of violation NEW
//! has that BASE did not is a new failure (exit 1, which wins, as it does for
//! a run). A run that was interrupted, or whose harness was too saturated to
//! be judged on latency, has no figures to gate on (exit 4), in the order a
//! run's own exit code follows.
//!
//! The handshake phases (`handshake.*`) are shown and not judged unless a
//! `--tolerance` names them: they split one connect into microsecond-scale
//! parts that two runs of the same build differ in by 2× (and a SYN the
//! kernel dropped during a reconnect storm makes one p99 a second), so
//! gating on them by default failed identical builds. The user-facing
//! figures (`reconnect`, `recovery`, `delivery`…) are judged.

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

/// The metrics shown but judged only when a tolerance names them.
const INFORMATIONAL: &str = "handshake";

/// Whether `metric` is one of the informational handshake phases.
fn informational(metric: &str) -> bool {
    metric
        .strip_prefix(INFORMATIONAL)
        .is_some_and(|rest| rest.starts_with('.'))
}

/// How much worse NEW may be, overall and per metric or metric.stat.
#[derive(Debug, Clone, PartialEq)]
pub struct Tolerance {
    pub default: f64,
    /// (`reconnect` or `reconnect.p99`, or `handshake` for every phase,
    /// fraction); the most specific wins.
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
    /// metric, `reconnect.p99=25%` one statistic, `handshake=50%` every
    /// handshake phase (and so judges them). The error names the fix.
    pub fn parse(args: &[String]) -> Result<Tolerance, String> {
        let mut t = Tolerance::default();
        for arg in args {
            match arg.split_once('=') {
                None => t.default = percent(arg)?,
                Some((key, value)) => {
                    let key = key.trim();
                    let known = METRICS.contains(&key)
                        || key == INFORMATIONAL
                        || key
                            .rsplit_once('.')
                            .is_some_and(|(m, s)| METRICS.contains(&m) && STATS.contains(&s));
                    if !known {
                        return Err(format!(
                            "--tolerance {arg}: `{key}` is not a metric or metric.stat; metrics: {} (or handshake for all its phases); stats: {}",
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
        self.named(metric, stat).unwrap_or(self.default)
    }

    /// The tolerance a `--tolerance` gave this figure by name, if any.
    fn named(&self, metric: &str, stat: &str) -> Option<f64> {
        let exact = format!("{metric}.{stat}");
        let find = |k: &str| self.overrides.iter().find(|(o, _)| o == k).map(|(_, v)| *v);
        find(&exact)
            .or_else(|| find(metric))
            .or_else(|| informational(metric).then(|| find(INFORMATIONAL)).flatten())
    }

    /// Whether a worse figure fails the comparison: every figure, except
    /// the handshake phases unless a tolerance names them.
    pub fn judges(&self, metric: &str, stat: &str) -> bool {
        !informational(metric) || self.named(metric, stat).is_some()
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
    /// False for a figure shown for information only (see the module doc).
    pub judged: bool,
    /// How much worse (µs) it may be whatever the ratio.
    pub floor: u64,
}

impl Row {
    pub fn regressed(&self) -> bool {
        self.judged
            && self.ratio > 1.0 + self.tolerance + 1e-9
            && self.new.saturating_sub(self.base) > self.floor
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
    /// Runs that were interrupted (their figures cover part of a run), or
    /// whose failed fault cut users off (what they missed is not the server's).
    pub interrupted: Vec<String>,
    /// Runs whose harness was too saturated to judge latency.
    pub saturated: Vec<String>,
}

pub fn compare(base: &Summary, new: &Summary, tol: &Tolerance, floor_us: u64) -> Comparison {
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
                judged: tol.judges(&bm.metric, stat),
                floor: floor_us,
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
    let (mut interrupted, mut saturated) = (Vec::new(), Vec::new());
    for (which, s) in [("BASE", base), ("NEW", new)] {
        if s.interrupted {
            interrupted.push(format!(
                "{which} ({}) was interrupted: its figures cover only part of the run",
                s.run_id
            ));
        }
        if s.faults_cut_users_off {
            // Gated like an interrupted run: neither its figures nor its
            // violations are the server's alone.
            interrupted.push(format!(
                "{which} ({}): a failed fault left users cut off by the harness ({})",
                s.run_id,
                s.fault_failures.join("; ")
            ));
        }
        if s.verdict.harness.severe {
            saturated.push(format!(
                "{which} ({}): the harness was too saturated to judge latency ({})",
                s.run_id,
                s.verdict.harness.reasons.join("; ")
            ));
        }
    }
    Comparison {
        rows,
        only_base: names(&b, &n),
        only_new: names(&n, &b),
        new_violations,
        scenarios: (base.scenario.clone(), new.scenario.clone()),
        interrupted,
        saturated,
    }
}

/// A ratio in seven columns, however large.
fn fmt_ratio(r: f64) -> String {
    if !r.is_finite() {
        "inf".to_owned()
    } else if r < 10.0 {
        format!("{r:.3}")
    } else if r < 1_000.0 {
        format!("{r:.1}")
    } else {
        format!("{r:.0}")
    }
}

impl Comparison {
    /// The order a run's own exit code follows (README, Exit codes): an
    /// interrupted run 4; else new kinds of violation 1 (their evidence
    /// stands); else a saturated harness 4; else a regression 3; else 0.
    pub fn exit(&self) -> Exit {
        if !self.interrupted.is_empty() {
            Exit::Harness
        } else if !self.new_violations.is_empty() {
            Exit::Violation
        } else if !self.saturated.is_empty() {
            Exit::Harness
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
            let limit = if r.judged {
                format!("{:.2}", 1.0 + r.tolerance)
            } else {
                "info".to_owned()
            };
            let _ = writeln!(
                out,
                "{:<18} {:<4} {:>10} {:>10} {:>7} {:>7}{}",
                r.metric,
                r.stat,
                fmt_us(r.base),
                fmt_us(r.new),
                fmt_ratio(r.ratio),
                limit,
                if r.regressed() { "  WORSE" } else { "" }
            );
        }
        if self.rows.iter().any(|r| !r.judged) {
            let _ = writeln!(
                out,
                "info: the handshake phases are shown, not judged (--tolerance handshake=PCT judges them)"
            );
        }
        if let Some(floor) = self.rows.first().map(|r| r.floor).filter(|f| *f > 0) {
            let _ = writeln!(
                out,
                "a figure at most {} worse is within tolerance whatever its ratio (--floor)",
                fmt_us(floor)
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
        for why in self.interrupted.iter().chain(&self.saturated) {
            let _ = writeln!(out, "cannot gate: {why}");
        }
        let worse = self.rows.iter().filter(|r| r.regressed()).count();
        out += &match self.exit() {
            Exit::Pass => format!(
                "PASS: {} figures within tolerance of the baseline",
                self.rows.iter().filter(|r| r.judged).count()
            ),
            Exit::Violation => "FAIL: new kinds of violation".to_owned(),
            Exit::Harness => {
                "NOT COMPARED: a run's latencies cannot be gated on (run it again to the end)"
                    .to_owned()
            }
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
    fn handshake_phases_are_judged_only_when_a_tolerance_names_them() {
        let none = Tolerance::parse(&[]).unwrap();
        assert!(none.judges("reconnect", "p99"));
        assert!(!none.judges("handshake.tcp", "p99"));
        let all = Tolerance::parse(&["handshake=50%".into()]).unwrap();
        assert!(all.judges("handshake.open", "p50"));
        assert!((all.get("handshake.open", "p50") - 0.5).abs() < 1e-12);
        let one = Tolerance::parse(&["handshake.tcp.p99=20%".into()]).unwrap();
        assert!(one.judges("handshake.tcp", "p99"));
        assert!(!one.judges("handshake.tcp", "p50"));
        assert!(!one.judges("handshake.open", "p99"));
        // A default percentage alone does not name them.
        assert!(
            !Tolerance::parse(&["30%".into()])
                .unwrap()
                .judges("handshake.tcp", "max")
        );
    }

    #[test]
    fn a_regression_is_beyond_both_the_ratio_and_the_floor() {
        let row = |base, new, floor| Row {
            metric: "delivery".into(),
            stat: "p50",
            base,
            new,
            ratio: new as f64 / base as f64,
            tolerance: 0.10,
            judged: true,
            floor,
        };
        assert!(!row(4, 7, 1_000).regressed(), "3 µs worse: noise");
        assert!(row(4, 7, 0).regressed(), "no floor: the ratio alone");
        assert!(row(2_000, 3_100, 1_000).regressed());
        assert!(!row(2_000, 2_150, 0).regressed(), "within 10 %");
        assert!(
            !Row {
                judged: false,
                ..row(1, 1_000_000, 0)
            }
            .regressed()
        );
    }

    #[test]
    fn ratios_fit_their_column() {
        assert_eq!(fmt_ratio(1.2), "1.200");
        assert_eq!(fmt_ratio(12.345), "12.3");
        assert_eq!(fmt_ratio(1985.365), "1985");
        assert_eq!(fmt_ratio(f64::INFINITY), "inf");
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
