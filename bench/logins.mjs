// bench/logins.mjs — logins per second with the password hash the server uses (Argon2id,
// 64 MiB, t=2), and what a login costs the chat meanwhile. For each binary: a fresh
// server on 127.0.0.1, ACCOUNTS accounts registered, then CLIENTS clients that each log in
// with the password again and again (a new connection each time) for SECONDS, while a probe
// connection pings the server: the probe's round trip shows whether logins hold up other
// sessions (they must not: the hashes run on --password-workers threads). Bounded in count
// (--max-logins) and time; several binaries side by side in one run.
//   node bench/logins.mjs --bin NAME=PATH [--bin ...] [--clients 8] [--seconds 10]
//                         [--workers 2] [--json FILE]
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import WebSocket from 'ws';

import { bounded as boundedMs, parseBins, startTertulia } from './lib.mjs';

const { values: opt } = parseArgs({
    options: {
        bin: { type: 'string', multiple: true },
        clients: { type: 'string', default: '8' },
        seconds: { type: 'string', default: '10' },
        workers: { type: 'string', default: '2' },
        'max-logins': { type: 'string', default: '5000' },
        json: { type: 'string' },
    },
});
if (!opt.bin || opt.bin.length === 0) {
    console.error('usage: node bench/logins.mjs --bin NAME=PATH [--bin ...] [--clients N] [--seconds S] [--workers W]');
    process.exit(64);
}
const bins = parseBins(opt.bin);
const CLIENTS = Number(opt.clients);
const SECONDS = Number(opt.seconds);
const MAX_LOGINS = Number(opt['max-logins']);
const STEP_MS = 60000;
const PW = 'correct horse battery staple';

const bounded = (p, what) => boundedMs(p, what, STEP_MS);

function start(bin, dir) {
    return startTertulia(bin, ['--db', join(dir, 'b.db'), '--rate-limit', '0', '--password-workers', opt.workers,
        '--password-queue', '1024']);
}

function open(port) {
    return bounded(new Promise((res, rej) => {
        const ws = new WebSocket(`ws://127.0.0.1:${port}/ws`, ['tertulia.v1']);
        ws.once('open', () => res(ws));
        ws.once('error', rej);
    }), 'connect');
}

function ask(ws, req, type) {
    return bounded(new Promise((res) => {
        const id = `${Math.random()}`;
        const on = (d) => {
            const m = JSON.parse(d.toString());
            if (m.ref === id || (m.type === type && m.ref === undefined)) {
                ws.off('message', on);
                res(m);
            }
        };
        ws.on('message', on);
        ws.send(JSON.stringify({ ...req, id }));
    }), type);
}

const pct = (v, p) => (v.length ? [...v].sort((a, b) => a - b)[Math.min(v.length - 1, Math.floor(v.length * p))] : 0);

async function runOne(b) {
    const dir = mkdtempSync(join(tmpdir(), 'tt-logins-'));
    const { proc, port } = await start(b.path, dir);
    try {
        const names = [];
        for (let i = 0; i < CLIENTS; i++) {
            const ws = await open(port);
            const nick = `bench${i}`;
            const w = await ask(ws, { type: 'register', nickname: nick, password: PW }, 'welcome');
            if (w.type !== 'welcome') throw new Error(`register: ${JSON.stringify(w)}`);
            names.push(nick);
            ws.close();
        }
        const probe = await open(port);
        await ask(probe, { type: 'login', nickname: 'probe' }, 'welcome');
        const lat = [], pings = [];
        let logins = 0, limited = 0, stop = false;
        const t0 = Date.now();
        const deadline = t0 + SECONDS * 1000;
        const worker = async (nick) => {
            while (!stop && Date.now() < deadline && logins < MAX_LOGINS) {
                const ws = await open(port);
                const s0 = process.hrtime.bigint();
                const m = await ask(ws, { type: 'login', nickname: nick, password: PW }, 'welcome');
                if (m.type === 'welcome') {
                    logins++;
                    lat.push(Number(process.hrtime.bigint() - s0) / 1e6);
                } else if (m.code === 'rate_limited') {
                    limited++;
                } else {
                    throw new Error(`login: ${JSON.stringify(m)}`);
                }
                ws.close();
            }
        };
        const pinger = async () => {
            while (!stop && Date.now() < deadline) {
                const s0 = process.hrtime.bigint();
                await ask(probe, { type: 'ping' }, 'pong');
                pings.push(Number(process.hrtime.bigint() - s0) / 1e6);
                await new Promise((r) => setTimeout(r, 20));
            }
        };
        await Promise.all([...names.map(worker), pinger()]);
        stop = true;
        const secs = (Date.now() - t0) / 1000;
        probe.close();
        return {
            name: b.name, clients: CLIENTS, workers: Number(opt.workers), seconds: secs,
            logins, logins_per_s: logins / secs, limited,
            login_ms_p50: pct(lat, 0.5), login_ms_p99: pct(lat, 0.99),
            ping_ms_p50: pct(pings, 0.5), ping_ms_p99: pct(pings, 0.99), pings: pings.length,
        };
    } finally {
        proc.kill('SIGTERM');
        await new Promise((r) => { if (proc.exitCode !== null) r(); else proc.once('exit', r); });
        rmSync(dir, { recursive: true, force: true });
    }
}

const results = [];
for (const b of bins) results.push(await runOne(b));
console.log('| build | clients | workers | logins/s | login p50 ms | login p99 ms | rate_limited | ping p50 ms | ping p99 ms |');
console.log('| --- | --- | --- | --- | --- | --- | --- | --- | --- |');
for (const r of results) {
    console.log(`| ${r.name} | ${r.clients} | ${r.workers} | ${r.logins_per_s.toFixed(1)} | ${r.login_ms_p50.toFixed(0)} | ${r.login_ms_p99.toFixed(0)} | ${r.limited} | ${r.ping_ms_p50.toFixed(2)} | ${r.ping_ms_p99.toFixed(2)} |`);
}
if (opt.json) writeFileSync(opt.json, results.map((r) => JSON.stringify(r)).join('\n') + '\n');
