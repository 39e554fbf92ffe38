//! The checker's memory of messages and conversations: one compact record
//! per accepted message, with the deliveries to its conversation's member
//! slots folded into a bitset.

use super::membership::{Member, Timeline};

/// "None" for u32 indexes.
pub const NONE: u32 = u32::MAX;

/// Which member slots got a message: inline for conversations up to 64
/// members (the common case), boxed beyond.
#[derive(Debug, Clone)]
pub enum Bits {
    Small(u64),
    Big(Box<[u64]>),
}

impl Bits {
    pub fn new(slots: usize) -> Bits {
        if slots <= 64 {
            Bits::Small(0)
        } else {
            Bits::Big(vec![0; slots.div_ceil(64)].into_boxed_slice())
        }
    }

    /// Sets slot `i`; false if it was already set.
    pub fn set(&mut self, i: usize) -> bool {
        let (word, bit) = (i / 64, 1u64 << (i % 64));
        let w = match self {
            Bits::Small(w) if word == 0 => w,
            Bits::Small(w) => {
                // The roster grew past 64 after this message was created.
                let mut big = vec![0; word + 1];
                big[0] = *w;
                *self = Bits::Big(big.into_boxed_slice());
                return self.set(i);
            }
            Bits::Big(ws) if word < ws.len() => &mut ws[word],
            Bits::Big(ws) => {
                let mut big = ws.to_vec();
                big.resize(word + 1, 0);
                *self = Bits::Big(big.into_boxed_slice());
                return self.set(i);
            }
        };
        let was = *w & bit != 0;
        *w |= bit;
        !was
    }

    /// How many are set.
    pub fn count(&self) -> u32 {
        match self {
            Bits::Small(w) => w.count_ones(),
            Bits::Big(ws) => ws.iter().map(|w| w.count_ones()).sum(),
        }
    }

    pub fn get(&self, i: usize) -> bool {
        let (word, bit) = (i / 64, 1u64 << (i % 64));
        match self {
            Bits::Small(w) => word == 0 && w & bit != 0,
            Bits::Big(ws) => ws.get(word).is_some_and(|w| w & bit != 0),
        }
    }
}

/// One accepted (acked or delivered) message.
#[derive(Debug, Clone)]
pub struct Msg {
    pub conv: u32,
    /// The sending user and its send index, once linked (NONE before).
    pub sender: u32,
    pub send: u32,
    /// The acceptance window: after the send was created, before its first
    /// ack or delivery (µs).
    pub lo: u64,
    pub hi: u64,
    pub acked: bool,
    /// No user of this run sent it: a phantom, or a message from before
    /// the run. Either way it owes nobody a delivery.
    pub phantom: bool,
    /// Deliveries seen (any user), so the first one links the send.
    pub seen: u32,
    pub got: Bits,
}

/// One conversation: its member slots and each slot's membership timeline.
#[derive(Debug, Default)]
pub struct Conv {
    pub name: String,
    /// The lowest `seq` the server gave a message of this run here (from
    /// acks and linked deliveries): a message nobody sent with a lower one
    /// was stored before the run began.
    pub first_seq: Option<i64>,
    pub slots: Vec<u32>,
    pub membership: Vec<Timeline>,
}

#[derive(Debug, Default)]
pub struct Messages {
    pub convs: Vec<Conv>,
    conv_index: super::FastMap<String, u32>,
    pub msgs: Vec<Msg>,
    /// Message i's id is string i.
    ids: super::ids::Ids,
}

impl Messages {
    /// Notes a seq the server gave one of this run's messages in `conv`.
    pub fn ours(&mut self, conv: u32, seq: Option<i64>) {
        if let Some(seq) = seq {
            let first = &mut self.convs[conv as usize].first_seq;
            *first = Some(first.map_or(seq, |f| f.min(seq)));
        }
    }

    pub fn conversation(&mut self, name: &str) -> u32 {
        if let Some(i) = self.conv_index.get(name) {
            return *i;
        }
        let i = self.convs.len() as u32;
        self.convs.push(Conv {
            name: name.to_owned(),
            ..Conv::default()
        });
        self.conv_index.insert(name.to_owned(), i);
        i
    }

    pub fn conv_name(&self, c: u32) -> &str {
        &self.convs[c as usize].name
    }

    /// The roster at the start.
    pub fn set_members(&mut self, name: &str, users: &[u32]) {
        let c = self.conversation(name) as usize;
        for u in users {
            if !self.convs[c].slots.contains(u) {
                self.convs[c].slots.push(*u);
                self.convs[c].membership.push(Timeline::member(true));
            }
        }
    }

    /// The member slot of `u` in `c`, if it was ever in the roster.
    pub fn slot(&self, c: u32, u: u32) -> Option<usize> {
        self.convs[c as usize].slots.iter().position(|s| *s == u)
    }

    fn slot_or_add(&mut self, name: &str, u: u32) -> usize {
        let c = self.conversation(name);
        match self.slot(c, u) {
            Some(i) => i,
            None => {
                let conv = &mut self.convs[c as usize];
                conv.slots.push(u);
                conv.membership.push(Timeline::member(false));
                conv.slots.len() - 1
            }
        }
    }

    pub fn membership_begin(&mut self, name: &str, u: u32, t: u64, removal: bool) {
        let i = self.slot_or_add(name, u);
        let c = self.conv_index[name] as usize;
        self.convs[c].membership[i].begin(t, removal);
    }

    pub fn membership_done(&mut self, name: &str, u: u32, t: u64, removal: bool) {
        let i = self.slot_or_add(name, u);
        let c = self.conv_index[name] as usize;
        self.convs[c].membership[i].done(t, removal);
    }

    /// The record for `id`, created at its first sight.
    pub fn message(&mut self, id: &str, conv: u32, t: u64) -> u32 {
        let (m, new) = self.ids.insert(id);
        if !new {
            return m;
        }
        debug_assert_eq!(m as usize, self.msgs.len());
        let slots = self.convs[conv as usize].slots.len();
        self.msgs.push(Msg {
            conv,
            sender: NONE,
            send: NONE,
            lo: t,
            hi: t,
            acked: false,
            phantom: false,
            seen: 0,
            got: Bits::new(slots),
        });
        m
    }

    pub fn id_of(&self, m: u32) -> &str {
        self.ids.str(m)
    }

    /// Membership of slot `i` of `c` over a window.
    pub fn member(&self, c: u32, i: usize, lo: u64, hi: u64) -> Member {
        self.convs[c as usize].membership[i].at(lo, hi)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bits_grow_past_64_slots() {
        let mut b = Bits::new(3);
        assert!(b.set(2));
        assert!(!b.set(2), "second set reports a repeat");
        assert!(b.set(70));
        assert!(b.get(2) && b.get(70) && !b.get(69));
        let mut big = Bits::new(130);
        assert!(big.set(129) && big.get(129) && !big.get(0));
    }
}
