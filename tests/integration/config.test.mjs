// Options from a config file (--config, INI), TERTULIA_<OPTION> environment
// variables and the command line, in that order of precedence; errors that
// name the file, line and key (exit 2); --check-config; --print-config read
// back; SIGHUP re-reading the file: the log level and the limits change
// live, an option that needs a restart is logged as such.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';

import { BIN, HOST, login, startServer, uniq } from './helpers.mjs';
import { waitLog } from './tls-helpers.mjs';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tertulia-config-'));
after(() => fs.rmSync(dir, { recursive: true, force: true }));
let nfiles = 0;
function confFile(text) {
    const file = path.join(dir, `t${nfiles++}.conf`);
    fs.writeFileSync(file, text);
    return file;
}

// The environment without any TERTULIA_ variable of the test run's own, plus env.
function cleanEnv(env = {}) {
    const out = {};
    for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('TERTULIA_')) out[k] = v;
    return { ...out, ...env };
}

function run(args, env = {}) {
    return spawnSync(BIN, args, { encoding: 'utf8', timeout: 10000, env: cleanEnv(env) });
}

async function limitsOf(args, env) {
    const server = await startServer(['--db', ':memory:', ...args], { env: cleanEnv(env) });
    try {
        const c = await login(server, uniq('cfg'));
        const l = c.welcome.limits;
        await c.close();
        return l;
    } finally {
        await server.stopClean();
    }
}

test('a config file sets options: comments, repeated keys, suffixes', async () => {
    const file = confFile('# tertulia\n; also a comment\nmax-rooms = 7\nmax-message = 100K   ; inline\nmax-queue = 2M\nrate-limit = 2.5\nallowed-origin = http://a.example\nallowed-origin = http://b.example\n');
    const l = await limitsOf(['--config', file]);
    assert.equal(l.max_rooms, 7);
    assert.equal(l.max_message, 100 * 1024);
    assert.equal(l.max_queue, 2 * 1024 * 1024);
    assert.equal(l.rate_limit, 2.5);
});

test('precedence: command line > environment > file > defaults', async () => {
    const file = confFile('max-rooms = 7\nmax-per-ip = 40\nrate-burst = 8\n');
    const env = { TERTULIA_MAX_ROOMS: '9', TERTULIA_MAX_PER_IP: '41', TERTULIA_HISTORY_ON_JOIN: '12' };
    const l = await limitsOf(['--config', file, '--max-rooms', '11'], env);
    assert.equal(l.max_rooms, 11, 'the flag wins over the variable and the file');
    assert.equal(l.max_per_ip, 41, 'the variable wins over the file');
    assert.equal(l.rate_burst, 8, 'the file wins over the default');
    assert.equal(l.history_on_join, 12, 'a variable alone');
    assert.equal(l.max_text, 4096, 'the default');
});

test('a repeatable option: a higher layer replaces the whole list', () => {
    const file = confFile('listen = 127.0.0.1:7001\nlisten = 127.0.0.1:7002\nallowed-origin = http://a.example\n');
    const fromFile = run(['--config', file, '--print-config']);
    assert.equal(fromFile.status, 0, fromFile.stderr);
    assert.match(fromFile.stdout, /\nlisten = 127\.0\.0\.1:7001\nlisten = 127\.0\.0\.1:7002\n/);
    const env = run(['--config', file, '--print-config'], { TERTULIA_LISTEN: '127.0.0.1:7003, 127.0.0.1:7004' });
    assert.match(env.stdout, /\nlisten = 127\.0\.0\.1:7003\nlisten = 127\.0\.0\.1:7004\n/);
    assert.doesNotMatch(env.stdout, /7001/);
    const cli = run(['--config', file, '--listen', '127.0.0.1:7005', '--print-config'], { TERTULIA_LISTEN: '127.0.0.1:7003' });
    assert.match(cli.stdout, /\nlisten = 127\.0\.0\.1:7005\n\n/);
    assert.match(cli.stdout, /\nallowed-origin = http:\/\/a\.example\n/, 'other lists keep the file\'s');
});

