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
mod ids;
mod judge;
mod lifecycle;
mod receive;
mod users;

pub use judge::Ending;

use std::collections::{BTreeMap, HashMap};

pub use latency::{Latencies, MetricKey};
pub use rules::Rules;
pub use verdict::{Guarantee, Mode, Verdict, Violation};

use crate::history::{Event, EventKind, Header};
use crate::scenario::FaultKind;
use delivery::Messages;
use users::UserState;

/// The checker's hash maps: keys are ids the harness itself recorded, not
/// attacker-chosen, so a fast non-DoS-resistant hash is fine (SipHash was a
/// visible share of the time per delivery).
type FastMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;

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

/// A delivery seen before its send, by (sender, temp_id): the message, the
/// first delivery (a phantom's evidence), and the times of the deliveries
/// seen before the send, whose latency is known once it is.
type Unlinked = (u32, Event, Vec<u64>);

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
    /// End-to-end delivery latency, overall and this interval: one sample
    /// per delivery, so kept out of the keyed maps (a lookup per delivery
    /// was a visible share of the checker's time).
    delivery_all: hdrhistogram::Histogram<u64>,
    delivery_interval: hdrhistogram::Histogram<u64>,
    timeline: timeline::Timeline,
    verdict: Verdict,
    lag: hdrhistogram::Histogram<u64>,
    /// Revocations per user: (call begin, call end).
    revoked: HashMap<u32, Vec<(u64, Option<u64>)>>,
    /// Messages delivered before (or without) the send that claims them:
    /// (sender, temp_id) → (message, its first delivery).
    unlinked: FastMap<(u32, Box<str>), Unlinked>,
    /// Violations found per kind (exact; the evidence list is capped).
    found: BTreeMap<Guarantee, u64>,
    last_t: u64,
    /// The run tags of this history's sends (`u3-0.TAG`; one per harness
    /// process, so one per shard). A message no send claims whose temp_id
    /// carries one is this run's own, misattributed or invented, and never
    /// history from before the run, whatever its seq says.
    own_tags: Vec<Box<str>>,
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
            delivery_all: latency::new_histogram(),
            delivery_interval: latency::new_histogram(),
            timeline: timeline::Timeline::new(match header.shard {
                Some(s) => (0..header.users).filter(|u| s.runs(*u)).count() as u32,
                None => header.users,
            }),
            verdict,
            lag: latency::new_histogram(),
            revoked: HashMap::new(),
            found: BTreeMap::new(),
            unlinked: FastMap::default(),
            last_t: 0,
            own_tags: Vec::new(),
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
        let mut out = std::mem::take(&mut self.interval);
        if !self.delivery_interval.is_empty() {
            out.hists
                .insert(MetricKey::all("delivery"), self.delivery_interval.clone());
            self.delivery_interval.reset();
        }
        out
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

    /// Remembers a send's run tag (see `own_tags`).
    fn note_tag(&mut self, temp_id: &str) {
        if let Some((_, tag)) = temp_id.rsplit_once('.')
            && !self.own_tags.iter().any(|t| **t == *tag)
        {
            self.own_tags.push(tag.into());
        }
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
                self.note_tag(temp_id);
                let conv = self.messages.conversation(conversation);
                self.user(e.u).sent(temp_id, conv, e.t, *scheduled);
                if !self.unlinked.is_empty() {
                    self.late_send(e, e.u, temp_id);
                }
            }
            EventKind::Renamed {
                old_temp_id,
                temp_id,
            } => self.user(e.u).renamed(old_temp_id, temp_id),
            EventKind::Acked {
                temp_id,
                conversation,
                id,
                seq,
            } => {
                self.verdict.counts.acked += 1;
                self.acked(e, temp_id, conversation, id, *seq);
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
                c.observe(e)
            }
        },
    )?;
    let (verdict, lat) = checker
        .into_inner()
        .expect("the header comes first")
        .finish(ending);
    Ok((header, verdict, lat))
}

#[cfg(test)]
mod tests;
