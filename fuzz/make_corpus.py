#!/usr/bin/env python3
"""Writes the seed corpora of the WebSocket, UTF-8, TLS and JWT fuzzers and
part of the chat fuzzer's: fuzz/corpus/fuzz_ws_frame/, fuzz/corpus/fuzz_utf8/,
fuzz/corpus/fuzz_ws_handshake/, fuzz/corpus/fuzz_inflate/, fuzz/corpus/fuzz_tls/,
fuzz/corpus/fuzz_jwt/, fuzz/corpus/fuzz_cluster/, fuzz/corpus/fuzz_chat/*.bin (the chat seeds without an
extension were written by hand).

Each seed is a small meaningful input in the fuzzer's own format (see the
comment at the top of each fuzz_*.c): valid traffic of every kind, and one
example of every refusal, so mutation starts next to every branch. Run it from
anywhere; it rewrites the files it owns (named <name>.bin) and leaves others.
"""
import base64
import hashlib
import hmac
import json
import os
import struct
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
MASKS = [b"\x37\xfa\x21\x3d", b"\x00\x00\x00\x00", b"\xff\x01\x80\x7e", b"\x01\x02\x03\x04"]

TEXT, BINARY, CONT, CLOSE, PING, PONG = 0x1, 0x2, 0x0, 0x8, 0x9, 0xA
FIN = 0x80


def frame(op, payload=b"", fin=True, rsv=0, masked=True, mask_index=0, lenform=None):
    """A client frame: masked unless told otherwise, minimal length encoding
    unless lenform is 16 or 64."""
    n = len(payload)
    out = bytes([(FIN if fin else 0) | rsv | op])
    mbit = 0x80 if masked else 0
    if lenform == 64 or (lenform is None and n > 0xFFFF):
        out += bytes([mbit | 127]) + struct.pack(">Q", n)
    elif lenform == 16 or n >= 126:
        out += bytes([mbit | 126]) + struct.pack(">H", n)
    else:
        out += bytes([mbit | n])
    if not masked:
        return out + payload
    mask = MASKS[mask_index % len(MASKS)]
    return out + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def close(code=None, reason=b""):
    return frame(CLOSE, b"" if code is None else struct.pack(">H", code) + reason)


# The first byte of a fuzz_ws_frame input picks the chunking (low two bits:
# byte by byte, up to 7, up to 64, up to 1024 bytes) and seeds it; the second
# picks max_message from {0, 1, 10, 125, 126, 1000, 65536, 2^64-1} (low 3 bits).
CHUNK_1, CHUNK_7, CHUNK_64, CHUNK_1K = 0, 1, 2, 3
MAX_10, MAX_1000, MAX_64K, MAX_ANY = 2, 5, 6, 7


def ws_input(chunking, max_index, *frames):
    return bytes([chunking, max_index]) + b"".join(frames)


