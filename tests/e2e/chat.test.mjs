// The web client in Chromium against the real server: people chatting in
// rooms and privately, the login form, safety of message text, the layout
// at desktop and phone width. One server for the file; every test uses its
// own nicknames and rooms so they cannot see each other.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import WebSocket from 'ws';
import { startServer } from './server.mjs';
import {
    launchBrowser, openPage, joinAs, login, say, messages, waitForMessage, memberNames, activeLog,
    until, screenshot, DESKTOP, PHONE,
} from './browser.mjs';

let server;
let browser;
const pages = [];

before(async () => {
    server = await startServer();
    browser = await launchBrowser();
});

after(async () => {
    await browser?.close();
    await server?.dispose();
});

/** Opens a logged-in page and remembers it, so the test can close them all. */
async function person(nick, room, opts) {
    const page = await joinAs(browser, server.url, nick, room, opts);
    pages.push(page);
    return page;
}

async function closeAll() {
    const problems = [];
    for (const page of pages.splice(0)) {
        problems.push(...page.problems);
        await page.context().close();
    }
    assert.deepEqual(problems, [], 'the pages logged no errors (script errors, CSP violations)');
}

test('two people in one room exchange messages and see each other in the member list', async () => {
    const ana = await person('ana', 'sala-1');
    const bruno = await person('bruno', 'sala-1');

    await until(async () => (await memberNames(ana)).includes('bruno'), { what: 'bruno in ana\'s member list' });
    assert.deepEqual(await memberNames(ana), ['ana', 'bruno']);
    assert.deepEqual(await memberNames(bruno), ['bruno', 'ana']);
    await activeLog(ana).getByText('bruno joined').waitFor();

    await say(ana, 'Hola, bruno');
    await waitForMessage(bruno, 'Hola, bruno', 'ana');
    await say(bruno, '¡Hola, ana! ¿Qué tal?');
    await waitForMessage(ana, '¡Hola, ana! ¿Qué tal?', 'bruno');
    await waitForMessage(bruno, '¡Hola, ana! ¿Qué tal?', 'bruno');

    const seenByAna = await messages(ana);
    assert.deepEqual(seenByAna.map((m) => [m.from, m.text, m.own]), [
        ['ana', 'Hola, bruno', true],
        ['bruno', '¡Hola, ana! ¿Qué tal?', false],
    ]);
    await until(async () => (await messages(ana)).every((m) => !m.pending && m.id > 0), { what: 'ana\'s message confirmed' });
    const seenByBruno = await messages(bruno);
    assert.deepEqual(seenByBruno.map((m) => [m.from, m.text, m.own]), [
        ['ana', 'Hola, bruno', false],
        ['bruno', '¡Hola, ana! ¿Qué tal?', true],
    ]);
    // Both see the same server ids, and the sender's time is shown.
    assert.deepEqual(seenByAna.map((m) => m.id), (await messages(bruno)).map((m) => m.id));
    assert.match(await activeLog(bruno).locator('li.msg time').first().textContent(), /\d/);

    // The other one leaving shows in the member list and as a system line.
    await bruno.getByRole('button', { name: 'Leave sala-1' }).click();
    await activeLog(ana).getByText('bruno left').waitFor();
    assert.deepEqual(await memberNames(ana), ['ana']);
    await bruno.getByText('You are not in any room.').waitFor();
    await closeAll();
});

test('the browser negotiates permessage-deflate, and long messages go both ways intact', async () => {
    const ana = await person('ana-z', 'sala-z', { recordWebSockets: true });
    const bruno = await person('bruno-z', 'sala-z', { recordWebSockets: true });
    for (const page of [ana, bruno]) {
        assert.equal(page.wsHandshakes.length, 1, 'one WebSocket per page');
        const h = Object.fromEntries(Object.entries(page.wsHandshakes[0]).map(([k, v]) => [k.toLowerCase(), v]));
        assert.match(h['sec-websocket-extensions'] || '', /^permessage-deflate; server_no_context_takeover; client_no_context_takeover/);
    }
    // Longer than --deflate-min: compressed by Chromium on the way in, by the
    // server (once, for both pages) on the way out.
    const long = 'Una tertulia es una reunión informal de personas que conversan sobre un tema. '.repeat(8).trim();
    await say(ana, long);
    await waitForMessage(bruno, long, 'ana-z');
    await waitForMessage(ana, long, 'ana-z');
    await say(bruno, 'corto');
    await waitForMessage(ana, 'corto', 'bruno-z');
    await closeAll();
});

