// Listings are bounded: `rooms` needs a login and answers in pages (at most
// `limit` rooms, 100 by default and 500 at most, in folded name order, with
// `count`, `more` and an `after` cursor); `who` answers with at most 1,000
// members plus their `count` (and pages with `after`), and `joined.members`
// holds at most 1,000 names with `member_count`. So one request can no
// longer make the server sort and send every room or member it has. The
// server runs under --rate-limit 0 so that building hundreds of rooms and a
// thousand members is quick: the cost of scans against the request budget
// is tested in tests/unit/chat/test_chat_rate.c.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { connect, legacyLogin, login, startServer, uniq } from './helpers.mjs';

let server;
const clients = [];
before(async () => {
    server = await startServer(['--rate-limit', '0', '--max-rooms', '1000', '--max-per-ip', '0']);
});
after(async () => {
    await Promise.all(clients.map((c) => c.terminate()));
    await server?.stopClean();
});

/** The order pages come in: ASCII letters folded to lower case, ties broken by the raw bytes. */
function folded(a, b) {
    const x = a.toLowerCase();
    const y = b.toLowerCase();
    if (x !== y) return x < y ? -1 : 1;
    return a < b ? -1 : a > b ? 1 : 0;
}

function assertFoldedOrder(names, what) {
    for (let i = 1; i < names.length; i++) assert.ok(folded(names[i - 1], names[i]) < 0, `${what}: ${names[i - 1]} before ${names[i]}`);
}

/** Sends req with this id and resolves to the reply or error carrying it. */
function ask(c, req, id) {
    c.send({ ...req, id });
    return c.next((m) => m.ref === id, 20000);
}

test('rooms needs a login: before it, it is refused with not_logged_in, and the connection keeps working', async () => {
    const c = await connect(server);
    const e = await c.expectError({ type: 'rooms' }, 'not_logged_in');
    assert.match(e.message, /log in/i);
    assert.equal((await ask(c, { type: 'ping' }, 'p')).type, 'pong');
    assert.equal((await ask(c, { type: 'login', nickname: uniq('lr') }, 'l')).type, 'welcome');
    const r = await ask(c, { type: 'rooms' }, 'r');
    assert.equal(r.type, 'rooms', JSON.stringify(r));
    await c.close();
});

test('rooms answers in pages of at most limit rooms in name order, with count and more, and after reaches every room once', { timeout: 60000 }, async () => {
    const maker = await login(server, uniq('maker'));
    clients.push(maker);
    // 620 rooms whose names differ in case and punctuation, created out of order.
    const tag = uniq('pg').replace(/_/g, '');
    const shapes = [(i) => `${tag}-sala${i}`, (i) => `${tag.toUpperCase()}-Sala${i}`, (i) => `#${tag}${i}`, (i) => `_${tag}${i}`];
    const names = Array.from({ length: 620 }, (_, i) => shapes[i % 4](String(i).padStart(3, '0')));
    for (let k = 0; k < names.length; k++) maker.send({ type: 'join', room: names[(k * 7) % names.length], id: `j${k}` });
    for (let k = 0; k < names.length; k++) assert.equal((await maker.next((m) => m.ref === `j${k}`, 20000)).type, 'joined');

    const listed = [];
    let first;
    let after;
    for (let page = 0; page < 20; page++) {
        const req = { type: 'rooms' };
        if (after !== undefined) req.after = after;
        const r = await ask(maker, req, `r${page}`);
        assert.equal(r.type, 'rooms', JSON.stringify(r).slice(0, 200));
        if (page === 0) first = r;
        assert.ok(r.rooms.length <= 100, `a default page holds at most 100 (${r.rooms.length})`);
        assert.ok(Number.isInteger(r.count) && r.count >= names.length, `count is every room on the server (${r.count})`);
        assert.equal(typeof r.more, 'boolean');
        listed.push(...r.rooms);
        if (!r.more) break;
        assert.equal(r.rooms.length, 100, 'a page with more after it is full');
        after = r.rooms[r.rooms.length - 1].name;
    }
    assert.equal(first.rooms.length, 100);
    assert.equal(first.more, true);
    assertFoldedOrder(listed.map((r) => r.name), 'the pages');
    assert.equal(listed.length, first.count, 'every room once');
    const mine = listed.filter((r) => names.includes(r.name));
    assert.deepEqual(mine.map((r) => r.name).sort(), [...names].sort());
    assert.ok(mine.every((r) => r.members === 1));

    // limit: served up to 500, smaller pages on request.
    const big = await ask(maker, { type: 'rooms', limit: 100000 }, 'big');
    assert.equal(big.rooms.length, 500);
    assert.equal(big.more, true);
    assert.deepEqual(big.rooms.map((r) => r.name), listed.slice(0, 500).map((r) => r.name));
    const three = await ask(maker, { type: 'rooms', limit: 3, after: listed[10].name }, 'three');
    assert.deepEqual(three.rooms.map((r) => r.name), listed.slice(11, 14).map((r) => r.name));
    assert.equal(three.more, true);
    const bad = await ask(maker, { type: 'rooms', limit: 0 }, 'bad');
    assert.equal(bad.code, 'bad_request');
});

test('who answers with at most 1,000 members and their count, after pages through the rest, and a joiner gets 1,000 names and member_count', { timeout: 120000 }, async () => {
    const room = uniq('#crowd');
    const watcher = await login(server, uniq('watch'), { room });
    clients.push(watcher);
    const crowd = [];
    for (let i = 0; i < 1005; i += 100) {
        const n = Math.min(100, 1005 - i);
        crowd.push(...(await Promise.all(Array.from({ length: n }, (_, k) => legacyLogin(server, `c${String(i + k).padStart(4, '0')}_${room.slice(-6)}`, room)))));
    }
    clients.push(...crowd);
    let w;
    for (let i = 0; i < 400; i++) {
        w = await ask(watcher, { type: 'who', room }, `w${i}`);
        if (w.count === 1006) break;
        await new Promise((r) => setTimeout(r, 25));
    }
    assert.equal(w.type, 'members');
    assert.equal(w.count, 1006, 'count is every member');
    assert.equal(w.members.length, 1000, 'at most 1,000 names');
    assert.equal(w.more, true);
    assertFoldedOrder(w.members, 'who');
    const rest = await ask(watcher, { type: 'who', room, after: w.members[999] }, 'rest');
    assert.equal(rest.members.length, 6);
    assert.equal(rest.more, false);
    const all = [...w.members, ...rest.members];
    assertFoldedOrder(all, 'who, both pages');
    assert.deepEqual([...all].sort(), [watcher.nickname, ...crowd.map((c) => c.nickname)].sort());

    const late = await login(server, uniq('late'), { room });
    clients.push(late);
    assert.equal(late.joined.members.length, 1000);
    assert.ok(late.joined.members.includes(late.nickname), 'the joiner is among the names');
    assert.equal(late.joined.member_count, 1007);
    // A small room reads as before, with count and more: false.
    const small = await ask(late, { type: 'who', room: uniq('alone') }, 'small');
    assert.deepEqual(small.members, []);
    assert.equal(small.count, 0);
    assert.equal(small.more, false);
});
