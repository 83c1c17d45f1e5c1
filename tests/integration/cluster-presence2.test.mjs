// One person on several nodes at once (an account logged in on two, a
// guest resumed on another), in one room: the members of every node hear
// member_joined when the person first comes into the room, through any
// node, and member_left once, when its last node lets it go; `who` lists
// it once meanwhile. The loss of one of the nodes holding it (kill -9)
// takes away that node's share only: no node_lost for a person another
// node still holds.
//
// Non-events are proven with a later reply on the same connection (a room
// message or a ping), never with a timer; a message published by a node
// after a presence change of its own reaches every node after it (one
// Redis link a node, in order). Skipped, saying why, when the binary has no
// --redis.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

import { account, connect, HOST, join, login, parseMetrics, uniq } from './helpers.mjs';
import { clusterFixture, clusterMissing, readyz, redisClient, roomKey, startNode, startRedis, until, waitReady } from './redis.mjs';

const SKIP = clusterMissing();
const T = { timeout: 60000, skip: SKIP ?? false };
const NODE_ARGS = ['--rate-limit', '0'];

let redis;
let n1;
let n2;
let n3;
const fx = clusterFixture(['q1', 'q2', 'q3'], {
    args: NODE_ARGS,
    skip: SKIP,
    ready: (f) => {
        ({ redis } = f);
        [n1, n2, n3] = f.nodes;
    },
});
const { clients } = fx;
const extra = fx.extraServers;

async function on(server, nick, opts) {
    const c = await login(server, nick, opts);
    clients.push(c);
    return c;
}

async function acct(server, nick, opts) {
    const c = await account(server, nick, opts);
    clients.push(c);
    return c;
}

const isPresence = (m) => m.type === 'member_joined' || m.type === 'member_left';

/** What presence events c got about nick, once everything sent before a
 * room message `text` (sent by someone after the change) has arrived. */
async function presenceUntil(c, room, text, nick) {
    const got = [];
    for (;;) {
        const m = await c.next((x) => (isPresence(x) && x.room === room) || (x.type === 'room' && x.to === room && x.message.text === text));
        if (m.type === 'room') return got;
        if (m.nickname === nick) got.push(`${m.type}${m.reason ? ` ${m.reason}` : ''}`);
    }
}

/** A room message from c, its echo waited for. */
async function say(c, room, text) {
    await c.request({ type: 'room', to: room, message: { text } }, 'ack');
}

/** The presence events each observer got about nick once a message from
 * each sender has arrived: a sender on each node whose change counts (a
 * node's messages follow its presence changes, not another node's). */
async function presenceAfter(observers, room, senders, text, nick) {
    for (const s of senders) await say(s, room, `${text} (${s.nickname})`);
    const out = [];
    for (const o of observers) {
        const got = [];
        for (const s of senders) got.push(...(await presenceUntil(o, room, `${text} (${s.nickname})`, nick)));
        out.push(got);
    }
    return out;
}

async function sessions(server) {
    return parseMetrics(await (await fetch(`http://${HOST}:${server.port}/metrics`)).text()).get('tertulia_sessions');
}

/** Closes c and waits until its node counts the connection gone. */
async function closeOn(server, c) {
    const before = await sessions(server);
    await c.close();
    await until(async () => (await sessions(server)) <= before - 1, 10000, `${server.nodeName ?? 'node'} saw the close`, 20);
}

/** An account (nick) logged in on nodes a and b, joined to room on a (each
 * observer hears member_joined), then on b; returns [on a, on b, b's
 * joined]. */
async function onTwo(a, b, nick, room, observers) {
    const xa = await acct(a, nick);
    const xb = await acct(b, nick, { register: false });
    await join(xa, room);
    for (const o of observers) await o.next((m) => m.type === 'member_joined' && m.nickname === nick);
    return [xa, xb, await join(xb, room)];
}

/** The last node holding nick lets it go (closing c on server): each
 * observer hears one member_left, before a later message from `by`. */
async function lastGoes(server, c, nick, room, observers, by) {
    await closeOn(server, c);
    await say(by, room, `${nick} gone`);
    for (const o of observers) {
        const got = await presenceUntil(o, room, `${nick} gone`, nick);
        assert.equal(got.length, 1, `${o.nickname}: ${JSON.stringify(got)}`);
        assert.match(got[0], /^member_left /);
    }
}

async function whoOnce(c, room, nicks) {
    const who = await c.request({ type: 'who', room }, 'members');
    assert.deepEqual([...who.members].sort(), [...nicks].sort(), `who on ${c.nickname}'s node`);
}

