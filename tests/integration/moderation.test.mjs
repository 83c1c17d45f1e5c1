// Moderation (PROTOCOL.md, "Moderation"): the owner of a room is the account
// that created it, ops are accounts the owner names, server admins
// (--admin) own every room; topic, kick, ban (timed and for ever, by room
// and server-wide, by nickname and by address), unban, op, deop, owner;
// who may do what to whom; bans checked at join, at every login (password,
// token, guest, a second tab) and kept across a restart with roles and
// topics; the audit log read back by ops.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';

import { PASSWORD as PW, account, connect, join, login, startServer, uniq } from './helpers.mjs';

const T = { timeout: 120000 };
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tertulia-moderation-'));
const ADMIN = 'root_admin';
let s;
before(async () => {
    s = await startServer(['--db', path.join(dir, 'main.db'), '--admin', ADMIN]);
});
after(async () => {
    await s.stopClean();
    fs.rmSync(dir, { recursive: true, force: true });
});

const register = (server, nickname) => account(server, nickname);
const passwordLogin = (server, nickname) => account(server, nickname, { register: false });

/** Sends req with an id and waits for its `done`. */
async function done(c, req) {
    const m = await c.request(req, 'done');
    assert.equal(m.type, 'done', `${JSON.stringify(req)} → ${JSON.stringify(m)}`);
    assert.equal(m.action, req.type === 'deop' ? 'deop' : req.type);
    return m;
}

/** A ping round trip: everything the server sent before it has arrived. */
async function settle(c) {
    await c.request({ type: 'ping' }, 'pong');
}

test('the account that creates a room owns it; joined carries roles and topic; a guest holds no role', T, async () => {
    const room = `#${uniq('own')}`;
    const ana = await register(s, uniq('ana'));
    const j = await join(ana, room);
    assert.deepEqual(j.roles, { owner: ana.nickname, ops: [] });
    assert.equal(j.topic, undefined);
    const guest = await login(s, uniq('g'));
    const gj = await join(guest, room);
    assert.deepEqual(gj.roles, { owner: ana.nickname, ops: [] });
    // A room a guest creates has no owner.
    const groom = `#${uniq('guestroom')}`;
    const g2 = await join(guest, groom);
    assert.deepEqual(g2.roles, { owner: null, ops: [] });
    await guest.expectError({ type: 'topic', room: groom, topic: 'mine' }, 'not_permitted');
    await guest.expectError({ type: 'kick', room, nickname: ana.nickname }, 'not_permitted');
    assert.equal(ana.welcome.admin, undefined);
    for (const c of [ana, guest]) await c.close();
});

test('topic: ops set it, every member gets it, joined carries it, "" clears it; bounds', T, async () => {
    const room = `#${uniq('topic')}`;
    const ana = await register(s, uniq('ana'));
    await join(ana, room);
    const ben = await login(s, uniq('ben'), { room });
    await done(ana, { type: 'topic', room, topic: 'Swift, mostly' });
    for (const c of [ana, ben]) {
        const t = await c.next({ type: 'topic' });
        assert.equal(t.room, room);
        assert.equal(t.topic, 'Swift, mostly');
        assert.equal(t.by, ana.nickname);
        assert.equal(typeof t.ts, 'number');
    }
    const cleo = await login(s, uniq('cleo'), { room });
    assert.equal(cleo.joined.topic, 'Swift, mostly');
    await ben.expectError({ type: 'topic', room, topic: 'mine now' }, 'not_permitted');
    await ana.expectError({ type: 'topic', room, topic: 'x'.repeat(301) }, 'message_too_long');
    await ana.expectError({ type: 'topic', room, topic: 'two\nlines' }, 'bad_request');
    await ana.expectError({ type: 'topic', room }, 'bad_request');
    await ana.expectError({ type: 'topic', room: `#${uniq('nope')}`, topic: 'x' }, 'no_such_room');
    await done(ana, { type: 'topic', room, topic: '' });
    assert.equal((await ben.next({ type: 'topic' })).topic, '');
    const dan = await login(s, uniq('dan'), { room });
    assert.equal(dan.joined.topic, undefined);
    for (const c of [ana, ben, cleo, dan]) await c.close();
});

