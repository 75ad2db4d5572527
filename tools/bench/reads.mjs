#!/usr/bin/env node
// reads.mjs -- `rooms` with 200 read markers, and whether `read` traffic
// moves a sender's send -> ack latency (issue 12).
//
//   node tools/bench/gen-history.mjs /tmp/h1m.db          # once
//   taskset -c 1 node tools/bench/reads.mjs /tmp/h1m.db [--runs 300] [--rounds 2] [--phase 15]
//
// PARLEY_BIN picks the server (default build/parley). The server runs on a
// fresh copy of the database (removed afterwards), pinned to core 0 with
// --threads 1, --rate/--burst 100000, --jwt-secret (as run.sh).
//
// rooms: before the server starts, the sqlite3 shell adds 180 small rooms
// (side-0 .. side-179, 5 messages each by u1) to the copy. User `reader`
// (a token user, author of nothing) then makes 200 markers with `read`
// (paced under 100 requests/s): in the 20 big rooms at the room's last id
// minus 40,000 (each then counts its unread up to the 1,000 cap: the
// costliest case) and in the 180 small rooms at their first message (4
// unread). RUNS `rooms` requests follow, at 25/s over CONNS (--conns, default
// 20) connections of that user; latency is client-side, send to answer, of
// the `rooms` answers only (refusals are counted in `errors`). Since af26412
// a listing charges the read budget (1 MiB/s, 4 MiB burst per connection)
// 2,048 bytes per room listed, ~410 KB for 200 rooms: 5 connections at 5/s
// each ran out of it (95 of 300 answered rate_limited, and those fast
// refusals were in the latency), 20 at 1.25/s each stay within it. One JSON line.
//
// read load: a sender (its own connection, room `bench-send`) sends one
// message every 20 ms and records send -> ack. 1,000 users (u0 .. u999,
// one connection each, connected beforehand) send `read` at 100/s in all
// (each every 10 s, spread evenly), each moving its marker in one of the
// big rooms forward by 20. PHASE seconds without the read load, PHASE
// seconds with it, ROUNDS times. One JSON line per phase.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { connect, cpuTicks, freePort, loadavg, now, sleep, startServer, stats, stopServer } from './lib12.mjs';

const argv = process.argv.slice(2);
const SRC = argv[0] && path.resolve(argv[0]);
const arg = (k, d) => { const i = argv.indexOf(`--${k}`); return i >= 0 ? Number(argv[i + 1]) : d; };
const RUNS = arg('runs', 300), ROUNDS = arg('rounds', 2), PHASE = arg('phase', 15) * 1000, CONNS = arg('conns', 20);
if (!SRC) { console.error('usage: reads.mjs DB [--runs N] [--rounds N] [--phase S]'); process.exit(2); }
const log = (...a) => console.error('reads:', ...a);

