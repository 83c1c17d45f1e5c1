// Two tertulia nodes on one Redis (the cluster spec, step 1): room messages,
// ids and room history shared. A member on one node hears the room's
// messages said on the other, every member sees one order, ids increase
// cluster-wide, history and `since` read the shared stream, legacy clients
// are served too. Also the command line: a malformed --redis URL or node
// name is exit status 2, and a node whose Redis is down listens but is not
// ready until Redis comes.
//
// Presence, nicknames and privates across nodes are a later step: not here.
// Skipped, saying why, when the binary has no --redis.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';

import { connect, join, legacyLogin, login, startServer, uniq, waitMembers } from './helpers.mjs';
import {
    assertIncreasing,
    assertOneOrder,
    clusterFixture,
    clusterMissing,
    endBurst,
    freePort,
    readyz,
    roomKey,
    roomMessages,
    sayRoom,
    startNode,
    startRedis,
    streamEntries,
    waitReady,
} from './redis.mjs';

const SKIP = clusterMissing();
const T = { timeout: 60000, skip: SKIP ?? false };

// Flood control off: these tests measure the cluster, not the rate limit.
const NODE_ARGS = ['--rate-limit', '0'];

let redis;
let n1;
let n2;
const fx = clusterFixture(['n1', 'n2'], {
    args: NODE_ARGS,
    skip: SKIP,
    ready: (f) => {
        ({ redis } = f);
        [n1, n2] = f.nodes;
    },
});
const { clients, extraServers, extraRedis } = fx;

/** Remembers a client for the clean-up. */
async function keep(promise) {
    const c = await promise;
    clients.push(c);
    return c;
}

/** A room message sent and its ack awaited; fails on anything else. Returns the ack. */
async function say(client, room, text) {
    const a = await sayRoom(client, room, text);
    assert.equal(a.type, 'ack', `${client.label}: ${JSON.stringify(text)} was not accepted: ${JSON.stringify(a)}`);
    return a;
}

/** The next room message with this text (bounded by the inbox's default wait). */
function heard(client, text) {
    return client.next((m) => m.type === 'room' && m.message?.text === text);
}

test('a room message from node 1 reaches members on node 2, and back; welcome names the node; the ack comes before the own copy', T, async () => {
    const room = uniq('cross');
    const ana = await keep(login(n1, uniq('ana'), { room }));
    const ben = await keep(login(n2, uniq('ben'), { room }));
    assert.equal(ana.welcome.server.node, 'n1', 'welcome.server.node is the node name');
    assert.equal(ben.welcome.server.node, 'n2');

    for (const [from, to] of [[ana, ben], [ben, ana]]) {
        const text = `hello from ${from.nickname}`;
        const ref = `x${uniq('r')}`;
        from.send({ type: 'room', to: room, message: { text }, id: ref });
        // Whichever comes first of the ack and the sender's own copy.
        const first = await from.next((m) => ((m.type === 'ack' || m.type === 'error') && m.ref === ref) || (m.type === 'room' && m.message?.text === text));
        assert.equal(first.type, 'ack', `${from.label}: the ack comes before the own copy, got ${JSON.stringify(first)}`);
        const own = await heard(from, text);
        assert.equal(own.id, first.message_id, 'the own copy carries the acked id');
        const theirs = await heard(to, text);
        assert.equal(theirs.id, first.message_id, 'the other node delivers the same id');
        assert.equal(theirs.from, from.nickname);
        assert.equal(theirs.to, room);
        assert.equal(typeof theirs.ts, 'number');
    }
});

test('one order: 3 senders on each node, 40 messages each, to one room: every member gets all 240 in the same order', T, async () => {
    const room = uniq('order');
    const senders = [];
    for (const [i, node] of [n1, n1, n1, n2, n2, n2].entries()) senders.push(await keep(login(node, uniq(`s${i}`), { room })));
    // A member on each node that only listens.
    const listeners = [await keep(login(n1, uniq('l1'), { room })), await keep(login(n2, uniq('l2'), { room }))];
    const members = [...senders, ...listeners];

    // Each sender sends in windows of 10 (sent at once, then their acks
    // awaited), all senders at the same time, so the nodes interleave.
    const acked = [];
    await Promise.all(
        senders.map(async (s, k) => {
            for (let w = 0; w < 4; w++) {
                const window = [];
                for (let i = 0; i < 10; i++) window.push(say(s, room, `s${k} m${w * 10 + i}`));
                acked.push(...(await Promise.all(window)));
            }
        }),
    );
    assert.equal(acked.length, 240);
    await endBurst(senders[0], members, room);
    const ids = assertOneOrder(members, room, acked);
    assert.equal(ids.length, 240);
    // Each sender's own messages in the order it sent them.
    const order = roomMessages(listeners[1], room);
    for (const [k, s] of senders.entries()) {
        const mine = order.filter((m) => m.from === s.nickname).map((m) => m.message.text);
        assert.deepEqual(mine, Array.from({ length: 40 }, (_, i) => `s${k} m${i}`), `${s.label}'s messages keep its order`);
    }
});

