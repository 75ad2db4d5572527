// Protocol 1.1 in the browser, edits and deletes: editing and deleting
// your own messages (the message menu, the Up arrow, Escape, a
// confirmation, the tombstone), other people's edits and deletes live and
// after a reconnect (`updates`), keyboard-only use, and refusals shown in a
// live region. (Direct messages are not on the server yet; their tests
// wait on the wt-web-dm branch.)
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { serverAndBrowser, newPage, openChat, waitOnline, reconnectNow, WsClient, allMessages, T } from './helpers.mjs';

const env = serverAndBrowser();

// Sends from the composer and waits for the confirmed message.
async function say(page, text) {
  const box = page.locator('#text');
  await box.fill(text);
  await box.press('Enter');
  await page.locator('#messages li.own:not(.unsent)', { hasText: text }).last().waitFor();
}

const msg = (page, text) => page.locator('#messages li', { hasText: text });

test('edit with the menu and with the Up arrow, delete with a confirmation; the other side sees it live', async () => {
  const a = await newPage(env.browser);
  const b = await newPage(env.browser);
  await openChat(a.page, env.server, { name: 'Eli', room: 'edits' });
  await openChat(b.page, env.server, { name: 'Fay', room: 'edits' });
  await say(a.page, 'Lunch at noon?');

  // The menu: a button with a label, a popup menu with Edit and Delete.
  const first = msg(a.page, 'Lunch at noon?');
  await first.hover();
  const menuBtn = first.getByRole('button', { name: /^Actions for your message: Lunch at noon\?/ });
  assert.equal(await menuBtn.getAttribute('aria-haspopup'), 'menu');
  await menuBtn.click();
  assert.equal(await menuBtn.getAttribute('aria-expanded'), 'true');
  await a.page.getByRole('menuitem', { name: 'Edit' }).click();
  const box = a.page.getByRole('textbox', { name: 'Edit your message' });
  assert.equal(await box.inputValue(), 'Lunch at noon?');
  await box.fill('Lunch at 12:30?');
  await box.press('Enter');
  const edited = msg(a.page, 'Lunch at 12:30?');
  await edited.locator('.edited', { hasText: '(edited)' }).waitFor();
  assert.equal(await edited.locator('.text').textContent(), 'Lunch at 12:30?');
  assert.match(await edited.locator('.edited').getAttribute('title'), /^Edited /);
  await msg(b.page, 'Lunch at 12:30?').locator('.edited').waitFor();
  assert.equal(await msg(b.page, 'Lunch at noon?').count(), 0);
  assert.equal(await msg(b.page, 'Lunch at 12:30?').getByRole('button', { name: /^Actions/ }).count(), 0, 'no menu on others\' messages');

  // Up in the empty composer edits the last own message; Escape cancels.
  await say(a.page, 'See you thre');
  const text = a.page.locator('#text');
  await text.focus();
  await text.press('ArrowUp');
  assert.equal(await box.inputValue(), 'See you thre');
  await box.fill('something else entirely');
  await box.press('Escape');
  assert.equal(await box.count(), 0);
  assert.equal(await msg(a.page, 'See you thre').locator('.text').textContent(), 'See you thre');
  assert.equal(await a.page.evaluate(() => document.activeElement.id), 'text', 'focus back in the composer');
  await text.press('ArrowUp');
  await box.fill('See you there');
  await box.press('Enter');
  await msg(a.page, 'See you there').locator('.edited').waitFor();
  assert.equal(await a.page.evaluate(() => document.activeElement.id), 'text');
  await msg(b.page, 'See you there').locator('.edited').waitFor();
  // Shift+Enter is a new line in the editor.
  await text.press('ArrowUp');
  await box.press('End');
  await box.press('Shift+Enter');
  await box.pressSequentially('(bring the slides)');
  await box.press('Enter');
  await msg(a.page, 'bring the slides').locator('.edited').waitFor();
  assert.equal(await msg(a.page, 'bring the slides').locator('.text').textContent(), 'See you there\n(bring the slides)');

  // Delete: asked first; Cancel keeps it.
  const target = msg(a.page, 'Lunch at 12:30?');
  await target.hover();
  await target.getByRole('button', { name: /^Actions for your message/ }).click();
  await a.page.getByRole('menuitem', { name: 'Delete' }).click();
  const dialog = a.page.getByRole('dialog', { name: 'Delete this message?' });
  await dialog.waitFor();
  assert.equal(await dialog.locator('#confirm-quote').textContent(), 'Lunch at 12:30?');
  await dialog.getByRole('button', { name: 'Cancel' }).click();
  await dialog.waitFor({ state: 'hidden' });
  assert.equal(await target.locator('.tombstone').count(), 0);
  // Focus goes back to the menu button (one task after the dialog closes).
  await a.page.waitForFunction(() => /^Actions for your message: Lunch/.test(document.activeElement?.getAttribute('aria-label') || ''),
    null, { timeout: 5000 * T });
  await a.page.keyboard.press('Enter');
  await a.page.getByRole('menuitem', { name: 'Delete' }).click();
  await dialog.getByRole('button', { name: 'Delete' }).click();

  // The tombstone: same place, text gone, no menu; the same for Fay.
  for (const page of [a.page, b.page]) {
    const t = page.locator('#messages li.deleted');
    await t.locator('.tombstone', { hasText: 'Message deleted' }).waitFor();
    assert.equal(await t.locator('.text').textContent(), '');
    assert.equal(await page.locator('#messages').getByText('Lunch at', { exact: false }).count(), 0);
    assert.equal(await page.locator('#messages li').first().locator('.tombstone').count(), 1, 'in place, first');
  }
  assert.equal(await a.page.locator('#messages li.deleted').getByRole('button', { name: /^Actions/ }).count(), 0);
  const hist = await allMessages(env.server, 'edits');
  assert.equal(hist[0].deleted, true);
  assert.equal(hist[0].text, '');
  assert.equal(hist[1].text, 'See you there\n(bring the slides)');
  assert.ok(hist[1].edited_ts > 0);
  // Up skips the deleted one, and after a reload the state is the same.
  await a.page.reload();
  await waitOnline(a.page);
  await a.page.locator('#messages li.deleted .tombstone').waitFor();
  await msg(a.page, 'bring the slides').locator('.edited').waitFor();
  assert.deepEqual(a.page.errors, []);
  assert.deepEqual(b.page.errors, []);
  await a.context.close();
  await b.context.close();
});

