//! `reconnoiter run`: bring up the target, ramp the users up, let them chat,
//! drain, stop everyone, and leave the history and a summary under
//! reports/<run-id>/.
//!
//! Shutdown follows mini-redis: the caller passes a future that resolves on
//! Ctrl-C; the run turns it into the `Stop` phase broadcast over a watch
//! channel and then waits for every user to finish, so an interrupted run
//! still writes everything it recorded, marked interrupted.

pub mod limits;

use std::collections::HashMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::exit::{Exit, ExitError};
use crate::history::EventKind;
use crate::history::{HISTORY_VERSION, Header, Recorder};
use crate::report::summary::Summary;
use crate::scenario::Plan;
use crate::target::{Api, ManagedServer};
use crate::user::stats::Stats;
use crate::user::{Ctx, Phase, User};

/// Choices made on the command line rather than in the scenario.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// An external server; overrides the scenario's `[target] url`.
    pub target_url: Option<String>,
    /// Where run folders go.
    pub reports_dir: PathBuf,
    /// The binary that serves the embedded server (normally this one).
    pub server_binary: PathBuf,
    /// No periodic progress lines.
    pub quiet: bool,
    /// Counters to use, so a caller (a benchmark, a progress display) can
    /// watch them while the run goes; a fresh set when None.
    pub stats: Option<Arc<Stats>>,
}

/// What a finished (or interrupted) run leaves behind.
#[derive(Debug)]
pub struct RunOutcome {
    pub dir: PathBuf,
    pub summary: Summary,
    pub exit: Exit,
}

/// Runs a plan to the end, or until `shutdown` resolves.
pub async fn run(
    plan: Plan,
    opts: RunOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<RunOutcome> {
    let limit = limits::raise_open_files();
    limits::check_users_fit(plan.users.count, limit)?;

    let run_id = format!(
        "{}-{}-{:04x}",
        plan.name,
        chrono::Utc::now().format("%Y%m%d-%H%M%S"),
        rand::random::<u16>()
    );
    let dir = opts.reports_dir.join(&run_id);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;

    // The target first: nothing is spawned against a server that is not there.
    let mut managed = None;
    let base = match opts.target_url.clone().or_else(|| plan.target.url.clone()) {
        Some(url) => url,
        None => {
            let server = ManagedServer::start(&opts.server_binary, &plan, &dir)
                .map_err(|e| ExitError::harness(format!("{e:#}")))?;
            let url = server.url();
            managed = Some(server);
            url
        }
    };
    let api = Api::new(&base, plan.target.api.clone(), Duration::from_secs(10));
    wait_healthy(&api).await?;

    let roster = ManagedServer::roster(&plan);
    let mut of_user: HashMap<String, Vec<String>> = HashMap::new();
    let mut audience = HashMap::new();
    for (conversation, members) in &roster {
        audience.insert(conversation.clone(), members.len() as u32);
        for m in members {
            of_user
                .entry(m.clone())
                .or_default()
                .push(conversation.clone());
        }
    }

    let start = Instant::now();
    let header = Header {
        history_version: HISTORY_VERSION,
        run_id: run_id.clone(),
        scenario: plan.source.display().to_string(),
        seed: plan.seed,
        started_at_ms: chrono::Utc::now().timestamp_millis(),
        users: plan.users.count,
        reconnoiter_version: env!("CARGO_PKG_VERSION").into(),
    };
    let (recorder, writer) = Recorder::create(&dir.join("history.jsonl"), &header, start)?;
    let stats = opts.stats.clone().unwrap_or_default();
    let (phase_tx, phase_rx) = watch::channel(Phase::Chat);
    let ctx = Arc::new(Ctx {
        users: plan.users.clone(),
        reconnection: plan.reconnection,
        events: plan.target.events.clone(),
        socket_url: base.clone(),
        namespace: plan.target.namespace.clone(),
        path: plan.target.path.clone(),
        api,
        recorder: recorder.clone(),
        stats: stats.clone(),
        phase: phase_rx,
        audience,
        seed: plan.seed,
    });

    let (interrupt_tx, mut interrupted) = watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = interrupt_tx.send(true);
    });
    let progress =
        (!opts.quiet).then(|| tokio::spawn(progress(stats.clone(), start, plan.users.count)));

    // Ramp: users connect at the scenario's rate.
    recorder.record(
        u32::MAX,
        EventKind::Phase {
            name: "ramp".into(),
        },
    );
    let mut users = JoinSet::new();
    let gap = Duration::from_secs_f64(1.0 / plan.ramp_per_sec.max(0.001));
    let ramp_start = tokio::time::Instant::now();
    for i in 0..plan.users.count {
        if *interrupted.borrow() {
            break;
        }
        let conversations = of_user.remove(&format!("u{i}")).unwrap_or_default();
        users.spawn(User::new(i, conversations, ctx.clone()).run());
        tokio::time::sleep_until(ramp_start + gap * (i + 1)).await;
    }

    recorder.record(
        u32::MAX,
        EventKind::Phase {
            name: "chat".into(),
        },
    );
    wait_or_interrupt(&mut interrupted, plan.duration).await;

    recorder.record(
        u32::MAX,
        EventKind::Phase {
            name: "drain".into(),
        },
    );
    let _ = phase_tx.send(Phase::Drain);
    let drained = drain(&stats, &mut interrupted, plan.drain).await;

    recorder.record(
        u32::MAX,
        EventKind::Phase {
            name: "stop".into(),
        },
    );
    let _ = phase_tx.send(Phase::Stop);
    let stop_deadline = tokio::time::sleep(Duration::from_secs(10));
    tokio::pin!(stop_deadline);
    loop {
        tokio::select! {
            joined = users.join_next() => if joined.is_none() { break },
            _ = &mut stop_deadline => {
                tracing::warn!("{} users did not stop within 10 s; aborting them", users.len());
                users.abort_all();
            }
        }
    }
    if let Some(p) = progress {
        p.abort();
    }
    let elapsed = start.elapsed();
    if let Some(mut server) = managed {
        let _ = tokio::task::spawn_blocking(move || server.stop(Duration::from_secs(5))).await;
    }
    drop(ctx);
    drop(recorder);
    let events = tokio::task::spawn_blocking(move || writer.finish()).await??;

    let was_interrupted = *interrupted.borrow();
    let summary = Summary::new(
        &run_id,
        &plan,
        &base,
        stats.snapshot(),
        elapsed,
        events,
        drained,
        was_interrupted,
    );
    summary.write(&dir)?;
    let exit = summary.exit();
    Ok(RunOutcome { dir, summary, exit })
}

