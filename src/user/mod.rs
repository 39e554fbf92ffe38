//! One simulated user: a person with a browser tab running the guide's
//! client. It logs in, connects, joins its conversations, chats, and when the
//! connection is lost it follows socket.io-client's reconnection schedule and
//! then the guide's recovery: refresh an expired token, rejoin, fetch what it
//! missed, resend its outbox, and mark itself recovered. Every step is an
//! event in the history; the user never judges what it saw.

pub mod backoff;
pub mod ctx;
pub mod ledger;
pub mod outbox;
pub mod seen;
pub mod stats;

mod session;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::sync::watch;

use backoff::Backoff;
pub use ctx::{Ctx, Phase};
use outbox::Outbox;
use seen::Seen;
use stats::Stats;

use crate::history::EventKind;
use crate::scenario::SyncMode;
use crate::sio::{self, CloseReason, ConnectError, ConnectOptions, Recovery};
use crate::target::{Api, Session};

/// One conversation as a user sees it.
struct Conversation {
    id: Arc<str>,
    /// False once the server said `removed`.
    active: bool,
    seen: Seen,
    /// Where the owed sync starts, set when a connection is lost and kept
    /// until a sync succeeds: a failed sync must not let later live messages
    /// move the start past the gap.
    sync_from: Option<Option<String>>,
}

/// Where one user's traffic goes: straight to the server, or through its
/// cohort's proxy (REST too, so an offline user cannot sync either).
#[derive(Clone)]
pub struct Route {
    pub socket_url: String,
    pub api: Api,
    /// True while the user's cohort has its tab closed (client-disconnect fault).
    pub tab: Option<watch::Receiver<bool>>,
    /// How this user's client fetches what it missed (its cohort may differ
    /// from `[users] sync`).
    pub sync: SyncMode,
}

pub struct User {
    idx: u32,
    name: String,
    ctx: Arc<Ctx>,
    socket_url: String,
    api: Api,
    tab: Option<watch::Receiver<bool>>,
    sync: SyncMode,
    /// Seeded per user, so the same seed gives the same jitter and think times.
    rng: StdRng,
    session: Option<Session>,
    conversations: Vec<Conversation>,
    outbox: Outbox,
    /// Numbers the user's messages: temp_id = "{name}-{n}".
    next_n: u64,
    backoff: Backoff,
    /// Connection-state recovery data from the last connection, if the server offers it.
    recovery: Option<Recovery>,
    phase: watch::Receiver<Phase>,
    /// When the next message is due.
    next_send: Option<tokio::time::Instant>,
    /// Messages created so far (renamed resends are not new messages).
    created: u32,
}

/// How a session (one connection) ended.
enum SessionEnd {
    Lost(CloseReason),
    /// The tab was closed: a client-side disconnect.
    TabClosed,
    Stop,
}

impl User {
    pub fn new(idx: u32, conversations: Vec<String>, ctx: Arc<Ctx>, route: Route) -> User {
        let mut rng =
            StdRng::seed_from_u64(ctx.seed ^ (idx as u64).wrapping_mul(0x9e3779b97f4a7c15));
        // Spread the first sends over one interval so users do not send in lockstep.
        let next_send = ctx
            .users
            .send_interval
            .filter(|_| ctx.users.messages != Some(0))
            .map(|i| tokio::time::Instant::now() + i.mul_f64(rng.random::<f64>()));
        User {
            idx,
            name: format!("u{idx}"),
            socket_url: route.socket_url,
            api: route.api,
            tab: route.tab,
            sync: route.sync,
            phase: ctx.phase.clone(),
            backoff: Backoff::new(ctx.reconnection),
            conversations: conversations
                .into_iter()
                .map(|c| Conversation {
                    id: c.into(),
                    active: true,
                    seen: Seen::default(),
                    sync_from: None,
                })
                .collect(),
            ctx,
            rng,
            session: None,
            outbox: Outbox::default(),
            next_n: 0,
            recovery: None,
            next_send,
            created: 0,
        }
    }

