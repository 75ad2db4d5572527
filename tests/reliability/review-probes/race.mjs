import { startServer, guest, WebSocket, sleep, health } from '../../integration/harness.mjs';
const threads = process.argv[2] || '2';
const s = await startServer({ args: ['--threads', threads, '--rate', '1000', '--burst', '1000'] });
const rooms = Array.from({ length: 6 }, (_, i) => 'q' + i);
let stop = false, conns = 0;
function worker(seed) {
  return new Promise((res) => {
    const ws = new WebSocket(s.url, { perMessageDeflate: false }); conns++;
    let k = 0;
    const act = () => {
      if (ws.readyState !== 1) return;
      for (let i = 0; i < 8; i++) {
        const r = rooms[(seed + k++) % rooms.length];
        const op = (seed * 7 + k) % 6;
        if (op === 0 || op === 3) ws.send(JSON.stringify({ type: 'join', room: r, since: 0 }));
        else if (op === 1) ws.send(JSON.stringify({ type: 'leave', room: r }));
        else if (op === 2) ws.send(JSON.stringify({ type: 'send', room: r, text: 't', client_id: 'c' + k }));
        else if (op === 4) ws.send(JSON.stringify({ type: 'typing', room: r }));
        else ws.send(JSON.stringify({ type: 'rooms' }));
      }
      if (k > 20 + (seed % 30)) ws.terminate(); else setImmediate(act);
    };
    ws.on('open', () => ws.send(JSON.stringify({ type: 'hello', name: 'W' + seed })));
    ws.on('message', (d) => { if (d.toString().startsWith('{"type":"welcome"')) act(); });
    ws.on('close', res); ws.on('error', () => {});
  });
}
const t0 = Date.now(); let n = 0;
const loops = Array.from({ length: 8 }, async (_, j) => { while (!stop) await worker(n++ * 8 + j); });
const sig = +process.argv[3] || 0;
if (sig) { await sleep(sig); const r = await s.stop(); stop = true; console.log('SIGTERM under load: exit', r.code, 'ms', r.ms); await Promise.race([Promise.all(loops), sleep(3000)]); console.log('conns', conns); process.exit(0); }
await sleep(4000); stop = true; await Promise.all(loops);
await sleep(1500);
console.log({ threads, conns, after: await health(s) });
const r = await s.stop(); console.log('exit', r.code); s.cleanup();
