// GET /metrics (Prometheus text, checked by promtool), /healthz and /readyz:
// the counters move by exactly what a scripted session did, and readiness
// follows the store (a database at its size cap is not ready).

import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';

import { httpOnce, join, login, parseMetrics, startServer, uniq } from './helpers.mjs';

const T = { timeout: 60000 };
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tertulia-metrics-'));
after(() => fs.rmSync(dir, { recursive: true, force: true }));

async function scrape(server) {
    const r = await fetch(`${server.url}/metrics`);
    assert.equal(r.status, 200);
    assert.match(r.headers.get('content-type'), /^text\/plain; version=0\.0\.4/);
    assert.equal(r.headers.get('cache-control'), 'no-store');
    return parseMetrics(await r.text());
}

function delta(before, now, name) {
    assert.ok(now.has(name), `${name} is exported`);
    return now.get(name) - (before.get(name) ?? 0);
}

test('/metrics counts logins, messages by kind, deliveries and refusals exactly, and passes promtool', T, async () => {
    const s = await startServer(['--resume-seconds', '0', '--db', path.join(dir, 'a.db')]);
    try {
        const m0 = await scrape(s);
        assert.ok(m0.get('tertulia_start_time_seconds') > Date.now() / 1000 - 60);
        assert.equal(m0.get('tertulia_ready'), 1);
        const room = uniq('#m');
        const ana = await login(s, uniq('ana'), { room });
        const ben = await login(s, uniq('ben'));
        await join(ben, room);
        for (let i = 0; i < 3; i++) await ana.request({ type: 'room', to: room, message: { text: `hi ${i}` } }, 'ack');
        for (let i = 0; i < 3; i++) await ben.next((m) => m.type === 'room' && m.message.text === `hi ${i}`);
        await ana.request({ type: 'private', to: ben.nickname, message: { text: 'psst' } }, 'ack');
        await ben.next((m) => m.type === 'private');
        await ana.expectError({ type: 'room', to: room }, 'bad_request');
        await ana.expectError({ type: 'nonsense' }, 'unknown_type');
        await ana.request({ type: 'ping' }, 'pong');
        await ben.request({ type: 'ping' }, 'pong');

        const m1 = await scrape(s);
        assert.equal(delta(m0, m1, 'tertulia_logins_total'), 2);
        assert.equal(delta(m0, m1, 'tertulia_messages_accepted_total{kind="room"}'), 3);
        assert.equal(delta(m0, m1, 'tertulia_messages_accepted_total{kind="private"}'), 1);
        // Every room message reaches both members (the sender too); a private
        // reaches its recipient and is echoed to its sender.
        assert.equal(delta(m0, m1, 'tertulia_messages_delivered_total{kind="room"}'), 6);
        assert.equal(delta(m0, m1, 'tertulia_messages_delivered_total{kind="private"}'), 2);
        assert.equal(delta(m0, m1, 'tertulia_refusals_total{code="bad_request"}'), 1);
        assert.equal(delta(m0, m1, 'tertulia_refusals_total{code="unknown_type"}'), 1);
        assert.equal(delta(m0, m1, 'tertulia_refusals_total{code="rate_limited"}'), 0);
        assert.equal(m1.get('tertulia_websocket_connections'), 2);
        assert.equal(m1.get('tertulia_sessions'), 2);
        assert.equal(m1.get('tertulia_users'), 2);
        assert.equal(m1.get('tertulia_rooms'), 1);
        // One commit at least, and every observation in the +Inf bucket.
        const commits = m1.get('tertulia_store_commit_seconds_count');
        assert.ok(commits >= 1 && commits <= 4, `commits: ${commits}`);
        assert.equal(m1.get('tertulia_store_commit_seconds_bucket{le="+Inf"}'), commits);
        assert.equal(m1.get('tertulia_store_errors_total'), 0);

        await Promise.all([ana.close(), ben.close()]);
    } finally {
        await s.stopClean();
    }
});

test('/healthz and /readyz answer GET and HEAD; other methods get 405', T, async () => {
    const s = await startServer(['--db', ':memory:']);
    try {
        for (const [p, body] of [['/healthz', 'ok\n'], ['/readyz', 'ready\n']]) {
            const r = await fetch(`${s.url}${p}`);
            assert.equal(r.status, 200, p);
            assert.equal(await r.text(), body);
            const h = await fetch(`${s.url}${p}`, { method: 'HEAD' });
            assert.equal(h.status, 200);
            assert.equal(h.headers.get('content-length'), String(body.length));
        }
        const post = await httpOnce(s, 'DELETE /readyz HTTP/1.1\r\nHost: x\r\n\r\n');
        assert.equal(post.status, 405);
        assert.equal(post.headers.allow, 'GET, HEAD');
    } finally {
        await s.stopClean();
    }
});

test('/readyz is 503 with the reason while the store cannot write, and ready again once it can', T, async () => {
    const s = await startServer(['--db', path.join(dir, 'full.db'), '--db-max-bytes', '96K', '--rate-limit', '0']);
    try {
        const room = uniq('#full');
        const ana = await login(s, uniq('ana'), { room });
        const big = 'x'.repeat(3000);
        let refused = null;
        for (let i = 0; i < 200 && refused === null; i++) {
            const r = await ana.request({ type: 'room', to: room, message: { text: `${i} ${big}` } }, 'ack');
            if (r.type === 'error') refused = r;
        }
        assert.ok(refused !== null, 'the cap was reached within 200 messages');
        assert.equal(refused.code, 'unavailable');
        const r = await fetch(`${s.url}/readyz`);
        assert.equal(r.status, 503);
        assert.match(await r.text(), /^not ready: the message store cannot write: /);
        const m = await scrape(s);
        assert.equal(m.get('tertulia_ready'), 0);
        assert.ok(m.get('tertulia_store_errors_total') >= 1);
        assert.ok(m.get('tertulia_refusals_total{code="unavailable"}') >= 1);
        // Alive all the same.
        assert.equal((await fetch(`${s.url}/healthz`)).status, 200);
        await ana.close();
    } finally {
        await s.stopClean();
    }
});
