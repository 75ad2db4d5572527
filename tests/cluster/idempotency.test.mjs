// cluster.md: `send` with the same client_id twice, to the same node or to two
// nodes, is one message (the issue: Redis's SET NX holds the id for a long
// while, the node's SQLite keeps the permanent check).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cluster, caughtUp, sqlite, sleep, T, connect } from './harness.mjs';

const rowsFor = (n, room, user, cid) =>
  sqlite(n.dbPath, `SELECT id, ts, text FROM messages WHERE room = '${room}' AND user_id = '${user}' AND client_id = '${cid}'`);

async function answer(c, ref) {
  return c.next((m) => m.ref === ref && (m.type === 'ack' || m.type === 'error'), T(10000));
}

test('same client_id to two nodes at once, and twice to one: identical acks, one row on every node, one broadcast', { timeout: T(120000) }, async (t) => {
  const cl = await cluster(t, { nodes: 3 });
  const room = 'dup';
  const claims = { sub: 'dupuser', name: 'Dup' };
  const a0 = await cl.user(0, claims), a1 = await cl.user(1, claims), a2 = await cl.user(2, claims);
  const watchers = [];
  for (let i = 0; i < 3; i++) {
    const w = await cl.guest(i, `W${i}`);
    await w.join(room);
    watchers.push(w);
  }
  for (const c of [a0, a1, a2]) await c.join(room);
  const acks = new Map();
  for (let k = 0; k < 15; k++) {
    const cid = `same-${k}`;
    // Node 0 twice, nodes 1 and 2 once, all before any answer; texts differ so the stored one shows who won.
    const sends = [[a0, `${cid}-a`, 'from node 0'], [a1, `${cid}-b`, 'from node 1'], [a0, `${cid}-c`, 'from node 0 again'], [a2, `${cid}-d`, 'from node 2']];
    for (const [c, ref, text] of sends) c.send({ type: 'send', room, text, client_id: cid, ref });
    const replies = await Promise.all(sends.map(([c, ref]) => answer(c, ref)));
    for (const r of replies) assert.equal(r.type, 'ack', `${cid}: ${JSON.stringify(r)}`);
    assert.deepEqual(new Set(replies.map((r) => `${r.id}/${r.ts}`)).size, 1,
      `${cid}: the acks differ: ${JSON.stringify(replies.map((r) => [r.id, r.ts]))}`);
    acks.set(cid, replies[0]);
  }
  await caughtUp(cl.nodes, cl.redis);
  for (const [cid, ack] of acks) {
    let text = null;
    for (const [i, n] of cl.nodes.entries()) {
      const rows = rowsFor(n, room, 'dupuser', cid);
      assert.equal(rows.length, 1, `${cid}: node ${i} holds ${rows.length} rows`);
      assert.deepEqual([rows[0].id, rows[0].ts], [ack.id, ack.ts], `${cid}: node ${i}'s row is not the acked one`);
      if (text === null) text = rows[0].text;
      assert.equal(rows[0].text, text, `${cid}: node ${i} stored another text`);
    }
    assert.ok(['from node 0', 'from node 1', 'from node 0 again', 'from node 2'].includes(text));
  }
  // Nothing else was stored for this user: one row per client_id.
  for (const [i, n] of cl.nodes.entries())
    assert.equal(sqlite(n.dbPath, `SELECT count(*) AS n FROM messages WHERE user_id = 'dupuser'`)[0].n, acks.size, `node ${i}: rows of dupuser`);
  // Every watcher and every connection of the sender got each message once.
  await sleep(T(300));
  for (const [i, c] of [...watchers, a0, a1, a2].entries()) {
    await c.barrier();
    const got = c.drain((m) => m.type === 'message' && m.room === room).map((m) => m.client_id).sort();
    assert.deepEqual(got, [...acks.keys()].sort(), `connection ${i}: each message exactly once`);
  }
});

