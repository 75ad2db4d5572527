// The widget on a page of another origin: one snippet gives a chat button,
// the panel holds /embed in an iframe, it chats, reports unread counts with
// a DOM event, opens and closes from host code, and hands a site's token to
// the chat so signed-in users appear under their real name.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, launchBrowser, newPage, WsClient, mintToken, sleep, T } from './helpers.mjs';
import { startHost, shopPage, RECORD_EVENTS } from './host.mjs';

const SECRET = 'e2e-widget-secret-0123456789abcdef';
let server, browser, host;

// A stylesheet that would break a widget living in the host's DOM.
const HOSTILE = `<style>
  * { font-family: "Comic Sans MS", cursive !important; box-sizing: content-box !important; }
  button { display: none !important; }
  iframe { width: 10px !important; height: 10px !important; }
  div { padding: 40px !important; position: static !important; }
</style>`;

// The site's own code: when the widget asks, fetch a token from our backend
// and hand it over with window.postMessage.
const ANSWER_TOKEN_REQUESTS = `<script>
  addEventListener('parley:token-request', async () => {
    const token = await (await fetch('/token')).text();
    window.postMessage({ type: 'parley:token', token }, location.origin);
  });
</script>`;

before(async () => {
  server = await startServer({ jwtSecret: SECRET });
  browser = await launchBrowser();
  const snippet = (attrs = '') => ({ chatUrl }) => shopPage({
    extraHead: HOSTILE + RECORD_EVENTS,
    snippet: `<script src="${chatUrl}/widget.js" data-room="support"${attrs} async></script>`,
  });
  host = await startHost({
    chatUrl: server.url,
    secret: SECRET,
    pages: {
      '/': snippet(),
      '/signed-in': (ctx) => snippet(` data-token="${ctx.mint()}"`)(ctx),
      '/late-token': ({ chatUrl }) => shopPage({
        extraHead: RECORD_EVENTS + ANSWER_TOKEN_REQUESTS,
        snippet: `<script src="${chatUrl}/widget.js" data-room="support" data-auth="token" async></script>`,
      }),
      '/expired': ({ chatUrl }) => shopPage({
        extraHead: RECORD_EVENTS + ANSWER_TOKEN_REQUESTS,
        snippet: `<script src="${chatUrl}/widget.js" data-room="support" data-token="${
          mintToken(SECRET, { sub: 'user-42', name: 'Dana Scully', ttl: -60 })}" async></script>`,
      }),
    },
  });
});
after(async () => {
  await browser?.close();
  await host?.close();
  await server?.cleanup();
});

const events = (page, type) => page.evaluate((t) => window.events.filter((e) => e.type === t).map((e) => e.detail), type);

