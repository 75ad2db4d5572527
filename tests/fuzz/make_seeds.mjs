// make_seeds.mjs -- writes the seed corpus under tests/fuzz/corpus/<harness>/.
// The seeds are committed; rerun this (node tests/fuzz/make_seeds.mjs) after
// changing a harness's input format. Each seed is small and named for what
// it exercises.
import { createHmac } from 'node:crypto';
import { mkdirSync, writeFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.join(here, 'corpus');

function put(harness, name, data) {
  const dir = path.join(root, harness);
  mkdirSync(dir, { recursive: true });
  writeFileSync(path.join(dir, name), Buffer.isBuffer(data) ? data : Buffer.from(data));
}

const b64url = (b) => Buffer.from(b).toString('base64').replace(/=+$/, '').replace(/\+/g, '-').replace(/\//g, '_');
function token(payload, { secret = 'fuzz-secret-0123456789', header = { alg: 'HS256', typ: 'JWT' } } = {}) {
  const si = `${b64url(JSON.stringify(header))}.${b64url(typeof payload === 'string' ? payload : JSON.stringify(payload))}`;
  return `${si}.${b64url(createHmac('sha256', secret).update(si).digest())}`;
}

rmSync(root, { recursive: true, force: true });

// ---- protocol: first byte < 128 means max_text 4000
const frames = {
  hello: '{"type":"hello","name":"Ada","client":"web/1"}',
  hello_token: '{"type":"hello","token":"a.b.c","ref":"r1"}',
  hello_resume: '{"type":"hello","name":"Bo","resume":"g_0123456789abcdef.AAAA"}',
  join: '{"type":"join","room":"lobby"}',
  join_since: '{"type":"join","room":"lobby","since":123,"ref":"j"}',
  join_since_huge: '{"type":"join","room":"lobby","since":1e400}',
  join_since_frac: '{"type":"join","room":"lobby","since":1.5}',
  join_since_2_53: '{"type":"join","room":"lobby","since":9007199254740992}',
  leave: '{"type":"leave","room":"a-b_c"}',
  send: '{"type":"send","room":"lobby","text":"hello","client_id":"c1","ref":"x"}',
  send_escapes: '{"type":"send","room":"r","text":"\\"\\\\\\/\\b\\f\\n\\r\\t\\u00e9\\ud83d\\ude00","client_id":"c"}',
  send_nul_escape: '{"type":"send","room":"r","text":"a\\u0000b","client_id":"c"}',
  send_lone_surrogate: '{"type":"send","room":"r","text":"\\ud800","client_id":"c"}',
  send_empty: '{"type":"send","room":"r","text":"","client_id":"c"}',
  send_cid_long: `{"type":"send","room":"r","text":"t","client_id":"${'x'.repeat(65)}"}`,
  send_controls: '{"type":"send","room":"r","text":"\u0001\u001f\u007f\u0085","client_id":"c"}',
  history: '{"type":"history","room":"lobby","before":10,"limit":200}',
  history_after: '{"type":"history","room":"lobby","after":0}',
  history_both: '{"type":"history","room":"lobby","after":1,"before":2}',
  history_limit0: '{"type":"history","room":"lobby","limit":0}',
  typing: '{"type":"typing","room":"lobby"}',
  rooms: '{"type":"rooms"}',
  edit: '{"type":"edit","room":"lobby","id":12,"text":"fixed","ref":"e"}',
  edit_no_text: '{"type":"edit","room":"lobby","id":12}',
  edit_id_zero: '{"type":"edit","room":"lobby","id":0,"text":"x"}',
  delete: '{"type":"delete","room":"lobby","id":9007199254740991}',
  delete_id_string: '{"type":"delete","room":"lobby","id":"12"}',
  ping: '{"type":"ping","ref":"p"}',
  unknown: '{"type":"nope"}',
  type_number: '{"type":1}',
  array: '[{"type":"ping"}]',
  nested: '{"type":"ping","x":' + '['.repeat(2000) + ']'.repeat(2000) + '}',
  dup_keys: '{"type":"ping","type":"join","room":"a"}',
  bad_room: '{"type":"join","room":"Lobby"}',
  long_ref: `{"type":"ping","ref":"${'r'.repeat(65)}"}`,
  big_number: '{"type":"history","room":"a","limit":' + '9'.repeat(400) + '}',
  trailing: '{"type":"ping"} x',
  ws: ' \t\n{ "type" : "ping" } \n',
};
for (const [k, v] of Object.entries(frames)) put('protocol', k, Buffer.concat([Buffer.from([0]), Buffer.from(v)]));
put('protocol', 'send_small_limit', Buffer.concat([Buffer.from([130]), Buffer.from(frames.send)]));
put('protocol', 'nul_byte', Buffer.concat([Buffer.from([0]), Buffer.from('{"type":"ping"}\0')]));

// ---- jwt: mode byte 0 raw token, 1 header\0payload signed, 2 signed then one char changed
const exp = 4000000000;
put('jwt', 'raw_valid', '\x00' + token({ sub: 'u1', name: 'Ada', exp }));
put('jwt', 'raw_wrong_secret', '\x00' + token({ sub: 'u1', name: 'Ada', exp }, { secret: 'nope' }));
put('jwt', 'raw_alg_none', '\x00' + token({ sub: 'u1', name: 'Ada', exp }, { header: { alg: 'none' } }).replace(/\.[^.]*$/, '.'));
put('jwt', 'raw_four_parts', '\x00a.b.c.d');
put('jwt', 'raw_empty', '\x00..');
const signed = (h, p) => Buffer.concat([Buffer.from([1]), Buffer.from(h), Buffer.from([0]), Buffer.from(p)]);
put('jwt', 'signed_ok', signed('{"alg":"HS256"}', JSON.stringify({ sub: 'u', name: 'N', exp })));
put('jwt', 'signed_rooms', signed('{"alg":"HS256"}', JSON.stringify({ sub: 'u', name: 'N', exp, rooms: ['lobby', 'a-1'] })));
put('jwt', 'signed_rooms_star', signed('{"alg":"HS256"}', JSON.stringify({ sub: 'u', name: 'N', exp, rooms: '*' })));
put('jwt', 'signed_rooms_bad', signed('{"alg":"HS256"}', JSON.stringify({ sub: 'u', name: 'N', exp, rooms: ['Bad Room'] })));
put('jwt', 'signed_expired', signed('{"alg":"HS256"}', JSON.stringify({ sub: 'u', name: 'N', exp: 1 })));
put('jwt', 'signed_sub_long', signed('{"alg":"HS256"}', JSON.stringify({ sub: 's'.repeat(129), name: 'N', exp })));
put('jwt', 'signed_name_ctrl', signed('{"alg":"HS256"}', JSON.stringify({ sub: 'u', name: 'a\u0001', exp })));
put('jwt', 'signed_name_33', signed('{"alg":"HS256"}', JSON.stringify({ sub: 'u', name: 'é'.repeat(33), exp })));
put('jwt', 'signed_alg_hs512', signed('{"alg":"HS512"}', JSON.stringify({ sub: 'u', name: 'N', exp })));
put('jwt', 'signed_not_json', signed('{"alg":"HS256"}', 'not json'));
put('jwt', 'tamper', Buffer.concat([Buffer.from([2]), Buffer.from('{"alg":"HS256"}'), Buffer.from([0]), Buffer.from(JSON.stringify({ sub: 'u', name: 'N', exp })), Buffer.from([7])]));

// ---- utf8
const u = {
  ascii: 'hello', two: 'é', three: '€', four: '😀', overlong2: [0xc0, 0x80], overlong3: [0xe0, 0x80, 0x80],
  overlong4: [0xf0, 0x80, 0x80, 0x80], surrogate: [0xed, 0xa0, 0x80], max: [0xf4, 0x8f, 0xbf, 0xbf],
  above_max: [0xf4, 0x90, 0x80, 0x80], truncated: [0xe2, 0x82], lone_cont: [0x80], f5: [0xf5, 0x80, 0x80, 0x80],
  nul: [0x61, 0, 0x62],
};
for (const [k, v] of Object.entries(u)) put('utf8', k, Buffer.from(typeof v === 'string' ? Buffer.from(v) : v));

// ---- b64: first byte is the output capacity (>= 200: 4096)
const b = { empty: '', one: 'QQ', two: 'QUI', three: 'QUJD', pad: 'QQ==', bad_char: 'QU+D', len1mod4: 'QUJDR', noncanon: 'QR', sig: b64url(Buffer.alloc(32, 7)) };
for (const [k, v] of Object.entries(b)) put('b64', k, Buffer.concat([Buffer.from([255]), Buffer.from(v)]));
put('b64', 'small_cap', Buffer.concat([Buffer.from([2]), Buffer.from('QUJD')]));

// ---- config: optional "NAME=value\n" env lines then 0xFF, then NUL-separated argv
const argvs = {
  port: ['--port', '9000'], port_eq: ['--port=9000'], port_bad: ['--port', '70000'], help: ['--help'],
  version: ['--version'], origins: ['--origins', 'https://a.example/, http://b.example:8080,,'],
  many: ['--bind', '127.0.0.1', '--db', 'x.db', '--jwt-secret', 's', '--no-guests', '--max-connections', '5',
    '--max-text', '10', '--rate', '0.5', '--burst', '2', '--log-level', 'debug', '--log-format', 'json',
    '--hello-timeout', '1', '--max-frame', '1024', '--db-sync', 'normal', '--retention-days', '1'],
  tls_half: ['--tls-cert', 'c.pem'], unknown: ['--frobnicate'], missing: ['--port'], flag_eq: ['--no-guests=maybe'],
  choice_pipe: ['--db-sync', 'full|normal'], double: ['--rate', '1e309'],
};
for (const [k, v] of Object.entries(argvs)) put('config', k, v.join('\0'));
put('config', 'env', Buffer.concat([Buffer.from('PORT=81\nNO_GUESTS=yes\nRATE=nan\n'), Buffer.from([0xff]), Buffer.from('--db\0y.db')]));

// ---- http: flags (bit0 allow-list on, bit1 stopping, bit2 at the limit), then URI\0Origin\0Host\0origins
const http = {
  ws_ok: [1, '/ws', 'https://a.example', 'chat.example', 'https://a.example'],
  ws_same_origin: [1, '/ws', 'http://chat.example:8080', 'chat.example:8080', 'https://a.example'],
  ws_default_port: [1, '/ws', 'https://chat.example:443', 'chat.example', 'https://a.example'],
  ws_refused: [1, '/ws', 'https://evil.example', 'chat.example', 'https://a.example'],
  ws_no_origin: [1, '/ws', '', 'chat.example', 'https://a.example'],
  ws_other_path: [0, '/chat', '', '', ''],
  ws_stopping: [2, '/ws', '', '', ''],
  ws_full: [4, '/ws', '', '', ''],
  healthz: [0, '/healthz', '', '', ''],
  metrics: [0, '/metrics', '', '', ''],
  index: [0, '/', '', '', ''],
  widget: [0, '/widget.js', '', '', ''],
  long_uri: [0, '/' + 'x'.repeat(300), '', '', ''],
};
for (const [k, [f, ...fields]] of Object.entries(http)) put('http', k, Buffer.concat([Buffer.from([f]), Buffer.from(fields.join('\0'))]));
// The HTTP API's parsing: then Authorization\0body (flags bits 4-6: the endpoint, the chunk size).
const api = {
  api_publish: [0x0f, '/api/publish', '', '', '', 'Bearer fuzz-key-0123456789abc', '{"room":"lobby","text":"hi","user":{"id":"bot","name":"Bot"}}'],
  api_delete: [0x1f, '/api/delete', '', '', '', 'bearer  second-fuzz-key-xyz00 ', '{"room":"lobby","id":12}'],
  api_token: [0x4f, '/api/token', '', '', '', 'Basic x', '{"sub":"u1","name":"Ann","ttl":60,"rooms":["a"],"role":"mod","dm":false}'],
  api_history: [0x2f, '/api/history?room=lobby&before=10&limit=5', '', '', '', 'Bearer fuzz-key-0123456789ab', ''],
  api_chunked: [0x3f, '/api/publish', '', '', '', 'Bearer', '5\r\n{"roo\r\n3;x\r\nm":\r\n0\r\n\r\n'],
};
for (const [k, [f, ...fields]] of Object.entries(api)) put('http', k, Buffer.concat([Buffer.from([f]), Buffer.from(fields.join('\0'))]));

// ---- session: a program of operations (see fuzz_session.c, op())
class Prog {
  constructor(cfg = 0) { this.b = [cfg]; }
  u8(...xs) { for (const x of xs) this.b.push(x & 255); return this; }
  str(s) { const x = Buffer.from(s); if (x.length >= 255) throw new Error('seed string too long'); this.u8(x.length); for (const c of x) this.b.push(c); return this; }
  open(k) { return this.u8(0, k, 0); }
  req(k, f = 0) { return this.u8(2, k, f); }
  hello(k, name) { return this.req(k).u8(0, 0, 0).str(name).u8(0); }
  join(k, room = 0, since) { this.req(k).u8(1, 0, room); return since === undefined ? this.u8(0) : this.u8(1, since); }
  send(k, text, cid, room = 0) { return this.req(k).u8(3, 0, room).str(text).str(cid); }
  history(k, flags = 0) { return this.req(k).u8(4, 0, 0, flags); }
  ping(k) { return this.req(k).u8(7, 0); }
  rooms(k) { return this.req(k).u8(6, 0); }
  typing(k) { return this.req(k).u8(5, 0, 0); }
  leave(k) { return this.req(k).u8(2, 0, 0); }
  db(...hows) { this.u8(9, 0, hows.length - 1); return this.u8(...hows); }
  w(k) { return this.u8(5, k); }
  close(k) { return this.u8(7, k); }
  clock(t) { return this.u8(11, 0, t); }
  raw(k, flags, s) { return this.u8(1, k, flags).str(s); }
  done() { return Buffer.from(this.b); }
}
put('session', 'hello_join_send', new Prog().open(0).hello(0, 'Ada').join(0).db(0).w(0).send(0, 'hi', 'c1').db(0).w(0).w(0).done());
put('session', 'two_users_fanout', new Prog().open(0).open(1).hello(0, 'A').hello(1, 'B').join(0).join(1).db(0, 0).w(0).w(1)
  .send(0, 'x', 'c1').send(1, 'y', 'c2').db(0).db(0).w(0).w(1).w(0).w(1).typing(0).w(1).rooms(1).w(1).leave(0).w(1).done());
put('session', 'duplicate_send', new Prog().open(0).hello(0, 'A').join(0).db(0).send(0, 'x', 'c1').db(8).w(0).done());
put('session', 'db_busy_failed', new Prog().open(0).hello(0, 'A').join(0).db(6).join(0).db(7).join(0).db(0).send(0, 'x', 'c').db(6).w(0).done());
put('session', 'close_in_flight', new Prog().open(0).open(1).hello(0, 'A').hello(1, 'B').join(0).join(1).db(0, 0)
  .send(0, 'x', 'c1').close(0).db(0).w(1).done());
put('session', 'history', new Prog().open(0).hello(0, 'A').history(0, 7).history(0, 3).db(0x18, 0x38).w(0).done());
put('session', 'join_since', new Prog().open(0).hello(0, 'A').join(0, 0, 3).db(0x38).w(0).done());
put('session', 'fragmented', new Prog().open(0).req(0, 7 | (5 << 3)).u8(0, 0, 0).str('Frag').u8(0).w(0).done());
put('session', 'binary', new Prog().open(0).raw(0, 1, '{"type":"ping"}').done());
put('session', 'bad_utf8', new Prog().open(0).raw(0, 0, '\xff').done());
put('session', 'hello_timeout', new Prog().open(0).u8(6, 0).w(0).u8(8, 0).done());
put('session', 'rate_limited', new Prog().open(0).hello(0, 'A').join(0).db(0).send(0, 'a', '1').send(0, 'b', '2').send(0, 'c', '3').send(0, 'd', '4').db(0, 0, 0).w(0).done());
put('session', 'slow_consumer', (() => { const p = new Prog().open(0).open(1).hello(0, 'A').hello(1, 'B').join(0).join(1).db(0, 0);
  for (let i = 0; i < 8; i++) p.clock(50).send(0, 'm' + i, 'c' + i).db(0);
  return p.w(1).w(0).done(); })());
put('session', 'shutdown', new Prog().open(0).hello(0, 'A').join(0).u8(13, 0).db(0).w(0).w(0).done());
put('session', 'token_hello', new Prog(1).open(0).req(0).u8(0, 0, 1, 0).str('user').str('Name').u8(1, 2).u8(0).join(0).db(0).join(0, 2).db(0).w(0).done());
// Per-address limits on (bit 1): 2 connections, 2 new guests a minute.
put('session', 'iplimit_conns_guests', new Prog(2).open(0).open(1).open(2).hello(0, 'A').hello(1, 'B')
  .close(0).open(2).hello(2, 'C').w(2).clock(200).hello(2, 'C').w(2).done());
put('session', 'iplimit_fanout', new Prog(2).open(0).open(1).hello(0, 'A').hello(1, 'B').join(0).join(1).db(0, 0).w(0).w(1)
  .send(0, 'x', 'c1').send(1, 'y', 'c2').db(0).db(0).w(0).w(1).close(0).close(1).open(2).open(3).hello(3, 'D').done());
put('session', 'queue_full', new Prog().open(0).hello(0, 'A').u8(12, 0, 0).join(0).w(0).done());
// ---- xff: the --trust-proxy list, NUL, then the X-Forwarded-For value
const xff = {
  one: ['127.0.0.1', '198.51.100.4'],
  chain: ['127.0.0.1,10.0.0.2', '203.0.113.9, 198.51.100.4, 10.0.0.2'],
  all_trusted: ['127.0.0.1,10.0.0.2', '10.0.0.2,127.0.0.1'],
  v6_ports: ['::1', '[2001:db8::1]:443, ::ffff:10.0.0.2:80, 2001:db8:1:2::9'],
  mapped: ['::ffff:127.0.0.1', '::ffff:198.51.100.4,127.0.0.1'],
  garbage_right: ['10.0.0.2', '198.51.100.4, unknown'],
  garbage_left: ['10.0.0.2', '%%%,"x",198.51.100.4'],
  empty_elems: ['10.0.0.2', ',, ,'],
  untrusted: ['', '198.51.100.4'],
};
for (const [k, [t, v]] of Object.entries(xff)) put('xff', k, `${t}\0${v}`);

console.log('seeds written to', root);