test('with Redis\'s dedup key gone (expired), a re-send on another node is still one message', { timeout: T(90000) }, async (t) => {
  const cl = await cluster(t, { nodes: 3 });
  const room = 'dupexp';
  const claims = { sub: 'expuser', name: 'Exp' };
  const a0 = await cl.user(0, claims);
  const w = await cl.guest(2, 'W');
  await w.join(room);
  await a0.join(room);
  const first = await a0.say(room, 'original', 'exp-1');
  await caughtUp(cl.nodes, cl.redis);
  const keys = await cl.redis.cmd('KEYS', 'parley:dedup:*');
  assert.ok(Array.isArray(keys) && keys.length >= 1, `no parley:dedup:* key after a send: ${JSON.stringify(keys)}`);
  for (const k of keys) await cl.redis.cmd('DEL', k);
  const a1 = await cl.user(1, claims), a2 = await cl.user(2, claims);
  await a1.join(room);
  await a2.join(room);
  const r1 = await a1.say(room, 'resent on node 1', 'exp-1');
  const r2 = await a2.say(room, 'resent on node 2', 'exp-1');
  assert.deepEqual([r1.id, r1.ts], [first.id, first.ts], 'node 1 acked a new message');
  assert.deepEqual([r2.id, r2.ts], [first.id, first.ts], 'node 2 acked a new message');
  // Traffic after it, then every node is caught up: still one row, the original.
  await a0.say(room, 'later', 'exp-2');
  await caughtUp(cl.nodes, cl.redis);
  for (const [i, n] of cl.nodes.entries())
    assert.deepEqual(rowsFor(n, room, 'expuser', 'exp-1'), [{ id: first.id, ts: first.ts, text: 'original' }], `node ${i}`);
  await sleep(T(200));
  await w.barrier();
  assert.deepEqual(w.drain((m) => m.type === 'message').map((m) => m.client_id), ['exp-1', 'exp-2'],
    'the watcher got the re-sent message again');
});

// A guest's resume token is signed with the guest key, which every node
// takes from Redis (the first node's): the guest keeps its id on any node,
// so its resend after a reconnect elsewhere is one message, and it may
// still edit what it sent (server/cluster_shared.c).
test('a guest resumes on another node: same id, a resend of its client_id is one message, its edit is allowed', { timeout: T(60000) }, async (t) => {
  const cl = await cluster(t, { nodes: 3 });
  const room = 'gres';
  const g = await cl.guest(0, 'Wanderer');
  await g.join(room);
  const first = await g.request({ type: 'send', room, text: 'before the move', client_id: 'gr-1' }, 'ack');
  assert.equal(first.type, 'ack', JSON.stringify(first));
  const { resume } = g.welcome;
  assert.ok(resume, 'the guest got a resume token');
  g.terminate();
  for (const i of [1, 2]) {
    const c = await connect(cl.nodes[i].url);
    cl.clients.push(c);
    await c.hello({ name: 'Wanderer', resume });
    assert.equal(c.user.id, g.user.id, `the guest's id on node ${i}`);
    await c.join(room);
    const again = await c.request({ type: 'send', room, text: 'before the move', client_id: 'gr-1' }, 'ack');
    assert.deepEqual([again.type, again.id], ['ack', first.id], `the resend on node ${i}: ${JSON.stringify(again)}`);
    const e = await c.request({ type: 'edit', room, id: first.id, text: `edited on node ${i}` }, 'edited');
    assert.equal(e.type, 'edited', `the guest's edit on node ${i}: ${JSON.stringify(e)}`);
    c.terminate();
  }
  await caughtUp(cl.nodes, cl.redis);
  for (const n of cl.nodes)
    assert.equal(sqlite(n.dbPath, `SELECT count(*) AS n FROM messages WHERE room='${room}'`)[0].n, 1, `one message on :${n.port}`);
  const keys = cl.nodes.map((n) => sqlite(n.dbPath, "SELECT value FROM settings WHERE key='guest_key'")[0].value);
  assert.equal(new Set(keys).size, 1, 'every node keeps the same guest key');
});

// A welcome records its user (users: name, role, last seen) as an event,
// but one that changes nothing stored within the hour needs none: a client
// that reconnects in a loop does not spend the log (nor every node's apply).
test('welcomes that change nothing stored write no event; a new name does', { timeout: T(60000) }, async (t) => {
  const cl = await cluster(t, { nodes: 2 });
  const u = await cl.user(0, { sub: 'hl', name: 'Hello Loop' });
  await caughtUp(cl.nodes, cl.redis);
  const before = await cl.redis.seq();
  for (let i = 0; i < 20; i++) (await cl.user(i % 2, { sub: 'hl', name: 'Hello Loop' })).terminate();
  await sleep(T(300));
  assert.equal(await cl.redis.seq(), before, '20 welcomes of a known user wrote events');
  (await cl.user(1, { sub: 'hl', name: 'Renamed' })).terminate();
  await caughtUp(cl.nodes, cl.redis);
  assert.equal(await cl.redis.seq(), before + 1, 'a new name is one event');
  for (const n of cl.nodes)
    assert.equal(sqlite(n.dbPath, "SELECT name FROM users WHERE id='hl'")[0].name, 'Renamed', `users on :${n.port}`);
  u.terminate();
});
