// The web client as one identity per browser: a reload (F5) comes back as
// the same guest in the same rooms, with the room on screen kept and
// without "joined" noise; a second tab opens straight into the chat as the
// same person; logging out forgets the session.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer } from './server.mjs';
import { launchBrowser, joinAs, say, waitForMessage, memberNames, until, activeLog, messages } from './browser.mjs';

const browser = await launchBrowser();
const cleanups = [];
after(async () => {
    for (const c of cleanups.reverse()) await c();
    await browser.close();
});

const box = (page) => page.getByRole('textbox', { name: 'Message', exact: true });
const roomNames = (page) => page.locator('#room-list .conv-name').allTextContents();

test('a reload comes back as the same guest, in the same rooms, on the same room, with what was missed and no noise', async () => {
    const server = await startServer();
    cleanups.push(() => server.dispose());
    const ines = await joinAs(browser, server.url, 'ines', 'sala-f5');
    const juan = await joinAs(browser, server.url, 'juan', 'sala-f5');
    await until(async () => (await memberNames(ines)).includes('juan'), { what: 'juan in the room' });
    await ines.getByLabel('Room to join').fill('otra-f5');
    await ines.getByRole('button', { name: 'Join', exact: true }).click();
    await ines.getByRole('heading', { name: 'otra-f5' }).waitFor();
    await ines.locator('.conv[data-conv="r:sala-f5"]').click();
    await say(juan, 'before the reload');
    await waitForMessage(ines, 'before the reload', 'juan');

    await ines.reload();
    // Straight back into the chat, no login form to fill.
    await box(ines).waitFor({ state: 'visible', timeout: 10000 });
    assert.equal(await ines.getByLabel('Nickname', { exact: true }).isVisible(), false);
    await until(async () => (await roomNames(ines)).length === 2, { what: 'both rooms back' });
    assert.deepEqual((await roomNames(ines)).sort(), ['otra-f5', 'sala-f5']);
    await ines.getByRole('heading', { name: 'sala-f5' }).waitFor();
    await waitForMessage(ines, 'before the reload', 'juan');
    await say(juan, 'after the reload');
    await waitForMessage(ines, 'after the reload', 'juan');
    await say(ines, 'still me');
    await waitForMessage(juan, 'still me', 'ines');
    assert.equal(await activeLog(juan).getByText(/ines (joined|disconnected|left|timed out)/).count(), 0,
        'the others see no presence noise from a reload');
    assert.deepEqual(ines.problems, []);
    await ines.context().close();
    await juan.context().close();
});

test('a second tab of the same browser is the same person; logging out forgets the session', async () => {
    const server = await startServer();
    cleanups.push(() => server.dispose());
    const tab1 = await joinAs(browser, server.url, 'kika', 'sala-tabs');
    const lolo = await joinAs(browser, server.url, 'lolo', 'sala-tabs');
    const tab2 = await tab1.context().newPage();
    tab2.problems = [];
    tab2.on('pageerror', (err) => tab2.problems.push(`pageerror: ${err.message}`));
    await tab2.goto(server.url);
    await box(tab2).waitFor({ state: 'visible', timeout: 10000 });
    await tab2.getByRole('heading', { name: 'sala-tabs' }).waitFor();
    assert.deepEqual((await memberNames(tab2)).sort(), ['kika', 'lolo'], 'one kika, however many tabs');
    await say(lolo, 'to both tabs');
    await waitForMessage(tab1, 'to both tabs', 'lolo');
    await waitForMessage(tab2, 'to both tabs', 'lolo');
    await say(tab2, 'from tab two');
    await waitForMessage(lolo, 'from tab two', 'kika');
    assert.deepEqual((await memberNames(lolo)).sort(), ['kika', 'lolo']);

    await tab2.getByRole('button', { name: /log out/i }).click();
    await tab2.getByRole('button', { name: 'Join the chat' }).waitFor();
    await tab2.reload();
    await tab2.getByRole('button', { name: 'Join the chat' }).waitFor();
    assert.equal(await box(tab2).isVisible(), false, 'after logging out a reload shows the login form');
    assert.deepEqual(tab2.problems, []);
    await tab1.context().close();
    await lolo.context().close();
});

test("a guest who takes a nickname an earlier guest had does not see the earlier one's messages as its own", async () => {
    // No grace time: a guest is gone with its connection, its nickname free at once.
    const server = await startServer({ args: ['--resume-seconds', '0'] });
    cleanups.push(() => server.dispose());
    const first = await joinAs(browser, server.url, 'sam', 'sala-since');
    await say(first, 'said by the first sam');
    await waitForMessage(first, 'said by the first sam');
    assert.equal((await messages(first)).find((m) => m.text === 'said by the first sam').own, true);
    await first.context().close();
    const second = await until(async () => {
        try {
            return await joinAs(browser, server.url, 'sam', 'sala-since');
        } catch {
            return null; // the nickname is freed once the server has the first one's close
        }
    }, { what: 'the second sam logged in', timeout: 20000 });
    await waitForMessage(second, 'said by the first sam');
    const earlier = (await messages(second)).find((m) => m.text === 'said by the first sam');
    assert.equal(earlier.own, false, 'shown as someone else\'s');
    await say(second, 'said by the second sam');
    await waitForMessage(second, 'said by the second sam');
    assert.equal((await messages(second)).find((m) => m.text === 'said by the second sam').own, true);
    assert.deepEqual(second.problems, []);
});
