// Every row of the spec's error table (overloaded and internal excepted:
// neither can be provoked from outside).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  startServer, connect, guest, mintToken, sqlite, sleep, T, fullHistory, cps, within, sharedServer,
} from './harness.mjs';

let srv;
let roomSeq = 0;
const room = (p = 'e') => `${p}${++roomSeq}`;
const clients = sharedServer({}, (s) => (srv = s));
async function g(name = 'guest') {
  const c = await guest(srv, name);
  clients.push(c);
  return c;
}
async function raw(opts) {
  const c = await connect(srv.url, opts);
  clients.push(c);
  return c;
}


/** Sends `req` (object or raw string), expects error `code`; the connection stays open. */
async function expectError(c, req, code, ref = `ref-${code}`) {
  if (typeof req === 'string') {
    c.send(req);
    const e = await c.next();
    assert.equal(e.type, 'error', `expected error ${code}, got ${JSON.stringify(e)}`);
    assert.equal(e.code, code, `for ${req}: ${JSON.stringify(e)}`);
    assert.equal(typeof e.message, 'string');
    assert.ok(e.message.length > 0, 'error message is empty');
  } else {
    const e = await c.request({ ...req, ref }, 'error');
    assert.equal(e.type, 'error', `expected error ${code} for ${JSON.stringify(req)}, got ${JSON.stringify(e)}`);
    assert.equal(e.code, code, `for ${JSON.stringify(req)}: ${JSON.stringify(e)}`);
    assert.equal(e.ref, ref);
    assert.equal(typeof e.message, 'string');
    assert.ok(e.message.length > 0, 'error message is empty');
  }
  // Still open and usable.
  await c.barrier();
  assert.equal(c.closeInfo, null);
}

test('bad_json: not JSON, not an object, no type, type not a string', async () => {
  const c = await g('J');
  for (const f of ['{', 'hello', '[]', '[{"type":"ping"}]', '"ping"', '42', 'null', '{}', '{"type":5}', '{"type":null}', '{"type":["ping"]}', '{"typ":"ping"}'])
    await expectError(c, f, 'bad_json');
});

test('unknown_type', async () => {
  const c = await g('U');
  await expectError(c, { type: 'frobnicate' }, 'unknown_type');
  await expectError(c, { type: 'PING' }, 'unknown_type');
  await expectError(c, { type: '' }, 'unknown_type');
  await expectError(c, { type: 'welcome' }, 'unknown_type');
});

test('bad_request: missing or mistyped fields and out-of-range values', async () => {
  const c = await g('BR');
  const r = room();
  await c.join(r);
  const cases = [
    { type: 'join' },
    { type: 'join', room: 5 },
    { type: 'join', room: r, since: 'x' },
    { type: 'join', room: r, since: -1 },
    { type: 'join', room: r, since: 1.5 },
    { type: 'leave' },
    { type: 'history' },
    { type: 'history', room: r, before: 10, after: 2 },
    { type: 'history', room: r, limit: 0 },
    { type: 'history', room: r, limit: 201 },
    { type: 'history', room: r, limit: '5' },
    { type: 'history', room: r, before: 'x' },
    { type: 'typing' },
    { type: 'send', text: 'x', client_id: 'c1' },
    { type: 'send', room: r, client_id: 'c1' },
    { type: 'send', room: r, text: 5, client_id: 'c1' },
    { type: 'send', room: r, text: 'x' },
    { type: 'send', room: r, text: 'x', client_id: '' },
    { type: 'send', room: r, text: 'x', client_id: 'c'.repeat(65) },
    { type: 'send', room: r, text: 'x', client_id: 7 },
  ];
  for (const q of cases) await expectError(c, q, 'bad_request');
  // ref over 64 characters is itself a bad request (no ref to echo).
  c.send({ type: 'ping', ref: 'r'.repeat(65) });
  const e = await c.next();
  assert.deepEqual([e.type, e.code], ['error', 'bad_request']);
  c.send({ type: 'ping', ref: 5 });
  const e2 = await c.next();
  assert.deepEqual([e2.type, e2.code], ['error', 'bad_request']);
  // Boundaries that are fine.
  const ok = await c.request({ type: 'history', room: r, limit: 200 }, 'history');
  assert.equal(ok.type, 'history');
  const ok1 = await c.request({ type: 'history', room: r, limit: 1 }, 'history');
  assert.equal(ok1.type, 'history');
  const ack = await c.say(r, 'x', 'k'.repeat(64));
  assert.equal(ack.client_id, 'k'.repeat(64));
  const pong = await c.request({ type: 'ping', ref: 'r'.repeat(64) }, 'pong');
  assert.equal(pong.ref, 'r'.repeat(64));
  // Nothing of the refused sends was stored.
  const rows = sqlite(srv.dbPath, `SELECT count(*) AS n FROM messages WHERE room = '${r}'`);
  assert.equal(rows[0].n, 1);
});

