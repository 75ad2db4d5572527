// app.js -- the Parley chat page (/) and the embedded chat (/embed).
// The DOM is static markup in index.html / embed.html; this file fills it
// from the protocol client's events. Message text only ever becomes Text
// nodes (text.js), never HTML.

import { Client, ROOM_RE, NAME_MAX, codePoints, store, wsUrl, isDmRoom } from './client.js';
import { queryTerms, highlight } from './search.js';
import { renderText, formatTime, formatFull, formatDay, dayKey, hueOf, initials } from './text.js';

const $ = (id) => document.getElementById(id);
const mode = document.body.dataset.mode === 'embed' ? 'embed' : 'page';
const local = store('localStorage');
const session = store('sessionStorage');
const params = new URLSearchParams(location.search);
const GROUP_MS = 5 * 60 * 1000;
const customTitle = mode === 'embed' ? (params.get('title') || '').trim().slice(0, 80) : '';
const TYPING_SHOW_MS = 5000;

const ui = {
  shell: document.querySelector('.shell'),
  sidebar: $('sidebar'), scrim: $('scrim'), chat: $('chat'), menu: $('menu'), closeDrawer: $('close-drawer'),
  rooms: $('rooms'), joinForm: $('join-form'), joinInput: $('join-input'), joinHint: $('join-hint'),
  members: $('members'), memberCount: $('member-count'),
  me: $('me'), meAvatar: $('me-avatar'), banner: $('banner'), meName: $('me-name'), rename: $('rename'),
  roomName: $('room-name'), roomMeta: $('room-meta'),
  conn: $('conn'), connText: $('conn-text'), connRetry: $('conn-retry'), closeWidget: $('close-widget'),
  scroller: $('scroller'), list: $('messages'), historyStatus: $('history-status'), newMarker: $('new-marker'),
  typing: $('typing'), composer: $('composer'), text: $('text'), textLabel: $('text-label'), send: $('send'),
  counter: $('counter'), live: $('live'),
  dms: $('dms'), dmsEmpty: $('dms-empty'), roomHash: document.querySelector('#room-title .hash'),
  searchOpen: $('search-open'), search: $('search'), searchForm: $('search-form'), searchInput: $('search-input'),
  searchScope: $('search-scope'), searchClose: $('search-close'), searchStatus: $('search-status'),
  searchResults: $('search-results'), searchMore: $('search-more'),
  confirm: $('confirm-dialog'), confirmQuote: $('confirm-quote'), confirmCancel: $('confirm-cancel'),
  dialog: $('name-dialog'), nameForm: $('name-form'), nameInput: $('name-input'), nameError: $('name-error'),
  nameCancel: $('name-cancel'), nameTitle: $('name-title'), nameDesc: $('name-desc'), nameSubmit: $('name-submit'),
  confirmTitle: $('confirm-title'), confirmDesc: $('confirm-desc'), roomNotice: $('room-notice'),
  modDialog: $('mod-dialog'), modForm: $('mod-form'), modTitle: $('mod-title'), modDesc: $('mod-desc'),
  modServerRow: $('mod-server-row'), modServer: $('mod-server'), modReason: $('mod-reason'), modError: $('mod-error'),
  modCancel: $('mod-cancel'), modOk: $('mod-ok'), fatal: $('fatal'),
};

// ---- identity ----------------------------------------------------------------

const KEY_NAME = 'parley.name';
const KEY_RESUME = 'parley.resume';
const KEY_OUTBOX = `parley.outbox.${mode}`;

const KEY_TOKEN = 'parley.token';

// The page signed in with a token (moderators, admins): opened as
// /#room&token=JWT (or /#token=JWT). The fragment never reaches a server;
// the token is kept for this tab only and taken out of the address bar.
if (mode === 'page') {
  const t = /(?:^#|&)token=([A-Za-z0-9_.-]+)/.exec(location.hash);
  if (t) {
    session.set(KEY_TOKEN, t[1]);
    const rest = location.hash.replace(/&?token=[A-Za-z0-9_.-]+/, '').replace(/^#&/, '#');
    history.replaceState(null, '', location.pathname + location.search + (rest.length > 1 ? rest : ''));
  }
}

const embedWantsToken = mode === 'embed' && params.get('auth') === 'token';
let auth = null;
const savedName = local.get(KEY_NAME);
const savedToken = mode === 'page' ? session.get(KEY_TOKEN) : null;
if (savedToken) auth = { token: savedToken };
else if (!embedWantsToken && savedName) auth = { name: savedName, resume: session.get(KEY_RESUME) };

const client = new Client({
  url: wsUrl(),
  auth,
  clientName: `parley-web/1 (${mode})`,
  // The widget: a room's first visit starts with nothing unread, so a new
  // visitor's button does not count the room's whole past.
  baseline: mode === 'embed',
  persist: {
    load() {
      try { return JSON.parse(session.get(KEY_OUTBOX) || '[]'); } catch { return []; }
    },
    save(items) {
      if (items.length) session.set(KEY_OUTBOX, JSON.stringify(items));
      else session.remove(KEY_OUTBOX);
    },
  },
});
window.parley = client; // for debugging from the console

// ---- room from the URL -------------------------------------------------------

function normalizeRoom(s) {
  return s.trim().toLowerCase().replace(/\s+/g, '-').replace(/^#/, '');
}

function roomFromUrl() {
  let raw = '';
  if (mode === 'page') {
    try { raw = decodeURIComponent(location.hash.slice(1)); } catch { raw = location.hash.slice(1); }
  }
  if (!raw) raw = params.get('room') || '';
  const name = normalizeRoom(raw);
  if (!name) return 'lobby';
  if (!ROOM_RE.test(name)) {
    toast(`“${raw}” is not a valid room name, so you are in #lobby.`);
    return 'lobby';
  }
  return name;
}

function roomFromUrlQuiet() {
  const name = normalizeRoom(params.get('room') || '');
  return name && ROOM_RE.test(name) ? name : 'lobby';
}

// ---- view state ----------------------------------------------------------------

let room = null;            // the Room shown
const nodes = new Map();    // message id -> li
const pendingNodes = new Map(); // client_id -> li
let stick = true;           // keep the view pinned to the bottom
let unseen = 0;             // messages arrived while scrolled up
let unread = 0;             // unread messages in every room counted (the title, the widget's button)
let panelOpen = mode === 'page';
let dividerAt = null;       // the "New messages" line goes above the first message from others after this id
let hitId = null;           // the message opened from a search result, highlighted
let pendingJump = null;     // {room, id}: a search result to open once its room is joined
const typers = new Map();   // user id -> {name, timer}
const knownRooms = new Map(); // name -> {name, members, last_id}
const dms = new Map();      // DM room name -> {name, peer, lastId}
const homeRoom = roomFromUrlQuiet();
let editing = null;         // {id, li, input, returnTo} while a message is edited in place
const saving = new Map();   // message id -> text of an edit sent but not yet confirmed

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text != null) e.textContent = text;
  return e;
}

function isOwn(user) {
  return !!(client.user && user && user.id === client.user.id);
}

// 1.1 moderation: the role the token gave (welcome.user.role), or null.
function myRole() {
  const r = client.user && client.user.role;
  return r === 'mod' || r === 'admin' ? r : null;
}

// Whether we may delete others' messages in `name`: a moderator in the
// rooms its token allows (never a DM), an admin everywhere.
function modDeletes(name) {
  const r = myRole();
  return r === 'admin' || (r === 'mod' && !!name && !isDmRoom(name));
}

// ---- messages -------------------------------------------------------------------

function messageNode(m, { pending = null } = {}) {
  const li = el('li', 'msg');
  const own = pending ? true : isOwn(m.user);
  const user = pending ? (client.user || { id: '', name: auth?.name || 'You' }) : m.user;
  const ts = pending ? pending.created : m.ts;
  li._ts = ts;
  li._user = user.id;
  if (own) li.classList.add('own');
  if (pending) {
    li.classList.add('unsent');
    li.dataset.cid = pending.client_id;
  } else {
    li.dataset.id = m.id;
    li._id = m.id;
    if (m.id === hitId) markHit(li);
  }

  const row = el('div', 'row');
  const avatar = el('span', 'avatar', initials(user.name || '?'));
  avatar.setAttribute('aria-hidden', 'true');
  avatar.style.setProperty('--hue', hueOf(user.id || user.name || ''));
  const body = el('div', 'body');
  const meta = el('div', 'meta');
  let author;
  if (own) author = el('span', 'author', 'You');
  else {
    // Someone else's name: a button that opens a direct conversation.
    author = el('button', 'author', user.name);
    author.type = 'button';
    author.title = `Send ${user.name} a direct message`;
    author.setAttribute('aria-label', `${user.name}, send a direct message`);
    author.style.setProperty('--hue', hueOf(user.id || ''));
    author.addEventListener('click', () => startDm(user, author));
  }
  const time = el('time', 'time');
  setTime(time, ts);
  meta.append(author, time);
  const bubble = el('div', 'bubble');
  const p = el('p', 'text');
  const deleted = !pending && m.deleted === true;
  const shown = pending ? pending.text : saving.has(m.id) && !deleted ? saving.get(m.id) : m.text;
  if (deleted) {
    li.classList.add('deleted');
    bubble.append(p, el('span', 'tombstone', 'Message deleted'));
  } else {
    renderText(p, shown);
    bubble.append(p);
    if (!pending && typeof m.edited_ts === 'number') {
      bubble.classList.add('has-edited');
      const mark = el('span', 'edited', '(edited)');
      mark.title = `Edited ${formatFull(m.edited_ts)}`;
      bubble.append(mark);
    }
  }
  body.append(meta, bubble);
  if (pending) body.append(el('div', 'status'));
  else if (saving.has(m.id) && !deleted) {
    li.classList.add('saving');
    const st = el('div', 'status');
    st.append(el('span', 'status-text', 'Saving…'));
    body.append(st);
  }
  row.append(avatar, body);
  if (!pending && !deleted && (own || modDeletes(room && room.name))) row.append(actionsFor(m, own));
  li.append(row);
  if (pending) updatePending(li, pending);
  return li;
}

// ---- the message menu (own messages): Edit, Delete ----------------------------------

let openMenu = null; // {btn, menu}

function actionsFor(m, own = true) {
  const box = el('div', 'actions');
  const btn = el('button', 'icon-btn msg-menu-btn');
  btn.type = 'button';
  const snippet = [...m.text].slice(0, 40).join('') + (codePoints(m.text) > 40 ? '…' : '');
  btn.setAttribute('aria-label', own ? `Actions for your message: ${snippet}` : `Actions for ${m.user.name}’s message: ${snippet}`);
  btn.title = own ? 'Edit or delete' : 'Delete (moderator)';
  btn.setAttribute('aria-haspopup', 'menu');
  btn.setAttribute('aria-expanded', 'false');
  // A text glyph, not an <svg>: nothing in the message list is markup
  // beyond text, links and our buttons (the XSS test checks for svg).
  const dots = el('span', 'dots-icon', '⋯');
  dots.setAttribute('aria-hidden', 'true');
  btn.append(dots);
  const items = () => own
    ? [['Edit', 'edit', () => startEdit(m.id, btn)], ['Delete', 'danger', () => confirmDelete(m.id, btn)]]
    : [['Delete', 'danger', () => confirmDelete(m.id, btn)]];
  menuButton(btn, items, 'Message actions');
  box.append(btn);
  return box;
}

// A button that opens a menu of `items()` ([label, class, fn]).
function menuButton(btn, items, label) {
  btn.setAttribute('aria-haspopup', 'menu');
  btn.setAttribute('aria-expanded', 'false');
  btn.addEventListener('click', () => (openMenu && openMenu.btn === btn ? closeMenu(true) : showMenu(btn, items(), 0, label)));
  btn.addEventListener('keydown', (e) => {
    if (e.key === 'ArrowDown' || e.key === 'ArrowUp') {
      e.preventDefault();
      showMenu(btn, items(), e.key === 'ArrowUp' ? -1 : 0, label);
    }
  });
}

function svgIcon(d) {
  const NS = 'http://www.w3.org/2000/svg';
  const svg = document.createElementNS(NS, 'svg');
  svg.setAttribute('viewBox', '0 0 24 24');
  svg.setAttribute('aria-hidden', 'true');
  const path = document.createElementNS(NS, 'path');
  path.setAttribute('d', d);
  svg.append(path);
  return svg;
}

function showMenu(btn, entries, focusIndex = 0, label = 'Message actions') {
  closeMenu(false);
  const menu = el('div', 'msg-menu');
  menu.setAttribute('role', 'menu');
  menu.setAttribute('aria-label', label);
  const item = (label, cls, fn) => {
    const b = el('button', `menu-item ${cls}`, label);
    b.type = 'button';
    b.setAttribute('role', 'menuitem');
    b.tabIndex = -1;
    b.addEventListener('click', () => {
      closeMenu(false);
      fn();
    });
    return b;
  };
  menu.append(...entries.map(([l, cls, fn]) => item(l, cls, fn)));
  menu.addEventListener('keydown', (e) => {
    const items = [...menu.querySelectorAll('[role="menuitem"]')];
    const i = items.indexOf(document.activeElement);
    if (e.key === 'ArrowDown' || e.key === 'ArrowUp') {
      e.preventDefault();
      items[(i + (e.key === 'ArrowDown' ? 1 : items.length - 1)) % items.length].focus();
    } else if (e.key === 'Home' || e.key === 'End') {
      e.preventDefault();
      items[e.key === 'Home' ? 0 : items.length - 1].focus();
    } else if (e.key === 'Escape') {
      e.preventDefault();
      e.stopPropagation();
      closeMenu(true);
    } else if (e.key === 'Tab') {
      closeMenu(false);
    }
  });
  menu.addEventListener('focusout', (e) => {
    if (openMenu && openMenu.menu === menu && !menu.contains(e.relatedTarget) && e.relatedTarget !== btn) closeMenu(false);
  });
  btn.after(menu);
  btn.setAttribute('aria-expanded', 'true');
  btn.closest('.msg, .member').classList.add('menu-open');
  // Open upwards when there is no room below.
  const box = btn.closest('.member') ? ui.sidebar : ui.scroller;
  const below = box.getBoundingClientRect().bottom - btn.getBoundingClientRect().bottom;
  menu.classList.toggle('up', below < 40 + 36 * entries.length);
  openMenu = { btn, menu };
  const items = menu.querySelectorAll('[role="menuitem"]');
  items[focusIndex < 0 ? items.length - 1 : focusIndex].focus();
}

function closeMenu(refocus) {
  if (!openMenu) return;
  const { btn, menu } = openMenu;
  openMenu = null;
  menu.remove();
  btn.setAttribute('aria-expanded', 'false');
  btn.closest('.msg, .member')?.classList.remove('menu-open');
  if (refocus && btn.isConnected) btn.focus();
}

document.addEventListener('pointerdown', (e) => {
  if (openMenu && !openMenu.menu.contains(e.target) && !openMenu.btn.contains(e.target)) closeMenu(false);
});

// ---- editing in place ------------------------------------------------------------

function lastOwnMessage() {
  if (!room || !client.user) return null;
  let best = null;
  for (const m of room.msgs.values())
    if (!m.deleted && isOwn(m.user) && nodes.has(m.id) && (!best || m.id > best.id)) best = m;
  return best;
}

function startEdit(id, returnTo) {
  if (editing) cancelEdit(false);
  const m = room && room.msgs.get(id);
  const li = nodes.get(id);
  if (!m || m.deleted || !isOwn(m.user) || !li) return;
  li.classList.add('editing');
  const bubble = li.querySelector('.bubble');
  const form = el('form', 'edit-form');
  const input = el('textarea', 'edit-text');
  input.rows = 1;
  input.value = saving.get(id) ?? m.text;
  input.setAttribute('aria-label', 'Edit your message');
  const hint = el('p', 'edit-hint');
  hint.id = `edit-hint-${id}`;
  hint.append(el('span', null, 'Enter to save, Escape to cancel'));
  input.setAttribute('aria-describedby', hint.id);
  const cancel = el('button', 'btn small ghost', 'Cancel');
  cancel.type = 'button';
  const save = el('button', 'btn small primary', 'Save');
  save.type = 'submit';
  const btns = el('span', 'edit-buttons');
  btns.append(cancel, save);
  hint.append(btns);
  form.append(input, hint);
  bubble.hidden = true;
  bubble.after(form);
  editing = { id, li, input, returnTo };
  const size = () => {
    input.style.height = 'auto';
    input.style.height = Math.min(input.scrollHeight, 240) + 'px';
  };
  input.addEventListener('input', size);
  input.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing && e.keyCode !== 229) {
      e.preventDefault();
      saveEdit();
    } else if (e.key === 'Escape') {
      e.preventDefault();
      e.stopPropagation();
      cancelEdit(true);
    }
  });
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    saveEdit();
  });
  cancel.addEventListener('click', () => cancelEdit(true));
  size();
  input.focus();
  input.setSelectionRange(input.value.length, input.value.length);
  li.scrollIntoView({ block: 'nearest' });
}

