// The web client's handling of moderation, edits, deletions and search
// without a browser or a server: the frames of issue 12 (`roles`, `topic`,
// `kicked`, `edited`, `deleted`, `search`, the `banned` error) as the session
// reports them, the requests it sends, and the pure rules of the member
// menu, the member groups, the message menu and the search highlights.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Session, chatMessage, parseRoles } from '../../web/session.js';
import { RANK, roleOf, myRank, memberActions, groupMembers, kickedText, bannedText, rolesChanges, BAN_CHOICES } from '../../web/moderation.js';
import { messageActions } from '../../web/edit.js';
import { highlightSegments, resultPlace } from '../../web/search.js';

/* A WebSocket stand-in the test drives (as in client-logic.test.mjs). */
class ScriptedSocket {
    static all = [];
    constructor(url, protocols) {
        this.readyState = 0;
        this.sent = [];
        ScriptedSocket.all.push(this);
    }
    send(text) { this.sent.push(JSON.parse(text)); }
    close() { this.readyState = 3; }
    open() { this.readyState = 1; this.onopen?.({}); }
    deliver(obj) { this.onmessage?.({ data: JSON.stringify(obj) }); }
    lastSent() { return this.sent.at(-1); }
    drop(code = 1006) { this.readyState = 3; this.onclose?.({ code, reason: '' }); }
}

const TYPES = ['server-banned', 'status', 'welcome', 'joined', 'message', 'older', 'roles', 'topic', 'kicked', 'done', 'edited', 'deleted', 'search', 'request-error', 'left'];
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const FAST = { backoffBaseMs: 4, backoffCapMs: 8, pingIdleMs: 60000, pongTimeoutMs: 60000 };
const msg = (id, text, from = 'bob', to = '#r') => ({ type: 'room', id, ts: 1000 + id, from, to, message: { text } });

/** A session logged in as `nick` (welcome carrying `admin`) and in room #r. */
async function loggedIn(nick = 'ana', { admin = false, roles = { owner: 'ana', ops: ['ben'] }, topic, history = [] } = {}) {
    ScriptedSocket.all = [];
    const s = new Session({ url: 'ws://x/ws', WebSocketImpl: ScriptedSocket, timing: FAST });
    const events = [];
    for (const type of TYPES) s.addEventListener(type, (ev) => events.push({ type, ...ev.detail }));
    s.login(nick, '#r');
    while (ScriptedSocket.all.length < 1) await sleep(2);
    const ws = ScriptedSocket.all[0];
    ws.open();
    const login = ws.lastSent();
    ws.deliver({ type: 'welcome', ref: login.id, nickname: nick, account: true, admin, limits: {} });
    const joined = { type: 'joined', ref: login.id, room: '#r', members: [nick, 'ben', 'cai'], history, more: false, roles };
    if (topic !== undefined) joined.topic = topic;
    ws.deliver(joined);
    const of = (type) => events.filter((e) => e.type === type);
    return { s, ws, events, of };
}

test('welcome.admin, and joined.roles and joined.topic, reach the app', async () => {
    const { s, of } = await loggedIn('ana', { admin: true, topic: 'cats' });
    assert.equal(s.admin, true);
    assert.equal(of('welcome')[0].admin, true);
    const j = of('joined')[0];
    assert.deepEqual(j.roles, { owner: 'ana', ops: ['ben'] });
    assert.equal(j.topic, 'cats');
    s.logout();

    const plain = await loggedIn('cai', { roles: { owner: null, ops: [] } });
    assert.equal(plain.s.admin, false);
    assert.deepEqual(plain.of('joined')[0].roles, { owner: '', ops: [] }, 'a room without an owner');
    assert.equal(plain.of('joined')[0].topic, '', 'no topic');
    plain.s.logout();
    assert.deepEqual(parseRoles(undefined), { owner: '', ops: [] }, 'an older server sends no roles');
    assert.deepEqual(parseRoles({ owner: 7, ops: ['x', 3, ''] }), { owner: '', ops: ['x'] }, 'nonsense is dropped');
});

