// chat.mjs -- the WebSocket side of container.test.sh: talks to a Parley server
// (in a container) the way a client does, and exits non-zero with a reason when
// anything is not as the protocol (shared/spec/protocol.md) says.
//
//   node chat.mjs send    URL ROOM TEXT   hello, join, send; expects the ack and the
//                                          message; prints {"id":N,"ts":N,...} on stdout
//   node chat.mjs hold    URL ROOM        hello, join, prints "ready", then waits for the
//                                          server to close; prints "closed CODE"
//   node chat.mjs history URL ROOM ID TEXT hello, history; expects message ID with TEXT
//   node chat.mjs guest-refused URL       hello as a guest; expects unauthorized
//   node chat.mjs pair    URL ROOM TEXT DIR   (compose.test.sh) two clients on two
//                                          connections join ROOM and print "ready"; once
//                                          DIR/go exists, alice sends TEXT, bob must get
//                                          it with the acked id and both histories must
//                                          agree: prints "exchanged {id,ts}", alice leaves.
//                                          bob waits for the server to close ("closed
//                                          CODE"), connects again (retrying for 30 s), must
//                                          find the message in the history, sends TEXT2 and
//                                          prints "reconnected {id,ts}"
//
// Environment: CHAT_SECRET (HS256 secret: say hello with a token instead of as a
// guest), CHAT_MAX_TEXT (expected welcome.limits.max_text).
// Uses only `ws` (tests/node_modules) and node:crypto.
import { createHmac } from 'node:crypto';
import { existsSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import WebSocket from 'ws';

const [mode, url, ...rest] = process.argv.slice(2);
const SECRET = process.env.CHAT_SECRET || '';
const TIMEOUT = 10000;

function die(msg) {
  console.error(`chat.mjs ${mode}: ${msg}`);
  process.exit(1);
}
let deadline = setTimeout(() => die(`gave up after ${TIMEOUT * 3} ms`), TIMEOUT * 3);

const b64url = (b) => Buffer.from(b).toString('base64url');
function token(sub, name) {
  const h = b64url(JSON.stringify({ alg: 'HS256', typ: 'JWT' }));
  const p = b64url(JSON.stringify({ sub, name, exp: Math.floor(Date.now() / 1000) + 600 }));
  return `${h}.${p}.${b64url(createHmac('sha256', SECRET).update(`${h}.${p}`).digest())}`;
}

/** Opens the socket; resolves {ws, next(pred), closed}. */
function open(u) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(u, { perMessageDeflate: false });
    const queue = [], waiters = [];
    let closeInfo = null;
    const closed = new Promise((r) =>
      ws.on('close', (code, reason) => {
        closeInfo = { code, reason: reason.toString() };
        for (const w of waiters.splice(0)) w.reject(new Error(`closed ${code} ${reason} while waiting for ${w.what}`));
        r(closeInfo);
      }),
    );
    ws.on('message', (data) => {
      const m = JSON.parse(data.toString());
      const i = waiters.findIndex((w) => w.pred(m));
      if (i >= 0) waiters.splice(i, 1)[0].resolve(m);
      else queue.push(m);
    });
    const next = (pred, what) => {
      const i = queue.findIndex(pred);
      if (i >= 0) return Promise.resolve(queue.splice(i, 1)[0]);
      if (closeInfo) return Promise.reject(new Error(`closed ${closeInfo.code} before ${what}`));
      return new Promise((res, rej) => {
        const w = { pred, what, resolve: res, reject: rej };
        setTimeout(() => rej(new Error(`timeout waiting for ${what}; got ${JSON.stringify(queue).slice(0, 500)}`)), TIMEOUT);
        waiters.push(w);
      });
    };
    ws.once('open', () => resolve({ ws, next, closed, send: (o) => ws.send(JSON.stringify(o)) }));
    ws.once('unexpected-response', (_req, res) => reject(new Error(`upgrade refused: HTTP ${res.statusCode}`)));
    ws.once('error', reject);
  });
}

async function hello(c, name) {
  c.send(SECRET ? { type: 'hello', token: token(`u-${name}`, name) } : { type: 'hello', name });
  const w = await c.next((m) => m.type === 'welcome' || m.type === 'error', 'welcome');
  if (w.type !== 'welcome') die(`hello answered ${JSON.stringify(w)}`);
  if (process.env.CHAT_MAX_TEXT && w.limits?.max_text !== Number(process.env.CHAT_MAX_TEXT))
    die(`welcome.limits.max_text is ${w.limits?.max_text}, expected ${process.env.CHAT_MAX_TEXT} (PARLEY_MAX_TEXT)`);
  return w;
}

async function join(c, room) {
  c.send({ type: 'join', room, ref: 'j1' });
  const j = await c.next((m) => m.ref === 'j1', 'joined');
  if (j.type !== 'joined' || j.room !== room) die(`join answered ${JSON.stringify(j)}`);
  return j;
}

