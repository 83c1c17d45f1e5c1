// HTTP/1.1 behaviour of the real server: the embedded web client, ETag/304,
// HEAD, errors (404, 405 + Allow, 400, 431) and keep-alive. Raw TCP requests
// so every byte of the exchange is under the test's control.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';

import { RawHttp, httpOnce, startServer } from './helpers.mjs';

const WEB_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../web');

// Content types a browser accepts for each extension we may embed.
const TYPES = {
    '.html': [/^text\/html\b/],
    '.js': [/^text\/javascript\b/, /^application\/javascript\b/],
    '.mjs': [/^text\/javascript\b/, /^application\/javascript\b/],
    '.css': [/^text\/css\b/],
    '.svg': [/^image\/svg\+xml\b/],
    '.png': [/^image\/png$/],
    '.ico': [/^image\/(x-icon|vnd\.microsoft\.icon)$/],
    '.json': [/^application\/json\b/],
    '.webmanifest': [/^application\/manifest\+json\b/, /^application\/json\b/],
    '.txt': [/^text\/plain\b/],
    '.woff2': [/^font\/woff2$/],
};

function webFiles(dir = WEB_DIR, prefix = '') {
    if (!fs.existsSync(dir)) return [];
    const out = [];
    for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
        if (e.name.startsWith('.')) continue;
        const full = path.join(dir, e.name);
        if (e.isDirectory()) out.push(...webFiles(full, `${prefix}/${e.name}`));
        else out.push({ url: `${prefix}/${e.name}`, full });
    }
    return out;
}

function get(p, extra = '') {
    return `GET ${p} HTTP/1.1\r\nHost: 127.0.0.1\r\n${extra}\r\n`;
}

function assertLengthMatches(res) {
    assert.equal(Number(res.headers['content-length']), res.body.length, 'Content-Length matches the body');
}

let server;
before(async () => {
    server = await startServer();
});
after(async () => {
    await server?.stopClean();
});

describe('static files', () => {
    test('GET / serves the web client as HTML with Content-Length and a strong ETag', async () => {
        const res = await httpOnce(server, get('/'));
        assert.equal(res.status, 200);
        assert.match(res.headers['content-type'] || '', /^text\/html\b/);
        assert.equal(Number(res.headers['content-length']), res.body.length);
        assert.ok(res.body.length > 0, 'the page is not empty');
        assert.match(res.body.toString('utf8'), /<html|<!doctype html/i);
        assert.match(res.headers.etag || '', /^"[^"]+"$/, 'a quoted strong ETag');
    });

    test('/index.html is the same page as /', async () => {
        const a = await httpOnce(server, get('/'));
        const b = await httpOnce(server, get('/index.html'));
        assert.equal(b.status, 200);
        assert.deepEqual(b.body, a.body);
        assert.equal(b.headers.etag, a.headers.etag);
    });

    test('every file under web/ is served with its exact bytes and a fitting Content-Type', async () => {
        const files = webFiles();
        assert.ok(files.length > 0, `web/ (${WEB_DIR}) holds files`);
        const etags = new Set();
        const c = await RawHttp.connect(server);
        try {
            for (const f of files) {
                await c.send(get(f.url));
                const res = await c.readResponse();
                assert.equal(res.status, 200, `GET ${f.url}`);
                assert.deepEqual(res.body, fs.readFileSync(f.full), `GET ${f.url} returns the file's bytes (a stale build also fails here)`);
                const ct = res.headers['content-type'] || '';
                assert.ok(ct.length > 0, `GET ${f.url} has a Content-Type`);
                const allowed = TYPES[path.extname(f.url)];
                if (allowed) assert.ok(allowed.some((re) => re.test(ct)), `GET ${f.url}: Content-Type ${ct}`);
                if (/^text\/html/.test(ct)) assert.match(ct, /charset=utf-8/i, `${f.url}: HTML names its charset`);
                assert.match(res.headers.etag || '', /^"[^"]+"$/);
                etags.add(res.headers.etag);
            }
        } finally {
            c.destroy();
        }
        assert.equal(etags.size, files.length, 'every file has its own ETag');
    });

    test('HEAD answers with the headers of GET and no body', async () => {
        const c = await RawHttp.connect(server);
        try {
            await c.send(get('/'));
            const g = await c.readResponse();
            // HEAD then GET in one write: if HEAD carried a body, the second
            // response would not parse as a status line.
            await c.send(`HEAD / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n${get('/nope-after-head')}`);
            const h = await c.readResponse({ head: true });
            assert.equal(h.status, 200);
            assert.equal(h.headers['content-length'], g.headers['content-length']);
            assert.equal(h.headers['content-type'], g.headers['content-type']);
            assert.equal(h.headers.etag, g.headers.etag);
            const next = await c.readResponse();
            assert.equal(next.status, 404, 'the response after HEAD starts right after its head');
        } finally {
            c.destroy();
        }
    });
});