test("the original's selective test: four pages in two rooms, each message reaches exactly its room", async () => {
    const swift1 = await person('taylor', 'swift-dev');
    const swift2 = await person('chris', 'swift-dev');
    const py1 = await person('guido', 'python-dev');
    const py2 = await person('raymond', 'python-dev');

    // Each second line is sent once the first has arrived: two people
    // typing at once have no order, and the test checks one.
    await say(py1, 'python: one');
    await waitForMessage(py2, 'python: one');
    await say(py2, 'python: two');
    await say(swift1, 'swift: one');
    await waitForMessage(swift2, 'swift: one');
    await say(swift2, 'swift: two');
    for (const page of [swift1, swift2]) await waitForMessage(page, 'swift: two');
    for (const page of [py1, py2]) await waitForMessage(page, 'python: two');

    for (const page of [swift1, swift2]) {
        assert.deepEqual((await messages(page)).map((m) => m.text), ['swift: one', 'swift: two']);
        assert.deepEqual((await memberNames(page)).sort(), ['chris', 'taylor']);
    }
    for (const page of [py1, py2]) {
        assert.deepEqual((await messages(page)).map((m) => m.text), ['python: one', 'python: two']);
        assert.deepEqual((await memberNames(page)).sort(), ['guido', 'raymond']);
    }
    await closeAll();
});

test('a private conversation opens from the member list and shows an unread count to the receiver', async () => {
    const carmen = await person('carmen', 'sala-2');
    const david = await person('david', 'sala-2');
    const elena = await person('elena', 'sala-2');
    await until(async () => (await memberNames(carmen)).length === 3, { what: 'three members' });

    await carmen.getByRole('list', { name: 'Members' }).getByRole('button', { name: 'david' }).click();
    await carmen.getByRole('heading', { name: 'david' }).waitFor();
    await say(carmen, 'just between us');
    await waitForMessage(carmen, 'just between us', 'carmen');

    // David is still looking at the room: the private conversation appears
    // in his sidebar with one unread message, and the room does not show it.
    const fromCarmen = david.locator('.conv[data-conv="p:carmen"]');
    await fromCarmen.waitFor();
    await until(async () => (await fromCarmen.locator('.badge').textContent()).startsWith('1'), { what: 'unread badge 1' });
    assert.match(await fromCarmen.getAttribute('class'), /has-unread/);
    assert.equal(await david.title(), '(1) sala-2 · tertulia');
    assert.deepEqual(await messages(david), []);

    await say(carmen, 'second secret');
    await until(async () => (await fromCarmen.locator('.badge').textContent()).startsWith('2'), { what: 'unread badge 2' });

    await fromCarmen.click();
    await waitForMessage(david, 'second secret', 'carmen');
    assert.deepEqual((await messages(david)).map((m) => [m.from, m.text]), [['carmen', 'just between us'], ['carmen', 'second secret']]);
    assert.equal(await fromCarmen.locator('.badge').isHidden(), true);
    assert.equal(await david.title(), 'carmen · tertulia');

    await say(david, 'got it');
    await waitForMessage(carmen, 'got it', 'david');

    // Elena, in the same room, got none of it.
    assert.equal(await elena.locator('.conv[data-conv^="p:"]').count(), 0);
    assert.deepEqual(await messages(elena), []);
    await closeAll();
});