test('op and deop: the owner names ops (accounts only, online or not), roles reach the members; ops kick', T, async () => {
    const room = `#${uniq('ops')}`;
    const owner = await register(s, uniq('own'));
    await join(owner, room);
    const op = await register(s, uniq('op'));
    await join(op, room);
    const guest = await login(s, uniq('guest'), { room });
    await owner.expectError({ type: 'op', room, nickname: guest.nickname }, 'not_permitted');
    await owner.expectError({ type: 'op', room, nickname: uniq('nobody') }, 'no_such_user');
    await done(owner, { type: 'op', room, nickname: op.nickname });
    for (const c of [owner, op, guest]) {
        const r = await c.next({ type: 'roles' });
        assert.deepEqual({ room: r.room, owner: r.owner, ops: r.ops }, { room, owner: owner.nickname, ops: [op.nickname] });
    }
    // An offline account can be made op: the name is looked up.
    const off = await register(s, uniq('off'));
    await off.close();
    await done(owner, { type: 'op', room, nickname: off.nickname.toUpperCase() });
    const r2 = await guest.next({ type: 'roles' });
    assert.deepEqual(r2.ops.sort(), [op.nickname, off.nickname].sort());
    // An op may not name ops, nor act on the owner or another op.
    await op.expectError({ type: 'op', room, nickname: owner.nickname }, 'not_permitted');
    await op.expectError({ type: 'kick', room, nickname: owner.nickname }, 'not_permitted');
    await op.expectError({ type: 'deop', room, nickname: off.nickname }, 'not_permitted');
    // An op kicks a guest: kicked to the target, member_left kick to the others.
    await done(op, { type: 'kick', room, nickname: guest.nickname, reason: 'spam' });
    const k = await guest.next({ type: 'kicked' });
    assert.deepEqual({ room: k.room, by: k.by, reason: k.reason, ban: k.ban }, { room, by: op.nickname, reason: 'spam', ban: undefined });
    const ml = await owner.next({ type: 'member_left', nickname: guest.nickname });
    assert.equal(ml.reason, 'kick');
    await guest.expectError({ type: 'room', to: room, message: { text: 'still here?' } }, 'not_in_room');
    // Kicked is not banned: back with a join.
    await join(guest, room);
    await done(owner, { type: 'deop', room, nickname: op.nickname });
    const r3 = await op.next((m) => m.type === 'roles' && !m.ops.includes(op.nickname));
    assert.deepEqual(r3.ops, [off.nickname]);
    await op.expectError({ type: 'kick', room, nickname: guest.nickname }, 'not_permitted');
    await owner.expectError({ type: 'kick', room, nickname: uniq('absent') }, 'no_such_user');
    for (const c of [owner, op, guest]) await c.close();
});

