// ws_peer.mjs — the original chat's protocol as most people would write it today: Node.js and
// the npm `ws` package, a Map of rooms and one of nicknames, one JSON.stringify per message.
//   node bench/peers/ws_peer.mjs PORT     listens on 127.0.0.1:PORT, WebSocket at /talking
import http from 'node:http';
import { WebSocketServer } from 'ws';

const port = Number(process.argv[2] || 9090);
const server = http.createServer((req, res) => {
  res.writeHead(404);
  res.end();
});
const wss = new WebSocketServer({ server, path: '/talking', perMessageDeflate: false });
const rooms = new Map(); // room name -> Set of sockets
const users = new Map(); // nickname -> socket
let nextId = 1;

wss.on('connection', (ws) => {
  ws.on('message', (data, isBinary) => {
    if (isBinary) return;
    let msg;
    try {
      msg = JSON.parse(data);
    } catch {
      return;
    }
    if (msg === null || typeof msg !== 'object') return;
    if (msg.type === 'login') {
      if (ws.nick || typeof msg.nickname !== 'string' || users.has(msg.nickname)) return;
      ws.nick = msg.nickname;
      ws.room = String(msg.room ?? '');
      users.set(ws.nick, ws);
      if (!rooms.has(ws.room)) rooms.set(ws.room, new Set());
      rooms.get(ws.room).add(ws);
      return;
    }
    if (!ws.nick || typeof msg.message?.text !== 'string') return;
    const out = JSON.stringify({
      type: msg.type, id: nextId++, ts: Date.now(), from: ws.nick, to: msg.to,
      message: { text: msg.message.text },
    });
    if (msg.type === 'room') {
      for (const member of rooms.get(msg.to) ?? []) member.send(out);
    } else if (msg.type === 'private') {
      const to = users.get(msg.to);
      if (!to) return;
      to.send(out);
      if (to !== ws) ws.send(out);
    }
  });
  ws.on('close', () => {
    if (!ws.nick) return;
    users.delete(ws.nick);
    const members = rooms.get(ws.room);
    members.delete(ws);
    if (members.size === 0) rooms.delete(ws.room);
  });
});

server.listen(port, '127.0.0.1');
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => process.exit(0));