test('a taken nickname shows a visible error and the form stays usable', async () => {
    await person('frida', 'sala-3');
    const other = await openPage(browser, server.url);
    pages.push(other);
    const nick = other.getByLabel('Nickname', { exact: true });
    await nick.fill('FRIDA'); // nicknames are unique regardless of case
    await other.getByLabel('Room', { exact: true }).fill('sala-3');
    await other.getByRole('button', { name: 'Join the chat' }).click();
    const error = other.locator('#nickname-error');
    await until(async () => /taken/i.test(await error.textContent()), { what: 'a "taken" error' });
    assert.equal(await error.isVisible(), true);
    assert.equal(await nick.getAttribute('aria-invalid'), 'true');
    assert.equal(await other.getByRole('button', { name: 'Join the chat' }).isEnabled(), true);
    assert.equal(await other.locator('#chat-view').isHidden(), true);

    await nick.fill('frida2');
    assert.equal(await error.textContent(), '');
    await login(other, 'frida2');
    await until(async () => (await memberNames(other)).length === 2, { what: 'both in the member list' });
    assert.deepEqual(await memberNames(other), ['frida2', 'frida']);
    await closeAll();
});

test('the login form checks the names as they are typed and does not submit invalid ones', async () => {
    const page = await openPage(browser, server.url);
    pages.push(page);
    const nick = page.getByLabel('Nickname', { exact: true });
    const room = page.getByLabel('Room', { exact: true });

    await nick.pressSequentially('bad nick!');
    await until(async () => /not allowed/i.test(await page.locator('#nickname-error').textContent()), { what: 'nickname error' });
    assert.equal(await nick.getAttribute('aria-invalid'), 'true');
    await room.fill('#');
    assert.match(await page.locator('#room-error').textContent(), /after the #/);
    await room.fill('x'.repeat(65));
    assert.match(await page.locator('#room-error').textContent(), /too long/i);

    await page.getByRole('button', { name: 'Join the chat' }).click();
    assert.equal(await page.locator('#chat-view').isHidden(), true);
    assert.equal(await page.evaluate(() => document.activeElement.id), 'nickname');

    await nick.fill('good.nick-1');
    assert.equal(await page.locator('#nickname-error').textContent(), '');
    assert.equal(await nick.getAttribute('aria-invalid'), 'false');
    await room.fill('#sala-4');
    assert.equal(await page.locator('#room-error').textContent(), '');
    await login(page, 'good.nick-1');
    await page.getByRole('heading', { name: '#sala-4' }).waitFor();
    await closeAll();
});

test('message text that looks like HTML is shown as text and runs nothing', async () => {
    const sender = await person('mallory', 'sala-5');
    const reader = await person('alice', 'sala-5');
    const requests = [];
    reader.on('request', (req) => requests.push(req.url()));
    const payloads = [
        '<img src=x onerror=alert(1)>',
        '<script>alert(2)</script><b>bold?</b>',
        '"><svg onload=alert(3)> &amp; &lt;',
        'javascript:alert(4) http://example.invalid/"onmouseover="alert(5)',
    ];
    for (const text of payloads) await say(sender, text);
    await waitForMessage(reader, payloads.at(-1).slice(0, 20), 'mallory');
    await reader.waitForTimeout(300); // time for an onerror to fire, were there an <img>

    assert.deepEqual((await messages(reader)).map((m) => m.text), payloads);
    assert.deepEqual((await messages(sender)).map((m) => m.text), payloads);
    const log = activeLog(reader);
    assert.equal(await log.locator('img, script, svg, b').count(), 0);
    // The only link is the http one, and its address stops where the URL ends.
    const links = await log.locator('a').evaluateAll((as) => as.map((a) => a.getAttribute('href')));
    assert.deepEqual(links, ['http://example.invalid/']);
    assert.deepEqual(reader.dialogs, []);
    assert.deepEqual(sender.dialogs, []);
    assert.equal(requests.filter((u) => /\/x$/.test(u)).length, 0, 'no request for the <img src=x>');
    await closeAll();
});

test('the page is served with a strict Content-Security-Policy', async () => {
    const res = await fetch(server.url);
    assert.equal(res.status, 200);
    const csp = res.headers.get('content-security-policy') || '';
    assert.match(csp, /default-src 'self'/);
    assert.match(csp, /connect-src [^;]*'self'/);
    assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval/);
    assert.match(res.headers.get('content-type'), /^text\/html/);
    for (const asset of ['app.js', 'session.js', 'connection.js', 'pane.js', 'dom.js', 'rules.js']) {
        const r = await fetch(new URL(asset, server.url));
        assert.equal(r.status, 200, asset);
        assert.match(r.headers.get('content-type'), /javascript/, asset);
    }
    const css = await fetch(new URL('style.css', server.url));
    assert.match(css.headers.get('content-type'), /^text\/css/);
});

