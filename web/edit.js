// Editing and deleting messages in the web client: ↑ in an empty message
// box edits our last message of the conversation (Enter saves, Escape
// cancels), each message has a menu (Edit and Delete for its author, Delete
// for the room's ops), an edited message says "(edited)" and a deleted one
// leaves a "message deleted" line — live from `edited`/`deleted` frames, and
// in history (`edited_ts`, `deleted`).

import { h } from './dom.js';
import { appendFormatted, isAction } from './format.js';
import { nickKey, roomKey, utf8Length } from './rules.js';
import { openMenu } from './menu.js';
import { canModerate } from './moderation.js';

export const DELETED_TEXT = 'message deleted';

const fullFmt = new Intl.DateTimeFormat(undefined, { dateStyle: 'full', timeStyle: 'medium' });

/** "(edited)"'s tooltip: when. */
export function editedTitle(editedTs) {
    return Number.isFinite(editedTs) ? `Edited ${fullFmt.format(new Date(editedTs))}` : 'Edited';
}

/**
 * What the message menu offers: Edit and Delete to the author of a message
 * with an id (not deleted), Delete to the ops of its room.
 */
export function messageActions({ own, hasId, deleted, room, moderator }) {
    if (!hasId || deleted) return { edit: false, delete: false };
    return { edit: own, delete: own || (room && moderator) };
}

let ctx = null; // {session, state, ui, toast, activeConv, updateComposer}
const rawText = new WeakMap(); // message element -> its text as written (the box gets it back to edit)
let editing = null; // {conv, li, id, draft}: the message being edited in the box, and the box's text before
let bar = null;

/** True while the message box holds an edit. */
export function isEditing() { return editing !== null; }

function convOf(detail) {
    const { state } = ctx;
    if (detail.room !== undefined) return state.convs.get(`r:${roomKey(detail.room)}`) || null;
    if (detail.with !== undefined) return state.convs.get(`p:${nickKey(detail.with)}`) || null;
    return null;
}

/** The element of message `id`: in the conversation the frame names, or else in any. */
function findMessage(detail) {
    const conv = convOf(detail);
    if (conv) {
        const li = conv.pane.messageById(detail.id);
        if (li) return { conv, li };
    }
    for (const c of ctx.state.convs.values()) {
        const li = c.pane.messageById(detail.id);
        if (li) return { conv: c, li };
    }
    return null;
}

/** Puts "(edited)" after the text, its tooltip saying when. */
function markEdited(li, editedTs) {
    li.querySelector('.edited')?.remove();
    const mark = h('span', { class: 'edited', text: '(edited)', title: editedTitle(editedTs) });
    li.querySelector('.text').after(' ', mark);
}

/** A message's text replaced by an edit. */
export function applyEdit(li, text, editedTs) {
    if (li.classList.contains('deleted')) return;
    const span = li.querySelector('.text');
    span.replaceChildren();
    appendFormatted(span, text); // as Pane shows a message
    li.classList.toggle('action', isAction(li.dataset.from, text));
    li.messageText = text;
    rawText.set(li, text);
    markEdited(li, editedTs);
}

/** A message turned into the line that says it was deleted. */
export function applyDelete(li) {
    if (editing && editing.li === li) endEdit();
    li.classList.add('deleted');
    li.querySelector('.edited')?.remove();
    li.querySelector('.msg-menu-btn')?.remove();
    li.querySelector('.text').replaceChildren(DELETED_TEXT);
    li.classList.remove('action');
    delete li.messageText;
    rawText.delete(li);
}

/** Pane.decorate: the menu button, "(edited)" and the tombstone of a message being made. */
export function decorateMessage(conv, li, msg) {
    if (msg.deleted === true) {
        li.classList.add('deleted');
        li.classList.remove('action');
        li.querySelector('.text').replaceChildren(DELETED_TEXT);
        return;
    }
    rawText.set(li, msg.message.text);
    if (Number.isFinite(msg.edited_ts)) markEdited(li, msg.edited_ts);
    const btn = h('button', {
        type: 'button', class: 'msg-menu-btn icon-btn', title: 'Message actions',
        attrs: { 'aria-label': `Actions for the message from ${msg.from}`, 'aria-haspopup': 'menu', 'aria-expanded': 'false' },
        on: { click: () => openMessageMenu(conv, li, btn) },
    }, h('span', { text: '⋯', attrs: { 'aria-hidden': 'true' } }));
    li.querySelector('.bubble').append(btn);
}

