// Accounts (PROTOCOL.md, "Accounts and sessions"): register, login with a
// password or a token, one account on many connections, guests kept off
// accounts' nicknames, logout (and everywhere), password change; the same
// answer and the same time for an unknown account and a wrong password;
// failures rate limited; a flood of logins refused by the bounded hash
// queue, not queued without end; tokens and accounts survive a restart.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';

import { connect, join, login, startServer, uniq } from './helpers.mjs';

const T = { timeout: 120000 };
const PW = 'correct horse battery';
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tertulia-accounts-'));
let s;
before(async () => {
    s = await startServer(['--db', path.join(dir, 'main.db')]);
});
after(async () => {
    await s.stopClean();
    fs.rmSync(dir, { recursive: true, force: true });
});

/** A server of the test's own: its failures do not use up the shared one's
 * per-address bucket (every test connects from 127.0.0.1). */
async function own(fn) {
    const x = await startServer(['--db', ':memory:']);
    try {
        await fn(x);
    } finally {
        await x.stopClean();
    }
}

async function register(server, nickname, password = PW, extra = {}) {
    const c = await connect(server, { label: nickname });
    const w = await c.request({ type: 'register', nickname, password, ...extra }, 'welcome');
    assert.equal(w.type, 'welcome', `register ${nickname}: ${JSON.stringify(w)}`);
    c.welcome = w;
    c.nickname = nickname;
    return c;
}

async function passwordLogin(server, nickname, password = PW, extra = {}) {
    const c = await connect(server, { label: nickname });
    c.welcome = await c.request({ type: 'login', nickname, password, ...extra }, 'welcome');
    return c;
}

async function tokenLogin(server, token, extra = {}) {
    const c = await connect(server);
    c.welcome = await c.request({ type: 'login', token, ...extra }, 'welcome');
    return c;
}

test('register: a welcome with account true and a token; the nickname is then taken in any case', T, async () => {
    const nick = uniq('Reg');
    const a = await register(s, nick);
    assert.equal(a.welcome.account, true);
    assert.equal(a.welcome.nickname, nick);
    assert.match(a.welcome.token, /^tt1\.[A-Za-z0-9_-]{43}$/);
    assert.equal(a.welcome.resume, undefined, 'an account has a token, not a guest resume');
    const b = await connect(s);
    await b.expectError({ type: 'register', nickname: nick.toUpperCase(), password: PW }, 'nickname_taken');
    await b.expectError({ type: 'register', nickname: uniq('r'), password: 'short' }, 'password_invalid');
    await b.expectError({ type: 'register', nickname: uniq('r'), password: 'x'.repeat(1025) }, 'password_invalid');
    await b.expectError({ type: 'register', nickname: 'bad nick', password: PW }, 'nickname_invalid');
    await b.expectError({ type: 'register', nickname: uniq('r') }, 'bad_request');
    await b.expectError({ type: 'register', nickname: uniq('r'), password: 12345678 }, 'bad_request');
    await a.expectError({ type: 'register', nickname: uniq('r'), password: PW }, 'already_logged_in');
    // Offline, the name is still the account's, also in another case.
    await a.close();
    await b.expectError({ type: 'register', nickname: nick.toLowerCase(), password: PW }, 'nickname_taken');
    await b.close();
});

test('password login: a new token each time; wrong password and unknown account get one answer', T, () => own(async (s) => {
    const nick = uniq('Pw');
    const a = await register(s, nick);
    await a.close();
    const b = await passwordLogin(s, nick.toLowerCase());
    assert.equal(b.welcome.type, 'welcome');
    assert.equal(b.welcome.account, true);
    assert.equal(b.welcome.nickname, nick, 'the account spells its nickname');
    assert.notEqual(b.welcome.token, a.welcome.token);
    const c = await connect(s);
    const wrong = await c.expectError({ type: 'login', nickname: nick, password: 'not the password' }, 'auth_failed');
    const unknown = await c.expectError({ type: 'login', nickname: uniq('nobody'), password: 'not the password' }, 'auth_failed');
    assert.equal(wrong.message, unknown.message, 'one message for both');
    await c.expectError({ type: 'login', nickname: nick, password: 'x'.repeat(2000) }, 'auth_failed');
    await c.expectError({ type: 'login', nickname: nick, password: 7 }, 'bad_request');
    await c.expectError({ type: 'login', password: PW }, 'bad_request');
    // The failures did not log this connection in.
    await c.expectError({ type: 'join', room: 'x' }, 'not_logged_in');
    await b.close();
    await c.close();
}));

