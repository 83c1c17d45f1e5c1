// Completion in the message box: the commands while typing "/join", the
// members of the room while typing "@an" (or a command's nickname
// argument). A listbox shows above the box; ↑/↓ move, Tab or Enter picks,
// Escape closes. The box stays a textbox (the name every test and screen
// reader knows it by) with aria-autocomplete, aria-controls and
// aria-activedescendant pointing at the option chosen.

import { h } from './dom.js';
import { COMMANDS, matchCommands } from './commands.js';

const MAX_SHOWN = 8;
const NICK_ARG = new Set(COMMANDS.filter((c) => c.arg === 'nick').map((c) => c.name));

/**
 * What to complete in `value` with the caret at `caret`: {kind: 'command'
 * | 'nick', start, end, prefix, at} (start–end: the part replaced; at: the
 * nickname is written with a leading @), or null.
 */
export function completionContext(value, caret) {
    const before = value.slice(0, caret);
    const cmd = /^\/([A-Za-z]*)$/.exec(before);
    if (cmd && !value.startsWith('//')) return { kind: 'command', start: 0, end: caret, prefix: cmd[1] };
    const arg = /^\/([A-Za-z]+)\s+([A-Za-z0-9_.-]*)$/.exec(before);
    if (arg && NICK_ARG.has(arg[1].toLowerCase())) return { kind: 'nick', start: caret - arg[2].length, end: caret, prefix: arg[2], at: false };
    const at = /(^|[^A-Za-z0-9_.@-])@([A-Za-z0-9_.-]*)$/.exec(before);
    if (at) return { kind: 'nick', start: caret - at[2].length - 1, end: caret, prefix: at[2], at: true };
    return null;
}

/** The nicknames among `names` that start with `prefix` (ignoring case), shortest first, at most `max`. */
export function matchNicks(names, prefix, max = MAX_SHOWN) {
    const p = prefix.toLowerCase();
    return names.filter((n) => n.toLowerCase().startsWith(p))
        .sort((a, b) => a.length - b.length || a.localeCompare(b, undefined, { sensitivity: 'base' }))
        .slice(0, max);
}

export class Completer {
    #box;
    #list;
    #members;
    #items = []; // [{label, insert, detail}]
    #index = 0;
    #ctx = null;
    #seq = 0;

    /** `box`: the textarea; `members()`: the nicknames to offer (not our own). */
    constructor(box, members) {
        this.#box = box;
        this.#members = members;
        this.#list = h('ul', { id: 'completions', class: 'completions', hidden: true, attrs: { role: 'listbox', 'aria-label': 'Suggestions' } });
        box.setAttribute('aria-autocomplete', 'list');
        box.setAttribute('aria-controls', 'completions');
        box.insertAdjacentElement('afterend', this.#list);
        box.addEventListener('input', () => this.update());
        box.addEventListener('click', () => this.update());
        box.addEventListener('blur', () => this.close());
        // Before the box's own Enter (sending): capture phase.
        box.addEventListener('keydown', (ev) => this.#onKey(ev), true);
    }

    get isOpen() { return !this.#list.hidden; }

    /** Looks at the box again (after typing, or a click moving the caret). */
    update() {
        const box = this.#box;
        const ctx = box.selectionStart === box.selectionEnd ? completionContext(box.value, box.selectionStart) : null;
        let items = [];
        if (ctx && ctx.kind === 'command') {
            items = matchCommands(ctx.prefix).map((c) => ({ label: `/${c.name}`, detail: c.help, insert: `/${c.name} ` }));
        } else if (ctx && ctx.kind === 'nick') {
            items = matchNicks(this.#members(), ctx.prefix).map((n) => ({ label: ctx.at ? `@${n}` : n, detail: '', insert: ctx.at ? `@${n} ` : `${n} ` }));
            // Nothing to offer when the word is already complete.
            if (items.length === 1 && items[0].insert.trim().toLowerCase() === box.value.slice(ctx.start, ctx.end).toLowerCase()) items = [];
        }
        this.#ctx = ctx;
        this.#items = items.slice(0, MAX_SHOWN);
        this.#index = 0;
        this.#render();
    }

    close() {
        this.#items = [];
        this.#ctx = null;
        this.#render();
    }

    #render() {
        const open = this.#items.length > 0;
        this.#list.hidden = !open;
        if (!open) {
            this.#list.replaceChildren();
            this.#box.removeAttribute('aria-activedescendant');
            return;
        }
        const base = `completion-${++this.#seq}`;
        this.#list.replaceChildren(...this.#items.map((item, i) => h('li', {
            id: `${base}-${i}`, class: 'completion',
            attrs: { role: 'option', 'aria-selected': String(i === this.#index) },
            on: {
                // mousedown, not click: the box keeps the focus.
                mousedown: (ev) => { ev.preventDefault(); this.#index = i; this.#pick(); },
            },
        }, h('span', { class: 'completion-label', text: item.label }), item.detail ? h('span', { class: 'completion-detail', text: item.detail }) : null)));
        this.#box.setAttribute('aria-activedescendant', `${base}-${this.#index}`);
    }

    #move(by) {
        const n = this.#items.length;
        this.#index = (this.#index + by + n) % n;
        const options = this.#list.children;
        for (let i = 0; i < options.length; i++) options[i].setAttribute('aria-selected', String(i === this.#index));
        this.#box.setAttribute('aria-activedescendant', options[this.#index].id);
        options[this.#index].scrollIntoView({ block: 'nearest' });
    }

    #pick() {
        const item = this.#items[this.#index];
        const ctx = this.#ctx;
        if (!item || !ctx) return;
        const box = this.#box;
        const after = box.value.slice(ctx.end).replace(/^ /, '');
        box.value = box.value.slice(0, ctx.start) + item.insert + after;
        const caret = ctx.start + item.insert.length;
        box.setSelectionRange(caret, caret);
        this.close();
        box.dispatchEvent(new Event('input', { bubbles: true }));
    }

    #typedIsPicked() {
        const item = this.#items[this.#index];
        const ctx = this.#ctx;
        return !!item && !!ctx && this.#box.value.slice(ctx.start, ctx.end).toLowerCase() === item.insert.trim().toLowerCase();
    }

    #onKey(ev) {
        if (!this.isOpen || ev.isComposing || ev.altKey || ev.ctrlKey || ev.metaKey) return;
        if (ev.key === 'ArrowDown' || ev.key === 'ArrowUp') {
            ev.preventDefault();
            ev.stopImmediatePropagation();
            this.#move(ev.key === 'ArrowDown' ? 1 : -1);
        } else if (ev.key === 'Enter' && !ev.shiftKey && this.#typedIsPicked()) {
            this.close(); // "/help" typed in full: Enter sends it
        } else if ((ev.key === 'Tab' && !ev.shiftKey) || (ev.key === 'Enter' && !ev.shiftKey)) {
            ev.preventDefault();
            ev.stopImmediatePropagation();
            this.#pick();
        } else if (ev.key === 'Escape') {
            ev.preventDefault();
            ev.stopImmediatePropagation();
            this.close();
        }
    }
}
