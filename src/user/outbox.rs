//! A user's unacknowledged sends, in creation order. Messages created while
//! offline wait here; after a reconnect every one is sent again.

use std::collections::VecDeque;
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
    /// Sorted by key, a per-user counter, so iteration is creation order.
    /// A deque, not a BTreeMap: a user rarely has more than a few sends
    /// waiting, and a BTreeMap leaf for them is 900 bytes (heaptrack).
    items: VecDeque<(u64, Pending)>,
}

impl Outbox {
    pub fn push(&mut self, key: u64, p: Pending) {
        match self.items.binary_search_by_key(&key, |(k, _)| *k) {
            Ok(i) => self.items[i].1 = p,
            Err(i) => self.items.insert(i, (key, p)),
        }
    }

    pub fn get_mut(&mut self, key: u64) -> Option<&mut Pending> {
        let i = self.items.binary_search_by_key(&key, |(k, _)| *k).ok()?;
        Some(&mut self.items[i].1)
    }

    pub fn remove(&mut self, key: u64) -> Option<Pending> {
        let i = self.items.binary_search_by_key(&key, |(k, _)| *k).ok()?;
        self.items.remove(i).map(|(_, p)| p)
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The connection is gone: nothing is in flight any more.
    pub fn all_grounded(&mut self) {
        for (_, p) in self.items.iter_mut() {
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
        let (dropped, kept) = std::mem::take(&mut self.items)
            .into_iter()
            .partition(|(_, p)| &*p.conversation == conversation);
        self.items = kept;
        dropped.into_iter().map(|(_, p)| p).collect()
    }

    pub fn drain(&mut self) -> impl Iterator<Item = Pending> + '_ {
        std::mem::take(&mut self.items).into_iter().map(|(_, p)| p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending(n: u64, conversation: &str) -> Pending {
        Pending {
            temp_id: format!("t{n}"),
            conversation: conversation.into(),
            content: String::new(),
            in_flight: n.is_multiple_of(2),
        }
    }

    #[test]
    fn keeps_creation_order_whatever_the_push_order() {
        let mut outbox = Outbox::default();
        for n in [3, 1, 4, 2, 0] {
            outbox.push(n, pending(n, if n < 2 { "a" } else { "b" }));
        }
        assert_eq!(outbox.remove(4).map(|p| p.temp_id), Some("t4".into()));
        assert!(outbox.remove(4).is_none());
        outbox.get_mut(3).expect("present").in_flight = false;
        assert_eq!(outbox.grounded(), vec![1, 3]);
        let dropped: Vec<_> = outbox
            .drop_conversation("a")
            .into_iter()
            .map(|p| p.temp_id)
            .collect();
        assert_eq!(dropped, ["t0", "t1"]);
        outbox.all_grounded();
        assert_eq!(outbox.grounded(), vec![2, 3]);
        let left: Vec<_> = outbox.drain().map(|p| p.temp_id).collect();
        assert_eq!(left, ["t2", "t3"]);
        assert!(outbox.is_empty());
    }
}
