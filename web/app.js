// The tertulia web client: the login form, the sidebar of conversations,
// the message panes, the member list and the composer, driven by the events
// of one Session. Nothing here parses the wire protocol (session.js does)
// and no network text is ever inserted as HTML (dom.js).

import { Session, socketUrl } from './session.js';
import { nicknameProblem, roomProblem, passwordProblem, nickKey, roomKey, utf8Length, DEFAULT_LIMITS } from './rules.js';
import { h, $, avatar } from './dom.js';
import { Pane } from './pane.js';
import { parseInput, runCommand } from './commands.js';
import { Completer } from './complete.js';
import { Attention, mentionsMe } from './notify.js';

const STORE_NICK = 'tertulia.nickname';
const STORE_ROOM = 'tertulia.room';
const STORE_MODE = 'tertulia.mode'; // the way in used last: 'login', 'register' or 'guest'
// Where this browser was in the chat ({nickname, account, resume, rooms,
// privates, active, places}): a reload, a second tab or a restarted browser
// comes back there. A guest's resume token is kept here too.
const STORE_SESSION = 'tertulia.session';
// An account's login token ({nickname, token}), apart from the rest so that
// a tab saving where it was never puts back a token another tab replaced
// (docs/SECURITY.md, "Where the web client keeps its token").
const STORE_ACCOUNT = 'tertulia.account';
const DEFAULT_ROOM = 'general';
const COUNTER_FROM = 0.8; // show the length counter from 80% of the limit

// Tests may shorten the reconnect and ping timings by defining
// `tertuliaConfig` before this module runs; a person never needs to.
const config = globalThis.tertuliaConfig || {};

const session = new Session({ url: socketUrl(location.href), timing: config.timing });

const ui = {
    boot: $('boot'),
    loginView: $('login-view'), loginForm: $('login-form'), nickname: $('nickname'), room: $('room'),
    nicknameError: $('nickname-error'), roomError: $('room-error'), loginError: $('login-error'),
    loginSubmit: $('login-submit'), invite: $('invite'), inviteRoom: $('invite-room'),
    loginNote: $('login-note'), modeHint: $('mode-hint'), modes: [...document.querySelectorAll('input[name="mode"]')],
    passwordField: $('password-field'), password: $('password'), passwordHint: $('password-hint'), passwordError: $('password-error'),
    chatView: $('chat-view'), conversation: $('conversation'), sidebar: $('sidebar'), people: $('people'), scrim: $('scrim'),
    roomList: $('room-list'), dmList: $('dm-list'), dmEmpty: $('dm-empty'),
    joinForm: $('join-form'), joinRoom: $('join-room'), joinError: $('join-error'), joinSubmit: $('join-submit'),
    browseRooms: $('browse-rooms'), meAvatar: $('me-avatar'), meName: $('me-name'), meState: $('me-state'), logout: $('logout'),
    account: $('account'), accountDialog: $('account-dialog'), passwordForm: $('password-form'),
    pwOld: $('pw-old'), pwNew: $('pw-new'), pwRepeat: $('pw-repeat'), pwError: $('password-form-error'),
    pwStatus: $('password-form-status'), pwSubmit: $('password-submit'), logoutEverywhere: $('logout-everywhere'),
    sidebarOpen: $('sidebar-open'), sidebarClose: $('sidebar-close'), navBadge: $('nav-badge'),
    peopleOpen: $('people-open'), peopleClose: $('people-close'), memberList: $('member-list'), peopleHeading: $('people-heading'),
    convTitle: $('conv-title'), convSub: $('conv-sub'), conn: $('conn-status'), connText: $('conn-text'),
    share: $('share'), leave: $('leave'), leaveText: $('leave-text'), banner: $('banner'), bannerText: $('banner-text'), retry: $('retry'),
    panes: $('panes'), emptyPane: $('empty-pane'), jump: $('jump'), jumpText: $('jump-text'),
    composer: $('composer'), message: $('message'), counter: $('counter'), send: $('send'),
    roomsDialog: $('rooms-dialog'), roomsDialogList: $('rooms-dialog-list'), roomsDialogStatus: $('rooms-dialog-status'),
    awayForm: $('away-form'), awayText: $('away-text'), away: $('away'),
    toast: $('toast'),
    mute: $('mute'), emptyJoin: $('empty-join'), emptyJoinRoom: $('empty-join-room'), emptyJoinError: $('empty-join-error'),
};

const state = {
    me: '',
    limits: { ...DEFAULT_LIMITS },
    convs: new Map(), // conversation id -> conversation
    active: '', // the id of the conversation on screen
    members: new Map(), // room -> Map(nickKey -> nickname)
    away: new Map(), // nickKey -> away text ('' when none): the people known to be away
    meAway: null, // our own away status as we set it ({text}), or null
    switchTo: new Set(), // rooms whose `joined` should be brought on screen
    conversationsRef: '', // a `conversations` request waiting for its answer
    closed: new Map(), // nickKey -> last message id: stored conversations closed here, kept off the list until a newer message
    restoring: '', // '', 'guest' or 'account': the page is logging back in as an earlier one
    restore: null, // what savedSession() found: privates to reopen, the pane on screen, scroll places
    status: 'idle',
    retryAt: 0,
};

const roomId = (room) => `r:${roomKey(room)}`;
const privateId = (nick) => `p:${nickKey(nick)}`;

function store(key, value) {
    try { localStorage.setItem(key, value); } catch { /* storage disabled: remember nothing */ }
}

function recall(key) {
    try { return localStorage.getItem(key) || ''; } catch { return ''; }
}

function forget(key) {
    try { localStorage.removeItem(key); } catch { /* storage disabled */ }
}

function saveSession() {
    if (!session.loggedIn || (!session.account && !session.resume)) return;
    const active = activeConv();
    const places = {};
    const privates = [];
    for (const conv of state.convs.values()) {
        if (conv.kind === 'private') privates.push(conv.name);
        const place = conv.pane.place;
        if (place) places[conv.id] = place;
    }
    store(STORE_SESSION, JSON.stringify({
        nickname: session.nickname, account: session.account, resume: session.account ? '' : session.resume,
        rooms: session.rooms, last: session.lastIds, privates, active: active ? active.id : '', places,
        closed: Object.fromEntries(state.closed),
    }));
}

function forgetSession() {
    forget(STORE_SESSION);
}

const strings = (list) => (Array.isArray(list) ? list.filter((x) => typeof x === 'string' && x !== '') : []);

/** {room: last message id seen} from storage, only sane entries. */
function lastIds(last) {
    const out = {};
    if (last && typeof last === 'object') {
        for (const [room, id] of Object.entries(last)) if (Number.isSafeInteger(id) && id > 0) out[room] = id;
    }
    return out;
}

/** Where this browser was: {nickname, account, resume, rooms, privates, active, places}, or null. */
function savedSession() {
    try {
        const s = JSON.parse(recall(STORE_SESSION) || 'null');
        if (s && typeof s.nickname === 'string' && !nicknameProblem(s.nickname)) {
            let active = typeof s.active === 'string' ? s.active : '';
            // Older pages kept the room's name only.
            if (active && !/^[rp]:/.test(active)) active = roomId(active);
            return {
                nickname: s.nickname, account: s.account === true,
                resume: typeof s.resume === 'string' ? s.resume : '',
                rooms: strings(s.rooms), privates: strings(s.privates).filter((n) => !nicknameProblem(n)),
                active, places: s.places && typeof s.places === 'object' ? s.places : {},
                last: lastIds(s.last), closed: lastIds(s.closed),
            };
        }
    } catch { /* not ours, or damaged: start afresh */ }
    return null;
}

/** The account this browser is logged in as: {nickname, token}, or null. */
function savedAccount() {
    try {
        const a = JSON.parse(recall(STORE_ACCOUNT) || 'null');
        if (a && typeof a.nickname === 'string' && typeof a.token === 'string' && a.token) return { nickname: a.nickname, token: a.token };
    } catch { /* damaged: log in again */ }
    return null;
}

function forgetAccount() {
    forget(STORE_ACCOUNT);
}

session.addEventListener('token', ({ detail }) => {
    store(STORE_ACCOUNT, JSON.stringify({ nickname: session.nickname, token: detail.token }));
});

/* ---------------------------------------------------------------- login */

const touched = { nickname: false, room: false, password: false };
const MODES = {
    login: { submit: 'Log in', hint: 'Log in to your account with its password.' },
    register: { submit: 'Create account', hint: 'An account keeps your nickname yours, on every device.' },
    guest: { submit: 'Join the chat', hint: 'No account needed. Your nickname is yours while you are connected.' },
};
let mode = 'guest';

function showFieldProblem(input, errorEl, problem, force) {
    const show = problem !== '' && (force || input.value !== '');
    errorEl.textContent = show ? problem : '';
    input.setAttribute('aria-invalid', show ? 'true' : 'false');
    return problem === '';
}

function checkLoginField(which, force = false) {
    if (which === 'password') {
        if (mode === 'guest') return true;
        return showFieldProblem(ui.password, ui.passwordError, passwordProblem(ui.password.value, mode === 'register'), force || touched.password);
    }
    const input = which === 'nickname' ? ui.nickname : ui.room;
    const problem = which === 'nickname' ? nicknameProblem(input.value) : roomProblem(input.value);
    return showFieldProblem(input, which === 'nickname' ? ui.nicknameError : ui.roomError, problem, force || touched[which]);
}

