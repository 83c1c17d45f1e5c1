// RFC 9112's MUSTs for request heads, through the real server: every head a
// server must refuse (behind a proxy, request-smuggling material) gets 400
// and a closed connection, while the valid heads next to them are served;
// and a size option that overflows 64 bits stops the server at start-up.
// Raw TCP requests, so every byte of the exchange is under the test's
// control.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import { BIN, HOST, RawHttp, WAIT, acceptFor, sleep, startServer, upgradeRequest } from './helpers.mjs';

const HEAD = 'GET / HTTP/1.1\r\n';
const POST = 'POST / HTTP/1.1\r\nHost: 127.0.0.1\r\n';

// [what the head has, the head]. Each one is served with 200 by a lenient
// parser; each must get 400.
const REFUSED = [
    ['an HTTP/1.1 request without Host', `${HEAD}\r\n`],
    ['an HTTP/1.1 request with fields but no Host', `${HEAD}Accept: */*\r\n\r\n`],
    ['an upgrade without Host', upgradeRequest('/ws', { Host: null }).text],
    ['a head with two Host lines', `${HEAD}Host: 127.0.0.1\r\nHost: 127.0.0.1\r\n\r\n`],
    ['a head with two Host lines naming different hosts', `${HEAD}Host: 127.0.0.1\r\nhost: evil.example\r\n\r\n`],
    ['an HTTP/1.0 head with two Host lines', 'GET / HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n'],
    ['a Host value with a space inside', `${HEAD}Host: 127.0.0.1 x\r\n\r\n`],
    ['a space between a field name and its colon', `${HEAD}Host : 127.0.0.1\r\n\r\n`],
    ['a tab between a field name and its colon', `${HEAD}Host: 127.0.0.1\r\nAccept\t: */*\r\n\r\n`],
    ['an obsolete line fold with a space', `${HEAD}Host: 127.0.0.1\r\nX-A: a\r\n b\r\n\r\n`],
    ['an obsolete line fold with a tab', `${HEAD}Host: 127.0.0.1\r\nX-A: a\r\n\tb\r\n\r\n`],
    ['a head with whitespace before its first field line', `${HEAD} Host: 127.0.0.1\r\n\r\n`],
    ['a bare CR inside a field value', `${HEAD}Host: 127.0.0.1\r\nX-A: a\rb\r\n\r\n`],
    ['a bare CR ending a line', `${HEAD}Host: 127.0.0.1\rX-A: b\r\n\r\n`],
    ['a field name with a character that is not a token character', `${HEAD}Host: 127.0.0.1\r\nX@Y: v\r\n\r\n`],
    ['an empty field name', `${HEAD}Host: 127.0.0.1\r\n: v\r\n\r\n`],
    ['a head with both Content-Length and Transfer-Encoding', `${POST}Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\nhello`],
    ['a head with Transfer-Encoding before Content-Length', `${POST}Transfer-Encoding: chunked\r\nContent-Length: 0\r\n\r\n`],
    ['a Transfer-Encoding whose final coding is not chunked', `${POST}Transfer-Encoding: gzip\r\n\r\n`],
    ['a Content-Length that is not a number', `${POST}Content-Length: five\r\n\r\n`],
    ['a Content-Length with a sign', `${POST}Content-Length: +5\r\n\r\nhello`],
    ['a Content-Length list', `${POST}Content-Length: 5, 5\r\n\r\nhello`],
    ['a Content-Length past 64 bits', `${POST}Content-Length: 18446744073709551616\r\n\r\n`],
    ['a head with two different Content-Length lines', `${POST}Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello`],
    ['a request-target that is not origin-form or absolute-form', 'GET ws HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n'],
    ['a GET in the authority-form', 'GET 127.0.0.1:80 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n'],
    ['a CONNECT in the origin-form', 'CONNECT / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n'],
    ['a request line with two spaces after the method', 'GET  / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n'],
    ['a request after five empty lines', `\r\n\r\n\r\n\r\n\r\n${HEAD}Host: 127.0.0.1\r\n\r\n`],
];

// Valid heads next to the refused ones: [what, head, status].
const SERVED = [
    ['a Host line with a space after the colon', `${HEAD}Host: 127.0.0.1\r\n\r\n`, 200],
    ['a Host line with no space after the colon', `${HEAD}Host:127.0.0.1\r\n\r\n`, 200],
    ['a Host value with spaces and tabs around it', `${HEAD}Host: \t127.0.0.1 \t\r\n\r\n`, 200],
    ['an HTTP/1.0 request without Host', 'GET / HTTP/1.0\r\n\r\n', 200],
    ['a request in the absolute-form', `GET http://${HOST}/ HTTP/1.1\r\nHost: ${HOST}\r\n\r\n`, 200],
    ['a head with bare LF line ends', 'GET / HTTP/1.1\nHost: 127.0.0.1\n\n', 200],
];

let server;
before(async () => {
    server = await startServer(['--db', ':memory:']);
});
after(async () => {
    await server?.stopClean();
});

/** Sends raw on a fresh connection; returns the response and the connection (the caller destroys it). */
async function exchange(raw) {
    const c = await RawHttp.connect(server);
    try {
        await c.send(raw);
        const res = await c.readResponse();
        return { res, c };
    } catch (err) {
        c.destroy();
        throw err;
    }
}

