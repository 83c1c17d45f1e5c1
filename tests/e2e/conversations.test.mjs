// An account's stored private conversations in the web client: listed with
// their unread counts at login (a new device with the password too), their
// past loaded when opened ("load earlier" included), read markers that keep
// every tab and device agreeing on what is unread, a reload that counts
// nothing twice, a reconnect that fetches what came meanwhile once, and
// guests who keep today's live-only privates and send none of it.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer } from './server.mjs';
import { startProxy } from './proxy.mjs';
import { launchBrowser, openPage, say, waitForMessage, messages, memberNames, until, activeLog, newTab, wsClient } from './browser.mjs';

const browser = await launchBrowser();
const cleanups = [];
after(async () => {
    for (const c of cleanups.reverse()) await c();
    await browser.close();
});

const box = (page) => page.getByRole('textbox', { name: 'Message', exact: true });
const conv = (page, id) => page.locator(`.conv[data-conv="${id}"]`);
const badge = (page, id) => conv(page, id).locator('.badge');
const texts = async (page) => (await messages(page)).map((m) => m.text);

async function server(args = []) {
    const s = await startServer({ args });
    cleanups.push(() => s.dispose());
    return s;
}

// Records every frame the page sends (globalThis.sentFrames), in every tab of its context.
function recordSent() {
    const send = WebSocket.prototype.send;
    globalThis.sentFrames = [];
    WebSocket.prototype.send = function (data) {
        try { globalThis.sentFrames.push(JSON.parse(data)); } catch { /* not JSON */ }
        return send.call(this, data);
    };
}

/** A new browser (its own context) on the first screen, recording what it sends. */
async function device(url, opts) {
    const page = await openPage(browser, 'about:blank', opts);
    await page.context().addInitScript(recordSent);
    await page.goto(url);
    return page;
}

/** Another device on which `nickname` logs in with its password (`<nickname> password`), in `room`. */
async function loggedIn(url, nickname, room) {
    const page = await device(url);
    await enter(page, 'Log in', nickname, `${nickname} password`, room);
    return page;
}

/** Another tab of the same browser, in the chat. */
async function chatTab(page, url) {
    const tab = await newTab(page, url);
    await box(tab).waitFor({ state: 'visible', timeout: 10000 });
    return tab;
}

/** Fills the first screen in one of its three ways and waits for the chat. */
async function enter(page, how, nickname, password, room) {
    await page.getByRole('radio', { name: how }).check();
    await page.getByLabel('Nickname', { exact: true }).fill(nickname);
    if (password !== undefined) await page.getByLabel('Password', { exact: true }).fill(password);
    await page.getByLabel('Room', { exact: true }).fill(room);
    await page.getByLabel('Room', { exact: true }).press('Enter');
    await box(page).waitFor({ state: 'visible', timeout: 10000 });
}

/** wsClient (browser.mjs), ended with the file. */
async function program(url, first, room) {
    const ws = await wsClient(url, first, room);
    cleanups.push(() => ws.terminate());
    return ws;
}

const wsAccount = (srv, nickname, room) => program(srv.url, { type: 'register', nickname, password: `${nickname} password` }, room);

/** Waits until the badge of `id` reads `n` (hidden for 0). */
async function badgeIs(page, id, n) {
    await until(async () => {
        const b = badge(page, id);
        if (await b.count() === 0) return false;
        if (n === 0) return b.isHidden();
        return !(await b.isHidden()) && (await b.textContent()).startsWith(`${n} `);
    }, { what: `badge of ${id} = ${n}` });
}

const sentOf = (page, type) => page.evaluate((t) => globalThis.sentFrames.filter((f) => f.type === t), type);

