//! The rust_socketio driver: the rust_socketio crate (0.6, `async`) owns the
//! connection and its reconnection (`reconnect`, `reconnect_delay`,
//! `max_reconnect_attempts`, `reconnect_on_disconnect`, and `on_reconnect`,
//! where the user hands over a fresh token). This file only maps what the
//! library lets us see onto history events, and bounds every wait on it.
//!
//! What the library shows, and what it does not (docs/rust_socketio-findings.md):
//!
//! - `connect()` returns once CONNECT is *sent*; acceptance is the `open`
//!   callback, refusal an `error` callback ("Received an ConnectError frame").
//!   The driver waits for either, at most `reconnection.timeout`.
//! - A lost transport has no callback; the first sign is `on_reconnect`,
//!   called before each attempt of the library's own loop. So `disconnected`
//!   is recorded then, with the reason "rust_socketio reconnecting".
//! - A failed attempt has no signal at all: when `on_reconnect` comes again
//!   with no `open` in between, the previous attempt is recorded as
//!   `connect_failed` with no reason, at that time (partial figure).
//! - No per-attempt timeout: an attempt that hangs is recorded as `stuck`
//!   after `reconnection.timeout` + `delay_max` with no word from the library.
//! - After a refused CONNECT the library considers itself reconnected and
//!   never retries; like the guide's app, the driver then drops that client
//!   and connects a new one with a refreshed token (as it does for the first
//!   connection, which the library does not retry either), on the scenario's
//!   schedule.
//! - `disconnect()` cannot stop the library while it reconnects: recorded as
//!   `stuck` (the library goes on reconnecting in the background).
//! - When its task panics (colliding ack ids, finding 4) the client is deaf
//!   and nothing says so; `task_death` sees the panic and the driver records
//!   `stuck` once. Like the app, the user then waits on: nothing is healed.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use ::rust_socketio::asynchronous::{Client, ClientBuilder, ReconnectSettings};
use ::rust_socketio::{Event, Payload, TransportType};
use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

mod signals;

use self::signals::{Answer, Shared, Signal, answer, args_of, is_refusal};
use super::Ctx;
use super::backoff::Backoff;
use super::driver::{Dial, Dialed, Driver, Heard, Host, Refresh, begin_attempt, stuck};
use super::stats::Stats;
use crate::history::EventKind;
use crate::sio::AckError;

/// The reason recorded for a loss the library does not explain.
pub const RECONNECTING: &str = "rust_socketio reconnecting";

/// How a `stuck` op for a dead library task begins.
pub const PANICKED: &str = "the library's task panicked";

/// How long `disconnect()` may take before the client counts as stuck.
const DISCONNECT_BOUND: Duration = Duration::from_secs(1);

/// How long the library's `on_reconnect` waits for the user's token.
const AUTH_BOUND: Duration = Duration::from_secs(10);

/// What one phase of dialing ended with.
enum Step {
    Done(Dialed),
    /// The library is reconnecting by itself: follow it.
    Follow,
    /// The library will not retry: connect a new client.
    Fresh,
}

pub struct RustSocketio {
    ctx: Arc<Ctx>,
    /// The socket URL with the Engine.IO path (the library reads the path from it).
    url: String,
    client: Option<Client>,
    shared: Arc<Shared>,
    signals: Option<mpsc::UnboundedReceiver<Signal>>,
    /// `on_reconnect` waiting for the auth of the library's next attempt.
    reconnecting: Option<oneshot::Sender<Option<Value>>>,
    attempt: u32,
    refused: bool,
    /// The app's schedule for what the library does not retry (the first
    /// connection, a refused one).
    backoff: Backoff,
    scheduled: u64,
}

impl RustSocketio {
    pub fn new(ctx: Arc<Ctx>, socket_url: String) -> RustSocketio {
        let url = format!("{}{}", socket_url.trim_end_matches('/'), ctx.path);
        RustSocketio {
            backoff: Backoff::new(ctx.reconnection),
            scheduled: ctx.recorder.now(),
            ctx,
            url,
            client: None,
            shared: Shared::new(&mpsc::unbounded_channel().0),
            signals: None,
            reconnecting: None,
            attempt: 0,
            refused: false,
        }
    }

