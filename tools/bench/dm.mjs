#!/usr/bin/env node
// DM delivery latency against room delivery latency, to a user with 5
// connections spread over the server's event loops (issue 11).
//
// usage: node tools/bench/dm.mjs [PARLEY_BIN | --url ws://127.0.0.1:PORT/ws] [options]
//   --count N       measured messages of each kind (default 3000)
//   --rate R        sends per second in total, the two kinds alternating (default 100:
//                   50/s room + 50/s DM)
//   --warmup S      seconds of sends before the measured ones, not counted (default 2)
//   --threads T     the server's --threads when this tool starts it (default 2)
//   --bystanders N  N more users' connections, idle, joined to the measured room
//                   (in a child process; default 0)
//   --bg-rate R     a second sender (in that child process) sends R msgs/s into room
//                   `bg`, which every bystander joined too (default 0; needs --bystanders)
//   --aa            control run (A/A): the second kind goes to a second room `r2`
//                   that the 5 connections joined, instead of the DM; the
//                   difference it shows is the method's noise
// Each delivery is also reported minus its message's ack at the sender
// (`minus_ack`): the ack and the deliveries leave after the same commit, so
// this leaves out the commit's fsync wait, the larger and noisier part.
//   --raw FILE      per message: kind, seq, send time (ms), ack ms, and the 5
//                   connections' latencies (ms), one JSON array per line
//   --label L       copied into the JSON line
//
// The recipient is one guest user: its first connection's `welcome` gives a
// `resume` token, and more connections say hello with it (the same user id).
// Connections are opened one at a time and /metrics' parley_loop_connections
// tells which loop took each (SO_REUSEPORT spreads them by the kernel's
// hash); the tool keeps 5 split as evenly as the loops allow (3 + 2 with 2
// loops) and closes the others. The 5 join room `r`; none of them joins the
// DM room. A sender (another guest) joins `r`, asks `dm` for the recipient
// and then, on an open-loop schedule, sends alternately a message to `r`
// and one to the DM room, each with its send time (the process's monotonic
// clock, µs) in the text. Every one of the 5 connections records send ->
// receive latency of every message; the report gives p50/p90/p99/max per
// kind (over all 5 x count deliveries), per loop, the sender's ack latency,
// missing and duplicate deliveries, and the p99 difference (DM - room).
// Both kinds go through the same process, the same connections and the
// same period, interleaved, so the host's noise hits them alike.
//
// A started server gets a temporary database and `--rate 100000 --burst
// 100000 --max-connections 20000 --threads T`, unpinned (the loops use both
// cores), at nice -10 when allowed; the bystanders' process runs 5 nice
// levels below this one. Everything stops by itself (a watchdog ends the
// run after the sends' time + 120 s). Loopback only. A human summary goes to
// stderr and one JSON line to stdout.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';

const here = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(import.meta.url);
let WebSocket;
for (const p of [path.join(here, 'node_modules/ws'), path.join(here, '../../tests/node_modules/ws'), 'ws']) {
  try { WebSocket = require(p); break; } catch { /* next */ }
}
if (!WebSocket) { console.error('dm: the ws package is missing (npm install --prefix tools/bench)'); process.exit(2); }

const argv = process.argv.slice(2);
const opt = (name, dflt) => { const i = argv.indexOf(name); if (i < 0) return dflt; const v = argv[i + 1]; argv.splice(i, 2); return v; };
const COUNT = Number(opt('--count', 3000));
const RATE = Number(opt('--rate', 100));
const WARMUP = Number(opt('--warmup', 2));
const THREADS = Number(opt('--threads', 2));
const BYSTANDERS = Number(opt('--bystanders', 0));
const BG_RATE = Number(opt('--bg-rate', 0));
const LABEL = opt('--label', '');
const URL_ARG = opt('--url', null);
const RAW = opt('--raw', null);
const AA = argv.includes('--aa');
if (AA) argv.splice(argv.indexOf('--aa'), 1);
// internal: `--worker N --port P --bg R` runs the bystanders in a child process
const WORKER = opt('--worker', null);
const WPORT = Number(opt('--port', 0));
const WBG = Number(opt('--bg', 0));
const BIN = URL_ARG ? null : path.resolve(argv[0] || process.env.PARLEY_BIN || path.join(here, '../../build/parley'));
if (argv.length > 1 || (argv[0] && argv[0].startsWith('--'))) { console.error(`dm: unknown arguments ${argv.join(' ')}`); process.exit(2); }
if (!(COUNT > 0 && RATE > 0)) { console.error('dm: --count and --rate must be positive'); process.exit(2); }