function setLoginBusy(busy) {
    ui.loginSubmit.disabled = busy;
    ui.loginSubmit.textContent = busy ? (mode === 'guest' ? 'Connecting…' : 'Checking…') : MODES[mode].submit;
    ui.loginForm.setAttribute('aria-busy', String(busy));
}

/** Shows the fields of one way in: a password for an account, with its rules when registering. */
function setMode(next) {
    mode = MODES[next] ? next : 'guest';
    for (const radio of ui.modes) radio.checked = radio.value === mode;
    ui.passwordField.hidden = mode === 'guest';
    ui.passwordHint.hidden = mode !== 'register';
    ui.password.autocomplete = mode === 'register' ? 'new-password' : 'current-password';
    ui.modeHint.textContent = MODES[mode].hint;
    ui.loginError.textContent = '';
    touched.password = false;
    showFieldProblem(ui.password, ui.passwordError, '', false);
    setLoginBusy(false);
}

/** The first empty field, or the button: where typing should start. */
function focusLoginForm() {
    if (!ui.nickname.value || !checkLoginField('nickname')) ui.nickname.focus();
    else if (mode !== 'guest' && !ui.password.value) ui.password.focus();
    else ui.loginSubmit.focus();
}

function showLoginView(note = '') {
    ui.boot.textContent = '';
    ui.loginNote.textContent = note;
    ui.chatView.hidden = true;
    ui.loginView.hidden = false;
    focusLoginForm();
}

function initLogin() {
    const params = new URLSearchParams(location.search);
    const invited = params.get('room') || '';
    ui.nickname.value = recall(STORE_NICK);
    const remembered = recall(STORE_ROOM);
    ui.room.value = invited || remembered || DEFAULT_ROOM;
    // The address bar carries the current room, so only a room other than
    // the remembered one is an invitation worth pointing out.
    if (invited && invited !== remembered) {
        ui.inviteRoom.textContent = invited;
        ui.invite.hidden = false;
    }
    setMode(recall(STORE_MODE) || 'guest');
    for (const radio of ui.modes) {
        radio.addEventListener('change', () => {
            if (!radio.checked) return;
            setMode(radio.value);
            ui.loginNote.textContent = '';
        });
    }
    for (const which of ['nickname', 'password', 'room']) {
        const input = ui[which];
        input.addEventListener('input', () => {
            ui.loginError.textContent = '';
            checkLoginField(which);
        });
        input.addEventListener('blur', () => {
            if (input.value !== '') touched[which] = true;
            checkLoginField(which);
        });
    }
    if (ui.nickname.value && checkLoginField('nickname')) checkLoginField('room');
    ui.loginForm.addEventListener('submit', (ev) => {
        ev.preventDefault();
        if (ui.loginSubmit.disabled) return;
        touched.nickname = touched.room = touched.password = true;
        const nickOk = checkLoginField('nickname', true);
        const passwordOk = checkLoginField('password', true);
        const roomOk = checkLoginField('room', true);
        if (!nickOk || !passwordOk || !roomOk) {
            (!nickOk ? ui.nickname : !passwordOk ? ui.password : ui.room).focus();
            return;
        }
        ui.loginError.textContent = '';
        ui.loginNote.textContent = '';
        setLoginBusy(true);
        state.restoring = '';
        state.restore = null;
        if (mode === 'login') session.loginPassword(ui.nickname.value, ui.password.value, ui.room.value);
        else if (mode === 'register') session.register(ui.nickname.value, ui.password.value, ui.room.value);
        else session.login(ui.nickname.value, ui.room.value);
        state.switchTo.add(roomKey(ui.room.value));
    });
    const account = savedAccount();
    const saved = savedSession();
    if (account) {
        // This browser is logged in to an account (a reload, another tab, a
        // restarted browser): straight back in, where it was.
        const here = saved && saved.account && nickKey(saved.nickname) === nickKey(account.nickname) ? saved : null;
        ui.nickname.value = account.nickname;
        beginRestore('account', here);
        session.restoreAccount(account.token, account.nickname, here ? here.rooms : [], here ? here.last : {});
    } else if (saved && !saved.account && saved.resume) {
        // The same, as the same guest.
        ui.nickname.value = saved.nickname;
        beginRestore('guest', saved);
        session.restore(saved.nickname, saved.resume, saved.rooms, saved.last);
    } else {
        showLoginView();
    }
}

function beginRestore(kind, saved) {
    state.restoring = kind;
    state.restore = saved;
    ui.boot.textContent = 'Connecting…';
    setLoginBusy(true);
    if (saved && saved.active.startsWith('r:')) state.switchTo.add(saved.active.slice(2));
}

/** Plain words for a refused login, and the field to fix. */
function explainLoginFailure({ code, message, retryAfterMs }) {
    const nick = ui.nickname.value;
    switch (code) {
    case 'auth_failed':
        return { where: 'password', text: 'Wrong nickname or password.' };
    case 'nickname_registered':
        return { where: 'nickname', text: 'That nickname belongs to an account: log in with its password.' };
    case 'nickname_taken':
        return { where: 'nickname', text: mode === 'register' ? `“${nick}” is already taken. Choose another nickname, or log in if it is yours.` : `“${nick}” is already taken. Choose another nickname.` };
    case 'nickname_invalid':
        return { where: 'nickname', text: message || 'This nickname is not allowed.' };
    case 'room_invalid':
        return { where: 'room', text: message || 'This room name is not allowed.' };
    case 'password_invalid':
        return { where: 'password', text: 'The password must be 8 to 1,024 bytes long (at least 8 characters).' };
    case 'rate_limited': {
        const secs = Math.ceil((retryAfterMs || 0) / 1000);
        return { where: 'form', text: secs > 0 ? `Too many attempts. Try again in ${secs} s.` : 'Too many attempts. Try again in a moment.' };
    }
    case 'registration_closed':
        return { where: 'form', text: 'This server takes no new accounts. Log in, or continue as a guest.' };
    case 'guests_closed':
        return { where: 'form', text: 'This server takes accounts only: log in, or register.' };
    default:
        return { where: 'form', text: message || 'Could not log in. Try again.' };
    }
}

session.addEventListener('login-failed', ({ detail }) => {
    const restoring = state.restoring;
    state.restoring = '';
    state.restore = null;
    state.switchTo.clear();
    if (restoring && detail.code === 'auth_failed') {
        // The earlier page's session has ended (an account's token revoked
        // or expired; a guest's grace time passed).
        forgetSession();
        if (restoring === 'account') {
            forgetAccount();
            setMode('login');
            showLoginView('Your session ended: log in again.');
        } else {
            setMode('guest');
            showLoginView();
            ui.loginError.textContent = 'Your earlier session has ended. Join again.';
        }
        return;
    }
    if (detail.code === 'guests_closed') setMode('login');
    setLoginBusy(false);
    showLoginView(ui.loginNote.textContent);
    const { where, text } = explainLoginFailure(detail);
    if (where === 'nickname') {
        showFieldProblem(ui.nickname, ui.nicknameError, text, true);
        ui.nickname.focus();
        ui.nickname.select();
    } else if (where === 'room') {
        showFieldProblem(ui.room, ui.roomError, text, true);
        ui.room.focus();
    } else if (where === 'password' && mode !== 'guest') {
        ui.loginError.textContent = text;
        ui.password.focus();
        ui.password.select();
    } else {
        ui.loginError.textContent = text;
    }
});

/* ---------------------------------------------------------- chat setup */

session.addEventListener('welcome', ({ detail }) => {
    state.me = detail.nickname;
    const max = Number(detail.limits && detail.limits.max_text);
    if (Number.isSafeInteger(max) && max > 0) state.limits.max_text = max;
    // An account's stored conversations and their unread counts, at every
    // login: a reconnect learns this way what came while it was away.
    state.conversationsRef = detail.account ? session.conversations() : '';
    if (!detail.first) {
        // The server may have forgotten our away status while the line was down.
        if (state.meAway) session.setAway(true, state.meAway.text);
        flushReads(); // the read markers the drop kept from going out
        if (!held.timer) resendHeld(); // messages flood control held, if the drop kept them
        noteRead(activeConv());
        return;
    }
    store(STORE_NICK, detail.nickname);
    if (!state.restoring) {
        store(STORE_ROOM, ui.room.value);
        store(STORE_MODE, detail.account ? 'login' : 'guest');
    }
    ui.nickname.value = detail.nickname;
    ui.password.value = '';
    setMode(detail.account ? 'login' : 'guest');
    setLoginBusy(false);
    ui.meName.textContent = detail.nickname;
    ui.meAvatar.replaceWith(Object.assign(avatar(detail.nickname), { id: 'me-avatar' }));
    ui.meAvatar = $('me-avatar');
    ui.account.hidden = !detail.account;
    ui.logout.title = detail.account ? 'Log out of this browser (your other devices stay logged in)' : 'Log out';
    ui.boot.textContent = '';
    ui.loginNote.textContent = '';
    ui.loginView.hidden = true;
    ui.chatView.hidden = false;
    ui.conversation.hidden = false;
    // A restored page reopens its private conversations, and brings back
    // the one that was on screen (a room's comes with its `joined`).
    const saved = state.restore;
    if (saved) {
        for (const [key, id] of Object.entries(saved.closed)) state.closed.set(key, id);
        for (const nick of saved.privates) if (!session.isMe(nick)) privateConv(nick);
        const conv = saved.active.startsWith('p:') ? state.convs.get(saved.active) : null;
        if (conv) {
            activate(conv);
            focusComposer();
        }
    }
    state.restoring = '';
    updateEmptyState();
    updateComposer();
    if (!saved) saveSession(); // a restored page saves once its rooms are back
});

