//! The recent sequence numbers of one conversation.
//!
//! A user must tell a duplicate delivery from a new message for as long as a
//! soak test runs, but cannot remember every seq for hours. A `BTreeSet` of
//! the last 4,096 seqs did that at about 40 bytes per seq once full, so each
//! user grew by some 100 KiB over a long run and a node was allocated per
//! delivery. The reference server's seqs are dense per conversation, so a
//! sliding bitmap holds the same window in 512 bytes, grown as it fills and
//! never reallocated after. A server may number messages across all
//! conversations instead (DESIGN leaves `seq` open): one conversation's seqs
//! are then sparse and a bitmap of 4,096 seqs would hold only a few of them,
//! so [`SeqSet`] falls back to the set the moment the bitmap, less than half
//! full, would have to forget something.

use std::collections::{BTreeSet, VecDeque};

/// Bits per word.
const BITS: i64 = 64;

#[derive(Debug, Default)]
pub struct SeqWindow {
    /// Seq of the first bit of `words[0]`; a multiple of 64.
    base: i64,
    /// One bit per seq from `base` on.
    words: VecDeque<u64>,
    /// At most this many words are kept; older ones are dropped from the front.
    limit: usize,
    /// Something was dropped: seqs below `base` are forgotten, not unknown.
    slid: bool,
    /// Bits set, to tell a dense window from a sparse one.
    count: usize,
}

/// What the window says about a seq below it.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Forgotten {
    /// Counts as present (seen long ago).
    Present,
    /// Counts as absent (not known to be in the set).
    Absent,
}

impl SeqWindow {
    /// A window over at least `seqs` consecutive seqs.
    pub fn new(seqs: usize) -> SeqWindow {
        SeqWindow {
            limit: seqs.div_ceil(BITS as usize).max(1),
            ..SeqWindow::default()
        }
    }

    /// Adds `s`; true when it was not there. A seq below the window once it
    /// has slid is not added, and was there or not as `forgotten` says.
    pub fn insert(&mut self, s: i64, forgotten: Forgotten) -> bool {
        let word_base = s.div_euclid(BITS) * BITS;
        if self.words.is_empty() {
            self.base = word_base;
            self.words.push_back(0);
        }
        if s < self.base {
            // Below the first seq seen: grow downwards while nothing was
            // dropped and there is room, as the set it replaces would have.
            let need = (self.base.saturating_sub(word_base) / BITS) as u64;
            if self.slid || need > (self.limit - self.words.len()) as u64 {
                return forgotten == Forgotten::Absent;
            }
            for _ in 0..need {
                self.words.push_front(0);
            }
            self.base = word_base;
        }
        let ahead = s.saturating_sub(self.base) / BITS;
        if ahead >= (self.words.len() + self.limit) as i64 {
            // So far ahead that nothing held stays in the window: start over
            // there rather than slide word by word (seqs may be timestamps).
            self.words.clear();
            self.words.push_back(0);
            self.base = word_base;
            self.slid = true;
            self.count = 0;
        }
        let mut index = ((s - self.base) / BITS) as usize;
        while index >= self.words.len() {
            self.words.push_back(0);
            if self.words.len() > self.limit {
                let dropped = self.words.pop_front().unwrap_or(0);
                self.count -= dropped.count_ones() as usize;
                self.base += BITS;
                self.slid = true;
                index -= 1;
            }
        }
        let bit = 1u64 << (s - self.base - index as i64 * BITS);
        let word = &mut self.words[index];
        let new = *word & bit == 0;
        *word |= bit;
        self.count += usize::from(new);
        new
    }

    /// Whether inserting `s` would forget a seq it holds, or `s` itself.
    fn would_forget(&self, s: i64) -> bool {
        if self.words.is_empty() {
            return false;
        }
        if s < self.base {
            let need = (self.base.saturating_sub(s.div_euclid(BITS) * BITS) / BITS) as u64;
            return self.slid || need > (self.limit - self.words.len()) as u64;
        }
        s.saturating_sub(self.base) / BITS >= self.limit as i64
    }

    /// Every seq held, in order.
    fn seqs(&self) -> impl Iterator<Item = i64> + '_ {
        self.words.iter().enumerate().flat_map(move |(i, &w)| {
            (0..BITS)
                .filter(move |b| w & (1u64 << b) != 0)
                .map(move |b| self.base + i as i64 * BITS + b)
        })
    }

    /// Whether `s` is in the window; below it, as `forgotten` says.
    pub fn contains(&self, s: i64, forgotten: Forgotten) -> bool {
        if self.words.is_empty() {
            return false;
        }
        if s < self.base {
            return self.slid && forgotten == Forgotten::Present;
        }
        let index = ((s - self.base) / BITS) as usize;
        self.words
            .get(index)
            .is_some_and(|w| w & (1u64 << ((s - self.base) % BITS)) != 0)
    }

    /// Words held, for the memory bound's test.
    #[cfg(test)]
    fn words(&self) -> usize {
        self.words.len()
    }
}

/// The last `window` seqs: a [`SeqWindow`] while the seqs are dense, the
/// set of the last `window` seqs once they turn out not to be.
#[derive(Debug)]
pub enum SeqSet {
    Dense(SeqWindow),
    Sparse { set: BTreeSet<i64>, window: usize },
}

