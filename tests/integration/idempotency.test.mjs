// Idempotent send (spec: `ack`): the same client_id by the same user in the
// same room is stored once and acked with the first id and ts, also after a
// restart; plus the guest `resume` extension that makes this work for guests.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, connect, tokenUser, guest, sqlite, sleep, T } from './harness.mjs';

async function withServer(t, opts) {
  const s = await startServer(opts);
  t.after(async () => {
    const r = await s.stop();
    assert.equal(r.code, 0, `server exit code; stderr:\n${r.stderr}`);
    s.cleanup();
  });
  return s;
}

const rowsFor = (s, room, cid) =>
  sqlite(s.dbPath, `SELECT id, ts, user_id, text FROM messages WHERE room = '${room}' AND client_id = '${cid}'`);

/** After a barrier on each client, asserts how many `message`s with client_id each got. */
async function countMessages(clients, cid) {
  for (const c of clients) await c.barrier();
  await sleep(50);
  for (const c of clients) await c.barrier();
  return clients.map((c) => c.drain((m) => m.type === 'message' && m.client_id === cid).length);
}

test('same client_id twice (sequential): same id and ts, one row, one broadcast', async (t) => {
  const s = await withServer(t);
  const a = await tokenUser(s, { sub: 'alice', name: 'Alice' });
  const b = await guest(s, 'Bob');
  await a.join('lobby');
  await b.join('lobby');
  const ack1 = await a.say('lobby', 'first', 'dup-1');
  const ack2 = await a.say('lobby', 'first', 'dup-1');
  assert.equal(ack2.id, ack1.id);
  assert.equal(ack2.ts, ack1.ts);
  assert.equal(ack2.client_id, 'dup-1');
  assert.equal(ack2.room, 'lobby');
  // Different text with the same key: still the first message.
  const ack3 = await a.say('lobby', 'different text', 'dup-1');
  assert.deepEqual([ack3.id, ack3.ts], [ack1.id, ack1.ts]);
  const rows = rowsFor(s, 'lobby', 'dup-1');
  assert.equal(rows.length, 1);
  assert.equal(rows[0].text, 'first');
  assert.deepEqual(await countMessages([a, b], 'dup-1'), [1, 1]);
  a.terminate();
  b.terminate();
});

test('same client_id twice in flight at once: one row, identical acks, one broadcast', async (t) => {
  const s = await withServer(t);
  const a = await tokenUser(s, { sub: 'carol', name: 'Carol' });
  const b = await guest(s, 'Dan');
  await a.join('lobby');
  await b.join('lobby');
  for (let k = 0; k < 5; k++) {
    const cid = `burst-${k}`;
    a.send({ type: 'send', room: 'lobby', text: 't', client_id: cid, ref: `${cid}-1` });
    a.send({ type: 'send', room: 'lobby', text: 't', client_id: cid, ref: `${cid}-2` });
    const x = await a.next((m) => m.ref === `${cid}-1`);
    const y = await a.next((m) => m.ref === `${cid}-2`);
    assert.equal(x.type, 'ack', JSON.stringify(x));
    assert.equal(y.type, 'ack', JSON.stringify(y));
    assert.deepEqual([y.id, y.ts], [x.id, x.ts]);
    assert.equal(rowsFor(s, 'lobby', cid).length, 1);
    assert.deepEqual(await countMessages([a, b], cid), [1, 1], `broadcasts of ${cid}`);
  }
  a.terminate();
  b.terminate();
});

test('the key is per user and per room: same client_id elsewhere is a new message', async (t) => {
  const s = await withServer(t);
  const a = await tokenUser(s, { sub: 'erin', name: 'Erin' });
  const b = await tokenUser(s, { sub: 'frank', name: 'Frank' });
  for (const c of [a, b]) {
    await c.join('one');
    await c.join('two');
  }
  const x = await a.say('one', 'x', 'same');
  const y = await a.say('two', 'y', 'same');
  const z = await b.say('one', 'z', 'same');
  assert.equal(new Set([x.id, y.id, z.id]).size, 3);
  a.terminate();
  b.terminate();
});

test('the same user on two connections: a resend from the other connection is deduplicated', async (t) => {
  const s = await withServer(t);
  const a1 = await tokenUser(s, { sub: 'gina', name: 'Gina' });
  const a2 = await tokenUser(s, { sub: 'gina', name: 'Gina' });
  await a1.join('lobby');
  await a2.join('lobby');
  const x = await a1.say('lobby', 'hi', 'multi-1');
  const y = await a2.say('lobby', 'hi', 'multi-1');
  assert.deepEqual([y.id, y.ts], [x.id, x.ts]);
  assert.equal(rowsFor(s, 'lobby', 'multi-1').length, 1);
  a1.terminate();
  a2.terminate();
});

