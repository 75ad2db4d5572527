// Protocol 1.1, read markers and search (spec: "Read markers and unread
// counts", "Search", "Direct messages", "Precise rules for 1.1").
//
// read {room, id}: a forward-only marker per user id and room, stored at
// most at the room's highest id/rev; answered to the requester with its
// ref and, when it moved, echoed without ref to every other connection of
// the same user on every loop, and to nobody else. joined carries `read`;
// rooms entries carry `read` and `unread` (not deleted, not own, up to
// 1000) and rooms lists the user's marker rooms across reconnects and
// restarts, never one the user may not read.
//
// search {q, room?, before?, limit}: newest first, every word, "phrases",
// prefix*, case and diacritics ignored, FTS syntax only text; scope: the
// rooms the user may read plus its DM rooms, never anyone else's.
//
// The security tests come first.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import {
  connect, guest, tokenUser, mintToken, serverForTest, startServer, httpGet, sendMany, waitFor, sleep, T, everyOnce, quiet,
} from './harness.mjs';

const RATE = ['--rate', '100000', '--burst', '100000'];
const REPLY = {
  dm: 'joined', join: 'joined', leave: 'left', send: 'ack', history: 'history',
  edit: 'edited', delete: 'deleted', rooms: 'rooms', read: 'read', search: 'search',
};
let cidSeq = 0;
const cid = () => `rs-c${++cidSeq}`;
const madeUp = () => `dm-${randomBytes(16).toString('hex')}`;

// ---------------------------------------------------------------------------
// Helpers

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
async function again(s, clients, c, claims = c.claims) {
  const n = await connect(s.url);
  clients.push(n);
  if (claims) await n.hello({ token: mintToken(claims) });
  else await n.hello({ name: c.user.name, resume: c.welcome.resume });
  assert.equal(n.user.id, c.user.id, 'the second connection is the same user');
  n.claims = claims;
  return n;
}

const ask = (c, obj) => c.request(obj, REPLY[obj.type]);

async function refused(c, obj, code, what = '') {
  const r = await ask(c, obj);
  assert.deepEqual([r.type, r.code], ['error', code], `${what} ${JSON.stringify(obj)} answered ${JSON.stringify(r)}`);
  return r;
}

async function dm(c, user) {
  const j = await ask(c, { type: 'dm', user });
  assert.equal(j.type, 'joined', `dm ${user} answered ${JSON.stringify(j)}`);
  return j;
}

async function send(c, room, text) {
  const a = await ask(c, { type: 'send', room, text, client_id: cid() });
  assert.equal(a.type, 'ack', `send to ${room} answered ${JSON.stringify(a)}`);
  return a;
}

async function rooms(c) {
  const r = await ask(c, { type: 'rooms' });
  assert.equal(r.type, 'rooms', JSON.stringify(r));
  return r.rooms;
}

/** The one `rooms` entry for room (asserts there is exactly one). */
async function entry(c, room) {
  const list = await rooms(c);
  const es = list.filter((r) => r.name === room);
  assert.equal(es.length, 1, `${c.user.id}: ${room} listed ${es.length} times in ${JSON.stringify(list)}`);
  return es[0];
}

const names = async (c) => (await rooms(c)).map((r) => r.name).sort();

/** read that must be answered `read`; checks the answer's exact shape; resolves the stored id. */
async function mark(c, room, id) {
  const ref = `rd${++cidSeq}`;
  const r = await c.request({ type: 'read', room, id, ref }, 'read');
  assert.deepEqual(r, { type: 'read', room, id: r.id, ref }, `read ${room} ${id} answered ${JSON.stringify(r)}`);
  assert.ok(Number.isInteger(r.id), JSON.stringify(r));
  return r.id;
}

/** search that must be answered `search`; checks the answer's shape; resolves it. */
async function search(c, fields) {
  const ref = `s${++cidSeq}`;
  const r = await c.request({ type: 'search', ...fields, ref }, 'search');
  assert.equal(r.type, 'search', `search ${JSON.stringify(fields)} answered ${JSON.stringify(r)}`);
  const keys = ['type', 'q', ...(fields.room !== undefined ? ['room'] : []), 'messages', 'has_more', 'ref'];
  assert.deepEqual(Object.keys(r).sort(), keys.sort(), `search answer fields: ${JSON.stringify(r)}`);
  assert.equal(r.q, fields.q);
  if (fields.room !== undefined) assert.equal(r.room, fields.room);
  assert.equal(typeof r.has_more, 'boolean');
  for (const m of r.messages) assert.equal(typeof m.room, 'string', `every result carries room: ${JSON.stringify(m)}`);
  const ids = r.messages.map((m) => m.id);
  assert.deepEqual(ids, [...ids].sort((x, y) => y - x), 'newest first');
  assert.equal(new Set(ids).size, ids.length, 'each message once');
  return r;
}

/** The ids a search finds. */
const found = async (c, fields) => (await search(c, fields)).messages.map((m) => m.id);
const desc = (...ids) => ids.flat().sort((x, y) => y - x);


const isRead = (m) => m.type === 'read';