test('privates to an offline account wait for it: a new device with the password lists them, unread, and reads them', async () => {
    const srv = await server(['--resume-seconds', '1']);
    const ben = await device(srv.url);
    await enter(ben, 'Register', 'ben', 'ben password', 'sala');
    const ana = await device(srv.url);
    await enter(ana, 'Register', 'ana', 'ana password', 'sala');
    await until(async () => (await memberNames(ana)).includes('ben'), { what: 'ben in the room' });
    await ana.getByRole('list', { name: 'Members' }).getByRole('button', { name: 'ben' }).click();
    await ana.getByRole('menuitem', { name: 'Message privately' }).click();
    await ana.getByRole('heading', { name: 'ben' }).waitFor();
    await say(ana, 'hola 1');
    await badgeIs(ben, 'p:ana', 1);
    await ben.context().close();
    // Once the grace time (1 s here) is over, ben is gone: what comes for it
    // now is stored only, not held for its return.
    await until(async () => (await ana.locator('#conv-sub').textContent()) === 'Private conversation', { what: 'ben gone' });

    await say(ana, 'hola 2');
    await say(ana, 'hola 3');
    await until(async () => {
        const shown = await messages(ana);
        return shown.length === 3 && shown.every((m) => !m.pending && !m.failed && m.id > 0);
    }, { what: 'stored and acknowledged' });

    // Another device: the password brings the conversation, three unread.
    const phone = await loggedIn(srv.url, 'ben', 'otra');
    await badgeIs(phone, 'p:ana', 3);
    assert.equal(await phone.title(), '(3) otra · tertulia');
    assert.deepEqual(await texts(phone), [], 'the room shows none of it');
    await conv(phone, 'p:ana').click();
    await waitForMessage(phone, 'hola 3', 'ana');
    assert.deepEqual(await texts(phone), ['hola 1', 'hola 2', 'hola 3']);

    // The unread ones start below the "New messages" divider: here all three.
    assert.equal(await activeLog(phone).locator('.new-divider + li.msg .text').textContent(), 'hola 1');
    await phone.locator('section.pane:not([hidden]) .pane-start').waitFor({ state: 'attached' });
    await badgeIs(phone, 'p:ana', 0);
    assert.equal(await phone.title(), 'ana · tertulia');
    // The read marker went to the server: it is read on the next device too.
    const read = await until(async () => (await sentOf(phone, 'read')).find((f) => f.with === 'ana'), { what: 'read sent' });
    assert.equal(read.up_to, (await messages(phone)).at(-1).id, 'up to the newest shown');
    const hist = (await sentOf(phone, 'history')).filter((f) => f.with === 'ana');
    assert.equal(hist.length, 1, 'the past is asked once');
    const laptop = await loggedIn(srv.url, 'ben', 'otra');
    await conv(laptop, 'p:ana').waitFor();
    await badgeIs(laptop, 'p:ana', 0);
    // And ben answers from there: ana hears it live.
    await conv(laptop, 'p:ana').click();
    await waitForMessage(laptop, 'hola 3', 'ana');
    await say(laptop, 'recibido');
    await waitForMessage(ana, 'recibido', 'ben');
    for (const p of [ana, phone, laptop]) assert.deepEqual(p.problems, []);
    for (const p of [ana, phone, laptop]) await p.context().close();
});

test('a long conversation loads its latest page, then earlier pages with "load earlier", each message once', async () => {
    const srv = await server();
    const ana = await wsAccount(srv, 'ana');
    const ben = await wsAccount(srv, 'ben');
    let last = 0;
    for (let i = 1; i <= 60; i++) last = (await ana.private('ben', `line ${i}`)).message_id;
    // Read on another device (a program) already: nothing unread here.
    ben.send(JSON.stringify({ type: 'read', with: 'ana', up_to: last }));
    await ben.request({ type: 'private', to: 'ana', message: { text: 'read them all' } }); // after the read, in order
    const page = await loggedIn(srv.url, 'ben', 'sala');
    await conv(page, 'p:ana').waitFor();
    await badgeIs(page, 'p:ana', 0);
    await conv(page, 'p:ana').click();
    await waitForMessage(page, 'read them all', 'ben');
    const first = await texts(page);
    assert.equal(first.length, 50, 'the latest page');
    assert.equal(first[0], 'line 12');
    await page.locator('section.pane:not([hidden])').getByRole('button', { name: 'Load earlier messages' }).click();
    await waitForMessage(page, 'line 1', 'ana');
    await page.locator('section.pane:not([hidden]) .pane-start').waitFor({ state: 'attached' });
    assert.deepEqual(await texts(page), [...Array.from({ length: 60 }, (_, i) => `line ${i + 1}`), 'read them all']);
    const ids = (await messages(page)).map((m) => m.id);
    assert.equal(new Set(ids).size, 61, 'no id twice');
    assert.deepEqual(page.problems, []);
    await page.context().close();
});

