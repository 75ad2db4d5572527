// cluster.md, "A node dies (even SIGKILL)": its clients reconnect to another
// node and catch up with `since`; nothing acknowledged is lost. When it comes
// back it catches up from Redis before it serves: until then /healthz answers
// 503 and WebSocket upgrades get 503; once /healthz answers 200, its history
// holds at least everything acked before it started. "A slow node never
// slows the others."
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  cluster, caughtUp, healthz, waitHealth, Sender, ANSWERS, sameRows, seenIn, assertIncreasing,
  fullHistory, upgradeStatus, sendMany, connect, mintToken, sqlite, sleep, T,
} from './harness.mjs';

/** Every /healthz answer of a node that has to catch up: 503 catching_up (with numbers), or
 *  200 once its position reached `seq`. Polls until 200; resolves the answers seen. */
async function watchCatchUp(node, seq, what) {
  const seen = [];
  const deadline = Date.now() + T(30000);
  for (;;) {
    const h = await healthz(node, T(2000));
    seen.push(h);
    if (h.status === 200) {
      assert.ok(h.json && h.json.log_position >= seq,
        `${what}: /healthz 200 at log_position ${h.json?.log_position}, before the ${seq} entries that were in the log at its start: ${h.body}`);
      return seen;
    }
    assert.equal(h.status, 503, `${what}: /healthz ${h.status} ${h.body}`);
    assert.equal(h.json?.status, 'catching_up', `${what}: a 503 that is not catching_up: ${h.body}`);
    assert.ok(Number.isInteger(h.json.log_position), `${what}: no log_position: ${h.body}`);
    if (seen.length <= 3) {
      // An upgrade between two 503 answers must be refused with 503.
      const st = await upgradeStatus(node.url);
      const h2 = await healthz(node, T(2000));
      if (h2.status === 503) assert.equal(st, 503, `${what}: a WebSocket upgrade while /healthz answers 503 catching_up got ${st}`);
    }
    if (Date.now() > deadline) assert.fail(`${what}: still catching up after ${T(30000)} ms: ${h.body}`);
    await sleep(10);
  }
}

