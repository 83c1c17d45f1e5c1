/* Fuzzer for the chat protocol (src/chat/): six sessions (four tertulia.v1,
 * two legacy) share one chat_t with a small in-memory store attached. The
 * input is split into chunks at 0x00 bytes; the first byte of a chunk says
 * what to do with the rest:
 *   b % 16 < 6   the rest is a text message from session b % 6
 *   b % 16 == 6  chat_flush
 *   b % 16 == 7  close session (next byte % 6) and open a new one in its slot
 *   b % 16 == 8  make the store fail (toggle)
 *   b % 16 == 9  make history fat (toggle): every history query returns a
 *                full page of TEXT_MAX-byte texts, half of them control
 *                characters (as stored before they were refused), so pages
 *                are cut to the reply budget
 *   b % 16 == 10 make the store asynchronous (toggle): its steps complete
 *                only when told, at most PENDING_MAX at once (more are
 *                refused, as a full queue is), so requests queue behind them
 *   b % 16 == 11 complete the oldest store step that is waiting
 *   b % 16 == 12 end of input on session (next byte % 6): it sends nothing
 *                more (what it sends is ignored) and is asked to close
 *                once its requests have run
 *   b % 16 == 13 answer the oldest account check that is waiting (the fake
 *                auth hook: at most AUTH_MAX wait, more are refused;
 *                nicknames starting "acct" are accounts, the password
 *                "password" and a token "tok-NICK" are right)
 *   otherwise    the whole chunk is a text message from session b % 6
 * An empty chunk flushes. At the end every waiting store step completes,
 * every session is closed and the chat freed: LeakSanitizer checks that
 * nothing is left behind.
 *
 * Invariants (abort on violation): every frame is one unmasked FIN text frame
 * with an exact length holding a JSON object with a string "type", and no
 * larger than the reply budget; nothing is sent to a closed connection;
 * legacy connections only get room/private frames; each connection sees
 * message ids strictly increasing; no delivered text holds a control
 * character (but tab, line feed, carriage return) or is blank; `rooms` and
 * `members` pages are in folded name order, within their caps, with a
 * count at least their length. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>

#include "chat/chat.h"
#include "core/log.h"
#include "ws/ws_msg.h"

#include "fuzz_check.h"

#define SLOTS 6
#define RING 32
#define TEXT_MAX 64

typedef struct {
    uint64_t id;
    int64_t ts;
    char from[CHAT_NICK_MAX], to[CHAT_ROOM_MAX], text[TEXT_MAX];
    size_t from_len, to_len, text_len;
    int64_t edited_ts;
    bool deleted;
} stored_t;

#define PENDING_MAX 8
#define AUTH_MAX 4

/* A store step that completes when the input says so. */
typedef struct {
    bool history;
    int rc;
    chat_store_done_cb append_done;
    chat_history_done_cb history_done;
    void *arg;
    chat_message_t *msgs; /* history: the page (texts in texts) */
    stored_t *texts;
    size_t n;
    bool more;
} step_t;

typedef struct {
    chat_t *chat;
    bool async;
    step_t steps[PENDING_MAX];
    size_t nsteps;
    chat_session_t *s[SLOTS];
    uintptr_t conn[SLOTS]; /* the live handle of each slot; handles are never reused */
    bool v1[SLOTS];
    uint64_t last_id[SLOTS];
    uintptr_t next_conn;
    bool store_fails;
    bool fat_history;
    stored_t ring[RING];
    size_t nring; /* total ever stored; the ring keeps the last RING */
    uint64_t clock_ms;
    /* Account checks waiting for their answer (the fake auth hook). */
    struct {
        chat_auth_done_cb done;
        void *arg;
        chat_auth_result_t r;
    } auths[AUTH_MAX];
    size_t nauths;
} fz_t;

static int slot_of(const fz_t *fz, uintptr_t conn) {
    for (int i = 0; i < SLOTS; i++)
        if (fz->conn[i] == conn)
            return i;
    return -1;
}

