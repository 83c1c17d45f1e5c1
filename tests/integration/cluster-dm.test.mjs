// Private conversations between accounts in a cluster (issue 13, "Shared
// state"): a private between two accounts is stored in Redis with its id
// (tt:dm:<key>:log), so on any node an account sees the same
// `conversations` (unread counts from its read markers), the same
// `history` with `with` (ids in order, paging with `before`), as on one
// node; a private to an offline account is stored and acked; a guest's
// privates stay live only; --retain-messages trims a conversation; with
// Redis gone the reads answer `unavailable`. Skipped, saying why, when the
// binary has no --redis.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { account, connect, HOST, login, parseMetrics, uniq } from './helpers.mjs';
import { clusterFixture, clusterMissing, parsePayload, startNode, until, waitReady } from './redis.mjs';

const SKIP = clusterMissing();
const T = { timeout: 60000, skip: SKIP ?? false };

let redis;
let nA;
let nB;
const fx = clusterFixture(['dmA', 'dmB'], {
    skip: SKIP,
    ready: (f) => {
        ({ redis } = f);
        [nA, nB] = f.nodes;
    },
});
const { clients } = fx;

/** An account's connection (registered, or logged in), closed after the file. */
async function acct(server, nick, register = true) {
    const c = await account(server, nick, { register });
    clients.push(c);
    return c;
}

/** A third node on the same Redis with extra options (stopped by the fixture if a test fails). */
async function extraNode(name, args) {
    const n = await startNode(redis, name, ['--rate-limit', '0', ...args]);
    fx.extraServers.push(n);
    return n;
}

/** Sends a private and resolves to its ack's id. */
async function say(from, to, text) {
    const ack = await from.request({ type: 'private', to, message: { text } }, 'ack');
    assert.equal(ack.type, 'ack', `a private to ${to}: ${JSON.stringify(ack)}`);
    return ack.message_id;
}

const convs = async (c, extra = {}) => (await c.request({ type: 'conversations', ...extra }, 'conversations')).conversations;
const history = (c, with_, extra = {}) => c.request({ type: 'history', with: with_, ...extra }, 'history');
/** The conversation key of two nicknames (store_dm_key's). */
const dmKey = (a, b) => `@${[a, b].map((n) => n.toLowerCase()).sort().join('@')}`;

