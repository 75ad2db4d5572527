// The HTTP API (../shared/spec/http-api.md, docs/api.md) against the real
// binary: the key check first (401 on every path, keys never logged or
// taken from the URL), the body rules (JSON, 64 KiB, truncated or slow
// bodies), every field's refusals, and each endpoint's effect as the
// WebSocket clients see it. Two event loops, so delivery crosses loops.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import {
  sharedServer, serverForTest, connect, guest, tokenUser, sleep, T, waitFor,
  sqlite, fullHistory, cps, health, runParley, mintToken,
} from './harness.mjs';

const K1 = 'k1-0123456789abcdef-first-key';
const K2 = 'k2-fedcba9876543210-second-key';
const MAX_TEXT = 300;

let srv;
const clients = sharedServer(
  { args: ['--api-key', `${K1},${K2}`, '--threads', '2', '--max-text', String(MAX_TEXT), '--log-level', 'debug'] },
  (s) => (srv = s),
);

/** One API call with fetch: resolves {status, headers, body (parsed or text)}. */
async function api(path, { method, body, key = K1, headers = {}, raw, server = srv } = {}) {
  const h = { ...headers };
  if (key !== null) h.authorization = `Bearer ${key}`;
  const hasBody = body !== undefined || raw !== undefined;
  if (hasBody && !('content-type' in h)) h['content-type'] = 'application/json';
  const r = await fetch(`${server.http}${path}`, {
    method: method || (hasBody ? 'POST' : 'GET'),
    headers: h,
    body: raw !== undefined ? raw : body !== undefined ? JSON.stringify(body) : undefined,
  });
  const text = await r.text();
  let parsed = text;
  try { parsed = JSON.parse(text); } catch {}
  return { status: r.status, headers: r.headers, body: parsed };
}

function assertError(r, status, code) {
  assert.equal(r.status, status, JSON.stringify(r.body));
  assert.deepEqual(Object.keys(r.body), ['error']);
  assert.deepEqual(Object.keys(r.body.error).sort(), ['code', 'message']);
  assert.equal(r.body.error.code, code);
  assert.equal(typeof r.body.error.message, 'string');
}

/** Opens a raw TCP connection; returns {sock, data(), closed}. */
function raw(port) {
  const sock = net.connect(port, '127.0.0.1');
  let buf = '';
  sock.setEncoding('utf8');
  sock.on('data', (d) => (buf += d));
  sock.on('error', () => {});
  const closed = new Promise((r) => sock.on('close', r));
  const open = new Promise((r) => sock.on('connect', r));
  return { sock, data: () => buf, closed, open };
}

const head = (path, len, extra = '') =>
  `POST ${path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${K1}\r\nContent-Type: application/json\r\n` +
  (len === null ? '' : `Content-Length: ${len}\r\n`) + extra + '\r\n';

const pub = (room, text, more = {}) => ({ room, text, user: { id: 'bot-1', name: 'Robo' }, ...more });

// ---------------------------------------------------------------------------
// Auth

test('no --api-key: every /api/ path is 404, with or without a key', async (t) => {
  const { s } = await serverForTest(t);
  for (const p of ['/api/rooms', '/api/publish', '/api/nope', '/api']) {
    assertError(await api(p, { server: s }), 404, 'not_found');
    assertError(await api(p, { server: s, key: null }), 404, 'not_found');
  }
});

test('a bad --api-key stops the server at start, without repeating the key', async () => {
  for (const bad of ['short-key', `${K1},`, `${K1},,${K2}`, 'has space in the key 0123']) {
    const r = await runParley(['--api-key', bad, '--port', '1']);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /--api-key/);
    for (const part of bad.split(',')) if (part) assert.ok(!r.stderr.includes(part), r.stderr);
  }
  const e = await runParley(['--port', '1'], { env: { PARLEY_API_KEY: 'tiny' } });
  assert.equal(e.code, 2);
  assert.ok(!e.stderr.includes('tiny'));
});

test('a missing, wrong or other-scheme key is 401 on known and unknown paths', async () => {
  const bad = [
    { key: null },
    { key: 'wrong-key-wrong-key-wrong' },
    { key: K1.slice(0, -1) },
    { key: K1 + 'x' },
    { key: null, headers: { authorization: `Basic ${Buffer.from('a:' + K1).toString('base64')}` } },
    { key: null, headers: { authorization: K1 } },
    { key: null, headers: { authorization: `Token ${K1}` } },
  ];
  for (const p of ['/api/rooms', '/api/history?room=x', '/api/nope', '/api/kick', '/api']) {
    for (const b of bad) {
      const r = await api(p, b);
      assertError(r, 401, 'unauthorized');
      assert.equal(r.headers.get('www-authenticate'), 'Bearer');
    }
  }
  // POST too, before any look at the body or its type.
  assertError(await api('/api/publish', { key: 'nope-nope-nope-nope', raw: 'not json', headers: { 'content-type': 'text/plain' } }), 401, 'unauthorized');
  // The right key on an unknown path: 404.
  assertError(await api('/api/nope'), 404, 'not_found');
  assertError(await api('/api/bans', { body: { user: 'x' } }), 404, 'not_found');
});

