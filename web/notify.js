// Getting the person's attention: a desktop notification when a message
// mentions them or a private message comes while the tab is hidden, and
// rooms muted here (remembered in this browser), which never notify and
// count in no badge. Permission for notifications is asked once, on the
// person's first click or key press in the chat, never on page load.

const STORE_MUTED = 'tertulia.muted'; // [room key, …]
const STORE_ASKED = 'tertulia.notifications-asked';
const MAX_MUTED = 500;

function read(key) {
    try { return localStorage.getItem(key); } catch { return null; }
}

function write(key, value) {
    try { localStorage.setItem(key, value); } catch { /* storage disabled: this page only */ }
}

export class Attention {
    #muted = new Set();
    #shown = []; // notifications still open, closed when the person comes back

    constructor() {
        try {
            const list = JSON.parse(read(STORE_MUTED) || '[]');
            if (Array.isArray(list)) for (const k of list.slice(0, MAX_MUTED)) if (typeof k === 'string') this.#muted.add(k);
        } catch { /* damaged: nothing muted */ }
        // Another tab muting or unmuting a room.
        addEventListener('storage', (ev) => {
            if (ev.key !== STORE_MUTED) return;
            try {
                const list = JSON.parse(ev.newValue || '[]');
                this.#muted = new Set(Array.isArray(list) ? list.filter((k) => typeof k === 'string').slice(0, MAX_MUTED) : []);
                this.onMutedChange();
            } catch { /* ignore */ }
        });
        document.addEventListener('visibilitychange', () => {
            if (document.hidden) return;
            for (const n of this.#shown) n.close();
            this.#shown = [];
        });
    }

    /** Called when another tab changed which rooms are muted. */
    onMutedChange = () => {};

    isMuted(key) { return this.#muted.has(key); }

    setMuted(key, muted) {
        if (muted) {
            if (this.#muted.size >= MAX_MUTED) this.#muted.delete(this.#muted.values().next().value);
            this.#muted.add(key);
        } else {
            this.#muted.delete(key);
        }
        write(STORE_MUTED, JSON.stringify([...this.#muted]));
    }

    /**
     * Asks for permission to notify, the first time only, from a user
     * gesture (browsers ignore or penalise asking without one).
     */
    askOnce() {
        if (typeof Notification === 'undefined' || Notification.permission !== 'default' || read(STORE_ASKED)) return;
        write(STORE_ASKED, '1');
        try {
            const p = Notification.requestPermission();
            if (p && typeof p.catch === 'function') p.catch(() => {});
        } catch { /* an old browser's callback form: nothing to do */ }
    }

    /** Shows a desktop notification if the tab is hidden and permission was given. `onClick` brings the conversation up. */
    notify(title, body, tag, onClick) {
        if (!document.hidden || typeof Notification === 'undefined' || Notification.permission !== 'granted') return false;
        try {
            const n = new Notification(title, { body: body.length > 200 ? `${body.slice(0, 199)}…` : body, tag, icon: 'favicon.svg' });
            n.onclick = () => {
                window.focus();
                onClick();
                n.close();
            };
            this.#shown.push(n);
            if (this.#shown.length > 20) this.#shown.shift().close();
            return true;
        } catch {
            return false; // some platforms allow notifications from a service worker only
        }
    }
}

/** True when a room message's `mentions` name `me` (nicknames compare ignoring case). */
export function mentionsMe(msg, me) {
    if (!Array.isArray(msg.mentions) || !me) return false;
    const key = me.toLowerCase();
    return msg.mentions.some((n) => typeof n === 'string' && n.toLowerCase() === key);
}
