// Moderation in the web client against the real server: the member list
// grouped by role, the member menu's Kick… and Ban… (with a length and a
// reason) used by a room's owner, what the kicked or banned person sees
// (the notice, the room gone, a refused join saying until when), Make op,
// and the topic in the header, set by the owner and seen by everyone.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer } from './server.mjs';
import { launchBrowser, openPage, joinAs, memberNames, until, wsClient, screenshot } from './browser.mjs';

const browser = await launchBrowser();
const cleanups = [];
after(async () => {
    for (const c of cleanups.reverse()) await c();
    await browser.close();
});

const box = (page) => page.getByRole('textbox', { name: 'Message', exact: true });
const members = (page) => page.getByRole('list', { name: 'Members' });
const roomButton = (page, room) => page.locator(`.conv[data-conv="r:${room}"]`);
const toast = (page) => page.locator('#toast');
const groupOf = (page, nick) => members(page).locator('.member-group').filter({ has: page.locator('.person-name', { hasText: nick }) }).getAttribute('data-group');

/** Registers `nickname` (the password is `<nickname> password`) and joins `room`. */
async function register(url, nickname, room) {
    const page = await openPage(browser, url);
    await page.getByRole('radio', { name: 'Register' }).check();
    await page.getByLabel('Nickname', { exact: true }).fill(nickname);
    await page.getByLabel('Password', { exact: true }).fill(`${nickname} password`);
    await page.getByLabel('Room', { exact: true }).fill(room);
    await page.getByLabel('Room', { exact: true }).press('Enter');
    await box(page).waitFor({ state: 'visible', timeout: 10000 });
    return page;
}

async function rejoin(page, room) {
    const form = page.getByRole('navigation', { name: 'Conversations' });
    await form.getByPlaceholder('Join a room…').fill(room);
    await form.getByRole('button', { name: 'Join', exact: true }).click();
}

test('the owner kicks and bans from the member menu; the other page is told and loses the room; a banned join says until when', async () => {
    const server = await startServer();
    cleanups.push(() => server.dispose());
    const ana = await register(server.url, 'ana', 'sala-mod'); // created it: the owner
    const ben = await joinAs(browser, server.url, 'ben', 'sala-mod');
    await until(async () => (await memberNames(ana)).includes('ben'), { what: 'ben in ana’s list' });
    assert.equal(await groupOf(ana, 'ana'), 'owner');
    assert.equal(await groupOf(ana, 'ben'), 'members');
    assert.deepEqual(await members(ana).locator('.member-group-title').allTextContents(), ['Owner — 1', 'Members — 1']);

    // ben, a member, finds no moderation in ana's menu.
    await members(ben).getByRole('button', { name: 'ana' }).click();
    assert.deepEqual(await ben.getByRole('menuitem').allTextContents(), ['Message privately']);
    await ben.keyboard.press('Escape');
    await ben.getByRole('menu').waitFor({ state: 'detached' });

    // Kick, by keyboard: Enter opens the menu, ↓ moves, Enter chooses.
    await members(ana).getByRole('button', { name: 'ben' }).focus();
    await ana.keyboard.press('Enter');
    assert.deepEqual(await ana.getByRole('menuitem').allTextContents(), ['Message privately', 'Kick…', 'Ban…', 'Make op']);
    await ana.keyboard.press('ArrowDown');
    await ana.keyboard.press('Enter');
    const dialog = ana.getByRole('dialog', { name: 'Kick ben out of sala-mod' });
    await dialog.getByLabel('Reason (optional)').fill('calm down');
    await dialog.getByRole('button', { name: 'Kick', exact: true }).click();
    await until(async () => (await toast(ben).textContent()) === 'You were kicked out of sala-mod by ana. Reason: calm down', { what: 'ben told of the kick' });
    await roomButton(ben, 'sala-mod').waitFor({ state: 'detached' });
    await until(async () => !(await memberNames(ana)).includes('ben'), { what: 'ben gone from ana’s list' });
    await ana.locator('.sys', { hasText: 'ben was kicked out' }).waitFor();

    // A kick is not a ban: ben comes back; then a ban for 10 minutes.
    await rejoin(ben, 'sala-mod');
    await roomButton(ben, 'sala-mod').waitFor();
    await until(async () => (await memberNames(ana)).includes('ben'), { what: 'ben back' });
    await members(ana).getByRole('button', { name: 'ben' }).click();
    await ana.getByRole('menuitem', { name: 'Ban…' }).click();
    const banDialog = ana.getByRole('dialog', { name: 'Ban ben from sala-mod' });
    await banDialog.getByRole('radio', { name: '10 minutes' }).check();
    await banDialog.getByLabel('Reason (optional)').fill('spam');
    const before = Date.now();
    await banDialog.getByRole('button', { name: 'Ban', exact: true }).click();
    await until(async () => /^You were banned from sala-mod by ana until .+\. Reason: spam$/.test(await toast(ben).textContent()), { what: 'ben told of the ban' });
    await roomButton(ben, 'sala-mod').waitFor({ state: 'detached' });
    await ana.locator('.sys', { hasText: 'ben was banned' }).waitFor();

    await rejoin(ben, 'sala-mod');
    await until(async () => /^You are banned from sala-mod until /.test(await ben.locator('#join-error').textContent()), { what: 'the banned join refused' });
    assert.equal(await roomButton(ben, 'sala-mod').count(), 0);
    assert.ok(Date.now() - before < 600000);

    for (const p of [ana, ben]) assert.deepEqual(p.problems, []);
    for (const p of [ana, ben]) await p.context().close();
});

