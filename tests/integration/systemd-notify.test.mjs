// The notifications a systemd service of Type=notify sends (sd_notify), with
// no systemd: a unix datagram socket stands in for systemd's, given to the
// server as NOTIFY_SOCKET with WATCHDOG_USEC. Node has no unix datagram
// sockets, so a python3 one-liner binds it and prints every datagram as a
// JSON line. Expected: READY=1 (with STATUS=listening on the real port) once
// the server listens, WATCHDOG=1 repeatedly at half the interval, RELOADING=1
// with MONOTONIC_USEC= then READY=1 around a SIGHUP reload, STOPPING=1 on
// SIGTERM. Every wait is on an event; its time-out is only a safety net.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';

import { WAIT, startServer } from './helpers.mjs';
import { waitLog } from './tls-helpers.mjs';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tertulia-notify-'));
after(() => fs.rmSync(dir, { recursive: true, force: true }));

const LISTENER = `
import json, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
print("bound", flush=True)
while True:
    data = s.recv(65536)
    print(json.dumps(data.decode("utf-8", "replace")), flush=True)
`;

/** A stand-in for systemd's notification socket at sockPath. */
async function notifySocket(sockPath) {
    const proc = spawn('python3', ['-c', LISTENER, sockPath], { stdio: ['ignore', 'pipe', 'pipe'] });
    const messages = [];
    const waiters = [];
    let buf = '';
    let stderr = '';
    proc.stderr.setEncoding('utf8');
    proc.stderr.on('data', (d) => {
        stderr += d;
    });
    const bound = new Promise((resolve, reject) => {
        proc.on('exit', (code) => reject(new Error(`python3 listener exited (${code}): ${stderr}`)));
        proc.stdout.setEncoding('utf8');
        proc.stdout.on('data', (d) => {
            buf += d;
            let nl;
            while ((nl = buf.indexOf('\n')) >= 0) {
                const line = buf.slice(0, nl);
                buf = buf.slice(nl + 1);
                if (line === 'bound') {
                    resolve();
                    continue;
                }
                messages.push(JSON.parse(line));
                for (const w of [...waiters]) w();
            }
        });
    });
    await bound;
    return {
        messages,
        /**
         * Resolves with the index of the first message at or after `from`
         * that pred accepts, as soon as it arrives.
         */
        waitFor(pred, from = 0, what = String(pred)) {
            return new Promise((resolve, reject) => {
                const check = () => {
                    for (let i = from; i < messages.length; i++) {
                        if (pred(messages[i])) {
                            done();
                            resolve(i);
                            return;
                        }
                    }
                };
                const timer = setTimeout(() => {
                    done();
                    reject(new Error(`no notification ${what} after #${from}; got ${JSON.stringify(messages)}`));
                }, WAIT * 2);
                const done = () => {
                    clearTimeout(timer);
                    waiters.splice(waiters.indexOf(check), 1);
                };
                waiters.push(check);
                check();
            });
        },
        close() {
            proc.kill('SIGTERM');
        },
    };
}

const fields = (msg) => Object.fromEntries(msg.split('\n').filter(Boolean).map((l) => l.split(/=(.*)/s).slice(0, 2)));
const has = (key, value) => (msg) => fields(msg)[key] === value;

test('READY, WATCHDOG, RELOADING and READY around SIGHUP, STOPPING', async () => {
    const sock = path.join(dir, 'notify.sock');
    const ns = await notifySocket(sock);
    after(() => ns.close());
    const conf = path.join(dir, 'tertulia.conf');
    fs.writeFileSync(conf, 'log-level = info\n');
    // WATCHDOG_PID would have to be the server's pid, unknown before the
    // spawn; without it sd_watchdog_enabled takes WATCHDOG_USEC as ours.
    const server = await startServer(['--db', ':memory:', '--config', conf], {
        env: { NOTIFY_SOCKET: sock, WATCHDOG_USEC: '400000' },
    });
    try {
        const ready = await ns.waitFor(has('READY', '1'), 0, 'READY=1');
        const status = fields(ns.messages[ready]).STATUS;
        assert.equal(status, `listening on 127.0.0.1:${server.port} (plain)`,
            'READY=1 names the port bound, so it follows the listening line');
        assert.match(server.stderr, /systemd watchdog: pinging every 200 ms/);

        const w1 = await ns.waitFor(has('WATCHDOG', '1'), ready + 1, 'WATCHDOG=1');
        await ns.waitFor(has('WATCHDOG', '1'), w1 + 1, 'a second WATCHDOG=1');

        const before = ns.messages.length;
        server.proc.kill('SIGHUP');
        const rel = await ns.waitFor(has('RELOADING', '1'), before, 'RELOADING=1');
        const usec = fields(ns.messages[rel]).MONOTONIC_USEC;
        assert.match(usec ?? '', /^[1-9][0-9]*$/, `MONOTONIC_USEC= with RELOADING=1: ${ns.messages[rel]}`);
        const again = await ns.waitFor(has('READY', '1'), rel + 1, 'READY=1 after the reload');
        assert.equal(fields(ns.messages[again]).STATUS, status);
        await waitLog(server, /SIGHUP: .*applied/);

        const beforeStop = ns.messages.length;
        server.proc.kill('SIGTERM');
        await ns.waitFor(has('STOPPING', '1'), beforeStop, 'STOPPING=1');
        const r = await server.stopClean();
        assert.equal(r.code, 0);
        assert.ok(!ns.messages.slice(0, ready).some(has('READY', '1')), 'one READY=1 at start-up');
    } finally {
        await server.stop();
    }
});

test('a SIGHUP with nothing to reload still answers RELOADING then READY', async () => {
    const sock = path.join(dir, 'notify2.sock');
    const ns = await notifySocket(sock);
    after(() => ns.close());
    const server = await startServer(['--db', ':memory:'], { env: { NOTIFY_SOCKET: sock } });
    try {
        const ready = await ns.waitFor(has('READY', '1'), 0, 'READY=1');
        assert.doesNotMatch(server.stderr, /systemd watchdog/, 'no WATCHDOG_USEC, no pings');
        server.proc.kill('SIGHUP');
        const rel = await ns.waitFor(has('RELOADING', '1'), ready + 1, 'RELOADING=1');
        await ns.waitFor(has('READY', '1'), rel + 1, 'READY=1');
        assert.ok(!ns.messages.some(has('WATCHDOG', '1')));
    } finally {
        await server.stopClean();
    }
});
