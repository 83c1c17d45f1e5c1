// Two tertulia nodes on one Redis, as one chat to their clients: the
// original's four-tab test spread over both nodes, presence (member_joined,
// member_left, who, joined.members) across nodes, nickname uniqueness under
// a race, private messages between nodes and to every connection of a
// guest resumed on the other node, and the loss of a node (kill -9): its
// people leave the others' rooms with node_lost within 15 s, its clients
// resume on the other node with nothing missing, and a guest of it keeps
// its nickname for its grace time.
//
// Non-events are proven with a later reply on the same connection (a ping
// answered), never with a timer. Skipped, saying why, when the binary has
// no --redis.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { connect, HOST, join, login, parseMetrics, uniq } from './helpers.mjs';
import { clusterFixture, clusterMissing, redisClient, roomKey, startNode, until } from './redis.mjs';

const SKIP = clusterMissing();
const T = { timeout: 60000, skip: SKIP ?? false };
const NODE_ARGS = ['--rate-limit', '0'];

let redis;
let n1;
let n2;
const fx = clusterFixture(['p1', 'p2'], {
    args: NODE_ARGS,
    skip: SKIP,
    ready: (f) => {
        ({ redis } = f);
        [n1, n2] = f.nodes;
    },
});
const { clients } = fx;
const extra = fx.extraServers;

async function on(server, nick, opts) {
    const c = await login(server, nick, opts);
    clients.push(c);
    return c;
}

/** A ping answered: everything sent to c before it has arrived. */
async function settle(c) {
    await c.request({ type: 'ping' }, 'pong');
}

test("the original's four-tab test over two nodes: swift-dev and python-dev, each with a member on each node; nothing crosses", T, async () => {
    const swiftRoom = uniq('swift-dev');
    const pythonRoom = uniq('python-dev');
    const swift = [await on(n1, uniq('Ana'), { room: swiftRoom }), await on(n2, uniq('Beto'), { room: swiftRoom })];
    const python = [await on(n2, uniq('Carla'), { room: pythonRoom }), await on(n1, uniq('Dario'), { room: pythonRoom })];
    for (const c of [...swift, ...python]) c.send({ type: 'room', to: c.joined.room, message: { text: `hello from ${c.nickname}` } });
    for (const [group, room] of [[swift, swiftRoom], [python, pythonRoom]]) {
        for (const receiver of group) {
            for (const sender of group) {
                const m = await receiver.next((x) => x.type === 'room' && x.from === sender.nickname);
                assert.equal(m.to, room);
                assert.equal(m.message.text, `hello from ${sender.nickname}`);
            }
        }
    }
    // Later messages prove nothing else came: every member's next room
    // message is its own room's marker, and nothing from the other room
    // waits before it.
    for (const [group, room] of [[swift, swiftRoom], [python, pythonRoom]]) group[0].send({ type: 'room', to: room, message: { text: 'marker' } });
    for (const c of [...swift, ...python]) {
        const m = await c.next((x) => x.type === 'room' && x.message.text === 'marker');
        assert.equal(m.to, c.joined.room);
        await settle(c);
        assert.deepEqual(c.inbox.drain().filter((x) => x.type === 'room'), [], `${c.nickname} got nothing of the other room`);
    }
});

