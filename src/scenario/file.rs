//! The scenario file as written: serde types that refuse unknown keys, so a
//! typo is an error with a position rather than a silently ignored setting.
//! Fields that other fields constrain are `Spanned`, so a cross-field error
//! can still point at the value that is wrong.

use serde::Deserialize;
use toml::Spanned;

use super::units::{Attempts, Dur, DurRange, Rate};
use crate::server::Bug;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScenarioFile {
    #[serde(default)]
    pub run: RunSection,
    #[serde(default)]
    pub target: TargetSection,
    pub users: Spanned<UsersSection>,
    #[serde(default)]
    pub cohorts: Vec<super::faults_file::CohortSection>,
    #[serde(default)]
    pub faults: Vec<super::faults_file::FaultSection>,
    /// What gates the run: guarantees on or off, latency thresholds
    /// (see check::rules).
    pub checks: Option<Spanned<toml::Table>>,
    /// Step the user count up, one full run per stage, until a threshold
    /// breaks (run::capacity).
    pub capacity: Option<Spanned<CapacitySection>>,
}

/// `[capacity]`: the first stage runs `[users] count` users; each next stage
/// adds `step`, up to `max`, until the `knee` threshold breaks.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CapacitySection {
    /// Users added per stage.
    pub step: Spanned<u32>,
    /// The most users a stage may have.
    pub max: Spanned<u32>,
    /// Chat time per stage (instead of `[run] duration`).
    pub hold: Option<Spanned<Dur>>,
    /// The threshold whose first break marks the knee, in `--check` syntax:
    /// "delivery.p99 < 250ms".
    pub knee: Spanned<String>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RunSection {
    pub name: Option<String>,
    /// How long users chat after the ramp.
    pub duration: Option<Spanned<Dur>>,
    /// How fast users connect, e.g. "500/s".
    pub ramp: Option<Rate>,
    /// The bound on waiting for outboxes and in-flight messages at the end.
    pub drain: Option<Dur>,
    pub seed: Option<u64>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct TargetSection {
    /// An external server. Without it (and without `command`) the embedded
    /// reference server is started.
    pub url: Option<Spanned<String>>,
    /// Your own server, started by the harness as a managed process: a shell
    /// command (`sh -c`, from the current directory) that prints
    /// `listening on HOST:PORT` on stdout once it accepts connections.
    pub command: Option<Spanned<String>>,
    /// Managed servers (embedded or `command`): access token lifetime.
    pub token_ttl: Option<Spanned<Dur>>,
    /// Embedded server only: bug switches to turn on.
    pub bugs: Option<Spanned<Vec<Bug>>>,
    pub namespace: Option<String>,
    /// The Engine.IO path, "/socket.io/" by default.
    pub path: Option<String>,
    /// Managed servers (embedded or `command`): Engine.IO ping interval and
    /// timeout. A blackholed user notices after interval + timeout (45 s by default).
    pub ping_interval: Option<Spanned<Dur>>,
    pub ping_timeout: Option<Spanned<Dur>>,
    /// External server only: a shell command that restarts it (server-restart faults).
    pub restart_command: Option<Spanned<String>>,
    #[serde(default)]
    pub events: EventNames,
    #[serde(default)]
    pub api: ApiPaths,
}

/// Event names of the default protocol (DESIGN.md), each overridable.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct EventNames {
    pub join: String,
    pub leave: String,
    pub send: String,
    pub message: String,
    pub duplicate_connection: String,
    pub server_shutdown: String,
}

impl Default for EventNames {
    fn default() -> Self {
        EventNames {
            join: "join-room".into(),
            leave: "leave-room".into(),
            send: "send-message".into(),
            message: "message:new".into(),
            duplicate_connection: "duplicate-connection".into(),
            server_shutdown: "server-shutdown".into(),
        }
    }
}

/// REST paths of the default protocol, each overridable.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct ApiPaths {
    pub login: String,
    pub refresh: String,
    pub messages: String,
    pub conversations: String,
    pub health: String,
    /// Test admin: revoke a user's tokens (token-expiry faults).
    pub revoke: String,
    /// Test admin: `{id}` is replaced by the conversation (membership faults).
    pub participants: String,
}

impl Default for ApiPaths {
    fn default() -> Self {
        ApiPaths {
            login: "/api/auth/login".into(),
            refresh: "/api/auth/refresh".into(),
            messages: "/api/messages".into(),
            conversations: "/api/conversations".into(),
            health: "/health".into(),
            revoke: "/api/auth/revoke".into(),
            participants: "/api/conversations/{id}/participants".into(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UsersSection {
    pub count: Spanned<u32>,
    /// Conversations the embedded server is seeded with.
    pub conversations: Option<Spanned<u32>>,
    /// Members per conversation.
    pub members: Option<Spanned<u32>>,
    /// Messages each user sends, e.g. "1/5s". Omit for users that only listen.
    pub send_rate: Option<Rate>,
    /// Messages each user sends in all; after that it only listens.
    pub messages: Option<u32>,
    /// An extra random pause added before each send, e.g. "0s..2s".
    pub think_time: Option<DurRange>,
    /// Bytes of content per message.
    pub message_size: Option<Spanned<u32>>,
    /// What a user resends after a reconnect: the same temp_id or a new one.
    pub resend: Option<Resend>,
    /// How a user fetches what it missed after a reconnect.
    pub sync: Option<SyncMode>,
    /// How long a send (or a join) waits for its ack; more than zero.
    pub ack_timeout: Option<Spanned<Dur>>,
    /// Which client library owns the users' connections.
    pub driver: Option<Spanned<Driver>>,
    #[serde(default)]
    pub reconnection: ReconnectionSection,
}

/// Who owns a user's connection and its reconnection (see `user::driver`).
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq, serde::Serialize)]
pub enum Driver {
    /// Our own Engine.IO/Socket.IO client (`sio`) with socket.io-client's schedule.
    #[default]
    #[serde(rename = "native")]
    Native,
    /// The rust_socketio crate (0.6, async), with its own reconnection.
    #[serde(rename = "rust_socketio")]
    RustSocketio,
}

impl Driver {
    pub fn as_str(self) -> &'static str {
        match self {
            Driver::Native => "native",
            Driver::RustSocketio => "rust_socketio",
        }
    }
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Resend {
    /// Resend with the original temp_id, so an idempotent server stores it once.
    SameTempId,
    /// Resend with a fresh temp_id, as the guide's manager does.
    NewTempId,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SyncMode {
    /// `GET messages?since=` over REST after every rejoin (the guide's way).
    Rest,
    /// Rely on the server's own replay (offline queue, connection-state recovery).
    None,
}

/// socket.io-client's Manager options, with its defaults.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReconnectionSection {
    pub enabled: Option<bool>,
    pub attempts: Option<Attempts>,
    pub delay: Option<Spanned<Dur>>,
    pub delay_max: Option<Spanned<Dur>>,
    pub randomization_factor: Option<Spanned<f64>>,
    /// Per connection attempt.
    pub timeout: Option<Dur>,
}
