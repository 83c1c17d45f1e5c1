// Shared tools for the integration suite: start the real tertulia binary on a
// free port, drive it with independent clients (the npm `ws` package, a raw
// TCP WebSocket client with hand-made frames, a raw HTTP client), and wait for
// what it sends with generous time-outs. Time-outs here are safety nets so a
// broken server fails a test instead of hanging it; they are not performance
// assertions.
//
// The server contract these helpers rely on:
//   - binary: $TERTULIA_BIN, else /work/main/build/tertulia;
//   - `--listen 127.0.0.1:0` binds a free port and logs a line containing
//     `listening on 127.0.0.1:PORT` to stderr (so no port is ever guessed);
//   - SIGTERM/SIGINT close every WebSocket with 1001 and exit 0 quickly.

import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import zlib from 'node:zlib';
import WebSocket from 'ws';

export { WebSocket, sleep };

export const BIN = process.env.TERTULIA_BIN || '/work/main/build/tertulia';
export const HOST = '127.0.0.1';
export const SUBPROTOCOL = 'tertulia.v1';
export const WS_GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';

// Every default wait in the suite. Generous: a loaded 2-core machine running
// a sanitizer build must never make a correct server fail.
export const WAIT = 5000;

const SANITIZER_RE = /ERROR: (AddressSanitizer|LeakSanitizer|ThreadSanitizer)|runtime error:|SUMMARY: UndefinedBehaviorSanitizer/;

// Servers still running when the test file's process exits are killed, so an
// aborted test never leaves a server behind. Only our own children, by PID.
// Their temporary working directories go too.
const live = new Set();
const tempDirs = new Set();
process.on('exit', () => {
    for (const proc of live) {
        try {
            proc.kill('SIGKILL');
        } catch {
            // already gone
        }
    }
    for (const dir of tempDirs) fs.rmSync(dir, { recursive: true, force: true });
});

/**
 * Starts the server with `--listen 127.0.0.1:0` and `args`, in a fresh
 * temporary working directory (so any data file it writes by default stays
 * out of the tree and out of other tests). Resolves once it logged its port.
 * `ulimitFiles` lowers the open-file limit of the server process (through
 * `ulimit -n` in a shell that then execs it, so the PID is the server's).
 */
export async function startServer(args = [], { timeoutMs = 15000, env = {}, ulimitFiles } = {}) {
    if (!fs.existsSync(BIN)) {
        throw new Error(`server binary ${BIN} does not exist (set TERTULIA_BIN)`);
    }
    const cwd = fs.mkdtempSync(path.join(os.tmpdir(), 'tertulia-it-'));
    tempDirs.add(cwd);
    const argv = ['--listen', `${HOST}:0`, ...args];
    const [file, fileArgs] = ulimitFiles
        ? ['sh', ['-c', `ulimit -n ${Number(ulimitFiles)} && exec "$0" "$@"`, BIN, ...argv]]
        : [BIN, argv];
    const proc = spawn(file, fileArgs, {
        cwd,
        stdio: ['ignore', 'pipe', 'pipe'],
        // TERTULIA_BIN names the binary for the tests; the server would read
        // it as an option (TERTULIA_*) and log that it is none.
        env: { ...Object.fromEntries(Object.entries(process.env).filter(([k]) => k !== 'TERTULIA_BIN')), ...env },
    });
    live.add(proc);
    // A server must never keep a test file's process alive: if a test dies
    // before stopping it, the file still ends and the exit hook kills it.
    proc.unref();
    proc.stdout.unref?.();
    proc.stderr.unref?.();
    let stderr = '';
    let stdout = '';
    proc.stdout.setEncoding('utf8');
    proc.stderr.setEncoding('utf8');
    proc.stdout.on('data', (d) => {
        stdout += d;
    });
    let exitInfo = null;
    const exited = new Promise((resolve) => {
        proc.on('exit', (code, signal) => {
            exitInfo = { code, signal };
            live.delete(proc);
            resolve(exitInfo);
        });
    });
    const port = await new Promise((resolve, reject) => {
        const fail = (err) => {
            try {
                proc.kill('SIGKILL');
            } catch {
                // already gone
            }
            reject(err);
        };
        const timer = setTimeout(() => {
            fail(new Error(`server did not log "listening on ${HOST}:PORT" within ${timeoutMs} ms; stderr:\n${stderr}`));
        }, timeoutMs);
        let found = false;
        proc.stderr.on('data', (d) => {
            stderr += d;
            if (found) return;
            const m = /listening on 127\.0\.0\.1:(\d+)/.exec(stderr);
            if (m) {
                found = true;
                clearTimeout(timer);
                resolve(Number(m[1]));
            }
        });
        proc.on('error', (err) => {
            clearTimeout(timer);
            fail(err);
        });
        exited.then(({ code, signal }) => {
            clearTimeout(timer);
            reject(new Error(`server exited (code ${code}, signal ${signal}) before listening; stderr:\n${stderr}`));
        });
    });
    assert.ok(port > 0, 'the server logged a real port');

    const server = {
        host: HOST,
        port,
        url: `http://${HOST}:${port}`,
        wsUrl: (p = '/ws') => `ws://${HOST}:${port}${p}`,
        proc,
        cwd,
        exited,
        get stderr() {
            return stderr;
        },
        get stdout() {
            return stdout;
        },
        get exitInfo() {
            return exitInfo;
        },
        /** The last lines of stderr, for failure messages. */
        tail(lines = 30) {
            return stderr.split('\n').slice(-lines).join('\n');
        },
        /** A sanitizer report in the server's output, or null. */
        sanitizerReport() {
            const m = SANITIZER_RE.exec(stderr);
            return m ? stderr.slice(Math.max(0, m.index - 200), m.index + 3000) : null;
        },
        /**
         * Sends `signal` and waits for the process to exit. Resolves to
         * { code, signal, ms }. If it has not exited after timeoutMs it is
         * killed and the promise rejects: a hung shutdown is a failure.
         */
        async stop(sig = 'SIGTERM', stopTimeoutMs = 10000) {
            const t0 = Date.now();
            if (!exitInfo) {
                proc.kill(sig);
                let timer;
                const timedOut = new Promise((resolve) => {
                    timer = setTimeout(() => resolve('timeout'), stopTimeoutMs);
                });
                const r = await Promise.race([exited, timedOut]);
                clearTimeout(timer);
                if (r === 'timeout') {
                    proc.kill('SIGKILL');
                    await exited;
                    throw new Error(`server did not exit within ${stopTimeoutMs} ms of ${sig}; stderr tail:\n${server.tail()}`);
                }
            }
            fs.rmSync(cwd, { recursive: true, force: true });
            tempDirs.delete(cwd);
            return { ...exitInfo, ms: Date.now() - t0 };
        },
        /**
         * stop(), then asserts a clean exit: code 0 and no sanitizer report.
         * Meant for after() hooks, so leaks and UB found by a sanitizer build
         * fail the file that triggered them.
         */
        async stopClean() {
            const r = await server.stop();
            const report = server.sanitizerReport();
            if (report !== null) assert.fail(`sanitizer report in server output:\n${report}`);
            assert.equal(r.signal, null, `server died of ${r.signal}; stderr tail:\n${server.tail()}`);
            assert.equal(r.code, 0, `server exited with ${r.code}; stderr tail:\n${server.tail()}`);
            return r;
        },
    };
    return server;
}

