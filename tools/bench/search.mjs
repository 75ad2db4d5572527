#!/usr/bin/env node
// search.mjs -- search latency on a large history, and what a search load
// costs the senders (issue 12).
//
//   node tools/bench/gen-history.mjs /tmp/h1m.db          # once: 1,000,000 messages
//   taskset -c 1 node tools/bench/search.mjs latency /tmp/h1m.db [--runs 200]
//   taskset -c 1 node tools/bench/search.mjs acks /tmp/h1m.db [--rounds 2] [--searchers 4]
//
// PARLEY_BIN picks the server (default build/parley); BUILD_DIR where
// parley-loadgen is (default build). Each server run is on a fresh copy of
// the database in the same folder (removed afterwards), pinned to core 0
// with --threads 1 (as run.sh), --rate/--burst 100000, --jwt-secret; the
// clients are token users (all rooms allowed), run this under taskset -c 1.
//
// latency: the queries are picked from the index itself (a temporary
// fts5vocab table): the most frequent word, a rare one (~300 messages), two
// mid-frequency words, a phrase of two adjacent words, a narrow prefix
// (one word of the vocabulary) and a wide one (a syllable that starts ~1/25
// of the vocabulary), and an accented word typed without its accent. Each
// is asked RUNS times in room-0 (of 20) and RUNS times across all rooms
// (no `room`), limit 20, newest first (no `before`), one at a time, spread
// over 10 connections (each stays under the 100 requests/s limit and the
// read budget). Latency: client-side, send to answer. One JSON line per
// query and scope. Then the same queries SMALL_RUNS (30) times in
// `small-room`, a room of 5 messages added to the copy: a room that holds
// few of a word's matches, where the index is walked to its end.
//
// acks: for each round, parley-loadgen's `acks` scenario (run.sh's: 10
// senders in one room, window 64, warmup 2 s, 10 s measured) alone, then
// again on a fresh copy while SEARCHERS clients search back to back (each
// one request at a time, cycling through the queries above in room-0 and
// across all rooms, over 5 connections so that it stays under the request
// limit). Prints the loadgen's acks/s and ack p50/p99, and the searches
// answered per second (and any non-`search` answer) over the loadgen run.
// Before each run it waits for the 1-minute load average to fall under 1.0,
// at most BENCH12_LOAD_WAIT seconds (default 600); the load is in the JSON.
import { spawn, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { Client, connect, cpuTicks, freePort, loadavg, now, repo, sleep, startServer, stats, stopServer } from './lib12.mjs';

const argv = process.argv.slice(2);
const MODE = argv[0], SRC = argv[1] && path.resolve(argv[1]);
const arg = (k, d) => { const i = argv.indexOf(`--${k}`); return i >= 0 ? Number(argv[i + 1]) : d; };
const RUNS = arg('runs', 200), SMALL_RUNS = arg('small-runs', 30), ROUNDS = arg('rounds', 2), SEARCHERS = arg('searchers', 4);
if (!['latency', 'acks'].includes(MODE) || !SRC) {
  console.error('usage: search.mjs latency|acks DB [--runs N] [--rounds N] [--searchers N]');
  process.exit(2);
}
const log = (...a) => console.error('search:', ...a);
const BUILD = process.env.BUILD_DIR || path.join(repo, 'build');

function sql(db, q) { return execFileSync('sqlite3', ['-batch', db], { input: q }).toString().trim(); }

// ---------------------------------------------------------------- queries
function pickQueries(db) {
  const rows = sql(db, `CREATE VIRTUAL TABLE temp.v USING fts5vocab(main, messages_fts, row);
SELECT term, doc FROM temp.v ORDER BY doc DESC;`).split('\n').map((l) => { const [t, d] = l.split('|'); return { t, d: +d }; });
  const total = +sql(db, 'SELECT count(*) FROM messages');
  const near = (n) => rows.reduce((b, r) => (Math.abs(r.d - n) < Math.abs(b.d - n) ? r : b));
  const common = rows[0];
  const rare = near(300);
  const mid1 = near(total / 50), mid2 = rows.find((r) => r.d < mid1.d / 1.5 && r.d > mid1.d / 3 && /^[a-z]+$/.test(r.t));
  // a phrase: the two words at positions 1-2 of a recent message that has 5+ words
  const text = sql(db, "SELECT text FROM messages WHERE room='room-0' AND length(text) > 40 ORDER BY id DESC LIMIT 1 OFFSET 500");
  const ws = text.split(/[^\p{L}\p{N}]+/u).filter(Boolean);
  const wide = ['ven', 'sel', 'pra', 'ka'].map((p) => ({ p, n: rows.filter((r) => r.t.startsWith(p)).length }))
    .sort((a, b) => b.n - a.n)[0];
  const narrowWord = rows.find((r) => r.t.startsWith('depl'));
  const accented = rows.find((r) => r.t === 'cafe');
  const q = [
    { kind: 'common word', q: common.t, docs: common.d },
    { kind: 'rare word', q: rare.t, docs: rare.d },
    { kind: 'two words', q: `${mid1.t} ${mid2.t}`, docs: `${mid1.d} and ${mid2.d}` },
    { kind: 'phrase', q: `"${ws[1]} ${ws[2]}"`, docs: null },
    { kind: 'prefix (narrow)', q: 'depl*', docs: narrowWord && narrowWord.d, terms: rows.filter((r) => r.t.startsWith('depl')).length },
    { kind: 'prefix (wide)', q: `${wide.p}*`, terms: wide.n, docs: rows.filter((r) => r.t.startsWith(wide.p)).reduce((s, r) => s + r.d, 0) },
    { kind: 'accent-free', q: 'cafe', docs: accented && accented.d },
  ];
  return q;
}

function copyDb() {
  const dst = path.join(path.dirname(SRC), `.search-${process.pid}-${Date.now()}.db`);
  fs.copyFileSync(SRC, dst);
  return dst;
}
function rmDb(p) { for (const s of ['', '-wal', '-shm']) fs.rmSync(p + s, { force: true }); }

// ---------------------------------------------------------------- latency
async function latency() {
  const queries = pickQueries(SRC);
  log('queries', JSON.stringify(queries));
  const db = copyDb();
  // a small room: 5 messages, newer than the rest (a room most matches are not in)
  sql(db, `WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < 5), b(m) AS (SELECT max(id) FROM messages)
INSERT INTO messages(id, room, user_id, user_name, text, ts, client_id, rev)
  SELECT m + x, 'small-room', 'u1', 'User 1', 'short message ' || x, 1800000000000 + x, 'sm' || x, m + x FROM n, b;`);
  const port = await freePort();
  const srv = await startServer(db, port);
  const url = `ws://127.0.0.1:${port}/ws`;
  try {
    const conns = [];
    for (let i = 0; i < 10; i++) conns.push(await connect(url, `u${i}`));
    // warm the page cache and the statement (not measured)
    for (const q of queries) for (const room of ['room-0', undefined]) await conns[0].req({ type: 'search', q: q.q, room, limit: 20 });
    await sleep(1000);
    for (const room of ['room-0', undefined, 'small-room']) {
      for (const q of queries) {
        const la0 = loadavg();
        const times = [];
        let n = 0, more = 0, errs = {};
        const c0 = cpuTicks(srv.pid);
        const t0 = now();
        const runs = room === 'small-room' ? Math.min(RUNS, SMALL_RUNS) : RUNS;
        for (let i = 0; i < runs; i++) {
          const c = conns[i % conns.length];
          const t = now();
          const a = await c.req({ type: 'search', q: q.q, room, limit: 20 });
          times.push(now() - t);
          if (a.type === 'search') { n = a.messages.length; more = a.has_more; } else errs[a.code] = (errs[a.code] || 0) + 1;
          await sleep(2); // keep each connection far below 100 requests/s
        }
        const wall = now() - t0;
        console.log(JSON.stringify({
          bench: 'search-latency', scope: room || 'all rooms', kind: q.kind, q: q.q, docs: q.docs, terms: q.terms,
          results: n, has_more: more, errors: errs, ...stats(times),
          runs, server_cpu_ms_per_search: +((cpuTicks(srv.pid) - c0) * 10 / runs).toFixed(2), wall_s: +(wall / 1000).toFixed(1),
          loadavg_before: la0, loadavg_after: loadavg(),
        }));
      }
    }
    conns.forEach((c) => c.close());
  } finally {
    await stopServer(srv);
    rmDb(db);
  }
}

// ---------------------------------------------------------------- acks
function loadgen(port, label) {
  return new Promise((res) => {
    const args = ['-c', '1', path.join(BUILD, 'tools', 'parley-loadgen'), '--port', String(port), '--clients', '10', '--rooms', '1',
      '--senders', '10', '--size', '100', '--rate', '0', '--window', '64', '--warmup', '2', '--duration', '10', '--json', '--label', label];
    const p = spawn('taskset', args, { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    p.stdout.on('data', (d) => { out += d; });
    p.on('exit', () => {
      const line = out.split('\n').filter((l) => l.startsWith('{')).pop();
      res(line ? JSON.parse(line) : { failed: true });
    });
  });
}

async function searchLoad(url, queries, stopRef, counters) {
  const conns = [];
  for (let i = 0; i < 5; i++) conns.push(await connect(url, `u${100 + Math.floor(Math.random() * 800)}`));
  let k = Math.floor(Math.random() * 100);
  while (now() < stopRef.at) {
    const q = queries[k % queries.length];
    const room = (k >> 3) % 2 ? undefined : 'room-0';
    const t = now();
    const a = await conns[k % conns.length].req({ type: 'search', q: q.q, room, limit: 20 });
    if (a.type === 'search') { counters.ok++; counters.times.push(now() - t); } else counters.other[a.code] = (counters.other[a.code] || 0) + 1;
    k++;
  }
  conns.forEach((c) => c.close());
}

async function acks() {
  const queries = pickQueries(SRC);
  for (let r = 1; r <= ROUNDS; r++) {
    for (const withSearch of [false, true]) {
      // wait (up to BENCH12_LOAD_WAIT s, default 600) for the 1-minute load to fall under 1.0
      const waitUntil = now() + 1000 * Number(process.env.BENCH12_LOAD_WAIT ?? 600);
      while (now() < waitUntil && +loadavg().split(' ')[0] >= 1.0) await sleep(5000);
      const db = copyDb();
      const port = await freePort();
      const srv = await startServer(db, port);
      const url = `ws://127.0.0.1:${port}/ws`;
      const la0 = loadavg();
      const counters = { ok: 0, other: {}, times: [] };
      const c0 = cpuTicks(srv.pid);
      const t0 = now();
      const lg = loadgen(port, withSearch ? 'acks+search' : 'acks');
      let loads = [];
      const stopRef = { at: t0 + 60000 };
      if (withSearch) loads = Array.from({ length: SEARCHERS }, () => searchLoad(url, queries, stopRef, counters));
      const res = await lg;
      const t1 = now();
      counters.rate = +(counters.ok / ((t1 - t0) / 1000)).toFixed(1);
      const cpu = (cpuTicks(srv.pid) - c0) * 10 / (t1 - t0) * 100;
      console.log(JSON.stringify({
        bench: 'acks-vs-search', round: r, search_load: withSearch ? SEARCHERS : 0,
        acks_per_s: res.acks_per_s ?? res.acked_per_s ?? res.acks_s, ack_p50_ms: res.ack_us && res.ack_us.p50 / 1000, ack_p99_ms: res.ack_us && res.ack_us.p99 / 1000,
        searches: withSearch ? counters.ok : 0, searches_per_s: withSearch ? counters.rate : 0,
        search_p50_ms: withSearch ? stats(counters.times).p50_ms : null, search_p99_ms: withSearch ? stats(counters.times).p99_ms : null,
        search_other_answers: counters.other, server_cpu_pct: +cpu.toFixed(0), loadavg_before: la0, loadavg_after: loadavg(),
        loadgen: res,
      }));
      stopRef.at = 0; // the searchers check the clock between requests
      await Promise.allSettled(loads);
      await stopServer(srv);
      rmDb(db);
    }
  }
}

if (MODE === 'latency') await latency();
else await acks();
process.exit(0);