describe('conditional requests', () => {
    test('If-None-Match with the current ETag gets 304 with the ETag and no body', async () => {
        const first = await httpOnce(server, get('/'));
        const c = await RawHttp.connect(server);
        try {
            await c.send(`${get('/', `If-None-Match: ${first.headers.etag}\r\n`)}${get('/nope-after-304')}`);
            const res = await c.readResponse();
            assert.equal(res.status, 304);
            assert.equal(res.headers.etag, first.headers.etag);
            const next = await c.readResponse();
            assert.equal(next.status, 404, 'no body bytes followed the 304');
        } finally {
            c.destroy();
        }
    });

    test('If-None-Match listing the ETag among others gets 304; another ETag gets 200', async () => {
        const first = await httpOnce(server, get('/'));
        const listed = await httpOnce(server, get('/', `If-None-Match: "not-it", ${first.headers.etag}\r\n`));
        assert.equal(listed.status, 304);
        const other = await httpOnce(server, get('/', 'If-None-Match: "certainly-not-the-etag"\r\n'));
        assert.equal(other.status, 200);
        assert.deepEqual(other.body, first.body);
    });
});

describe('errors', () => {
    test('an unknown path gets 404 with a body and the connection stays usable', async () => {
        const c = await RawHttp.connect(server);
        try {
            await c.send(get('/no/such/file.html'));
            const res = await c.readResponse();
            assert.equal(res.status, 404);
            assertLengthMatches(res);
            await c.send(get('/'));
            assert.equal((await c.readResponse()).status, 200);
        } finally {
            c.destroy();
        }
    });

    test('paths that climb out of the web root are never served', async () => {
        for (const p of ['/../CMakeLists.txt', '/%2e%2e/CMakeLists.txt', '/..%2fCMakeLists.txt', '//etc/passwd', '/../../../../etc/passwd', '/web/../../etc/passwd']) {
            const res = await httpOnce(server, get(p));
            assert.ok([400, 404].includes(res.status), `${p} → ${res.status}`);
            assert.doesNotMatch(res.body.toString('latin1'), /cmake_minimum_required|root:x:0:0/, p);
        }
    });

    for (const method of ['POST', 'PUT', 'DELETE', 'OPTIONS', 'PATCH']) {
        test(`${method} / gets 405 with an Allow header listing GET and HEAD`, async () => {
            const res = await httpOnce(server, `${method} / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 5\r\n\r\nhello`);
            assert.equal(res.status, 405);
            const allow = (res.headers.allow || '').split(',').map((s) => s.trim().toUpperCase());
            assert.ok(allow.includes('GET') && allow.includes('HEAD'), `Allow: ${res.headers.allow}`);
            assert.ok(!allow.includes(method), `Allow does not list ${method}`);
        });
    }

    for (const [name, raw] of [
        ['a garbage request line', 'GARBAGE\r\n\r\n'],
        ['a header line without a colon', 'GET / HTTP/1.1\r\nHost 127.0.0.1\r\n\r\n'],
        ['a bad HTTP version', 'GET / HTTP/9x\r\nHost: 127.0.0.1\r\n\r\n'],
        ['binary noise', Buffer.from([0x16, 0x03, 0x01, 0x00, 0xa5, 0x01, 0x00, 0x00, 0xa1, 0x03, 0x03, 0x0d, 0x0a, 0x0d, 0x0a])],
    ]) {
        test(`${name} gets 400 and the server closes the connection`, async () => {
            const c = await RawHttp.connect(server);
            try {
                await c.send(raw);
                const res = await c.readResponse();
                assert.equal(res.status, 400);
                await c.waitEnd();
            } finally {
                c.destroy();
            }
        });
    }

    test('a request head over 8 KiB gets 431', async () => {
        const res = await httpOnce(server, get('/', `X-Filler: ${'a'.repeat(9000)}\r\n`));
        assert.equal(res.status, 431);
    });

    test('many small headers adding up to more than 8 KiB get 431', async () => {
        let extra = '';
        for (let i = 0; i < 300; i++) extra += `X-Header-${i}: ${'v'.repeat(30)}\r\n`;
        const res = await httpOnce(server, get('/', extra));
        assert.equal(res.status, 431);
    });

    test('a request head of 7 KiB is served', async () => {
        const res = await httpOnce(server, get('/', `X-Filler: ${'a'.repeat(7000)}\r\n`));
        assert.equal(res.status, 200);
    });

    test('a head over 8 KiB that never ends is refused without waiting for its end', async () => {
        const c = await RawHttp.connect(server);
        try {
            await c.send(`GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Filler: ${'a'.repeat(20000)}`);
            const res = await c.readResponse();
            assert.equal(res.status, 431);
        } finally {
            c.destroy();
        }
    });
});

