// cluster.md: `join` with `since` on any node gives the same `messages` and
// `updates` as on any other, with no gap and no duplicate against the live
// messages that follow.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cluster, caughtUp, Sender, sendMany, seenIn, assertIncreasing, sleep, T } from './harness.mjs';

const view = (m) => ({ id: m.id, ts: m.ts, user: m.user.id, text: m.text, rev: m.rev, edited_ts: m.edited_ts, deleted: m.deleted ?? false });

test('join with since gives the same messages and updates on every node', { timeout: T(120000) }, async (t) => {
  const cl = await cluster(t, { nodes: 3 });
  const room = 'same';
  const w = [];
  for (let i = 0; i < 3; i++) {
    const c = await cl.user(i, { sub: `writer${i}`, name: `Writer ${i}` });
    await c.join(room);
    w.push(c);
  }
  const acks = [];
  for (let k = 0; k < 60; k++) acks.push(await w[k % 3].say(room, `m${k}`, `m${k}`));
  const since = acks[29].id;
  // Changes to older messages (ids <= since) and newer ones, each by its author on its node.
  const ch = async (k, req) => {
    const r = await w[k % 3].request({ ...req, room, id: acks[k].id }, req.type === 'edit' ? 'edited' : 'deleted');
    assert.equal(r.type, req.type === 'edit' ? 'edited' : 'deleted', JSON.stringify(r));
    return r;
  };
  await ch(3, { type: 'edit', text: 'm3 edited' });
  await ch(4, { type: 'delete' });
  await ch(3, { type: 'edit', text: 'm3 edited twice' });
  await ch(40, { type: 'edit', text: 'm40 edited' });
  await ch(41, { type: 'delete' });
  await ch(10, { type: 'edit', text: 'm10 edited' });
  await caughtUp(cl.nodes, cl.redis);
  const answers = [];
  for (let i = 0; i < 3; i++) {
    const g = await cl.guest(i, `Joiner ${i}`);
    const j = await g.join(room, { since });
    answers.push({ messages: j.messages.map(view), updates: j.updates.map(view), complete: j.complete });
  }
  const a = answers[0];
  assert.equal(a.complete, true);
  assert.deepEqual(a.messages.map((m) => m.id), acks.slice(30).map((x) => x.id), 'messages: every id above since');
  assert.deepEqual(a.messages.find((m) => m.id === acks[40].id).text, 'm40 edited');
  assert.deepEqual(a.messages.find((m) => m.id === acks[41].id).deleted, true);
  assert.deepEqual(a.updates.map((m) => [m.id, m.text, m.deleted]),
    [[acks[4].id, '', true], [acks[3].id, 'm3 edited twice', false], [acks[10].id, 'm10 edited', false]],
    'updates: the changed older messages, oldest rev first');
  for (let i = 1; i < 3; i++) assert.deepEqual(answers[i], a, `node ${i}'s join since differs from node 0's`);
  // history too.
  const hs = [];
  for (let i = 0; i < 3; i++) {
    const g = await cl.guest(i, `Reader ${i}`);
    const h = await g.request({ type: 'history', room, after: 0, limit: 200 }, 'history');
    hs.push(h.messages.map(view));
  }
  assert.equal(hs[0].length, 60);
  for (let i = 1; i < 3; i++) assert.deepEqual(hs[i], hs[0], `node ${i}'s history differs from node 0's`);
});

