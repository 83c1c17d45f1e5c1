// TLS for the integration suite: a throw-away certificate authority made at
// test time with the openssl command (nothing secret is committed), server
// certificates it signs with chosen serial numbers, a server started with a
// TLS listener beside the plain one, and clients that trust that CA.

import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Duplex } from 'node:stream';
import tls from 'node:tls';

import { HOST, WAIT, startServer } from './helpers.mjs';

const dirs = new Set();
process.on('exit', () => {
    for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});

function openssl(args, cwd) {
    execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
}

/**
 * A CA in a fresh temporary directory: { dir, caFile, ca (PEM text),
 * issue(name, serialHex) → { cert, key } }. Server certificates are for
 * 127.0.0.1 and localhost, EC P-256; the cert file holds the chain (the leaf,
 * then the CA).
 */
export function makePki() {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tertulia-pki-'));
    dirs.add(dir);
    openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
        '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '2', '-subj', '/CN=tertulia test CA',
        '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign'], dir);
    const caFile = path.join(dir, 'ca.pem');
    const ca = fs.readFileSync(caFile, 'utf8');
    fs.writeFileSync(path.join(dir, 'leaf.ext'),
        'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n');
    function issue(name, serialHex) {
        openssl(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
            '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${name}`], dir);
        openssl(['x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.pem', '-CAkey', 'ca.key',
            '-set_serial', `0x${serialHex}`, '-days', '1', '-extfile', 'leaf.ext', '-out', `${name}.crt`], dir);
        const chain = fs.readFileSync(path.join(dir, `${name}.crt`), 'utf8') + ca;
        fs.writeFileSync(path.join(dir, `${name}.chain.pem`), chain);
        return { cert: path.join(dir, `${name}.chain.pem`), key: path.join(dir, `${name}.key`) };
    }
    return { dir, caFile, ca, issue };
}

/** Resolves with the first match of re in the server's stderr (now or later). */
export function waitLog(server, re, timeoutMs = WAIT * 2) {
    return new Promise((resolve, reject) => {
        const check = () => {
            const m = re.exec(server.stderr);
            if (m) {
                done();
                resolve(m);
                return true;
            }
            return false;
        };
        const timer = setTimeout(() => {
            done();
            reject(new Error(`server log never matched ${re}; tail:\n${server.tail()}`));
        }, timeoutMs);
        const onData = () => check();
        const done = () => {
            clearTimeout(timer);
            server.proc.stderr.off('data', onData);
        };
        if (!check()) server.proc.stderr.on('data', onData);
    });
}

/**
 * startServer with a TLS listener too (`--listen-tls 127.0.0.1:0`), on the
 * certificate `pair` ({ cert, key }). The result also has tlsPort,
 * httpsUrl, and `wss`, a view of the server for connect()/login() that
 * opens wss:// connections trusting `ca`.
 */
export async function startTlsServer(pair, ca, args = [], opts = {}) {
    const server = await startServer(['--listen-tls', `${HOST}:0`, '--tls-cert', pair.cert, '--tls-key', pair.key, ...args], opts);
    const m = await waitLog(server, /listening on 127\.0\.0\.1:(\d+) \(TLS\)/);
    server.tlsPort = Number(m[1]);
    server.httpsUrl = `https://${HOST}:${server.tlsPort}`;
    server.wss = {
        port: server.tlsPort,
        wsUrl: (p = '/ws') => `wss://${HOST}:${server.tlsPort}${p}`,
        wsOptions: { ca },
    };
    return server;
}

/** A TLS connection to port trusting ca; resolves once secure. */
export function tlsConnect(port, ca, opts = {}) {
    return new Promise((resolve, reject) => {
        const sock = tls.connect({ host: HOST, port, ca, servername: 'localhost', ...opts });
        sock.once('secureConnect', () => {
            sock.off('error', reject);
            resolve(sock);
        });
        sock.once('error', reject);
    });
}

/** The bytes of a real ClientHello (from Node's TLS client, sent nowhere). */
export function clientHello() {
    return new Promise((resolve) => {
        let s = null;
        const fake = new Duplex({
            read() {},
            write(chunk, enc, cb) {
                resolve(Buffer.from(chunk));
                cb();
                setImmediate(() => s.destroy());
            },
        });
        s = tls.connect({ socket: fake, servername: 'localhost', rejectUnauthorized: false });
        s.on('error', () => {});
    });
}

/** One HTTPS GET of path; resolves to { status, headers, body, alpn }. */
export function httpsGet(server, ca, p = '/') {
    return new Promise((resolve, reject) => {
        tlsConnect(server.tlsPort, ca, { ALPNProtocols: ['http/1.1'] }).then((sock) => {
            let buf = Buffer.alloc(0);
            sock.on('data', (d) => {
                buf = Buffer.concat([buf, d]);
            });
            sock.on('end', () => {
                const text = buf.toString('latin1');
                const end = text.indexOf('\r\n\r\n');
                const head = text.slice(0, end).split('\r\n');
                const status = Number(head[0].split(' ')[1]);
                const headers = {};
                for (const line of head.slice(1)) {
                    const i = line.indexOf(':');
                    headers[line.slice(0, i).toLowerCase()] = line.slice(i + 1).trim();
                }
                resolve({ status, headers, body: buf.subarray(end + 4), alpn: sock.alpnProtocol });
                sock.destroy();
            });
            sock.on('error', reject);
            sock.write(`GET ${p} HTTP/1.1\r\nHost: ${HOST}:${server.tlsPort}\r\nConnection: close\r\n\r\n`);
        }, reject);
    });
}
