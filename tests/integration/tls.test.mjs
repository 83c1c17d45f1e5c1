// TLS (https://, wss://): one process serving TLS on one port and plain on
// another, the web client over https, the chat over wss with the `ws`
// client, certificate reload on SIGHUP with nothing dropped, and what the
// TLS port does with clients that are not TLS, too old, stalled or gone.
// The CA is made by the test (tls-helpers.mjs).

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import { after, before, test } from 'node:test';

import { BIN, HOST, connect, login, startServer, uniq, waitMembers } from './helpers.mjs';
import { clientHello, httpsGet, makePki, startTlsServer, tlsConnect, waitLog } from './tls-helpers.mjs';

let pki;
let pairA;
let server;
before(async () => {
    pki = makePki();
    pairA = pki.issue('server-a', '1001');
    server = await startTlsServer(pairA, pki.ca, ['--db', ':memory:', '--head-timeout', '2']);
});
after(async () => {
    await server?.stopClean();
});

/** A raw TCP connection to port; resolves once connected. */
function rawSocket(port) {
    return new Promise((resolve, reject) => {
        const s = net.connect({ host: HOST, port });
        s.once('connect', () => resolve(s));
        s.once('error', reject);
    });
}

/** Everything a raw socket receives until the server closes it. */
function readToClose(sock) {
    return new Promise((resolve) => {
        const chunks = [];
        sock.on('data', (d) => chunks.push(d));
        sock.on('error', () => {});
        sock.on('close', () => resolve(Buffer.concat(chunks)));
    });
}

test('the startup log names every address and whether it is TLS', () => {
    assert.match(server.stderr, /listening on 127\.0\.0\.1:\d+ \(plain\)/);
    assert.match(server.stderr, /listening on 127\.0\.0\.1:\d+ \(TLS\)/);
    assert.match(server.stderr, /TLS certificate: subject .*CN ?= ?server-a.*serial 1001/);
});

test('wss clients log in, talk in a room and privately, with plain ws clients in the same room', async () => {
    const room = uniq('tlsroom');
    const a = await login(server.wss, uniq('secure'), { room });
    const b = await login(server, uniq('plain'), { room });
    await waitMembers(a, room, (m) => m.includes(b.nickname));
    a.send({ type: 'room', to: room, message: { text: 'over TLS' } });
    assert.equal((await b.next((m) => m.type === 'room' && m.message?.text === 'over TLS')).from, a.nickname);
    b.send({ type: 'room', to: room, message: { text: 'over TCP' } });
    assert.equal((await a.next((m) => m.type === 'room' && m.message?.text === 'over TCP')).from, b.nickname);
    a.send({ type: 'private', to: b.nickname, message: { text: 'psst' } });
    assert.equal((await b.next((m) => m.type === 'private' && m.message?.text === 'psst')).from, a.nickname);
    b.send({ type: 'private', to: a.nickname, message: { text: 'back' } });
    assert.equal((await a.next((m) => m.type === 'private' && m.message?.text === 'back')).from, b.nickname);
    // A message larger than a TLS record (16 KiB) crosses intact both ways.
    const big = 'x'.repeat(3000) + 'é'.repeat(500);
    a.send({ type: 'room', to: room, message: { text: big.slice(0, 4000) } });
    assert.equal((await b.next((m) => m.type === 'room' && m.from === a.nickname && m.message?.text.length > 100)).message.text, big.slice(0, 4000));
    await Promise.all([a.close(), b.close()]);
});

test('the web client is served over https with ALPN http/1.1', async () => {
    const r = await httpsGet(server, pki.ca, '/');
    assert.equal(r.status, 200);
    assert.match(r.headers['content-type'], /text\/html/);
    assert.match(r.body.toString('utf8'), /<html/);
    assert.equal(r.alpn, 'http/1.1');
});

test('ALPN: http/1.1 is chosen among offers; a client offering none or only h2 still connects', async () => {
    const both = await tlsConnect(server.tlsPort, pki.ca, { ALPNProtocols: ['h2', 'http/1.1'] });
    assert.equal(both.alpnProtocol, 'http/1.1');
    both.destroy();
    const none = await tlsConnect(server.tlsPort, pki.ca);
    assert.equal(none.alpnProtocol, false);
    none.destroy();
    const h2 = await tlsConnect(server.tlsPort, pki.ca, { ALPNProtocols: ['h2'] });
    assert.equal(h2.alpnProtocol, false);
    assert.ok(['TLSv1.2', 'TLSv1.3'].includes(h2.getProtocol()));
    h2.destroy();
});

