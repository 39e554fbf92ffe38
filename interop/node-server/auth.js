// Signed tokens (HS256 JWT via jsonwebtoken): short-lived access tokens for
// the socket and REST, longer-lived refresh tokens to get new ones, and a
// per-user token version in the database so a revocation kills both.
//
// Expiry is checked here to the millisecond (`exp_ms`): scenarios use token
// lifetimes of a few seconds, and the standard `exp` claim counts whole
// seconds. `exp` is still set for other JWT readers.
"use strict";

const crypto = require("node:crypto");
const jwt = require("jsonwebtoken");

class TokenError extends Error {}

class Tokens {
  /**
   * @param {string} secret
   * @param {import("./store").Store} store
   * @param {{accessTtlMs:number, refreshTtlMs:number}} ttl
   */
  constructor(secret, store, ttl) {
    // A KeyObject, made once: given a string, jsonwebtoken first tries it as
    // a PEM private/public key and falls back to an HMAC secret only after
    // that throws, on every sign and verify (a third of this server's CPU
    // during a ramp, measured with --cpu-prof).
    this.secret = crypto.createSecretKey(Buffer.from(secret));
    this.store = store;
    this.ttl = ttl;
  }

  sign(user, typ, version, nowMs, ttlMs) {
    const expMs = nowMs + ttlMs;
    const claims = {
      sub: user,
      exp: Math.ceil(expMs / 1000),
      exp_ms: expMs,
      iat: Math.floor(nowMs / 1000),
      ver: version,
      typ,
      jti: crypto.randomBytes(8).toString("hex"),
    };
    return { token: jwt.sign(claims, this.secret, { algorithm: "HS256" }), expMs };
  }

  /** A fresh access + refresh pair for `user` (created if unknown). */
  issuePair(user) {
    this.store.ensureUser(user);
    const version = this.store.tokenVersion(user) ?? 0;
    const now = Date.now();
    const access = this.sign(user, "access", version, now, this.ttl.accessTtlMs);
    const refresh = this.sign(user, "refresh", version, now, this.ttl.refreshTtlMs);
    return { token: access.token, refreshToken: refresh.token, expiresAt: new Date(access.expMs).toISOString() };
  }

  /**
   * Checks signature, kind, expiry and revocation; returns the user id or
   * throws a TokenError saying why not.
   */
  verify(token, typ) {
    if (typeof token !== "string" || token === "") throw new TokenError("missing token");
    let claims;
    try {
      claims = jwt.verify(token, this.secret, { algorithms: ["HS256"], ignoreExpiration: true });
    } catch {
      throw new TokenError("malformed or badly signed token");
    }
    if (claims.typ !== typ) throw new TokenError("wrong kind of token");
    if (Date.now() >= claims.exp_ms) throw new TokenError("token expired");
    const version = this.store.tokenVersion(claims.sub);
    if (version === undefined) throw new TokenError("unknown user");
    if (version !== claims.ver) throw new TokenError("token revoked");
    return claims.sub;
  }
}

module.exports = { Tokens, TokenError };