// A reload or a closed tab: remember where we were (rooms, the one on screen).
window.addEventListener('pagehide', () => {
    flushReads();
    saveSession();
});

function makeConv(id, kind, name) {
    const conv = {
        id, kind, name,
        pane: new Pane(name),
        pending: new Map(), // request ref -> {li, text}
        acked: new Set(), // ids of our messages already confirmed by an ack
        draft: '',
        older: 'none', // 'none' (not loaded), 'loading', 'more' or 'start'
        // Unread, for a private conversation: `baseUnread` messages up to
        // `baseLastId` as the server counted them (`conversations`), and
        // the ids of those that came live since.
        baseUnread: 0,
        baseLastId: 0,
        unreadIds: new Set(),
        readUpTo: 0, // the read marker as far as this page knows (sent, or heard from another tab)
        firstLoad: false, // the first page of its history is on its way
        catchRef: '', // a history request fetching what came while the connection was down
        typing: new Map(), // nickKey -> {nick, timer}: who is typing here
    };
    conv.badge = h('span', { class: 'badge', hidden: true });
    const label = h('span', { class: 'conv-name', text: name });
    conv.button = h('button', {
        type: 'button', class: 'conv', dataset: { conv: id },
        on: { click: () => { activate(conv); closeDrawers(); focusComposer(); } },
    },
    kind === 'private' ? avatar(name, 'small') : h('span', { class: 'conv-icon', text: '#', attrs: { 'aria-hidden': 'true' } }),
    label, conv.badge);
    if (kind === 'private') {
        conv.presence = h('span', { class: 'presence', attrs: { 'aria-hidden': 'true' } });
        conv.button.insertBefore(conv.presence, label);
    }
    conv.item = h('li', {}, conv.button);
    conv.pane.onChange = () => {
        noteRead(conv);
        updateBadges();
    };
    conv.pane.onLoadOlder = () => loadOlder(conv);
    ui.panes.append(conv.pane.root);
    (kind === 'room' ? ui.roomList : ui.dmList).append(conv.item);
    state.convs.set(id, conv);
    ui.dmEmpty.hidden = ui.dmList.childElementCount > 0;
    return conv;
}

function roomConv(room) {
    return state.convs.get(roomId(room)) || makeConv(roomId(room), 'room', room);
}

// An account's private conversation gets its past from `history` with
// `with` when first opened (loadConversation), and its unread count from
// `conversations`; a guest's holds what came while the page was open.
function privateConv(nick) {
    state.closed.delete(nickKey(nick)); // open again (a new message, or the person chose it)
    const conv = state.convs.get(privateId(nick)) || makeConv(privateId(nick), 'private', nick);
    updatePresence(conv);
    return conv;
}

function removeConv(conv) {
    conv.pane.root.remove();
    conv.item.remove();
    flushReads(); // what was read there before closing it stays read
    state.convs.delete(conv.id);
    if (conv.kind === 'private' && session.account) state.closed.set(nickKey(conv.name), Math.max(conv.baseLastId, conv.pane.newestId));
    ui.dmEmpty.hidden = ui.dmList.childElementCount > 0;
    if (state.active === conv.id) {
        state.active = '';
        const next = ui.roomList.querySelector('.conv') || ui.dmList.querySelector('.conv');
        if (next) activate(state.convs.get(next.dataset.conv));
        else updateEmptyState();
    }
    updateBadges();
}

function activeConv() {
    return state.convs.get(state.active) || null;
}

function activate(conv) {
    const prev = activeConv();
    if (prev === conv) return;
    if (prev) {
        stopTyping();
        prev.draft = ui.message.value;
        prev.pane.hide();
        prev.button.removeAttribute('aria-current');
    }
    state.active = conv.id;
    conv.button.setAttribute('aria-current', 'page');
    if (conv.kind === 'private' && conv.older === 'none') loadConversation(conv);
    conv.pane.show();
    ui.message.value = conv.draft;
    ui.message.placeholder = conv.kind === 'room' ? `Message ${conv.name}` : `Message ${conv.name} privately`;
    if (conv.kind === 'room') {
        store(STORE_ROOM, conv.name);
        const url = new URL(location.href);
        url.search = `?room=${encodeURIComponent(conv.name)}`;
        history.replaceState(null, '', url);
    }
    updateEmptyState();
    updateHeader();
    renderMembers();
    updateComposer();
    noteRead(conv);
    updateBadges();
}

function updateEmptyState() {
    const conv = activeConv();
    ui.emptyPane.hidden = conv !== null;
    ui.composer.hidden = conv === null;
    ui.leave.hidden = conv === null;
    ui.share.hidden = conv === null || conv.kind !== 'room';
    showMute();
    // No conversation: no people column (nor its button), the empty state takes the room.
    ui.peopleOpen.hidden = conv === null;
    ui.chatView.classList.toggle('no-conv', conv === null);
    if (!conv) {
        ui.convTitle.textContent = 'tertulia';
        ui.convSub.textContent = '';
        ui.jump.hidden = true;
        renderMembers();
        updateTitle();
    }
}

function updateHeader() {
    const conv = activeConv();
    if (!conv) return;
    ui.convTitle.textContent = conv.name;
    if (conv.kind === 'room') {
        const n = (state.members.get(conv.name) || new Map()).size;
        ui.convSub.textContent = n === 1 ? 'Only you are here' : `${n} people here`;
        ui.leaveText.textContent = 'Leave';
        ui.leave.setAttribute('aria-label', `Leave ${conv.name}`);
        ui.leave.title = `Leave ${conv.name}`;
    } else {
        const away = state.away.get(nickKey(conv.name));
        ui.convSub.textContent = away !== undefined ? `Private conversation · away${away ? `: ${away}` : ''}`
            : isOnline(conv.name) ? 'Private conversation · online' : 'Private conversation';
        ui.leaveText.textContent = 'Close';
        ui.leave.setAttribute('aria-label', `Close the conversation with ${conv.name}`);
        ui.leave.title = `Close the conversation with ${conv.name}`;
    }
    ui.peopleHeading.textContent = conv.kind === 'room' ? 'People' : 'In this conversation';
}

/* ------------------------------------------------------------- members */

function isOnline(nick) {
    const key = nickKey(nick);
    for (const members of state.members.values()) if (members.has(key)) return true;
    return false;
}

function updatePresence(conv) {
    if (conv.kind !== 'private') return;
    const online = isOnline(conv.name);
    conv.presence.classList.toggle('online', online);
    conv.button.title = online ? `${conv.name} is online` : `${conv.name} is not in any of your rooms`;
}

function updateAllPresence() {
    for (const conv of state.convs.values()) updatePresence(conv);
}

function renderMembers() {
    const conv = activeConv();
    const people = [];
    if (conv && conv.kind === 'room') people.push(...(state.members.get(conv.name) || new Map()).values());
    else if (conv) people.push(state.me, conv.name);
    people.sort((a, b) => (session.isMe(b) - session.isMe(a)) || a.localeCompare(b, undefined, { sensitivity: 'base' }));
    const items = people.map((nick) => {
        const dot = h('span', { class: `presence${conv.kind === 'room' || isOnline(nick) || session.isMe(nick) ? ' online' : ''}`, attrs: { 'aria-hidden': 'true' } });
        const awayText = session.isMe(nick) ? (state.meAway ? state.meAway.text : undefined) : state.away.get(nickKey(nick));
        const away = awayText !== undefined;
        const note = away ? h('span', { class: 'away-note', text: 'away' }) : null;
        const awayTitle = away ? `${nick} is away${awayText ? `: ${awayText}` : ''}` : '';
        if (session.isMe(nick)) {
            return h('li', { class: `person me${away ? ' away' : ''}`, title: awayTitle }, avatar(nick), h('span', { class: 'person-name', text: nick }), note, h('span', { class: 'you', text: '(you)' }), dot);
        }
        return h('li', {}, h('button', {
            type: 'button', class: `person${away ? ' away' : ''}`, title: away ? `${awayTitle}. Send a private message` : `Send ${nick} a private message`,
            on: { click: () => { activate(privateConv(nick)); closeDrawers(); focusComposer(); } },
        }, avatar(nick), h('span', { class: 'person-name', text: nick }), note, dot));
    });
    ui.memberList.replaceChildren(...items);
    ui.people.hidden = conv === null;
}