test('key rotation: both configured keys work, case-insensitive scheme', async () => {
  for (const key of [K1, K2]) {
    const r = await api('/api/rooms', { key });
    assert.equal(r.status, 200);
    assert.ok(Array.isArray(r.body.rooms));
  }
  const r = await api('/api/rooms', { key: null, headers: { authorization: `bearer ${K2}` } });
  assert.equal(r.status, 200);
});

test('a key in the URL is refused and never logged', async () => {
  for (const q of ['key', 'api_key', 'access_token', 'token', 'API_KEY']) {
    assertError(await api(`/api/rooms?${q}=${K1}`), 401, 'unauthorized');
    assertError(await api(`/api/history?room=lobby&${q}=${K2}`, { key: null }), 401, 'unauthorized');
  }
  await sleep(100);
  const out = srv.stdout + srv.stderr;
  assert.ok(out.includes('api-unauthorized'), 'refusals are logged');
  assert.ok(!out.includes(K1) && !out.includes(K2), 'no key in the log');
  assert.ok(!out.includes('access_token'), 'no query in the log');
});

// ---------------------------------------------------------------------------
// Bodies

test('wrong method: 405 with Allow', async () => {
  let r = await api('/api/publish');
  assertError(r, 405, 'method_not_allowed');
  assert.equal(r.headers.get('allow'), 'POST');
  r = await api('/api/rooms', { body: {} });
  assertError(r, 405, 'method_not_allowed');
  assert.equal(r.headers.get('allow'), 'GET');
  r = await api('/api/history?room=a', { method: 'DELETE' });
  assertError(r, 405, 'method_not_allowed');
  r = await api('/api/token', { method: 'PUT', body: {} });
  assertError(r, 405, 'method_not_allowed');
});

test('Content-Type must be application/json (400 bad_request)', async () => {
  assertError(await api('/api/publish', { raw: JSON.stringify(pub('lobby', 'x')), headers: { 'content-type': 'text/plain' } }), 400, 'bad_request');
  assertError(await api('/api/publish', { raw: JSON.stringify(pub('lobby', 'x')), headers: { 'content-type': 'application/x-www-form-urlencoded' } }), 400, 'bad_request');
  const r = await api('/api/publish', { raw: JSON.stringify(pub('ct-room', 'x')), headers: { 'content-type': 'Application/JSON; charset=utf-8' } });
  assert.equal(r.status, 200);
});

test('malformed JSON and non-objects are bad_json', async () => {
  for (const raw of ['', 'nope', '{"room":', '[1,2]', '"str"', '42', 'null', '{"a":1} x', '\u0000{}']) {
    assertError(await api('/api/publish', { raw }), 400, 'bad_json');
    assertError(await api('/api/token', { raw }), 400, 'bad_json');
  }
  // Invalid UTF-8.
  assertError(await api('/api/publish', { raw: Buffer.from([0x7b, 0xff, 0x7d]) }), 400, 'bad_json');
});

test('a declared body over 64 KiB is 413 before it is read', async () => {
  const c = raw(srv.port);
  await c.open;
  c.sock.write(head('/api/publish', 65 * 1024 + 1));
  await waitFor(() => c.data().includes('\r\n\r\n'), { what: '413' });
  assert.match(c.data(), /^HTTP\/1.1 413/);
  assert.match(c.data(), /"too_large"/);
  await within(c.closed, T(5000), 'the connection closes after 413');
  // Exactly 64 KiB is allowed through to parsing.
  const r = await api('/api/publish', { raw: ' '.repeat(64 * 1024 - 2) + '{}' });
  assertError(r, 400, 'bad_request');
});

test('a Content-Length that is not a number (a sign, hex, words, overflowing, too long) is 400 bad_request, not 413', async () => {
  for (const len of ['abc', '-1', '+5', '0x10', '1 2', '99999999999999999999999', '18446744073709551617', '0'.repeat(40) + '2']) {
    const c = raw(srv.port);
    await c.open;
    c.sock.write(head('/api/publish', len) + '{}');
    await waitFor(() => /\r\n\r\n[^]*\}/.test(c.data()), { what: `an answer to Content-Length ${len}` });
    assert.match(c.data(), /^HTTP\/1.1 400/, `Content-Length ${len}`);
    const body = JSON.parse(c.data().slice(c.data().indexOf('\r\n\r\n') + 4));
    assert.deepEqual(Object.keys(body.error).sort(), ['code', 'message']);
    assert.equal(body.error.code, 'bad_request', `Content-Length ${len}`);
    await within(c.closed, T(5000), 'the connection closes after it');
  }
});

