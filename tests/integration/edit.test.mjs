// Editing and deleting messages (PROTOCOL.md, "Typing, editing, deleting,
// mentions"): only the author edits or deletes; every member (both sides
// of a stored conversation) hears `edited` / `deleted`; history and `join`
// with `since` return the edited or deleted state; a deleted text is gone
// from the database file and its WAL; legacy clients get none of it.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';

import { connect, join, legacyLogin, login, startServer, uniq, waitMembers, account } from './helpers.mjs';

const T = { timeout: 60000 };
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tertulia-edit-'));
let s;
before(async () => {
    s = await startServer(['--db', path.join(dir, 'main.db'), '--rate-limit', '0']);
});
after(async () => {
    await s.stopClean();
    fs.rmSync(dir, { recursive: true, force: true });
});

async function say(c, to, text) {
    const ack = await c.request({ type: 'room', to, message: { text } }, 'ack');
    assert.equal(ack.type, 'ack', JSON.stringify(ack));
    return ack.message_id;
}

async function pong(c) {
    const p = await c.request({ type: 'ping' }, 'pong');
    assert.equal(p.type, 'pong');
}

test('the author edits: every member hears it; history holds the new text and edited_ts', T, async () => {
    const room = uniq('#ed');
    const ana = await login(s, uniq('ana'), { room });
    const ben = await login(s, uniq('ben'), { room });
    const id = await say(ana, room, 'first version');
    await ben.next((m) => m.type === 'room' && m.id === id);
    const done = await ana.request({ type: 'edit', message_id: id, message: { text: 'second version' } }, 'done');
    assert.deepEqual([done.type, done.action, done.id], ['done', 'edit', id], JSON.stringify(done));
    for (const c of [ana, ben]) {
        const e = await c.next((m) => m.type === 'edited');
        assert.equal(e.id, id);
        assert.equal(e.room, room);
        assert.equal(e.from, ana.nickname);
        assert.deepEqual(e.message, { text: 'second version' });
        assert.ok(Number.isInteger(e.edited_ts) && e.edited_ts >= Date.now() - 60000, JSON.stringify(e));
    }
    const h = await ben.request({ type: 'history', room }, 'history');
    const m = h.messages.find((x) => x.id === id);
    assert.equal(m.message.text, 'second version');
    assert.ok(m.edited_ts > 0);
    // The message id as `id` (a number) works too; no correlation id then, so no `done`.
    ana.send({ type: 'edit', id, message: { text: 'third version' } });
    const e3 = await ben.next((x) => x.type === 'edited');
    assert.equal(e3.message.text, 'third version');
    await ana.next((x) => x.type === 'edited');
    await pong(ana);
    assert.equal(ana.inbox.drain().filter((x) => x.type === 'done').length, 0);
    for (const c of [ana, ben]) await c.close();
});

test('only the author: another member gets not_permitted, a stranger and a missing id not_found, bad text bad_request', T, async () => {
    const room = uniq('#perm');
    const ana = await login(s, uniq('ana'), { room });
    const ben = await login(s, uniq('ben'), { room });
    const eve = await login(s, uniq('eve'));
    const id = await say(ana, room, 'mine alone');
    await ben.expectError({ type: 'edit', message_id: id, message: { text: 'hijacked' } }, 'not_permitted');
    await ben.expectError({ type: 'delete', message_id: id }, 'not_permitted');
    // Eve was never in the room: to her the message does not exist.
    await eve.expectError({ type: 'edit', message_id: id, message: { text: 'x' } }, 'not_found');
    await eve.expectError({ type: 'delete', message_id: id }, 'not_found');
    await ana.expectError({ type: 'edit', message_id: id + 100000, message: { text: 'x' } }, 'not_found');
    await ana.expectError({ type: 'edit', message_id: id, message: { text: '   ' } }, 'bad_request');
    await ana.expectError({ type: 'edit', message_id: id, message: { text: 'a\u0001b' } }, 'bad_request');
    await ana.expectError({ type: 'edit', message_id: id, message: { text: 'x'.repeat(5000) } }, 'message_too_long');
    await ana.expectError({ type: 'edit', message_id: 'seven', message: { text: 'x' } }, 'bad_request');
    await ana.expectError({ type: 'delete' }, 'bad_request');
    // Nothing changed, and ben heard of nothing.
    const h = await ben.request({ type: 'history', room }, 'history');
    assert.equal(h.messages.find((x) => x.id === id).message.text, 'mine alone');
    assert.equal(h.messages.find((x) => x.id === id).edited_ts, undefined);
    await pong(ben);
    assert.equal(ben.inbox.drain().filter((x) => x.type === 'edited' || x.type === 'deleted').length, 0);
    for (const c of [ana, ben, eve]) await c.close();
});

