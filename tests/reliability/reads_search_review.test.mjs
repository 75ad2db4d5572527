// reads_search_review.test.mjs -- defects found by the hostile review of
// read markers, unread counts and search (protocol 1.1 `read`, `search`).
// Each test FAILS on the reviewed commit (0ccc6f7) and states what the
// spec or the README promises. Loads are bounded in count and time and
// stay on loopback. Defects 2 and 3 need a history large enough for one
// search to take seconds: they build 2.4 million rows with the sqlite3
// shell (about a minute, ~1 GB of temporary disk); defect 4 builds 1
// million rows in 1000 rooms (under a minute). Release-build timings.
//
//   PARLEY_BIN=$PWD/build/parley node --test tests/reliability/reads_search_review.test.mjs
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { serverForTest, startServer, connect, mintToken, sleep, T } from '../integration/harness.mjs';

async function tokenConn(s, sub, name = sub, extra = {}) {
  const c = await connect(s.url);
  await c.hello({ token: mintToken({ sub, name, ...extra }) });
  return c;
}

// Defect 1. --no-guest-dms closes a DM room that has a guest in it: `join`,
// `history`, `send` and `read` are `forbidden` (db_dm_check). The search
// thread has its own check (db_search.c sql_pair, and the DM-rooms
// sub-select of the all-rooms query) that knows nothing of the flag, so
// the same room's messages are still served by `search`, with or without
// `room`. README: --no-guest-dms applies to DM rooms "both ways"; spec
// Search: "the user's DM rooms" -- ones the user may read.
test('--no-guest-dms: search does not serve the messages of a DM room that join and history refuse', { timeout: T(60000) }, async (t) => {
  let s = await startServer({ args: ['--threads', '2'] });
  const db = s.dbPath;
  let g = await connect(s.url);
  await g.hello('guesty');
  let tom = await tokenConn(s, 'tom', 'Tom');
  const d = await g.request({ type: 'dm', user: 'tom' }, 'joined');
  assert.equal(d.type, 'joined');
  await tom.say(d.room, 'zanzibar private words');
  g.terminate();
  tom.terminate();
  assert.equal((await s.stop()).code, 0);
  s = await startServer({ args: ['--threads', '2', '--no-guest-dms'], db, ownDir: true });
  t.after(async () => {
    tom.terminate();
    await s.stop();
    s.cleanup();
  });
  tom = await tokenConn(s, 'tom', 'Tom');
  const h = await tom.request({ type: 'history', room: d.room }, 'history');
  assert.equal(h.code, 'forbidden', 'history of the closed DM room is refused (the flag works there)');
  const inRoom = await tom.request({ type: 'search', q: 'zanzibar', room: d.room }, 'search');
  t.diagnostic(`search with room: ${JSON.stringify(inRoom).slice(0, 160)}`);
  assert.equal(inRoom.code, 'forbidden', 'search in the closed DM room is refused like history');
  const all = await tom.request({ type: 'search', q: 'zanzibar' }, 'search');
  t.diagnostic(`search everywhere: ${JSON.stringify(all).slice(0, 160)}`);
  assert.equal(all.type, 'search');
  assert.deepEqual(all.messages, [], 'a search of every room leaves the closed DM room out');
});

// The next tests build histories of millions of rows (a minute and a GB of
// temporary disk each): they run when PARLEY_HEAVY_TESTS=1, not in every CI.
const heavy = { skip: process.env.PARLEY_HEAVY_TESTS === '1' ? false : 'set PARLEY_HEAVY_TESTS=1' };

