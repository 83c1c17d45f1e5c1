// Moderation in a cluster is one: roles, topics, bans and the audit log live
// in Redis, and every change reaches every node's members once, in Redis's
// order. A kick or a ban given on one node takes its target out on the node
// it is on; a ban holds at every node's logins and joins, also on a node
// started after it; changes made on two nodes at once both hold; a node
// that missed a change (a number missing) reads everything again. Skipped,
// saying why, when the binary has no --redis.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { account, connect, join, login, PASSWORD, uniq } from './helpers.mjs';
import { clusterFixture, clusterMissing, redisClient, roomKey, startNode, until } from './redis.mjs';

const SKIP = clusterMissing();
const T = { timeout: 60000, skip: SKIP ?? false };
const ADMIN = 'mod_admin';
const NODE_ARGS = ['--rate-limit', '0', '--admin', ADMIN];

let redis;
let n1;
let n2;
const fx = clusterFixture(['m1', 'm2'], {
    args: NODE_ARGS,
    skip: SKIP,
    ready: (f) => {
        ({ redis } = f);
        [n1, n2] = f.nodes;
    },
});
const { clients } = fx;

const track = (c) => {
    clients.push(c);
    return c;
};
const acct = async (server, nick, opts) => track(await account(server, nick, opts));
const guest = async (server, nick, opts) => track(await login(server, nick, opts));

/** Sends req and waits for its `done`. */
async function done(c, req) {
    const m = await c.request(req, 'done');
    assert.equal(m.type, 'done', `${JSON.stringify(req)} → ${JSON.stringify(m)}`);
    return m;
}

/** c's messages matching pred that have arrived and not been taken. */
function pending(c, pred) {
    return c.inbox.items.filter(pred);
}

test('roles and topics are one across nodes: the owner on node 1, an op on node 2; each change reaches every member once', T, async () => {
    const room = `#${uniq('roles')}`;
    const ana = await acct(n1, uniq('ana'));
    assert.deepEqual((await join(ana, room)).roles, { owner: ana.nickname, ops: [] });
    const bob = await guest(n2, uniq('bob'));
    const bj = await join(bob, room);
    assert.deepEqual(bj.roles, { owner: ana.nickname, ops: [] }, 'node 2 knows the owner node 1 gave the room');
    const cleo = await acct(n2, uniq('cleo'));
    await join(cleo, room);
    await done(ana, { type: 'topic', room, topic: 'one topic' });
    for (const c of [ana, bob, cleo]) {
        const t = await c.next({ type: 'topic' });
        assert.deepEqual({ room: t.room, topic: t.topic, by: t.by }, { room, topic: 'one topic', by: ana.nickname });
    }
    // The owner (node 1) names an op who is on node 2: a remote account.
    await done(ana, { type: 'op', room, nickname: cleo.nickname });
    for (const c of [ana, bob, cleo]) {
        const r = await c.next({ type: 'roles' });
        assert.deepEqual({ owner: r.owner, ops: r.ops }, { owner: ana.nickname, ops: [cleo.nickname] });
    }
    // The op on node 2 sets the topic; everyone hears it, and the first
    // topic came once (this later change arrived after any copy of it).
    await done(cleo, { type: 'topic', room, topic: 'from node 2' });
    for (const c of [ana, bob, cleo]) {
        assert.equal((await c.next({ type: 'topic' })).topic, 'from node 2');
        assert.equal(pending(c, (m) => m.type === 'topic' || m.type === 'roles').length, 0, 'each change once');
    }
    // A guest is no op, and may not set the topic on either node.
    await bob.expectError({ type: 'topic', room, topic: 'mine' }, 'not_permitted');
    // A newcomer on either node sees the state.
    for (const n of [n1, n2]) {
        const d = await guest(n, uniq('dan'));
        const dj = await join(d, room);
        assert.deepEqual(dj.roles, { owner: ana.nickname, ops: [cleo.nickname] });
        assert.equal(dj.topic, 'from node 2');
    }
    // The op may not act on the owner, though they are on different nodes.
    await cleo.expectError({ type: 'kick', room, nickname: ana.nickname }, 'not_permitted');
    // The audit log is one: read on node 2, it has node 1's actions too.
    const a = await cleo.request({ type: 'audit', room }, 'audit');
    assert.deepEqual(a.entries.map((e) => e.action), ['create', 'topic', 'op', 'topic']);
    assert.deepEqual(a.entries.map((e) => e.by), [ana.nickname, ana.nickname, ana.nickname, cleo.nickname]);
    // Redis holds the room's state.
    const rc = redisClient(redis.port);
    try {
        const h = await rc.cmd('HGETALL', `tt:mod:room:${roomKey(room)}`);
        const o = Object.fromEntries(h.reduce((acc, v, i) => (i % 2 ? acc : [...acc, [v, h[i + 1]]]), []));
        assert.equal(o.owner, ana.nickname);
        assert.equal(o.ops, cleo.nickname);
        assert.equal(o.topic, 'from node 2');
    } finally {
        await rc.close();
    }
});

