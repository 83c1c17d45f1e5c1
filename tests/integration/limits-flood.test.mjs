// Flood control: a token bucket per connection for chat messages (room,
// private) and a five times larger one for every request. Over it a request
// gets `rate_limited` with a retry hint and has no effect; the others in the
// room still get every message; a client that keeps flooding (more than 100
// refusals within 10 s) is closed with 1008; legacy clients' refused messages
// are dropped and logged; --rate-limit 0 turns it all off.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { legacyLogin, login, sleep, startServer, uniq, waitMembers } from './helpers.mjs';

/** Waits until the server's log matches re (log lines arrive through a pipe, a little later). */
async function waitLog(server, re, ms = 3000) {
    const end = Date.now() + ms;
    while (!re.test(server.stderr)) {
        if (Date.now() > end) assert.match(server.stderr, re);
        await sleep(20);
    }
}

// Small numbers so the tests are quick: 5 messages at once, 5 a second;
// requests: 25 at once, 25 a second.
const BURST = 5;
const RATE = 5;

let server;
before(async () => {
    server = await startServer(['--rate-burst', String(BURST), '--rate-limit', String(RATE), '--resume-seconds', '0']); // member_left at the close, no grace time
});
after(async () => {
    await server?.stopClean();
});

/** Room messages from `from` in c's inbox (consumed), in order of arrival. */
function roomMessagesFrom(c, from) {
    const got = c.inbox.items.filter((m) => m.type === 'room' && m.from === from);
    c.inbox.items = c.inbox.items.filter((m) => !(m.type === 'room' && m.from === from));
    return got;
}

