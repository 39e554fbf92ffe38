//! The command line (clap derive). Each subcommand's options are turned into
//! the library's own config type before any work starts, so the library never
//! sees clap.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;
use clap::{Args, Parser, Subcommand};

use crate::exit::{Exit, ExitError};
use crate::server::{Bug, DuplicatePolicy, Seed, ServerConfig};

#[derive(Debug, Parser)]
#[command(
    name = "reconnoiter",
    version,
    about = "Chaos and load testing harness for Socket.IO chat servers"
)]
pub struct Cli {
    /// More log output (-v info, -vv debug); RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a scenario: spawn simulated users, inject faults, check the verdict.
    Run(RunArgs),
    /// Run the embedded reference chat server (the default target).
    Serve(ServeArgs),
    /// Run the embedded Toxiproxy-compatible fault proxy.
    Proxy(ProxyArgs),
    /// Check a scenario file without running it.
    Validate(ValidateArgs),
    /// Show, merge or compare run reports.
    #[command(subcommand)]
    Report(ReportCommand),
    /// Internal: started by a run beside a `[target] command`; SIGKILLs the
    /// command's process group if the run dies without stopping it.
    #[command(hide = true)]
    GuardGroup {
        /// The command's process group (its shell's pid).
        #[arg(long)]
        group: i32,
    },
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The scenario file (TOML).
    pub scenario: PathBuf,
    /// An external server's base URL (overrides the scenario's [target] url);
    /// without either, the embedded reference server is started.
    #[arg(long, value_name = "URL")]
    pub target: Option<String>,
    /// A Toxiproxy HTTP API (e.g. http://127.0.0.1:8474) to create the
    /// cohorts' proxies on; without it the embedded proxy is started.
    #[arg(long, value_name = "URL")]
    pub toxiproxy: Option<String>,
    /// Where the run's folder is written.
    #[arg(long, default_value = "reports")]
    pub reports: PathBuf,
    /// No progress display while the run goes.
    #[arg(long, short)]
    pub quiet: bool,
    /// Add or override a check: `duplicates=allow`, `reconnect.p99<3s`,
    /// `recovery.max<=20s` (repeatable).
    #[arg(long = "check", value_name = "RULE")]
    pub checks: Vec<String>,
    /// Run shard K of N (K from 0, e.g. a Kubernetes Indexed Job's
    /// JOB_COMPLETION_INDEX): users with index % N == K. Merge the shards'
    /// folders with `report merge`.
    #[arg(long, value_name = "K/N", env = "RECONNOITER_SHARD")]
    pub shard: Option<String>,
    /// Wall-clock start of the ramp (RFC 3339, e.g. 2026-11-29T10:00:00Z),
    /// shared by all shards so their fault timelines line up.
    #[arg(long, value_name = "TIME", env = "RECONNOITER_START_AT")]
    pub start_at: Option<String>,
}

