// The cluster's publish script (src/cluster/publish.lua) through a real
// Redis, without a node: loaded with SCRIPT LOAD and run by EVALSHA exactly
// as a node calls it (the cluster spec, "The publish script"). Ids increase
// across rooms and privates, sequence numbers per room, the payload goes to
// the room's stream and channel, trimming, the id and seq floors, the
// deadline, and a private between accounts stored in its conversation. Also the harness itself (tests/integration/redis.mjs): the mini
// RESP2 client, pause/resume and a restart with AOF on, which the node
// tests rely on.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, beforeEach, test } from 'node:test';

import { bounded } from './helpers.mjs';
import { parsePayload, procState, redisClient, startRedis, streamEntries } from './redis.mjs';

const T = { timeout: 30000 };
const SCRIPT = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'src', 'cluster', 'publish.lua');

let redis;
let rc; // the test's view of Redis
let sha;

before(async () => {
    redis = await startRedis();
    rc = redisClient(redis.port);
    sha = await rc.cmd('SCRIPT', 'LOAD', fs.readFileSync(SCRIPT, 'utf8'));
    assert.match(sha, /^[0-9a-f]{40}$/, 'SCRIPT LOAD answers the SHA-1');
});

after(async () => {
    await rc?.close();
    await redis?.stop();
});

// Every test starts from an empty Redis (the script stays loaded: FLUSHALL
// does not flush scripts).
beforeEach(async () => {
    assert.equal(await rc.cmd('FLUSHALL'), 'OK');
});

const keys = (room) => [`tt:room:${room}:seq`, `tt:room:${room}:log`];

/** The script for a room message, as a node runs it; resolves to [id, seq]. */
function publishRoom(room, body, { deadline = 0, idFloor = 0, maxlen = 0, seqFloor = 0 } = {}) {
    return rc.cmd('EVALSHA', sha, 3, 'tt:id', ...keys(room), deadline, idFloor, `tt:room:${room}`, body, maxlen, seqFloor);
}

/** The script for a private message's id; resolves to [id, 0]. */
function publishPrivate({ deadline = 0, idFloor = 0 } = {}) {
    return rc.cmd('EVALSHA', sha, 1, 'tt:id', deadline, idFloor);
}

/** Redis's clock in ms, as a node reads it for its deadlines. */
async function redisNowMs() {
    const [s, us] = await rc.cmd('TIME');
    return Number(s) * 1000 + Math.floor(Number(us) / 1000);
}

/** A body as a node builds it: `<ts> <node> <token> <from> <room> <mentions> <text>`. */
function body(token, room, text, mentions = '-') {
    return `${Date.now()} n1 ${token} ana ${room} ${mentions} ${text}`;
}

test('ids strictly increase across rooms and privates (one counter, tt:id)', T, async () => {
    const got = [];
    for (let i = 0; i < 10; i++) {
        const room = i % 2 ? 'alpha' : 'beta';
        const [id, seq] = await publishRoom(room, body(i, room, `m${i}`));
        got.push(id);
        assert.ok(seq > 0, 'a room message gets a sequence number');
        const p = await publishPrivate();
        assert.equal(p.length, 2);
        assert.equal(p[1], 0, 'a private message gets seq 0');
        got.push(p[0]);
    }
    assert.deepEqual(got, Array.from({ length: 20 }, (_, i) => i + 1), 'ids are 1, 2, 3, ... on a fresh Redis, rooms and privates alike');
    assert.equal(await rc.cmd('GET', 'tt:id'), '20', 'tt:id holds the last id');
});

test('seq is per room: 1, 2, 3, ... in each room', T, async () => {
    const seqs = { alpha: [], beta: [] };
    for (const room of ['alpha', 'alpha', 'beta', 'alpha', 'beta', 'beta', 'alpha']) {
        const [, seq] = await publishRoom(room, body(1, room, 'x'));
        seqs[room].push(seq);
    }
    assert.deepEqual(seqs.alpha, [1, 2, 3, 4]);
    assert.deepEqual(seqs.beta, [1, 2, 3]);
    assert.equal(await rc.cmd('GET', 'tt:room:alpha:seq'), '4');
    assert.equal(await rc.cmd('GET', 'tt:room:beta:seq'), '3');
});