const log = (...a) => console.error('dm:', ...a);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const nowUs = () => Number(process.hrtime.bigint() / 1000n);
const nowMs = () => Number(process.hrtime.bigint()) / 1e6;

// ------------------------------------------------------------------ server
const tmp = WORKER ? null : fs.mkdtempSync(path.join(os.tmpdir(), 'parley-dm-'));
let server = null, stopping = false, PID = 0, serverNice = null;
function killServer() { if (server && server.exitCode === null) { try { server.kill('SIGKILL'); } catch { /* gone */ } } }
function finish(code) { killServer(); if (tmp) try { fs.rmSync(tmp, { recursive: true, force: true }); } catch { /* */ } process.exit(code); }
const watchdogMs = ((COUNT * 2) / RATE + WARMUP + 120) * 1000;
const watchdog = setTimeout(() => { log(`watchdog: ${Math.round(watchdogMs / 1000)} s, giving up`); finish(3); }, watchdogMs);
watchdog.unref();
process.on('SIGINT', () => finish(130));
process.on('SIGTERM', () => finish(143));
process.on('exit', killServer);
const setNice = (pid, n) => { try { os.setPriority(pid, n); return true; } catch { return false; } };

function freePort() {
  return new Promise((res, rej) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => { const p = s.address().port; s.close(() => res(p)); });
    s.on('error', rej);
  });
}
let WS_URL, HTTP_URL, cmd = null;
if (WORKER) {
  WS_URL = `ws://127.0.0.1:${WPORT}/ws`;
} else if (URL_ARG) {
  const u = new URL(URL_ARG);
  if (!['127.0.0.1', 'localhost', '[::1]'].includes(u.hostname)) { console.error('dm: loopback URLs only'); process.exit(2); }
  WS_URL = URL_ARG;
  HTTP_URL = `http://${u.host}`;
} else {
  const port = await freePort();
  WS_URL = `ws://127.0.0.1:${port}/ws`;
  HTTP_URL = `http://127.0.0.1:${port}`;
  cmd = [BIN, '--port', String(port), '--bind', '127.0.0.1', '--db', path.join(tmp, 'dm.db'),
    '--rate', '100000', '--burst', '100000', '--max-connections', '20000', '--threads', String(THREADS), '--log-level', 'warn',
    '--max-conns-per-ip', '0', '--guests-per-ip-minute', '0']; // every client is 127.0.0.1
  server = spawn(cmd[0], cmd.slice(1), { stdio: ['ignore', 'ignore', fs.openSync(path.join(tmp, 'server.log'), 'w')] });
  PID = server.pid;
  serverNice = setNice(PID, -10) ? -10 : os.getPriority(PID);
  server.on('exit', (c, sig) => { if (!stopping) { log(`server exited (${c ?? sig}); its log:`); try { log(fs.readFileSync(path.join(tmp, 'server.log'), 'utf8').slice(-2000)); } catch { /* */ } finish(4); } });
  for (let i = 0; ; i++) {
    try { await fetch(`${HTTP_URL}/healthz`); break; } catch { if (i > 100) { log('server did not start'); finish(4); } await sleep(100); }
  }
}

async function loopConnections() { // [n of loop 0, n of loop 1, ...]
  const t = await (await fetch(`${HTTP_URL}/metrics`)).text();
  const out = [];
  for (const m of t.matchAll(/^parley_loop_connections\{loop="(\d+)"\} (\d+)/gm)) out[Number(m[1])] = Number(m[2]);
  return out;
}
function procCpuTicks() {
  if (!PID) return 0;
  const f = fs.readFileSync(`/proc/${PID}/stat`, 'utf8').split(') ')[1].split(' ');
  return Number(f[11]) + Number(f[12]);
}
function statBusy() {
  const f = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  return f[0] + f[1] + f[2] + f[5] + f[6] + f[7];
}
const selfTicks = () => { const u = process.cpuUsage(); return (u.user + u.system) / 1e4; };
const loadavg = () => fs.readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');

