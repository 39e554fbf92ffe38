//! What the checker decides: one result per guarantee, the violations with
//! their evidence, what could not be decided, the latency figures, the
//! thresholds, and whether the harness itself kept up. This is the type the
//! reports are written from (summary.json is its serialization).

use serde::{Deserialize, Serialize};

/// A delivery or security guarantee of DESIGN.md. The serialized names are
/// the ones a scenario's `[checks]` table and `--check` use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Guarantee {
    /// An accepted message that an audience member still lacks after the drain.
    Loss,
    /// A message still in an outbox at the end that the server never accepted.
    Stranded,
    /// One send stored twice (two ids for one temp_id), or one id shown twice.
    Duplicates,
    /// A message delivered to a user who was not a member when it was accepted.
    Leaks,
    /// A delivered message that no user sent.
    Phantoms,
    /// A recipient saw a conversation's messages out of the server's order.
    Order,
    /// An expired or revoked token accepted by the server.
    Auth,
}

impl Guarantee {
    pub const ALL: [Guarantee; 7] = [
        Guarantee::Loss,
        Guarantee::Stranded,
        Guarantee::Duplicates,
        Guarantee::Leaks,
        Guarantee::Phantoms,
        Guarantee::Order,
        Guarantee::Auth,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Guarantee::Loss => "loss",
            Guarantee::Stranded => "stranded",
            Guarantee::Duplicates => "duplicates",
            Guarantee::Leaks => "leaks",
            Guarantee::Phantoms => "phantoms",
            Guarantee::Order => "order",
            Guarantee::Auth => "auth",
        }
    }

    pub fn parse(s: &str) -> Option<Guarantee> {
        Guarantee::ALL.into_iter().find(|g| g.name() == s)
    }

    /// What the guarantee promises, for reports.
    pub fn promise(self) -> &'static str {
        match self {
            Guarantee::Loss => "every accepted message reaches every member of its audience",
            Guarantee::Stranded => "every message a user sends is accepted by the end",
            Guarantee::Duplicates => "each send is stored once and each message shown once",
            Guarantee::Leaks => "only members when a message is accepted receive it",
            Guarantee::Phantoms => "every delivered message was sent by a user",
            Guarantee::Order => "each recipient sees a conversation in the server's order",
            Guarantee::Auth => "no expired or revoked token is accepted",
        }
    }
}

/// Whether a guarantee gates the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// A violation fails the run (exit 1).
    #[default]
    Fail,
    /// Violations are reported but do not fail the run (an at-least-once
    /// server's duplicates, say).
    Allow,
}

/// One broken promise, with what shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Violation {
    pub kind: Guarantee,
    /// One line a person reads first.
    pub explanation: String,
    /// When it was seen (µs on the run's clock); for a loss, the end of the drain.
    pub t: u64,
    pub message_id: Option<String>,
    pub temp_id: Option<String>,
    pub sender: Option<String>,
    /// The user who saw (or should have seen) it.
    pub recipient: Option<String>,
    pub conversation: Option<String>,
    /// The history lines around it (the recipient's or sender's last events),
    /// as they appear in history.jsonl.
    pub evidence: Vec<String>,
}

/// The outcome for one guarantee.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GuaranteeResult {
    pub guarantee: Guarantee,
    pub mode: Mode,
    /// Every violation found (the list in `violations` may be capped).
    pub violations: u64,
    /// Held, or violated but allowed.
    pub passed: bool,
}

/// Moments the checker refused to guess about: excluded from the judgement
/// and counted, so a reader sees how much was not decided.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Excluded {
    /// (message, member) pairs whose membership changed while the message
    /// was being accepted (the removal call still in flight).
    pub membership_in_flight: u64,
    /// Deliveries owed to a member who was removed before receiving them:
    /// the server no longer lets them read the conversation.
    pub forfeited_by_removal: u64,
    /// Connects whose token expired between the attempt and the server's answer.
    pub auth_in_flight: u64,
    /// Live deliveries without a server order (`seq`): order not checked.
    pub unordered_deliveries: u64,
    /// Deliveries without a temp_id: not checked for phantoms or stored duplicates.
    pub without_temp_id: u64,
    /// Loss not judged because the run was interrupted before its drain.
    pub interrupted_pairs: u64,
    /// Deliveries owed to users that never came back (gave up reconnecting,
    /// never connected): not a server's loss.
    pub recipient_offline: u64,
    /// Sends left in the outbox of a user whose client gave up reconnecting
    /// (`reconnect_failed`): the client stopped trying, so the server never
    /// had the chance to accept them. Not judged as stranded.
    #[serde(default)]
    pub sender_gave_up: u64,
    /// Messages nobody of this run sent that the server had stored before
    /// the run began (a seq below this run's; see `check/receive.rs`),
    /// fetched by a sync or replayed: history, neither owed nor phantoms.
    #[serde(default)]
    pub before_run: u64,
}

