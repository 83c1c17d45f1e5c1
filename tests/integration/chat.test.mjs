// The chat protocol of PROTOCOL.md as a tertulia.v1 client sees it: login and
// nicknames, rooms and their broadcast (the original's four-tab test), private
// messages, acks, server-assigned from/id/ts, replies carrying `ref`.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { connect, join, login, startServer, uniq } from './helpers.mjs';

let server;
before(async () => {
    server = await startServer();
});
after(async () => {
    await server?.stopClean();
});

/** Checks the shape every chat message (room or private) must have. */
function assertChatMessage(m, { type, from, to, text }) {
    assert.equal(m.type, type);
    assert.equal(m.from, from);
    assert.equal(m.to, to);
    assert.deepEqual(Object.keys(m.message).includes('text'), true);
    assert.equal(m.message.text, text);
    assert.ok(Number.isSafeInteger(m.id) && m.id > 0, `id is a positive integer below 2^53: ${m.id}`);
    assert.ok(Number.isSafeInteger(m.ts), `ts is an integer: ${m.ts}`);
    assert.ok(Math.abs(m.ts - Date.now()) < 60000, `ts is server time in ms since the epoch: ${m.ts}`);
}

async function closeAll(...clients) {
    await Promise.all(clients.map((c) => c.close()));
}

describe('login', () => {
    test('login answers welcome with the nickname, the server name and version, and the limits', async () => {
        const nick = uniq('Alice');
        const c = await login(server, nick);
        const w = c.welcome;
        assert.equal(w.nickname, nick);
        assert.equal(typeof w.server, 'object');
        assert.equal(typeof w.server.name, 'string');
        assert.ok(w.server.name.length > 0);
        assert.equal(typeof w.server.version, 'string');
        assert.ok(w.server.version.length > 0);
        assert.equal(typeof w.limits, 'object');
        assert.ok(w.limits !== null && !Array.isArray(w.limits));
        await c.close();
    });

    test('login with a room also answers joined with the member list and an empty history', async () => {
        const nick = uniq('bob');
        const room = uniq('fresh');
        const c = await login(server, nick, { room });
        assert.equal(c.joined.room, room);
        assert.deepEqual(c.joined.members, [nick]);
        assert.deepEqual(c.joined.history, []);
        await c.close();
    });

    test('a nickname of 32 allowed characters (letters, digits, _ - .) is accepted', async () => {
        const nick = `Az09_-.${uniq('').replace(/_/g, '-')}`.padEnd(32, 'x').slice(0, 32);
        assert.equal(nick.length, 32);
        const c = await login(server, nick);
        assert.equal(c.welcome.nickname, nick);
        await c.close();
    });

    for (const [why, nick] of [
        ['empty', ''],
        ['33 characters long', 'a'.repeat(33)],
        ['holding a space', 'ana maria'],
        ['holding a non-ASCII letter', 'josé'],
        ['holding a slash', 'a/b'],
        ['holding an @', 'a@b'],
        ['starting with #', '#nick'],
    ]) {
        test(`a nickname ${why} gets nickname_invalid and the connection may log in afterwards`, async () => {
            const c = await connect(server);
            await c.expectError({ type: 'login', nickname: nick }, 'nickname_invalid');
            const ok = uniq('retry');
            c.send({ type: 'login', nickname: ok });
            const w = await c.next('welcome');
            assert.equal(w.nickname, ok);
            await c.close();
        });
    }

    test('a nickname in use is refused whatever its case, and is free again once its owner leaves', async () => {
        const base = uniq('Carol');
        const owner = await login(server, base);
        const other = await connect(server);
        await other.expectError({ type: 'login', nickname: base.toUpperCase() }, 'nickname_taken');
        await other.expectError({ type: 'login', nickname: base.toLowerCase() }, 'nickname_taken');
        await other.expectError({ type: 'login', nickname: base }, 'nickname_taken');
        await owner.close();
        // The owner is gone: the same name in another case is free now.
        let w;
        for (let i = 0; i < 50; i++) {
            other.send({ type: 'login', nickname: base.toUpperCase(), id: `try${i}` });
            w = await other.next((m) => m.type === 'welcome' || (m.type === 'error' && m.ref === `try${i}`));
            if (w.type === 'welcome') break;
            assert.equal(w.code, 'nickname_taken');
            await new Promise((r) => setTimeout(r, 20));
        }
        assert.equal(w.type, 'welcome', 'the nickname was freed when its owner disconnected');
        assert.equal(w.nickname, base.toUpperCase());
        await other.close();
    });
});