test('the payload "<seq> <id> <body>" is in the stream entry <id>-0 (field m) and on the room channel', T, async () => {
    const sub = redisClient(redis.port, { label: 'subscriber' });
    try {
        await sub.subscribe('tt:room:gamma');
        // The body is opaque to the script: spaces, newlines, UTF-8 pass as they are.
        const bodies = [body(1, 'Gamma', 'hello world'), body(2, 'Gamma', 'two\nlines  and  spaces', 'ana,ben'), body(3, 'Gamma', 'ñandú 🦜')];
        const sent = [];
        for (const b of bodies) {
            const [id, seq] = await publishRoom('gamma', b);
            sent.push({ id, seq, payload: `${seq} ${id} ${b}` });
        }
        for (const s of sent) {
            const m = await sub.messages.next(() => true);
            assert.deepEqual(m, { channel: 'tt:room:gamma', message: s.payload }, 'the channel carries the payload, in order');
        }
        const entries = await rc.cmd('XRANGE', 'tt:room:gamma:log', '-', '+');
        assert.deepEqual(entries, sent.map((s) => [`${s.id}-0`, ['m', s.payload]]), 'the stream holds one entry per message: ID <id>-0, field m = payload');
        // The node's fields survive the round trip.
        const p = parsePayload(sent[1].payload);
        assert.equal(p.text, 'two\nlines  and  spaces');
        assert.equal(p.mentions, 'ana,ben');
        assert.equal(p.seq, 2);
    } finally {
        await sub.close();
    }
});

test('trimming keeps exactly maxlen entries, the newest; maxlen 0 keeps everything', T, async () => {
    const ids = [];
    for (let i = 0; i < 12; i++) ids.push((await publishRoom('trim', body(i, 'trim', `t${i}`), { maxlen: 5 }))[0]);
    const kept = await streamEntries(rc, 'trim');
    assert.equal(await rc.cmd('XLEN', 'tt:room:trim:log'), 5);
    assert.deepEqual(kept.map((e) => e.id), ids.slice(-5), 'the newest 5 stay');
    assert.deepEqual(kept.map((e) => e.text), ['t7', 't8', 't9', 't10', 't11']);
    assert.equal(kept.at(-1).seq, 12, 'trimming does not touch the sequence');

    for (let i = 0; i < 12; i++) await publishRoom('all', body(i, 'all', `a${i}`), { maxlen: 0 });
    assert.equal(await rc.cmd('XLEN', 'tt:room:all:log'), 12, 'maxlen 0: no trimming');
});

test("the index of stored messages: a room message's id names its stream (tt:idx:<id/100>, field id % 100); what trimming drops leaves it; a live private's id is not indexed", T, async () => {
    const where = (id) => rc.cmd('HGET', `tt:idx:${Math.floor(id / 100)}`, id % 100);
    const ids = [];
    for (let i = 0; i < 8; i++) ids.push((await publishRoom(i % 2 ? 'ix' : 'iy', body(i, 'ix', `x${i}`), { maxlen: 3 }))[0]);
    const [pid] = await publishPrivate();
    // Each room keeps its newest 3; the index holds exactly those.
    for (const [i, id] of ids.entries()) {
        const room = i % 2 ? 'ix' : 'iy';
        assert.equal(await where(id), i >= 2 ? `tt:room:${room}:log` : null, `message ${id} (${i}) in ${room}`);
    }
    assert.equal(await where(pid), null, 'a private with no stream is not indexed');
    // Enough ids to fill buckets: every stored one indexed, the trimmed ones gone, no bucket left behind.
    for (let i = 0; i < 250; i++) ids.push((await publishRoom('iz', body(i, 'iz', `z${i}`), { maxlen: 10 }))[0]);
    const kept = ids.slice(-10);
    for (const id of kept) assert.equal(await where(id), 'tt:room:iz:log');
    const fields = [];
    for (const k of await rc.cmd('KEYS', 'tt:idx:*')) fields.push(...(await rc.cmd('HKEYS', k)).map((f) => Number(k.slice(7)) * 100 + Number(f)));
    assert.deepEqual(fields.filter((id) => ids.includes(id) && !kept.includes(id) && id > ids[7]).length, 0, 'trimmed ids left the index');
});

