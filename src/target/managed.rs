//! A server the harness starts, restarts and stops as a real child process,
//! so a scenario can really kill it: the embedded reference server (our own
//! binary's `serve`), or the user's own server from `[target] command`.
//!
//! The contract for a `command` (README: "Testing your own Node server"):
//! it runs as `sh -c COMMAND` from the harness's current directory, in a
//! process group of its own (signals reach the server, not only the shell),
//! with this environment on top of the harness's:
//!
//! | variable | value |
//! |---|---|
//! | `HOST`, `PORT` | `127.0.0.1` and `0` (any free port) at first; a restart gets the port it bound |
//! | `RECONNOITER_DB` | `<run dir>/server.db`: a path for its state, the same across restarts |
//! | `RECONNOITER_USERS`, `RECONNOITER_CONVERSATIONS`, `RECONNOITER_MEMBERS`, `RECONNOITER_SEED` | seed users `u0..`, conversations `c0..` as `server/seed.rs` does |
//! | `RECONNOITER_TOKEN_TTL_MS` | `[target] token_ttl`, when set |
//! | `RECONNOITER_PING_INTERVAL_MS`, `RECONNOITER_PING_TIMEOUT_MS` | `[target] ping_interval` / `ping_timeout`, when set |
//!
//! It must print `listening on HOST:PORT` on stdout (other lines may come
//! first) within [`START_BOUND`]; everything else it prints goes to
//! `<run dir>/server.log`. A crash is SIGKILL to the group, a graceful stop
//! SIGTERM (then SIGKILL after the grace period).
//! A guard process (`children::guard_group`) SIGKILLs the group should the
//! run die without stopping it.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::scenario::Plan;
use crate::server::seed;

/// How long a starting server may take to print its `listening on` line.
pub const START_BOUND: Duration = Duration::from_secs(30);

/// How a managed server is started (again).
enum Launch {
    /// `reconnoiter serve` with these arguments (without `--listen`).
    Embedded { binary: PathBuf, args: Vec<String> },
    /// `sh -c command` in its own process group, with the contract's environment.
    Command {
        command: String,
        env: Vec<(String, String)>,
        /// Our own binary, started beside each launch as its guard
        /// (`children::guard_group`): the command cannot watch for a
        /// SIGKILLed run as the embedded server does.
        guard: PathBuf,
    },
}

impl Launch {
    fn name(&self) -> String {
        match self {
            Launch::Embedded { .. } => "the embedded server".into(),
            Launch::Command { command, .. } => format!("the target command `{command}`"),
        }
    }

    fn command(&self, addr: &str) -> Command {
        match self {
            Launch::Embedded { binary, args } => {
                let mut c = Command::new(binary);
                c.args(args).args(["--listen", addr]);
                crate::children::watched_by_us(&mut c);
                c
            }
            Launch::Command { command, env, .. } => {
                let (host, port) = addr.rsplit_once(':').unwrap_or((addr, "0"));
                let mut c = Command::new("sh");
                c.args(["-c", command])
                    .envs(env.iter().map(|(k, v)| (k, v)))
                    .env("HOST", host.trim_start_matches('[').trim_end_matches(']'))
                    .env("PORT", port);
                #[cfg(unix)]
                std::os::unix::process::CommandExt::process_group(&mut c, 0);
                c
            }
        }
    }
}

/// A running managed server.
pub struct ManagedServer {
    child: Child,
    /// `host:port` it listens on; restarts reuse it so users reconnect to the same address.
    pub addr: String,
    launch: Launch,
    log: PathBuf,
}

impl ManagedServer {
    /// Starts the plan's server (its `[target] command`, or the embedded one
    /// from `binary`) with the plan's seeding and settings; its state and
    /// log go into `dir`.
    pub fn start(binary: &Path, plan: &Plan, dir: &Path) -> anyhow::Result<ManagedServer> {
        let db = dir.join("server.db").display().to_string();
        let launch = match &plan.target.command {
            Some(command) => Launch::Command {
                command: command.clone(),
                env: contract_env(plan, &db),
                guard: binary.to_owned(),
            },
            None => Launch::Embedded {
                binary: binary.to_owned(),
                args: serve_args(plan, &db)?,
            },
        };
        let log = dir.join("server.log");
        let (child, addr) = spawn(&launch, "127.0.0.1:0", &log)?;
        Ok(ManagedServer {
            child,
            addr,
            launch,
            log,
        })
    }