test('a page on another origin embeds the widget, opens it and chats; unread events fire', async () => {
  const agent = await WsClient.connect(server.wsUrl, { name: 'Support agent' });
  await agent.join('support');
  const { context, page } = await newPage(browser);
  await page.goto(host.url + '/');
  assert.notEqual(new URL(host.url).origin, new URL(server.url).origin);

  const launcher = page.getByRole('button', { name: 'Open chat' });
  await launcher.waitFor();
  assert.ok(await launcher.isVisible(), 'the host stylesheet cannot hide the button');
  const iframe = page.locator('iframe[title="Chat"]');
  const src = await iframe.getAttribute('src');
  const expect = new URL(`${server.url}/embed`);
  assert.equal(new URL(src).origin + new URL(src).pathname, expect.href);
  assert.equal(new URL(src).searchParams.get('room'), 'support');
  assert.equal(new URL(src).searchParams.get('origin'), host.url);
  await page.waitForFunction(() => window.events.some((e) => e.type === 'parley:ready'));

  await launcher.click();
  const panel = page.locator('.panel');
  await page.waitForFunction(() => window.Parley.isOpen());
  assert.equal((await events(page, 'parley:open')).length, 1);
  const box = await iframe.boundingBox();
  assert.ok(box.width > 300 && box.height > 400, `the panel has its size (${box.width}x${box.height})`);

  const chat = page.frameLocator('iframe[title="Chat"]');
  // Opening moves focus into the chat: the name field, for a new visitor.
  await page.waitForFunction(() => document.activeElement?.tagName === 'PARLEY-WIDGET');
  await chat.locator('#name-input:focus').waitFor();
  await chat.getByLabel('Display name').fill('Visitor');
  await chat.getByRole('button', { name: 'Join the chat' }).click();
  await chat.locator('#conn[data-state="online"]').waitFor({ timeout: 15000 * T });
  await chat.locator('#room-name', { hasText: 'support' }).waitFor();
  const text = chat.getByRole('textbox', { name: 'Message #support' });
  await text.fill('Hi, my order #1042 has not arrived');
  await text.press('Enter');
  const got = await agent.next((m) => m.type === 'message' && m.text.startsWith('Hi, my order'));
  assert.equal(got.user.name, 'Visitor');
  await agent.sendAll('support', ['Sorry about that! Let me check.']);
  await chat.locator('#messages li:not(.own)', { hasText: 'Let me check' }).waitFor();

  // Closed from host code: new messages count as unread, reported to the host.
  await page.evaluate(() => window.Parley.close());
  await page.waitForFunction(() => !window.Parley.isOpen());
  assert.equal(await panel.evaluate((p) => getComputedStyle(p).visibility), 'hidden');
  await agent.sendAll('support', ['It ships tomorrow morning.']);
  await page.waitForFunction(() => window.events.some((e) => e.type === 'parley:unread' && e.detail.count === 1));
  assert.deepEqual((await events(page, 'parley:unread')).at(-1), { count: 1, room: 'support' });
  await page.getByRole('button', { name: 'Open chat, 1 unread message' }).waitFor();
  assert.equal(await page.evaluate(() => window.Parley.unread), 1);
  await agent.sendAll('support', ['Anything else I can help with?']);
  await page.waitForFunction(() => window.events.some((e) => e.type === 'parley:unread' && e.detail.count === 2));

  // toggle() opens it again: read, so the count goes back to 0.
  await page.evaluate(() => window.Parley.toggle());
  await page.waitForFunction(() => window.events.filter((e) => e.type === 'parley:unread').at(-1).detail.count === 0);
  await chat.locator('#messages li', { hasText: 'Anything else' }).waitFor();
  assert.ok(await chat.locator('#messages li', { hasText: 'Anything else' }).isVisible());

  // The close button inside the chat closes the panel and gives focus back.
  await chat.locator('#text:focus').waitFor();
  await chat.getByRole('button', { name: 'Close chat' }).click();
  await page.waitForFunction(() => !window.Parley.isOpen());
  await page.locator('.launcher:focus').waitFor();
  assert.ok((await events(page, 'parley:close')).length >= 2);
  // open() and Escape inside the chat.
  await page.evaluate(() => window.Parley.open());
  await page.waitForFunction(() => window.Parley.isOpen());
  await chat.getByRole('textbox', { name: 'Message #support' }).press('Escape');
  await page.waitForFunction(() => !window.Parley.isOpen());

  // The host page's postMessage API drives it too.
  await page.evaluate(() => window.postMessage({ type: 'parley:open' }, location.origin));
  await page.waitForFunction(() => window.Parley.isOpen());
  assert.deepEqual(page.errors, []);
  agent.close();
  await context.close();
});

