// Formatting, slash commands with their completion, and @-mentions in the
// web client, against the real server: what one page types, the other
// page shows (or, for what must not be sent, does not show: proved by a
// later message arriving without it).

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer } from './server.mjs';
import { launchBrowser, openPage, joinAs, say, waitForMessage, messages, memberNames, activeLog, until, wsClient } from './browser.mjs';

const browser = await launchBrowser();
const server = await startServer();
after(async () => {
    await browser.close();
    await server.dispose();
});

const box = (page) => page.getByRole('textbox', { name: 'Message', exact: true });
const notices = (page) => activeLog(page).locator('li.sys.notice > span').allTextContents();
const lastNotice = async (page) => (await notices(page)).at(-1) || '';

/** Every frame the page sends on its WebSocket (DevTools protocol), parsed. */
async function recordSent(page) {
    const sent = [];
    const cdp = await page.context().newCDPSession(page);
    await cdp.send('Network.enable');
    cdp.on('Network.webSocketFrameSent', (e) => {
        try { sent.push(JSON.parse(e.response.payloadData)); } catch { /* not JSON */ }
    });
    return sent;
}

test('formatting becomes elements, and every injection string stays text', async () => {
    const sender = await joinAs(browser, server.url, 'mallory-f', 'sala-fmt');
    const reader = await joinAs(browser, server.url, 'alice-f', 'sala-fmt');
    const requests = [];
    reader.on('request', (req) => requests.push(req.url()));
    // The injection strings of the suite (chat.test.mjs), and a few more that mix them with markers.
    const injections = [
        '<img src=x onerror=alert(1)>',
        '<script>alert(2)</script><b>bold?</b>',
        '"><svg onload=alert(3)> &amp; &lt;',
        'javascript:alert(4) http://example.invalid/"onmouseover="alert(5)',
        '*<img src=x onerror=alert(6)>*',
        '`<script>alert(7)</script>`',
        '```\n<iframe src="javascript:alert(8)"></iframe>\n```',
        '_[x](javascript:alert(9))_ www.javascript:alert(10)',
    ];
    const formatted = [
        'a *bold* and _italic_ and `code` word',
        '*bold with _italic_ inside*',
        'unbalanced *star and _under',
        'see http://example.org/path. or (https://example.org/x), and www.example.com!',
        'before\n```\nint *p = _x_;\n```\nafter',
    ];
    for (const text of [...injections, ...formatted]) await say(sender, text);
    await waitForMessage(reader, 'after', 'mallory-f');

    const log = activeLog(reader);
    assert.equal(await log.locator('img, script, svg, b, iframe').count(), 0);
    const shown = await log.locator('li.msg').evaluateAll((lis) => lis.map((li) => ({ text: li.querySelector('.text').textContent, html: li.querySelector('.text').innerHTML })));
    // The injections: shown as the characters they are (less the markers that formatted them).
    assert.equal(shown[0].text, injections[0]);
    assert.equal(shown[1].text, injections[1]);
    assert.equal(shown[2].text, injections[2]);
    assert.equal(shown[3].text, injections[3]);
    assert.equal(shown[4].text, '<img src=x onerror=alert(6)>');
    assert.equal(shown[4].html, '<strong>&lt;img src=x onerror=alert(6)&gt;</strong>');
    assert.equal(shown[5].html, '<code>&lt;script&gt;alert(7)&lt;/script&gt;</code>');
    assert.equal(shown[6].html, '<code class="code-block">&lt;iframe src="javascript:alert(8)"&gt;&lt;/iframe&gt;</code>');
    assert.equal(shown[7].text, '[x](javascript:alert(9)) www.javascript:alert(10)');
    // The formatting.
    assert.equal(shown[8].html, 'a <strong>bold</strong> and <em>italic</em> and <code>code</code> word');
    assert.equal(shown[9].html, '<strong>bold with <em>italic</em> inside</strong>');
    assert.equal(shown[10].html, 'unbalanced *star and _under');
    assert.equal(shown[12].html, 'before\n<code class="code-block">int *p = _x_;</code>after');
    // Links: http(s) only, trailing punctuation outside, www. to https.
    const links = await log.locator('a').evaluateAll((as) => as.map((a) => [a.getAttribute('href'), a.textContent, a.rel]));
    assert.deepEqual(links, [
        ['http://example.invalid/', 'http://example.invalid/', 'noopener noreferrer nofollow'],
        ['http://example.org/path', 'http://example.org/path', 'noopener noreferrer nofollow'],
        ['https://example.org/x', 'https://example.org/x', 'noopener noreferrer nofollow'],
        ['https://www.example.com', 'www.example.com', 'noopener noreferrer nofollow'],
    ]);
    assert.deepEqual(reader.dialogs, []);
    assert.deepEqual(sender.dialogs, []);
    assert.equal(requests.filter((u) => /\/x$/.test(u)).length, 0, 'no request for an <img src=x>');
    assert.deepEqual(reader.problems, []);
    assert.deepEqual(sender.problems, []);
    await sender.context().close();
    await reader.context().close();
});

