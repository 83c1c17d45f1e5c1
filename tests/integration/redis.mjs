// The cluster tests' Redis harness: a real redis-server (Debian's, installed
// by scripts/deps.sh --test) on a free loopback port with its data in a
// temporary folder, a minimal RESP2 client to look into it and to act on it
// (CLIENT KILL, FLUSHALL, XRANGE, SUBSCRIBE), tertulia nodes started on it,
// and the checks the cluster test files share (what a room's stream holds,
// one order for every member).
//
// No npm Redis client: the tests must see exactly what Redis answers, and
// RESP2 is a few lines.

import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

import * as nodeTest from 'node:test';

import { BIN, HOST, Inbox, WAIT, bounded, httpOnce, sleep, startServer } from './helpers.mjs';

export const REDIS_BIN = '/usr/bin/redis-server';

// Redis servers still running when the test file's process exits are killed
// (by PID, only our own children), and their folders removed, so an aborted
// test leaves nothing behind. Also the nodes' database folders.
const liveRedis = new Set();
const tempDirs = new Set();
process.on('exit', () => {
    for (const proc of liveRedis) {
        try {
            proc.kill('SIGKILL');
        } catch {
            // already gone
        }
    }
    for (const dir of tempDirs) fs.rmSync(dir, { recursive: true, force: true });
});

function tempDir(prefix) {
    const d = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
    tempDirs.add(d);
    return d;
}

/** Resolves to port if a listener can bind it on the loopback address now, else to null. */
function tryPort(port) {
    return new Promise((resolve) => {
        const srv = net.createServer();
        srv.once('error', () => resolve(null));
        srv.listen(port, HOST, () => {
            const got = srv.address().port;
            srv.close(() => resolve(got));
        });
    });
}

/**
 * A loopback port that was free a moment ago, for a Redis that must get the
 * same port back after a restart (or that starts after a node was told its
 * port). Chosen below the kernel's ephemeral range, so that the servers
 * other tests start on port 0 and outgoing connections never take it while
 * Redis is down; port 0 when no such port is free. Another process may
 * still take it: startRedis retries elsewhere when Redis fails to bind.
 */
export async function freePort() {
    let low = 32768;
    try {
        low = Number(fs.readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]) || low;
    } catch {
        // not Linux: keep the usual bound
    }
    const min = 10000;
    for (let i = 0; i < 50 && low - min > 100; i++) {
        const p = await tryPort(min + Math.floor(Math.random() * (low - min)));
        if (p !== null) return p;
    }
    return tryPort(0);
}

// ---------------------------------------------------------------------------
// RESP2

/**
 * Parses one RESP2 value at buf[off]. Returns { value, off } (off past the
 * value), or undefined when the value is not complete yet. Simple and bulk
 * strings become JS strings (UTF-8), integers numbers, nulls null, arrays
 * arrays; an error is an Error (the caller rejects with a top-level one;
 * inside an array, e.g. EXEC's, it stays an element).
 */
function parseResp(buf, off) {
    if (off >= buf.length) return undefined;
    const eol = buf.indexOf('\r\n', off);
    if (eol < 0) return undefined;
    const kind = String.fromCharCode(buf[off]);
    const line = buf.toString('utf8', off + 1, eol);
    const after = eol + 2;
    switch (kind) {
        case '+':
            return { value: line, off: after };
        case '-':
            return { value: new Error(line), off: after };
        case ':':
            return { value: Number(line), off: after };
        case '$': {
            const n = Number(line);
            if (n < 0) return { value: null, off: after };
            if (buf.length < after + n + 2) return undefined;
            return { value: buf.toString('utf8', after, after + n), off: after + n + 2 };
        }
        case '*': {
            const n = Number(line);
            if (n < 0) return { value: null, off: after };
            const items = [];
            let pos = after;
            for (let i = 0; i < n; i++) {
                const r = parseResp(buf, pos);
                if (r === undefined) return undefined;
                items.push(r.value);
                pos = r.off;
            }
            return { value: items, off: pos };
        }
        default:
            throw new Error(`redis: not a RESP2 reply: ${JSON.stringify(buf.toString('latin1', off, Math.min(buf.length, off + 60)))}`);
    }
}

