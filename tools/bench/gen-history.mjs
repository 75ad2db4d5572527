#!/usr/bin/env node
// gen-history.mjs -- a large, realistic history for the read-marker and
// search benchmarks (search.mjs, reads.mjs).
//
//   node tools/bench/gen-history.mjs OUT.db [--messages 1000000] [--rooms 20] [--users 1000] [--seed 1]
//
// PARLEY_BIN picks the server (default build/parley). Steps:
//  1. the server is started once on the empty file (127.0.0.1, a free port)
//     so that it creates and migrates the schema, then stopped (SIGTERM);
//  2. this script writes the rows as CSV (messages, users) into a temporary
//     folder next to OUT.db;
//  3. the sqlite3 shell `.import`s them into temporary tables and copies
//     them into `messages` and `users` in ONE transaction;
//  4. the FTS5 index is filled with 'rebuild' and the watermark moved to
//     max(id). Up to schema 5 an insert trigger (messages_fts_insert)
//     indexed every row; from schema 006 the server indexes committed rows
//     behind a watermark (search_index.indexed) and no trigger fills the
//     index, so without this step the server would spend its first minutes
//     catching up on the 1,000,000 rows. The rebuild is harmless on schema
//     5 (the trigger already filled the index; there is no search_index
//     table, so the watermark is only set when it exists), and skipped
//     before schema 5 (no messages_fts).
// Text: words drawn from a vocabulary of 4,000 (50 common English words,
// 3,900 generated pseudo-words, 50 accented words: café, naïve, Zürich...)
// with a Zipf distribution (weight 1/rank), 3-30 words per message (mean
// ~11), some punctuation. Room `room-K` gets message ids x with x % ROOMS
// == K; user `uN` (name "User N", a token user) writes id x when
// x % USERS == N. ids, revs and timestamps are as the server would assign
// them (rev = id, ts 1 s apart from 2023-11-14). Prints one JSON line with
// the timings and sizes. Deterministic for a given --seed.
import { spawn, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, '..', '..');
const bin = process.env.PARLEY_BIN || path.join(repo, 'build', 'parley');
const argv = process.argv.slice(2);
const arg = (k, d) => { const i = argv.indexOf(`--${k}`); return i >= 0 ? Number(argv[i + 1]) : d; };
const OUT = argv.find((a, i) => !a.startsWith('--') && !(i > 0 && argv[i - 1].startsWith('--')));
if (!OUT) { console.error('usage: gen-history.mjs OUT.db [--messages N] [--rooms R] [--users U] [--seed S]'); process.exit(2); }
const MESSAGES = arg('messages', 1000000), ROOMS = arg('rooms', 20), USERS = arg('users', 1000);
let seed = arg('seed', 1) >>> 0 || 1;
const log = (...a) => console.error('gen-history:', ...a);
if (fs.existsSync(OUT)) { console.error(`gen-history: ${OUT} exists; give a new file`); process.exit(2); }

// xorshift32: deterministic and fast
const rnd = () => { seed ^= seed << 13; seed >>>= 0; seed ^= seed >>> 17; seed ^= seed << 5; seed >>>= 0; return seed / 4294967296; };

// ---------------------------------------------------------------- vocabulary
const COMMON = ('the to and a of is in it you that for on this we have be with not are but can ' +
  'just so at what was if do will all about know like get think from there out one they up time ' +
  'deploy build test fix release meeting friday today tomorrow').split(' ');
const ACCENTED = ('café naïve résumé Zürich façade señor über crème déjà élève Montréal São Paulo ' +
  'garçon fiancée coöperate mañana Ångström smörgåsbord jalapeño piñata Bogotá Málaga Kraków Łódź ' +
  'Göteborg München Düsseldorf Ærø Øresund Reykjavík naïveté protégé soufflé entrée exposé ' +
  'rosé sauté touché cliché fête brûlée château œuvre Straße Ελλάδα Москва 東京 İstanbul Şişli').split(' ');
const SYL = ['ka', 'lo', 'mi', 'ren', 'ta', 'vo', 'shi', 'pra', 'den', 'lu', 'ox', 'ne', 'bar', 'qui', 'sel', 'tor',
  'an', 'el', 'is', 'ur', 'po', 'fen', 'gra', 'dul', 'ri', 'mo', 'ste', 'ca', 'ven', 'zi'];
const VOCAB = [...COMMON];
const seen = new Set(VOCAB);
while (VOCAB.length < 4000 - ACCENTED.length) {
  const n = 2 + Math.floor(rnd() * 3);
  let w = '';
  for (let i = 0; i < n; i++) w += SYL[Math.floor(rnd() * SYL.length)];
  if (!seen.has(w)) { seen.add(w); VOCAB.push(w); }
}
// accented words spread over the ranks (rank 60, 140, 220 ...), not all rare
ACCENTED.forEach((w, i) => VOCAB.splice(60 + i * 80, 0, w));
const cum = new Float64Array(VOCAB.length);
let tot = 0;
for (let r = 0; r < VOCAB.length; r++) { tot += 1 / (r + 1); cum[r] = tot; }
function word() {
  const x = rnd() * tot;
  let lo = 0, hi = cum.length - 1;
  while (lo < hi) { const m = (lo + hi) >> 1; if (cum[m] < x) lo = m + 1; else hi = m; }
  return VOCAB[lo];
}
function text() {
  const n = 3 + Math.floor(-Math.log(1 - rnd()) * 8) % 28; // 3..30, mean ~11
  const ws = [];
  for (let i = 0; i < n; i++) ws.push(word());
  ws[0] = ws[0][0].toUpperCase() + ws[0].slice(1);
  const end = rnd();
  return ws.join(' ') + (end < 0.6 ? '' : end < 0.8 ? '.' : end < 0.9 ? '?' : '!');
}

