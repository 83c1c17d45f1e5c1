// The web client with accounts: registering and logging in from the first
// screen, the token kept in localStorage (a reload, a second tab, a restarted
// browser come straight back in, where they were), a second device with
// the password, logging out (here, and everywhere), changing the password,
// and the notice on a private message that could not be delivered.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import WebSocket from 'ws';
import { startServer } from './server.mjs';
import { startProxy } from './proxy.mjs';
import { launchBrowser, openPage, say, waitForMessage, memberNames, until, activeLog, newTab, wsClient } from './browser.mjs';

const browser = await launchBrowser();
const cleanups = [];
after(async () => {
    for (const c of cleanups.reverse()) await c();
    await browser.close();
});

const box = (page) => page.getByRole('textbox', { name: 'Message', exact: true });
const roomNames = (page) => page.locator('#room-list .conv-name').allTextContents();
const focusedId = (page) => page.evaluate(() => document.activeElement && document.activeElement.id);

async function server(args = []) {
    const s = await startServer({ args });
    cleanups.push(() => s.dispose());
    return s;
}

/** Fills the first screen in one of its three ways and waits for the chat. */
async function enter(page, how, nickname, password, room) {
    await page.getByRole('radio', { name: how }).check();
    await page.getByLabel('Nickname', { exact: true }).fill(nickname);
    if (password !== undefined) await page.getByLabel('Password', { exact: true }).fill(password);
    if (room !== undefined) await page.getByLabel('Room', { exact: true }).fill(room);
    await page.getByLabel('Room', { exact: true }).press('Enter'); // Enter submits
}

async function inChat(page) {
    await box(page).waitFor({ state: 'visible', timeout: 10000 });
}

/** A new browser that registers `nickname` and is in the chat. */
async function registered(srv, nickname, password, room) {
    const page = await openPage(browser, srv.url);
    await enter(page, 'Register', nickname, password, room);
    await inChat(page);
    return page;
}

async function loginForm(page, timeout = 10000) {
    await page.getByLabel('Password', { exact: true }).waitFor({ state: 'visible', timeout });
}

/** A guest from node (wsClient, browser.mjs) in `room`, ended with the file. */
async function wsGuest(srv, nickname, room) {
    const ws = await wsClient(srv.url, { type: 'login', nickname }, room);
    cleanups.push(() => ws.terminate());
    return ws;
}

/**
 * One account in three places: two tabs of one browser (registered in the
 * first, the second opened after) and another device, logged in with the
 * password. All in the chat.
 */
async function threePlaces(srv, nick, password, room) {
    const tab1 = await registered(srv, nick, password, room);
    const tab2 = await newTab(tab1, srv.url);
    await inChat(tab2);
    const other = await openPage(browser, srv.url);
    await enter(other, 'Log in', nick, password, room);
    await inChat(other);
    return [tab1, tab2, other];
}

/** The first message in view of the visible pane: {id, offset}, as the client keeps it. */
function firstInView(page) {
    return page.locator('section.pane:not([hidden]) .scroller').evaluate((scroller) => {
        const top = scroller.getBoundingClientRect().top;
        for (const li of scroller.querySelectorAll('li.msg[data-id]')) {
            const r = li.getBoundingClientRect();
            if (r.bottom > top) return { id: Number(li.dataset.id), offset: Math.round(r.top - top), scrollTop: scroller.scrollTop };
        }
        return null;
    });
}

const noSelfNoise = (page, nick) => activeLog(page).getByText(new RegExp(`${nick} (joined|disconnected|left|timed out)`)).count();

