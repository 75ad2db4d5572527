// Protocol 1.1, direct messages (spec: "Direct messages", "Edits and
// deletes", "Precise rules for 1.1"). `dm` answers `joined` for the pair's
// room, dm-<32 lowercase hex>, with `peer`; only the two users may use it;
// its message/edited/deleted go to every connection of both users, joined
// or not, on every event loop, and to nobody else; presence and typing only
// to joined connections; `rooms` lists a user's DM rooms (with peer), online
// or not, across reconnects and restarts, and never another pair's.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import {
  connect, guest, tokenUser, mintToken, serverForTest, startServer, httpGet, sleep, T, everyOnce, quiet,
} from './harness.mjs';

const RATE = ['--rate', '1000', '--burst', '1000'];
const DM_RE = /^dm-[0-9a-f]{32}$/;
const REPLY = {
  dm: 'joined', join: 'joined', leave: 'left', send: 'ack', history: 'history',
  typing: 'typing', edit: 'edited', delete: 'deleted', rooms: 'rooms',
};
let cidSeq = 0;
const cid = () => `dm-c${++cidSeq}`;
const madeUp = () => `dm-${randomBytes(16).toString('hex')}`;
const usr = (u) => ({ id: u.id, name: u.name });

// ---------------------------------------------------------------------------
// Helpers

/** A token user on server s, remembered for cleanup; c.claims lets again() reconnect it. */
async function tok(s, clients, sub, name, extra = {}) {
  const claims = { sub, name, ...extra };
  const c = await tokenUser(s, claims);
  c.claims = claims;
  clients.push(c);
  return c;
}

async function gst(s, clients, name) {
  const c = await guest(s, name);
  clients.push(c);
  return c;
}

/** Another connection of the same user as c (same token, or the guest's resume). */
async function again(s, clients, c) {
  const n = await connect(s.url);
  clients.push(n);
  if (c.claims) await n.hello({ token: mintToken(c.claims) });
  else await n.hello({ name: c.user.name, resume: c.welcome.resume });
  assert.equal(n.user.id, c.user.id, 'the second connection is the same user');
  n.claims = c.claims;
  return n;
}

/** Sends obj with a ref; resolves its answer (the reply type or an error). */
const ask = (c, obj) => c.request(obj, REPLY[obj.type]);

async function refused(c, obj, code, what = '') {
  const r = await ask(c, obj);
  assert.deepEqual([r.type, r.code], ['error', code], `${what} ${JSON.stringify(obj)} answered ${JSON.stringify(r)}`);
  return r;
}

async function dm(c, user) {
  const j = await ask(c, { type: 'dm', user });
  assert.equal(j.type, 'joined', `dm ${JSON.stringify(user)} answered ${JSON.stringify(j)}`);
  return j;
}

async function send(c, room, text) {
  const client_id = cid();
  const a = await ask(c, { type: 'send', room, text, client_id });
  assert.equal(a.type, 'ack', `send to ${room} answered ${JSON.stringify(a)}`);
  return a;
}

async function history(c, room, extra = {}) {
  const h = await ask(c, { type: 'history', room, ...extra });
  assert.equal(h.type, 'history', `history answered ${JSON.stringify(h)}`);
  return h;
}

async function rooms(c) {
  const r = await ask(c, { type: 'rooms' });
  assert.equal(r.type, 'rooms', JSON.stringify(r));
  return r.rooms;
}

/** typing that must be accepted: no error answers it (checked after a round trip). */
async function typingOk(c, room) {
  const ref = `ty${++cidSeq}`;
  c.send({ type: 'typing', room, ref });
  await c.barrier();
  const errs = c.drain((m) => m.type === 'error' && m.ref === ref);
  assert.deepEqual(errs, [], `typing in ${room} was refused`);
}


const inRoom = (room, type) => (m) => m.room === room && (!type || m.type === type);

/** A server handle that survives restarts; stopped (exit 0) when the test ends. */
async function restartable(t, opts) {
  const h = { s: await startServer(opts), clients: [] };
  h.restart = async () => {
    for (const c of h.clients.splice(0)) c.terminate();
    h.s = await h.s.restart();
    return h.s;
  };
  t.after(async () => {
    for (const c of h.clients) c.terminate();
    const r = await h.s.stop();
    assert.equal(r.code, 0, `server exit code on SIGTERM; stderr:\n${r.stderr}`);
    h.s.cleanup();
  });
  return h;
}

async function loopConnections(s) {
  const r = await httpGet(`${s.http}/metrics`);
  const per = [];
  for (const m of r.body.matchAll(/^parley_loop_connections\{loop="(\d+)"\} (\d+)$/gm))
    per[Number(m[1])] = Number(m[2]);
  return per;
}

// ---------------------------------------------------------------------------
// dm

