// cluster.md: Redis restarted (AOF on): writes resume by themselves without
// restarting the nodes, and no node's history diverges; an ack is durable in
// Redis with its persistence on (appendfsync always here), so even a
// SIGKILL of Redis loses no acked write and never reuses an id.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync, mkdirSync } from 'node:fs';
import { cluster, caughtUp, healthz, waitHealth, Sender, sameRows, sqlite, sleep, T } from './harness.mjs';

const inList = (xs) => xs.map((x) => `'${x}'`).join(',');

/** Sends new client_ids on c every 100 ms until one is acked; resolves that ack and the
 *  refused ones. */
async function untilAcked(c, room, prefix, what) {
  const refused = [];
  const deadline = Date.now() + T(15000);
  for (let k = 0; ; k++) {
    const cid = `${prefix}-${k}`;
    c.send({ type: 'send', room, text: cid, client_id: cid, ref: cid });
    const r = await c.next((m) => m.ref === cid && (m.type === 'ack' || m.type === 'error'), T(10000));
    if (r.type === 'ack') return { ack: r, refused };
    assert.ok(['overloaded', 'internal'].includes(r.code), `${what}: ${JSON.stringify(r)}`);
    refused.push([cid, r.code]);
    assert.ok(Date.now() < deadline, `${what}: no ack within ${T(15000)} ms (last ${r.code})`);
    await sleep(100);
  }
}

async function outage(t, how) {
  const cl = await cluster(t, { nodes: 3 });
  const room = 'restart';
  const ws = [];
  for (let i = 0; i < 3; i++) {
    const c = await cl.user(i, { sub: `r${i}`, name: `R${i}` });
    await c.join(room);
    ws.push(c);
  }
  const senders = ws.map((c, i) => new Sender(c, room, { prefix: `r${i}`, window: 4, gapMs: 5 }).start());
  await sleep(T(1000));
  const ackedBefore = senders.flatMap((s) => [...s.acked.values()]);
  assert.ok(ackedBefore.length > 10, 'too little traffic before the outage');
  const stopped = Date.now();
  const stopAsked = stopped;
  const e = await cl.redis.stop(how);
  const gone = Date.now();
  if (how === 'SIGTERM') assert.equal(e.code, 0, `redis-server exit on SIGTERM:\n${cl.redis.log.slice(-2000)}`);
  // While Redis is gone: /healthz 200 with "redis":"down"; every send sent now is refused.
  for (const [i, n] of cl.nodes.entries()) {
    const h = await waitHealth(n, (x) => x.json?.redis === 'down', { timeoutMs: T(5000), what: '"redis":"down"' });
    assert.equal(h.status, 200, `node ${i}: ${h.body}`);
  }
  await sleep(T(500));
  const restarting = Date.now();
  await cl.redis.start();
  // Writes resume by themselves.
  const resumed = [];
  for (let i = 0; i < 3; i++) resumed.push(await untilAcked(ws[i], room, `after${i}`, `node ${i} after the Redis restart`));
  await sleep(T(500));
  for (const s of senders) await s.stop();
  for (const s of senders) assert.deepEqual(s.extra, [], `${s.prefix}: a send answered twice`);
  for (const [i, n] of cl.nodes.entries())
    await waitHealth(n, (x) => x.status === 200 && x.json?.redis === 'up', { timeoutMs: T(5000), what: `node ${i} "redis":"up"` });

  const maxBefore = Math.max(...ackedBefore.map((a) => a.id));
  for (const { ack } of resumed) assert.ok(ack.id > maxBefore, `an id after the restart (${ack.id}) is not above those acked before (${maxBefore}): the counter went back`);
  // No ack for a send made after Redis was gone and answered before it was back.
  for (const s of senders)
    for (const [cid, a] of s.acked) {
      const sent = s.sentAt.get(cid), answered = sent + s.latency.get(cid);
      assert.ok(!(sent > gone && answered < restarting), `${cid} (id ${a.id}) was acked while Redis was down`);
    }
  const overloaded = [], unknown = [];
  for (const s of senders)
    for (const [cid, code] of s.refused) {
      assert.ok(['overloaded', 'internal'].includes(code), `${cid}: ${code}`);
      (code === 'overloaded' ? overloaded : unknown).push([s, cid]);
    }
  for (const { refused } of resumed)
    for (const [cid, code] of refused) (code === 'overloaded' ? overloaded : unknown).push([null, cid]);
  // internal: unknown outcome; a re-send with the same client_id is acked once.
  for (const [s, cid] of unknown) {
    if (!s) continue;
    const a = await s.c.say(room, s.texts.get(cid), cid);
    s.acked.set(cid, a);
  }
  // Re-sending an acked client_id from before the outage, on another node: the same id.
  const [old] = [...senders[0].acked.entries()];
  const dup = await ws[1].request({ type: 'send', room, text: 'x', client_id: old[0] }, 'ack');
  assert.equal(dup.type, 'ack', JSON.stringify(dup));
  assert.notEqual(dup.id, old[1].id, 'the same client_id from another user is another message');
  // The same user on another node: the first message's ack.
  const again = await cl.user(2, { sub: 'r0', name: 'R0' });
  await again.join(room);
  const d2 = await again.say(room, 'x', old[0]);
  assert.deepEqual([d2.id, d2.ts], [old[1].id, old[1].ts], 'a re-send of a pre-restart client_id on another node');

  await caughtUp(cl.nodes, cl.redis, { timeoutMs: T(60000) });
  for (const [i, n] of cl.nodes.entries()) {
    const rows = sqlite(n.dbPath, `SELECT id, user_id, client_id FROM messages WHERE room = '${room}'`);
    const have = new Map(rows.map((r) => [`${r.user_id}/${r.client_id}`, r.id]));
    for (const s of senders)
      for (const [cid, a] of s.acked) assert.equal(have.get(`${s.prefix}/${cid}`), a.id, `node ${i}: acked ${cid} (id ${a.id})`);
    const bad = sqlite(n.dbPath, `SELECT id, client_id FROM messages WHERE client_id IN (${inList(overloaded.map(([, c]) => c))})`);
    const when = (cid) => {
      const s = senders.find((x) => cid.startsWith(`${x.prefix}-`));
      if (!s) return '';
      const sent = s.sentAt.get(cid);
      const more = s.extra.filter((m) => m.client_id === cid || m.ref === cid);
      return ` (sent ${sent - stopAsked} ms after Redis was sent ${how}, answered ${s.latency.get(cid)} ms later; Redis exited ${gone - stopAsked} ms after ${how}` +
        `${more.length ? `; then also answered ${JSON.stringify(more)}` : ''})`;
    };
    const lastBefore = Math.max(...senders.flatMap((x) => [...x.acked.entries()].filter(([c]) => x.sentAt.get(c) < stopAsked).map(([, a]) => a.id)));
    assert.deepEqual(bad, [], `node ${i} stored sends answered overloaded: ${bad.map((b) => `${b.client_id} as id ${b.id}${when(b.client_id)}`).join('; ')}` +
      `; the highest id acked for a send made before the ${how}: ${lastBefore}`);
  }
  sameRows(cl.nodes, 'messages_full', `messages after Redis ${how}`);
  t.diagnostic(`outage ${restarting - stopped} ms; overloaded ${overloaded.length}, internal ${unknown.length}`);
  return cl;
}

