// Message history as clients see it: what survives a restart, what a joiner
// gets, what a reconnecting client recovers with `since`, paging backwards
// with `history`, retention, and the database failures a server meets (a
// damaged file at start-up, a full disk while running, a second server on
// the same file). Each server gets its own database in a temporary folder,
// given with --db, so restarts find the same history and nothing is shared
// with other tests.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';

import { BIN, join, login, sleep, startServer, uniq } from './helpers.mjs';

const T = { timeout: 60000 };

const dirs = [];
const servers = [];
after(async () => {
    // A test that failed half-way may have left a server (and clients on
    // it) running: stop it, so the sockets end and the file can finish.
    for (const s of servers) if (!s.exitInfo) await s.stop('SIGKILL');
    for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});

/** startServer, remembered for the clean-up above. */
async function start(args) {
    const s = await startServer(args);
    servers.push(s);
    return s;
}

/** A fresh folder for a database that outlives one server. */
function dbDir() {
    const d = fs.mkdtempSync(path.join(os.tmpdir(), 'tertulia-hist-'));
    dirs.push(d);
    return d;
}

let reqSeq = 0;

/**
 * Sends a request with a fresh id and resolves to the reply of replyType or
 * to the error carrying its ref. A `rate_limited` refusal (the server's
 * flood control) is waited out and the request sent again, so these tests
 * measure history, not the rate limit.
 */
async function ask(client, req, replyType) {
    for (let attempt = 0; attempt < 200; attempt++) {
        const id = `h${++reqSeq}`;
        client.send({ ...req, id });
        const m = await client.next((x) => (x.type === replyType || x.type === 'error') && x.ref === id);
        if (m.type === 'error' && m.code === 'rate_limited') {
            await sleep(Math.min(Math.max(m.retry_after_ms ?? 100, 10), 2000));
            continue;
        }
        return m;
    }
    throw new Error(`${client.label}: still rate limited after 200 attempts`);
}

/** Sends a room message and resolves to its id (from the ack), or the error. */
async function say(client, room, text) {
    const m = await ask(client, { type: 'room', to: room, message: { text } }, 'ack');
    if (m.type === 'error') return m;
    return m.message_id;
}

/** Sends texts to room from clients in turn (each client one after the other, clients in parallel); resolves to [{id, text, from}] in id order. */
async function sayAll(clients, room, texts) {
    const shares = clients.map(() => []);
    texts.forEach((t, i) => shares[i % clients.length].push(t));
    const out = [];
    await Promise.all(clients.map(async (c, k) => {
        for (const text of shares[k]) {
            const id = await say(c, room, text);
            assert.equal(typeof id, 'number', `${c.label}: ${text} was refused: ${JSON.stringify(id)}`);
            out.push({ id, text, from: c.nickname });
        }
    }));
    return out.sort((a, b) => a.id - b.id);
}

/** Drops the live copies of room messages from a client's inbox. */
function dropLive(client) {
    client.inbox.items = client.inbox.items.filter((m) => m.type !== 'room');
}

/** Every message of room, paging backwards with `history` (limit per page); checks each page. */
async function readAll(client, room, limit = 200) {
    const pages = [];
    let before;
    for (let i = 0; i < 1000; i++) {
        const req = { type: 'history', room, limit };
        if (before !== undefined) req.before = before;
        const h = await ask(client, req, 'history');
        assert.equal(h.type, 'history', JSON.stringify(h));
        assert.equal(h.room, room);
        assert.ok(h.messages.length <= Math.min(limit, 200), `a page holds at most ${Math.min(limit, 200)}`);
        pages.unshift(h.messages);
        if (!h.more) break;
        assert.ok(h.messages.length > 0, 'a page with more=true is not empty');
        before = h.messages[0].id;
    }
    return pages.flat();
}

function ids(msgs) {
    return msgs.map((m) => m.id);
}

function assertIncreasing(list, what) {
    for (let i = 1; i < list.length; i++) assert.ok(list[i] > list[i - 1], `${what}: ids increase (${list[i - 1]} then ${list[i]})`);
}

