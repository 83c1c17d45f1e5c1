// Two nodes while their Redis fails (the cluster spec, "Behaviour"): Redis
// paused with SIGSTOP for 5 s, Redis stopped and restarted with AOF on,
// the nodes' subscription connections killed during a burst. Each time:
// room messages are refused with `unavailable` while Redis is gone (and
// such a message is never delivered nor stored), `ping` keeps answering,
// sending works again once Redis is back, and every member saw every
// accepted message exactly once, in one order (no gap, no duplicate).
//
// Each test has its own Redis and its own two nodes. Skipped, saying why,
// when the binary has no --redis.

import assert from 'node:assert/strict';
import { after, test } from 'node:test';

import { join, login, sleep, uniq } from './helpers.mjs';
import { assertOneOrder, clusterMissing, endBurst, sayRoom, startNode, startRedis, streamEntries, until, waitReady } from './redis.mjs';

const SKIP = clusterMissing();
const T = { timeout: 60000, skip: SKIP ?? false };

// Flood control off: the senders here measure the cluster, not the limit.
const NODE_ARGS = ['--rate-limit', '0'];

const clients = [];
const nodes = [];
const redises = [];

after(async () => {
    for (const c of clients) if (c.isOpen) await c.terminate();
    for (const n of nodes) if (!n.exitInfo) await n.stop('SIGKILL');
    for (const r of redises) await r.stop();
});

/** A Redis (with opts) and two nodes on it, remembered for the clean-up. */
async function cluster(opts = {}) {
    const redis = await startRedis(opts);
    redises.push(redis);
    const [n1, n2] = await Promise.all([startNode(redis, 'n1', NODE_ARGS), startNode(redis, 'n2', NODE_ARGS)]);
    nodes.push(n1, n2);
    return { redis, n1, n2 };
}

/** Stops the nodes: each must exit 0 with no sanitizer report, after all it went through. */
async function stopNodes(...ns) {
    for (const n of ns) await n.stopClean();
}

/** A logged-in v1 client in room, remembered for the clean-up. */
async function member(node, prefix, room) {
    const c = await login(node, uniq(prefix), { room });
    clients.push(c);
    return c;
}

/** ping → pong on each client: the node still answers what needs no Redis. */
async function pings(clientsToPing) {
    for (const c of clientsToPing) {
        const m = await c.request({ type: 'ping' }, 'pong');
        assert.equal(m.type, 'pong', `${c.label}: ping answered ${JSON.stringify(m)}`);
    }
}

/**
 * Keeps sending room messages from client (one at a time, paced, at most
 * max, each answer awaited at most answerMs) until state.stop is set.
 * state.acked: the acks ({ message_id, text, sentAt }); state.refused: the
 * texts answered `unavailable` (any other answer fails the test).
 */
function keepSending(client, room, tag, { max = 800, answerMs = 15000, paceMs = 40 } = {}) {
    const state = { acked: [], refused: [], stop: false };
    state.done = (async () => {
        for (let i = 0; i < max && !state.stop; i++) {
            const sentAt = Date.now();
            const a = await sayRoom(client, room, `${tag} ${i}`, answerMs);
            if (a.type === 'ack') {
                state.acked.push({ ...a, sentAt });
            } else {
                assert.equal(a.type, 'error');
                assert.equal(a.code, 'unavailable', `${client.label}: ${a.text} answered ${JSON.stringify(a)}`);
                assert.ok(typeof a.message === 'string' && a.message.length > 0, 'the refusal says why');
                state.refused.push(a.text);
            }
            await sleep(paceMs);
        }
    })();
    return state;
}

/**
 * What Redis kept of room (read after everything ended): exactly the acked
 * messages (plus extraIds, e.g. the marker), in id order, and none of the
 * refused texts.
 */
async function assertStream(redis, room, acked, refused, extraIds = []) {
    const rc = redis.client();
    try {
        const entries = await streamEntries(rc, room);
        const refusedSet = new Set(refused);
        for (const e of entries) assert.ok(!refusedSet.has(e.text), `the stream holds ${JSON.stringify(e.text)}, which was answered unavailable`);
        const want = [...acked.map((a) => a.message_id), ...extraIds].sort((x, y) => x - y);
        assert.deepEqual(entries.map((e) => e.id), want, 'the stream holds every accepted message, once, in order, and nothing else');
    } finally {
        await rc.close();
    }
}