test('the nickname and room are remembered, and a ?room= link opens that room', async () => {
    const first = await person('gema', 'sala-6');
    // A second tab of the same browser (same localStorage) after logging out.
    await first.getByRole('button', { name: 'Log out' }).click();
    const again = await first.context().newPage();
    await again.goto(server.url);
    assert.equal(await again.getByLabel('Nickname', { exact: true }).inputValue(), 'gema');
    assert.equal(await again.getByLabel('Room', { exact: true }).inputValue(), 'sala-6');
    await again.close();

    const invited = await openPage(browser, `${server.url}?room=python-dev-6`);
    pages.push(invited);
    assert.equal(await invited.getByLabel('Room', { exact: true }).inputValue(), 'python-dev-6');
    await invited.getByText('You were invited to python-dev-6').waitFor();
    await login(invited, 'hector');
    await invited.getByRole('heading', { name: 'python-dev-6' }).waitFor();
    // Rooms with a # travel in the link too.
    const hashed = await openPage(browser, `${server.url}?room=${encodeURIComponent('#tapas')}`);
    pages.push(hashed);
    await login(hashed, 'ines');
    await hashed.getByRole('heading', { name: '#tapas' }).waitFor();
    assert.equal(new URL(hashed.url()).searchParams.get('room'), '#tapas');
    await closeAll();
});

test('someone joining later sees the recent history; Enter sends and Shift+Enter starts a new line', async () => {
    const jorge = await person('jorge', 'sala-7');
    const box = jorge.getByRole('textbox', { name: 'Message', exact: true });
    await box.click();
    await box.pressSequentially('line one');
    await box.press('Shift+Enter');
    await box.pressSequentially('line two');
    await box.press('Enter');
    await waitForMessage(jorge, 'line two', 'jorge');
    assert.equal(await box.inputValue(), '');
    await say(jorge, 'second message');
    await waitForMessage(jorge, 'second message');

    const karla = await person('karla', 'sala-7');
    await waitForMessage(karla, 'second message', 'jorge');
    assert.deepEqual((await messages(karla)).map((m) => m.text), ['line one\nline two', 'second message']);
    // The text keeps its line break on screen.
    const lines = await activeLog(karla).locator('li.msg .text').first().evaluate((el) =>
        el.getBoundingClientRect().height / parseFloat(getComputedStyle(el.parentElement).lineHeight));
    assert.equal(Math.round(lines), 2);
    await closeAll();
});

/** A plain WebSocket client (no browser) that logs in to `room` and posts `texts` there. */
async function postFromScript(nickname, room, texts) {
    const ws = new WebSocket(`${server.url.replace('http', 'ws')}ws`, 'tertulia.v1');
    const acks = new Set();
    let joined = false;
    const post = (i) => ws.send(JSON.stringify({ type: 'room', id: `m${i}`, to: room, message: { text: texts[i] } }));
    ws.on('message', (data) => {
        const m = JSON.parse(data);
        if (m.type === 'joined') joined = true;
        if (m.type === 'ack') acks.add(m.ref);
        // Flood control refuses part of a burst: send those again when told.
        if (m.type === 'error' && m.code === 'rate_limited') {
            setTimeout(() => post(Number(m.ref.slice(1))), m.retry_after_ms ?? 100);
        }
    });
    await new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject); });
    ws.send(JSON.stringify({ type: 'login', nickname, room }));
    await until(() => joined, { what: `${nickname} joined` });
    // One at a time, each after the previous one's ack, so the order is kept.
    for (let i = 0; i < texts.length; i++) {
        post(i);
        await until(() => acks.has(`m${i}`), { what: `message ${i} acknowledged` });
    }
    await until(() => acks.size === texts.length, { what: 'every message acknowledged' });
    return ws;
}

