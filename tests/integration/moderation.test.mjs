// Protocol 1.1, moderation: roles. A token's `role` claim ("mod": moderator
// in every room the token allows; "admin": everywhere) shows in
// welcome.user; any other value, and every guest, has none. A moderator
// deletes anyone's message in the rooms it moderates (never in a DM); an
// admin also in a DM of others, whose pair gets the `deleted`. Security
// cases first.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { sharedServer, serverForTest, startServer, guest, tokenUser, connect, mintToken, httpGet, sqlite, sleep } from './harness.mjs';

let srv;
const clients = sharedServer({ args: ['--rate', '100000', '--burst', '100000'] }, (s) => (srv = s));
let n = 0;
const room = (p) => `${p}-${++n}`;

async function tok(sub, name, extra = {}) {
  const c = await tokenUser(srv, { sub, name, ...extra });
  clients.push(c);
  return c;
}

async function gst(name) {
  const c = await guest(srv, name);
  clients.push(c);
  return c;
}

const del = (c, r, id) => c.request({ type: 'delete', room: r, id }, 'deleted');

async function refusedDelete(c, r, id, what) {
  const e = await del(c, r, id);
  assert.deepEqual([e.type, e.code], ['error', 'forbidden'], `${what}: ${JSON.stringify(e)}`);
}

async function dmRoom(c, user) {
  const j = await c.request({ type: 'dm', user }, 'joined');
  assert.equal(j.type, 'joined', JSON.stringify(j));
  return j.room;
}

test('security: no role, a made-up role, or a guest named like a role deletes only its own', async () => {
  const r = room('plain');
  const author = await tok(`author${n}`, 'Author');
  const plain = await tok(`plain${n}`, 'Plain');
  const owner = await tok(`owner${n}`, 'Owner', { role: 'owner' });
  const upper = await tok(`upper${n}`, 'Upper', { role: 'MOD' });
  const notStr = await tok(`arr${n}`, 'Arr', { role: ['admin'] });
  const g = await gst('admin');
  for (const c of [author, plain, owner, upper, notStr, g]) await c.join(r);
  const m = await author.say(r, 'keep me');
  for (const [c, what] of [[plain, 'no role'], [owner, 'role owner'], [upper, 'role MOD'], [notStr, 'role ["admin"]'], [g, 'guest named admin']])
    await refusedDelete(c, r, m.id, what);
  for (const c of [plain, owner, upper, notStr, g])
    assert.equal(c.user.role, undefined, `${c.user.name}: no role in welcome`);
  const h = await author.request({ type: 'history', room: r }, 'history');
  assert.equal(h.messages.find((x) => x.id === m.id).text, 'keep me');
});

test('security: a moderator acts only in the rooms its token allows, and never in a DM', async () => {
  const allowed = room('modroom'), other = room('notmod');
  const mod = await tok(`mod${n}`, 'Mod', { role: 'mod', rooms: [allowed] });
  const a = await tok(`alice${n}`, 'Alice');
  const b = await tok(`bob${n}`, 'Bob');
  assert.equal(mod.welcome.user.role, 'mod');
  await a.join(other);
  const m = await a.say(other, 'not yours to delete');
  const e = await del(mod, other, m.id);
  assert.deepEqual([e.type, e.code], ['error', 'forbidden'], 'a room the token does not allow');
  // A DM between a and b: the moderator is not one of the pair.
  const d = await dmRoom(a, b.user.id);
  const dmMsg = await a.say(d, 'private');
  await refusedDelete(mod, d, dmMsg.id, 'mod in a DM of others');
  // Nor in its own DM: a room moderator has no power in DMs.
  const md = await dmRoom(mod, a.user.id);
  const fromA = await a.say(md, 'to the mod');
  await refusedDelete(mod, md, fromA.id, 'mod in its own DM, the other\'s message');
  const h = await b.request({ type: 'history', room: d }, 'history');
  assert.equal(h.messages.find((x) => x.id === dmMsg.id).text, 'private');
});

