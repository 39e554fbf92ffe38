//! A user's unacknowledged sends, in creation order. Messages created while
//! offline wait here; after a reconnect every one is sent again.

use std::collections::BTreeMap;
use std::sync::Arc;

#[derive(Debug, Clone)]
pub struct Pending {
    pub temp_id: String,
    pub conversation: Arc<str>,
    pub content: String,
    /// On the wire on the current connection, waiting for its ack.
    pub in_flight: bool,
}

#[derive(Debug, Default)]
pub struct Outbox {
    /// Keyed by a per-user counter, so iteration is creation order.
    items: BTreeMap<u64, Pending>,
}

impl Outbox {
    pub fn push(&mut self, key: u64, p: Pending) {
        self.items.insert(key, p);
    }

    pub fn get_mut(&mut self, key: u64) -> Option<&mut Pending> {
        self.items.get_mut(&key)
    }

    pub fn remove(&mut self, key: u64) -> Option<Pending> {
        self.items.remove(&key)
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The connection is gone: nothing is in flight any more.
    pub fn all_grounded(&mut self) {
        for p in self.items.values_mut() {
            p.in_flight = false;
        }
    }

    /// Keys of what waits to be (re)sent, oldest first.
    pub fn grounded(&self) -> Vec<u64> {
        self.items
            .iter()
            .filter(|(_, p)| !p.in_flight)
            .map(|(k, _)| *k)
            .collect()
    }

    /// Drops every message of a conversation the user was removed from.
    pub fn drop_conversation(&mut self, conversation: &str) -> Vec<Pending> {
        let keys: Vec<u64> = self
            .items
            .iter()
            .filter(|(_, p)| &*p.conversation == conversation)
            .map(|(k, _)| *k)
            .collect();
        keys.into_iter()
            .filter_map(|k| self.items.remove(&k))
            .collect()
    }

    pub fn drain(&mut self) -> impl Iterator<Item = Pending> + '_ {
        std::mem::take(&mut self.items).into_values()
    }
}