test('presence across nodes: member_joined and member_left reach the other node; who and joined.members list both nodes', T, async () => {
    const room = uniq('lobby');
    const a = await on(n1, uniq('ana'), { room });
    const b = await on(n2, uniq('bob'), { room });
    assert.deepEqual([...b.joined.members].sort(), [a.nickname, b.nickname].sort(), 'the joiner on node 2 sees the member on node 1');
    assert.equal(b.joined.member_count, 2);
    const mj = await a.next((m) => m.type === 'member_joined' && m.nickname === b.nickname);
    assert.equal(mj.room, room);
    const who = await a.request({ type: 'who', room }, 'members');
    assert.deepEqual([...who.members].sort(), [a.nickname, b.nickname].sort());
    // A third on node 1: both others hear of it once.
    const c = await on(n1, uniq('cid'), { room });
    for (const x of [a, b]) await x.next((m) => m.type === 'member_joined' && m.nickname === c.nickname);
    // Leaving (not a drop: no grace time) reaches node 1 as member_left.
    b.send({ type: 'leave', room });
    await b.next('left');
    for (const x of [a, c]) {
        const ml = await x.next((m) => m.type === 'member_left' && m.nickname === b.nickname);
        assert.equal(ml.reason, 'leave');
    }
    const who2 = await c.request({ type: 'who', room }, 'members');
    assert.deepEqual([...who2.members].sort(), [a.nickname, c.nickname].sort());
    // Nobody heard a second member_joined or member_left of anyone.
    for (const x of [a, c]) {
        await settle(x);
        assert.deepEqual(x.inbox.drain().filter((m) => m.type === 'member_joined' || m.type === 'member_left'), []);
    }
});

test('nickname uniqueness: the same nickname claimed on both nodes at the same moment: exactly one wins, ten times over', T, async () => {
    for (let round = 0; round < 10; round++) {
        const nick = uniq(`race${round}_`);
        const [x, y] = await Promise.all([connect(n1, { label: 'x' }), connect(n2, { label: 'y' })]);
        clients.push(x, y);
        x.send({ type: 'login', nickname: nick });
        y.send({ type: 'login', nickname: nick });
        const [rx, ry] = await Promise.all([
            x.next((m) => m.type === 'welcome' || m.type === 'error'),
            y.next((m) => m.type === 'welcome' || m.type === 'error'),
        ]);
        const kinds = [rx, ry].map((m) => (m.type === 'welcome' ? 'welcome' : m.code)).sort();
        assert.deepEqual(kinds, ['nickname_taken', 'welcome'], `round ${round}: ${JSON.stringify([rx, ry])}`);
        // The winner's nickname stays taken on both nodes.
        const z = await connect(rx.type === 'welcome' ? n2 : n1, { label: 'z' });
        clients.push(z);
        await z.expectError({ type: 'login', nickname: nick.toUpperCase() }, 'nickname_taken');
    }
});

test('privates across nodes: to a user of the other node (no room shared), echoed to the sender; to nobody: no_such_user', T, async () => {
    const a = await on(n1, uniq('ana'));
    const b = await on(n2, uniq('bob'));
    a.send({ type: 'private', to: b.nickname.toUpperCase(), id: 'p1', message: { text: 'hola bob' } });
    const ack = await a.next((m) => m.type === 'ack' && m.ref === 'p1');
    const echo = await a.next('private');
    assert.equal(echo.id, ack.message_id, 'the ack comes first, with the id of the echo');
    const got = await b.next('private');
    assert.equal(got.id, ack.message_id);
    assert.equal(got.from, a.nickname);
    assert.equal(got.to, b.nickname, "named by the recipient's own spelling");
    assert.equal(got.message.text, 'hola bob');
    b.send({ type: 'private', to: a.nickname, message: { text: 'hola ana' } });
    const back = await a.next('private');
    assert.ok(back.id > got.id, 'ids increase across the cluster');
    await a.expectError({ type: 'private', to: uniq('nobody'), message: { text: '?' } }, 'no_such_user');
});

