// The durability rule under a crash: several clients send to two rooms with
// several messages in flight each, the server is killed with SIGKILL in the
// middle of the stream, restarted on the same database, and then every
// message any client received (or had acknowledged) must be in the history,
// identical, in id order, and what each client received must be a run of the
// history with no gap: a member cannot have been shown a message that the
// crash then lost, nor have missed one between two it saw. Three rounds, each
// killed at a different point; ids keep increasing from round to round.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';

import { WebSocket, bounded, join, login, sleep, startServer, uniq } from './helpers.mjs';

const ROUNDS = 3;
const SENDERS_PER_ROOM = 4;
const IN_FLIGHT = 4; // unacknowledged messages per sender
const ROUND_MS = 4000; // a round is killed at its ack target or after this long
// Flood control off, so the senders keep the server busy (their code still
// waits out a rate_limited refusal, should a server refuse anyway).
const ARGS = ['--rate-limit', '0'];

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tertulia-crash-'));
after(() => fs.rmSync(dir, { recursive: true, force: true }));

/**
 * Keeps IN_FLIGHT room messages in flight from client c to room until
 * round.stopped. Every text is unique. Acks and errors are matched by ref;
 * a rate_limited refusal pauses the sender for the hinted time (that
 * message is simply not sent again: the check is that history holds only
 * sent texts, not every sent text).
 */
function startSender(c, room, tag, round) {
    let k = 0;
    let inflight = 0;
    let pausedUntil = 0;
    const pending = new Map(); // ref -> text
    const pump = () => {
        while (!round.stopped && inflight < IN_FLIGHT && Date.now() >= pausedUntil && c.ws.readyState === WebSocket.OPEN) {
            const ref = `${tag}-${k}`;
            const text = `${tag} message ${k}`;
            k += 1;
            pending.set(ref, text);
            round.sent.set(text, { from: c.nickname, room });
            inflight += 1;
            c.send({ type: 'room', to: room, message: { text }, id: ref });
        }
    };
    c.ws.on('message', (data) => {
        const m = JSON.parse(data.toString());
        if (m.ref === undefined || !pending.has(m.ref)) return;
        const text = pending.get(m.ref);
        pending.delete(m.ref);
        inflight -= 1;
        if (m.type === 'ack') {
            round.acked.set(m.message_id, text);
            round.onAck();
        } else if (m.type === 'error' && m.code === 'rate_limited') {
            const wait = Math.min(Math.max(m.retry_after_ms ?? 50, 5), 1000);
            pausedUntil = Date.now() + wait;
            setTimeout(pump, wait + 1);
        } else {
            round.errors.push(m);
        }
        pump();
    });
    pump();
}

/** Records the room messages a client receives, per room, in arrival order. */
function record(c) {
    c.got = new Map();
    c.ws.on('message', (data) => {
        const m = JSON.parse(data.toString());
        if (m.type !== 'room') return;
        if (!c.got.has(m.to)) c.got.set(m.to, []);
        c.got.get(m.to).push(m);
    });
}

/** Every message of room, paging backwards with `history`, oldest first. */
async function readAll(client, room) {
    const pages = [];
    let before;
    for (let i = 0; i < 10000; i++) {
        const req = { type: 'history', room, limit: 200 };
        if (before !== undefined) req.before = before;
        const h = await client.request(req, 'history');
        if (h.type === 'error' && h.code === 'rate_limited') {
            await sleep(h.retry_after_ms ?? 50);
            continue;
        }
        assert.equal(h.type, 'history', JSON.stringify(h));
        pages.unshift(h.messages);
        if (!h.more) break;
        before = h.messages[0].id;
    }
    return pages.flat();
}