test('an unknown account and a wrong password take the same time (within noise)', T, () => own(async (s) => {
    const nick = uniq('Tm');
    await (await register(s, nick)).close();
    const c = await connect(s);
    const times = { wrong: [], unknown: [] };
    for (let i = 0; i < 8; i++) {
        for (const kind of i % 2 ? ['wrong', 'unknown'] : ['unknown', 'wrong']) {
            const t0 = process.hrtime.bigint();
            await c.expectError({ type: 'login', nickname: kind === 'wrong' ? nick : uniq('ghost'), password: `guess ${i} ${kind}` }, 'auth_failed');
            times[kind].push(Number(process.hrtime.bigint() - t0) / 1e6);
        }
    }
    // The fastest of each: other tests on the same cores only add time, so
    // the minimum is what the work itself costs. Both cost one Argon2id
    // verify (about 100 ms); a fast path for either would make one of them
    // a few milliseconds, a difference far beyond this bound.
    const w = Math.min(...times.wrong), u = Math.min(...times.unknown);
    assert.ok(w > 30 && u > 30, `both verify a hash: wrong ${w} ms, unknown ${u} ms`);
    assert.ok(Math.abs(w - u) < 0.5 * Math.max(w, u), `wrong ${w} ms vs unknown ${u} ms`);
    await c.close();
}));

test('token login: another tab or device is the same account; presence counts it once, privates reach every connection', T, async () => {
    const nick = uniq('Tab');
    const room = uniq('#tabs');
    const a1 = await register(s, nick);
    const a2 = await tokenLogin(s, a1.welcome.token);
    assert.equal(a2.welcome.nickname, nick);
    assert.equal(a2.welcome.account, true);
    assert.equal(a2.welcome.token, undefined, 'a token login keeps its token');
    const watcher = await login(s, uniq('w'), { room });
    await join(a1, room);
    const mj = await watcher.next((m) => m.type === 'member_joined' && m.nickname === nick);
    assert.equal(mj.room, room);
    const j2 = await join(a2, room);
    assert.deepEqual(j2.members.filter((m) => m === nick), [nick], 'one member, however many tabs');
    // The watcher hears no second member_joined: a ping round trip shows it.
    await watcher.request({ type: 'ping' }, 'pong');
    assert.equal(watcher.inbox.items.filter((m) => m.type === 'member_joined' && m.nickname === nick).length, 0);
    // A private to the account reaches both tabs; its echo reaches both of the sender's.
    const b1 = await register(s, uniq('Snd'));
    const b2 = await tokenLogin(s, b1.welcome.token);
    await b1.request({ type: 'private', to: nick, message: { text: 'to every tab' } }, 'ack');
    for (const c of [a1, a2, b1, b2]) {
        const m = await c.next((x) => x.type === 'private' && x.message.text === 'to every tab');
        assert.equal(m.from, b1.nickname);
        assert.equal(m.to, nick);
    }
    // One tab leaving the room leaves the account in it.
    await a2.request({ type: 'leave', room }, 'left');
    await watcher.request({ type: 'ping' }, 'pong');
    const who = await watcher.request({ type: 'who', room }, 'members');
    assert.ok(who.members.includes(nick));
    for (const c of [a1, a2, b1, b2, watcher]) await c.close();
});