test('another person\'s edit and delete appear live, and while away they arrive through `updates`', async () => {
  const gus = await WsClient.connect(env.server.wsUrl, { name: 'Gus' });
  await gus.join('live');
  const acks = await gus.sendAll('live', ['first draft', 'a typo here', 'will be gone']);
  const { context, page } = await newPage(env.browser);
  // Between the page and the server: while `blocked`, connections are refused.
  let blocked = false;
  const open = [];
  await page.routeWebSocket(/\/ws$/, (ws) => {
    if (blocked) {
      ws.close({ code: 1013, reason: 'try again later' });
      return;
    }
    const srv = ws.connectToServer();
    open.push({ ws, srv });
    ws.onMessage((d) => srv.send(d));
    srv.onMessage((d) => ws.send(d));
  });
  const joins = [];
  page.on('websocket', (w) => {
    w.on('framesent', (f) => { if (String(f.payload).includes('"type":"join"')) joins.push(JSON.parse(String(f.payload))); });
    w.on('framereceived', (f) => { if (String(f.payload).startsWith('{"type":"joined"')) joins.push(JSON.parse(String(f.payload))); });
  });
  await openChat(page, env.server, { name: 'Hal', room: 'live' });
  await msg(page, 'will be gone').waitFor();

  gus.send({ type: 'edit', room: 'live', id: acks[0].id, text: 'final text' });
  gus.send({ type: 'delete', room: 'live', id: acks[2].id });
  await msg(page, 'final text').locator('.edited').waitFor();
  await page.locator('#messages li.deleted .tombstone').waitFor();
  assert.equal(await msg(page, 'will be gone').count(), 0);
  assert.match(await page.locator('#live').textContent(), /Gus edited a message: final text/);
  assert.match(await page.locator('#live').textContent(), /Gus deleted a message/);

  // Away: the connection drops and cannot come back for a while.
  blocked = true;
  for (const { ws, srv } of open.splice(0)) {
    ws.close({ code: 1013, reason: 'slow consumer' });
    srv.close();
  }
  await page.locator('#conn:not([data-state="online"])').waitFor();
  gus.send({ type: 'edit', room: 'live', id: acks[1].id, text: 'no typo here' });
  await gus.next((m) => m.type === 'edited' && m.id === acks[1].id);
  gus.send({ type: 'delete', room: 'live', id: acks[0].id });
  await gus.next((m) => m.type === 'deleted' && m.id === acks[0].id);
  await gus.sendAll('live', ['said while away']);
  assert.equal(await msg(page, 'a typo here').count(), 1, 'not yet');
  blocked = false;
  await reconnectNow(page);
  await msg(page, 'said while away').waitFor();
  await msg(page, 'no typo here').locator('.edited').waitFor();
  assert.equal(await page.locator('#messages li.deleted').count(), 2);
  assert.equal(await msg(page, 'a typo here').count(), 0);
  assert.equal(await msg(page, 'final text').count(), 0);
  assert.deepEqual(await page.$$eval('#messages li', (lis) => lis.map((li) => li.classList.contains('deleted') ? '(deleted)' : li.querySelector('.text').textContent)),
    ['(deleted)', 'no typo here', '(deleted)', 'said while away']);
  // The rejoin asked for what changed since the last change seen (a rev),
  // and the answer carried the older messages' new state in `updates`.
  const rejoin = joins.filter((j) => j.type === 'join' && j.room === 'live' && j.since != null).pop();
  assert.ok(rejoin, 'rejoined with since');
  const answer = joins.filter((j) => j.type === 'joined' && j.room === 'live').pop();
  assert.deepEqual((answer.updates || []).map((u) => u.id).sort(), [acks[0].id, acks[1].id].sort());
  assert.ok(rejoin.since > acks[2].id, 'since counts the delete (a rev), not only message ids');
  gus.close();
  assert.deepEqual(page.errors, []);
  await context.close();
});