/** One command as a RESP2 array of bulk strings. */
function encodeCommand(args) {
    const parts = [Buffer.from(`*${args.length}\r\n`)];
    for (const a of args) {
        const b = Buffer.isBuffer(a) ? a : Buffer.from(String(a), 'utf8');
        parts.push(Buffer.from(`$${b.length}\r\n`), b, Buffer.from('\r\n'));
    }
    return Buffer.concat(parts);
}

/**
 * A minimal Redis client on one TCP connection to 127.0.0.1:port.
 *   cmd(...args)       → Promise of the reply; a Redis error rejects with an
 *                        Error whose message is Redis's. Commands may be
 *                        pipelined: replies are matched in order.
 *   subscribe(...chs)  → Promise (resolved once Redis confirmed every
 *                        channel); then the channels' messages arrive in
 *                        `messages`, an Inbox of { channel, message }.
 *   close()            → Promise, resolved once the connection is closed.
 * With password, AUTH is sent first (a refusal fails every command).
 * If the connection fails or ends, the commands waiting for a reply reject.
 * The socket never keeps the test file's process alive on its own: it is
 * referenced only while a reply is awaited.
 */
export function redisClient(port, { label = `redis:${port}`, password } = {}) {
    const sock = net.connect({ host: HOST, port });
    sock.setNoDelay(true);
    sock.unref();
    const pending = []; // { resolve, reject, what }
    const messages = new Inbox(`${label} messages`);
    let subscribed = false;
    let buf = Buffer.alloc(0);
    let endedWhy = null;

    const settle = () => {
        if (pending.length === 0) sock.unref();
    };
    const failAll = (why) => {
        if (endedWhy === null) endedWhy = why;
        for (const p of pending.splice(0)) p.reject(new Error(`${label}: ${why} while waiting for the reply to ${p.what}`));
        messages.close(why);
    };
    sock.on('error', (err) => failAll(`connection error: ${err.message}`));
    sock.on('close', () => failAll('connection closed'));
    sock.on('data', (d) => {
        buf = buf.length ? Buffer.concat([buf, d]) : d;
        let off = 0;
        for (;;) {
            // Given up on (a refused AUTH): the rest answers nothing.
            if (endedWhy !== null) return;
            const r = parseResp(buf, off);
            if (r === undefined) break;
            off = r.off;
            const v = r.value;
            // In subscribed mode Redis pushes ['message', channel, payload]
            // between the replies; everything else answers a command.
            if (subscribed && Array.isArray(v) && v[0] === 'message') {
                messages.push({ channel: v[1], message: v[2] });
                continue;
            }
            if (subscribed && Array.isArray(v) && v[0] === 'pmessage') {
                messages.push({ pattern: v[1], channel: v[2], message: v[3] });
                continue;
            }
            const p = pending.shift();
            if (!p) throw new Error(`${label}: a reply that answers nothing: ${JSON.stringify(v)}`);
            if (v instanceof Error) p.reject(v);
            else p.resolve(v);
        }
        buf = buf.subarray(off);
        settle();
    });

    const expect = (what) =>
        new Promise((resolve, reject) => {
            pending.push({ resolve, reject, what });
        });

    if (password !== undefined) {
        pending.push({
            what: 'AUTH',
            resolve: () => {},
            reject: (err) => {
                failAll(`AUTH refused: ${err.message}`);
                sock.destroy();
            },
        });
        sock.write(encodeCommand(['AUTH', password]));
    }

    const client = {
        messages,
        cmd(...args) {
            if (endedWhy !== null) return Promise.reject(new Error(`${label}: ${endedWhy}; cannot send ${args[0]}`));
            const what = String(args[0]);
            const reply = expect(what);
            sock.ref();
            sock.write(encodeCommand(args));
            return reply;
        },
        async subscribe(...channels) {
            assert.ok(channels.length > 0, 'subscribe to at least one channel');
            if (endedWhy !== null) throw new Error(`${label}: ${endedWhy}; cannot subscribe`);
            subscribed = true;
            // One confirmation ['subscribe', channel, count] per channel.
            const confirms = channels.map(() => expect('SUBSCRIBE'));
            sock.ref();
            sock.write(encodeCommand(['SUBSCRIBE', ...channels]));
            const got = await Promise.all(confirms);
            for (const [i, c] of got.entries()) assert.deepEqual(c.slice(0, 2), ['subscribe', channels[i]], 'Redis confirmed the subscription');
            return got;
        },
        close() {
            if (sock.destroyed) return Promise.resolve();
            return new Promise((resolve) => {
                // A peer that does not close back (a paused Redis) must not
                // hang the test.
                const timer = setTimeout(() => sock.destroy(), 1000);
                sock.once('close', () => {
                    clearTimeout(timer);
                    resolve();
                });
                // Referenced while we wait for the close, like a command.
                sock.ref();
                sock.end();
            });
        },
    };
    return client;
}