test('after a server restart (token user): same id and ts, still one row, no broadcast', async (t) => {
  let s = await startServer();
  const claims = { sub: 'henry', name: 'Henry' };
  const a = await tokenUser(s, claims);
  await a.join('lobby');
  const ack1 = await a.say('lobby', 'before restart', 'restart-1');
  s = await s.restart();
  t.after(async () => {
    const r = await s.stop();
    assert.equal(r.code, 0);
    s.cleanup();
  });
  const a2 = await tokenUser(s, claims);
  const b = await guest(s, 'Watcher');
  await a2.join('lobby', { since: ack1.id });
  await b.join('lobby', { since: ack1.id });
  const ack2 = await a2.say('lobby', 'before restart', 'restart-1');
  assert.deepEqual([ack2.id, ack2.ts, ack2.client_id], [ack1.id, ack1.ts, 'restart-1']);
  assert.equal(rowsFor(s, 'lobby', 'restart-1').length, 1);
  assert.deepEqual(await countMessages([a2, b], 'restart-1'), [0, 0]);
  // A new client_id after the restart gets a larger id.
  const ack3 = await a2.say('lobby', 'after restart', 'restart-2');
  assert.ok(ack3.id > ack1.id);
  a2.terminate();
  b.terminate();
});

test('guest ids are unique per connection, even with the same name', async (t) => {
  const s = await withServer(t);
  const ids = new Set();
  const cs = [];
  for (let i = 0; i < 8; i++) {
    const c = await guest(s, 'Same Name');
    assert.equal(c.user.name, 'Same Name');
    assert.equal(c.user.guest, true);
    ids.add(c.user.id);
    cs.push(c);
  }
  assert.equal(ids.size, 8);
  // A guest's resend from a new connection without resume is a different user: a new message.
  await cs[0].join('lobby');
  await cs[1].join('lobby');
  const x = await cs[0].say('lobby', 'x', 'g-1');
  const y = await cs[1].say('lobby', 'x', 'g-1');
  assert.notEqual(x.id, y.id);
  for (const c of cs) c.terminate();
});

test('guest resume: the welcome carries resume; hello {name, resume} gets the same id; resend is deduplicated', async (t) => {
  const s = await withServer(t);
  const a = await guest(s, 'Ivy');
  const b = await guest(s, 'Jack');
  assert.equal(typeof a.welcome.resume, 'string', `welcome has no resume: ${JSON.stringify(a.welcome)}`);
  assert.ok(a.welcome.resume.length > 0);
  await a.join('lobby');
  await b.join('lobby');
  const ack1 = await a.say('lobby', 'guest message', 'gr-1');
  a.terminate();
  await a.closed;
  const a2 = await connect(s.url);
  const w = await a2.hello({ name: 'Ivy', resume: a.welcome.resume });
  assert.equal(w.user.id, a.user.id);
  assert.equal(w.user.name, 'Ivy');
  assert.equal(w.user.guest, true);
  await a2.join('lobby');
  b.drain('message');
  const ack2 = await a2.say('lobby', 'guest message', 'gr-1');
  assert.deepEqual([ack2.id, ack2.ts], [ack1.id, ack1.ts]);
  assert.equal(rowsFor(s, 'lobby', 'gr-1').length, 1);
  assert.deepEqual(await countMessages([a2, b], 'gr-1'), [0, 0]);
  // A resume that is not the server's: not that user (a new guest id, or an error).
  const c = await connect(s.url);
  c.send({ type: 'hello', name: 'Ivy', resume: a.welcome.resume.slice(0, -2) + 'xx' });
  const r = await c.next();
  if (r.type === 'welcome') assert.notEqual(r.user.id, a.user.id);
  else assert.equal(r.type, 'error');
  for (const x of [a2, b, c]) x.terminate();
});

test('guest resume also works after a server restart', async (t) => {
  let s = await startServer();
  const a = await guest(s, 'Kim');
  await a.join('lobby');
  const ack1 = await a.say('lobby', 'pre', 'grr-1');
  const resume = a.welcome.resume;
  assert.equal(typeof resume, 'string', 'welcome has no resume');
  s = await s.restart();
  t.after(async () => {
    const r = await s.stop();
    assert.equal(r.code, 0);
    s.cleanup();
  });
  const a2 = await connect(s.url);
  const w = await a2.hello({ name: 'Kim', resume });
  assert.equal(w.user.id, a.user.id);
  await a2.join('lobby');
  const ack2 = await a2.say('lobby', 'pre', 'grr-1');
  assert.deepEqual([ack2.id, ack2.ts], [ack1.id, ack1.ts]);
  assert.equal(rowsFor(s, 'lobby', 'grr-1').length, 1);
  a2.terminate();
});