// ---------------------------------------------------------------- server
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const freePort = () => new Promise((res) => {
  const s = net.createServer();
  s.listen(0, '127.0.0.1', () => { const { port } = s.address(); s.close(() => res(port)); });
});
async function migrate(db) {
  const port = await freePort();
  const p = spawn(bin, ['--port', String(port), '--bind', '127.0.0.1', '--db', db, '--threads', '1', '--log-level', 'warn',
    '--max-conns-per-ip', '0', '--guests-per-ip-minute', '0'],
    { stdio: ['ignore', 'ignore', 'inherit'] });
  for (let i = 0; i < 200; i++) {
    const ok = await new Promise((res) => {
      const c = net.connect(port, '127.0.0.1', () => { c.end(); res(true); });
      c.on('error', () => res(false));
    });
    if (ok) break;
    await sleep(50);
  }
  await new Promise((res) => { p.on('exit', res); p.kill('SIGTERM'); });
}

if (process.argv[1] && fileURLToPath(import.meta.url) === path.resolve(process.argv[1])) {
  const db = path.resolve(OUT);
  const tmp = fs.mkdtempSync(path.join(path.dirname(db), '.gen-history-'));
  try {
    const t0 = Date.now();
    await migrate(db);
    const tMig = Date.now();
    const q = (s) => `"${s.replace(/"/g, '""')}"`;
    const mf = fs.openSync(path.join(tmp, 'm.csv'), 'w');
    let chunk = [], bytes = 0;
    const T0 = 1700000000000;
    for (let x = 1; x <= MESSAGES; x++) {
      const u = x % USERS;
      chunk.push(`${x},room-${x % ROOMS},u${u},User ${u},${q(text())},${T0 + x * 1000},c${x}`);
      if (chunk.length === 10000) { const s = chunk.join('\n') + '\n'; bytes += s.length; fs.writeSync(mf, s); chunk = []; }
    }
    if (chunk.length) fs.writeSync(mf, chunk.join('\n') + '\n');
    fs.closeSync(mf);
    const uf = [];
    for (let u = 0; u < USERS; u++) uf.push(`u${u},User ${u},0,${T0},${T0 + MESSAGES * 1000}`);
    fs.writeFileSync(path.join(tmp, 'u.csv'), uf.join('\n') + '\n');
    const tCsv = Date.now();
    execFileSync('sqlite3', [db], { input: `
PRAGMA journal_mode=WAL;
CREATE TEMP TABLE tm(id INTEGER, room TEXT, user_id TEXT, user_name TEXT, text TEXT, ts INTEGER, client_id TEXT);
CREATE TEMP TABLE tu(id TEXT, name TEXT, guest INTEGER, first_seen INTEGER, last_seen INTEGER);
.import --csv ${path.join(tmp, 'm.csv')} tm
.import --csv ${path.join(tmp, 'u.csv')} tu
BEGIN;
INSERT INTO messages(id, room, user_id, user_name, text, ts, client_id, rev)
  SELECT id, room, user_id, user_name, text, ts, client_id, id FROM tm ORDER BY id;
INSERT INTO users SELECT * FROM tu;
COMMIT;
PRAGMA wal_checkpoint(TRUNCATE);
`, stdio: ['pipe', 'ignore', 'inherit'] });
    const tIns = Date.now();
    const hasTable = (t) => execFileSync('sqlite3', [db,
      `SELECT count(*) FROM sqlite_master WHERE type='table' AND name='${t}'`]).toString().trim() === '1';
    const hasWatermark = hasTable('search_index'), hasFts = hasTable('messages_fts');
    if (hasFts) execFileSync('sqlite3', [db], { input: `
BEGIN;
INSERT INTO messages_fts(messages_fts) VALUES('rebuild');
${hasWatermark ? 'UPDATE search_index SET indexed=(SELECT coalesce(max(id),0) FROM messages);' : ''}
COMMIT;
PRAGMA wal_checkpoint(TRUNCATE);
`, stdio: ['pipe', 'ignore', 'inherit'] });
    const tIdx = Date.now();
    const indexed = hasWatermark
      ? Number(execFileSync('sqlite3', [db, 'SELECT indexed FROM search_index']).toString().trim()) : null;
    const size = fs.statSync(db).size;
    let fts = null;
    try {
      fts = Number(execFileSync('sqlite3', [db, "SELECT sum(pgsize) FROM dbstat WHERE name LIKE 'messages_fts%'"]).toString().trim());
    } catch { /* no dbstat */ }
    console.log(JSON.stringify({
      bench: 'gen-history', messages: MESSAGES, rooms: ROOMS, users: USERS, vocabulary: VOCAB.length,
      migrate_ms: tMig - t0, csv_ms: tCsv - tMig, insert_ms: tIns - tCsv, index_ms: tIdx - tIns, total_ms: tIdx - t0,
      indexed_watermark: indexed,
      file_bytes: size, fts_bytes: fts, fts_bytes_per_million: fts && Math.round(fts * 1e6 / MESSAGES),
      loadavg: fs.readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' '),
    }));
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}
