// dm_review.test.mjs -- defects found by the hostile review of direct
// messages (protocol 1.1 `dm`). Each test FAILS on the reviewed commit
// (6e16532) and states what the spec or the README promises. Loads are
// bounded in count and time and stay on loopback.
//
//   PARLEY_BIN=$PWD/build/parley node --test tests/reliability/dm_review.test.mjs
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { serverForTest, startServer, connect, mintToken, WebSocket, sleep, T } from '../integration/harness.mjs';

async function tokenConn(s, sub, name = sub, extra = {}) {
  const c = await connect(s.url);
  await c.hello({ token: mintToken({ sub, name, ...extra }) });
  return c;
}

/** A fresh guest connection that says hello, sends `dm` to `user`, waits for the answer, and goes. */
function guestDm(s, user) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(s.url, { perMessageDeflate: false });
    ws.on('error', reject);
    ws.on('open', () => ws.send(JSON.stringify({ type: 'hello', name: 'spam' })));
    ws.on('message', (d) => {
      const m = JSON.parse(d.toString());
      if (m.type === 'welcome') ws.send(JSON.stringify({ type: 'dm', user }));
      else if (m.type === 'joined' || m.type === 'error') {
        ws.terminate();
        resolve(m);
      }
    });
  });
}

async function guestDms(s, user, n) {
  for (let i = 0; i < n; i += 50)
    await Promise.all(Array.from({ length: Math.min(50, n - i) }, () => guestDm(s, user)));
}

// Defect 1. db_dm.c:sql_list orders a user's DM rooms by dm_rooms.created
// and stops at 1000 (DB_DM_LIST_MAX). Anyone may create a DM room with
// anyone seen, without a message and without the other user's consent: a
// fresh guest connection per `dm` costs nothing (1,100 of them took 0.7 s
// here). So any anonymous client pushes a user's real conversations out of
// its `rooms` listing -- and out of the page's sidebar, which is rebuilt
// from `rooms` after a reload. Spec: "`rooms` lists the user's DM rooms
// (with "peer": USER) as well, online or not."
test('a flood of empty DM rooms made by strangers does not hide a user\'s real conversation from rooms', { timeout: T(180000) }, async (t) => {
  const { s, clients } = await serverForTest(t, { args: ['--threads', '2', '--db-sync', 'normal'] });
  const victim = await tokenConn(s, 'victim', 'Victim');
  const friend = await tokenConn(s, 'friend', 'Friend');
  clients.push(victim, friend);
  const dm = await friend.request({ type: 'dm', user: 'victim' }, 'joined');
  assert.equal(dm.type, 'joined');
  await friend.say(dm.room, 'the real conversation');
  await guestDms(s, 'victim', 1100);
  const r = await victim.request({ type: 'rooms' }, 'rooms');
  assert.equal(r.type, 'rooms');
  t.diagnostic(`${r.rooms.length} rooms listed`);
  assert.ok(r.rooms.some((x) => x.name === dm.room),
    'the DM room with messages in it is listed after 1,100 strangers opened empty DM rooms with the user');
});

// Defect 2. --no-guest-dms is checked only in dm_prepare (a guest's `dm`)
// and db_dm_make (a `dm` to a guest). A DM room between a guest and a token
// user made before the flag was turned on (or by a guest that later
// resumes) stays fully usable by both: send, join and history are
// answered. README: "direct messages between token users only", and under
// "Who may use a DM room": "--no-guest-dms does [apply], both ways".
test('--no-guest-dms also closes DM rooms a guest already has (send, join, history), both ways', { timeout: T(60000) }, async (t) => {
  let s = await startServer({ args: ['--threads', '2'] });
  const db = s.dbPath;
  let g = await connect(s.url);
  await g.hello('guesty');
  const resume = g.welcome.resume;
  let tom = await tokenConn(s, 'tom', 'Tom');
  const d = await g.request({ type: 'dm', user: 'tom' }, 'joined');
  assert.equal(d.type, 'joined');
  g.terminate();
  tom.terminate();
  assert.equal((await s.stop()).code, 0);
  s = await startServer({ args: ['--threads', '2', '--no-guest-dms'], db, ownDir: true });
  t.after(async () => {
    g.terminate();
    tom.terminate();
    await s.stop();
    s.cleanup();
  });
  g = await connect(s.url);
  await g.hello({ name: 'guesty', resume });
  tom = await tokenConn(s, 'tom', 'Tom');
  const answers = [
    await g.request({ type: 'send', room: d.room, text: 'guest writes', client_id: 'g1' }, 'ack'),
    await g.request({ type: 'join', room: d.room }, 'joined'),
    await g.request({ type: 'history', room: d.room }, 'history'),
    await tom.request({ type: 'send', room: d.room, text: 'to the guest', client_id: 't1' }, 'ack'),
  ];
  t.diagnostic(answers.map((a) => a.code || a.type).join(', '));
  for (const a of answers) assert.equal(a.code, 'forbidden', `with --no-guest-dms a guest's DM room is closed: got ${JSON.stringify(a).slice(0, 120)}`);
});