const db = path.join(path.dirname(SRC), `.reads-${process.pid}.db`);
fs.copyFileSync(SRC, db);
const rmDb = () => { for (const s of ['', '-wal', '-shm']) fs.rmSync(db + s, { force: true }); };
let srv;
try {
  execFileSync('sqlite3', [db], { input: `
BEGIN;
WITH RECURSIVE n(x) AS (SELECT 0 UNION ALL SELECT x + 1 FROM n WHERE x < 899),
     base(b) AS (SELECT max(id) FROM messages)
INSERT INTO messages(id, room, user_id, user_name, text, ts, client_id, rev)
  SELECT b + 1 + x, 'side-' || (x / 5), 'u1', 'User 1', 'side room message ' || x, 1800000000000 + x, 's' || x, b + 1 + x FROM n, base;
COMMIT;` });
  const last = Object.fromEntries(execFileSync('sqlite3', [db, "SELECT room, min(id), max(id) FROM messages GROUP BY room"])
    .toString().trim().split('\n').map((l) => { const [r, lo, hi] = l.split('|'); return [r, { lo: +lo, hi: +hi }]; }));
  const port = await freePort();
  srv = await startServer(db, port);
  const url = `ws://127.0.0.1:${port}/ws`;

  // ------------------------------------------------------------ rooms
  const rc = [];
  for (let i = 0; i < CONNS; i++) rc.push(await connect(url, 'reader'));
  const rooms = Object.keys(last).sort();
  for (const room of rooms) {
    const id = room.startsWith('room-') ? Math.max(last[room].lo, last[room].hi - 40000) : last[room].lo;
    const a = await rc[0].req({ type: 'read', room, id });
    if (a.type !== 'read') throw new Error(JSON.stringify(a));
    await sleep(12);
  }
  await sleep(1000);
  const times = [];
  let entries = 0, unread = 0, bytes = 0;
  const errs = {};
  const la0 = loadavg(), c0 = cpuTicks(srv.pid);
  for (let i = 0; i < RUNS; i++) {
    const t = now();
    const a = await rc[i % rc.length].req({ type: 'rooms' });
    const dt = now() - t;
    if (a.type === 'rooms') {
      times.push(dt); // a refusal (rate_limited) is fast: counted in errors, not in the latency
      entries = a.rooms.length;
      unread = a.rooms.reduce((s, r) => s + (r.unread || 0), 0);
      bytes = JSON.stringify(a).length;
    } else errs[a.code] = (errs[a.code] || 0) + 1;
    await sleep(Math.max(0, 40 - (now() - t)));
  }
  console.log(JSON.stringify({
    bench: 'rooms-200-markers', markers: rooms.length, conns: CONNS, entries, unread_total: unread, reply_bytes: bytes, errors: errs,
    ...stats(times), server_cpu_ms_per_rooms: +((cpuTicks(srv.pid) - c0) * 10 / RUNS).toFixed(2),
    loadavg_before: la0, loadavg_after: loadavg(),
  }));
  rc.forEach((c) => c.close());

  // ------------------------------------------------------------ read load vs a sender
  const sender = await connect(url, 'sender');
  const j = await sender.req({ type: 'join', room: 'bench-send' });
  if (j.type !== 'joined') throw new Error(JSON.stringify(j));
  const users = [];
  for (let i = 0; i < 1000; i += 50) {
    users.push(...await Promise.all(Array.from({ length: 50 }, (_, k) => connect(url, `u${i + k}`))));
  }
  log('1,000 reader connections open');
  const marks = users.map((_, i) => Math.max(1, last[`room-${i % 20}`].hi - 30000));
  let seq = 0;
  async function phase(withReads, round) {
    await sleep(1000);
    const la = loadavg(), c1 = cpuTicks(srv.pid);
    const acks = [], rerrs = {};
    let reads = 0, readsOk = 0, next = 0;
    const t0 = now(), end = t0 + PHASE;
    let timer;
    if (withReads) {
      // 100 reads/s: every 10 ms one user, round-robin over the 1,000
      timer = setInterval(() => {
        const due = Math.floor((now() - t0) / 10);
        while (next < due) {
          const i = next++ % users.length;
          marks[i] += 20;
          reads++;
          users[i].req({ type: 'read', room: `room-${i % 20}`, id: marks[i] })
            .then((a) => { if (a.type === 'read') readsOk++; else rerrs[a.code] = (rerrs[a.code] || 0) + 1; });
        }
      }, 5);
    }
    const pend = [];
    while (now() < end) {
      const t = now();
      pend.push(sender.req({ type: 'send', room: 'bench-send', text: `ping ${seq}`, client_id: `s${seq++}` })
        .then((a) => { if (a.type === 'ack') acks.push(now() - t); }));
      await sleep(Math.max(0, 20 - (now() - t)));
    }
    if (timer) clearInterval(timer);
    await Promise.all(pend);
    await sleep(300);
    console.log(JSON.stringify({
      bench: 'send-ack-vs-read', round, read_load: withReads, reads_sent: reads, reads_answered: readsOk,
      reads_per_s: +(readsOk / (PHASE / 1000)).toFixed(1), read_errors: rerrs, sends: acks.length, ...stats(acks),
      server_cpu_pct: +((cpuTicks(srv.pid) - c1) * 10 / (now() - t0) * 100).toFixed(0), loadavg_before: la, loadavg_after: loadavg(),
    }));
  }
  for (let r = 1; r <= ROUNDS; r++) {
    await phase(false, r);
    await phase(true, r);
  }
  users.forEach((c) => c.close());
  sender.close();
} finally {
  if (srv) await stopServer(srv);
  rmDb();
}
process.exit(0);
