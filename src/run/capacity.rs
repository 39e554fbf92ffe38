//! `[capacity]`: step the user count up until a latency threshold breaks,
//! and report the knee (users, message rate) for capacity planning.
//!
//! Each stage is a full run of its own (fresh server, fresh users, its own
//! verdict) in `reports/<run-id>/stage-NN/`, rather than one run that keeps
//! adding users: a stage's figures then describe one steady load, not the
//! tail of the previous stage's backlog, and each stage can be opened,
//! re-checked and compared like any other run.
//!
//! Stages stop at the first one that does not pass:
//!
//! | what happened | result | exit |
//! |---|---|---|
//! | every stage up to `max` passed | no knee up to `max` | 0 |
//! | stage k > 1 missed a threshold | the knee is stage k−1 | 0 |
//! | the first stage missed a threshold | no capacity at all at `[users] count` | 3 |
//! | a stage violated a guarantee | loss (say) under load is a bug, not a capacity | 1 |
//! | a stage's harness saturated or the run was interrupted | the knee is at least the last stage that passed | 4 |

use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use serde::{Deserialize, Serialize};

use super::{RunOptions, run};
use crate::exit::Exit;
use crate::report::summary::Summary;
use crate::scenario::{CapacityPlan, Plan};

/// What one stage measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stage {
    /// 1-based; the folder is `stage-NN`.
    pub stage: usize,
    pub users: u32,
    pub conversations: u32,
    /// Messages per second the users were asked to send (users ÷ send interval).
    pub offered_per_s: f64,
    /// Messages the server accepted, per second of the hold (nobody sends
    /// during a stage's ramp, so every send falls inside it).
    pub accepted_per_s: f64,
    /// Messages delivered to recipients, per second of the hold.
    pub delivered_per_s: f64,
    /// The knee threshold's statistic in this stage (µs); None without samples.
    pub knee_actual_us: Option<f64>,
    pub delivery_p50_us: u64,
    pub delivery_p99_us: u64,
    pub delivery_max_us: u64,
    pub connect_p99_us: u64,
    /// The harness's busiest second, as a share of all cores.
    pub harness_cpu_max: f64,
    /// The harness said its own latencies may be inflated.
    pub harness_suspect: bool,
    /// The stage run's exit code and status (pass, threshold_missed, ...).
    pub exit_code: i32,
    pub status: String,
    /// Why it did not pass, in the summary's words.
    pub headline: String,
    pub dir: String,
}

/// Where the stepping ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Knee {
    /// A stage broke the knee threshold; the one before held.
    Found,
    /// Every stage up to `max` held.
    NotReached,
    /// Even the first stage broke it.
    FirstStageBroke,
    /// A stage violated a delivery guarantee.
    Violation,
    /// A stage could not be judged (harness saturated, fault proxy, Ctrl-C).
    Harness,
}

/// The whole capacity run: capacity.json is its serialization.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CapacityOutcome {
    #[serde(skip)]
    pub dir: PathBuf,
    pub scenario: String,
    /// As written: "delivery.p99 < 250ms".
    pub knee_threshold: String,
    /// The limit in µs.
    pub knee_limit_us: f64,
    pub hold_seconds: f64,
    pub stages: Vec<Stage>,
    pub result: Knee,
    /// The last stage that held (1-based), if any.
    pub knee_stage: Option<usize>,
    pub exit_code: i32,
    /// Why the stepping stopped before a stage ran (a Ctrl-C between
    /// stages, a stage that could not start): the last row is then a stage
    /// that held, and the headline must not present it as the one that
    /// could not be judged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_run: Option<String>,
}

impl CapacityOutcome {
    pub fn exit(&self) -> Exit {
        match self.result {
            Knee::Found | Knee::NotReached => Exit::Pass,
            Knee::FirstStageBroke => Exit::Threshold,
            Knee::Violation => Exit::Violation,
            Knee::Harness => Exit::Harness,
        }
    }

    /// The stage the knee sits at (the last that held).
    pub fn knee(&self) -> Option<&Stage> {
        self.knee_stage.and_then(|k| self.stages.get(k - 1))
    }

