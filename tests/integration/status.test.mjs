// Away status: `status` with `away` and an optional `text` (≤ 100
// characters) reaches the members of the user's rooms, its conversation
// partners and its other connections, each once; `joined` and `members`
// list who is away; never to legacy clients.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { join, legacyLogin, login, startServer, uniq } from './helpers.mjs';

const T = { timeout: 30000 };
let s;
before(async () => {
    s = await startServer(['--db', ':memory:']);
});
after(async () => {
    await s.stopClean();
});

const statusOf = (m) => m.type === 'status';

test('away with a text reaches rooms, partners and the other tabs once each; members and joined list it', T, async () => {
    const r1 = uniq('#st'), r2 = uniq('#st');
    const ana = await login(s, uniq('ana'), { room: r1 });
    await join(ana, r2);
    const tab = await login(s, ana.nickname, { resume: ana.resume });
    const ben = await login(s, uniq('ben'), { room: r1 });
    await join(ben, r2);
    const carl = await login(s, uniq('carl'));
    const old = await legacyLogin(s, uniq('old'), r1);
    await carl.request({ type: 'private', to: ana.nickname, message: { text: 'hi' } }, 'ack');
    await ana.next((m) => m.type === 'private');
    ana.send({ type: 'status', away: true, text: 'lunch' });
    for (const c of [tab, ben, carl]) {
        const st = await c.next(statusOf);
        assert.deepEqual(st, { type: 'status', nickname: ana.nickname, away: true, text: 'lunch' }, c.label);
    }
    // Once each (ben shares two rooms), and not to the sender or legacy:
    // the next thing they get is the reply to a ping or a room message.
    for (const c of [ana, ben]) {
        await c.request({ type: 'ping' }, 'pong');
        assert.equal(c.inbox.items.filter(statusOf).length, 0, c.label);
    }
    await ben.request({ type: 'room', to: r1, message: { text: 'after' } }, 'ack');
    assert.equal((await old.next(() => true)).type, 'room');
    const who = await ben.request({ type: 'who', room: r1 }, 'members');
    assert.deepEqual(who.away, [ana.nickname]);
    const dan = await login(s, uniq('dan'), { room: r1 });
    assert.deepEqual(dan.joined.away, [ana.nickname]);
    // Back: away false, no text, and the lists say nothing.
    ana.send({ type: 'status', away: false, text: 'ignored' });
    assert.deepEqual(await ben.next(statusOf), { type: 'status', nickname: ana.nickname, away: false });
    const who2 = await ben.request({ type: 'who', room: r1 }, 'members');
    assert.equal(who2.away, undefined);
    for (const c of [ana, tab, ben, carl, old, dan]) await c.close();
});

test('status refusals: away must be a boolean, text at most 100 characters without control characters', T, async () => {
    const ana = await login(s, uniq('ana'));
    await ana.expectError({ type: 'status' }, 'bad_request');
    await ana.expectError({ type: 'status', away: 'yes' }, 'bad_request');
    await ana.expectError({ type: 'status', away: true, text: 5 }, 'bad_request');
    await ana.expectError({ type: 'status', away: true, text: 'é'.repeat(101) }, 'message_too_long');
    await ana.expectError({ type: 'status', away: true, text: 'bell\u0007' }, 'bad_request');
    // Exactly 100 characters is fine: no error comes before the pong.
    ana.send({ type: 'status', away: true, text: 'é'.repeat(100), id: 'ok' });
    await ana.request({ type: 'ping' }, 'pong');
    assert.equal(ana.inbox.items.filter((m) => m.ref === 'ok').length, 0);
    await ana.close();
});
