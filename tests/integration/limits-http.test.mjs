// HTTP/1.1 bounds: one request at a time per connection, so a pipelining
// client that never reads cannot grow the server's memory; pipelined
// requests are still answered, in order; the keep-alive timer measures
// idleness; output queued before a client's EOF is still written.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, test, before, after } from 'node:test';
import { RawHttp, startServer, WAIT } from './helpers.mjs';

function rssBytes(pid) {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return Number(m[1]) * 1024;
}

const REQ = 'GET / HTTP/1.1\r\nHost: x\r\n\r\n';

describe('HTTP pipelining', () => {
    let server;
    before(async () => {
        server = await startServer(['--db', ':memory:']);
    });
    after(async () => {
        await server.stopClean();
    });

    test('a pipelining client that never reads does not grow the server past 64 MiB', { timeout: 60000 }, async () => {
        const c = await RawHttp.connect(server);
        c.sock.pause(); // never read a response
        const chunk = Buffer.from(REQ.repeat(1000)); // 27 KB of requests per write
        const LIMIT = 44 * 1024 * 1024; // what made the old server reach 1.7 GB
        let sent = 0;
        let stalled = false;
        // Write until 44 MB are sent or the socket stops draining: a server
        // that serves one request at a time stops reading, and TCP pushes
        // back once the kernel's buffers are full.
        while (sent < LIMIT && !stalled) {
            if (!c.sock.write(chunk)) {
                stalled = await new Promise((resolve) => {
                    const t = setTimeout(() => resolve(true), 1500);
                    c.sock.once('drain', () => {
                        clearTimeout(t);
                        resolve(false);
                    });
                });
            }
            sent += chunk.length;
        }
        const rss = rssBytes(server.proc.pid);
        c.destroy();
        assert.ok(rss < 64 * 1024 * 1024, `server RSS ${(rss / 1048576).toFixed(1)} MiB after ${(sent / 1048576).toFixed(1)} MB of pipelined requests`);
        assert.ok(stalled, `the server stopped reading (sent ${sent} bytes without a stall)`);
    });

    test('pipelined requests are all answered, in order', async () => {
        const c = await RawHttp.connect(server);
        try {
            const paths = ['/', '/nope-1', '/', '/nope-2', '/'];
            await c.send(paths.map((p) => `GET ${p} HTTP/1.1\r\nHost: x\r\n\r\n`).join('').repeat(10));
            for (let i = 0; i < 10 * paths.length; i++) {
                const r = await c.readResponse();
                assert.equal(r.status, paths[i % paths.length] === '/' ? 200 : 404, `response ${i}`);
            }
        } finally {
            c.destroy();
        }
    });

    test('a request followed at once by the end of input is still answered', async () => {
        const c = await RawHttp.connect(server);
        try {
            await c.send(REQ + REQ);
            c.sock.end(); // half-close: the client still reads
            assert.equal((await c.readResponse()).status, 200);
            assert.equal((await c.readResponse()).status, 200);
            await c.waitEnd();
        } finally {
            c.destroy();
        }
    });

    test('empty lines before a request line are ignored', async () => {
        const c = await RawHttp.connect(server);
        try {
            await c.send('\r\n\r\n' + REQ);
            assert.equal((await c.readResponse()).status, 200);
        } finally {
            c.destroy();
        }
    });
});

describe('HTTP keep-alive', () => {
    let server;
    before(async () => {
        server = await startServer(['--db', ':memory:', '--head-timeout', '1']);
    });
    after(async () => {
        await server.stopClean();
    });

    test('an idle keep-alive connection is closed after the head timeout, without a refusal line', { timeout: 20000 }, async () => {
        const c = await RawHttp.connect(server);
        try {
            await c.send(REQ);
            assert.equal((await c.readResponse()).status, 200);
            await c.waitEnd(WAIT);
        } finally {
            c.destroy();
        }
        assert.doesNotMatch(server.stderr, /request head timeout/, 'idleness is not logged as a slow head');
    });
});
