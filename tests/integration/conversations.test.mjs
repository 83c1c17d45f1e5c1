// Private conversations between accounts (PROTOCOL.md, "Accounts and
// sessions"): stored before anyone receives them, also for an offline
// recipient; read back with `history` and `with`; listed by
// `conversations` with unread counts; `read` markers synced across an
// account's connections; privates with guests stay live only; and the
// durability rule under kill -9: every private anyone received is in the
// conversation after the restart.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';

import { WebSocket, bounded, connect, login, startServer, uniq, account } from './helpers.mjs';

const T = { timeout: 120000 };
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tertulia-conv-'));
let s;
before(async () => {
    s = await startServer(['--db', path.join(dir, 'main.db'), '--rate-limit', '0']);
});
after(async () => {
    await s.stopClean();
    fs.rmSync(dir, { recursive: true, force: true });
});

test('a private to an offline account is stored: acked, echoed, then in its conversations and history', T, async () => {
    const ana = await account(s, uniq('Ana'));
    const bobName = uniq('Bob');
    const bob = await account(s, bobName);
    await bob.close();
    const ack = await ana.request({ type: 'private', to: bobName.toLowerCase(), message: { text: 'while you were out' } }, 'ack');
    assert.equal(ack.type, 'ack', JSON.stringify(ack));
    const echo = await ana.next((m) => m.type === 'private');
    assert.equal(echo.to, bobName, 'named as the account spells itself');
    assert.equal(echo.id, ack.message_id);
    const back = await account(s, bobName, { register: false });
    const convs = await back.request({ type: 'conversations' }, 'conversations');
    assert.deepEqual(convs.conversations, [{ with: ana.nickname, last_id: ack.message_id, unread: 1 }]);
    const h = await back.request({ type: 'history', with: ana.nickname }, 'history');
    assert.equal(h.with, ana.nickname);
    assert.equal(h.more, false);
    assert.deepEqual(h.messages.map((m) => [m.type, m.id, m.from, m.to, m.message.text]), [['private', ack.message_id, ana.nickname, bobName, 'while you were out']]);
    // The sender reads the same conversation, and lists it with nothing unread (its own message).
    const hs = await ana.request({ type: 'history', with: bobName }, 'history');
    assert.deepEqual(hs.messages.map((m) => m.id), [ack.message_id]);
    const ac = await ana.request({ type: 'conversations' }, 'conversations');
    assert.deepEqual(ac.conversations, [{ with: bobName, last_id: ack.message_id, unread: 0 }]);
    for (const c of [ana, back]) await c.close();
});

test('read markers move forward and reach the account\'s other connections; unread counts follow', T, async () => {
    const ana = await account(s, uniq('Ann'));
    const bob1 = await account(s, uniq('Bo'));
    const bob2 = await account(s, bob1.nickname, { register: false });
    const ids = [];
    for (let i = 0; i < 3; i++) {
        const a = await ana.request({ type: 'private', to: bob1.nickname, message: { text: `m${i}` } }, 'ack');
        ids.push(a.message_id);
        for (const b of [bob1, bob2]) await b.next((m) => m.type === 'private' && m.message.text === `m${i}`);
    }
    let c = await bob2.request({ type: 'conversations' }, 'conversations');
    assert.equal(c.conversations[0].unread, 3);
    bob1.send({ type: 'read', with: ana.nickname, up_to: ids[1] });
    const r = await bob2.next((m) => m.type === 'read');
    assert.deepEqual(r, { type: 'read', with: ana.nickname, up_to: ids[1] });
    c = await bob2.request({ type: 'conversations' }, 'conversations');
    assert.equal(c.conversations[0].unread, 1);
    // Backwards changes nothing.
    bob2.send({ type: 'read', with: ana.nickname, up_to: ids[0] });
    await bob1.next((m) => m.type === 'read' && m.up_to === ids[0]);
    c = await bob1.request({ type: 'conversations' }, 'conversations');
    assert.equal(c.conversations[0].unread, 1);
    // A room's marker travels the same way.
    bob1.send({ type: 'read', room: '#somewhere', up_to: 5 });
    assert.deepEqual(await bob2.next((m) => m.type === 'read'), { type: 'read', room: '#somewhere', up_to: 5 });
    // Refusals.
    await bob1.expectError({ type: 'read', with: ana.nickname }, 'bad_request');
    await bob1.expectError({ type: 'read', with: ana.nickname, room: 'x', up_to: 1 }, 'bad_request');
    await bob1.expectError({ type: 'read', up_to: 1 }, 'bad_request');
    await bob1.expectError({ type: 'read', with: 'not valid!', up_to: 1 }, 'nickname_invalid');
    await bob1.expectError({ type: 'read', with: ana.nickname, up_to: 0 }, 'bad_request');
    for (const x of [ana, bob1, bob2]) await x.close();
});

