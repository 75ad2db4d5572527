// Identity: guests and token users, and the ?token= URL parameter
// (spec: "Transport", `welcome`, "Auth").
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, connect, mintToken, sharedServer } from './harness.mjs';

let srv;
const clients = sharedServer({}, (s) => (srv = s));
async function raw(opts) {
  const c = await connect(srv.url, opts);
  clients.push(c);
  return c;
}


test("token user: id is the token's sub, name the token's name, not a guest; members and messages carry it", async () => {
  const a = await raw();
  const w = await a.hello({ token: mintToken({ sub: 'user-7', name: 'Seven' }) });
  assert.deepEqual([w.user.id, w.user.name, w.user.guest], ['user-7', 'Seven', false]);
  const j = await a.join('auth-room');
  assert.deepEqual(j.members.map((u) => [u.id, u.name]), [['user-7', 'Seven']]);
  const ack = await a.say('auth-room', 'hi', 'a1');
  const m = await a.next((x) => x.type === 'message' && x.id === ack.id);
  assert.deepEqual([m.user.id, m.user.name], ['user-7', 'Seven']);
});

test('a token wins over a name in the same hello', async () => {
  const a = await raw();
  const w = await a.hello({ name: 'Impostor', token: mintToken({ sub: 'real', name: 'Real' }) });
  assert.deepEqual([w.user.id, w.user.name, w.user.guest], ['real', 'Real', false]);
});

test('?token= on the URL works with a plain hello without token', async () => {
  const a = await raw({ token: mintToken({ sub: 'url-user', name: 'Url User' }) });
  const w = await a.hello({});
  assert.deepEqual([w.user.id, w.user.name, w.user.guest], ['url-user', 'Url User', false]);
  // And with a hello that only names a guest: the URL token is the identity.
  const b = await raw({ token: mintToken({ sub: 'url-user-2', name: 'Url Two' }) });
  const w2 = await b.hello({ name: 'Someone' });
  assert.equal(w2.user.id, 'url-user-2');
  assert.equal(w2.user.guest, false);
});

test("a token in hello wins over the URL's", async () => {
  const a = await raw({ token: mintToken({ sub: 'from-url', name: 'From URL' }) });
  const w = await a.hello({ token: mintToken({ sub: 'from-hello', name: 'From Hello' }) });
  assert.deepEqual([w.user.id, w.user.name], ['from-hello', 'From Hello']);
  // Even when the URL's token is invalid.
  const b = await raw({ token: mintToken({ sub: 'bad', name: 'Bad' }, { secret: 'wrong' }) });
  const w2 = await b.hello({ token: mintToken({ sub: 'good', name: 'Good' }) });
  assert.equal(w2.user.id, 'good');
  // And the URL token's room restriction does not apply to the hello token.
  const c = await raw({ token: mintToken({ sub: 'u', name: 'U', rooms: ['x'] }) });
  await c.hello({ token: mintToken({ sub: 'v', name: 'V', rooms: ['y'] }) });
  const e = await c.request({ type: 'join', room: 'x' }, 'joined');
  assert.deepEqual([e.type, e.code], ['error', 'forbidden']);
  assert.equal((await c.join('y')).room, 'y');
});

test('a ?token= user keeps the token rooms claim', async () => {
  const a = await raw({ token: mintToken({ sub: 'r', name: 'R', rooms: ['only'] }) });
  await a.hello({});
  const e = await a.request({ type: 'join', room: 'other' }, 'joined');
  assert.deepEqual([e.type, e.code], ['error', 'forbidden']);
  assert.equal((await a.join('only')).room, 'only');
});

test('token users with the same sub on two connections are the same user', async () => {
  const t = mintToken({ sub: 'twin', name: 'Twin' });
  const a = await raw();
  const b = await raw();
  assert.equal((await a.hello({ token: t })).user.id, 'twin');
  assert.equal((await b.hello({ token: t })).user.id, 'twin');
  await a.join('twins');
  const j = await b.join('twins');
  // members counts connections or users; either way both are the same USER.
  assert.ok(j.members.length >= 1);
  for (const u of j.members) assert.deepEqual([u.id, u.name], ['twin', 'Twin']);
});

test('a server without a secret refuses tokens (unauthorized, 1008) but takes guests', async (t) => {
  const s = await startServer({ secret: null });
  t.after(async () => {
    const r = await s.stop();
    assert.equal(r.code, 0);
    s.cleanup();
  });
  const a = await connect(s.url);
  a.send({ type: 'hello', token: mintToken({ sub: 'x', name: 'X' }) });
  const e = await a.next();
  assert.deepEqual([e.type, e.code], ['error', 'unauthorized']);
  assert.equal((await a.closed).code, 1008);
  const b = await connect(s.url);
  const w = await b.hello('Guest');
  assert.equal(w.user.guest, true);
  b.terminate();
});

test('security: a token sub "api" in any case or with spaces is unauthorized (a lookalike is another id)', async () => {
  for (const sub of ['API', 'Api', ' api', 'api ', '\tapi']) {
    const a = await raw();
    a.send({ type: 'hello', token: mintToken({ sub, name: 'X' }) });
    const e = await a.next();
    assert.deepEqual([e.type, e.code], ['error', 'unauthorized'], JSON.stringify(sub));
    assert.equal((await a.closed).code, 1008);
  }
  const l = await raw();
  assert.equal((await l.hello({ token: mintToken({ sub: '\u0430pi', name: 'X' }) })).type, 'welcome');
});

test('security: a token sub with control characters is unauthorized; a logged value cannot forge a log line', async (t) => {
  const s = await startServer({ args: ['--log-level', 'debug'] });
  t.after(async () => {
    await s.stop();
    s.cleanup();
  });
  const forged = '2001-01-01T00:00:00.000Z error forged';
  for (const sub of [`x\n${forged}`, 'x\ry', 'x\u007fy']) {
    const a = await connect(s.url);
    a.send({ type: 'hello', token: mintToken({ sub, name: 'X' }) });
    const e = await a.next();
    assert.deepEqual([e.type, e.code], ['error', 'unauthorized'], JSON.stringify(sub));
    assert.equal((await a.closed).code, 1008);
  }
  // A message's text is logged at debug: its newline is escaped.
  const g = await connect(s.url);
  await g.hello('Guest');
  await g.join('logs');
  await g.say('logs', `hi\n${forged}`);
  g.terminate();
  const r = await s.stop();
  assert.ok(r.stderr.includes('\\x0a2001-01-01'), r.stderr.slice(-2000));
  assert.ok(!r.stderr.split('\n').some((line) => line.startsWith(forged)), r.stderr.slice(-2000));
});
