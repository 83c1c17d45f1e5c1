// bench/fanout-mixed.mjs — does a room of accounts fan out like a room of guests? One server,
// two rooms of N members each: one all guests, one half accounts (logged in with tokens, two
// connections for some of them, as tabs) and half guests. A sender in each room sends M
// messages (a bounded window in flight); every member counts what it receives. The server's
// CPU (every thread, from /proc/PID/task/*/schedstat) is measured per room while only that
// room is busy, and reported per delivery, side by side, for each binary given.
//   node bench/fanout-mixed.mjs --bin NAME=PATH [--bin ...] [--members 200] [--messages 2000]
//                               [--reps 3] [--json FILE]
// Every wait is bounded; servers listen on 127.0.0.1 only, on a fresh database each.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import WebSocket from 'ws';

import { bounded as boundedMs, cpuSeconds, parseBins, startTertulia } from './lib.mjs';

const { values: opt } = parseArgs({
    options: {
        bin: { type: 'string', multiple: true },
        members: { type: 'string', default: '200' },
        messages: { type: 'string', default: '2000' },
        reps: { type: 'string', default: '3' },
        json: { type: 'string' },
    },
});
if (!opt.bin || opt.bin.length === 0) {
    console.error('usage: node bench/fanout-mixed.mjs --bin NAME=PATH [--bin ...] [--members N] [--messages M]');
    process.exit(64);
}
const bins = parseBins(opt.bin);
const N = Number(opt.members);
const M = Number(opt.messages);
const REPS = Number(opt.reps);
const STEP_MS = 120000;
const WINDOW = 16;
const PW = 'correct horse battery staple';

const bounded = (p, what) => boundedMs(p, what, STEP_MS);

function start(bin, dir) {
    return startTertulia(bin, ['--db', join(dir, 'b.db'), '--rate-limit', '0', '--max-per-ip', '0', '--password-queue', '4096']);
}

/** A v1 connection that sends `first`, waits for a reply of type `until`, and then counts room messages. */
function client(port, first, until) {
    return bounded(new Promise((res, rej) => {
        const ws = new WebSocket(`ws://127.0.0.1:${port}/ws`, ['tertulia.v1']);
        ws.count = 0;
        ws.on('error', rej);
        ws.on('open', () => ws.send(JSON.stringify(first)));
        ws.on('message', (d) => {
            const s = d.toString();
            if (ws.ready) {
                if (s.startsWith('{"type":"room"')) ws.count++;
                return;
            }
            const m = JSON.parse(s);
            if (m.type === 'error') rej(new Error(`${JSON.stringify(first)}: ${s}`));
            if (m.type === until) {
                ws.ready = true;
                ws.reply = m;
                res(ws);
            }
        });
    }), 'client');
}

async function member(port, kind, i, room, tokens) {
    if (kind === 'guest') return client(port, { type: 'login', nickname: `g${room}${i}`, room }, 'joined');
    const nick = `a${room}${i}`;
    if (!tokens.has(nick)) {
        const r = await client(port, { type: 'register', nickname: nick, password: PW }, 'welcome');
        tokens.set(nick, r.reply.token);
        r.close();
    }
    return client(port, { type: 'login', token: tokens.get(nick), room }, 'joined');
}

async function send(sender, room) {
    let sent = 0, acked = 0;
    await bounded(new Promise((res) => {
        sender.on('message', (d) => {
            const s = d.toString();
            if (!s.includes('"type":"ack"')) return;
            acked++;
            if (acked === M) res();
            else if (sent < M) sender.send(JSON.stringify({ type: 'room', to: room, message: { text: `m${sent}` }, id: `${sent++}` }));
        });
        for (; sent < Math.min(WINDOW, M); sent++) sender.send(JSON.stringify({ type: 'room', to: room, message: { text: `m${sent}` }, id: `${sent}` }));
    }), 'acks');
}

async function measure(pid, clients, sender, room) {
    for (const c of clients) c.count = 0;
    const cpu0 = cpuSeconds(pid);
    await send(sender, room);
    // Every member has every message before the clock stops.
    await bounded(new Promise((res) => {
        const check = () => (clients.every((c) => c.count >= M) ? res() : setTimeout(check, 5));
        check();
    }), 'deliveries');
    const cpu = cpuSeconds(pid) - cpu0;
    const deliveries = clients.reduce((a, c) => a + c.count, 0);
    return { cpu, deliveries, us_per_delivery: (cpu * 1e6) / deliveries };
}

async function one(bin) {
    const dir = mkdtempSync(join(tmpdir(), 'tt-mixed-'));
    const { proc, port } = await start(bin.path, dir);
    const tokens = new Map();
    try {
        const guests = [], mixed = [];
        for (let i = 0; i < N; i++) guests.push(await member(port, 'guest', i, 'guests', tokens));
        // Half accounts, and every fourth account has a second connection (a tab).
        for (let i = 0; i < N; i++) {
            const kind = i % 2 === 0 ? 'account' : 'guest';
            mixed.push(await member(port, kind, kind === 'account' && i % 8 === 0 && i > 0 ? i - 8 : i, 'mixed', tokens));
        }
        const sg = guests[0], sm = mixed[1];
        const rows = [];
        for (let r = 0; r < REPS; r++) {
            rows.push({ room: 'guests', ...(await measure(proc.pid, guests, sg, 'guests')) });
            rows.push({ room: 'mixed', ...(await measure(proc.pid, mixed, sm, 'mixed')) });
        }
        for (const c of [...guests, ...mixed]) c.terminate();
        return rows;
    } finally {
        proc.kill('SIGKILL');
        await new Promise((r) => (proc.exitCode !== null ? r() : proc.once('exit', r)));
        rmSync(dir, { recursive: true, force: true });
    }
}

const out = [];
console.log('| build | room | deliveries | server CPU µs per delivery (best of reps) |');
console.log('| --- | --- | --- | --- |');
for (const b of bins) {
    const rows = await one(b);
    for (const room of ['guests', 'mixed']) {
        const rs = rows.filter((x) => x.room === room);
        const best = Math.min(...rs.map((x) => x.us_per_delivery));
        console.log(`| ${b.name} | ${room} | ${rs[0].deliveries} | ${best.toFixed(3)} |`);
        out.push({ name: b.name, room, members: N, messages: M, runs: rs });
    }
}
if (opt.json) writeFileSync(opt.json, out.map((x) => JSON.stringify(x)).join('\n') + '\n');
