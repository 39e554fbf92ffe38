//! Everything durable the reference server keeps, in one SQLite file.
//!
//! The server acknowledges a message only after its transaction committed, so
//! a SIGKILL loses nothing acknowledged: WAL mode with `synchronous=NORMAL`
//! survives a process crash (it only risks the last commits on power loss,
//! which a test harness does not simulate).

use std::path::Path;

use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open database {path}: {source}")]
    Open {
        path: String,
        source: rusqlite::Error,
    },
    #[error("database error: {0}")]
    Sql(#[from] rusqlite::Error),
}

/// A stored chat message, in the wire shape of `message:new`.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Message {
    pub id: String,
    pub temp_id: String,
    #[serde(rename = "conversationId")]
    pub conversation_id: String,
    #[serde(rename = "senderId")]
    pub sender_id: String,
    pub content: String,
    /// ISO 8601 with milliseconds, as JavaScript's `toISOString` writes it.
    #[serde(rename = "createdAt")]
    pub created_at: String,
    #[serde(skip_serializing_if = "seq_hidden")]
    pub seq: i64,
    /// Milliseconds since the epoch; the `since` query compares on this.
    #[serde(skip)]
    pub created_ms: i64,
}

/// Where a sync query starts.
#[derive(Debug, Clone, Copy)]
pub enum Since {
    /// Messages created at or after this time (ms since the epoch). Inclusive,
    /// because several messages can share a millisecond; the client drops
    /// the ones it already has by id.
    Time(i64),
    /// Messages with a larger sequence number: the exact form.
    Seq(i64),
}

/// Set once by `serve --no-seq`: the wire shape of a server that numbers
/// nothing. Process-wide because it is a property of the server process
/// and messages are serialised deep inside socketioxide's emit, where no
/// configuration reaches; the store keeps its seqs either way.
static SEQ_HIDDEN: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Leaves `seq` and `lastSeq` off everything this process serialises.
pub fn hide_seq() {
    SEQ_HIDDEN.store(true, std::sync::atomic::Ordering::Relaxed);
}

fn seq_hidden(_: &i64) -> bool {
    SEQ_HIDDEN.load(std::sync::atomic::Ordering::Relaxed)
}

/// `seq` for an ack: None (left out) under `--no-seq`.
pub fn wire_seq(seq: i64) -> Option<i64> {
    (!seq_hidden(&seq)).then_some(seq)
}

/// One conversation as `GET /api/conversations` lists it.
#[derive(Debug, Clone, Serialize)]
pub struct Conversation {
    pub id: String,
    #[serde(rename = "lastSeq", skip_serializing_if = "seq_hidden")]
    pub last_seq: i64,
    #[serde(rename = "joinedAt")]
    pub joined_at: String,
}

