import { startServer, guest, WebSocket, sleep, health } from '../../integration/harness.mjs';
import fs from 'node:fs';
const s = await startServer({ args: ['--threads', '2'] });
const rss = () => +/VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${s.proc.pid}/status`, 'utf8'))[1];
const by = await guest(s, 'By'); await by.join('quiet');
async function lat(ms) { const out = []; const end = Date.now() + ms; let i = 0; while (Date.now() < end) { const t = process.hrtime.bigint(); await by.request({ type: 'send', room: 'quiet', text: 'x', client_id: 'b' + Math.random() }, 'ack'); out.push(Number(process.hrtime.bigint() - t) / 1e6); await sleep(20); } out.sort((a, b) => a - b); return { n: out.length, p50: out[out.length >> 1].toFixed(1), p99: out[Math.floor(out.length * 0.99)].toFixed(1), max: out[out.length - 1].toFixed(1) }; }
console.log('baseline', await lat(1500));
const holders = [];
const H = 3;
await Promise.all(Array.from({ length: H }, async (_, h) => {
  const c = await guest(s, 'H' + h); holders.push(c);
  let ok = 0;
  for (let i = 0; i < 1000;) {
    const batch = [];
    for (let k = 0; k < 90 && i < 1000; k++, i++) batch.push(c.request({ type: 'join', room: `h${h}-${String(i).padStart(5, '0')}-` + 'x'.repeat(50) }, 'joined'));
    const rs = await Promise.all(batch); ok += rs.filter(r => r.type === 'joined').length;
    await sleep(1000);
  }
  console.log('holder', h, 'joined', ok);
}));
console.log(await health(s), 'rss', rss());
const A = 10; const atts = []; let bytes = 0, lists = 0, limited = 0;
for (let a = 0; a < A; a++) { const c = await guest(s, 'A' + a); atts.push(c); c.ws.on('message', d => { bytes += d.length; const t = d.toString().slice(0, 30); if (t.startsWith('{"type":"rooms"')) lists++; else if (d.includes('rate_limited')) limited++; }); }
let stop = false;
const flood = atts.map(async (c) => { while (!stop) { for (let k = 0; k < 10; k++) c.send({ type: 'rooms' }); await sleep(100); } });
const L = await lat(3000); stop = true; await Promise.all(flood);
await sleep(1000); console.log("closes", atts.map(c => c.closeInfo && c.closeInfo.code).join(","), "logs", s.stderr.split("\n").filter(l => /slow|idle|1013|1009/.test(l)).slice(0,4)); console.log("under rooms flood", L, { MB: (bytes / 1048576).toFixed(1), lists, limited, rss: rss() });
for (const c of [...holders, ...atts, by]) c.terminate();
const r = await s.stop(); console.log('exit', r.code); s.cleanup();
