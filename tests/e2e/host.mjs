// A tiny "customer site" on its own port (so its own origin), serving pages
// that paste the widget snippet, and a /token endpoint that mints a JWT
// the way docs/widget.md tells site owners to.
import http from 'node:http';
import { freePort, mintToken } from './helpers.mjs';

export async function startHost({ chatUrl, secret = null, pages = {} }) {
  const port = await freePort();
  const tokens = [];
  // What the site's backend does for its signed-in user.
  const mint = () => {
    const t = mintToken(secret, { sub: 'user-42', name: 'Dana Scully', rooms: ['support'] });
    tokens.push(t);
    return t;
  };
  const srv = http.createServer((req, res) => {
    const url = new URL(req.url, `http://127.0.0.1:${port}`);
    if (url.pathname === '/token' && secret) {
      res.writeHead(200, { 'content-type': 'text/plain', 'cache-control': 'no-store' });
      res.end(mint());
      return;
    }
    const page = pages[url.pathname];
    if (!page) {
      res.writeHead(404);
      res.end('not found');
      return;
    }
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
    res.end(page({ chatUrl, port, mint }));
  });
  await new Promise((r) => srv.listen(port, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${port}`,
    tokens,
    close: () => new Promise((r) => { srv.closeAllConnections?.(); srv.close(r); }),
  };
}

// Records the widget's events on window.events for the test to read.
export const RECORD_EVENTS = `<script>
  window.events = [];
  for (const n of ['parley:ready', 'parley:open', 'parley:close', 'parley:unread', 'parley:signed-in', 'parley:auth-error', 'parley:token-request'])
    addEventListener(n, (e) => window.events.push({ type: n, detail: e.detail }));
</script>`;

export function shopPage({ title = 'Acme Outdoor', body = '', snippet, extraHead = '' }) {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${title}</title>
<style>
  body { margin: 0; font: 16px/1.6 Georgia, "DejaVu Serif", serif; color: #2b2118; background: #faf6f0; }
  header { padding: 18px 40px; background: #2f4a3a; color: #f5efe4; display: flex; justify-content: space-between; align-items: center; }
  header b { font-size: 22px; letter-spacing: .04em; }
  nav a { color: #f5efe4; margin-left: 24px; text-decoration: none; }
  main { max-width: 880px; margin: 0 auto; padding: 40px; }
  h1 { font-size: 40px; margin: 0 0 12px; }
  .grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(220px, 1fr)); gap: 20px; margin-top: 28px; }
  .card { background: #fff; border: 1px solid #e8dfd2; border-radius: 6px; padding: 18px; }
  .card i { display: block; height: 120px; border-radius: 4px; background: linear-gradient(135deg, #c9b79c, #8aa38f); margin-bottom: 12px; }
</style>
${extraHead}
</head><body>
<header><b>ACME OUTDOOR</b><nav><a href="#">Tents</a><a href="#">Packs</a><a href="#">Help</a></nav></header>
<main>
<h1>Help centre</h1>
<p>Questions about an order, a return or a repair? Our team answers in the chat, usually within a few minutes.</p>
<div class="grid">
  <div class="card"><i></i><b>Orders &amp; delivery</b><br>Track a parcel or change an address.</div>
  <div class="card"><i></i><b>Returns</b><br>Free returns within 60 days.</div>
  <div class="card"><i></i><b>Repairs</b><br>We fix what we sell, for life.</div>
</div>
${body}
</main>
${snippet}
</body></html>`;
}
