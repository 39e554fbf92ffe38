//! `reconnoiter run`: bring up the target, ramp the users up, let them chat,
//! drain, stop everyone, and leave the history and a summary under
//! reports/<run-id>/.
//!
//! Shutdown follows mini-redis: the caller passes a future that resolves on
//! Ctrl-C; the run turns it into the `Stop` phase broadcast over a watch
//! channel and then waits for every user to finish, so an interrupted run
//! still writes everything it recorded, marked interrupted.

pub mod capacity;
mod drain;
pub mod limits;
pub mod live;
pub mod load;
pub mod memory;
pub mod preflight;

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
use crate::nemesis::Nemesis;
use crate::nemesis::admin::Admin;
use crate::nemesis::proxies::Proxies;
use crate::report::summary::Summary;
use crate::scenario::Plan;
use crate::target::{Api, ApiError, ManagedServer};
use crate::user::stats::Stats;
use crate::user::{Ctx, Phase, Route, User};

/// Choices made on the command line rather than in the scenario.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// An external server; overrides the scenario's `[target] url`.
    pub target_url: Option<String>,
    /// Where run folders go.
    pub reports_dir: PathBuf,
    /// The binary that serves the embedded server (normally this one).
    pub server_binary: PathBuf,
    /// No progress display (neither the bar nor the periodic lines).
    pub quiet: bool,
    /// An external Toxiproxy's API (e.g. http://127.0.0.1:8474); without it
    /// the embedded proxy is started as child processes when faults need it.
    pub toxiproxy: Option<String>,
    /// Users one embedded proxy process may hold; None: as many as the
    /// open-files limit allows (tests set it low to exercise the split).
    pub proxy_capacity: Option<u32>,
    /// Counters to use, so a caller (a benchmark, a progress display) can
    /// watch them while the run goes; a fresh set when None.
    pub stats: Option<Arc<Stats>>,
    /// Run only this shard's users (`--shard K/N`).
    pub shard: Option<crate::history::Shard>,
    /// Wall-clock time at which the ramp starts (`--start-at`), so shards on
    /// different machines line their fault timelines up.
    pub start_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// What a finished (or interrupted) run leaves behind.
#[derive(Debug)]
pub struct RunOutcome {
    pub dir: PathBuf,
    pub summary: Summary,
    pub exit: Exit,
    /// How the harness's own RSS moved over the chat phase (None for runs
    /// too short to tell); samples are in memory.csv.
    pub memory: Option<memory::MemoryDrift>,
}

