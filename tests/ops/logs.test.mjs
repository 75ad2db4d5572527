// Logs: one line per event, leveled; --log-format json for collectors;
// message text only at --log-level debug.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, guest } from '../integration/harness.mjs';

async function session(args) {
  const srv = await startServer({ args });
  const c = await guest(srv, 'Logger');
  await c.join('logs');
  c.send({ type: 'send', room: 'logs', text: 'secret words', client_id: 'x1' });
  await c.next('ack');
  c.close();
  const r = await srv.stop();
  srv.cleanup();
  return r.stderr.trim().split('\n');
}

test('--log-format json writes one JSON object per line, with level and event', async () => {
  const lines = await session(['--log-format', 'json']);
  const events = lines.map((l) => JSON.parse(l));
  for (const e of events) {
    assert.match(e.ts, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    assert.ok(['error', 'warn', 'info', 'debug'].includes(e.level));
  }
  const names = events.map((e) => e.event);
  for (const want of ['listening', 'hello', 'disconnect', 'stopping', 'stopped'])
    assert.ok(names.includes(want), `${want} in ${names}`);
  assert.ok(!lines.some((l) => l.includes('secret words')), 'no message text at info');
});

test('message text appears only at --log-level debug', async () => {
  const lines = await session(['--log-level', 'debug']);
  assert.ok(lines.some((l) => l.includes('secret words')));
  const quiet = await session(['--log-level', 'warn']);
  assert.ok(!quiet.some((l) => / info /.test(l)), quiet.join('\n'));
});