test('keyboard only: the menu, editing, deleting, and where focus goes', async () => {
  const { context, page } = await newPage(env.browser);
  await openChat(page, env.server, { name: 'Ivy', room: 'keys' });
  const text = page.locator('#text');
  await text.focus();
  for (const t of ['one', 'two']) {
    await page.keyboard.type(t);
    await page.keyboard.press('Enter');
    await page.locator('#messages li.own:not(.unsent)', { hasText: t }).waitFor();
  }
  // Shift+Tab from the composer reaches the last message's menu button.
  await page.keyboard.press('Shift+Tab');
  const focused = () => page.evaluate(() => {
    const e = document.activeElement;
    return { label: e.getAttribute('aria-label') || '', role: e.getAttribute('role') || '', text: e.textContent, expanded: e.getAttribute('aria-expanded') };
  });
  assert.match((await focused()).label, /^Actions for your message: two/);
  await page.keyboard.press('Enter');
  assert.deepEqual(await focused(), { label: '', role: 'menuitem', text: 'Edit', expanded: null });
  await page.keyboard.press('Escape');
  let f = await focused();
  assert.match(f.label, /^Actions for your message: two/);
  assert.equal(f.expanded, 'false');
  assert.equal(await page.locator('[role="menu"]').count(), 0);
  // Edit: Enter opens the menu on Edit, Enter picks it, Enter saves.
  await page.keyboard.press('Enter');
  await page.keyboard.press('Enter');
  assert.equal(await page.evaluate(() => document.activeElement.getAttribute('aria-label')), 'Edit your message');
  await page.keyboard.press('End');
  await page.keyboard.type(' (fixed)');
  await page.keyboard.press('Enter');
  await msg(page, 'two (fixed)').locator('.edited').waitFor();
  assert.match((await focused()).label, /^Actions for your message: two \(fixed\)/, 'focus back on the menu button');
  // Delete: ArrowDown to Delete, the dialog starts on Cancel, Tab to Delete.
  await page.keyboard.press('Enter');
  await page.keyboard.press('ArrowDown');
  assert.equal((await focused()).text, 'Delete');
  await page.keyboard.press('Enter');
  await page.getByRole('dialog', { name: 'Delete this message?' }).waitFor();
  assert.equal((await focused()).text, 'Cancel');
  await page.keyboard.press('Escape');
  // The dialog's close event (which puts focus back) comes a task later.
  await page.getByRole('dialog', { name: 'Delete this message?' }).waitFor({ state: 'hidden' });
  // Until focus lands somewhere other than the closing dialog (or the body);
  // the assertion below then says whether it landed on the menu button.
  await page.waitForFunction(() => {
    const a = document.activeElement;
    return a && a !== document.body && !a.closest('dialog');
  }, null, { timeout: 5000 }).catch(() => {});
  assert.match((await focused()).label, /^Actions for your message: two/, 'Escape cancels, focus back');
  assert.equal(await page.locator('#messages li.deleted').count(), 0);
  await page.keyboard.press('ArrowDown'); // opens the menu too
  await page.keyboard.press('ArrowDown');
  await page.keyboard.press('Enter');
  await page.keyboard.press('Tab');
  assert.equal((await focused()).text, 'Delete');
  await page.keyboard.press('Enter');
  await page.locator('#messages li.deleted .tombstone').waitFor();
  assert.equal(await page.evaluate(() => document.activeElement.id), 'text', 'focus in the composer after a delete');
  // Up now edits "one", the last one not deleted.
  await page.keyboard.press('ArrowUp');
  assert.equal(await page.getByRole('textbox', { name: 'Edit your message' }).inputValue(), 'one');
  await page.keyboard.press('Escape');
  assert.equal(await page.evaluate(() => document.activeElement.id), 'text');
  assert.deepEqual(page.errors, []);
  await context.close();
});

