// Search in a cluster reads the cluster's history in Redis: a message sent
// on one node is found from the other, by the same rules as on one node
// (the rooms one is in, a guest's since it logged in; an account's stored
// conversations with `with`; all words; newest first; highlights; case and
// diacritics folded, CJK inside runs; limit, more, before and next_before).
// Skipped, saying why, when the binary has no --redis.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { account, login, uniq } from './helpers.mjs';
import { clusterFixture, clusterMissing } from './redis.mjs';
import { marked, say, search, word } from './search-helpers.mjs';

const SKIP = clusterMissing();
const T = { timeout: 60000, skip: SKIP ?? false };

let n1;
let n2;
const fx = clusterFixture(['s1', 's2'], {
    skip: SKIP,
    ready: (f) => {
        [n1, n2] = f.nodes;
    },
});
const { clients } = fx;
const track = (c) => {
    clients.push(c);
    return c;
};

test('a message sent on node 1 is found from node 2, only in rooms the searcher may read; newest first; highlights', T, async () => {
    const w = word('pear');
    const ra = uniq('#csa');
    const rb = uniq('#csb');
    const ana = track(await login(n1, uniq('ana'), { room: ra }));
    const bob = track(await login(n2, uniq('bob'), { room: ra }));
    const eve = track(await login(n1, uniq('eve'), { room: rb }));
    const a1 = await say(ana, ra, `first ${w} here`);
    const b1 = await say(bob, ra, `then ${w.toUpperCase()} from node 2`);
    await say(eve, rb, `eve's ${w} in another room`);
    for (const [c, other] of [[ana, bob], [bob, ana]]) {
        const r = await search(c, { query: w });
        assert.deepEqual(r.results.map((x) => x.id), [b1, a1]);
        assert.equal(r.more, false);
        assert.equal(r.results[0].type, 'room');
        assert.equal(r.results[0].to, ra);
        assert.deepEqual(marked(r.results[0]), [w.toUpperCase()]);
        assert.equal(r.results[1].from, ana.nickname);
    }
    // Not another room's, and not for someone who was never in it.
    const late = track(await login(n2, uniq('late')));
    assert.deepEqual((await search(late, { query: w })).results, []);
    assert.deepEqual((await search(eve, { query: w })).results.map((x) => x.to), [rb]);
    // `room` narrows to one room.
    assert.deepEqual((await search(bob, { query: w, room: ra })).results.length, 2);
});

test('all words, limit, more, before and next_before page back across nodes', T, async () => {
    const w = word('plum');
    const room = uniq('#csp');
    const ana = track(await login(n1, uniq('ana'), { room }));
    const bob = track(await login(n2, uniq('bob'), { room }));
    const ids = [];
    for (let i = 0; i < 5; i++) ids.push(await say(i % 2 ? bob : ana, room, `${w} number ${i} ${i === 2 ? 'extra' : ''}`));
    ids.reverse();
    const both = await search(bob, { query: `${w} extra` });
    assert.deepEqual(both.results.map((x) => x.id), [ids[2]]);
    const p1 = await search(bob, { query: w, limit: 2 });
    assert.deepEqual(p1.results.map((x) => x.id), ids.slice(0, 2));
    assert.equal(p1.more, true);
    assert.equal(p1.next_before, ids[1]);
    const p2 = await search(ana, { query: w, limit: 2, before: p1.next_before });
    assert.deepEqual(p2.results.map((x) => x.id), ids.slice(2, 4));
    const p3 = await search(ana, { query: w, limit: 2, before: p2.next_before });
    assert.deepEqual(p3.results.map((x) => x.id), ids.slice(4));
    assert.equal(p3.more, false);
});

test('stored conversations: both accounts find them on either node; with narrows to one; nobody else does', T, async () => {
    const w = word('fig');
    const ana = track(await account(n1, uniq('ana')));
    const bob = track(await account(n2, uniq('bob')));
    const carol = track(await account(n2, uniq('carol')));
    const ack = await ana.request({ type: 'private', to: bob.nickname, message: { text: `psst ${w}` } }, 'ack');
    assert.equal(ack.type, 'ack');
    await bob.next({ type: 'private' });
    for (const [c, other] of [[ana, bob], [bob, ana]]) {
        const r = await search(c, { query: w });
        assert.deepEqual(r.results.map((x) => [x.type, x.id, x.from, x.to]), [['private', ack.message_id, ana.nickname, bob.nickname]]);
        assert.deepEqual(marked(r.results[0]), [w]);
        const only = await search(c, { query: w, with: other.nickname });
        assert.deepEqual(only.results.map((x) => x.id), [ack.message_id]);
    }
    assert.deepEqual((await search(carol, { query: w })).results, []);
    assert.deepEqual((await search(carol, { query: w, with: bob.nickname })).results, []);
});

test('the same tokenizer as one node: case and diacritics folded, Greek, CJK inside runs', T, async () => {
    const room = uniq('#csi');
    const ana = track(await login(n1, uniq('ana'), { room }));
    const bob = track(await login(n2, uniq('bob'), { room }));
    const tag = word('t');
    const cafe = await say(ana, room, `Un Café ${tag}`);
    const greek = await say(ana, room, `ΕΛΛΑΔΑ ${tag}`);
    const tokyo = await say(ana, room, `東京タワー ${tag}`);
    assert.deepEqual((await search(bob, { query: `cafe ${tag}` })).results.map((x) => x.id), [cafe]);
    assert.deepEqual((await search(bob, { query: `Ελλάδα ${tag}` })).results.map((x) => x.id), [greek]);
    const t = await search(bob, { query: `東京 ${tag}` });
    assert.deepEqual(t.results.map((x) => x.id), [tokyo]);
    assert.deepEqual(marked(t.results[0]), ['東京', tag]);
});

test("an account's record of rooms is the cluster's: a room it left on node 1 is searchable from node 2, after a new login", T, async () => {
    const w = word('quince');
    const room = uniq('#csr');
    const ana = track(await account(n1, uniq('ana')));
    await ana.request({ type: 'join', room }, 'joined');
    const id = await say(ana, room, `said once ${w}`);
    await ana.close();
    const again = track(await account(n2, ana.nickname, { register: false }));
    assert.deepEqual((await search(again, { query: w })).results.map((x) => x.id), [id]);
    // A guest who was never in it finds nothing.
    const g = track(await login(n2, uniq('g')));
    assert.deepEqual((await search(g, { query: w })).results, []);
});

test('an edit is what search finds, from either node; a deleted message is found no more', T, async () => {
    const before = word('old');
    const after = word('new');
    const room = uniq('#cse');
    const ana = track(await login(n1, uniq('ana'), { room }));
    const bob = track(await login(n2, uniq('bob'), { room }));
    const id = await say(ana, room, `first ${before}`);
    const keep = await say(ana, room, `kept ${after}`);
    await ana.request({ type: 'edit', message_id: id, message: { text: `then ${after}` } }, 'done');
    await bob.next((m) => m.type === 'edited' && m.id === id);
    for (const c of [ana, bob]) {
        assert.deepEqual((await search(c, { query: before })).results, [], 'the old text is gone');
        const r = await search(c, { query: after });
        assert.deepEqual(r.results.map((x) => x.id), [keep, id]);
        assert.equal(typeof r.results[1].edited_ts, 'number');
    }
    await ana.request({ type: 'delete', message_id: id }, 'done');
    await bob.next((m) => m.type === 'deleted' && m.id === id);
    assert.deepEqual((await search(bob, { query: after })).results.map((x) => x.id), [keep]);
});
