// harness.mjs -- shared helpers for Parley's integration tests.
//
// startServer() runs the real `parley` binary (PARLEY_BIN, default
// <repo>/build/parley) on a free port with a temporary database, and waits
// for GET /healthz. connect() opens a WebSocket client with a message queue.
// mintToken() signs HS256 JWTs with node:crypto, independently of the server.
//
// Under PARLEY_SANITIZE=ON every timeout is scaled up, and stopping a server
// whose stderr holds a sanitizer report rejects, so the test fails.

import { spawn, execFile, execFileSync } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { mkdtempSync, rmSync, existsSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import WebSocket from 'ws';
import { before, after } from 'node:test';
import assert from 'node:assert/strict';

export { WebSocket };

const here = path.dirname(fileURLToPath(import.meta.url));
export const REPO = path.resolve(here, '..', '..');
export const PARLEY_BIN = process.env.PARLEY_BIN || path.join(REPO, 'build', 'parley');
export const SANITIZE = /^(on|1|true|yes)$/i.test(process.env.PARLEY_SANITIZE || '');

/** Scales a timeout for sanitizer builds. */
export function T(ms) {
  return SANITIZE ? ms * 4 : ms;
}

/** Arguments that turn off the per-address limits (iplimit.h) for a server whose
 *  many clients all come from 127.0.0.1. */
export const IP_UNLIMITED = ['--max-conns-per-ip', '0', '--guests-per-ip-minute', '0', '--api-auth-fails-per-ip', '0'];

/** The HS256 secret every test server is started with. */
export const SECRET = 'parley-integration-test-secret-0123456789';

/** How the secret is handed to the server (see the server's --help). */
function secretConfig(secret) {
  return { args: ['--jwt-secret', secret], env: {} };
}

/** The parent's environment without PARLEY_* settings (a developer's shell must not
 *  change what the tests run), except the harness's own PARLEY_BIN/PARLEY_SANITIZE. */
function baseEnv() {
  const e = {};
  for (const [k, v] of Object.entries(process.env))
    if (!k.startsWith('PARLEY_') || k === 'PARLEY_BIN' || k === 'PARLEY_SANITIZE') e[k] = v;
  return e;
}

const SANITIZER_PATTERNS = [
  'ERROR: AddressSanitizer',
  'runtime error:',
  'ERROR: LeakSanitizer',
];

/** Returns the first sanitizer report marker found in `text`, or null. */
export function sanitizerReport(text) {
  for (const p of SANITIZER_PATTERNS) if (text.includes(p)) return p;
  return null;
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Resolves what `promise` resolves, or null after `ms` (the timer is cleared either way,
 *  so it does not keep the process alive). */
export function within(promise, ms) {
  let timer;
  return Promise.race([
    promise.finally(() => clearTimeout(timer)),
    new Promise((r) => (timer = setTimeout(() => r(null), ms))),
  ]);
}

/** A free TCP port on 127.0.0.1 (bind port 0, read it, close). */
export function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.unref();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/** A plain HTTP GET. Resolves {status, headers, body} (body a string). */
export function httpGet(url, { headers = {}, timeoutMs = T(5000) } = {}) {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { headers, agent: false }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () =>
        resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }),
      );
      res.on('error', reject);
    });
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`GET ${url}: timeout`)));
    req.on('error', reject);
  });
}

/** Runs the parley binary to completion (for CLI tests). Resolves {code, signal, stdout, stderr}. */
export function runParley(args, { env = {}, timeoutMs = T(10000) } = {}) {
  return new Promise((resolve) => {
    execFile(
      PARLEY_BIN,
      args,
      { env: { ...baseEnv(), ...env }, timeout: timeoutMs, encoding: 'utf8' },
      (err, stdout, stderr) => {
        resolve({
          code: err ? (typeof err.code === 'number' ? err.code : null) : 0,
          signal: err ? err.signal || null : null,
          stdout,
          stderr,
        });
      },
    );
  });
}

