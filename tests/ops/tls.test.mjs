// TLS: --tls-cert/--tls-key serve https and wss on the same port, through
// libwebsockets' TLS (OpenSSL in Debian's build). The certificate is made
// here with the openssl CLI, for 127.0.0.1.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import { PARLEY_BIN, T, WebSocket, freePort, sanitizerReport, sleep } from '../integration/harness.mjs';

let dir, port, proc, stderr = '', cert;

function get(url) {
  return new Promise((resolve, reject) => {
    https.get(url, { ca: cert, timeout: 3000 }, (res) => {
      let body = '';
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode, body }));
    }).on('error', reject);
  });
}

before(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'parley-tls-'));
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2',
    '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1',
    '-keyout', path.join(dir, 'key.pem'), '-out', path.join(dir, 'cert.pem')], { stdio: 'ignore' });
  cert = readFileSync(path.join(dir, 'cert.pem'));
  port = await freePort();
  proc = spawn(PARLEY_BIN, ['--port', String(port), '--bind', '127.0.0.1', '--db', path.join(dir, 'p.db'),
    '--tls-cert', path.join(dir, 'cert.pem'), '--tls-key', path.join(dir, 'key.pem')]);
  proc.stderr.on('data', (d) => (stderr += d));
  for (let i = 0; ; i++) {
    try { if ((await get(`https://127.0.0.1:${port}/healthz`)).status === 200) break; } catch {}
    if (i > T(300)) throw new Error('TLS server did not come up: ' + stderr);
    await sleep(30);
  }
});

after(async () => {
  proc.kill('SIGTERM');
  const code = await new Promise((r) => proc.on('exit', r));
  rmSync(dir, { recursive: true, force: true });
  assert.equal(code, 0);
  assert.equal(sanitizerReport(stderr), null, stderr);
});

test('https serves the page and /healthz with the given certificate', async () => {
  const page = await get(`https://127.0.0.1:${port}/`);
  assert.equal(page.status, 200);
  assert.match(page.body, /<html/i);
  const h = JSON.parse((await get(`https://127.0.0.1:${port}/healthz`)).body);
  assert.equal(h.status, 'ok');
});

test('a client that does not trust the certificate is refused', async () => {
  await assert.rejects(new Promise((resolve, reject) => {
    https.get(`https://127.0.0.1:${port}/healthz`, resolve).on('error', reject);
  }), /self.signed|certificate/i);
});

test('wss: hello, join, send, ack and message over TLS', async () => {
  const ws = new WebSocket(`wss://127.0.0.1:${port}/ws`, { ca: cert });
  const got = [];
  let wake;
  ws.on('message', (d) => { got.push(JSON.parse(d)); wake?.(); });
  await new Promise((r, j) => { ws.on('open', r); ws.on('error', j); });
  const next = async (type) => {
    for (;;) {
      const i = got.findIndex((m) => m.type === type);
      if (i >= 0) return got.splice(i, 1)[0];
      await new Promise((r) => (wake = r));
    }
  };
  ws.send(JSON.stringify({ type: 'hello', name: 'Tess' }));
  assert.equal((await next('welcome')).user.name, 'Tess');
  ws.send(JSON.stringify({ type: 'join', room: 'secure' }));
  await next('joined');
  // Many frames at once: the batched writer goes through TLS too.
  for (let i = 0; i < 15; i++)
    ws.send(JSON.stringify({ type: 'send', room: 'secure', text: `over tls ${i}`, client_id: `t${i}` }));
  for (let i = 0; i < 15; i++) {
    const m = await next('message');
    assert.equal(m.text, `over tls ${i}`);
    const a = await next('ack');
    assert.equal(a.id, m.id);
  }
  ws.close();
});
