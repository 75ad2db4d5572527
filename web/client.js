// client.js -- the Parley wire protocol (docs: /work/shared/spec/protocol.md)
// for the browser: one WebSocket, reconnected with exponential backoff and
// jitter, rooms rejoined with `since`, unacked messages re-sent with their
// client_id, every message deduplicated by id. No DOM here: the UI listens to
// the events this object dispatches.
//
// Events (CustomEvent, payload in .detail):
//   state     {state, retryAt, reason}   connecting | online | waiting | offline | signed-out
//   welcome   {user, limits}
//   auth      {code, message}            the server refused our hello
//   joined    {room}                     a room (re)joined; its messages/members are fresh
//   messages  {room, messages, live}     confirmed messages added at the bottom
//   update    {room, message, live, by}  a known message changed (edited or deleted; 1.1)
//   live      {room, message}            every live `message` frame, joined room or not
//                                        (a DM of a room this tab never joined, too)
//   dm        {room, peer}               a `dm` request was answered: the room is joined
//   peer      {room, peer}               the other user of a DM room became known
//   older     {room, messages}           older messages added at the top
//   outbox    {room, item, op}           op: add | update | confirm (item.id set) | remove
//   members   {room}
//   typing    {room, user}
//   rooms     {rooms}
//   notice    {code, message, kind, room, id, ref, until, sanction}  an error not tied to a send
//                                        (kind: join | older | edit | delete | dm | search …)
//   unread    {rooms}                    unread counts or read markers changed (1.1);
//                                        read them with unreadOf(name) and marker(name)
//   read      {room, id, mine}           a `read` answer or echo: the marker as stored
//   search    {ref, q, room, messages, hasMore}  a `search` answer (newest first)
//   jumped    {room, id, found}          jumpTo() loaded the history around `id`
//   newer     {room, messages}           newer messages added at the bottom of a
//                                        detached view (after a jump)
//   attached  {room}                     a detached view reached the newest message
//   modok     {ref, action, room, user}  a moderation request (kick, mute, ban,
//                                        unmute, unban) was done; refusals come as
//                                        notice with kind 'mod' and the ref
//   removed   {room, reason}             a moderator removed us from a room (kick
//                                        or ban); the room is left until rejoin()
//   banned    {}                         the server closed with 1008 "banned" (or
//                                        refused the hello for a ban): no reconnects

export const ROOM_RE = /^[a-z0-9][a-z0-9_-]{0,63}$/;
export const isDmRoom = (name) => typeof name === 'string' && name.startsWith('dm-');

// The sequence number of a message's latest change (1.1 `rev`; a 1.0
// message has none: its `id`).
export const revOf = (m) => (typeof m.rev === 'number' && m.rev > m.id ? m.rev : m.id);
export const NAME_MAX = 32;

export function wsUrl(loc = window.location) {
  return (loc.protocol === 'https:' ? 'wss://' : 'ws://') + loc.host + '/ws';
}

export function codePoints(s) {
  let n = 0;
  for (const _ of s) n++;
  return n;
}

export function randomId(prefix = 'c') {
  const a = new Uint8Array(12);
  crypto.getRandomValues(a);
  return prefix + Array.from(a, (b) => b.toString(16).padStart(2, '0')).join('');
}

// Storage that never throws (private modes, blocked third-party storage).
export function store(kind) {
  let s = null;
  try {
    s = window[kind];
    const k = '__parley_probe';
    s.setItem(k, '1');
    s.removeItem(k);
  } catch {
    s = null;
  }
  const mem = new Map();
  return {
    get(k) {
      try { return s ? s.getItem(k) : mem.get(k) ?? null; } catch { return mem.get(k) ?? null; }
    },
    set(k, v) {
      mem.set(k, v);
      try { if (s) s.setItem(k, v); } catch { /* full or blocked: memory only */ }
    },
    remove(k) {
      mem.delete(k);
      try { if (s) s.removeItem(k); } catch { /* ignore */ }
    },
  };
}

const BACKOFF_BASE = 500;     // ms, first retry
const BACKOFF_MAX = 30000;    // ms, ceiling before jitter
const PING_EVERY = 25000;     // ms of silence before we ping
const PONG_WAIT = 10000;      // ms without any frame after a ping: the link is dead
const HELLO_WAIT = 10000;     // ms for a welcome after the socket opened
const HISTORY_PAGE = 50;
const AROUND = 25;            // messages each side of a search result opened in its room
const READ_EVERY = 1000;      // ms: at most one `read` per room per second
const UNREAD_CAP = 1000;      // the server counts up to this many

export class Room {
  constructor(name) {
    this.name = name;
    this.msgs = new Map();   // id -> MESSAGE (confirmed)
    this.oldestId = 0;
    this.lastId = 0;         // the highest id or rev seen
    this.syncId = 0;         // every change up to this id/rev is known: the next join's `since`
    this.catchingUp = false; // rejoining with `since` after a join that missed over 1000
    this.cursor = 0;         // the highest id/rev those answers brought
    this.peer = null;        // a DM room's other user
    this.hasOlder = true;    // whether history before oldestId may exist
    this.loadingOlder = false;
    this.synced = false;     // joined at least once on some connection
    this.joined = false;     // joined on the current connection
    this.members = new Map(); // user id -> {user, n} (n: connections)
    this.outbox = [];        // {client_id, text, room, status, error, created}
    // 1.1: a view opened around an older message (a search result). While
    // `detached`, msgs hold a window [oldestId, newestId] that does not reach
    // the newest message; live messages wait in `buffer` until the window
    // is paged down to them (loadNewer) or the view goes back to the latest.
    this.detached = false;
    this.newestId = 0;
    this.hasNewer = false;
    this.loadingNewer = false;
    this.buffer = null;      // id -> MESSAGE, live while detached
    this.jump = null;        // {id, seq, parts, done}
    this.left = false;       // removed by a moderator: not joined again until rejoin()
  }