session.addEventListener('joined', ({ detail }) => {
    const { room, members, rejoin, more } = detail;
    state.members.set(room, new Map(members.map((n) => [nickKey(n), n])));
    noteAway(members, detail.away);
    const conv = roomConv(room);
    if (detail.restored) {
        // A reloaded page: what was said after its last message came with
        // `joined` (`since`); the page before, up to where the reader was
        // and the rest of any gap, comes from `history`.
        conv.older = session.history(room, detail.firstId || detail.since + 1) ? 'loading' : 'more';
        conv.pane.setOlder(conv.older);
    } else if (!rejoin) {
        conv.older = more ? 'more' : 'start';
        conv.pane.setOlder(conv.older);
    } else if (more) {
        // More was said while we were away than a rejoin brings back.
        conv.pane.addSystem('Some messages sent while you were away are not shown here.');
    }
    if (state.switchTo.delete(roomKey(room))) {
        activate(conv);
        focusComposer(); // after Join, typing goes to the message box
    } else if (!activeConv()) {
        activate(conv);
    }
    afterMembersChange(room);
    saveSession();
});

// A restored page puts each room's reader back where they were, once the
// messages it came with are in.
session.addEventListener('joined-history', ({ detail }) => {
    // A `since` join waits for its `history` (the `older` event).
    if (!detail.restored) restorePlace(state.convs.get(roomId(detail.room)));
});

function restorePlace(conv) {
    const places = state.restore && state.restore.places;
    if (!places || !conv || !places[conv.id]) return;
    conv.pane.restorePlace(places[conv.id]);
    delete places[conv.id];
}

session.addEventListener('left', ({ detail }) => {
    state.members.delete(detail.room);
    const conv = state.convs.get(roomId(detail.room));
    if (conv) removeConv(conv);
    updateAllPresence();
    if (activeConv()) updateHeader();
    saveSession();
});

const LEFT_REASONS = { leave: 'left', quit: 'left', disconnect: 'disconnected', timeout: 'timed out', kicked: 'was removed' };

session.addEventListener('member', ({ detail }) => {
    const { room, nickname, joined, reason, ts } = detail;
    const members = state.members.get(room);
    if (!members) return;
    if (joined) members.set(nickKey(nickname), nickname);
    else members.delete(nickKey(nickname));
    const conv = state.convs.get(roomId(room));
    if (conv && !joined) setTyping(conv, nickname, false);
    if (conv) conv.pane.addSystem(joined ? `${nickname} joined` : `${nickname} ${LEFT_REASONS[reason] || 'left'}`, Number.isFinite(ts) ? ts : Date.now());
    afterMembersChange(room);
});

session.addEventListener('members', ({ detail }) => {
    state.members.set(detail.room, new Map(detail.members.map((n) => [nickKey(n), n])));
    noteAway(detail.members, detail.away);
    afterMembersChange(detail.room);
});

function afterMembersChange(room) {
    updateAllPresence();
    const conv = activeConv();
    if (conv && (conv.kind === 'private' || conv.name === room)) {
        updateHeader();
        renderMembers();
    }
}

/* ------------------------------------------------------------ messages */

function convFor(msg) {
    if (msg.type === 'room') return state.convs.get(roomId(msg.to)) || null;
    const peer = session.isMe(msg.from) ? msg.to : msg.from;
    return typeof peer === 'string' && peer ? privateConv(peer) : null;
}

session.addEventListener('message', ({ detail }) => {
    const { msg, source } = detail;
    const conv = convFor(msg);
    if (!conv) return;
    const own = session.isMine(msg);
    if (own) {
        if (conv.acked.has(msg.id)) return; // already shown, confirmed by its ack
        for (const [ref, entry] of conv.pending) {
            if (entry.text !== msg.message.text) continue;
            conv.pending.delete(ref);
            conv.pane.confirm(entry.li, msg);
            return;
        }
    }
    if (!own && source === 'live') setTyping(conv, msg.from, false);
    const li = conv.pane.addMessage(msg, { own, quiet: source === 'join' });
    if (!own) noteAttention(conv, msg, li, source);
    if (conv.kind === 'private' && !own && Number.isSafeInteger(msg.id) && !onScreen(conv)) {
        conv.unreadIds.add(msg.id);
        // The conversation with the latest message goes first, as `conversations` lists them.
        if (ui.dmList.firstElementChild !== conv.item && !conv.item.contains(document.activeElement)) ui.dmList.prepend(conv.item);
    }
    noteRead(conv);
    updateBadges();
});

session.addEventListener('ack', ({ detail }) => {
    if (detail.ref === held.inFlight) {
        held.inFlight = '';
        resendHeld(); // the next held message, now that this one is in
    }
    for (const conv of state.convs.values()) {
        const entry = conv.pending.get(detail.ref);
        if (!entry) continue;
        conv.pending.delete(detail.ref);
        conv.pane.confirm(entry.li, { id: detail.messageId });
        if (Number.isSafeInteger(detail.messageId)) conv.acked.add(detail.messageId);
        return;
    }
});

session.addEventListener('unsent', ({ detail }) => {
    for (const conv of state.convs.values()) {
        const entry = conv.pending.get(detail.ref);
        if (!entry) continue;
        if (detail.ref === held.inFlight) held.inFlight = '';
        // Kept in `pending`: if the message did get through, the recovered
        // history brings it back and confirms it.
        conv.pane.fail(entry.li, 'the connection dropped before the server confirmed it.', () => {
            conv.pending.delete(detail.ref);
            sendText(conv, entry.text);
        });
        return;
    }
});

const RETRYABLE = new Set(['rate_limited', 'not_logged_in', 'internal_error']);

session.addEventListener('request-error', ({ detail }) => {
    const { code, message, ref, request } = detail;
    const type = request ? request.type : '';
    if (type === 'room' || type === 'private') {
        for (const conv of state.convs.values()) {
            const entry = conv.pending.get(ref);
            if (!entry) continue;
            conv.pending.delete(ref);
            if (code === 'rate_limited') {
                holdMessage(conv, entry, ref, detail.retryAfterMs);
                return;
            }
            if (ref === held.inFlight) {
                held.inFlight = '';
                resendHeld();
            }
            const reason = code === 'no_such_user' ? `${conv.name} is not online.` : message || code;
            conv.pane.fail(entry.li, reason, RETRYABLE.has(code) || code === 'no_such_user' ? () => sendText(conv, entry.text) : null);
            return;
        }
    }
    if (type === 'join') {
        state.switchTo.delete(roomKey(request.room));
        ui.joinError.textContent = message || `Could not join ${request.room}.`;
        return;
    }
    if (type === 'password') {
        passwordRefused(code, message);
        return;
    }
    if (MODERATION.has(type)) {
        commandRefused(request, code, message);
        return;
    }
    if (type === 'conversations') {
        state.conversationsRef = '';
        return; // the list stays as it is; nothing to tell
    }
    if (type === 'history') {
        const conv = request.with !== undefined ? state.convs.get(privateId(request.with)) : state.convs.get(roomId(request.room));
        if (conv && conv.catchRef === ref) {
            conv.catchRef = '';
            return;
        }
        if (conv) {
            conv.firstLoad = false;
            // An unloaded conversation tries again when next opened.
            conv.older = conv.kind === 'private' && conv.pane.isEmpty ? 'none' : 'more';
            conv.pane.setOlder(conv.older);
        }
    }
    if (code === 'rate_limited') toast(`Too many requests: wait ${waitSeconds(detail.retryAfterMs)} s, then try again.`);
    else toast(message || code || 'The server refused that.');
});

session.addEventListener('undelivered', ({ detail }) => {
    const { messageId, to } = detail;
    const conv = to ? state.convs.get(privateId(to)) : null;
    const li = conv ? conv.pane.messageById(messageId) : null;
    if (!li) {
        toast(`A private message to ${to || 'someone'} was not delivered: they were offline.`);
        return;
    }
    const text = li.messageText ?? li.querySelector('.text').textContent;
    conv.pane.fail(li, `${conv.name} was offline.`, () => sendText(conv, text));
    li.querySelector('.note').classList.add('undelivered');
});

session.addEventListener('older', ({ detail }) => {
    if (detail.with !== undefined) {
        const conv = state.convs.get(privateId(detail.with));
        if (conv) privateHistory(conv, detail);
        return;
    }
    if (detail.room === undefined) return;
    const conv = state.convs.get(roomId(detail.room));
    if (!conv) return;
    conv.pane.prependOlder(detail.messages, (m) => session.isMine(m));
    conv.older = detail.more && detail.messages.length > 0 ? 'more' : 'start';
    conv.pane.setOlder(conv.older);
    restorePlace(conv);
});

function loadOlder(conv) {
    if (conv.older !== 'more') return;
    const before = conv.pane.oldestId;
    const ref = conv.kind === 'private' ? session.historyWith(conv.name, before > 0 ? before : undefined)
        : before > 0 ? session.history(conv.name, before) : session.history(conv.name);
    if (!ref) return toast('You are offline; older messages will load once reconnected.');
    conv.older = 'loading';
    conv.pane.setOlder('loading');
    return undefined;
}

/* ------------------------------------------ stored private conversations */

/** Loads the past of an account's private conversation (the page before what it shows). */
function loadConversation(conv) {
    if (!session.account || conv.kind !== 'private') return;
    const before = conv.pane.oldestId;
    // Enough to show every unread message, when there are many.
    const limit = Math.min(200, Math.max(50, unreadCount(conv) + 10));
    if (!session.historyWith(conv.name, before > 0 ? before : undefined, limit)) return; // offline: next time it is opened
    conv.firstLoad = true;
    conv.older = 'loading';
    conv.pane.setOlder('loading');
}