function endEdit(refocus) {
  if (!editing) return;
  const { id, returnTo } = editing;
  editing = null;
  const li = rerender(id);
  if (!refocus) return;
  // Back where the edit started: the composer (Up arrow), or this
  // message's menu button (which the re-render replaced).
  if (returnTo === ui.text || !li) ui.text.focus();
  else (li.querySelector('.msg-menu-btn') || ui.text).focus();
}

function cancelEdit(refocus) {
  endEdit(refocus);
}

function saveEdit() {
  const { id, input } = editing;
  const m = room.msgs.get(id);
  const text = input.value.trim();
  if (!text) {
    notify('A message cannot be empty. To remove it, use Delete.');
    return;
  }
  if (codePoints(text) > client.limits.max_text) {
    notify(`${ERRORS.too_long} The limit is ${client.limits.max_text.toLocaleString()} characters.`);
    return;
  }
  if (!m || text === (saving.get(id) ?? m.text)) {
    endEdit(true);
    return;
  }
  if (!client.edit(room.name, id, text)) return; // offline: said so, keep editing
  saving.set(id, text);
  endEdit(true);
}

// Draws message `id` again from the room's state; returns the new node.
function rerender(id) {
  const old = nodes.get(id);
  const m = room && room.msgs.get(id);
  if (!old || !m) return null;
  if (editing && editing.id === id) return old;
  if (openMenu && old.contains(openMenu.btn)) closeMenu(false);
  const hadFocus = old.contains(document.activeElement);
  const wasFocused = document.activeElement === old;
  const li = messageNode(m);
  old.replaceWith(li);
  setNode(id, li);
  decorate(li);
  decorate(li.nextElementSibling);
  placeDivider();
  if (wasFocused) li.focus({ preventScroll: true });
  else if (hadFocus) (li.querySelector('.msg-menu-btn') || ui.text).focus();
  if (stick) scrollToBottom();
  return li;
}

// ---- deleting ---------------------------------------------------------------------

let pendingDelete = null; // {id, returnTo}

function confirmDelete(id, returnTo) {
  const m = room && room.msgs.get(id);
  if (!m || m.deleted) return;
  pendingDelete = { id, room: room.name, returnTo };
  const own = isOwn(m.user);
  ui.confirmTitle.textContent = own ? 'Delete this message?' : `Delete ${m.user.name}’s message?`;
  ui.confirmDesc.textContent = own ? 'Everyone in the conversation will see that a message was deleted. This cannot be undone.'
    : `You are deleting it as a moderator. Everyone in the conversation, ${m.user.name} included, will see that it was deleted. This cannot be undone.`;
  ui.confirmQuote.replaceChildren();
  renderText(ui.confirmQuote, m.text);
  ui.confirm.returnValue = '';
  ui.confirm.showModal();
  ui.confirmCancel.focus();
}

ui.confirm.addEventListener('close', () => {
  const p = pendingDelete;
  pendingDelete = null;
  if (!p) return;
  if (ui.confirm.returnValue === 'delete' && room && room.name === p.room) {
    client.remove(p.room, p.id);
    ui.text.focus();
  } else if (p.returnTo && p.returnTo.isConnected) p.returnTo.focus();
  else ui.text.focus();
});

function setTime(time, ts) {
  const d = new Date(ts);
  time.dateTime = d.toISOString();
  time.textContent = formatTime(ts);
  time.title = formatFull(ts);
}

// Day separators and grouping depend on the previous message; recompute
// for a node whenever its neighbour changes.
function decorate(li) {
  if (!li) return;
  const prev = li.previousElementSibling;
  const sameDay = prev && dayKey(prev._ts) === dayKey(li._ts);
  let sep = li.firstElementChild.classList.contains('day') ? li.firstElementChild : null;
  if (!sameDay) {
    if (!sep) {
      sep = el('div', 'day');
      sep.append(el('span', null));
      li.prepend(sep);
    }
    sep.firstChild.textContent = formatDay(li._ts);
  } else if (sep) sep.remove();
  const cont = !!(prev && sameDay && prev._user === li._user && li._ts - prev._ts < GROUP_MS &&
    !prev.classList.contains('failed') && !li.classList.contains('failed') && !li.querySelector(':scope > .unread-divider'));
  li.classList.toggle('cont', cont);
}

function insertConfirmed(li) {
  const id = li._id;
  const firstUnsent = ui.list.querySelector('li.unsent');
  let node = firstUnsent ? firstUnsent.previousElementSibling : ui.list.lastElementChild;
  while (node && node._id > id) node = node.previousElementSibling;
  ui.list.insertBefore(li, node ? node.nextElementSibling : ui.list.firstElementChild);
  decorate(li);
  decorate(li.nextElementSibling);
}

const ERRORS = {
  rate_limited: 'You are sending messages too fast.',
  too_long: 'This message is too long.',
  overloaded: 'The server is busy right now.',
  internal: 'The server had a problem.',
  forbidden: 'You cannot post in this room.',
  bad_room: 'This room name is not valid.',
};

function updatePending(li, item) {
  const status = li.querySelector('.status');
  status.replaceChildren();
  li.classList.toggle('failed', item.status === 'failed');
  li.classList.toggle('pending', item.status !== 'failed');
  if (item.status === 'failed') {
    const why = sanctionOf(item.error) === 'muted' ? 'You are muted in this room.'
      : sanctionOf(item.error) === 'banned' ? 'You are banned from this room.'
      : ERRORS[item.error?.code] || item.error?.message || 'It could not be sent.';
    status.append(el('span', 'status-text', `Not sent. ${why}`));
    status.setAttribute('role', 'alert');
    if (item.error?.code !== 'too_long' && item.error?.code !== 'forbidden' && item.error?.code !== 'bad_room') {
      const retry = el('button', 'link-btn', 'Retry');
      retry.type = 'button';
      retry.addEventListener('click', () => {
        client.retry(item.room, item.client_id);
        ui.text.focus();
      });
      status.append(retry);
    } else {
      const edit = el('button', 'link-btn', 'Edit');
      edit.type = 'button';
      edit.addEventListener('click', () => {
        ui.text.value = item.text;
        client.discard(item.room, item.client_id);
        autosize();
        updateCounter();
        ui.text.focus();
      });
      status.append(edit);
    }
    const discard = el('button', 'link-btn subtle', 'Delete');
    discard.type = 'button';
    discard.addEventListener('click', () => {
      client.discard(item.room, item.client_id);
      ui.text.focus();
    });
    status.append(discard);
  } else {
    status.removeAttribute('role');
    const waiting = client.state !== 'online';
    const clock = el('span', 'clock');
    clock.setAttribute('aria-hidden', 'true');
    status.append(clock, el('span', 'status-text', waiting ? 'Waiting for connection…' : 'Sending…'));
  }
}

