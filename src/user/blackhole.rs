//! A connection that outlives a blackhole is closed by the harness.
//!
//! A blackhole (Toxiproxy's `timeout` toxic at 0, ours alike) swallows every
//! byte and keeps the connection open. The Engine.IO heartbeat normally
//! closes such a connection before the heal. When it does not (the
//! harness's timers ran late on a saturated machine, or the heartbeat is
//! longer than the fault), the connection carries on after the heal with a
//! hole in the middle of its stream, which no TCP network leaves: TCP
//! retransmits or the connection dies. The user would never ask for what
//! fell in the hole (a sync starts after the newest message seen), and a
//! correct server would be blamed for loss.
//!
//! So the nemesis tells each cohort's users when a blackhole begins (before
//! it takes effect) and when it has healed. A session that was up while one
//! was in effect notes where each conversation's sync would start at that
//! moment; if the session is still up at the heal, the user closes it,
//! reconnects at once, and syncs from the noted starts. Closing a connection
//! that lost nothing only costs a reconnect; the count is in the report.

use tokio::sync::watch;

/// The `disconnected` reason the history records for such a close.
pub const OUTLIVED: &str = "outlived blackhole";

/// What the nemesis tells a cohort's users; one per cohort.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Blackholes {
    /// A blackhole is about to take effect or is in effect.
    pub active: bool,
    /// Heals so far: a user that missed the moment it was inactive (a
    /// flapping cohort can go down again before the user looks) still sees
    /// that a heal happened since its note.
    pub healed: u32,
}

impl Blackholes {
    /// Called before the toxic is added, so a user's note precedes any loss.
    pub fn begin(tx: &watch::Sender<Blackholes>) {
        tx.send_modify(|b| b.active = true);
    }

    /// Called once the toxic is removed (only if it was in effect).
    pub fn heal(tx: &watch::Sender<Blackholes>) {
        tx.send_if_modified(|b| {
            let was = b.active;
            if was {
                b.active = false;
                b.healed += 1;
            }
            was
        });
    }
}

/// A session's note, taken when it saw a blackhole in effect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hole {
    /// `Blackholes::healed` when the note was taken.
    healed: u32,
    /// Each conversation's sync start at that moment (`Seen::since`).
    pub since: Vec<Option<String>>,
}

/// What a session does after looking at its cohort's blackholes.
#[derive(Debug, PartialEq, Eq)]
pub enum Look {
    Nothing,
    /// Take a note now, with each conversation's sync start.
    Note,
    /// A blackhole was in effect and healed since the note: close.
    Outlived,
}

/// Decides from the current state and the session's note, if any.
pub fn look(now: Blackholes, note: Option<&Hole>) -> Look {
    match note {
        Some(h) if now.healed != h.healed => Look::Outlived,
        Some(_) => Look::Nothing,
        None if now.active => Look::Note,
        None => Look::Nothing,
    }
}

impl Hole {
    pub fn new(now: Blackholes, since: Vec<Option<String>>) -> Hole {
        Hole {
            healed: now.healed,
            since,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_up_through_a_blackhole_is_closed_at_the_heal() {
        let (tx, rx) = watch::channel(Blackholes::default());
        assert_eq!(look(*rx.borrow(), None), Look::Nothing);
        Blackholes::begin(&tx);
        assert_eq!(look(*rx.borrow(), None), Look::Note);
        let note = Hole::new(*rx.borrow(), vec![Some("t1".into())]);
        assert_eq!(look(*rx.borrow(), Some(&note)), Look::Nothing);
        Blackholes::heal(&tx);
        assert_eq!(look(*rx.borrow(), Some(&note)), Look::Outlived);
    }

    #[test]
    fn a_heal_missed_between_two_blackholes_still_counts() {
        let (tx, rx) = watch::channel(Blackholes::default());
        Blackholes::begin(&tx);
        let note = Hole::new(*rx.borrow(), vec![]);
        Blackholes::heal(&tx);
        Blackholes::begin(&tx);
        let now = *rx.borrow();
        assert!(now.active);
        assert_eq!(look(now, Some(&note)), Look::Outlived);
    }

    #[test]
    fn a_session_after_the_heal_has_nothing_to_do() {
        let (tx, rx) = watch::channel(Blackholes::default());
        Blackholes::begin(&tx);
        Blackholes::heal(&tx);
        assert_eq!(look(*rx.borrow(), None), Look::Nothing);
        // A heal of a cohort that was not blackholed changes nothing.
        Blackholes::heal(&tx);
        assert_eq!(rx.borrow().healed, 1);
    }
}
