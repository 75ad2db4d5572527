// SIGKILL in the middle of large batch commits, again and again. After every
// restart: every acked message is stored exactly once, with its acked id and
// ts; a message committed whose ack never left may be there; the client's
// retry with the same client_id gets that message's ack (same id) and makes
// no duplicate. At the end every message ever sent is stored exactly once.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startServer, tokenUser, sleep, T, SANITIZE, freePort, httpGet } from '../integration/harness.mjs';

const ITERATIONS = Number(process.env.CRASH_ITERATIONS) || (SANITIZE ? 6 : 15);
const CLIENTS = SANITIZE ? 6 : 12;
const PIPELINE = 64; // sends each client keeps unanswered (the server reads ahead of its window)
const TEXT = 'k'.repeat(200);

const dir = mkdtempSync(path.join(os.tmpdir(), 'parley-crash-'));
const db = path.join(dir, 'parley.db');
after(() => rmSync(dir, { recursive: true, force: true }));

function rows() {
  const out = execFileSync('sqlite3', ['-separator', ' ', db, 'SELECT id, ts, client_id FROM messages'], { encoding: 'utf8', maxBuffer: 1 << 30 }).trim();
  return out ? out.split('\n').map((l) => { const [id, ts, client_id] = l.split(' '); return { id: Number(id), ts: Number(ts), client_id }; }) : [];
}

function integrity() {
  return execFileSync('sqlite3', [db, 'PRAGMA integrity_check'], { encoding: 'utf8' }).trim();
}

async function batchStats(srv) {
  try {
    const body = (await httpGet(`${srv.http}/metrics`, { timeoutMs: 1000 })).body;
    const num = (k) => Number((new RegExp(`^parley_${k} (\\S+)$`, 'm').exec(body) || [])[1] || 0);
    const big = num('db_batch_size_count') - Number((/^parley_db_batch_size_bucket\{le="16"\} (\S+)$/m.exec(body) || [])[1] || 0);
    return { batches: num('db_batch_size_count'), requests: num('db_batch_size_sum'), over16: big };
  } catch {
    return null;
  }
}

/**
 * One client's pipelined sender: keeps PIPELINE sends unanswered, records
 * acks. Retries first (`retry` client_ids), then new ones until stopped.
 */
function runSender(c, k, iter, st, retryOnly) {
  const room = `crash-${k}`;
  let n = 0, inflight = 0, stopped = false;
  const queue = [...st.pendingFor(k)];
  const pump = () => {
    while (!stopped && inflight < PIPELINE && c.ws.readyState === 1 && !(retryOnly && !queue.length)) {
      const cid = queue.length ? queue.shift() : `i${iter}-k${k}-${n++}`;
      st.sent.set(cid, k);
      c.ws.send(JSON.stringify({ type: 'send', room, text: TEXT, client_id: cid, ref: cid }));
      inflight++;
    }
  };
  c.ws.on('message', (data) => {
    const s = data.toString();
    if (!s.startsWith('{"type":"ack"') && !s.startsWith('{"type":"error"')) return;
    const m = JSON.parse(s);
    if (m.type === 'ack') {
      const prev = st.acked.get(m.client_id);
      if (prev) assert.deepEqual([m.id, m.ts], [prev.id, prev.ts], `${m.client_id}: a second ack differs from the first`);
      st.acked.set(m.client_id, { id: m.id, ts: m.ts });
      if (st.retried.has(m.client_id)) st.retryAcks++;
    } else if (m.code === 'overloaded' || m.code === 'internal') {
      queue.push(m.ref); // retried later with the same client_id
    } else {
      st.errors.push(m);
    }
    inflight--;
    pump();
  });
  pump();
  return { stop: () => (stopped = true), get sentCount() { return n; } };
}

