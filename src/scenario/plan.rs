//! The resolved scenario: every default filled in, every cross-field rule
//! checked. A `Plan` is what `run` executes; nothing downstream re-validates.

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;
use toml::Spanned;

use super::error::ScenarioError;
use super::faults::{Action, Cohort, Context, Step};
use super::file::{ApiPaths, Driver, EventNames, Resend, ScenarioFile, SyncMode};
use crate::server::Bug;

mod capacity;
pub mod target;
pub use target::base_url_problem;

use capacity::resolve_capacity;
use target::resolve_target;

#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    pub name: String,
    pub source: PathBuf,
    pub seed: u64,
    /// How long users chat once the ramp is done.
    pub duration: Duration,
    /// Users connected per second during the ramp.
    pub ramp_per_sec: f64,
    /// The bound on the final drain.
    pub drain: Duration,
    pub target: TargetPlan,
    pub users: UsersPlan,
    pub reconnection: ReconnectPolicy,
    /// Users that share a proxy; network faults hit a cohort.
    pub cohorts: Vec<Cohort>,
    /// What the nemesis does and when (from the start of the chat phase).
    pub timeline: Vec<Step>,
    /// Cohorts whose clients sync differently from `users.sync`.
    pub cohort_sync: std::collections::BTreeMap<String, SyncMode>,
    /// What gates the verdict: `[checks]`, then `--check` on the command line.
    #[serde(skip)]
    pub checks: crate::check::Rules,
    /// A capacity scenario: stages of growing user counts (run::capacity).
    pub capacity: Option<CapacityPlan>,
    /// Nobody sends before the ramp has ended. A capacity stage measures N
    /// users held, not N users arriving: messages sent while the others
    /// still log in measure the server's connect storm, and in a short hold
    /// they were the stage's p99 (449 ms in the first second, 2 ms after).
    pub sends_wait_for_ramp: bool,
}

/// `[capacity]`, resolved: stage k (from 0) runs `first + k·step` users
/// (the last one capped at `max`), each a full run of `hold` chat time.
#[derive(Debug, Clone, Serialize)]
pub struct CapacityPlan {
    pub first: u32,
    pub step: u32,
    pub max: u32,
    pub hold: Duration,
    /// The knee threshold's name and value as `Rules::set` takes them:
    /// ("delivery.p99", "< 250ms").
    pub knee: (String, String),
}

impl CapacityPlan {
    /// The user count of every stage, in order.
    pub fn stages(&self) -> Vec<u32> {
        let mut out = vec![self.first];
        while let Some(&last) = out.last() {
            if last >= self.max {
                break;
            }
            out.push((last + self.step).min(self.max));
        }
        out
    }
}

impl Plan {
    /// Users connect through proxies only when a fault needs the network.
    pub fn needs_proxy(&self) -> bool {
        self.timeline
            .iter()
            .any(|s| matches!(s.action, Action::NetStart { .. }))
    }

    /// The cohort a user belongs to.
    pub fn cohort_of(&self, user: u32) -> &Cohort {
        self.cohorts
            .iter()
            .find(|c| c.contains(user))
            .unwrap_or(&self.cohorts[0])
    }

    /// How a user's client fetches what it missed: its cohort's choice, or
    /// `[users] sync`.
    pub fn sync_of(&self, user: u32) -> SyncMode {
        self.cohort_sync
            .get(&self.cohort_of(user).name)
            .copied()
            .unwrap_or(self.users.sync)
    }

