// cluster.md, "Redis is unreachable": a write Redis has not taken within the
// deadline (--redis-timeout, 1 s by default) is answered `overloaded` and is
// then never stored (the write carries its deadline: a script that runs late
// does nothing); `internal` where the node cannot know, and a re-send with the
// same client_id is safe; never an ack for what is not applied. Reads keep
// answering from SQLite within a second. When Redis is back, writes resume by
// themselves and no node's history diverges. /healthz stays 200 and says
// "redis":"down".
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  cluster, caughtUp, healthz, waitHealth, metrics, Sender, sameRows, sqlite, connect, sleep, T,
} from './harness.mjs';

const inList = (xs) => xs.map((x) => `'${x}'`).join(',');

/** Sends and resolves {reply, ms}. */
async function timedSend(c, room, text, cid, timeoutMs = T(10000)) {
  const t0 = Date.now();
  c.send({ type: 'send', room, text, client_id: cid, ref: cid });
  const reply = await c.next((m) => m.ref === cid && (m.type === 'ack' || m.type === 'error'), timeoutMs);
  return { reply, ms: Date.now() - t0 };
}

async function timed(p) {
  const t0 = Date.now();
  const r = await p;
  return { r, ms: Date.now() - t0 };
}

test('Redis paused: writes answered within ~2 s (overloaded never stored, internal resent once), reads served, writes resume by themselves', { timeout: T(180000) }, async (t) => {
  const cl = await cluster(t, { nodes: 3 });
  const room = 'pause';
  const users = [];
  for (let i = 0; i < 3; i++) {
    const c = await cl.user(i, { sub: `p${i}`, name: `P${i}` });
    await c.join(room);
    users.push(c);
  }
  const seeds = [];
  for (let k = 0; k < 20; k++) seeds.push(await users[k % 3].say(room, `seed ${k}`, `seed-${k}`));
  await caughtUp(cl.nodes, cl.redis);
  for (const n of cl.nodes) assert.equal((await healthz(n)).json?.redis, 'up', 'redis up before the pause');
  // A background sender across the pause: sends in flight at SIGSTOP too.
  const bgc = await cl.user(0, { sub: 'bg', name: 'BG' });
  await bgc.join(room);
  const bg = new Sender(bgc, room, { prefix: 'bg', window: 8, gapMs: 2 }).start();
  await sleep(T(300));

  cl.redis.pause();
  const pausedAt = Date.now();
  const overloaded = []; // client_ids answered overloaded
  const unknown = [];    // client_ids answered internal
  try {
    // Each node: sends are answered overloaded within about 2 s.
    for (let i = 0; i < 3; i++) {
      const rs = await Promise.all([0, 1, 2].map((k) => timedSend(users[i], room, `paused ${i} ${k}`, `paused-${i}-${k}`)));
      for (const [k, { reply, ms }] of rs.entries()) {
        assert.equal(reply.type, 'error', `node ${i}: a send while Redis is paused was acked: ${JSON.stringify(reply)}`);
        // overloaded: never handed to Redis; internal: handed before the node
        // could know Redis paused, so Redis may have run it (docs/cluster.md)
        assert.ok(['overloaded', 'internal'].includes(reply.code), `node ${i}: ${JSON.stringify(reply)}`);
        assert.ok(ms <= T(2000), `node ${i}: ${reply.code} after ${ms} ms (deadline 1000 ms)`);
        (reply.code === 'overloaded' ? overloaded : unknown).push(`paused-${i}-${k}`);
      }
    }
    // Reads answered from SQLite within a second: ping, history, hello + join (new connections), rooms.
    for (let i = 0; i < 3; i++) {
      const c = users[i];
      const p = await timed(c.request({ type: 'ping' }, 'pong'));
      assert.equal(p.r.type, 'pong');
      assert.ok(p.ms < T(1000), `node ${i}: ping took ${p.ms} ms`);
      const h = await timed(c.request({ type: 'history', room, after: 0, limit: 200 }, 'history'));
      assert.equal(h.r.type, 'history', JSON.stringify(h.r));
      assert.ok(h.ms < T(1000), `node ${i}: history took ${h.ms} ms`);
      const hids = h.r.messages.map((m) => m.id);
      for (const s of seeds) assert.ok(hids.includes(s.id), `node ${i}: seed ${s.id} not in history while Redis is paused`);
      const t0 = Date.now();
      const g = await connect(cl.nodes[i].url);
      cl.clients.push(g);
      await g.hello({ name: `Late ${i}` }, T(1000));
      const j = await g.join(room, { since: seeds[0].id - 1 }, T(1000));
      assert.ok(Date.now() - t0 < T(1500), `node ${i}: connect, hello and join took ${Date.now() - t0} ms`);
      assert.ok(seeds.every((s) => j.messages.some((m) => m.id === s.id)), `node ${i}: join while paused lacks the seeds`);
      const r = await timed(c.request({ type: 'rooms' }, 'rooms'));
      assert.equal(r.r.type, 'rooms');
      assert.ok(r.ms < T(1000), `node ${i}: rooms took ${r.ms} ms`);
    }
    // /healthz: still 200 (reads are served), and says Redis is down.
    for (const [i, n] of cl.nodes.entries()) {
      const h = await waitHealth(n, (x) => x.json?.redis === 'down', { timeoutMs: T(5000), what: '"redis":"down"' });
      assert.equal(h.status, 200, `node ${i}: /healthz with Redis down: ${h.body}`);
      const m = await metrics(n);
      assert.equal(m.get('parley_cluster_redis_up'), 0, `node ${i}: parley_cluster_redis_up while paused`);
    }
    // Stay paused past a few deadlines, so late scripts pile up in Redis.
    const more = await Promise.all([0, 1, 2].map((i) => timedSend(users[i], room, `late ${i}`, `late-${i}`)));
    for (const [i, { reply }] of more.entries()) {
      assert.deepEqual([reply.type, reply.code], ['error', 'overloaded'], `node ${i}: ${JSON.stringify(reply)}`);
      overloaded.push(`late-${i}`);
    }
    await sleep(Math.max(0, T(3000) - (Date.now() - pausedAt)));
  } finally {
    cl.redis.resume();
  }
  const resumedAt = Date.now();
  // Writes resume by themselves: each node acks a new send within a few seconds, no restart.
  for (let i = 0; i < 3; i++) {
    const deadline = Date.now() + T(10000);
    let acked = null, k = 0;
    while (!acked) {
      const { reply } = await timedSend(users[i], room, `after ${i}`, `after-${i}-${k}`);
      if (reply.type === 'ack') acked = reply;
      else {
        assert.ok(['overloaded', 'internal'].includes(reply.code), JSON.stringify(reply));
        (reply.code === 'overloaded' ? overloaded : unknown).push(`after-${i}-${k}`);
        k++;
        assert.ok(Date.now() < deadline, `node ${i}: writes did not resume within ${T(10000)} ms of SIGCONT`);
        await sleep(100);
      }
    }
    assert.ok(acked.id > Math.max(...seeds.map((s) => s.id)));
  }
  for (const [i, n] of cl.nodes.entries())
    await waitHealth(n, (x) => x.status === 200 && x.json?.redis === 'up', { timeoutMs: T(5000), what: `node ${i} "redis":"up" again` });
  await bg.stop();
  assert.deepEqual(bg.extra, [], 'a send answered twice');
  for (const [cid, code] of bg.refused) (code === 'overloaded' ? overloaded : code === 'internal' ? unknown : assert.fail(`bg ${cid}: ${code}`)).push(cid);
  assert.ok(bg.refused.size > 0, 'the background sender got no refusal during the pause');
  // internal: the outcome was unknown; a re-send with the same client_id is acked, once.
  const resentUnknown = new Map();
  for (const cid of unknown) {
    const c = cid.startsWith('bg') ? bgc : users[Number(cid.split('-')[1])];
    resentUnknown.set(cid, await c.say(room, 'resent', cid));
  }
  await caughtUp(cl.nodes, cl.redis);
  // Nothing answered overloaded is stored, on any node; every ack is, on every node.
  for (const [i, n] of cl.nodes.entries()) {
    const stored = sqlite(n.dbPath, `SELECT id, client_id FROM messages WHERE client_id IN (${inList(overloaded)})`);
    const when = (cid) => bg.sentAt.has(cid)
      ? ` (sent ${bg.sentAt.get(cid) - pausedAt} ms after the SIGSTOP, answered overloaded ${bg.latency.get(cid)} ms later; Redis paused for ${resumedAt - pausedAt} ms)`
      : '';
    assert.deepEqual(stored, [], `node ${i} stored messages answered overloaded: ${stored.map((r) => `${r.client_id} as id ${r.id}${when(r.client_id)}`).join('; ')}`);
    const rows = new Map(sqlite(n.dbPath, `SELECT id, client_id FROM messages WHERE user_id = 'bg'`).map((r) => [r.client_id, r.id]));
    for (const [cid, a] of bg.acked) assert.equal(rows.get(cid), a.id, `node ${i}: acked ${cid} not stored`);
    for (const [cid, a] of resentUnknown) {
      const user = cid.startsWith('bg') ? 'bg' : `p${cid.split('-')[1]}`;
      assert.deepEqual(sqlite(n.dbPath, `SELECT id FROM messages WHERE user_id = '${user}' AND client_id = '${cid}'`), [{ id: a.id }],
        `node ${i}: ${cid} (answered internal, then re-sent and acked)`);
    }
  }
  // An overloaded client_id sent again now is a new message (no dedup key was left behind by a late script).
  const cidAgain = overloaded.find((x) => x.startsWith('paused-') || x.startsWith('late-'));
  const userAgain = users[Number(cidAgain.split('-')[1])];
  const again = await userAgain.say(room, 'paused again', cidAgain);
  assert.ok(again.id > Math.max(...seeds.map((s) => s.id)), JSON.stringify(again));
  await caughtUp(cl.nodes, cl.redis);
  for (const [i, n] of cl.nodes.entries())
    assert.deepEqual(sqlite(n.dbPath, `SELECT id, text FROM messages WHERE client_id = '${cidAgain}'`), [{ id: again.id, text: 'paused again' }], `node ${i}`);
  sameRows(cl.nodes, 'messages_full', 'messages after the pause');
  t.diagnostic(`overloaded ${overloaded.length}, internal ${unknown.length}, bg acked ${bg.acked.size}`);
});

