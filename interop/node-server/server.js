#!/usr/bin/env node
// A chat server on the official socket.io 4 package and express, speaking
// reconnoiter's default protocol (DESIGN.md): the harness's interop target,
// and an example of a user's own server started through a scenario's
// `[target] command`.
//
// Configuration (environment; what reconnoiter passes to a `[target] command`):
//   HOST, PORT                      where to listen (127.0.0.1, 0 = pick a free port)
//   RECONNOITER_DB                  SQLite file (./chat.db)
//   RECONNOITER_USERS, RECONNOITER_CONVERSATIONS, RECONNOITER_MEMBERS, RECONNOITER_SEED
//                                   deterministic seeding of a fresh database
//   RECONNOITER_TOKEN_TTL_MS        access token lifetime (15 min)
//   RECONNOITER_PING_INTERVAL_MS, RECONNOITER_PING_TIMEOUT_MS
//                                   Engine.IO heartbeat (25000, 20000)
// Of this server only:
//   JWT_SECRET                      signs tokens; fixed by default so a restart keeps them valid
//   REFRESH_TTL_MS (7 days), QUEUE_TTL_MS (24 h)
//   --recovery or SOCKETIO_RECOVERY=1
//                                   socket.io's connectionStateRecovery on
//   SOCKETIO_RECOVERY_MAX_MS        its maxDisconnectionDuration (120000)
//   --verbose or VERBOSE=1          log refusals and disconnects on stderr
//
// Prints `listening on HOST:PORT` on stdout once it accepts connections.
// SIGTERM: tells every client `server-shutdown`, closes, exits 0.
"use strict";

const http = require("node:http");
const express = require("express");
const { Server } = require("socket.io");
const { Store } = require("./store");
const { Tokens } = require("./auth");
const socket = require("./socket");
const { routes } = require("./http");

function fatal(message) {
  console.error(`error: ${message}`);
  process.exit(2);
}

function int(name, fallback) {
  const raw = process.env[name];
  if (raw === undefined || raw === "") return fallback;
  if (!/^\d+$/.test(raw)) fatal(`${name}=${raw} is not a non-negative integer`);
  return Number(raw);
}

function config(argv, env) {
  const flags = new Set(argv);
  for (const f of flags) {
    if (!["--recovery", "--verbose"].includes(f)) fatal(`unknown argument ${f} (known: --recovery, --verbose)`);
  }
  const seedRaw = env.RECONNOITER_SEED ?? "1";
  if (!/^\d+$/.test(seedRaw)) fatal(`RECONNOITER_SEED=${seedRaw} is not a non-negative integer`);
  const c = {
    host: env.HOST || "127.0.0.1",
    port: int("PORT", 0),
    db: env.RECONNOITER_DB || "chat.db",
    seed: {
      users: int("RECONNOITER_USERS", 0),
      conversations: int("RECONNOITER_CONVERSATIONS", 0),
      members: int("RECONNOITER_MEMBERS", 0),
      seed: BigInt(seedRaw),
    },
    accessTtlMs: int("RECONNOITER_TOKEN_TTL_MS", 15 * 60 * 1000),
    refreshTtlMs: int("REFRESH_TTL_MS", 7 * 24 * 3600 * 1000),
    queueTtlMs: int("QUEUE_TTL_MS", 24 * 3600 * 1000),
    pingInterval: int("RECONNOITER_PING_INTERVAL_MS", 25000),
    pingTimeout: int("RECONNOITER_PING_TIMEOUT_MS", 20000),
    secret: env.JWT_SECRET || "reconnoiter-node-secret",
    recovery: flags.has("--recovery") || env.SOCKETIO_RECOVERY === "1",
    recoveryMaxMs: int("SOCKETIO_RECOVERY_MAX_MS", 120000),
    verbose: flags.has("--verbose") || env.VERBOSE === "1",
  };
  if (c.seed.conversations > 0 && c.seed.members > c.seed.users) {
    fatal(`RECONNOITER_MEMBERS=${c.seed.members} is more than RECONNOITER_USERS=${c.seed.users}`);
  }
  return c;
}

function main() {
  const cfg = config(process.argv.slice(2), process.env);
  const store = new Store(cfg.db);
  store.seedOnce(cfg.seed);
  const tokens = new Tokens(cfg.secret, store, cfg);
  const app = {
    store,
    tokens,
    queueTtlMs: cfg.queueTtlMs,
    recovery: cfg.recovery,
    verbose: cfg.verbose,
    started: Date.now(),
  };

  const web = express();
  const server = http.createServer(web);
  const io = new Server(server, {
    pingInterval: cfg.pingInterval,
    pingTimeout: cfg.pingTimeout,
    // socket.io skips the middlewares of a recovered session by default:
    // a token that expired or was revoked while the client was away would
    // be let back in. The guide's server checks it on every connect.
    connectionStateRecovery: cfg.recovery
      ? { maxDisconnectionDuration: cfg.recoveryMaxMs, skipMiddlewares: false }
      : undefined,
  });
  socket.register(io, app);
  web.use(routes(io, app));

  let closing = false;
  const shutdown = (signal) => {
    if (closing) return;
    closing = true;
    if (cfg.verbose) console.error(`${signal}: shutting down`);
    io.emit("server-shutdown", { reason: "shutdown" });
    // A moment for the notices to leave before the sockets close.
    setTimeout(() => {
      io.close(() => {
        store.close();
        process.exit(0);
      });
      server.closeAllConnections();
    }, 50);
    setTimeout(() => process.exit(0), 3000).unref();
  };
  process.on("SIGTERM", () => shutdown("SIGTERM"));
  process.on("SIGINT", () => shutdown("SIGINT"));

  server.on("error", (e) => fatal(`cannot listen on ${cfg.host}:${cfg.port}: ${e.message}`));
  server.listen(cfg.port, cfg.host, () => {
    const { address, port } = server.address();
    const host = address.includes(":") ? `[${address}]` : address;
    process.stdout.write(`listening on ${host}:${port}\n`);
    console.error(
      `socket.io chat server on ${host}:${port}, db ${cfg.db}, recovery ${cfg.recovery ? "on" : "off"}`,
    );
  });
}

main();
