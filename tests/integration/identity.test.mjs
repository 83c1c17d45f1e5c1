// Guests as identities (PROTOCOL.md, "Accounts and sessions"): the resume
// token of a guest's welcome joins the same guest from a reload or another
// tab, also while the server still holds an old connection that died
// silently; a guest outlives its connections for the grace time
// (--resume-seconds), with its place in rooms and the privates sent to it;
// a goodbye (close 1000) ends it at once; a legacy client has no grace.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { RawWs, connect, legacyLogin, login, startServer, uniq } from './helpers.mjs';
import { waitLog } from './tls-helpers.mjs';

let server; // a grace time long enough never to end during a test
let quick; // a grace time of one second, for what happens when it ends
const clients = [];
before(async () => {
    // debug: the close of each session is logged, which dropped() waits for.
    server = await startServer(['--db', ':memory:', '--ping-interval', '1', '--log-level', 'debug']);
    quick = await startServer(['--db', ':memory:', '--resume-seconds', '1', '--log-level', 'debug']);
});
after(async () => {
    for (const c of clients) await c.close().catch(() => {});
    await server?.stopClean();
    await quick?.stopClean();
});
async function guest(srv, nick, opts) {
    const c = await login(srv, nick, opts);
    clients.push(c);
    return c;
}
/**
 * Drops c's TCP connection and waits until the server has closed its
 * session: a message sent after this finds the user without a connection
 * (sent before, it could still be written to the dying socket).
 */
async function dropped(srv, c) {
    const port = c.ws._socket.localPort;
    await c.terminate();
    await waitLog(srv, new RegExp(`chat: [^ ]*:${port}: session \\d+ closed`));
}

/** A round trip on c: everything the server sent c before is in c's inbox. */
async function settle(c) {
    await c.request({ type: 'ping' }, 'pong');
}

test("a guest's welcome carries account: false and a resume token; a second tab with it is the same guest, counted once", async () => {
    const room = uniq('#tabs');
    const nick = uniq('tab');
    const one = await guest(server, nick, { room });
    assert.equal(one.welcome.account, false);
    assert.match(one.welcome.resume, /^tt1\.[A-Za-z0-9_-]{43}$/);
    const bob = await guest(server, uniq('bob'), { room });
    await one.next('member_joined');

    const two = await guest(server, nick, { room, resume: one.resume });
    assert.equal(two.welcome.nickname, nick);
    assert.equal(two.welcome.resume, undefined, 'the token is not sent again');
    assert.equal(two.joined.member_count, 2, 'the guest is counted once');
    assert.deepEqual([...two.joined.members].sort(), [nick, bob.nickname].sort());
    await settle(bob);
    assert.equal(bob.inbox.items.filter((m) => m.type === 'member_joined' && m.nickname === nick).length, 0, 'nobody hears the second tab join');

    bob.send({ type: 'private', to: nick, message: { text: 'to both tabs' } });
    for (const c of [one, two]) assert.equal((await c.next('private')).message.text, 'to both tabs');
    two.send({ type: 'private', to: bob.nickname, message: { text: 'from tab two' } });
    assert.equal((await bob.next((m) => m.type === 'private' && m.from === nick)).message.text, 'from tab two');
    assert.equal((await one.next((m) => m.type === 'private' && m.from === nick)).message.text, 'from tab two', 'echoed to every tab');
});

test('a wrong resume token, or one for another nickname, is auth_failed; without a token the nickname is taken', async () => {
    const a = await guest(server, uniq('tok'));
    const b = await guest(server, uniq('tok'));
    const probe = await connect(server);
    clients.push(probe);
    await probe.expectError({ type: 'login', nickname: b.nickname, resume: a.resume }, 'auth_failed');
    await probe.expectError({ type: 'login', nickname: a.nickname, resume: 'tt1.nope' }, 'auth_failed');
    await probe.expectError({ type: 'login', nickname: a.nickname.toUpperCase() }, 'nickname_taken');
});

