// Hostile JSON inside valid WebSocket text: nesting far past any sane depth
// (jansson stops at 2,048 levels, so the parser's recursion never grows the
// stack further), broken surrogate escapes (the WebSocket layer guarantees
// valid UTF-8 bytes, but "\ud800" is valid JSON text that decodes to no
// character at all), numbers no parser can hold, wrong types, NULs, unknown
// types, and merely large but shallow documents. Each gets the documented
// error (or is served), and the connection keeps working afterwards.
// (tests/integration/robustness.test.mjs covers the common cases; these are
// the extremes.)

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { connect, startServer, uniq } from './helpers.mjs';

let server;
before(async () => {
    // Room for 100,000 levels of nesting in one message.
    server = await startServer(['--max-message', String(1024 * 1024)]);
});
after(async () => {
    await server?.stopClean();
});

const arrays = (n) => `${'['.repeat(n)}${']'.repeat(n)}`;
const objects = (n) => `${'{"a":'.repeat(n)}1${'}'.repeat(n)}`;

/** A logged-in client in a fresh room; returns { c, room }. */
async function member() {
    const room = uniq('in');
    const c = await connect(server);
    c.send({ type: 'login', nickname: uniq('in'), room });
    await c.next('welcome');
    await c.next('joined');
    return { c, room };
}

/** The connection still answers, and still chats. */
async function keepsWorking(c, room) {
    c.send({ type: 'ping', id: 'after' });
    assert.equal((await c.next((m) => m.type === 'pong' || m.type === 'error')).ref, 'after');
    c.send({ type: 'room', to: room, message: { text: 'still here' } });
    assert.equal((await c.next('room')).message.text, 'still here');
    await c.expectNothing(50, 'error');
}

