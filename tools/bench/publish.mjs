// publish.mjs -- POST /api/publish requests/s from a local client: C
// keep-alive connections kept busy (Node's agent sends one request per
// connection at a time and queues C x W, so no connection idles between
// answers), for D seconds after a 2 s warm-up. Each answer is checked
// (200 with an id); each has its own client_id (a new message).
// A bystander WebSocket member of the room counts the messages delivered.
//
//   node tools/bench/publish.mjs [--conns 8] [--window 16] [--duration 10]
//        [--db /tmp/pub.db] [--threads 1]
//
// Prints one JSON line: publishes/s, answer p50/p99, delivered, load.
import http from 'node:http';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { WebSocket, freePort, loadavg, now, startServer, stopServer, stats, sleep, token } from './lib12.mjs';

const arg = (name, dflt) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : dflt;
};
const CONNS = Number(arg('conns', 8));
const WINDOW = Number(arg('window', 16));
const DURATION = Number(arg('duration', 10));
const KEY = 'bench-publish-key-0123456789';
const db = arg('db', path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'pub-')), 'pub.db'));

const port = await freePort();
const srv = await startServer(db, port, ['--api-key', KEY, '--api-auth-fails-per-ip', '0',
  '--threads', String(arg('threads', 1))]);
const agent = new http.Agent({ keepAlive: true, maxSockets: CONNS });
let seq = 0;

function publish() {
  const body = JSON.stringify({ room: 'bench', text: `bot message ${seq}`, user: { id: 'bench-bot', name: 'Bench' }, client_id: `p${seq++}` });
  const t0 = now();
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path: '/api/publish', method: 'POST', agent,
      headers: { authorization: `Bearer ${KEY}`, 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } },
    (res) => {
      let data = '';
      res.setEncoding('utf8');
      res.on('data', (d) => (data += d));
      res.on('end', () => (res.statusCode === 200 && JSON.parse(data).id > 0 ? resolve(now() - t0) : reject(new Error(`${res.statusCode} ${data}`))));
    });
    req.on('error', reject);
    req.end(body);
  });
}

// A member of the room, counting deliveries.
const ws = new WebSocket(`ws://127.0.0.1:${port}/ws`);
let delivered = 0;
await new Promise((r) => ws.on('open', r));
ws.send(JSON.stringify({ type: 'hello', token: token('u1') }));
ws.send(JSON.stringify({ type: 'join', room: 'bench' }));
ws.on('message', (m) => { if (String(m).startsWith('{"type":"message"')) delivered++; });
await sleep(300);

async function run(seconds, lat) {
  const end = now() + seconds * 1000;
  let n = 0;
  const worker = async () => {
    while (now() < end) {
      const ms = await publish();
      n++;
      if (lat) lat.push(ms);
    }
  };
  await Promise.all(Array.from({ length: CONNS * WINDOW }, worker));
  return n;
}

const load0 = loadavg();
await run(2, null); // warm-up
const d0 = delivered;
const lat = [];
const t0 = now();
const n = await run(DURATION, lat);
const secs = (now() - t0) / 1000;
await sleep(500);
console.log(JSON.stringify({
  conns: CONNS, window: WINDOW, duration_s: +secs.toFixed(2), publishes: n,
  publishes_per_s: Math.round(n / secs), answer: stats(lat), delivered: delivered - d0,
  load_before: load0, load_after: loadavg(),
}));
ws.close();
agent.destroy();
await stopServer(srv);
