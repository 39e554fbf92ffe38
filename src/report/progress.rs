//! What a run shows while it goes: an indicatif bar redrawn every second
//! when stderr is a terminal; a plain line every 5 s otherwise (a CI log
//! should not fill with redraws); nothing with `--quiet`. It only reads the
//! users' live counters and the run's phase, so it cannot slow the users.

use std::io::IsTerminal;
use std::sync::Arc;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

use crate::user::Phase;
use crate::user::stats::{Stats, StatsSnapshot};

/// How often the plain lines come when stderr is not a terminal.
pub const PLAIN_EVERY: Duration = Duration::from_secs(5);
const TTY_EVERY: Duration = Duration::from_secs(1);

/// The display while it runs; [`Progress::stop`] clears it.
pub struct Progress {
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

/// What the display reads.
pub struct Watch {
    pub stats: Arc<Stats>,
    pub start: Instant,
    /// Ramp plus chat: where the bar is full (the drain comes after).
    pub planned: Duration,
    pub users: u32,
    pub phase: watch::Receiver<Phase>,
}

impl Progress {
    /// Starts the display on stderr (none when `quiet`).
    pub fn start(w: Watch, quiet: bool) -> Progress {
        if quiet {
            return Progress {
                stop: None,
                task: None,
            };
        }
        let (tx, rx) = oneshot::channel();
        let task = if std::io::stderr().is_terminal() {
            tokio::spawn(bar(w, rx))
        } else {
            tokio::spawn(plain(w, rx))
        };
        Progress {
            stop: Some(tx),
            task: Some(task),
        }
    }

    /// Stops the display and waits until the bar is cleared, so the
    /// summary printed next starts on a clean line.
    pub async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

/// One reading of the counters, and the one before it for rates.
struct Reading {
    at: Instant,
    snap: StatsSnapshot,
}

impl Watch {
    fn read(&self) -> Reading {
        Reading {
            at: Instant::now(),
            snap: self.stats.snapshot(),
        }
    }

    fn status(&self, now: &Reading, prev: &Reading) -> Status {
        let secs = now.at.duration_since(prev.at).as_secs_f64().max(1e-3);
        let s = &now.snap;
        Status {
            phase: phase_name(*self.phase.borrow(), s, self.users),
            elapsed: now.at.duration_since(self.start),
            planned: self.planned,
            users: self.users,
            connected: s.connected.max(0) as u64,
            offline: s.offline.max(0) as u64,
            sends_per_s: s.sent.saturating_sub(prev.snap.sent) as f64 / secs,
            deliveries_per_s: s.delivered.saturating_sub(prev.snap.delivered) as f64 / secs,
            outbox: s.outbox.max(0) as u64,
            violations: Stats::get(&self.stats.violations),
        }
    }
}

/// The ramp is not a phase of its own on the channel: it is the chat phase
/// while not every user has started yet.
fn phase_name(phase: Phase, s: &StatsSnapshot, users: u32) -> &'static str {
    match phase {
        Phase::Chat if ((s.connected + s.offline).max(0) as u64) < users as u64 => "ramp",
        Phase::Chat => "chat",
        Phase::Drain => "drain",
        Phase::Stop => "stop",
    }
}

/// Everything one progress line says.
#[derive(Debug, Clone, PartialEq)]
pub struct Status {
    pub phase: &'static str,
    pub elapsed: Duration,
    pub planned: Duration,
    pub users: u32,
    pub connected: u64,
    pub offline: u64,
    pub sends_per_s: f64,
    pub deliveries_per_s: f64,
    pub outbox: u64,
    pub violations: u64,
}

impl Status {
    /// The counters after the phase and clock (the bar shows those itself).
    pub fn counters(&self) -> String {
        format!(
            "users {}/{} connected, {} offline | {:.1} sends/s, {:.1} deliveries/s | outbox {} | violations {}",
            self.connected,
            self.users,
            self.offline,
            self.sends_per_s,
            self.deliveries_per_s,
            self.outbox,
            self.violations
        )
    }

    /// The plain line for logs.
    pub fn line(&self) -> String {
        format!(
            "[{:>6.1}s/{}s] {:<5} | {}",
            self.elapsed.as_secs_f64(),
            self.planned.as_secs(),
            self.phase,
            self.counters()
        )
    }
}

async fn plain(w: Watch, mut stop: oneshot::Receiver<()>) {
    let mut tick = tokio::time::interval(PLAIN_EVERY);
    tick.tick().await;
    let mut prev = w.read();
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = &mut stop => return,
        }
        let now = w.read();
        eprintln!("{}", w.status(&now, &prev).line());
        prev = now;
    }
}

async fn bar(w: Watch, mut stop: oneshot::Receiver<()>) {
    let pb = ProgressBar::with_draw_target(
        Some(w.planned.as_secs().max(1)),
        ProgressDrawTarget::stderr(),
    );
    pb.set_style(
        ProgressStyle::with_template(
            "{spinner:.green} {prefix:<5.bold} [{bar:24.cyan/blue}] {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    pb.enable_steady_tick(Duration::from_millis(120));
    let mut tick = tokio::time::interval(TTY_EVERY);
    let mut prev = w.read();
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = &mut stop => break,
        }
        let now = w.read();
        let status = w.status(&now, &prev);
        pb.set_prefix(status.phase);
        pb.set_position(status.elapsed.as_secs().min(w.planned.as_secs().max(1)));
        pb.set_message(format!(
            "{:>4}s/{}s | {}",
            status.elapsed.as_secs(),
            status.planned.as_secs(),
            status.counters()
        ));
        prev = now;
    }
    pb.finish_and_clear();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_line_reads_left_to_right() {
        let s = Status {
            phase: "chat",
            elapsed: Duration::from_millis(12_345),
            planned: Duration::from_secs(30),
            users: 200,
            connected: 180,
            offline: 20,
            sends_per_s: 45.0,
            deliveries_per_s: 420.25,
            outbox: 3,
            violations: 0,
        };
        assert_eq!(
            s.line(),
            "[  12.3s/30s] chat  | users 180/200 connected, 20 offline | 45.0 sends/s, 420.2 deliveries/s | outbox 3 | violations 0"
        );
    }

    #[test]
    fn the_ramp_is_the_chat_phase_until_everyone_started() {
        let mut s = StatsSnapshot {
            connected: 5,
            offline: 2,
            ..Default::default()
        };
        assert_eq!(phase_name(Phase::Chat, &s, 10), "ramp");
        s.offline = 5;
        assert_eq!(phase_name(Phase::Chat, &s, 10), "chat");
        assert_eq!(phase_name(Phase::Drain, &s, 10), "drain");
    }

    /// Not a terminal (as under `cargo test`): plain lines, and stop returns.
    #[tokio::test]
    async fn stops_cleanly_and_quiet_shows_nothing() {
        let (_tx, rx) = watch::channel(Phase::Chat);
        let w = || Watch {
            stats: Arc::new(Stats::default()),
            start: Instant::now(),
            planned: Duration::from_secs(3),
            users: 1,
            phase: rx.clone(),
        };
        Progress::start(w(), true).stop().await;
        Progress::start(w(), false).stop().await;
    }
}