test('TLS 1.2 is served; TLS 1.1 is refused with a log line', async () => {
    const s12 = await tlsConnect(server.tlsPort, pki.ca, { maxVersion: 'TLSv1.2' });
    assert.equal(s12.getProtocol(), 'TLSv1.2');
    s12.destroy();
    await assert.rejects(tlsConnect(server.tlsPort, pki.ca, { minVersion: 'TLSv1.1', maxVersion: 'TLSv1.1', ciphers: 'DEFAULT@SECLEVEL=0' }));
    await waitLog(server, /refused: (unsupported protocol|no protocols available|wrong version number)/);
});

test('a session ticket resumes the session on the next connection', async () => {
    const first = await tlsConnect(server.tlsPort, pki.ca);
    const session = await new Promise((resolve) => first.once('session', resolve));
    first.destroy();
    const second = await tlsConnect(server.tlsPort, pki.ca, { session });
    assert.equal(second.isSessionReused(), true);
    second.destroy();
});

test('plain HTTP sent to the TLS port gets a plain-text 400 and a close', async () => {
    const sock = await rawSocket(server.tlsPort);
    const all = readToClose(sock);
    sock.write(`GET / HTTP/1.1\r\nHost: ${HOST}\r\n\r\n`);
    const text = (await all).toString('latin1');
    assert.match(text, /^HTTP\/1\.1 400 Bad Request\r\n/);
    assert.match(text, /plain HTTP sent to a TLS port/);
    await waitLog(server, /refused: plain bytes sent to a TLS port/);
});

test('a handshake that stalls is closed at the head timeout', async () => {
    const hello = await clientHello();
    const sock = await rawSocket(server.tlsPort);
    const closed = readToClose(sock);
    const t0 = Date.now();
    sock.write(hello.subarray(0, 20)); // a handshake record begun, never finished
    await closed;
    assert.ok(Date.now() - t0 >= 900, `closed after ${Date.now() - t0} ms, before the 2 s deadline`);
    await waitLog(server, /refused: TLS handshake timeout/);
});

test('clients that vanish mid-handshake are cleaned up and the server goes on', async () => {
    const hello = await clientHello();
    for (let i = 0; i < 40; i++) {
        const sock = await rawSocket(server.tlsPort);
        const closed = readToClose(sock);
        // Half of them after a whole ClientHello (the server answered and
        // holds a handshake in progress), half after part of one.
        sock.write(i % 2 ? hello : hello.subarray(0, 50), () => sock.destroy());
        await closed;
    }
    const c = await login(server.wss, uniq('after'));
    await c.request({ type: 'ping' }, 'pong');
    await c.close();
});

test('a wss client that stops reading is closed with 1008 at the queue bound; TLS output counts', async () => {
    const s = await startTlsServer(pairA, pki.ca, ['--db', ':memory:', '--max-queue', String(256 * 1024), '--rate-limit', '0']);
    try {
        const room = uniq('slowtls');
        const sender = await login(s, uniq('sender'), { room });
        const slow = await login(s.wss, uniq('slow'), { room });
        await waitMembers(sender, room, (m) => m.includes(slow.nickname));
        slow.ws._socket.pause();
        // Random text: it must fill the queue whether or not the client
        // negotiated permessage-deflate (repeated letters compress to nothing).
        const text = crypto.randomBytes(3000).toString('base64');
        for (let i = 0; i < 4000 && !/closing with 1008/.test(s.stderr); i++) {
            sender.send({ type: 'room', to: room, message: { text } });
            if (i % 10 === 9) await sender.request({ type: 'ping' }, 'pong');
        }
        await waitLog(s, /closing with 1008/);
        slow.ws._socket.resume();
        const info = await slow.waitClose(20000);
        assert.equal(info.code, 1008, s.stderr.split('\n').filter((l) => /closed|clos/.test(l)).slice(-10).join('\n') + JSON.stringify(slow.errors.map(String)));
        await sender.request({ type: 'ping' }, 'pong');
        await sender.close();
    } finally {
        await s.stopClean();
    }
});

