//! The checker: decides from the history alone (never the network) whether
//! the server kept its guarantees, and measures latencies.
//!
//! It reads events once, in the order they were recorded, and keeps state
//! bounded by users × conversations plus one small record per accepted
//! message (its audience's deliveries folded into a bitset), never a record
//! per delivery, so an hours-long soak can be checked in memory. The run
//! feeds it live from the recorder (progress, interval logs); `report
//! check`/`merge` feed it from files; both go through [`Checker::observe`].
//!
//! The rules, in DESIGN.md's words, with what this module adds:
//! - audience: the members of the conversation when the message was
//!   accepted, i.e. somewhere between the send's creation and its first ack
//!   or delivery. A membership change whose call overlaps that window makes
//!   the pair undecided (counted, never guessed).
//! - a member removed after a message was accepted and before receiving it
//!   forfeits it (the server no longer lets them read the conversation):
//!   counted, not a loss.
//! - a user who never came back (gave up reconnecting, never logged in) is
//!   not owed anything it could not fetch: counted, not a loss.
//! - order: within one connection, live deliveries of a conversation must
//!   carry increasing `seq`; syncs are out of band and not ordered.

pub mod latency;
pub mod membership;
pub mod rules;
pub mod timeline;
pub mod verdict;

mod delivery;
mod users;

use std::collections::{BTreeMap, HashMap};

pub use latency::{Latencies, MetricKey};
pub use rules::Rules;
pub use verdict::{Guarantee, Mode, Verdict, Violation};

use crate::history::{Event, EventKind, Header};
use crate::scenario::{Action, FaultKind};
use delivery::Messages;
use users::UserState;

/// Violations kept with full evidence per kind; the counts stay exact.
pub const EVIDENCE_CAP: usize = 100;

/// Lifecycle events kept per user for evidence.
const RING: usize = 12;

/// A fault window: which kind, and when it began and healed.
#[derive(Debug, Clone)]
struct FaultWindow {
    kind: FaultKind,
    start: u64,
    heal: Option<u64>,
}

pub struct Checker {
    header: Header,
    rules: Rules,
    users: Vec<UserState>,
    /// Cohort index per user range, from the header.
    cohort_names: Vec<String>,
    /// Network and tab faults by cohort index, and the server's own.
    cohort_fault: Vec<Option<FaultWindow>>,
    server_fault: Option<FaultWindow>,
    messages: Messages,
    latencies: Latencies,
    /// Samples since the last interval was taken (for the .hlog).
    interval: Latencies,
    timeline: timeline::Timeline,
    verdict: Verdict,
    lag: hdrhistogram::Histogram<u64>,
    /// Revocations per user: (call begin, call end).
    revoked: HashMap<u32, Vec<(u64, Option<u64>)>>,
    /// Violations found per kind (exact; the evidence list is capped).
    found: BTreeMap<Guarantee, u64>,
    last_t: u64,
}

impl Checker {
    pub fn new(header: &Header, rules: Rules) -> Checker {
        let mut verdict = Verdict::default();
        verdict.counts.users = header.users;
        Checker {
            users: (0..header.users).map(|_| UserState::default()).collect(),
            cohort_names: header.cohorts.iter().map(|c| c.name.clone()).collect(),
            cohort_fault: vec![None; header.cohorts.len()],
            server_fault: None,
            messages: Messages::default(),
            latencies: Latencies::default(),
            interval: Latencies::default(),
            timeline: timeline::Timeline::new(header.users),
            verdict,
            lag: latency::new_histogram(),
            revoked: HashMap::new(),
            found: BTreeMap::new(),
            last_t: 0,
            header: header.clone(),
            rules,
        }
    }

    /// Violations found so far (for live progress; loss and stranded sends
    /// are only decided at the end).
    pub fn violations_so_far(&self) -> u64 {
        self.found.values().sum()
    }

    /// The samples since the last call (for one .hlog interval).
    pub fn take_interval(&mut self) -> Latencies {
        std::mem::take(&mut self.interval)
    }

    fn cohort_of(&self, u: u32) -> Option<usize> {
        self.header.cohorts.iter().position(|c| c.contains(u))
    }

    fn user(&mut self, u: u32) -> &mut UserState {
        if self.users.len() <= u as usize {
            self.users.resize_with(u as usize + 1, UserState::default);
        }
        &mut self.users[u as usize]
    }