test('room ban: kicks every tab, refuses the join with banned (until), expires; unban lifts it', T, async () => {
    const room = `#${uniq('ban')}`;
    const owner = await register(s, uniq('own'));
    await join(owner, room);
    const sam = await register(s, uniq('sam'));
    await join(sam, room);
    const sam2 = await passwordLogin(s, sam.nickname);
    await join(sam2, room);
    await done(owner, { type: 'ban', room, nickname: sam.nickname, seconds: 3600, reason: 'flood' });
    for (const c of [sam, sam2]) {
        const k = await c.next({ type: 'kicked' });
        assert.equal(k.ban, true);
        assert.equal(k.reason, 'flood');
        assert.ok(k.until > Date.now() + 3500e3 && k.until < Date.now() + 3601e3, `until ${k.until}`);
    }
    assert.equal((await owner.next({ type: 'member_left', nickname: sam.nickname })).reason, 'ban');
    const e = await sam.expectError({ type: 'join', room }, 'banned');
    assert.equal(e.room, room);
    assert.ok(e.until > Date.now());
    // A new tab, a token login: still refused at the room's door.
    const sam3 = await connect(s);
    await sam3.request({ type: 'login', token: sam.welcome.token }, 'welcome');
    await sam3.expectError({ type: 'join', room: room.toUpperCase() }, 'banned');
    // The ban is listed for ops.
    const b = await owner.request({ type: 'bans', room }, 'bans');
    assert.deepEqual(b.bans.map((x) => [x.nickname, x.reason, x.by]), [[sam.nickname, 'flood', owner.nickname]]);
    await sam.expectError({ type: 'bans', room }, 'not_permitted');
    await done(owner, { type: 'unban', room, nickname: sam.nickname });
    await join(sam, room);
    await owner.expectError({ type: 'unban', room, nickname: sam.nickname }, 'no_such_user');
    // A timed ban ends by itself.
    await done(owner, { type: 'ban', room, nickname: sam.nickname, seconds: 1 });
    await sam.next({ type: 'kicked' });
    await sam.expectError({ type: 'join', room }, 'banned');
    const t0 = Date.now();
    for (;;) {
        const id = `j${Date.now()}`;
        sam.send({ type: 'join', room, id });
        const m = await sam.next((x) => x.ref === id);
        if (m.type === 'joined') break;
        assert.equal(m.code, 'banned');
        assert.ok(Date.now() - t0 < 10000, 'the one-second ban ended');
        await new Promise((r) => setTimeout(r, 200));
    }
    await owner.expectError({ type: 'ban', room, nickname: sam.nickname, seconds: 0 }, 'bad_request');
    await owner.expectError({ type: 'ban', room, nickname: sam.nickname, seconds: 'soon' }, 'bad_request');
    await owner.expectError({ type: 'ban', room, nickname: owner.nickname }, 'not_permitted');
    for (const c of [owner, sam, sam2, sam3]) await c.close();
});

test('server-wide ban (admins only): every connection closes with 4003; password, token, second tab and guest logins refused', T, async () => {
    const admin = await register(s, ADMIN).catch(async () => passwordLogin(s, ADMIN));
    assert.equal(admin.welcome.admin, true);
    const owner = await register(s, uniq('own'));
    await owner.expectError({ type: 'ban', nickname: uniq('x') }, 'not_permitted');
    const eve = await register(s, uniq('eve'));
    const eve2 = await passwordLogin(s, eve.nickname);
    await done(admin, { type: 'ban', nickname: eve.nickname, reason: 'abuse' });
    for (const c of [eve, eve2]) {
        const info = await c.waitClose();
        assert.equal(info.code, 4003);
    }
    const c1 = await connect(s);
    const e1 = await c1.expectError({ type: 'login', nickname: eve.nickname, password: PW }, 'banned');
    assert.equal(e1.until, undefined);
    assert.equal(e1.reason, 'abuse');
    await c1.expectError({ type: 'login', token: eve.welcome.token }, 'banned');
    // A guest of a banned name: refused too.
    const gname = uniq('gban');
    const g = await login(s, gname);
    await done(admin, { type: 'ban', nickname: gname });
    assert.equal((await g.waitClose()).code, 4003);
    await c1.expectError({ type: 'login', nickname: gname }, 'banned');
    // The admin may not be banned, and may not ban itself.
    await admin.expectError({ type: 'ban', nickname: ADMIN }, 'not_permitted');
    await done(admin, { type: 'unban', nickname: eve.nickname });
    const back = await passwordLogin(s, eve.nickname);
    assert.equal(back.welcome.type, 'welcome');
    // The server-wide audit: the admin reads it, others may not.
    const a = await admin.request({ type: 'audit' }, 'audit');
    const mine = a.entries.filter((x) => x.target === eve.nickname).map((x) => x.action);
    assert.deepEqual(mine, ['ban', 'unban']);
    await owner.expectError({ type: 'audit' }, 'not_permitted');
    for (const c of [admin, owner, c1, back]) await c.close();
});

