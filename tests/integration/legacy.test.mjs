// Legacy clients: a WebSocket that offers no subprotocol speaks the original
// proof of concept's three messages and is sent only `room` and `private`
// frames — the original web client reads message.text of every frame it gets,
// so anything else would show up as garbage in its chat.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { connect, legacyLogin, login, startServer, uniq, waitMembers } from './helpers.mjs';

let server;
before(async () => {
    server = await startServer();
});
after(async () => {
    await server?.stopClean();
});

/** Everything a legacy client received must be a room or private frame readable by the original client. */
function assertOnlyChatFrames(c) {
    for (const m of c.inbox.items) {
        assert.ok(m.type === 'room' || m.type === 'private', `a legacy client got a ${m.type} frame: ${JSON.stringify(m).slice(0, 300)}`);
        assert.equal(typeof m.from, 'string');
        assert.equal(typeof m.message?.text, 'string');
    }
}

test('a legacy client at /talking logging in the original way receives room messages in the original shape', async () => {
    const room = uniq('orig');
    const legacy = await legacyLogin(server, uniq('old'), room);
    const v1 = await login(server, uniq('new'), { room });
    await waitMembers(v1, room, (m) => m.includes(legacy.nickname));
    v1.send({ type: 'room', to: room, message: { text: 'hola desde v1' } });
    const m = await legacy.next('room');
    assert.equal(m.from, v1.nickname);
    assert.equal(m.to, room);
    assert.equal(m.message.text, 'hola desde v1');
    assert.ok(Number.isSafeInteger(m.id) && m.id > 0);
    assert.ok(Number.isSafeInteger(m.ts));
    legacy.send({ type: 'room', to: room, message: { text: 'hola desde el original' } });
    const back = await v1.next((x) => x.type === 'room' && x.from === legacy.nickname);
    assert.equal(back.message.text, 'hola desde el original');
    const own = await legacy.next((x) => x.type === 'room' && x.from === legacy.nickname);
    assert.equal(own.message.text, 'hola desde el original', 'the sender is included, as in the original');
    assertOnlyChatFrames(legacy);
    await Promise.all([legacy.close(), v1.close()]);
});

test("the original's four-tab test with legacy clients at /talking: nothing crosses between swift-dev and python-dev", async () => {
    const tabs = [
        await legacyLogin(server, 'pepe', 'swift-dev'),
        await legacyLogin(server, 'lola', 'swift-dev'),
        await legacyLogin(server, 'juan', 'python-dev'),
        await legacyLogin(server, 'rosa', 'python-dev'),
    ];
    const watcher = await login(server, uniq('watcher'));
    await waitMembers(watcher, 'swift-dev', (m) => m.includes('pepe') && m.includes('lola'));
    await waitMembers(watcher, 'python-dev', (m) => m.includes('juan') && m.includes('rosa'));
    const roomOf = { pepe: 'swift-dev', lola: 'swift-dev', juan: 'python-dev', rosa: 'python-dev' };
    for (const t of tabs) t.send({ type: 'room', to: roomOf[t.nickname], message: { text: `soy ${t.nickname}` } });
    for (const receiver of tabs) {
        const mates = tabs.filter((t) => roomOf[t.nickname] === roomOf[receiver.nickname]);
        for (const sender of mates) {
            const m = await receiver.next((x) => x.type === 'room' && x.from === sender.nickname);
            assert.equal(m.message.text, `soy ${sender.nickname}`);
            assert.equal(m.to, roomOf[receiver.nickname]);
        }
    }
    for (const t of tabs) {
        await t.expectNothing(t === tabs[0] ? 300 : 0);
    }
    await Promise.all([...tabs.map((t) => t.close()), watcher.close()]);
});

test('legacy clients get nothing but room and private frames: no welcome, presence, replies, acks or errors', async () => {
    const room = uniq('quiet');
    const legacy = await legacyLogin(server, uniq('quiet'), room);
    const v1 = await login(server, uniq('chatty'), { room });
    await waitMembers(v1, room, (m) => m.includes(legacy.nickname));
    // Presence around the legacy client.
    const other = await login(server, uniq('comer'), { room });
    other.send({ type: 'leave', room });
    await other.next('left');
    // Requests whose answers a legacy client must not get.
    for (const req of [
        { type: 'ping' },
        { type: 'ping', id: 'p1' },
        { type: 'who', room },
        { type: 'rooms' },
        { type: 'join', room: uniq('second') },
        { type: 'history', room },
        { type: 'dance' },
        { type: 'login', nickname: uniq('again') },
        { type: 'room', to: room, message: { text: '' } },
        { type: 'room', to: uniq('not-mine'), message: { text: 'refused' } },
        { type: 'private', to: uniq('ghost'), message: { text: 'refused' } },
    ]) {
        legacy.send(req);
    }
    legacy.send('this is not json');
    // A message with an id: delivered, but no ack for a legacy client.
    legacy.send({ type: 'room', to: room, message: { text: 'with id' }, id: 'legacy-1' });
    const own = await legacy.next((m) => m.type === 'room' && m.message.text === 'with id');
    assert.equal(own.from, legacy.nickname);
    await other.close();
    await legacy.expectNothing(400);
    assertOnlyChatFrames(legacy);
    await Promise.all([legacy.close(), v1.close()]);
});

