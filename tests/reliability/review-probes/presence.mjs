import { startServer, guest, WebSocket, sleep, health } from '../../integration/harness.mjs';
const threads = process.argv[2] || '2';
const s = await startServer({ args: ['--threads', threads] });
const R = 20;
const rooms = Array.from({ length: R }, (_, i) => 'r' + i);
const obs = await guest(s, 'Obs');
for (const r of rooms) await obs.join(r);
let presence = 0;
obs.ws.on('message', (d) => { if (d.toString().startsWith('{"type":"presence"')) presence++; });
const base = await health(s);
function cycle(mode) {
  return new Promise((res) => {
    const ws = new WebSocket(s.url, { perMessageDeflate: false });
    let n = 0;
    ws.on('open', () => ws.send(JSON.stringify({ type: 'hello', name: 'Att' })));
    ws.on('message', (d) => {
      const t = d.toString();
      if (t.startsWith('{"type":"welcome"')) {
        for (const r of rooms) ws.send(JSON.stringify({ type: 'join', room: r }));
        for (let i = 0; i < 5; i++) ws.send(JSON.stringify({ type: 'join', room: 'x' + Math.random().toString(36).slice(2, 8) }));
        if (mode === 1) ws.terminate(); // joins in flight
      } else if (t.startsWith('{"type":"joined"') && ++n === R + 5) ws.terminate();
    });
    ws.on('close', res); ws.on('error', () => {});
  });
}
const t0 = Date.now(); let cycles = 0;
while (Date.now() - t0 < 3000) { await Promise.all([cycle(0), cycle(1), cycle(0), cycle(1)]); cycles += 4; }
const secs = (Date.now() - t0) / 1000;
await sleep(1500);
console.log({ threads, cycles, secs, presence, perSec: (presence / secs).toFixed(0), base, after: await health(s) });
obs.terminate();
await sleep(500);
console.log('after observer left', await health(s));
const r = await s.stop(); console.log('exit', r.code, r.stderr.split('\n').filter(l => /ERROR|runtime|assert/i.test(l)).slice(0, 5)); s.cleanup();
