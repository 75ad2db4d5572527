// The "Log length": the stream is trimmed (MAXLEN ~ --redis-log-max);
// a node that fell behind the trimmed start refuses to serve and says, in its
// log and /healthz (503 "behind_log" with a "reason"), how to seed it from
// another node's backup; a node started on `sqlite3 A.db ".backup B.db"` of a
// running node resumes from A's stored position (settings key cluster_pos),
// catches up and serves the full history.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, rmSync, copyFileSync } from 'node:fs';
import path from 'node:path';
import {
  cluster, caughtUp, healthz, waitHealth, ANSWERS, Sender, sendMany, sameRows, REPLICATED, fullHistory,
  upgradeStatus, backup, sqlite, waitFor, sleep, T, LOG_KEY, httpGet,
} from './harness.mjs';

const behind = (h) => h.status === 503 && h.json?.status === 'behind_log';

const API_KEY = 'trimmed-log-test-api-key-0123456789';

async function assertBehind(node, what) {
  const h = await waitHealth(node, (x) => x.status !== 200 || x.json?.status !== 'catching_up',
    { what: `${what}: an answer past catching_up` });
  assert.ok(behind(h), `${what}: expected 503 behind_log, got ${h.status} ${h.body}`);
  assert.equal(typeof h.json.reason, 'string', `${what}: no reason: ${h.body}`);
  assert.match(h.json.reason, /backup/i, `${what}: the reason does not say how to seed from a backup: ${h.body}`);
  assert.equal(await upgradeStatus(node.url), 503, `${what}: WebSocket upgrade while behind_log`);
  // Nor does the HTTP API read from it: its history is not the cluster's.
  for (const p of ['/api/history?room=trim', '/api/rooms']) {
    const r = await httpGet(`${node.http}${p}`, { headers: { authorization: `Bearer ${API_KEY}` } });
    assert.equal(r.status, 503, `${what}: GET ${p} answered ${r.status} ${r.body}`);
    assert.equal(JSON.parse(r.body).error?.code, 'overloaded', `${what}: GET ${p}: ${r.body}`);
  }
  await sleep(T(1500));
  const h2 = await healthz(node);
  assert.ok(behind(h2), `${what}: it must keep refusing: ${h2.status} ${h2.body}`);
  assert.match(node.stderr, /backup/i, `${what}: its log does not say how to seed it:\n${node.stderr.slice(-2000)}`);
  return h;
}

