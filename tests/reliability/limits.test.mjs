// limits.test.mjs -- memory and fairness bounds one client cannot get past
// (issue 10, items 1, 3, 4, 5): a reply's size, bytes held for a client
// that stops reading, rooms made and kept, rooms per connection, presence
// amplification. Each test failed on the server before these bounds.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  serverForTest, guest, sendMany, health, httpGet, waitFor, within, sleep, T,
} from '../integration/harness.mjs';

async function metric(s, name) {
  const r = await httpGet(`${s.http}/metrics`);
  const m = new RegExp(`^parley_${name}(?:\\{[^}]*\\})? ([0-9.e+-]+)$`, 'm').exec(r.body);
  return m ? Number(m[1]) : NaN;
}

const withServer = (t, args) => serverForTest(t, { args });

// 4,000 control characters: 24 KB once escaped as \u00XX, 6x its size.
const CONTROL = '\u0001'.repeat(4000);

test('a join or history reply is bounded in bytes: long catch-ups come in pages', { timeout: T(120000) }, async (t) => {
  const { s, clients } = await withServer(t, ['--rate', '100000', '--burst', '100000']);
  const w = await guest(s, 'Writer');
  clients.push(w);
  await w.join('pages');
  const acks = await sendMany(w, 'pages', 40, { window: 20, text: () => CONTROL });
  const ids = acks.map((a) => a.id);
  const r = await guest(s, 'Reader');
  clients.push(r);
  // join since 0: not all 40 (about 1 MB) in one frame; complete is false.
  const j = await r.request({ type: 'join', room: 'pages', since: 0 }, 'joined');
  const size = Buffer.byteLength(r.frames.find((f) => f.startsWith('{"type":"joined"')));
  assert.ok(size < 300 * 1024, `joined is ${size} bytes`);
  assert.ok(j.messages.length >= 1 && j.messages.length < 40, `${j.messages.length} messages`);
  assert.equal(j.complete, false);
  // The rest with history after, page by page, each bounded, nothing lost or repeated.
  const got = j.messages.map((m) => m.id);
  for (let after = got[got.length - 1], more = true; more;) {
    const h = await r.request({ type: 'history', room: 'pages', after, limit: 200 }, 'history');
    got.push(...h.messages.map((m) => m.id));
    more = h.has_more;
    after = got[got.length - 1];
  }
  assert.deepEqual(got, ids);
  for (const f of r.frames.filter((x) => x.startsWith('{"type":"history"')))
    assert.ok(Buffer.byteLength(f) < 300 * 1024, `history frame of ${Buffer.byteLength(f)} bytes`);
  // The latest page (history without before/after) is the newest messages, bounded too.
  const latest = await r.request({ type: 'history', room: 'pages', limit: 200 }, 'history');
  assert.ok(latest.messages.length < 40 && latest.has_more);
  assert.deepEqual(latest.messages.map((m) => m.id), ids.slice(ids.length - latest.messages.length));
});

test('a client asking for megabytes again and again is rate_limited, then served again', { timeout: T(120000) }, async (t) => {
  const { s, clients } = await withServer(t, ['--rate', '100000', '--burst', '100000']);
  const w = await guest(s, 'Writer');
  clients.push(w);
  await w.join('heavy');
  await sendMany(w, 'heavy', 40, { window: 20, text: () => CONTROL });
  const r = await guest(s, 'Greedy');
  clients.push(r);
  const answers = [];
  for (let i = 0; i < 30; i++) {
    const m = await r.request({ type: 'join', room: 'heavy', since: 0 }, 'joined');
    answers.push(m.type === 'error' ? m.code : m.type);
  }
  t.diagnostic(answers.join(','));
  // About 4 MiB at once, then 1 MiB per second: each of these asks for 256 KiB.
  assert.ok(answers.filter((x) => x === 'joined').length >= 10, 'the burst is served');
  assert.ok(answers.includes('rate_limited'), 'no read was refused');
  await sleep(T(1500));
  const again = await r.request({ type: 'join', room: 'heavy', since: 0 }, 'joined');
  assert.equal(again.type, 'joined', JSON.stringify(again).slice(0, 200));
});

