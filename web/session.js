// The chat session over a Connection: logs in, rejoins every room after a
// reconnect asking for the messages missed since the last one seen, drops
// the duplicates that recovery brings, and correlates requests with their
// acks and errors. It owns no DOM; app.js renders what it reports.

import { Connection } from './connection.js';
import { nickKey } from './rules.js';

const strings = (list) => (Array.isArray(list) ? list.filter((x) => typeof x === 'string' && x !== '') : []);

export const SUBPROTOCOL = 'tertulia.v1';

/** The WebSocket URL next to the page, so a reverse proxy under a path works too. */
export function socketUrl(pageUrl) {
    const url = new URL('ws', pageUrl);
    url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
    url.search = '';
    url.hash = '';
    return url.href;
}

// How many message ids to remember for de-duplication: far more than any
// recovery (`since`) returns, few enough to cost nothing.
const SEEN_LIMIT = 20000;

/**
 * Events (CustomEvent, fields in `detail`):
 * - `status` {state: 'connecting'|'online'|'reconnecting'|'offline'|'idle', retryAt, note}
 * - `login-failed` {code, message, retryAfterMs}  the first login was refused or unreachable
 * - `welcome` {nickname, account, limits, server, first}
 * - `token` {token}                           an account's new login token (welcome, password_changed): keep it
 * - `session-ended` {code, token}                  a reconnect's token was refused (revoked, expired): log in again
 * - `logged-out` {}                           the server logged this connection out (`logout` everywhere, from any tab or device)
 * - `password-changed` {ref}                  answers changePassword(); `token` came just before
 * - `undelivered` {messageId, to}             a private of ours that the server could not deliver
 * - `joined` {room, members, rejoin, restored, since, firstId, historyCount, more}   followed by `message` events for its history
 * - `joined-history` {room, rejoin, restored}  after those `message` events
 * - `left` {room}
 * - `member` {room, nickname, ts, joined, reason}
 * - `message` {msg, source: 'live'|'join'|'rejoin'}   room and private messages, never twice
 * - `older` {room, with, ref, messages, received, more}   a reply to history() (`room`) or historyWith() (`with`);
 *                                             duplicates removed (`received`: how many came before that)
 * - `conversations` {conversations}           an account's private conversations [{with, lastId, unread}], newest first
 * - `read` {with, room, upTo}                 another connection of this account read up to a message
 * - `rooms` {rooms, count, more}: a page of at most 500, by name
 * - `members` {room, members, away}         (`joined` carries `away` too: the away members among those listed)
 * - `typing` {room, from, nickname, state: 'start'|'stop'}   someone started or stopped typing in a room (`room`) or to us (`from`)
 * - `away` {nickname, away, text}             someone (or another tab of ours) set or cleared their away status
 * - `ack` {ref, messageId, request}
 * - `request-error` {code, message, ref, request}   an error for a request of ours
 * - `unsent` {ref, request}                     a send that was in flight when the line dropped
 */
export class Session extends EventTarget {
    #conn;
    #nickname = '';
    #initialRoom = '';
    #loggedIn = false;
    #everLoggedIn = false;
    #loginRef = '';
    #resume = ''; // this guest's token (welcome.resume): a reconnect comes back as the same guest
    #mode = 'guest'; // how the first login goes: 'guest', 'password', 'register' or 'token'
    #password = ''; // only until the first welcome
    #sinceId = 0; // a guest's welcome.since_id: its own messages come after it
    #token = ''; // an account's login token: every reconnect logs in with it
    #account = false;
    #closing = false; // logout sent: wait for `logged_out` (or the close), then stop
    #restoreRooms = []; // restore(): the rooms to join once logged in
    #restoreSince = {}; // restore(): room -> the last message id the earlier page had
    #restoredRefs = new Set(); // the refs of those joins
    #nextId = 1;
    #pending = new Map(); // ref -> request object (with its `type`)
    #rooms = new Map(); // room name -> {lastId}
    #seen = new Map(); // message id -> signature
    #limits = {};
    #server = {};
    #waitNote = ''; // why a reconnect is taking longer than the network alone explains

