//! Event types. Every step of a simulated user is one of these.

use serde::{Deserialize, Serialize};

/// Bumped whenever the meaning of a field changes, so that an older history
/// is refused with a clear message instead of misread.
pub const HISTORY_VERSION: u32 = 2;

/// The first line of a history file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Header {
    pub history_version: u32,
    pub run_id: String,
    pub scenario: String,
    pub seed: u64,
    /// Wall-clock time (ms since the epoch) at t = 0, for correlating with
    /// server logs; all event times are monotonic offsets from it.
    pub started_at_ms: i64,
    pub users: u32,
    /// Which users share a proxy: fault events name cohorts, latencies are
    /// tagged by them.
    pub cohorts: Vec<crate::scenario::Cohort>,
    /// The rules the verdict applies (`[checks]` and `--check`), so
    /// `report merge` judges the shards' union by the same ones.
    #[serde(default)]
    pub checks: Vec<(String, String)>,
    /// This history is one shard of several; None for a whole run.
    #[serde(default)]
    pub shard: Option<Shard>,
    /// `--start-at` (ms since the epoch), which every shard of one run is
    /// given: `report merge` refuses shards that were given different ones.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_at_ms: Option<i64>,
    /// Which client library drove the users (`[users] driver`); absent in
    /// histories from before drivers, which were all "native".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver: Option<String>,
    pub reconnoiter_version: String,
}

/// Shard `index` of `count` (0-based, like a Kubernetes Indexed Job's
/// completion index): it ran the users with `user % count == index`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct Shard {
    pub index: u32,
    pub count: u32,
}

impl Shard {
    pub fn runs(&self, user: u32) -> bool {
        user % self.count == self.index
    }

    /// Server-wide faults (restarts, revocations, membership) are carried
    /// out by shard 0 only; the others record them as `remote`.
    pub fn leads(&self) -> bool {
        self.index == 0
    }

    /// Parses `K/N` (0 ≤ K < N).
    pub fn parse(s: &str) -> Result<Shard, String> {
        let (k, n) = s
            .split_once('/')
            .ok_or_else(|| format!("--shard {s}: write K/N, e.g. 0/4 (K counts from 0)"))?;
        let index: u32 = k
            .trim()
            .parse()
            .map_err(|_| format!("--shard {s}: K must be a number"))?;
        let count: u32 = n
            .trim()
            .parse()
            .map_err(|_| format!("--shard {s}: N must be a number"))?;
        if count == 0 || index >= count {
            return Err(format!(
                "--shard {s}: K must be 0..N-1 (the pod's completion index), N at least 1"
            ));
        }
        Ok(Shard { index, count })
    }
}

/// One timestamped fact.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Event {
    /// Microseconds since the run started (monotonic clock).
    pub t: u64,
    /// The user index (u{user} on the server); the harness itself is `u32::MAX`.
    pub u: u32,
    #[serde(flatten)]
    pub kind: EventKind,
}

/// How a message reached a user.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Via {
    /// A live `message:new` broadcast (including the server's queued replay).
    Live,
    /// Fetched over REST after a reconnect.
    Sync,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "ev", rename_all = "snake_case")]
pub enum EventKind {
    /// The run's phase changed (ramp, chat, drain, stop).
    Phase {
        name: String,
    },
    /// A conversation's members at the start (recorded by the harness before
    /// any user connects): the audience the checker starts from.
    Members {
        conversation: String,
        users: Vec<u32>,
    },
    /// The harness's own load over the last second: the event loop's worst
    /// lateness and the process's CPU use as a share of all cores.
    Load {
        lag_us: u64,
        cpu: f64,
    },
    /// The harness's resident memory, once a second: a soak shows whether
    /// the harness itself stays flat over hours (run::memory).
    Memory {
        rss_kib: u64,
    },
    LoggedIn {
        expires_at_ms: i64,
    },
    LoginFailed {
        error: String,
    },
    TokenRefreshed {
        expires_at_ms: i64,
    },
    TokenRefreshFailed {
        error: String,
    },
    /// A connection attempt starts; `scheduled` is when the schedule wanted it (µs).
    Connecting {
        attempt: u32,
        scheduled: u64,
    },
    /// Handshake done; phase durations in µs.
    Connected {
        attempt: u32,
        sid: String,
        tcp: u64,
        upgrade: u64,
        open: u64,
        connect: u64,
        recovered: bool,
    },
    ConnectFailed {
        attempt: u32,
        error: String,
        refused: bool,
    },
    /// The transport was lost or closed; `reason` is socket.io-client's name.
    Disconnected {
        reason: String,
    },
    /// Every attempt is used up; the user stays offline.
    ReconnectFailed {
        attempts: u32,
    },
    /// The client library did not finish `op` within the driver's bound and
    /// cannot be cancelled (a finding about the library, not the server).
    Stuck {
        op: String,
        waited_ms: u64,
    },
    Joined {
        conversation: String,
    },
    JoinRefused {
        conversation: String,
        action: String,
    },
    JoinFailed {
        conversation: String,
        error: String,
    },
    /// A message was created (into the outbox); `scheduled` is when the
    /// user's send schedule wanted it (µs), so a late harness does not
    /// flatter delivery latency.
    Sent {
        temp_id: String,
        conversation: String,
        scheduled: u64,
    },
    /// An outbox message went on the wire; `resend` after a reconnect.
    Emitted {
        temp_id: String,
        conversation: String,
        resend: bool,
    },
    /// A resend under a new temp_id replaced an old one (`resend = "new-temp-id"`).
    Renamed {
        old_temp_id: String,
        temp_id: String,
    },
    Acked {
        temp_id: String,
        conversation: String,
        id: String,
        seq: Option<i64>,
    },
    /// The server answered the send with an error (`action` set when removed).
    Rejected {
        temp_id: String,
        conversation: String,
        error: String,
        action: Option<String>,
    },
    AckTimeout {
        temp_id: String,
    },
    Delivered {
        id: String,
        temp_id: Option<String>,
        conversation: String,
        sender: String,
        seq: Option<i64>,
        via: Via,
        /// The user had already seen this id.
        dup: bool,
    },
    SyncDone {
        conversation: String,
        fetched: u32,
        new: u32,
    },
    SyncFailed {
        conversation: String,
        error: String,
    },
    /// Rooms rejoined, missed messages synced, outbox flushed.
    Recovered {
        rejoined: u32,
        synced: u32,
        resent: u32,
    },
    /// A server event the user noticed: duplicate-connection, server-shutdown, user:status...
    Notice {
        name: String,
    },
    /// The nemesis asked for (`begin`), achieved (`done`) or failed a fault step.
    Fault {
        fault: u32,
        kind: crate::scenario::FaultKind,
        phase: String,
        action: crate::scenario::Action,
        error: Option<String>,
    },
    /// What was still in the outbox when the user stopped.
    Stranded {
        temp_id: String,
        conversation: String,
    },
    Stopped,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_flat_json_object_per_event() {
        let e = Event {
            t: 12,
            u: 3,
            kind: EventKind::Acked {
                temp_id: "3-1".into(),
                conversation: "c0".into(),
                id: "m9".into(),
                seq: Some(4),
            },
        };
        let line = serde_json::to_string(&e).unwrap();
        assert_eq!(
            line,
            r#"{"t":12,"u":3,"ev":"acked","temp_id":"3-1","conversation":"c0","id":"m9","seq":4}"#
        );
        assert_eq!(serde_json::from_str::<Event>(&line).unwrap(), e);
    }
}