/**
 * kill -9 and wait for the exit. The helpers unref the server process, so a
 * timer keeps this process alive meanwhile (and bounds the wait).
 */
async function kill9(server, timeoutMs = 10000) {
    server.proc.kill('SIGKILL');
    let timer;
    const late = new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`server not gone ${timeoutMs} ms after SIGKILL`)), timeoutMs);
    });
    try {
        return await Promise.race([server.exited, late]);
    } finally {
        clearTimeout(timer);
    }
}

/** Runs the server binary to completion (it is expected to refuse to start). */
function runToExit(args, cwd) {
    return spawnSync(BIN, ['--listen', '127.0.0.1:0', ...args], { cwd, encoding: 'utf8', timeout: 15000 });
}

test('messages survive a restart, with their ids, senders, times and texts, and new ids continue after them', T, async () => {
    const db = path.join(dbDir(), 'h.db');
    const room = uniq('#keep');
    let s = await start(['--db', db]);
    const ana = await login(s, uniq('ana'), { room });
    const sent = await sayAll([ana], room, ['uno', 'dos', 'tres', 'cuatro']);
    const before = await readAll(ana, room);
    assert.deepEqual(before.map((m) => m.message.text), ['uno', 'dos', 'tres', 'cuatro']);
    await ana.close();
    await s.stopClean();

    s = await start(['--db', db]);
    const ben = await login(s, uniq('ben'), { room });
    assert.deepEqual(ben.joined.history, before, 'joined.history after the restart is what was stored');
    assert.equal(ben.joined.more, false);
    for (const m of ben.joined.history) {
        assert.equal(m.type, 'room');
        assert.equal(m.to, room);
        assert.equal(m.from, ana.nickname);
    }
    const next = await say(ben, room, 'cinco');
    assert.ok(next > sent.at(-1).id, `the first id after the restart (${next}) is above the last stored (${sent.at(-1).id})`);
    await ben.close();
    await s.stopClean();

    // And once more, after a kill -9 (no clean close of the database).
    s = await start(['--db', db]);
    const cy = await login(s, uniq('cy'), { room });
    assert.deepEqual(cy.joined.history.map((m) => m.message.text), ['uno', 'dos', 'tres', 'cuatro', 'cinco']);
    const six = await say(cy, room, 'seis');
    await kill9(s);
    s = await start(['--db', db]);
    const dee = await login(s, uniq('dee'), { room });
    assert.deepEqual(dee.joined.history.at(-1).id, six);
    const seven = await say(dee, room, 'siete');
    assert.ok(seven > six);
    await dee.close();
    await s.stopClean();
});

test('one room whatever the spelling: its history survives the room and a restart, named as the room is named now', T, async () => {
    const db = path.join(dbDir(), 'fold.db');
    let s = await start(['--db', db]);
    const base = uniq('Cased');
    const ana = await login(s, uniq('ana'), { room: `#${base}` });
    const first = await say(ana, `#${base}`, 'under #Cased');
    await ana.close();
    await s.stop();
    s = await start(['--db', db]);
    const ben = await login(s, uniq('ben'), { room: base.toLowerCase() });
    assert.equal(ben.joined.room, base.toLowerCase(), 'named by its new creator');
    assert.deepEqual(ids(ben.joined.history), [first]);
    assert.equal(ben.joined.history[0].to, base.toLowerCase());
    const later = await say(ben, base.toUpperCase(), 'under CASED');
    const h = await ben.request({ type: 'history', room: `#${base.toUpperCase()}` }, 'history');
    assert.deepEqual(ids(h.messages), [first, later]);
    await ben.close();
});

