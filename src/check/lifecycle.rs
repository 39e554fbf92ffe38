//! Connections, tokens and faults: the reconnect, recovery, detection,
//! heal-to-recovery and handshake latencies, the timeline's gauges, and the
//! auth guarantee (a connect accepted with an expired or revoked token).

use super::users;
use super::{Checker, FaultWindow, Guarantee, Violation};
use crate::history::{Event, EventKind};
use crate::scenario::{Action, FaultKind};

impl Checker {
    pub(super) fn fault(&mut self, t: u64, kind: FaultKind, phase: &str, action: &Action) {
        // `remote`: another shard carried it out; only its due time is known
        // here, so it starts an in-flight change that never ends (undecided)
        // except for heals, which end their window at the due time.
        let remote = phase == "remote";
        let begin = phase == "begin" || remote;
        let done = phase == "done"
            || remote
                && matches!(
                    action,
                    Action::ServerUp | Action::NetHeal { .. } | Action::TabOpen { .. }
                );
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
    pub(super) fn fault_for(&self, u: u32, t: u64) -> Option<(FaultWindow, Option<usize>)> {
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

    pub(super) fn tags(&self, u: u32, fault: Option<FaultKind>) -> Vec<String> {
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

    pub(super) fn sample(&mut self, metric: &'static str, tags: &[String], us: u64) {
        self.latencies.record(metric, tags, us);
        self.interval.record(metric, &[], us);
    }

    /// Connection lifecycle: latencies, auth, the timeline's gauges.
    pub(super) fn lifecycle(&mut self, e: &Event) {
        let u = e.u;
        self.user(u).remember(e, super::RING);
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
                if reason == crate::user::blackhole::OUTLIVED {
                    self.verdict.counts.outlived_blackholes += 1;
                }
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
    pub(super) fn check_auth(&mut self, e: &Event) {
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
}
