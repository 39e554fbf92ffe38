//! The nemesis: executes the scenario's fault timeline (Jepsen's word for
//! the thing that breaks the system on schedule). Every step is recorded
//! twice, when it is asked for (`begin`) and when it took effect (`done`) or
//! failed, so the checker can tell what users saw from what was done to them,
//! and treat the moments in between as undecidable rather than guess.

pub mod admin;
pub mod proxies;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, anyhow};
use tokio::sync::watch;

use crate::history::{EventKind, Recorder};
use crate::scenario::{Action, NetEffect, OfflineMode, RestartMode, Step};
use crate::target::ManagedServer;
use crate::user::blackhole::Blackholes;
use admin::Admin;
use proxies::Proxies;

/// The longest one fault step may take (a restart waits for health).
const STEP_BOUND: Duration = Duration::from_secs(60);

/// The harness's own events carry this user index.
pub const HARNESS: u32 = u32::MAX;

/// A fault step the nemesis could not carry out.
#[derive(Debug)]
pub struct Failure {
    /// "fault N Kind at T: why", for the summary and the logs.
    pub text: String,
    /// Whether it leaves users' path in a state the harness cannot vouch
    /// for: a toxic that could not be set or removed (a dead proxy), a
    /// server restart that did not complete. Loss after it may be the
    /// harness's doing, so the run cannot fail the server on it.
    pub cuts_users_off: bool,
}

pub struct Nemesis {
    pub proxies: Option<Arc<Proxies>>,
    /// The embedded server, shared with the run (which stops it at the end).
    pub server: Option<Arc<Mutex<ManagedServer>>>,
    /// For an external server: `sh -c` this to restart it.
    pub restart_command: Option<String>,
    pub admin: Admin,
    /// cohort → "tab closed" signal the cohort's users watch.
    pub tabs: HashMap<String, watch::Sender<bool>>,
    /// cohort → its blackholes, so users close a connection that outlives
    /// one (`user::blackhole`).
    pub blackholes: HashMap<String, watch::Sender<Blackholes>>,
    pub recorder: Recorder,
    /// Conversation sizes the users' delivery accounting uses; membership
    /// faults keep it true.
    pub audience: Arc<crate::user::ctx::Audience>,
    /// When sharded, only the leading shard carries out server-wide faults.
    pub shard: Option<crate::history::Shard>,
    /// Memberships this run took away and has not given back: a server the
    /// run did not start gets them back once the users have stopped, so the
    /// next run against it finds the seed's roster.
    pub removed: Mutex<Vec<(String, u32)>>,
}

impl Nemesis {
    /// Runs the steps at `start + step.at` until done or `stop` turns true;
    /// then heals whatever is still broken. Returns the steps that failed.
    pub async fn run(
        &self,
        steps: Vec<Step>,
        start: tokio::time::Instant,
        mut stop: watch::Receiver<bool>,
    ) -> Vec<Failure> {
        let mut failures = Vec::new();
        for step in steps {
            tokio::select! {
                _ = tokio::time::sleep_until(start + step.at) => {}
                _ = stop.wait_for(|s| *s) => break,
            }
            let action = step.action.clone();
            let record = |phase: &str, error: Option<String>| {
                self.recorder.record(
                    HARNESS,
                    EventKind::Fault {
                        fault: step.fault,
                        kind: step.kind,
                        phase: phase.into(),
                        action: action.clone(),
                        error,
                    },
                );
            };
            let server_wide = matches!(
                step.action,
                Action::ServerDown { .. }
                    | Action::ServerUp
                    | Action::Revoke { .. }
                    | Action::RemoveMembers { .. }
                    | Action::ReaddMembers { .. }
            );
            if server_wide && self.shard.is_some_and(|s| !s.leads()) {
                // Shard 0 does it; this history only says it was due now,
                // so this shard's own verdict treats it as in flight.
                record("remote", None);
                continue;
            }
            record("begin", None);
            // A step that hangs (a server that accepts and never answers)
            // must not hold the run: bounded, and a stop cuts it short.
            let outcome = tokio::select! {
                r = tokio::time::timeout(STEP_BOUND, self.execute(&step.action)) => {
                    r.unwrap_or_else(|_| Err(anyhow!("did not finish within {STEP_BOUND:?}")))
                }
                _ = stop.wait_for(|s| *s) => Err(anyhow!("cut short: the run is stopping")),
            };
            match outcome {
                Ok(()) => record("done", None),
                Err(e) => {
                    let msg = format!("{e:#}");
                    tracing::warn!("fault {} ({:?}) failed: {msg}", step.fault, step.kind);
                    failures.push(Failure {
                        text: format!(
                            "fault {} {:?} at {:?}: {msg}",
                            step.fault, step.kind, step.at
                        ),
                        cuts_users_off: matches!(
                            step.action,
                            Action::NetStart { .. }
                                | Action::NetHeal { .. }
                                | Action::ServerDown { .. }
                                | Action::ServerUp
                        ),
                    });
                    record("failed", Some(msg));
                }
            }
        }
        failures.extend(self.heal_all().await);
        failures
    }