test('SIGKILL of a node under load: its clients move, nothing acked is lost, it comes back caught up', { timeout: T(240000) }, async (t) => {
  const cl = await cluster(t, { nodes: 3 });
  const room = 'load';
  const w0 = await cl.user(0, { sub: 'w0', name: 'W0' });
  const w1 = await cl.user(1, { sub: 'w1', name: 'W1' });
  const w2 = await cl.user(2, { sub: 'w2', name: 'W2' }); // on the node that dies
  const readers = [await cl.guest(2, 'R2a'), await cl.guest(2, 'R2b')];
  const watch0 = await cl.guest(0, 'Watch0');
  for (const c of [w0, w1, w2, ...readers, watch0]) await c.join(room);
  const senders = [
    new Sender(w0, room, { prefix: 'w0', window: 4, gapMs: 4 }),
    new Sender(w1, room, { prefix: 'w1', window: 4, gapMs: 4 }),
    new Sender(w2, room, { prefix: 'w2', window: 4, gapMs: 4 }),
  ];
  for (const s of senders) s.start();
  await sleep(T(1500));
  const killedNode = await cl.kill(2);
  await Promise.all([w2.closed, ...readers.map((r) => r.closed)]);
  await senders[2].stop();
  assert.ok(senders[2].acked.size > 0, 'the sender on the killed node got no ack before the kill');
  // The readers reconnect to nodes 0 and 1 and join with since = the last id they saw.
  const moved = [];
  for (const [k, r] of readers.entries()) {
    const seen = seenIn(r, room).map((m) => m.id);
    const last = seen.length ? seen[seen.length - 1] : 0;
    const c = await cl.guest(k, `R2${k}-moved`);
    await c.join(room, { since: last });
    moved.push({ before: r, after: c, last });
  }
  // w2 reconnects to node 0 and re-sends everything it had no answer for, with the same client_id.
  const w2b = await cl.user(0, { sub: 'w2', name: 'W2' });
  await w2b.join(room);
  const resent = new Map();
  for (const cid of senders[2].pending.keys()) {
    const a = await w2b.say(room, senders[2].texts.get(cid), cid);
    resent.set(cid, a);
  }
  // A backlog for the node to catch up with when it returns.
  const backlog = await sendMany(w0, room, 1500, { prefix: 'backlog', window: 50, timeoutMs: T(60000) });
  // The node comes back on its database while the others keep sending.
  const seqAtRestart = await cl.redis.seq();
  const ackedBeforeRestart = [...senders[0].acked.values(), ...senders[1].acked.values(), ...senders[2].acked.values(), ...resent.values(), ...backlog]
    .map((a) => a.id);
  const back = await cl.restart(2, killedNode, { ready: ANSWERS });
  const answers = await watchCatchUp(back, seqAtRestart, 'the restarted node');
  t.diagnostic(`restarted node: ${answers.filter((h) => h.status === 503).length} answers 503 before 200`);
  // Its history holds every id acked before it restarted, right at its first 200.
  const probe = await cl.guest(2, 'Probe');
  const hist = new Set((await fullHistory(probe, room)).map((m) => m.id));
  const missing = ackedBeforeRestart.filter((id) => !hist.has(id));
  assert.deepEqual(missing, [], `the restarted node's history lacks ${missing.length} acked messages`);
  await sleep(T(500));
  for (const s of senders.slice(0, 2)) await s.stop();
  for (const s of senders.slice(0, 2)) assert.deepEqual([...s.refused.entries()], [], `${s.prefix}: refused sends`);
  for (const s of senders) assert.deepEqual(s.extra, [], `${s.prefix}: a send answered twice`);
  assert.deepEqual([...senders[2].refused.entries()], [], 'w2: refused sends before the kill');

  const acked = new Map(); // `${user}/${cid}` -> id
  for (const s of senders) for (const [cid, a] of s.acked) acked.set(`${s.prefix}/${cid}`, a.id);
  for (const a of backlog) acked.set(`w0/${a.client_id}`, a.id);
  for (const [cid, a] of resent) {
    const prev = acked.get(`w2/${cid}`);
    if (prev !== undefined) assert.equal(a.id, prev, `${cid}: re-sent on node 0, acked with another id`);
    acked.set(`w2/${cid}`, a.id);
  }
  const ids = [...new Set(acked.values())].sort((x, y) => x - y);
  assert.equal(ids.length, acked.size, 'two client_ids acked with one id');
  await caughtUp(cl.nodes, cl.redis, { timeoutMs: T(60000) });
  // Every acked id is in every node's SQLite and in its history, once, with its client_id.
  for (const [i, n] of cl.nodes.entries()) {
    const rows = sqlite(n.dbPath, `SELECT id, user_id, client_id FROM messages WHERE room = '${room}' ORDER BY id`);
    const have = new Map(rows.map((r) => [`${r.user_id}/${r.client_id}`, r.id]));
    for (const [key, id] of acked) assert.equal(have.get(key), id, `node ${i}: acked ${key} (id ${id}) is not stored as such`);
    const c = await cl.guest(i, `Check${i}`);
    const h = (await fullHistory(c, room)).map((m) => m.id);
    const hs = new Set(h);
    assert.equal(hs.size, h.length, `node ${i}: duplicate ids in history`);
    for (const id of ids) assert.ok(hs.has(id), `node ${i}: acked id ${id} not in history`);
  }
  sameRows(cl.nodes, 'messages_full', 'messages after the kill and the restart');
  // The moved readers: what they saw before the kill, then joined-since and live on the new node,
  // is every message after their first join, once each and in order.
  const finalIds = sqlite(cl.nodes[0].dbPath, `SELECT id FROM messages WHERE room = '${room}' ORDER BY id`).map((r) => r.id);
  for (const [k, { before, after }] of moved.entries()) {
    await after.waitUntil(() => seenIn(after, room).some((m) => m.id === finalIds[finalIds.length - 1]), T(20000), `moved reader ${k} to see the last message`);
    const got = [...seenIn(before, room, { joined: false }), ...seenIn(after, room)].map((m) => m.id);
    assertIncreasing(got, `moved reader ${k}`);
    const start = finalIds.indexOf(got[0]);
    assert.deepEqual(got, finalIds.slice(start), `moved reader ${k}: a gap or a duplicate across the move`);
  }
  // The restarted node serves live traffic again.
  const live = await cl.guest(2, 'Live2');
  await live.join(room);
  const a = await w0.say(room, 'after the return', 'final');
  const m = await live.next((x) => x.type === 'message' && x.client_id === 'final', T(5000));
  assert.equal(m.id, a.id);
});

