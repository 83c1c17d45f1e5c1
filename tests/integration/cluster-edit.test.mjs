// Edit and delete in a cluster (PROTOCOL.md, "Typing, editing, deleting,
// mentions"; docs/ARCHITECTURE.md, "A cluster over Redis"): two nodes on
// one Redis, as one node would do it. The members on both nodes hear
// `edited` / `deleted` once; history on both nodes, and a join with
// `since`, hold the new text with edited_ts or the deleted marker; the
// room's owner deletes another's message; the old text is gone from the
// stream and from an RDB snapshot; a node whose subscription missed the
// messages fills the gap without the deleted one and the room goes on.
//
// Non-events are proven with a later reply on the same connection (a ping
// answered), never with a timer. Skipped, saying why, when the binary has
// no --redis.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';

import { account, join, login, uniq } from './helpers.mjs';
import { clusterFixture, clusterMissing, procState, roomKey, sayRoom, startNode, until } from './redis.mjs';

const SKIP = clusterMissing();
const T = { timeout: 60000, skip: SKIP ?? false };

let redis;
let n1;
let n2;
const fx = clusterFixture(['e1', 'e2'], {
    skip: SKIP,
    ready: (f) => {
        ({ redis } = f);
        [n1, n2] = f.nodes;
    },
});
const { clients } = fx;

async function on(server, nick, opts) {
    const c = await login(server, nick, opts);
    clients.push(c);
    return c;
}

/** Sends a room message; resolves to its id once acked. */
async function say(c, to, text) {
    const a = await sayRoom(c, to, text);
    assert.equal(a.type, 'ack', JSON.stringify(a));
    return a.message_id;
}

/** A ping answered: everything sent to c before it has arrived. */
async function pong(c) {
    assert.equal((await c.request({ type: 'ping' }, 'pong')).type, 'pong');
}

/** fn(rc) on a client of the cluster's Redis, closed after. */
async function withRedis(fn) {
    const rc = redis.client();
    try {
        return await fn(rc);
    } finally {
        await rc.close();
    }
}

/** Each of cs got the room message id (live). */
async function everyoneHas(cs, id) {
    await Promise.all(cs.map((c) => c.next((m) => m.type === 'room' && m.id === id)));
}

/** After a ping round trip, how many more frames of type (for id) each of cs holds (after the one taken). */
async function counts(cs, type, id) {
    const out = [];
    for (const c of cs) {
        await pong(c);
        out.push(c.inbox.items.filter((m) => m.type === type && m.id === id).length);
    }
    return out;
}

async function history(c, room) {
    const h = await c.request({ type: 'history', room }, 'history');
    assert.equal(h.type, 'history', JSON.stringify(h));
    return h.messages;
}

/** The raw stream entry of id in room's stream: [entryId, fields] or undefined. */
async function rawEntry(room, id) {
    return withRedis(async (rc) => (await rc.cmd('XRANGE', `tt:room:${roomKey(room)}:log`, `${id}-0`, `${id}-0`))[0]);
}

