// Origins: a browser page on another site must not open a WebSocket to the
// chat with its visitor's connection. By default the server accepts its own
// origin (Origin's host:port equals Host) and clients that send no Origin
// (programs); --allowed-origin adds exact origins ('*': any). Others get 403,
// and the refusal is logged.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { connect, httpOnce, sleep, startServer, upgradeRequest } from './helpers.mjs';

/** Waits until the server's log matches re (log lines arrive through a pipe, a little later). */
async function waitLog(server, re, ms = 3000) {
    const end = Date.now() + ms;
    while (!re.test(server.stderr)) {
        if (Date.now() > end) assert.match(server.stderr, re);
        await sleep(20);
    }
}

/** The status of an upgrade to /ws with these headers (the connection is then dropped). */
function upgradeStatus(server, headers) {
    return httpOnce(server, upgradeRequest('/ws', { 'Sec-WebSocket-Protocol': 'tertulia.v1', ...headers }).text);
}

test('an upgrade from a foreign Origin gets 403; the own origin and clients without Origin pass', async () => {
    const server = await startServer();
    try {
        const host = `127.0.0.1:${server.port}`;
        for (const origin of ['http://evil.example', `http://127.0.0.1:${server.port + 1}`, 'http://127.0.0.1', 'null', `http://${host}.evil.example`, 'garbage']) {
            const res = await upgradeStatus(server, { Host: host, Origin: origin });
            assert.equal(res.status, 403, `Origin ${origin} → ${res.status}`);
            assert.match(res.body.toString(), /origin/i);
        }
        assert.equal((await upgradeStatus(server, { Host: host, Origin: `http://${host}` })).status, 101, 'own origin');
        assert.equal((await upgradeStatus(server, { Host: host, Origin: `https://${host}` })).status, 101, 'own origin behind a TLS proxy');
        assert.equal((await upgradeStatus(server, { Host: host })).status, 101, 'no Origin');
        // The same with a real client library.
        await assert.rejects(connect(server, { wsOptions: { origin: 'http://evil.example' } }), /403/);
        const ok = await connect(server, { wsOptions: { origin: `http://${host}` } });
        await ok.close();
        await waitLog(server, /refused with 403: origin not allowed: http:\/\/evil\.example/);
    } finally {
        await server.stopClean();
    }
});

test('--allowed-origin lets the listed origins in, and only them', async () => {
    const server = await startServer(['--allowed-origin', 'https://chat.example.org', '--allowed-origin', 'http://other.example:8080']);
    try {
        const host = `127.0.0.1:${server.port}`;
        for (const origin of ['https://chat.example.org', 'http://other.example:8080', `http://${host}`]) {
            assert.equal((await upgradeStatus(server, { Host: host, Origin: origin })).status, 101, origin);
        }
        for (const origin of ['https://chat.example.org.evil.example', 'http://chat.example.org', 'http://other.example', 'https://evil.example']) {
            assert.equal((await upgradeStatus(server, { Host: host, Origin: origin })).status, 403, origin);
        }
        const c = await connect(server, { wsOptions: { origin: 'https://chat.example.org' } });
        c.send({ type: 'ping', id: 'x' });
        assert.equal((await c.next('pong')).ref, 'x');
        await c.close();
    } finally {
        await server.stopClean();
    }
});

test("--allowed-origin '*' accepts any origin", async () => {
    const server = await startServer(['--allowed-origin', '*']);
    try {
        assert.equal((await upgradeStatus(server, { Origin: 'https://anywhere.example' })).status, 101);
    } finally {
        await server.stopClean();
    }
});
