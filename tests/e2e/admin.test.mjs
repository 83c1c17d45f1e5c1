// The admin page (admin/, served at /admin/) in Chromium against the real
// server, with chat clients made with `ws` so there is something to see:
// refusal without the token, the live charts and tables, closing a
// connection, changing the log level, where the token is kept, and the
// layout at desktop and phone width. One server for the file; every test
// opens its own chat clients and closes them before it ends, so the
// connection counts a test waits for are its own.

import { test, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import WebSocket from 'ws';
import { startServer } from './server.mjs';
import { launchBrowser, openPage, until, screenshot, DESKTOP, PHONE } from './browser.mjs';

const TOKEN = crypto.randomBytes(18).toString('base64url');
const TOKEN_KEY = 'tertulia-admin-token';

let server;
let browser;
let tokenDir;
let tokenFile;
const pages = [];
const clients = [];

before(async () => {
    tokenDir = fs.mkdtempSync(path.join(os.tmpdir(), 'tertulia-admin-'));
    tokenFile = path.join(tokenDir, 'admin-token');
    // With a trailing newline, as `echo … > file` writes it: the server trims it.
    fs.writeFileSync(tokenFile, `${TOKEN}\n`, { mode: 0o600 });
    server = await startServer({ args: ['--admin-token-file', tokenFile] });
    browser = await launchBrowser();
});

after(async () => {
    await browser?.close();
    await server?.dispose();
    if (tokenDir) fs.rmSync(tokenDir, { recursive: true, force: true });
});

afterEach(async () => {
    await closeClients();
    for (const page of pages.splice(0)) await page.context().close();
});

const adminUrl = () => `${server.url}admin/`;

/** Calls the admin API from Node (not the page), with the right token unless told otherwise. */
async function api(p, { method = 'GET', token = TOKEN, base = adminUrl() } = {}) {
    const headers = token === null ? {} : { Authorization: `Bearer ${token}` };
    const res = await fetch(`${base}api/${p}`, { method, headers });
    return { status: res.status, headers: res.headers, body: await res.json() };
}

/**
 * A tertulia.v1 chat client (the `ws` package) logged in as `nickname` and in
 * `room`. It records the frames it gets, the refs acknowledged, the room's
 * canonical name from `joined`, and resolves `closed` with the close code.
 */
async function chatClient(nickname, room) {
    const ws = new WebSocket(`${server.url.replace('http', 'ws')}ws`, 'tertulia.v1');
    const client = { ws, nickname, frames: [], acks: new Set(), room: null, sent: 0 };
    client.closed = new Promise((resolve) => ws.on('close', (code, reason) => resolve({ code, reason: reason.toString() })));
    ws.on('message', (data) => {
        const m = JSON.parse(data);
        client.frames.push(m);
        if (m.type === 'joined') client.room = m.room;
        if (m.type === 'ack') client.acks.add(m.ref);
    });
    await new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject); });
    clients.push(client);
    ws.send(JSON.stringify({ type: 'login', nickname, room }));
    await until(() => client.room, { what: `${nickname} in ${room} (frames: ${JSON.stringify(client.frames)})` });
    return client;
}

/** Sends a room message (with an id, so the server acknowledges it); resolves with the id. */
function post(client, text) {
    const id = `${client.nickname}-${++client.sent}`;
    client.ws.send(JSON.stringify({ type: 'room', id, to: client.room, message: { text } }));
    return id;
}

async function closeClients() {
    for (const c of clients.splice(0)) {
        if (c.ws.readyState === WebSocket.OPEN || c.ws.readyState === WebSocket.CONNECTING) c.ws.close(1000);
        await c.closed;
    }
}

/** Opens the admin page in its own browser context (its own sessionStorage). */
async function adminPage(opts) {
    const page = await openPage(browser, adminUrl(), opts);
    pages.push(page);
    await page.locator('#signin-view').waitFor({ state: 'visible' });
    return page;
}

async function signIn(page, token = TOKEN) {
    await page.getByLabel('Admin token', { exact: true }).fill(token);
    await page.getByRole('button', { name: 'Sign in', exact: true }).click();
}

/** Opens the page and signs in with the right token; resolves once the dashboard shows. */
async function signedInPage(opts) {
    const page = await adminPage(opts);
    await signIn(page);
    await page.locator('#dashboard').waitFor({ state: 'visible' });
    return page;
}

