// Typing indicators and away status in the web client: what one page types
// shows as "ana is typing…" under the other page's log, and goes when the
// message is sent or the box is emptied; an away status shows in the
// others' member list, and goes when cleared.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer } from './server.mjs';
import { launchBrowser, joinAs, say, waitForMessage, memberNames, until } from './browser.mjs';

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
