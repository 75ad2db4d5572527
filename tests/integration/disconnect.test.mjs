// Disconnects while a database request is in flight: the server must stay
// alive and (under PARLEY_SANITIZE) clean, and release every session.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, connect, guest, health, waitFor, fullHistory, sleep, T } from './harness.mjs';

test('terminate right after send/join/history, many times: server stays alive, clean, sessions released', { timeout: T(180000) }, async (t) => {
  const s = await startServer({ args: ['--rate', '100000', '--burst', '100000'] });
  t.after(async () => {
    const r = await s.stop();
    assert.equal(r.code, 0, `exit ${r.code}/${r.signal}; stderr:\n${r.stderr}`);
    s.cleanup();
  });
  // Some history so joins and history reads have rows to build.
  const seed = await guest(s, 'Seed');
  await seed.join('inflight');
  for (let i = 0; i < 60; i++) seed.send({ type: 'send', room: 'inflight', text: `seed ${i}`, client_id: `seed${i}` });
  for (let i = 0; i < 60; i++) await seed.next('ack');

  const watcher = await guest(s, 'Watcher');
  await watcher.join('inflight');

  const ROUNDS = 150;
  const sentIds = [];
  for (let round = 0; round < ROUNDS; round += 10) {
    await Promise.all(
      Array.from({ length: 10 }, async (_, k) => {
        const i = round + k;
        const c = await connect(s.url);
        c.send({ type: 'hello', name: `Gone${i}` });
        switch (i % 5) {
          case 0: // join then vanish before joined
            c.send({ type: 'join', room: 'inflight' });
            break;
          case 1: // join, send, vanish before the ack
            c.send({ type: 'join', room: 'inflight' });
            c.send({ type: 'send', room: 'inflight', text: `vanishing ${i}`, client_id: `v${i}` });
            sentIds.push(`v${i}`);
            break;
          case 2: // join with since + history
            c.send({ type: 'join', room: 'inflight', since: 0 });
            c.send({ type: 'history', room: 'inflight', after: 0, limit: 200 });
            break;
          case 3: { // wait for joined, then a burst of sends, vanish mid-way
            await c.next('welcome');
            await c.join('inflight');
            for (let m = 0; m < 10; m++) c.send({ type: 'send', room: 'inflight', text: `burst ${i}/${m}`, client_id: `b${i}-${m}` });
            await sleep(i % 3);
            break;
          }
          case 4: // a join of many rooms
            for (let r = 0; r < 20; r++) c.send({ type: 'join', room: `inflight-${r}` });
            c.send({ type: 'rooms' });
            break;
        }
        c.terminate();
        await c.closed;
      }),
    );
  }
  // Alive: a new client works end to end, and the watcher is still connected.
  const probe = await guest(s, 'Probe');
  await probe.join('inflight');
  const ack = await probe.say('inflight', 'still here', 'probe-1');
  await watcher.next((m) => m.type === 'message' && m.id === ack.id, T(10000));
  // Every session that vanished is released; the database queue drains.
  await waitFor(async () => {
    const h = await health(s);
    return h.connections === 3 && h.db_queue === 0;
  }, { timeoutMs: T(15000), what: 'connections back to 3 and db_queue 0' });
  // History is consistent: strictly increasing ids, no duplicates.
  const h = await fullHistory(probe, 'inflight');
  const ids = h.map((m) => m.id);
  assert.deepEqual(ids, [...new Set(ids)].sort((x, y) => x - y));
  // Every message the watcher saw live is in the history (a message that was
  // broadcast was committed).
  const live = watcher.drain('message').map((m) => m.id);
  const inHist = new Set(ids);
  assert.deepEqual(live.filter((id) => !inHist.has(id)), []);
  for (const c of [seed, watcher, probe]) c.terminate();
});