test(`SIGKILL during batch commits, ${ITERATIONS} times: every ack survives exactly once; retries dedupe`, async (t) => {
  const port = await freePort();
  const st = {
    sent: new Map(),      // client_id -> client index
    acked: new Map(),     // client_id -> {id, ts} from the acks
    retried: new Set(),
    retryAcks: 0,
    errors: [],
    pendingFor(k) {
      const out = [];
      for (const [cid, kk] of this.sent) if (kk === k && !this.acked.has(cid)) out.push(cid);
      out.forEach((cid) => this.retried.add(cid));
      return out;
    },
  };
  let committedUnacked = 0;
  const log = [];
  for (let iter = 0; iter <= ITERATIONS; iter++) {
    const last = iter === ITERATIONS;
    const srv = await startServer({ db, port, args: ['--rate', '1000000', '--burst', '1000000'] });
    const clients = [];
    for (let k = 0; k < CLIENTS; k++) {
      const c = await tokenUser(srv, { sub: `crash-user-${k}`, name: `U${k}` });
      await c.join(`crash-${k}`);
      clients.push(c);
    }
    const ackedBefore = st.acked.size;
    const senders = clients.map((c, k) => runSender(c, k, iter, st, last));
    if (!last) {
      // Kill at a random moment while the database thread is busy with batches.
      await sleep(T(100 + Math.floor(Math.random() * 400)));
      const bs = await batchStats(srv);
      await srv.kill();
      senders.forEach((s) => s.stop());
      clients.forEach((c) => c.terminate());
      // Straight from the file, with the server dead.
      assert.equal(integrity(), 'ok', `iteration ${iter}: integrity_check`);
      const stored = rows();
      const byCid = new Map();
      for (const r of stored) {
        assert.ok(!byCid.has(r.client_id), `iteration ${iter}: ${r.client_id} stored twice`);
        byCid.set(r.client_id, r);
        assert.ok(st.sent.has(r.client_id), `iteration ${iter}: stored ${r.client_id} was never sent`);
      }
      for (const [cid, a] of st.acked) {
        const r = byCid.get(cid);
        assert.ok(r, `iteration ${iter}: acked ${cid} (id ${a.id}) lost after SIGKILL`);
        assert.deepEqual([r.id, r.ts], [a.id, a.ts], `iteration ${iter}: ${cid} stored with another id/ts than acked`);
      }
      const unacked = stored.filter((r) => !st.acked.has(r.client_id)).length;
      committedUnacked += unacked;
      log.push(`#${iter}: ${st.acked.size - ackedBefore} acked, ${unacked} committed without ack, ${bs ? `${bs.batches} batches (${bs.over16} of >16 requests), ${bs.requests} requests` : ''}`);
    } else {
      // Last round: retries go through, then everything ever sent is stored once.
      const deadline = Date.now() + T(20000);
      while (Date.now() < deadline && [...st.sent.keys()].some((cid) => !st.acked.has(cid))) await sleep(50);
      senders.forEach((s) => s.stop());
      await sleep(200);
      for (const c of clients) await c.barrier();
      const missing = [...st.sent.keys()].filter((cid) => !st.acked.has(cid));
      assert.deepEqual(missing.slice(0, 5), [], `${missing.length} sends never acked after the last restart`);
      clients.forEach((c) => c.terminate());
      const r = await srv.stop();
      assert.equal(r.code, 0);
      const stored = rows();
      assert.equal(stored.length, new Set(stored.map((x) => x.client_id)).size, 'duplicates');
      // Every stored row was sent and acked with its id (none from nowhere).
      for (const x of stored) assert.deepEqual([x.id, x.ts], [st.acked.get(x.client_id).id, st.acked.get(x.client_id).ts]);
      assert.equal(stored.length, st.sent.size - [...st.sent.keys()].filter((cid) => !st.acked.has(cid)).length);
      log.push(`final: ${stored.length} stored = sent, ${st.retried.size} retried client_ids, ${st.retryAcks} acks for retries`);
    }
  }
  assert.deepEqual(st.errors.slice(0, 3), [], 'unexpected errors');
  t.diagnostic(log.join('\n'));
  t.diagnostic(`${committedUnacked} messages were committed but their ack never left; each retry got the stored id, no duplicates`);
});
