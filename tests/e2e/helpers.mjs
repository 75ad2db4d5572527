// Helpers for the browser tests: start the real parley binary on a free
// port with a temporary database, drive Debian's chromium with
// playwright-core, and talk to the server directly over WebSocket to seed
// and check history.
import { spawn } from 'node:child_process';
import { createHmac } from 'node:crypto';
import fs from 'node:fs';
import { execFileSync } from 'node:child_process';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { before, after } from 'node:test';
import { chromium } from 'playwright-core';
import WebSocket from 'ws';

export { sleep };

export const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const PARLEY_BIN = process.env.PARLEY_BIN || path.join(REPO, 'build', 'parley');
export const ARTIFACTS = path.join(REPO, 'tests', 'artifacts');
const SLOW = process.env.PARLEY_SANITIZE === 'ON' || process.env.PARLEY_SANITIZE === '1';
export const T = SLOW ? 3 : 1; // timeout multiplier under sanitizers

export function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.unref();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

async function healthy(port, tls) {
  return new Promise((resolve) => {
    const get = tls ? https.get : http.get;
    const req = get({ host: '127.0.0.1', port, path: '/healthz', timeout: 1000, rejectUnauthorized: false }, (res) => {
      res.resume();
      resolve(res.statusCode === 200);
    });
    req.on('error', () => resolve(false));
    req.on('timeout', () => { req.destroy(); resolve(false); });
  });
}

// A parley process with its own port and database directory. restart()
// starts it again on the same port and database. `tls`: serve https and
// wss with a self-signed certificate for 127.0.0.1.
export class Server {
  constructor({ args = [], jwtSecret = null, tls = false } = {}) {
    this.args = args;
    this.jwtSecret = jwtSecret;
    this.tls = tls;
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), 'parley-e2e-'));
    if (tls) {
      const cert = path.join(this.dir, 'cert.pem'), key = path.join(this.dir, 'key.pem');
      execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2',
        '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1',
        '-keyout', key, '-out', cert], { stdio: 'ignore' });
      this.args = [...this.args, '--tls-cert', cert, '--tls-key', key];
    }
    this.db = path.join(this.dir, 'parley.db');
    this.log = path.join(this.dir, 'server.log');
    this.proc = null;
    this.port = 0;
  }

  get url() { return `${this.tls ? 'https' : 'http'}://127.0.0.1:${this.port}`; }
  get wsUrl() { return `${this.tls ? 'wss' : 'ws'}://127.0.0.1:${this.port}/ws`; }

  async start() {
    if (!fs.existsSync(PARLEY_BIN)) throw new Error(`no server binary at ${PARLEY_BIN} (set PARLEY_BIN)`);
    if (!this.port) this.port = await freePort();
    // Every browser page comes from 127.0.0.1: no per-address limits (iplimit.h).
    const args = ['--port', String(this.port), '--bind', '127.0.0.1', '--db', this.db,
      '--max-conns-per-ip', '0', '--guests-per-ip-minute', '0', '--api-auth-fails-per-ip', '0', ...this.args];
    if (this.jwtSecret) args.push('--jwt-secret', this.jwtSecret);
    const out = fs.openSync(this.log, 'a');
    this.proc = spawn(PARLEY_BIN, args, { stdio: ['ignore', out, out] });
    fs.closeSync(out);
    const proc = this.proc;
    let exited = null;
    proc.on('exit', (code, sig) => { exited = { code, sig }; });
    const deadline = Date.now() + 20000 * T;
    while (Date.now() < deadline) {
      if (exited) throw new Error(`parley exited (${JSON.stringify(exited)}) during start:\n${this.tail()}`);
      if (await healthy(this.port, this.tls)) return this;
      await sleep(50);
    }
    throw new Error(`parley did not become healthy on port ${this.port}:\n${this.tail()}`);
  }

  tail(n = 30) {
    try { return fs.readFileSync(this.log, 'utf8').split('\n').slice(-n).join('\n'); } catch { return ''; }
  }

  signal(sig) {
    if (this.proc && this.proc.exitCode === null && this.proc.signalCode === null) this.proc.kill(sig);
  }

  async waitExit(ms = 10000) {
    const p = this.proc;
    if (!p || p.exitCode !== null || p.signalCode !== null) return;
    let timer;
    await Promise.race([
      new Promise((r) => p.once('exit', r)),
      new Promise((r) => { timer = setTimeout(r, ms); }),
    ]);
    clearTimeout(timer);
  }

  async kill() {
    this.signal('SIGKILL');
    await this.waitExit();
  }

  async stop() {
    this.signal('SIGTERM');
    await this.waitExit(10000 * T);
    this.signal('SIGKILL');
    await this.waitExit();
  }

  async restart() {
    await this.stop();
    return this.start();
  }

  async cleanup() {
    await this.stop();
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

export async function startServer(opts) {
  return new Server(opts).start();
}

// ---- browser --------------------------------------------------------------------

export async function launchBrowser() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
}

