// Online backup with the sqlite3 shell while the server writes (WAL), and a
// restore: a server started on the backup serves its history.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { startServer, guest, sqlite, sendMany, fullHistory, T } from '../integration/harness.mjs';

test('.backup under write load is consistent, and restores', async () => {
  const srv = await startServer({ args: ['--rate', '100000', '--burst', '100000'] });
  const writer = await guest(srv, 'Writer');
  await writer.join('busy');
  const acked = [];
  const load = sendMany(writer, 'busy', 3000, { window: 100, onAck: (a) => acked.push(a.id), timeoutMs: T(60000) });
  const backups = [];
  for (let i = 0; i < 5; i++) {
    await new Promise((r) => setTimeout(r, 40));
    const file = path.join(srv.dir, `backup-${i}.db`);
    const before = acked.length ? Math.max(...acked) : 0;
    execFileSync('sqlite3', ['-cmd', '.timeout 10000', srv.dbPath, `.backup '${file}'`]);
    backups.push({ file, before });
  }
  await load;
  for (const { file, before } of backups) {
    assert.equal(sqlite(file, 'PRAGMA integrity_check')[0].integrity_check, 'ok');
    const ids = sqlite(file, 'SELECT id FROM messages ORDER BY id').map((r) => r.id);
    // Every message acked before the backup started is in it, and the ids
    // form a prefix of the server's: a backup is a point in commit order.
    for (let k = 0; k < ids.length; k++) assert.equal(ids[k], k + 1);
    assert.ok(ids.length >= before, `backup has ${ids.length} rows, ${before} were acked before`);
  }
  writer.close();
  assert.equal((await srv.stop()).code, 0);

  // Restore: copy the last backup into place and start a server on it.
  const restored = path.join(srv.dir, 'restored.db');
  execFileSync('cp', [backups.at(-1).file, restored]);
  const srv2 = await startServer({ db: restored });
  const r = await guest(srv2, 'Reader');
  const hist = await fullHistory(r, 'busy');
  const rows = sqlite(restored, 'SELECT count(*) AS n FROM messages')[0].n;
  assert.equal(hist.length, rows);
  assert.ok(rows > 0);
  r.close();
  assert.equal((await srv2.stop()).code, 0);
  srv.cleanup();
});
