// What the search tests share (search.test.mjs on one server,
// cluster-search.test.mjs across nodes).

import assert from 'node:assert/strict';

import { uniq } from './helpers.mjs';

/** Sends a room message; resolves to its id once acked. */
export async function say(c, to, text) {
    const ack = await c.request({ type: 'room', to, message: { text } }, 'ack');
    assert.equal(ack.type, 'ack', JSON.stringify(ack));
    return ack.message_id;
}

/** A search request; resolves to its reply. */
export async function search(c, req) {
    const r = await c.request({ type: 'search', ...req }, 'search');
    assert.equal(r.type, 'search', JSON.stringify(r));
    return r;
}

/** A word nobody else's test uses. */
export function word(tag) {
    return `${tag}${uniq('w').replace(/[^a-z0-9]/gi, '').toLowerCase()}`;
}

/** The highlighted substrings of a result (JavaScript's UTF-16 indexes). */
export function marked(r) {
    return r.highlights.map(([a, b]) => r.message.text.slice(a, b));
}