/// Runs a plan to the end, or until `shutdown` resolves.
pub async fn run(
    plan: Plan,
    opts: RunOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<RunOutcome> {
    let limit = limits::raise_open_files();
    limits::check_users_fit(plan.users.count, limit)?;

    let mut run_id = format!(
        "{}-{}-{:04x}",
        plan.name,
        chrono::Utc::now().format("%Y%m%d-%H%M%S"),
        rand::random::<u16>()
    );
    if let Some(s) = opts.shard {
        run_id += &format!("-shard{}of{}", s.index, s.count);
    }
    // The file's own check (plan.rs) sees only `[target] url`; `--target`
    // makes the server external here, and a restart nobody can carry out
    // would fail mid-run, after every user was spawned.
    if opts.target_url.is_some()
        && plan.target.restart_command.is_none()
        && plan
            .timeline
            .iter()
            .any(|s| matches!(s.action, crate::scenario::Action::ServerDown { .. }))
    {
        return Err(ExitError::bad_input(format!(
            "{}: a server-restart fault against --target needs [target] restart_command \
             (a shell command that restarts your server, e.g. \"systemctl restart chat\"), \
             or delete the server-restart faults",
            plan.source.display()
        ))
        .into());
    }
    if opts.target_url.is_some() {
        let ignored = crate::scenario::plan::target::managed_only(&plan.target);
        if !ignored.is_empty() {
            eprintln!(
                "warning: with --target these [target] settings of {} are ignored (they apply to a \
                 server the harness starts): {}",
                plan.source.display(),
                ignored.join("; ")
            );
        }
    }
    // Shards share one server: each starting its own would split the users
    // over servers that know nothing of each other.
    if opts.shard.is_some() && opts.target_url.is_none() && plan.target.url.is_none() {
        return Err(ExitError::bad_input(
            "--shard needs a target all shards share: pass --target URL or set [target] url",
        )
        .into());
    }
    let dir = opts.reports_dir.join(&run_id);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    // A run that fails before its users start leaves no empty folder behind
    // (it would match a baseline's `reports/NAME-*` glob); one the managed
    // server wrote its log into stays, since the log says why.
    let forget_if_empty = |e: anyhow::Error| {
        let _ = std::fs::remove_dir(&dir);
        e
    };

    // The target first: nothing is spawned against a server that is not there.
    let mut managed = None;
    let base = match opts.target_url.clone().or_else(|| plan.target.url.clone()) {
        Some(url) => url,
        None => {
            let server = ManagedServer::start(&opts.server_binary, &plan, &dir)
                .map_err(|e| forget_if_empty(ExitError::harness(format!("{e:#}")).into()))?;
            let url = server.url();
            managed = Some(Arc::new(std::sync::Mutex::new(server)));
            url
        }
    };
    let api = Api::new(&base, plan.target.api.clone(), Duration::from_secs(10));
    wait_healthy(&api)
        .await
        .map_err(|e| forget_if_empty(e.into()))?;
    // A server we did not start may hold other memberships than the seed's.
    let external = managed.is_none();
    if external {
        preflight::memberships_match(&api, &plan)
            .await
            .map_err(|e| forget_if_empty(e.into()))?;
    }

    // Then the cohorts' proxies, created before any user connects.
    let proxies = if plan.needs_proxy() {
        let upstream = base
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_owned();
        let tag = run_id.rsplit('-').next().unwrap_or("run").to_owned();
        let p = Proxies::start(
            &plan,
            opts.toxiproxy.as_deref(),
            &opts.server_binary,
            &upstream,
            &format!("rcn{tag}"),
        )
        .await
        .map_err(|e| forget_if_empty(ExitError::harness(format!("fault proxy: {e:#}")).into()))?;
        Some(Arc::new(p))
    } else {
        None
    };
    if let Some(at) = opts.start_at {
        let wait = (at - chrono::Utc::now()).to_std().unwrap_or_default();
        if wait.is_zero() {
            tracing::warn!("--start-at {at} has passed; starting now");
        } else {
            eprintln!("waiting {:.1}s for --start-at {at}", wait.as_secs_f64());
            tokio::time::sleep(wait).await;
        }
    }
    let outcome = run_users(
        &plan,
        &opts,
        &run_id,
        &dir,
        &base,
        api,
        managed.clone(),
        proxies.clone(),
        shutdown,
    )
    .await;
    if let Some(p) = proxies {
        match Arc::try_unwrap(p) {
            Ok(p) => p.cleanup().await,
            Err(_) => tracing::warn!("fault proxies still in use at the end; not cleaned up"),
        }
    }
    if let Some(server) = managed {
        let _ = tokio::task::spawn_blocking(move || {
            server
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .stop(Duration::from_secs(5))
        })
        .await;
    }
    let (summary, latencies, dir, memory) = outcome?;
    crate::report::write_all(&dir, &summary, &latencies)?;
    let exit = summary.exit();
    Ok(RunOutcome {
        dir,
        summary,
        exit,
        memory,
    })
}

/// Everything between "target and proxies are up" and "users stopped".
#[allow(clippy::too_many_arguments)]
async fn run_users(
    plan: &Plan,
    opts: &RunOptions,
    run_id: &str,
    dir: &Path,
    base: &str,
    api: Api,
    managed: Option<Arc<std::sync::Mutex<ManagedServer>>>,
    proxies: Option<Arc<Proxies>>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<(
    Summary,
    crate::check::Latencies,
    PathBuf,
    Option<memory::MemoryDrift>,
)> {
    let plan = plan.clone();
    let run_id = run_id.to_owned();
    let dir = dir.to_owned();
    let base = base.to_owned();
    let roster = plan.roster();
    let mut of_user: HashMap<String, Vec<String>> = HashMap::new();
    let mut sizes = Vec::new();
    for (conversation, members) in &roster {
        sizes.push((conversation.clone(), members.len() as u32));
        for m in members {
            of_user
                .entry(m.clone())
                .or_default()
                .push(conversation.clone());
        }
    }

    let audience = Arc::new(crate::user::ctx::Audience::new(sizes));
    let start = Instant::now();
    let header = Header {
        history_version: HISTORY_VERSION,
        run_id: run_id.clone(),
        scenario: plan.source.display().to_string(),
        seed: plan.seed,
        started_at_ms: chrono::Utc::now().timestamp_millis(),
        users: plan.users.count,
        cohorts: plan.cohorts.clone(),
        reconnoiter_version: env!("CARGO_PKG_VERSION").into(),
        checks: plan.checks.to_pairs(),
        shard: opts.shard,
        start_at_ms: opts.start_at.map(|t| t.timestamp_millis()),
        driver: Some(plan.users.driver.as_str().into()),
    };
    let stats = opts.stats.clone().unwrap_or_default();
    let live = live::LiveCheck::start(&dir, &header, plan.checks.clone(), stats.clone());
    let (recorder, writer) = Recorder::create_with_tap(
        &dir.join("history.jsonl"),
        &header,
        start,
        Some(live::LiveCheck::tap(live.clone(), start)),
    )?;
    // The audience the checker starts from, before anyone connects.
    for (conversation, members) in &roster {
        recorder.record(
            u32::MAX,
            EventKind::Members {
                conversation: conversation.clone(),
                users: members
                    .iter()
                    .map(|m| m.trim_start_matches('u').parse().unwrap_or(u32::MAX))
                    .collect(),
            },
        );
    }
    let rss = memory::Samples::default();
    let load_watch = tokio::spawn(load::watch(recorder.clone(), rss.clone()));
    let (phase_tx, phase_rx) = watch::channel(Phase::Chat);
    // Until the checker judges membership windows from the history, owed
    // deliveries in conversations whose membership changes are not decided.
    let undecided: std::collections::HashSet<String> = plan
        .timeline
        .iter()
        .flat_map(|s| match &s.action {
            crate::scenario::Action::RemoveMembers { pairs }
            | crate::scenario::Action::ReaddMembers { pairs } => {
                pairs.iter().map(|(c, _)| c.clone()).collect::<Vec<_>>()
            }
            _ => Vec::new(),
        })
        .collect();
    let ledger = Arc::new(crate::user::ledger::Ledger::new(undecided));
    let gap = Duration::from_secs_f64(1.0 / plan.ramp_per_sec.max(0.001));
    let ramp_length = gap * plan.users.count;
    // Nothing between here and the ramp's loop waits.
    let ramp_start = tokio::time::Instant::now();
    let ctx = Arc::new(Ctx {
        ledger: ledger.clone(),
        users: plan.users.clone(),
        reconnection: plan.reconnection,
        events: plan.target.events.clone(),
        namespace: plan.target.namespace.clone(),
        path: plan.target.path.clone(),
        recorder: recorder.clone(),
        stats: stats.clone(),
        phase: phase_rx,
        audience: audience.clone(),
        seed: plan.seed,
        run_tag: Ctx::new_run_tag(),
        sends_from: plan.sends_wait_for_ramp.then_some(ramp_start + ramp_length),
    });

    let (interrupt_tx, mut interrupted) = watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = interrupt_tx.send(true);
    });
    let progress = crate::report::progress::Progress::start(
        crate::report::progress::Watch {
            stats: stats.clone(),
            start,
            planned: plan.duration + ramp_length,
            users: plan.users.count,
            phase: ctx.phase.clone(),
        },
        opts.quiet,
    );

    let tabs: HashMap<String, watch::Sender<bool>> = plan
        .cohorts
        .iter()
        .map(|c| (c.name.clone(), watch::channel(false).0))
        .collect();
    let blackholes: HashMap<String, watch::Sender<crate::user::blackhole::Blackholes>> = plan
        .cohorts
        .iter()
        .map(|c| (c.name.clone(), watch::channel(Default::default()).0))
        .collect();
    let external = managed.is_none();
    let nemesis = Arc::new(Nemesis {
        proxies: proxies.clone(),
        server: managed,
        restart_command: plan.target.restart_command.clone(),
        admin: Admin {
            // The users' connection pool.
            http: api.http().clone(),
            base: api.base().to_owned(),
            paths: plan.target.api.clone(),
        },
        tabs: tabs.clone(),
        blackholes: blackholes.clone(),
        recorder: recorder.clone(),
        audience: audience.clone(),
        shard: opts.shard,
        removed: Default::default(),
    });

    // Ramp: users connect at the scenario's rate.
    recorder.record(
        u32::MAX,
        EventKind::Phase {
            name: "ramp".into(),
        },
    );
    let mut users = JoinSet::new();
    for i in 0..plan.users.count {
        if *interrupted.borrow() {
            break;
        }
        // A shard spawns only its users, each at the time the whole run
        // would have, so shards together ramp like one process.
        if opts.shard.is_some_and(|s| !s.runs(i)) {
            continue;
        }
        let conversations = of_user.remove(&format!("u{i}")).unwrap_or_default();
        let cohort = plan.cohort_of(i);
        let url = proxies
            .as_ref()
            .and_then(|p| p.url_for(&cohort.name, i - cohort.first))
            .unwrap_or_else(|| base.clone());
        let route = Route {
            api: api.with_base(&url),
            socket_url: url,
            tab: tabs.get(&cohort.name).map(|t| t.subscribe()),
            blackholes: blackholes.get(&cohort.name).map(|b| b.subscribe()),
            sync: plan.sync_of(i),
        };
        users.spawn(Box::new(User::new(i, conversations, ctx.clone(), route)).run());
        tokio::time::sleep_until(ramp_start + gap * (i + 1)).await;
    }
    if opts.shard.is_some() {
        // The chat phase (and its fault timeline) starts when the whole
        // run's ramp would have ended, on every shard alike.
        tokio::time::sleep_until(ramp_start + ramp_length).await;
    }

    recorder.record(
        u32::MAX,
        EventKind::Phase {
            name: "chat".into(),
        },
    );
    let chat_t = recorder.now();
    let (nemesis_stop, nemesis_stopped) = watch::channel(false);
    let nemesis_task = {
        let (nemesis, steps) = (nemesis.clone(), plan.timeline.clone());
        let chat_start = tokio::time::Instant::now();
        tokio::spawn(async move { nemesis.run(steps, chat_start, nemesis_stopped).await })
    };
    wait_or_interrupt(&mut interrupted, plan.duration).await;
    let _ = nemesis_stop.send(true);
    let mut failures = nemesis_task.await.unwrap_or_else(|e| {
        vec![crate::nemesis::Failure {
            text: format!("nemesis panicked: {e}"),
            cuts_users_off: true,
        }]
    });

    recorder.record(
        u32::MAX,
        EventKind::Phase {
            name: "drain".into(),
        },
    );
    let drain_t = recorder.now();
    let _ = phase_tx.send(Phase::Drain);
    let drained = drain::drain(&stats, &ledger, &mut interrupted, plan.drain).await;
    // A proxy that died after the last fault step failed nothing, yet its
    // users were cut off through the drain.
    if let Some(p) = &proxies
        && let Err(e) = p.verify_intact().await
    {
        tracing::warn!("{e:#}");
        failures.push(crate::nemesis::Failure {
            text: format!("at the end of the drain: {e:#}"),
            cuts_users_off: true,
        });
    }
    let faults_cut_users_off = failures.iter().any(|f| f.cuts_users_off);
    let fault_failures: Vec<String> = failures.into_iter().map(|f| f.text).collect();

    recorder.record(
        u32::MAX,
        EventKind::Phase {
            name: "stop".into(),
        },
    );
    let _ = phase_tx.send(Phase::Stop);
    let stop_deadline = tokio::time::sleep(Duration::from_secs(10));
    tokio::pin!(stop_deadline);
    let mut aborted = false;
    loop {
        tokio::select! {
            joined = users.join_next() => if joined.is_none() { break },
            _ = &mut stop_deadline, if !aborted => {
                tracing::warn!("{} users did not stop within 10 s; aborting them", users.len());
                users.abort_all();
                aborted = true;
            }
        }
    }
    // A managed server's database is the run's own; another server is left
    // with the memberships it had. Not when sharded: the other shards' users
    // may still be receiving, and no history would record the change.
    if external && opts.shard.is_none() {
        nemesis.give_back_memberships().await;
    }
    drop(nemesis);
    progress.stop().await;
    load_watch.abort();
    let _ = load_watch.await;
    let elapsed = start.elapsed();
    drop(ctx);
    drop(recorder);
    let events = tokio::task::spawn_blocking(move || writer.finish()).await??;

    let was_interrupted = *interrupted.borrow();
    let checker = live::LiveCheck::finish(&live, elapsed.as_secs())
        .ok_or_else(|| anyhow::anyhow!("the live checker was lost"))?;
    let (verdict, latencies) = checker.finish(crate::check::Ending {
        interrupted: was_interrupted,
    });
    let mut summary = Summary {
        summary_version: crate::report::summary::SUMMARY_VERSION,
        run_id: run_id.clone(),
        scenario: plan.name.clone(),
        seed: plan.seed,
        target: base.clone(),
        users: plan.users.count,
        conversations: plan.users.conversations,
        members: plan.users.members,
        started_at: chrono::DateTime::from_timestamp_millis(header.started_at_ms)
            .unwrap_or_default()
            .to_rfc3339(),
        elapsed_seconds: elapsed.as_secs_f64(),
        interrupted: was_interrupted,
        drained,
        fault_failures,
        faults_cut_users_off,
        live: stats.snapshot(),
        driver: crate::user::driver::report(plan.users.driver),
        history_events: events,
        verdict,
        status: String::new(),
        exit_code: 0,
    };
    summary.decide();
    let rss = std::mem::take(&mut *rss.lock().unwrap_or_else(|p| p.into_inner()));
    if let Err(e) = memory::write_csv(&dir.join("memory.csv"), &rss) {
        tracing::warn!("memory.csv: {e}");
    }
    let memory = memory::MemoryDrift::from_samples(&rss, (chat_t, drain_t));
    Ok((summary, latencies, dir, memory))
}

/// Polls the target's health endpoint for a few seconds before any user is spawned.
async fn wait_healthy(api: &Api) -> Result<(), ExitError> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match api.health().await {
            Ok(_) => return Ok(()),
            Err(e) if Instant::now() >= deadline => {
                return Err(ExitError::harness(match e {
                    ApiError::Transport(_) => {
                        format!("target {} is unreachable: {e}", api.base())
                    }
                    // Something answered: say what, not "unreachable".
                    _ => format!(
                        "target {} answers, but not as a chat server: GET {} gave {} \
                         (check the URL; if your server's health endpoint is elsewhere, \
                         set [target.api] health)",
                        api.base(),
                        api.health_url(),
                        e.brief()
                    ),
                }));
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

async fn wait_or_interrupt(interrupted: &mut watch::Receiver<bool>, d: Duration) {
    let _ = tokio::time::timeout(d, interrupted.wait_for(|i| *i)).await;
}

/// Where a run writes by default: ./reports.
pub fn default_reports_dir() -> PathBuf {
    Path::new("reports").to_owned()
}