def frame_seeds():
    s = {}
    s["text"] = ws_input(CHUNK_1K, MAX_ANY, frame(TEXT, b"hello"))
    s["text-bytewise"] = ws_input(CHUNK_1, MAX_ANY, frame(TEXT, b"hello, world"))
    s["empty-text"] = ws_input(CHUNK_7, MAX_ANY, frame(TEXT))
    s["binary"] = ws_input(CHUNK_7, MAX_ANY, frame(BINARY, bytes(range(256))[:40]))
    s["utf8-text"] = ws_input(CHUNK_7, MAX_ANY, frame(TEXT, "aé€😀z".encode()))
    s["len-125"] = ws_input(CHUNK_64, MAX_ANY, frame(TEXT, b"a" * 125))
    s["len-16bit"] = ws_input(CHUNK_64, MAX_ANY, frame(BINARY, b"b" * 300, mask_index=2))
    s["len-16bit-nonminimal"] = ws_input(CHUNK_7, MAX_ANY, frame(TEXT, b"abc", lenform=16))
    s["len-64bit-nonminimal"] = ws_input(CHUNK_7, MAX_ANY, frame(TEXT, b"abc", lenform=64))
    s["fragments"] = ws_input(CHUNK_7, MAX_ANY, frame(TEXT, b"Hel", fin=False),
                              frame(CONT, b"lo, ", fin=False), frame(CONT, b"world"))
    s["fragments-utf8-split"] = ws_input(CHUNK_1, MAX_ANY, frame(TEXT, b"\xe2\x82", fin=False),
                                         frame(CONT, b"\xac\xf0\x9f", fin=False, mask_index=3),
                                         frame(CONT, b"\x98\x80"))
    s["interleaved-controls"] = ws_input(
        CHUNK_7, MAX_ANY, frame(TEXT, b"a", fin=False), frame(PING, b"p"),
        frame(CONT, b"b", fin=False), frame(PONG), close(1000, b"bye"), frame(CONT, b"c"))
    s["ping"] = ws_input(CHUNK_1K, MAX_ANY, frame(PING, b"are you there"))
    s["pong"] = ws_input(CHUNK_1K, MAX_ANY, frame(PONG, b"\x00\x01"))
    s["ping-125"] = ws_input(CHUNK_64, MAX_ANY, frame(PING, b"p" * 125))
    s["close-empty"] = ws_input(CHUNK_1K, MAX_ANY, close())
    s["close-1000-reason"] = ws_input(CHUNK_7, MAX_ANY, close(1000, "adiós".encode()))
    s["close-4999"] = ws_input(CHUNK_7, MAX_ANY, close(4999))
    s["many-frames"] = ws_input(CHUNK_64, MAX_ANY, *[frame(TEXT, b"m%d" % i, mask_index=i)
                                                     for i in range(12)])
    s["max-exact"] = ws_input(CHUNK_7, MAX_10, frame(TEXT, b"01234", fin=False),
                              frame(CONT, b"56789"))
    # Refusals.
    s["bad-rsv1"] = ws_input(CHUNK_1K, MAX_ANY, frame(TEXT, b"x", rsv=0x40))
    s["bad-opcode-3"] = ws_input(CHUNK_1K, MAX_ANY, frame(0x3, b"x"))
    s["bad-opcode-b"] = ws_input(CHUNK_1K, MAX_ANY, frame(0xB))
    s["bad-unmasked"] = ws_input(CHUNK_1K, MAX_ANY, frame(TEXT, b"hi", masked=False))
    s["bad-control-126"] = ws_input(CHUNK_7, MAX_ANY, frame(PING, b"p" * 126))
    s["bad-control-fragmented"] = ws_input(CHUNK_7, MAX_ANY, frame(PING, b"p", fin=False))
    s["bad-continuation"] = ws_input(CHUNK_7, MAX_ANY, frame(CONT, b"x"))
    s["bad-new-message-in-fragmented"] = ws_input(CHUNK_7, MAX_ANY,
                                                  frame(TEXT, b"a", fin=False), frame(TEXT, b"b"))
    s["bad-64bit-top-bit"] = ws_input(CHUNK_1K, MAX_ANY,
                                      b"\x82\xff" + b"\x80" + b"\x00" * 6 + b"\x01" + MASKS[0])
    s["bad-close-1-byte"] = ws_input(CHUNK_7, MAX_ANY, frame(CLOSE, b"\x03"))
    for code in (0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000):
        s["bad-close-%d" % code] = ws_input(CHUNK_7, MAX_ANY, close(code))
    s["bad-close-reason-utf8"] = ws_input(CHUNK_7, MAX_ANY, close(1000, b"\xc0\x80"))
    s["bad-text-utf8"] = ws_input(CHUNK_1, MAX_ANY, frame(TEXT, b"abc\xff def"))
    s["bad-text-truncated"] = ws_input(CHUNK_7, MAX_ANY, frame(TEXT, b"abc\xe2\x82"))
    s["bad-utf8-across-fragments"] = ws_input(CHUNK_1, MAX_ANY,
                                              frame(TEXT, b"ok\xe2\x82", fin=False),
                                              frame(CONT, b"x"))
    s["bad-too-big"] = ws_input(CHUNK_7, MAX_10, frame(TEXT, b"0123456789A"))
    s["bad-too-big-fragments"] = ws_input(CHUNK_7, MAX_10, frame(TEXT, b"012345", fin=False),
                                          frame(CONT, b"6789A"))
    s["bad-too-big-64bit-header"] = ws_input(CHUNK_1, MAX_1000,
                                             b"\x82\xff" + struct.pack(">Q", 1 << 20) + MASKS[1])
    s["partial-frame"] = ws_input(CHUNK_7, MAX_ANY, frame(TEXT, b"x" * 100)[:60])
    return s