test('dm answers joined for a dm-<hex> room with peer; the same pair gets the same room whoever asks; the asker is joined', async (t) => {
  const { s, clients } = await serverForTest(t, { args: RATE });
  const a = await tok(s, clients, 'alice', 'Alice');
  const b = await tok(s, clients, 'bob', 'Bob');
  const j = await dm(a, 'bob');
  assert.match(j.room, DM_RE);
  assert.deepEqual(usr(j.peer), { id: 'bob', name: 'Bob' });
  assert.deepEqual([j.messages, j.complete], [[], true]);
  assert.deepEqual(j.members.map((u) => u.id), ['alice'], 'the asking connection is a member');
  const jb = await dm(b, 'alice');
  assert.equal(jb.room, j.room, 'the same pair, the other way round: the same room');
  assert.deepEqual(usr(jb.peer), { id: 'alice', name: 'Alice' });
  assert.deepEqual(jb.members.map((u) => u.id).sort(), ['alice', 'bob']);
  // The dm joined b: a (joined by its own dm) gets presence, once.
  const p = await a.next(inRoom(j.room, 'presence'));
  assert.deepEqual([p.event, usr(p.user)], ['join', { id: 'bob', name: 'Bob' }]);
  // Joined means typing works (no not_member) and reaches the other joined connection.
  await typingOk(a, j.room);
  const ty = await b.next(inRoom(j.room, 'typing'));
  assert.equal(ty.user.id, 'alice');
  // Asking again repeats the answer, without a second presence.
  const j2 = await dm(a, 'bob');
  assert.deepEqual([j2.room, usr(j2.peer)], [j.room, { id: 'bob', name: 'Bob' }]);
  await quiet([b], inRoom(j.room, 'presence'), 'a second presence');
  // Other pairs, other rooms.
  const c = await tok(s, clients, 'carol', 'Carol');
  const ac = await dm(a, 'carol'), ca = await dm(c, 'alice'), bc = await dm(b, 'carol');
  assert.equal(ac.room, ca.room);
  for (const r of [ac.room, bc.room]) assert.match(r, DM_RE);
  assert.equal(new Set([j.room, ac.room, bc.room]).size, 3, 'one room per pair');
  // Guests too, and a guest with a token user.
  const g = await gst(s, clients, 'Gina'), h = await gst(s, clients, 'Hal');
  const gh = await dm(g, h.user.id), hg = await dm(h, g.user.id);
  assert.equal(gh.room, hg.room);
  assert.match(gh.room, DM_RE);
  assert.deepEqual([usr(gh.peer), usr(hg.peer)], [usr(h.user), usr(g.user)]);
  const ga = await dm(g, 'alice'), ag = await dm(a, g.user.id);
  assert.equal(ga.room, ag.room);
  assert.deepEqual(usr(ag.peer), { id: g.user.id, name: 'Gina' });
  assert.equal(new Set([j.room, ac.room, bc.room, gh.room, ga.room]).size, 5);
});

test('pairs whose ids run together alike get different rooms, each closed to the other pair', async (t) => {
  const { s, clients } = await serverForTest(t, { args: RATE });
  for (const sep of ['', ':', '|', ' ', '.', '/']) { // a control character is refused in a sub (auth.test.mjs)
    const ids = [`p${sep}q`, 'r', 'p', `q${sep}r`].map((x) => `${x}-${sep.charCodeAt(0) || 0}`);
    // ("p<sep>q", "r") and ("p", "q<sep>r"): the same text when joined with sep.
    const us = [];
    for (const id of ids) us.push(await tok(s, clients, id, `N${us.length}`));
    const r12 = (await dm(us[0], ids[1])).room, r34 = (await dm(us[2], ids[3])).room;
    assert.notEqual(r12, r34, `separator ${JSON.stringify(sep)}: two pairs, one room`);
    assert.equal((await dm(us[1], ids[0])).room, r12);
    await refused(us[2], { type: 'join', room: r12 }, 'forbidden', 'the other pair:');
    await refused(us[0], { type: 'history', room: r34 }, 'forbidden', 'the other pair:');
    for (const u of us) u.terminate();
  }
});

test("dm and join carry the peer's latest name", async (t) => {
  const { s, clients } = await serverForTest(t, { args: RATE });
  const a = await tok(s, clients, 'alice', 'Alice');
  const b = await tok(s, clients, 'bob', 'Bob');
  const j = await dm(a, 'bob');
  assert.equal(j.peer.name, 'Bob');
  b.terminate();
  await tok(s, clients, 'bob', 'Robert'); // the same user, welcomed under a new name
  const j2 = await dm(a, 'bob');
  assert.deepEqual([j2.room, usr(j2.peer)], [j.room, { id: 'bob', name: 'Robert' }]);
  const a2 = await tok(s, clients, 'alice', 'Alice');
  const jj = await a2.join(j.room);
  assert.deepEqual(usr(jj.peer), { id: 'bob', name: 'Robert' }, 'join of a DM room carries peer');
  assert.equal(jj.room, j.room);
});

test('dm refusals: not_found for an id never welcomed, bad_request for one\'s own id and a bad user field', async (t) => {
  const { s, clients } = await serverForTest(t, { args: RATE });
  const g = await gst(s, clients, 'Ann');
  const a = await tok(s, clients, 'alice', 'Alice');
  mintToken({ sub: 'minted-only', name: 'Never' }); // a token nobody said hello with
  for (const c of [g, a]) {
    for (const user of ['nobody', 'minted-only', 'g_0123456789abcdef', g.user.id.toUpperCase(),
      'ALICE', 'x'.repeat(128), 'é'.repeat(64)]) // 128 bytes: in range, never seen
      await refused(c, { type: 'dm', user }, 'not_found', `${c.user.id}:`);
    await refused(c, { type: 'dm', user: c.user.id }, 'bad_request', 'own id:');
    await refused(c, { type: 'dm' }, 'bad_request', 'no user:');
    for (const user of [null, 5, true, [], {}, ['bob'], { id: 'alice' }, '', 'x'.repeat(129), 'é'.repeat(65)])
      await refused(c, { type: 'dm', user }, 'bad_request', `${c.user.id}:`);
  }
  // Nothing was made: no DM room is listed for either.
  for (const c of [g, a]) assert.deepEqual((await rooms(c)).filter((r) => r.name.startsWith('dm-')), []);
  // The longest id a dm takes (128 bytes) works both ways.
  const long = await tok(s, clients, 'z'.repeat(128), 'Long');
  const jl = await dm(a, long.user.id), lj = await dm(long, 'alice');
  assert.equal(jl.room, lj.room);
  assert.deepEqual(usr(jl.peer), { id: 'z'.repeat(128), name: 'Long' });
  // A user seen but gone is still found.
  const b = await tok(s, clients, 'bob', 'Bob');
  b.terminate();
  await b.closed;
  assert.deepEqual(usr((await dm(g, 'bob')).peer), { id: 'bob', name: 'Bob' });
  assert.deepEqual(usr((await dm(a, g.user.id)).peer), { id: g.user.id, name: 'Ann' });
});

