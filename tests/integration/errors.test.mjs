// Every error code of PROTOCOL.md, each provoked on purpose: the reply is an
// `error` with the stable code, a readable message and the request's id as
// `ref`, and the connection stays open.

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

/** The connection still works: a ping with an id gets its pong. */
async function stillWorks(c) {
    const id = `alive-${uniq('')}`;
    c.send({ type: 'ping', id });
    const pong = await c.next((m) => m.type === 'pong');
    assert.equal(pong.ref, id);
    assert.ok(c.isOpen);
}

describe('bad_json', () => {
    for (const [name, text] of [
        ['plain text', 'hello there'],
        ['truncated JSON', '{"type":"ping"'],
        ['an array', '["ping"]'],
        ['a number', '42'],
        ['a string', '"ping"'],
        ['null', 'null'],
        ['an empty message', ''],
        ['two objects in one message', '{"type":"ping"}{"type":"ping"}'],
        ['single quotes', "{'type':'ping'}"],
    ]) {
        test(`${name} gets bad_json, before and after login`, async () => {
            const c = await connect(server);
            c.send(text);
            const e = await c.next('error');
            assert.equal(e.code, 'bad_json');
            assert.ok(typeof e.message === 'string' && e.message.length > 0);
            await stillWorks(c);
            c.send({ type: 'login', nickname: uniq('bj') });
            await c.next('welcome');
            c.send(text);
            assert.equal((await c.next('error')).code, 'bad_json');
            await stillWorks(c);
            await c.close();
        });
    }
});

describe('bad_request', () => {
    test('a missing or non-string type is a bad_request', async () => {
        const c = await connect(server);
        for (const req of [{}, { type: 5 }, { type: null }, { type: ['ping'] }, { type: { name: 'ping' } }, { type: true }]) {
            c.send({ ...req, id: 'no-type' });
            const e = await c.next('error');
            assert.equal(e.code, 'bad_request', `${JSON.stringify(req)} → ${JSON.stringify(e)}`);
            assert.equal(e.ref, 'no-type');
        }
        await stillWorks(c);
        await c.close();
    });

    test('missing or wrong-typed fields are a bad_request', async () => {
        const room = uniq('br');
        const c = await connect(server);
        await c.expectError({ type: 'login' }, 'bad_request');
        await c.expectError({ type: 'login', nickname: 7 }, 'bad_request');
        await c.expectError({ type: 'login', nickname: ['x'] }, 'bad_request');
        c.send({ type: 'login', nickname: uniq('br') });
        await c.next('welcome');
        await join(c, room);
        const other = await login(server, uniq('br-peer'));
        for (const req of [
            { type: 'join' },
            { type: 'join', room: 5 },
            { type: 'join', room: null },
            { type: 'leave' },
            { type: 'room', to: room },
            { type: 'room', message: { text: 'no to' } },
            { type: 'room', to: room, message: 'not an object' },
            { type: 'room', to: room, message: {} },
            { type: 'room', to: room, message: { text: 5 } },
            { type: 'room', to: room, message: { text: null } },
            { type: 'room', to: [room], message: { text: 'hi' } },
            { type: 'private', to: other.nickname },
            { type: 'private', to: other.nickname, message: { text: true } },
            { type: 'private', to: 5, message: { text: 'hi' } },
            { type: 'who' },
            { type: 'history' },
        ]) {
            await c.expectError(req, 'bad_request');
        }
        await other.expectNothing(200, 'private');
        await stillWorks(c);
        await Promise.all([c.close(), other.close()]);
    });
});

describe('unknown_type', () => {
    test('an unknown type gets unknown_type, before and after login', async () => {
        const c = await connect(server);
        await c.expectError({ type: 'dance' }, 'unknown_type');
        c.send({ type: 'login', nickname: uniq('dancer') });
        await c.next('welcome');
        await c.expectError({ type: 'dance' }, 'unknown_type');
        await c.expectError({ type: 'welcome' }, 'unknown_type'); // a server→client type
        await stillWorks(c);
        await c.close();
    });
});

describe('not_logged_in', () => {
    test('every request but ping needs a login first', async () => {
        const room = uniq('nli');
        const peer = await login(server, uniq('nli-peer'), { room });
        const c = await connect(server);
        for (const req of [
            { type: 'join', room },
            { type: 'leave', room },
            { type: 'room', to: room, message: { text: 'hi' } },
            { type: 'private', to: peer.nickname, message: { text: 'hi' } },
            { type: 'history', room },
            { type: 'who', room },
            { type: 'rooms' },
        ]) {
            await c.expectError(req, 'not_logged_in');
        }
        await peer.expectNothing(200, (m) => m.type === 'room' || m.type === 'private');
        await stillWorks(c);
        await Promise.all([c.close(), peer.close()]);
    });
});

describe('already_logged_in', () => {
    test('a second login on one connection gets already_logged_in and keeps the first nickname', async () => {
        const room = uniq('twice');
        const c = await login(server, uniq('once'), { room });
        await c.expectError({ type: 'login', nickname: uniq('twice') }, 'already_logged_in');
        await c.expectError({ type: 'login', nickname: c.nickname }, 'already_logged_in');
        c.send({ type: 'room', to: room, message: { text: 'who am I' } });
        assert.equal((await c.next('room')).from, c.nickname);
        await c.close();
    });
});