test('bad_request: a second hello after welcome', async () => {
  const c = await g('Twice');
  await expectError(c, { type: 'hello', name: 'Again' }, 'bad_request');
  await expectError(c, { type: 'hello', token: mintToken({ sub: 'x', name: 'X' }) }, 'bad_request');
});

test('bad_request: hello with a client over 64 characters, or a name that is not a string', async () => {
  const c = await raw();
  c.send({ type: 'hello', name: 'Ok', client: 'c'.repeat(65), ref: 'cl' });
  const e = await c.next();
  assert.deepEqual([e.type, e.code, e.ref], ['error', 'bad_request', 'cl'], JSON.stringify(e));
  const c2 = await raw();
  c2.send({ type: 'hello', name: 42 });
  const e2 = await c2.next();
  assert.deepEqual([e2.type, e2.code], ['error', 'bad_request'], JSON.stringify(e2));
  const c3 = await raw();
  const w = await c3.hello({ name: 'Ok', client: 'c'.repeat(64) });
  assert.equal(w.type, 'welcome');
});

test('need_hello: any message before hello; hello then works', async () => {
  const c = await raw();
  for (const q of [{ type: 'ping' }, { type: 'join', room: 'lobby' }, { type: 'send', room: 'lobby', text: 'x', client_id: 'a' }, { type: 'rooms' }]) {
    const e = await c.request(q, 'error');
    assert.deepEqual([e.type, e.code], ['error', 'need_hello'], JSON.stringify(e));
    assert.equal(e.ref.startsWith('r'), true);
  }
  assert.equal(c.closeInfo, null);
  const w = await c.hello('Late');
  assert.equal(w.type, 'welcome');
});

test('bad_name: empty, 33 code points, control characters, only spaces; then a corrected hello succeeds', async () => {
  const c = await raw();
  const bad = ['', 'a'.repeat(33), cps(33, '😀'), 'a\u0001b', 'tab\there', 'nl\n', 'del\u007f', '\u0085x', ' ', '     ', '\u3000\u00a0 '];
  for (const name of bad) {
    c.send({ type: 'hello', name, ref: 'bn' });
    const e = await c.next();
    assert.deepEqual([e.type, e.code, e.ref], ['error', 'bad_name', 'bn'], `name ${JSON.stringify(name)}: ${JSON.stringify(e)}`);
    assert.equal(c.closeInfo, null);
  }
  // Hello without name or token is not a welcome either.
  c.send({ type: 'hello' });
  const e = await c.next();
  assert.equal(e.type, 'error');
  assert.ok(['bad_name', 'bad_request'].includes(e.code), JSON.stringify(e));
  // 32 code points (astral) is fine; inner spaces are fine.
  const name = cps(31, '😀') + 'x';
  const w = await c.hello(name);
  assert.equal(w.user.name, name);
  const c2 = await raw();
  const w2 = await c2.hello(' Mary Ann ');
  assert.equal(w2.type, 'welcome');
});

