// iplimit.test.mjs -- the per-client-address limits against the real binary:
// --max-conns-per-ip (429 at the upgrade, plain HTTP unaffected, a closed
// connection frees its slot), --guests-per-ip-minute (rate_limited hello;
// token hellos and guest resumes unaffected), --trust-proxy with
// X-Forwarded-For (ignored without it; IPv6 counted per /64), the defaults,
// and the /metrics counters.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  serverForTest, connect, upgradeStatus, httpGet, mintToken, waitFor, sleep, T,
} from './harness.mjs';

/** A metric's value from /metrics (NaN when absent). */
async function metric(s, name) {
  const r = await httpGet(`${s.http}/metrics`);
  assert.equal(r.status, 200);
  const m = r.body.match(new RegExp(`^parley_${name} (\\S+)$`, 'm'));
  return m ? Number(m[1]) : NaN;
}

const xff = (v) => ({ headers: { 'X-Forwarded-For': v } });

/** Opens n WebSockets (no hello needed: a connection counts from its
 *  ESTABLISHED, which lws runs just after writing the 101; a first request
 *  answered means it ran, so the next upgrade, maybe on another loop, sees it). */
async function open(s, clients, n, opts = {}) {
  const out = [];
  for (let i = 0; i < n; i++) {
    const c = await connect(s.url, opts);
    clients.push(c);
    out.push(c);
    c.send({ type: 'ping', ref: 'counted' });
    const m = await c.next((x) => x.ref === 'counted');
    assert.equal(m.code, 'need_hello');
  }
  return out;
}

test('the N+1th upgrade from one address gets 429; HTTP still answers; a close frees a slot', async (t) => {
  const { s, clients } = await serverForTest(t, { args: ['--max-conns-per-ip', '3'] });
  const cs = await open(s, clients, 3);
  assert.equal(await upgradeStatus(s.url), 429);
  assert.equal(await upgradeStatus(s.url), 429);
  // Plain HTTP is not a connection of this limit: it keeps answering.
  assert.equal((await httpGet(`${s.http}/healthz`)).status, 200);
  assert.equal((await httpGet(`${s.http}/`)).status, 200);
  assert.equal(await metric(s, 'ip_conn_refused_total'), 2);
  assert.equal(await metric(s, 'ip_keys'), 1);
  // Refused upgrades counted nothing: one close makes exactly one slot.
  await cs[0].close();
  await waitFor(async () => (await metric(s, 'connections')) === 2, { what: 'the close' });
  const again = await open(s, clients, 1);
  assert.equal(await upgradeStatus(s.url), 429);
  // Everyone gone: the key is forgotten (no windows in use).
  for (const c of [...cs.slice(1), ...again]) await c.close();
  await waitFor(async () => (await metric(s, 'ip_keys')) === 0, { what: 'ip_keys back to 0' });
  assert.equal(await metric(s, 'connections'), 0);
});

test('terminated (not closed) connections and a welcomed one free their slots too', async (t) => {
  const { s, clients } = await serverForTest(t, { args: ['--max-conns-per-ip', '2'] });
  const cs = await open(s, clients, 2);
  await cs[0].hello('a');
  cs[0].terminate();
  cs[1].terminate();
  await waitFor(async () => (await metric(s, 'connections')) === 0, { what: 'both closed' });
  await open(s, clients, 2);
  assert.equal(await upgradeStatus(s.url), 429);
});

test('a server stopped with counted connections open releases every one (exit 0)', async () => {
  const { startServer } = await import('./harness.mjs');
  const s = await startServer({ args: ['--max-conns-per-ip', '5', '--threads', '2'] });
  const clients = [];
  try {
    const cs = await open(s, clients, 5);
    await cs[0].hello('a');
    assert.equal(await upgradeStatus(s.url), 429);
    // The stop closes them all (CLOSED for each), and the table must be empty
    // when it is freed: asserted in a build with assertions (the sanitizer
    // build), logged as iplimit-leak otherwise.
    const r = await s.stop();
    assert.equal(r.code, 0, r.stderr);
    assert.doesNotMatch(r.stderr, /iplimit-leak|iplimit-release/);
  } finally {
    for (const c of clients) c.terminate();
    s.cleanup();
  }
});

