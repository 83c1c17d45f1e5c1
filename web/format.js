// Safe message formatting: *bold*, _italic_, `code`, ```code blocks``` and
// links. `parseFormat` turns a text into a small tree of plain objects (no
// DOM, so it is tested without a browser); `appendFormatted` builds it with
// createElement and text nodes only — never innerHTML — and the only links
// it makes point to http: or https: addresses.

const WORD_RE = /[\p{L}\p{N}]/u;
const SPACE_RE = /\s/u;
// A web address: http(s)://… or www.something.something. Backticks end it
// (they start or end code), as do quotes and angle brackets.
const URL_RE = /\b(?:https?:\/\/|www\.(?=[^\s.]+\.[^\s]))[^\s<>"'`]+/giu;
const CODE_RE = /`([^`\n]+)`/gu;
const TRAILING_RE = /[.,;:!?)\]}*_'’"]+$/u;
const MAX_DEPTH = 3; // bold inside italic inside bold is as deep as it goes

/** The href for a matched address, or '' when it is not a plain http(s) one. */
export function linkHref(text) {
    const href = /^www\./i.test(text) ? `https://${text}` : text;
    try {
        const url = new URL(href);
        return url.protocol === 'http:' || url.protocol === 'https:' ? href : '';
    } catch {
        return '';
    }
}

/** Cuts punctuation off the end of a matched address, keeping a ')' that closes one opened inside it. */
function trimAddress(url) {
    const trail = url.match(TRAILING_RE);
    if (!trail) return url;
    let cut = trail[0];
    // "http://x.org/a_(b)" keeps its parenthesis; "(see http://x.org)" does not.
    while (cut.length > 0) {
        const kept = url.slice(0, url.length - cut.length);
        const opens = (kept.match(/\(/g) || []).length;
        const closes = (kept.match(/\)/g) || []).length;
        if (cut[0] === ')' && opens > closes) cut = cut.slice(1);
        else break;
    }
    return url.slice(0, url.length - cut.length);
}

/**
 * The text as nodes: {t:'text', v}, {t:'b'|'i', c:[nodes]},
 * {t:'code', v}, {t:'pre', v} (a code block), {t:'link', v, href}.
 */
export function parseFormat(text) {
    const out = [];
    let last = 0;
    // Code blocks first: nothing inside them is formatted.
    const fence = /```/g;
    for (;;) {
        fence.lastIndex = last;
        const open = fence.exec(text);
        if (!open) break;
        const close = text.indexOf('```', open.index + 3);
        if (close < 0) break;
        let body = text.slice(open.index + 3, close);
        if (body.startsWith('\n')) body = body.slice(1);
        if (body.endsWith('\n')) body = body.slice(0, -1);
        if (open.index > last) out.push(...parseInline(text.slice(last, open.index)));
        out.push({ t: 'pre', v: body });
        last = close + 3;
        // A line break right after a block is the block's end, not an empty line.
        if (text[last] === '\n') last += 1;
    }
    if (last < text.length) out.push(...parseInline(text.slice(last)));
    return out;
}

/** Inline formatting of a piece without code blocks. */
function parseInline(text) {
    // Code spans and addresses are atoms: emphasis markers inside them
    // (http://x.org/a_b_c) are theirs. The rest is one character a cell.
    const cells = [];
    let pos = 0;
    CODE_RE.lastIndex = 0;
    URL_RE.lastIndex = 0;
    let code = CODE_RE.exec(text);
    let url = URL_RE.exec(text);
    while (code || url) {
        const useCode = code && (!url || code.index <= url.index);
        const m = useCode ? code : url;
        for (const ch of text.slice(pos, m.index)) cells.push(ch);
        if (useCode) {
            cells.push({ t: 'code', v: m[1] });
            pos = m.index + m[0].length;
        } else {
            const address = trimAddress(m[0]);
            const href = linkHref(address);
            if (href) cells.push({ t: 'link', v: address, href });
            else for (const ch of address) cells.push(ch);
            pos = m.index + address.length;
        }
        // Find the next of each at or after pos (a skipped overlap is text).
        if (code && code.index < pos) {
            CODE_RE.lastIndex = pos;
            code = CODE_RE.exec(text);
        }
        if (url && url.index < pos) {
            URL_RE.lastIndex = pos;
            url = URL_RE.exec(text);
        }
    }
    for (const ch of text.slice(pos)) cells.push(ch);
    return emphasis(cells, 0, cells.length, 0);
}