test('a kick on node 1 takes out a member on node 2; a room ban holds at joins on both nodes until it is lifted', T, async () => {
    const room = `#${uniq('kick')}`;
    const own = await acct(n1, uniq('own'));
    await join(own, room);
    const watcher = await guest(n2, uniq('w'), { room });
    const eve = await guest(n2, uniq('eve'), { room });
    await done(own, { type: 'kick', room, nickname: eve.nickname, reason: 'cool off' });
    const k = await eve.next({ type: 'kicked' });
    assert.deepEqual({ room: k.room, by: k.by, reason: k.reason, ban: k.ban }, { room, by: own.nickname, reason: 'cool off', ban: undefined });
    for (const c of [own, watcher]) {
        const ml = await c.next({ type: 'member_left', nickname: eve.nickname });
        assert.equal(ml.reason, 'kick');
    }
    // A kick is no ban: eve comes back, then is banned for good.
    await join(eve, room);
    await done(own, { type: 'ban', room, nickname: eve.nickname, reason: 'again' });
    const kb = await eve.next({ type: 'kicked' });
    assert.equal(kb.ban, true);
    const err = await eve.expectError({ type: 'join', room }, 'banned');
    assert.equal(err.reason, 'again');
    // Another connection of eve's name on node 1 (after eve left) is banned there too.
    await eve.close();
    const eveAgain = await guest(n1, eve.nickname);
    await eveAgain.expectError({ type: 'join', room }, 'banned');
    // The bans list is one: node 2's owner view (an admin there).
    const admin = await acct(n2, ADMIN);
    const b = await admin.request({ type: 'bans', room }, 'bans');
    assert.deepEqual(b.bans.map((x) => x.nickname), [eve.nickname]);
    // Lifted on node 2, it is gone on node 1.
    await done(admin, { type: 'unban', room, nickname: eve.nickname });
    await until(async () => {
        const r = await eveAgain.request({ type: 'join', room }, 'joined');
        return r.type === 'joined';
    }, 10000, 'the unban to reach node 1');
});

test('a server-wide ban on node 1 closes the account\'s connections on node 2 with 4003 and holds at logins everywhere, on a node started later too', T, async () => {
    const admin = await acct(n1, ADMIN, { register: false }).catch(() => acct(n1, ADMIN));
    const nick = uniq('mal');
    const m2 = await acct(n2, nick);
    const m2b = await acct(n2, nick, { register: false });
    await done(admin, { type: 'ban', nickname: nick, reason: 'abuse' });
    for (const c of [m2, m2b]) assert.equal((await c.waitClose()).code, 4003);
    for (const n of [n1, n2]) {
        const c = track(await connect(n));
        const e = await c.expectError({ type: 'login', nickname: nick, password: PASSWORD }, 'banned');
        assert.equal(e.reason, 'abuse');
    }
    // A third node, started now, loads the ban from Redis.
    const n3 = await startNode(redis, 'm3', NODE_ARGS);
    fx.extraServers.push(n3);
    try {
        const c = track(await connect(n3));
        await c.expectError({ type: 'login', nickname: nick, password: PASSWORD }, 'banned');
        await done(admin, { type: 'unban', nickname: nick });
        // The unban reaches node 3 too.
        await until(async () => {
            const t = track(await connect(n3));
            t.send({ type: 'login', nickname: nick, password: PASSWORD });
            const r = await t.next((m) => m.type === 'welcome' || m.type === 'error');
            await t.close();
            return r.type === 'welcome';
        }, 10000, 'the unban to reach node 3');
    } finally {
        await n3.stopClean();
    }
    const aud = await admin.request({ type: 'audit' }, 'audit');
    assert.deepEqual(aud.entries.filter((e) => e.target === nick).map((e) => e.action), ['ban', 'unban']);
});

