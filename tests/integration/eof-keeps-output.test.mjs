// A client that sends its requests and then ends its side of the TCP
// connection (half-close) is still sent every reply: the server writes
// what is queued before it closes, however much that is (it used to drop
// the backlog the moment it read the end of input).
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { login, RawWs, startServer, SUBPROTOCOL, uniq } from './helpers.mjs';

let server;
before(async () => {
    // Room for the whole backlog in the queue: the test is about the end of
    // input, not the slow-consumer limit.
    server = await startServer(['--db', ':memory:', '--rate-limit', '0', '--max-queue', '64M']);
});
after(async () => {
    await server?.stopClean();
});

test('replies queued before a client ends its side still reach it, all of them', { timeout: 60000 }, async () => {
    const room = uniq('eof');
    const seed = await login(server, uniq('seed'), { room });
    const text = 'x'.repeat(4000);
    for (let i = 0; i < 50; i++) seed.send({ type: 'room', to: room, id: `s${i}`, message: { text } });
    for (let i = 0; i < 50; i++) assert.equal((await seed.next((m) => m.ref === `s${i}`)).type, 'ack');

    const raw = await RawWs.connect(server, '/ws', { protocol: SUBPROTOCOL });
    await raw.sendText(JSON.stringify({ type: 'login', nickname: uniq('eofc'), room }));
    for (;;) {
        const m = JSON.parse((await raw.nextMessage()).data.toString());
        if (m.type === 'joined') break;
    }
    // 80 pages of about 200 KB each (16 MB), far more than the kernel's buffers
    // hold while the client does not read; then the end of input.
    const N = 80;
    raw.pause();
    for (let i = 0; i < N; i++) await raw.sendText(JSON.stringify({ type: 'history', room, limit: 200, id: `h${i}` }));
    raw.sock.end();
    // Let the server read the end of input while its backlog waits: a ping
    // round trip on another connection goes through its loop after it.
    seed.send({ type: 'ping', id: 'sync' });
    await seed.next((m) => m.ref === 'sync');
    raw.resume();
    const got = new Set();
    while (got.size < N) {
        const msg = await raw.nextMessage();
        const m = JSON.parse(msg.data.toString());
        if (m.type === 'history') {
            assert.equal(m.messages.length, 50);
            got.add(m.ref);
        }
    }
    assert.equal(got.size, N);
    await seed.close();
});