/** Runs SQL on a database with the sqlite3 CLI; returns the rows (-json mode). */
export function sqlite(dbPath, sql) {
  const out = execFileSync('sqlite3', ['-cmd', '.timeout 10000', '-json', dbPath, sql], {
    encoding: 'utf8',
    maxBuffer: 1 << 30, // a cluster test compares whole tables (default 1 MiB: ENOBUFS)
  });
  return out.trim() ? JSON.parse(out) : [];
}

const liveServers = new Set();
process.on('exit', () => {
  for (const s of liveServers) {
    try {
      s.proc.kill('SIGKILL');
    } catch {}
  }
});

/**
 * Starts the server. Options:
 *   args: extra command-line arguments
 *   env: extra environment
 *   db: an existing database path to reuse (restart); default a new temp dir
 *   ownDir: with db, remove db's directory on cleanup() (it is a harness temp dir)
 *   port: a port to use (default a free one)
 *   portArg: false to not pass --port (e.g. to test PARLEY_PORT)
 *   secret: the JWT secret (default SECRET); null for none
 *   bin: the executable (default PARLEY_BIN; the harness's self-test uses a fake)
 *   ipLimits: 'server' to keep the server's per-address limits; by default the
 *     harness turns off --max-conns-per-ip and --guests-per-ip-minute, since every
 *     test client comes from 127.0.0.1 where a real server sees many addresses
 *     (args given by the test come later and win)
 *   ready: a predicate on the /healthz answer ({status, body}) that ends the wait
 *     (default: status 200); a cluster node that must first catch up answers 503
 *     and is started with ready: (r) => r.status === 200 || r.status === 503
 * Resolves the server handle once GET /healthz answers 200 (or `ready` holds).
 */