/* No control character but \t \n \r (C0, DEL, C1), and something visible
 * (a simplified check: ASCII space and the two-byte U+00A0 are the blanks
 * seen here; any other character counts as visible). */
static void check_text(const char *t, size_t len) {
    CHECK(len > 0);
    bool visible = false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)t[i];
        CHECK(c >= 0x20 || c == '\t' || c == '\n' || c == '\r');
        CHECK(c != 0x7F);
        if (c == 0xC2 && i + 1 < len)
            CHECK((unsigned char)t[i + 1] >= 0xA0);
        if (c == 0xC2 && i + 1 < len && (unsigned char)t[i + 1] == 0xA0)
            i++;
        else if (c != ' ' && c != '\t' && c != '\n' && c != '\r')
            visible = true;
    }
    CHECK(visible);
}

static int fold_cmp(const char *a, const char *b) {
    for (size_t i = 0;; i++) {
        unsigned char x = (unsigned char)a[i], y = (unsigned char)b[i];
        unsigned char fx = x >= 'A' && x <= 'Z' ? (unsigned char)(x + 32) : x;
        unsigned char fy = y >= 'A' && y <= 'Z' ? (unsigned char)(y + 32) : y;
        if (fx != fy)
            return fx < fy ? -1 : 1;
        if (x == 0)
            return strcmp(a, b);
    }
}

/* A page of names (strings, or objects with "name") in strictly increasing
 * folded order, within max, its count at least its length. */
static void check_page(const json_t *j, const char *key, size_t max) {
    const json_t *list = json_object_get(j, key);
    CHECK(json_is_array(list) && json_array_size(list) <= max);
    CHECK(json_is_boolean(json_object_get(j, "more")));
    const json_t *count = json_object_get(j, "count");
    CHECK(json_is_integer(count) && (size_t)json_integer_value(count) >= json_array_size(list));
    const char *prev = NULL;
    for (size_t i = 0; i < json_array_size(list); i++) {
        const json_t *e = json_array_get(list, i);
        const char *name = json_string_value(json_is_object(e) ? json_object_get(e, "name") : e);
        CHECK(name != NULL);
        CHECK(prev == NULL || fold_cmp(prev, name) < 0);
        prev = name;
    }
}

static void on_send(void *ctx, void *conn, tt_msg_t *msg) {
    tt_buf_t *frame = ws_msg_frame(msg);
    fz_t *fz = ctx;
    int slot = slot_of(fz, (uintptr_t)conn);
    CHECK(slot >= 0);
    const uint8_t *p = tt_buf_ptr(frame);
    CHECK(frame->len >= 2 && p[0] == 0x81 && (p[1] & 0x80) == 0);
    uint64_t len = p[1] & 0x7F;
    size_t h = 2;
    if (len == 126) {
        len = (uint64_t)p[2] << 8 | p[3];
        h = 4;
        CHECK(len >= 126);
    } else if (len == 127) {
        len = 0;
        for (int i = 0; i < 8; i++)
            len = len << 8 | p[2 + i];
        h = 10;
        CHECK(len > 0xFFFF);
    }
    CHECK(frame->len == h + len);
    CHECK(len <= chat_reply_budget_min(TEXT_MAX)); /* the budget: see LLVMFuzzerTestOneInput */
    json_t *j = json_loadb((const char *)p + h, (size_t)len, 0, NULL);
    CHECK(j != NULL && json_is_object(j));
    const char *type = json_string_value(json_object_get(j, "type"));
    CHECK(type != NULL);
    bool message = strcmp(type, "room") == 0 || strcmp(type, "private") == 0;
    CHECK(fz->v1[slot] || message);
    if (message) {
        json_int_t id = json_integer_value(json_object_get(j, "id"));
        CHECK(id > 0 && (uint64_t)id > fz->last_id[slot]);
        fz->last_id[slot] = (uint64_t)id;
        const json_t *text = json_object_get(json_object_get(j, "message"), "text");
        CHECK(json_is_string(text));
        check_text(json_string_value(text), json_string_length(text));
    } else if (strcmp(type, "rooms") == 0) {
        check_page(j, "rooms", CHAT_ROOMS_MAX);
    } else if (strcmp(type, "members") == 0) {
        check_page(j, "members", CHAT_MEMBERS_MAX);
    } else if (strcmp(type, "joined") == 0) {
        const json_t *n = json_object_get(j, "member_count");
        CHECK(json_is_integer(n) &&
              (size_t)json_integer_value(n) >= json_array_size(json_object_get(j, "members")));
    }
    json_decref(j);
}

