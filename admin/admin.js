// tertulia's admin page: signs in with the admin token (kept in this tab's
// sessionStorage only), polls the admin API under ./api/ and draws what it
// answers: live charts of the last 120 samples, the rooms and the
// WebSocket connections (each can be closed), and the log level.
// Text from the server goes into the page with textContent only.

const TOKEN_KEY = 'tertulia-admin-token';
const SAMPLES = 120;
const STATS_EVERY_MS = 1000;
const TABLES_EVERY_MS = 2000;
const CONFIRM_FOR_MS = 5000;
const SVG_NS = 'http://www.w3.org/2000/svg';

const $ = (id) => document.getElementById(id);

// ------------------------------------------------------------------ formats

const int = (n) => Math.round(n).toLocaleString('en-US');

function bytes(n) {
    if (n < 1024) return `${int(n)} B`;
    const units = ['KiB', 'MiB', 'GiB', 'TiB'];
    let v = n / 1024;
    let i = 0;
    while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
    return `${v.toFixed(v < 10 ? 2 : 1)} ${units[i]}`;
}

function duration(s) {
    s = Math.max(0, Math.floor(s));
    if (s < 60) return `${s} s`;
    if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
    if (s < 86400) return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
    return `${Math.floor(s / 86400)} d ${Math.floor((s % 86400) / 3600)} h`;
}

/** A short number for an axis label: 1.5k, 2M, 0.25. */
function short(n) {
    if (n >= 1e6) return `${+(n / 1e6).toFixed(1)}M`;
    if (n >= 1e3) return `${+(n / 1e3).toFixed(1)}k`;
    if (n >= 10 || n === 0) return `${+n.toFixed(0)}`;
    return `${+n.toPrecision(2)}`;
}

function micros(us) {
    if (us < 1000) return `${us.toFixed(us < 10 ? 1 : 0)} µs`;
    return `${(us / 1000).toFixed(2)} ms`;
}

const rate = (r) => (r < 10 ? r.toFixed(1) : int(r));

// ------------------------------------------------------------------- status

function showStatus(text, kind = 'info') {
    const el = $('status');
    el.textContent = text;
    el.dataset.kind = kind;
}

let failing = false;

function noteFailure(err) {
    failing = true;
    showStatus(err.message, 'error');
}

function noteSuccess() {
    if (!failing) return;
    failing = false;
    showStatus('Back in touch with the server.', 'ok');
}

// ---------------------------------------------------------------------- API

class AuthError extends Error {}

let token = sessionStorage.getItem(TOKEN_KEY);

/** Calls the admin API; resolves with the JSON body of a 2xx answer. */
async function api(path, { method = 'GET' } = {}) {
    const current = token;
    let res;
    try {
        res = await fetch(path, {
            method,
            cache: 'no-store',
            headers: { Authorization: `Bearer ${current}`, Accept: 'application/json' },
        });
    } catch (err) {
        throw new Error(`Cannot reach the server (${err.message}).`);
    }
    let body = null;
    try {
        body = await res.json();
    } catch {
        // not JSON: reported below by status
    }
    if (res.status === 401 || res.status === 403) {
        throw new AuthError(body?.message || (res.status === 401 ? 'A token is needed.' : 'That token is not accepted.'));
    }
    if (!res.ok) {
        const err = new Error(`${method} ${path}: ${res.status} ${body?.message || res.statusText || 'error'}`);
        err.status = res.status;
        throw err;
    }
    return body;
}

// ------------------------------------------------------------------- charts

/**
 * One live chart: a figure holding an <svg> (drawn again on every sample,
 * at the figure's size, so text is never stretched) and a .value element
 * with the latest value as text (and as data-value, unformatted).
 */
class Chart {
    constructor(figure, format, { minMax = 1, axis = short } = {}) {
        this.figure = figure;
        this.format = format;
        this.axis = axis;
        this.minMax = minMax;
        this.samples = [];
        this.valueEl = figure.querySelector('.value');
        this.svg = document.createElementNS(SVG_NS, 'svg');
        this.svg.setAttribute('role', 'img');
        this.svg.setAttribute('aria-label', `${figure.querySelector('.chart-title').textContent}, last ${SAMPLES} seconds`);
        figure.append(this.svg);
    }