test('roles, topic and kicked frames; moderation requests and their done/banned replies', async () => {
    const { s, ws, of } = await loggedIn('ana');
    ws.deliver({ type: 'roles', room: '#r', owner: 'ana', ops: ['ben', 'cai'] });
    assert.deepEqual(of('roles').map((e) => [e.room, e.owner, e.ops]), [['#r', 'ana', ['ben', 'cai']]]);
    ws.deliver({ type: 'topic', room: '#r', topic: 'dogs', by: 'ben', ts: 5 });
    assert.deepEqual(of('topic').map((e) => [e.room, e.topic, e.by, e.ts]), [['#r', 'dogs', 'ben', 5]]);

    // The requests, as the spec spells them.
    s.setTopic('#r', '');
    assert.deepEqual((({ id, ...r }) => r)(ws.lastSent()), { type: 'topic', room: '#r', topic: '' });
    const kickRef = s.kick('#r', 'cai', 'spam');
    assert.deepEqual((({ id, ...r }) => r)(ws.lastSent()), { type: 'kick', room: '#r', nickname: 'cai', reason: 'spam' });
    s.kick('#r', 'cai');
    assert.deepEqual((({ id, ...r }) => r)(ws.lastSent()), { type: 'kick', room: '#r', nickname: 'cai' }, 'no empty reason');
    const banRef = s.ban('#r', 'cai', 600, 'again');
    assert.deepEqual((({ id, ...r }) => r)(ws.lastSent()), { type: 'ban', room: '#r', nickname: 'cai', seconds: 600, reason: 'again' });
    s.ban('#r', 'cai', 0);
    assert.deepEqual((({ id, ...r }) => r)(ws.lastSent()), { type: 'ban', room: '#r', nickname: 'cai' }, 'a permanent ban has no seconds');
    s.setOp('#r', 'cai', true);
    assert.equal(ws.lastSent().type, 'op');
    s.setOp('#r', 'cai', false);
    assert.equal(ws.lastSent().type, 'deop');

    ws.deliver({ type: 'done', ref: kickRef, action: 'kick' });
    const done = of('done')[0];
    assert.equal(done.action, 'kick');
    assert.equal(done.request.nickname, 'cai', 'done is matched with its request');
    ws.deliver({ type: 'error', ref: banRef, code: 'not_permitted', message: 'no' });
    const refused = of('request-error')[0];
    assert.equal(refused.code, 'not_permitted');
    assert.equal(refused.request.type, 'ban');

    // A join refused because of a ban says until when.
    const joinRef = s.join('#other');
    ws.deliver({ type: 'error', ref: joinRef, code: 'banned', room: '#other', until: 1764000000000 });
    const banned = of('request-error')[1];
    assert.deepEqual([banned.code, banned.request.type, banned.room, banned.until], ['banned', 'join', '#other', 1764000000000]);

    // A rejoin refused with `banned` (banned while the line was down): not tried again.
    const rejoinRef = s.join('#r');
    ws.deliver({ type: 'error', ref: rejoinRef, code: 'banned', room: '#r' });
    assert.deepEqual(s.rooms, [], 'the room is forgotten');
    ws.deliver({ type: 'joined', ref: s.join('#r'), room: '#r', members: ['ana'], history: [], more: false, roles: { owner: 'ana', ops: [] } });

    // Kicked out: the room is no longer ours (a reconnect will not rejoin it).
    assert.deepEqual(s.rooms, ['#r']);
    ws.deliver({ type: 'kicked', room: '#r', by: 'ben', reason: 'flood', ban: true, until: 1764000000000 });
    assert.deepEqual(of('kicked').map((e) => [e.room, e.by, e.reason, e.ban, e.until]), [['#r', 'ben', 'flood', true, 1764000000000]]);
    assert.deepEqual(s.rooms, []);
    s.logout();
});