static void on_close(void *ctx, void *conn, uint16_t code, const char *reason) {
    fz_t *fz = ctx;
    CHECK(slot_of(fz, (uintptr_t)conn) >= 0);
}

static int store_append_now(fz_t *fz, const chat_message_t *msgs, size_t n) {
    if (fz->store_fails)
        return -5;
    for (size_t i = 0; i < n; i++) {
        const chat_message_t *m = &msgs[i];
        CHECK(m->kind == CHAT_MSG_ROOM && m->text_len <= TEXT_MAX);
        CHECK(m->from_len <= CHAT_NICK_MAX && m->to_len <= CHAT_ROOM_MAX);
        CHECK(fz->nring == 0 || m->id > fz->ring[(fz->nring - 1) % RING].id);
        stored_t *st = &fz->ring[fz->nring++ % RING];
        st->id = m->id;
        st->ts = m->ts;
        memcpy(st->from, m->from, st->from_len = m->from_len);
        memcpy(st->to, m->to, st->to_len = m->to_len);
        memcpy(st->text, m->text, st->text_len = m->text_len);
        st->edited_ts = 0;
        st->deleted = false;
    }
    return 0;
}

/* Collects a page: emit appends to the step's arrays. */
static void emit_to(step_t *st, const chat_message_t *m) {
    st->msgs = realloc(st->msgs, (st->n + 1) * sizeof(*st->msgs));
    st->texts = realloc(st->texts, (st->n + 1) * sizeof(*st->texts));
    CHECK(st->msgs != NULL && st->texts != NULL);
    st->msgs[st->n] = *m;
    stored_t *t = &st->texts[st->n];
    CHECK(m->text_len <= TEXT_MAX && m->to_len <= CHAT_ROOM_MAX && m->from_len <= CHAT_NICK_MAX);
    memcpy(t->text, m->text, m->text_len);
    memcpy(t->to, m->to, m->to_len);
    memcpy(t->from, m->from, m->from_len);
    st->n++;
}

/* The page's strings are the step's own copies (the arrays have stopped
 * moving once the page is complete). */
static void point_at_copies(step_t *st) {
    for (size_t i = 0; i < st->n; i++) {
        st->msgs[i].text = st->texts[i].text;
        st->msgs[i].to = st->texts[i].to;
        st->msgs[i].from = st->texts[i].from;
    }
}