// ------------------------------------------------------------------ clients
// hello (with a resume token if given); resolves { ws, user, resume }.
// onFrame(type, str) gets every later frame.
function connect(name, resume, onFrame) {
  return new Promise((res, rej) => {
    const ws = new WebSocket(WS_URL, { perMessageDeflate: false });
    let welcomed = false;
    ws.on('open', () => ws.send(JSON.stringify(resume ? { type: 'hello', name, resume } : { type: 'hello', name })));
    ws.on('message', (data) => {
      const s = data.toString();
      const m = s.match(/^\{"type":"([a-z_]+)"/);
      const type = m ? m[1] : '?';
      if (!welcomed) {
        if (type !== 'welcome') return rej(new Error(`hello: ${s.slice(0, 200)}`));
        welcomed = true;
        const w = JSON.parse(s);
        return res({ ws, user: w.user.id, resume: w.resume });
      }
      onFrame(type, s);
    });
    ws.on('error', (e) => { if (!welcomed) rej(e); });
    ws.on('close', (code) => { ws.closedWith = code; if (!welcomed) rej(new Error(`closed ${code}`)); });
  });
}
// one request, the first frame of one of `types` answers it (a `ref` is not needed:
// nothing else is in flight on that connection while we wait)
function request(c, msg, types = ['joined', 'error']) {
  return new Promise((res) => {
    const prev = c.onFrame;
    c.onFrame = (type, s) => { if (types.includes(type)) { c.onFrame = prev; res({ type, s }); } else if (prev) prev(type, s); };
    c.ws.send(JSON.stringify(msg));
  });
}
async function client(name, resume) {
  const c = { onFrame: null };
  const r = await connect(name, resume, (type, s) => c.onFrame && c.onFrame(type, s));
  return Object.assign(c, r);
}

// ------------------------------------------------------------------ bystanders (child process)
if (WORKER) {
  const n = Number(WORKER), bg = WBG;
  const conns = [];
  let frames = 0;
  for (let i = 0; i < n; i++) {
    const c = await client(`by${i}`);
    c.onFrame = () => { frames++; };
    for (const room of bg ? ['r', 'bg'] : ['r']) {
      const a = await request(c, { type: 'join', room });
      if (a.type !== 'joined') throw new Error(`bystander join: ${a.s.slice(0, 200)}`);
    }
    conns.push(c);
  }
  let sender = null, sent = 0;
  if (bg) {
    sender = await client('bgsender');
    await request(sender, { type: 'join', room: 'bg' });
    sender.onFrame = () => {};
  }
  process.stdout.write(`ready ${selfTicks()}\n`);
  const t0 = nowMs();
  const timer = bg ? setInterval(() => {
    const due = Math.floor((nowMs() - t0) * bg / 1000);
    while (sent < due) { sender.ws.send(JSON.stringify({ type: 'send', room: 'bg', text: `bg ${sent}`, client_id: `g${sent}` })); sent++; }
  }, 1) : null;
  process.stdin.on('data', () => { // any input: stop
    if (timer) clearInterval(timer);
    process.stdout.write(JSON.stringify({ bystanders: conns.length, frames, bg_sent: sent, cpu_ticks: selfTicks() }) + '\n');
    for (const c of conns) c.ws.terminate();
    if (sender) sender.ws.terminate();
    process.exit(0);
  });
}

function pct(sorted, p) { return sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(p / 100 * sorted.length))] : null; }
const r2 = (x) => (x == null ? null : Math.round(x * 100) / 100);
function stats(arr) {
  const s = Float64Array.from(arr).sort();
  return { n: s.length, p50_ms: r2(pct(s, 50)), p90_ms: r2(pct(s, 90)), p99_ms: r2(pct(s, 99)), p999_ms: r2(pct(s, 99.9)), max_ms: r2(s.length ? s[s.length - 1] : null) };
}

