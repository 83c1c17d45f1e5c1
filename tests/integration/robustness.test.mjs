// Bad input from broken or hostile clients gets a clear answer and breaks
// nothing: connections dropped mid-frame or mid-handshake, oversized
// handshake heads, malformed JSON, wrong types, huge numbers, deep nesting,
// invalid escapes, unknown types. After each, the same connection (when it
// is meant to survive) and the server as a whole keep working.

import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { after, before, describe, test } from 'node:test';

import { RawHttp, RawWs, connect, frame, login, sleep, startServer, uniq, upgradeRequest } from './helpers.mjs';

let server;
before(async () => {
    server = await startServer(['--echo', '--resume-seconds', '0']); // member_left at the close, no grace time
});
after(async () => {
    await server?.stopClean();
});

/** The server still serves: an echo round trip and a chat login with ping. */
async function serverStillServes() {
    const e = await connect(server, { path: '/echo', protocol: 'legacy', raw: true });
    e.send('still alive?');
    assert.equal((await e.next()).data.toString(), 'still alive?');
    await e.close();
    const c = await login(server, uniq('probe'));
    c.send({ type: 'ping', id: 'probe' });
    assert.equal((await c.next('pong')).ref, 'probe');
    await c.close();
}

describe('connections that end at the wrong moment', () => {
    test('a client that disconnects in the middle of a frame does not disturb the server', async () => {
        for (const cut of [1, 2, 5, 8, 20]) {
            const c = await RawWs.connect(server, '/echo');
            const f = frame({ opcode: 1, payload: 'x'.repeat(200) });
            await c.write(f.subarray(0, cut));
            c.destroy();
        }
        await serverStillServes();
    });

    test('a logged-in member that disconnects mid-frame is announced as gone with reason disconnect', async () => {
        const room = uniq('midframe');
        const watcher = await login(server, uniq('watcher'), { room });
        const raw = await RawWs.connect(server, '/ws', { protocol: 'tertulia.v1' });
        const nick = uniq('cutoff');
        await raw.sendText(JSON.stringify({ type: 'login', nickname: nick, room }));
        await watcher.next((m) => m.type === 'member_joined' && m.nickname === nick);
        const f = frame({ opcode: 1, payload: JSON.stringify({ type: 'room', to: room, message: { text: 'never finished' } }) });
        await raw.write(f.subarray(0, 10));
        await sleep(50);
        raw.destroy();
        const ml = await watcher.next('member_left');
        assert.equal(ml.nickname, nick);
        assert.equal(ml.reason, 'disconnect');
        await watcher.expectNothing(200, 'room');
        await watcher.close();
    });

    test('a client that disconnects in the middle of a fragmented message does not disturb the server', async () => {
        const c = await RawWs.connect(server, '/echo');
        await c.sendFrame({ opcode: 1, payload: 'part one', fin: false });
        await c.sendFrame({ opcode: 0, payload: 'part two', fin: false });
        c.destroy();
        await serverStillServes();
    });

    test('a client that disconnects in the middle of the handshake does not disturb the server', async () => {
        for (const cut of [3, 20, 60]) {
            const c = await RawHttp.connect(server);
            await c.send(upgradeRequest('/ws').text.slice(0, cut));
            c.destroy();
        }
        await serverStillServes();
    });

    test('a client that disconnects right after sending a close frame does not disturb the server', async () => {
        const c = await RawWs.connect(server, '/echo');
        await c.sendClose(1000, 'bye');
        c.destroy();
        await serverStillServes();
    });

    test('fifty clients dropping mid-frame at once leave the room clean', async () => {
        const room = uniq('mass');
        const watcher = await login(server, uniq('mass-w'), { room });
        const raws = [];
        for (let i = 0; i < 50; i++) {
            const r = await RawWs.connect(server, '/ws', { protocol: 'tertulia.v1' });
            await r.sendText(JSON.stringify({ type: 'login', nickname: uniq(`m${i}`), room }));
            raws.push(r);
        }
        for (let i = 0; i < 50; i++) await watcher.next('member_joined', 10000);
        const half = frame({ opcode: 1, payload: 'y'.repeat(500) }).subarray(0, 100);
        await Promise.all(raws.map((r) => r.write(half)));
        for (const r of raws) r.destroy();
        for (let i = 0; i < 50; i++) await watcher.next('member_left', 10000);
        const who = await watcher.request({ type: 'who', room }, 'members');
        assert.deepEqual(who.members, [watcher.nickname]);
        await watcher.close();
    });
});

describe('oversized and malformed handshakes', () => {
    test('oversized handshake headers get 431 and the server keeps serving', async () => {
        const c = await RawHttp.connect(server);
        try {
            await c.send(upgradeRequest('/ws', { Cookie: `session=${'z'.repeat(16000)}` }).text);
            const res = await c.readResponse();
            assert.equal(res.status, 431);
        } finally {
            c.destroy();
        }
        await serverStillServes();
    });

    test('a WebSocket frame sent instead of a handshake gets 400', async () => {
        const c = await RawHttp.connect(server);
        try {
            await c.send(frame({ opcode: 1, payload: '{"type":"ping"}' }));
            const res = await c.readResponse();
            assert.equal(res.status, 400);
        } finally {
            c.destroy();
        }
        await serverStillServes();
    });
});

