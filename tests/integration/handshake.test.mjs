// The RFC 6455 opening handshake: which upgrades are accepted where, the
// Sec-WebSocket-Accept value, subprotocol negotiation (tertulia.v1 or legacy),
// and refusals with the right status and a one-line body.

import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { after, before, describe, test } from 'node:test';

import { RawHttp, RawWs, SUBPROTOCOL, acceptFor, connect, frame, login, startServer, uniq, upgradeRequest, waitMembers } from './helpers.mjs';

let server; // chat endpoints only
let echoServer; // started with --echo

before(async () => {
    [server, echoServer] = await Promise.all([startServer(), startServer(['--echo'])]);
});
after(async () => {
    await Promise.all([server?.stopClean(), echoServer?.stopClean()]);
});

/** Sends an upgrade request built from overrides and returns the response. */
async function upgrade(srv, p, headers = {}, opts = {}) {
    const c = await RawHttp.connect(srv);
    try {
        const req = upgradeRequest(p, headers, opts);
        await c.send(req.text);
        const res = await c.readResponse();
        res.key = req.key;
        return res;
    } finally {
        c.destroy();
    }
}

/** A refusal: not 101, the expected status(es), a one-line body with a matching length. */
function assertRefusal(res, statuses) {
    const list = Array.isArray(statuses) ? statuses : [statuses];
    assert.ok(list.includes(res.status), `status ${res.status} ${res.statusText}, expected ${list.join(' or ')}`);
    assert.equal(res.headers['sec-websocket-accept'], undefined, 'a refusal carries no Sec-WebSocket-Accept');
    assert.equal(Number(res.headers['content-length']), res.body.length, 'Content-Length matches the body');
    const body = res.body.toString('utf8').replace(/\r?\n$/, '');
    assert.ok(body.length > 0, 'the refusal says why');
    assert.ok(!/[\r\n]/.test(body), `the body is one line: ${JSON.stringify(body)}`);
}

describe('accepted upgrades', () => {
    for (const p of ['/talking', '/ws']) {
        test(`an upgrade at ${p} gets 101 with the right Sec-WebSocket-Accept`, async () => {
            const res = await upgrade(server, p);
            assert.equal(res.status, 101);
            assert.equal(res.headers['sec-websocket-accept'], acceptFor(res.key));
            assert.match(res.headers.upgrade || '', /^websocket$/i);
            assert.match(res.headers.connection || '', /\bupgrade\b/i);
            assert.equal(res.headers['sec-websocket-protocol'], undefined, 'no subprotocol offered, none chosen');
            assert.equal(res.headers['sec-websocket-extensions'], undefined, 'no extension was negotiated');
        });
    }

    test('the echo endpoint exists only when the server runs with --echo', async () => {
        const on = await upgrade(echoServer, '/echo');
        assert.equal(on.status, 101);
        const off = await upgrade(server, '/echo');
        assert.equal(off.status, 404);
    });

    test('an upgrade at an unknown path gets 404', async () => {
        const res = await upgrade(server, '/nowhere');
        assert.equal(res.status, 404);
    });

    test('Connection: keep-alive, Upgrade and Upgrade: WebSocket in any case are accepted (as Firefox sends them)', async () => {
        const res = await upgrade(server, '/ws', { Connection: 'keep-alive, Upgrade', Upgrade: 'WebSocket' });
        assert.equal(res.status, 101);
        assert.equal(res.headers['sec-websocket-accept'], acceptFor(res.key));
    });

    test('header names are matched case-insensitively', async () => {
        const key = crypto.randomBytes(16).toString('base64');
        const c = await RawHttp.connect(server);
        try {
            await c.send(`GET /ws HTTP/1.1\r\nhost: x\r\nUPGRADE: websocket\r\nconnection: upgrade\r\nsec-websocket-key: ${key}\r\nSEC-WEBSOCKET-VERSION: 13\r\n\r\n`);
            const res = await c.readResponse();
            assert.equal(res.status, 101);
            assert.equal(res.headers['sec-websocket-accept'], acceptFor(key));
        } finally {
            c.destroy();
        }
    });

    test('the handshake trickled byte by byte succeeds and the connection then works', async () => {
        const c = await RawHttp.connect(echoServer);
        try {
            const req = upgradeRequest('/echo');
            await c.writeSplit(req.text, 1, 0);
            const res = await c.readResponse();
            assert.equal(res.status, 101);
            assert.equal(res.headers['sec-websocket-accept'], acceptFor(req.key));
            await c.write(frame({ opcode: 1, payload: 'after trickle' }));
            const reply = await c.waitFor(() => (c.buf.length >= 2 + 13 ? c.buf : undefined), 5000, 'the echo');
            assert.equal(reply.subarray(2, 15).toString(), 'after trickle');
        } finally {
            c.destroy();
        }
    });

    test('a first frame arriving in the same write as the handshake is not lost', async () => {
        const c = await RawHttp.connect(echoServer);
        try {
            const req = upgradeRequest('/echo');
            await c.send(Buffer.concat([Buffer.from(req.text, 'latin1'), frame({ opcode: 1, payload: 'eager' })]));
            const res = await c.readResponse();
            assert.equal(res.status, 101);
            const reply = await c.waitFor(() => (c.buf.length >= 7 ? c.buf : undefined), 5000, 'the echo');
            assert.equal(reply[0], 0x81);
            assert.equal(reply.subarray(2, 7).toString(), 'eager');
        } finally {
            c.destroy();
        }
    });
});