    fn record(&self, kind: EventKind) {
        self.ctx.recorder.record(self.idx, kind);
    }

    fn stats(&self) -> &Stats {
        &self.ctx.stats
    }

    fn stopping(&self) -> bool {
        *self.phase.borrow() == Phase::Stop
    }

    /// Sleeps `d`, or less if the run stops; false when it stopped. The
    /// user keeps typing meanwhile (see [`User::queueing`]).
    async fn sleep(&mut self, d: Duration) -> bool {
        let phase = self.phase.clone();
        self.queueing(sleep_unless_stopped(d, phase)).await
    }

    /// When the next message is due, if the user is still sending.
    fn send_due(&self) -> Option<tokio::time::Instant> {
        self.next_send
            .filter(|_| *self.phase.borrow() == Phase::Chat)
    }

    /// Waits for `fut` while the send schedule keeps going: DESIGN's "while
    /// offline it queues what it sends". What falls due is created into the
    /// outbox (recorded as `sent`, at its scheduled time) and goes on the
    /// wire when the next session flushes the outbox after its recovery.
    /// Without this an outage would silently thin out the sends, and the
    /// server would never be tested on a burst of queued messages arriving
    /// together with the rejoin. `fut` must not borrow the user.
    async fn queueing<T>(&mut self, fut: impl Future<Output = T>) -> T {
        tokio::pin!(fut);
        loop {
            let due = self.send_due();
            tokio::select! {
                biased;
                out = &mut fut => return out,
                _ = tokio::time::sleep_until(due.unwrap_or_else(tokio::time::Instant::now)), if due.is_some() => {
                    // The drain may have begun while this send was armed.
                    if *self.phase.borrow() == Phase::Chat {
                        self.create_message();
                    }
                    self.schedule_next_send();
                }
            }
        }
    }

    /// The whole life of the user, until the run stops it.
    pub async fn run(mut self) {
        Stats::gauge(&self.stats().offline, 1);
        if self.login().await {
            self.connect_loop().await;
        }
        for p in self.outbox.drain().collect::<Vec<_>>() {
            self.record(EventKind::Stranded {
                temp_id: p.temp_id,
                conversation: p.conversation.to_string(),
            });
        }
        Stats::gauge(&self.stats().offline, -1);
        Stats::add(&self.stats().users_done, 1);
        self.record(EventKind::Stopped);
    }

    /// Logs in, retrying on the reconnection schedule while the run goes on.
    async fn login(&mut self) -> bool {
        loop {
            match self.api.login(&self.name).await {
                Ok(s) => {
                    self.record(EventKind::LoggedIn {
                        expires_at_ms: s.expires_at_ms.unwrap_or(0),
                    });
                    Stats::add(&self.stats().logged_in, 1);
                    self.session = Some(s);
                    // Login retries are not reconnection attempts.
                    self.backoff.reset();
                    return true;
                }
                Err(e) => self.record(EventKind::LoginFailed {
                    error: e.to_string(),
                }),
            }
            let d = self.backoff.next_delay(self.rng.random());
            if self.stopping() || !self.sleep(d).await {
                return false;
            }
        }
    }

    /// Refreshes the token when it has expired (or is about to), or when
    /// `force`d after a refusal; logs in again if refresh fails.
    async fn ensure_fresh_token(&mut self, force: bool) {
        let now = chrono::Utc::now().timestamp_millis();
        let Some(session) = &self.session else { return };
        let expired = session.expires_at_ms.is_some_and(|e| now + 250 >= e);
        if !expired && !force {
            return;
        }
        let refreshed = match session.refresh.clone() {
            Some(r) => self.api.refresh(&r).await,
            None => self.api.login(&self.name).await,
        };
        match refreshed {
            Ok(s) => {
                self.record(EventKind::TokenRefreshed {
                    expires_at_ms: s.expires_at_ms.unwrap_or(0),
                });
                self.session = Some(s);
            }
            Err(e) => {
                self.record(EventKind::TokenRefreshFailed {
                    error: e.to_string(),
                });
                if let Ok(s) = self.api.login(&self.name).await {
                    self.record(EventKind::LoggedIn {
                        expires_at_ms: s.expires_at_ms.unwrap_or(0),
                    });
                    self.session = Some(s);
                }
            }
        }
    }