    /// Who is in which conversation, as the embedded server seeds it.
    pub fn roster(&self) -> Vec<(String, Vec<String>)> {
        crate::server::seed::memberships(&crate::server::Seed {
            users: self.users.count,
            conversations: self.users.conversations,
            members: self.users.members,
            seed: self.seed,
        })
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct TargetPlan {
    /// None: start a managed server (`command`, or the embedded one).
    pub url: Option<String>,
    /// A user's own server as a managed process: `sh -c` this (see
    /// `target::managed` for the environment it gets and the line it prints).
    pub command: Option<String>,
    pub token_ttl: Option<Duration>,
    pub bugs: Vec<Bug>,
    pub namespace: String,
    pub path: String,
    pub ping_interval: Option<Duration>,
    pub ping_timeout: Option<Duration>,
    pub restart_command: Option<String>,
    pub events: EventNamesPlan,
    pub api: ApiPathsPlan,
}

/// Serializable mirrors of the file's name tables (kept apart so the file
/// model stays a pure description of the syntax).
pub type EventNamesPlan = EventNames;
pub type ApiPathsPlan = ApiPaths;

impl Serialize for EventNames {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(Some(6))?;
        m.serialize_entry("join", &self.join)?;
        m.serialize_entry("leave", &self.leave)?;
        m.serialize_entry("send", &self.send)?;
        m.serialize_entry("message", &self.message)?;
        m.serialize_entry("duplicate_connection", &self.duplicate_connection)?;
        m.serialize_entry("server_shutdown", &self.server_shutdown)?;
        m.end()
    }
}

impl Serialize for ApiPaths {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(Some(7))?;
        m.serialize_entry("login", &self.login)?;
        m.serialize_entry("refresh", &self.refresh)?;
        m.serialize_entry("messages", &self.messages)?;
        m.serialize_entry("conversations", &self.conversations)?;
        m.serialize_entry("health", &self.health)?;
        m.serialize_entry("revoke", &self.revoke)?;
        m.serialize_entry("participants", &self.participants)?;
        m.end()
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct UsersPlan {
    pub count: u32,
    pub conversations: u32,
    pub members: u32,
    /// Mean time between a user's sends; None for users that only listen.
    pub send_interval: Option<Duration>,
    /// Messages each user sends before it only listens (None: no limit), so
    /// a run's totals do not depend on timing (sharded vs whole runs compare).
    pub messages: Option<u32>,
    pub think_time: (Duration, Duration),
    pub message_size: u32,
    pub resend: Resend,
    pub sync: SyncMode,
    pub ack_timeout: Duration,
    /// Which client library owns the connections.
    pub driver: Driver,
}

/// socket.io-client's Manager reconnection options.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct ReconnectPolicy {
    pub enabled: bool,
    /// None: try forever (socket.io-client's default, Infinity).
    pub attempts: Option<u32>,
    pub delay: Duration,
    pub delay_max: Duration,
    pub randomization_factor: f64,
    /// Per connection attempt (the Manager's `timeout`).
    pub timeout: Duration,
}

impl Default for ReconnectPolicy {
    /// socket.io-client 4's defaults.
    fn default() -> Self {
        ReconnectPolicy {
            enabled: true,
            attempts: None,
            delay: Duration::from_millis(1000),
            delay_max: Duration::from_millis(5000),
            randomization_factor: 0.5,
            timeout: Duration::from_millis(20_000),
        }
    }
}

/// Checks the cross-field rules and fills in defaults.
pub fn resolve(path: &Path, text: &str, file: ScenarioFile) -> Result<Plan, ScenarioError> {
    let err = |span: Range<usize>, msg: String, fix: String| {
        ScenarioError::at(path, text, Some(span), msg).with_fix(fix)
    };
    let users_span = file.users.span();
    let users = file.users.into_inner();

    let count = *users.count.get_ref();
    if count == 0 {
        return Err(err(
            users.count.span(),
            "users.count must be at least 1".into(),
            "set count = 1 or more".into(),
        ));
    }
    let members = users
        .members
        .as_ref()
        .map(|m| *m.get_ref())
        .unwrap_or(count.min(10));
    if let Some(m) = &users.members {
        if members > count {
            return Err(err(
                m.span(),
                format!("users.members is {members}, more than users.count ({count})"),
                format!("set members to at most {count}, or raise count"),
            ));
        }
        if members == 0 {
            return Err(err(
                m.span(),
                "users.members must be at least 1".into(),
                "set members = 1 or more".into(),
            ));
        }
    }
    let conversations = match &users.conversations {
        Some(c) if *c.get_ref() == 0 => {
            return Err(err(
                c.span(),
                "users.conversations must be at least 1".into(),
                "set conversations = 1 or more".into(),
            ));
        }
        Some(c) => *c.get_ref(),
        None => count.div_ceil(10),
    };
    let message_size = users
        .message_size
        .as_ref()
        .map(|m| *m.get_ref())
        .unwrap_or(64);
    if let Some(m) = &users.message_size
        && !(1..=1_000_000).contains(&message_size)
    {
        return Err(err(
            m.span(),
            format!("users.message_size {message_size} is out of range"),
            "use 1 to 1000000 bytes".into(),
        ));
    }

    let duration = file
        .run
        .duration
        .as_ref()
        .map(|d| d.get_ref().0)
        .unwrap_or(Duration::from_secs(30));
    if let Some(d) = &file.run.duration
        && d.get_ref().0.is_zero()
    {
        return Err(err(
            d.span(),
            "run.duration must be more than zero".into(),
            "write e.g. duration = \"30s\"".into(),
        ));
    }

    // Every send and join would time out at once, and the run would pass
    // on whatever the acks did not need to say.
    if let Some(d) = &users.ack_timeout
        && d.get_ref().0.is_zero()
    {
        return Err(err(
            d.span(),
            "users.ack_timeout must be more than zero".into(),
            "write e.g. ack_timeout = \"10s\" (the default)".into(),
        ));
    }
    let reconnection = resolve_reconnection(path, text, &users.reconnection)?;
    if let Some(d) = &users.driver
        && *d.get_ref() == Driver::RustSocketio
        && reconnection.attempts.is_some_and(|n| n > u8::MAX as u32)
    {
        return Err(err(
            d.span(),
            format!(
                "driver \"rust_socketio\" counts reconnection attempts in a u8, and reconnection.attempts is {}",
                reconnection.attempts.unwrap_or_default()
            ),
            "write attempts = 255 or fewer (or \"infinite\"), or use driver = \"native\"".into(),
        ));
    }
    let target = resolve_target(path, text, file.target)?;
    let _ = users_span;
    let seed = file.run.seed.unwrap_or(1);
    // Only membership faults need the roster; computing it for a huge user
    // count would cost seconds before the run even checks that it fits.
    let needs_roster = file
        .faults
        .iter()
        .any(|f| *f.kind.get_ref() == super::faults_file::FaultKind::Membership);
    let roster: Vec<(String, Vec<u32>)> = if !needs_roster {
        Vec::new()
    } else {
        crate::server::seed::memberships(&crate::server::Seed {
            users: count,
            conversations,
            members,
            seed,
        })
        .into_iter()
        .map(|(c, ms)| {
            (
                c,
                ms.iter()
                    .filter_map(|m| m.strip_prefix('u')?.parse().ok())
                    .collect(),
            )
        })
        .collect()
    };
    let cx = Context {
        path,
        text,
        users: count,
        duration,
        seed,
        roster: &roster,
    };
    let cohorts = super::faults::cohorts(&cx, &file.cohorts)?;
    let timeline = super::faults::timeline(&cx, &cohorts, &file.faults)?;
    check_blackholes(path, text, &target, &file.faults)?;
    let restart = file
        .faults
        .iter()
        .find(|f| *f.kind.get_ref() == super::faults_file::FaultKind::ServerRestart);
    if let Some(f) = restart.filter(|_| target.url.is_some() && target.restart_command.is_none()) {
        return Err(ScenarioError::at(
            path,
            text,
            Some(f.kind.span()),
            "a server-restart fault against an external server needs [target] restart_command",
        )
        .with_fix("add restart_command = \"systemctl restart chat\" (run with sh -c), or use the embedded server"));
    }

    let mut checks = crate::check::Rules::default();
    if let Some(table) = &file.checks {
        for (key, value) in crate::check::Rules::flatten(table.get_ref()) {
            let text_value = match &value {
                toml::Value::String(v) => v.clone(),
                other => other.to_string(),
            };
            if let Err(e) = checks.set(&key, &text_value) {
                return Err(ScenarioError::at(
                    path,
                    text,
                    Some(table.span()),
                    format!("[checks] {key}: {e}"),
                )
                .with_fix(
                    "e.g. duplicates = \"allow\", reconnect.p99 = \"< 3s\", recovery.max = \"20s\"",
                ));
            }
        }
    }

    let capacity = match &file.capacity {
        Some(c) => Some(resolve_capacity(
            path,
            text,
            c,
            count,
            duration,
            &checks,
            !file.faults.is_empty() || !file.cohorts.is_empty(),
        )?),
        None => None,
    };

    let cohort_sync = file
        .cohorts
        .iter()
        .filter_map(|c| Some((c.name.get_ref().clone(), c.sync?)))
        .collect();

    Ok(Plan {
        capacity,
        sends_wait_for_ramp: false,
        cohort_sync,
        checks,
        cohorts,
        timeline,
        name: file.run.name.unwrap_or_else(|| {
            path.file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| "scenario".into())
        }),
        source: path.to_owned(),
        seed,
        duration,
        ramp_per_sec: file.run.ramp.map(|r| r.0).unwrap_or(1000.0),
        // Long enough for a blackholed user to notice (25 s + 20 s heartbeat) and back off.
        drain: file
            .run
            .drain
            .map(|d| d.0)
            .unwrap_or(Duration::from_secs(60)),
        target,
        users: UsersPlan {
            count,
            conversations,
            members,
            send_interval: users.send_rate.map(|r| r.interval()),
            messages: users.messages,
            think_time: users
                .think_time
                .map(|t| (t.low, t.high))
                .unwrap_or_default(),
            message_size,
            resend: users.resend.unwrap_or(Resend::SameTempId),
            sync: users.sync.unwrap_or(SyncMode::Rest),
            ack_timeout: users
                .ack_timeout
                .as_ref()
                .map(|d| d.get_ref().0)
                .unwrap_or(Duration::from_secs(10)),
            driver: users
                .driver
                .as_ref()
                .map(|d| *d.get_ref())
                .unwrap_or_default(),
        },
        reconnection,
    })
}

