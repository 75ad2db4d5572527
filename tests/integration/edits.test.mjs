// Protocol 1.1, events and revisions: edits and deletes take the next id
// from the one sequence; members get `edited`/`deleted` live, the
// requester with its ref; history shows current state and tombstones; a
// join with `since` brings `updates`; `rooms.last_id` counts revs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { sharedServer, guest, tokenUser, collectMessages, sendMany, sleep, T } from './harness.mjs';

let srv;
const clients = sharedServer({ args: ['--rate', '100000', '--burst', '100000'] }, (s) => (srv = s));
let n = 0;
const room = (p) => `${p}-${++n}`;
async function g(name) {
  const c = await guest(srv, name);
  clients.push(c);
  return c;
}

test('an author edits: the requester gets edited with its ref, members without; ids from one sequence', async () => {
  const a = await g('Author'), b = await g('Reader');
  const r = room('edit');
  await a.join(r);
  await b.join(r);
  const m1 = await a.say(r, 'helo', 'm1');
  const e = await a.request({ type: 'edit', room: r, id: m1.id, text: 'hello' }, 'edited');
  assert.equal(e.type, 'edited', JSON.stringify(e));
  assert.equal(e.id, m1.id);
  assert.ok(e.rev > m1.id, 'an edit takes a new id');
  assert.equal(e.text, 'hello');
  assert.ok(Number.isInteger(e.edited_ts) && e.edited_ts >= m1.ts);
  const be = await b.next((m) => m.type === 'edited' && m.room === r);
  assert.equal(be.ref, undefined, 'others get no ref');
  assert.deepEqual([be.id, be.rev, be.text, be.edited_ts], [e.id, e.rev, e.text, e.edited_ts]);
  // The requester does not get the event twice.
  await sleep(100);
  assert.equal(a.drain((m) => m.type === 'edited').length, 0);
  const m2 = await a.say(r, 'next', 'm2');
  assert.ok(m2.id > e.rev, 'the next message id comes after the edit');
  const h = await a.request({ type: 'history', room: r }, 'history');
  const old = h.messages.find((m) => m.id === m1.id);
  assert.deepEqual([old.text, old.rev, old.edited_ts, old.deleted], ['hello', e.rev, e.edited_ts, undefined]);
  assert.equal(h.messages.find((m) => m.id === m2.id).rev, m2.id, 'unchanged: rev is the id');
});

test('only the author edits; the author deletes; others are forbidden; missing or deleted is not_found', async () => {
  const a = await g('Owner'), b = await g('Other');
  const r = room('rights');
  await a.join(r);
  await b.join(r);
  const m = await a.say(r, 'mine', 'x1');
  let e = await b.request({ type: 'edit', room: r, id: m.id, text: 'hijack' }, 'edited');
  assert.deepEqual([e.type, e.code], ['error', 'forbidden']);
  e = await b.request({ type: 'delete', room: r, id: m.id }, 'deleted');
  assert.deepEqual([e.type, e.code], ['error', 'forbidden']);
  e = await a.request({ type: 'edit', room: r, id: m.id + 1000, text: 'x' }, 'edited');
  assert.deepEqual([e.type, e.code], ['error', 'not_found']);
  const other = room('elsewhere');
  e = await a.request({ type: 'edit', room: other, id: m.id, text: 'x' }, 'edited');
  assert.deepEqual([e.type, e.code], ['error', 'not_found'], 'the id must be in that room');
  const d = await a.request({ type: 'delete', room: r, id: m.id }, 'deleted');
  assert.equal(d.type, 'deleted', JSON.stringify(d));
  assert.deepEqual(d.by, { id: a.welcome.user.id, name: 'Owner' });
  assert.ok(d.rev > m.id);
  const bd = await b.next((x) => x.type === 'deleted' && x.room === r);
  assert.deepEqual([bd.id, bd.rev, bd.ref], [m.id, d.rev, undefined]);
  for (const q of [{ type: 'delete', room: r, id: m.id }, { type: 'edit', room: r, id: m.id, text: 'back' }]) {
    e = await a.request(q, q.type === 'edit' ? 'edited' : 'deleted');
    assert.deepEqual([e.type, e.code], ['error', 'not_found'], `${q.type} of a deleted message`);
  }
  // A tombstone: same id, ts and user; empty text; no client_id, no edited_ts.
  const h = await b.request({ type: 'history', room: r }, 'history');
  const t = h.messages.find((x) => x.id === m.id);
  assert.deepEqual(t, { type: 'message', room: r, id: m.id, ts: m.ts, user: { id: a.welcome.user.id, name: 'Owner' }, rev: d.rev, text: '', deleted: true });
  // Re-sending the deleted message's client_id is still deduplicated.
  const again = await a.say(r, 'mine', 'x1');
  assert.equal(again.id, m.id);
});

test('edit text is checked as for send; bad ids are bad_request', async () => {
  const a = await g('Checker');
  const r = room('check');
  await a.join(r);
  const m = await a.say(r, 'ok', 'k1');
  let e = await a.request({ type: 'edit', room: r, id: m.id, text: '' }, 'edited');
  assert.equal(e.code, 'too_long');
  e = await a.request({ type: 'edit', room: r, id: m.id, text: 'x'.repeat(4001) }, 'edited');
  assert.equal(e.code, 'too_long');
  for (const id of [0, -1, 1.5, '3', null, 2 ** 53]) {
    e = await a.request({ type: 'delete', room: r, id }, 'deleted');
    assert.equal(e.code, 'bad_request', `id ${JSON.stringify(id)}`);
  }
});

