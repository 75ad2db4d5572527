// Reconnect storm: 5,000 clients (1,000 under ASan) in 50 rooms drop at once
// (no close frame) while messages keep flowing, and all reconnect at once
// with `since` = the last id each saw. Every client ends up with every
// message of its room exactly once: none missed, none twice.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import WebSocket from 'ws';
import { startServer, guest, health, sleep, T, SANITIZE, waitFor } from '../integration/harness.mjs';
import { pool, fdCount } from './rawws.mjs';

const N = Number(process.env.STORM_CLIENTS) || (SANITIZE ? 1000 : 5000);
const PER_ROOM = 100;
const ROOMS = Math.ceil(N / PER_ROOM);
const WRITER_INTERVAL_MS = 400; // per room: 2.5 messages/s, ~125/s in all at 5,000 clients

/** A lean client: keeps only what the check needs. */
class Lean {
  constructor(i) {
    this.i = i;
    this.room = `storm-${i % ROOMS}`;
    this.ids = [];      // every message id received, in order (joined + live)
    this.lastSeen = 0;
    this.resume = null;
    this.attempts = 0;
    this.incomplete = 0;
    this.recovered = 0; // messages that came back through join with since
  }

  open(url, { since } = {}) {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url, { perMessageDeflate: false });
      this.ws = ws;
      let stage = 'hello';
      const fail = (e) => { ws.terminate(); reject(e); };
      const timer = setTimeout(() => fail(new Error(`client ${this.i}: ${stage} timeout`)), T(30000));
      ws.on('error', (e) => { clearTimeout(timer); reject(e); });
      ws.on('close', () => { clearTimeout(timer); if (stage !== 'live') reject(new Error(`client ${this.i}: closed in ${stage}`)); });
      ws.on('open', () => ws.send(JSON.stringify({ type: 'hello', name: `s${this.i}`, ...(this.resume ? { resume: this.resume } : {}) })));
      ws.on('message', (data) => {
        const s = data.toString();
        if (s.startsWith('{"type":"message"')) {
          const m = JSON.parse(s);
          if (m.room === this.room) this.take(m.id);
          return;
        }
        if (s.startsWith('{"type":"presence"') || s.startsWith('{"type":"typing"')) return;
        const m = JSON.parse(s);
        if (m.type === 'welcome') {
          if (this.resume && m.user.id !== this.userId) return fail(new Error(`client ${this.i}: resume gave another id`));
          this.userId = m.user.id;
          this.resume = m.resume;
          stage = 'join';
          ws.send(JSON.stringify({ type: 'join', room: this.room, ...(since !== undefined ? { since } : {}) }));
        } else if (m.type === 'joined') {
          for (const x of m.messages) this.take(x.id);
          if (since !== undefined) this.recovered += m.messages.length;
          if (!m.complete) this.incomplete++;
          stage = 'live';
          clearTimeout(timer);
          resolve();
        } else if (m.type === 'error') {
          fail(new Error(`client ${this.i}: ${s}`));
        }
      });
    });
  }

  take(id) {
    this.ids.push(id);
    if (id > this.lastSeen) this.lastSeen = id;
  }

  drop() {
    // No close frame: the socket just goes.
    this.ws._socket ? this.ws._socket.destroy() : this.ws.terminate();
  }

  /** Reconnects with since = last id seen, retrying as a real client would. */
  async reconnect(url) {
    for (;;) {
      this.attempts++;
      try {
        return await this.open(url, { since: this.lastSeen });
      } catch (e) {
        if (this.attempts > 30) throw e;
        await sleep(50 + Math.random() * 250 * Math.min(this.attempts, 8));
      }
    }
  }
}

