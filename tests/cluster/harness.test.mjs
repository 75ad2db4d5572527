// The cluster harness itself: a private redis-server on a free port that
// answers, stops answering while paused, keeps what it acknowledged across a
// restart on the same directory (AOF, fsync always), and never is the
// system's instance.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startRedis, redisCli, T } from './harness.mjs';

test('private redis-server: AOF on, pause and resume, restart keeps every write', { timeout: T(60000) }, async (t) => {
  const r = await startRedis();
  t.after(async () => {
    await r.stop();
    r.cleanup();
  });
  assert.notEqual(r.port, 6379, 'never the system service');
  assert.equal(await r.cmd('CONFIG', 'GET', 'appendonly').then((x) => x[1]), 'yes');
  assert.equal(await r.cmd('CONFIG', 'GET', 'appendfsync').then((x) => x[1]), 'always');
  assert.equal(await r.cmd('CONFIG', 'GET', 'dir').then((x) => x[1]), r.dir);
  assert.equal(await r.seq(), 0);
  for (let i = 0; i < 5; i++) await r.cmd('INCR', 'parley:seq');
  assert.equal(await r.cmd('XADD', 'parley:log', '6-0', 'op', 'send'), '6-0');
  assert.equal(await r.lastEntry(), '6-0');

  r.pause();
  const t0 = Date.now();
  await assert.rejects(redisCli(r.port, ['PING'], { timeoutMs: 500 }), /no answer/);
  assert.ok(Date.now() - t0 < T(3000));
  r.resume();
  assert.equal(await r.cmd('PING'), 'PONG');

  await r.restart();
  assert.equal(await r.seq(), 5, 'the counter survived the restart');
  assert.equal(await r.cmd('XLEN', 'parley:log'), 1);
  const e = await r.cmd('XRANGE', 'parley:log', '-', '+');
  assert.deepEqual(e, [['6-0', ['op', 'send']]]);
});