static int store_history_now(fz_t *fz, const char *room, size_t room_len, uint64_t after,
                             uint64_t before, unsigned limit, step_t *out) {
    if (fz->store_fails)
        return -5;
    CHECK(limit >= 1 && limit <= CHAT_HISTORY_MAX && (before == 0 || after < before));
    if (fz->fat_history) {
        static char quotes[TEXT_MAX], controls[TEXT_MAX];
        memset(quotes, '"', sizeof(quotes));
        memset(controls, '\x01', sizeof(controls));
        uint64_t last = before ? before - 1 : 1000000, n = limit < last ? limit : last;
        for (uint64_t id = last - n + 1; id <= last; id++) {
            chat_message_t m = {.id = id,
                                .ts = 1,
                                .kind = CHAT_MSG_ROOM,
                                .from = "fat",
                                .from_len = 3,
                                .to = room,
                                .to_len = room_len,
                                .text = id % 2 ? quotes : controls,
                                .text_len = TEXT_MAX};
            emit_to(out, &m);
        }
        out->more = true;
        return 0;
    }
    size_t first = fz->nring > RING ? fz->nring - RING : 0;
    size_t match[RING], k = 0;
    for (size_t i = first; i < fz->nring; i++) {
        const stored_t *st = &fz->ring[i % RING];
        if (st->id > after && (before == 0 || st->id < before) && st->to_len == room_len &&
            memcmp(st->to, room, room_len) == 0)
            match[k++] = i % RING;
    }
    size_t start = k > limit ? k - limit : 0;
    for (size_t i = start; i < k; i++) {
        const stored_t *st = &fz->ring[match[i]];
        chat_message_t m = {st->id, st->ts,     CHAT_MSG_ROOM, st->from,    st->from_len,
                            st->to, st->to_len, st->text,      st->text_len};
        m.edited_ts = st->edited_ts;
        m.deleted = st->deleted;
        emit_to(out, &m);
    }
    out->more = start > 0;
    return 0;
}

static void step_free(step_t *st) {
    free(st->msgs);
    free(st->texts);
    memset(st, 0, sizeof(*st));
}

/* Runs the oldest waiting step's completion. */
static bool complete_one(fz_t *fz) {
    if (fz->nsteps == 0)
        return false;
    step_t st = fz->steps[0];
    memmove(&fz->steps[0], &fz->steps[1], (fz->nsteps - 1) * sizeof(st));
    fz->nsteps--;
    if (st.history) {
        point_at_copies(&st);
        st.history_done(st.arg, st.rc, st.rc < 0 ? NULL : st.msgs, st.rc < 0 ? 0 : st.n,
                        st.rc < 0 ? false : st.more);
    } else {
        st.append_done(st.arg, st.rc, 0);
    }
    step_free(&st);
    return true;
}

static int store_append(void *ctx, const chat_message_t *msgs, size_t n, chat_store_done_cb done,
                        void *arg) {
    fz_t *fz = ctx;
    if (fz->async && fz->nsteps == PENDING_MAX)
        return -9; /* a full queue: refused, done never called */
    int rc = store_append_now(fz, msgs, n);
    if (!fz->async) {
        done(arg, rc, 0);
        return 0;
    }
    step_t *st = &fz->steps[fz->nsteps++];
    memset(st, 0, sizeof(*st));
    st->rc = rc;
    st->append_done = done;
    st->arg = arg;
    return 0;
}

static int store_history(void *ctx, const char *room, size_t room_len, uint64_t after,
                         uint64_t before, unsigned limit, chat_history_done_cb done, void *arg) {
    fz_t *fz = ctx;
    if (fz->async && fz->nsteps == PENDING_MAX)
        return -9;
    step_t st = {.history = true, .history_done = done, .arg = arg};
    st.rc = store_history_now(fz, room, room_len, after, before, limit, &st);
    if (!fz->async) {
        point_at_copies(&st);
        done(arg, st.rc, st.rc < 0 ? NULL : st.msgs, st.rc < 0 ? 0 : st.n,
             st.rc < 0 ? false : st.more);
        step_free(&st);
        return 0;
    }
    fz->steps[fz->nsteps++] = st;
    return 0;
}

/* Edit, delete and search on the ring, completed at once. */
static stored_t *ring_find(fz_t *fz, uint64_t id) {
    size_t first = fz->nring > RING ? fz->nring - RING : 0;
    for (size_t i = first; i < fz->nring; i++)
        if (fz->ring[i % RING].id == id)
            return &fz->ring[i % RING];
    return NULL;
}