test('users seen, DM rooms and their messages survive a restart', async (t) => {
  const h = await restartable(t, { args: RATE });
  const g = await gst(h.s, h.clients, 'Gus');
  const gid = g.user.id, resume = g.welcome.resume;
  await tok(h.s, h.clients, 'tom', 'Tom');
  const x = await tok(h.s, h.clients, 'xena', 'Xena');
  const jx = await dm(x, 'tom');
  const m1 = await send(x, jx.room, 'before the restart');
  await h.restart();
  const a = await gst(h.s, h.clients, 'Ann');
  const ja = await dm(a, gid);
  assert.deepEqual(usr(ja.peer), { id: gid, name: 'Gus' }, 'a guest stays seen across a restart');
  const at = await dm(a, 'tom');
  assert.deepEqual(usr(at.peer), { id: 'tom', name: 'Tom' }, 'a token user stays seen across a restart');
  const x2 = await tok(h.s, h.clients, 'xena', 'Xena');
  const listed = (await rooms(x2)).filter((r) => r.name === jx.room);
  assert.equal(listed.length, 1, 'rooms lists the DM room after a restart, before any join');
  assert.deepEqual([usr(listed[0].peer), listed[0].members, listed[0].last_id], [{ id: 'tom', name: 'Tom' }, 0, m1.id]);
  const jx2 = await dm(x2, 'tom');
  assert.equal(jx2.room, jx.room, 'the same pair, the same room after a restart');
  assert.deepEqual(jx2.messages.map((m) => [m.id, m.text, m.user.id]), [[m1.id, 'before the restart', 'xena']]);
  // A connection of tom that joins nothing gets the room's new messages (the pair is known after a restart).
  const t2 = await tok(h.s, h.clients, 'tom', 'Tom');
  const m2 = await send(x2, jx.room, 'after the restart');
  const [tm] = await everyOnce([t2, x2], (m) => m.type === 'message' && m.room === jx.room, 'the message after the restart');
  assert.deepEqual([tm.id, tm.text], [m2.id, 'after the restart']);
  // The guest comes back with its resume: its DM room is listed; it may send unjoined.
  const g2 = await connect(h.s.url);
  h.clients.push(g2);
  await g2.hello({ name: 'Gus', resume });
  assert.equal(g2.user.id, gid);
  // An empty DM room someone else started is not listed (nobody can fill
  // another user's list with empty rooms), until it has a message.
  assert.deepEqual((await rooms(g2)).filter((r) => r.name === ja.room), [], 'empty, not Gus\'s own');
  const ack = await send(g2, ja.room, 'back again');
  const got = await a.next(inRoom(ja.room, 'message'));
  assert.deepEqual([got.id, got.text, got.user.id], [ack.id, 'back again', gid]);
  const gl = (await rooms(g2)).filter((r) => r.name === ja.room);
  assert.equal(gl.length, 1, JSON.stringify(await rooms(g2)));
  assert.deepEqual(usr(gl[0].peer), { id: a.user.id, name: 'Ann' });
});

// ---------------------------------------------------------------------------
// Who may dm

test('--no-guest-dms: a guest\'s dm is forbidden, and so is a dm to a guest; token users still dm', async (t) => {
  const { s, clients } = await serverForTest(t, { args: [...RATE, '--no-guest-dms'] });
  const g = await gst(s, clients, 'Gail'), h = await gst(s, clients, 'Hugo');
  const t1 = await tok(s, clients, 'tina', 'Tina');
  await tok(s, clients, 'todd', 'Todd');
  await refused(g, { type: 'dm', user: 'tina' }, 'forbidden', 'guest to token user:');
  await refused(g, { type: 'dm', user: h.user.id }, 'forbidden', 'guest to guest:');
  await refused(t1, { type: 'dm', user: g.user.id }, 'forbidden', 'token user to guest:');
  const j = await dm(t1, 'todd');
  assert.match(j.room, DM_RE);
  // The guest cannot use the token users' room either.
  await refused(g, { type: 'join', room: j.room }, 'forbidden');
  assert.deepEqual((await rooms(t1)).filter((r) => r.name.startsWith('dm-')).map((r) => r.name), [j.room]);
});

test('a token with "dm": false is forbidden to dm; a token\'s rooms claim does not apply to DM rooms', async (t) => {
  const { s, clients } = await serverForTest(t, { args: RATE });
  const b = await tok(s, clients, 'bob', 'Bob');
  const no = await tok(s, clients, 'nodm', 'No DMs', { dm: false });
  await refused(no, { type: 'dm', user: 'bob' }, 'forbidden', 'dm:false');
  assert.deepEqual((await rooms(b)).filter((r) => r.name.startsWith('dm-')), [], 'the refusal made no room');
  const yes = await tok(s, clients, 'yesdm', 'Yes DMs', { dm: true });
  assert.match((await dm(yes, 'bob')).room, DM_RE);
  // rooms: ["a"] limits regular rooms only.
  const n = await tok(s, clients, 'narrow', 'Narrow', { rooms: ['a'] });
  await refused(n, { type: 'join', room: 'b' }, 'forbidden', 'the claim is in force:');
  const j = await dm(n, 'bob');
  assert.match(j.room, DM_RE);
  const jj = await n.join(j.room);
  assert.deepEqual(usr(jj.peer), { id: 'bob', name: 'Bob' });
  const m = await send(n, j.room, 'from a narrow token');
  const bm = await b.next(inRoom(j.room, 'message'));
  assert.equal(bm.id, m.id);
  await typingOk(n, j.room);
  assert.deepEqual((await history(n, j.room)).messages.map((x) => x.id), [m.id]);
  const e = await ask(n, { type: 'edit', room: j.room, id: m.id, text: 'edited' });
  assert.equal(e.type, 'edited', JSON.stringify(e));
  const listed = (await rooms(n)).filter((r) => r.name === j.room);
  assert.equal(listed.length, 1, 'rooms lists the DM room for a narrow token');
  assert.deepEqual(usr(listed[0].peer), { id: 'bob', name: 'Bob' });
  const nb = await dm(b, 'narrow');
  assert.equal(nb.room, j.room);
});