test('a guest resumed on the other node (two tabs, one per node): room and private messages reach both tabs, and its presence is one', T, async () => {
    const room = uniq('tabs');
    const tab1 = await on(n1, uniq('guest'), { room });
    const tab2 = await on(n2, tab1.nickname, { room, resume: tab1.resume });
    assert.equal(tab2.welcome.nickname, tab1.nickname);
    const other = await on(n2, uniq('other'), { room });
    assert.deepEqual([...other.joined.members].sort(), [tab1.nickname, other.nickname].sort(), 'one presence for the two tabs');
    other.send({ type: 'room', to: room, message: { text: 'to both tabs' } });
    other.send({ type: 'private', to: tab1.nickname, message: { text: 'private to both tabs' } });
    for (const t of [tab1, tab2]) {
        assert.equal((await t.next('room')).message.text, 'to both tabs');
        assert.equal((await t.next('private')).message.text, 'private to both tabs');
    }
    // A wrong token is refused, on either node.
    const bad = await connect(n2, { label: 'bad' });
    clients.push(bad);
    await bad.expectError({ type: 'login', nickname: tab1.nickname, resume: 'x'.repeat(43) }, 'auth_failed');
});

test('kill -9 of a node: its people leave the other node with node_lost within 15 s; its client resumes on the other node with nothing missing; a guest of it keeps its nickname in its grace time', T, async () => {
    const n3 = await startNode(redis, 'p3', NODE_ARGS);
    extra.push(n3);
    const room = uniq('lost');
    const stay = await on(n1, uniq('stay'), { room });
    const gone = await on(n3, uniq('gone'), { room }); // resumes later
    const quiet = await on(n3, uniq('quiet'), { room }); // never comes back
    for (const c of [gone, quiet]) await stay.next((m) => m.type === 'member_joined' && m.nickname === c.nickname);
    stay.send({ type: 'room', to: room, message: { text: 'before' } });
    const before = await gone.next('room');
    await n3.stop('SIGKILL');
    const killedAt = Date.now();
    // Said while the node was gone: the resumed client must find it.
    stay.send({ type: 'room', to: room, message: { text: 'while gone' } });
    await stay.next((m) => m.type === 'room' && m.message.text === 'while gone');
    // The client of the lost node resumes on node 1 (as the web client
    // retries) and catches up with since.
    const back = await on(n1, gone.nickname, { resume: gone.resume });
    const j = await join(back, room, { since: before.id });
    assert.deepEqual(j.history.map((m) => m.message.text), ['while gone'], 'no gap, no duplicate');
    // The one that does not come back leaves with node_lost, within 15 s.
    const left = await stay.next((m) => m.type === 'member_left' && m.nickname === quiet.nickname, 15000);
    assert.equal(left.reason, 'node_lost');
    assert.ok(Date.now() - killedAt <= 15000, `noticed after ${Date.now() - killedAt} ms`);
    // The resumed one stays present: no member_left for it.
    await settle(stay);
    assert.deepEqual(stay.inbox.drain().filter((m) => m.type === 'member_left' && m.nickname === gone.nickname), []);
    const who = await stay.request({ type: 'who', room }, 'members');
    assert.deepEqual([...who.members].sort(), [stay.nickname, back.nickname].sort());
    // The lost node's guest that did not come back is in its grace time:
    // its nickname is nobody else's, and its own token takes it back, on
    // either node, even after the others saw it leave.
    const other = await connect(n2, { label: 'other' });
    clients.push(other);
    await other.expectError({ type: 'login', nickname: quiet.nickname }, 'nickname_taken');
    const resumed = await on(n2, quiet.nickname, { resume: quiet.resume });
    assert.equal(resumed.welcome.nickname, quiet.nickname);
});

test('rooms is cluster-wide: a room with people only on node 2 is listed on node 1, and a room on both counts every member once', T, async () => {
    const only2 = uniq('Only2');
    const both = uniq('both');
    const x = await on(n2, uniq('x'), { room: only2 });
    const y = await on(n2, uniq('y'), { room: both });
    const z = await on(n1, uniq('z'), { room: both });
    await y.next((m) => m.type === 'member_joined' && m.nickname === z.nickname);
    for (const [c, n] of [[z, 'node 1'], [x, 'node 2']]) {
        const r = await c.request({ type: 'rooms', limit: 200 }, 'rooms');
        const byName = Object.fromEntries(r.rooms.map((e) => [e.name, e.members]));
        assert.equal(byName[only2], 1, `${n} lists ${only2}, with its spelling: ${JSON.stringify(r.rooms)}`);
        assert.equal(byName[both], 2, `${n} counts both members of ${both}`);
    }
    // Once its last member leaves, a room is no longer listed.
    x.send({ type: 'leave', room: only2 });
    await x.next('left');
    await until(async () => {
        const r = await z.request({ type: 'rooms', limit: 200 }, 'rooms');
        return !r.rooms.some((e) => e.name === only2);
    }, 5000, `${only2} gone from rooms`, 50);
});