pub struct Store {
    conn: Connection,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS users (
    id TEXT PRIMARY KEY,
    token_version INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS conversations (
    id TEXT PRIMARY KEY,
    last_seq INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS participants (
    conversation_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    joined_ms INTEGER NOT NULL,
    PRIMARY KEY (conversation_id, user_id)
);
CREATE INDEX IF NOT EXISTS participants_by_user ON participants(user_id);
CREATE TABLE IF NOT EXISTS messages (
    rowid INTEGER PRIMARY KEY AUTOINCREMENT,
    conversation_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    sender_id TEXT NOT NULL,
    temp_id TEXT NOT NULL,
    content TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    UNIQUE (conversation_id, seq)
);
CREATE INDEX IF NOT EXISTS messages_by_temp_id ON messages(sender_id, temp_id);
CREATE INDEX IF NOT EXISTS messages_by_time ON messages(conversation_id, created_ms);
CREATE TABLE IF NOT EXISTS offline_queue (
    user_id TEXT NOT NULL,
    conversation_id TEXT NOT NULL,
    message_rowid INTEGER NOT NULL,
    enqueued_ms INTEGER NOT NULL,
    PRIMARY KEY (user_id, conversation_id, message_rowid)
);
";

const MESSAGE_COLUMNS: &str =
    "rowid, conversation_id, seq, sender_id, temp_id, content, created_ms";

fn message_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Message> {
    let rowid: i64 = row.get(0)?;
    let created_ms: i64 = row.get(6)?;
    Ok(Message {
        id: format!("m{rowid}"),
        conversation_id: row.get(1)?,
        seq: row.get(2)?,
        sender_id: row.get(3)?,
        temp_id: row.get(4)?,
        content: row.get(5)?,
        created_at: iso_millis(created_ms),
        created_ms,
    })
}

/// Formats epoch milliseconds the way JavaScript's `Date.toISOString` does.
pub fn iso_millis(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Parses an ISO 8601 time into epoch milliseconds.
pub fn parse_iso(s: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.timestamp_millis())
}

/// A message id back to its row id (`m42` → 42).
pub fn rowid_of(id: &str) -> Option<i64> {
    id.strip_prefix('m')?.parse().ok()
}

impl Store {
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let open_err = |source| StoreError::Open {
            path: path.display().to_string(),
            source,
        };
        let conn = Connection::open(path).map_err(open_err)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(open_err)?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(open_err)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(open_err)?;
        conn.execute_batch(SCHEMA).map_err(open_err)?;
        // Every statement is prepared once and reused (`prepare_cached`):
        // re-parsing each one cost the server 7 % of its CPU in a connect
        // ramp (README, Performance, eighth pass).
        conn.set_prepared_statement_cache_capacity(64);
        Ok(Store { conn })
    }

    /// An in-memory store, for unit tests.
    pub fn in_memory() -> Store {
        let conn = Connection::open_in_memory().expect("in-memory sqlite");
        conn.execute_batch(SCHEMA).expect("schema");
        conn.set_prepared_statement_cache_capacity(64);
        Store { conn }
    }

    pub fn meta(&self, key: &str) -> Result<Option<String>, StoreError> {
        Ok(self
            .conn
            .prepare_cached("SELECT value FROM meta WHERE key = ?1")?
            .query_row([key], |r| r.get(0))
            .optional()?)
    }

    pub fn set_meta(&self, key: &str, value: &str) -> Result<(), StoreError> {
        self.conn
            .prepare_cached(
                "INSERT INTO meta(key, value) VALUES (?1, ?2) ON CONFLICT(key) DO UPDATE SET value = ?2",
            )?
            .execute([key, value])?;
        Ok(())
    }

    /// Runs `f` in one transaction, so seeding thousands of rows is one commit.
    pub fn in_transaction<T>(
        &mut self,
        f: impl FnOnce(&Store) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.conn.execute_batch("BEGIN IMMEDIATE")?;
        match f(self) {
            Ok(v) => {
                self.conn.execute_batch("COMMIT")?;
                Ok(v)
            }
            Err(e) => {
                let _ = self.conn.execute_batch("ROLLBACK");
                Err(e)
            }
        }
    }

    pub fn ensure_user(&self, user: &str) -> Result<(), StoreError> {
        self.conn
            .prepare_cached("INSERT OR IGNORE INTO users(id) VALUES (?1)")?
            .execute([user])?;
        Ok(())
    }

    /// The user's current token version; tokens of an older version are revoked.
    pub fn token_version(&self, user: &str) -> Result<Option<i64>, StoreError> {
        Ok(self
            .conn
            .prepare_cached("SELECT token_version FROM users WHERE id = ?1")?
            .query_row([user], |r| r.get(0))
            .optional()?)
    }

    /// Revokes every token issued to `user` so far. False when the user is unknown.
    pub fn revoke_tokens(&self, user: &str) -> Result<bool, StoreError> {
        let n = self
            .conn
            .prepare_cached("UPDATE users SET token_version = token_version + 1 WHERE id = ?1")?
            .execute([user])?;
        Ok(n > 0)
    }

    pub fn ensure_conversation(&self, conversation: &str) -> Result<(), StoreError> {
        self.conn
            .prepare_cached("INSERT OR IGNORE INTO conversations(id) VALUES (?1)")?
            .execute([conversation])?;
        Ok(())
    }

    /// Adds a member; re-adding keeps the original join time. True when added.
    pub fn add_participant(
        &self,
        conversation: &str,
        user: &str,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        self.ensure_conversation(conversation)?;
        self.ensure_user(user)?;
        let n = self
            .conn
            .prepare_cached(
                "INSERT OR IGNORE INTO participants(conversation_id, user_id, joined_ms) VALUES (?1, ?2, ?3)",
            )?
            .execute(params![conversation, user, now_ms])?;
        Ok(n > 0)
    }

    /// Removes a member and whatever waits for them in that conversation. True when removed.
    pub fn remove_participant(&self, conversation: &str, user: &str) -> Result<bool, StoreError> {
        let n = self
            .conn
            .prepare_cached("DELETE FROM participants WHERE conversation_id = ?1 AND user_id = ?2")?
            .execute([conversation, user])?;
        self.conn
            .prepare_cached(
                "DELETE FROM offline_queue WHERE conversation_id = ?1 AND user_id = ?2",
            )?
            .execute([conversation, user])?;
        Ok(n > 0)
    }

    /// When the user (last) joined the conversation, or None if not a member.
    pub fn membership(&self, conversation: &str, user: &str) -> Result<Option<i64>, StoreError> {
        Ok(self
            .conn
            .prepare_cached(
                "SELECT joined_ms FROM participants WHERE conversation_id = ?1 AND user_id = ?2",
            )?
            .query_row([conversation, user], |r| r.get(0))
            .optional()?)
    }

    pub fn participants(&self, conversation: &str) -> Result<Vec<String>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT user_id FROM participants WHERE conversation_id = ?1 ORDER BY user_id",
        )?;
        let rows = stmt.query_map([conversation], |r| r.get(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    pub fn conversations_of(&self, user: &str) -> Result<Vec<Conversation>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT c.id, c.last_seq, p.joined_ms FROM participants p
             JOIN conversations c ON c.id = p.conversation_id
             WHERE p.user_id = ?1 ORDER BY c.id",
        )?;
        let rows = stmt.query_map([user], |r| {
            Ok(Conversation {
                id: r.get(0)?,
                last_seq: r.get(1)?,
                joined_at: iso_millis(r.get(2)?),
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The message a sender already stored under this temp_id, if any.
    pub fn find_by_temp_id(
        &self,
        sender: &str,
        temp_id: &str,
    ) -> Result<Option<Message>, StoreError> {
        let sql = format!(
            "SELECT {MESSAGE_COLUMNS} FROM messages WHERE sender_id = ?1 AND temp_id = ?2 ORDER BY rowid LIMIT 1"
        );
        Ok(self
            .conn
            .prepare_cached(&sql)?
            .query_row([sender, temp_id], message_from_row)
            .optional()?)
    }

    /// Stores a message with the conversation's next sequence number and, in
    /// the same transaction, queues it for `queue_for` (members not in the
    /// room). One commit: either all of it survives a crash or none of it.
    pub fn insert_message(
        &mut self,
        conversation: &str,
        sender: &str,
        temp_id: &str,
        content: &str,
        now_ms: i64,
        queue_for: &[String],
    ) -> Result<Message, StoreError> {
        let tx = self.conn.transaction()?;
        tx.prepare_cached("INSERT OR IGNORE INTO conversations(id) VALUES (?1)")?
            .execute([conversation])?;
        let seq: i64 = tx
            .prepare_cached(
                "UPDATE conversations SET last_seq = last_seq + 1 WHERE id = ?1 RETURNING last_seq",
            )?
            .query_row([conversation], |r| r.get(0))?;
        tx.prepare_cached(
            "INSERT INTO messages(conversation_id, seq, sender_id, temp_id, content, created_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?
        .execute(params![conversation, seq, sender, temp_id, content, now_ms])?;
        let rowid = tx.last_insert_rowid();
        {
            let mut q = tx.prepare_cached(
                "INSERT OR IGNORE INTO offline_queue(user_id, conversation_id, message_rowid, enqueued_ms)
                 VALUES (?1, ?2, ?3, ?4)",
            )?;
            for user in queue_for {
                q.execute(params![user, conversation, rowid, now_ms])?;
            }
        }
        tx.commit()?;
        Ok(Message {
            id: format!("m{rowid}"),
            temp_id: temp_id.to_owned(),
            conversation_id: conversation.to_owned(),
            sender_id: sender.to_owned(),
            content: content.to_owned(),
            created_at: iso_millis(now_ms),
            seq,
            created_ms: now_ms,
        })
    }

    /// Messages of a conversation from `since` on, never older than `not_before_ms`
    /// (a member sees nothing from before they joined), oldest first.
    pub fn messages_since(
        &self,
        conversation: &str,
        since: Since,
        not_before_ms: i64,
        limit: u32,
    ) -> Result<Vec<Message>, StoreError> {
        let (cond, bound) = match since {
            Since::Time(ms) => ("created_ms >= ?2", ms),
            Since::Seq(seq) => ("seq > ?2", seq),
        };
        let sql = format!(
            "SELECT {MESSAGE_COLUMNS} FROM messages
             WHERE conversation_id = ?1 AND {cond} AND created_ms >= ?3
             ORDER BY seq LIMIT ?4"
        );
        let mut stmt = self.conn.prepare_cached(&sql)?;
        let rows = stmt.query_map(
            params![conversation, bound, not_before_ms, limit],
            message_from_row,
        )?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    pub fn message_by_rowid(&self, rowid: i64) -> Result<Option<Message>, StoreError> {
        let sql = format!("SELECT {MESSAGE_COLUMNS} FROM messages WHERE rowid = ?1");
        Ok(self
            .conn
            .prepare_cached(&sql)?
            .query_row([rowid], message_from_row)
            .optional()?)
    }

    /// Takes (returns and deletes) what waits for `user` in `conversation`,
    /// in the conversation's order, dropping entries older than `min_enqueued_ms`.
    pub fn take_queue(
        &mut self,
        user: &str,
        conversation: &str,
        min_enqueued_ms: i64,
    ) -> Result<Vec<Message>, StoreError> {
        let tx = self.conn.transaction()?;
        let messages = {
            let sql = format!(
                "SELECT {} FROM offline_queue q JOIN messages m ON m.rowid = q.message_rowid
                 WHERE q.user_id = ?1 AND q.conversation_id = ?2 AND q.enqueued_ms >= ?3
                 ORDER BY m.seq",
                MESSAGE_COLUMNS
                    .split(", ")
                    .map(|c| format!("m.{c}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            let mut stmt = tx.prepare_cached(&sql)?;
            let rows = stmt.query_map(
                params![user, conversation, min_enqueued_ms],
                message_from_row,
            )?;
            rows.collect::<Result<Vec<_>, _>>()?
        };
        tx.prepare_cached("DELETE FROM offline_queue WHERE user_id = ?1 AND conversation_id = ?2")?
            .execute([user, conversation])?;
        tx.commit()?;
        Ok(messages)
    }

    /// Puts messages back in `user`'s queue for `conversation`: a replay
    /// that could not be written to the socket must not be lost with it.
    pub fn requeue(
        &mut self,
        user: &str,
        conversation: &str,
        rowids: &[i64],
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let tx = self.conn.transaction()?;
        {
            let mut q = tx.prepare_cached(
                "INSERT OR IGNORE INTO offline_queue(user_id, conversation_id, message_rowid, enqueued_ms)
                 VALUES (?1, ?2, ?3, ?4)",
            )?;
            for rowid in rowids {
                q.execute(params![user, conversation, rowid, now_ms])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// How many queue entries wait in all; `/health` reports it.
    pub fn queued(&self) -> Result<i64, StoreError> {
        Ok(self
            .conn
            .prepare_cached("SELECT COUNT(*) FROM offline_queue")?
            .query_row([], |r| r.get(0))?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequence_numbers_count_up_per_conversation() {
        let mut s = Store::in_memory();
        let a = s
            .insert_message("c0", "u0", "t1", "hi", 1_000, &[])
            .unwrap();
        let b = s
            .insert_message("c0", "u1", "t2", "yo", 1_001, &[])
            .unwrap();
        let c = s.insert_message("c1", "u0", "t3", "x", 1_002, &[]).unwrap();
        assert_eq!((a.seq, b.seq, c.seq), (1, 2, 1));
        assert_ne!(a.id, b.id);
        assert_eq!(s.find_by_temp_id("u0", "t1").unwrap().unwrap(), a);
        assert!(s.find_by_temp_id("u1", "t1").unwrap().is_none());
    }

    #[test]
    fn since_time_is_inclusive_and_since_seq_exclusive() {
        let mut s = Store::in_memory();
        for (i, t) in [(1, 100), (2, 100), (3, 200)] {
            s.insert_message("c", "u", &format!("t{i}"), "m", t, &[])
                .unwrap();
        }
        let seqs = |v: Vec<Message>| v.into_iter().map(|m| m.seq).collect::<Vec<_>>();
        assert_eq!(
            seqs(s.messages_since("c", Since::Time(100), 0, 100).unwrap()),
            [1, 2, 3]
        );
        assert_eq!(
            seqs(s.messages_since("c", Since::Time(101), 0, 100).unwrap()),
            [3]
        );
        assert_eq!(
            seqs(s.messages_since("c", Since::Seq(1), 0, 100).unwrap()),
            [2, 3]
        );
        assert_eq!(
            seqs(s.messages_since("c", Since::Seq(0), 150, 100).unwrap()),
            [3]
        );
    }

    #[test]
    fn queue_is_taken_once_in_order_and_honours_ttl() {
        let mut s = Store::in_memory();
        let who = vec!["u2".to_string()];
        s.insert_message("c", "u0", "a", "1", 100, &who).unwrap();
        s.insert_message("c", "u0", "b", "2", 200, &who).unwrap();
        let got = s.take_queue("u2", "c", 150).unwrap();
        assert_eq!(got.iter().map(|m| m.seq).collect::<Vec<_>>(), [2]);
        assert!(s.take_queue("u2", "c", 0).unwrap().is_empty());
        // What could not be written to the socket goes back, once.
        let rowid = rowid_of(&got[0].id).unwrap();
        s.requeue("u2", "c", &[rowid, rowid], 200).unwrap();
        assert_eq!(s.take_queue("u2", "c", 0).unwrap().len(), 1);
    }

    #[test]
    fn removal_drops_membership_and_queue() {
        let mut s = Store::in_memory();
        assert!(s.add_participant("c", "u1", 5).unwrap());
        assert!(!s.add_participant("c", "u1", 9).unwrap());
        assert_eq!(s.membership("c", "u1").unwrap(), Some(5));
        s.insert_message("c", "u0", "a", "1", 100, &["u1".into()])
            .unwrap();
        assert!(s.remove_participant("c", "u1").unwrap());
        assert_eq!(s.membership("c", "u1").unwrap(), None);
        assert!(s.take_queue("u1", "c", 0).unwrap().is_empty());
    }

    #[test]
    fn iso_round_trip() {
        let ms = 1_795_000_000_123;
        let s = iso_millis(ms);
        assert!(s.ends_with(".123Z"), "{s}");
        assert_eq!(parse_iso(&s), Some(ms));
    }
}