// ---------------------------------------------------------------------------
// Room names

test('a room name starting with dm- that is not dm-<32 lowercase hex> is bad_room for every request', async (t) => {
  const { s, clients } = await serverForTest(t, { args: RATE });
  const a = await tok(s, clients, 'alice', 'Alice', { rooms: '*' });
  const g = await gst(s, clients, 'Gabe');
  await tok(s, clients, 'bob', 'Bob');
  const real = (await dm(a, 'bob')).room;
  const hex = real.slice(3);
  const names = [
    'dm-', 'dm-0', `dm-${'a'.repeat(31)}`, `dm-${'a'.repeat(33)}`, `dm-${'g'.repeat(32)}`,
    `dm-${'0'.repeat(31)}g`, `dm-${hex.toUpperCase()}`, `dm-${hex}-x`, `dm-${hex}_`, `dm-${hex}0`,
    `dm-${hex.slice(1)}`, 'dm-general', 'dm--',
  ];
  const reqs = (room) => [
    { type: 'join', room },
    { type: 'send', room, text: 'x', client_id: cid() },
    { type: 'history', room },
    { type: 'typing', room },
    { type: 'leave', room },
    { type: 'edit', room, id: 1, text: 'x' },
    { type: 'delete', room, id: 1 },
  ];
  for (const name of names) {
    for (const c of [a, g]) for (const q of reqs(name)) await refused(c, q, 'bad_room', `${c.user.id}:`);
    await sleep(50); // stay under 100 requests per second per connection
  }
  // Names that merely look alike are regular rooms.
  for (const name of ['dm', 'dmx', 'dm_x', 'adm-x', 'd-m']) assert.equal((await g.join(name)).room, name);
});

// ---------------------------------------------------------------------------
// Third users

test('a third user (guest, token user, rooms:"*") is forbidden in a DM room, learns nothing, receives nothing', async (t) => {
  const { s, clients } = await serverForTest(t, { args: RATE });
  const a = await tok(s, clients, 'alice', 'Alice');
  const b = await gst(s, clients, 'Bob');
  const c = await gst(s, clients, 'Carl');
  const d = await tok(s, clients, 'dave', 'Dave', { rooms: '*' });
  const e = await tok(s, clients, 'erin', 'Erin'); // no rooms claim at all
  const j = await dm(a, b.user.id);
  const room = j.room;
  await b.join(room);
  const m = await send(b, room, 'secret');
  for (const x of [a, b]) await x.next(inRoom(room, 'message'));
  // All three share a regular room with the pair.
  for (const x of [a, b, c, d, e]) await x.join('lobby');
  const fake = madeUp();
  const reqs = (r, id) => [
    { type: 'join', room: r },
    { type: 'send', room: r, text: 'let me in', client_id: cid() },
    { type: 'history', room: r },
    { type: 'typing', room: r },
    { type: 'edit', room: r, id, text: 'hijack' },
    { type: 'delete', room: r, id },
  ];
  for (const x of [c, d, e]) {
    const onReal = [], onFake = [];
    for (const q of [...reqs(room, m.id), { type: 'edit', room, id: m.id + 1000, text: 'probe' }])
      onReal.push(await refused(x, q, 'forbidden', `${x.user.id} in the pair's room:`));
    for (const q of [...reqs(fake, m.id), { type: 'edit', room: fake, id: m.id + 1000, text: 'probe' }])
      onFake.push(await refused(x, q, 'forbidden', `${x.user.id} in a made-up DM room:`));
    // Nothing tells the pair's room from a made-up one, leave included (whatever it answers).
    onReal.push(await ask(x, { type: 'leave', room }));
    onFake.push(await ask(x, { type: 'leave', room: fake }));
    assert.deepEqual(onReal.map((r) => [r.type, r.code, r.message]), onFake.map((r) => [r.type, r.code, r.message]),
      'the answers for an existing and a made-up DM room differ');
    await x.barrier();
  }
  // One of a pair is a third user in any other DM room, and in a made-up one.
  for (const q of reqs(madeUp(), m.id)) await refused(a, q, 'forbidden', 'alice in a made-up DM room:');
  // Nothing reached the third users, and nothing changed.
  const m2 = await send(a, room, 'second secret');
  await everyOnce([a, b], (x) => x.type === 'message' && x.id === m2.id, 'the second message');
  await b.join(room); // again: no presence to anyone
  await typingOk(a, room);
  await b.next(inRoom(room, 'typing'));
  await quiet([c, d, e], (x) => x.room === room || x.room === fake || /secret|hijack|let me in|probe/.test(x.text ?? ''),
    'anything of the DM room');
  const h = await history(a, room);
  assert.deepEqual(h.messages.map((x) => [x.id, x.text, x.rev]), [[m.id, 'secret', m.id], [m2.id, 'second secret', m2.id]]);
  for (const x of [c, d, e]) {
    const names = (await rooms(x)).map((r) => r.name);
    assert.ok(names.includes('lobby'), JSON.stringify(names));
    assert.deepEqual(names.filter((n) => n.startsWith('dm-')), [], `${x.user.id} must not see another pair's DM room`);
  }
});

