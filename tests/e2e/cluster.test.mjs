// The web client on a cluster of two nodes over one Redis: the original's
// four-tab demo with its tabs spread over both nodes, and a node lost
// (kill -9) under two of them: their pages reconnect through the "load
// balancer" (a relay that now points at the other node), resume as the
// same guests, rejoin, and show what was said meanwhile, once.
// Skipped, saying why, when the binary has no --redis.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer } from './server.mjs';
import { startProxy } from './proxy.mjs';
import { launchBrowser, joinAs, say, messages, waitForMessage, memberNames, until } from './browser.mjs';
import { clusterMissing, startRedis } from '../integration/redis.mjs';

const SKIP = clusterMissing();
const browser = SKIP ? null : await launchBrowser();
const cleanups = [];

after(async () => {
    for (const fn of cleanups.reverse()) await fn();
    if (browser) await browser.close();
});

const FAST = { config: { timing: { backoffBaseMs: 200, backoffCapMs: 1000 } } };

async function node(redis, name) {
    const s = await startServer({ args: ['--redis', redis.url, '--node', name, '--rate-limit', '0'] });
    cleanups.push(() => s.dispose());
    await until(async () => (await fetch(`${s.url}readyz`)).status === 200, { timeout: 15000, what: `${name} ready` });
    return s;
}

const connText = (page) => page.locator('#conn-text').textContent();

test("the four-tab demo over two nodes, then one node lost: its pages resume on the other with nothing missing", { skip: SKIP ?? false, timeout: 120000 }, async () => {
    const redis = await startRedis();
    cleanups.push(() => redis.stop());
    const a = await node(redis, 'a');
    const b = await node(redis, 'b');
    const lb = await startProxy(a.port); // ana's and carla's way in: node a, for now
    cleanups.push(() => lb.close());

    const ana = await joinAs(browser, lb.url, 'ana', 'python-dev', FAST);
    const bruno = await joinAs(browser, b.url, 'bruno', 'python-dev');
    const carla = await joinAs(browser, lb.url, 'carla', 'swift-dev', FAST);
    const dario = await joinAs(browser, b.url, 'dario', 'swift-dev');
    await until(async () => (await memberNames(ana)).length === 2 && (await memberNames(carla)).length === 2,
        { what: 'each room lists its member on the other node' });
    assert.deepEqual((await memberNames(ana)).sort(), ['ana', 'bruno']);
    assert.deepEqual((await memberNames(dario)).sort(), ['carla', 'dario']);

    await say(ana, 'hola from node a');
    await say(dario, 'hello from node b');
    await waitForMessage(bruno, 'hola from node a', 'ana');
    await waitForMessage(carla, 'hello from node b', 'dario');
    await say(bruno, 'hola from node b');
    await say(carla, 'hello from node a');
    await waitForMessage(ana, 'hola from node b', 'bruno');
    await waitForMessage(dario, 'hello from node a', 'carla');

    // Node a dies; the balancer sends new connections to node b.
    await a.stop('SIGKILL');
    lb.retarget(b.port);
    lb.dropAll();
    await say(bruno, 'said while node a was gone');
    await say(dario, 'also said while node a was gone');
    for (const page of [ana, carla])
        await until(async () => (await connText(page)) === 'Connected', { timeout: 20000, what: 'connected again' });
    await waitForMessage(ana, 'said while node a was gone', 'bruno', 20000);
    await waitForMessage(carla, 'also said while node a was gone', 'dario', 20000);
    await say(ana, 'back, on node b');
    await waitForMessage(bruno, 'back, on node b', 'ana');

    const expect = {
        ana: ['hola from node a', 'hola from node b', 'said while node a was gone', 'back, on node b'],
        bruno: ['hola from node a', 'hola from node b', 'said while node a was gone', 'back, on node b'],
        carla: ['hello from node b', 'hello from node a', 'also said while node a was gone'],
        dario: ['hello from node b', 'hello from node a', 'also said while node a was gone'],
    };
    for (const [name, page] of Object.entries({ ana, bruno, carla, dario })) {
        const list = await messages(page);
        assert.deepEqual(list.map((m) => m.text), expect[name], `${name}: each message once, in one order, nothing of the other room`);
        const ids = list.map((m) => m.id);
        assert.equal(new Set(ids).size, ids.length);
    }
    assert.deepEqual((await memberNames(ana)).sort(), ['ana', 'bruno']);
    for (const page of [ana, bruno, carla, dario]) {
        assert.deepEqual(page.problems, []);
        await page.context().close();
    }
});
