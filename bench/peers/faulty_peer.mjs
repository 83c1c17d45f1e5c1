// faulty_peer.mjs — the ws peer with one deliberate fault, to prove that the load generator
// catches each kind of wrong delivery (bench/test_loadgen.sh). Not a benchmark peer.
//   node bench/peers/faulty_peer.mjs PORT FAULT
// FAULT: none | drop | dup | reorder | corrupt | misroute | extra | close | stall |
//        typing_misroute | typing_unasked
// Every fault strikes the 50th delivery and, except close and stall, every 50th after it.
// A client that offers tertulia.v1 gets it, and its typing requests are relayed as the
// server relays them (to the room's other members); typing_misroute also sends each one to
// a member of another room, typing_unasked sends a typing frame with every 50th delivery.
import http from 'node:http';
import { WebSocketServer } from 'ws';

const port = Number(process.argv[2]);
const fault = process.argv[3] || 'none';
const EVERY = 50;
const server = http.createServer((req, res) => {
  res.writeHead(404);
  res.end();
});
// A third argument "deflate" accepts permessage-deflate and compresses every message, so the
// generator's inflate path is checked against the same faults.
const deflate = process.argv[4] === 'deflate' ? { threshold: 0 } : false;
const wss = new WebSocketServer({
  server, path: '/talking', perMessageDeflate: deflate,
  handleProtocols: (protocols) => (protocols.has('tertulia.v1') ? 'tertulia.v1' : false),
});
const rooms = new Map();
const users = new Map();
let nextId = 1;
let deliveries = 0;
let stalled = null;

// Sends one delivery to one socket, applying the fault when its turn comes.
function deliver(ws, out, obj) {
  if (ws === stalled) return;
  deliveries += 1;
  const turn = deliveries % EVERY === 0;
  const text = obj.message.text;
  // Sync and confirmation texts (s..., c...) are left alone: they only gate the start.
  if (!turn || text[0] !== 'm') {
    if (ws.held) {
      ws.send(out);
      ws.send(ws.held);
      ws.held = null;
      return;
    }
    ws.send(out);
    return;
  }
  switch (fault) {
    case 'drop':
      return;
    case 'dup':
      ws.send(out);
      ws.send(out);
      return;
    case 'reorder':
      ws.held = out;
      return;
    case 'corrupt':
      ws.send(JSON.stringify({ ...obj, message: { text: text.slice(0, -1) + (text.endsWith('a') ? 'b' : 'a') } }));
      return;
    case 'misroute': {
      ws.send(out);
      for (const [name, members] of rooms) {
        if (name !== obj.to && members.size) {
          [...members][0].send(out);
          return;
        }
      }
      return;
    }
    case 'typing_unasked':
      ws.send(JSON.stringify({ type: 'typing', room: obj.to, nickname: obj.from, state: 'start' }));
      ws.send(out);
      return;
    case 'extra':
      ws.send(JSON.stringify({ type: 'welcome', nickname: ws.nick }));
      ws.send(out);
      return;
    case 'close':
      if (deliveries === EVERY) {
        ws.close(1008, 'deliberate fault');
        return;
      }
      ws.send(out);
      return;
    case 'stall':
      if (!stalled) {
        stalled = ws;
        return;
      }
      ws.send(out);
      return;
    default:
      ws.send(out);
  }
}

wss.on('connection', (ws) => {
  ws.on('message', (data, isBinary) => {
    if (isBinary) return;
    let msg;
    try {
      msg = JSON.parse(data);
    } catch {
      return;
    }
    if (msg?.type === 'login') {
      if (ws.nick || users.has(msg.nickname)) return;
      ws.nick = msg.nickname;
      ws.room = String(msg.room ?? '');
      users.set(ws.nick, ws);
      if (!rooms.has(ws.room)) rooms.set(ws.room, new Set());
      rooms.get(ws.room).add(ws);
      return;
    }
    if (ws.nick && msg?.type === 'typing' && ws.protocol === 'tertulia.v1') {
      const out = JSON.stringify({ type: 'typing', room: ws.room, nickname: ws.nick, state: msg.state });
      for (const member of rooms.get(ws.room) ?? []) if (member !== ws) member.send(out);
      if (fault === 'typing_misroute') {
        for (const [name, members] of rooms) {
          if (name !== ws.room && members.size) {
            [...members][0].send(out);
            break;
          }
        }
      }
      return;
    }
    if (!ws.nick || typeof msg?.message?.text !== 'string') return;
    const obj = {
      type: msg.type, id: nextId++, ts: Date.now(), from: ws.nick, to: msg.to,
      message: { text: msg.message.text },
    };
    const out = JSON.stringify(obj);
    if (msg.type === 'room') {
      for (const member of rooms.get(msg.to) ?? []) deliver(member, out, obj);
    } else if (msg.type === 'private') {
      const to = users.get(msg.to);
      if (!to) return;
      deliver(to, out, obj);
      if (to !== ws) deliver(ws, out, obj);
    }
  });
  ws.on('close', () => {
    if (!ws.nick) return;
    users.delete(ws.nick);
    rooms.get(ws.room)?.delete(ws);
  });
});

server.listen(port, '127.0.0.1');
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => process.exit(0));
