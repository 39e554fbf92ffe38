//! Reading one history line fast.
//!
//! `Event` derives `Deserialize` with `#[serde(flatten)]` over an internally
//! tagged enum; serde then buffers every field of every line into its
//! generic `Content` tree (an allocation per string, a second pass to
//! deserialize from it), which made parsing four times slower than checking
//! (`cargo bench --bench checker`). Here one flat struct holds every field
//! any kind can have, serde fills it in a single pass with no buffering, and
//! the tag picks the kind. The unit tests hold it equal to the derived
//! deserializer on every kind of event, including the errors.

use serde::Deserialize;
use serde::de::Error as _;

use super::event::{Event, EventKind, Via};
use crate::scenario::{Action, FaultKind};

/// Parses one history line (an event, not the header).
pub fn event(line: &str) -> serde_json::Result<Event> {
    let f: Flat = serde_json::from_str(line)?;
    f.into_event()
}

#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum Tag {
    Phase,
    Members,
    Load,
    Memory,
    LoggedIn,
    LoginFailed,
    TokenRefreshed,
    TokenRefreshFailed,
    Connecting,
    Connected,
    ConnectFailed,
    Disconnected,
    ReconnectFailed,
    Stuck,
    Joined,
    JoinRefused,
    JoinFailed,
    Sent,
    Emitted,
    Renamed,
    Acked,
    Rejected,
    AckTimeout,
    Delivered,
    SyncDone,
    SyncFailed,
    Recovered,
    Notice,
    Fault,
    Stranded,
    Stopped,
}

/// `action` is a string (join refused, rejected) or a fault step's action (an object).
#[derive(Deserialize)]
#[serde(untagged)]
enum ActionField {
    Name(String),
    Step(Action),
}

/// Every field of every kind; `Option` so that each kind takes its own.
#[derive(Deserialize)]
struct Flat {
    t: u64,
    u: u32,
    ev: Tag,
    name: Option<String>,
    conversation: Option<String>,
    users: Option<Vec<u32>>,
    lag_us: Option<u64>,
    cpu: Option<f64>,
    rss_kib: Option<u64>,
    op: Option<String>,
    waited_ms: Option<u64>,
    expires_at_ms: Option<i64>,
    error: Option<String>,
    attempt: Option<u32>,
    scheduled: Option<u64>,
    sid: Option<String>,
    tcp: Option<u64>,
    upgrade: Option<u64>,
    open: Option<u64>,
    connect: Option<u64>,
    recovered: Option<bool>,
    refused: Option<bool>,
    reason: Option<String>,
    attempts: Option<u32>,
    action: Option<ActionField>,
    temp_id: Option<String>,
    resend: Option<bool>,
    old_temp_id: Option<String>,
    id: Option<String>,
    sender: Option<String>,
    seq: Option<i64>,
    via: Option<Via>,
    dup: Option<bool>,
    fetched: Option<u32>,
    new: Option<u32>,
    rejoined: Option<u32>,
    synced: Option<u32>,
    resent: Option<u32>,
    fault: Option<u32>,
    kind: Option<FaultKind>,
    phase: Option<String>,
}

/// A field the kind requires.
fn req<T>(v: Option<T>, field: &'static str) -> serde_json::Result<T> {
    v.ok_or_else(|| serde_json::Error::missing_field(field))
}

