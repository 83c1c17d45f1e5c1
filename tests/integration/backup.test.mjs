// tertulia backup --db FILE OUT: a consistent copy of a live database. A
// server runs on a file; messages are acknowledged; then the backup runs
// while a client keeps sending. The copy (read with the sqlite3 shell) must
// pass integrity_check, hold every message acknowledged before the backup
// started, hold exactly the count the backup printed, and agree with the
// server's own file on every message it holds; a second server must start on
// it. An existing OUT is refused without --force.

import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { promisify } from 'node:util';

import { BIN, join, login, startServer, uniq } from './helpers.mjs';

const run = promisify(execFile);
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tertulia-backup-'));
after(() => fs.rmSync(dir, { recursive: true, force: true }));

let reqSeq = 0;
/** Sends a room message; resolves to its id from the ack. */
async function say(client, room, text) {
    const id = `b${++reqSeq}`;
    client.send({ type: 'room', to: room, message: { text }, id });
    const m = await client.next((x) => (x.type === 'ack' || x.type === 'error') && x.ref === id);
    assert.equal(m.type, 'ack', `${text.slice(0, 20)}: ${JSON.stringify(m)}`);
    return m.message_id;
}

/** Rows of a query on a database file, with the sqlite3 shell (JSON mode). */
function sql(file, query) {
    const r = spawnSync('sqlite3', ['-json', '-readonly', file, query], { encoding: 'utf8', maxBuffer: 1 << 28 });
    assert.equal(r.status, 0, `sqlite3 ${query}: ${r.stderr}`);
    return r.stdout.trim() === '' ? [] : JSON.parse(r.stdout);
}

// A text of about 3 KB, so the database spans many backup steps (256 pages).
const filler = 'x'.repeat(3000);

test('a backup of a running server that keeps writing holds every acknowledged message', { timeout: 120000 }, async () => {
    const db = path.join(dir, 'live.db');
    const out = path.join(dir, 'copy.db');
    const server = await startServer(['--db', db, '--rate-limit', '0']);
    const room = uniq('bk');
    try {
        const writers = await Promise.all([0, 1, 2, 3].map((k) => login(server, uniq(`w${k}`), { room })));
        const acked = new Map();
        // 4 clients in parallel, 100 messages each: about 1.2 MB of history.
        await Promise.all(writers.map(async (c, k) => {
            for (let i = 0; i < 100; i++) {
                const text = `before ${k}.${i} ${filler}`;
                acked.set(await say(c, room, text), text);
            }
        }));
        assert.equal(acked.size, 400);

        // One client keeps sending for as long as the backup runs.
        const sender = await login(server, uniq('s'));
        await join(sender, room);
        let sending = true;
        let during = 0;
        const loop = (async () => {
            for (let i = 0; sending; i++) {
                await say(sender, room, `during ${i}`);
                during++;
            }
        })();
        // The first message of the loop is acknowledged: writes are going on.
        while (during === 0) await sender.next((x) => x.type === 'room' && x.message.text.startsWith('during'));
        const startedAt = during;
        const r = await run(BIN, ['backup', '--db', db, out], { encoding: 'utf8' });
        const endedAt = during;
        sending = false;
        await loop;
        const m = /: (\d+) messages\n$/.exec(r.stdout);
        assert.ok(m, `backup's output: ${r.stdout} ${r.stderr}`);
        const copied = Number(m[1]);
        assert.ok(endedAt > startedAt, `the server kept acknowledging during the backup (${startedAt} -> ${endedAt})`);

        assert.deepEqual(sql(out, 'PRAGMA integrity_check'), [{ integrity_check: 'ok' }]);
        const rows = sql(out, `SELECT id, text FROM messages WHERE room = '${room}' ORDER BY id`);
        assert.equal(rows.length, copied, 'the count printed is the count copied');
        const inCopy = new Map(rows.map((row) => [row.id, row.text]));
        for (const [id, text] of acked) assert.equal(inCopy.get(id), text, `message ${id} acknowledged before the backup`);
        assert.ok(copied >= 400 + startedAt, `copied ${copied}: the 400 and the ${startedAt} 'during' ones acknowledged before it started`);
        // A moment of the server's history: the copy is a prefix of the ids.
        const live = sql(db, `SELECT id, text FROM messages WHERE room = '${room}' ORDER BY id LIMIT ${rows.length}`);
        assert.deepEqual(live, rows, 'the copy is the server\'s history up to one moment');
        assert.ok(!fs.existsSync(`${out}.partial`), 'no partial file left');
        assert.ok(!fs.existsSync(`${out}-wal`), 'the copy is one file');
        for (const c of [...writers, sender]) await c.close();
    } finally {
        await server.stopClean();
    }

    // A second server starts on the copy and serves its history.
    const second = await startServer(['--db', out]);
    try {
        assert.match(second.stderr, /message history in .*copy\.db/);
        const c = await login(second, uniq('r'));
        const j = await join(c, room);
        assert.ok(j.history.length > 0, 'the copy\'s history is served');
        await c.close();
    } finally {
        await second.stopClean();
    }
});

test('an existing OUT is refused without --force, replaced with it', async () => {
    const db = path.join(dir, 'small.db');
    const out = path.join(dir, 'small-copy.db');
    const server = await startServer(['--db', db]);
    try {
        const room = uniq('bk');
        const c = await login(server, uniq('a'), { room });
        await say(c, room, 'one');
        fs.writeFileSync(out, 'not a backup');
        const refused = spawnSync(BIN, ['backup', '--db', db, out], { encoding: 'utf8' });
        assert.equal(refused.status, 1, refused.stderr);
        assert.match(refused.stderr, /exists \(--force replaces it\)/);
        assert.equal(fs.readFileSync(out, 'utf8'), 'not a backup', 'OUT untouched');
        const forced = spawnSync(BIN, ['backup', '--force', '--db', db, out], { encoding: 'utf8' });
        assert.equal(forced.status, 0, forced.stderr);
        assert.match(forced.stdout, /: 1 messages\n$/);
        assert.deepEqual(sql(out, 'SELECT text FROM messages'), [{ text: 'one' }]);
        await c.close();
    } finally {
        await server.stopClean();
    }
    const usage = spawnSync(BIN, ['backup', out], { encoding: 'utf8' });
    assert.equal(usage.status, 2);
    assert.match(usage.stderr, /--db FILE is needed/);
    const missing = spawnSync(BIN, ['backup', '--db', path.join(dir, 'none.db'), path.join(dir, 'x.db')], { encoding: 'utf8' });
    assert.equal(missing.status, 1);
    assert.match(missing.stderr, /none\.db.*cannot open/);
});
