// Searching messages in the web client: a dialog that sends `search` for
// the conversation on screen or everywhere, lists the results with the
// matched words marked, pages on to older results, and jumps to a result
// in its conversation: the history up to it (`history` with `before` =
// id + 1) is shown instead, the message marked, and a line below offers
// the latest messages again.

import { h, timeEl } from './dom.js';
import { roomKey } from './rules.js';

/**
 * `text` cut into [{text, mark}] pieces by `highlights` ([start, end)
 * offsets in UTF-16 code units, as JavaScript indexes strings): sorted,
 * overlapping ranges merged, ranges outside the text dropped.
 */
export function highlightSegments(text, highlights) {
    const ranges = highlights
        .filter((r) => Array.isArray(r) && Number.isSafeInteger(r[0]) && Number.isSafeInteger(r[1]))
        .map(([a, b]) => [Math.max(0, a), Math.min(text.length, b)])
        .filter(([a, b]) => a < b)
        .sort((x, y) => x[0] - y[0]);
    const merged = [];
    for (const r of ranges) {
        const last = merged.at(-1);
        if (last && r[0] <= last[1]) last[1] = Math.max(last[1], r[1]);
        else merged.push([r[0], r[1]]);
    }
    const out = [];
    let at = 0;
    for (const [a, b] of merged) {
        if (a > at) out.push({ text: text.slice(at, a), mark: false });
        out.push({ text: text.slice(a, b), mark: true });
        at = b;
    }
    if (at < text.length) out.push({ text: text.slice(at), mark: false });
    return out;
}

/** A result's text as nodes: <mark> elements for the highlights, text nodes between (never HTML). */
export function highlightedNodes(text, highlights) {
    return highlightSegments(text, highlights).map((s) => (s.mark ? h('mark', { text: s.text }) : document.createTextNode(s.text)));
}

/** Where a result was said, from our side: {kind: 'room', name} or {kind: 'private', name: the other person}. */
export function resultPlace(result, isMe) {
    if (result.kind === 'room') return { kind: 'room', name: result.to };
    return { kind: 'private', name: isMe(result.from) ? result.to : result.from };
}

export const SEARCH_MAX = 200; // characters of a query

let ctx = null; // {session, state, ui, toast, activeConv, activate, privateConv, closeDrawers}
const s = { dialog: null, form: null, input: null, scope: null, status: null, list: null, more: null, ref: '', query: '', where: {}, oldest: 0 };
const jumps = new Map(); // history ref -> {conv, id}: a jump to message `id` (0: back to the latest)

function build() {
    s.input = h('input', { id: 'search-query', type: 'search', maxLength: SEARCH_MAX, autocomplete: 'off', placeholder: 'Words to find' });
    s.scope = h('select', { id: 'search-scope' });
    s.status = h('p', { class: 'side-hint', attrs: { 'aria-live': 'polite' } });
    s.list = h('ul', { class: 'search-results', attrs: { 'aria-label': 'Search results' } });
    s.more = h('button', { type: 'button', class: 'link-btn', text: 'More results', hidden: true, on: { click: () => send(true) } });
    s.form = h('form', { class: 'dialog-body search-form', noValidate: true, attrs: { role: 'search' } },
        h('div', { class: 'search-row' },
            h('label', { htmlFor: 'search-query', class: 'sr-only', text: 'Search messages' }), s.input,
            h('label', { htmlFor: 'search-scope', class: 'sr-only', text: 'Where' }), s.scope,
            h('button', { type: 'submit', class: 'side-btn', text: 'Search' })));
    s.form.addEventListener('submit', (ev) => {
        ev.preventDefault();
        send(false);
    });
    const close = h('button', { type: 'button', class: 'icon-btn', attrs: { 'aria-label': 'Close' }, on: { click: () => s.dialog.close() } },
        h('span', { text: '×', attrs: { 'aria-hidden': 'true' } }));
    s.dialog = h('dialog', { class: 'dialog search-dialog', id: 'search-dialog', attrs: { 'aria-labelledby': 'search-dialog-title' } },
        h('div', { class: 'dialog-head' }, h('h2', { id: 'search-dialog-title', text: 'Search messages' }), close),
        s.form, h('div', { class: 'dialog-body' }, s.status, s.list, s.more));
    document.body.append(s.dialog);
}

/** Opens the search dialog, scoped to the conversation on screen by default. */
export function openSearch() {
    if (!s.dialog) build();
    const conv = ctx.activeConv();
    const options = [];
    if (conv) options.push(h('option', { value: 'here', text: conv.kind === 'room' ? `In ${conv.name}` : `With ${conv.name}` }));
    options.push(h('option', { value: 'all', text: 'Everywhere' }));
    s.scope.replaceChildren(...options);
    s.scope.dataset.conv = conv ? conv.id : '';
    s.dialog.showModal();
    s.input.focus();
    s.input.select();
}