/** The raw value a chart shows now (its .value's data-value), or null. */
async function chartValue(page, id) {
    const v = await page.locator(`#chart-${id} .value`).getAttribute('data-value');
    return v === null ? null : Number(v);
}

/** The rows of the connections table: [{id, address, nick, kind, rate}]. */
function connectionRows(page) {
    return page.locator('#connections tbody tr').evaluateAll((rows) => rows.map((tr) => ({
        id: Number(tr.dataset.id),
        address: tr.cells[1].textContent,
        nick: tr.cells[2].textContent,
        kind: tr.cells[3].textContent,
        rate: tr.cells[7].dataset.value === '' ? null : Number(tr.cells[7].dataset.value),
    })));
}

/** Asserts the page logged no problems but those in `expected` (regexps, each a known, provoked one). */
function assertNoProblems(page, expected = []) {
    const left = page.problems.filter((p) => !expected.some((re) => re.test(p)));
    assert.deepEqual(left, [], 'the page logged no errors (script errors, CSP violations)');
    assert.deepEqual(page.dialogs, [], 'the page opened no dialogs (alert, confirm)');
}

// Chromium reports an HTTP error answer to fetch() in the console; these are
// the ones a test provokes on purpose.
const REFUSED = [/Failed to load resource: the server responded with a status of 40[13]/];

test('without the token: the sign-in form, no data, 401 from the API, and a wrong token is refused with the 403 message', async () => {
    const page = await adminPage();
    assert.equal(await page.locator('#dashboard').isHidden(), true, 'no dashboard');
    assert.equal(await page.locator('#sign-out').isHidden(), true);
    assert.equal(await page.locator('#rooms tbody tr').count(), 0);
    assert.equal(await page.locator('#connections tbody tr').count(), 0);
    assert.equal(await page.locator('#chart-connections .value').textContent(), '—');
    assert.equal(await page.evaluate((k) => sessionStorage.getItem(k), TOKEN_KEY), null);

    // The API itself refuses a request without the header, from the page's origin too.
    const plain = await page.evaluate(async () => {
        const res = await fetch('/admin/api/stats', { cache: 'no-store' });
        return { status: res.status, auth: res.headers.get('www-authenticate'), cache: res.headers.get('cache-control'), body: await res.json() };
    });
    assert.equal(plain.status, 401);
    assert.equal(plain.body.error, 'unauthorized');
    assert.match(plain.auth, /^Bearer realm="tertulia admin"/);
    assert.match(plain.cache, /no-store/);
    // The page is served under the strict policy (so a style attribute or an
    // inline script would show in page.problems).
    const html = await fetch(adminUrl());
    assert.equal(html.status, 200);
    assert.match(html.headers.get('content-security-policy') || '', /default-src 'self'.*style-src 'self'/);
    // "/admin" leads to "/admin/", where the page's relative URLs work.
    const bare = await fetch(`${server.url}admin`, { redirect: 'manual' });
    assert.equal(bare.status, 308);
    assert.equal(bare.headers.get('location'), '/admin/');

    const wrong = await api('stats', { token: 'not-the-token' });
    assert.equal(wrong.status, 403);
    assert.equal(wrong.body.error, 'forbidden');

    // Signing in with a wrong token shows the server's message and stays on the form.
    await signIn(page, 'not-the-token');
    await until(async () => (await page.locator('#signin-error').textContent()) === wrong.body.message,
        { what: 'the 403 message on the form' });
    assert.equal(await page.locator('#signin-view').isVisible(), true);
    assert.equal(await page.locator('#dashboard').isHidden(), true);
    assert.equal(await page.evaluate((k) => sessionStorage.getItem(k), TOKEN_KEY), null, 'a refused token is not kept');
    assertNoProblems(page, REFUSED);
});

test('without --admin-token-file there is no admin page at all', async () => {
    const plain = await startServer();
    try {
        for (const p of ['admin/', 'admin/index.html', 'admin/admin.js', 'admin/api/stats']) {
            const res = await fetch(`${plain.url}${p}`, { headers: { Authorization: `Bearer ${TOKEN}` } });
            assert.equal(res.status, 404, p);
        }
    } finally {
        await plain.dispose();
    }
});