test('login with a token and a room joins it; a bad, malformed or too long token is auth_failed', T, () => own(async (s) => {
    const a = await register(s, uniq('Tok'));
    const room = uniq('#tokroom');
    const c = await connect(s);
    c.send({ type: 'login', token: a.welcome.token, room, id: 'L' });
    const w = await c.next((m) => m.type === 'welcome' || m.type === 'error');
    assert.equal(w.type, 'welcome');
    assert.equal(w.ref, 'L');
    const j = await c.next((m) => m.type === 'joined');
    assert.equal(j.room, room);
    const d = await connect(s);
    const wrongToken = `tt1.${'A'.repeat(43)}`;
    for (const token of [wrongToken, 'nonsense', 'tt1.short', 'x'.repeat(600), a.welcome.token.slice(0, -1)]) {
        await d.expectError({ type: 'login', token }, 'auth_failed');
    }
    await d.expectError({ type: 'login', token: 5 }, 'bad_request');
    for (const x of [a, c, d]) await x.close();
}));

test("a guest cannot take an account's nickname: nickname_registered offline, nickname_taken online", T, async () => {
    const nick = uniq('Own');
    const a = await register(s, nick);
    const g = await connect(s);
    await g.expectError({ type: 'login', nickname: nick }, 'nickname_taken');
    await a.close();
    await g.expectError({ type: 'login', nickname: nick.toUpperCase() }, 'nickname_registered');
    // A guest's name cannot be registered while the guest holds it.
    const guestNick = uniq('guest');
    const guest = await login(s, guestNick);
    assert.equal(guest.welcome.account, false);
    await g.expectError({ type: 'register', nickname: guestNick, password: PW }, 'nickname_taken');
    // A legacy client is a guest too, refused silently (it cannot read errors).
    const legacy = await connect(s, { path: '/talking', protocol: 'legacy' });
    legacy.send({ type: 'login', nickname: nick, room: 'lobby' });
    const probe = await login(s, uniq('probe'), { room: 'lobby' });
    await probe.request({ type: 'ping' }, 'pong');
    const who = await probe.request({ type: 'who', room: 'lobby' }, 'members');
    assert.ok(!who.members.map((m) => m.toLowerCase()).includes(nick.toLowerCase()), 'the legacy guest did not get in');
    for (const c of [g, guest, legacy, probe]) await c.close();
});

test('requests sent during a login wait for it and run in order after it', T, async () => {
    const nick = uniq('Order');
    await (await register(s, nick)).close();
    const room = uniq('#order');
    const c = await connect(s);
    c.send({ type: 'login', nickname: nick, password: PW, id: '1' });
    c.send({ type: 'join', room, id: '2' });
    c.send({ type: 'room', to: room, message: { text: 'first words' }, id: '3' });
    c.send({ type: 'ping', id: '4' });
    // The ack waits for the message to be stored, the pong does not: the
    // two may come in either order, both after the join.
    const seen = [];
    while (!(seen.includes('ack:3') && seen.includes('pong:4'))) {
        const m = await c.next(() => true);
        if (m.ref !== undefined) seen.push(`${m.type}:${m.ref}`);
    }
    assert.deepEqual(seen.slice(0, 2), ['welcome:1', 'joined:2'], seen.join(' '));
    assert.deepEqual(seen.slice(2).sort(), ['ack:3', 'pong:4'], seen.join(' '));
    assert.ok(!seen.some((x) => x.startsWith('error')), seen.join(' '));
    await c.close();
});

