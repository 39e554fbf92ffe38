// Everything durable, in one SQLite file (better-sqlite3: synchronous, so a
// handler that stores and then acknowledges acknowledges only what was
// committed). WAL with synchronous=NORMAL survives a SIGKILL of the process.
// The schema and the semantics mirror reconnoiter's reference server
// (src/server/store.rs).
"use strict";

const Database = require("better-sqlite3");
const { memberships } = require("./seed");

const SCHEMA = `
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
`;

const iso = (ms) => new Date(ms).toISOString();

/** A stored row in the wire shape of `message:new`. */
function toMessage(row) {
  return {
    id: `m${row.rowid}`,
    temp_id: row.temp_id,
    conversationId: row.conversation_id,
    senderId: row.sender_id,
    content: row.content,
    createdAt: iso(row.created_ms),
    seq: row.seq,
  };
}

class Store {
  constructor(path) {
    this.db = new Database(path);
    this.db.pragma("journal_mode = WAL");
    this.db.pragma("synchronous = NORMAL");
    this.db.pragma("busy_timeout = 5000");
    this.db.exec(SCHEMA);
    const q = (sql) => this.db.prepare(sql);
    this.s = {
      meta: q("SELECT value FROM meta WHERE key = ?"),
      setMeta: q("INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value"),
      ensureUser: q("INSERT OR IGNORE INTO users(id) VALUES (?)"),
      tokenVersion: q("SELECT token_version FROM users WHERE id = ?"),
      revoke: q("UPDATE users SET token_version = token_version + 1 WHERE id = ?"),
      ensureConversation: q("INSERT OR IGNORE INTO conversations(id) VALUES (?)"),
      addParticipant: q("INSERT OR IGNORE INTO participants(conversation_id, user_id, joined_ms) VALUES (?, ?, ?)"),
      removeParticipant: q("DELETE FROM participants WHERE conversation_id = ? AND user_id = ?"),
      dropQueueOf: q("DELETE FROM offline_queue WHERE conversation_id = ? AND user_id = ?"),
      membership: q("SELECT joined_ms FROM participants WHERE conversation_id = ? AND user_id = ?"),
      participants: q("SELECT user_id FROM participants WHERE conversation_id = ? ORDER BY user_id"),
      conversationsOf: q(`SELECT c.id, c.last_seq, p.joined_ms FROM participants p
                          JOIN conversations c ON c.id = p.conversation_id
                          WHERE p.user_id = ? ORDER BY c.id`),
      byTempId: q("SELECT * FROM messages WHERE sender_id = ? AND temp_id = ? ORDER BY rowid LIMIT 1"),
      nextSeq: q("UPDATE conversations SET last_seq = last_seq + 1 WHERE id = ? RETURNING last_seq"),
      insertMessage: q(`INSERT INTO messages(conversation_id, seq, sender_id, temp_id, content, created_ms)
                        VALUES (?, ?, ?, ?, ?, ?)`),
      enqueue: q(`INSERT OR IGNORE INTO offline_queue(user_id, conversation_id, message_rowid, enqueued_ms)
                  VALUES (?, ?, ?, ?)`),
      sinceTime: q(`SELECT * FROM messages WHERE conversation_id = ? AND created_ms >= ? AND created_ms >= ?
                    ORDER BY seq LIMIT ?`),
      sinceSeq: q(`SELECT * FROM messages WHERE conversation_id = ? AND seq > ? AND created_ms >= ?
                   ORDER BY seq LIMIT ?`),
      queueOf: q(`SELECT m.* FROM offline_queue q JOIN messages m ON m.rowid = q.message_rowid
                  WHERE q.user_id = ? AND q.conversation_id = ? AND q.enqueued_ms >= ? ORDER BY m.seq`),
      queued: q("SELECT COUNT(*) AS n FROM offline_queue"),
    };
    this.insertTx = this.db.transaction((conversation, sender, tempId, content, nowMs, queueFor) => {
      this.s.ensureConversation.run(conversation);
      const { last_seq: seq } = this.s.nextSeq.get(conversation);
      const { lastInsertRowid } = this.s.insertMessage.run(conversation, seq, sender, tempId, content, nowMs);
      for (const user of queueFor) this.s.enqueue.run(user, conversation, lastInsertRowid, nowMs);
      return toMessage({
        rowid: lastInsertRowid,
        conversation_id: conversation,
        seq,
        sender_id: sender,
        temp_id: tempId,
        content,
        created_ms: nowMs,
      });
    });
    this.takeTx = this.db.transaction((user, conversation, minEnqueuedMs) => {
      const rows = this.s.queueOf.all(user, conversation, minEnqueuedMs);
      this.s.dropQueueOf.run(conversation, user);
      return rows.map(toMessage);
    });
    this.removeTx = this.db.transaction((conversation, user) => {
      const { changes } = this.s.removeParticipant.run(conversation, user);
      this.s.dropQueueOf.run(conversation, user);
      return changes > 0;
    });
  }