test('X-Forwarded-For is ignored without --trust-proxy', async (t) => {
  const { s, clients } = await serverForTest(t, { args: ['--max-conns-per-ip', '2'] });
  await open(s, clients, 1, xff('198.51.100.1'));
  await open(s, clients, 1, xff('198.51.100.2'));
  assert.equal(await upgradeStatus(s.url, xff('198.51.100.3')), 429);
  assert.equal(await upgradeStatus(s.url, xff('2001:db8::1')), 429);
});

test('X-Forwarded-For from a peer that is not a trusted proxy is ignored', async (t) => {
  const { s, clients } = await serverForTest(t, {
    args: ['--max-conns-per-ip', '2', '--trust-proxy', '10.9.8.7,::1'],
  });
  await open(s, clients, 1, xff('198.51.100.1'));
  await open(s, clients, 1, xff('198.51.100.2'));
  assert.equal(await upgradeStatus(s.url, xff('198.51.100.3')), 429);
});

test('with --trust-proxy 127.0.0.1 each forwarded client counts, IPv6 by its /64', async (t) => {
  const { s, clients } = await serverForTest(t, {
    args: ['--max-conns-per-ip', '2', '--trust-proxy', '127.0.0.1'],
  });
  await open(s, clients, 2, xff('198.51.100.1'));
  assert.equal(await upgradeStatus(s.url, xff('198.51.100.1')), 429);
  // The rightmost untrusted address counts: a client's own entry on the left
  // changes nothing.
  assert.equal(await upgradeStatus(s.url, xff('203.0.113.9, 198.51.100.1')), 429);
  assert.equal(await upgradeStatus(s.url, xff('198.51.100.1, 127.0.0.1')), 429);
  // Two X-Forwarded-For headers are one list, in order: the last one's counts.
  assert.equal(await upgradeStatus(s.url, xff(['203.0.113.9', '198.51.100.1'])), 429);
  assert.equal(await upgradeStatus(s.url, xff(['198.51.100.1', '203.0.113.9'])), 101);
  assert.equal(await upgradeStatus(s.url, xff('198.51.100.2')), 101);
  // A mapped address is its IPv4 address.
  assert.equal(await upgradeStatus(s.url, xff('::ffff:198.51.100.1')), 429);
  // Two addresses of one /64 share a count; another /64 has its own.
  await open(s, clients, 1, xff('2001:db8:1:2::1'));
  await open(s, clients, 1, xff('[2001:db8:1:2:ffff::9]:5000'));
  assert.equal(await upgradeStatus(s.url, xff('2001:db8:1:2::3')), 429);
  assert.equal(await upgradeStatus(s.url, xff('2001:db8:1:3::1')), 101);
  // Garbage (or none) falls back to the peer, 127.0.0.1: its own count.
  await open(s, clients, 1, xff('not an address'));
  await open(s, clients, 1);
  assert.equal(await upgradeStatus(s.url, xff(',,,')), 429);
  assert.equal(await upgradeStatus(s.url), 429);
  assert.equal((await httpGet(`${s.http}/healthz`, xff('x'.repeat(3000)))).status, 200);
  assert.ok((await metric(s, 'ip_keys')) >= 3);
});