test('privates between accounts on two nodes: the same conversations, unread counts and history on either node', T, async () => {
    const alice = await acct(nA, uniq('Alice'));
    const bob = await acct(nB, uniq('Bob'));
    const ids = [];
    for (let i = 0; i < 3; i++) {
        ids.push(await say(alice, bob.nickname, `hello ${i}`));
        const got = await bob.next((m) => m.type === 'private' && m.message.text === `hello ${i}`);
        assert.equal(got.id, ids[i], 'the live copy has the stored id');
    }
    const reply = await say(bob, alice.nickname, 'hi back');
    await alice.next((m) => m.type === 'private' && m.message.text === 'hi back');
    ids.push(reply);
    // Each side's list, on its own node and on the other one.
    const bobOnA = await acct(nA, bob.nickname, false);
    const aliceOnB = await acct(nB, alice.nickname, false);
    for (const c of [bob, bobOnA]) assert.deepEqual(await convs(c), [{ with: alice.nickname, last_id: reply, unread: 3 }]);
    for (const c of [alice, aliceOnB]) assert.deepEqual(await convs(c), [{ with: bob.nickname, last_id: reply, unread: 1 }]);
    // The history, on either node, from either side: oldest first, with ids.
    for (const [c, other] of [
        [alice, bob],
        [aliceOnB, bob],
        [bob, alice],
        [bobOnA, alice],
    ]) {
        const h = await history(c, other.nickname);
        assert.equal(h.with, other.nickname);
        assert.equal(h.more, false);
        assert.deepEqual(
            h.messages.map((m) => [m.type, m.id, m.from, m.to, m.message.text]),
            [
                ['private', ids[0], alice.nickname, bob.nickname, 'hello 0'],
                ['private', ids[1], alice.nickname, bob.nickname, 'hello 1'],
                ['private', ids[2], alice.nickname, bob.nickname, 'hello 2'],
                ['private', ids[3], bob.nickname, alice.nickname, 'hi back'],
            ],
        );
    }
    // Paging back with before and limit, on the other node.
    const page = await history(bobOnA, alice.nickname, { limit: 2 });
    assert.deepEqual(page.messages.map((m) => m.id), ids.slice(2));
    assert.equal(page.more, true);
    const older = await history(bobOnA, alice.nickname, { limit: 2, before: page.messages[0].id });
    assert.deepEqual(older.messages.map((m) => m.id), ids.slice(0, 2));
    assert.equal(older.more, false);
    const none = await history(bob, alice.nickname, { before: ids[0] });
    assert.deepEqual([none.messages, none.more], [[], false]);
    // A read marker set on node B counts on node A. The `conversations`
    // after it on B comes after the marker is stored (one worker, in order).
    bob.send({ type: 'read', with: alice.nickname, up_to: ids[1] });
    // Its echo reaches the account's connection on the other node.
    const echo = await bobOnA.next({ type: 'read' });
    assert.deepEqual([echo.with, echo.up_to], [alice.nickname, ids[1]]);
    assert.deepEqual(await convs(bob), [{ with: alice.nickname, last_id: reply, unread: 1 }]);
    assert.deepEqual(await convs(bobOnA), [{ with: alice.nickname, last_id: reply, unread: 1 }]);
    bobOnA.send({ type: 'read', with: alice.nickname, up_to: reply });
    assert.equal((await bob.next({ type: 'read' })).up_to, reply);
    assert.deepEqual(await convs(bobOnA), [{ with: alice.nickname, last_id: reply, unread: 0 }]);
    assert.deepEqual(await convs(bob), [{ with: alice.nickname, last_id: reply, unread: 0 }]);
    // Backwards changes nothing.
    bob.send({ type: 'read', with: alice.nickname, up_to: ids[0] });
    assert.equal((await convs(bob))[0].unread, 0);
    // What Redis holds: the conversation's stream, entry <id>-0, field m, the
    // private payload (seq 0, room = the recipient).
    const key = dmKey(alice.nickname, bob.nickname);
    const rc = redis.client();
    try {
        const entries = await rc.cmd('XRANGE', `tt:dm:${key}:log`, '-', '+');
        assert.deepEqual(entries.map(([entryId]) => entryId), ids.map((id) => `${id}-0`));
        const p = parsePayload(entries[3][1][1]);
        assert.equal(entries[3][1][0], 'm');
        assert.deepEqual([p.seq, p.id, p.from, p.room, p.text], [0, reply, bob.nickname, alice.nickname, 'hi back']);
    } finally {
        await rc.close();
    }
});

test('conversations are newest first and limited; the other side is named as it spells itself', T, async () => {
    const me = await acct(nA, uniq('Many'));
    const others = [];
    for (let i = 0; i < 3; i++) others.push(await acct(i % 2 ? nA : nB, uniq(`Peer${i}`)));
    const last = [];
    for (const o of others) {
        // Written in lower case: stored under the account's spelling.
        last.push(await say(me, o.nickname.toLowerCase(), `to ${o.nickname}`));
        const echo = await me.next((m) => m.type === 'private' && m.id === last[last.length - 1]);
        assert.equal(echo.to, o.nickname, 'the echo names the recipient as the account spells itself');
    }
    const list = await convs(me);
    assert.deepEqual(list, others.map((o, i) => ({ with: o.nickname, last_id: last[i], unread: 0 })).reverse());
    assert.deepEqual(await convs(me, { limit: 2 }), list.slice(0, 2));
    const h = await history(me, others[0].nickname);
    assert.deepEqual(h.messages.map((m) => [m.from, m.to]), [[me.nickname, others[0].nickname]]);
    // Each peer, on the other node, has one unread.
    for (const o of others) {
        const again = await acct(o === others[1] ? nB : nA, o.nickname, false);
        assert.deepEqual(await convs(again), [{ with: me.nickname, last_id: last[others.indexOf(o)], unread: 1 }]);
    }
});