test('a joiner sees the last messages, and earlier ones load above without moving the view', async () => {
    const texts = Array.from({ length: 70 }, (_, i) => `history line ${i + 1}`);
    const script = await postFromScript('archivist', 'sala-hist', texts);
    const reader = await person('rosa', 'sala-hist');
    await waitForMessage(reader, 'history line 70', 'archivist');
    const first = await messages(reader);
    assert.ok(first.length >= 1 && first.length < 70, `a recent part of the history (${first.length})`);
    assert.deepEqual(first.map((m) => m.text), texts.slice(70 - first.length));

    const scroller = reader.locator('section.pane:not([hidden]) .scroller');
    await scroller.evaluate((s) => { s.scrollTop = 0; });
    // The oldest message shown stays where it is on screen while older ones load above it.
    const anchor = activeLog(reader).locator('li.msg .text', { hasText: first[0].text });
    const anchorTop = await anchor.evaluate((el) => el.getBoundingClientRect().top);
    await reader.getByRole('button', { name: 'Load earlier messages' }).click();
    await until(async () => (await messages(reader)).length > first.length, { what: 'older messages' });
    assert.ok(Math.abs((await anchor.evaluate((el) => el.getBoundingClientRect().top)) - anchorTop) < 2, 'the view did not jump');
    for (let round = 0; round < 5 && (await messages(reader)).length < 70; round++) {
        const before = (await messages(reader)).length;
        await reader.getByRole('button', { name: 'Load earlier messages' }).click();
        await until(async () => (await messages(reader)).length > before, { what: 'older messages' });
    }
    const all = await messages(reader);
    assert.deepEqual(all.map((m) => m.text), texts, 'all of them, in order, once');
    await reader.getByText('This is the start of sala-hist.').waitFor();
    script.close();
    await closeAll();
});

test('the length limit is shown near it, and a text over it cannot be sent', async () => {
    const page = await person('luis', 'sala-8');
    const max = 4096; // the server's default, announced in welcome.limits.max_text
    const box = page.getByRole('textbox', { name: 'Message', exact: true });
    const counter = page.locator('#counter');
    await box.fill('a'.repeat(100));
    assert.equal(await counter.isHidden(), true);
    await box.fill('ñ'.repeat(1700)); // 3400 bytes of UTF-8: the limit counts bytes
    await until(async () => (await counter.textContent()) === `${(max - 3400).toLocaleString('en-US')} left`, { what: 'counter' });
    await box.fill('b'.repeat(max + 4));
    await until(async () => (await counter.textContent()) === '4 over the limit', { what: 'over the limit' });
    assert.equal(await page.getByRole('button', { name: 'Send' }).isDisabled(), true);
    await box.press('Enter');
    assert.deepEqual(await messages(page), []);
    await box.fill('b'.repeat(max));
    assert.equal(await page.getByRole('button', { name: 'Send' }).isEnabled(), true);
    await page.getByRole('button', { name: 'Send' }).click();
    await until(async () => (await messages(page)).some((m) => m.text.length === max && m.id > 0), { what: 'the longest message sent' });
    await closeAll();
});