    /// The sentence a capacity report leads with.
    pub fn headline(&self) -> String {
        let last = self.stages.last();
        let held = |s: &Stage| {
            format!(
                "{} users ({:.0} msg/s offered, {:.0} accepted, {:.0} deliveries/s)",
                s.users, s.offered_per_s, s.accepted_per_s, s.delivered_per_s
            )
        };
        // A stage whose harness said its latencies may be its own: the knee
        // could be the harness's, so say so rather than blame the server.
        let suspect = |s: &Stage| {
            if s.harness_suspect {
                "; the harness was saturated at that stage, so the knee may be the harness's: spread the users over more machines"
            } else {
                ""
            }
        };
        match (self.result, self.knee(), last) {
            (Knee::Found, Some(k), Some(b)) => format!(
                "KNEE at {}: {} users broke {} ({}{})",
                held(k),
                b.users,
                self.knee_threshold,
                actual(b),
                suspect(b)
            ),
            (Knee::NotReached, Some(k), _) => format!(
                "NO KNEE up to max: {} held {}",
                held(k),
                self.knee_threshold
            ),
            (Knee::FirstStageBroke, _, Some(b)) => format!(
                "FAIL: the first stage ({} users) already broke {} ({}{})",
                b.users,
                self.knee_threshold,
                actual(b),
                suspect(b)
            ),
            (Knee::Violation, k, Some(b)) => format!(
                "FAIL: stage {} ({} users) violated a guarantee: {}{}",
                b.stage,
                b.users,
                b.headline,
                k.map(|k| format!("; the last clean stage was {}", held(k)))
                    .unwrap_or_default()
            ),
            (_, k, _) if self.not_run.is_some() => format!(
                "HARNESS: {}; the knee is at least {}",
                self.not_run.as_deref().unwrap_or_default(),
                k.map_or("below the first stage".into(), held)
            ),
            (_, k, b) => format!(
                "HARNESS: stage {} could not be judged ({}); the knee is at least {}",
                b.map_or(0, |b| b.stage),
                b.map_or("no stage ran".into(), |b| b.headline.clone()),
                k.map_or("below the first stage".into(), held)
            ),
        }
    }
}

fn actual(s: &Stage) -> String {
    s.knee_actual_us.map_or("no samples".into(), |a| {
        format!(
            "actual {}",
            crate::report::summary::fmt_us(a.max(0.0) as u64)
        )
    })
}

/// The plan of one stage: `users` users, conversations scaled with them so
/// conversation size (and so the fan-out per message) stays the same.
pub fn stage_plan(plan: &Plan, cap: &CapacityPlan, users: u32) -> Plan {
    let mut p = plan.clone();
    let (n0, c0) = (plan.users.count.max(1), plan.users.conversations);
    p.users.count = users;
    p.users.conversations = ((users as u64 * c0 as u64).div_ceil(n0 as u64)).max(1) as u32;
    p.users.members = plan.users.members.min(users);
    p.duration = cap.hold;
    p.cohorts = vec![crate::scenario::Cohort {
        name: "rest".into(),
        first: 0,
        count: users,
    }];
    p.capacity = None;
    p.sends_wait_for_ramp = true;
    let (key, value) = &cap.knee;
    // Checked when the scenario was parsed.
    let _ = p.checks.set(key, value);
    p
}