test('a moderator deletes anyone\'s message in its rooms: members get deleted with by = the moderator', async () => {
  const r = room('moddel');
  const mod = await tok(`mod${n}`, 'Mod', { role: 'mod', rooms: [r, `${r}-x`] });
  const a = await tok(`alice${n}`, 'Alice');
  const watcher = await gst('Watcher');
  for (const c of [mod, a, watcher]) await c.join(r);
  const m = await a.say(r, 'spam spam spam');
  const d = await del(mod, r, m.id);
  assert.equal(d.type, 'deleted', JSON.stringify(d));
  assert.deepEqual(d.by, { id: mod.user.id, name: 'Mod' });
  const seen = await watcher.next((x) => x.type === 'deleted' && x.room === r);
  assert.deepEqual([seen.id, seen.rev, seen.by], [m.id, d.rev, d.by]);
  const h = await watcher.request({ type: 'history', room: r }, 'history');
  const t = h.messages.find((x) => x.id === m.id);
  assert.deepEqual([t.deleted, t.text], [true, '']);
  // Edits stay the author's alone, for moderators too.
  const m2 = await a.say(r, 'fine text');
  const e = await mod.request({ type: 'edit', room: r, id: m2.id, text: 'changed' }, 'edited');
  assert.deepEqual([e.type, e.code], ['error', 'forbidden']);
});

test('an admin deletes anywhere, also in a DM of two others: both users get deleted', async () => {
  const r = room('admindel');
  const admin = await tok(`admin${n}`, 'Admin', { role: 'admin', rooms: ['lobby'] });
  assert.equal(admin.welcome.user.role, 'admin');
  const a = await tok(`alice${n}`, 'Alice');
  const b = await tok(`bob${n}`, 'Bob');
  await a.join(r);
  const m = await a.say(r, 'bad');
  // An admin moderates every room, whatever its rooms claim says.
  const d = await del(admin, r, m.id);
  assert.equal(d.type, 'deleted', JSON.stringify(d));
  const dr = await dmRoom(a, b.user.id);
  const x = await a.say(dr, 'abuse in private');
  const dd = await del(admin, dr, x.id);
  assert.equal(dd.type, 'deleted', JSON.stringify(dd));
  assert.deepEqual(dd.by, { id: admin.user.id, name: 'Admin' });
  for (const c of [a, b]) {
    const got = await c.next((y) => y.type === 'deleted' && y.room === dr);
    assert.equal(got.id, x.id);
  }
  const h = await b.request({ type: 'history', room: dr }, 'history');
  assert.equal(h.messages.find((y) => y.id === x.id).deleted, true);
  // The admin is still not one of the pair: it cannot read or write there.
  const hr = await admin.request({ type: 'history', room: dr }, 'history');
  assert.deepEqual([hr.type, hr.code], ['error', 'forbidden']);
  const s = await admin.request({ type: 'send', room: dr, text: 'hi', client_id: 'adm1' }, 'ack');
  assert.deepEqual([s.type, s.code], ['error', 'forbidden']);
  await sleep(50);
});

// ---------------------------------------------------------------------------
// kick, mute, ban, unmute, unban

const mod = (c, obj) => c.request(obj, 'ok');

async function ok(c, obj) {
  const r = await mod(c, obj);
  assert.deepEqual([r.type, r.ref !== undefined], ['ok', true], `${JSON.stringify(obj)} answered ${JSON.stringify(r)}`);
  return r;
}

async function refusedMod(c, obj, code) {
  const r = await mod(c, obj);
  assert.deepEqual([r.type, r.code], ['error', code], `${JSON.stringify(obj)} answered ${JSON.stringify(r)}`);
  return r;
}