function openMessageMenu(conv, li, btn) {
    const id = Number(li.dataset.id);
    const may = messageActions({
        own: li.classList.contains('own'), hasId: Number.isSafeInteger(id) && id > 0, deleted: li.classList.contains('deleted'),
        room: conv.kind === 'room', moderator: conv.kind === 'room' && canModerate(conv.name),
    });
    if (!may.edit && !may.delete) {
        ctx.toast(Number.isSafeInteger(id) && id > 0 ? 'Only its author can change this message.' : 'The message is still being sent.');
        return;
    }
    openMenu(btn, 'Message actions', [
        may.edit && { label: 'Edit', run: () => beginEdit(conv, li) },
        may.delete && { label: 'Delete', danger: true, run: () => { if (!ctx.session.deleteMessage(id)) ctx.toast('You are offline; try again once reconnected.'); } },
    ]);
}

/** The box takes message `li`'s text to edit. */
function beginEdit(conv, li) {
    if (editing) endEdit();
    if (ctx.activeConv() !== conv) return;
    const { ui } = ctx;
    editing = { conv, li, id: Number(li.dataset.id), draft: ui.message.value };
    li.classList.add('editing');
    ui.message.value = rawText.get(li) ?? li.querySelector('.text').textContent;
    if (!bar) {
        bar = h('div', { class: 'edit-bar', id: 'edit-bar' },
            h('span', { text: 'Editing your message · Enter saves · Escape cancels' }),
            h('button', { type: 'button', class: 'link-btn', text: 'Cancel', on: { click: () => { endEdit(); ui.message.focus(); } } }));
    }
    ui.composer.prepend(bar);
    ui.composer.classList.add('is-editing');
    ui.message.focus();
    ui.message.setSelectionRange(ui.message.value.length, ui.message.value.length);
    ctx.updateComposer();
}

/** Leaves edit mode; the box gets back what it held before. */
export function endEdit() {
    if (!editing) return;
    const { ui } = ctx;
    editing.li.classList.remove('editing');
    ui.message.value = editing.draft;
    editing = null;
    bar?.remove();
    ui.composer.classList.remove('is-editing');
    ctx.updateComposer();
}

function saveEdit() {
    const { ui, session, state } = ctx;
    const text = ui.message.value.replace(/\s+$/u, '');
    const { id, li } = editing;
    if (text.trim() === '') {
        ctx.toast('A message cannot be empty: delete it from its menu instead.');
        return;
    }
    if (utf8Length(text) > state.limits.max_text) return;
    if (text === rawText.get(li)) {
        endEdit();
        return;
    }
    if (!session.editMessage(id, text)) {
        ctx.toast('Not connected. The edit was not sent.');
        return;
    }
    endEdit();
}

/** The last message of ours in `conv` that can be edited (with an id, not deleted). */
function lastOwn(conv) {
    const mine = conv.pane.root.querySelectorAll('li.msg.own[data-id]:not(.deleted)');
    return mine.length > 0 ? mine[mine.length - 1] : null;
}

/** Wires editing and deleting to the page. */
export function initEdit(shared) {
    ctx = shared;
    const { session, ui } = ctx;
    // Capturing on the form: these keys are the edit's before the box's own handling.
    ui.composer.addEventListener('keydown', (ev) => {
        if (ev.target !== ui.message || ev.isComposing) return;
        if (!editing) {
            if (ev.key === 'ArrowUp' && !ev.shiftKey && !ev.altKey && !ev.ctrlKey && !ev.metaKey && ui.message.value === '') {
                const conv = ctx.activeConv();
                const li = conv && lastOwn(conv);
                if (li) {
                    ev.preventDefault();
                    ev.stopPropagation();
                    beginEdit(conv, li);
                }
            }
            return;
        }
        if (ev.key === 'Escape') {
            ev.preventDefault();
            ev.stopPropagation();
            endEdit();
        } else if (ev.key === 'Enter' && !ev.shiftKey && !ev.ctrlKey && !ev.altKey && !ev.metaKey) {
            ev.preventDefault();
            ev.stopPropagation();
            saveEdit();
        }
    }, true);
    ui.composer.addEventListener('submit', (ev) => {
        if (!editing) return;
        ev.preventDefault();
        ev.stopImmediatePropagation();
        saveEdit();
    }, true);

    session.addEventListener('edited', ({ detail }) => {
        const found = findMessage(detail);
        if (found) applyEdit(found.li, detail.text, detail.editedTs);
    });
    session.addEventListener('deleted', ({ detail }) => {
        const found = findMessage(detail);
        if (found) applyDelete(found.li);
    });
    session.addEventListener('request-error', ({ detail }) => {
        const type = detail.request ? detail.request.type : '';
        if (type !== 'edit' && type !== 'delete') return;
        const what = type === 'edit' ? 'edit' : 'delete';
        ctx.toast(detail.code === 'not_permitted' ? `You may not ${what} that message.`
            : detail.code === 'not_found' ? 'That message is gone.' : `Could not ${what} the message: ${detail.message || detail.code}`);
    });
}