    async fn execute(&self, action: &Action) -> anyhow::Result<()> {
        match action {
            Action::NetStart { cohort, effect } => {
                if is_blackhole(effect)
                    && let Some(tx) = self.blackholes.get(cohort)
                {
                    Blackholes::begin(tx);
                }
                self.proxies()?.apply(cohort, effect).await
            }
            Action::NetHeal { cohort, .. } => self.heal(cohort).await,
            Action::TabClose { cohort } => self.tab(cohort, true),
            Action::TabOpen { cohort } => self.tab(cohort, false),
            Action::ServerDown { mode } => self.server_down(*mode).await,
            Action::ServerUp => self.server_up().await,
            Action::Revoke { users } => self.admin.revoke(users).await,
            Action::RemoveMembers { pairs } => {
                let done = self.admin.remove(pairs, &self.removed).await;
                for (c, _) in pairs.iter().take(done.count) {
                    self.audience.adjust(c, -1);
                }
                done.result
            }
            Action::ReaddMembers { pairs } => {
                let done = self.admin.readd(pairs).await;
                for (c, _) in pairs.iter().take(done.count) {
                    self.audience.adjust(c, 1);
                }
                let back = &pairs[..done.count];
                self.removed_now().retain(|p| !back.contains(p));
                done.result
            }
        }
    }

    fn removed_now(&self) -> std::sync::MutexGuard<'_, Vec<(String, u32)>> {
        self.removed.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Re-adds the memberships removed and not re-added. Only once the
    /// users have stopped: a re-add while they still receive would be a
    /// membership change the history never saw. A failure is a warning: the
    /// verdict is made, only the next run against the server is spoiled.
    pub async fn give_back_memberships(&self) {
        let pairs = std::mem::take(&mut *self.removed_now());
        if pairs.is_empty() {
            return;
        }
        if let Err(e) = self.admin.readd(&pairs).await.result {
            eprintln!(
                "warning: {} memberships this run removed could not be given back ({e:#}); \
                 the next run against this server will find them missing",
                pairs.len()
            );
        }
    }

    /// Heals a cohort's proxy; then its users learn a blackhole is over.
    async fn heal(&self, cohort: &str) -> anyhow::Result<()> {
        self.proxies()?.heal(cohort).await?;
        if let Some(tx) = self.blackholes.get(cohort) {
            Blackholes::heal(tx);
        }
        Ok(())
    }

    fn proxies(&self) -> anyhow::Result<&Proxies> {
        self.proxies.as_deref().ok_or_else(|| {
            anyhow!("network faults need the cohorts' proxies, which are not running")
        })
    }

    fn tab(&self, cohort: &str, closed: bool) -> anyhow::Result<()> {
        let tx = self
            .tabs
            .get(cohort)
            .ok_or_else(|| anyhow!("no cohort {cohort}"))?;
        tx.send_replace(closed);
        Ok(())
    }

    async fn server_down(&self, mode: RestartMode) -> anyhow::Result<()> {
        match (&self.server, &self.restart_command) {
            (Some(server), _) => {
                let server = server.clone();
                tokio::task::spawn_blocking(move || {
                    let mut s = server.lock().unwrap_or_else(|p| p.into_inner());
                    match mode {
                        RestartMode::Crash => s.kill(),
                        RestartMode::Graceful => s.stop(Duration::from_secs(10)),
                    }
                })
                .await?
            }
            // An external server restarts in one command, at the "up" step.
            (None, Some(_)) => Ok(()),
            (None, None) => Err(anyhow!("no managed server and no restart_command")),
        }
    }

    async fn server_up(&self) -> anyhow::Result<()> {
        match (&self.server, &self.restart_command) {
            (Some(server), _) => {
                let server = server.clone();
                tokio::task::spawn_blocking(move || {
                    server.lock().unwrap_or_else(|p| p.into_inner()).restart()
                })
                .await??;
            }
            (None, Some(cmd)) => {
                let status = tokio::process::Command::new("sh")
                    .args(["-c", cmd])
                    .status()
                    .await
                    .context("restart_command")?;
                anyhow::ensure!(status.success(), "restart_command exited with {status}");
            }
            (None, None) => return Err(anyhow!("no managed server and no restart_command")),
        }
        self.admin.wait_healthy(Duration::from_secs(20)).await
    }

    /// Leaves nothing broken: proxies healed, tabs open, the server up.
    /// Heals what is still broken; what could not be healed leaves users
    /// cut off by the harness for the drain, so it is a failure too.
    pub async fn heal_all(&self) -> Vec<Failure> {
        let mut failures = Vec::new();
        if self.proxies.is_some() {
            for cohort in self.tabs.keys() {
                if let Err(e) = self.heal(cohort).await {
                    failures.push(Failure {
                        text: format!("healing cohort {cohort} at the end: {e:#}"),
                        cuts_users_off: true,
                    });
                }
            }
        }
        for tx in self.tabs.values() {
            tx.send_replace(false);
        }
        if let Some(server) = &self.server {
            let server = server.clone();
            let restarted = tokio::task::spawn_blocking(move || {
                let mut s = server.lock().unwrap_or_else(|p| p.into_inner());
                if s.is_running() { Ok(()) } else { s.restart() }
            })
            .await;
            if let Ok(Err(e)) = restarted {
                failures.push(Failure {
                    text: format!("bringing the server back at the end: {e:#}"),
                    cuts_users_off: true,
                });
            }
        }
        failures
    }
}

fn is_blackhole(effect: &NetEffect) -> bool {
    matches!(
        effect,
        NetEffect::Offline {
            mode: OfflineMode::Blackhole
        }
    )
}