test('clients that stop reading are closed with 1013 after --send-timeout, and what they held is freed', { timeout: T(180000) }, async (t) => {
  // Bounds high enough that only the send timeout can close them.
  const { s, clients } = await withServer(t, [
    '--rate', '100000', '--burst', '100000', '--send-timeout', '2',
    '--outq-max-bytes', String(256 << 20), '--outq-max-msgs', '100000',
  ]);
  const w = await guest(s, 'Writer');
  clients.push(w);
  await w.join('big');
  w.ws.on('message', () => w.drain('message'));
  const slow0 = await metric(s, 'slow_consumer_closes_total');
  const readers = [];
  for (let i = 0; i < 4; i++) {
    const c = await guest(s, `Stalled${i}`);
    clients.push(c);
    readers.push(c);
    await c.join('big');
    c.ws._socket.pause(); // stops reading
  }
  // About 10 MB each: more than the kernel's socket buffers take.
  await sendMany(w, 'big', 400, { window: 50, text: () => CONTROL, timeoutMs: T(60000) });
  await waitFor(async () => (await metric(s, 'slow_consumer_closes_total')) >= slow0 + 4,
    { timeoutMs: T(20000), what: 'four slow-consumer closes' });
  await waitFor(async () => (await health(s)).connections === 1, { timeoutMs: T(15000), what: 'stalled clients gone' });
  // Nothing is held for them any more.
  await waitFor(async () => (await metric(s, 'outq_depth')) === 0, { what: 'outbound queues empty' });
  for (const c of readers) {
    c.ws._socket.resume();
    const ci = await within(c.closed, T(10000));
    assert.ok(ci, 'a stalled client was not closed');
    assert.ok(ci.code === 1013 || ci.code === 1006, `closed with ${ci.code}`);
  }
});

test('a refused join creates no room; rooms are freed when nobody is in them', { timeout: T(120000) }, async (t) => {
  const { s, clients } = await withServer(t, []);
  const base = (await health(s)).rooms;
  const c = await guest(s, 'Many');
  clients.push(c);
  const names = Array.from({ length: 1000 }, (_, i) => `many-${i}`);
  for (let i = 0; i < names.length; i += 50) {
    await Promise.all(names.slice(i, i + 50).map((r) => c.join(r)));
    await sleep(500); // the general limit: 100 requests per second
  }
  assert.equal((await health(s)).rooms, base + 1000);
  // Over the limit: refused, and nothing made.
  for (let i = 0; i < 20; i++) {
    const e = await c.request({ type: 'join', room: `over-${i}` }, 'error');
    assert.equal(e.code, 'bad_request');
  }
  assert.equal((await health(s)).rooms, base + 1000);
  // Leaving them all: the connection is in no room and may join again (item 4).
  for (let i = 0; i < names.length; i += 50) {
    await Promise.all(names.slice(i, i + 50).map((r) => c.request({ type: 'leave', room: r }, 'left')));
    await sleep(500);
  }
  const j = await c.request({ type: 'join', room: 'after-leaving' }, 'joined');
  assert.equal(j.type, 'joined', JSON.stringify(j));
  // Left rooms it no longer remembers are freed while it is still connected.
  const h = await health(s);
  assert.ok(h.rooms <= base + 1 + 64, `${h.rooms - base} rooms still in memory`);
  c.terminate();
  await waitFor(async () => (await health(s)).rooms === base, { what: 'every room freed' });
  // A room freed from memory lives on in the database.
  const d = await guest(s, 'Back');
  clients.push(d);
  await d.join('many-1');
  const rooms = await d.request({ type: 'rooms' }, 'rooms');
  assert.ok(rooms.rooms.some((x) => x.name === 'many-1'));
});

test('toggling join and leave does not amplify presence', { timeout: T(60000) }, async (t) => {
  const { s, clients } = await withServer(t, []);
  const watcher = await guest(s, 'Watcher');
  const toggler = await guest(s, 'Toggler');
  clients.push(watcher, toggler);
  await watcher.join('toggle');
  const seen = [];
  watcher.ws.on('message', (d) => {
    const m = JSON.parse(d.toString('utf8'));
    if (m.type === 'presence' && m.user.id === toggler.welcome.user.id) seen.push(m.event);
  });
  for (let i = 0; i < 40; i++) {
    await toggler.join('toggle');
    await toggler.request({ type: 'leave', room: 'toggle' }, 'left');
  }
  // Old server: 80 presence frames. Now at most one change per second.
  await sleep(T(2500));
  t.diagnostic(`presence seen: ${seen.join(',')}`);
  assert.ok(seen.length <= 8, `${seen.length} presence frames for 80 changes`);
  assert.ok(seen.length >= 1);
  assert.equal(seen[seen.length - 1], 'leave', 'the others end up told the latest state');
  // Members agree: the toggler is not in the room.
  const j = await watcher.join('toggle');
  assert.ok(!j.members.some((u) => u.id === toggler.welcome.user.id));
});
