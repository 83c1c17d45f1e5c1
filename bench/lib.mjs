// Shared by the Node benchmarks (logins.mjs, fanout-mixed.mjs, massclose.mjs): binaries
// named on the command line, bounded waits, a server's CPU time, and starting one.
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';

/** `NAME=PATH` (or a bare path) into {name, path}. */
export function parseBins(list) {
    return list.map((b) => {
        const i = b.indexOf('=');
        return i > 0 ? { name: b.slice(0, i), path: b.slice(i + 1) } : { name: b, path: b };
    });
}

/** promise, or a failure after ms (the timer never outlives the wait). */
export function bounded(promise, what, ms = 120000) {
    let t;
    return Promise.race([
        promise,
        new Promise((_, rej) => { t = setTimeout(() => rej(new Error(`${what}: no answer in ${ms} ms`)), ms); }),
    ]).finally(() => clearTimeout(t));
}

// CPU time of every thread of pid (the loop, the store worker, the password workers), in
// seconds, from the scheduler's nanosecond counters (utime/stime in /proc/PID/stat tick at
// 10 ms: too coarse).
export function cpuSeconds(pid) {
    let ns = 0;
    for (const t of readdirSync(`/proc/${pid}/task`)) {
        try {
            ns += Number(readFileSync(`/proc/${pid}/task/${t}/schedstat`, 'utf8').split(' ')[0]);
        } catch {
            // a thread that ended between the listing and the read
        }
    }
    return ns / 1e9;
}

/** Starts bin on a free loopback port with args; resolves {proc, port} once it says where. */
export function startTertulia(bin, args) {
    const proc = spawn(bin, ['--listen', '127.0.0.1:0', '--log-level', 'warn', ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    return bounded(new Promise((res, rej) => {
        proc.stderr.on('data', (d) => {
            err += d;
            const m = /open http:\/\/127\.0\.0\.1:(\d+)\//.exec(err);
            if (m) res({ proc, port: Number(m[1]) });
        });
        proc.on('exit', (c) => rej(new Error(`server exited ${c}: ${err}`)));
    }), 'server start', 60000);
}
