//! What the checker remembers per user: its sends (by temp_id, renames
//! folded onto the original send), its connection state for the latencies,
//! its current token for the auth check, the last live `seq` per
//! conversation on the current connection, and a few recent lifecycle
//! events for evidence.

use std::collections::VecDeque;

use super::delivery::NONE;
use crate::history::Event;
use crate::scenario::FaultKind;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Conn {
    /// Not connected yet, gave up, or stopped.
    #[default]
    Offline,
    Connected,
    /// Lost its connection and still trying.
    Reconnecting,
}

/// One send of a user (renamed resends share it).
#[derive(Debug, Clone)]
pub struct Send {
    pub sent_t: u64,
    pub scheduled: u64,
    pub conv: u32,
    /// The first message id the server gave it (NONE until acked or delivered).
    pub msg: u32,
    pub stranded: bool,
}

#[derive(Debug, Default)]
pub struct UserState {
    pub sends: Vec<Send>,
    /// Every temp_id this user sent under (renames included) …
    temp: super::ids::Ids,
    /// … and the send each one belongs to.
    temp_send: Vec<u32>,
    /// (expires_at_ms on the server's clock, when it was obtained in µs).
    pub token: (i64, u64),
    /// The attempt in progress: when it began and the token it presented.
    pub attempt: Option<(u64, (i64, u64))>,
    pub state: Conn,
    pub reconnect_from: Option<u64>,
    pub recover_from: Option<u64>,
    pub loss_fault: Option<FaultKind>,
    /// The fault window the loss is blamed on: its start and cohort index.
    pub loss_window: Option<(u64, Option<usize>)>,
    /// The start of the last fault window this user noticed.
    pub detected: Option<u64>,
    pub gave_up: bool,
    pub stopped: bool,
    /// Last live seq per conversation on the current connection.
    pub live_seq: Vec<(u32, i64)>,
    pub ring: VecDeque<Event>,
}

impl UserState {
    pub fn sent(&mut self, temp_id: &str, conv: u32, t: u64, scheduled: u64) {
        let i = self.sends.len() as u32;
        self.sends.push(Send {
            sent_t: t,
            scheduled,
            conv,
            msg: NONE,
            stranded: false,
        });
        self.name(temp_id, i);
    }

    /// `temp_id` now names send `i` (a later name wins, as a map insert would).
    fn name(&mut self, temp_id: &str, i: u32) {
        let (t, new) = self.temp.insert(temp_id);
        if new {
            self.temp_send.push(i);
        } else {
            self.temp_send[t as usize] = i;
        }
    }

    pub fn renamed(&mut self, old: &str, new: &str) {
        if let Some(i) = self.send_of(old) {
            self.name(new, i);
        }
    }

    pub fn send_of(&self, temp_id: &str) -> Option<u32> {
        self.temp.get(temp_id).map(|t| self.temp_send[t as usize])
    }

    /// The temp_ids of send `i` (its first and any renames).
    pub fn temp_ids_of(&self, i: u32) -> impl Iterator<Item = &str> {
        self.temp
            .iter()
            .filter(move |(t, _)| self.temp_send[*t as usize] == i)
            .map(|(_, s)| s)
    }

    pub fn stranded(&mut self, temp_id: &str) {
        if let Some(i) = self.send_of(temp_id) {
            self.sends[i as usize].stranded = true;
        }
    }

    /// Records a live seq; returns the previous one when this one goes backwards.
    pub fn live_order(&mut self, conv: u32, seq: i64) -> Option<i64> {
        match self.live_seq.iter_mut().find(|(c, _)| *c == conv) {
            Some((_, last)) => {
                let prev = *last;
                if seq > prev {
                    *last = seq;
                    None
                } else {
                    Some(prev)
                }
            }
            None => {
                self.live_seq.push((conv, seq));
                None
            }
        }
    }

    pub fn remember(&mut self, e: &Event, cap: usize) {
        if self.ring.len() == cap {
            self.ring.pop_front();
        }
        self.ring.push_back(e.clone());
    }
}