    /// Reads one event.
    pub fn observe(&mut self, e: &Event) {
        self.verdict.counts.events += 1;
        if e.t > self.last_t {
            self.last_t = e.t;
            self.timeline.advance(e.t);
        }
        if e.u == u32::MAX {
            return self.harness_event(e);
        }
        match &e.kind {
            EventKind::Sent {
                temp_id,
                conversation,
                scheduled,
            } => {
                self.verdict.counts.sent += 1;
                self.timeline.send(e.t);
                let conv = self.messages.conversation(conversation);
                self.user(e.u).sent(temp_id, conv, e.t, *scheduled);
            }
            EventKind::Renamed {
                old_temp_id,
                temp_id,
            } => self.user(e.u).renamed(old_temp_id, temp_id),
            EventKind::Acked {
                temp_id,
                conversation,
                id,
                ..
            } => {
                self.verdict.counts.acked += 1;
                self.acked(e, temp_id, conversation, id);
            }
            EventKind::Rejected { .. } => self.verdict.counts.rejected += 1,
            EventKind::Delivered {
                id,
                temp_id,
                conversation,
                sender,
                seq,
                via,
                ..
            } => self.delivered(e, id, temp_id.as_deref(), conversation, sender, *seq, *via),
            EventKind::Stranded { temp_id, .. } => self.user(e.u).stranded(temp_id),
            _ => self.lifecycle(e),
        }
    }

    fn harness_event(&mut self, e: &Event) {
        match &e.kind {
            EventKind::Members {
                conversation,
                users,
            } => self.messages.set_members(conversation, users),
            EventKind::Load { lag_us, cpu } => {
                let _ = self.lag.record((*lag_us).clamp(1, latency::MAX_US));
                let h = &mut self.verdict.harness;
                h.cpu_max = h.cpu_max.max(*cpu);
                if *cpu >= 0.9 {
                    h.cpu_saturated_seconds += 1;
                }
            }
            EventKind::Fault {
                kind,
                phase,
                action,
                ..
            } => self.fault(e.t, *kind, phase, action),
            _ => {}
        }
    }

    fn fault(&mut self, t: u64, kind: FaultKind, phase: &str, action: &Action) {
        let begin = phase == "begin";
        let done = phase == "done";
        if begin {
            self.verdict.counts.faults += 1;
        }
        let name = |k: FaultKind| {
            serde_json::to_value(k)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default()
        };
        match action {
            Action::NetStart { cohort, .. } | Action::TabClose { cohort } if begin => {
                if let Some(i) = self.cohort_names.iter().position(|c| c == cohort) {
                    self.cohort_fault[i] = Some(FaultWindow {
                        kind,
                        start: t,
                        heal: None,
                    });
                }
                self.timeline
                    .fault_started(format!("{}:{cohort}", name(kind)));
            }
            Action::NetHeal { cohort, .. } | Action::TabOpen { cohort } if done => {
                if let Some(Some(w)) = self
                    .cohort_names
                    .iter()
                    .position(|c| c == cohort)
                    .map(|i| &mut self.cohort_fault[i])
                {
                    w.heal = Some(t);
                }
                self.timeline
                    .fault_ended(&format!("{}:{cohort}", name(kind)));
            }
            Action::ServerDown { .. } if begin => {
                self.server_fault = Some(FaultWindow {
                    kind,
                    start: t,
                    heal: None,
                });
                self.timeline.fault_started(name(kind));
            }
            Action::ServerUp if done => {
                if let Some(w) = &mut self.server_fault {
                    w.heal = Some(t);
                }
                self.timeline.fault_ended(&name(kind));
            }
            Action::Revoke { users } => {
                for u in users {
                    let list = self.revoked.entry(*u).or_default();
                    if begin {
                        list.push((t, None));
                    } else if done && let Some(last) = list.last_mut() {
                        last.1 = Some(t);
                    }
                }
            }
            Action::RemoveMembers { pairs } | Action::ReaddMembers { pairs } => {
                let removal = matches!(action, Action::RemoveMembers { .. });
                for (c, u) in pairs {
                    if begin {
                        self.messages.membership_begin(c, *u, t, removal);
                    } else if done {
                        self.messages.membership_done(c, *u, t, removal);
                    }
                }
            }
            _ => {}
        }
    }

