// The web client's formatting, slash commands and completion, without a
// browser: what a text parses into, what a typed line means, what is
// offered while typing.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseFormat, linkHref, isAction } from '../../web/format.js';
import { parseInput, banSeconds, moderationRequest, matchCommands, COMMANDS, runCommand, actionText } from '../../web/commands.js';
import { completionContext, matchNicks } from '../../web/complete.js';
import { mentionsMe } from '../../web/notify.js';

const text = (v) => ({ t: 'text', v });

test('bold, italic and code', () => {
    assert.deepEqual(parseFormat('a *b* c'), [text('a '), { t: 'b', c: [text('b')] }, text(' c')]);
    assert.deepEqual(parseFormat('_it_'), [{ t: 'i', c: [text('it')] }]);
    assert.deepEqual(parseFormat('run `ls *.c` now'), [text('run '), { t: 'code', v: 'ls *.c' }, text(' now')]);
    // Nested: italic inside bold, bold inside italic.
    assert.deepEqual(parseFormat('*bold _both_*'), [{ t: 'b', c: [text('bold '), { t: 'i', c: [text('both')] }] }]);
    assert.deepEqual(parseFormat('_a *b* c_'), [{ t: 'i', c: [text('a '), { t: 'b', c: [text('b')] }, text(' c')] }]);
});

test('unbalanced, empty, spaced and in-word markers stay text', () => {
    for (const s of ['*open', 'close*', '* spaced *', '**', '****', 'snake_case_name', '2*3*4', 'a * b * c', '_', '`', '``', '*a\nb*', '**double**']) {
        const nodes = parseFormat(s);
        assert.ok(nodes.every((n) => n.t === 'text'), `${JSON.stringify(s)} → ${JSON.stringify(nodes)}`);
        assert.equal(nodes.map((n) => n.v).join(''), s);
    }
    // A crossing pair: the first that closes wins, the rest is text.
    assert.deepEqual(parseFormat('*a _b* c_'), [{ t: 'b', c: [text('a _b')] }, text(' c_')]);
    // The words around are kept as they were.
    assert.deepEqual(parseFormat('x *y*, z'), [text('x '), { t: 'b', c: [text('y')] }, text(', z')]);
});

test('code blocks keep their text as it is', () => {
    assert.deepEqual(parseFormat('see\n```\nint *p = _x_;\n<b>\n```\nok'), [text('see\n'), { t: 'pre', v: 'int *p = _x_;\n<b>' }, text('ok')]);
    assert.deepEqual(parseFormat('```one line```'), [{ t: 'pre', v: 'one line' }]);
    // An unclosed fence is text.
    assert.ok(parseFormat('```no end *b*').every((n) => n.t !== 'pre'));
});

test('links: http(s) and www., trailing punctuation left out, nothing else ever a link', () => {
    assert.deepEqual(parseFormat('go to http://example.org/a.'), [text('go to '), { t: 'link', v: 'http://example.org/a', href: 'http://example.org/a' }, text('.')]);
    assert.deepEqual(parseFormat('(see https://x.org/p?q=1),'), [text('(see '), { t: 'link', v: 'https://x.org/p?q=1', href: 'https://x.org/p?q=1' }, text('),')]);
    assert.deepEqual(parseFormat('https://en.wikipedia.org/wiki/C_(lang)!'), [{ t: 'link', v: 'https://en.wikipedia.org/wiki/C_(lang)', href: 'https://en.wikipedia.org/wiki/C_(lang)' }, text('!')]);
    assert.deepEqual(parseFormat('www.example.com/x_y_z'), [{ t: 'link', v: 'www.example.com/x_y_z', href: 'https://www.example.com/x_y_z' }]);
    assert.deepEqual(parseFormat('*https://b.org*'), [{ t: 'b', c: [{ t: 'link', v: 'https://b.org', href: 'https://b.org' }] }]);
    for (const s of ['javascript:alert(1)', 'JAVASCRIPT://x.org/%0aalert(1)', 'data:text/html,<script>', 'vbscript:x', 'ftp://x.org', 'www.', 'www.x', 'mailto:a@b.org', 'xhttp://a.org']) {
        assert.ok(parseFormat(s).every((n) => n.t !== 'link'), s);
    }
    assert.equal(linkHref('javascript:alert(1)'), '');
    assert.equal(linkHref('http://a.org'), 'http://a.org');
    // A URL in code is code.
    assert.deepEqual(parseFormat('`http://a.org`'), [{ t: 'code', v: 'http://a.org' }]);
});