test('an account in one room through two nodes: one member_joined, no member_left while one node still has it, one when the last lets it go; who lists it once', T, async () => {
    const room = uniq('twice');
    const oa = await on(n1, uniq('oa'), { room });
    const ob = await on(n2, uniq('ob'), { room });
    const nick = uniq('Acct');
    // The second node's join: it was in the room already, for everyone.
    const [xa, xb, jb] = await onTwo(n1, n2, nick, room, [oa, ob]);
    assert.deepEqual(jb.members.filter((m) => m === nick), [nick], 'joined.members lists it once');
    assert.equal(jb.member_count, 3);
    await say(xb, room, 'from b');
    for (const o of [oa, ob]) assert.deepEqual(await presenceUntil(o, room, 'from b', nick), [], `${o.nickname}: no second member_joined`);
    for (const o of [oa, ob]) await whoOnce(o, room, [oa.nickname, ob.nickname, nick]);
    // Its connection on node 1 ends: node 2 still has it in the room.
    await closeOn(n1, xa);
    await say(oa, room, 'after a closed');
    for (const o of [oa, ob]) assert.deepEqual(await presenceUntil(o, room, 'after a closed', nick), [], `${o.nickname}: no member_left`);
    for (const o of [oa, ob]) await whoOnce(o, room, [oa.nickname, ob.nickname, nick]);
    const rooms = await oa.request({ type: 'rooms', limit: 200 }, 'rooms');
    assert.equal(rooms.rooms.find((r) => r.name === room)?.members, 3, 'counted once');
    // The last one: each observer hears member_left once.
    await lastGoes(n2, xb, nick, room, [oa, ob], ob);
    for (const o of [oa, ob]) await whoOnce(o, room, [oa.nickname, ob.nickname]);
});

test('a guest resumed on a node that saw it through another: no second member_joined; leaving the room on the first node (still logged in there) leaves nobody\'s view; leaving on the second, one member_left', T, async () => {
    const room = uniq('resumed');
    const oa = await on(n1, uniq('oa'), { room });
    const ob = await on(n2, uniq('ob'), { room });
    const tab1 = await on(n1, uniq('guest'), { room });
    const nick = tab1.nickname;
    for (const o of [oa, ob]) await o.next((m) => m.type === 'member_joined' && m.nickname === nick);
    // Node 2 knows it through node 1 (a mirror): the resume there keeps it.
    const tab2 = await on(n2, nick, { resume: tab1.resume, room });
    assert.deepEqual(tab2.joined.members.filter((m) => m === nick), [nick]);
    await say(tab2, room, 'tab2 here');
    for (const o of [oa, ob]) assert.deepEqual(await presenceUntil(o, room, 'tab2 here', nick), [], `${o.nickname}: no second member_joined`);
    // Leaving on node 1, where it stays logged in: still in the room.
    tab1.send({ type: 'leave', room });
    await tab1.next('left');
    await say(oa, room, 'tab1 left');
    for (const o of [oa, ob]) assert.deepEqual(await presenceUntil(o, room, 'tab1 left', nick), [], `${o.nickname}: no member_left`);
    for (const o of [oa, ob]) await whoOnce(o, room, [oa.nickname, ob.nickname, nick]);
    // Both tabs still get the room's messages: tab2 by the room, tab1 not.
    await say(ob, room, 'to the room');
    assert.equal((await tab2.next((m) => m.type === 'room' && m.message.text === 'to the room')).to, room);
    // Back on node 1: no member_joined (it never left).
    await join(tab1, room);
    await say(tab1, room, 'tab1 back');
    for (const o of [oa, ob]) assert.deepEqual(await presenceUntil(o, room, 'tab1 back', nick), [], `${o.nickname}: nothing on the return`);
    // Leaving on both: one member_left each, with reason leave.
    for (const t of [tab1, tab2]) {
        t.send({ type: 'leave', room });
        await t.next('left');
    }
    assert.deepEqual(await presenceAfter([oa, ob], room, [oa, ob], 'both left', nick), [['member_left leave'], ['member_left leave']]);
    for (const o of [oa, ob]) await whoOnce(o, room, [oa.nickname, ob.nickname]);
});

test('a person in a room only through another node, logged in here too: the members here see it (who, member_joined), and its join here is quiet', T, async () => {
    const room = uniq('elsewhere');
    const oa = await on(n1, uniq('oa'), { room });
    const oc = await on(n3, uniq('oc'), { room });
    await oa.next((m) => m.type === 'member_joined' && m.nickname === oc.nickname);
    const nick = uniq('Both');
    const xa = await acct(n1, nick); // in no room on node 1
    const xc = await acct(n3, nick, { register: false });
    await join(xc, room);
    for (const o of [oa, oc]) await o.next((m) => m.type === 'member_joined' && m.nickname === nick);
    await whoOnce(oa, room, [oa.nickname, oc.nickname, nick]);
    const ja = await join(xa, room);
    assert.deepEqual([...ja.members].sort(), [oa.nickname, oc.nickname, nick].sort());
    assert.deepEqual(await presenceAfter([oa, oc], room, [xa], 'a joined', nick), [[], []], 'no second member_joined');
    // Node 3 lets it go (its only connection there closes): node 1 keeps it.
    await closeOn(n3, xc);
    assert.deepEqual(await presenceAfter([oa, oc], room, [oc], 'c gone', nick), [[], []]);
    for (const o of [oa, oc]) await whoOnce(o, room, [oa.nickname, oc.nickname, nick]);
});