test('join with since brings new messages and the current state of older ones changed since', async () => {
  const a = await g('Writer'), b = await g('Away');
  const r = room('since');
  await a.join(r);
  const j0 = await b.join(r);
  assert.deepEqual(j0.messages, []);
  const m1 = await a.say(r, 'one', 's1');
  const m2 = await a.say(r, 'two', 's2');
  await collectMessages(b, r, 2);
  const seen = m2.id;
  b.ws.close();
  // While away: an edit of m1, a delete of m2, a new message m3, an edit of m3.
  const e1 = await a.request({ type: 'edit', room: r, id: m1.id, text: 'one!' }, 'edited');
  const d2 = await a.request({ type: 'delete', room: r, id: m2.id }, 'deleted');
  const m3 = await a.say(r, 'three', 's3');
  const e3 = await a.request({ type: 'edit', room: r, id: m3.id, text: 'three!' }, 'edited');
  const c = await g('Back');
  const j = await c.request({ type: 'join', room: r, since: seen }, 'joined');
  assert.equal(j.complete, true);
  assert.deepEqual(j.messages.map((m) => [m.id, m.text, m.rev]), [[m3.id, 'three!', e3.rev]]);
  assert.deepEqual(j.updates.map((m) => [m.id, m.text, m.rev, m.deleted ?? false]),
    [[m1.id, 'one!', e1.rev, false], [m2.id, '', d2.rev, true]], 'oldest rev first');
  // Since the highest rev: nothing more. rooms.last_id is the highest id or rev.
  const j2 = await c.request({ type: 'join', room: r, since: e3.rev }, 'joined');
  assert.deepEqual([j2.messages, j2.updates, j2.complete], [[], [], true]);
  const rooms = await c.request({ type: 'rooms' }, 'rooms');
  assert.equal(rooms.rooms.find((x) => x.name === r).last_id, e3.rev);
  // Without since: current state, no updates field.
  const j3 = await c.request({ type: 'join', room: r }, 'joined');
  assert.equal(j3.updates, undefined);
  assert.deepEqual(j3.messages.map((m) => m.text), ['one!', '', 'three!']);
});

test('many edits of one message come back once; over 1000 changes page by rev', { timeout: T(120000) }, async () => {
  const a = await g('Bulk');
  const r = room('bulk');
  await a.join(r);
  const acks = await sendMany(a, r, 1050, { window: 50, prefix: 'b' });
  const ids = acks.map((x) => x.id);
  // 200 edits of the first 10 messages: each comes back once, current state.
  for (let k = 0; k < 200; k += 50) {
    const done = await Promise.all(Array.from({ length: 50 }, (_, i) =>
      a.request({ type: 'edit', room: r, id: ids[(k + i) % 10], text: `v${k + i}` }, 'edited')));
    assert.deepEqual(done.filter((x) => x.type !== 'edited'), []);
  }
  const c = await g('Catcher');
  const state = new Map(), pages = [];
  let since = 0, complete = false;
  while (!complete) {
    const j = await c.request({ type: 'join', room: r, since }, 'joined', T(10000));
    pages.push([j.messages.length, j.updates.length]);
    for (const m of [...j.updates, ...j.messages]) {
      assert.ok(!state.has(m.id) || m.rev > since, `message ${m.id} twice in one catch-up`);
      state.set(m.id, m.text);
      since = Math.max(since, m.rev);
    }
    complete = j.complete;
    assert.ok(pages.length < 5, 'too many pages');
  }
  // 1,050 messages changed since 0: 1000, then 50 (the 10 edited ones last,
  // by rev, as updates: their ids are below the first page's highest rev).
  assert.deepEqual(pages, [[1000, 0], [40, 10]]);
  assert.equal(state.size, 1050);
  for (let i = 0; i < 10; i++) assert.match(state.get(ids[i]), /^v1[5-9]\d$/, `message ${i} in its latest state`);
});

test('edits and deletes take from the send bucket', async () => {
  const s2 = await import('./harness.mjs').then((h) => h.startServer({ args: ['--rate', '1', '--burst', '3'] }));
  try {
    const a = await guest(s2, 'Slow');
    await a.join('bucket');
    const m = await a.say('bucket', 'x', 'z1'); // 1 of 3
    const e1 = await a.request({ type: 'edit', room: 'bucket', id: m.id, text: 'y' }, 'edited');
    const e2 = await a.request({ type: 'edit', room: 'bucket', id: m.id, text: 'z' }, 'edited');
    const e3 = await a.request({ type: 'delete', room: 'bucket', id: m.id }, 'deleted');
    assert.deepEqual([e1.type, e2.type, e3.type, e3.code], ['edited', 'edited', 'error', 'rate_limited']);
    a.close();
  } finally {
    assert.equal((await s2.stop()).code, 0);
    s2.cleanup();
  }
});

test('a token user edits across connections: every connection of the room gets it', async () => {
  const a1 = await tokenUser(srv, { sub: 'tok-1', name: 'Tok' });
  const a2 = await tokenUser(srv, { sub: 'tok-1', name: 'Tok' });
  clients.push(a1, a2);
  const r = room('tok');
  await a1.join(r);
  await a2.join(r);
  const m = await a1.say(r, 'typo', 't1');
  const e = await a2.request({ type: 'edit', room: r, id: m.id, text: 'fixed' }, 'edited');
  assert.equal(e.type, 'edited', 'the same user on another connection is the author');
  const seen = await a1.next((x) => x.type === 'edited' && x.room === r);
  assert.deepEqual([seen.text, seen.ref], ['fixed', undefined]);
});