test('a token in data-token signs the user in under their real name, without putting it in a URL', async () => {
  const agent = await WsClient.connect(server.wsUrl, { name: 'Support agent' });
  await agent.join('support');
  const { context, page } = await newPage(browser);
  const urls = [];
  context.on('request', (r) => urls.push(r.url()));
  page.on('websocket', (ws) => urls.push(ws.url()));
  await page.goto(host.url + '/signed-in');
  const token = host.tokens.at(-1);
  await page.getByRole('button', { name: 'Open chat' }).click();
  const chat = page.frameLocator('iframe[title="Chat"]');
  await chat.locator('#conn[data-state="online"]').waitFor({ timeout: 15000 * T });
  // No name prompt: the token names the user.
  assert.equal(await chat.locator('#name-dialog').evaluate((d) => d.open), false);
  const joined = await agent.next((m) => m.type === 'presence' && m.event === 'join' && m.user.id === 'user-42');
  assert.equal(joined.user.name, 'Dana Scully');
  await page.waitForFunction(() => window.events.some((e) => e.type === 'parley:signed-in'));
  assert.equal((await events(page, 'parley:signed-in'))[0].user.name, 'Dana Scully');

  const text = chat.getByRole('textbox', { name: 'Message #support' });
  await text.fill('Signed in and asking about a return');
  await text.press('Enter');
  const m = await agent.next((x) => x.type === 'message' && x.text.includes('asking about a return'));
  assert.deepEqual(m.user, { id: 'user-42', name: 'Dana Scully' });
  await chat.locator('#messages li.own:not(.unsent)', { hasText: 'asking about a return' }).waitFor();
  // The token reached the chat by postMessage only: no request URL has it.
  assert.deepEqual(urls.filter((u) => u.includes(token)), []);
  assert.deepEqual(page.errors, []);
  agent.close();
  await context.close();
});

test('a token handed over later with window.postMessage signs the user in', async () => {
  const agent = await WsClient.connect(server.wsUrl, { name: 'Support agent' });
  await agent.join('support');
  const { context, page } = await newPage(browser);
  await page.goto(host.url + '/late-token');
  await page.waitForFunction(() => window.events.some((e) => e.type === 'parley:token-request'));
  const joined = await agent.next((m) => m.type === 'presence' && m.event === 'join' && m.user.id === 'user-42');
  assert.equal(joined.user.name, 'Dana Scully');
  // Connected before it was ever opened, so unread counts work from the start.
  await agent.sendAll('support', ['Hello Dana, your repair is ready.']);
  await page.waitForFunction(() => window.events.some((e) => e.type === 'parley:unread' && e.detail.count === 1));
  await page.evaluate(() => window.Parley.open());
  const chat = page.frameLocator('iframe[title="Chat"]');
  await chat.locator('#messages li', { hasText: 'your repair is ready' }).waitFor();
  await chat.locator('#me-name', { hasText: 'Dana Scully' }).waitFor({ state: 'attached' });
  assert.deepEqual(page.errors, []);
  agent.close();
  await context.close();
});

test('the chat ignores tokens posted by anyone but its parent page origin', async () => {
  // /embed opened directly (not framed) has no parent to trust; one framed
  // by a page that claims another origin accepts nothing from it.
  const { context, page } = await newPage(browser);
  await page.goto(host.url + '/');
  const frame = await (await page.locator('iframe[title="Chat"]').elementHandle()).contentFrame();
  await frame.waitForFunction(() => window.parley !== undefined);
  // A message from the iframe itself (not the parent) is not a token handoff.
  await frame.evaluate(() => window.postMessage({ type: 'parley:token', token: 'x.y.z' }, '*'));
  await sleep(300);
  assert.equal(await frame.evaluate(() => (window.parley.auth || {}).token), undefined);
  await context.close();
});

test('an expired token is reported, and a fresh one handed over signs the user in', async () => {
  const agent = await WsClient.connect(server.wsUrl, { name: 'Support agent' });
  await agent.join('support');
  const { context, page } = await newPage(browser);
  await page.goto(host.url + '/expired');
  await page.waitForFunction(() => window.events.some((e) => e.type === 'parley:auth-error'));
  assert.equal((await events(page, 'parley:auth-error'))[0].code, 'unauthorized');
  assert.ok((await events(page, 'parley:token-request')).length >= 1);
  // The page answered the request with a fresh token from its backend.
  const joined = await agent.next((m) => m.type === 'presence' && m.event === 'join' && m.user.id === 'user-42');
  assert.equal(joined.user.name, 'Dana Scully');
  await page.evaluate(() => window.Parley.open());
  const chat = page.frameLocator('iframe[title="Chat"]');
  await chat.locator('#conn[data-state="online"]').waitFor({ timeout: 15000 * T });
  assert.deepEqual(page.errors, []);
  agent.close();
  await context.close();
});
