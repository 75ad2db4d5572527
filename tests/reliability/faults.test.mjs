// Faults: a full disk, a file-size limit, another process holding the
// database lock, and a database that cannot be used at start. After each,
// nothing acked is lost, and the server recovers by itself.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync, statfsSync, unlinkSync, mkdirSync, chmodSync, copyFileSync, openSync, writeSync, closeSync, statSync, existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  startServer, guest, health, sleep, T, SANITIZE, waitFor, fullHistory, runParley, freePort, sqlite,
  PARLEY_BIN, sanitizerReport, httpGet, connect,
} from '../integration/harness.mjs';

const cleanups = [];
after(async () => {
  for (const f of cleanups.reverse()) {
    try { await f(); } catch {}
  }
});

const IS_ROOT = process.getuid && process.getuid() === 0;

/** Mounts a tmpfs of `kb` KiB on a new directory; null when mounting is not allowed. */
function mountTmpfs(kb) {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'parley-tmpfs-'));
  const r = spawnSync('mount', ['-t', 'tmpfs', '-o', `size=${kb}k`, 'tmpfs', dir], { encoding: 'utf8' });
  if (r.status !== 0) {
    rmSync(dir, { recursive: true, force: true });
    return null;
  }
  const m = {
    dir,
    umount() {
      spawnSync('umount', ['-l', dir]);
      rmSync(dir, { recursive: true, force: true });
    },
  };
  cleanups.push(() => m.umount());
  return m;
}

function freeBytes(dir) {
  const s = statfsSync(dir);
  return s.bavail * s.bsize;
}

/** Sends one message and resolves the answer (ack or error). */
async function trySend(c, room, text, cid, ms = T(15000)) {
  c.send({ type: 'send', room, text, client_id: cid, ref: cid });
  return c.next((m) => m.ref === cid && (m.type === 'ack' || m.type === 'error'), ms);
}

/** Re-sends until acked (the documented retry with the same client_id). */
async function sendUntilAcked(c, room, text, cid, { tries = 50, delayMs = 100 } = {}) {
  let last;
  for (let i = 0; i < tries; i++) {
    last = await trySend(c, room, text, cid);
    if (last.type === 'ack') return last;
    assert.ok(['overloaded', 'internal'].includes(last.code), `retry answered ${JSON.stringify(last)}`);
    await sleep(delayMs);
  }
  throw new Error(`${cid} never acked; last answer ${JSON.stringify(last)}`);
}

/** Every acked message is in the room's history exactly once, with its acked id and ts. */
async function assertAllStored(reader, room, acks) {
  const hist = await fullHistory(reader, room);
  const byCid = new Map();
  for (const m of hist) {
    assert.ok(!byCid.has(m.client_id), `client_id ${m.client_id} stored twice`);
    byCid.set(m.client_id, m);
  }
  for (const [cid, ack] of acks) {
    const m = byCid.get(cid);
    assert.ok(m, `acked ${cid} (id ${ack.id}) missing from history`);
    assert.equal(m.id, ack.id, `${cid}: stored id differs from the ack`);
    assert.equal(m.ts, ack.ts, `${cid}: stored ts differs from the ack`);
  }
  return hist;
}

function integrityOk(dbPath) {
  return execFileSync('sqlite3', [dbPath, 'PRAGMA integrity_check'], { encoding: 'utf8' }).trim() === 'ok';
}

// ---------------------------------------------------------------------------
// The disk fills up.