test('a chunked or streamed body over 64 KiB is 413 as it passes the bound', async () => {
  const c = raw(srv.port);
  await c.open;
  c.sock.write(head('/api/publish', null, 'Transfer-Encoding: chunked\r\n'));
  const chunk = 'a'.repeat(8192);
  let sent = 0;
  while (!c.data() && sent < 200 * 1024 && !c.sock.destroyed) {
    c.sock.write(`${chunk.length.toString(16)}\r\n${chunk}\r\n`);
    sent += chunk.length;
    await sleep(5);
  }
  await waitFor(() => c.data().includes('\r\n\r\n'), { what: '413' });
  assert.match(c.data(), /^HTTP\/1.1 413/);
  assert.ok(sent < 150 * 1024, `answered after ${sent} bytes`);
  await within(c.closed, T(5000), 'closed');
  // A small chunked body works.
  const d = raw(srv.port);
  await d.open;
  const body = JSON.stringify(pub('chunky', 'in chunks'));
  d.sock.write(head('/api/publish', null, 'Transfer-Encoding: chunked\r\n') +
    `5\r\n${body.slice(0, 5)}\r\n${(body.length - 5).toString(16)}\r\n${body.slice(5)}\r\n0\r\n\r\n`);
  await waitFor(() => d.data().includes('"ts"'), { what: 'chunked publish' });
  assert.match(d.data(), /^HTTP\/1.1 200/);
  d.sock.destroy();
});

async function within(p, ms, what) {
  let timer;
  const to = new Promise((_, rej) => (timer = setTimeout(() => rej(new Error(`timeout: ${what}`)), ms)));
  try { return await Promise.race([p, to]); } finally { clearTimeout(timer); }
}

test('a truncated body: the client hangs (timed out) or closes; the server carries on', async () => {
  const hang = raw(srv.port);
  await hang.open;
  hang.sock.write(head('/api/publish', 100) + '{"room":');
  const t0 = Date.now();
  await within(hang.closed, T(20000), 'the server times the body out');
  assert.ok(Date.now() - t0 >= 4500, "not before the 5 s between pieces");
  for (let i = 0; i < 20; i++) {
    const c = raw(srv.port);
    await c.open;
    c.sock.write(head('/api/publish', 100) + '{"room":"x"');
    if (i % 2) await sleep(2);
    c.sock.destroy();
  }
  assert.equal((await health(srv)).status, 'ok');
});

test('a body dripped slower than the whole-body deadline (10 s) is dropped', async () => {
  const c = raw(srv.port);
  await c.open;
  const t0 = Date.now();
  c.sock.write(head('/api/publish', 1000) + '{');
  // One byte every 3 s: each within libwebsockets' 5 s between pieces.
  const drip = setInterval(() => { if (!c.sock.destroyed) c.sock.write(' '); }, 3000);
  try {
    await within(c.closed, T(25000), 'the deadline closes it');
  } finally {
    clearInterval(drip);
  }
  const ms = Date.now() - t0;
  assert.ok(ms >= 9000 && ms < T(16000), `closed after ${ms} ms`);
  assert.equal(c.data(), '', 'no answer');
});

test('a slow body within the timeout is read and answered', async () => {
  const c = raw(srv.port);
  await c.open;
  const body = JSON.stringify(pub('slow', 'slowly'));
  c.sock.write(head('/api/publish', Buffer.byteLength(body)));
  for (const piece of body.match(/.{1,10}/g)) {
    c.sock.write(piece);
    await sleep(150);
  }
  await waitFor(() => c.data().includes('"ts"'), { what: 'the answer' });
  assert.match(c.data(), /^HTTP\/1.1 200/);
  c.sock.destroy();
});

// ---------------------------------------------------------------------------
// Fields

test('publish: every field is checked like a send', async () => {
  const cases = [
    [{ text: 'x', user: { id: 'b', name: 'B' } }, 'bad_request'],
    [{ room: 5, text: 'x', user: { id: 'b', name: 'B' } }, 'bad_request'],
    [pub('Bad!', 'x'), 'bad_room'],
    [pub('', 'x'), 'bad_room'],
    [pub('dm-nope', 'x'), 'bad_room'],
    [pub('a'.repeat(65), 'x'), 'bad_room'],
    [pub('lobby', ''), 'too_long'],
    [pub('lobby', cps(MAX_TEXT + 1)), 'too_long'],
    [pub('lobby', 7), 'bad_request'],
    [{ room: 'lobby', text: 'x' }, 'bad_request'],
    [{ room: 'lobby', text: 'x', user: 'bot' }, 'bad_request'],
    [{ room: 'lobby', text: 'x', user: { id: 'b' } }, 'bad_request'],
    [{ room: 'lobby', text: 'x', user: { id: '', name: 'B' } }, 'bad_request'],
    [{ room: 'lobby', text: 'x', user: { id: 'g_0123456789abcdef', name: 'B' } }, 'bad_request'],
    [{ room: 'lobby', text: 'x', user: { id: 'x'.repeat(129), name: 'B' } }, 'bad_request'],
    [{ room: 'lobby', text: 'x', user: { id: 'a\nb', name: 'B' } }, 'bad_request'],
    [{ room: 'lobby', text: 'x', user: { id: 'b', name: '' } }, 'bad_request'],
    [{ room: 'lobby', text: 'x', user: { id: 'b', name: '   ' } }, 'bad_request'],
    [{ room: 'lobby', text: 'x', user: { id: 'b', name: 'n'.repeat(33) } }, 'bad_request'],
    [pub('lobby', 'x', { client_id: '' }), 'bad_request'],
    [pub('lobby', 'x', { client_id: 'c'.repeat(65) }), 'bad_request'],
    [pub('lobby', 'x', { client_id: 12 }), 'bad_request'],
    [pub('lobby', 'a\u0000b'), 'bad_request'],
  ];
  for (const [body, code] of cases) assertError(await api('/api/publish', { body }), 400, code);
  assert.equal((await api('/api/publish', { body: pub('lobby', cps(MAX_TEXT)) })).status, 200);
  // Bots do not write into DM rooms.
  assertError(await api('/api/publish', { body: pub('dm-0123456789abcdef0123456789abcdef', 'x') }), 403, 'forbidden');
});

