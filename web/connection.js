// One WebSocket that keeps itself alive: it reconnects with exponential
// backoff and jitter after every close, and sends an app-level `ping` when
// the line has been quiet, because browsers cannot send WebSocket pings and a
// dead TCP connection (a sleeping laptop, a dropped Wi-Fi) may never report a
// close. It knows nothing of the chat protocol beyond `ping`; the session
// (session.js) decides when to log in and when to give up.

export const DEFAULT_TIMING = Object.freeze({
    backoffBaseMs: 500,   // the first retry waits 250–500 ms
    backoffCapMs: 15000,  // and no retry waits more than 15 s
    connectTimeoutMs: 10000,
    pingIdleMs: 20000,    // ping after this long without hearing anything
    pongTimeoutMs: 10000, // and call the line dead if nothing comes back
});

/**
 * The wait before retry number `attempt` (0-based): the exponential step
 * min(cap, base·2^attempt), "equal jitter" — half fixed, half random — so a
 * crowd of clients cut off by one server restart does not come back in step.
 */
export function backoffDelay(attempt, { backoffBaseMs, backoffCapMs }, random = Math.random) {
    const step = Math.min(backoffCapMs, backoffBaseMs * 2 ** Math.min(attempt, 30));
    return Math.round(step / 2 + random() * (step / 2));
}

/**
 * Events: `open`; `message` (detail: the parsed JSON object); `close`
 * (detail: {code, reason, wasOpen}); `waiting` (detail: {attempt, delayMs,
 * retryAt}) before every automatic retry.
 */
export class Connection extends EventTarget {
    #url;
    #protocols;
    #WebSocket;
    #timing;
    #random;
    #ws = null;
    #running = false;
    #attempt = 0;
    #retryTimer = null;
    #connectTimer = null;
    #pingTimer = null;
    #lastHeard = 0;
    #pingSentAt = 0;

    constructor({ url, protocols = [], WebSocketImpl = globalThis.WebSocket, timing = {}, random = Math.random }) {
        super();
        this.#url = url;
        this.#protocols = protocols;
        this.#WebSocket = WebSocketImpl;
        this.#timing = { ...DEFAULT_TIMING, ...timing };
        this.#random = random;
    }

    /** True while a socket is open and usable. */
    get isOpen() {
        return this.#ws !== null && this.#ws.readyState === 1;
    }

    /** Starts connecting, and keeps reconnecting until stop(). */
    start() {
        if (this.#running) return;
        this.#running = true;
        this.#attempt = 0;
        this.#connect();
    }

    /** Closes the socket and cancels every retry. */
    stop(code = 1000, reason = 'bye') {
        this.#running = false;
        this.#clearRetry();
        this.#drop(code, reason, false);
    }

    /** After a successful login: the next outage starts again from a short wait. */
    resetBackoff() {
        this.#attempt = 0;
    }

    /** Skips the current wait (the person pressed "Retry now", or the network came back). */
    retryNow() {
        if (!this.#running || this.#ws !== null) return;
        this.#clearRetry();
        this.#connect();
    }

    /** Drops the current socket and reconnects after the usual backoff. */
    restart(reason) {
        if (!this.#running) return;
        this.#drop(4000, reason, true);
    }

    /** Sends one JSON message; false when there is no open socket. */
    send(obj) {
        if (!this.isOpen) return false;
        this.#ws.send(JSON.stringify(obj));
        return true;
    }

    #connect() {
        let ws;
        try {
            ws = new this.#WebSocket(this.#url, this.#protocols);
        } catch (err) {
            // A malformed URL throws synchronously; nothing to retry.
            this.#running = false;
            this.dispatchEvent(new CustomEvent('close', { detail: { code: 1006, reason: String(err), wasOpen: false } }));
            return;
        }
        this.#ws = ws;
        let wasOpen = false;
        this.#connectTimer = setTimeout(() => this.#drop(4001, 'connect timeout', true), this.#timing.connectTimeoutMs);
        ws.onopen = () => {
            clearTimeout(this.#connectTimer);
            wasOpen = true;
            this.#lastHeard = Date.now();
            this.#pingSentAt = 0;
            this.#armPing();
            this.dispatchEvent(new Event('open'));
        };
        ws.onmessage = (ev) => {
            this.#lastHeard = Date.now();
            this.#pingSentAt = 0;
            if (typeof ev.data !== 'string') return;
            let msg;
            try {
                msg = JSON.parse(ev.data);
            } catch {
                return; // the server only sends JSON; anything else is noise
            }
            if (msg === null || typeof msg !== 'object' || typeof msg.type !== 'string') return;
            if (msg.type === 'pong') return;
            this.dispatchEvent(new CustomEvent('message', { detail: msg }));
        };
        ws.onclose = (ev) => {
            if (this.#ws !== ws) return;
            this.#ws = null;
            this.#afterClose(ev.code, ev.reason, wasOpen);
        };
        ws.onerror = () => {
            // Always followed by `close`, which does the work.
        };
    }

    /**
     * Forgets the current socket at once (without waiting for a close
     * handshake that a dead line would never finish), then reports the close.
     */
    #drop(code, reason, retry) {
        const ws = this.#ws;
        if (ws === null) return;
        this.#ws = null;
        const wasOpen = ws.readyState === 1;
        ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
        try {
            ws.close(code >= 4000 || code === 1000 ? code : 1000, reason);
        } catch {
            // Closing a socket that never opened can throw in some engines.
        }
        if (retry) this.#afterClose(code, reason, wasOpen);
        else this.#clearTimers();
    }

    #afterClose(code, reason, wasOpen) {
        this.#clearTimers();
        this.dispatchEvent(new CustomEvent('close', { detail: { code, reason, wasOpen } }));
        if (!this.#running) return;
        const delayMs = backoffDelay(this.#attempt, this.#timing, this.#random);
        this.#attempt += 1;
        const retryAt = Date.now() + delayMs;
        this.dispatchEvent(new CustomEvent('waiting', { detail: { attempt: this.#attempt, delayMs, retryAt } }));
        this.#retryTimer = setTimeout(() => {
            this.#retryTimer = null;
            if (this.#running && this.#ws === null) this.#connect();
        }, delayMs);
    }

    #armPing() {
        const { pingIdleMs, pongTimeoutMs } = this.#timing;
        const tick = Math.max(50, Math.min(pingIdleMs, pongTimeoutMs) / 4);
        this.#pingTimer = setInterval(() => {
            const now = Date.now();
            if (this.#pingSentAt !== 0) {
                if (now - this.#pingSentAt >= pongTimeoutMs) this.#drop(4002, 'no reply to ping', true);
            } else if (now - this.#lastHeard >= pingIdleMs) {
                this.#pingSentAt = now;
                this.send({ type: 'ping' });
            }
        }, tick);
    }

    #clearRetry() {
        clearTimeout(this.#retryTimer);
        this.#retryTimer = null;
    }

    #clearTimers() {
        clearTimeout(this.#connectTimer);
        clearInterval(this.#pingTimer);
        this.#connectTimer = null;
        this.#pingTimer = null;
        this.#pingSentAt = 0;
    }
}
