// Message text is rendered as text, never as HTML; only http(s) URLs
// become links, with rel="noopener noreferrer"; long text wraps.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, launchBrowser, newPage, openChat, sendFromPage, listTexts, waitOnline, WsClient, sleep } from './helpers.mjs';

let server, browser;
before(async () => {
  server = await startServer();
  browser = await launchBrowser();
});
after(async () => {
  await browser?.close();
  await server?.cleanup();
});

const PAYLOAD = '<img src=x onerror=alert(1)>';

async function noMarkup(page) {
  assert.equal(await page.locator('#messages img, #messages script, #messages iframe, #messages svg, #messages b').count(), 0);
  assert.deepEqual(page.errors.filter((e) => e.startsWith('dialog:')), [], 'no dialog opened');
  assert.equal(await page.evaluate(() => window.__pwned === undefined), true);
}

test('a message with HTML is shown as text', async () => {
  const a = await newPage(browser);
  const b = await newPage(browser);
  await openChat(a.page, server, { name: 'Mallory', room: 'xss' });
  await openChat(b.page, server, { name: 'Victim', room: 'xss' });

  await sendFromPage(a.page, PAYLOAD);
  const other = b.page.locator('#messages li', { hasText: PAYLOAD });
  await other.waitFor();
  await a.page.locator('#messages li.own:not(.unsent)', { hasText: PAYLOAD }).waitFor();
  assert.equal(await other.locator('.text').textContent(), PAYLOAD);
  assert.equal(await other.locator('.text').innerHTML(), '&lt;img src=x onerror=alert(1)&gt;');

  // More hostile text, sent outside the page, and in a name.
  const evil = await WsClient.connect(server.wsUrl, { name: '<b onmouseover=alert(2)>Eve</b>' });
  await evil.join('xss');
  const more = [
    '<script>window.__pwned = 1; alert(3)</script>',
    '<svg onload=alert(4)></svg> and <iframe src="javascript:alert(5)"></iframe>',
    'javascript:alert(6) is not a link',
    '"><img src=x onerror=alert(7)> in quotes',
  ];
  await evil.sendAll('xss', more);
  await b.page.locator('#messages li', { hasText: 'in quotes' }).waitFor();
  await b.page.locator('#messages .author', { hasText: '<b onmouseover=alert(2)>Eve</b>' }).first().waitFor();
  await b.page.locator('#members li', { hasText: '<b onmouseover=alert(2)>Eve</b>' }).waitFor();
  await sleep(300);
  for (const { page } of [a, b]) await noMarkup(page);
  assert.deepEqual(await listTexts(b.page), [PAYLOAD, ...more]);
  assert.equal(await b.page.locator('#messages a').count(), 0, 'no link for javascript:');

  // The same after a reload, when the text comes from the history.
  await b.page.reload();
  await waitOnline(b.page);
  await b.page.locator('#messages li', { hasText: 'in quotes' }).waitFor();
  await noMarkup(b.page);
  assert.deepEqual(await listTexts(b.page), [PAYLOAD, ...more]);

  // 1.1: an edited text is text too, in the list and in the announcement.
  const ids = (await evil.all('xss')).map((m) => m.id);
  const EDITED = '<img src=x onerror=alert(8)> edited <script>alert(9)</script>';
  evil.send({ type: 'edit', room: 'xss', id: ids[ids.length - 1], text: EDITED });
  const edited = b.page.locator('#messages li', { hasText: EDITED });
  await edited.locator('.edited').waitFor();
  assert.equal(await edited.locator('.text').textContent(), EDITED);
  await noMarkup(b.page);
  assert.match(await b.page.locator('#live').textContent(), /edited a message: <img src=x onerror=alert\(8\)> edited/);
  assert.equal(await b.page.locator('#live img, #live script, .toasts img').count(), 0);
  // Mallory's own markup in the edit box and in the delete confirmation.
  await a.page.locator('#text').press('ArrowUp');
  const editBox = a.page.getByRole('textbox', { name: 'Edit your message' });
  assert.equal(await editBox.inputValue(), PAYLOAD);
  await editBox.press('Escape');
  const mine = a.page.locator('#messages li.own', { hasText: PAYLOAD });
  await mine.hover();
  await mine.getByRole('button', { name: /^Actions for your message/ }).click();
  await a.page.getByRole('menuitem', { name: 'Delete' }).click();
  const quote = a.page.locator('#confirm-quote');
  await quote.waitFor();
  assert.equal(await quote.textContent(), PAYLOAD);
  assert.equal(await a.page.locator('#confirm-dialog img').count(), 0);
  await a.page.keyboard.press('Escape');
  await noMarkup(a.page);
  // A DM whose peer name is markup (the sidebar, the header, the
  // composer's label, the announcement).
  const victim = (await evil.join('xss')).members.find((u) => u.name === 'Victim');
  evil.send({ type: 'dm', user: victim.id });
  const dm = await evil.next((m) => m.type === 'joined' && m.room.startsWith('dm-'));
  await evil.sendAll(dm.room, ['<img src=x onerror=alert(10)> private']);
  const link = b.page.locator('#dms a', { hasText: '<b onmouseover=alert(2)>Eve</b>' });
  await link.waitFor();
  await link.click();
  await b.page.locator('#room-name', { hasText: '<b onmouseover=alert(2)>Eve</b>' }).waitFor();
  await b.page.locator('#messages li', { hasText: '<img src=x onerror=alert(10)> private' }).waitFor();
  assert.equal(await b.page.locator('#dms b, #dms img, #room-title b, #live b, #live img, .toasts b').count(), 0);
  assert.equal(await b.page.getByRole('textbox', { name: 'Message <b onmouseover=alert(2)>Eve</b>' }).count(), 1);
  await noMarkup(b.page);
  // 1.1: search results (the text, with the words found marked, the
  // author's name, a DM's peer) and a query that is markup are text too.
  await b.page.keyboard.press('Control+k');
  const search = b.page.getByRole('searchbox', { name: 'Search messages' });
  await search.fill('img onerror');
  await search.press('Enter');
  await b.page.locator('#search-status', { hasText: /results? for “img onerror”/ }).waitFor();
  const results = b.page.locator('#search-results a.result');
  assert.ok(await results.count() >= 2);
  assert.ok((await b.page.locator('#search-results mark').allTextContents()).every((t) => /^(img|onerror)$/i.test(t)));
  await b.page.locator('#search-results .result-text', { hasText: '<img src=x onerror=alert(10)> private' }).waitFor();
  await b.page.locator('#search-results .result-author', { hasText: '<b onmouseover=alert(2)>Eve</b>' }).first().waitFor();
  await b.page.locator('#search-results .result-room', { hasText: '@<b onmouseover=alert(2)>Eve</b>' }).waitFor();
  assert.equal(await b.page.locator('#search-results img, #search-results script, #search-results b, #search-results svg, #search-results iframe').count(), 0);
  await search.fill('<b>bold</b> <img src=x onerror=alert(11)>');
  await search.press('Enter');
  await b.page.locator('#search-status', { hasText: '“<b>bold</b> <img src=x onerror=alert(11)>”' }).waitFor();
  assert.equal(await b.page.locator('#search img, #search b').count(), 0);
  await b.page.keyboard.press('Escape');
  await noMarkup(b.page);
  evil.close();
  await a.context.close();
  await b.context.close();
});