test('rooms can be joined by name or from the list of rooms, and left', async () => {
    const marta = await person('marta', 'sala-9');
    const nico = await person('nico', 'sala-9b');

    // By name, from the sidebar.
    await marta.getByLabel('Room to join').fill('sala-9c');
    await marta.getByRole('button', { name: 'Join', exact: true }).click();
    await marta.getByRole('heading', { name: 'sala-9c' }).waitFor();
    assert.deepEqual(await marta.locator('#room-list .conv-name').allTextContents(), ['sala-9', 'sala-9c']);
    // After Join, typing goes to the message box.
    await until(async () => marta.evaluate(() => document.activeElement?.getAttribute('aria-label') === 'Message' || document.activeElement?.id === 'message'),
        { what: 'the message box focused after Join' });
    // Another spelling of a room one is in opens it (one room, named as created).
    await marta.getByLabel('Room to join').fill('#SALA-9C');
    await marta.getByRole('button', { name: 'Join', exact: true }).click();
    await marta.getByRole('heading', { name: 'sala-9c' }).waitFor();
    assert.deepEqual(await marta.locator('#room-list .conv-name').allTextContents(), ['sala-9', 'sala-9c']);

    // From the list of rooms, with member counts.
    await nico.getByRole('button', { name: 'Browse all rooms' }).click();
    const dialog = nico.getByRole('dialog', { name: 'Rooms on this server' });
    const row = dialog.locator('li', { hasText: 'sala-9c' });
    await row.waitFor();
    assert.equal(await row.locator('.room-count').textContent(), '1 person');
    await dialog.getByRole('button', { name: 'Join sala-9c' }).click();
    await nico.getByRole('heading', { name: 'sala-9c' }).waitFor();
    await until(async () => (await memberNames(marta)).includes('nico'), { what: 'nico in sala-9c' });

    // Unread counts for a room that is not on screen.
    await marta.locator('.conv[data-conv="r:sala-9"]').click();
    await say(nico, 'anyone here?');
    const badge = marta.locator('.conv[data-conv="r:sala-9c"] .badge');
    await until(async () => (await badge.textContent()).startsWith('1'), { what: 'room unread badge' });

    await nico.getByRole('button', { name: 'Leave sala-9c' }).click();
    await until(async () => (await nico.locator('#room-list .conv-name').allTextContents()).join() === 'sala-9b', { what: 'nico left' });
    await nico.getByRole('heading', { name: 'sala-9b' }).waitFor();
    await closeAll();
});

test('reading older messages is not interrupted: new ones are counted behind a marker', async () => {
    const olga = await person('olga', 'sala-10');
    const pablo = await person('pablo', 'sala-10');
    // Typed at a person's pace at most (10 a second): a faster burst would
    // meet flood control, which has tests of its own.
    for (let i = 1; i <= 30; i++) {
        await say(pablo, `message number ${i}\nwith a second line`);
        await pablo.waitForTimeout(110);
    }
    await waitForMessage(olga, 'message number 30');
    const scroller = olga.locator('section.pane:not([hidden]) .scroller');
    // At the bottom, new messages keep the view at the bottom.
    assert.equal(await scroller.evaluate((s) => s.scrollHeight - s.scrollTop - s.clientHeight < 48), true);

    await scroller.evaluate((s) => { s.scrollTop = 0; });
    await olga.locator('#jump').waitFor({ state: 'visible' });
    assert.equal(await olga.locator('#jump-text').textContent(), 'Jump to latest');
    await say(pablo, 'are you reading?');
    await say(pablo, 'take your time');
    await until(async () => (await olga.locator('#jump-text').textContent()) === '2 new messages', { what: 'the new messages count' });
    assert.equal(await scroller.evaluate((s) => s.scrollTop), 0, 'the view was not moved');
    const divider = activeLog(olga).locator('.new-divider');
    assert.equal(await divider.count(), 1);
    // The divider sits right above the first message she has not seen.
    assert.equal(await divider.evaluate((d) => d.nextElementSibling.querySelector('.text').textContent), 'are you reading?');

    await olga.locator('#jump').click();
    await olga.locator('#jump').waitFor({ state: 'hidden' });
    assert.equal(await scroller.evaluate((s) => s.scrollHeight - s.scrollTop - s.clientHeight < 48), true);
    await closeAll();
});

