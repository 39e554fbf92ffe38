//! Who was a member of a conversation when: the seeded roster, then the
//! removals and re-adds the nemesis recorded. A change is only known to lie
//! between its call's start and its answer, so a question about a moment
//! inside that window is answered "undecided", never guessed.

/// The answer to "was this user a member at the moment the message was accepted?"
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Member {
    Yes,
    No,
    /// A change was in flight somewhere in the window.
    Undecided,
}

/// One removal or re-add: the call's start and (when it answered) its end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Change {
    pub begin: u64,
    /// None while in flight, and forever when the call failed (it may or may
    /// not have happened).
    pub done: Option<u64>,
    /// True for a removal, false for a re-add.
    pub removal: bool,
}

/// One member slot's timeline. Slots exist for every user that was ever in
/// the conversation's roster; anyone else was never a member.
#[derive(Debug, Clone, Default)]
pub struct Timeline {
    pub initially: bool,
    pub changes: Vec<Change>,
}

impl Timeline {
    pub fn member(initially: bool) -> Timeline {
        Timeline {
            initially,
            changes: Vec::new(),
        }
    }

    /// Membership during the whole window `[lo, hi]` (µs).
    pub fn at(&self, lo: u64, hi: u64) -> Member {
        let mut state = self.initially;
        for c in &self.changes {
            let end = c.done.unwrap_or(u64::MAX);
            if c.begin <= hi && end >= lo {
                return Member::Undecided;
            }
            if end < lo {
                state = !c.removal;
            }
        }
        if state { Member::Yes } else { Member::No }
    }

    /// A removal that finished after `t`: what the member was owed from
    /// before `t` it may no longer be able to read.
    pub fn removed_after(&self, t: u64) -> bool {
        self.changes.iter().any(|c| c.removal && c.begin > t)
    }

    pub fn begin(&mut self, t: u64, removal: bool) {
        self.changes.push(Change {
            begin: t,
            done: None,
            removal,
        });
    }

    /// The latest change of this kind still in flight has answered.
    pub fn done(&mut self, t: u64, removal: bool) {
        if let Some(c) = self
            .changes
            .iter_mut()
            .rev()
            .find(|c| c.removal == removal && c.done.is_none())
        {
            c.done = Some(t);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn before_during_after_a_removal_and_a_readd() {
        let mut m = Timeline::member(true);
        m.begin(100, true);
        m.done(120, true);
        m.begin(500, false);
        m.done(510, false);
        assert_eq!(m.at(10, 90), Member::Yes);
        assert_eq!(
            m.at(90, 105),
            Member::Undecided,
            "accepted while the removal was in flight"
        );
        assert_eq!(m.at(110, 130), Member::Undecided);
        assert_eq!(m.at(130, 140), Member::No);
        assert_eq!(m.at(505, 505), Member::Undecided);
        assert_eq!(m.at(600, 700), Member::Yes);
        assert!(m.removed_after(50));
        assert!(!m.removed_after(200));
    }

    #[test]
    fn a_failed_call_leaves_everything_after_it_undecided() {
        let mut m = Timeline::member(true);
        m.begin(100, true);
        assert_eq!(m.at(10, 20), Member::Yes);
        assert_eq!(m.at(1_000, 2_000), Member::Undecided);
        assert_eq!(Timeline::member(false).at(0, 10), Member::No);
    }
}
