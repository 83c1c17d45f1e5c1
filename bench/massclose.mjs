// bench/massclose.mjs — what a mass disconnect costs the server: N tertulia.v1 clients logged
// in to one room (so each departure is a member_left for everyone still there), then every
// one of them dropped at once (TCP reset, as when a proxy or a Wi-Fi network goes away). The
// cost is the server CPU (every thread's, from /proc/PID/task/*/schedstat) from the drop until a probe client on
// another room sees the room empty. Several servers side by side in one run, at several N:
// per-close cost that grows with N means the close path is superlinear.
//   node bench/massclose.mjs --bin NAME=PATH [--bin NAME=PATH ...] [--sizes 1000,2000,4000]
//                            [--reps 3] [--json FILE] [--server-cpu 0]
// The servers run pinned to one CPU (taskset, --server-cpu), on 127.0.0.1, each on a fresh database in a
// temporary directory; every wait is bounded (exit status 3 when a run does not finish).
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import WebSocket from 'ws';

import { cpuSeconds } from './lib.mjs';

const { values: opt } = parseArgs({
    options: {
        bin: { type: 'string', multiple: true },
        sizes: { type: 'string', default: '1000,2000,4000' },
        reps: { type: 'string', default: '3' },
        json: { type: 'string' },
        'server-cpu': { type: 'string', default: '0' },
    },
});
if (!opt.bin || opt.bin.length === 0) {
    console.error('usage: node bench/massclose.mjs --bin NAME=PATH [--bin ...] [--sizes A,B] [--reps K] [--json FILE]');
    process.exit(64);
}
const bins = opt.bin.map((b) => {
    const i = b.indexOf('=');
    return i > 0 ? { name: b.slice(0, i), path: b.slice(i + 1) } : { name: b, path: b };
});
const sizes = opt.sizes.split(',').map(Number);
const reps = Number(opt.reps);
const STEP_MS = 120000; // bound on each phase of a run

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
function bounded(p, what) {
    let t;
    return Promise.race([
        p,
        new Promise((_, rej) => { t = setTimeout(() => rej(new Error(`${what}: no answer in ${STEP_MS} ms`)), STEP_MS); }),
    ]).finally(() => clearTimeout(t));
}

function freePort() {
    return new Promise((res, rej) => {
        const s = createServer();
        s.once('error', rej);
        s.listen(0, '127.0.0.1', () => { const { port } = s.address(); s.close(() => res(port)); });
    });
}

// A logged-in v1 client that has joined room; resolves with its socket.
function member(port, nickname, room) {
    return new Promise((res, rej) => {
        const ws = new WebSocket(`ws://127.0.0.1:${port}/ws`, ['tertulia.v1']);
        ws.on('error', rej);
        ws.on('open', () => ws.send(JSON.stringify({ type: 'login', nickname, room })));
        const onMessage = (d) => {
            const m = JSON.parse(d);
            if (m.type === 'joined' || m.type === 'error') ws.off('message', onMessage);
            if (m.type === 'joined') res(ws);
            else if (m.type === 'error') rej(new Error(`login of ${nickname}: ${d}`));
        };
        // Only until joined: the member_joined events that follow (N² of them) are not parsed.
        ws.on('message', onMessage);
    });
}

// A tertulia.v1 user whose connection drops keeps its place for the grace time
// (--resume-seconds, 120 s by default): its member_left comes then, not at the drop. What
// this measures is the close path, so the grace is off where the binary has one (builds
// before it have no such option).
function graceOff(path) {
    const help = spawnSync(path, ['--help'], { encoding: 'utf8', timeout: 10000 }).stdout || '';
    return help.includes('--resume-seconds') ? ['--resume-seconds', '0'] : [];
}

async function startServer(path) {
    const port = await freePort();
    const dir = mkdtempSync(join(tmpdir(), 'massclose-'));
    const proc = spawn('taskset', ['-c', opt['server-cpu'], path, '--listen', `127.0.0.1:${port}`, '--db', join(dir, 'db'),
        '--log-level', 'warn', '--max-connections', '20000', '--max-per-ip', '0', '--rate-limit', '0',
        ...graceOff(path)],
    { stdio: ['ignore', 'ignore', 'inherit'] });
    const deadline = Date.now() + 20000;
    for (;;) {
        try {
            const ws = await member(port, 'probe', 'probe-room');
            return { proc, port, dir, probe: ws };
        } catch (e) {
            if (Date.now() > deadline || proc.exitCode !== null) throw new Error(`${path} did not start: ${e.message}`);
            await sleep(50);
        }
    }
}

