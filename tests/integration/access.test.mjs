// Rooms kept away from guests (review item 7): with --guest-rooms, guests
// may use only the rooms it names; token users are judged by their token's
// rooms claim alone; `rooms` never lists a room the asker may not join.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connect, guest, tokenUser, mintToken, runParley, sharedServer } from './harness.mjs';

let srv;
const clients = sharedServer({ args: ['--guest-rooms', 'lobby, public-*'] }, (s) => (srv = s));
const keep = (c) => (clients.push(c), c);

const names = (r) => r.rooms.map((x) => x.name).sort();

test('a guest gets forbidden for join, history and send in a room --guest-rooms does not name', async () => {
  const staff = keep(await tokenUser(srv, { sub: 'staff-1', name: 'Staff' }));
  await staff.join('staff');
  await staff.say('staff', 'internal note');
  const g = keep(await guest(srv, 'visitor'));
  for (const req of [
    { type: 'join', room: 'staff' },
    { type: 'history', room: 'staff' },
    { type: 'send', room: 'staff', text: 'hi', client_id: 'g1' },
    { type: 'join', room: 'public' }, // the pattern is public-*, not public*
    { type: 'join', room: 'lobby2' },
  ]) {
    const r = await g.request(req, req.type === 'send' ? 'ack' : req.type === 'join' ? 'joined' : 'history');
    assert.deepEqual([r.type, r.code], ['error', 'forbidden'], `${JSON.stringify(req)} answered ${JSON.stringify(r)}`);
  }
  // The rooms it may use work as before.
  assert.equal((await g.join('lobby')).room, 'lobby');
  assert.equal((await g.join('public-talk')).room, 'public-talk');
  await g.say('public-talk', 'hello');
  const h = await g.request({ type: 'history', room: 'lobby' }, 'history');
  assert.equal(h.type, 'history');
});

test("`rooms` shows a guest only the rooms it may join; a token user sees them all", async () => {
  const t = keep(await tokenUser(srv, { sub: 'staff-2', name: 'Staff Two' }));
  await t.join('backoffice');
  await t.join('lobby');
  const g = keep(await guest(srv, 'lister'));
  const gr = await g.request({ type: 'rooms' }, 'rooms');
  assert.ok(names(gr).includes('lobby'), JSON.stringify(gr));
  assert.ok(!names(gr).includes('backoffice'), JSON.stringify(gr));
  for (const n of names(gr)) assert.ok(n === 'lobby' || n.startsWith('public-'), n);
  const tr = await t.request({ type: 'rooms' }, 'rooms');
  assert.ok(names(tr).includes('backoffice') && names(tr).includes('lobby'), JSON.stringify(tr));
});

test("a token with a rooms claim never sees rooms outside its claim in `rooms`", async () => {
  const other = keep(await tokenUser(srv, { sub: 'other', name: 'Other' }));
  await other.join('finance');
  await other.join('support');
  const narrow = keep(await tokenUser(srv, { sub: 'narrow', name: 'Narrow', rooms: ['support', 'lobby'] }));
  const r = await narrow.request({ type: 'rooms' }, 'rooms');
  assert.ok(names(r).includes('support'), JSON.stringify(r));
  for (const n of names(r)) assert.ok(n === 'support' || n === 'lobby', `listed ${n}`);
  // A token user is not bound by --guest-rooms.
  const wide = keep(await tokenUser(srv, { sub: 'wide', name: 'Wide', rooms: '*' }));
  assert.ok(names(await wide.request({ type: 'rooms' }, 'rooms')).includes('finance'));
});

test('a bad --guest-rooms value is refused at start (exit 2)', async () => {
  for (const v of ['', ',', 'Lobby', 'a*b', 'bad room', '*x', '-x', 'ok,,']) {
    const r = await runParley(['--guest-rooms', v, '--port', '1']);
    assert.equal(r.code, 2, `--guest-rooms '${v}': exit ${r.code}; ${r.stderr}`);
    const e = await runParley(['--port', '1'], { env: { PARLEY_GUEST_ROOMS: v } });
    assert.equal(e.code, 2, `PARLEY_GUEST_ROOMS='${v}': exit ${e.code}; ${e.stderr}`);
  }
});
