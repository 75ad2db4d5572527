// Self-test of the harness: a server whose stderr carries a sanitizer report
// must fail the test that stops it, and the JWTs it mints must be standard.
// Uses a fake server (a small node script), so it does not depend on parley.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { mkdtempSync, writeFileSync, chmodSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startServer, mintToken, sanitizerReport, SECRET } from './harness.mjs';

function fakeServer(onTerm) {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'parley-fake-'));
  const bin = path.join(dir, 'fake-parley');
  writeFileSync(bin, `#!${process.execPath}
const http = require('node:http');
const port = Number(process.argv[process.argv.indexOf('--port') + 1]);
const srv = http.createServer((req, res) => { res.writeHead(200, {'content-type': 'application/json'}); res.end('{"connections":0,"rooms":0,"db_queue":0}'); });
srv.listen(port, '127.0.0.1');
process.on('SIGTERM', () => { ${onTerm} });
`);
  chmodSync(bin, 0o755);
  return { bin, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

test('stop() rejects when the server printed an AddressSanitizer report', async () => {
  const f = fakeServer(`process.stderr.write('==1==ERROR: AddressSanitizer: heap-use-after-free on address 0x1\\n'); process.exit(1);`);
  try {
    const s = await startServer({ bin: f.bin });
    await assert.rejects(s.stop(), /sanitizer report/);
    s.cleanup();
  } finally {
    f.cleanup();
  }
});

test('stop() rejects on an UBSan runtime error even with exit code 0', async () => {
  const f = fakeServer(`process.stderr.write('server.c:12:3: runtime error: signed integer overflow\\n'); process.exit(0);`);
  try {
    const s = await startServer({ bin: f.bin });
    await assert.rejects(s.stop(), /sanitizer report/);
    s.cleanup();
  } finally {
    f.cleanup();
  }
});

test('stop() resolves {code, signal, stderr} for a clean exit', async () => {
  const f = fakeServer(`process.stderr.write('bye\\n'); process.exit(0);`);
  try {
    const s = await startServer({ bin: f.bin });
    const r = await s.stop();
    assert.deepEqual([r.code, r.signal, r.stderr], [0, null, 'bye\n']);
    s.cleanup();
  } finally {
    f.cleanup();
  }
});

test('sanitizerReport finds each marker', () => {
  assert.equal(sanitizerReport('x\n==7==ERROR: AddressSanitizer: SEGV\n'), 'ERROR: AddressSanitizer');
  assert.equal(sanitizerReport('a.c:1:2: runtime error: x'), 'runtime error:');
  assert.equal(sanitizerReport('ERROR: LeakSanitizer: detected memory leaks'), 'ERROR: LeakSanitizer');
  assert.equal(sanitizerReport('info stopped code=0\n'), null);
});

test('mintToken: a standard HS256 JWT', () => {
  const tok = mintToken({ sub: 'u1', name: 'Ünïcode', exp: 2000000000, rooms: ['a', 'b'] });
  const [h, p, sig] = tok.split('.');
  assert.deepEqual(JSON.parse(Buffer.from(h, 'base64url')), { alg: 'HS256', typ: 'JWT' });
  assert.deepEqual(JSON.parse(Buffer.from(p, 'base64url')), { sub: 'u1', name: 'Ünïcode', exp: 2000000000, rooms: ['a', 'b'] });
  assert.equal(sig, createHmac('sha256', SECRET).update(`${h}.${p}`).digest('base64url'));
  assert.doesNotMatch(tok, /[=+/]/);
  // RFC 7515 appendix A.1's key and input give its published signature.
  const key = Buffer.from('AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow', 'base64url');
  const input = 'eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ';
  assert.equal(createHmac('sha256', key).update(input).digest('base64url'), 'dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk');
});
