// Search (PROTOCOL.md via docs/protocol.md, "search"): over the messages
// the requester may read only (rooms it is or was in, its own stored
// conversations), newest first, with highlights as UTF-16 offsets; edits
// reindexed, deleted messages gone; non-Latin scripts; the bounds.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';

import { connect, join, login, startServer, uniq, account } from './helpers.mjs';
import { marked, say, search, word } from './search-helpers.mjs';

const T = { timeout: 60000 };
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tertulia-search-'));
let s;
before(async () => {
    s = await startServer(['--db', path.join(dir, 'main.db'), '--rate-limit', '0']);
});
after(async () => {
    await s.stopClean();
    fs.rmSync(dir, { recursive: true, force: true });
});

test('results come from the rooms one is in, never from another room; newest first; highlights', T, async () => {
    const w = word('apple');
    const ra = uniq('#sa');
    const rb = uniq('#sb');
    const ana = await login(s, uniq('ana'), { room: ra });
    const bob = await login(s, uniq('bob'), { room: rb });
    const eve = await login(s, uniq('eve'));
    const a1 = await say(ana, ra, `first ${w} here`);
    const a2 = await say(ana, ra, `Second ${w.toUpperCase()} there, ${w} again`);
    const b1 = await say(bob, rb, `bob's ${w}`);
    const r = await search(ana, { query: w });
    assert.deepEqual(r.results.map((x) => x.id), [a2, a1], 'newest first, and not bob\'s room');
    assert.equal(r.query, w);
    assert.equal(r.more, false);
    const top = r.results[0];
    assert.equal(top.type, 'room');
    assert.equal(top.to, ra);
    assert.equal(top.from, ana.nickname);
    assert.ok(Number.isInteger(top.ts));
    assert.deepEqual(marked(top), [w.toUpperCase(), w]);
    const rbob = await search(bob, { query: w });
    assert.deepEqual(rbob.results.map((x) => x.id), [b1]);
    // Eve was never in either room.
    assert.deepEqual((await search(eve, { query: w })).results, []);
    assert.deepEqual((await search(eve, { query: w, room: ra })).results, []);
    // Restricted to one room.
    assert.deepEqual((await search(ana, { query: w, room: ra.toUpperCase() })).results.map((x) => x.id), [a2, a1]);
    assert.deepEqual((await search(ana, { query: w, room: rb })).results, []);
    for (const c of [ana, bob, eve]) await c.close();
});

test('all words must match; limit, more, before and next_before page back', T, async () => {
    const w = word('pear');
    const v = word('plum');
    const room = uniq('#page');
    const ana = await login(s, uniq('ana'), { room });
    const ids = [];
    for (let i = 0; i < 5; i++) ids.push(await say(ana, room, `${w} number ${i}${i % 2 ? ` ${v}` : ''}`));
    const both = await search(ana, { query: `${v} ${w}` });
    assert.deepEqual(both.results.map((x) => x.id), [ids[3], ids[1]]);
    const p1 = await search(ana, { query: w, limit: 2 });
    assert.deepEqual(p1.results.map((x) => x.id), [ids[4], ids[3]]);
    assert.equal(p1.more, true);
    assert.equal(p1.next_before, ids[3]);
    const p2 = await search(ana, { query: w, limit: 2, before: p1.next_before });
    assert.deepEqual(p2.results.map((x) => x.id), [ids[2], ids[1]]);
    const p3 = await search(ana, { query: w, limit: 2, before: p2.results[1].id });
    assert.deepEqual(p3.results.map((x) => x.id), [ids[0]]);
    assert.equal(p3.more, false);
    // Quotes and FTS5 syntax in a query are only words.
    assert.deepEqual((await search(ana, { query: `"${w}" OR NEAR(x) *` })).results, []);
    await ana.close();
});

test('a room one left stays searchable: a guest since it logged in, an account always (after a new login too)', T, async () => {
    const w = word('fig');
    const room = uniq('#left');
    const g = await login(s, uniq('g'), { room });
    const acc = await account(s, uniq('Acc'));
    await join(acc, room);
    const id = await say(g, room, `guest says ${w}`);
    await g.request({ type: 'leave', room }, 'left');
    await acc.request({ type: 'leave', room }, 'left');
    assert.deepEqual((await search(g, { query: w })).results.map((x) => x.id), [id]);
    assert.deepEqual((await search(acc, { query: w })).results.map((x) => x.id), [id]);
    await acc.close();
    const again = await account(s, acc.nickname, { register: false });
    assert.deepEqual((await search(again, { query: w })).results.map((x) => x.id), [id], 'the account\'s record is in the store');
    // A new guest under another name was never there.
    const other = await login(s, uniq('g2'));
    assert.deepEqual((await search(other, { query: w })).results, []);
    for (const c of [g, again, other]) await c.close();
});