test('a refused legacy request is dropped and the connection keeps working', async () => {
    const room = uniq('drop');
    const legacy = await legacyLogin(server, uniq('dropper'), room);
    const v1 = await login(server, uniq('mate'), { room });
    await waitMembers(v1, room, (m) => m.includes(legacy.nickname));
    legacy.send('{broken');
    legacy.send({ type: 'room', to: uniq('elsewhere'), message: { text: 'nope' } });
    legacy.send({ type: 'room', to: room, message: { text: 'x'.repeat(5000) } });
    legacy.send({ type: 'room', to: room, message: { text: 'this one is fine' } });
    const m = await v1.next((x) => x.type === 'room' && x.from === legacy.nickname);
    assert.equal(m.message.text, 'this one is fine', 'the refused requests were dropped, not delivered');
    assert.ok(legacy.isOpen);
    await legacy.next('room');
    await legacy.expectNothing(200);
    assertOnlyChatFrames(legacy);
    await Promise.all([legacy.close(), v1.close()]);
});

test('private messages work between legacy and tertulia.v1 users in both directions', async () => {
    const room = uniq('pmroom');
    const legacy = await legacyLogin(server, uniq('oldpm'), room);
    const v1 = await login(server, uniq('newpm'));
    await waitMembers(v1, room, (m) => m.includes(legacy.nickname));
    legacy.send({ type: 'private', to: v1.nickname, message: { text: 'psst (from the original client)' } });
    const got = await v1.next('private');
    assert.equal(got.from, legacy.nickname);
    assert.equal(got.message.text, 'psst (from the original client)');
    const echo = await legacy.next('private');
    assert.equal(echo.to, v1.nickname);
    v1.send({ type: 'private', to: legacy.nickname, message: { text: 'psst back' } });
    const back = await legacy.next((m) => m.type === 'private' && m.from === v1.nickname);
    assert.equal(back.message.text, 'psst back');
    assertOnlyChatFrames(legacy);
    await Promise.all([legacy.close(), v1.close()]);
});

test('a `from` sent by a legacy client is replaced by its nickname', async () => {
    const room = uniq('lspoof');
    const legacy = await legacyLogin(server, uniq('liar'), room);
    const v1 = await login(server, uniq('victim'), { room });
    await waitMembers(v1, room, (m) => m.includes(legacy.nickname));
    legacy.send({ type: 'room', from: v1.nickname, to: room, message: { text: 'I am the victim' } });
    const m = await v1.next('room');
    assert.equal(m.from, legacy.nickname);
    await Promise.all([legacy.close(), v1.close()]);
});

test('tertulia.v1 members see legacy users come and go', async () => {
    const room = uniq('mixed');
    const v1 = await login(server, uniq('seer'), { room });
    const legacy = await legacyLogin(server, uniq('comer'), room);
    const mj = await v1.next('member_joined');
    assert.equal(mj.nickname, legacy.nickname);
    const members = await waitMembers(v1, room, (m) => m.includes(legacy.nickname));
    assert.equal(members.length, 2);
    await legacy.terminate();
    const ml = await v1.next('member_left');
    assert.equal(ml.nickname, legacy.nickname);
    assert.equal(ml.reason, 'disconnect');
    await v1.close();
});

test('a legacy nickname is taken for tertulia.v1 users too, case-insensitively', async () => {
    const nick = uniq('Shared');
    const room = uniq('nt');
    const legacy = await legacyLogin(server, nick, room);
    const v1 = await login(server, uniq('checker'), { room });
    await waitMembers(v1, room, (m) => m.includes(nick));
    const other = await connect(server);
    await other.expectError({ type: 'login', nickname: nick.toUpperCase() }, 'nickname_taken');
    await Promise.all([legacy.close(), v1.close(), other.close()]);
});