async function expectUnauthorized(c, helloFields) {
  c.send({ type: 'hello', ref: 'au', ...helloFields });
  const e = await c.next();
  assert.deepEqual([e.type, e.code], ['error', 'unauthorized'], JSON.stringify(e));
  const ci = await within(c.closed, T(5000));
  assert.ok(ci, 'connection not closed after unauthorized');
  assert.equal(ci.code, 1008);
}

test('unauthorized: bad signature, expired, alg none, other alg, garbage; each closes 1008', async () => {
  const now = Math.floor(Date.now() / 1000);
  const good = mintToken({ sub: 'u1', name: 'U1' });
  const [h, p] = good.split('.');
  const tokens = {
    badSignature: mintToken({ sub: 'u1', name: 'U1' }, { secret: 'not-the-secret' }),
    tamperedPayload: `${h}.${Buffer.from(JSON.stringify({ sub: 'admin', name: 'A', exp: now + 3600 })).toString('base64url')}.${good.split('.')[2]}`,
    expired: mintToken({ sub: 'u1', name: 'U1', exp: now - 60 }),
    algNone: mintToken({ sub: 'u1', name: 'U1' }, { alg: 'none' }),
    algNoneWithSig: `${Buffer.from('{"alg":"none","typ":"JWT"}').toString('base64url')}.${p}.${good.split('.')[2]}`,
    algHS512: mintToken({ sub: 'u1', name: 'U1' }, { header: { alg: 'HS512', typ: 'JWT' } }),
    noExp: (() => {
      const t = mintToken({ sub: 'u1', name: 'U1', exp: undefined });
      return t;
    })(),
    garbage: 'not.a.jwt',
  };
  const failures = [];
  for (const [what, token] of Object.entries(tokens)) {
    const c = await raw();
    try {
      await expectUnauthorized(c, { token });
    } catch (e) {
      failures.push(`token ${what}: ${e.message.split('\n')[0]}`);
      c.terminate();
    }
  }
  assert.deepEqual(failures, []);
  // The good one works.
  const c = await raw();
  const w = await c.hello({ token: good });
  assert.equal(w.user.id, 'u1');
});

test('unauthorized: an invalid ?token= on the URL (hello without token) closes 1008', async () => {
  const c = await raw({ token: mintToken({ sub: 'u', name: 'U' }, { secret: 'wrong' }) });
  c.send({ type: 'hello' });
  const e = await c.next();
  assert.deepEqual([e.type, e.code], ['error', 'unauthorized'], JSON.stringify(e));
  assert.equal((await c.closed).code, 1008);
});

test('unauthorized: a guest when the server runs with --no-guests (closes 1008); a token user is fine', async (t) => {
  const s = await startServer({ args: ['--no-guests'] });
  t.after(async () => {
    const r = await s.stop();
    assert.equal(r.code, 0);
    s.cleanup();
  });
  const c = await connect(s.url);
  await expectUnauthorized(c, { name: 'Guest' });
  const c2 = await connect(s.url);
  const w = await c2.hello({ token: mintToken({ sub: 'member', name: 'Member' }) });
  assert.equal(w.user.id, 'member');
  c2.terminate();
});

test('forbidden: token rooms ["a"] joining "b"; "a" is fine; rooms "*" allows all', async () => {
  const c = await raw();
  await c.hello({ token: mintToken({ sub: 'limited', name: 'Limited', rooms: ['a'] }) });
  await expectError(c, { type: 'join', room: 'b' }, 'forbidden');
  const j = await c.join('a');
  assert.equal(j.room, 'a');
  // Not a member of b: sending there is refused and nothing is stored.
  const e = await c.request({ type: 'send', room: 'b', text: 'x', client_id: 'fb' }, 'error');
  assert.equal(e.type, 'error');
  assert.ok(['forbidden', 'not_member'].includes(e.code), JSON.stringify(e));
  const c2 = await raw();
  await c2.hello({ token: mintToken({ sub: 'all', name: 'All', rooms: '*' }) });
  assert.equal((await c2.join('b')).room, 'b');
  const c3 = await raw();
  await c3.hello({ token: mintToken({ sub: 'none', name: 'None', rooms: [] }) });
  await expectError(c3, { type: 'join', room: 'a' }, 'forbidden');
});