test('Redis paused (SIGSTOP) for 5 s: unavailable and pong meanwhile, sending again after; one order, nothing refused ever shown', T, async () => {
    const { redis, n1, n2 } = await cluster();
    const room = uniq('pause');
    const members = [await member(n1, 'a1', room), await member(n1, 'a2', room), await member(n2, 'b1', room), await member(n2, 'b2', room)];
    // Logged in now (a login needs Redis), joins the room during the pause.
    const late = await login(n2, uniq('late'));
    clients.push(late);
    const senders = [keepSending(members[0], room, 'a'), keepSending(members[2], room, 'b')];
    await until(() => senders.every((s) => s.acked.length >= 5), 10000, 'both senders acked before the pause');
    assert.deepEqual(senders.map((s) => s.refused), [[], []], 'nothing refused while Redis answers');

    await redis.pause();
    const pausedAt = Date.now();
    // Noticed within about 3 s: each sender's messages get `unavailable`
    // (sayRoom matched it by its ref).
    await until(() => senders.every((s) => s.refused.length > 0), 10000, 'unavailable on both nodes during the pause');
    await pings(members);
    // What needs no Redis answers from the node's view: who, rooms, a join
    // of a room the node knows. A private is refused like a room message.
    const who = await members[1].request({ type: 'who', room }, 'members');
    assert.equal(who.type, 'members', `who during the pause: ${JSON.stringify(who)}`);
    assert.ok(who.members.includes(members[0].nickname), 'who lists the node\'s members');
    const rooms = await members[3].request({ type: 'rooms' }, 'rooms');
    assert.equal(rooms.type, 'rooms', `rooms during the pause: ${JSON.stringify(rooms)}`);
    const joined = await late.request({ type: 'join', room }, 'joined');
    assert.equal(joined.type, 'joined', `join of a known room during the pause: ${JSON.stringify(joined)}`);
    const privRef = `p${uniq('r')}`;
    members[0].send({ type: 'private', to: members[1].nickname, message: { text: 'private while paused' }, id: privRef });
    const priv = await members[0].next((m) => (m.type === 'ack' || m.type === 'error') && m.ref === privRef, 10000);
    assert.equal(priv.code, 'unavailable', `a private during the pause: ${JSON.stringify(priv)}`);
    // The pause lasts 5 s (longer if the checks above took longer).
    await sleep(Math.max(0, 5000 - (Date.now() - pausedAt)));
    await redis.resume();
    const resumedAt = Date.now();

    // Back: a message sent after the resume is acked, on both nodes.
    await until(() => senders.every((s) => s.acked.some((a) => a.sentAt > resumedAt)), 20000, 'acks again after the resume');
    for (const s of senders) s.stop = true;
    await Promise.all(senders.map((s) => s.done));

    const acked = senders.flatMap((s) => s.acked);
    const refused = senders.flatMap((s) => s.refused);
    const endId = await endBurst(members[1], members, room);
    assertOneOrder(members, room, acked, refused);
    await assertStream(redis, room, acked, refused, [endId]);
    for (const c of members) assert.ok(!c.inbox.items.some((m) => m.type === 'private'), `${c.label}: the refused private was delivered`);
    await stopNodes(n1, n2);
});