const isMarker = (c) => c === '*' || c === '_';
const isWord = (c) => typeof c === 'string' && WORD_RE.test(c);
const isSpace = (c) => typeof c === 'string' && SPACE_RE.test(c);

function canOpen(cells, i, end) {
    const next = cells[i + 1];
    if (i + 1 >= end || next === undefined || isSpace(next) || next === cells[i]) return false;
    return i === 0 || (!isWord(cells[i - 1]) && cells[i - 1] !== cells[i]);
}

function canClose(cells, j, start, end) {
    const prev = cells[j - 1];
    if (j - 1 < start || isSpace(prev) || prev === cells[j]) return false;
    return j + 1 >= end || (!isWord(cells[j + 1]) && cells[j + 1] !== cells[j]);
}

/** Cells [start, end) as nodes, with *…* and _…_ (on one line, not empty) as bold and italic. */
function emphasis(cells, start, end, depth) {
    const nodes = [];
    let text = '';
    const noCloser = { '*': Infinity, _: Infinity }; // a search from here on found none: none further on either
    const flush = () => {
        if (text) nodes.push({ t: 'text', v: text });
        text = '';
    };
    for (let i = start; i < end; i++) {
        const c = cells[i];
        if (typeof c !== 'string') {
            flush();
            nodes.push(c);
            continue;
        }
        if (depth < MAX_DEPTH && isMarker(c) && i < noCloser[c] && canOpen(cells, i, end)) {
            let j = i + 2;
            for (; j < end && cells[j] !== '\n'; j++) if (cells[j] === c && canClose(cells, j, i + 1, end)) break;
            if (j < end && cells[j] === c) {
                flush();
                nodes.push({ t: c === '*' ? 'b' : 'i', c: emphasis(cells, i + 1, j, depth + 1) });
                i = j;
                continue;
            }
            if (j >= end) noCloser[c] = i; // and so for every later opener of this line's rest
        }
        text += c;
    }
    flush();
    return nodes;
}

/** Appends the formatted `text` to `parent` as DOM nodes. */
export function appendFormatted(parent, text) {
    build(parent, parseFormat(text));
}

function build(parent, nodes) {
    const doc = parent.ownerDocument;
    for (const n of nodes) {
        if (n.t === 'text') {
            parent.append(doc.createTextNode(n.v));
        } else if (n.t === 'b' || n.t === 'i') {
            const el = doc.createElement(n.t === 'b' ? 'strong' : 'em');
            build(el, n.c);
            parent.append(el);
        } else if (n.t === 'code' || n.t === 'pre') {
            const el = doc.createElement('code');
            if (n.t === 'pre') el.className = 'code-block';
            el.textContent = n.v;
            parent.append(el);
        } else if (n.t === 'link') {
            const a = doc.createElement('a');
            a.href = n.href;
            a.textContent = n.v;
            a.target = '_blank';
            a.rel = 'noopener noreferrer nofollow';
            parent.append(a);
        }
    }
}

/**
 * A `/me` action as the web client sends it: "* ana waves", from ana. Only
 * the author's own nickname counts, so nobody can pass a line off as
 * another's action.
 */
export function isAction(from, text) {
    return typeof from === 'string' && text.length > from.length + 3
        && text.startsWith('* ') && text.slice(2, 2 + from.length).toLowerCase() === from.toLowerCase() && text[2 + from.length] === ' ';
}