// ---------------------------------------------------------------------------
// redis-server

/** The state letter of a process (/proc/PID/stat): R, S, T (stopped), ... */
export function procState(pid) {
    return /^\d+ \(.*\) (\S)/.exec(fs.readFileSync(`/proc/${pid}/stat`, 'utf8'))[1];
}

/** Resolves once check() (sync or async) is true; polls every pollMs, fails after ms with what. */
export async function until(check, ms, what, pollMs = 10) {
    const deadline = Date.now() + ms;
    while (!(await check())) {
        if (Date.now() > deadline) throw new Error(`${what}: not within ${ms} ms`);
        await sleep(pollMs);
    }
}

/**
 * Resolves once Redis on port answers PING with PONG (a refused connection
 * or a `LOADING` reply are retried), or rejects after timeoutMs or as soon
 * as `exited` (the server's exit promise) resolves.
 */
async function waitPong(port, password, exited, timeoutMs, describeFailure) {
    const deadline = Date.now() + timeoutMs;
    let lastErr = null;
    let gone = null;
    exited.then((info) => {
        gone = info;
    });
    while (Date.now() < deadline) {
        if (gone) throw new Error(`redis-server exited (code ${gone.code}, signal ${gone.signal}) before answering PING; ${describeFailure()}`);
        const c = redisClient(port, { password });
        try {
            const r = await bounded(c.cmd('PING'), 2000, 'PONG');
            if (r === 'PONG') return;
            lastErr = new Error(`PING answered ${JSON.stringify(r)}`);
        } catch (err) {
            lastErr = err;
        } finally {
            await c.close();
        }
        await sleep(20);
    }
    throw new Error(`redis-server on port ${port} did not answer PING within ${timeoutMs} ms (last: ${lastErr?.message}); ${describeFailure()}`);
}

/**
 * Starts /usr/bin/redis-server on 127.0.0.1 (a free port, or `port` when
 * given: a test that starts a node before its Redis chooses the port first),
 * data in a fresh temporary folder, no RDB snapshots, AOF as asked; with
 * password, clients must AUTH (url then carries it); with unixSocket, it
 * also listens on `socket` (a path in its folder). Resolves once it answers
 * PING. Returns
 *   { port, url, socket, dir, pid, logFile, log(), stop(), kill9(), pause(), resume(), restart(), client() }.
 * restart() starts it again on the same port and folder with the same
 * options (after stopping it if it still runs): with AOF on, the data stays.
 */