# fuzz_utf8: the first byte picks the piece sizes (low four bits: up to 1..16
# bytes) and seeds them; the rest is the text.
def utf8_seeds():
    texts = {
        "ascii": b"hello, world",
        "long-ascii": b"The quick brown fox jumps over the lazy dog. " * 4,
        "two-byte": "été".encode(),
        "three-byte": "€".encode(),
        "four-byte": "😀".encode(),
        "mixed": "aé€😀z, ¿qué tal? ☕".encode(),
        "boundaries": "\u007f\u0080\u07ff\u0800\ud7ff\ue000\uffff\U00010000\U0010ffff"
                      .encode("utf-8", "surrogatepass"),
        "overlong-2": b"\xc0\x80",
        "overlong-3": b"\xe0\x80\x80",
        "overlong-4": b"\xf0\x80\x80\x80",
        "surrogate": b"\xed\xa0\x80",
        "above-10ffff": b"\xf4\x90\x80\x80",
        "f5": b"\xf5\x80\x80\x80",
        "ff": b"ab\xff",
        "lone-continuation": b"\x80",
        "truncated-2": b"abc\xc3",
        "truncated-3": b"abc\xe2\x82",
        "truncated-4": b"abc\xf0\x9f\x98",
        "bad-after-ascii-run": b"0123456789abcdefghijklmnopqrstu\xffvwxyz",
    }
    return {name: bytes([(i * 37) & 0xFF]) + t for i, (name, t) in enumerate(texts.items())}


# fuzz_ws_handshake: byte 0 is the HTTP version (major = bits 0-1, minor =
# bits 2-3), bytes 1-2 the response buffer size (9 bits), then method,
# Upgrade, Connection, Sec-WebSocket-Key, Sec-WebSocket-Version and
# Sec-WebSocket-Protocol separated by newlines (missing lines: absent).
RFC_KEY = b"dGhlIHNhbXBsZSBub25jZQ=="


def hs(fields, major=1, minor=1, cap=256):
    return bytes([major | minor << 2, cap & 0xFF, cap >> 8 & 1]) + b"\n".join(fields)


def handshake_seeds():
    ok = [b"GET", b"websocket", b"Upgrade", RFC_KEY, b"13"]
    s = {
        "valid": hs(ok),
        "valid-v1": hs(ok + [b"tertulia.v1"]),
        "valid-v1-in-list": hs(ok + [b"chat, tertulia.v1"]),
        "valid-unknown-protocols": hs(ok + [b"chat, superchat"]),
        "valid-lists": hs([b"GET", b"h2c, WebSocket", b"keep-alive, Upgrade", RFC_KEY, b"13"]),
        "valid-spaces": hs([b"GET", b" websocket ", b"\tupgrade", b" " + RFC_KEY + b" ", b" 13"]),
        "small-buffer": hs(ok + [b"tertulia.v1"], cap=100),
        "post": hs([b"POST"] + ok[1:]),
        "http10": hs(ok, minor=0),
        "no-upgrade": hs([b"GET", b"h2c", b"Upgrade", RFC_KEY, b"13"]),
        "no-connection": hs([b"GET", b"websocket", b"keep-alive", RFC_KEY, b"13"]),
        "short-key": hs([b"GET", b"websocket", b"Upgrade", b"AAAAAAAAAAAAAAAAAAAA", b"13"]),
        "bad-key-char": hs([b"GET", b"websocket", b"Upgrade", b"dGhlIHNhbXBsZSBub25j*Q==",
                            b"13"]),
        "version-8": hs([b"GET", b"websocket", b"Upgrade", RFC_KEY, b"8"]),
        "no-version": hs([b"GET", b"websocket", b"Upgrade", RFC_KEY]),
    }
    return s