/** A server handle that survives restarts; stopped (exit 0) when the test ends. */
async function restartable(t, opts) {
  const h = { s: await startServer(opts), clients: [] };
  h.restart = async (more = {}) => {
    for (const c of h.clients.splice(0)) c.terminate();
    h.s = await h.s.restart(more);
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

/** Waits until every connection of a user that was closed is gone from the rooms' members. */
async function membersGone(c, room) {
  for (let i = 0; i < 100; i++) {
    const e = (await rooms(c)).find((r) => r.name === room);
    if (!e || e.members === 0) return;
    await sleep(50);
  }
  throw new Error(`${room} still has members`);
}

// ===========================================================================
// Security

test('security: a token with rooms:["a"] never finds, marks or lists room b; search or read of b is forbidden', async (t) => {
  const { s, clients } = await serverForTest(t, { args: RATE });
  const w = await tok(s, clients, 'writer', 'Writer', { rooms: '*' });
  for (const r of ['a', 'b', 'c']) await w.join(r);
  const ma = await send(w, 'a', 'zebra crossing alpha');
  const mb = await send(w, 'b', 'zebra crossing bravo');
  const mc = await send(w, 'c', 'zebra crossing charlie');
  const n = await tok(s, clients, 'narrow', 'Narrow', { rooms: ['a'] });
  const two = await tok(s, clients, 'two', 'Two', { rooms: ['a', 'c'] });
  const wide = await tok(s, clients, 'wide', 'Wide', { rooms: '*' });
  const noclaim = await tok(s, clients, 'noclaim', 'No claim');
  for (const q of ['zebra', 'crossing', 'zebra crossing', '"zebra crossing"', 'zeb*', 'ZEBRA', 'cross* zebra'])
    assert.deepEqual(await found(n, { q }), [ma.id], `narrow token, q ${q}`);
  assert.deepEqual(await found(n, { q: 'bravo' }), [], 'the word only room b has');
  assert.deepEqual(await found(n, { q: 'brav*' }), []);
  assert.deepEqual(await found(two, { q: 'zebra' }), [mc.id, ma.id]);
  assert.deepEqual(await found(wide, { q: 'zebra' }), [mc.id, mb.id, ma.id]);
  assert.deepEqual(await found(noclaim, { q: 'zebra' }), [mc.id, mb.id, ma.id], 'no rooms claim: every room');
  // Naming the room does not help.
  for (const room of ['b', 'c', 'nosuchroom']) {
    await refused(n, { type: 'search', q: 'zebra', room }, 'forbidden', 'narrow token:');
    await refused(n, { type: 'read', room, id: mb.id }, 'forbidden', 'narrow token:');
  }
  await refused(two, { type: 'search', q: 'bravo', room: 'b' }, 'forbidden');
  await refused(two, { type: 'read', room: 'b', id: 1 }, 'forbidden');
  assert.deepEqual(await found(n, { q: 'zebra', room: 'a' }), [ma.id]);
  // The claim does not narrow the user's own DMs: a DM message is found, with or without room.
  const nw = (await dm(n, 'writer')).room;
  const md = await send(w, nw, 'zebra by direct message');
  assert.deepEqual(await found(n, { q: 'zebra' }), [md.id, ma.id]);
  assert.deepEqual(await found(n, { q: 'zebra', room: nw }), [md.id]);
  assert.deepEqual(await found(two, { q: 'zebra' }), [mc.id, ma.id], 'another narrow token: not their DM');
  assert.deepEqual(await found(wide, { q: 'direct' }), []);
  await refused(wide, { type: 'search', q: 'zebra', room: nw }, 'forbidden');
  assert.deepEqual(await found(wide, { q: 'zebra', room: 'b' }), [mb.id]);
  // rooms never lists b or c for the narrow token, though the writer is in them.
  assert.deepEqual(await names(n), [nw, 'a'].sort(), 'narrow: a and its DM, though the writer is in b and c');
  await mark(n, 'a', ma.id);
  assert.deepEqual(await names(n), [nw, 'a'].sort());
  assert.deepEqual(await names(two), ['a', 'c']);
  assert.deepEqual(await names(wide), ['a', 'b', 'c']);
  // The forbidden reads stored nothing: a later token allowing b has no marker there.
  n.terminate();
  const nb = await tok(s, clients, 'narrow', 'Narrow', { rooms: ['a', 'b'] });
  const e = await entry(nb, 'b');
  assert.deepEqual([e.read, e.unread], [0, 1], 'the refused read of b stored no marker');
  assert.equal((await nb.join('b')).read, 0);
  assert.equal((await entry(nb, 'a')).read, ma.id);
});

test('security: guests with --guest-rooms find and mark only those rooms (and their own DMs)', async (t) => {
  const { s, clients } = await serverForTest(t, { args: [...RATE, '--guest-rooms', 'pub,open-*'] });
  const w = await tok(s, clients, 'writer', 'Writer', { rooms: '*' });
  const sent = {};
  for (const r of ['pub', 'open-1', 'openx', 'secret', 'xopen-1', 'pubs']) {
    await w.join(r);
    sent[r] = (await send(w, r, `walrus in ${r}`)).id;
  }
  const g = await gst(s, clients, 'Gwen');
  const h = await gst(s, clients, 'Hank');
  const k = await gst(s, clients, 'Kim');
  const gh = (await dm(g, h.user.id)).room;
  const d1 = await send(h, gh, 'walrus between guests');
  assert.deepEqual(await found(g, { q: 'walrus' }), [d1.id, sent['open-1'], sent.pub]);
  assert.deepEqual(await found(h, { q: 'walrus' }), [d1.id, sent['open-1'], sent.pub]);
  assert.deepEqual(await found(k, { q: 'walrus' }), [sent['open-1'], sent.pub], 'a third guest: not their DM');
  assert.deepEqual(await found(k, { q: 'guests' }), []);
  assert.deepEqual(await found(w, { q: 'walrus' }), desc(Object.values(sent)), 'the token user: every regular room, not the DM');
  for (const room of ['secret', 'openx', 'xopen-1', 'pubs']) {
    for (const c of [g, k]) {
      await refused(c, { type: 'search', q: 'walrus', room }, 'forbidden', `guest, ${room}:`);
      await refused(c, { type: 'read', room, id: sent[room] }, 'forbidden', `guest, ${room}:`);
    }
  }
  await refused(k, { type: 'search', q: 'walrus', room: gh }, 'forbidden', 'third guest, their DM:');
  await refused(k, { type: 'read', room: gh, id: d1.id }, 'forbidden', 'third guest, their DM:');
  assert.deepEqual(await found(g, { q: 'walrus', room: 'open-1' }), [sent['open-1']]);
  assert.deepEqual(await found(g, { q: 'walrus', room: gh }), [d1.id]);
  assert.equal(await mark(g, 'pub', sent.pub), sent.pub);
  assert.equal(await mark(g, gh, d1.id), d1.id);
  assert.deepEqual(await names(k), ['open-1', 'pub'], 'the guest sees only the rooms it may read');
  assert.deepEqual(await names(g), [gh, 'open-1', 'pub'].sort());
});

test('security: a third user never finds, marks or lists a pair\'s DM; search room= another pair\'s DM is forbidden', async (t) => {
  const { s, clients } = await serverForTest(t, { args: RATE });
  const a = await tok(s, clients, 'alice', 'Alice');
  const b = await tok(s, clients, 'bob', 'Bob');
  const c = await tok(s, clients, 'carol', 'Carol', { rooms: '*' });
  const d = await tok(s, clients, 'dan', 'Dan');
  const o = await tok(s, clients, 'olga', 'Olga', { rooms: '*' });
  const g = await gst(s, clients, 'Gil');
  const ab = (await dm(a, 'bob')).room, cd = (await dm(c, 'dan')).room, ac = (await dm(a, 'carol')).room;
  await c.join('lobby');
  const m1 = await send(a, ab, 'quokka secret for bob');
  const m2 = await send(b, ab, 'quokka reply from bob');
  const m3 = await send(c, cd, 'quokka carol to dan');
  const m4 = await send(a, ac, 'quokka alice to carol');
  const m5 = await send(c, 'lobby', 'quokka in public');
  assert.deepEqual(await found(a, { q: 'quokka' }), desc(m1.id, m2.id, m4.id, m5.id));
  assert.deepEqual(await found(b, { q: 'quokka' }), desc(m1.id, m2.id, m5.id));
  assert.deepEqual(await found(c, { q: 'quokka' }), desc(m3.id, m4.id, m5.id));
  assert.deepEqual(await found(d, { q: 'quokka' }), desc(m3.id, m5.id));
  assert.deepEqual(await found(o, { q: 'quokka' }), [m5.id], 'an outsider with rooms:"*": no DM');
  assert.deepEqual(await found(g, { q: 'quokka' }), [m5.id], 'a guest: no DM');
  for (const x of [c, d, o, g]) {
    assert.deepEqual(await found(x, { q: 'secret' }), [], `${x.user.id}: the pair's word`);
    assert.deepEqual(await found(x, { q: 'bob' }), [], `${x.user.id}: the pair's word`);
    await refused(x, { type: 'search', q: 'quokka', room: ab }, 'forbidden', `${x.user.id}:`);
    await refused(x, { type: 'read', room: ab, id: m2.id }, 'forbidden', `${x.user.id}:`);
  }
  for (const x of [a, b, c, g]) {
    await refused(x, { type: 'search', q: 'quokka', room: madeUp() }, 'forbidden', `${x.user.id}, made-up DM:`);
    await refused(x, { type: 'read', room: madeUp(), id: 1 }, 'forbidden', `${x.user.id}, made-up DM:`);
  }
  await refused(b, { type: 'search', q: 'quokka', room: ac }, 'forbidden', 'bob in alice and carol\'s:');
  await refused(b, { type: 'search', q: 'quokka', room: cd }, 'forbidden');
  // The pair itself searches its room by name.
  assert.deepEqual(await found(b, { q: 'quokka', room: ab }), [m2.id, m1.id]);
  const r = await search(a, { q: 'secret', room: ab });
  assert.deepEqual(r.messages.map((m) => [m.room, m.id, m.text, m.user.id]), [[ab, m1.id, 'quokka secret for bob', 'alice']]);
  // Nothing of ab in anybody else's rooms, markers or not.
  await mark(a, ab, m2.id);
  await mark(b, ab, m1.id);
  for (const x of [c, d, o, g]) assert.ok(!(await names(x)).includes(ab), `${x.user.id} must not see ${ab}`);
  assert.deepEqual((await names(c)).filter((n) => n.startsWith('dm-')), [ac, cd].sort());
  await quiet([c, d, o, g], (m) => m.room === ab || /secret|bob/.test(m.text ?? ''), 'anything of the pair\'s room');
});

test('security: read markers reach only the same user\'s connections, never another user (rooms and DMs)', async (t) => {
  const { s, clients } = await serverForTest(t, { args: RATE });
  const a1 = await tok(s, clients, 'alice', 'Alice', { rooms: '*' });
  const a2 = await again(s, clients, a1);
  const b1 = await tok(s, clients, 'bob', 'Bob', { rooms: '*' });
  const b2 = await again(s, clients, b1);
  const g = await gst(s, clients, 'Gus');
  const c = await tok(s, clients, 'carol', 'Carol', { rooms: '*' });
  for (const x of [a1, a2, b1, b2, g, c]) await x.join('lobby');
  const m = [];
  for (let i = 0; i < 3; i++) m.push(await send(b1, 'lobby', `lobby ${i}`));
  const ab = (await dm(a1, 'bob')).room;
  const d1 = await send(b1, ab, 'dm one');
  const others = [b1, b2, g, c];
  assert.equal(await mark(a1, 'lobby', m[1].id), m[1].id);
  const [e] = await everyOnce([a2], isRead, 'the echo');
  assert.deepEqual(e, { type: 'read', room: 'lobby', id: m[1].id });
  await quiet([a1, ...others], isRead, 'alice\'s marker');
  assert.equal(await mark(a2, ab, d1.id), d1.id);
  const [e2] = await everyOnce([a1], isRead, 'the echo of the DM marker');
  assert.deepEqual(e2, { type: 'read', room: ab, id: d1.id });
  await quiet([a2, ...others], isRead, 'alice\'s DM marker');
  // Markers are per user: bob's and the guest's are their own.
  assert.deepEqual([(await entry(b2, 'lobby')).read, (await entry(b2, ab)).read], [0, 0]);
  const ge = await entry(g, 'lobby');
  assert.deepEqual([ge.read, ge.unread], [0, 3]);
  assert.equal((await g.join('lobby')).read, 0);
  assert.equal((await c.join('lobby')).read, 0);
  assert.equal(await mark(b2, 'lobby', m[0].id), m[0].id);
  await everyOnce([b1], isRead, 'bob\'s echo');
  await quiet([a1, a2, g, c, b2], isRead, 'bob\'s marker');
  assert.equal((await entry(a1, 'lobby')).read, m[1].id, 'bob\'s marker did not move alice\'s');
  assert.equal(await mark(g, 'lobby', m[2].id), m[2].id);
  await quiet([a1, a2, b1, b2, c], isRead, 'the guest\'s marker');
  assert.deepEqual([(await entry(a1, 'lobby')).read, (await entry(b1, 'lobby')).read], [m[1].id, m[0].id]);
  // Two guests with the same name are two users.
  const g2 = await gst(s, clients, 'Gus');
  assert.notEqual(g2.user.id, g.user.id);
  assert.equal((await entry(g2, 'lobby')).read, 0);
});

test('security: rooms never reveals another user\'s rooms through markers, nor a room a narrowed token may not read', async (t) => {
  const { s, clients } = await serverForTest(t, { args: RATE });
  const a = await tok(s, clients, 'alice', 'Alice', { rooms: '*' });
  await a.join('hidden');
  const h1 = await send(a, 'hidden', 'nobody else knows');
  await mark(a, 'hidden', h1.id);
  a.terminate();
  await a.closed;
  const b = await tok(s, clients, 'bob', 'Bob', { rooms: '*' });
  await membersGone(b, 'hidden');
  assert.ok(!(await names(b)).includes('hidden'), 'another user does not see alice\'s marker room');
  const g = await gst(s, clients, 'Gia');
  assert.ok(!(await names(g)).includes('hidden'));
  // Alice again: listed, offline, with her marker.
  const a2 = await tok(s, clients, 'alice', 'Alice', { rooms: '*' });
  const e = await entry(a2, 'hidden');
  assert.deepEqual([e.members, e.last_id, e.read, e.unread], [0, h1.id, h1.id, 0]);
  a2.terminate();
  // Alice with a token that no longer allows the room: not listed, not readable.
  const a3 = await tok(s, clients, 'alice', 'Alice', { rooms: ['other'] });
  assert.ok(!(await names(a3)).includes('hidden'), JSON.stringify(await rooms(a3)));
  await refused(a3, { type: 'read', room: 'hidden', id: h1.id }, 'forbidden');
  await refused(a3, { type: 'search', q: 'nobody', room: 'hidden' }, 'forbidden');
  assert.deepEqual(await found(a3, { q: 'nobody' }), []);
});

// ===========================================================================
// read

test('read: exact answer with ref, no join needed, forward only, above the highest stored as the highest (id or rev)', async (t) => {
  const { s, clients } = await serverForTest(t, { args: RATE });
  const b = await tok(s, clients, 'bob', 'Bob', { rooms: '*' });
  await b.join('r1');
  const m = [];
  for (let i = 0; i < 3; i++) m.push(await send(b, 'r1', `r1 ${i}`));
  const a = await tok(s, clients, 'alice', 'Alice', { rooms: '*' }); // joins nothing
  const a2 = await again(s, clients, a);
  assert.equal(await mark(a, 'r1', m[1].id), m[1].id);
  await everyOnce([a2], (x) => isRead(x) && x.id === m[1].id && x.ref === undefined, 'the echo');
  // Lower or equal: the stored marker, to the requester only.
  assert.equal(await mark(a, 'r1', m[0].id), m[1].id);
  assert.equal(await mark(a, 'r1', 0), m[1].id);
  assert.equal(await mark(a, 'r1', m[1].id), m[1].id);
  await quiet([a2, b], isRead, 'a marker that did not move');
  assert.equal(await mark(a2, 'r1', m[2].id), m[2].id);
  assert.deepEqual((await everyOnce([a], isRead, 'the echo'))[0], { type: 'read', room: 'r1', id: m[2].id });
  // Above the highest: stored as the highest.
  assert.equal(await mark(a, 'r1', m[2].id + 1), m[2].id);
  assert.equal(await mark(a, 'r1', 1e15), m[2].id);
  assert.equal(await mark(a, 'r1', 2 ** 53 - 1), m[2].id);
  await quiet([a2], isRead, 'an echo when nothing moved');
  // An edit's rev is the room's highest now.
  const e = await ask(b, { type: 'edit', room: 'r1', id: m[0].id, text: 'r1 0 edited' });
  assert.equal(e.type, 'edited', JSON.stringify(e));
  assert.equal(await mark(a, 'r1', 1e15), e.rev);
  let en = await entry(a, 'r1');
  assert.deepEqual([en.last_id, en.read, en.unread], [e.rev, e.rev, 0]);
  // Messages elsewhere do not count: another room's newer id is not r1's highest.
  await b.join('r2');
  const other = await send(b, 'r2', 'elsewhere');
  assert.equal(await mark(a, 'r1', other.id), e.rev);
  // A room with no messages: stored as 0.
  assert.equal(await mark(a, 'empty-room', 5), 0);
  // joined carries the marker; a user without one gets 0.
  assert.equal((await a.join('r1')).read, e.rev);
  assert.equal((await b.join('r1')).read, 0);
  const c = await tok(s, clients, 'carol', 'Carol');
  assert.equal((await c.join('r1')).read, 0);
  en = await entry(c, 'r1');
  assert.deepEqual([en.read, en.unread], [0, 3]);
});

test('read: bad ids and rooms are refused (bad_request, bad_room) and store nothing', async (t) => {
  const { s, clients } = await serverForTest(t, { args: RATE });
  const b = await tok(s, clients, 'bob', 'Bob');
  await b.join('r');
  const m = await send(b, 'r', 'one');
  const a = await tok(s, clients, 'alice', 'Alice');
  const a2 = await again(s, clients, a);
  for (const id of [-1, -0.5, 1.5, m.id + 0.5, '5', String(m.id), null, true, false, [], [m.id], {}, { id: m.id }])
    await refused(a, { type: 'read', room: 'r', id }, 'bad_request', `id ${JSON.stringify(id)}:`);
  await refused(a, { type: 'read', room: 'r' }, 'bad_request', 'no id:');
  await refused(a, { type: 'read', id: m.id }, 'bad_request', 'no room:');
  for (const room of [5, null, [], {}]) await refused(a, { type: 'read', room, id: m.id }, 'bad_request', 'room:');
  for (const room of ['', 'Bad', 'a b', 'x'.repeat(65), '-x', 'dm-', 'dm-general', `dm-${'A'.repeat(32)}`])
    await refused(a, { type: 'read', room, id: m.id }, 'bad_room', `room ${room}:`);
  await quiet([a, a2], isRead, 'a read after refusals');
  const e = await entry(a, 'r');
  assert.deepEqual([e.read, e.unread], [0, 1], 'nothing stored');
  assert.ok(!(await names(a)).some((n) => n !== 'r'), JSON.stringify(await rooms(a)));
  assert.equal((await a.join('r')).read, 0);
});

test('read: ids up to 2^53 - 1 are taken (above the highest: stored as it); beyond, bad_request', async (t) => {
  // README: every id field is an integer JSON numbers hold exactly.
  const { s, clients } = await serverForTest(t, { args: RATE });
  const a = await tok(s, clients, 'alice', 'Alice');
  await a.join('big-ids');
  const m = await send(a, 'big-ids', 'one');
  const got = [];
  for (const id of [2 ** 53 - 1, 2 ** 53, 2 ** 63, 1e20, 1e300]) {
    const r = await a.request({ type: 'read', room: 'big-ids', id }, 'read');
    got.push([id, r.type === 'read' ? r.id : r.code]);
  }
  assert.deepEqual(got, [[2 ** 53 - 1, m.id], [2 ** 53, 'bad_request'], [2 ** 63, 'bad_request'],
    [1e20, 'bad_request'], [1e300, 'bad_request']]);
});

test('read takes from the general request limit, not the send bucket', async (t) => {
  const { s, clients } = await serverForTest(t, { args: ['--rate', '0.001', '--burst', '2'] });
  const a = await tok(s, clients, 'alice', 'Alice');
  await a.join('r');
  const m1 = await send(a, 'r', 'one'); // one of the two sends
  const b = await tok(s, clients, 'bob', 'Bob');
  for (let i = 0; i < 30; i++) assert.equal(await mark(b, 'r', m1.id), m1.id); // far beyond the send burst
  for (let i = 0; i < 30; i++) assert.equal(await mark(a, 'r', m1.id), m1.id);
  const m2 = await send(a, 'r', 'two'); // the second send is still there
  await refused(a, { type: 'send', room: 'r', text: 'three', client_id: cid() }, 'rate_limited', 'the third send:');
  // With the send bucket empty, reads still go through.
  assert.equal(await mark(a, 'r', m2.id), m2.id);
  // The general limit (100 a second) applies to read: a pipelined burst meets it.
  // A frame is charged when the server reads it, and reading waits for the
  // commits of earlier reads: 300 leaves room for slow disks.
  await sleep(1100);
  const refs = [];
  for (let i = 0; i < 300; i++) {
    const ref = `burst${i}`;
    refs.push(ref);
    b.send({ type: 'read', room: 'r', id: m2.id, ref });
  }
  const answers = [];
  for (const ref of refs) answers.push(await b.next((x) => x.ref === ref, T(10000)));
  const kinds = answers.map((x) => (x.type === 'read' ? 'read' : x.code));
  assert.ok(kinds.includes('rate_limited'), `300 reads at once: ${JSON.stringify(kinds.slice(-10))}`);
  assert.deepEqual([...new Set(kinds)].sort(), ['rate_limited', 'read'], JSON.stringify([...new Set(kinds)]));
  assert.ok(kinds.filter((k) => k === 'read').length >= 90, 'about the first hundred pass');
});

// ---------------------------------------------------------------------------
// unread

test('unread: messages above the marker, not own (any connection), not deleted; edits add none; DMs too', async (t) => {
  const { s, clients } = await serverForTest(t, { args: RATE });
  const a = await tok(s, clients, 'alice', 'Alice', { rooms: '*' });
  const a2 = await again(s, clients, a);
  const b = await tok(s, clients, 'bob', 'Bob', { rooms: '*' });
  for (const x of [a, a2, b]) await x.join('u');
  const b1 = await send(b, 'u', 'b1'), b2 = await send(b, 'u', 'b2'), b3 = await send(b, 'u', 'b3');
  const am1 = await send(a, 'u', 'a1'), am2 = await send(a2, 'u', 'a2');
  const ua = async () => { const e = await entry(a, 'u'); return [e.read, e.unread]; };
  const ub = async () => { const e = await entry(b, 'u'); return [e.read, e.unread]; };
  assert.deepEqual(await ua(), [0, 3], 'own messages, from either connection, are not unread');
  assert.deepEqual(await ub(), [0, 2]);
  const d = await ask(b, { type: 'delete', room: 'u', id: b2.id });
  assert.equal(d.type, 'deleted');
  assert.deepEqual(await ua(), [0, 2], 'a deleted message is not unread');
  await mark(a, 'u', b1.id);
  assert.deepEqual(await ua(), [b1.id, 1]);
  const e = await ask(b, { type: 'edit', room: 'u', id: b1.id, text: 'b1 edited' });
  assert.equal(e.type, 'edited');
  assert.deepEqual(await ua(), [b1.id, 1], 'an edit of a read message adds nothing');
  const e3 = await ask(b, { type: 'edit', room: 'u', id: b3.id, text: 'b3 edited' });
  assert.equal(e3.type, 'edited');
  assert.deepEqual(await ua(), [b1.id, 1], 'an edit of an unread message counts it once');
  assert.equal(await mark(a2, 'u', am2.id), am2.id);
  assert.deepEqual(await ua(), [am2.id, 0]);
  const b4 = await send(b, 'u', 'b4');
  assert.deepEqual(await ua(), [am2.id, 1]);
  assert.equal((await entry(a, 'u')).last_id, b4.id);
  await ask(b, { type: 'delete', room: 'u', id: b4.id });
  assert.deepEqual(await ua(), [am2.id, 0]);
  await mark(b, 'u', am1.id);
  assert.deepEqual(await ub(), [am1.id, 1], 'bob: a2 is above his marker');
  const g = await gst(s, clients, 'Gale');
  const ge = await entry(g, 'u');
  assert.deepEqual([ge.read, ge.unread], [0, 4], 'b1, b3, a1, a2');
  // A DM room's entry carries read and unread too.
  const ab = (await dm(a, 'bob')).room;
  const x1 = await send(b, ab, 'x1'), x2 = await send(b, ab, 'x2');
  await send(a, ab, 'x3');
  let de = await entry(a2, ab);
  assert.deepEqual([de.read, de.unread, de.peer.id], [0, 2, 'bob']);
  await mark(a2, ab, x1.id);
  de = await entry(a, ab);
  assert.deepEqual([de.read, de.unread], [x1.id, 1]);
  assert.equal((await dm(a, 'bob')).read, x1.id, 'dm carries read');
  assert.equal((await a2.join(ab)).read, x1.id, 'join of a DM room carries read');
  assert.equal((await dm(b, 'alice')).read, 0);
  void x2;
});

test('unread counts up to 1000: 1005 messages', async (t) => {
  const { s, clients } = await serverForTest(t, { args: RATE });
  const b = await tok(s, clients, 'bob', 'Bob');
  await b.join('big');
  const acks = await sendMany(b, 'big', 1005, { prefix: 'big', text: (i) => `big ${i}` });
  const ids = acks.map((x) => x.id);
  const a = await tok(s, clients, 'alice', 'Alice');
  const ua = async () => { const e = await entry(a, 'big'); return [e.last_id, e.read, e.unread]; };
  const last = ids[1004];
  assert.deepEqual(await ua(), [last, 0, 1000], '1005 unread: 1000');
  assert.deepEqual([(await entry(b, 'big')).unread], [0], 'the sender has none');
  await mark(a, 'big', ids[3]);
  assert.deepEqual(await ua(), [last, ids[3], 1000], '1001 unread: 1000');
  await mark(a, 'big', ids[4]);
  assert.deepEqual(await ua(), [last, ids[4], 1000], 'exactly 1000');
  await mark(a, 'big', ids[5]);
  assert.deepEqual(await ua(), [last, ids[5], 999]);
  await mark(a, 'big', ids[1000]);
  assert.deepEqual(await ua(), [last, ids[1000], 4]);
  // Deletes below the cap count.
  for (const id of ids.slice(1001, 1003)) assert.equal((await ask(b, { type: 'delete', room: 'big', id })).type, 'deleted');
  const e = await entry(a, 'big');
  assert.deepEqual([e.read, e.unread], [ids[1000], 2]);
  await mark(a, 'big', 1e15);
  assert.deepEqual((await entry(a, 'big')).unread, 0);
});

// ---------------------------------------------------------------------------
// Across connections, reconnects, restarts, loops

test('markers: the echo reaches every other connection of the user once, without ref; later connections see the marker', async (t) => {
  const { s, clients } = await serverForTest(t, { args: RATE });
  const g1 = await gst(s, clients, 'Gem'); // a guest: its connections share the id through resume
  const g2 = await again(s, clients, g1), g3 = await again(s, clients, g1);
  const w = await tok(s, clients, 'writer', 'Writer');
  await w.join('e');
  const m = [];
  for (let i = 0; i < 4; i++) m.push(await send(w, 'e', `e ${i}`));
  await g2.join('e');
  assert.equal(await mark(g1, 'e', m[1].id), m[1].id);
  for (const x of await everyOnce([g2, g3], isRead, 'the echo')) assert.deepEqual(x, { type: 'read', room: 'e', id: m[1].id });
  await quiet([g1, w], isRead, 'the requester\'s second copy or a stranger\'s');
  assert.equal(await mark(g3, 'e', m[0].id), m[1].id, 'lower: the stored marker');
  await quiet([g1, g2, g3], isRead, 'an echo of a marker that did not move');
  assert.equal(await mark(g3, 'e', 1e12), m[3].id);
  for (const x of await everyOnce([g1, g2], isRead, 'the echo')) assert.deepEqual(x, { type: 'read', room: 'e', id: m[3].id });
  const g4 = await again(s, clients, g1);
  assert.equal((await g4.join('e')).read, m[3].id);
  const e = await entry(g4, 'e');
  assert.deepEqual([e.read, e.unread], [m[3].id, 0]);
  // Reconnect: all gone, a new connection lists the room (offline) with its marker.
  for (const x of [g1, g2, g3, g4, w]) x.terminate();
  await g1.closed;
  const g5 = await again(s, clients, g1);
  await membersGone(g5, 'e');
  const e5 = await entry(g5, 'e');
  assert.deepEqual([e5.members, e5.last_id, e5.read, e5.unread], [0, m[3].id, m[3].id, 0]);
});

test('markers and rooms survive a restart (token users and guests with resume); a narrowed --guest-rooms hides the room', async (t) => {
  const h = await restartable(t, { args: [...RATE, '--guest-rooms', 'pub*'] });
  let s = h.s;
  const w = await tok(s, h.clients, 'writer', 'Writer', { rooms: '*' });
  for (const r of ['pub1', 'pub2', 'priv']) await w.join(r);
  const p1 = [await send(w, 'pub1', 'p1 a'), await send(w, 'pub1', 'p1 b'), await send(w, 'pub1', 'p1 c')];
  const p2 = [await send(w, 'pub2', 'p2 a'), await send(w, 'pub2', 'p2 b')];
  const q1 = await send(w, 'priv', 'priv a');
  const a = await tok(s, h.clients, 'alice', 'Alice', { rooms: '*' });
  await mark(a, 'pub1', p1[0].id);
  await mark(a, 'priv', q1.id);
  const g = await gst(s, h.clients, 'Gert');
  const gid = g.user.id, resume = g.welcome.resume;
  await mark(g, 'pub1', p1[1].id);
  await mark(g, 'pub2', p2[0].id);
  const ab = (await dm(a, gid)).room;
  const x1 = await send(g, ab, 'dm from the guest');
  const x2 = await send(g, ab, 'dm again');
  await mark(a, ab, x1.id);
  s = await h.restart();
  const a2 = await tok(s, h.clients, 'alice', 'Alice', { rooms: '*' });
  const view = async (c, room) => { const e = await entry(c, room); return [e.members, e.last_id, e.read, e.unread]; };
  assert.deepEqual(await view(a2, 'pub1'), [0, p1[2].id, p1[0].id, 2]);
  assert.deepEqual(await view(a2, 'priv'), [0, q1.id, q1.id, 0]);
  assert.deepEqual(await view(a2, ab), [0, x2.id, x1.id, 1]);
  assert.deepEqual(await names(a2), [ab, 'priv', 'pub1'].sort(), 'only alice\'s marker and DM rooms');
  assert.equal((await a2.join('pub1')).read, p1[0].id);
  assert.equal((await dm(a2, gid)).read, x1.id);
  // The guest, resumed.
  const g2 = await connect(s.url);
  h.clients.push(g2);
  await g2.hello({ name: 'Gert', resume });
  assert.equal(g2.user.id, gid);
  assert.deepEqual(await view(g2, 'pub2'), [0, p2[1].id, p2[0].id, 1]);
  assert.deepEqual((await entry(g2, 'pub1')).read, p1[1].id);
  assert.equal((await g2.join('pub2')).read, p2[0].id);
  assert.equal(await mark(g2, 'pub1', p1[0].id), p1[1].id, 'still forward only after the restart');
  // The search index survived too.
  assert.deepEqual(await found(g2, { q: 'p1' }), [p1[2].id, p1[1].id, p1[0].id]);
  assert.deepEqual(await found(g2, { q: 'dm again' }), [x2.id]);
  assert.deepEqual(await found(a2, { q: 'priv' }), [q1.id]);
  assert.deepEqual(await found(g2, { q: 'priv' }), [], 'a guest: not priv');
  // Another guest has none of that.
  const k = await gst(s, h.clients, 'Gert');
  const kl = await rooms(k);
  assert.deepEqual(kl.map((r) => r.name).sort(), ['pub1', 'pub2'], 'the rooms online (alice and Gert joined them), nothing of Gert\'s DM');
  for (const e of kl) assert.equal(e.read, 0, `another guest has no marker in ${e.name}`);
  // Restart with --guest-rooms narrowed to pub1: pub2's marker is not listed, nor readable.
  s = await h.restart({ args: [...RATE, '--guest-rooms', 'pub1'] });
  const g3 = await connect(s.url);
  h.clients.push(g3);
  await g3.hello({ name: 'Gert', resume });
  assert.equal(g3.user.id, gid);
  assert.deepEqual(await names(g3), [ab, 'pub1'].sort());
  await refused(g3, { type: 'read', room: 'pub2', id: p2[1].id }, 'forbidden');
  await refused(g3, { type: 'search', q: 'p2', room: 'pub2' }, 'forbidden');
});

test('--threads 2: the read echo reaches every other connection of the user on both loops once, no other user', async (t) => {
  const { s, clients } = await serverForTest(t, { args: [...RATE, '--threads', '2'] });
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
  assert.equal((await loopConnections(s)).length, 2, 'two loops');
  const A = await spread(() => tok(s, clients, 'alice', 'Alice', { rooms: '*' }), 4);
  const B = await spread(() => tok(s, clients, 'bob', 'Bob', { rooms: '*' }), 4);
  const all = [...A[0], ...A[1]], bobs = [...B[0], ...B[1]];
  await B[0][0].join('mt');
  await A[1][0].join('mt');
  const m = [];
  for (let i = 0; i < 3; i++) m.push(await send(B[0][0], 'mt', `mt ${i}`));
  const ab = (await dm(A[0][0], 'bob')).room;
  const d = await send(B[1][0], ab, 'mt dm');
  // From loop 0, then from loop 1, then in the DM room.
  const cases = [[A[0][0], 'mt', m[0].id], [A[1][A[1].length - 1], 'mt', m[2].id], [A[1][0], ab, d.id]];
  for (const [req, room, id] of cases) {
    assert.equal(await mark(req, room, id), id);
    const got = await everyOnce(all.filter((x) => x !== req), isRead, `the echo of ${room} ${id}`);
    for (const x of got) assert.deepEqual(x, { type: 'read', room, id });
    await quiet([req, ...bobs], isRead, 'a second copy or bob\'s');
  }
  // bob's marker from loop 1: alice's connections on both loops get nothing.
  assert.equal(await mark(B[1][0], 'mt', m[1].id), m[1].id);
  await everyOnce(bobs.filter((x) => x !== B[1][0]), isRead, 'bob\'s echo');
  await quiet(all, isRead, 'bob\'s marker');
  for (const x of [A[0][1] ?? A[0][0], A[1][0]]) {
    const e = await entry(x, 'mt');
    assert.deepEqual([e.read, e.unread], [m[2].id, 0]);
  }
});

// ===========================================================================
// search

test('search: answer shape, every word, phrases, prefixes, case and diacritics, results equal to history\'s messages', async (t) => {
  const { s, clients } = await serverForTest(t, { args: RATE });
  const a = await tok(s, clients, 'alice', 'Alice');
  await a.join('s1');
  await a.join('s2');
  const texts = {
    rgb: 'red green blue', grb: 'green red blue', cafe: 'Meet at the Café Überall', plain: 'cafe uberall plain',
    dogs: 'hot dogs tonight', deploy: 'deploy friday, not monday!', cyr: 'Привет мир', hyph: 'foo-bar_baz',
  };
  const id = {};
  for (const [k, v] of Object.entries(texts)) id[k] = (await send(a, k === 'cyr' || k === 'hyph' ? 's2' : 's1', v)).id;
  const hist = new Map();
  for (const r of ['s1', 's2']) for (const m of (await ask(a, { type: 'history', room: r })).messages) hist.set(m.id, m);
  const r = await search(a, { q: 'red blue' });
  assert.deepEqual(r.messages, [hist.get(id.grb), hist.get(id.rgb)], 'the results are the messages as history has them');
  assert.equal(r.has_more, false);
  const cases = [
    ['red green', [id.rgb, id.grb]],
    ['"red green"', [id.rgb]],
    ['"green red"', [id.grb]],
    ['"red green" blue', [id.rgb]],
    ['"red blue"', [id.grb]],
    ['red purple', []],
    ['cafe', [id.cafe, id.plain]],
    ['CAFÉ', [id.cafe, id.plain]],
    ['café überall', [id.cafe, id.plain]],
    ['UBERALL meet', [id.cafe]],
    ['dog', []],
    ['dog*', [id.dogs]],
    ['do* to*', [id.dogs]],
    ['fri*', [id.deploy]],
    ['deploy friday', [id.deploy]],
    ['friday deploy', [id.deploy]],
    ['"friday deploy"', []],
    ['привет', [id.cyr]],
    ['МИР', [id.cyr]],
    ['foo bar baz', [id.hyph]],
    ['bar-baz', [id.hyph]],
    ['"foo bar"', [id.hyph]],
    ['foobar', []],
  ];
  for (const [q, want] of cases) assert.deepEqual(await found(a, { q }), desc(want), `q ${q}`);
  const one = await search(a, { q: 'cafe', room: 's1' });
  assert.deepEqual(one.messages.map((m) => [m.room, m.id]), [['s1', id.plain], ['s1', id.cafe]]);
  assert.deepEqual(await found(a, { q: 'cafe', room: 's2' }), []);
  assert.deepEqual(await found(a, { q: 'привет', room: 's2' }), [id.cyr]);
});

test('search: AND, OR, NOT, NEAR are plain words; FTS syntax is text, never internal', async (t) => {
  const { s, clients } = await serverForTest(t, { args: RATE });
  const a = await tok(s, clients, 'alice', 'Alice');
  await a.join('ops');
  const texts = {
    and: 'cats and dogs', or: 'cats or dogs', not: 'cats not dogs', near: 'dogs near cats', both: 'cats dogs',
    col: 'text cats', star: 'stars only', q: 'say "hello world" now',
  };
  const id = {};
  for (const [k, v] of Object.entries(texts)) id[k] = (await send(a, 'ops', v)).id;
  const cats = [id.and, id.or, id.not, id.near, id.both, id.col];
  const dogs = [id.and, id.or, id.not, id.near, id.both];
  const cases = [
    ['cats dogs', dogs],
    ['cats AND dogs', [id.and]],
    ['cats OR dogs', [id.or]],
    ['cats NOT dogs', [id.not]],
    ['NOT dogs', [id.not]],
    ['NEAR cats', [id.near]],
    ['NEAR(cats dogs)', [id.near]],
    ['NEAR(cats dogs, 2)', []],
    ['text:cats', [id.col]],
    ['{text}: cats', [id.col]],
    ['^dogs', dogs],
    ['^cats', cats],
    ['-dogs', dogs],
    ['+cats', cats],
    ['(cats)', cats],
    ['cats)', cats],
    ['"cats', cats],
    ['cats"', cats],
    ['cats "', cats],
    ['"hello world', [id.q]],
    ['hello" world', [id.q]],
    ['cats * dogs', dogs],
    ['cats AND', [id.and]],
    ['OR', [id.or]],
    ['and or not near', []],
    ['c*ts', []],
    ['cats:*', cats],
    ['rowid:1', []],
    ['messages_fts', []],
    ["cats' OR '1'='1", []],
    ['cats; DROP TABLE messages', []],
    ['sta* onl*', [id.star]],
  ];
  for (const [q, want] of cases) assert.deepEqual(await found(a, { q }), desc(want), `q ${JSON.stringify(q)}`);
  // Still all there: nothing was dropped.
  assert.deepEqual(await found(a, { q: 'cats', limit: 50 }), desc(cats));
});

test('search: 400 generated queries of FTS syntax, words and symbols: each answered search (or bad_request when wordless), never internal', async (t) => {
  const { s, clients } = await serverForTest(t, { args: RATE });
  const a = await tok(s, clients, 'alice', 'Alice');
  await a.join('fz');
  await send(a, 'fz', 'alpha beta gamma near and or not delta');
  const parts = ['"', '*', '(', ')', ':', '^', '-', '+', ',', '{', '}', 'NEAR', 'NEAR(', 'AND', 'OR', 'NOT', 'alpha',
    'beta', 'text:', 'rowid', '\\', "'", '،', 'é', '😀', ' ', ' ', '0', '́', 'x*', '"a', 'MATCH', '[', ']', ';'];
  let seed = 12345;
  const rnd = (n) => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) % n);
  const bad = [];
  for (let i = 0; i < 400; i++) {
    let q = '';
    for (let k = 1 + rnd(8); k > 0; k--) q += parts[rnd(parts.length)];
    const r = await a.request({ type: 'search', q }, 'search');
    const words = /[\p{L}\p{N}]/u.test(q.normalize('NFD').replace(/\p{M}/gu, ''));
    if (r.type === 'error' && (r.code !== 'bad_request' || words)) bad.push([q, r.code]);
    if (r.type === 'search' && r.q !== q) bad.push([q, `q echoed as ${JSON.stringify(r.q)}`]);
    if (i % 50 === 49) await sleep(600); // under 100 requests a second
  }
  assert.deepEqual(bad, [], 'queries answered other than search (or bad_request when wordless)');
  assert.ok(!/op=search/.test(s.stderr), `a search failed in the database:\n${s.stderr.slice(-2000)}`);
});