test('SIGHUP reloads the certificate under load: no connection dropped, new handshakes get the new one', { timeout: 60000 }, async () => {
    const dir = fs.mkdtempSync(`${pki.dir}/live-`);
    const live = { cert: `${dir}/cert.pem`, key: `${dir}/key.pem` };
    fs.copyFileSync(pairA.cert, live.cert);
    fs.copyFileSync(pairA.key, live.key);
    const s = await startTlsServer(live, pki.ca, ['--db', ':memory:', '--rate-limit', '0']);
    try {
        const room = uniq('reload');
        const members = [];
        for (let i = 0; i < 20; i++) members.push(await login(s.wss, uniq('m'), { room }));
        await waitMembers(members[0], room, (m) => m.length === 20);
        const before = await tlsConnect(s.tlsPort, pki.ca);
        assert.equal(before.getPeerCertificate().serialNumber, '1001');
        before.destroy();

        // Load: the first member keeps sending while the pair is replaced
        // and the server reloads it.
        let sent = 0;
        let sending = true;
        const pump = (async () => {
            while (sending) {
                members[0].send({ type: 'room', to: room, message: { text: `m${sent}` } });
                sent += 1;
                if (sent % 20 === 0) await members[0].request({ type: 'ping' }, 'pong');
            }
        })();
        const pairB = pki.issue('server-b', '2002');
        fs.copyFileSync(pairB.cert, `${live.cert}.new`);
        fs.copyFileSync(pairB.key, `${live.key}.new`);
        fs.renameSync(`${live.key}.new`, live.key);
        fs.renameSync(`${live.cert}.new`, live.cert);
        s.proc.kill('SIGHUP');
        await waitLog(s, /TLS certificate reloaded: .*serial 2002/);
        const during = await tlsConnect(s.tlsPort, pki.ca);
        assert.equal(during.getPeerCertificate().serialNumber, '2002');
        assert.match(during.getPeerCertificate().subject.CN, /server-b/);
        during.destroy();
        sending = false;
        await pump;

        // Every member is still connected and got every message, in order.
        const last = `m${sent - 1}`;
        for (const m of members) {
            assert.ok(m.isOpen, `${m.nickname} still connected`);
            await m.next((x) => x.type === 'room' && x.message?.text === last, 20000);
        }
        // A bad file on reload: logged, the pair in use stays.
        fs.writeFileSync(live.cert, 'not a certificate\n');
        s.proc.kill('SIGHUP');
        await waitLog(s, /TLS reload failed, keeping the previous certificate: cannot load the certificate/);
        const kept = await tlsConnect(s.tlsPort, pki.ca);
        assert.equal(kept.getPeerCertificate().serialNumber, '2002');
        kept.destroy();
        members[1].send({ type: 'room', to: room, message: { text: 'still here' } });
        for (const m of members) await m.next((x) => x.type === 'room' && x.message?.text === 'still here');
        await Promise.all(members.map((m) => m.close()));
    } finally {
        await s.stopClean();
    }
});

test('close_notify is sent when the server closes a TLS connection', async () => {
    const r = spawnSync('openssl', ['s_client', '-connect', `${HOST}:${server.tlsPort}`, '-CAfile', pki.caFile, '-msg', '-ign_eof', '-quiet'], {
        input: `GET /nope HTTP/1.1\r\nHost: ${HOST}\r\nConnection: close\r\n\r\n`,
        encoding: 'latin1',
        timeout: 20000,
    });
    assert.match(r.stdout, /HTTP\/1\.1 404/);
    assert.match(r.stdout + r.stderr, /close_notify/);
});

test('bad TLS options and files at start exit with status 2 and say why', () => {
    const run = (args) => spawnSync(BIN, ['--db', ':memory:', ...args], { encoding: 'utf8', timeout: 10000 });
    const bad = `${pki.dir}/garbage.pem`;
    fs.writeFileSync(bad, 'garbage\n');
    const pairC = pki.issue('server-c', '3003');
    const cases = [
        [['--listen-tls', `${HOST}:0`], /--listen-tls needs --tls-cert FILE and --tls-key FILE/],
        [['--tls-cert', pairA.cert, '--tls-key', pairA.key], /need a --listen-tls address/],
        [['--listen-tls', `${HOST}:0`, '--tls-cert', bad, '--tls-key', pairA.key], /cannot load the certificate .*garbage\.pem/],
        [['--listen-tls', `${HOST}:0`, '--tls-cert', pairA.cert, '--tls-key', bad], /cannot load the private key .*garbage\.pem/],
        [['--listen-tls', `${HOST}:0`, '--tls-cert', `${pki.dir}/missing.pem`, '--tls-key', pairA.key], /cannot load the certificate/],
        [['--listen-tls', `${HOST}:0`, '--tls-cert', pairA.cert, '--tls-key', pairC.key], /server-c\.key: key values mismatch|does not match/],
    ];
    for (const [args, re] of cases) {
        const r = run(args);
        assert.equal(r.status, 2, `${args.join(' ')}: ${r.stderr}`);
        assert.match(r.stderr, re);
        assert.doesNotMatch(r.stderr, /listening on/);
    }
});

test('--listen is repeatable: two plain ports and a TLS one in one process', async () => {
    const s = await startServer(['--listen', `${HOST}:0`, '--listen-tls', `${HOST}:0`, '--tls-cert', pairA.cert, '--tls-key', pairA.key, '--db', ':memory:']);
    try {
        await waitLog(s, /\(TLS\)/); // the last of the three lines
        const ports = [...s.stderr.matchAll(/listening on 127\.0\.0\.1:(\d+) \(plain\)/g)].map((m) => Number(m[1]));
        assert.equal(ports.length, 2);
        const c = await connect(`ws://${HOST}:${ports[1]}/ws`);
        c.send({ type: 'login', nickname: uniq('second') });
        await c.next('welcome');
        await c.close();
    } finally {
        await s.stopClean();
    }
});