// Defect 3. Guest ids ("g_" + 16 hex) and token subs share one namespace
// with nothing keeping them apart: a token whose sub is a guest's id is that
// user, and reads the guest's DMs (history, join, rooms) and writes in them.
// Spec: a guest's id is the server's ("a guest id is reusable only where the
// server offers a resume"); README: a guest that reconnects with `resume`
// is the same user, with the same DMs -- not anyone whose site account
// happens to be named like one.
test('a token user whose sub equals a guest id does not get the guest\'s DMs', { timeout: T(30000) }, async (t) => {
  const { s, clients } = await serverForTest(t, { args: ['--threads', '2'] });
  const g = await connect(s.url);
  await g.hello('guesty');
  const tom = await tokenConn(s, 'tom', 'Tom');
  clients.push(g, tom);
  const d = await g.request({ type: 'dm', user: 'tom' }, 'joined');
  await g.say(d.room, 'a private word to tom');
  // The fix: a token whose sub has a guest id's shape never gets a session
  // (unauthorized, closed 1008), so it can neither read nor list the room.
  const imp = await connect(s.url);
  clients.push(imp);
  imp.send({ type: 'hello', token: mintToken({ sub: g.user.id, name: 'Impostor' }) });
  const w = await imp.next((m) => m.type === 'welcome' || m.type === 'error');
  assert.deepEqual([w.type, w.code], ['error', 'unauthorized'], JSON.stringify(w));
  // A sub that only looks close (another length, upper-case hex) is an ordinary user.
  for (const sub of [g.user.id.toUpperCase(), `${g.user.id}0`, 'g_abc']) {
    const ok = await tokenConn(s, sub, 'Near');
    clients.push(ok);
    assert.equal(ok.user.id, sub);
    const h = await ok.request({ type: 'history', room: d.room }, 'history');
    assert.deepEqual([h.type, h.code], ['error', 'forbidden']);
  }
});

// Defect 4. The DM part of `rooms` (db_dm.c:sql_list) reads every DM room
// of the user, with a max(rev) subquery each, before ORDER BY created LIMIT
// 1000: its cost grows with all of the user's DM rooms, not with the 1,000
// it lists, and it runs on the one database thread. The read budget charges
// only the reply's bytes (about 120 KB), so a user with 10,000+ DM rooms
// (made for free, as in defect 1) asking `rooms` from a few connections keeps
// the database thread busy: every other user's ack waited ~200 ms instead of
// 0.2 ms here (15,000 DM rooms, 8 connections). README: the read budget
// exists so that "one asking for megabytes again and again" is limited.
test('rooms of a user with many DM rooms does not stall everyone\'s acks', { timeout: T(300000) }, async (t) => {
  const { s, clients } = await serverForTest(t, { args: ['--threads', '2', '--db-sync', 'normal'] });
  const bystander = await tokenConn(s, 'bystander', 'B');
  clients.push(bystander);
  await bystander.join('lobby');
  const hog0 = await tokenConn(s, 'hog', 'Hog');
  clients.push(hog0);
  await guestDms(s, 'hog', 10000);
  const lat = async (n) => {
    const xs = [];
    for (let i = 0; i < n; i++) {
      const a = process.hrtime.bigint();
      await bystander.say('lobby', `x${i}`);
      xs.push(Number(process.hrtime.bigint() - a) / 1e6);
      await sleep(110);
    }
    return xs.sort((a, b) => a - b)[Math.floor(n / 2)];
  };
  const base = await lat(10);
  const hogs = [hog0];
  for (let i = 0; i < 7; i++) hogs.push(await tokenConn(s, 'hog', 'Hog'));
  clients.push(...hogs);
  let stop = false;
  const loops = hogs.map(async (h) => {
    while (!stop) {
      for (let k = 0; k < 10; k++) h.send({ type: 'rooms' });
      await sleep(100);
    }
  });
  await sleep(1000);
  const busy = await lat(20);
  stop = true;
  await Promise.all(loops);
  t.diagnostic(`bystander ack p50: ${base.toFixed(1)} ms before, ${busy.toFixed(1)} ms while one user asks rooms`);
  assert.ok(busy < Math.max(T(50), base * 20), `ack p50 ${busy.toFixed(1)} ms under one user's rooms requests (was ${base.toFixed(1)} ms)`);
});