describe('nickname_invalid and nickname_taken', () => {
    test('an invalid nickname gets nickname_invalid', async () => {
        const c = await connect(server);
        await c.expectError({ type: 'login', nickname: 'with space' }, 'nickname_invalid');
        await c.expectError({ type: 'login', nickname: 'x'.repeat(33) }, 'nickname_invalid');
        await c.expectError({ type: 'login', nickname: '' }, 'nickname_invalid');
        await stillWorks(c);
        await c.close();
    });

    test('a nickname in use gets nickname_taken', async () => {
        const nick = uniq('Taken');
        const a = await login(server, nick);
        const b = await connect(server);
        await b.expectError({ type: 'login', nickname: nick.toLowerCase() }, 'nickname_taken');
        await stillWorks(b);
        await Promise.all([a.close(), b.close()]);
    });
});

describe('room_invalid', () => {
    for (const [why, room] of [
        ['# alone', '#'],
        ['empty', ''],
        ['65 characters', 'r'.repeat(65)],
        ['# plus 64 characters', `#${'r'.repeat(64)}`],
        ['a space', 'swift dev'],
        ['a second #', '##dev'],
        ['a # inside', 'dev#1'],
        ['non-ASCII', 'café'],
        ['a slash', 'a/b'],
    ]) {
        test(`a room name with ${why} gets room_invalid on join and on login`, async () => {
            const c = await connect(server);
            await c.expectError({ type: 'login', nickname: uniq('ri'), room }, 'room_invalid');
            const nick = uniq('ri2');
            c.send({ type: 'login', nickname: nick });
            const w = await c.next((m) => m.type === 'welcome' || m.type === 'error');
            // Whether the refused login-with-room still claimed the nickname
            // is not specified; either way the connection is usable.
            assert.ok(w.type === 'welcome' || w.code === 'already_logged_in', JSON.stringify(w));
            await c.expectError({ type: 'join', room }, 'room_invalid');
            await stillWorks(c);
            await c.close();
        });
    }
});

describe('not_in_room', () => {
    test('a message to a room the sender is not in gets not_in_room and reaches no one', async () => {
        const room = uniq('closed');
        const member = await login(server, uniq('inside'), { room });
        const outsider = await login(server, uniq('outside'));
        await outsider.expectError({ type: 'room', to: room, message: { text: 'let me in' } }, 'not_in_room');
        await outsider.expectError({ type: 'room', to: uniq('nowhere'), message: { text: 'anyone?' } }, 'not_in_room');
        await member.expectNothing(200, 'room');
        await Promise.all([member.close(), outsider.close()]);
    });

    test('leaving or asking the history of a room one is not in gets not_in_room', async () => {
        const room = uniq('notin');
        const member = await login(server, uniq('m'), { room });
        const outsider = await login(server, uniq('o'));
        await outsider.expectError({ type: 'leave', room }, 'not_in_room');
        await outsider.expectError({ type: 'history', room }, 'not_in_room');
        await member.expectNothing(200, 'member_left');
        await Promise.all([member.close(), outsider.close()]);
    });
});

describe('no_such_user', () => {
    test('a private message to a nickname nobody holds gets no_such_user', async () => {
        const c = await login(server, uniq('lonely'));
        await c.expectError({ type: 'private', to: uniq('ghost'), message: { text: 'hello?' } }, 'no_such_user');
        await c.expectNothing(200, 'private');
        await stillWorks(c);
        await c.close();
    });

    test('a private message to a user who disconnected gets no_such_user', async () => {
        const a = await login(server, uniq('stays'));
        const b = await login(server, uniq('leaves'));
        await b.close();
        let e;
        for (let i = 0; i < 50; i++) {
            const id = `pm${i}`;
            a.send({ type: 'private', to: b.nickname, message: { text: 'still there?' }, id });
            e = await a.next((m) => (m.type === 'error' && m.ref === id) || m.type === 'ack');
            if (e.type === 'error') break;
            await new Promise((r) => setTimeout(r, 20));
        }
        assert.equal(e.code, 'no_such_user');
        await a.close();
    });
});

describe('message_too_long', () => {
    test('--max-text sets the text limit: at the limit it passes, one byte over it is message_too_long', async () => {
        const srv = await startServer(['--max-text', '100']);
        try {
            const room = uniq('mt');
            const c = await login(srv, uniq('mt'), { room });
            assert.ok(Object.values(c.welcome.limits).includes(100), `welcome.limits reports the text limit: ${JSON.stringify(c.welcome.limits)}`);
            c.send({ type: 'room', to: room, message: { text: 'y'.repeat(100) } });
            assert.equal((await c.next('room')).message.text.length, 100);
            await c.expectError({ type: 'room', to: room, message: { text: 'y'.repeat(101) } }, 'message_too_long');
            await c.expectError({ type: 'room', to: room, message: { text: '€'.repeat(34) } }, 'message_too_long'); // 102 bytes
            await stillWorks(c);
            await c.close();
        } finally {
            await srv.stopClean();
        }
    });
});

describe('rate_limited', () => {
    test('a burst of messages far over the flood limit gets rate_limited with the ref of a refused message', async () => {
        const room = uniq('flood');
        const flooder = await login(server, uniq('flooder'), { room });
        const ids = [];
        for (let i = 0; i < 60; i++) {
            const id = `f${i}`;
            ids.push(id);
            flooder.send({ type: 'room', to: room, message: { text: `spam ${i}` }, id });
        }
        const e = await flooder.next((m) => m.type === 'error' && m.code === 'rate_limited');
        assert.ok(ids.includes(e.ref), `rate_limited carries the ref of a refused message: ${JSON.stringify(e)}`);
        assert.ok(typeof e.message === 'string' && e.message.length > 0);
        // Some of the burst was accepted before the limit hit.
        const ack = await flooder.next('ack');
        assert.ok(ids.includes(ack.ref));
        await flooder.terminate();
    });
});