test('/metrics of a node: its traffic with Redis (published, received, rooms, redis_up), and promtool takes it', T, async () => {
    const room = uniq('metrics');
    const a = await on(n1, uniq('m1'), { room });
    const b = await on(n2, uniq('m2'), { room });
    const scrape = async (n) => parseMetrics(await (await fetch(`http://${HOST}:${n.port}/metrics`)).text());
    const before = await scrape(n1);
    for (let i = 0; i < 3; i++) await a.request({ type: 'room', to: room, message: { text: `m${i}` } }, 'ack');
    // The copies node 1 delivered come from its subscription (an ack can
    // come before them): wait for them, and node 2's.
    for (let i = 0; i < 3; i++) await a.next('room');
    for (let i = 0; i < 3; i++) await b.next('room');
    const now = await scrape(n1);
    assert.equal(now.get('tertulia_cluster_published_total') - before.get('tertulia_cluster_published_total'), 3);
    assert.ok(now.get('tertulia_cluster_received_total') - before.get('tertulia_cluster_received_total') >= 3);
    assert.equal(now.get('tertulia_cluster_redis_up'), 1);
    assert.ok(now.get('tertulia_cluster_rooms') >= 1);
    assert.equal(now.get('tertulia_cluster_refused_total'), before.get('tertulia_cluster_refused_total'));
});

test('a private held on another node for a guest in its grace time: past what it holds, the sender on this node hears undelivered; the rest arrive when the guest resumes', T, async () => {
    const scrape = async (n) => parseMetrics(await (await fetch(`http://${HOST}:${n.port}/metrics`)).text());
    const away = await on(n2, uniq('away'));
    const sender = await on(n1, uniq('sender'));
    const sessions = (await scrape(n2)).get('tertulia_sessions');
    await away.terminate(); // dropped, not a goodbye: its grace time starts on node 2
    await until(async () => (await scrape(n2)).get('tertulia_sessions') === sessions - 1, 10000, 'node 2 saw the drop', 20);
    // 100 are held for it: the 101st and 102nd are not.
    const ids = [];
    for (let i = 0; i < 102; i++) {
        const ack = await sender.request({ type: 'private', to: away.nickname, id: `h${i}`, message: { text: `held ${i}` } }, 'ack');
        assert.equal(ack.type, 'ack');
        ids.push(ack.message_id);
    }
    const told = [(await sender.next('undelivered')).message_id, (await sender.next('undelivered')).message_id];
    assert.deepEqual(told, ids.slice(-2), "the ones past the bound, told on the sender's own node");
    // A later one past the bound is the next undelivered: none came between.
    const last = await sender.request({ type: 'private', to: away.nickname, id: 'last', message: { text: 'one more' } }, 'ack');
    assert.equal((await sender.next('undelivered')).message_id, last.message_id);
    const back = await on(n2, away.nickname, { resume: away.resume });
    for (let i = 0; i < 100; i++) assert.equal((await back.next('private')).message.text, `held ${i}`);
    await settle(back);
    assert.deepEqual(back.inbox.drain().filter((m) => m.type === 'private'), [], 'nothing past the bound');
});