static int store_message_get(void *ctx, uint64_t id, int64_t account, chat_msg_info_done_cb done,
                             void *arg) {
    fz_t *fz = ctx;
    (void)account;
    if (fz->store_fails)
        return -5;
    const stored_t *st = ring_find(fz, id);
    if (st == NULL) {
        done(arg, 1, NULL);
        return 0;
    }
    chat_msg_info_t info = {.msg = {.id = st->id,
                                    .ts = st->ts,
                                    .kind = CHAT_MSG_ROOM,
                                    .from = st->from,
                                    .from_len = st->from_len,
                                    .to = st->to,
                                    .to_len = st->to_len,
                                    .text = "",
                                    .deleted = st->deleted},
                            .joined = id % 2 == 0};
    done(arg, 0, &info);
    return 0;
}

static int store_message_change(void *ctx, uint64_t id, const char *text, size_t len,
                                int64_t edited_ts, chat_store_done_cb done, void *arg) {
    fz_t *fz = ctx;
    if (fz->store_fails)
        return -5;
    stored_t *st = ring_find(fz, id);
    if (st == NULL || st->deleted) {
        done(arg, 1, 0);
        return 0;
    }
    CHECK(text == NULL || (len > 0 && len <= TEXT_MAX));
    st->deleted = text == NULL;
    st->edited_ts = text != NULL ? edited_ts : 0;
    st->text_len = text != NULL ? len : 0;
    if (text != NULL)
        memcpy(st->text, text, len);
    done(arg, 0, 0);
    return 0;
}

static int store_search(void *ctx, const chat_search_t *q, chat_search_done_cb done, void *arg) {
    fz_t *fz = ctx;
    if (fz->store_fails)
        return -5;
    CHECK(q->nwords >= 1 && q->nwords <= CHAT_SEARCH_WORDS_MAX && q->limit >= 1 && q->limit <= 50);
    static chat_search_hit_t hits[50];
    static char marked[50][TEXT_MAX + 2];
    size_t n = 0, first = fz->nring > RING ? fz->nring - RING : 0;
    bool more = false;
    for (size_t i = fz->nring; i > first; i--) {
        const stored_t *st = &fz->ring[(i - 1) % RING];
        if (st->deleted || (q->before != 0 && st->id >= q->before))
            continue;
        const char *at = memmem(st->text, st->text_len, q->words[0], q->word_lens[0]);
        if (at == NULL)
            continue;
        if (n == q->limit) {
            more = true;
            break;
        }
        /* The match between the markers, as FTS5's highlight() writes it. */
        size_t off = (size_t)(at - st->text), wl = q->word_lens[0];
        char *m = marked[n];
        memcpy(m, st->text, off);
        m[off] = 1;
        memcpy(m + off + 1, at, wl);
        m[off + 1 + wl] = 2;
        memcpy(m + off + 2 + wl, at + wl, st->text_len - off - wl);
        hits[n] = (chat_search_hit_t){.msg = {.id = st->id,
                                              .ts = st->ts,
                                              .kind = CHAT_MSG_ROOM,
                                              .from = st->from,
                                              .from_len = st->from_len,
                                              .to = st->to,
                                              .to_len = st->to_len,
                                              .text = st->text,
                                              .text_len = st->text_len,
                                              .edited_ts = st->edited_ts},
                                      .marked = m,
                                      .marked_len = st->text_len + 2};
        n++;
    }
    done(arg, 0, hits, n, more, more ? hits[n - 1].msg.id : 0);
    return 0;
}

static const chat_store_hooks_t store = {.append_batch = store_append,
                                         .history = store_history,
                                         .message_get = store_message_get,
                                         .message_change = store_message_change,
                                         .search = store_search};

/* The fake accounts: decided at once, answered when the input says. */
static bool is_account(const char *nick, size_t len) {
    return len >= 4 && strncasecmp(nick, "acct", 4) == 0;
}