// A fresh context (own localStorage), a page, and a record of page errors.
/** One server and one browser for a whole test file, started before its
 *  tests and closed after them: read env.server and env.browser in tests. */
export function serverAndBrowser(opts) {
  const env = {};
  before(async () => {
    env.server = await startServer(opts);
    env.browser = await launchBrowser();
  });
  after(async () => {
    await env.browser?.close();
    await env.server?.cleanup();
  });
  return env;
}

export async function newPage(browser, { viewport = { width: 1280, height: 800 }, colorScheme = 'light', ...rest } = {}) {
  const context = await browser.newContext({ viewport, colorScheme, reducedMotion: 'reduce', ...rest });
  const page = await context.newPage();
  page.errors = [];
  page.on('pageerror', (e) => page.errors.push(String(e)));
  page.on('dialog', (d) => { page.errors.push(`dialog: ${d.message()}`); d.dismiss().catch(() => {}); });
  return { context, page };
}

// Opens the chat at `room`, answers the name dialog when it shows, and
// waits until the page says it is connected.
export async function openChat(page, server, { name, room = 'lobby', path: p = '/' } = {}) {
  await page.goto(`${server.url}${p}#${room}`);
  if (name) {
    await page.getByLabel('Display name').fill(name);
    await page.getByRole('button', { name: 'Join the chat' }).click();
  }
  await waitOnline(page);
}

export async function waitOnline(page, timeout = 15000 * T) {
  await page.locator('#conn[data-state="online"]').waitFor({ timeout });
}

// Brings a page whose socket was cut back online: clicks "Retry now" while it
// shows, until the page is online. The page's own backoff may reconnect first
// (the button is then hidden for good), or a click may land just before an
// attempt fails and the button shows again; both are fine, only online counts.
export async function reconnectNow(page, timeout = 40000 * T) {
  const deadline = Date.now() + timeout;
  const online = page.locator('#conn[data-state="online"]');
  const retry = page.locator('#conn-retry');
  while (!(await online.count())) {
    if (Date.now() > deadline) throw new Error('the page did not come back online');
    if (await retry.isVisible()) await retry.click({ timeout: 1000 }).catch(() => {});
    await new Promise((r) => setTimeout(r, 100));
  }
}

// The member called name in a `joined` answer, or, when that member's join
// had not finished yet, the user its presence join announces: a page is
// online at its welcome and joins after it, maybe on another event loop.
export async function memberNamed(client, joined, name) {
  return joined.members.find((u) => u.name === name) ||
    (await client.next((m) => m.type === 'presence' && m.event === 'join' &&
      m.room === joined.room && m.user.name === name)).user;
}