/**
 * A page of a private conversation's history: older messages go above
 * those shown, newer ones (what came while the line was down) below, and a
 * message already shown is not shown again.
 */
function privateHistory(conv, { ref, messages, received, more }) {
    const isOwn = (m) => session.isMine(m);
    const catchUp = ref !== undefined && ref === conv.catchRef;
    if (catchUp) conv.catchRef = '';
    const paging = !catchUp && conv.older === 'loading';
    const fresh = messages.filter((m) => Number.isSafeInteger(m.id) && !conv.pane.messageById(m.id));
    const pane = conv.pane;
    const olderState = more && received > 0 ? 'more' : 'start';
    const oldest = pane.oldestId;
    if (oldest === 0) {
        // Nothing with an id yet (maybe our own line, still sending, below).
        if (pane.isEmpty) for (const m of fresh) pane.addMessage(m, { own: isOwn(m), quiet: true });
        else pane.prependOlder(fresh, isOwn);
        conv.older = olderState;
    } else {
        const newest = pane.newestId;
        const older = fresh.filter((m) => m.id < oldest);
        const newer = fresh.filter((m) => m.id > newest);
        pane.prependOlder(older, isOwn);
        if (older.length > 0 || paging) conv.older = olderState;
        const overlaps = received > messages.length || messages.some((m) => m.id <= newest);
        if (catchUp && newer.length > 0 && more && !overlaps) pane.addSystem('Some messages sent while you were away are not shown here.');
        for (const m of newer) pane.addMessage(m, { own: isOwn(m), quiet: true });
    }
    if (conv.older !== 'none') pane.setOlder(conv.older);
    if (!catchUp && conv.firstLoad) {
        // The unread ones (as the server counts them) start after the
        // "New messages" divider, where the reader starts.
        conv.firstLoad = false;
        pane.markNew(unreadCount(conv));
    }
    restorePlace(conv);
    noteRead(conv);
    updateBadges();
}

session.addEventListener('conversations', ({ detail }) => {
    state.conversationsRef = '';
    const order = [];
    for (const c of detail.conversations) {
        if (nicknameProblem(c.with) || session.isMe(c.with)) continue;
        const closedAt = state.closed.get(nickKey(c.with));
        if (closedAt !== undefined && c.lastId <= closedAt && !state.convs.has(privateId(c.with))) continue; // closed, nothing new since
        state.closed.delete(nickKey(c.with));
        const conv = privateConv(c.with);
        conv.baseLastId = c.lastId;
        // A marker this page moved already counts even if the server's answer predates it.
        conv.baseUnread = conv.readUpTo >= c.lastId ? 0 : c.unread;
        for (const id of conv.unreadIds) if (id <= c.lastId) conv.unreadIds.delete(id);
        // Messages that came while the connection was down.
        if (c.lastId > conv.pane.newestId && !conv.pane.isEmpty && !conv.catchRef) conv.catchRef = session.historyWith(conv.name, undefined, 50);
        order.push(conv);
        noteRead(conv);
    }
    const focused = order.some((conv) => conv.item.contains(document.activeElement));
    if (!focused) ui.dmList.prepend(...order.map((conv) => conv.item));
    updateBadges();
    saveSession();
});

// Another tab or device of this account read up to a message.
session.addEventListener('read', ({ detail }) => {
    const conv = detail.with !== undefined ? state.convs.get(privateId(detail.with))
        : detail.room !== undefined ? state.convs.get(roomId(detail.room)) : null;
    if (!conv) return;
    const upTo = detail.upTo;
    if (upTo > conv.readUpTo) conv.readUpTo = upTo;
    if (conv.kind === 'private') {
        for (const id of conv.unreadIds) if (id <= upTo) conv.unreadIds.delete(id);
        if (upTo >= conv.baseLastId) conv.baseUnread = 0;
        else if (conv.baseUnread > 0 && !state.conversationsRef) state.conversationsRef = session.conversations(); // recount
    }
    conv.pane.seenUpTo(upTo);
    updateBadges();
});

/** True when the newest messages of `conv` are in front of the person. */
function onScreen(conv) {
    return conv.id === state.active && !ui.chatView.hidden && !document.hidden && conv.pane.isShown && conv.pane.stuck;
}

/**
 * The conversation on screen is read: its unread count goes, and (for an
 * account) the read marker moves to its newest message, which the other
 * tabs and devices hear of.
 */
function noteRead(conv) {
    if (!conv || !onScreen(conv)) return;
    // Opened, its past still on its way: not read yet.
    if (conv.firstLoad) return;
    if (conv.kind === 'private') {
        conv.baseUnread = 0;
        conv.unreadIds.clear();
    }
    const newest = conv.pane.newestId;
    if (session.account && newest > conv.readUpTo) queueRead(conv, newest);
}

// Read markers go out together, a moment after the reading: a busy room
// costs one `read` now and then, not one per message. Each goes up to the
// newest message that was on screen, not to one that came after.
const READ_DELAY_MS = 300;
const readQueue = new Map(); // conversation -> the message id read up to
let readTimer = 0;

function queueRead(conv, upTo) {
    readQueue.set(conv, Math.max(upTo, readQueue.get(conv) || 0));
    if (!readTimer) readTimer = setTimeout(flushReads, READ_DELAY_MS);
}

function flushReads() {
    clearTimeout(readTimer);
    readTimer = 0;
    for (const [conv, upTo] of readQueue) {
        // Offline: it stays queued for the next login (welcome).
        if (upTo > conv.readUpTo && !session.markRead(conv.kind === 'room' ? { room: conv.name } : { with: conv.name }, upTo)) continue;
        conv.readUpTo = Math.max(conv.readUpTo, upTo);
        readQueue.delete(conv);
    }
}

/** How many messages of `conv` are unread: its badge. */
function unreadCount(conv) {
    return conv.kind === 'private' ? conv.baseUnread + conv.unreadIds.size : conv.pane.unseen;
}

/* ------------------------------------------------------- typing, away */

const TYPING_EVERY_MS = 3000; // a `start` again at most this often while keys keep coming
const TYPING_IDLE_MS = 5000; // no key for this long: `stop`
const TYPING_SHOWN_MS = 7000; // someone else's `start` shows this long unless refreshed (the server's stop may be lost)
const SERVER_START_GAP_MS = 2000; // the server drops a `start` to the same target sooner than this after the last
// Whom we told we are typing to, and when the last `start` went; the last
// `start` to anyone (lastTo, lastAt: kept after a stop, for the server's gap).
const typingOut = { to: '', at: 0, idle: 0, lastTo: '', lastAt: 0, later: 0 };

function stopTyping(send = true) {
    clearTimeout(typingOut.idle);
    clearTimeout(typingOut.later);
    typingOut.later = 0;
    if (typingOut.to && send) session.typing(typingOut.to, 'stop');
    typingOut.to = '';
    typingOut.at = 0;
}

/** The message box changed: tell the conversation we are typing, or that we stopped. */
function noteTyping() {
    const conv = activeConv();
    if (!conv || state.status !== 'online') return;
    if (ui.message.value === '' || /^\/(?!\/)/.test(ui.message.value)) {
        stopTyping(); // an empty box, or a command being typed: nothing the others should see
        return;
    }
    if (typingOut.to && typingOut.to !== conv.name) stopTyping();
    const now = Date.now();
    if (typingOut.to !== conv.name || now - typingOut.at >= TYPING_EVERY_MS) {
        const wait = typingOut.lastTo === conv.name ? typingOut.lastAt + SERVER_START_GAP_MS - now : 0;
        if (wait > 0) {
            // Typing again right after a stop or a message: the server would drop this start; send it once it takes it.
            if (!typingOut.later) typingOut.later = setTimeout(() => { typingOut.later = 0; noteTyping(); }, wait + 50);
        } else if (session.typing(conv.name, 'start')) {
            typingOut.to = typingOut.lastTo = conv.name;
            typingOut.at = typingOut.lastAt = now;
        }
    }
    clearTimeout(typingOut.idle);
    typingOut.idle = setTimeout(() => stopTyping(), TYPING_IDLE_MS);
}

/** `nick` is (or is no longer) typing in `conv`. */
function setTyping(conv, nick, on) {
    const key = nickKey(nick);
    const entry = conv.typing.get(key);
    if (entry) clearTimeout(entry.timer);
    if (on) conv.typing.set(key, { nick, timer: setTimeout(() => setTyping(conv, nick, false), TYPING_SHOWN_MS) });
    else if (!entry) return;
    else conv.typing.delete(key);
    conv.pane.setTyping([...conv.typing.values()].map((e) => e.nick));
}

session.addEventListener('typing', ({ detail }) => {
    const { room, from, nickname, state: st } = detail;
    if (session.isMe(nickname)) return;
    const conv = room !== undefined ? state.convs.get(roomId(room)) : from !== undefined ? state.convs.get(privateId(from)) : null;
    if (conv) setTyping(conv, nickname, st === 'start');
});