test('the id floor and the seq floor keep ids and seqs above what a node saw, even after Redis lost its keys', T, async () => {
    let last;
    for (let i = 0; i < 5; i++) last = await publishRoom('delta', body(i, 'delta', `d${i}`));
    const [seenId, seenSeq] = last;
    assert.deepEqual(last, [5, 5]);

    // Redis loses everything (no persistence, a restart): the node still
    // knows the highest id and the room's last seq it saw.
    await rc.cmd('FLUSHALL');
    const [id, seq] = await publishRoom('delta', body(6, 'delta', 'after the loss'), { idFloor: seenId, seqFloor: seenSeq });
    assert.equal(id, seenId + 1, 'the id continues above the floor');
    assert.equal(seq, seenSeq + 1, 'the seq continues above the floor');
    assert.equal(await rc.cmd('GET', 'tt:id'), String(id), 'tt:id is raised to the new id');
    assert.equal(await rc.cmd('GET', 'tt:room:delta:seq'), String(seq), 'the seq key is raised to the new seq');
    // Without floors the counters go on from there.
    assert.deepEqual(await publishRoom('delta', body(7, 'delta', 'next')), [id + 1, seq + 1]);

    // A private's id obeys the floor too.
    const [pid, pseq] = await publishPrivate({ idFloor: 1000 });
    assert.deepEqual([pid, pseq], [1001, 0]);
    assert.equal(await rc.cmd('GET', 'tt:id'), '1001');

    // A floor below the counters changes nothing.
    assert.deepEqual(await publishRoom('delta', body(8, 'delta', 'low floors'), { idFloor: 3, seqFloor: 2 }), [1002, seq + 2]);
});

test('a deadline in the past: TT_LATE, and nothing changes (tt:id, seq, stream, channel)', T, async () => {
    const sub = redisClient(redis.port, { label: 'subscriber' });
    try {
        await sub.subscribe('tt:room:eps');
        await publishRoom('eps', body(1, 'eps', 'before'));
        await sub.messages.next(() => true);
        const state = async () => [await rc.cmd('GET', 'tt:id'), await rc.cmd('GET', 'tt:room:eps:seq'), await rc.cmd('XRANGE', 'tt:room:eps:log', '-', '+')];
        const was = await state();

        const past = (await redisNowMs()) - 1000;
        await assert.rejects(publishRoom('eps', body(2, 'eps', 'too late'), { deadline: past }), (err) => {
            assert.match(err.message, /^TT_LATE\b/, 'the error starts with TT_LATE');
            return true;
        });
        await assert.rejects(publishPrivate({ deadline: past }), { message: /^TT_LATE\b/ }, 'a private past its deadline is refused too');
        assert.deepEqual(await state(), was, 'tt:id, the seq and the stream are unchanged');

        // Nothing was published: the next message on the channel is the
        // next accepted one (a later reply, not a timer).
        const future = (await redisNowMs()) + 10000;
        const [id, seq] = await publishRoom('eps', body(3, 'eps', 'in time'), { deadline: future });
        assert.deepEqual([id, seq], [2, 2], 'a deadline in the future works, and the late ones used no id or seq');
        const m = await sub.messages.next(() => true);
        assert.equal(parsePayload(m.message).text, 'in time', 'the late message never reached the channel');
        assert.equal(sub.messages.items.length, 0);
    } finally {
        await sub.close();
    }
});

/**
 * A full private, as a node publishes it: to the recipient's channel, the
 * sender's, with the conversation's key and both folded names; resolves
 * to [id, receivers, stored].
 */
function publishDm(from, to, text, { node = 'n1', maxlen = 0, cutoff = 0, ts = Date.now() } = {}) {
    const [f, t] = [from.toLowerCase(), to.toLowerCase()];
    const key = `@${[f, t].sort().join('@')}`;
    return rc.cmd('EVALSHA', sha, 1, 'tt:id', 0, 0, `tt:user:${t}`, `tt:user:${f}`, `${ts} ${node} 1 ${from} ${to} - ${text}`, key, f, t, node, maxlen, cutoff);
}

