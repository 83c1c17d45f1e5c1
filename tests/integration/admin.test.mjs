// The admin API (/admin/api/…) and --admin-listen: the credential
// (--admin-token-file: 401 without it, 403 with a wrong one, read again on
// SIGHUP), what each resource reports against what the clients did, the
// disconnect (1008 on the wire, counted in /metrics) and the log level;
// with --admin-listen, metrics, health and admin live on that address only.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';

import { BIN, HOST, httpOnce, join, login, parseMetrics, startServer, uniq, upgradeRequest } from './helpers.mjs';
import { waitLog } from './tls-helpers.mjs';

const T = { timeout: 60000 };
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tertulia-admin-'));
after(() => fs.rmSync(dir, { recursive: true, force: true }));

let tokenCount = 0;
function tokenFile(token = `t${Date.now()}-${++tokenCount}-${Math.random().toString(36).slice(2)}`) {
    const file = path.join(dir, `token-${++tokenCount}`);
    fs.writeFileSync(file, `${token}\n`, { mode: 0o600 });
    return { file, token };
}

function api(base, p, { token, method = 'GET', headers = {} } = {}) {
    const h = { ...headers };
    if (token !== undefined) h.authorization = `Bearer ${token}`;
    return fetch(`${base}/admin/api/${p}`, { method, headers: h });
}

async function json(r, status) {
    const body = await r.text();
    assert.equal(r.status, status, `status ${r.status}: ${body}`);
    assert.match(r.headers.get('content-type'), /^application\/json/);
    assert.equal(r.headers.get('cache-control'), 'no-store');
    return JSON.parse(body);
}

async function metrics(base) {
    const r = await fetch(`${base}/metrics`);
    assert.equal(r.status, 200);
    return parseMetrics(await r.text());
}

test('without --admin-token-file there is no admin page or API (404), and metrics stay', T, async () => {
    const s = await startServer(['--db', ':memory:']);
    try {
        for (const p of ['/admin', '/admin/', '/admin/api/stats', '/admin/index.html']) {
            const r = await fetch(`${s.url}${p}`, { headers: { authorization: 'Bearer whatever-it-is-16' } });
            assert.equal(r.status, 404, p);
            await r.text();
        }
        assert.equal((await fetch(`${s.url}/healthz`)).status, 200);
        await waitLog(s, /no admin page: no --admin-token-file/);
    } finally {
        await s.stopClean();
    }
});

test('the API refuses without the credential (401, WWW-Authenticate) and with a wrong one (403)', T, async () => {
    const { file, token } = tokenFile();
    const s = await startServer(['--db', ':memory:', '--admin-token-file', file]);
    try {
        await waitLog(s, new RegExp(`admin page: http://127\\.0\\.0\\.1:${s.port}/admin/`));
        for (const p of ['stats', 'rooms', 'connections', 'log-level', 'connections/1/close', 'nothing']) {
            const none = await api(s.url, p);
            const e = await json(none, 401);
            assert.equal(e.error, 'unauthorized');
            assert.equal(none.headers.get('www-authenticate'), 'Bearer realm="tertulia admin"');
            const basic = await api(s.url, p, { headers: { authorization: `Basic ${Buffer.from(`admin:${token}`).toString('base64')}` } });
            assert.equal((await json(basic, 401)).error, 'unauthorized');
            for (const wrong of [token.slice(0, -1), `${token}x`, token.toUpperCase(), 'x']) {
                if (wrong === token) continue;
                assert.equal((await json(await api(s.url, p, { token: wrong }), 403)).error, 'forbidden', `${p} with ${wrong}`);
            }
        }
        // A log-level change without the right token changes nothing.
        await json(await api(s.url, 'log-level?level=debug', { method: 'POST', token: 'not-the-token-at-all' }), 403);
        assert.equal((await json(await api(s.url, 'log-level', { token }), 200)).log_level, 'info');
        // A CORS preflight cannot pass: the API answers no OPTIONS.
        const pre = await fetch(`${s.url}/admin/api/stats`, { method: 'OPTIONS', headers: { origin: 'http://evil.example', 'access-control-request-headers': 'authorization' } });
        assert.ok(pre.status === 401 || pre.status === 405, `preflight: ${pre.status}`);
        assert.equal(pre.headers.get('access-control-allow-origin'), null);
        await pre.text();
        // /admin redirects to /admin/, where the page's relative URLs work.
        const redirect = await fetch(`${s.url}/admin`, { redirect: 'manual' });
        assert.equal(redirect.status, 308);
        assert.equal(redirect.headers.get('location'), '/admin/');
        await redirect.text();
        const m = await metrics(s.url);
        assert.ok(m.get('tertulia_http_responses_total{status="401"}') >= 12);
        assert.ok(m.get('tertulia_http_responses_total{status="403"}') >= 18);
        assert.equal(m.get('tertulia_http_responses_total{status="308"}'), 1);
    } finally {
        await s.stopClean();
    }
});