test('register, then a reload comes straight back: same rooms, privates, pane, scroll, what was missed, no noise', async () => {
    const srv = await server();
    const ana = await openPage(browser, srv.url);
    // The rules are shown before anything is sent.
    await ana.getByRole('radio', { name: 'Register' }).check();
    await ana.getByText('At least 8 characters.', { exact: true }).waitFor();
    await ana.getByLabel('Nickname', { exact: true }).fill('ana');
    await ana.getByLabel('Password', { exact: true }).fill('short');
    await ana.getByRole('button', { name: 'Create account' }).click();
    assert.match(await ana.locator('#password-error').textContent(), /at least 8/);
    assert.equal(await ana.locator('#chat-view').isHidden(), true);

    await enter(ana, 'Register', 'ana', 'correct horse', 'sala-a');
    await inChat(ana);
    await ana.getByRole('heading', { name: 'sala-a' }).waitFor();
    assert.equal(await focusedId(ana), 'message', 'after Join the cursor is in the message box');

    const carl = await wsGuest(srv, 'carl', 'sala-a');
    for (let i = 1; i <= 40; i++) await carl.request({ type: 'room', to: 'sala-a', message: { text: `line ${i}` } });
    await waitForMessage(ana, 'line 40', 'carl');
    // A second room, joined from the sidebar: the cursor goes to the message box again.
    await ana.getByLabel('Room to join').fill('otra-a');
    await ana.getByRole('button', { name: 'Join', exact: true }).click();
    await ana.getByRole('heading', { name: 'otra-a' }).waitFor();
    assert.equal(await focusedId(ana), 'message');
    // A private conversation with carl.
    await ana.locator('.conv[data-conv="r:sala-a"]').click();
    await ana.getByRole('list', { name: 'Members' }).getByRole('button', { name: 'carl' }).click();
    await ana.getByRole('menuitem', { name: 'Message privately' }).click();
    await ana.getByRole('heading', { name: 'carl' }).waitFor();
    await say(ana, 'hello carl');
    await until(() => carl.frames.some((f) => f.type === 'private' && f.message.text === 'hello carl'), { what: 'carl got it' });
    // Back to the room, scrolled up to read.
    await ana.locator('.conv[data-conv="r:sala-a"]').click();
    await ana.locator('section.pane:not([hidden]) .scroller').evaluate((s) => { s.scrollTop = Math.floor((s.scrollHeight - s.clientHeight) / 2); });
    await until(async () => !(await ana.locator('#jump').isHidden()), { what: 'scrolled away from the bottom' });
    const place = await firstInView(ana);
    assert.ok(place && place.scrollTop > 0);

    // Watch what the reloaded page sends.
    await ana.addInitScript(() => {
        const send = WebSocket.prototype.send;
        globalThis.sentFrames = [];
        WebSocket.prototype.send = function (data) { globalThis.sentFrames.push(JSON.parse(data)); return send.call(this, data); };
    });
    const reloading = ana.reload();
    await carl.request({ type: 'room', to: 'sala-a', message: { text: 'said during the reload' } });
    await reloading;
    await inChat(ana);
    assert.equal(await ana.getByLabel('Nickname', { exact: true }).isVisible(), false, 'no login form');
    await until(async () => (await roomNames(ana)).length === 2, { what: 'both rooms back' });
    assert.deepEqual(await roomNames(ana), ['sala-a', 'otra-a']);
    await ana.locator('.conv[data-conv="p:carl"]').waitFor();
    await ana.getByRole('heading', { name: 'sala-a' }).waitFor();
    assert.equal(await ana.locator('.conv[data-conv="r:sala-a"]').getAttribute('aria-current'), 'page', 'the same pane on screen');
    await activeLog(ana).locator('li.msg .text', { hasText: 'said during the reload' }).waitFor({ state: 'attached' });
    await until(async () => {
        const now = await firstInView(ana);
        return now && now.id === place.id && Math.abs(now.offset - place.offset) <= 2;
    }, { what: `scrolled where it was (${JSON.stringify(place)})` });
    assert.equal(await noSelfNoise(ana, 'ana'), 0, 'no "joined" line about oneself');
    // What was missed came with `join` + `since`, the page before from `history`: each message once, in order.
    const sent = await ana.evaluate(() => globalThis.sentFrames);
    assert.equal(sent[0].token !== undefined && sent[0].type, 'login', 'logged in with the stored token');
    const join = sent.find((f) => f.type === 'join' && f.room === 'sala-a');
    assert.ok(join && join.since > 0, `joined with since: ${JSON.stringify(join)}`);
    const texts = await activeLog(ana).locator('li.msg .text').allTextContents();
    assert.deepEqual(texts, [...Array.from({ length: 40 }, (_, i) => `line ${i + 1}`), 'said during the reload']);
    // The private conversation is open again and still works.
    await ana.locator('.conv[data-conv="p:carl"]').click();
    await say(ana, 'still me');
    await until(() => carl.frames.some((f) => f.type === 'private' && f.message.text === 'still me' && f.from === 'ana'), { what: 'private after reload' });
    assert.ok(!carl.frames.some((f) => f.type === 'member_joined' && f.nickname === 'ana' && f.room === 'sala-a'
        && carl.frames.indexOf(f) > carl.frames.findIndex((g) => g.type === 'room' && g.message.text === 'line 40')), 'carl heard no "ana joined" from the reload');
    assert.deepEqual(ana.problems, []);
    await ana.context().close();
});