#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// The scenario file(s) (TOML).
    #[arg(required = true)]
    pub scenarios: Vec<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ProxyArgs {
    /// Address of the Toxiproxy-compatible HTTP API.
    #[arg(long, default_value = "127.0.0.1:8474")]
    pub listen: SocketAddr,
    /// Seed for toxicity rolls and jitter, so runs repeat.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

#[derive(Debug, Subcommand)]
pub enum ReportCommand {
    /// Print a run's summary again and exit with the run's exit code, so a
    /// CI job can re-gate on a stored run.
    Show {
        /// The run's folder (reports/<run-id>) or its summary.json.
        dir: PathBuf,
    },
    /// Merge shards' folders (`run --shard K/N`) into one verdict: the
    /// histories are merged in time order and checked again as one run.
    Merge {
        /// Every shard's run folder, 0..N-1 (any order).
        #[arg(required = true)]
        dirs: Vec<PathBuf>,
        /// Where the merged report goes (default reports/<scenario>-merged-<time>).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Add or override a check, as for `run`.
        #[arg(long = "check", value_name = "RULE")]
        checks: Vec<String>,
    },
    /// Compare a run against a baseline: per metric, p50/p99/max ratios
    /// NEW/BASE. Exit 3 when one is worse than its tolerance (and the
    /// floor), 1 when NEW has a kind of violation BASE did not, 4 when
    /// either run was interrupted or its harness saturated. The handshake
    /// phases are shown, and judged only when a tolerance names them.
    Compare {
        /// The baseline run's folder (or its summary.json).
        base: PathBuf,
        /// The run to judge against it.
        new: PathBuf,
        /// How much worse NEW may be: `15%` (default 10%) for every figure,
        /// `reconnect=25%` for one metric, `reconnect.p99=25%` for one
        /// statistic (repeatable; the most specific wins).
        #[arg(long, value_name = "PCT|METRIC[.STAT]=PCT")]
        tolerance: Vec<String>,
        /// A figure at most this much worse is never a regression, whatever
        /// its ratio (sub-millisecond differences are scheduler noise on
        /// loopback); `0s` judges by ratio alone.
        #[arg(long, default_value = "1ms", value_parser = humantime::parse_duration)]
        floor: Duration,
    },
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on; port 0 picks a free port. The bound address is
    /// printed on stdout as `listening on ADDR` before anything else.
    #[arg(long, default_value = "127.0.0.1:3000")]
    pub listen: SocketAddr,
    /// SQLite file holding everything durable (created if missing).
    #[arg(long, default_value = "reconnoiter-server.db")]
    pub db: PathBuf,
    /// Lifetime of an access token, e.g. "15m" or "3s".
    #[arg(long, default_value = "15m", value_parser = humantime::parse_duration)]
    pub token_ttl: Duration,
    /// Lifetime of a refresh credential, e.g. "7d".
    #[arg(long, default_value = "7d", value_parser = humantime::parse_duration)]
    pub refresh_ttl: Duration,
    /// How long a message waits in an offline user's queue before it is dropped.
    #[arg(long, default_value = "24h", value_parser = humantime::parse_duration)]
    pub queue_ttl: Duration,
    /// Secret that signs tokens; a fixed default keeps tokens valid across restarts.
    #[arg(
        long,
        env = "RECONNOITER_SECRET",
        default_value = "reconnoiter-reference-secret",
        hide_env_values = true
    )]
    pub secret: String,
    /// Engine.IO ping interval: how often the server pings each client.
    #[arg(long, default_value = "25s", value_parser = humantime::parse_duration)]
    pub ping_interval: Duration,
    /// Engine.IO ping timeout: how long the server waits for the pong.
    #[arg(long, default_value = "20s", value_parser = humantime::parse_duration)]
    pub ping_timeout: Duration,
    /// What happens when a user opens a second connection.
    #[arg(long, value_enum, default_value_t = DuplicatePolicy::NotifyOld)]
    pub duplicate_policy: DuplicatePolicy,
    /// Seed: create users u0..u{N-1}.
    #[arg(long, default_value_t = 0)]
    pub users: u32,
    /// Seed: create conversations c0..c{M-1}.
    #[arg(long, default_value_t = 0)]
    pub conversations: u32,
    /// Seed: members per conversation, picked deterministically from --seed.
    #[arg(long, default_value_t = 0)]
    pub members: u32,
    /// Seed for the deterministic seeding (and for bug switches that draw at random).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Break one guarantee on purpose, to prove the harness catches it (repeatable).
    #[arg(long = "bug", value_enum)]
    pub bugs: Vec<Bug>,
    /// Number nothing on the wire: no `seq` in messages and acks, no
    /// `lastSeq` in conversations, as many chat servers are. Not a bug: the
    /// harness must judge such a server by ids and times alone.
    #[arg(long)]
    pub no_seq: bool,
}