export async function sendFromPage(page, text) {
  const box = page.getByRole('textbox', { name: /^Message #/ });
  await box.fill(text);
  await box.press('Enter');
}

// Texts of the messages in the list, in order; pending ones marked.
export function listTexts(page) {
  return page.$$eval('#messages > li', (lis) => lis.map((li) => {
    const t = li.querySelector('.text').textContent;
    return li.classList.contains('unsent') ? `(pending) ${t}` : t;
  }));
}

// ---- direct protocol client --------------------------------------------------------

export class WsClient {
  constructor(ws) {
    this.ws = ws;
    this.inbox = [];
    this.waiters = [];
    ws.on('message', (data) => {
      const m = JSON.parse(String(data));
      this.inbox.push(m);
      for (const w of [...this.waiters]) if (w.pred(m)) { this.waiters.splice(this.waiters.indexOf(w), 1); w.resolve(m); }
    });
  }

  static async connect(url, hello) {
    const ws = new WebSocket(url, { rejectUnauthorized: false });
    await new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject); });
    const c = new WsClient(ws);
    c.send({ type: 'hello', ...hello });
    c.welcome = await c.next((m) => m.type === 'welcome' || m.type === 'error');
    if (c.welcome.type !== 'welcome') throw new Error(`hello refused: ${JSON.stringify(c.welcome)}`);
    return c;
  }

  send(obj) { this.ws.send(JSON.stringify(obj)); }

  next(pred, ms = 10000 * T) {
    const i = this.inbox.findIndex(pred);
    if (i >= 0) return Promise.resolve(this.inbox.splice(i, 1)[0]);
    return new Promise((resolve, reject) => {
      const w = { pred, resolve: (m) => { clearTimeout(timer); this.inbox.splice(this.inbox.indexOf(m), 1); resolve(m); } };
      const timer = setTimeout(() => {
        this.waiters.splice(this.waiters.indexOf(w), 1);
        reject(new Error('timed out waiting for a frame'));
      }, ms);
      this.waiters.push(w);
    });
  }

  async join(room, since) {
    this.send({ type: 'join', room, ...(since != null ? { since } : {}) });
    return this.next((m) => m.type === 'joined' && m.room === room);
  }

  // Sends `texts` one by one (waiting for each ack); returns the acks.
  async sendAll(room, texts, prefix = 'seed') {
    const acks = [];
    for (let i = 0; i < texts.length; i++) {
      const client_id = `${prefix}-${i}-${Math.random().toString(36).slice(2)}`;
      this.send({ type: 'send', room, text: texts[i], client_id });
      const a = await this.next((m) => (m.type === 'ack' && m.client_id === client_id) || m.type === 'error');
      if (a.type !== 'ack') throw new Error(`send refused: ${JSON.stringify(a)}`);
      acks.push(a);
    }
    return acks;
  }

  // Every message of `room`, oldest first, via history after.
  async all(room) {
    const out = [];
    let after = 0;
    for (;;) {
      this.send({ type: 'history', room, after, limit: 200 });
      const h = await this.next((m) => m.type === 'history' && m.room === room);
      out.push(...h.messages);
      if (!h.has_more || !h.messages.length) return out;
      after = h.messages[h.messages.length - 1].id;
    }
  }

  close() { this.ws.close(); }
}

export async function allMessages(server, room) {
  const c = await WsClient.connect(server.wsUrl, { name: 'checker' });
  try { return await c.all(room); } finally { c.close(); }
}

// ---- tokens (the same few lines docs/widget.md gives site owners) ------------------

export function mintToken(secret, { sub, name, rooms, ttl = 3600, role }) {
  const b64 = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const head = b64({ alg: 'HS256', typ: 'JWT' });
  const claims = { sub, name, exp: Math.floor(Date.now() / 1000) + ttl };
  if (rooms) claims.rooms = rooms;
  if (role) claims.role = role;
  const body = b64(claims);
  const sig = createHmac('sha256', secret).update(`${head}.${body}`).digest('base64url');
  return `${head}.${body}.${sig}`;
}

// ---- artifacts -------------------------------------------------------------------

export function artifact(name) {
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  return path.join(ARTIFACTS, name);
}
