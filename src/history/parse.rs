//! Reading one history line fast.
//!
//! `Event` derives `Deserialize` with `#[serde(flatten)]` over an internally
//! tagged enum; serde then buffers every field of every line into its
//! generic `Content` tree (an allocation per string, a second pass to
//! deserialize from it), which made parsing four times slower than checking
//! (`cargo bench --bench checker`). Here one flat struct holds every field
//! any kind can have, serde fills it in a single pass with no buffering, and
//! the tag picks the kind. The common line does not even need serde
//! (`fast`); serde stays the authority for everything else. The unit tests
//! hold both equal to the derived deserializer on every kind of event,
//! including the errors.

use std::borrow::Cow;

use serde::Deserialize;
use serde::de::Error as _;

use super::event::{Event, EventKind, Via};
use crate::scenario::{Action, FaultKind};

mod fast;

/// Parses one history line (an event, not the header).
pub fn event(line: &str) -> serde_json::Result<Event> {
    let mut f = Flat::default();
    if fast::fill(line, &mut f).is_some()
        && let Ok(e) = f.take_event()
    {
        return Ok(e);
    }
    by_serde(line)
}

/// Parses one history line over `e`, the previous line's event: a reader
/// of a whole file (`check_file`) thus keeps reusing the memory of its
/// strings instead of allocating and freeing four per delivery, which was
/// as much time as the parsing itself. `e` is unchanged on error.
pub fn event_into(line: &str, e: &mut Event) -> serde_json::Result<()> {
    let mut f = Flat::default();
    if fast::fill(line, &mut f).is_some() {
        if f.refill(e) {
            return Ok(());
        }
        if let Ok(new) = f.take_event() {
            *e = new;
            return Ok(());
        }
    }
    *e = by_serde(line)?;
    Ok(())
}

/// serde's reading, the authority on what a line means.
fn by_serde(line: &str) -> serde_json::Result<Event> {
    let mut f: Flat = serde_json::from_str(line)?;
    f.take_event()
}

#[derive(Deserialize, Default, Clone, Copy)]
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
    #[default]
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
#[derive(Deserialize, Default)]
struct Flat<'a> {
    t: u64,
    u: u32,
    ev: Tag,
    #[serde(borrow)]
    name: Option<Cow<'a, str>>,
    #[serde(borrow)]
    conversation: Option<Cow<'a, str>>,
    users: Option<Vec<u32>>,
    lag_us: Option<u64>,
    cpu: Option<f64>,
    rss_kib: Option<u64>,
    #[serde(borrow)]
    op: Option<Cow<'a, str>>,
    waited_ms: Option<u64>,
    expires_at_ms: Option<i64>,
    #[serde(borrow)]
    error: Option<Cow<'a, str>>,
    attempt: Option<u32>,
    scheduled: Option<u64>,
    #[serde(borrow)]
    sid: Option<Cow<'a, str>>,
    tcp: Option<u64>,
    upgrade: Option<u64>,
    open: Option<u64>,
    connect: Option<u64>,
    recovered: Option<bool>,
    refused: Option<bool>,
    #[serde(borrow)]
    reason: Option<Cow<'a, str>>,
    attempts: Option<u32>,
    action: Option<ActionField>,
    #[serde(borrow)]
    temp_id: Option<Cow<'a, str>>,
    resend: Option<bool>,
    #[serde(borrow)]
    old_temp_id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    sender: Option<Cow<'a, str>>,
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
    #[serde(borrow)]
    phase: Option<Cow<'a, str>>,
}

/// A string field the kind requires, owned by the event.
fn own(v: Option<Cow<'_, str>>, field: &'static str) -> serde_json::Result<String> {
    req(v, field).map(Cow::into_owned)
}

/// A field the kind requires.
fn req<T>(v: Option<T>, field: &'static str) -> serde_json::Result<T> {
    v.ok_or_else(|| serde_json::Error::missing_field(field))
}

