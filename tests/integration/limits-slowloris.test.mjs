// Slowloris: hundreds of connections that open a request and trickle its
// header bytes forever, each byte just in time to look alive. The request
// head has to be complete within --head-timeout of its start however slowly
// it arrives, so they are all dropped, one coarse sweep timer does it, and
// meanwhile a normal client logs in and chats as usual. The refusals are
// logged, rate-limited (50 lines a second, then a count of the rest).

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { RawHttp, login, sleep, startServer, uniq } from './helpers.mjs';

const COUNT = 500;
const HEAD_TIMEOUT_S = 3;
const TRICKLE_MS = 250; // far below the timeout: an idle timer would never fire

test(`${COUNT} slowloris connections do not stop a normal client from chatting, and are dropped after --head-timeout`, { timeout: 60000 }, async (t) => {
    const server = await startServer(['--head-timeout', String(HEAD_TIMEOUT_S)]);
    const socks = [];
    let ticker;
    try {
        // Open them in batches (a burst of 500 SYNs is fine for the server
        // but needlessly hard on the shared test machine).
        for (let i = 0; i < COUNT; i += 50) {
            const batch = await Promise.all(Array.from({ length: Math.min(50, COUNT - i) }, () => RawHttp.connect(server)));
            for (const c of batch) {
                c.opened = Date.now();
                c.sent = 0;
                c.endedAt = null;
                c.endedPromise.then(() => {
                    c.endedAt = Date.now();
                });
                socks.push(c);
            }
        }
        await Promise.all(socks.map((c) => c.send('GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ')));
        // One timer trickles one more header byte into every open socket.
        ticker = setInterval(() => {
            for (const c of socks) {
                if (c.ended) continue;
                c.sock.write('a', () => {});
                c.sent += 1;
            }
        }, TRICKLE_MS);

        // Meanwhile, normal clients log in and chat without noticing.
        const room = uniq('calm');
        const t0 = Date.now();
        const ana = await login(server, uniq('ana'), { room });
        const ben = await login(server, uniq('ben'), { room });
        await ana.next((m) => m.type === 'member_joined' && m.nickname === ben.nickname);
        for (let i = 0; i < 5; i++) {
            ana.send({ type: 'room', to: room, message: { text: `hola ${i}` } });
            assert.equal((await ben.next('room')).message.text, `hola ${i}`);
        }
        const chatMs = Date.now() - t0;
        const stillOpen = socks.filter((c) => !c.ended).length;
        t.diagnostic(`two clients logged in and exchanged 5 messages in ${chatMs} ms with ${stillOpen} slowloris connections open`);
        assert.ok(stillOpen > COUNT * 0.9, `the chat happened while the slowloris connections were open (${stillOpen} open)`);

        // Every trickling connection is dropped: not before the timeout
        // (less the sweep's one-second granularity), not long after it.
        const deadline = Date.now() + (HEAD_TIMEOUT_S + 8) * 1000;
        while (socks.some((c) => !c.ended) && Date.now() < deadline) await sleep(100);
        const open = socks.filter((c) => !c.ended);
        assert.equal(open.length, 0, `${open.length} slowloris connections still open ${HEAD_TIMEOUT_S + 8} s after they started`);
        const lifetimes = socks.map((c) => c.endedAt - c.opened).sort((a, b) => a - b);
        t.diagnostic(`slowloris connections lived ${lifetimes[0]}–${lifetimes[lifetimes.length - 1]} ms; each sent up to ${Math.max(...socks.map((c) => c.sent))} trickled bytes`);
        assert.ok(lifetimes[0] >= (HEAD_TIMEOUT_S - 1) * 1000, `none dropped before the timeout (shortest ${lifetimes[0]} ms)`);
        assert.ok(lifetimes[lifetimes.length - 1] <= (HEAD_TIMEOUT_S + 6) * 1000, `all dropped soon after the timeout (longest ${lifetimes[lifetimes.length - 1]} ms)`);
        assert.ok(Math.min(...socks.map((c) => c.sent)) >= 4, 'every connection kept trickling bytes until it was dropped');

        // The refusals are in the log, rate-limited; what was held back is
        // counted by the next sweep, a second later.
        const countDeadline = Date.now() + 3000;
        while (!/more refusals not logged/.test(server.stderr) && Date.now() < countDeadline) await sleep(100);
        const lines = server.stderr.split('\n');
        const logged = lines.filter((l) => /request head timeout/.test(l)).length;
        const suppressed = lines.map((l) => /(\d+) more refusals not logged/.exec(l)).filter(Boolean).reduce((n, m) => n + Number(m[1]), 0);
        t.diagnostic(`log: ${logged} timeout lines, ${suppressed} more counted but not logged`);
        assert.ok(logged >= 1 && logged < COUNT, `the timeouts are logged, but not one line each (${logged} lines)`);
        assert.ok(logged + suppressed >= COUNT, `every timeout is logged or counted (${logged} + ${suppressed})`);

        // The chat never noticed.
        ben.send({ type: 'room', to: room, message: { text: 'after the siege' } });
        assert.equal((await ana.next((m) => m.type === 'room' && m.from === ben.nickname)).message.text, 'after the siege');
        await Promise.all([ana.close(), ben.close()]);
    } finally {
        clearInterval(ticker);
        for (const c of socks) c.destroy();
        await server.stopClean();
    }
});

test('a complete request head is not cut by --head-timeout, and an idle keep-alive connection is', { timeout: 30000 }, async () => {
    const server = await startServer(['--head-timeout', '2']);
    try {
        // Slow but finishing in time: the head arrives in 1.2 s.
        const c = await RawHttp.connect(server);
        const head = 'GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n';
        await c.writeSplit(head, 4, 1200 / (head.length / 4));
        const res = await c.readResponse();
        assert.equal(res.status, 200);
        // The clock restarts with each request: a second one 1 s later is served.
        await sleep(1000);
        await c.send(head);
        assert.equal((await c.readResponse()).status, 200);
        // Then idle: dropped after the timeout.
        const t0 = Date.now();
        await c.waitEnd(6000);
        const idle = Date.now() - t0;
        assert.ok(idle >= 1000, `an idle keep-alive connection is dropped after the timeout, not at once (${idle} ms)`);
    } finally {
        await server.stopClean();
    }
});
