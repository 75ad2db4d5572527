// cluster.md, "A new node joins empty and fills its SQLite from Redis"; once
// /healthz answers 200 its history holds at least everything acked before it
// started.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cluster, caughtUp, healthz, sameRows, REPLICATED, sendMany, fullHistory, sqlite, sleep, T } from './harness.mjs';

test('a late empty node fills up to the same history (messages, edits, deletes, markers, DMs)', { timeout: T(180000) }, async (t) => {
  const cl = await cluster(t, { nodes: 2 });
  const a = await cl.user(0, { sub: 'la', name: 'LA' });
  const b = await cl.user(1, { sub: 'lb', name: 'LB' });
  for (const c of [a, b]) {
    await c.join('one');
    await c.join('two');
  }
  const acks = {
    one: [...await sendMany(a, 'one', 300, { prefix: 'a1', window: 10 }), ...await sendMany(b, 'one', 200, { prefix: 'b1', window: 10 })],
    two: await sendMany(b, 'two', 150, { prefix: 'b2', window: 10 }),
  };
  const e = await a.request({ type: 'edit', room: 'one', id: acks.one[5].id, text: 'edited five' }, 'edited');
  assert.equal(e.type, 'edited', JSON.stringify(e));
  const d = await b.request({ type: 'delete', room: 'two', id: acks.two[7].id }, 'deleted');
  assert.equal(d.type, 'deleted', JSON.stringify(d));
  await a.request({ type: 'read', room: 'one', id: acks.one[100].id }, 'read');
  const dj = await a.request({ type: 'dm', user: 'lb' }, 'joined');
  assert.equal(dj.type, 'joined', JSON.stringify(dj));
  const dm = await a.say(dj.room, 'a dm', 'dm1');
  const seqAtStart = await cl.redis.seq();
  assert.ok(seqAtStart >= dm.id);
  // The late node: startServer returns at its first /healthz 200.
  const late = await cl.add();
  const h = await healthz(late);
  assert.equal(h.status, 200);
  assert.ok(h.json.log_position >= seqAtStart, `first 200 at log_position ${h.json.log_position} < ${seqAtStart}: ${h.body}`);
  const c = await cl.user(2, { sub: 'lb', name: 'LB' });
  for (const room of ['one', 'two']) {
    const hist = await fullHistory(c, room);
    assert.deepEqual(hist.map((m) => m.id), acks[room].map((x) => x.id), `late node: history of ${room}`);
  }
  const one = await fullHistory(c, 'one');
  assert.equal(one.find((m) => m.id === acks.one[5].id).text, 'edited five');
  const two = await fullHistory(c, 'two');
  assert.equal(two.find((m) => m.id === acks.two[7].id).deleted, true);
  const rooms = await c.request({ type: 'rooms' }, 'rooms');
  assert.ok(rooms.rooms.some((r) => r.name === dj.room && r.peer?.id === 'la'), `the DM is not in rooms on the late node: ${JSON.stringify(rooms)}`);
  // Live traffic reaches it, and its SQLite equals the others' once traffic stops.
  await c.join('one');
  const live = await a.say('one', 'to the late node', 'live1');
  const m = await c.next((x) => x.type === 'message' && x.client_id === 'live1', T(5000));
  assert.equal(m.id, live.id);
  await caughtUp(cl.nodes, cl.redis);
  for (const k of Object.keys(REPLICATED)) sameRows(cl.nodes, k, `${k} on the late node`);
  assert.equal(sqlite(late.dbPath, 'SELECT count(*) AS n FROM messages')[0].n, 300 + 200 + 150 + 2);
});