// ---------------------------------------------------------------------------
// Membership and delivery

test('one of the pair may send without joining; typing needs a join; presence and typing only to joined connections', async (t) => {
  const { s, clients } = await serverForTest(t, { args: RATE });
  const a = await tok(s, clients, 'alice', 'Alice');
  const b1 = await tok(s, clients, 'bob', 'Bob');
  const b2 = await again(s, clients, b1);
  const j = await dm(a, 'bob');
  const room = j.room;
  const ack = await send(b1, room, 'hi, unjoined'); // b1 has joined nothing
  assert.equal(ack.room, room);
  const got = await everyOnce([a, b1, b2], (x) => x.type === 'message' && x.room === room, 'the message');
  for (const mm of got) assert.deepEqual([mm.id, mm.ts, mm.text, usr(mm.user)], [ack.id, ack.ts, 'hi, unjoined', { id: 'bob', name: 'Bob' }]);
  await refused(b1, { type: 'typing', room }, 'not_member', 'typing unjoined:');
  // The same client_id again, from bob's other unjoined connection: the first ack, no second message.
  const again1 = await ask(b2, { type: 'send', room, text: 'hi, unjoined', client_id: ack.client_id });
  assert.deepEqual([again1.type, again1.id, again1.ts], ['ack', ack.id, ack.ts], JSON.stringify(again1));
  // b1 joins: a (joined) gets presence; b2 (not joined) does not.
  const jb = await b1.join(room);
  assert.deepEqual(usr(jb.peer), { id: 'alice', name: 'Alice' });
  assert.deepEqual(jb.messages.map((x) => x.id), [ack.id]);
  const p = await a.next(inRoom(room, 'presence'));
  assert.deepEqual([p.event, p.user.id], ['join', 'bob']);
  await typingOk(b1, room);
  const ty = await a.next(inRoom(room, 'typing'));
  assert.equal(ty.user.id, 'bob');
  await typingOk(a, room);
  assert.equal((await b1.next(inRoom(room, 'typing'))).user.id, 'alice');
  await quiet([b2], (x) => x.room === room && (x.type === 'presence' || x.type === 'typing'), 'presence or typing');
  await quiet([a, b1, b2], inRoom(room, 'message'), 'a message for a repeated client_id');
  await quiet([a, b1], inRoom(room, 'typing'), 'its own typing or a second one');
  // b1 leaves: a gets presence leave; b1 still gets the room's messages, typing is not_member again.
  const left = await ask(b1, { type: 'leave', room });
  assert.deepEqual([left.type, left.room], ['left', room]);
  const pl = await a.next(inRoom(room, 'presence'));
  assert.deepEqual([pl.event, pl.user.id], ['leave', 'bob']);
  const m2 = await send(a, room, 'still there?');
  await everyOnce([a, b1, b2], (x) => x.type === 'message' && x.id === m2.id, 'the message after a leave');
  await refused(b1, { type: 'typing', room }, 'not_member', 'typing after leave:');
  await quiet([b2], (x) => x.room === room && x.type === 'presence', 'presence');
});

test('message, edited and deleted reach every connection of both users, joined or not, and no third user (guests with resume)', async (t) => {
  const { s, clients } = await serverForTest(t, { args: RATE });
  const a1 = await gst(s, clients, 'Gil');
  const a2 = await again(s, clients, a1), a3 = await again(s, clients, a1);
  const b1 = await gst(s, clients, 'Hana');
  const b2 = await again(s, clients, b1), b3 = await again(s, clients, b1);
  const c1 = await gst(s, clients, 'Carl');
  const c2 = await again(s, clients, c1);
  const c3 = await tok(s, clients, 'carla', 'Carla', { rooms: '*' });
  // Some are in a regular room together with the third users; a3, b2 join nothing.
  for (const x of [a2, b3, c1, c3]) await x.join('lobby');
  const j = await dm(a1, b1.user.id);
  const room = j.room;
  await b1.join(room);
  const p = await a1.next(inRoom(room, 'presence'));
  assert.deepEqual([p.event, p.user.id], ['join', b1.user.id]);
  const pair = [a1, a2, a3, b1, b2, b3], third = [c1, c2, c3];
  const ack = await send(a3, room, 'from a connection that joined nothing');
  const got = await everyOnce(pair, (x) => x.type === 'message' && x.room === room, 'the message');
  for (const m of got)
    assert.deepEqual([m.id, m.ts, m.text, usr(m.user)], [ack.id, ack.ts, 'from a connection that joined nothing', usr(a1.user)]);
  // Connections opened after the conversation began get its events too.
  const a4 = await again(s, clients, a1), b4 = await again(s, clients, b1);
  pair.push(a4, b4);
  // A regular room still works as before, for everyone in it.
  const lm = await send(c1, 'lobby', 'lobby talk');
  await everyOnce([a2, b3, c1, c3], (x) => x.type === 'message' && x.id === lm.id, 'the lobby message');
  // edited: the requester with its ref, every other connection of both users without.
  const e = await ask(a2, { type: 'edit', room, id: ack.id, text: 'edited text' });
  assert.equal(e.type, 'edited', JSON.stringify(e));
  assert.deepEqual([e.room, e.id, e.text], [room, ack.id, 'edited text']);
  const others = pair.filter((x) => x !== a2);
  for (const x of await everyOnce(others, (m) => m.type === 'edited' && m.room === room, 'edited'))
    assert.deepEqual([x.id, x.rev, x.text, x.edited_ts, x.ref], [e.id, e.rev, e.text, e.edited_ts, undefined]);
  await quiet([a2], (m) => m.type === 'edited', 'a second edited');
  // deleted: by the author, from another connection.
  const ack2 = await send(b2, room, 'to be deleted');
  await everyOnce(pair, (x) => x.type === 'message' && x.id === ack2.id, 'the second message');
  const d = await ask(b3, { type: 'delete', room, id: ack2.id });
  assert.equal(d.type, 'deleted', JSON.stringify(d));
  assert.deepEqual([d.room, d.id, usr(d.by)], [room, ack2.id, usr(b1.user)]);
  for (const x of await everyOnce(pair.filter((y) => y !== b3), (m) => m.type === 'deleted' && m.room === room, 'deleted'))
    assert.deepEqual([x.id, x.rev, x.ref], [d.id, d.rev, undefined]);
  // typing: joined connections only.
  await typingOk(b1, room);
  assert.equal((await a1.next(inRoom(room, 'typing'))).user.id, b1.user.id);
  await quiet([a2, a3, a4, b2, b3, b4], (x) => x.room === room && (x.type === 'typing' || x.type === 'presence'), 'typing or presence');
  // Nothing of the DM room reached the third user, on any connection.
  await quiet(third, (x) => x.room === room || /joined nothing|edited text|to be deleted/.test(x.text ?? ''), 'anything of the DM room');
});