    reset() {
        this.samples = [];
        this.valueEl.textContent = '—';
        delete this.valueEl.dataset.value;
        this.draw();
    }

    /** Adds a sample; null is a gap (nothing to measure in that interval). */
    push(v) {
        this.samples.push(v);
        if (this.samples.length > SAMPLES) this.samples.shift();
        if (v === null) {
            this.valueEl.textContent = '—';
            delete this.valueEl.dataset.value;
        } else {
            this.valueEl.textContent = this.format(v);
            this.valueEl.dataset.value = String(v);
        }
        this.draw();
    }

    draw() {
        const svg = this.svg;
        const w = Math.max(120, Math.round(svg.clientWidth || 300));
        const h = Math.max(60, Math.round(svg.clientHeight || 120));
        svg.setAttribute('viewBox', `0 0 ${w} ${h}`);
        svg.replaceChildren();
        const left = 46;
        const right = 6;
        const top = 8;
        const bottom = 18;
        const pw = w - left - right;
        const ph = h - top - bottom;
        const max = niceCeil(Math.max(this.minMax, ...this.samples.filter((v) => v !== null)));
        const el = (name, attrs, text) => {
            const e = document.createElementNS(SVG_NS, name);
            for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
            if (text !== undefined) e.textContent = text;
            svg.append(e);
            return e;
        };
        // Horizontal grid lines with their values, and the time axis.
        for (const f of [0, 0.5, 1]) {
            const y = top + ph - f * ph;
            el('line', { x1: left, x2: left + pw, y1: y, y2: y, class: f === 0 ? 'axis' : 'grid' });
            el('text', { x: left - 5, y: y + 4, class: 'label', 'text-anchor': 'end' }, this.axis(max * f));
        }
        for (const [f, label] of [[0, `−${SAMPLES} s`], [0.5, `−${SAMPLES / 2} s`], [1, 'now']]) {
            el('text', { x: left + f * pw, y: h - 4, class: 'label', 'text-anchor': f === 0 ? 'start' : f === 1 ? 'end' : 'middle' }, label);
        }
        // The series, right-aligned (the newest sample at "now"); a null
        // sample breaks the line.
        const step = pw / (SAMPLES - 1);
        const x0 = left + (SAMPLES - this.samples.length) * step;
        let d = '';
        let area = '';
        let run = [];
        const dots = []; // a sample alone between gaps: a dot, as a line of one point draws nothing
        const flush = () => {
            if (run.length === 0) return;
            if (run.length === 1) dots.push(run[0]);
            d += `M${run.map(([x, y]) => `${x.toFixed(1)},${y.toFixed(1)}`).join('L')}`;
            const base = (top + ph).toFixed(1);
            area += `M${run[0][0].toFixed(1)},${base}L${run.map(([x, y]) => `${x.toFixed(1)},${y.toFixed(1)}`).join('L')}L${run[run.length - 1][0].toFixed(1)},${base}Z`;
            run = [];
        };
        this.samples.forEach((v, i) => {
            if (v === null) { flush(); return; }
            run.push([x0 + i * step, top + ph - (Math.min(v, max) / max) * ph]);
        });
        flush();
        if (area) el('path', { d: area, class: 'area' });
        if (d) el('path', { d, class: 'line' });
        for (const [x, y] of dots) el('circle', { cx: x.toFixed(1), cy: y.toFixed(1), r: 2.5, class: 'dot' });
        this.figure.dataset.samples = String(this.samples.length);
    }
}

/** The smallest of 1, 2, 2.5, 5 × 10^k at or above v (for the y axis). */
function niceCeil(v) {
    if (!(v > 0)) return 1;
    const p = 10 ** Math.floor(Math.log10(v));
    for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
    return 10 * p;
}