    /// The fault a user's loss at `t` is blamed on: its cohort's, else the server's.
    fn fault_for(&self, u: u32, t: u64) -> Option<(FaultWindow, Option<usize>)> {
        let active = |w: &FaultWindow| w.start <= t && w.heal.is_none_or(|h| t <= h + 1_000_000);
        let cohort = self.cohort_of(u);
        if let Some(i) = cohort
            && let Some(w) = self.cohort_fault[i].as_ref().filter(|w| active(w))
        {
            return Some((w.clone(), cohort));
        }
        self.server_fault
            .as_ref()
            .filter(|w| active(w))
            .map(|w| (w.clone(), cohort))
    }

    fn tags(&self, u: u32, fault: Option<FaultKind>) -> Vec<String> {
        let mut tags = Vec::with_capacity(2);
        tags.push(match fault {
            Some(k) => format!(
                "fault:{}",
                serde_json::to_value(k)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default()
            ),
            None => "fault:none".to_owned(),
        });
        if let Some(i) = self.cohort_of(u)
            && self.cohort_names.len() > 1
        {
            tags.push(format!("cohort:{}", self.cohort_names[i]));
        }
        tags
    }

    fn sample(&mut self, metric: &str, tags: &[String], us: u64) {
        self.latencies.record(metric, tags, us);
        self.interval.record(metric, &[], us);
    }

    /// Connection lifecycle: latencies, auth, the timeline's gauges.
    fn lifecycle(&mut self, e: &Event) {
        let u = e.u;
        self.user(u).remember(e, RING);
        match &e.kind {
            EventKind::LoggedIn { expires_at_ms } => self.user(u).token = (*expires_at_ms, e.t),
            EventKind::TokenRefreshed { expires_at_ms } => {
                self.verdict.counts.token_refreshes += 1;
                self.user(u).token = (*expires_at_ms, e.t);
            }
            EventKind::Connecting { .. } => {
                let s = self.user(u);
                s.attempt = Some((e.t, s.token));
            }
            EventKind::ConnectFailed { .. } => self.verdict.counts.connect_failures += 1,
            EventKind::Connected {
                tcp,
                upgrade,
                open,
                connect,
                ..
            } => {
                self.verdict.counts.connects += 1;
                for (m, v) in [
                    ("handshake.tcp", tcp),
                    ("handshake.upgrade", upgrade),
                    ("handshake.open", open),
                    ("handshake.connect", connect),
                ] {
                    self.sample(m, &[], *v);
                }
                self.check_auth(e);
                let s = self.user(u);
                s.live_seq.clear();
                let was = s.state;
                s.state = users::Conn::Connected;
                let from = s.reconnect_from.take();
                let fault = s.loss_fault;
                match was {
                    users::Conn::Reconnecting => self.timeline.reconnecting -= 1,
                    _ => self.timeline.offline -= 1,
                }
                self.timeline.connected += 1;
                if let Some(from) = from {
                    self.verdict.counts.reconnects += 1;
                    let us = e.t.saturating_sub(from);
                    let tags = self.tags(u, fault);
                    self.sample("reconnect", &tags, us);
                    self.timeline.reconnected(us);
                }
            }
            EventKind::Disconnected { reason } => {
                self.verdict.counts.disconnects += 1;
                let client = reason == "io client disconnect";
                let blamed = self.fault_for(u, e.t);
                let s = self.user(u);
                let was_connected = s.state == users::Conn::Connected;
                s.state = users::Conn::Reconnecting;
                // A closed tab is the user's doing: its wait is not the
                // server's latency (heal-to-recovery still measures it).
                if client {
                    s.reconnect_from = None;
                    s.recover_from = None;
                } else {
                    s.reconnect_from = Some(e.t);
                    if s.recover_from.is_none() {
                        s.recover_from = Some(e.t);
                    }
                }
                s.loss_fault = blamed.as_ref().map(|(w, _)| w.kind);
                s.loss_window = blamed.as_ref().map(|(w, c)| (w.start, *c));
                let detect = match &blamed {
                    Some((w, _)) if s.detected != Some(w.start) && !client => {
                        s.detected = Some(w.start);
                        Some(e.t.saturating_sub(w.start))
                    }
                    _ => None,
                };
                if was_connected {
                    self.timeline.connected -= 1;
                    self.timeline.reconnecting += 1;
                }
                if let (Some(us), Some((w, _))) = (detect, blamed) {
                    let tags = self.tags(u, Some(w.kind));
                    self.sample("detection", &tags, us);
                }
            }
            EventKind::ReconnectFailed { .. } => {
                let s = self.user(u);
                s.gave_up = true;
                if s.state == users::Conn::Reconnecting {
                    s.state = users::Conn::Offline;
                    self.timeline.reconnecting -= 1;
                    self.timeline.offline += 1;
                }
            }
            EventKind::Recovered { .. } => {
                self.verdict.counts.recovered += 1;
                let s = self.user(u);
                let from = s.recover_from.take();
                let fault = s.loss_fault;
                let window = s.loss_window;
                let tags = self.tags(u, fault);
                if let Some(from) = from {
                    self.sample("recovery", &tags, e.t.saturating_sub(from));
                }
                // Heal-to-recovery: the same fault window, healed before now.
                let heal = window.and_then(|(start, cohort)| {
                    let w = match cohort.and_then(|i| self.cohort_fault[i].as_ref()) {
                        Some(w) if w.start == start => Some(w),
                        _ => self.server_fault.as_ref().filter(|w| w.start == start),
                    };
                    w.and_then(|w| w.heal).filter(|h| *h <= e.t)
                });
                if let Some(h) = heal {
                    self.sample("heal_to_recovery", &tags, e.t - h);
                }
            }
            EventKind::Stopped => {
                let s = self.user(u);
                s.stopped = true;
            }
            _ => {}
        }
    }

