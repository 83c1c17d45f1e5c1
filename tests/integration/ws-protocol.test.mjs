// RFC 6455 framing on the wire, mostly against the conformance endpoint
// `/echo` (started with --echo): echo of text and binary, fragmentation,
// control frames, the close handshake, every protocol violation and the close
// code it earns (1002, 1003, 1007, 1009), and the bytes split every which way.
// Hand-made frames come from the raw client; the `ws` package is the
// well-behaved reference client.

import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { after, before, describe, test } from 'node:test';

import { RawWs, closePayload, connect, frame, login, startServer, uniq } from './helpers.mjs';

const MAX_DEFAULT = 64 * 1024;

let server; // --echo, default limits

before(async () => {
    server = await startServer(['--echo']);
});
after(async () => {
    await server?.stopClean();
});

async function echoRaw() {
    return RawWs.connect(server, '/echo');
}

/** Sends frames (as one write) and expects the server to fail the connection with code. */
async function expectFailure(frames, code, srv = server, p = '/echo') {
    const c = await RawWs.connect(srv, p);
    try {
        await c.write(Buffer.concat(frames.map((f) => (Buffer.isBuffer(f) ? f : frame(f)))));
        const info = await c.expectClose(code);
        assert.ok(info.reason.length > 0, `the close frame carries a short reason (code ${code})`);
        assert.deepEqual(c.violations, [], 'every server frame was well-formed');
    } finally {
        c.destroy();
    }
}

describe('echo', () => {
    test('text and binary messages come back unchanged and with their type', async () => {
        const c = await connect(server, { path: '/echo', protocol: 'legacy', raw: true });
        const text = 'hola, tertulia — ¿qué tal? 🎉';
        const bin = crypto.randomBytes(1000);
        c.send(text);
        c.send(bin);
        c.send('');
        c.send(Buffer.alloc(0));
        const a = await c.next();
        assert.equal(a.isBinary, false);
        assert.equal(a.data.toString('utf8'), text);
        const b = await c.next();
        assert.equal(b.isBinary, true);
        assert.deepEqual(b.data, bin);
        const e1 = await c.next();
        assert.equal(e1.isBinary, false);
        assert.equal(e1.data.length, 0);
        const e2 = await c.next();
        assert.equal(e2.isBinary, true);
        assert.equal(e2.data.length, 0);
        const closed = await c.close(1000, 'done');
        assert.equal(closed.code, 1000);
    });

    test('payloads at the 7-, 16- and 64-bit length boundaries come back unchanged', async () => {
        const c = await echoRaw();
        try {
            for (const n of [0, 1, 125, 126, 127, 65535, MAX_DEFAULT]) {
                const payload = crypto.randomBytes(n);
                await c.sendFrame({ opcode: 2, payload });
                const m = await c.nextMessage();
                assert.equal(m.opcode, 2);
                assert.equal(m.data.length, n);
                assert.ok(m.data.equals(payload), `payload of ${n} bytes`);
            }
        } finally {
            c.destroy();
        }
        assert.deepEqual(c.violations, []);
    });

    test('a message of exactly --max-message bytes is accepted', async () => {
        const srv = await startServer(['--echo', '--max-message', '1024']);
        try {
            const c = await RawWs.connect(srv, '/echo');
            const payload = Buffer.alloc(1024, 'x');
            await c.write(Buffer.concat([frame({ opcode: 1, payload: payload.subarray(0, 1000), fin: false }), frame({ opcode: 0, payload: payload.subarray(1000) })]));
            const m = await c.nextMessage();
            assert.equal(m.data.length, 1024);
            await c.sendFrame({ opcode: 1, payload });
            assert.equal((await c.nextMessage()).data.length, 1024);
            c.destroy();
        } finally {
            await srv.stopClean();
        }
    });

    test('a 16 MiB binary message is echoed unchanged when --max-message allows it', async () => {
        const big = await startServer(['--echo', '--max-message', String(16 * 1024 * 1024)]);
        try {
            const c = await connect(big, { path: '/echo', protocol: 'legacy', raw: true });
            const payload = crypto.randomBytes(16 * 1024 * 1024);
            c.send(payload);
            const m = await c.next(undefined, 30000);
            assert.equal(m.isBinary, true);
            assert.equal(m.data.length, payload.length);
            assert.ok(m.data.equals(payload), 'same bytes');
            const text = 'é'.repeat(4 * 1024 * 1024); // 8 MiB of UTF-8, validated across reads
            c.send(text);
            const t = await c.next(undefined, 30000);
            assert.equal(t.isBinary, false);
            assert.equal(t.data.toString('utf8'), text);
            await c.close();
        } finally {
            await big.stopClean();
        }
    });
});

