// Every client message type and the server's answer to it (spec: "Client to
// server", "Server to client", "Correlation").
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  startServer, connect, guest, tokenUser, sqlite, sleep, T, collectMessages, sharedServer, cps, httpGet, waitFor,
} from './harness.mjs';

let srv;
let roomSeq = 0;
const room = (p = 'r') => `${p}${++roomSeq}`;
const clients = sharedServer({}, (s) => (srv = s));
async function g(name = 'guest') {
  const c = await guest(srv, name);
  clients.push(c);
  return c;
}


const USER_KEYS = ['id', 'name'];
function assertUser(u, expected) {
  assert.equal(typeof u, 'object');
  assert.equal(typeof u.id, 'string');
  assert.ok(u.id.length > 0);
  assert.equal(typeof u.name, 'string');
  if (expected) {
    assert.equal(u.id, expected.id);
    assert.equal(u.name, expected.name);
  }
  for (const k of USER_KEYS) assert.ok(k in u);
}

function assertMessage(m, { room: r, user, text, client_id } = {}) {
  assert.equal(m.type, 'message');
  assert.ok(Number.isSafeInteger(m.id) && m.id > 0, `id ${m.id}`);
  assert.ok(Number.isSafeInteger(m.ts) && m.ts > 1.6e12 && m.ts < 4e12, `ts ${m.ts}`);
  if (r !== undefined) assert.equal(m.room, r);
  if (user) assert.deepEqual({ id: m.user.id, name: m.user.name }, { id: user.id, name: user.name });
  if (text !== undefined) assert.equal(m.text, text);
  if (client_id !== undefined) assert.equal(m.client_id, client_id);
}

test('hello → welcome with a guest user, server version and limits', async () => {
  const c = await connect(srv.url);
  clients.push(c);
  const t0 = Date.now();
  c.send({ type: 'hello', name: 'Alice', client: 'integration-tests/1' });
  const w = await c.next();
  assert.equal(w.type, 'welcome');
  assert.equal(w.user.name, 'Alice');
  assert.equal(w.user.guest, true);
  assert.equal(typeof w.user.id, 'string');
  assert.ok(w.user.id.length > 0);
  assert.match(w.server, /^parley\/\d+\.\d+\.\d+$/);
  assert.equal(w.limits.max_text, 4000);
  assert.equal(w.limits.rate_per_s, 10);
  assert.equal(w.limits.burst, 20);
  assert.equal(w.limits.history_page, 200);
  assert.ok(Date.now() - t0 < T(5000));
});

test('join → joined with the joiner in members, empty room: no messages, complete', async () => {
  const c = await g('Bob');
  const r = room('join');
  const j = await c.join(r);
  assert.equal(j.type, 'joined');
  assert.equal(j.room, r);
  assert.ok(Array.isArray(j.members));
  assert.equal(j.members.length, 1);
  assertUser(j.members[0], c.user);
  assert.deepEqual(j.messages, []);
  assert.equal(j.complete, true);
});

test('join: members lists everyone; the others get presence join once; joining twice repeats the answer', async () => {
  const a = await g('A1'), b = await g('B1');
  const r = room('pres');
  await a.join(r);
  const jb = await b.join(r);
  const ids = jb.members.map((u) => u.id).sort();
  assert.deepEqual(ids, [a.user.id, b.user.id].sort());
  for (const u of jb.members) assertUser(u, u.id === a.user.id ? a.user : b.user);
  const p = await a.next('presence');
  assert.deepEqual(
    { type: p.type, room: p.room, event: p.event, user: { id: p.user.id, name: p.user.name } },
    { type: 'presence', room: r, event: 'join', user: { id: b.user.id, name: b.user.name } },
  );
  // The joiner itself gets no presence for its own join.
  await b.barrier();
  assert.equal(b.peek('presence').length, 0, 'joiner got a presence for itself');

  // Joining again: same answer, no second presence.
  const jb2 = await b.join(r);
  assert.equal(jb2.type, 'joined');
  assert.equal(jb2.room, r);
  assert.deepEqual(jb2.members.map((u) => u.id).sort(), ids);
  await b.barrier();
  await a.barrier();
  await sleep(50);
  await a.barrier();
  assert.equal(a.peek('presence').length, 0, 'second join sent a second presence');
});