impl ServeArgs {
    fn into_config(self) -> Result<ServerConfig> {
        if self.secret.is_empty() {
            return Err(ExitError::bad_input(
                "--secret must not be empty: tokens are signed with it",
            )
            .into());
        }
        if self.members > self.users && self.conversations > 0 {
            return Err(ExitError::bad_input(format!(
                "--members {} is more than --users {}: a conversation cannot have more members than there are users",
                self.members, self.users
            ))
            .into());
        }
        Ok(ServerConfig {
            listen: self.listen,
            db: self.db,
            token_ttl: self.token_ttl,
            refresh_ttl: self.refresh_ttl,
            queue_ttl: self.queue_ttl,
            secret: self.secret,
            duplicate_policy: self.duplicate_policy,
            ping_interval: self.ping_interval,
            ping_timeout: self.ping_timeout,
            seed: Seed {
                users: self.users,
                conversations: self.conversations,
                members: self.members,
                seed: self.seed,
            },
            bugs: self.bugs,
            no_seq: self.no_seq,
        })
    }
}

/// Sets up log output on stderr, so stdout stays for what other programs read.
pub fn init_tracing(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// Runs one parsed command line to its exit code.
pub fn execute(cli: Cli) -> Result<Exit> {
    match cli.command {
        Command::Serve(args) => {
            crate::children::exit_with_parent();
            let config = args.into_config()?;
            crate::server::run_blocking(config)?;
            Ok(Exit::Pass)
        }
        Command::Run(args) => run(args),
        Command::Proxy(args) => {
            crate::children::exit_with_parent();
            crate::proxy::run_blocking(crate::proxy::ProxyConfig {
                listen: args.listen,
                seed: args.seed,
            })?;
            Ok(Exit::Pass)
        }
        Command::Validate(args) => validate(&args),
        Command::Report(cmd) => report(cmd),
        Command::GuardGroup { group } => {
            crate::children::guard_group(group)?;
            Ok(Exit::Pass)
        }
    }
}

/// `reconnoiter run`: the first Ctrl-C stops the users and still writes what
/// was recorded (marked interrupted); a second one exits at once.
fn run(args: RunArgs) -> Result<Exit> {
    let mut plan =
        crate::scenario::load(&args.scenario).map_err(|e| ExitError::bad_input(e.to_string()))?;
    for rule in &args.checks {
        plan.checks.set_arg(rule).map_err(ExitError::bad_input)?;
        // A capacity run's knee is its own threshold: --check adds a gate
        // to every stage, and the user may think it moved the knee.
        let key = rule
            .split(|c: char| c == '<' || c == '=' || c.is_whitespace())
            .next()
            .unwrap_or_default();
        if let Some(cap) = &plan.capacity
            && cap.knee.0 == key
        {
            tracing::warn!(
                "--check {rule} gates every stage; the knee is still [capacity] knee = \"{} {}\" (change it in the file)",
                cap.knee.0,
                cap.knee.1
            );
        }
    }
    if let Some(target) = &args.target
        && let Some(why) = crate::scenario::base_url_problem(target)
    {
        let example = match target.split_once("://") {
            Some((_, rest)) => format!("http://{rest}"),
            None => format!("http://{target}"),
        };
        return Err(ExitError::bad_input(format!(
            "--target {target:?} {why}: give the server's base URL, e.g. --target {example}"
        ))
        .into());
    }
    if let Some(api) = &args.toxiproxy
        && let Some((scheme, rest)) = api.split_once("://")
        && scheme != "http"
    {
        return Err(ExitError::bad_input(format!(
            "--toxiproxy {api:?}: the Toxiproxy API is plain HTTP; give http://{rest} (or {rest})"
        ))
        .into());
    }
    if args.toxiproxy.is_some() && !plan.needs_proxy() {
        tracing::warn!(
            "--toxiproxy is not used: {} has no network fault (offline, flapping, latency, bandwidth, slicer)",
            args.scenario.display()
        );
    }
    let opts = crate::run::RunOptions {
        target_url: args.target,
        reports_dir: args.reports,
        server_binary: std::env::current_exe()?,
        quiet: args.quiet,
        toxiproxy: args.toxiproxy,
        proxy_capacity: None,
        stats: None,
        shard: args
            .shard
            .as_deref()
            .map(crate::history::Shard::parse)
            .transpose()
            .map_err(ExitError::bad_input)?,
        start_at: args
            .start_at
            .as_deref()
            .map(|t| {
                chrono::DateTime::parse_from_rfc3339(t)
                    .map(|t| t.with_timezone(&chrono::Utc))
                    .map_err(|e| {
                        ExitError::bad_input(format!(
                            "--start-at {t}: {e} (write RFC 3339, e.g. 2026-11-29T10:00:00Z)"
                        ))
                    })
            })
            .transpose()?,
    };
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async move {
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            let Some(mut stops) = StopSignals::new() else {
                return;
            };
            let first = stops.next().await;
            eprintln!(
                "interrupted by {}: stopping the users and writing what was recorded (a second signal quits at once)",
                first.name()
            );
            let _ = tx.send(());
            let second = stops.next().await;
            // No orderly cleanup on this path: the server and proxies go now.
            crate::children::kill_all();
            std::process::exit(second.exit_code());
        });
        let shutdown = async move {
            let _ = rx.await;
        };
        if plan.capacity.is_some() {
            let outcome = crate::run::capacity::run_capacity(plan, opts, shutdown).await?;
            println!("{}", crate::report::capacity::render(&outcome));
            println!("report: {}", outcome.dir.join("capacity.html").display());
            return Ok(outcome.exit());
        }
        let outcome = crate::run::run(plan, opts, shutdown).await?;
        println!("{}", outcome.summary.render());
        if let Some(memory) = &outcome.memory {
            println!("{}", memory.render());
        }
        println!("report: {}", outcome.dir.display());
        Ok(outcome.exit)
    })
}