test('bad_room: names not matching ^[a-z0-9][a-z0-9_-]{0,63}$, for join, leave, send, typing, history', async () => {
  const c = await g('Rooms');
  const bad = ['', 'Lobby', '-x', '_x', 'a b', 'a.b', 'é', 'a'.repeat(65), 'a/b', 'ROOM'];
  for (const r of bad) await expectError(c, { type: 'join', room: r }, 'bad_room');
  for (const q of [
    { type: 'leave', room: 'Bad' },
    { type: 'send', room: 'Bad', text: 'x', client_id: 'b1' },
    { type: 'typing', room: 'Bad' },
    { type: 'history', room: 'Bad' },
  ])
    await expectError(c, q, 'bad_room');
  // Boundaries that are fine.
  for (const r of ['a'.repeat(64), '0', 'a-_9', '9x']) assert.equal((await c.join(r)).room, r);
});

test('not_member: send and typing in a room not joined (or left)', async () => {
  const c = await g('Outsider');
  const r = room();
  await expectError(c, { type: 'send', room: r, text: 'x', client_id: 'nm1' }, 'not_member');
  await expectError(c, { type: 'typing', room: r }, 'not_member');
  await c.join(r);
  await c.request({ type: 'leave', room: r }, 'left');
  await expectError(c, { type: 'send', room: r, text: 'x', client_id: 'nm2' }, 'not_member');
  await expectError(c, { type: 'typing', room: r }, 'not_member');
  const rows = sqlite(srv.dbPath, `SELECT count(*) AS n FROM messages WHERE room = '${r}'`);
  assert.equal(rows[0].n, 0);
});

test('too_long: empty text and 4001 code points refused; 4000 code points (astral) accepted intact', async () => {
  const c = await g('Writer');
  const r = room();
  await c.join(r);
  await expectError(c, { type: 'send', room: r, text: '', client_id: 'tl1' }, 'too_long');
  await expectError(c, { type: 'send', room: r, text: cps(4001), client_id: 'tl2' }, 'too_long');
  await expectError(c, { type: 'send', room: r, text: cps(4001, '😀'), client_id: 'tl3' }, 'too_long');
  const text = cps(4000, '😀');
  const ack = await c.say(r, text, 'tl4');
  const m = await c.next((x) => x.type === 'message' && x.id === ack.id);
  assert.equal(m.text, text);
  const ack2 = await c.say(r, cps(4000), 'tl5');
  const ack3 = await c.say(r, ' ', 'tl6'); // one space is one code point
  const h = await fullHistory(c, r);
  assert.deepEqual(h.map((x) => x.id), [ack.id, ack2.id, ack3.id]);
  assert.equal(h[0].text, text);
});

/** Sends n messages at once from a fresh connection; resolves {answers by index, ms, c, r, obs}. */
async function burst(server, n, tag) {
  const c = await guest(server, 'Spammer');
  const obs = await guest(server, 'Observer');
  clients.push(c, obs);
  const r = room(tag);
  await c.join(r);
  await obs.join(r);
  const t0 = Date.now();
  for (let i = 0; i < n; i++) c.send({ type: 'send', room: r, text: `s${i}`, client_id: `${tag}-${i}`, ref: `${tag}-${i}` });
  const answers = [];
  for (let i = 0; i < n; i++)
    answers.push(await c.next((m) => (m.type === 'ack' || m.type === 'error') && m.ref?.startsWith(`${tag}-`)));
  const ms = Date.now() - t0;
  const byRef = Object.fromEntries(answers.map((a) => [a.ref, a]));
  return { byIndex: Array.from({ length: n }, (_, i) => byRef[`${tag}-${i}`]), ms, c, r, obs };
}