describe('fragmentation', () => {
    test('a text message in three fragments is echoed as one message', async () => {
        const c = await echoRaw();
        try {
            await c.sendFrame({ opcode: 1, payload: 'frag', fin: false });
            await c.sendFrame({ opcode: 0, payload: 'men', fin: false });
            await c.sendFrame({ opcode: 0, payload: 'ted', fin: true });
            const m = await c.nextMessage();
            assert.equal(m.opcode, 1);
            assert.equal(m.data.toString(), 'fragmented');
        } finally {
            c.destroy();
        }
    });

    test('a binary message in fragments, with empty fragments among them, is echoed as one message', async () => {
        const c = await echoRaw();
        try {
            const parts = [crypto.randomBytes(10), Buffer.alloc(0), crypto.randomBytes(300), Buffer.alloc(0)];
            await c.write(Buffer.concat(parts.map((p, i) => frame({ opcode: i === 0 ? 2 : 0, payload: p, fin: i === parts.length - 1 }))));
            const m = await c.nextMessage();
            assert.equal(m.opcode, 2);
            assert.ok(m.data.equals(Buffer.concat(parts)));
        } finally {
            c.destroy();
        }
    });

    test('a ping between fragments is answered before the message ends, and the message arrives whole', async () => {
        const c = await echoRaw();
        try {
            await c.sendFrame({ opcode: 1, payload: 'first half, ', fin: false });
            await c.sendFrame({ opcode: 9, payload: 'mid-message' });
            const pong = await c.nextFrame((f) => f.opcode === 10);
            assert.equal(pong.payload.toString(), 'mid-message');
            await c.sendFrame({ opcode: 0, payload: 'second half', fin: true });
            const m = await c.nextMessage();
            assert.equal(m.data.toString(), 'first half, second half');
        } finally {
            c.destroy();
        }
    });

    test('a pong between fragments is ignored and the message arrives whole', async () => {
        const c = await echoRaw();
        try {
            await c.write(Buffer.concat([
                frame({ opcode: 1, payload: 'a', fin: false }),
                frame({ opcode: 10, payload: 'unsolicited' }),
                frame({ opcode: 0, payload: 'b', fin: true }),
            ]));
            const m = await c.nextMessage();
            assert.equal(m.data.toString(), 'ab');
            await c.frames.expectNothing(200, (f) => f.opcode === 10);
        } finally {
            c.destroy();
        }
    });

    test('a UTF-8 character split across fragments is accepted', async () => {
        const c = await echoRaw();
        try {
            const euro = Buffer.from('€', 'utf8'); // E2 82 AC
            await c.sendFrame({ opcode: 1, payload: Buffer.concat([Buffer.from('price: '), euro.subarray(0, 1)]), fin: false });
            await c.sendFrame({ opcode: 0, payload: euro.subarray(1, 2), fin: false });
            await c.sendFrame({ opcode: 0, payload: Buffer.concat([euro.subarray(2), Buffer.from('5')]), fin: true });
            const m = await c.nextMessage();
            assert.equal(m.data.toString('utf8'), 'price: €5');
        } finally {
            c.destroy();
        }
    });
});