test('resuming while the old connection is held: both hold the nickname, the dead one times out alone, the room hears nothing', { timeout: 30000 }, async () => {
    const room = uniq('#held');
    const nick = uniq('phone');
    const watcher = await guest(server, uniq('watch'), { room });
    // The phone logs in, then goes deaf (no pong, nothing): the server still holds it.
    const deaf = await RawWs.connect(server, '/ws', { protocol: 'tertulia.v1' });
    await deaf.sendText(JSON.stringify({ type: 'login', nickname: nick, room }));
    const welcome = JSON.parse((await deaf.nextFrame((f) => f.opcode === 1 && JSON.parse(f.payload).type === 'welcome', 5000)).payload);
    await watcher.next((m) => m.type === 'member_joined' && m.nickname === nick);
    // Back on another network with the token, before the server noticed.
    const back = await guest(server, nick, { room, resume: welcome.resume });
    assert.equal(back.joined.member_count, 2);
    // The deaf one is closed for not answering pings; the guest stays.
    await deaf.waitEnd(8000);
    await settle(watcher);
    assert.ok(!watcher.inbox.items.some((m) => m.type === 'member_left' && m.nickname === nick), 'no member_left: the guest is still here');
    watcher.send({ type: 'private', to: nick, message: { text: 'still there?' } });
    assert.equal((await back.next('private')).message.text, 'still there?');
});

test('a guest whose connections dropped keeps its nickname and rooms; privates wait for it and arrive on resume, without noise', async () => {
    const room = uniq('#f5');
    const nick = uniq('reload');
    const first = await guest(server, nick, { room });
    const bob = await guest(server, uniq('bob'), { room });
    await first.next('member_joined');
    await dropped(server, first); // a reload: the old page is gone without a goodbye
    await settle(bob);
    const who = await bob.request({ type: 'who', room }, 'members');
    assert.ok(who.members.includes(nick), 'still in the room during the grace time');
    const other = await connect(server);
    clients.push(other);
    await other.expectError({ type: 'login', nickname: nick }, 'nickname_taken');

    const sent = await bob.request({ type: 'private', to: nick, id: 'held1', message: { text: 'while you were away' } }, 'ack');
    const again = await guest(server, nick, { resume: first.resume });
    const got = await again.next('private');
    assert.equal(got.id, sent.message_id);
    assert.equal(got.message.text, 'while you were away');
    await again.request({ type: 'join', room }, 'joined');
    await settle(bob);
    assert.ok(!bob.inbox.items.some((m) => (m.type === 'member_left' || m.type === 'member_joined') && m.nickname === nick), 'no presence noise from a reload');
});

test('when the grace time ends: member_left, undelivered for what was held, the nickname free and the token dead', { timeout: 20000 }, async () => {
    const room = uniq('#gone');
    const nick = uniq('gone');
    const g = await guest(quick, nick, { room });
    const bob = await guest(quick, uniq('bob'), { room });
    await g.next('member_joined');
    await dropped(quick, g);
    const ack = await bob.request({ type: 'private', to: nick, id: 'lost', message: { text: 'too late' } }, 'ack');
    const left = await bob.next((m) => m.type === 'member_left' && m.nickname === nick, 10000);
    assert.equal(left.reason, 'disconnect');
    const und = await bob.next('undelivered');
    assert.deepEqual({ id: und.message_id, to: und.to }, { id: ack.message_id, to: nick });
    const c = await connect(quick);
    clients.push(c);
    await c.expectError({ type: 'login', nickname: nick, resume: g.resume }, 'auth_failed');
    const fresh = await guest(quick, nick);
    assert.notEqual(fresh.resume, g.resume);
});

test('a goodbye (close 1000) ends the guest at once; a legacy client has no grace time', async () => {
    const room = uniq('#bye');
    const watcher = await guest(server, uniq('w'), { room });
    const nick = uniq('bye');
    const g = await login(server, nick, { room });
    await watcher.next('member_joined');
    await g.close(1000);
    const left = await watcher.next((m) => m.type === 'member_left' && m.nickname === nick);
    assert.equal(left.reason, 'quit');
    clients.push(await login(server, nick)); // free at once

    const old = uniq('old');
    const legacy = await legacyLogin(server, old, room);
    await watcher.next((m) => m.type === 'member_joined' && m.nickname === old);
    await legacy.terminate();
    assert.equal((await watcher.next((m) => m.type === 'member_left' && m.nickname === old)).reason, 'disconnect');
    const again = await legacyLogin(server, old, room); // the original client's reload
    await watcher.next((m) => m.type === 'member_joined' && m.nickname === old);
    await again.close();
});