test('join without since: the latest 50 messages, oldest first', async () => {
  // Three senders of 20 each stay within the per-connection burst.
  const senders = [await g('H1'), await g('H2'), await g('H3')];
  const r = room('latest');
  for (const s of senders) await s.join(r);
  const acks = [];
  for (let i = 0; i < 60; i++) {
    const s = senders[Math.floor(i / 20)];
    acks.push({ ...(await s.say(r, `m${i}`, `latest-${i}`)), text: `m${i}`, user: s.user });
  }
  acks.sort((x, y) => x.id - y.id);
  const b = await g('Late');
  const j = await b.join(r);
  assert.equal(j.messages.length, 50);
  assert.deepEqual(j.messages.map((m) => m.id), acks.slice(10).map((x) => x.id));
  assert.deepEqual(j.messages.map((m) => m.text), acks.slice(10).map((x) => x.text));
  j.messages.forEach((m, i) => assertMessage(m, { room: r, user: acks[10 + i].user, client_id: `latest-${m.text.slice(1)}` }));
  assert.equal(typeof j.complete, 'boolean');
  // history without limit: the default page of 50, the latest, with more before.
  const h = await b.request({ type: 'history', room: r }, 'history');
  assert.deepEqual(h.messages.map((m) => m.id), acks.slice(10).map((x) => x.id));
  assert.equal(h.has_more, true);
});

test('leave → left; the others get presence leave; the leaver no longer gets messages', async () => {
  const a = await g('Stay'), b = await g('Go');
  const r = room('leave');
  await a.join(r);
  await b.join(r);
  await a.next('presence');
  const l = await b.request({ type: 'leave', room: r }, 'left');
  assert.deepEqual({ type: l.type, room: l.room }, { type: 'left', room: r });
  const p = await a.next('presence');
  assert.equal(p.room, r);
  assert.equal(p.event, 'leave');
  assertUser(p.user, b.user);
  const ack = await a.say(r, 'after leave');
  await a.next((m) => m.type === 'message' && m.id === ack.id);
  await b.barrier();
  assert.equal(b.peek('message').length, 0, 'left member got a message');
});

test('disconnect is a presence leave in every room of that connection', async () => {
  const a = await g('Watcher'), b = await g('Quitter');
  const r1 = room('dc'), r2 = room('dc');
  for (const r of [r1, r2]) {
    await a.join(r);
    await b.join(r);
    // b's join presence reaches a: b's `joined` does not wait for it when
    // the two connections are on different event loops (--threads).
    await a.next((m) => m.type === 'presence' && m.room === r && m.event === 'join' && m.user.id === b.user.id);
  }
  a.drain('presence');
  b.close();
  const seen = new Set();
  for (let i = 0; i < 2; i++) {
    const p = await a.next('presence');
    assert.equal(p.event, 'leave');
    assertUser(p.user, b.user);
    seen.add(p.room);
  }
  assert.deepEqual([...seen].sort(), [r1, r2].sort());
});

test('send → ack after commit, and message to every member including the sender', async () => {
  const a = await g('Sender'), b = await g('Receiver');
  const r = room('send');
  await a.join(r);
  await b.join(r);
  const before = Date.now();
  a.send({ type: 'send', room: r, text: 'hello world', client_id: 'send-1' });
  const ack = await a.next('ack');
  // Committed: the row is in the database the moment the ack arrives.
  const rows = sqlite(srv.dbPath, `SELECT id, room, user_id, user_name, text, ts, client_id FROM messages WHERE id = ${ack.id}`);
  assert.equal(rows.length, 1, `acked id ${ack.id} not in the database`);
  assert.deepEqual(rows[0], {
    id: ack.id, room: r, user_id: a.user.id, user_name: 'Sender', text: 'hello world', ts: ack.ts, client_id: 'send-1',
  });
  for (const k of ['type', 'room', 'client_id', 'id', 'ts']) assert.ok(k in ack, `ack lacks ${k}`);
  assert.equal(ack.room, r);
  assert.equal(ack.client_id, 'send-1');
  assert.ok(Number.isSafeInteger(ack.id) && ack.id > 0);
  assert.ok(ack.ts >= before - 5000 && ack.ts <= Date.now() + 5000, `ts ${ack.ts} not near now`);
  for (const c of [a, b]) {
    const m = await c.next('message');
    assertMessage(m, { room: r, user: a.user, text: 'hello world', client_id: 'send-1' });
    assert.equal(m.id, ack.id);
    assert.equal(m.ts, ack.ts, 'ack.ts != message.ts');
  }
});

