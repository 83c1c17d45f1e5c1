// Slash commands typed in the message box. `parseInput` decides what a
// line is — a message to send, a command with its arguments, a command used
// wrongly (its usage), or an unknown command, which is never sent — without
// any DOM or network, so it is tested on its own. `runCommand` carries a
// parsed command out through the functions app.js hands it.

import { nicknameProblem, roomProblem } from './rules.js';

/** Every command, in the order /help lists them. `arg`: what its first argument names, for completion. */
export const COMMANDS = [
    { name: 'join', usage: '/join #room', help: 'join a room (or go to it)', arg: 'room' },
    { name: 'leave', usage: '/leave [#room]', help: 'leave this room, or the one named', arg: 'room' },
    { name: 'msg', usage: '/msg nickname text', help: 'send a private message (without text: open the conversation)', arg: 'nick' },
    { name: 'me', usage: '/me action', help: 'say what you are doing, as “* you waves”' },
    { name: 'away', usage: '/away [text]', help: 'tell the others you are away (again, or /back: you are back)' },
    { name: 'back', usage: '/back', help: 'tell the others you are back' },
    { name: 'topic', usage: '/topic [text]', help: 'set this room’s topic (nothing after it: clear it)' },
    { name: 'kick', usage: '/kick nickname [reason]', help: 'remove someone from this room', arg: 'nick' },
    { name: 'ban', usage: '/ban nickname [minutes|2h|1d|forever] [reason]', help: 'remove someone and keep them out (for ever unless a time is given)', arg: 'nick' },
    { name: 'unban', usage: '/unban nickname', help: 'let someone banned back in', arg: 'nick' },
    { name: 'op', usage: '/op nickname', help: 'make someone an operator of this room', arg: 'nick' },
    { name: 'deop', usage: '/deop nickname', help: 'take someone’s operator role away', arg: 'nick' },
    { name: 'help', usage: '/help', help: 'list these commands' },
];

const BY_NAME = new Map(COMMANDS.map((c) => [c.name, c]));
const MAX_BAN_SECONDS = 10 * 365 * 86400; // ten years: longer is "forever"

/** The commands whose name starts with `prefix` (no slash). */
export function matchCommands(prefix) {
    const p = prefix.toLowerCase();
    return COMMANDS.filter((c) => c.name.startsWith(p));
}

/** "2h" → 7200; "90" (minutes) → 5400; "forever" → null; not a time → undefined. */
export function banSeconds(word) {
    if (/^(forever|permanent|perm)$/i.test(word)) return null;
    const m = /^(\d{1,7})([mhd]?)$/i.exec(word);
    if (!m) return undefined;
    const unit = { '': 60, m: 60, h: 3600, d: 86400 }[m[2].toLowerCase()];
    const secs = Number(m[1]) * unit;
    if (secs <= 0) return undefined;
    return Math.min(secs, MAX_BAN_SECONDS);
}

const usage = (name, why = '') => ({ kind: 'usage', name, message: `${why ? `${why} ` : ''}Usage: ${BY_NAME.get(name).usage}` });

/** Splits off the first word: [word, rest] (rest trimmed at its start). */
function firstWord(s) {
    const m = /^(\S+)\s*([\s\S]*)$/u.exec(s);
    return m ? [m[1], m[2]] : ['', ''];
}

/**
 * What a line typed in the box is:
 * {kind: 'text', text} — a message to send (a leading "//" sends one "/");
 * {kind: 'command', name, ...arguments};
 * {kind: 'usage', name, message} — a known command used wrongly: nothing is sent;
 * {kind: 'unknown', name} — not a command: nothing is sent either.
 */
