//! What every user of one run shares: the plan's user settings, the target,
//! the recorder, the counters and the phase signal.

use std::collections::HashMap;
use std::sync::Arc;

use std::sync::atomic::{AtomicU32, Ordering};

use tokio::sync::watch;

use super::stats::Stats;
use crate::history::Recorder;
use crate::scenario::{EventNames, ReconnectPolicy, UsersPlan};

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
    pub namespace: String,
    pub path: String,
    pub recorder: Recorder,
    pub stats: Arc<Stats>,
    pub phase: watch::Receiver<Phase>,
    /// conversation → audience size, for the drain's expected deliveries;
    /// the nemesis adjusts it when it removes or re-adds members.
    pub audience: Arc<Audience>,
    /// Deliveries owed per acknowledged message.
    pub ledger: Arc<super::ledger::Ledger>,
    pub seed: u64,
    /// This run's own part of every temp_id. A server keeps temp_ids to
    /// make resends idempotent, across runs too: the same scenario run
    /// twice against one server would otherwise send `u3-0` again, which
    /// the server rightly answers with the first run's message and does
    /// not broadcast, and every message of the second run would be
    /// reported lost.
    pub run_tag: String,
    /// No first send before this instant (the ramp's end) when the plan
    /// says sends wait for the ramp; None: a user sends once it has joined.
    pub sends_from: Option<tokio::time::Instant>,
}

impl Ctx {
    /// A new temp_id for `user`'s `n`-th message of this run.
    pub fn temp_id(&self, user: &str, n: u64) -> String {
        format!("{user}-{n}.{}", self.run_tag)
    }

    /// A tag no other run is likely to have (32 random bits).
    pub fn new_run_tag() -> String {
        format!("{:08x}", rand::random::<u32>())
    }
}

/// How many members each conversation has now.
#[derive(Debug, Default)]
pub struct Audience(HashMap<String, AtomicU32>);

impl Audience {
    pub fn new(sizes: impl IntoIterator<Item = (String, u32)>) -> Audience {
        Audience(
            sizes
                .into_iter()
                .map(|(c, n)| (c, AtomicU32::new(n)))
                .collect(),
        )
    }

    pub fn get(&self, conversation: &str) -> u32 {
        self.0
            .get(conversation)
            .map(|n| n.load(Ordering::Relaxed))
            .unwrap_or(0)
    }

    pub fn adjust(&self, conversation: &str, delta: i32) {
        if let Some(n) = self.0.get(conversation) {
            let _ = n.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
                Some(v.saturating_add_signed(delta))
            });
        }
    }
}