static int auth_check(void *ctx, const chat_auth_req_t *req, chat_auth_done_cb done, void *arg) {
    fz_t *fz = ctx;
    if (fz->nauths == AUTH_MAX)
        return -1;
    chat_auth_result_t r = {.status = CHAT_AUTH_OK};
    const char *nick = req->nick;
    size_t nick_len = req->nick_len;
    switch (req->op) {
    case CHAT_AUTH_REGISTER:
        r.status = is_account(nick, nick_len) ? CHAT_AUTH_TAKEN : CHAT_AUTH_OK;
        break;
    case CHAT_AUTH_PASSWORD:
        r.status = is_account(nick, nick_len) && req->secret_len == 8 &&
                           memcmp(req->secret, "password", 8) == 0
                       ? CHAT_AUTH_OK
                       : CHAT_AUTH_FAILED;
        break;
    case CHAT_AUTH_TOKEN:
        nick = req->secret + 4;
        nick_len = req->secret_len > 4 ? req->secret_len - 4 : 0;
        r.status = req->secret_len > 4 && memcmp(req->secret, "tok-", 4) == 0 &&
                           chat_nickname_is_valid(nick, nick_len) && is_account(nick, nick_len)
                       ? CHAT_AUTH_OK
                       : CHAT_AUTH_FAILED;
        break;
    case CHAT_AUTH_GUEST:
        r.status = is_account(nick, nick_len) ? CHAT_AUTH_REGISTERED : CHAT_AUTH_OK;
        break;
    case CHAT_AUTH_LOOKUP:
        r.status = is_account(nick, nick_len) ? CHAT_AUTH_OK : CHAT_AUTH_NOTFOUND;
        break;
    case CHAT_AUTH_JWT:
        r.status = CHAT_AUTH_LIMITED;
        r.retry_ms = 1000;
        break;
    case CHAT_AUTH_LOGOUT:
    case CHAT_AUTH_CHANGE:
        break;
    }
    if (r.status == CHAT_AUTH_OK && nick != NULL && nick_len > 0 && nick_len <= CHAT_NICK_MAX) {
        memcpy(r.nick, nick, nick_len);
        r.nick_len = nick_len;
        r.account_id = (int64_t)(unsigned char)nick[nick_len - 1] + 1;
        if (req->op != CHAT_AUTH_TOKEN)
            memcpy(r.token, "tt1.fuzz", 9);
    }
    fz->auths[fz->nauths].done = done;
    fz->auths[fz->nauths].arg = arg;
    fz->auths[fz->nauths].r = r;
    fz->nauths++;
    return 0;
}

static bool auth_answer_one(fz_t *fz) {
    if (fz->nauths == 0)
        return false;
    chat_auth_result_t r = fz->auths[0].r;
    chat_auth_done_cb done = fz->auths[0].done;
    void *arg = fz->auths[0].arg;
    memmove(&fz->auths[0], &fz->auths[1], (fz->nauths - 1) * sizeof(fz->auths[0]));
    fz->nauths--;
    done(arg, &r);
    return true;
}

static const chat_auth_hooks_t auth = {.authenticate = auth_check};

/* A deterministic clock for flood control: each reading is 7 ms later, so
 * runs do not depend on the wall clock and refills happen as calls go by. */
#define GRACE_MS 5000 /* the grace time of the harness's chat */

static uint64_t fz_now(void *ctx) {
    fz_t *fz = ctx;
    return fz->clock_ms += 7;
}

static void open_slot(fz_t *fz, int i) {
    fz->conn[i] = ++fz->next_conn;
    fz->v1[i] = i < 4;
    fz->last_id[i] = 0;
    fz->s[i] = chat_session_open(fz->chat, (void *)fz->conn[i], fz->v1[i], "fuzz");
}