test('delete: members hear it; history and join with since show {id, ts, from, to, deleted}; it cannot be edited or deleted again', T, async () => {
    const room = uniq('#del');
    const ana = await login(s, uniq('ana'), { room });
    const ben = await login(s, uniq('ben'), { room });
    const before = await say(ana, room, 'before it');
    const id = await say(ana, room, 'regrettable');
    const done = await ana.request({ type: 'delete', message_id: id }, 'done');
    assert.equal(done.action, 'delete');
    for (const c of [ana, ben]) {
        const d = await c.next((m) => m.type === 'deleted');
        assert.deepEqual(d, { type: 'deleted', id, room, by: ana.nickname });
    }
    const h = await ben.request({ type: 'history', room }, 'history');
    const m = h.messages.find((x) => x.id === id);
    assert.deepEqual(Object.keys(m).sort(), ['deleted', 'from', 'id', 'to', 'ts', 'type']);
    assert.equal(m.deleted, true);
    assert.equal(m.from, ana.nickname);
    assert.equal(m.to, room);
    // A reconnecting client recovers the deleted state with since.
    const cid = await login(s, uniq('cid'));
    const j = await join(cid, room, { since: before });
    assert.deepEqual(
        j.history.map((x) => [x.id, x.deleted ?? false, x.message?.text]),
        [[id, true, undefined]],
    );
    await ana.expectError({ type: 'delete', message_id: id }, 'not_found');
    await ana.expectError({ type: 'edit', message_id: id, message: { text: 'undo' } }, 'not_found');
    for (const c of [ana, ben, cid]) await c.close();
});

test('a delete right after the message: no later live copy nor history copy of it', T, async () => {
    const room = uniq('#ord');
    const ana = await login(s, uniq('ana'), { room });
    const ben = await login(s, uniq('ben'), { room });
    // Sent back to back, without waiting: the delete is ordered after the message.
    const ack = ana.request({ type: 'room', to: room, message: { text: 'gone soon' } }, 'ack');
    const id = (await ack).message_id;
    ana.send({ type: 'delete', message_id: id, id: 'd1' });
    ana.send({ type: 'room', to: room, message: { text: 'after the delete' }, id: 'm2' });
    const seen = [];
    for (;;) {
        const m = await ben.next((x) => x.type === 'room' || x.type === 'deleted');
        seen.push(m.type === 'deleted' ? `deleted:${m.id}` : `room:${m.message.text}`);
        if (m.type === 'room' && m.message.text === 'after the delete') break;
    }
    assert.deepEqual(seen, ['room:gone soon', `deleted:${id}`, 'room:after the delete']);
    const h = await ben.request({ type: 'history', room }, 'history');
    assert.deepEqual(
        h.messages.map((x) => (x.deleted ? 'deleted' : x.message.text)),
        ['deleted', 'after the delete'],
    );
    for (const c of [ana, ben]) await c.close();
});

test('a private between accounts: both sides hear edited and deleted, with the other side as `with`; a guest\'s is not_found', T, async () => {
    const ana = await account(s, uniq('Ana'));
    const bob = await account(s, uniq('Bob'));
    const ack = await ana.request({ type: 'private', to: bob.nickname, message: { text: 'psst' } }, 'ack');
    const id = ack.message_id;
    await bob.next((m) => m.type === 'private' && m.id === id);
    await ana.request({ type: 'edit', message_id: id, message: { text: 'psst, edited' } }, 'done');
    const ea = await ana.next((m) => m.type === 'edited');
    const eb = await bob.next((m) => m.type === 'edited');
    assert.equal(ea.with, bob.nickname);
    assert.equal(eb.with, ana.nickname);
    assert.equal(eb.room, undefined);
    assert.equal(eb.message.text, 'psst, edited');
    await bob.expectError({ type: 'edit', message_id: id, message: { text: 'no' } }, 'not_permitted');
    const carol = await account(s, uniq('Carol'));
    await carol.expectError({ type: 'delete', message_id: id }, 'not_found');
    await ana.request({ type: 'delete', message_id: id }, 'done');
    const db = await bob.next((m) => m.type === 'deleted');
    assert.deepEqual(db, { type: 'deleted', id, with: ana.nickname, by: ana.nickname });
    const h = await bob.request({ type: 'history', with: ana.nickname }, 'history');
    assert.deepEqual(h.messages.map((m) => [m.id, m.deleted]), [[id, true]]);
    // With a guest: live only, never stored, so there is nothing to edit.
    const guest = await login(s, uniq('guest'));
    const g = await ana.request({ type: 'private', to: guest.nickname, message: { text: 'live only' } }, 'ack');
    await ana.expectError({ type: 'edit', message_id: g.message_id, message: { text: 'x' } }, 'not_found');
    for (const c of [ana, bob, carol, guest]) await c.close();
});

