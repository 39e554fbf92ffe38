// Logs N users in against the reference server, as reconnoiter's users do
// (POST /api/auth/login {userId}), and asks each for its conversations
// (GET /api/conversations), then writes users.csv (userId,token,conversationId)
// for Artillery's payload: Artillery's socketio engine connects before the
// first step of a scenario, so the token has to exist before the virtual
// user starts. bench/vs-artillery.py counts this script's CPU as Artillery's.
//
// usage: node login.js BASE_URL N OUT.csv
'use strict';
const fs = require('fs');

async function main() {
  const [base, nArg, out] = process.argv.slice(2);
  const n = Number(nArg);
  const rows = new Array(n);
  let next = 0;
  async function worker() {
    while (next < n) {
      const i = next++;
      const userId = `u${i}`;
      const login = await fetch(`${base}/api/auth/login`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ userId }),
      });
      if (!login.ok) throw new Error(`login ${userId}: HTTP ${login.status}`);
      const { token } = await login.json();
      const convs = await fetch(`${base}/api/conversations`, {
        headers: { authorization: `Bearer ${token}` },
      });
      if (!convs.ok) throw new Error(`conversations ${userId}: HTTP ${convs.status}`);
      const { conversations } = await convs.json();
      const first = conversations[0];
      const id = first === undefined ? '' : typeof first === 'object' ? first.id : first;
      rows[i] = `${userId},${token},${id}`;
    }
  }
  await Promise.all(Array.from({ length: 32 }, worker));
  fs.writeFileSync(out, 'userId,token,conversationId\n' + rows.join('\n') + '\n');
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
