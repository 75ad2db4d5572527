// Reconnecting: the server is SIGKILLed and restarted on the same port and
// database while a message is pending; the page reconnects by itself and
// the message ends up exactly once in the DOM and in the history, with no
// gap for what others said meanwhile.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, launchBrowser, newPage, openChat, sendFromPage, listTexts, waitOnline, reconnectNow, WsClient, allMessages, sleep, T } from './helpers.mjs';

let server, browser;
before(async () => {
  server = await startServer();
  browser = await launchBrowser();
});
after(async () => {
  await browser?.close();
  await server?.cleanup();
});

const count = (page, text) => page.locator('#messages .text').evaluateAll(
  (els, t) => els.filter((e) => e.textContent === t).length, text);

test('killed while a message is pending: reconnects and delivers it exactly once', async () => {
  const { context, page } = await newPage(browser);
  await openChat(page, server, { name: 'Pat', room: 'ops' });
  const other = await WsClient.connect(server.wsUrl, { name: 'Quinn' });
  await other.join('ops');
  await other.sendAll('ops', ['before the crash']);
  await page.locator('#messages li', { hasText: 'before the crash' }).waitFor();
  other.close();

  // Freeze the server so the send cannot be answered, then kill it.
  server.signal('SIGSTOP');
  const text = 'Deploy finished at 14:02, all green';
  await sendFromPage(page, text);
  const pending = page.locator('#messages li.unsent', { hasText: text });
  await pending.waitFor();
  assert.match(await pending.locator('.status').textContent(), /Sending/);
  await sleep(300);
  await server.kill();

  // The page notices, says so, and keeps the message pending.
  await page.locator('#conn:not([data-state="online"])').waitFor({ timeout: 10000 * T });
  await page.locator('#messages li.unsent', { hasText: text }).waitFor();
  await page.locator('#messages li.unsent .status', { hasText: 'Waiting for connection' }).waitFor({ timeout: 10000 * T });

  // Back on the same port and database. Someone talks before the page is back.
  await server.start();
  const q = await WsClient.connect(server.wsUrl, { name: 'Quinn' });
  await q.join('ops');
  await q.sendAll('ops', ['said while you were away 1', 'said while you were away 2']);

  await waitOnline(page, 40000 * T);
  await page.locator('#messages li.own:not(.unsent)', { hasText: text }).waitFor({ timeout: 10000 * T });
  await page.locator('#messages li', { hasText: 'said while you were away 2' }).waitFor();
  await sleep(1000); // room for a duplicate to show up, if there were one
  assert.equal(await count(page, text), 1, 'once in the page');
  assert.equal(await page.locator('#messages li.unsent').count(), 0);
  const history = (await allMessages(server, 'ops')).map((m) => m.text);
  assert.equal(history.filter((t) => t === text).length, 1, 'once in the history');
  // The page shows exactly the history: no gap, no duplicate, same order.
  assert.deepEqual(await listTexts(page), history);
  q.close();
  assert.deepEqual(page.errors, []);
  await context.close();
});

test('killed after the message was stored but before the ack arrived: not duplicated', async () => {
  const { context, page } = await newPage(browser);
  // Pass every frame through to the real server, except that on the first
  // connection the ack and the broadcast of the message under test never
  // reach the page (as if the server died just after committing it).
  const text = 'committed but never acked';
  let conn = 0, cid = null;
  await page.routeWebSocket(/\/ws$/, (ws) => {
    const n = ++conn;
    const srv = ws.connectToServer();
    ws.onMessage((data) => {
      const m = JSON.parse(String(data));
      if (m.type === 'send' && m.text === text) cid = m.client_id;
      srv.send(data);
    });
    srv.onMessage((data) => {
      const m = JSON.parse(String(data));
      if (n === 1 && cid && (m.type === 'ack' || m.type === 'message') && m.client_id === cid) return;
      ws.send(data);
    });
  });
  await openChat(page, server, { name: 'Rene', room: 'acks' });
  await sendFromPage(page, text);
  await page.locator('#messages li.unsent', { hasText: text }).waitFor();
  // Wait until it is in the database, then kill the server.
  for (let i = 0; ; i++) {
    if ((await allMessages(server, 'acks')).some((m) => m.text === text)) break;
    assert.ok(i < 100, 'the message should be stored');
    await sleep(50);
  }
  assert.equal(await page.locator('#messages li.unsent', { hasText: text }).count(), 1, 'still pending in the page');
  await server.kill();
  await page.locator('#conn:not([data-state="online"])').waitFor({ timeout: 10000 * T });
  await server.start();
  await waitOnline(page, 40000 * T);
  await page.locator('#messages li.own:not(.unsent)', { hasText: text }).waitFor({ timeout: 10000 * T });
  await sleep(1000);
  assert.equal(await count(page, text), 1, 'once in the page');
  assert.equal((await allMessages(server, 'acks')).filter((m) => m.text === text).length, 1, 'once in the history');
  assert.ok(conn >= 2, 'the page reconnected');
  await context.close();
});

