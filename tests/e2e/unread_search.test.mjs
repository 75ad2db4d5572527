// Protocol 1.1 in the browser, read markers and search: unread badges for
// rooms and DMs that agree with the server's counts (after a reload, across
// two tabs of one user), the "New messages" line at the read marker,
// messages marked read only when they are on screen in a focused window,
// the widget's unread event from the server's counts, and the search box:
// results with the words marked, the room, the author and the time, each
// opening its message in its room with the history around it. Keyboard
// only where it matters; screenshots (light, dark, phone) in
// tests/artifacts/.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { serverAndBrowser, newPage, openChat, waitOnline, reconnectNow, memberNamed, WsClient, artifact, sleep, T } from './helpers.mjs';
import { startHost, shopPage, RECORD_EVENTS } from './host.mjs';

// A high send rate: the tests seed rooms with a hundred messages at once.
const env = serverAndBrowser({ args: ['--rate', '1000', '--burst', '1000'] });

const DESKTOP = { viewport: { width: 1280, height: 800 } };
const PHONE = { viewport: { width: 390, height: 844 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true };

const msg = (page, text) => page.locator('#messages li', { hasText: text });
const roomLink = (page, name) => page.locator(`#rooms a[href="#${name}"]`);
const badge = (link) => link.locator('.count.unread');

// Polls `fn` until it returns something truthy.
async function until(fn, what, ms = 10000 * T) {
  const end = Date.now() + ms;
  let last;
  while (Date.now() < end) {
    last = await fn();
    if (last) return last;
    await sleep(100);
  }
  throw new Error(`timed out waiting for ${what} (last: ${JSON.stringify(last)})`);
}

// The guest a page is signed in as (name and resume token), to open a
// second tab as the same user, or to ask the server directly.
async function identity(page) {
  return page.evaluate(() => ({ name: localStorage.getItem('parley.name'), resume: sessionStorage.getItem('parley.resume') }));
}

async function openAs(browser, who, room, opts = {}) {
  const { context, page } = await newPage(browser, opts);
  await context.addInitScript((s) => {
    localStorage.setItem('parley.name', s.name);
    sessionStorage.setItem('parley.resume', s.resume);
  }, who);
  await openChat(page, env.server, { room });
  return { context, page };
}

// What the server says about this user's rooms: name -> {read, unread, …}.
async function serverRooms(who) {
  const c = await WsClient.connect(env.server.wsUrl, { name: who.name, resume: who.resume });
  try {
    c.send({ type: 'rooms' });
    const r = await c.next((m) => m.type === 'rooms');
    return Object.fromEntries(r.rooms.map((x) => [x.name, x]));
  } finally {
    c.close();
  }
}

// The window losing and getting back the focus (what the browser fires
// when the user switches windows; headless pages are always focused).
const blur = (page) => page.evaluate(() => window.dispatchEvent(new Event('blur')));
const focus = (page) => page.evaluate(() => window.dispatchEvent(new Event('focus')));

async function goRoom(page, name) {
  await page.evaluate((n) => { location.hash = n; }, name);
  await page.locator('#room-name', { hasText: name }).waitFor();
}

test('unread badges and the "New messages" line follow the server: focus, reload, two tabs', async () => {
  const ben = await WsClient.connect(env.server.wsUrl, { name: 'Ben' });
  await ben.join('alpha');
  await ben.join('beta');
  await ben.sendAll('alpha', ['alpha one', 'alpha two']);
  const [b1] = await ben.sendAll('beta', ['beta one']);

  const a = await newPage(env.browser);
  await openChat(a.page, env.server, { name: 'Ada', room: 'beta' });
  await msg(a.page, 'beta one').waitFor();
  const ada = await identity(a.page);
  // On screen in a focused window: read, up to the newest message.
  await until(async () => (await serverRooms(ada)).beta?.read === b1.id, 'beta read');
  await goRoom(a.page, 'alpha');
  await msg(a.page, 'alpha two').waitFor();
  await until(async () => (await serverRooms(ada)).alpha?.unread === 0, 'alpha read');
  assert.equal(await a.page.locator('.unread-divider').count(), 0, 'no line when everything was read');

  // The window loses the focus: what arrives is shown, but not read.
  await blur(a.page);
  const [a3] = await ben.sendAll('alpha', ['alpha three', 'alpha four']);
  await ben.sendAll('beta', ['beta two', 'beta three']);
  await msg(a.page, 'alpha four').waitFor();
  await sleep(1500); // longer than the page waits between two `read`s
  let srv = await serverRooms(ada);
  assert.equal(srv.alpha.unread, 2, 'loaded is not read');
  assert.ok(srv.alpha.read < a3.id, 'the marker did not move');
  // The line is above the first of them; the open room shows its count
  // while nobody reads it.
  const line = a.page.locator('#messages li:has(.unread-divider)');
  await line.waitFor();
  assert.match(await line.textContent(), /New messages.*alpha three/);
  assert.equal(await a.page.locator('.unread-divider').getAttribute('role'), 'separator');
  await badge(roomLink(a.page, 'alpha')).filter({ hasText: '2' }).waitFor();
  assert.match(await roomLink(a.page, 'alpha').textContent(), /alpha.*2 unread/);
  assert.match(await a.page.title(), /^\(2\) #alpha/);

  // A second tab of the same user: the server's counts from the start.
  const b = await openAs(env.browser, ada, 'lobby');
  await badge(roomLink(b.page, 'alpha')).filter({ hasText: '2' }).waitFor();
  await badge(roomLink(b.page, 'beta')).filter({ hasText: '2' }).waitFor();

  // Back in the first window: read there, and gone in the second tab at once.
  await focus(a.page);
  await until(async () => (await serverRooms(ada)).alpha?.unread === 0, 'alpha read after focus');
  await badge(roomLink(b.page, 'alpha')).waitFor({ state: 'detached' });
  assert.equal(await badge(roomLink(a.page, 'alpha')).count(), 0);
  assert.equal(await a.page.locator('.unread-divider').count(), 1, 'the line stays while the room is open');
  // The first window learns about beta when it gets the focus back.
  await badge(roomLink(a.page, 'beta')).filter({ hasText: '2' }).waitFor();
  // Beta read in the second tab: the first one's badge goes too.
  await roomLink(b.page, 'beta').click();
  await msg(b.page, 'beta three').waitFor();
  await until(async () => (await serverRooms(ada)).beta?.unread === 0, 'beta read in tab 2');
  await badge(roomLink(a.page, 'beta')).waitFor({ state: 'detached' });

  // Away in the lobby; what arrives in alpha meanwhile is there after a reload.
  await goRoom(a.page, 'lobby');
  await ben.sendAll('alpha', ['alpha five', 'alpha six', 'alpha seven']);
  await a.page.reload();
  await waitOnline(a.page);
  await badge(roomLink(a.page, 'alpha')).filter({ hasText: '3' }).waitFor();
  assert.equal(await badge(roomLink(a.page, 'beta')).count(), 0);
  srv = await serverRooms(ada);
  assert.equal(srv.alpha.unread, 3);
  assert.equal(srv.beta.unread, 0);
  await a.page.screenshot({ path: artifact('unread-badges-desktop-light.png') });
  // Opening it: the line above the first unread one, then read.
  await roomLink(a.page, 'alpha').click();
  await a.page.locator('#messages li:has(.unread-divider)', { hasText: 'alpha five' }).waitFor();
  assert.match(await a.page.locator('#live').textContent(), /3 new messages in #alpha/);
  await until(async () => (await serverRooms(ada)).alpha?.unread === 0, 'alpha read on open');
  await badge(roomLink(b.page, 'alpha')).waitFor({ state: 'detached' }).catch(() => {});
  await a.page.locator('#text').blur();
  await a.page.screenshot({ path: artifact('unread-divider-desktop-light.png') });

  ben.close();
  assert.deepEqual(a.page.errors, []);
  assert.deepEqual(b.page.errors, []);
  await a.context.close();
  await b.context.close();
});

test('messages below the screen stay unread until scrolled to; the view starts at the line', async () => {
  const cy = await WsClient.connect(env.server.wsUrl, { name: 'Cy' });
  await cy.join('long');
  await cy.sendAll('long', ['before you left']);
  const { context, page } = await newPage(env.browser, { ...DESKTOP, colorScheme: 'dark' });
  await openChat(page, env.server, { name: 'Dee', room: 'long' });
  await msg(page, 'before you left').waitFor();
  const dee = await identity(page);
  await until(async () => (await serverRooms(dee)).long?.unread === 0, 'read');
  await goRoom(page, 'lobby');
  const filler = 'so much to say about this that it takes a few lines on any screen. '.repeat(4).trim();
  const acks = await cy.sendAll('long', Array.from({ length: 30 }, (_, i) => `long ${i + 1}: ${filler}`));
  await goRoom(page, 'long');
  await msg(page, 'long 30:').waitFor();
  // The view starts at the line, not at the bottom.
  const line = page.locator('.unread-divider');
  await line.waitFor();
  assert.ok(await line.isVisible());
  const box = await line.boundingBox();
  const scroller = await page.locator('#scroller').boundingBox();
  assert.ok(box.y >= scroller.y && box.y < scroller.y + scroller.height / 2, 'the line near the top of the view');
  assert.ok(!(await msg(page, 'long 30:').isVisible()) || (await page.locator('#scroller').evaluate((s) => s.scrollHeight - s.scrollTop - s.clientHeight)) > 100);
  // Read up to what is on screen, not further.
  const srv = await until(async () => {
    const r = (await serverRooms(dee)).long;
    return r && r.read > acks[0].id - 1 && r.read < acks[29].id && r;
  }, 'read up to the screen');
  assert.ok(srv.unread > 0 && srv.unread < 30, `unread ${srv.unread}`);
  await page.getByRole('button', { name: /new messages/ }).waitFor();
  await page.screenshot({ path: artifact('unread-start-at-line-desktop-dark.png') });
  // Scrolled to the end: all read.
  await page.getByRole('button', { name: /new messages/ }).click();
  await until(async () => (await serverRooms(dee)).long?.read === acks[29].id, 'read to the end');
  cy.close();
  assert.deepEqual(page.errors, []);
  await context.close();
});

test('read while the connection is down: the marker is sent when it is back', async () => {
  const gus = await WsClient.connect(env.server.wsUrl, { name: 'Gus' });
  await gus.join('offline');
  const { context, page } = await newPage(env.browser);
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
  const reads = [];
  page.on('websocket', (w) => w.on('framesent', (f) => { if (String(f.payload).includes('"type":"read"')) reads.push(JSON.parse(String(f.payload))); }));
  await openChat(page, env.server, { name: 'Hil', room: 'offline' });
  const hil = await identity(page);
  await blur(page);
  const [, last] = await gus.sendAll('offline', ['while you were away', 'and one more']);
  await msg(page, 'and one more').waitFor();
  await badge(roomLink(page, 'offline')).filter({ hasText: '2' }).waitFor();
  blocked = true;
  for (const { ws, srv } of open.splice(0)) {
    ws.close({ code: 1013, reason: 'slow consumer' });
    srv.close();
  }
  await page.locator('#conn:not([data-state="online"])').waitFor();
  // Read now, with nobody to tell: the page counts it read at once.
  await focus(page);
  await badge(roomLink(page, 'offline')).waitFor({ state: 'detached' });
  assert.equal((await serverRooms(hil)).offline.unread, 2, 'the server does not know yet');
  blocked = false;
  await reconnectNow(page);
  await until(async () => (await serverRooms(hil)).offline?.read === last.id, 'the marker after the reconnect');
  assert.equal(reads.filter((r) => r.room === 'offline' && r.id === last.id).length, 1, 'sent once');
  gus.close();
  assert.deepEqual(page.errors, []);
  await context.close();
});

test('DM badges come from the server: after a reload, and gone once read', async () => {
  const { context, page } = await newPage(env.browser, PHONE);
  await openChat(page, env.server, { name: 'Eve', room: 'lobby' });
  const eve = await identity(page);
  const fox = await WsClient.connect(env.server.wsUrl, { name: 'Fox' });
  const joined = await fox.join('lobby');
  const eveUser = await memberNamed(fox, joined, 'Eve');
  fox.send({ type: 'dm', user: eveUser.id });
  const dm = await fox.next((m) => m.type === 'joined' && m.room.startsWith('dm-'));
  await fox.sendAll(dm.room, ['Hi Eve', 'Are you there?']);
  const link = page.locator('#dms a', { hasText: 'Fox' });
  await page.getByRole('button', { name: 'Rooms and people' }).click();
  await badge(link).filter({ hasText: '2' }).waitFor();
  await page.keyboard.press('Escape');
  await page.reload();
  await waitOnline(page);
  await page.getByRole('button', { name: 'Rooms and people' }).click();
  await badge(link).filter({ hasText: '2' }).waitFor();
  assert.equal((await serverRooms(eve))[dm.room].unread, 2);
  await sleep(150);
  await page.screenshot({ path: artifact('unread-dm-phone-light.png') });
  await link.click();
  await msg(page, 'Are you there?').waitFor();
  await until(async () => (await serverRooms(eve))[dm.room]?.unread === 0, 'DM read');
  await page.reload();
  await waitOnline(page);
  await page.getByRole('button', { name: 'Rooms and people' }).click();
  await link.waitFor();
  assert.equal(await badge(link).count(), 0);
  fox.close();
  assert.deepEqual(page.errors, []);
  await context.close();
});

test('the widget: parley:unread carries the server\'s count, across a reload of the host page', async () => {
  const host = await startHost({
    chatUrl: env.server.url,
    pages: { '/': ({ chatUrl }) => shopPage({ extraHead: RECORD_EVENTS, snippet: `<script src="${chatUrl}/widget.js" data-room="helpdesk" async></script>` }) },
  });
  const agent = await WsClient.connect(env.server.wsUrl, { name: 'Agent' });
  await agent.join('helpdesk');
  await agent.sendAll('helpdesk', ['An old announcement from before the visit']);
  try {
    const { context, page } = await newPage(env.browser);
    await page.goto(host.url + '/');
    await page.getByRole('button', { name: 'Open chat' }).click();
    const chat = page.frameLocator('iframe[title="Chat"]');
    await chat.getByLabel('Display name').fill('Gil');
    await chat.getByRole('button', { name: 'Join the chat' }).click();
    await chat.locator('#conn[data-state="online"]').waitFor({ timeout: 15000 * T });
    await chat.locator('#messages li', { hasText: 'An old announcement' }).waitFor();
    const box = chat.getByRole('textbox', { name: 'Message #helpdesk' });
    await box.fill('Hello, anyone there?');
    await box.press('Enter');
    await agent.next((m) => m.type === 'message' && m.text === 'Hello, anyone there?');
    await page.evaluate(() => window.Parley.close());
    await agent.sendAll('helpdesk', ['Yes! How can I help?', 'Are you still there?']);
    await page.waitForFunction(() => window.events.filter((e) => e.type === 'parley:unread').at(-1)?.detail.count === 2);
    await page.getByRole('button', { name: 'Open chat, 2 unread messages' }).waitFor();

    // A reload of the host page: the count is the server's, not zero.
    await page.reload();
    await page.waitForFunction(() => window.events.some((e) => e.type === 'parley:unread' && e.detail.count === 2), null, { timeout: 15000 * T });
    assert.deepEqual((await page.evaluate(() => window.events.filter((e) => e.type === 'parley:unread'))).map((e) => e.detail), [{ count: 2, room: 'helpdesk' }]);
    await page.getByRole('button', { name: 'Open chat, 2 unread messages' }).waitFor();
    assert.equal(await page.evaluate(() => window.Parley.unread), 2);
    // Opened: on screen in a focused window, so read: 0, and 0 after a reload.
    await page.getByRole('button', { name: 'Open chat, 2 unread messages' }).click();
    await chat.locator('#messages li', { hasText: 'Are you still there?' }).waitFor();
    await page.waitForFunction(() => window.events.filter((e) => e.type === 'parley:unread').at(-1)?.detail.count === 0);
    await page.reload();
    await page.waitForFunction(() => window.events.some((e) => e.type === 'parley:ready'));
    await sleep(1500);
    assert.deepEqual(await page.evaluate(() => window.events.filter((e) => e.type === 'parley:unread').map((e) => e.detail.count)), []);
    await page.getByRole('button', { name: 'Open chat' }).waitFor();
    assert.deepEqual(page.errors, []);
    await context.close();
  } finally {
    agent.close();
    await host.close();
  }
});

// ---- search ------------------------------------------------------------------------

test('search: results with the words marked, room, author and time; a result opens in its room with history around it', async () => {
  const hal = await WsClient.connect(env.server.wsUrl, { name: 'Hal' });
  await hal.join('ops');
  await hal.join('design');
  await hal.sendAll('ops', Array.from({ length: 40 }, (_, i) => `ops chatter ${i + 1}`));
  const [target] = await hal.sendAll('ops', ['The Deploy on friday went fine']);
  await hal.sendAll('ops', Array.from({ length: 60 }, (_, i) => `ops chatter ${i + 41}`));
  await hal.sendAll('design', ['Café meeting moved; the deploy checklist is ready']);

  const { context, page } = await newPage(env.browser, DESKTOP);
  const sent = [];
  page.on('websocket', (w) => w.on('framesent', (f) => sent.push(JSON.parse(String(f.payload)))));
  await openChat(page, env.server, { name: 'Ivy', room: 'lobby' });
  // A DM with Hal that mentions it too.
  const ivy = await memberNamed(hal, await hal.join('lobby'), 'Ivy');
  hal.send({ type: 'dm', user: ivy.id });
  const dm = await hal.next((m) => m.type === 'joined' && m.room.startsWith('dm-'));
  await hal.sendAll(dm.room, ['deploy notes, just for you']);
  await page.locator('#dms a', { hasText: 'Hal' }).waitFor();

  // Ctrl+K opens it, focus in the box.
  await page.locator('#text').focus();
  await page.keyboard.press('Control+k');
  const input = page.getByRole('searchbox', { name: 'Search messages' });
  await input.waitFor();
  assert.equal(await page.evaluate(() => document.activeElement.id), 'search-input');
  assert.equal(await page.locator('#search-open').getAttribute('aria-expanded'), 'true');
  await input.fill('deploy');
  await input.press('Enter');
  const results = page.locator('#search-results a.result');
  await page.locator('#search-status', { hasText: '3 results for “deploy”' }).waitFor();
  assert.equal(await results.count(), 3);
  // Newest first; each with its room, author and time, the word marked.
  const rows = await results.evaluateAll((as) => as.map((a) => ({
    room: a.querySelector('.result-room').textContent,
    author: a.querySelector('.result-author').textContent,
    time: !!a.querySelector('time[datetime]'),
    marks: [...a.querySelectorAll('mark')].map((m) => m.textContent),
    text: a.querySelector('.result-text').textContent,
  })));
  assert.deepEqual(rows.map((r) => r.room), ['@Hal', '#design', '#ops']);
  assert.deepEqual(rows.map((r) => r.author), ['Hal', 'Hal', 'Hal']);
  assert.ok(rows.every((r) => r.time));
  assert.deepEqual(rows.map((r) => r.marks), [['deploy'], ['deploy'], ['Deploy']]);
  assert.equal(rows[2].text, 'The Deploy on friday went fine');
  assert.match(await results.nth(2).textContent(), /Hal, in #ops, .*: The Deploy on friday/);
  await page.screenshot({ path: artifact('search-results-desktop-light.png') });

  // Without diacritics, a prefix, a phrase.
  await input.fill('cafe');
  await input.press('Enter');
  await page.locator('#search-status', { hasText: '1 result for “cafe”' }).waitFor();
  assert.deepEqual(await page.locator('#search-results mark').allTextContents(), ['Café']);
  await input.fill('"went fine" fri*');
  await input.press('Enter');
  await page.locator('#search-status', { hasText: '1 result' }).waitFor();
  assert.deepEqual(await page.locator('#search-results mark').allTextContents(), ['friday', 'went fine']);
  await input.fill('nothingmatchesthis');
  await input.press('Enter');
  await page.locator('#search-status', { hasText: 'No messages match “nothingmatchesthis”' }).waitFor();
  await input.fill('--- ...');
  await input.press('Enter');
  await page.locator('#search-status', { hasText: 'Type a word to search for' }).waitFor();

  // Keyboard: Down to the results, Enter opens the #ops one.
  await input.fill('deploy');
  await input.press('Enter');
  await page.locator('#search-status', { hasText: '3 results' }).waitFor();
  sent.length = 0;
  await input.press('ArrowDown');
  await page.keyboard.press('ArrowDown');
  await page.keyboard.press('ArrowDown');
  assert.match(await page.evaluate(() => document.activeElement.textContent), /The Deploy on friday/);
  await page.keyboard.press('Enter');
  await page.locator('#room-name', { hasText: 'ops' }).waitFor();
  const hit = page.locator('#messages li.hit');
  await hit.waitFor();
  assert.equal(await hit.locator('.text').textContent(), 'The Deploy on friday went fine');
  assert.equal(await page.evaluate(() => document.activeElement.classList.contains('hit')), true, 'the message has the focus');
  assert.ok(await hit.isVisible());
  // The history around it: 25 up to it and 25 after it.
  const hist = sent.filter((m) => m.type === 'history' && m.room === 'ops');
  assert.ok(hist.some((m) => m.before === target.id + 1 && m.limit === 25), JSON.stringify(hist));
  assert.ok(hist.some((m) => m.after === target.id && m.limit === 25), JSON.stringify(hist));
  await msg(page, 'ops chatter 40').waitFor({ state: 'attached' });
  await msg(page, 'ops chatter 41').waitFor({ state: 'attached' });
  assert.equal(await msg(page, 'ops chatter 100').count(), 0, 'not the newest: around the result');
  assert.match(await page.locator('#live').textContent(), /Message from Hal in #ops/);
  await page.screenshot({ path: artifact('search-opened-desktop-light.png') });

  // Live messages wait while the view is away from the newest; "Jump to
  // the latest messages" goes there.
  await hal.sendAll('ops', ['ops live while reading the past']);
  const latest = page.getByRole('button', { name: 'Jump to the latest messages' });
  await latest.waitFor();
  await sleep(300);
  assert.equal(await msg(page, 'ops live while reading the past').count(), 0);
  await latest.click();
  await msg(page, 'ops live while reading the past').waitFor();
  await msg(page, 'ops chatter 100').waitFor();
  assert.equal(await page.locator('#messages li.hit').count(), 0);
  assert.equal(await latest.count(), 0);

  // Scrolling down from a result pages the newer messages in, to the newest.
  await page.locator('#search-open').click();
  await input.fill('Deploy friday');
  await input.press('Enter');
  await page.locator('#search-status', { hasText: '1 result' }).waitFor();
  await results.first().click();
  await hit.waitFor();
  for (let i = 0; i < 20 && await msg(page, 'ops live while reading the past').count() === 0; i++) {
    await page.locator('#scroller').evaluate((s) => { s.scrollTop = s.scrollHeight; });
    await sleep(250);
  }
  await msg(page, 'ops live while reading the past').waitFor({ state: 'attached' });
  await page.getByRole('button', { name: 'Jump to the latest messages' }).waitFor({ state: 'detached' });
  const ids = await page.$$eval('#messages li[data-id]', (lis) => lis.map((li) => Number(li.dataset.id)));
  assert.deepEqual(ids, [...ids].sort((x, y) => x - y), 'in order');
  assert.equal(new Set(ids).size, ids.length, 'no duplicates');

  // This room only; more results than a page; Escape closes the search.
  await page.locator('#search-open').click();
  await page.getByLabel('Where to search').selectOption('room');
  await input.fill('chatter');
  await input.press('Enter');
  await page.locator('#search-status', { hasText: 'The newest 20 results for “chatter” in #ops' }).waitFor();
  await page.getByRole('button', { name: 'Show older results' }).click();
  await page.locator('#search-status', { hasText: 'The newest 40 results' }).waitFor();
  assert.equal(await results.count(), 40);
  assert.equal(await page.evaluate(() => [...document.querySelectorAll('#search-results a.result')].indexOf(document.activeElement)), 20,
    'focus on the first of the older results');
  await page.keyboard.press('Home');
  assert.equal(await page.evaluate(() => [...document.querySelectorAll('#search-results a.result')].indexOf(document.activeElement)), 0);
  await page.keyboard.press('Escape');
  await page.locator('#search').waitFor({ state: 'hidden' });
  assert.equal(await page.evaluate(() => document.activeElement.id), 'search-open', 'focus back on the search button');

  // A result in a DM opens the conversation.
  await page.keyboard.press('Enter');
  await page.getByLabel('Where to search').selectOption('all');
  await input.fill('notes');
  await input.press('Enter');
  await results.first().waitFor();
  await results.first().click();
  await page.locator('#room-name', { hasText: 'Hal' }).waitFor();
  await page.locator('#messages li.hit', { hasText: 'deploy notes, just for you' }).waitFor();
  hal.close();
  assert.deepEqual(page.errors, []);
  await context.close();
});

test('search in dark and on a phone; the widget searches its conversation', async () => {
  const jo = await WsClient.connect(env.server.wsUrl, { name: 'Jo Park' });
  await jo.join('release');
  await jo.sendAll('release', [
    'Release notes for 2.4 are in the wiki',
    'The release train leaves on Thursday; freeze on Wednesday',
    'Who owns the release checklist this time?',
  ]);
  for (const [device, opts] of [['desktop', DESKTOP], ['phone', PHONE]]) {
    const { context, page } = await newPage(env.browser, { ...opts, colorScheme: 'dark' });
    await openChat(page, env.server, { name: `Kai ${device}`, room: 'release' });
    await page.getByRole('button', { name: 'Search messages' }).click();
    const input = page.getByRole('searchbox', { name: 'Search messages' });
    await input.fill('release');
    await input.press('Enter');
    await page.locator('#search-status', { hasText: '3 results' }).waitFor();
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.equal(overflow, 0, 'no sideways scrolling');
    // Marked words stay readable in dark.
    const contrast = await page.evaluate(() => {
      const lum = (c) => {
        const [r, g, b] = c.match(/[\d.]+/g).slice(0, 3).map(Number).map((v) => {
          v /= 255;
          return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4;
        });
        return 0.2126 * r + 0.7152 * g + 0.0722 * b;
      };
      const m = document.querySelector('#search-results mark');
      const [x, y] = [lum(getComputedStyle(m).color), lum(getComputedStyle(m).backgroundColor)].sort((p, q) => q - p);
      return (x + 0.05) / (y + 0.05);
    });
    assert.ok(contrast >= 4.5, `mark contrast ${contrast}`);
    await page.screenshot({ path: artifact(`search-results-${device}-dark.png`) });
    await page.locator('#search-results a.result').last().click();
    await page.locator('#messages li.hit', { hasText: 'Release notes for 2.4' }).waitFor();
    await page.screenshot({ path: artifact(`search-opened-${device}-dark.png`) });
    assert.deepEqual(page.errors, []);
    await context.close();
  }

  const host = await startHost({
    chatUrl: env.server.url,
    pages: { '/': ({ chatUrl }) => shopPage({ snippet: `<script src="${chatUrl}/widget.js" data-room="release" async></script>` }) },
  });
  try {
    const { context, page } = await newPage(env.browser, { ...PHONE, colorScheme: 'light' });
    await page.goto(host.url + '/');
    await page.getByRole('button', { name: 'Open chat' }).click();
    const chat = page.frameLocator('iframe[title="Chat"]');
    await chat.getByLabel('Display name').fill('Lou');
    await chat.getByRole('button', { name: 'Join the chat' }).click();
    await chat.locator('#conn[data-state="online"]').waitFor({ timeout: 15000 * T });
    await chat.getByRole('button', { name: 'Search messages' }).click();
    const input = chat.getByRole('searchbox', { name: 'Search messages' });
    await input.fill('checklist');
    await input.press('Enter');
    await chat.locator('#search-status', { hasText: '1 result for “checklist” in #release' }).waitFor();
    await sleep(200);
    await page.screenshot({ path: artifact('search-widget-phone-light.png') });
    await chat.locator('#search-results a.result').first().press('Enter');
    await chat.locator('#messages li.hit', { hasText: 'release checklist' }).waitFor();
    assert.deepEqual(page.errors, []);
    await context.close();
  } finally {
    await host.close();
    jo.close();
  }
});
