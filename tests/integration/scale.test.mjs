// 1,000 clients in one room all receive a broadcast. Most are legacy clients
// (they are sent no presence, which keeps the client side of the test cheap:
// 1,000 tertulia.v1 clients would receive half a million member_joined
// frames); fifty are tertulia.v1 clients, which also receive every
// member_joined on the way. 2,000 sockets in all, well under the open-file
// limit of both processes.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { legacyLogin, login, startServer, uniq, waitMembers } from './helpers.mjs';

const TOTAL = 1000;
const V1 = 50;
const BATCH = 100;

let server;
let clients = [];
before(async () => {
    server = await startServer(['--max-per-ip', '0']);
});
after(async () => {
    await Promise.all(clients.map((c) => c.terminate()));
    await server?.stopClean();
});

test('1,000 clients in one room all receive a broadcast, from a tertulia.v1 sender and from a legacy one', { timeout: 90000 }, async () => {
    const room = uniq('#crowd');
    const v1 = [await login(server, 'v1_0', { room })]; // first in: it sees everyone after it arrive
    for (let i = 1; i < V1; i += 7) {
        const n = Math.min(7, V1 - i);
        v1.push(...(await Promise.all(Array.from({ length: n }, (_, k) => login(server, `v1_${i + k}`, { room })))));
    }
    assert.equal(v1.length, V1);
    clients.push(...v1);
    const legacy = [];
    for (let i = 0; i < TOTAL - V1; i += BATCH) {
        const n = Math.min(BATCH, TOTAL - V1 - i);
        legacy.push(...(await Promise.all(Array.from({ length: n }, (_, k) => legacyLogin(server, `old_${i + k}`, room)))));
    }
    clients.push(...legacy);
    const members = await waitMembers(v1[0], room, (m) => m.length === TOTAL, 30000);
    assert.equal(new Set(members.map((m) => m.toLowerCase())).size, TOTAL);

    // The first v1 client saw every later member arrive.
    for (let i = 0; i < TOTAL - 1; i++) await v1[0].next('member_joined', 10000);

    const all = [...v1, ...legacy];
    v1[7].send({ type: 'room', to: room, message: { text: 'to the crowd' }, id: 'crowd-1' });
    const ack = await v1[7].next('ack', 20000);
    assert.equal(ack.ref, 'crowd-1');
    const got = await Promise.all(all.map((c) => c.next((m) => m.type === 'room' && m.message.text === 'to the crowd', 20000)));
    for (const m of got) {
        assert.equal(m.id, ack.message_id);
        assert.equal(m.from, 'v1_7');
        assert.equal(m.to, room);
    }

    legacy[500].send({ type: 'room', to: room, message: { text: 'the original client speaks' } });
    const got2 = await Promise.all(all.map((c) => c.next((m) => m.type === 'room' && m.message.text === 'the original client speaks', 20000)));
    assert.ok(got2.every((m) => m.from === legacy[500].nickname && m.id === got2[0].id && m.id > ack.message_id));

    // Nobody received anything twice.
    for (const c of all) await c.expectNothing(0, 'room');

    // Half the crowd drops at once; the v1 clients that stay see each one go.
    const leaving = legacy.slice(0, 450);
    await Promise.all(leaving.map((c) => c.terminate()));
    for (let i = 0; i < leaving.length; i++) await v1[1].next('member_left', 10000);
    await waitMembers(v1[0], room, (m) => m.length === TOTAL - leaving.length, 20000);
});
