//! One simulated user: a person with a browser tab running the guide's
//! client. It logs in, connects, joins its conversations, chats, and when the
//! connection is lost it follows socket.io-client's reconnection schedule and
//! then the guide's recovery: refresh an expired token, rejoin, fetch what it
//! missed, resend its outbox, and mark itself recovered. Every step is an
//! event in the history; the user never judges what it saw.

pub mod backoff;
pub mod blackhole;
pub mod ctx;
pub mod driver;
pub mod ledger;
pub mod native;
pub mod outbox;
pub mod rust_socketio;
pub mod seen;
mod seq_window;
pub mod stats;
pub mod task_death;

mod session;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde_json::Value;
use tokio::sync::watch;

use backoff::Backoff;
pub use ctx::{Ctx, Phase};
use driver::{Dial, Dialed, Driver, Host, Refresh};
use outbox::Outbox;
use seen::Seen;
use stats::Stats;

use crate::history::EventKind;
use crate::scenario::SyncMode;
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
    /// The cohort's blackholes, so a connection that outlives one is closed.
    pub blackholes: Option<watch::Receiver<blackhole::Blackholes>>,
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
    blackholes: Option<watch::Receiver<blackhole::Blackholes>>,
    sync: SyncMode,
    /// Seeded per user, so the same seed gives the same jitter and think times.
    /// SmallRng (32 bytes) rather than StdRng (320, ChaCha's block buffer):
    /// jitter needs no cryptographic strength, and a process holds 18,000.
    rng: SmallRng,
    session: Option<Session>,
    conversations: Vec<Conversation>,
    outbox: Outbox,
    /// Numbers the user's messages: temp_id = "{name}-{n}".
    next_n: u64,
    /// Login retries (reconnection is the driver's).
    backoff: Backoff,
    phase: watch::Receiver<Phase>,
    /// When the next message is due.
    next_send: Option<tokio::time::Instant>,
    /// Messages created so far (renamed resends are not new messages).
    created: u32,
}

/// How a session (one connection) ended.
enum SessionEnd {
    /// The link closed; socket.io-client's reason when the driver knows it.
    Lost(String),
    /// The tab was closed: a client-side disconnect.
    TabClosed,
    /// The connection outlived a blackhole: closed, reconnect at once.
    OutlivedBlackhole,
    Stop,
}

impl User {
    pub fn new(idx: u32, conversations: Vec<String>, ctx: Arc<Ctx>, route: Route) -> User {
        let mut rng =
            SmallRng::seed_from_u64(ctx.seed ^ (idx as u64).wrapping_mul(0x9e3779b97f4a7c15));
        // Spread the first sends over one interval so users do not send in lockstep.
        let now = tokio::time::Instant::now();
        let from = ctx.sends_from.map_or(now, |t| t.max(now));
        let next_send = ctx
            .users
            .send_interval
            .filter(|_| ctx.users.messages != Some(0))
            .map(|i| from + i.mul_f64(rng.random::<f64>()));
        User {
            idx,
            name: format!("u{idx}"),
            socket_url: route.socket_url,
            api: route.api,
            tab: route.tab,
            blackholes: route.blackholes,
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
    ///
    /// Takes the user boxed: an async fn keeps its by-value arguments in its
    /// state apart from the locals it moves them to, so `run(self)` held the
    /// `User` twice: a 2,576-byte task, now 848 bytes and a 576-byte box.
    pub async fn run(mut self: Box<Self>) {
        Stats::gauge(&self.stats().offline, 1);
        // Boxed, here and for the recovery steps: an inline future makes
        // the task as large as its largest await, for the user's whole life
        // (the REST calls' futures are kilobytes; heaptrack, README).
        if Box::pin(self.login()).await {
            let mut driver = driver::for_user(
                self.ctx.users.driver,
                self.ctx.clone(),
                self.socket_url.clone(),
            );
            self.connect_loop(&mut *driver).await;
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

    /// Connect through the driver, run the session, and on loss ask the
    /// driver again: who makes the attempts, and when, is the driver's.
    async fn connect_loop(&mut self, driver: &mut dyn Driver) {
        let mut why = Dial::First;
        loop {
            match driver.dial(self, why).await {
                Dialed::Stop => return,
                Dialed::GaveUp { attempts } => return self.stay_offline(attempts).await,
                Dialed::Up => {}
            }
            let first = why == Dial::First;
            Stats::gauge(&self.stats().connected, 1);
            Stats::gauge(&self.stats().offline, -1);
            if !first {
                Stats::add(&self.stats().reconnects, 1);
            }
            let end = self.session(driver, first).await;
            Stats::gauge(&self.stats().connected, -1);
            Stats::gauge(&self.stats().offline, 1);
            why = match end {
                SessionEnd::Stop => return,
                SessionEnd::TabClosed => {
                    self.record(EventKind::Disconnected {
                        reason: "io client disconnect".into(),
                    });
                    Dial::Reopened
                }
                SessionEnd::OutlivedBlackhole => {
                    self.record(EventKind::Disconnected {
                        reason: blackhole::OUTLIVED.into(),
                    });
                    Dial::Reopened
                }
                SessionEnd::Lost(reason) => {
                    self.record(EventKind::Disconnected { reason });
                    Dial::Lost
                }
            };
        }
    }

    /// Waits while the tab is closed; false if the run stopped meanwhile.
    async fn tab_open(&mut self) -> bool {
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
        let temp_id = self.ctx.temp_id(&self.name, n);
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

/// What a driver may ask of the user while it connects.
impl Host for User {
    fn record(&self, kind: EventKind) {
        User::record(self, kind);
    }

    fn now(&self) -> u64 {
        self.ctx.recorder.now()
    }

    fn stats(&self) -> &Stats {
        &self.ctx.stats
    }

    fn stopping(&self) -> bool {
        User::stopping(self)
    }

    fn random(&mut self) -> f64 {
        self.rng.random()
    }

    fn sleep(&mut self, d: Duration) -> BoxFuture<'_, bool> {
        User::sleep(self, d).boxed()
    }

    fn wait_tab_open(&mut self) -> BoxFuture<'_, bool> {
        self.tab_open().boxed()
    }

    fn typing_while_connecting(
        &mut self,
        attempt: BoxFuture<'static, Result<crate::sio::Connection, crate::sio::ConnectError>>,
    ) -> BoxFuture<'_, Result<crate::sio::Connection, crate::sio::ConnectError>> {
        self.queueing(attempt).boxed()
    }

    fn auth(&mut self, refresh: Refresh) -> BoxFuture<'_, Option<Value>> {
        async move {
            match refresh {
                Refresh::Never => {}
                Refresh::IfExpired => self.ensure_fresh_token(false).await,
                Refresh::Refused => self.ensure_fresh_token(true).await,
            }
            self.session
                .as_ref()
                .map(|s| serde_json::json!({ "token": s.token }))
        }
        .boxed()
    }
}
