// Retention: --retention-days and --max-messages-per-room prune in the
// database thread while the server keeps taking writes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, guest, sqlite, sendMany, waitFor, T } from '../integration/harness.mjs';

test('--retention-days deletes old messages and keeps new ones, while sends go on', async () => {
  let srv = await startServer({ args: ['--rate', '1000', '--burst', '1000'] });
  const c = await guest(srv, 'Old');
  await c.join('r');
  await sendMany(c, 'r', 20);
  c.close();
  await srv.stop();
  // Age 1,500 rows by ten days, in two rooms: more than one prune step (500).
  sqlite(srv.dbPath, `WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i<1500)
    INSERT INTO messages(room,user_id,user_name,text,ts,client_id)
    SELECT CASE i%2 WHEN 0 THEN 'r' ELSE 'q' END,'u','U','old '||i,
           CAST(strftime('%s','now','-10 days') AS INTEGER)*1000,'old'||i FROM n`);
  srv = await startServer({ db: srv.dbPath, args: ['--retention-days', '7', '--prune-interval', '1', '--rate', '1000', '--burst', '1000'] });
  const d = await guest(srv, 'New');
  await d.join('r');
  await sendMany(d, 'r', 30, { prefix: 'new' }); // writes while pruning
  await waitFor(() => sqlite(srv.dbPath, "SELECT count(*) AS n FROM messages WHERE text LIKE 'old %'")[0].n === 0,
    { timeoutMs: T(15000), what: 'old rows pruned' });
  const left = sqlite(srv.dbPath, 'SELECT count(*) AS n FROM messages')[0].n;
  assert.equal(left, 50, 'the 20 + 30 recent messages stay');
  const m = await (await fetch(`${srv.http}/metrics`)).text();
  assert.match(m, /parley_messages_pruned_total 1500\b/);
  d.close();
  assert.equal((await srv.stop()).code, 0);
  srv.cleanup();
});

test('--max-messages-per-room keeps the newest N of every room', async () => {
  const srv = await startServer({ args: ['--max-messages-per-room', '5', '--prune-interval', '1',
    '--rate', '1000', '--burst', '1000'] });
  const c = await guest(srv, 'Many');
  await c.join('a');
  await c.join('b');
  const a = await sendMany(c, 'a', 40, { prefix: 'a' });
  await sendMany(c, 'b', 3, { prefix: 'b' });
  await waitFor(() => sqlite(srv.dbPath, "SELECT count(*) AS n FROM messages WHERE room='a'")[0].n === 5,
    { timeoutMs: T(15000), what: 'room a pruned to 5' });
  const ids = sqlite(srv.dbPath, "SELECT id FROM messages WHERE room='a' ORDER BY id").map((r) => r.id);
  const acked = a.map((x) => x.id).sort((x, y) => x - y);
  assert.deepEqual(ids, acked.slice(-5), 'the newest five survive');
  assert.equal(sqlite(srv.dbPath, "SELECT count(*) AS n FROM messages WHERE room='b'")[0].n, 3);
  c.close();
  assert.equal((await srv.stop()).code, 0);
  srv.cleanup();
});
