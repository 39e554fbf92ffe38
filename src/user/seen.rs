//! What a user has already seen in one conversation: for telling duplicates
//! apart and for the `since` of the next sync. Bounded, because a soak test
//! runs for hours and a set of every id ever seen would grow without end.

use std::collections::VecDeque;

use super::seq_window::{Forgotten, SeqSet};

/// How many recent sequence numbers (or ids, for servers without `seq`) are
/// remembered per conversation. Anything older counts as already seen.
const WINDOW: usize = 4096;

#[derive(Debug)]
pub struct Seen {
    seqs: SeqSet,
    /// Seqs first obtained by a sync: a live copy arriving later is the
    /// server's queued replay racing the sync, not a duplicate delivery.
    synced: SeqSet,
    /// For servers that give no `seq`: the most recent ids, oldest first,
    /// each with whether a sync first obtained it (`synced`, by id).
    ids: VecDeque<(String, bool)>,
    /// `createdAt` of the newest message seen: where the next sync starts.
    newest_at: Option<String>,
    newest_seq: Option<i64>,
}

impl Default for Seen {
    fn default() -> Seen {
        Seen {
            seqs: SeqSet::new(WINDOW),
            synced: SeqSet::new(WINDOW),
            ids: VecDeque::new(),
            newest_at: None,
            newest_seq: None,
        }
    }
}

impl Seen {
    /// Notes a message; true when it is new to this user.
    pub fn insert(&mut self, id: &str, seq: Option<i64>, created_at: Option<&str>) -> bool {
        let new = match seq {
            Some(s) => self.seqs.insert(s, Forgotten::Present),
            None => {
                let new = !self.ids.iter().any(|(i, _)| i == id);
                if new {
                    self.ids.push_back((id.to_owned(), false));
                    if self.ids.len() > WINDOW {
                        self.ids.pop_front();
                    }
                }
                new
            }
        };
        if new {
            let newer = match (seq, self.newest_seq) {
                (Some(s), Some(n)) => s > n,
                _ => created_at.is_some_and(|c| self.newest_at.as_deref().is_none_or(|n| c >= n)),
            };
            if newer {
                self.newest_seq = seq.or(self.newest_seq);
                if let Some(c) = created_at {
                    // In place: this runs for every new message.
                    let at = self.newest_at.get_or_insert_with(String::new);
                    at.clear();
                    at.push_str(c);
                }
            }
        }
        new
    }

    /// Notes that message `id` (`seq`) was first obtained by a sync.
    pub fn mark_synced(&mut self, id: &str, seq: Option<i64>) {
        match seq {
            Some(s) => {
                self.synced.insert(s, Forgotten::Absent);
            }
            None => {
                if let Some(e) = self.ids.iter_mut().rev().find(|(i, _)| i == id) {
                    e.1 = true;
                }
            }
        }
    }

    /// True when this already-seen message was first obtained by a sync:
    /// by `seq`, or by id from a server that gives none (without this, the
    /// queued replay racing a sync was a duplicate against such a server).
    pub fn came_by_sync(&self, id: &str, seq: Option<i64>) -> bool {
        match seq {
            Some(s) => self.synced.contains(s, Forgotten::Absent),
            None => self.ids.iter().any(|(i, synced)| *synced && i == id),
        }
    }

    /// The `since` for a sync: the creation time of the newest message seen.
    pub fn since(&self) -> Option<String> {
        self.newest_at.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicates_by_seq_and_by_id() {
        let mut s = Seen::default();
        assert!(s.insert("m1", Some(1), Some("2026-01-01T00:00:00.001Z")));
        assert!(s.insert("m3", Some(3), Some("2026-01-01T00:00:00.003Z")));
        assert!(
            s.insert("m2", Some(2), Some("2026-01-01T00:00:00.002Z")),
            "late arrival is still new"
        );
        assert!(!s.insert("m2", Some(2), Some("2026-01-01T00:00:00.002Z")));
        assert_eq!(s.since().as_deref(), Some("2026-01-01T00:00:00.003Z"));
        let mut s = Seen::default();
        assert!(s.insert("a", None, Some("2026-01-01T00:00:00.001Z")));
        assert!(!s.insert("a", None, Some("2026-01-01T00:00:00.001Z")));
    }

    /// A live copy of what a sync fetched is the queued replay racing it,
    /// with or without seq; a live-only message seen twice is not.
    #[test]
    fn what_a_sync_fetched_is_known_by_seq_or_by_id() {
        let mut s = Seen::default();
        assert!(s.insert("m1", Some(1), None));
        s.mark_synced("m1", Some(1));
        assert!(s.insert("m2", Some(2), None));
        assert!(s.came_by_sync("m1", Some(1)));
        assert!(!s.came_by_sync("m2", Some(2)));
        let mut s = Seen::default();
        assert!(s.insert("a", None, None));
        s.mark_synced("a", None);
        assert!(s.insert("b", None, None));
        assert!(s.came_by_sync("a", None));
        assert!(!s.came_by_sync("b", None));
        assert!(!s.came_by_sync("never", None));
    }

    #[test]
    fn memory_stays_bounded() {
        let mut s = Seen::default();
        for i in 0..(WINDOW as i64 * 3) {
            assert!(s.insert("x", Some(i), None));
        }
        assert!(
            !s.insert("x", Some(0), None),
            "forgotten seqs count as seen"
        );
    }
}
