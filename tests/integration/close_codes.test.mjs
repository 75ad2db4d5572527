// Close codes (spec: "Close codes", "Transport").
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, connect, guest, health, waitFor, sleep, T, within, sharedServer } from './harness.mjs';

let srv;
const clients = sharedServer({ args: ['--hello-timeout', '1'] }, (s) => (srv = s));


async function closedWithin(c, ms) {
  const ci = await within(c.closed, ms);
  assert.ok(ci, `connection still open after ${ms} ms`);
  return ci;
}

async function g(name) {
  const c = await guest(srv, name);
  clients.push(c);
  return c;
}

test('a binary frame closes with 1003 (before and after hello)', async () => {
  const c = await g('Bin');
  c.sendRaw(Buffer.from('{"type":"ping"}'), { binary: true });
  assert.equal((await closedWithin(c, T(5000))).code, 1003);
  const c2 = await connect(srv.url);
  clients.push(c2);
  c2.sendRaw(Buffer.from([1, 2, 3]), { binary: true });
  assert.equal((await closedWithin(c2, T(5000))).code, 1003);
});

test('a frame over 64 KiB closes with 1009; just under is fine', async () => {
  const c = await g('Big');
  await c.join('big');
  // A JSON send of 70000 bytes.
  const pad = 'a'.repeat(70000);
  c.send(JSON.stringify({ type: 'send', room: 'big', text: pad, client_id: 'big1' }));
  assert.equal((await closedWithin(c, T(5000))).code, 1009);
  // 60000 bytes: not a frame-size problem (too_long for the text instead).
  const c2 = await g('Big2');
  await c2.join('big');
  c2.send(JSON.stringify({ type: 'send', room: 'big', text: 'a'.repeat(60000), client_id: 'big2', ref: 'b2' }));
  const e = await c2.next();
  assert.deepEqual([e.type, e.code, e.ref], ['error', 'too_long', 'b2']);
  assert.equal(c2.closeInfo, null);
});

test('the frame limit is 65536 bytes: exactly 65536 is read (and answered), 65537 closes 1009', async () => {
  const frame = (n) => {
    const head = '{"type":"send","room":"big","client_id":"edge","ref":"edge","text":"';
    const s = head + 'a'.repeat(n - head.length - 2) + '"}';
    assert.equal(Buffer.byteLength(s), n);
    return s;
  };
  const c = await g('Edge');
  await c.join('big');
  c.send(frame(65536));
  const e = await c.next();
  assert.deepEqual([e.type, e.code, e.ref], ['error', 'too_long', 'edge']);
  assert.equal(c.closeInfo, null);
  c.send(frame(65537));
  assert.equal((await closedWithin(c, T(5000))).code, 1009);
});

test('a fragmented message reassembled over 64 KiB closes with 1009', async () => {
  const c = await g('Frag');
  const parts = ['{"type":"send","room":"big","client_id":"f","text":"', ...Array(5).fill('b'.repeat(16000)), '"}'];
  parts.forEach((p, i) => c.sendRaw(p, { binary: false, fin: i === parts.length - 1 }));
  assert.equal((await closedWithin(c, T(5000))).code, 1009);
});

test('no hello within --hello-timeout (1 s) closes with 1008; a hello in time is kept', async () => {
  const t0 = Date.now();
  const c = await connect(srv.url);
  clients.push(c);
  const ok = await connect(srv.url);
  clients.push(ok);
  await ok.hello('InTime');
  const ci = await closedWithin(c, T(6000));
  assert.equal(ci.code, 1008);
  const dt = Date.now() - t0;
  assert.ok(dt >= 900, `closed after ${dt} ms, before the 1 s timeout`);
  // The one that said hello is still open well after the timeout.
  await sleep(Math.max(0, 1500 - (Date.now() - t0)));
  await ok.barrier();
  assert.equal(ok.closeInfo, null);
});

test('messages other than hello do not reset the hello timeout', async () => {
  const c = await connect(srv.url);
  clients.push(c);
  const t0 = Date.now();
  const iv = setInterval(() => c.closeInfo || c.send({ type: 'ping' }), 200);
  try {
    const ci = await closedWithin(c, T(6000));
    assert.equal(ci.code, 1008);
    assert.ok(Date.now() - t0 < T(4000));
  } finally {
    clearInterval(iv);
  }
  assert.ok(c.drain('error').every((e) => e.code === 'need_hello'));
});

test('a text frame that is not valid UTF-8 closes with 1007', async () => {
  for (const bytes of [
    [0x7b, 0x22, 0x74, 0x79, 0x70, 0x65, 0x22, 0x3a, 0x22, 0xff, 0xfe, 0x22, 0x7d], // {"type":"\xff\xfe"}
    [0x7b, 0x7d, 0xc0, 0xaf], // overlong '/'
    [0x22, 0xed, 0xa0, 0x80, 0x22], // surrogate U+D800
  ]) {
    const c = await g('Utf');
    c.sendRaw(Buffer.from(bytes), { binary: false });
    assert.equal((await closedWithin(c, T(5000))).code, 1007, `bytes ${bytes}`);
  }
});

test('the close frame sent by a client is answered; the session is gone from /healthz', async () => {
  const before = (await health(srv)).connections;
  const c = await g('Bye');
  await waitFor(async () => (await health(srv)).connections === before + 1, { what: 'connection counted' });
  const ci = await c.close(1000);
  assert.equal(ci.code, 1000);
  await waitFor(async () => (await health(srv)).connections === before, { what: 'connection released' });
});

test('SIGTERM: every client gets 1001 and the process exits 0 within 5 s', async () => {
  const s = await startServer();
  const cs = [];
  for (let i = 0; i < 5; i++) {
    const c = await guest(s, `T${i}`);
    await c.join('lobby');
    cs.push(c);
  }
  const noHello = await connect(s.url);
  cs.push(noHello);
  await cs[0].say('lobby', 'before shutdown', 'sd1');
  const t0 = Date.now();
  const stopped = s.stop('SIGTERM', { timeoutMs: T(6000) });
  const codes = (await Promise.all(cs.map((c) => c.closed))).map((x) => x.code);
  const r = await stopped;
  s.cleanup();
  assert.deepEqual(codes, cs.map(() => 1001));
  assert.equal(r.code, 0, `exit ${r.code}/${r.signal}; stderr:\n${r.stderr}`);
  assert.ok(Date.now() - t0 < 5000 * (T(1000) / 1000), `exit took ${Date.now() - t0} ms`);
});