test('errors name the file, line and key, or the variable, and exit 2', () => {
    const cases = [
        ['max-rooms = 3\n\n# x\nmax-mesage = 64K\n', (f) => `tertulia: ${f}:4: max-mesage: unknown option`],
        ['max-rooms = 3\nmax-queue = 99999999999999999999K\n', (f) => `tertulia: ${f}:2: max-queue: '99999999999999999999K' is too large (at most 2147483648)`],
        ['log-level = loud\n', (f) => `tertulia: ${f}:1: log-level: 'loud' is not one of debug, info, warn, error, off`],
        ['max-rooms\n', (f) => `tertulia: ${f}:1: not a 'key = value' line`],
        ['[server]\nmax-rooms = 3\n', (f) => `tertulia: ${f}:2: [server]: sections are not used; put every key at the top`],
    ];
    for (const [text, expected] of cases) {
        const file = confFile(text);
        const r = run(['--listen', `${HOST}:0`, '--db', ':memory:', '--config', file]);
        assert.equal(r.status, 2, `${text}: ${r.stderr}`);
        assert.equal(r.stderr.trim(), expected(file));
        assert.doesNotMatch(r.stderr, /listening on/);
    }
    const missing = run(['--config', path.join(dir, 'missing.conf')]);
    assert.equal(missing.status, 2);
    assert.match(missing.stderr, /missing\.conf: cannot read: No such file or directory/);

    const env = run(['--listen', `${HOST}:0`, '--db', ':memory:'], { TERTULIA_MAX_MESSAGE: '12' });
    assert.equal(env.status, 2, env.stderr);
    assert.equal(env.stderr.trim(), "tertulia: TERTULIA_MAX_MESSAGE: '12' is not a number from 125 to 1073741824");
    // A variable of the prefix that names no option is said, and ignored.
    const typo = run(['--check-config'], { TERTULIA_MAX_MESAGE: '1M' });
    assert.equal(typo.status, 0, typo.stderr);
    assert.match(typo.stderr, /TERTULIA_MAX_MESAGE: not an option, ignored/);
});

test('--check-config: one OK line and exit 0, or the error and exit 2, before listening', () => {
    const good = confFile('max-rooms = 3\n');
    const ok = run(['--config', good, '--check-config']);
    assert.equal(ok.status, 0, ok.stderr);
    assert.equal(ok.stdout, `tertulia: configuration OK (${good})\n`);
    const bad = confFile('max-text = 70000\n');
    const r = run(['--config', bad, '--check-config']);
    assert.equal(r.status, 2);
    assert.match(r.stderr, /--max-text 70000 does not fit in --max-message 65536/);
    // The TLS files are loaded as at start.
    const garbage = path.join(dir, 'garbage.pem');
    fs.writeFileSync(garbage, 'garbage\n');
    const tls = confFile(`listen-tls = 127.0.0.1:0\ntls-cert = ${garbage}\ntls-key = ${garbage}\n`);
    const t = run(['--config', tls, '--check-config']);
    assert.equal(t.status, 2, t.stdout);
    assert.match(t.stderr, /cannot load the certificate .*garbage\.pem/);
    assert.equal(t.stdout, '');
});