async function diskFullScenario(t, { dir, fill, unfill, label }) {
  const srv = await startServer({ db: path.join(dir, 'parley.db'), args: ['--rate', '10000', '--burst', '10000'] });
  cleanups.push(() => srv.stop('SIGKILL'));
  const w = await guest(srv, 'Writer');
  await w.join('full');
  const acks = new Map();
  const text = (i) => `${i} ` + 'x'.repeat(3000);
  for (let i = 0; i < 20; i++) acks.set(`pre-${i}`, await trySend(w, 'full', text(i), `pre-${i}`));
  assert.ok([...acks.values()].every((a) => a.type === 'ack'));
  await fill();
  // Send until the disk is full, then a while longer.
  const refused = [];
  let firstError = -1;
  for (let i = 0; i < 3000 && (firstError < 0 || i < firstError + 30); i++) {
    const cid = `m-${i}`;
    const a = await trySend(w, 'full', text(i), cid);
    if (a.type === 'ack') acks.set(cid, a);
    else {
      assert.ok(['overloaded', 'internal'].includes(a.code), `refused with ${JSON.stringify(a)}`);
      refused.push({ cid, i, code: a.code });
      if (firstError < 0) firstError = i;
    }
  }
  const codes = [...new Set(refused.map((r) => r.code))];
  t.diagnostic(`${label}: ${acks.size} acked, first refusal at send #${firstError}, ${refused.length} refused (${codes})`);
  assert.ok(refused.length > 0, 'the disk never filled up');
  // Still up and serving: ping, health, and reads of what is stored.
  await w.barrier();
  assert.equal((await health(srv)).status, 'ok');
  const r = await guest(srv, 'Reader');
  await assertAllStored(r, 'full', [...acks].filter(([, a]) => a.type === 'ack'));
  // Space comes back; the refused sends, retried with the same client_id, go through.
  await unfill();
  const t0 = Date.now();
  for (const { cid, i } of refused) acks.set(cid, await sendUntilAcked(w, 'full', text(i), cid));
  for (let i = 0; i < 10; i++) acks.set(`post-${i}`, await sendUntilAcked(w, 'full', `post ${i}`, `post-${i}`));
  t.diagnostic(`${label}: recovered without a restart; retries done in ${Date.now() - t0} ms`);
  const hist = await assertAllStored(r, 'full', acks);
  assert.equal(hist.length, acks.size, 'messages stored that were never acked or retried');
  w.terminate();
  r.terminate();
  const st = await srv.stop();
  assert.equal(st.code, 0, st.stderr.slice(-2000));
  assert.ok(integrityOk(srv.dbPath));
  const rows = sqlite(srv.dbPath, "SELECT count(*) AS n, count(DISTINCT client_id) AS d FROM messages WHERE room='full'")[0];
  assert.deepEqual([rows.n, rows.d], [acks.size, acks.size]);
}

// 16 MiB: once the filler goes, the WAL (checkpointed at 1,000 pages, 4 MiB)
// and the search index's segments (every commit writes one) must fit, or
// the disk fills again while the refused sends are retried.
test('disk full (a 16 MiB tmpfs): sends are refused, nothing acked is lost, recovery without a restart', async (t) => {
  const m = mountTmpfs(16384);
  if (!m) return t.skip('cannot mount a tmpfs here (no privilege); the file-size-limit case below covers the fault');
  const filler = path.join(m.dir, 'filler');
  await diskFullScenario(t, {
    dir: m.dir,
    label: 'tmpfs',
    fill: async () => {
      // Leave ~400 KiB: the database fills that within a few hundred sends.
      const n = Math.max(0, freeBytes(m.dir) - 400 * 1024);
      const fd = openSync(filler, 'w');
      const chunk = Buffer.alloc(64 * 1024, 1);
      for (let left = n; left > 0; left -= chunk.length) writeSync(fd, chunk, 0, Math.min(chunk.length, left));
      closeSync(fd);
    },
    unfill: async () => unlinkSync(filler),
  });
  m.umount();
});