# fuzz_chat: chunks separated by 0x00; a chunk's first byte b picks the
# action: b % 16 < 6 a text message from session b % 6 (four v1, two
# legacy), 6 flush, 7 close and reopen a session, 8 toggle a failing store,
# 9 toggle fat history (full pages of long texts, cut to the reply budget).
def chat(*steps):
    out = []
    for step in steps:
        if isinstance(step, int):
            out.append(bytes([step]))
        else:
            slot, text = step
            data = text.encode() if isinstance(text, str) else text
            assert b"\0" not in data
            # 0 separates chunks: session 0 is 48 (48 % 16 < 6, 48 % 6 == 0).
            out.append(bytes([slot or 48]) + data)
    return b"\0".join(out)


FLUSH, FAT = 6, 9


def login(slot, nick, room=None):
    r = ', "room": "%s"' % room if room else ""
    return (slot, '{"type": "login", "nickname": "%s"%s}' % (nick, r))


def chat_seeds():
    s = {}
    # rooms and who pages: limit, after, clamps and bad fields.
    s["rooms-who-pages"] = chat(
        login(0, "ana", "Room"), login(1, "ben", "room"), login(2, "cai", "#room"),
        (0, '{"type": "join", "room": "_x"}'), (1, '{"type": "join", "room": "a.b"}'),
        (0, '{"type": "rooms", "limit": 1, "id": "r1"}'),
        (0, '{"type": "rooms", "limit": 2, "after": "Room"}'),
        (0, '{"type": "rooms", "after": "~"}'),
        (0, '{"type": "rooms", "limit": 100000}'),
        (0, '{"type": "rooms", "limit": 0}'), (0, '{"type": "rooms", "after": 5}'),
        (3, '{"type": "rooms"}'),
        (1, '{"type": "who", "room": "Room", "limit": 1, "after": "A"}'),
        (1, '{"type": "who", "room": "room", "after": "zzz"}'),
        (1, '{"type": "who", "room": "nobody", "limit": 3}'),
        (4, '{"type": "rooms"}'), FLUSH)
    # text rules: control characters and blanks refused, the rest delivered.
    s["text-rules"] = chat(
        login(0, "ana", "r"), login(1, "ben", "r"), login(4, "old", "r"),
        (0, '{"type": "room", "to": "r", "message": {"text": "a\\u0001b"}, "id": "c"}'),
        (0, '{"type": "room", "to": "r", "message": {"text": "\\u0085"}}'),
        (0, '{"type": "room", "to": "r", "message": {"text": "\\u007f"}}'),
        (0, '{"type": "room", "to": "r", "message": {"text": " \\t\\r\\n"}}'),
        (0, '{"type": "room", "to": "r", "message": {"text": "\\u00a0\\u3000\\u200b\\ufeff"}}'),
        (0, '{"type": "room", "to": "r", "message": {"text": "\\u2028\\u2029\\u205f\\u2060"}}'),
        (0, '{"type": "room", "to": "r", "message": {"text": "\\t ok \\u00a0"}}'),
        (1, '{"type": "private", "to": "ana", "message": {"text": "\\u001b[31m"}}'),
        (4, '{"type": "room", "to": "r", "message": {"text": "\\u0000"}}'),
        (4, '{"type": "room", "to": "r", "message": {"text": "\u00e9\u00e9"}}'), FLUSH)
    # fat history: joined and history pages cut to the reply budget.
    s["fat-history"] = chat(
        FAT, login(0, "ana", "r"), (1, '{"type": "login", "nickname": "ben"}'),
        (1, '{"type": "join", "room": "r", "since": 5}'),
        (0, '{"type": "history", "room": "r", "limit": 200}'),
        (0, '{"type": "history", "room": "r", "limit": 200, "before": 150}'),
        (0, '{"type": "history", "room": "r", "limit": 2, "before": 3}'), FAT,
        (0, '{"type": "history", "room": "r", "limit": 200}'), FLUSH)
    # the request budget before parsing: a ping flood, then large frames
    # refused unparsed (with an id at the end, at the start, escaped).
    pad = "x" * 3000
    big = [(0, '{"type": "ping", "pad": "%s", "id": "tail"}' % pad),
           (0, '{"id": "head", "type": "ping", "pad": "%s"}' % pad),
           (0, '{"type": "ping", "pad": "%s", "id": "e\\"s"}' % pad),
           (0, '[%s]' % ("[" * 2000 + "]" * 2000)),
           (0, '{"type": "ping", "pad": "%s", "id": "tail"}  \n' % pad)]
    s["budget-before-parse"] = chat(
        login(0, "ana", "r"), *[(0, '{"type": "ping", "id": "p%d"}' % i) for i in range(120)],
        *big, (0, '{"id": "small", "type": "ping"}'), FLUSH, *big)
    # edit, delete, search: the author, others, bad ids and texts, paging,
    # with the store failing and with history after the changes.
    s["edit-delete-search"] = chat(
        login(0, "ana", "r"), login(1, "ben", "r"), login(4, "old", "r"),
        (0, '{"type": "room", "to": "r", "message": {"text": "hello world"}, "id": "m1"}'),
        (0, '{"type": "room", "to": "r", "message": {"text": "second hello"}, "id": "m2"}'),
        FLUSH,
        (0, '{"type": "edit", "message_id": 1, "message": {"text": "hello again"}, "id": "e1"}'),
        (0, '{"type": "edit", "id": 2, "message": {"text": "x"}}'),
        (1, '{"type": "edit", "message_id": 1, "message": {"text": "mine"}, "id": "e2"}'),
        (1, '{"type": "delete", "message_id": 2, "id": "d0"}'),
        (0, '{"type": "edit", "message_id": 1, "message": {"text": "\\u0001"}}'),
        (0, '{"type": "edit", "message_id": "1", "message": {"text": "x"}}'),
        (0, '{"type": "edit", "message_id": 99, "message": {"text": "x"}}'),
        (0, '{"type": "delete", "message_id": 2, "id": "d1"}'),
        (0, '{"type": "delete", "message_id": 2, "id": "d2"}'),
        (4, '{"type": "delete", "message_id": 1}'),
        (0, '{"type": "search", "query": "hello", "id": "s1"}'),
        (0, '{"type": "search", "query": "hello", "limit": 1, "before": 5}'),
        (1, '{"type": "search", "query": "hello", "room": "r"}'),
        (1, '{"type": "search", "query": "a b c d e f g h i j k"}'),
        (1, '{"type": "search", "query": "", "with": "ana"}'),
        (1, '{"type": "search", "query": "x", "room": "r", "with": "ana"}'),
        (4, '{"type": "search", "query": "hello"}'),
        (0, '{"type": "history", "room": "r"}'),
        (1, '{"type": "join", "room": "r", "since": 1}'),
        8, (0, '{"type": "edit", "message_id": 1, "message": {"text": "down"}}'),
        (0, '{"type": "search", "query": "hello"}'), 8, FLUSH)
    return s