function refreshPending() {
  if (!room) return;
  for (const item of room.outbox) {
    const li = pendingNodes.get(item.client_id);
    if (li) updatePending(li, item);
  }
}

// ---- scrolling ----------------------------------------------------------------

function atBottom() {
  const s = ui.scroller;
  return s.scrollHeight - s.scrollTop - s.clientHeight < 48;
}

function scrollToBottom() {
  ui.scroller.scrollTop = ui.scroller.scrollHeight;
  stick = !(room && room.detached);
  setUnseen(0);
}

// The button over the bottom of the timeline: "3 new messages" while
// scrolled up, or "Jump to the latest messages" while a search result's
// surroundings are shown.
function setUnseen(n) {
  unseen = n;
  const detached = !!(room && room.detached);
  ui.newMarker.hidden = n === 0 && !detached;
  if (n || detached) {
    ui.newMarker.replaceChildren(el('span', null, detached ? 'Jump to the latest messages' : n === 1 ? '1 new message' : `${n} new messages`));
    const arrow = el('span', 'arrow', '↓');
    arrow.setAttribute('aria-hidden', 'true');
    ui.newMarker.append(arrow);
  }
}

// (Not while the search hides the timeline: it has no size then.)
function requestOlder() {
  if (room && !searchIsOpen() && client.loadOlder(room.name)) renderHistoryStatus();
}

function requestNewer() {
  if (room && room.detached && !searchIsOpen()) client.loadNewer(room.name);
}

function fillIfShort() {
  // Fewer messages than fit on screen: there is nothing to scroll, so ask
  // for the older ones now (and the newer ones, below a search result).
  if (!room || ui.scroller.scrollHeight > ui.scroller.clientHeight + 400) return;
  if (room.hasOlder) requestOlder();
  requestNewer();
}

function renderHistoryStatus() {
  const s = ui.historyStatus;
  s.replaceChildren();
  if (!room || !room.synced) return;
  if (room.loadingOlder) {
    s.className = 'history-status loading';
    s.append(el('span', 'spinner'), el('span', null, 'Loading earlier messages…'));
  } else if (!room.hasOlder) {
    s.className = 'history-status start';
    if (isDmRoom(room.name)) {
      const who = roomLabel(room.name);
      s.append(el('strong', null, who),
        el('span', null, room.msgs.size ? `This is the start of your direct messages with ${who}.` : `No messages yet. Say hello to ${who}!`));
    } else {
      s.append(el('strong', null, `Welcome to #${room.name}`),
        el('span', null, room.msgs.size ? 'This is the start of the room.' : 'No messages yet. Say hello!'));
    }
  } else {
    s.className = 'history-status';
  }
}

ui.scroller.addEventListener('scroll', () => {
  const s = ui.scroller;
  stick = atBottom() && !(room && room.detached);
  if (stick && unseen) setUnseen(0);
  if (s.scrollTop < 600) requestOlder();
  if (s.scrollHeight - s.scrollTop - s.clientHeight < 600) requestNewer();
}, { passive: true });

new ResizeObserver(() => { if (stick) ui.scroller.scrollTop = ui.scroller.scrollHeight; }).observe(ui.scroller);

ui.newMarker.addEventListener('click', () => {
  if (room && room.detached) toLatest();
  else scrollToBottom();
  ui.text.focus();
});

// From a search result's surroundings back to the newest messages.
function toLatest() {
  if (!room || !room.detached) return;
  clearHit();
  client.returnToLatest(room.name);
  startAtDivider = true;
  renderList();
  renderHistoryStatus();
  scrollToBottom();
}

// ---- rendering a room -----------------------------------------------------------

function showRoom(name) {
  room = client.setRoom(name);
  visited.add(name);
  for (const t of typers.values()) clearTimeout(t.timer);
  typers.clear();
  renderTyping();
  if (pendingJump && pendingJump.room !== name) pendingJump = null;
  hitId = null;
  // The line goes where the marker is now; until the room is joined, at
  // the marker we know (none: the messages we hold are not new).
  dividerAt = client.marker(name) || (room.synced ? room.lastId : null);
  startAtDivider = true;
  renderList();
  if (isDmRoom(name)) dmEntry(name);
  roomTexts();
  renderHistoryStatus();
  renderMembers();
  renderCounts();
  renderNotice();
  scrollToBottom();
}

// Draws the room's messages (and unsent ones) from scratch.
function renderList() {
  nodes.clear();
  pendingNodes.clear();
  seen.clear();
  io.disconnect();
  ui.list.replaceChildren();
  const frag = document.createDocumentFragment();
  for (const id of [...room.msgs.keys()].sort((a, b) => a - b)) {
    const li = messageNode(room.msgs.get(id));
    setNode(id, li);
    frag.append(li);
  }
  for (const item of room.outbox) {
    const li = messageNode(null, { pending: item });
    pendingNodes.set(item.client_id, li);
    frag.append(li);
  }
  ui.list.append(frag);
  for (const li of ui.list.children) decorate(li);
  placeDivider();
  setUnseen(0);
}

// ---- read markers: what is on screen in a focused window is read --------------------

// Message nodes at least half on screen (or filling half of it).
const seen = new Set();
const io = new IntersectionObserver((entries) => {
  for (const en of entries) {
    const id = en.target._id;
    if (typeof id !== 'number') continue;
    const root = en.rootBounds ? en.rootBounds.height : ui.scroller.clientHeight;
    const shown = en.isIntersecting && en.intersectionRect.height >= Math.min(en.boundingClientRect.height, root) * 0.5;
    if (shown) seen.add(id);
    else seen.delete(id);
  }
  markVisible();
}, { root: ui.scroller, threshold: [0, 0.25, 0.5, 0.75, 1] });

function setNode(id, li) {
  const old = nodes.get(id);
  if (old && old !== li) io.unobserve(old);
  nodes.set(id, li);
  io.observe(li);
}

// Whether this window is focused: its own focus, or (in the widget) the
// host page's, which widget.js tells us.
let ownFocus = document.hasFocus();
let parentFocus = null;
function windowFocused() {
  return ownFocus || parentFocus === true;
}

// Messages count as read only when the chat is on screen in a focused
// window and they are in view: not when merely loaded.
function canRead() {
  return chatVisible() && windowFocused() && !searchIsOpen();
}

function markVisible() {
  if (!room || !room.synced || !canRead()) return;
  let top = 0;
  for (const id of seen) if (id > top && room.msgs.has(id)) top = id;
  if (!top || top <= client.marker(room.name)) return;
  // Read as they come in: no line for messages seen at once.
  const shown = !!ui.list.querySelector('.unread-divider');
  client.markRead(room.name, top);
  if (!shown) dividerAt = Math.max(dividerAt || 0, top);
}

function readStateChanged() {
  markVisible();
  renderCounts();
}

// The counts of rooms not joined here come from `rooms`: asked for again
// when the user comes back to the window (at most every 5 s).
let roomsAskedAt = 0;
function refreshRooms() {
  if (client.state !== 'online' || Date.now() - roomsAskedAt < 5000) return;
  roomsAskedAt = Date.now();
  client.requestRooms();
}

window.addEventListener('focus', () => {
  ownFocus = true;
  readStateChanged();
  refreshRooms();
});
window.addEventListener('blur', () => {
  ownFocus = false;
  // In the widget: the host page may have lost the focus with us (the
  // whole window did); widget.js checks and says.
  toParent({ type: 'parley:blur' });
  readStateChanged();
});
window.addEventListener('pagehide', () => client.flushReads());

// The "New messages" line: above the first message from someone else
// after `dividerAt`, inside that message's node (after its day line).
function placeDivider() {
  const old = ui.list.querySelector('.unread-divider');
  let target = null;
  if (room && dividerAt !== null) {
    for (const li of ui.list.children) {
      if (li._id > dividerAt && !li.classList.contains('own') && !li.classList.contains('unsent') && !li.classList.contains('deleted')) {
        target = li;
        break;
      }
    }
  }
  if (old && old.parentNode === target) return;
  if (old) {
    const was = old.parentNode;
    old.remove();
    decorate(was); // its author shows again only when the line was why
  }
  if (!target) return;
  const d = el('div', 'unread-divider');
  d.setAttribute('role', 'separator');
  d.setAttribute('aria-label', 'New messages');
  d.append(el('span', null, 'New messages'));
  const day = target.firstElementChild && target.firstElementChild.classList.contains('day') ? target.firstElementChild : null;
  if (day) day.after(d);
  else target.prepend(d);
  decorate(target); // a new group starts below the line, with its author
}

// After a room's first messages are drawn: with a "New messages" line
// above the screen, start at the line rather than at the bottom.
let startAtDivider = false;
function scrollToDivider() {
  const d = ui.list.querySelector('.unread-divider');
  if (!d) return;
  const s = ui.scroller;
  const top = d.getBoundingClientRect().top - s.getBoundingClientRect().top + s.scrollTop;
  if (top >= s.scrollTop) return; // already on screen
  s.scrollTop = Math.max(0, top - 12);
  stick = atBottom();
  if (!stick) setUnseen(client.unreadOf(room.name));
}

// ---- unread counts (the server's), badges ---------------------------------------------

// What a room's badge says: the server's count, for DMs, for rooms the
// user has read before (a marker) and rooms opened in this page (the
// widget's room always); none for the room on screen while it is being
// read. A room merely listed (someone is in it) has no badge: its whole
// past would count.
const visited = new Set();
function badgeCount(name) {
  if (room && name === room.name && canRead()) return 0;
  if (!isDmRoom(name) && client.marker(name) === 0 && !visited.has(name) && !(mode === 'embed' && name === homeRoom)) return 0;
  return client.unreadOf(name);
}

function countLabel(n) {
  return n > 99 ? '99+' : String(n);
}

function renderCounts() {
  renderRooms();
  renderDms();
  let total = 0;
  if (mode === 'embed') {
    // The widget's button: its room and the visitor's DMs.
    total += badgeCount(homeRoom);
    for (const name of dms.keys()) if (name !== homeRoom) total += badgeCount(name);
  } else {
    for (const name of knownRooms.keys()) if (!isDmRoom(name)) total += badgeCount(name);
    for (const name of dms.keys()) total += badgeCount(name);
  }
  setUnread(total);
}

client.addEventListener('unread', () => {
  markVisible();
  renderCounts();
  // "N new messages" below the screen: fewer as they are read.
  if (unseen && room) {
    const n = client.unreadOf(room.name);
    if (n < unseen) setUnseen(n);
  }
});

client.addEventListener('read', (e) => {
  const { room: name, id, mine } = e.detail;
  // Read in another tab or device while this window is not being read:
  // the line here moves along, so it does not point at what was read.
  if (!mine && room && room.name === name && !canRead() && dividerAt !== null && id > dividerAt) {
    dividerAt = id;
    placeDivider();
  }
});

// The other person of a DM room, when known.
function peerOf(name) {
  return dms.get(name)?.peer || client.peers.get(name) || null;
}

// How a room is named to people: "#design", or the peer's name for a DM
// (never the dm-… id).
function roomLabel(name) {
  if (!isDmRoom(name)) return `#${name}`;
  return peerOf(name)?.name || 'Direct message';
}

