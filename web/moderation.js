// Room moderation in the web client: the roles (owner, ops) that group the
// member list, the topic in the room's header (editable by its ops), the
// member menu (a private message; kick, ban, make op for those who may),
// and what happens when we are kicked or banned. The pure rules at the top
// are tested without a browser (tests/e2e/client-logic.test.mjs).

import { h } from './dom.js';
import { nickKey, roomKey } from './rules.js';
import { openMenu } from './menu.js';

/* ---------------------------------------------------------- the rules */

/** Who outranks whom: one may kick or ban only someone of a lower rank. */
export const RANK = Object.freeze({ member: 0, op: 1, owner: 2, admin: 3 });

/** 'owner', 'op' or 'member': `nick`'s role in a room with `roles` ({owner, ops}). */
export function roleOf(nick, roles) {
    if (!roles) return 'member';
    const key = nickKey(nick);
    if (roles.owner && nickKey(roles.owner) === key) return 'owner';
    return roles.ops.some((n) => nickKey(n) === key) ? 'op' : 'member';
}

/** Our rank in a room: an admin outranks its owner. */
export function myRank(me, roles, admin) {
    return admin ? RANK.admin : RANK[roleOf(me, roles)];
}

/**
 * What `me` may do to `target` in a room ({kick, ban, op, deop}): kick and
 * ban someone of a lower rank as an op or more; make an op of a member, or
 * a member of an op, as the owner or an admin. Never to oneself. (Other
 * admins look like members here: the server refuses what it must.)
 */
export function memberActions({ me, admin, roles, target }) {
    const none = { kick: false, ban: false, op: false, deop: false };
    if (nickKey(me) === nickKey(target)) return none;
    const mine = myRank(me, roles, admin);
    const role = roleOf(target, roles);
    const theirs = RANK[role];
    const moderate = mine >= RANK.op && mine > theirs;
    const appoint = mine >= RANK.owner && role !== 'owner';
    return { kick: moderate, ban: moderate, op: appoint && role === 'member', deop: appoint && role === 'op' };
}

/** The member list in groups: [{key: 'owner'|'ops'|'members', label, people}], empty groups left out. */
export function groupMembers(people, roles) {
    const groups = [
        { key: 'owner', label: 'Owner', people: [] },
        { key: 'ops', label: 'Ops', people: [] },
        { key: 'members', label: 'Members', people: [] },
    ];
    for (const nick of people) {
        const role = roleOf(nick, roles);
        groups[role === 'owner' ? 0 : role === 'op' ? 1 : 2].people.push(nick);
    }
    return groups.filter((g) => g.people.length > 0);
}

/** How long a ban lasts, as the ban dialog offers it (seconds; 0 is for ever). */
export const BAN_CHOICES = Object.freeze([
    { label: '10 minutes', seconds: 600 },
    { label: '1 hour', seconds: 3600 },
    { label: '1 day', seconds: 86400 },
    { label: 'Forever', seconds: 0 },
]);

const untilFmt = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'short' });

/** " until <date>" for a ban ending at `until` (ms), or " for good" for one that does not. */
export function untilText(until) {
    return Number.isSafeInteger(until) && until > 0 ? ` until ${untilFmt.format(new Date(until))}` : ' for good';
}

/** What to tell someone kicked or banned: a `kicked` frame's {room, by, reason, ban, until}. */
export function kickedText({ room, by, reason, ban, until }) {
    const how = ban ? `You were banned from ${room}${by ? ` by ${by}` : ''}${untilText(until)}` : `You were kicked out of ${room}${by ? ` by ${by}` : ''}`;
    return `${how}.${reason ? ` Reason: ${reason}` : ''}`;
}

/** Why a join was refused with `banned`. */
export function bannedText(room, until) {
    return `You are banned from ${room || 'that room'}${untilText(until)}.`;
}