test('message ids increase; a room member sees messages in id order', async () => {
  const a = await g('S1'), b = await g('S2'), c = await g('Obs');
  const r = room('order');
  for (const x of [a, b, c]) await x.join(r);
  for (let i = 0; i < 10; i++) {
    a.send({ type: 'send', room: r, text: `a${i}`, client_id: `oa${i}` });
    b.send({ type: 'send', room: r, text: `b${i}`, client_id: `ob${i}` });
  }
  const ms = await collectMessages(c, r, 20);
  const ids = ms.map((m) => m.id);
  assert.deepEqual(ids, [...ids].sort((x, y) => x - y));
  assert.equal(new Set(ids).size, 20);
});

test('history: latest page, before, after (after:0 is the start), limit and has_more', async () => {
  const a = await g('Pager');
  const r = room('hist');
  await a.join(r);
  const ids = [];
  for (let i = 0; i < 12; i++) ids.push((await a.say(r, `h${i}`, `hist-${i}`)).id);
  const h = async (q) => {
    const m = await a.request({ type: 'history', room: r, ...q }, 'history');
    assert.equal(m.type, 'history', JSON.stringify(m));
    assert.equal(m.room, r);
    for (const x of m.messages) assertMessage(x, { room: r, user: a.user });
    return { ids: m.messages.map((x) => x.id), has_more: m.has_more, texts: m.messages.map((x) => x.text) };
  };
  // Default limit 50: everything, oldest first, nothing older.
  assert.deepEqual(await h({}), { ids, has_more: false, texts: ids.map((_, i) => `h${i}`) });
  let x = await h({ limit: 5 });
  assert.deepEqual([x.ids, x.has_more], [ids.slice(7), true]);
  x = await h({ before: ids[5], limit: 3 });
  assert.deepEqual([x.ids, x.has_more], [ids.slice(2, 5), true]);
  x = await h({ before: ids[3], limit: 3 });
  assert.deepEqual([x.ids, x.has_more], [ids.slice(0, 3), false]);
  x = await h({ before: ids[2], limit: 5 });
  assert.deepEqual([x.ids, x.has_more], [ids.slice(0, 2), false]);
  x = await h({ before: ids[0] });
  assert.deepEqual([x.ids, x.has_more], [[], false]);
  x = await h({ after: 0, limit: 5 });
  assert.deepEqual([x.ids, x.has_more], [ids.slice(0, 5), true]);
  x = await h({ after: ids[4], limit: 5 });
  assert.deepEqual([x.ids, x.has_more], [ids.slice(5, 10), true]);
  x = await h({ after: ids[6], limit: 5 });
  assert.deepEqual([x.ids, x.has_more], [ids.slice(7, 12), false]);
  x = await h({ after: ids[9], limit: 5 });
  assert.deepEqual([x.ids, x.has_more], [ids.slice(10), false]);
  x = await h({ after: ids[11] });
  assert.deepEqual([x.ids, x.has_more], [[], false]);
  x = await h({ after: 0, limit: 200 });
  assert.deepEqual([x.ids, x.has_more], [ids, false]);
  x = await h({ limit: 1 });
  assert.deepEqual([x.ids, x.has_more], [[ids[11]], true]);
});