test('a guest edits only what it wrote since it logged in (a nickname reused is not the author)', T, async () => {
    const room = uniq('#reuse');
    const nick = uniq('tmp');
    const first = await login(s, nick, { room });
    const id = await say(first, room, 'by the first holder');
    // A goodbye: the nickname is free at once for the next guest.
    first.send({ type: 'logout' });
    await first.close();
    const watcher = await login(s, uniq('w'), { room });
    await waitMembers(watcher, room, (ms) => !ms.includes(nick));
    const second = await login(s, nick, { room });
    assert.ok(second.welcome.since_id >= id);
    await second.expectError({ type: 'edit', message_id: id, message: { text: 'mine now?' } }, 'not_permitted');
    for (const c of [second, watcher]) await c.close();
});

test('legacy members get no edited or deleted frame', T, async () => {
    const room = uniq('#leg');
    const ana = await login(s, uniq('ana'), { room });
    const old = await legacyLogin(s, uniq('old'), room);
    await waitMembers(ana, room, (ms) => ms.includes(old.nickname));
    const id = await say(ana, room, 'to edit');
    await ana.request({ type: 'edit', message_id: id, message: { text: 'edited' } }, 'done');
    await ana.request({ type: 'delete', message_id: id }, 'done');
    await say(ana, room, 'marker');
    // The legacy client's stream: the two messages, nothing between.
    const got = [];
    for (;;) {
        const m = await old.next(() => true);
        got.push(m.type);
        if (m.type === 'room' && m.message?.text === 'marker') break;
    }
    assert.deepEqual(got.filter((t) => t !== 'member_joined' && t !== 'member_left'), ['room', 'room']);
    // A legacy client cannot edit, not even its own message (the request is dropped).
    old.send({ type: 'room', to: room, message: { text: 'legacy words' } });
    const own = await old.next((m) => m.type === 'room' && m.message?.text === 'legacy words');
    old.send({ type: 'edit', message_id: own.id, message: { text: 'changed' } });
    old.send({ type: 'room', to: room, message: { text: 'legacy marker' } });
    await ana.next((m) => m.type === 'room' && m.message.text === 'legacy marker');
    const h = await ana.request({ type: 'history', room }, 'history');
    assert.equal(h.messages.find((m) => m.id === own.id).message.text, 'legacy words');
    await ana.expectNothing(0, (m) => m.type === 'edited' && m.id === own.id);
    for (const c of [ana, old]) await c.close();
});

function grepFile(file, word) {
    if (!fs.existsSync(file)) return 0;
    const buf = fs.readFileSync(file);
    let n = 0;
    for (let i = buf.indexOf(word); i >= 0; i = buf.indexOf(word, i + 1)) n++;
    return n;
}

test('a deleted (and an edited-away) text is gone from the database file and its WAL', T, async () => {
    const db = path.join(dir, 'erase.db');
    const gone = `zq${Date.now().toString(36)}vanish`;
    const old = `zq${Date.now().toString(36)}oldtext`;
    const kept = `zq${Date.now().toString(36)}kept`;
    let srv = await startServer(['--db', db, '--rate-limit', '0']);
    const room = uniq('#erase');
    // An account: the same author after the restart.
    let ana = await account(srv, uniq('ana'));
    await join(ana, room);
    const id = await say(ana, room, `a secret ${gone} word`);
    const id2 = await say(ana, room, `an ${old} text`);
    await say(ana, room, `a ${kept} word`);
    await ana.close();
    await srv.stopClean();
    // The test can fail: the words are in the file as written.
    assert.ok(grepFile(db, gone) + grepFile(`${db}-wal`, gone) > 0, 'the word is stored before the delete');
    assert.ok(grepFile(db, old) + grepFile(`${db}-wal`, old) > 0);

    srv = await startServer(['--db', db, '--rate-limit', '0']);
    ana = await account(srv, ana.nickname, { register: false });
    await join(ana, room);
    // Indexed by now (a search catches the index up): the index has the words to lose.
    assert.equal((await ana.request({ type: 'search', query: gone }, 'search')).results.length, 1);
    assert.equal((await ana.request({ type: 'search', query: old }, 'search')).results.length, 1);
    const d = await ana.request({ type: 'delete', message_id: id }, 'done');
    assert.equal(d.type, 'done', JSON.stringify(d));
    const e = await ana.request({ type: 'edit', message_id: id2, message: { text: 'nothing to see' } }, 'done');
    assert.equal(e.type, 'done', JSON.stringify(e));
    // Once `done` came, while the server runs: neither the file nor the WAL holds them.
    for (const f of [db, `${db}-wal`]) {
        assert.equal(grepFile(f, gone), 0, `${path.basename(f)} still holds the deleted word`);
        assert.equal(grepFile(f, old), 0, `${path.basename(f)} still holds the edited-away word`);
    }
    const r = await ana.request({ type: 'search', query: kept }, 'search');
    assert.equal(r.results.length, 1, 'the rest is still there and searchable');
    await ana.close();
    await srv.stopClean();
    for (const f of [db, `${db}-wal`]) {
        assert.equal(grepFile(f, gone), 0);
        assert.equal(grepFile(f, old), 0);
    }
    assert.ok(grepFile(db, kept) > 0, 'the kept message is in the file');
});