test('security: moderation needs a role in that room; a server-wide ban needs an admin; a guest named admin has none', async () => {
  const r = room('modsec'), other = room('modother');
  const plain = await tok(`plain${n}`, 'Plain');
  const m = await tok(`mod${n}`, 'Mod', { role: 'mod', rooms: [r] });
  const g = await gst('admin');
  const target = await tok(`target${n}`, 'Target');
  await target.join(r);
  for (const type of ['kick', 'mute', 'ban', 'unmute', 'unban']) {
    await refusedMod(plain, { type, room: r, user: target.user.id }, 'forbidden');
    await refusedMod(g, { type, room: r, user: target.user.id }, 'forbidden');
    await refusedMod(m, { type, room: other, user: target.user.id }, 'forbidden');
  }
  await refusedMod(m, { type: 'ban', user: target.user.id }, 'forbidden'); // server-wide: admins only
  await refusedMod(m, { type: 'unban', user: target.user.id }, 'forbidden');
  // Nothing happened to the target.
  const a = await target.say(r, 'still here');
  assert.ok(a.id > 0);
});

test('security: the hierarchy: a mod acts on no mod or admin, an admin on no other admin, online or offline (the role last welcomed)', async () => {
  const r = room('ranks');
  const m = await tok(`mod${n}`, 'Mod', { role: 'mod' });
  const m2 = await tok(`mod2${n}`, 'Mod2', { role: 'mod' });
  const a = await tok(`admin${n}`, 'Admin', { role: 'admin' });
  const a2 = await tok(`admin2${n}`, 'Admin2', { role: 'admin' });
  for (const c of [m, m2, a, a2]) await c.join(r);
  const refused = async (c, obj, why) => {
    const e = await refusedMod(c, obj, 'forbidden');
    assert.match(e.message, why, JSON.stringify(e));
  };
  for (const type of ['kick', 'mute', 'ban', 'unmute', 'unban']) {
    for (const target of [m2, a, m]) // m itself too
      await refused(m, { type, room: r, user: target.user.id }, /moderator may not act on a moderator or an admin/);
    await refused(a, { type, room: r, user: a2.user.id }, /admin may not act on another admin/);
  }
  await refused(a, { type: 'ban', user: a2.user.id }, /admin may not act on another admin/); // server-wide
  // Nothing happened: everyone still speaks there.
  for (const c of [m, m2, a, a2]) assert.ok((await c.say(r, 'still here')).id > 0);
  // A connection of a2 without the role, welcomed last (stored: none): its
  // admin connection, still open, keeps it out of a mod's reach.
  await tok(a2.user.id, 'Admin2');
  await refused(m, { type: 'mute', room: r, user: a2.user.id }, /moderator may not/);
  // Offline: the role stored at the last welcome counts.
  const offAdmin = await tok(`offadmin${n}`, 'OffAdmin', { role: 'admin' });
  const offMod = await tok(`offmod${n}`, 'OffMod', { role: 'mod' });
  offAdmin.close();
  offMod.close();
  await offAdmin.closed;
  await offMod.closed;
  await refused(m, { type: 'ban', room: r, user: offAdmin.user.id }, /moderator may not/);
  await refused(m, { type: 'mute', room: r, user: offMod.user.id }, /moderator may not/);
  await refused(a, { type: 'mute', room: r, user: offAdmin.user.id }, /admin may not/);
  // An admin acts on a mod, online and offline.
  await ok(a, { type: 'mute', room: r, user: m2.user.id, minutes: 5 });
  await ok(a, { type: 'mute', room: r, user: offMod.user.id, minutes: 5 });
  await ok(a, { type: 'unmute', room: r, user: m2.user.id });
  await ok(a, { type: 'unmute', room: r, user: offMod.user.id });
  // Welcomed again without the role (demoted): a mod may act on it now.
  const demoted = await tok(offMod.user.id, 'OffMod');
  assert.equal(demoted.user.role, undefined);
  await ok(m, { type: 'mute', room: r, user: demoted.user.id, minutes: 5 });
  // Every refusal stored nothing.
  const rows = sqlite(srv.dbPath, `SELECT count(*) AS n FROM sanctions WHERE user_id IN ('${m2.user.id}','${a.user.id}','${a2.user.id}','${offAdmin.user.id}')`);
  assert.deepEqual(rows, [{ n: 0 }]);
});

