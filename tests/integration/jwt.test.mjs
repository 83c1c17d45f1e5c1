// Logins with an operator's JWT (--jwt-secret-file for HS256, --jwt-key for
// RS256/ES256): sub is the nickname, and such a user is an account (its
// nickname reserved, many connections); every kind of bad token is one
// auth_failed; a key that does not load stops the start.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';

import { BIN, connect, startServer, uniq } from './helpers.mjs';

const T = { timeout: 60000 };
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tertulia-jwt-'));
after(() => fs.rmSync(dir, { recursive: true, force: true }));

const b64 = (x) => Buffer.from(typeof x === 'string' ? x : JSON.stringify(x)).toString('base64url');
const now = () => Math.floor(Date.now() / 1000);

function hs256(secret, payload, header = { alg: 'HS256', typ: 'JWT' }) {
    const input = `${b64(header)}.${b64(payload)}`;
    return `${input}.${crypto.createHmac('sha256', secret).update(input).digest('base64url')}`;
}

function signWith(key, alg, payload) {
    const input = `${b64({ alg, typ: 'JWT' })}.${b64(payload)}`;
    const sig = alg === 'RS256'
        ? crypto.sign('sha256', Buffer.from(input), key)
        : crypto.sign('sha256', Buffer.from(input), { key, dsaEncoding: 'ieee-p1363' });
    return `${input}.${sig.toString('base64url')}`;
}

async function jwtLogin(server, jwt) {
    const c = await connect(server);
    c.reply = await c.request({ type: 'login', jwt }, 'welcome');
    return c;
}

test('HS256: sub is the nickname, an account with many connections; its nickname is then reserved', T, async () => {
    const secret = crypto.randomBytes(32).toString('hex');
    const file = path.join(dir, 'hs.secret');
    fs.writeFileSync(file, `${secret}\n`);
    const s = await startServer(['--db', path.join(dir, 'hs.db'), '--jwt-secret-file', file]);
    try {
        const nick = uniq('Op');
        const tok = hs256(secret, { sub: nick, exp: now() + 300, iat: now() });
        const a = await jwtLogin(s, tok);
        assert.equal(a.reply.type, 'welcome', JSON.stringify(a.reply));
        assert.equal(a.reply.nickname, nick);
        assert.equal(a.reply.account, true);
        assert.equal(a.reply.token, undefined, 'the JWT is the credential: no token of ours');
        const b = await jwtLogin(s, tok);
        assert.equal(b.reply.nickname, nick, 'a second connection of the same account');
        // Reserved: a guest cannot take it, even after the account left.
        await a.close();
        await b.close();
        const g = await connect(s);
        await g.expectError({ type: 'login', nickname: nick }, 'nickname_registered');
        await g.expectError({ type: 'register', nickname: nick, password: 'a long password' }, 'nickname_taken');
        // A JWT user's logout ends its connection (there is no token to revoke).
        const c = await jwtLogin(s, tok);
        await c.request({ type: 'logout' }, 'logged_out');
        assert.equal((await c.waitClose()).code, 1000);
        // Every refusal is one answer.
        const bad = [
            hs256(secret, { sub: nick, exp: now() - 120 }), // expired beyond the skew
            hs256(secret, { sub: nick, exp: now() + 300, nbf: now() + 600 }), // not yet valid
            hs256(secret, { sub: nick }), // no exp
            hs256(secret, { exp: now() + 300 }), // no sub
            hs256(secret, { sub: 'not a nickname!', exp: now() + 300 }),
            hs256('another secret of more than 32 bytes', { sub: nick, exp: now() + 300 }),
            `${b64({ alg: 'none', typ: 'JWT' })}.${b64({ sub: nick, exp: now() + 300 })}.`,
            hs256(secret, { sub: nick, exp: now() + 300 }, { alg: 'HS512', typ: 'JWT' }),
            'not.a.jwt',
            'x'.repeat(9000),
        ];
        for (const t of bad) await g.expectError({ type: 'login', jwt: t }, 'auth_failed');
        await g.expectError({ type: 'login', jwt: 42 }, 'bad_request');
        // Within the clock skew (30 s), a just-expired token still logs in.
        const late = await jwtLogin(s, hs256(secret, { sub: nick, exp: now() - 5 }));
        assert.equal(late.reply.type, 'welcome');
        await late.close();
        await g.close();
    } finally {
        await s.stopClean();
    }
});

test('RS256 and ES256 with --jwt-key; an HS256 token is refused by a public key (no key confusion)', T, async () => {
    for (const kind of ['rsa', 'ec']) {
        const { publicKey, privateKey } = kind === 'rsa'
            ? crypto.generateKeyPairSync('rsa', { modulusLength: 2048 })
            : crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
        const pem = publicKey.export({ type: 'spki', format: 'pem' });
        const file = path.join(dir, `${kind}.pem`);
        fs.writeFileSync(file, pem);
        const s = await startServer(['--db', ':memory:', '--jwt-key', file]);
        try {
            const nick = uniq(kind);
            const alg = kind === 'rsa' ? 'RS256' : 'ES256';
            const a = await jwtLogin(s, signWith(privateKey, alg, { sub: nick, exp: now() + 60 }));
            assert.equal(a.reply.type, 'welcome', `${alg}: ${JSON.stringify(a.reply)}`);
            assert.equal(a.reply.nickname, nick);
            const c = await connect(s);
            await c.expectError({ type: 'login', jwt: hs256(pem, { sub: nick, exp: now() + 60 }) }, 'auth_failed');
            for (const x of [a, c]) await x.close();
        } finally {
            await s.stopClean();
        }
    }
});

test('without a JWT key, login with jwt is auth_failed; a key that does not load stops the start (exit 2)', T, async () => {
    const s = await startServer(['--db', ':memory:']);
    try {
        const c = await connect(s);
        await c.expectError({ type: 'login', jwt: hs256('x'.repeat(40), { sub: 'ana', exp: now() + 60 }) }, 'auth_failed');
        await c.close();
    } finally {
        await s.stopClean();
    }
    const short = path.join(dir, 'short.secret');
    fs.writeFileSync(short, 'too short');
    const notPem = path.join(dir, 'bad.pem');
    fs.writeFileSync(notPem, 'not a key');
    for (const args of [['--jwt-secret-file', short], ['--jwt-key', notPem], ['--jwt-key', path.join(dir, 'missing.pem')]]) {
        const r = spawnSync(BIN, ['--db', ':memory:', ...args, '--check-config'], { encoding: 'utf8', timeout: 10000 });
        assert.equal(r.status, 2, `${args}: ${r.stderr}`);
        assert.match(r.stderr, /^tertulia: /);
    }
});