    /// A client with the library's reconnection configured from the
    /// scenario and every callback feeding `tx`.
    fn builder(&self, auth: Option<Value>, tx: mpsc::UnboundedSender<Signal>) -> ClientBuilder {
        let r = self.ctx.reconnection;
        let shared = self.shared.clone();
        let mut b = ClientBuilder::new(self.url.clone())
            .namespace(self.ctx.namespace.clone())
            .transport_type(TransportType::Websocket)
            .reconnect(r.enabled)
            // The guide's app reconnects after "io server disconnect" too.
            .reconnect_on_disconnect(r.enabled)
            .reconnect_delay(r.delay.as_millis() as u64, r.delay_max.as_millis() as u64);
        if let Some(n) = r.attempts {
            // The plan refuses more than 255 for this driver.
            b = b.max_reconnect_attempts(n.min(u8::MAX as u32) as u8);
        }
        if let Some(auth) = auth {
            b = b.auth(auth);
        }
        let (t, s) = (tx.clone(), shared.clone());
        b = b.on(Event::Connect, move |_, _| {
            // Runs in the library's task: from now on its panic is ours to see.
            s.death.watch_current_task();
            s.up.store(true, Ordering::Release);
            let _ = t.send(Signal::Open);
            async {}.boxed()
        });
        let (t, s) = (tx.clone(), shared.clone());
        b = b.on(Event::Close, move |_, _| {
            s.lost();
            let _ = t.send(Signal::ServerDisconnect);
            async {}.boxed()
        });
        let t = tx.clone();
        b = b.on(Event::Error, move |p, _| {
            let text = match args_of(p).as_slice() {
                [Value::String(s)] => s.clone(),
                other => Value::Array(other.to_vec()).to_string(),
            };
            let _ = t.send(Signal::Error(text));
            async {}.boxed()
        });
        let t = tx.clone();
        b = b.on_any(move |event, p, _| {
            let _ = t.send(Signal::Event {
                name: event.as_str().to_owned(),
                args: args_of(p),
            });
            async {}.boxed()
        });
        b.on_reconnect(move || {
            let (t, s) = (tx.clone(), shared.clone());
            async move {
                s.lost();
                let mut settings = ReconnectSettings::new();
                let (reply, answer) = oneshot::channel();
                if t.send(Signal::Reconnecting(reply)).is_ok()
                    && let Ok(Ok(Some(auth))) = tokio::time::timeout(AUTH_BOUND, answer).await
                {
                    settings.auth(auth);
                }
                settings
            }
            .boxed()
        })
    }

    fn connected(&mut self, host: &mut dyn Host, started: Instant) -> Dialed {
        self.refused = false;
        host.record(EventKind::Connected {
            attempt: self.attempt,
            // The library does not expose the socket id nor the phases of
            // its handshake: the whole attempt is in `connect`.
            sid: String::new(),
            tcp: 0,
            upgrade: 0,
            open: 0,
            connect: started.elapsed().as_micros() as u64,
            recovered: false,
        });
        self.backoff.reset();
        self.attempt = 0;
        Dialed::Up
    }

    fn failed(&mut self, host: &mut dyn Host, error: String) {
        Stats::add(&host.stats().connect_failures, 1);
        host.record(EventKind::ConnectFailed {
            attempt: self.attempt,
            error,
            refused: self.refused,
        });
    }

    /// Drops the current client, within a bound.
    async fn drop_client(&mut self, host: &dyn Host) {
        self.signals = None;
        self.reconnecting = None;
        let Some(client) = self.client.take() else {
            return;
        };
        let was_up = self.shared.up.load(Ordering::Acquire);
        self.shared.lost();
        let started = Instant::now();
        let op = match tokio::time::timeout(DISCONNECT_BOUND, client.disconnect()).await {
            Ok(Ok(())) => return,
            // Nothing to stop: the server's refusal left no connection.
            Ok(Err(_)) if !was_up && self.refused => return,
            Ok(Err(e)) if was_up => format!("disconnect: {e}"),
            Ok(Err(e)) => {
                format!("disconnect while reconnecting: {e}; the library goes on reconnecting")
            }
            Err(_) => "disconnect".to_owned(),
        };
        stuck(host, op, started.elapsed());
    }