describe('control frames', () => {
    test('a ping gets a pong with the same payload (empty, text, 125 bytes)', async () => {
        const c = await echoRaw();
        try {
            for (const payload of [Buffer.alloc(0), Buffer.from('are you there?'), crypto.randomBytes(125)]) {
                await c.sendFrame({ opcode: 9, payload });
                const pong = await c.nextFrame((f) => f.opcode === 10);
                assert.ok(pong.payload.equals(payload), `pong payload of ${payload.length} bytes`);
                assert.equal(pong.fin, true);
            }
        } finally {
            c.destroy();
        }
        assert.deepEqual(c.violations, []);
    });

    test('an unsolicited pong is ignored and the connection keeps working', async () => {
        const c = await echoRaw();
        try {
            await c.sendFrame({ opcode: 10, payload: 'nobody asked' });
            await c.sendText('still here');
            assert.equal((await c.nextMessage()).data.toString(), 'still here');
        } finally {
            c.destroy();
        }
    });

    for (const [code, reason] of [[1000, 'bye'], [1001, ''], [4001, 'custom code'], [3000, 'x']]) {
        test(`a client close with ${code} is answered with a close carrying the same code, then the server closes TCP`, async () => {
            const c = await echoRaw();
            try {
                await c.sendClose(code, reason);
                const info = await c.waitClose();
                assert.equal(info.code, code);
            } finally {
                c.destroy();
            }
        });
    }

    test('a client close with no payload is answered with a close and the connection ends', async () => {
        const c = await echoRaw();
        try {
            await c.sendClose();
            const info = await c.waitClose();
            assert.ok([1000, 1005].includes(info.code), `close reply ${info.code}`);
        } finally {
            c.destroy();
        }
    });

    test('the ws package sees a clean 1000 close handshake', async () => {
        const c = await connect(server, { path: '/echo', protocol: 'legacy', raw: true });
        const info = await c.close(1000, 'see you');
        assert.equal(info.code, 1000);
    });

    test('nothing is echoed after the client close', async () => {
        const c = await echoRaw();
        try {
            await c.write(Buffer.concat([frame({ opcode: 8, payload: closePayload(1000) }), frame({ opcode: 1, payload: 'too late' })]));
            c.sentClose = true;
            await c.waitClose();
            const data = [];
            for (const f of c.frames.drain()) if (f.opcode < 8) data.push(f);
            assert.deepEqual(data, [], 'no data frame after the close');
        } finally {
            c.destroy();
        }
    });
});

describe('protocol errors close with 1002', () => {
    const cases = [
        ['an unmasked text frame', [{ opcode: 1, payload: 'hi', mask: false }]],
        ['an unmasked frame after a good one', [{ opcode: 1, payload: 'ok' }, { opcode: 1, payload: 'bad', mask: false }]],
        ['RSV1 set (no extension was negotiated)', [{ opcode: 1, payload: 'hi', rsv: 4 }]],
        ['RSV2 set', [{ opcode: 1, payload: 'hi', rsv: 2 }]],
        ['RSV3 set', [{ opcode: 2, payload: 'hi', rsv: 1 }]],
        ['RSV bits on a ping', [{ opcode: 9, payload: 'p', rsv: 7 }]],
        ['reserved data opcode 3', [{ opcode: 3, payload: 'hi' }]],
        ['reserved data opcode 7', [{ opcode: 7 }]],
        ['reserved control opcode 0xB', [{ opcode: 0xb, payload: 'hi' }]],
        ['reserved control opcode 0xF', [{ opcode: 0xf }]],
        ['a fragmented ping', [{ opcode: 9, payload: 'p', fin: false }, { opcode: 0, payload: 'q' }]],
        ['a fragmented close', [{ opcode: 8, payload: closePayload(1000), fin: false }]],
        ['a ping of 126 bytes', [{ opcode: 9, payload: Buffer.alloc(126, 1) }]],
        ['a close of 126 bytes', [{ opcode: 8, payload: closePayload(1000, 'x'.repeat(124)) }]],
        ['a continuation with no message open', [{ opcode: 0, payload: 'orphan' }]],
        ['a final continuation with no message open', [{ opcode: 0, payload: 'orphan', fin: true }]],
        ['a text frame inside an open fragmented message', [{ opcode: 1, payload: 'a', fin: false }, { opcode: 1, payload: 'b' }]],
        ['a binary frame inside an open fragmented text message', [{ opcode: 1, payload: 'a', fin: false }, { opcode: 2, payload: 'b', fin: false }]],
        ['a close with a 1-byte payload', [{ opcode: 8, payload: Buffer.from([0x03]) }]],
    ];
    for (const [name, frames] of cases) {
        test(`${name} closes the connection with 1002`, async () => {
            await expectFailure(frames, 1002);
        });
    }

    for (const code of [0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535]) {
        test(`a close with the invalid code ${code} is answered with 1002`, async () => {
            await expectFailure([{ opcode: 8, payload: closePayload(code, 'x') }], 1002);
        });
    }

    test('a 64-bit length with the top bit set closes with 1002', async () => {
        const head = Buffer.from([0x82, 0x80 | 127, 0x80, 0, 0, 0, 0, 0, 0, 1, 1, 2, 3, 4]);
        await expectFailure([head], 1002);
    });

    test('the chat endpoints enforce the same framing rules: an unmasked frame on /ws closes with 1002', async () => {
        await expectFailure([{ opcode: 1, payload: '{"type":"ping"}', mask: false }], 1002, server, '/ws');
    });
});

