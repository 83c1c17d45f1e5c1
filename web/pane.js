// One conversation's message list: grouping of consecutive messages, day
// separators, the "new messages" divider, and scrolling that follows new
// messages only while the reader is at the bottom — someone who scrolled up
// to read is never yanked down; they get a count and a button instead.

import { h, avatar, timeEl, dayKey, dayLabel, hueClass } from './dom.js';
import { appendFormatted, isAction } from './format.js';

const GROUP_MS = 5 * 60 * 1000; // consecutive messages within this share one header
const BOTTOM_SLACK_PX = 48; // "at the bottom" tolerates this much

export class Pane {
    /** Called with no arguments whenever `unseen` or `stuck` changes. */
    onChange = () => {};
    /** Called when the person asks for older messages. */
    onLoadOlder = () => {};

    /** Messages that arrived while the reader was not looking at the bottom. */
    unseen = 0;

    #scroller;
    #list;
    #top;
    #divider;
    #stuck = true; // the reader is at the bottom; new messages keep it there
    #savedTop = 0;
    #lastDay = '';
    #lastFrom = '';
    #lastTs = 0;
    #label;
    #typing;
    #place = null; // where the reader was when the pane was last hidden
    #wanted = null; // restorePlace(): where to put the reader once shown

    constructor(label) {
        this.#label = label;
        this.#list = h('ol', {
            class: 'messages',
            attrs: { role: 'log', 'aria-live': 'polite', 'aria-relevant': 'additions', 'aria-label': `Messages in ${label}` },
        });
        this.#top = h('div', { class: 'pane-top' });
        this.#scroller = h('div', { class: 'scroller', tabIndex: 0, attrs: { 'aria-label': `${label} conversation` } }, this.#top, this.#list);
        this.#typing = h('p', { class: 'typing', attrs: { 'aria-live': 'polite' } });
        this.root = h('section', { class: 'pane', hidden: true, attrs: { 'aria-label': label } }, this.#scroller, this.#typing);
        this.#divider = h('li', { class: 'new-divider', attrs: { role: 'separator' } }, h('span', { text: 'New messages' }));
        this.#scroller.addEventListener('scroll', () => this.#onScroll(), { passive: true });
        // A phone keyboard opening, or the composer growing, shrinks the
        // view: stay at the bottom if we were there.
        new ResizeObserver(() => { if (this.#stuck && this.isShown) this.scrollToBottom(); }).observe(this.#scroller);
    }

    get isShown() { return !this.root.hidden; }
    get stuck() { return this.#stuck; }
    get isEmpty() { return this.#list.querySelector('.msg') === null; }

    /** The id of the oldest message shown, for history(before). */
    get oldestId() {
        const first = this.#list.querySelector('.msg[data-id]');
        return first ? Number(first.dataset.id) : 0;
    }

    /** The id of the newest message shown (0 when none has one yet): what a read marker moves to. */
    get newestId() {
        const all = this.#list.querySelectorAll('.msg[data-id]');
        return all.length > 0 ? Number(all[all.length - 1].dataset.id) : 0;
    }

    /**
     * The messages up to `id` were read elsewhere (another tab or device):
     * `unseen` keeps only those after it, and the divider goes when none is left.
     */
    seenUpTo(id) {
        if (this.unseen === 0) return;
        let left = 0;
        if (this.#divider.isConnected) {
            for (let el = this.#divider.nextElementSibling; el !== null; el = el.nextElementSibling) {
                if (el.classList.contains('msg') && !el.classList.contains('own') && !(Number(el.dataset.id) <= id)) left += 1;
            }
        }
        left = Math.min(left, this.unseen);
        if (left === this.unseen) return;
        this.unseen = left;
        if (left === 0) this.#divider.remove();
        this.onChange();
    }

    /**
     * Marks the last `count` messages not ours as new (they came unread
     * with the conversation's history): the divider goes above the first
     * of them, and the reader starts reading there.
     */
    markNew(count) {
        const theirs = [...this.#list.querySelectorAll('.msg:not(.own)')];
        const n = Math.min(count, theirs.length);
        if (n <= 0) return;
        const li = theirs[theirs.length - n];
        if (this.#divider.nextElementSibling !== li) {
            li.before(this.#divider);
            li.classList.remove('cont');
        }
        this.unseen = n;
        if (this.isShown) {
            this.#stuck = false;
            this.#scroller.scrollTop = Math.max(0, this.#divider.offsetTop - 12);
            this.#onScroll();
        }
        this.onChange();
    }

    /**
     * Where the reader is, to come back to after a reload: {bottom: true},
     * or the first message in view ({id, offset}: its top, in pixels below
     * the top of the view). null when unknown.
     */
    get place() {
        if (this.#wanted) return this.#wanted;
        return this.isShown ? this.#measure() : this.#place;
    }

    /** Puts the reader back at `place` (see `place`), now or when next shown. */
    restorePlace(place) {
        if (!place || place.bottom || !Number.isSafeInteger(place.id) || !Number.isFinite(place.offset)) return;
        this.#wanted = place;
        this.#stuck = false;
        if (this.isShown) this.#applyPlace();
    }

    #measure() {
        if (this.#stuck) return { bottom: true };
        const top = this.#scroller.getBoundingClientRect().top;
        for (const li of this.#list.querySelectorAll('.msg[data-id]')) {
            const r = li.getBoundingClientRect();
            if (r.bottom > top) return { id: Number(li.dataset.id), offset: Math.round(r.top - top) };
        }
        return { bottom: true };
    }

    #applyPlace() {
        const place = this.#wanted;
        this.#wanted = null;
        const li = this.#list.querySelector(`.msg[data-id="${place.id}"]`);
        if (!li) {
            // That message is no longer among those shown: the latest, then.
            this.#stuck = true;
            this.scrollToBottom();
            return;
        }
        this.#scroller.scrollTop += li.getBoundingClientRect().top - this.#scroller.getBoundingClientRect().top - place.offset;
        this.#onScroll();
    }

    /** The element of the message with this id, or null. */
    messageById(id) {
        return Number.isSafeInteger(id) ? this.#list.querySelector(`.msg[data-id="${id}"]`) : null;
    }

    show() {
        this.root.hidden = false;
        if (this.#wanted) {
            this.#applyPlace();
            return;
        }
        if (this.unseen > 0 && this.#divider.isConnected) {
            // Start reading at the first unseen message; the resize that
            // showing causes must not then pull the view to the bottom.
            this.#stuck = false;
            this.#scroller.scrollTop = Math.max(0, this.#divider.offsetTop - 12);
        } else if (this.#stuck) {
            this.scrollToBottom();
        } else {
            this.#scroller.scrollTop = this.#savedTop;
        }
        this.#onScroll();
    }

    hide() {
        if (!this.root.hidden) {
            this.#savedTop = this.#scroller.scrollTop;
            this.#place = this.#measure();
        }
        this.root.hidden = true;
    }

    scrollToBottom(smooth = false) {
        this.#scroller.scrollTo({ top: this.#scroller.scrollHeight, behavior: smooth ? 'smooth' : 'instant' });
    }

    focus() { this.#scroller.focus(); }

    /** Re-checks whether the reader has caught up (the page became visible). */
    refresh() { this.#onScroll(); }

    /**
     * Adds a chat message at the end. `opts`: own (sent by us), pending (not
     * yet confirmed), quiet (history shown on joining: not "new").
     * Returns its element.
     */
    addMessage(msg, { own = false, pending = false, quiet = false } = {}) {
        const ts = Number.isFinite(msg.ts) ? msg.ts : Date.now();
        const li = this.#messageEl(msg, ts, own, pending);
        this.#append(li, ts, msg.from.toLowerCase());
        this.#afterAppend(li, own ? 'own' : quiet ? 'quiet' : 'new');
        return li;
    }

    /** Shows who is typing here (nicknames; none clears the line). */
    setTyping(names) {
        this.#typing.textContent = names.length === 0 ? ''
            : names.length === 1 ? `${names[0]} is typing…`
                : names.length === 2 ? `${names[0]} and ${names[1]} are typing…`
                    : `${names.length} people are typing…`;
    }

    /** Adds a system line ("bob joined"). */
    addSystem(text, ts = Date.now()) {
        const li = h('li', { class: 'sys' }, h('span', { text }), ' ', timeEl(ts));
        this.#append(li, ts, '');
        this.#afterAppend(li, 'quiet');
        return li;
    }

    /** Marks a pending message as accepted by the server (`msg`: its id, and ts when known). */
    confirm(li, msg) {
        li.classList.remove('pending', 'failed');
        li.querySelector('.note')?.remove();
        if (Number.isSafeInteger(msg.id)) li.dataset.id = String(msg.id);
        if (Number.isFinite(msg.ts)) li.dataset.ts = String(msg.ts);
        li.querySelector('time').replaceWith(timeEl(Number(li.dataset.ts)));
    }

    /** Marks a pending message as not delivered, with a way to try again. */
    fail(li, reason, retry) {
        const stickBefore = this.#stuck;
        li.classList.remove('pending');
        li.classList.add('failed');
        li.querySelector('.note')?.remove();
        const time = li.querySelector('time');
        if (time && !time.dateTime) time.textContent = 'not sent'; // it said "sending…"
        const note = h('p', { class: 'note' }, h('span', { text: `Not delivered: ${reason}` }));
        if (retry) note.append(' ', h('button', { type: 'button', class: 'link-btn', text: 'Try again', on: { click: () => { li.remove(); retry(); } } }));
        li.querySelector('.bubble').append(note);
        if (stickBefore && this.isShown) this.scrollToBottom();
    }

    /** A note under a message still waiting to go (held back by flood control); '' removes it. */
    hold(li, text) {
        li.classList.remove('failed');
        li.classList.add('pending');
        li.querySelector('.note')?.remove();
        if (text) li.querySelector('.bubble').append(h('p', { class: 'note held' }, h('span', { text })));
        const time = li.querySelector('time');
        if (time && !time.dateTime) time.textContent = text ? 'waiting…' : 'sending…';
    }

    /** Shows "load earlier messages", or that this is the start. */
    setOlder(state) {
        this.#top.replaceChildren();
        if (state === 'more') {
            this.#top.append(h('button', { type: 'button', class: 'link-btn', text: 'Load earlier messages', on: { click: () => this.onLoadOlder() } }));
        } else if (state === 'loading') {
            this.#top.append(h('p', { class: 'side-hint', text: 'Loading…' }));
        } else if (state === 'start') {
            this.#top.append(h('p', { class: 'pane-start', text: `This is the start of ${this.#label}.` }));
        }
    }

    /** Inserts older messages (oldest first) above the others, keeping the reader's place. */
    prependOlder(messages, isOwn) {
        if (messages.length === 0) return;
        // Keep the first message's text where it is on screen; its header may
        // go (it can become a continuation of the older ones), so anchor on
        // the text line, not on the item.
        const anchor = this.#list.querySelector('.msg .line');
        const anchorTop = anchor ? anchor.getBoundingClientRect().top : 0;
        const frag = document.createDocumentFragment();
        let day = '', from = '', last = 0;
        for (const m of messages) {
            const ts = Number.isFinite(m.ts) ? m.ts : 0;
            if (dayKey(ts) !== day) {
                frag.append(this.#daySep(ts));
                day = dayKey(ts);
                from = '';
            }
            const li = this.#messageEl(m, ts, isOwn(m), false);
            const key = m.from.toLowerCase();
            if (key === from && ts - last < GROUP_MS) li.classList.add('cont');
            frag.append(li);
            from = key;
            last = ts;
        }
        const first = this.#list.firstElementChild;
        if (first === null) {
            this.#lastDay = day;
            this.#lastFrom = from;
            this.#lastTs = last;
        } else if (first.classList.contains('day') && first.dataset.day === day) {
            first.remove();
            const next = this.#list.firstElementChild;
            if (next && next.classList.contains('msg') && next.dataset.from === from && Number(next.dataset.ts) - last < GROUP_MS) next.classList.add('cont');
        }
        this.#list.prepend(frag);
        if (anchor) this.#scroller.scrollTop += anchor.getBoundingClientRect().top - anchorTop;
    }

    #messageEl(msg, ts, own, pending) {
        const from = msg.from;
        const time = pending ? h('time', { text: 'sending…' }) : timeEl(ts);
        const text = h('span', { class: 'text' });
        appendFormatted(text, msg.message.text);
        const li = h('li', {
            class: `msg${own ? ' own' : ''}${pending ? ' pending' : ''}${isAction(from, msg.message.text) ? ' action' : ''}`,
            dataset: { from: from.toLowerCase(), ts: String(ts) },
        },
        own ? null : avatar(from),
        h('div', { class: 'bubble' },
            h('p', { class: `from ${hueClass(from)}` }, own ? 'You' : from, own ? h('span', { class: 'sr-only', text: ` (${from})` }) : null),
            h('p', { class: 'line' }, text, time)));
        if (Number.isSafeInteger(msg.id)) li.dataset.id = String(msg.id);
        li.messageText = msg.message.text; // the text as sent (the shown one lost its formatting marks)
        return li;
    }

    #daySep(ts) {
        return h('li', { class: 'day', dataset: { day: dayKey(ts) } }, h('span', { text: dayLabel(ts) }));
    }

    #append(li, ts, fromKey) {
        const day = dayKey(ts);
        if (day !== this.#lastDay) {
            this.#list.append(this.#daySep(ts));
            this.#lastDay = day;
            this.#lastFrom = '';
        }
        if (fromKey && fromKey === this.#lastFrom && ts - this.#lastTs < GROUP_MS && this.#list.lastElementChild !== this.#divider) li.classList.add('cont');
        this.#list.append(li);
        this.#lastFrom = fromKey;
        this.#lastTs = ts;
    }

    #afterAppend(li, kind) {
        const shown = this.isShown;
        if (kind === 'own') {
            if (shown) this.scrollToBottom();
            return;
        }
        if (shown && this.#stuck) this.scrollToBottom();
        if (kind === 'quiet' || (shown && this.#stuck && !document.hidden)) return;
        if (this.unseen === 0) {
            // The first message of a new unseen batch: the divider goes
            // right above it, and it starts a new group below the divider.
            li.before(this.#divider);
            li.classList.remove('cont');
        }
        this.unseen += 1;
        this.onChange();
    }

    #onScroll() {
        if (!this.isShown) return;
        const s = this.#scroller;
        const atBottom = s.scrollHeight - s.scrollTop - s.clientHeight < BOTTOM_SLACK_PX;
        const changed = atBottom !== this.#stuck;
        this.#stuck = atBottom;
        if (atBottom && this.unseen > 0 && !document.hidden) {
            this.unseen = 0;
            this.onChange();
        } else if (changed) {
            this.onChange();
        }
    }
}