    /// Starts the server again on the same address and database.
    pub fn restart(&mut self) -> anyhow::Result<()> {
        let (child, addr) = spawn(&self.launch, &self.addr, &self.log)?;
        self.child = child;
        self.addr = addr;
        Ok(())
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// SIGKILL: a crash, nothing flushed beyond what the server committed.
    pub fn kill(&mut self) -> anyhow::Result<()> {
        match self.launch {
            Launch::Embedded { .. } => self.child.kill()?,
            Launch::Command { .. } => signal_group(self.child.id(), "KILL"),
        }
        self.child.wait()?;
        self.wait_group_gone(Duration::from_secs(5));
        Ok(())
    }

    /// SIGTERM, then SIGKILL if it has not exited within `grace`.
    pub fn stop(&mut self, grace: Duration) -> anyhow::Result<()> {
        let pid = self.child.id();
        let group = matches!(self.launch, Launch::Command { .. });
        if group {
            signal_group(pid, "TERM");
        } else {
            signal(pid, "TERM");
        }
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            // The shell may be gone before the server it started.
            if self.child.try_wait()?.is_some() && (!group || !group_alive(pid)) {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.kill()
    }

    /// A command's processes outlive the shell by a moment after a signal.
    fn wait_group_gone(&self, bound: Duration) {
        if !matches!(self.launch, Launch::Command { .. }) {
            return;
        }
        let deadline = Instant::now() + bound;
        while group_alive(self.child.id()) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The user ids and memberships the server was seeded with.
    pub fn roster(plan: &Plan) -> Vec<(String, Vec<String>)> {
        seed::memberships(&crate::server::Seed {
            users: plan.users.count,
            conversations: plan.users.conversations,
            members: plan.users.members,
            seed: plan.seed,
        })
    }
}

impl Drop for ManagedServer {
    fn drop(&mut self) {
        if let Launch::Command { .. } = self.launch
            && group_alive(self.child.id())
        {
            // Whatever the command left running goes with it.
            signal_group(self.child.id(), "KILL");
        }
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// `reconnoiter serve`'s arguments for the plan, without `--listen`.
fn serve_args(plan: &Plan, db: &str) -> anyhow::Result<Vec<String>> {
    let mut args: Vec<String> = vec![
        "serve".into(),
        "--db".into(),
        db.into(),
        "--users".into(),
        plan.users.count.to_string(),
        "--conversations".into(),
        plan.users.conversations.to_string(),
        "--members".into(),
        plan.users.members.to_string(),
        "--seed".into(),
        plan.seed.to_string(),
    ];
    let t = &plan.target;
    for (flag, d) in [
        ("--ping-interval", t.ping_interval),
        ("--ping-timeout", t.ping_timeout),
        ("--token-ttl", t.token_ttl),
    ] {
        if let Some(d) = d {
            args.extend([flag.into(), humantime::format_duration(d).to_string()]);
        }
    }
    for bug in &t.bugs {
        args.extend([
            "--bug".into(),
            serde_json::to_value(bug)?
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        ]);
    }
    Ok(args)
}

/// The environment a `[target] command` gets besides HOST and PORT.
fn contract_env(plan: &Plan, db: &str) -> Vec<(String, String)> {
    let mut env = vec![
        ("RECONNOITER_DB".to_owned(), db.to_owned()),
        ("RECONNOITER_USERS".into(), plan.users.count.to_string()),
        (
            "RECONNOITER_CONVERSATIONS".into(),
            plan.users.conversations.to_string(),
        ),
        ("RECONNOITER_MEMBERS".into(), plan.users.members.to_string()),
        ("RECONNOITER_SEED".into(), plan.seed.to_string()),
    ];
    let t = &plan.target;
    for (name, d) in [
        ("RECONNOITER_TOKEN_TTL_MS", t.token_ttl),
        ("RECONNOITER_PING_INTERVAL_MS", t.ping_interval),
        ("RECONNOITER_PING_TIMEOUT_MS", t.ping_timeout),
    ] {
        if let Some(d) = d {
            env.push((name.into(), d.as_millis().to_string()));
        }
    }
    env
}

/// Starts the server on `addr` and waits for its `listening on ADDR` line.
fn spawn(launch: &Launch, addr: &str, log: &Path) -> anyhow::Result<(Child, String)> {
    let log_file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)?;
    // A just-killed server's port can take a moment to be free again.
    for _ in 0..50 {
        let mut child = launch
            .command(addr)
            .stdout(Stdio::piped())
            .stderr(log_file.try_clone()?)
            .stdin(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {}", launch.name()))?;
        crate::children::started(child.id(), matches!(launch, Launch::Command { .. }));
        if let Launch::Command { guard, .. } = launch {
            start_guard(guard, child.id());
        }
        let stdout = child.stdout.take().expect("piped stdout");
        let listening = watch_stdout(stdout, log_file.try_clone()?);
        match listening.recv_timeout(START_BOUND) {
            Ok(bound) => return Ok((child, bound)),
            Err(mpsc::RecvTimeoutError::Timeout) => {
                kill_now(&mut child, launch);
                bail!(
                    "{} did not print `listening on HOST:PORT` within {START_BOUND:?}; see {}",
                    launch.name(),
                    log.display()
                );
            }
            // Its stdout closed without the line: it exited (or is exiting).
            Err(mpsc::RecvTimeoutError::Disconnected) => {}
        }
        let status = child.wait()?;
        if addr.ends_with(":0") {
            bail!(
                "{} exited with {status} before listening; see {}{}",
                launch.name(),
                log.display(),
                tail(log, 12)
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    bail!(
        "{} could not listen on {addr} again; see {}{}",
        launch.name(),
        log.display(),
        tail(log, 12)
    )
}

/// Starts `reconnoiter guard-group` for a command's process group just
/// spawned; it exits by itself once the group is gone, and a thread of its
/// own reaps it. Without one, a SIGKILLed run's command lives on.
fn start_guard(binary: &Path, group: u32) {
    let mut c = Command::new(binary);
    c.args(["guard-group", "--group", &group.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    match crate::children::watched_by_us(&mut c).spawn() {
        Ok(mut guard) => {
            crate::children::started(guard.id(), false);
            std::thread::spawn(move || {
                let _ = guard.wait();
            });
        }
        Err(e) => tracing::warn!(
            "cannot start {} guard-group ({e}): if this run is SIGKILLed, its [target] command will outlive it",
            binary.display()
        ),
    }
}

/// Reads the server's stdout on a thread of its own: sends the address of
/// the first `listening on ADDR` line, copies every other line to the log,
/// and keeps reading until the server closes it (a server writing to a
/// closed pipe would die of it).
fn watch_stdout(
    stdout: std::process::ChildStdout,
    mut log: std::fs::File,
) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut tx = Some(tx);
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Some(bound) = line.trim().strip_prefix("listening on ")
                && let Some(tx) = tx.take()
            {
                let _ = tx.send(bound.to_owned());
                continue;
            }
            let _ = writeln!(log, "{line}");
        }
    });
    rx
}

fn kill_now(child: &mut Child, launch: &Launch) {
    if let Launch::Command { .. } = launch {
        signal_group(child.id(), "KILL");
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// The last `n` lines of the log, indented, for an error message.
fn tail(log: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let last = &lines[lines.len().saturating_sub(n)..];
    if last.is_empty() {
        return String::new();
    }
    format!(":\n    {}", last.join("\n    "))
}

fn signal(pid: u32, sig: &str) {
    let _ = Command::new("kill")
        .args([&format!("-{sig}"), &pid.to_string()])
        .stderr(Stdio::null())
        .status();
}

/// Signals every process of the group `pgid` (a command runs in its own).
fn signal_group(pgid: u32, sig: &str) {
    let _ = Command::new("kill")
        .args([&format!("-{sig}"), "--", &format!("-{pgid}")])
        .stderr(Stdio::null())
        .status();
}

/// Whether a process of the group is still running. Zombies do not count:
/// an orphaned server is reaped by whoever adopted it, maybe never.
pub(crate) fn group_alive(pgid: u32) -> bool {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        // No procfs: ask kill, which counts zombies too.
        return Command::new("kill")
            .args(["-0", "--", &format!("-{pgid}")])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
    };
    entries.flatten().any(|e| {
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
            return false;
        };
        // "pid (comm) state ppid pgrp ...": comm may hold spaces and parentheses.
        let mut rest = stat
            .rsplit_once(')')
            .map(|(_, r)| r)
            .unwrap_or_default()
            .split_whitespace();
        let state = rest.next();
        let pgrp = rest.nth(1).and_then(|g| g.parse::<u32>().ok());
        pgrp == Some(pgid) && !matches!(state, Some("Z" | "X"))
    })
}
