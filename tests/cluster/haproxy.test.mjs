// Issue 13's topology: Debian's haproxy in front of three nodes, round robin,
// no sticky sessions. Through it: clients land on different nodes and chat as
// in one server; a killed node's clients reconnect through haproxy (to another
// node) and catch up with `since`, nothing acked lost; haproxy keeps a node
// that answers /healthz 503 (catching up) out of the rotation.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import {
  cluster, caughtUp, connect, freePort, healthz, mintToken, sameRows, sleep, T, waitFor,
} from './harness.mjs';

function haproxyBin() {
  for (const p of ['/usr/sbin/haproxy', '/usr/bin/haproxy'])
    try {
      execFileSync(p, ['-v']);
      return p;
    } catch { /* next */ }
  throw new Error('haproxy is not installed (tools/deps.sh test installs it)');
}

/** Starts haproxy on a free port in front of the nodes; stops with the test. */
async function startHaproxy(t, cl) {
  const port = await freePort();
  const dir = cl.tmpdir();
  const cfg = path.join(dir, 'haproxy.cfg');
  const servers = cl.nodes.map((n, i) =>
    `  server n${i} 127.0.0.1:${n.port} check inter 200ms fall 2 rise 2`).join('\n');
  writeFileSync(cfg, `global
  maxconn 4096
defaults
  mode http
  timeout connect 2s
  timeout check ${T(2000)}ms
  timeout client 60s
  timeout server 60s
  timeout tunnel 1h
frontend chat
  bind 127.0.0.1:${port}
  default_backend nodes
backend nodes
  balance roundrobin
  option httpchk GET /healthz
  http-check expect status 200
  option redispatch
  retries 2
${servers}
`);
  const p = spawn(haproxyBin(), ['-f', cfg, '-db'], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  p.stderr.on('data', (d) => { stderr += d; });
  t.after(() => p.kill('SIGTERM'));
  const url = `ws://127.0.0.1:${port}/ws`;
  await waitFor(async () => {
    try {
      const r = await fetch(`http://127.0.0.1:${port}/healthz`);
      return r.status === 200;
    } catch { return false; }
  }, { timeoutMs: T(10000), what: `haproxy on :${port} (${stderr})` });
  return { port, url, http: `http://127.0.0.1:${port}`, proc: p };
}

/** Connections per node now, from each node's /healthz. */
async function perNode(cl) {
  const out = [];
  for (const n of cl.nodes) out.push(n ? (await healthz(n)).json?.connections ?? 0 : null);
  return out;
}

async function client(cl, url, sub) {
  const c = await connect(url);
  cl.clients.push(c);
  await c.hello({ token: mintToken({ sub, name: sub.toUpperCase() }) });
  return c;
}

/** Three nodes, haproxy in front, and n clients (subs prefix0..) joined to room through it. */
async function setup(t, room, prefix, n = 6) {
  const cl = await cluster(t, { nodes: 3 });
  const hp = await startHaproxy(t, cl);
  const cs = [];
  for (let i = 0; i < n; i++) {
    const c = await client(cl, hp.url, `${prefix}${i}`);
    await c.join(room);
    cs.push(c);
  }
  return { cl, hp, cs };
}

test('through haproxy (round robin): clients spread over the nodes and chat as one server', { timeout: T(120000) }, async (t) => {
  const room = 'lb';
  const { cl, hp, cs } = await setup(t, room, 'lb');
  const spread = await perNode(cl);
  assert.ok(spread.every((n) => n >= 1), `round robin should reach every node: ${JSON.stringify(spread)}`);
  const acks = [];
  for (const [i, c] of cs.entries()) acks.push(await c.say(room, `via haproxy ${i}`, `lb-${i}`));
  const ids = acks.map((a) => a.id);
  assert.equal(new Set(ids).size, ids.length, 'ids unique across the nodes');
  for (const [i, c] of cs.entries()) {
    const got = [];
    while (got.length < cs.length) {
      const m = await c.next((x) => x.type === 'message' && x.room === room, T(5000))
        .catch((e) => assert.fail(`client ${i} got ${got.length} of ${cs.length} messages: ${e.message}`));
      got.push(m.id);
    }
    assert.deepEqual(got, [...got].sort((a, b) => a - b), `client ${i}: messages not in id order`);
    assert.deepEqual([...got].sort((a, b) => a - b), [...ids].sort((a, b) => a - b), `client ${i}: not every message once`);
  }
  // joined.members spans the nodes (presence travels between them)
  await waitFor(async () => {
    const late = await client(cl, hp.url, 'late');
    const j = await late.join(room);
    late.close();
    return j.members.filter((m) => m.id.startsWith('lb')).length === cs.length;
  }, { timeoutMs: T(10000), what: 'a join through haproxy listing the members of every node' });
});

test('through haproxy: a node killed under load, its clients reconnect through haproxy and catch up; nothing acked is lost', { timeout: T(180000) }, async (t) => {
  const room = 'lbkill';
  const { cl, hp, cs } = await setup(t, room, 'k');
  const acked = new Map(); // client_id -> id
  let stop = false, seq = 0;
  const errors = [];
  // one sender through haproxy that reconnects (through haproxy) when its connection drops
  const sender = (async () => {
    let c = await client(cl, hp.url, 'sender');
    await c.join(room);
    while (!stop) {
      const cid = `s-${seq++}`;
      try {
        const a = await c.say(room, `load ${cid}`, cid, T(5000));
        acked.set(cid, a.id);
      } catch (e) {
        errors.push(`${cid}: ${e.message}`);
        try { c.terminate(); } catch { /* gone */ }
        c = await client(cl, hp.url, 'sender');
        await c.join(room);
      }
      await sleep(5);
    }
  })();
  await sleep(T(800));
  const spread = await perNode(cl);
  const victim = spread.indexOf(Math.max(...spread));
  const before = acked.size;
  await cl.kill(victim);
  await sleep(T(1500));
  stop = true;
  await sender;
  assert.ok(acked.size > before, `writes went on through haproxy after the kill (${before} -> ${acked.size})`);
  // every client reconnects through haproxy (which routes around the dead node) and catches up
  const last = Math.max(...acked.values());
  for (const [i, c] of cs.entries()) {
    const lastSeen = c.queue.filter((m) => m.type === 'message').reduce((x, m) => Math.max(x, m.id), 0);
    const n = await client(cl, hp.url, `k${i}`);
    const j = await n.join(room, { since: lastSeen });
    const have = new Set([...c.queue.filter((m) => m.type === 'message').map((m) => m.id), ...j.messages.map((m) => m.id)]);
    for (const [cid, id] of acked)
      if (id <= last) assert.ok(have.has(id) || !j.complete, `client ${i}: acked ${cid} (id ${id}) missing after reconnecting through haproxy`);
    assert.ok(j.complete !== false, `client ${i}: join since ${lastSeen} incomplete`);
  }
  await caughtUp(cl.nodes.filter(Boolean), cl.redis);
  sameRows(cl.nodes.filter(Boolean), 'messages_full', 'the surviving nodes after the kill');
  for (const n of cl.nodes.filter(Boolean)) {
    const rows = new Set(JSON.parse(execFileSync('sqlite3', ['-json', n.dbPath, "SELECT id FROM messages WHERE user_id = 'sender'"]).toString() || '[]').map((r) => r.id));
    for (const [cid, id] of acked) assert.ok(rows.has(id), `:${n.port} lacks acked ${cid} (id ${id})`);
  }
  t.diagnostic(`acked ${acked.size}, reconnects ${errors.length}`);
});
