//! What every handler of the reference server shares.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::auth::{Kind, TokenError, Tokens};
use super::store::{Message, Store, StoreError};
use super::{Bug, ServerConfig};

pub type Shared = Arc<AppState>;

/// (user, conversation) → (message row id, enqueued at ms): the offline
/// queue as `volatile-queue` keeps it, in memory only.
type VolatileQueue = HashMap<(String, String), Vec<(i64, i64)>>;

/// Sends and joins in one conversation are serialised through one of these
/// stripes, so `seq` order is broadcast order and a join cannot slip between
/// storing a message and deciding who was offline for it.
const LOCK_STRIPES: usize = 64;

pub struct AppState {
    /// The durable state; a std mutex because every use is a short SQLite call.
    pub store: Mutex<Store>,
    pub tokens: Tokens,
    pub config: ServerConfig,
    /// The offline queue when the `volatile-queue` bug is on: (user, conversation) → row ids.
    volatile_queue: Mutex<VolatileQueue>,
    stripes: Vec<tokio::sync::Mutex<()>>,
    /// Seeded, so `drop-under-load` drops the same broadcasts for the same seed and order.
    rng: Mutex<StdRng>,
    pub started: Instant,
}

impl AppState {
    pub fn new(config: ServerConfig, store: Store) -> Shared {
        Arc::new(AppState {
            store: Mutex::new(store),
            tokens: Tokens::new(&config.secret),
            rng: Mutex::new(StdRng::seed_from_u64(config.seed.seed)),
            config,
            volatile_queue: Mutex::new(HashMap::new()),
            stripes: (0..LOCK_STRIPES)
                .map(|_| tokio::sync::Mutex::new(()))
                .collect(),
            started: Instant::now(),
        })
    }

    pub fn bug(&self, bug: Bug) -> bool {
        self.config.bugs.contains(&bug)
    }

    pub fn now_ms() -> i64 {
        chrono::Utc::now().timestamp_millis()
    }

    pub fn store(&self) -> std::sync::MutexGuard<'_, Store> {
        // A panic while holding the lock leaves SQLite consistent (every write
        // is a transaction), so a poisoned lock is still usable.
        self.store.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub async fn lock_conversation(&self, conversation: &str) -> tokio::sync::MutexGuard<'_, ()> {
        let mut h: u64 = 0xcbf29ce484222325;
        for b in conversation.bytes() {
            h = (h ^ b as u64).wrapping_mul(0x100000001b3);
        }
        self.stripes[(h as usize) % LOCK_STRIPES].lock().await
    }

    /// Checks an access token: signature, expiry (unless the bug is on) and revocation.
    pub fn authenticate(&self, token: &str) -> Result<String, TokenError> {
        let check_expiry = !self.bug(Bug::AcceptExpiredTokens);
        let claims = self
            .tokens
            .verify(token, Kind::Access, Self::now_ms(), check_expiry)?;
        self.check_version(&claims.sub, claims.ver)?;
        Ok(claims.sub)
    }

    pub fn check_version(&self, user: &str, version: i64) -> Result<(), TokenError> {
        match self.store().token_version(user) {
            Ok(Some(v)) if v == version => Ok(()),
            Ok(Some(_)) => Err(TokenError::Revoked),
            _ => Err(TokenError::Invalid),
        }
    }

    /// Issues a fresh access and refresh token pair for a known user.
    pub fn issue_pair(&self, user: &str) -> Result<TokenPair, StoreError> {
        let version = {
            let store = self.store();
            store.ensure_user(user)?;
            store.token_version(user)?.unwrap_or(0)
        };
        let now = Self::now_ms();
        let (token, expires_ms) = self.tokens.issue(
            user,
            Kind::Access,
            version,
            now,
            self.config.token_ttl.as_millis() as i64,
        );
        let (refresh, _) = self.tokens.issue(
            user,
            Kind::Refresh,
            version,
            now,
            self.config.refresh_ttl.as_millis() as i64,
        );
        Ok(TokenPair {
            token,
            refresh,
            expires_ms,
        })
    }

    /// Stores a message and queues it for the members not in the room, in
    /// SQLite or (with `volatile-queue`) in memory only.
    pub fn store_message(
        &self,
        conversation: &str,
        sender: &str,
        temp_id: &str,
        content: &str,
        offline: Vec<String>,
    ) -> Result<Message, StoreError> {
        let now = Self::now_ms();
        if !self.bug(Bug::VolatileQueue) {
            return self.store().insert_message(
                conversation,
                sender,
                temp_id,
                content,
                now,
                &offline,
            );
        }
        let message =
            self.store()
                .insert_message(conversation, sender, temp_id, content, now, &[])?;
        let rowid = super::store::rowid_of(&message.id).unwrap_or_default();
        let mut q = self
            .volatile_queue
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        for user in offline {
            q.entry((user, conversation.to_owned()))
                .or_default()
                .push((rowid, now));
        }
        Ok(message)
    }

    /// Takes what waits for `user` in `conversation`, honouring the queue TTL.
    pub fn take_queue(&self, user: &str, conversation: &str) -> Result<Vec<Message>, StoreError> {
        let min = Self::now_ms() - self.config.queue_ttl.as_millis() as i64;
        if !self.bug(Bug::VolatileQueue) {
            return self.store().take_queue(user, conversation, min);
        }
        let entries = self
            .volatile_queue
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&(user.to_owned(), conversation.to_owned()))
            .unwrap_or_default();
        let store = self.store();
        let mut out = Vec::new();
        for (rowid, at) in entries {
            if at >= min
                && let Some(m) = store.message_by_rowid(rowid)?
            {
                out.push(m);
            }
        }
        Ok(out)
    }

    /// Forgets what waits for a removed member (the durable queue does this in SQL).
    pub fn drop_volatile_queue(&self, user: &str, conversation: &str) {
        self.volatile_queue
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&(user.to_owned(), conversation.to_owned()));
    }

    /// With `swallow-sends`, true for about one (user, temp_id) in fifty:
    /// the same ones every time, so resends are swallowed as well.
    pub fn swallow_this_send(&self, user: &str, temp_id: &str) -> bool {
        if !self.bug(Bug::SwallowSends) {
            return false;
        }
        let mut h: u64 = 0xcbf29ce484222325;
        for b in user.bytes().chain([0]).chain(temp_id.bytes()) {
            h = (h ^ b as u64).wrapping_mul(0x100000001b3);
        }
        h % 50 == 7
    }

    /// With `phantom-messages`, true for about one broadcast in fifty.
    pub fn phantom_after_this(&self) -> bool {
        self.bug(Bug::PhantomMessages) && self.roll(0.02)
    }

    /// With `reorder`, true for about one broadcast in ten.
    pub fn hold_this_broadcast(&self) -> bool {
        self.bug(Bug::Reorder) && self.roll(0.1)
    }

    fn roll(&self, p: f64) -> bool {
        self.rng
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .random_bool(p)
    }

    /// With `drop-under-load`, true for about one broadcast in fifty.
    pub fn drop_this_broadcast(&self) -> bool {
        self.bug(Bug::DropUnderLoad) && self.roll(0.02)
    }
}

pub struct TokenPair {
    pub token: String,
    pub refresh: String,
    pub expires_ms: i64,
}
