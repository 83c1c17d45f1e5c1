// Starts the real tertulia binary for the browser tests, on a free loopback
// port (or a given one, to restart "the same" server), and stops it again.

import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

export const TERTULIA_BIN = process.env.TERTULIA_BIN || path.join(ROOT, 'build/tertulia');

/**
 * Runs `tertulia --listen 127.0.0.1:<port>` (port 0: a free one) and
 * resolves once it logs "listening on 127.0.0.1:PORT". Extra `args` go
 * after. The returned object has `port`, `url` (http://127.0.0.1:PORT/),
 * `dataDir`, `log()` (stderr so far), `stop(signal)` (resolves with the exit
 * status) and `dispose()`.
 */
export async function startServer({ port = 0, args = [], dataDir } = {}) {
    if (!fs.existsSync(TERTULIA_BIN)) throw new Error(`no server binary at ${TERTULIA_BIN} (set TERTULIA_BIN)`);
    // The server runs in its own working directory, so whatever it writes
    // there (a database) is this run's alone; pass `dataDir` to restart a
    // server on the data of a previous one.
    const ownDir = !dataDir;
    const dir = dataDir || fs.mkdtempSync(path.join(os.tmpdir(), 'tertulia-e2e-'));
    const argv = ['--listen', `127.0.0.1:${port}`, '--log-level', 'info', ...args];
    const proc = spawn(TERTULIA_BIN, argv, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    let exited = null;
    const exit = new Promise((resolve) => proc.on('exit', (code, signal) => { exited = { code, signal }; resolve(exited); }));
    const listening = new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`server did not start within 10 s:\n${stderr}`)), 10000);
        proc.stderr.setEncoding('utf8');
        proc.stderr.on('data', (chunk) => {
            stderr += chunk;
            const m = stderr.match(/listening on 127\.0\.0\.1:(\d+)/);
            if (m) {
                clearTimeout(timer);
                resolve(Number(m[1]));
            }
        });
        exit.then(({ code, signal }) => {
            clearTimeout(timer);
            reject(new Error(`server exited (${code ?? signal}) before listening:\n${stderr}`));
        });
    });
    const actualPort = await listening;
    return {
        port: actualPort,
        url: `http://127.0.0.1:${actualPort}/`,
        dataDir: dir,
        proc,
        log: () => stderr,
        /** Sends `signal` and waits for the exit (SIGKILL after 5 s). */
        async stop(signal = 'SIGTERM') {
            if (exited) return exited;
            proc.kill(signal);
            const timer = setTimeout(() => { if (!exited) proc.kill('SIGKILL'); }, 5000);
            const result = await exit;
            clearTimeout(timer);
            return result;
        },
        /** Stops the server and removes the directory it was started in, if startServer made it. */
        async dispose() {
            const result = await this.stop();
            if (ownDir) fs.rmSync(dir, { recursive: true, force: true });
            return result;
        },
    };
}