test('delete and history: bad fields', async () => {
  for (const body of [{ room: 'lobby' }, { room: 'lobby', id: 0 }, { room: 'lobby', id: 'x' }, { room: 'lobby', id: 1.5 }, { id: 1 }])
    assertError(await api('/api/delete', { body }), 400, 'bad_request');
  assertError(await api('/api/delete', { body: { room: 'A', id: 1 } }), 400, 'bad_room');
  for (const q of ['', 'room=lobby&limit=0', 'room=lobby&limit=201', 'room=lobby&limit=abc', 'room=lobby&before=1&after=2',
    'room=lobby&before=-1', 'room=lobby&colour=red', 'room=lobby&room=other', 'room=lobby&limit=1.5'])
    assertError(await api(`/api/history?${q}`), 400, 'bad_request');
  assertError(await api('/api/history?room=Nope'), 400, 'bad_room');
  assertError(await api('/api/rooms?x=1'), 400, 'bad_request');
});

test('token: bad fields', async () => {
  const ok = { sub: 'user-1', name: 'Ann' };
  const cases = [
    { name: 'Ann' }, { sub: 'u' }, { sub: '', name: 'A' }, { sub: 'g_0123456789abcdef', name: 'A' },
    { sub: 'x'.repeat(129), name: 'A' }, { sub: 'u', name: '' }, { sub: 'u', name: 'n'.repeat(33) },
    { ...ok, ttl: 0 }, { ...ok, ttl: -5 }, { ...ok, ttl: 1.5 }, { ...ok, ttl: 30 * 86400 + 1 }, { ...ok, ttl: '60' },
    { ...ok, rooms: 'lobby' }, { ...ok, rooms: ['Bad!'] }, { ...ok, rooms: [1] }, { ...ok, role: 'king' },
    { ...ok, role: 1 }, { ...ok, dm: 'no' },
  ];
  for (const body of cases) assertError(await api('/api/token', { body }), 400, 'bad_request');
  assert.equal((await api('/api/token', { body: { ...ok, ttl: 30 * 86400 } })).status, 200);
});

// ---------------------------------------------------------------------------
// Effects

test('publish: members on both loops get a bot message, after commit; history and since show it', async () => {
  const members = [];
  for (let i = 0; i < 4; i++) {
    const c = await guest(srv, `m${i}`);
    clients.push(c);
    await c.join('botroom');
    members.push(c);
  }
  const r = await api('/api/publish', { body: pub('botroom', 'beep boop', { client_id: 'cid-1' }) });
  assert.equal(r.status, 200);
  assert.deepEqual(Object.keys(r.body).sort(), ['id', 'ts']);
  for (const c of members) {
    const m = await c.next((m) => m.type === 'message' && m.room === 'botroom');
    assert.equal(m.id, r.body.id);
    assert.equal(m.ts, r.body.ts);
    assert.deepEqual(m.user, { id: 'bot-1', name: 'Robo', bot: true });
    assert.equal(m.text, 'beep boop');
    assert.equal(m.client_id, 'cid-1');
  }
  const h = await api('/api/history?room=botroom');
  assert.equal(h.status, 200);
  assert.equal(h.body.has_more, false);
  assert.deepEqual(h.body.messages.map((m) => [m.id, m.user.bot, m.text]), [[r.body.id, true, 'beep boop']]);
  const wsh = await fullHistory(members[0], 'botroom');
  assert.equal(wsh[0].user.bot, true);
  const late = await guest(srv, 'late');
  clients.push(late);
  const j = await late.join('botroom', { since: r.body.id - 1 });
  assert.equal(j.messages[0].user.bot, true);
  // Search shows it as a bot's too.
  const found = await members[0].request({ type: 'search', q: 'boop', room: 'botroom' }, 'search');
  assert.deepEqual(found.messages.map((m) => [m.id, m.user.bot, m.room]), [[r.body.id, true, 'botroom']]);
  // A guest's message has no bot flag.
  await members[0].say('botroom', 'human');
  const h2 = await api('/api/history?room=botroom');
  assert.equal(h2.body.messages[1].user.bot, undefined);
  // The moderation log has the publish, by 'api'.
  const log = sqlite(srv.dbPath, `SELECT actor, action, target, room, message_id FROM mod_log WHERE message_id=${r.body.id}`);
  assert.deepEqual(log, [{ actor: 'api', action: 'publish', target: 'bot-1', room: 'botroom', message_id: r.body.id }]);
});