test('a graceful restart (1001) and several pending messages: all delivered once, in order', async () => {
  const { context, page } = await newPage(browser);
  await openChat(page, server, { name: 'Sky', room: 'burst' });
  server.signal('SIGSTOP');
  const texts = Array.from({ length: 5 }, (_, i) => `queued ${i + 1}`);
  for (const t of texts) await sendFromPage(page, t);
  await page.locator('#messages li.unsent', { hasText: 'queued 5' }).waitFor();
  server.signal('SIGCONT');
  // SIGCONT lets it answer; restart at once, so some may be acked, some not.
  await server.restart();
  await waitOnline(page, 40000 * T);
  await page.locator('#messages li.own:not(.unsent)', { hasText: 'queued 5' }).waitFor({ timeout: 10000 * T });
  await sleep(800);
  assert.deepEqual(await listTexts(page), texts);
  assert.deepEqual((await allMessages(server, 'burst')).map((m) => m.text), texts);
  assert.deepEqual(page.errors, []);
  await context.close();
});

test('a long outage (1013, then over 1000 missed messages): caught up with no gap', async () => {
  const big = await startServer({ args: ['--rate', '5000', '--burst', '5000'] });
  try {
    const { context, page } = await newPage(browser);
    // Between the page and the real server: `blocked` refuses connections,
    // as a network outage would; the open one is closed with 1013 (the
    // server's "slow consumer" code).
    let blocked = false;
    const open = [];
    let closes = 0;
    await page.routeWebSocket(/\/ws$/, (ws) => {
      if (blocked) {
        closes++;
        ws.close({ code: 1013, reason: 'try again later' });
        return;
      }
      const srv = ws.connectToServer();
      open.push({ ws, srv });
      ws.onMessage((d) => srv.send(d));
      srv.onMessage((d) => ws.send(d));
    });
    let incomplete = 0;
    page.on('websocket', (w) => w.on('framereceived', (f) => {
      if (String(f.payload).startsWith('{"type":"joined"') && String(f.payload).includes('"complete":false')) incomplete++;
    }));
    await openChat(page, big, { name: 'Uma', room: 'outage' });
    const seeder = await WsClient.connect(big.wsUrl, { name: 'Feed' });
    await seeder.join('outage');
    await seeder.sendAll('outage', ['before 1', 'before 2']);
    await page.locator('#messages li', { hasText: 'before 2' }).waitFor();

    blocked = true;
    for (const { ws, srv } of open.splice(0)) {
      ws.close({ code: 1013, reason: 'slow consumer' });
      srv.close();
    }
    await page.locator('#conn:not([data-state="online"])').waitFor();
    await page.locator('#banner', { hasText: 'The connection was lost' }).waitFor();
    const missed = Array.from({ length: 1100 }, (_, i) => `missed ${i + 1}`);
    await seeder.sendAll('outage', missed, 'missed');
    assert.ok(closes >= 1, 'the page kept trying');
    blocked = false;
    await reconnectNow(page);
    await page.locator('#messages li', { hasText: 'missed 1100' }).waitFor({ timeout: 30000 * T });
    await seeder.sendAll('outage', ['after']);
    await page.locator('#messages li', { hasText: /^.*after$/ }).last().waitFor();
    await sleep(500);
    const history = (await allMessages(big, 'outage')).map((m) => m.text);
    assert.equal(history.length, 1103);
    assert.equal(incomplete, 1, 'the rejoin said complete: false, and the page paged forward');
    assert.deepEqual(await listTexts(page), history, 'every missed message once, in order');
    assert.equal(await page.locator('#banner').isVisible(), false);
    seeder.close();
    assert.deepEqual(page.errors, []);
    await context.close();
  } finally {
    await big.cleanup();
  }
});