test('stored conversations: both sides find them, nobody else; with narrows to one', T, async () => {
    const w = word('kiwi');
    const ana = await account(s, uniq('Ana'));
    const bob = await account(s, uniq('Bob'));
    const carol = await account(s, uniq('Carol'));
    const ack = await ana.request({ type: 'private', to: bob.nickname, message: { text: `between us: ${w}` } }, 'ack');
    const ack2 = await ana.request({ type: 'private', to: carol.nickname, message: { text: `to carol: ${w}` } }, 'ack');
    const rb = await search(bob, { query: w });
    assert.deepEqual(rb.results.map((x) => [x.type, x.id, x.from, x.to]), [['private', ack.message_id, ana.nickname, bob.nickname]]);
    assert.deepEqual(marked(rb.results[0]), [w]);
    assert.deepEqual((await search(ana, { query: w })).results.map((x) => x.id), [ack2.message_id, ack.message_id]);
    assert.deepEqual((await search(ana, { query: w, with: bob.nickname })).results.map((x) => x.id), [ack.message_id]);
    assert.deepEqual((await search(carol, { query: w })).results.map((x) => x.id), [ack2.message_id]);
    assert.deepEqual((await search(carol, { query: w, with: bob.nickname })).results, [], 'not a conversation of hers');
    const guest = await login(s, uniq('gst'));
    assert.deepEqual((await search(guest, { query: w, with: ana.nickname })).results, []);
    for (const c of [ana, bob, carol, guest]) await c.close();
});

test('edits are reindexed, deleted messages are gone from the results', T, async () => {
    const w = word('lime');
    const v = word('lemon');
    const room = uniq('#re');
    const ana = await login(s, uniq('ana'), { room });
    const id1 = await say(ana, room, `one ${w}`);
    const id2 = await say(ana, room, `two ${w}`);
    await ana.request({ type: 'edit', message_id: id1, message: { text: `one ${v}` } }, 'done');
    await ana.request({ type: 'delete', message_id: id2 }, 'done');
    assert.deepEqual((await search(ana, { query: w })).results, []);
    const r = await search(ana, { query: v });
    assert.deepEqual(r.results.map((x) => x.id), [id1]);
    assert.equal(r.results[0].message.text, `one ${v}`);
    assert.ok(r.results[0].edited_ts > 0);
    await ana.close();
});

test('Cyrillic, Greek and CJK: case and diacritics folded, CJK words found inside runs; offsets in UTF-16 units', T, async () => {
    const room = uniq('#intl');
    const ana = await login(s, uniq('ana'), { room });
    const tag = uniq('t').replace(/[^a-z0-9]/gi, '');
    const ru = await say(ana, room, `😀 Привет, мир! ${tag}`);
    const el = await say(ana, room, `Καλημέρα κόσμε ${tag}`);
    const ja = await say(ana, room, `昨日は東京タワーに行きました ${tag}`);
    const zh = await say(ana, room, `我爱北京天安门 ${tag}`);
    const fr = await say(ana, room, `Un café crème ${tag}`);
    const one = async (q, id, hl) => {
        const r = await search(ana, { query: `${q} ${tag}`, room });
        assert.deepEqual(r.results.map((x) => x.id), [id], `query ${q}`);
        assert.deepEqual(marked(r.results[0]).filter((x) => x !== tag), hl, `highlights of ${q}`);
        return r.results[0];
    };
    const r = await one('привет', ru, ['Привет']);
    assert.deepEqual(r.highlights[0], [3, 9], 'the emoji before it counts two UTF-16 units');
    await one('МИР', ru, ['мир']);
    await one('καλημερα', el, ['Καλημέρα']);
    await one('ΚΟΣΜΕ', el, ['κόσμε']);
    await one('東京', ja, ['東京']);
    await one('タワー', ja, ['タワー']);
    await one('北京', zh, ['北京']);
    await one('cafe', fr, ['café']);
    // A CJK word matches its characters in order, not scattered ones.
    assert.deepEqual((await search(ana, { query: `京東 ${tag}`, room })).results, []);
    await ana.close();
});

test('bounds: query length, words, room and with together, limit; results fit the reply budget', T, async () => {
    const ana = await login(s, uniq('ana'));
    await ana.expectError({ type: 'search', query: '' }, 'bad_request');
    await ana.expectError({ type: 'search', query: '   ' }, 'bad_request');
    await ana.expectError({ type: 'search', query: 'x'.repeat(201) }, 'bad_request');
    await ana.expectError({ type: 'search', query: 'a b c d e f g h i j k' }, 'bad_request');
    await ana.expectError({ type: 'search', query: 'a\u0001' }, 'bad_request');
    await ana.expectError({ type: 'search' }, 'bad_request');
    await ana.expectError({ type: 'search', query: 'a', room: '#r', with: 'bob' }, 'bad_request');
    await ana.expectError({ type: 'search', query: 'a', room: 'bad room' }, 'room_invalid');
    await ana.expectError({ type: 'search', query: 'a', limit: 0 }, 'bad_request');
    await ana.expectError({ type: 'search', query: 'a', before: -1 }, 'bad_request');
    assert.equal((await search(ana, { query: 'x'.repeat(200) })).results.length, 0);
    assert.equal((await search(ana, { query: 'a b c d e f g h i j' })).results.length, 0);
    // 60 messages of 4000 characters: a limit of 50 is clamped, and the
    // reply is cut to the budget (256 KiB by default), more telling so.
    const room = uniq('#big');
    await join(ana, room);
    const w = word('melon');
    // Quotes take two bytes each in JSON: 60 such texts are far over it.
    for (let i = 0; i < 60; i++) await say(ana, room, `${w} ${'"'.repeat(4000 - w.length)}`);
    const r = await search(ana, { query: w, limit: 500 });
    assert.ok(r.results.length > 0 && r.results.length <= 50, `${r.results.length} results`);
    assert.equal(r.more, true);
    assert.equal(r.next_before, r.results.at(-1).id);
    assert.ok(JSON.stringify(r).length <= 256 * 1024, 'within the reply budget');
    await ana.close();
});
