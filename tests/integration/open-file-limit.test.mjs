// At the open-file limit the server refuses new connections cleanly: it
// neither spins nor crashes, clients already connected keep chatting, and
// accepting resumes once descriptors are free. The limit is lowered with
// `ulimit -n` in the shell that starts the server, so it is reached fast.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import WebSocket from 'ws';
import { startServer } from './helpers.mjs';

const LIMIT = 96;

function open(port, nickname, room) {
    return new Promise((resolve) => {
        const ws = new WebSocket(`ws://127.0.0.1:${port}/ws`, 'tertulia.v1');
        const inbox = [];
        ws.on('message', (d) => inbox.push(JSON.parse(d.toString())));
        ws.on('open', () => {
            if (nickname) ws.send(JSON.stringify({ type: 'login', nickname, room }));
            resolve({ ws, inbox, ok: true });
        });
        ws.on('error', () => resolve({ ws, inbox, ok: false }));
        ws.on('unexpected-response', () => resolve({ ws, inbox, ok: false }));
    });
}

async function waitFor(fn, ms, what) {
    const end = Date.now() + ms;
    while (Date.now() < end) {
        if (fn()) return;
        await new Promise((r) => setTimeout(r, 20));
    }
    assert.fail(`timed out waiting for ${what}`);
}

function cpuTicks(pid) {
    const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
    return Number(f[11]) + Number(f[12]); // utime + stime, in clock ticks
}

test('at the open-file limit new connections are refused, existing clients are unaffected, and accepting resumes', async () => {
    const srv = await startServer(['--max-connections', '10000'], { ulimitFiles: LIMIT });
    const port = srv.port;
    try {
        // Clients already chatting before the limit is reached.
        const a = await open(port, 'early_a', 'lobby');
        const b = await open(port, 'early_b', 'lobby');
        await waitFor(() => b.inbox.some((m) => m.type === 'joined'), 5000, 'b joined');

        // Flood past the limit: some connections must fail.
        const flood = await Promise.all(Array.from({ length: LIMIT + 40 }, () => open(port)));
        const refused = flood.filter((c) => !c.ok).length;
        assert.ok(refused > 0, `connections past the limit are refused (got ${refused})`);
        await waitFor(() => /open-file limit|too many open files/i.test(srv.stderr), 5000, 'the refusal in the log');

        // Refused while at the limit: the loop must not spin on accept.
        const extra = await Promise.all(Array.from({ length: 20 }, () => open(port)));
        assert.ok(extra.some((c) => !c.ok), 'still refusing at the limit');
        const t0 = cpuTicks(srv.proc.pid);
        await new Promise((r) => setTimeout(r, 1000));
        const used = cpuTicks(srv.proc.pid) - t0; // ticks of 10 ms
        assert.ok(used < 50, `server is not spinning at the limit (${used * 10} ms CPU in 1 s)`);

        // Existing clients still talk.
        a.ws.send(JSON.stringify({ type: 'room', to: 'lobby', message: { text: 'still here' } }));
        await waitFor(() => b.inbox.some((m) => m.type === 'room' && m.message.text === 'still here'),
            5000, 'the broadcast to an existing client');

        // Free the descriptors: accepting resumes.
        for (const c of [...flood, ...extra]) c.ws.terminate();
        let late;
        const end = Date.now() + 5000;
        do {
            late = await open(port, 'late_c', 'lobby');
            if (late.ok) break;
            await new Promise((r) => setTimeout(r, 100));
        } while (Date.now() < end);
        assert.ok(late.ok, 'a new client connects after descriptors are freed');
        await waitFor(() => late.inbox.some((m) => m.type === 'joined'), 5000, 'late client joined');
        await waitFor(() => a.inbox.some((m) => m.type === 'member_joined' && m.nickname === 'late_c'),
            5000, 'presence of the late client');
        for (const c of [a, b, late]) c.ws.close();
    } finally {
        await srv.stopClean();
    }
});