test('edit on node A: members on A and B hear edited once; history on both nodes and a since join hold the new text', T, async () => {
    const room = uniq('#ced');
    const ana = await on(n1, uniq('ana'), { room });
    const cat = await on(n1, uniq('cat'), { room });
    const ben = await on(n2, uniq('ben'), { room });
    const prior = await say(ben, room, 'before it');
    const id = await say(ana, room, 'first version');
    await everyoneHas([ana, cat, ben], id);
    const later = await say(ben, room, 'after it');
    await everyoneHas([ana, cat, ben], later);
    const done = await ana.request({ type: 'edit', message_id: id, message: { text: 'second version' } }, 'done');
    assert.deepEqual([done.type, done.action, done.id], ['done', 'edit', id], JSON.stringify(done));
    for (const c of [ana, cat, ben]) {
        const { type, edited_ts: ts, ...e } = await c.next((m) => m.type === 'edited');
        assert.deepEqual(e, { id, room, from: ana.nickname, message: { text: 'second version' } }, `${c.label}: ${type}`);
        assert.ok(Number.isInteger(ts) && ts >= Date.now() - 60000, `edited_ts ${ts}`);
    }
    assert.deepEqual(await counts([ana, cat, ben], 'edited', id), [0, 0, 0], 'edited reached each member once');
    for (const c of [cat, ben]) {
        const msgs = await history(c, room);
        const m = msgs.find((x) => x.id === id);
        assert.equal(m.message.text, 'second version', `${c.label}: ${JSON.stringify(m)}`);
        assert.ok(m.edited_ts > 0);
        // The message after it is still there, once, in order.
        assert.deepEqual(msgs.filter((x) => x.id === id || x.id === later).map((x) => x.id), [id, later]);
    }
    // A join with since (on the other node, by a newcomer) and the joined history.
    const dan = await on(n2, uniq('dan'));
    const j = await join(dan, room, { since: prior });
    const mj = j.history.find((x) => x.id === id);
    assert.equal(mj.message.text, 'second version', JSON.stringify(j.history));
    assert.ok(mj.edited_ts > 0);
    // Edited twice: the last text wins; the stream holds it with its edit time, no old text.
    await ana.request({ type: 'edit', message_id: id, message: { text: 'third version' } }, 'done');
    await ben.next((m) => m.type === 'edited' && m.message.text === 'third version');
    const [, fields] = await rawEntry(room, id);
    assert.equal(fields[0], 'm');
    assert.match(fields[1], / third version$/);
    assert.equal(fields[2], 'e');
    // Live messages go on on both nodes (sequence numbers unbroken).
    const next = await say(cat, room, 'still flowing');
    await everyoneHas([ana, ben, dan], next);
});

test('delete by the author: deleted once everywhere; history shows the marker; a since join does not bring the text; the text is gone from Redis and its snapshot', T, async () => {
    const room = uniq('#cdel');
    const secret = `secret ${uniq('s')} text`;
    const ana = await on(n1, uniq('ana'), { room });
    const cat = await on(n1, uniq('cat'), { room });
    const ben = await on(n2, uniq('ben'), { room });
    const before = await say(ben, room, 'before it');
    const id = await say(ana, room, secret);
    const after = await say(ben, room, 'after it');
    await everyoneHas([ana, cat, ben], after);
    const done = await ana.request({ type: 'delete', message_id: id }, 'done');
    assert.deepEqual([done.action, done.id], ['delete', id]);
    for (const c of [ana, cat, ben]) {
        const d = await c.next((m) => m.type === 'deleted');
        assert.deepEqual([d.id, d.room, d.by], [id, room, ana.nickname], JSON.stringify(d));
    }
    assert.deepEqual(await counts([ana, cat, ben], 'deleted', id), [0, 0, 0], 'deleted reached each member once');
    for (const c of [cat, ben]) {
        const msgs = await history(c, room);
        const m = msgs.find((x) => x.id === id);
        assert.deepEqual({ id: m.id, from: m.from, deleted: m.deleted, message: m.message }, { id, from: ana.nickname, deleted: true, message: undefined });
        assert.ok(!JSON.stringify(msgs).includes(secret));
        assert.deepEqual(msgs.filter((x) => [before, id, after].includes(x.id)).map((x) => x.id), [before, id, after]);
    }
    const dan = await on(n2, uniq('dan'));
    const j = await join(dan, room, { since: before });
    assert.ok(!JSON.stringify(j.history).includes(secret), JSON.stringify(j.history));
    assert.equal(j.history.find((x) => x.id === id)?.deleted, true);
    // Gone again: not_found, for edit and delete alike.
    await ana.expectError({ type: 'delete', message_id: id }, 'not_found');
    await ana.expectError({ type: 'edit', message_id: id, message: { text: 'back' } }, 'not_found');
    // In Redis: a marker in the stream, and no byte of the text in a snapshot.
    const [, fields] = await rawEntry(room, id);
    assert.ok(fields.includes('d') && !fields.join(' ').includes(secret), JSON.stringify(fields));
    await withRedis(async (rc) => {
        await rc.cmd('CONFIG', 'SET', 'rdbcompression', 'no');
        await rc.cmd('SAVE');
    });
    const rdb = fs.readFileSync(path.join(redis.dir, 'dump.rdb'));
    assert.ok(rdb.includes('after it'), 'the snapshot holds the other messages (uncompressed)');
    assert.ok(!rdb.includes(secret), 'the snapshot holds no byte of the deleted text');
    const next = await say(ben, room, 'still flowing');
    await everyoneHas([ana, cat, dan], next);
});