/** System lines for a change of roles: who became the owner, an op, or stopped being one. */
export function rolesChanges(before, after) {
    const lines = [];
    const was = new Set((before ? before.ops : []).map(nickKey));
    const is = new Set(after.ops.map(nickKey));
    if (after.owner && (!before || nickKey(before.owner || '') !== nickKey(after.owner))) lines.push(`${after.owner} is now the owner`);
    for (const n of after.ops) if (!was.has(nickKey(n))) lines.push(`${n} is now an op`);
    for (const n of before ? before.ops : []) if (!is.has(nickKey(n))) lines.push(`${n} is no longer an op`);
    return lines;
}

const REFUSED = {
    not_permitted: 'You may not do that here.',
    no_such_user: 'They are not in this room.',
    no_such_room: 'That room does not exist.',
    not_in_room: 'You are not in that room.',
};

/* -------------------------------------------------------- the page */

let ctx = null; // what app.js shares: {session, state, ui, toast, activeConv, activate, privateConv, removeConv, closeDrawers, focusComposer, renderMembers, updateHeader, saveSession, endChat}
const roles = new Map(); // room -> {owner, ops}
const topics = new Map(); // room -> topic text
let admin = false;
const mod = { dialog: null, form: null, title: null, durations: null, reason: null, submit: null, action: '', room: '', nick: '' };
const topicUi = {};
const asked = new Set(); // refs of what the member menu and the topic control asked for (a slash command's answers are app.js's)

/** Remembers the ref of a request made here ('' when offline: false). */
function ask(ref) {
    if (!ref) return false;
    asked.add(ref);
    if (asked.size > 100) asked.delete(asked.values().next().value); // answers that never came
    return true;
}

/** The roles of `room` ({owner, ops}; none known: nobody). */
export function rolesOf(room) {
    return roles.get(room) || { owner: '', ops: [] };
}

/** True when we may moderate `room` (an op, its owner, or an admin). */
export function canModerate(room) {
    return ctx !== null && myRank(ctx.state.me, rolesOf(room), admin) >= RANK.op;
}

/**
 * The member list items of a room, grouped by role under headings.
 * `itemFor(nick)` makes one person's item.
 */
export function groupedMembers(room, people, itemFor) {
    const groups = groupMembers(people, rolesOf(room));
    return groups.map((g) => h('li', { class: 'member-group', dataset: { group: g.key } },
        h('h3', { class: 'member-group-title', text: `${g.label} — ${g.people.length}` }),
        h('ul', { class: 'member-sublist', attrs: { 'aria-label': g.label } }, ...g.people.map(itemFor))));
}

/** The menu of a person in a room's member list. */
export function openMemberMenu(button, nick, room) {
    const { session, state } = ctx;
    const may = memberActions({ me: state.me, admin, roles: rolesOf(room), target: nick });
    const act = (fn) => () => { if (!ask(fn())) ctx.toast('You are offline; try again once reconnected.'); };
    openMenu(button, `${nick}`, [
        { label: 'Message privately', run: () => { ctx.activate(ctx.privateConv(nick)); ctx.closeDrawers(); ctx.focusComposer(); } },
        may.kick && { label: 'Kick…', danger: true, run: () => openModDialog('kick', room, nick) },
        may.ban && { label: 'Ban…', danger: true, run: () => openModDialog('ban', room, nick) },
        may.op && { label: 'Make op', run: act(() => session.setOp(room, nick, true)) },
        may.deop && { label: 'Remove op', run: act(() => session.setOp(room, nick, false)) },
    ]);
}

