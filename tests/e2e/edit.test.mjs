// Editing and deleting in the web client against the real server: ↑ in the
// empty box edits the last own message (Escape cancels, Enter saves), the
// message menu deletes, another person's page and the author's other tab
// see both live ("(edited)", the "message deleted" line), and a page
// joining later sees them in history.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer } from './server.mjs';
import { launchBrowser, openPage, joinAs, say, waitForMessage, messages, memberNames, until, activeLog, newTab } from './browser.mjs';

const browser = await launchBrowser();
const cleanups = [];
after(async () => {
    for (const c of cleanups.reverse()) await c();
    await browser.close();
});

const box = (page) => page.getByRole('textbox', { name: 'Message', exact: true });
const item = (page, text) => activeLog(page).locator('li.msg').filter({ has: page.locator('.text', { hasText: text }) });

test('an edit (↑ in the empty box) and a deletion (the message menu) are seen live by the other page, and in history', async () => {
    const server = await startServer();
    cleanups.push(() => server.dispose());
    const ana = await joinAs(browser, server.url, 'ana', 'sala-edit');
    const ben = await joinAs(browser, server.url, 'ben', 'sala-edit');
    await until(async () => (await memberNames(ana)).includes('ben'), { what: 'ben in the room' });
    await say(ana, 'first message');
    await say(ana, 'helo wrold');
    await waitForMessage(ben, 'helo wrold', 'ana');
    await until(async () => (await messages(ana)).every((m) => m.id !== null), { what: 'ana’s messages confirmed' });
    // Another tab of ana's browser: the same guest, in the same room.
    const tab2 = await newTab(ana, server.url);
    await waitForMessage(tab2, 'helo wrold', 'ana');

    // ↑ takes the last one; Escape gives the box back as it was.
    await box(ana).focus();
    await box(ana).press('ArrowUp');
    assert.equal(await box(ana).inputValue(), 'helo wrold');
    await ana.getByText('Editing your message').waitFor();
    await box(ana).press('Escape');
    assert.equal(await box(ana).inputValue(), '');
    await ana.getByText('Editing your message').waitFor({ state: 'detached' });

    await box(ana).press('ArrowUp');
    await box(ana).fill('hello world');
    await box(ana).press('Enter');
    assert.equal(await box(ana).inputValue(), '', 'the box empties once the edit is sent');
    await item(ben, 'hello world').locator('.edited').waitFor();
    assert.match(await item(ben, 'hello world').locator('.edited').getAttribute('title'), /^Edited /);
    await item(ana, 'hello world').locator('.edited').waitFor();
    await item(tab2, 'hello world').locator('.edited').waitFor();
    assert.deepEqual((await messages(ben)).map((m) => m.text), ['first message', 'hello world']);

    // ben is not an op: nothing to do to ana's message.
    await item(ben, 'first message').hover();
    await item(ben, 'first message').getByRole('button', { name: 'Actions for the message from ana' }).click();
    assert.equal(await ben.getByRole('menu').count(), 0);

    // ana deletes her first message from its menu.
    await item(ana, 'first message').hover();
    await item(ana, 'first message').getByRole('button', { name: 'Actions for the message from ana' }).click();
    assert.deepEqual(await ana.getByRole('menuitem').allTextContents(), ['Edit', 'Delete']);
    await ana.getByRole('menuitem', { name: 'Delete' }).click();
    await until(async () => (await messages(ben)).map((m) => m.text).join('|') === 'message deleted|hello world', { what: 'the deletion seen by ben' });
    assert.equal(await activeLog(ben).locator('li.msg.deleted').count(), 1);
    await until(async () => (await activeLog(ana).locator('li.msg.deleted').count()) === 1, { what: 'and by ana' });
    await until(async () => (await messages(tab2)).map((m) => m.text).join('|') === 'message deleted|hello world', { what: 'and by ana’s other tab' });

    // ↑ skips a deleted message: it is the edited one again.
    await box(ana).press('ArrowUp');
    assert.equal(await box(ana).inputValue(), 'hello world');
    await box(ana).press('Escape');

    // Someone joining later sees both in the history.
    const cai = await joinAs(browser, server.url, 'cai', 'sala-edit');
    await waitForMessage(cai, 'hello world', 'ana');
    assert.deepEqual((await messages(cai)).map((m) => m.text), ['message deleted', 'hello world']);
    await item(cai, 'hello world').locator('.edited').waitFor();
    assert.equal(await activeLog(cai).locator('li.msg.deleted').count(), 1);

    for (const p of [ana, tab2, ben, cai]) assert.deepEqual(p.problems, []);
    for (const p of [ana, ben, cai]) await p.context().close();
});

test('a room’s owner deletes someone else’s message from its menu (Delete only: no Edit)', async () => {
    const server = await startServer();
    cleanups.push(() => server.dispose());
    const ana = await openPage(browser, server.url);
    await ana.getByRole('radio', { name: 'Register' }).check();
    await ana.getByLabel('Nickname', { exact: true }).fill('ana');
    await ana.getByLabel('Password', { exact: true }).fill('ana password');
    await ana.getByLabel('Room', { exact: true }).fill('sala-own');
    await ana.getByLabel('Room', { exact: true }).press('Enter');
    await box(ana).waitFor({ state: 'visible', timeout: 10000 });
    const ben = await joinAs(browser, server.url, 'ben', 'sala-own');
    await say(ben, 'spam spam spam');
    await waitForMessage(ana, 'spam spam spam', 'ben');
    await item(ana, 'spam spam spam').hover();
    await item(ana, 'spam spam spam').getByRole('button', { name: 'Actions for the message from ben' }).click();
    assert.deepEqual(await ana.getByRole('menuitem').allTextContents(), ['Delete']);
    await ana.getByRole('menuitem', { name: 'Delete' }).click();
    await until(async () => (await messages(ben)).map((m) => m.text).join('|') === 'message deleted', { what: 'ben sees it deleted' });
    await until(async () => (await activeLog(ana).locator('li.msg.deleted').count()) === 1, { what: 'and ana' });
    for (const p of [ana, ben]) assert.deepEqual(p.problems, []);
    for (const p of [ana, ben]) await p.context().close();
});