/** A member list with the away ones among `members` (`joined`, `members`). */
function noteAway(members, away) {
    const set = new Set(away.map(nickKey));
    for (const n of members) {
        const key = nickKey(n);
        if (session.isMe(n)) continue;
        if (!set.has(key)) state.away.delete(key);
        else if (!state.away.has(key)) state.away.set(key, '');
    }
}

session.addEventListener('away', ({ detail }) => {
    const { nickname, away, text } = detail;
    if (session.isMe(nickname)) {
        // Another tab of ours.
        state.meAway = away ? { text } : null;
        showOwnAway();
    } else if (away) {
        state.away.set(nickKey(nickname), text);
    } else {
        state.away.delete(nickKey(nickname));
    }
    renderMembers();
    updateHeader();
});

function showOwnAway() {
    const away = state.meAway !== null;
    ui.away.setAttribute('aria-pressed', String(away));
    ui.away.textContent = away ? 'Back' : 'Away';
    ui.away.title = away ? 'Tell the others you are back' : 'Tell the others you are away';
    ui.awayText.value = away ? state.meAway.text : ui.awayText.value;
    ui.awayText.disabled = away;
}

ui.awayForm.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const away = state.meAway === null;
    const text = away ? ui.awayText.value.trim().slice(0, 100) : '';
    if (!session.setAway(away, text)) {
        toast('You are offline; try again once reconnected.');
        return;
    }
    state.meAway = away ? { text } : null;
    if (!away) ui.awayText.value = '';
    showOwnAway();
    renderMembers();
});

/* ------------------------------------------------------------- composer */

function sendText(conv, text) {
    if (held.queue.length > 0 || held.inFlight) {
        // Flood control is holding earlier messages: this one goes after them.
        const li = conv.pane.addMessage({ from: state.me, message: { text } }, { own: true, pending: true });
        conv.pane.hold(li, 'Waiting for the messages before it to go…');
        held.queue.push({ conv, text, li });
        return true;
    }
    const ref = conv.kind === 'room' ? session.sendRoom(conv.name, text) : session.sendPrivate(conv.name, text);
    if (!ref) {
        toast('Not connected. Your message was not sent.');
        return false;
    }
    const li = conv.pane.addMessage({ from: state.me, message: { text } }, { own: true, pending: true });
    conv.pending.set(ref, { li, text });
    return true;
}

function composerBytes() {
    return utf8Length(ui.message.value);
}

function updateComposer() {
    const max = state.limits.max_text;
    const bytes = composerBytes();
    const over = bytes > max;
    if (bytes >= max * COUNTER_FROM) {
        ui.counter.hidden = false;
        ui.counter.textContent = over ? `${(bytes - max).toLocaleString()} over the limit` : `${(max - bytes).toLocaleString()} left`;
        ui.counter.classList.toggle('over', over);
    } else {
        ui.counter.hidden = true;
        ui.counter.textContent = '';
    }
    const online = state.status === 'online';
    ui.send.disabled = over || !online;
    ui.message.setAttribute('aria-invalid', String(over));
    ui.joinSubmit.disabled = !online;
    ui.leave.disabled = !online && activeConv() !== null && activeConv().kind === 'room';
    // Grow with the text up to a limit, then scroll inside.
    ui.message.style.height = 'auto';
    ui.message.style.height = `${Math.min(ui.message.scrollHeight + 2, 200)}px`;
}

function submitMessage() {
    const conv = activeConv();
    if (!conv) return;
    const text = ui.message.value.replace(/\s+$/u, '');
    if (text.trim() === '') return;
    if (utf8Length(text) > state.limits.max_text) {
        updateComposer();
        return;
    }
    const parsed = parseInput(text);
    if (parsed.kind !== 'text') {
        // A command: it never goes out as a message, whatever it is.
        if (!runCommand(parsed, commandApp(conv))) return;
        stopTyping();
        ui.message.value = '';
        conv.draft = '';
        updateComposer();
        return;
    }
    if (!sendText(conv, parsed.text)) return;
    stopTyping(false); // the server ends our typing with the message
    ui.message.value = '';
    conv.draft = '';
    updateComposer();
}

ui.message.addEventListener('input', () => {
    updateComposer();
    noteTyping();
});
ui.message.addEventListener('keydown', (ev) => {
    if (ev.key === 'Enter' && !ev.shiftKey && !ev.ctrlKey && !ev.altKey && !ev.metaKey && !ev.isComposing) {
        ev.preventDefault();
        if (state.status !== 'online' && ui.message.value.trim() !== '') toast('Not connected. Your message stays here until you are back online.');
        else if (!ui.send.disabled) submitMessage();
    }
});
ui.composer.addEventListener('submit', (ev) => {
    ev.preventDefault();
    submitMessage();
});

function focusComposer() {
    // On a touch screen focusing would pop the keyboard over what the
    // person came to read.
    if (matchMedia('(pointer: fine)').matches && !ui.composer.hidden) ui.message.focus();
}

/* ---------------------------------------------------- unread and badges */

function updateBadges() {
    let total = 0;
    let elsewhere = 0;
    for (const conv of state.convs.values()) {
        const n = unreadCount(conv);
        const muted = isMutedConv(conv);
        if (!muted) total += n;
        const showBadge = n > 0 && conv.id !== state.active;
        if (showBadge && !muted) elsewhere += n;
        conv.button.classList.toggle('muted', muted);
        conv.badge.hidden = !showBadge;
        conv.badge.replaceChildren(String(n), h('span', { class: 'sr-only', text: n === 1 ? ' unread message' : ' unread messages' }));
        conv.button.classList.toggle('has-unread', showBadge);
    }
    ui.navBadge.hidden = elsewhere === 0;
    const conv = activeConv();
    if (conv) {
        const n = conv.pane.unseen;
        ui.jump.hidden = conv.pane.stuck;
        ui.jumpText.textContent = n > 0 ? (n === 1 ? '1 new message' : `${n} new messages`) : 'Jump to latest';
    }
    updateTitle(total);
}

function updateTitle(total = 0) {
    const conv = activeConv();
    const name = conv ? `${conv.name} · tertulia` : 'tertulia';
    document.title = total > 0 ? `(${total}) ${name}` : name;
}

ui.jump.addEventListener('click', () => {
    const conv = activeConv();
    if (conv) conv.pane.scrollToBottom(true);
});

document.addEventListener('visibilitychange', () => {
    if (document.hidden) return;
    const conv = activeConv();
    if (conv) {
        conv.pane.refresh();
        noteRead(conv);
        updateBadges();
    }
    if (state.status === 'reconnecting' || state.status === 'offline') session.retryNow();
});

/* ---------------------------------------------------------- connection */

const STATUS_TEXT = { connecting: 'Connecting…', online: 'Connected', reconnecting: 'Reconnecting…', offline: 'Offline', idle: 'Not connected' };
let countdown = 0;
let bannerTimer = 0;

session.addEventListener('status', ({ detail }) => {
    const was = state.status;
    state.status = detail.state;
    state.retryAt = detail.retryAt || 0;
    ui.conn.dataset.state = detail.state;
    ui.chatView.classList.toggle('offline', detail.state !== 'online');
    ui.connText.textContent = STATUS_TEXT[detail.state] || detail.state;
    ui.meState.textContent = STATUS_TEXT[detail.state] || detail.state;
    clearInterval(countdown);
    clearTimeout(bannerTimer);
    if (detail.state === 'reconnecting' || detail.state === 'offline') {
        ui.retry.hidden = false;
        ui.banner.hidden = false;
        ui.banner.dataset.kind = 'warn';
        const tick = () => {
            const secs = Math.ceil((state.retryAt - Date.now()) / 1000);
            const lead = detail.state === 'offline' ? 'You are offline.' : 'Connection lost.';
            const note = detail.note ? ` ${detail.note}` : '';
            ui.bannerText.textContent = secs > 0 ? `${lead}${note} Reconnecting in ${secs} s…` : `${lead}${note} Reconnecting…`;
        };
        tick();
        countdown = setInterval(tick, 500);
    } else if (detail.state === 'online' && (was === 'reconnecting' || was === 'offline')) {
        ui.retry.hidden = true;
        ui.banner.hidden = false;
        ui.banner.dataset.kind = 'ok';
        ui.bannerText.textContent = 'Back online.';
        bannerTimer = setTimeout(() => { ui.banner.hidden = true; }, 2500);
    } else {
        ui.banner.hidden = true;
    }
    updateComposer();
});

ui.retry.addEventListener('click', () => session.retryNow());
addEventListener('online', () => session.retryNow());

/* ------------------------------------------------------ sidebar actions */

ui.joinRoom.addEventListener('input', () => {
    ui.joinError.textContent = ui.joinRoom.value === '' ? '' : roomProblem(ui.joinRoom.value);
    ui.joinRoom.setAttribute('aria-invalid', String(ui.joinError.textContent !== ''));
});

function joinRoom(room) {
    const existing = state.convs.get(roomId(room));
    if (existing) {
        activate(existing);
        return true;
    }
    if (!session.join(room)) {
        ui.joinError.textContent = 'You are offline; try again once reconnected.';
        return false;
    }
    state.switchTo.add(roomKey(room));
    return true;
}