impl Flat<'_> {
    /// The event, its strings taken out of the fields (no copy of what
    /// serde already owns).
    fn take_event(&mut self) -> serde_json::Result<Event> {
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
                name: own(f.name.take(), "name")?,
            },
            Tag::Members => K::Members {
                conversation: own(f.conversation.take(), "conversation")?,
                users: req(f.users.take(), "users")?,
            },
            Tag::Load => K::Load {
                lag_us: req(f.lag_us.take(), "lag_us")?,
                cpu: req(f.cpu.take(), "cpu")?,
            },
            Tag::Memory => K::Memory {
                rss_kib: req(f.rss_kib.take(), "rss_kib")?,
            },
            Tag::LoggedIn => K::LoggedIn {
                expires_at_ms: req(f.expires_at_ms.take(), "expires_at_ms")?,
            },
            Tag::LoginFailed => K::LoginFailed {
                error: own(f.error.take(), "error")?,
            },
            Tag::TokenRefreshed => K::TokenRefreshed {
                expires_at_ms: req(f.expires_at_ms.take(), "expires_at_ms")?,
            },
            Tag::TokenRefreshFailed => K::TokenRefreshFailed {
                error: own(f.error.take(), "error")?,
            },
            Tag::Connecting => K::Connecting {
                attempt: req(f.attempt.take(), "attempt")?,
                scheduled: req(f.scheduled.take(), "scheduled")?,
            },
            Tag::Connected => K::Connected {
                attempt: req(f.attempt.take(), "attempt")?,
                sid: own(f.sid.take(), "sid")?,
                tcp: req(f.tcp.take(), "tcp")?,
                upgrade: req(f.upgrade.take(), "upgrade")?,
                open: req(f.open.take(), "open")?,
                connect: req(f.connect.take(), "connect")?,
                recovered: req(f.recovered.take(), "recovered")?,
            },
            Tag::ConnectFailed => K::ConnectFailed {
                attempt: req(f.attempt.take(), "attempt")?,
                error: own(f.error.take(), "error")?,
                refused: req(f.refused.take(), "refused")?,
            },
            Tag::Disconnected => K::Disconnected {
                reason: own(f.reason.take(), "reason")?,
            },
            Tag::Stuck => K::Stuck {
                op: own(f.op.take(), "op")?,
                waited_ms: req(f.waited_ms.take(), "waited_ms")?,
            },
            Tag::ReconnectFailed => K::ReconnectFailed {
                attempts: req(f.attempts.take(), "attempts")?,
            },
            Tag::Joined => K::Joined {
                conversation: own(f.conversation.take(), "conversation")?,
            },
            Tag::JoinRefused => K::JoinRefused {
                conversation: own(f.conversation.take(), "conversation")?,
                action: req(name(f.action.take())?, "action")?,
            },
            Tag::JoinFailed => K::JoinFailed {
                conversation: own(f.conversation.take(), "conversation")?,
                error: own(f.error.take(), "error")?,
            },
            Tag::Sent => K::Sent {
                temp_id: own(f.temp_id.take(), "temp_id")?,
                conversation: own(f.conversation.take(), "conversation")?,
                scheduled: req(f.scheduled.take(), "scheduled")?,
            },
            Tag::Emitted => K::Emitted {
                temp_id: own(f.temp_id.take(), "temp_id")?,
                conversation: own(f.conversation.take(), "conversation")?,
                resend: req(f.resend.take(), "resend")?,
            },
            Tag::Renamed => K::Renamed {
                old_temp_id: own(f.old_temp_id.take(), "old_temp_id")?,
                temp_id: own(f.temp_id.take(), "temp_id")?,
            },
            Tag::Acked => K::Acked {
                temp_id: own(f.temp_id.take(), "temp_id")?,
                conversation: own(f.conversation.take(), "conversation")?,
                id: own(f.id.take(), "id")?,
                seq: f.seq.take(),
            },
            Tag::Rejected => K::Rejected {
                temp_id: own(f.temp_id.take(), "temp_id")?,
                conversation: own(f.conversation.take(), "conversation")?,
                error: own(f.error.take(), "error")?,
                action: name(f.action.take())?,
            },
            Tag::AckTimeout => K::AckTimeout {
                temp_id: own(f.temp_id.take(), "temp_id")?,
            },
            Tag::Delivered => K::Delivered {
                id: own(f.id.take(), "id")?,
                temp_id: f.temp_id.take().map(Cow::into_owned),
                conversation: own(f.conversation.take(), "conversation")?,
                sender: own(f.sender.take(), "sender")?,
                seq: f.seq.take(),
                via: req(f.via.take(), "via")?,
                dup: req(f.dup.take(), "dup")?,
            },
            Tag::SyncDone => K::SyncDone {
                conversation: own(f.conversation.take(), "conversation")?,
                fetched: req(f.fetched.take(), "fetched")?,
                new: req(f.new.take(), "new")?,
            },
            Tag::SyncFailed => K::SyncFailed {
                conversation: own(f.conversation.take(), "conversation")?,
                error: own(f.error.take(), "error")?,
            },
            Tag::Recovered => K::Recovered {
                rejoined: req(f.rejoined.take(), "rejoined")?,
                synced: req(f.synced.take(), "synced")?,
                resent: req(f.resent.take(), "resent")?,
            },
            Tag::Notice => K::Notice {
                name: own(f.name.take(), "name")?,
            },
            Tag::Fault => K::Fault {
                fault: req(f.fault.take(), "fault")?,
                kind: req(f.kind.take(), "kind")?,
                phase: own(f.phase.take(), "phase")?,
                action: match f.action.take() {
                    Some(ActionField::Step(a)) => a,
                    Some(ActionField::Name(_)) => {
                        return Err(serde_json::Error::custom(
                            "invalid type: string, expected internally tagged enum Action",
                        ));
                    }
                    None => return Err(serde_json::Error::missing_field("action")),
                },
                error: f.error.take().map(Cow::into_owned),
            },
            Tag::Stranded => K::Stranded {
                temp_id: own(f.temp_id.take(), "temp_id")?,
                conversation: own(f.conversation.take(), "conversation")?,
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

impl Flat<'_> {
    /// Writes a delivery, send or ack over `e` when `e` is already of that
    /// kind, reusing the memory of its strings (see [`event_into`]); false,
    /// `e` untouched, for any other kind or a field missing.
    fn refill(&self, e: &mut Event) -> bool {
        use EventKind as K;
        let f = self;
        match (f.ev, &mut e.kind) {
            (
                Tag::Delivered,
                K::Delivered {
                    id,
                    temp_id,
                    conversation,
                    sender,
                    seq,
                    via,
                    dup,
                },
            ) => {
                let (Some(new_id), Some(new_conv), Some(new_sender), Some(new_via), Some(new_dup)) =
                    (&f.id, &f.conversation, &f.sender, f.via, f.dup)
                else {
                    return false;
                };
                put(id, new_id);
                put_opt(temp_id, f.temp_id.as_deref());
                put(conversation, new_conv);
                put(sender, new_sender);
                (*seq, *via, *dup) = (f.seq, new_via, new_dup);
            }
            (
                Tag::Sent,
                K::Sent {
                    temp_id,
                    conversation,
                    scheduled,
                },
            ) => {
                let (Some(new_temp), Some(new_conv), Some(new_scheduled)) =
                    (&f.temp_id, &f.conversation, f.scheduled)
                else {
                    return false;
                };
                put(temp_id, new_temp);
                put(conversation, new_conv);
                *scheduled = new_scheduled;
            }
            (
                Tag::Acked,
                K::Acked {
                    temp_id,
                    conversation,
                    id,
                    seq,
                },
            ) => {
                let (Some(new_temp), Some(new_conv), Some(new_id)) =
                    (&f.temp_id, &f.conversation, &f.id)
                else {
                    return false;
                };
                put(temp_id, new_temp);
                put(conversation, new_conv);
                put(id, new_id);
                *seq = f.seq;
            }
            _ => return false,
        }
        (e.t, e.u) = (f.t, f.u);
        true
    }
}

fn put(s: &mut String, v: &str) {
    s.clear();
    s.push_str(v);
}

fn put_opt(s: &mut Option<String>, v: Option<&str>) {
    match (s.as_mut(), v) {
        (Some(s), Some(v)) => put(s, v),
        (_, v) => *s = v.map(str::to_owned),
    }
}

#[cfg(test)]
mod tests;
