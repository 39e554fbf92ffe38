//! The embedded reference server as a real child process (of our own binary),
//! so a scenario can really kill and restart it.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};

use crate::scenario::Plan;
use crate::server::seed;

/// A running `reconnoiter serve` child.
pub struct ManagedServer {
    child: Child,
    /// `host:port` it listens on; restarts reuse it so users reconnect to the same address.
    pub addr: String,
    /// Arguments without `--listen`, kept for restarts.
    args: Vec<String>,
    binary: PathBuf,
    log: PathBuf,
}

impl ManagedServer {
    /// Starts the server with the plan's seeding and settings; the database
    /// and the server's log go into `dir`.
    pub fn start(binary: &Path, plan: &Plan, dir: &Path) -> anyhow::Result<ManagedServer> {
        let mut args: Vec<String> = vec![
            "serve".into(),
            "--db".into(),
            dir.join("server.db").display().to_string(),
            "--users".into(),
            plan.users.count.to_string(),
            "--conversations".into(),
            plan.users.conversations.to_string(),
            "--members".into(),
            plan.users.members.to_string(),
            "--seed".into(),
            plan.seed.to_string(),
        ];
        if let Some(d) = plan.target.ping_interval {
            args.extend([
                "--ping-interval".into(),
                humantime::format_duration(d).to_string(),
            ]);
        }
        if let Some(d) = plan.target.ping_timeout {
            args.extend([
                "--ping-timeout".into(),
                humantime::format_duration(d).to_string(),
            ]);
        }
        if let Some(ttl) = plan.target.token_ttl {
            args.extend([
                "--token-ttl".into(),
                humantime::format_duration(ttl).to_string(),
            ]);
        }
        for bug in &plan.target.bugs {
            args.extend([
                "--bug".into(),
                serde_json::to_value(bug)?
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            ]);
        }
        let log = dir.join("server.log");
        let (child, addr) = spawn(binary, &args, "127.0.0.1:0", &log)?;
        Ok(ManagedServer {
            child,
            addr,
            args,
            binary: binary.to_owned(),
            log,
        })
    }

    /// Starts the server again on the same address and database.
    pub fn restart(&mut self) -> anyhow::Result<()> {
        let (child, addr) = spawn(&self.binary, &self.args, &self.addr, &self.log)?;
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

    /// SIGKILL: a crash, nothing flushed beyond what SQLite committed.
    pub fn kill(&mut self) -> anyhow::Result<()> {
        self.child.kill()?;
        self.child.wait()?;
        Ok(())
    }

    /// SIGTERM, then SIGKILL if it has not exited within `grace`.
    pub fn stop(&mut self, grace: Duration) -> anyhow::Result<()> {
        signal(self.child.id(), "TERM");
        let deadline = std::time::Instant::now() + grace;
        while std::time::Instant::now() < deadline {
            if self.child.try_wait()?.is_some() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.child.kill()?;
        self.child.wait()?;
        Ok(())
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
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Spawns `serve` on `addr` and waits for its `listening on ADDR` line.
fn spawn(
    binary: &Path,
    args: &[String],
    addr: &str,
    log: &Path,
) -> anyhow::Result<(Child, String)> {
    let log_file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)?;
    // A just-killed server's port can take a moment to be free again.
    for _ in 0..50 {
        let mut child = Command::new(binary)
            .args(args)
            .args(["--listen", addr])
            .stdout(Stdio::piped())
            .stderr(log_file.try_clone()?)
            .stdin(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("piped stdout")).read_line(&mut line)?;
        if let Some(bound) = line.trim().strip_prefix("listening on ") {
            return Ok((child, bound.to_owned()));
        }
        let status = child.wait()?;
        if addr.ends_with(":0") {
            bail!(
                "the embedded server exited with {status} before listening; see {}",
                log.display()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    bail!(
        "the embedded server could not listen on {addr} again; see {}",
        log.display()
    )
}

fn signal(pid: u32, sig: &str) {
    let _ = Command::new("kill")
        .args([&format!("-{sig}"), &pid.to_string()])
        .status();
}
