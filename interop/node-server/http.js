// The REST side: login and refresh, missed messages, conversations, health,
// and the test-admin endpoints a scenario's faults call. Mirrors
// reconnoiter's reference server (src/server/http.rs).
"use strict";

const express = require("express");
const { TokenError } = require("./auth");
const { userRoom } = require("./socket");

/**
 * @param {import("socket.io").Server} io
 * @param {{store: import("./store").Store, tokens: import("./auth").Tokens, started: number, recovery: boolean}} app
 */
function routes(io, app) {
  const { store, tokens } = app;
  const r = express.Router();
  r.use(express.json());

  const fail = (res, status, error) => res.status(status).json({ error, status });

  // The user behind `Authorization: Bearer <access token>`, or undefined
  // after answering 401.
  const bearer = (req, res) => {
    const h = req.get("authorization") ?? "";
    if (!h.startsWith("Bearer ")) return void fail(res, 401, "missing bearer token");
    try {
      return tokens.verify(h.slice("Bearer ".length), "access");
    } catch (e) {
      if (!(e instanceof TokenError)) throw e;
      return void fail(res, 401, `Authentication failed: ${e.message}`);
    }
  };

  r.get("/health", (_req, res) => {
    res.json({
      status: "ok",
      server: "socket.io (Node.js)",
      connectedSockets: io.of("/").sockets.size,
      uptimeSeconds: (Date.now() - app.started) / 1000,
      queued: store.queued(),
      connectionStateRecovery: app.recovery,
    });
  });

  r.post("/api/auth/login", (req, res) => {
    const user = req.body?.userId;
    if (typeof user !== "string") return fail(res, 400, 'body must be {"userId": "..."}');
    if (user === "") return fail(res, 400, "userId must not be empty");
    res.json({ userId: user, ...tokens.issuePair(user) });
  });

  r.post("/api/auth/refresh", (req, res) => {
    const refresh = req.body?.refreshToken;
    if (typeof refresh !== "string") return fail(res, 400, 'body must be {"refreshToken": "..."}');
    let user;
    try {
      user = tokens.verify(refresh, "refresh");
    } catch (e) {
      if (!(e instanceof TokenError)) throw e;
      return fail(res, 401, `refresh refused: ${e.message}`);
    }
    res.json(tokens.issuePair(user));
  });

  // Test admin: revokes every token the user holds (access and refresh).
  r.post("/api/auth/revoke", (req, res) => {
    const user = req.body?.userId;
    if (typeof user !== "string") return fail(res, 400, 'body must be {"userId": "..."}');
    if (!store.revokeTokens(user)) return fail(res, 404, `unknown user ${user}`);
    res.json({ revoked: true, userId: user });
  });

  // ?conversationId=&since=<ISO, inclusive> or &sinceSeq=<n, exclusive>&limit=
  r.get("/api/messages", (req, res) => {
    const user = bearer(req, res);
    if (user === undefined) return;
    const { conversationId, since, sinceSeq, limit } = req.query;
    if (typeof conversationId !== "string" || conversationId === "") {
      return fail(res, 400, "conversationId is required");
    }
    let from;
    if (sinceSeq !== undefined) {
      const seq = Number(sinceSeq);
      if (!Number.isInteger(seq)) return fail(res, 400, "sinceSeq must be an integer");
      from = { seq };
    } else if (since !== undefined) {
      const ms = typeof since === "string" && /^\d{4}-\d\d-\d\dT/.test(since) ? Date.parse(since) : NaN;
      if (Number.isNaN(ms)) return fail(res, 400, "since must be an ISO 8601 time");
      from = { timeMs: ms };
    } else {
      from = { seq: 0 };
    }
    const joined = store.membership(conversationId, user);
    if (joined === undefined) return fail(res, 403, "not a participant of this conversation");
    const n = Math.min(Math.max(Number.parseInt(limit ?? "1000", 10) || 1000, 1), 10000);
    const found = store.messagesSince(conversationId, from, joined, n + 1);
    const hasMore = found.length > n;
    res.json({ messages: found.slice(0, n), hasMore });
  });

  r.get("/api/conversations", (req, res) => {
    const user = bearer(req, res);
    if (user === undefined) return;
    res.json({ conversations: store.conversationsOf(user) });
  });

  r.post("/api/conversations/:id/participants", (req, res) => {
    const user = req.body?.userId;
    if (typeof user !== "string" || user === "") return fail(res, 400, 'body must be {"userId": "..."}');
    const added = store.addParticipant(req.params.id, user, Date.now());
    res.json({ added, conversationId: req.params.id, userId: user });
  });

  r.delete("/api/conversations/:id/participants/:userId", (req, res) => {
    const { id, userId } = req.params;
    const removed = store.removeParticipant(id, userId);
    // Takes effect at once: the removed user's open sockets stop receiving.
    io.in(userRoom(userId)).socketsLeave(id);
    if (!removed) return fail(res, 404, `${userId} is not a participant of ${id}`);
    res.json({ removed: true, conversationId: id, userId });
  });

  // Malformed JSON bodies and anything unexpected: the same {error} shape.
  // eslint-disable-next-line no-unused-vars
  r.use((err, _req, res, _next) => fail(res, err.status ?? 500, err.message));
  return r;
}

module.exports = { routes };