function roomTexts() {
  if (!room) return;
  const name = room.name;
  const dm = isDmRoom(name);
  const peer = dm ? peerOf(name) : null;
  const title = dm ? (peer ? peer.name : 'Direct message') : customTitle || name;
  ui.roomName.textContent = title;
  ui.roomHash.textContent = dm ? '@' : '#';
  ui.roomHash.hidden = !dm && !!customTitle;
  document.getElementById('room-title').classList.toggle('dm', dm);
  const label = dm ? `Message ${title}` : `Message #${name}`;
  ui.textLabel.textContent = label;
  ui.text.placeholder = !dm && customTitle ? 'Write a message…' : label;
  ui.scroller.setAttribute('aria-label', dm ? `Messages with ${title}` : `Messages in #${name}`);
  document.title = titleFor();
}

function titleFor() {
  const n = mode === 'page' && unread ? `(${unread > 999 ? '999+' : unread}) ` : '';
  const label = room && isDmRoom(room.name) ? roomLabel(room.name) : customTitle || '#' + (room ? room.name : 'lobby');
  return `${n}${label} · Parley`;
}

function addMessages(list, live) {
  const wasStuck = stick;
  const others = [];
  for (const m of list) {
    if (nodes.has(m.id)) continue;
    const li = messageNode(m);
    setNode(m.id, li);
    insertConfirmed(li);
    if (live && !isOwn(m.user)) {
      others.push(m);
      stopTyping(m.user.id);
    }
  }
  const fromOthers = others.length;
  // One announcement per message, but a batch (catching up after a
  // reconnect) is summed up rather than read out in full.
  if (fromOthers > 3) announce(`${fromOthers} new messages in #${room.name}`);
  else for (const m of others) announce(`${m.user.name}: ${m.text}`);
  // Messages that come in while they are being read get no line; those
  // that wait for the reader (away, or scrolled up) do.
  if (live && wasStuck && canRead() && !ui.list.querySelector('.unread-divider')) {
    for (const m of list) if (m.id > (dividerAt || 0)) dividerAt = m.id;
  }
  placeDivider();
  if (!live || wasStuck) scrollToBottom();
  else if (fromOthers) setUnseen(unseen + fromOthers);
  renderHistoryStatus();
}

// Messages below a search result's surroundings, paged in as the view
// scrolls down: added at the bottom, the view stays where it is.
function addNewer(list) {
  for (const m of list) {
    if (nodes.has(m.id)) continue;
    const li = messageNode(m);
    setNode(m.id, li);
    insertConfirmed(li);
  }
  placeDivider();
  renderHistoryStatus();
  requestAnimationFrame(fillIfShort);
}

function addOlder(list) {
  const s = ui.scroller;
  const oldHeight = s.scrollHeight;
  const oldTop = s.scrollTop;
  const first = ui.list.firstElementChild;
  const frag = document.createDocumentFragment();
  const added = [];
  for (const m of list) {
    if (nodes.has(m.id)) continue;
    const li = messageNode(m);
    setNode(m.id, li);
    if (!first || first._id === undefined || m.id < first._id) {
      frag.append(li);
      added.push(li);
    } else insertConfirmed(li);
  }
  ui.list.insertBefore(frag, first);
  for (const li of added) decorate(li);
  decorate(first);
  placeDivider();
  renderHistoryStatus();
  if (stick) s.scrollTop = s.scrollHeight;
  else s.scrollTop = oldTop + (s.scrollHeight - oldHeight);
  requestAnimationFrame(() => {
    fillIfShort();
    if (!stick && s.scrollTop < 600) requestOlder();
  });
}

// ---- presence, typing, rooms ------------------------------------------------------

function renderMembers() {
  const people = room ? room.memberList() : [];
  // A member's moderation button that had the focus keeps it (the menu
  // closes: the list is drawn again).
  const focusedMod = document.activeElement && ui.members.contains(document.activeElement)
    ? document.activeElement.closest('.member')?.dataset.user : null;
  if (openMenu && ui.members.contains(openMenu.btn)) closeMenu(false);
  const moderating = !!(myRole() && room && !isDmRoom(room.name) && room.joined);
  ui.members.replaceChildren(...people.map((u) => {
    const li = el('li', 'member');
    const av = el('span', 'avatar small', initials(u.name));
    av.setAttribute('aria-hidden', 'true');
    av.style.setProperty('--hue', hueOf(u.id));
    const name = el('span', 'member-name', u.name);
    li.append(av, name);
    if (isOwn(u)) li.append(el('span', 'you', '(you)'));
    else if (!(room && isDmRoom(room.name))) {
      const dm = el('button', 'icon-btn dm-btn');
      dm.type = 'button';
      dm.setAttribute('aria-label', `Send ${u.name} a direct message`);
      dm.title = `Send ${u.name} a direct message`;
      dm.append(svgIcon('M5 6.5A2.5 2.5 0 0 1 7.5 4h9A2.5 2.5 0 0 1 19 6.5v7a2.5 2.5 0 0 1-2.5 2.5H11l-4.2 3.4c-.5.4-1.3 0-1.3-.6V16A2.5 2.5 0 0 1 5 13.5z'));
      dm.addEventListener('click', () => startDm(u, dm));
      li.append(dm);
      if (moderating) li.append(modButton(u));
    }
    li.dataset.user = u.id;
    return li;
  }));
  if (focusedMod) ui.members.querySelector(`.member[data-user="${CSS.escape(focusedMod)}"] .mod-btn`)?.focus();
  const n = people.length;
  const live = !!(room && room.joined && client.state === 'online');
  ui.members.classList.toggle('stale', !live);
  ui.memberCount.textContent = live ? String(n) : '';
  ui.roomMeta.textContent = !live ? '' : n <= 1 ? 'Just you here' : `${n} people here`;
  if (mode === 'embed') ui.menu.setAttribute('aria-label', `People in this room${n ? `: ${n}` : ''}`);
}

function renderRooms() {
  if (room && !isDmRoom(room.name) && !knownRooms.has(room.name)) knownRooms.set(room.name, { name: room.name, members: 0 });
  // The embed has one room (its home): listed so that a DM can go back to it.
  const names = mode === 'embed' ? [homeRoom] : [...knownRooms.keys()].filter((n) => !isDmRoom(n))
    .sort((a, b) => (a === 'lobby' ? -1 : b === 'lobby' ? 1 : a.localeCompare(b)));
  if (mode === 'embed' && !knownRooms.has(homeRoom)) knownRooms.set(homeRoom, { name: homeRoom, members: 0 });
  keepFocus(ui.rooms, () => ui.rooms.replaceChildren(...names.map((name) => {
    const r = knownRooms.get(name);
    const li = el('li');
    const a = el('a', 'room-link');
    a.href = `#${name}`;
    if (mode === 'embed') a.addEventListener('click', (e) => { e.preventDefault(); openRoom(name); });
    const hash = el('span', 'hash', '#');
    hash.setAttribute('aria-hidden', 'true');
    a.append(hash, el('span', 'room-link-name', mode === 'embed' && customTitle ? customTitle : name));
    if (room && name === room.name) a.setAttribute('aria-current', 'page');
    const n = badgeCount(name);
    if (n > 0) {
      // Unread messages, instead of the number of people online.
      a.classList.add('has-unread');
      const c = el('span', 'count unread', countLabel(n));
      c.setAttribute('aria-hidden', 'true');
      c.title = `${n >= 1000 ? '1000 or more' : n} unread`;
      a.append(c, el('span', 'sr-only', `, ${n >= 1000 ? '1000 or more' : n} unread`));
      if (r.members > 0) a.append(el('span', 'sr-only', `, ${r.members} online`));
    } else if (r.members > 0) {
      const c = el('span', 'count', String(r.members));
      c.setAttribute('aria-hidden', 'true');
      c.title = `${r.members} online`;
      a.append(c, el('span', 'sr-only', `, ${r.members} online`));
    }
    li.append(a);
    return li;
  })));
}

// Runs `fn`, which redraws `box`; a link in it that had focus keeps it.
function keepFocus(box, fn) {
  const a = document.activeElement;
  const href = a && box.contains(a) ? a.getAttribute('href') : null;
  fn();
  if (href) box.querySelector(`a[href="${CSS.escape(href)}"]`)?.focus();
}

// ---- direct messages ---------------------------------------------------------------

function dmEntry(name) {
  let d = dms.get(name);
  if (!d) {
    d = { name, peer: client.peers.get(name) || null, lastId: 0 };
    dms.set(name, d);
  }
  return d;
}

function renderDms() {
  const names = [...dms.keys()].sort((a, b) => roomLabel(a).localeCompare(roomLabel(b)));
  ui.dmsEmpty.hidden = names.length > 0;
  keepFocus(ui.dms, () => ui.dms.replaceChildren(...names.map((name) => {
    const d = dms.get(name);
    const li = el('li');
    const a = el('a', 'room-link dm-link');
    a.href = `#${name}`;
    a.dataset.room = name;
    if (mode === 'embed') a.addEventListener('click', (e) => { e.preventDefault(); openRoom(name); });
    const label = roomLabel(name);
    const av = el('span', 'avatar small', d.peer ? initials(d.peer.name) : '');
    av.setAttribute('aria-hidden', 'true');
    av.style.setProperty('--hue', hueOf(d.peer ? d.peer.id : name));
    a.append(av, el('span', 'room-link-name', label));
    if (room && name === room.name) a.setAttribute('aria-current', 'page');
    const n = badgeCount(name);
    if (n > 0) {
      a.classList.add('has-unread');
      const c = el('span', 'count unread', countLabel(n));
      c.setAttribute('aria-hidden', 'true');
      a.append(c, el('span', 'sr-only', `, ${n >= 1000 ? '1000 or more' : n} unread`));
    }
    li.append(a);
    return li;
  })));
}

// Opens the DM with `user`: the server answers `dm` with the room (the
// same one every time for these two people), then the 'dm' event opens it.
let dmReturn = null;
function startDm(user, from) {
  if (!user || isOwn(user)) return;
  for (const d of dms.values()) {
    if (d.peer && d.peer.id === user.id) {
      openRoom(d.name);
      return;
    }
  }
  dmReturn = from || null;
  client.dm(user.id);
}

// Switches to `name`: through the URL on the page, directly in the embed.
function openRoom(name) {
  if (mode === 'page') {
    if (location.hash.slice(1) !== name) {
      location.hash = name;
      return;
    }
  }
  go(name);
  closeDrawer();
  ui.text.focus();
}

function renderTyping() {
  const names = [...typers.values()].map((t) => t.name);
  ui.typing.replaceChildren();
  if (!names.length) return;
  const dots = el('span', 'dots');
  dots.append(el('i'), el('i'), el('i'));
  let text;
  if (names.length === 1) text = `${names[0]} is typing…`;
  else if (names.length === 2) text = `${names[0]} and ${names[1]} are typing…`;
  else if (names.length === 3) text = `${names[0]}, ${names[1]} and ${names[2]} are typing…`;
  else text = `${names[0]}, ${names[1]} and ${names.length - 2} others are typing…`;
  ui.typing.append(dots, el('span', null, text));
}

function stopTyping(id) {
  const t = typers.get(id);
  if (!t) return;
  clearTimeout(t.timer);
  typers.delete(id);
  renderTyping();
}

// ---- connection state ----------------------------------------------------------

let countdown = 0;
function renderBanner(st) {
  let text = '';
  if (st === 'waiting' || st === 'offline' || (st === 'connecting' && client.attempt > 0))
    text = st === 'offline' ? 'You are offline. Messages you write now are sent when the connection is back.'
      : 'The connection was lost. Messages you write now are sent when it is back.';
  else if (st === 'signed-out')
    text = auth && auth.token ? (mode === 'page' ? 'Your sign-in has expired. Open a new sign-in link to continue.' : 'Your sign-in has expired. Waiting for this site to sign you in again…')
      : (client.lastRefusal || 'The server refused the connection.');
  ui.banner.textContent = text;
  ui.banner.hidden = !text;
  ui.banner.dataset.state = st;
}