test('edits and deletes in a DM: only the author; the other user is forbidden; both users\' connections get the events', async (t) => {
  const { s, clients } = await serverForTest(t, { args: RATE });
  const a1 = await tok(s, clients, 'alice', 'Alice');
  const a2 = await again(s, clients, a1);
  const b1 = await tok(s, clients, 'bob', 'Bob');
  const b2 = await again(s, clients, b1);
  const c = await tok(s, clients, 'carol', 'Carol', { rooms: '*' });
  for (const x of [a1, b1, c]) await x.join('lobby');
  const room = (await dm(a1, 'bob')).room;
  const all = [a1, a2, b1, b2];
  const ma = await send(a1, room, 'alice wrote');
  const mb = await send(b2, room, 'bob wrote');
  for (const id of [ma.id, mb.id]) await everyOnce(all, (x) => x.type === 'message' && x.id === id, `message ${id}`);
  for (const x of [b1, b2]) {
    await refused(x, { type: 'edit', room, id: ma.id, text: 'bob was here' }, 'forbidden', "bob edits alice's:");
    await refused(x, { type: 'delete', room, id: ma.id }, 'forbidden', "bob deletes alice's:");
  }
  for (const x of [a1, a2]) {
    await refused(x, { type: 'edit', room, id: mb.id, text: 'alice was here' }, 'forbidden', "alice edits bob's:");
    await refused(x, { type: 'delete', room, id: mb.id }, 'forbidden', "alice deletes bob's:");
  }
  await refused(a1, { type: 'edit', room, id: mb.id + 1000, text: 'x' }, 'not_found', 'no such message:');
  await refused(a1, { type: 'edit', room: 'lobby', id: ma.id, text: 'x' }, 'not_found', 'not in that room:');
  // The authors change their own, each from the other connection.
  const e = await ask(a2, { type: 'edit', room, id: ma.id, text: 'alice rewrote' });
  assert.equal(e.type, 'edited', JSON.stringify(e));
  await everyOnce([a1, b1, b2], (x) => x.type === 'edited' && x.id === ma.id && x.rev === e.rev && x.ref === undefined, 'edited');
  const d = await ask(b1, { type: 'delete', room, id: mb.id });
  assert.equal(d.type, 'deleted', JSON.stringify(d));
  assert.deepEqual(usr(d.by), { id: 'bob', name: 'Bob' });
  await everyOnce([a1, a2, b2], (x) => x.type === 'deleted' && x.id === mb.id && x.rev === d.rev && x.ref === undefined, 'deleted');
  await refused(b2, { type: 'delete', room, id: mb.id }, 'not_found', 'already deleted:');
  const h = await history(b2, room);
  assert.deepEqual(h.messages.map((x) => [x.id, x.text, x.rev, x.deleted ?? false]),
    [[ma.id, 'alice rewrote', e.rev, false], [mb.id, '', d.rev, true]]);
  assert.equal(h.messages[0].edited_ts, e.edited_ts);
  await quiet([c], (x) => x.room === room || /wrote|was here/.test(x.text ?? ''), 'anything of the DM room');
});

// ---------------------------------------------------------------------------
// rooms

