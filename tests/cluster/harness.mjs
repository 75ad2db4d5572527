// harness.mjs -- helpers for the cluster tests (issue 13, ../shared/spec/cluster.md).
//
// startRedis() runs a private `redis-server` (Debian's package) on a free port
// with its own directory, AOF on and fsync on every write, never the system
// service; it can be paused (SIGSTOP), resumed, stopped and started again on
// the same directory and port. startNode() runs a parley node against it
// through the integration harness's startServer (its own database, the
// per-address limits off, no send rate limit). cluster() starts Redis and N
// nodes for one test and stops everything when the test ends: every node
// still running must exit 0 on SIGTERM with no sanitizer report.
//
// Redis is read from the tests with `redis-cli --json` (redis-tools comes with
// redis-server), so nothing here shares code with the server's client.

import { spawn, execFile } from 'node:child_process';
import { mkdtempSync, rmSync, existsSync, copyFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import assert from 'node:assert/strict';
import {
  startServer, freePort, httpGet, sleep, T, connect, mintToken, sqlite, sanitizerReport, IP_UNLIMITED,
} from '../integration/harness.mjs';

export * from '../integration/harness.mjs';

export const REDIS_SERVER = process.env.REDIS_SERVER || 'redis-server';
export const REDIS_CLI = process.env.REDIS_CLI || 'redis-cli';

/** Arguments every node gets: no send rate limit (the tests send in bursts). */
export const FAST = ['--rate', '100000', '--burst', '100000'];

/** The Redis keys of cluster mode (the interface the server documents). */
export const SEQ_KEY = 'parley:seq';
export const LOG_KEY = 'parley:log';

const tail = (s, n = 4000) => (s.length > n ? '…' + s.slice(-n) : s);

// ---------------------------------------------------------------------------
// Redis

const liveRedis = new Set();
process.on('exit', () => {
  for (const r of liveRedis) {
    try { r.proc.kill('SIGKILL'); } catch {}
  }
});

/** Runs redis-cli against port with args; resolves the reply parsed from --json (RESP2), or
 *  rejects (stderr, exit code, or no answer within timeoutMs: a paused Redis). */
export function redisCli(port, args, { timeoutMs = T(5000) } = {}) {
  return new Promise((resolve, reject) => {
    execFile(
      REDIS_CLI,
      ['-h', '127.0.0.1', '-p', String(port), '-2', '--json', ...args.map(String)],
      { timeout: timeoutMs, encoding: 'utf8', killSignal: 'SIGKILL' },
      (err, stdout, stderr) => {
        if (err) return reject(new Error(`redis-cli ${args.join(' ')}: ${err.killed ? `no answer within ${timeoutMs} ms` : err.message} ${stderr}`));
        const out = stdout.trim();
        if (out.startsWith('(error)') || /^"?(ERR|WRONGTYPE|NOSCRIPT|BUSY|LOADING)/.test(out))
          return reject(new Error(`redis-cli ${args.join(' ')}: ${out}`));
        try {
          resolve(out === '' ? null : JSON.parse(out));
        } catch {
          resolve(out);
        }
      },
    );
  });
}

/**
 * Starts a private redis-server. opts: args (extra redis-server arguments, kept on restart),
 * dir (reuse a directory), port. Resolves a handle once it answers PING:
 *   port, url (redis://127.0.0.1:PORT), dir, proc, log (its stdout+stderr),
 *   cmd(...args) (a command through redis-cli), seq() (parley:seq as a number, 0 if unset),
 *   pause() / resume() (SIGSTOP / SIGCONT), stop(signal) (resolves {code, signal}),
 *   restart() (stop with SIGTERM, start again on the same dir and port; same handle),
 *   cleanup() (removes the directory).
 */
export async function startRedis(opts = {}) {
  const dir = opts.dir || mkdtempSync(path.join(os.tmpdir(), 'parley-redis-'));
  const port = opts.port || (await freePort());
  const extra = opts.args || [];
  const r = {
    port, dir, url: `redis://127.0.0.1:${port}`, proc: null, log: '', paused: false,
    exited: null, exitPromise: null,
  };

  const launch = async () => {
    const argv = [
      '--port', String(port), '--bind', '127.0.0.1', '--dir', dir,
      '--appendonly', 'yes', '--appendfsync', 'always', '--save', '',
      '--daemonize', 'no', '--logfile', '', ...extra,
    ];
    let proc;
    try {
      proc = spawn(REDIS_SERVER, argv, { stdio: ['ignore', 'pipe', 'pipe'] });
    } catch (e) {
      throw new Error(`cannot run ${REDIS_SERVER} (Debian package redis-server): ${e.message}`);
    }
    r.proc = proc;
    r.exited = null;
    r.paused = false;
    proc.stdout.setEncoding('utf8');
    proc.stderr.setEncoding('utf8');
    proc.stdout.on('data', (d) => (r.log += d));
    proc.stderr.on('data', (d) => (r.log += d));
    r.exitPromise = new Promise((resolve) => {
      proc.on('error', (e) => {
        r.log += `\n[harness] spawn error: ${e.message} (is Debian's redis-server installed?)\n`;
        r.exited = { code: null, signal: null };
        resolve(r.exited);
      });
      proc.on('exit', (code, signal) => {
        r.exited = { code, signal };
        resolve(r.exited);
      });
    });
    liveRedis.add(r);
    const deadline = Date.now() + T(10000);
    for (;;) {
      if (r.exited) throw new Error(`redis-server exited (${r.exited.code}/${r.exited.signal}) at start:\n${tail(r.log)}`);
      try {
        if ((await redisCli(port, ['PING'], { timeoutMs: 1000 })) === 'PONG') break;
      } catch {}
      if (Date.now() > deadline) {
        try { proc.kill('SIGKILL'); } catch {}
        throw new Error(`redis-server did not answer PING within ${T(10000)} ms:\n${tail(r.log)}`);
      }
      await sleep(30);
    }
  };

  r.cmd = (...args) => redisCli(port, args);
  r.seq = async () => Number((await r.cmd('GET', SEQ_KEY)) ?? 0);
  /** The newest entry id of the log ('' when empty). */
  r.lastEntry = async () => {
    const x = await r.cmd('XREVRANGE', LOG_KEY, '+', '-', 'COUNT', '1');
    return x && x.length ? x[0][0] : '';
  };
  r.pause = () => {
    r.proc.kill('SIGSTOP');
    r.paused = true;
  };
  r.resume = () => {
    r.proc.kill('SIGCONT');
    r.paused = false;
  };
  r.stop = async (signal = 'SIGTERM', { timeoutMs = T(10000) } = {}) => {
    if (!r.exited) {
      if (r.paused) r.resume();
      try { r.proc.kill(signal); } catch {}
    }
    let timer;
    const res = await Promise.race([
      r.exitPromise,
      new Promise((resolve) => (timer = setTimeout(() => resolve('timeout'), timeoutMs))),
    ]);
    clearTimeout(timer);
    if (res === 'timeout') {
      try { r.proc.kill('SIGKILL'); } catch {}
      await r.exitPromise;
      liveRedis.delete(r);
      throw new Error(`redis-server did not exit within ${timeoutMs} ms of ${signal}:\n${tail(r.log)}`);
    }
    liveRedis.delete(r);
    return r.exited;
  };
  r.restart = async () => {
    const e = await r.stop('SIGTERM');
    if (e.code !== 0) throw new Error(`redis-server exited ${e.code}/${e.signal} on SIGTERM:\n${tail(r.log)}`);
    await r.start();
    return r;
  };
  r.start = () => launch();
  r.cleanup = () => {
    if (existsSync(dir)) rmSync(dir, { recursive: true, force: true });
  };

  await launch();
  return r;
}

// ---------------------------------------------------------------------------
// Nodes

/** A /healthz answer accepted as "started" for a node that may have to catch up first. */
export const ANSWERS = (r) => r.status === 200 || r.status === 503;

/**
 * Starts a parley node in cluster mode on redis. opts go to startServer (args are added
 * after --redis URL and FAST, so they win; db: an existing database; ready: see
 * startServer, default /healthz 200).
 */
export function startNode(redis, opts = {}) {
  const { args = [], ...rest } = opts;
  return startServer({ ...rest, args: ['--redis', redis.url, ...FAST, ...args] });
}

/** GET /healthz: {status, json (null if not JSON), body}. */
export async function healthz(node, timeoutMs = T(3000)) {
  const r = await httpGet(`${node.http}/healthz`, { timeoutMs });
  let json = null;
  try { json = JSON.parse(r.body); } catch {}
  return { status: r.status, json, body: r.body };
}

/** GET /metrics: a Map from each sample's name (with its labels, as written) to its number. */
export async function metrics(node) {
  const r = await httpGet(`${node.http}/metrics`);
  assert.equal(r.status, 200, `/metrics answered ${r.status}`);
  const m = new Map();
  for (const line of r.body.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const i = line.lastIndexOf(' ');
    m.set(line.slice(0, i), Number(line.slice(i + 1)));
  }
  m.text = r.body;
  return m;
}

/** Polls /healthz until pred({status, json}) holds; resolves that answer. */
export async function waitHealth(node, pred, { timeoutMs = T(20000), what = 'a /healthz answer' } = {}) {
  const deadline = Date.now() + timeoutMs;
  let last = null;
  for (;;) {
    try {
      last = await healthz(node, 1000);
      if (pred(last)) return last;
    } catch (e) {
      last = { error: e.message };
    }
    if (Date.now() > deadline)
      throw new Error(`${what} not seen within ${timeoutMs} ms on :${node.port}; last: ${JSON.stringify(last)}\nstderr:\n${tail(node.stderr, 2000)}`);
    await sleep(25);
  }
}

/**
 * Waits until every node answers /healthz 200 with log_position equal to parley:seq (read
 * once first, so call it after the traffic has stopped). Resolves that seq.
 */
export async function caughtUp(nodes, redis, { timeoutMs = T(30000) } = {}) {
  const seq = await redis.seq();
  for (const n of nodes)
    await waitHealth(n, (h) => h.status === 200 && h.json && h.json.log_position === seq,
      { timeoutMs, what: `log_position ${seq} (parley:seq)` });
  return seq;
}

/** The rows every node must agree on once the log is applied everywhere. */
export const REPLICATED = {
  messages: 'SELECT id, room, user_id, text, rev, deleted FROM messages ORDER BY id',
  messages_full: 'SELECT id, room, user_id, user_name, text, ts, client_id, rev, edited_ts, deleted FROM messages ORDER BY id',
  edits: 'SELECT id, msg_id, room, kind, old_text, new_text, by_user, ts FROM edits ORDER BY id',
  read_markers: 'SELECT user_id, room, id FROM read_markers ORDER BY user_id, room',
  dm_rooms: 'SELECT room, user_a, user_b, last_id FROM dm_rooms ORDER BY room',
  sanctions: 'SELECT user_id, room, kind, until, reason, by_user, ts FROM sanctions ORDER BY user_id, room, kind',
  mod_log: 'SELECT ts, actor, action, target, room, message_id, reason, until FROM mod_log ORDER BY ts, action, target',
};

/** Asserts that every node's SQLite answers sql (a key of REPLICATED or SQL) with the same rows
 *  as the first node's; resolves those rows. */
export function sameRows(nodes, sql, what) {
  const q = REPLICATED[sql] || sql;
  const first = sqlite(nodes[0].dbPath, q);
  for (const [i, n] of nodes.entries()) {
    if (i === 0) continue;
    const rows = sqlite(n.dbPath, q);
    if (JSON.stringify(rows) !== JSON.stringify(first)) {
      const diff = firstDifference(first, rows);
      assert.fail(`${what || sql}: node ${i} (:${n.port}) differs from node 0 (:${nodes[0].port}): ` +
        `${first.length} vs ${rows.length} rows; first difference at row ${diff}: ` +
        `${JSON.stringify(first[diff])} vs ${JSON.stringify(rows[diff])}`);
    }
  }
  return first;
}

function firstDifference(a, b) {
  const n = Math.max(a.length, b.length);
  for (let i = 0; i < n; i++) if (JSON.stringify(a[i]) !== JSON.stringify(b[i])) return i;
  return -1;
}

/** The `message`s of room that client c received, in arrival order (live and in `joined`),
 *  read from every frame it got (its queue may have been drained). */
export function seenIn(c, room, { joined = true } = {}) {
  const out = [];
  for (const f of c.frames) {
    let m;
    try { m = JSON.parse(f); } catch { continue; }
    if (m.room !== room) continue;
    if (m.type === 'message') out.push(m);
    else if (joined && m.type === 'joined') out.push(...m.messages);
  }
  return out;
}

/** Asserts ids strictly increase (so no duplicate and log order). */
export function assertIncreasing(ids, what) {
  for (let i = 1; i < ids.length; i++)
    if (!(ids[i] > ids[i - 1]))
      assert.fail(`${what}: id ${ids[i]} at ${i} after ${ids[i - 1]} (not strictly increasing)`);
}

// ---------------------------------------------------------------------------
// A continuous sender

/**
 * Sends into room on client c with at most `window` sends in flight until stop(); each send
 * has a new client_id `${prefix}-${i}`. Records acked (cid -> ack) and refused (cid -> error
 * code). Errors are not retried: the test decides (a re-send with the same client_id is
 * always safe). pending: cids sent and not answered (unknown outcome if the node died).
 * max: at most this many sends.
 */
export class Sender {
  constructor(c, room, { prefix, window = 8, text = (i) => `${prefix} ${i}`, gapMs = 0, max = Infinity } = {}) {
    Object.assign(this, { c, room, prefix, window, text, gapMs, max });
    this.acked = new Map();
    this.refused = new Map();
    this.pending = new Map(); // cid -> sent at (ms), while unanswered
    this.sentAt = new Map();  // cid -> sent at (ms)
    this.extra = [];          // answers to a send already answered
    this.latency = new Map(); // cid -> ms from send to answer
    this.texts = new Map();
    this.i = 0;
    this.running = false;
    this.onMsg = (data, isBinary) => {
      if (isBinary) return;
      let m;
      try { m = JSON.parse(data.toString('utf8')); } catch { return; }
      const cid = m.type === 'ack' && m.room === room ? m.client_id : m.type === 'error' ? m.ref : null;
      if (!cid) return;
      if (!this.pending.has(cid)) {
        // A second answer to one send (a defect the tests report): kept for the evidence.
        if (this.sentAt.has(cid)) this.extra.push(m);
        return;
      }
      this.latency.set(cid, Date.now() - this.pending.get(cid));
      this.pending.delete(cid);
      if (m.type === 'ack') this.acked.set(cid, m);
      else this.refused.set(cid, m.code);
      this.answered++;
      if (this.running) this.pump();
      if (this.pending.size === 0 && this.idle) this.idle();
    };
    this.answered = 0;
  }

  start() {
    this.running = true;
    this.c.ws.on('message', this.onMsg);
    this.pump();
    return this;
  }

  sendOne() {
    const cid = `${this.prefix}-${this.i}`;
    const text = this.text(this.i++);
    this.texts.set(cid, text);
    this.pending.set(cid, Date.now());
    this.sentAt.set(cid, Date.now());
    this.c.send({ type: 'send', room: this.room, text, client_id: cid, ref: cid });
  }

  /** Without gapMs: fills the window at once and on every answer. With gapMs: one send per
   *  gapMs at most (while the window has room). */
  pump() {
    const open = () => this.running && this.c.ws.readyState === 1 && this.i < this.max;
    if (!this.gapMs) {
      while (open() && this.pending.size < this.window) this.sendOne();
      return;
    }
    if (this.timer) return;
    const tick = () => {
      this.timer = null;
      if (!open()) return;
      if (this.pending.size < this.window) this.sendOne();
      this.timer = setTimeout(tick, this.gapMs);
    };
    tick();
  }

  /** Stops sending; resolves once nothing is in flight (or after timeoutMs, or at close). */
  async stop(timeoutMs = T(15000)) {
    this.running = false;
    clearTimeout(this.timer);
    this.timer = null;
    if (this.pending.size && this.c.ws.readyState === 1) {
      await Promise.race([
        new Promise((r) => (this.idle = r)),
        sleep(timeoutMs),
        this.c.closed,
      ]);
    }
    this.c.ws.off('message', this.onMsg);
    // Acks and errors also landed in the client's queue: drop them.
    this.c.drain((m) => (m.type === 'ack' && m.room === this.room && m.client_id?.startsWith(`${this.prefix}-`)) ||
      (m.type === 'error' && m.ref?.startsWith(`${this.prefix}-`)));
    return this;
  }
}

// ---------------------------------------------------------------------------
// One cluster for one test

/**
 * Starts a private Redis and `nodes` parley nodes on it; everything stops when the test ends:
 * clients are terminated, every running node gets SIGTERM and must exit 0 with no sanitizer
 * report, Redis stops, the temporary directories go. Returns
 *   { redis, nodes, clients, guest(i, name), user(i, claims), add(opts), kill(i),
 *     restart(i, opts), lost }
 * where nodes[i] is the running node i (replaced by restart), add() starts one more node
 * (opts: db, ready, args) and resolves it, and clients are terminated at the end.
 */
export async function cluster(t, { nodes = 3, nodeArgs = [], redisArgs = [] } = {}) {
  const redis = await startRedis({ args: redisArgs });
  const cl = { redis, nodes: [], clients: [], nodeArgs, gone: [] };
  const dirs = new Set();
  t.after(async () => {
    for (const c of cl.clients) c.terminate();
    if (redis.paused) redis.resume();
    const problems = [];
    for (const [i, n] of cl.nodes.entries()) {
      if (!n) continue;
      try {
        const r = await n.stop('SIGTERM', { timeoutMs: T(15000) });
        if (r.code !== 0) problems.push(`node ${i} (:${n.port}) exited ${r.code}/${r.signal} on SIGTERM; stderr:\n${tail(r.stderr)}`);
      } catch (e) {
        problems.push(`node ${i} (:${n.port}): ${e.message}`);
      }
    }
    for (const n of cl.crashed) problems.push(`node :${n.port} exited unexpectedly (${n.exited?.code}/${n.exited?.signal}):\n${tail(n.stderr, 8000)}`);
    for (const n of cl.gone) {
      // Killed nodes: a sanitizer report written before the kill still fails the test.
      const rep = sanitizerReport(n.stderr);
      if (rep) problems.push(`killed node :${n.port} has a sanitizer report (${rep}):\n${tail(n.stderr, 8000)}`);
    }
    try { await redis.stop(); } catch (e) { problems.push(e.message); }
    redis.cleanup();
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
    if (problems.length) assert.fail(problems.join('\n\n'));
  });

  /** A node that exits without being told to (a crash, a sanitizer abort) is reported at once
   *  on stderr with its log, since the test itself then only sees closed connections (1006). */
  const watch = (n) => {
    n.exitPromise.then((e) => {
      if (n.expectedExit) return;
      cl.crashed.push(n);
      console.error(`[cluster harness] node :${n.port} exited unexpectedly (${e.code}/${e.signal}); its stderr:\n${tail(n.stderr, 8000)}`);
    });
    const stop = n.stop;
    n.stop = (...a) => {
      n.expectedExit = true;
      return stop(...a);
    };
    return n;
  };
  cl.crashed = [];
  cl.add = async (opts = {}) => {
    const n = watch(await startNode(redis, { ...opts, args: [...nodeArgs, ...(opts.args || [])] }));
    dirs.add(n.dir);
    cl.nodes.push(n);
    return n;
  };
  /** SIGKILL node i; it stays in cl.gone for the final sanitizer check. */
  cl.kill = async (i) => {
    const n = cl.nodes[i];
    cl.nodes[i] = null;
    cl.gone.push(n);
    await n.kill();
    return n;
  };
  /** SIGTERM node i (must exit 0). */
  cl.stopNode = async (i) => {
    const n = cl.nodes[i];
    cl.nodes[i] = null;
    const r = await n.stop('SIGTERM');
    assert.equal(r.code, 0, `node ${i} exit code on SIGTERM; stderr:\n${tail(r.stderr)}`);
    return n;
  };
  /** Starts node i again on its database and port (after kill or stopNode). opts: ready, args. */
  cl.restart = async (i, old, opts = {}) => {
    const n = watch(await startServer({
      db: old.dbPath, port: old.port, ready: opts.ready,
      args: opts.args ? [...old.args, ...opts.args] : old.args,
    }));
    cl.nodes[i] = n;
    return n;
  };
  cl.guest = async (i, name = `g${i}`) => {
    const c = await connect(cl.nodes[i].url);
    cl.clients.push(c);
    await c.hello(name);
    return c;
  };
  cl.user = async (i, claims) => {
    const c = await connect(cl.nodes[i].url);
    cl.clients.push(c);
    await c.hello({ token: mintToken(claims) });
    c.claims = claims;
    return c;
  };
  /** A connection to node (a handle), for a node not in cl.nodes. */
  cl.userOn = async (node, claims) => {
    const c = await connect(node.url);
    cl.clients.push(c);
    await c.hello({ token: mintToken(claims) });
    c.claims = claims;
    return c;
  };
  /** A new temporary directory removed at the end (for seeded databases). */
  cl.tmpdir = () => {
    const d = mkdtempSync(path.join(os.tmpdir(), 'parley-cl-'));
    dirs.add(d);
    return d;
  };

  for (let i = 0; i < nodes; i++) await cl.add();
  return cl;
}

/** Copies a running node's database with the sqlite3 shell's .backup (the documented way to
 *  seed a node); resolves the new file's path. */
export function backup(node, dest) {
  sqlite(node.dbPath, `.backup '${dest}'`);
  return dest;
}

export { copyFileSync, IP_UNLIMITED };
