// Command line and environment configuration.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startServer, runParley, guest, freePort, httpGet, T } from './harness.mjs';

test('--port abc: exit code 2 with one line on stderr', async () => {
  const r = await runParley(['--port', 'abc']);
  assert.equal(r.code, 2, `code ${r.code}, stderr: ${r.stderr}`);
  assert.equal(r.stderr.trimEnd().split('\n').length, 1, `stderr: ${JSON.stringify(r.stderr)}`);
  assert.ok(r.stderr.trim().length > 0);
  assert.match(r.stderr, /port/);
});

test('other invalid values and unknown options: exit 2, one line', async () => {
  for (const args of [['--port', '0'], ['--port', '70000'], ['--port', ''], ['--frobnicate'], ['--hello-timeout', 'x'], ['--port']]) {
    const r = await runParley(args);
    assert.equal(r.code, 2, `${args.join(' ')}: code ${r.code}, stderr: ${r.stderr}`);
    assert.equal(r.stderr.trimEnd().split('\n').length, 1, `${args.join(' ')}: ${JSON.stringify(r.stderr)}`);
  }
  const r = await runParley([], { env: { PARLEY_PORT: 'abc' } });
  assert.equal(r.code, 2);
  assert.equal(r.stderr.trimEnd().split('\n').length, 1);
});

test('--origins naming no origin (",", " , "): exit 2, one line, not "allow every origin"', async () => {
  // Port and database are given so that, were the value accepted, the server
  // would start harmlessly (and be killed at the timeout) instead of on :8080.
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'parley-origins-'));
  try {
    for (const v of [',', ' , ', '/']) {
      const args = ['--port', String(await freePort()), '--bind', '127.0.0.1', '--db', path.join(dir, 'p.db')];
      for (const r of [await runParley([...args, '--origins', v], { timeoutMs: T(3000) }),
                       await runParley(args, { env: { PARLEY_ORIGINS: v }, timeoutMs: T(3000) })]) {
        assert.equal(r.code, 2, `origins ${JSON.stringify(v)}: code ${r.code} signal ${r.signal}, stderr: ${r.stderr}`);
        assert.equal(r.stderr.trimEnd().split('\n').length, 1, JSON.stringify(r.stderr));
        assert.match(r.stderr, /origins/);
      }
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('--help: exit 0 with usage on stdout', async () => {
  const r = await runParley(['--help']);
  assert.equal(r.code, 0);
  assert.match(r.stdout, /--port/);
});

test('--version prints the version, the same as the welcome server field', async (t) => {
  const r = await runParley(['--version']);
  assert.equal(r.code, 0);
  const m = /(\d+\.\d+\.\d+)/.exec(r.stdout);
  assert.ok(m, `no version in ${JSON.stringify(r.stdout)}`);
  assert.equal(r.stdout.trim().split('\n').length, 1);
  const s = await startServer();
  t.after(async () => {
    await s.stop();
    s.cleanup();
  });
  const c = await guest(s, 'V');
  assert.equal(c.welcome.server, `parley/${m[1]}`);
  c.terminate();
});

test('PARLEY_PORT works like --port; --port wins over it', async (t) => {
  const port = await freePort();
  const s = await startServer({ portArg: false, port, env: { PARLEY_PORT: String(port) } });
  t.after(async () => {
    const r = await s.stop();
    assert.equal(r.code, 0);
    s.cleanup();
  });
  const r = await httpGet(`http://127.0.0.1:${port}/healthz`);
  assert.equal(r.status, 200);
  const c = await guest(s, 'EnvPort');
  c.terminate();
  // The command line wins.
  const port2 = await freePort();
  const s2 = await startServer({ port: port2, env: { PARLEY_PORT: String(port) } });
  t.after(async () => {
    await s2.stop();
    s2.cleanup();
  });
  assert.equal((await httpGet(`http://127.0.0.1:${port2}/healthz`)).status, 200);
});

test('limits flags are reflected in the welcome', async (t) => {
  const s = await startServer({ args: ['--max-text', '100', '--rate', '5', '--burst', '7'] });
  t.after(async () => {
    await s.stop();
    s.cleanup();
  });
  const c = await guest(s, 'L');
  assert.deepEqual(
    [c.welcome.limits.max_text, c.welcome.limits.rate_per_s, c.welcome.limits.burst, c.welcome.limits.history_page],
    [100, 5, 7, 200],
  );
  await c.join('lim');
  const e = await c.request({ type: 'send', room: 'lim', text: 'a'.repeat(101), client_id: 'x' }, 'ack');
  assert.deepEqual([e.type, e.code], ['error', 'too_long']);
  const ok = await c.request({ type: 'send', room: 'lim', text: 'a'.repeat(100), client_id: 'y' }, 'ack');
  assert.equal(ok.type, 'ack');
  c.terminate();
});

test('a database path in a missing directory: fails to start with a nonzero exit', async () => {
  const r = await runParley(['--port', String(await freePort()), '--bind', '127.0.0.1', '--db', '/nonexistent-dir/x/parley.db'], { timeoutMs: T(10000) });
  assert.equal(r.signal, null, 'still running: it should have refused to start');
  assert.notEqual(r.code, 0);
  assert.ok(r.stderr.trim().length > 0);
});