    /// A new client: the first connection, or after the library gave up on
    /// one (a refusal). The library does not retry these: the app does, on
    /// the scenario's schedule, refreshing its token after a refusal.
    async fn fresh(&mut self, host: &mut dyn Host) -> Step {
        loop {
            if host.stopping() || !host.wait_tab_open().await {
                return Step::Done(Dialed::Stop);
            }
            self.drop_client(host).await;
            let auth = begin_attempt(
                host,
                self.refused,
                Refresh::Never,
                &mut self.attempt,
                Some(self.scheduled),
            )
            .await;
            let (tx, mut rx) = mpsc::unbounded_channel();
            self.shared = Shared::new(&tx);
            let builder = self.builder(auth, tx);
            let timeout = self.ctx.reconnection.timeout;
            let started = Instant::now();
            let was_refused = std::mem::take(&mut self.refused);
            let error = match tokio::time::timeout(timeout, builder.connect()).await {
                Err(_) => format!(
                    "connect() did not return within {timeout:?} (the library has no timeout of its own)"
                ),
                Ok(Err(e)) => e.to_string(),
                Ok(Ok(client)) => {
                    self.client = Some(client);
                    // connect() returned once CONNECT was sent: wait for the answer.
                    let left = timeout.saturating_sub(started.elapsed());
                    match tokio::time::timeout(left, answer(&mut rx)).await {
                        Ok(Answer::Open) => {
                            self.signals = Some(rx);
                            return Step::Done(self.connected(host, started));
                        }
                        Ok(Answer::Refused(e)) => {
                            self.refused = true;
                            e
                        }
                        Ok(Answer::Reconnecting(reply)) => {
                            self.failed(host, "the transport closed before the CONNECT answer; the library reconnects".into());
                            self.signals = Some(rx);
                            self.reconnecting = Some(reply);
                            return Step::Follow;
                        }
                        Ok(Answer::Gone) => "the library dropped its callbacks".into(),
                        Err(_) => format!(
                            "no CONNECT answer within {timeout:?} after connect() returned Ok"
                        ),
                    }
                }
            };
            self.failed(host, error);
            if !self.ctx.reconnection.enabled || self.backoff.exhausted() {
                self.drop_client(host).await;
                return Step::Done(Dialed::GaveUp {
                    attempts: self.attempt,
                });
            }
            // As the native users: a first refusal retries at once with a
            // fresh token; only a second one waits for the schedule.
            if self.refused && !was_refused {
                self.scheduled = host.now();
                continue;
            }
            let delay = self.backoff.next_delay(host.random());
            self.scheduled = host.now() + delay.as_micros() as u64;
            if !host.sleep(delay).await {
                self.drop_client(host).await;
                return Step::Done(Dialed::Stop);
            }
        }
    }

    /// The library reconnects by itself: hand it a token before each
    /// attempt (`on_reconnect`) and record what can be seen.
    async fn follow(&mut self, host: &mut dyn Host) -> Step {
        let r = self.ctx.reconnection;
        // An attempt plus the longest wait before the next one.
        let watchdog = r.timeout + r.delay_max;
        let mut started = Instant::now();
        let mut in_attempt = false;
        let mut stuck_reported = false;
        loop {
            if let Some(reply) = self.reconnecting.take() {
                if in_attempt {
                    // The library says nothing about a failed attempt; the
                    // next `on_reconnect` is the only sign of it.
                    self.failed(
                        host,
                        "the attempt failed (rust_socketio reports no reason)".into(),
                    );
                }
                // The guide's manager refreshes an expired token before
                // reconnecting. When the library scheduled it is not exposed.
                let auth = begin_attempt(
                    host,
                    self.refused,
                    Refresh::IfExpired,
                    &mut self.attempt,
                    None,
                )
                .await;
                let _ = reply.send(auth);
                started = Instant::now();
                in_attempt = true;
                stuck_reported = false;
            }
            let Some(rx) = self.signals.as_mut() else {
                return Step::Fresh;
            };
            let wait = watchdog.saturating_sub(started.elapsed());
            tokio::select! {
                signal = rx.recv() => match signal {
                    Some(Signal::Open) => return Step::Done(self.connected(host, started)),
                    Some(Signal::Reconnecting(reply)) => self.reconnecting = Some(reply),
                    Some(Signal::Died(why)) => {
                        // Nothing will come from this client again.
                        stuck_reported = true;
                        stuck(host, panicked(&why), started.elapsed());
                    }
                    Some(Signal::Error(e)) if is_refusal(&e) => {
                        // The library counts this as reconnected and stops.
                        self.refused = true;
                        self.failed(host, e);
                        return Step::Fresh;
                    }
                    Some(_) => {}
                    None => return Step::Fresh,
                },
                alive = host.sleep(if stuck_reported { Duration::from_secs(3600) } else { wait }) => {
                    if !alive {
                        self.drop_client(host).await;
                        return Step::Done(Dialed::Stop);
                    }
                    if !stuck_reported {
                        stuck_reported = true;
                        let what = if in_attempt {
                            "reconnect attempt (no per-attempt timeout)"
                        } else {
                            "reconnect (the library did not start one)"
                        };
                        stuck(host, what.into(), started.elapsed());
                    }
                }
            }
        }
    }
}

