// Sending when it does not simply work: flood control holding messages
// back (the notice in seconds, the held ones going by themselves, in
// order), a refused message (failed, with the reason and a retry, not
// "sending…" for ever), leaving the last room (an empty state with a join
// box), and the toast on a phone (above the message box, not over it).

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer } from './server.mjs';
import { launchBrowser, joinAs, say, waitForMessage, messages, activeLog, until, screenshot, PHONE } from './browser.mjs';

const browser = await launchBrowser();
const cleanups = [];
after(async () => {
    for (const c of cleanups.reverse()) await c();
    await browser.close();
});

async function server(args = []) {
    const s = await startServer({ args });
    cleanups.push(() => s.dispose());
    return s;
}

test('messages flood control refuses wait, say so in seconds, and go by themselves in order', async () => {
    // Two messages at once, then one a second.
    const s = await server(['--rate-burst', '2', '--rate-limit', '1']);
    const ana = await joinAs(browser, s.url, 'ana-r', 'sala-rate');
    const ben = await joinAs(browser, s.url, 'ben-r', 'sala-rate');
    const texts = ['one', 'two', 'three', 'four', 'five'];
    for (const t of texts) await say(ana, t);
    // Held: a note in seconds on the message, never milliseconds.
    const held = activeLog(ana).locator('li.msg .note.held');
    await held.first().waitFor();
    const note = await held.first().textContent();
    assert.match(note, /^Sending too fast: wait \d+ s\. It goes by itself\.$/);
    const toast = await ana.locator('#toast').textContent();
    assert.match(toast, /wait \d+ s\b/);
    assert.doesNotMatch(`${note} ${toast}`, /\bms\b/);

    await waitForMessage(ben, 'five', 'ana-r', 20000);
    assert.deepEqual((await messages(ben)).map((m) => m.text), texts, 'all of them, in order');
    await until(async () => (await messages(ana)).every((m) => !m.pending && !m.failed && m.id !== null), { what: 'all confirmed in ana’s page', timeout: 15000 });
    assert.deepEqual((await messages(ana)).map((m) => m.text), texts);
    assert.equal(await activeLog(ana).locator('.note').count(), 0);
    assert.deepEqual(ana.problems, []);
    await ana.context().close();
    await ben.context().close();
});

test('a refused message shows failed with the reason and a retry, not "sending…"', async () => {
    const s = await server();
    const ana = await joinAs(browser, s.url, 'ana-x', 'sala-fail');
    await say(ana, '/msg nobody-here are you there?');
    await ana.getByRole('heading', { name: 'nobody-here' }).waitFor();
    const li = activeLog(ana).locator('li.msg.failed');
    await li.waitFor();
    assert.equal(await li.locator('time').textContent(), 'not sent');
    assert.match(await li.locator('.note').textContent(), /Not delivered: nobody-here is not online\./);
    assert.equal(await activeLog(ana).getByText('sending…').count(), 0);
    // Try again: sent again, refused again (still nobody there), one copy shown.
    await li.getByRole('button', { name: 'Try again' }).click();
    await until(async () => (await messages(ana)).length === 1 && (await messages(ana))[0].failed, { what: 'failed again, once' });
    assert.deepEqual(ana.problems, []);
    await ana.context().close();
});

test('leaving the last room shows an empty state with a join box', async () => {
    const s = await server();
    for (const viewport of [undefined, PHONE]) {
        const ana = await joinAs(browser, s.url, viewport ? 'ana-ep' : 'ana-e', 'sala-last', viewport ? { viewport } : undefined);
        await ana.getByRole('button', { name: 'Leave sala-last' }).click();
        const empty = ana.locator('#empty-pane');
        await empty.waitFor({ state: 'visible' });
        assert.equal(await ana.locator('#composer').isVisible(), false);
        const input = ana.getByRole('textbox', { name: 'Join a room by its name' });
        assert.equal(await input.isVisible(), true);
        // It fills the conversation column, and that reaches the right edge: no empty strip.
        const pane = await empty.boundingBox();
        const panes = await ana.locator('#panes').boundingBox();
        assert.ok(pane.height >= panes.height - 1 && pane.width >= panes.width - 1, JSON.stringify({ pane, panes }));
        const main = await ana.locator('#conversation').boundingBox();
        const width = await ana.evaluate(() => document.documentElement.clientWidth);
        assert.ok(main.x + main.width >= width - 1, `the conversation column ends at ${main.x + main.width} of ${width}`);
        assert.equal(await ana.getByRole('button', { name: 'People' }).isVisible(), false, 'no people to show');
        await screenshot(ana, viewport ? 'empty-state-phone.png' : 'empty-state.png');
        await input.fill('bad name');
        await input.press('Enter');
        assert.match(await ana.locator('#empty-join-error').textContent(), /spaces/);
        await input.fill('sala-again');
        await input.press('Enter');
        await ana.getByRole('heading', { name: 'sala-again' }).waitFor();
        assert.equal(await empty.isVisible(), false);
        assert.deepEqual(ana.problems, []);
        await ana.context().close();
    }
});

test('on a phone the toast does not cover the message box', async () => {
    const s = await server();
    const ana = await joinAs(browser, s.url, 'ana-t', 'sala-toast', { viewport: PHONE });
    await ana.getByRole('button', { name: 'Mute this room' }).click();
    const toast = ana.locator('#toast');
    await toast.waitFor({ state: 'visible' });
    const t = await toast.boundingBox();
    const c = await ana.locator('#composer').boundingBox();
    assert.ok(t.y + t.height <= c.y, `toast ${JSON.stringify(t)} above the composer ${JSON.stringify(c)}`);
    const head = await ana.locator('.conv-head').boundingBox();
    assert.ok(t.y >= head.y + head.height - 1, 'below the header, whose buttons stay usable');
    await screenshot(ana, 'toast-phone.png');
    assert.deepEqual(ana.problems, []);
    await ana.context().close();
});