test('a long line of markers parses in time, and whatever it is, no text is lost', () => {
    const s = '*a _'.repeat(1000);
    const t0 = Date.now();
    const nodes = parseFormat(s);
    assert.ok(Date.now() - t0 < 500);
    const flat = (ns) => ns.map((n) => (n.c ? flat(n.c) : n.v)).join('');
    assert.equal(flat(nodes).length, s.length - 2 * countFormatted(nodes));
});

function countFormatted(nodes) {
    return nodes.reduce((k, n) => k + (n.c ? 1 + countFormatted(n.c) : 0), 0);
}

test('a /me action is the author’s only', () => {
    assert.equal(isAction('ana', '* ana waves'), true);
    assert.equal(isAction('Ana', '* ana waves'), true);
    assert.equal(isAction('ben', '* ana waves'), false);
    assert.equal(isAction('ana', '* ana'), false);
    assert.equal(isAction('ana', '* anabel waves'), false);
    assert.equal(actionText('ana', 'waves'), '* ana waves');
});

test('slash commands: what a line means', () => {
    assert.deepEqual(parseInput('hello'), { kind: 'text', text: 'hello' });
    assert.deepEqual(parseInput('//shrug'), { kind: 'text', text: '/shrug' });
    assert.deepEqual(parseInput('/foo bar'), { kind: 'unknown', name: 'foo' });
    assert.deepEqual(parseInput('/'), { kind: 'unknown', name: '' });
    assert.deepEqual(parseInput('/JOIN #dev'), { kind: 'command', name: 'join', room: '#dev' });
    assert.equal(parseInput('/join').kind, 'usage');
    assert.equal(parseInput('/join two words').kind, 'usage');
    assert.match(parseInput('/join bad!name').message, /Not allowed/);
    assert.deepEqual(parseInput('/leave'), { kind: 'command', name: 'leave', room: '' });
    assert.deepEqual(parseInput('/leave #dev'), { kind: 'command', name: 'leave', room: '#dev' });
    assert.deepEqual(parseInput('/msg ben hi  there'), { kind: 'command', name: 'msg', nick: 'ben', text: 'hi  there' });
    assert.deepEqual(parseInput('/msg ben'), { kind: 'command', name: 'msg', nick: 'ben', text: '' });
    assert.match(parseInput('/msg').message, /^Usage: \/msg nickname text$/);
    assert.equal(parseInput('/msg b@d hi').kind, 'usage');
    assert.deepEqual(parseInput('/me waves'), { kind: 'command', name: 'me', action: 'waves' });
    assert.equal(parseInput('/me').kind, 'usage');
    assert.deepEqual(parseInput('/away lunch'), { kind: 'command', name: 'away', text: 'lunch' });
    assert.deepEqual(parseInput('/away'), { kind: 'command', name: 'away', text: '' });
    assert.deepEqual(parseInput('/back'), { kind: 'command', name: 'back' });
    assert.deepEqual(parseInput('/topic Release on *Friday*'), { kind: 'command', name: 'topic', topic: 'Release on *Friday*' });
    assert.deepEqual(parseInput('/kick sam spamming links'), { kind: 'command', name: 'kick', nick: 'sam', reason: 'spamming links' });
    assert.equal(parseInput('/kick').kind, 'usage');
    assert.deepEqual(parseInput('/unban sam'), { kind: 'command', name: 'unban', nick: 'sam' });
    assert.equal(parseInput('/op').kind, 'usage');
    assert.equal(parseInput('/deop a b').kind, 'usage');
    assert.deepEqual(parseInput('/help'), { kind: 'command', name: 'help' });
});