describe('a history of 2.4 million messages', { timeout: T(600000), ...heavy }, () => {
  let s;
  before(async () => {
    const boot = await startServer({ args: ['--threads', '2'] });
    const db = boot.dbPath;
    assert.equal((await boot.stop()).code, 0);
    execFileSync('sqlite3', [db,
      "WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM c WHERE i<2400000) " +
      "INSERT INTO messages(room,user_id,user_name,text,ts,client_id,rev) " +
      "SELECT 'other'||(i%50),'u'||(i%7),'U','common word number '||i||' lorem ipsum dolor'," +
      "1700000000000+i,'c'||i,i FROM c;"], { timeout: 300000 });
    s = await startServer({ args: ['--threads', '2'], db, ownDir: true });
  });
  after(async () => {
    if (s) {
      await s.stop();
      s.cleanup();
    }
  });

  // Defect 2. A search stopped at its 2 s deadline (db_search.c
  // past_deadline) ends with SQLITE_INTERRUPT, which run_search maps to
  // DB_FAILED: the client gets `internal`, "database error; retry with the
  // same client_id". README: "one that runs over 2 s is stopped and
  // answered `overloaded`"; spec Search: "never `internal`".
  test('a search stopped at the 2 s deadline is answered overloaded, never internal', { timeout: T(120000) }, async (t) => {
    const c = await tokenConn(s, 'narrow', 'Narrow', { rooms: ['pub'] });
    t.after(() => c.terminate());
    const seen = [];
    for (const q of ['c* w* n* l* i* d* co* wo* nu* lo* ip* do*', '"common word number" "lorem ipsum dolor" c* w* n* l* i* d*']) {
      const t0 = Date.now();
      const r = await c.request({ type: 'search', q }, 'search', T(60000));
      seen.push(`${r.code || r.type} in ${Date.now() - t0} ms`);
      assert.notEqual(r.code, 'internal', `q ${q}: ${JSON.stringify(r)}`);
    }
    t.diagnostic(seen.join('; '));
  });

  // Defect 3. One thread runs every search and every `rooms` listing
  // (db_search.c), first come first served, with no share per user. One
  // user with 8 connections, each searching a word in rooms its token does
  // not allow (each search scans the whole history), keeps that queue
  // full: everybody's `rooms` waits seconds (6 s measured on a 600k-row
  // history; linear in connections). README: searches run on their own
  // thread "so they never hold a commit" -- but they hold the listing.
  test('one user\'s searches do not hold everyone else\'s rooms listing for seconds', { timeout: T(180000) }, async (t) => {
    const as = [];
    for (let i = 0; i < 8; i++) as.push(await tokenConn(s, 'searcher', 'Searcher', { rooms: ['pub'] }));
    const b = await tokenConn(s, 'bystander', 'Bystander');
    t.after(() => [...as, b].forEach((c) => c.terminate()));
    await b.join('lobby');
    let stop = false;
    const loops = as.map(async (a) => {
      while (!stop) await a.request({ type: 'search', q: 'common word' }, 'search', T(120000)).catch(() => {});
    });
    await sleep(300);
    const times = [];
    for (let i = 0; i < 3; i++) {
      const t0 = Date.now();
      const r = await b.request({ type: 'rooms' }, 'rooms', T(120000));
      assert.equal(r.type, 'rooms');
      times.push(Date.now() - t0);
    }
    stop = true;
    await Promise.all(loops);
    t.diagnostic(`bystander rooms: ${times.join(', ')} ms`);
    assert.ok(Math.max(...times) < T(1000), `rooms took ${times.join(', ')} ms while another user searched`);
  });
});

// Defect 4. Every `rooms` answer counts the unread messages of every room
// listed (db_mark.c put_line: one indexed range of up to 1000 rows per
// room, each row looked up for `deleted` and `user_id`), on the single
// search thread, with no deadline (listings run with deadline INT64_MAX).
// With 1000 rooms online that have 1000+ messages each (one guest
// connection may join 1000 rooms), a user with no markers at all waits
// 3-4 s for `rooms` (release build), and every other `rooms` and `search`
// on the server waits behind it; a user who `read`s 1000 such rooms (no
// join needed, 100/s) costs the same on each of its listings. Spec: `rooms`
// carries the counts, "counted up to 1000"; nothing there says the listing
// may take seconds.
test('rooms answers quickly with 1000 busy rooms online', { timeout: T(600000), ...heavy }, async (t) => {
  const boot = await startServer({ args: ['--threads', '2'] });
  const db = boot.dbPath;
  assert.equal((await boot.stop()).code, 0);
  execFileSync('sqlite3', [db,
    "WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM c WHERE i<1000000) " +
    "INSERT INTO messages(room,user_id,user_name,text,ts,client_id,rev) " +
    "SELECT 'r'||(i%1000),'other','O','x '||i,1700000000000+i,'c'||i,i FROM c;"], { timeout: 300000 });
  const s = await startServer({ args: ['--threads', '2'], db, ownDir: true });
  const g = await connect(s.url);
  await g.hello('joiner');
  const f = await tokenConn(s, 'fresh', 'Fresh');
  t.after(async () => {
    g.terminate();
    f.terminate();
    await s.stop();
    s.cleanup();
  });
  for (let i = 0; i < 1000; i++) {
    for (;;) {
      const r = await g.request({ type: 'join', room: `r${i}` }, 'joined', T(30000));
      if (r.code === 'rate_limited') { await sleep(200); continue; }
      assert.equal(r.type, 'joined');
      break;
    }
  }
  const times = [];
  for (let i = 0; i < 2; i++) {
    const t0 = Date.now();
    const r = await f.request({ type: 'rooms' }, 'rooms', T(120000));
    assert.equal(r.type, 'rooms');
    times.push(Date.now() - t0);
  }
  t.diagnostic(`rooms: ${times.join(', ')} ms`);
  assert.ok(Math.max(...times) < T(1000), `rooms took ${times.join(', ')} ms with 1000 busy rooms online`);
});
