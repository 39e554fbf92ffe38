//! summary.json: the run's counts and its first verdict on delivery, and the
//! lines printed at the end of a run.

use std::path::Path;
use std::time::Duration;

use serde::Serialize;

use crate::exit::Exit;
use crate::scenario::Plan;
use crate::user::stats::StatsSnapshot;

#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub run_id: String,
    pub scenario: String,
    pub seed: u64,
    pub target: String,
    pub users: u32,
    pub conversations: u32,
    pub members: u32,
    pub elapsed_seconds: f64,
    pub interrupted: bool,
    /// Every outbox emptied and every acked message reached its audience
    /// before the drain bound.
    pub drained: bool,
    pub counts: StatsSnapshot,
    /// Deliveries the acked messages should have produced but did not.
    pub missing_deliveries: u64,
    /// Owed deliveries in conversations whose membership changed during the
    /// run: not decided here (the checker judges membership windows).
    pub undecided_deliveries: u64,
    pub history_events: u64,
    /// Fault steps the nemesis could not carry out: the run did not test
    /// what the scenario says, so its verdict cannot pass.
    pub fault_failures: Vec<String>,
}

impl Summary {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        run_id: &str,
        plan: &Plan,
        target: &str,
        counts: StatsSnapshot,
        elapsed: Duration,
        history_events: u64,
        drained: bool,
        interrupted: bool,
    ) -> Summary {
        Summary {
            run_id: run_id.to_owned(),
            scenario: plan.name.clone(),
            seed: plan.seed,
            target: target.to_owned(),
            users: plan.users.count,
            conversations: plan.users.conversations,
            members: plan.users.members,
            elapsed_seconds: elapsed.as_secs_f64(),
            interrupted,
            drained,
            missing_deliveries: counts.expected.saturating_sub(counts.delivered),
            undecided_deliveries: 0,
            counts,
            history_events,
            fault_failures: Vec::new(),
        }
    }

    pub fn write(&self, dir: &Path) -> std::io::Result<()> {
        let json = serde_json::to_string_pretty(self)?;
        std::fs::write(dir.join("summary.json"), json + "\n")
    }

    /// The exit code this summary deserves.
    pub fn exit(&self) -> Exit {
        if self.interrupted || !self.fault_failures.is_empty() {
            Exit::Harness
        } else if self.missing_deliveries > 0 || self.counts.outbox > 0 {
            Exit::Violation
        } else {
            Exit::Pass
        }
    }

    /// The lines printed at the end of a run.
    pub fn render(&self) -> String {
        let c = &self.counts;
        let verdict = match self.exit() {
            Exit::Pass => "PASS: every acknowledged message reached every member".to_owned(),
            Exit::Harness if self.interrupted => "INTERRUPTED: partial results".to_owned(),
            Exit::Harness => format!("HARNESS: faults failed: {}", self.fault_failures.join("; ")),
            _ => format!(
                "FAIL: {} deliveries missing, {} messages left in outboxes",
                self.missing_deliveries, c.outbox
            ),
        };
        format!(
            "{scenario} ({users} users, {conv} conversations of {members}) against {target} in {secs:.1}s\n\
             logged in {li}, reconnects {rc}, connect failures {cf}\n\
             sent {sent}, acked {acked}, rejected {rej}, delivered {del}/{exp} (+{dup} duplicates, {und} undecided)\n\
             {verdict}",
            scenario = self.scenario,
            users = self.users,
            conv = self.conversations,
            members = self.members,
            target = self.target,
            secs = self.elapsed_seconds,
            li = c.logged_in,
            rc = c.reconnects,
            cf = c.connect_failures,
            sent = c.sent,
            acked = c.acked,
            rej = c.rejected,
            del = c.delivered,
            exp = c.expected,
            dup = c.duplicates,
            und = self.undecided_deliveries,
        )
    }
}
