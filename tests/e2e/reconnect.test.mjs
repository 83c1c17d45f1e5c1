// The client's connection handling against the real server: a restart of
// the server, a network drop with messages missed meanwhile, and a line that
// goes silent without closing (found by the app-level ping).

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer } from './server.mjs';
import { startProxy } from './proxy.mjs';
import { launchBrowser, joinAs, say, messages, waitForMessage, memberNames, until, activeLog } from './browser.mjs';

const browser = await launchBrowser();
const cleanups = [];

after(async () => {
    for (const fn of cleanups.reverse()) await fn();
    await browser.close();
});

const connText = (page) => page.locator('#conn-text').textContent();

/** Waits for the connection status to read `text`. */
function statusIs(page, text, timeout = 15000) {
    return until(async () => (await connText(page)) === text, { timeout, what: `status "${text}"` });
}

function assertNoDuplicates(list) {
    const ids = list.filter((m) => m.id !== null).map((m) => m.id);
    assert.equal(new Set(ids).size, ids.length, `no message twice: ${JSON.stringify(list.map((m) => m.text))}`);
}

test('after a server restart on the same port both pages reconnect, rejoin and chat again', async () => {
    const first = await startServer();
    let current = first;
    cleanups.push(() => first.dispose());
    cleanups.push(() => current.stop());
    const ana = await joinAs(browser, first.url, 'ana', 'python-dev');
    const bruno = await joinAs(browser, first.url, 'bruno', 'python-dev');
    await say(ana, 'before the restart');
    await waitForMessage(bruno, 'before the restart', 'ana');
    await statusIs(ana, 'Connected');

    await first.stop();
    await Promise.all([statusIs(ana, 'Reconnecting…'), statusIs(bruno, 'Reconnecting…')]);
    for (const page of [ana, bruno]) {
        assert.match(await page.locator('#banner-text').textContent(), /Connection lost/);
        assert.equal(await page.getByRole('button', { name: 'Send' }).isDisabled(), true);
    }
    await ana.waitForTimeout(1000); // a few failed attempts against the closed port

    // The same port and the same working directory, as a real restart.
    current = await startServer({ port: first.port, dataDir: first.dataDir });
    assert.equal(current.port, first.port);
    await Promise.all([statusIs(ana, 'Connected', 20000), statusIs(bruno, 'Connected', 20000)]);
    // Both are back in the room, with each other in the member list.
    await until(async () => (await memberNames(ana)).length === 2 && (await memberNames(bruno)).length === 2,
        { what: 'both members again' });
    assert.deepEqual(await memberNames(ana), ['ana', 'bruno']);

    await say(bruno, 'after the restart');
    await waitForMessage(ana, 'after the restart', 'bruno');
    await say(ana, 'and back');
    await waitForMessage(bruno, 'and back', 'ana');
    for (const page of [ana, bruno]) {
        // Exactly these, once each. (A server that lost its history counts
        // ids from 1 again, so ids alone cannot tell old from new here.)
        const list = await messages(page);
        assert.deepEqual(list.map((m) => m.text), ['before the restart', 'after the restart', 'and back']);
        assert.deepEqual(page.problems, []);
    }
    await ana.context().close();
    await bruno.context().close();
});

test('messages sent during a network drop are recovered once, without duplicates', async () => {
    const server = await startServer();
    cleanups.push(() => server.dispose());
    const proxy = await startProxy(server.port);
    cleanups.push(() => proxy.close());
    // Carla's browser goes through the breakable relay; a short backoff keeps the test quick.
    const carla = await joinAs(browser, proxy.url, 'carla', 'sala', { config: { timing: { backoffBaseMs: 200, backoffCapMs: 1000 } } });
    const diego = await joinAs(browser, server.url, 'diego', 'sala');
    await say(diego, 'one');
    await say(carla, 'two');
    await waitForMessage(carla, 'two', 'carla');
    await waitForMessage(carla, 'one', 'diego');

    proxy.refuse();
    proxy.dropAll();
    await statusIs(carla, 'Reconnecting…');
    // Within the grace time carla is still a member: diego sees no
    // "disconnected", and no "joined" when she is back (checked below).
    await say(diego, 'three (while carla was away)');
    await say(diego, 'four (while carla was away)');
    await waitForMessage(diego, 'four (while carla was away)');
    // Typed while offline: kept in the box, not lost, not sent.
    await carla.getByRole('textbox', { name: 'Message', exact: true }).fill('draft kept');
    assert.equal(await carla.getByRole('button', { name: 'Send' }).isDisabled(), true);

    proxy.pass();
    await statusIs(carla, 'Connected');
    await waitForMessage(carla, 'four (while carla was away)', 'diego');
    assert.equal(await carla.getByRole('textbox', { name: 'Message', exact: true }).inputValue(), 'draft kept');
    await carla.getByRole('button', { name: 'Send' }).click();
    await waitForMessage(diego, 'draft kept', 'carla');
    await waitForMessage(carla, 'draft kept', 'carla');
    const list = await messages(carla);
    assert.deepEqual(list.map((m) => m.text),
        ['one', 'two', 'three (while carla was away)', 'four (while carla was away)', 'draft kept']);
    assertNoDuplicates(list);
    assert.deepEqual(await memberNames(carla), ['carla', 'diego']);
    assert.equal(await activeLog(diego).getByText(/carla (disconnected|joined|timed out)/).count(), 0,
        'no presence noise from a reconnect');
    assert.deepEqual(carla.problems, []);
    await carla.context().close();
    await diego.context().close();
});

test('a line that goes silent without closing is noticed by the ping and replaced', async () => {
    const server = await startServer();
    cleanups.push(() => server.dispose());
    const proxy = await startProxy(server.port);
    cleanups.push(() => proxy.close());
    const timing = { pingIdleMs: 1000, pongTimeoutMs: 1500, backoffBaseMs: 200, backoffCapMs: 1000 };
    const elena = await joinAs(browser, proxy.url, 'elena', 'sala-ping', { config: { timing } });
    const fede = await joinAs(browser, server.url, 'fede', 'sala-ping');
    await say(fede, 'hello elena');
    await waitForMessage(elena, 'hello elena', 'fede');

    const cutServerSide = proxy.freezeAll();
    await say(fede, 'sent into the void');
    // Nothing closed, yet within ping + pong timeout she is told the truth.
    await statusIs(elena, 'Reconnecting…', 6000);
    // The server still holds her old connection (and nickname) until its own
    // ping times out; cutting it stands in for that timeout.
    cutServerSide();
    await statusIs(elena, 'Connected', 15000);
    await waitForMessage(elena, 'sent into the void', 'fede');
    await say(elena, 'back again');
    await waitForMessage(fede, 'back again', 'elena');
    assertNoDuplicates(await messages(elena));
    assert.deepEqual((await messages(elena)).map((m) => m.text), ['hello elena', 'sent into the void', 'back again']);
    await elena.context().close();
    await fede.context().close();
});
