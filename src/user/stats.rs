//! Live counters every user updates: what the progress line shows and what
//! the drain waits on. Atomics, because thousands of tasks write them.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};

#[derive(Debug, Default)]
pub struct Stats {
    pub connected: AtomicI64,
    pub offline: AtomicI64,
    pub logged_in: AtomicU64,
    pub connect_failures: AtomicU64,
    pub reconnects: AtomicU64,
    pub reconnect_failed: AtomicU64,
    /// Operations the client library never finished (`stuck` events).
    pub stuck: AtomicU64,
    pub sent: AtomicU64,
    pub acked: AtomicU64,
    pub rejected: AtomicU64,
    /// New deliveries (duplicates not counted).
    pub delivered: AtomicU64,
    pub duplicates: AtomicU64,
    /// Deliveries the acked messages should produce: Σ audience size.
    pub expected: AtomicU64,
    /// Messages created and not yet acked or rejected, over all users.
    pub outbox: AtomicI64,
    pub users_done: AtomicU64,
    /// Violations the live checker found so far (loss is only decided at the end).
    pub violations: AtomicU64,
}

impl Stats {
    pub fn get(c: &AtomicU64) -> u64 {
        c.load(Relaxed)
    }

    pub fn add(c: &AtomicU64, n: u64) {
        c.fetch_add(n, Relaxed);
    }

    pub fn gauge(c: &AtomicI64, delta: i64) {
        c.fetch_add(delta, Relaxed);
    }

    /// A copy for reports.
    pub fn snapshot(&self) -> StatsSnapshot {
        StatsSnapshot {
            connected: self.connected.load(Relaxed),
            offline: self.offline.load(Relaxed),
            logged_in: self.logged_in.load(Relaxed),
            connect_failures: self.connect_failures.load(Relaxed),
            reconnects: self.reconnects.load(Relaxed),
            reconnect_failed: self.reconnect_failed.load(Relaxed),
            stuck: self.stuck.load(Relaxed),
            sent: self.sent.load(Relaxed),
            acked: self.acked.load(Relaxed),
            rejected: self.rejected.load(Relaxed),
            delivered: self.delivered.load(Relaxed),
            duplicates: self.duplicates.load(Relaxed),
            expected: self.expected.load(Relaxed),
            outbox: self.outbox.load(Relaxed),
        }
    }
}

#[derive(Debug, Clone, Copy, serde::Serialize, serde::Deserialize, PartialEq, Eq, Default)]
pub struct StatsSnapshot {
    pub connected: i64,
    pub offline: i64,
    pub logged_in: u64,
    pub connect_failures: u64,
    pub reconnects: u64,
    pub reconnect_failed: u64,
    /// Operations the client library never finished (rust_socketio driver).
    #[serde(default)]
    pub stuck: u64,
    pub sent: u64,
    pub acked: u64,
    pub rejected: u64,
    pub delivered: u64,
    pub duplicates: u64,
    pub expected: u64,
    pub outbox: i64,
}