test('two changes to one room at the same moment on two nodes both hold, and every node ends with the same roles', T, async () => {
    const room = `#${uniq('race')}`;
    const own = await acct(n1, uniq('own'));
    await join(own, room);
    // An admin (an owner of every room) on node 2, not in the room.
    const admin = await acct(n2, ADMIN, { register: false }).catch(() => acct(n2, ADMIN));
    const a = await acct(n1, uniq('opa'));
    const b = await acct(n2, uniq('opb'));
    await a.close();
    await b.close();
    await until(async () => (await admin.request({ type: 'bans', room }, 'bans')).type === 'bans', 10000, 'node 2 to have the room');
    await Promise.all([
        done(own, { type: 'op', room, nickname: a.nickname }),
        done(admin, { type: 'op', room, nickname: b.nickname }),
    ]);
    const want = [a.nickname, b.nickname].sort();
    for (const n of [n1, n2]) {
        await until(async () => {
            const g = await guest(n, uniq('look'));
            const j = await join(g, room);
            await g.close();
            return JSON.stringify([...j.roles.ops].sort()) === JSON.stringify(want);
        }, 10000, `both ops on ${n === n1 ? 'node 1' : 'node 2'}`);
    }
});

test('a node that finds a change\'s number missing reads moderation again, and ends right', T, async () => {
    const room = `#${uniq('gap')}`;
    const own = await acct(n1, uniq('own'));
    await join(own, room);
    const g = await guest(n2, uniq('g'), { room });
    // A change nobody heard of: its number is taken, its message never sent.
    const rc = redisClient(redis.port);
    try {
        await rc.cmd('INCR', 'tt:mod:seq');
        await rc.cmd('HSET', `tt:mod:room:${roomKey(room)}`, 'topic', 'set behind the nodes\' backs', 'topic_by', own.nickname, 'topic_ts', String(Date.now()));
    } finally {
        await rc.close();
    }
    // The next change shows the gap: both nodes read everything and hear
    // of the topic too, then of the op.
    const op = await acct(n2, uniq('op'));
    await join(op, room);
    await done(own, { type: 'op', room, nickname: op.nickname });
    const t = await g.next({ type: 'topic' });
    assert.equal(t.topic, 'set behind the nodes\' backs');
    await until(async () => {
        const j = await join(track(await login(n2, uniq('look'))), room);
        return j.roles.ops.includes(op.nickname) && j.topic === 'set behind the nodes\' backs';
    }, 10000, 'node 2 to read moderation again');
});

test('a room kept on a node with no member there: its first member there sees the people other nodes have in it', T, async () => {
    const room = `#${uniq('kept')}`;
    const other = `#${uniq('side')}`;
    const own = await acct(n1, uniq('own'));
    await join(own, room);
    await join(own, other);
    // Node 2 has the room too (kept: it has an owner), with nobody there.
    const admin = await acct(n2, ADMIN, { register: false }).catch(() => acct(n2, ADMIN));
    await until(async () => (await admin.request({ type: 'bans', room }, 'bans')).type === 'bans', 10000, 'node 2 to have the room');
    // Its owner comes again on node 1 while node 2 has nobody in it.
    await own.request({ type: 'leave', room }, 'left');
    await join(own, room);
    // Node 2 has taken that in: a later message of node 1's, on another
    // room's channel, has reached node 2 (one subscription, in order).
    const w = await guest(n2, uniq('w'), { room: other });
    await own.request({ type: 'room', to: other, message: { text: 'after it' } }, 'ack');
    await w.next((m) => m.type === 'room' && m.message.text === 'after it');
    const j = await join(w, room);
    assert.ok(j.members.includes(own.nickname), `joined.members ${JSON.stringify(j.members)}`);
    const who = await w.request({ type: 'who', room }, 'members');
    assert.deepEqual([...who.members].sort(), [own.nickname, w.nickname].sort());
});