export async function startServer(opts = {}) {
  const { args = [], env = {}, portArg = true } = opts;
  const secret = opts.secret === undefined ? SECRET : opts.secret;
  const port = opts.port || (await freePort());
  let dir, dbPath, ownDir = false;
  if (opts.db) {
    dbPath = opts.db;
    dir = path.dirname(dbPath);
    ownDir = !!opts.ownDir; // a restart inherits the temp dir, and its cleanup
  } else {
    dir = mkdtempSync(path.join(os.tmpdir(), 'parley-it-'));
    dbPath = path.join(dir, 'parley.db');
    ownDir = true;
  }
  const sc = secret ? secretConfig(secret) : { args: [], env: {} };
  const argv = [
    ...(portArg ? ['--port', String(port)] : []),
    '--bind', '127.0.0.1',
    '--db', dbPath,
    ...(opts.ipLimits === 'server' ? [] : IP_UNLIMITED),
    ...sc.args,
    ...args,
  ];
  const childEnv = {
    ...baseEnv(),
    ASAN_OPTIONS: process.env.ASAN_OPTIONS || 'abort_on_error=0:detect_leaks=1',
    UBSAN_OPTIONS: process.env.UBSAN_OPTIONS || 'print_stacktrace=1',
    ...sc.env,
    ...env,
  };
  const proc = spawn(opts.bin || PARLEY_BIN, argv, { env: childEnv, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '', stderr = '';
  proc.stdout.setEncoding('utf8');
  proc.stderr.setEncoding('utf8');
  proc.stdout.on('data', (d) => (stdout += d));
  proc.stderr.on('data', (d) => (stderr += d));
  let exitInfo = null;
  const exited = new Promise((resolve) => {
    proc.on('error', (e) => {
      stderr += `\n[harness] spawn error: ${e.message}\n`;
      exitInfo = { code: null, signal: null };
      resolve(exitInfo);
    });
    proc.on('exit', (code, signal) => {
      exitInfo = { code, signal };
      resolve(exitInfo);
    });
  });
  // Wait for the streams to finish too, so stderr is complete.
  const drained = exited.then(
    () =>
      new Promise((resolve) => {
        let n = 0;
        const timer = setTimeout(resolve, 2000); // a grandchild may hold the pipes
        timer.unref();
        const done = () => ++n === 2 && (clearTimeout(timer), resolve());
        if (proc.stdout.readableEnded || proc.stdout.destroyed) done(); else proc.stdout.on('close', done);
        if (proc.stderr.readableEnded || proc.stderr.destroyed) done(); else proc.stderr.on('close', done);
      }),
  );

  const srv = {
    port,
    url: `ws://127.0.0.1:${port}/ws`,
    http: `http://127.0.0.1:${port}`,
    dir,
    dbPath,
    proc,
    args,
    env,
    get stdout() { return stdout; },
    get stderr() { return stderr; },
    get exited() { return exitInfo; },
    exitPromise: exited,
  };
  liveServers.add(srv);

  let stopping = null;
  /** Sends `signal` and resolves {code, signal, stderr, stdout, ms} when the process has exited.
   *  Rejects when stderr holds a sanitizer report, or the process does not exit within timeoutMs. */
  srv.stop = (signal = 'SIGTERM', { timeoutMs = T(10000) } = {}) => {
    if (stopping) return stopping;
    stopping = (async () => {
      const t0 = Date.now();
      if (!exitInfo) {
        try { proc.kill(signal); } catch {}
      }
      let timer;
      const to = new Promise((resolve) => (timer = setTimeout(() => resolve('timeout'), timeoutMs)));
      const r = await Promise.race([exited, to]);
      clearTimeout(timer);
      if (r === 'timeout') {
        try { proc.kill('SIGKILL'); } catch {}
        await exited;
        await drained;
        liveServers.delete(srv);
        throw new Error(`server did not exit within ${timeoutMs} ms of ${signal}; stderr:\n${tail(stderr)}`);
      }
      const ms = Date.now() - t0;
      await drained;
      liveServers.delete(srv);
      const rep = sanitizerReport(stderr);
      if (rep) throw new Error(`sanitizer report (${rep}) in server stderr:\n${tail(stderr, 8000)}`);
      return { code: exitInfo.code, signal: exitInfo.signal, stderr, stdout, ms };
    })();
    return stopping;
  };
  /** SIGKILL: no sanitizer report is possible, but one already written still fails. */
  srv.kill = () => srv.stop('SIGKILL');
  /** Stops (SIGTERM, must exit 0) and starts a new server on the same db and port. */
  srv.restart = async (more = {}) => {
    const r = await srv.stop('SIGTERM');
    if (r.code !== 0) throw new Error(`server exited ${r.code}/${r.signal} on SIGTERM; stderr:\n${tail(r.stderr)}`);
    return startServer({ ...opts, db: dbPath, port, ownDir, ...more });
  };
  /** Removes the temp directory (only one the harness created). */
  srv.cleanup = () => {
    if (ownDir && existsSync(dir)) rmSync(dir, { recursive: true, force: true });
  };

  // Wait for /healthz.
  const deadline = Date.now() + T(15000);
  for (;;) {
    if (exitInfo) {
      await drained;
      liveServers.delete(srv);
      throw new Error(
        `server exited (${exitInfo.code}/${exitInfo.signal}) before /healthz answered; argv: ${argv.join(' ')}\nstderr:\n${tail(stderr)}`,
      );
    }
    try {
      const r = await httpGet(`${srv.http}/healthz`, { timeoutMs: 1000 });
      if (opts.ready ? opts.ready(r) : r.status === 200) break;
    } catch {}
    if (Date.now() > deadline) {
      try { proc.kill('SIGKILL'); } catch {}
      liveServers.delete(srv);
      throw new Error(`server did not answer /healthz within ${T(15000)} ms; stderr:\n${tail(stderr)}`);
    }
    await sleep(30);
  }
  return srv;
}

function tail(s, n = 4000) {
  return s.length > n ? '…' + s.slice(-n) : s;
}

/** Reads /healthz as JSON. */
export async function health(srv) {
  const r = await httpGet(`${srv.http}/healthz`);
  if (r.status !== 200) throw new Error(`/healthz answered ${r.status}`);
  return JSON.parse(r.body);
}

/** Polls `fn` until it returns truthy (or throws on timeout). For server-side state
 *  that has no event (e.g. /healthz counters). */
export async function waitFor(fn, { timeoutMs = T(10000), intervalMs = 25, what = 'condition' } = {}) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    try {
      last = await fn();
      if (last) return last;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what} (last: ${last instanceof Error ? last.message : JSON.stringify(last)})`);
    await sleep(intervalMs);
  }
}

// ---------------------------------------------------------------------------
// Client

const TYPE_FIRST = /^\{\s*"type"\s*:/;

/**
 * Opens a WebSocket and resolves a client once it is open (rejects on an HTTP
 * refusal: the error carries .statusCode). opts go to `new WebSocket` (e.g.
 * headers, origin); opts.token appends ?token=.
 */
export function connect(url, opts = {}) {
  const { token, ...wsOpts } = opts;
  const u = token ? `${url}?token=${encodeURIComponent(token)}` : url;
  const ws = new WebSocket(u, { perMessageDeflate: false, maxPayload: 256 * 1024 * 1024, ...wsOpts });
  const c = new Client(ws);
  return new Promise((resolve, reject) => {
    ws.once('open', () => resolve(c));
    ws.once('unexpected-response', (req, res) => {
      const e = new Error(`upgrade refused: HTTP ${res.statusCode}`);
      e.statusCode = res.statusCode;
      res.resume();
      req.destroy();
      reject(e);
    });
    ws.once('error', (e) => reject(e));
  });
}

/** Resolves the HTTP status of a refused upgrade, or 101 when it was accepted (then closes). */
export function upgradeStatus(url, opts = {}) {
  return connect(url, opts).then(
    (c) => {
      c.terminate();
      return 101;
    },
    (e) => {
      if (e.statusCode) return e.statusCode;
      throw e;
    },
  );
}

export class Client {
  constructor(ws) {
    this.ws = ws;
    this.queue = [];      // parsed messages not yet consumed
    this.waiters = [];    // {match, resolve, reject, timer}
    this.frames = [];     // every raw text frame received
    this.badFrames = [];  // frames whose first member is not "type"
    this.binaryFrames = 0;
    this.closeInfo = null;
    this.closed = new Promise((resolve) => {
      ws.on('close', (code, reason) => {
        this.closeInfo = { code, reason: reason.toString('utf8') };
        for (const w of this.waiters.splice(0)) {
          clearTimeout(w.timer);
          w.reject(new Error(`connection closed (${code} ${reason}) while waiting for ${w.what}`));
        }
        resolve(this.closeInfo);
      });
    });
    ws.on('error', () => {}); // surfaced through close
    ws.on('message', (data, isBinary) => {
      if (isBinary) {
        this.binaryFrames++;
        return;
      }
      const text = data.toString('utf8');
      this.frames.push(text);
      if (!TYPE_FIRST.test(text)) this.badFrames.push(text);
      let msg;
      try {
        msg = JSON.parse(text);
      } catch {
        msg = { type: '__unparseable__', text };
      }
      const i = this.waiters.findIndex((w) => w.match(msg));
      if (i >= 0) {
        const [w] = this.waiters.splice(i, 1);
        clearTimeout(w.timer);
        w.resolve(msg);
      } else {
        this.queue.push(msg);
      }
    });
  }

  send(obj) {
    this.ws.send(typeof obj === 'string' ? obj : JSON.stringify(obj));
  }

  sendRaw(data, options = {}) {
    this.ws.send(data, options);
  }

  /**
   * Resolves the next message, or the next of `type` (a string, an array of
   * strings, or a predicate), leaving other messages queued.
   */
  next(type, timeoutMs = T(5000)) {
    const match = matcher(type);
    const i = this.queue.findIndex(match);
    if (i >= 0) return Promise.resolve(this.queue.splice(i, 1)[0]);
    const what = describe(type);
    if (this.closeInfo)
      return Promise.reject(new Error(`connection closed (${this.closeInfo.code}) while waiting for ${what}`));
    return new Promise((resolve, reject) => {
      const w = { match, resolve, reject, what };
      w.timer = setTimeout(() => {
        this.waiters.splice(this.waiters.indexOf(w), 1);
        reject(new Error(`timeout (${timeoutMs} ms) waiting for ${what}; queued: ${JSON.stringify(this.queue.slice(0, 5)).slice(0, 600)}`));
      }, timeoutMs);
      this.waiters.push(w);
    });
  }

  /** Resolves once pred() is true, checking after every frame received (for state kept by
   *  the test's own 'message' listeners). Rejects on timeout or close. */
  waitUntil(pred, timeoutMs = T(10000), what = 'condition') {
    if (pred()) return Promise.resolve();
    return new Promise((resolve, reject) => {
      let finished = false;
      const done = (err) => {
        if (finished) return;
        finished = true;
        clearTimeout(timer);
        this.ws.off('message', check);
        this.ws.off('close', onClose);
        err ? reject(err) : resolve();
      };
      const check = () => setImmediate(() => pred() && done());
      const onClose = () => setImmediate(() => (pred() ? done() : done(new Error(`closed while waiting for ${what}`))));
      const timer = setTimeout(() => done(new Error(`timeout (${timeoutMs} ms) waiting for ${what}`)), timeoutMs);
      this.ws.on('message', check);
      this.ws.on('close', onClose);
    });
  }

  /** Removes and returns every queued message matching `type`. */
  drain(type) {
    const match = matcher(type);
    const out = [], keep = [];
    for (const m of this.queue) (match(m) ? out : keep).push(m);
    this.queue = keep;
    return out;
  }

  /** Queued messages matching `type`, without removing them. */
  peek(type) {
    return this.queue.filter(matcher(type));
  }

  /** Sends a request and resolves the reply of `replyType` or an error carrying its ref. */
  async request(obj, replyType, timeoutMs) {
    const ref = obj.ref ?? `r${++refSeq}`;
    this.send({ ...obj, ref });
    return this.next((m) => m.ref === ref && (m.type === replyType || m.type === 'error'), timeoutMs);
  }

  /** Sends hello (a name string, or an object of hello fields) and resolves the welcome.
   *  Rejects if the answer is an error. */
  async hello(nameOrFields, timeoutMs) {
    const fields = typeof nameOrFields === 'string' ? { name: nameOrFields } : nameOrFields || {};
    this.send({ type: 'hello', ...fields });
    const m = await this.next(['welcome', 'error'], timeoutMs);
    if (m.type !== 'welcome') throw new Error(`hello answered ${JSON.stringify(m)}`);
    this.user = m.user;
    this.welcome = m;
    return m;
  }

  /** Joins and resolves `joined` (rejects on error). */
  async join(room, extra = {}, timeoutMs) {
    const m = await this.request({ type: 'join', room, ...extra }, 'joined', timeoutMs);
    if (m.type !== 'joined') throw new Error(`join ${room} answered ${JSON.stringify(m)}`);
    return m;
  }

  /** Sends a message and resolves its ack (rejects on error). */
  async say(room, text, client_id = `c${++cidSeq}`, timeoutMs) {
    this.send({ type: 'send', room, text, client_id });
    const m = await this.next(
      (x) => (x.type === 'ack' && x.client_id === client_id && x.room === room) || x.type === 'error',
      timeoutMs,
    );
    if (m.type !== 'ack') throw new Error(`send answered ${JSON.stringify(m)}`);
    return m;
  }

  /** Round trip: ping with a fresh ref, wait for its pong. Everything the server queued for
   *  this connection before handling the ping has then arrived. */
  async barrier(timeoutMs) {
    const ref = `b${++refSeq}`;
    this.send({ type: 'ping', ref });
    await this.next((m) => m.type === 'pong' && m.ref === ref, timeoutMs);
  }

  close(code = 1000) {
    try { this.ws.close(code); } catch {}
    return this.closed;
  }

  terminate() {
    try { this.ws.terminate(); } catch {}
  }
}

let refSeq = 0;
let cidSeq = 0;

function matcher(type) {
  if (type === undefined || type === null) return () => true;
  if (typeof type === 'function') return type;
  if (Array.isArray(type)) return (m) => type.includes(m.type);
  return (m) => m.type === type;
}

function describe(type) {
  if (type === undefined || type === null) return 'any message';
  if (typeof type === 'function') return 'a matching message';
  return JSON.stringify(type);
}

/** Connects and says hello as a guest; resolves the client (with .user, .welcome). */
export async function guest(srv, name = 'guest', opts = {}) {
  const c = await connect(srv.url, opts);
  await c.hello(name);
  return c;
}

/** Connects and says hello with a token; resolves the client. */
export async function tokenUser(srv, claims, opts = {}) {
  const c = await connect(srv.url, opts);
  await c.hello({ token: mintToken(claims) });
  return c;
}

// ---------------------------------------------------------------------------
// JWT (HS256), independent of the server's implementation.

export function b64url(buf) {
  return Buffer.from(buf).toString('base64').replace(/=+$/, '').replace(/\+/g, '-').replace(/\//g, '_');
}

/**
 * Mints a token. claims: {sub, name, exp (default now + 1 h), rooms?} plus any extra.
 * opts: {secret, alg ('HS256' | 'none' | other: header only, signed HS256 anyway), header}
 */
export function mintToken(claims, opts = {}) {
  const secret = opts.secret ?? SECRET;
  const alg = opts.alg ?? 'HS256';
  const header = opts.header ?? { alg, typ: 'JWT' };
  const payload = { exp: Math.floor(Date.now() / 1000) + 3600, ...claims };
  const signingInput = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(payload))}`;
  if (alg === 'none') return `${signingInput}.`;
  const sig = createHmac('sha256', secret).update(signingInput).digest();
  return `${signingInput}.${b64url(sig)}`;
}

// ---------------------------------------------------------------------------
// Misc helpers

/** Collects `message`s for `room` on client c until `count` arrived (resolves the list). */
export async function collectMessages(c, room, count, timeoutMs = T(10000)) {
  const out = [];
  while (out.length < count) out.push(await c.next((m) => m.type === 'message' && m.room === room, timeoutMs));
  return out;
}

/** Sends `n` messages pipelined with at most `window` in flight; resolves the acks in send order.
 *  `text(i)` builds each text; client_ids are `${prefix}-${i}`. Retries `overloaded`/`internal`
 *  with the same client_id, as the spec allows. */
export async function sendMany(c, room, n, { window = 50, prefix = 'm', text = (i) => `msg ${i}`, timeoutMs = T(20000), onAck } = {}) {
  const acks = new Array(n);
  let nextI = 0, done = 0;
  const inflight = new Map(); // client_id -> i
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      c.ws.off('message', onMsg);
      reject(new Error(`sendMany: ${done}/${n} acked after ${timeoutMs} ms`));
    }, timeoutMs);
    const pump = () => {
      while (inflight.size < window && nextI < n) {
        const i = nextI++;
        const cid = `${prefix}-${i}`;
        inflight.set(cid, i);
        c.send({ type: 'send', room, text: text(i), client_id: cid, ref: cid });
      }
    };
    const onMsg = (data, isBinary) => {
      if (isBinary) return;
      let m;
      try { m = JSON.parse(data.toString('utf8')); } catch { return; }
      if (m.type === 'ack' && m.room === room && inflight.has(m.client_id)) {
        const i = inflight.get(m.client_id);
        inflight.delete(m.client_id);
        if (!acks[i]) { acks[i] = m; done++; if (onAck) onAck(m, i); }
      } else if (m.type === 'error' && m.ref && inflight.has(m.ref)) {
        const cid = m.ref;
        if (m.code === 'overloaded' || m.code === 'internal') {
          setTimeout(() => c.send({ type: 'send', room, text: text(inflight.get(cid)), client_id: cid, ref: cid }), 20);
          return;
        }
        clearTimeout(timer);
        c.ws.off('message', onMsg);
        reject(new Error(`sendMany: ${JSON.stringify(m)}`));
        return;
      } else {
        return;
      }
      if (done === n) {
        clearTimeout(timer);
        c.ws.off('message', onMsg);
        // The client's own queue also got these acks; drop them so it stays small.
        c.drain((x) => x.type === 'ack' && x.room === room && x.client_id.startsWith(`${prefix}-`));
        resolve(acks);
      } else pump();
    };
    c.ws.on('message', onMsg);
    c.closed.then((ci) => {
      clearTimeout(timer);
      reject(new Error(`sendMany: connection closed ${ci.code} after ${done}/${n} acks`));
    });
    pump();
  });
}