test('history with paging, newest last; errors for guests and bad names', T, async () => {
    const ana = await account(s, uniq('Pa'));
    const bob = await account(s, uniq('Pb'));
    const ids = [];
    for (let i = 0; i < 5; i++) ids.push((await ana.request({ type: 'private', to: bob.nickname, message: { text: `p${i}` } }, 'ack')).message_id);
    const page = await bob.request({ type: 'history', with: ana.nickname, limit: 2 }, 'history');
    assert.deepEqual(page.messages.map((m) => m.id), ids.slice(3));
    assert.equal(page.more, true);
    const older = await bob.request({ type: 'history', with: ana.nickname, limit: 10, before: ids[3] }, 'history');
    assert.deepEqual(older.messages.map((m) => m.id), ids.slice(0, 3));
    assert.equal(older.more, false);
    await bob.expectError({ type: 'history', with: 'bad name!' }, 'nickname_invalid');
    await bob.expectError({ type: 'history', with: 7 }, 'bad_request');
    const empty = await bob.request({ type: 'history', with: uniq('nobody') }, 'history');
    assert.deepEqual(empty.messages, []);
    const g = await login(s, uniq('guest'));
    await g.expectError({ type: 'conversations' }, 'bad_request');
    await g.expectError({ type: 'history', with: ana.nickname }, 'bad_request');
    await g.expectError({ type: 'read', with: ana.nickname, up_to: 1 }, 'bad_request');
    for (const x of [ana, bob, g]) await x.close();
});

test('privates with a guest are live only; a private to a name nobody has is no_such_user', T, async () => {
    const ana = await account(s, uniq('Live'));
    const g = await login(s, uniq('gst'));
    await ana.request({ type: 'private', to: g.nickname, message: { text: 'to a guest' } }, 'ack');
    await g.next((m) => m.type === 'private' && m.message.text === 'to a guest');
    await g.request({ type: 'private', to: ana.nickname, message: { text: 'from a guest' } }, 'ack');
    await ana.next((m) => m.type === 'private' && m.message.text === 'from a guest');
    const h = await ana.request({ type: 'history', with: g.nickname }, 'history');
    assert.deepEqual(h.messages, [], 'nothing stored with a guest');
    const c = await ana.request({ type: 'conversations' }, 'conversations');
    assert.deepEqual(c.conversations, []);
    await ana.expectError({ type: 'private', to: uniq('nobody'), message: { text: 'x' } }, 'no_such_user');
    for (const x of [ana, g]) await x.close();
});

test('kill -9 mid-stream: every private any connection received is in the conversation after the restart', T, async () => {
    const db = path.join(dir, 'crash.db');
    let server = await startServer(['--db', db, '--rate-limit', '0']);
    const ana = await account(server, uniq('Ca'));
    const bob = await account(server, uniq('Cb'));
    const received = new Map(); // id -> text, as any of the two saw it
    for (const c of [ana, bob]) {
        c.ws.on('message', (data) => {
            const m = JSON.parse(data.toString('utf8'));
            if (m.type === 'private') received.set(m.id, m.message.text);
        });
    }
    let sent = 0;
    let stop = false;
    const inflight = new Set();
    const pump = () => {
        while (!stop && inflight.size < 8 && ana.ws.readyState === WebSocket.OPEN && sent < 5000) {
            const id = `c${sent}`;
            inflight.add(id);
            ana.send({ type: 'private', to: bob.nickname, message: { text: `crash ${sent}` }, id });
            sent += 1;
        }
    };
    ana.ws.on('message', (data) => {
        const m = JSON.parse(data.toString('utf8'));
        if (m.ref !== undefined && inflight.delete(m.ref)) pump();
    });
    pump();
    // Kill once a good number went through, without waiting on a timer.
    await new Promise((resolve) => {
        const check = () => (received.size >= 200 || sent >= 5000 ? resolve() : setImmediate(check));
        check();
    });
    server.proc.kill('SIGKILL');
    stop = true;
    // The servers' processes do not keep this file alive (helpers.mjs): a
    // timer does, while the dead one's exit and the closes come.
    await bounded(Promise.all([server.exited, ana.closed, bob.closed]), 10000, 'the killed server\'s exit');
    assert.ok(received.size >= 200, `received ${received.size}`);
    server = await startServer(['--db', db, '--rate-limit', '0']);
    try {
        const reader = await account(server, bob.nickname, { register: false });
        const stored = new Map();
        let beforeId;
        for (;;) {
            const h = await reader.request({ type: 'history', with: ana.nickname, limit: 200, ...(beforeId ? { before: beforeId } : {}) }, 'history');
            for (const m of h.messages) stored.set(m.id, m.message.text);
            if (!h.more || h.messages.length === 0) break;
            beforeId = h.messages[0].id;
        }
        for (const [id, text] of received) assert.equal(stored.get(id), text, `message ${id} was received but is not in the history`);
        // Ids go on increasing after the restart.
        const sender = await account(server, ana.nickname, { register: false });
        const a = await sender.request({ type: 'private', to: bob.nickname, message: { text: 'after' } }, 'ack');
        assert.ok(a.message_id > Math.max(...stored.keys()));
        for (const x of [reader, sender]) await x.close();
    } finally {
        await server.stopClean();
    }
});