test('joined.history holds the room\'s last --history-on-join messages, oldest first, with more', T, async () => {
    const s = await start(['--db', path.join(dbDir(), 'h.db'), '--history-on-join', '5']);
    try {
        const room = uniq('#last');
        const ana = await login(s, uniq('ana'), { room });
        assert.equal(ana.welcome.limits.history_on_join, 5, 'welcome.limits reports the option');
        const sent = await sayAll([ana], room, ['a1', 'a2', 'a3', 'a4', 'a5', 'a6', 'a7', 'a8']);
        const ben = await login(s, uniq('ben'), { room });
        assert.deepEqual(ids(ben.joined.history), ids(sent.slice(-5)));
        assert.deepEqual(ben.joined.history.map((m) => m.message.text), ['a4', 'a5', 'a6', 'a7', 'a8']);
        assert.equal(ben.joined.more, true, 'older messages remain');
        // A room with fewer messages than the limit: all of them, more=false.
        const other = uniq('#few');
        await join(ana, other);
        await sayAll([ana], other, ['b1', 'b2']);
        const j = await join(ben, other);
        assert.deepEqual(j.history.map((m) => m.message.text), ['b1', 'b2']);
        assert.equal(j.more, false);
        // Another room's messages never leak into this one.
        assert.ok(j.history.every((m) => m.to === other));
        await Promise.all([ana.close(), ben.close()]);
    } finally {
        await s.stopClean();
    }
});

test('--history-on-join 0 sends an empty joined.history; history requests still work', T, async () => {
    const s = await start(['--db', path.join(dbDir(), 'h.db'), '--history-on-join', '0']);
    try {
        const room = uniq('#none');
        const ana = await login(s, uniq('ana'), { room });
        await sayAll([ana], room, ['x', 'y']);
        const ben = await login(s, uniq('ben'), { room });
        assert.deepEqual(ben.joined.history, []);
        const h = await ask(ben, { type: 'history', room }, 'history');
        assert.deepEqual(h.messages.map((m) => m.message.text), ['x', 'y']);
        await Promise.all([ana.close(), ben.close()]);
    } finally {
        await s.stopClean();
    }
});

test('a client that reconnects with since gets exactly the messages it missed, once each', T, async () => {
    const s = await start(['--db', path.join(dbDir(), 'h.db')]);
    try {
        const room = uniq('#back');
        const ana = await login(s, uniq('ana'), { room });
        const benNick = uniq('ben');
        let ben = await login(s, benNick, { room });
        await sayAll([ana], room, ['seen1', 'seen2', 'seen3']);
        // ben reads up to seen3 live, then loses the line.
        let last;
        for (let i = 0; i < 3; i++) last = await ben.next((m) => m.type === 'room');
        assert.equal(last.message.text, 'seen3');
        await ben.terminate();
        const missed = await sayAll([ana], room, ['m1', 'm2', 'm3', 'm4', 'm5', 'm6', 'm7']);
        // Meanwhile another room moves on too: it must not show up.
        const elsewhere = uniq('#elsewhere');
        await join(ana, elsewhere);
        await sayAll([ana], elsewhere, ['not yours']);

        // Back as the same guest (its nickname is held for the grace time).
        ben = await login(s, benNick, { resume: ben.resume });
        const j = await join(ben, room, { since: last.id });
        assert.deepEqual(ids(j.history), ids(missed), 'exactly the missed messages, oldest first');
        assert.deepEqual(j.history.map((m) => m.message.text), missed.map((m) => m.text));
        assert.equal(j.more, false);
        // Live traffic continues after them, without a duplicate.
        const after = await say(ana, room, 'live');
        const live = await ben.next((m) => m.type === 'room');
        assert.equal(live.id, after);
        await ben.expectNothing(200, (m) => m.type === 'room');

        // since = the newest id: nothing missed.
        const j2 = await join(ben, room, { since: after });
        assert.deepEqual(j2.history, []);
        assert.equal(j2.more, false);
        await Promise.all([ana.close(), ben.close()]);
    } finally {
        await s.stopClean();
    }
});

