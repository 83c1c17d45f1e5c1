// Mentions (PROTOCOL.md, "Typing, editing, deleting, mentions"): a room
// message that names @nickname of a member carries `mentions` (canonical
// spelling, once each, members only, at most 10), live and in history;
// legacy clients get the message without it.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { legacyLogin, login, startServer, uniq } from './helpers.mjs';

const T = { timeout: 30000 };
let s;
before(async () => {
    s = await startServer(['--db', ':memory:']);
});
after(async () => {
    await s.stopClean();
});

test('members named with @ are listed once each, in their spelling; others, emails and strangers are not', T, async () => {
    const room = uniq('#men');
    const ana = await login(s, uniq('Ana'), { room });
    const ben = await login(s, uniq('Ben'), { room });
    const old = await legacyLogin(s, uniq('old'), room);
    const outsider = await login(s, uniq('out'));
    const text = `hi @${ben.nickname.toLowerCase()} and @${outsider.nickname}, mail me@${ana.nickname}.org, @${ana.nickname}. again @${ben.nickname} @nobody`;
    const ack = await ana.request({ type: 'room', to: room, message: { text } }, 'ack');
    const live = await ben.next((m) => m.type === 'room');
    assert.deepEqual(live.mentions, [ben.nickname, ana.nickname]);
    const legacy = await old.next((m) => m.type === 'room');
    assert.equal(legacy.mentions, undefined, 'a legacy client gets the message without mentions');
    assert.equal(legacy.message.text, text);
    const h = await ben.request({ type: 'history', room }, 'history');
    const stored = h.messages.find((m) => m.id === ack.message_id);
    assert.deepEqual(stored.mentions, [ben.nickname, ana.nickname]);
    // No mention, no field.
    await ana.request({ type: 'room', to: room, message: { text: 'nobody named here @' } }, 'ack');
    const plain = await ben.next((m) => m.type === 'room');
    assert.equal(plain.mentions, undefined);
    // At most 10, however many are named.
    const many = [];
    for (let i = 0; i < 12; i++) many.push(await login(s, uniq(`m${i}`), { room }));
    await ana.request({ type: 'room', to: room, message: { text: many.map((c) => `@${c.nickname}`).join(' ') } }, 'ack');
    const crowd = await ben.next((m) => m.type === 'room' && m.mentions !== undefined);
    assert.deepEqual(crowd.mentions, many.slice(0, 10).map((c) => c.nickname));
    for (const c of [ana, ben, old, outsider, ...many]) await c.close();
});