test('two tabs of one account: a private shows unread in both, reading it in one clears the other; rooms too', async () => {
    const srv = await server();
    const tab1 = await device(srv.url);
    await enter(tab1, 'Register', 'ben', 'ben password', 'sala');
    const tab2 = await chatTab(tab1, srv.url);
    await tab2.getByRole('heading', { name: 'sala' }).waitFor();
    const ana = await wsAccount(srv, 'ana', 'sala');
    await until(async () => (await memberNames(tab2)).includes('ana'), { what: 'ana in tab 2' });

    await ana.private('ben', 'uno');
    await ana.private('ben', 'dos');
    for (const tab of [tab1, tab2]) await badgeIs(tab, 'p:ana', 2);
    await conv(tab1, 'p:ana').click();
    await waitForMessage(tab1, 'dos', 'ana');
    assert.deepEqual(await texts(tab1), ['uno', 'dos']);
    await badgeIs(tab1, 'p:ana', 0);
    await badgeIs(tab2, 'p:ana', 0); // the `read` from tab 1
    assert.equal(await tab2.title(), 'sala · tertulia');

    // A room message: tab 1 is on the private, tab 2 on the room (it reads it there).
    await ana.request({ type: 'room', to: 'sala', message: { text: 'para la sala' } });
    await waitForMessage(tab2, 'para la sala', 'ana');
    await until(async () => (await sentOf(tab2, 'read')).some((f) => f.room === 'sala'), { what: 'tab 2 marks the room read' });
    await tab1.locator('section.pane li.msg .text', { hasText: 'para la sala' }).waitFor({ state: 'attached' });
    await badgeIs(tab1, 'r:sala', 0);
    assert.equal(await tab1.title(), 'ana · tertulia');

    // With neither tab on the room, both count it.
    await tab2.locator('.conv[data-conv="p:ana"]').click();
    await waitForMessage(tab2, 'dos', 'ana');
    await ana.request({ type: 'room', to: 'sala', message: { text: 'otra vez' } });
    for (const tab of [tab1, tab2]) await badgeIs(tab, 'r:sala', 1);
    await conv(tab2, 'r:sala').click();
    await waitForMessage(tab2, 'otra vez', 'ana');
    await badgeIs(tab2, 'r:sala', 0);
    await badgeIs(tab1, 'r:sala', 0);

    // A private while each tab looks at something else again: both count, tab 2 reads.
    await conv(tab1, 'r:sala').click();
    await ana.private('ben', 'tres');
    for (const tab of [tab1, tab2]) await badgeIs(tab, 'p:ana', 1);
    await conv(tab2, 'p:ana').click();
    await waitForMessage(tab2, 'tres', 'ana');
    await badgeIs(tab1, 'p:ana', 0);
    assert.deepEqual(await texts(tab2), ['uno', 'dos', 'tres']);
    for (const p of [tab1, tab2]) assert.deepEqual(p.problems, []);
    await tab1.context().close();
});

