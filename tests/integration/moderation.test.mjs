// Protocol 1.1, moderation: roles. A token's `role` claim ("mod": moderator
// in every room the token allows; "admin": everywhere) shows in
// welcome.user; any other value, and every guest, has none. A moderator
// deletes anyone's message in the rooms it moderates (never in a DM); an
// admin also in a DM of others, whose pair gets the `deleted`. Security
// cases first.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { sharedServer, guest, tokenUser, sleep } from './harness.mjs';

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
