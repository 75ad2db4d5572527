// Protocol 1.1 moderation in the browser (issue 14 part 4): a token with
// "role": "mod" or "admin" gets Delete on others' messages and Kick / Mute… /
// Unmute / Ban… on the members; the people removed, muted or banned see a
// notice with the time it ends, and a server-wide ban a page-wide one with
// no reconnects. Screenshots: tests/artifacts/moderation-*.png.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, launchBrowser, newPage, openChat, waitOnline, mintToken, artifact, sleep, T } from './helpers.mjs';

const SECRET = 'moderation-e2e-secret-0123456789abcdef';
let server, browser;
before(async () => {
  server = await startServer({ jwtSecret: SECRET });
  browser = await launchBrowser();
});
after(async () => {
  await browser?.close();
  await server?.cleanup();
});

// A page signed in with a token (the page takes it from #room&token=…).
async function tokenPage({ sub, name, role, room, rooms = '*', ...opts }) {
  const p = await newPage(browser, opts);
  p.sockets = 0;
  p.page.on('websocket', () => { p.sockets++; });
  const t = mintToken(SECRET, { sub, name, rooms, role });
  await p.page.goto(`${server.url}/#${room}&token=${t}`);
  await waitOnline(p.page);
  assert.doesNotMatch(p.page.url(), /token=/, 'the token leaves the address bar');
  return p;
}

async function guestPage({ name, room, ...opts }) {
  const p = await newPage(browser, opts);
  await openChat(p.page, server, { name, room });
  return p;
}

async function say(page, text) {
  const box = page.locator('#text');
  await box.fill(text);
  await box.press('Enter');
  await page.locator('#messages li.own:not(.unsent)', { hasText: text }).last().waitFor();
}

const member = (page, name) => page.locator('#members .member', { hasText: name });

async function modMenu(page, name, item) {
  await member(page, name).waitFor();
  await page.getByRole('button', { name: `Moderate ${name}` }).click();
  await page.getByRole('menuitem', { name: item }).click();
}

test('a moderator deletes another\'s message: both pages show the tombstone', async () => {
  const mod = await tokenPage({ sub: 'mod-1', name: 'Moe Derator', role: 'mod', room: 'mod-del' });
  const ben = await guestPage({ name: 'Ben', room: 'mod-del' });
  await say(ben.page, 'buy cheap watches here');
  await say(mod.page, 'a word from the moderator');
  const msg = mod.page.locator('#messages li', { hasText: 'buy cheap watches' });
  await msg.waitFor();
  await msg.hover();
  await mod.page.getByRole('button', { name: /^Actions for Ben’s message: buy cheap watches/ }).click();
  // Only Delete: edits stay the author's.
  assert.deepEqual(await mod.page.getByRole('menuitem').allTextContents(), ['Delete']);
  await mod.page.getByRole('menuitem', { name: 'Delete' }).click();
  await mod.page.locator('#confirm-title', { hasText: 'Delete Ben’s message?' }).waitFor();
  await mod.page.locator('#confirm-ok').click();
  for (const p of [mod.page, ben.page]) {
    await p.locator('#messages li.deleted .tombstone', { hasText: 'Message deleted' }).waitFor();
    assert.equal(await p.locator('#messages li', { hasText: 'buy cheap watches' }).count(), 0);
  }
  assert.match(await ben.page.locator('#live').textContent(), /Moe Derator deleted a message/);
  assert.deepEqual(mod.page.errors, []);
  assert.deepEqual(ben.page.errors, []);
  await mod.context.close();
  await ben.context.close();
});