test('bad moderation fields: bad_request (minutes, user, reason, unknown room shapes); DM rooms: bad_request', async () => {
  const r = room('modbad');
  const admin = await tok(`admin${n}`, 'Admin', { role: 'admin' });
  const b = await tok(`bob${n}`, 'Bob');
  const bad = [
    { type: 'mute', room: r, user: 'x', minutes: 0 },
    { type: 'mute', room: r, user: 'x', minutes: 525601 },
    { type: 'mute', room: r, user: 'x', minutes: 1.5 },
    { type: 'mute', room: r, user: 'x', minutes: '5' },
    { type: 'ban', room: r, user: 'x', minutes: -1 },
    { type: 'kick', room: r, user: 'x', minutes: 5 },
    { type: 'unmute', room: r, user: 'x', minutes: 5 },
    { type: 'kick', room: r },
    { type: 'kick', room: r, user: '' },
    { type: 'kick', room: r, user: 7 },
    { type: 'kick', room: r, user: 'x'.repeat(129) },
    { type: 'kick', room: r, user: 'x', reason: 'r'.repeat(201) },
    { type: 'kick', room: r, user: 'x', reason: 5 },
    { type: 'kick', user: 'x' },
    { type: 'mute', user: 'x' },
  ];
  for (const obj of bad) await refusedMod(admin, obj, 'bad_request');
  await refusedMod(admin, { type: 'kick', room: 'Bad Room', user: 'x' }, 'bad_room');
  const d = await dmRoom(admin, b.user.id);
  for (const type of ['kick', 'mute', 'ban', 'unmute', 'unban'])
    await refusedMod(admin, { type, room: d, user: b.user.id }, 'bad_request');
  // The limits themselves are taken.
  await ok(admin, { type: 'mute', room: r, user: 'x', minutes: 525600, reason: 'r'.repeat(200) });
  await ok(admin, { type: 'unmute', room: r, user: 'x' });
});

test('mute: send, edit and typing are forbidden with sanction mute and until; join, history and read still work; unmute lifts it', async () => {
  const r = room('mute');
  const m = await tok(`mod${n}`, 'Mod', { role: 'mod' });
  const u = await tok(`user${n}`, 'User');
  await u.join(r);
  const before = await u.say(r, 'before the mute');
  const t0 = Date.now();
  await ok(m, { type: 'mute', room: r, user: u.user.id, minutes: 10, reason: 'calm down' });
  const s = await u.request({ type: 'send', room: r, text: 'x', client_id: `mu${n}` }, 'ack');
  assert.deepEqual([s.type, s.code, s.sanction], ['error', 'forbidden', 'mute'], JSON.stringify(s));
  assert.ok(s.until >= t0 + 10 * 60000 - 1000 && s.until <= Date.now() + 10 * 60000 + 1000, `until ${s.until}`);
  const e = await u.request({ type: 'edit', room: r, id: before.id, text: 'y' }, 'edited');
  assert.deepEqual([e.type, e.code, e.until, e.sanction], ['error', 'forbidden', s.until, 'mute']);
  const ty = await u.request({ type: 'typing', room: r }, 'error');
  assert.deepEqual([ty.type, ty.code, ty.sanction], ['error', 'forbidden', 'mute'], 'a muted typing is answered, not dropped');
  // Another room is not muted.
  await u.join(`${r}-x`);
  assert.ok((await u.say(`${r}-x`, 'elsewhere')).id > 0);
  // Reading still works.
  const h = await u.request({ type: 'history', room: r }, 'history');
  assert.equal(h.type, 'history');
  const rd = await u.request({ type: 'read', room: r, id: before.id }, 'read');
  assert.equal(rd.type, 'read');
  // A second connection of the same user is muted too.
  const u2 = await tok(u.user.id, 'User');
  await u2.join(r);
  const s2 = await u2.request({ type: 'send', room: r, text: 'x', client_id: `mu2${n}` }, 'ack');
  assert.equal(s2.code, 'forbidden');
  await ok(m, { type: 'unmute', room: r, user: u.user.id });
  assert.ok((await u.say(r, 'after the unmute')).id > 0);
  // Unmuting again is still ok (nothing to lift).
  await ok(m, { type: 'unmute', room: r, user: u.user.id });
});