    fn connect_options(&self) -> ConnectOptions {
        ConnectOptions {
            path: self.ctx.path.clone(),
            namespace: self.ctx.namespace.clone(),
            auth: self
                .session
                .as_ref()
                .map(|s| serde_json::json!({ "token": s.token })),
            timeout: self.ctx.reconnection.timeout,
            recovery: self.recovery.clone(),
            ..ConnectOptions::default()
        }
    }

    /// Connect, run the session, and on loss follow the reconnection schedule.
    async fn connect_loop(&mut self) {
        let mut first = true;
        let mut attempt: u32 = 0;
        let mut scheduled = self.ctx.recorder.now();
        // Set when the last connect was refused, so the next attempt refreshes first.
        let mut refused = false;
        loop {
            if self.stopping() {
                return;
            }
            if !self.wait_tab_open().await {
                return;
            }
            // Like the guide's client, the token it has is presented as is;
            // only `Authentication failed` makes it refresh (so a server that
            // accepts expired tokens shows up in the history).
            if refused {
                self.ensure_fresh_token(true).await;
            }
            attempt += 1;
            self.record(EventKind::Connecting { attempt, scheduled });
            let (url, options) = (self.socket_url.clone(), self.connect_options());
            // An attempt can hang for the whole `timeout` (a blackhole): the
            // user keeps typing meanwhile.
            let attempted = self
                .queueing(async move { sio::connect(&url, &options).await })
                .await;
            match attempted {
                Ok(conn) => {
                    refused = false;
                    let t = conn.info.timings;
                    self.record(EventKind::Connected {
                        attempt,
                        sid: conn.info.sid.clone(),
                        tcp: t.tcp.as_micros() as u64,
                        upgrade: t.upgrade.as_micros() as u64,
                        open: t.open.as_micros() as u64,
                        connect: t.connect.as_micros() as u64,
                        recovered: conn.info.recovered,
                    });
                    Stats::gauge(&self.stats().connected, 1);
                    Stats::gauge(&self.stats().offline, -1);
                    if !first {
                        Stats::add(&self.stats().reconnects, 1);
                    }
                    self.backoff.reset();
                    attempt = 0;
                    let end = self.session(conn, first).await;
                    first = false;
                    Stats::gauge(&self.stats().connected, -1);
                    Stats::gauge(&self.stats().offline, 1);
                    match end {
                        SessionEnd::Stop => return,
                        SessionEnd::TabClosed => {
                            self.record(EventKind::Disconnected {
                                reason: "io client disconnect".into(),
                            });
                            // Reopening the tab connects at once, with a fresh Manager.
                            self.backoff.reset();
                            continue;
                        }
                        SessionEnd::Lost(reason) => {
                            self.record(EventKind::Disconnected {
                                reason: reason.as_str().to_owned(),
                            });
                            if !self.ctx.reconnection.enabled {
                                return self.stay_offline(0).await;
                            }
                            // The Manager resets on close; the guide's app also
                            // reconnects after "io server disconnect".
                            self.backoff.reset();
                        }
                    }
                }
                Err(e) => {
                    let was_refused = refused;
                    refused = matches!(e, ConnectError::Refused { .. });
                    Stats::add(&self.stats().connect_failures, 1);
                    self.record(EventKind::ConnectFailed {
                        attempt,
                        error: e.to_string(),
                        refused,
                    });
                    if !self.ctx.reconnection.enabled || self.backoff.exhausted() {
                        return self.stay_offline(attempt).await;
                    }
                    // The guide's client answers `Authentication failed` by
                    // refreshing its token and connecting again at once; only
                    // a second refusal in a row waits for the schedule.
                    if refused && !was_refused {
                        scheduled = self.ctx.recorder.now();
                        continue;
                    }
                }
            }
            let delay = self.backoff.next_delay(self.rng.random());
            scheduled = self.ctx.recorder.now() + delay.as_micros() as u64;
            if !self.sleep(delay).await {
                return;
            }
        }
    }

