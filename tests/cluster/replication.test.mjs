// cluster.md: every node's SQLite file holds the whole history (every room,
// every change); during traffic two nodes may differ, once traffic stops
// they are equal. Edits, deletes, read markers, DMs and moderation's storage
// go through the log; members on other nodes get `edited`/`deleted` live.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cluster, caughtUp, sameRows, sqlite, sleep, T } from './harness.mjs';

const ask = (c, obj, reply) => c.request(obj, reply);

async function ok(c, obj, reply) {
  const r = await ask(c, obj, reply);
  assert.equal(r.type, reply, `${JSON.stringify(obj)} answered ${JSON.stringify(r)}`);
  return r;
}

test('edits, deletes, read markers, a DM and moderation replicate: every node\'s SQLite agrees', { timeout: T(120000) }, async (t) => {
  const cl = await cluster(t, { nodes: 3 });
  const room = 'rep';
  const alice = await cl.user(0, { sub: 'alice', name: 'Alice' });
  const bob = await cl.user(1, { sub: 'bob', name: 'Bob' });
  const carol = await cl.user(2, { sub: 'carol', name: 'Carol' });
  const mod = await cl.user(2, { sub: 'mod', name: 'Mod', role: 'mod' });
  const watchers = [];
  for (let i = 0; i < 3; i++) {
    const w = await cl.guest(i, `Watch ${i}`);
    await w.join(room);
    watchers.push(w);
  }
  for (const c of [alice, bob, carol, mod]) await c.join(room);
  const a1 = await alice.say(room, 'alice one', 'a1');
  const a2 = await alice.say(room, 'alice two', 'a2');
  const b1 = await bob.say(room, 'bob one', 'b1');
  const c1 = await carol.say(room, 'carol one', 'c1');
  const e = await ok(alice, { type: 'edit', room, id: a1.id, text: 'alice one, edited' }, 'edited');
  const d = await ok(bob, { type: 'delete', room, id: b1.id }, 'deleted');
  const md = await ok(mod, { type: 'delete', room, id: a2.id }, 'deleted');
  assert.ok(a1.id < a2.id && a2.id < b1.id && b1.id < c1.id && c1.id < e.rev && e.rev < d.rev && d.rev < md.rev,
    `ids and revs from one increasing sequence: ${[a1.id, a2.id, b1.id, c1.id, e.rev, d.rev, md.rev]}`);
  // Members on every node got each change live, with the same rev.
  for (const [i, w] of watchers.entries()) {
    const we = await w.next((m) => m.type === 'edited' && m.id === a1.id).catch((x) => assert.fail(`watcher on node ${i}: no edited: ${x.message}`));
    assert.deepEqual([we.rev, we.text, we.edited_ts], [e.rev, e.text, e.edited_ts], `watcher on node ${i}: edited`);
    for (const [x, id] of [[d, b1.id], [md, a2.id]]) {
      const wd = await w.next((m) => m.type === 'deleted' && m.id === id).catch((y) => assert.fail(`watcher on node ${i}: no deleted ${id}: ${y.message}`));
      assert.deepEqual([wd.rev, wd.by.id], [x.rev, x.by.id], `watcher on node ${i}: deleted ${id}`);
    }
  }
  // Read markers: forward only, wherever set; the answer carries the stored marker.
  assert.equal((await ok(alice, { type: 'read', room, id: b1.id }, 'read')).id, b1.id);
  const alice2 = await cl.user(2, { sub: 'alice', name: 'Alice' });
  assert.equal((await ok(alice2, { type: 'read', room, id: c1.id }, 'read')).id, c1.id);
  const alice1 = await cl.user(1, { sub: 'alice', name: 'Alice' });
  assert.equal((await ok(alice1, { type: 'read', room, id: a1.id }, 'read')).id, c1.id,
    'a lower marker set on node 1 after a higher one on node 2 must answer the stored (higher) one');
  assert.equal((await ok(bob, { type: 'read', room, id: a2.id }, 'read')).id, a2.id);
  // A DM between two users welcomed on node 0, one message, an edit.
  const dave = await cl.user(0, { sub: 'dave', name: 'Dave' });
  const erin = await cl.user(0, { sub: 'erin', name: 'Erin' });
  const dj = await ok(dave, { type: 'dm', user: 'erin' }, 'joined');
  assert.match(dj.room, /^dm-/);
  const dm1 = await dave.say(dj.room, 'hi erin', 'dm1');
  await ok(dave, { type: 'edit', room: dj.room, id: dm1.id, text: 'hi Erin' }, 'edited');
  const got = await erin.next((m) => m.type === 'message' && m.room === dj.room);
  assert.equal(got.id, dm1.id);
  assert.equal((await ok(erin, { type: 'read', room: dj.room, id: dm1.id }, 'read')).id >= dm1.id, true);
  // Moderation's storage: a mute and a ban set on node 2, lifted or not.
  await ok(mod, { type: 'mute', room, user: 'carol', minutes: 30, reason: 'too loud' }, 'ok');
  await ok(mod, { type: 'ban', room, user: 'frank', minutes: 60, reason: 'spam' }, 'ok');
  await ok(mod, { type: 'mute', room, user: 'bob', reason: 'calm down' }, 'ok');
  await ok(mod, { type: 'unmute', room, user: 'bob' }, 'ok');
  const admin = await cl.user(1, { sub: 'root', name: 'Root', role: 'admin' });
  await ok(admin, { type: 'ban', user: 'mallory', reason: 'server-wide' }, 'ok');

  const seq = await caughtUp(cl.nodes, cl.redis);
  assert.ok(seq >= md.rev, `parley:seq ${seq} below the last rev ${md.rev}`);
  const msgs = sameRows(cl.nodes, 'messages', 'messages');
  sameRows(cl.nodes, 'messages_full', 'messages (every column)');
  const byId = new Map(msgs.map((m) => [m.id, m]));
  assert.deepEqual(byId.get(a1.id), { id: a1.id, room, user_id: 'alice', text: 'alice one, edited', rev: e.rev, deleted: 0 });
  assert.deepEqual([byId.get(a2.id).deleted, byId.get(a2.id).text, byId.get(a2.id).rev], [1, '', md.rev]);
  assert.deepEqual([byId.get(b1.id).deleted, byId.get(b1.id).rev], [1, d.rev]);
  assert.equal(byId.get(dm1.id).text, 'hi Erin');
  const edits = sameRows(cl.nodes, 'edits', 'edits');
  assert.ok(edits.length >= 4, `edits rows: ${JSON.stringify(edits)}`);
  const marks = sameRows(cl.nodes, 'read_markers', 'read markers');
  const mark = (u, r) => marks.find((m) => m.user_id === u && m.room === r)?.id;
  assert.deepEqual([mark('alice', room), mark('bob', room)], [c1.id, a2.id], JSON.stringify(marks));
  assert.ok(mark('erin', dj.room) >= dm1.id, JSON.stringify(marks));
  const dms = sameRows(cl.nodes, 'dm_rooms', 'dm_rooms');
  assert.deepEqual(dms.map((x) => [x.room, x.user_a, x.user_b]), [[dj.room, 'dave', 'erin']]);
  const sanctions = sameRows(cl.nodes, 'sanctions', 'sanctions');
  assert.deepEqual(sanctions.map((s) => [s.user_id, s.kind, s.reason]).sort(),
    [['carol', 'mute', 'too loud'], ['frank', 'ban', 'spam'], ['mallory', 'ban', 'server-wide']].sort(), JSON.stringify(sanctions));
  const log = sameRows(cl.nodes, 'mod_log', 'mod_log');
  for (const action of ['mute', 'ban', 'unmute', 'delete'])
    assert.ok(log.some((r) => r.action === action), `mod_log has no ${action}: ${JSON.stringify(log)}`);
});