describe('heads RFC 9112 says a server must refuse', () => {
    for (const [name, raw] of REFUSED) {
        test(`${name} gets 400 and the server closes the connection`, async () => {
            const { res, c } = await exchange(raw);
            try {
                assert.equal(res.status, 400, `${JSON.stringify(raw)} → ${res.status}`);
                assert.equal(Number(res.headers['content-length']), res.body.length);
                await c.waitEnd();
            } finally {
                c.destroy();
            }
        });
    }

    test('a refused head does not stop the next connection from being served', async () => {
        const bad = await exchange(`${HEAD}Host : 127.0.0.1\r\n\r\n`);
        bad.c.destroy();
        assert.equal(bad.res.status, 400);
        const good = await exchange(`${HEAD}Host: 127.0.0.1\r\n\r\n`);
        good.c.destroy();
        assert.equal(good.res.status, 200);
    });
});

describe('valid heads next to them', () => {
    for (const [name, raw, status] of SERVED) {
        test(`${name} is served`, async () => {
            const { res, c } = await exchange(raw);
            c.destroy();
            assert.equal(res.status, status);
        });
    }

    test('an upgrade request with Host gets 101', async () => {
        const req = upgradeRequest('/ws');
        const { res, c } = await exchange(req.text);
        c.destroy();
        assert.equal(res.status, 101);
        assert.equal(res.headers['sec-websocket-accept'], acceptFor(req.key));
    });

    // RFC 9112 section 2.2: a server SHOULD ignore at least one empty line
    // before a request line (clients have sent CRLF after a POST body).
    // http_req skips up to four.
    for (const [name, prefix] of [
        ['one empty line (CRLF)', '\r\n'],
        ['two empty lines (CRLF CRLF, not an empty head)', '\r\n\r\n'],
        ['two bare LF empty lines', '\n\n'],
        ['four empty lines (the most skipped)', '\r\n\n\r\n\r\n'],
    ]) {
        test(`a request after ${name} in the same write is served`, async () => {
            const { res, c } = await exchange(`${prefix}${HEAD}Host: 127.0.0.1\r\n\r\n`);
            c.destroy();
            assert.equal(res.status, 200);
        });
    }

    // When the empty lines arrive in a read of their own, the connection
    // code refuses them before http_req sees a head: its early check for
    // non-HTTP bytes wants the first byte to be A-Z.
    for (const [name, prefix] of [
        ['one empty line (CRLF)', '\r\n'],
        ['two empty lines (CRLF CRLF)', '\r\n\r\n'],
        ['an empty line (bare LF)', '\n'],
    ]) {
        test(`a request after ${name} sent on its own is served`, async () => {
            const c = await RawHttp.connect(server);
            try {
                await c.send(prefix);
                await sleep(100);
                await c.send(`${HEAD}Host: 127.0.0.1\r\n\r\n`);
                assert.equal((await c.readResponse()).status, 200);
            } finally {
                c.destroy();
            }
        });
    }

    test('a CRLF between two requests on a keep-alive connection is skipped', async () => {
        const c = await RawHttp.connect(server);
        try {
            await c.send(`${HEAD}Host: 127.0.0.1\r\n\r\n`);
            assert.equal((await c.readResponse()).status, 200);
            await c.send('\r\n');
            await sleep(100);
            await c.send(`${HEAD}Host: 127.0.0.1\r\n\r\n`);
            assert.equal((await c.readResponse()).status, 200);
        } finally {
            c.destroy();
        }
    });
});

/** Runs the binary with args until it exits; resolves to { code, signal, stderr }. */
function runToExit(args, timeoutMs = WAIT * 2) {
    const cwd = fs.mkdtempSync(path.join(os.tmpdir(), 'tertulia-it-'));
    return new Promise((resolve, reject) => {
        const proc = spawn(BIN, args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
        let stderr = '';
        proc.stderr.setEncoding('utf8');
        proc.stderr.on('data', (d) => {
            stderr += d;
        });
        const timer = setTimeout(() => {
            proc.kill('SIGKILL');
            reject(new Error(`tertulia ${args.join(' ')} did not exit within ${timeoutMs} ms; stderr:\n${stderr}`));
        }, timeoutMs);
        proc.on('error', (err) => {
            clearTimeout(timer);
            reject(err);
        });
        proc.on('exit', (code, signal) => {
            clearTimeout(timer);
            fs.rmSync(cwd, { recursive: true, force: true });
            resolve({ code, signal, stderr });
        });
    });
}

describe('size options that overflow', () => {
    for (const [value, why] of [
        ['18014398509481985K', 'which wraps around to 1024 in 64 bits'],
        ['17592186044417M', 'which wraps around to 1 MiB in 64 bits'],
        ['99999999999999999999K', 'whose digits alone pass 64 bits'],
    ]) {
        test(`--max-queue ${value}, ${why}, makes the server exit with status 2 saying it is too large`, async () => {
            const r = await runToExit(['--listen', `${HOST}:0`, '--db', ':memory:', '--max-queue', value]);
            assert.equal(r.signal, null);
            assert.equal(r.code, 2, `exit status; stderr:\n${r.stderr}`);
            assert.match(r.stderr, new RegExp(`--max-queue: '${value}' is too large`));
            assert.doesNotMatch(r.stderr, /listening on/, 'it never listened');
        });
    }

    test('--max-message 1048577K, one KiB past its maximum, makes the server exit with status 2', async () => {
        const r = await runToExit(['--listen', `${HOST}:0`, '--db', ':memory:', '--max-message', '1048577K']);
        assert.equal(r.code, 2, `exit status; stderr:\n${r.stderr}`);
        assert.match(r.stderr, /--max-message: '1048577K' is too large/);
    });
});
