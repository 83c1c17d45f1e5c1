// Connection caps: --max-connections bounds the WebSockets open at once and
// --max-per-ip those from one client address. Past either, the upgrade gets
// 503 with Retry-After (and the refusal is logged); plain HTTP is still
// served, and a place freed is a place taken again.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { connect, httpOnce, login, sleep, startServer, uniq, upgradeRequest } from './helpers.mjs';

/** Waits until the server's log matches re (log lines arrive through a pipe, a little later). */
async function waitLog(server, re, ms = 3000) {
    const end = Date.now() + ms;
    while (!re.test(server.stderr)) {
        if (Date.now() > end) assert.match(server.stderr, re);
        await sleep(20);
    }
}

function upgrade(server, headers = {}) {
    return httpOnce(server, upgradeRequest('/ws', { 'Sec-WebSocket-Protocol': 'tertulia.v1', ...headers }).text);
}

/** Retries an upgrade until it is accepted (the server frees a place when the close completes). */
async function connectEventually(server, opts, what) {
    const deadline = Date.now() + 5000;
    for (;;) {
        try {
            return await connect(server, opts);
        } catch (err) {
            if (!/503/.test(err.message) || Date.now() > deadline) throw new Error(`${what}: ${err.message}`);
            await sleep(50);
        }
    }
}

test('--max-connections: past it the upgrade gets 503, HTTP is still served, and a freed place can be taken', async () => {
    const server = await startServer(['--max-connections', '3', '--max-per-ip', '0']);
    try {
        const room = uniq('full');
        const clients = [];
        for (let i = 0; i < 3; i++) clients.push(await login(server, uniq(`c${i}`), { room }));
        assert.equal(clients[0].welcome.limits.max_connections, 3);

        const res = await upgrade(server);
        assert.equal(res.status, 503);
        assert.ok(Number(res.headers['retry-after']) > 0, 'a Retry-After header');
        assert.match(res.body.toString(), /too many connections|full/i);
        await assert.rejects(connect(server), /503/);
        await waitLog(server, /refused with 503: server full/);

        // Static files are not WebSockets: still served.
        const page = await httpOnce(server, 'GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n');
        assert.equal(page.status, 200);

        // The ones inside keep chatting.
        clients[0].send({ type: 'room', to: room, message: { text: 'still here' } });
        assert.equal((await clients[2].next('room')).message.text, 'still here');

        // One leaves: one place frees up.
        await clients[1].close();
        const newcomer = await connectEventually(server, {}, 'after a close');
        await assert.rejects(connect(server), /503/, 'and only one');
        await newcomer.close();
        await Promise.all([clients[0].close(), clients[2].close()]);
    } finally {
        await server.stopClean();
    }
});

test('--max-per-ip: past it an address gets 503 while another address still gets in', async () => {
    const server = await startServer(['--max-per-ip', '2']);
    try {
        const a = await connect(server);
        const b = await connect(server);
        const res = await upgrade(server);
        assert.equal(res.status, 503);
        assert.match(res.body.toString(), /address/);
        assert.ok(Number(res.headers['retry-after']) > 0);
        await waitLog(server, /refused with 503: too many connections from this address/);

        // 127.0.0.2 is another client address on the loopback network.
        const other = await connect(server, { wsOptions: { localAddress: '127.0.0.2' } });
        other.send({ type: 'login', nickname: uniq('other') });
        assert.equal((await other.next('welcome')).limits.max_per_ip, 2);
        const other2 = await connect(server, { wsOptions: { localAddress: '127.0.0.2' } });
        await assert.rejects(connect(server, { wsOptions: { localAddress: '127.0.0.2' } }), /503/);

        await a.close();
        const again = await connectEventually(server, {}, '127.0.0.1 after a close');
        await Promise.all([b.close(), again.close(), other.close(), other2.close()]);
    } finally {
        await server.stopClean();
    }
});
