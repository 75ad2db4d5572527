// Churn: thousands of clients connect, join, send and vanish without a close
// frame (FIN or RST), some mid-request, some mid-upgrade, for a bounded time.
// Afterwards the server's file descriptors, memory and sessions are back to
// baseline, every acked message is stored, and (against the ASan binary)
// LeakSanitizer reports nothing when the server is stopped with SIGTERM.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { execFileSync } from 'node:child_process';
import { startServer, connect, health, sleep, T, SANITIZE, waitFor, httpGet, PARLEY_BIN } from '../integration/harness.mjs';
import { procStatus, fdCount, upgradeRequest } from './rawws.mjs';

const DURATION_MS = Number(process.env.CHURN_MS) || (SANITIZE ? 10000 : 20000);
const CONCURRENCY = SANITIZE ? 60 : 200;
const ROOMS = 40;

async function metrics(srv) {
  const body = (await httpGet(`${srv.http}/metrics`)).body;
  const out = {};
  for (const m of body.matchAll(/^parley_([a-z_]+) (\S+)$/gm)) out[m[1]] = Number(m[2]);
  return out;
}

function abrupt(c) {
  // No close frame: half the time a FIN (destroy), half a RST.
  const sock = c.ws._socket;
  if (sock && Math.random() < 0.5 && sock.resetAndDestroy) sock.resetAndDestroy();
  else c.terminate();
}

let cidSeq = 0;

/** One short-lived client doing one of several things, then vanishing. */
async function oneClient(srv, stats) {
  const r = Math.random();
  const room = `churn-${Math.floor(Math.random() * ROOMS)}`;
  if (r < 0.1) {
    // Half an upgrade on a raw socket, then gone.
    const { text } = upgradeRequest(srv.port);
    await new Promise((resolve) => {
      const s = net.connect(srv.port, '127.0.0.1');
      s.on('error', resolve);
      s.on('close', resolve);
      s.on('connect', () => {
        s.write(text.slice(0, Math.floor(Math.random() * text.length)));
        setTimeout(() => (Math.random() < 0.5 ? s.resetAndDestroy() : s.destroy()), Math.random() * 20);
      });
    });
    stats.partialUpgrades++;
    return;
  }
  let c;
  try {
    c = await connect(srv.url);
  } catch {
    stats.connectFailures++;
    return;
  }
  stats.clients++;
  try {
    if (r < 0.2) return abrupt(c); // before hello
    await c.hello(`churner${stats.clients % 1000}`);
    await c.join(room);
    if (r < 0.35) {
      // Sends and vanishes before the acks: requests in flight at the close.
      for (let i = 0; i < 3; i++) c.send({ type: 'send', room, text: `fire and forget ${i}`, client_id: `ff-${++cidSeq}` });
      stats.inflightDrops++;
      return abrupt(c);
    }
    if (r < 0.45) {
      // Joins more rooms, asks for history, vanishes mid-answer.
      for (let i = 0; i < 5; i++) c.send({ type: 'join', room: `churn-${(i * 7) % ROOMS}` });
      c.send({ type: 'history', room, limit: 200 });
      await sleep(Math.random() * 5);
      return abrupt(c);
    }
    const n = 1 + Math.floor(Math.random() * 3);
    for (let i = 0; i < n; i++) {
      const cid = `c-${++cidSeq}`;
      const ack = await c.say(room, `churn message ${cid}`, cid, T(10000));
      stats.acks.set(cid, ack.id);
    }
    if (r < 0.55) {
      await c.close(1000); // a polite one, for comparison
      stats.polite++;
    } else abrupt(c);
  } catch (e) {
    stats.errors.push(e.message);
    c.terminate();
  }
}

async function churn(srv, ms, stats) {
  const deadline = Date.now() + ms;
  await Promise.all(Array.from({ length: CONCURRENCY }, async () => {
    while (Date.now() < deadline) await oneClient(srv, stats);
  }));
}

async function settle(srv, pid, fdTarget) {
  await waitFor(async () => (await health(srv)).connections === 0, { timeoutMs: T(15000), what: 'connections back to 0' });
  if (fdTarget !== undefined)
    await waitFor(() => fdCount(pid) <= fdTarget, { timeoutMs: T(15000), what: `fds back to ${fdTarget} (now ${fdCount(pid)})` });
  await waitFor(async () => {
    const m = await metrics(srv);
    return m.outq_depth === 0 && m.db_queue_depth === 0;
  }, { timeoutMs: T(10000), what: 'queues empty' });
}

/** The event loops this binary offers (--event-loop), default first; [null] when it has no choice. */
function eventLoops() {
  const help = execFileSync(PARLEY_BIN, ['--help'], { encoding: 'utf8' });
  const m = /--event-loop[^\n]*/.exec(help);
  if (!m) return [null];
  return ['uv', 'poll'].filter((l) => m[0].includes(l));
}
const LOOPS = eventLoops();