test('file-size limit (RLIMIT_FSIZE, no privileges needed): sends are refused, nothing acked is lost, recovery when raised', async (t) => {
  // The server runs under a soft RLIMIT_FSIZE with SIGXFSZ ignored, so a
  // write past the limit fails with EFBIG, as a full disk fails with ENOSPC.
  const dir = mkdtempSync(path.join(os.tmpdir(), 'parley-fsize-'));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  const port = await freePort();
  const db = path.join(dir, 'parley.db');
  const limitKb = 1024;
  const proc = spawn('bash', ['-c', `trap '' XFSZ; ulimit -S -f ${limitKb}; exec "$@"`, 'wrap', PARLEY_BIN,
    '--port', String(port), '--bind', '127.0.0.1', '--db', db, '--rate', '10000', '--burst', '10000'],
  { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, ASAN_OPTIONS: process.env.ASAN_OPTIONS || 'detect_leaks=1' } });
  let stderr = '';
  proc.stderr.on('data', (d) => (stderr += d));
  const exited = new Promise((res) => proc.on('exit', (code, signal) => res({ code, signal })));
  cleanups.push(() => proc.kill('SIGKILL'));
  const srv = { port, url: `ws://127.0.0.1:${port}/ws`, http: `http://127.0.0.1:${port}`, dbPath: db };
  await waitFor(async () => (await httpGet(`${srv.http}/healthz`, { timeoutMs: 1000 })).status === 200, { timeoutMs: T(15000) });
  const w = await guest(srv, 'Writer');
  await w.join('fsize');
  const acks = new Map(), refused = [];
  const text = (i) => `${i} ` + 'y'.repeat(3000);
  let firstError = -1;
  for (let i = 0; i < 3000 && (firstError < 0 || i < firstError + 30); i++) {
    const a = await trySend(w, 'fsize', text(i), `m-${i}`);
    if (a.type === 'ack') acks.set(`m-${i}`, a);
    else {
      assert.ok(['overloaded', 'internal'].includes(a.code), JSON.stringify(a));
      refused.push({ cid: `m-${i}`, i, code: a.code });
      if (firstError < 0) firstError = i;
    }
  }
  t.diagnostic(`fsize ${limitKb} KiB: ${acks.size} acked, first refusal at #${firstError}, ${refused.length} refused (${[...new Set(refused.map((r) => r.code))]})`);
  assert.ok(refused.length > 0, 'never hit the file-size limit');
  await w.barrier();
  const r = await guest(srv, 'Reader');
  await assertAllStored(r, 'fsize', acks);
  // Raise the limit from outside: no restart.
  execFileSync('prlimit', ['--pid', String(proc.pid), '--fsize=unlimited:']);
  for (const { cid, i } of refused) acks.set(cid, await sendUntilAcked(w, 'fsize', text(i), cid));
  const hist = await assertAllStored(r, 'fsize', acks);
  assert.equal(hist.length, acks.size);
  w.terminate();
  r.terminate();
  proc.kill('SIGTERM');
  const ex = await exited;
  assert.equal(ex.code, 0, stderr.slice(-2000));
  assert.equal(sanitizerReport(stderr), null, stderr.slice(-4000));
  assert.ok(integrityOk(db));
});

// ---------------------------------------------------------------------------
// Another process holds the database lock.

/** Runs sqlite3 on db, sends `sql`, resolves once it printed `ready`; .release() ends it. */
async function holdLock(db, sql) {
  const p = spawn('sqlite3', [db], { stdio: ['pipe', 'pipe', 'pipe'] });
  cleanups.push(() => p.kill('SIGKILL'));
  let out = '', err = '';
  p.stdout.on('data', (d) => (out += d));
  p.stderr.on('data', (d) => (err += d));
  p.stdin.write(`.timeout 5000\n${sql}\nSELECT 'ready';\n`);
  await waitFor(() => out.includes('ready'), { timeoutMs: T(10000), what: `sqlite3 lock (${err})` });
  return {
    release: () => new Promise((res) => {
      p.on('exit', res);
      p.stdin.end('COMMIT;\n.quit\n');
    }),
  };
}