test('publish is idempotent by user id + client_id; without one the server makes one', async () => {
  const a = await api('/api/publish', { body: pub('idem', 'once', { client_id: 'same' }) });
  const b = await api('/api/publish', { body: pub('idem', 'twice?', { client_id: 'same' }) });
  assert.equal(a.status, 200);
  assert.deepEqual(b.body, a.body);
  const other = await api('/api/publish', { body: { ...pub('idem', 'other bot'), user: { id: 'bot-2', name: 'R2' }, client_id: 'same' } });
  assert.notEqual(other.body.id, a.body.id);
  const n1 = await api('/api/publish', { body: pub('idem', 'no cid') });
  const n2 = await api('/api/publish', { body: pub('idem', 'no cid') });
  assert.notEqual(n1.body.id, n2.body.id);
  const h = await api('/api/history?room=idem');
  assert.equal(h.body.messages.length, 4);
  const made = h.body.messages.filter((m) => m.text === 'no cid').map((m) => m.client_id);
  assert.equal(made.length, 2);
  for (const cid of made) assert.match(cid, /^api-[0-9a-f]{32}$/);
  assert.notEqual(made[0], made[1]);
});

test('delete: members get deleted by the API; again, or unknown, is 404', async () => {
  const c = await guest(srv, 'watcher');
  clients.push(c);
  await c.join('delroom');
  const ack = await c.say('delroom', 'to be removed');
  await c.next((m) => m.type === 'message' && m.id === ack.id);
  const r = await api('/api/delete', { body: { room: 'delroom', id: ack.id } });
  assert.equal(r.status, 200);
  assert.deepEqual(Object.keys(r.body), ['rev']);
  assert.ok(r.body.rev > ack.id);
  const d = await c.next('deleted');
  assert.deepEqual(d, { type: 'deleted', room: 'delroom', id: ack.id, rev: r.body.rev, by: { id: 'api', name: 'API' } });
  assertError(await api('/api/delete', { body: { room: 'delroom', id: ack.id } }), 404, 'not_found');
  assertError(await api('/api/delete', { body: { room: 'delroom', id: 999999 } }), 404, 'not_found');
  assertError(await api('/api/delete', { body: { room: 'otherroom', id: ack.id } }), 404, 'not_found');
  const h = await api('/api/history?room=delroom');
  assert.equal(h.body.messages[0].deleted, true);
  const log = sqlite(srv.dbPath, `SELECT actor, action, message_id FROM mod_log WHERE action='delete' AND message_id=${ack.id}`);
  assert.deepEqual(log, [{ actor: 'api', action: 'delete', message_id: ack.id }]);
});

test('security: a bot message is not the message of the token user whose id the bot took: it edits or deletes it only as a moderator', async () => {
  const sub = `same-${Date.now()}`;
  const user = await tokenUser(srv, { sub, name: 'Human' });
  const modr = await tokenUser(srv, { sub: `${sub}-mod`, name: 'Mod', role: 'mod' });
  clients.push(user, modr);
  await user.join('botsame');
  const mine = await user.say('botsame', 'my own');
  const r = await api('/api/publish', { body: { room: 'botsame', text: 'said by the bot', user: { id: sub, name: 'Robo' } } });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  const m = await user.next((x) => x.type === 'message' && x.id === r.body.id);
  assert.equal(m.user.bot, true);
  const e = await user.request({ type: 'edit', room: 'botsame', id: r.body.id, text: 'hijacked' }, 'edited');
  assert.deepEqual([e.type, e.code], ['error', 'forbidden'], JSON.stringify(e));
  const d = await user.request({ type: 'delete', room: 'botsame', id: r.body.id }, 'deleted');
  assert.deepEqual([d.type, d.code], ['error', 'forbidden'], JSON.stringify(d));
  const h = await api('/api/history?room=botsame');
  assert.equal(h.body.messages.find((x) => x.id === r.body.id).text, 'said by the bot');
  // Its own message is still its own.
  const own = await user.request({ type: 'edit', room: 'botsame', id: mine.id, text: 'mine, edited' }, 'edited');
  assert.equal(own.type, 'edited', JSON.stringify(own));
  // A moderator deletes the bot's message as a moderator: logged, with the bot as the target.
  await modr.join('botsame');
  const md = await modr.request({ type: 'delete', room: 'botsame', id: r.body.id }, 'deleted');
  assert.equal(md.type, 'deleted', JSON.stringify(md));
  const log = sqlite(srv.dbPath, `SELECT actor, action, target FROM mod_log WHERE action='delete' AND message_id=${r.body.id}`);
  assert.deepEqual(log, [{ actor: `${sub}-mod`, action: 'delete', target: sub }]);
});

test('security: "api", the API\'s own actor in mod_log, is no token sub and no bot id', async () => {
  const c = await connect(srv.url);
  clients.push(c);
  c.send({ type: 'hello', token: mintToken({ sub: 'api', name: 'Mallory' }) });
  const e = await c.next();
  assert.deepEqual([e.type, e.code], ['error', 'unauthorized'], JSON.stringify(e));
  assert.equal((await c.closed).code, 1008);
  assertError(await api('/api/publish', { body: pub('apiname', 'x', { user: { id: 'api', name: 'API' } }) }), 400, 'bad_request');
  assertError(await api('/api/token', { body: { sub: 'api', name: 'API' } }), 400, 'bad_request');
  // Other ids that contain it are fine.
  assert.equal((await api('/api/publish', { body: pub('apiname', 'x', { user: { id: 'api-bot', name: 'API' } }) })).status, 200);
});

