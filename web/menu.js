// A small popup menu (role=menu) for the member list and the messages:
// opened by a button, keyboard operable (↑ ↓ Home End move, Enter or Space
// chooses, Escape or Tab closes), closed by a click elsewhere. One at a time.

import { h } from './dom.js';

let open = null; // {menu, anchor, onKey, onDown}

/** Closes the open menu; `refocus`: focus goes back to the button that opened it. */
export function closeMenu(refocus = false) {
    if (!open) return;
    const { menu, anchor, onDown } = open;
    open = null;
    document.removeEventListener('pointerdown', onDown, true);
    menu.remove();
    anchor.setAttribute('aria-expanded', 'false');
    if (refocus && anchor.isConnected) anchor.focus();
}

/** True while a menu is open. */
export function menuOpen() { return open !== null; }

/**
 * Opens a menu under `anchor` with `items` [{label, run, danger}] (an item
 * without `run` is left out), labelled `label`. Focus goes to the first item.
 */
export function openMenu(anchor, label, items) {
    const wasOurs = open && open.anchor === anchor;
    closeMenu();
    if (wasOurs) return; // a second click on the button closes it
    const entries = items.filter((it) => it && typeof it.run === 'function');
    if (entries.length === 0) return;
    const buttons = entries.map((it) => h('button', {
        type: 'button', class: `menu-item${it.danger ? ' danger' : ''}`, text: it.label, tabIndex: -1,
        attrs: { role: 'menuitem' },
        on: { click: () => { closeMenu(true); it.run(); } },
    }));
    const menu = h('div', { class: 'menu', attrs: { role: 'menu', 'aria-label': label } }, ...buttons);
    const move = (i) => buttons[(i + buttons.length) % buttons.length].focus();
    menu.addEventListener('keydown', (ev) => {
        const i = buttons.indexOf(document.activeElement);
        if (ev.key === 'ArrowDown') move(i + 1);
        else if (ev.key === 'ArrowUp') move(i - 1);
        else if (ev.key === 'Home') move(0);
        else if (ev.key === 'End') move(buttons.length - 1);
        else if (ev.key === 'Escape') closeMenu(true);
        else if (ev.key === 'Tab') { closeMenu(false); return; }
        else return;
        ev.preventDefault();
        ev.stopPropagation();
    });
    const onDown = (ev) => {
        if (!menu.contains(ev.target) && !anchor.contains(ev.target)) closeMenu(false);
    };
    document.addEventListener('pointerdown', onDown, true);
    document.body.append(menu);
    // Under the button, kept inside the window.
    const r = anchor.getBoundingClientRect();
    const w = menu.offsetWidth;
    const hgt = menu.offsetHeight;
    const left = Math.max(4, Math.min(r.left, innerWidth - w - 4));
    const top = r.bottom + hgt + 4 > innerHeight ? Math.max(4, r.top - hgt - 4) : r.bottom + 4;
    menu.style.left = `${left}px`;
    menu.style.top = `${top}px`;
    anchor.setAttribute('aria-haspopup', 'menu');
    anchor.setAttribute('aria-expanded', 'true');
    open = { menu, anchor, onDown };
    buttons[0].focus();
}
