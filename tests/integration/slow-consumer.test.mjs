// A member that stops reading must not make the server buffer without bound
// nor hold anyone else back: once its unsent queue passes --max-queue it is
// closed with 1008, and every other member receives every message.
//
// The slow member is a raw client that pauses its socket: the kernel then
// absorbs a few MiB (its receive buffer and the server's send buffer) before
// the server's own queue starts to grow, so the room is sent 16 MB — well
// past both — with a small --max-queue (the server raises it to one
// --max-message). The sender paces itself on the members that do read (the
// next message goes once they all have the last), so their queues stay far
// below the cap: the clients of this test share one Node process, which reads
// slower than the server can fan out an unpaced 16 MB burst.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { RawWs, legacyLogin, login, startServer, uniq, waitMembers } from './helpers.mjs';

const MiB = 1024 * 1024;
const COUNT = 16;
const TEXT_BYTES = 1000000;

test('a member that stops reading is closed with 1008 at the queue cap while the others receive everything', { timeout: 90000 }, async (t) => {
    const server = await startServer(['--max-queue', String(256 * 1024), '--max-message', String(MiB + 64 * 1024), '--max-text', String(MiB), '--resume-seconds', '0']); // member_left at the close
    try {
        const room = uniq('firehose');
        const sender = await login(server, uniq('sender'), { room });
        const fast = await login(server, uniq('fast'), { room });
        const old = await legacyLogin(server, uniq('oldfast'), room);

        const slowNick = uniq('slow');
        const slow = await RawWs.connect(server, '/ws', { protocol: 'tertulia.v1' });
        await slow.sendText(JSON.stringify({ type: 'login', nickname: slowNick, room }));
        const welcome = JSON.parse((await slow.nextMessage()).data.toString());
        assert.equal(welcome.type, 'welcome');
        const joined = JSON.parse((await slow.nextMessage()).data.toString());
        assert.equal(joined.type, 'joined');
        slow.pause(); // from now on it reads nothing
        await waitMembers(sender, room, (m) => m.includes(slowNick) && m.includes(old.nickname));

        const texts = [];
        const lastId = new Map();
        for (let i = 0; i < COUNT; i++) {
            const t = `${String(i).padStart(2, '0')}:${String.fromCharCode(97 + i).repeat(TEXT_BYTES - 3)}`;
            texts.push(t);
            sender.send({ type: 'room', to: room, message: { text: t }, id: `big-${i}` });
            for (const receiver of [sender, fast, old]) {
                const m = await receiver.next((x) => x.type === 'room', 30000);
                assert.equal(m.message.text.length, t.length, `${receiver.label} message ${i} complete`);
                assert.equal(m.message.text.slice(0, 4), t.slice(0, 4), `${receiver.label} message ${i} in order`);
                assert.ok(m.message.text === t, `${receiver.label} message ${i} intact`);
                assert.ok(m.id > (lastId.get(receiver) ?? 0));
                lastId.set(receiver, m.id);
            }
        }
        const gone = await sender.next((m) => m.type === 'member_left' && m.nickname === slowNick, 15000);
        assert.equal(gone.room, room);
        assert.equal(typeof gone.reason, 'string');

        // Read what the slow member was sent before the cut: well-formed frames,
        // fewer than all the messages, and the end of the connection. If a close
        // frame made it through, it says 1008.
        slow.resume();
        await slow.waitEnd(15000);
        assert.deepEqual(slow.violations, [], 'every frame the slow member got was well-formed');
        const frames = slow.frames.drain();
        const rooms = frames.filter((f) => f.opcode === 1 && f.payload.toString().startsWith('{"') && JSON.parse(f.payload.toString()).type === 'room');
        assert.ok(rooms.length < COUNT, `the slow member was cut off (got ${rooms.length} of ${COUNT})`);
        const close = frames.find((f) => f.opcode === 8);
        if (close) assert.equal(close.payload.readUInt16BE(0), 1008);
        t.diagnostic(`slow member got ${rooms.length} of ${COUNT} messages, then ${close ? `close ${close.payload.readUInt16BE(0)} "${close.payload.subarray(2)}"` : 'the connection ended without a close frame'}; member_left reason "${gone.reason}"`);

        // The others are still connected and chatting.
        fast.send({ type: 'room', to: room, message: { text: 'after the firehose' } });
        assert.equal((await old.next('room')).message.text, 'after the firehose');
        await Promise.all([sender.close(), fast.close(), old.close()]);
        slow.destroy();
    } finally {
        await server?.stopClean();
    }
});