describe('rooms', () => {
    test("the original's four-tab test: two users in swift-dev, two in python-dev, nothing crosses", async () => {
        const swift = [await login(server, 'Ana', { room: 'swift-dev' }), await login(server, 'Beto', { room: 'swift-dev' })];
        const python = [await login(server, 'Carla', { room: 'python-dev' }), await login(server, 'Dario', { room: 'python-dev' })];
        const all = [...swift, ...python];
        for (const c of all) c.send({ type: 'room', to: c.joined.room, message: { text: `hello from ${c.nickname}` } });
        for (const [group, room] of [[swift, 'swift-dev'], [python, 'python-dev']]) {
            for (const receiver of group) {
                for (const sender of group) {
                    const m = await receiver.next((x) => x.type === 'room' && x.from === sender.nickname);
                    assertChatMessage(m, { type: 'room', from: sender.nickname, to: room, text: `hello from ${sender.nickname}` });
                }
            }
        }
        await Promise.all(all.map((c) => c.expectNothing(300, 'room')));
        await closeAll(...all);
    });

    test('a room message reaches every member, the sender included, with server id, ts, from and to', async () => {
        const room = uniq('#general');
        const a = await login(server, uniq('a'), { room });
        const b = await login(server, uniq('b'), { room });
        const c = await login(server, uniq('c'), { room });
        a.send({ type: 'room', to: room, message: { text: 'hola a todos' } });
        const got = [];
        for (const x of [a, b, c]) {
            const m = await x.next('room');
            assertChatMessage(m, { type: 'room', from: a.nickname, to: room, text: 'hola a todos' });
            got.push(m);
        }
        assert.ok(got.every((m) => m.id === got[0].id && m.ts === got[0].ts), 'every member sees the same id and ts');
        await closeAll(a, b, c);
    });

    test("room names ignore case and the leading '#': one room, named as it was created", async () => {
        const base = uniq('Dev');
        const a = await login(server, uniq('low'), { room: base });
        const b = await login(server, uniq('up'), { room: `#${base.toUpperCase()}` });
        assert.equal(b.joined.room, base, 'the room is named as its creator spelled it');
        assert.deepEqual([...b.joined.members].sort(), [a.nickname, b.nickname].sort());
        assert.equal((await a.next('member_joined')).room, base);
        b.send({ type: 'room', to: base.toLowerCase(), message: { text: 'lower' } });
        for (const x of [a, b]) {
            const m = await x.next('room');
            assert.equal(m.to, base);
            assert.equal(m.message.text, 'lower');
        }
        const h = await a.request({ type: 'history', room: `#${base.toLowerCase()}` }, 'history');
        assert.equal(h.room, base);
        assert.deepEqual(h.messages.map((m) => [m.to, m.message.text]), [[base, 'lower']]);
        const left = await b.request({ type: 'leave', room: base.toUpperCase() }, 'left');
        assert.equal(left.type, 'left');
        assert.equal(left.room, base);
        assert.equal((await a.next('member_left')).room, base);
        await closeAll(a, b);
    });

    test('a connection may be in several rooms; each message names its room in `to`', async () => {
        const r1 = uniq('#one');
        const r2 = uniq('#two');
        const a = await login(server, uniq('multi'), { room: r1 });
        await join(a, r2);
        const b = await login(server, uniq('inone'), { room: r1 });
        const c = await login(server, uniq('intwo'), { room: r2 });
        b.send({ type: 'room', to: r1, message: { text: 'to one' } });
        c.send({ type: 'room', to: r2, message: { text: 'to two' } });
        const m1 = await a.next((m) => m.type === 'room' && m.to === r1);
        const m2 = await a.next((m) => m.type === 'room' && m.to === r2);
        assert.equal(m1.message.text, 'to one');
        assert.equal(m2.message.text, 'to two');
        a.send({ type: 'room', to: r2, message: { text: 'from a to two' } });
        assert.equal((await c.next((m) => m.type === 'room' && m.from === a.nickname)).to, r2);
        await b.expectNothing(200, (m) => m.type === 'room' && m.from === a.nickname);
        await closeAll(a, b, c);
    });

    test('room names of 64 characters, and # plus 63, are valid', async () => {
        const plain = `${uniq('r')}${'x'.repeat(64)}`.slice(0, 64);
        const hashed = `#${uniq('h')}${'y'.repeat(63)}`.slice(0, 64);
        const a = await login(server, uniq('long'));
        assert.equal((await join(a, plain)).room, plain);
        assert.equal((await join(a, hashed)).room, hashed);
        await a.close();
    });
});

