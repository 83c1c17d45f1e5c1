// Presence: joined / member_joined / left / member_left (on leave, on a clean
// close, on a dropped connection), who and rooms.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { connect, join, login, startServer, uniq, waitMembers } from './helpers.mjs';

let server;
before(async () => {
    server = await startServer(['--resume-seconds', '0']); // member_left at the close; the grace time: identity.test.mjs
});
after(async () => {
    await server?.stopClean();
});

function sorted(a) {
    return [...a].sort();
}

test('a joiner gets joined with every member; the others get member_joined, the joiner does not', async () => {
    const room = uniq('#presence');
    const a = await login(server, uniq('first'), { room });
    const b = await login(server, uniq('second'), { room });
    assert.deepEqual(sorted(b.joined.members), sorted([a.nickname, b.nickname]));
    const mj = await a.next('member_joined');
    assert.equal(mj.room, room);
    assert.equal(mj.nickname, b.nickname);
    assert.ok(Number.isSafeInteger(mj.ts) && Math.abs(mj.ts - Date.now()) < 60000, `ts ${mj.ts}`);
    const c = await connect(server);
    c.send({ type: 'login', nickname: uniq('third') });
    const w = await c.next('welcome');
    const joined = await join(c, room);
    assert.deepEqual(sorted(joined.members), sorted([a.nickname, b.nickname, w.nickname]));
    for (const x of [a, b]) {
        const m = await x.next('member_joined');
        assert.equal(m.nickname, w.nickname);
        assert.equal(m.room, room);
    }
    await b.expectNothing(200, (m) => m.type === 'member_joined' && m.nickname === b.nickname);
    await c.expectNothing(0, 'member_joined');
    await Promise.all([a.close(), b.close(), c.close()]);
});

test('leave: the leaver gets left, the others member_left with reason leave, and room messages stop reaching the leaver', async () => {
    const room = uniq('leave');
    const a = await login(server, uniq('stay'), { room });
    const b = await login(server, uniq('go'), { room });
    await a.next('member_joined');
    b.send({ type: 'leave', room });
    const left = await b.next('left');
    assert.equal(left.room, room);
    const ml = await a.next('member_left');
    assert.equal(ml.room, room);
    assert.equal(ml.nickname, b.nickname);
    assert.equal(ml.reason, 'leave');
    assert.ok(Number.isSafeInteger(ml.ts));
    a.send({ type: 'room', to: room, message: { text: 'are you gone?' } });
    await a.next('room');
    await b.expectNothing(300, 'room');
    await b.expectNothing(0, 'member_left');
    assert.deepEqual(await waitMembers(a, room, () => true), [a.nickname]);
    await Promise.all([a.close(), b.close()]);
});

test('a dropped connection tells every room it was in: member_left with reason disconnect', async () => {
    const r1 = uniq('drop1');
    const r2 = uniq('drop2');
    const a1 = await login(server, uniq('w1'), { room: r1 });
    const a2 = await login(server, uniq('w2'), { room: r2 });
    const gone = await login(server, uniq('dropper'), { room: r1 });
    await join(gone, r2);
    await a1.next('member_joined');
    await a2.next('member_joined');
    await gone.terminate(); // TCP drop, no close handshake
    for (const [w, room] of [[a1, r1], [a2, r2]]) {
        const ml = await w.next('member_left');
        assert.equal(ml.room, room);
        assert.equal(ml.nickname, gone.nickname);
        assert.equal(ml.reason, 'disconnect');
    }
    await Promise.all([a1.close(), a2.close()]);
});

test('a clean close tells the room member_left with a reason other than leave', async () => {
    const room = uniq('closer');
    const a = await login(server, uniq('watcher'), { room });
    const b = await login(server, uniq('closer'), { room });
    await a.next('member_joined');
    const info = await b.close(1000, 'bye');
    assert.equal(info.code, 1000);
    const ml = await a.next('member_left');
    assert.equal(ml.nickname, b.nickname);
    assert.equal(typeof ml.reason, 'string');
    assert.ok(ml.reason.length > 0 && ml.reason !== 'leave', `reason ${ml.reason}`);
    await a.close();
});