test('refused edits and deletes are shown briefly in a live region, and the message is left as it was', async () => {
  const { context, page } = await newPage(env.browser);
  // The server would refuse these only in races (another tab deleted it,
  // a moderator, the rate limit); answer them here as the server would.
  const answers = { 'edit': 'rate_limited', 'delete': 'not_found' };
  await page.routeWebSocket(/\/ws$/, (ws) => {
    const srv = ws.connectToServer();
    ws.onMessage((data) => {
      const m = JSON.parse(String(data));
      if (answers[m.type]) {
        ws.send(JSON.stringify({ type: 'error', code: answers[m.type], message: 'refused', ref: m.ref }));
        return;
      }
      srv.send(data);
    });
    srv.onMessage((d) => ws.send(d));
  });
  await openChat(page, env.server, { name: 'Jo', room: 'errs' });
  await say(page, 'original words');
  await page.locator('#text').press('ArrowUp');
  const box = page.getByRole('textbox', { name: 'Edit your message' });
  await box.fill('new words');
  await box.press('Enter');
  const toast = page.locator('.toasts .toast.error', { hasText: 'You are editing too fast' });
  await toast.waitFor();
  assert.equal(await page.locator('.toasts').getAttribute('aria-live'), 'polite');
  await msg(page, 'original words').waitFor();
  assert.equal(await page.locator('#messages li.saving').count(), 0);
  assert.equal(await page.locator('#messages .edited').count(), 0);
  const m = msg(page, 'original words');
  await m.hover();
  await m.getByRole('button', { name: /^Actions/ }).click();
  await page.getByRole('menuitem', { name: 'Delete' }).click();
  await page.getByRole('dialog').getByRole('button', { name: 'Delete' }).click();
  await page.locator('.toasts .toast.error', { hasText: 'That message was already deleted' }).waitFor();
  // Too long is caught before sending.
  await page.locator('#text').press('ArrowUp');
  await box.fill('x'.repeat(4001));
  await box.press('Enter');
  await page.locator('.toasts .toast.error', { hasText: 'too long' }).waitFor();
  await box.press('Escape');
  await toast.waitFor({ state: 'detached', timeout: 10000 });
  assert.deepEqual(page.errors, []);
  await context.close();
});