test('search: q of 1 to 256 code points; q with no words, bad types, bad limit or before are bad_request', async (t) => {
  const { s, clients } = await serverForTest(t, { args: RATE });
  const a = await tok(s, clients, 'alice', 'Alice');
  await a.join('q');
  const m = await send(a, 'q', `${'a'.repeat(10)} ${'é'.repeat(5)}`);
  for (const q of ['a', 'x'.repeat(256), 'é'.repeat(256), '😀'.repeat(255) + 'a', `${'a'.repeat(10)} ${' '.repeat(245)}`])
    assert.equal((await search(a, { q })).type, 'search', `q of ${[...q].length} code points`);
  assert.deepEqual(await found(a, { q: 'aaaaaaaaaa' }), [m.id]);
  assert.deepEqual(await found(a, { q: 'ééééé' }), [m.id]);
  assert.deepEqual(await found(a, { q: 'EEEEE' }), [m.id]);
  for (const q of ['', 'x'.repeat(257), 'é'.repeat(257), '😀'.repeat(256) + 'a'])
    await refused(a, { type: 'search', q }, 'bad_request', `q of ${[...q].length} code points:`);
  for (const q of ['!!!', '*', '""', '" "', '"', '   ', '-', '()', ':', '^', '"*"', '😀😀', '.,;', '\u00a0', '—', '**', '"!!"'])
    await refused(a, { type: 'search', q }, 'bad_request', `q ${JSON.stringify(q)} has no words:`);
  await sleep(1000);
  for (const q of [null, 5, true, [], ['a'], { q: 'a' }])
    await refused(a, { type: 'search', q }, 'bad_request', 'q type:');
  await refused(a, { type: 'search' }, 'bad_request', 'no q:');
  for (const limit of [0, -1, 51, 1.5, '5', null, true, 1e9])
    await refused(a, { type: 'search', q: 'a', limit }, 'bad_request', `limit ${JSON.stringify(limit)}:`);
  for (const before of [-1, 1.5, '5', null, [], {}])
    await refused(a, { type: 'search', q: 'a', before }, 'bad_request', `before ${JSON.stringify(before)}:`);
  for (const room of [5, null, []]) await refused(a, { type: 'search', q: 'a', room }, 'bad_request', 'room:');
  for (const room of ['', 'Bad', 'dm-x', 'dm-general']) await refused(a, { type: 'search', q: 'a', room }, 'bad_room', `room ${room}:`);
  for (const limit of [1, 50]) assert.deepEqual(await found(a, { q: 'aaaaaaaaaa', limit }), [m.id]);
  assert.deepEqual(await found(a, { q: 'aaaaaaaaaa', before: 0 }), []);
  assert.deepEqual(await found(a, { q: 'aaaaaaaaaa', before: m.id }), []);
  assert.deepEqual(await found(a, { q: 'aaaaaaaaaa', before: m.id + 1 }), [m.id]);
  // The server is fine: nothing was internal.
  assert.equal((await a.request({ type: 'ping' }, 'pong')).type, 'pong');
  const log = s.stderr;
  assert.ok(!/op=search/.test(log), `a search failed in the database:\n${log.slice(-2000)}`);
});