test('a private between accounts is stored in its conversation (named as the account spells itself); with a guest it is not', T, async () => {
    await rc.cmd('SET', 'tt:acct:nick:ana', 1);
    await rc.cmd('HSET', 'tt:acct:1', 'nick', 'Ana');
    await rc.cmd('SET', 'tt:acct:nick:ben', 2);
    await rc.cmd('HSET', 'tt:acct:2', 'nick', 'Ben');
    await rc.cmd('HSET', 'tt:nick:ana', 'n1', 'a');
    const sub = redisClient(redis.port, { label: 'subscriber' });
    try {
        await sub.subscribe('tt:user:ana');
        // Ben has no connection: stored, so published to the sender too.
        const [id1, got1, stored1] = await publishDm('Ana', 'BEN', 'hola');
        assert.deepEqual([got1, stored1], [0, 1]);
        const echo = parsePayload((await sub.messages.next(() => true)).message);
        assert.deepEqual([echo.id, echo.from, echo.room, echo.text], [id1, 'Ana', 'Ben', 'hola'], 'the recipient as its account spells itself');
        const [id2] = await publishDm('Ben', 'ana', 'two\nlines');
        const log = await rc.cmd('XRANGE', 'tt:dm:@ana@ben:log', '-', '+');
        assert.deepEqual(log.map(([e, f]) => [e, f[0], parsePayload(f[1]).room, parsePayload(f[1]).text]), [
            [`${id1}-0`, 'm', 'Ben', 'hola'],
            [`${id2}-0`, 'm', 'Ana', 'two\nlines'],
        ]);
        assert.deepEqual(await rc.cmd('ZRANGE', 'tt:dms:ana', 0, -1, 'WITHSCORES'), ['@ana@ben', String(id2)]);
        assert.deepEqual(await rc.cmd('HGETALL', 'tt:dms:ana:with'), ['@ana@ben', 'Ben']);
        assert.deepEqual(await rc.cmd('HGETALL', 'tt:dms:ben:with'), ['@ana@ben', 'Ana']);
        assert.deepEqual(await rc.cmd('ZRANGE', 'tt:dm:@ana@ben:by:ana', 0, -1), [String(id1)]);
        assert.deepEqual(await rc.cmd('ZRANGE', 'tt:dm:@ana@ben:by:ben', 0, -1), [String(id2)]);
        // maxlen trims the stream and the unread sets with it.
        const t0 = Date.now();
        const [id3] = await publishDm('Ana', 'Ben', 'three', { maxlen: 1, ts: t0 - 6000 });
        assert.deepEqual((await rc.cmd('XRANGE', 'tt:dm:@ana@ben:log', '-', '+')).map(([e]) => e), [`${id3}-0`]);
        assert.deepEqual(await rc.cmd('ZRANGE', 'tt:dm:@ana@ben:by:ana', 0, -1), [String(id3)]);
        assert.equal(await rc.cmd('EXISTS', 'tt:dm:@ana@ben:by:ben'), 0);
        // The cutoff trims the older entries (the oldest 16 at most, so a
        // growing conversation keeps pace): 20 old ones, then a new one.
        for (let i = 0; i < 20; i++) await publishDm('Ana', 'Ben', `old ${i}`, { ts: t0 - 5000 + i });
        const [id5] = await publishDm('Ana', 'Ben', 'five', { ts: t0, cutoff: t0 - 1000 });
        const left = (await rc.cmd('XRANGE', 'tt:dm:@ana@ben:log', '-', '+')).map(([, f]) => parsePayload(f[1]).text);
        assert.deepEqual(left, ['old 15', 'old 16', 'old 17', 'old 18', 'old 19', 'five']);
        const [id6] = await publishDm('Ana', 'Ben', 'six', { ts: t0, cutoff: t0 - 1000 });
        assert.deepEqual((await rc.cmd('XRANGE', 'tt:dm:@ana@ben:log', '-', '+')).map(([e]) => e), [`${id5}-0`, `${id6}-0`]);
        // The index names the conversation's stream for what it keeps, and
        // forgets what maxlen and the cutoff dropped.
        const where = (id) => rc.cmd('HGET', `tt:idx:${Math.floor(id / 100)}`, id % 100);
        for (const id of [id5, id6]) assert.equal(await where(id), 'tt:dm:@ana@ben:log');
        for (const id of [id1, id2, id3]) assert.equal(await where(id), null, `message ${id} left the index`);
        assert.deepEqual(await rc.cmd('ZRANGE', 'tt:dm:@ana@ben:by:ana', 0, -1), [String(id5), String(id6)]);
        // A guest sender (its node's claim), a recipient that is no
        // account, or one a guest holds: live only; with nobody on the
        // recipient's channel, nothing goes to the sender's.
        await rc.cmd('SET', 'tt:acct:nick:gus', 3);
        await rc.cmd('HSET', 'tt:nick:gus', 'n1', 'g');
        await rc.cmd('HSET', 'tt:nick:ben', 'n2', 'g');
        for (const [from, to] of [
            ['Ana', 'Zed'],
            ['Ana', 'Ben'],
            ['Gus', 'Ana'],
        ]) {
            assert.deepEqual((await publishDm(from, to, `live ${from}`)).slice(1), [to === 'Ana' ? 1 : 0, 0], `${from} to ${to}`);
        }
        assert.equal(await rc.cmd('EXISTS', 'tt:dm:@ana@gus:log', 'tt:dm:@ana@zed:log'), 0);
        assert.equal(await rc.cmd('XLEN', 'tt:dm:@ana@ben:log'), 2);
        // Ana's channel, in order: the stored ones (as the sender), then
        // Gus's, and nothing of the two between.
        const onAna = [];
        while (onAna[onAna.length - 1] !== 'live Gus') onAna.push(parsePayload((await sub.messages.next(() => true)).message).text);
        assert.deepEqual(onAna.slice(-2), ['six', 'live Gus']);
    } finally {
        await sub.close();
    }
});

