#!/usr/bin/env node
// cluster.mjs -- the cluster's benchmarks (issue 13): a private redis-server
// and N Parley nodes on it, started here and stopped at the end.
//
//   node tools/bench/cluster.mjs writes [--nodes 3] [--conns 64] [--window 16]
//        [--duration 10] [--warmup 2] [--fsync always|everysec|always,everysec]
//        [--gen loadgen|node]
//   node tools/bench/cluster.mjs e2e [--nodes 3] [--clients 1000] [--rate 100]
//        [--duration 30] [--warmup 2] [--fsync everysec]
//   node tools/bench/cluster.mjs single [--conns 64] [--window 16] [--duration 10]
//   common: [--threads 1] [--quiet-below 1.5] [--quiet-wait 600] [--rounds 1]
//           [--no-redis] (e2e on one node without Redis: the same client's
//           cost and latency against one server) [--pin] [--keep]
//
// Several scenarios may be named in one call; each is run once per --fsync
// policy (single: once, it has no Redis) and per round, on a fresh Redis,
// fresh nodes and fresh databases, and prints one JSON line on stdout.
//
// redis-server: Debian's, on a free loopback port, in a temporary folder,
// `--appendonly yes --appendfsync <policy> --save ''` (never the system
// service). Nodes: PARLEY_BIN (default build/parley) with `--redis
// redis://127.0.0.1:PORT --port P --db <tmp>/nK.db --max-conns-per-ip 0
// --guests-per-ip-minute 0 --api-auth-fails-per-ip 0 --rate 100000 --burst
// 100000 --log-level warn --threads 1`; each must answer /healthz 200
// before the load starts. `single` starts one node without --redis (the
// A/B against the single-node build: run it with each PARLEY_BIN).
// Nothing is pinned: the nodes, Redis and this client share the machine's
// cores as the scheduler likes (--pin puts the nodes and Redis on core 0
// and this client on core 1, as run.sh does for one server).
//
// writes: CONNS guest connections spread round robin over the nodes, each
// in a room of its own (no fan-out but the sender's own copy), each
// keeping WINDOW sends unacked (a new send on each ack), for WARMUP +
// DURATION s; only sends made in the measured DURATION count. The
// connections are parley-loadgen's (--gen loadgen, the default: one
// process per node, --rate 0 --window WINDOW --room-prefix n<K>w, its
// ack latency p50/p99 per node) or this process's (--gen node: ~25 us of
// CPU per ack, 3-5x the loadgen's, which a 2-core machine cannot spare).
// acks/s, ack latency (send to ack), errors by code, and each node's log
// lag: /healthz's
// log_lag polled every 200 ms (the max, and the last after the load).
// A node learns the log's end from its own writes' answers and from a
// check once a second, so a lag is a lower bound between checks.
//
// e2e: CLIENTS guests in one room, client i on node i % NODES; one more
// connection, the sender, on node A (node 0) sends RATE messages/s (paced
// to the absolute schedule) for WARMUP + DURATION s, each text starting
// with its send time (this process's monotonic clock, so sender and
// receivers share it). Every receiver notes its receipt time; latency =
// receipt - send, per node of the receiver (p50/p99/p999/max), for the
// messages sent in the measured DURATION, and how many deliveries are
// missing or out of order after a 3 s drain. Log lag as above.
//
// Every JSON line has the load average before and after, the seconds
// waited for quiet, and the CPU time used during the measured window by
// the nodes (sum and each), redis-server, this client, and all the rest of
// the machine (/proc/stat busy minus those), in s and per write/delivery.
// --quiet-below L: before each run wait (at most --quiet-wait s) until the
// 1-minute load average is below L. Loopback only; every run stops by
// itself (timers below, and a hard limit of 10 minutes per run).
import { spawn, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { WebSocket, cpuTicks, freePort, loadavg, now, repo, sleep } from './lib12.mjs';

const argv = process.argv.slice(2);
const SCENARIOS = argv.filter((a, i) => !a.startsWith('--') && !(i > 0 && argv[i - 1].startsWith('--')));
const opt = (k, d) => { const i = argv.indexOf(`--${k}`); return i >= 0 ? argv[i + 1] : d; };
const num = (k, d) => Number(opt(k, d));
const flag = (k) => argv.includes(`--${k}`);
if (!SCENARIOS.length || SCENARIOS.some((s) => !['writes', 'e2e', 'single'].includes(s))) {
  console.error('usage: cluster.mjs writes|e2e|single ... [--nodes N] [--fsync always,everysec] (see the head of the file)');
  process.exit(2);
}
const BIN = process.env.PARLEY_BIN || path.join(repo, 'build', 'parley');
const THREADS = opt('threads', '1');
const PIN = flag('pin');
const HZ = 100; // clock ticks per second (getconf CLK_TCK on Linux)
const log = (...a) => console.error('cluster:', ...a);
const pct = (s, p) => (s.length ? +s[Math.min(s.length - 1, Math.floor(p * s.length))].toFixed(2) : null);
function lat(xs) {
  const s = Float64Array.from(xs).sort();
  return { n: s.length, p50_ms: pct(s, 0.5), p99_ms: pct(s, 0.99), p999_ms: pct(s, 0.999), max_ms: s.length ? +s[s.length - 1].toFixed(2) : null };
}
let hardStop = null;

// ------------------------------------------------------------ processes
const children = new Set();
function launch(cmd, args, logFile) {
  const fd = fs.openSync(logFile, 'a');
  const full = PIN ? ['taskset', ['-c', cmd === 'node' ? '1' : '0', cmd, ...args]] : [cmd, args];
  const p = spawn(full[0], full[1], { stdio: ['ignore', fd, fd] });
  fs.closeSync(fd);
  children.add(p);
  p.on('exit', () => children.delete(p));
  p.cmdline = [cmd, ...args].join(' ');
  return p;
}
function stop(p) {
  if (!p || p.exitCode !== null || p.signalCode) return Promise.resolve();
  return new Promise((res) => { p.on('exit', res); p.kill('SIGTERM'); setTimeout(() => p.kill('SIGKILL'), 5000).unref(); });
}
process.on('exit', () => { for (const p of children) try { p.kill('SIGKILL'); } catch { /* gone */ } });
for (const s of ['SIGINT', 'SIGTERM']) process.on(s, () => process.exit(130));

function redisCmd(port, ...args) { // one command, RESP, on a fresh connection
  return new Promise((res, rej) => {
    const c = net.connect(port, '127.0.0.1');
    let out = '';
    c.on('connect', () => c.write(`*${args.length}\r\n${args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join('')}`));
    c.on('data', (d) => { out += d; if (/\r\n$/.test(out) && (out[0] !== '$' || out.split('\r\n').length > 2)) { c.end(); res(out); } });
    c.on('error', rej);
    setTimeout(() => { c.destroy(); rej(new Error('redis: no answer')); }, 3000).unref();
  });
}

async function startRedis(dir, fsync) {
  const port = await freePort();
  const args = ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--appendonly', 'yes',
    '--appendfsync', fsync, '--save', '', '--daemonize', 'no', '--logfile', path.join(dir, 'redis.log')];
  const p = launch('redis-server', args, path.join(dir, 'redis.out'));
  for (let i = 0; i < 100; i++) {
    try { if ((await redisCmd(port, 'PING')).startsWith('+PONG')) return { p, port }; } catch { /* not yet */ }
    await sleep(50);
  }
  throw new Error('redis-server did not start');
}