test('--retain-days: a node trims the streams of its rooms by age (older entries go, newer stay)', T, async () => {
    const room = uniq('aged');
    const k = roomKey(room);
    const rc = redisClient(redis.port);
    try {
        // Three messages from four days ago, as a node would have written them.
        const old = Date.now() - 4 * 86400 * 1000;
        for (let i = 1; i <= 3; i++)
            await rc.cmd('XADD', `tt:room:${k}:log`, `${i}-0`, 'm', `${i} ${i} ${old} p1 ${i} ana ${room} - old ${i}`);
        await rc.cmd('SET', `tt:room:${k}:seq`, '3');
        const n4 = await startNode(redis, 'p4', [...NODE_ARGS, '--retain-days', '1']);
        extra.push(n4);
        const c = await on(n4, uniq('reader'), { room });
        await until(async () => (await rc.cmd('XLEN', `tt:room:${k}:log`)) === 0, 10000, 'the old entries trimmed', 50);
        const ack = await c.request({ type: 'room', to: room, message: { text: 'new' } }, 'ack');
        assert.equal(ack.type, 'ack');
        const entries = await rc.cmd('XRANGE', `tt:room:${k}:log`, '-', '+');
        assert.equal(entries.length, 1, 'the new one stays');
        await n4.stopClean();
    } finally {
        await rc.close();
    }
});

test('typing across nodes: in a room, to the members of the other node (not the typist); to a person of the other node', T, async () => {
    const room = uniq('typing');
    const ana = await on(n1, uniq('ana'), { room });
    const ben = await on(n2, uniq('ben'), { room });
    const cid = await on(n2, uniq('cid'));
    await ana.next((m) => m.type === 'member_joined' && m.nickname === ben.nickname);
    ana.send({ type: 'typing', to: room, state: 'start' });
    assert.deepEqual(await ben.next('typing'), { type: 'typing', room, nickname: ana.nickname, state: 'start' });
    // To a person: cid is on node 2 and shares no room with ana.
    ana.send({ type: 'typing', to: cid.nickname, state: 'start' });
    assert.deepEqual(await cid.next('typing'), { type: 'typing', from: ana.nickname, nickname: ana.nickname, state: 'start' });
    // The typist hears nothing of its own: its next frame is the message's echo.
    await ana.request({ type: 'room', to: room, message: { text: 'typed' } }, 'ack');
    const next = await ana.next((m) => m.type === 'room' || m.type === 'typing');
    assert.equal(next.type, 'room');
});

test('away status across nodes: once to every member of every shared room on the other node, once to its other connection there; joined lists it away', T, async () => {
    const r1 = uniq('st1');
    const r2 = uniq('st2');
    const ana = await on(n1, uniq('ana'), { room: r1 });
    await join(ana, r2);
    const ben = await on(n2, uniq('ben'), { room: r1 });
    await join(ben, r2); // in both of ana's rooms: must hear it once
    const tab = await on(n2, ana.nickname, { resume: ana.resume }); // ana's own other tab, on node 2
    await ana.next((m) => m.type === 'member_joined' && m.nickname === ben.nickname && m.room === r2);
    ana.send({ type: 'status', away: true, text: 'lunch' });
    for (const c of [ben, tab]) {
        const st = await c.next('status');
        assert.deepEqual(st, { type: 'status', nickname: ana.nickname, away: true, text: 'lunch' });
    }
    // Once each: the next status frame is the next change, nothing between.
    ana.send({ type: 'status', away: false });
    for (const c of [ben, tab]) assert.deepEqual(await c.next('status'), { type: 'status', nickname: ana.nickname, away: false });
    // The mirror of ana on node 2 knows it: a joiner there sees it away.
    const solo = await on(n1, uniq('solo'), { room: r1 });
    const watcher = await on(n2, uniq('watcher'), { room: r1 });
    solo.send({ type: 'status', away: true, text: 'back soon' });
    assert.equal((await watcher.next('status')).nickname, solo.nickname);
    const cid = await on(n2, uniq('cid'), { room: r1 });
    assert.ok(cid.joined.away.includes(solo.nickname), JSON.stringify(cid.joined));
});