test('an idle server stopped with SIGTERM: exit 0, no sanitizer (leak) report, with each event loop', async (t) => {
  for (const loop of LOOPS) {
    const srv = await startServer({ args: loop ? ['--event-loop', loop] : [] });
    await health(srv);
    const r = await srv.stop().catch((e) => ({ code: -1, stderr: e.message }));
    srv.cleanup();
    assert.equal(r.code, 0, `--event-loop ${loop}: ${r.stderr.slice(-3000)}`);
  }
});

for (const loop of LOOPS) {
  const ms = loop === LOOPS[0] ? DURATION_MS : Math.round(DURATION_MS / 2);
  test(`churn for ${ms / 1000} s at ${CONCURRENCY} concurrent clients${loop ? ` (--event-loop ${loop})` : ''}: fds, memory and sessions back to baseline; no leaks`, (t) =>
    churnTest(t, loop ? ['--event-loop', loop] : [], ms));
}

async function churnTest(t, loopArgs, DURATION_MS) {
  const srv = await startServer({ args: ['--max-connections', '20000', '--rate', '1000', '--burst', '1000', ...loopArgs] });
  const pid = srv.proc.pid;
  const newStats = () => ({ clients: 0, partialUpgrades: 0, connectFailures: 0, inflightDrops: 0, polite: 0, acks: new Map(), errors: [] });
  try {
    // Warm-up at the same concurrency, so allocator pools and rooms exist.
    const warm = newStats();
    await churn(srv, SANITIZE ? 2000 : 3000, warm);
    await settle(srv, pid);
    await sleep(500);
    const base = { fds: fdCount(pid), rss: procStatus(pid).rssKb, health: await health(srv) };
    t.diagnostic(`baseline after warm-up: ${base.fds} fds, RSS ${base.rss} kB, ${JSON.stringify(base.health)}`);

    const stats = newStats();
    let peak = { fds: 0, rss: 0, conns: 0 };
    const sampler = setInterval(async () => {
      try {
        peak.fds = Math.max(peak.fds, fdCount(pid));
        peak.rss = Math.max(peak.rss, procStatus(pid).rssKb);
        peak.conns = Math.max(peak.conns, (await health(srv)).connections);
      } catch {}
    }, 250);
    const t0 = Date.now();
    await churn(srv, DURATION_MS, stats);
    clearInterval(sampler);
    const churnMs = Date.now() - t0;
    await settle(srv, pid, base.fds);
    await sleep(500);
    const end = { fds: fdCount(pid), rss: procStatus(pid).rssKb, health: await health(srv), m: await metrics(srv) };
    t.diagnostic(`churn: ${stats.clients} WebSocket clients + ${stats.partialUpgrades} half upgrades in ${churnMs} ms ` +
      `(${Math.round((stats.clients + stats.partialUpgrades) / (churnMs / 1000))}/s); ${stats.acks.size} acked sends; ` +
      `${stats.inflightDrops} dropped with sends in flight; ${stats.polite} polite closes; ${stats.connectFailures} connect failures; ` +
      `peak ${peak.conns} connections, ${peak.fds} fds, RSS ${peak.rss} kB`);
    t.diagnostic(`after: ${end.fds} fds (baseline ${base.fds}), RSS ${end.rss} kB (baseline ${base.rss}), ${JSON.stringify(end.health)}, ` +
      `connections_total ${end.m.connections_total}`);
    assert.deepEqual(stats.errors.slice(0, 5), [], 'client errors during churn');
    assert.ok(stats.clients + stats.partialUpgrades >= (SANITIZE ? 500 : 2000), 'not enough churn');
    assert.equal(end.health.connections, 0);
    assert.equal(end.health.db_queue, 0);
    assert.ok(end.fds <= base.fds, `fds ${end.fds} > baseline ${base.fds}`);
    assert.equal(end.health.rooms, base.health.rooms, 'rooms (they persist; churn used the same ones)');
    if (!SANITIZE) {
      // Allow allocator slack; a per-connection leak over thousands of clients would be far more.
      const grew = end.rss - base.rss;
      assert.ok(grew < Math.max(8192, base.rss * 0.25), `RSS grew ${grew} kB over the churn`);
    }
    // Every acked message is stored.
    const stop = await srv.stop('SIGTERM');
    assert.equal(stop.code, 0, stop.stderr.slice(-2000));
    const out = execFileSync('sqlite3', ['-separator', ' ', srv.dbPath, "SELECT client_id, id FROM messages WHERE room LIKE 'churn-%'"],
      { encoding: 'utf8', maxBuffer: 1 << 30 });
    const stored = new Map(out.trim().split('\n').map((l) => { const [c, id] = l.split(' '); return [c, Number(id)]; }));
    for (const [cid, id] of stats.acks) assert.equal(stored.get(cid), id, `acked ${cid} not stored with id ${id}`);
    assert.ok(!/LeakSanitizer|AddressSanitizer|runtime error:/.test(stop.stderr), 'sanitizer report');
  } finally {
    await srv.stop('SIGKILL').catch(() => {});
    srv.cleanup();
  }
}