test('kick: the target\'s connections get removed and leave; members see presence leave; it may join again', async () => {
  const r = room('kick');
  const m = await tok(`mod${n}`, 'Mod', { role: 'mod' });
  const u = await tok(`user${n}`, 'User');
  const u2 = await tok(u.user.id, 'User');
  const w = await gst('Watcher');
  for (const c of [m, u, u2, w]) await c.join(r);
  await ok(m, { type: 'kick', room: r, user: u.user.id, reason: 'off topic' });
  for (const c of [u, u2]) {
    const got = await c.next((x) => x.type === 'removed');
    assert.deepEqual(got, { type: 'removed', room: r, reason: 'off topic' });
  }
  await w.next((x) => x.type === 'presence' && x.room === r && x.event === 'leave' && x.user.id === u.user.id);
  const s = await u.request({ type: 'send', room: r, text: 'x', client_id: `k${n}` }, 'ack');
  assert.deepEqual([s.type, s.code], ['error', 'not_member']);
  await u.join(r); // a kick is not a ban
  assert.ok((await u.say(r, 'back')).id > 0);
});

test('room ban: removed, then join/send/history/read/search there are forbidden with sanction ban and until; other rooms fine; unban lifts it', async () => {
  const r = room('ban');
  const m = await tok(`mod${n}`, 'Mod', { role: 'mod' });
  const u = await tok(`user${n}`, 'User');
  await u.join(r);
  const msg = await u.say(r, 'findable banword');
  await m.join(r);
  await ok(m, { type: 'ban', room: r, user: u.user.id, minutes: 60, reason: 'spam' });
  const got = await u.next((x) => x.type === 'removed');
  assert.deepEqual(got, { type: 'removed', room: r, reason: 'spam' });
  for (const obj of [
    { type: 'join', room: r }, { type: 'history', room: r }, { type: 'read', room: r, id: msg.id },
    { type: 'send', room: r, text: 'x', client_id: `b${n}` }, { type: 'search', q: 'banword', room: r },
  ]) {
    const e = await u.request(obj, 'never');
    assert.deepEqual([e.type, e.code, e.sanction], ['error', 'forbidden', 'ban'], `${obj.type}: ${JSON.stringify(e)}`);
    assert.ok(e.until > Date.now() + 50 * 60000, `${obj.type}: until ${e.until}`);
  }
  // A search of all rooms leaves the room out.
  const all = await u.request({ type: 'search', q: 'banword' }, 'search');
  assert.deepEqual(all.messages, [], JSON.stringify(all));
  const seen = await m.request({ type: 'search', q: 'banword' }, 'search');
  assert.deepEqual(seen.messages.map((x) => x.id), [msg.id]);
  await u.join(`${r}-x`);
  await ok(m, { type: 'unban', room: r, user: u.user.id });
  await u.join(r);
  assert.ok((await u.say(r, 'back')).id > 0);
});

test('a ban without minutes has sanction ban and no until; it holds for new connections of the user', async () => {
  const r = room('banforever');
  const m = await tok(`mod${n}`, 'Mod', { role: 'mod' });
  const u = await tok(`user${n}`, 'User');
  await ok(m, { type: 'ban', room: r, user: u.user.id });
  const u2 = await tok(u.user.id, 'User');
  const e = await u2.request({ type: 'join', room: r }, 'joined');
  assert.deepEqual([e.type, e.code, e.sanction, 'until' in e], ['error', 'forbidden', 'ban', false], JSON.stringify(e));
});