test('when more were missed than joined returns, more=true and history before the first id fills the gap exactly', T, async () => {
    const s = await start(['--db', path.join(dbDir(), 'h.db'), '--history-on-join', '4']);
    try {
        const room = uniq('#gap');
        const senders = [await login(s, uniq('ana'), { room }), await login(s, uniq('eva'), { room })];
        const first = await sayAll(senders, room, ['old1', 'old2']);
        const since = first.at(-1).id;
        const texts = Array.from({ length: 23 }, (_, i) => `missed ${i}`);
        const missed = await sayAll(senders, room, texts);
        const ben = await login(s, uniq('ben'));
        const j = await join(ben, room, { since });
        assert.deepEqual(ids(j.history), ids(missed.slice(-4)), 'the newest 4 after since');
        assert.equal(j.more, true);
        // Fill the gap backwards, small pages, until since is reached.
        const recovered = [...j.history];
        let before = j.history[0].id;
        for (let i = 0; i < 100; i++) {
            const h = await ask(ben, { type: 'history', room, before, limit: 5 }, 'history');
            const fresh = h.messages.filter((m) => m.id > since);
            recovered.unshift(...fresh);
            if (fresh.length < h.messages.length || !h.more) break;
            before = h.messages[0].id;
        }
        assert.deepEqual(ids(recovered), ids(missed), 'every missed message once, in order');
        assert.deepEqual(recovered.map((m) => m.message.text), missed.map((m) => m.text));
        await Promise.all([...senders, ben].map((c) => c.close()));
    } finally {
        await s.stopClean();
    }
});

test('history paging with before and limit returns every message once, in order', T, async () => {
    const s = await start(['--db', path.join(dbDir(), 'h.db')]);
    try {
        const room = uniq('#pages');
        const clients = [];
        for (let i = 0; i < 6; i++) clients.push(await login(s, uniq(`p${i}`), { room }));
        const texts = Array.from({ length: 233 }, (_, i) => `page text ${i} ${'·'.repeat(i % 7)}`);
        const sent = await sayAll(clients, room, texts);
        assertIncreasing(ids(sent), 'acks');
        for (const limit of [1, 7, 50, 200, 1000]) {
            const all = await readAll(clients[0], room, limit);
            assert.deepEqual(ids(all), ids(sent), `limit ${limit}: every message once, in id order`);
            assert.deepEqual(all.map((m) => m.message.text), sent.map((m) => m.text));
            assert.deepEqual(all.map((m) => m.from), sent.map((m) => m.from));
        }
        // No before: the newest; a limit over 200 is served as 200.
        const newest = await ask(clients[1], { type: 'history', room, limit: 1000 }, 'history');
        assert.equal(newest.messages.length, 200);
        assert.deepEqual(ids(newest.messages), ids(sent.slice(-200)));
        assert.equal(newest.more, true);
        // before the very first id: nothing, more=false.
        const none = await ask(clients[1], { type: 'history', room, before: sent[0].id }, 'history');
        assert.deepEqual(none.messages, []);
        assert.equal(none.more, false);
        await Promise.all(clients.map((c) => c.close()));
    } finally {
        await s.stopClean();
    }
});

test('private messages are delivered live and stored nowhere', T, async () => {
    const db = path.join(dbDir(), 'h.db');
    let s = await start(['--db', db]);
    const room = uniq('#pm');
    const ana = await login(s, uniq('ana'), { room });
    const ben = await login(s, uniq('ben'), { room });
    const pid = await ask(ana, { type: 'private', to: ben.nickname, message: { text: 'secreto' } }, 'ack');
    assert.equal(pid.type, 'ack');
    const got = await ben.next((m) => m.type === 'private');
    assert.equal(got.message.text, 'secreto');
    await say(ana, room, 'público');
    const h = await readAll(ben, room);
    assert.deepEqual(h.map((m) => m.message.text), ['público']);
    await Promise.all([ana.close(), ben.close()]);
    await s.stopClean();
    const out = spawnSync('python3', ['-c', 'import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute("select count(*) from messages where text like ?", ("%secreto%",)).fetchone()[0])', db], { encoding: 'utf8' });
    if (out.status === 0) assert.equal(out.stdout.trim(), '0', 'the private text is nowhere in the file');
});