export function parseInput(line) {
    if (!line.startsWith('/')) return { kind: 'text', text: line };
    if (line.startsWith('//')) return { kind: 'text', text: line.slice(1) };
    const [word, rest] = firstWord(line.slice(1));
    const name = word.toLowerCase();
    const args = rest.replace(/\s+$/u, '');
    switch (name) {
    case 'join': {
        const [room, extra] = firstWord(args);
        if (!room || extra) return usage(name);
        const problem = roomProblem(room);
        return problem ? usage(name, problem) : { kind: 'command', name, room };
    }
    case 'leave': case 'part': {
        const [room, extra] = firstWord(args);
        if (extra) return usage('leave');
        if (room && roomProblem(room)) return usage('leave', roomProblem(room));
        return { kind: 'command', name: 'leave', room };
    }
    case 'msg': case 'query': {
        const [nick, text] = firstWord(args);
        if (!nick) return usage('msg');
        if (nicknameProblem(nick)) return usage('msg', `“${nick}” is not a nickname.`);
        return { kind: 'command', name: 'msg', nick, text };
    }
    case 'me':
        return args.trim() ? { kind: 'command', name, action: args.trim() } : usage(name);
    case 'away':
        return { kind: 'command', name, text: args.trim() };
    case 'back':
        return args ? usage(name) : { kind: 'command', name };
    case 'topic':
        return { kind: 'command', name, topic: args.trim() };
    case 'kick': {
        const [nick, reason] = firstWord(args);
        if (!nick) return usage(name);
        if (nicknameProblem(nick)) return usage(name, `“${nick}” is not a nickname.`);
        return { kind: 'command', name, nick, reason: reason.trim() };
    }
    case 'ban': {
        const [nick, rest2] = firstWord(args);
        if (!nick) return usage(name);
        if (nicknameProblem(nick)) return usage(name, `“${nick}” is not a nickname.`);
        const [when, after] = firstWord(rest2);
        const secs = when ? banSeconds(when) : null;
        // A reason may start right after the nickname: then the ban is for ever.
        if (secs === undefined) return { kind: 'command', name, nick, seconds: null, reason: rest2.trim() };
        return { kind: 'command', name, nick, seconds: secs, reason: after.trim() };
    }
    case 'unban': case 'op': case 'deop': {
        const [nick, extra] = firstWord(args);
        if (!nick || extra) return usage(name);
        if (nicknameProblem(nick)) return usage(name, `“${nick}” is not a nickname.`);
        return { kind: 'command', name, nick };
    }
    case 'help':
        return { kind: 'command', name };
    default:
        return { kind: 'unknown', name: word };
    }
}

/** The text a `/me` action is sent as: "* ana waves". */
export function actionText(me, action) {
    return `* ${me} ${action}`;
}

/** The request a moderation command sends (docs/protocol.md, "Moderation"), or null for the others. */
export function moderationRequest(cmd, room) {
    switch (cmd.name) {
    case 'topic': return { type: 'topic', room, topic: cmd.topic };
    case 'kick': return cmd.reason ? { type: 'kick', room, nickname: cmd.nick, reason: cmd.reason } : { type: 'kick', room, nickname: cmd.nick };
    case 'ban': {
        const req = { type: 'ban', room, nickname: cmd.nick };
        if (cmd.seconds !== null) req.seconds = cmd.seconds;
        if (cmd.reason) req.reason = cmd.reason;
        return req;
    }
    case 'unban': case 'op': case 'deop': return { type: cmd.name, room, nickname: cmd.nick };
    default: return null;
    }
}

/**
 * Runs a parsed line. `app` gives: conv (the conversation on screen, or
 * null: {kind, name}), me, notice(text) (a line in the conversation, or a
 * toast), sendText(conv, text), joinRoom(room), leave(room | ''),
 * openPrivate(nick, text), setAway(away, text), isAway(), request(req)
 * (sends, returns the ref or ''). Returns true when the box may be
 * cleared (the line was used), false when it should stay to be fixed.
 */
export function runCommand(parsed, app) {
    const conv = app.conv;
    if (parsed.kind === 'unknown') {
        app.notice(`Unknown command /${parsed.name} — /help lists them. To send a line that starts with /, begin it with //.`);
        return false;
    }
    if (parsed.kind === 'usage') {
        app.notice(parsed.message);
        return false;
    }
    const cmd = parsed;
    switch (cmd.name) {
    case 'join': return app.joinRoom(cmd.room);
    case 'leave': return app.leave(cmd.room);
    case 'msg': return app.openPrivate(cmd.nick, cmd.text);
    case 'me':
        if (!conv) return false;
        return app.sendText(conv, actionText(app.me, cmd.action));
    case 'away':
        if (!cmd.text && app.isAway()) return app.setAway(false, '');
        return app.setAway(true, cmd.text);
    case 'back': return app.setAway(false, '');
    case 'help':
        app.notice(['Commands:', ...COMMANDS.map((c) => `${c.usage} — ${c.help}`), '//text sends “/text” as a message.'].join('\n'));
        return true;
    default: {
        if (!conv || conv.kind !== 'room') {
            app.notice(`/${cmd.name} works in a room: go to the room first.`);
            return false;
        }
        const req = moderationRequest(cmd, conv.name);
        if (!app.request(req)) {
            app.notice('You are offline; try again once reconnected.');
            return false;
        }
        return true;
    }
    }
}