export async function startRedis({ appendonly = false, fsync = 'everysec', port, password, unixSocket = false, timeoutMs = 15000 } = {}) {
    if (!fs.existsSync(REDIS_BIN)) {
        throw new Error(`${REDIS_BIN} does not exist: install it with scripts/deps.sh --test (Debian package redis-server)`);
    }
    const dir = tempDir('tertulia-redis-');
    const logFile = path.join(dir, 'redis.log');
    const socket = unixSocket ? path.join(dir, 'redis.sock') : null;
    let proc = null;
    let exited = null;
    let exitInfo = null;
    let output = '';
    let paused = false;

    const log = () => {
        try {
            return fs.readFileSync(logFile, 'utf8');
        } catch {
            return '';
        }
    };
    const describeFailure = () => `output:\n${output}\nlog tail:\n${log().split('\n').slice(-15).join('\n')}`;

    // One redis-server process on p; resolves once it answers PING.
    const spawnOn = async (p) => {
        const args = [
            '--bind', HOST, '--port', String(p), '--dir', dir, '--save', '',
            '--appendonly', appendonly ? 'yes' : 'no', '--appendfsync', fsync,
            '--daemonize', 'no', '--logfile', logFile,
        ];
        if (password !== undefined) args.push('--requirepass', password);
        if (socket) args.push('--unixsocket', socket, '--unixsocketperm', '700');
        output = '';
        exitInfo = null;
        paused = false;
        proc = spawn(REDIS_BIN, args, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
        const me = proc;
        liveRedis.add(me);
        me.unref();
        for (const s of [me.stdout, me.stderr]) {
            s.unref?.();
            s.setEncoding('utf8');
            s.on('data', (d) => {
                output += d;
            });
        }
        exited = new Promise((resolve) => {
            me.on('exit', (code, signal) => {
                liveRedis.delete(me);
                if (me === proc) exitInfo = { code, signal };
                resolve({ code, signal });
            });
        });
        await waitPong(p, password, exited, timeoutMs, describeFailure);
    };

    // The first start: a port taken between freePort() and Redis's bind
    // makes Redis exit; try again elsewhere (unless the caller chose it).
    let chosen = port;
    for (let attempt = 1; ; attempt++) {
        if (port === undefined) chosen = await freePort();
        try {
            await spawnOn(chosen);
            break;
        } catch (err) {
            const bindFailed = /Address already in use|Could not create server TCP listening socket/i.test(log() + output);
            if (proc && !exitInfo) proc.kill('SIGKILL');
            if (port !== undefined || !bindFailed || attempt >= 5) throw err;
        }
    }

    // Waits (bounded) for the current process to exit; SIGKILL if it hangs.
    const waitExit = async (ms) => {
        let timer;
        const late = new Promise((resolve) => {
            timer = setTimeout(() => resolve('timeout'), ms);
        });
        const r = await Promise.race([exited, late]);
        clearTimeout(timer);
        if (r === 'timeout') {
            proc.kill('SIGKILL');
            await exited;
            return false;
        }
        return true;
    };

    const redis = {
        port: chosen,
        url: password !== undefined ? `redis://:${encodeURIComponent(password)}@${HOST}:${chosen}/0` : `redis://${HOST}:${chosen}/0`,
        socket,
        password,
        dir,
        logFile,
        log,
        get pid() {
            return proc.pid;
        },
        get running() {
            return exitInfo === null;
        },
        /** SIGTERM (SIGCONT first if paused), wait for the exit; SIGKILL after stopTimeoutMs and reject. */
        async stop(stopTimeoutMs = 10000) {
            if (exitInfo) return exitInfo;
            if (paused) await redis.resume();
            proc.kill('SIGTERM');
            if (!(await waitExit(stopTimeoutMs))) throw new Error(`redis-server did not exit within ${stopTimeoutMs} ms of SIGTERM; ${describeFailure()}`);
            return exitInfo;
        },
        /** SIGKILL, and wait for the exit. */
        async kill9() {
            if (exitInfo) return exitInfo;
            proc.kill('SIGKILL');
            await exited;
            paused = false;
            return exitInfo;
        },
        /**
         * SIGSTOP: Redis keeps its connections but answers nothing.
         * Resolves once the kernel shows the process stopped (the signal
         * is delivered asynchronously).
         */
        async pause() {
            assert.ok(!exitInfo, 'pause a running redis-server');
            proc.kill('SIGSTOP');
            paused = true;
            await until(() => procState(proc.pid) === 'T', 2000, 'redis-server stopped by SIGSTOP');
        },
        /** SIGCONT after pause(); resolves once the process runs again. */
        async resume() {
            assert.ok(!exitInfo, 'resume a running redis-server');
            proc.kill('SIGCONT');
            paused = false;
            await until(() => procState(proc.pid) !== 'T', 2000, 'redis-server continued by SIGCONT');
        },
        /** Stops it if it runs, then starts it again on the same port and folder. */
        async restart() {
            if (!exitInfo) await redis.stop();
            await spawnOn(chosen);
        },
        /** A new client on this server (close it when done). */
        client(opts = {}) {
            return redisClient(chosen, { password, ...opts });
        },
    };
    return redis;
}

// ---------------------------------------------------------------------------
// tertulia nodes

/** GET /readyz on server: { status, body } (status 0 when the connection fails). */
async function readyzResponse(server) {
    try {
        const r = await httpOnce(server, `GET /readyz HTTP/1.1\r\nHost: ${HOST}\r\nConnection: close\r\n\r\n`, { timeoutMs: 2000 });
        return { status: r.status, body: r.body.toString('utf8').trim() };
    } catch (err) {
        return { status: 0, body: err.message };
    }
}

/** The status of GET /readyz on server (0 when the connection fails). */
export async function readyz(server) {
    return (await readyzResponse(server)).status;
}

/** Polls /readyz until it answers 200; fails after timeoutMs with the last answer and the node's log. */
export async function waitReady(server, timeoutMs = 15000) {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
        const last = await readyzResponse(server);
        if (last.status === 200) return;
        if (server.exitInfo) throw new Error(`node exited (${JSON.stringify(server.exitInfo)}) before /readyz answered 200; stderr tail:\n${server.tail()}`);
        if (Date.now() > deadline) throw new Error(`/readyz still answers ${last.status} ${JSON.stringify(last.body)} after ${timeoutMs} ms; stderr tail:\n${server.tail()}`);
        await sleep(50);
    }
}