/// Totals the checker counted from the history.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Counts {
    pub events: u64,
    pub users: u32,
    pub sent: u64,
    /// Distinct message ids the server accepted (acked or delivered).
    pub accepted: u64,
    pub acked: u64,
    pub rejected: u64,
    /// Deliveries owed by the audiences of accepted messages.
    pub owed: u64,
    /// First deliveries of a message to a user (live or sync), owed or not.
    pub delivered: u64,
    /// Of `owed`, the deliveries that came. Less than `delivered` when
    /// messages reached users nobody owed them to: a member whose
    /// membership was changing (not judged) or a leak. `None` in a summary
    /// written before it was counted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivered_owed: Option<u64>,
    /// Of `delivered`, those of messages the server stored before the run
    /// (`excluded.before_run`): history, owed to nobody in this run.
    #[serde(default)]
    pub delivered_before_run: u64,
    /// Copies of a message a user already had.
    pub redelivered: u64,
    pub connects: u64,
    pub reconnects: u64,
    pub connect_failures: u64,
    pub disconnects: u64,
    pub recovered: u64,
    pub token_refreshes: u64,
    pub faults: u64,
    /// Connections the harness closed at a blackhole's heal because the
    /// heartbeat had not (`user::blackhole`): each one a reconnect the
    /// server is not to blame for, and a sign the heartbeat is too slow for
    /// the fault or the harness's timers ran late.
    #[serde(default)]
    pub outlived_blackholes: u64,
}

impl Counts {
    /// Deliveries as every report prints them: those owed that came, over
    /// those owed, then the repeats and what came that nobody was owed.
    pub fn deliveries(&self) -> String {
        let old = self.delivered_before_run;
        let (came, extra) = match self.delivered_owed {
            Some(came) => (came, self.delivered.saturating_sub(came + old)),
            None => (self.delivered, 0),
        };
        let mut out = format!("{came}/{} (+{} repeats", self.owed, self.redelivered);
        if extra > 0 {
            out += &format!(", +{extra} not owed: membership changing or leaked");
        }
        if old > 0 {
            out += &format!(", +{old} from before the run");
        }
        out + ")"
    }
}

/// One latency metric (all samples, or one tag's), in microseconds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricSummary {
    /// reconnect, recovery, heal_to_recovery, detection, delivery,
    /// handshake.tcp, handshake.upgrade, handshake.open, handshake.connect.
    pub metric: String,
    /// None for all samples; else "fault:<kind>" or "cohort:<name>".
    pub tag: Option<String>,
    pub count: u64,
    pub min: u64,
    pub mean: f64,
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub p999: u64,
    pub max: u64,
}

/// A latency (or rate) threshold and how the run did against it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ThresholdResult {
    /// As written: `reconnect.p99`.
    pub name: String,
    /// `<` or `<=`.
    pub op: String,
    /// The limit in the metric's unit (µs for latencies).
    pub limit: f64,
    /// None when the metric had no samples (which passes: nothing was slow).
    pub actual: Option<f64>,
    pub passed: bool,
}

/// Whether the harness itself kept up, so its latency figures can be trusted.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HarnessHealth {
    /// Event-loop lag samples (a timer's lateness), µs.
    pub lag_p99: u64,
    pub lag_max: u64,
    /// The harness process's CPU use as a share of the machine's cores, 0..1,
    /// at its busiest second.
    pub cpu_max: f64,
    /// Seconds spent above 90 % CPU.
    pub cpu_saturated_seconds: u32,
    /// Latency figures may be inflated by the harness, not the server.
    pub suspect: bool,
    /// So saturated that the run cannot be judged on latency: exit 4.
    pub severe: bool,
    pub reasons: Vec<String>,
}

/// One second of the run, for timeline.csv and the report's charts.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TimelineRow {
    /// Seconds since the run started.
    pub second: u32,
    pub connected: u32,
    pub reconnecting: u32,
    pub offline: u32,
    pub sends: u32,
    pub deliveries: u32,
    pub violations: u32,
    /// Fault names active during this second ("offline:edge", "server-restart").
    pub active_faults: Vec<String>,
    /// Percentiles of the reconnects that completed in this second (µs).
    pub reconnect_p50: Option<u64>,
    pub reconnect_p99: Option<u64>,
    pub delivery_p50: Option<u64>,
    pub delivery_p99: Option<u64>,
}

/// The checker's whole answer.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    pub guarantees: Vec<GuaranteeResult>,
    /// The first violations of each kind with evidence (capped per kind; the
    /// counts in `guarantees` are exact).
    pub violations: Vec<Violation>,
    pub excluded: Excluded,
    pub counts: Counts,
    pub metrics: Vec<MetricSummary>,
    pub thresholds: Vec<ThresholdResult>,
    pub harness: HarnessHealth,
    pub timeline: Vec<TimelineRow>,
}

impl Verdict {
    /// A guarantee that gates the run was violated.
    pub fn violated(&self) -> bool {
        self.guarantees.iter().any(|g| !g.passed)
    }

    pub fn thresholds_missed(&self) -> bool {
        self.thresholds.iter().any(|t| !t.passed)
    }

    /// Violations found of one kind.
    pub fn count(&self, g: Guarantee) -> u64 {
        self.guarantees
            .iter()
            .find(|r| r.guarantee == g)
            .map_or(0, |r| r.violations)
    }

    /// The kinds with at least one violation.
    pub fn kinds(&self) -> Vec<Guarantee> {
        self.guarantees
            .iter()
            .filter(|r| r.violations > 0)
            .map(|r| r.guarantee)
            .collect()
    }
}