impl SeqSet {
    pub fn new(window: usize) -> SeqSet {
        SeqSet::Dense(SeqWindow::new(window))
    }

    /// Adds `s`; true when it was not there. Once `window` seqs are held, one
    /// below all of them is not added, and was there or not as `forgotten` says.
    pub fn insert(&mut self, s: i64, forgotten: Forgotten) -> bool {
        if let SeqSet::Dense(w) = self
            && w.would_forget(s)
            && w.count < w.limit * BITS as usize / 2
        {
            let window = w.limit * BITS as usize;
            let set = w.seqs().collect();
            *self = SeqSet::Sparse { set, window };
        }
        match self {
            SeqSet::Dense(w) => w.insert(s, forgotten),
            SeqSet::Sparse { set, window } => {
                if set.len() >= *window && set.first().is_some_and(|&low| s < low) {
                    return forgotten == Forgotten::Absent;
                }
                let new = set.insert(s);
                if set.len() > *window {
                    set.pop_first();
                }
                new
            }
        }
    }

    /// Whether `s` is held; below what is held, as `forgotten` says.
    pub fn contains(&self, s: i64, forgotten: Forgotten) -> bool {
        match self {
            SeqSet::Dense(w) => w.contains(s, forgotten),
            SeqSet::Sparse { set, window } => {
                set.contains(&s)
                    || (forgotten == Forgotten::Present
                        && set.len() >= *window
                        && set.first().is_some_and(|&low| s < low))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn equals_a_set_while_the_window_holds_everything() {
        let mut w = SeqWindow::new(4096);
        let mut set = BTreeSet::new();
        // Out of order, negative, duplicates, and below the first seq seen.
        for s in [500, 3, 3, 700, -5, 64, 63, 0, 500, 3900, 129, -64, -65] {
            assert_eq!(w.insert(s, Forgotten::Present), set.insert(s), "seq {s}");
        }
        for s in -100..5000 {
            assert_eq!(
                w.contains(s, Forgotten::Absent),
                set.contains(&s),
                "seq {s}"
            );
        }
    }

    #[test]
    fn memory_stays_bounded_and_old_seqs_are_forgotten() {
        let mut w = SeqWindow::new(4096);
        for s in 0..(4096 * 3) {
            assert!(w.insert(s, Forgotten::Present));
            assert!(!w.insert(s, Forgotten::Present));
        }
        assert_eq!(w.words(), 64, "4,096 seqs in 512 bytes");
        assert!(!w.insert(0, Forgotten::Present), "forgotten counts as seen");
        assert!(w.contains(0, Forgotten::Present));
        assert!(!w.contains(0, Forgotten::Absent));
        assert!(w.insert(0, Forgotten::Absent), "or as unknown");
        // The newest 4,096 are all still there.
        for s in (4096 * 2)..(4096 * 3) {
            assert!(w.contains(s, Forgotten::Absent));
        }
    }

    #[test]
    fn a_far_jump_slides_the_whole_window() {
        let mut w = SeqWindow::new(128);
        assert!(w.insert(1, Forgotten::Present));
        assert!(w.insert(1_000_000, Forgotten::Present));
        assert!(w.words() <= 2);
        assert!(!w.insert(1, Forgotten::Present));
        assert!(
            w.insert(i64::MAX - 1, Forgotten::Present),
            "no overflow, no long slide"
        );
        assert!(!w.insert(1_000_000, Forgotten::Present));
        assert!(w.insert(i64::MAX - 2, Forgotten::Present));
        assert!(!w.insert(i64::MAX - 2, Forgotten::Present));
        assert!(
            !w.insert(i64::MIN, Forgotten::Present),
            "far below: forgotten"
        );
    }

    #[test]
    fn sparse_seqs_fall_back_to_the_set() {
        // Seqs numbered across 300 conversations: every 300th is this one's.
        let mut s = SeqSet::new(4096);
        for i in 0..10_000i64 {
            assert!(s.insert(i * 300, Forgotten::Present), "seq {}", i * 300);
        }
        assert!(matches!(s, SeqSet::Sparse { .. }));
        // The last 4,096 are all remembered, as by the set it replaced.
        for i in (10_000 - 4096)..10_000i64 {
            assert!(!s.insert(i * 300, Forgotten::Present), "seq {}", i * 300);
        }
        assert!(!s.insert(0, Forgotten::Present), "older: forgotten, seen");
        // Dense seqs stay in the bitmap, however many.
        let mut d = SeqSet::new(4096);
        for i in 0..100_000 {
            assert!(d.insert(i, Forgotten::Present));
        }
        assert!(matches!(d, SeqSet::Dense(_)));
    }

    #[test]
    fn growing_down_stops_at_the_limit() {
        let mut w = SeqWindow::new(128);
        assert!(w.insert(1000, Forgotten::Present));
        assert!(w.insert(900, Forgotten::Present), "one word down: room");
        assert!(
            !w.insert(10, Forgotten::Present),
            "too far below: forgotten, as a full set would have dropped it"
        );
    }
}