/**
 * Starts a tertulia node on redis (an object with `url`, from startRedis)
 * named name, with its own database file in a fresh temporary folder, and
 * waits until /readyz answers 200 (ready: false skips the wait, for a node
 * whose Redis is not up yet).
 */
export async function startNode(redis, name, extraArgs = [], { ready = true, readyTimeoutMs = 15000 } = {}) {
    const db = path.join(tempDir('tertulia-node-'), 'tertulia.db');
    const server = await startServer(['--redis', redis.url, '--node', name, '--db', db, ...extraArgs]);
    server.nodeName = name;
    if (ready) {
        try {
            await waitReady(server, readyTimeoutMs);
        } catch (err) {
            await server.stop('SIGKILL');
            throw err;
        }
    }
    return server;
}

/**
 * Null when the binary under test has the cluster (its --help names
 * --redis), else why the node tests are skipped. A missing binary is not a
 * reason to skip: startServer then fails with the path.
 */
export function clusterMissing() {
    if (!fs.existsSync(BIN)) return null;
    const r = spawnSync(BIN, ['--help'], { encoding: 'utf8', timeout: 10000 });
    return /--redis\b/.test(`${r.stdout}${r.stderr}`) ? null : `${BIN} has no --redis option (the cluster is not built in this binary)`;
}

// ---------------------------------------------------------------------------
// What the cluster keeps in Redis (docs: the cluster spec)