    constructor({ url, WebSocketImpl, timing } = {}) {
        super();
        this.#conn = new Connection({ url, protocols: [SUBPROTOCOL], WebSocketImpl, timing });
        this.#conn.addEventListener('open', () => this.#onOpen());
        this.#conn.addEventListener('message', (ev) => this.#onMessage(ev.detail));
        this.#conn.addEventListener('close', (ev) => this.#onClose(ev.detail));
        this.#conn.addEventListener('waiting', (ev) => this.#onWaiting(ev.detail));
    }

    get nickname() { return this.#nickname; }
    get loggedIn() { return this.#loggedIn; }
    get limits() { return this.#limits; }
    get server() { return this.#server; }
    get rooms() { return [...this.#rooms.keys()]; }
    /** room -> the id of the last message seen in it: what a reloaded page asks `since`. */
    get lastIds() {
        const out = {};
        for (const [room, { lastId }] of this.#rooms) if (lastId > 0) out[room] = lastId;
        return out;
    }
    /** This guest's resume token ('' when none): what a reload needs to come back as the same guest. */
    get resume() { return this.#resume; }
    /** This account's login token ('' for a guest). */
    get token() { return this.#token; }
    /** True when logged in (or logging back in) as an account rather than a guest. */
    get account() { return this.#account; }
    /** Another tab stored a newer token of this account (a password change): use it from the next reconnect. */
    setToken(token) { if (this.#account && typeof token === 'string' && token) this.#token = token; }
    isMe(nick) { return nickKey(nick) === nickKey(this.#nickname); }

    /**
     * True if msg was sent by this user: its nickname, and for a guest only
     * after welcome.since_id (the same nickname may have been an earlier
     * guest's, whose messages are someone else's). A message without an id
     * (one being sent) is this user's.
     */
    isMine(msg) {
        if (!msg || !this.isMe(msg.from)) return false;
        return this.#account || !Number.isSafeInteger(msg.id) || msg.id > this.#sinceId;
    }

    /** Connects and logs in as `nickname`, joining `room` if given. */
    login(nickname, room) {
        this.#begin('guest', nickname, room);
        this.#conn.start();
    }

    /** Connects and logs in to an account with its password, joining `room` if given. */
    loginPassword(nickname, password, room) {
        this.#begin('password', nickname, room);
        this.#password = password;
        this.#conn.start();
    }

    /** Connects, creates the account, and joins `room` once welcomed. */
    register(nickname, password, room) {
        this.#begin('register', nickname, '');
        this.#password = password;
        if (room) this.#restoreRooms = [room];
        this.#conn.start();
    }

    /**
     * Comes back as an account of an earlier page (a reload, another tab):
     * logs in with its token, then joins its rooms. A token the server no
     * longer takes is a `login-failed` with code `auth_failed`.
     */
    restoreAccount(token, nickname, rooms = [], since = {}) {
        this.#begin('token', nickname, '');
        this.#token = token;
        this.#account = true;
        this.#restoreRooms = rooms.filter((r) => typeof r === 'string' && r !== '');
        this.#restoreSince = since;
        this.#conn.start();
    }

    /** Asks for a new password; the reply is `token` then `password-changed`, or a `request-error`. */
    changePassword(old, password) { return this.#request({ type: 'password', old, new: password }); }

    #begin(mode, nickname, room) {
        if (this.#closing) this.#finish(); // a new login right after a logout
        this.#mode = mode;
        this.#nickname = nickname;
        this.#initialRoom = room || '';
        this.#everLoggedIn = false;
        this.#resume = '';
        this.#token = '';
        this.#password = '';
        this.#account = mode !== 'guest';
        this.#restoreRooms = [];
        this.#restoreSince = {};
        this.#restoredRefs.clear();
        this.#closing = false;
        this.#emit('status', { state: 'connecting' });
    }

    /**
     * Comes back as a guest of an earlier page (a reload, another tab, the
     * browser restarted): logs in with its resume token, then joins its rooms.
     * A guest that has ended is a `login-failed` with code `auth_failed`.
     */
    restore(nickname, resume, rooms = [], since = {}) {
        this.#begin('guest', nickname, '');
        this.#resume = resume;
        this.#restoreRooms = rooms.filter((r) => typeof r === 'string' && r !== '');
        this.#restoreSince = since;
        this.#conn.start();
    }

    /**
     * Closes for good (logging out). An account first sends `logout` (with
     * `everywhere`, for every tab and device), which revokes the token, and
     * closes once the server confirms; a guest just says goodbye (a close
     * with 1000 ends it at once). Nothing more is reported either way.
     * `local`: only close (another tab of this browser already logged out).
     */
    logout({ everywhere = false, local = false } = {}) {
        const req = { type: 'logout', id: `c${this.#nextId++}` };
        if (everywhere) req.everywhere = true;
        // `local`: another tab already logged this browser out; just close.
        if (!local && this.#account && this.#loggedIn && this.#conn.send(req)) {
            this.#closing = true;
            // A server that never answers must not keep the socket open.
            setTimeout(() => { if (this.#closing) this.#finish(); }, 5000);
        } else {
            this.#finish();
        }
        this.#forgetAll();
    }

    /** After a logout: nobody, in no room, with nothing pending. */
    #forgetAll() {
        this.#loggedIn = false;
        this.#everLoggedIn = false;
        this.#resume = '';
        this.#token = '';
        this.#account = false;
        this.#rooms.clear();
        this.#pending.clear();
        this.#emit('status', { state: 'idle' });
    }

    #finish() {
        this.#closing = false;
        this.#conn.stop(1000, 'logout');
    }

    /** Reconnects at once if waiting (network came back, or the person asked). */
    retryNow() { this.#conn.retryNow(); }

    join(room) { return this.#request({ type: 'join', room }); }
    leave(room) { return this.#request({ type: 'leave', room }); }
    listRooms() { return this.#request({ type: 'rooms', limit: 500 }); }
    who(room) { return this.#request({ type: 'who', room }); }
    history(room, before, limit = 50) { return this.#request({ type: 'history', room, before, limit }); }

    /** The stored conversation with `nick`, before message `before` (accounts only). */
    historyWith(nick, before, limit = 50) { return this.#request({ type: 'history', with: nick, before, limit }); }

    /** An account's private conversations with their unread counts (the `conversations` event). */
    conversations(limit = 50) { return this.#request({ type: 'conversations', limit }); }

    /**
     * Moves this account's read marker of a conversation (`{with}`) or a
     * room (`{room}`) up to message `upTo`; the server tells the account's
     * other connections and answers nothing, so nothing waits for it.
     */
    markRead(where, upTo) {
        if (!this.#loggedIn || !this.#account || !Number.isSafeInteger(upTo) || upTo < 1) return false;
        const req = where.with !== undefined ? { type: 'read', with: where.with, up_to: upTo } : { type: 'read', room: where.room, up_to: upTo };
        // Its own ref prefix: an error for it (none is expected) is dropped quietly.
        return this.#conn.send({ ...req, id: `r${this.#nextId++}` });
    }

    /**
     * Tells a room or a person that we started or stopped typing. No reply;
     * an error for it (none is expected) is dropped quietly (its `r` ref).
     */
    typing(to, state) {
        if (!this.#loggedIn) return false;
        return this.#conn.send({ type: 'typing', to, state, id: `r${this.#nextId++}` });
    }

    /** Sets (`away` true, with an optional text) or clears our away status; no reply. */
    setAway(away, text = '') {
        if (!this.#loggedIn) return false;
        const req = away && text ? { type: 'status', away: true, text } : { type: 'status', away: !!away };
        return this.#conn.send({ ...req, id: `r${this.#nextId++}` });
    }

    /**
     * Sends a request the session does not otherwise know (a moderation
     * command: topic, kick, ban…); returns its ref, or '' when offline. Its
     * `error` comes as `request-error`, its `done` as `done`.
     */
    command(req) { return this.#request(req); }

    /** Sends to a room; returns the request ref, or '' when offline. */
    sendRoom(room, text) { return this.#request({ type: 'room', to: room, message: { text } }); }

    /** Sends to a person; returns the request ref, or '' when offline. */
    sendPrivate(nick, text) { return this.#request({ type: 'private', to: nick, message: { text } }); }

    #request(req) {
        if (!this.#loggedIn) return '';
        const id = `c${this.#nextId++}`;
        if (!this.#conn.send({ ...req, id })) return '';
        this.#pending.set(id, req);
        return id;
    }

    #emit(type, detail) {
        this.dispatchEvent(new CustomEvent(type, { detail }));
    }

    #onOpen() {
        if (this.#closing) return this.#finish();
        this.#loginRef = `c${this.#nextId++}`;
        let login;
        if (this.#token) {
            // An account after its first login (a reconnect), or a restored page.
            login = { type: 'login', id: this.#loginRef, token: this.#token };
        } else if (this.#mode === 'register' && !this.#everLoggedIn) {
            login = { type: 'register', id: this.#loginRef, nickname: this.#nickname, password: this.#password };
        } else if (this.#mode === 'password' && !this.#everLoggedIn) {
            login = { type: 'login', id: this.#loginRef, nickname: this.#nickname, password: this.#password };
        } else {
            login = { type: 'login', id: this.#loginRef, nickname: this.#nickname };
            // Back as the same guest, even while the server still holds the
            // connection that just died (it would keep the nickname taken).
            if (this.#resume) login.resume = this.#resume;
        }
        // After a reconnect every room is joined with `join`, which can ask
        // for the missed messages; only the very first login names a room.
        if (!this.#everLoggedIn && this.#initialRoom && login.type === 'login') login.room = this.#initialRoom;
        this.#conn.send(login);
        return undefined;
    }

    #onClose({ code, reason, wasOpen }) {
        if (this.#closing) {
            this.#finish();
            return;
        }
        const wasLoggedIn = this.#loggedIn;
        this.#loggedIn = false;
        for (const [ref, request] of this.#pending)
            if (request.type === 'room' || request.type === 'private') this.#emit('unsent', { ref, request });
        this.#pending.clear();
        if (!this.#everLoggedIn) {
            // The first login never completed: report it on the form rather
            // than retrying forever behind the person's back.
            this.#conn.stop();
            this.#emit('login-failed', {
                code: 'unreachable',
                message: wasOpen
                    ? `The server closed the connection${reason ? ` (${reason})` : ''}. Try again.`
                    : 'Could not reach the server. Check that it is running, then try again.',
            });
            this.#emit('status', { state: 'idle' });
            return;
        }
        if (wasLoggedIn) this.#emit('disconnected', { code, reason });
    }

    #onWaiting({ retryAt }) {
        const offline = typeof navigator !== 'undefined' && navigator.onLine === false;
        this.#emit('status', { state: offline ? 'offline' : 'reconnecting', retryAt, note: this.#waitNote });
    }

    #onMessage(msg) {
        if (this.#closing) {
            if (msg.type === 'logged_out') this.#finish();
            return undefined;
        }
        switch (msg.type) {
        case 'welcome': return this.#onWelcome(msg);
        case 'joined': return this.#onJoined(msg);
        case 'left':
            this.#rooms.delete(msg.room);
            return this.#emit('left', { room: msg.room });
        case 'member_joined':
        case 'member_left':
            return this.#emit('member', {
                room: msg.room, nickname: msg.nickname, ts: msg.ts,
                joined: msg.type === 'member_joined', reason: msg.reason,
            });
        case 'room':
        case 'private':
            return this.#onChat(msg, 'live');
        case 'ack': {
            const request = this.#pending.get(msg.ref);
            this.#pending.delete(msg.ref);
            return this.#emit('ack', { ref: msg.ref, messageId: msg.message_id, request });
        }
        case 'history': {
            this.#pending.delete(msg.ref);
            const all = Array.isArray(msg.messages) ? msg.messages : [];
            const messages = all.filter((m) => m && m.message && typeof m.message.text === 'string' && typeof m.from === 'string' && this.#accept(m));
            return this.#emit('older', {
                room: typeof msg.room === 'string' ? msg.room : undefined, with: typeof msg.with === 'string' ? msg.with : undefined,
                ref: msg.ref, messages, received: all.length, more: !!msg.more,
            });
        }
        case 'conversations': {
            this.#pending.delete(msg.ref);
            const list = (Array.isArray(msg.conversations) ? msg.conversations : [])
                .filter((c) => c && typeof c.with === 'string' && c.with !== '')
                .map((c) => ({
                    with: c.with, lastId: Number.isSafeInteger(c.last_id) ? c.last_id : 0,
                    unread: Number.isSafeInteger(c.unread) && c.unread > 0 ? c.unread : 0,
                }));
            return this.#emit('conversations', { conversations: list });
        }
        case 'read':
            if (!Number.isSafeInteger(msg.up_to)) return undefined;
            return this.#emit('read', {
                with: typeof msg.with === 'string' ? msg.with : undefined,
                room: typeof msg.room === 'string' ? msg.room : undefined, upTo: msg.up_to,
            });
        case 'rooms':
            this.#pending.delete(msg.ref);
            return this.#emit('rooms', { rooms: msg.rooms || [], count: msg.count, more: msg.more === true });
        case 'members':
            this.#pending.delete(msg.ref);
            return this.#emit('members', { room: msg.room, members: msg.members || [], away: strings(msg.away) });
        case 'typing':
            if (typeof msg.nickname !== 'string' || (msg.state !== 'start' && msg.state !== 'stop')) return undefined;
            return this.#emit('typing', {
                room: typeof msg.room === 'string' ? msg.room : undefined, from: typeof msg.from === 'string' ? msg.from : undefined,
                nickname: msg.nickname, state: msg.state,
            });
        case 'status':
            if (typeof msg.nickname !== 'string' || typeof msg.away !== 'boolean') return undefined;
            return this.#emit('away', { nickname: msg.nickname, away: msg.away, text: typeof msg.text === 'string' ? msg.text : '' });
        case 'done':
            this.#pending.delete(msg.ref);
            return this.#emit('done', { ref: msg.ref, action: typeof msg.action === 'string' ? msg.action : '' });
        case 'error': return this.#onError(msg);
        case 'logged_out': return this.#onLoggedOut();
        case 'password_changed':
            this.#pending.delete(msg.ref);
            if (typeof msg.token === 'string' && msg.token) {
                this.#token = msg.token;
                this.#emit('token', { token: msg.token });
            }
            return this.#emit('password-changed', { ref: msg.ref });
        case 'undelivered':
            return this.#emit('undelivered', { messageId: msg.message_id, to: typeof msg.to === 'string' ? msg.to : '' });
        default: return undefined; // a newer server's extension; ignore
        }
    }

    #onWelcome(msg) {
        const first = !this.#everLoggedIn;
        this.#loggedIn = true;
        this.#everLoggedIn = true;
        this.#waitNote = '';
        this.#password = '';
        this.#account = msg.account === true;
        if (typeof msg.nickname === 'string' && msg.nickname) this.#nickname = msg.nickname;
        if (typeof msg.resume === 'string' && msg.resume) this.#resume = msg.resume;
        this.#sinceId = !this.#account && Number.isSafeInteger(msg.since_id) ? msg.since_id : 0;
        if (this.#account && typeof msg.token === 'string' && msg.token) {
            this.#token = msg.token;
            this.#emit('token', { token: msg.token });
        }
        this.#limits = msg.limits || {};
        this.#server = msg.server || {};
        this.#conn.resetBackoff();
        this.#emit('welcome', { nickname: this.#nickname, account: this.#account, limits: this.#limits, server: this.#server, first });
        this.#emit('status', { state: 'online' });
        if (first) {
            // A restored page joins the rooms it had, asking for what came
            // after the last message the earlier page had (`since`); the
            // app then fetches the page before that with `history`.
            const rooms = this.#restoreRooms;
            this.#restoreRooms = [];
            for (const room of rooms) {
                const since = Object.hasOwn(this.#restoreSince, room) ? this.#restoreSince[room] : 0;
                const ref = this.#request(Number.isSafeInteger(since) && since > 0 ? { type: 'join', room, since } : { type: 'join', room });
                if (ref && since > 0) this.#restoredRefs.add(ref);
            }
            this.#restoreSince = {};
            return;
        }
        for (const [room, { lastId }] of this.#rooms) {
            const req = { type: 'join', room };
            if (lastId > 0) req.since = lastId;
            const id = `c${this.#nextId++}`;
            this.#pending.set(id, req);
            this.#conn.send({ ...req, id });
        }
    }

    #onJoined(msg) {
        const request = this.#pending.get(msg.ref);
        this.#pending.delete(msg.ref);
        const rejoin = this.#rooms.has(msg.room) || (request !== undefined && request.since !== undefined);
        if (!this.#rooms.has(msg.room)) this.#rooms.set(msg.room, { lastId: 0 });
        const history = Array.isArray(msg.history) ? msg.history : [];
        // `more` (a tertulia extension) says whether older messages exist
        // beyond `history`; without it, a full-looking history suggests so.
        const more = typeof msg.more === 'boolean' ? msg.more : history.length > 0;
        // restored: the join of a reloaded page, with `since`; what it missed is in `history`.
        const restored = this.#restoredRefs.delete(msg.ref);
        const firstId = history.length > 0 && Number.isSafeInteger(history[0].id) ? history[0].id : 0;
        const since = request !== undefined && request.since !== undefined ? request.since : 0;
        this.#emit('joined', { room: msg.room, members: msg.members || [], away: strings(msg.away), rejoin, restored, since, firstId, historyCount: history.length, more });
        for (const m of history) this.#onChat({ type: 'room', to: msg.room, ...m }, rejoin ? 'rejoin' : 'join');
        this.#emit('joined-history', { room: msg.room, rejoin, restored });
    }

    /** `logged_out` we did not ask for here: a `logout` everywhere from another tab or device. */
    #onLoggedOut() {
        this.#conn.stop(1000, 'logged out');
        this.#forgetAll();
        this.#emit('logged-out', {});
    }

    #onChat(msg, source) {
        if (!msg.message || typeof msg.message.text !== 'string' || typeof msg.from !== 'string') return;
        if (!this.#accept(msg)) return;
        if (msg.type === 'room' && this.#rooms.has(msg.to) && Number.isSafeInteger(msg.id)) this.#rooms.get(msg.to).lastId = msg.id;
        this.#emit('message', { msg, source });
    }

    /**
     * True the first time a message is seen. A known id with different
     * content means the server lost its history across a restart and counts
     * ids from the start again: the new message is real, and the old ids
     * mean nothing any more.
     */
    #accept(m) {
        if (!Number.isSafeInteger(m.id)) return true;
        const sig = JSON.stringify([m.from, m.to, m.ts, m.message && m.message.text]);
        const prev = this.#seen.get(m.id);
        if (prev === sig) return false;
        if (prev !== undefined) this.#seen.clear();
        this.#seen.set(m.id, sig);
        if (this.#seen.size > SEEN_LIMIT) this.#seen.delete(this.#seen.keys().next().value);
        return true;
    }

    #onError(msg) {
        if (msg.ref !== undefined && msg.ref === this.#loginRef && !this.#loggedIn) {
            if (!this.#everLoggedIn) {
                this.#conn.stop();
                this.#password = '';
                this.#token = '';
                this.#emit('login-failed', {
                    code: msg.code, message: msg.message,
                    retryAfterMs: Number.isFinite(msg.retry_after_ms) ? msg.retry_after_ms : 0,
                });
                this.#emit('status', { state: 'idle' });
                return;
            }
            if (msg.code === 'auth_failed' && this.#token) {
                // The account's token was revoked (a logout or a password
                // change elsewhere) or expired: only the password helps now.
                const token = this.#token;
                this.#conn.stop();
                this.#token = '';
                this.#account = false;
                this.#everLoggedIn = false;
                this.#rooms.clear();
                this.#emit('status', { state: 'idle' });
                this.#emit('session-ended', { code: msg.code, token });
                return;
            }
            // A reconnect whose login is refused: usually our own previous
            // connection, not yet noticed as dead, still holds the nickname.
            // Keep trying with backoff; the server frees it on timeout.
            // auth_failed: the guest ended (the grace time passed, or the
            // server restarted); try the nickname anew.
            if (msg.code === 'auth_failed') this.#resume = '';
            this.#waitNote = msg.code === 'nickname_taken'
                ? 'Waiting for the server to release your nickname…'
                : msg.code === 'auth_failed' ? '' : msg.message || msg.code;
            this.#conn.restart(msg.code);
            return;
        }
        // A refused `read` (markRead) changes nothing the person sees.
        if (typeof msg.ref === 'string' && msg.ref.startsWith('r')) return;
        const request = msg.ref !== undefined ? this.#pending.get(msg.ref) : undefined;
        if (msg.ref !== undefined) this.#pending.delete(msg.ref);
        this.#emit('request-error', {
            code: msg.code, message: msg.message, ref: msg.ref, request,
            retryAfterMs: Number.isFinite(msg.retry_after_ms) ? msg.retry_after_ms : 0,
        });
    }
}