test('a reload keeps the conversations and their counts, counting nothing twice; a reconnect fetches what came meanwhile, once', async () => {
    const srv = await server(['--resume-seconds', '1']);
    const proxy = await startProxy(srv.port);
    cleanups.push(() => proxy.close());
    const ben = await device(proxy.url, { config: { timing: { backoffBaseMs: 200, backoffCapMs: 1000 } } });
    await enter(ben, 'Register', 'ben', 'ben password', 'sala');
    const ana = await wsAccount(srv, 'ana', 'sala');
    const cy = await wsAccount(srv, 'cy', 'sala');
    await ana.private('ben', 'a1');
    await ana.private('ben', 'a2');
    await cy.private('ben', 'c1');
    await badgeIs(ben, 'p:ana', 2);
    await badgeIs(ben, 'p:cy', 1);

    await ben.reload();
    await box(ben).waitFor({ state: 'visible', timeout: 10000 });
    await badgeIs(ben, 'p:ana', 2);
    await badgeIs(ben, 'p:cy', 1);
    assert.deepEqual(await ben.locator('#dm-list .conv-name').allTextContents(), ['cy', 'ana'], 'newest first');
    await ana.private('ben', 'a3');
    await badgeIs(ben, 'p:ana', 3);
    assert.equal(await ben.title(), '(4) sala · tertulia');
    await conv(ben, 'p:ana').click();
    await waitForMessage(ben, 'a3', 'ana');
    assert.deepEqual(await texts(ben), ['a1', 'a2', 'a3']);
    await badgeIs(ben, 'p:ana', 0);
    await badgeIs(ben, 'p:cy', 1);

    // Reloaded on the conversation: the same messages, once each, nothing unread there.
    await until(async () => (await sentOf(ben, 'read')).some((f) => f.with === 'ana'), { what: 'read sent' });
    await ben.reload();
    await box(ben).waitFor({ state: 'visible', timeout: 10000 });
    await ben.getByRole('heading', { name: 'ana' }).waitFor();
    await waitForMessage(ben, 'a3', 'ana');
    await badgeIs(ben, 'p:cy', 1);
    await badgeIs(ben, 'p:ana', 0);
    assert.deepEqual(await texts(ben), ['a1', 'a2', 'a3']);

    // The line drops; what ana and cy send meanwhile is stored, and comes
    // back once after the reconnect.
    proxy.refuse();
    proxy.dropAll();
    await until(async () => (await ben.locator('#conn-text').textContent()) === 'Reconnecting…', { what: 'reconnecting' });
    // Once the server has let ben go (the grace time is 1 s here), what
    // comes for it is only stored, not held for its return.
    await until(() => ana.frames.some((f) => f.type === 'member_left' && f.nickname === 'ben'), { what: 'ben gone' });
    await ana.private('ben', 'a4 while away');
    await cy.private('ben', 'c2 while away');
    proxy.pass();
    await until(async () => (await ben.locator('#conn-text').textContent()) === 'Connected', { timeout: 15000, what: 'connected again' });
    await waitForMessage(ben, 'a4 while away', 'ana');
    // Fetched with `history` (the page opened after the reload, then the catch-up), not redelivered.
    assert.deepEqual((await sentOf(ben, 'history')).filter((f) => f.with === 'ana').map((f) => f.before), [undefined, undefined]);
    await badgeIs(ben, 'p:cy', 2);
    await ana.private('ben', 'a5 live');
    await waitForMessage(ben, 'a5 live', 'ana');
    assert.deepEqual(await texts(ben), ['a1', 'a2', 'a3', 'a4 while away', 'a5 live']);
    await conv(ben, 'p:cy').click();
    await waitForMessage(ben, 'c2 while away', 'cy');
    assert.deepEqual(await texts(ben), ['c1', 'c2 while away']);
    await badgeIs(ben, 'p:cy', 0);

    // Closed, a conversation stays off the list (a reload too) until something new comes.
    await ben.getByRole('button', { name: 'Close the conversation with cy' }).click();
    await until(async () => (await conv(ben, 'p:cy').count()) === 0, { what: 'closed' });
    await ana.private('ben', 'a6');
    await badgeIs(ben, 'p:ana', 1);
    await ben.reload();
    await box(ben).waitFor({ state: 'visible', timeout: 10000 });
    await badgeIs(ben, 'p:ana', 1); // the conversations are in
    assert.equal(await conv(ben, 'p:cy').count(), 0);
    await cy.private('ben', 'c3');
    await badgeIs(ben, 'p:cy', 1);
    assert.deepEqual(ben.problems, []);
    await ben.context().close();
});

test('a guest asks for no conversations and sends no read markers; its privates stay live and work', async () => {
    const srv = await server();
    const gus = await device(srv.url);
    await enter(gus, 'Continue as guest', 'gus', undefined, 'sala');
    const ida = await program(srv.url, { type: 'login', nickname: 'ida' }, 'sala');
    await until(async () => (await memberNames(gus)).includes('ida'), { what: 'ida in the room' });
    await ida.private('gus', 'hola gus');
    await badgeIs(gus, 'p:ida', 1);
    await conv(gus, 'p:ida').click();
    await waitForMessage(gus, 'hola gus', 'ida');
    await badgeIs(gus, 'p:ida', 0);
    await say(gus, 'hola ida');
    await until(() => ida.frames.some((f) => f.type === 'private' && f.from === 'gus' && f.message.text === 'hola ida'), { what: 'ida got it' });
    await ida.request({ type: 'room', to: 'sala', message: { text: 'en la sala' } });
    await badgeIs(gus, 'r:sala', 1);
    await conv(gus, 'r:sala').click();
    await waitForMessage(gus, 'en la sala', 'ida');
    await badgeIs(gus, 'r:sala', 0);
    const sent = await gus.evaluate(() => globalThis.sentFrames);
    assert.deepEqual(sent.filter((f) => f.type === 'conversations' || f.type === 'read' || (f.type === 'history' && f.with !== undefined)), []);
    assert.ok(!ida.frames.some((f) => f.type === 'error'));
    assert.deepEqual(gus.problems, []);
    await gus.context().close();
});