// Axis labels carry the unit (short: the left margin is narrow).
const charts = {
    connections: new Chart($('chart-connections'), int),
    rate: new Chart($('chart-rate'), (v) => `${rate(v)}/s`, { axis: (v) => `${short(v)}/s` }),
    latency: new Chart($('chart-latency'), (v) => `${v.toFixed(v < 10 ? 2 : 1)} ms`,
        { minMax: 0.1, axis: (v) => `${short(v)} ms` }),
    queue: new Chart($('chart-queue'), bytes, { minMax: 1000, axis: (v) => `${short(v)}B` }),
    loop: new Chart($('chart-loop'), micros,
        { minMax: 10, axis: (v) => (v < 1000 ? `${short(v)} µs` : `${short(v / 1000)} ms`) }),
};

// -------------------------------------------------------------------- stats

let prevStats = null;

/** Δ of a cumulative counter between two samples; null when it went back (a restart). */
function delta(now, before) {
    const d = now - before;
    return Number.isFinite(d) && d >= 0 ? d : null;
}

function showStats(s) {
    $('stat-sessions').textContent = int(s.sessions);
    $('stat-users').textContent = int(s.users);
    $('stat-rooms').textContent = int(s.rooms);
    $('stat-uptime').textContent = duration(s.uptime_s);
    $('stat-bytes-in').textContent = bytes(s.bytes.in);
    $('stat-bytes-out').textContent = bytes(s.bytes.out);
    $('stat-log-level').textContent = s.log_level;
    $('stat-version').textContent = s.version;
    if (!levelPending && document.activeElement !== $('log-level')) $('log-level').value = s.log_level;

    charts.connections.push(s.connections.websocket);
    charts.queue.push(s.queue_bytes);
    const p = prevStats;
    prevStats = s;
    const dt = p ? (s.time_ms - p.time_ms) / 1000 : 0;
    if (!p || !(dt > 0)) {
        charts.rate.push(null);
        charts.latency.push(null);
        charts.loop.push(null);
        return;
    }
    const accepted = (m) => m.accepted.room + m.accepted.private;
    const msgs = delta(accepted(s.messages), accepted(p.messages));
    charts.rate.push(msgs === null ? null : msgs / dt);
    const dCount = delta(s.delivery.count, p.delivery.count);
    const dSum = delta(s.delivery.sum_us, p.delivery.sum_us);
    charts.latency.push(dCount && dSum !== null ? dSum / dCount / 1000 : dCount === 0 ? 0 : null);
    const lCount = delta(s.loop.count, p.loop.count);
    const lSum = delta(s.loop.sum_us, p.loop.sum_us);
    charts.loop.push(lCount && lSum !== null ? lSum / lCount : null);
}

// ------------------------------------------------------------------- tables

/**
 * Brings tbody's rows in line with items: a row per item, keyed by key(item)
 * in data-<attr>, made by create(item) and refreshed by update(row, item);
 * rows whose item is gone are removed. Rows are kept (not rebuilt) so a
 * button's state survives a poll.
 */
function syncRows(tbody, items, attr, key, create, update) {
    const existing = new Map([...tbody.rows].map((r) => [r.dataset[attr], r]));
    const wanted = [];
    for (const item of items) {
        const k = String(key(item));
        let row = existing.get(k);
        if (row) existing.delete(k);
        else {
            row = create(item);
            row.dataset[attr] = k;
        }
        update(row, item);
        wanted.push(row);
    }
    for (const row of existing.values()) row.remove();
    wanted.forEach((row, i) => {
        if (tbody.rows[i] !== row) tbody.insertBefore(row, tbody.rows[i] || null);
    });
}

function cells(row, n, numeric = []) {
    for (let i = 0; i < n; i++) {
        const td = row.insertCell();
        if (numeric.includes(i)) td.className = 'num';
    }
    return row;
}

function setText(td, text) {
    if (td.textContent !== text) td.textContent = text;
}

function totalText(shown, total, truncated, noun) {
    if (truncated || total > shown) return `${int(shown)} of ${int(total)} ${noun}`;
    return `${int(total)} ${noun}`;
}