test(`reconnect storm: ${N} clients drop at once and rejoin with since; every message once`, { timeout: T(600000) }, async (t) => {
  const srv = await startServer({ args: ['--max-connections', String(2 * N + 200), '--rate', '100', '--burst', '100'] });
  const writers = [];
  const sent = new Map(); // room -> [ids acked]
  let writing = true;
  try {
    const clients = Array.from({ length: N }, (_, i) => new Lean(i));
    let t0 = Date.now();
    await pool(clients, 250, (c) => c.open(srv.url));
    t.diagnostic(`${N} clients connected and joined ${ROOMS} rooms in ${Date.now() - t0} ms`);

    // One writer per room, sending steadily through everything below.
    for (let r = 0; r < ROOMS; r++) {
      const w = await guest(srv, `writer${r}`);
      await w.join(`storm-${r}`);
      w.queue = { push() {}, findIndex: () => -1, filter: () => [] }; // keeps nothing; acks read below
      sent.set(`storm-${r}`, []);
      writers.push(w);
    }
    let seq = 0;
    const writerLoops = writers.map(async (w, r) => {
      const room = `storm-${r}`;
      const acks = sent.get(room);
      const pending = new Set();
      w.ws.on('message', (d) => {
        const s = d.toString();
        if (!s.startsWith('{"type":"ack"')) return;
        const m = JSON.parse(s);
        pending.delete(m.client_id);
        acks.push(m.id);
      });
      while (writing) {
        const cid = `w${r}-${++seq}`;
        pending.add(cid);
        w.ws.send(JSON.stringify({ type: 'send', room, text: `storm ${cid}`, client_id: cid }));
        await sleep(WRITER_INTERVAL_MS * (0.5 + Math.random()));
      }
      await waitFor(() => pending.size === 0, { timeoutMs: T(20000), what: `writer ${r} acks` });
    });

    await sleep(2000);
    // The storm: everyone drops at once...
    const h0 = await health(srv);
    for (const c of clients) c.drop();
    await sleep(200);
    // ...and everyone reconnects at once.
    t0 = Date.now();
    const results = await Promise.allSettled(clients.map((c) => c.reconnect(srv.url)));
    const failed = results.filter((r) => r.status === 'rejected');
    const stormMs = Date.now() - t0;
    const retries = clients.reduce((a, c) => a + c.attempts - 1, 0);
    t.diagnostic(`before the drop: ${JSON.stringify(h0)}; reconnect storm done in ${stormMs} ms, ${retries} retried connects, ${failed.length} failed`);
    assert.equal(failed.length, 0, failed.slice(0, 3).map((r) => r.reason.message).join('; '));

    await sleep(2000);
    writing = false;
    await Promise.all(writerLoops);
    // Every client gets its room's last message.
    const last = new Map([...sent].map(([room, ids]) => [room, Math.max(0, ...ids)]));
    await waitFor(() => clients.every((c) => c.lastSeen >= last.get(c.room)), { timeoutMs: T(30000), what: 'last messages delivered' });

    let missing = 0, dups = 0, extra = 0, worst = null;
    for (const c of clients) {
      const want = new Set(sent.get(c.room));
      const got = new Set(c.ids);
      dups += c.ids.length - got.size;
      let miss = 0;
      for (const id of want) if (!got.has(id)) miss++;
      for (const id of got) if (!want.has(id)) extra++;
      missing += miss;
      if (miss || c.ids.length !== got.size) worst = worst || { client: c.i, room: c.room, miss, dup: c.ids.length - got.size, lastSeen: c.lastSeen };
    }
    const total = [...sent.values()].reduce((a, ids) => a + ids.length, 0);
    const incomplete = clients.reduce((a, c) => a + c.incomplete, 0);
    const recovered = clients.reduce((a, c) => a + c.recovered, 0);
    t.diagnostic(`${total} messages sent in ${ROOMS} rooms; ${recovered} deliveries came back through join with since; ` +
      `per-client check: ${missing} missing, ${dups} duplicates, ${extra} unknown; ${incomplete} incomplete joins`);
    assert.equal(missing, 0, `messages missed: ${JSON.stringify(worst)}`);
    assert.equal(dups, 0, `messages received twice: ${JSON.stringify(worst)}`);
    assert.equal(extra, 0);
    assert.equal(incomplete, 0);
    assert.ok(total > ROOMS * 5, 'too few messages to mean anything');

    for (const c of clients) c.ws.terminate();
    for (const w of writers) w.terminate();
    await waitFor(async () => (await health(srv)).connections === 0, { timeoutMs: T(20000), what: 'all gone' });
    t.diagnostic(`after: ${JSON.stringify(await health(srv))}, ${fdCount(srv.proc.pid)} fds`);
    const r = await srv.stop();
    assert.equal(r.code, 0);
  } finally {
    writing = false;
    await srv.stop('SIGKILL').catch(() => {});
    srv.cleanup();
  }
});