impl Flat {
    fn into_event(self) -> serde_json::Result<Event> {
        use EventKind as K;
        let f = self;
        let name = |a: Option<ActionField>| -> serde_json::Result<Option<String>> {
            match a {
                None => Ok(None),
                Some(ActionField::Name(s)) => Ok(Some(s)),
                Some(ActionField::Step(_)) => Err(serde_json::Error::custom(
                    "invalid type: map, expected a string",
                )),
            }
        };
        let kind = match f.ev {
            Tag::Phase => K::Phase {
                name: req(f.name, "name")?,
            },
            Tag::Members => K::Members {
                conversation: req(f.conversation, "conversation")?,
                users: req(f.users, "users")?,
            },
            Tag::Load => K::Load {
                lag_us: req(f.lag_us, "lag_us")?,
                cpu: req(f.cpu, "cpu")?,
            },
            Tag::Memory => K::Memory {
                rss_kib: req(f.rss_kib, "rss_kib")?,
            },
            Tag::LoggedIn => K::LoggedIn {
                expires_at_ms: req(f.expires_at_ms, "expires_at_ms")?,
            },
            Tag::LoginFailed => K::LoginFailed {
                error: req(f.error, "error")?,
            },
            Tag::TokenRefreshed => K::TokenRefreshed {
                expires_at_ms: req(f.expires_at_ms, "expires_at_ms")?,
            },
            Tag::TokenRefreshFailed => K::TokenRefreshFailed {
                error: req(f.error, "error")?,
            },
            Tag::Connecting => K::Connecting {
                attempt: req(f.attempt, "attempt")?,
                scheduled: req(f.scheduled, "scheduled")?,
            },
            Tag::Connected => K::Connected {
                attempt: req(f.attempt, "attempt")?,
                sid: req(f.sid, "sid")?,
                tcp: req(f.tcp, "tcp")?,
                upgrade: req(f.upgrade, "upgrade")?,
                open: req(f.open, "open")?,
                connect: req(f.connect, "connect")?,
                recovered: req(f.recovered, "recovered")?,
            },
            Tag::ConnectFailed => K::ConnectFailed {
                attempt: req(f.attempt, "attempt")?,
                error: req(f.error, "error")?,
                refused: req(f.refused, "refused")?,
            },
            Tag::Disconnected => K::Disconnected {
                reason: req(f.reason, "reason")?,
            },
            Tag::Stuck => K::Stuck {
                op: req(f.op, "op")?,
                waited_ms: req(f.waited_ms, "waited_ms")?,
            },
            Tag::ReconnectFailed => K::ReconnectFailed {
                attempts: req(f.attempts, "attempts")?,
            },
            Tag::Joined => K::Joined {
                conversation: req(f.conversation, "conversation")?,
            },
            Tag::JoinRefused => K::JoinRefused {
                conversation: req(f.conversation, "conversation")?,
                action: req(name(f.action)?, "action")?,
            },
            Tag::JoinFailed => K::JoinFailed {
                conversation: req(f.conversation, "conversation")?,
                error: req(f.error, "error")?,
            },
            Tag::Sent => K::Sent {
                temp_id: req(f.temp_id, "temp_id")?,
                conversation: req(f.conversation, "conversation")?,
                scheduled: req(f.scheduled, "scheduled")?,
            },
            Tag::Emitted => K::Emitted {
                temp_id: req(f.temp_id, "temp_id")?,
                conversation: req(f.conversation, "conversation")?,
                resend: req(f.resend, "resend")?,
            },
            Tag::Renamed => K::Renamed {
                old_temp_id: req(f.old_temp_id, "old_temp_id")?,
                temp_id: req(f.temp_id, "temp_id")?,
            },
            Tag::Acked => K::Acked {
                temp_id: req(f.temp_id, "temp_id")?,
                conversation: req(f.conversation, "conversation")?,
                id: req(f.id, "id")?,
                seq: f.seq,
            },
            Tag::Rejected => K::Rejected {
                temp_id: req(f.temp_id, "temp_id")?,
                conversation: req(f.conversation, "conversation")?,
                error: req(f.error, "error")?,
                action: name(f.action)?,
            },
            Tag::AckTimeout => K::AckTimeout {
                temp_id: req(f.temp_id, "temp_id")?,
            },
            Tag::Delivered => K::Delivered {
                id: req(f.id, "id")?,
                temp_id: f.temp_id,
                conversation: req(f.conversation, "conversation")?,
                sender: req(f.sender, "sender")?,
                seq: f.seq,
                via: req(f.via, "via")?,
                dup: req(f.dup, "dup")?,
            },
            Tag::SyncDone => K::SyncDone {
                conversation: req(f.conversation, "conversation")?,
                fetched: req(f.fetched, "fetched")?,
                new: req(f.new, "new")?,
            },
            Tag::SyncFailed => K::SyncFailed {
                conversation: req(f.conversation, "conversation")?,
                error: req(f.error, "error")?,
            },
            Tag::Recovered => K::Recovered {
                rejoined: req(f.rejoined, "rejoined")?,
                synced: req(f.synced, "synced")?,
                resent: req(f.resent, "resent")?,
            },
            Tag::Notice => K::Notice {
                name: req(f.name, "name")?,
            },
            Tag::Fault => K::Fault {
                fault: req(f.fault, "fault")?,
                kind: req(f.kind, "kind")?,
                phase: req(f.phase, "phase")?,
                action: match f.action {
                    Some(ActionField::Step(a)) => a,
                    Some(ActionField::Name(_)) => {
                        return Err(serde_json::Error::custom(
                            "invalid type: string, expected internally tagged enum Action",
                        ));
                    }
                    None => return Err(serde_json::Error::missing_field("action")),
                },
                error: f.error,
            },
            Tag::Stranded => K::Stranded {
                temp_id: req(f.temp_id, "temp_id")?,
                conversation: req(f.conversation, "conversation")?,
            },
            Tag::Stopped => K::Stopped,
        };
        Ok(Event {
            t: f.t,
            u: f.u,
            kind,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::{NetEffect, OfflineMode, RestartMode};

    /// One event of every kind (the match below fails to compile when a
    /// kind is added, so a new kind cannot skip this test).
    fn every_kind() -> Vec<EventKind> {
        use EventKind as K;
        let s = |x: &str| x.to_owned();
        let all = vec![
            K::Phase { name: s("chat") },
            K::Members {
                conversation: s("c1"),
                users: vec![0, 7, 4_000_000],
            },
            K::Load {
                lag_us: 1234,
                cpu: 0.4375,
            },
            K::Memory { rss_kib: 43_210 },
            K::LoggedIn { expires_at_ms: -5 },
            K::LoginFailed {
                error: s("HTTP 500: \"oops\"\n\tline2 \u{e9}\u{1F600}"),
            },
            K::TokenRefreshed {
                expires_at_ms: 1_700_000_000_000,
            },
            K::TokenRefreshFailed { error: s("x") },
            K::Connecting {
                attempt: 3,
                scheduled: u64::MAX,
            },
            K::Connected {
                attempt: 0,
                sid: s("abc/def"),
                tcp: 1,
                upgrade: 2,
                open: 3,
                connect: 4,
                recovered: true,
            },
            K::ConnectFailed {
                attempt: 1,
                error: s("Authentication failed"),
                refused: false,
            },
            K::Disconnected {
                reason: s("transport close"),
            },
            K::ReconnectFailed { attempts: 9 },
            K::Stuck {
                op: s("connect"),
                waited_ms: 20_000,
            },
            K::Joined {
                conversation: s("c2"),
            },
            K::JoinRefused {
                conversation: s("c2"),
                action: s("removed"),
            },
            K::JoinFailed {
                conversation: s("c2"),
                error: s("timeout"),
            },
            K::Sent {
                temp_id: s("u1-1"),
                conversation: s("c0"),
                scheduled: 99,
            },
            K::Emitted {
                temp_id: s("u1-1"),
                conversation: s("c0"),
                resend: true,
            },
            K::Renamed {
                old_temp_id: s("u1-1"),
                temp_id: s("u1-1r"),
            },
            K::Acked {
                temp_id: s("u1-1"),
                conversation: s("c0"),
                id: s("42"),
                seq: Some(-3),
            },
            K::Rejected {
                temp_id: s("u1-2"),
                conversation: s("c0"),
                error: s("not a member"),
                action: Some(s("removed")),
            },
            K::AckTimeout { temp_id: s("u1-3") },
            K::Delivered {
                id: s("42"),
                temp_id: Some(s("u1-1")),
                conversation: s("c0"),
                sender: s("u1"),
                seq: Some(7),
                via: Via::Live,
                dup: false,
            },
            K::SyncDone {
                conversation: s("c0"),
                fetched: 5,
                new: 2,
            },
            K::SyncFailed {
                conversation: s("c0"),
                error: s("HTTP 401"),
            },
            K::Recovered {
                rejoined: 1,
                synced: 2,
                resent: 3,
            },
            K::Notice {
                name: s("duplicate-connection"),
            },
            K::Fault {
                fault: 2,
                kind: FaultKind::Offline,
                phase: s("begin"),
                action: Action::NetStart {
                    cohort: s("mobile"),
                    effect: NetEffect::Offline {
                        mode: OfflineMode::Blackhole,
                    },
                },
                error: Some(s("proxy said no")),
            },
            K::Stranded {
                temp_id: s("u1-4"),
                conversation: s("c0"),
            },
            K::Stopped,
        ];
        for k in &all {
            match k {
                K::Phase { .. }
                | K::Members { .. }
                | K::Load { .. }
                | K::Memory { .. }
                | K::LoggedIn { .. }
                | K::LoginFailed { .. }
                | K::TokenRefreshed { .. }
                | K::TokenRefreshFailed { .. }
                | K::Connecting { .. }
                | K::Connected { .. }
                | K::ConnectFailed { .. }
                | K::Disconnected { .. }
                | K::ReconnectFailed { .. }
                | K::Stuck { .. }
                | K::Joined { .. }
                | K::JoinRefused { .. }
                | K::JoinFailed { .. }
                | K::Sent { .. }
                | K::Emitted { .. }
                | K::Renamed { .. }
                | K::Acked { .. }
                | K::Rejected { .. }
                | K::AckTimeout { .. }
                | K::Delivered { .. }
                | K::SyncDone { .. }
                | K::SyncFailed { .. }
                | K::Recovered { .. }
                | K::Notice { .. }
                | K::Fault { .. }
                | K::Stranded { .. }
                | K::Stopped => {}
            }
        }
        all
    }

    /// The variants of a kind: optional fields as None, other fault actions.
    fn variants() -> Vec<EventKind> {
        use EventKind as K;
        let s = |x: &str| x.to_owned();
        vec![
            K::Acked {
                temp_id: s("a"),
                conversation: s("c"),
                id: s("i"),
                seq: None,
            },
            K::Rejected {
                temp_id: s("a"),
                conversation: s("c"),
                error: s("e"),
                action: None,
            },
            K::Delivered {
                id: s("i"),
                temp_id: None,
                conversation: s("c"),
                sender: s("u9"),
                seq: None,
                via: Via::Sync,
                dup: true,
            },
            K::Fault {
                fault: 0,
                kind: FaultKind::ServerRestart,
                phase: s("done"),
                action: Action::ServerDown {
                    mode: RestartMode::Crash,
                },
                error: None,
            },
            K::Fault {
                fault: 1,
                kind: FaultKind::Membership,
                phase: s("remote"),
                action: Action::RemoveMembers {
                    pairs: vec![(s("c1"), 3)],
                },
                error: None,
            },
            K::Fault {
                fault: 1,
                kind: FaultKind::TokenExpiry,
                phase: s("begin"),
                action: Action::Revoke { users: vec![1, 2] },
                error: None,
            },
            K::Fault {
                fault: 1,
                kind: FaultKind::ServerRestart,
                phase: s("begin"),
                action: Action::ServerUp,
                error: None,
            },
        ]
    }

    #[test]
    fn equals_serde_on_every_kind() {
        for (i, kind) in every_kind().into_iter().chain(variants()).enumerate() {
            let e = Event {
                t: 1000 + i as u64,
                u: if i % 2 == 0 { u32::MAX } else { i as u32 },
                kind,
            };
            let line = serde_json::to_string(&e).unwrap();
            let derived: Event = serde_json::from_str(&line).unwrap();
            assert_eq!(derived, e, "{line}");
            assert_eq!(event(&line).unwrap(), derived, "{line}");
            // Fields in another order, and a field this version does not know.
            let mut v: serde_json::Map<String, serde_json::Value> =
                serde_json::from_str(&line).unwrap();
            let mut pairs: Vec<_> = std::mem::take(&mut v).into_iter().collect();
            pairs.reverse();
            pairs.push(("later".into(), serde_json::json!({"x": [1, "y"]})));
            let shuffled =
                serde_json::to_string(&pairs.into_iter().collect::<serde_json::Map<_, _>>())
                    .unwrap();
            assert_eq!(event(&shuffled).unwrap(), derived, "{shuffled}");
            assert_eq!(serde_json::from_str::<Event>(&shuffled).unwrap(), derived);
        }
    }

    #[test]
    fn refuses_what_serde_refuses() {
        // Every required field removed in turn, a bad tag, wrong types.
        for kind in every_kind().into_iter().chain(variants()) {
            let e = Event { t: 1, u: 2, kind };
            let v: serde_json::Map<String, serde_json::Value> =
                serde_json::from_value(serde_json::to_value(&e).unwrap()).unwrap();
            for key in v.keys() {
                let mut w = v.clone();
                w.remove(key);
                let line = serde_json::to_string(&w).unwrap();
                let derived = serde_json::from_str::<Event>(&line);
                assert_eq!(
                    event(&line).is_ok(),
                    derived.is_ok(),
                    "without {key}: {line}"
                );
                if let Ok(d) = derived {
                    assert_eq!(event(&line).unwrap(), d);
                }
                // Each value replaced by a value of another type.
                for bad in [
                    serde_json::json!(null),
                    serde_json::json!("s"),
                    serde_json::json!(-1),
                    serde_json::json!({}),
                ] {
                    let mut w = v.clone();
                    w.insert(key.clone(), bad);
                    let line = serde_json::to_string(&w).unwrap();
                    let derived = serde_json::from_str::<Event>(&line);
                    assert_eq!(event(&line).is_ok(), derived.is_ok(), "{line}");
                    if let Ok(d) = derived {
                        assert_eq!(event(&line).unwrap(), d, "{line}");
                    }
                }
            }
        }
        for line in [
            r#"{"t":1,"u":2,"ev":"no_such_kind"}"#,
            r#"{"t":1,"u":2}"#,
            r#"{"t":1,"u":2,"ev":"stopped""#,
            r#"{"t":1,"u":2,"ev":"stopped","t":3}"#,
            r#"[1,2]"#,
            "",
        ] {
            assert!(event(line).is_err(), "{line}");
            assert!(serde_json::from_str::<Event>(line).is_err(), "{line}");
        }
    }
}
