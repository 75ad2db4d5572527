import { startServer, guest, connect, WebSocket, sleep, health, httpGet } from '../../integration/harness.mjs';
const N = +process.argv[2] || 1600;
const s = await startServer({ args: ['--threads', '2'] });
const NAME = '😀'.repeat(32);
const socks = [];
async function member(i) {
  return new Promise((res, rej) => {
    const ws = new WebSocket(s.url, { perMessageDeflate: false });
    ws.on('open', () => ws.send(JSON.stringify({ type: 'hello', name: NAME })));
    ws.on('message', (d) => {
      const t = d.toString();
      if (t.startsWith('{"type":"welcome"')) ws.send(JSON.stringify({ type: 'join', room: 'big' }));
      else if (t.startsWith('{"type":"joined"')) res(ws);
    });
    ws.on('error', rej);
    socks.push(ws);
  });
}
const t0 = Date.now();
for (let i = 0; i < N; i += 100) await Promise.all(Array.from({ length: Math.min(100, N - i) }, (_, k) => member(i + k)));
console.log('members joined', N, 'in', Date.now() - t0, 'ms', await health(s));
const pid = s.proc.pid;
const rss = () => /VmRSS:\s+(\d+)/.exec(require_fs().readFileSync(`/proc/${pid}/status`, 'utf8'))[1];
function require_fs() { return globalThis.__fs; }
globalThis.__fs = await import('node:fs');
console.log('rss kB', rss());
// bystander
const by = await guest(s, 'By'); await by.join('quiet');
const a = await guest(s, 'Attacker');
let bytes = 0, joined = 0, limited = 0, maxFrame = 0;
a.ws.on('message', (d) => { bytes += d.length; maxFrame = Math.max(maxFrame, d.length); const t = d.toString().slice(0, 40); if (t.startsWith('{"type":"joined"')) joined++; else if (t.includes('rate_limited')) limited++; });
const T0 = Date.now();
let lat = [];
const stopAt = Date.now() + 3000;
const pinger = (async () => { let i = 0; while (Date.now() < stopAt) { const t = Date.now(); await by.request({ type: 'send', room: 'quiet', text: 'x', client_id: 'c' + i++ }, 'ack'); lat.push(Date.now() - t); await sleep(50); } })();
while (Date.now() < stopAt) { for (let k = 0; k < 10; k++) a.send({ type: 'join', room: 'big' }); await sleep(100); }
await pinger;
await sleep(500);
const secs = (Date.now() - T0) / 1000;
lat.sort((x, y) => x - y);
console.log({ secs, bytesMB: (bytes / 1048576).toFixed(1), MBps: (bytes / 1048576 / secs).toFixed(1), joined, limited, maxFrame, rssKB: rss(), latP50: lat[lat.length >> 1], latMax: lat[lat.length - 1] });
for (const w of socks) w.terminate();
a.terminate(); by.terminate();
const r = await s.stop(); console.log('exit', r.code); s.cleanup();
