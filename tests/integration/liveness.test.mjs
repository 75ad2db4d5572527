// Liveness after hello (review item 6): the server pings idle connections
// and drops those that show no sign of life for --idle-timeout seconds, and
// every accepted socket has TCP keepalive on. Small values here: a ping
// after 1 s of silence, a drop after 3 s.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { startServer, connect, guest, health, sleep, T, waitFor } from './harness.mjs';
import { RawWS, OP } from '../reliability/rawws.mjs';

const ARGS = ['--ping-interval', '1', '--idle-timeout', '3'];

/** A raw client that sees the server's pings and, unless told, never answers them. */
async function deafClient(port, name) {
  const c = await RawWS.connect(port);
  c.pings = 0;
  c.answerPings = false;
  const write = c.write.bind(c);
  // RawWS answers a PING by writing a PONG: count the pings, drop the answer.
  c.write = (buf) => {
    if ((buf[0] & 0x0f) === OP.PONG) {
      c.pings++;
      if (!c.answerPings) return;
    }
    write(buf);
  };
  c.sendJSON({ type: 'hello', name });
  c.user = (await c.next('welcome')).user;
  return c;
}

async function withServer(args, fn) {
  const srv = await startServer({ args });
  try {
    await fn(srv);
  } finally {
    const r = await srv.stop();
    srv.cleanup();
    assert.equal(r.code, 0, r.stderr);
  }
}

for (const threads of ['1', '2']) {
  test(`threads=${threads}: a client that never answers pings is pinged, dropped after about the idle timeout, and leaves its rooms`, async () => {
    await withServer([...ARGS, '--threads', threads], async (srv) => {
      const watcher = await guest(srv, 'watcher');
      await watcher.join('live');
      const dead = await deafClient(srv.port, 'ghost');
      dead.sendJSON({ type: 'join', room: 'live', ref: 'j' });
      await dead.next('joined');
      await watcher.next((m) => m.type === 'presence' && m.event === 'join' && m.user.id === dead.user.id);
      const t0 = Date.now();
      const gone = await dead.closedWithin(T(9000));
      assert.ok(gone, 'the silent client is still connected after 9 s');
      assert.ok(dead.pings >= 1, 'the server sent no ping');
      const ms = Date.now() - t0;
      assert.ok(ms >= 2000, `dropped after ${ms} ms, before the idle timeout`);
      assert.equal(dead.closeCode, 1001);
      assert.equal(dead.closeReason, 'idle timeout');
      const left = await watcher.next((m) => m.type === 'presence' && m.event === 'leave', T(3000));
      assert.equal(left.user.id, dead.user.id);
      await waitFor(async () => (await health(srv)).connections === 1, { what: 'one connection left' });
      watcher.terminate();
    });
  });
}

test('clients that answer pings, or that keep talking, stay connected well past the idle timeout', async () => {
  await withServer(ARGS, async (srv) => {
    const quiet = await guest(srv, 'quiet'); // the ws library answers pings itself
    let pings = 0;
    quiet.ws.on('ping', () => pings++);
    const answering = await deafClient(srv.port, 'polite');
    answering.answerPings = true;
    const chatty = await deafClient(srv.port, 'chatty'); // never answers a ping, but talks
    const timer = setInterval(() => chatty.sendJSON({ type: 'ping' }), 700);
    await sleep(T(7000));
    clearInterval(timer);
    assert.equal(quiet.closeInfo, null, `closed: ${JSON.stringify(quiet.closeInfo)}`);
    assert.ok(pings >= 2, `only ${pings} pings in 7 s of silence`);
    await quiet.barrier();
    assert.ok(answering.pings >= 2);
    assert.equal(answering.closeCode, null);
    assert.equal(await answering.closedWithin(10), null);
    assert.equal(chatty.closeCode, null);
    assert.equal(await chatty.closedWithin(10), null);
    assert.equal(chatty.pings, 0, 'a connection that talks needs no ping');
    quiet.terminate();
    answering.destroy();
    chatty.destroy();
  });
});

/** The kernel's timer for the server side of 127.0.0.1:clientPort -> :serverPort
 *  (/proc/net/tcp "tr": 2 is the keepalive timer), or null when not found. */
function serverSideTimer(serverPort, clientPort) {
  const hex = (p) => p.toString(16).toUpperCase().padStart(4, '0');
  for (const line of readFileSync('/proc/net/tcp', 'utf8').split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length < 6) continue;
    if (f[1].endsWith(':' + hex(serverPort)) && f[2].endsWith(':' + hex(clientPort)) && f[3] === '01')
      return Number(f[5].split(':')[0]);
  }
  return null;
}

for (const threads of ['1', '2']) {
  test(`threads=${threads}: TCP keepalive is on for every accepted socket`, async () => {
    await withServer(['--threads', threads], async (srv) => {
      const c = await connect(srv.url);
      const port = c.ws._socket.localPort;
      // The timer field of an idle socket is 2 only with SO_KEEPALIVE set.
      const tr = await waitFor(() => serverSideTimer(srv.port, port) === 2 && 2, {
        timeoutMs: T(3000),
        what: `keepalive timer on the server's socket (last: ${serverSideTimer(srv.port, port)})`,
      });
      assert.equal(tr, 2);
      c.terminate();
    });
  });
}

test('--ping-interval and --idle-timeout are checked at start', async () => {
  const { runParley } = await import('./harness.mjs');
  for (const args of [
    ['--ping-interval', '0'],
    ['--idle-timeout', 'x'],
    ['--ping-interval', '5', '--idle-timeout', '5'],
  ]) {
    const r = await runParley([...args, '--port', '1']);
    assert.equal(r.code, 2, `${args.join(' ')}: exit ${r.code}; ${r.stderr}`);
  }
});
