// Getting attention: desktop notifications for mentions and private
// messages while the tab is hidden, the count in the title, rooms muted
// here (no notification, no count; remembered across a reload), and the
// permission asked only after a gesture. The page's Notification and
// document.hidden are wrapped by an init script, so the test sees every
// notification made and can hide the tab.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer } from './server.mjs';
import { launchBrowser, login, say, waitForMessage, memberNames, wsClient, until, DESKTOP } from './browser.mjs';

const browser = await launchBrowser();
const server = await startServer();
after(async () => {
    await browser.close();
    await server.dispose();
});

function hooks() {
    let hidden = false;
    Object.defineProperty(Document.prototype, 'hidden', { configurable: true, get: () => hidden });
    Object.defineProperty(Document.prototype, 'visibilityState', { configurable: true, get: () => (hidden ? 'hidden' : 'visible') });
    globalThis.setHidden = (h) => {
        hidden = h;
        document.dispatchEvent(new Event('visibilitychange'));
    };
    globalThis.notes = [];
    globalThis.asked = 0;
    const Real = globalThis.Notification;
    class Recorded {
        constructor(title, options = {}) {
            globalThis.notes.push({ title, body: options.body, tag: options.tag });
            this.onclick = null;
        }
        close() {}
        static get permission() { return Real.permission; }
        static requestPermission() {
            globalThis.asked += 1;
            return Promise.resolve(Real.permission);
        }
    }
    globalThis.Notification = Recorded;
}

async function page({ grant }) {
    const context = await browser.newContext({ viewport: DESKTOP, reducedMotion: 'reduce' });
    if (grant) await context.grantPermissions(['notifications'], { origin: server.url.replace(/\/$/, '') });
    await context.addInitScript(hooks);
    const p = await context.newPage();
    p.problems = [];
    p.on('pageerror', (err) => p.problems.push(`pageerror: ${err.message}`));
    await p.goto(server.url);
    return p;
}

const notes = (p) => p.evaluate(() => globalThis.notes);

test('mentions and privates notify while the tab is hidden and count in the title; a muted room does neither, and stays muted', async () => {
    const ana = await page({ grant: true });
    await login(ana, 'ana-n', 'sala-n');
    const ben = await wsClient(server.url, { type: 'login', nickname: 'ben-n' }, 'sala-n');
    await until(async () => (await memberNames(ana)).includes('ben-n'), { what: 'ben in the room' });

    // Visible: nothing notifies.
    await ben.request({ type: 'room', to: 'sala-n', message: { text: '@ana-n hello while you look' } });
    await waitForMessage(ana, 'hello while you look', 'ben-n');
    assert.deepEqual(await notes(ana), []);
    assert.equal(await ana.title(), 'sala-n · tertulia');

    await ana.evaluate(() => globalThis.setHidden(true));
    await ben.request({ type: 'room', to: 'sala-n', message: { text: '@ana-n are you there?' } });
    await ben.request({ type: 'room', to: 'sala-n', message: { text: 'no mention in this one' } });
    await ben.private('ana-n', 'psst');
    await until(async () => (await notes(ana)).length === 2, { what: 'two notifications' });
    // The plain room message came between the two and made none.
    assert.deepEqual(await notes(ana), [
        { title: 'ben-n in sala-n', body: '@ana-n are you there?', tag: 'r:sala-n' },
        { title: 'ben-n (private)', body: 'psst', tag: 'p:ben-n' },
    ]);
    await until(async () => (await ana.title()) === '(3) sala-n · tertulia', { what: 'the count in the title' });

    // Back: the room is read; mute it, and hide again.
    await ana.evaluate(() => globalThis.setHidden(false));
    await until(async () => (await ana.title()) === '(1) sala-n · tertulia', { what: 'the room read, the private not yet' });
    const mute = ana.getByRole('button', { name: 'Mute this room' });
    assert.equal(await mute.getAttribute('aria-pressed'), 'false');
    await mute.click();
    assert.equal(await mute.getAttribute('aria-pressed'), 'true');
    await ana.evaluate(() => globalThis.setHidden(true));
    await ben.request({ type: 'room', to: 'sala-n', message: { text: '@ana-n muted now?' } });
    await ben.private('ana-n', 'second psst');
    await until(async () => (await notes(ana)).length === 3, { what: 'the private’s notification' });
    assert.equal((await notes(ana))[2].body, 'second psst', 'the muted room’s mention made none');
    // The private counts (2), the muted room's message does not.
    assert.equal(await ana.title(), '(2) sala-n · tertulia');
    await ana.evaluate(() => globalThis.setHidden(false));

    // Remembered in this browser: a reload finds the room muted.
    await ana.reload();
    await ana.getByRole('heading', { name: 'sala-n' }).waitFor();
    await until(async () => (await ana.getByRole('button', { name: 'Mute this room' }).getAttribute('aria-pressed')) === 'true', { what: 'still muted after a reload' });
    await ana.getByRole('button', { name: 'Mute this room' }).click();
    assert.equal(await ana.getByRole('button', { name: 'Mute this room' }).getAttribute('aria-pressed'), 'false');
    assert.deepEqual(ana.problems, []);
    ben.terminate();
    await ana.context().close();
});

test('permission to notify is asked once, on a click in the chat, never on load', async () => {
    const ana = await page({ grant: false });
    await login(ana, 'ana-p', 'sala-p');
    // A round trip after the login: nothing asked yet.
    const ben = await wsClient(server.url, { type: 'login', nickname: 'ben-p' }, 'sala-p');
    await ben.request({ type: 'room', to: 'sala-p', message: { text: 'hi' } });
    await waitForMessage(ana, 'hi', 'ben-p');
    assert.equal(await ana.evaluate(() => globalThis.asked), 0);
    await ana.getByRole('textbox', { name: 'Message', exact: true }).click();
    assert.equal(await ana.evaluate(() => globalThis.asked), 1);
    await say(ana, 'typing and clicking again');
    await ana.getByRole('textbox', { name: 'Message', exact: true }).click();
    assert.equal(await ana.evaluate(() => globalThis.asked), 1, 'asked once only');
    assert.deepEqual(ana.problems, []);
    ben.terminate();
    await ana.context().close();
});