async function main() {
  const result = { tool: 'dm', label: LABEL, date: new Date().toISOString(), bin: BIN, url: URL_ARG,
    server_cmd: cmd ? cmd.join(' ').replaceAll(tmp, '$TMP') : null, server_nice: serverNice, self_nice: os.getPriority(0),
    count: COUNT, rate: RATE, aa: AA, warmup_s: WARMUP, bystanders: BYSTANDERS, bg_rate: BG_RATE, cpus: os.cpus().length, cpu_model: os.cpus()[0]?.model };
  try {
    // ---- the recipient: connections one at a time, each one's loop from /metrics
    const base = await loopConnections();
    const nloops = base.length;
    if (nloops < 2) log(`warning: the server has ${nloops} loop(s); nothing to spread over`);
    const want = []; // how many to keep per loop: 5 split as evenly as possible
    for (let l = 0; l < nloops; l++) want[l] = Math.floor(5 / nloops) + (l < 5 % nloops ? 1 : 0);
    const first = await client('recipient');
    const recipientId = first.user, resume = first.resume;
    if (!resume) throw new Error('no resume token in welcome (not a guest?)');
    const opened = [];
    let prev = base;
    const loopOf = async () => { // the loop whose count went up since `prev`
      for (let i = 0; i < 50; i++) {
        const now = await loopConnections();
        const up = now.findIndex((n, l) => n > (prev[l] || 0));
        if (up >= 0) { prev = now; return up; }
        await sleep(20);
      }
      throw new Error('no loop took the connection (per-loop metrics missing?)');
    };
    first.loop = await loopOf();
    opened.push(first);
    for (let tries = 0; tries < 40; tries++) {
      const have = want.map((_, l) => opened.filter((c) => c.loop === l).length);
      if (have.every((h, l) => h >= want[l])) break;
      const c = await client('recipient', resume);
      if (c.user !== recipientId) throw new Error(`resume gave ${c.user}, not ${recipientId}`);
      c.loop = await loopOf();
      opened.push(c);
    }
    const keep = [];
    for (let l = 0; l < nloops; l++) keep.push(...opened.filter((c) => c.loop === l).slice(0, want[l]));
    if (keep.length !== 5) throw new Error(`could not spread 5 connections: loops ${opened.map((c) => c.loop).join(',')}`);
    for (const c of opened) if (!keep.includes(c)) c.ws.close();
    result.recipient = { user: recipientId, opened: opened.length, opened_loops: opened.map((c) => c.loop), kept_loops: keep.map((c) => c.loop) };
    for (let i = 0; i < 50; i++) { const n = await loopConnections(); if (n.reduce((a, b) => a + b, 0) === 5) break; await sleep(20); }
    result.recipient.loop_connections_after_closing = prev = await loopConnections();
    log(`recipient ${recipientId}: opened ${opened.length} connections (loops ${result.recipient.opened_loops.join(',')}), kept loops ${result.recipient.kept_loops.join(',')}; /metrics per loop: ${result.recipient.loop_connections_after_closing.join(',')}`);
    for (const c of keep) {
      for (const room of AA ? ['r', 'r2'] : ['r']) {
        const a = await request(c, { type: 'join', room });
        if (a.type !== 'joined') throw new Error(`recipient join: ${a.s.slice(0, 200)}`);
      }
    }

    // ---- the sender: joins r, opens the DM (joined for dm-...), loop noted
    const sender = await client('sender');
    sender.loop = await loopOf();
    let a = await request(sender, { type: 'join', room: 'r' });
    if (a.type !== 'joined') throw new Error(`sender join: ${a.s.slice(0, 200)}`);
    for (let i = 0; ; i++) { // the recipient's user row is written without waiting: retry not_found
      a = await request(sender, { type: 'dm', user: recipientId });
      if (a.type === 'joined' || i > 50 || !a.s.includes('"not_found"')) break;
      await sleep(20);
    }
    if (a.type !== 'joined') throw new Error(`dm: ${a.s.slice(0, 200)}`);
    const dmj = JSON.parse(a.s);
    let dmRoom = dmj.room;
    if (AA) { // the control: the second kind is a room message too
      a = await request(sender, { type: 'join', room: 'r2' });
      if (a.type !== 'joined') throw new Error(`sender join r2: ${a.s.slice(0, 200)}`);
      dmRoom = 'r2';
      log('A/A control: the second kind goes to room r2, not to the DM');
    }
    result.sender = { loop: sender.loop, dm_room: dmRoom, peer: dmj.peer };
    log(`sender on loop ${sender.loop}; DM room ${dmRoom} (peer ${JSON.stringify(dmj.peer)})`);

    // ---- bystanders (child process, lower priority)
    let worker = null;
    if (BYSTANDERS > 0) {
      const args = [fileURLToPath(import.meta.url), '--worker', String(BYSTANDERS), '--port', new URL(WS_URL).port, '--bg', String(BG_RATE)];
      worker = spawn(process.execPath, args, { stdio: ['pipe', 'pipe', 'inherit'] });
      setNice(worker.pid, Math.min(19, os.getPriority(0) + 5));
      let out = '';
      worker.stdout.on('data', (d) => { out += d; worker.out = out; });
      worker.result = new Promise((res) => worker.on('exit', () => { try { res(JSON.parse(out.trim().split('\n').pop())); } catch { res({ failed: out.slice(-200) }); } }));
      for (let i = 0; !out.includes('ready'); i++) { if (i > 600 || worker.exitCode !== null) throw new Error('bystanders did not start'); await sleep(100); }
      result.bystanders_loop_connections = await loopConnections();
      log(`${BYSTANDERS} bystanders in r${BG_RATE ? ` and bg, bg sender ${BG_RATE}/s` : ''}; /metrics per loop: ${result.bystanders_loop_connections.join(',')}`);
    }

    // ---- receivers: send time is in the text: "t=<µs>;k=<r|d>;n=<seq>"
    const NTOT = Math.ceil(WARMUP * RATE / 2) + COUNT; // per kind
    const warmN = NTOT - COUNT;
    const lat = { r: [], d: [] };
    const latLoop = { r: [...Array(nloops)].map(() => []), d: [...Array(nloops)].map(() => []) };
    let dup = 0, other = 0;
    keep.forEach((c, ci) => {
      c.seen = { r: new Uint8Array(NTOT), d: new Uint8Array(NTOT) };
      c.onFrame = (type, s) => {
        const t = nowUs();
        if (type !== 'message') { other++; return; }
        const m = s.match(/"text":"t=(\d+);k=([rd]);n=(\d+)"/);
        if (!m) { other++; return; }
        const k = m[2], n = Number(m[3]);
        if (c.seen[k][n]) { dup++; return; }
        c.seen[k][n] = 1;
        if (n < warmN) return;
        const ms = (t - Number(m[1])) / 1000;
        lat[k].push(ms);
        latLoop[k][c.loop].push(ms);
        raw[k][n].push(ms);
      };
    });
    const raw = { r: [...Array(NTOT)].map(() => []), d: [...Array(NTOT)].map(() => []) }; // per message: the 5 latencies
    const ackOf = { r: new Float64Array(NTOT).fill(NaN), d: new Float64Array(NTOT).fill(NaN) };
    const ack = { r: [], d: [] }, errors = {};
    const sentAt = { r: new Float64Array(NTOT), d: new Float64Array(NTOT) };
    sender.onFrame = (type, s) => {
      if (type === 'ack') {
        const m = s.match(/"client_id":"([rd])(\d+)"/);
        if (m && Number(m[2]) >= warmN) {
          const ms = nowUs() / 1000 - sentAt[m[1]][Number(m[2])];
          ack[m[1]].push(ms);
          ackOf[m[1]][Number(m[2])] = ms;
        }
      } else if (type === 'error') {
        const m = s.match(/"code":"([a-z_]+)"/);
        errors[m ? m[1] : '?'] = (errors[m ? m[1] : '?'] || 0) + 1;
      }
    };

    // ---- the sends: open loop, 1/RATE apart, r and d alternating
    const period = 1000 / RATE;
    let i = 0, lateMax = 0;
    const t0 = nowMs(), s0 = procCpuTicks(), b0 = statBusy(), me0 = selfTicks(), la0 = loadavg();
    let measureStart = null;
    await new Promise((done) => {
      const tick = () => {
        const t = nowMs();
        while (i < 2 * NTOT && t0 + i * period <= t) {
          lateMax = i >= 2 * warmN ? Math.max(lateMax, t - (t0 + i * period)) : lateMax;
          const k = i % 2 ? 'd' : 'r', n = i >> 1;
          if (n === warmN && k === 'r') measureStart = nowMs();
          const us = nowUs();
          sentAt[k][n] = us / 1000;
          sender.ws.send(`{"type":"send","room":"${k === 'r' ? 'r' : dmRoom}","text":"t=${us};k=${k};n=${n}","client_id":"${k}${n}"}`);
          i++;
        }
        if (i >= 2 * NTOT) return done();
        setTimeout(tick, Math.max(0, t0 + i * period - nowMs()));
      };
      tick();
    });
    const measureEnd = nowMs();
    // drain: every delivery, or 3 s
    const expected = 5 * COUNT;
    for (let w = 0; w < 60 && (lat.r.length < expected || lat.d.length < expected); w++) await sleep(50);
    const dt = (nowMs() - t0) / 1000, hz = 100;
    const srvCpu = PID ? (procCpuTicks() - s0) / hz / dt * 100 : null;
    const busy = (statBusy() - b0) / hz / dt * 100, me = (selfTicks() - me0) / dt;
    let wres = null;
    if (worker) { worker.stdin.write('stop\n'); wres = await worker.result; }
    const readyTicks = worker ? Number((worker.out.match(/ready ([\d.]+)/) || [])[1] || 0) : 0;
    const wk = wres && wres.cpu_ticks ? (wres.cpu_ticks - readyTicks) / dt : 0; // since its setup
    result.period = { seconds: r2(dt), measured_s: r2((measureEnd - (measureStart ?? t0)) / 1000), server_cpu_pct: srvCpu == null ? null : Math.round(srvCpu), self_cpu_pct: Math.round(me),
      bystanders_cpu_pct: Math.round(wk), other_cpu_pct: Math.round(busy - (srvCpu || 0) - me - wk), loadavg_before: la0, loadavg_after: loadavg(), sender_late_max_ms: r2(lateMax) };
    result.bystander_worker = wres;
    result.room = { ...stats(lat.r), missing: expected - lat.r.length, per_loop: latLoop.r.map(stats), ack: stats(ack.r) };
    result.dm = { ...stats(lat.d), missing: expected - lat.d.length, per_loop: latLoop.d.map(stats), ack: stats(ack.d) };
    // each delivery minus its message's ack at the sender: both leave the server
    // after the same commit, so this is the fan-out path without the commit's wait
    for (const [k, o] of [['r', result.room], ['d', result.dm]]) {
      const d = [];
      for (let n = warmN; n < NTOT; n++) if (!Number.isNaN(ackOf[k][n])) for (const x of raw[k][n]) d.push(x - ackOf[k][n]);
      o.minus_ack = stats(d);
    }
    result.p99_diff_ms = r2(result.dm.p99_ms - result.room.p99_ms);
    result.p50_diff_ms = r2(result.dm.p50_ms - result.room.p50_ms);
    result.duplicates = dup;
    result.other_frames = other;
    result.errors = errors;
    result.loop_connections_end = await loopConnections();
    if (RAW) {
      const lines = [];
      for (let n = warmN; n < NTOT; n++) for (const k of ['r', 'd']) lines.push(JSON.stringify([k, n, r2(sentAt[k][n] - t0), r2(ackOf[k][n]), ...raw[k][n].map(r2)]));
      fs.writeFileSync(RAW, lines.join('\n') + '\n');
    }
    for (const c of keep) c.ws.close();
    sender.ws.close();
  } catch (e) {
    log('failed:', e.stack || e);
    result.failed = String(e.message || e);
  }
  stopping = true;
  killServer();
  const f = (x) => `p50 ${x.p50_ms} / p90 ${x.p90_ms} / p99 ${x.p99_ms} / max ${x.max_ms} ms (${x.n} deliveries, ${x.missing} missing; ack p50/p99 ${x.ack.p50_ms}/${x.ack.p99_ms} ms)`;
  if (result.room && result.dm) {
    log(`${LABEL} room: ${f(result.room)}`);
    log(`${LABEL} ${AA ? "r2 (A/A)" : "DM:  "} ${f(result.dm)}`);
    log(`${LABEL} DM - room: p50 ${result.p50_diff_ms} ms, p99 ${result.p99_diff_ms} ms; server CPU ${result.period.server_cpu_pct}%, this process ${result.period.self_cpu_pct}%, others ${result.period.other_cpu_pct}%, load ${result.period.loadavg_before} -> ${result.period.loadavg_after}`);
  }
  console.log(JSON.stringify(result));
  clearTimeout(watchdog);
  finish(result.failed ? 1 : 0);
}

if (!WORKER) await main();
