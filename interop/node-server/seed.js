// Deterministic seeding, the same as reconnoiter's reference server
// (src/server/seed.rs): the same users/conversations/members/seed always make
// the same memberships, so the harness knows who is in which conversation
// without asking. splitmix64 on 64-bit unsigned integers (BigInt here).
"use strict";

const MASK = (1n << 64n) - 1n;

function mix(z) {
  z = (z + 0x9e3779b97f4a7c15n) & MASK;
  z = ((z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n) & MASK;
  z = ((z ^ (z >> 27n)) * 0x94d049bb133111ebn) & MASK;
  return z ^ (z >> 31n);
}

const userId = (i) => `u${i}`;
const conversationId = (j) => `c${j}`;

/**
 * The members of every conversation: users are shuffled by the seed, then
 * conversation j takes `members` consecutive users from position j*members,
 * wrapping around.
 * @param {{users:number, conversations:number, members:number, seed:bigint}} s
 * @returns {Array<[string, string[]]>}
 */
function memberships({ users, conversations, members, seed }) {
  if (users === 0) return [];
  const seed64 = BigInt.asUintN(64, BigInt(seed));
  const keyed = [];
  for (let i = 0; i < users; i++) keyed.push([mix(seed64 ^ mix(BigInt(i))), i]);
  keyed.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : a[1] - b[1]));
  const order = keyed.map(([, i]) => i);
  const k = Math.min(members, users);
  const out = [];
  for (let j = 0; j < conversations; j++) {
    const start = (j * k) % users;
    const list = [];
    for (let i = 0; i < k; i++) list.push(userId(order[(start + i) % users]));
    out.push([conversationId(j), list]);
  }
  return out;
}

module.exports = { memberships, userId, conversationId, mix };