def deflate_msg(data, final=False):
    """A message as permessage-deflate sends it: raw deflate, sync flush,
    00 00 ff ff stripped (or a final block, kept whole)."""
    z = zlib.compressobj(9, zlib.DEFLATED, -15)
    out = z.compress(data) + z.flush(zlib.Z_FINISH if final else zlib.Z_SYNC_FLUSH)
    return out if final else out[:-4]


# The first byte of a fuzz_inflate input picks max_message from {0, 1, 16,
# 125, 1000, 4096, 65536, 1 MiB} (low 3 bits) and text (0x80).
INF_TEXT = 0x80


def inflate_seeds():
    s = {}
    hello = "una tertulia, con café y conversación; ".encode() * 20
    s["text"] = bytes([INF_TEXT | 6]) + deflate_msg(hello)
    s["text-final-block"] = bytes([INF_TEXT | 6]) + deflate_msg(hello, final=True)
    s["binary-small-limit"] = bytes([3]) + deflate_msg(bytes(range(256)) * 4)
    s["bomb"] = bytes([4]) + deflate_msg(bytes(1 << 20))
    s["bad-utf8"] = bytes([INF_TEXT | 6]) + deflate_msg(b"caf\xc3\x28")
    s["rfc-hello-stored"] = bytes([INF_TEXT | 2]) + b"\x00\x05\x00\xfa\xffHello\x00"
    s["reserved-btype"] = bytes([6]) + b"\x07\x00"
    z = deflate_msg(hello)
    s["frames-compressed"] = bytes([INF_TEXT | 6]) + frame(TEXT, z, rsv=0x40)
    s["frames-fragmented"] = bytes([INF_TEXT | 6]) + frame(TEXT, z[:5], fin=False, rsv=0x40) + \
        frame(PING, b"p") + frame(CONT, z[5:], mask_index=2)
    s["frames-rsv1-continuation"] = bytes([6]) + frame(TEXT, z[:5], fin=False, rsv=0x40) + \
        frame(CONT, z[5:], rsv=0x40)
    s["frames-rsv1-ping"] = bytes([6]) + frame(PING, b"x", rsv=0x40)
    s["frames-mixed"] = bytes([INF_TEXT | 5]) + frame(TEXT, b"plain") + frame(BINARY, z, rsv=0x40)
    return s