test('/ban: minutes, hours, days or for ever', () => {
    assert.equal(banSeconds('10'), 600);
    assert.equal(banSeconds('2h'), 7200);
    assert.equal(banSeconds('1d'), 86400);
    assert.equal(banSeconds('forever'), null);
    assert.equal(banSeconds('0'), undefined);
    assert.equal(banSeconds('spam'), undefined);
    assert.equal(banSeconds('9999999d'), 10 * 365 * 86400);
    assert.deepEqual(parseInput('/ban sam 30 flooding'), { kind: 'command', name: 'ban', nick: 'sam', seconds: 1800, reason: 'flooding' });
    assert.deepEqual(parseInput('/ban sam forever'), { kind: 'command', name: 'ban', nick: 'sam', seconds: null, reason: '' });
    assert.deepEqual(parseInput('/ban sam being rude'), { kind: 'command', name: 'ban', nick: 'sam', seconds: null, reason: 'being rude' });
});

test('moderation commands send the agreed requests', () => {
    const req = (line) => moderationRequest(parseInput(line), '#r');
    assert.deepEqual(req('/topic hi all'), { type: 'topic', room: '#r', topic: 'hi all' });
    assert.deepEqual(req('/topic'), { type: 'topic', room: '#r', topic: '' });
    assert.deepEqual(req('/kick sam'), { type: 'kick', room: '#r', nickname: 'sam' });
    assert.deepEqual(req('/kick sam go away'), { type: 'kick', room: '#r', nickname: 'sam', reason: 'go away' });
    assert.deepEqual(req('/ban sam 2h spam'), { type: 'ban', room: '#r', nickname: 'sam', seconds: 7200, reason: 'spam' });
    assert.deepEqual(req('/ban sam'), { type: 'ban', room: '#r', nickname: 'sam' });
    assert.deepEqual(req('/unban sam'), { type: 'unban', room: '#r', nickname: 'sam' });
    assert.deepEqual(req('/op ben'), { type: 'op', room: '#r', nickname: 'ben' });
    assert.deepEqual(req('/deop ben'), { type: 'deop', room: '#r', nickname: 'ben' });
});

test('runCommand: unknown commands and bad arguments send nothing; moderation needs a room', () => {
    const sent = [];
    const notices = [];
    const app = {
        conv: { kind: 'private', name: 'ben' }, me: 'ana',
        notice: (t) => notices.push(t), sendText: (c, t) => { sent.push(['text', t]); return true; }, request: (r) => { sent.push(['req', r]); return 'c1'; },
        joinRoom: () => true, leave: () => true, openPrivate: () => true, setAway: () => true, isAway: () => false,
    };
    assert.equal(runCommand(parseInput('/foo'), app), false);
    assert.match(notices.pop(), /^Unknown command \/foo — \/help lists them/);
    assert.equal(runCommand(parseInput('/msg'), app), false);
    assert.match(notices.pop(), /Usage: \/msg/);
    assert.equal(runCommand(parseInput('/kick sam'), app), false);
    assert.match(notices.pop(), /works in a room/);
    assert.deepEqual(sent, []);
    app.conv = { kind: 'room', name: '#r' };
    assert.equal(runCommand(parseInput('/kick sam'), app), true);
    assert.deepEqual(sent, [['req', { type: 'kick', room: '#r', nickname: 'sam' }]]);
    assert.equal(runCommand(parseInput('/me waves'), app), true);
    assert.deepEqual(sent.at(-1), ['text', '* ana waves']);
    runCommand(parseInput('/help'), app);
    const help = notices.pop();
    for (const c of COMMANDS) assert.ok(help.includes(c.usage), c.name);
});