/** Pages through the whole history of `room` with `after` and resolves every message, oldest first. */
export async function fullHistory(c, room, { after = 0, limit = 200 } = {}) {
  const all = [];
  for (;;) {
    const h = await c.request({ type: 'history', room, after, limit }, 'history', T(10000));
    if (h.type !== 'history') throw new Error(`history answered ${JSON.stringify(h)}`);
    all.push(...h.messages);
    if (!h.has_more || h.messages.length === 0) break;
    after = h.messages[h.messages.length - 1].id;
  }
  return all;
}

/** A string of `n` code points (each `ch`, which may be astral). */
export const cps = (n, ch = 'a') => ch.repeat(n);

/**
 * One server for one test: started now, stopped when the test ends (after
 * the clients pushed on the returned array are terminated), where SIGTERM
 * must exit 0 with no sanitizer report.
 */
export async function serverForTest(t, opts = {}) {
  const s = await startServer(opts);
  const clients = [];
  t.after(async () => {
    for (const c of clients) c.terminate();
    const r = await s.stop();
    assert.equal(r.code, 0, `server exit code on SIGTERM; stderr:\n${r.stderr}`);
    s.cleanup();
  });
  return { s, clients };
}

/**
 * One server for a whole test file: started before its tests (onStart gets
 * the handle), stopped after them, where SIGTERM must exit 0 with no
 * sanitizer report. Returns the array of clients to terminate first.
 */