test('a second tab opens as the same account; a second device needs the password; guests cannot take the name', async () => {
    const srv = await server();
    const tab1 = await registered(srv, 'bea', 'bea password 1', 'sala-b');
    const tab2 = await newTab(tab1, srv.url);
    await inChat(tab2);
    await tab2.getByRole('heading', { name: 'sala-b' }).waitFor();
    assert.equal(await tab2.getByLabel('Nickname', { exact: true }).isVisible(), false);
    assert.equal(await tab2.locator('#me-name').textContent(), 'bea');

    const dan = await wsGuest(srv, 'dan', 'sala-b');
    await until(async () => (await memberNames(tab2)).includes('dan'), { what: 'dan in tab 2' });
    assert.deepEqual(await memberNames(tab2), ['bea', 'dan'], 'one bea, however many tabs');
    await dan.request({ type: 'private', to: 'bea', message: { text: 'to every tab' } });
    for (const tab of [tab1, tab2]) {
        await tab.locator('.conv[data-conv="p:dan"]').click();
        await waitForMessage(tab, 'to every tab', 'dan');
    }

    // Another device: the password, and only the right one.
    const phone = await openPage(browser, srv.url);
    await enter(phone, 'Log in', 'bea', 'wrong password', 'sala-b');
    await until(async () => (await phone.locator('#login-error').textContent()) === 'Wrong nickname or password.', { what: 'wrong password error' });
    assert.equal(await focusedId(phone), 'password');
    await phone.getByLabel('Password', { exact: true }).fill('bea password 1');
    await phone.getByLabel('Password', { exact: true }).press('Enter');
    await inChat(phone);
    await phone.getByRole('heading', { name: 'sala-b' }).waitFor();

    // A guest may not take an account's nickname (offline: no one holds it now).
    const eva = await registered(srv, 'eva', 'eva password 1', 'sala-b');
    await eva.getByRole('button', { name: 'Log out', exact: true }).click();
    await loginForm(eva);
    const guest = await openPage(browser, srv.url);
    await enter(guest, 'Continue as guest', 'eva', undefined, 'sala-b');
    await until(async () => (await guest.locator('#nickname-error').textContent()) === 'That nickname belongs to an account: log in with its password.',
        { what: 'nickname_registered message' });
    assert.equal(await guest.locator('#chat-view').isHidden(), true);

    for (const p of [tab1, tab2, phone, eva, guest]) assert.deepEqual(p.problems, []);
    for (const p of [tab1, phone, eva, guest]) await p.context().close();
});

test('log out in one tab: this browser is logged out (every tab), the other device stays in', async () => {
    const srv = await server();
    const [tab1, tab2, other] = await threePlaces(srv, 'juana', 'juana password', 'sala-g');
    await tab1.getByRole('button', { name: 'Log out', exact: true }).click();
    await loginForm(tab1);
    await tab2.getByText('You logged out in another tab.').waitFor();
    await tab2.reload();
    await loginForm(tab2);
    assert.equal(await tab2.getByRole('button', { name: 'Log in', exact: true }).isVisible(), true, 'the account way in is preselected');
    // The other device keeps its session, reloads included.
    await other.reload();
    await inChat(other);
    await say(other, 'still here');
    await waitForMessage(other, 'still here', 'juana');
    for (const p of [tab1, tab2, other]) assert.deepEqual(p.problems, []);
    await tab1.context().close();
    await other.context().close();
});