/// Runs the stages in order until one does not pass.
pub async fn run_capacity(
    plan: Plan,
    opts: RunOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<CapacityOutcome> {
    let cap = plan
        .capacity
        .clone()
        .context("run_capacity needs a [capacity] plan")?;
    let run_id = format!(
        "{}-{}-{:04x}",
        plan.name,
        chrono::Utc::now().format("%Y%m%d-%H%M%S"),
        rand::random::<u16>()
    );
    let dir = opts.reports_dir.join(&run_id);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    });

    let mut limit = crate::check::Rules::default();
    let _ = limit.set(&cap.knee.0, &cap.knee.1);
    let threshold = limit.thresholds.pop().context("the knee threshold")?;
    let mut out = CapacityOutcome {
        dir: dir.clone(),
        scenario: plan.name.clone(),
        knee_threshold: format!("{} {}", cap.knee.0, cap.knee.1),
        knee_limit_us: threshold.limit,
        hold_seconds: cap.hold.as_secs_f64(),
        stages: Vec::new(),
        result: Knee::NotReached,
        knee_stage: None,
        exit_code: 0,
        not_run: None,
    };
    let stages = cap.stages();
    if !opts.quiet {
        eprintln!(
            "capacity: {} stages of {:?} users, at most {:.0?} in all",
            stages.len(),
            stages,
            planned(&plan, &cap)
        );
    }
    for (i, &users) in stages.iter().enumerate() {
        if *stop_rx.borrow() {
            out.result = Knee::Harness;
            out.not_run = Some(format!(
                "interrupted before stage {}/{} ({users} users)",
                i + 1,
                stages.len()
            ));
            break;
        }
        if !opts.quiet {
            eprintln!(
                "capacity: stage {}/{}: {users} users for {:?}",
                i + 1,
                stages.len(),
                cap.hold
            );
        }
        let stage = stage_plan(&plan, &cap, users);
        let stage_opts = RunOptions {
            reports_dir: dir.clone(),
            stats: None,
            ..opts.clone()
        };
        let mut stop = stop_rx.clone();
        let outcome = match run(stage.clone(), stage_opts, async move {
            let _ = stop.wait_for(|s| *s).await;
        })
        .await
        {
            Ok(outcome) => outcome,
            // The stages that ran keep their rows (capacity.csv/.html); the
            // error names the stage that could not run.
            Err(e) => {
                out.result = Knee::Harness;
                out.not_run = Some(format!(
                    "stage {}/{} ({users} users) could not run ({e})",
                    i + 1,
                    stages.len()
                ));
                out.exit_code = out.exit().code();
                crate::report::capacity::write_all(&dir, &out)?;
                return Err(e.context(format!(
                    "capacity stage {}/{} ({users} users) could not run; the stages before it are in {}",
                    i + 1,
                    stages.len(),
                    dir.display()
                )));
            }
        };
        let name = format!("stage-{:02}", i + 1);
        let stage_dir = dir.join(&name);
        std::fs::rename(&outcome.dir, &stage_dir)
            .with_context(|| format!("naming {}", stage_dir.display()))?;
        let row = measure(i + 1, &stage, &outcome.summary, &threshold.name(), name);
        let exit = outcome.exit;
        if !opts.quiet {
            eprintln!(
                "capacity: stage {}: {} ({})",
                i + 1,
                outcome.summary.status,
                actual(&row)
            );
        }
        out.stages.push(row);
        match exit {
            Exit::Pass => {
                out.knee_stage = Some(i + 1);
                out.result = Knee::NotReached;
            }
            Exit::Threshold if i == 0 => {
                out.result = Knee::FirstStageBroke;
                break;
            }
            Exit::Threshold => {
                out.result = Knee::Found;
                break;
            }
            Exit::Violation => {
                out.result = Knee::Violation;
                break;
            }
            Exit::Harness | Exit::BadInput => {
                out.result = Knee::Harness;
                break;
            }
        }
    }
    out.exit_code = out.exit().code();
    crate::report::capacity::write_all(&dir, &out)?;
    Ok(out)
}

/// One stage's row, from its summary.
fn measure(stage: usize, plan: &Plan, s: &Summary, knee: &str, dir: String) -> Stage {
    let v = &s.verdict;
    let chat = plan.duration.as_secs_f64().max(0.001);
    let metric = |name: &str| {
        v.metrics
            .iter()
            .find(|m| m.tag.is_none() && m.metric == name)
    };
    let delivery = metric("delivery");
    Stage {
        stage,
        users: plan.users.count,
        conversations: plan.users.conversations,
        offered_per_s: plan
            .users
            .send_interval
            .filter(|i| !i.is_zero())
            .map_or(0.0, |i| plan.users.count as f64 / i.as_secs_f64()),
        accepted_per_s: v.counts.accepted as f64 / chat,
        delivered_per_s: v.counts.delivered as f64 / chat,
        knee_actual_us: v
            .thresholds
            .iter()
            .find(|t| t.name == knee)
            .and_then(|t| t.actual),
        delivery_p50_us: delivery.map_or(0, |m| m.p50),
        delivery_p99_us: delivery.map_or(0, |m| m.p99),
        delivery_max_us: delivery.map_or(0, |m| m.max),
        connect_p99_us: metric("handshake.connect").map_or(0, |m| m.p99),
        harness_cpu_max: v.harness.cpu_max,
        harness_suspect: v.harness.suspect,
        exit_code: s.exit_code,
        status: s.status.clone(),
        headline: s.render().lines().last().unwrap_or_default().to_owned(),
        dir,
    }
}

/// How long a capacity plan takes at most, for whoever is deciding whether
/// to wait for it: per stage, the ramp, the hold and the drain bound.
fn planned(plan: &Plan, cap: &CapacityPlan) -> Duration {
    cap.stages()
        .iter()
        .map(|&n| {
            Duration::from_secs_f64(n as f64 / plan.ramp_per_sec.max(0.001)) + cap.hold + plan.drain
        })
        .sum()
}