test('rooms lists the user\'s DM rooms with peer, members and last_id, online or not, after reconnects and a restart; never another pair\'s', async (t) => {
  const h = await restartable(t, { args: RATE });
  let s = h.s;
  const a1 = await tok(s, h.clients, 'alice', 'Alice');
  const b1 = await tok(s, h.clients, 'bob', 'Bob');
  const c = await tok(s, h.clients, 'carol', 'Carol', { rooms: '*' });
  const d = await tok(s, h.clients, 'dan', 'Dan');
  const ab = (await dm(a1, 'bob')).room;
  const cd = (await dm(c, 'dan')).room; // another pair, online and joined
  await send(c, cd, 'hi dan');
  await d.join(cd);
  const ac = (await dm(a1, 'carol')).room; // alice's second DM, with carol
  await send(a1, ac, 'hello carol'); // listed to carol once it has a message
  const m1 = await send(a1, ab, 'first');
  const entry = async (x, room) => {
    const list = await rooms(x);
    const es = list.filter((r) => r.name === room);
    assert.equal(es.length, 1, `${x.user.id}: ${room} listed ${es.length} times in ${JSON.stringify(list)}`);
    return es[0];
  };
  const dms = async (x) => (await rooms(x)).filter((r) => r.name.startsWith('dm-')).map((r) => r.name).sort();
  // A connection of bob that joined nothing sees the room; members counts connections joined now.
  const b2 = await tok(s, h.clients, 'bob', 'Bob');
  let e = await entry(b2, ab);
  assert.deepEqual([usr(e.peer), e.members, e.last_id], [{ id: 'alice', name: 'Alice' }, 1, m1.id]);
  await b1.join(ab);
  e = await entry(b2, ab);
  assert.equal(e.members, 2);
  const a2 = await tok(s, h.clients, 'alice', 'Alice');
  e = await entry(a2, ab);
  assert.deepEqual([usr(e.peer), e.members, e.last_id], [{ id: 'bob', name: 'Bob' }, 2, m1.id]);
  assert.deepEqual(usr((await entry(a2, ac)).peer), { id: 'carol', name: 'Carol' });
  // Each user sees its own DM rooms only, even when another pair's has members online.
  assert.deepEqual(await dms(a2), [ab, ac].sort());
  assert.deepEqual(await dms(b2), [ab]);
  assert.deepEqual(await dms(c), [ac, cd].sort());
  assert.deepEqual(await dms(d), [cd]);
  const e2 = await ask(a1, { type: 'edit', room: ab, id: m1.id, text: 'first!' });
  assert.equal(e2.type, 'edited');
  // Everyone leaves; a new connection still lists its DM rooms, with members 0.
  for (const x of h.clients.splice(0)) x.terminate();
  const a3 = await tok(s, h.clients, 'alice', 'Alice');
  for (let i = 0; (e = await entry(a3, ab)).members !== 0 && i < 100; i++) await sleep(50); // the closes land
  assert.deepEqual([usr(e.peer), e.members, e.last_id], [{ id: 'bob', name: 'Bob' }, 0, e2.rev], 'offline: listed, last_id is the rev');
  assert.deepEqual(await dms(a3), [ab, ac].sort());
  // After a restart too.
  s = await h.restart();
  const a4 = await tok(s, h.clients, 'alice', 'Alice');
  const b4 = await tok(s, h.clients, 'bob', 'Bob');
  const c4 = await tok(s, h.clients, 'carol', 'Carol', { rooms: '*' });
  const outsider = await tok(s, h.clients, 'olga', 'Olga', { rooms: '*' });
  e = await entry(a4, ab);
  assert.deepEqual([usr(e.peer), e.members, e.last_id], [{ id: 'bob', name: 'Bob' }, 0, e2.rev]);
  assert.deepEqual(usr((await entry(b4, ab)).peer), { id: 'alice', name: 'Alice' });
  assert.deepEqual(await dms(a4), [ab, ac].sort());
  assert.deepEqual(await dms(b4), [ab]);
  assert.deepEqual(await dms(c4), [ac, cd].sort());
  await a4.join(ab);
  await c4.join(cd);
  assert.deepEqual(await dms(outsider), [], 'an outsider sees no DM room, even with members online');
  assert.deepEqual(await dms(b4), [ab], 'bob does not see carol and dan\'s room');
});

// ---------------------------------------------------------------------------
// history and since

test('history and join with since in a DM room work as for rooms', async (t) => {
  const { s, clients } = await serverForTest(t, { args: RATE });
  const a = await tok(s, clients, 'alice', 'Alice');
  const b = await tok(s, clients, 'bob', 'Bob');
  const room = (await dm(a, 'bob')).room;
  const acks = [];
  for (let i = 0; i < 3; i++) {
    acks.push(await send(a, room, `a${i}`));
    acks.push(await send(b, room, `b${i}`)); // b never joined
  }
  const ids = acks.map((x) => x.id);
  assert.deepEqual([...ids].sort((x, y) => x - y), ids);
  for (const x of [a, b]) {
    const hh = await history(x, room);
    assert.deepEqual(hh.messages.map((m) => [m.id, m.text, m.user.id]),
      acks.map((k, i) => [k.id, `${i % 2 ? 'b' : 'a'}${i >> 1}`, i % 2 ? 'bob' : 'alice']));
    assert.equal(hh.has_more, false);
  }
  let hh = await history(b, room, { limit: 2 });
  assert.deepEqual([hh.messages.map((m) => m.id), hh.has_more], [ids.slice(4), true]);
  hh = await history(b, room, { before: ids[2], limit: 10 });
  assert.deepEqual([hh.messages.map((m) => m.id), hh.has_more], [ids.slice(0, 2), false]);
  hh = await history(b, room, { after: 0, limit: 4 });
  assert.deepEqual([hh.messages.map((m) => m.id), hh.has_more], [ids.slice(0, 4), true]);
  hh = await history(b, room, { after: ids[3] });
  assert.deepEqual([hh.messages.map((m) => m.id), hh.has_more], [ids.slice(4), false]);
  // dm again answers with the messages, as a join does.
  const jd = await dm(b, 'alice');
  assert.deepEqual(jd.messages.map((m) => m.id), ids);
  // Catch-up: bob goes away; alice edits, deletes and sends; bob's join since brings it all.
  const seen = ids[5];
  b.terminate();
  await b.closed;
  const e = await ask(a, { type: 'edit', room, id: ids[0], text: 'a0 edited' });
  const d = await ask(a, { type: 'delete', room, id: ids[2] });
  assert.deepEqual([e.type, d.type], ['edited', 'deleted']);
  const n1 = await send(a, room, 'new 1'), n2 = await send(a, room, 'new 2');
  const b2 = await tok(s, clients, 'bob', 'Bob');
  const j = await b2.join(room, { since: seen });
  assert.deepEqual(usr(j.peer), { id: 'alice', name: 'Alice' });
  assert.equal(j.complete, true);
  assert.deepEqual(j.messages.map((m) => [m.id, m.text]), [[n1.id, 'new 1'], [n2.id, 'new 2']]);
  assert.deepEqual(j.updates.map((m) => [m.id, m.text, m.rev, m.deleted ?? false]),
    [[ids[0], 'a0 edited', e.rev, false], [ids[2], '', d.rev, true]]);
  const j2 = await b2.join(room, { since: n2.id });
  assert.deepEqual([j2.messages, j2.updates, j2.complete], [[], [], true]);
});

