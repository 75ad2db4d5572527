// join with `since`: a reconnecting client gets exactly what it missed
// (spec: `joined`).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, connect, guest, tokenUser, sendMany, fullHistory, T } from './harness.mjs';

async function withServer(t, opts) {
  const s = await startServer(opts);
  t.after(async () => {
    const r = await s.stop();
    assert.equal(r.code, 0, `stderr:\n${r.stderr}`);
    s.cleanup();
  });
  return s;
}

test('reconnect and join with since: exactly the 30 missed messages, oldest first, complete', async (t) => {
  const s = await withServer(t);
  const a = await tokenUser(s, { sub: 'reader', name: 'Reader' });
  const b1 = await guest(s, 'W1');
  const b2 = await guest(s, 'W2');
  for (const c of [a, b1, b2]) await c.join('since');
  const early = [];
  for (let i = 0; i < 5; i++) early.push(await b1.say('since', `early ${i}`, `e${i}`));
  let last = 0;
  for (let i = 0; i < 5; i++) last = (await a.next('message')).id;
  assert.equal(last, early[4].id);
  a.terminate();
  await a.closed;
  const acks = [];
  for (let i = 0; i < 15; i++) {
    acks.push(await b1.say('since', `missed ${i}a`, `ma${i}`));
    acks.push(await b2.say('since', `missed ${i}b`, `mb${i}`));
  }
  const a2 = await tokenUser(s, { sub: 'reader', name: 'Reader' });
  const j = await a2.join('since', { since: last });
  assert.equal(j.complete, true);
  assert.deepEqual(j.messages.map((m) => m.id), acks.map((x) => x.id));
  assert.deepEqual(j.messages.map((m) => m.text), acks.map((_, i) => `missed ${i >> 1}${i % 2 ? 'b' : 'a'}`));
  for (const m of j.messages) assert.equal(m.type, 'message');
  // since = the newest id: nothing missed.
  const a3 = await guest(s, 'Fresh');
  const j3 = await a3.join('since', { since: acks[29].id });
  assert.deepEqual([j3.messages, j3.complete], [[], true]);
  // since: 0 is everything (35 here, under 1000).
  const j0 = await a3.join('since', { since: 0 });
  assert.equal(j0.messages.length, 35);
  assert.equal(j0.complete, true);
  for (const c of [a2, b1, b2, a3]) c.terminate();
});

test('over 1000 missed: the 1000 oldest with complete false, then history after continues', { timeout: T(180000) }, async (t) => {
  const s = await withServer(t, { args: ['--rate', '100000', '--burst', '100000'] });
  const w = await guest(s, 'Bulk');
  await w.join('bulk');
  const base = await w.say('bulk', 'base', 'base');
  const N = 1150;
  const acks = await sendMany(w, 'bulk', N, { window: 100, prefix: 'bulk', timeoutMs: T(120000) });
  const ids = acks.map((a) => a.id);
  const r = await guest(s, 'Returner');
  const j = await r.join('bulk', { since: base.id }, T(20000));
  assert.equal(j.complete, false);
  assert.equal(j.messages.length, 1000);
  assert.deepEqual(j.messages.map((m) => m.id), ids.slice(0, 1000));
  const rest = await fullHistory(r, 'bulk', { after: j.messages[999].id });
  assert.deepEqual(rest.map((m) => m.id), ids.slice(1000));
  // Exactly 1000 missed: complete.
  const j2 = await r.join('bulk', { since: ids[N - 1001] }, T(20000));
  assert.equal(j2.messages.length, 1000);
  assert.equal(j2.complete, true);
  assert.deepEqual(j2.messages.map((m) => m.id), ids.slice(N - 1000));
  // 1001 missed: not complete.
  const j3 = await r.join('bulk', { since: ids[N - 1002] }, T(20000));
  assert.equal(j3.messages.length, 1000);
  assert.equal(j3.complete, false);
  assert.deepEqual(j3.messages.map((m) => m.id), ids.slice(N - 1001, N - 1));
  w.terminate();
  r.terminate();
});

test('messages sent while the joiner waits for its joined are neither lost nor duplicated', async (t) => {
  const s = await withServer(t, { args: ['--rate', '100000', '--burst', '100000'] });
  const w = await guest(s, 'Writer');
  await w.join('race');
  const acks = [];
  const sending = sendMany(w, 'race', 300, { window: 20, prefix: 'race', onAck: (a) => acks.push(a) });
  // Join while messages flow; each joiner must see every message exactly once, in order.
  const joiners = [];
  for (let k = 0; k < 5; k++) {
    const c = await connect(s.url);
    await c.hello(`J${k}`);
    const seen = []; // ids in arrival order: joined's messages, then live ones
    c.ws.on('message', (d) => {
      const m = JSON.parse(d.toString());
      if (m.type === 'message') seen.push(m.id);
      else if (m.type === 'joined') seen.push(...m.messages.map((x) => x.id));
    });
    await c.join('race', { since: 0 });
    joiners.push({ c, seen });
  }
  const all = (await sending).map((a) => a.id).sort((x, y) => x - y);
  for (const { c } of joiners) await c.barrier();
  for (const [k, { seen, c }] of joiners.entries()) {
    assert.deepEqual(seen, all, `joiner ${k}: history + live is not every message exactly once in order`);
    c.terminate();
  }
  w.terminate();
});
