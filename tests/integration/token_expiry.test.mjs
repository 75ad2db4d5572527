// Tokens are checked for their whole life, not just at hello (review item
// 8): a connection is closed with 1008 "token expired" when its token's exp
// passes, and a client may hand over a fresh token ({"type":"auth"}) to
// carry on without reconnecting.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connect, mintToken, sharedServer, sleep, T, within } from './harness.mjs';

let srv;
const clients = sharedServer({}, (s) => (srv = s));
const now = () => Math.floor(Date.now() / 1000);
// An exp 2 to 3 s away, never 1: connect, hello and join fit on a slow machine.
const shortExp = () => Math.ceil(Date.now() / 1000) + 2;

async function tokenClient(claims) {
  const c = await connect(srv.url);
  clients.push(c);
  await c.hello({ token: mintToken(claims) });
  return c;
}

test('a connection whose token expires is closed with 1008 "token expired" shortly after exp', async () => {
  const exp = shortExp();
  const c = await tokenClient({ sub: 'brief', name: 'Brief', exp });
  await c.join('expiry');
  const info = await within(c.closed, T(6000));
  assert.ok(info, 'still connected 6 s after a token that lived 2 s');
  assert.deepEqual([info.code, info.reason], [1008, 'token expired']);
  const at = Date.now();
  assert.ok(at >= exp * 1000, `closed at ${at}, before exp ${exp * 1000}`);
  assert.ok(at <= exp * 1000 + T(2500), `closed ${at - exp * 1000} ms after exp`);
  const err = c.peek('error').find((m) => m.code === 'unauthorized');
  assert.ok(err, `no unauthorized error before the close: ${JSON.stringify(c.queue)}`);
});

test('a client that sends a fresh token before exp stays connected past the first exp', async () => {
  const exp = shortExp();
  const c = await tokenClient({ sub: 'renewer', name: 'Renewer', exp, rooms: ['expiry2'] });
  await c.join('expiry2');
  const fresh = now() + 3600;
  const r = await c.request({ type: 'auth', token: mintToken({ sub: 'renewer', name: 'Renewer', exp: fresh, rooms: ['expiry2', 'more'] }) }, 'authed');
  assert.deepEqual([r.type, r.exp], ['authed', fresh], JSON.stringify(r));
  await sleep(Math.max(0, (exp + 2) * 1000 - Date.now()));
  assert.equal(c.closeInfo, null, `closed: ${JSON.stringify(c.closeInfo)}`);
  await c.say('expiry2', 'still here');
  // The new token's rooms claim applies from now on.
  assert.equal((await c.join('more')).room, 'more');
});

test('a refresh with another sub is refused and changes nothing; an invalid one closes 1008', async () => {
  const exp = now() + 3;
  const c = await tokenClient({ sub: 'alice', name: 'Alice', exp });
  const r = await c.request({ type: 'auth', token: mintToken({ sub: 'mallory', name: 'Alice', exp: now() + 3600 }) }, 'authed');
  assert.deepEqual([r.type, r.code], ['error', 'bad_request'], JSON.stringify(r));
  await c.barrier();
  // The old token still rules: the connection goes at its exp.
  const info = await within(c.closed, T(7000));
  assert.ok(info, 'the refused refresh extended the connection');
  assert.deepEqual([info.code, info.reason], [1008, 'token expired']);

  const d = await tokenClient({ sub: 'bob', name: 'Bob' });
  const e = await d.request({ type: 'auth', token: mintToken({ sub: 'bob', name: 'Bob' }, { secret: 'wrong' }) }, 'authed');
  assert.deepEqual([e.type, e.code], ['error', 'unauthorized']);
  assert.equal((await d.closed).code, 1008);
});

test('auth from a guest is bad_request; before hello it is need_hello', async () => {
  const g = await connect(srv.url);
  clients.push(g);
  const early = await g.request({ type: 'auth', token: mintToken({ sub: 'x', name: 'X' }) }, 'authed');
  assert.deepEqual([early.type, early.code], ['error', 'need_hello']);
  await g.hello('guesty');
  const r = await g.request({ type: 'auth', token: mintToken({ sub: 'x', name: 'X' }) }, 'authed');
  assert.deepEqual([r.type, r.code], ['error', 'bad_request']);
  await g.barrier();
});