test('harness: the mini client pipelines, parses every reply type, rejects Redis errors', T, async () => {
    // Pipelined: all written before any reply is read, answered in order.
    const replies = await Promise.all([
        rc.cmd('SET', 'k', 'v'),
        rc.cmd('GET', 'k'),
        rc.cmd('GET', 'missing'),
        rc.cmd('INCR', 'n'),
        rc.cmd('RPUSH', 'l', 'a', 'b c', ''),
        rc.cmd('LRANGE', 'l', 0, -1),
        rc.cmd('XRANGE', 'nostream', '-', '+'),
    ]);
    assert.deepEqual(replies, ['OK', 'v', null, 1, 3, ['a', 'b c', ''], []]);
    await assert.rejects(rc.cmd('INCR', 'k'), { message: /^ERR value is not an integer/ });
    await assert.rejects(rc.cmd('NOSUCHCOMMAND'), { message: /^ERR unknown command/ });
    assert.equal(await rc.cmd('PING'), 'PONG', 'the connection survives an error reply');
    // A large bulk reply arrives in several TCP reads.
    const big = 'x'.repeat(300000);
    await rc.cmd('SET', 'big', big);
    assert.equal(await rc.cmd('GET', 'big'), big);
});

test('harness: pause stops the process, resume lets the reply come; a restart with AOF keeps the data', T, async () => {
    const r = await startRedis({ appendonly: true, fsync: 'always' });
    const c = redisClient(r.port);
    try {
        assert.match(r.url, /^redis:\/\/127\.0\.0\.1:\d+\/0$/);
        assert.equal(await c.cmd('SET', 'kept', '42'), 'OK');
        await r.pause();
        assert.equal(procState(r.pid), 'T', 'the process is stopped');
        const late = c.cmd('PING');
        await r.resume();
        assert.notEqual(procState(r.pid), 'T', 'the process runs again');
        assert.equal(await bounded(late, 5000, 'PONG after resume'), 'PONG');

        const port = r.port;
        const pid = r.pid;
        await r.restart();
        assert.equal(r.port, port, 'same port');
        assert.notEqual(r.pid, pid, 'a new process');
        await assert.rejects(c.cmd('PING'), /connection (closed|error)/, 'the old connection ended with the old process');
        const c2 = redisClient(r.port);
        assert.equal(await c2.cmd('GET', 'kept'), '42', 'AOF kept the data across the restart');
        await c2.close();
    } finally {
        await c.close();
        await r.stop();
    }
});

test('harness: a Redis with a password (AUTH first, the URL carries it) and a unix socket', T, async () => {
    const r = await startRedis({ password: 'tt-test-pw', unixSocket: true });
    try {
        assert.equal(r.url, `redis://:tt-test-pw@127.0.0.1:${r.port}/0`);
        assert.ok(fs.statSync(r.socket).isSocket(), 'the unix socket is in its folder');
        const c = r.client();
        assert.equal(await c.cmd('PING'), 'PONG', 'client() authenticates');
        await c.close();
        const anon = redisClient(r.port);
        await assert.rejects(anon.cmd('GET', 'x'), { message: /^NOAUTH/ });
        await anon.close();
        const wrong = redisClient(r.port, { password: 'nope' });
        await assert.rejects(wrong.cmd('PING'), /AUTH refused: WRONGPASS/);
        await wrong.close();
    } finally {
        await r.stop();
    }
});