function buildModDialog() {
    mod.title = h('h2', { id: 'mod-dialog-title' });
    mod.durations = h('fieldset', { class: 'modes durations' }, h('legend', { text: 'For how long' }),
        ...BAN_CHOICES.map((c, i) => h('label', { class: 'mode' },
            h('input', { type: 'radio', name: 'ban-for', value: String(c.seconds), defaultChecked: i === 1 }), h('span', { text: c.label }))));
    mod.reason = h('input', { id: 'mod-reason', type: 'text', maxLength: 300, autocomplete: 'off' });
    mod.submit = h('button', { class: 'primary danger', type: 'submit' });
    const cancel = h('button', { class: 'side-btn subtle', type: 'button', text: 'Cancel', on: { click: () => mod.dialog.close() } });
    mod.form = h('form', { class: 'dialog-body', noValidate: true },
        mod.durations,
        h('div', { class: 'field' }, h('label', { htmlFor: 'mod-reason', text: 'Reason (optional)' }), mod.reason),
        h('div', { class: 'dialog-actions' }, cancel, mod.submit));
    mod.form.addEventListener('submit', (ev) => {
        ev.preventDefault();
        const reason = mod.reason.value.trim();
        let ref;
        if (mod.action === 'ban') {
            const chosen = mod.form.querySelector('input[name="ban-for"]:checked');
            ref = ctx.session.ban(mod.room, mod.nick, chosen ? Number(chosen.value) : 0, reason);
        } else {
            ref = ctx.session.kick(mod.room, mod.nick, reason);
        }
        if (!ask(ref)) ctx.toast('You are offline; try again once reconnected.');
        mod.dialog.close();
    });
    mod.dialog = h('dialog', { class: 'dialog', id: 'mod-dialog', attrs: { 'aria-labelledby': 'mod-dialog-title' } },
        h('div', { class: 'dialog-head' }, mod.title), mod.form);
    document.body.append(mod.dialog);
}

/** Asks for a kick's reason, or a ban's length and reason. */
function openModDialog(action, room, nick) {
    if (!mod.dialog) buildModDialog();
    mod.action = action;
    mod.room = room;
    mod.nick = nick;
    mod.form.reset();
    mod.title.textContent = action === 'ban' ? `Ban ${nick} from ${room}` : `Kick ${nick} out of ${room}`;
    mod.durations.hidden = action !== 'ban';
    mod.submit.textContent = action === 'ban' ? 'Ban' : 'Kick';
    mod.dialog.showModal();
    (action === 'ban' ? mod.form.querySelector('input[name="ban-for"]:checked') : mod.reason).focus();
}

/** The topic under the active room's name, with its edit control for ops. */
export function renderTopic() {
    if (!ctx) return;
    const conv = ctx.activeConv();
    const room = conv && conv.kind === 'room' ? conv.name : '';
    const topic = room ? topics.get(room) || '' : '';
    const editable = room !== '' && canModerate(room);
    topicUi.text.textContent = topic;
    topicUi.text.title = topic;
    topicUi.text.hidden = topic === '';
    topicUi.edit.hidden = !editable;
    topicUi.edit.textContent = topic ? 'Edit topic' : 'Set a topic';
    topicUi.line.hidden = room === '' || (topic === '' && !editable);
    if (!editable || room === '') topicUi.form.hidden = true;
}

function editTopic() {
    const conv = ctx.activeConv();
    if (!conv || conv.kind !== 'room') return;
    topicUi.form.dataset.room = conv.name;
    topicUi.input.value = topics.get(conv.name) || '';
    topicUi.line.hidden = true;
    topicUi.form.hidden = false;
    topicUi.input.focus();
    topicUi.input.select();
}

function endTopicEdit() {
    topicUi.form.hidden = true;
    renderTopic();
    if (!topicUi.edit.hidden) topicUi.edit.focus();
}

function addSystem(room, text, ts) {
    const conv = ctx.state.convs.get(`r:${roomKey(room)}`);
    if (conv) conv.pane.addSystem(text, Number.isFinite(ts) ? ts : Date.now());
}