test('a kick: the target sees a notice and the room as left, the member list updates, rejoining works', async () => {
  const mod = await tokenPage({ sub: 'mod-1', name: 'Moe Derator', role: 'mod', room: 'mod-kick' });
  const ben = await guestPage({ name: 'Ben', room: 'mod-kick' });
  await member(mod.page, 'Ben').waitFor();
  await mod.page.screenshot({ path: artifact('moderation-members-desktop-light.png') });
  await mod.page.getByRole('button', { name: 'Moderate Ben' }).click();
  assert.deepEqual(await mod.page.getByRole('menuitem').allTextContents(), ['Kick', 'Mute…', 'Unmute', 'Ban…']);
  await mod.page.screenshot({ path: artifact('moderation-menu-desktop-light.png') });
  await mod.page.getByRole('menuitem', { name: 'Kick' }).click();
  await mod.page.locator('.toast', { hasText: 'Ben was removed from #mod-kick.' }).waitFor();
  await member(mod.page, 'Ben').waitFor({ state: 'detached' });

  const notice = ben.page.locator('#room-notice');
  await notice.locator('text=You were removed from #mod-kick by a moderator.').waitFor();
  assert.equal(await ben.page.locator('#text').isDisabled(), true);
  assert.equal(await ben.page.locator('#members li').count(), 0, 'the room is left');
  await ben.page.screenshot({ path: artifact('moderation-removed-desktop-light.png') });

  await notice.getByRole('button', { name: 'Rejoin #mod-kick' }).click();
  await notice.waitFor({ state: 'hidden' });
  await member(mod.page, 'Ben').waitFor();
  assert.equal(await ben.page.locator('#text').isDisabled(), false);
  await say(ben.page, 'back again');
  // Kicked again: going to another room and back rejoins too.
  await modMenu(mod.page, 'Ben', 'Kick');
  await notice.locator('text=You were removed from #mod-kick').waitFor();
  await ben.page.evaluate(() => { location.hash = 'mod-kick-elsewhere'; });
  await ben.page.locator('#room-name', { hasText: 'mod-kick-elsewhere' }).waitFor();
  assert.equal(await notice.isHidden(), true);
  await ben.page.evaluate(() => { location.hash = 'mod-kick'; });
  await member(mod.page, 'Ben').waitFor();
  await notice.waitFor({ state: 'hidden' });
  assert.equal(await ben.page.locator('#text').isDisabled(), false);
  assert.equal(await ben.page.locator('#text').getAttribute('placeholder'), 'Message #mod-kick');
  assert.deepEqual(ben.page.errors, []);
  await mod.context.close();
  await ben.context.close();
});

test('a mute with a duration: the composer is off with the end time; after an unmute the next send works', async () => {
  const mod = await tokenPage({ sub: 'mod-1', name: 'Moe Derator', role: 'mod', room: 'mod-mute' });
  const ben = await guestPage({ name: 'Ben', room: 'mod-mute' });
  await modMenu(mod.page, 'Ben', 'Mute…');
  const dlg = mod.page.getByRole('dialog', { name: 'Mute Ben' });
  await dlg.waitFor();
  await dlg.getByLabel('10 minutes').check();
  await dlg.getByLabel(/^Reason/).fill('Cool down a little');
  const t0 = Date.now();
  await dlg.getByRole('button', { name: 'Mute', exact: true }).click();
  await dlg.waitFor({ state: 'hidden' });
  await mod.page.locator('.toast', { hasText: 'Ben is muted in #mod-mute for 10 minutes.' }).waitFor();

  // Ben writes: refused; the composer goes off with the end time.
  await ben.page.locator('#text').fill('can I still talk?');
  await ben.page.locator('#text').press('Enter');
  const notice = ben.page.locator('#room-notice');
  await notice.locator('text=You are muted in #mod-mute').waitFor();
  assert.equal(await ben.page.locator('#text').isDisabled(), true);
  const until = Date.parse(await notice.locator('time').getAttribute('datetime'));
  assert.ok(until >= t0 + 9.5 * 60000 && until <= Date.now() + 10.5 * 60000, `ends in ten minutes: ${new Date(until).toISOString()}`);
  const shown = await ben.page.evaluate((u) => new Intl.DateTimeFormat(undefined, { hour: 'numeric', minute: '2-digit' }).format(u), until);
  if (new Date(until).getDate() === new Date().getDate()) assert.equal(await notice.locator('time').textContent(), shown, 'local time');
  await ben.page.screenshot({ path: artifact('moderation-muted-desktop-light.png') });

  await modMenu(mod.page, 'Ben', 'Unmute');
  await mod.page.locator('.toast', { hasText: 'Ben can write in #mod-mute again.' }).waitFor();
  await notice.getByRole('button', { name: 'Try again' }).click();
  await notice.waitFor({ state: 'hidden' });
  assert.equal(await ben.page.locator('#text').isDisabled(), false);
  assert.equal(await ben.page.evaluate(() => document.activeElement.id), 'text');
  await say(ben.page, 'thanks, I will be nice');
  await mod.page.locator('#messages li', { hasText: 'thanks, I will be nice' }).waitFor();
  assert.deepEqual(mod.page.errors, []);
  assert.deepEqual(ben.page.errors, []);
  await mod.context.close();
  await ben.context.close();
});