test('logout revokes the token and closes with 1000; everywhere ends every connection and every token', T, () => own(async (s) => {
    const nick = uniq('Out');
    const a1 = await register(s, nick);
    const a2 = await tokenLogin(s, a1.welcome.token);
    const a3 = await passwordLogin(s, nick);
    const lo = await a2.request({ type: 'logout' }, 'logged_out');
    assert.equal(lo.type, 'logged_out');
    assert.equal((await a2.waitClose()).code, 1000);
    // a1's token was the one a2 used: it is gone; a3's still works.
    const x = await connect(s);
    await x.expectError({ type: 'login', token: a1.welcome.token }, 'auth_failed');
    const a4 = await tokenLogin(s, a3.welcome.token);
    assert.equal(a4.welcome.nickname, nick);
    // a1 and a3 are still logged in.
    await a1.request({ type: 'ping' }, 'pong');
    await a3.request({ type: 'ping' }, 'pong');
    await a4.expectError({ type: 'logout', everywhere: 'yes' }, 'bad_request');
    await a4.request({ type: 'logout', everywhere: true }, 'logged_out');
    for (const c of [a1, a3]) {
        await c.next((m) => m.type === 'logged_out');
        assert.equal((await c.waitClose()).code, 1000);
    }
    assert.equal((await a4.waitClose()).code, 1000);
    await x.expectError({ type: 'login', token: a3.welcome.token }, 'auth_failed');
    // The password still works.
    const again = await passwordLogin(s, nick);
    assert.equal(again.welcome.type, 'welcome');
    // A guest's logout is its goodbye: the nickname is free at once.
    const gnick = uniq('gout');
    const g = await login(s, gnick);
    await g.request({ type: 'logout' }, 'logged_out');
    assert.equal((await g.waitClose()).code, 1000);
    const g2 = await login(s, gnick);
    assert.equal(g2.welcome.type, 'welcome');
    for (const c of [x, again, g2]) await c.close();
}));

test('password change: checks the old one, revokes every other token, gives a new one', T, () => own(async (s) => {
    const nick = uniq('Chg');
    const a = await register(s, nick);
    const other = await passwordLogin(s, nick);
    await a.expectError({ type: 'password', old: 'not it at all', new: 'new password 1' }, 'auth_failed');
    await a.expectError({ type: 'password', old: PW, new: 'short' }, 'password_invalid');
    await a.expectError({ type: 'password', old: PW }, 'bad_request');
    const r = await a.request({ type: 'password', old: PW, new: 'new password 1' }, 'password_changed');
    assert.equal(r.type, 'password_changed');
    assert.match(r.token, /^tt1\./);
    const x = await connect(s);
    await x.expectError({ type: 'login', nickname: nick, password: PW }, 'auth_failed');
    await x.expectError({ type: 'login', token: a.welcome.token }, 'auth_failed');
    await x.expectError({ type: 'login', token: other.welcome.token }, 'auth_failed');
    const t = await tokenLogin(s, r.token);
    assert.equal(t.welcome.nickname, nick);
    const p = await passwordLogin(s, nick, 'new password 1');
    assert.equal(p.welcome.type, 'welcome');
    // Connections already in stay in.
    await other.request({ type: 'ping' }, 'pong');
    // A guest has no password to change.
    const g = await login(s, uniq('gp'));
    await g.expectError({ type: 'password', old: 'whatever1', new: 'whatever2' }, 'bad_request');
    for (const c of [a, other, x, t, p, g]) await c.close();
}));

test('failures are rate limited per account: the eleventh wrong password waits', T, () => own(async (s) => {
    const nick = uniq('Lim');
    await (await register(s, nick)).close();
    const c = await connect(s);
    for (let i = 0; i < 10; i++) await c.expectError({ type: 'login', nickname: nick, password: `wrong guess ${i}` }, 'auth_failed');
    const e = await c.expectError({ type: 'login', nickname: nick, password: PW }, 'rate_limited');
    assert.ok(e.retry_after_ms > 0 && e.retry_after_ms <= 30000, `retry_after_ms ${e.retry_after_ms}`);
    // Another account is not held back by it.
    const other = uniq('Free');
    await (await register(s, other)).close();
    const ok = await passwordLogin(s, other);
    assert.equal(ok.welcome.type, 'welcome');
    await c.close();
    await ok.close();
}));

