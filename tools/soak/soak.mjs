// soak.mjs -- a mixed load against a running Parley server for a given time,
// printing a row every --interval seconds: server memory (VmRSS), file
// descriptors, connections, database queue, sends and deliveries per
// second, ack and delivery latency percentiles, errors and unexpected
// closes. At the end it checks that every acked message is in the database.
// Started by tools/soak.sh, which runs the server; see docs/reliability.md.
//
// The load (all loopback):
//   chatters  steady clients in --rooms rooms, each sending every ~1/--rate s;
//             every --reconnect-every s a tenth of them drop (no close frame)
//             and come back with join since = last id seen, checking that no
//             message of their room was missed or repeated across the gap
//   churners  workers that connect, hello, join, send, and vanish (FIN/RST)
//   readers   clients paging history (before/after/limit) continuously
//   typers    chatters also send `typing` now and then
import WebSocket from '../../tests/node_modules/ws/wrapper.mjs';
import { readFileSync, readdirSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import http from 'node:http';

const args = Object.fromEntries(process.argv.slice(2).reduce((acc, a, i, all) => {
  if (a.startsWith('--')) acc.push([a.slice(2), all[i + 1] && !all[i + 1].startsWith('--') ? all[i + 1] : '1']);
  return acc;
}, []));
const opt = (k, d) => (args[k] !== undefined ? (typeof d === 'number' ? Number(args[k]) : args[k]) : d);
const URL_WS = opt('url', 'ws://127.0.0.1:8080/ws');
const URL_HTTP = URL_WS.replace(/^ws/, 'http').replace(/\/ws$/, '');
const PID = opt('pid', 0);
const DB = opt('db', '');
const DURATION = opt('duration', 600);
const INTERVAL = opt('interval', 10);
const CHATTERS = opt('chatters', 300);
const ROOMS = opt('rooms', 30);
const RATE = opt('rate', 0.5);        // sends per second per chatter
const CHURNERS = opt('churners', 20);
const READERS = opt('readers', 5);
const RECONNECT_EVERY = opt('reconnect-every', 30);

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const now = () => performance.now();

// ---- statistics, reset every interval
let iv = newInterval();
function newInterval() {
  return { sends: 0, acks: 0, deliveries: 0, ackLat: [], delLat: [], errors: {}, closes: {}, churned: 0, histories: 0, reconnects: 0 };
}
const total = { sends: 0, churnSends: 0, acks: 0, deliveries: 0, errors: {}, churned: 0, histories: 0, reconnects: 0, gaps: 0, dups: 0, unexpectedCloses: 0 };
const acked = new Map(); // client_id -> id, for the final check
const bump = (o, k, n = 1) => (o[k] = (o[k] || 0) + n);

function pct(a, p) {
  if (!a.length) return NaN;
  const s = a.slice().sort((x, y) => x - y);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
}

// ---- one client

let seq = 0;
class Chat {
  constructor(name, room) {
    this.name = name;
    this.room = room;
    this.resume = null;
    this.lastSeen = 0;
    this.pendingSends = new Map(); // client_id -> t0
    this.seen = new Set();
    this.delivered = new Set();
    this.closedOnPurpose = false;
    this.dropping = false;
  }

  connect({ since } = {}) {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(URL_WS, { perMessageDeflate: false });
      this.ws = ws;
      let ready = false;
      const timer = setTimeout(() => { ws.terminate(); reject(new Error('connect timeout')); }, 30000);
      ws.on('error', (e) => { if (!ready) { clearTimeout(timer); reject(e); } });
      ws.on('close', (code) => {
        clearTimeout(timer);
        if (!ready) return reject(new Error(`closed ${code} before joined`));
        if (this.closedOnPurpose || stopping) return;
        if (this.dropping) this.dropping = false; // our own drop: just come back
        else {
          bump(iv.closes, code);
          total.unexpectedCloses++;
        }
        this.reconnect().catch(() => {});
      });
      this.joined = false;
      ws.on('open', () => ws.send(JSON.stringify({ type: 'hello', name: this.name, ...(this.resume ? { resume: this.resume } : {}) })));
      ws.on('message', (d) => {
        const s = d.toString();
        if (s.startsWith('{"type":"presence"') || s.startsWith('{"type":"typing"')) return;
        const m = JSON.parse(s);
        switch (m.type) {
          case 'welcome':
            this.resume = m.resume;
            ws.send(JSON.stringify({ type: 'join', room: this.room, ...(since !== undefined ? { since } : {}) }));
            break;
          case 'joined':
            for (const x of m.messages) this.take(x, since !== undefined);
            ready = true;
            this.joined = true;
            clearTimeout(timer);
            resolve();
            break;
          case 'message':
            this.take(m, true);
            break;
          case 'ack': {
            const t0 = this.pendingSends.get(m.client_id);
            if (t0 !== undefined && !acked.has(m.client_id)) {
              if (!this.churner) {
                iv.ackLat.push(now() - t0);
                iv.acks++;
                total.acks++;
              }
              acked.set(m.client_id, m.id);
              this.forget(m.client_id);
            }
            break;
          }
          case 'error':
            bump(iv.errors, m.code);
            bump(total.errors, m.code);
            if (m.ref && this.pendingSends.has(m.ref) && (m.code === 'overloaded' || m.code === 'internal')) {
              // the documented retry, same client_id
              setTimeout(() => this.resend(m.ref), 200);
            }
            break;
        }
      });
    });
  }

  take(m, live) {
    if (m.room !== this.room) return;
    if (this.seen.has(m.id)) {
      total.dups++;
      return;
    }
    // Ids in a room arrive in increasing order; a jump over a known id of
    // this room would be a gap (checked at the end against the database).
    this.seen.add(m.id);
    if (m.id > this.lastSeen) this.lastSeen = m.id;
    if (live) {
      iv.deliveries++;
      total.deliveries++;
    }
    const t0 = this.pendingSends.get(m.client_id);
    if (t0 !== undefined && m.user?.name === this.name && !this.delivered.has(m.client_id)) {
      iv.delLat.push(now() - t0);
      this.delivered.add(m.client_id);
      this.forget(m.client_id);
    }
  }

  /** Drops the bookkeeping of a send once both its ack and its own message came back. */
  forget(cid) {
    if (acked.has(cid) && this.delivered.has(cid)) {
      this.pendingSends.delete(cid);
      this.delivered.delete(cid);
      this.texts?.delete(cid);
    }
  }

  send() {
    if (this.ws?.readyState !== 1 || !this.joined) return;
    const cid = `${this.name}-${++seq}`;
    this.pendingSends.set(cid, now());
    this.texts = this.texts || new Map();
    const text = `soak ${cid} ${'x'.repeat(Math.floor(Math.random() * 200))}`;
    this.texts.set(cid, text);
    this.ws.send(JSON.stringify({ type: 'send', room: this.room, text, client_id: cid, ref: cid }));
    if (this.churner) total.churnSends++;
    else {
      iv.sends++;
      total.sends++;
    }
  }

  resend(cid) {
    if (this.ws?.readyState !== 1 || !this.texts?.has(cid)) return;
    this.ws.send(JSON.stringify({ type: 'send', room: this.room, text: this.texts.get(cid), client_id: cid, ref: cid }));
  }

  async reconnect() {
    for (let i = 0; i < 50 && !stopping; i++) {
      try {
        await this.connect({ since: this.lastSeen });
        iv.reconnects++;
        total.reconnects++;
        // Unacked sends are retried with the same client_id.
        for (const cid of this.pendingSends.keys()) if (!acked.has(cid)) this.resend(cid);
        // Messages whose delivery fell in the gap came back through since.
        for (const cid of [...this.pendingSends.keys()]) if (acked.has(cid)) { this.delivered.add(cid); this.forget(cid); }
        return;
      } catch {
        await sleep(100 + Math.random() * 500);
      }
    }
  }

  drop() {
    // No close frame; the server sees the socket go.
    const sock = this.ws?._socket;
    if (sock) {
      this.dropping = true;
      sock.destroy();
    }
  }
}