test('ban by client address: every connection from it closes with 4003, and logins from it are refused', T, async () => {
    // Its own server: every test connects from 127.0.0.1.
    const x = await startServer(['--db', ':memory:', '--admin', ADMIN]);
    try {
        const admin = await register(x, ADMIN);
        const g = await login(x, uniq('g'));
        const idle = await connect(x);
        await admin.expectError({ type: 'ban', address: 'not an address' }, 'bad_request');
        await admin.expectError({ type: 'ban', address: '127.0.0.1', nickname: 'g' }, 'bad_request');
        await done(admin, { type: 'ban', address: '127.0.0.1', seconds: 600 });
        for (const c of [g, idle]) assert.equal((await c.waitClose()).code, 4003);
        const c = await connect(x);
        const e = await c.expectError({ type: 'login', nickname: uniq('h') }, 'banned');
        assert.ok(e.until > Date.now());
        // The admin's own connection stays, and lifts it.
        const l = await admin.request({ type: 'bans' }, 'bans');
        assert.deepEqual(l.bans.map((b) => b.address), ['127.0.0.1']);
        await done(admin, { type: 'unban', address: '127.0.0.1' });
        const ok = await login(x, uniq('h'));
        for (const k of [admin, c, ok]) await k.close();
    } finally {
        await x.stopClean();
    }
});

test('admins count as owners of every room, name owners, and are beyond the ops', T, async () => {
    const admin = await passwordLogin(s, ADMIN).catch(() => register(s, ADMIN));
    assert.equal(admin.welcome.admin, true);
    const room = `#${uniq('adm')}`;
    const owner = await register(s, uniq('own'));
    await join(owner, room);
    // Not in the room, the admin still acts on it.
    await done(admin, { type: 'topic', room, topic: 'by an admin' });
    assert.equal((await owner.next({ type: 'topic' })).by, ADMIN);
    await join(admin, room);
    await owner.expectError({ type: 'kick', room, nickname: ADMIN }, 'not_permitted');
    await owner.expectError({ type: 'owner', room, nickname: owner.nickname }, 'not_permitted');
    const heir = await register(s, uniq('heir'));
    await done(admin, { type: 'owner', room, nickname: heir.nickname });
    assert.equal((await owner.next({ type: 'roles' })).owner, heir.nickname);
    await owner.expectError({ type: 'topic', room, topic: 'x' }, 'not_permitted');
    await done(admin, { type: 'owner', room, nickname: null });
    assert.equal((await owner.next({ type: 'roles' })).owner, null);
    for (const c of [admin, owner, heir]) await c.close();
});

test('the audit log: every action of a room, read back by its ops (paged), not by members', T, async () => {
    const room = `#${uniq('aud')}`;
    const owner = await register(s, uniq('own'));
    await join(owner, room);
    const m = await login(s, uniq('m'), { room });
    await done(owner, { type: 'topic', room, topic: 'one' });
    await done(owner, { type: 'kick', room, nickname: m.nickname, reason: 'r1' });
    await done(owner, { type: 'ban', room, nickname: m.nickname, seconds: 60 });
    await done(owner, { type: 'unban', room, nickname: m.nickname });
    const a = await owner.request({ type: 'audit', room }, 'audit');
    assert.equal(a.room, room);
    assert.deepEqual(a.entries.map((e) => e.action), ['create', 'topic', 'kick', 'ban', 'unban']);
    assert.equal(a.entries[1].topic, 'one');
    assert.equal(a.entries[2].reason, 'r1');
    assert.ok(a.entries[3].until > Date.now());
    assert.ok(a.entries.every((e) => e.by === owner.nickname && typeof e.id === 'number'));
    assert.equal(a.more, false);
    const p = await owner.request({ type: 'audit', room, limit: 2, before: a.entries[4].id }, 'audit');
    assert.deepEqual(p.entries.map((e) => e.action), ['kick', 'ban']);
    assert.equal(p.more, true);
    await m.expectError({ type: 'audit', room }, 'not_permitted');
    for (const c of [owner, m]) await c.close();
});