test('another process holds the write lock: sends (and reads queued with them) wait the busy timeout, then overloaded; pings go on; nothing lost', async (t) => {
  const srv = await startServer({ args: ['--rate', '1000', '--burst', '1000'] });
  cleanups.push(() => srv.stop('SIGKILL'));
  const w = await guest(srv, 'W');
  await w.join('lock');
  const acks = new Map();
  for (let i = 0; i < 5; i++) acks.set(`a-${i}`, await trySend(w, 'lock', `before ${i}`, `a-${i}`));

  // 1. A short lock (1 s): the busy timeout absorbs it; every send is acked.
  let lock = await holdLock(srv.dbPath, "BEGIN IMMEDIATE; INSERT INTO settings(key,value) VALUES('lock-1','x');");
  const t0 = Date.now();
  const short = [];
  for (let i = 0; i < 5; i++) {
    w.send({ type: 'send', room: 'lock', text: `short ${i}`, client_id: `s-${i}`, ref: `s-${i}` });
  }
  setTimeout(() => lock.release(), 1000);
  for (let i = 0; i < 5; i++) short.push(await w.next((m) => m.ref === `s-${i}`, T(10000)));
  t.diagnostic(`1 s lock: answers ${short.map((m) => m.type === 'ack' ? 'ack' : m.code)} after ${Date.now() - t0} ms`);
  for (const m of short) assert.equal(m.type, 'ack', JSON.stringify(m));
  short.forEach((m, i) => acks.set(`s-${i}`, m));

  // 2. A long lock (6 s): sends are answered overloaded (not before the busy
  // timeout); pings and history reads (WAL readers) are not blocked.
  lock = await holdLock(srv.dbPath, "BEGIN IMMEDIATE; INSERT INTO settings(key,value) VALUES('lock-2','x');");
  const t1 = Date.now();
  const long = [];
  const pings = [];
  const sends = (async () => {
    for (let i = 0; i < 3; i++) {
      const t2 = Date.now();
      const a = await trySend(w, 'lock', `long ${i}`, `l-${i}`, T(20000));
      long.push({ a, ms: Date.now() - t2 });
    }
  })();
  const other = await guest(srv, 'Other');
  const reads = [];
  for (let i = 0; i < 5; i++) {
    const tp = Date.now();
    await other.barrier(T(2000));
    pings.push(Date.now() - tp);
    // A read shares the database queue with the waiting sends (one batch,
    // one transaction), so it waits too, and may be refused with them.
    const th = Date.now();
    const h = await other.request({ type: 'history', room: 'lock', limit: 5 }, 'history', T(10000));
    assert.ok(h.type === 'history' || h.code === 'overloaded', JSON.stringify(h));
    reads.push(`${h.type === 'history' ? 'history' : h.code} ${Date.now() - th} ms`);
    await sleep(300);
  }
  await sends;
  t.diagnostic(`6 s lock: sends ${long.map(({ a, ms }) => `${a.type === 'ack' ? 'ack' : a.code} after ${ms} ms`).join(', ')}; pings ${pings} ms; history reads: ${reads.join(', ')}`);
  assert.ok(Math.max(...pings) < T(1500), `pings slow during the lock (the loop must not wait for the database): ${pings}`);
  for (const { a, ms } of long) {
    if (a.type === 'ack') acks.set(a.client_id, a);
    else {
      assert.equal(a.code, 'overloaded');
      assert.ok(ms >= 1000, `refused after only ${ms} ms: the server did not wait for the lock`);
    }
  }
  await lock.release();
  t.diagnostic(`lock released after ${Date.now() - t1} ms`);
  for (let i = 0; i < 3; i++) acks.set(`l-${i}`, await sendUntilAcked(w, 'lock', `long ${i}`, `l-${i}`));

  // 3. A long read transaction in another process (a backup, a report):
  // WAL readers do not block the writer; every send is acked while it lasts.
  // (An EXCLUSIVE lock cannot be taken at all while the server has the WAL
  // database open: it holds a shared lock for its connection's life.)
  lock = await holdLock(srv.dbPath, 'BEGIN; SELECT count(*) FROM messages;');
  const t3 = Date.now();
  for (let i = 0; i < 200; i++) acks.set(`r-${i}`, await trySend(w, 'lock', `during read ${i}`, `r-${i}`));
  const during = [...acks].filter(([k, a]) => k.startsWith('r-') && a.type !== 'ack');
  t.diagnostic(`read transaction held: 200 sends in ${Date.now() - t3} ms, ${during.length} refused`);
  assert.equal(during.length, 0, JSON.stringify(during.slice(0, 3)));
  await lock.release();

  const hist = await assertAllStored(other, 'lock', acks);
  assert.equal(hist.length, acks.size);
  w.terminate();
  other.terminate();
  const st = await srv.stop();
  assert.equal(st.code, 0);
  srv.cleanup();
});