test('server-wide ban (admin): the user\'s connections close with 1008 banned; hello is refused; unban lets it back', async () => {
  const admin = await tok(`admin${n}`, 'Admin', { role: 'admin' });
  const u = await tok(`user${n}`, 'User');
  const u2 = await tok(u.user.id, 'User');
  await ok(admin, { type: 'ban', user: u.user.id, reason: 'abuse' });
  for (const c of [u, u2]) {
    const ci = await c.closed;
    assert.deepEqual([ci.code, ci.reason], [1008, 'banned']);
  }
  await assert.rejects(tokenUser(srv, { sub: u.user.id, name: 'User' }), /unauthorized/);
  await ok(admin, { type: 'unban', user: u.user.id });
  const back = await tok(u.user.id, 'User');
  assert.equal(back.user.id, u.user.id);
});

test('mutes and bans survive a restart; every action is in mod_log (who, whom, what, where, why, until)', async (t) => {
  let s = await startServer({ args: ['--rate', '1000', '--burst', '1000'] });
  const cs = [];
  t.after(async () => {
    for (const c of cs) c.terminate();
    await s.stop();
    s.cleanup();
  });
  const u = async (claims) => { const c = await tokenUser(s, claims); cs.push(c); return c; };
  const admin = await u({ sub: 'boss', name: 'Boss', role: 'admin' });
  await admin.request({ type: 'mute', room: 'r1', user: 'pat', minutes: 30, reason: 'too loud' }, 'ok');
  await admin.request({ type: 'ban', room: 'r2', user: 'pat' }, 'ok');
  await admin.request({ type: 'ban', user: 'sam', reason: 'spam bot' }, 'ok');
  await admin.request({ type: 'kick', room: 'r1', user: 'kim' }, 'ok');
  for (const c of cs.splice(0)) c.terminate();
  s = await s.restart();
  const pat = await u({ sub: 'pat', name: 'Pat' });
  await pat.join('r1');
  const e = await pat.request({ type: 'send', room: 'r1', text: 'x', client_id: 'p1' }, 'ack');
  assert.deepEqual([e.type, e.code], ['error', 'forbidden'], 'the mute survived');
  const j = await pat.request({ type: 'join', room: 'r2' }, 'joined');
  assert.deepEqual([j.type, j.code], ['error', 'forbidden'], 'the room ban survived');
  await assert.rejects(tokenUser(s, { sub: 'sam', name: 'Sam' }), /unauthorized/, 'the server-wide ban survived');
  const log = sqlite(s.dbPath, 'SELECT actor, actor_name, action, target, room, reason, until IS NOT NULL AS timed FROM mod_log ORDER BY id');
  assert.deepEqual(log.map((x) => [x.actor, x.actor_name, x.action, x.target, x.room, x.reason, x.timed]), [
    ['boss', 'Boss', 'mute', 'pat', 'r1', 'too loud', 1],
    ['boss', 'Boss', 'ban', 'pat', 'r2', null, 0],
    ['boss', 'Boss', 'ban', 'sam', null, 'spam bot', 0],
    ['boss', 'Boss', 'kick', 'kim', 'r1', null, 0],
  ]);
});

test('--threads 2: a kick and a server-wide ban reach the user\'s connections on both loops', async (t) => {
  const { s, clients } = await serverForTest(t, { args: ['--threads', '2', '--rate', '1000', '--burst', '1000'] });
  const admin = await tokenUser(s, { sub: 'adm', name: 'Adm', role: 'admin' });
  clients.push(admin);
  const targets = [];
  for (let i = 0; i < 6; i++) {
    const c = await tokenUser(s, { sub: 'tgt', name: 'Tgt' });
    clients.push(c);
    await c.join('both');
    targets.push(c);
  }
  const r = await httpGet(`${s.http}/metrics`);
  const per = [...r.body.matchAll(/^parley_loop_connections\{loop="(\d+)"\} (\d+)$/gm)].map((m) => Number(m[2]));
  assert.ok(per.length === 2 && per.every((n) => n > 0), `connections on both loops: ${per}`);
  await admin.request({ type: 'kick', room: 'both', user: 'tgt' }, 'ok');
  for (const c of targets) assert.equal((await c.next((m) => m.type === 'removed')).room, 'both');
  await admin.request({ type: 'ban', user: 'tgt' }, 'ok');
  for (const c of targets) assert.deepEqual(Object.values(await c.closed), [1008, 'banned']);
});
