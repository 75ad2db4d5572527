// History: scrolling up pages back through 150 seeded messages, the view
// stays pinned to the bottom unless scrolled up (then a "new messages"
// marker), and a reload keeps the name and the history.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, launchBrowser, newPage, openChat, listTexts, waitOnline, WsClient, T } from './helpers.mjs';

const ROOM = 'history';
const N = 150;
const seeded = Array.from({ length: N }, (_, i) => `Message ${i + 1}`);
let server, browser, seeder, reader;

before(async () => {
  server = await startServer({ args: ['--rate', '1000', '--burst', '1000'] });
  browser = await launchBrowser();
  seeder = await WsClient.connect(server.wsUrl, { name: 'Seeder' });
  await seeder.join(ROOM);
  await seeder.sendAll(ROOM, seeded);
  reader = await newPage(browser, { viewport: { width: 1000, height: 700 } });
});
after(async () => {
  seeder?.close();
  await browser?.close();
  await server?.cleanup();
});

const scroller = (page) => page.locator('#scroller');
const gap = (page) => scroller(page).evaluate((s) => s.scrollHeight - s.scrollTop - s.clientHeight);

test('scrolling up loads older history', async () => {
  const { page } = reader;
  await openChat(page, server, { name: 'Reader', room: ROOM });
  await page.locator('#messages li', { hasText: 'Message 150' }).waitFor();
  // The latest page only, scrolled to the bottom.
  let texts = await listTexts(page);
  assert.ok(texts.length < N, `only the latest messages at first, got ${texts.length}`);
  assert.equal(texts.at(-1), 'Message 150');
  assert.ok(await gap(page) < 2, 'starts at the bottom');

  // Scroll up a little at a time, like a person would, until the first message shows.
  let steps = 0;
  const firstVisible = async () => page.evaluate(() => {
    const s = document.getElementById('scroller').getBoundingClientRect();
    const li = [...document.querySelectorAll('#messages > li')].find((x) => x.getBoundingClientRect().bottom > s.top + 1);
    return li ? li.querySelector('.text').textContent : null;
  });
  while (!(await page.locator('#messages .text', { hasText: /^Message 1$/ }).count())) {
    assert.ok(++steps < 200, 'history should reach the first message');
    const before = await firstVisible();
    await page.mouse.move(500, 300);
    await page.mouse.wheel(0, -1200);
    await page.waitForTimeout(120);
    // Loading older messages does not make the view jump: what was at the
    // top is still near the top, not pushed far away.
    const after = await firstVisible();
    const bi = seeded.indexOf(before), ai = seeded.indexOf(after);
    assert.ok(ai <= bi && bi - ai < 40, `scroll position kept (${before} -> ${after})`);
  }
  await page.locator('#history-status.start').waitFor();
  assert.match(await page.locator('#history-status').textContent(), /Welcome to #history/);
  texts = await listTexts(page);
  assert.deepEqual(texts, seeded, 'every message once, in order');
  assert.deepEqual(page.errors, []);
});

test('new messages keep the view pinned, or show a marker when scrolled up', async () => {
  const { page } = reader;
  // Scrolled up (at the top after the previous test): no jump, a marker.
  await scroller(page).evaluate((s) => { s.scrollTop = 0; });
  await page.waitForTimeout(100);
  await seeder.sendAll(ROOM, ['Fresh news while you read']);
  await page.locator('#messages li', { hasText: 'Fresh news while you read' }).waitFor();
  const marker = page.locator('#new-marker');
  await marker.waitFor();
  assert.equal((await marker.textContent()).replace('↓', '').trim(), '1 new message');
  assert.ok(await scroller(page).evaluate((s) => s.scrollTop) < 50, 'stays where the reader is');
  await seeder.sendAll(ROOM, ['And another one']);
  await page.locator('#new-marker', { hasText: '2 new messages' }).waitFor();

  // The marker takes you down and goes away.
  await marker.click();
  await marker.waitFor({ state: 'hidden' });
  assert.ok(await gap(page) < 2);

  // At the bottom, new messages keep it at the bottom, without a marker.
  await seeder.sendAll(ROOM, ['Pinned to the bottom']);
  await page.locator('#messages li', { hasText: 'Pinned to the bottom' }).waitFor();
  await page.waitForTimeout(100);
  assert.ok(await gap(page) < 2, 'still at the bottom');
  assert.equal(await marker.isVisible(), false);
});

test('reload keeps the name and the history', async () => {
  const { page, context } = reader;
  await page.reload();
  await waitOnline(page);
  assert.equal(await page.locator('#name-dialog').evaluate((d) => d.open), false, 'no name prompt');
  assert.equal(await page.locator('#me-name').textContent(), 'Reader');
  await page.locator('#members li', { hasText: 'Reader' }).waitFor();
  await page.locator('#messages li', { hasText: 'Pinned to the bottom' }).waitFor();
  const texts = await listTexts(page);
  assert.deepEqual(texts.slice(-4), ['Message 150', 'Fresh news while you read', 'And another one', 'Pinned to the bottom']);
  assert.equal(new Set(texts).size, texts.length, 'no duplicates');
  assert.ok(await gap(page) < 2, 'opens at the bottom');

  // A new tab of the same browser knows the name too.
  const tab = await context.newPage();
  await tab.goto(`${server.url}/#${ROOM}`);
  await waitOnline(tab);
  assert.equal(await tab.locator('#me-name').textContent(), 'Reader');
  await tab.close();

  // Messages sent before the reload by the reader show as their own after it.
  const box = page.getByRole('textbox', { name: `Message #${ROOM}` });
  await box.fill('mine, before reloading');
  await box.press('Enter');
  await page.locator('#messages li.own:not(.unsent)', { hasText: 'mine, before reloading' }).waitFor({ timeout: 10000 * T });
  await page.reload();
  await waitOnline(page);
  await page.locator('#messages li.own', { hasText: 'mine, before reloading' }).waitFor();
  assert.deepEqual(page.errors, []);
});
