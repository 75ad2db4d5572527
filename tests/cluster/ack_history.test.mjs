// cluster.md: an `ack` means the message is durable and already in the
// history of the node that acknowledged it (the issue: "an ack goes out once
// the acknowledging node has applied that id"). Asked right after the ack,
// with no pause, while senders on the other nodes keep the log busy.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cluster, Sender, T } from './harness.mjs';

test('after an ack (or edited) from node X, history on X holds it at once, on every node', { timeout: T(120000) }, async (t) => {
  const cl = await cluster(t, { nodes: 3 });
  const room = 'ackhist';
  const bg = [];
  for (let i = 0; i < 3; i++) {
    const b = await cl.guest(i, `Busy ${i}`);
    await b.join(room);
    bg.push(new Sender(b, room, { prefix: `bg${i}`, window: 4, gapMs: 3 }).start());
  }
  try {
    for (let x = 0; x < 3; x++) {
      const c = await cl.user(x, { sub: `asker${x}`, name: `Asker ${x}` });
      await c.join(room);
      // One at a time: send, then history right after the ack.
      for (let k = 0; k < 25; k++) {
        const text = `node ${x} seq ${k}`;
        const ack = await c.say(room, text, `seq-${x}-${k}`);
        const h = await c.request({ type: 'history', room, after: ack.id - 1, limit: 1 }, 'history');
        assert.equal(h.type, 'history', JSON.stringify(h));
        assert.deepEqual(h.messages.map((m) => [m.id, m.text, m.ts]), [[ack.id, text, ack.ts]],
          `node ${x}: history right after ack ${ack.id} does not hold it`);
      }
      // Pipelined: 30 sends in flight; each ack is followed by a history at once.
      const checks = [];
      await new Promise((resolve, reject) => {
        let n = 0;
        const onMsg = (data) => {
          const m = JSON.parse(data.toString());
          if (m.type === 'ack' && m.room === room && m.client_id.startsWith(`pipe-${x}-`)) {
            checks.push(c.request({ type: 'history', room, after: m.id - 1, limit: 1 }, 'history').then((h) => [m, h]));
            if (++n === 30) { c.ws.off('message', onMsg); resolve(); }
          } else if (m.type === 'error' && m.ref?.startsWith(`pipe-${x}-`)) {
            c.ws.off('message', onMsg);
            reject(new Error(`send answered ${JSON.stringify(m)}`));
          }
        };
        c.ws.on('message', onMsg);
        for (let k = 0; k < 30; k++) c.send({ type: 'send', room, text: `pipe ${k}`, client_id: `pipe-${x}-${k}`, ref: `pipe-${x}-${k}` });
      });
      for (const [m, h] of await Promise.all(checks))
        assert.deepEqual(h.messages.map((y) => y.id), [m.id], `node ${x}: history right after pipelined ack ${m.id}`);
      // An edit: the edited answer, then history shows the new text and rev.
      const ack = await c.say(room, 'before edit', `ed-${x}`);
      const e = await c.request({ type: 'edit', room, id: ack.id, text: `after edit ${x}` }, 'edited');
      assert.equal(e.type, 'edited', JSON.stringify(e));
      const h = await c.request({ type: 'history', room, after: ack.id - 1, limit: 1 }, 'history');
      assert.deepEqual(h.messages.map((m) => [m.id, m.text, m.rev]), [[ack.id, `after edit ${x}`, e.rev]],
        `node ${x}: history right after edited`);
      // join with since right after the ack, on a second connection of another user.
      const j = await cl.guest(x, `Joiner ${x}`);
      const a2 = await c.say(room, 'then join', `join-${x}`);
      const jj = await j.join(room, { since: a2.id - 1 });
      assert.ok(jj.messages.some((m) => m.id === a2.id), `node ${x}: join since right after ack ${a2.id} lacks it`);
    }
  } finally {
    for (const s of bg) await s.stop();
  }
  for (const s of bg) assert.ok(s.acked.size > 0, `background sender ${s.prefix} got no ack`);
  for (const s of bg) assert.deepEqual([...s.refused.values()], [], `background sender ${s.prefix} refused`);
});