test('who lists the members of a room', async () => {
    const room = uniq('who');
    const a = await login(server, uniq('w-a'), { room });
    const b = await login(server, uniq('w-b'), { room });
    const c = await login(server, uniq('w-c'));
    const members = await a.request({ type: 'who', room }, 'members');
    assert.equal(members.type, 'members');
    assert.equal(members.room, room);
    assert.deepEqual(sorted(members.members), sorted([a.nickname, b.nickname]));
    await b.close();
    await waitMembers(a, room, (m) => m.length === 1 && m[0] === a.nickname);
    await Promise.all([a.close(), c.close()]);
});

test('rooms lists the rooms that exist now with their member counts, to anyone logged in', async () => {
    const r1 = uniq('count1');
    const r2 = uniq('count2');
    const a = await login(server, uniq('ra'), { room: r1 });
    const b = await login(server, uniq('rb'), { room: r1 });
    await join(b, r2);
    const anon = await login(server, uniq('rwatch'));
    const rooms = await anon.request({ type: 'rooms', limit: 500 }, 'rooms');
    assert.equal(rooms.type, 'rooms', JSON.stringify(rooms));
    assert.ok(Array.isArray(rooms.rooms));
    const byName = new Map(rooms.rooms.map((r) => [r.name, r.members]));
    assert.equal(byName.get(r1), 2);
    assert.equal(byName.get(r2), 1);
    for (const r of rooms.rooms) assert.ok(Number.isInteger(r.members) && r.members > 0, `${r.name} has members`);
    // A room exists while it has members.
    b.send({ type: 'leave', room: r2 });
    await b.next('left');
    const after1 = await anon.request({ type: 'rooms', limit: 500 }, 'rooms');
    assert.equal(after1.rooms.find((r) => r.name === r2), undefined, 'an empty room is gone');
    assert.equal(after1.rooms.find((r) => r.name === r1).members, 2);
    await Promise.all([a.close(), b.close()]);
    let last;
    for (let i = 0; i < 50; i++) {
        last = await anon.request({ type: 'rooms', limit: 500 }, 'rooms');
        if (!last.rooms.some((r) => r.name === r1)) break;
        await new Promise((r) => setTimeout(r, 20));
    }
    assert.equal(last.rooms.find((r) => r.name === r1), undefined, 'the room is gone once its members disconnected');
    await anon.close();
});

test('joining a second room tells only that room; leaving it does not affect the first', async () => {
    const r1 = uniq('home');
    const r2 = uniq('away');
    const h = await login(server, uniq('home-m'), { room: r1 });
    const w = await login(server, uniq('away-m'), { room: r2 });
    const x = await login(server, uniq('roamer'), { room: r1 });
    await h.next('member_joined');
    await join(x, r2);
    assert.equal((await w.next('member_joined')).nickname, x.nickname);
    await h.expectNothing(200, 'member_joined');
    x.send({ type: 'leave', room: r2 });
    await x.next('left');
    assert.equal((await w.next('member_left')).reason, 'leave');
    await h.expectNothing(200, 'member_left');
    h.send({ type: 'room', to: r1, message: { text: 'still with me?' } });
    assert.equal((await x.next('room')).message.text, 'still with me?');
    await Promise.all([h.close(), w.close(), x.close()]);
});

test('a member who leaves and joins again is announced again', async () => {
    const room = uniq('again');
    const a = await login(server, uniq('obs'), { room });
    const b = await login(server, uniq('yoyo'), { room });
    await a.next('member_joined');
    b.send({ type: 'leave', room });
    await b.next('left');
    await a.next('member_left');
    const j = await join(b, room);
    assert.deepEqual(sorted(j.members), sorted([a.nickname, b.nickname]));
    assert.equal((await a.next('member_joined')).nickname, b.nickname);
    await Promise.all([a.close(), b.close()]);
});