test('a private to an offline account is stored and acked; the recipient finds it on the other node', T, async () => {
    const ana = await acct(nA, uniq('Ana'));
    const bobName = uniq('Bob');
    const bob = await acct(nB, bobName);
    await bob.close();
    const id = await say(ana, bobName.toLowerCase(), 'while you were out');
    const echo = await ana.next((m) => m.type === 'private' && m.id === id);
    assert.equal(echo.to, bobName);
    const back = await acct(nA, bobName, false);
    assert.deepEqual(await convs(back), [{ with: ana.nickname, last_id: id, unread: 1 }]);
    const h = await history(back, ana.nickname);
    assert.deepEqual(h.messages.map((m) => [m.id, m.from, m.to, m.message.text]), [[id, ana.nickname, bobName, 'while you were out']]);
    // A name nobody has is still no_such_user.
    await ana.expectError({ type: 'private', to: uniq('nobody'), message: { text: 'x' } }, 'no_such_user');
});

test("a guest's privates are live only: nothing stored, listed or read back", T, async () => {
    const ana = await acct(nA, uniq('Live'));
    const g = await login(nB, uniq('gst'));
    clients.push(g);
    await say(ana, g.nickname, 'to a guest');
    await g.next((m) => m.type === 'private' && m.message.text === 'to a guest');
    await say(g, ana.nickname, 'from a guest');
    await ana.next((m) => m.type === 'private' && m.message.text === 'from a guest');
    assert.deepEqual((await history(ana, g.nickname)).messages, []);
    assert.deepEqual(await convs(ana), []);
    await g.expectError({ type: 'conversations' }, 'bad_request');
    await g.expectError({ type: 'history', with: ana.nickname }, 'bad_request');
    const key = dmKey(ana.nickname, g.nickname);
    const rc = redis.client();
    try {
        assert.equal(await rc.cmd('EXISTS', `tt:dm:${key}:log`), 0);
    } finally {
        await rc.close();
    }
});

test('--retain-messages keeps the newest of a conversation; its unread count and history follow', T, async () => {
    const n3 = await extraNode('dmC', ['--retain-messages', '3']);
    const ana = await acct(n3, uniq('Keep'));
    const bob = await acct(nB, uniq('Kept'));
    const ids = [];
    for (let i = 0; i < 5; i++) ids.push(await say(ana, bob.nickname, `k${i}`));
    const h = await history(bob, ana.nickname);
    assert.deepEqual(h.messages.map((m) => m.id), ids.slice(2));
    assert.equal(h.more, false);
    assert.deepEqual(await convs(bob), [{ with: ana.nickname, last_id: ids[4], unread: 3 }]);
    await n3.stopClean();
});

test('--retain-days: a conversation loses what is older when it is read and when it grows', T, async () => {
    const n4 = await extraNode('dmD', ['--retain-days', '1']);
    const ana = await acct(n4, uniq('Old'));
    const bob = await acct(n4, uniq('Older'));
    const carl = await acct(nA, uniq('Oldest'));
    const old = Date.now() - 2 * 86400 * 1000;
    const [a, b, k] = [ana.nickname, bob.nickname, dmKey(ana.nickname, bob.nickname)];
    const rc = redis.client();
    try {
        // Two messages from two days ago and one of now, as the publish
        // script would have stored them (ids below any the cluster gives now).
        const entries = [
            [1, old, 'two days ago'],
            [2, old + 1, 'still old'],
            [3, Date.now(), 'fresh'],
        ];
        for (const [id, ts, text] of entries) {
            await rc.cmd('XADD', `tt:dm:${k}:log`, `${id}-0`, 'm', `0 ${id} ${ts} dmD 0 ${a} ${b} - ${text}`);
            await rc.cmd('ZADD', `tt:dm:${k}:by:${a.toLowerCase()}`, id, id);
        }
        for (const [owner, other] of [
            [a, b],
            [b, a],
        ]) {
            await rc.cmd('ZADD', `tt:dms:${owner.toLowerCase()}`, 3, k);
            await rc.cmd('HSET', `tt:dms:${owner.toLowerCase()}:with`, k, other);
        }
        assert.deepEqual(await convs(bob), [{ with: a, last_id: 3, unread: 1 }], 'the old ones are not unread');
        const h = await history(bob, a);
        assert.deepEqual(h.messages.map((m) => [m.id, m.message.text]), [[3, 'fresh']]);
        assert.equal(h.more, false);
        assert.deepEqual((await rc.cmd('XRANGE', `tt:dm:${k}:log`, '-', '+')).map(([id]) => id), ['3-0'], 'trimmed in Redis');
        assert.deepEqual(await rc.cmd('ZRANGE', `tt:dm:${k}:by:${a.toLowerCase()}`, 0, -1), ['3']);
        // A new message trims the oldest of its conversation too.
        const k2 = dmKey(a, carl.nickname);
        await rc.cmd('XADD', `tt:dm:${k2}:log`, '1-0', 'm', `0 1 ${old} dmD 0 ${a} ${carl.nickname} - ancient`);
        await rc.cmd('ZADD', `tt:dm:${k2}:by:${a.toLowerCase()}`, 1, 1);
        const id = await say(ana, carl.nickname, 'new');
        assert.deepEqual((await rc.cmd('XRANGE', `tt:dm:${k2}:log`, '-', '+')).map(([e]) => e), [`${id}-0`]);
        assert.deepEqual(await rc.cmd('ZRANGE', `tt:dm:${k2}:by:${a.toLowerCase()}`, 0, -1), [String(id)]);
        assert.deepEqual(await convs(carl), [{ with: a, last_id: id, unread: 1 }]);
    } finally {
        await rc.close();
    }
    await n4.stopClean();
});