    /// An accepted connect with a token our clock says had expired (or was
    /// revoked) before the attempt began.
    fn check_auth(&mut self, e: &Event) {
        let Some((attempt_t, (exp_ms, obtained_t))) = self.user(e.u).attempt.take() else {
            return;
        };
        let wall_ms = |t: u64| self.header.started_at_ms + (t / 1_000) as i64;
        let skew = self.rules.clock_skew.as_millis() as i64;
        let mut why = None;
        if exp_ms > 0 {
            if exp_ms + skew < wall_ms(attempt_t) {
                why = Some(format!(
                    "the server accepted a connect with a token that expired {} ms before the attempt",
                    wall_ms(attempt_t) - exp_ms
                ));
            } else if exp_ms <= wall_ms(e.t) + skew && exp_ms >= wall_ms(attempt_t) - skew {
                self.verdict.excluded.auth_in_flight += 1;
            }
        }
        if why.is_none()
            && let Some(list) = self.revoked.get(&e.u)
        {
            for (begin, done) in list {
                if obtained_t < *begin {
                    match done {
                        Some(d) if *d < attempt_t => {
                            why = Some(format!(
                                "the server accepted a connect with a token revoked {} ms before the attempt",
                                (attempt_t - d) / 1_000
                            ));
                        }
                        _ if *begin <= e.t => self.verdict.excluded.auth_in_flight += 1,
                        _ => {}
                    }
                }
            }
        }
        if let Some(explanation) = why {
            let user = format!("u{}", e.u);
            self.violation(
                Violation {
                    kind: Guarantee::Auth,
                    explanation: format!("{user}: {explanation}"),
                    t: e.t,
                    message_id: None,
                    temp_id: None,
                    sender: None,
                    recipient: Some(user),
                    conversation: None,
                    evidence: Vec::new(),
                },
                Some(e.u),
                Some(e),
            );
        }
    }

    fn acked(&mut self, e: &Event, temp_id: &str, conversation: &str, id: &str) {
        let conv = self.messages.conversation(conversation);
        let m = self.messages.message(id, conv, e.t);
        self.messages.msgs[m as usize].acked = true;
        self.link(e, e.u, temp_id, m);
    }

