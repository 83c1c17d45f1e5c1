// The web client served over https:// and talking over wss://, in Chromium,
// next to a person on the plain port of the same server. The browser
// trusts the test's own certificate by its public key
// (--ignore-certificate-errors-spki-list, a flag of this browser profile
// only: the system store is never touched), so certificate errors are not
// ignored wholesale.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import { chromium } from 'playwright-core';
import { startServer } from './server.mjs';
import { login, say, waitForMessage, memberNames, until, DESKTOP } from './browser.mjs';
import { makePki } from '../integration/tls-helpers.mjs';

let server;
let browser;
let httpsUrl;

before(async () => {
    const pki = makePki();
    const pair = pki.issue('e2e-server', '4004');
    server = await startServer({ args: ['--listen-tls', '127.0.0.1:0', '--tls-cert', pair.cert, '--tls-key', pair.key] });
    const m = await until(() => /listening on 127\.0\.0\.1:(\d+) \(TLS\)/.exec(server.log()), { what: 'the TLS listener in the log' });
    httpsUrl = `https://127.0.0.1:${m[1]}/`;
    const leaf = new crypto.X509Certificate(fs.readFileSync(pair.cert));
    const spki = crypto.createHash('sha256').update(leaf.publicKey.export({ type: 'spki', format: 'der' })).digest('base64');
    browser = await chromium.launch({
        executablePath: process.env.CHROMIUM_BIN || '/usr/bin/chromium',
        headless: true,
        args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
            '--disable-background-networking', '--disable-component-update', '--disable-sync',
            `--ignore-certificate-errors-spki-list=${spki}`],
    });
});

after(async () => {
    await browser?.close();
    await server?.dispose();
});

async function open(url) {
    const context = await browser.newContext({ viewport: DESKTOP, reducedMotion: 'reduce' });
    const page = await context.newPage();
    page.problems = [];
    page.on('pageerror', (err) => page.problems.push(`pageerror: ${err.message}`));
    page.on('console', (msg) => {
        if (msg.type() === 'error') page.problems.push(`console: ${msg.text()}`);
    });
    page.sockets = [];
    page.on('websocket', (ws) => page.sockets.push(ws.url()));
    const res = await page.goto(url);
    assert.equal(res.status(), 200);
    return page;
}

test('a page served over https chats over wss with a page on the plain port', async () => {
    const secure = await open(httpsUrl);
    const plain = await open(server.url);
    assert.equal(await secure.evaluate(() => location.protocol), 'https:');
    const sec = await secure.evaluate(() => window.isSecureContext);
    assert.equal(sec, true, 'the https page is a secure context');
    await login(secure, 'segura', 'sala-tls');
    await login(plain, 'llana', 'sala-tls');
    assert.ok(secure.sockets.length > 0 && secure.sockets.every((u) => u.startsWith('wss://')), `sockets ${secure.sockets}`);
    assert.ok(plain.sockets.every((u) => u.startsWith('ws://')));
    await until(async () => (await memberNames(secure)).includes('llana'), { what: 'llana in the member list' });
    await say(secure, 'cifrado de punta a servidor');
    await waitForMessage(plain, 'cifrado de punta a servidor', 'segura');
    await say(plain, 'y yo en claro');
    await waitForMessage(secure, 'y yo en claro', 'llana');
    const problems = [...secure.problems, ...plain.problems];
    await secure.context().close();
    await plain.context().close();
    assert.deepEqual(problems, [], 'the pages logged no errors');
});