function send(more) {
    const query = more ? s.query : s.input.value.trim();
    if (query === '') {
        s.status.textContent = 'Type a word to look for.';
        s.input.focus();
        return;
    }
    if (!more) {
        const conv = s.scope.value === 'here' ? ctx.state.convs.get(s.scope.dataset.conv) : null;
        s.where = conv ? (conv.kind === 'room' ? { room: conv.name } : { with: conv.name }) : {};
        s.query = query;
        s.oldest = 0;
        s.list.replaceChildren();
    }
    const ref = ctx.session.search(query, { ...s.where, before: more ? s.oldest : undefined });
    if (!ref) {
        s.status.textContent = 'You are offline; try again once reconnected.';
        return;
    }
    s.ref = ref;
    s.more.hidden = true;
    s.status.textContent = 'Searching…';
}

function showResults({ ref, results, more }) {
    if (ref !== s.ref) return; // an older search's answer
    s.ref = '';
    for (const r of results) {
        const place = resultPlace(r, (n) => ctx.session.isMe(n));
        const btn = h('button', { type: 'button', class: 'search-hit', on: { click: () => jumpTo(r) } },
            h('span', { class: 'search-meta' },
                h('span', { class: 'search-from', text: r.from }),
                h('span', { class: 'search-where', text: place.kind === 'room' ? ` in ${place.name}` : ` · private with ${place.name}` }),
                ' ', timeEl(r.ts)),
            h('span', { class: 'search-text' }, ...highlightedNodes(r.text, r.highlights)));
        s.list.append(h('li', { dataset: { id: String(r.id) } }, btn));
        s.oldest = s.oldest === 0 ? r.id : Math.min(s.oldest, r.id);
    }
    const n = s.list.childElementCount;
    s.status.textContent = n === 0 ? 'Nothing found.' : `${n} result${n === 1 ? '' : 's'}${more ? ' so far' : ''}`;
    s.more.hidden = !more || results.length === 0;
}

/** Shows message `id` of `conv`, marked, in view. */
function mark(conv, li) {
    for (const el of conv.pane.root.querySelectorAll('li.msg.found')) el.classList.remove('found');
    li.classList.add('found');
    li.scrollIntoView({ block: 'center' });
}

/** Brings a result's conversation on screen at the result. */
function jumpTo(result) {
    const { session, state } = ctx;
    const place = resultPlace(result, (n) => session.isMe(n));
    const conv = place.kind === 'room' ? state.convs.get(`r:${roomKey(place.name)}`) : ctx.privateConv(place.name);
    if (!conv) {
        ctx.toast(`You are not in ${place.name} now: join it to read there.`);
        return;
    }
    s.dialog.close();
    ctx.activate(conv);
    ctx.closeDrawers();
    const li = conv.pane.messageById(result.id);
    if (li) {
        mark(conv, li);
        return;
    }
    loadAround(conv, result.id);
}

/** Asks for the history up to message `id` (0: the latest) to show instead of what the pane holds. */
function loadAround(conv, id) {
    const { session } = ctx;
    const before = id > 0 ? id + 1 : undefined;
    const ref = conv.kind === 'room' ? session.history(conv.name, before) : session.historyWith(conv.name, before);
    if (!ref) {
        ctx.toast('You are offline; try again once reconnected.');
        return;
    }
    jumps.set(ref, { conv, id });
    conv.older = 'loading';
    conv.pane.setOlder('loading');
}

/**
 * A `history` reply to a jump (app.js hands every `older` event here
 * first): the pane shows that stretch, the result marked, and below it a
 * way back to the latest. False when the reply is not a jump's.
 */
export function takeJump(detail) {
    const jump = jumps.get(detail.ref);
    if (!jump) return false;
    jumps.delete(detail.ref);
    const { conv, id } = jump;
    if (!ctx.state.convs.has(conv.id)) return true; // closed, or left, meanwhile
    const pane = conv.pane;
    pane.clear();
    pane.prependOlder(detail.shown, (m) => ctx.session.isMine(m));
    conv.older = detail.more && detail.shown.length > 0 ? 'more' : 'start';
    pane.setOlder(conv.older);
    if (id > 0) {
        const gap = pane.addSystem('Later messages are not shown here.');
        gap.classList.add('gap');
        gap.querySelector('time')?.remove();
        gap.append(' ', h('button', { type: 'button', class: 'link-btn', text: 'Show the latest', on: { click: () => loadAround(conv, 0) } }));
        const li = pane.messageById(id);
        if (li) mark(conv, li);
        else ctx.toast('That message is no longer there.');
    } else {
        pane.scrollToBottom();
    }
    return true;
}

/** Wires search to the page. */
export function initSearch(shared) {
    ctx = shared;
    ctx.ui.searchOpen.addEventListener('click', openSearch);
    ctx.session.addEventListener('search', ({ detail }) => showResults(detail));
    ctx.session.addEventListener('request-error', ({ detail }) => {
        if (!detail.request || detail.request.type !== 'search' || detail.ref !== s.ref) return;
        s.ref = '';
        s.status.textContent = detail.code === 'rate_limited' ? 'Too many searches: wait a moment.' : `The search failed: ${detail.message || detail.code}`;
    });
    // Ctrl+K (⌘K) opens it, as in many apps.
    document.addEventListener('keydown', (ev) => {
        if (ctx.ui.chatView.hidden || (s.dialog && s.dialog.open)) return;
        if (ev.key === 'k' && (ev.ctrlKey || ev.metaKey) && !ev.altKey && !ev.shiftKey) {
            ev.preventDefault();
            openSearch();
        }
    });
}