describe('connections', () => {
    test('two requests one after the other on one connection are both answered (keep-alive)', async () => {
        const c = await RawHttp.connect(server);
        try {
            await c.send(get('/'));
            assert.equal((await c.readResponse()).status, 200);
            await c.send(get('/'));
            assert.equal((await c.readResponse()).status, 200);
            assert.equal(c.ended, false, 'the connection is still open');
        } finally {
            c.destroy();
        }
    });

    test('pipelined requests in one write are answered in order', async () => {
        const c = await RawHttp.connect(server);
        try {
            await c.send(get('/missing-1') + get('/') + `HEAD / HTTP/1.1\r\nHost: x\r\n\r\n` + get('/missing-2'));
            assert.equal((await c.readResponse()).status, 404);
            assert.equal((await c.readResponse()).status, 200);
            assert.equal((await c.readResponse({ head: true })).status, 200);
            assert.equal((await c.readResponse()).status, 404);
        } finally {
            c.destroy();
        }
    });

    test('a request split byte by byte is answered', async () => {
        const c = await RawHttp.connect(server);
        try {
            await c.writeSplit(get('/', 'Accept: */*\r\n'), 1, 1);
            assert.equal((await c.readResponse()).status, 200);
        } finally {
            c.destroy();
        }
    });

    test('Connection: close gets the response and then the server closes', async () => {
        const c = await RawHttp.connect(server);
        try {
            await c.send(get('/', 'Connection: close\r\n'));
            assert.equal((await c.readResponse()).status, 200);
            await c.waitEnd();
        } finally {
            c.destroy();
        }
    });

    test('an HTTP/1.0 request without keep-alive is answered and closed', async () => {
        const c = await RawHttp.connect(server);
        try {
            await c.send('GET / HTTP/1.0\r\n\r\n');
            const res = await c.readResponse();
            assert.equal(res.status, 200);
            await c.waitEnd();
        } finally {
            c.destroy();
        }
    });
});