test('the API, above every role, mutes and unmutes an admin (no mod or admin could)', async () => {
  const a = await tokenUser(srv, { sub: `apiadmin-${Date.now()}`, name: 'Admin', role: 'admin' });
  clients.push(a);
  await a.join('apirank');
  const r = await api('/api/mute', { body: { room: 'apirank', user: a.user.id, minutes: 5 } });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  const e = await a.request({ type: 'send', room: 'apirank', text: 'x', client_id: 'ar1' }, 'ack');
  assert.deepEqual([e.type, e.code, e.sanction], ['error', 'forbidden', 'mute'], JSON.stringify(e));
  assert.equal((await api('/api/unmute', { body: { room: 'apirank', user: a.user.id } })).status, 200);
  assert.ok((await a.say('apirank', 'back')).id > 0);
});

test('history pages with before, after and limit', async () => {
  const ids = [];
  for (let i = 0; i < 7; i++) ids.push((await api('/api/publish', { body: pub('pages', `p${i}`) })).body.id);
  let r = await api('/api/history?room=pages&limit=3');
  assert.deepEqual(r.body.messages.map((m) => m.id), ids.slice(4));
  assert.equal(r.body.has_more, true);
  r = await api(`/api/history?room=pages&limit=3&before=${ids[4]}`);
  assert.deepEqual(r.body.messages.map((m) => m.id), ids.slice(1, 4));
  assert.equal(r.body.has_more, true);
  r = await api(`/api/history?room=pages&limit=3&before=${ids[1]}`);
  assert.deepEqual(r.body.messages.map((m) => m.id), [ids[0]]);
  assert.equal(r.body.has_more, false);
  r = await api('/api/history?room=pages&after=0&limit=5');
  assert.deepEqual(r.body.messages.map((m) => m.id), ids.slice(0, 5));
  assert.equal(r.body.has_more, true);
  r = await api(`/api/history?room=pages&after=${ids[4]}&limit=200`);
  assert.deepEqual(r.body.messages.map((m) => m.id), ids.slice(5));
  assert.equal(r.body.has_more, false);
  r = await api('/api/history?room=never-used');
  assert.deepEqual(r.body, { messages: [], has_more: false });
});

test('rooms: rooms with messages or members, members from every loop, DM rooms flagged', async () => {
  const a = await tokenUser(srv, { sub: 'dm-a', name: 'A' });
  const b = await tokenUser(srv, { sub: 'dm-b', name: 'B' });
  clients.push(a, b);
  const j = await a.request({ type: 'dm', user: 'dm-b' }, 'joined');
  const ack = await a.say(j.room, 'psst');
  const watchers = [];
  for (let i = 0; i < 3; i++) {
    const c = await guest(srv, `w${i}`);
    clients.push(c);
    await c.join('only-members');
    watchers.push(c);
  }
  const r = await api('/api/rooms');
  assert.equal(r.status, 200);
  const by = Object.fromEntries(r.body.rooms.map((x) => [x.name, x]));
  assert.deepEqual(by['only-members'], { name: 'only-members', members: 3, last_id: 0 });
  assert.equal(by[j.room].dm, true);
  assert.equal(by[j.room].last_id, ack.id);
  assert.ok(by.pages && by.pages.members === 0 && by.pages.last_id > 0);
  for (const x of r.body.rooms) if (!x.name.startsWith('dm-')) assert.equal(x.dm, undefined);
  // The API may read a DM room's history; one that does not exist is 404.
  const h = await api(`/api/history?room=${j.room}`);
  assert.equal(h.body.messages[0].text, 'psst');
  assertError(await api('/api/history?room=dm-00000000000000000000000000000000'), 404, 'not_found');
  assertError(await api('/api/delete', { body: { room: 'dm-00000000000000000000000000000000', id: ack.id } }), 404, 'not_found');
  // ... and delete in it: both users get the deleted.
  const del = await api('/api/delete', { body: { room: j.room, id: ack.id } });
  assert.equal(del.status, 200);
  for (const u of [a, b]) {
    const d = await u.next((m) => m.type === 'deleted' && m.id === ack.id);
    assert.deepEqual(d.by, { id: 'api', name: 'API' });
  }
  for (const c of watchers) c.terminate();
  await waitFor(async () => (await api('/api/rooms')).body.rooms.every((x) => x.name !== 'only-members'), { what: 'empty room gone' });
});