test('search: paging with before and has_more, the default limit 20, limits 1..50, newest first across rooms', async (t) => {
  const { s, clients } = await serverForTest(t, { args: RATE });
  const a = await tok(s, clients, 'alice', 'Alice');
  const b = await tok(s, clients, 'bob', 'Bob');
  for (const x of [a, b]) for (const r of ['p1', 'p2']) await x.join(r);
  const ids = [];
  for (let i = 0; i < 60; i++) {
    const who = i % 3 ? a : b;
    const room = i % 2 ? 'p2' : 'p1';
    ids.push((await send(who, room, `pager item ${i}`)).id);
    if (i % 10 === 0) await send(a, 'p1', 'unrelated chatter');
  }
  const newest = [...ids].reverse();
  let r = await search(b, { q: 'pager item' });
  assert.deepEqual([r.messages.map((m) => m.id), r.has_more], [newest.slice(0, 20), true], 'default limit 20');
  r = await search(b, { q: 'pager', limit: 50 });
  assert.deepEqual([r.messages.map((m) => m.id), r.has_more], [newest.slice(0, 50), true]);
  r = await search(b, { q: 'pager', limit: 50, before: newest[49] });
  assert.deepEqual([r.messages.map((m) => m.id), r.has_more], [newest.slice(50), false]);
  r = await search(b, { q: 'pager', limit: 1 });
  assert.deepEqual([r.messages.map((m) => m.id), r.has_more], [[newest[0]], true]);
  // Pages of 7 through everything.
  const seen = [];
  let before, pages = 0;
  for (;;) {
    r = await search(a, { q: 'item', limit: 7, ...(before ? { before } : {}) });
    pages++;
    for (const m of r.messages) assert.ok(before === undefined || m.id < before, 'every result below before');
    seen.push(...r.messages.map((m) => m.id));
    if (!r.has_more) break;
    before = r.messages[r.messages.length - 1].id;
    assert.ok(pages < 20);
  }
  assert.deepEqual(seen, newest, 'every match once, newest first');
  assert.equal(pages, 9, '60 = 8 pages of 7 and one of 4');
  // Exactly `limit` left: has_more false.
  r = await search(a, { q: 'item', limit: 10, before: newest[49] });
  assert.deepEqual([r.messages.map((m) => m.id), r.has_more], [newest.slice(50), false]);
  r = await search(a, { q: 'item', limit: 10, before: newest[50] });
  assert.deepEqual([r.messages.map((m) => m.id), r.has_more], [newest.slice(51), false]);
  // before a message not matching, and in one room.
  r = await search(a, { q: 'item', room: 'p1', limit: 5, before: ids[30] });
  const p1 = ids.filter((_, i) => i % 2 === 0 && ids[i] < ids[30]).reverse();
  assert.deepEqual([r.messages.map((m) => m.id), r.has_more], [p1.slice(0, 5), true]);
  assert.ok(r.messages.every((m) => m.room === 'p1'));
  r = await search(a, { q: '"item 7"' });
  assert.deepEqual(r.messages.map((m) => [m.id, m.text, m.room, m.user.id]), [[ids[7], 'pager item 7', 'p2', 'alice']]);
});