/// What a blackhole must outlast: the embedded server's heartbeat
/// (interval + timeout, after which both sides give up on a silent
/// connection), plus room for timers firing late.
const BLACKHOLE_MARGIN: Duration = Duration::from_millis(500);

/// Refuses a blackhole the connection could survive. The proxy's `timeout`
/// toxic (like Toxiproxy's) drops what it swallows; if it heals before the
/// heartbeat gives up, the connection carries on with messages missing from
/// the middle of its stream, which TCP never does on a real network, and the
/// user's sync (from the last message it saw) cannot notice the hole: a
/// correct server would be blamed for loss. Checked for the embedded server,
/// whose heartbeat is known; against your own, keep blackholes longer than
/// your pingInterval + pingTimeout.
fn check_blackholes(
    path: &Path,
    text: &str,
    target: &TargetPlan,
    faults: &[super::faults_file::FaultSection],
) -> Result<(), ScenarioError> {
    use super::faults_file::FaultKind;
    if target.url.is_some() {
        return Ok(());
    }
    let interval = target.ping_interval.unwrap_or(Duration::from_secs(25));
    let timeout = target.ping_timeout.unwrap_or(Duration::from_secs(20));
    let need = interval + timeout + BLACKHOLE_MARGIN;
    for f in faults {
        let short = match f.kind.get_ref() {
            FaultKind::Offline if f.mode.as_ref().is_some_and(|m| m.get_ref() == "blackhole") => f
                .duration
                .as_ref()
                .filter(|d| d.get_ref().0 < need)
                .map(|d| (d.span(), d.get_ref().0, "for")),
            FaultKind::Flapping
                if f.modes
                    .as_ref()
                    .is_some_and(|m| m.get_ref().iter().any(|m| m == "blackhole")) =>
            {
                f.down
                    .as_ref()
                    .filter(|d| d.get_ref().low < need)
                    .map(|d| (d.span(), d.get_ref().low, "down"))
            }
            _ => None,
        };
        if let Some((span, length, key)) = short {
            return Err(ScenarioError::at(
                path,
                text,
                Some(span),
                format!(
                    "a blackhole of {length:?} can heal before the heartbeat ({interval:?} + {timeout:?}) gives up on the connection: it would carry on with messages dropped from the middle of its stream, which no TCP network does, and read as loss"
                ),
            )
            .with_fix(format!(
                "make `{key}` at least {need:?}, or shorten [target] ping_interval/ping_timeout"
            )));
        }
    }
    Ok(())
}