describe('private messages', () => {
    test('a private message reaches the recipient and is echoed to the sender, and no one else', async () => {
        const room = uniq('pm');
        const a = await login(server, uniq('sender'), { room });
        const b = await login(server, uniq('recipient'), { room });
        const c = await login(server, uniq('bystander'), { room });
        a.send({ type: 'private', to: b.nickname, message: { text: 'just for you' } });
        const atB = await b.next('private');
        const atA = await a.next('private');
        assertChatMessage(atB, { type: 'private', from: a.nickname, to: b.nickname, text: 'just for you' });
        assert.deepEqual(atA, atB, 'the sender gets the same message as the recipient');
        await c.expectNothing(300, 'private');
        await closeAll(a, b, c);
    });

    test('the recipient of a private message is found case-insensitively', async () => {
        const a = await login(server, uniq('snd'));
        const b = await login(server, uniq('Rcp'));
        a.send({ type: 'private', to: b.nickname.toUpperCase(), message: { text: 'shouting your name' } });
        const m = await b.next('private');
        assert.equal(m.from, a.nickname);
        assert.equal(m.to.toLowerCase(), b.nickname.toLowerCase());
        assert.equal(m.message.text, 'shouting your name');
        await closeAll(a, b);
    });

    test('private messages need no shared room', async () => {
        const a = await login(server, uniq('roomA'), { room: uniq('x') });
        const b = await login(server, uniq('roomB'), { room: uniq('y') });
        b.send({ type: 'private', to: a.nickname, message: { text: 'across rooms' } });
        assert.equal((await a.next('private')).message.text, 'across rooms');
        await closeAll(a, b);
    });
});

