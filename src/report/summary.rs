//! summary.json: the run's facts and the checker's verdict in one document
//! (its JSON Schema is schemas/summary.schema.json), the exit code it
//! deserves, and the lines printed at the end of a run.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::check::Verdict;
use crate::exit::Exit;
use crate::user::stats::StatsSnapshot;

/// Bumped when a field changes meaning, so `report show`/`compare` refuse a
/// summary they would misread.
pub const SUMMARY_VERSION: u32 = 1;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Summary {
    pub summary_version: u32,
    pub run_id: String,
    pub scenario: String,
    pub seed: u64,
    pub target: String,
    pub users: u32,
    pub conversations: u32,
    pub members: u32,
    /// Wall-clock start, RFC 3339.
    pub started_at: String,
    pub elapsed_seconds: f64,
    /// Ctrl-C ended the run early: what is here is partial.
    pub interrupted: bool,
    /// Every outbox emptied and every acked message reached its audience
    /// before the drain bound (as the users counted it live).
    pub drained: bool,
    /// Fault steps the nemesis could not carry out: the run did not test
    /// what the scenario says, so it cannot pass.
    pub fault_failures: Vec<String>,
    /// One of them left users cut off by the harness itself (a toxic that
    /// could not be set or removed, a server restart that did not
    /// complete): violations may be the harness's doing, so they do not
    /// fail the server (exit 4, not 1).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub faults_cut_users_off: bool,
    /// The users' live counters at the end (the checker's counts are in
    /// `verdict.counts`, decided from the history alone).
    pub live: StatsSnapshot,
    /// Which client library drove the users, and what it lets us see only in part.
    #[serde(default)]
    pub driver: DriverReport,
    pub history_events: u64,
    pub verdict: Verdict,
    /// pass, violated, threshold_missed, harness, interrupted.
    pub status: String,
    pub exit_code: i32,
}

/// The driver of a run (`[users] driver`) and the figures it can only
/// partly observe, so nobody reads them as complete.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct DriverReport {
    pub name: String,
    pub partial: Vec<PartialFigure>,
}

