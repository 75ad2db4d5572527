// The HTTP upgrade: 503 at the connection limit, 403 for an Origin not on
// the allow-list (spec: end of "Close codes").
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, connect, guest, upgradeStatus, health, waitFor, T } from './harness.mjs';

async function withServer(t, opts) {
  const s = await startServer(opts);
  t.after(async () => {
    const r = await s.stop();
    assert.equal(r.code, 0, `stderr:\n${r.stderr}`);
    s.cleanup();
  });
  return s;
}

test('--max-connections 3: the 4th upgrade gets 503; after one leaves, a new one is accepted', async (t) => {
  const s = await withServer(t, { args: ['--max-connections', '3'] });
  const cs = [];
  for (let i = 0; i < 3; i++) cs.push(await guest(s, `C${i}`));
  assert.equal(await upgradeStatus(s.url), 503);
  // Also before hello: an open but silent connection counts.
  assert.equal(await upgradeStatus(s.url), 503);
  // Plain HTTP still answers at the limit.
  assert.equal((await health(s)).connections, 3);
  await cs[0].close();
  await waitFor(async () => (await health(s)).connections === 2, { what: 'the closed connection released' });
  const c = await guest(s, 'Next');
  assert.equal(c.welcome.type, 'welcome');
  assert.equal(await upgradeStatus(s.url), 503);
  for (const x of [...cs, c]) x.terminate();
});

test('without --origins every Origin (and none) is accepted', async (t) => {
  const s = await withServer(t);
  assert.equal(await upgradeStatus(s.url, { origin: 'http://evil.example' }), 101);
  assert.equal(await upgradeStatus(s.url, { origin: 'null' }), 101);
  assert.equal(await upgradeStatus(s.url), 101);
});

test('--origins http://good.example: evil → 403; good, none and same-origin → accepted', async (t) => {
  const s = await withServer(t, { args: ['--origins', 'http://good.example'] });
  assert.equal(await upgradeStatus(s.url, { origin: 'http://evil.example' }), 403);
  assert.equal(await upgradeStatus(s.url, { origin: 'https://good.example' }), 403);
  assert.equal(await upgradeStatus(s.url, { origin: 'http://good.example.evil.example' }), 403);
  assert.equal(await upgradeStatus(s.url, { origin: 'http://good.example:8080' }), 403);
  assert.equal(await upgradeStatus(s.url, { origin: 'http://127.0.0.1:1' }), 403);
  assert.equal(await upgradeStatus(s.url, { origin: 'null' }), 403);
  assert.equal(await upgradeStatus(s.url, { origin: 'http://good.example' }), 101);
  assert.equal(await upgradeStatus(s.url), 101);
  assert.equal(await upgradeStatus(s.url, { origin: `http://127.0.0.1:${s.port}` }), 101);
  // An accepted connection works normally.
  const c = await connect(s.url, { origin: 'http://good.example' });
  const w = await c.hello('Good');
  assert.equal(w.type, 'welcome');
  c.terminate();
  const c2 = await connect(s.url, { origin: `http://127.0.0.1:${s.port}` });
  assert.equal((await c2.hello('Same')).type, 'welcome');
  c2.terminate();
});

test('an upgrade on a path other than /ws is not a chat connection', async (t) => {
  const s = await withServer(t);
  const st = await upgradeStatus(`ws://127.0.0.1:${s.port}/other`);
  assert.notEqual(st, 101);
});

test('a refused upgrade does not count against the limit', { timeout: T(60000) }, async (t) => {
  const s = await withServer(t, { args: ['--max-connections', '2', '--origins', 'http://good.example'] });
  for (let i = 0; i < 20; i++) assert.equal(await upgradeStatus(s.url, { origin: 'http://evil.example' }), 403);
  const a = await guest(s, 'A');
  const b = await guest(s, 'B');
  assert.equal(await upgradeStatus(s.url), 503);
  a.terminate();
  b.terminate();
});