test('--retain-messages keeps the newest N of each room; ids still continue after the deleted ones', T, async () => {
    const db = path.join(dbDir(), 'h.db');
    const a = uniq('#ra');
    const b = uniq('#rb');
    let s = await start(['--db', db]);
    const ana = await login(s, uniq('ana'), { room: a });
    await join(ana, b);
    const inA = await sayAll([ana], a, Array.from({ length: 10 }, (_, i) => `a${i}`));
    const inB = await sayAll([ana], b, ['b0', 'b1']);
    await ana.close();
    await s.stopClean();

    // The first retention pass runs at start-up, in the background.
    s = await start(['--db', db, '--retain-messages', '4']);
    try {
        const ben = await login(s, uniq('ben'), { room: a });
        await join(ben, b);
        let hist;
        for (let i = 0; i < 100; i++) {
            hist = await readAll(ben, a);
            if (hist.length <= 4) break;
            await sleep(50);
        }
        assert.deepEqual(ids(hist), ids(inA.slice(-4)), 'the newest 4 of the busy room are kept');
        assert.deepEqual(ids(await readAll(ben, b)), ids(inB), 'a room under the limit keeps everything');
        const next = await say(ben, b, 'b2');
        assert.ok(next > inB.at(-1).id && next > inA.at(-1).id);
        await ben.close();
    } finally {
        await s.stopClean();
    }
});

test('--retain-days deletes messages older than D days and keeps the rest', T, async (t) => {
    const py = spawnSync('python3', ['-c', 'import sqlite3'], { encoding: 'utf8' });
    if (py.status !== 0) {
        t.skip('python3 with sqlite3 is needed to age stored messages');
        return;
    }
    const db = path.join(dbDir(), 'h.db');
    const room = uniq('#days');
    let s = await start(['--db', db]);
    const ana = await login(s, uniq('ana'), { room });
    const sent = await sayAll([ana], room, ['old0', 'old1', 'old2', 'new0', 'new1']);
    await ana.close();
    await s.stopClean();
    // Age the first three by three days, as if they had been sent then.
    const age = spawnSync('python3', ['-c', [
        'import sqlite3, sys',
        'c = sqlite3.connect(sys.argv[1])',
        'c.execute("update messages set ts = ts - 3 * 86400000 where id <= ?", (int(sys.argv[2]),))',
        'c.commit()',
    ].join('\n'), db, String(sent[2].id)], { encoding: 'utf8' });
    assert.equal(age.status, 0, age.stderr);

    s = await start(['--db', db, '--retain-days', '2']);
    try {
        const ben = await login(s, uniq('ben'), { room });
        let hist;
        for (let i = 0; i < 100; i++) {
            hist = await readAll(ben, room);
            if (hist.length <= 2) break;
            await sleep(50);
        }
        assert.deepEqual(hist.map((m) => m.message.text), ['new0', 'new1']);
        await ben.close();
    } finally {
        await s.stopClean();
    }
});

test('a full database refuses new messages with unavailable, delivers them to nobody, and the server stays up', T, async () => {
    const s = await start(['--db', path.join(dbDir(), 'h.db'), '--db-max-bytes', '96K']);
    try {
        const room = uniq('#full');
        const ana = await login(s, uniq('ana'), { room });
        const ben = await login(s, uniq('ben'), { room });
        const big = 'x'.repeat(3000);
        const stored = [];
        let refusal = null;
        for (let i = 0; i < 200 && refusal === null; i++) {
            const r = await say(ana, room, `${i} ${big}`);
            if (typeof r === 'number') stored.push(r);
            else refusal = r;
        }
        assert.ok(refusal !== null, 'the cap was reached within 200 messages of 3 KB');
        assert.equal(refusal.code, 'unavailable', JSON.stringify(refusal));
        assert.ok(stored.length > 0, 'messages were stored before the cap');
        // ben got every stored message and not the refused one.
        const live = [];
        for (let i = 0; i < stored.length; i++) live.push((await ben.next((m) => m.type === 'room')).id);
        assert.deepEqual(live, stored);
        await ben.expectNothing(300, (m) => m.type === 'room');
        // Still full: refused again; the server answers everything else.
        const again = await say(ben, room, `again ${big}`);
        assert.equal(again.code, 'unavailable');
        const pong = await ask(ana, { type: 'ping' }, 'pong');
        assert.equal(pong.type, 'pong');
        const h = await readAll(ben, room);
        assert.deepEqual(ids(h), stored, 'history holds exactly what was delivered');
        const fresh = await login(s, uniq('cy'), { room });
        assert.equal(fresh.joined.history.at(-1).id, stored.at(-1));
        assert.match(s.stderr, /cannot store 1 message/);
        await Promise.all([ana.close(), ben.close(), fresh.close()]);
    } finally {
        await s.stopClean();
    }
});