test('token: minted by the API, accepted by hello; 409 without --jwt-secret', async (t) => {
  const r = await api('/api/token', { body: { sub: 'site-user-7', name: 'Seven', ttl: 120, rooms: ['lobby'], role: 'mod', dm: false } });
  assert.equal(r.status, 200);
  const payload = JSON.parse(Buffer.from(r.body.token.split('.')[1], 'base64url'));
  assert.equal(payload.sub, 'site-user-7');
  assert.equal(payload.role, 'mod');
  assert.equal(payload.dm, false);
  assert.ok(Math.abs(payload.exp - (Date.now() / 1000 + 120)) < 5);
  const c = await connect(srv.url);
  clients.push(c);
  const w = await c.hello({ token: r.body.token });
  assert.equal(w.type, 'welcome');
  assert.equal(w.user.id, 'site-user-7');
  assert.equal(w.user.name, 'Seven');
  await c.join('lobby');
  const no = await c.request({ type: 'join', room: 'elsewhere' }, 'error');
  assert.equal(no.code, 'forbidden');
  const plain = await api('/api/token', { body: { sub: 'u2', name: 'Two' } });
  const p2 = JSON.parse(Buffer.from(plain.body.token.split('.')[1], 'base64url'));
  assert.ok(Math.abs(p2.exp - (Date.now() / 1000 + 3600)) < 5);
  const { s } = await serverForTest(t, { secret: null, args: ['--api-key', K1] });
  assertError(await api('/api/token', { server: s, body: { sub: 'u', name: 'U' } }), 409, 'conflict');
});

test('disconnect mid-request, many times: no crash, no leak, committed messages still delivered', async () => {
  const member = await guest(srv, 'listener');
  clients.push(member);
  await member.join('dropped');
  const N = 150;
  const sent = [];
  for (let i = 0; i < N; i++) {
    const c = raw(srv.port);
    const body = JSON.stringify(pub('dropped', `m${i}`, { client_id: `drop-${i}` }));
    // The whole request is sent, then the socket closed at once or a
    // moment later: mostly while its commit is in flight.
    sent.push(c.open.then(() => new Promise((done) => c.sock.write(head('/api/publish', Buffer.byteLength(body)) + body, () => {
      if (i % 3 === 0) c.sock.destroy();
      else setTimeout(() => c.sock.destroy(), i % 4);
      done();
    }))));
  }
  await Promise.all(sent);
  // Every request that reached the database was committed and delivered,
  // its connection gone or not.
  await sleep(T(1000));
  const h = await fullHistory(member, 'dropped');
  assert.ok(h.length > N / 2, `most requests were stored (${h.length})`);
  const got = member.drain((m) => m.type === 'message' && m.room === 'dropped');
  assert.equal(got.length, h.length, 'each stored message was delivered live');
  // Reads dropped mid-way too.
  const reads = [];
  for (let i = 0; i < 50; i++) {
    const c = raw(srv.port);
    reads.push(c.open.then(() => new Promise((done) => c.sock.write(
      `GET /api/history?room=dropped&limit=200 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${K1}\r\n\r\n`,
      () => { setTimeout(() => c.sock.destroy(), i % 3); done(); }))));
  }
  await Promise.all(reads);
  await sleep(200);
  assert.equal((await health(srv)).status, 'ok');
  assert.equal((await api('/api/history?room=dropped&limit=1')).status, 200);
});

test('keep-alive: several requests on one connection', async () => {
  const c = raw(srv.port);
  await c.open;
  const body = JSON.stringify(pub('keep', 'k'));
  c.sock.write(head('/api/publish', Buffer.byteLength(body)) + body);
  await waitFor(() => (c.data().match(/"ts"/g) || []).length === 1, { what: 'first' });
  c.sock.write(`GET /api/history?room=keep HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${K1}\r\n\r\n`);
  await waitFor(() => c.data().includes('has_more'), { what: 'second' });
  c.sock.destroy();
});

test('metrics count API answers by class and publishes', async () => {
  const m = await (await fetch(`${srv.http}/metrics`)).text();
  const v = (re) => Number((m.match(re) || [])[1]);
  assert.ok(v(/parley_api_requests_total\{class="2xx"\} (\d+)/) > 10);
  assert.ok(v(/parley_api_requests_total\{class="4xx"\} (\d+)/) > 10);
  assert.ok(v(/parley_api_unauthorized_total (\d+)/) > 10);
  assert.ok(v(/parley_api_publishes_total (\d+)/) >= 10);
});

test('security: failed authentications per address: past --api-auth-fails-per-ip every request from it gets 429, the right key too (a guesser cannot tell a hit); counted in /metrics', async (t) => {
  const { s } = await serverForTest(t, { ipLimits: 'server', args: ['--api-key', K1, '--api-auth-fails-per-ip', '3'] });
  for (let i = 0; i < 3; i++) assertError(await api('/api/rooms', { key: `wrong-key-${i}-0123456789`, server: s }), 401, 'unauthorized');
  assertError(await api('/api/rooms', { key: 'wrong-key-again-0123456789', server: s }), 429, 'rate_limited');
  assertError(await api('/api/rooms', { key: null, server: s }), 429, 'rate_limited');
  assertError(await api('/api/rooms?api_key=x', { server: s }), 429, 'rate_limited');
  assertError(await api('/api/rooms', { server: s }), 429, 'rate_limited');
  const m = await fetch(`${s.http}/metrics`).then((r) => r.text());
  assert.match(m, /^parley_api_auth_refused_total 4$/m);
});