test('search: an edit is re-indexed (the new text only), a delete is gone, also in a DM room', async (t) => {
  const { s, clients } = await serverForTest(t, { args: RATE });
  const a = await tok(s, clients, 'alice', 'Alice');
  const b = await tok(s, clients, 'bob', 'Bob');
  await a.join('ed');
  await b.join('ed');
  const m1 = await send(a, 'ed', 'original wording here');
  const m2 = await send(a, 'ed', 'ephemeral wording here');
  const m3 = await send(b, 'ed', 'bob keeps his wording');
  assert.deepEqual(await found(b, { q: 'wording' }), [m3.id, m2.id, m1.id]);
  const e = await ask(a, { type: 'edit', room: 'ed', id: m1.id, text: 'revised phrasing here' });
  assert.equal(e.type, 'edited', JSON.stringify(e));
  assert.deepEqual(await found(b, { q: 'original' }), [], 'the old text no longer matches');
  assert.deepEqual(await found(b, { q: 'wording' }), [m3.id, m2.id]);
  const r = await search(b, { q: 'revised' });
  assert.deepEqual(r.messages.map((m) => [m.id, m.rev, m.text, m.edited_ts, m.room]), [[m1.id, e.rev, 'revised phrasing here', e.edited_ts, 'ed']]);
  assert.deepEqual(await found(b, { q: 'here' }), [m2.id, m1.id]);
  // Edited twice: only the latest.
  const e2 = await ask(a, { type: 'edit', room: 'ed', id: m1.id, text: 'third version' });
  assert.equal(e2.type, 'edited');
  assert.deepEqual(await found(b, { q: 'revised' }), []);
  assert.deepEqual(await found(b, { q: 'third version' }), [m1.id]);
  // Before counts by id, not rev.
  assert.deepEqual(await found(b, { q: 'third', before: m1.id + 1 }), [m1.id]);
  const d = await ask(a, { type: 'delete', room: 'ed', id: m2.id });
  assert.equal(d.type, 'deleted');
  for (const q of ['ephemeral', 'ephem*', '"ephemeral wording"'])
    assert.deepEqual(await found(b, { q }), [], `q ${q} after the delete`);
  assert.deepEqual(await found(b, { q: 'wording' }), [m3.id]);
  assert.deepEqual(await found(b, { q: 'here' }), []);
  // The tombstone's empty text matches nothing, and the edited-then-deleted is gone too.
  const d1 = await ask(a, { type: 'delete', room: 'ed', id: m1.id });
  assert.equal(d1.type, 'deleted');
  assert.deepEqual(await found(b, { q: 'third' }), []);
  // In a DM room too.
  const ab = (await dm(a, 'bob')).room;
  const x = await send(b, ab, 'private draft text');
  assert.deepEqual(await found(a, { q: 'draft' }), [x.id]);
  const xe = await ask(b, { type: 'edit', room: ab, id: x.id, text: 'private final text' });
  assert.equal(xe.type, 'edited');
  assert.deepEqual(await found(a, { q: 'draft' }), []);
  assert.deepEqual(await found(a, { q: 'final', room: ab }), [x.id]);
  assert.equal((await ask(b, { type: 'delete', room: ab, id: x.id })).type, 'deleted');
  assert.deepEqual(await found(a, { q: 'private' }), []);
});