test("the room's owner deletes another's message, on its node and from the other one; every member hears it", T, async () => {
    const room = uniq('#cown');
    const owner = await account(n1, uniq('own'));
    clients.push(owner);
    // The owner's second device, on the other node (logged in before the room has it
    // there: a node that mirrors the account as another node's member refuses the login).
    const ownerB = await account(n2, owner.nickname, { register: false });
    clients.push(ownerB);
    const j = await join(owner, room);
    assert.equal(j.roles.owner, owner.nickname);
    const gus = await on(n1, uniq('gus'), { room });
    const ben = await on(n2, uniq('ben'), { room });
    const id = await say(gus, room, 'rude words');
    await everyoneHas([owner, gus, ben], id);
    // Another member may not (neither edit nor delete).
    await ben.expectError({ type: 'delete', message_id: id }, 'not_permitted');
    await ben.expectError({ type: 'edit', message_id: id, message: { text: 'x' } }, 'not_permitted');
    await owner.request({ type: 'delete', message_id: id }, 'done');
    for (const c of [owner, gus, ben]) {
        const d = await c.next((m) => m.type === 'deleted');
        assert.deepEqual([d.id, d.by], [id, owner.nickname]);
    }
    const m = (await history(ben, room)).find((x) => x.id === id);
    assert.equal(m.deleted, true);
    // Roles are the cluster's: the owner on the other node deletes a message sent on this one.
    const id2 = await say(gus, room, 'more rude words');
    await everyoneHas([owner, ben], id2);
    await ownerB.request({ type: 'delete', message_id: id2 }, 'done');
    for (const c of [owner, gus, ben]) {
        const d = await c.next((x) => x.type === 'deleted' && x.id === id2);
        assert.equal(d.by, owner.nickname);
    }
});

test("an account's record of rooms is the cluster's: joined and left on node B, it deletes its message there from node A", T, async () => {
    const room = uniq('#crec');
    const nick = uniq('acc');
    const onB = await account(n2, nick);
    clients.push(onB);
    await join(onB, room);
    const ben = await on(n2, uniq('ben'), { room });
    const id = await say(onB, room, 'mine, from node B');
    await everyoneHas([ben], id);
    assert.equal((await onB.request({ type: 'leave', room }, 'left')).type, 'left');
    // The same account on node A, never in the room there (nor anywhere now).
    const onA = await account(n1, nick, { register: false });
    clients.push(onA);
    await onA.request({ type: 'delete', message_id: id }, 'done');
    const d = await ben.next((m) => m.type === 'deleted');
    assert.deepEqual([d.id, d.by], [id, onA.nickname]);
    // A guest on node A who never was in the room: to it the message does not exist.
    const eve = await on(n1, uniq('eve'));
    await eve.expectError({ type: 'delete', message_id: id }, 'not_found');
});

test('not_found: unknown ids, and a room the requester never was in', T, async () => {
    const room = uniq('#cnf');
    const ana = await on(n1, uniq('ana'), { room });
    const eve = await on(n2, uniq('eve'));
    const id = await say(ana, room, 'only for the room');
    await ana.expectError({ type: 'edit', message_id: id + 1000000, message: { text: 'x' } }, 'not_found');
    await ana.expectError({ type: 'delete', message_id: id + 1000000 }, 'not_found');
    await eve.expectError({ type: 'edit', message_id: id, message: { text: 'x' } }, 'not_found');
    await eve.expectError({ type: 'delete', message_id: id }, 'not_found');
});