/** The key part of a room's Redis names: ASCII lower case, without a leading '#'. */
export function roomKey(room) {
    return String(room).replace(/^#/, '').replace(/[A-Z]/g, (c) => c.toLowerCase());
}

/**
 * Splits a channel/stream payload `<seq> <id> <body>`; when the body is a
 * node's (`<ts> <node> <token> <from> <room> <mentions> <text>`) its fields
 * too. The text is everything after the sixth field of the body.
 */
export function parsePayload(payload) {
    const m = /^(\d+) (\d+) ([\s\S]*)$/.exec(payload);
    assert.ok(m, `a payload is "<seq> <id> <body>": ${JSON.stringify(payload).slice(0, 200)}`);
    const out = { seq: Number(m[1]), id: Number(m[2]), body: m[3] };
    const b = /^(\d+) (\S+) (\S+) (\S+) (\S+) (\S+) ([\s\S]*)$/.exec(out.body);
    if (b) Object.assign(out, { ts: Number(b[1]), node: b[2], token: b[3], from: b[4], room: b[5], mentions: b[6], text: b[7] });
    return out;
}

/** Every entry of a room's stream in Redis: [{ entryId, ...parsePayload }] oldest first. */
export async function streamEntries(rc, room) {
    const entries = await rc.cmd('XRANGE', `tt:room:${roomKey(room)}:log`, '-', '+');
    return entries.map(([entryId, fields]) => {
        assert.deepEqual(fields.length, 2, `one field per stream entry: ${JSON.stringify(fields)}`);
        assert.equal(fields[0], 'm', 'the stream entry field is m');
        const p = parsePayload(fields[1]);
        assert.equal(entryId, `${p.id}-0`, 'the stream entry ID is <id>-0');
        return { entryId, ...p };
    });
}

// ---------------------------------------------------------------------------
// Sending and checking room messages (v1 clients from helpers.mjs)

let refSeq = 0;

/**
 * Sends a room message with a fresh id and resolves to the answer: the ack
 * ({ type: 'ack', message_id }) or the error with its ref. Fails after
 * timeoutMs without either.
 */
export async function sayRoom(client, room, text, timeoutMs = WAIT) {
    const id = `c${++refSeq}`;
    client.send({ type: 'room', to: room, message: { text }, id });
    const m = await client.next((x) => (x.type === 'ack' || x.type === 'error') && x.ref === id, timeoutMs);
    return { ...m, text };
}

/** The room messages of room a client received so far, in arrival order (left in its inbox). */
export function roomMessages(client, room) {
    const key = roomKey(room);
    return client.inbox.items.filter((m) => m.type === 'room' && roomKey(m.to) === key);
}

/** Asserts ids strictly increase along list (numbers or messages with id). */
export function assertIncreasing(list, what) {
    const ids = list.map((x) => (typeof x === 'number' ? x : x.id));
    for (let i = 1; i < ids.length; i++) assert.ok(ids[i] > ids[i - 1], `${what}: ids strictly increase (${ids[i - 1]} then ${ids[i]} at ${i})`);
}

/**
 * The end of a burst: sender says `marker` (acked), and every member waits
 * (bounded) for it. Everything acked before it has a smaller id, so once a
 * member has the marker it has (or never will have) every one of them:
 * later checks need no timer. Returns the marker's id.
 */
export async function endBurst(sender, members, room, marker = `marker ${Date.now()}`, timeoutMs = 20000) {
    const ack = await sayRoom(sender, room, marker, timeoutMs);
    assert.equal(ack.type, 'ack', `the marker was accepted: ${JSON.stringify(ack)}`);
    await Promise.all(members.map((c) => c.next((m) => m.type === 'room' && m.message?.text === marker, timeoutMs)));
    return ack.message_id;
}

/**
 * The cluster's one promise, checked after endBurst: every member received
 * exactly the acked messages (acked: [{ message_id, text }]), each once,
 * ids strictly increasing, the same sequence on every member; none of the
 * refused texts (refused: [text]) anywhere. Returns the common id list.
 */
export function assertOneOrder(members, room, acked, refused = []) {
    const ackedIds = [...new Set(acked.map((a) => a.message_id))].sort((x, y) => x - y);
    assert.equal(ackedIds.length, acked.length, 'every ack carries its own message id');
    const textOf = new Map(acked.map((a) => [a.message_id, a.text]));
    const refusedSet = new Set(refused);
    let first = null;
    for (const c of members) {
        const got = roomMessages(c, room);
        const ids = got.map((m) => m.id);
        for (const m of got) assert.ok(!refusedSet.has(m.message.text), `${c.label} received ${JSON.stringify(m.message.text)}, which was answered unavailable`);
        assertIncreasing(ids, `${c.label}'s room messages`);
        const missing = ackedIds.filter((id) => !ids.includes(id));
        assert.deepEqual(missing, [], `${c.label} missed acked messages (of ${ackedIds.length}, got ${ids.length})`);
        const extra = ids.filter((id) => !textOf.has(id));
        assert.deepEqual(extra, [], `${c.label} received messages nobody got an ack for`);
        for (const m of got) assert.equal(m.message.text, textOf.get(m.id), `message ${m.id} carries the text its ack was for`);
        if (first === null) first = { label: c.label, ids };
        else assert.deepEqual(ids, first.ids, `${c.label} and ${first.label} saw one order`);
    }
    return ackedIds;
}

/**
 * The set-up every cluster test file shares: before its tests, a Redis and
 * one node per name (each with args; flood control off by default, as the
 * tests measure the cluster, not the rate limit); after them, the clients
 * pushed on `clients` are cut, the servers pushed on `extraServers` killed,
 * the nodes stopped cleanly (exit 0, no sanitizer report: asserted) and
 * every Redis stopped. Returns the object whose fields (`redis`, `nodes`)
 * are set once `before` ran; ready(fx), if given, is called then (a test
 * file's own `before` hook would not wait for this one). With skip set
 * (clusterMissing()), nothing is started.
 */
export function clusterFixture(names, { args = ['--rate-limit', '0'], skip = null, ready } = {}) {
    const fx = { redis: null, nodes: [], clients: [], extraServers: [], extraRedis: [] };
    nodeTest.before(async () => {
        if (skip) return;
        fx.redis = await startRedis();
        fx.nodes = await Promise.all(names.map((n) => startNode(fx.redis, n, args)));
        if (ready) ready(fx);
    });
    nodeTest.after(async () => {
        for (const c of fx.clients) if (c.isOpen) await c.terminate();
        for (const s of fx.extraServers) if (!s.exitInfo) await s.stop('SIGKILL');
        for (const n of fx.nodes) if (n && !n.exitInfo) await n.stopClean();
        for (const r of [fx.redis, ...fx.extraRedis]) if (r) await r.stop();
    });
    return fx;
}