test('guests over the per-minute limit get rate_limited; tokens and resumes do not count', async (t) => {
  const { s, clients } = await serverForTest(t, {
    args: ['--guests-per-ip-minute', '3', '--trust-proxy', '127.0.0.1'],
  });
  const welcomes = [];
  for (let i = 0; i < 3; i++) {
    const [c] = await open(s, clients, 1);
    welcomes.push(await c.hello(`g${i}`));
  }
  const [late] = await open(s, clients, 1);
  late.send({ type: 'hello', name: 'late', ref: 'h1' });
  const e = await late.next(['welcome', 'error']);
  assert.equal(e.type, 'error');
  assert.equal(e.code, 'rate_limited');
  assert.equal(e.ref, 'h1');
  assert.match(e.message, /retry in \d+ s/);
  // The connection stays open (rate_limited never closes): a hello again is
  // answered, still rate_limited this early.
  late.send({ type: 'hello', name: 'late', ref: 'h2' });
  const e2 = await late.next(['welcome', 'error']);
  assert.equal(e2.code, 'rate_limited');
  assert.equal(late.closeInfo, null);
  // A token hello is not a guest: welcomed.
  const [tok] = await open(s, clients, 1);
  const w = await tok.hello({ token: mintToken({ sub: 'u-1', name: 'Una' }) });
  assert.equal(w.user.id, 'u-1');
  // A guest resuming its id is not a new guest: welcomed, same id.
  const [back] = await open(s, clients, 1);
  const wb = await back.hello({ name: 'g0', resume: welcomes[0].resume });
  assert.equal(wb.user.id, welcomes[0].user.id);
  // An invalid resume token would mint a new id: it counts.
  const [forged] = await open(s, clients, 1);
  forged.send({ type: 'hello', name: 'f', resume: 'g_0123456789abcdef.AAAA' });
  assert.equal((await forged.next(['welcome', 'error'])).code, 'rate_limited');
  // Another forwarded client has its own window.
  const [other] = await open(s, clients, 1, xff('198.51.100.7'));
  await other.hello('other');
  assert.equal(await metric(s, 'guest_rate_refused_total'), 3);
});

test('the defaults: 100 connections and 60 new guests a minute per address', async (t) => {
  const { s, clients } = await serverForTest(t, { ipLimits: 'server' });
  const cs = await open(s, clients, 100);
  assert.equal(await upgradeStatus(s.url), 429);
  for (let i = 0; i < 60; i++) {
    cs[i].send({ type: 'hello', name: `d${i}` });
  }
  for (let i = 0; i < 60; i++) assert.equal((await cs[i].next(['welcome', 'error'])).type, 'welcome');
  cs[60].send({ type: 'hello', name: 'd60' });
  assert.equal((await cs[60].next(['welcome', 'error'])).code, 'rate_limited');
  assert.equal(await metric(s, 'ip_conn_refused_total'), 1);
  assert.equal(await metric(s, 'guest_rate_refused_total'), 1);
  // Wired by the HTTP API: exported, 0 until then.
  assert.equal(await metric(s, 'api_auth_refused_total'), 0);
  await sleep(T(10));
});

test('PARLEY_MAX_CONNS_PER_IP and PARLEY_TRUST_PROXY configure the same', async (t) => {
  const { s, clients } = await serverForTest(t, {
    ipLimits: 'server',
    env: { PARLEY_MAX_CONNS_PER_IP: '1', PARLEY_TRUST_PROXY: '127.0.0.1' },
  });
  await open(s, clients, 1, xff('198.51.100.1'));
  assert.equal(await upgradeStatus(s.url, xff('198.51.100.1')), 429);
  assert.equal(await upgradeStatus(s.url, xff('198.51.100.2')), 101);
});

test('bad --trust-proxy values stop the server at start', async (t) => {
  const { runParley } = await import('./harness.mjs');
  for (const v of ['proxy.example', '10.0.0.1,,10.0.0.2', '10.0.0.0/8', ' ']) {
    const r = await runParley(['--trust-proxy', v, '--port', '1']);
    assert.equal(r.code, 2, `--trust-proxy '${v}': ${r.stderr}`);
    assert.match(r.stderr, /trust-proxy/);
  }
  const h = await runParley(['--help']);
  for (const f of ['--max-conns-per-ip', '--guests-per-ip-minute', '--api-auth-fails-per-ip', '--trust-proxy'])
    assert.ok(h.stdout.includes(f), f);
});