test('edit and delete requests, edited and deleted frames, and history with edited_ts and deleted', async () => {
    const { s, ws, of } = await loggedIn('ana', { history: [msg(1, 'one', 'ana'), { type: 'room', id: 2, ts: 1002, from: 'bob', to: '#r', deleted: true }, { ...msg(3, 'three v2'), edited_ts: 9 }] });
    const shown = of('message').map((e) => [e.msg.id, e.msg.message.text, e.msg.deleted === true, e.msg.edited_ts]);
    assert.deepEqual(shown, [[1, 'one', false, undefined], [2, '', true, undefined], [3, 'three v2', false, 9]], 'a deleted message comes through with an empty text');

    s.editMessage(1, 'uno');
    assert.deepEqual((({ id, ...r }) => r)(ws.lastSent()), { type: 'edit', message_id: 1, message: { text: 'uno' } });
    assert.equal(typeof ws.lastSent().id, 'string', 'the correlation id is a string beside message_id');
    s.deleteMessage(1);
    assert.deepEqual((({ id, ...r }) => r)(ws.lastSent()), { type: 'delete', message_id: 1 });

    ws.deliver({ type: 'edited', id: 1, room: '#r', from: 'ana', message: { text: 'uno' }, edited_ts: 20 });
    ws.deliver({ type: 'deleted', id: 3, room: '#r', by: 'ana' });
    ws.deliver({ type: 'edited', id: 4, with: 'bob', from: 'bob', message: { text: 'private' }, edited_ts: 21 });
    ws.deliver({ type: 'edited', id: 'x', room: '#r', message: { text: 'bad' } });
    assert.deepEqual(of('edited').map((e) => [e.id, e.room, e.with, e.from, e.text, e.editedTs]),
        [[1, '#r', undefined, 'ana', 'uno', 20], [4, undefined, 'bob', 'bob', 'private', 21]]);
    assert.deepEqual(of('deleted').map((e) => [e.id, e.room, e.by]), [[3, '#r', 'ana']]);

    // History bringing back a message seen before, now edited or deleted:
    // not shown twice, and what changed is told once.
    const before = of('edited').length;
    const ref = s.history('#r', 10);
    ws.deliver({ type: 'history', ref, room: '#r', messages: [{ ...msg(1, 'uno', 'ana'), edited_ts: 20 }, { ...msg(5, 'cinco'), edited_ts: 30 }], more: false });
    let older = of('older').at(-1);
    assert.deepEqual(older.messages.map((m) => m.id), [5], 'only the message not seen before is new');
    assert.deepEqual(older.shown.map((m) => m.id), [1, 5], 'shown: all of them, for a jump');
    assert.equal(of('edited').length, before, 'an edit already known is no news');
    const ref2 = s.history('#r', 10);
    ws.deliver({ type: 'history', ref: ref2, room: '#r', messages: [{ type: 'room', id: 1, ts: 1001, from: 'ana', to: '#r', deleted: true }, { ...msg(5, 'cinco!'), edited_ts: 31 }], more: false });
    older = of('older').at(-1);
    assert.deepEqual(older.messages, []);
    assert.deepEqual(of('deleted').at(-1).id, 1, 'a deletion learnt from history is told');
    assert.deepEqual([of('edited').at(-1).id, of('edited').at(-1).text], [5, 'cinco!'], 'so is a later edit');

    assert.equal(chatMessage({ from: 'x' }), null);
    assert.equal(chatMessage({ from: 'x', deleted: true }).message.text, '');
    s.logout();
});