test('the topic: set by the owner in the header, seen live and on joining; an op made from the menu may change it, a member may not', async () => {
    const server = await startServer();
    cleanups.push(() => server.dispose());
    const ana = await register(server.url, 'ana', 'sala-topic');
    const cai = await register(server.url, 'cai', 'sala-topic');
    await until(async () => (await memberNames(ana)).includes('cai'), { what: 'cai in the room' });
    const topicOf = (page) => page.locator('#conv-topic');
    assert.equal(await cai.locator('#topic-edit').isVisible(), false, 'a member has no topic control');

    await ana.getByRole('button', { name: 'Set a topic' }).click();
    await ana.getByLabel('Room topic').fill('Cats <b>only</b>');
    await ana.getByLabel('Room topic').press('Enter');
    await until(async () => (await topicOf(cai).textContent()) === 'Cats <b>only</b>', { what: 'cai sees the topic' });
    assert.equal(await topicOf(cai).locator('b').count(), 0, 'shown as text');
    await cai.locator('.sys', { hasText: 'ana set the topic: Cats <b>only</b>' }).waitFor();
    assert.equal(await topicOf(ana).textContent(), 'Cats <b>only</b>');

    // Escape cancels an edit.
    await ana.getByRole('button', { name: 'Edit topic' }).click();
    await ana.getByLabel('Room topic').fill('not this');
    await ana.getByLabel('Room topic').press('Escape');
    assert.equal(await topicOf(ana).textContent(), 'Cats <b>only</b>');

    // Someone joining later gets it with `joined`.
    const dee = await joinAs(browser, server.url, 'dee', 'sala-topic');
    await until(async () => (await topicOf(dee).textContent()) === 'Cats <b>only</b>', { what: 'dee sees the topic on joining' });

    // The owner makes cai an op: everyone's list regroups, and cai may change the topic.
    await members(ana).getByRole('button', { name: 'cai' }).click();
    await ana.getByRole('menuitem', { name: 'Make op' }).click();
    await until(async () => (await groupOf(dee, 'cai')) === 'ops', { what: 'cai among the ops for dee' });
    await cai.locator('.sys', { hasText: 'cai is now an op' }).waitFor();
    // For the user guide: the topic in the header, the list by role, an owner's menu.
    await members(ana).getByRole('button', { name: 'dee' }).click();
    await ana.getByRole('menu').waitFor();
    await screenshot(ana, 'moderation.png', { docs: true });
    await ana.keyboard.press('Escape');
    await ana.getByRole('menu').waitFor({ state: 'detached' });
    await cai.getByRole('button', { name: 'Edit topic' }).click();
    await cai.getByLabel('Room topic').fill('');
    await cai.getByRole('button', { name: 'Save' }).click();
    await until(async () => (await topicOf(dee).textContent()) === '' && !(await topicOf(dee).isVisible()), { what: 'the topic cleared' });
    await dee.locator('.sys', { hasText: 'cai cleared the topic' }).waitFor();

    // And the owner takes it back.
    await members(ana).getByRole('button', { name: 'cai' }).click();
    await ana.getByRole('menuitem', { name: 'Remove op' }).click();
    await until(async () => (await groupOf(dee, 'cai')) === 'members', { what: 'cai a member again' });
    await cai.getByRole('button', { name: 'Edit topic' }).waitFor({ state: 'hidden' });

    for (const p of [ana, cai, dee]) assert.deepEqual(p.problems, []);
    for (const p of [ana, cai, dee]) await p.context().close();
});