test('slash commands: /help, unknown ones never sent, //, /me, /msg, /join, /leave, /away, /back', async () => {
    const ana = await joinAs(browser, server.url, 'ana-c', 'sala-cmd');
    const ben = await joinAs(browser, server.url, 'ben-c', 'sala-cmd');
    await until(async () => (await memberNames(ana)).includes('ben-c'), { what: 'ben in the room' });

    await say(ana, '/help');
    const help = await lastNotice(ana);
    for (const usage of ['/join #room', '/leave [#room]', '/msg nickname text', '/me action', '/away [text]', '/topic [text]', '/kick nickname [reason]', '/ban nickname', '/unban nickname', '/op nickname', '/deop nickname', '/help']) {
        assert.ok(help.includes(usage), `/help lists ${usage}`);
    }
    assert.equal(await box(ana).inputValue(), '', 'a command that ran leaves the box empty');

    // An unknown command: a notice, the line stays to be fixed, and nothing goes out.
    await say(ana, '/shrug me');
    assert.match(await lastNotice(ana), /^Unknown command \/shrug — \/help lists them/);
    assert.equal(await box(ana).inputValue(), '/shrug me');
    // Bad arguments: the usage, nothing sent.
    await say(ana, '/msg');
    assert.match(await lastNotice(ana), /Usage: \/msg nickname text/);
    // "//" sends one "/".
    await say(ana, '//shrug literally');
    await say(ana, '/me waves');
    await waitForMessage(ben, '* ana-c waves', 'ana-c');
    const benTexts = (await messages(ben)).map((m) => m.text);
    assert.deepEqual(benTexts, ['/shrug literally', '* ana-c waves'], 'neither /shrug nor /msg reached the room');
    assert.equal(await activeLog(ben).locator('li.msg.action').count(), 1);
    assert.equal(await activeLog(ben).locator('li.msg.action .text').textContent(), '* ana-c waves');

    // /msg: a private conversation, never a room message.
    await say(ana, '/msg ben-c just between us');
    await ana.getByRole('heading', { name: 'ben-c' }).waitFor();
    await waitForMessage(ana, 'just between us', 'ana-c');
    await ben.locator('.conv[data-conv="p:ana-c"]').click();
    await waitForMessage(ben, 'just between us', 'ana-c');
    await ben.locator('.conv[data-conv="r:sala-cmd"]').click();
    await say(ana, '/join #sala-cmd');
    await ana.getByRole('heading', { name: 'sala-cmd' }).waitFor();
    await say(ana, 'back in the room');
    await waitForMessage(ben, 'back in the room', 'ana-c');
    assert.deepEqual((await messages(ben)).map((m) => m.text), ['/shrug literally', '* ana-c waves', 'back in the room']);

    // /join and /leave.
    await say(ana, '/join sala-cmd2');
    await ana.getByRole('heading', { name: 'sala-cmd2' }).waitFor();
    await say(ana, '/leave');
    await until(async () => !(await ana.locator('#room-list .conv-name').allTextContents()).includes('sala-cmd2'), { what: 'left sala-cmd2' });
    await say(ana, '/join sala-cmd3');
    await ana.getByRole('heading', { name: 'sala-cmd3' }).waitFor();
    await say(ana, '/leave #sala-cmd3');
    await until(async () => (await ana.locator('#room-list .conv-name').allTextContents()).join() === 'sala-cmd', { what: 'left sala-cmd3 by name' });

    // /away with a text, /away again (toggles off), /away, /back.
    const anaInBen = ben.getByRole('list', { name: 'Members' }).locator('.person').filter({ hasText: 'ana-c' });
    await ana.getByRole('heading', { name: 'sala-cmd' }).waitFor();
    await say(ana, '/away at lunch');
    await until(async () => anaInBen.evaluate((el) => el.classList.contains('away')), { what: 'ana away for ben' });
    assert.match(await anaInBen.getAttribute('title'), /ana-c is away: at lunch/);
    await say(ana, '/away');
    await until(async () => !(await anaInBen.evaluate((el) => el.classList.contains('away'))), { what: '/away again: back' });
    await say(ana, '/away');
    await until(async () => anaInBen.evaluate((el) => el.classList.contains('away')), { what: 'away without a text' });
    await say(ana, '/back');
    await until(async () => !(await anaInBen.evaluate((el) => el.classList.contains('away'))), { what: '/back' });

    assert.deepEqual(ana.problems, []);
    assert.deepEqual(ben.problems, []);
    await ana.context().close();
    await ben.context().close();
});