/// `reconnoiter report ...`: reads summaries a run wrote; an unreadable one
/// (missing, not JSON, another summary_version) is bad input (exit 2).
fn report(cmd: ReportCommand) -> Result<Exit> {
    use crate::report::compare;
    use crate::report::summary::Summary;
    let read = |path: &std::path::Path| {
        // A file is taken only if it is a summary.json; any other file
        // would have been swapped for its folder's summary without a word.
        let dir = match path.file_name() {
            Some(name) if path.is_file() && name == "summary.json" => path.parent().unwrap_or(path),
            _ if path.is_file() => {
                return Err(ExitError::bad_input(format!(
                    "{} is a file but not a summary.json: give a run's folder (reports/<run-id>) or its summary.json",
                    path.display()
                )));
            }
            _ => path,
        };
        // A capacity run's folder holds one run folder per stage.
        if dir.join("capacity.json").is_file() && !dir.join("summary.json").exists() {
            return Err(ExitError::bad_input(format!(
                "{} is a capacity run: its results are capacity.csv and capacity.html there; each stage is a run of its own ({}/stage-01, ...)",
                dir.display(),
                dir.display()
            )));
        }
        Summary::read(dir)
            .map_err(|e| ExitError::bad_input(format!("cannot use this run summary: {e:#}")))
    };
    match cmd {
        ReportCommand::Show { dir } => {
            let summary = read(&dir)?;
            println!("{}", summary.render());
            Ok(match summary.exit_code {
                0 => Exit::Pass,
                1 => Exit::Violation,
                3 => Exit::Threshold,
                4 => Exit::Harness,
                other => {
                    return Err(ExitError::bad_input(format!(
                        "{} has exit_code {other}, which no run writes",
                        dir.display()
                    ))
                    .into());
                }
            })
        }
        ReportCommand::Compare {
            base,
            new,
            tolerance,
            floor,
        } => {
            let tolerance = compare::Tolerance::parse(&tolerance).map_err(ExitError::bad_input)?;
            let (base, new) = (read(&base)?, read(&new)?);
            let floor_us = u64::try_from(floor.as_micros()).unwrap_or(u64::MAX);
            let comparison = compare::compare(&base, &new, &tolerance, floor_us);
            println!("{}", comparison.render());
            Ok(comparison.exit())
        }
        ReportCommand::Merge { dirs, out, checks } => {
            let out = out.unwrap_or_else(|| {
                crate::run::default_reports_dir().join(format!(
                    "merged-{}",
                    chrono::Utc::now().format("%Y%m%d-%H%M%S")
                ))
            });
            let (summary, _) = crate::report::merge::merge(&dirs, &out, &checks)?;
            println!("{}", summary.render());
            println!("report: {}", out.display());
            Ok(summary.exit())
        }
    }
}