ui.joinForm.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const room = ui.joinRoom.value;
    const problem = roomProblem(room);
    ui.joinError.textContent = problem;
    ui.joinRoom.setAttribute('aria-invalid', String(problem !== ''));
    if (problem) {
        ui.joinRoom.focus();
        return;
    }
    if (joinRoom(room)) {
        ui.joinRoom.value = '';
        closeDrawers();
    }
});

ui.leave.addEventListener('click', () => {
    const conv = activeConv();
    if (!conv) return;
    if (conv.kind === 'private') removeConv(conv);
    else if (!session.leave(conv.name)) toast('You are offline; try again once reconnected.');
});

ui.share.addEventListener('click', async () => {
    const conv = activeConv();
    if (!conv || conv.kind !== 'room') return;
    const url = new URL(location.href);
    url.search = `?room=${encodeURIComponent(conv.name)}`;
    url.hash = '';
    try {
        await navigator.clipboard.writeText(url.href);
        toast(`Link to ${conv.name} copied.`);
    } catch {
        toast(`Share this link: ${url.href}`, 8000);
    }
});

/**
 * Back to the login form, the chat cleared. Logging out of an account
 * forgets its token in this browser, so every tab of it is logged out (the
 * other tabs hear of it through the `storage` event); other devices stay
 * logged in unless it was "everywhere".
 */
function endChat(note = '') {
    const wasAccount = !ui.account.hidden;
    forgetSession();
    if (wasAccount) forgetAccount();
    state.restore = null;
    state.restoring = '';
    state.me = '';
    if (ui.accountDialog.open) ui.accountDialog.close();
    for (const conv of [...state.convs.values()]) {
        conv.pane.root.remove();
        conv.item.remove();
    }
    state.convs.clear();
    state.members.clear();
    state.away.clear();
    state.meAway = null;
    stopTyping(false);
    ui.awayText.value = '';
    showOwnAway();
    state.switchTo.clear();
    state.active = '';
    state.conversationsRef = '';
    state.closed.clear();
    readQueue.clear();
    clearTimeout(held.timer);
    held.timer = 0;
    held.queue = [];
    held.inFlight = '';
    ui.chatView.hidden = true;
    ui.conversation.hidden = true;
    ui.loginView.hidden = false;
    ui.banner.hidden = true;
    ui.account.hidden = true;
    document.title = 'tertulia';
    setMode(wasAccount ? 'login' : 'guest');
    showLoginView(note);
    if (!note) ui.loginSubmit.focus();
}

ui.logout.addEventListener('click', () => {
    const note = session.account ? 'You logged out of this browser. Your other devices stay logged in.' : '';
    session.logout();
    endChat(note);
});

ui.logoutEverywhere.addEventListener('click', () => {
    session.logout({ everywhere: true });
    endChat('You logged out everywhere: every tab and device.');
});

// Logged out everywhere (from another tab or device).
session.addEventListener('logged-out', () => endChat('You were logged out.'));

// A reconnect whose token the server no longer takes.
session.addEventListener('session-ended', ({ detail }) => {
    const stored = savedAccount();
    if (stored && stored.token !== detail.token) {
        // Another tab has a newer one (it changed the password): stay.
        const rooms = [...state.convs.values()].filter((c) => c.kind === 'room').map((c) => c.name);
        session.restoreAccount(stored.token, stored.nickname, rooms);
        return;
    }
    endChat('Your session ended: log in again.');
});

// Another tab of this browser logged out, logged in, or changed the password.
addEventListener('storage', (ev) => {
    if (ev.key !== STORE_ACCOUNT && ev.key !== null) return;
    if (!session.account || ui.chatView.hidden) return;
    const stored = savedAccount();
    if (!stored) {
        session.logout({ local: true });
        endChat('You logged out in another tab.');
    } else if (nickKey(stored.nickname) === nickKey(session.nickname)) {
        session.setToken(stored.token);
    }
});

/* -------------------------------------------------------- account dialog */

ui.account.addEventListener('click', () => {
    ui.passwordForm.reset();
    ui.pwError.textContent = '';
    ui.pwStatus.textContent = '';
    ui.pwSubmit.disabled = false;
    ui.accountDialog.showModal();
    ui.pwOld.focus();
});

let passwordRef = '';

ui.passwordForm.addEventListener('submit', (ev) => {
    ev.preventDefault();
    ui.pwStatus.textContent = '';
    const problem = ui.pwOld.value === '' ? 'Enter your current password.'
        : passwordProblem(ui.pwNew.value, true) || (ui.pwNew.value !== ui.pwRepeat.value ? 'The new passwords differ.' : '');
    ui.pwError.textContent = problem;
    if (problem) {
        (ui.pwOld.value === '' ? ui.pwOld : ui.pwNew.value !== ui.pwRepeat.value && !passwordProblem(ui.pwNew.value, true) ? ui.pwRepeat : ui.pwNew).focus();
        return;
    }
    passwordRef = session.changePassword(ui.pwOld.value, ui.pwNew.value);
    if (!passwordRef) {
        ui.pwError.textContent = 'You are offline; try again once reconnected.';
        return;
    }
    ui.pwSubmit.disabled = true;
    ui.pwStatus.textContent = 'Changing…';
});

session.addEventListener('password-changed', ({ detail }) => {
    if (detail.ref !== passwordRef) return;
    passwordRef = '';
    ui.passwordForm.reset();
    ui.pwSubmit.disabled = false;
    ui.pwError.textContent = '';
    ui.pwStatus.textContent = 'Password changed. Your other devices will need the new one.';
});

function passwordRefused(code, message) {
    passwordRef = '';
    ui.pwSubmit.disabled = false;
    ui.pwStatus.textContent = '';
    ui.pwError.textContent = code === 'auth_failed' ? 'The current password is wrong.'
        : code === 'password_invalid' ? 'The new password must be 8 to 1,024 bytes long.'
            : message || 'The server refused that.';
    (code === 'auth_failed' ? ui.pwOld : ui.pwNew).select();
}

/* -------------------------------------------------------- rooms dialog */

ui.browseRooms.addEventListener('click', () => {
    ui.roomsDialogList.replaceChildren();
    ui.roomsDialogStatus.textContent = 'Loading…';
    ui.roomsDialog.showModal();
    if (!session.listRooms()) ui.roomsDialogStatus.textContent = 'You are offline; the list will load once reconnected.';
});

session.addEventListener('rooms', ({ detail }) => {
    const rooms = detail.rooms.filter((r) => r && typeof r.name === 'string');
    rooms.sort((a, b) => (b.members || 0) - (a.members || 0) || a.name.localeCompare(b.name));
    ui.roomsDialogStatus.textContent = rooms.length === 0 ? 'No rooms right now. Join one by name to create it.'
        : detail.more ? `${rooms.length} of ${Number(detail.count) || 'many'} rooms (the first by name); join any other by its name`
            : rooms.length === 1 ? '1 room' : `${rooms.length} rooms`;
    ui.roomsDialogList.replaceChildren(...rooms.map((r) => {
        const joined = state.convs.has(roomId(r.name));
        const n = Number(r.members) || 0;
        return h('li', { class: 'room-row' },
            h('span', { class: 'room-name', text: r.name }),
            h('span', { class: 'room-count', text: n === 1 ? '1 person' : `${n} people` }),
            h('button', {
                type: 'button', class: joined ? 'side-btn subtle' : 'side-btn', text: joined ? 'Open' : 'Join',
                attrs: { 'aria-label': `${joined ? 'Open' : 'Join'} ${r.name}` },
                on: { click: () => { ui.roomsDialog.close(); if (joinRoom(r.name)) closeDrawers(); } },
            }));
    }));
});

/* ------------------------------------------------- drawers (phone width) */

function openDrawer(which) {
    closeDrawers();
    ui.chatView.classList.add(which === 'sidebar' ? 'nav-open' : 'people-open');
    (which === 'sidebar' ? ui.sidebarOpen : ui.peopleOpen).setAttribute('aria-expanded', 'true');
    ui.scrim.hidden = false;
    const target = which === 'sidebar' ? ui.sidebar.querySelector('[aria-current]') || ui.sidebarClose : ui.peopleClose;
    // Focus after the drawer becomes visible (it is `visibility: hidden` while closed).
    requestAnimationFrame(() => target.focus());
}

function closeDrawers() {
    const wasOpen = ui.chatView.classList.contains('nav-open') ? ui.sidebarOpen
        : ui.chatView.classList.contains('people-open') ? ui.peopleOpen : null;
    ui.chatView.classList.remove('nav-open', 'people-open');
    ui.sidebarOpen.setAttribute('aria-expanded', 'false');
    ui.peopleOpen.setAttribute('aria-expanded', 'false');
    ui.scrim.hidden = true;
    return wasOpen;
}

ui.sidebarOpen.addEventListener('click', () => openDrawer('sidebar'));
ui.peopleOpen.addEventListener('click', () => openDrawer('people'));
for (const el of [ui.sidebarClose, ui.peopleClose, ui.scrim]) {
    el.addEventListener('click', () => {
        const opener = closeDrawers();
        if (opener && el !== ui.scrim) opener.focus();
    });
}

