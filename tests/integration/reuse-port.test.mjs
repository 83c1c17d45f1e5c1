// --reuse-port: several tertulia processes listen on one address (each sets
// SO_REUSEPORT before bind) and the kernel spreads new connections among
// them; without it the second process cannot bind the port and says so.

import assert from 'node:assert/strict';
import net from 'node:net';
import { test } from 'node:test';

import { HOST, connect, httpOnce, parseMetrics, startServer } from './helpers.mjs';

const T = { timeout: 60000 };

/** A port free right now on the loopback address. */
function freePort() {
    return new Promise((resolve, reject) => {
        const srv = net.createServer();
        srv.once('error', reject);
        srv.listen(0, HOST, () => {
            const { port } = srv.address();
            srv.close(() => resolve(port));
        });
    });
}

/** The process's accepted connections, asked on a connection of its own
 * (counted: each ask adds one). */
async function accepted(server) {
    const r = await httpOnce(server, 'GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    assert.equal(r.status, 200);
    return parseMetrics(r.body.toString()).get('tertulia_connections_accepted_total{tls="false"}');
}

test('two processes with --reuse-port share a port, and both get connections', T, async () => {
    const port = await freePort();
    const shared = ['--db', ':memory:', '--reuse-port', '--listen', `${HOST}:${port}`];
    const a = await startServer(shared);
    const b = await startServer(shared);
    try {
        const a0 = await accepted(a);
        const b0 = await accepted(b);
        const N = 32;
        const clients = [];
        for (let i = 0; i < N; i++) {
            const c = await connect(`ws://${HOST}:${port}/ws`);
            await c.request({ type: 'ping' }, 'pong');
            clients.push(c);
        }
        // Each count grew by its share of the N, plus the metrics request itself.
        const da = (await accepted(a)) - a0 - 1;
        const db = (await accepted(b)) - b0 - 1;
        assert.equal(da + db, N, `${da} + ${db} connections`);
        // The kernel hashes connections over both: one getting all 32 has a
        // chance of 2^-31.
        assert.ok(da > 0 && db > 0, `both processes got connections (${da}, ${db})`);
        for (const c of clients) await c.close();
    } finally {
        await a.stopClean();
        await b.stopClean();
    }
});

test('without --reuse-port a second process cannot listen on a taken port, and says why', T, async () => {
    const port = await freePort();
    const a = await startServer(['--db', ':memory:', '--listen', `${HOST}:${port}`]);
    try {
        await assert.rejects(
            startServer(['--db', ':memory:', '--reuse-port', '--listen', `${HOST}:${port}`]),
            (err) => /cannot listen on 127\.0\.0\.1:\d+: address already in use/.test(err.message),
        );
    } finally {
        await a.stopClean();
    }
});
