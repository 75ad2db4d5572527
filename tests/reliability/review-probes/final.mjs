import { startServer, guest, sleep } from '../../integration/harness.mjs';
const s = await startServer({ args: ['--threads', '2'] });
const obs = []; for (let i = 0; i < 4; i++) { const o = await guest(s, 'O' + i); await o.join('p'); obs.push(o); }
const last = obs.map(() => new Map());
obs.forEach((o, i) => o.ws.on('message', d => { const m = JSON.parse(d); if (m.type === 'presence') last[i].set(m.user.id, m.event); }));
const atts = []; for (let i = 0; i < 6; i++) atts.push(await guest(s, 'A' + i));
const want = new Map();
for (const [i, a] of atts.entries()) {
  const toggles = 7 + i * 5;
  for (let k = 0; k < toggles; k++) { a.send({ type: k % 2 ? 'leave' : 'join', room: 'p' }); if (k % 3 == 0) await sleep(150); }
  want.set(a.user.id, toggles % 2 ? 'join' : 'leave');
}
await sleep(3000);
let bad = 0;
for (const [i] of obs.entries()) for (const [id, w] of want) { const g = last[i].get(id) || 'leave'; if (g !== w) { bad++; console.log('obs', i, id, 'want', w, 'got', g); } }
const j = await obs[0].request({ type: 'join', room: 'p' }, 'joined');
console.log('mismatches', bad, 'members', j.members.length);
for (const c of [...obs, ...atts]) c.terminate();
const r = await s.stop(); console.log('exit', r.code); s.cleanup();
