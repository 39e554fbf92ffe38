//! The seam between a simulated user and the client library that owns its
//! connection: [`Driver`].
//!
//! What differs between drivers is only who owns the connection and its
//! reconnection. Everything else a user does (what to send, the outbox, the
//! ledger, when to refresh a token, rejoin, sync, and the history events of
//! all that) is the one state machine in `user/mod.rs` and `user/session.rs`.
//! A driver records the connection events it can observe (`connecting`,
//! `connected`, `connect_failed`, `stuck`); the user records everything else.
//!
//! - [`super::native::Native`]: our `sio` client; the reconnection schedule is
//!   socket.io-client's (`backoff.rs`), run here, attempt by attempt.
//! - [`super::rust_socketio::RustSocketio`]: the rust_socketio crate, whose own
//!   reconnection runs inside the library; the driver maps its callbacks.

use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::future::BoxFuture;
use serde_json::Value;

use super::stats::Stats;
use crate::history::EventKind;
use crate::sio::AckError;

/// Why the user asks for a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dial {
    /// The first connection of the run.
    First,
    /// The last connection was lost (not by the user's doing).
    Lost,
    /// The user closed its tab and has reopened it: a fresh start.
    Reopened,
}

/// What [`Driver::dial`] ended with.
pub enum Dialed {
    /// Connected: the driver's link is up until [`Driver::poll_next`] says `Closed`.
    Up,
    /// Every attempt is used up (`reconnect_failed`): the user stays offline.
    GaveUp { attempts: u32 },
    /// The run stopped while connecting.
    Stop,
}

/// What the link brought, in order; after `Closed` the link is down.
pub enum Heard {
    /// A server event on our namespace.
    Event { name: String, args: Vec<Value> },
    /// The link is down; `reason` is socket.io-client's name when the
    /// library tells us the reason.
    Closed { reason: String },
    /// The library can no longer do its part (its task died) and will not
    /// say so itself; the link is not known to be down.
    Stuck { op: String, waited: Duration },
}

/// Records that the library could not do `op` and has not for `waited`:
/// a finding about the library, never waited for.
/// The start of one connect attempt, as every driver makes it: the token
/// to present (refreshed after a refusal, else as `otherwise` says), then
/// the attempt counted and recorded as `connecting`, scheduled at
/// `scheduled` (`None`: now, after the token, when the library does not
/// say when it scheduled the attempt).
pub async fn begin_attempt(
    host: &mut dyn Host,
    refused: bool,
    otherwise: Refresh,
    attempt: &mut u32,
    scheduled: Option<u64>,
) -> Option<Value> {
    let refresh = if refused { Refresh::Refused } else { otherwise };
    let auth = host.auth(refresh).await;
    *attempt += 1;
    host.record(EventKind::Connecting {
        attempt: *attempt,
        scheduled: scheduled.unwrap_or_else(|| host.now()),
    });
    auth
}

pub fn stuck(host: &dyn Host, op: String, waited: Duration) {
    Stats::add(&host.stats().stuck, 1);
    host.record(EventKind::Stuck {
        op,
        waited_ms: waited.as_millis() as u64,
    });
}

/// The shared user logic a driver calls back into while connecting.
pub trait Host: Send + Sync {
    fn record(&self, kind: EventKind);
    /// The run's clock (µs).
    fn now(&self) -> u64;
    fn stats(&self) -> &Stats;
    fn stopping(&self) -> bool;
    /// A number in [0, 1) from the user's seeded generator (backoff jitter).
    fn random(&mut self) -> f64;
    /// Sleeps `d`, less if the run stops; false when it stopped.
    fn sleep(&mut self, d: Duration) -> BoxFuture<'_, bool>;
    /// Waits while the user's tab is closed; false if the run stopped.
    fn wait_tab_open(&mut self) -> BoxFuture<'_, bool>;
    /// The auth payload for the next attempt, after refreshing the token
    /// as `refresh` says (the decision and the `token_refreshed` event are
    /// the user's).
    fn auth(&mut self, refresh: Refresh) -> BoxFuture<'_, Option<Value>>;
    /// Runs one connect attempt of our own client while the user keeps
    /// typing: an attempt can hang for its whole timeout (a blackhole), and
    /// what falls due meanwhile is recorded as sent and waits in the outbox.
    fn typing_while_connecting(
        &mut self,
        attempt: BoxFuture<'static, Result<crate::sio::Connection, crate::sio::ConnectError>>,
    ) -> BoxFuture<'_, Result<crate::sio::Connection, crate::sio::ConnectError>>;
}