test('kill -9 of one of the two nodes that hold a person: the third node\'s members see node_lost for that node\'s own people only; who still lists the person', T, async () => {
    const n4 = await startNode(redis, 'q4', NODE_ARGS);
    extra.push(n4);
    const room = uniq('lost2');
    const oc = await on(n3, uniq('oc'), { room });
    const ob = await on(n2, uniq('ob'), { room });
    const nick = uniq('Held');
    const [, x2] = await onTwo(n4, n2, nick, room, [oc, ob]);
    const quiet = await on(n4, uniq('quiet'), { room }); // on the lost node only
    for (const o of [oc, ob]) await o.next((m) => m.type === 'member_joined' && m.nickname === quiet.nickname);
    await say(x2, room, 'both in');
    for (const o of [oc, ob]) assert.deepEqual(await presenceUntil(o, room, 'both in', nick), [], `${o.nickname}: no second member_joined`);
    await n4.stop('SIGKILL');
    const killedAt = Date.now();
    for (const o of [oc, ob]) {
        const left = await o.next((m) => m.type === 'member_left' && m.nickname === quiet.nickname, 15000);
        assert.equal(left.reason, 'node_lost');
    }
    assert.ok(Date.now() - killedAt <= 15000, `noticed after ${Date.now() - killedAt} ms`);
    // The reap told everything of the lost node before this message.
    await say(ob, room, 'after the loss');
    for (const o of [oc, ob]) assert.deepEqual(await presenceUntil(o, room, 'after the loss', nick), [], `${o.nickname}: ${nick} stays`);
    for (const o of [oc, ob]) await whoOnce(o, room, [oc.nickname, ob.nickname, nick]);
    // The last node that holds it lets it go: one member_left, everywhere.
    await lastGoes(n2, x2, nick, room, [oc, ob], ob);
});

test('an account logging in on a node that knows it through another (a mirror of it in a room there) is the same person', T, async () => {
    const room = uniq('mirror');
    const oa = await on(n1, uniq('oa'), { room });
    const nick = uniq('Late');
    const xb = await acct(n2, nick);
    await join(xb, room);
    await oa.next((m) => m.type === 'member_joined' && m.nickname === nick);
    const xa = await acct(n1, nick, { register: false });
    await join(xa, room);
    await say(xa, room, 'late in');
    assert.deepEqual(await presenceUntil(oa, room, 'late in', nick), []);
});

test('presence.lua: every node\'s share is published (P+/P- with its name); join and leave return 1 only when the person comes into the room or leaves it cluster-wide; the reap publishes the lost node\'s shares only', T, async () => {
    const script = fs.readFileSync(path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'src', 'cluster', 'presence.lua'), 'utf8');
    const rc = redisClient(redis.port);
    const sub = redisClient(redis.port);
    try {
        const sha = await rc.cmd('SCRIPT', 'LOAD', script);
        // Nodes no tertulia runs as, in a room no tertulia has.
        const room = uniq('Script');
        const k = roomKey(room);
        await sub.subscribe(`tt:room:${k}`);
        const call = (...args) => rc.cmd('EVALSHA', sha, 0, ...args);
        const op = (name, ...args) => call(name, 'tt:room:', ...args);
        assert.equal(await op('join', k, 'Zed', 'zz1', '1', room), 1, 'the first node: it came in');
        assert.equal(await op('join', k, 'Zed', 'zz2', '2', room), 0, 'a second node: it was in already');
        assert.equal(await op('join', k, 'Zed', 'zz2', '3', room), 0, 'again: nothing changed');
        assert.equal(await op('join', k, 'Ann', 'zz3', '4', room), 1);
        assert.equal(await op('leave', k, 'Zed', 'zz1', '5', 'leave'), 0, 'zz2 still has it');
        // zz3 is lost (known, with no lease): the reap ends its shares. In
        // one transaction, or the running nodes' lease renewals reap it.
        const tx = [rc.cmd('MULTI'), rc.cmd('SADD', 'tt:nodes', 'zz3'), op('reap', 'zz3', '6', '0'), rc.cmd('EXEC')];
        assert.deepEqual((await Promise.all(tx))[3], [1, 1]);
        assert.equal(await op('reap', 'zz3', '7', '0'), 0, 'once');
        assert.equal(await op('leave', k, 'Zed', 'zz2', '8', 'disconnect'), 1, 'the last node: it left');
        const got = [];
        for (let i = 0; i < 5; i++) got.push((await sub.messages.next(() => true)).message);
        assert.deepEqual(got, ['P+ zz1 Zed 1', 'P+ zz2 Zed 2', 'P+ zz3 Ann 4', 'P- zz1 Zed leave 5', 'P- zz3 Ann node_lost 6']);
        assert.equal((await sub.messages.next(() => true)).message, 'P- zz2 Zed disconnect 8');
    } finally {
        await rc.close();
        await sub.close();
    }
});

