/* Parley chat widget. A site pastes one line:
 *
 *   <script src="https://CHAT-HOST/widget.js" data-room="support" async></script>
 *
 * and gets a chat button that opens a panel holding the chat in an iframe
 * served by Parley (/embed), so neither page can break the other. The
 * button lives in a shadow root; the host talks to the widget through
 * window.Parley, window.postMessage and DOM events on window. Options, events
 * and the token handoff: docs/widget.md.
 */
(function () {
  'use strict';
  if (window.Parley && window.Parley.widget) return; // pasted twice

  var ROOM_RE = /^[a-z0-9][a-z0-9_-]{0,63}$/;
  var script = document.currentScript;
  if (!script) {
    var all = document.querySelectorAll('script[src*="widget.js"]');
    script = all[all.length - 1];
  }
  if (!script || !script.src) return;

  var chatUrl = new URL(script.src, location.href);
  var chatOrigin = chatUrl.origin;
  var ds = script.dataset;
  var room = String(ds.room || 'lobby').trim().toLowerCase();
  if (!ROOM_RE.test(room)) {
    console.warn('[parley] data-room="' + ds.room + '" is not a valid room name; using "lobby"');
    room = 'lobby';
  }
  var token = ds.token || null;
  var wantsToken = !!token || ds.auth === 'token';
  var side = ds.position === 'left' ? 'left' : 'right';
  var label = ds.label || 'Chat';
  var title = ds.title || 'Chat';
  var accent = ds.color && window.CSS && CSS.supports('color', ds.color) ? ds.color : '#4f46e5';
  var startOpen = ds.open === '' || ds.open === 'true';

  var isOpen = false;
  var ready = false;
  var unread = 0;
  var host, root, launcher, badge, labelEl, panel, iframe;

  function emit(name, detail) {
    window.dispatchEvent(new CustomEvent(name, { detail: detail }));
  }

  function toChat(msg) {
    if (ready && iframe && iframe.contentWindow) iframe.contentWindow.postMessage(msg, chatOrigin);
  }

  var CSS_TEXT = [
    ':host{all:initial}',
    '*{box-sizing:border-box}',
    '.launcher{position:fixed;bottom:20px;' + side + ':20px;z-index:2147483000;display:flex;align-items:center;gap:9px;height:52px;padding:0 20px 0 16px;border:0;border-radius:26px;background:var(--accent);color:#fff;font:600 15px/1 system-ui,-apple-system,"Segoe UI",Roboto,"Noto Sans",Arial,sans-serif;letter-spacing:0;cursor:pointer;box-shadow:0 2px 6px rgba(16,24,40,.18),0 8px 24px rgba(16,24,40,.18);transition:transform .15s ease,box-shadow .15s ease}',
    '.launcher:hover{transform:translateY(-1px);box-shadow:0 4px 10px rgba(16,24,40,.2),0 12px 30px rgba(16,24,40,.2)}',
    '.launcher:focus-visible{outline:3px solid var(--accent);outline-offset:3px}',
    '.launcher svg{width:22px;height:22px;fill:none;stroke:currentColor;stroke-width:2;stroke-linecap:round;stroke-linejoin:round}',
    '.launcher .close-icon{display:none}',
    '.open .launcher .chat-icon{display:none}',
    '.open .launcher .close-icon{display:block}',
    '.badge{position:absolute;top:-5px;' + (side === 'left' ? 'left' : 'right') + ':-5px;min-width:22px;height:22px;padding:0 6px;border:2px solid #fff;border-radius:11px;background:#e11d48;color:#fff;font:700 11px/18px system-ui,-apple-system,"Segoe UI",Roboto,Arial,sans-serif;text-align:center}',
    '.panel{position:fixed;bottom:86px;' + side + ':20px;z-index:2147483000;width:384px;height:min(620px,calc(100vh - 110px));border-radius:18px;overflow:hidden;background:#fff;box-shadow:0 4px 12px rgba(16,24,40,.12),0 18px 56px rgba(16,24,40,.24);opacity:0;visibility:hidden;transform:translateY(12px) scale(.98);transform-origin:bottom ' + side + ';transition:opacity .18s ease,transform .18s ease,visibility 0s linear .18s}',
    '.open .panel{opacity:1;visibility:visible;transform:none;transition:opacity .18s ease,transform .18s ease,visibility 0s}',
    '@media (prefers-color-scheme:dark){.panel{background:#17191e}.badge{border-color:#17191e}}',
    'iframe{display:block;width:100%;height:100%;border:0}',
    '@media (max-width:480px){.panel{inset:0;width:auto;height:auto;border-radius:0}.open .launcher{display:none}.launcher{bottom:16px;' + side + ':16px}}',
    '@media (prefers-reduced-motion:reduce){.launcher,.panel,.open .panel{transition:none}}',
  ].join('\n');

  var CHAT_ICON = '<svg class="chat-icon" viewBox="0 0 24 24" aria-hidden="true"><path d="M5 6.5A2.5 2.5 0 0 1 7.5 4h9A2.5 2.5 0 0 1 19 6.5v7a2.5 2.5 0 0 1-2.5 2.5H11l-4.2 3.4c-.5.4-1.3 0-1.3-.6V16A2.5 2.5 0 0 1 5 13.5z"/></svg>';
  var CLOSE_ICON = '<svg class="close-icon" viewBox="0 0 24 24" aria-hidden="true"><path d="M6 6l12 12M18 6L6 18"/></svg>';

  function mount() {
    if (!document.body) {
      document.addEventListener('DOMContentLoaded', mount);
      return;
    }
    host = document.createElement('parley-widget');
    host.style.setProperty('all', 'initial', 'important');
    host.style.setProperty('display', 'block', 'important');
    root = host.attachShadow({ mode: 'open' });
    var style = document.createElement('style');
    style.textContent = CSS_TEXT;
    var wrap = document.createElement('div');
    wrap.className = 'wrap';
    wrap.style.setProperty('--accent', accent);

    launcher = document.createElement('button');
    launcher.type = 'button';
    launcher.className = 'launcher';
    launcher.setAttribute('aria-expanded', 'false');
    launcher.setAttribute('aria-controls', 'parley-panel');
    launcher.innerHTML = CHAT_ICON + CLOSE_ICON; // static markup, no data in it
    labelEl = document.createElement('span');
    labelEl.textContent = label;
    badge = document.createElement('span');
    badge.className = 'badge';
    badge.hidden = true;
    badge.setAttribute('aria-hidden', 'true');
    launcher.append(labelEl, badge);
    launcher.addEventListener('click', toggle);

    panel = document.createElement('div');
    panel.className = 'panel';
    panel.id = 'parley-panel';
    panel.setAttribute('role', 'dialog');
    panel.setAttribute('aria-label', title);

    iframe = document.createElement('iframe');
    iframe.title = title;
    iframe.setAttribute('sandbox', 'allow-scripts allow-same-origin allow-forms allow-popups allow-popups-to-escape-sandbox');
    iframe.setAttribute('referrerpolicy', 'origin');
    var q = new URLSearchParams({ room: room, origin: location.origin });
    if (wantsToken) q.set('auth', 'token');
    if (ds.title) q.set('title', ds.title);
    iframe.src = chatOrigin + '/embed?' + q.toString();
    panel.append(iframe);

    wrap.append(panel, launcher);
    root.append(style, wrap);
    document.body.append(host);
    updateLauncher();
    if (wantsToken && !token) emit('parley:token-request', { room: room });
  }

  function updateLauncher() {
    if (!launcher) return;
    launcher.parentNode.classList.toggle('open', isOpen);
    launcher.setAttribute('aria-expanded', String(isOpen));
    labelEl.textContent = isOpen ? 'Close' : label;
    var n = unread > 99 ? '99+' : String(unread);
    badge.textContent = n;
    badge.hidden = isOpen || unread === 0;
    launcher.setAttribute('aria-label', isOpen ? 'Close chat' :
      unread ? 'Open chat, ' + unread + ' unread message' + (unread === 1 ? '' : 's') : 'Open chat');
  }

  // Before the button is mounted (no <body> yet), only the state is kept:
  // mount() draws it and the chat learns it when it says it is ready.
  function open() {
    if (isOpen) return;
    isOpen = true;
    if (!host) return;
    updateLauncher();
    toChat({ type: 'parley:visibility', open: true });
    try { iframe.focus(); } catch (e) { /* ignore */ }
    emit('parley:open', { room: room });
  }

  function close() {
    if (!isOpen) return;
    isOpen = false;
    if (!host) return;
    var hadFocus = document.activeElement === host;
    updateLauncher();
    toChat({ type: 'parley:visibility', open: false });
    if (hadFocus) launcher.focus();
    emit('parley:close', { room: room });
  }

  // Whether this page (or the chat inside it) has the focus: the chat
  // marks messages read only while they are on screen in a focused window.
  var toldFocus = null;
  function tellFocus() {
    var f = document.hasFocus();
    if (f === toldFocus) return;
    toldFocus = f;
    toChat({ type: 'parley:focus', focused: f });
  }
  window.addEventListener('focus', tellFocus);
  // Focus moving into the chat's iframe blurs this window but leaves the
  // page focused: ask once the move is over.
  window.addEventListener('blur', function () { setTimeout(tellFocus, 0); });

  function toggle() {
    if (isOpen) close();
    else open();
  }

  function setToken(t) {
    if (typeof t !== 'string' || !t) return;
    token = t;
    toChat({ type: 'parley:token', token: token });
  }

  window.addEventListener('message', function (e) {
    var d = e.data;
    if (!d || typeof d !== 'object' || typeof d.type !== 'string') return;
    // From the chat iframe.
    if (iframe && e.source === iframe.contentWindow) {
      if (e.origin !== chatOrigin) return;
      switch (d.type) {
        case 'parley:ready':
          ready = true;
          if (token) toChat({ type: 'parley:token', token: token });
          toldFocus = document.hasFocus();
          toChat({ type: 'parley:visibility', open: isOpen, focused: toldFocus });
          emit('parley:ready', { room: room });
          break;
        case 'parley:unread':
          unread = Math.max(0, d.count | 0);
          updateLauncher();
          emit('parley:unread', { count: unread, room: room });
          break;
        case 'parley:close':
          close();
          break;
        case 'parley:blur':
          // The chat lost the focus: to this page, or with it.
          setTimeout(tellFocus, 0);
          break;
        case 'parley:signed-in':
          emit('parley:signed-in', { user: d.user, room: room });
          break;
        case 'parley:auth-error':
          emit('parley:auth-error', { code: d.code, message: d.message, room: room });
          emit('parley:token-request', { room: room, reason: d.code });
          break;
      }
      return;
    }
    // From the host page itself: window.postMessage({type: 'parley:token', token}, location.origin).
    if (e.source === window && e.origin === location.origin) {
      if (d.type === 'parley:token') setToken(d.token);
      else if (d.type === 'parley:open') open();
      else if (d.type === 'parley:close') close();
      else if (d.type === 'parley:toggle') toggle();
    }
  });

  window.Parley = {
    widget: true,
    version: 1,
    room: room,
    origin: chatOrigin,
    open: open,
    close: close,
    toggle: toggle,
    setToken: setToken,
    isOpen: function () { return isOpen; },
    get unread() { return unread; },
  };

  mount();
  if (startOpen) open();
})();
