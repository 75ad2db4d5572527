// --threads 2: two event loops, each its own libwebsockets context on one
// port, rooms spanning both (issue 6). Which loop a connection lands on is
// the kernel's choice (SO_REUSEPORT); /metrics tells per loop, so the tests
// place clients on a chosen loop by connecting until one lands there.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { guest, httpGet, sendMany, sharedServer, waitFor, T } from './harness.mjs';

let srv;
const clients = sharedServer({ args: ['--threads', '2', '--rate', '10000', '--burst', '10000'] },
  (s) => (srv = s));
let roomSeq = 0;
const room = (p = 't') => `${p}${++roomSeq}`;

async function loopConnections() {
  const r = await httpGet(`${srv.http}/metrics`);
  const per = [];
  for (const m of r.body.matchAll(/^parley_loop_connections\{loop="(\d+)"\} (\d+)$/gm))
    per[Number(m[1])] = Number(m[2]);
  return per;
}

/** A guest on loop `want` (0 or 1): connects until the per-loop count shows one landed
 *  there; the others stay open (in `clients`) and are returned in `extra`. */
async function guestOn(want, name, extra = []) {
  for (let i = 0; i < 64; i++) {
    const before = await loopConnections();
    const c = await guest(srv, name);
    clients.push(c);
    const now = await loopConnections();
    if (now[want] === before[want] + 1 && now[1 - want] === before[1 - want]) return c;
    extra.push(c);
  }
  throw new Error(`no connection landed on loop ${want} in 64 tries`);
}

test('the server runs two loops and the kernel spreads connections over both', async () => {
  const per0 = await loopConnections();
  assert.equal(per0.length, 2, 'one gauge per loop');
  const cs = [];
  for (let i = 0; i < 24; i++) cs.push(await guest(srv, `spread${i}`));
  clients.push(...cs);
  const per = await loopConnections();
  assert.equal(per[0] + per[1] - per0[0] - per0[1], 24);
  assert.ok(per[0] > per0[0] && per[1] > per0[1], `both loops got some: ${per}`);
  for (const c of cs) c.terminate();
  await waitFor(async () => {
    const p = await loopConnections();
    return p[0] === per0[0] && p[1] === per0[1];
  }, { what: 'connections gone from both loops' });
});

test('members on both loops get every message of the room in the same order', async () => {
  const r = room('order');
  const a = await guestOn(0, 'A0'), b = await guestOn(1, 'B1');
  const a2 = await guestOn(0, 'A0b'), b2 = await guestOn(1, 'B1b');
  for (const c of [a, b, a2, b2]) await c.join(r);
  const N = 150;
  const [acksA, acksB] = await Promise.all([
    sendMany(a, r, N, { prefix: 'a', window: 16 }),
    sendMany(b, r, N, { prefix: 'b', window: 16 }),
  ]);
  const acked = [...acksA, ...acksB].map((m) => m.id).sort((x, y) => x - y);
  const seen = [];
  for (const c of [a, b, a2, b2]) {
    const ids = [];
    while (ids.length < 2 * N) {
      const m = await c.next((x) => x.type === 'message' && x.room === r, T(10000));
      ids.push(m.id);
    }
    seen.push(ids);
  }
  for (const ids of seen) {
    assert.deepEqual(ids, acked, 'every acked message once, in id (commit) order');
  }
});

test('joined lists members of both loops; presence and typing cross loops', async () => {
  const r = room('presence');
  const w = await guestOn(0, 'Watcher');
  await w.join(r);
  const o = await guestOn(1, 'Other');
  const joined = await o.join(r);
  const names = joined.members.map((u) => u.name).sort();
  assert.deepEqual(names, ['Other', 'Watcher'], 'members from both loops');
  const pj = await w.next((m) => m.type === 'presence' && m.room === r);
  assert.equal(pj.event, 'join');
  assert.equal(pj.user.id, o.user.id);
  o.send({ type: 'typing', room: r });
  const ty = await w.next((m) => m.type === 'typing' && m.room === r);
  assert.equal(ty.user.id, o.user.id);
  const rooms = await w.request({ type: 'rooms' }, 'rooms');
  assert.equal(rooms.rooms.find((x) => x.name === r).members, 2, 'rooms counts both loops');
  o.terminate();
  const pl = await w.next((m) => m.type === 'presence' && m.room === r);
  assert.equal(pl.event, 'leave');
  assert.equal(pl.user.id, o.user.id);
});

test('join with since on one loop while the other sends: no gap, no duplicate', async () => {
  const r = room('since');
  const s = await guestOn(0, 'Sender');
  await s.join(r);
  const N = 400;
  const sending = sendMany(s, r, N, { window: 8 });
  // Join from the other loop once some are stored, while the rest are in flight.
  await s.next((m) => m.type === 'message' && m.room === r && m.id > 0);
  const j = await guestOn(1, 'Joiner');
  const joined = await j.join(r, { since: 0 });
  const acks = await sending;
  const last = Math.max(...acks.map((m) => m.id));
  const ids = joined.messages.map((m) => m.id);
  assert.equal(joined.complete, true);
  while (ids[ids.length - 1] !== last) {
    const m = await j.next((x) => x.type === 'message' && x.room === r, T(10000));
    ids.push(m.id);
  }
  assert.deepEqual(ids, acks.map((m) => m.id).sort((x, y) => x - y), 'history then live: every id once, in order');
});