test('log out everywhere: every tab and device goes back to the login form, and stays there', async () => {
    const srv = await server();
    const [tab1, tab2, laptop] = await threePlaces(srv, 'flor', 'flor password', 'sala-c');

    await tab1.getByRole('button', { name: 'Account' }).click();
    await tab1.getByRole('dialog', { name: 'Your account' }).getByRole('button', { name: 'Log out everywhere' }).click();
    for (const p of [tab1, tab2, laptop]) {
        await loginForm(p);
        assert.equal(await box(p).isVisible(), false);
    }
    await laptop.getByText('You were logged out.').waitFor();
    for (const p of [tab2, laptop]) {
        await p.reload();
        await loginForm(p);
        assert.equal(await box(p).isVisible(), false, 'the token is gone');
        assert.equal(await p.getByLabel('Nickname', { exact: true }).inputValue(), 'flor');
    }
    for (const p of [tab1, tab2, laptop]) assert.deepEqual(p.problems, []);
    await tab1.context().close();
    await laptop.context().close();
});

test('change the password: the new one logs in, the old one no longer does, this browser stays in', async () => {
    const srv = await server();
    const page = await registered(srv, 'gil', 'old password', 'sala-d');
    const tablet = await openPage(browser, srv.url);
    await enter(tablet, 'Log in', 'gil', 'old password', 'sala-d');
    await inChat(tablet);
    await page.getByRole('button', { name: 'Account' }).click();
    const dialog = page.getByRole('dialog', { name: 'Your account' });
    await dialog.getByLabel('Current password').fill('old password');
    await dialog.getByLabel('New password', { exact: true }).fill('new password');
    await dialog.getByLabel('Repeat the new password').fill('new passwort');
    await dialog.getByRole('button', { name: 'Change password' }).click();
    await dialog.getByText('The new passwords differ.').waitFor();
    await dialog.getByLabel('Repeat the new password').fill('new password');
    await dialog.getByLabel('Repeat the new password').press('Enter');
    await dialog.getByText(/^Password changed/).waitFor();
    await dialog.getByRole('button', { name: 'Close' }).click();

    // This browser keeps the new token: a reload is still logged in.
    await page.reload();
    await inChat(page);
    await page.getByRole('heading', { name: 'sala-d' }).waitFor();

    // The other device's token died with the change: its next load asks for the password.
    await tablet.reload();
    await loginForm(tablet);
    await tablet.getByText('Your session ended: log in again.').waitFor();
    assert.equal(await box(tablet).isVisible(), false);

    const old = await openPage(browser, srv.url);
    await enter(old, 'Log in', 'gil', 'old password', 'sala-d');
    await until(async () => (await old.locator('#login-error').textContent()) === 'Wrong nickname or password.', { what: 'old password refused' });
    const fresh = await openPage(browser, srv.url);
    await enter(fresh, 'Log in', 'gil', 'new password', 'sala-d');
    await inChat(fresh);
    for (const p of [page, tablet, old, fresh]) assert.deepEqual(p.problems, []);
    for (const p of [page, tablet, old, fresh]) await p.context().close();
});

