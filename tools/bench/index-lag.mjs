#!/usr/bin/env node
// index-lag.mjs -- the search index's lag under a sustained write load
// (schema 006: the index follows the committed rows behind a watermark).
//
//   taskset -c 1 node tools/bench/index-lag.mjs DB [--duration 60] [--tail 30] [--q 'xxxxxxxx*']
//
// PARLEY_BIN picks the server (default build/parley), BUILD_DIR where
// parley-loadgen is (default build). The server runs on a fresh copy of DB
// (removed afterwards; the same start as search.mjs: core 0, --threads 1,
// --rate/--burst 100000, --jwt-secret). parley-loadgen runs run.sh's `acks`
// scenario (10 senders in one room `r0`, window 64, warmup 2 s) for
// DURATION seconds; meanwhile and for TAIL seconds after it ends /metrics
// is read every second (parley_search_index_lag, parley_db_queue_depth).
// Right when the loadgen exits, one search (--q, default a prefix of every loadgen text's padding,
// in r0, limit 20) is timed: it waits until everything committed before it
// is indexed; a second one once the lag is back to 0. Prints one JSON line:
// the loadgen's acks/s and ack p50/p99, the lag samples, max and final lag,
// when it first returned to 0 after the load, both searches' latency.
// Loopback only; everything stops by itself.
import { spawn, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { connect, freePort, loadavg, now, repo, sleep, startServer, stopServer } from './lib12.mjs';

const argv = process.argv.slice(2);
const SRC = argv[0] && path.resolve(argv[0]);
const arg = (k, d) => { const i = argv.indexOf(`--${k}`); return i >= 0 ? Number(argv[i + 1]) : d; };
const DURATION = arg('duration', 60), TAIL = arg('tail', 30);
const qi = argv.indexOf('--q'), Q = qi >= 0 ? argv[qi + 1] : 'xxxxxxxx*';
if (!SRC) { console.error('usage: index-lag.mjs DB [--duration 60] [--tail 30]'); process.exit(2); }
const BUILD = process.env.BUILD_DIR || path.join(repo, 'build');

function metrics(port) {
  return new Promise((res) => {
    const t = now();
    http.get({ host: '127.0.0.1', port, path: '/metrics', timeout: 2000 }, (r) => {
      let b = '';
      r.on('data', (d) => { b += d; });
      r.on('end', () => {
        const v = (n) => { const m = b.match(new RegExp(`^parley_${n} (\\S+)$`, 'm')); return m ? Number(m[1]) : null; };
        res({ lag: v('search_index_lag'), queue: v('db_queue_depth'), ms: +(now() - t).toFixed(1) });
      });
    }).on('error', () => res({ lag: null, queue: null })).on('timeout', function () { this.destroy(); });
  });
}

const db = path.join(path.dirname(SRC), `.lag-${process.pid}.db`);
execFileSync('cp', [SRC, db]);
const port = await freePort();
const srv = await startServer(db, port);
try {
  const c = await connect(`ws://127.0.0.1:${port}/ws`, 'u1');
  const la0 = loadavg();
  const t0 = now();
  const lgArgs = ['-c', '1', path.join(BUILD, 'tools', 'parley-loadgen'), '--port', String(port), '--clients', '10', '--rooms', '1',
    '--senders', '10', '--size', '100', '--rate', '0', '--window', '64', '--warmup', '2', '--duration', String(DURATION), '--json', '--label', 'acks-sustained'];
  const lg = spawn('taskset', lgArgs, { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  lg.stdout.on('data', (d) => { out += d; });
  let lgDone = false, tEnd = 0;
  const lgExit = new Promise((res) => lg.on('exit', () => { lgDone = true; tEnd = now(); res(); }));
  const samples = [];
  let first = null, zeroAt = null;
  const sampler = (async () => {
    for (;;) {
      const m = await metrics(port);
      samples.push({ t: +((now() - t0) / 1000).toFixed(1), lag: m.lag, queue: m.queue, after_load: lgDone });
      if (lgDone && zeroAt === null && m.lag === 0) zeroAt = +((now() - tEnd) / 1000).toFixed(2);
      if (lgDone && now() - tEnd > TAIL * 1000) break;
      await sleep(1000);
    }
  })();
  await lgExit;
  { // right after the load
    const lag = (await metrics(port)).lag;
    const t = now();
    const a = await c.req({ type: 'search', q: Q, room: 'r0', limit: 20 });
    first = { lag_before: lag, ms: +(now() - t).toFixed(2), type: a.type, code: a.code, results: a.messages ? a.messages.length : 0 };
  }
  await sampler;
  const t = now();
  const a2 = await c.req({ type: 'search', q: Q, room: 'r0', limit: 20 });
  const second = { lag_before: samples[samples.length - 1].lag, ms: +(now() - t).toFixed(2), type: a2.type, code: a2.code, results: a2.messages ? a2.messages.length : 0 };
  c.close();
  const line = out.split('\n').filter((l) => l.startsWith('{')).pop();
  const res = line ? JSON.parse(line) : { failed: true };
  const during = samples.filter((s) => !s.after_load).map((s) => s.lag ?? 0);
  console.log(JSON.stringify({
    bench: 'index-lag', duration_s: DURATION, q: Q, acks_per_s: res.acks_per_s ?? res.acked_per_s, ack_p50_ms: res.ack_us && res.ack_us.p50 / 1000, ack_p99_ms: res.ack_us && res.ack_us.p99 / 1000,
    max_lag_during: Math.max(0, ...during), lag_at_load_end: first.lag_before, final_lag: samples[samples.length - 1].lag,
    back_to_0_s_after_load: zeroAt, search_right_after: first, search_after_tail: second,
    loadavg_before: la0, loadavg_after: loadavg(), samples, loadgen: res,
  }));
} finally {
  await stopServer(srv);
  fs.rmSync(db, { force: true });
  for (const s of ['-wal', '-shm']) fs.rmSync(db + s, { force: true });
}
process.exit(0);
