// Fan-out: every member gets every message of its rooms exactly once, in id
// order, and nothing from other rooms (spec: `message`).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, guest, T } from './harness.mjs';

test('60 clients in 6 rooms (2 rooms each), 20 messages each: exact, ordered, isolated delivery', { timeout: T(120000) }, async (t) => {
  const s = await startServer();
  const clients = [];
  t.after(async () => {
    for (const c of clients) c.terminate();
    const r = await s.stop();
    assert.equal(r.code, 0, `stderr:\n${r.stderr}`);
    s.cleanup();
  });
  const NC = 60, NR = 6, PER = 20;
  const rooms = Array.from({ length: NR }, (_, i) => `fan${i}`);
  const roomsOf = (i) => [rooms[i % NR], rooms[(i + 1 + Math.floor(i / NR) % (NR - 1)) % NR]];
  for (let i = 0; i < NC; i++) {
    const c = await guest(s, `F${i}`);
    c.idx = i;
    c.rooms = roomsOf(i);
    assert.notEqual(c.rooms[0], c.rooms[1]);
    c.got = new Map(c.rooms.map((r) => [r, []]));
    c.foreign = [];
    clients.push(c);
  }
  // Count the messages as they arrive (not through the queue: 24000 of them).
  for (const c of clients) {
    c.ws.on('message', (data) => {
      const m = JSON.parse(data.toString('utf8'));
      if (m.type !== 'message') return;
      const list = c.got.get(m.room);
      if (list) list.push(m.id);
      else c.foreign.push(m);
    });
  }
  for (const c of clients) for (const r of c.rooms) await c.join(r);
  const members = new Map(rooms.map((r) => [r, clients.filter((c) => c.rooms.includes(r)).length]));

  // Everyone sends PER messages (alternating its two rooms), all at once: PER == burst.
  const acks = new Map(rooms.map((r) => [r, []]));
  await Promise.all(
    clients.map(async (c) => {
      for (let k = 0; k < PER; k++) {
        const room = c.rooms[k % 2];
        c.send({ type: 'send', room, text: `from ${c.idx} #${k}`, client_id: `f${c.idx}-${k}`, ref: `f${c.idx}-${k}` });
      }
      for (let k = 0; k < PER; k++) {
        const a = await c.next((m) => m.ref?.startsWith(`f${c.idx}-`) && (m.type === 'ack' || m.type === 'error'), T(60000));
        assert.equal(a.type, 'ack', JSON.stringify(a));
        acks.get(a.room).push(a.id);
      }
    }),
  );
  const total = [...acks.values()].reduce((n, l) => n + l.length, 0);
  assert.equal(total, NC * PER);
  const expected = new Map([...acks].map(([r, l]) => [r, [...l].sort((x, y) => x - y)]));
  const allIds = [...acks.values()].flat();
  assert.equal(new Set(allIds).size, allIds.length, 'duplicate ids across acks');

  // Wait until every client has at least as many messages as its rooms had acks.
  const want = (c) => c.rooms.reduce((n, r) => n + expected.get(r).length, 0);
  const have = (c) => [...c.got.values()].reduce((n, l) => n + l.length, 0);
  for (const c of clients) await c.waitUntil(() => have(c) >= want(c), T(60000), `client ${c.idx}: ${want(c)} messages`).catch(() => {});
  for (const c of clients) {
    await c.barrier(T(20000));
    c.drain('message');
  }
  for (const c of clients) {
    assert.deepEqual(c.foreign, [], `client ${c.idx} got messages of rooms it is not in`);
    for (const r of c.rooms) {
      const got = c.got.get(r);
      const exp = expected.get(r);
      assert.equal(got.length, exp.length, `client ${c.idx} room ${r}: ${got.length} of ${exp.length}`);
      assert.deepEqual(got, exp, `client ${c.idx} room ${r}: not exactly the room's messages in id order`);
    }
  }
  assert.ok([...members.values()].every((n) => n > 0));
});