function renderConn() {
  const st = client.state;
  clearInterval(countdown);
  renderBanner(st);
  renderMembers();
  ui.conn.dataset.state = st;
  ui.connRetry.hidden = !(st === 'waiting' || st === 'offline');
  let text;
  switch (st) {
    case 'online': text = 'Connected'; break;
    case 'connecting': text = client.attempt ? 'Reconnecting…' : 'Connecting…'; break;
    case 'waiting': {
      const tick = () => {
        const s = Math.max(1, Math.ceil((client.retryAt - Date.now()) / 1000));
        ui.connText.textContent = `Reconnecting in ${s}s`;
      };
      tick();
      countdown = setInterval(tick, 1000);
      ui.conn.title = 'The connection to the chat server was lost. Messages you send now are delivered when it is back.';
      refreshPending();
      return;
    }
    case 'offline': text = 'Offline'; break;
    case 'signed-out': text = mode === 'embed' ? 'Signed out' : 'Not allowed'; break;
    case 'banned': text = 'Not allowed'; break;
    case 'idle': text = embedWantsToken ? 'Signing in…' : 'Not connected'; break;
    default: text = st;
  }
  ui.conn.title = st === 'online' ? 'Connected to the chat server' : st === 'offline' ? 'Your device is offline' : '';
  ui.connText.textContent = text;
  refreshPending();
}

ui.connRetry.addEventListener('click', () => client.retryNow());

// ---- announcements and toasts ------------------------------------------------

function announce(text) {
  const p = el('p', null, text.length > 300 ? text.slice(0, 300) + '…' : text);
  ui.live.append(p);
  while (ui.live.childElementCount > 5) ui.live.firstElementChild.remove();
}

// A live region present from the start, so that what is added to it is
// read out.
const toastBox = el('div', 'toasts');
toastBox.setAttribute('role', 'status');
toastBox.setAttribute('aria-live', 'polite');
document.body.append(toastBox);
function toast(text, cls = '') {
  const t = el('div', cls ? `toast ${cls}` : 'toast', text);
  toastBox.append(t);
  while (toastBox.childElementCount > 3) toastBox.firstElementChild.remove();
  setTimeout(() => t.remove(), 6000);
}
function notify(text) {
  toast(text, 'error');
}

// ---- unread / visibility ---------------------------------------------------------

function chatVisible() {
  return panelOpen && document.visibilityState === 'visible';
}

// The total of the badges: in the page's title, and to the widget's
// button (told once the counts settle, so that a message read as it
// arrives is not counted for a moment).
let unreadTimer = 0;
let toldUnread = 0;
function setUnread(n) {
  unread = n;
  if (mode === 'page') {
    document.title = titleFor();
    return;
  }
  clearTimeout(unreadTimer);
  unreadTimer = setTimeout(() => {
    if (unread === toldUnread) return;
    toldUnread = unread;
    toParent({ type: 'parley:unread', count: unread, room: room ? room.name : null });
  }, 250);
}

document.addEventListener('visibilitychange', () => {
  if (document.visibilityState === 'hidden') client.flushReads();
  readStateChanged();
  if (chatVisible()) refreshRooms();
});

// ---- client events ----------------------------------------------------------------

client.addEventListener('state', () => renderConn());

let lastRole = null;
client.addEventListener('welcome', (e) => {
  const u = e.detail.user;
  if (!auth.token) {
    if (typeof e.detail.resume === 'string') session.set(KEY_RESUME, e.detail.resume);
  }
  ui.me.hidden = false;
  ui.meName.textContent = u.name;
  ui.meAvatar.textContent = initials(u.name);
  ui.meAvatar.style.setProperty('--hue', hueOf(u.id));
  ui.rename.hidden = !!auth.token;
  // Pending bubbles were drawn before we knew our id.
  for (const li of pendingNodes.values()) li._user = u.id;
  // A role (or none any more): the messages' and members' controls change.
  if ((u.role || null) !== lastRole) {
    lastRole = u.role || null;
    if (room && nodes.size) for (const id of [...nodes.keys()]) rerender(id);
    renderMembers();
  }
  toParent({ type: 'parley:signed-in', user: { id: u.id, name: u.name, guest: !!u.guest } });
});

client.addEventListener('auth', (e) => {
  const { code, message } = e.detail;
  if (code === 'bad_name') {
    openNameDialog({ error: message || 'Please choose another name.' });
  } else if (mode === 'embed' && auth && auth.token) {
    toParent({ type: 'parley:auth-error', code, message });
  } else {
    toast(message || 'The server refused the connection.');
  }
});

client.addEventListener('joined', (e) => {
  // In the room again (rejoined, or opened again): not removed or banned.
  if (['removed', 'banned', 'ended'].includes(restrictions.get(e.detail.room)?.kind)) lift(e.detail.room);
  if (!room || e.detail.room !== room.name) return;
  const { first, newest } = e.detail;
  // The line sits at the marker the room had when it was opened; a room
  // never read before has no line for what it shows now.
  if (first || dividerAt === null) dividerAt = client.marker(room.name) || newest;
  renderHistoryStatus();
  // Once the answer's messages are drawn (the client adds them next).
  queueMicrotask(() => {
    if (!room || room.name !== e.detail.room) return;
    placeDivider();
    if (startAtDivider) {
      startAtDivider = false;
      scrollToDivider();
      const n = client.unreadOf(room.name);
      if (first && n > 0 && ui.list.querySelector('.unread-divider')) announce(`${n >= 1000 ? '1000 or more' : n} new message${n === 1 ? '' : 's'} in ${roomLabel(room.name)}`);
    }
    if (pendingJump && pendingJump.room === room.name) doJump();
    markVisible();
  });
});

client.addEventListener('newer', (e) => {
  if (!room || e.detail.room !== room.name) return;
  addNewer(e.detail.messages);
});

client.addEventListener('attached', (e) => {
  if (!room || e.detail.room !== room.name) return;
  setUnseen(0);
  stick = atBottom();
  renderHistoryStatus();
});

client.addEventListener('jumped', (e) => {
  if (!room || e.detail.room !== room.name) return;
  renderList();
  renderHistoryStatus();
  showHit(e.detail.id, e.detail.found);
  requestAnimationFrame(fillIfShort);
});

client.addEventListener('messages', (e) => {
  if (!room || e.detail.room !== room.name) return;
  addMessages(e.detail.messages, e.detail.live);
  if (!e.detail.live) requestAnimationFrame(fillIfShort);
});

client.addEventListener('older', (e) => {
  if (!room || e.detail.room !== room.name) return;
  if (e.detail.retry) {
    requestOlder();
    return;
  }
  addOlder(e.detail.messages);
});

client.addEventListener('outbox', (e) => {
  const { room: name, item, op } = e.detail;
  if (op === 'update' && item.status === 'failed' && item.error?.code === 'forbidden') sanctionFrom(name, item.error);
  // Sent: whatever mute there was is over (lifted early, or expired).
  if (op === 'confirm' && restrictions.get(name)?.kind === 'muted') lift(name);
  if (!room || name !== room.name) return;
  const li = pendingNodes.get(item.client_id);
  if (op === 'add') {
    const n = messageNode(null, { pending: item });
    pendingNodes.set(item.client_id, n);
    ui.list.append(n);
    decorate(n);
    scrollToBottom();
  } else if (op === 'update') {
    if (li) updatePending(li, item);
    if (item.status === 'failed') announce(`Message not sent: ${ERRORS[item.error?.code] || ''}`);
  } else if (op === 'remove') {
    if (li) {
      const next = li.nextElementSibling;
      li.remove();
      decorate(next);
    }
    pendingNodes.delete(item.client_id);
  } else if (op === 'confirm') {
    pendingNodes.delete(item.client_id);
    const m = e.detail.message;
    if (li) {
      const next = li.nextElementSibling;
      li.remove();
      decorate(next);
    }
    if (m && !nodes.has(m.id) && !room.detached) {
      const fresh = messageNode(m);
      setNode(m.id, fresh);
      insertConfirmed(fresh);
      if (stick) scrollToBottom();
    }
    renderHistoryStatus();
  }
});

client.addEventListener('members', (e) => {
  if (!room || e.detail.room !== room.name) return;
  if (e.detail.event === 'leave' && e.detail.user && !room.members.has(e.detail.user.id)) stopTyping(e.detail.user.id);
  renderMembers();
  const k = knownRooms.get(room.name);
  if (k) {
    k.members = room.members.size;
    renderRooms();
  }
});

client.addEventListener('typing', (e) => {
  const { room: name, user } = e.detail;
  if (!room || name !== room.name || !user) return;
  const t = typers.get(user.id);
  if (t) clearTimeout(t.timer);
  typers.set(user.id, { name: user.name, timer: setTimeout(() => stopTyping(user.id), TYPING_SHOW_MS) });
  renderTyping();
});

client.addEventListener('rooms', (e) => {
  for (const r of e.detail.rooms) {
    if (!r || typeof r.name !== 'string') continue;
    if (isDmRoom(r.name)) {
      const d = dmEntry(r.name);
      if (r.peer && typeof r.peer.id === 'string') d.peer = r.peer;
      if (typeof r.last_id === 'number' && !d.lastId) d.lastId = r.last_id;
    } else knownRooms.set(r.name, r);
  }
  renderCounts();
  if (room && isDmRoom(room.name)) roomTexts();
});

const ACTION_ERRORS = {
  edit: {
    forbidden: 'You can only edit your own messages.',
    not_found: 'That message no longer exists.',
    too_long: 'The edited message is too long.',
    rate_limited: 'You are editing too fast. Wait a moment and try again.',
  },
  delete: {
    forbidden: 'You cannot delete this message.',
    not_found: 'That message was already deleted.',
    rate_limited: 'You are deleting too fast. Wait a moment and try again.',
  },
  dm: {
    not_found: 'That person is not known to this server.',
    bad_request: 'You cannot send a direct message to yourself.',
    rate_limited: 'Too many requests. Wait a moment and try again.',
  },
};

client.addEventListener('notice', (e) => {
  const { code, message, kind, room: name, id } = e.detail;
  if (kind === 'search') {
    if (e.detail.ref && e.detail.ref === srch.ref) searchFailed(code, message);
    return;
  }
  if (kind === 'around' || kind === 'newer') {
    // The messages around a search result could not be loaded.
    if (room && room.name === name && room.detached) {
      notify(code === 'forbidden' ? `You do not have access to ${roomLabel(name)}.` : 'The messages around that result could not be loaded.');
      toLatest();
    }
    return;
  }
  if (kind === 'edit' || kind === 'delete' || kind === 'dm') {
    // An edit that did not go through: show the message as it is.
    if (kind === 'edit' && id != null && saving.delete(id) && room && room.name === name) rerender(id);
    let text = ACTION_ERRORS[kind][code];
    if (code === 'forbidden' && kind === 'dm') text = message && message !== code ? `You cannot send this direct message: ${message}` : 'Direct messages are not allowed for you here.';
    notify(text || message || code);
    if (kind === 'dm' && dmReturn && dmReturn.isConnected) dmReturn.focus();
    return;
  }
  if (kind === 'mod') {
    modRefused(e.detail);
    return;
  }
  if (kind === 'typing') {
    if (code === 'forbidden') sanctionFrom(name, e.detail);
    return;
  }
  if (code === 'rate_limited') return; // retried by the client
  if (kind === 'join' && code === 'forbidden' && sanctionOf(e.detail)) sanctionFrom(name, e.detail);
  else if (kind === 'join' && code === 'forbidden') notify(`You do not have access to ${roomLabel(name)}.`);
  else notify(message || code);
});