test('a DM\'s messages reach the peer\'s connections on other nodes, joined or not', { timeout: T(60000) }, async (t) => {
  const cl = await cluster(t, { nodes: 3 });
  const gina = await cl.user(0, { sub: 'gina', name: 'Gina' });
  const hugo0 = await cl.user(0, { sub: 'hugo', name: 'Hugo' });
  const hugo2 = await cl.user(2, { sub: 'hugo', name: 'Hugo' }); // never joins the DM room
  const gina1 = await cl.user(1, { sub: 'gina', name: 'Gina' });
  const j = await ok(gina, { type: 'dm', user: 'hugo' }, 'joined');
  const m = await gina.say(j.room, 'psst', 'dm-x');
  for (const [who, c] of [['hugo on node 0', hugo0], ['hugo on node 2', hugo2], ['gina on node 1', gina1]]) {
    const got = await c.next((x) => x.type === 'message' && x.room === j.room, T(5000))
      .catch((e) => assert.fail(`${who} did not get the DM: ${e.message}`));
    assert.deepEqual([got.id, got.ts, got.text], [m.id, m.ts, 'psst'], who);
  }
  const e = await ok(gina, { type: 'edit', room: j.room, id: m.id, text: 'psst!' }, 'edited');
  const ge = await hugo2.next((x) => x.type === 'edited' && x.room === j.room, T(5000));
  assert.equal(ge.rev, e.rev);
  // And the DM is in the peer's rooms on the other node.
  const rooms = await ok(hugo2, { type: 'rooms' }, 'rooms');
  assert.ok(rooms.rooms.some((r) => r.name === j.room && r.peer?.id === 'gina'), JSON.stringify(rooms));
});