function getJson(port, p) {
  return new Promise((res) => {
    const req = http.get({ host: '127.0.0.1', port, path: p, timeout: 2000 }, (r) => {
      let d = '';
      r.on('data', (x) => (d += x));
      r.on('end', () => { try { res({ code: r.statusCode, body: JSON.parse(d) }); } catch { res({ code: r.statusCode, body: null }); } });
    });
    req.on('error', () => res({ code: 0 }));
    req.on('timeout', () => req.destroy());
  });
}

async function startNode(dir, k, redisPort) {
  const port = await freePort();
  const args = ['--port', String(port), '--bind', '127.0.0.1', '--db', path.join(dir, `n${k}.db`),
    '--max-conns-per-ip', '0', '--guests-per-ip-minute', '0', '--api-auth-fails-per-ip', '0',
    '--rate', '100000', '--burst', '100000', '--max-connections', '20000', '--log-level', 'warn', '--threads', THREADS];
  if (redisPort) args.unshift('--redis', `redis://127.0.0.1:${redisPort}`);
  const p = launch(BIN, args, path.join(dir, `n${k}.log`));
  for (let i = 0; i < 300; i++) {
    if (p.exitCode !== null) break;
    if ((await getJson(port, '/healthz')).code === 200) return { p, port, k };
    await sleep(50);
  }
  throw new Error(`node ${k} did not answer /healthz 200 (${path.join(dir, `n${k}.log`)})`);
}