describe('invalid UTF-8 closes with 1007', () => {
    const bad = [
        ['a 0xFF byte', Buffer.from([0x61, 0xff, 0x62])],
        ['an overlong encoding of "/"', Buffer.from([0xc0, 0xaf])],
        ['an overlong 3-byte NUL', Buffer.from([0xe0, 0x80, 0x80])],
        ['a UTF-16 surrogate', Buffer.from([0xed, 0xa0, 0x80])],
        ['a code point above U+10FFFF', Buffer.from([0xf4, 0x90, 0x80, 0x80])],
        ['a lone continuation byte', Buffer.from([0x80])],
        ['a sequence truncated at the end of the message', Buffer.from([0x61, 0xe2, 0x82])],
    ];
    for (const [name, payload] of bad) {
        test(`a text message with ${name} closes with 1007`, async () => {
            await expectFailure([{ opcode: 1, payload }], 1007);
        });
    }

    test('invalid UTF-8 across fragments closes with 1007 (a truncated character then ASCII)', async () => {
        await expectFailure([{ opcode: 1, payload: Buffer.from([0x61, 0xe2]), fin: false }, { opcode: 0, payload: Buffer.from('bc') }], 1007);
    });

    test('invalid UTF-8 in a first fragment closes with 1007 before the message ends (fail fast)', async () => {
        // Only the first fragment is ever sent; the server must not wait for the rest.
        await expectFailure([{ opcode: 1, payload: Buffer.from([0x61, 0xff]), fin: false }], 1007);
    });

    test('invalid UTF-8 at the start of a long frame closes with 1007 before the frame ends (fail fast)', async () => {
        const c = await echoRaw();
        try {
            const full = frame({ opcode: 1, payload: Buffer.concat([Buffer.from([0xc0, 0xaf]), Buffer.alloc(30000, 0x61)]) });
            await c.write(full.subarray(0, 200)); // the header and the bad bytes, not the rest
            await c.expectClose(1007);
        } finally {
            c.destroy();
        }
    });

    test('a close reason that is not UTF-8 closes with 1007', async () => {
        await expectFailure([{ opcode: 8, payload: closePayload(1000, Buffer.from([0xff, 0xfe])) }], 1007);
    });

    test('invalid UTF-8 in a chat text message on /ws closes with 1007', async () => {
        await expectFailure([{ opcode: 1, payload: Buffer.from([0x7b, 0x22, 0xff, 0x22, 0x7d]) }], 1007, server, '/ws');
    });

    test('binary messages are allowed to hold any bytes', async () => {
        const c = await echoRaw();
        try {
            await c.sendFrame({ opcode: 2, payload: Buffer.from([0xff, 0xc0, 0xaf, 0xed, 0xa0, 0x80]) });
            const m = await c.nextMessage();
            assert.deepEqual([...m.data], [0xff, 0xc0, 0xaf, 0xed, 0xa0, 0x80]);
        } finally {
            c.destroy();
        }
    });
});

describe('binary on chat endpoints closes with 1003', () => {
    for (const p of ['/ws', '/talking']) {
        test(`a binary message on ${p} closes with 1003`, async () => {
            const c = await connect(server, { path: p, protocol: 'legacy' });
            c.send(Buffer.from('{"type":"ping"}'));
            const info = await c.waitClose();
            assert.equal(info.code, 1003);
        });
    }

    test('a logged-in tertulia.v1 client sending binary is closed with 1003', async () => {
        const c = await login(server, uniq('bin'));
        c.send(Buffer.from([1, 2, 3]));
        const info = await c.waitClose();
        assert.equal(info.code, 1003);
        assert.ok(info.reason.length > 0, 'with a short reason');
    });
});

