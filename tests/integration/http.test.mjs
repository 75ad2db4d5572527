// The plain HTTP side: the page, /healthz, /metrics, 404.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { startServer, guest, httpGet, health, waitFor } from './harness.mjs';

let srv;
before(async () => {
  srv = await startServer();
});
after(async () => {
  const r = await srv.stop();
  assert.equal(r.code, 0, `stderr:\n${r.stderr}`);
  srv.cleanup();
});

test('GET / is the page: 200 text/html', async () => {
  const r = await httpGet(`${srv.http}/`);
  assert.equal(r.status, 200);
  assert.match(r.headers['content-type'], /^text\/html\b/);
  assert.match(r.body, /<html|<!doctype html/i);
});

test('GET /healthz: 200 JSON with numeric connections, rooms, db_queue that follow the state', async () => {
  const r = await httpGet(`${srv.http}/healthz`);
  assert.equal(r.status, 200);
  assert.match(r.headers['content-type'], /json/);
  const h = JSON.parse(r.body);
  for (const k of ['connections', 'rooms', 'db_queue']) assert.equal(typeof h[k], 'number', `${k}: ${r.body}`);
  const c0 = h.connections, r0 = h.rooms;
  const a = await guest(srv, 'H1');
  const b = await guest(srv, 'H2');
  await a.join('healthz-room-1');
  await b.join('healthz-room-2');
  await waitFor(async () => {
    const x = await health(srv);
    return x.connections === c0 + 2 && x.rooms === r0 + 2;
  }, { what: 'connections +2 and rooms +2' });
  a.terminate();
  b.terminate();
  await waitFor(async () => (await health(srv)).connections === c0, { what: 'connections back' });
  // Rooms live on in the database, not in memory: once nobody is in them
  // (or remembers them), their memory is freed.
  await waitFor(async () => (await health(srv)).rooms === r0, { what: 'rooms back' });
});

test('GET /metrics: 200 text with parley_connections and other parley_ metrics', async () => {
  const a = await guest(srv, 'M');
  const r = await httpGet(`${srv.http}/metrics`);
  assert.equal(r.status, 200);
  assert.match(r.headers['content-type'], /^text\/plain\b/);
  const m = /^parley_connections(?:\{[^}]*\})? ([0-9.e+-]+)$/m.exec(r.body);
  assert.ok(m, `no parley_connections sample in:\n${r.body.slice(0, 500)}`);
  assert.ok(Number(m[1]) >= 1);
  const names = new Set([...r.body.matchAll(/^(parley_[a-z0-9_]+)/gm)].map((x) => x[1]));
  assert.ok(names.size >= 3, `only ${[...names]}`);
  // Every non-comment line is a sample: name, optional labels, a number.
  for (const line of r.body.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    assert.match(line, /^parley_[a-zA-Z0-9_]+(\{[^}]*\})? ([-+0-9.eE]+|NaN|[+-]Inf)$/, line);
  }
  a.terminate();
});

test('an unknown path is 404', async () => {
  for (const p of ['/nope', '/ws/x', '/healthz/x', '/../etc/passwd']) {
    const r = await httpGet(`${srv.http}${p}`);
    assert.equal(r.status, 404, p);
  }
});

test('GET /ws without an upgrade is not a 200 page', async () => {
  const r = await httpGet(`${srv.http}/ws`);
  assert.notEqual(r.status, 200);
});

/** Sends `text` on a raw connection; resolves {data, closed} once the server
 * closes it, or with closed false after `ms`. */
function rawExchange(text, ms = 3000) {
  return new Promise((resolve) => {
    const sock = net.connect(srv.port, '127.0.0.1');
    let data = '';
    const timer = setTimeout(() => { sock.destroy(); resolve({ data, closed: false }); }, ms);
    sock.setEncoding('utf8');
    sock.on('data', (d) => (data += d));
    sock.on('error', () => {});
    sock.on('close', () => { clearTimeout(timer); resolve({ data, closed: true }); });
    sock.on('connect', () => sock.write(text));
  });
}

test('security: CONNECT (path or authority form) is answered 405 with Allow and closed, never left hanging', async () => {
  for (const target of ['/', '/api/publish', 'example.com:443']) {
    const r = await rawExchange(`CONNECT ${target} HTTP/1.1\r\nHost: example.com\r\n\r\n`);
    assert.ok(r.closed, `CONNECT ${target}: closed, got ${JSON.stringify(r.data)}`);
    assert.match(r.data, /^HTTP\/1.1 405 /, `CONNECT ${target}`);
    assert.match(r.data, /\r\nallow: GET, POST\r\n/i);
    assert.equal(JSON.parse(r.data.slice(r.data.indexOf('\r\n\r\n') + 4)).error.code, 'method_not_allowed');
  }
  assert.equal((await health(srv)).status, 'ok');
});

test('other methods outside /api/ are 405 with Allow: GET and closed; TRACE and unknown methods are refused and closed', async () => {
  for (const m of ['OPTIONS', 'PUT', 'DELETE', 'PATCH', 'POST', 'HEAD']) {
    const r = await rawExchange(`${m} / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n`);
    assert.ok(r.closed, `${m}: closed`);
    assert.match(r.data, /^HTTP\/1.1 405 /, m);
    assert.match(r.data, /\r\nallow: GET\r\n/i, m);
  }
  for (const m of ['TRACE', 'FOO', 'GETX']) {
    const r = await rawExchange(`${m} / HTTP/1.1\r\nHost: x\r\n\r\n`);
    assert.ok(r.closed, `${m}: closed`);
    assert.match(r.data, /^HTTP\/1.[01] 4\d\d /, m);
  }
  assert.equal((await health(srv)).status, 'ok');
});