/// `reconnoiter validate`: every file is checked, every error printed.
fn validate(args: &ValidateArgs) -> Result<Exit> {
    let mut failed = 0;
    for path in &args.scenarios {
        match crate::scenario::load(path) {
            Ok(plan) => println!(
                "ok: {} ({} users in {} conversations of {}, {}, target {})",
                path.display(),
                plan.users.count,
                plan.users.conversations,
                plan.users.members,
                // A capacity file's `duration` is not what runs: each stage
                // chats for `hold`.
                match &plan.capacity {
                    Some(cap) => format!(
                        "capacity stages of {:?} users, {:?} of chat each",
                        cap.stages(),
                        cap.hold
                    ),
                    None => format!("{:?} of chat", plan.duration),
                },
                match (&plan.target.url, &plan.target.command) {
                    (Some(url), _) => url.clone(),
                    (None, Some(command)) => format!("`{command}`"),
                    (None, None) => "embedded".into(),
                }
            ),
            Err(e) => {
                eprintln!("error: {e}");
                failed += 1;
            }
        }
    }
    Ok(if failed == 0 {
        Exit::Pass
    } else {
        Exit::BadInput
    })
}

/// A signal that asks a run to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StopSignal {
    Interrupt,
    Terminate,
}

impl StopSignal {
    fn name(self) -> &'static str {
        match self {
            StopSignal::Interrupt => "Ctrl-C",
            StopSignal::Terminate => "SIGTERM",
        }
    }

    /// The shell's code for a process ended by this signal (128 + number).
    fn exit_code(self) -> i32 {
        match self {
            StopSignal::Interrupt => 130,
            StopSignal::Terminate => 143,
        }
    }
}

/// SIGINT and SIGTERM, both: CI cancellation, `timeout`, `docker stop` and
/// Kubernetes send SIGTERM, and the default action of dying at once would
/// leave no report and the managed server and proxies running.
/// Both are streams held for the run's life: a `ctrl_c()` future made per
/// wait hears only what comes after it, so a SIGINT that arrived together
/// with a SIGTERM was lost when the other branch won, and the run went on
/// with its orderly stop instead of quitting.
struct StopSignals {
    interrupt: tokio::signal::unix::Signal,
    terminate: tokio::signal::unix::Signal,
}

impl StopSignals {
    /// `None` when the handlers cannot be installed (the run then goes on
    /// without them, as it would have without this).
    fn new() -> Option<StopSignals> {
        use tokio::signal::unix::{SignalKind, signal};
        let interrupt = signal(SignalKind::interrupt()).ok()?;
        let terminate = signal(SignalKind::terminate()).ok()?;
        Some(StopSignals {
            interrupt,
            terminate,
        })
    }

    async fn next(&mut self) -> StopSignal {
        tokio::select! {
            Some(()) = self.interrupt.recv() => StopSignal::Interrupt,
            Some(()) = self.terminate.recv() => StopSignal::Terminate,
            else => std::future::pending().await,
        }
    }
}