test('a node killed and started again under its name within its lease: its old people leave (node_lost), as if it was reaped; its guest keeps its nickname for its token', T, async () => {
    const name = 'q5';
    let n5 = await startNode(redis, name, NODE_ARGS);
    extra.push(n5);
    const room = uniq('restart');
    const obs = await on(n1, uniq('obs'), { room });
    const ghost = await on(n5, uniq('ghost'), { room });
    await obs.next((m) => m.type === 'member_joined' && m.nickname === ghost.nickname);
    await n5.stop('SIGKILL');
    n5 = await startNode(redis, name, NODE_ARGS);
    extra.push(n5);
    const left = await obs.next((m) => m.type === 'member_left' && m.nickname === ghost.nickname, 15000);
    assert.equal(left.reason, 'node_lost');
    await whoOnce(obs, room, [obs.nickname]);
    // Its guest is in its grace time: the nickname is nobody else's, and
    // its token takes it back, on the node back or another.
    const other = await connect(n2, { label: 'other' });
    clients.push(other);
    await other.expectError({ type: 'login', nickname: ghost.nickname }, 'nickname_taken');
    const back = await on(n5, ghost.nickname, { resume: ghost.resume, room });
    assert.equal(back.welcome.nickname, ghost.nickname);
    await obs.next((m) => m.type === 'member_joined' && m.nickname === ghost.nickname);
});

test('Redis paused while people come and go on a node: once it is back, the node restates its presence: the other node\'s members see who left and who came meanwhile, and a nickname let go meanwhile is free', T, async () => {
    // Its own Redis and nodes: the pause must not touch the other tests'.
    const r = await startRedis();
    fx.extraRedis.push(r);
    const [m1, m2] = await Promise.all([startNode(r, 'f1', NODE_ARGS), startNode(r, 'f2', NODE_ARGS)]);
    extra.push(m1, m2);
    const room = uniq('flap');
    const obs = await on(m1, uniq('obs'), { room });
    const goes = await on(m2, uniq('goes'), { room });
    const comes = await on(m2, uniq('comes'));
    const bye = await on(m2, uniq('bye'));
    await obs.next((m) => m.type === 'member_joined' && m.nickname === goes.nickname);
    await r.pause();
    await until(async () => (await readyz(m2)) !== 200, 10000, 'node 2 noticed the pause', 50);
    // Presence needs no Redis: the node answers from its view.
    goes.send({ type: 'leave', room });
    await goes.next('left');
    await join(comes, room);
    await closeOn(m2, bye); // its nickname is released (a goodbye: no grace time)
    await r.resume();
    for (const n of [m1, m2]) await waitReady(n);
    const left = await obs.next((m) => m.type === 'member_left' && m.nickname === goes.nickname, 10000);
    assert.equal(left.reason, 'disconnect');
    await obs.next((m) => m.type === 'member_joined' && m.nickname === comes.nickname, 10000);
    await whoOnce(obs, room, [obs.nickname, comes.nickname]);
    const again = await on(m1, bye.nickname);
    assert.equal(again.welcome.nickname, bye.nickname);
});

test('a kick of a person in the room through two nodes: both its connections are kicked, and every member hears one member_left (kick)', T, async () => {
    const room = `#${uniq('kick2')}`;
    const own = await acct(n1, uniq('own'));
    await join(own, room);
    const watcher = await on(n2, uniq('w'), { room });
    await own.next((m) => m.type === 'member_joined' && m.nickname === watcher.nickname);
    const nick = uniq('Kicked');
    const [xa, xb] = await onTwo(n1, n2, nick, room, [own, watcher]);
    // Node 1 knows node 2's share before the kick (else it would see the
    // person leave, come back and leave).
    assert.deepEqual(await presenceAfter([own, watcher], room, [xb], 'both in', nick), [[], []]);
    const d = await own.request({ type: 'kick', room, nickname: nick, reason: 'out' }, 'done');
    assert.equal(d.type, 'done', JSON.stringify(d));
    for (const x of [xa, xb]) assert.equal((await x.next('kicked')).room, room);
    const got = await presenceAfter([own, watcher], room, [own, watcher], 'after the kick', nick);
    assert.deepEqual(got, [['member_left kick'], ['member_left kick']]);
    for (const o of [own, watcher]) await whoOnce(o, room, [own.nickname, watcher.nickname]);
});