export function sharedServer(opts, onStart) {
  const clients = [];
  let srv;
  before(async () => {
    srv = await startServer(opts);
    onStart(srv);
  });
  after(async () => {
    for (const c of clients) c.terminate();
    const r = await srv.stop();
    assert.equal(r.code, 0, `server exit code on SIGTERM; stderr:\n${r.stderr}`);
    srv.cleanup();
  });
  return clients;
}

/** Every client in cs gets exactly one message matching pred (resolved in cs order). */
export async function everyOnce(cs, pred, what) {
  const got = [];
  for (const [i, c] of cs.entries()) {
    try {
      got.push(await c.next(pred, T(5000)));
    } catch (e) {
      throw new Error(`connection ${i} (${c.user?.id}): no ${what}: ${e.message}`);
    }
  }
  await sleep(T(200));
  for (const [i, c] of cs.entries()) {
    await c.barrier();
    const more = c.drain(pred);
    assert.equal(more.length, 0, `connection ${i} (${c.user?.id}) got ${what} ${1 + more.length} times`);
  }
  return got;
}

/** None of cs receives anything matching pred within a short wait. */
export async function quiet(cs, pred, what) {
  await sleep(T(300));
  for (const [i, c] of cs.entries()) {
    await c.barrier();
    const got = c.drain(pred);
    assert.deepEqual(got, [], `connection ${i} (${c.user?.id}) must not get ${what}`);
  }
}