describe('refused with the right error, and the connection keeps working', () => {
    // [name, text (%ROOM% is the client's room), expected error code, whether the error carries the ref "x"]
    const cases = [
        ['100,000 nested arrays', `{"type":"ping","id":"x","deep":${arrays(100000)}}`, 'bad_json', false],
        ['100,000 nested objects', `{"type":"ping","id":"x","deep":${objects(100000)}}`, 'bad_json', false],
        ['nesting just past the parser limit (2,100)', `{"type":"ping","id":"x","deep":${arrays(2100)}}`, 'bad_json', false],
        ['a lone low surrogate escape', '{"type":"room","to":"%ROOM%","id":"x","message":{"text":"\\udfff"}}', 'bad_json', false],
        ['a high surrogate escape followed by a letter escape', '{"type":"room","to":"%ROOM%","id":"x","message":{"text":"\\ud800\\u0041"}}', 'bad_json', false],
        ['a high surrogate escape followed by a plain letter', '{"type":"room","to":"%ROOM%","id":"x","message":{"text":"\\ud800x"}}', 'bad_json', false],
        ['a surrogate pair in the wrong order', '{"type":"room","to":"%ROOM%","id":"x","message":{"text":"\\udc00\\ud800"}}', 'bad_json', false],
        ['a lone surrogate escape in a nickname', '{"type":"login","id":"x","nickname":"\\ud800"}', 'bad_json', false],
        ['a lone surrogate escape in an ignored field', '{"type":"ping","id":"x","note":"\\ud800"}', 'bad_json', false],
        ['1e400 as the id', '{"type":"ping","id":1e400}', 'bad_request', false],
        ['-1e400 in an ignored field', '{"type":"ping","id":"x","n":-1e400}', 'bad_request', false],
        ['a 5,000-digit integer in an ignored field', `{"type":"ping","id":"x","n":${'9'.repeat(5000)}}`, 'bad_request', false],
        ['a 5,000-digit integer as since', `{"type":"join","id":"x","room":"%ROOM%","since":${'7'.repeat(5000)}}`, 'bad_request', false],
        ['a real number as since', '{"type":"join","id":"x","room":"%ROOM%","since":1.5e300}', 'bad_request', true],
        ['2^53 as before', '{"type":"history","id":"x","room":"%ROOM%","before":9007199254740992}', 'bad_request', true],
        ['NaN', '{"type":"ping","id":"x","n":NaN}', 'bad_json', false],
        ['Infinity', '{"type":"ping","id":"x","n":Infinity}', 'bad_json', false],
        ['a number as the id', '{"type":"ping","id":42}', 'bad_request', false],
        ['a number as to', '{"type":"room","id":"x","to":5,"message":{"text":"hi"}}', 'bad_request', true],
        ['a string as message', '{"type":"room","id":"x","to":"%ROOM%","message":"hi"}', 'bad_request', true],
        ['null as message.text', '{"type":"room","id":"x","to":"%ROOM%","message":{"text":null}}', 'bad_request', true],
        ['true as room', '{"type":"join","id":"x","room":true}', 'bad_request', true],
        ['a NUL in the text', '{"type":"room","id":"x","to":"%ROOM%","message":{"text":"a\\u0000b"}}', 'bad_request', true],
        ['a NUL in a room name', '{"type":"join","id":"x","room":"%ROOM%\\u0000"}', 'room_invalid', true],
        ['an empty type', '{"type":"","id":"x"}', 'unknown_type', true],
        ['a type in the wrong case', '{"type":"ROOM","id":"x","to":"%ROOM%","message":{"text":"hi"}}', 'unknown_type', true],
        ['a type with a NUL after it', '{"type":"ping\\u0000","id":"x"}', 'unknown_type', true],
        ['a type that is an object', '{"type":{"type":"ping"},"id":"x"}', 'bad_request', true],
        ['a truncated document', '{"type":"room","id":"x","to":"%ROOM%","message":{"text":"cut', 'bad_json', false],
        ['two documents in one message', '{"type":"ping","id":"x"}{"type":"ping"}', 'bad_json', false],
    ];
    for (const [name, text, code, hasRef] of cases) {
        test(`${name}: ${code}`, async () => {
            const { c, room } = await member();
            c.send(text.replaceAll('%ROOM%', room));
            const e = await c.next('error', 10000);
            assert.equal(e.code, code, `${name}: ${JSON.stringify(e)}`);
            assert.ok(typeof e.message === 'string' && e.message.length > 0);
            if (hasRef) assert.equal(e.ref, 'x');
            else assert.ok(e.ref === undefined || e.ref === 'x', `ref ${e.ref}`);
            await keepsWorking(c, room);
            await c.close();
        });
    }
});

describe('large but harmless input is served', () => {
    test('nesting within the parser limit (2,000 levels) in an ignored field', async () => {
        const { c, room } = await member();
        c.send(`{"type":"ping","id":"d","deep":${arrays(2000)}}`);
        assert.equal((await c.next((m) => m.ref === 'd')).type, 'pong');
        await keepsWorking(c, room);
        await c.close();
    });

    test('a flat array of 100,000 numbers and an object of 20,000 keys', async () => {
        const { c, room } = await member();
        c.send(`{"type":"ping","id":"a","big":[${Array.from({ length: 100000 }, (_, i) => i).join(',')}]}`);
        assert.equal((await c.next((m) => m.ref === 'a')).type, 'pong');
        const keys = Array.from({ length: 20000 }, (_, i) => `"k${i}":${i}`).join(',');
        c.send(`{"type":"ping","id":"k",${keys}}`);
        assert.equal((await c.next((m) => m.ref === 'k')).type, 'pong');
        await keepsWorking(c, room);
        await c.close();
    });

    test('a valid escaped surrogate pair is one character, delivered as UTF-8', async () => {
        const { c, room } = await member();
        const other = await connect(server);
        other.send({ type: 'login', nickname: uniq('rd'), room });
        await other.next('joined');
        c.send(`{"type":"room","to":"${room}","message":{"text":"\\ud83d\\ude00 ok"}}`);
        assert.equal((await other.next('room')).message.text, '😀 ok');
        await Promise.all([c.close(), other.close()]);
    });
});
