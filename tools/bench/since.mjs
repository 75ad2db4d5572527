// since.mjs -- how long a `join` with `since` takes to catch up on 1,000
// missed changes (messages and edits mixed) in a database of N messages.
//
//   npm install --prefix tools/bench   # once: the ws package
//   node tools/bench/since.mjs [--messages 1000000] [--rooms 20] [--runs 200]
//
// PARLEY_BIN picks the server (default build/parley). The database is made
// once in a temporary folder: the server creates and migrates it, then the
// sqlite3 shell inserts the rows in one transaction (ids and revs as the
// server would assign them). The server then runs on it with --threads 1;
// a writer makes 600 sends and 400 edits in room-0 (the edits fall on
// older messages, so the catch-up has `updates` as well as `messages`), and
// a reader times `join room-0 since=S` RUNS times, S being the last id
// before the changes. Prints one JSON line: p50, p90, p99, max in ms, and
// what each catch-up held. Loopback only; stops by itself.
import { spawn, execFileSync } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import WebSocket from 'ws';

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, '..', '..');
const bin = process.env.PARLEY_BIN || path.join(repo, 'build', 'parley');
const arg = (k, d) => {
  const i = process.argv.indexOf(`--${k}`);
  return i > 0 ? Number(process.argv[i + 1]) : d;
};
const MESSAGES = arg('messages', 1000000), ROOMS = arg('rooms', 20), RUNS = arg('runs', 200);

const SECRET = 'since-bench-secret';
const b64 = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
function token(sub) {
  const body = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64({ sub, name: sub, exp: Math.floor(Date.now() / 1000) + 3600 })}`;
  return `${body}.${createHmac('sha256', SECRET).update(body).digest('base64url')}`;
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const freePort = () => new Promise((res) => {
  const s = net.createServer();
  s.listen(0, '127.0.0.1', () => { const { port } = s.address(); s.close(() => res(port)); });
});

async function start(db, port) {
  const p = spawn(bin, ['--port', String(port), '--bind', '127.0.0.1', '--db', db, '--threads', '1',
    '--jwt-secret', SECRET,
    '--rate', '100000', '--burst', '100000', '--log-level', 'warn',
    '--max-conns-per-ip', '0', '--guests-per-ip-minute', '0'], { stdio: ['ignore', 'ignore', 'inherit'] });
  for (let i = 0; i < 200; i++) {
    const ok = await new Promise((res) => {
      const c = net.connect(port, '127.0.0.1', () => { c.end(); res(true); });
      c.on('error', () => res(false));
    });
    if (ok) return p;
    await sleep(50);
  }
  throw new Error('server did not start');
}

function stop(p) {
  return new Promise((res) => { p.on('exit', res); p.kill('SIGTERM'); });
}

class Client {
  constructor(url) {
    this.ws = new WebSocket(url, { perMessageDeflate: false });
    this.waiters = new Map();
    this.seq = 0;
    this.ws.on('message', (d) => {
      const m = JSON.parse(d);
      const w = m.ref && this.waiters.get(m.ref);
      if (w) { this.waiters.delete(m.ref); w(m); }
    });
  }
  open() { return new Promise((res, rej) => { this.ws.on('open', res); this.ws.on('error', rej); }); }
  req(o) {
    const ref = `r${++this.seq}`;
    return new Promise((res) => { this.waiters.set(ref, res); this.ws.send(JSON.stringify({ ...o, ref })); });
  }
}

const pct = (xs, p) => xs[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))];

const dir = mkdtempSync(path.join(os.tmpdir(), 'parley-since-'));
const db = path.join(dir, 'since.db');
try {
  let port = await freePort();
  await stop(await start(db, port)); // creates and migrates the schema
  const t0 = Date.now();
  execFileSync('sqlite3', [db, `
    PRAGMA journal_mode=WAL;
    BEGIN;
    WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < ${MESSAGES})
    INSERT INTO messages(id, room, user_id, user_name, text, ts, client_id, rev)
      SELECT x, 'room-' || (x % ${ROOMS}), 'u' || (x % 1000), 'User ' || (x % 1000),
             'message number ' || x || ' with some ordinary words in it', 1700000000000 + x, 'c' || x, x
      FROM n;
    COMMIT;`]);
  const seeded = Date.now() - t0;
  port = await freePort();
  const srv = await start(db, port);
  const url = `ws://127.0.0.1:${port}/ws`;
  // Readers take turns: each connection's read budget (4 MiB at once, then
  // 1 MiB/s) would otherwise answer rate_limited after ~17 catch-ups.
  const w = new Client(url), readers = Array.from({ length: Math.ceil(RUNS / 10) }, () => new Client(url));
  await Promise.all([w.open(), ...readers.map((x) => x.open())]);
  // The writer is user u0, the author of every 1000th seeded message: its
  // edits of those land in `updates`, its new messages in `messages`.
  await w.req({ type: 'hello', token: token('u0') });
  for (const r of readers) await r.req({ type: 'hello', name: 'Reader' });
  const j0 = await w.req({ type: 'join', room: 'room-0' });
  const since = j0.messages[j0.messages.length - 1].id;
  const oldMine = [];
  for (let x = Math.floor(since / 1000) * 1000; x > 0 && oldMine.length < 400; x -= 1000) oldMine.push(x);
  for (let i = 0, k = 0; i < 1000; i++) {
    const a = i % 5 < 3
      ? await w.req({ type: 'send', room: 'room-0', text: `fresh ${i}`, client_id: `f${i}` })
      : await w.req({ type: 'edit', room: 'room-0', id: oldMine[k++ % oldMine.length], text: `edited ${i}` });
    if (a.type !== 'ack' && a.type !== 'edited') throw new Error(JSON.stringify(a));
  }
  const times = [];
  let held;
  for (let i = 0; i < RUNS; i++) {
    const t = process.hrtime.bigint();
    const j = await readers[i % readers.length].req({ type: 'join', room: 'room-0', since });
    if (j.type !== 'joined') throw new Error(JSON.stringify(j));
    times.push(Number(process.hrtime.bigint() - t) / 1e6);
    held = { messages: j.messages.length, updates: j.updates.length, complete: j.complete };
  }
  times.sort((a, b) => a - b);
  console.log(JSON.stringify({
    bench: 'join-since', messages: MESSAGES, rooms: ROOMS, runs: RUNS, seeded_ms: seeded,
    changes: 1000, since, held,
    p50_ms: +pct(times, 50).toFixed(2), p90_ms: +pct(times, 90).toFixed(2),
    p99_ms: +pct(times, 99).toFixed(2), max_ms: +times[times.length - 1].toFixed(2),
  }));
  w.ws.close();
  for (const r of readers) r.ws.close();
  await stop(srv);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