/// The `stuck` op of a client whose task died.
pub fn panicked(why: &str) -> String {
    format!("{PANICKED}: {why}; the client hears nothing more")
}

impl Driver for RustSocketio {
    fn name(&self) -> &'static str {
        "rust_socketio"
    }

    fn dial<'a>(&'a mut self, host: &'a mut dyn Host, why: Dial) -> BoxFuture<'a, Dialed> {
        async move {
            let mut step = match why {
                Dial::Lost if !self.ctx.reconnection.enabled => {
                    self.drop_client(host).await;
                    return Dialed::GaveUp { attempts: 0 };
                }
                Dial::Lost if self.client.is_some() => Step::Follow,
                _ => Step::Fresh,
            };
            loop {
                step = match step {
                    Step::Done(d) => return d,
                    Step::Follow => self.follow(host).await,
                    Step::Fresh => {
                        self.backoff.reset();
                        self.scheduled = host.now();
                        self.fresh(host).await
                    }
                };
            }
        }
        .boxed()
    }

    fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Heard> {
        loop {
            let Some(rx) = self.signals.as_mut() else {
                self.shared.lost();
                return Poll::Ready(Heard::Closed {
                    reason: RECONNECTING.into(),
                });
            };
            let heard = match ready!(rx.poll_recv(cx)) {
                Some(Signal::Event { name, args }) => Heard::Event { name, args },
                Some(Signal::ServerDisconnect) => Heard::Closed {
                    reason: "io server disconnect".into(),
                },
                Some(Signal::Reconnecting(reply)) => {
                    self.reconnecting = Some(reply);
                    Heard::Closed {
                        reason: RECONNECTING.into(),
                    }
                }
                // The app cannot tell: it waits on, deaf.
                Some(Signal::Died(why)) => Heard::Stuck {
                    op: panicked(&why),
                    waited: Duration::ZERO,
                },
                Some(Signal::Open | Signal::Error(_)) => continue,
                None => {
                    self.shared.lost();
                    Heard::Closed {
                        reason: RECONNECTING.into(),
                    }
                }
            };
            return Poll::Ready(heard);
        }
    }

    fn emit_with_ack(
        &self,
        event: &str,
        data: Value,
        timeout: Duration,
    ) -> BoxFuture<'static, Result<Vec<Value>, AckError>> {
        let Some(client) = self.client.clone() else {
            return std::future::ready(Err(AckError::Disconnected)).boxed();
        };
        if !self.shared.up.load(Ordering::Acquire) {
            return std::future::ready(Err(AckError::Disconnected)).boxed();
        }
        let mut losses = self.shared.losses.subscribe();
        losses.mark_unchanged();
        let event = event.to_owned();
        async move {
            let deadline = tokio::time::Instant::now() + timeout;
            let (reply, answer) = oneshot::channel();
            let reply = Arc::new(Mutex::new(Some(reply)));
            let callback = move |p: Payload, _: Client| {
                if let Some(reply) = reply.lock().unwrap_or_else(|e| e.into_inner()).take() {
                    let _ = reply.send(args_of(p));
                }
                async {}.boxed()
            };
            match tokio::time::timeout_at(
                deadline,
                client.emit_with_ack(event.as_str(), data, timeout, callback),
            )
            .await
            {
                Err(_) => return Err(AckError::Timeout),
                Ok(Err(_)) => return Err(AckError::Disconnected),
                Ok(Ok(())) => {}
            }
            // The library never fails an ack: not on a timeout, not on a
            // disconnect. Its ack list may also drop ours unanswered (the
            // sender is then gone): only the deadline tells.
            let answered = async {
                match answer.await {
                    Ok(args) => args,
                    Err(_) => std::future::pending().await,
                }
            };
            tokio::select! {
                args = answered => Ok(args),
                _ = losses.changed() => Err(AckError::Disconnected),
                _ = tokio::time::sleep_until(deadline) => Err(AckError::Timeout),
            }
        }
        .boxed()
    }

    fn is_closed(&self) -> bool {
        !self.shared.up.load(Ordering::Acquire)
    }

    fn disconnect<'a>(&'a mut self, host: &'a dyn Host) -> BoxFuture<'a, ()> {
        self.drop_client(host).boxed()
    }
}