test('moderation commands send the agreed requests and show the server’s answer', async () => {
    const ana = await joinAs(browser, server.url, 'ana-m', 'sala-mod');
    const sent = await recordSent(ana);
    const ben = await joinAs(browser, server.url, 'ben-m', 'sala-mod');
    await until(async () => (await memberNames(ana)).includes('ben-m'), { what: 'ben in the room' });

    const cases = [
        ['/topic Friday release', { type: 'topic', room: 'sala-mod', topic: 'Friday release' }],
        ['/kick ben-m enough', { type: 'kick', room: 'sala-mod', nickname: 'ben-m', reason: 'enough' }],
        ['/ban ben-m 2h spam', { type: 'ban', room: 'sala-mod', nickname: 'ben-m', seconds: 7200, reason: 'spam' }],
        ['/unban ben-m', { type: 'unban', room: 'sala-mod', nickname: 'ben-m' }],
        ['/op ben-m', { type: 'op', room: 'sala-mod', nickname: 'ben-m' }],
        ['/deop ben-m', { type: 'deop', room: 'sala-mod', nickname: 'ben-m' }],
    ];
    for (const [line, want] of cases) {
        await say(ana, line);
        const req = await until(() => sent.find((f) => f.type === want.type), { what: `the ${want.type} request` });
        const { id, ...rest } = req;
        assert.deepEqual(rest, want, line);
        assert.match(id, /^c\d+$/);
        // The server answers each with a reference to it: an error (this
        // server may not know the request yet: unknown_type) is shown.
        await until(async () => (await notices(ana)).some((t) => t.startsWith(`/${want.type}`)), { what: `the answer to ${line}` });
    }
    const shown = await notices(ana);
    for (const t of shown) assert.match(t, /^\/(topic|kick|ban|unban|op|deop)( ben-m)?: .+ \([a-z_]+\)\.$/, t);
    // In a private conversation they are refused before sending.
    await say(ana, '/msg ben-m hi');
    await ana.getByRole('heading', { name: 'ben-m' }).waitFor();
    const before = sent.length;
    await say(ana, '/kick ben-m');
    assert.match(await lastNotice(ana), /\/kick works in a room/);
    await say(ana, 'still here');
    await until(() => sent.length > before, { what: 'the next frame' });
    assert.ok(!sent.slice(before).some((f) => f.type === 'kick'), 'no kick from a private conversation');
    assert.deepEqual(ana.problems, []);
    await ana.context().close();
    await ben.context().close();
});

test('completion of commands and nicknames, with the keyboard, as a listbox', async () => {
    const ana = await joinAs(browser, server.url, 'ana-k', 'sala-comp');
    const benito = await joinAs(browser, server.url, 'benito-k', 'sala-comp');
    const bea = await joinAs(browser, server.url, 'bea-k', 'sala-comp');
    await until(async () => (await memberNames(ana)).length === 3, { what: 'all three in the room' });
    const list = ana.getByRole('listbox', { name: 'Suggestions' });

    await box(ana).pressSequentially('/jo');
    await list.waitFor();
    assert.deepEqual(await list.getByRole('option').allTextContents(), ['/joinjoin a room (or go to it)']);
    assert.equal(await list.getByRole('option').first().getAttribute('aria-selected'), 'true');
    assert.equal(await box(ana).getAttribute('aria-activedescendant'), await list.getByRole('option').first().getAttribute('id'));
    await box(ana).press('Tab');
    assert.equal(await box(ana).inputValue(), '/join ');
    await list.waitFor({ state: 'hidden' });

    // Nicknames after @: the room's members (not me), shortest first; ↓ and Enter pick.
    await box(ana).fill('');
    await box(ana).pressSequentially('hi @be');
    await list.waitFor();
    assert.deepEqual(await list.getByRole('option').allTextContents(), ['@bea-k', '@benito-k']);
    await box(ana).press('ArrowDown');
    assert.equal(await list.getByRole('option').nth(1).getAttribute('aria-selected'), 'true');
    await box(ana).press('Enter');
    assert.equal(await box(ana).inputValue(), 'hi @benito-k ');
    // Escape closes; Enter then sends.
    await box(ana).pressSequentially('and @');
    await list.waitFor();
    await box(ana).press('Escape');
    await list.waitFor({ state: 'hidden' });
    await box(ana).fill('hi @benito-k how are you');
    await box(ana).press('Enter');
    await waitForMessage(benito, 'how are you', 'ana-k');

    // A command typed in full: Enter runs it, it does not pick again.
    await box(ana).pressSequentially('/help');
    await list.waitFor();
    await box(ana).press('Enter');
    assert.match(await lastNotice(ana), /^Commands:/);

    // The nickname argument of a command.
    await box(ana).pressSequentially('/kick bea-k');
    await list.waitFor({ state: 'hidden' }); // complete already: nothing to offer
    await box(ana).fill('');
    await box(ana).pressSequentially('/op b');
    await list.waitFor();
    assert.deepEqual(await list.getByRole('option').allTextContents(), ['bea-k', 'benito-k']);
    await list.getByRole('option').nth(0).click();
    assert.equal(await box(ana).inputValue(), '/op bea-k ');
    for (const p of [ana, benito, bea]) assert.deepEqual(p.problems, []);
    for (const p of [ana, benito, bea]) await p.context().close();
});

