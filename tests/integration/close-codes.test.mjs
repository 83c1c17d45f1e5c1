// A close the client starts is not a refusal of ours: whatever its code
// (4000 included), the server echoes it and logs nothing at info. Only
// closes the server decides (1008, 1009, ...) are logged as refusals.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { httpOnce, login, sleep, startServer, uniq } from './helpers.mjs';

let server;
before(async () => {
    server = await startServer(['--db', ':memory:']);
});
after(async () => {
    await server?.stopClean();
});

async function waitLog(re, ms = 5000) {
    const end = Date.now() + ms;
    while (!re.test(server.stderr)) {
        if (Date.now() > end) assert.match(server.stderr, re);
        await sleep(20);
    }
}

test('a client closing with 4000 gets its code back and is not logged as refused', async () => {
    const c = await login(server, uniq('c4k'));
    const closed = await c.close(4000, 'bye now');
    assert.equal(closed.code, 4000, JSON.stringify(closed));
    // A refusal the server does log, after the close: once it is in the
    // log, anything the close logged would be there before it.
    const marker = uniq('marker');
    const res = await httpOnce(server, `get /${marker} HTTP/1.1\r\n\r\n`);
    assert.equal(res.status, 400);
    await waitLog(/refused with 400/);
    assert.doesNotMatch(server.stderr, /closing with 4000/);
});