describe('a flooding client', () => {
    test('is rate-limited while the others in its room still get every message', { timeout: 30000 }, async () => {
        const room = uniq('flood');
        const flooder = await login(server, uniq('flooder'), { room });
        const ana = await login(server, uniq('ana'), { room });
        const ben = await login(server, uniq('ben'), { room });
        const old = await legacyLogin(server, uniq('old'), room);
        await waitMembers(ana, room, (m) => m.length === 4);

        // The flood: 40 messages at once, each with an id.
        const N = 40;
        for (let i = 0; i < N; i++) flooder.send({ type: 'room', to: room, message: { text: `spam ${i}` }, id: `s${i}` });
        // Meanwhile ana talks at a normal pace.
        const anaTexts = [];
        for (let i = 0; i < 8; i++) {
            anaTexts.push(`ana says ${i}`);
            ana.send({ type: 'room', to: room, message: { text: anaTexts[i] }, id: `a${i}` });
            await sleep(250);
        }

        // Every flood message is answered: an ack, or rate_limited with its ref.
        const accepted = new Map(); // ref -> message id
        const refused = [];
        for (let i = 0; i < N; i++) {
            const m = await flooder.next((x) => (x.type === 'ack' || x.type === 'error') && x.ref === `s${i}`);
            if (m.type === 'ack') {
                accepted.set(m.ref, m.message_id);
            } else {
                assert.equal(m.code, 'rate_limited', JSON.stringify(m));
                assert.ok(Number.isInteger(m.retry_after_ms) && m.retry_after_ms > 0 && m.retry_after_ms <= 1000 / RATE, `a retry hint of at most one refill: ${JSON.stringify(m)}`);
                assert.match(m.message, /wait \d+ ms/);
                refused.push(m.ref);
            }
        }
        assert.ok(accepted.size >= BURST, `the burst passes (${accepted.size} accepted)`);
        assert.ok(accepted.size < N / 2, `most of the flood is refused (${accepted.size} accepted)`);
        for (let i = 0; i < BURST; i++) assert.ok(accepted.has(`s${i}`), `the first ${BURST} are accepted`);
        const acceptedTexts = [...accepted.keys()].map((ref) => `spam ${ref.slice(1)}`);

        // Everyone, the sender and the legacy client included, got exactly the
        // accepted flood messages, in order, and every message of ana.
        for (const c of [ana, ben, old, flooder]) {
            for (const text of anaTexts) {
                const m = await c.next((x) => x.type === 'room' && x.message.text === text);
                assert.equal(m.from, ana.nickname);
            }
            const fromFlooder = roomMessagesFrom(c, flooder.nickname);
            assert.deepEqual(fromFlooder.map((m) => m.message.text), acceptedTexts, `${c.label} got exactly the accepted flood messages`);
            assert.deepEqual(fromFlooder.map((m) => m.id), [...accepted.values()]);
        }
        for (const c of [ana, ben]) await c.expectNothing(100, (m) => m.type === 'error');
        await old.expectNothing(0, (m) => m.type !== 'room');

        // Not closed: 35 refusals is not a persistent flood. After the hint's
        // wait the flooder may talk again.
        assert.ok(flooder.isOpen);
        await sleep(1000 / RATE + 50);
        flooder.send({ type: 'room', to: room, message: { text: 'calmer now' }, id: 'calm' });
        assert.equal((await flooder.next((x) => x.type === 'ack' || (x.type === 'error' && x.ref === 'calm'))).type, 'ack');
        assert.equal((await ben.next((x) => x.type === 'room' && x.from === flooder.nickname)).message.text, 'calmer now');

        // The refusals were logged once for the window, not once each.
        await waitLog(server, new RegExp(`${flooder.nickname}.*rate limit`));
        const lines = server.stderr.split('\n').filter((l) => l.includes(flooder.nickname) && /rate limit/.test(l));
        assert.equal(lines.length, 1, `one log line for the flood:\n${lines.join('\n')}`);
        await Promise.all([flooder.close(), ana.close(), ben.close(), old.close()]);
    });

    test('that keeps flooding is closed with 1008, and the room is told it left', { timeout: 30000 }, async () => {
        const room = uniq('flood2');
        const flooder = await login(server, uniq('pest'), { room });
        const ana = await login(server, uniq('ana'), { room });
        for (let i = 0; i < 300; i++) flooder.send({ type: 'room', to: room, message: { text: `spam ${i}` }, id: `p${i}` });
        const info = await flooder.waitClose(10000);
        assert.equal(info.code, 1008, `close ${info.code} ${info.reason}`);
        assert.match(info.reason, /flood/);
        const errors = flooder.inbox.items.filter((m) => m.type === 'error');
        assert.ok(errors.length > 100 && errors.every((e) => e.code === 'rate_limited'), `refused with rate_limited before the close (${errors.length} errors)`);
        const left = await ana.next((m) => m.type === 'member_left' && m.nickname === flooder.nickname);
        assert.equal(left.room, room);
        // The room got the accepted few and nothing else.
        const got = roomMessagesFrom(ana, flooder.nickname);
        assert.ok(got.length >= BURST && got.length < 20, `the room got only the accepted messages (${got.length})`);
        // The room works on.
        const ben = await login(server, uniq('ben'), { room });
        ben.send({ type: 'room', to: room, message: { text: 'peace' } });
        assert.equal((await ana.next((m) => m.type === 'room' && m.from === ben.nickname)).message.text, 'peace');
        await waitLog(server, /closing with 1008: flooding/);
        await Promise.all([ana.close(), ben.close()]);
    });

    test('every request counts: a burst of pings gets rate_limited past the request budget', { timeout: 30000 }, async () => {
        const c = await login(server, uniq('pinger'));
        const N = 60; // the request budget is 25 at once
        for (let i = 0; i < N; i++) c.send({ type: 'ping', id: `q${i}` });
        let pongs = 0;
        let limited = 0;
        for (let i = 0; i < N; i++) {
            const m = await c.next((x) => x.ref === `q${i}`);
            if (m.type === 'pong') pongs += 1;
            else {
                assert.equal(m.code, 'rate_limited');
                assert.ok(m.retry_after_ms > 0);
                limited += 1;
            }
        }
        // The login took one token of the 25.
        assert.ok(pongs >= BURST * 5 - 1 && pongs < N, `${pongs} answered, ${limited} refused`);
        await sleep(200);
        assert.equal((await c.request({ type: 'ping' }, 'pong')).type, 'pong', 'the connection keeps working');
        await c.close();
    });

    test('a legacy client over the limit has its messages dropped and logged, and no error frame is sent to it', { timeout: 30000 }, async () => {
        const room = uniq('oldflood');
        const watcher = await login(server, uniq('watch'), { room });
        const old = await legacyLogin(server, uniq('oldspam'), room);
        await watcher.next((m) => m.type === 'member_joined' && m.nickname === old.nickname);
        for (let i = 0; i < 20; i++) old.send({ type: 'room', to: room, message: { text: `old ${i}` } });
        await watcher.next((m) => m.type === 'room' && m.message.text === `old ${BURST - 1}`);
        await sleep(300);
        const seen = roomMessagesFrom(watcher, old.nickname).length + 1;
        assert.ok(seen >= BURST && seen < 20, `the watcher got only the accepted ones (${seen})`);
        const own = old.inbox.drain();
        assert.ok(own.every((m) => m.type === 'room'), `the legacy client got only room frames: ${JSON.stringify(own.slice(0, 3))}`);
        assert.equal(own.length, seen, 'its own echoes are exactly the accepted messages');
        await waitLog(server, new RegExp(`legacy .*${old.nickname}.*dropped.*rate_limited`));
        await Promise.all([watcher.close(), old.close()]);
    });
});

test('--rate-limit 0 turns flood control off', { timeout: 30000 }, async () => {
    const srv = await startServer(['--rate-limit', '0']);
    try {
        const room = uniq('bench');
        const a = await login(srv, uniq('a'), { room });
        const b = await login(srv, uniq('b'), { room });
        assert.equal(a.welcome.limits.rate_limit, 0);
        const N = 500;
        for (let i = 0; i < N; i++) a.send({ type: 'room', to: room, message: { text: `m${i}` } });
        for (let i = 0; i < N; i++) assert.equal((await b.next((m) => m.type === 'room' && m.from === a.nickname)).message.text, `m${i}`);
        for (let i = 0; i < 300; i++) a.send({ type: 'ping', id: `p${i}` });
        for (let i = 0; i < 300; i++) assert.equal((await a.next((m) => m.ref === `p${i}`)).type, 'pong');
        await a.expectNothing(100, 'error');
        await Promise.all([a.close(), b.close()]);
    } finally {
        await srv.stopClean();
    }
});