/// Polls the target's health endpoint for a few seconds before any user is spawned.
async fn wait_healthy(api: &Api) -> Result<(), ExitError> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match api.health().await {
            Ok(_) => return Ok(()),
            Err(e) if Instant::now() >= deadline => {
                return Err(ExitError::harness(format!(
                    "target {} is unreachable: {e}",
                    api.base()
                )));
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

async fn wait_or_interrupt(interrupted: &mut watch::Receiver<bool>, d: Duration) {
    let _ = tokio::time::timeout(d, interrupted.wait_for(|i| *i)).await;
}

/// Waits until every outbox is empty and every acked message reached its
/// audience, or the bound passes; true when it drained fully.
async fn drain(stats: &Stats, interrupted: &mut watch::Receiver<bool>, bound: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + bound;
    loop {
        let s = stats.snapshot();
        if s.outbox <= 0 && s.delivered >= s.expected {
            return true;
        }
        if tokio::time::Instant::now() >= deadline || *interrupted.borrow() {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A plain progress line every two seconds on stderr.
async fn progress(stats: Arc<Stats>, start: Instant, users: u32) {
    let mut tick = tokio::time::interval(Duration::from_secs(2));
    tick.tick().await;
    loop {
        tick.tick().await;
        let s = stats.snapshot();
        eprintln!(
            "[{:>5.1}s] users {}/{} connected, {} offline | sent {} acked {} | delivered {}/{} | outbox {}",
            start.elapsed().as_secs_f64(),
            s.connected,
            users,
            s.offline,
            s.sent,
            s.acked,
            s.delivered,
            s.expected,
            s.outbox
        );
    }
}

/// Where a run writes by default: ./reports.
pub fn default_reports_dir() -> PathBuf {
    Path::new("reports").to_owned()
}