test('Redis restarted with AOF (appendfsync always): unavailable while down, ids continue, history kept, since without gap or duplicate', T, async () => {
    const { redis, n1, n2 } = await cluster({ appendonly: true, fsync: 'always' });
    const room = uniq('restart');
    const ana = await member(n1, 'ana', room);
    const ben = await member(n2, 'ben', room);
    const cara = await member(n2, 'cara', room);

    const before = [];
    for (let i = 0; i < 10; i++) before.push(await sayRoom(i % 2 ? ben : ana, room, `before ${i}`));
    for (const a of before) assert.equal(a.type, 'ack', JSON.stringify(a));
    // cara follows until the last of them, then leaves.
    const last = await cara.next((m) => m.type === 'room' && m.message?.text === 'before 9');
    await cara.close();

    await redis.stop();
    const refused = [];
    for (const c of [ana, ben]) {
        const r = await sayRoom(c, room, `while down ${c.nickname}`, 10000);
        assert.equal(r.code, 'unavailable', `${c.label}: a message while Redis is down: ${JSON.stringify(r)}`);
        refused.push(r.text);
    }
    await pings([ana, ben]);

    await redis.restart();
    // Each node logs its link coming up again, then /readyz says ready.
    const ups = (n) => n.stderr.split('\n').filter((l) => l.includes(`cluster: node ${n.nodeName} connected to redis 127.0.0.1:${redis.port}`)).length;
    await until(() => ups(n1) >= 2 && ups(n2) >= 2, 15000, 'both nodes logged their link up again');
    await Promise.all([waitReady(n1, 15000), waitReady(n2, 15000)]);
    const later = [];
    for (let i = 0; i < 10; i++) later.push(await sayRoom(i % 2 ? ana : ben, room, `after ${i}`));
    for (const a of later) assert.equal(a.type, 'ack', `once ready again, messages are accepted: ${JSON.stringify(a)}`);
    const maxBefore = Math.max(...before.map((a) => a.message_id));
    assert.ok(later[0].message_id > maxBefore, `ids continue above the old ones (${later[0].message_id} after ${maxBefore})`);

    // cara comes back on the other node with since: exactly what she missed.
    const back = await login(n1, uniq('cara'));
    clients.push(back);
    const joined = await join(back, room, { since: last.id });
    assert.deepEqual(joined.history.map((m) => m.id), later.map((a) => a.message_id), 'since: every message after it, once, in order');

    const acked = [...before, ...later];
    const endId = await endBurst(ana, [ana, ben, back], room);
    assertOneOrder([ana, ben], room, acked, refused);
    await assertStream(redis, room, acked, refused, [endId]);
    await stopNodes(n1, n2);
});

test('subscription link flap: CLIENT KILL TYPE pubsub during a burst; every member still gets every message once, in order', T, async () => {
    const { redis, n1, n2 } = await cluster();
    const room = uniq('flap');
    const members = [await member(n1, 'a1', room), await member(n1, 'a2', room), await member(n2, 'b1', room), await member(n2, 'b2', room)];
    const [sender] = members;
    const rc = redis.client();
    const pubsubCount = async () => (await rc.cmd('CLIENT', 'LIST', 'TYPE', 'pubsub')).split('\n').filter((l) => l.includes('id=')).length;
    const acked = [];
    const refused = [];
    const kills = [];
    try {
        // 30 windows of 10 messages; before windows 6, 12 and 18, once both
        // nodes are subscribed again, their subscription connections are
        // killed while the previous window is still being delivered.
        for (let w = 0; w < 30; w++) {
            if (w === 6 || w === 12 || w === 18) {
                await until(async () => (await pubsubCount()) >= 2, 15000, 'both nodes subscribed (again)');
                kills.push(rc.cmd('CLIENT', 'KILL', 'TYPE', 'pubsub'));
            }
            const window = [];
            for (let i = 0; i < 10; i++) window.push(sayRoom(sender, room, `burst ${w * 10 + i}`, 15000));
            for (const a of await Promise.all(window)) {
                if (a.type === 'ack') acked.push(a);
                else {
                    assert.equal(a.code, 'unavailable', JSON.stringify(a));
                    refused.push(a.text);
                }
            }
        }
        for (const n of await Promise.all(kills)) assert.ok(n >= 2, `CLIENT KILL TYPE pubsub killed both nodes' subscriptions (${n})`);
        assert.ok(acked.length >= 150, `at least half the burst is accepted (${acked.length} of 300)`);

        const endId = await endBurst(sender, members, room);
        assertOneOrder(members, room, acked, refused);
        await assertStream(redis, room, acked, refused, [endId]);
    } finally {
        await rc.close();
    }
    await stopNodes(n1, n2);
});