    /// Waits while the tab is closed; false if the run stopped meanwhile.
    async fn wait_tab_open(&mut self) -> bool {
        let Some(mut tab) = self.tab.clone() else {
            return true;
        };
        let mut phase = self.phase.clone();
        loop {
            if !*tab.borrow_and_update() {
                return true;
            }
            tokio::select! {
                changed = tab.changed() => if changed.is_err() { return true },
                _ = phase.wait_for(|p| *p == Phase::Stop) => return false,
            }
        }
    }

    /// `reconnect_failed`: no more attempts; wait for the run to end. The
    /// guide's client now shows "disconnected" for good, so the user stops
    /// typing: nothing more is queued (it would only be stranded by the
    /// client's choice, not the server's fault).
    async fn stay_offline(&mut self, attempts: u32) {
        Stats::add(&self.stats().reconnect_failed, 1);
        self.record(EventKind::ReconnectFailed { attempts });
        sleep_unless_stopped(Duration::MAX, self.phase.clone()).await;
    }

    fn content(&self, temp_id: &str) -> String {
        let size = self.ctx.users.message_size as usize;
        let mut s = String::with_capacity(size.max(temp_id.len()));
        s.push_str(temp_id);
        while s.len() < size {
            s.push('.');
        }
        s
    }

    /// Picks the next send time: the mean interval ±50 %, plus think time.
    fn schedule_next_send(&mut self) {
        let Some(interval) = self.ctx.users.send_interval else {
            return;
        };
        if self
            .ctx
            .users
            .messages
            .is_some_and(|max| self.created >= max)
        {
            self.next_send = None;
            return;
        }
        let (lo, hi) = self.ctx.users.think_time;
        let think = if hi > lo {
            self.rng.random_range(lo..=hi)
        } else {
            lo
        };
        let gap = interval.mul_f64(self.rng.random_range(0.5..1.5)) + think;
        self.next_send = Some(tokio::time::Instant::now() + gap);
    }

    /// Creates a message into the outbox; returns its key.
    fn create_message(&mut self) -> Option<u64> {
        let active: Vec<usize> = (0..self.conversations.len())
            .filter(|&i| self.conversations[i].active)
            .collect();
        if active.is_empty() {
            return None;
        }
        let conversation = self.conversations[active[self.rng.random_range(0..active.len())]]
            .id
            .clone();
        let n = self.next_n;
        self.next_n += 1;
        self.created += 1;
        let temp_id = format!("{}-{n}", self.name);
        let content = self.content(&temp_id);
        // Due now unless a send timer fired late: then its due time, so a
        // slow harness cannot hide the wait from the delivery latency.
        let scheduled = self.next_send.map_or_else(
            || self.ctx.recorder.now(),
            |due| self.ctx.recorder.at(due.into_std()),
        );
        self.record(EventKind::Sent {
            temp_id: temp_id.clone(),
            conversation: conversation.to_string(),
            scheduled,
        });
        Stats::add(&self.stats().sent, 1);
        Stats::gauge(&self.stats().outbox, 1);
        self.outbox.push(
            n,
            outbox::Pending {
                temp_id,
                conversation,
                content,
                in_flight: false,
            },
        );
        Some(n)
    }
}

/// Sleeps `d` (Duration::MAX: forever), or less if the run stops; false
/// when it stopped. Owns its phase receiver, so it can be raced against
/// the user's send schedule without borrowing the user.
async fn sleep_unless_stopped(d: Duration, mut phase: watch::Receiver<Phase>) -> bool {
    let deadline = async {
        match tokio::time::Instant::now().checked_add(d) {
            Some(at) => tokio::time::sleep_until(at).await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = deadline => true,
        _ = phase.wait_for(|p| *p == Phase::Stop) => false,
    }
}