test('URLs become safe links and long messages wrap', async () => {
  const { context, page } = await newPage(browser, { viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true });
  await openChat(page, server, { name: 'Lin', room: 'links' });
  await sendFromPage(page, 'See https://example.com/docs?a=1&b=2#top, and (www.example.org/path).');
  const li = page.locator('#messages li', { hasText: 'See https://' });
  await li.waitFor();
  const links = await li.locator('a').evaluateAll((as) => as.map((a) => ({
    href: a.getAttribute('href'), text: a.textContent, rel: a.rel, target: a.target,
  })));
  assert.deepEqual(links, [
    { href: 'https://example.com/docs?a=1&b=2#top', text: 'https://example.com/docs?a=1&b=2#top', rel: 'noopener noreferrer', target: '_blank' },
    { href: 'https://www.example.org/path', text: 'www.example.org/path', rel: 'noopener noreferrer', target: '_blank' },
  ]);
  assert.equal(await li.locator('.text').textContent(), 'See https://example.com/docs?a=1&b=2#top, and (www.example.org/path).');

  // A long unbroken string and a long sentence wrap inside the screen.
  await sendFromPage(page, 'x'.repeat(3000));
  await sendFromPage(page, 'word '.repeat(300).trim());
  await page.locator('#messages li.own:not(.unsent)').nth(2).waitFor();
  const overflow = await page.evaluate(() => {
    const s = document.getElementById('scroller');
    const wide = [...document.querySelectorAll('#messages .bubble')].filter((b) => b.getBoundingClientRect().right > window.innerWidth + 1);
    return { scroll: s.scrollWidth - s.clientWidth, doc: document.documentElement.scrollWidth - window.innerWidth, wide: wide.length };
  });
  assert.deepEqual(overflow, { scroll: 0, doc: 0, wide: 0 });
  assert.deepEqual(page.errors, []);
  await context.close();
});