// ------------------------------------------------------------ measuring
function procTicks(pid) { try { return cpuTicks(pid); } catch { return NaN; } }
// A node's threads in the order it starts them (main.c, db.c, cluster.c):
// the event loop (--threads 1: the main thread), two search threads, the
// database worker, and with --redis the cluster's writer and reader.
const ROLES = ['loop', 'search1', 'search2', 'worker', 'writer', 'reader'];
function threadTicks(pid) { // [ticks] by thread id order
  try {
    return fs.readdirSync(`/proc/${pid}/task`).map(Number).sort((a, b) => a - b).map((t) => {
      const f = fs.readFileSync(`/proc/${pid}/task/${t}/stat`, 'utf8').split(') ')[1].split(' ');
      return Number(f[11]) + Number(f[12]);
    });
  } catch { return []; }
}
function machineTicks() { // busy, total (all CPUs)
  const f = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  const idle = f[3] + f[4];
  const total = f.slice(0, 8).reduce((a, b) => a + b, 0);
  return { busy: total - idle, total };
}
function cpuSnap(nodes, redis) {
  const u = process.cpuUsage();
  return { nodes: nodes.map((n) => procTicks(n.p.pid)), threads: nodes.map((n) => threadTicks(n.p.pid)), redis: redis ? procTicks(redis.p.pid) : 0, self: (u.user + u.system) / 1e4, m: machineTicks(), t: now() };
}
function cpuDiff(a, b, units) {
  const s = (t) => +(t / HZ).toFixed(2);
  const nodes = b.nodes.map((x, i) => x - a.nodes[i]);
  const nodeSum = nodes.reduce((x, y) => x + y, 0);
  const redis = b.redis - a.redis, self = b.self - a.self, busy = b.m.busy - a.m.busy;
  const wall = (b.t - a.t) / 1000;
  const per = (t) => (units ? +((t / HZ) * 1e6 / units).toFixed(1) : null);
  const threads = b.threads.map((ts, i) => {
    const o = {};
    ts.forEach((t, j) => { if (j < ROLES.length + 2) o[ROLES[j] || `t${j}`] = s(t - (a.threads[i][j] || 0)); });
    return o;
  });
  return {
    wall_s: +wall.toFixed(2), node_threads_s: threads,
    nodes_s: s(nodeSum), each_node_s: nodes.map(s), redis_s: s(redis), client_s: s(self),
    rest_s: s(Math.max(0, busy - nodeSum - redis - self)), machine_busy_s: s(busy), machine_capacity_s: +(wall * os.cpus().length).toFixed(2),
    us_per_unit: { nodes: per(nodeSum), redis: per(redis), client: per(self) },
  };
}

// Polls every node's /healthz log_lag every 200 ms until stopped.
function lagPoller(nodes) {
  const max = nodes.map(() => 0), last = nodes.map(() => null), not200 = nodes.map(() => 0);
  let on = true, polls = 0;
  const done = (async () => {
    while (on) {
      const t = now();
      const rs = await Promise.all(nodes.map((n) => getJson(n.port, '/healthz')));
      rs.forEach((r, i) => {
        if (r.code !== 200) not200[i]++;
        const l = r.body && r.body.log_lag;
        if (typeof l === 'number') { last[i] = l; if (l > max[i]) max[i] = l; }
      });
      polls++;
      await sleep(Math.max(0, 200 - (now() - t)));
    }
  })();
  return {
    async stop() { on = false; await done; return { lag_max: max, lag_last: last, polls, healthz_not_200: not200 }; },
  };
}

async function waitQuiet() {
  const below = Number(opt('quiet-below', 0));
  const limit = num('quiet-wait', 600);
  const t0 = now();
  if (!below) return { waited_s: 0 };
  let l;
  while ((l = Number(loadavg().split(' ')[0])) >= below && (now() - t0) / 1000 < limit) {
    if (now() - t0 < 100) log(`load ${l} >= ${below}: waiting up to ${limit}s`);
    await sleep(5000);
  }
  return { waited_s: +((now() - t0) / 1000).toFixed(0), quiet: l < below };
}

function redisStats(info) { // commandstats lines -> {cmd: {calls, usec_per_call}}
  const o = {};
  for (const m of info.matchAll(/cmdstat_(\w+):calls=(\d+),usec=(\d+),usec_per_call=([\d.]+)/g))
    o[m[1]] = { calls: +m[2], usec_per_call: +m[4] };
  return o;
}

