// lib12.mjs -- what search.mjs and reads.mjs share: the server, tokens, a
// request/answer WebSocket client, percentiles. Loopback only.
import { spawn } from 'node:child_process';
import { createHmac } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';

const here = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(import.meta.url);
let WS;
for (const p of [path.join(here, 'node_modules/ws'), path.join(here, '../../tests/node_modules/ws'), 'ws']) {
  try { WS = require(p); break; } catch { /* next */ }
}
if (!WS) { console.error('the ws package is missing (npm install --prefix tools/bench)'); process.exit(2); }
export const WebSocket = WS;
export const repo = path.resolve(here, '..', '..');
export const SECRET = 'bench12-secret';

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
export const now = () => Number(process.hrtime.bigint()) / 1e6; // ms
export const loadavg = () => fs.readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
const b64 = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
export function token(sub) {
  const body = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64({ sub, name: `User ${sub.slice(1)}`, exp: Math.floor(Date.now() / 1000) + 7200 })}`;
  return `${body}.${createHmac('sha256', SECRET).update(body).digest('base64url')}`;
}
export const freePort = () => new Promise((res) => {
  const s = net.createServer();
  s.listen(0, '127.0.0.1', () => { const { port } = s.address(); s.close(() => res(port)); });
});
export function pct(xs, p) {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? +s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))].toFixed(2) : null;
}
export function stats(xs) {
  return { n: xs.length, p50_ms: pct(xs, 50), p90_ms: pct(xs, 90), p99_ms: pct(xs, 99), max_ms: xs.length ? +Math.max(...xs).toFixed(2) : null };
}

// The server pinned to core 0 with --threads 1 (as run.sh), on DB.
export async function startServer(db, port, extra = []) {
  const bin = process.env.PARLEY_BIN || path.join(repo, 'build', 'parley');
  const args = [bin, '--port', String(port), '--bind', '127.0.0.1', '--db', db, '--threads', '1',
    '--jwt-secret', SECRET, '--rate', '100000', '--burst', '100000', '--max-connections', '20000',
    '--log-level', 'warn', '--max-conns-per-ip', '0', '--guests-per-ip-minute', '0', ...extra];
  const p = spawn('taskset', ['-c', '0', ...args], { stdio: ['ignore', 'ignore', 'inherit'] });
  for (let i = 0; i < 400; i++) {
    const ok = await new Promise((res) => {
      const c = net.connect(port, '127.0.0.1', () => { c.end(); res(true); });
      c.on('error', () => res(false));
    });
    if (ok) return p;
    await sleep(50);
  }
  p.kill('SIGKILL');
  throw new Error('server did not start');
}
export function stopServer(p) {
  if (p.exitCode !== null) return Promise.resolve();
  return new Promise((res) => { p.on('exit', res); p.kill('SIGTERM'); setTimeout(() => p.kill('SIGKILL'), 5000).unref(); });
}
export function cpuTicks(pid) { // utime+stime of a process (all threads), clock ticks
  const f = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return Number(f[11]) + Number(f[12]);
}

export class Client {
  constructor(url) {
    this.ws = new WebSocket(url, { perMessageDeflate: false });
    this.waiters = new Map();
    this.seq = 0;
    this.onOther = null;
    this.ws.on('message', (d) => {
      const m = JSON.parse(d);
      const w = m.ref && this.waiters.get(m.ref);
      if (w) { this.waiters.delete(m.ref); w(m); } else if (this.onOther) this.onOther(m);
    });
  }
  open() { return new Promise((res, rej) => { this.ws.on('open', res); this.ws.on('error', rej); }); }
  req(o) {
    const ref = `r${++this.seq}`;
    return new Promise((res) => { this.waiters.set(ref, res); this.ws.send(JSON.stringify({ ...o, ref })); });
  }
  close() { try { this.ws.close(); } catch { /* gone */ } }
}
export async function connect(url, sub) {
  const c = new Client(url);
  await c.open();
  const w = await c.req({ type: 'hello', token: token(sub) });
  if (w.type !== 'welcome') throw new Error(JSON.stringify(w));
  return c;
}
