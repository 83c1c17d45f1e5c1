// Accounts in a cluster live in Redis: an account registered on one node
// logs in on the other with its password or its token, its nickname is
// refused to guests on every node, a password change and a logout
// everywhere end its tokens on every node, and privates reach all of an
// account's connections on both nodes. Skipped, saying why, when the
// binary has no --redis.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { account, connect, login, PASSWORD, uniq } from './helpers.mjs';
import { clusterFixture, clusterMissing, redisClient } from './redis.mjs';

const SKIP = clusterMissing();
const T = { timeout: 60000, skip: SKIP ?? false };
const NODE_ARGS = ['--rate-limit', '0'];

let redis;
let n1;
let n2;
const fx = clusterFixture(['a1', 'a2'], {
    args: NODE_ARGS,
    skip: SKIP,
    ready: (f) => {
        ({ redis } = f);
        [n1, n2] = f.nodes;
    },
});
const { clients } = fx;

async function client(server, label) {
    const c = await connect(server, { label });
    clients.push(c);
    return c;
}

test('an account registered on node 1 logs in on node 2, by password and by token; its nickname is no guest\'s anywhere', T, async () => {
    const nick = uniq('Acct');
    const reg = await account(n1, nick);
    clients.push(reg);
    assert.equal(reg.welcome.account, true);
    const byPassword = await client(n2, 'pw');
    const w = await byPassword.request({ type: 'login', nickname: nick.toLowerCase(), password: PASSWORD }, 'welcome');
    assert.equal(w.nickname, nick, 'the spelling it was registered with');
    assert.equal(w.account, true);
    const byToken = await client(n2, 'tok');
    const w2 = await byToken.request({ type: 'login', token: reg.welcome.token }, 'welcome');
    assert.equal(w2.nickname, nick);
    await (await client(n2, 'wrong')).expectError({ type: 'login', nickname: nick, password: 'not the password' }, 'auth_failed');
    // A guest may not take it, on either node, even with nobody logged in.
    for (const c of [reg, byPassword, byToken]) await c.close();
    for (const n of [n1, n2]) {
        const g = await client(n, 'guest');
        g.send({ type: 'login', nickname: nick });
        const r = await g.next((m) => m.type === 'welcome' || m.type === 'error');
        assert.equal(r.type, 'error');
        assert.equal(r.code, 'nickname_registered');
    }
    // Registering it again on node 2: taken.
    await (await client(n2, 'again')).expectError({ type: 'register', nickname: nick.toUpperCase(), password: PASSWORD }, 'nickname_taken');
    // What Redis holds: the account, and no password in clear.
    const rc = redisClient(redis.port);
    try {
        const id = await rc.cmd('GET', `tt:acct:nick:${nick.toLowerCase()}`);
        assert.ok(Number(id) > 0);
        const h = await rc.cmd('HGET', `tt:acct:${id}`, 'hash');
        assert.match(h, /^\$argon2id\$/);
    } finally {
        await rc.close();
    }
});

test("an account's connections on both nodes all get its privates; logout everywhere on node 2 ends its token on node 1", T, async () => {
    const nick = uniq('multi');
    const a1 = await account(n1, nick);
    clients.push(a1);
    const a2 = await client(n2, 'a2');
    await a2.request({ type: 'login', token: a1.welcome.token }, 'welcome');
    const friend = await login(n2, uniq('friend'));
    clients.push(friend);
    friend.send({ type: 'private', to: nick, message: { text: 'to every device' } });
    for (const c of [a1, a2]) assert.equal((await c.next('private')).message.text, 'to every device');
    a2.send({ type: 'logout', everywhere: true });
    await a2.next('logged_out');
    const again = await client(n1, 'again');
    await again.expectError({ type: 'login', token: a1.welcome.token }, 'auth_failed');
});

test('a password changed on node 1: the old password and the old tokens fail on node 2, the new password works', T, async () => {
    const nick = uniq('chg');
    const a = await account(n1, nick);
    clients.push(a);
    const changed = await a.request({ type: 'password', old: PASSWORD, new: 'another good password' }, 'password_changed');
    assert.ok(changed.token);
    await (await client(n2, 'old-token')).expectError({ type: 'login', token: a.welcome.token }, 'auth_failed');
    await (await client(n2, 'old-pw')).expectError({ type: 'login', nickname: nick, password: PASSWORD }, 'auth_failed');
    const ok = await client(n2, 'new-pw');
    assert.equal((await ok.request({ type: 'login', nickname: nick, password: 'another good password' }, 'welcome')).nickname, nick);
    const tok = await client(n2, 'new-token');
    assert.equal((await tok.request({ type: 'login', token: changed.token }, 'welcome')).nickname, nick);
});
