//! Sends, acks and deliveries: duplicates (two ids for one send, one id
//! shown twice), phantoms, leaks to users never in the roster, order on a
//! connection, and end-to-end delivery latency.

use super::{Checker, Guarantee, Violation, delivery};
use crate::history::Event;

impl Checker {
    pub(super) fn acked(
        &mut self,
        e: &Event,
        temp_id: &str,
        conversation: &str,
        id: &str,
        seq: Option<i64>,
    ) {
        let conv = self.messages.conversation(conversation);
        self.messages.ours(conv, seq);
        let m = self.messages.message(id, conv, e.t);
        self.messages.msgs[m as usize].acked = true;
        self.link(e, e.u, temp_id, m);
    }

    /// Ties a stored message to the send it came from; a second id for one
    /// send is a duplicate store.
    pub(super) fn link(&mut self, e: &Event, sender: u32, temp_id: &str, m: u32) {
        let Some(send) = self.user(sender).send_of(temp_id) else {
            return;
        };
        let s = &mut self.users[sender as usize].sends[send as usize];
        let (sent_t, previous) = (s.sent_t, s.msg);
        if previous == delivery::NONE {
            s.msg = m;
        }
        let msg = &mut self.messages.msgs[m as usize];
        msg.lo = msg.lo.min(sent_t);
        if msg.send == delivery::NONE {
            msg.sender = sender;
            msg.send = send;
        }
        let conv = msg.conv;
        if previous != delivery::NONE && previous != m {
            let first = self.messages.id_of(previous).to_owned();
            let second = self.messages.id_of(m).to_owned();
            let conversation = self.messages.conv_name(conv).to_owned();
            self.violation(
                Violation {
                    kind: Guarantee::Duplicates,
                    explanation: format!(
                        "u{sender}'s send {temp_id} was stored twice: as {first} and as {second}"
                    ),
                    t: e.t,
                    message_id: Some(second),
                    temp_id: Some(temp_id.to_owned()),
                    sender: Some(format!("u{sender}")),
                    recipient: None,
                    conversation: Some(conversation),
                    evidence: Vec::new(),
                },
                Some(sender),
                Some(e),
            );
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn delivered(
        &mut self,
        e: &Event,
        id: &str,
        temp_id: Option<&str>,
        conversation: &str,
        sender: &str,
        seq: Option<i64>,
        via: crate::history::Via,
    ) {
        let conv = self.messages.conversation(conversation);
        let m = self.messages.message(id, conv, e.t);
        let first_sight = self.messages.msgs[m as usize].seen == 0;
        self.messages.msgs[m as usize].seen += 1;
        let sender_idx = sender.strip_prefix('u').and_then(|n| n.parse::<u32>().ok());
        if first_sight {
            // Phantom: no user of ours sent this (sender, temp_id).
            match (temp_id, sender_idx) {
                (None, _) => self.verdict.excluded.without_temp_id += 1,
                (Some(tid), Some(s))
                    if (s as usize) < self.users.len()
                        && self.users[s as usize].send_of(tid).is_some() =>
                {
                    self.messages.ours(conv, seq);
                    self.link(e, s, tid, m);
                }
                // Not (yet) a send we know: decided at the end, because a
                // merged history from several shards may show a delivery a
                // few ms before the send (their clocks differ).
                (Some(tid), s) => {
                    self.unlinked.insert(
                        (s.unwrap_or(u32::MAX), tid.into()),
                        (m, e.clone(), Vec::new()),
                    );
                }
            }
        }
        let msg = &mut self.messages.msgs[m as usize];
        msg.hi = msg.hi.min(e.t);
        let phantom = msg.phantom;
        let slot = self.messages.slot(conv, e.u);
        let again = match slot {
            Some(i) => !self.messages.msgs[m as usize].got.set(i),
            None => {
                // Never in the roster: never a member.
                if !phantom {
                    self.violation(
                        Violation {
                            kind: Guarantee::Leaks,
                            explanation: format!(
                                "u{} received {id} in {conversation} but was never a member",
                                e.u
                            ),
                            t: e.t,
                            message_id: Some(id.to_owned()),
                            temp_id: temp_id.map(str::to_owned),
                            sender: Some(sender.to_owned()),
                            recipient: Some(format!("u{}", e.u)),
                            conversation: Some(conversation.to_owned()),
                            evidence: Vec::new(),
                        },
                        Some(e.u),
                        Some(e),
                    );
                }
                false
            }
        };
        if again {
            self.verdict.counts.redelivered += 1;
            self.violation(
                Violation {
                    kind: Guarantee::Duplicates,
                    explanation: format!("u{} was shown {id} more than once ({via:?} copy)", e.u),
                    t: e.t,
                    message_id: Some(id.to_owned()),
                    temp_id: temp_id.map(str::to_owned),
                    sender: Some(sender.to_owned()),
                    recipient: Some(format!("u{}", e.u)),
                    conversation: Some(conversation.to_owned()),
                    evidence: Vec::new(),
                },
                Some(e.u),
                Some(e),
            );
            return;
        }
        self.verdict.counts.delivered += 1;
        // End-to-end latency from when the sender's schedule wanted the send.
        let msg = &self.messages.msgs[m as usize];
        let scheduled = (msg.send != delivery::NONE)
            .then(|| self.users[msg.sender as usize].sends[msg.send as usize].scheduled);
        let latency = scheduled.map(|s| e.t.saturating_sub(s));
        match (latency, temp_id) {
            (Some(us), _) => self.record_delivery_latency(us),
            // Seen before its send (a merged history: the shards' clocks
            // differ): its latency is known once the send is.
            (None, Some(tid)) if !self.unlinked.is_empty() => {
                let key = (sender_idx.unwrap_or(u32::MAX), Box::<str>::from(tid));
                if let Some((_, _, early)) = self.unlinked.get_mut(&key) {
                    early.push(e.t);
                }
            }
            (None, _) => {}
        }
        self.timeline.delivery(e.t, latency);
        if via == crate::history::Via::Live {
            match seq {
                None => self.verdict.excluded.unordered_deliveries += 1,
                Some(seq) => {
                    if let Some(last) = self.user(e.u).live_order(conv, seq)
                        && !phantom
                    {
                        self.violation(
                            Violation {
                                kind: Guarantee::Order,
                                explanation: format!(
                                    "u{} got {id} (seq {seq}) in {conversation} after seq {last} on the same connection",
                                    e.u
                                ),
                                t: e.t,
                                message_id: Some(id.to_owned()),
                                temp_id: temp_id.map(str::to_owned),
                                sender: Some(sender.to_owned()),
                                recipient: Some(format!("u{}", e.u)),
                                conversation: Some(conversation.to_owned()),
                                evidence: Vec::new(),
                            },
                            Some(e.u),
                            Some(e),
                        );
                    }
                }
            }
        }
    }

    /// A send whose message was already delivered (seen first on another shard).
    pub(super) fn late_send(&mut self, e: &Event, u: u32, temp_id: &str) {
        if let Some((m, first, early)) = self.unlinked.remove(&(u, temp_id.into())) {
            // One of this run's messages after all: its seq bounds what is
            // history in its conversation (`before_run`).
            if let crate::history::EventKind::Delivered { seq, .. } = &first.kind {
                let conv = self.messages.msgs[m as usize].conv;
                self.messages.ours(conv, *seq);
            }
            self.link(e, u, temp_id, m);
            let msg = &self.messages.msgs[m as usize];
            if msg.send != delivery::NONE {
                let scheduled = self.users[msg.sender as usize].sends[msg.send as usize].scheduled;
                for t in early {
                    self.record_delivery_latency(t.saturating_sub(scheduled));
                }
            }
        }
    }

    /// One delivery's end-to-end latency, into the run's and the interval's histogram.
    fn record_delivery_latency(&mut self, us: u64) {
        let v = us.clamp(1, super::latency::MAX_US);
        let _ = self.delivery_all.record(v);
        let _ = self.delivery_interval.record(v);
    }

    /// Whether a message no send of this run claims was stored before the
    /// run began: a server that outlives runs hands a user its history on
    /// a sync (or replays an old offline queue), which is no phantom. Its
    /// seq is below every seq this run's messages got in the conversation;
    /// where this run stored nothing to compare with, a sync's fetch counts
    /// as history and a live one stays a phantom (a server's invention
    /// arrives live). A temp_id with this run's tag is never history.
    /// Without a seq (a server that numbers nothing), only a temp_id that
    /// an earlier run of this harness wrote (`u3-0.TAG`, another TAG) tells
    /// history apart; anything else stays a phantom.
    fn before_run(&self, m: u32, e: &Event) -> bool {
        let crate::history::EventKind::Delivered {
            seq, via, temp_id, ..
        } = &e.kind
        else {
            return false;
        };
        let ours = temp_id
            .as_deref()
            .and_then(|t| t.rsplit_once('.'))
            .is_some_and(|(_, tag)| self.own_tags.iter().any(|t| **t == *tag));
        if ours {
            return false;
        }
        let Some(seq) = seq else {
            return temp_id.as_deref().is_some_and(is_harness_temp_id);
        };
        let conv = self.messages.msgs[m as usize].conv;
        match self.messages.convs[conv as usize].first_seq {
            Some(first) => *seq < first,
            None => *via == crate::history::Via::Sync,
        }
    }

    /// Deliveries no send ever claimed: phantoms.
    pub(super) fn judge_phantoms(&mut self) {
        let shard = self.header.shard;
        let mut left: Vec<_> = std::mem::take(&mut self.unlinked)
            .into_iter()
            // Another shard's sender: its sends are in that shard's history;
            // the merge decides.
            .filter(|((sender, _), _)| {
                !shard.is_some_and(|s| *sender != u32::MAX && !s.runs(*sender))
            })
            .map(|(_, v)| v)
            .collect();
        left.sort_by_key(|(_, e, _)| e.t);
        for (m, e, _) in left {
            self.messages.msgs[m as usize].phantom = true;
            if self.before_run(m, &e) {
                self.verdict.excluded.before_run += 1;
                self.verdict.counts.delivered_before_run +=
                    self.messages.msgs[m as usize].got.count() as u64;
                continue;
            }
            let crate::history::EventKind::Delivered {
                id,
                temp_id,
                conversation,
                sender,
                ..
            } = &e.kind
            else {
                continue;
            };
            self.violation(
                Violation {
                    kind: Guarantee::Phantoms,
                    explanation: format!(
                        "u{} received {id} (temp_id {}, from {sender}) that no user sent",
                        e.u,
                        temp_id.as_deref().unwrap_or("?")
                    ),
                    t: e.t,
                    message_id: Some(id.clone()),
                    temp_id: temp_id.clone(),
                    sender: Some(sender.clone()),
                    recipient: Some(format!("u{}", e.u)),
                    conversation: Some(conversation.clone()),
                    evidence: Vec::new(),
                },
                Some(e.u),
                Some(&e),
            );
        }
    }
}

/// A temp_id of the shape this harness writes: `NAME-N.TAG` (`u3-0.5eed7a95`).
fn is_harness_temp_id(t: &str) -> bool {
    let Some((head, tag)) = t.rsplit_once('.') else {
        return false;
    };
    let Some((name, n)) = head.rsplit_once('-') else {
        return false;
    };
    !name.is_empty()
        && !n.is_empty()
        && n.bytes().all(|b| b.is_ascii_digit())
        && !tag.is_empty()
        && tag.bytes().all(|b| b.is_ascii_alphanumeric())
}
