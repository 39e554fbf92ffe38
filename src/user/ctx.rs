//! What every user of one run shares: the plan's user settings, the target,
//! the recorder, the counters and the phase signal.

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::watch;

use super::stats::Stats;
use crate::history::Recorder;
use crate::scenario::{EventNames, ReconnectPolicy, UsersPlan};
use crate::target::Api;

/// Where the run is; users watch it to know when to stop sending and stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Phase {
    /// Connecting and chatting.
    Chat,
    /// No new messages; keep receiving, resending and reconnecting.
    Drain,
    /// Disconnect and exit.
    Stop,
}

pub struct Ctx {
    pub users: UsersPlan,
    pub reconnection: ReconnectPolicy,
    pub events: EventNames,
    /// Base URL the users' sockets connect to (through a proxy, later).
    pub socket_url: String,
    pub namespace: String,
    pub path: String,
    pub api: Api,
    pub recorder: Recorder,
    pub stats: Arc<Stats>,
    pub phase: watch::Receiver<Phase>,
    /// conversation → audience size, for the drain's expected deliveries.
    pub audience: HashMap<String, u32>,
    pub seed: u64,
}
