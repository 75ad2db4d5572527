// text.js -- turning message text into DOM nodes, and formatting times.
// Text is only ever inserted as Text nodes; the one element made from it is
// an <a> for an http(s) URL, whose href is checked by the URL parser.

const URL_RE = /\b(?:https?:\/\/|www\.)[^\s<>"'`]+/gi;
const TRAILING = /[.,;:!?*_~]+$/;

// Trims punctuation that usually ends a sentence rather than a URL, and a
// closing bracket without its opening one ("(see https://x.org/a)").
function trimUrl(s) {
  for (;;) {
    const before = s;
    s = s.replace(TRAILING, '');
    const last = s[s.length - 1];
    const pairs = { ')': '(', ']': '[', '}': '{' };
    if (pairs[last]) {
      const open = s.split(pairs[last]).length - 1;
      const close = s.split(last).length - 1;
      if (close > open) s = s.slice(0, -1);
    }
    if (s === before) return s;
  }
}

export function safeHref(raw) {
  try {
    const u = new URL(/^www\./i.test(raw) ? 'https://' + raw : raw);
    return u.protocol === 'http:' || u.protocol === 'https:' ? u.href : null;
  } catch {
    return null;
  }
}

// Appends `text` to `parent` as text, with URLs as links.
export function renderText(parent, text) {
  let at = 0;
  URL_RE.lastIndex = 0;
  for (let m; (m = URL_RE.exec(text));) {
    const url = trimUrl(m[0]);
    const href = safeHref(url);
    if (!href || url.length < 5) continue;
    if (m.index > at) parent.append(document.createTextNode(text.slice(at, m.index)));
    const a = document.createElement('a');
    a.href = href;
    a.target = '_blank';
    a.rel = 'noopener noreferrer';
    a.textContent = url;
    parent.append(a);
    at = m.index + url.length;
    URL_RE.lastIndex = at;
  }
  if (at < text.length) parent.append(document.createTextNode(text.slice(at)));
}

const timeFmt = new Intl.DateTimeFormat(undefined, { hour: 'numeric', minute: '2-digit' });
const fullFmt = new Intl.DateTimeFormat(undefined, { dateStyle: 'full', timeStyle: 'short' });
const dayFmt = new Intl.DateTimeFormat(undefined, { weekday: 'long', month: 'long', day: 'numeric' });
const dayYearFmt = new Intl.DateTimeFormat(undefined, { weekday: 'long', year: 'numeric', month: 'long', day: 'numeric' });

export const formatTime = (ts) => timeFmt.format(ts);
export const formatFull = (ts) => fullFmt.format(ts);

export function dayKey(ts) {
  const d = new Date(ts);
  return d.getFullYear() * 10000 + (d.getMonth() + 1) * 100 + d.getDate();
}

export function formatDay(ts, now = Date.now()) {
  const k = dayKey(ts);
  if (k === dayKey(now)) return 'Today';
  const y = new Date(now);
  y.setDate(y.getDate() - 1);
  if (k === dayKey(y.getTime())) return 'Yesterday';
  return new Date(ts).getFullYear() === new Date(now).getFullYear() ? dayFmt.format(ts) : dayYearFmt.format(ts);
}

// A stable hue for a user id, for avatars and names.
export function hueOf(id) {
  let h = 2166136261;
  for (let i = 0; i < id.length; i++) h = Math.imul(h ^ id.charCodeAt(i), 16777619);
  return (h >>> 0) % 360;
}

export function initials(name) {
  const parts = name.trim().split(/\s+/).filter(Boolean);
  const first = (s) => (s ? [...s][0] : '');
  const s = parts.length > 1 ? first(parts[0]) + first(parts[parts.length - 1]) : first(parts[0] || '?');
  return s.toUpperCase();
}
