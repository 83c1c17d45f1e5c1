// Keepalive and the idle timeout: a WebSocket silent for --ping-interval is
// pinged; one that does not answer within as long again is closed, and its
// rooms hear member_left with reason "timeout". A client that answers (any
// WebSocket library does) stays as long as it likes.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { RawWs, frame, login, parseClosePayload, sleep, startServer, uniq } from './helpers.mjs';

/** Waits until the server's log matches re (log lines arrive through a pipe, a little later). */
async function waitLog(server, re, ms = 3000) {
    const end = Date.now() + ms;
    while (!re.test(server.stderr)) {
        if (Date.now() > end) assert.match(server.stderr, re);
        await sleep(20);
    }
}

test('a client that never answers pings is closed and the room sees member_left with reason timeout; one that answers stays', { timeout: 30000 }, async (t) => {
    const server = await startServer(['--ping-interval', '1', '--resume-seconds', '0']); // member_left at the close, no grace time
    try {
        const room = uniq('idle');
        const watcher = await login(server, uniq('watcher'), { room }); // `ws` answers pings by itself

        // Deaf: logs in, then never sends another byte.
        const deafNick = uniq('deaf');
        const deaf = await RawWs.connect(server, '/ws', { protocol: 'tertulia.v1' });
        await deaf.sendText(JSON.stringify({ type: 'login', nickname: deafNick, room }));
        // Polite: answers every ping with a pong, and says nothing else.
        const politeNick = uniq('polite');
        const polite = await RawWs.connect(server, '/ws', { protocol: 'tertulia.v1' });
        await polite.sendText(JSON.stringify({ type: 'login', nickname: politeNick, room }));
        let pongs = 0;
        const answer = async () => {
            for (;;) {
                const ping = await polite.nextFrame((f) => f.opcode === 9, 10000).catch(() => null);
                if (!ping) return;
                await polite.write(frame({ opcode: 10, payload: ping.payload })).catch(() => {});
                pongs += 1;
            }
        };
        const answering = answer();
        await watcher.next((m) => m.type === 'member_joined' && m.nickname === deafNick);
        await watcher.next((m) => m.type === 'member_joined' && m.nickname === politeNick);
        const t0 = Date.now();

        const ping = await deaf.nextFrame((f) => f.opcode === 9, 5000);
        assert.ok(ping.payload.length <= 125);
        const left = await watcher.next((m) => m.type === 'member_left' && m.nickname === deafNick, 8000);
        assert.equal(left.reason, 'timeout');
        assert.equal(left.room, room);
        const ms = Date.now() - t0;
        t.diagnostic(`the deaf client was dropped ${ms} ms after it went silent`);
        assert.ok(ms >= 1000, `not before a ping and its wait (${ms} ms)`);
        await deaf.waitEnd(5000);
        const close = deaf.frames.items.find((f) => f.opcode === 8);
        if (close) assert.equal(parseClosePayload(close.payload).code, 1001);
        await waitLog(server, /no answer to keepalive ping/);

        // The polite one and the watcher are still here after several intervals.
        await sleep(3500);
        assert.ok(pongs >= 2, `the polite client was pinged and answered (${pongs} pongs)`);
        assert.ok(!polite.ended, 'a client that answers pings stays connected');
        await watcher.expectNothing(0, (m) => m.type === 'member_left' && m.nickname !== deafNick);
        const who = await watcher.request({ type: 'who', room }, 'members');
        assert.deepEqual(who.members.sort(), [watcher.nickname, politeNick].sort());
        watcher.send({ type: 'room', to: room, message: { text: 'anyone?' } });
        const heard = await polite.nextFrame((f) => f.opcode === 1 && JSON.parse(f.payload.toString()).type === 'room');
        assert.equal(JSON.parse(heard.payload.toString()).message.text, 'anyone?');
        polite.destroy();
        await answering;
        await watcher.close();
    } finally {
        await server.stopClean();
    }
});
