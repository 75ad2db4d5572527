// cluster.md: `joined.members`, `rooms` counts, `presence` and `typing` span
// all nodes; members of a dead node (one that could not say goodbye)
// disappear from `members`, `rooms` counts and presence within 15 s (a
// `leave` presence is sent for them). (Cluster part 2.)
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cluster, waitFor, sleep, T } from './harness.mjs';

const ids = (members) => members.map((u) => u.id).sort();

/** Waits until `rooms` on connection c lists room with n members. */
async function roomCount(c, room, n, what) {
  let last;
  await waitFor(async () => {
    const r = await c.request({ type: 'rooms' }, 'rooms');
    last = r.rooms?.find((x) => x.name === room)?.members ?? 0;
    return last === n;
  }, { what: `${what}: rooms count ${n} for ${room}`, timeoutMs: T(5000) }).catch((e) => assert.fail(`${e.message}; last count ${last}`));
}

/** The presence events c got for room, as "join:id" / "leave:id", after a barrier. */
async function presences(c, room) {
  await c.barrier();
  return c.drain((m) => m.type === 'presence' && m.room === room).map((m) => `${m.event}:${m.user.id}`);
}

test('joined.members, presence, typing and rooms counts span the nodes', { timeout: T(90000) }, async (t) => {
  const cl = await cluster(t, { nodes: 3 });
  const room = 'pres';
  const a = await cl.user(0, { sub: 'pa', name: 'PA' });
  const b = await cl.user(1, { sub: 'pb', name: 'PB' });
  const c = await cl.user(2, { sub: 'pc', name: 'PC' });
  const ja = await a.join(room);
  assert.deepEqual(ids(ja.members), ['pa']);
  // Membership crosses nodes through Redis: node 1 counts node 0's member first.
  await roomCount(b, room, 1, 'node 1 counts the member on node 0');
  const jb = await b.join(room);
  assert.deepEqual(ids(jb.members), ['pa', 'pb'], 'joined.members on node 1 lists the member on node 0');
  await a.next((m) => m.type === 'presence' && m.event === 'join' && m.user.id === 'pb', T(5000));
  await roomCount(c, room, 2, 'node 2 counts the members on nodes 0 and 1');
  const jc = await c.join(room);
  assert.deepEqual(ids(jc.members), ['pa', 'pb', 'pc'], 'joined.members on node 2');
  await a.next((m) => m.type === 'presence' && m.event === 'join' && m.user.id === 'pc', T(5000));
  await b.next((m) => m.type === 'presence' && m.event === 'join' && m.user.id === 'pc', T(5000));
  await sleep(T(300));
  assert.deepEqual(await presences(a, room), [], 'node 0: each join once');
  assert.deepEqual(await presences(b, room), [], 'node 1: each join once');
  assert.deepEqual(await presences(c, room), [], 'node 2: nothing before its own join');
  // typing from node 0 reaches nodes 1 and 2, not the typist.
  a.send({ type: 'typing', room });
  for (const [i, x] of [[1, b], [2, c]]) {
    const ty = await x.next((m) => m.type === 'typing' && m.room === room, T(5000))
      .catch((e) => assert.fail(`node ${i}: no typing from node 0: ${e.message}`));
    assert.equal(ty.user.id, 'pa');
  }
  await sleep(T(200));
  await a.barrier();
  assert.deepEqual(a.drain('typing'), [], 'the typist got its own typing');
  // rooms counts span the nodes.
  for (const x of [a, b, c]) await roomCount(x, room, 3, 'three members on three nodes');
  // A leave on node 1 and a disconnect on node 2 reach the others.
  await b.request({ type: 'leave', room }, 'left');
  await a.next((m) => m.type === 'presence' && m.event === 'leave' && m.user.id === 'pb', T(5000));
  await c.next((m) => m.type === 'presence' && m.event === 'leave' && m.user.id === 'pb', T(5000));
  c.terminate();
  await a.next((m) => m.type === 'presence' && m.event === 'leave' && m.user.id === 'pc', T(5000));
  await roomCount(a, room, 1, 'after the leave and the disconnect');
  const late = await cl.user(1, { sub: 'pd', name: 'PD' });
  // pd joins on node 1, which learns of pc's disconnect on its own, through Redis.
  await roomCount(late, room, 1, 'node 1 after the leave and the disconnect');
  const jd = await late.join(room);
  assert.deepEqual(ids(jd.members), ['pa', 'pd'], 'joined.members after the leave and the disconnect');
  await a.next((m) => m.type === 'presence' && m.room === room && m.event === 'join' && m.user.id === 'pd', T(5000))
    .catch((e) => assert.fail(`node 0 got no join for pd: ${e.message}`));
  await sleep(T(300));
  assert.deepEqual(await presences(a, room), [], 'node 0: the leaves once each, then the new join once');
});