test('moderation endpoints: mute, kick, ban (room and server-wide), unmute, unban act like an admin\'s; logged with actor api', async () => {
  const r = `apimod-${Date.now()}`;
  const u = await tokenUser(srv, { sub: `apimod-u-${Date.now()}`, name: 'Target' });
  const u2 = await tokenUser(srv, { sub: u.user.id, name: 'Target' }); // likely on the other loop
  clients.push(u, u2);
  await u.join(r);
  await u2.join(r);
  let a = await api('/api/mute', { body: { room: r, user: u.user.id, minutes: 5, reason: 'cool off' } });
  assert.deepEqual([a.status, a.body], [200, {}]);
  const s = await u.request({ type: 'send', room: r, text: 'x', client_id: 'am1' }, 'ack');
  assert.deepEqual([s.type, s.code], ['error', 'forbidden']);
  assert.ok(s.until > Date.now() + 4 * 60000);
  a = await api('/api/unmute', { body: { room: r, user: u.user.id } });
  assert.equal(a.status, 200);
  assert.ok((await u.say(r, 'free again')).id > 0);
  a = await api('/api/kick', { body: { room: r, user: u.user.id, reason: 'bye' } });
  assert.equal(a.status, 200);
  for (const c of [u, u2]) assert.deepEqual(await c.next((m) => m.type === 'removed'), { type: 'removed', room: r, reason: 'bye' });
  a = await api('/api/ban', { body: { room: r, user: u.user.id } });
  assert.equal(a.status, 200);
  const j = await u.request({ type: 'join', room: r }, 'joined');
  assert.deepEqual([j.type, j.code], ['error', 'forbidden']);
  a = await api('/api/unban', { body: { room: r, user: u.user.id } });
  assert.equal(a.status, 200);
  await u.join(r);
  a = await api('/api/ban', { body: { user: u.user.id, minutes: 1 } }); // server-wide
  assert.equal(a.status, 200);
  for (const c of [u, u2]) assert.deepEqual(Object.values(await c.closed), [1008, 'banned']);
  await assert.rejects(tokenUser(srv, { sub: u.user.id, name: 'Target' }), /unauthorized/);
  a = await api('/api/unban', { body: { user: u.user.id } });
  assert.equal(a.status, 200);
  clients.push(await tokenUser(srv, { sub: u.user.id, name: 'Target' }));
  const log = sqlite(srv.dbPath, `SELECT actor, action, room, reason FROM mod_log WHERE target='${u.user.id}' ORDER BY id`);
  assert.deepEqual(log.map((x) => [x.actor, x.action, x.room, x.reason]), [
    ['api', 'mute', r, 'cool off'], ['api', 'unmute', r, null], ['api', 'kick', r, 'bye'],
    ['api', 'ban', r, null], ['api', 'unban', r, null], ['api', 'ban', null, null], ['api', 'unban', null, null],
  ]);
  // Bad fields and DM rooms: 400.
  for (const [p, body] of [
    ['/api/mute', { room: r, user: 'x', minutes: 0 }], ['/api/kick', { room: r }], ['/api/kick', { user: 'x' }],
    ['/api/ban', { user: 'x', reason: 'r'.repeat(201) }], ['/api/unmute', { room: r, user: 'x', minutes: 3 }],
    ['/api/kick', { room: 'dm-0123456789abcdef0123456789abcdef', user: 'x' }],
  ]) assertError(await api(p, { body }), 400, 'bad_request');
  assertError(await api('/api/kick', { body: { room: 'Bad Room', user: 'x' } }), 400, 'bad_room');
  assertError(await api('/api/kick', { method: 'GET' }), 405, 'method_not_allowed');
});

test('security: requests pipelined behind one with a body never spin the loop: /healthz answers and SIGTERM stops it', async (t) => {
  const { s } = await serverForTest(t, { args: ['--api-key', K1, '--threads', '1'] });
  const body = JSON.stringify({ room: 'pipe', text: 'x', user: { id: 'bot', name: 'Bot' } });
  const post = (k) => `POST /api/publish HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${k}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;
  const cases = [
    'GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n' + post('wrong-key-0123456789'),
    `GET /api/rooms HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${K1}\r\n\r\n` + post(K1),
    'GET / HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\nContent-Length: 7\r\n\r\nabcdefg',
    'POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello',
  ];
  for (const data of cases) {
    const c = raw(s.port);
    await c.open;
    c.sock.write(data);
    await Promise.race([c.closed, sleep(500)]);
    c.sock.destroy();
  }
  // The loop is free: a plain request is answered at once.
  const h = await health(s);
  assert.equal(h.status, 'ok', JSON.stringify(h));
});

test('GET /api/rooms with a room that has members and no message yet', async () => {
  const c = await guest(srv, 'Early');
  clients.push(c);
  const room = `empty-${Date.now()}`;
  await c.join(room);
  const r = await api('/api/rooms');
  assert.equal(r.status, 200, JSON.stringify(r.body));
  const e = r.body.rooms.find((x) => x.name === room);
  assert.deepEqual(e, { name: room, members: 1, last_id: 0 });
});