test('unread counts stop at 999, as on one node', T, async () => {
    const ana = await acct(nA, uniq('Lots'));
    const bob = await acct(nB, uniq('Many'));
    const id = await say(ana, bob.nickname, 'one of many');
    const k = dmKey(ana.nickname, bob.nickname);
    const rc = redis.client();
    try {
        // 1,200 more ids from ana in the unread set (the stream starts at
        // the real one, below them: nothing is trimmed).
        const members = [];
        for (let i = 1; i <= 1200; i++) members.push(id + i, id + i);
        await rc.cmd('ZADD', `tt:dm:${k}:by:${ana.nickname.toLowerCase()}`, ...members);
    } finally {
        await rc.close();
    }
    assert.deepEqual(await convs(bob), [{ with: ana.nickname, last_id: id, unread: 999 }]);
    bob.send({ type: 'read', with: ana.nickname, up_to: id + 1000 });
    assert.deepEqual(await convs(bob), [{ with: ana.nickname, last_id: id, unread: 200 }]);
});

test('with Redis gone, conversations and history with answer unavailable', T, async () => {
    const ana = await acct(nA, uniq('Down'));
    const bob = await acct(nB, uniq('Gone'));
    await say(ana, bob.nickname, 'before');
    await redis.stop();
    try {
        await ana.expectError({ type: 'conversations' }, 'unavailable', 15000);
        await ana.expectError({ type: 'history', with: bob.nickname }, 'unavailable', 15000);
        await ana.expectError({ type: 'private', to: bob.nickname, message: { text: 'while down' } }, 'unavailable', 15000);
    } finally {
        await redis.restart();
        // Both nodes back (links, scripts, moderation read) for the tests after.
        await Promise.all([nA, nB].map((n) => waitReady(n)));
    }
});

test('past what is held for an account in its grace time on another node, a stored private is not undelivered: it waits in the conversation', T, async () => {
    const scrape = async (n) => parseMetrics(await (await fetch(`http://${HOST}:${n.port}/metrics`)).text());
    const away = await acct(nB, uniq('away'));
    const sender = await acct(nA, uniq('sender'));
    const live = await acct(nB, uniq('live'));
    const sessions = (await scrape(nB)).get('tertulia_sessions');
    await away.terminate(); // dropped, not a goodbye: its grace time starts on node B
    await until(async () => (await scrape(nB)).get('tertulia_sessions') === sessions - 1, 10000, 'node B saw the drop', 20);
    // 100 are held for it; the 101st and 102nd are stored all the same.
    const ids = [];
    for (let i = 0; i < 102; i++) ids.push(await say(sender, away.nickname, `held ${i}`));
    // Node B handles its channel in order: a reply from its live user,
    // sent once the last of them reached node B, comes after any
    // `undelivered` node B would have sent for them.
    await say(sender, live.nickname, 'after them');
    await live.next((m) => m.type === 'private' && m.message.text === 'after them');
    await say(live, sender.nickname, 'reply');
    await sender.next((m) => m.type === 'private' && m.message.text === 'reply');
    assert.deepEqual(sender.inbox.items.filter((m) => m.type === 'undelivered'), [], 'none was undelivered');
    const back = await acct(nB, away.nickname, false);
    const h = await history(back, sender.nickname, { limit: 200 });
    assert.deepEqual(h.messages.map((m) => m.id), ids);
});
