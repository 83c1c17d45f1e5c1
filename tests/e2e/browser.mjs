// Debian's Chromium driven by playwright-core, and the few steps every
// browser test repeats: open the client, log in, send, read the messages.

import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import assert from 'node:assert/strict';
import { chromium } from 'playwright-core';
import WebSocket from 'ws';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const RESULTS_DIR = path.join(ROOT, 'test-results');
export const DOCS_DIR = path.join(ROOT, 'docs');

export const DESKTOP = { width: 1280, height: 800 };
export const PHONE = { width: 390, height: 844 };

export function launchBrowser() {
    return chromium.launch({
        executablePath: process.env.CHROMIUM_BIN || '/usr/bin/chromium',
        headless: true,
        args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
            '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
}

/**
 * A new page in its own context (own localStorage, like another person's
 * browser). Page errors, failed requests and CSP violations are collected
 * in `page.problems` so a test can assert there were none; JavaScript
 * dialogs (alert…) are recorded in `page.dialogs` and dismissed.
 */
export async function openPage(browser, url, { viewport = DESKTOP, colorScheme = 'light', config, recordWebSockets = false } = {}) {
    const context = await browser.newContext({ viewport, colorScheme, reducedMotion: 'reduce' });
    const page = await context.newPage();
    page.problems = [];
    // recordWebSockets: the response headers of every WebSocket handshake
    // the page makes, as Chromium saw them (DevTools protocol).
    page.wsHandshakes = [];
    if (recordWebSockets) {
        const cdp = await context.newCDPSession(page);
        await cdp.send('Network.enable');
        cdp.on('Network.webSocketHandshakeResponseReceived', (e) => page.wsHandshakes.push(e.response.headers));
    }
    page.dialogs = [];
    page.on('pageerror', (err) => page.problems.push(`pageerror: ${err.message}`));
    page.on('console', (msg) => {
        if (msg.type() === 'error' && !/WebSocket connection to .* failed/.test(msg.text())) page.problems.push(`console: ${msg.text()}`);
    });
    page.on('dialog', (dialog) => {
        page.dialogs.push(`${dialog.type()}: ${dialog.message()}`);
        dialog.dismiss().catch(() => {});
    });
    if (config) await page.addInitScript((c) => { globalThis.tertuliaConfig = c; }, config);
    await page.goto(url);
    return page;
}

/** Fills the login form and waits for the chat (the "Message" box) to appear. */
export async function login(page, nickname, room) {
    await page.getByLabel('Nickname', { exact: true }).fill(nickname);
    if (room !== undefined) await page.getByLabel('Room', { exact: true }).fill(room);
    await page.getByRole('button', { name: 'Join the chat' }).click();
    await page.getByRole('textbox', { name: 'Message', exact: true }).waitFor({ state: 'visible', timeout: 10000 });
}

/** Opens a page and logs in. */
export async function joinAs(browser, url, nickname, room, opts) {
    const page = await openPage(browser, url, opts);
    await login(page, nickname, room);
    return page;
}

/** Types `text` into the message box and presses Enter. */
export async function say(page, text) {
    const box = page.getByRole('textbox', { name: 'Message', exact: true });
    await box.fill(text);
    await box.press('Enter');
}

/** The visible conversation's log (role=log). */
export function activeLog(page) {
    return page.locator('section.pane:not([hidden]) [role="log"]');
}

/** The chat messages of the visible conversation: [{from, text, own, pending}]. */
export async function messages(page) {
    return activeLog(page).locator('li.msg').evaluateAll((items) => items.map((li) => ({
        from: li.dataset.from,
        text: li.querySelector('.text').textContent,
        own: li.classList.contains('own'),
        pending: li.classList.contains('pending'),
        failed: li.classList.contains('failed'),
        id: li.dataset.id ? Number(li.dataset.id) : null,
    })));
}

/** Waits until the visible conversation shows a message with this text (from `from`, if given). */
export async function waitForMessage(page, text, from, timeout = 10000) {
    const item = activeLog(page).locator('li.msg').filter({ has: page.locator('.text', { hasText: text }) });
    const match = from === undefined ? item : item.and(page.locator(`li.msg[data-from="${from.toLowerCase()}"]`));
    await match.first().waitFor({ state: 'visible', timeout });
}

/** The nicknames in the member list, in order. */
export async function memberNames(page) {
    return page.getByRole('list', { name: 'Members' }).locator('.person-name').allTextContents();
}

/** Polls `fn` until it returns a truthy value (or throws after `timeout`). */
export async function until(fn, { timeout = 10000, interval = 50, what = 'condition' } = {}) {
    const end = Date.now() + timeout;
    let last;
    for (;;) {
        last = await fn();
        if (last) return last;
        if (Date.now() > end) throw new Error(`timed out waiting for ${what} (last: ${JSON.stringify(last)})`);
        await new Promise((r) => setTimeout(r, interval));
    }
}

/**
 * Saves a screenshot into test-results/. With `docs` and the environment
 * variable UPDATE_DOCS_SCREENSHOTS=1 it also refreshes docs/<name>, the
 * picture in the user guide (not on every run: it would change each time).
 */
export async function screenshot(page, name, { docs = false } = {}) {
    fs.mkdirSync(RESULTS_DIR, { recursive: true });
    const file = path.join(RESULTS_DIR, name);
    await page.screenshot({ path: file });
    if (docs && process.env.UPDATE_DOCS_SCREENSHOTS === '1') fs.copyFileSync(file, path.join(DOCS_DIR, name));
    return file;
}

/** Another tab of the same browser (same context: same localStorage), watched like openPage's. */
export async function newTab(page, url) {
    const tab = await page.context().newPage();
    tab.problems = [];
    tab.on('pageerror', (err) => tab.problems.push(`pageerror: ${err.message}`));
    tab.on('console', (msg) => {
        if (msg.type() === 'error' && !/WebSocket connection to .* failed/.test(msg.text())) tab.problems.push(`console: ${msg.text()}`);
    });
    await tab.goto(url);
    return tab;
}

/**
 * A program from node beside the pages: `first` is its login (or register)
 * frame; it joins `room` if given. `frames` collects what it hears;
 * `request` sends and waits for the ack (again after the wait flood control
 * asks for); `private(to, text)` sends one. The caller terminates it.
 */
export async function wsClient(url, first, room) {
    const ws = new WebSocket(`${url.replace('http', 'ws')}ws`, 'tertulia.v1', { origin: url.replace(/\/$/, '') });
    ws.frames = [];
    ws.on('message', (data) => ws.frames.push(JSON.parse(data)));
    await new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject); });
    ws.send(JSON.stringify(first));
    await until(() => ws.frames.some((f) => f.type === 'welcome'), { what: `${first.nickname} welcomed`, timeout: 15000 });
    if (room) {
        ws.send(JSON.stringify({ type: 'join', room }));
        await until(() => ws.frames.some((f) => f.type === 'joined'), { what: `${first.nickname} joined` });
    }
    let n = 0;
    ws.request = async (obj) => {
        for (;;) {
            const id = `w${++n}`;
            ws.send(JSON.stringify({ ...obj, id }));
            const reply = await until(() => ws.frames.find((f) => f.ref === id && (f.type === 'ack' || f.type === 'error')), { what: `reply to ${id}` });
            if (reply.type === 'ack') return reply;
            assert.equal(reply.code, 'rate_limited', JSON.stringify(reply));
            await new Promise((r) => setTimeout(r, reply.retry_after_ms ?? 100));
        }
    };
    ws.private = (to, text) => ws.request({ type: 'private', to, message: { text } });
    return ws;
}