test('signed in: the charts fill, and the rooms and connections tables show the chat clients', async () => {
    const ana = await chatClient('ana-adm', 'sala-admin');
    const bruno = await chatClient('bruno-adm', 'sala-admin');
    const page = await signedInPage();

    await until(async () => (await chartValue(page, 'connections')) === 2, { what: 'connections chart at 2' });
    assert.equal(await page.locator('#chart-connections .value').textContent(), '2');
    for (const id of ['connections', 'rate', 'latency', 'queue', 'loop']) {
        const chart = page.locator(`#chart-${id}`);
        assert.equal(await chart.locator('svg').count(), 1, `${id} has an svg`);
        assert.equal(await chart.locator('.value').count(), 1, `${id} has a value`);
    }
    // The second sample gives the interval charts a value, and draws lines.
    await until(async () => (await chartValue(page, 'loop')) > 0, { what: 'a loop time' });
    await until(async () => (await page.locator('#chart-connections svg path.line').count()) === 1, { what: 'the connections line' });
    assert.notEqual(await chartValue(page, 'rate'), null);
    assert.notEqual(await chartValue(page, 'queue'), null);

    // Plain numbers.
    await until(async () => (await page.locator('#stat-sessions').textContent()) === '2', { what: 'two sessions' });
    assert.equal(await page.locator('#stat-users').textContent(), '2');
    assert.equal(await page.locator('#stat-rooms').textContent(), '1');
    assert.equal(await page.locator('#stat-log-level').textContent(), 'info');
    assert.match(await page.locator('#stat-uptime').textContent(), /\d+ s|\d+ min/);
    assert.match(await page.locator('#stat-bytes-in').textContent(), /\d+(\.\d+)? (B|KiB)/);

    // The room, by the name the server gives it, with both members.
    const row = page.locator(`#rooms tbody tr[data-room="${ana.room}"]`);
    await row.waitFor({ timeout: 10000 });
    assert.equal(ana.room, bruno.room);
    await until(async () => (await row.locator('td').allTextContents()).join() === [ana.room, '2', '2'].join(),
        { what: 'two members, two connections' });

    // Both connections, with their nicknames; the API's ids.
    await until(async () => (await connectionRows(page)).length === 2, { what: 'two connection rows' });
    const rows = await connectionRows(page);
    assert.deepEqual(rows.map((r) => r.nick).sort(), ['ana-adm', 'bruno-adm']);
    for (const r of rows) {
        assert.match(r.address, /^127\.0\.0\.1:\d+$/);
        assert.equal(r.kind, 'v1');
        assert.equal(await page.locator(`#connections tr[data-id="${r.id}"] button.disconnect`).textContent(), 'Disconnect');
    }
    const fromApi = (await api('connections')).body.connections;
    assert.deepEqual(fromApi.map((c) => c.id).sort(), rows.map((r) => r.id).sort());
    assertNoProblems(page);
});

test('messages per second rises above 0 while the clients talk, for the chart and for the sender\'s row', async () => {
    const ana = await chatClient('ana-rate', 'sala-rate');
    const bruno = await chatClient('bruno-rate', 'sala-rate');
    const page = await signedInPage();
    await until(async () => (await chartValue(page, 'connections')) === 2, { what: 'connections chart at 2' });
    await until(async () => (await chartValue(page, 'rate')) === 0, { what: 'a quiet second first' });

    // A burst (under flood control's burst of 20), then a steady 5 a second
    // until the page has seen it, so each poll interval holds some.
    const burst = Array.from({ length: 10 }, (_, i) => post(ana, `burst ${i}`));
    const talk = setInterval(() => post(ana, 'still talking'), 200);
    try {
        await until(() => burst.every((id) => ana.acks.has(id)), { what: 'the burst acknowledged' });
        await until(async () => (await chartValue(page, 'rate')) > 0, { what: 'messages per second > 0' });
        assert.match(await page.locator('#chart-rate .value').textContent(), /^\d+(\.\d)?\/s$/);
        await until(async () => (await chartValue(page, 'latency')) > 0, { what: 'a delivery latency' });
        assert.match(await page.locator('#chart-latency .value').textContent(), /ms$/);
        await until(async () => {
            const rows = await connectionRows(page);
            return rows.find((r) => r.nick === 'ana-rate')?.rate > 0 && rows.find((r) => r.nick === 'bruno-rate')?.rate === 0;
        }, { what: 'a rate in ana\'s row (and none in bruno\'s)' });
    } finally {
        clearInterval(talk);
    }
    assert.ok(bruno.frames.some((m) => m.type === 'room' && m.message.text === 'burst 9'), 'bruno got the burst');
    assertNoProblems(page);
});