describe('bad JSON and bad fields keep the connection working', () => {
    const deep = (n) => `${'['.repeat(n)}${']'.repeat(n)}`;
    // [name, text to send, acceptable error codes, needs login]
    const cases = [
        ['malformed JSON', '{"type": "ping",,}', ['bad_json'], false],
        ['a JSON array', '[{"type":"ping"}]', ['bad_json'], false],
        ['a bare number', '12345678901234567890', ['bad_json'], false],
        ['a wrong-typed type', '{"type": 12}', ['bad_request'], false],
        ['a wrong-typed nickname', '{"type":"login","nickname":{"first":"ana"}}', ['bad_request'], false],
        ['a wrong-typed message', '{"type":"room","to":"R","message":["hi"]}', ['bad_request'], true],
        ['a number as text', '{"type":"room","to":"R","message":{"text":42}}', ['bad_request'], true],
        ['a huge exponent in since', '{"type":"join","room":"R2","since":1e999}', ['bad_json', 'bad_request'], true],
        ['a huge integer in since', '{"type":"join","room":"R2","since":123456789012345678901234567890}', ['bad_json', 'bad_request'], true],
        ['a negative since', '{"type":"join","room":"R2","since":-5}', ['bad_request'], true],
        ['a fractional limit', '{"type":"history","room":"R","limit":2.5}', ['bad_request'], true],
        ['a string limit', '{"type":"history","room":"R","limit":"10"}', ['bad_request'], true],
        ['a huge integer limit', '{"type":"history","room":"R","limit":99999999999999999999999}', ['bad_json', 'bad_request'], true],
        ['deep nesting (30,000 levels)', `{"type":"ping","x":${deep(30000)}}`, ['bad_json'], false],
        ['deep nesting of objects', `{"type":"ping","x":${'{"a":'.repeat(10000)}1${'}'.repeat(10000)}}`, ['bad_json'], false],
        ['a lone surrogate escape in a string', '{"type":"room","to":"R","message":{"text":"\\ud800"}}', ['bad_json'], true],
        ['an invalid escape', '{"type":"room","to":"R","message":{"text":"\\q"}}', ['bad_json'], true],
        ['an unknown type', '{"type":"teleport","where":"mars"}', ['unknown_type'], true],
        ['an unknown type before login', '{"type":"teleport"}', ['unknown_type'], false],
    ];
    for (const [name, text, codes, needsLogin] of cases) {
        test(`${name} gets ${codes.join(' or ')} and the connection keeps working`, async () => {
            const room = uniq('rb');
            const c = await connect(server);
            if (needsLogin) {
                c.send({ type: 'login', nickname: uniq('rb'), room });
                await c.next('welcome');
                await c.next('joined');
            }
            c.send(text.replaceAll('"R"', JSON.stringify(room)).replaceAll('"R2"', JSON.stringify(`${room}-2`)));
            const e = await c.next('error');
            assert.ok(codes.includes(e.code), `got ${JSON.stringify(e)}`);
            assert.ok(typeof e.message === 'string' && e.message.length > 0);
            c.send({ type: 'ping', id: 'after' });
            assert.equal((await c.next('pong')).ref, 'after');
            if (needsLogin) {
                c.send({ type: 'room', to: room, message: { text: 'still chatting' } });
                assert.equal((await c.next('room')).message.text, 'still chatting');
            }
            await c.expectNothing(100, 'error');
            await c.close();
        });
    }

    test('moderate nesting in an ignored field is accepted', async () => {
        const c = await connect(server);
        c.send(`{"type":"ping","id":"nested","x":${deep(50)}}`);
        assert.equal((await c.next((m) => m.type === 'pong' || m.type === 'error')).type, 'pong');
        await c.close();
    });

    test('an over-long request id gets an error or is answered, never echoed beyond 64 characters', async () => {
        const c = await connect(server);
        const id = 'i'.repeat(1000);
        c.send({ type: 'ping', id });
        const r = await c.next((m) => m.type === 'pong' || m.type === 'error');
        if (r.ref !== undefined) assert.ok(r.ref.length <= 64, `ref of ${r.ref.length} characters`);
        c.send({ type: 'ping', id: 'ok' });
        assert.equal((await c.next('pong')).ref, 'ok');
        await c.close();
    });

    test('random garbage text messages each get bad_json and never close the connection', async () => {
        const c = await connect(server);
        for (let i = 0; i < 15; i++) {
            // Valid UTF-8 (so the transport accepts it) that is not JSON.
            const junk = `${crypto.randomBytes(20).toString('base64')}{[\\"`;
            c.send(junk);
            assert.equal((await c.next('error')).code, 'bad_json');
        }
        c.send({ type: 'ping', id: 'end' });
        assert.equal((await c.next('pong')).ref, 'end');
        await c.close();
    });
});