try {
  if (!url) die('usage: chat.mjs MODE URL ...');
  const c = await open(url);
  if (mode === 'send') {
    const [room, text] = rest;
    await hello(c, 'alice');
    await join(c, room);
    const client_id = `container-${Date.now()}`;
    c.send({ type: 'send', room, text, client_id });
    const ack = await c.next((m) => m.type === 'ack' || m.type === 'error', 'ack');
    if (ack.type !== 'ack' || ack.client_id !== client_id || !(ack.id > 0)) die(`send answered ${JSON.stringify(ack)}`);
    const msg = await c.next((m) => m.type === 'message' && m.id === ack.id, 'message');
    if (msg.text !== text || msg.room !== room || msg.ts !== ack.ts) die(`message ${JSON.stringify(msg)} does not match ack ${JSON.stringify(ack)}`);
    console.log(JSON.stringify({ id: ack.id, ts: ack.ts, room, text, user: msg.user }));
    c.ws.close(1000);
    await c.closed;
  } else if (mode === 'hold') {
    const [room] = rest;
    await hello(c, 'bob');
    await join(c, room);
    console.log('ready');
    // Held open until the server goes away (the test stops the container).
    clearTimeout(deadline);
    deadline = setTimeout(() => die('the server did not close the connection within 120 s'), 120000);
    const { code } = await c.closed;
    console.log(`closed ${code}`);
  } else if (mode === 'history') {
    const [room, id, text] = rest;
    await hello(c, 'carol');
    c.send({ type: 'history', room, after: 0, limit: 200, ref: 'h1' });
    const h = await c.next((m) => m.ref === 'h1', 'history');
    if (h.type !== 'history') die(`history answered ${JSON.stringify(h)}`);
    const m = h.messages.find((x) => x.id === Number(id));
    if (!m) die(`message ${id} is not in the history of ${room}: ${JSON.stringify(h).slice(0, 500)}`);
    if (m.text !== text) die(`message ${id} has text ${JSON.stringify(m.text)}, expected ${JSON.stringify(text)}`);
    console.log(JSON.stringify(m));
    c.ws.close(1000);
    await c.closed;
  } else if (mode === 'guest-refused') {
    c.send({ type: 'hello', name: 'mallory' });
    const e = await c.next(() => true, 'an answer to a guest hello');
    if (e.type !== 'error' || e.code !== 'unauthorized') die(`guest hello answered ${JSON.stringify(e)}, expected unauthorized`);
    const { code } = await c.closed;
    if (code !== 1008) die(`closed with ${code} after unauthorized, expected 1008`);
    console.log('guest refused: unauthorized, closed 1008');
  } else if (mode === 'pair') {
    const [room, text, dir] = rest;
    clearTimeout(deadline);
    deadline = setTimeout(() => die('gave up after 180 s'), 180000);
    const a = c;
    await hello(a, 'alice');
    await join(a, room);
    const b = await open(url);
    await hello(b, 'bob');
    await join(b, room);
    console.log('ready');
    for (let i = 0; !existsSync(`${dir}/go`); i++) {
      if (i > 600) die(`${dir}/go did not appear within 60 s`);
      await sleep(100);
    }
    const client_id = `compose-${Date.now()}`;
    a.send({ type: 'send', room, text, client_id });
    const ack = await a.next((m) => m.type === 'ack' || m.type === 'error', 'ack');
    if (ack.type !== 'ack' || ack.client_id !== client_id || !(ack.id > 0)) die(`send answered ${JSON.stringify(ack)}`);
    const got = await b.next((m) => m.type === 'message' && m.room === room && m.text === text, 'the message on the other connection');
    if (got.id !== ack.id || got.ts !== ack.ts) die(`bob got ${JSON.stringify(got)}, alice's ack was ${JSON.stringify(ack)}`);
    const hist = async (cl, ref) => {
      cl.send({ type: 'history', room, after: 0, limit: 200, ref });
      const h = await cl.next((m) => m.ref === ref, 'history');
      if (h.type !== 'history') die(`history answered ${JSON.stringify(h)}`);
      return JSON.stringify(h.messages.map((m) => [m.id, m.ts, m.user, m.text]));
    };
    const [ha, hb] = [await hist(a, 'ha'), await hist(b, 'hb')];
    if (ha !== hb) die(`the histories differ:\n  alice ${ha}\n  bob   ${hb}`);
    if (!ha.includes(`[${ack.id},`)) die(`message ${ack.id} is not in the history: ${ha}`);
    console.log(`exchanged ${JSON.stringify({ id: ack.id, ts: ack.ts })}`);
    a.ws.close(1000);
    await a.closed;
    // The test stops bob's node now.
    const { code } = await b.closed;
    console.log(`closed ${code}`);
    let r, last = '';
    for (const t0 = Date.now(); !r; ) {
      if (Date.now() - t0 > 30000) die(`could not connect again within 30 s: ${last}`);
      try {
        r = await open(url);
        await hello(r, 'bob');
        const h = await hist(r, 'h2');
        if (!h.includes(`[${ack.id},${ack.ts},`) || !h.includes(JSON.stringify(text))) die(`message ${ack.id} is not in the history after reconnecting: ${h}`);
      } catch (e) {
        last = e.message;
        if (r) r.ws.terminate();
        r = null;
        await sleep(500);
      }
    }
    await join(r, room);
    const cid2 = `compose-${Date.now()}-2`;
    r.send({ type: 'send', room, text: `${text} (after reconnecting)`, client_id: cid2 });
    const ack2 = await r.next((m) => m.type === 'ack' || m.type === 'error', 'ack');
    if (ack2.type !== 'ack' || ack2.client_id !== cid2 || !(ack2.id > ack.id)) die(`send after reconnecting answered ${JSON.stringify(ack2)}`);
    console.log(`reconnected ${JSON.stringify({ id: ack2.id, ts: ack2.ts })}`);
    r.ws.close(1000);
    await r.closed;
  } else {
    die(`unknown mode ${mode}`);
  }
  process.exit(0);
} catch (e) {
  die(e.message);
}
