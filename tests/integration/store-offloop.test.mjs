// SQLite never runs on the event loop: while another process holds the
// database's write lock (a `sqlite3` shell in a transaction, a backup), the
// server keeps serving HTTP and WebSocket control frames, and the message
// that waits for the lock is stored and delivered once the lock goes.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { connect, httpOnce, login, startServer, uniq, WAIT } from './helpers.mjs';

let server;
let db;
before(async () => {
    server = await startServer(['--db', 'history.db']);
    db = path.join(server.cwd, 'history.db');
});
after(async () => {
    await server?.stopClean();
});

/** A sqlite3 shell holding the write lock until release() is called. */
async function holdWriteLock(file) {
    const sh = spawn('sqlite3', [file], { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    sh.stdout.on('data', (d) => (out += d));
    const exited = new Promise((resolve) => sh.on('exit', resolve));
    sh.stdin.write("BEGIN IMMEDIATE;\nSELECT 'locked';\n");
    const t0 = Date.now();
    while (!out.includes('locked')) {
        if (Date.now() - t0 > WAIT) throw new Error('sqlite3 did not take the lock');
        await new Promise((r) => setTimeout(r, 10));
    }
    return {
        async release() {
            sh.stdin.end('ROLLBACK;\n');
            await exited;
        },
    };
}

test('while another process holds the database lock, the loop keeps serving and the message waits for the lock', { timeout: 30000 }, async () => {
    const room = uniq('lock');
    const a = await login(server, uniq('la'), { room });
    const b = await login(server, uniq('lb'), { room });
    const lock = await holdWriteLock(db);
    let released = false;
    try {
        a.send({ type: 'room', to: room, id: 'm1', message: { text: 'waits for the lock' } });
        // The loop is free: an HTTP request is answered, a WebSocket ping
        // frame gets its pong, and a new client completes its handshake,
        // all while the commit waits (busy_timeout is 2 s; the old server
        // waited for it on the loop). Chat requests wait their turn behind
        // the message, as the order of the chat requires.
        const t0 = Date.now();
        const res = await httpOnce(server, 'GET / HTTP/1.1\r\nHost: x\r\n\r\n', { timeoutMs: 1500 });
        assert.equal(res.status, 200);
        const pong = new Promise((resolve) => b.ws.once('pong', resolve));
        b.ws.ping('alive');
        await pong;
        const c = await connect(server);
        const loopMs = Date.now() - t0;
        assert.ok(loopMs < 1500, `served in ${loopMs} ms while the lock was held`);
        await lock.release();
        released = true;
        // The message was stored (once the lock went) and delivered.
        const ack = await a.next((m) => (m.type === 'ack' || m.type === 'error') && m.ref === 'm1');
        assert.equal(ack.type, 'ack', JSON.stringify(ack));
        assert.equal((await b.next('room')).message.text, 'waits for the lock');
        const h = await b.request({ type: 'history', room }, 'history');
        assert.deepEqual(h.messages.map((m) => m.id), [ack.message_id]);
        await c.close();
    } finally {
        if (!released) await lock.release();
    }
    await Promise.all([a.close(), b.close()]);
});