test('history is shared: joined.history and `history` on node 2 hold what was said on node 1; `join` with since on the other node: no gap, no duplicate', T, async () => {
    const room = uniq('hist');
    const ana = await keep(login(n1, uniq('ana'), { room }));
    const first = [];
    for (let i = 0; i < 5; i++) first.push(await say(ana, room, `first ${i}`));
    const firstIds = first.map((a) => a.message_id);

    const ben = await keep(login(n2, uniq('ben'), { room }));
    assert.deepEqual(ben.joined.history.map((m) => m.id), firstIds, 'joined.history on node 2 holds node 1 messages');
    assert.deepEqual(ben.joined.history.map((m) => m.message.text), first.map((a) => a.text));
    for (const m of ben.joined.history) assert.equal(m.from, ana.nickname);

    const page = await ben.request({ type: 'history', room, before: firstIds[3], limit: 2 }, 'history');
    assert.equal(page.type, 'history', JSON.stringify(page));
    assert.deepEqual(page.messages.map((m) => m.id), firstIds.slice(1, 3), '`history` before an id: the ones just before it');
    assert.equal(page.more, true, 'older ones remain');

    // cara follows the room on node 1, then drops; the room goes on.
    const cara = await keep(login(n1, uniq('cara'), { room }));
    const more = [await say(ana, room, 'seen 1'), await say(ben, room, 'seen 2')];
    await heard(cara, more[0].text);
    const last = await heard(cara, more[1].text);
    await cara.close();
    const missed = [];
    missed.push(await say(ana, room, 'missed 1'), await say(ben, room, 'missed 2'));

    // She comes back on node 2 while ana keeps talking on node 1: her
    // `since` history and the live messages that follow join without gap
    // or duplicate.
    const talking = (async () => {
        for (let i = 0; i < 20; i++) missed.push(await say(ana, room, `during ${i}`));
    })();
    const back = await keep(login(n2, uniq('cara')));
    const joined = await join(back, room, { since: last.id });
    await talking;
    const endId = await endBurst(ana, [back], room, 'the end');
    const got = [...joined.history, ...roomMessages(back, room)].map((m) => m.id);
    const expected = missed.map((a) => a.message_id).sort((x, y) => x - y);
    assert.deepEqual(got, expected, 'history after since, then live: every message after since, once, in order');

    // The stream in Redis holds the room's whole history.
    const rc = redis.client();
    try {
        const stream = await streamEntries(rc, room);
        assert.deepEqual(stream.map((e) => e.id), [...firstIds, more[0].message_id, more[1].message_id, ...expected, endId], 'the stream holds every accepted message of the room, in order');
        // Each entry's body: the sending node, the sender, the room's spelling, the text.
        const said = new Map([...first, ...more, ...missed].map((a) => [a.message_id, a.text]));
        for (const e of stream.slice(0, -1)) {
            const byAna = e.from === ana.nickname;
            assert.ok(byAna || e.from === ben.nickname, `entry ${e.id} from ${e.from}`);
            assert.equal(e.node, byAna ? 'n1' : 'n2', `entry ${e.id}: the node that published it`);
            assert.equal(e.room, room);
            assert.equal(e.mentions, '-');
            assert.equal(e.text, said.get(e.id));
        }
    } finally {
        await rc.close();
    }
});

test('--retain-messages trims the room stream in Redis; a joiner gets what is kept', T, async () => {
    const n = await startNode(redis, 'n4', [...NODE_ARGS, '--retain-messages', '5']);
    extraServers.push(n);
    const room = uniq('retain');
    const ana = await keep(login(n, uniq('ana'), { room }));
    const acks = [];
    for (let i = 0; i < 8; i++) acks.push(await say(ana, room, `kept? ${i}`));
    const rc = redis.client();
    try {
        const stream = await streamEntries(rc, room);
        assert.deepEqual(stream.map((e) => e.id), acks.slice(-5).map((a) => a.message_id), 'the stream keeps the newest 5');
    } finally {
        await rc.close();
    }
    const ben = await keep(login(n1, uniq('ben'), { room }));
    assert.deepEqual(ben.joined.history.map((m) => m.id), acks.slice(-5).map((a) => a.message_id), 'joined.history: what the stream keeps');
    await n.stopClean();
});