test('history of a room never joined is allowed and empty', async () => {
  const a = await g('Curious');
  const r = room('nobody');
  const m = await a.request({ type: 'history', room: r }, 'history');
  assert.deepEqual({ type: m.type, room: m.room, messages: m.messages, has_more: m.has_more },
    { type: 'history', room: r, messages: [], has_more: false });
});

test('typing: delivered to the other members, not echoed; a second within 2 s is dropped', async () => {
  const a = await g('Typist'), b = await g('Reader'), c = await g('Reader2');
  const r = room('typing');
  for (const x of [a, b, c]) await x.join(r);
  a.send({ type: 'typing', room: r });
  for (const x of [b, c]) {
    const t = await x.next('typing');
    assert.equal(t.room, r);
    assertUser(t.user, a.user);
  }
  await a.barrier(); // the echo, if any, would have arrived before the pong
  assert.equal(a.peek('typing').length, 0, 'typing echoed to the sender');
  // Second typing within 2 s: dropped silently (no error to a, nothing to b).
  a.send({ type: 'typing', room: r });
  await a.barrier();
  assert.equal(a.peek(['typing', 'error']).length, 0, 'second typing answered');
  await b.barrier();
  await sleep(100);
  await b.barrier();
  assert.equal(b.peek('typing').length, 0, 'second typing within 2 s delivered');
  // The limit is per room: typing in another room still goes out.
  const r2 = room('typing');
  await a.join(r2);
  await b.join(r2);
  a.send({ type: 'typing', room: r2 });
  const t2 = await b.next('typing');
  assert.equal(t2.room, r2);
  // After 2 s, typing in the first room goes out again.
  await sleep(2100);
  a.send({ type: 'typing', room: r });
  const t3 = await b.next('typing');
  assert.equal(t3.room, r);
});

test('rooms: member counts and last_id for rooms with members and rooms this connection joined', async () => {
  const a = await g('Lister'), b = await g('Other');
  const r1 = room('list'), r2 = room('list'), r3 = room('list');
  await a.join(r1);
  await b.join(r1);
  await a.join(r2);
  await b.join(r3);
  const ack = await b.say(r3, 'in r3');
  const ack1 = await a.say(r1, 'in r1');
  const m = await a.request({ type: 'rooms' }, 'rooms');
  assert.equal(m.type, 'rooms');
  assert.ok(Array.isArray(m.rooms));
  const pick = (x) => x && { name: x.name, members: x.members, last_id: x.last_id };
  const by = Object.fromEntries(m.rooms.map((x) => [x.name, pick(x)]));
  assert.deepEqual(by[r1], { name: r1, members: 2, last_id: ack1.id });
  assert.deepEqual(by[r2], { name: r2, members: 1, last_id: 0 });
  assert.deepEqual(by[r3], { name: r3, members: 1, last_id: ack.id });
  for (const x of m.rooms) {
    assert.equal(typeof x.name, 'string');
    assert.ok(Number.isInteger(x.members) && x.members >= 0);
    assert.ok(Number.isInteger(x.last_id) && x.last_id >= 0);
  }
  // A room this connection joined and left, with no one online: still listed, 0 members.
  await a.request({ type: 'leave', room: r2 }, 'left');
  const m2 = await a.request({ type: 'rooms' }, 'rooms');
  const e2 = pick(m2.rooms.find((x) => x.name === r2));
  assert.deepEqual(e2, { name: r2, members: 0, last_id: 0 });
});

test('ping → pong', async () => {
  const a = await g('Pinger');
  a.send({ type: 'ping' });
  const p = await a.next();
  assert.equal(p.type, 'pong');
});