test('a mute ends by itself when its time has passed', async () => {
  const mod = await tokenPage({ sub: 'mod-1', name: 'Moe Derator', role: 'mod', room: 'mod-mute2' });
  const ben = await newPage(browser);
  await ben.page.clock.install(); // time flows, and can be moved on
  await openChat(ben.page, server, { name: 'Ben', room: 'mod-mute2' });
  await modMenu(mod.page, 'Ben', 'Mute…');
  const dlg = mod.page.getByRole('dialog', { name: 'Mute Ben' });
  await dlg.getByLabel('10 minutes').check();
  await dlg.getByRole('button', { name: 'Mute', exact: true }).click();
  await dlg.waitFor({ state: 'hidden' });
  await ben.page.locator('#text').fill('hello?');
  await ben.page.locator('#text').press('Enter');
  await ben.page.locator('#room-notice', { hasText: 'You are muted' }).waitFor();
  await ben.page.clock.fastForward('09:00');
  await sleep(300);
  assert.equal(await ben.page.locator('#text').isDisabled(), true, 'still muted after nine minutes');
  await ben.page.clock.fastForward('01:30');
  await ben.page.locator('#room-notice').waitFor({ state: 'hidden', timeout: 5000 * T });
  assert.equal(await ben.page.locator('#text').isDisabled(), false);
  assert.match(await ben.page.locator('#live').textContent(), /You can write in #mod-mute2 again/);
  await mod.context.close();
  await ben.context.close();
});

test('a room ban: the target sees the notice; rejoining is refused with the end time', async () => {
  const mod = await tokenPage({ sub: 'mod-1', name: 'Moe Derator', role: 'mod', room: 'mod-ban' });
  const ben = await guestPage({ name: 'Ben', room: 'mod-ban' });
  await modMenu(mod.page, 'Ben', 'Ban…');
  const dlg = mod.page.getByRole('dialog', { name: 'Ban Ben' });
  await dlg.waitFor();
  assert.equal(await dlg.getByLabel('The whole server (every room)').isVisible(), false, 'a moderator bans in rooms only');
  await dlg.getByLabel('1 hour').check();
  await dlg.getByLabel(/^Reason/).fill('Spam links');
  const t0 = Date.now();
  await dlg.getByRole('button', { name: 'Ban', exact: true }).click();
  await dlg.waitFor({ state: 'hidden' });
  await member(mod.page, 'Ben').waitFor({ state: 'detached' });

  const notice = ben.page.locator('#room-notice');
  await notice.locator('text=You were removed from #mod-ban by a moderator.').waitFor();
  assert.match(await notice.textContent(), /Reason: Spam links/);
  await notice.getByRole('button', { name: 'Rejoin #mod-ban' }).click();
  await notice.locator('text=You are banned from #mod-ban').waitFor();
  const until = Date.parse(await notice.locator('time').getAttribute('datetime'));
  assert.ok(until >= t0 + 59 * 60000 && until <= Date.now() + 61 * 60000, `ends in an hour: ${new Date(until).toISOString()}`);
  assert.equal(await ben.page.locator('#text').isDisabled(), true);
  assert.equal(await member(mod.page, 'Ben').count(), 0);
  await ben.page.screenshot({ path: artifact('moderation-banned-room-desktop-light.png') });
  assert.deepEqual(ben.page.errors, []);
  await mod.context.close();
  await ben.context.close();
});

test('an admin bans from the whole server: a page-wide notice and no reconnect attempts', async () => {
  const admin = await tokenPage({ sub: 'admin-1', name: 'Ada Admin', role: 'admin', room: 'mod-server' });
  const cid = await tokenPage({ sub: 'user-cid', name: 'Cid', room: 'mod-server', colorScheme: 'dark' });
  assert.equal(cid.sockets, 1);
  await modMenu(admin.page, 'Cid', 'Ban…');
  const dlg = admin.page.getByRole('dialog', { name: 'Ban Cid' });
  await dlg.getByLabel('Until lifted').check();
  await dlg.getByLabel('The whole server (every room)').check();
  await admin.page.screenshot({ path: artifact('moderation-ban-dialog-desktop-light.png') });
  await dlg.getByRole('button', { name: 'Ban', exact: true }).click();
  await admin.page.locator('.toast', { hasText: 'Cid is banned from the server until you lift it.' }).waitFor();

  await cid.page.locator('#fatal').waitFor();
  assert.match(await cid.page.locator('#fatal').textContent(), /You can no longer use this chat/);
  assert.equal(await cid.page.evaluate(() => document.activeElement.closest('#fatal') !== null), true, 'the notice has the focus');
  await sleep(6000 * T);
  assert.equal(cid.sockets, 1, 'no reconnect after 1008 banned');
  await cid.page.screenshot({ path: artifact('moderation-banned-server-desktop-dark.png') });
  // Loaded again: the hello is refused; the same notice, one connection.
  await cid.page.reload();
  await cid.page.locator('#fatal').waitFor();
  await sleep(5000 * T);
  assert.equal(cid.sockets, 2, 'one connection for the reload, no retries');
  assert.deepEqual(cid.page.errors, []);
  await admin.context.close();
  await cid.context.close();
});

test('in a DM a moderator has no Delete on the other\'s messages and no member controls; an admin has Delete', async () => {
  const admin = await tokenPage({ sub: 'admin-1', name: 'Ada Admin', role: 'admin', room: 'mod-dm' });
  const mod = await tokenPage({ sub: 'mod-2', name: 'Max Mod', role: 'mod', room: 'mod-dm' });
  const ben = await guestPage({ name: 'Ben', room: 'mod-dm' });
  // Max and Ada start DMs with Ben; Ben answers in them.
  await mod.page.getByRole('button', { name: 'Send Ben a direct message' }).click();
  await mod.page.locator('#room-name', { hasText: 'Ben' }).waitFor();
  await say(mod.page, 'hi Ben');
  await admin.page.getByRole('button', { name: 'Send Ben a direct message' }).click();
  await admin.page.locator('#room-name', { hasText: 'Ben' }).waitFor();
  await say(admin.page, 'hi Ben, admin here');
  await ben.page.locator('#dms a', { hasText: 'Max Mod' }).click();
  await say(ben.page, 'hello Max');
  const theirs = mod.page.locator('#messages li', { hasText: 'hello Max' });
  await theirs.waitFor();
  assert.equal(await theirs.locator('.msg-menu-btn').count(), 0, 'a moderator has no power in DMs');
  assert.equal(await mod.page.locator('#messages li', { hasText: 'hi Ben' }).locator('.msg-menu-btn').count(), 1);
  assert.equal(await mod.page.locator('#members .mod-btn').count(), 0, 'no kick or mute in a DM');

  // Ada (admin) may delete Ben's message in their DM.
  await ben.page.locator('#dms a', { hasText: 'Ada Admin' }).click();
  await say(ben.page, 'something regrettable');
  const msg = admin.page.locator('#messages li', { hasText: 'something regrettable' });
  await msg.waitFor();
  await msg.hover();
  await admin.page.getByRole('button', { name: /^Actions for Ben’s message/ }).click();
  await admin.page.getByRole('menuitem', { name: 'Delete' }).click();
  await admin.page.locator('#confirm-ok').click();
  await ben.page.locator('#messages li.deleted .tombstone').waitFor();
  assert.equal(await admin.page.locator('#members .mod-btn').count(), 0, 'no kick or mute in a DM, admin or not');
  assert.deepEqual(admin.page.errors, []);
  await admin.context.close();
  await mod.context.close();
  await ben.context.close();
});

test('people without a role see none of the controls', async () => {
  const mod = await tokenPage({ sub: 'mod-1', name: 'Moe Derator', role: 'mod', room: 'mod-none' });
  const dana = await tokenPage({ sub: 'user-dana', name: 'Dana', role: 'owner', room: 'mod-none' });
  const ben = await guestPage({ name: 'Ben', room: 'mod-none' });
  await say(mod.page, 'from the moderator');
  await say(dana.page, 'from Dana');
  await say(ben.page, 'from Ben');
  for (const p of [dana.page, ben.page]) {
    await p.locator('#messages li', { hasText: 'from Ben' }).waitFor();
    await member(p, 'Moe Derator').waitFor();
    assert.equal(await p.locator('.mod-btn').count(), 0);
    assert.equal(await p.getByRole('button', { name: /^Moderate / }).count(), 0);
    // Menus on their own message only.
    assert.equal(await p.locator('#messages li:not(.own) .msg-menu-btn').count(), 0);
    assert.equal(await p.locator('#messages li.own .msg-menu-btn').count(), 1);
  }
  // The moderator: Delete on everyone's, the menu on every other member.
  await mod.page.locator('#messages li', { hasText: 'from Ben' }).waitFor();
  assert.equal(await mod.page.locator('#messages li .msg-menu-btn').count(), 3);
  await member(mod.page, 'Dana').waitFor();
  assert.equal(await mod.page.locator('#members .mod-btn').count(), 2);
  await mod.context.close();
  await dana.context.close();
  await ben.context.close();
});

test('the Mute dialog with the keyboard only: focus, labels, Escape, errors inline, back to the button', async () => {
  const mod = await tokenPage({ sub: 'mod-1', name: 'Moe Derator', role: 'mod', room: 'mod-keys' });
  const ben = await guestPage({ name: 'Ben', room: 'mod-keys' });
  const page = mod.page;
  const btn = page.getByRole('button', { name: 'Moderate Ben' });
  await btn.waitFor();
  await btn.focus();
  const active = () => page.evaluate(() => {
    const a = document.activeElement;
    return { tag: a.tagName, id: a.id, text: (a.labels && a.labels[0] ? a.labels[0].textContent : a.textContent).trim(), label: a.getAttribute('aria-label') };
  });
  await page.keyboard.press('Enter');
  assert.equal((await active()).text, 'Kick');
  await page.keyboard.press('ArrowDown');
  assert.equal((await active()).text, 'Mute…');
  await page.keyboard.press('Enter');
  const dlg = page.getByRole('dialog', { name: 'Mute Ben' });
  await dlg.waitFor();
  // The focus starts on the chosen duration (1 hour), a labelled radio.
  assert.deepEqual(await active(), { tag: 'INPUT', id: '', text: '1 hour', label: null });
  await page.keyboard.press('Escape');
  await dlg.waitFor({ state: 'hidden' });
  await page.waitForFunction(() => document.activeElement.getAttribute('aria-label') === 'Moderate Ben', null, { timeout: 2000 })
    .catch(() => {});
  assert.equal((await active()).label, 'Moderate Ben', 'Escape goes back to the button');

  // Again: a duration with the arrows, a reason too long, then a good one.
  await page.keyboard.press('Enter');
  await page.keyboard.press('ArrowDown');
  await page.keyboard.press('Enter');
  await dlg.waitFor();
  await page.keyboard.press('ArrowRight'); // 1 day
  assert.equal((await active()).text, '1 day');
  await page.keyboard.press('Tab');
  assert.equal((await active()).id, 'mod-reason');
  await page.keyboard.insertText('x'.repeat(201));
  await page.keyboard.press('Tab');
  assert.equal((await active()).text, 'Cancel');
  await page.keyboard.press('Tab');
  assert.equal((await active()).text, 'Mute');
  await page.keyboard.press('Enter');
  await page.locator('#mod-error', { hasText: 'use at most 200' }).waitFor();
  assert.equal((await active()).id, 'mod-reason', 'back to the field at fault');
  await page.screenshot({ path: artifact('moderation-mute-error-desktop-light.png') });
  await page.keyboard.press('Control+A');
  await page.keyboard.insertText('Please keep it civil');
  await page.keyboard.press('Shift+Tab');
  assert.equal((await active()).text, '1 day');
  await page.keyboard.press('Tab');
  await page.keyboard.press('Tab');
  await page.keyboard.press('Tab');
  assert.equal((await active()).text, 'Mute');
  await page.keyboard.press('Enter');
  await dlg.waitFor({ state: 'hidden' });
  await page.locator('.toast', { hasText: 'Ben is muted in #mod-keys for 1 day.' }).waitFor();
  await page.waitForFunction(() => document.activeElement.getAttribute('aria-label') === 'Moderate Ben', null, { timeout: 2000 })
    .catch(() => {});
  assert.equal((await active()).label, 'Moderate Ben', 'the focus is back on the button');
  // It took: Ben's typing is refused, and the notice shows.
  await ben.page.locator('#text').fill('typing something');
  await ben.page.locator('#room-notice', { hasText: 'You are muted in #mod-keys' }).waitFor();
  assert.deepEqual(page.errors, []);
  await mod.context.close();
  await ben.context.close();
});

test('screenshots: the dialog and the notices in dark and at phone width', async () => {
  const phone = { viewport: { width: 390, height: 760 }, isMobile: true, hasTouch: true };
  for (const colorScheme of ['light', 'dark']) {
    const room = `mod-shots-${colorScheme}`;
    const mod = await tokenPage({ sub: 'mod-1', name: 'Moe Derator', role: 'mod', room, colorScheme, ...phone });
    const ben = await guestPage({ name: 'Ben', room, colorScheme, ...phone });
    await say(ben.page, 'hello everyone');
    await mod.page.getByRole('button', { name: 'Rooms and people' }).click();
    await modMenu(mod.page, 'Ben', 'Mute…');
    const dlg = mod.page.getByRole('dialog', { name: 'Mute Ben' });
    await dlg.waitFor();
    await dlg.getByLabel(/^Reason/).fill('Off-topic for a while');
    await mod.page.screenshot({ path: artifact(`moderation-mute-dialog-phone-${colorScheme}.png`) });
    await dlg.getByRole('button', { name: 'Mute', exact: true }).click();
    await dlg.waitFor({ state: 'hidden' });
    await ben.page.locator('#text').fill('so anyway');
    await ben.page.locator('#room-notice', { hasText: 'You are muted' }).waitFor();
    await ben.page.screenshot({ path: artifact(`moderation-muted-phone-${colorScheme}.png`) });
    await mod.context.close();
    await ben.context.close();
  }
  const big = await tokenPage({ sub: 'mod-1', name: 'Moe Derator', role: 'mod', room: 'mod-shots-desk', colorScheme: 'dark' });
  const ben = await guestPage({ name: 'Ben', room: 'mod-shots-desk', colorScheme: 'dark' });
  await say(ben.page, 'a message to moderate');
  await modMenu(big.page, 'Ben', 'Ban…');
  await big.page.getByRole('dialog', { name: 'Ban Ben' }).waitFor();
  await big.page.screenshot({ path: artifact('moderation-ban-dialog-desktop-dark.png') });
  await big.page.getByRole('dialog', { name: 'Ban Ben' }).getByRole('button', { name: 'Ban', exact: true }).click();
  await ben.page.locator('#room-notice', { hasText: 'You were removed' }).waitFor();
  await ben.page.screenshot({ path: artifact('moderation-removed-desktop-dark.png') });
  await big.context.close();
  await ben.context.close();
});