test('kill -9 mid-stream loses no message any client received; what each received is a gapless run of history', { timeout: 120000 }, async () => {
    const db = path.join(dir, 'crash.db');
    const rooms = [uniq('#crashA'), uniq('#crashB')];
    const allSent = new Map(); // text -> {from, room}
    let server = await startServer(['--db', db, ...ARGS]);
    const everyClient = [];
    try {
        await rounds();
    } finally {
        // A failed check must not leave sockets that keep this process alive.
        for (const c of everyClient) c.ws.terminate();
        if (!server.exitInfo) await server.stop('SIGKILL');
    }

    async function rounds() {
        let lastIdBefore = 0;
        let totalChecked = 0;
        for (let r = 0; r < ROUNDS; r++) {
            const round = { stopped: false, sent: allSent, acked: new Map(), errors: [], onAck: () => {} };
            // Kill after a different number of acks each round, while messages are in flight.
            const target = [150, 700, 2000][r];
            const killNow = new Promise((resolve) => {
                round.onAck = () => {
                    if (round.acked.size >= target) resolve('target');
                };
            });

            const clients = [];
            for (const room of rooms) {
                for (let i = 0; i < SENDERS_PER_ROOM; i++) {
                    const c = await login(server, uniq(`s${r}${i}`), { room });
                    everyClient.push(c);
                    record(c);
                    c.rooms = [room];
                    clients.push(c);
                }
            }
            // Two readers in both rooms that send nothing.
            for (let i = 0; i < 2; i++) {
                const c = await login(server, uniq(`rd${r}${i}`), { room: rooms[0] });
                everyClient.push(c);
                record(c);
                await join(c, rooms[1]);
                c.rooms = rooms;
                clients.push(c);
            }
            clients.filter((c) => c.rooms.length === 1).forEach((c, i) => startSender(c, c.rooms[0], `r${r}c${i}`, round));

            const why = await Promise.race([killNow, sleep(ROUND_MS).then(() => 'time')]);
            server.proc.kill('SIGKILL');
            round.stopped = true;
            await bounded(server.exited, 10000, 'the server exit after SIGKILL');
            await bounded(Promise.all(clients.map((c) => c.closed)), 10000, 'every client seeing the connection drop');
            assert.deepEqual(round.errors, [], 'no refusal but rate_limited');
            assert.ok(round.acked.size >= 20, `round ${r}: traffic flowed before the kill (${round.acked.size} acks, ${why})`);

            server = await startServer(['--db', db, ...ARGS]);
            const reader = await login(server, uniq(`check${r}`));
            everyClient.push(reader);
            const history = new Map();
            for (const room of rooms) {
                await join(reader, room);
                const h = await readAll(reader, room);
                history.set(room, h);
                const pos = new Map(h.map((m, i) => [m.id, i]));
                for (let i = 0; i < h.length; i++) {
                    const m = h[i];
                    if (i > 0) assert.ok(m.id > h[i - 1].id, `${room}: history ids increase`);
                    const sent = allSent.get(m.message.text);
                    assert.ok(sent, `${room}: history holds only texts clients sent (${m.message.text})`);
                    assert.equal(sent.room, room);
                    assert.equal(sent.from, m.from);
                }
                for (const c of clients.filter((x) => x.rooms.includes(room))) {
                    const got = c.got.get(room) ?? [];
                    for (let i = 0; i < got.length; i++) {
                        const at = pos.get(got[i].id);
                        assert.ok(at !== undefined, `${c.label} received ${got[i].id} (${got[i].message.text}) in ${room}, which is not in history after the crash`);
                        assert.deepEqual(h[at], got[i], 'the stored message is the one received');
                        if (i > 0) assert.equal(at, pos.get(got[i - 1].id) + 1, `${c.label}: no gap between ${got[i - 1].id} and ${got[i].id} in ${room}`);
                    }
                    totalChecked += got.length;
                }
            }
            for (const [id, text] of round.acked) {
                const room = allSent.get(text).room;
                assert.ok(history.get(room).some((m) => m.id === id && m.message.text === text), `acked ${id} is in history`);
            }
            // This round's messages all come after the previous rounds' ones.
            const roundIds = [...round.acked.keys()];
            assert.ok(Math.min(...roundIds) > lastIdBefore, `round ${r}: ids continue after the restart`);
            lastIdBefore = Math.max(...[...history.values()].flat().map((m) => m.id));
            await reader.close();
        }
        // The server restarted after the last kill still takes messages, with higher ids.
        const last = await login(server, uniq('after'), { room: rooms[0] });
        everyClient.push(last);
        last.send({ type: 'room', to: rooms[0], message: { text: 'after the crashes' }, id: 'fin' });
        const ack = await last.next((m) => m.ref === 'fin');
        assert.equal(ack.type, 'ack', JSON.stringify(ack));
        assert.ok(ack.message_id > lastIdBefore);
        assert.ok(totalChecked > 100, `enough received messages were checked (${totalChecked})`);
        await last.close();
        await server.stopClean();
    }
});