/** Wires moderation to the page. */
export function initModeration(shared) {
    ctx = shared;
    const { session, state } = ctx;
    Object.assign(topicUi, {
        line: document.getElementById('topic-line'), text: document.getElementById('conv-topic'),
        edit: document.getElementById('topic-edit'), form: document.getElementById('topic-form'),
        input: document.getElementById('topic-input'), cancel: document.getElementById('topic-cancel'),
    });
    topicUi.edit.addEventListener('click', editTopic);
    topicUi.cancel.addEventListener('click', endTopicEdit);
    topicUi.input.addEventListener('keydown', (ev) => {
        if (ev.key === 'Escape') {
            ev.preventDefault();
            ev.stopPropagation();
            endTopicEdit();
        }
    });
    topicUi.form.addEventListener('submit', (ev) => {
        ev.preventDefault();
        const room = topicUi.form.dataset.room;
        const text = topicUi.input.value.trim();
        if (text.length > 300) {
            ctx.toast('A topic is at most 300 characters.');
            return;
        }
        if (!ask(session.setTopic(room, text))) {
            ctx.toast('You are offline; try again once reconnected.');
            return;
        }
        endTopicEdit();
    });

    session.addEventListener('welcome', ({ detail }) => {
        admin = detail.admin === true;
        renderTopic();
    });
    session.addEventListener('joined', ({ detail }) => {
        roles.set(detail.room, detail.roles);
        topics.set(detail.room, detail.topic);
        ctx.renderMembers();
        renderTopic();
    });
    session.addEventListener('left', ({ detail }) => {
        roles.delete(detail.room);
        topics.delete(detail.room);
        renderTopic();
    });
    session.addEventListener('roles', ({ detail }) => {
        const before = roles.get(detail.room);
        const after = { owner: detail.owner, ops: detail.ops };
        roles.set(detail.room, after);
        for (const line of rolesChanges(before, after)) addSystem(detail.room, line);
        ctx.renderMembers();
        renderTopic();
    });
    session.addEventListener('topic', ({ detail }) => {
        topics.set(detail.room, detail.topic);
        const who = detail.by || 'Someone';
        addSystem(detail.room, detail.topic ? `${who} set the topic: ${detail.topic}` : `${who} cleared the topic`, detail.ts);
        renderTopic();
    });
    session.addEventListener('kicked', ({ detail }) => {
        const { room } = detail;
        roles.delete(room);
        topics.delete(room);
        state.members.delete(room);
        const conv = state.convs.get(`r:${roomKey(room)}`);
        if (conv) ctx.removeConv(conv);
        ctx.saveSession();
        ctx.toast(kickedText(detail), 15000);
        renderTopic();
    });
    session.addEventListener('server-banned', ({ detail }) => {
        ctx.endChat(`You are banned from this server${untilText(detail.until)}.`);
    });
    session.addEventListener('done', ({ detail }) => {
        const r = detail.request;
        if (!r || !asked.delete(detail.ref)) return;
        const said = { kick: `${r.nickname} was kicked out of ${r.room}.`, ban: `${r.nickname} is banned from ${r.room}${untilText(r.seconds ? Date.now() + r.seconds * 1000 : 0)}.` };
        if (said[r.type]) ctx.toast(said[r.type]);
    });
    session.addEventListener('request-error', ({ detail }) => {
        const { code, message, request } = detail;
        const type = request ? request.type : '';
        if (code === 'banned' && (type === 'join' || !request)) {
            const room = detail.room || (request && request.room) || '';
            const text = bannedText(room, detail.until);
            const conv = room ? state.convs.get(`r:${roomKey(room)}`) : null;
            if (conv) {
                // Banned while the line was down: the rejoin was refused.
                state.members.delete(room);
                ctx.removeConv(conv);
                ctx.saveSession();
            }
            ctx.ui.joinError.textContent = text;
            ctx.toast(text, 10000);
            return;
        }
        if (!['kick', 'ban', 'op', 'deop', 'topic'].includes(type) || !asked.delete(detail.ref)) return;
        const who = request.nickname || '';
        const why = code === 'no_such_user' && who ? `${who} is not in ${request.room}.` : REFUSED[code] || message || code;
        ctx.toast(type === 'topic' ? `The topic was not changed: ${why}` : why);
    });
}
