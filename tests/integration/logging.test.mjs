// The log: --log-format json writes one JSON object a line (time, level,
// event, peer, conn, nick, room, msg); logins, joins and leaves are logged
// at info, and past 20 lines a second they are summarized, not dropped.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { join, login, startServer, uniq } from './helpers.mjs';
import { waitLog } from './tls-helpers.mjs';

const T = { timeout: 60000 };

// Option diagnostics come before the log is set up, as "tertulia: ..." lines
// (here: the harness's own TERTULIA_BIN variable, ignored); the rest is log.
function jsonLines(text) {
    return text.split('\n').filter((l) => l !== '' && !l.startsWith('tertulia: ')).map((l) => {
        try {
            return JSON.parse(l);
        } catch {
            assert.fail(`not a JSON line: ${l}`);
        }
    });
}

test('--log-format json: every line is an object; logins, joins and leaves carry peer, conn, nick and room', T, async () => {
    const s = await startServer(['--db', ':memory:', '--log-format', 'json', '--resume-seconds', '0']);
    try {
        const room = uniq('#Log');
        const ana = await login(s, uniq('ana'), { room });
        const ben = await login(s, uniq('ben'));
        await join(ben, room);
        await ana.request({ type: 'leave', room }, 'left');
        await waitLog(s, /"event":"leave"/);
        const lines = jsonLines(s.stderr);
        for (const l of lines) {
            assert.equal(typeof l.time, 'string');
            assert.match(l.time, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
            assert.ok(['debug', 'info', 'warn', 'error'].includes(l.level), JSON.stringify(l));
            assert.equal(typeof l.event, 'string');
            assert.equal(typeof l.msg, 'string');
        }
        assert.ok(lines.some((l) => l.event === 'log' && /^listening on /.test(l.msg)));
        const logins = lines.filter((l) => l.event === 'login');
        assert.deepEqual(logins.map((l) => l.nick), [ana.nickname, ben.nickname]);
        for (const l of logins) {
            assert.equal(l.level, 'info');
            assert.match(l.peer, /^127\.0\.0\.1:\d+$/);
            assert.equal(typeof l.conn, 'number');
            assert.equal(l.msg, 'logged in as a guest');
        }
        assert.notEqual(logins[0].conn, logins[1].conn);
        const joins = lines.filter((l) => l.event === 'join');
        // The room's one spelling, whoever typed it how.
        assert.deepEqual(joins.map((l) => [l.nick, l.room]), [[ana.nickname, room], [ben.nickname, room]]);
        const leave = lines.find((l) => l.event === 'leave');
        assert.equal(leave.nick, ana.nickname);
        assert.equal(leave.room, room);
        assert.equal(leave.msg, 'leave');
        assert.equal(leave.conn, logins[0].conn);
        await Promise.all([ana.close(), ben.close()]);
    } finally {
        await s.stopClean();
    }
});

test('text format: events as key=value words; past 20 a second they are counted in a summary', T, async () => {
    const s = await startServer(['--db', ':memory:', '--resume-seconds', '0', '--rate-limit', '0']);
    try {
        const N = 60;
        const clients = [];
        for (let i = 0; i < N; i++) clients.push(await login(s, uniq('crowd')));
        const logged = () => (s.stderr.match(/ INFO  login peer=127\.0\.0\.1:\d+ conn=\d+ nick=crowd\S* logged in as a guest$/gm) || []).length;
        const summarized = () => {
            let n = 0;
            for (const m of s.stderr.matchAll(/ INFO  summary .*?: (\d+) logins, \d+ joins, \d+ leaves in the last \d+ s$/gm)) n += Number(m[1]);
            return n;
        };
        // Every login is accounted for: written, or counted in a summary
        // (which the next second's tick writes).
        if (logged() < N) await waitLog(s, / INFO  summary /);
        await new Promise((resolve, reject) => {
            const t0 = Date.now();
            const check = () => {
                if (logged() + summarized() === N) return resolve();
                if (Date.now() - t0 > 10000) return reject(new Error(`logged ${logged()} + summarized ${summarized()} != ${N}`));
                s.proc.stderr.once('data', check);
            };
            check();
        });
        // No one-second window has more than 20 event lines.
        const perSecond = new Map();
        for (const m of s.stderr.matchAll(/^(\S{19})\.\d{3}Z INFO  (login|join|leave) /gm)) perSecond.set(m[1], (perSecond.get(m[1]) ?? 0) + 1);
        for (const [sec, n] of perSecond) assert.ok(n <= 40, `${n} lines in ${sec}`);
        assert.ok(logged() <= N);
        await Promise.all(clients.map((c) => c.close()));
    } finally {
        await s.stopClean();
    }
});