test('--print-config prints every option, and reads back to the same output', () => {
    const file = confFile('max-message = 1M\nrate-limit = 0.5\nlisten = 127.0.0.1:7001\nlisten = [::1]:7002\nallowed-origin = *\necho = on\n');
    const first = run(['--config', file, '--deflate', 'off', '--print-config'], { TERTULIA_LOG_LEVEL: 'warn' });
    assert.equal(first.status, 0, first.stderr);
    for (const opt of ['listen', 'listen-tls', 'tls-cert', 'max-message', 'max-connections', 'rate-limit', 'db', 'log-level']) {
        assert.match(first.stdout, new RegExp(`\\n(# )?${opt} =`), `${opt} is printed`);
    }
    assert.match(first.stdout, /\nmax-message = 1M\n/);
    assert.match(first.stdout, /\ndeflate = off\n/);
    assert.match(first.stdout, /\nlog-level = warn\n/);
    assert.match(first.stdout, /\n# default: 64K\nmax-message/);
    const printed = confFile(first.stdout);
    const second = run(['--config', printed, '--print-config']);
    assert.equal(second.status, 0, second.stderr);
    assert.equal(second.stdout, first.stdout);
    // The defaults too.
    const defaults = run(['--print-config']);
    const third = run(['--config', confFile(defaults.stdout), '--print-config']);
    assert.equal(third.stdout, defaults.stdout);
});

test('SIGHUP re-reads the file: the log level changes live, max-message is logged as needing a restart', async () => {
    const file = confFile('log-level = info\nmax-rooms = 5\n');
    const server = await startServer(['--db', ':memory:', '--config', file], { env: cleanEnv() });
    try {
        const get = (p) => fetch(`${server.url}${p}`).then((r) => r.text());
        await get('/before-reload');
        fs.writeFileSync(file, '# now\nlog-level = debug\nmax-rooms = 5\nmax-message = 1M\n');
        server.proc.kill('SIGHUP');
        await waitLog(server, new RegExp(`SIGHUP: ${file}: applied: log-level debug \\(was info\\)`));
        await waitLog(server, new RegExp(`SIGHUP: ${file}: changed but needs a restart: max-message 1M \\(running 64K\\)`));
        await get('/after-reload');
        await waitLog(server, /404 \/after-reload/);
        assert.doesNotMatch(server.stderr, /before-reload/, 'debug lines only after the reload');
        // A bad file on reload is logged and the running configuration kept.
        fs.writeFileSync(file, 'log-level = info\nmax-mesage = 1\n');
        server.proc.kill('SIGHUP');
        await waitLog(server, new RegExp(`${file} not applied, keeping the running configuration: ${file}:2: max-mesage: unknown option`));
        await get('/after-bad-reload');
        await waitLog(server, /404 \/after-bad-reload/);
        const c = await login(server, uniq('hup'));
        assert.equal(c.welcome.limits.max_message, 65536, 'max-message needs a restart');
        await c.close();
    } finally {
        await server.stopClean();
    }
});

test('SIGHUP applies new limits live: max-text, max-rooms, rate limits and max-connections hold from the next request, welcome reports them', async () => {
    const file = confFile('max-text = 100\nmax-rooms = 2\n');
    const server = await startServer(['--db', ':memory:', '--config', file], { env: cleanEnv() });
    const clients = [];
    try {
        const room = uniq('#live');
        const a = await login(server, uniq('live'), { room });
        clients.push(a);
        assert.equal(a.welcome.limits.max_text, 100);
        const text = 'x'.repeat(150);
        assert.equal((await a.expectError({ type: 'room', to: room, message: { text } }, 'message_too_long')).code, 'message_too_long');
        await a.request({ type: 'join', room: uniq('#two') }, 'joined');
        await a.expectError({ type: 'join', room: uniq('#three') }, 'too_many_rooms');

        fs.writeFileSync(file, 'max-text = 200\nmax-rooms = 3\nmax-connections = 3\n');
        server.proc.kill('SIGHUP');
        await waitLog(server, /SIGHUP: .*: applied: .*max-text 200 \(was 100\)/);
        assert.match(server.stderr, /applied: .*max-rooms 3 \(was 2\)/);
        assert.match(server.stderr, /applied: .*max-connections 3 \(was /);
        // The session that was open before the reload is held to the new limits.
        const m = await a.request({ type: 'room', to: room, message: { text } }, 'room');
        assert.equal(m.message.text, text);
        await a.request({ type: 'join', room: uniq('#three') }, 'joined');
        // A new session's welcome reports them.
        const b = await login(server, uniq('live'));
        clients.push(b);
        assert.equal(b.welcome.limits.max_text, 200);
        assert.equal(b.welcome.limits.max_rooms, 3);
        assert.equal(b.welcome.limits.max_connections, 3);
        // max-connections 3: the third is served, the fourth refused.
        const c = await login(server, uniq('live'));
        clients.push(c);
        await assert.rejects(login(server, uniq('over')), 'a fourth WebSocket is refused');
    } finally {
        for (const c of clients) await c.close();
        await server.stopClean();
    }
});

test('the startup log ends with the address to open', async () => {
    const server = await startServer(['--db', ':memory:']);
    try {
        await waitLog(server, new RegExp(`open http://127\\.0\\.0\\.1:${server.port}/`));
    } finally {
        await server.stopClean();
    }
});

test("the README's example config file is valid", () => {
    const readme = fs.readFileSync(path.join(path.dirname(new URL(import.meta.url).pathname), '..', '..', 'README.md'), 'utf8');
    const m = /```ini\n([\s\S]*?)```/.exec(readme);
    assert.ok(m, 'README has an ini example');
    const r = run(['--config', confFile(m[1]), '--print-config']);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /\nlisten = 0\.0\.0\.0:9090\nlisten = \[::\]:9090\n/);
    assert.match(r.stdout, /\nmax-message = 1M\n/);
});