test('stats, rooms and connections report what the clients did; disconnect closes with 1008', T, async () => {
    const { file, token } = tokenFile();
    const s = await startServer(['--db', ':memory:', '--admin-token-file', file]);
    try {
        const s0 = await json(await api(s.url, 'stats', { token }), 200);
        assert.equal(s0.connections.websocket, 0);
        assert.equal(s0.version.length > 0, true);
        assert.ok(s0.uptime_s >= 0 && s0.uptime_s < 60);
        assert.ok(Math.abs(s0.time_ms - Date.now()) < 60000);

        const room = uniq('Adm');
        const ana = await login(s, uniq('ana'), { room });
        const ben = await login(s, uniq('ben'));
        await join(ben, room);
        for (let i = 0; i < 5; i++) await ana.request({ type: 'room', to: room, message: { text: `m${i}` } }, 'ack');
        for (let i = 0; i < 5; i++) await ben.next((m) => m.type === 'room' && m.message.text === `m${i}`);
        await ana.request({ type: 'private', to: ben.nickname, message: { text: 'psst' } }, 'ack');
        await ben.next((m) => m.type === 'private');

        const s1 = await json(await api(s.url, 'stats', { token }), 200);
        assert.equal(s1.connections.websocket, 2);
        assert.equal(s1.connections.v1, 2);
        assert.equal(s1.connections.legacy, 0);
        assert.equal(s1.sessions, 2);
        assert.equal(s1.users, 2);
        assert.equal(s1.rooms, 1);
        assert.equal(s1.messages.accepted.room - s0.messages.accepted.room, 5);
        assert.equal(s1.messages.accepted.private - s0.messages.accepted.private, 1);
        assert.equal(s1.messages.delivered.room - s0.messages.delivered.room, 10);
        assert.ok(s1.bytes.in > s0.bytes.in && s1.bytes.out > s0.bytes.out);
        assert.ok(s1.delivery.count > s0.delivery.count, 'deliveries are timed');
        assert.ok(s1.loop.count > s0.loop.count && s1.loop.sum_us > 0, 'loop iterations are timed');
        assert.equal(typeof s1.queue_bytes, 'number');

        const rooms = await json(await api(s.url, 'rooms', { token }), 200);
        assert.equal(rooms.total, 1);
        assert.equal(rooms.truncated, false);
        assert.deepEqual(rooms.rooms.map((r) => [r.members, r.connections]), [[2, 2]]);
        assert.equal(rooms.rooms[0].name.replace(/^#/, '').toLowerCase(), room.replace(/^#/, '').toLowerCase());

        const conns = await json(await api(s.url, 'connections', { token }), 200);
        assert.equal(conns.total, 2);
        assert.equal(conns.truncated, false);
        const byNick = new Map(conns.connections.map((c) => [c.nick, c]));
        const a = byNick.get(ana.nickname);
        assert.ok(a, `ana listed: ${JSON.stringify(conns)}`);
        assert.ok(byNick.get(ben.nickname));
        assert.equal(a.kind, 'v1');
        assert.equal(a.tls, false);
        assert.match(a.address, /^127\.0\.0\.1:\d+$/);
        assert.ok(Number.isInteger(a.id) && a.id > 0);
        assert.ok(a.age_s >= 0 && a.age_s < 60);
        assert.ok(a.messages_in >= 7, `login, join, 5 room, 1 private: ${a.messages_in}`);
        assert.ok(a.bytes_out > 0);
        assert.equal(typeof a.queue_bytes, 'number');

        // Disconnect: ana's connection gets 1008 with the reason; ben stays.
        const m0 = await metrics(s.url);
        const closed = await json(await api(s.url, `connections/${a.id}/close`, { method: 'POST', token }), 200);
        assert.deepEqual(closed, { closed: a.id });
        const info = await ana.waitClose();
        assert.equal(info.code, 1008);
        assert.equal(info.reason, 'closed by an administrator');
        await waitLog(s, new RegExp(`connection ${a.id} \\(127\\.0\\.0\\.1:\\d+, ${ana.nickname}\\) closed by the admin API`));
        await ben.request({ type: 'ping' }, 'pong');
        // Gone from the list (the server closed TCP after the handshake).
        for (let i = 0; i < 100; i++) {
            const after = await json(await api(s.url, 'connections', { token }), 200);
            if (after.total === 1) break;
            await new Promise((r) => setImmediate(r));
        }
        const left = await json(await api(s.url, 'connections', { token }), 200);
        assert.deepEqual(left.connections.map((c) => c.nick), [ben.nickname]);
        const m1 = await metrics(s.url);
        const key = 'tertulia_websocket_closes_total{code="1008",by="server"}';
        assert.equal(m1.get(key) - (m0.get(key) ?? 0), 1);
        // Closing it again, or a number that was never a connection: 404.
        assert.equal((await json(await api(s.url, `connections/${a.id}/close`, { method: 'POST', token }), 404)).error, 'not_found');
        assert.equal((await json(await api(s.url, 'connections/99999999/close', { method: 'POST', token }), 404)).error, 'not_found');
        assert.equal((await json(await api(s.url, 'connections/x1/close', { method: 'POST', token }), 404)).error, 'not_found');
        // Methods: reading resources are GET only, the actions POST only.
        assert.equal((await json(await api(s.url, `connections/${a.id}/close`, { token }), 405)).error, 'method_not_allowed');
        const post = await api(s.url, 'stats', { method: 'POST', token });
        assert.equal(post.headers.get('allow'), 'GET, HEAD');
        await json(post, 405);
        assert.equal((await json(await api(s.url, 'no-such-thing', { token }), 404)).error, 'not_found');
        // A request body is refused before anything is done.
        const body = await fetch(`${s.url}/admin/api/log-level?level=debug`, { method: 'POST', body: 'x', headers: { authorization: `Bearer ${token}` } });
        assert.equal(body.status, 400);
        await body.text();
        assert.equal((await json(await api(s.url, 'log-level', { token }), 200)).log_level, 'info');
        await ben.close();
    } finally {
        await s.stopClean();
    }
});

test('the log level changes live from the API, and a bad level is refused', T, async () => {
    const { file, token } = tokenFile();
    const s = await startServer(['--db', ':memory:', '--admin-token-file', file]);
    try {
        assert.equal((await json(await api(s.url, 'log-level?level=loud', { method: 'POST', token }), 400)).error, 'bad_request');
        assert.equal((await json(await api(s.url, 'log-level', { method: 'POST', token }), 400)).error, 'bad_request');
        assert.deepEqual(await json(await api(s.url, 'log-level?level=debug', { method: 'POST', token }), 200), { log_level: 'debug' });
        await waitLog(s, /log level set to debug by the admin API \(127\.0\.0\.1:\d+\)/);
        // Debug lines now appear: a 404 is logged at debug.
        await (await fetch(`${s.url}/no-such-page-${tokenCount}`)).text();
        await waitLog(s, new RegExp(`DEBUG .*404 /no-such-page-${tokenCount}`));
        assert.equal((await json(await api(s.url, 'stats', { token }), 200)).log_level, 'debug');
        await json(await api(s.url, 'log-level?level=warn', { method: 'POST', token }), 200);
        assert.equal((await json(await api(s.url, 'log-level', { token }), 200)).log_level, 'warn');
    } finally {
        await s.stopClean();
    }
});

test('SIGHUP reads the token file again; a bad file keeps the token in use', T, async () => {
    const first = tokenFile();
    const s = await startServer(['--db', ':memory:', '--admin-token-file', first.file]);
    try {
        await json(await api(s.url, 'stats', { token: first.token }), 200);
        const next = 'second-token-0123456789abcdef';
        fs.writeFileSync(first.file, `${next}\n`);
        s.proc.kill('SIGHUP');
        await waitLog(s, /SIGHUP: admin token read again from .*: changed/);
        await json(await api(s.url, 'stats', { token: first.token }), 403);
        await json(await api(s.url, 'stats', { token: next }), 200);
        fs.writeFileSync(first.file, 'short\n');
        s.proc.kill('SIGHUP');
        await waitLog(s, /SIGHUP: keeping the admin token in use: the admin token in .* must be 16 to 256 characters/);
        await json(await api(s.url, 'stats', { token: next }), 200);
    } finally {
        await s.stopClean();
    }
});

test('a token file that is missing, empty, short or not printable stops the start (exit 2)', () => {
    const cases = [
        [path.join(dir, 'no-such-file'), /cannot read the admin token file .*no-such-file: No such file/],
        [tokenFile('').file, /must be 16 to 256 characters/],
        [tokenFile('tooshort').file, /must be 16 to 256 characters/],
        [tokenFile('x'.repeat(257)).file, /must be 16 to 256 characters/],
        [tokenFile('has a space in the middle').file, /not printable ASCII/],
    ];
    for (const [file, re] of cases) {
        for (const extra of [[], ['--check-config']]) {
            const r = spawnSync(BIN, ['--db', ':memory:', '--listen', `${HOST}:0`, '--admin-token-file', file, ...extra], { encoding: 'utf8', timeout: 10000 });
            assert.equal(r.status, 2, `${file} ${extra}: ${r.stderr}`);
            assert.match(r.stderr, re);
        }
    }
    // Surrounding white space and a CRLF are not part of the token.
    const ok = tokenFile('  0123456789abcdef\r');
    const r = spawnSync(BIN, ['--db', ':memory:', '--admin-token-file', ok.file, '--check-config'], { encoding: 'utf8', timeout: 10000 });
    assert.equal(r.status, 0, r.stderr);
});

test('--admin-listen: metrics, health and admin only there; the chat address serves none of them', T, async () => {
    const { file, token } = tokenFile();
    const s = await startServer(['--db', ':memory:', '--admin-listen', `${HOST}:0`, '--admin-token-file', file]);
    try {
        const m = await waitLog(s, /admin address 127\.0\.0\.1:(\d+) \(metrics, health, admin page\)/);
        const admin = `http://${HOST}:${m[1]}`;
        await waitLog(s, new RegExp(`admin page: ${admin}/admin/`));
        // The chat address: the client and the chat, nothing of ops.
        assert.equal((await fetch(`${s.url}/`)).status, 200);
        for (const p of ['/metrics', '/healthz', '/readyz', '/admin/', '/admin/api/stats']) {
            const r = await fetch(`${s.url}${p}`, { headers: { authorization: `Bearer ${token}` } });
            assert.equal(r.status, 404, `chat address ${p}`);
            await r.text();
        }
        const c = await login(s, uniq('op'));
        // The admin address: ops, and nothing of the chat.
        assert.equal((await fetch(`${admin}/healthz`)).status, 200);
        assert.equal((await fetch(`${admin}/readyz`)).status, 200);
        const mm = await metrics(admin);
        assert.equal(mm.get('tertulia_connections{kind="v1"}'), 1);
        assert.equal(mm.get('tertulia_websocket_connections'), 1);
        assert.ok(mm.get('tertulia_connections_accepted_total{tls="false"}') >= 3);
        assert.ok(mm.get('tertulia_received_bytes_total') > 0);
        assert.ok(mm.get('tertulia_sent_bytes_total') > 0);
        assert.ok(mm.get('tertulia_loop_iteration_seconds_count') > 0);
        assert.equal(mm.get('tertulia_loop_iteration_seconds_bucket{le="+Inf"}'), mm.get('tertulia_loop_iteration_seconds_count'));
        assert.equal(typeof mm.get('tertulia_queued_bytes'), 'number');
        assert.ok(mm.get('tertulia_http_responses_total{status="404"}') >= 5);
        const st = await json(await api(admin, 'stats', { token }), 200);
        assert.equal(st.connections.websocket, 1);
        for (const p of ['/', '/index.html', '/app.js']) {
            const r = await fetch(`${admin}${p}`);
            assert.equal(r.status, 404, `admin address ${p}`);
            await r.text();
        }
        // No WebSocket on the admin address.
        for (const p of ['/ws', '/talking']) {
            const up = await httpOnce({ port: Number(m[1]) }, upgradeRequest(p, { 'Sec-WebSocket-Protocol': 'tertulia.v1' }).text);
            assert.equal(up.status, 404, `upgrade at ${p} on the admin address`);
        }
        await c.close();
    } finally {
        await s.stopClean();
    }
});

test('--admin-listen is an address like --listen, checked, shown by --print-config', () => {
    const bad = spawnSync(BIN, ['--admin-listen', 'nowhere', '--check-config'], { encoding: 'utf8', timeout: 10000 });
    assert.equal(bad.status, 2);
    assert.match(bad.stderr, /--admin-listen: 'nowhere' is not HOST:PORT/);
    const pc = spawnSync(BIN, ['--admin-listen', '127.0.0.1:9091', '--print-config'], { encoding: 'utf8', timeout: 10000 });
    assert.equal(pc.status, 0, pc.stderr);
    assert.match(pc.stdout, /^admin-listen = 127\.0\.0\.1:9091$/m);
    assert.match(pc.stdout, /^listen = 127\.0\.0\.1:9090$/m, 'the default chat address stays');
    const many = [];
    for (let i = 0; i < 9; i++) many.push('--listen', `127.0.0.1:${9100 + i}`, '--admin-listen', `127.0.0.1:${9200 + i}`);
    const over = spawnSync(BIN, [...many, '--check-config'], { encoding: 'utf8', timeout: 10000 });
    assert.equal(over.status, 2);
    assert.match(over.stderr, /at most 16 addresses in all/);
});