test('a server admin (--admin) outranks the owner: it may kick the owner, who may not kick the admin', async () => {
    const server = await startServer({ args: ['--admin', 'root'] });
    cleanups.push(() => server.dispose());
    const ana = await register(server.url, 'ana', 'sala-admin');
    const root = await register(server.url, 'root', 'sala-admin');
    await until(async () => (await memberNames(ana)).includes('root'), { what: 'root in the room' });
    assert.equal(await groupOf(root, 'ana'), 'owner');
    assert.equal(await groupOf(root, 'root'), 'members', 'an admin is not listed as the owner');
    await root.locator('#topic-edit').waitFor({ state: 'visible' }); // an admin may set the topic

    await members(ana).getByRole('button', { name: 'root' }).click();
    assert.deepEqual(await ana.getByRole('menuitem').allTextContents(), ['Message privately', 'Kick…', 'Ban…', 'Make op'],
        'the owner’s page cannot tell an admin: it offers, the server refuses');
    await ana.getByRole('menuitem', { name: 'Kick…' }).click();
    await ana.getByRole('dialog', { name: 'Kick root out of sala-admin' }).getByRole('button', { name: 'Kick', exact: true }).click();
    await until(async () => (await toast(ana).textContent()) === 'You may not do that here.', { what: 'the owner refused' });
    assert.ok((await memberNames(ana)).includes('root'));

    await members(root).getByRole('button', { name: 'ana' }).click();
    assert.deepEqual(await root.getByRole('menuitem').allTextContents(), ['Message privately', 'Kick…', 'Ban…']);
    await root.getByRole('menuitem', { name: 'Kick…' }).click();
    await root.getByRole('dialog', { name: 'Kick ana out of sala-admin' }).getByRole('button', { name: 'Kick', exact: true }).click();
    await until(async () => (await toast(ana).textContent()) === 'You were kicked out of sala-admin by root.', { what: 'the owner kicked' });
    await roomButton(ana, 'sala-admin').waitFor({ state: 'detached' });

    // A ban from the whole server (no room, admins only) closes ana's page's
    // connection with 4003: it stops and says so on the login form.
    const admin = await wsClient(server.url, { type: 'login', nickname: 'root', password: 'root password' });
    cleanups.push(() => admin.terminate());
    admin.send(JSON.stringify({ type: 'ban', nickname: 'ana', reason: 'enough', id: 'b1' }));
    await until(() => admin.frames.find((f) => f.ref === 'b1'), { what: 'the server ban answered' });
    assert.equal(admin.frames.find((f) => f.ref === 'b1').type, 'done');
    await ana.locator('#login-view').waitFor({ state: 'visible' });
    assert.equal(await ana.locator('#login-note').textContent(), 'You are banned from this server for good.');

    for (const p of [ana, root]) assert.deepEqual(p.problems, []);
    for (const p of [ana, root]) await p.context().close();
});

test('the modules and the stylesheet of moderation, editing and search are served with their types', async () => {
    const server = await startServer();
    cleanups.push(() => server.dispose());
    for (const asset of ['moderation.js', 'edit.js', 'search.js', 'menu.js']) {
        const r = await fetch(new URL(asset, server.url));
        assert.equal(r.status, 200, asset);
        assert.match(r.headers.get('content-type'), /javascript/, asset);
    }
    const css = await fetch(new URL('actions.css', server.url));
    assert.equal(css.status, 200);
    assert.match(css.headers.get('content-type'), /^text\/css/);
    assert.match(await css.text(), /\.menu-item/);
});