test('an account whose network drops logs back in with its token and recovers what it missed, once', async () => {
    const srv = await server();
    const proxy = await startProxy(srv.port);
    cleanups.push(() => proxy.close());
    const kai = await openPage(browser, proxy.url, { config: { timing: { backoffBaseMs: 200, backoffCapMs: 1000 } } });
    await enter(kai, 'Register', 'kai', 'kai password', 'sala-r');
    await inChat(kai);
    const leo = await wsGuest(srv, 'leo', 'sala-r');
    await leo.request({ type: 'room', to: 'sala-r', message: { text: 'before the drop' } });
    await waitForMessage(kai, 'before the drop', 'leo');
    proxy.refuse();
    proxy.dropAll();
    await until(async () => (await kai.locator('#conn-text').textContent()) === 'Reconnecting…', { what: 'reconnecting' });
    await leo.request({ type: 'room', to: 'sala-r', message: { text: 'while kai was away' } });
    proxy.pass();
    await until(async () => (await kai.locator('#conn-text').textContent()) === 'Connected', { timeout: 15000, what: 'connected again' });
    await waitForMessage(kai, 'while kai was away', 'leo');
    const texts = await activeLog(kai).locator('li.msg .text').allTextContents();
    assert.deepEqual(texts, ['before the drop', 'while kai was away']);
    assert.equal(await kai.locator('#me-name').textContent(), 'kai');
    assert.ok(!leo.frames.some((f) => f.type === 'member_joined' && f.nickname === 'kai'), 'no "kai joined" for the reconnect');
    assert.deepEqual(kai.problems, []);
    await kai.context().close();
});

test('refusals in plain words: too many wrong passwords, registration closed, guests closed', async () => {
    const srv = await server();
    const mia = await registered(srv, 'mia', 'mia password', 'sala-f');
    // Wrong guesses from a program use up the nickname's failure bucket...
    const ws = new WebSocket(`${srv.url.replace('http', 'ws')}ws`, 'tertulia.v1');
    cleanups.push(() => ws.terminate());
    const replies = [];
    ws.on('message', (data) => replies.push(JSON.parse(data)));
    await new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject); });
    for (let i = 0; ; i++) {
        ws.send(JSON.stringify({ type: 'login', nickname: 'mia', password: `guess ${i}`, id: `g${i}` }));
        const reply = await until(() => replies.find((r) => r.ref === `g${i}`), { what: `reply to guess ${i}` });
        if (reply.code === 'rate_limited') break;
        assert.equal(reply.code, 'auth_failed');
        assert.ok(i < 50, 'the failures are limited');
    }
    // ...so the form says to wait, even with the right password.
    const late = await openPage(browser, srv.url);
    await enter(late, 'Log in', 'mia', 'mia password', 'sala-f');
    await until(async () => /^Too many attempts\. Try again in \d+ s\.$/.test(await late.locator('#login-error').textContent()), { what: 'rate_limited message' });

    const closed = await server(['--registration', 'off', '--guests', 'off']);
    const page = await openPage(browser, closed.url);
    await enter(page, 'Register', 'nora', 'nora password', 'sala-f');
    await until(async () => (await page.locator('#login-error').textContent()) === 'This server takes no new accounts. Log in, or continue as a guest.', { what: 'registration_closed' });
    await enter(page, 'Continue as guest', 'nora', undefined, 'sala-f');
    await until(async () => (await page.locator('#login-error').textContent()) === 'This server takes accounts only: log in, or register.', { what: 'guests_closed' });
    assert.equal(await page.getByRole('radio', { name: 'Log in' }).isChecked(), true, 'the form turns to Log in');
    for (const p of [mia, late, page]) assert.deepEqual(p.problems, []);
    for (const p of [mia, late, page]) await p.context().close();
});

test('a private to a guest who dropped and never came back shows "not delivered"', async () => {
    const srv = await server(['--resume-seconds', '1']);
    const hugo = await openPage(browser, srv.url);
    await enter(hugo, 'Continue as guest', 'hugo', undefined, 'sala-e');
    await inChat(hugo);
    const ida = await wsGuest(srv, 'ida', 'sala-e');
    await until(async () => (await memberNames(hugo)).includes('ida'), { what: 'ida in the room' });
    await hugo.getByRole('list', { name: 'Members' }).getByRole('button', { name: 'ida' }).click();
    await hugo.getByRole('menuitem', { name: 'Message privately' }).click();
    await hugo.getByRole('heading', { name: 'ida' }).waitFor();
    ida.terminate(); // no goodbye: the server holds her privates for the grace time
    await say(hugo, 'are you there?');
    const note = activeLog(hugo).locator('li.msg.failed .note');
    await note.waitFor({ timeout: 10000 });
    assert.match(await note.textContent(), /Not delivered: ida was offline\./);
    assert.deepEqual(hugo.problems, []);
    await hugo.context().close();
});