// 1.1: an edit or a delete of a message we hold (live, or from `updates`
// after a reconnect).
client.addEventListener('update', (e) => {
  const { room: name, message: m, live, kind, mine, by } = e.detail;
  saving.delete(m.id);
  if (!room || name !== room.name) return;
  if (editing && editing.id === m.id && m.deleted) {
    editing = null; // deleted under us (another tab, or a moderator)
  }
  rerender(m.id);
  if (live && kind && !mine) {
    const who = (by && by.name) || (m.user && m.user.name) || 'Someone';
    if (m.deleted) announce(isOwn(by || m.user) ? 'Your message was deleted.' : `${who} deleted a message.`);
    else if (!isOwn(m.user)) announce(`${m.user.name} edited a message: ${m.text}`);
  } else if (mine) announce(m.deleted ? 'Message deleted.' : 'Message edited.');
});

// Every live message, joined room or not: DMs show up in the sidebar at
// once (their unread counts are the client's, see 'unread').
client.addEventListener('live', (e) => {
  const { room: name, message: m } = e.detail;
  if (!isDmRoom(name) || !m.user) return;
  const d = dmEntry(name);
  const own = isOwn(m.user);
  if (!d.peer) {
    // The sender is the other person, unless we sent it (from another
    // tab): then the server's room list says who the peer is.
    if (!own) setPeer(name, { id: m.user.id, name: m.user.name });
    else client.requestRooms();
  }
  if (m.id <= d.lastId) return;
  d.lastId = m.id;
  const open = room && room.name === name;
  if (!own && !open) announce(`New direct message from ${m.user.name}: ${m.text}`);
  renderDms();
});

function setPeer(name, peer) {
  const d = dmEntry(name);
  d.peer = peer;
  renderDms();
  if (room && room.name === name) {
    roomTexts();
    renderHistoryStatus();
  }
}

client.addEventListener('peer', (e) => setPeer(e.detail.room, e.detail.peer));

// Our `dm` was answered: open the conversation.
client.addEventListener('dm', (e) => {
  const { room: name, peer } = e.detail;
  const d = dmEntry(name);
  if (peer) d.peer = peer;
  dmReturn = null;
  renderDms();
  openRoom(name);
});

setInterval(() => { if (client.state === 'online') client.requestRooms(); }, 30000);

// ---- composer -------------------------------------------------------------------

function autosize() {
  const t = ui.text;
  t.style.height = 'auto';
  t.style.height = Math.min(t.scrollHeight, 200) + 'px';
}

function updateCounter() {
  const max = client.limits.max_text;
  const n = codePoints(ui.text.value.trim());
  const c = ui.counter;
  if (n > max) {
    c.textContent = `${(n - max).toLocaleString()} characters over the limit`;
    c.className = 'counter over';
  } else if (n > max - 200) {
    c.textContent = `${(max - n).toLocaleString()} characters left`;
    c.className = 'counter';
  } else {
    c.textContent = '';
    c.className = 'counter';
  }
  ui.text.setAttribute('aria-invalid', String(n > max));
}

ui.text.addEventListener('input', () => {
  autosize();
  updateCounter();
  if (ui.text.value.trim() && room) client.typing(room.name);
});

ui.text.addEventListener('keydown', (e) => {
  if (e.key === 'Enter' && !e.shiftKey && !e.isComposing && e.keyCode !== 229) {
    e.preventDefault();
    ui.composer.requestSubmit();
  } else if (e.key === 'ArrowUp' && !ui.text.value && !e.shiftKey && !e.altKey && !e.ctrlKey && !e.metaKey) {
    // Up in an empty composer edits your last message here.
    const m = lastOwnMessage();
    if (m) {
      e.preventDefault();
      startEdit(m.id, ui.text);
    }
  }
});

ui.composer.addEventListener('submit', (e) => {
  e.preventDefault();
  const text = ui.text.value.trim();
  if (!text || !room || restrictions.has(room.name)) return;
  if (!client.auth) {
    openNameDialog({});
    return;
  }
  if (codePoints(text) > client.limits.max_text) {
    updateCounter();
    announce(ui.counter.textContent);
    return;
  }
  // Writing from a search result's surroundings: back to the newest first.
  if (room.detached) toLatest();
  client.send(text, room.name);
  ui.text.value = '';
  autosize();
  updateCounter();
  ui.text.focus();
});

// ---- name dialog ----------------------------------------------------------------

function nameProblem(name) {
  if (!name) return 'Please enter a name.';
  if (codePoints(name) > NAME_MAX) return `Please use at most ${NAME_MAX} characters.`;
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f-\u009f]/.test(name)) return 'Please use letters, digits and punctuation only.';
  return '';
}

function openNameDialog({ error = '' } = {}) {
  const first = !client.auth || !auth;
  ui.nameTitle.textContent = first ? (mode === 'embed' ? 'Start chatting' : 'Welcome to Parley') : 'Change your name';
  ui.nameDesc.textContent = first ? 'Choose the name others will see next to your messages.' : 'Your new name shows on messages you send from now on.';
  ui.nameSubmit.textContent = first ? 'Join the chat' : 'Save';
  ui.nameCancel.hidden = first;
  ui.nameInput.value = (auth && auth.name) || local.get(KEY_NAME) || '';
  ui.nameError.textContent = error;
  ui.nameInput.setAttribute('aria-invalid', String(!!error));
  if (!ui.dialog.open) ui.dialog.showModal();
  ui.nameInput.focus();
  ui.nameInput.select();
}

ui.nameForm.addEventListener('submit', (e) => {
  e.preventDefault();
  const name = ui.nameInput.value.trim().replace(/\s+/g, ' ');
  const problem = nameProblem(name);
  if (problem) {
    ui.nameError.textContent = problem;
    ui.nameInput.setAttribute('aria-invalid', 'true');
    ui.nameInput.focus();
    return;
  }
  local.set(KEY_NAME, name);
  ui.dialog.close();
  const changed = !auth || auth.name !== name || client.state !== 'online';
  auth = { name, resume: session.get(KEY_RESUME) };
  if (changed) client.setAuth(auth);
  ui.text.focus();
});

ui.dialog.addEventListener('cancel', (e) => {
  if (!auth) e.preventDefault(); // a name is needed to chat
});
ui.nameCancel.addEventListener('click', () => {
  ui.dialog.close();
  ui.text.focus();
});
ui.rename.addEventListener('click', () => {
  closeDrawer();
  openNameDialog({});
});

// ---- rooms: switching and joining -------------------------------------------------

function go(name) {
  if (room && name === room.name) return;
  if (editing) cancelEdit(false);
  closeMenu(false);
  closeSearch(false);
  showRoom(name);
  announce(isDmRoom(name) ? `Conversation with ${roomLabel(name)}` : `Joined #${name}`);
}

window.addEventListener('hashchange', () => {
  if (mode !== 'page') return;
  const name = roomFromUrl();
  if (params.has('room')) {
    params.delete('room');
    const q = params.toString();
    history.replaceState(null, '', location.pathname + (q ? '?' + q : '') + '#' + name);
  }
  go(name);
  closeDrawer();
  ui.text.focus();
});

ui.joinForm.addEventListener('submit', (e) => {
  e.preventDefault();
  const name = normalizeRoom(ui.joinInput.value);
  if (!ROOM_RE.test(name)) {
    ui.joinHint.textContent = 'Use 1–64 lowercase letters, digits, - and _, starting with a letter or digit.';
    ui.joinHint.classList.add('error');
    ui.joinInput.setAttribute('aria-invalid', 'true');
    ui.joinInput.focus();
    return;
  }
  ui.joinHint.textContent = 'Lowercase letters, digits, - and _';
  ui.joinHint.classList.remove('error');
  ui.joinInput.setAttribute('aria-invalid', 'false');
  ui.joinInput.value = '';
  location.hash = name;
});

// ---- phone drawer ----------------------------------------------------------------

function openDrawer() {
  document.body.classList.add('drawer-open');
  ui.menu.setAttribute('aria-expanded', 'true');
  ui.scrim.hidden = false;
  ui.chat.inert = true;
  (ui.sidebar.querySelector('[aria-current]') || ui.closeDrawer).focus();
}

function closeDrawer() {
  if (!document.body.classList.contains('drawer-open')) return;
  document.body.classList.remove('drawer-open');
  ui.menu.setAttribute('aria-expanded', 'false');
  ui.scrim.hidden = true;
  ui.chat.inert = false;
  ui.menu.focus();
}

ui.menu.addEventListener('click', () => (document.body.classList.contains('drawer-open') ? closeDrawer() : openDrawer()));
ui.closeDrawer.addEventListener('click', closeDrawer);
ui.scrim.addEventListener('click', closeDrawer);
document.addEventListener('keydown', (e) => {
  if (e.key !== 'Escape' || ui.dialog.open || ui.confirm.open || ui.modDialog.open) return;
  if (document.body.classList.contains('drawer-open')) closeDrawer();
  else if (mode === 'embed' && framed) toParent({ type: 'parley:close' });
});
matchMedia('(min-width: 861px)').addEventListener('change', (e) => { if (e.matches) closeDrawer(); });

// ---- embed: talking to the host page ---------------------------------------------

const framed = window.parent !== window;
let parentOrigin = null;
if (mode === 'embed' && framed) {
  const anc = location.ancestorOrigins;
  const claimed = params.get('origin');
  if (anc && anc.length) parentOrigin = anc[0];
  else if (claimed) parentOrigin = claimed;
  else if (document.referrer) {
    try { parentOrigin = new URL(document.referrer).origin; } catch { /* none */ }
  }
  if (parentOrigin === 'null') parentOrigin = null;
}

function toParent(msg) {
  if (mode !== 'embed' || !framed || !parentOrigin) return;
  window.parent.postMessage(msg, parentOrigin);
}

if (mode === 'embed') {
  panelOpen = !framed || params.get('open') === '1';
  ui.closeWidget.hidden = !framed;
  ui.closeWidget.addEventListener('click', () => toParent({ type: 'parley:close' }));
  window.addEventListener('message', (e) => {
    if (!framed || e.source !== window.parent || e.origin !== parentOrigin) return;
    const d = e.data;
    if (!d || typeof d !== 'object' || typeof d.type !== 'string') return;
    if (d.type === 'parley:token') {
      if (typeof d.token !== 'string' || !d.token) return;
      if (auth && auth.token === d.token) return;
      if (client.banned) return; // banned from the server: no new attempts
      const wasGuest = !auth || !auth.token;
      auth = { token: d.token };
      if (ui.dialog.open) ui.dialog.close();
      // A fresh token for the same connection is kept for the next
      // reconnect; a guest who signs in reconnects now.
      if (wasGuest || client.state !== 'online') client.setAuth(auth);
      else client.auth = auth;
    } else if (d.type === 'parley:visibility') {
      panelOpen = !!d.open;
      if (typeof d.focused === 'boolean') parentFocus = d.focused;
      if (chatVisible()) {
        if (stick) scrollToBottom();
        if (!auth && !embedWantsToken) openNameDialog({});
        else ui.text.focus();
      }
      readStateChanged();
    } else if (d.type === 'parley:focus') {
      // The host page gained or lost focus (widget.js): messages on
      // screen in the open panel are read while it has it.
      parentFocus = !!d.focused;
      readStateChanged();
    }
  });
}

// ---- search (1.1) -------------------------------------------------------------------
//
// A search view in place of the timeline: a box, where to search (every
// room, or this one; the widget searches its conversation), and results
// newest first, each with the room, the author, the time and the words
// found marked. A result opens its message in its room, with the messages
// around it, highlighted and focused.

const srch = { open: false, q: '', room: null, ref: null, results: [], hasMore: false, returnTo: null, terms: [], scroll: 0, stick: true };
const SEARCH_LIMIT = 20;

function searchIsOpen() {
  return srch.open;
}

if (mode === 'embed') ui.searchInput.placeholder = 'Search this conversation';