document.addEventListener('keydown', (ev) => {
    if (ev.key === 'Escape' && !ui.roomsDialog.open) {
        const opener = closeDrawers();
        if (opener) opener.focus();
    }
    // Alt+↑/↓ moves between conversations, as in most chat apps.
    if (ev.altKey && (ev.key === 'ArrowUp' || ev.key === 'ArrowDown') && !ui.chatView.hidden) {
        const buttons = [...ui.sidebar.querySelectorAll('.conv')];
        const i = buttons.findIndex((b) => b.dataset.conv === state.active);
        const next = buttons[i + (ev.key === 'ArrowUp' ? -1 : 1)];
        if (next) {
            ev.preventDefault();
            activate(state.convs.get(next.dataset.conv));
            focusComposer();
        }
    }
});

/* ------------------------------------------- commands, held messages */

// Messages flood control refused (`rate_limited`), in the order they were
// written: they go again by themselves, one at a time, the first once the
// server's `retry_after_ms` has passed, each next one once the one before
// is in. Messages written meanwhile queue behind them.
const held = { queue: [], timer: 0, inFlight: '' }; // queue: [{conv, text, li}]

/** Seconds to wait for `ms`, rounded up, at least 1. */
function waitSeconds(ms) {
    return Math.max(1, Math.ceil((Number(ms) || 0) / 1000));
}

function holdMessage(conv, entry, ref, retryAfterMs) {
    const item = { conv, text: entry.text, li: entry.li };
    if (ref === held.inFlight) {
        held.inFlight = '';
        held.queue.unshift(item); // refused again: still first
    } else {
        held.queue.push(item);
    }
    const secs = waitSeconds(retryAfterMs);
    conv.pane.hold(entry.li, `Sending too fast: wait ${secs} s. It goes by itself.`);
    toast(`Sending too fast: wait ${secs} s. Your messages go by themselves, in order.`);
    clearTimeout(held.timer);
    held.timer = setTimeout(() => {
        held.timer = 0;
        resendHeld();
    }, Math.max(0, Number(retryAfterMs) || 0));
}

/** Sends the first held message, unless one is on its way or flood control asks to wait. */
function resendHeld() {
    while (!held.inFlight && !held.timer && held.queue.length > 0) {
        const item = held.queue[0];
        if (!state.convs.has(item.conv.id)) {
            held.queue.shift(); // its conversation was closed
            continue;
        }
        const ref = item.conv.kind === 'room' ? session.sendRoom(item.conv.name, item.text) : session.sendPrivate(item.conv.name, item.text);
        if (!ref) return; // offline: the next welcome goes on
        held.queue.shift();
        item.conv.pending.set(ref, { li: item.li, text: item.text });
        item.conv.pane.hold(item.li, '');
        held.inFlight = ref;
    }
}

const MODERATION = new Set(['topic', 'kick', 'ban', 'unban', 'op', 'deop']);

/** A line in the conversation on screen that only this page shows (command feedback), or a toast. */
function notice(text, conv = activeConv()) {
    if (!conv) {
        toast(text, 6000);
        return;
    }
    const li = conv.pane.addSystem(text);
    li.classList.add('notice');
    conv.pane.scrollToBottom();
}

function commandRefused(request, code, message) {
    for (const [ref, req] of commandRefs) if (req === request) commandRefs.delete(ref);
    const conv = request.room ? state.convs.get(roomId(request.room)) : activeConv();
    const what = `/${request.type}${request.nickname ? ` ${request.nickname}` : ''}`;
    const why = code === 'unknown_type' ? 'this server does not support it yet'
        : code === 'not_permitted' ? 'you are not allowed to do that here'
            : code === 'no_such_user' ? `nobody is called ${request.nickname}` : message || 'the server refused it';
    notice(`${what}: ${why} (${code}).`, conv || activeConv());
}

/** What runCommand may do, for the conversation `conv`. */
function commandApp(conv) {
    return {
        conv,
        me: state.me,
        notice: (text) => notice(text, conv),
        sendText,
        joinRoom: (room) => {
            if (joinRoom(room)) return true;
            notice('You are offline; try again once reconnected.', conv);
            return false;
        },
        leave: (room) => {
            const target = room ? state.convs.get(roomId(room)) : conv;
            if (!target) {
                notice(`You are not in ${room}.`, conv);
                return false;
            }
            if (target.kind === 'private') {
                removeConv(target);
                return true;
            }
            if (session.leave(target.name)) return true;
            notice('You are offline; try again once reconnected.', conv);
            return false;
        },
        openPrivate: (nick, text) => {
            if (session.isMe(nick)) {
                notice('That is you: choose someone else.', conv);
                return false;
            }
            const other = privateConv(nick);
            // The draft of the conversation left is the line just used: not kept.
            ui.message.value = '';
            activate(other);
            return text ? sendText(other, text) : true;
        },
        isAway: () => state.meAway !== null,
        setAway: (away, text) => {
            const t = text.slice(0, 100);
            if (!session.setAway(away, t)) {
                notice('You are offline; try again once reconnected.', conv);
                return false;
            }
            state.meAway = away ? { text: t } : null;
            ui.awayText.value = away ? t : '';
            showOwnAway();
            renderMembers();
            notice(away ? `You are marked away${t ? `: ${t}` : ''}. /back (or /away again) ends it.` : 'You are back.', conv);
            return true;
        },
        request: (req) => {
            const ref = session.command(req);
            if (ref) {
                commandRefs.set(ref, req);
                if (commandRefs.size > 100) commandRefs.delete(commandRefs.keys().next().value); // answers that never came
            }
            return ref;
        },
    };
}

// The moderation requests the commands sent, until answered: a `done` says
// so in the room (an unban or an op changes nothing else one sees there).
const commandRefs = new Map(); // ref -> request

session.addEventListener('done', ({ detail }) => {
    const req = commandRefs.get(detail.ref);
    if (!req) return;
    commandRefs.delete(detail.ref);
    const conv = req.room ? state.convs.get(roomId(req.room)) : null;
    notice(`/${req.type}${req.nickname ? ` ${req.nickname}` : ''}: done.`, conv || activeConv());
});

/* -------------------------------------------- mentions, notifications */

const attention = new Attention();

function isMutedConv(conv) {
    return conv.kind === 'room' && attention.isMuted(roomKey(conv.name));
}

/** A message from someone else: highlighted if it mentions us; a notification while the tab is hidden. */
function noteAttention(conv, msg, li, source) {
    const mention = conv.kind === 'room' && mentionsMe(msg, state.me);
    if (mention) {
        li.classList.add('mention');
        li.querySelector('.from')?.append(h('span', { class: 'sr-only', text: ' (mentions you)' }));
    }
    if (source !== 'live' || isMutedConv(conv) || (!mention && conv.kind !== 'private')) return;
    const title = conv.kind === 'room' ? `${msg.from} in ${conv.name}` : `${msg.from} (private)`;
    attention.notify(title, msg.message.text, conv.id, () => {
        if (state.convs.get(conv.id) === conv) activate(conv);
    });
}

function showMute() {
    const conv = activeConv();
    ui.mute.hidden = !conv || conv.kind !== 'room';
    if (ui.mute.hidden) return;
    const muted = isMutedConv(conv);
    ui.mute.setAttribute('aria-pressed', String(muted));
    ui.mute.title = muted ? `${conv.name} is muted: no notifications or badges. Unmute` : `Mute ${conv.name}: no notifications or badges`;
    ui.mute.classList.toggle('on', muted);
}

ui.mute.addEventListener('click', () => {
    const conv = activeConv();
    if (!conv || conv.kind !== 'room') return;
    const muted = !isMutedConv(conv);
    attention.setMuted(roomKey(conv.name), muted);
    showMute();
    updateBadges();
    toast(muted ? `${conv.name} muted: no notifications or badges from it.` : `${conv.name} unmuted.`);
});

attention.onMutedChange = () => {
    showMute();
    updateBadges();
};

// Permission to notify is asked on the first click or key press in the chat.
for (const ev of ['pointerdown', 'keydown']) ui.chatView.addEventListener(ev, () => attention.askOnce(), { passive: true });

const completer = new Completer(ui.message, () => {
    const conv = activeConv();
    if (!conv) return [];
    if (conv.kind === 'private') return [conv.name];
    return [...(state.members.get(conv.name) || new Map()).values()].filter((n) => !session.isMe(n));
});

// Switching conversation closes the suggestions of the one left.
ui.panes.addEventListener('focusin', () => completer.close());

ui.emptyJoin.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const room = ui.emptyJoinRoom.value;
    const problem = roomProblem(room);
    ui.emptyJoinError.textContent = problem;
    ui.emptyJoinRoom.setAttribute('aria-invalid', String(problem !== ''));
    if (problem) {
        ui.emptyJoinRoom.focus();
        return;
    }
    if (joinRoom(room)) ui.emptyJoinRoom.value = '';
    else ui.emptyJoinError.textContent = 'You are offline; try again once reconnected.';
});

/* ---------------------------------------------------------------- toast */

let toastTimer = 0;

function toast(text, ms = 4000) {
    clearTimeout(toastTimer);
    ui.toast.textContent = text;
    ui.toast.hidden = false;
    toastTimer = setTimeout(() => { ui.toast.hidden = true; }, ms);
}

initLogin();