test('the log is trimmed; a node behind it answers 503 behind_log; a node seeded from .backup catches up', { timeout: T(240000) }, async (t) => {
  const cl = await cluster(t, { nodes: 2, nodeArgs: ['--redis-log-max', '50', '--api-key', API_KEY], redisArgs: ['--stream-node-max-entries', '10'] });
  const room = 'trim';
  const a = await cl.user(0, { sub: 'ta', name: 'TA' });
  await a.join(room);
  const first = await sendMany(a, room, 400, { prefix: 'p1', window: 10 });
  // --redis-log-max 50 with MAXLEN ~ and 10 entries per stream node: about 50 entries stay.
  const xlen = await waitFor(async () => {
    const n = await cl.redis.cmd('XLEN', LOG_KEY);
    return n <= 100 ? n : false;
  }, { what: 'the stream trimmed to about 50 entries', timeoutMs: T(10000) }).catch(async (e) =>
    assert.fail(`${e.message}: XLEN ${await cl.redis.cmd('XLEN', LOG_KEY)} after 400 writes with --redis-log-max 50`));
  assert.ok(xlen >= 50, `trimmed below --redis-log-max: XLEN ${xlen}`);
  const seq = await cl.redis.seq();
  assert.equal(await cl.redis.lastEntry(), `${seq}-0`, 'the newest entry id is <parley:seq>-0');
  await caughtUp(cl.nodes, cl.redis);

  // Node 1 stops; the log moves on and is trimmed (exactly, to be sure) past its position.
  const n1 = await cl.stopNode(1);
  const pos1 = Number(sqlite(n1.dbPath, "SELECT value FROM settings WHERE key = 'cluster_pos'")[0]?.value);
  assert.equal(pos1, seq, `node 1's stored position (settings cluster_pos) after a clean stop: ${pos1}`);
  const second = await sendMany(a, room, 300, { prefix: 'p2', window: 10 });
  await cl.redis.cmd('XTRIM', LOG_KEY, 'MAXLEN', '50');
  const oldest = (await cl.redis.cmd('XRANGE', LOG_KEY, '-', '+', 'COUNT', '1'))[0][0];
  assert.ok(Number(oldest.split('-')[0]) > pos1 + 1, `the log still holds node 1's next entry (${oldest})`);

  // Node 1 back on its database: behind the log.
  const back = await cl.restart(1, n1, { ready: ANSWERS });
  await assertBehind(back, 'node 1 behind the trimmed log');
  // A new empty node: behind the log too (it starts at 0).
  const empty = await cl.add({ ready: ANSWERS });
  await assertBehind(empty, 'a new empty node');

  // Seeding from a backup of node 0, taken while node 0 takes writes: slowly (10/s), since the
  // log (about 50 entries here) must still hold the backup's position when the new node reads.
  const s = new Sender(a, room, { prefix: 'p3', window: 1, gapMs: 100 }).start();
  await sleep(T(300));
  const dir = cl.tmpdir();
  const seeded = backup(cl.nodes[0], path.join(dir, 'parley.db'));
  const pos = Number(sqlite(seeded, "SELECT value FROM settings WHERE key = 'cluster_pos'")[0]?.value);
  assert.ok(Number.isInteger(pos) && pos > 0 && pos <= await cl.redis.seq(), `the backup's cluster_pos: ${pos}`);
  const seedNode = await cl.add({ db: seeded, ready: ANSWERS });
  await waitHealth(seedNode, (x) => x.status === 200, { what: 'the seeded node\'s /healthz 200' });
  await sleep(T(300));
  await s.stop();
  assert.deepEqual([...s.refused.entries()], [], 'sends refused during the backup');
  // And node 1 seeded again the same way: stopped, its file replaced by a backup, started.
  const old1 = await cl.stopNode(1);
  for (const f of [old1.dbPath, `${old1.dbPath}-wal`, `${old1.dbPath}-shm`]) if (existsSync(f)) rmSync(f);
  backup(cl.nodes[0], old1.dbPath);
  await cl.restart(1, old1);
  // The empty node is no use: stop it.
  const ei = cl.nodes.indexOf(empty);
  await cl.stopNode(ei);
  cl.nodes.splice(ei, 1);

  const ids = [...first, ...second, ...s.acked.values()].map((x) => x.id).sort((x, y) => x - y);
  await caughtUp(cl.nodes, cl.redis);
  for (const [i, n] of cl.nodes.entries()) {
    const c = await cl.userOn(n, { sub: `check${i}`, name: 'Check' });
    const hist = (await fullHistory(c, room)).map((m) => m.id);
    assert.deepEqual(hist, ids, `node ${i} (:${n.port}): full history`);
  }
  for (const k of Object.keys(REPLICATED)) sameRows(cl.nodes, k, `${k} after seeding`);
  // The seeded node takes live traffic.
  const w = await cl.userOn(seedNode, { sub: 'tw', name: 'TW' });
  await w.join(room);
  const live = await a.say(room, 'after seeding', 'live');
  const m = await w.next((x) => x.type === 'message' && x.client_id === 'live', T(5000));
  assert.equal(m.id, live.id);
});

test('--redis-log-max 0 never trims', { timeout: T(90000) }, async (t) => {
  const cl = await cluster(t, { nodes: 1, nodeArgs: ['--redis-log-max', '0'], redisArgs: ['--stream-node-max-entries', '10'] });
  const a = await cl.guest(0, 'NT');
  await a.join('keep');
  await sendMany(a, 'keep', 300, { prefix: 'k', window: 10 });
  await caughtUp(cl.nodes, cl.redis);
  assert.ok(await cl.redis.cmd('XLEN', LOG_KEY) >= 300, 'entries were trimmed');
  assert.equal((await cl.redis.cmd('XRANGE', LOG_KEY, '-', '+', 'COUNT', '1'))[0][0], '1-0', 'the first entry was trimmed');
});