test('accounts and tokens survive a restart; --registration off and --guests off', T, async () => {
    const db = path.join(dir, 'restart.db');
    const s1 = await startServer(['--db', db]);
    const nick = uniq('Keep');
    const a = await register(s1, nick);
    await a.close();
    await s1.stopClean();
    const s2 = await startServer(['--db', db, '--registration', 'off', '--guests', 'off']);
    try {
        const t = await tokenLogin(s2, a.welcome.token);
        assert.equal(t.welcome.nickname, nick);
        const p = await passwordLogin(s2, nick);
        assert.equal(p.welcome.type, 'welcome');
        const c = await connect(s2);
        await c.expectError({ type: 'register', nickname: uniq('n'), password: PW }, 'registration_closed');
        await c.expectError({ type: 'login', nickname: uniq('guest') }, 'guests_closed');
        for (const x of [t, p, c]) await x.close();
    } finally {
        await s2.stopClean();
    }
});

test('a flood of logins meets the bounded hash queue: rate_limited, not an endless wait; the chat goes on', T, async () => {
    const fs2 = await startServer(['--db', ':memory:', '--password-workers', '1', '--password-queue', '2']);
    try {
        const nick = uniq('Flood');
        await (await register(fs2, nick)).close();
        const chatter = await login(fs2, uniq('talk'), { room: '#busy' });
        const clients = [];
        for (let i = 0; i < 12; i++) clients.push(await connect(fs2));
        for (const c of clients) c.send({ type: 'login', nickname: nick, password: PW, id: 'f' });
        // While the hashes run, another session's requests are answered.
        await chatter.request({ type: 'room', to: '#busy', message: { text: 'still here' } }, 'ack');
        const answers = await Promise.all(clients.map((c) => c.next((m) => m.ref === 'f')));
        const limited = answers.filter((m) => m.type === 'error' && m.code === 'rate_limited');
        const welcomed = answers.filter((m) => m.type === 'welcome');
        assert.equal(limited.length + welcomed.length, 12, JSON.stringify(answers.map((m) => m.code ?? m.type)));
        assert.ok(limited.length >= 1, 'some were refused by the full queue');
        assert.ok(welcomed.length >= 1, 'the queued ones were served');
        for (const m of limited) assert.ok(m.retry_after_ms > 0);
        for (const c of [...clients, chatter]) await c.close();
    } finally {
        await fs2.stopClean();
    }
});

test('a connection that goes while its login is checked leaves nothing behind', T, async () => {
    const nick = uniq('Gone');
    await (await register(s, nick)).close();
    for (let i = 0; i < 3; i++) {
        const c = await connect(s);
        c.send({ type: 'login', nickname: nick, password: PW });
        c.terminate();
    }
    const c = await connect(s);
    c.send({ type: 'register', nickname: uniq('half'), password: PW });
    await c.terminate();
    const ok = await passwordLogin(s, nick);
    assert.equal(ok.welcome.type, 'welcome');
    await ok.close();
});

test("a guest's welcome says from which message on its nickname's messages are its own", T, async () => {
    const nick = uniq('same');
    const room = uniq('#since');
    const first = await login(s, nick, { room });
    const sent = await first.request({ type: 'room', to: room, message: { text: 'said by the first one' } }, 'ack');
    assert.ok(first.welcome.since_id < sent.message_id);
    await first.request({ type: 'logout' }, 'logged_out');
    await first.waitClose();
    const second = await login(s, nick, { room });
    assert.ok(second.welcome.since_id >= sent.message_id, `since_id ${second.welcome.since_id} covers the earlier guest's ${sent.message_id}`);
    const earlier = second.joined.history.find((m) => m.id === sent.message_id);
    assert.ok(earlier && earlier.from === nick, 'the earlier message is in the history, under the same nickname');
    // A resumed guest keeps its since_id; an account has none.
    const tab = await login(s, nick, { resume: second.resume });
    assert.equal(tab.welcome.since_id, second.welcome.since_id);
    const a = await register(s, uniq('NoSince'));
    assert.equal(a.welcome.since_id, undefined);
    for (const c of [second, tab, a]) await c.close();
});