test('a message that mentions me is highlighted, in my page only', async () => {
    const ana = await joinAs(browser, server.url, 'ana-h', 'sala-men');
    const ben = await joinAs(browser, server.url, 'ben-h', 'sala-men');
    await until(async () => (await memberNames(ben)).includes('ana-h'), { what: 'ana in the room' });
    await say(ben, '@ANA-h can you look?');
    await say(ben, 'mail ana-h@example.org, not a mention');
    await waitForMessage(ana, 'not a mention', 'ben-h');
    const flags = await activeLog(ana).locator('li.msg').evaluateAll((lis) => lis.map((li) => li.classList.contains('mention')));
    assert.deepEqual(flags, [true, false]);
    assert.match(await activeLog(ana).locator('li.msg.mention .from').textContent(), /mentions you/);
    assert.equal(await activeLog(ben).locator('li.msg.mention').count(), 0, 'not in the sender’s page');
    await ana.context().close();
    await ben.context().close();
});

test('a room’s owner moderates with commands: each done is said, and the others see the effect', async () => {
    // An account creating a room owns it (docs/protocol.md, "Moderation").
    const ana = await openPage(browser, server.url);
    await ana.getByRole('radio', { name: 'Register' }).check();
    await ana.getByLabel('Nickname', { exact: true }).fill('ana-own');
    await ana.getByLabel('Password', { exact: true }).fill('correct horse battery');
    await ana.getByLabel('Room', { exact: true }).fill('sala-own');
    await ana.getByRole('button', { name: 'Create account' }).click();
    await box(ana).waitFor({ state: 'visible', timeout: 10000 });
    const sam = await wsClient(server.url, { type: 'login', nickname: 'sam-own' }, 'sala-own');
    await until(async () => (await memberNames(ana)).includes('sam-own'), { what: 'sam in the room' });
    const done = async (line) => {
        await say(ana, line);
        const [cmd, nick] = line.split(' ');
        const want = `${cmd === '/topic' ? cmd : `${cmd} ${nick}`}: done.`;
        await until(async () => (await lastNotice(ana)) === want, { what: want });
    };

    await done('/topic Friday *release*');
    await until(() => sam.frames.some((f) => f.type === 'topic' && f.topic === 'Friday *release*' && f.by === 'ana-own'), { what: 'sam told the topic' });
    await done('/kick sam-own too loud');
    await until(() => sam.frames.some((f) => f.type === 'kicked' && f.room === 'sala-own' && f.reason === 'too loud'), { what: 'sam kicked' });
    await until(async () => !(await memberNames(ana)).includes('sam-own'), { what: 'sam out of ana’s list' });
    sam.send(JSON.stringify({ type: 'join', room: 'sala-own', id: 'j1' }));
    await until(() => sam.frames.some((f) => f.type === 'joined' && f.ref === 'j1'), { what: 'sam back (a kick is no ban)' });
    await done('/ban sam-own 2h flooding');
    const kicked = await until(() => sam.frames.find((f) => f.type === 'kicked' && f.ban === true), { what: 'sam banned' });
    assert.ok(kicked.until > Date.now() + 7100e3 && kicked.until < Date.now() + 7300e3, 'for two hours');
    sam.send(JSON.stringify({ type: 'join', room: 'sala-own', id: 'j2' }));
    await until(() => sam.frames.some((f) => f.type === 'error' && f.ref === 'j2' && f.code === 'banned'), { what: 'sam refused' });
    await done('/unban sam-own');
    sam.send(JSON.stringify({ type: 'join', room: 'sala-own', id: 'j3' }));
    await until(() => sam.frames.some((f) => f.type === 'joined' && f.ref === 'j3'), { what: 'sam in again' });
    // A guest cannot be an op: the refusal is shown.
    await say(ana, '/op sam-own');
    await until(async () => /^\/op sam-own: you are not allowed to do that here \(not_permitted\)\.$/.test(await lastNotice(ana)), { what: 'op refused' });
    assert.deepEqual(ana.problems, []);
    sam.terminate();
    await ana.context().close();
});
