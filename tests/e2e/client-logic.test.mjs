// The web client's logic without a browser or a server: the name rules,
// the backoff, and the session's recovery (login again, rejoin with `since`,
// drop duplicates, notice a silent line), driven through a scripted socket.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { nicknameProblem, roomProblem, passwordProblem, utf8Length, nickKey } from '../../web/rules.js';
import { backoffDelay, DEFAULT_TIMING } from '../../web/connection.js';
import { Session, socketUrl } from '../../web/session.js';

test('nickname rules match the protocol', () => {
    for (const ok of ['a', 'ana', 'A_b-c.d', '0', 'x'.repeat(32)]) assert.equal(nicknameProblem(ok), '', ok);
    assert.match(nicknameProblem(''), /choose/i);
    assert.match(nicknameProblem('x'.repeat(33)), /33 of at most 32/);
    assert.match(nicknameProblem('bad nick'), /spaces/);
    assert.match(nicknameProblem('ñandú'), /“ñ”, “ú”/);
    assert.match(nicknameProblem('a#b'), /“#”/);
    assert.equal(nickKey('Ana'), nickKey('aNA'));
});

test('room rules match the protocol', () => {
    for (const ok of ['python-dev', '#general', 'a', '#a', 'x'.repeat(64), `#${'x'.repeat(63)}`]) assert.equal(roomProblem(ok), '', ok);
    assert.match(roomProblem(''), /choose/i);
    assert.match(roomProblem('#'), /after the #/);
    assert.match(roomProblem('x'.repeat(65)), /too long/i);
    assert.match(roomProblem(`#${'x'.repeat(64)}`), /too long/i);
    assert.match(roomProblem('two words'), /spaces/);
    assert.match(roomProblem('a#b'), /“#”/);
    assert.match(roomProblem('##a'), /“#”/);
});

test('the length counted against the limit is UTF-8 bytes', () => {
    assert.equal(utf8Length('abc'), 3);
    assert.equal(utf8Length('ñ'), 2);
    assert.equal(utf8Length('€'), 3);
    assert.equal(utf8Length('👋'), 4);
});

test('backoff grows exponentially, is capped, and is jittered within half a step', () => {
    const t = { backoffBaseMs: 500, backoffCapMs: 15000 };
    assert.equal(backoffDelay(0, t, () => 0), 250);
    assert.equal(backoffDelay(0, t, () => 1), 500);
    assert.equal(backoffDelay(3, t, () => 0), 2000);
    assert.equal(backoffDelay(3, t, () => 1), 4000);
    assert.equal(backoffDelay(10, t, () => 1), 15000);
    assert.equal(backoffDelay(1000, t, () => 0.5), 11250);
    const seen = new Set();
    for (let i = 0; i < 50; i++) seen.add(backoffDelay(4, DEFAULT_TIMING));
    assert.ok(seen.size > 10, 'different clients wait different times');
    for (const d of seen) assert.ok(d >= 4000 && d <= 8000, String(d));
});

test('the WebSocket address follows the page, ws for http and wss for https', () => {
    assert.equal(socketUrl('http://localhost:9090/?room=x#y'), 'ws://localhost:9090/ws');
    assert.equal(socketUrl('https://chat.example/tertulia/'), 'wss://chat.example/tertulia/ws');
});

/* A WebSocket stand-in the test drives: it records what the client sends
 * and lets the test open it, deliver frames and close it. */
class ScriptedSocket {
    static all = [];
    constructor(url, protocols) {
        this.url = url;
        this.protocols = protocols;
        this.readyState = 0;
        this.sent = [];
        ScriptedSocket.all.push(this);
    }
    send(text) { this.sent.push(JSON.parse(text)); }
    close() { this.readyState = 3; }
    open() { this.readyState = 1; this.onopen?.({}); }
    deliver(obj) { this.onmessage?.({ data: JSON.stringify(obj) }); }
    drop(code = 1006) { this.readyState = 3; this.onclose?.({ code, reason: '' }); }
    lastSent() { return this.sent.at(-1); }
}

function record(session) {
    const events = [];
    for (const type of ['status', 'login-failed', 'welcome', 'joined', 'message', 'ack', 'unsent', 'request-error', 'left', 'member',
        'token', 'session-ended', 'logged-out', 'password-changed', 'undelivered'])
        session.addEventListener(type, (ev) => events.push({ type, ...ev.detail }));
    return events;
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function nextSocket(count, timeout = 2000) {
    const end = Date.now() + timeout;
    while (ScriptedSocket.all.length < count) {
        if (Date.now() > end) throw new Error('the client did not reconnect');
        await sleep(2);
    }
    return ScriptedSocket.all[count - 1];
}

const FAST = { backoffBaseMs: 4, backoffCapMs: 8, pingIdleMs: 60000, pongTimeoutMs: 60000 };
const msg = (id, text, from = 'bob', to = 'r') => ({ type: 'room', id, ts: 1000 + id, from, to, message: { text } });

test('after a drop the session logs in again, rejoins with since, and drops duplicates', async () => {
    ScriptedSocket.all = [];
    const s = new Session({ url: 'ws://x/ws', WebSocketImpl: ScriptedSocket, timing: FAST });
    const events = record(s);
    s.login('ana', 'r');
    const ws1 = await nextSocket(1);
    assert.deepEqual(ws1.protocols, ['tertulia.v1']);
    ws1.open();
    const login = ws1.lastSent();
    assert.equal(login.type, 'login');
    assert.equal(login.nickname, 'ana');
    assert.equal(login.room, 'r');
    ws1.deliver({ type: 'welcome', ref: login.id, nickname: 'ana', limits: { max_text: 100 } });
    ws1.deliver({ type: 'joined', ref: login.id, room: 'r', members: ['ana', 'bob'], history: [msg(1, 'one'), msg(2, 'two')], more: false });
    ws1.deliver(msg(3, 'three'));
    ws1.deliver(msg(3, 'three')); // the same message again
    const shown = () => events.filter((e) => e.type === 'message').map((e) => [e.msg.id, e.msg.message.text, e.source]);
    assert.deepEqual(shown(), [[1, 'one', 'join'], [2, 'two', 'join'], [3, 'three', 'live']]);

    const ref = s.sendRoom('r', 'in flight');
    assert.ok(ref);
    ws1.drop();
    assert.deepEqual(events.filter((e) => e.type === 'unsent').map((e) => e.ref), [ref]);
    assert.equal(events.filter((e) => e.type === 'status').at(-1).state, 'reconnecting');
    assert.equal(s.sendRoom('r', 'offline'), '', 'nothing is sent while disconnected');

    const ws2 = await nextSocket(2);
    ws2.open();
    const relogin = ws2.lastSent();
    assert.equal(relogin.type, 'login');
    assert.equal(relogin.room, undefined, 'rooms are rejoined with join, which can ask for what was missed');
    ws2.deliver({ type: 'welcome', ref: relogin.id, nickname: 'ana', limits: {} });
    const join = ws2.lastSent();
    assert.equal(join.type, 'join');
    assert.equal(join.room, 'r');
    assert.equal(join.since, 3);
    ws2.deliver({ type: 'joined', ref: join.id, room: 'r', members: ['ana', 'bob'], history: [msg(3, 'three'), msg(4, 'four')], more: false });
    assert.deepEqual(shown().slice(3), [[4, 'four', 'rejoin']]);
    assert.equal(events.filter((e) => e.type === 'joined').at(-1).rejoin, true);
    assert.equal(events.filter((e) => e.type === 'status').at(-1).state, 'online');

    // A server that lost its history counts from 1 again: a known id with
    // different content is a new message, not a duplicate.
    ws2.deliver(msg(1, 'a new first message'));
    assert.deepEqual(shown().slice(4), [[1, 'a new first message', 'live']]);
    s.logout();
});

test('a refused first login is reported and not retried; a refused re-login is retried', async () => {
    ScriptedSocket.all = [];
    const s = new Session({ url: 'ws://x/ws', WebSocketImpl: ScriptedSocket, timing: FAST });
    const events = record(s);
    s.login('ana', 'r');
    const ws1 = await nextSocket(1);
    ws1.open();
    ws1.deliver({ type: 'error', ref: ws1.lastSent().id, code: 'nickname_taken', message: 'taken' });
    assert.deepEqual(events.filter((e) => e.type === 'login-failed').map((e) => e.code), ['nickname_taken']);
    await sleep(50);
    assert.equal(ScriptedSocket.all.length, 1, 'no retry behind the form');

    s.login('ana2', 'r');
    const ws2 = await nextSocket(2);
    ws2.open();
    ws2.deliver({ type: 'welcome', ref: ws2.lastSent().id, nickname: 'ana2' });
    ws2.drop();
    const ws3 = await nextSocket(3);
    ws3.open();
    // Our own old connection still holds the nickname on the server.
    ws3.deliver({ type: 'error', ref: ws3.lastSent().id, code: 'nickname_taken', message: 'taken' });
    const ws4 = await nextSocket(4);
    const status = events.filter((e) => e.type === 'status').at(-1);
    assert.equal(status.state, 'reconnecting');
    assert.match(status.note, /release your nickname/);
    ws4.open();
    ws4.deliver({ type: 'welcome', ref: ws4.lastSent().id, nickname: 'ana2' });
    assert.equal(events.filter((e) => e.type === 'status').at(-1).state, 'online');
    assert.equal(events.filter((e) => e.type === 'login-failed').length, 1);
    s.logout();
});

test('an unreachable server on the first login is reported on the form', async () => {
    ScriptedSocket.all = [];
    const s = new Session({ url: 'ws://x/ws', WebSocketImpl: ScriptedSocket, timing: FAST });
    const events = record(s);
    s.login('ana', 'r');
    (await nextSocket(1)).drop();
    const failed = events.filter((e) => e.type === 'login-failed');
    assert.equal(failed.length, 1);
    assert.match(failed[0].message, /could not reach the server/i);
    await sleep(50);
    assert.equal(ScriptedSocket.all.length, 1);
});

test('a silent line is pinged, and replaced when no answer comes', async () => {
    ScriptedSocket.all = [];
    const s = new Session({ url: 'ws://x/ws', WebSocketImpl: ScriptedSocket, timing: { ...FAST, pingIdleMs: 40, pongTimeoutMs: 60 } });
    s.login('ana');
    const ws1 = await nextSocket(1);
    ws1.open();
    ws1.deliver({ type: 'welcome', ref: ws1.lastSent().id, nickname: 'ana' });
    await sleep(80);
    assert.equal(ws1.lastSent().type, 'ping');
    ws1.deliver({ type: 'pong' }); // alive: no reconnect
    await sleep(60);
    assert.equal(ScriptedSocket.all.length, 1);
    // Now it goes silent: no pong, and no close either.
    const ws2 = await nextSocket(2, 1000);
    assert.equal(ws1.readyState, 3, 'the dead socket was closed');
    ws2.open();
    assert.equal(ws2.lastSent().type, 'login');
    s.logout();
});

test('passwords: 8 to 1,024 bytes for a new one, anything but empty to log in', () => {
    assert.equal(passwordProblem('', false), 'Enter your password.');
    assert.equal(passwordProblem('x', false), '');
    assert.match(passwordProblem('', true), /at least 8/);
    assert.match(passwordProblem('1234567', true), /Too short/);
    assert.equal(passwordProblem('12345678', true), '');
    assert.equal(passwordProblem('ñññč', true), '', 'bytes, as the server counts: 8 of them');
    assert.match(passwordProblem('x'.repeat(1025), true), /Too long/);
});

test('an account: register, reconnect with the token, a new token after a password change, a refused token ends it', async () => {
    ScriptedSocket.all = [];
    const s = new Session({ url: 'ws://x/ws', WebSocketImpl: ScriptedSocket, timing: FAST });
    const events = record(s);
    s.register('ana', 'correct horse', 'r');
    const ws1 = await nextSocket(1);
    ws1.open();
    const reg = ws1.lastSent();
    assert.deepEqual({ ...reg, id: undefined }, { type: 'register', nickname: 'ana', password: 'correct horse', id: undefined });
    ws1.deliver({ type: 'welcome', ref: reg.id, nickname: 'Ana', account: true, token: 'tt1.A' });
    assert.deepEqual(events.filter((e) => e.type === 'token').map((e) => e.token), ['tt1.A']);
    assert.equal(s.account, true);
    assert.equal(s.nickname, 'Ana');
    const join = ws1.lastSent();
    assert.equal(join.type, 'join', 'register takes no room: it is joined after the welcome');
    assert.equal(join.room, 'r');
    ws1.deliver({ type: 'joined', ref: join.id, room: 'r', members: ['Ana'], history: [msg(5, 'five')] });

    ws1.drop();
    const ws2 = await nextSocket(2);
    ws2.open();
    assert.deepEqual({ ...ws2.lastSent(), id: undefined }, { type: 'login', token: 'tt1.A', id: undefined }, 'no password kept');
    ws2.deliver({ type: 'welcome', ref: ws2.lastSent().id, nickname: 'Ana', account: true });
    assert.equal(ws2.lastSent().since, 5);
    const ref = s.changePassword('correct horse', 'battery staple');
    assert.deepEqual({ ...ws2.lastSent(), id: undefined }, { type: 'password', old: 'correct horse', new: 'battery staple', id: undefined });
    ws2.deliver({ type: 'password_changed', ref, token: 'tt1.B' });
    assert.deepEqual(events.filter((e) => e.type === 'password-changed').map((e) => e.ref), [ref]);
    assert.equal(s.token, 'tt1.B');
    ws2.deliver({ type: 'undelivered', message_id: 9, to: 'bob' });
    assert.deepEqual(events.filter((e) => e.type === 'undelivered').map((e) => [e.messageId, e.to]), [[9, 'bob']]);

    ws2.drop();
    const ws3 = await nextSocket(3);
    ws3.open();
    assert.equal(ws3.lastSent().token, 'tt1.B');
    ws3.deliver({ type: 'error', ref: ws3.lastSent().id, code: 'auth_failed', message: 'no' });
    assert.deepEqual(events.filter((e) => e.type === 'session-ended').map((e) => e.token), ['tt1.B']);
    assert.equal(events.filter((e) => e.type === 'status').at(-1).state, 'idle');
    await sleep(50);
    assert.equal(ScriptedSocket.all.length, 3, 'a refused token is not retried');
});

test('logout sends logout and closes on logged_out; logged_out from elsewhere logs out', async () => {
    ScriptedSocket.all = [];
    const s = new Session({ url: 'ws://x/ws', WebSocketImpl: ScriptedSocket, timing: FAST });
    const events = record(s);
    s.restoreAccount('tt1.C', 'ana', ['r']);
    const ws1 = await nextSocket(1);
    ws1.open();
    assert.equal(ws1.lastSent().token, 'tt1.C');
    ws1.deliver({ type: 'welcome', ref: ws1.lastSent().id, nickname: 'ana', account: true });
    assert.equal(ws1.lastSent().type, 'join', 'a restored page joins its rooms');
    s.logout({ everywhere: true });
    assert.deepEqual({ ...ws1.lastSent(), id: undefined }, { type: 'logout', everywhere: true, id: undefined });
    assert.equal(ws1.readyState, 1, 'open until the server confirms');
    ws1.deliver({ type: 'logged_out' });
    assert.equal(ws1.readyState, 3);
    assert.equal(events.filter((e) => e.type === 'logged-out').length, 0, 'our own logout is not news');

    s.loginPassword('ana', 'pw', 'r');
    const ws2 = await nextSocket(2);
    ws2.open();
    assert.deepEqual({ ...ws2.lastSent(), id: undefined }, { type: 'login', nickname: 'ana', password: 'pw', room: 'r', id: undefined });
    ws2.deliver({ type: 'welcome', ref: ws2.lastSent().id, nickname: 'ana', account: true, token: 'tt1.D' });
    ws2.deliver({ type: 'logged_out' }); // everywhere, from another device
    assert.equal(events.filter((e) => e.type === 'logged-out').length, 1);
    assert.equal(ws2.readyState, 3);
    assert.equal(s.loggedIn, false);
    await sleep(50);
    assert.equal(ScriptedSocket.all.length, 2, 'no reconnect after being logged out');
});
