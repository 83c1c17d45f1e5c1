// Small DOM helpers. Every piece of text from the network goes into the page
// through textContent or a text node, never through innerHTML, so a message
// that looks like markup is shown as the characters it is.

/**
 * Creates an element. `props`: `class`, `text`, `dataset`, `attrs` (string
 * attributes), `on` (event listeners), and any other DOM property (`type`,
 * `hidden`, `title`…). Children are nodes or strings (added as text nodes).
 */
export function h(tag, props = {}, ...children) {
    const el = document.createElement(tag);
    for (const [key, value] of Object.entries(props)) {
        if (value === undefined || value === null) continue;
        if (key === 'class') el.className = value;
        else if (key === 'text') el.textContent = value;
        else if (key === 'dataset') Object.assign(el.dataset, value);
        else if (key === 'attrs') for (const [a, v] of Object.entries(value)) el.setAttribute(a, v);
        else if (key === 'on') for (const [ev, fn] of Object.entries(value)) el.addEventListener(ev, fn);
        else el[key] = value;
    }
    for (const child of children) {
        if (child === null || child === undefined || child === false) continue;
        el.append(typeof child === 'string' ? document.createTextNode(child) : child);
    }
    return el;
}

export function $(id) {
    const el = document.getElementById(id);
    if (!el) throw new Error(`missing #${id}`);
    return el;
}

// URLs become links; everything else stays text. Only http(s), so a
// `javascript:` text can never become a live link.
const URL_RE = /\bhttps?:\/\/[^\s<>"']+/g;
const TRAILING_PUNCT_RE = /[.,;:!?)\]}]+$/;

/** Appends `text` to `parent` as text nodes, with web addresses as links. */
export function appendLinkified(parent, text) {
    let last = 0;
    for (const match of text.matchAll(URL_RE)) {
        let url = match[0];
        const trail = url.match(TRAILING_PUNCT_RE);
        // Keep a closing parenthesis that closes one opened inside the URL.
        if (trail && !(trail[0] === ')' && url.includes('('))) url = url.slice(0, -trail[0].length);
        if (match.index > last) parent.append(document.createTextNode(text.slice(last, match.index)));
        parent.append(h('a', { href: url, text: url, target: '_blank', rel: 'noopener noreferrer nofollow' }));
        last = match.index + url.length;
    }
    if (last < text.length) parent.append(document.createTextNode(text.slice(last)));
}

const HUES = 10;

/** A stable colour class for a nickname, so a person keeps one colour everywhere. */
export function hueClass(nick) {
    let hash = 0;
    for (const ch of nick.toLowerCase()) hash = (hash * 31 + ch.codePointAt(0)) >>> 0;
    return `hue-${hash % HUES}`;
}

/** An avatar circle with the nickname's first character. */
export function avatar(nick, extraClass = '') {
    const initial = [...nick][0] ? [...nick][0].toUpperCase() : '?';
    return h('span', { class: `avatar ${hueClass(nick)} ${extraClass}`.trim(), text: initial, attrs: { 'aria-hidden': 'true' } });
}

const timeFmt = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit' });
const fullFmt = new Intl.DateTimeFormat(undefined, { dateStyle: 'full', timeStyle: 'medium' });
const dayFmt = new Intl.DateTimeFormat(undefined, { weekday: 'long', day: 'numeric', month: 'long' });
const yearDayFmt = new Intl.DateTimeFormat(undefined, { day: 'numeric', month: 'long', year: 'numeric' });

/** A <time> element showing hours and minutes, with the full date on hover. */
export function timeEl(ts) {
    const d = new Date(ts);
    return h('time', { dateTime: d.toISOString(), title: fullFmt.format(d), text: timeFmt.format(d) });
}

/** A key that changes at local midnight. */
export function dayKey(ts) {
    const d = new Date(ts);
    return `${d.getFullYear()}-${d.getMonth()}-${d.getDate()}`;
}

/** "Today", "Yesterday", or a date. */
export function dayLabel(ts, now = Date.now()) {
    if (dayKey(ts) === dayKey(now)) return 'Today';
    if (dayKey(ts) === dayKey(now - 86400000)) return 'Yesterday';
    const d = new Date(ts);
    return (new Date(now).getFullYear() === d.getFullYear() ? dayFmt : yearDayFmt).format(d);
}
