// Searching in the web client against the real server: the dialog's
// results with the matched words as <mark> elements, "More results" paging
// older ones, and a jump to a result older than what the page shows (the
// history up to it replaces the pane, the message marked, "Show the
// latest" comes back).

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer } from './server.mjs';
import { launchBrowser, openPage, messages, until, activeLog, wsClient, screenshot } from './browser.mjs';

const browser = await launchBrowser();
const cleanups = [];
after(async () => {
    for (const c of cleanups.reverse()) await c();
    await browser.close();
});

const box = (page) => page.getByRole('textbox', { name: 'Message', exact: true });

async function enter(page, how, nickname, room) {
    await page.getByRole('radio', { name: how }).check();
    await page.getByLabel('Nickname', { exact: true }).fill(nickname);
    await page.getByLabel('Password', { exact: true }).fill(`${nickname} password`);
    await page.getByLabel('Room', { exact: true }).fill(room);
    await page.getByLabel('Room', { exact: true }).press('Enter');
    await box(page).waitFor({ state: 'visible', timeout: 10000 });
}

async function search(page, query, where) {
    const dialog = page.getByRole('dialog', { name: 'Search messages' });
    if (!(await dialog.isVisible())) await page.getByRole('button', { name: 'Search messages' }).click();
    await dialog.getByRole('searchbox', { name: 'Search messages' }).fill(query);
    if (where) await dialog.getByLabel('Where').selectOption({ label: where });
    await dialog.getByRole('button', { name: 'Search', exact: true }).click();
    return dialog;
}

test('search results mark the words found, page on with More, and a result jumps to its message in the room', async () => {
    // Joining shows only the last 3 messages: the result is older than that.
    const server = await startServer({ args: ['--history-on-join', '3'] });
    cleanups.push(() => server.dispose());
    const first = await openPage(browser, server.url);
    await enter(first, 'Register', 'ana', 'sala-search');
    const bob = await wsClient(server.url, { type: 'login', nickname: 'bob' }, 'sala-search');
    cleanups.push(() => bob.terminate());
    await bob.request({ type: 'room', to: 'sala-search', message: { text: 'Where is the <b>blue</b> Whale? 👋 whale' } });
    for (let i = 1; i <= 24; i++) await bob.request({ type: 'room', to: 'sala-search', message: { text: `tick ${i}` } });
    await first.context().close();

    // A new device: only the last 3 messages are on screen.
    const ana = await openPage(browser, server.url);
    await enter(ana, 'Log in', 'ana', 'sala-search');
    await until(async () => (await messages(ana)).length === 3, { what: 'the last three messages' });

    const dialog = await search(ana, 'whale');
    const hits = dialog.getByRole('list', { name: 'Search results' }).locator('.search-hit');
    await hits.first().waitFor();
    assert.equal(await hits.count(), 1);
    assert.equal(await hits.first().locator('.search-text').textContent(), 'Where is the <b>blue</b> Whale? 👋 whale');
    assert.deepEqual(await hits.first().locator('mark').allTextContents(), ['Whale', 'whale']);
    assert.equal(await hits.first().locator('b').count(), 0, 'the text is text');
    assert.match(await hits.first().locator('.search-meta').textContent(), /bob in sala-search/);
    await screenshot(ana, 'search.png', { docs: true });

    await hits.first().click();
    await dialog.waitFor({ state: 'hidden' });
    const found = activeLog(ana).locator('li.msg.found');
    await found.waitFor();
    assert.equal(await found.locator('.text').textContent(), 'Where is the <b>blue</b> Whale? 👋 whale');
    assert.ok(await found.isVisible());
    assert.equal(await activeLog(ana).locator('li.msg').last().locator('.text').textContent(), 'Where is the <b>blue</b> Whale? 👋 whale', 'the history up to it');
    await ana.getByRole('button', { name: 'Show the latest' }).click();
    await until(async () => (await messages(ana)).at(-1)?.text === 'tick 24', { what: 'the latest again' });
    assert.equal(await activeLog(ana).locator('li.msg.found').count(), 0);

    // 24 results: 20, then More gives the other 4 (older ones).
    const again = await search(ana, 'tick', 'In sala-search');
    await until(async () => (await hits.count()) === 20, { what: 'the first page' });
    assert.equal(await hits.first().locator('.search-text').textContent(), 'tick 24', 'newest first');
    await again.getByRole('button', { name: 'More results' }).click();
    await until(async () => (await hits.count()) === 24, { what: 'the second page' });
    assert.equal(await hits.last().locator('.search-text').textContent(), 'tick 1');
    await again.getByRole('button', { name: 'More results' }).waitFor({ state: 'hidden' });

    const none = await search(ana, 'zebra', 'Everywhere');
    await none.getByText('Nothing found.').waitFor();

    assert.deepEqual(ana.problems, []);
    await ana.context().close();
});

test('a result in a private conversation opens that conversation at the message', async () => {
    const server = await startServer();
    cleanups.push(() => server.dispose());
    const first = await openPage(browser, server.url);
    await enter(first, 'Register', 'ana', 'sala-p');
    await first.context().close();
    const bob = await wsClient(server.url, { type: 'register', nickname: 'bob', password: 'bob password' });
    cleanups.push(() => bob.terminate());
    await bob.private('ana', 'the secret plan');
    for (let i = 1; i <= 5; i++) await bob.private('ana', `other ${i}`);

    const ana = await openPage(browser, server.url);
    await enter(ana, 'Log in', 'ana', 'sala-p');
    await ana.locator('.conv[data-conv="p:bob"]').waitFor();
    const dialog = await search(ana, 'plan', 'Everywhere');
    const hit = dialog.getByRole('list', { name: 'Search results' }).locator('.search-hit');
    await hit.first().waitFor();
    assert.match(await hit.first().locator('.search-meta').textContent(), /bob · private with bob/);
    await hit.first().click();
    await ana.getByRole('heading', { name: 'bob' }).waitFor();
    const found = activeLog(ana).locator('li.msg.found');
    await found.waitFor();
    assert.equal(await found.locator('.text').textContent(), 'the secret plan');

    assert.deepEqual(ana.problems, []);
    await ana.context().close();
});