test('a SIGKILLed node\'s members leave within 15 s: presence leave, rooms counts, joined.members', { timeout: T(90000) }, async (t) => {
  const cl = await cluster(t, { nodes: 3 });
  const room = 'dead';
  const w = await cl.user(0, { sub: 'dw', name: 'DW' });
  await w.join(room);
  const x = await cl.user(2, { sub: 'dx', name: 'DX' });
  const y = await cl.guest(2, 'DY');
  await x.join(room);
  await y.join(room);
  await roomCount(w, room, 3, 'before the kill');
  await presences(w, room);
  const t0 = Date.now();
  await cl.kill(2);
  const gone = new Set();
  await w.waitUntil(() => {
    for (const m of w.drain((z) => z.type === 'presence' && z.event === 'leave')) gone.add(m.user.id);
    return gone.has('dx') && gone.has(y.user.id);
  }, T(15000) + 1000, 'presence leave for both members of the dead node').catch((e) =>
    assert.fail(`${e.message} (got ${[...gone]}) ${Date.now() - t0} ms after the kill`));
  const ms = Date.now() - t0;
  assert.ok(ms <= T(15000), `leaves told ${ms} ms after the kill`);
  t.diagnostic(`leaves told ${ms} ms after the SIGKILL`);
  await roomCount(w, room, 1, 'after the dead node\'s members left');
  const z = await cl.user(1, { sub: 'dz', name: 'DZ' });
  const j = await z.join(room);
  assert.deepEqual(ids(j.members), ['dw', 'dz'], 'joined.members after the dead node\'s members left');
});

test('a node stopped with SIGTERM: its members\' leaves are told at once', { timeout: T(60000) }, async (t) => {
  const cl = await cluster(t, { nodes: 2 });
  const room = 'bye';
  const w = await cl.user(0, { sub: 'bw', name: 'BW' });
  await w.join(room);
  const x = await cl.user(1, { sub: 'bx', name: 'BX' });
  await x.join(room);
  await w.next((m) => m.type === 'presence' && m.event === 'join' && m.user.id === 'bx', T(5000));
  const t0 = Date.now();
  await cl.stopNode(1);
  await w.next((m) => m.type === 'presence' && m.event === 'leave' && m.user.id === 'bx', T(3000))
    .catch((e) => assert.fail(`no leave within ${T(3000)} ms of the SIGTERM: ${e.message}`));
  t.diagnostic(`leave told ${Date.now() - t0} ms after SIGTERM`);
  await roomCount(w, room, 1, 'after the stop');
});

test('a node that stalls past its heartbeat: its members leave, and when it resumes they come back with a join', { timeout: T(90000) }, async (t) => {
  const cl = await cluster(t, { nodes: 2 });
  const room = 'stall';
  const w = await cl.user(0, { sub: 'sw', name: 'SW' });
  await w.join(room);
  const x = await cl.user(1, { sub: 'sx', name: 'SX' });
  await x.join(room);
  await w.next((m) => m.type === 'presence' && m.event === 'join' && m.user.id === 'sx', T(5000));
  await presences(w, room);
  const proc = cl.nodes[1].proc;
  proc.kill('SIGSTOP');
  try {
    await w.next((m) => m.type === 'presence' && m.event === 'leave' && m.user.id === 'sx', T(20000))
      .catch((e) => assert.fail(`no leave for the stalled node's member: ${e.message}`));
    await roomCount(w, room, 1, 'while node 1 stalls');
  } finally {
    proc.kill('SIGCONT');
  }
  await w.next((m) => m.type === 'presence' && m.event === 'join' && m.user.id === 'sx', T(10000))
    .catch((e) => assert.fail(`no join for the member of the resumed node: ${e.message}`));
  await roomCount(w, room, 2, 'after node 1 resumed');
  await sleep(T(1000));
  assert.deepEqual(await presences(w, room), [], 'one join, not more');
  const z = await cl.user(0, { sub: 'sz', name: 'SZ' });
  const j = await z.join(room);
  assert.deepEqual(ids(j.members), ['sw', 'sx', 'sz'], 'joined.members after the resume');
});

test('60 joins at once on one node: the others count and list them all at once, though presence frames are paced', { timeout: T(90000) }, async (t) => {
  const cl = await cluster(t, { nodes: 2 });
  const room = 'crowd';
  const w = await cl.user(1, { sub: 'cw', name: 'CW' });
  await w.join(room);
  const crowd = await Promise.all(Array.from({ length: 60 }, (_, i) => cl.guest(0, `C${i}`)));
  const t0 = Date.now();
  await Promise.all(crowd.map((c) => c.join(room)));
  await roomCount(w, room, 61, 'the crowd on the other node');
  const ms = Date.now() - t0;
  t.diagnostic(`node 1 counted 61 members ${ms} ms after the joins`);
  assert.ok(ms < T(3000), `node 1 counted them ${ms} ms after the joins`);
  const z = await cl.user(1, { sub: 'cz', name: 'CZ' });
  const j = await z.join(room);
  assert.equal(j.members.length, 62, 'joined.members on node 1 lists the whole crowd');
  // The crowd leaves: the counts follow at once too.
  for (const c of crowd) c.terminate();
  await roomCount(w, room, 2, 'after the crowd left');
});

test('rooms on a node lists a room whose members are all on other nodes, with their count', { timeout: T(60000) }, async (t) => {
  const cl = await cluster(t, { nodes: 2 });
  const a = await cl.user(0, { sub: 'ra', name: 'RA' });
  const a2 = await cl.guest(0, 'RA2');
  const b = await cl.user(1, { sub: 'rb', name: 'RB' });
  await a.join('elsewhere');
  await a2.join('elsewhere');
  // Single node: "every room that has members online"; cluster.md: rooms counts span all nodes.
  await roomCount(b, 'elsewhere', 2, 'node 1, no member of its own');
});
