//! What can only be decided at the end: loss and membership leaks per
//! (message, member), stranded sends, then the rules, thresholds and the
//! harness's health.

use super::{Checker, Guarantee, Latencies, Mode, Rules, Verdict, Violation};
use super::{delivery, latency, membership, timeline, users, verdict};

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
        self.judge_phantoms();
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
        if !self.delivery_all.is_empty() {
            let h = std::mem::replace(&mut self.delivery_all, latency::new_histogram());
            self.latencies
                .hists
                .insert(super::MetricKey::all("delivery"), h);
        }
        verdict.metrics = self.latencies.summaries();
        verdict.thresholds = apply_thresholds(&self.rules, &self.latencies);
        verdict.harness = health(&self.lag, verdict.harness, end);
        (verdict, self.latencies)
    }

    /// Loss and membership leaks, per (message, member slot).
    pub(super) fn judge_audiences(&mut self, ending: Ending) {
        let mut found = Vec::new();
        let mut came = 0;
        for m in 0..self.messages.msgs.len() {
            let msg = &self.messages.msgs[m];
            if msg.phantom {
                continue;
            }
            // A shard counts the messages its own users had accepted; one
            // no send of this history claims is another shard's sender's
            // (its own unclaimed ones are phantoms, skipped above), counted
            // by that shard and once by the merge. Its audience here is
            // still judged below.
            if self.header.shard.is_none() || msg.send != delivery::NONE {
                self.verdict.counts.accepted += 1;
            }
            let (lo, hi) = (msg.lo, msg.hi);
            let conv = msg.conv;
            for (i, &u) in self.messages.convs[conv as usize].slots.iter().enumerate() {
                // Another shard's user: that shard (and the merge) judges it.
                if self.header.shard.is_some_and(|s| !s.runs(u)) {
                    continue;
                }
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
                            came += 1;
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
        self.verdict.counts.delivered_owed = Some(came);
        for (m, u, kind) in found {
            let msg = &self.messages.msgs[m];
            let id = self.messages.id_of(m as u32).to_owned();
            let conversation = self.messages.conv_name(msg.conv).to_owned();
            let (sender, temp_id) = if msg.send != delivery::NONE {
                // The send's latest temp_id (a renamed resend's, if any).
                let temp = self.users[msg.sender as usize]
                    .temp_ids_of(msg.send)
                    .map(str::to_owned)
                    .max_by_key(|k| (k.len(), k.clone()));
                (Some(format!("u{}", msg.sender)), temp)
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
            // When it was accepted: the timeline shows losses where they began.
            let t = msg.hi;
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
    pub(super) fn judge_stranded(&mut self, ending: Ending) {
        if ending.interrupted {
            return;
        }
        let mut found = Vec::new();
        for (u, s) in self.users.iter().enumerate() {
            for (i, send) in s.sends.iter().enumerate() {
                if send.stranded && send.msg == delivery::NONE && s.gave_up {
                    self.verdict.excluded.sender_gave_up += 1;
                } else if send.stranded && send.msg == delivery::NONE {
                    let temp = s
                        .temp_ids_of(i as u32)
                        .map(str::to_owned)
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