// ---------------------------------------------------------------------------
// Names

let uniqCounter = 0;
/** A fresh nickname/room name (valid characters, ≤ 32 chars). */
/** True when a and b name one room: rooms ignore case and a leading '#'. */
export function sameRoom(a, b) {
    const fold = (r) => String(r).replace(/^#/, '').toLowerCase();
    return fold(a) === fold(b);
}

export function uniq(prefix = 'u') {
    uniqCounter += 1;
    const rnd = crypto.randomBytes(3).toString('hex');
    return `${prefix.slice(0, 16)}${uniqCounter}_${rnd}`;
}

// ---------------------------------------------------------------------------
// Inbox: what a client received, consumed by predicate.

/**
 * Turns a predicate spec into a function: a function is used as is, a string
 * matches `type`, an object matches when every key is deeply equal.
 */
export function toPredicate(spec) {
    if (spec === undefined || spec === null) return () => true;
    if (typeof spec === 'function') return spec;
    if (typeof spec === 'string') return (m) => m && m.type === spec;
    return (m) => {
        if (!m || typeof m !== 'object') return false;
        for (const [k, v] of Object.entries(spec)) {
            try {
                assert.deepStrictEqual(m[k], v);
            } catch {
                return false;
            }
        }
        return true;
    };
}

function describe(spec) {
    if (typeof spec === 'function') return spec.name || spec.toString().slice(0, 120);
    return JSON.stringify(spec);
}

function preview(item) {
    if (Buffer.isBuffer(item)) return `<${item.length} bytes>`;
    let s;
    try {
        s = JSON.stringify(item, (k, v) => (typeof v === 'string' && v.length > 80 ? `${v.slice(0, 80)}…(${v.length})` : v));
    } catch {
        s = String(item);
    }
    return s && s.length > 300 ? `${s.slice(0, 300)}…` : s;
}

/** A short list of what is waiting in an inbox, for failure messages. */
function summary(items, max = 8) {
    if (items.length === 0) return 'none';
    const shown = items.slice(0, max).map(preview).join(' | ');
    return items.length > max ? `${shown} | …and ${items.length - max} more` : shown;
}

export class Inbox {
    constructor(label = 'client') {
        this.label = label;
        this.items = [];
        this.waiters = [];
        this.closedWhy = null;
        this.received = 0;
    }

    push(item) {
        this.received += 1;
        for (let i = 0; i < this.waiters.length; i++) {
            const w = this.waiters[i];
            if (w.pred(item)) {
                this.waiters.splice(i, 1);
                clearTimeout(w.timer);
                w.resolve(item);
                return;
            }
        }
        this.items.push(item);
    }

    /** No more items will come: waiters that nothing matched fail now. */
    close(why) {
        this.closedWhy = why;
        const ws = this.waiters;
        this.waiters = [];
        for (const w of ws) {
            clearTimeout(w.timer);
            w.reject(new Error(`${this.label}: connection ended (${why}) while waiting for ${w.what}; unconsumed: ${summary(this.items)}`));
        }
    }

    /** The first item matching spec (removed from the inbox). */
    next(spec, timeoutMs = WAIT) {
        const pred = toPredicate(spec);
        const idx = this.items.findIndex(pred);
        if (idx >= 0) return Promise.resolve(this.items.splice(idx, 1)[0]);
        const what = describe(spec);
        if (this.closedWhy !== null) {
            return Promise.reject(new Error(`${this.label}: connection already ended (${this.closedWhy}); no item matching ${what}; unconsumed: ${summary(this.items)}`));
        }
        return new Promise((resolve, reject) => {
            const w = { pred, resolve, reject, what };
            w.timer = setTimeout(() => {
                const i = this.waiters.indexOf(w);
                if (i >= 0) this.waiters.splice(i, 1);
                reject(new Error(`${this.label}: nothing matching ${what} within ${timeoutMs} ms; unconsumed: ${summary(this.items)}`));
            }, timeoutMs);
            this.waiters.push(w);
        });
    }

    /** Waits ms, then fails if anything matching spec is in the inbox. */
    async expectNothing(ms = 300, spec) {
        const pred = toPredicate(spec);
        await sleep(ms);
        const got = this.items.filter(pred);
        assert.equal(got.length, 0, `${this.label} expected nothing${spec ? ` matching ${describe(spec)}` : ''} but got: ${summary(got)}`);
    }

    /** Removes and returns everything received so far. */
    drain() {
        return this.items.splice(0);
    }
}

// ---------------------------------------------------------------------------
// WebSocket client on the `ws` package.

/**
 * A connected `ws` client. Text messages are JSON-parsed into the inbox
 * (a text that is not JSON arrives as { __text }); binary messages arrive as
 * { __binary: Buffer }. With { raw: true } every message arrives as
 * { data: Buffer, isBinary } instead (for the echo endpoint).
 */
export class Client {
    constructor(ws, { raw = false, label = 'client' } = {}) {
        this.ws = ws;
        this.label = label;
        this.inbox = new Inbox(label);
        this.closeInfo = null;
        ws.on('message', (data, isBinary) => {
            if (raw) {
                this.inbox.push({ data: Buffer.from(data), isBinary });
            } else if (isBinary) {
                this.inbox.push({ __binary: Buffer.from(data) });
            } else {
                const text = data.toString('utf8');
                try {
                    this.inbox.push(JSON.parse(text));
                } catch {
                    this.inbox.push({ __text: text });
                }
            }
        });
        this.errors = [];
        ws.on('error', (err) => {
            this.errors.push(err);
        });
        this.closed = new Promise((resolve) => {
            ws.on('close', (code, reason) => {
                this.closeInfo = { code, reason: reason.toString('utf8') };
                this.inbox.close(`close ${code} ${this.closeInfo.reason}`);
                resolve(this.closeInfo);
            });
        });
    }

    get protocol() {
        return this.ws.protocol;
    }

    get isOpen() {
        return this.ws.readyState === WebSocket.OPEN;
    }

    /** Sends an object as JSON text, a string as text, a Buffer as binary. */
    send(msg, opts) {
        if (typeof msg === 'string' || Buffer.isBuffer(msg)) this.ws.send(msg, opts);
        else this.ws.send(JSON.stringify(msg), opts);
    }

    next(spec, timeoutMs = WAIT) {
        return this.inbox.next(spec, timeoutMs);
    }

    expectNothing(ms, spec) {
        return this.inbox.expectNothing(ms, spec);
    }

    /** Sends req (adding a fresh `id` if it has none) and waits for the reply of `type` or an error with its ref. */
    async request(req, replyType, timeoutMs = WAIT) {
        const id = req.id ?? `r${crypto.randomBytes(4).toString('hex')}`;
        this.send({ ...req, id });
        return this.next((m) => m.type === replyType || (m.type === 'error' && m.ref === id), timeoutMs);
    }

    /** Sends req with a fresh id and expects an error with that ref; returns it. */
    async expectError(req, code, timeoutMs = WAIT) {
        const id = `e${crypto.randomBytes(4).toString('hex')}`;
        this.send({ ...req, id });
        const m = await this.next((x) => x.type === 'error' && x.ref === id, timeoutMs);
        assert.equal(m.code, code, `${JSON.stringify(req).slice(0, 200)} → error ${JSON.stringify(m)}`);
        assert.equal(typeof m.message, 'string', 'an error carries a message');
        assert.ok(m.message.length > 0, 'an error message is a sentence, not empty');
        return m;
    }

    /** Waits for the close (or for timeoutMs, then fails). */
    async waitClose(timeoutMs = WAIT) {
        let timer;
        const t = new Promise((_, reject) => {
            timer = setTimeout(() => reject(new Error(`${this.label}: not closed within ${timeoutMs} ms`)), timeoutMs);
        });
        try {
            return await Promise.race([this.closed, t]);
        } finally {
            clearTimeout(timer);
        }
    }

    /** Closes normally and waits for the close handshake. */
    async close(code = 1000, reason = '') {
        if (this.ws.readyState === WebSocket.OPEN || this.ws.readyState === WebSocket.CONNECTING) {
            this.ws.close(code, reason);
        }
        return this.waitClose();
    }

    /** Drops the TCP connection without a close handshake. */
    terminate() {
        this.ws.terminate();
        return this.closed;
    }
}

/**
 * Opens a WebSocket to server at path. protocol: 'v1' offers tertulia.v1,
 * 'legacy' offers nothing, an array offers exactly those.
 */
export function connect(server, { path = '/ws', protocol = 'v1', raw = false, label, wsOptions = {} } = {}) {
    const url = typeof server === 'string' ? server : server.wsUrl(path);
    // A wss:// view of a server (tls-helpers.mjs) carries its CA here.
    if (typeof server === 'object' && server.wsOptions) wsOptions = { ...server.wsOptions, ...wsOptions };
    let protocols;
    if (protocol === 'v1') protocols = [SUBPROTOCOL];
    else if (protocol === 'legacy' || protocol === null) protocols = undefined;
    else protocols = protocol;
    const ws = protocols ? new WebSocket(url, protocols, { handshakeTimeout: 10000, ...wsOptions }) : new WebSocket(url, { handshakeTimeout: 10000, ...wsOptions });
    const client = new Client(ws, { raw, label: label || `${protocol}@${path}` });
    return new Promise((resolve, reject) => {
        const onErr = (err) => {
            reject(new Error(`connect ${url} failed: ${err.message}`));
        };
        ws.once('error', onErr);
        ws.once('unexpected-response', (req, res) => {
            ws.off('error', onErr);
            reject(new Error(`connect ${url}: HTTP ${res.statusCode} instead of 101`));
            req.destroy();
        });
        ws.once('open', () => {
            ws.off('error', onErr);
            resolve(client);
        });
    });
}

/**
 * Connects a tertulia.v1 client, logs in as nickname (joining room if given)
 * and waits for welcome (and joined). client.nickname, client.welcome and
 * client.joined are set. resume: a guest's token from an earlier welcome
 * (client.resume keeps the one a welcome gave).
 */
export async function login(server, nickname, { room, path = '/ws', resume } = {}) {
    const c = await connect(server, { path, protocol: 'v1', label: nickname });
    const req = { type: 'login', nickname };
    if (room !== undefined) req.room = room;
    if (resume !== undefined) req.resume = resume;
    c.send(req);
    c.welcome = await c.next((m) => m.type === 'welcome' || m.type === 'error');
    assert.equal(c.welcome.type, 'welcome', `login of ${nickname} answered ${JSON.stringify(c.welcome)}`);
    c.nickname = nickname;
    c.resume = c.welcome.resume ?? resume;
    if (room !== undefined) {
        c.joined = await c.next((m) => (m.type === 'joined' && sameRoom(m.room, room)) || m.type === 'error');
        assert.equal(c.joined.type, 'joined', `login of ${nickname} into ${room} answered ${JSON.stringify(c.joined)}`);
    }
    return c;
}

/** Joins room (a logged-in v1 client) and returns the `joined` reply. */
/** The password the tests' accounts use. */
export const PASSWORD = 'correct horse battery';

/**
 * Connects and registers an account (register: false logs in to it with
 * its password instead); waits for welcome. client.nickname is the
 * account's spelling, client.welcome its welcome (with its token).
 */
export async function account(server, nickname, { register = true, password = PASSWORD } = {}) {
    const c = await connect(server, { label: nickname });
    const type = register ? 'register' : 'login';
    c.welcome = await c.request({ type, nickname, password }, 'welcome');
    assert.equal(c.welcome.type, 'welcome', `${type} ${nickname}: ${JSON.stringify(c.welcome)}`);
    c.nickname = c.welcome.nickname;
    return c;
}

export async function join(client, room, extra = {}) {
    const m = await client.request({ type: 'join', room, ...extra }, 'joined');
    assert.equal(m.type, 'joined', `join ${room} answered ${JSON.stringify(m)}`);
    assert.equal(m.room, room);
    return m;
}

/**
 * Connects a legacy client (no subprotocol) the way the original web client
 * did, and sends its login. Legacy clients get no reply to a login, so
 * callers synchronise with waitMembers().
 */
export async function legacyLogin(server, nickname, room, { path = '/talking' } = {}) {
    const c = await connect(server, { path, protocol: 'legacy', label: `legacy:${nickname}` });
    c.send({ type: 'login', nickname, room, connectedAt: Date.now() });
    c.nickname = nickname;
    return c;
}

/**
 * Asks `who` through a logged-in v1 client until the room's members satisfy
 * pred (e.g. include everyone expected). Returns the last member list.
 */
export async function waitMembers(client, room, pred, timeoutMs = 10000) {
    const deadline = Date.now() + timeoutMs;
    let last;
    for (;;) {
        last = await client.request({ type: 'who', room }, 'members');
        if (last.type === 'members' && pred(last.members)) return last.members;
        if (Date.now() > deadline) {
            throw new Error(`members of ${room} never satisfied the condition; last reply ${preview(last)}`);
        }
        await sleep(25);
    }
}

// ---------------------------------------------------------------------------
// Frames by hand.

/** Sec-WebSocket-Accept for a key. */
export function acceptFor(key) {
    return crypto.createHash('sha1').update(key + WS_GUID).digest('base64');
}

/**
 * One client→server frame. payload: Buffer or string. mask: true (random
 * key), false (unmasked, a protocol violation) or a 4-byte Buffer. rsv: the
 * three reserved bits as a number 0–7. len: force the length encoding
 * ('7', '16' or '64') regardless of the payload size.
 */
export function frame({ opcode = 1, payload = Buffer.alloc(0), fin = true, rsv = 0, mask = true, len } = {}) {
    const data = Buffer.isBuffer(payload) ? payload : Buffer.from(payload, 'utf8');
    const n = data.length;
    let enc = len;
    if (!enc) enc = n < 126 ? '7' : n < 65536 ? '16' : '64';
    const head = [((fin ? 1 : 0) << 7) | ((rsv & 7) << 4) | (opcode & 0xf)];
    const maskBit = mask ? 0x80 : 0;
    let ext;
    if (enc === '7') {
        head.push(maskBit | n);
        ext = Buffer.alloc(0);
    } else if (enc === '16') {
        head.push(maskBit | 126);
        ext = Buffer.alloc(2);
        ext.writeUInt16BE(n);
    } else {
        head.push(maskBit | 127);
        ext = Buffer.alloc(8);
        ext.writeBigUInt64BE(BigInt(n));
    }
    if (!mask) return Buffer.concat([Buffer.from(head), ext, data]);
    const key = Buffer.isBuffer(mask) ? mask : crypto.randomBytes(4);
    const masked = Buffer.alloc(n);
    for (let i = 0; i < n; i++) masked[i] = data[i] ^ key[i & 3];
    return Buffer.concat([Buffer.from(head), ext, key, masked]);
}

/**
 * A message as permessage-deflate sends it (RFC 7692 section 7.2.1): raw
 * deflate, sync flush, the trailing 00 00 ff ff removed.
 */
export function deflateMessage(data) {
    const b = zlib.deflateRawSync(Buffer.isBuffer(data) ? data : Buffer.from(data, 'utf8'), { finishFlush: zlib.constants.Z_SYNC_FLUSH });
    assert.deepEqual([...b.subarray(b.length - 4)], [0, 0, 0xff, 0xff], 'a sync flush ends with 00 00 ff ff');
    return b.subarray(0, b.length - 4);
}

/** A close frame payload: 2-byte code + reason. */
export function closePayload(code, reason = '') {
    const r = Buffer.isBuffer(reason) ? reason : Buffer.from(reason, 'utf8');
    const b = Buffer.alloc(2 + r.length);
    b.writeUInt16BE(code);
    r.copy(b, 2);
    return b;
}

/** { code, reason } from a close frame payload (code 1005 if empty). */
export function parseClosePayload(p) {
    if (p.length === 0) return { code: 1005, reason: '' };
    if (p.length === 1) return { code: null, reason: '', invalid: true };
    return { code: p.readUInt16BE(0), reason: p.subarray(2).toString('utf8') };
}

/**
 * Parses server→client frames from buf. Returns { frames, rest }. Every frame
 * is checked against what a server may send: no mask, no reserved bits (RSV1
 * only when permessage-deflate was negotiated, deflate true, and only on a
 * text or binary frame), a known opcode, control frames ≤ 125 bytes and not
 * fragmented; violations are listed in frame.violations.
 */
export function parseServerFrames(buf, { deflate = false } = {}) {
    const frames = [];
    let off = 0;
    for (;;) {
        if (buf.length - off < 2) break;
        const b0 = buf[off];
        const b1 = buf[off + 1];
        let n = b1 & 0x7f;
        let hl = 2;
        if (n === 126) {
            if (buf.length - off < 4) break;
            n = buf.readUInt16BE(off + 2);
            hl = 4;
        } else if (n === 127) {
            if (buf.length - off < 10) break;
            n = Number(buf.readBigUInt64BE(off + 2));
            hl = 10;
        }
        const masked = (b1 & 0x80) !== 0;
        if (masked) hl += 4;
        if (buf.length - off < hl + n) break;
        const f = {
            fin: (b0 & 0x80) !== 0,
            rsv: (b0 >> 4) & 7,
            opcode: b0 & 0xf,
            masked,
            payload: Buffer.from(buf.subarray(off + hl, off + hl + n)),
            violations: [],
        };
        if (masked) f.violations.push('server frame is masked');
        const rsv1Allowed = deflate && f.rsv === 4 && (f.opcode === 1 || f.opcode === 2);
        if (f.rsv && !rsv1Allowed) f.violations.push(`reserved bits ${f.rsv}`);
        if (![0, 1, 2, 8, 9, 10].includes(f.opcode)) f.violations.push(`opcode ${f.opcode}`);
        if (f.opcode >= 8 && (n > 125 || !f.fin)) f.violations.push('bad control frame');
        frames.push(f);
        off += hl + n;
    }
    return { frames, rest: buf.subarray(off) };
}

/** The text of an HTTP/1.1 upgrade request; header values of null are left out. */
export function upgradeRequest(p = '/echo', headers = {}, { method = 'GET', version = '1.1' } = {}) {
    const h = {
        Host: `${HOST}`,
        Upgrade: 'websocket',
        Connection: 'Upgrade',
        'Sec-WebSocket-Key': crypto.randomBytes(16).toString('base64'),
        'Sec-WebSocket-Version': '13',
        ...headers,
    };
    let s = `${method} ${p} HTTP/${version}\r\n`;
    for (const [k, v] of Object.entries(h)) {
        if (v === null || v === undefined) continue;
        for (const one of Array.isArray(v) ? v : [v]) s += `${k}: ${one}\r\n`;
    }
    return { text: `${s}\r\n`, key: h['Sec-WebSocket-Key'] };
}

// ---------------------------------------------------------------------------
// Raw TCP connection with a byte buffer, shared by the raw HTTP and raw
// WebSocket clients.

class RawConn {
    constructor(sock) {
        this.sock = sock;
        this.buf = Buffer.alloc(0);
        this.ended = false;
        this.listeners = [];
        this.endedPromise = new Promise((resolve) => {
            sock.on('close', () => {
                this.ended = true;
                resolve();
                this.poke();
            });
        });
        sock.on('error', (err) => {
            this.error = err;
        });
        sock.on('data', (d) => {
            this.buf = this.buf.length ? Buffer.concat([this.buf, d]) : d;
            this.poke();
        });
    }

    static open(port, { noDelay = true } = {}) {
        return new Promise((resolve, reject) => {
            const sock = net.connect({ host: HOST, port });
            sock.once('error', reject);
            sock.once('connect', () => {
                sock.off('error', reject);
                if (noDelay) sock.setNoDelay(true);
                resolve(sock);
            });
        });
    }

    poke() {
        const ls = this.listeners;
        this.listeners = [];
        for (const l of ls) l();
    }

    /** Waits until check() returns something other than undefined, or the connection ends. */
    waitFor(check, timeoutMs, what) {
        return new Promise((resolve, reject) => {
            const timer = setTimeout(() => {
                reject(new Error(`raw: ${what} not seen within ${timeoutMs} ms (buffered ${this.buf.length} bytes${this.ended ? ', connection ended' : ''})`));
            }, timeoutMs);
            const attempt = () => {
                let r;
                try {
                    r = check();
                } catch (err) {
                    clearTimeout(timer);
                    reject(err);
                    return;
                }
                if (r !== undefined) {
                    clearTimeout(timer);
                    resolve(r);
                } else if (this.ended) {
                    clearTimeout(timer);
                    reject(new Error(`raw: connection ended before ${what} (buffered ${this.buf.length} bytes: ${JSON.stringify(this.buf.subarray(0, 200).toString('latin1'))})`));
                } else {
                    this.listeners.push(attempt);
                }
            };
            attempt();
        });
    }

    write(data) {
        return new Promise((resolve, reject) => {
            this.sock.write(data, (err) => (err ? reject(err) : resolve()));
        });
    }

    /** Writes data in pieces of `size` bytes with a pause between them. */
    async writeSplit(data, size = 1, delayMs = 1) {
        const b = Buffer.isBuffer(data) ? data : Buffer.from(data);
        for (let i = 0; i < b.length; i += size) {
            await this.write(b.subarray(i, i + size));
            if (delayMs) await sleep(delayMs);
        }
    }

    /** Resolves when the server closed the connection (fails after timeoutMs). */
    async waitEnd(timeoutMs = WAIT) {
        let timer;
        const t = new Promise((_, reject) => {
            timer = setTimeout(() => reject(new Error(`raw: server did not close the connection within ${timeoutMs} ms`)), timeoutMs);
        });
        try {
            await Promise.race([this.endedPromise, t]);
        } finally {
            clearTimeout(timer);
        }
    }

    destroy() {
        this.sock.destroy();
    }
}

/** Parses one HTTP response head at the front of buf, or returns undefined. */
function parseHead(buf) {
    const end = buf.indexOf('\r\n\r\n');
    if (end < 0) return undefined;
    const head = buf.subarray(0, end).toString('latin1');
    const lines = head.split('\r\n');
    const m = /^HTTP\/(\d\.\d) (\d{3})(?: (.*))?$/.exec(lines[0]);
    if (!m) throw new Error(`raw: not an HTTP status line: ${JSON.stringify(lines[0])}`);
    const headers = {};
    const all = [];
    for (const line of lines.slice(1)) {
        const i = line.indexOf(':');
        if (i <= 0) throw new Error(`raw: malformed header line ${JSON.stringify(line)}`);
        const k = line.slice(0, i).trim().toLowerCase();
        const v = line.slice(i + 1).trim();
        all.push([k, v]);
        headers[k] = headers[k] !== undefined ? `${headers[k]}, ${v}` : v;
    }
    return { httpVersion: m[1], status: Number(m[2]), statusText: m[3] || '', headers, rawHeaders: all, headLength: end + 4 };
}

/**
 * An HTTP client on one raw TCP connection: write any bytes, read responses
 * one by one (bodies by Content-Length; none for HEAD, 1xx, 204, 304; to the
 * end of the connection when there is no length).
 */
export class RawHttp extends RawConn {
    static async connect(server) {
        return new RawHttp(await RawConn.open(server.port ?? server));
    }

    send(text) {
        return this.write(Buffer.isBuffer(text) ? text : Buffer.from(text, 'latin1'));
    }

    readResponse({ head = false, timeoutMs = WAIT } = {}) {
        return this.waitFor(
            () => {
                const r = parseHead(this.buf);
                if (!r) return undefined;
                const noBody = head || r.status < 200 || r.status === 204 || r.status === 304;
                let bodyLen;
                if (noBody) bodyLen = 0;
                else if (r.headers['content-length'] !== undefined) bodyLen = Number(r.headers['content-length']);
                else if (/chunked/i.test(r.headers['transfer-encoding'] || '')) throw new Error('raw: chunked responses are not expected from tertulia');
                else if (!this.ended) return undefined; // body runs to the end of the connection
                else bodyLen = this.buf.length - r.headLength;
                if (this.buf.length < r.headLength + bodyLen) return undefined;
                r.body = Buffer.from(this.buf.subarray(r.headLength, r.headLength + bodyLen));
                this.buf = this.buf.subarray(r.headLength + bodyLen);
                return r;
            },
            timeoutMs,
            'an HTTP response',
        );
    }
}

/** One request on a fresh connection; resolves to the response (connection then destroyed). */
export async function httpOnce(server, text, opts = {}) {
    const c = await RawHttp.connect(server);
    try {
        await c.send(text);
        return await c.readResponse(opts);
    } finally {
        c.destroy();
    }
}

/**
 * A WebSocket client on a raw TCP socket, for what the `ws` package refuses to
 * do: unmasked frames, reserved bits, fragmented control frames, invalid
 * UTF-8, partial frames, any split of the bytes. It reads server frames and
 * checks each against the RFC (see parseServerFrames).
 */
export class RawWs extends RawConn {
    /**
     * Connects and performs the opening handshake. headers override the
     * request's (null removes one). Resolves once the response head arrived;
     * rejects unless it is 101 with the right Accept, unless expectStatus is
     * given (then resolves with the refusal response, body read).
     */
    static async connect(server, p = '/echo', { headers = {}, protocol, timeoutMs = WAIT } = {}) {
        const sock = await RawConn.open(server.port ?? server);
        const c = new RawWs(sock);
        const h = { ...headers };
        if (protocol) h['Sec-WebSocket-Protocol'] = protocol;
        const req = upgradeRequest(p, h);
        await c.write(Buffer.from(req.text, 'latin1'));
        const res = await c.waitFor(() => parseHead(c.buf), timeoutMs, 'the handshake response');
        c.buf = c.buf.subarray(res.headLength);
        c.response = res;
        if (res.status !== 101) {
            c.destroy();
            throw new Error(`raw: handshake to ${p} answered ${res.status} ${res.statusText}`);
        }
        assert.equal(res.headers['sec-websocket-accept'], acceptFor(req.key), 'Sec-WebSocket-Accept matches the key');
        // permessage-deflate, when the server accepted it: RSV1 frames are
        // then allowed, and nextMessage inflates them.
        c.deflate = /permessage-deflate/.test(res.headers['sec-websocket-extensions'] || '');
        c.frames = new Inbox(`raw${p}`);
        c.violations = [];
        c.pumpFrames();
        c.sock.on('data', () => c.pumpFrames());
        c.endedPromise.then(() => {
            c.pumpFrames();
            c.frames.close('tcp closed');
        });
        return c;
    }

    pumpFrames() {
        if (this.paused) return;
        const { frames, rest } = parseServerFrames(this.buf, { deflate: this.deflate });
        this.buf = Buffer.from(rest);
        for (const f of frames) {
            this.violations.push(...f.violations);
            this.frames.push(f);
        }
    }

    /** Stops reading from the kernel: the server's writes back up. */
    pause() {
        this.paused = true;
        this.sock.pause();
    }

    resume() {
        this.paused = false;
        this.sock.resume();
        this.pumpFrames();
    }

    sendFrame(opts) {
        if (opts.opcode === 8) this.sentClose = true;
        return this.write(frame(opts));
    }

    sendText(text, opts = {}) {
        return this.sendFrame({ opcode: 1, payload: text, ...opts });
    }

    /** Sends data (string: text, Buffer: binary) as one compressed message (RSV1). */
    sendCompressed(data, opts = {}) {
        return this.sendFrame({ opcode: typeof data === 'string' ? 1 : 2, payload: deflateMessage(data), rsv: 4, ...opts });
    }

    sendClose(code, reason = '') {
        return this.sendFrame({ opcode: 8, payload: code === undefined ? Buffer.alloc(0) : closePayload(code, reason) });
    }

    nextFrame(spec, timeoutMs = WAIT) {
        return this.frames.next(spec, timeoutMs);
    }

    /**
     * The next complete data message, reassembled from its frames whatever
     * the server's fragmentation: { opcode, data, compressed } (a message
     * with RSV1 is inflated: RFC 7692, the 00 00 ff ff trailer restored).
     * Control frames met on the way stay in the inbox.
     */
    async nextMessage(timeoutMs = WAIT) {
        const first = await this.nextFrame((f) => f.opcode === 1 || f.opcode === 2 || f.opcode === 0, timeoutMs);
        assert.notEqual(first.opcode, 0, 'a server message starts with a text or binary frame, not a continuation');
        const parts = [first.payload];
        let f = first;
        while (!f.fin) {
            f = await this.nextFrame((x) => x.opcode < 8, timeoutMs);
            assert.equal(f.opcode, 0, 'the fragments of a server message are continuation frames');
            assert.equal(f.rsv, 0, 'RSV1 is set on the first frame of a message only');
            parts.push(f.payload);
        }
        const compressed = (first.rsv & 4) !== 0;
        const data = Buffer.concat(parts);
        if (!compressed) return { opcode: first.opcode, data, compressed, wireLength: data.length };
        const plain = zlib.inflateRawSync(Buffer.concat([data, Buffer.from([0, 0, 0xff, 0xff])]), { finishFlush: zlib.constants.Z_SYNC_FLUSH });
        return { opcode: first.opcode, data: plain, compressed, wireLength: data.length };
    }

    /**
     * Waits for the server's close frame, answers it with the same code
     * (as a well-behaved client does, unless we sent a close first), then
     * waits for the TCP close. Returns { code, reason }.
     */
    async waitClose(timeoutMs = WAIT) {
        const f = await this.nextFrame((x) => x.opcode === 8, timeoutMs);
        const info = parseClosePayload(f.payload);
        if (!this.sentClose) {
            try {
                await this.sendClose(info.code && info.code !== 1005 ? info.code : undefined);
            } catch {
                // the server may already have dropped TCP after its close frame; allowed
            }
        }
        await this.waitEnd(timeoutMs);
        return info;
    }

    /** waitClose() and checks the code; the reason must fit a control frame. */
    async expectClose(code, timeoutMs = WAIT) {
        const info = await this.waitClose(timeoutMs);
        assert.equal(info.code, code, `close code (reason ${JSON.stringify(info.reason)})`);
        assert.ok(Buffer.byteLength(info.reason) <= 123, 'close reason fits a control frame');
        return info;
    }
}

// ---------------------------------------------------------------------------
// Prometheus text

/**
 * Checks a /metrics text with promtool (Debian's prometheus package) and
 * returns its samples as a Map from `name{labels}` to the number.
 */
export function parseMetrics(text) {
    const check = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
    assert.equal(check.error, undefined, `promtool must be installed (scripts/deps.sh --test): ${check.error}`);
    assert.equal(check.status, 0, `promtool check metrics:\n${check.stdout}${check.stderr}`);
    const values = new Map();
    for (const line of text.split('\n')) {
        if (line === '' || line.startsWith('#')) continue;
        const m = /^(\S+) (\S+)$/.exec(line);
        assert.ok(m, `a sample line: ${line}`);
        values.set(m[1], Number(m[2]));
    }
    return values;
}

/**
 * Resolves with promise, or fails once ms have passed. The timer is a
 * referenced one: while it runs the test file's process stays alive, also
 * when nothing else would keep it (a killed server's exit, helpers'
 * unreferenced processes). The timer never outlives the wait.
 */
export async function bounded(promise, ms, what) {
    let timer;
    const late = new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`${what} did not happen within ${ms} ms`)), ms);
    });
    try {
        return await Promise.race([promise, late]);
    } finally {
        clearTimeout(timer);
    }
}
