// rawws.mjs -- a WebSocket client over a bare TCP socket, for sending what
// a well-behaved library never would: invalid UTF-8, odd fragmentation,
// reserved opcodes, unmasked frames, oversized lengths, a byte at a time.
// Also raw HTTP helpers (slow and oversized requests) and /proc readers.
import net from 'node:net';
import { randomBytes, createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';

export const OP = { CONT: 0, TEXT: 1, BINARY: 2, CLOSE: 8, PING: 9, PONG: 10 };

/** Encodes one client frame. opts: fin (default true), mask (default true), rsv (bits), len (lie about the length). */
export function frame(opcode, payload = Buffer.alloc(0), { fin = true, mask = true, rsv = 0, len } = {}) {
  const p = Buffer.isBuffer(payload) ? payload : Buffer.from(payload);
  const n = len ?? p.length;
  let hdr;
  if (n < 126) {
    hdr = Buffer.alloc(2);
    hdr[1] = n;
  } else if (n < 65536) {
    hdr = Buffer.alloc(4);
    hdr[1] = 126;
    hdr.writeUInt16BE(n, 2);
  } else {
    hdr = Buffer.alloc(10);
    hdr[1] = 127;
    hdr.writeBigUInt64BE(BigInt(n), 2);
  }
  hdr[0] = (fin ? 0x80 : 0) | (rsv << 4) | opcode;
  if (!mask) return Buffer.concat([hdr, p]);
  hdr[1] |= 0x80;
  const key = randomBytes(4);
  const body = Buffer.from(p);
  for (let i = 0; i < body.length; i++) body[i] ^= key[i & 3];
  return Buffer.concat([hdr, key, body]);
}

export function upgradeRequest(port, { path = '/ws', headers = {} } = {}) {
  const key = randomBytes(16).toString('base64');
  const lines = [
    `GET ${path} HTTP/1.1`,
    `Host: 127.0.0.1:${port}`,
    'Upgrade: websocket',
    'Connection: Upgrade',
    `Sec-WebSocket-Key: ${key}`,
    'Sec-WebSocket-Version: 13',
    ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`),
  ];
  return { text: lines.join('\r\n') + '\r\n\r\n', key };
}

/**
 * A raw client. connect() resolves once the 101 arrived (rejects with .status
 * on another answer). Received server frames are parsed: text messages (JSON
 * parsed when possible) go to .messages / next(); a close frame sets
 * .closeCode; .ended resolves when the TCP connection is gone.
 */
export class RawWS {
  constructor(sock) {
    this.sock = sock;
    this.buf = Buffer.alloc(0);
    this.messages = [];
    this.waiters = [];
    this.closeCode = null;
    this.closeReason = '';
    this.pongs = 0;
    this.frag = null;
    this.answerClose = true;
    this.closeAnswered = false;
    this.ended = new Promise((resolve) => sock.once('close', resolve));
    sock.on('error', () => {});
  }

  static connect(port, opts = {}) {
    return new Promise((resolve, reject) => {
      const sock = net.connect(port, '127.0.0.1');
      const { text, key } = upgradeRequest(port, opts);
      let head = Buffer.alloc(0);
      const timer = setTimeout(() => { sock.destroy(); reject(new Error('upgrade timeout')); }, opts.timeoutMs ?? 10000);
      const onData = (d) => {
        head = Buffer.concat([head, d]);
        const end = head.indexOf('\r\n\r\n');
        if (end < 0) return;
        sock.off('data', onData);
        clearTimeout(timer);
        const status = Number(head.subarray(0, end).toString('latin1').split(' ')[1]);
        if (status !== 101) {
          sock.destroy();
          const e = new Error(`upgrade answered ${status}`);
          e.status = status;
          return reject(e);
        }
        const accept = createHash('sha1').update(key + '258EAFA5-E914-47DA-95CA-C5AB0DC85B11').digest('base64');
        if (!head.subarray(0, end).toString('latin1').includes(accept)) {
          sock.destroy();
          return reject(new Error('bad Sec-WebSocket-Accept'));
        }
        const c = new RawWS(sock);
        sock.on('data', (x) => c.onData(x));
        if (head.length > end + 4) c.onData(head.subarray(end + 4));
        resolve(c);
      };
      sock.on('data', onData);
      sock.once('error', (e) => { clearTimeout(timer); reject(e); });
      sock.once('connect', () => sock.write(text));
    });
  }

  onData(d) {
    this.buf = Buffer.concat([this.buf, d]);
    for (;;) {
      if (this.buf.length < 2) return;
      const b0 = this.buf[0], b1 = this.buf[1];
      let n = b1 & 0x7f, off = 2;
      if (n === 126) {
        if (this.buf.length < 4) return;
        n = this.buf.readUInt16BE(2);
        off = 4;
      } else if (n === 127) {
        if (this.buf.length < 10) return;
        n = Number(this.buf.readBigUInt64BE(2));
        off = 10;
      }
      if (b1 & 0x80) off += 4; // servers must not mask; tolerate
      if (this.buf.length < off + n) return;
      const payload = this.buf.subarray(off, off + n);
      this.buf = this.buf.subarray(off + n);
      const op = b0 & 0x0f, fin = !!(b0 & 0x80);
      if (op === OP.CLOSE) {
        this.closeCode = payload.length >= 2 ? payload.readUInt16BE(0) : 1005;
        this.closeReason = payload.subarray(2).toString('utf8');
        // Answer the close as RFC 6455 asks, unless told to play dead.
        if (this.answerClose && !this.closeAnswered) {
          this.closeAnswered = true;
          this.write(frame(OP.CLOSE, payload.subarray(0, 2)));
        }
      } else if (op === OP.PONG) {
        this.pongs++;
      } else if (op === OP.PING) {
        this.write(frame(OP.PONG, payload));
      } else if (op === OP.TEXT || op === OP.CONT) {
        this.frag = this.frag ? Buffer.concat([this.frag, payload]) : Buffer.from(payload);
        if (fin) {
          const t = this.frag.toString('utf8');
          this.frag = null;
          let m;
          try { m = JSON.parse(t); } catch { m = { type: '__unparseable__', text: t }; }
          const i = this.waiters.findIndex((w) => w.match(m));
          if (i >= 0) {
            const [w] = this.waiters.splice(i, 1);
            clearTimeout(w.timer);
            w.resolve(m);
          } else this.messages.push(m);
        }
      }
    }
  }

  write(buf) {
    if (!this.sock.destroyed) this.sock.write(buf);
  }
  sendText(s, opts) {
    this.write(frame(OP.TEXT, Buffer.from(s), opts));
  }
  sendJSON(o) {
    this.sendText(JSON.stringify(o));
  }

  /** Next message matching pred (or type string), waiting up to ms. */
  next(pred = () => true, ms = 5000) {
    const match = typeof pred === 'string' ? (m) => m.type === pred : pred;
    const i = this.messages.findIndex(match);
    if (i >= 0) return Promise.resolve(this.messages.splice(i, 1)[0]);
    return new Promise((resolve, reject) => {
      const w = { match, resolve };
      w.timer = setTimeout(() => {
        this.waiters.splice(this.waiters.indexOf(w), 1);
        reject(new Error(`raw: timeout waiting; close=${this.closeCode}; queued=${JSON.stringify(this.messages.slice(0, 3))}`));
      }, ms);
      this.waiters.push(w);
      this.ended.then(() => {
        if (this.waiters.includes(w)) {
          clearTimeout(w.timer);
          this.waiters.splice(this.waiters.indexOf(w), 1);
          reject(new Error(`raw: connection ended (close ${this.closeCode}) while waiting`));
        }
      });
    });
  }

  /** Resolves {code, ms} once the TCP connection is gone (or null on timeout). */
  async closedWithin(ms) {
    const t0 = Date.now();
    let timer;
    const r = await Promise.race([this.ended.then(() => true), new Promise((res) => (timer = setTimeout(() => res(false), ms)))]);
    clearTimeout(timer);
    return r ? { code: this.closeCode, ms: Date.now() - t0 } : null;
  }

  destroy() {
    this.sock.destroy();
  }
}

/** Opens a TCP connection, writes `data` (string/Buffer), collects everything until the server
 *  closes or ms pass (or, with untilHead, until a response head has arrived). */
export function rawExchange(port, data, ms = 5000, { untilHead = false } = {}) {
  return new Promise((resolve) => {
    const sock = net.connect(port, '127.0.0.1');
    const chunks = [];
    let done = false;
    const finish = (why) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      sock.destroy();
      resolve({ why, data: Buffer.concat(chunks).toString('latin1') });
    };
    const timer = setTimeout(() => finish('timeout'), ms);
    sock.on('data', (d) => {
      chunks.push(d);
      if (untilHead && Buffer.concat(chunks).includes('\r\n\r\n')) finish('head');
    });
    sock.on('close', () => finish('closed'));
    // A reset is the server closing with our input unread (it stopped
    // reading a request it refused): a close all the same, told apart.
    sock.on('error', (e) => finish(e.code === 'ECONNRESET' || e.code === 'EPIPE' ? 'reset' : 'error'));
    sock.on('connect', () => sock.write(data));
  });
}

/** The HTTP status line's code in a raw response, or null. */
export function statusOf(raw) {
  const m = /^HTTP\/1\.[01] (\d{3})/.exec(raw);
  return m ? Number(m[1]) : null;
}

// ---- /proc

export function procStatus(pid) {
  const s = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (k) => Number((new RegExp(`^${k}:\\s+(\\d+)`, 'm').exec(s) || [])[1] || 0);
  return { rssKb: kb('VmRSS'), hwmKb: kb('VmHWM'), threads: kb('Threads') };
}

export function fdCount(pid) {
  return readdirSync(`/proc/${pid}/fd`).length;
}

/** Runs fn over items with at most `limit` in flight. */
export async function pool(items, limit, fn) {
  const out = new Array(items.length);
  let i = 0;
  const workers = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (i < items.length) {
      const k = i++;
      out[k] = await fn(items[k], k);
    }
  });
  await Promise.all(workers);
  return out;
}