test('a node started while Redis does not answer stays 503 catching_up, refuses upgrades, then serves all', { timeout: T(120000) }, async (t) => {
  const cl = await cluster(t, { nodes: 2 });
  const room = 'cold';
  const w = await cl.user(0, { sub: 'cw', name: 'CW' });
  await w.join(room);
  const early = await sendMany(w, room, 100, { prefix: 'e', window: 10 });
  await caughtUp(cl.nodes, cl.redis);
  const old = await cl.stopNode(1);
  const late = await sendMany(w, room, 200, { prefix: 'l', window: 10 });
  const seq = await cl.redis.seq();
  cl.redis.pause();
  const n1 = await cl.restart(1, old, { ready: ANSWERS });
  const h = await healthz(n1);
  assert.equal(h.status, 503, `a node that cannot read the log must not serve: ${h.body}`);
  assert.equal(h.json?.status, 'catching_up', h.body);
  assert.equal(await upgradeStatus(n1.url), 503, 'WebSocket upgrade while catching up');
  await sleep(T(2000));
  const h2 = await healthz(n1);
  assert.deepEqual([h2.status, h2.json?.status], [503, 'catching_up'], `still catching up while Redis is paused: ${h2.body}`);
  cl.redis.resume();
  await waitHealth(n1, (x) => x.status === 200, { what: '/healthz 200 after Redis came back' });
  const hh = await healthz(n1);
  assert.ok(hh.json.log_position >= seq, hh.body);
  const c = await cl.guest(1, 'Reader');
  const ids = (await fullHistory(c, room)).map((m) => m.id);
  assert.deepEqual(ids, [...early, ...late].map((a) => a.id));
});

test('a stopped node (SIGSTOP) does not slow the others; it catches up when it continues', { timeout: T(120000) }, async (t) => {
  const cl = await cluster(t, { nodes: 3 });
  const room = 'slow';
  const a = await cl.user(0, { sub: 'sa', name: 'SA' });
  const b = await cl.guest(1, 'SB');
  const cslow = await cl.guest(2, 'SC');
  for (const c of [a, b, cslow]) await c.join(room);
  // Warm up, then stop node 2's process.
  await sendMany(a, room, 50, { prefix: 'warm', window: 5 });
  cl.nodes[2].proc.kill('SIGSTOP');
  const lat = [];
  try {
    await sleep(T(300));
    for (let k = 0; k < 100; k++) {
      const t0 = Date.now();
      await a.say(room, `while stopped ${k}`, `ws-${k}`, T(5000));
      lat.push(Date.now() - t0);
    }
    await b.waitUntil(() => seenIn(b, room, { joined: false }).length >= 150, T(10000), 'node 1 member to get every message');
  } finally {
    cl.nodes[2].proc.kill('SIGCONT');
  }
  lat.sort((x, y) => x - y);
  assert.ok(lat[lat.length - 1] < T(1000), `an ack took ${lat[lat.length - 1]} ms with node 2 stopped (p50 ${lat[50]} ms)`);
  await caughtUp(cl.nodes, cl.redis);
  await cslow.waitUntil(() => seenIn(cslow, room, { joined: false }).length >= 150, T(20000), 'the continued node\'s member to get every message');
  assert.deepEqual(seenIn(cslow, room, { joined: false }).map((m) => m.id), seenIn(b, room, { joined: false }).map((m) => m.id));
  sameRows(cl.nodes, 'messages_full');
});