test('search requests and results, checked', async () => {
    const { s, ws, of } = await loggedIn('ana');
    const ref = s.search('cat food', { room: '#r' });
    assert.deepEqual((({ id, ...r }) => r)(ws.lastSent()), { type: 'search', query: 'cat food', limit: 20, room: '#r' });
    s.search('cat', { with: 'bob', before: 77 });
    assert.deepEqual((({ id, ...r }) => r)(ws.lastSent()), { type: 'search', query: 'cat', limit: 20, with: 'bob', before: 77 });
    s.search('cat');
    assert.deepEqual((({ id, ...r }) => r)(ws.lastSent()), { type: 'search', query: 'cat', limit: 20 }, 'everywhere');
    ws.deliver({
        type: 'search', ref, query: 'cat food', more: true, results: [
            { type: 'room', id: 9, ts: 5, from: 'bob', to: '#r', message: { text: 'my cat food' }, highlights: [[3, 6], [7, 11], [9, 99], [-1, 2], [5, 5]] },
            { type: 'private', id: 8, ts: 4, from: 'ana', to: 'bob', message: { text: 'cat' }, highlights: [[0, 3]] },
            { type: 'room', id: 'no', from: 'bob', to: '#r', message: { text: 'x' } },
        ],
    });
    const res = of('search')[0];
    assert.equal(res.more, true);
    assert.equal(res.request.type, 'search');
    assert.deepEqual(res.results.map((r) => [r.kind, r.id, r.text, r.highlights]),
        [['room', 9, 'my cat food', [[3, 6], [7, 11]]], ['private', 8, 'cat', [[0, 3]]]], 'bad results and ranges are dropped');
    s.logout();
});

test('ranks: who may kick, ban and make ops of whom', () => {
    const roles = { owner: 'ana', ops: ['ben', 'dee'] };
    assert.equal(roleOf('ANA', roles), 'owner');
    assert.equal(roleOf('Ben', roles), 'op');
    assert.equal(roleOf('cai', roles), 'member');
    assert.equal(myRank('cai', roles, true), RANK.admin);
    const may = (me, target, admin = false) => memberActions({ me, admin, roles, target });
    assert.deepEqual(may('ben', 'cai'), { kick: true, ban: true, op: false, deop: false }, 'an op moderates members');
    assert.deepEqual(may('ben', 'dee'), { kick: false, ban: false, op: false, deop: false }, 'not another op');
    assert.deepEqual(may('ben', 'ana'), { kick: false, ban: false, op: false, deop: false }, 'not the owner');
    assert.deepEqual(may('ana', 'ben'), { kick: true, ban: true, op: false, deop: true }, 'the owner removes ops');
    assert.deepEqual(may('ana', 'cai'), { kick: true, ban: true, op: true, deop: false }, 'and makes them');
    assert.deepEqual(may('cai', 'ana', true), { kick: true, ban: true, op: false, deop: false }, 'an admin outranks the owner');
    assert.deepEqual(may('cai', 'eve'), { kick: false, ban: false, op: false, deop: false }, 'a member moderates nobody');
    assert.deepEqual(may('ana', 'Ana'), { kick: false, ban: false, op: false, deop: false }, 'nobody acts on themselves');
});