async function stopServer(s) {
    const exited = new Promise((r) => s.proc.once('exit', r));
    s.proc.kill('SIGKILL');
    await exited;
    rmSync(s.dir, { recursive: true, force: true });
}

// Asks `who` for room until the server says it is empty (everyone's close processed).
async function waitRoomGone(probe, room) {
    for (;;) {
        const m = await bounded(new Promise((res) => {
            probe.once('message', (d) => res(JSON.parse(d)));
            probe.send(JSON.stringify({ type: 'who', room }));
        }), 'who');
        // Gone, or listed with no members (a room with history stays listed).
        if (m.type === 'error' || (m.type === 'members' && (m.member_count ?? m.members.length) === 0)) return;
        await sleep(10);
    }
}

async function one(bin, n) {
    const s = await startServer(bin.path);
    try {
        const clients = [];
        for (let i = 0; i < n; i += 100) {
            const batch = [];
            for (let j = i; j < Math.min(n, i + 100); j++) batch.push(member(s.port, `m${j}`, 'big'));
            clients.push(...(await bounded(Promise.all(batch), 'logins')));
        }
        await sleep(300); // let the last member_joined deliveries drain (not part of the cost)
        const cpu0 = cpuSeconds(s.proc.pid);
        const t0 = process.hrtime.bigint();
        for (const ws of clients) ws._socket.resetAndDestroy();
        await waitRoomGone(s.probe, 'big');
        const cpu = cpuSeconds(s.proc.pid) - cpu0;
        const wallMs = Number(process.hrtime.bigint() - t0) / 1e6;
        return { server: bin.name, n, cpu_s: cpu, wall_ms: wallMs, us_per_close: (cpu * 1e6) / n };
    } finally {
        await stopServer(s);
    }
}

const median = (xs) => { const s = [...xs].sort((a, b) => a - b); return s[Math.floor(s.length / 2)]; };
const results = [];
try {
    for (const n of sizes) {
        for (let r = 0; r < reps; r++) {
            for (const bin of bins) { // interleaved, so drift in the machine's load hits every server alike
                const res = await one(bin, n);
                results.push(res);
                console.error(`massclose: ${res.server} N=${n} rep ${r + 1}: ${res.cpu_s.toFixed(2)} s CPU, ${res.wall_ms.toFixed(0)} ms`);
            }
        }
    }
} catch (e) {
    console.error(`massclose: ${e.message}`);
    process.exit(3);
}
if (opt.json) writeFileSync(opt.json, results.map((r) => JSON.stringify(r)).join('\n') + '\n');

const cell = (name, n) => median(results.filter((r) => r.server === name && r.n === n).map((r) => r.us_per_close));
console.log(`| members dropped at once | ${bins.map((b) => `${b.name}: server µs per close`).join(' | ')}${bins.length > 1 ? ` | ${bins[0].name} / ${bins[1].name}` : ''} |`);
console.log(`| --- | ${bins.map(() => '---').join(' | ')}${bins.length > 1 ? ' | ---' : ''} |`);
for (const n of sizes) {
    const cells = bins.map((b) => cell(b.name, n));
    const ratio = bins.length > 1 ? ` | ${(cells[0] / cells[1]).toFixed(2)}×` : '';
    console.log(`| ${n} | ${cells.map((c) => c.toFixed(1)).join(' | ')}${ratio} |`);
}
const lo = sizes[0], hi = sizes[sizes.length - 1];
for (const b of bins) {
    console.log(`\n${b.name}: per-close cost grows ${(cell(b.name, hi) / cell(b.name, lo)).toFixed(2)}× from N=${lo} to N=${hi} (1× is linear in N, ${(hi / lo).toFixed(0)}× is quadratic)`);
}
process.exit(0);