test('--retain-days: what the age trim drops leaves the index too', T, async () => {
    const room = uniq('caged');
    const k = roomKey(room);
    // Three entries from four days ago, indexed as publish.lua indexes them (ids far above the others').
    const old = Date.now() - 4 * 86400 * 1000;
    const ids = [9000001, 9000002, 9000103];
    await withRedis(async (rc) => {
        for (const [i, id] of ids.entries()) {
            await rc.cmd('XADD', `tt:room:${k}:log`, `${id}-0`, 'm', `${i + 1} ${id} ${old} e1 ${i} ana ${room} - old ${i}`);
            await rc.cmd('HSET', `tt:idx:${Math.floor(id / 100)}`, id % 100, `tt:room:${k}:log`);
        }
        await rc.cmd('SET', `tt:room:${k}:seq`, '3');
    });
    const n3 = await startNode(redis, 'e3', ['--rate-limit', '0', '--retain-days', '1']);
    fx.extraServers.push(n3);
    await on(n3, uniq('reader'), { room });
    await withRedis(async (rc) => {
        await until(async () => (await rc.cmd('XLEN', `tt:room:${k}:log`)) === 0, 10000, 'the old entries trimmed', 50);
        await until(async () => (await rc.cmd('EXISTS', 'tt:idx:90000', 'tt:idx:90001')) === 0, 10000, 'their index buckets gone', 50);
    });
    await n3.stopClean();
});

test('a message with more than 5,000 after it in its stream is not changed (not_permitted), and stays as it was', T, async () => {
    const room = uniq('#clong');
    const k = roomKey(room);
    const ana = await on(n1, uniq('ana'), { room });
    // Its history as publish.lua would have written it, ids far above the others' (no node
    // follows them live: the room's position is read when it subscribes).
    const base = 8000000;
    const now = Date.now();
    await withRedis(async (rc) => {
        const cmds = [];
        for (let i = 0; i <= 5002; i++) {
            const id = base + i;
            cmds.push(rc.cmd('XADD', `tt:room:${k}:log`, `${id}-0`, 'm', `${i + 1} ${id} ${now} e1 ${i} ${ana.nickname} ${room} - old ${i}`));
            cmds.push(rc.cmd('HSET', `tt:idx:${Math.floor(id / 100)}`, id % 100, `tt:room:${k}:log`));
        }
        await Promise.all(cmds);
    });
    await ana.expectError({ type: 'edit', message_id: base, message: { text: 'too late' } }, 'not_permitted');
    await ana.expectError({ type: 'delete', message_id: base }, 'not_permitted');
    const [, fields] = await rawEntry(room, base);
    assert.deepEqual(fields, ['m', `1 ${base} ${now} e1 0 ${ana.nickname} ${room} - old 0`]);
    // Exactly 5,000 after it: changed.
    const d = await ana.request({ type: 'edit', message_id: base + 2, message: { text: 'in time' } }, 'done');
    assert.equal(d.type, 'done', JSON.stringify(d));
    assert.match((await rawEntry(room, base + 2))[1][1], / in time$/);
});

/** The Redis client ids of the subscription connections of the process pid. */
async function pubsubClientsOf(pid) {
    const inodes = new Set();
    for (const fd of fs.readdirSync(`/proc/${pid}/fd`)) {
        try {
            const m = /^socket:\[(\d+)\]$/.exec(fs.readlinkSync(`/proc/${pid}/fd/${fd}`));
            if (m) inodes.add(m[1]);
        } catch {
            // closed meanwhile
        }
    }
    const ports = new Set();
    for (const line of fs.readFileSync('/proc/net/tcp', 'utf8').split('\n').slice(1)) {
        const f = line.trim().split(/\s+/);
        if (f.length > 9 && inodes.has(f[9])) ports.add(parseInt(f[1].split(':')[1], 16));
    }
    const list = await withRedis((rc) => rc.cmd('CLIENT', 'LIST', 'TYPE', 'pubsub'));
    return list
        .split('\n')
        .filter((l) => ports.has(Number(/ addr=[^ ]*:(\d+) /.exec(` ${l}`)?.[1])))
        .map((l) => /(?:^| )id=(\d+)/.exec(l)[1]);
}