test('a send refused by the lock while a join of the same connection waits: each answer keeps its own ref', async () => {
  const srv = await startServer({ args: ['--rate', '1000', '--burst', '1000'] });
  cleanups.push(() => srv.stop('SIGKILL'));
  const w = await guest(srv, 'W');
  await w.join('held');
  const lock = await holdLock(srv.dbPath, "BEGIN IMMEDIATE; INSERT INTO settings(key,value) VALUES('lock-3','x');");
  // The send's completion comes first (submitted first) and fails after the
  // busy timeout; the join waits behind it in the same batch.
  w.send({ type: 'send', room: 'held', text: 'refused', client_id: 'x-1', ref: 'send-ref' });
  w.send({ type: 'join', room: 'other', ref: 'join-ref' });
  const sendAnswer = await w.next((m) => m.ref === 'send-ref', T(15000));
  const joinAnswer = await w.next((m) => m.ref === 'join-ref', T(15000));
  assert.ok(sendAnswer.type === 'error' && sendAnswer.code === 'overloaded', JSON.stringify(sendAnswer));
  assert.ok(joinAnswer.type === 'joined' || joinAnswer.code === 'overloaded', JSON.stringify(joinAnswer));
  assert.equal(w.peek((m) => m.type === 'error' && m.ref === undefined).length, 0, 'an answer lost its ref');
  await lock.release();
  w.terminate();
  assert.equal((await srv.stop()).code, 0);
  srv.cleanup();
});

// ---------------------------------------------------------------------------
// The database cannot be used at start: one clear line, exit code 2.

async function expectStartFailure(t, what, db, { env = {}, argsBefore = [], run } = {}) {
  const port = await freePort();
  const args = ['--port', String(port), '--bind', '127.0.0.1', '--db', db];
  const r = run ? await run(args) : await runParley(args, { env, timeoutMs: T(10000) });
  t.diagnostic(`${what}: exit ${r.code}${r.signal ? ' ' + r.signal : ''}; stderr: ${r.stderr.trim().split('\n').slice(-1)[0]}`);
  assert.equal(r.signal, null, `${what}: the server did not exit (it started?)`);
  assert.equal(r.code, 2, `${what}: exit code; stderr: ${r.stderr}`);
  const lines = r.stderr.trim().split('\n').filter((l) => l && !sanitizerReport(l));
  assert.ok(lines.length >= 1 && lines.length <= 3, `${what}: expected one clear line, got:\n${r.stderr}`);
  assert.ok(r.stderr.includes(path.basename(db)) || r.stderr.includes(db), `${what}: message does not name the database: ${r.stderr}`);
  assert.equal(sanitizerReport(r.stderr), null, r.stderr);
}

/** A valid database with some messages (made by the server itself). */
async function makeDb(dir, n = 300) {
  const srv = await startServer({ db: path.join(dir, 'src.db'), args: ['--rate', '10000', '--burst', '10000'] });
  const c = await guest(srv, 'Maker');
  await c.join('r');
  for (let i = 0; i < n; i++) await trySend(c, 'r', `message ${i} ` + 'z'.repeat(200), `c${i}`);
  c.terminate();
  await srv.stop();
  return path.join(dir, 'src.db');
}