test('Redis restarted (SIGTERM, same dir): writes resume by themselves, ids go on, no node diverges', { timeout: T(180000) }, async (t) => {
  await outage(t, 'SIGTERM');
});

test('Redis killed (SIGKILL) and started again: no acked write lost, no id reused, no node diverges', { timeout: T(180000) }, async (t) => {
  await outage(t, 'SIGKILL');
});

test('Redis restarted without its data: no id is ever reused; the nodes refuse (behind_log) until reseeded', { timeout: T(120000) }, async (t) => {
  const cl = await cluster(t, { nodes: 2 });
  const room = 'lost';
  const ws = [];
  for (let i = 0; i < 2; i++) {
    const c = await cl.user(i, { sub: `l${i}`, name: `L${i}` });
    await c.join(room);
    ws.push(c);
  }
  const before = [];
  for (let k = 0; k < 30; k++) before.push(await ws[k % 2].say(room, `before ${k}`, `b${k}`));
  const maxBefore = Math.max(...before.map((a) => a.id));
  await caughtUp(cl.nodes, cl.redis);
  await cl.redis.stop('SIGKILL');
  rmSync(cl.redis.dir, { recursive: true, force: true });
  mkdirSync(cl.redis.dir);
  await cl.redis.start();
  assert.equal(await cl.redis.seq(), 0, 'Redis starts empty');
  // Whatever a node answers now, an ack never carries an id that was already given.
  const deadline = Date.now() + T(5000);
  for (let k = 0; Date.now() < deadline; k++) {
    for (let i = 0; i < 2; i++) {
      const r = await ws[i].request({ type: 'send', room, text: `after ${k}`, client_id: `a${i}-${k}` }, 'ack', T(10000))
        .catch((e) => ({ type: 'no answer', message: e.message }));
      if (r.type === 'ack') assert.ok(r.id > maxBefore, `node ${i} acked id ${r.id}, already given (max before the loss ${maxBefore})`);
    }
    await sleep(200);
  }
  for (const [i, n] of cl.nodes.entries()) {
    const h = await waitHealth(n, (x) => x.status !== 200 || x.json?.redis === 'up', { timeoutMs: T(10000), what: 'an answer once Redis is back' });
    assert.deepEqual([h.status, h.json?.status], [503, 'behind_log'], `node ${i} with a Redis that lost the log: ${h.body}`);
  }
  for (const [i, n] of cl.nodes.entries()) {
    const dup = sqlite(n.dbPath, `SELECT id, count(*) AS n FROM messages GROUP BY id HAVING n > 1`);
    assert.deepEqual(dup, [], `node ${i}`);
    const rows = sqlite(n.dbPath, `SELECT id, client_id FROM messages WHERE room = '${room}' AND id <= ${maxBefore} ORDER BY id`);
    assert.deepEqual(rows.map((r) => r.client_id), before.map((_, k) => `b${k}`), `node ${i}: the history before the loss was changed`);
  }
});
