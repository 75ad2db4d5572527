// Protocol 1.1 "Moderation" across the cluster: a kick, mute or ban made on one
// node acts on the user's connections on every node (removed, presence
// leave, forbidden, a server-wide ban's 1008), once the node has applied it.
// (Cluster part 2.)
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cluster, caughtUp, connect, mintToken, sleep, T, Sender, sameRows, sqlite, LOG_KEY } from './harness.mjs';

async function ok(c, obj) {
  const r = await c.request(obj, 'ok');
  assert.equal(r.type, 'ok', `${JSON.stringify(obj)} answered ${JSON.stringify(r)}`);
}

test('kick, mute, room ban and server-wide ban made on one node act on the user\'s connections on the others', { timeout: T(120000) }, async (t) => {
  const cl = await cluster(t, { nodes: 3 });
  const room = 'modx';
  const mod = await cl.user(0, { sub: 'mx', name: 'MX', role: 'mod' });
  const admin = await cl.user(2, { sub: 'ax', name: 'AX', role: 'admin' });
  const claims = { sub: 'tx', name: 'TX' };
  const u = await cl.user(1, claims);
  const w = await cl.guest(2, 'Watcher');
  for (const c of [mod, u, w]) await c.join(room);
  await w.next((m) => m.type === 'presence' && m.event === 'join' && m.user.id === 'tx', T(5000)).catch(() => {});
  // Kick on node 0: the user's connection on node 1 is removed, the watcher on node 2 told.
  await ok(mod, { type: 'kick', room, user: 'tx', reason: 'out' });
  const rm = await u.next((m) => m.type === 'removed' && m.room === room, T(5000))
    .catch((e) => assert.fail(`the kicked user on node 1 got no removed: ${e.message}`));
  assert.equal(rm.reason, 'out');
  await w.next((m) => m.type === 'presence' && m.event === 'leave' && m.user.id === 'tx', T(5000))
    .catch((e) => assert.fail(`the watcher on node 2 got no leave for the kicked user: ${e.message}`));
  // Mute on node 0: once node 1 applied it, the user's send and typing there are forbidden.
  await u.join(room);
  await ok(mod, { type: 'mute', room, user: 'tx', minutes: 10, reason: 'quiet' });
  await caughtUp(cl.nodes, cl.redis);
  const s = await u.request({ type: 'send', room, text: 'muted?', client_id: 'm1' }, 'ack');
  assert.deepEqual([s.type, s.code], ['error', 'forbidden'], `a muted user's send on another node: ${JSON.stringify(s)}`);
  assert.ok(Number.isInteger(s.until), `forbidden carries until: ${JSON.stringify(s)}`);
  const ty = await u.request({ type: 'typing', room }, 'typing');
  assert.deepEqual([ty.type, ty.code], ['error', 'forbidden'], `a muted user's typing on another node: ${JSON.stringify(ty)}`);
  await ok(mod, { type: 'unmute', room, user: 'tx' });
  await caughtUp(cl.nodes, cl.redis);
  const s2 = await u.request({ type: 'send', room, text: 'back', client_id: 'm2' }, 'ack');
  assert.equal(s2.type, 'ack', `after unmute: ${JSON.stringify(s2)}`);
  // Room ban on node 0: removed on node 1, and its join there is forbidden.
  await ok(mod, { type: 'ban', room, user: 'tx', minutes: 60, reason: 'gone' });
  await u.next((m) => m.type === 'removed' && m.room === room, T(5000))
    .catch((e) => assert.fail(`the banned user on node 1 got no removed: ${e.message}`));
  await caughtUp(cl.nodes, cl.redis);
  const j = await u.request({ type: 'join', room }, 'joined');
  assert.deepEqual([j.type, j.code], ['error', 'forbidden'], `a banned user's join on another node: ${JSON.stringify(j)}`);
  // Server-wide ban on node 2: the user's connection on node 1 closes 1008 banned; hello refused on node 0.
  await ok(admin, { type: 'ban', user: 'tx', reason: 'everywhere' });
  const ci = await Promise.race([u.closed, sleep(T(5000)).then(() => null)]);
  assert.ok(ci, 'the user\'s connection on node 1 is still open after a server-wide ban on node 2');
  assert.deepEqual([ci.code, ci.reason], [1008, 'banned']);
  await caughtUp(cl.nodes, cl.redis);
  const again = await connect(cl.nodes[0].url);
  cl.clients.push(again);
  again.send({ type: 'hello', token: mintToken(claims) });
  const h = await again.next(['welcome', 'error'], T(5000));
  assert.deepEqual([h.type, h.code], ['error', 'unauthorized'], `hello of a banned user on node 0: ${JSON.stringify(h)}`);
});

// A node checks a send against its own registry, which follows the log: for
// the milliseconds until it has applied a mute made elsewhere, it still
// takes the muted user's sends and hands them to Redis. The log decides:
// every node refuses, at its apply, a send or edit logged after the mute
// (server/db_apply.c), so none of them is stored or acked anywhere.
test('a send logged after a mute made on another node is refused everywhere, though its node took it before it knew', { timeout: T(120000) }, async (t) => {
  const cl = await cluster(t, { nodes: 2 });
  const room = 'mutrace';
  const mod = await cl.user(0, { sub: 'mr', name: 'MR', role: 'mod' });
  const u = await cl.user(1, { sub: 'ur', name: 'UR' });
  for (const c of [mod, u]) await c.join(room);
  const snd = new Sender(u, room, { prefix: 'mr', window: 16 }).start();
  await sleep(T(300));
  await ok(mod, { type: 'mute', room, user: 'ur', minutes: 10, reason: 'race' });
  await sleep(T(300));
  await snd.stop();
  await caughtUp(cl.nodes, cl.redis);
  const log = await cl.redis.cmd('XRANGE', LOG_KEY, '-', '+');
  const fieldsOf = (f) => Object.fromEntries(f.flatMap((v, i) => (i % 2 ? [] : [[v, f[i + 1]]])));
  const mute = log.find(([, f]) => fieldsOf(f).op === 'mod' && fieldsOf(f).peer === 'ur');
  assert.ok(mute, 'the mute is in the log');
  const muteSeq = Number(mute[0].split('-')[0]);
  const acked = [...snd.acked.values()].map((a) => a.id);
  assert.ok(acked.length > 0, 'sends before the mute were acked');
  assert.ok(snd.refused.size > 0, 'sends after the mute were refused');
  assert.deepEqual([...new Set(snd.refused.values())], ['forbidden'], 'every refusal is forbidden');
  assert.deepEqual(acked.filter((id) => id > muteSeq), [], `acked sends logged after the mute (seq ${muteSeq})`);
  for (const n of cl.nodes)
    assert.deepEqual(sqlite(n.dbPath, `SELECT id FROM messages WHERE room='${room}' AND user_id='ur' AND id>${muteSeq}`), [],
      `node :${n.port} stored sends logged after the mute`);
  sameRows(cl.nodes, 'messages');
  // The refusal carries the sanction and its end, like a single node's.
  const r = await u.request({ type: 'send', room, text: 'still muted?', client_id: 'mr-last' }, 'ack');
  assert.deepEqual([r.type, r.code, r.sanction], ['error', 'forbidden', 'mute'], JSON.stringify(r));
  assert.ok(Number.isInteger(r.until), JSON.stringify(r));
});