test('roles, topics and bans survive a restart; an empty kept room is listed and joinable', T, async () => {
    const db = path.join(dir, 'restart.db');
    const s1 = await startServer(['--db', db]);
    const room = `#${uniq('Keep')}`;
    const owner = await register(s1, uniq('own'));
    const op = await register(s1, uniq('op'));
    const sam = await register(s1, uniq('sam'));
    await join(owner, room);
    await done(owner, { type: 'op', room, nickname: op.nickname });
    await done(owner, { type: 'topic', room, topic: 'kept' });
    await done(owner, { type: 'ban', room, nickname: sam.nickname });
    const g = await login(s1, uniq('g'));
    await done(owner, { type: 'ban', room, nickname: g.nickname, seconds: 3600 });
    for (const c of [owner, op, sam, g]) await c.close();
    await s1.stopClean();
    const s2 = await startServer(['--db', db]);
    try {
        const c = await login(s2, uniq('look'));
        const rooms = await c.request({ type: 'rooms' }, 'rooms');
        assert.deepEqual(rooms.rooms.filter((r) => r.name === room), [{ name: room, members: 0 }]);
        const j = await c.request({ type: 'join', room: room.toLowerCase() }, 'joined');
        assert.equal(j.room, room, 'the canonical spelling came back');
        assert.deepEqual(j.roles, { owner: owner.nickname, ops: [op.nickname] });
        assert.equal(j.topic, 'kept');
        const sam2 = await passwordLogin(s2, sam.nickname);
        await sam2.expectError({ type: 'join', room }, 'banned');
        const gg = await login(s2, g.nickname);
        const e = await gg.expectError({ type: 'join', room }, 'banned');
        assert.ok(e.until > Date.now());
        for (const k of [c, sam2, gg]) await k.close();
    } finally {
        await s2.stopClean();
    }
});

test('bad moderation requests: fields, names, targets', T, async () => {
    const room = `#${uniq('bad')}`;
    const owner = await register(s, uniq('own'));
    await join(owner, room);
    await owner.expectError({ type: 'kick', room }, 'bad_request');
    await owner.expectError({ type: 'kick', room, nickname: 'bad name!' }, 'nickname_invalid');
    await owner.expectError({ type: 'kick', room: '#', nickname: 'x' }, 'room_invalid');
    await owner.expectError({ type: 'kick', room, nickname: 'x', reason: 7 }, 'bad_request');
    await owner.expectError({ type: 'kick', room, nickname: 'x', reason: 'r'.repeat(201) }, 'message_too_long');
    await owner.expectError({ type: 'ban', room: 7, nickname: 'x' }, 'bad_request');
    await owner.expectError({ type: 'audit', room, limit: 0 }, 'bad_request');
    await settle(owner);
    await owner.close();
});

test("delete: a room's ops (and admins) delete anyone's message there; a member may not, nor an op elsewhere", T, async () => {
    const room = `#${uniq('del')}`;
    const owner = await register(s, uniq('own'));
    await join(owner, room);
    const op = await register(s, uniq('op'));
    await join(op, room);
    await done(owner, { type: 'op', room, nickname: op.nickname });
    const m = await login(s, uniq('m'), { room });
    const other = await login(s, uniq('o'), { room });
    const send = async (c, text) => {
        const a = await c.request({ type: 'room', to: room, message: { text } }, 'ack');
        return a.message_id;
    };
    const id1 = await send(m, 'spam one');
    await other.expectError({ type: 'delete', message_id: id1 }, 'not_permitted');
    const d = await op.request({ type: 'delete', message_id: id1 }, 'done');
    assert.equal(d.type, 'done');
    const seen = await m.next((x) => x.type === 'deleted' && x.id === id1);
    assert.equal(seen.by, op.nickname);
    // The op may not edit someone else's message: edits are the author's.
    const id2 = await send(m, 'spam two');
    await op.expectError({ type: 'edit', message_id: id2, message: { text: 'mine' } }, 'not_permitted');
    // An op of another room has no say here.
    const elsewhere = `#${uniq('else')}`;
    const op2 = await register(s, uniq('op2'));
    await join(op2, elsewhere);
    await join(op2, room);
    await op2.expectError({ type: 'delete', message_id: id2 }, 'not_permitted');
    // The admin deletes it too.
    const admin = await passwordLogin(s, ADMIN).catch(() => register(s, ADMIN));
    await join(admin, room);
    await admin.request({ type: 'delete', message_id: id2 }, 'done');
    assert.equal((await m.next((x) => x.type === 'deleted' && x.id === id2)).by, ADMIN);
    for (const c of [owner, op, m, other, op2, admin]) await c.close();
});