def client_hello(max_version=None):
    """A real ClientHello from Python's TLS client (memory BIOs, sent nowhere)."""
    import ssl
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_alpn_protocols(["h2", "http/1.1"])
    if max_version:
        ctx.maximum_version = max_version
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(inc, out, server_hostname="localhost")
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return out.read()


def tls_raw(*chunks):
    """Raw mode (even first byte): length-prefixed chunks, as reads."""
    b = b"\x00"
    for c in chunks:
        for i in range(0, len(c), 255):
            part = c[i:i + 255]
            b += bytes([len(part)]) + part
    return b


def tls_guided(*steps, tls12=False):
    """Guided mode (odd first byte): a real handshake, then (op, bytes) steps."""
    b = bytes([1, 2 if tls12 else 0])
    for op, data in steps:
        b += bytes([op, len(data)]) + data
    return b


def tls_seeds():
    import ssl
    hello = client_hello()
    hello12 = client_hello(ssl.TLSVersion.TLSv1_2)
    return {
        "client-hello": tls_raw(hello),
        "client-hello-split": tls_raw(hello[:3], hello[3:60], hello[60:]),
        "client-hello-tls12": tls_raw(hello12),
        "plain-http": tls_raw(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
        "hello-then-garbage": tls_raw(hello, b"\x17\x03\x03\x00\x05hello"),
        "talk": tls_guided((0, b"GET / HTTP/1.1\r\n\r\n"), (1, b"HTTP/1.1 200 OK\r\n\r\n"),
                           (0, b"x" * 200)),
        "talk-tls12": tls_guided((0, b"hello"), (1, b"world"), tls12=True),
        "flip": tls_guided((0, b"ok"), (3, b"\x07flipped record")),
        "inject": tls_guided((0, b"ok"), (2, b"\x15\x03\x03\x00\x02\x01\x00")),
    }


# fuzz_jwt: the first byte gives the subject buffer's size (1 + low 6 bits),
# the rest is the token, checked at NOW with fuzz_jwt.c's HS256 secret (and an
# EC key made at start, which no seed can sign for).
JWT_NOW = 1700000000
JWT_SECRET = b"tertulia fuzz_jwt HS256 secret, 32+ bytes"
SUB33 = 32


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=")


def jwt(header, payload, sign=True, sig=None, cap=SUB33):
    """A token from two JSON values (dicts are dumped, bytes taken as they
    are), HS256-signed with the harness's secret unless sign is False or sig
    gives the signature bytes."""
    enc = [b64url(p if isinstance(p, bytes) else json.dumps(p).encode()) for p in (header, payload)]
    signing = b".".join(enc)
    if sig is None:
        sig = hmac.new(JWT_SECRET, signing, hashlib.sha256).digest() if sign else b""
    return bytes([cap]) + signing + b"." + b64url(sig)


def jwt_seeds():
    hs = {"alg": "HS256", "typ": "JWT"}
    ok = {"sub": "ana", "exp": JWT_NOW + 600, "iat": JWT_NOW}
    s = {
        "hs256": jwt(hs, ok),
        "hs256-both-times": jwt(hs, dict(ok, nbf=JWT_NOW - 10)),
        "hs256-fraction": jwt({"alg": "HS256"}, {"sub": "jos\u00e9", "exp": JWT_NOW + 0.5}),
        "hs256-extra-claims": jwt(hs, dict(ok, iss="ops", aud=["chat"], roles={"a": [1, 2.5]})),
        "hs256-small-subcap": jwt(hs, ok, cap=2),
        "hs256-sub-fits-exactly": jwt(hs, dict(ok, sub="s" * 32)),
        "hs256-sub-too-long": jwt(hs, dict(ok, sub="s" * 33)),
        "hs256-skew-29": jwt(hs, {"sub": "ana", "exp": JWT_NOW - 29}),
        "hs256-skew-31": jwt(hs, {"sub": "ana", "exp": JWT_NOW - 31}),
        "hs256-nbf-future": jwt(hs, dict(ok, nbf=JWT_NOW + 31)),
        "hs256-iat-future": jwt(hs, dict(ok, iat=JWT_NOW + 31)),
        "hs256-exp-missing": jwt(hs, {"sub": "ana"}),
        "hs256-exp-string": jwt(hs, {"sub": "ana", "exp": "soon"}),
        "hs256-exp-huge": jwt(hs, {"sub": "ana", "exp": 1e300}),
        "hs256-sub-missing": jwt(hs, {"exp": JWT_NOW + 60}),
        "hs256-sub-number": jwt(hs, {"sub": 7, "exp": JWT_NOW + 60}),
        "hs256-payload-array": jwt(hs, [1, 2]),
        "hs256-payload-dup": jwt(hs, b'{"sub":"a","sub":"b","exp":1700000600}'),
        "typ-wrong": jwt({"alg": "HS256", "typ": "JWS"}, ok),
        "crit": jwt({"alg": "HS256", "crit": ["exp"]}, ok),
        "alg-none": jwt({"alg": "none"}, ok, sign=False),
        "alg-missing": jwt({"typ": "JWT"}, ok),
        "rs256": jwt({"alg": "RS256"}, ok, sig=bytes(256)),
        "es256": jwt({"alg": "ES256"}, ok, sig=bytes(range(64))),
        "es256-der-length": jwt({"alg": "ES256"}, ok, sig=bytes(71)),
        "bad-signature": jwt(hs, ok, sig=bytes(32)),
        "bad-base64": bytes([SUB33]) + b"eyJhbGciOiJIUzI1NiJ9+.e30.AAAA",
        "two-parts": bytes([SUB33]) + b"eyJhbGciOiJIUzI1NiJ9.e30",
        "header-not-json": bytes([SUB33]) + b64url(b"{alg:HS256}") + b".e30.",
    }
    return s


# fuzz_cluster: payloads as a cluster node reads them from Redis: "<seq>
# <id> <ts> <node> <token> <from> <room> <mentions> <text>".
def cluster_seeds():
    return {
        "room": b"1 1 1764013952123 n1 1 ana #lobby - hola",
        "mentions": b"7 42 1764013952123 web-1:9090 9 ana lobby bob,cid hi @bob and @cid",
        "private": b"0 43 1764013952123 n2 3 bob ana - a private\nwith lines",
        "spaces": b"2 44 1 n1 4 ana r -   leading spaces ",
        "big-id": b"3 9007199254740991 1 n1 18446744073709551615 ana r - max",
        "bad-seq": b"x 1 1 n1 1 ana r - text",
        "bad-name": b"1 1 1 n1 1 a/a r - text",
        "short": b"1 1 1 n1 1 ana r -",
        "presence": b"P+ n1 ana 1764013952123",
    }


# fuzz_cluster_mod: the moderation channel's changes and the sync's pages,
# as src/store/store_redis_mod.c and src/cluster/mod.lua write them (cjson).
def cluster_mod_seeds():
    return {
        "topic": b'{"seq":3,"node":"n1","action":"topic","by":"ana","target":"","reason":"",'
                 b'"until":"0","ts":"1764013952123","text":"hola","ban":"","address":"0",'
                 b'"keep":true,"room":"#lobby","row":{"name":"#lobby","owner":"ana","ops":"bob cid",'
                 b'"topic":"hola","topic_by":"ana","topic_ts":"1764013952123"}}',
        "ban-server": b'{"seq":9,"node":"n2","action":"ban","by":"root","target":"203.0.113.7",'
                      b'"reason":"spam","until":"1764099999000","ts":"1764013952123","text":"",'
                      b'"ban":"put","address":"1","keep":false}',
        "unban-dropped": b'{"seq":10,"node":"n2","action":"unban","by":"ana","target":"eve",'
                         b'"reason":"","until":"0","ts":"1","text":"","ban":"drop","address":"0",'
                         b'"keep":false,"room":"r","row":false}',
        "bad-ban": b'{"seq":1,"node":"n","action":"ban","by":"a","target":"","reason":"","until":"0",'
                   b'"ts":"1","text":"","ban":"maybe","address":"0","keep":false}',
        "page-first": b'{"seq":12,"cursor":"17","sbans":[{"t":"eve","a":"0","u":"0","ts":"1","by":"root",'
                      b'"r":""}],"rooms":[{"name":"#lobby","owner":"ana","ops":"","topic":"",'
                      b'"topic_by":"","topic_ts":"0","bans":[{"t":"mal","a":"0","u":"0","ts":"2",'
                      b'"by":"ana","r":"x"}]}]}',
        "page-last-empty": b'{"cursor":"0","rooms":{},"sbans":{}}',
        "page-bad-cursor": b'{"cursor":"1a","rooms":[],"sbans":[]}',
    }


def write(target, seeds):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    for name, data in seeds.items():
        with open(os.path.join(d, name + ".bin"), "wb") as f:
            f.write(data)
    print("%s: %d seeds" % (target, len(seeds)))


def main():
    # The RFC's sample key must give the RFC's accept value; a cheap check
    # that the seeds below mean what they say.
    acc = hashlib.sha1(RFC_KEY + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest()
    assert __import__("base64").b64encode(acc) == b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
    write("fuzz_ws_frame", frame_seeds())
    write("fuzz_utf8", utf8_seeds())
    write("fuzz_ws_handshake", handshake_seeds())
    write("fuzz_inflate", inflate_seeds())
    write("fuzz_chat", chat_seeds())
    write("fuzz_tls", tls_seeds())
    write("fuzz_jwt", jwt_seeds())
    write("fuzz_cluster", cluster_seeds())
    write("fuzz_cluster_mod", cluster_mod_seeds())


if __name__ == "__main__":
    main()