test('search: each message is found as soon as it is acked (the index follows behind a watermark); /metrics shows its lag back at 0', async (t) => {
  const { s, clients } = await serverForTest(t, { args: RATE });
  const a = await tok(s, clients, 'alice', 'Alice');
  await a.join('burst');
  // 600 sends in flight at once: the database commits them in batches and
  // indexes them afterwards, in chunks; every search right after an ack
  // must still find that message (it waits for the watermark).
  const acks = await Promise.all(Array.from({ length: 600 }, (_, i) => send(a, 'burst', `burstword${i} shared`)));
  // Each search here walks the room's newest rows before its doclists, and
  // its time is charged to the connection's read budget: on a slow machine
  // (ASan, a busy CI) twenty in a row may be paced. A paced search is
  // retried after 200 ms, well inside the 500 ms after which an idle index
  // would catch up by itself, so the retry still needs the watermark.
  const foundPaced = async (fields) => {
    for (let tries = 0; ; tries++) {
      const r = await a.request({ type: 'search', ...fields, ref: `p${++cidSeq}` }, 'search');
      if (r.type === 'error' && r.code === 'rate_limited' && tries < 50) {
        await sleep(200);
        continue;
      }
      assert.equal(r.type, 'search', JSON.stringify(r));
      return r.messages.map((m) => m.id);
    }
  };
  for (const i of [599, 0, 300]) assert.deepEqual(await foundPaced({ q: `burstword${i}` }), [acks[i].id], `burstword${i}`);
  for (let i = 0; i < 20; i++) {
    const m = await send(a, 'burst', `fresh${i} shared`);
    assert.deepEqual(await foundPaced({ q: `fresh${i}`, room: 'burst' }), [m.id], `fresh${i} right after its ack`);
  }
  let lag = -1;
  for (let i = 0; i < 100 && lag !== 0; i++) {
    const r = await httpGet(`${s.http}/metrics`);
    const m = /^parley_search_index_lag (\d+)$/m.exec(r.body);
    assert.ok(m, 'parley_search_index_lag in /metrics');
    lag = Number(m[1]);
    if (lag) await sleep(50);
  }
  assert.equal(lag, 0, 'the index caught up');
});