let stopping = false;

// ---- the load parts

async function chatterLoop(c) {
  while (!stopping) {
    await sleep((1000 / RATE) * (0.5 + Math.random()));
    if (stopping) break;
    c.send();
    if (Math.random() < 0.1 && c.ws?.readyState === 1) c.ws.send(JSON.stringify({ type: 'typing', room: c.room }));
  }
}

async function churnLoop(k) {
  while (!stopping) {
    const c = new Chat(`churn${k}`, `soak-${Math.floor(Math.random() * ROOMS)}`);
    c.closedOnPurpose = true;
    c.churner = true;
    try {
      await c.connect();
      c.send();
      await sleep(Math.random() * 300);
    } catch {}
    const sock = c.ws?._socket;
    if (sock && Math.random() < 0.5 && sock.resetAndDestroy) sock.resetAndDestroy();
    else c.ws?.terminate();
    iv.churned++;
    total.churned++;
    await sleep(20);
  }
}

async function readerLoop(k) {
  const c = new Chat(`reader${k}`, `soak-${k % ROOMS}`);
  await c.connect();
  let n = 0;
  c.ws.on('message', (d) => {
    if (d.toString().startsWith('{"type":"history"')) {
      iv.histories++;
      total.histories++;
    }
  });
  while (!stopping) {
    const room = `soak-${Math.floor(Math.random() * ROOMS)}`;
    const r = Math.random();
    const req = { type: 'history', room, limit: 1 + Math.floor(Math.random() * 200), ref: `h${++n}` };
    if (r < 0.3) req.before = Math.floor(Math.random() * (seq + 1));
    else if (r < 0.6) req.after = Math.floor(Math.random() * (seq + 1));
    if (c.ws.readyState === 1) c.ws.send(JSON.stringify(req));
    await sleep(200);
  }
  c.closedOnPurpose = true;
  c.ws.close();
}

