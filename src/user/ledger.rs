//! Deliveries still owed, per acknowledged message: the live, provisional
//! answer to "did every member get it?" that the drain waits on and the
//! summary reports until the checker judges from the history alone.
//!
//! Per message rather than in total, because totals let an extra delivery
//! (a message stored twice, a delivery of a never-acked send) hide a lost one.

use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, Ordering::Relaxed};

const SHARDS: usize = 16;

/// Owed deliveries per message id: positive while members still lack it,
/// negative when deliveries came before the ack that says how many to expect.
#[derive(Debug)]
pub struct Ledger {
    shards: Vec<Mutex<HashMap<String, Entry>>>,
    /// Σ of the positive balances: deliveries owed right now, outside the
    /// `undecided` conversations (the drain waits on this).
    owed: AtomicI64,
    /// Conversations whose membership changes during the run: what they owe
    /// is reported, not waited for or judged here.
    undecided: HashSet<String>,
}

#[derive(Debug)]
struct Entry {
    balance: i64,
    conversation: String,
}

impl Default for Ledger {
    fn default() -> Self {
        Ledger::new(HashSet::new())
    }
}

impl Ledger {
    pub fn new(undecided: HashSet<String>) -> Ledger {
        Ledger {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            owed: AtomicI64::new(0),
            undecided,
        }
    }

    fn update(&self, id: &str, conversation: &str, delta: i64) {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        id.hash(&mut h);
        let mut shard = self.shards[h.finish() as usize % SHARDS]
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        // Every delivery lands here: look up by &str first, so only the first
        // touch of a message allocates its key.
        if !shard.contains_key(id) {
            shard.insert(
                id.to_owned(),
                Entry {
                    balance: 0,
                    conversation: conversation.to_owned(),
                },
            );
        }
        let entry = shard.get_mut(id).expect("just inserted");
        let before = entry.balance.max(0);
        entry.balance += delta;
        let after = entry.balance.max(0);
        if entry.balance == 0 {
            shard.remove(id);
        }
        if !self.undecided.contains(conversation) {
            self.owed.fetch_add(after - before, Relaxed);
        }
    }

    /// The server acknowledged `id`: `audience` members must get it.
    pub fn owe(&self, id: &str, conversation: &str, audience: u32) {
        self.update(id, conversation, audience as i64);
    }

    /// One member got `id` for the first time.
    pub fn paid(&self, id: &str, conversation: &str) {
        self.update(id, conversation, -1);
    }

    /// Deliveries owed now, outside the undecided conversations.
    pub fn owed(&self) -> i64 {
        self.owed.load(Relaxed)
    }

    /// Owed deliveries split into (in decided conversations, in undecided ones).
    pub fn split(&self) -> (u64, u64) {
        let undecided = &self.undecided;
        let (mut decided, mut open) = (0, 0);
        for shard in &self.shards {
            for e in shard.lock().unwrap_or_else(|p| p.into_inner()).values() {
                if e.balance > 0 {
                    if undecided.contains(&e.conversation) {
                        open += e.balance as u64;
                    } else {
                        decided += e.balance as u64;
                    }
                }
            }
        }
        (decided, open)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_extra_delivery_does_not_hide_a_missing_one() {
        let l = Ledger::default();
        l.owe("m1", "c", 2);
        l.paid("m1", "c");
        // m2 was stored twice (never acked under this id) and delivered twice.
        l.paid("m2", "c");
        l.paid("m2", "c");
        assert_eq!(l.owed(), 1, "m1 still lacks a member");
        assert_eq!(l.split(), (1, 0));
        let l = Ledger::new(HashSet::from(["c".to_string()]));
        l.owe("m1", "c", 2);
        assert_eq!(
            (l.owed(), l.split()),
            (0, (0, 2)),
            "undecided conversations are reported, not owed"
        );
    }

    #[test]
    fn deliveries_may_come_before_the_ack() {
        let l = Ledger::default();
        l.paid("m1", "c");
        l.paid("m1", "c");
        assert_eq!(l.owed(), 0);
        l.owe("m1", "c", 2);
        assert_eq!(l.owed(), 0);
        assert!(
            l.shards.iter().all(|s| s.lock().unwrap().is_empty()),
            "settled entries are dropped"
        );
    }
}