test('ref is echoed in every reply and in errors', async () => {
  const a = await g('Reffer'), b = await g('Peer');
  const r = room('ref');
  const ref64 = 'x'.repeat(64);
  const check = async (req, type) => {
    for (const ref of ['ref-1', ref64, '日本語']) {
      const m = await a.request({ ...req, ref }, type);
      assert.equal(m.type, type, JSON.stringify(m));
      assert.equal(m.ref, ref);
    }
  };
  await b.join(r);
  await check({ type: 'join', room: r }, 'joined');
  let n = 0;
  for (const ref of ['s1', ref64]) {
    a.send({ type: 'send', room: r, text: 'x', client_id: `ref-send-${++n}`, ref });
    const ack = await a.next('ack');
    assert.equal(ack.ref, ref);
    // The broadcast message is not the answer: b did not send the ref.
    const mb = await b.next('message');
    assert.ok(!('ref' in mb), `broadcast carried ref: ${JSON.stringify(mb)}`);
  }
  await check({ type: 'history', room: r }, 'history');
  await check({ type: 'rooms' }, 'rooms');
  await check({ type: 'ping' }, 'pong');
  await check({ type: 'leave', room: r }, 'left');
  // Errors carry the ref too.
  for (const [req, code] of [
    [{ type: 'frobnicate' }, 'unknown_type'],
    [{ type: 'send', room: r, text: 'x', client_id: 'nm' }, 'not_member'],
    [{ type: 'join', room: 'Bad Room' }, 'bad_room'],
    [{ type: 'history', room: r, limit: 0 }, 'bad_request'],
  ]) {
    const e = await a.request({ ...req, ref: 'err-ref' }, 'error');
    assert.deepEqual([e.type, e.code, e.ref], ['error', code, 'err-ref']);
    assert.equal(typeof e.message, 'string');
  }
});

test('type is the first member of every object the server sends', async () => {
  const a = await connect(srv.url), b = await g('Peer2');
  clients.push(a);
  const r = room('first');
  a.send({ type: 'ping' }); // need_hello error
  await a.next('error');
  a.send({ type: 'hello', name: 'First' });
  await a.next('welcome');
  await b.join(r);
  await a.join(r);
  b.send({ type: 'typing', room: r });
  await a.next('typing');
  await a.say(r, 'one', 'first-1');
  await a.request({ type: 'history', room: r }, 'history');
  await a.request({ type: 'rooms' }, 'rooms');
  await a.request({ type: 'ping' }, 'pong');
  await a.request({ type: 'nope' }, 'error');
  await b.request({ type: 'leave', room: r }, 'left');
  await a.next('presence');
  await a.request({ type: 'leave', room: r }, 'left');
  const kinds = new Set(a.frames.map((f) => JSON.parse(f).type));
  for (const k of ['error', 'welcome', 'joined', 'presence', 'typing', 'ack', 'message', 'history', 'rooms', 'pong', 'left'])
    assert.ok(kinds.has(k), `no ${k} seen`);
  assert.deepEqual(a.badFrames, []);
  for (const f of a.frames) assert.ok(f.startsWith('{"type":'), `frame does not start with {"type": ${f.slice(0, 80)}`);
  assert.deepEqual(b.badFrames, []);
});

test('token user: welcome user id is sub, name from the token, guest false', async () => {
  const c = await tokenUser(srv, { sub: 'user-42', name: 'Zoë' });
  clients.push(c);
  assert.deepEqual(
    { id: c.welcome.user.id, name: c.welcome.user.name, guest: c.welcome.user.guest },
    { id: 'user-42', name: 'Zoë', guest: false },
  );
});

test('a joined bigger than one batched write (64 KiB) arrives whole; the queue gauge returns to 0', async () => {
  const a = await g('Big'), b = await g('Late');
  const r = room('big');
  await a.join(r);
  const text = cps(4000, '😀'); // 16,000 bytes of UTF-8 each
  const ids = [];
  for (let i = 0; i < 6; i++) ids.push((await a.say(r, text, `big-${i}`)).id);
  const j = await b.join(r); // about 96 KB: written alone, from a copy
  assert.deepEqual(j.messages.map((m) => m.id), ids);
  assert.ok(j.messages.every((m) => m.text === text));
  await waitFor(async () => /^parley_outq_depth 0$/m.test((await httpGet(`${srv.http}/metrics`)).body),
    { what: 'parley_outq_depth back to 0' });
});
