// Typing indicators (PROTOCOL.md, "Typing, editing, deleting, mentions"):
// to a room's other members or to a person; starts more often than one per
// 2 s dropped; a start not refreshed within 6 s, a message from the typist
// and leaving the room end it (the server sends the stop); never sent to
// legacy clients; and left out for a recipient that is behind, while chat
// messages still reach it.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';

import { RawWs, join, legacyLogin, login, startServer, uniq } from './helpers.mjs';

const T = { timeout: 60000 };
let s;
before(async () => {
    s = await startServer(['--db', ':memory:', '--rate-limit', '0']);
});
after(async () => {
    await s.stopClean();
});

const typingOf = (m) => m.type === 'typing';

test('typing in a room reaches the other v1 members, not the typist, never a legacy client', T, async () => {
    const room = uniq('#typ');
    const ana = await login(s, uniq('ana'), { room });
    const ben = await login(s, uniq('ben'), { room });
    const ana2 = await login(s, ana.nickname, { room, resume: ana.resume });
    const old = await legacyLogin(s, uniq('old'), room);
    ana.send({ type: 'typing', to: room, state: 'start' });
    const t = await ben.next(typingOf);
    assert.deepEqual(t, { type: 'typing', room, nickname: ana.nickname, state: 'start' });
    // A second start within 2 s is dropped; the stop arrives next.
    ana.send({ type: 'typing', to: room, state: 'start' });
    ana.send({ type: 'typing', to: room, state: 'stop' });
    assert.deepEqual(await ben.next(typingOf), { type: 'typing', room, nickname: ana.nickname, state: 'stop' });
    // The typist's own connections and the legacy client heard nothing:
    // a room message after it is the first thing they get.
    await ana.request({ type: 'room', to: room, message: { text: 'after the typing' } }, 'ack');
    for (const c of [ana, ana2, old]) {
        const first = await c.next((m) => m.type === 'room' || m.type === 'typing');
        assert.equal(first.type, 'room', `${c.label}: ${JSON.stringify(first)}`);
    }
    for (const c of [ana, ana2, ben, old]) await c.close();
});

test('a message from the typist ends its typing: stop, then the message', T, async () => {
    const room = uniq('#msg');
    const ana = await login(s, uniq('ana'), { room });
    const ben = await login(s, uniq('ben'), { room });
    ana.send({ type: 'typing', to: room, state: 'start' });
    await ben.next(typingOf);
    await ana.request({ type: 'room', to: room, message: { text: 'done typing' } }, 'ack');
    const stop = await ben.next((m) => m.type === 'room' || m.type === 'typing');
    assert.deepEqual(stop, { type: 'typing', room, nickname: ana.nickname, state: 'stop' });
    const msg = await ben.next((m) => m.type === 'room' || m.type === 'typing');
    assert.equal(msg.type, 'room');
    for (const c of [ana, ben]) await c.close();
});

test('typing to a person; leaving a room ends typing there; refusals', T, async () => {
    const room = uniq('#leave');
    const ana = await login(s, uniq('ana'), { room });
    const ben = await login(s, uniq('ben'), { room });
    ana.send({ type: 'typing', to: ben.nickname.toUpperCase(), state: 'start' });
    assert.deepEqual(await ben.next(typingOf), { type: 'typing', from: ana.nickname, nickname: ana.nickname, state: 'start' });
    await ana.request({ type: 'private', to: ben.nickname, message: { text: 'hi' } }, 'ack');
    assert.deepEqual(await ben.next(typingOf), { type: 'typing', from: ana.nickname, nickname: ana.nickname, state: 'stop' });
    ana.send({ type: 'typing', to: room, state: 'start' });
    await ben.next((m) => typingOf(m) && m.room === room && m.state === 'start');
    await ana.request({ type: 'leave', room }, 'left');
    const near = (m) => (m.type === 'typing' && m.room === room) || m.type === 'member_left';
    assert.deepEqual(await ben.next(near), { type: 'typing', room, nickname: ana.nickname, state: 'stop' });
    assert.equal((await ben.next(near)).type, 'member_left');
    await ana.expectError({ type: 'typing', to: room, state: 'maybe' }, 'bad_request');
    await ana.expectError({ type: 'typing', to: room }, 'bad_request');
    await ana.expectError({ type: 'typing', to: '#nowhere-at-all', state: 'start' }, 'not_in_room');
    await ana.expectError({ type: 'typing', to: uniq('nobody'), state: 'start' }, 'no_such_user');
    for (const c of [ana, ben]) await c.close();
});

test('a start not refreshed within 6 s ends: the server sends the stop', T, async () => {
    const room = uniq('#exp');
    const ana = await login(s, uniq('ana'), { room });
    const ben = await login(s, uniq('ben'), { room });
    const t0 = Date.now();
    ana.send({ type: 'typing', to: room, state: 'start' });
    await ben.next((m) => typingOf(m) && m.state === 'start');
    const stop = await ben.next(typingOf, 10000);
    assert.equal(stop.state, 'stop');
    assert.ok(Date.now() - t0 >= 5500, `stopped after ${Date.now() - t0} ms`);
    for (const c of [ana, ben]) await c.close();
});

test('a recipient that is behind gets the chat messages but not the typing', T, async () => {
    const tok = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'tertulia-typing-')), 'token');
    fs.writeFileSync(tok, 'typing-test-token-0123456789\n');
    const q = await startServer(['--db', ':memory:', '--rate-limit', '0', '--max-queue', '4M', '--admin-token-file', tok]);
    try {
        const room = uniq('#behind');
        const ana = await login(q, uniq('ana'), { room });
        const slowNick = uniq('slow');
        const slow = await RawWs.connect(q, '/ws', { protocol: 'tertulia.v1' });
        await slow.sendText(JSON.stringify({ type: 'login', nickname: slowNick, room }));
        assert.equal(JSON.parse((await slow.nextMessage()).data.toString()).type, 'welcome');
        assert.equal(JSON.parse((await slow.nextMessage()).data.toString()).type, 'joined');
        await ana.next((m) => m.type === 'member_joined' && m.nickname === slowNick);
        slow.pause();
        // Fill its queue past half of --max-queue (the kernel's buffers first).
        const text = 'x'.repeat(3500);
        const queued = async () => {
            const r = await fetch(`${q.url}/admin/api/connections`, { headers: { authorization: 'Bearer typing-test-token-0123456789' } });
            const c = (await r.json()).connections.find((x) => x.nick === slowNick);
            return c.queue_bytes;
        };
        let sent = 0;
        while ((await queued()) <= 2.2 * 1024 * 1024 && sent < 3000) {
            for (let i = 0; i < 50; i++, sent++) ana.send({ type: 'room', to: room, message: { text: `${sent} ${text}` }, id: `m${sent}` });
            await ana.next((m) => m.type === 'ack' && m.ref === `m${sent - 1}`, 20000);
        }
        assert.ok(sent < 3000, 'the queue grew past half');
        ana.send({ type: 'typing', to: room, state: 'start' });
        await ana.request({ type: 'room', to: room, message: { text: 'last one' } }, 'ack');
        slow.resume();
        let rooms = 0;
        for (;;) {
            const m = JSON.parse((await slow.nextMessage(20000)).data.toString());
            assert.notEqual(m.type, 'typing', 'no typing frame for a connection that is behind');
            if (m.type === 'room') rooms++;
            if (m.type === 'room' && m.message.text === 'last one') break;
        }
        assert.equal(rooms, sent + 1, 'every chat message arrived');
        slow.destroy();
        await ana.close();
    } finally {
        await q.stopClean();
    }
});