describe('messages over --max-message close with 1009', () => {
    let small;
    before(async () => {
        small = await startServer(['--echo', '--max-message', '1024']);
    });
    after(async () => {
        await small?.stopClean();
    });

    test('a single frame of max+1 bytes closes with 1009', async () => {
        await expectFailure([{ opcode: 2, payload: Buffer.alloc(1025) }], 1009, small);
    });

    test('fragments adding up to max+1 bytes close with 1009', async () => {
        await expectFailure([{ opcode: 1, payload: Buffer.alloc(600, 0x61), fin: false }, { opcode: 0, payload: Buffer.alloc(425, 0x61) }], 1009, small);
    });

    test('a frame header announcing 1 GiB closes with 1009 without waiting for the payload', async () => {
        const head = Buffer.alloc(14);
        head[0] = 0x82;
        head[1] = 0x80 | 127;
        head.writeBigUInt64BE(1n << 30n, 2);
        crypto.randomBytes(4).copy(head, 10);
        await expectFailure([head], 1009, small);
    });

    test('the default limit is 64 KiB: 64 KiB + 1 closes with 1009', async () => {
        await expectFailure([{ opcode: 2, payload: Buffer.alloc(MAX_DEFAULT + 1) }], 1009);
    });

    test('a chat message over the limit on /ws closes with 1009', async () => {
        const c = await connect(small, { path: '/ws', protocol: 'v1' });
        c.send(JSON.stringify({ type: 'ping', pad: 'x'.repeat(2000) }));
        const info = await c.waitClose();
        assert.equal(info.code, 1009);
    });
});

describe('bytes split every which way', () => {
    test('a frame written one byte at a time is echoed', async () => {
        const c = await echoRaw();
        try {
            await c.writeSplit(frame({ opcode: 1, payload: 'one byte at a time' }), 1, 1);
            assert.equal((await c.nextMessage()).data.toString(), 'one byte at a time');
            // A 16-bit length header and its mask split too.
            const payload = crypto.randomBytes(300);
            await c.writeSplit(frame({ opcode: 2, payload }), 1, 0);
            assert.ok((await c.nextMessage()).data.equals(payload));
        } finally {
            c.destroy();
        }
    });

    test('a ping written one byte at a time is answered', async () => {
        const c = await echoRaw();
        try {
            await c.writeSplit(frame({ opcode: 9, payload: 'slow ping' }), 1, 1);
            assert.equal((await c.nextFrame((f) => f.opcode === 10)).payload.toString(), 'slow ping');
        } finally {
            c.destroy();
        }
    });

    test('200 frames in one write are all echoed, in order', async () => {
        const c = await echoRaw();
        try {
            const msgs = Array.from({ length: 200 }, (_, i) => `message ${i} ${'.'.repeat(i % 150)}`);
            await c.write(Buffer.concat(msgs.map((m) => frame({ opcode: 1, payload: m }))));
            for (const m of msgs) assert.equal((await c.nextMessage()).data.toString(), m);
        } finally {
            c.destroy();
        }
    });

    test('a stream of fragmented messages and pings cut at random points is echoed exactly', async () => {
        const c = await echoRaw();
        try {
            const expected = [];
            const pings = [];
            const parts = [];
            for (let i = 0; i < 40; i++) {
                const text = `msg-${i}-€-${'z'.repeat(i * 7)}`;
                const b = Buffer.from(text, 'utf8');
                const cut = Math.floor(b.length / 2);
                expected.push(text);
                parts.push(frame({ opcode: 1, payload: b.subarray(0, cut), fin: false }));
                if (i % 5 === 0) {
                    const p = Buffer.from(`ping-${i}`);
                    pings.push(p);
                    parts.push(frame({ opcode: 9, payload: p }));
                }
                parts.push(frame({ opcode: 0, payload: b.subarray(cut), fin: true }));
            }
            const all = Buffer.concat(parts);
            let off = 0;
            while (off < all.length) {
                const n = 1 + crypto.randomInt(64);
                await c.write(all.subarray(off, off + n));
                off += n;
            }
            for (const text of expected) assert.equal((await c.nextMessage()).data.toString('utf8'), text);
            for (const p of pings) assert.ok((await c.nextFrame((f) => f.opcode === 10)).payload.equals(p));
            assert.deepEqual(c.violations, []);
        } finally {
            c.destroy();
        }
    });
});