test('Disconnect, then Confirm, closes that WebSocket with 1008 and its row goes', async () => {
    const carla = await chatClient('carla-adm', 'sala-close');
    const dani = await chatClient('dani-adm', 'sala-close');
    const page = await signedInPage();
    await until(async () => (await connectionRows(page)).length === 2, { what: 'two connection rows' });
    const target = (await connectionRows(page)).find((r) => r.nick === 'carla-adm');
    const row = page.locator(`#connections tbody tr[data-id="${target.id}"]`);
    const button = row.locator('button.disconnect');

    // The first click only arms the button: nothing is closed yet.
    await button.click();
    assert.equal(await button.textContent(), 'Confirm');
    assert.equal(carla.ws.readyState, WebSocket.OPEN);
    await button.click();

    const closed = await carla.closed;
    assert.equal(closed.code, 1008);
    assert.equal(closed.reason, 'closed by an administrator');
    await row.waitFor({ state: 'detached', timeout: 10000 });
    assert.match(await page.locator('#status').textContent(), new RegExp(`Connection ${target.id} closed`));
    // Only that one: dani is still there, on the server and on the page.
    assert.equal(dani.ws.readyState, WebSocket.OPEN);
    await until(async () => (await chartValue(page, 'connections')) === 1, { what: 'connections chart at 1' });
    assert.deepEqual((await connectionRows(page)).map((r) => r.nick), ['dani-adm']);
    // Closing it again (a stale row elsewhere) is a 404.
    assert.equal((await api(`connections/${target.id}/close`, { method: 'POST' })).status, 404);
    assertNoProblems(page);
});

test('the log level select sets the server\'s level, and the server logs the change', async () => {
    const page = await signedInPage();
    await until(async () => (await page.locator('#stat-log-level').textContent()) === 'info', { what: 'the level shown' });
    assert.equal(await page.locator('#log-level').inputValue(), 'info');

    await page.locator('#log-level').selectOption('debug');
    await until(async () => (await page.locator('#log-level-result').textContent()) === 'Now debug.', { what: 'the answer shown' });
    await until(() => server.log().includes('log level set to debug by the admin API'), { what: 'the change in the server log' });
    assert.equal((await api('stats')).body.log_level, 'debug');
    await until(async () => (await page.locator('#stat-log-level').textContent()) === 'debug', { what: 'debug in the numbers' });
    // It stays selected through the next polls.
    assert.equal(await page.locator('#log-level').inputValue(), 'debug');

    await page.locator('#log-level').selectOption('info');
    await until(async () => (await page.locator('#log-level-result').textContent()) === 'Now info.', { what: 'back to info' });
    assert.equal((await api('stats')).body.log_level, 'info');
    assert.equal((await api('log-level?level=loud', { method: 'POST' })).status, 400);
    assertNoProblems(page);
});