static void close_slot(fz_t *fz, int i, const char *reason) {
    chat_session_close(fz->chat, fz->s[i], reason);
    fz->conn[i] = 0; /* any later send to the old handle fails slot_of */
    fz->s[i] = NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static const char *reasons[] = {"disconnect", "timeout", "leave", NULL, "quit"};
    tt_log_set_level(TT_LOG_OFF);
    fz_t *fz = calloc(1, sizeof(*fz));
    chat_config_t cfg;
    chat_config_defaults(&cfg);
    cfg.max_text = TEXT_MAX;
    cfg.max_rooms = 3;
    cfg.history_on_join = 5;
    cfg.reply_budget = 1;     /* raised to chat_reply_budget_min(TEXT_MAX): pages get cut */
    cfg.resume_ms = GRACE_MS; /* dropped v1 users are parked; op 6 lets time pass */
    snprintf(cfg.admins[0], sizeof(cfg.admins[0]), "acctA"); /* moderation: an admin */
    cfg.nadmins = 1;
    chat_io_t io = {.send = on_send, .close = on_close};
    fz->chat = chat_new(&cfg, &io, fz);
    chat_set_clock(fz->chat, fz_now, fz);
    CHECK(chat_set_store(fz->chat, &store, fz) == 0);
    chat_set_auth(fz->chat, &auth, fz);
    for (int i = 0; i < SLOTS; i++)
        open_slot(fz, i);

    size_t pos = 0;
    while (pos <= size) {
        const uint8_t *end = memchr(data + pos, 0, size - pos);
        size_t len = end ? (size_t)(end - (data + pos)) : size - pos;
        const uint8_t *chunk = data + pos;
        pos += len + 1;
        if (len == 0) {
            chat_flush(fz->chat);
            continue;
        }
        uint8_t b = chunk[0];
        int slot = b % SLOTS;
        switch (b % 16) {
        case 6:
            if (b / 16 % 2) {
                /* Half a grace time passes: parked users and presences
                 * expire (member_left, undelivered) in their turn. */
                fz->clock_ms += GRACE_MS / 2;
                chat_tick(fz->chat);
            } else {
                chat_flush(fz->chat);
            }
            break;
        case 7:
            slot = len > 1 ? chunk[1] % SLOTS : 0;
            close_slot(fz, slot, reasons[b / 16 % 5]);
            open_slot(fz, slot);
            break;
        case 8:
            fz->store_fails = !fz->store_fails;
            break;
        case 9:
            fz->fat_history = !fz->fat_history;
            break;
        case 10:
            fz->async = !fz->async;
            break;
        case 11:
            complete_one(fz);
            break;
        case 12:
            slot = len > 1 ? chunk[1] % SLOTS : 0;
            chat_session_end_of_input(fz->chat, fz->s[slot]);
            break;
        case 13:
            auth_answer_one(fz);
            break;
        default:
            if (b % 16 < SLOTS)
                chat_session_on_text(fz->chat, fz->s[slot], (const char *)chunk + 1, len - 1);
            else
                chat_session_on_text(fz->chat, fz->s[slot], (const char *)chunk, len);
        }
    }
    /* Everything waiting completes (a completion may start more). */
    do {
        while (complete_one(fz) || auth_answer_one(fz))
            ;
        chat_flush(fz->chat);
    } while (fz->nsteps > 0 || fz->nauths > 0);
    chat_stats_t st;
    chat_stats(fz->chat, &st);
    CHECK(st.sessions == SLOTS);
    for (int i = 0; i < SLOTS; i++)
        close_slot(fz, i, NULL);
    do {
        while (complete_one(fz) || auth_answer_one(fz))
            ;
        chat_flush(fz->chat);
    } while (fz->nsteps > 0 || fz->nauths > 0);
    chat_stats(fz->chat, &st);
    CHECK(st.sessions == 0);
    /* Once the grace time has passed nothing is left: no user, no room
     * but those moderation keeps (an owner, ops, a topic, bans). */
    fz->clock_ms += GRACE_MS + 1;
    chat_tick(fz->chat);
    chat_stats(fz->chat, &st);
    CHECK(st.rooms == st.kept && st.users == 0);
    chat_free(fz->chat);
    free(fz);
    return 0;
}