test('completion: commands after /, nicknames after @ or a command that takes one', () => {
    assert.deepEqual(matchCommands('j').map((c) => c.name), ['join']);
    assert.equal(matchCommands('').length, COMMANDS.length);
    assert.deepEqual(completionContext('/jo', 3), { kind: 'command', start: 0, end: 3, prefix: 'jo' });
    assert.equal(completionContext('/join ', 6), null);
    assert.equal(completionContext('//jo', 4), null);
    assert.deepEqual(completionContext('hi @be', 6), { kind: 'nick', start: 3, end: 6, prefix: 'be', at: true });
    assert.deepEqual(completionContext('@', 1), { kind: 'nick', start: 0, end: 1, prefix: '', at: true });
    assert.equal(completionContext('mail me@ana', 11), null);
    assert.deepEqual(completionContext('/kick sa', 8), { kind: 'nick', start: 6, end: 8, prefix: 'sa', at: false });
    assert.equal(completionContext('/kick sam now', 13), null);
    assert.equal(completionContext('/join ge', 8), null);
    assert.deepEqual(matchNicks(['Benito', 'ben', 'ana', 'BENJI'], 'be'), ['ben', 'BENJI', 'Benito']);
    assert.deepEqual(matchNicks(['a1', 'a2', 'a3'], 'a', 2), ['a1', 'a2']);
});

test('a message mentions me when its `mentions` names me, in any case', () => {
    assert.equal(mentionsMe({ mentions: ['Ana'] }, 'ana'), true);
    assert.equal(mentionsMe({ mentions: ['ben'] }, 'ana'), false);
    assert.equal(mentionsMe({}, 'ana'), false);
    assert.equal(mentionsMe({ mentions: 'ana' }, 'ana'), false);
});

/* A WebSocket stand-in (as in client-logic.test.mjs): records what is sent, delivers frames. */
class Scripted {
    static last = null;
    constructor() { this.readyState = 0; this.sent = []; Scripted.last = this; }
    send(text) { this.sent.push(JSON.parse(text)); }
    close() { this.readyState = 3; }
    open() { this.readyState = 1; this.onopen?.({}); }
    deliver(obj) { this.onmessage?.({ data: JSON.stringify(obj) }); }
}

test('the session sends a command’s request and reports its done, and a refusal with its wait', async () => {
    const { Session } = await import('../../web/session.js');
    const s = new Session({ url: 'ws://x/ws', WebSocketImpl: Scripted, timing: { pingIdleMs: 60000, pongTimeoutMs: 60000 } });
    const events = [];
    for (const type of ['done', 'request-error']) s.addEventListener(type, (ev) => events.push({ type, ...ev.detail }));
    assert.equal(s.command({ type: 'kick', room: '#r', nickname: 'sam' }), '', 'nothing while logged out');
    s.login('ana', 'r');
    const ws = Scripted.last;
    ws.open();
    ws.deliver({ type: 'welcome', ref: ws.sent.at(-1).id, nickname: 'ana', limits: {} });
    const req = { type: 'kick', room: '#r', nickname: 'sam', reason: 'spam' };
    const ref = s.command(req);
    assert.deepEqual(ws.sent.at(-1), { ...req, id: ref });
    ws.deliver({ type: 'done', ref, action: 'kick' });
    assert.deepEqual(events.pop(), { type: 'done', ref, action: 'kick' });

    const ref2 = s.command({ type: 'op', room: '#r', nickname: 'ben' });
    ws.deliver({ type: 'error', code: 'unknown_type', message: 'The message type is not one this server knows.', ref: ref2 });
    const refused = events.pop();
    assert.equal(refused.code, 'unknown_type');
    assert.deepEqual(refused.request, { type: 'op', room: '#r', nickname: 'ben' });
    assert.equal(refused.retryAfterMs, 0);

    const ref3 = s.sendRoom('#r', 'fast');
    ws.deliver({ type: 'error', code: 'rate_limited', message: 'Too many messages: wait 1500 ms', retry_after_ms: 1500, ref: ref3 });
    assert.equal(events.pop().retryAfterMs, 1500);
    s.logout();
});