test('a node whose subscription missed messages fills the gap without the deleted one, and the room goes on', T, async () => {
    const room = uniq('#cgap');
    const ana = await on(n1, uniq('ana'), { room });
    const ben = await on(n2, uniq('ben'), { room });
    const first = await say(ana, room, 'seen by all');
    await everyoneHas([ana, ben], first);
    const pid = n2.proc.pid;
    const ids = await pubsubClientsOf(pid);
    assert.equal(ids.length, 1, `node 2 has one subscription connection (${ids})`);
    // Node 2 stopped, its subscription cut: what follows it reads from the stream.
    process.kill(pid, 'SIGSTOP');
    let x;
    let y;
    let z;
    try {
        await until(() => procState(pid) === 'T', 2000, 'node 2 stopped');
        assert.equal(await withRedis((rc) => rc.cmd('CLIENT', 'KILL', 'ID', ids[0])), 1);
        x = await say(ana, room, 'deleted while node 2 was away');
        y = await say(ana, room, 'kept, sent while node 2 was away');
        z = await say(ana, room, 'also deleted, the newest');
        await ana.request({ type: 'delete', message_id: x }, 'done');
        await ana.request({ type: 'delete', message_id: z }, 'done');
    } finally {
        process.kill(pid, 'SIGCONT');
    }
    await ben.next((m) => m.type === 'room' && m.id === y, 20000);
    // The room goes on past the deleted newest one (no stall on its number).
    const w = await say(ana, room, 'after the gap');
    await ben.next((m) => m.type === 'room' && m.id === w, 20000);
    await pong(ben);
    // y and w were taken in that order; nothing else of the room is left (no x, no z, no second copy).
    const left = ben.inbox.items.filter((m) => m.type === 'room').map((m) => m.id);
    assert.deepEqual(left, [], 'ben got the kept ones once, never the deleted');
    const msgs = await history(ben, room);
    assert.deepEqual(msgs.filter((m) => m.deleted).map((m) => m.id), [x, z]);
});

test('a private between accounts on two nodes: both sides hear edited and deleted once; history with `with` on both nodes shows it; the text leaves the stream', T, async () => {
    const ana = await account(n1, uniq('Ana'));
    const bob = await account(n2, uniq('Bob'));
    clients.push(ana, bob);
    const ack = await ana.request({ type: 'private', to: bob.nickname, message: { text: 'psst across' } }, 'ack');
    const id = ack.message_id;
    await bob.next((m) => m.type === 'private' && m.id === id);
    await ana.request({ type: 'edit', message_id: id, message: { text: 'psst, edited' } }, 'done');
    const ea = await ana.next((m) => m.type === 'edited');
    const eb = await bob.next((m) => m.type === 'edited');
    assert.deepEqual([ea.id, ea.with, eb.id, eb.with, eb.room, eb.message.text], [id, bob.nickname, id, ana.nickname, undefined, 'psst, edited']);
    for (const [c, other] of [[ana, bob], [bob, ana]]) {
        const h = await c.request({ type: 'history', with: other.nickname }, 'history');
        assert.deepEqual(h.messages.map((m) => [m.id, m.message.text, typeof m.edited_ts]), [[id, 'psst, edited', 'number']]);
    }
    await bob.expectError({ type: 'edit', message_id: id, message: { text: 'no' } }, 'not_permitted');
    const carol = await account(n2, uniq('Carol'));
    clients.push(carol);
    await carol.expectError({ type: 'delete', message_id: id }, 'not_found');
    await ana.request({ type: 'delete', message_id: id }, 'done');
    const db = await bob.next((m) => m.type === 'deleted');
    assert.deepEqual(db, { type: 'deleted', id, with: ana.nickname, by: ana.nickname });
    // Each side once: a ping after it brings no second copy.
    await pong(bob);
    assert.equal(bob.inbox.items.filter((m) => m.type === 'edited' || m.type === 'deleted').length, 0);
    for (const [c, other] of [[ana, bob], [bob, ana]]) {
        const h = await c.request({ type: 'history', with: other.nickname }, 'history');
        assert.deepEqual(h.messages.map((m) => [m.id, m.deleted]), [[id, true]]);
    }
    await withRedis(async (rc) => {
        const entries = await rc.cmd('XRANGE', `tt:dm:@${[ana.nickname, bob.nickname].map((n) => n.toLowerCase()).sort().join('@')}:log`, '-', '+');
        assert.equal(entries.length, 1);
        assert.ok(!JSON.stringify(entries).includes('psst'), 'no text of it in the stream');
    });
});