fn resolve_reconnection(
    path: &Path,
    text: &str,
    r: &super::file::ReconnectionSection,
) -> Result<ReconnectPolicy, ScenarioError> {
    let d = ReconnectPolicy::default();
    let get = |v: &Option<Spanned<super::units::Dur>>, default: Duration| {
        v.as_ref().map(|s| s.get_ref().0).unwrap_or(default)
    };
    let policy = ReconnectPolicy {
        enabled: r.enabled.unwrap_or(d.enabled),
        attempts: r.attempts.map(|a| a.0).unwrap_or(d.attempts),
        delay: get(&r.delay, d.delay),
        delay_max: get(&r.delay_max, d.delay_max),
        randomization_factor: r
            .randomization_factor
            .as_ref()
            .map(|f| *f.get_ref())
            .unwrap_or(d.randomization_factor),
        timeout: r.timeout.map(|t| t.0).unwrap_or(d.timeout),
    };
    if let Some(f) = &r.randomization_factor
        && !(0.0..=1.0).contains(f.get_ref())
    {
        return Err(ScenarioError::at(
            path,
            text,
            Some(f.span()),
            format!("randomization_factor {} is outside 0..1", f.get_ref()),
        )
        .with_fix("socket.io-client takes a factor between 0 and 1 (default 0.5)"));
    }
    if policy.delay_max < policy.delay {
        let span = r.delay_max.as_ref().or(r.delay.as_ref()).map(|s| s.span());
        return Err(ScenarioError::at(
            path,
            text,
            span,
            format!(
                "reconnection.delay_max ({:?}) is less than delay ({:?})",
                policy.delay_max, policy.delay
            ),
        )
        .with_fix("delay_max caps the backoff, so it must be at least delay"));
    }
    Ok(policy)
}

#[cfg(test)]
mod tests;
