// Typing indicators and away status in the web client: what one page types
// shows as "ana is typing…" under the other page's log, and goes when the
// message is sent or the box is emptied; an away status shows in the
// others' member list, and goes when cleared.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer } from './server.mjs';
import { launchBrowser, joinAs, say, waitForMessage, memberNames, until, wsClient } from './browser.mjs';

const browser = await launchBrowser();
const cleanups = [];
after(async () => {
    for (const c of cleanups.reverse()) await c();
    await browser.close();
});

const box = (page) => page.getByRole('textbox', { name: 'Message', exact: true });
const typingLine = (page) => page.locator('section.pane:not([hidden]) .typing');

async function waitTyping(page, text, what) {
    await until(async () => (await typingLine(page).textContent()) === text, { what });
}

test('typing in one page shows under the log of the other; sending or emptying the box ends it', async () => {
    const server = await startServer();
    cleanups.push(() => server.dispose());
    const ana = await joinAs(browser, server.url, 'ana', 'sala-typing');
    const ben = await joinAs(browser, server.url, 'ben', 'sala-typing');
    await until(async () => (await memberNames(ana)).includes('ben'), { what: 'ben in the room' });
    assert.equal(await typingLine(ben).textContent(), '');

    await box(ana).pressSequentially('hel');
    await waitTyping(ben, 'ana is typing…', 'ana typing in ben’s page');
    assert.equal(await typingLine(ana).textContent(), '', 'nobody is shown typing to themselves');

    await box(ana).fill('');
    await waitTyping(ben, '', 'the indicator gone once ana emptied the box');

    // Typing again right after the stop (the server takes a new start 2 s after the last).
    await box(ana).pressSequentially('hello ben');
    await waitTyping(ben, 'ana is typing…', 'ana typing again');
    await box(ana).press('Enter');
    await waitForMessage(ben, 'hello ben', 'ana');
    await waitTyping(ben, '', 'the indicator gone with the message');

    assert.deepEqual(ana.problems, []);
    assert.deepEqual(ben.problems, []);
    await ana.context().close();
    await ben.context().close();
});

test('an away status with a text shows in the others’ member list, and goes when cleared', async () => {
    const server = await startServer();
    cleanups.push(() => server.dispose());
    const ana = await joinAs(browser, server.url, 'ana', 'sala-away');
    const ben = await joinAs(browser, server.url, 'ben', 'sala-away');
    await until(async () => (await memberNames(ben)).includes('ana'), { what: 'ana in ben’s list' });
    const anaInBen = ben.getByRole('list', { name: 'Members' }).locator('.person').filter({ hasText: 'ana' });
    assert.equal(await anaInBen.evaluate((el) => el.classList.contains('away')), false);

    await ana.getByLabel('Away message (optional)').fill('lunch');
    await ana.getByRole('button', { name: 'Away', exact: true }).click();
    await until(async () => anaInBen.evaluate((el) => el.classList.contains('away')), { what: 'ana shown away to ben' });
    assert.match(await anaInBen.getAttribute('title'), /ana is away: lunch/);
    await ana.getByRole('button', { name: 'Back', exact: true }).waitFor();

    // A page joining later learns it from `joined.away`.
    const cai = await joinAs(browser, server.url, 'cai', 'sala-away');
    const anaInCai = cai.getByRole('list', { name: 'Members' }).locator('.person').filter({ hasText: 'ana' });
    await until(async () => anaInCai.evaluate((el) => el.classList.contains('away')), { what: 'ana shown away to cai' });

    await ana.getByRole('button', { name: 'Back', exact: true }).click();
    await until(async () => !(await anaInBen.evaluate((el) => el.classList.contains('away'))), { what: 'ana back for ben' });
    await until(async () => !(await anaInCai.evaluate((el) => el.classList.contains('away'))), { what: 'ana back for cai' });
    await ana.getByRole('button', { name: 'Away', exact: true }).waitFor();

    for (const p of [ana, ben, cai]) assert.deepEqual(p.problems, []);
    for (const p of [ana, ben, cai]) await p.context().close();
});

test('one, two and three people typing read as such, and the line never moves the layout', async () => {
    const server = await startServer();
    cleanups.push(() => server.dispose());
    const ana = await joinAs(browser, server.url, 'ana', 'sala-typing3');
    const others = [];
    for (const nick of ['ben', 'cai', 'dan']) others.push(await joinAs(browser, server.url, nick, 'sala-typing3'));
    await until(async () => (await memberNames(ana)).length === 4, { what: 'everyone in the room' });
    const scroller = ana.locator('section.pane:not([hidden]) .scroller');
    const height = () => scroller.evaluate((s) => s.getBoundingClientRect().height);
    const idle = await height();
    assert.ok((await typingLine(ana).evaluate((p) => p.getBoundingClientRect().height)) > 0, 'the line is reserved while empty');

    await box(others[0]).pressSequentially('a');
    await waitTyping(ana, 'ben is typing…', 'one typing');
    assert.equal(await height(), idle);
    await box(others[1]).pressSequentially('b');
    await waitTyping(ana, 'ben and cai are typing…', 'two typing');
    await box(others[2]).pressSequentially('c');
    await waitTyping(ana, '3 people are typing…', 'three typing');
    assert.equal(await height(), idle, 'the log keeps its height');
    await box(others[1]).fill('');
    await waitTyping(ana, 'ben and dan are typing…', 'cai stopped');
    for (const p of [ana, ...others]) assert.deepEqual(p.problems, []);
    for (const p of [ana, ...others]) await p.context().close();
});

test('typing a command tells nobody', async () => {
    const server = await startServer();
    cleanups.push(() => server.dispose());
    const ana = await joinAs(browser, server.url, 'ana', 'sala-typing-cmd');
    const ben = await wsClient(server.url, { type: 'login', nickname: 'ben' }, 'sala-typing-cmd');
    await until(async () => (await memberNames(ana)).includes('ben'), { what: 'ben in the room' });
    await box(ana).pressSequentially('/me waves slowly');
    await box(ana).press('Enter');
    const at = await until(() => {
        const i = ben.frames.findIndex((f) => f.type === 'room' && f.from === 'ana');
        return i >= 0 ? i + 1 : 0;
    }, { what: 'the /me message' });
    assert.equal(ben.frames[at - 1].message.text, '* ana waves slowly');
    assert.deepEqual(ben.frames.slice(0, at).filter((f) => f.type === 'typing'), [], 'no typing frame for a command');
    // A message, though, does tell.
    await box(ana).pressSequentially('hi');
    await until(() => ben.frames.some((f) => f.type === 'typing' && f.nickname === 'ana' && f.state === 'start'), { what: 'typing for a message' });
    ben.terminate();
    assert.deepEqual(ana.problems, []);
    await ana.context().close();
});