describe('server authority', () => {
    test('a room or private message with an id is acknowledged with ref and the message id', async () => {
        const room = uniq('ack');
        const a = await login(server, uniq('acker'), { room });
        const b = await login(server, uniq('peer'), { room });
        a.send({ type: 'room', to: room, message: { text: 'ack me' }, id: 'm-1' });
        const ack = await a.next('ack');
        const msg = await a.next('room');
        assert.equal(ack.ref, 'm-1');
        assert.equal(ack.message_id, msg.id);
        a.send({ type: 'private', to: b.nickname, message: { text: 'ack me too' }, id: 'm-2' });
        const ack2 = await a.next('ack');
        const pm = await b.next('private');
        assert.equal(ack2.ref, 'm-2');
        assert.equal(ack2.message_id, pm.id);
        // No id, no ack.
        a.send({ type: 'room', to: room, message: { text: 'no ack' } });
        await a.next((m) => m.type === 'room' && m.message.text === 'no ack');
        await a.expectNothing(200, 'ack');
        await closeAll(a, b);
    });

    test('a `from` sent by the client is ignored and replaced by the sender nickname', async () => {
        const room = uniq('spoof');
        const a = await login(server, uniq('honest'), { room });
        const m = await login(server, uniq('mallory'), { room });
        m.send({ type: 'room', to: room, from: a.nickname, message: { text: 'I am honest', from: a.nickname }, ts: 1, id: 'spoof-1' });
        const got = await a.next('room');
        assert.equal(got.from, m.nickname);
        assert.notEqual(got.ts, 1, 'ts is the server time, not the client one');
        m.send({ type: 'private', to: a.nickname, from: 'admin', message: { text: 'trust me' } });
        const pm = await a.next('private');
        assert.equal(pm.from, m.nickname);
        await closeAll(a, m);
    });

    test('message ids strictly increase across rooms, senders and private messages', async () => {
        const r1 = uniq('ids1');
        const r2 = uniq('ids2');
        const watcher = await login(server, uniq('watch'), { room: r1 });
        await join(watcher, r2);
        const s1 = await login(server, uniq('s1'), { room: r1 });
        const s2 = await login(server, uniq('s2'), { room: r2 });
        const expected = 18;
        for (let i = 0; i < 6; i++) {
            s1.send({ type: 'room', to: r1, message: { text: `r1-${i}` } });
            s2.send({ type: 'room', to: r2, message: { text: `r2-${i}` } });
            s1.send({ type: 'private', to: watcher.nickname, message: { text: `pm-${i}` } });
        }
        const ids = [];
        for (let i = 0; i < expected; i++) {
            const m = await watcher.next((x) => x.type === 'room' || x.type === 'private');
            ids.push(m.id);
        }
        for (let i = 1; i < ids.length; i++) assert.ok(ids[i] > ids[i - 1], `ids in order of delivery: ${ids.join(',')}`);
        assert.equal(new Set(ids).size, ids.length);
        await closeAll(watcher, s1, s2);
    });

    test('replies carry the request id back as ref', async () => {
        const room = uniq('refs');
        const c = await connect(server);
        c.send({ type: 'ping', id: 'p-0' });
        assert.equal((await c.next('pong')).ref, 'p-0');
        const nick = uniq('refnick');
        c.send({ type: 'login', nickname: nick, id: 'login-1' });
        assert.equal((await c.next('welcome')).ref, 'login-1');
        c.send({ type: 'rooms', id: 'rooms-0' });
        assert.equal((await c.next('rooms')).ref, 'rooms-0');
        c.send({ type: 'join', room, id: 'join-1' });
        assert.equal((await c.next('joined')).ref, 'join-1');
        c.send({ type: 'who', room, id: 'who-1' });
        assert.equal((await c.next('members')).ref, 'who-1');
        c.send({ type: 'leave', room, id: 'leave-1' });
        assert.equal((await c.next('left')).ref, 'leave-1');
        await c.close();
    });

    test('ping is answered by pong before and after login', async () => {
        const c = await connect(server);
        c.send({ type: 'ping' });
        await c.next('pong');
        c.send({ type: 'login', nickname: uniq('pinger') });
        await c.next('welcome');
        c.send({ type: 'ping' });
        await c.next('pong');
        await c.close();
    });

    test('unknown extra fields in a request are ignored', async () => {
        const room = uniq('extra');
        const c = await connect(server);
        c.send({ type: 'login', nickname: uniq('extra'), room, color: 'blue', connectedAt: Date.now(), nested: { a: [1, 2] } });
        await c.next('welcome');
        await c.next('joined');
        c.send({ type: 'room', to: room, message: { text: 'still fine', bold: true }, extra: 1 });
        assert.equal((await c.next('room')).message.text, 'still fine');
        await c.close();
    });
});

describe('message text limits', () => {
    test('a text of exactly 4,096 UTF-8 bytes is accepted; one byte more is message_too_long', async () => {
        const room = uniq('long');
        const c = await login(server, uniq('writer'), { room });
        const reader = await login(server, uniq('reader'));
        const exact = 'é'.repeat(2048); // 2,048 characters, 4,096 bytes
        c.send({ type: 'room', to: room, message: { text: exact } });
        assert.equal((await c.next('room')).message.text, exact);
        // 2,049 characters but 4,098 bytes: the limit counts bytes.
        await c.expectError({ type: 'room', to: room, message: { text: `${exact}é` } }, 'message_too_long');
        await c.expectError({ type: 'private', to: reader.nickname, message: { text: 'x'.repeat(4097) } }, 'message_too_long');
        await reader.expectNothing(200, 'private');
        await closeAll(c, reader);
    });

    test('an empty text is a bad_request', async () => {
        const room = uniq('empty');
        const c = await login(server, uniq('mute'), { room });
        await c.expectError({ type: 'room', to: room, message: { text: '' } }, 'bad_request');
        await c.close();
    });
});