test('screenshots at desktop and phone width', async () => {
    // Everyone is in the room before the talk starts, so these pictures show
    // the layout whatever the server keeps as history (tested on its own).
    const lucia = await person('lucia', 'python-dev-madrid');
    const mateo = await person('mateo', 'python-dev-madrid');
    const phone = await person('sofia', 'python-dev-madrid', { viewport: PHONE });
    const dark = await person('tomas', 'python-dev-madrid', { colorScheme: 'dark' });
    const talk = [[lucia, 'Morning! Who is coming to the meetup on Thursday?'],
        [mateo, '@lucia Me! I will bring the slides about *asyncio* `TaskGroup`s.'],
        [lucia, 'Great. Here is the venue: https://example.org/venue'],
        [mateo, 'A very long word wraps instead of overflowing: supercalifragilisticexpialidocious-supercalifragilisticexpialidocious'],
        [phone, 'Count me in!'],
        [dark, 'Same here. Line one of two,\nand line two.']];
    for (const [page, text] of talk) {
        await say(page, text);
        for (const reader of [lucia, phone, dark]) await waitForMessage(reader, text.slice(0, 15));
    }
    await lucia.getByLabel('Room to join').fill('swift-dev');
    await lucia.getByRole('button', { name: 'Join', exact: true }).click();
    await lucia.getByRole('heading', { name: 'swift-dev' }).waitFor();
    await lucia.locator('.conv[data-conv="r:python-dev-madrid"]').click();
    await mateo.getByRole('list', { name: 'Members' }).getByRole('button', { name: 'lucia' }).click();
    await say(mateo, 'Can you save me a seat?');
    await lucia.locator('.conv[data-conv="p:mateo"] .badge:not([hidden])').waitFor();

    await screenshot(lucia, 'chat-desktop.png', { docs: true });
    await screenshot(phone, 'chat-phone.png', { docs: true });
    await screenshot(dark, 'chat-desktop-dark.png', { docs: true });
    await phone.getByRole('button', { name: 'Conversations' }).click();
    await phone.locator('#sidebar').getByRole('button', { name: 'Log out' }).waitFor({ state: 'visible' });
    await screenshot(phone, 'chat-phone-sidebar.png');
    await phone.keyboard.press('Escape');
    await phone.locator('#sidebar').waitFor({ state: 'hidden' });
    await phone.getByRole('button', { name: 'People' }).click();
    await phone.locator('#people').getByRole('button', { name: 'Close people' }).waitFor({ state: 'visible' });
    assert.deepEqual((await memberNames(phone)).sort(), ['lucia', 'mateo', 'sofia', 'tomas']);
    await screenshot(phone, 'chat-phone-people.png');
    await phone.keyboard.press('Escape');
    const loginPage = await openPage(browser, `${server.url}?room=python-dev-madrid`, { viewport: DESKTOP });
    pages.push(loginPage);
    // The first screen shows once the page knows no stored session logs it
    // straight in; the picture shows the account way in, with its password.
    await loginPage.getByRole('radio', { name: 'Log in' }).check();
    await loginPage.getByLabel('Password', { exact: true }).waitFor();
    await screenshot(loginPage, 'login.png', { docs: true });

    // Phone width: no horizontal scrolling, the conversation uses the whole
    // width, and the side panels are off screen until opened.
    const overflow = await phone.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.equal(overflow, 0);
    const box = await phone.locator('#conversation').boundingBox();
    assert.equal(Math.round(box.width), PHONE.width);
    await phone.locator('#people').waitFor({ state: 'hidden' });
    assert.equal(await phone.locator('#sidebar').isHidden(), true);
    // Desktop: the three columns are all on screen.
    for (const id of ['#sidebar', '#conversation', '#people']) assert.equal(await lucia.locator(id).isVisible(), true, id);
    await closeAll();
});

test('every control has an accessible name and new messages are announced', async () => {
    const page = await person('quique', 'sala-11');
    for (const [role, name] of [['textbox', 'Message'], ['button', 'Send'], ['button', 'Log out'],
        ['button', 'Browse all rooms'], ['textbox', 'Room to join'], ['button', 'Leave sala-11'],
        ['button', 'Copy link to this room']]) {
        assert.equal(await page.getByRole(role, { name, exact: true }).count(), 1, `${role} "${name}"`);
    }
    assert.equal(await activeLog(page).getAttribute('aria-live'), 'polite');
    assert.equal(await page.locator('#conn-status').getAttribute('role'), 'status');
    const unnamed = await page.evaluate(() => [...document.querySelectorAll('button, input, textarea')]
        .filter((el) => el.offsetParent !== null)
        .filter((el) => !(el.getAttribute('aria-label') || el.labels?.length || el.textContent.trim() || el.title))
        .map((el) => el.outerHTML.slice(0, 80)));
    assert.deepEqual(unnamed, []);
    // Keyboard only: Tab reaches the message box, typing and Enter sends.
    await page.getByRole('textbox', { name: 'Message', exact: true }).focus();
    await page.keyboard.type('typed with the keyboard');
    await page.keyboard.press('Enter');
    await waitForMessage(page, 'typed with the keyboard');
    await closeAll();
});