test('ids strictly increase cluster-wide: a private on node 1 gets an id above the room messages before it', T, async () => {
    const room = uniq('ids');
    const p1 = await keep(login(n1, uniq('p1'), { room }));
    const p2 = await keep(login(n1, uniq('p2'), { room }));
    const q = await keep(login(n2, uniq('q'), { room }));
    const r1 = await say(q, room, 'from node 2');
    await heard(p1, r1.text);
    const r2 = await say(p1, room, 'from node 1');

    const ref = `p${uniq('r')}`;
    p1.send({ type: 'private', to: p2.nickname, message: { text: 'psst' }, id: ref });
    const pack = await p1.next((m) => (m.type === 'ack' || m.type === 'error') && m.ref === ref);
    assert.equal(pack.type, 'ack', JSON.stringify(pack));
    const priv = await p2.next((m) => m.type === 'private' && m.message?.text === 'psst');
    assert.equal(priv.id, pack.message_id);
    assertIncreasing([r1.message_id, r2.message_id, pack.message_id], 'room, room, then the private');

    // And the next room message, said on the other node, is above the private.
    const r3 = await say(q, room, 'again from node 2');
    assert.ok(r3.message_id > pack.message_id, `the room message after the private gets a higher id (${r3.message_id} after ${pack.message_id})`);
});

test('legacy clients on node 2 receive node 1 room messages (and are heard there)', T, async () => {
    const room = uniq('legacy');
    const nick = uniq('old');
    const old = await keep(legacyLogin(n2, nick, room));
    const watcher = await keep(login(n2, uniq('w'), { room }));
    await waitMembers(watcher, room, (members) => members.includes(nick));
    const ana = await keep(login(n1, uniq('ana'), { room }));

    const a = await say(ana, room, 'to the old client');
    const m = await heard(old, a.text);
    assert.equal(m.from, ana.nickname);
    assert.equal(m.id, a.message_id);

    old.send({ type: 'room', to: room, message: { text: 'from the old client' } });
    const back = await heard(ana, 'from the old client');
    assert.equal(back.from, nick);
    // A legacy client gets room and private frames only: no ack, no joined.
    await heard(old, 'from the old client');
    assert.deepEqual(old.inbox.items.filter((x) => x.type !== 'room' && x.type !== 'private'), [], 'nothing but chat frames to a legacy client');
});

test('a malformed --redis URL or --node name: exit status 2, saying what is wrong', T, async () => {
    /** startServer must fail with exit status 2, stderr naming one of mentions (and knowing the option). */
    const refused = (args, mentions) =>
        assert.rejects(startServer(args, { timeoutMs: 10000 }), (err) => {
            assert.match(err.message, /server exited \(code 2, signal null\) before listening/, `${args.join(' ')}: exit status 2`);
            const stderr = err.message.slice(err.message.indexOf('stderr:'));
            assert.doesNotMatch(stderr, /unrecognized option/, 'the option itself is known');
            assert.ok(mentions.some((w) => stderr.includes(w)), `${args.join(' ')}: stderr names ${mentions.map((w) => JSON.stringify(w)).join(' or ')}: ${stderr}`);
            return true;
        });
    for (const url of ['http://127.0.0.1:6379/0', 'redis://127.0.0.1:notaport/0', 'redis://127.0.0.1:99999/0', 'redis://127.0.0.1:6379/notadb', 'redis//127.0.0.1:6379']) {
        await refused(['--redis', url, '--node', 'n9'], [url]);
    }
    for (const name of ['has space', 'x'.repeat(65), 'semi;colon', '']) await refused(['--redis', redis.url, '--node', name], [name || '--node', '--node', 'node name']);
});

test('a node started while Redis is down listens, answers /readyz 503, and becomes ready once Redis starts', T, async () => {
    const port = await freePort();
    const node = await startNode({ url: `redis://127.0.0.1:${port}/0` }, 'n3', NODE_ARGS, { ready: false });
    extraServers.push(node);
    assert.equal(await readyz(node), 503, '/readyz: not ready without Redis');
    // It answers what needs no Redis.
    const c = await keep(connect(node));
    assert.equal((await c.request({ type: 'ping' }, 'pong')).type, 'pong');
    assert.equal(await readyz(node), 503, 'still not ready');

    const late = await startRedis({ port });
    extraRedis.push(late);
    await waitReady(node, 15000);
    assert.match(node.stderr, new RegExp(`cluster: node n3 connected to redis 127\\.0\\.0\\.1:${port}`), 'the node logs its link');
    const room = uniq('late');
    const ana = await keep(login(node, uniq('ana'), { room }));
    await say(ana, room, 'now it works');
    await heard(ana, 'now it works');
    await node.stopClean();
});