// ------------------------------------------------------------ clients
class Conn {
  constructor(port, name) {
    this.ws = new WebSocket(`ws://127.0.0.1:${port}/ws`, { perMessageDeflate: false });
    this.name = name;
    this.onFrame = null;
    this.waiting = null;
    this.ws.on('message', (d) => {
      const s = d.toString();
      if (this.waiting && this.waiting.test(s)) { const w = this.waiting; this.waiting = null; w.res(s); return; }
      if (this.onFrame) this.onFrame(s);
    });
    this.ws.on('error', (e) => { this.err = e.message; });
  }
  expect(re, ms = 20000) {
    return new Promise((res, rej) => {
      this.waiting = { test: (s) => re.test(s), res };
      setTimeout(() => { if (this.waiting) { this.waiting = null; rej(new Error(`${this.name}: no ${re} in ${ms} ms`)); } }, ms).unref();
    });
  }
  async setup(room) {
    if (this.ws.readyState !== WebSocket.OPEN)
      await new Promise((res, rej) => { this.ws.once('open', res); this.ws.once('error', rej); });
    const w = this.expect(/^\{"type":"(welcome|error)"/);
    this.ws.send(JSON.stringify({ type: 'hello', name: this.name }));
    const a = await w;
    if (!a.startsWith('{"type":"welcome"')) throw new Error(`${this.name}: ${a}`);
    const j = this.expect(/^\{"type":"(joined|error)"/);
    this.ws.send(JSON.stringify({ type: 'join', room }));
    const b = await j;
    if (!b.startsWith('{"type":"joined"')) throw new Error(`${this.name}: ${b}`);
  }
  send(o) { this.ws.send(JSON.stringify(o)); }
  close() { try { this.ws.terminate(); } catch { /* gone */ } }
}
async function setupAll(conns, roomOf, batch = 50) {
  for (let i = 0; i < conns.length; i += batch)
    await Promise.all(conns.slice(i, i + batch).map((c, j) => c.setup(roomOf(i + j))));
}
const errCode = (s) => (s.match(/"code":"([^"]*)"/) || [])[1] || '?';

// ------------------------------------------------------------ scenarios
// writes with parley-loadgen: one process per node, its share of CONNS
// connections, each a sender in a room of its own (--room-prefix n<K>w, so
// that no two nodes' rooms meet), --rate 0 --window WINDOW. Its CPU counts
// as the client's.
async function writesLoadgen(nodes) {
  const CONNS = num('conns', 64), WINDOW = num('window', 16), DUR = num('duration', 10), WARM = num('warmup', 2);
  const runs = nodes.map((n, k) => {
    const c = Math.floor(CONNS / nodes.length) + (k < CONNS % nodes.length ? 1 : 0);
    const args = ['--port', String(n.port), '--clients', String(c), '--rooms', String(c), '--senders', String(c),
      '--size', '100', '--rate', '0', '--window', String(WINDOW), '--warmup', String(WARM), '--duration', String(DUR),
      '--json', '--label', `node${k}`, '--room-prefix', `n${k}w`];
    return spawnLoadgen(args);
  });
  const lag = lagPoller(nodes);
  const pids = () => runs.map((r) => procTicks(r.p.pid)).reduce((a, b) => a + b, 0);
  await sleep(WARM * 1000 + 100); // setup (a few ms for a few connections) and warm-up
  const c0 = cpuSnap(nodes, nodes.redis), g0 = pids();
  await sleep(DUR * 1000);
  const c1 = cpuSnap(nodes, nodes.redis), g1 = pids();
  c1.self = c1.self - c0.self + g1 - g0; c0.self = 0; // the client: the loadgens and this process (the polls)
  const res = await Promise.all(runs.map((r) => r.done));
  const lg = await lag.stop();
  const acked = res.reduce((a, r) => a + ((r.ack_us && r.ack_us.n) || 0), 0);
  const errors = {};
  for (const r of res) for (const [k, v] of Object.entries(r.errors || {})) errors[k] = (errors[k] || 0) + v;
  const ms = (x) => (x == null ? null : +(x / 1000).toFixed(2));
  return {
    gen: 'parley-loadgen', conns: CONNS, window: WINDOW, duration_s: DUR, warmup_s: WARM,
    sent: res.reduce((a, r) => a + (r.sent || 0), 0), acked_incl_warmup: res.reduce((a, r) => a + (r.acked || 0), 0),
    unacked: res.reduce((a, r) => a + (r.unacked || 0), 0), send_errors: res.reduce((a, r) => a + (r.send_errors || 0), 0), errors,
    acks_per_s: Math.round(res.reduce((a, r) => a + (r.acks_per_s || 0), 0)), acks_per_node: res.map((r) => Math.round(r.acks_per_s || 0)),
    ack: { n: acked, p50_ms_by_node: res.map((r) => ms(r.ack_us && r.ack_us.p50)), p99_ms_by_node: res.map((r) => ms(r.ack_us && r.ack_us.p99)),
      p50_ms: Math.max(...res.map((r) => ms(r.ack_us && r.ack_us.p50))), p99_ms: Math.max(...res.map((r) => ms(r.ack_us && r.ack_us.p99))),
      max_ms: Math.max(...res.map((r) => ms(r.ack_us && r.ack_us.max))) },
    loadgen_failed: res.filter((r) => r.failed).map((r) => r.failed),
    loadgen_max_stall_ms: res.map((r) => r.loadgen_max_stall_ms),
    ...lg, cpu: cpuDiff(c0, c1, acked), loadgen_cmd0: runs[0].cmd.replace(/--port \d+/, '--port $NODE0'),
  };
}

async function writes(nodes) {
  if (opt('gen', 'loadgen') === 'loadgen') return writesLoadgen(nodes);
  const CONNS = num('conns', 64), WINDOW = num('window', 16), DUR = num('duration', 10), WARM = num('warmup', 2);
  const conns = Array.from({ length: CONNS }, (_, i) => new Conn(nodes[i % nodes.length].port, `w${i}`));
  await setupAll(conns, (i) => `w${i}`);
  log(`${CONNS} connections ready`);
  let measuring = false, stopping = false, tEnd = 0;
  const ack = [], errors = {};
  let sent = 0, acked = 0, echoes = 0, unmatched = 0;
  const perNode = nodes.map(() => 0);
  conns.forEach((c, i) => {
    c.times = new Map();
    c.seq = 0;
    const room = `w${i}`;
    const fill = () => {
      while (!stopping && c.times.size < WINDOW) {
        const id = `c${c.seq++}`;
        const t = now();
        c.times.set(id, { t, m: measuring });
        if (measuring) sent++;
        c.send({ type: 'send', room, client_id: id, text: `t=${t.toFixed(3)} ${'x'.repeat(80)}` });
      }
    };
    c.onFrame = (s) => {
      if (s.startsWith('{"type":"message"')) { echoes++; return; }
      const isAck = s.startsWith('{"type":"ack"');
      const id = (s.match(/"client_id":"(c\d+)"/) || [])[1];
      const e = id && c.times.get(id);
      if (!isAck && !s.startsWith('{"type":"error"')) return; // presence, ...
      if (!e) { unmatched++; if (!isAck) errors[errCode(s)] = (errors[errCode(s)] || 0) + 1; return; }
      c.times.delete(id);
      if (e.m) {
        if (isAck) { ack.push(now() - e.t); acked++; perNode[i % nodes.length]++; } else errors[errCode(s)] = (errors[errCode(s)] || 0) + 1;
      }
      fill();
    };
    c.fill = fill;
  });
  const lag = lagPoller(nodes);
  conns.forEach((c) => c.fill());
  await sleep(WARM * 1000);
  measuring = true;
  const c0 = cpuSnap(nodes, nodes.redis);
  await sleep(DUR * 1000);
  measuring = false;
  tEnd = now();
  const c1 = cpuSnap(nodes, nodes.redis);
  stopping = true;
  // the acks of sends made in the window come in after it: wait for them
  for (let i = 0; i < 50 && conns.some((c) => [...c.times.values()].some((e) => e.m)); i++) await sleep(100);
  const unanswered = conns.reduce((n, c) => n + [...c.times.values()].filter((e) => e.m).length, 0);
  const lg = await lag.stop();
  conns.forEach((c) => c.close());
  return {
    gen: 'node', conns: CONNS, window: WINDOW, duration_s: DUR, warmup_s: WARM, sent, acked, unanswered, errors, unmatched,
    acks_per_s: Math.round(acked / DUR), acks_per_node: perNode, echoes, ack: lat(ack), ...lg,
    cpu: cpuDiff(c0, c1, acked), drain_s: +((now() - tEnd) / 1000).toFixed(2),
  };
}

// e2e with parley-loadgen receivers: one loadgen per node (its share of
// CLIENTS, --senders 0, all in room e2e0), this process the one sender on
// node A. A measured message's text starts "t=<CLOCK_MONOTONIC ns>;" (node's
// hrtime is that clock), which the loadgen turns into its latency
// histogram; warm-up messages carry no "t=", so the loadgen leaves them out.
// The loadgens' measured window (--warmup 0, --duration long enough) spans
// the whole send; the sender starts once every node counts its connections
// and the presence storm of the joins is over.
/** The e2e sender's frames: ack latency of the measured sends, errors by code. */
function senderFrames(first, sentAt, ackLat, sErrors) {
  return (s) => {
    if (s.startsWith('{"type":"ack"')) {
      const n = +(s.match(/"client_id":"e(\d+)"/) || [])[1];
      if (n >= first) ackLat.push(now() - sentAt[n]);
    } else if (s.startsWith('{"type":"error"')) sErrors[errCode(s)] = (sErrors[errCode(s)] || 0) + 1;
  };
}

function spawnLoadgen(args) {
  const gen = path.join(process.env.BUILD_DIR || path.join(repo, 'build'), 'tools', 'parley-loadgen');
  const p = spawn(PIN ? 'taskset' : gen, PIN ? ['-c', '1', gen, ...args] : args, { stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(p);
  let out = '', err = '';
  p.stdout.on('data', (d) => (out += d));
  p.stderr.on('data', (d) => (err += d));
  const done = new Promise((res) => p.on('exit', (code) => {
    children.delete(p);
    const line = out.split('\n').filter((l) => l.startsWith('{')).pop();
    res(line ? JSON.parse(line) : { failed: `loadgen exit ${code}: ${err.slice(-300)}` });
  }));
  return { p, done, cmd: [gen, ...args].join(' ') };
}

async function e2eLoadgen(nodes) {
  const CLIENTS = num('clients', 1000), RATE = num('rate', 100), DUR = num('duration', 30), WARM = num('warmup', 2);
  const room = 'e2e0';
  const share = nodes.map((_, k) => Math.floor(CLIENTS / nodes.length) + (k < CLIENTS % nodes.length ? 1 : 0));
  const SLACK = 15; // seconds the loadgens may take to connect and settle
  const runs = nodes.map((n, k) => spawnLoadgen(['--port', String(n.port), '--clients', String(share[k]), '--rooms', '1',
    '--room-prefix', 'e2e', '--senders', '0', '--rate', '1', '--warmup', '0', '--duration', String(SLACK + WARM + DUR + 2),
    '--settle', '3', '--drain', '1', '--json', '--label', `node${k}`]));
  const tSet = now();
  for (let i = 0; i < 300; i++) { // every node counts its share
    const hz = await Promise.all(nodes.map((n) => getJson(n.port, '/healthz')));
    if (hz.every((h, k) => h.body && h.body.connections >= share[k])) break;
    await sleep(50);
  }
  const sender = new Conn(nodes[0].port, 'sender');
  await sender.setup(room);
  const setup_s = +((now() - tSet) / 1000).toFixed(1);
  await sleep(3500); // the loadgens settle (300 ms without a frame) and start their window
  const total = Math.round((WARM + DUR) * RATE), first = Math.round(WARM * RATE);
  const sentAt = new Float64Array(total);
  const ackLat = [], sErrors = {};
  sender.onFrame = senderFrames(first, sentAt, ackLat, sErrors);
  const lag = lagPoller(nodes);
  const t0 = now();
  let c0 = null, g0 = 0;
  const gticks = () => runs.map((r) => procTicks(r.p.pid)).reduce((a, b) => a + b, 0);
  for (let n = 0; n < total; n++) {
    const due = t0 + (n * 1000) / RATE;
    const w = due - now();
    if (w > 1) await sleep(w - 1);
    while (now() < due) { /* the last ms: spin */ }
    if (n === first) { c0 = cpuSnap(nodes, nodes.redis); g0 = gticks(); }
    sentAt[n] = now();
    const text = n >= first ? `t=${process.hrtime.bigint()};n=${n}; ${'y'.repeat(60)}` : `warm-up ${n} ${'y'.repeat(70)}`;
    sender.send({ type: 'send', room, client_id: `e${n}`, text });
  }
  const c1 = cpuSnap(nodes, nodes.redis), g1 = gticks();
  c1.self = c1.self - c0.self + g1 - g0; c0.self = 0; // the client: the loadgens and this process (the sender, the polls)
  const late = +(now() - t0 - (total * 1000) / RATE).toFixed(1);
  await sleep(1500);
  const lg = await lag.stop();
  sender.close();
  for (const r of runs) r.p.kill('SIGINT'); // each prints its summary at once
  const res = await Promise.all(runs.map((r) => r.done));
  const ms = (x) => (x == null ? null : +(x / 1000).toFixed(2));
  const byNode = {};
  res.forEach((r, k) => {
    const l = r.lat_us || {};
    byNode[String.fromCharCode(65 + k)] = { clients: share[k], n: l.n, expected: (total - first) * share[k], missing: (total - first) * share[k] - (l.n || 0),
      p50_ms: ms(l.p50), p90_ms: ms(l.p90), p99_ms: ms(l.p99), p999_ms: ms(l.p999), max_ms: ms(l.max),
      duplicates: r.duplicates, errors: r.errors, closed: r.closed_during_run, failed: r.failed };
  });
  const deliveries = res.reduce((a, r) => a + ((r.lat_us && r.lat_us.n) || 0), 0);
  return {
    gen: 'parley-loadgen', clients: CLIENTS, rate: RATE, duration_s: DUR, warmup_s: WARM, setup_s, sent: total - first, sender_late_ms: late,
    deliveries, expected: (total - first) * CLIENTS, latency_by_receiver_node: byNode, ack: lat(ackLat), send_errors: sErrors, ...lg,
    cpu: cpuDiff(c0, c1, deliveries), loadgen_cmd0: runs[0].cmd.replace(/--port \d+/, '--port $NODE0'),
  };
}

async function e2e(nodes) {
  if (opt('gen', 'loadgen') === 'loadgen') return e2eLoadgen(nodes);
  const CLIENTS = num('clients', 1000), RATE = num('rate', 100), DUR = num('duration', 30), WARM = num('warmup', 2);
  const room = 'e2e';
  const rx = Array.from({ length: CLIENTS }, (_, i) => new Conn(nodes[i % nodes.length].port, `r${i}`));
  const tSet = now();
  await setupAll(rx, () => room);
  const sender = new Conn(nodes[0].port, 'sender');
  await sender.setup(room);
  const setup_s = +((now() - tSet) / 1000).toFixed(1);
  await sleep(2000); // the presence of 1,000 joins drains
  const total = Math.round((WARM + DUR) * RATE), first = Math.round(WARM * RATE);
  const sentAt = new Float64Array(total);
  const perNode = nodes.map(() => []);
  const got = new Uint32Array(CLIENTS);
  let outOfOrder = 0, dup = 0, ackLat = [], sErrors = {};
  rx.forEach((c, i) => {
    const node = i % nodes.length;
    c.lastId = 0;
    c.onFrame = (s) => {
      if (!s.startsWith('{"type":"message"')) return;
      const t = now();
      const q = s.indexOf('"text":"t=');
      const sent = parseFloat(s.slice(q + 10, q + 30)); // its send time, this process's clock
      const n = parseInt(s.slice(s.indexOf(';n=', q) + 3), 10); // its number
      const id = +(s.match(/"id":(\d+)/) || [])[1];
      if (id <= c.lastId) { if (id === c.lastId) dup++; else outOfOrder++; }
      c.lastId = Math.max(c.lastId, id);
      if (n >= first && n < total) { perNode[node].push(t - sent); got[i]++; }
    };
  });
  sender.onFrame = senderFrames(first, sentAt, ackLat, sErrors);
  const lag = lagPoller(nodes);
  const t0 = now();
  let c0 = null;
  for (let n = 0; n < total; n++) {
    const due = t0 + (n * 1000) / RATE;
    const w = due - now();
    if (w > 1) await sleep(w - 1);
    while (now() < due) { /* the last ms: spin */ }
    if (n === first) c0 = cpuSnap(nodes, nodes.redis);
    sentAt[n] = now();
    sender.send({ type: 'send', room, client_id: `e${n}`, text: `t=${sentAt[n].toFixed(3)};n=${n}; ${'y'.repeat(70)}` });
  }
  const c1 = cpuSnap(nodes, nodes.redis);
  const late = +(now() - t0 - (total * 1000) / RATE).toFixed(1);
  const expect = (total - first) * CLIENTS;
  for (let i = 0; i < 30 && got.reduce((a, b) => a + b, 0) < expect; i++) await sleep(100);
  const lg = await lag.stop();
  const deliveries = got.reduce((a, b) => a + b, 0);
  rx.forEach((c) => c.close());
  sender.close();
  const byNode = {};
  perNode.forEach((xs, k) => { byNode[String.fromCharCode(65 + k)] = lat(xs); });
  return {
    gen: 'node', clients: CLIENTS, rate: RATE, duration_s: DUR, warmup_s: WARM, setup_s, sent: total - first, sender_late_ms: late,
    deliveries, expected: expect, missing: expect - deliveries, out_of_order: outOfOrder, duplicates: dup,
    latency_by_receiver_node: byNode, all: lat(perNode.flat()), ack: lat(ackLat), send_errors: sErrors, ...lg,
    cpu: cpuDiff(c0, c1, deliveries),
  };
}

// ------------------------------------------------------------ runs
async function runOne(sc, fsync, round) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'parley-cluster-'));
  const q = await waitQuiet();
  const la0 = loadavg();
  let busy = '';
  try { // the three busiest processes (ps: CPU over each one's lifetime), as ab.sh
    busy = execFileSync('ps', ['-eo', 'pcpu=,comm=', '--sort=-pcpu']).toString().trim().split('\n').slice(0, 3)
      .map((l) => l.trim().split(/\s+/)).map(([c, n]) => `${n} ${c}%`).join(', ');
  } catch { /* no ps */ }
  const noRedis = sc === 'single' || flag('no-redis');
  const NODES = noRedis ? 1 : num('nodes', 3);
  let redis = null, nodes = [];
  const out = { bench: 'cluster', scenario: sc, round, nodes: NODES, redis: !noRedis, fsync: noRedis ? null : fsync, threads: +THREADS, pin: PIN, bin: BIN };
  hardStop = setTimeout(() => { log('hard limit reached'); process.exit(3); }, 600000);
  try {
    if (!noRedis) redis = await startRedis(dir, fsync);
    for (let k = 0; k < NODES; k++) nodes.push(await startNode(dir, k, redis && redis.port));
    nodes.redis = redis;
    out.commands = { redis: redis && redis.p.cmdline.replace(dir, '$TMP').replace(dir, '$TMP'), node0: nodes[0].p.cmdline.replaceAll(dir, '$TMP') };
    log(`${sc}${redis ? ` fsync=${fsync}` : ''}: ${NODES} node(s) up, load ${loadavg()}`);
    const r = sc === 'e2e' ? await e2e(nodes) : await writes(nodes);
    Object.assign(out, r);
    if (redis) {
      const info = await redisCmd(redis.port, 'INFO', 'commandstats');
      const cs = redisStats(info);
      out.redis_cmd = { evalsha: cs.evalsha, xread: cs.xread };
      out.log_len = Number((await redisCmd(redis.port, 'GET', 'parley:seq')).split('\r\n')[1]);
    }
    out.nodes_alive = nodes.map((n) => n.p.exitCode === null && !n.p.signalCode);
    // every node applies the whole log: wait (5 s at most) until each has
    let hz;
    for (let i = 0; i < 50; i++) {
      hz = await Promise.all(nodes.map((n) => getJson(n.port, '/healthz')));
      if (!redis || hz.every((h) => h.body && h.body.log_position >= out.log_len)) break;
      await sleep(100);
    }
    out.final_log_position = hz.map((h) => h.body && h.body.log_position);
    if (redis) {
      out.all_applied = out.final_log_position.every((x) => x === out.log_len);
      if (!out.all_applied) log(`a node did not apply the whole log (${out.log_len}): ${JSON.stringify(hz.map((h) => h.body))}`);
    }
  } catch (e) {
    out.failed = String(e && e.message || e);
  } finally {
    for (const n of nodes) await stop(n.p);
    if (redis) await stop(redis.p);
    clearTimeout(hardStop);
    const warnLog = nodes.map((n) => { try { return fs.readFileSync(path.join(dir, `n${n.k}.log`), 'utf8').split('\n').filter(Boolean).length; } catch { return 0; } });
    out.node_log_lines = warnLog;
    if (warnLog.some((x) => x > 0) && !flag('keep')) out.node_log_head = fs.readFileSync(path.join(dir, `n${warnLog.findIndex((x) => x > 0)}.log`), 'utf8').slice(0, 400);
    if (flag('keep')) out.dir = dir; else fs.rmSync(dir, { recursive: true, force: true });
  }
  out.loadavg_before = la0;
  out.procs_before = busy;
  out.loadavg_after = loadavg();
  out.quiet_wait = q;
  out.date = new Date().toISOString();
  console.log(JSON.stringify(out));
}

const FSYNC = opt('fsync', 'everysec').split(',');
const ROUNDS = num('rounds', 1);
if (!fs.existsSync(BIN)) { console.error(`${BIN} is not built`); process.exit(2); }
try { execFileSync('redis-server', ['--version']); } catch { console.error('redis-server is missing (apt-get install redis-server)'); process.exit(2); }
for (let r = 1; r <= ROUNDS; r++)
  for (const sc of SCENARIOS)
    for (const f of sc === 'single' || flag('no-redis') ? [null] : FSYNC) await runOne(sc, f, r);
process.exit(0);
