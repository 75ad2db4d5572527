// ws-broadcast: a Node `ws` chat broadcast server for comparison with Parley
// in benchmarks. Same behaviour as lws-broadcast.c: enough of the Parley
// protocol for parley-loadgen (hello/welcome, join/joined + presence,
// leave/left, send -> ack (no persistence) + message to every member,
// ping/pong). One room per connection. A member whose send buffer grows past
// 8 MiB is closed with 1013.
//
// usage: node tools/bench/ws-broadcast.mjs [--port 8091]
// needs `ws`: npm install --prefix tools/bench (tools/bench/run.sh does it)
import { WebSocketServer } from 'ws';

let port = 8091;
for (let i = 2; i < process.argv.length; i++) {
  if (process.argv[i] === '--port') port = Number(process.argv[++i]);
  else { console.error('usage: ws-broadcast.mjs [--port N]'); process.exit(2); }
}

const MAX_BUFFERED = 8 << 20;
const ROOM_RE = /^[a-z0-9][a-z0-9_-]{0,63}$/;
const rooms = new Map(); // name -> Set of sockets
let nextId = 1, nextUser = 1;

function send(ws, obj) { deliver(ws, JSON.stringify(obj)); }
function deliver(ws, str) {
  if (ws.readyState !== 1) return;
  if (ws.bufferedAmount > MAX_BUFFERED) { ws.close(1013, 'slow consumer'); return; }
  ws.send(str);
}
function withRef(obj, req) { if (typeof req.ref === 'string') obj.ref = req.ref; return obj; }
function error(ws, req, code, message) { send(ws, withRef({ type: 'error', code, message }, req || {})); }

function broadcast(roomName, str, except) {
  const members = rooms.get(roomName);
  if (!members) return;
  for (const m of members) if (m !== except) deliver(m, str);
}

function leave(ws) {
  if (!ws.room) return;
  const members = rooms.get(ws.room);
  members.delete(ws);
  broadcast(ws.room, JSON.stringify({ type: 'presence', room: ws.room, event: 'leave', user: ws.user }));
  ws.room = null;
}

const wss = new WebSocketServer({ host: '127.0.0.1', port, path: '/ws', maxPayload: 64 * 1024 });
wss.on('connection', (ws) => {
  ws.room = null;
  ws.user = null;
  ws.on('message', (data, isBinary) => {
    if (isBinary) { ws.close(1003); return; }
    let req;
    try { req = JSON.parse(data.toString()); } catch { req = null; }
    if (!req || typeof req !== 'object' || typeof req.type !== 'string') return error(ws, null, 'bad_json', 'not a JSON object with a string type');
    switch (req.type) {
      case 'hello': {
        if (ws.user) return error(ws, req, 'bad_request', 'already said hello');
        if (typeof req.name !== 'string' || !req.name.trim() || req.name.length > 128) return error(ws, req, 'bad_name', 'bad name');
        ws.user = { id: 'g' + nextUser++, name: req.name };
        return send(ws, withRef({ type: 'welcome', user: { ...ws.user, guest: true }, server: 'ws-broadcast/1',
          limits: { max_text: 4000, rate_per_s: 1000000, burst: 1000000, history_page: 200 } }, req));
      }
    }
    if (!ws.user) return error(ws, req, 'need_hello', 'send hello first');
    switch (req.type) {
      case 'join': {
        if (typeof req.room !== 'string' || !ROOM_RE.test(req.room)) return error(ws, req, 'bad_room', 'bad room name');
        if (ws.room !== req.room) {
          leave(ws);
          if (!rooms.has(req.room)) rooms.set(req.room, new Set());
          broadcast(req.room, JSON.stringify({ type: 'presence', room: req.room, event: 'join', user: ws.user }));
          rooms.get(req.room).add(ws);
          ws.room = req.room;
        }
        const members = [...rooms.get(req.room)].map((m) => m.user);
        return send(ws, withRef({ type: 'joined', room: req.room, members, messages: [], complete: true }, req));
      }
      case 'leave': {
        if (typeof req.room !== 'string' || !ROOM_RE.test(req.room)) return error(ws, req, 'bad_room', 'bad room name');
        if (ws.room === req.room) leave(ws);
        return send(ws, withRef({ type: 'left', room: req.room }, req));
      }
      case 'send': {
        const { room, text, client_id: cid } = req;
        if (typeof room !== 'string' || typeof text !== 'string' || typeof cid !== 'string' || !cid || cid.length > 64)
          return error(ws, req, 'bad_request', 'room, text and client_id are required');
        if (ws.room !== room) return error(ws, req, 'not_member', 'join the room first');
        if (!text || text.length > 16000) return error(ws, req, 'too_long', 'text empty or too long');
        const id = nextId++, ts = Date.now();
        send(ws, withRef({ type: 'ack', room, client_id: cid, id, ts }, req));
        broadcast(room, JSON.stringify({ type: 'message', room, id, ts, user: ws.user, text, client_id: cid }));
        return;
      }
      case 'ping': return send(ws, withRef({ type: 'pong' }, req));
      default: return error(ws, req, 'unknown_type', 'not supported by ws-broadcast');
    }
  });
  ws.on('close', () => leave(ws));
  ws.on('error', () => {});
});
wss.on('listening', () => console.error(`ws-broadcast: listening on 127.0.0.1:${port}`));
const stop = () => { wss.close(); process.exit(0); };
process.on('SIGINT', stop);
process.on('SIGTERM', stop);