function openSearch(from = document.activeElement) {
  if (editing) cancelEdit(false);
  closeMenu(false);
  closeDrawer();
  if (!srch.open) {
    srch.open = true;
    srch.scroll = ui.scroller.scrollTop;
    srch.stick = stick;
    srch.returnTo = from && from !== document.body ? from : null;
    ui.search.hidden = false;
    document.body.classList.add('searching');
    ui.searchOpen.setAttribute('aria-expanded', 'true');
    updateScopeLabel();
  }
  ui.searchInput.focus();
  ui.searchInput.select();
}

// Closes the view; `refocus`: back to where it was opened from.
function closeSearch(refocus = true) {
  if (!srch.open) return;
  srch.open = false;
  ui.search.hidden = true;
  document.body.classList.remove('searching');
  ui.searchOpen.setAttribute('aria-expanded', 'false');
  // The timeline was out of the layout: back where it was.
  if (srch.stick) scrollToBottom();
  else {
    ui.scroller.scrollTop = srch.scroll;
    stick = false;
  }
  if (refocus) {
    const to = srch.returnTo && srch.returnTo.isConnected && !srch.returnTo.closest('#search') ? srch.returnTo : ui.searchOpen;
    to.focus();
  }
  srch.returnTo = null;
  readStateChanged();
}

function updateScopeLabel() {
  const opt = ui.searchScope.querySelector('option[value="room"]');
  if (opt && room && mode === 'page') opt.textContent = isDmRoom(room.name) ? `With ${roomLabel(room.name)}` : `In #${room.name}`;
}

function setSearchStatus(text, busy = false) {
  ui.searchStatus.replaceChildren();
  if (busy) {
    const sp = el('span', 'spinner');
    sp.setAttribute('aria-hidden', 'true');
    ui.searchStatus.append(sp);
  }
  ui.searchStatus.append(el('span', null, text));
}

function runSearch(more = false) {
  // Older results continue the search shown, whatever the box says now.
  if (more && (!srch.q || !srch.results.length)) return;
  const q = more ? srch.q : ui.searchInput.value.trim();
  if (!more) {
    srch.results = [];
    srch.hasMore = false;
    ui.searchResults.replaceChildren();
    ui.searchMore.hidden = true;
  }
  if (!q) {
    srch.ref = null;
    setSearchStatus('');
    return;
  }
  if (codePoints(q) > 256) {
    srch.ref = null;
    setSearchStatus('That search is too long: use at most 256 characters.');
    return;
  }
  const terms = queryTerms(q);
  if (!terms.length) {
    srch.ref = null;
    setSearchStatus('Type a word to search for (letters or digits).');
    return;
  }
  const scoped = mode === 'embed' || ui.searchScope.value === 'room';
  const where = more ? srch.room : scoped && room ? room.name : null;
  const before = more && srch.results.length ? srch.results[srch.results.length - 1].id : null;
  const ref = client.search(q, { room: where, before, limit: SEARCH_LIMIT });
  if (!ref) {
    srch.ref = null;
    setSearchStatus('Not connected right now. Search again when the connection is back.');
    return;
  }
  Object.assign(srch, { q, room: where, ref, terms });
  // "Show older results" stays where it is (with the focus) while they load.
  ui.searchMore.setAttribute('aria-disabled', String(more));
  setSearchStatus(more ? 'Loading older results…' : 'Searching…', true);
}

function whereLabel() {
  return srch.room ? ` ${isDmRoom(srch.room) ? 'with ' + roomLabel(srch.room) : 'in #' + srch.room}` : '';
}

client.addEventListener('search', (e) => {
  const { ref, messages, hasMore } = e.detail;
  if (!ref || ref !== srch.ref) return; // an older search's answer
  srch.ref = null;
  const more = srch.results.length > 0;
  const fresh = messages.filter((m) => !srch.results.some((x) => x.id === m.id));
  srch.results.push(...fresh);
  srch.hasMore = hasMore && messages.length > 0;
  // A DM's other person, as far as a result shows it.
  for (const m of fresh) if (isDmRoom(m.room) && !peerOf(m.room) && m.user && !isOwn(m.user)) setPeer(m.room, { id: m.user.id, name: m.user.name });
  const first = ui.searchResults.childElementCount;
  const onMore = document.activeElement === ui.searchMore;
  ui.searchResults.append(...fresh.map(resultNode));
  ui.searchMore.removeAttribute('aria-disabled');
  ui.searchMore.hidden = !srch.hasMore;
  const n = srch.results.length;
  const q = `“${srch.q}”`;
  if (!n) setSearchStatus(`No messages match ${q}${whereLabel()}.`);
  else setSearchStatus(`${srch.hasMore ? `The newest ${n}` : n} result${n === 1 ? '' : 's'} for ${q}${whereLabel()}${srch.hasMore ? '. Older ones below.' : '.'}`);
  // "Show older results" moves the focus to the first of them.
  if (more && fresh.length && (onMore || document.activeElement === document.body)) {
    ui.searchResults.children[first]?.querySelector('a')?.focus();
  }
});

const SEARCH_ERRORS = {
  bad_request: 'That search could not be understood. Use words, "a phrase" in quotes, or word* for a prefix.',
  forbidden: 'You cannot search there.',
  rate_limited: 'Too many searches at once. Wait a moment and try again.',
  overloaded: 'The server is busy right now. Try again in a moment.',
  internal: 'The server had a problem with that search. Try again.',
};

function searchFailed(code, message) {
  srch.ref = null;
  ui.searchMore.removeAttribute('aria-disabled');
  setSearchStatus(SEARCH_ERRORS[code] || message || code);
  ui.searchMore.hidden = !srch.hasMore;
}

function timeLabel(ts) {
  return `${formatDay(ts)}, ${formatTime(ts)}`;
}

function resultNode(m) {
  const li = el('li', 'result-item');
  const a = el('a', 'result');
  a.href = `#${m.room}`;
  a.dataset.room = m.room;
  a.dataset.id = m.id;
  const head = el('span', 'result-head');
  const own = isOwn(m.user);
  const author = el('span', 'result-author', own ? 'You' : (m.user && m.user.name) || 'Someone');
  author.style.setProperty('--hue', hueOf((m.user && m.user.id) || ''));
  const where = el('span', 'result-room', isDmRoom(m.room) ? `@${roomLabel(m.room)}` : `#${m.room}`);
  const time = el('time', 'result-time', timeLabel(m.ts));
  time.dateTime = new Date(m.ts).toISOString();
  time.title = formatFull(m.ts);
  head.append(author, el('span', 'sr-only', isDmRoom(m.room) ? ', in your conversation with ' : ', in '), where,
    el('span', 'sr-only', ', '), time, el('span', 'sr-only', ': '));
  const text = el('span', 'result-text');
  highlight(text, m.text || '', srch.terms);
  a.append(head, text);
  a.addEventListener('click', (e) => {
    e.preventDefault();
    openResult(m);
  });
  li.append(a);
  return li;
}

// A result opens in its room: joined first (when it is another room),
// then the history around it is loaded and the message highlighted.
function openResult(m) {
  closeSearch(false);
  pendingJump = { room: m.room, id: m.id };
  if (room && room.name === m.room) doJump();
  else openRoom(m.room);
}

function doJump() {
  const j = pendingJump;
  if (!j || !room || room.name !== j.room || !room.joined) return;
  pendingJump = null;
  if (nodes.has(j.id) && !room.detached) {
    showHit(j.id, true);
    return;
  }
  clearHit();
  hitId = j.id;
  if (!client.jumpTo(room.name, j.id)) return;
  renderList();
  renderHistoryStatus();
  setUnseen(0);
}

function markHit(li) {
  li.classList.add('hit');
  li.tabIndex = -1;
}

function clearHit() {
  if (hitId === null) return;
  const li = nodes.get(hitId);
  if (li) {
    li.classList.remove('hit');
    li.removeAttribute('tabindex');
  }
  hitId = null;
}

// Scrolls message `id` to the middle of the view, highlights it and gives
// it focus (a screen reader reads it).
function showHit(id, found = true) {
  if (hitId !== null && hitId !== id) clearHit();
  hitId = id;
  const li = nodes.get(id);
  if (!found || !li) {
    notify('That message is no longer there.');
    ui.text.focus();
    return;
  }
  markHit(li);
  li.scrollIntoView({ block: 'center' });
  stick = atBottom() && !room.detached;
  setUnseen(0);
  li.focus({ preventScroll: true });
  const m = room.msgs.get(id);
  if (m) announce(`Message from ${isOwn(m.user) ? 'you' : m.user.name} in ${roomLabel(room.name)}, ${timeLabel(m.ts)}`);
}

// The highlight goes once the user moves on (a click elsewhere in the
// timeline, or writing).
ui.list.addEventListener('focusout', (e) => {
  if (hitId !== null && e.target === nodes.get(hitId) && !nodes.get(hitId).contains(e.relatedTarget)) {
    nodes.get(hitId).removeAttribute('tabindex');
  }
});

ui.searchOpen.addEventListener('click', () => (srch.open ? closeSearch(true) : openSearch(ui.searchOpen)));
ui.searchClose.addEventListener('click', () => closeSearch(true));
ui.searchForm.addEventListener('submit', (e) => {
  e.preventDefault();
  runSearch(false);
});
ui.searchScope.addEventListener('change', () => {
  if (ui.searchInput.value.trim()) runSearch(false);
});
ui.searchMore.addEventListener('click', () => {
  if (!srch.ref) runSearch(true);
});

// Typing pauses: search without waiting for Enter (complete quotes only).
let searchTimer = 0;
ui.searchInput.addEventListener('input', () => {
  clearTimeout(searchTimer);
  const q = ui.searchInput.value.trim();
  if ((q.split('"').length - 1) % 2) return;
  searchTimer = setTimeout(() => {
    if (srch.open && ui.searchInput.value.trim() === q && q !== srch.q) runSearch(false);
  }, 450);
});

// Keys: Down from the box to the results, Up/Down/Home/End among them,
// Escape closes the search.
ui.search.addEventListener('keydown', (e) => {
  const links = [...ui.searchResults.querySelectorAll('a.result')];
  const i = links.indexOf(document.activeElement);
  if (e.key === 'Escape') {
    e.preventDefault();
    e.stopPropagation();
    closeSearch(true);
  } else if (e.key === 'ArrowDown' && (i >= 0 || e.target === ui.searchInput) && links.length) {
    e.preventDefault();
    links[Math.min(i + 1, links.length - 1)].focus();
  } else if (e.key === 'ArrowUp' && i >= 0) {
    e.preventDefault();
    if (i === 0) ui.searchInput.focus();
    else links[i - 1].focus();
  } else if ((e.key === 'Home' || e.key === 'End') && i >= 0) {
    e.preventDefault();
    links[e.key === 'Home' ? 0 : links.length - 1].focus();
  }
});

// Ctrl+K (Cmd+K) opens the search from anywhere.
document.addEventListener('keydown', (e) => {
  if ((e.ctrlKey || e.metaKey) && !e.altKey && !e.shiftKey && e.key.toLowerCase() === 'k' && !ui.dialog.open && !ui.confirm.open && !ui.modDialog.open && ui.fatal.hidden) {
    e.preventDefault();
    openSearch(document.activeElement);
  }
});

// ---- moderation (1.1): the moderator's controls --------------------------------------
//
// A token with "role": "mod" or "admin" gets Delete on others' messages
// (see modDeletes) and, on each member of a room, a menu: Kick, Mute…,
// Unmute, Ban…. Mute and Ban open a dialog (how long, a reason; Ban for an
// admin: the whole server). Refusals show in the dialog.

const DURATIONS = { 10: '10 minutes', 60: '1 hour', 1440: '1 day', 10080: '1 week' };