impl Default for DriverReport {
    /// Summaries from before drivers: all native.
    fn default() -> Self {
        DriverReport {
            name: "native".into(),
            partial: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PartialFigure {
    pub figure: String,
    pub why: String,
}

impl Summary {
    /// Fills `status` and `exit_code` from the rest.
    pub fn decide(&mut self) {
        let exit = self.compute_exit();
        self.exit_code = exit.code();
        self.status = match exit {
            Exit::Pass => "pass",
            Exit::Violation => "violated",
            Exit::Threshold => "threshold_missed",
            Exit::Harness if self.interrupted => "interrupted",
            _ => "harness",
        }
        .to_owned();
    }

    /// Interrupted runs are partial (4), and so is a run whose own failed
    /// fault cut users off (4): what they missed is not the server's
    /// doing. Otherwise a violated guarantee (1) comes first: its evidence
    /// stands even if the harness struggled; then a harness that could not
    /// do its job (4), since its latencies cannot be trusted; then a missed
    /// threshold (3).
    fn compute_exit(&self) -> Exit {
        let v = &self.verdict;
        if self.interrupted || self.faults_cut_users_off {
            Exit::Harness
        } else if v.violated() {
            Exit::Violation
        } else if !self.fault_failures.is_empty() || v.harness.severe {
            Exit::Harness
        } else if v.thresholds_missed() {
            Exit::Threshold
        } else {
            Exit::Pass
        }
    }

    pub fn exit(&self) -> Exit {
        self.compute_exit()
    }

    pub fn write(&self, dir: &Path) -> std::io::Result<()> {
        let json = serde_json::to_string_pretty(self)?;
        std::fs::write(dir.join("summary.json"), json + "\n")
    }

    pub fn read(dir: &Path) -> anyhow::Result<Summary> {
        use anyhow::Context;
        let path = dir.join("summary.json");
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        let value: serde_json::Value = serde_json::from_str(&text)
            .with_context(|| format!("{} is not JSON", path.display()))?;
        let version = value.get("summary_version").and_then(|v| v.as_u64());
        if version != Some(SUMMARY_VERSION as u64) {
            anyhow::bail!(
                "{} has summary_version {}; this reconnoiter reads version {SUMMARY_VERSION}",
                path.display(),
                version.map_or("missing".to_owned(), |v| v.to_string())
            );
        }
        serde_json::from_value(value).with_context(|| format!("reading {}", path.display()))
    }

    /// The lines printed at the end of a run.
    pub fn render(&self) -> String {
        let v = &self.verdict;
        let c = &v.counts;
        let mut out = format!(
            "{scenario} ({users} users, {conv} conversations of {members}) against {target} in {secs:.1}s\n\
             connects {connects} (reconnects {rc}, failures {cf}), recovered {recovered}\n\
             sent {sent}, accepted {acc}, rejected {rej}, delivered {del}\n",
            scenario = self.scenario,
            users = self.users,
            conv = self.conversations,
            members = self.members,
            target = self.target,
            secs = self.elapsed_seconds,
            connects = c.connects,
            rc = c.reconnects,
            cf = c.connect_failures,
            recovered = c.recovered,
            sent = c.sent,
            acc = c.accepted,
            rej = c.rejected,
            del = c.deliveries(),
        );
        if c.outlived_blackholes > 0 {
            out += &format!(
                "{} connections outlived a blackhole (the heartbeat did not close them in time): closed at the heal, resynced\n",
                c.outlived_blackholes
            );
        }
        if self.driver.name != "native" || self.live.stuck > 0 {
            out += &format!(
                "driver {}: {} stuck; partial figures: {}\n",
                self.driver.name,
                self.live.stuck,
                self.driver
                    .partial
                    .iter()
                    .map(|p| p.figure.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        for m in v.metrics.iter().filter(|m| m.tag.is_none()) {
            out += &format!(
                "{:<18} n={:<6} p50 {:>9}  p99 {:>9}  max {:>9}\n",
                m.metric,
                m.count,
                fmt_us(m.p50),
                fmt_us(m.p99),
                fmt_us(m.max)
            );
        }
        for g in &v.guarantees {
            let mark = match (g.violations, g.passed) {
                (0, _) => "ok  ",
                (_, true) => "allowed",
                _ => "FAIL",
            };
            out += &format!(
                "  {mark} {:<10} {} violations\n",
                g.guarantee.name(),
                g.violations
            );
        }
        for t in &v.thresholds {
            out += &format!(
                "  {} {} {} {} (actual {})\n",
                if t.passed { "ok  " } else { "MISS" },
                t.name,
                t.op,
                fmt_limit(&t.name, t.limit),
                t.actual
                    .map_or("no samples".into(), |a| fmt_limit(&t.name, a))
            );
        }
        let e = &v.excluded;
        let undecided = e.membership_in_flight + e.auth_in_flight + e.interrupted_pairs;
        if undecided + e.forfeited_by_removal > 0 {
            out += &format!(
                "  not decided: {} membership in flight, {} auth in flight, {} interrupted; {} forfeited by removal\n",
                e.membership_in_flight,
                e.auth_in_flight,
                e.interrupted_pairs,
                e.forfeited_by_removal
            );
        }
        if v.harness.suspect {
            out += &format!("  harness saturated: {}\n", v.harness.reasons.join("; "));
        }
        for viol in v.violations.iter().take(5) {
            out += &format!("  {}: {}\n", viol.kind.name(), viol.explanation);
        }
        out += &self.headline();
        out
    }

    /// The one-line outcome (`PASS`, `FAIL: 3 loss`, `HARNESS: ...`) that
    /// every report leads with, so the terminal, summary.md, junit.xml and
    /// report.html say the same thing in the same words.
    pub fn headline(&self) -> String {
        let v = &self.verdict;
        match self.exit() {
            Exit::Pass => "PASS".to_owned(),
            Exit::Harness if self.interrupted => "INTERRUPTED: partial results".to_owned(),
            Exit::Harness if !self.fault_failures.is_empty() => {
                let found: u64 = v.guarantees.iter().map(|g| g.violations).sum();
                let untrusted = if v.violated() && self.faults_cut_users_off {
                    format!(
                        " ({found} violations found are not trusted: the failed fault left users cut off by the harness, not the server)"
                    )
                } else {
                    String::new()
                };
                format!(
                    "HARNESS: faults failed: {}{untrusted}",
                    self.fault_failures.join("; ")
                )
            }
            Exit::Harness => {
                "HARNESS: the harness was saturated; latencies cannot be trusted".into()
            }
            Exit::Violation => format!(
                "FAIL: {}",
                // Only what failed: allowed kinds are not why the run failed.
                v.guarantees
                    .iter()
                    .filter(|g| !g.passed)
                    .map(|g| format!("{} {}", g.violations, g.guarantee.name()))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Exit::Threshold => "FAIL: thresholds missed".into(),
            Exit::BadInput => "BAD INPUT".into(),
        }
    }
}

/// µs as a person reads it: 850µs, 12.3ms, 4.20s.
pub fn fmt_us(us: u64) -> String {
    if us < 1_000 {
        format!("{us}µs")
    } else if us < 1_000_000 {
        format!("{:.1}ms", us as f64 / 1e3)
    } else {
        format!("{:.2}s", us as f64 / 1e6)
    }
}

/// A threshold's limit or actual value in its unit: a count, or a duration.
pub fn fmt_limit(name: &str, v: f64) -> String {
    if name.ends_with(".count") {
        format!("{v}")
    } else {
        fmt_us(v as u64)
    }
}