  memberList() {
    return [...this.members.values()].map((m) => m.user)
      .sort((a, b) => a.name.localeCompare(b.name));
  }
}

export class Client extends EventTarget {
  // auth: {name, resume} for a guest, or {token}; null: wait for setAuth().
  constructor({ url = wsUrl(), auth = null, clientName = 'parley-web', persist = null, baseline = false } = {}) {
    super();
    this.url = url;
    this.auth = auth;
    this.clientName = clientName;
    this.persist = persist;     // {load() -> items, save(items)} for the outbox
    this.ws = null;
    this.state = 'idle';
    this.user = null;
    this.limits = { max_text: 4000, rate_per_s: 10, burst: 20, history_page: 200 };
    this.rooms = new Map();     // name -> Room (current room + rooms with unsent messages)
    this.peers = new Map();     // DM room name -> USER (the other user), once known
    this.current = null;
    this.attempt = 0;
    this.retryTimer = 0;
    this.retryAt = 0;
    this.refSeq = 0;
    this.refs = new Map();      // ref -> {kind, room}
    this.lastTyping = new Map(); // room -> ms
    this.lastFrame = 0;
    this.heartbeat = 0;
    this.helloTimer = 0;
    this.tokens = 0;            // client-side mirror of the server's send bucket
    this.tokensAt = 0;
    this.flushTimer = 0;
    this.stopped = false;
    // 1.1: read markers and unread counts, per room (joined or not).
    this.counts = new Map();    // name -> {read, local, base, live, sent, sentAt, timer}
    this.baseline = !!baseline; // a regular room's first join marks what it shows as read
    this.changed = new Set();   // rooms whose counts changed, for one 'unread' event
    this.syncTimer = 0;
    this.jumpSeq = 0;
    for (const item of this.persist?.load() ?? []) {
      if (!item || !ROOM_RE.test(item.room) || typeof item.text !== 'string') continue;
      const r = this.room(item.room);
      r.outbox.push({ ...item, status: item.status === 'failed' ? 'failed' : 'queued' });
    }
    window.addEventListener('online', () => this.retryNow());
    window.addEventListener('offline', () => {
      if (this.state === 'waiting') this.setState('offline');
    });
  }

  emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }

  room(name) {
    let r = this.rooms.get(name);
    if (!r) {
      r = new Room(name);
      this.rooms.set(name, r);
    }
    return r;
  }

  setState(state, reason = '') {
    this.state = state;
    this.emit('state', { state, retryAt: this.retryAt, reason });
  }

  // ---- connection ---------------------------------------------------------

  start() {
    this.stopped = false;
    if (!this.ws && this.auth) this.connect();
  }

  setAuth(auth) {
    this.auth = auth;
    this.reconnectNow();
  }

  // Drops the current connection (if any) and connects again at once.
  reconnectNow() {
    this.stopped = false;
    this.drop(false);
    this.attempt = 0;
    if (this.auth) this.connect();
  }

  retryNow() {
    if (this.ws || this.stopped || !this.auth) return;
    clearTimeout(this.retryTimer);
    this.connect();
  }

  connect() {
    clearTimeout(this.retryTimer);
    this.retryTimer = 0;
    let url = this.url;
    let ws;
    this.setState('connecting');
    try {
      ws = new WebSocket(url);
    } catch (e) {
      this.scheduleRetry(String(e && e.message || e));
      return;
    }
    this.ws = ws;
    ws.onopen = () => {
      this.lastFrame = Date.now();
      this.sendHello();
      this.helloTimer = setTimeout(() => this.lost('no welcome'), HELLO_WAIT);
    };
    ws.onmessage = (ev) => {
      this.lastFrame = Date.now();
      if (typeof ev.data !== 'string') return;
      let m;
      try { m = JSON.parse(ev.data); } catch { return; }
      if (m && typeof m.type === 'string') this.handle(m);
    };
    ws.onclose = (ev) => {
      if (this.ws !== ws) return;
      // A server-wide ban: never reconnect on our own.
      if (ev.code === 1008 && ev.reason === 'banned') return this.onBanned();
      this.lost(ev.code === 1013 ? 'the server dropped a slow connection' :
        ev.code === 1001 ? 'the server is restarting' : '', ev.code);
    };
    ws.onerror = () => { /* onclose follows */ };
  }

  sendHello() {
    const h = { type: 'hello', client: this.clientName, ref: 'hello' };
    if (this.auth.token) h.token = this.auth.token;
    else {
      h.name = this.auth.name;
      if (this.auth.resume) h.resume = this.auth.resume;
    }
    this.raw(h);
  }

  // Closes our socket without reconnecting logic; `retry` schedules a retry.
  drop(retry, reason = '') {
    const ws = this.ws;
    this.ws = null;
    clearTimeout(this.helloTimer);
    clearInterval(this.heartbeat);
    clearTimeout(this.flushTimer);
    this.heartbeat = 0;
    this.refs.clear();
    for (const r of this.rooms.values()) {
      r.joined = false;
      r.loadingOlder = false;
      r.loadingNewer = false;
      for (const it of r.outbox) if (it.status === 'sending') it.status = 'queued';
    }
    clearTimeout(this.syncTimer);
    for (const e of this.counts.values()) {
      clearTimeout(e.timer);
      e.timer = 0;
      e.sent = 0; // a marker not yet answered is sent again after the welcome
    }
    if (ws) {
      ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
      try { ws.close(1000); } catch { /* already closed */ }
    }
    if (retry) this.scheduleRetry(reason);
  }

  onBanned() {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    this.retryTimer = 0;
    this.drop(false);
    this.banned = true;
    this.setState('banned');
    this.emit('banned', {});
  }

  lost(reason, code) {
    if (code === 1008 && this.state === 'signed-out') {
      this.drop(false);
      return;
    }
    this.drop(!this.stopped, reason);
  }

  scheduleRetry(reason) {
    this.ws = null;
    if (!this.auth) return;
    // Exponential backoff with "equal jitter": half fixed, half random, so
    // a crowd of clients dropped together by a restart spreads out.
    const cap = Math.min(BACKOFF_MAX, BACKOFF_BASE * 2 ** this.attempt);
    const delay = cap / 2 + Math.random() * cap / 2;
    this.attempt = Math.min(this.attempt + 1, 16);
    this.retryAt = Date.now() + delay;
    this.retryTimer = setTimeout(() => this.connect(), delay);
    this.setState(navigator.onLine === false ? 'offline' : 'waiting', reason);
  }

  raw(obj) {
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN) return false;
    this.ws.send(JSON.stringify(obj));
    return true;
  }

  ref(kind, room, extra = {}) {
    const ref = kind[0] + (++this.refSeq);
    this.refs.set(ref, { kind, room, ...extra });
    return ref;
  }

  startHeartbeat() {
    clearInterval(this.heartbeat);
    let pinged = 0;
    this.heartbeat = setInterval(() => {
      const now = Date.now();
      if (pinged && this.lastFrame < pinged && now - pinged > PONG_WAIT) {
        this.lost('the connection stopped answering');
        return;
      }
      if (now - this.lastFrame > PING_EVERY && (!pinged || this.lastFrame >= pinged)) {
        pinged = now;
        this.raw({ type: 'ping' });
      }
    }, 2000);
  }

  // ---- rooms ------------------------------------------------------------

  // Makes `name` the room shown; leaves the previous one unless messages to
  // it are still unsent (then it stays joined until they are acked).
  setRoom(name) {
    if (this.current === name) return this.room(name);
    const prev = this.current ? this.rooms.get(this.current) : null;
    this.current = name;
    const r = this.room(name);
    if (this.state === 'online' && !r.joined && !r.left) this.join(r);
    if (prev) this.maybeLeave(prev);
    return r;
  }

  maybeLeave(r) {
    if (r.name === this.current || r.outbox.some((i) => i.status !== 'failed')) return;
    if (r.joined) this.raw({ type: 'leave', room: r.name });
    if (!r.outbox.length) this.rooms.delete(r.name);
    else r.joined = false;
  }

  join(r) {
    const j = { type: 'join', room: r.name, ref: this.ref('join', r.name) };
    if (r.synced) j.since = r.syncId;
    this.raw(j);
  }

  loadOlder(name = this.current) {
    const r = this.rooms.get(name);
    if (!r || !r.joined || r.loadingOlder || !r.hasOlder) return false;
    r.loadingOlder = true;
    const h = { type: 'history', room: r.name, limit: HISTORY_PAGE, ref: this.ref('older', r.name) };
    if (r.oldestId) h.before = r.oldestId;
    this.raw(h);
    return true;
  }

  requestRooms() {
    this.raw({ type: 'rooms' });
  }

  // ---- 1.1: read markers and unread counts -----------------------------------
  //
  // The server keeps one marker per user and room (`read`), and counts the
  // unread messages in `rooms` (from others, not deleted, id > marker). Here:
  // `read` is the marker as the server last said, `local` the one this page
  // has asked for (ahead of `read` until the answer comes), `base` the
  // last `rooms` entry {read, unread, last} and `live` the ids of messages
  // from others that arrived after it. The room on screen is counted exactly
  // from its messages whenever they reach down to the marker.

  count(name) {
    let e = this.counts.get(name);
    if (!e) {
      e = { read: 0, local: 0, base: null, live: new Set(), sent: 0, sentAt: 0, timer: 0 };
      this.counts.set(name, e);
    }
    return e;
  }

  // The marker: what the server stored, or what we asked for since.
  marker(name) {
    const e = this.counts.get(name);
    return e ? Math.max(e.read, e.local) : 0;
  }

  isMine(m) {
    return !!(this.user && m && m.user && m.user.id === this.user.id);
  }

  unreadOf(name) {
    const e = this.counts.get(name);
    if (!e) return 0;
    const mark = Math.max(e.read, e.local);
    const r = this.rooms.get(name);
    if (r && r.synced && !r.detached && (!r.hasOlder || mark >= r.oldestId)) {
      let n = 0;
      for (const m of r.msgs.values()) if (m.id > mark && !m.deleted && !this.isMine(m)) n++;
      return Math.min(n, UNREAD_CAP);
    }
    let top = e.base ? e.base.last : 0;
    for (const id of e.live) if (id > top) top = id;
    if (r && r.lastId > top) top = r.lastId;
    if (mark >= top) return 0;
    let n = e.base ? e.base.unread : 0;
    if (e.base && r) {
      for (const m of r.msgs.values())
        if (m.id > e.base.read && m.id <= mark && m.id <= e.base.last && !m.deleted && !this.isMine(m)) n--;
    }
    for (const id of e.live) if (id > mark) n++;
    return Math.max(0, Math.min(n, UNREAD_CAP));
  }

  // One 'unread' event for everything changed in this task.
  countsChanged(name) {
    if (!this.changed.size) {
      queueMicrotask(() => {
        const rooms = [...this.changed];
        this.changed.clear();
        this.emit('unread', { rooms });
      });
    }
    this.changed.add(name);
  }

  // Asks for `rooms` again soon (the counts of rooms we cannot count here).
  syncSoon() {
    clearTimeout(this.syncTimer);
    this.syncTimer = setTimeout(() => { if (this.state === 'online') this.requestRooms(); }, 1500);
  }

  // The user has seen `name` up to message `id`. Sent at most once a second
  // per room, and only when it moves the marker forward.
  markRead(name, id) {
    if (typeof id !== 'number' || !(id > this.marker(name))) return false;
    const e = this.count(name);
    e.local = id;
    this.countsChanged(name);
    this.scheduleRead(name);
    return true;
  }

  scheduleRead(name) {
    const e = this.count(name);
    if (e.timer) return;
    const wait = e.sentAt + READ_EVERY - Date.now();
    if (wait <= 0) this.sendRead(name);
    else e.timer = setTimeout(() => { e.timer = 0; this.sendRead(name); }, wait);
  }

  sendRead(name) {
    const e = this.counts.get(name);
    if (!e || this.state !== 'online' || e.local <= Math.max(e.read, e.sent)) return;
    e.sentAt = Date.now();
    e.sent = e.local;
    this.raw({ type: 'read', room: name, id: e.local, ref: this.ref('read', name, { id: e.local }) });
  }

  // Sends every marker not yet sent, now (the page is going away, or the
  // connection is back).
  flushReads() {
    for (const [name, e] of this.counts) {
      if (e.local <= Math.max(e.read, e.sent)) continue;
      clearTimeout(e.timer);
      e.timer = 0;
      this.sendRead(name);
    }
  }

  // ---- 1.1: search ------------------------------------------------------------

  // Answered by a 'search' event with the returned ref (or a 'notice' with
  // kind 'search'); null when not connected.
  search(q, { room = null, before = null, limit = 20 } = {}) {
    if (this.state !== 'online') return null;
    const ref = this.ref('search', room, { q });
    const s = { type: 'search', q, limit, ref };
    if (room) s.room = room;
    if (before) s.before = before;
    this.raw(s);
    return ref;
  }

  // Shows room `name` around message `id`: the 25 messages up to it and
  // the 25 after it, in place of what the room holds (the view is
  // detached from the newest messages until it is paged down to them).
  jumpTo(name, id) {
    const r = this.rooms.get(name);
    if (!r || !r.joined || typeof id !== 'number') return false;
    r.detached = true;
    r.buffer = r.buffer || new Map();
    r.msgs.clear();
    r.oldestId = 0;
    r.newestId = 0;
    r.hasOlder = false;
    r.hasNewer = true;
    r.loadingOlder = true;
    r.loadingNewer = true;
    r.jump = { id, seq: ++this.jumpSeq, parts: 0, done: false };
    this.requestAround(r);
    this.countsChanged(name);
    return true;
  }

  requestAround(r) {
    const { id, seq } = r.jump;
    r.jump.parts = 0;
    r.loadingOlder = r.loadingNewer = true;
    this.raw({ type: 'history', room: r.name, before: id + 1, limit: AROUND, ref: this.ref('around', r.name, { part: 'before', seq }) });
    this.raw({ type: 'history', room: r.name, after: id, limit: AROUND, ref: this.ref('around', r.name, { part: 'after', seq }) });
  }

  // The next page below a detached view.
  loadNewer(name = this.current) {
    const r = this.rooms.get(name);
    if (!r || !r.joined || !r.detached || !r.hasNewer || r.loadingNewer) return false;
    r.loadingNewer = true;
    this.raw({ type: 'history', room: r.name, after: r.newestId, limit: HISTORY_PAGE, ref: this.ref('newer', r.name) });
    return true;
  }

  // Leaves a detached view for the newest messages: the room starts over
  // with a plain join (the latest 50).
  returnToLatest(name = this.current) {
    const r = this.rooms.get(name);
    if (!r || !r.detached) return false;
    r.detached = false;
    r.buffer = null;
    r.jump = null;
    r.hasNewer = false;
    r.loadingNewer = false;
    r.loadingOlder = false;
    r.msgs.clear();
    r.oldestId = 0;
    r.newestId = 0;
    r.hasOlder = true;
    r.synced = false;
    if (this.state === 'online') this.join(r);
    this.countsChanged(name);
    return true;
  }

  // A detached view that reached the newest message: the live messages
  // kept meanwhile join it, and it is a normal view again.
  attach(r) {
    const rest = r.buffer ? [...r.buffer.values()].filter((m) => m.id > r.newestId).sort((a, b) => a.id - b.id) : [];
    r.detached = false;
    r.buffer = null;
    r.hasNewer = false;
    r.jump = null;
    this.addMessages(r, rest, true);
    this.emit('attached', { room: r.name });
    this.countsChanged(r.name);
  }

  // ---- 1.1: direct messages, edits, deletes --------------------------------

  // Opens (or reopens) the DM room with `userId`; answered by `joined` with
  // `peer`, then the 'dm' event.
  dm(userId) {
    if (!this.offlineNotice('dm')) return false;
    this.raw({ type: 'dm', user: userId, ref: this.ref('dm', null, { user: userId }) });
    return true;
  }

  edit(name, id, text) {
    if (!this.offlineNotice('edit', name, id)) return false;
    this.spend();
    this.raw({ type: 'edit', room: name, id, text, ref: this.ref('edit', name, { id }) });
    return true;
  }

  remove(name, id) {
    if (!this.offlineNotice('delete', name, id)) return false;
    this.spend();
    this.raw({ type: 'delete', room: name, id, ref: this.ref('delete', name, { id }) });
    return true;
  }

  // 1.1 moderation: kick, mute, ban, unmute, unban. `args`: {room, user,
  // minutes, reason}; answered by 'modok' or a 'notice' of kind 'mod',
  // both with the returned ref.
  moderate(action, args) {
    if (!this.offlineNotice('mod', args.room || null)) return null;
    const ref = this.ref('mod', args.room || null, { action, user: args.user });
    const req = { type: action, user: args.user, ref };
    if (args.room) req.room = args.room;
    if (args.minutes != null) req.minutes = args.minutes;
    if (args.reason) req.reason = args.reason;
    this.raw(req);
    return ref;
  }

  // Joins again a room a moderator removed us from.
  rejoin(name) {
    const r = this.room(name);
    r.left = false;
    if (this.state === 'online' && !r.joined) this.join(r);
  }

  // Edits and deletes are not queued while offline: they are refused here.
  offlineNotice(kind, room = null, id = null) {
    if (this.state === 'online') return true;
    this.emit('notice', { code: 'offline', message: 'Not connected right now. Try again when the connection is back.', kind, room, id });
    return false;
  }

  // Edits and deletes take from the send bucket too.
  spend() {
    const now = Date.now();
    const { rate_per_s: rate, burst } = this.limits;
    this.tokens = Math.max(0, Math.min(burst, this.tokens + (now - this.tokensAt) * rate / 1000) - 1);
    this.tokensAt = now;
  }

  setPeer(name, peer) {
    if (!peer || typeof peer.id !== 'string') return;
    const old = this.peers.get(name);
    const r = this.rooms.get(name);
    if (r) r.peer = peer;
    if (old && old.id === peer.id && old.name === peer.name) return;
    this.peers.set(name, peer);
    this.emit('peer', { room: name, peer });
  }

  typing(name = this.current) {
    const now = Date.now();
    if (this.state !== 'online' || now - (this.lastTyping.get(name) || 0) < 2000) return;
    this.lastTyping.set(name, now);
    this.raw({ type: 'typing', room: name, ref: `t:${name}` });
  }

  // ---- sending ----------------------------------------------------------

  send(text, name = this.current) {
    const r = this.room(name);
    const item = { client_id: randomId(), text, room: name, status: 'queued', error: null, created: Date.now() };
    r.outbox.push(item);
    this.lastTyping.set(name, 0);
    this.save();
    this.emit('outbox', { room: name, item, op: 'add' });
    this.flush();
    return item;
  }

  retry(name, client_id) {
    const r = this.rooms.get(name);
    const item = r?.outbox.find((i) => i.client_id === client_id);
    if (!item) return;
    item.status = 'queued';
    item.error = null;
    this.save();
    this.emit('outbox', { room: name, item, op: 'update' });
    if (this.state === 'online' && !r.joined) this.join(r);
    this.flush();
  }

  discard(name, client_id) {
    const r = this.rooms.get(name);
    if (!r) return;
    const i = r.outbox.findIndex((x) => x.client_id === client_id);
    if (i < 0) return;
    const [item] = r.outbox.splice(i, 1);
    this.save();
    this.emit('outbox', { room: name, item, op: 'remove' });
    this.maybeLeave(r);
  }

  // Sends queued messages of joined rooms, in order, within the rate the
  // server announced (so a reconnect with a long outbox is not refused).
  flush() {
    clearTimeout(this.flushTimer);
    if (this.state !== 'online') return;
    const now = Date.now();
    const { rate_per_s: rate, burst } = this.limits;
    this.tokens = Math.min(burst, this.tokens + (now - this.tokensAt) * rate / 1000);
    this.tokensAt = now;
    for (const r of this.rooms.values()) {
      if (!r.joined) continue;
      for (const item of r.outbox) {
        if (item.status !== 'queued') continue;
        if (this.tokens < 1) {
          this.flushTimer = setTimeout(() => this.flush(), Math.ceil(1000 / rate));
          return;
        }
        this.tokens -= 1;
        item.status = 'sending';
        this.raw({ type: 'send', room: r.name, text: item.text, client_id: item.client_id, ref: item.client_id });
        this.emit('outbox', { room: r.name, item, op: 'update' });
      }
    }
  }

  save() {
    if (!this.persist) return;
    const items = [];
    for (const r of this.rooms.values())
      for (const i of r.outbox) items.push({ client_id: i.client_id, text: i.text, room: i.room, created: i.created, status: i.status === 'failed' ? 'failed' : 'queued' });
    this.persist.save(items);
  }

  // A confirmed copy of our own message (from its ack or its broadcast)
  // resolves the outbox item with that client_id.
  resolve(r, client_id, id, ts) {
    const i = r.outbox.findIndex((x) => x.client_id === client_id);
    if (i < 0) return null;
    const [item] = r.outbox.splice(i, 1);
    item.id = id;
    item.ts = ts;
    this.save();
    return item;
  }

  // Adds confirmed messages to a room; returns the ones not seen before.
  // Our own messages still in the outbox are handed to the UI as a
  // 'confirm' (the pending bubble becomes the message) instead.
  addMessages(r, list, live) {
    const fresh = [];
    for (const m of list) {
      if (!m || typeof m.id !== 'number') continue;
      const rev = revOf(m);
      if (rev > r.lastId) r.lastId = rev;
      if (r.detached && !r.msgs.has(m.id)) {
        // Beyond the window shown: kept until the view reaches it.
        const prev = r.buffer.get(m.id);
        if (!prev || rev > revOf(prev)) r.buffer.set(m.id, m);
        const item = m.client_id ? this.resolve(r, m.client_id, m.id, m.ts) : null;
        if (item) this.emit('outbox', { room: r.name, item, op: 'confirm', message: null });
        continue;
      }
      const old = r.msgs.get(m.id);
      if (old) {
        // Known already: a newer state of it replaces it in place.
        if (rev > revOf(old)) {
          r.msgs.set(m.id, m);
          this.emit('update', { room: r.name, message: m, live });
        }
        continue;
      }
      r.msgs.set(m.id, m);
      if (!r.oldestId || m.id < r.oldestId) r.oldestId = m.id;
      const item = m.client_id ? this.resolve(r, m.client_id, m.id, m.ts) : null;
      if (item) this.emit('outbox', { room: r.name, item, op: 'confirm', message: m });
      else fresh.push(m);
    }
    if (!r.catchingUp) r.syncId = r.lastId;
    if (fresh.length) this.emit('messages', { room: r.name, messages: fresh, live });
    this.countsChanged(r.name);
    return fresh;
  }

  // ---- incoming -----------------------------------------------------------

  handle(m) {
    const info = m.ref ? this.refs.get(m.ref) : null;
    if (m.ref && m.type !== 'error') this.refs.delete(m.ref);
    switch (m.type) {
      case 'welcome': return this.onWelcome(m);
      case 'joined': return this.onJoined(m, info);
      case 'message': {
        const r = this.rooms.get(m.room);
        if (typeof m.id === 'number' && typeof m.room === 'string' && !this.isMine(m)) {
          // Counted as unread until a `rooms` answer includes it.
          const e = this.count(m.room);
          if (m.id > (e.base ? e.base.last : 0)) e.live.add(m.id);
          this.countsChanged(m.room);
        }
        if (r && r.joined) this.addMessages(r, [m], true);
        if (typeof m.id === 'number') this.emit('live', { room: m.room, message: m });
        return;
      }
      case 'read': {
        if (typeof m.room !== 'string' || typeof m.id !== 'number') return;
        const e = this.count(m.room);
        if (m.id > e.read) e.read = m.id;
        const r = this.rooms.get(m.room);
        // Rooms not counted here exactly get their count from the server.
        if (!(r && r.synced && !r.detached) && this.unreadOf(m.room) > 0) this.syncSoon();
        this.countsChanged(m.room);
        this.emit('read', { room: m.room, id: e.read, mine: !!info });
        return;
      }
      case 'search':
        this.emit('search', {
          ref: m.ref || null, q: m.q, room: m.room || null,
          messages: Array.isArray(m.messages) ? m.messages.filter((x) => x && typeof x.id === 'number' && typeof x.room === 'string') : [],
          hasMore: !!m.has_more,
        });
        return;
      case 'edited':
      case 'deleted':
        return this.onChange(m, info);
      case 'ack': {
        const r = this.rooms.get(m.room);
        if (!r) return;
        const item = this.resolve(r, m.client_id, m.id, m.ts);
        if (!item) return;
        const msg = { type: 'message', room: m.room, id: m.id, ts: m.ts, user: { id: this.user.id, name: this.user.name }, text: item.text, client_id: m.client_id };
        if (r.detached) {
          if (!r.buffer.has(m.id)) r.buffer.set(m.id, msg);
          if (m.id > r.lastId) r.lastId = m.id;
          this.emit('outbox', { room: m.room, item, op: 'confirm', message: null });
          this.maybeLeave(r);
          return;
        }
        if (!r.msgs.has(m.id)) {
          r.msgs.set(m.id, msg);
          if (m.id > r.lastId) r.lastId = m.id;
          if (!r.oldestId || m.id < r.oldestId) r.oldestId = m.id;
          if (!r.catchingUp) r.syncId = r.lastId;
        }
        this.emit('outbox', { room: m.room, item, op: 'confirm', message: r.msgs.get(m.id) });
        this.maybeLeave(r);
        return;
      }
      case 'history': return this.onHistory(m, info);
      case 'presence': {
        const r = this.rooms.get(m.room);
        if (!r || !m.user) return;
        const cur = r.members.get(m.user.id);
        if (m.event === 'join') {
          if (cur) cur.n++;
          else r.members.set(m.user.id, { user: m.user, n: 1 });
        } else if (cur && --cur.n <= 0) r.members.delete(m.user.id);
        this.emit('members', { room: m.room, event: m.event, user: m.user });
        return;
      }
      case 'typing':
        if (m.user && this.user && m.user.id === this.user.id) return;
        this.emit('typing', { room: m.room, user: m.user });
        return;
      case 'rooms': {
        const list = Array.isArray(m.rooms) ? m.rooms : [];
        for (const x of list) if (x && isDmRoom(x.name) && x.peer) this.setPeer(x.name, x.peer);
        for (const x of list) {
          if (!x || typeof x.name !== 'string') continue;
          const e = this.count(x.name);
          if (typeof x.read === 'number' && x.read > e.read) e.read = x.read;
          if (typeof x.unread === 'number') {
            const last = typeof x.last_id === 'number' ? x.last_id : 0;
            e.base = { read: typeof x.read === 'number' ? x.read : e.read, unread: x.unread, last };
            for (const id of e.live) if (id <= last) e.live.delete(id);
          }
          this.countsChanged(x.name);
        }
        this.emit('rooms', { rooms: list });
        return;
      }
      case 'ok':
        if (info && info.kind === 'mod') this.emit('modok', { ref: m.ref, ...info });
        return;
      case 'removed': {
        const r = this.rooms.get(m.room);
        if (r) {
          r.joined = false;
          r.left = true;
          r.members.clear();
          for (const it of r.outbox) if (it.status === 'sending') it.status = 'queued';
        }
        this.emit('removed', { room: m.room, reason: typeof m.reason === 'string' ? m.reason : '' });
        if (r) this.emit('members', { room: m.room });
        return;
      }
      case 'left':
      case 'pong':
        return;
      case 'error': return this.onError(m, info);
    }
  }

  onWelcome(m) {
    clearTimeout(this.helloTimer);
    this.user = m.user;
    if (m.limits) this.limits = { ...this.limits, ...m.limits };
    this.tokens = this.limits.burst;
    this.tokensAt = Date.now();
    this.attempt = 0;
    this.retryAt = 0;
    if (this.auth && !this.auth.token && typeof m.resume === 'string') this.auth.resume = m.resume;
    this.setState('online');
    this.startHeartbeat();
    this.emit('welcome', { user: m.user, limits: this.limits, resume: m.resume });
    for (const r of this.rooms.values()) {
      if (r.left) continue; // removed by a moderator: rejoined only when asked
      if (r.name === this.current || r.outbox.some((i) => i.status !== 'failed')) this.join(r);
    }
    this.requestRooms();
    this.flushReads();
  }

  onJoined(m, info) {
    let r = this.rooms.get(m.room);
    // The answer to `dm`: a room we did not know by name until now.
    if (!r && info && info.kind === 'dm' && ROOM_RE.test(m.room)) r = this.room(m.room);
    if (!r) return;
    if (m.peer) this.setPeer(r.name, m.peer);
    const first = !r.synced;
    r.joined = true;
    r.synced = true;
    r.members.clear();
    for (const u of m.members || []) {
      const cur = r.members.get(u.id);
      if (cur) cur.n++;
      else r.members.set(u.id, { user: u, n: 1 });
    }
    const msgs = Array.isArray(m.messages) ? m.messages : [];
    const allUpdates = Array.isArray(m.updates) ? m.updates : [];
    // 1.1: the current state of messages we may hold whose rev > since.
    // One we do not hold is left to `history`, which gives it as it is now.
    const updates = allUpdates.filter((x) => x && r.msgs.has(x.id));
    let top = 0;
    for (const x of [...msgs, ...allUpdates]) if (x && typeof x.id === 'number') top = Math.max(top, revOf(x));
    if (first) r.hasOlder = msgs.length > 0;
    // 1.1: the user's read marker in this room.
    const e = this.count(r.name);
    const read = typeof m.read === 'number' ? m.read : null;
    if (read !== null && read > e.read) e.read = read;
    let newest = 0;
    for (const x of msgs) if (x && typeof x.id === 'number' && x.id > newest) newest = x.id;
    this.emit('joined', { room: r.name, first, peer: r.peer, read, newest });
    // A room never read before (no marker) starts read up to what it shows,
    // when asked to (the widget: a first visit has nothing unread).
    if (this.baseline && first && read === 0 && !isDmRoom(r.name) && newest > 0 && this.marker(r.name) === 0) this.markRead(r.name, newest);
    // A jump that the connection lost is asked for again.
    if (r.detached && r.jump && !r.jump.done) this.requestAround(r);
    // More than 1000 changes missed: these are the oldest of them. Join
    // again with `since` = the highest id/rev received; until an answer
    // is complete, a reconnect's `since` stays there.
    r.catchingUp = m.complete === false && top > 0;
    if (r.catchingUp) r.cursor = top;
    this.addMessages(r, updates, true);
    this.addMessages(r, msgs, !first);
    if (r.catchingUp) r.syncId = Math.max(r.syncId, r.cursor);
    else r.syncId = r.lastId;
    this.emit('members', { room: r.name });
    if (r.catchingUp) this.join(r);
    if (info && info.kind === 'dm') this.emit('dm', { room: r.name, peer: r.peer });
    this.flush();
  }

  // A live edit or delete (1.1), applied to the message when we hold it.
  onChange(m, info) {
    if (m.type === 'deleted' && typeof m.id === 'number' && typeof m.room === 'string') {
      // A deleted message is no longer unread: one counted here live is
      // taken off; one the server counted, asked for again.
      const e = this.counts.get(m.room);
      const held = this.rooms.get(m.room)?.msgs.has(m.id);
      if (e && e.live.delete(m.id)) this.countsChanged(m.room);
      else if (e && !held && m.id > this.marker(m.room) && e.base && m.id <= e.base.last) this.syncSoon();
    }
    const r = this.rooms.get(m.room);
    if (!r || typeof m.id !== 'number') return;
    const rev = typeof m.rev === 'number' ? m.rev : 0;
    if (r.joined && rev > r.lastId) {
      r.lastId = rev;
      if (!r.catchingUp) r.syncId = r.lastId;
    }
    const old = r.msgs.get(m.id);
    if (!old || (rev && revOf(old) >= rev)) return;
    let next;
    if (m.type === 'edited') {
      next = { ...old, text: typeof m.text === 'string' ? m.text : old.text, rev: rev || old.rev, edited_ts: m.edited_ts };
    } else {
      next = { ...old, text: '', deleted: true, rev: rev || old.rev };
      delete next.client_id;
      delete next.edited_ts;
    }
    r.msgs.set(m.id, next);
    this.emit('update', { room: r.name, message: next, live: true, by: m.by || null, kind: m.type, mine: !!info });
    this.countsChanged(r.name);
  }

  onHistory(m, info) {
    const r = this.rooms.get(m.room);
    if (!r) return;
    const msgs = Array.isArray(m.messages) ? m.messages : [];
    if (info && info.kind === 'around') return this.onAround(r, m, msgs, info);
    if (info && info.kind === 'newer') return this.onNewer(r, m, msgs);
    // older page (also a reply without a ref we sent: treat as older)
    r.loadingOlder = false;
    r.hasOlder = !!m.has_more;
    const fresh = [];
    for (const x of msgs) {
      if (!x || typeof x.id !== 'number' || r.msgs.has(x.id)) continue;
      r.msgs.set(x.id, x);
      if (!r.oldestId || x.id < r.oldestId) r.oldestId = x.id;
      if (x.id > r.lastId) r.lastId = x.id;
      fresh.push(x);
    }
    this.emit('older', { room: r.name, messages: fresh, hasOlder: r.hasOlder });
  }

  // Adds history rows to a detached window; returns the ones not held.
  addWindow(r, msgs) {
    const fresh = [];
    for (const x of msgs) {
      if (!x || typeof x.id !== 'number') continue;
      const rev = revOf(x);
      if (rev > r.lastId) r.lastId = rev;
      r.buffer?.delete(x.id);
      const old = r.msgs.get(x.id);
      if (old && revOf(old) >= rev) continue;
      r.msgs.set(x.id, x);
      if (!r.oldestId || x.id < r.oldestId) r.oldestId = x.id;
      if (x.id > r.newestId) r.newestId = x.id;
      if (!old) fresh.push(x);
    }
    return fresh;
  }

  // One half of a jump: the messages up to the target (older side) or
  // after it (newer side).
  onAround(r, m, msgs, info) {
    const j = r.jump;
    if (!r.detached || !j || j.seq !== info.seq || j.done) return;
    this.addWindow(r, msgs);
    if (info.part === 'before') {
      r.hasOlder = !!m.has_more;
      r.loadingOlder = false;
    } else {
      r.hasNewer = !!m.has_more;
      r.loadingNewer = false;
    }
    if (++j.parts < 2) return;
    j.done = true;
    this.emit('jumped', { room: r.name, id: j.id, found: r.msgs.has(j.id) });
    if (!r.hasNewer) this.attach(r);
    this.countsChanged(r.name);
  }

  onNewer(r, m, msgs) {
    r.loadingNewer = false;
    if (!r.detached) return;
    const fresh = this.addWindow(r, msgs).sort((a, b) => a.id - b.id);
    r.hasNewer = !!m.has_more && msgs.length > 0;
    this.emit('newer', { room: r.name, messages: fresh });
    if (!r.hasNewer) this.attach(r);
    this.countsChanged(r.name);
  }

  onError(m, info) {
    const code = m.code || 'internal';
    const message = m.message || code;
    if (m.ref === 'hello' || code === 'unauthorized' || code === 'need_hello') {
      if (code === 'bad_name') {
        this.emit('auth', { code, message });
        return;
      }
      if (this.auth && !this.auth.token && this.auth.resume && code !== 'unauthorized') {
        // A resume the server no longer knows: start over as a new guest.
        this.auth.resume = null;
        this.sendHello();
        return;
      }
      if (code === 'unauthorized' && /\bbanned\b/.test(message)) {
        // Banned from the server: the close (1008) follows; no token
        // request or reconnect would help.
        this.lastRefusal = message;
        this.onBanned();
        return;
      }
      if (code === 'unauthorized') {
        this.stopped = true;
        this.lastRefusal = message;
        clearTimeout(this.retryTimer);
        this.setState('signed-out', message);
        this.emit('auth', { code, message });
        return;
      }
    }
    const until = typeof m.until === 'number' ? m.until : null;
    // Parley's extension: "mute" or "ban" when a sanction refused it.
    const sanction = typeof m.sanction === 'string' ? m.sanction : null;
    if (typeof m.ref === 'string' && m.ref.startsWith('t:')) {
      // A `typing` refused (muted in that room).
      this.emit('notice', { code, message, until, sanction, kind: 'typing', room: m.ref.slice(2), ref: m.ref });
      return;
    }
    // An error for one of our sends (ref = client_id).
    for (const r of this.rooms.values()) {
      const item = r.outbox.find((i) => i.client_id === m.ref);
      if (!item) continue;
      if (code === 'not_member') {
        item.status = 'queued';
        if (this.state === 'online') this.join(r);
        return;
      }
      item.status = 'failed';
      item.error = { code, message, until, sanction };
      this.save();
      this.emit('outbox', { room: r.name, item, op: 'update' });
      return;
    }
    if (info) {
      this.refs.delete(m.ref);
      const r = this.rooms.get(info.room);
      if (info.kind === 'older' && r) {
        r.loadingOlder = false;
        if (code === 'rate_limited') setTimeout(() => this.emit('older', { room: r.name, messages: [], hasOlder: r.hasOlder, retry: true }), 1000);
      }
      if (info.kind === 'join' && r && code === 'rate_limited') setTimeout(() => this.state === 'online' && this.join(r), 1000);
      if (info.kind === 'read') {
        // Too many requests, or the server busy or failing: try again in a
        // moment. Refused (a room this user may not read): not sent again.
        const e = this.counts.get(info.room);
        if (e && (code === 'rate_limited' || code === 'overloaded' || code === 'internal')) {
          e.sent = 0;
          e.sentAt = Date.now();
          this.scheduleRead(info.room);
        }
        return;
      }
      if ((info.kind === 'around' || info.kind === 'newer') && r) {
        if (info.kind === 'newer') r.loadingNewer = false;
        if (code === 'rate_limited') {
          const j = r.jump;
          if (info.kind === 'around' && (!j || j.retry === info.seq)) return; // the other half's retry covers it
          if (info.kind === 'around') j.retry = info.seq;
          setTimeout(() => {
            if (this.state !== 'online' || !r.detached) return;
            if (info.kind === 'newer') this.loadNewer(r.name);
            else if (r.jump && r.jump.seq === info.seq && !r.jump.done) {
              r.jump.retry = 0;
              this.requestAround(r);
            }
          }, 1000);
          return;
        }
      }
      this.emit('notice', { code, message, until, sanction, room: info.room, kind: info.kind, id: info.id ?? null, user: info.user ?? null, action: info.action ?? null, ref: m.ref, part: info.part ?? null });
      return;
    }
    this.emit('notice', { code, message, until, sanction });
  }
}