function modButton(u) {
  const box = el('div', 'actions member-actions');
  const btn = el('button', 'icon-btn mod-btn');
  btn.type = 'button';
  btn.setAttribute('aria-label', `Moderate ${u.name}`);
  btn.title = `Moderate ${u.name}`;
  const dots = el('span', 'dots-icon', '⋯');
  dots.setAttribute('aria-hidden', 'true');
  btn.append(dots);
  menuButton(btn, () => [
    ['Kick', 'danger', () => kick(u, btn)],
    ['Mute…', 'danger', () => openModDialog('mute', u, btn)],
    ['Unmute', '', () => unmute(u, btn)],
    ['Ban…', 'danger', () => openModDialog('ban', u, btn)],
  ], `Moderate ${u.name}`);
  box.append(btn);
  return box;
}

const modRefs = new Map(); // ref -> {action, user, room, minutes}
let modPending = null;     // the dialog's request: {ref, action, user, room, returnTo}

function modDone(text) {
  toast(text);
  announce(text);
}

function kick(u, returnTo) {
  if (!room) return;
  const ref = client.moderate('kick', { room: room.name, user: u.id });
  if (ref) modRefs.set(ref, { action: 'kick', user: u, room: room.name });
  if (returnTo && returnTo.isConnected) returnTo.focus();
}

function unmute(u, returnTo) {
  if (!room) return;
  const ref = client.moderate('unmute', { room: room.name, user: u.id });
  if (ref) modRefs.set(ref, { action: 'unmute', user: u, room: room.name });
  if (returnTo && returnTo.isConnected) returnTo.focus();
}

function openModDialog(action, u, returnTo) {
  if (!room) return;
  const admin = myRole() === 'admin';
  modPending = { ref: null, action, user: u, room: room.name, returnTo };
  ui.modTitle.textContent = action === 'mute' ? `Mute ${u.name}` : `Ban ${u.name}`;
  ui.modDesc.textContent = action === 'mute'
    ? `${u.name} can still read #${room.name}, but cannot write in it.`
    : `${u.name} is removed from #${room.name} and cannot join it again.`;
  ui.modServerRow.hidden = !(action === 'ban' && admin);
  ui.modServer.checked = false;
  ui.modReason.value = '';
  ui.modError.textContent = '';
  ui.modReason.setAttribute('aria-invalid', 'false');
  for (const r of ui.modForm.elements.minutes) r.checked = r.value === '60';
  setModBusy(false);
  ui.modDialog.showModal();
  ui.modForm.querySelector('input[name="minutes"]:checked').focus();
}

function setModBusy(busy) {
  const verb = modPending ? (modPending.action === 'mute' ? 'Mute' : 'Ban') : 'OK';
  ui.modOk.textContent = busy ? `${verb === 'Mute' ? 'Muting' : 'Banning'}…` : verb;
  ui.modOk.setAttribute('aria-disabled', String(busy));
}

ui.modServer.addEventListener('change', () => {
  if (!modPending) return;
  const u = modPending.user;
  ui.modDesc.textContent = ui.modServer.checked
    ? `${u.name} is disconnected and cannot use the chat anywhere on this server.`
    : `${u.name} is removed from #${modPending.room} and cannot join it again.`;
});

ui.modForm.addEventListener('submit', (e) => {
  e.preventDefault();
  const p = modPending;
  if (!p || p.ref) return; // already sent: waiting for the answer
  const reason = ui.modReason.value.trim();
  if (codePoints(reason) > 200) {
    ui.modError.textContent = `The reason is ${codePoints(reason)} characters long; use at most 200.`;
    ui.modReason.setAttribute('aria-invalid', 'true');
    ui.modReason.focus();
    return;
  }
  const v = ui.modForm.elements.minutes.value;
  const minutes = v ? Number(v) : null;
  const server = p.action === 'ban' && !ui.modServer.hidden && ui.modServer.checked;
  const ref = client.moderate(p.action, { room: server ? null : p.room, user: p.user.id, minutes, reason });
  if (!ref) {
    ui.modError.textContent = 'Not connected right now. Try again when the connection is back.';
    return;
  }
  p.ref = ref;
  p.minutes = minutes;
  p.server = server;
  ui.modError.textContent = '';
  setModBusy(true);
});

ui.modCancel.addEventListener('click', () => ui.modDialog.close());

ui.modDialog.addEventListener('close', () => {
  const p = modPending;
  modPending = null;
  if (!p) return;
  // Back to the member's button (drawn again meanwhile, perhaps).
  const again = ui.members.querySelector(`.member[data-user="${CSS.escape(p.user.id)}"] .mod-btn`);
  const to = p.returnTo && p.returnTo.isConnected ? p.returnTo : again || ui.text;
  to.focus();
});

function forHowLong(minutes) {
  return minutes ? `for ${DURATIONS[minutes] || `${minutes} minutes`}` : 'until you lift it';
}

client.addEventListener('modok', (e) => {
  const { ref } = e.detail;
  if (modPending && modPending.ref === ref) {
    const p = modPending;
    const what = p.action === 'mute' ? `${p.user.name} is muted in #${p.room} ${forHowLong(p.minutes)}.`
      : p.server ? `${p.user.name} is banned from the server ${forHowLong(p.minutes)}.`
      : `${p.user.name} is banned from #${p.room} ${forHowLong(p.minutes)}.`;
    ui.modDialog.close();
    modDone(what);
    return;
  }
  const r = modRefs.get(ref);
  if (!r) return;
  modRefs.delete(ref);
  if (r.action === 'kick') modDone(`${r.user.name} was removed from #${r.room}.`);
  else if (r.action === 'unmute') modDone(`${r.user.name} can write in #${r.room} again.`);
});

const MOD_ERRORS = {
  forbidden: 'You are not allowed to do that here.',
  bad_request: 'The server did not accept that request.',
  rate_limited: 'Too many requests. Wait a moment and try again.',
  not_found: 'That person is not known to this server.',
};

function modRefused(d) {
  const why = d.code === 'offline' ? d.message
    : d.code === 'bad_request' && d.message && d.message !== d.code ? `The server did not accept that: ${d.message}.`
    : MOD_ERRORS[d.code] || d.message || d.code;
  if (modPending && modPending.ref === d.ref) {
    modPending.ref = null;
    setModBusy(false);
    ui.modError.textContent = why;
    return;
  }
  modRefs.delete(d.ref);
  notify(why);
}

// ---- moderation (1.1): being removed, muted or banned -----------------------------------
//
// room -> {kind: 'removed' | 'banned' | 'muted', until, reason, timer}: the
// room shows a notice above the composer, and the composer is off.

const restrictions = new Map();
const untilFmt = new Intl.DateTimeFormat(undefined, { weekday: 'short', month: 'short', day: 'numeric', hour: 'numeric', minute: '2-digit' });

// What a refusal says about us: 'muted', 'banned' or null. Parley's
// `forbidden` carries "sanction" ("mute" or "ban") for a mute or a ban; the
// message is for people and may change.
function sanctionOf(err) {
  if (!err || err.code !== 'forbidden') return null;
  return { mute: 'muted', ban: 'banned' }[err.sanction] || null;
}

function sanctionFrom(name, err) {
  const kind = sanctionOf(err);
  if (!kind || !name) return;
  restrict(name, { kind, until: typeof err.until === 'number' ? err.until : null });
}

function restrict(name, r) {
  const old = restrictions.get(name);
  if (old) clearTimeout(old.timer);
  if (r.until) {
    const check = () => {
      const left = r.until - Date.now();
      if (left > 0) {
        r.timer = setTimeout(check, Math.min(left + 250, 2 ** 31 - 1));
        return;
      }
      // Over: a mute simply ends; after a ban the room can be joined again.
      if (r.kind === 'banned') restrict(name, { kind: 'ended', until: null });
      else lift(name);
      if (room && room.name === name) announce(r.kind === 'muted' ? `You can write in ${roomLabel(name)} again.` : `You can join ${roomLabel(name)} again.`);
    };
    check();
  }
  restrictions.set(name, r);
  if (room && room.name === name) {
    renderNotice();
    renderMembers();
  }
}

function lift(name) {
  const r = restrictions.get(name);
  if (!r) return;
  clearTimeout(r.timer);
  restrictions.delete(name);
  if (room && room.name === name) renderNotice();
}

function untilNode(until) {
  const t = el('time', 'until');
  t.dateTime = new Date(until).toISOString();
  t.title = formatFull(until);
  t.textContent = dayKey(until) === dayKey(Date.now()) ? formatTime(until) : untilFmt.format(until);
  return t;
}

function renderNotice() {
  const r = room && restrictions.get(room.name);
  const box = ui.roomNotice;
  const hadFocus = box.contains(document.activeElement);
  box.replaceChildren();
  box.hidden = !r;
  ui.composer.classList.toggle('restricted', !!r);
  ui.text.disabled = !!r;
  ui.send.disabled = !!r;
  if (!r) {
    delete box.dataset.kind;
    roomTexts(); // the composer's placeholder
    if (hadFocus) ui.text.focus();
    return;
  }
  box.dataset.kind = r.kind;
  const name = room.name;
  const where = roomLabel(name);
  const p = el('p', 'notice-text');
  const when = r.until ? [' until ', untilNode(r.until), '.'] : [' until a moderator lifts it.'];
  let action = null;
  if (r.kind === 'muted') {
    p.append(el('strong', null, `You are muted in ${where}`), ...when, ' You can still read along.');
    // A moderator may lift it early: the next send tells.
    action = ['Try again', () => { lift(name); ui.text.focus(); }];
  } else if (r.kind === 'banned') {
    p.append(el('strong', null, `You are banned from ${where}`), ...when);
    if (!r.until) action = ['Try again', () => rejoin(name)];
  } else if (r.kind === 'ended') {
    p.append(el('strong', null, `Your ban from ${where} has ended.`), ' You can join it again.');
    action = [`Rejoin ${where}`, () => rejoin(name)];
  } else {
    p.append(el('strong', null, `You were removed from ${where} by a moderator.`));
    if (r.reason) p.append(' Reason: ', el('q', 'reason', r.reason));
    action = [`Rejoin ${where}`, () => rejoin(name)];
  }
  box.append(p);
  if (action) {
    const b = el('button', 'btn small', action[0]);
    b.type = 'button';
    b.addEventListener('click', action[1]);
    box.append(b);
    if (hadFocus) b.focus();
  }
  ui.text.placeholder = r.kind === 'muted' ? 'You cannot write here right now' : `You are not in ${where}`;
}

function rejoin(name) {
  lift(name);
  client.rejoin(name);
  roomTexts();
  ui.text.focus();
}

client.addEventListener('removed', (e) => {
  const { room: name, reason } = e.detail;
  restrict(name, { kind: 'removed', until: null, reason });
  const k = knownRooms.get(name);
  if (k) k.members = 0;
  renderRooms();
  if (room && room.name === name) {
    roomTexts();
    renderNotice();
    renderMembers();
    announce(`You were removed from ${roomLabel(name)} by a moderator.${reason ? ` Reason: ${reason}` : ''}`);
  } else toast(`You were removed from ${roomLabel(name)} by a moderator.`);
});

// Banned from the whole server (closed with 1008 "banned", or the hello
// refused for it): a page-wide notice, and no reconnecting.
client.addEventListener('banned', () => {
  for (const d of [ui.dialog, ui.confirm, ui.modDialog]) if (d.open) d.close();
  closeMenu(false);
  ui.fatal.hidden = false;
  ui.shell.inert = true;
  document.body.classList.add('fatal-open');
  const box = ui.fatal.querySelector('.fatal-box');
  box.tabIndex = -1;
  box.focus();
});

// ---- start -----------------------------------------------------------------------

renderConn();
showRoom(roomFromUrl());
autosize();
if (mode === 'page' && !location.hash && !params.has('room')) history.replaceState(null, '', '#' + room.name);
if (auth) client.start();
else if (!embedWantsToken && (mode === 'page' || panelOpen)) openNameDialog({});
toParent({ type: 'parley:ready', room: room.name });
