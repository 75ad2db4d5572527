// cluster.md, "Operating it": /healthz and /metrics show the node's position
// in the log, its lag behind Redis, and Redis's reachability.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cluster, caughtUp, healthz, metrics, sendMany, sleep, T } from './harness.mjs';

test('/healthz and /metrics: log position, lag and Redis reachability with sane values', { timeout: T(90000) }, async (t) => {
  const cl = await cluster(t, { nodes: 2 });
  for (const [i, n] of cl.nodes.entries()) {
    const h = await healthz(n);
    assert.equal(h.status, 200, h.body);
    assert.equal(h.json.status, 'ok', h.body);
    assert.equal(h.json.redis, 'up', `node ${i}: ${h.body}`);
    assert.ok(Number.isInteger(h.json.log_position) && h.json.log_position >= 0, `node ${i}: log_position: ${h.body}`);
    assert.ok(Number.isInteger(h.json.log_lag) && h.json.log_lag >= 0, `node ${i}: log_lag: ${h.body}`);
    for (const k of ['connections', 'rooms', 'db_queue']) assert.ok(Number.isInteger(h.json[k]), `node ${i}: ${k} kept: ${h.body}`);
  }
  const c = await cl.guest(0, 'M');
  await c.join('metrics');
  await sendMany(c, 'metrics', 40, { prefix: 'mx', window: 8 });
  const seq = await caughtUp(cl.nodes, cl.redis);
  assert.ok(seq >= 40, `parley:seq ${seq} after 40 messages`);
  for (const [i, n] of cl.nodes.entries()) {
    const h = await healthz(n);
    assert.deepEqual([h.json.log_position, h.json.log_lag, h.json.redis], [seq, 0, 'up'], `node ${i}: ${h.body}`);
    const m = await metrics(n);
    for (const name of ['parley_cluster_log_position', 'parley_cluster_log_lag', 'parley_cluster_redis_up']) {
      assert.match(m.text, new RegExp(`^# TYPE ${name} gauge$`, 'm'), `node ${i}: ${name} has no TYPE gauge line`);
      assert.match(m.text, new RegExp(`^# HELP ${name} \\S`, 'm'), `node ${i}: ${name} has no HELP line`);
    }
    assert.equal(m.get('parley_cluster_log_position'), seq, `node ${i}: parley_cluster_log_position`);
    assert.equal(m.get('parley_cluster_log_lag'), 0, `node ${i}: parley_cluster_log_lag`);
    assert.equal(m.get('parley_cluster_redis_up'), 1, `node ${i}: parley_cluster_redis_up`);
  }
  // A node that stopped reading (SIGSTOP) while the log moves on: once it continues, its lag shows
  // the entries it has to apply, or it has applied them already; never a negative or made-up lag.
  const n1 = cl.nodes[1];
  n1.proc.kill('SIGSTOP');
  try {
    await sendMany(c, 'metrics', 200, { prefix: 'my', window: 8 });
  } finally {
    n1.proc.kill('SIGCONT');
  }
  const seq2 = await cl.redis.seq();
  const h = await healthz(n1);
  assert.ok(h.json.log_position <= seq2 && h.json.log_position + h.json.log_lag <= seq2 && h.json.log_lag >= 0,
    `position ${h.json.log_position} + lag ${h.json.log_lag} against parley:seq ${seq2}`);
  assert.ok(h.json.log_position === seq2 || h.json.log_lag > 0, `behind (${h.json.log_position} < ${seq2}) with lag 0: ${h.body}`);
  await caughtUp(cl.nodes, cl.redis);
  const m = await metrics(n1);
  assert.deepEqual([m.get('parley_cluster_log_position'), m.get('parley_cluster_log_lag')], [seq2, 0]);
});
