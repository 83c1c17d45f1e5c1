"""tornado_peer.py — the original proof of concept's own design on Debian's python3-tornado:
one process, a list of ChatClient objects, filtered on every message to find its recipients
(by room, or by nickname for a private message, which also goes back to its sender). Unlike
the original it assigns "from" (and an id and ts) on the server, as the benchmark requires.
    /usr/bin/python3 bench/peers/tornado_peer.py PORT   listens on 127.0.0.1:PORT at /talking
"""
import itertools
import json
import sys
import time

import tornado.ioloop
import tornado.web
import tornado.websocket


class ChatClient:
    connection = None

    def __init__(self, nick, room, connection):
        self.nick = nick
        self.room = room
        self.connection = connection


class ChatWebSocketHandler(tornado.websocket.WebSocketHandler):
    clients = []
    ids = itertools.count(1)

    def check_origin(self, origin):
        return True

    def open(self):
        self.client = None

    def on_message(self, data):
        try:
            msg = json.loads(data)
        except ValueError:
            return
        if not isinstance(msg, dict):
            return
        if msg.get("type") == "login":
            self.manage_login(msg)
        elif msg.get("type") in ("room", "private"):
            self.manage_message(msg)

    def manage_login(self, msg):
        nick = msg.get("nickname")
        if self.client is not None or not isinstance(nick, str):
            return
        self.client = ChatClient(nick, msg.get("room"), self)
        ChatWebSocketHandler.clients.append(self.client)

    def manage_message(self, msg):
        message = msg.get("message")
        if self.client is None or not isinstance(message, dict):
            return
        to, text = msg.get("to"), message.get("text")
        if not isinstance(text, str):
            return
        out = json.dumps(
            {"type": msg["type"], "id": next(ChatWebSocketHandler.ids),
             "ts": int(time.time() * 1000), "from": self.client.nick, "to": to,
             "message": {"text": text}},
            separators=(",", ":"))
        if msg["type"] == "room":
            targets = filter(lambda e: e.room == to, ChatWebSocketHandler.clients)
        else:
            targets = filter(lambda e: e.nick == to or e is self.client,
                             ChatWebSocketHandler.clients)
        for client in targets:
            try:
                client.connection.write_message(out)
            except tornado.websocket.WebSocketClosedError:
                pass

    def on_close(self):
        if self.client is not None:
            ChatWebSocketHandler.clients.remove(self.client)
            self.client = None


def main():
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 9090
    app = tornado.web.Application([(r"/talking", ChatWebSocketHandler)])
    app.listen(port, address="127.0.0.1")
    tornado.ioloop.IOLoop.current().start()


if __name__ == "__main__":
    main()
