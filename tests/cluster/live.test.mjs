// cluster.md, "What a user sees": one id sequence across the cluster; every
// member of a room sees its messages in id order, wherever each one is
// connected; a message sent on node A reaches members on B and C with the
// same id, ts, user and text.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cluster, sendMany, seenIn, assertIncreasing, sleep, T } from './harness.mjs';

test('a message sent on one node reaches the members on every node: same id, ts, user, text, once', { timeout: T(90000) }, async (t) => {
  const cl = await cluster(t, { nodes: 3 });
  const room = 'live';
  const members = [];
  for (let i = 0; i < 3; i++) {
    const c = await cl.user(i, { sub: `member${i}`, name: `Member ${i}` });
    await c.join(room);
    members.push(c);
  }
  for (let from = 0; from < 3; from++) {
    const cid = `one-${from}`;
    const text = `hello from node ${from} ✓`;
    const ack = await members[from].say(room, text, cid);
    assert.ok(Number.isInteger(ack.id) && ack.id > 0, JSON.stringify(ack));
    for (const [i, c] of members.entries()) {
      const m = await c.next((x) => x.type === 'message' && x.room === room && x.client_id === cid, T(5000))
        .catch((e) => assert.fail(`member on node ${i} did not get the message sent on node ${from}: ${e.message}`));
      assert.deepEqual(
        { id: m.id, ts: m.ts, text: m.text, user: { id: m.user.id, name: m.user.name }, rev: m.rev },
        { id: ack.id, ts: ack.ts, text, user: { id: `member${from}`, name: `Member ${from}` }, rev: ack.id },
        `node ${i}'s copy of the message sent on node ${from}`,
      );
    }
  }
  await sleep(T(200));
  for (const [i, c] of members.entries()) {
    await c.barrier();
    assert.deepEqual(c.drain('message').map((m) => m.client_id), [], `node ${i}: a message came twice`);
  }
});

test('senders on every node at once: every member sees every message once, in id order, the same order everywhere', { timeout: T(180000) }, async (t) => {
  const cl = await cluster(t, { nodes: 3 });
  const room = 'many';
  const PER = 120; // per sender
  const senders = [], watchers = [];
  for (let i = 0; i < 3; i++) {
    for (let k = 0; k < 2; k++) {
      const s = await cl.user(i, { sub: `sender${i}${k}`, name: `S${i}${k}` });
      await s.join(room);
      senders.push(s);
    }
    const w = await cl.guest(i, `Watcher ${i}`);
    await w.join(room);
    watchers.push(w);
  }
  const acks = (await Promise.all(senders.map((s, j) =>
    sendMany(s, room, PER, { window: 10, prefix: `s${j}`, text: (n) => `sender ${j} message ${n}`, timeoutMs: T(120000) }))));
  const all = acks.flat();
  assert.equal(all.length, senders.length * PER);
  const ids = all.map((a) => a.id).sort((x, y) => x - y);
  assert.equal(new Set(ids).size, ids.length, 'two acks carry the same id: ids are not unique across nodes');
  // Each sender's own acks come back in increasing id order (its sends are committed in order).
  for (const [j, a] of acks.entries()) assertIncreasing(a.map((x) => x.id), `sender ${j}'s acks`);
  const byId = new Map(all.map((a, n) => [a.id, a]));
  const everyone = [...senders, ...watchers];
  for (const [k, c] of everyone.entries())
    await c.waitUntil(() => seenIn(c, room, { joined: false }).length >= ids.length, T(60000),
      `member ${k} to receive ${ids.length} messages (has ${seenIn(c, room, { joined: false }).length})`);
  await sleep(T(300));
  for (const c of everyone) await c.barrier();
  let reference = null;
  for (const [k, c] of everyone.entries()) {
    const seen = seenIn(c, room, { joined: false });
    const got = seen.map((m) => m.id);
    assertIncreasing(got, `member ${k} (node ${k < 6 ? Math.floor(k / 2) : k - 6})`);
    assert.deepEqual(got, ids, `member ${k}: not every acked message exactly once`);
    for (const m of seen) {
      const a = byId.get(m.id);
      assert.deepEqual([m.ts, m.client_id], [a.ts, a.client_id], `member ${k}: message ${m.id} differs from its ack`);
    }
    const sig = seen.map((m) => `${m.id}:${m.ts}:${m.user.id}:${m.text}`);
    if (reference) assert.deepEqual(sig, reference, `member ${k} saw another sequence than member 0`);
    else reference = sig;
  }
});
