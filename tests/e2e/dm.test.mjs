// Protocol 1.1 in the browser, direct messages: from the member list and
// from a name on a message, in both people's sidebars, an unread badge, and
// the widget counting DMs as unread. (Parked on wt-web-dm until the server
// has DMs; edits and deletes are in edit.test.mjs.)
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, launchBrowser, newPage, openChat, waitOnline, memberNamed, WsClient, T } from './helpers.mjs';
import { startHost, shopPage } from './host.mjs';

let server, browser;
before(async () => {
  server = await startServer();
  browser = await launchBrowser();
});
after(async () => {
  await browser?.close();
  await server?.cleanup();
});

// The composer, whatever the room is called ("Message #x" or "Message Ben").
async function say(page, text) {
  const box = page.locator('#text');
  await box.fill(text);
  await box.press('Enter');
  await page.locator('#messages li.own:not(.unsent)', { hasText: text }).last().waitFor();
}

const msg = (page, text) => page.locator('#messages li', { hasText: text });
const dmLink = (page, name) => page.locator('#dms a', { hasText: name });

test('a DM from the member list: both sidebars show the peer, the receiver gets a badge, both ways', async () => {
  const a = await newPage(browser);
  const b = await newPage(browser);
  await openChat(a.page, server, { name: 'Ada', room: 'meet' });
  await openChat(b.page, server, { name: 'Ben', room: 'meet' });
  // Nothing yet: the group says how to start one.
  assert.equal(await a.page.locator('#dms li').count(), 0);
  assert.equal(await a.page.locator('#dms-empty').isVisible(), true);

  await a.page.getByRole('button', { name: 'Send Ben a direct message' }).click();
  await a.page.locator('#room-name', { hasText: 'Ben' }).waitFor();
  assert.match(await a.page.evaluate(() => location.hash), /^#dm-/);
  assert.equal(await a.page.locator('#room-title .hash').textContent(), '@');
  await dmLink(a.page, 'Ben').waitFor();
  assert.equal(await dmLink(a.page, 'Ben').getAttribute('aria-current'), 'page');
  assert.equal(await a.page.getByRole('textbox', { name: 'Message Ben' }).count(), 1);
  assert.equal(await a.page.evaluate(() => document.activeElement.id), 'text');
  await say(a.page, 'Hi Ben, a private question');

  // Ben is still in #meet: the conversation appears at once, with a badge.
  const link = dmLink(b.page, 'Ada');
  await link.waitFor();
  await link.locator('.count.unread', { hasText: '1' }).waitFor();
  assert.match(await link.textContent(), /Ada.*1 unread/);
  assert.doesNotMatch(await b.page.locator('#dms').textContent(), /dm-/, 'the peer name, not the room id');
  assert.equal(await b.page.locator('#room-name').textContent(), 'meet');
  assert.match(await b.page.locator('#live').textContent(), /New direct message from Ada: Hi Ben/);
  await say(a.page, 'Are you free at three?');
  await link.locator('.count.unread', { hasText: '2' }).waitFor();

  await link.click();
  await b.page.locator('#room-name', { hasText: 'Ada' }).waitFor();
  await msg(b.page, 'Are you free at three?').waitFor();
  assert.equal(await dmLink(b.page, 'Ada').locator('.count').count(), 0, 'the badge is gone once read');
  assert.equal(await msg(b.page, 'Hi Ben').locator('.author').textContent(), 'Ada');
  await say(b.page, 'Yes, three works');
  await msg(a.page, 'Yes, three works').waitFor();
  assert.deepEqual(await a.page.$$eval('#messages .text', (ps) => ps.map((p) => p.textContent)),
    ['Hi Ben, a private question', 'Are you free at three?', 'Yes, three works']);

  // #meet is still there, under Rooms; back and forth keeps the DM.
  await a.page.locator('#rooms a[href="#meet"]').click();
  await a.page.locator('#room-name', { hasText: 'meet' }).waitFor();
  assert.equal(await dmLink(a.page, 'Ben').count(), 1);
  await a.page.reload();
  await waitOnline(a.page);
  await dmLink(a.page, 'Ben').waitFor(); // from `rooms`, with the peer
  assert.deepEqual(a.page.errors, []);
  assert.deepEqual(b.page.errors, []);
  await a.context.close();
  await b.context.close();
});

test('a DM from a name on a message', async () => {
  const cy = await WsClient.connect(server.wsUrl, { name: 'Cy' });
  await cy.join('names');
  await cy.sendAll('names', ['Anyone up for a review?']);
  const { context, page } = await newPage(browser);
  await openChat(page, server, { name: 'Dana', room: 'names' });
  const author = msg(page, 'Anyone up for a review?').locator('.author');
  assert.equal(await author.textContent(), 'Cy');
  await page.getByRole('button', { name: 'Cy, send a direct message' }).click();
  await page.locator('#room-name', { hasText: 'Cy' }).waitFor();
  await dmLink(page, 'Cy').waitFor();
  await page.locator('#history-status', { hasText: 'Say hello to Cy' }).waitFor();
  await say(page, 'I can review it');
  const m = await cy.next((x) => x.type === 'message' && x.text === 'I can review it');
  assert.match(m.room, /^dm-/, 'Cy gets it without joining');
  cy.send({ type: 'send', room: m.room, text: 'Thanks!', client_id: 'cy-1' });
  await msg(page, 'Thanks!').waitFor();
  cy.close();
  assert.deepEqual(page.errors, []);
  await context.close();
});

test('the widget: a DM counts as unread, and opens from the panel\'s list', async () => {
  const host = await startHost({
    chatUrl: server.url,
    pages: { '/': ({ chatUrl }) => shopPage({ snippet: `<script src="${chatUrl}/widget.js" data-room="help" async></script>` }) },
  });
  try {
    const { context, page } = await newPage(browser);
    await page.goto(host.url + '/');
    await page.getByRole('button', { name: 'Open chat' }).click();
    const chat = page.frameLocator('iframe[title="Chat"]');
    await chat.getByLabel('Display name').fill('Kim');
    await chat.getByRole('button', { name: 'Join the chat' }).click();
    await chat.locator('#conn[data-state="online"]').waitFor({ timeout: 15000 * T });
    const lee = await WsClient.connect(server.wsUrl, { name: 'Lee' });
    const joined = await lee.join('help');
    const kim = await memberNamed(lee, joined, 'Kim');
    await page.evaluate(() => window.Parley.close());
    lee.send({ type: 'dm', user: kim.id });
    const dm = await lee.next((m) => m.type === 'joined' && m.room.startsWith('dm-'));
    assert.equal(dm.peer.name, 'Kim');
    await lee.sendAll(dm.room, ['Hi Kim, about your order']);
    await page.getByRole('button', { name: 'Open chat, 1 unread message' }).waitFor();
    await page.getByRole('button', { name: 'Open chat, 1 unread message' }).click();
    await chat.getByRole('button', { name: /^People in this room/ }).click();
    const link = chat.locator('#dms a', { hasText: 'Lee' });
    await link.locator('.count.unread', { hasText: '1' }).waitFor();
    await link.click();
    await chat.locator('#room-name', { hasText: 'Lee' }).waitFor();
    await chat.locator('#messages li', { hasText: 'Hi Kim, about your order' }).waitFor();
    const box = chat.getByRole('textbox', { name: 'Message Lee' });
    await box.fill('Thanks, Lee');
    await box.press('Enter');
    await lee.next((m) => m.type === 'message' && m.text === 'Thanks, Lee');
    // Back to the widget's room from the list.
    await chat.getByRole('button', { name: /^People in this room/ }).click();
    await chat.locator('#rooms a', { hasText: 'help' }).click();
    await chat.locator('#room-name', { hasText: 'help' }).waitFor();
    lee.close();
    assert.deepEqual(page.errors, []);
    await context.close();
  } finally {
    await host.close();
  }
});
