// permessage-deflate (RFC 7692) against the real server: negotiation in the
// 101 response (offers, malformed offers, --deflate off), clients with and
// without the extension in one room (each gets every message right, and the
// compressing ones really get RSV1 frames on the wire), --deflate-min,
// server_max_window_bits, compressed and fragmented compressed input on /echo,
// the RSV1 rules (1002), invalid compressed data and UTF-8 (1007), and a
// decompression bomb (1009 with the server's memory untouched).

import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { readFileSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';

import { RawWs, connect, deflateMessage, frame, login, parseServerFrames, startServer, uniq } from './helpers.mjs';

const OFFER = 'permessage-deflate; client_max_window_bits';

let server; // --echo, default deflate settings

before(async () => {
    server = await startServer(['--echo']);
});
after(async () => {
    await server?.stopClean();
});

/** The server's peak resident memory (VmHWM), KiB. */
function peakKiB(srv) {
    return Number(/VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${srv.proc.pid}/status`, 'utf8'))[1]);
}

/** A text longer than --deflate-min that compresses well. */
function longText(n = 2000) {
    return 'una tertulia de amigos, con café y conversación; '.repeat(Math.ceil(n / 50)).slice(0, n);
}

/** Records the server→client frames a `ws` client receives, from its socket. */
function tapFrames(client) {
    const tap = { buf: Buffer.alloc(0), frames: [] };
    client.ws._socket.prependListener('data', (chunk) => {
        tap.buf = Buffer.concat([tap.buf, chunk]);
        const { frames, rest } = parseServerFrames(tap.buf, { deflate: true });
        tap.buf = Buffer.from(rest);
        tap.frames.push(...frames);
    });
    return tap;
}

/**
 * A raw client logged in to room over /ws, offering deflate (or not).
 * c.replies: whether each reply (welcome, joined...) came compressed.
 */
async function rawMember(srv, nickname, room, offer = OFFER) {
    const headers = offer ? { 'Sec-WebSocket-Extensions': offer } : {};
    const c = await RawWs.connect(srv, '/ws', { headers, protocol: 'tertulia.v1' });
    await c.sendText(JSON.stringify({ type: 'login', nickname, room }));
    c.replies = {};
    for (;;) {
        const m = await c.nextMessage();
        const j = JSON.parse(m.data.toString('utf8'));
        c.replies[j.type] = m.compressed;
        if (j.type === 'joined') return c;
        assert.notEqual(j.type, 'error', JSON.stringify(j));
    }
}

/** The next chat message of type t a raw client gets, with its frame facts. */
async function rawNext(c, t) {
    for (;;) {
        const m = await c.nextMessage();
        const j = JSON.parse(m.data.toString('utf8'));
        if (j.type === t) return { ...m, json: j };
    }
}

describe('negotiation', () => {
    test('an offer is accepted with no context takeover both ways', async () => {
        const c = await RawWs.connect(server, '/echo', { headers: { 'Sec-WebSocket-Extensions': OFFER } });
        assert.equal(c.response.headers['sec-websocket-extensions'], 'permessage-deflate; server_no_context_takeover; client_no_context_takeover');
        c.destroy();
    });

    test('server_max_window_bits is answered with the same value', async () => {
        const c = await RawWs.connect(server, '/echo', { headers: { 'Sec-WebSocket-Extensions': 'permessage-deflate; server_max_window_bits=10' } });
        assert.match(c.response.headers['sec-websocket-extensions'], /; server_max_window_bits=10$/);
        c.destroy();
    });

    test('a malformed offer is declined, the next offer taken, the handshake never failed', async () => {
        for (const [offer, want] of [
            ['permessage-deflate; server_max_window_bits=16', undefined],
            ['permessage-deflate; server_max_window_bits', undefined],
            ['permessage-deflate; client_max_window_bits=08', undefined],
            ['permessage-deflate; server_no_context_takeover; server_no_context_takeover', undefined],
            ['permessage-deflate; bogus', undefined],
            ['permessage-deflate; server_max_window_bits="1', undefined],
            ['x-webkit-deflate-frame', undefined],
            ['permessage-deflate; bogus, permessage-deflate; server_max_window_bits=12', /server_max_window_bits=12/],
        ]) {
            const c = await RawWs.connect(server, '/echo', { headers: { 'Sec-WebSocket-Extensions': offer } });
            const got = c.response.headers['sec-websocket-extensions'];
            if (want === undefined) assert.equal(got, undefined, `offer ${offer}`);
            else assert.match(got, want, `offer ${offer}`);
            // Either way the connection works, uncompressed if declined.
            await c.sendText('still here');
            const m = await c.nextMessage();
            assert.equal(m.data.toString(), 'still here');
            c.destroy();
        }
    });

    test('several header lines are one list of offers', async () => {
        const c = await RawWs.connect(server, '/echo', {
            headers: { 'Sec-WebSocket-Extensions': ['permessage-deflate; server_max_window_bits=7', 'permessage-deflate; server_max_window_bits=9'] },
        });
        assert.match(c.response.headers['sec-websocket-extensions'], /server_max_window_bits=9$/);
        c.destroy();
    });

    test('--deflate off: no extension in the 101, and RSV1 is a protocol error', async () => {
        const off = await startServer(['--echo', '--deflate', 'off']);
        try {
            const c = await RawWs.connect(off, '/echo', { headers: { 'Sec-WebSocket-Extensions': OFFER } });
            assert.equal(c.response.headers['sec-websocket-extensions'], undefined);
            await c.sendCompressed(longText());
            await c.expectClose(1002);
            c.destroy();
            const w = await connect(off, { path: '/echo', protocol: 'legacy' });
            assert.equal(w.ws.extensions, '', 'the ws client runs without the extension');
            w.send(longText());
            const back = await w.next(() => true);
            assert.equal(back.__text, longText());
            await w.close();
        } finally {
            await off.stopClean();
        }
    });
});

describe('one room, clients with and without deflate', () => {
    test('everyone gets every message; the deflate clients as RSV1 frames, compressed once', async () => {
        const room = uniq('deflate');
        const a = await login(server, uniq('a'), { room }); // ws, perMessageDeflate on (its default)
        assert.equal(a.ws.extensions, 'permessage-deflate');
        const tapA = tapFrames(a);
        const b = await connect(server, { label: 'b', wsOptions: { perMessageDeflate: false } });
        assert.equal(b.ws.extensions, '');
        const tapB = tapFrames(b);
        b.send({ type: 'login', nickname: uniq('b'), room });
        await b.next((m) => m.type === 'joined');
        const raw = await rawMember(server, uniq('raw'), room);
        assert.ok(raw.deflate, 'the raw client negotiated deflate');
        const rawPlain = await rawMember(server, uniq('rawplain'), room, null);
        assert.ok(!rawPlain.deflate);

        const long = longText(3000);
        const short = 'hola';
        // The sender's own message goes out compressed (ws compresses it: the
        // server inflates), then a short one, which ws sends plain.
        a.send({ type: 'room', to: room, message: { text: long } });
        a.send({ type: 'room', to: room, message: { text: short } });
        for (const c of [a, b]) {
            const m1 = await c.next((m) => m.type === 'room' && m.message.text === long);
            assert.equal(m1.to, room);
            await c.next((m) => m.type === 'room' && m.message.text === short);
        }
        const r1 = await rawNext(raw, 'room');
        assert.equal(r1.json.message.text, long);
        assert.ok(r1.compressed, 'a long message reaches a deflate client with RSV1');
        assert.ok(r1.wireLength < r1.data.length / 3, `compressed ${r1.wireLength} of ${r1.data.length} bytes`);
        const r2 = await rawNext(raw, 'room');
        assert.equal(r2.json.message.text, short);
        assert.ok(!r2.compressed, 'a message under --deflate-min goes plain, RSV1 clear');
        const p1 = await rawNext(rawPlain, 'room');
        assert.equal(p1.json.message.text, long);
        assert.ok(!p1.compressed);
        assert.equal((await rawNext(rawPlain, 'room')).json.message.text, short);

        // On the ws clients' sockets: a got the long message as an RSV1
        // frame, b never saw RSV1; and a's compressed frame is the raw
        // client's byte for byte (one compression for every recipient).
        const rsvA = tapA.frames.filter((f) => f.rsv === 4);
        assert.ok(rsvA.length >= 1, 'the deflate ws client received RSV1 frames');
        assert.ok(rsvA.some((f) => f.payload.length === r1.wireLength), 'the same compressed frame for both deflate recipients');
        assert.ok(tapB.frames.length > 0 && tapB.frames.every((f) => f.rsv === 0), 'the plain ws client never got RSV1');
        assert.deepEqual(tapA.frames.flatMap((f) => f.violations), []);

        raw.destroy();
        rawPlain.destroy();
        await a.close();
        await b.close();
    });

    test('--deflate-min 0 compresses even short messages; a large minimum none', async () => {
        for (const [min, wantCompressed] of [
            ['0', true],
            ['100000', false],
        ]) {
            const srv = await startServer(['--deflate-min', min]);
            try {
                const room = uniq('min');
                const raw = await rawMember(srv, uniq('r'), room);
                const sender = await login(srv, uniq('s'), { room });
                const text = 'x'.repeat(40) + ' hola hola hola hola';
                sender.send({ type: 'room', to: room, message: { text } });
                const m = await rawNext(raw, 'room');
                assert.equal(m.json.message.text, text);
                assert.equal(m.compressed, wantCompressed, `--deflate-min ${min}`);
                // Replies take the same path as broadcasts.
                assert.equal(raw.replies.welcome, wantCompressed, 'the welcome reply');
                assert.equal(raw.replies.joined, wantCompressed, 'the joined reply');
                raw.destroy();
                await sender.close();
            } finally {
                await srv.stopClean();
            }
        }
    });

    test('server_max_window_bits=8: 256 bytes or less compressed, longer plain, all correct', async () => {
        const srv = await startServer(['--echo', '--deflate-min', '0']);
        try {
            const c = await RawWs.connect(srv, '/echo', { headers: { 'Sec-WebSocket-Extensions': 'permessage-deflate; server_max_window_bits=8' } });
            assert.match(c.response.headers['sec-websocket-extensions'], /server_max_window_bits=8/);
            const small = 'abcabcabc'.repeat(28).slice(0, 256);
            const big = longText(2000);
            await c.sendText(small);
            await c.sendText(big);
            const m1 = await c.nextMessage();
            assert.equal(m1.data.toString(), small);
            assert.ok(m1.compressed);
            const m2 = await c.nextMessage();
            assert.equal(m2.data.toString(), big);
            assert.ok(!m2.compressed, 'too long for an 8-bit window: plain');
            c.destroy();
        } finally {
            await srv.stopClean();
        }
    });
});

describe('compressed input on /echo', () => {
    async function deflateEcho() {
        const c = await RawWs.connect(server, '/echo', { headers: { 'Sec-WebSocket-Extensions': OFFER } });
        assert.ok(c.deflate);
        return c;
    }

    test('text and binary, whole and fragmented, with a ping between fragments', async () => {
        const c = await deflateEcho();
        const text = longText(5000);
        await c.sendCompressed(text);
        let m = await c.nextMessage();
        assert.equal(m.opcode, 1);
        assert.equal(m.data.toString(), text);
        const bin = Buffer.alloc(3000, 7);
        await c.sendCompressed(bin);
        m = await c.nextMessage();
        assert.equal(m.opcode, 2);
        assert.deepEqual(m.data, bin);
        // Fragmented: RSV1 on the first frame only.
        const z = deflateMessage(text);
        const cut = [0, 1, Math.floor(z.length / 2), z.length];
        const frames = [];
        for (let i = 0; i + 1 < cut.length; i++) {
            frames.push(frame({ opcode: i === 0 ? 1 : 0, rsv: i === 0 ? 4 : 0, fin: i + 2 === cut.length, payload: z.subarray(cut[i], cut[i + 1]) }));
            if (i === 0) frames.push(frame({ opcode: 9, payload: 'p' }));
        }
        await c.write(Buffer.concat(frames));
        const pong = await c.nextFrame((f) => f.opcode === 10);
        assert.equal(pong.payload.toString(), 'p');
        m = await c.nextMessage();
        assert.equal(m.data.toString(), text);
        // And an uncompressed message on the same connection.
        await c.sendText('plain');
        m = await c.nextMessage();
        assert.equal(m.data.toString(), 'plain');
        assert.deepEqual(c.violations, []);
        c.destroy();
    });

    test('the ws client with perMessageDeflate round-trips through /echo', async () => {
        const w = await connect(server, { path: '/echo', protocol: 'legacy' });
        assert.equal(w.ws.extensions, 'permessage-deflate');
        const texts = [longText(100), longText(4000), longText(60000), 'é€ '.repeat(500)];
        for (const t of texts) w.send(t);
        for (const t of texts) assert.equal((await w.next(() => true)).__text, t);
        await w.close();
    });

    for (const [name, frames, code] of [
        ['RSV1 on a continuation frame', () => [frame({ opcode: 1, rsv: 4, fin: false, payload: deflateMessage('abc') }), frame({ opcode: 0, rsv: 4, payload: Buffer.alloc(0) })], 1002],
        ['RSV1 on a ping', () => [frame({ opcode: 9, rsv: 4, payload: 'x' })], 1002],
        ['RSV1 on a close', () => [frame({ opcode: 8, rsv: 4, payload: Buffer.from([3, 232]) })], 1002],
        ['RSV2 on a compressed connection', () => [frame({ opcode: 1, rsv: 2, payload: 'x' })], 1002],
        ['invalid compressed data', () => [frame({ opcode: 2, rsv: 4, payload: Buffer.from([0x07, 0x00]) })], 1007],
        ['invalid UTF-8 inside compressed text', () => [frame({ opcode: 1, rsv: 4, payload: deflateMessage(Buffer.from([0x63, 0xc3, 0x28])) })], 1007],
    ]) {
        test(`${name} → ${code}`, async () => {
            const c = await deflateEcho();
            await c.write(Buffer.concat(frames()));
            await c.expectClose(code);
            assert.deepEqual(c.violations, []);
            c.destroy();
        });
    }

    test('a decompression bomb: a few KB that inflate past --max-message close 1009 at once', async () => {
        const c = await deflateEcho();
        const bomb = deflateMessage(Buffer.alloc(32 << 20)); // 32 MiB of zeros
        // Under the wire limit (64 KiB and a little), so it is the inflated
        // size that refuses it.
        assert.ok(bomb.length < 60 * 1024, `the bomb is ${bomb.length} bytes`);
        const before = peakKiB(server);
        await c.sendFrame({ opcode: 2, rsv: 4, payload: bomb });
        const info = await c.expectClose(1009);
        assert.match(info.reason, /too big/);
        c.destroy();
        // The server is fine and answers the next client.
        const d = await deflateEcho();
        await d.sendCompressed('after the bomb');
        assert.equal((await d.nextMessage()).data.toString(), 'after the bomb');
        d.destroy();
        // Inflating it would have taken 32 MiB; the peak did not move by that.
        const grown = peakKiB(server) - before;
        assert.ok(grown < 8 * 1024, `peak RSS grew ${grown} KiB`);
    });

    test('a bomb in fragments is refused as well', async () => {
        const c = await deflateEcho();
        const bomb = deflateMessage(Buffer.alloc(8 << 20));
        const half = Math.floor(bomb.length / 2);
        await c.write(Buffer.concat([frame({ opcode: 1, rsv: 4, fin: false, payload: bomb.subarray(0, half) }), frame({ opcode: 0, payload: bomb.subarray(half) })]));
        await c.expectClose(1009);
        c.destroy();
    });

    test('a compressed message over the wire limit is refused from its length', async () => {
        const c = await deflateEcho();
        const junk = crypto.randomBytes(80 * 1024);
        await c.sendFrame({ opcode: 2, rsv: 4, payload: junk });
        await c.expectClose(1009);
        c.destroy();
    });
});
