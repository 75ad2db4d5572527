// Migrations: a database made by schema version 1 is upgraded in place by
// this server, history intact, and every later feature works on it (edits,
// users, DMs); a database from a newer server is refused.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync, mkdtempSync, rmSync } from 'node:fs';
import { createHash } from 'node:crypto';
import os from 'node:os';
import path from 'node:path';
import { startServer, guest, sqlite, fullHistory, runParley, REPO } from '../integration/harness.mjs';

const schemaDir = path.join(REPO, 'schema');
const versions = readdirSync(schemaDir).filter((f) => /^\d+_.*\.sql$/.test(f)).sort();
// The schema version is the last file's number (db_schema.c), not the count.
const topVersion = parseInt(versions[versions.length - 1], 10);

test('a version-1 database is upgraded in place, its messages intact', async (t) => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'parley-mig-'));
  const db = path.join(dir, 'v1.db');
  const v1 = readFileSync(path.join(schemaDir, versions[0]), 'utf8');
  sqlite(db, `
${v1};
    INSERT INTO messages(room,user_id,user_name,text,ts,client_id) VALUES
      ('lobby','u1','Ada','from version one',1700000000000,'c1'),
      ('lobby','u2','Bo','still here',1700000000001,'c2');
    PRAGMA user_version=1;`);
  const srv = await startServer({ db });
  let stopped = false;
  // A failed assertion must not leave the server up (node would wait on it).
  t.after(() => { if (!stopped) srv.stop('SIGKILL'); });
  assert.equal(sqlite(db, 'PRAGMA user_version')[0].user_version, topVersion);
  assert.ok(versions.length >= 2, 'there is a migration to apply');
  assert.equal(sqlite(db, "SELECT count(*) AS n FROM sqlite_master WHERE name='messages_ts'")[0].n, 1);
  const c = await guest(srv, 'Reader');
  const h = await fullHistory(c, 'lobby');
  assert.deepEqual(h.map((m) => [m.id, m.user.name, m.text]), [[1, 'Ada', 'from version one'], [2, 'Bo', 'still here']]);
  // Version 3 (protocol 1.1): old rows carry rev = id, and the one
  // sequence goes on from them for messages and changes alike.
  assert.deepEqual(h.map((m) => m.rev), [1, 2]);
  await c.join('lobby');
  c.send({ type: 'send', room: 'lobby', text: 'after upgrade', client_id: 'n1' });
  assert.equal((await c.next('ack')).id, 3, 'ids continue after the old rows');
  const mine = await c.request({ type: 'edit', room: 'lobby', id: 3, text: 'edited after upgrade' }, 'edited');
  assert.equal(mine.rev, 4);
  const theirs = await c.request({ type: 'edit', room: 'lobby', id: 1, text: 'not mine' }, 'edited');
  assert.equal(theirs.code, 'forbidden', 'an old message keeps its author');
  const j = await c.request({ type: 'join', room: 'lobby', since: 2 }, 'joined');
  assert.deepEqual(j.messages.map((m) => [m.id, m.rev, m.text]), [[3, 4, 'edited after upgrade']]);
  assert.deepEqual(sqlite(db, 'SELECT id, msg_id, kind, old_text, new_text FROM edits'),
    [{ id: 4, msg_id: 3, kind: 'edit', old_text: 'after upgrade', new_text: 'edited after upgrade' }]);
  const users = sqlite(db, 'SELECT id, name, guest FROM users');
  assert.deepEqual(users.map((u) => [u.name, u.guest]), [['Reader', 1]], 'welcomed users are recorded');
  // Version 4 (protocol 1.1): direct messages. The table and its indexes
  // exist, and two guests welcomed on the upgraded database can DM.
  assert.deepEqual(
    sqlite(db, "SELECT name FROM sqlite_master WHERE tbl_name='dm_rooms' AND name NOT LIKE 'sqlite_%' ORDER BY name").map((r) => r.name),
    ['dm_rooms', 'dm_rooms_a', 'dm_rooms_b'],
  );
  assert.deepEqual(sqlite(db, 'PRAGMA table_info(dm_rooms)').map((col) => col.name), ['room', 'user_a', 'user_b', 'created', 'created_by', 'last_id']);
  const d = await guest(srv, 'Writer');
  const dm = await c.request({ type: 'dm', user: d.user.id }, 'joined');
  assert.equal(dm.type, 'joined', `dm answered ${JSON.stringify(dm)}`);
  const [lo, hi] = [c.user.id, d.user.id].sort((x, y) => Buffer.compare(Buffer.from(x), Buffer.from(y)));
  const want = 'dm-' + createHash('sha256').update(Buffer.concat([Buffer.from(lo), Buffer.from([0]), Buffer.from(hi)])).digest('hex').slice(0, 32);
  assert.equal(dm.room, want, 'the room named from the pair (server/dm.c)');
  assert.deepEqual(dm.peer, { id: d.user.id, name: 'Writer' });
  assert.deepEqual(dm.messages, []);
  // The other way round: the same room, with the other peer.
  const back = await d.request({ type: 'dm', user: c.user.id }, 'joined');
  assert.equal(back.room, want);
  assert.deepEqual(back.peer, { id: c.user.id, name: 'Reader' });
  // One row, the pair sorted (user_a < user_b, byte order) whoever asked first.
  const rows = sqlite(db, 'SELECT room, user_a, user_b FROM dm_rooms');
  assert.deepEqual(rows, [{ room: want, user_a: lo, user_b: hi }]);
  assert.ok(Buffer.compare(Buffer.from(rows[0].user_a), Buffer.from(rows[0].user_b)) < 0);
  // A DM takes the next id of the one sequence, after the old rows and edits.
  c.send({ type: 'send', room: want, text: 'psst', client_id: 'dm1' });
  assert.equal((await c.next((m) => m.type === 'ack' && m.room === want)).id, 5);
  const got = await d.next((m) => m.type === 'message' && m.room === want);
  assert.deepEqual([got.id, got.text, got.user.id], [5, 'psst', c.user.id]);
  d.close();
  c.close();
  stopped = true;
  assert.equal((await srv.stop()).code, 0);
  rmSync(dir, { recursive: true, force: true });
});

test('a database from a newer server is refused with exit code 2', async () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'parley-mig-'));
  const db = path.join(dir, 'future.db');
  sqlite(db, `CREATE TABLE t(x); PRAGMA user_version=${topVersion + 5};`);
  const r = await runParley(['--db', db, '--port', '1']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /newer than this server/);
  assert.equal(r.stderr.trim().split('\n').length, 1);
  rmSync(dir, { recursive: true, force: true });
});