  /**
   * Seeds a fresh database once: a restarted server must not re-add members
   * that a scenario removed.
   */
  seedOnce(seed) {
    if (this.s.meta.get("seeded")) return false;
    this.db.transaction(() => {
      for (let i = 0; i < seed.users; i++) this.s.ensureUser.run(`u${i}`);
      for (const [conversation, members] of memberships(seed)) {
        this.s.ensureConversation.run(conversation);
        for (const m of members) this.s.addParticipant.run(conversation, m, 0);
      }
      this.s.setMeta.run("seeded", JSON.stringify({ ...seed, seed: String(seed.seed) }));
    })();
    return true;
  }

  ensureUser(user) {
    this.s.ensureUser.run(user);
  }

  /** The user's token version, or undefined for an unknown user. */
  tokenVersion(user) {
    return this.s.tokenVersion.get(user)?.token_version;
  }

  /** Revokes every token issued to `user` so far; false for an unknown user. */
  revokeTokens(user) {
    return this.s.revoke.run(user).changes > 0;
  }

  /** Adds a member; re-adding keeps the original join time. True when added. */
  addParticipant(conversation, user, nowMs) {
    this.s.ensureConversation.run(conversation);
    this.s.ensureUser.run(user);
    return this.s.addParticipant.run(conversation, user, nowMs).changes > 0;
  }

  /** Removes a member and whatever waits for them there. True when removed. */
  removeParticipant(conversation, user) {
    return this.removeTx(conversation, user);
  }

  /** When the user joined the conversation (ms), or undefined if not a member. */
  membership(conversation, user) {
    return this.s.membership.get(conversation, user)?.joined_ms;
  }

  participants(conversation) {
    return this.s.participants.all(conversation).map((r) => r.user_id);
  }

  conversationsOf(user) {
    return this.s.conversationsOf.all(user).map((r) => ({
      id: r.id,
      lastSeq: r.last_seq,
      joinedAt: iso(r.joined_ms),
    }));
  }

  findByTempId(sender, tempId) {
    const row = this.s.byTempId.get(sender, tempId);
    return row && toMessage(row);
  }

  /**
   * Stores a message with the conversation's next seq and, in the same
   * transaction, queues it for `queueFor` (members not in the room).
   */
  insertMessage(conversation, sender, tempId, content, nowMs, queueFor) {
    return this.insertTx(conversation, sender, tempId, content, nowMs, queueFor);
  }

  /**
   * Messages from `since` on ({timeMs} inclusive, or {seq} exclusive), never
   * older than `notBeforeMs`, oldest first.
   */
  messagesSince(conversation, since, notBeforeMs, limit) {
    const rows =
      since.seq !== undefined
        ? this.s.sinceSeq.all(conversation, since.seq, notBeforeMs, limit)
        : this.s.sinceTime.all(conversation, since.timeMs, notBeforeMs, limit);
    return rows.map(toMessage);
  }

  /** Takes (returns and deletes) what waits for `user` in `conversation`. */
  takeQueue(user, conversation, minEnqueuedMs) {
    return this.takeTx(user, conversation, minEnqueuedMs);
  }

  /** Forgets what waits for `user` in `conversation` without returning it. */
  dropQueue(user, conversation) {
    this.s.dropQueueOf.run(conversation, user);
  }

  queued() {
    return this.s.queued.get().n;
  }

  close() {
    this.db.close();
  }
}

module.exports = { Store, iso };