/** A Redis with a password and a unix socket, and a file holding the password. */
async function passwordRedis() {
    const PW = 'tt-cluster-pw';
    const r = await startRedis({ password: PW, unixSocket: true });
    extraRedis.push(r);
    const pwFile = path.join(r.dir, 'password');
    fs.writeFileSync(pwFile, `${PW}\n`);
    return { r, PW, pwFile };
}

/** startNode on url (no readiness shortcut), remembered for the clean-up. */
async function nodeOn(url, name, args = []) {
    const n = await startNode({ url }, name, [...NODE_ARGS, ...args]);
    extraServers.push(n);
    return n;
}

test('a Redis with a password: in the URL, or in --redis-password-file (which overrides the URL one); a db number in the URL', T, async () => {
    const { r, PW, pwFile } = await passwordRedis();
    const a = await nodeOn(`redis://:${PW}@127.0.0.1:${r.port}/3`, 'pa');
    const b = await nodeOn(`redis://:wrong@127.0.0.1:${r.port}/3`, 'pb', ['--redis-password-file', pwFile]);
    const room = uniq('pw');
    const ca = await keep(login(a, uniq('ca'), { room }));
    const cb = await keep(login(b, uniq('cb'), { room }));
    const m = await say(ca, room, 'with a password');
    assert.equal((await heard(cb, 'with a password')).id, m.message_id, 'both nodes are one chat');

    const rc = r.client();
    try {
        assert.equal(await rc.cmd('EXISTS', `tt:room:${roomKey(room)}:log`), 0, 'nothing in db 0');
        await rc.cmd('SELECT', 3);
        assert.equal(await rc.cmd('XLEN', `tt:room:${roomKey(room)}:log`), 1, 'the room lives in db 3, the URL one');
        assert.equal(await rc.cmd('GET', 'tt:id'), String(m.message_id));
    } finally {
        await rc.close();
    }
    for (const n of [a, b]) await n.stopClean();
});

test('a unix: socket URL: its node and one on TCP (db 0) are one chat', T, async () => {
    const { r, PW, pwFile } = await passwordRedis();
    const t = await nodeOn(`redis://:${PW}@127.0.0.1:${r.port}`, 'ut');
    const u = await nodeOn(`unix:${r.socket}`, 'uu', ['--redis-password-file', pwFile]);
    const room = uniq('unix');
    const ct = await keep(login(t, uniq('ct'), { room }));
    const cu = await keep(login(u, uniq('cu'), { room }));
    for (const [from, to] of [[ct, cu], [cu, ct]]) {
        const m = await say(from, room, `from ${from.nickname}`);
        assert.equal((await heard(to, m.text)).id, m.message_id);
    }
    for (const n of [t, u]) await n.stopClean();
});

test('nodes on two dbs of one Redis are two chats', T, async () => {
    const { r, PW } = await passwordRedis();
    const a = await nodeOn(`redis://:${PW}@127.0.0.1:${r.port}/3`, 'da');
    const u = await nodeOn(`redis://:${PW}@127.0.0.1:${r.port}/0`, 'du');
    const room = uniq('dbs');
    const ca = await keep(login(a, uniq('ca'), { room }));
    const cu = await keep(login(u, uniq('cu'), { room }));
    await say(ca, room, 'on db 3');
    await heard(ca, 'on db 3');
    // cu's own message comes after anything the room sent it before: a
    // later reply on its connection, not a timer.
    const own = await say(cu, room, 'on db 0');
    await heard(cu, 'on db 0');
    assert.deepEqual(roomMessages(cu, room).map((m) => m.message.text), [], 'the node on db 0 delivered nothing said on db 3 (Redis Pub/Sub channels are not per db)');
    assert.equal(own.message_id, 1, 'db 0 has its own ids');
    await say(ca, room, 'db 3 again');
    await heard(ca, 'db 3 again');
    assert.deepEqual(roomMessages(ca, room).map((m) => m.message.text), [], 'the node on db 3 delivered nothing said on db 0');
    for (const n of [a, u]) await n.stopClean();
});