function showRooms(body) {
    const tbody = $('rooms').tBodies[0];
    syncRows(tbody, body.rooms, 'room', (r) => r.name,
        () => cells(document.createElement('tr'), 3, [1, 2]),
        (row, r) => {
            setText(row.cells[0], r.name);
            setText(row.cells[1], int(r.members));
            setText(row.cells[2], int(r.connections));
        });
    $('rooms-total').textContent = totalText(body.rooms.length, body.total, body.truncated, body.total === 1 ? 'room' : 'rooms');
    $('rooms-empty').hidden = body.rooms.length > 0;
}

// messages_in of every connection at the previous poll, for its rate.
let prevConns = new Map();

function createConnectionRow(c) {
    const row = cells(document.createElement('tr'), 9, [0, 4, 5, 6, 7]);
    const button = document.createElement('button');
    button.type = 'button';
    button.className = 'disconnect';
    button.textContent = 'Disconnect';
    button.addEventListener('click', () => disconnectClicked(button, c.id));
    row.cells[8].append(button);
    return row;
}

function updateConnectionRow(row, c, r) {
    setText(row.cells[0], String(c.id));
    setText(row.cells[1], c.address);
    setText(row.cells[2], c.nick ?? '—');
    row.cells[2].classList.toggle('muted', c.nick == null);
    setText(row.cells[3], c.tls ? `${c.kind} · TLS` : c.kind);
    setText(row.cells[4], duration(c.age_s));
    setText(row.cells[5], bytes(c.queue_bytes));
    setText(row.cells[6], int(c.messages_in));
    setText(row.cells[7], r === null ? '—' : `${rate(r)}/s`);
    row.cells[7].dataset.value = r === null ? '' : String(r);
}

function showConnections(body) {
    const now = performance.now();
    const seen = new Map();
    const rates = new Map();
    for (const c of body.connections) {
        const p = prevConns.get(c.id);
        const dt = p ? (now - p.t) / 1000 : 0;
        rates.set(c.id, p && dt > 0 && c.messages_in >= p.n ? (c.messages_in - p.n) / dt : null);
        seen.set(c.id, { n: c.messages_in, t: now });
    }
    prevConns = seen;
    syncRows($('connections').tBodies[0], body.connections, 'id', (c) => c.id, createConnectionRow,
        (row, c) => updateConnectionRow(row, c, rates.get(c.id)));
    $('connections-total').textContent = totalText(body.connections.length, body.total, body.truncated,
        body.total === 1 ? 'connection' : 'connections');
    $('connections-empty').hidden = body.connections.length > 0;
}

/** Disconnect is two steps: the first click arms the button ("Confirm"), the second closes. */
async function disconnectClicked(button, id) {
    if (!button.classList.contains('armed')) {
        button.classList.add('armed');
        button.textContent = 'Confirm';
        button.title = `Click again to close connection ${id}`;
        button.disarm = setTimeout(() => disarm(button), CONFIRM_FOR_MS);
        return;
    }
    clearTimeout(button.disarm);
    button.disabled = true;
    try {
        await api(`api/connections/${encodeURIComponent(id)}/close`, { method: 'POST' });
        showStatus(`Connection ${id} closed.`, 'ok');
        button.closest('tr')?.remove();
        prevConns.delete(id);
    } catch (err) {
        if (err instanceof AuthError) return signOut(err.message);
        if (err.status === 404) {
            showStatus(`Connection ${id} was already gone.`, 'info');
            button.closest('tr')?.remove();
            return;
        }
        showStatus(err.message, 'error');
        button.disabled = false;
        disarm(button);
    }
}

function disarm(button) {
    button.classList.remove('armed');
    button.textContent = 'Disconnect';
    button.removeAttribute('title');
}

// ---------------------------------------------------------------- log level

let levelPending = false;

