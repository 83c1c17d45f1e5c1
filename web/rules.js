// The server's naming and size rules (docs/protocol.md), mirrored so the
// login and join forms can say what is wrong while the person types. The
// server stays the authority: these checks only save a round trip.

const NICK_RE = /^[A-Za-z0-9_.-]{1,32}$/;
const ROOM_RE = /^(?:#[A-Za-z0-9_.-]{1,63}|[A-Za-z0-9_.-]{1,64})$/;
const NAME_CHARS_RE = /^[A-Za-z0-9_.-]*$/;

/** Why `nick` is not a valid nickname, as a sentence, or "" when it is. */
export function nicknameProblem(nick) {
    if (nick.length === 0) return 'Choose a nickname.';
    if (nick.length > 32) return `Too long: ${nick.length} of at most 32 characters.`;
    if (!NAME_CHARS_RE.test(nick)) return `Not allowed: ${describeBadChars(nick)}. Use letters, digits, _ - and . only.`;
    return NICK_RE.test(nick) ? '' : 'Use letters, digits, _ - and . only.';
}

/**
 * Why `password` will not do, as a sentence, or "" when it will. A new
 * one (`creating`) must be 8 to 1,024 bytes of UTF-8, as the server counts.
 */
export function passwordProblem(password, creating) {
    if (password.length === 0) return creating ? 'Choose a password: at least 8 characters.' : 'Enter your password.';
    if (!creating) return '';
    const bytes = utf8Length(password);
    if (bytes < 8) return `Too short: at least 8 characters (${bytes} so far).`;
    if (bytes > 1024) return 'Too long: at most 1,024 bytes.';
    return '';
}

/** Why `room` is not a valid room name, as a sentence, or "" when it is. */
export function roomProblem(room) {
    if (room.length === 0) return 'Choose a room.';
    if (room === '#') return 'Add a name after the #.';
    if (room.length > 64) return `Too long: ${room.length} of at most 64 characters.`;
    const body = room.startsWith('#') ? room.slice(1) : room;
    if (!NAME_CHARS_RE.test(body)) return `Not allowed: ${describeBadChars(body)}. Use letters, digits, _ - and . (and an optional leading #).`;
    return ROOM_RE.test(room) ? '' : 'Use letters, digits, _ - and . (and an optional leading #).';
}

function describeBadChars(s) {
    const bad = [];
    for (const ch of s) {
        if (/[A-Za-z0-9_.-]/.test(ch)) continue;
        const shown = ch === ' ' ? 'spaces' : /\s/.test(ch) ? 'line breaks or tabs' : `“${ch}”`;
        if (!bad.includes(shown)) bad.push(shown);
        if (bad.length === 3) break;
    }
    return bad.join(', ');
}

/** Rooms are one whatever the case and the leading '#' ("#Dev", "dev"): the key to compare them. */
export function roomKey(room) {
    return room.replace(/^#/, '').toLowerCase();
}

/** Nicknames are unique case-insensitively, so this is the key to compare them. */
export function nickKey(nick) {
    return nick.toLowerCase();
}

const encoder = new TextEncoder();

/** The size the server counts against `max_text`: bytes of UTF-8. */
export function utf8Length(text) {
    return encoder.encode(text).length;
}

/** Default limits, used until the server's `welcome` says otherwise. */
export const DEFAULT_LIMITS = Object.freeze({ max_text: 4096 });
