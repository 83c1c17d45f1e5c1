// Clean shutdown: on SIGTERM or SIGINT every WebSocket gets close 1001 and the
// process exits 0 within a few seconds, even with clients that never answer.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { RawHttp, RawWs, connect, legacyLogin, login, startServer, uniq } from './helpers.mjs';

const BOUND_MS = 5000; // "a few seconds"

for (const signal of ['SIGTERM', 'SIGINT']) {
    test(`${signal} closes every WebSocket with 1001 and the process exits 0`, async () => {
        const server = await startServer(['--echo']);
        const room = uniq('bye');
        const a = await login(server, uniq('a'), { room });
        const b = await login(server, uniq('b'), { room });
        const old = await legacyLogin(server, uniq('old'), room);
        const echo = await connect(server, { path: '/echo', protocol: 'legacy', raw: true });
        const raw = await RawWs.connect(server, '/talking');
        const stopped = server.stop(signal, BOUND_MS);
        stopped.catch(() => {}); // awaited below; a hang fails there
        const infos = await Promise.all([a, b, old, echo].map((c) => c.waitClose(BOUND_MS)));
        for (const info of infos) assert.equal(info.code, 1001, `close ${info.code} ${info.reason}`);
        const rawInfo = await raw.waitClose(BOUND_MS);
        assert.equal(rawInfo.code, 1001);
        assert.ok(rawInfo.reason.length > 0, 'the close carries a short reason');
        const r = await stopped;
        assert.equal(r.signal, null, `killed by ${r.signal}`);
        assert.equal(r.code, 0, `exit code; stderr tail:\n${server.tail()}`);
        assert.equal(server.sanitizerReport(), null);
    });
}

test('clients that never answer the close do not keep the server from exiting', async () => {
    const server = await startServer();
    const deaf = [];
    for (let i = 0; i < 5; i++) {
        const r = await RawWs.connect(server, '/ws', { protocol: 'tertulia.v1' });
        await r.sendText(JSON.stringify({ type: 'login', nickname: uniq('deaf') }));
        deaf.push(r);
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
    for (const r of deaf) r.pause(); // never read again, never send the closing handshake
    const r = await server.stop('SIGTERM', BOUND_MS);
    assert.equal(r.code, 0);
    assert.ok(r.ms < BOUND_MS, `exited after ${r.ms} ms`);
    for (const d of deaf) d.destroy();
});

test('an idle keep-alive HTTP connection and a half-sent request do not keep the server from exiting', async () => {
    const server = await startServer();
    const idle = await RawHttp.connect(server);
    await idle.send('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
    assert.equal((await idle.readResponse()).status, 200);
    const half = await RawHttp.connect(server);
    await half.send('GET / HTTP/1.1\r\nHost: x\r\n');
    const r = await server.stop('SIGTERM', BOUND_MS);
    assert.equal(r.code, 0);
    await idle.waitEnd(BOUND_MS);
    await half.waitEnd(BOUND_MS);
});

test('a client connecting after shutdown began is not served', async () => {
    const server = await startServer();
    const c = await login(server, uniq('last'));
    const stopped = server.stop('SIGTERM', BOUND_MS);
    stopped.catch(() => {});
    assert.equal((await c.waitClose(BOUND_MS)).code, 1001);
    await stopped;
    await assert.rejects(connect(server, { path: '/ws' }), 'nothing listens once the server exited');
});