// ---------------------------------------------------------------------------
// Threads

test('--threads 2: DM events reach every connection of both users on every loop exactly once, and no third user', async (t) => {
  const { s, clients } = await serverForTest(t, { args: [...RATE, '--threads', '2'] });
  /** Opens connections with make() until there are at least `n` and some on each loop;
   *  returns them by loop. */
  async function spread(make, n) {
    const by = [[], []];
    for (let i = 0; i < 64 && (by[0].length + by[1].length < n || !by[0].length || !by[1].length); i++) {
      const before = await loopConnections(s);
      const c = await make();
      const now = await loopConnections(s);
      const l = [0, 1].find((k) => now[k] === before[k] + 1 && now[1 - k] === before[1 - k]);
      assert.ok(l !== undefined, `cannot tell the loop: ${before} -> ${now}`);
      by[l].push(c);
    }
    assert.ok(by[0].length && by[1].length, `connections on both loops: ${by[0].length}, ${by[1].length}`);
    return by;
  }
  const per = await loopConnections(s);
  assert.equal(per.length, 2, 'two loops');
  const A = await spread(() => tok(s, clients, 'alice', 'Alice'), 6);
  const B = await spread(() => tok(s, clients, 'bob', 'Bob'), 6);
  const C = await spread(() => tok(s, clients, 'carol', 'Carol', { rooms: '*' }), 4);
  const pair = [...A[0], ...A[1], ...B[0], ...B[1]];
  const third = [...C[0], ...C[1]];
  for (const x of [A[1][0], B[0][0], C[0][0], C[1][0]]) await x.join('lobby');
  // alice asks on loop 0; bob joins on loop 1: presence crosses loops.
  const room = (await dm(A[0][0], 'bob')).room;
  await B[1][0].join(room);
  const p = await A[0][0].next(inRoom(room, 'presence'));
  assert.deepEqual([p.event, p.user.id], ['join', 'bob']);
  // A message from each side, each from an unjoined connection on the other loop.
  const m1 = await send(A[1][A[1].length - 1], room, 'from loop 1');
  const m2 = await send(B[0][B[0].length - 1], room, 'from loop 0');
  for (const m of [m1, m2]) await everyOnce(pair, (x) => x.type === 'message' && x.id === m.id, `message ${m.id}`);
  const e = await ask(A[0][0], { type: 'edit', room, id: m1.id, text: 'edited across loops' });
  assert.equal(e.type, 'edited', JSON.stringify(e));
  await everyOnce(pair.filter((x) => x !== A[0][0]), (x) => x.type === 'edited' && x.rev === e.rev, 'edited');
  const d = await ask(B[1][0], { type: 'delete', room, id: m2.id });
  assert.equal(d.type, 'deleted', JSON.stringify(d));
  await everyOnce(pair.filter((x) => x !== B[1][0]), (x) => x.type === 'deleted' && x.rev === d.rev, 'deleted');
  // typing from loop 1 reaches the joined connection on loop 0 only.
  await typingOk(B[1][0], room);
  assert.equal((await A[0][0].next(inRoom(room, 'typing'))).user.id, 'bob');
  await quiet(pair.filter((x) => x !== A[0][0]), (x) => x.room === room && (x.type === 'typing' || x.type === 'presence'), 'typing or presence');
  await quiet(third, (x) => x.room === room || /loop|across/.test(x.text ?? ''), 'anything of the DM room');
  // Many messages from both sides: every connection gets each once, in id order.
  const sent = [];
  for (let i = 0; i < 10; i++) sent.push((await send(pair[i % pair.length], room, `burst ${i}`)).id);
  const want = [...sent].sort((x, y) => x - y);
  for (const [k, x] of pair.entries()) {
    const ids = [];
    while (ids.length < want.length) ids.push((await x.next((m) => m.type === 'message' && m.room === room, T(5000))).id);
    assert.deepEqual(ids, want, `connection ${k}: every message once, in id order`);
  }
  await quiet(pair, (x) => x.type === 'message' && x.room === room, 'a duplicate');
});

test('dm takes from the send rate limit: a burst beyond it is rate_limited, sends share the bucket', async (t) => {
  const { s, clients } = await serverForTest(t, { args: ['--rate', '0.001', '--burst', '3'] });
  const a = await tok(s, clients, 'alice', 'Alice');
  await tok(s, clients, 'bob', 'Bob');
  const first = await dm(a, 'bob');
  assert.match(first.room, DM_RE);
  a.send({ type: 'send', room: first.room, text: 'one', client_id: cid() });
  assert.equal((await a.next('ack')).room, first.room);
  assert.equal((await dm(a, 'bob')).room, first.room, 'the third take of a burst of 3');
  await refused(a, { type: 'dm', user: 'bob' }, 'rate_limited', 'the fourth:');
  await refused(a, { type: 'send', room: first.room, text: 'x', client_id: cid() }, 'rate_limited', 'a send after:');
  // The general bucket is another one: a history still goes through.
  assert.equal((await ask(a, { type: 'history', room: first.room })).type, 'history');
});
