// Persistence: an acked message is in the history, across a clean restart and
// across a SIGKILL (spec: `ack` "Sent only after the message is committed").
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, guest, tokenUser, sendMany, fullHistory, sqlite, T } from './harness.mjs';

test('acked messages survive a SIGTERM restart, with the same id, ts, user, text and client_id', async (t) => {
  let s = await startServer();
  const a = await tokenUser(s, { sub: 'p1', name: 'P One' });
  const b = await guest(s, 'P Two');
  await a.join('keep');
  await b.join('keep');
  const acks = [];
  for (let i = 0; i < 15; i++) {
    acks.push({ ...(await a.say('keep', `a${i} ✓ "quoted" \\ \n newline`, `pa${i}`)), user: a.user, text: `a${i} ✓ "quoted" \\ \n newline` });
    acks.push({ ...(await b.say('keep', `b${i} 😀`, `pb${i}`)), user: b.user, text: `b${i} 😀` });
  }
  s = await s.restart();
  t.after(async () => {
    const r = await s.stop();
    assert.equal(r.code, 0, `stderr:\n${r.stderr}`);
    s.cleanup();
  });
  const c = await guest(s, 'After');
  const h = await fullHistory(c, 'keep');
  assert.deepEqual(
    h.map((m) => [m.id, m.ts, m.user.id, m.user.name, m.text, m.client_id, m.room]),
    acks.map((x) => [x.id, x.ts, x.user.id, x.user.name, x.text, x.client_id, 'keep']),
  );
  // joined after the restart shows them too; rooms reports last_id.
  const j = await c.join('keep');
  assert.deepEqual(j.messages.map((m) => m.id), acks.map((x) => x.id));
  const rooms = await c.request({ type: 'rooms' }, 'rooms');
  const keep = rooms.rooms.find((r) => r.name === 'keep');
  assert.equal(keep?.last_id, acks[acks.length - 1].id);
  // Ids keep increasing after the restart.
  const next = await c.say('keep', 'after restart', 'after-1');
  assert.ok(next.id > acks[acks.length - 1].id);
  c.terminate();
});

test('SIGKILL while sending: every acked id is present after the restart', { timeout: T(120000) }, async (t) => {
  let s = await startServer({ args: ['--rate', '100000', '--burst', '100000'] });
  const senders = [];
  for (let k = 0; k < 3; k++) {
    const c = await tokenUser(s, { sub: `killer${k}`, name: `K${k}` });
    await c.join('crash');
    senders.push(c);
  }
  const acked = new Map(); // id -> ack
  const N = 2000;
  let killAt = null;
  const killed = new Promise((resolve) => (killAt = resolve));
  const runs = senders.map((c, k) =>
    sendMany(c, 'crash', N, {
      window: 40,
      prefix: `k${k}`,
      text: (i) => `crash ${k}/${i}`,
      timeoutMs: T(100000),
      onAck: (a) => {
        acked.set(a.id, a);
        if (acked.size === 600) killAt();
      },
    }).catch(() => {}),
  );
  await killed;
  const r = await s.kill();
  assert.equal(r.signal, 'SIGKILL');
  await Promise.all(runs);
  const ackedIds = [...acked.keys()].sort((x, y) => x - y);
  assert.ok(ackedIds.length >= 600);
  s = await startServer({ args: s.args, db: s.dbPath, port: s.port, ownDir: true });
  t.after(async () => {
    const r2 = await s.stop();
    assert.equal(r2.code, 0, `stderr:\n${r2.stderr}`);
    s.cleanup();
  });
  const c = await guest(s, 'Auditor');
  const h = await fullHistory(c, 'crash');
  const byId = new Map(h.map((m) => [m.id, m]));
  const missing = ackedIds.filter((id) => !byId.has(id));
  assert.deepEqual(missing.slice(0, 20), [], `${missing.length} acked ids missing after SIGKILL`);
  for (const id of ackedIds) {
    const a = acked.get(id), m = byId.get(id);
    assert.deepEqual([m.ts, m.client_id], [a.ts, a.client_id]);
  }
  // History is strictly increasing and has no duplicates.
  const hid = h.map((m) => m.id);
  assert.deepEqual(hid, [...new Set(hid)].sort((x, y) => x - y));
  // The sqlite3 view agrees.
  const n = sqlite(s.dbPath, `SELECT count(*) AS n FROM messages WHERE room = 'crash'`)[0].n;
  assert.equal(n, h.length);
  // A resend of an acked client_id after the crash is deduplicated; new ids are larger.
  const k0 = await tokenUser(s, { sub: 'killer0', name: 'K0' });
  await k0.join('crash', { since: hid[hid.length - 1] });
  const first = [...acked.values()].find((a) => a.client_id.startsWith('k0-'));
  const again = await k0.say('crash', 'whatever', first.client_id);
  assert.deepEqual([again.id, again.ts], [first.id, first.ts]);
  const fresh = await k0.say('crash', 'new', 'after-crash');
  assert.ok(fresh.id > hid[hid.length - 1]);
  c.terminate();
  k0.terminate();
});
