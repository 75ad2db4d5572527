import { startServer, tokenUser, guest, mintToken, sleep } from '../../integration/harness.mjs';
const s = await startServer({ args: ['--threads', '2', '--guest-rooms', 'lobby,pub-*'] });
const now = () => Math.floor(Date.now() / 1000);
const u = await tokenUser(s, { sub: 'u1', name: 'U', rooms: ['a'], exp: now() + 3 });
const tries = [
  { type: 'auth', token: 123, ref: 'n' }, { type: 'auth', ref: 'none' }, 
  
  { type: 'auth', token: mintToken({ sub: 'u2', name: 'V' }), ref: 'other' },
  { type: 'auth', token: mintToken({ sub: 'u1', name: 'U', rooms: ['a', 'b'], exp: now() + 4 }), ref: 'wide' },
];
for (const t of tries) { u.send(t); console.log(t.ref, JSON.stringify(await u.next(null, 3000)).slice(0, 120)); }
console.log(JSON.stringify(await u.request({ type: 'join', room: 'b' }, 'joined')).slice(0, 60));
console.log(JSON.stringify(await u.request({ type: 'history', room: 'c' }, 'history')).slice(0, 80));
await sleep(5500);
console.log('close after exp', u.closeInfo);
const g = await guest(s, 'G');
for (const q of [{ type: 'join', room: 'pub-' }, { type: 'join', room: 'pub' }, { type: 'history', room: 'lobbyx' }, { type: 'typing', room: 'secret' }, { type: 'leave', room: 'secret' }, { type: 'join', room: 'lobby' }, { type: 'rooms' }])
  console.log(JSON.stringify(q), JSON.stringify(await g.request(q, null)).slice(0, 120));
const r = await s.stop(); console.log('exit', r.code); s.cleanup();