test('unusable database at start: a clear message and exit code 2', async (t) => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'parley-badb-'));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  await expectStartFailure(t, 'directory does not exist', path.join(dir, 'no', 'such', 'dir', 'p.db'));
  mkdirSync(path.join(dir, 'adir.db'));
  await expectStartFailure(t, 'path is a directory', path.join(dir, 'adir.db'));
  writeFileSync(path.join(dir, 'garbage.db'), Buffer.from('this is not a database, just some text that is long enough '.repeat(100)));
  await expectStartFailure(t, 'not a database (garbage)', path.join(dir, 'garbage.db'));
  const good = await makeDb(dir);
  // A newer schema than the server knows.
  copyFileSync(good, path.join(dir, 'newer.db'));
  execFileSync('sqlite3', [path.join(dir, 'newer.db'), 'PRAGMA user_version=99']);
  await expectStartFailure(t, 'schema newer than the server', path.join(dir, 'newer.db'));
  // Truncated to half its pages.
  copyFileSync(good, path.join(dir, 'trunc.db'));
  const size = statSync(path.join(dir, 'trunc.db')).size;
  execFileSync('truncate', ['-s', String(Math.floor(size / 4096 / 2) * 4096), path.join(dir, 'trunc.db')]);
  await expectStartFailure(t, 'truncated file', path.join(dir, 'trunc.db'));
  // Unwritable: a directory the server's user cannot write (as root, run the
  // server as nobody; otherwise chmod is enough).
  const ro = path.join(dir, 'ro');
  mkdirSync(ro);
  chmodSync(dir, 0o755);
  chmodSync(ro, 0o555);
  const asUser = IS_ROOT && spawnSync('setpriv', ['--version']).status === 0
    ? (args) => new Promise((resolve) => {
      const p = spawn('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', PARLEY_BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
      let stderr = '';
      p.stderr.on('data', (d) => (stderr += d));
      const timer = setTimeout(() => p.kill('SIGKILL'), T(10000));
      p.on('exit', (code, signal) => { clearTimeout(timer); resolve({ code, signal, stderr }); });
    })
    : undefined;
  if (!IS_ROOT || asUser) {
    await expectStartFailure(t, 'read-only directory (new database)', path.join(ro, 'p.db'), { run: asUser });
    chmodSync(ro, 0o755);
    copyFileSync(good, path.join(ro, 'existing.db'));
    chmodSync(path.join(ro, 'existing.db'), 0o444);
    chmodSync(ro, 0o555);
    await expectStartFailure(t, 'read-only file in a read-only directory', path.join(ro, 'existing.db'), { run: asUser });
  }
  chmodSync(ro, 0o755);
  // A read-only filesystem, when we may mount one.
  const m = mountTmpfs(1024);
  if (m) {
    copyFileSync(good, path.join(m.dir, 'existing.db'));
    execFileSync('mount', ['-o', 'remount,ro', m.dir]);
    await expectStartFailure(t, 'read-only filesystem (new database)', path.join(m.dir, 'new.db'));
    await expectStartFailure(t, 'read-only filesystem (existing database)', path.join(m.dir, 'existing.db'));
    m.umount();
  }
});

test('a database with damaged pages is refused at start (exit 2), not served', async (t) => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'parley-corrupt-'));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  const good = await makeDb(dir, 400);
  const bad = path.join(dir, 'damaged.db');
  copyFileSync(good, bad);
  // Keep page 1 (header, schema) intact; scribble over the middle of the
  // file, where the messages table and its indexes live.
  const size = statSync(bad).size;
  const fd = openSync(bad, 'r+');
  for (let off = 4096 * 2; off < size - 4096; off += 4096 * 3) writeSync(fd, Buffer.alloc(600, 0xa5), 0, 600, off + 100);
  closeSync(fd);
  const check = spawnSync('sqlite3', [bad, 'PRAGMA quick_check'], { encoding: 'utf8' }).stdout.trim();
  assert.notEqual(check, 'ok', 'the damage was not detectable');
  await expectStartFailure(t, 'damaged pages (quick_check fails)', bad);
});