test('rate_limited: with no refill (--rate 0.001), exactly burst (20) of 25 sends succeed; the rest are refused and not stored', async (t) => {
  const s = await startServer({ args: ['--rate', '0.001'] });
  t.after(async () => {
    const x = await s.stop();
    assert.equal(x.code, 0);
    s.cleanup();
  });
  const { byIndex, r, obs } = await burst(s, 25, 'rl');
  byIndex.slice(0, 20).forEach((a, i) => assert.equal(a?.type, 'ack', `send ${i}: ${JSON.stringify(a)}`));
  byIndex.slice(20).forEach((a, i) =>
    assert.deepEqual([a?.type, a?.code], ['error', 'rate_limited'], `send ${20 + i}: ${JSON.stringify(a)}`));
  const stored = sqlite(s.dbPath, `SELECT client_id FROM messages WHERE room = '${r}' ORDER BY id`);
  assert.deepEqual(stored.map((x) => x.client_id), Array.from({ length: 20 }, (_, i) => `rl-${i}`));
  // The observer gets exactly the 20.
  const got = [];
  for (let i = 0; i < 20; i++) got.push(await obs.next('message'));
  await obs.barrier();
  assert.equal(obs.peek('message').length, 0);
  assert.deepEqual(got.map((m) => m.client_id), Array.from({ length: 20 }, (_, i) => `rl-${i}`));
});

test('rate_limited: defaults (10/s, burst 20): the first 20 of 30 at once succeed, the excess beyond the refill is refused; the bucket refills', async () => {
  const { byIndex, ms, c, r } = await burst(srv, 30, 'rd');
  byIndex.slice(0, 20).forEach((a, i) => assert.equal(a?.type, 'ack', `send ${i}: ${JSON.stringify(a)}`));
  for (const a of byIndex) assert.ok(a.type === 'ack' || a.code === 'rate_limited', JSON.stringify(a));
  const acks = byIndex.filter((a) => a.type === 'ack').length;
  // At 10 tokens per second, at most 1 + 10 * seconds elapsed beyond the burst.
  assert.ok(acks <= 20 + 1 + Math.floor((ms / 1000) * 10), `${acks} acks in ${ms} ms`);
  assert.ok(acks < 30, 'nothing was rate limited');
  // Refused ones are not stored.
  const stored = sqlite(srv.dbPath, `SELECT count(*) AS n FROM messages WHERE room = '${r}'`);
  assert.equal(stored[0].n, acks);
  // The bucket refills at rate_per_s (10/s): after 0.3 s at least one more fits.
  await sleep(300);
  const ack = await c.say(r, 'later', 'rd-later');
  assert.equal(ack.type, 'ack');
});

test('rate_limited: other requests beyond 100 per second', async () => {
  const c = await g('Pinger');
  const n = 150;
  for (let i = 0; i < n; i++) c.send({ type: 'ping', ref: `p${i}` });
  const answers = [];
  for (let i = 0; i < n; i++) answers.push(await c.next((m) => m.ref?.startsWith('p') && (m.type === 'pong' || m.type === 'error')));
  const pongs = answers.filter((a) => a.type === 'pong').length;
  const limited = answers.filter((a) => a.type === 'error' && a.code === 'rate_limited').length;
  assert.equal(pongs + limited, n, JSON.stringify(answers.filter((a) => a.type === 'error' && a.code !== 'rate_limited')));
  assert.ok(limited > 0, 'no request was rate limited');
  // The hello was one of the 100.
  assert.ok(pongs >= 99, `only ${pongs} of the first 150 pings answered (100 requests per second allowed, hello included)`);
});