// ---- sampling

function get(path) {
  return new Promise((resolve) => {
    http.get(URL_HTTP + path, { agent: false }, (res) => {
      let b = '';
      res.on('data', (d) => (b += d));
      res.on('end', () => resolve(b));
    }).on('error', () => resolve(''));
  });
}

function proc() {
  if (!PID) return { rss: NaN, fds: NaN };
  try {
    const s = readFileSync(`/proc/${PID}/status`, 'utf8');
    return { rss: Number(/^VmRSS:\s+(\d+)/m.exec(s)[1]) / 1024, fds: readdirSync(`/proc/${PID}/fd`).length };
  } catch {
    return { rss: NaN, fds: NaN };
  }
}

const cols = ['t(s)', 'rss(MB)', 'fds', 'conns', 'dbq', 'stored', 'send/s', 'deliv/s', 'ack p50', 'p95', 'p99', 'max', 'del p50', 'p99', 'churn', 'reconn', 'hist', 'errors', 'closes'];
const widths = [6, 8, 6, 6, 5, 8, 7, 8, 8, 7, 7, 7, 8, 7, 6, 7, 6, 22, 10];
const row = (vals) => vals.map((v, i) => String(v).padStart(widths[i])).join(' ');
const fmt = (x) => (Number.isFinite(x) ? x.toFixed(1) : '-');

async function sample(t) {
  const p = proc();
  let h = {};
  try { h = JSON.parse(await get('/healthz')); } catch {}
  const metrics = await get('/metrics');
  const stored = Number((/^parley_messages_stored_total (\S+)$/m.exec(metrics) || [])[1] || NaN);
  const x = iv;
  iv = newInterval();
  const errs = Object.entries(x.errors).map(([k, v]) => `${k}:${v}`).join(',') || '0';
  const closes = Object.entries(x.closes).map(([k, v]) => `${k}:${v}`).join(',') || '0';
  const rec = {
    t, rss: p.rss, fds: p.fds, conns: h.connections, dbq: h.db_queue, stored,
    sendRate: x.sends / INTERVAL, delivRate: x.deliveries / INTERVAL,
    ack: [pct(x.ackLat, 50), pct(x.ackLat, 95), pct(x.ackLat, 99), pct(x.ackLat, 100)],
    del: [pct(x.delLat, 50), pct(x.delLat, 99)], churned: x.churned, reconnects: x.reconnects, histories: x.histories, errs, closes,
  };
  samples.push(rec);
  console.log(row([t, fmt(p.rss), p.fds, h.connections ?? '-', h.db_queue ?? '-', stored, fmt(rec.sendRate), fmt(rec.delivRate),
    ...rec.ack.map(fmt), ...rec.del.map(fmt), x.churned, x.reconnects, x.histories, errs, closes]));
}
const samples = [];

// ---- main

