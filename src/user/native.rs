//! The native driver: our `sio` client, one connection per attempt, with
//! socket.io-client's reconnection schedule run here.

use std::sync::Arc;
use std::task::{Context, Poll, ready};

use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use serde_json::Value;

use super::Ctx;
use super::backoff::Backoff;
use super::driver::{Dial, Dialed, Driver, Heard, Host, Refresh, begin_attempt};
use super::stats::Stats;
use crate::history::EventKind;
use crate::sio::{self, AckError, Client, ConnectError, ConnectOptions, Incoming, Recovery};

pub struct Native {
    ctx: Arc<Ctx>,
    url: String,
    backoff: Backoff,
    /// Attempts since the last connection (the Manager's counter).
    attempt: u32,
    /// When the schedule wanted the next attempt (µs).
    scheduled: u64,
    /// The last attempt was refused (`Authentication failed`).
    refused: bool,
    /// Connection-state recovery data from the last connection, if the server offers it.
    recovery: Option<Recovery>,
    client: Option<Client>,
    incoming: Option<sio::Inbox>,
}

impl Native {
    pub fn new(ctx: Arc<Ctx>, url: String) -> Native {
        Native {
            backoff: Backoff::new(ctx.reconnection),
            scheduled: ctx.recorder.now(),
            ctx,
            url,
            attempt: 0,
            refused: false,
            recovery: None,
            client: None,
            incoming: None,
        }
    }

    fn options(&self, auth: Option<Value>) -> ConnectOptions {
        ConnectOptions {
            path: self.ctx.path.clone(),
            namespace: self.ctx.namespace.clone(),
            auth,
            timeout: self.ctx.reconnection.timeout,
            recovery: self.recovery.clone(),
            ..ConnectOptions::default()
        }
    }

    async fn dial_inner(&mut self, host: &mut dyn Host, why: Dial) -> Dialed {
        match why {
            Dial::First => {}
            // The Manager resets on close; the guide's app also reconnects
            // after "io server disconnect".
            Dial::Lost => {
                if !self.ctx.reconnection.enabled {
                    return Dialed::GaveUp { attempts: 0 };
                }
                self.backoff.reset();
                self.scheduled = host.now();
            }
            // Reopening the tab connects at once, with a fresh Manager.
            Dial::Reopened => {
                self.backoff.reset();
                self.scheduled = host.now();
            }
        }
        loop {
            if host.stopping() || !host.wait_tab_open().await {
                return Dialed::Stop;
            }
            // Like the guide's client, the token it has is presented as is;
            // only `Authentication failed` makes it refresh (so a server that
            // accepts expired tokens shows up in the history).
            let auth = begin_attempt(
                host,
                self.refused,
                Refresh::Never,
                &mut self.attempt,
                Some(self.scheduled),
            )
            .await;
            let attempt = self.attempt;
            let (url, options) = (self.url.clone(), self.options(auth));
            let attempted = host
                .typing_while_connecting(async move { sio::connect(&url, &options).await }.boxed())
                .await;
            match attempted {
                Ok(conn) => {
                    self.refused = false;
                    let t = conn.info.timings;
                    host.record(EventKind::Connected {
                        attempt,
                        sid: conn.info.sid.clone(),
                        tcp: t.tcp.as_micros() as u64,
                        upgrade: t.upgrade.as_micros() as u64,
                        open: t.open.as_micros() as u64,
                        connect: t.connect.as_micros() as u64,
                        recovered: conn.info.recovered,
                    });
                    self.backoff.reset();
                    self.attempt = 0;
                    self.client = Some(conn.client);
                    self.incoming = Some(conn.incoming);
                    return Dialed::Up;
                }
                Err(e) => {
                    let was_refused = self.refused;
                    self.refused = matches!(e, ConnectError::Refused { .. });
                    Stats::add(&host.stats().connect_failures, 1);
                    host.record(EventKind::ConnectFailed {
                        attempt,
                        error: e.to_string(),
                        refused: self.refused,
                    });
                    if !self.ctx.reconnection.enabled || self.backoff.exhausted() {
                        return Dialed::GaveUp { attempts: attempt };
                    }
                    // The guide's client answers `Authentication failed` by
                    // refreshing its token and connecting again at once; only
                    // a second refusal in a row waits for the schedule.
                    if self.refused && !was_refused {
                        self.scheduled = host.now();
                        continue;
                    }
                }
            }
            let delay = self.backoff.next_delay(host.random());
            self.scheduled = host.now() + delay.as_micros() as u64;
            if !host.sleep(delay).await {
                return Dialed::Stop;
            }
        }
    }
}

impl Driver for Native {
    fn name(&self) -> &'static str {
        "native"
    }

    fn dial<'a>(&'a mut self, host: &'a mut dyn Host, why: Dial) -> BoxFuture<'a, Dialed> {
        self.dial_inner(host, why).boxed()
    }

    fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Heard> {
        let item = match self.incoming.as_mut() {
            Some(rx) => ready!(rx.poll_recv(cx)),
            None => None,
        };
        Poll::Ready(match item {
            Some(Incoming::Event { name, args, .. }) => Heard::Event { name, args },
            Some(Incoming::Closed(reason)) => {
                self.recovery = self.client.as_ref().and_then(Client::recovery);
                self.incoming = None;
                Heard::Closed {
                    reason: reason.as_str().to_owned(),
                }
            }
            None => {
                self.incoming = None;
                Heard::Closed {
                    reason: sio::CloseReason::TransportClose.as_str().to_owned(),
                }
            }
        })
    }

    fn emit_with_ack(
        &self,
        event: &str,
        data: Value,
        timeout: std::time::Duration,
    ) -> BoxFuture<'static, Result<Vec<Value>, AckError>> {
        let Some(client) = self.client.clone() else {
            return std::future::ready(Err(AckError::Disconnected)).boxed();
        };
        let event = event.to_owned();
        async move { client.emit_with_ack(&event, &data, timeout).await }.boxed()
    }

    fn is_closed(&self) -> bool {
        self.client.as_ref().is_none_or(Client::is_closed)
    }

    fn disconnect<'a>(&'a mut self, _host: &'a dyn Host) -> BoxFuture<'a, ()> {
        async move {
            if let Some(client) = &self.client {
                client.disconnect().await;
            }
        }
        .boxed()
    }
}