/// When the user refreshes its token before an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refresh {
    /// Present the token as it is (the guide's client: only a refusal makes it refresh).
    Never,
    /// Refresh if it has expired or is about to (the guide's manager after a reconnect).
    IfExpired,
    /// The server refused the last attempt: refresh (or log in again).
    Refused,
}

/// One user's connection, owned by a client library.
///
/// The futures of `emit_with_ack` are `'static` so a user can keep many
/// in flight while it reads [`Driver::poll_next`].
pub trait Driver: Send + Sync {
    /// The scenario's name for this driver.
    fn name(&self) -> &'static str;

    /// Makes (or waits for) attempts until a connection is up, the attempts
    /// are used up, or the run stops. Records `connecting`, `connected` and
    /// `connect_failed` as far as the library lets it see them.
    fn dial<'a>(&'a mut self, host: &'a mut dyn Host, why: Dial) -> BoxFuture<'a, Dialed>;

    /// The next thing the link brought; `Closed` once, then only `Closed`.
    /// Polled rather than a future per call: the chat loop asks once per
    /// delivery, and a boxed future each time was an allocation per message.
    fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Heard>;

    /// Emits `[event, data]` and waits (at most `timeout`) for the server's answer.
    fn emit_with_ack(
        &self,
        event: &str,
        data: Value,
        timeout: Duration,
    ) -> BoxFuture<'static, Result<Vec<Value>, AckError>>;

    /// Whether the link is known to be down.
    fn is_closed(&self) -> bool;

    /// Leaves (`41`) and closes the link, within a bound: a library that
    /// cannot be stopped is recorded as `stuck`, never waited for.
    fn disconnect<'a>(&'a mut self, host: &'a dyn Host) -> BoxFuture<'a, ()>;
}

/// The driver a scenario asks for.
pub fn for_user(
    kind: crate::scenario::Driver,
    ctx: std::sync::Arc<super::Ctx>,
    socket_url: String,
) -> Box<dyn Driver> {
    match kind {
        crate::scenario::Driver::Native => Box::new(super::native::Native::new(ctx, socket_url)),
        crate::scenario::Driver::RustSocketio => {
            Box::new(super::rust_socketio::RustSocketio::new(ctx, socket_url))
        }
    }
}

/// What the summary says about the driver: its name and the figures it can
/// only partly observe.
pub fn report(kind: crate::scenario::Driver) -> crate::report::summary::DriverReport {
    use crate::report::summary::{DriverReport, PartialFigure};
    let partial = match kind {
        crate::scenario::Driver::Native => Vec::new(),
        crate::scenario::Driver::RustSocketio => [
            (
                "connect_failures",
                "rust_socketio gives no signal for a failed reconnection attempt: one is counted when the next attempt begins (on_reconnect), without its reason and at that time; a failure followed by no further attempt is not counted",
            ),
            (
                "handshake",
                "the library exposes no handshake phases: tcp, upgrade and open are recorded as 0 and the whole attempt as connect",
            ),
            (
                "disconnect_reason",
                "a lost transport has no callback and no reason: it is recorded when the library starts reconnecting, as \"rust_socketio reconnecting\"",
            ),
            (
                "connecting.scheduled",
                "the library does not expose its backoff: a reconnection attempt's scheduled time is when it began",
            ),
        ]
        .into_iter()
        .map(|(figure, why)| PartialFigure {
            figure: figure.into(),
            why: why.into(),
        })
        .collect(),
    };
    DriverReport {
        name: kind.as_str().into(),
        partial,
    }
}
