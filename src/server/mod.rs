//! The embedded reference chat server: the default target, and the thing the
//! harness's own tests break on purpose through [`Bug`] switches.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// One deliberately broken guarantee, so a test can prove the checker sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, clap::ValueEnum, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Bug {
    /// Removed users can rejoin and keep receiving.
    SkipMembershipCheck,
    /// The offline queue lives in memory and is lost on restart.
    VolatileQueue,
    /// Expired tokens are accepted.
    AcceptExpiredTokens,
    /// A resent temp_id is stored again.
    NoIdempotency,
    /// The sync query drops the first message after the boundary.
    SyncOffByOne,
    /// A small random fraction of broadcasts is dropped.
    DropUnderLoad,
}

/// What the server does when a user opens a second connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum DuplicatePolicy {
    /// Tell the old socket with `duplicate-connection`, keep both.
    NotifyOld,
    /// Tell the old socket, then disconnect it.
    DisconnectOld,
    /// Say nothing, keep both.
    Allow,
}

/// Users and memberships created on a fresh database.
#[derive(Debug, Clone, Copy, Default)]
pub struct Seed {
    pub users: u32,
    pub conversations: u32,
    pub members: u32,
    pub seed: u64,
}

#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    pub db: PathBuf,
    pub token_ttl: Duration,
    pub refresh_ttl: Duration,
    pub queue_ttl: Duration,
    pub secret: String,
    pub duplicate_policy: DuplicatePolicy,
    pub seed: Seed,
    pub bugs: Vec<Bug>,
}

pub fn run_blocking(_config: ServerConfig) -> anyhow::Result<()> {
    anyhow::bail!("not yet")
}