test('search: retention (--max-messages-per-room) removes pruned messages from the results', async (t) => {
  const { s, clients } = await serverForTest(t, { args: [...RATE, '--max-messages-per-room', '3', '--prune-interval', '1'] });
  const a = await tok(s, clients, 'alice', 'Alice');
  await a.join('ret');
  await a.join('keep');
  const ids = [];
  for (let i = 0; i < 8; i++) ids.push((await send(a, 'ret', `retained number ${i}`)).id);
  const k = await send(a, 'keep', 'retained elsewhere');
  await waitFor(async () => (await ask(a, { type: 'history', room: 'ret' })).messages.length === 3,
    { timeoutMs: T(15000), what: 'retention to prune ret to 3 messages' });
  const h = await ask(a, { type: 'history', room: 'ret' });
  assert.deepEqual(h.messages.map((m) => m.id), ids.slice(5));
  assert.deepEqual(await found(a, { q: 'retained' }), desc(ids.slice(5), k.id));
  assert.deepEqual(await found(a, { q: 'number', room: 'ret' }), desc(ids.slice(5)));
  for (let i = 0; i < 5; i++) assert.deepEqual(await found(a, { q: `"number ${i}"` }), [], `pruned message ${i}`);
  assert.deepEqual(await found(a, { q: '"number 7"' }), [ids[7]]);
  // Unread follows: only what is kept counts.
  const b = await tok(s, clients, 'bob', 'Bob');
  const e = await entry(b, 'ret');
  assert.deepEqual([e.read, e.unread, e.last_id], [0, 3, ids[7]]);
});

