// Screenshots for people to look at (tests/artifacts/, git-ignored): the
// page on a desktop and a phone, light and dark, its connection states,
// the widget open on a host page, and a conversation with an edited
// message and a deleted one (1.1). Also checks what can be checked
// without eyes: no sideways scrolling on a phone, the colour scheme
// followed, text contrast of messages.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, launchBrowser, newPage, openChat, sendFromPage, waitOnline, WsClient, artifact, sleep, T } from './helpers.mjs';
import { startHost, shopPage } from './host.mjs';

let server, browser, host;
const people = {};
const ROOM = 'product';

const DESKTOP = { viewport: { width: 1280, height: 800 } };
const PHONE = { viewport: { width: 390, height: 844 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true };

before(async () => {
  server = await startServer();
  browser = await launchBrowser();
  for (const name of ['Maya Chen', 'Jonas Weber', 'Priya Patel']) {
    people[name] = await WsClient.connect(server.wsUrl, { name });
  }
  for (const p of Object.values(people)) await p.join(ROOM);
  await people['Maya Chen'].join('design');
  await people['Jonas Weber'].join('design');
  await people['Priya Patel'].join('ops');
  await people['Jonas Weber'].join('support');
  const say = (who, text) => people[who].sendAll(ROOM, [text]);
  await say('Maya Chen', 'Morning! The 2.3 release candidate is up on staging.');
  await say('Maya Chen', 'Changelog and upgrade notes: https://example.com/releases/2.3');
  await say('Jonas Weber', 'Nice. I will run the migration tests against a copy of the production data this afternoon.');
  await say('Priya Patel', 'Reminder: the search index needs a rebuild after the migration. It takes about 20 minutes on the big tenants, so please plan for it.');
  host = await startHost({
    chatUrl: server.url,
    pages: {
      '/': ({ chatUrl }) => shopPage({ snippet: `<script src="${chatUrl}/widget.js" data-room="${ROOM}" data-title="Acme support" async></script>` }),
    },
  });
});
after(async () => {
  for (const p of Object.values(people)) p.close();
  await browser?.close();
  await host?.close();
  await server?.cleanup();
});

// Every page below is the same person, Sam: the first one picks the name,
// the others start with the name and the resume token it got.
let sam = null;
let typingAt = 0;
async function openAsSam(context, page, room = ROOM) {
  if (sam) {
    await context.addInitScript((s) => {
      localStorage.setItem('parley.name', s.name);
      sessionStorage.setItem('parley.resume', s.resume);
    }, sam);
    await openChat(page, server, { room });
  } else {
    await openChat(page, server, { name: 'Sam Rivera', room });
    sam = await page.evaluate(() => ({ name: localStorage.getItem('parley.name'), resume: sessionStorage.getItem('parley.resume') }));
  }
}

// The viewer's part of the conversation, once, from the first page.
let seeded = false;
async function conversation(page) {
  if (seeded) return;
  seeded = true;
  await sendFromPage(page, 'Thanks! I will schedule the rebuild for 16:00 and post in #ops when it starts.');
  await page.locator('#messages li.own:not(.unsent)').first().waitFor();
  await people['Maya Chen'].sendAll(ROOM, ['Perfect. If nothing blocks by tomorrow noon, we ship.']);
  await sendFromPage(page, 'Sounds good to me.');
  await page.locator('#messages li.own:not(.unsent)', { hasText: 'Sounds good' }).waitFor();
}

async function checkLayout(page, scheme) {
  const r = await page.evaluate(() => {
    const lum = (c) => {
      const [r, g, b] = c.match(/[\d.]+/g).slice(0, 3).map(Number).map((v) => {
        v /= 255;
        return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4;
      });
      return 0.2126 * r + 0.7152 * g + 0.0722 * b;
    };
    const contrast = (a, b) => {
      const [x, y] = [lum(a), lum(b)].sort((p, q) => q - p);
      return (x + 0.05) / (y + 0.05);
    };
    const worst = (sel) => Math.min(...[...document.querySelectorAll(sel)].map((t) => {
      const bubble = t.closest('.bubble');
      return contrast(getComputedStyle(t).color, getComputedStyle(bubble).backgroundColor);
    }));
    return {
      overflow: document.documentElement.scrollWidth - window.innerWidth,
      bg: lum(getComputedStyle(document.body).backgroundColor),
      own: worst('.msg.own:not(.unsent) .text'),
      other: worst('.msg:not(.own) .text'),
    };
  });
  assert.equal(r.overflow, 0, 'no sideways scrolling');
  if (scheme === 'dark') assert.ok(r.bg < 0.05, 'dark background');
  else assert.ok(r.bg > 0.8, 'light background');
  assert.ok(r.own >= 4.5, `own message contrast ${r.own.toFixed(2)}`);
  assert.ok(r.other >= 4.5, `others' message contrast ${r.other.toFixed(2)}`);
}

for (const [device, opts] of [['desktop', DESKTOP], ['phone', PHONE]]) {
  for (const scheme of ['light', 'dark']) {
    test(`the page on a ${device}, ${scheme}`, async () => {
      const { context, page } = await newPage(browser, { ...opts, colorScheme: scheme });
      await openAsSam(context, page);
      await conversation(page);
      await page.locator('#messages li', { hasText: 'Sounds good to me.' }).waitFor();
      assert.equal(await page.locator('#messages li.own').count(), 2, 'the same person in every context');
      await page.locator('#rooms a[href="#design"]').waitFor({ state: 'attached' });
      // The server drops a connection's typing beyond one per 2 s per room,
      // timed when it handles the frame: the clock starts at the pong that
      // follows the typing, not at the send.
      await sleep(Math.max(0, typingAt + 2100 - Date.now()));
      const priya = people['Priya Patel'];
      priya.send({ type: 'typing', room: ROOM });
      priya.send({ type: 'ping', ref: `typed-${device}-${scheme}` });
      await priya.next((m) => m.type === 'pong' && m.ref === `typed-${device}-${scheme}`);
      typingAt = Date.now();
      await page.locator('#typing', { hasText: 'Priya Patel is typing' }).waitFor();
      await page.locator('#text').blur();
      await checkLayout(page, scheme);
      await page.screenshot({ path: artifact(`page-${device}-${scheme}.png`) });
      if (device === 'phone') {
        await page.getByRole('button', { name: 'Rooms and people' }).click();
        await page.locator('#rooms a[aria-current]').waitFor();
        await sleep(100);
        await page.screenshot({ path: artifact(`page-phone-drawer-${scheme}.png`) });
        await page.keyboard.press('Escape');
        assert.equal(await page.getByRole('button', { name: 'Rooms and people' }).getAttribute('aria-expanded'), 'false');
      }
      assert.deepEqual(page.errors, []);
      await context.close();
    });
  }
}

test('first visit: the name dialog', async () => {
  for (const scheme of ['light', 'dark']) {
    const { context, page } = await newPage(browser, { ...DESKTOP, colorScheme: scheme });
    await page.goto(`${server.url}/#${ROOM}`);
    await page.getByLabel('Display name').waitFor();
    assert.equal(await page.evaluate(() => document.activeElement.id), 'name-input');
    await page.getByRole('button', { name: 'Join the chat' }).click();
    await page.locator('#name-error', { hasText: 'Please enter a name.' }).waitFor();
    await page.screenshot({ path: artifact(`name-dialog-${scheme}.png`) });
    await context.close();
  }
});

test('connection states: reconnecting with a pending message, and a refused one', async () => {
  const { context, page } = await newPage(browser, { ...DESKTOP, colorScheme: 'light' });
  await page.routeWebSocket(/\/ws$/, (ws) => {
    const srv = ws.connectToServer();
    ws.onMessage((data) => {
      const m = JSON.parse(String(data));
      if (m.type === 'send' && m.text.startsWith('Can someone')) {
        ws.send(JSON.stringify({ type: 'error', code: 'overloaded', message: 'database queue full', ref: m.ref }));
        return;
      }
      srv.send(data);
    });
  });
  await openAsSam(context, page);
  await page.locator('#messages li', { hasText: 'we ship' }).waitFor();
  await sendFromPage(page, 'Can someone review the upgrade notes before lunch?');
  await page.locator('#messages li.failed').waitFor();
  await page.screenshot({ path: artifact('page-failed-light.png') });
  server.signal('SIGSTOP');
  await sendFromPage(page, 'Drafting the release notes now.');
  await page.locator('#messages li.pending').waitFor();
  await server.kill();
  await page.locator('#conn[data-state="waiting"]').waitFor({ timeout: 10000 * T });
  await page.locator('#messages li.pending .status', { hasText: 'Waiting for connection' }).waitFor();
  await page.locator('#text').blur();
  await page.screenshot({ path: artifact('page-reconnecting-light.png') });
  await server.start();
  await waitOnline(page, 40000 * T);
  await page.locator('#messages li.own:not(.unsent)', { hasText: 'Drafting the release notes' }).waitFor();
  // The people connected over WebSocket were dropped by the kill: bring them back.
  for (const [name, p] of Object.entries(people)) {
    p.close();
    people[name] = await WsClient.connect(server.wsUrl, { name });
    await people[name].join(ROOM);
  }
  await context.close();
});

const VISITS = {
  desktop: { name: 'Alex', ask: 'Hi! Does the 2.3 release change the export format?', answer: 'Hi Alex! No, exports stay the same. Only the import got faster.' },
  phone: { name: 'Robin', ask: 'Can I get the release notes by email?', answer: 'Sure, Robin: there is a sign-up box at the bottom of the changelog page.' },
};
for (const [device, opts] of [['desktop', DESKTOP], ['phone', PHONE]]) {
  test(`the widget open on a host page, ${device}`, async () => {
    const { context, page } = await newPage(browser, { ...opts, colorScheme: 'light' });
    await page.goto(host.url + '/');
    await page.getByRole('button', { name: 'Open chat' }).waitFor();
    await page.waitForFunction(() => window.Parley && document.querySelector('parley-widget'));
    await sleep(300);
    await page.screenshot({ path: artifact(`widget-closed-${device}.png`) });
    await page.getByRole('button', { name: 'Open chat' }).click();
    const chat = page.frameLocator('iframe[title="Acme support"]');
    const v = VISITS[device];
    await chat.getByLabel('Display name').fill(v.name);
    await chat.getByRole('button', { name: 'Join the chat' }).click();
    await chat.locator('#conn[data-state="online"]').waitFor({ timeout: 15000 * T });
    const box = chat.getByRole('textbox', { name: `Message #${ROOM}` });
    await box.fill(v.ask);
    await box.press('Enter');
    await people['Jonas Weber'].next((m) => m.type === 'message' && m.text === v.ask);
    await people['Jonas Weber'].sendAll(ROOM, [v.answer]);
    await chat.locator('#messages li', { hasText: v.answer }).waitFor();
    await chat.locator('#text').blur();
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.equal(overflow, 0);
    await sleep(300);
    await page.screenshot({ path: artifact(`widget-open-${device}.png`) });
    if (device === 'desktop') {
      await page.evaluate(() => window.Parley.close());
      await people['Jonas Weber'].sendAll(ROOM, ['Anything else?']);
      await page.getByRole('button', { name: 'Open chat, 1 unread message' }).waitFor();
      await sleep(300);
      await page.screenshot({ path: artifact('widget-unread-desktop.png') });
    }
    assert.deepEqual(page.errors, []);
    await context.close();
  });
}

// A room conversation (1.1) with an edited message and a tombstone: desktop
// light and dark (with the message menu open, and editing in place), and a
// phone in both.
test('a conversation with an edit and a tombstone: light, dark, phone', async () => {
  const EDITS = 'launch';
  const maya = people['Maya Chen'];
  const jonas = people['Jonas Weber'];
  await maya.join(EDITS);
  await jonas.join(EDITS);
  let seededEdits = false;
  const shots = [['desktop', DESKTOP, 'light'], ['desktop', DESKTOP, 'dark'], ['phone', PHONE, 'light'], ['phone', PHONE, 'dark']];
  for (const [device, opts, scheme] of shots) {
    const { context, page } = await newPage(browser, { ...opts, colorScheme: scheme });
    await openAsSam(context, page, EDITS);
    if (!seededEdits) {
      seededEdits = true;
      await maya.sendAll(EDITS, ['Launch checklist is in the wiki. Anything missing?']);
      const box = page.locator('#text');
      for (const t of ['The status page update is not on it yet.', 'Can you send me the draft before 3?', 'Never mind, found it in the wiki.']) {
        await box.fill(t);
        await box.press('Enter');
        await page.locator('#messages li.own:not(.unsent)', { hasText: t }).waitFor();
      }
      const [ack] = await jonas.sendAll(EDITS, ['Added it. I will post the anouncement at 9.']);
      jonas.send({ type: 'edit', room: EDITS, id: ack.id, text: 'Added it. I will post the announcement at 9.' });
      await page.locator('#messages li .edited').waitFor();
      // Sam deletes his last message.
      const last = page.locator('#messages li', { hasText: 'Never mind' });
      await last.hover();
      await last.getByRole('button', { name: /^Actions for your message/ }).click();
      await page.getByRole('menuitem', { name: 'Delete' }).click();
      await page.getByRole('dialog', { name: 'Delete this message?' }).getByRole('button', { name: 'Delete' }).click();
      await page.locator('#messages li.deleted .tombstone').waitFor();
      await maya.sendAll(EDITS, ['Great, thanks both!']);
    }
    await page.locator('#messages li', { hasText: 'Great, thanks both!' }).waitFor();
    await page.locator('#messages li.deleted .tombstone', { hasText: 'Message deleted' }).waitFor();
    await page.locator('#messages li', { hasText: 'the announcement at 9' }).locator('.edited').waitFor();
    assert.equal(await page.locator('#messages li', { hasText: 'anouncement' }).count(), 0);
    assert.equal(await page.locator('#room-name').textContent(), EDITS);
    await page.locator('#text').blur();
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.equal(overflow, 0, 'no sideways scrolling');
    await sleep(200);
    await page.screenshot({ path: artifact(`edits-${device}-${scheme}.png`) });
    if (device === 'desktop' && scheme === 'light') {
      // The open message menu on Sam's own message.
      const own = page.locator('#messages li.own:not(.deleted)').last();
      await own.hover();
      await own.getByRole('button', { name: /^Actions for your message/ }).click();
      await page.getByRole('menu').waitFor();
      await page.screenshot({ path: artifact('edits-menu-desktop-light.png') });
      await page.keyboard.press('Escape');
      // Editing in place.
      await page.locator('#text').press('ArrowUp');
      await page.getByRole('textbox', { name: 'Edit your message' }).waitFor();
      await page.screenshot({ path: artifact('edits-editing-desktop-light.png') });
      await page.keyboard.press('Escape');
    }
    assert.deepEqual(page.errors, []);
    await context.close();
  }
});

// A DM conversation (1.1) with an edited message and a tombstone: desktop
// light and dark, and a phone (the conversation, and the drawer with the
// "Direct messages" group).
test('a direct conversation with an edit and a tombstone: light, dark, phone', async () => {
  const maya = people['Maya Chen'];
  let dmRoom = null;
  const shots = [['desktop', DESKTOP, 'light'], ['desktop', DESKTOP, 'dark'], ['phone', PHONE, 'light'], ['phone', PHONE, 'dark']];
  for (const [device, opts, scheme] of shots) {
    const { context, page } = await newPage(browser, { ...opts, colorScheme: scheme });
    await openAsSam(context, page);
    if (!dmRoom) {
      // Sam opens the DM from the member list (the drawer on a phone).
      if (device === 'phone') await page.getByRole('button', { name: 'Rooms and people' }).click();
      await page.getByRole('button', { name: 'Send Maya Chen a direct message' }).click();
      await page.locator('#room-name', { hasText: 'Maya Chen' }).waitFor();
      dmRoom = (await page.evaluate(() => location.hash)).slice(1);
      const box = page.locator('#text');
      for (const t of ['Hi Maya, quick one about the release notes.', 'Can you send me the draft before 3?', 'Never mind, found it in the wiki.']) {
        await box.fill(t);
        await box.press('Enter');
        await page.locator('#messages li.own:not(.unsent)', { hasText: t }).waitFor();
      }
      const [ack] = await maya.sendAll(dmRoom, ['Sure! Sending it in 5 minuts.']);
      maya.send({ type: 'edit', room: dmRoom, id: ack.id, text: 'Sure! Sending it in 5 minutes.' });
      await page.locator('#messages li .edited').waitFor();
      // Sam deletes his last message.
      const last = page.locator('#messages li', { hasText: 'Never mind' });
      await last.hover();
      await last.getByRole('button', { name: /^Actions for your message/ }).click();
      await page.getByRole('menuitem', { name: 'Delete' }).click();
      await page.getByRole('dialog', { name: 'Delete this message?' }).getByRole('button', { name: 'Delete' }).click();
      await page.locator('#messages li.deleted .tombstone').waitFor();
      await maya.sendAll(dmRoom, ['Got it, thanks!']);
    } else {
      await page.goto(`${server.url}/#${dmRoom}`);
      await waitOnline(page);
    }
    await page.locator('#messages li', { hasText: 'Got it, thanks!' }).waitFor();
    await page.locator('#messages li.deleted .tombstone').waitFor();
    await page.locator('#messages li .edited').waitFor();
    await page.locator('#dms a[aria-current]', { hasText: 'Maya Chen' }).waitFor({ state: 'attached' });
    assert.equal(await page.locator('#room-name').textContent(), 'Maya Chen');
    await page.locator('#text').blur();
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.equal(overflow, 0, 'no sideways scrolling');
    await sleep(200);
    await page.screenshot({ path: artifact(`dm-${device}-${scheme}.png`) });
    if (device === 'desktop' && scheme === 'light') {
      // The open message menu on Sam's own message.
      const own = page.locator('#messages li.own:not(.deleted)').last();
      await own.hover();
      await own.getByRole('button', { name: /^Actions for your message/ }).click();
      await page.getByRole('menu').waitFor();
      await page.screenshot({ path: artifact('dm-menu-desktop-light.png') });
      await page.keyboard.press('Escape');
      // Editing in place.
      await page.locator('#text').press('ArrowUp');
      await page.getByRole('textbox', { name: 'Edit your message' }).waitFor();
      await page.screenshot({ path: artifact('dm-editing-desktop-light.png') });
      await page.keyboard.press('Escape');
    }
    if (device === 'phone') {
      await page.getByRole('button', { name: 'Rooms and people' }).click();
      await page.locator('#dms a[aria-current]').waitFor();
      await sleep(100);
      await page.screenshot({ path: artifact(`dm-phone-drawer-${scheme}.png`) });
      await page.keyboard.press('Escape');
    }
    assert.deepEqual(page.errors, []);
    await context.close();
  }
});
