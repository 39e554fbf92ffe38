// The Socket.IO side: auth middleware, rooms, sends, the offline queue,
// presence and duplicate connections. Mirrors reconnoiter's reference server
// (src/server/socket.rs).
//
// Every handler runs to completion without awaiting: better-sqlite3 is
// synchronous and the in-memory adapter's room operations are too, so
// "who is in the room", "store and queue for the others" and "broadcast" are
// one atomic step, and seq order is broadcast order.
"use strict";

const userRoom = (user) => `user:${user}`;

function conversationOf(data) {
  const c = data && data.conversationId;
  if (typeof c === "string" && c !== "") return c;
  if (typeof c === "number") return String(c);
  return undefined;
}

const removedAnswer = (conversation) => ({
  error: "You are no longer a participant of this conversation",
  action: "removed",
  conversationId: conversation,
});

/**
 * @param {import("socket.io").Server} io
 * @param {{store: import("./store").Store, tokens: import("./auth").Tokens, queueTtlMs: number}} app
 */
function register(io, app) {
  const { store, tokens } = app;
  const nsp = io.of("/");

  // The users with a socket in `room` right now.
  const usersIn = (room) => {
    const users = new Set();
    for (const id of nsp.adapter.rooms.get(room) ?? []) {
      const s = nsp.sockets.get(id);
      if (s) users.add(s.data.userId);
    }
    return users;
  };

  const announce = (user, status) => {
    const payload = { userId: user, status, at: new Date().toISOString() };
    for (const c of store.conversationsOf(user)) io.to(c.id).emit("user:status", payload);
  };

  // The guide's auth middleware. It also runs for a recovered session (see
  // skipMiddlewares in server.js), so an expired or revoked token cannot
  // come back through connection-state recovery.
  io.use((socket, next) => {
    try {
      socket.data.userId = tokens.verify(socket.handshake.auth?.token, "access");
      next();
    } catch (e) {
      if (app.verbose) console.error(`refused connect: ${e.message}`);
      next(new Error("Authentication failed"));
    }
  });

  io.on("connection", (socket) => {
    const user = socket.data.userId;
    const room = userRoom(user);
    const others = [...(nsp.adapter.rooms.get(room) ?? [])].filter((id) => id !== socket.id);
    for (const id of others) {
      nsp.sockets.get(id)?.emit("duplicate-connection", { message: "connected elsewhere", socketId: socket.id });
    }
    socket.join(room);
    if (others.length === 0) announce(user, "online");

    socket.on("join-room", (data, ack) => {
      ack = typeof ack === "function" ? ack : () => {};
      const conversation = conversationOf(data);
      if (conversation === undefined) return ack({ error: "conversationId is required" });
      if (store.membership(conversation, user) === undefined) return ack(removedAnswer(conversation));
      // A recovered session is already back in its rooms, and socket.io has
      // just replayed what it missed there: the queued copies of the same
      // messages would arrive twice. What is queued for a user with a socket
      // in the room can only be what that replay covered, so it is dropped.
      const replayed = socket.rooms.has(conversation);
      socket.join(conversation);
      if (replayed) {
        store.dropQueue(user, conversation);
        return ack({ success: true, conversationId: conversation });
      }
      const queued = store.takeQueue(user, conversation, Date.now() - app.queueTtlMs);
      ack({ success: true, conversationId: conversation });
      for (const m of queued) socket.emit("message:new", m);
    });

    socket.on("leave-room", (data, ack) => {
      ack = typeof ack === "function" ? ack : () => {};
      const conversation = conversationOf(data);
      if (conversation === undefined) return ack({ error: "conversationId is required" });
      socket.leave(conversation);
      ack({ success: true });
    });

    socket.on("send-message", (data, ack) => {
      ack = typeof ack === "function" ? ack : () => {};
      const conversation = conversationOf(data);
      const tempId = data && data.temp_id;
      const content = data && data.content;
      if (conversation === undefined || typeof tempId !== "string" || typeof content !== "string") {
        return ack({ error: "temp_id, conversationId and content are required" });
      }
      try {
        // Idempotency first: a resend whose ack was lost gets the original
        // id, even if the sender was removed since.
        const existing = store.findByTempId(user, tempId);
        if (existing) {
          return ack({ id: existing.id, seq: existing.seq, createdAt: existing.createdAt, duplicate: true });
        }
        if (store.membership(conversation, user) === undefined) return ack(removedAnswer(conversation));
        // Who is in the room now gets it live; the other members get it queued.
        const inRoom = usersIn(conversation);
        const offline = store.participants(conversation).filter((p) => !inRoom.has(p));
        const message = store.insertMessage(conversation, user, tempId, content, Date.now(), offline);
        io.to(conversation).emit("message:new", message);
        // Acknowledged only now: after the commit and the broadcast.
        ack({ id: message.id, seq: message.seq, createdAt: message.createdAt });
      } catch (e) {
        ack({ error: `storage failed: ${e.message}` });
      }
    });

    socket.on("disconnect", (reason) => {
      if (app.verbose) console.error(`${socket.id} (${user}) disconnected: ${reason}`);
      const stillHere = [...(nsp.adapter.rooms.get(room) ?? [])].some((id) => id !== socket.id);
      if (!stillHere && reason !== "server shutting down") announce(user, "offline");
    });
  });
}

module.exports = { register, userRoom };