test('the token lives in this tab\'s sessionStorage only, survives a reload, and Sign out forgets it', async () => {
    const page = await signedInPage();
    const stored = await page.evaluate(() => ({
        session: { ...sessionStorage },
        local: localStorage.length,
        cookie: document.cookie,
    }));
    assert.deepEqual(stored, { session: { [TOKEN_KEY]: TOKEN }, local: 0, cookie: '' });
    assert.deepEqual(await page.context().cookies(), []);

    // Every API call carries it as a Bearer header, and is not cached.
    const seen = [];
    page.on('request', (req) => { if (req.url().includes('/admin/api/')) seen.push(req); });
    await until(() => seen.length >= 3, { what: 'three API calls' });
    for (const req of seen) assert.equal(req.headers().authorization, `Bearer ${TOKEN}`, req.url());

    await page.reload();
    await page.locator('#dashboard').waitFor({ state: 'visible' });
    await until(async () => (await chartValue(page, 'connections')) === 0, { what: 'data after the reload' });

    await page.getByRole('button', { name: 'Sign out', exact: true }).click();
    await page.locator('#signin-view').waitFor({ state: 'visible' });
    assert.equal(await page.locator('#dashboard').isHidden(), true);
    assert.equal(await page.evaluate((k) => sessionStorage.getItem(k), TOKEN_KEY), null);
    await page.reload();
    await page.locator('#signin-view').waitFor({ state: 'visible' });
    assert.equal(await page.locator('#dashboard').isHidden(), true);

    // A token that stops working (here: a wrong one put in storage) sends
    // the page back to the form with the server's message.
    await page.evaluate((k) => sessionStorage.setItem(k, 'stale-token'), TOKEN_KEY);
    await page.reload();
    const wrong = await api('stats', { token: 'stale-token' });
    await until(async () => (await page.locator('#signin-error').textContent()) === wrong.body.message, { what: 'back at the form' });
    assert.equal(await page.locator('#signin-view').isVisible(), true);
    assert.equal(await page.evaluate((k) => sessionStorage.getItem(k), TOKEN_KEY), null);
    assertNoProblems(page, REFUSED);
});