// An edit committed in the batch of a join's read used to come twice: in the
// joined answer (the row in its current state) and live as `edited` with
// the same rev. A read now completes after its whole batch (server/db.h).
test('join with since while senders and an editor on other nodes run: no gap, no duplicate, same order', { timeout: T(180000) }, async (t) => {
  const cl = await cluster(t, { nodes: 3 });
  const room = 'race';
  const ed = await cl.user(2, { sub: 'editor', name: 'Editor' });
  await ed.join(room);
  const base = await sendMany(ed, room, 20, { prefix: 'base', window: 5 });
  const since = base[9].id;
  const s0 = await cl.user(0, { sub: 'w0', name: 'W0' });
  const s1 = await cl.user(1, { sub: 'w1', name: 'W1' });
  for (const c of [s0, s1]) await c.join(room);
  // At most 400 each: every join below then misses fewer than 1000 and is complete.
  const senders = [
    new Sender(s0, room, { prefix: 'a', window: 4, gapMs: 2, max: 400 }),
    new Sender(s1, room, { prefix: 'b', window: 4, gapMs: 2, max: 400 }),
  ];
  // The editor keeps editing messages 2 and 12 of the base (one below since, one above).
  const edits = { [base[2].id]: [], [base[12].id]: [] };
  let editing = true;
  const editor = (async () => {
    for (let k = 0; editing; k++) {
      const id = k % 2 ? base[12].id : base[2].id;
      const e = await ed.request({ type: 'edit', room, id, text: `v${k}` }, 'edited');
      assert.equal(e.type, 'edited', JSON.stringify(e));
      edits[id].push(e.rev);
      await sleep(5);
    }
  })();
  for (const s of senders) s.start();
  const joiners = [];
  for (let r = 0; r < 3; r++) {
    for (let i = 0; i < 3; i++) {
      await sleep(T(60));
      const g = await cl.guest(i, `J${r}${i}`);
      const j = await g.join(room, { since });
      assert.equal(j.complete, true, `joiner on node ${i}: ${j.messages.length} messages, ${j.updates.length} updates`);
      joiners.push({ g, node: i, j });
    }
  }
  await sleep(T(300));
  editing = false;
  await editor;
  for (const s of senders) await s.stop();
  for (const s of senders) assert.deepEqual([...s.refused.entries()], [], 'a send was refused');
  const ids = [...base.slice(10), ...senders.flatMap((s) => [...s.acked.values()])].map((a) => a.id).sort((x, y) => x - y);
  assert.ok(ids.length > 40, `too little traffic: ${ids.length}`);
  const lastEdit = Math.max(...Object.values(edits).flat());
  for (const { g, node } of joiners)
    await g.waitUntil(() => seenIn(g, room).some((m) => m.id === ids[ids.length - 1]) &&
      g.frames.some((f) => f.includes(`"rev":${lastEdit}`)), T(30000), `joiner on node ${node} to see the end of the traffic`);
  await sleep(T(300));
  for (const [k, { g, node }] of joiners.entries()) {
    await g.barrier();
    const got = seenIn(g, room).map((m) => m.id);
    const jn = JSON.parse(g.frames.find((f) => f.startsWith('{"type":"joined"')));
    const missing = ids.filter((id) => !got.includes(id));
    const why = `; missing ${JSON.stringify(missing)}, joined: messages ${JSON.stringify(jn.messages.map((m) => [m.id, m.rev]))}, ` +
      `updates ${JSON.stringify(jn.updates.map((m) => [m.id, m.rev]))}, complete ${jn.complete}`;
    assertIncreasing(got, `joiner ${k} on node ${node}: joined messages then live${why}`);
    assert.deepEqual(got, ids, `joiner ${k} on node ${node}: not every message above since exactly once${why}`);
    // Each edited message: the revs this joiner saw (updates/messages in joined, then live edited)
    // are a contiguous tail of the editor's revs, ending with the last: no gap, no duplicate.
    for (const [id, revs] of Object.entries(edits)) {
      const seen = [], from = [];
      for (const f of g.frames) {
        const m = JSON.parse(f);
        if (m.type === 'joined' && m.room === room)
          for (const x of [...m.updates, ...m.messages]) if (x.id === Number(id) && x.rev !== x.id) seen.push(x.rev), from.push(`joined:${x.rev}`);
        if (m.type === 'edited' && m.room === room && m.id === Number(id)) seen.push(m.rev), from.push(`edited:${m.rev}`);
      }
      assert.ok(seen.length > 0, `joiner ${k} on node ${node} saw no edit of ${id}`);
      const at = revs.indexOf(seen[0]);
      assert.ok(at >= 0, `joiner ${k}: rev ${seen[0]} of ${id} is not one of the editor's`);
      assert.deepEqual(seen, revs.slice(at), `joiner ${k} on node ${node}: edits of message ${id} (gap or duplicate); ` +
        `first seen: ${from.slice(0, 4).join(', ')}`);
    }
  }
});