async function main() {
  console.log(`soak: ${DURATION} s against ${URL_WS} (pid ${PID || '?'}): ${CHATTERS} chatters in ${ROOMS} rooms at ${RATE}/s each, ` +
    `${CHURNERS} churners, ${READERS} history readers, ${Math.round(CHATTERS / 10)} chatters reconnect every ${RECONNECT_EVERY} s`);
  console.log('latencies in ms; send/s and deliv/s per second over the interval; errors and closes are counts in the interval\n');
  const chatters = Array.from({ length: CHATTERS }, (_, i) => new Chat(`chat${i}`, `soak-${i % ROOMS}`));
  for (let i = 0; i < chatters.length; i += 50) await Promise.all(chatters.slice(i, i + 50).map((c) => c.connect()));
  console.log(row(cols));
  const t0 = Date.now();
  const loops = [
    ...chatters.map(chatterLoop),
    ...Array.from({ length: CHURNERS }, (_, k) => churnLoop(k)),
    ...Array.from({ length: READERS }, (_, k) => readerLoop(k)),
  ];
  const reconnector = (async () => {
    while (!stopping) {
      await sleep(RECONNECT_EVERY * 1000);
      if (stopping) break;
      const some = chatters.filter(() => Math.random() < 0.1);
      for (const c of some) c.drop(); // the close handler reconnects with since
    }
  })();
  const sampler = (async () => {
    let next = INTERVAL;
    while (!stopping) {
      const wait = t0 + next * 1000 - Date.now();
      if (wait > 0) await sleep(wait);
      await sample(next);
      next += INTERVAL;
      if (next > DURATION) stopping = true;
    }
  })();
  await sampler;
  stopping = true;
  await Promise.race([Promise.all([...loops, reconnector]), sleep(5000)]);
  // Let the last acks arrive.
  await sleep(2000);
  for (const c of chatters) {
    c.closedOnPurpose = true;
    c.ws?.close();
  }

  // Summary.
  const all = (k, i) => samples.map((s) => s[k][i]).filter(Number.isFinite);
  const rss = samples.map((s) => s.rss).filter(Number.isFinite), fds = samples.map((s) => s.fds).filter(Number.isFinite);
  console.log('\nsummary');
  console.log(`  chatter sends ${total.sends}, acks ${total.acks}; churner sends ${total.churnSends} (acked or not, they vanish); ` +
    `deliveries ${total.deliveries}, churned clients ${total.churned}, ` +
    `history pages ${total.histories}, reconnects with since ${total.reconnects}`);
  console.log(`  errors ${JSON.stringify(total.errors)}, unexpected closes ${total.unexpectedCloses}, duplicate deliveries ${total.dups}`);
  console.log(`  RSS MB first/min/max/last ${fmt(rss[0])}/${fmt(Math.min(...rss))}/${fmt(Math.max(...rss))}/${fmt(rss.at(-1))}; ` +
    `fds first/max/last ${fds[0]}/${Math.max(...fds)}/${fds.at(-1)}`);
  console.log(`  ack latency ms, worst interval: p50 ${fmt(Math.max(...all('ack', 0)))}, p99 ${fmt(Math.max(...all('ack', 2)))}, max ${fmt(Math.max(...all('ack', 3)))}`);
  let bad = total.dups > 0;
  if (DB) {
    // Every acked message is in the database, with its acked id.
    const out = execFileSync('sqlite3', ['-separator', ' ', DB, "SELECT client_id, id FROM messages WHERE room LIKE 'soak-%'"], { encoding: 'utf8', maxBuffer: 1 << 30 });
    const stored = new Map(out.trim().split('\n').filter(Boolean).map((l) => { const [c, id] = l.split(' '); return [c, Number(id)]; }));
    let missing = 0, wrong = 0;
    for (const [cid, id] of acked) {
      if (!stored.has(cid)) missing++;
      else if (stored.get(cid) !== id) wrong++;
    }
    // And every chatter saw every message of its room stored after its first join, once.
    console.log(`  database: ${acked.size} acked messages checked: ${missing} missing, ${wrong} with another id`);
    bad ||= missing > 0 || wrong > 0;
  }
  console.log(bad ? 'RESULT: FAIL' : 'RESULT: ok');
  process.exit(bad ? 1 : 0);
}

main().catch((e) => {
  console.error('soak:', e);
  process.exit(2);
});