describe('subprotocol', () => {
    test('a client offering tertulia.v1 gets it echoed back', async () => {
        const res = await upgrade(server, '/ws', { 'Sec-WebSocket-Protocol': SUBPROTOCOL });
        assert.equal(res.status, 101);
        assert.equal(res.headers['sec-websocket-protocol'], SUBPROTOCOL);
        const c = await connect(server, { path: '/talking', protocol: 'v1' });
        assert.equal(c.protocol, SUBPROTOCOL);
        await c.close();
    });

    test('tertulia.v1 is chosen from a list of offers, in one header or several', async () => {
        const one = await upgrade(server, '/ws', { 'Sec-WebSocket-Protocol': `chat, superchat, ${SUBPROTOCOL}` });
        assert.equal(one.status, 101);
        assert.equal(one.headers['sec-websocket-protocol'], SUBPROTOCOL);
        const several = await upgrade(server, '/ws', { 'Sec-WebSocket-Protocol': ['chat', SUBPROTOCOL] });
        assert.equal(several.status, 101);
        assert.equal(several.headers['sec-websocket-protocol'], SUBPROTOCOL);
    });

    test('only unknown subprotocols are accepted as a legacy client with no Sec-WebSocket-Protocol header', async () => {
        const res = await upgrade(server, '/ws', { 'Sec-WebSocket-Protocol': 'chat, tertulia.v2' });
        assert.equal(res.status, 101);
        assert.equal(res.headers['sec-websocket-protocol'], undefined);

        // And it really is served as legacy: a login gets no welcome, yet the
        // room's messages arrive.
        const room = uniq('room');
        const raw = await RawWs.connect(server, '/ws', { protocol: 'chat, tertulia.v2' });
        try {
            const nick = uniq('old');
            await raw.sendText(JSON.stringify({ type: 'login', nickname: nick, room }));
            const v1 = await login(server, uniq('new'), { room });
            await waitMembers(v1, room, (m) => m.includes(nick));
            v1.send({ type: 'room', to: room, message: { text: 'hello legacy' } });
            const msg = await raw.nextMessage();
            const obj = JSON.parse(msg.data.toString('utf8'));
            assert.equal(obj.type, 'room');
            assert.equal(obj.message.text, 'hello legacy');
            await v1.close();
        } finally {
            raw.destroy();
        }
    });
});

describe('refusals', () => {
    test('a missing Sec-WebSocket-Key is refused with 400 and a one-line body', async () => {
        assertRefusal(await upgrade(server, '/ws', { 'Sec-WebSocket-Key': null }), 400);
    });

    for (const [name, key] of [
        ['not base64', '!!!!!!!!!!!!!!!!!!!!!!=='],
        ['15 bytes', crypto.randomBytes(15).toString('base64')],
        ['17 bytes', crypto.randomBytes(17).toString('base64')],
        ['empty', ''],
        ['short', 'abc'],
    ]) {
        test(`a Sec-WebSocket-Key that is ${name} is refused with 400`, async () => {
            assertRefusal(await upgrade(server, '/ws', { 'Sec-WebSocket-Key': key }), 400);
        });
    }

    for (const version of ['8', '12', '14', '0', 'banana']) {
        test(`Sec-WebSocket-Version ${version} is refused with 426 naming version 13`, async () => {
            const res = await upgrade(server, '/ws', { 'Sec-WebSocket-Version': version });
            assertRefusal(res, 426);
            assert.match(res.headers['sec-websocket-version'] || '', /^\s*13\s*$/);
        });
    }

    test('a missing Sec-WebSocket-Version is refused', async () => {
        const res = await upgrade(server, '/ws', { 'Sec-WebSocket-Version': null });
        assertRefusal(res, [400, 426]);
        if (res.status === 426) assert.match(res.headers['sec-websocket-version'] || '', /13/);
    });

    test('a missing Upgrade header at a WebSocket path is refused', async () => {
        assertRefusal(await upgrade(server, '/ws', { Upgrade: null }), [400, 426]);
    });

    test('an Upgrade to something other than websocket is refused', async () => {
        assertRefusal(await upgrade(server, '/ws', { Upgrade: 'h2c' }), [400, 426]);
    });

    test('a Connection header without the upgrade token is refused with 400', async () => {
        assertRefusal(await upgrade(server, '/ws', { Connection: 'keep-alive' }), 400);
    });

    test('an upgrade with POST is refused', async () => {
        const res = await upgrade(server, '/ws', { 'Content-Length': '0' }, { method: 'POST' });
        assertRefusal(res, [400, 405]);
    });

    test('an upgrade over HTTP/1.0 is refused', async () => {
        const res = await upgrade(server, '/ws', {}, { version: '1.0' });
        assert.notEqual(res.status, 101);
        assert.ok(res.status >= 400 && res.status < 600, `status ${res.status}`);
    });

    test('a handshake head over 8 KiB gets 431', async () => {
        const res = await upgrade(server, '/ws', { Cookie: `c=${'x'.repeat(9000)}` });
        assert.equal(res.status, 431);
    });

    test('a refused handshake does not stop the next one from succeeding', async () => {
        assertRefusal(await upgrade(server, '/ws', { 'Sec-WebSocket-Key': 'nope' }), 400);
        const c = await connect(server, { path: '/ws', protocol: 'v1' });
        assert.equal(c.protocol, SUBPROTOCOL);
        c.send({ type: 'ping', id: 'after-refusal' });
        const pong = await c.next('pong');
        assert.equal(pong.ref, 'after-refusal');
        await c.close();
    });
});
