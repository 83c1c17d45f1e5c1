// A TCP relay between the browser and the server that the tests can break
// on purpose: cut every connection (a network drop), refuse new ones (the
// network still down), or stop relaying while keeping the sockets open (a
// dead line no one reports — what the client's app-level ping is for).

import net from 'node:net';

export async function startProxy(targetPort) {
    let target = targetPort; // retarget(): a load balancer moving to another server
    const pairs = new Set();
    let mode = 'pass'; // 'pass' | 'refuse'
    const server = net.createServer((client) => {
        if (mode === 'refuse') {
            client.destroy();
            return;
        }
        const upstream = net.connect(target, '127.0.0.1');
        const pair = { client, upstream, frozen: false };
        pairs.add(pair);
        const relay = (from, to) => from.on('data', (chunk) => { if (!pair.frozen) to.write(chunk); });
        relay(client, upstream);
        relay(upstream, client);
        const end = () => {
            pairs.delete(pair);
            client.destroy();
            upstream.destroy();
        };
        client.on('close', end);
        upstream.on('close', end);
        client.on('error', end);
        upstream.on('error', end);
    });
    await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = server.address().port;
    return {
        port,
        url: `http://127.0.0.1:${port}/`,
        get connections() { return pairs.size; },
        /** Resets every relayed connection, as a network drop would. */
        dropAll() {
            for (const { client, upstream } of [...pairs]) {
                client.resetAndDestroy();
                upstream.destroy();
            }
        },
        /** New connections are refused (closed at once) until pass(). */
        refuse() { mode = 'refuse'; },
        /** New connections go to this port from now on (open ones stay). */
        retarget(port) { target = port; },
        pass() { mode = 'pass'; },
        /**
         * Stops relaying on every open connection but keeps both sockets
         * open: neither side sees a close. Returns a function that cuts the
         * frozen connections' server side, as the server's own timeout would.
         */
        freezeAll() {
            const frozen = [...pairs];
            for (const p of frozen) p.frozen = true;
            return () => { for (const p of frozen) p.upstream.destroy(); };
        },
        close() {
            for (const { client, upstream } of [...pairs]) {
                client.destroy();
                upstream.destroy();
            }
            return new Promise((resolve) => server.close(resolve));
        },
    };
}