test('the member list in groups, and what a kicked or banned person is told', () => {
    const groups = groupMembers(['ana', 'ben', 'cai', 'dee'], { owner: 'ana', ops: ['dee'] });
    assert.deepEqual(groups.map((g) => [g.label, g.people]), [['Owner', ['ana']], ['Ops', ['dee']], ['Members', ['ben', 'cai']]]);
    assert.deepEqual(groupMembers(['x'], { owner: '', ops: [] }).map((g) => g.key), ['members'], 'empty groups are left out');
    assert.deepEqual(BAN_CHOICES.map((c) => c.seconds), [600, 3600, 86400, 0]);
    assert.equal(kickedText({ room: '#r', by: 'ben', reason: '', ban: false, until: 0 }), 'You were kicked out of #r by ben.');
    assert.equal(kickedText({ room: '#r', by: 'ben', reason: 'spam', ban: true, until: 0 }), 'You were banned from #r by ben for good. Reason: spam');
    assert.match(kickedText({ room: '#r', by: 'ben', reason: '', ban: true, until: Date.UTC(2030, 0, 2, 3, 4) }), /^You were banned from #r by ben until .*2030.*\.$/);
    assert.match(bannedText('#r', Date.UTC(2030, 0, 2)), /^You are banned from #r until .*2030/);
    assert.deepEqual(rolesChanges({ owner: 'ana', ops: ['ben'] }, { owner: 'ana', ops: ['cai'] }), ['cai is now an op', 'ben is no longer an op']);
    assert.deepEqual(rolesChanges(undefined, { owner: 'ana', ops: [] }), ['ana is now the owner']);
});

test('the message menu: edit and delete for the author, delete for ops', () => {
    assert.deepEqual(messageActions({ own: true, hasId: true, deleted: false, room: true, moderator: false }), { edit: true, delete: true });
    assert.deepEqual(messageActions({ own: false, hasId: true, deleted: false, room: true, moderator: true }), { edit: false, delete: true });
    assert.deepEqual(messageActions({ own: false, hasId: true, deleted: false, room: true, moderator: false }), { edit: false, delete: false });
    assert.deepEqual(messageActions({ own: false, hasId: true, deleted: false, room: false, moderator: true }), { edit: false, delete: false }, 'no ops in a private');
    assert.deepEqual(messageActions({ own: true, hasId: false, deleted: false, room: true, moderator: false }), { edit: false, delete: false }, 'still sending');
    assert.deepEqual(messageActions({ own: true, hasId: true, deleted: true, room: true, moderator: true }), { edit: false, delete: false });
});

test('search highlights are UTF-16 ranges, merged and clipped; a result names its conversation', () => {
    const seg = (text, hl) => highlightSegments(text, hl).map((x) => (x.mark ? `[${x.text}]` : x.text)).join('');
    assert.equal(seg('hello world', [[6, 11]]), 'hello [world]');
    assert.equal(seg('hello world', [[6, 11], [0, 5]]), '[hello] [world]', 'sorted');
    assert.equal(seg('abcdef', [[1, 3], [2, 5]]), 'a[bcde]f', 'overlaps merged');
    assert.equal(seg('abc', [[1, 99], [-5, 1]]), '[abc]', 'clipped to the text, touching ranges joined');
    assert.equal(seg('abc', []), 'abc');
    // '👋' is two UTF-16 code units: "cat" after it starts at 3.
    assert.equal(seg('👋 cat', [[3, 6]]), '👋 [cat]');
    assert.equal(seg('<b>x</b>', [[3, 4]]), '<b>[x]</b>', 'markup stays text');
    const me = (n) => n === 'ana';
    assert.deepEqual(resultPlace({ kind: 'room', from: 'bob', to: '#r' }, me), { kind: 'room', name: '#r' });
    assert.deepEqual(resultPlace({ kind: 'private', from: 'ana', to: 'bob' }, me), { kind: 'private', name: 'bob' });
    assert.deepEqual(resultPlace({ kind: 'private', from: 'bob', to: 'ana' }, me), { kind: 'private', name: 'bob' });
});

test('banned from the server: a close with 4003, or a re-login refused with banned, stops for good', async () => {
    const a = await loggedIn('ana');
    a.ws.drop(4003);
    assert.deepEqual(a.of('server-banned').map((e) => e.until), [0]);
    assert.equal(a.of('status').at(-1).state, 'idle');
    await sleep(40);
    assert.equal(ScriptedSocket.all.length, 1, 'no reconnect');
    assert.equal(a.s.loggedIn, false);

    const b = await loggedIn('ben');
    b.ws.drop(1006);
    while (ScriptedSocket.all.length < 2) await sleep(2);
    const ws2 = ScriptedSocket.all[1];
    ws2.open();
    ws2.deliver({ type: 'error', ref: ws2.lastSent().id, code: 'banned', until: 1764000000000 });
    assert.deepEqual(b.of('server-banned').map((e) => e.until), [1764000000000]);
    await sleep(40);
    assert.equal(ScriptedSocket.all.length, 2, 'no more attempts');
});