$('log-level').addEventListener('change', async (e) => {
    const select = e.target;
    const level = select.value;
    const out = $('log-level-result');
    levelPending = true;
    out.textContent = 'Setting…';
    try {
        const body = await api(`api/log-level?level=${encodeURIComponent(level)}`, { method: 'POST' });
        out.textContent = `Now ${body.log_level}.`;
        select.value = body.log_level;
        $('stat-log-level').textContent = body.log_level;
    } catch (err) {
        if (err instanceof AuthError) return signOut(err.message);
        out.textContent = 'Not changed.';
        showStatus(err.message, 'error');
        select.value = $('stat-log-level').textContent;
    } finally {
        levelPending = false;
    }
});

// ------------------------------------------------------------------ polling

// Bumped on every sign-in and sign-out, so the loops of an old session stop.
let generation = 0;

/** Runs fn every `every` ms (each run after the previous one ended) while gen is current. */
function poll(gen, every, fn) {
    const run = async () => {
        if (gen !== generation) return;
        const started = performance.now();
        try {
            await fn();
            if (gen === generation) noteSuccess();
        } catch (err) {
            if (gen !== generation) return;
            if (err instanceof AuthError) return signOut(err.message);
            noteFailure(err);
        }
        // Every `every` ms from start to start (the rates are per interval
        // anyway), but never two at once.
        if (gen === generation) setTimeout(run, Math.max(100, every - (performance.now() - started)));
    };
    return run();
}

function startPolling() {
    const gen = ++generation;
    poll(gen, STATS_EVERY_MS, async () => {
        const s = await api('api/stats');
        if (gen === generation) showStats(s);
    });
    poll(gen, TABLES_EVERY_MS, async () => {
        const [rooms, conns] = await Promise.all([api('api/rooms'), api('api/connections')]);
        if (gen !== generation) return;
        showRooms(rooms);
        showConnections(conns);
    });
}

// ------------------------------------------------------------ sign in / out

function showDashboard() {
    $('signin-view').hidden = true;
    $('dashboard').hidden = false;
    $('sign-out').hidden = false;
}

/** Forgets the token, stops polling and shows the sign-in form (with `message`, if any). */
function signOut(message = '') {
    generation++;
    token = null;
    sessionStorage.removeItem(TOKEN_KEY);
    prevStats = null;
    prevConns = new Map();
    failing = false;
    for (const chart of Object.values(charts)) chart.reset();
    for (const id of ['rooms', 'connections']) $(id).tBodies[0].replaceChildren();
    $('dashboard').hidden = true;
    $('sign-out').hidden = true;
    $('signin-view').hidden = false;
    $('signin-error').textContent = message;
    showStatus('');
    $('token').value = '';
    $('token').focus();
}

$('signin-form').addEventListener('submit', async (e) => {
    e.preventDefault();
    const value = $('token').value.trim();
    if (!value) {
        $('signin-error').textContent = 'Enter the admin token.';
        return;
    }
    // The server's tokens are printable ASCII without spaces (and a header
    // could not carry other characters: fetch would throw).
    if (!/^[\x21-\x7e]+$/.test(value)) {
        $('signin-error').textContent = 'An admin token is printable ASCII characters, without spaces.';
        return;
    }
    const button = $('sign-in');
    button.disabled = true;
    $('signin-error').textContent = '';
    token = value;
    try {
        // One call to check the token before the dashboard shows.
        await api('api/stats');
        sessionStorage.setItem(TOKEN_KEY, value);
        $('token').value = '';
        showDashboard();
        startPolling();
    } catch (err) {
        token = null;
        if (err instanceof AuthError) {
            signOut(err.message);
        } else {
            $('signin-error').textContent = err.message;
        }
    } finally {
        button.disabled = false;
    }
});

$('sign-out').addEventListener('click', () => signOut('Signed out.'));

// Redraw the charts at their new size.
let resizeTimer;
window.addEventListener('resize', () => {
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(() => { for (const c of Object.values(charts)) c.draw(); }, 100);
});

for (const chart of Object.values(charts)) chart.draw();
if (token) {
    showDashboard();
    startPolling();
} else {
    $('token').focus();
}
