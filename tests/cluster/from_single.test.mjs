// docs/cluster.md, "Turning a single node into a cluster": a node with a
// history, started with --redis on an empty Redis, goes on after its highest
// id (ids stay unique), and nodes seeded from its backup serve that history.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import {
  cluster, startServer, caughtUp, sendMany, fullHistory, sameRows, backup, guest, FAST, T,
} from './harness.mjs';

test('a single node\'s database joins a cluster: ids go on after its history, a seeded node has it all', { timeout: T(120000) }, async (t) => {
  const cl = await cluster(t, { nodes: 0 });
  // A single node (no --redis) with a history.
  const single = await startServer({ args: FAST });
  const g = await guest(single, 'Old');
  await g.join('old');
  const old = await sendMany(g, 'old', 120, { prefix: 'o', window: 10 });
  const e = await g.request({ type: 'edit', room: 'old', id: old[3].id, text: 'old edited' }, 'edited');
  assert.equal(e.type, 'edited');
  g.terminate();
  const r = await single.stop();
  assert.equal(r.code, 0, r.stderr);
  // The same file as the first node of a cluster, on an empty Redis.
  const n0 = await cl.add({ db: single.dbPath, port: single.port });
  const c = await cl.user(0, { sub: 'new', name: 'New' });
  await c.join('old');
  // Each send answered at once with an ack above the single node's ids (no retry hides an error).
  const fresh = [];
  for (let k = 0; k < 30; k++) {
    const a = await c.request({ type: 'send', room: 'old', text: `new ${k}`, client_id: `n-${k}` }, 'ack');
    assert.equal(a.type, 'ack', `send ${k} in cluster mode on the single node's file answered ${JSON.stringify(a)}`);
    assert.ok(a.id > e.rev, `send ${k}: id ${a.id} in cluster mode is not above the single node's last (${e.rev})`);
    fresh.push(a);
  }
  // A second node seeded from its backup, and the history is the same on both.
  const seeded = backup(n0, path.join(cl.tmpdir(), 'parley.db'));
  await cl.add({ db: seeded });
  await caughtUp(cl.nodes, cl.redis);
  for (const [i] of cl.nodes.entries()) {
    const x = await cl.guest(i, `Check${i}`);
    const h = await fullHistory(x, 'old');
    assert.deepEqual(h.map((m) => m.id), [...old, ...fresh].map((a) => a.id), `node ${i}`);
    assert.equal(h.find((m) => m.id === old[3].id).text, 'old edited');
  }
  sameRows(cl.nodes, 'messages_full', 'messages');
});
