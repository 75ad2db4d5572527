// search.js -- the words of a search query, and marking them in a result's
// text. The server decides what matches (protocol 1.1 "Search"); this only
// shows where, by the same rules: words are runs of letters and digits,
// compared without case or diacritics ("cafe" is "Café"), "a phrase" in
// double quotes, a trailing * on a word matches it as a prefix. Text is
// only ever added as Text nodes and <mark> elements.

const WORD_RE = /[\p{L}\p{N}][\p{L}\p{N}\p{M}]*/gu;

// Lower case, without diacritics (NFD, combining marks dropped).
export function fold(s) {
  return s.normalize('NFD').replace(/\p{M}+/gu, '').toLowerCase();
}

// The words of `s`, folded, with where each one is in `s`.
export function words(s) {
  const out = [];
  WORD_RE.lastIndex = 0;
  for (let m; (m = WORD_RE.exec(s));) out.push({ w: fold(m[0]), start: m.index, end: m.index + m[0].length });
  return out;
}

// [{words: [folded…], prefix}] : one entry per bare word, one per phrase.
export function queryTerms(q) {
  const terms = [];
  const re = /"([^"]*)"?|([^\s"]+)/g;
  for (const m of String(q).matchAll(re)) {
    if (m[1] !== undefined) {
      const ws = words(m[1]).map((t) => t.w);
      if (ws.length) terms.push({ words: ws, prefix: false });
    } else {
      const prefix = m[2].endsWith('*');
      const ws = words(m[2]).map((t) => t.w);
      ws.forEach((w, i) => terms.push({ words: [w], prefix: prefix && i === ws.length - 1 }));
    }
  }
  return terms;
}

// Whether a query has something to search for (at least one word).
export function hasWords(q) {
  return queryTerms(q).length > 0;
}

// The [start, end) ranges of `text` that the terms match, merged.
export function matchRanges(text, terms) {
  const toks = words(text);
  const ranges = [];
  for (const t of terms) {
    const n = t.words.length;
    for (let i = 0; i + n <= toks.length; i++) {
      let ok = true;
      for (let k = 0; k < n && ok; k++) {
        const w = toks[i + k].w;
        const want = t.words[k];
        ok = w === want || (t.prefix && k === n - 1 && w.startsWith(want));
      }
      if (ok) ranges.push([toks[i].start, toks[i + n - 1].end]);
    }
  }
  ranges.sort((a, b) => a[0] - b[0]);
  const merged = [];
  for (const r of ranges) {
    const last = merged[merged.length - 1];
    if (last && r[0] <= last[1]) last[1] = Math.max(last[1], r[1]);
    else merged.push([...r]);
  }
  return merged;
}

// Appends `text` to `parent` with the matched words in <mark>. A long text
// is cut to about `max` characters around its first match, with "…".
export function highlight(parent, text, terms, max = 220) {
  let ranges = matchRanges(text, terms);
  let s = text;
  let lead = '';
  let tail = '';
  if ([...text].length > max) {
    const first = ranges.length ? ranges[0][0] : 0;
    let from = Math.max(0, first - Math.floor(max / 3));
    // Start at a word boundary, and never inside a surrogate pair.
    if (from > 0) {
      const space = text.lastIndexOf(' ', from);
      if (space > 0 && from - space < 30) from = space + 1;
      if (/[\uDC00-\uDFFF]/.test(text[from] || '')) from--;
      lead = '…';
    }
    let to = Math.min(text.length, from + max);
    if (/[\uDC00-\uDFFF]/.test(text[to] || '')) to++;
    if (to < text.length) tail = '…';
    s = text.slice(from, to);
    ranges = ranges.filter((r) => r[1] > from && r[0] < to).map((r) => [Math.max(r[0], from) - from, Math.min(r[1], to) - from]);
  }
  if (lead) parent.append(document.createTextNode(lead));
  let at = 0;
  for (const [a, b] of ranges) {
    if (a > at) parent.append(document.createTextNode(s.slice(at, a)));
    const mark = document.createElement('mark');
    mark.textContent = s.slice(a, b);
    parent.append(mark);
    at = b;
  }
  if (at < s.length) parent.append(document.createTextNode(s.slice(at)));
  if (tail) parent.append(document.createTextNode(tail));
  return ranges.length;
}
