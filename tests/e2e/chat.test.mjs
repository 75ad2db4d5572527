// Two people chat both ways in the browser; presence, typing, rooms,
// keyboard-only use, and a refused message with its retry.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Server, startServer, launchBrowser, newPage, openChat, sendFromPage, listTexts, waitOnline, WsClient, allMessages, T } from './helpers.mjs';

let server, browser;
before(async () => {
  server = await startServer();
  browser = await launchBrowser();
});
after(async () => {
  await browser?.close();
  await server?.cleanup();
});

test('two browser contexts chat both ways', async () => {
  const a = await newPage(browser);
  const b = await newPage(browser);
  await openChat(a.page, server, { name: 'Alice', room: 'team' });
  await openChat(b.page, server, { name: 'Bob', room: 'team' });

  // Presence: each sees the other in the member list.
  await a.page.locator('#members li', { hasText: 'Bob' }).waitFor();
  await b.page.locator('#members li', { hasText: 'Alice' }).waitFor();
  assert.equal(await a.page.locator('#room-meta').textContent(), '2 people here');

  // Typing: Bob types, Alice sees it.
  const bobBox = b.page.getByRole('textbox', { name: 'Message #team' });
  await bobBox.pressSequentially('Ship');
  await a.page.locator('#typing', { hasText: 'Bob is typing' }).waitFor();
  await bobBox.fill('');

  await sendFromPage(a.page, 'Hi Bob, how is the release going?');
  await b.page.locator('#messages li:not(.own)', { hasText: 'Hi Bob' }).waitFor();
  await sendFromPage(b.page, 'Shipping it today!');
  await a.page.locator('#messages li:not(.own)', { hasText: 'Shipping it today!' }).waitFor();
  // The typing line goes away once Bob's message arrives.
  assert.equal((await a.page.locator('#typing').textContent()).trim(), '');

  // Own messages are acked (no longer pending) and marked as own.
  await a.page.locator('#messages li.own:not(.unsent)', { hasText: 'Hi Bob' }).waitFor();
  await b.page.locator('#messages li.own:not(.unsent)', { hasText: 'Shipping it today!' }).waitFor();
  const expected = ['Hi Bob, how is the release going?', 'Shipping it today!'];
  assert.deepEqual(await listTexts(a.page), expected);
  assert.deepEqual(await listTexts(b.page), expected);
  // Others' messages carry their author's name and a time.
  const bobsMsg = a.page.locator('#messages li', { hasText: 'Shipping it today!' });
  assert.equal(await bobsMsg.locator('.author').textContent(), 'Bob');
  assert.match(await bobsMsg.locator('time').getAttribute('datetime'), /^\d{4}-\d\d-\d\dT/);
  // New messages from others are announced to screen readers.
  assert.match(await a.page.locator('#live').textContent(), /Bob: Shipping it today!/);

  // Bob leaves: Alice's member list follows.
  await b.context.close();
  await a.page.locator('#members li', { hasText: 'Bob' }).waitFor({ state: 'detached' });
  assert.deepEqual(a.page.errors, []);
  assert.deepEqual(b.page.errors, []);
  await a.context.close();
});

test('the room switcher lists rooms and joins a new one', async () => {
  const watcher = await WsClient.connect(server.wsUrl, { name: 'Watcher' });
  await watcher.join('design');
  const { context, page } = await newPage(browser);
  await openChat(page, server, { name: 'Carol', room: 'lobby' });
  // #design has a member online, so it is listed.
  await page.locator('#rooms a[href="#design"]').waitFor();
  assert.equal(await page.locator('#rooms a[aria-current="page"] .room-link-name').textContent(), 'lobby');

  // Join a brand-new room from the form; the URL follows.
  await page.getByLabel('Join or create a room').fill('Release Notes');
  await page.getByLabel('Join or create a room').press('Enter');
  await page.waitForFunction(() => location.hash === '#release-notes');
  await page.locator('#room-name', { hasText: 'release-notes' }).waitFor();
  await page.locator('#rooms a[aria-current="page"][href="#release-notes"]').waitFor();
  await sendFromPage(page, 'First post in the new room');
  await page.locator('#messages li.own:not(.unsent)', { hasText: 'First post' }).waitFor();
  assert.deepEqual((await allMessages(server, 'release-notes')).map((m) => m.text), ['First post in the new room']);

  // An invalid name is refused with a hint, and nothing changes.
  await page.getByLabel('Join or create a room').fill('no way!');
  await page.getByLabel('Join or create a room').press('Enter');
  assert.equal(await page.getByLabel('Join or create a room').getAttribute('aria-invalid'), 'true');
  assert.equal(await page.evaluate(() => location.hash), '#release-notes');

  // Switch to #design by its link: history and members are that room's.
  await watcher.sendAll('design', ['Mockups are in the shared folder']);
  await page.locator('#rooms a[href="#design"]').click();
  await page.locator('#messages li', { hasText: 'Mockups are in the shared folder' }).waitFor();
  await page.locator('#members li', { hasText: 'Watcher' }).waitFor();
  assert.deepEqual(await listTexts(page), ['Mockups are in the shared folder']);
  // ?room= also selects the room.
  await page.goto(`${server.url}/?room=design`);
  await waitOnline(page);
  assert.equal(await page.locator('#room-name').textContent(), 'design');
  watcher.close();
  assert.deepEqual(page.errors, []);
  await context.close();
});

