// One user must not be able to make a room unreadable. Text holding control
// characters (each is six bytes in JSON: "\u0001") or nothing but blanks is
// refused, and a reply that carries many messages (joined.history, history)
// is cut to a byte budget well under the per-connection queue cap (newest
// messages kept, `more: true`), so a room full of the longest messages a
// client can send still lets every joiner in, and `history` with limit 200
// still answers. The flooder runs under --rate-limit 0: it is not the rate
// limit being tested here.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { connect, login, startServer, uniq } from './helpers.mjs';

const MAX_TEXT = 4096;
const HONEST = '"'.repeat(MAX_TEXT); // the longest accepted text in JSON: 2 bytes a character
const POISON = '\u0001'.repeat(MAX_TEXT); // 6 bytes a character: refused now
const ROOM = uniq('#poison');

let server;
let flooder;
const honestIds = [];

/** Sends a room message and resolves to its ack or the error with its ref. */
function say(c, room, text, id) {
    c.send({ type: 'room', to: room, message: { text }, id });
    return c.next((m) => (m.type === 'ack' || m.type === 'error') && m.ref === id, 20000);
}

/** Records the byte length of every frame c receives, with its type, in c.sizes. */
function recordSizes(c) {
    c.sizes = [];
    c.ws.on('message', (data) => {
        let type = '?';
        try {
            type = JSON.parse(data.toString('utf8')).type;
        } catch {
            // not JSON: recorded as '?'
        }
        c.sizes.push({ type, bytes: data.length });
    });
}

/** A ping round trip: everything the server sent before the pong has arrived. */
async function roundTrip(c, id) {
    c.send({ type: 'ping', id });
    const m = await c.next((x) => x.ref === id, 20000);
    assert.equal(m.type, 'pong', JSON.stringify(m));
}

before(async () => {
    server = await startServer(['--rate-limit', '0']);
    flooder = await login(server, uniq('flooder'), { room: ROOM });
    // 200 of the longest honest messages (1.6 MB of JSON in all), then 50
    // of 4,096 control characters each (1.23 MB in JSON, if accepted): the
    // last 50 are what a joiner's history would carry.
    for (let i = 0; i < 200; i++) {
        const m = await say(flooder, ROOM, HONEST, `h${i}`);
        assert.equal(m.type, 'ack', `honest message ${i}: ${JSON.stringify(m)}`);
        honestIds.push(m.message_id);
    }
    for (let i = 0; i < 50; i++) await say(flooder, ROOM, POISON, `p${i}`);
    flooder.inbox.drain();
});

after(async () => {
    await flooder?.close();
    await server?.stopClean();
});

test('text holding control characters, or only blanks, is refused with bad_request and reaches nobody', { timeout: 30000 }, async () => {
    const room = uniq('ctl');
    const a = await login(server, uniq('ctla'), { room });
    const b = await login(server, uniq('ctlb'), { room });
    await a.next((m) => m.type === 'member_joined' && m.nickname === b.nickname);
    const refused = [POISON, 'a\u0000b', 'x\u0007', '\u007f', '\u0085', '\u009f', ' ', '\t\n\r ', '\u00a0', '\u2000\u200b', '\u3000', '\ufeff'];
    for (const [i, text] of refused.entries()) {
        const m = await say(a, room, text, `c${i}`);
        assert.equal(m.type, 'error', `${JSON.stringify(text.slice(0, 8))}: ${JSON.stringify(m)}`);
        assert.equal(m.code, 'bad_request', JSON.stringify(m));
        b.send({ type: 'private', to: a.nickname, message: { text }, id: `q${i}` });
        assert.equal((await b.next((x) => x.ref === `q${i}`)).code, 'bad_request');
    }
    // Tabs, line breaks and spaces around visible text are fine.
    const ok = await say(a, room, '\tdos\r\nlíneas \u00a0', 'fine');
    assert.equal(ok.type, 'ack', JSON.stringify(ok));
    const got = await b.next('room');
    assert.equal(got.message.text, '\tdos\r\nlíneas \u00a0', 'the first room message b gets is the accepted one');
    await a.expectNothing(0, 'private');
    await Promise.all([a.close(), b.close()]);
});

test('a fresh tertulia.v1 joiner of a room full of the longest messages gets welcome and joined within the reply budget, newest messages kept, and stays connected', { timeout: 60000 }, async () => {
    const c = await connect(server);
    recordSizes(c);
    c.send({ type: 'login', nickname: uniq('joiner'), room: ROOM, id: 'in' });
    const welcome = await c.next((m) => m.type === 'welcome' || m.type === 'error', 20000);
    assert.equal(welcome.type, 'welcome', JSON.stringify(welcome));
    const budget = welcome.limits.reply_budget;
    assert.ok(Number.isInteger(budget) && budget > 0 && budget < welcome.limits.max_queue, `welcome.limits.reply_budget ${budget} is under max_queue`);
    const joined = await c.next((m) => m.type === 'joined' || m.type === 'error', 20000);
    assert.equal(joined.type, 'joined', JSON.stringify(joined).slice(0, 300));
    assert.equal(joined.ref, 'in');
    const h = joined.history;
    assert.ok(h.length >= 1 && h.length < 50, `a shorter history (${h.length} messages)`);
    assert.equal(joined.more, true, 'more says older messages were left out');
    assert.deepEqual(h.map((m) => m.id), honestIds.slice(-h.length), 'the newest messages are the ones kept, oldest first');
    assert.ok(h.every((m) => m.message.text === HONEST));
    const frame = c.sizes.find((s) => s.type === 'joined');
    assert.ok(frame.bytes <= budget, `joined is ${frame.bytes} bytes, within the budget of ${budget}`);
    await roundTrip(c, 'still-here');
    assert.ok(c.isOpen, 'not closed');
    await c.close();
});

test('history with limit 200 of that room fits the reply budget, and paging back with before reaches every message once', { timeout: 60000 }, async () => {
    const c = await login(server, uniq('reader'), { room: ROOM });
    recordSizes(c);
    const budget = c.welcome.limits.reply_budget;
    const got = [];
    let before;
    for (let page = 0; page < 250; page++) {
        const req = { type: 'history', room: ROOM, limit: 200, id: `hp${page}` };
        if (before !== undefined) req.before = before;
        c.send(req);
        const m = await c.next((x) => x.ref === `hp${page}`, 20000);
        assert.equal(m.type, 'history', JSON.stringify(m).slice(0, 300));
        assert.ok(m.messages.length >= 1, 'a page holds at least one message');
        if (page === 0) assert.ok(m.messages.length < 200 && m.more, `the first page is cut (${m.messages.length}) and says more`);
        got.unshift(...m.messages.map((x) => x.id));
        if (!m.more) break;
        before = m.messages[0].id;
    }
    assert.deepEqual(got.filter((id) => id >= honestIds[0]), honestIds, 'every message once, in order');
    const pages = c.sizes.filter((s) => s.type === 'history');
    assert.ok(pages.length > 1);
    for (const p of pages) assert.ok(p.bytes <= budget, `a page of ${p.bytes} bytes, within ${budget}`);
    await roundTrip(c, 'read-all');
    await c.close();
});