test('server texts are shown as text, never as markup', async () => {
    // Room names and nicknames are restricted by the protocol, so this is
    // checked with what the page would do with any text: the cells hold
    // exactly the API's strings, and no element came from them.
    const eve = await chatClient('eve-adm', 'sala-xss');
    const page = await signedInPage();
    await page.locator(`#rooms tbody tr[data-room="${eve.room}"]`).waitFor();
    await until(async () => (await connectionRows(page)).some((r) => r.nick === 'eve-adm'), { what: 'eve\'s row' });
    const markup = await page.evaluate(() => document.querySelectorAll('#rooms tbody td *, #connections tbody td:not(:last-child) *').length);
    assert.equal(markup, 0);
    const source = fs.readFileSync(new URL('../../admin/admin.js', import.meta.url), 'utf8');
    assert.doesNotMatch(source, /innerHTML|outerHTML|insertAdjacentHTML|document\.write|setAttribute\(['"]style/);
    assertNoProblems(page);
});

test('the layout at desktop and phone width, light and dark, with no CSP violations (screenshots)', async () => {
    const ana = await chatClient('lucia', 'python-dev-madrid');
    await chatClient('mateo', 'python-dev-madrid');
    await chatClient('sofia', 'swift-dev');
    const desktop = await signedInPage({ viewport: DESKTOP });
    const phone = await signedInPage({ viewport: PHONE });
    const dark = await signedInPage({ viewport: DESKTOP, colorScheme: 'dark' });
    const talk = setInterval(() => post(ana, 'a steady line'), 250);
    try {
        for (const page of [desktop, phone, dark]) {
            await until(async () => (await chartValue(page, 'connections')) === 3, { what: 'three connections' });
            // (Rooms of earlier tests may still be listed: a guest's session
            // outlives its connection, for a while, so it can resume.)
            await until(async () => (await page.locator('#rooms tbody tr[data-room="python-dev-madrid"], #rooms tbody tr[data-room="swift-dev"]').count()) === 2,
                { what: 'both rooms' });
            await until(async () => (await connectionRows(page)).length === 3, { what: 'three rows' });
            await until(async () => (await chartValue(page, 'rate')) > 0, { what: 'some traffic' });
        }
        // A few seconds of history, so the picture shows lines.
        await until(async () => Number(await desktop.locator('#chart-rate').getAttribute('data-samples')) >= 12,
            { what: 'twelve samples', timeout: 20000 });
        await screenshot(desktop, 'admin.png', { docs: true });
        await screenshot(phone, 'admin-phone.png');
        await screenshot(dark, 'admin-dark.png');
    } finally {
        clearInterval(talk);
    }
    // The rooms table lists the busier room first.
    const order = await desktop.locator('#rooms tbody tr').evaluateAll((rows) => rows.map((r) => r.dataset.room));
    assert.ok(order.indexOf('python-dev-madrid') < order.indexOf('swift-dev'), `the room with 2 members first (${order})`);

    // Desktop: the five charts side by side, at least three to a row.
    const tops = await desktop.locator('.chart').evaluateAll((els) => els.map((e) => Math.round(e.getBoundingClientRect().top)));
    assert.ok(tops.filter((t) => t === tops[0]).length >= 3, `charts in a row (${tops})`);
    // Phone: nothing wider than the screen (wide tables scroll inside their card), charts one above the other.
    assert.equal(await phone.evaluate(() => document.documentElement.scrollWidth - window.innerWidth), 0);
    const widths = await phone.locator('.chart').evaluateAll((els) => els.map((e) => e.getBoundingClientRect().width));
    for (const w of widths) assert.ok(w > PHONE.width * 0.8 && w <= PHONE.width, `a chart as wide as the phone (${w})`);
    // Dark: the system setting changes the colours.
    const bg = (page) => page.evaluate(() => getComputedStyle(document.body).backgroundColor);
    assert.notEqual(await bg(desktop), await bg(dark));
    for (const page of [desktop, phone, dark]) assertNoProblems(page);
});

test('with --admin-listen the page and the API are on their own port, and a server gone shows in the status line', async () => {
    const other = await startServer({ args: ['--admin-listen', '127.0.0.1:0', '--admin-token-file', tokenFile] });
    try {
        // The chat's address is the "listening on" line, the admin one has its own words.
        const ports = await until(() => {
            const admin = /admin address 127\.0\.0\.1:(\d+) /.exec(other.log());
            return admin && { admin: Number(admin[1]), chat: other.port };
        }, { what: 'the admin listener in the log' });
        assert.notEqual(ports.admin, ports.chat);
        // The chat's port has no admin page then.
        for (const p of ['admin/', 'admin/api/stats']) {
            const res = await fetch(`http://127.0.0.1:${ports.chat}/${p}`, { headers: { Authorization: `Bearer ${TOKEN}` } });
            assert.equal(res.status, 404, `${p} on the chat port`);
        }
        const base = `http://127.0.0.1:${ports.admin}/admin/`;
        const stats = await api('stats', { base });
        assert.equal(stats.status, 200);
        assert.equal(typeof stats.body.uptime_s, 'number');
        assert.equal((await api('stats', { base, token: null })).status, 401);

        const page = await openPage(browser, base);
        pages.push(page);
        await signIn(page);
        await page.locator('#dashboard').waitFor({ state: 'visible' });
        await until(async () => (await chartValue(page, 'connections')) === 0, { what: 'stats on the admin port' });
        assertNoProblems(page);

        // The server gone: the status line says so (no alert), and the page stays signed in.
        await other.stop();
        await until(async () => /Cannot reach the server/.test(await page.locator('#status').textContent()),
            { what: 'the network error in the status line' });
        assert.equal(await page.locator('#status').getAttribute('data-kind'), 'error');
        assert.equal(await page.locator('#dashboard').isVisible(), true);
        assertNoProblems(page, [/Failed to load resource: net::ERR_CONNECTION_REFUSED/]);
    } finally {
        await other.dispose();
    }
});

test('a new token read on SIGHUP sends a signed-in page back to the form, and the new one signs in', async () => {
    const file = path.join(tokenDir, 'rotating-token');
    fs.writeFileSync(file, `${TOKEN}\n`, { mode: 0o600 });
    const other = await startServer({ args: ['--admin-token-file', file] });
    try {
        const page = await openPage(browser, `${other.url}admin/`);
        pages.push(page);
        await signIn(page);
        await page.locator('#dashboard').waitFor({ state: 'visible' });

        const next = crypto.randomBytes(18).toString('base64url');
        fs.writeFileSync(file, `${next}\n`);
        other.proc.kill('SIGHUP');
        // The signal is handled by the server's loop: wait until the old token stops working.
        const refused = await until(async () => {
            const r = await api('stats', { base: `${other.url}admin/` });
            return r.status === 403 && r;
        }, { what: 'the old token refused' });
        await page.locator('#signin-view').waitFor({ state: 'visible', timeout: 10000 });
        assert.equal(await page.locator('#signin-error').textContent(), refused.body.message);
        assert.equal(await page.evaluate((k) => sessionStorage.getItem(k), TOKEN_KEY), null);

        await signIn(page, next);
        await page.locator('#dashboard').waitFor({ state: 'visible' });
        await until(async () => (await chartValue(page, 'connections')) === 0, { what: 'stats with the new token' });
        assertNoProblems(page, REFUSED);
    } finally {
        await other.dispose();
    }
});