test('works with the keyboard only', async () => {
  const other = await WsClient.connect(server.wsUrl, { name: 'Dev' });
  await other.join('keys');
  const { context, page } = await newPage(browser);
  await page.goto(`${server.url}/#keys`);
  // The name dialog opens with focus in its field.
  await page.keyboard.type('Kim');
  await page.keyboard.press('Enter');
  await waitOnline(page);
  // Focus lands in the message box: type and press Enter.
  await page.keyboard.type('typed without a mouse');
  await page.keyboard.press('Enter');
  const m = await other.next((x) => x.type === 'message' && x.text === 'typed without a mouse');
  assert.equal(m.user.name, 'Kim');
  // Shift+Enter makes a new line instead of sending.
  await page.keyboard.type('line one');
  await page.keyboard.press('Shift+Enter');
  await page.keyboard.type('line two');
  await page.keyboard.press('Enter');
  const m2 = await other.next((x) => x.type === 'message' && x.user.name === 'Kim' && x.text.startsWith('line one'));
  assert.equal(m2.text, 'line one\nline two');
  // Every control that can be reached has an accessible name.
  const unnamed = await page.$$eval('button, input, textarea, a[href]', (els) => els
    .filter((e) => e.offsetParent !== null)
    .filter((e) => !(e.getAttribute('aria-label') || e.textContent.trim() || (e.id && document.querySelector(`label[for="${e.id}"]`))))
    .map((e) => e.outerHTML.slice(0, 80)));
  assert.deepEqual(unnamed, []);
  other.close();
  await context.close();
});

test('a refused message shows the error next to it and can be retried', async () => {
  const { context, page } = await newPage(browser);
  // Stand in for a server that is over its limits: the first send of a
  // text containing "refuse me" is answered rate_limited instead of being
  // passed on; everything else goes to the real server.
  let refused = 0;
  await page.routeWebSocket(/\/ws$/, (ws) => {
    const srv = ws.connectToServer();
    ws.onMessage((data) => {
      const m = JSON.parse(String(data));
      if (m.type === 'send' && m.text.includes('refuse me') && refused++ === 0) {
        ws.send(JSON.stringify({ type: 'error', code: 'rate_limited', message: 'slow down', ref: m.ref }));
        return;
      }
      srv.send(data);
    });
  });
  await openChat(page, server, { name: 'Eve', room: 'errors' });
  await sendFromPage(page, 'please refuse me once');
  const li = page.locator('#messages li.failed', { hasText: 'please refuse me once' });
  await li.waitFor();
  assert.match(await li.locator('.status').textContent(), /Not sent\. You are sending messages too fast\./);
  assert.equal(await li.locator('.status').getAttribute('role'), 'alert');
  await li.getByRole('button', { name: 'Retry' }).click();
  await page.locator('#messages li.own:not(.unsent)', { hasText: 'please refuse me once' }).waitFor({ timeout: 10000 * T });
  assert.equal(await page.locator('#messages li.failed').count(), 0);
  assert.deepEqual((await allMessages(server, 'errors')).map((m) => m.text), ['please refuse me once']);
  // Delete drops a failed message without sending it.
  await sendFromPage(page, 'refuse me and then delete me');
  await page.locator('#messages li.own:not(.unsent)', { hasText: 'refuse me and then delete me' }).waitFor();
  refused = 0;
  await sendFromPage(page, 'refuse me and then delete me too');
  const failed = page.locator('#messages li.failed', { hasText: 'delete me too' });
  await failed.waitFor();
  await failed.getByRole('button', { name: 'Delete' }).click();
  await failed.waitFor({ state: 'detached' });
  assert.deepEqual((await allMessages(server, 'errors')).map((m) => m.text),
    ['please refuse me once', 'refuse me and then delete me']);
  await context.close();
});

test('served over https, the page connects with wss to the same host', async () => {
  const secure = await new Server({ tls: true }).start();
  try {
    const { context, page } = await newPage(browser, { ignoreHTTPSErrors: true });
    const sockets = [];
    page.on('websocket', (ws) => sockets.push(ws.url()));
    await openChat(page, secure, { name: 'Tess', room: 'secure' });
    assert.ok(sockets.length >= 1);
    for (const u of sockets) assert.equal(u, `wss://127.0.0.1:${secure.port}/ws`);
    await sendFromPage(page, 'over TLS');
    await page.locator('#messages li.own:not(.unsent)', { hasText: 'over TLS' }).waitFor();
    assert.deepEqual((await allMessages(secure, 'secure')).map((m) => m.text), ['over TLS']);
    await context.close();
  } finally {
    await secure.cleanup();
  }
});

// Regression: Chromium negotiated HTTP/2 over TLS, where a WebSocket is an h2
// stream and the server's batched raw writes broke the framing: the first
// WebSocket got no welcome. The server now offers only http/1.1 (ALPN).
test('over https, the first WebSocket of a page is answered', async () => {
  const secure = await new Server({ tls: true }).start();
  try {
    const { context, page } = await newPage(browser, { ignoreHTTPSErrors: true });
    await page.goto(`${secure.url}/healthz`);
    const first = await page.evaluate((u) => new Promise((resolve) => {
      const ws = new WebSocket(u);
      ws.onopen = () => ws.send(JSON.stringify({ type: 'hello', name: 'x' }));
      ws.onmessage = (e) => { resolve(JSON.parse(e.data).type); ws.close(); };
      ws.onclose = (e) => resolve(`closed ${e.code}`);
    }), secure.wsUrl);
    await context.close();
    assert.equal(first, 'welcome');
  } finally {
    await secure.cleanup();
  }
});