    /// Ties a stored message to the send it came from; a second id for one
    /// send is a duplicate store.
    fn link(&mut self, e: &Event, sender: u32, temp_id: &str, m: u32) {
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
    fn delivered(
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
                    self.link(e, s, tid, m);
                }
                (Some(tid), _) => {
                    self.messages.msgs[m as usize].phantom = true;
                    self.violation(
                        Violation {
                            kind: Guarantee::Phantoms,
                            explanation: format!(
                                "u{} received {id} (temp_id {tid}, from {sender}) that no user sent",
                                e.u
                            ),
                            t: e.t,
                            message_id: Some(id.to_owned()),
                            temp_id: Some(tid.to_owned()),
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
        if let Some(us) = latency {
            self.sample("delivery", &[], us);
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

    /// Counts a violation; keeps its evidence while under the cap.
    fn violation(&mut self, mut v: Violation, user: Option<u32>, event: Option<&Event>) {
        self.timeline.violation(v.t);
        let n = self.found.entry(v.kind).or_default();
        *n += 1;
        if *n <= EVIDENCE_CAP as u64 {
            if let Some(u) = user.filter(|u| (*u as usize) < self.users.len()) {
                v.evidence = self.users[u as usize]
                    .ring
                    .iter()
                    .filter_map(|e| serde_json::to_string(e).ok())
                    .collect();
            }
            if let Some(e) = event
                && let Ok(line) = serde_json::to_string(e)
            {
                v.evidence.push(line);
            }
            self.verdict.violations.push(v);
        }
    }
}

/// What the checker needs to know about how the run ended.
#[derive(Debug, Clone, Copy, Default)]
pub struct Ending {
    /// Ctrl-C: no drain happened, so loss and stranded sends are not judged.
    pub interrupted: bool,
}

impl Checker {
    /// Decides what could only be decided at the end (loss, leaks through
    /// membership windows, stranded sends), applies the rules and thresholds,
    /// and returns the verdict with every histogram.
    pub fn finish(mut self, ending: Ending) -> (Verdict, Latencies) {
        self.judge_audiences(ending);
        self.judge_stranded(ending);
        let end = self.last_t;
        let mut verdict = std::mem::take(&mut self.verdict);
        verdict.timeline =
            std::mem::replace(&mut self.timeline, timeline::Timeline::new(0)).finish(end);
        verdict.guarantees = Guarantee::ALL
            .iter()
            .map(|g| {
                let violations = self.found.get(g).copied().unwrap_or(0);
                let mode = self.rules.mode(*g);
                verdict::GuaranteeResult {
                    guarantee: *g,
                    mode,
                    violations,
                    passed: violations == 0 || mode == Mode::Allow,
                }
            })
            .collect();
        verdict.metrics = self.latencies.summaries();
        verdict.thresholds = apply_thresholds(&self.rules, &self.latencies);
        verdict.harness = health(&self.lag, verdict.harness, end);
        (verdict, self.latencies)
    }

    /// Loss and membership leaks, per (message, member slot).
    fn judge_audiences(&mut self, ending: Ending) {
        let end = self.last_t;
        let mut found = Vec::new();
        for m in 0..self.messages.msgs.len() {
            let msg = &self.messages.msgs[m];
            if msg.phantom {
                continue;
            }
            self.verdict.counts.accepted += 1;
            let (lo, hi) = (msg.lo, msg.hi);
            let conv = msg.conv;
            for (i, &u) in self.messages.convs[conv as usize].slots.iter().enumerate() {
                let got = msg.got.get(i);
                match self.messages.member(conv, i, lo, hi) {
                    membership::Member::Undecided => {
                        self.verdict.excluded.membership_in_flight += 1
                    }
                    membership::Member::No if got => found.push((m, u, Guarantee::Leaks)),
                    membership::Member::No => {}
                    membership::Member::Yes => {
                        self.verdict.counts.owed += 1;
                        if got {
                            continue;
                        }
                        let user = self.users.get(u as usize);
                        if ending.interrupted {
                            self.verdict.excluded.interrupted_pairs += 1;
                        } else if self.messages.convs[conv as usize].membership[i].removed_after(hi)
                        {
                            self.verdict.excluded.forfeited_by_removal += 1;
                        } else if user.is_none_or(|s| {
                            s.gave_up || s.state == users::Conn::Offline && !s.stopped
                        }) {
                            self.verdict.excluded.recipient_offline += 1;
                        } else {
                            found.push((m, u, Guarantee::Loss));
                        }
                    }
                }
            }
        }
        for (m, u, kind) in found {
            let msg = &self.messages.msgs[m];
            let id = self.messages.id_of(m as u32).to_owned();
            let conversation = self.messages.conv_name(msg.conv).to_owned();
            let (sender, temp_id) = if msg.send != delivery::NONE {
                (Some(format!("u{}", msg.sender)), None)
            } else {
                (None, None)
            };
            let explanation = match kind {
                Guarantee::Loss => format!(
                    "u{u} never received {id} in {conversation}, accepted at {:.3}s while u{u} was a member",
                    msg.hi as f64 / 1e6
                ),
                _ => format!(
                    "u{u} received {id} in {conversation}, accepted at {:.3}s when u{u} was not a member",
                    msg.hi as f64 / 1e6
                ),
            };
            let t = if kind == Guarantee::Loss { end } else { msg.hi };
            self.violation(
                Violation {
                    kind,
                    explanation,
                    t,
                    message_id: Some(id),
                    temp_id,
                    sender,
                    recipient: Some(format!("u{u}")),
                    conversation: Some(conversation),
                    evidence: Vec::new(),
                },
                Some(u),
                None,
            );
        }
    }

    /// Sends still in an outbox at the end that the server never accepted.
    fn judge_stranded(&mut self, ending: Ending) {
        if ending.interrupted {
            return;
        }
        let mut found = Vec::new();
        for (u, s) in self.users.iter().enumerate() {
            for (i, send) in s.sends.iter().enumerate() {
                if send.stranded && send.msg == delivery::NONE {
                    let temp = s
                        .temp
                        .iter()
                        .filter(|(_, v)| **v == i as u32)
                        .map(|(k, _)| k.to_string())
                        .max_by_key(|k| k.len());
                    found.push((u as u32, send.conv, send.sent_t, temp));
                }
            }
        }
        for (u, conv, t, temp_id) in found {
            let conversation = self.messages.conv_name(conv).to_owned();
            self.violation(
                Violation {
                    kind: Guarantee::Stranded,
                    explanation: format!(
                        "u{u}'s send {} to {conversation}, created at {:.3}s, was never accepted",
                        temp_id.as_deref().unwrap_or("?"),
                        t as f64 / 1e6
                    ),
                    t,
                    message_id: None,
                    temp_id,
                    sender: Some(format!("u{u}")),
                    recipient: None,
                    conversation: Some(conversation),
                    evidence: Vec::new(),
                },
                Some(u),
                None,
            );
        }
    }
}

fn apply_thresholds(rules: &Rules, lat: &Latencies) -> Vec<verdict::ThresholdResult> {
    rules
        .thresholds
        .iter()
        .map(|t| {
            let actual = lat.get(&t.metric).and_then(|h| latency::stat(h, &t.stat));
            verdict::ThresholdResult {
                name: t.name(),
                op: t.op().to_owned(),
                limit: t.limit,
                actual,
                passed: actual.is_none_or(|a| t.holds(a)),
            }
        })
        .collect()
}

/// Event-loop lag above this at the 99th percentile makes latencies suspect.
const LAG_SUSPECT_US: u64 = 50_000;
/// ... and above this, the run cannot be judged on latency at all.
const LAG_SEVERE_US: u64 = 500_000;

fn health(
    lag: &hdrhistogram::Histogram<u64>,
    mut h: verdict::HarnessHealth,
    end: u64,
) -> verdict::HarnessHealth {
    if !lag.is_empty() {
        h.lag_p99 = lag.value_at_quantile(0.99);
        h.lag_max = lag.max();
    }
    let seconds = (end / 1_000_000).max(1) as u32;
    if h.lag_p99 >= LAG_SUSPECT_US {
        h.reasons.push(format!(
            "event-loop lag p99 {} ms (timers fire late, latencies include the harness's own delay)",
            h.lag_p99 / 1_000
        ));
    }
    if h.cpu_saturated_seconds >= 3 && h.cpu_saturated_seconds * 10 >= seconds {
        h.reasons.push(format!(
            "CPU above 90 % of all cores for {} of {seconds} s",
            h.cpu_saturated_seconds
        ));
    }
    h.suspect = !h.reasons.is_empty();
    h.severe = h.lag_p99 >= LAG_SEVERE_US;
    h
}

/// Checks a history file from disk: the same checker, fed from the file.
pub fn check_file(
    path: &std::path::Path,
    rules: Rules,
    ending: Ending,
) -> anyhow::Result<(Header, Verdict, Latencies)> {
    let checker = std::cell::RefCell::new(None::<Checker>);
    let header = crate::history::recorder::read_each(
        path,
        |h| {
            *checker.borrow_mut() = Some(Checker::new(h, rules));
            Ok(())
        },
        |e| {
            if let Some(c) = checker.borrow_mut().as_mut() {
                c.observe(&e)
            }
        },
    )?;
    let (verdict, lat) = checker
        .into_inner()
        .expect("the header comes first")
        .finish(ending);
    Ok((header, verdict, lat))
}
