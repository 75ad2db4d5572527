// Slow consumer (spec: close code 1013): a client that stops reading is
// closed once its outbound queue overflows; the others keep receiving
// everything; the slow one recovers everything with join since.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, guest, sendMany, fullHistory, httpGet, T, within } from './harness.mjs';

async function slowCloses(s) {
  const r = await httpGet(`${s.http}/metrics`);
  const m = /^parley_slow\w*\s+([0-9.e+]+)$/m.exec(r.body);
  return m ? Number(m[1]) : 0;
}

test('a client that stops reading is closed with 1013; others get everything; since recovers the rest', { timeout: T(180000) }, async (t) => {
  const s = await startServer({
    // Bounds above one pipelined burst of the writer's own 50 messages and acks.
    args: ['--rate', '100000', '--burst', '100000', '--outq-max-msgs', '256', '--outq-max-bytes', '262144'],
  });
  const all = [];
  t.after(async () => {
    for (const c of all) c.terminate();
    const r = await s.stop();
    assert.equal(r.code, 0, `stderr:\n${r.stderr}`);
    s.cleanup();
  });
  const track = (c) => {
    c.ids = [];
    c.ws.on('message', (d) => {
      const m = JSON.parse(d.toString('utf8'));
      if (m.type === 'message' && m.room === 'busy') c.ids.push(m.id);
    });
    return c;
  };
  const slow = track(await guest(s, 'Slow'));
  const fast1 = track(await guest(s, 'Fast1'));
  const fast2 = track(await guest(s, 'Fast2'));
  const writer = await guest(s, 'Writer');
  all.push(slow, fast1, fast2, writer);
  for (const c of [slow, fast1, fast2, writer]) await c.join('busy');
  // Drop the writer's own copies so its client-side queue stays small.
  writer.ws.on('message', () => writer.drain('message'));

  const text = (i) => `${i} `.padEnd(2000, 'x');
  const acked = [];
  const before = await slowCloses(s);
  slow.ws._socket.pause();
  // Send in batches until the server reports the slow close (or a generous cap).
  let batch = 0;
  while ((await slowCloses(s)) === before) {
    assert.ok(batch < 400, 'no slow-consumer close after 400 batches of 50 messages of 2 KB');
    const acks = await sendMany(writer, 'busy', 50, { window: 50, prefix: `b${batch++}`, text });
    acked.push(...acks.map((a) => a.id));
  }
  // Read again: the buffered messages, then the close frame.
  slow.ws._socket.resume();
  const ci = await within(slow.closed, T(15000));
  assert.ok(ci, 'slow client not closed');
  assert.equal(ci.code, 1013);
  // A few more while the slow one is gone.
  acked.push(...(await sendMany(writer, 'busy', 100, { window: 50, prefix: 'tail', text })).map((a) => a.id));
  const expected = [...acked].sort((x, y) => x - y);

  // The fast ones got everything, in order, once.
  for (const f of [fast1, fast2]) {
    await f.waitUntil(() => f.ids.length >= expected.length, T(30000), 'every message on a fast client');
    await f.barrier();
    f.drain('message');
    assert.deepEqual(f.ids, expected, 'a fast client missed or repeated messages');
  }
  // The slow one got a gapless prefix, then nothing.
  assert.ok(slow.ids.length < expected.length, 'slow client got everything: it was never slow');
  assert.deepEqual(slow.ids, expected.slice(0, slow.ids.length), 'slow client: not a gapless prefix');

  // Reconnect and recover with since.
  const back = await guest(s, 'Slow again');
  all.push(back);
  const lastSeen = slow.ids.length ? slow.ids[slow.ids.length - 1] : 0;
  const j = await back.join('busy', { since: lastSeen }, T(20000));
  let got = j.messages.map((m) => m.id);
  if (!j.complete) got = got.concat((await fullHistory(back, 'busy', { after: got[got.length - 1] })).map((m) => m.id));
  assert.deepEqual([...slow.ids, ...got], expected);
});