test('--redis-timeout sets the deadline (200 ms: answered well before the default 1 s)', { timeout: T(60000) }, async (t) => {
  const cl = await cluster(t, { nodes: 1, nodeArgs: ['--redis-timeout', '200'] });
  const c = await cl.guest(0, 'Quick');
  await c.join('quick');
  await c.say('quick', 'before', 'q0');
  cl.redis.pause();
  let first;
  try {
    // q1 is handed to Redis before the node can know Redis is paused: Redis
    // may have run it (its answer waiting), so the node cannot know the
    // outcome: internal, or overloaded when it was never handed; never an
    // ack, and within the deadline plus the margin.
    const { reply, ms } = await timedSend(c, 'quick', 'paused', 'q1');
    first = reply;
    assert.equal(reply.type, 'error', JSON.stringify(reply));
    assert.ok(['overloaded', 'internal'].includes(reply.code), JSON.stringify(reply));
    assert.ok(ms <= T(700), `${reply.code} after ${ms} ms with --redis-timeout 200`);
    // Once the node saw Redis fail, a write is overloaded at once.
    await sleep(T(600));
    const second = await timedSend(c, 'quick', 'paused again', 'q2');
    assert.deepEqual([second.reply.type, second.reply.code], ['error', 'overloaded'], JSON.stringify(second.reply));
    assert.ok(second.ms <= T(700), `overloaded after ${second.ms} ms with Redis known down`);
  } finally {
    cl.redis.resume();
  }
  // An overloaded write is never stored; an internal one is resent safely.
  await waitHealth(cl.nodes[0], (h) => h.json?.redis === 'up', { what: 'Redis up again' });
  const ack = await timedSend(c, 'quick', 'paused', 'q1');
  assert.equal(ack.reply.type, 'ack', JSON.stringify(ack.reply));
  await caughtUp(cl.nodes, cl.redis);
  const rows = sqlite(cl.nodes[0].dbPath, "SELECT client_id, count(*) AS n FROM messages WHERE client_id IN ('q1','q2') GROUP BY client_id ORDER BY client_id");
  assert.deepEqual(rows, [{ client_id: 'q1', n: 1 }], `after ${first.code}: ${JSON.stringify(rows)}`);
});