test('search: every word must appear, however many words q has', async (t) => {
  const { s, clients } = await serverForTest(t, { args: RATE });
  const a = await tok(s, clients, 'alice', 'Alice');
  await a.join('many');
  const words = Array.from({ length: 24 }, (_, i) => `w${String.fromCharCode(97 + i)}x`);
  const m16 = await send(a, 'many', words.slice(0, 16).join(' '));
  const m24 = await send(a, 'many', words.join(' '));
  assert.deepEqual(await found(a, { q: words.slice(0, 16).join(' ') }), [m24.id, m16.id]);
  assert.deepEqual(await found(a, { q: words.slice(0, 17).join(' ') }), [m24.id], 'the 17th word is not in the first message');
  assert.deepEqual(await found(a, { q: words.join(' ') }), [m24.id], 'all 24 words');
  assert.deepEqual(await found(a, { q: `${words.slice(0, 20).join(' ')} nowhere` }), [], 'a 21st word found nowhere');
});

test('search: punctuation beyond ASCII separates words; combining accents are diacritics; q is echoed exactly', async (t) => {
  const { s, clients } = await serverForTest(t, { args: RATE });
  const a = await tok(s, clients, 'alice', 'Alice');
  await a.join('uni');
  const m1 = await send(a, 'uni', 'dogs then cats');
  const m2 = await send(a, 'uni', 'Un café au lait');
  // Separators (Unicode punctuation, not letters or digits): the words on either side are
  // two words, in any order, as with a space.
  // Every case is run, and the whole table compared, so a failure shows all of them.
  const seps = ['\u060C', '\u0964', '\u2E3A', '\u037E', '\u00BF', '\u3001', '\uFF0C', '\u2014', '\u00B7', '\u2E41'];
  const hex = (c) => `U+${c.codePointAt(0).toString(16).toUpperCase().padStart(4, '0')}`;
  const got = [], want = [];
  for (const sep of seps) {
    got.push([hex(sep), 'cats<sep>dogs', await found(a, { q: `cats${sep}dogs` })]);
    want.push([hex(sep), 'cats<sep>dogs', [m1.id]]);
    const r = await a.request({ type: 'search', q: `${sep}${sep}` }, 'search');
    got.push([hex(sep), 'only separators', r.type === 'error' ? r.code : `search: ${JSON.stringify(r.messages)}`]);
    want.push([hex(sep), 'only separators', 'bad_request']);
  }
  assert.deepEqual(await found(a, { q: 'cafe\u0301' }), [m2.id], 'a combining accent');
  assert.deepEqual(await found(a, { q: 'LAIT' }), [m2.id]);
  // The answer's q is the request's, escapes and all (search() compares them).
  const r = await search(a, { q: 'cats\n\t\\ "dogs" \u2028 \ud83d\ude00 /' });
  assert.deepEqual(r.messages.map((m) => m.id), [m1.id]);
  assert.equal(got.map((x) => JSON.stringify(x)).join('\n'), want.map((x) => JSON.stringify(x)).join('\n'));
});
