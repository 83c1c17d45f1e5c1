// Every limit is a command-line option with a default, listed in --help and
// in the README's options table, and reported to clients in welcome.limits;
// options out of range are refused at start-up. Also --max-rooms, whose
// refusal (too_many_rooms) no other file drives through the real binary.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';

import { BIN, join, login, startServer, uniq } from './helpers.mjs';

const README = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'README.md');

// option → the welcome.limits key it sets and how the value reads there.
const LIMITS = [
    ['--max-message', '100000', 'max_message', 100000],
    ['--max-text', '2000', 'max_text', 2000],
    ['--max-queue', '300000', 'max_queue', 300000],
    ['--max-rooms', '7', 'max_rooms', 7],
    ['--max-connections', '500', 'max_connections', 500],
    ['--max-per-ip', '40', 'max_per_ip', 40],
    ['--head-timeout', '4', 'head_timeout_ms', 4000],
    ['--ping-interval', '25', 'ping_interval_ms', 25000],
    ['--rate-burst', '8', 'rate_burst', 8],
    ['--rate-limit', '2.5', 'rate_limit', 2.5],
    ['--history-on-join', '30', 'history_on_join', 30],
];

test('welcome.limits reports every limit, as configured', async () => {
    const server = await startServer(LIMITS.flatMap(([opt, value]) => [opt, value]));
    try {
        const c = await login(server, uniq('lim'));
        const l = c.welcome.limits;
        for (const [opt, , key, expected] of LIMITS) assert.equal(l[key], expected, `${opt} → limits.${key} (${JSON.stringify(l)})`);
        // Derived and fixed limits are there too.
        assert.equal(l.request_burst, 8 * 5);
        assert.equal(l.request_rate_limit, 2.5 * 5);
        assert.equal(l.flood_strikes, 100);
        assert.equal(l.flood_window_ms, 10000);
        assert.equal(l.max_head, 8192);
        assert.equal(l.max_nickname, 32);
        assert.equal(l.max_room_name, 64);
        assert.equal(l.max_id, 64);
        assert.equal(l.history_max, 200);
        for (const [k, v] of Object.entries(l)) assert.ok(typeof v === 'number' && v >= 0, `limits.${k} is a number: ${v}`);
        await c.close();
    } finally {
        await server.stopClean();
    }
});

test('the defaults are reported too', async () => {
    const server = await startServer();
    try {
        const c = await login(server, uniq('def'));
        const l = c.welcome.limits;
        const expected = { max_message: 65536, max_text: 4096, max_queue: 1048576, max_rooms: 100, max_per_ip: 1000, head_timeout_ms: 10000, ping_interval_ms: 30000, rate_burst: 20, rate_limit: 10, request_burst: 100, request_rate_limit: 50 };
        for (const [k, v] of Object.entries(expected)) assert.equal(l[k], v, `default limits.${k}`);
        assert.ok(l.max_connections > 0, 'max_connections comes from the open-file limit');
        await c.close();
    } finally {
        await server.stopClean();
    }
});

test('--help and the README list every limit option with its default', () => {
    const help = spawnSync(BIN, ['--help'], { encoding: 'utf8' });
    assert.equal(help.status, 0);
    const readme = fs.readFileSync(README, 'utf8');
    for (const [opt] of LIMITS) {
        const i = help.stdout.indexOf(`  ${opt} `);
        assert.ok(i >= 0, `--help lists ${opt}`);
        // The option's text runs to the next option line.
        const rest = help.stdout.slice(i + 3);
        const text = rest.slice(0, rest.search(/\n {2}--/) + 1 || undefined);
        assert.match(text, /default/, `--help gives the default of ${opt}:\n${text}`);
        const row = readme.split('\n').find((line) => line.startsWith(`| \`${opt} `));
        assert.ok(row, `README's options table has a row for ${opt}`);
        assert.ok(row.split('|').length >= 5 && row.split('|')[2].trim().length > 0, `README gives the default of ${opt}: ${row}`);
    }
    for (const opt of ['--allowed-origin']) {
        assert.ok(help.stdout.includes(`  ${opt} `), `--help lists ${opt}`);
        assert.ok(readme.includes(`| \`${opt} `), `README lists ${opt}`);
    }
});

test('limit options out of range are refused at start-up', () => {
    for (const args of [['--rate-limit', '-1'], ['--rate-limit', 'fast'], ['--rate-limit', '1e9'], ['--rate-burst', '0'], ['--max-per-ip', '-3'], ['--head-timeout', '0'], ['--max-connections', '0']]) {
        const r = spawnSync(BIN, ['--listen', '127.0.0.1:0', ...args], { encoding: 'utf8', timeout: 5000 });
        assert.equal(r.status, 2, `${args.join(' ')} → exit ${r.status}; ${r.stderr}`);
        assert.match(r.stderr, new RegExp(args[0]), `${args.join(' ')}: the message names the option`);
    }
});

test('--max-rooms: one room too many is too_many_rooms, and the connection keeps working', async () => {
    const server = await startServer(['--max-rooms', '2']);
    try {
        const r = [uniq('r1'), uniq('r2'), uniq('r3')];
        const c = await login(server, uniq('roomy'), { room: r[0] });
        await join(c, r[1]);
        const e = await c.expectError({ type: 'join', room: r[2] }, 'too_many_rooms');
        assert.match(e.message, /2 rooms/);
        await c.request({ type: 'leave', room: r[0] }, 'left');
        await join(c, r[2]);
        c.send({ type: 'room', to: r[2], message: { text: 'made it' } });
        assert.equal((await c.next('room')).message.text, 'made it');
        await c.close();
    } finally {
        await server.stopClean();
    }
});