test('--db :memory: keeps history while the process runs and writes no file', T, async () => {
    let s = await start(['--db', ':memory:']);
    const room = uniq('#mem');
    const ana = await login(s, uniq('ana'), { room });
    const sent = await sayAll([ana], room, ['m1', 'm2']);
    const ben = await login(s, uniq('ben'), { room });
    assert.deepEqual(ids(ben.joined.history), ids(sent));
    assert.deepEqual(fs.readdirSync(s.cwd), [], 'nothing written in the working directory');
    await Promise.all([ana.close(), ben.close()]);
    await s.stopClean();
    s = await start(['--db', ':memory:']);
    const cy = await login(s, uniq('cy'), { room });
    assert.deepEqual(cy.joined.history, [], 'a new process starts empty');
    await cy.close();
    await s.stopClean();
});

test('without --db the history is ./data/tertulia.db in the working directory', T, async () => {
    const s = await start([]);
    try {
        const ana = await login(s, uniq('ana'), { room: uniq('#default') });
        await ana.close();
        assert.ok(fs.statSync(path.join(s.cwd, 'data', 'tertulia.db')).isFile());
        assert.match(s.stderr, /message history in \.\/data\/tertulia\.db/);
    } finally {
        await s.stopClean();
    }
});

test('a damaged or unreachable database stops the start-up with a clear error naming the file', T, async () => {
    const d = dbDir();
    const garbage = path.join(d, 'garbage.db');
    fs.writeFileSync(garbage, 'this is not a database, just text long enough to be read '.repeat(100));
    let r = runToExit(['--db', garbage], d);
    assert.equal(r.status, 1, `exit status (signal ${r.signal}); stderr: ${r.stderr}`);
    assert.ok(r.stderr.includes(garbage), r.stderr);
    assert.match(r.stderr, /not a database/);
    assert.doesNotMatch(r.stderr, /listening on/);

    const file = path.join(d, 'plain');
    fs.writeFileSync(file, 'x');
    r = runToExit(['--db', path.join(file, 'h.db')], d);
    assert.equal(r.status, 1, r.stderr);
    assert.match(r.stderr, /is not a directory/);

    // A real database with a page overwritten in the middle.
    const db = path.join(d, 'damaged.db');
    const s = await start(['--db', db]);
    const ana = await login(s, uniq('ana'), { room: '#dmg' });
    await sayAll([ana], '#dmg', Array.from({ length: 40 }, (_, i) => `${i} ${'y'.repeat(900)}`));
    await ana.close();
    await s.stopClean();
    const fd = fs.openSync(db, 'r+');
    const size = fs.fstatSync(fd).size;
    assert.ok(size >= 4096 * 4, `the database has pages to damage (${size} bytes)`);
    fs.writeSync(fd, Buffer.alloc(4096 * 2, 0xa5), 0, 4096 * 2, 4096 * 2);
    fs.closeSync(fd);
    r = runToExit(['--db', db], d);
    assert.equal(r.status, 1, `exit status (signal ${r.signal}); stderr: ${r.stderr}`);
    assert.ok(r.stderr.includes(db), r.stderr);
    assert.match(r.stderr, /malformed|damaged|corrupt|not a database/i);
});

test('a second server on the same database refuses to start; the first keeps serving', T, async () => {
    const d = dbDir();
    const db = path.join(d, 'h.db');
    const s = await start(['--db', db]);
    try {
        const r = runToExit(['--db', db], d);
        assert.equal(r.status, 1, r.stderr);
        assert.ok(r.stderr.includes(db), r.stderr);
        assert.match(r.stderr, /in use by another process/);
        const room = uniq('#one');
        const ana = await login(s, uniq('ana'), { room });
        assert.equal(typeof (await say(ana, room, 'still here')), 'number');
        await ana.close();
    } finally {
        await s.stopClean();
    }
});