test('a dm to a user welcomed only on another node is that user, not not_found', { timeout: T(60000) }, async (t) => {
  const cl = await cluster(t, { nodes: 2 });
  const ivan = await cl.user(1, { sub: 'ivan', name: 'Ivan' });
  const jane = await cl.user(0, { sub: 'jane', name: 'Jane' });
  // ivan was seen (welcomed) on node 1 only. Allow node 0 time to learn of it.
  let j;
  const deadline = Date.now() + T(5000);
  do {
    j = await ask(jane, { type: 'dm', user: 'ivan' }, 'joined');
    if (j.type === 'joined') break;
    await sleep(100);
  } while (Date.now() < deadline);
  assert.equal(j.type, 'joined', `dm to a user seen on node 1, asked on node 0: ${JSON.stringify(j)}`);
  assert.equal(j.peer?.id, 'ivan');
  const m = await jane.say(j.room, 'hello ivan', 'x1');
  const got = await ivan.next((x) => x.type === 'message' && x.room === j.room, T(5000));
  assert.equal(got.id, m.id);
});

test('a read marker set on one node reaches the user\'s connections on the other nodes', { timeout: T(60000) }, async (t) => {
  const cl = await cluster(t, { nodes: 3 });
  const room = 'marks';
  const k0 = await cl.user(0, { sub: 'kate', name: 'Kate' });
  const k1 = await cl.user(1, { sub: 'kate', name: 'Kate' });
  const k2 = await cl.user(2, { sub: 'kate', name: 'Kate' });
  for (const c of [k0, k1, k2]) await c.join(room);
  const m = await k0.say(room, 'x', 'x');
  const r = await ok(k0, { type: 'read', room, id: m.id }, 'read');
  for (const [i, c] of [[1, k1], [2, k2]]) {
    const e = await c.next((x) => x.type === 'read' && x.room === room, T(5000))
      .catch((x) => assert.fail(`kate on node ${i} got no read: ${x.message}`));
    assert.deepEqual([e.id, e.ref], [r.id, undefined], `node ${i}`);
  }
  await sleep(T(200));
  for (const c of [k0, k1, k2]) {
    await c.barrier();
    assert.deepEqual(c.drain('read'), [], 'read echoed twice');
  }
});
