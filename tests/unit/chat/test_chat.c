/* Tests for src/chat/: the protocol of PROTOCOL.md driven through the public
 * API with a fake transport. The fake chat_io_t records every (conn, frame);
 * each frame is checked to be one unmasked FIN text frame whose length
 * matches, then parsed as JSON and asserted on. A fake store checks the group
 * commit and history hooks. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "chat/chat.h"
#include "core/log.h"
#include "ws/ws_msg.h"

#define CONNS 16
#define MAX_FRAMES 8192

typedef struct rec_s {
    uintptr_t conn;
    tt_buf_t *frame; /* one reference */
    bool taken;
} rec_t;

typedef struct fx_s {
    chat_t *chat;
    chat_config_t cfg;
    chat_session_t *s[CONNS]; /* index = conn handle */
    rec_t rec[MAX_FRAMES];
    size_t nrec;
    size_t cursor[CONNS];
    json_t *keep[MAX_FRAMES]; /* decoded frames, freed at teardown */
    size_t nkeep;
    int closes;
    /* fake store */
    int store_rc;
    uint64_t report_last; /* the last id the fake store reports (0: 1000) */
    size_t batches;
    chat_message_t stored[64];
    char stored_text[64][64];
    size_t nstored;
    uint64_t hist_after, hist_before;
    unsigned hist_limit;
    int hist_calls;
    /* a store of big_n worst-case messages (big_history), ids 1..big_n */
    unsigned big_n;
    char *big_text;
    size_t big_len;
    /* an injected clock (fake_now) when set */
    uint64_t now;
} fx_t;

static void fake_send(void *ctx, void *conn, tt_msg_t *msg) {
    fx_t *fx = ctx;
    assert_true(fx->nrec < MAX_FRAMES);
    fx->rec[fx->nrec].conn = (uintptr_t)conn;
    /* The plain frame, as the WebSocket endpoint sends it. */
    fx->rec[fx->nrec].frame = tt_buf_ref(ws_msg_frame(msg));
    fx->rec[fx->nrec].taken = false;
    fx->nrec++;
}

static void fake_close(void *ctx, void *conn, uint16_t code, const char *reason) {
    fx_t *fx = ctx;
    fx->closes++;
}

static const chat_io_t fake_io = {.send = fake_send, .close = fake_close};

static fx_t *fx_new(const chat_config_t *cfg) {
    fx_t *fx = calloc(1, sizeof(*fx));
    if (cfg)
        fx->cfg = *cfg;
    else
        chat_config_defaults(&fx->cfg);
    fx->chat = chat_new(&fx->cfg, &fake_io, fx);
    return fx;
}

static int setup(void **state) {
    tt_log_set_level(TT_LOG_OFF); /* refusals and the failing store log; keep output clean */
    /* No grace time: a session that closes is gone at once, which most
     * tests check; the grace tests (fx_grace) set one. */
    chat_config_t cfg;
    chat_config_defaults(&cfg);
    cfg.resume_ms = 0;
    *state = fx_new(&cfg);
    return 0;
}

static void fx_free(fx_t *fx) {
    chat_free(fx->chat);
    free(fx->big_text);
    for (size_t i = 0; i < fx->nrec; i++)
        tt_buf_unref(fx->rec[i].frame);
    for (size_t i = 0; i < fx->nkeep; i++)
        json_decref(fx->keep[i]);
    free(fx);
}

static int teardown(void **state) {
    fx_free(*state);
    tt_buf_pool_drain();
    return 0;
}

/* Checks the WebSocket framing of b and returns its JSON object. */
static json_t *decode(fx_t *fx, const tt_buf_t *b) {
    const uint8_t *p = tt_buf_ptr(b);
    assert_true(b->len >= 2);
    assert_int_equal(p[0], 0x81);     /* FIN + text */
    assert_int_equal(p[1] & 0x80, 0); /* server frames are not masked */
    uint64_t len = p[1] & 0x7F;
    size_t h = 2;
    if (len == 126) {
        len = (uint64_t)p[2] << 8 | p[3];
        h = 4;
        assert_true(len >= 126);
    } else if (len == 127) {
        len = 0;
        for (int i = 0; i < 8; i++)
            len = len << 8 | p[2 + i];
        h = 10;
        assert_true(len > 0xFFFF);
    }
    assert_int_equal(b->len, h + len);
    json_error_t err;
    json_t *j = json_loadb((const char *)p + h, (size_t)len, 0, &err);
    assert_non_null(j);
    assert_true(json_is_object(j));
    assert_true(fx->nkeep < MAX_FRAMES);
    fx->keep[fx->nkeep++] = j;
    return j;
}

/* The next frame sent to conn c that the test has not looked at, or NULL. */
static json_t *next_frame(fx_t *fx, int c, tt_buf_t **buf) {
    for (size_t i = fx->cursor[c]; i < fx->nrec; i++) {
        if (fx->rec[i].conn != (uintptr_t)c || fx->rec[i].taken)
            continue;
        fx->rec[i].taken = true;
        fx->cursor[c] = i + 1;
        if (buf)
            *buf = fx->rec[i].frame;
        return decode(fx, fx->rec[i].frame);
    }
    return NULL;
}

static const char *jstr(const json_t *o, const char *key) {
    return json_string_value(json_object_get(o, key));
}

static long long jint(const json_t *o, const char *key) {
    json_t *v = json_object_get(o, key);
    assert_true(json_is_integer(v));
    return json_integer_value(v);
}

/* The next frame for c, which must have the given type. */
static json_t *take(fx_t *fx, int c, const char *type) {
    json_t *j = next_frame(fx, c, NULL);
    if (j == NULL)
        fail_msg("conn %d: expected a '%s' frame, got none", c, type);
    if (jstr(j, "type") == NULL || strcmp(jstr(j, "type"), type) != 0) {
        char *dump = json_dumps(j, JSON_COMPACT);
        fail_msg("conn %d: expected a '%s' frame, got %s", c, type, dump);
    }
    return j;
}

/* The next frame for c, an error with this code. */
static json_t *take_error(fx_t *fx, int c, const char *code) {
    json_t *j = take(fx, c, "error");
    assert_string_equal(jstr(j, "code"), code);
    assert_non_null(jstr(j, "message"));
    assert_true(strlen(jstr(j, "message")) > 5);
    return j;
}

static void none(fx_t *fx, int c) {
    json_t *j = next_frame(fx, c, NULL);
    if (j != NULL) {
        char *dump = json_dumps(j, JSON_COMPACT);
        fail_msg("conn %d: expected no more frames, got %s", c, dump);
    }
}

static void open_conn(fx_t *fx, int c, bool v1) {
    char peer[32];
    snprintf(peer, sizeof(peer), "127.0.0.1:%d", 40000 + c);
    fx->s[c] = chat_session_open(fx->chat, (void *)(uintptr_t)c, v1, peer);
}

static void say_len(fx_t *fx, int c, const char *text, size_t len) {
    chat_session_on_text(fx->chat, fx->s[c], text, len);
}

static void say(fx_t *fx, int c, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void say(fx_t *fx, int c, const char *fmt, ...) {
    char buf[8192];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    assert_true(n >= 0 && (size_t)n < sizeof(buf));
    say_len(fx, c, buf, (size_t)n);
}

static void close_conn(fx_t *fx, int c, const char *reason) {
    chat_session_close(fx->chat, fx->s[c], reason);
    fx->s[c] = NULL;
}

/* Opens a v1 session and logs it in (into room if not NULL), consuming its
 * welcome and joined. */
static void login_v1(fx_t *fx, int c, const char *nick, const char *room) {
    open_conn(fx, c, true);
    if (room)
        say(fx, c, "{\"type\":\"login\",\"nickname\":\"%s\",\"room\":\"%s\"}", nick, room);
    else
        say(fx, c, "{\"type\":\"login\",\"nickname\":\"%s\"}", nick);
    take(fx, c, "welcome");
    if (room)
        take(fx, c, "joined");
}

/* The original client's login, with its extra fields. */
static void login_legacy(fx_t *fx, int c, const char *nick, const char *room) {
    open_conn(fx, c, false);
    say(fx, c,
        "{\"type\":\"login\",\"nickname\":\"%s\",\"room\":\"%s\","
        "\"connectedAt\":\"2017-10-01T10:00:00Z\"}",
        nick, room);
}

static void join(fx_t *fx, int c, const char *room) {
    say(fx, c, "{\"type\":\"join\",\"room\":\"%s\"}", room);
    take(fx, c, "joined");
}

static void send_room(fx_t *fx, int c, const char *room, const char *text) {
    say(fx, c, "{\"type\":\"room\",\"to\":\"%s\",\"message\":{\"text\":\"%s\"}}", room, text);
}

static void assert_message(const json_t *j, const char *type, const char *from, const char *to,
                           const char *text) {
    assert_string_equal(jstr(j, "type"), type);
    assert_string_equal(jstr(j, "from"), from);
    assert_string_equal(jstr(j, "to"), to);
    assert_string_equal(jstr(json_object_get(j, "message"), "text"), text);
    assert_true(jint(j, "id") >= 1);
    assert_true(jint(j, "ts") > 1500000000000LL);
}

static bool has_member(const json_t *j, const char *nick) {
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(j, "members"), i, v) {
        if (strcmp(json_string_value(v), nick) == 0)
            return true;
    }
    return false;
}

/* ---- login ---- */

static void test_chat_login_welcome(void **state) {
    fx_t *fx = *state;
    open_conn(fx, 1, true);
    say(fx, 1, "{\"type\":\"login\",\"nickname\":\"Alice\",\"id\":\"L1\"}");
    json_t *w = take(fx, 1, "welcome");
    assert_string_equal(jstr(w, "nickname"), "Alice");
    assert_string_equal(jstr(w, "ref"), "L1");
    json_t *server = json_object_get(w, "server");
    assert_string_equal(jstr(server, "name"), "tertulia");
    assert_non_null(jstr(server, "version"));
    json_t *limits = json_object_get(w, "limits");
    assert_int_equal(jint(limits, "max_text"), 4096);
    assert_int_equal(jint(limits, "max_message"), 65536);
    assert_int_equal(jint(limits, "max_rooms"), 100);
    assert_int_equal(jint(limits, "max_nickname"), 32);
    assert_int_equal(jint(limits, "max_room_name"), 64);
    assert_int_equal(jint(limits, "reply_budget"), 256 * 1024);
    assert_int_equal(jint(limits, "rooms_max"), 500);
    assert_int_equal(jint(limits, "members_max"), 1000);
    assert_string_equal(chat_session_nickname(fx->s[1]), "Alice");
    none(fx, 1);
}

static void test_chat_login_with_room_joins(void **state) {
    fx_t *fx = *state;
    open_conn(fx, 1, true);
    say(fx, 1, "{\"type\":\"login\",\"nickname\":\"alice\",\"room\":\"#swift-dev\",\"id\":\"x\"}");
    take(fx, 1, "welcome");
    json_t *j = take(fx, 1, "joined");
    assert_string_equal(jstr(j, "room"), "#swift-dev");
    assert_string_equal(jstr(j, "ref"), "x");
    assert_int_equal(json_array_size(json_object_get(j, "members")), 1);
    assert_true(has_member(j, "alice"));
    assert_true(json_is_array(json_object_get(j, "history")));
    assert_int_equal(json_array_size(json_object_get(j, "history")), 0);
    none(fx, 1);
}

static void test_chat_nickname_validity(void **state) {
    static const struct {
        const char *nick;
        bool valid;
    } cases[] = {
        {"a", true},
        {"A-b_c.9", true},
        {"abcdefghijklmnopqrstuvwxyz012345", true},   /* 32 */
        {"abcdefghijklmnopqrstuvwxyz0123456", false}, /* 33 */
        {"", false},
        {"a b", false},
        {"a#", false},
        {"#a", false},
        {"<script>", false},
        {"\xC3\xA9", false},
        {"a/b", false},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        assert_int_equal(chat_nickname_is_valid(cases[i].nick, strlen(cases[i].nick)),
                         cases[i].valid);
    assert_false(chat_nickname_is_valid("a\0b", 3));

    fx_t *fx = *state;
    open_conn(fx, 1, true);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        if (cases[i].valid)
            continue;
        say(fx, 1, "{\"type\":\"login\",\"nickname\":\"%s\"}", cases[i].nick);
        take_error(fx, 1, "nickname_invalid");
    }
    say(fx, 1, "{\"type\":\"login\",\"nickname\":\"a\\u0000b\"}");
    take_error(fx, 1, "nickname_invalid");
    say(fx, 1, "{\"type\":\"login\",\"nickname\":42}");
    take_error(fx, 1, "bad_request");
    say(fx, 1, "{\"type\":\"login\"}");
    take_error(fx, 1, "bad_request");
    say(fx, 1, "{\"type\":\"login\",\"nickname\":\"ok\",\"room\":7}");
    take_error(fx, 1, "bad_request");
    say(fx, 1, "{\"type\":\"login\",\"nickname\":\"ok\",\"room\":\"#\"}");
    take_error(fx, 1, "room_invalid");
    /* A refused login claims nothing. */
    assert_null(chat_session_nickname(fx->s[1]));
    say(fx, 1, "{\"type\":\"login\",\"nickname\":\"ok\",\"room\":null}");
    take(fx, 1, "welcome");
    none(fx, 1);
}

static void test_chat_room_name_validity(void **state) {
    static const struct {
        const char *name;
        bool valid;
    } cases[] = {
        {"a", true},
        {"#a", true},
        {"swift-dev", true},
        {"#python.dev_2", true},
        {"#abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz0", true},   /* 64 */
        {"abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz01", true},   /* 64 */
        {"#abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz01", false}, /* 65 */
        {"abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz012", false}, /* 65 */
        {"#", false},
        {"", false},
        {"##a", false},
        {"a#", false},
        {"a b", false},
        {"\xC3\xA9t\xC3\xA9", false},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        assert_int_equal(chat_room_name_is_valid(cases[i].name, strlen(cases[i].name)),
                         cases[i].valid);
    fx_t *fx = *state;
    login_v1(fx, 1, "alice", NULL);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        say(fx, 1, "{\"type\":\"join\",\"room\":\"%s\"}", cases[i].name);
        if (cases[i].valid) {
            json_t *j = take(fx, 1, "joined");
            assert_string_equal(jstr(j, "room"), cases[i].name);
            /* "a" and "#a" are one room: leave it before the next. */
            say(fx, 1, "{\"type\":\"leave\",\"room\":\"%s\"}", cases[i].name);
            take(fx, 1, "left");
        } else {
            take_error(fx, 1, "room_invalid");
        }
    }
    none(fx, 1);
}

static void test_chat_nickname_taken_case_insensitive(void **state) {
    fx_t *fx = *state;
    login_v1(fx, 1, "Alice", NULL);
    open_conn(fx, 2, true);
    say(fx, 2, "{\"type\":\"login\",\"nickname\":\"alice\",\"id\":\"a\"}");
    json_t *e = take_error(fx, 2, "nickname_taken");
    assert_string_equal(jstr(e, "ref"), "a");
    say(fx, 2, "{\"type\":\"login\",\"nickname\":\"ALICE\"}");
    take_error(fx, 2, "nickname_taken");
    say(fx, 2, "{\"type\":\"login\",\"nickname\":\"Alice\"}");
    take_error(fx, 2, "nickname_taken");
    /* A legacy client cannot take it either. */
    login_legacy(fx, 3, "aLiCe", "r");
    assert_null(chat_session_nickname(fx->s[3]));
    none(fx, 3);
    /* Once the holder is gone the nickname is free again. */
    close_conn(fx, 1, NULL);
    say(fx, 2, "{\"type\":\"login\",\"nickname\":\"alice\"}");
    take(fx, 2, "welcome");
    none(fx, 2);
}

static void test_chat_already_logged_in(void **state) {
    fx_t *fx = *state;
    login_v1(fx, 1, "alice", NULL);
    say(fx, 1, "{\"type\":\"login\",\"nickname\":\"bob\",\"id\":\"2\"}");
    json_t *e = take_error(fx, 1, "already_logged_in");
    assert_string_equal(jstr(e, "ref"), "2");
    assert_string_equal(chat_session_nickname(fx->s[1]), "alice");
    /* bob was not claimed. */
    login_v1(fx, 2, "bob", NULL);
    none(fx, 1);
}

static void test_chat_not_logged_in(void **state) {
    fx_t *fx = *state;
    static const char *reqs[] = {
        "{\"type\":\"join\",\"room\":\"a\"}",
        "{\"type\":\"leave\",\"room\":\"a\"}",
        "{\"type\":\"room\",\"to\":\"a\",\"message\":{\"text\":\"hi\"}}",
        "{\"type\":\"private\",\"to\":\"bob\",\"message\":{\"text\":\"hi\"}}",
        "{\"type\":\"history\",\"room\":\"a\"}",
        "{\"type\":\"who\",\"room\":\"a\"}",
        /* A listing of every room costs in proportion to the server: only
         * for those logged in (PROTOCOL.md: every request but ping). */
        "{\"type\":\"rooms\"}",
        "{\"type\":\"rooms\",\"limit\":0}",
    };
    open_conn(fx, 1, true);
    for (size_t i = 0; i < sizeof(reqs) / sizeof(reqs[0]); i++) {
        say(fx, 1, "%s", reqs[i]);
        take_error(fx, 1, "not_logged_in");
    }
    /* ping needs no login. */
    say(fx, 1, "{\"type\":\"ping\",\"id\":\"p\"}");
    assert_string_equal(jstr(take(fx, 1, "pong"), "ref"), "p");
    say(fx, 1, "{\"type\":\"rooms\",\"id\":\"r\"}");
    assert_string_equal(jstr(take_error(fx, 1, "not_logged_in"), "ref"), "r");
    say(fx, 1, "{\"type\":\"login\",\"nickname\":\"late\"}");
    take(fx, 1, "welcome");
    say(fx, 1, "{\"type\":\"rooms\"}");
    take(fx, 1, "rooms");
    none(fx, 1);
}

/* ---- rooms and presence ---- */

static void test_chat_join_leave_presence(void **state) {
    fx_t *fx = *state;
    login_v1(fx, 1, "alice", "#r");
    login_v1(fx, 2, "Bob", NULL);
    int64_t t0 = (int64_t)time(NULL) * 1000 - 1000;
    say(fx, 2, "{\"type\":\"join\",\"room\":\"#r\",\"id\":\"j\"}");
    json_t *j = take(fx, 2, "joined");
    assert_string_equal(jstr(j, "ref"), "j");
    assert_int_equal(json_array_size(json_object_get(j, "members")), 2);
    assert_true(has_member(j, "alice") && has_member(j, "Bob"));
    json_t *mj = take(fx, 1, "member_joined");
    assert_string_equal(jstr(mj, "room"), "#r");
    assert_string_equal(jstr(mj, "nickname"), "Bob");
    assert_true(jint(mj, "ts") >= t0);
    assert_null(json_object_get(mj, "ref")); /* the ref is the joiner's */
    none(fx, 1);
    none(fx, 2);

    say(fx, 2, "{\"type\":\"who\",\"room\":\"#r\",\"id\":\"w\"}");
    json_t *w = take(fx, 2, "members");
    assert_string_equal(jstr(w, "room"), "#r");
    assert_string_equal(jstr(w, "ref"), "w");
    assert_true(has_member(w, "alice") && has_member(w, "Bob"));

    say(fx, 2, "{\"type\":\"leave\",\"room\":\"#r\",\"id\":\"l\"}");
    json_t *l = take(fx, 2, "left");
    assert_string_equal(jstr(l, "room"), "#r");
    assert_string_equal(jstr(l, "ref"), "l");
    json_t *ml = take(fx, 1, "member_left");
    assert_string_equal(jstr(ml, "room"), "#r");
    assert_string_equal(jstr(ml, "nickname"), "Bob");
    assert_string_equal(jstr(ml, "reason"), "leave");
    assert_true(jint(ml, "ts") >= t0);
    /* Leaving twice: not in the room any more. */
    say(fx, 2, "{\"type\":\"leave\",\"room\":\"#r\"}");
    take_error(fx, 2, "not_in_room");
    /* The last member leaving ends the room. */
    say(fx, 1, "{\"type\":\"leave\",\"room\":\"#r\"}");
    take(fx, 1, "left");
    chat_stats_t st;
    chat_stats(fx->chat, &st);
    assert_int_equal(st.rooms, 0);
    say(fx, 1, "{\"type\":\"who\",\"room\":\"#r\"}");
    assert_int_equal(json_array_size(json_object_get(take(fx, 1, "members"), "members")), 0);
    none(fx, 1);
    none(fx, 2);
}

static void test_chat_rejoin_is_idempotent(void **state) {
    fx_t *fx = *state;
    login_v1(fx, 1, "alice", "r");
    login_v1(fx, 2, "bob", "r");
    take(fx, 1, "member_joined");
    say(fx, 2, "{\"type\":\"join\",\"room\":\"r\"}");
    json_t *j = take(fx, 2, "joined");
    assert_int_equal(json_array_size(json_object_get(j, "members")), 2);
    none(fx, 1); /* nobody hears of it twice */
    none(fx, 2);
    chat_stats_t st;
    chat_stats(fx->chat, &st);
    assert_int_equal(st.rooms, 1);
}

static void test_chat_rooms_ignore_case_and_the_hash(void **state) {
    fx_t *fx = *state;
    /* Three spellings, one room, named as it was created. */
    login_v1(fx, 1, "alice", "Python-Dev");
    login_v1(fx, 2, "bob", "#python-dev");
    json_t *j = take(fx, 1, "member_joined");
    assert_string_equal(jstr(j, "room"), "Python-Dev");
    login_v1(fx, 3, "carol", "#PYTHON-DEV");
    take(fx, 1, "member_joined");
    take(fx, 2, "member_joined");
    send_room(fx, 3, "python-dev", "one");
    chat_flush(fx->chat);
    for (int c = 1; c <= 3; c++)
        assert_message(take(fx, c, "room"), "room", "carol", "Python-Dev", "one");
    say(fx, 1, "{\"type\":\"rooms\"}");
    json_t *r = json_object_get(take(fx, 1, "rooms"), "rooms");
    assert_int_equal(json_array_size(r), 1);
    assert_string_equal(jstr(json_array_get(r, 0), "name"), "Python-Dev");
    assert_int_equal(jint(json_array_get(r, 0), "members"), 3);
    say(fx, 1, "{\"type\":\"who\",\"room\":\"#python-DEV\"}");
    j = take(fx, 1, "members");
    assert_string_equal(jstr(j, "room"), "Python-Dev");
    assert_int_equal(json_array_size(json_object_get(j, "members")), 3);
    say(fx, 2, "{\"type\":\"history\",\"room\":\"PYTHON-dev\"}");
    assert_string_equal(jstr(take(fx, 2, "history"), "room"), "Python-Dev");
    /* Joining again under another spelling is the same membership. */
    say(fx, 2, "{\"type\":\"join\",\"room\":\"python-dev\"}");
    assert_string_equal(jstr(take(fx, 2, "joined"), "room"), "Python-Dev");
    none(fx, 1);
    say(fx, 2, "{\"type\":\"leave\",\"room\":\"#Python-dev\"}");
    assert_string_equal(jstr(take(fx, 2, "left"), "room"), "Python-Dev");
    assert_string_equal(jstr(take(fx, 1, "member_left"), "room"), "Python-Dev");
    take(fx, 3, "member_left");
    /* Once empty it is gone, and the next creator names it. */
    say(fx, 1, "{\"type\":\"leave\",\"room\":\"python-dev\"}");
    take(fx, 1, "left");
    take(fx, 3, "member_left");
    say(fx, 3, "{\"type\":\"leave\",\"room\":\"python-dev\"}");
    take(fx, 3, "left");
    say(fx, 2, "{\"type\":\"join\",\"room\":\"#python-dev\"}");
    assert_string_equal(jstr(take(fx, 2, "joined"), "room"), "#python-dev");
}

static void test_chat_rooms_lists_counts(void **state) {
    fx_t *fx = *state;
    login_v1(fx, 1, "a", "python-dev");
    login_v1(fx, 2, "b", "python-dev");
    login_v1(fx, 3, "c", "swift-dev");
    say(fx, 3, "{\"type\":\"rooms\",\"id\":\"q\"}");
    json_t *j = take(fx, 3, "rooms");
    assert_string_equal(jstr(j, "ref"), "q");
    json_t *r = json_object_get(j, "rooms");
    assert_int_equal(json_array_size(r), 2);
    assert_string_equal(jstr(json_array_get(r, 0), "name"), "python-dev");
    assert_int_equal(jint(json_array_get(r, 0), "members"), 2);
    assert_string_equal(jstr(json_array_get(r, 1), "name"), "swift-dev");
    assert_int_equal(jint(json_array_get(r, 1), "members"), 1);
}

static void test_chat_who_any_room(void **state) {
    fx_t *fx = *state;
    login_v1(fx, 1, "alice", "secret");
    login_v1(fx, 2, "bob", NULL);
    /* Rooms are public: a non-member may ask. */
    say(fx, 2, "{\"type\":\"who\",\"room\":\"secret\"}");
    json_t *j = take(fx, 2, "members");
    assert_int_equal(json_array_size(json_object_get(j, "members")), 1);
    assert_true(has_member(j, "alice"));
    say(fx, 2, "{\"type\":\"who\",\"room\":\"nobody-here\"}");
    j = take(fx, 2, "members");
    assert_string_equal(jstr(j, "room"), "nobody-here");
    assert_int_equal(json_array_size(json_object_get(j, "members")), 0);
    say(fx, 2, "{\"type\":\"who\",\"room\":\"bad name\"}");
    take_error(fx, 2, "room_invalid");
    say(fx, 2, "{\"type\":\"who\"}");
    take_error(fx, 2, "bad_request");
    none(fx, 2);
}

static void test_chat_max_rooms(void **state) {
    chat_config_t cfg;
    chat_config_defaults(&cfg);
    cfg.max_rooms = 3;
    fx_t *fx = fx_new(&cfg);
    login_v1(fx, 1, "alice", "r0");
    join(fx, 1, "r1");
    join(fx, 1, "r2");
    say(fx, 1, "{\"type\":\"join\",\"room\":\"r3\",\"id\":\"x\"}");
    json_t *e = take_error(fx, 1, "too_many_rooms");
    assert_string_equal(jstr(e, "ref"), "x");
    /* Re-joining a room already held is not a new room. */
    join(fx, 1, "r2");
    say(fx, 1, "{\"type\":\"leave\",\"room\":\"r0\"}");
    take(fx, 1, "left");
    join(fx, 1, "r3");
    chat_stats_t st;
    chat_stats(fx->chat, &st);
    assert_int_equal(st.rooms, 3);
    none(fx, 1);
    fx_free(fx);
}

/* ---- messages ---- */

/* The original's demo: four tabs, two in swift-dev and two in python-dev;
 * every message reaches exactly the two tabs of its room. Run with original
 * (legacy) clients, with v1 clients, and mixed. */
static void four_tabs(fx_t *fx, const bool v1[4]) {
    static const char *nicks[4] = {"ana", "ben", "cai", "dot"};
    static const char *rooms[4] = {"swift-dev", "swift-dev", "python-dev", "python-dev"};
    for (int c = 1; c <= 4; c++) {
        if (v1[c - 1])
            login_v1(fx, c, nicks[c - 1], rooms[c - 1]);
        else
            login_legacy(fx, c, nicks[c - 1], rooms[c - 1]);
    }
    /* Presence only to v1 members: drain it. */
    for (int c = 1; c <= 4; c++) {
        json_t *j;
        while ((j = next_frame(fx, c, NULL)) != NULL)
            assert_string_equal(jstr(j, "type"), "member_joined");
    }
    for (int c = 1; c <= 4; c++) {
        char text[32];
        snprintf(text, sizeof(text), "hola desde %s", nicks[c - 1]);
        send_room(fx, c, rooms[c - 1], text);
    }
    chat_flush(fx->chat);
    for (int c = 1; c <= 4; c++) {
        int first = c <= 2 ? 1 : 3;
        for (int from = first; from < first + 2; from++) {
            char text[32];
            snprintf(text, sizeof(text), "hola desde %s", nicks[from - 1]);
            assert_message(take(fx, c, "room"), "room", nicks[from - 1], rooms[c - 1], text);
        }
        none(fx, c);
    }
}

static void test_chat_four_tabs_legacy(void **state) {
    const bool v1[4] = {false, false, false, false};
    four_tabs(*state, v1);
}

static void test_chat_four_tabs_v1(void **state) {
    const bool v1[4] = {true, true, true, true};
    four_tabs(*state, v1);
}

static void test_chat_four_tabs_mixed(void **state) {
    const bool v1[4] = {true, false, false, true};
    four_tabs(*state, v1);
}

static void test_chat_broadcast_shares_one_buffer(void **state) {
    fx_t *fx = *state;
    enum { N = 12 };
    for (int c = 1; c <= N; c++) {
        char nick[8];
        snprintf(nick, sizeof(nick), "u%d", c);
        if (c % 3 == 0)
            login_legacy(fx, c, nick, "big");
        else
            login_v1(fx, c, nick, "big");
    }
    size_t before = fx->nrec;
    send_room(fx, 1, "big", "to everyone");
    assert_int_equal(fx->nrec, before); /* nothing before the flush */
    chat_flush(fx->chat);
    assert_int_equal(fx->nrec, before + N);
    tt_buf_t *first = fx->rec[before].frame;
    for (size_t i = before; i < fx->nrec; i++)
        assert_ptr_equal(fx->rec[i].frame, first);
    /* The chat dropped its own reference: only the recorder's remain. */
    assert_int_equal(first->refs, N);
    for (int c = 1; c <= N; c++) {
        tt_buf_t *b = NULL;
        json_t *j;
        while ((j = next_frame(fx, c, &b)) != NULL && strcmp(jstr(j, "type"), "room") != 0)
            assert_string_equal(jstr(j, "type"), "member_joined");
        assert_non_null(j);
        assert_ptr_equal(b, first);
        assert_message(j, "room", "u1", "big", "to everyone");
        none(fx, c);
    }
}

static void test_chat_sender_must_be_member(void **state) {
    fx_t *fx = *state;
    login_v1(fx, 1, "alice", "a");
    login_v1(fx, 2, "bob", "b");
    say(fx, 1, "{\"type\":\"room\",\"to\":\"b\",\"id\":\"m\",\"message\":{\"text\":\"hi\"}}");
    json_t *e = take_error(fx, 1, "not_in_room");
    assert_string_equal(jstr(e, "ref"), "m");
    send_room(fx, 1, "nowhere", "hi");
    take_error(fx, 1, "not_in_room");
    send_room(fx, 1, "#", "hi");
    take_error(fx, 1, "room_invalid");
    chat_flush(fx->chat);
    none(fx, 1);
    none(fx, 2);
}

static void test_chat_private(void **state) {
    fx_t *fx = *state;
    login_v1(fx, 1, "alice", "a");
    login_v1(fx, 2, "Bob", "b");
    login_v1(fx, 3, "carol", "a");
    take(fx, 1, "member_joined");
    say(fx, 1,
        "{\"type\":\"private\",\"to\":\"bob\",\"id\":\"p1\",\"message\":{\"text\":\"psst\"}}");
    chat_flush(fx->chat);
    json_t *ack = take(fx, 1, "ack");
    assert_string_equal(jstr(ack, "ref"), "p1");
    json_t *echo = take(fx, 1, "private");
    assert_message(echo, "private", "alice", "Bob", "psst"); /* canonical recipient */
    assert_int_equal(jint(ack, "message_id"), jint(echo, "id"));
    assert_message(take(fx, 2, "private"), "private", "alice", "Bob", "psst");
    none(fx, 1);
    none(fx, 2);
    none(fx, 3);

    /* To oneself: delivered once. */
    say(fx, 1, "{\"type\":\"private\",\"to\":\"ALICE\",\"message\":{\"text\":\"note\"}}");
    chat_flush(fx->chat);
    assert_message(take(fx, 1, "private"), "private", "alice", "alice", "note");
    none(fx, 1);

    say(fx, 1, "{\"type\":\"private\",\"to\":\"dave\",\"id\":\"p2\",\"message\":{\"text\":\"x\"}}");
    json_t *e = take_error(fx, 1, "no_such_user");
    assert_string_equal(jstr(e, "ref"), "p2");
    assert_non_null(strstr(jstr(e, "message"), "dave"));
    say(fx, 1,
        "{\"type\":\"private\",\"to\":\"no such \\\"user\\\"\",\"message\":{\"text\":\"x\"}}");
    take_error(fx, 1, "no_such_user");
    say(fx, 1, "{\"type\":\"private\",\"message\":{\"text\":\"x\"}}");
    take_error(fx, 1, "bad_request");
    chat_flush(fx->chat);
    none(fx, 1);
    none(fx, 2);
}

static void test_chat_private_to_legacy_and_from_legacy(void **state) {
    fx_t *fx = *state;
    login_v1(fx, 1, "alice", "a");
    login_legacy(fx, 2, "bob", "b");
    say(fx, 1, "{\"type\":\"private\",\"to\":\"bob\",\"id\":\"1\",\"message\":{\"text\":\"hey\"}}");
    say(fx, 2,
        "{\"type\":\"private\",\"to\":\"alice\",\"from\":\"bob\",\"id\":\"2\","
        "\"message\":{\"text\":\"hi\"}}");
    chat_flush(fx->chat);
    take(fx, 1, "ack");
    assert_message(take(fx, 1, "private"), "private", "alice", "bob", "hey");
    assert_message(take(fx, 1, "private"), "private", "bob", "alice", "hi");
    assert_message(take(fx, 2, "private"), "private", "alice", "bob", "hey");
    /* A legacy sender gets the echo but no ack. */
    assert_message(take(fx, 2, "private"), "private", "bob", "alice", "hi");
    none(fx, 1);
    none(fx, 2);
}

static void test_chat_from_is_server_assigned(void **state) {
    fx_t *fx = *state;
    login_v1(fx, 1, "alice", "r");
    login_v1(fx, 2, "bob", "r");
    take(fx, 1, "member_joined");
    say(fx, 1,
        "{\"type\":\"room\",\"to\":\"r\",\"from\":\"bob\",\"ts\":1,\"extra\":[1,2],"
        "\"message\":{\"text\":\"it was me\",\"from\":\"bob\",\"html\":\"<b>\"}}");
    chat_flush(fx->chat);
    for (int c = 1; c <= 2; c++) {
        json_t *j = take(fx, c, "room");
        assert_message(j, "room", "alice", "r", "it was me");
        assert_true(jint(j, "ts") > 1);
        /* Only the fields of the contract come out. */
        assert_int_equal(json_object_size(j), 6);
        assert_int_equal(json_object_size(json_object_get(j, "message")), 1);
    }
}

static void test_chat_ids_increase_and_ts_is_now(void **state) {
    fx_t *fx = *state;
    login_v1(fx, 1, "alice", "a");
    join(fx, 1, "b");
    login_v1(fx, 2, "bob", NULL);
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    long long lo = (long long)t.tv_sec * 1000 + t.tv_nsec / 1000000;
    for (int i = 0; i < 10; i++) {
        send_room(fx, 1, i % 2 ? "a" : "b", "m");
        say(fx, 1, "{\"type\":\"private\",\"to\":\"bob\",\"message\":{\"text\":\"p\"}}");
        if (i % 3 == 0)
            chat_flush(fx->chat);
    }
    chat_flush(fx->chat);
    clock_gettime(CLOCK_REALTIME, &t);
    long long hi = (long long)t.tv_sec * 1000 + t.tv_nsec / 1000000;
    long long last = 0;
    json_t *j;
    int n = 0;
    while ((j = next_frame(fx, 1, NULL)) != NULL) {
        assert_true(jint(j, "id") > last);
        last = jint(j, "id");
        assert_true(jint(j, "ts") >= lo && jint(j, "ts") <= hi);
        n++;
    }
    assert_int_equal(n, 20);
    chat_stats_t st;
    chat_stats(fx->chat, &st);
    assert_int_equal(st.messages, 20);
}

static void test_chat_ack_only_with_id(void **state) {
    fx_t *fx = *state;
    login_v1(fx, 1, "alice", "r");
    send_room(fx, 1, "r", "no id");
    say(fx, 1, "{\"type\":\"room\",\"to\":\"r\",\"id\":\"c-7\",\"message\":{\"text\":\"with\"}}");
    chat_flush(fx->chat);
    json_t *m1 = take(fx, 1, "room");
    assert_string_equal(jstr(json_object_get(m1, "message"), "text"), "no id");
    json_t *ack = take(fx, 1, "ack");
    assert_string_equal(jstr(ack, "ref"), "c-7");
    json_t *m2 = take(fx, 1, "room");
    assert_int_equal(jint(ack, "message_id"), jint(m2, "id"));
    assert_null(json_object_get(m2, "ref"));
    none(fx, 1);
}

static void test_chat_text_limits(void **state) {
    chat_config_t cfg;
    chat_config_defaults(&cfg);
    cfg.max_text = 10;
    fx_t *fx = fx_new(&cfg);
    login_v1(fx, 1, "alice", "r");
    send_room(fx, 1, "r", "0123456789");                               /* 10 bytes: ok */
    send_room(fx, 1, "r", "\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9"); /* 5 chars, 10 bytes */
    chat_flush(fx->chat);
    take(fx, 1, "room");
    take(fx, 1, "room");
    say(fx, 1,
        "{\"type\":\"room\",\"to\":\"r\",\"id\":\"t\",\"message\":{\"text\":\"0123456789a\"}}");
    assert_string_equal(jstr(take_error(fx, 1, "message_too_long"), "ref"), "t");
    send_room(fx, 1, "r", "\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9x"); /* 11 bytes */
    take_error(fx, 1, "message_too_long");
    send_room(fx, 1, "r", "");
    take_error(fx, 1, "bad_request");
    send_room(fx, 1, "r", "a\\u0000b");
    take_error(fx, 1, "bad_request");
    static const char *bad_shapes[] = {
        "{\"type\":\"room\",\"to\":\"r\"}",
        "{\"type\":\"room\",\"to\":\"r\",\"message\":\"hi\"}",
        "{\"type\":\"room\",\"to\":\"r\",\"message\":{}}",
        "{\"type\":\"room\",\"to\":\"r\",\"message\":{\"text\":5}}",
        "{\"type\":\"room\",\"message\":{\"text\":\"hi\"}}",
        "{\"type\":\"room\",\"to\":[\"r\"],\"message\":{\"text\":\"hi\"}}",
    };
    for (size_t i = 0; i < sizeof(bad_shapes) / sizeof(bad_shapes[0]); i++) {
        say(fx, 1, "%s", bad_shapes[i]);
        take_error(fx, 1, "bad_request");
    }
    chat_flush(fx->chat);
    none(fx, 1);
    fx_free(fx);
}

/* Several faults in one request: always the same code, in the documented
 * order (shape, then names and limits, then state). */
static void test_chat_error_precedence(void **state) {
    chat_config_t cfg;
    chat_config_defaults(&cfg);
    cfg.max_text = 3;
    fx_t *fx = fx_new(&cfg);
    open_conn(fx, 1, true);
    /* Login state before the fields. */
    say(fx, 1, "{\"type\":\"room\"}");
    take_error(fx, 1, "not_logged_in");
    say(fx, 1, "{\"type\":\"login\",\"nickname\":\"bad nick\",\"room\":5}");
    take_error(fx, 1, "bad_request");
    say(fx, 1, "{\"type\":\"login\",\"nickname\":\"bad nick\",\"room\":\"#\"}");
    take_error(fx, 1, "nickname_invalid");
    say(fx, 1, "{\"type\":\"login\",\"nickname\":\"ana\"}");
    take(fx, 1, "welcome");
    say(fx, 1, "{\"type\":\"login\"}");
    take_error(fx, 1, "already_logged_in");
    /* An invalid room and an empty text: the text's shape first. */
    send_room(fx, 1, "#", "");
    take_error(fx, 1, "bad_request");
    /* An invalid room and a long text: the name first. */
    send_room(fx, 1, "#", "toolong");
    take_error(fx, 1, "room_invalid");
    /* Not a member and a long text: the limit first. */
    send_room(fx, 1, "elsewhere", "toolong");
    take_error(fx, 1, "message_too_long");
    say(fx, 1, "{\"type\":\"private\",\"to\":\"nobody\",\"message\":{\"text\":\"toolong\"}}");
    take_error(fx, 1, "message_too_long");
    say(fx, 1, "{\"type\":\"join\",\"room\":\"#\",\"since\":0}");
    take_error(fx, 1, "bad_request");
    say(fx, 1, "{\"type\":\"history\",\"room\":\"#\",\"limit\":0}");
    take_error(fx, 1, "bad_request");
    say(fx, 1, "{\"type\":\"history\",\"room\":\"#\"}");
    take_error(fx, 1, "room_invalid");
    none(fx, 1);
    fx_free(fx);
}

/* A long text full of characters JSON escapes: the frame needs the 64-bit
 * length form and the serializer must outgrow its first buffer. */
static void test_chat_long_message_frames(void **state) {
    chat_config_t cfg;
    chat_config_defaults(&cfg);
    cfg.max_text = 100000;
    fx_t *fx = fx_new(&cfg);
    login_v1(fx, 1, "alice", "r");
    size_t n = 40000;
    char *req = malloc(n * 2 + 128);
    int h = sprintf(req, "{\"type\":\"room\",\"to\":\"r\",\"message\":{\"text\":\"");
    for (size_t i = 0; i < n; i++) {
        req[h + 2 * i] = '\\';
        req[h + 2 * i + 1] = '"';
    }
    strcpy(req + h + 2 * n, "\"}}");
    say_len(fx, 1, req, strlen(req));
    chat_flush(fx->chat);
    tt_buf_t *b;
    json_t *j = next_frame(fx, 1, &b);
    assert_non_null(j);
    assert_int_equal(tt_buf_ptr(b)[1], 127);
    const char *text = jstr(json_object_get(j, "message"), "text");
    assert_int_equal(strlen(text), n);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(text[i], '"');
    free(req);
    none(fx, 1);
    fx_free(fx);
}

/* ---- errors ---- */

static void test_chat_bad_json_and_bad_request(void **state) {
    fx_t *fx = *state;
    open_conn(fx, 1, true);
    static const char *bad_json[] = {
        "",
        "{",
        "not json",
        "[1,2]",
        "\"login\"",
        "42",
        "null",
        "{\"type\":\"ping\"} x",
        "{\"type\":\"ping\",}",
        "{\"a\\u0000\":1,\"type\":\"ping\"}",
    };
    for (size_t i = 0; i < sizeof(bad_json) / sizeof(bad_json[0]); i++) {
        say(fx, 1, "%s", bad_json[i]);
        json_t *e = take_error(fx, 1, "bad_json");
        assert_null(json_object_get(e, "ref"));
    }
    /* Invalid UTF-8 never reaches us from the transport, but must not hurt. */
    say_len(fx, 1, "{\"type\":\"\xff\"}", 12);
    take_error(fx, 1, "bad_json");
    static const char *bad_request[] = {
        "{}",
        "{\"type\":1}",
        "{\"type\":null}",
        "{\"type\":[\"ping\"]}",
        "{\"type\":\"ping\",\"id\":5}",
        "{\"type\":\"ping\",\"id\":{}}",
        "{\"type\":\"ping\",\"id\":"
        "\"0123456789012345678901234567890123456789012345678901234567890123"
        "4\"}",
        /* Integers beyond 64 bits cannot even be parsed: bad_request, not bad_json. */
        "{\"type\":\"ping\",\"since\":1180591620717411303424}",
        "{\"type\":\"ping\",\"x\":1e999}",
    };
    for (size_t i = 0; i < sizeof(bad_request) / sizeof(bad_request[0]); i++) {
        say(fx, 1, "%s", bad_request[i]);
        json_t *e = take_error(fx, 1, "bad_request");
        assert_null(json_object_get(e, "ref"));
    }
    /* With a valid id, errors after it carry it. */
    say(fx, 1, "{\"id\":\"k\"}");
    assert_string_equal(jstr(take_error(fx, 1, "bad_request"), "ref"), "k");
    say(fx, 1, "{\"type\":\"dance\",\"id\":\"k2\"}");
    assert_string_equal(jstr(take_error(fx, 1, "unknown_type"), "ref"), "k2");
    say(fx, 1, "{\"type\":\"PING\"}");
    take_error(fx, 1, "unknown_type");
    say(fx, 1, "{\"type\":\"ping\\u0000\"}");
    take_error(fx, 1, "unknown_type");
    /* 64 characters of two bytes each is within the limit; null id is no id. */
    char req[512];
    int n = sprintf(req, "{\"type\":\"ping\",\"id\":\"");
    for (int i = 0; i < 64; i++)
        n += sprintf(req + n, "\xC3\xA9");
    sprintf(req + n, "\"}");
    say(fx, 1, "%s", req);
    assert_int_equal(strlen(jstr(take(fx, 1, "pong"), "ref")), 128);
    say(fx, 1, "{\"type\":\"ping\",\"id\":null}");
    assert_null(json_object_get(take(fx, 1, "pong"), "ref"));
    /* Duplicate keys: the last one wins. */
    say(fx, 1, "{\"type\":\"dance\",\"type\":\"ping\"}");
    take(fx, 1, "pong");
    none(fx, 1);
}

static void test_chat_deep_nesting(void **state) {
    fx_t *fx = *state;
    open_conn(fx, 1, true);
    size_t depth = 100000;
    char *deep = malloc(2 * depth + 32);
    size_t n = (size_t)sprintf(deep, "{\"type\":\"ping\",\"x\":");
    memset(deep + n, '[', depth);
    memset(deep + n + depth, ']', depth);
    strcpy(deep + n + 2 * depth, "}");
    say_len(fx, 1, deep, strlen(deep));
    take_error(fx, 1, "bad_json");
    /* Moderate nesting is fine and ignored. */
    n = (size_t)sprintf(deep, "{\"type\":\"ping\",\"x\":");
    memset(deep + n, '[', 100);
    memset(deep + n + 100, ']', 100);
    strcpy(deep + n + 200, "}");
    say_len(fx, 1, deep, strlen(deep));
    take(fx, 1, "pong");
    free(deep);
    none(fx, 1);
}

static void test_chat_since_and_history_validation(void **state) {
    fx_t *fx = *state;
    login_v1(fx, 1, "alice", "r");
    static const char *bad_since[] = {"0", "-1", "1.5", "\"5\"", "true", "9007199254740992", "[1]"};
    for (size_t i = 0; i < sizeof(bad_since) / sizeof(bad_since[0]); i++) {
        say(fx, 1, "{\"type\":\"join\",\"room\":\"s\",\"since\":%s,\"id\":\"s%zu\"}", bad_since[i],
            i);
        take_error(fx, 1, "bad_request");
        say(fx, 1, "{\"type\":\"history\",\"room\":\"r\",\"before\":%s}", bad_since[i]);
        take_error(fx, 1, "bad_request");
    }
    say(fx, 1, "{\"type\":\"join\",\"room\":\"s\",\"since\":9007199254740991}");
    take(fx, 1, "joined");
    say(fx, 1, "{\"type\":\"join\",\"room\":\"s2\",\"since\":null}");
    take(fx, 1, "joined");
    static const char *bad_limit[] = {"0", "-5", "2.0", "\"10\""};
    for (size_t i = 0; i < sizeof(bad_limit) / sizeof(bad_limit[0]); i++) {
        say(fx, 1, "{\"type\":\"history\",\"room\":\"r\",\"limit\":%s}", bad_limit[i]);
        take_error(fx, 1, "bad_request");
    }
    say(fx, 1, "{\"type\":\"history\",\"room\":\"r\",\"limit\":100000,\"id\":\"h\"}");
    json_t *h = take(fx, 1, "history");
    assert_string_equal(jstr(h, "room"), "r");
    assert_string_equal(jstr(h, "ref"), "h");
    assert_int_equal(json_array_size(json_object_get(h, "messages")), 0);
    assert_true(json_is_false(json_object_get(h, "more")));
    say(fx, 1, "{\"type\":\"history\",\"room\":\"elsewhere\"}");
    take_error(fx, 1, "not_in_room");
    say(fx, 1, "{\"type\":\"history\",\"room\":\"##\"}");
    take_error(fx, 1, "room_invalid");
    none(fx, 1);
}

/* ---- legacy ---- */

static void test_chat_legacy_receives_only_messages(void **state) {
    fx_t *fx = *state;
    login_legacy(fx, 1, "old", "swift-dev");
    none(fx, 1); /* no welcome, no joined */
    login_v1(fx, 2, "new", "swift-dev");
    none(fx, 1); /* no member_joined */
    /* Everything a legacy client could get a reply or error for: nothing. */
    static const char *reqs[] = {
        "garbage",
        "{\"type\":\"ping\"}",
        "{\"type\":\"rooms\"}",
        "{\"type\":\"who\",\"room\":\"swift-dev\"}",
        "{\"type\":\"login\",\"nickname\":\"again\",\"room\":\"x\"}",
        "{\"type\":\"room\",\"to\":\"python-dev\",\"message\":{\"text\":\"hi\"}}",
        "{\"type\":\"room\",\"to\":\"swift-dev\",\"message\":{\"text\":\"\"}}",
        "{\"type\":\"private\",\"to\":\"ghost\",\"message\":{\"text\":\"hi\"}}",
        "{\"type\":\"unknown\"}",
        "{\"type\":\"history\",\"room\":\"swift-dev\"}",
        "{\"type\":\"join\",\"room\":\"other\",\"id\":\"x\"}",
    };
    for (size_t i = 0; i < sizeof(reqs) / sizeof(reqs[0]); i++)
        say(fx, 1, "%s", reqs[i]);
    chat_flush(fx->chat);
    none(fx, 1);
    none(fx, 2); /* the refusals were not broadcast either */
    /* The original client's room message, with its own from and extra fields. */
    say(fx, 1,
        "{\"type\":\"room\",\"to\":\"swift-dev\",\"from\":\"someone\",\"id\":\"x\","
        "\"message\":{\"text\":\"hola\",\"sentAt\":\"10:00\"}}");
    chat_flush(fx->chat);
    tt_buf_t *b1, *b2;
    json_t *m1 = next_frame(fx, 1, &b1);
    json_t *m2 = next_frame(fx, 2, &b2);
    assert_non_null(m1);
    assert_non_null(m2);
    assert_ptr_equal(b1, b2); /* one buffer for both kinds */
    assert_message(m1, "room", "old", "swift-dev", "hola");
    none(fx, 1); /* no ack for a legacy sender */
    none(fx, 2);
    /* A v1 message reaches the legacy member in the same shape. */
    send_room(fx, 2, "swift-dev", "hello");
    chat_flush(fx->chat);
    assert_message(take(fx, 1, "room"), "room", "new", "swift-dev", "hello");
    take(fx, 2, "room");
    /* Presence of a legacy member goes to v1 members; nothing back to legacy. */
    close_conn(fx, 2, "timeout");
    none(fx, 1);
    login_v1(fx, 3, "third", "swift-dev");
    none(fx, 1);
    close_conn(fx, 1, NULL);
    json_t *ml = take(fx, 3, "member_left");
    assert_string_equal(jstr(ml, "nickname"), "old");
    assert_string_equal(jstr(ml, "reason"), "disconnect");
}

/* Refused legacy requests are logged with the peer and the reason, but a
 * client sending junk in a loop cannot flood the log. */
static void test_chat_legacy_refusals_logged_with_a_bound(void **state) {
    fx_t *fx = *state;
    login_legacy(fx, 1, "old", "r");
    FILE *log = tmpfile();
    assert_non_null(log);
    fflush(stderr);
    int saved = dup(2);
    dup2(fileno(log), 2);
    tt_log_set_level(TT_LOG_INFO);
    say(fx, 1, "{\"type\":\"room\",\"to\":\"elsewhere\",\"message\":{\"text\":\"hi\"}}");
    for (int i = 0; i < 40; i++)
        say(fx, 1, "junk %d", i);
    tt_log_set_level(TT_LOG_OFF);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    rewind(log);
    char line[1024];
    int lines = 0;
    bool saw_room = false, saw_junk = false, saw_bound = false;
    while (fgets(line, sizeof(line), log) != NULL) {
        lines++;
        assert_non_null(strstr(line, "127.0.0.1:40001"));
        saw_room |= strstr(line, "room dropped") != NULL && strstr(line, "not_in_room") != NULL &&
                    strstr(line, "(old)") != NULL;
        saw_junk |= strstr(line, "bad_json") != NULL;
        saw_bound |= strstr(line, "no longer logged") != NULL;
    }
    fclose(log);
    assert_true(saw_room && saw_junk && saw_bound);
    assert_int_equal(lines, 21);
    none(fx, 1);
}

/* ---- close ---- */

static void test_chat_close_tells_members(void **state) {
    fx_t *fx = *state;
    login_v1(fx, 1, "alice", "a");
    join(fx, 1, "b");
    login_v1(fx, 2, "bob", "a");
    login_v1(fx, 3, "carol", "b");
    take(fx, 1, "member_joined");
    take(fx, 1, "member_joined");
    open_conn(fx, 4, true); /* never logged in */
    close_conn(fx, 4, NULL);
    size_t before = fx->nrec;
    close_conn(fx, 1, NULL);
    json_t *j = take(fx, 2, "member_left");
    assert_string_equal(jstr(j, "room"), "a");
    assert_string_equal(jstr(j, "nickname"), "alice");
    assert_string_equal(jstr(j, "reason"), "disconnect");
    j = take(fx, 3, "member_left");
    assert_string_equal(jstr(j, "room"), "b");
    assert_string_equal(jstr(j, "reason"), "disconnect");
    for (size_t i = before; i < fx->nrec; i++)
        assert_int_not_equal(fx->rec[i].conn, 1);
    close_conn(fx, 2, "timeout");
    chat_stats_t st;
    chat_stats(fx->chat, &st);
    assert_int_equal(st.sessions, 1);
    assert_int_equal(st.rooms, 1);
    say(fx, 3, "{\"type\":\"who\",\"room\":\"a\"}");
    assert_int_equal(json_array_size(json_object_get(take(fx, 3, "members"), "members")), 0);
    none(fx, 3);
    assert_int_equal(fx->closes, 0);
}

/* A message sent just before leaving reaches everyone before the
 * member_left, and the leaver sees its own echo before `left`. */
static void test_chat_pending_delivered_before_membership_changes(void **state) {
    fx_t *fx = *state;
    login_v1(fx, 1, "alice", "r");
    login_v1(fx, 2, "bob", "r");
    login_v1(fx, 3, "carol", "r");
    take(fx, 1, "member_joined");
    take(fx, 1, "member_joined");
    take(fx, 2, "member_joined");
    send_room(fx, 1, "r", "bye");
    close_conn(fx, 1, NULL);
    assert_message(take(fx, 2, "room"), "room", "alice", "r", "bye");
    take(fx, 2, "member_left");
    send_room(fx, 2, "r", "me too");
    say(fx, 2, "{\"type\":\"leave\",\"room\":\"r\"}");
    assert_message(take(fx, 2, "room"), "room", "bob", "r", "me too");
    take(fx, 2, "left");
    assert_message(take(fx, 3, "room"), "room", "alice", "r", "bye");
    take(fx, 3, "member_left");
    assert_message(take(fx, 3, "room"), "room", "bob", "r", "me too");
    take(fx, 3, "member_left");
    /* A pending message to a room does not reach someone who joins after
     * it was sent (without a store it is simply not in their history). */
    login_v1(fx, 4, "dave", NULL);
    send_room(fx, 3, "r", "before dave");
    join(fx, 4, "r");
    chat_flush(fx->chat);
    take(fx, 3, "room");
    take(fx, 3, "member_joined");
    none(fx, 4);
    none(fx, 3);
}

/* ---- the store hooks ---- */

static int store_last_id(void *ctx, uint64_t *out) {
    *out = 1000;
    return 0;
}

static int store_append_sync(fx_t *fx, const chat_message_t *msgs, size_t n);

/* A synchronous store: the write completes before the hook returns. */
static int store_append(void *ctx, const chat_message_t *msgs, size_t n, chat_store_done_cb done,
                        void *arg) {
    fx_t *fx = ctx;
    int rc = store_append_sync(fx, msgs, n);
    done(arg, rc, fx->report_last ? fx->report_last : 1000);
    return 0;
}

static int store_append_sync(fx_t *fx, const chat_message_t *msgs, size_t n) {
    fx->batches++;
    if (fx->store_rc < 0)
        return fx->store_rc;
    /* Durability first: nothing of this batch was delivered yet. */
    for (size_t i = 0; i < fx->nrec; i++) {
        json_t *j = decode(fx, fx->rec[i].frame);
        if (strcmp(jstr(j, "type"), "room") == 0)
            assert_true((uint64_t)jint(j, "id") < msgs[0].id);
    }
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(msgs[i].kind, CHAT_MSG_ROOM);
        assert_true(fx->nstored < 64 && msgs[i].text_len < 64);
        fx->stored[fx->nstored] = msgs[i];
        memcpy(fx->stored_text[fx->nstored], msgs[i].text, msgs[i].text_len);
        fx->stored_text[fx->nstored][msgs[i].text_len] = '\0';
        fx->stored[fx->nstored].text = fx->stored_text[fx->nstored];
        fx->stored[fx->nstored].from = NULL; /* borrowed: not kept */
        fx->stored[fx->nstored].to = NULL;
        fx->nstored++;
    }
    return 0;
}

static int store_history(void *ctx, const char *room, size_t room_len, uint64_t after,
                         uint64_t before, unsigned limit, chat_history_done_cb done, void *arg) {
    fx_t *fx = ctx;
    fx->hist_calls++;
    fx->hist_after = after;
    fx->hist_before = before;
    fx->hist_limit = limit;
    if (fx->store_rc < 0) {
        done(arg, fx->store_rc, NULL, 0, false);
        return 0;
    }
    chat_message_t out[64];
    size_t nout = 0;
    /* Everything stored is in this room (the tests use one room): the
     * newest `limit` in range, oldest first. */
    size_t in_range[64], k = 0;
    for (size_t i = 0; i < fx->nstored; i++)
        if (fx->stored[i].id > after && (before == 0 || fx->stored[i].id < before))
            in_range[k++] = i;
    size_t start = k > limit ? k - limit : 0;
    for (size_t i = start; i < k; i++) {
        chat_message_t m = fx->stored[in_range[i]];
        m.from = "someone";
        m.from_len = 7;
        m.to = room;
        m.to_len = room_len;
        out[nout++] = m;
    }
    done(arg, 0, out, nout, start > 0);
    return 0;
}

static const chat_store_hooks_t fake_store = {
    .last_id = store_last_id, .append_batch = store_append, .history = store_history};

static void test_chat_store_group_commit(void **state) {
    fx_t *fx = *state;
    assert_int_equal(chat_set_store(fx->chat, &fake_store, fx), 0);
    login_v1(fx, 1, "alice", "r");
    assert_int_equal(fx->hist_calls, 1);
    assert_int_equal(fx->hist_after, 0);
    assert_int_equal(fx->hist_before, 0);
    assert_int_equal(fx->hist_limit, 50);
    login_v1(fx, 2, "bob", NULL);
    send_room(fx, 1, "r", "one");
    say(fx, 1, "{\"type\":\"private\",\"to\":\"bob\",\"message\":{\"text\":\"secret\"}}");
    send_room(fx, 1, "r", "two");
    assert_int_equal(fx->batches, 0);
    chat_flush(fx->chat);
    chat_flush(fx->chat); /* nothing pending: no empty batch */
    assert_int_equal(fx->batches, 1);
    /* One batch with the two room messages; the private one is not stored. */
    assert_int_equal(fx->nstored, 2);
    assert_int_equal(fx->stored[0].id, 1001); /* continues after the store's last id */
    assert_string_equal(fx->stored_text[0], "one");
    assert_int_equal(fx->stored[1].id, 1003);
    assert_string_equal(fx->stored_text[1], "two");
    assert_int_equal(jint(take(fx, 1, "room"), "id"), 1001);
    assert_int_equal(jint(take(fx, 1, "private"), "id"), 1002);
    assert_int_equal(jint(take(fx, 1, "room"), "id"), 1003);
    take(fx, 2, "private");

    /* joined.history and history come from the store. */
    say(fx, 2, "{\"type\":\"join\",\"room\":\"r\"}");
    json_t *j = take(fx, 2, "joined");
    json_t *h = json_object_get(j, "history");
    assert_int_equal(json_array_size(h), 2);
    assert_message(json_array_get(h, 0), "room", "someone", "r", "one");
    assert_int_equal(jint(json_array_get(h, 1), "id"), 1003);
    assert_true(json_is_false(json_object_get(j, "more")));
    take(fx, 1, "member_joined");
    say(fx, 2, "{\"type\":\"join\",\"room\":\"r\",\"since\":1001}");
    j = take(fx, 2, "joined");
    assert_int_equal(fx->hist_after, 1001);
    assert_int_equal(json_array_size(json_object_get(j, "history")), 1);
    say(fx, 2, "{\"type\":\"history\",\"room\":\"r\",\"before\":1003,\"limit\":1}");
    j = take(fx, 2, "history");
    assert_int_equal(fx->hist_before, 1003);
    assert_int_equal(fx->hist_limit, 1);
    assert_int_equal(json_array_size(json_object_get(j, "messages")), 1);
    assert_int_equal(jint(json_array_get(json_object_get(j, "messages"), 0), "id"), 1001);
    assert_true(json_is_false(json_object_get(j, "more")));
    say(fx, 2, "{\"type\":\"history\",\"room\":\"r\",\"limit\":1}");
    j = take(fx, 2, "history");
    assert_int_equal(jint(json_array_get(json_object_get(j, "messages"), 0), "id"), 1003);
    assert_true(json_is_true(json_object_get(j, "more")));

    /* A failed write: nothing delivered, the sender told (v1) with its ref. */
    fx->store_rc = -5;
    say(fx, 1, "{\"type\":\"room\",\"to\":\"r\",\"id\":\"f\",\"message\":{\"text\":\"lost\"}}");
    say(fx, 1, "{\"type\":\"private\",\"to\":\"bob\",\"message\":{\"text\":\"live\"}}");
    chat_flush(fx->chat);
    assert_string_equal(jstr(take_error(fx, 1, "unavailable"), "ref"), "f");
    assert_message(take(fx, 1, "private"), "private", "alice", "bob", "live");
    assert_message(take(fx, 2, "private"), "private", "alice", "bob", "live");
    say(fx, 2, "{\"type\":\"history\",\"room\":\"r\"}");
    take_error(fx, 2, "unavailable");
    none(fx, 1);
    none(fx, 2);
    chat_set_store(fx->chat, NULL, NULL);
}

static void test_chat_free_with_pending(void **state) {
    fx_t *fx = *state;
    login_v1(fx, 1, "alice", "r");
    login_legacy(fx, 2, "bob", "r");
    send_room(fx, 1, "r", "never delivered");
    size_t before = fx->nrec;
    chat_free(fx->chat);
    assert_int_equal(fx->nrec, before);
    fx->chat = chat_new(NULL, &fake_io, fx);
}

/* ---- text content ---- */

/* Control characters (but tab, line feed and carriage return) and blank
 * text are refused: each control character costs six bytes in every reply
 * that carries it, and neither means anything in chat. */
static void test_chat_text_control_and_blank(void **state) {
    static const struct {
        const char *json; /* the text as a JSON string body */
        bool ok;
    } cases[] = {
        {"hola", true},
        {"tab\\there", true},
        {"two\\nlines", true},
        {"crlf\\r\\nend", true},
        {"\\t x", true},
        {"a\\u0000b", false},
        {"\\u0001", false},
        {"x\\u0007", false},
        {"\\u000b", false},   /* vertical tab */
        {"\\u000c", false},   /* form feed */
        {"x\\u001bz", false}, /* escape */
        {"\\u001f", false},
        {"\\u007f", false},  /* delete */
        {"\\u0080", false},  /* C1 */
        {"a\\u0085", false}, /* next line, a C1 control */
        {"\\u009f", false},
        {"\\u00a0x", true}, /* a no-break space before a letter */
        {"\\u00a1", true},  /* ¡, right after the C1 range */
        {"\xc3\xa9t\xc3\xa9", true},
        {"\xf0\x9f\x98\x80", true}, /* 😀 */
        {" ", false},
        {"   ", false},
        {"\\t\\n\\r ", false},
        {"\\u00a0", false},
        {"\\u1680", false},
        {"\\u180e", false},
        {"\\u2000\\u2001\\u200a", false},
        {"\\u200b", false}, /* zero-width space */
        {"\\u200d\\u200c", false},
        {"\\u200e\\u200f", false},
        {"\\u2010", true}, /* hyphen, right after the range */
        {"\\u2028\\u2029", false},
        {"\\u202f\\u205f\\u2060", false},
        {"\\u205e", true},
        {"\\u2061", true},
        {"\\u3000", false},
        {"\\u3001", true},
        {"\\ufeff", false},
        {"\\ufefe", true},
        {" \\u3000 \\u00a0x", true},
        {"x\\u0001 and more", false},
    };
    chat_config_t cfg;
    chat_config_defaults(&cfg);
    cfg.rate_limit = 0; /* many messages at once */
    fx_t *fx = fx_new(&cfg);
    login_v1(fx, 1, "alice", "r");
    login_v1(fx, 2, "bob", "r");
    take(fx, 1, "member_joined");
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        say(fx, 1, "{\"type\":\"room\",\"to\":\"r\",\"id\":\"t%zu\",\"message\":{\"text\":\"%s\"}}",
            i, cases[i].json);
        say(fx, 1, "{\"type\":\"private\",\"to\":\"bob\",\"message\":{\"text\":\"%s\"}}",
            cases[i].json);
        chat_flush(fx->chat);
        if (cases[i].ok) {
            take(fx, 1, "ack");
            take(fx, 1, "room");
            take(fx, 1, "private");
            take(fx, 2, "room");
            take(fx, 2, "private");
        } else {
            json_t *e = take_error(fx, 1, "bad_request");
            char ref[16];
            snprintf(ref, sizeof(ref), "t%zu", i);
            assert_string_equal(jstr(e, "ref"), ref);
            take_error(fx, 1, "bad_request");
        }
        none(fx, 1);
        none(fx, 2);
    }
    /* A legacy sender is held to the same rules: dropped, nobody gets it. */
    login_legacy(fx, 3, "old", "r");
    take(fx, 1, "member_joined");
    take(fx, 2, "member_joined");
    say(fx, 3, "{\"type\":\"room\",\"to\":\"r\",\"message\":{\"text\":\"\\u0001\\u0001\"}}");
    say(fx, 3, "{\"type\":\"room\",\"to\":\"r\",\"message\":{\"text\":\"\\u3000\"}}");
    chat_flush(fx->chat);
    none(fx, 1);
    none(fx, 2);
    none(fx, 3);
    fx_free(fx);
}

/* A store that already holds ids the chat thought new refuses the batch;
 * the chat then continues after the store's last id, so the next batch is
 * stored (before, every later batch was refused the same way). */
static void test_chat_ids_resync_after_a_refused_batch(void **state) {
    fx_t *fx = *state;
    assert_int_equal(chat_set_store(fx->chat, &fake_store, fx), 0);
    login_v1(fx, 1, "alice", "r");
    send_room(fx, 1, "r", "one");
    chat_flush(fx->chat);
    assert_int_equal(fx->stored[0].id, 1001);
    assert_int_equal(jint(take(fx, 1, "room"), "id"), 1001);
    fx->store_rc = -7001;
    fx->report_last = 5000;
    send_room(fx, 1, "r", "two");
    chat_flush(fx->chat);
    json_t *e = take_error(fx, 1, "unavailable");
    (void)e;
    fx->store_rc = 0;
    send_room(fx, 1, "r", "three");
    chat_flush(fx->chat);
    assert_int_equal(fx->nstored, 2);
    assert_int_equal(fx->stored[1].id, 5001);
    assert_int_equal(jint(take(fx, 1, "room"), "id"), 5001);
}

/* ---- replies within the byte budget ---- */

/* The worst case a store can hold: messages of 4,096 control characters
 * (accepted before they were refused), six bytes each in JSON. */
static int big_history(void *ctx, const char *room, size_t room_len, uint64_t after,
                       uint64_t before, unsigned limit, chat_history_done_cb done, void *arg) {
    fx_t *fx = ctx;
    fx->hist_calls++;
    static chat_message_t out[CHAT_HISTORY_MAX];
    size_t nout = 0;
    uint64_t hi = before == 0 || before > fx->big_n ? fx->big_n : before - 1;
    uint64_t lo = hi > limit ? hi - limit + 1 : 1;
    if (lo <= after)
        lo = after + 1;
    for (uint64_t id = lo; id <= hi; id++) {
        chat_message_t m = {.id = id,
                            .ts = 1764013952123LL,
                            .kind = CHAT_MSG_ROOM,
                            .from = "abcdefghijklmnopqrstuvwxyz012345",
                            .from_len = 32,
                            .to = room,
                            .to_len = room_len,
                            .text = fx->big_text,
                            .text_len = fx->big_len};
        out[nout++] = m;
    }
    done(arg, 0, out, nout, lo > after + 1);
    return 0;
}

static const chat_store_hooks_t big_store = {.history = big_history};

static void big_fill(fx_t *fx, unsigned n, size_t len, char c) {
    fx->big_n = n;
    fx->big_len = len;
    fx->big_text = malloc(len);
    memset(fx->big_text, c, len);
    assert_int_equal(chat_set_store(fx->chat, &big_store, fx), 0);
}

/* The payload length of a frame (the tests' frames are all well formed). */
static size_t frame_payload(const tt_buf_t *b) {
    const uint8_t *p = tt_buf_ptr(b);
    size_t len = p[1] & 0x7F;
    if (len == 126)
        return b->len - 4;
    if (len == 127)
        return b->len - 10;
    return b->len - 2;
}

/* Asserts a list of messages holds exactly ids lo..hi in order. */
static void assert_ids(const json_t *list, uint64_t lo, uint64_t hi) {
    assert_int_equal(json_array_size(list), hi - lo + 1);
    for (size_t i = 0; i < json_array_size(list); i++)
        assert_int_equal(jint(json_array_get(list, i), "id"), lo + i);
}

static void test_chat_history_fits_the_reply_budget(void **state) {
    chat_config_t cfg;
    chat_config_defaults(&cfg);
    assert_int_equal(cfg.reply_budget, 256 * 1024);
    cfg.history_on_join = 200;
    fx_t *fx = fx_new(&cfg);
    big_fill(fx, 200, 4096, '\x01');
    open_conn(fx, 1, true);
    say(fx, 1, "{\"type\":\"login\",\"nickname\":\"alice\",\"room\":\"#big\",\"id\":\"L\"}");
    take(fx, 1, "welcome");
    tt_buf_t *b;
    json_t *j = next_frame(fx, 1, &b);
    assert_string_equal(jstr(j, "type"), "joined");
    /* The frame stays under the budget, whatever 200 such messages weigh
     * (4.9 MB); the newest that fit are kept, and more says there are more. */
    assert_true(frame_payload(b) <= cfg.reply_budget);
    json_t *h = json_object_get(j, "history");
    size_t n = json_array_size(h);
    assert_true(n >= 5 && n < 200);
    assert_ids(h, 200 - n + 1, 200);
    assert_true(json_is_true(json_object_get(j, "more")));
    assert_int_equal(strlen(jstr(json_object_get(json_array_get(h, 0), "message"), "text")), 4096);
    /* Each further page fits too, and paging back with before = the first
     * id gets every message once. */
    uint64_t first = (uint64_t)jint(json_array_get(h, 0), "id");
    unsigned pages = 0;
    while (first > 1) {
        say(fx, 1, "{\"type\":\"history\",\"room\":\"#big\",\"before\":%llu,\"limit\":200}",
            (unsigned long long)first);
        j = next_frame(fx, 1, &b);
        assert_string_equal(jstr(j, "type"), "history");
        assert_true(frame_payload(b) <= cfg.reply_budget);
        h = json_object_get(j, "messages");
        n = json_array_size(h);
        assert_true(n >= 1);
        assert_ids(h, first - n, first - 1);
        first -= n;
        assert_true(json_is_boolean(json_object_get(j, "more")));
        assert_int_equal(json_is_true(json_object_get(j, "more")), first > 1);
        assert_true(++pages < 100);
    }
    /* Small messages are not cut: the whole page. */
    free(fx->big_text);
    big_fill(fx, 200, 10, 'x');
    say(fx, 1, "{\"type\":\"history\",\"room\":\"#big\",\"limit\":200}");
    j = take(fx, 1, "history");
    assert_ids(json_object_get(j, "messages"), 1, 200);
    assert_true(json_is_false(json_object_get(j, "more")));
    none(fx, 1);
    fx_free(fx);
}

/* A budget below what one message needs is raised: the newest message is
 * always served, so a room can always be read back. */
static void test_chat_reply_budget_holds_one_largest_message(void **state) {
    chat_config_t cfg;
    chat_config_defaults(&cfg);
    cfg.reply_budget = 1000;
    cfg.max_text = 8192;
    fx_t *fx = fx_new(&cfg);
    big_fill(fx, 3, 8192, '\x02');
    open_conn(fx, 2, true);
    say(fx, 2, "{\"type\":\"login\",\"nickname\":\"bob\"}");
    json_t *limits = json_object_get(take(fx, 2, "welcome"), "limits");
    assert_int_equal(jint(limits, "reply_budget"), chat_reply_budget_min(8192));
    /* The figure docs/protocol.md gives for the default max_text. */
    assert_int_equal(chat_reply_budget_min(4096), 67935);
    say(fx, 2, "{\"type\":\"join\",\"room\":\"r\"}");
    tt_buf_t *b;
    json_t *j = next_frame(fx, 2, &b);
    assert_string_equal(jstr(j, "type"), "joined");
    assert_ids(json_object_get(j, "history"), 3, 3);
    assert_true(json_is_true(json_object_get(j, "more")));
    assert_true(frame_payload(b) <= chat_reply_budget_min(8192));
    assert_true(frame_payload(b) > 6 * 8192);
    say(fx, 2, "{\"type\":\"history\",\"room\":\"r\",\"before\":3}");
    j = next_frame(fx, 2, &b);
    assert_ids(json_object_get(j, "messages"), 2, 2);
    assert_true(json_is_true(json_object_get(j, "more")));
    assert_true(frame_payload(b) <= chat_reply_budget_min(8192));
    none(fx, 2);
    fx_free(fx);
}

/* ---- rooms and members, paged ---- */

/* The order pages use: ASCII case folded, ties broken by the bytes. */
static int folded_cmp(const char *a, const char *b) {
    int c = strcasecmp(a, b);
    return c != 0 ? c : strcmp(a, b);
}

/* A legacy session (no frames to read) that joins rooms; handle >= 100. */
static chat_session_t *crowd_member(fx_t *fx, int i, const char *nick, const char *room) {
    chat_session_t *s = chat_session_open(fx->chat, (void *)(uintptr_t)(100 + i), false, "crowd");
    char req[256];
    int n = snprintf(req, sizeof(req), "{\"type\":\"login\",\"nickname\":\"%s\",\"room\":\"%s\"}",
                     nick, room);
    chat_session_on_text(fx->chat, s, req, (size_t)n);
    assert_non_null(chat_session_nickname(s));
    return s;
}

static void join_silently(fx_t *fx, chat_session_t *s, const char *room) {
    char req[128];
    int n = snprintf(req, sizeof(req), "{\"type\":\"join\",\"room\":\"%s\"}", room);
    chat_session_on_text(fx->chat, s, req, (size_t)n);
}

static void test_chat_rooms_are_paged_in_folded_order(void **state) {
    chat_config_t cfg;
    chat_config_defaults(&cfg);
    cfg.max_rooms = 1000;
    cfg.rate_limit = 0; /* one session creates them all */
    fx_t *fx = fx_new(&cfg);
    /* 630 rooms, created in a scrambled order, names in several cases. */
    enum { N = 630 };
    static const char *shapes[] = {"room%03d", "Room%03d-b", "#room%03d-c", "_r%03d", "ROOM%03d-x"};
    char names[N][32];
    chat_session_t *s = NULL;
    for (int k = 0; k < N; k++) {
        int i = (k * 7919) % N; /* a permutation: 7919 is prime and does not divide N */
        snprintf(names[i], sizeof(names[i]), shapes[i % 5], i / 5);
        if (s == NULL)
            s = crowd_member(fx, 0, "maker", names[i]);
        else
            join_silently(fx, s, names[i]);
    }
    chat_stats_t st;
    chat_stats(fx->chat, &st);
    assert_int_equal(st.rooms, N);
    login_v1(fx, 1, "alice", "room000"); /* 2 members there now */

    /* Pages of the default size, in folded order, each after the last name
     * of the one before; every room once. */
    char seen[N + 1][32];
    size_t nseen = 0;
    char after[40] = "";
    for (int page = 0;; page++) {
        if (page == 0)
            say(fx, 1, "{\"type\":\"rooms\",\"id\":\"p\"}");
        else
            say(fx, 1, "{\"type\":\"rooms\",\"after\":\"%s\"}", after);
        json_t *j = take(fx, 1, "rooms");
        json_t *list = json_object_get(j, "rooms");
        assert_int_equal(jint(j, "count"), N);
        if (page == 0)
            assert_string_equal(jstr(j, "ref"), "p");
        size_t n = json_array_size(list);
        bool last = page == N / 100;
        assert_int_equal(n, last ? N % 100 : 100);
        assert_int_equal(json_is_true(json_object_get(j, "more")), !last);
        for (size_t i = 0; i < n; i++) {
            const char *name = jstr(json_array_get(list, i), "name");
            if (nseen > 0)
                assert_true(folded_cmp(seen[nseen - 1], name) < 0);
            snprintf(seen[nseen++], sizeof(seen[0]), "%s", name);
            assert_int_equal(jint(json_array_get(list, i), "members"),
                             strcmp(name, "room000") == 0 ? 2 : 1);
        }
        if (last)
            break;
        snprintf(after, sizeof(after), "%s", seen[nseen - 1]);
    }
    assert_int_equal(nseen, N);
    /* Case variants sort together, the upper case first. */
    for (size_t i = 1; i < nseen; i++)
        if (strcasecmp(seen[i - 1], seen[i]) == 0)
            assert_true(strcmp(seen[i - 1], seen[i]) < 0);

    /* limit is clamped to 500; a cursor need not name a room. */
    say(fx, 1, "{\"type\":\"rooms\",\"limit\":100000}");
    json_t *j = take(fx, 1, "rooms");
    assert_int_equal(json_array_size(json_object_get(j, "rooms")), 500);
    assert_true(json_is_true(json_object_get(j, "more")));
    say(fx, 1, "{\"type\":\"rooms\",\"limit\":3,\"after\":\"room1\"}");
    j = take(fx, 1, "rooms");
    json_t *list = json_object_get(j, "rooms");
    assert_int_equal(json_array_size(list), 3);
    assert_string_equal(jstr(json_array_get(list, 0), "name"), "room100");
    assert_string_equal(jstr(json_array_get(list, 1), "name"), "Room100-b");
    assert_string_equal(jstr(json_array_get(list, 2), "name"), "ROOM100-x");
    say(fx, 1, "{\"type\":\"rooms\",\"after\":\"~\"}");
    j = take(fx, 1, "rooms");
    assert_int_equal(json_array_size(json_object_get(j, "rooms")), 0);
    assert_true(json_is_false(json_object_get(j, "more")));
    say(fx, 1, "{\"type\":\"rooms\",\"limit\":null,\"after\":null}");
    assert_int_equal(json_array_size(json_object_get(take(fx, 1, "rooms"), "rooms")), 100);
    static const char *bad[] = {"\"limit\":0",   "\"limit\":-1", "\"limit\":\"5\"",
                                "\"limit\":1.5", "\"after\":5",  "\"after\":[\"a\"]"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        say(fx, 1, "{\"type\":\"rooms\",%s}", bad[i]);
        take_error(fx, 1, "bad_request");
    }
    none(fx, 1);
    fx_free(fx);
}

/* who and joined.members are capped at 1,000 names with the total in count;
 * who pages through the rest with after, in folded order. */
static void test_chat_members_are_capped_with_a_count(void **state) {
    fx_t *fx = *state;
    enum { N = 1130 };
    login_v1(fx, 1, "watcher", "crowd");
    for (int i = 0; i < N; i++) {
        char nick[16];
        snprintf(nick, sizeof(nick), i % 2 ? "m%04d" : "M%04dz", (i * 7) % N);
        crowd_member(fx, i, nick, "crowd");
        take(fx, 1, "member_joined");
    }
    say(fx, 1, "{\"type\":\"who\",\"room\":\"crowd\",\"id\":\"w\"}");
    json_t *j = take(fx, 1, "members");
    assert_string_equal(jstr(j, "ref"), "w");
    assert_int_equal(jint(j, "count"), N + 1);
    assert_true(json_is_true(json_object_get(j, "more")));
    json_t *m = json_object_get(j, "members");
    assert_int_equal(json_array_size(m), 1000);
    char seen[N + 1][16];
    size_t nseen = 0;
    for (size_t i = 0; i < 1000; i++)
        snprintf(seen[nseen++], sizeof(seen[0]), "%s", json_string_value(json_array_get(m, i)));
    say(fx, 1, "{\"type\":\"who\",\"room\":\"crowd\",\"after\":\"%s\"}", seen[nseen - 1]);
    j = take(fx, 1, "members");
    assert_int_equal(jint(j, "count"), N + 1);
    assert_true(json_is_false(json_object_get(j, "more")));
    m = json_object_get(j, "members");
    assert_int_equal(json_array_size(m), N + 1 - 1000);
    for (size_t i = 0; i < json_array_size(m); i++)
        snprintf(seen[nseen++], sizeof(seen[0]), "%s", json_string_value(json_array_get(m, i)));
    for (size_t i = 1; i < nseen; i++)
        assert_true(folded_cmp(seen[i - 1], seen[i]) < 0);
    /* A smaller page; more says the rest exists. */
    say(fx, 1, "{\"type\":\"who\",\"room\":\"crowd\",\"limit\":2,\"after\":\"m0300\"}");
    j = take(fx, 1, "members");
    m = json_object_get(j, "members");
    assert_int_equal(json_array_size(m), 2);
    assert_string_equal(json_string_value(json_array_get(m, 0)), "M0300z");
    assert_string_equal(json_string_value(json_array_get(m, 1)), "m0301");
    assert_true(json_is_true(json_object_get(j, "more")));
    /* A small room answers as before, with count and more: false. */
    say(fx, 1, "{\"type\":\"who\",\"room\":\"empty\"}");
    j = take(fx, 1, "members");
    assert_int_equal(json_array_size(json_object_get(j, "members")), 0);
    assert_int_equal(jint(j, "count"), 0);
    assert_true(json_is_false(json_object_get(j, "more")));
    say(fx, 1, "{\"type\":\"who\",\"room\":\"crowd\",\"limit\":0}");
    take_error(fx, 1, "bad_request");
    say(fx, 1, "{\"type\":\"who\",\"room\":\"crowd\",\"after\":1}");
    take_error(fx, 1, "bad_request");

    /* A joiner gets 1,000 names, its own among them, and the count. */
    login_v1(fx, 2, "late", NULL);
    say(fx, 2, "{\"type\":\"join\",\"room\":\"crowd\"}");
    j = take(fx, 2, "joined");
    assert_int_equal(json_array_size(json_object_get(j, "members")), 1000);
    assert_true(has_member(j, "late"));
    assert_int_equal(jint(j, "member_count"), N + 2);
    assert_true(json_is_false(json_object_get(j, "more"))); /* history's more, unchanged */
    take(fx, 1, "member_joined");
    /* In a small room, every member as before. */
    say(fx, 2, "{\"type\":\"join\",\"room\":\"small\"}");
    j = take(fx, 2, "joined");
    assert_int_equal(json_array_size(json_object_get(j, "members")), 1);
    assert_int_equal(jint(j, "member_count"), 1);
    none(fx, 1);
    none(fx, 2);
}

/* ---- the log of a failing store ---- */

static uint64_t fake_now(void *ctx) {
    return ((fx_t *)ctx)->now;
}

/* Runs fn with stderr captured at info level; returns the lines (malloc'd,
 * NUL-separated in one buffer) and their number. */
static char *capture_log(void (*fn)(fx_t *), fx_t *fx, int *lines) {
    FILE *log = tmpfile();
    assert_non_null(log);
    fflush(stderr);
    int saved = dup(2);
    dup2(fileno(log), 2);
    tt_log_set_level(TT_LOG_INFO);
    fn(fx);
    tt_log_set_level(TT_LOG_OFF);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    long size = ftell(log);
    rewind(log);
    char *text = calloc(1, (size_t)size + 1);
    assert_int_equal(fread(text, 1, (size_t)size, log), (size_t)size);
    fclose(log);
    *lines = 0;
    for (char *p = text; *p; p++)
        *lines += *p == '\n';
    return text;
}

/* What the functions run under capture_log got back (they assert nothing:
 * a failed assertion there would leave stderr captured). */
static int unavailable_seen, joined_seen;

static void count_replies(fx_t *fx) {
    json_t *j;
    while ((j = next_frame(fx, 1, NULL)) != NULL)
        unavailable_seen +=
            strcmp(jstr(j, "type"), "error") == 0 && strcmp(jstr(j, "code"), "unavailable") == 0;
    while ((j = next_frame(fx, 2, NULL)) != NULL)
        joined_seen += strcmp(jstr(j, "type"), "joined") == 0;
}

static void failing_flood(fx_t *fx) {
    /* 57 refused messages in 57 batches, and 57 joins whose history read
     * fails, within 5.7 s. */
    for (int i = 0; i < 57; i++) {
        send_room(fx, 1, "r", "lost");
        chat_flush(fx->chat);
        say(fx, 2, "{\"type\":\"join\",\"room\":\"r\"}"); /* again: reads history */
        fx->now += 100;
    }
    count_replies(fx);
}

static void failing_later(fx_t *fx) {
    /* Once the window has passed, the next flush summarizes what was held. */
    fx->now += 10000;
    chat_flush(fx->chat);
    chat_flush(fx->chat);
    /* And a new failure, a window later, is logged again. */
    fx->now += 10000;
    send_room(fx, 1, "r", "lost again");
    chat_flush(fx->chat);
    count_replies(fx);
}

static void test_chat_store_failures_are_logged_once_per_window(void **state) {
    fx_t *fx = *state;
    fx->now = 5000000;
    chat_set_clock(fx->chat, fake_now, fx);
    assert_int_equal(chat_set_store(fx->chat, &fake_store, fx), 0);
    login_v1(fx, 1, "alice", "r");
    login_v1(fx, 2, "bob", "r");
    take(fx, 1, "member_joined");
    fx->store_rc = -28;
    int lines;
    char *text = capture_log(failing_flood, fx, &lines);
    assert_int_equal(unavailable_seen, 57);
    assert_int_equal(joined_seen, 57);
    /* One line for the writes, one for the history reads. */
    assert_int_equal(lines, 2);
    assert_non_null(strstr(text, "storing 1 messages failed (-28)"));
    assert_non_null(strstr(text, "history of r for 127.0.0.1:40002 failed (-28)"));
    free(text);
    text = capture_log(failing_later, fx, &lines);
    assert_int_equal(unavailable_seen, 58);
    assert_int_equal(lines, 3);
    assert_non_null(strstr(
        text, "storing failed 56 more times since the last line (56 messages, not delivered)"));
    assert_non_null(strstr(text, "history for a join failed 56 more times since the last line"));
    assert_non_null(strstr(text, "storing 1 messages failed (-28)"));
    free(text);
    chat_set_store(fx->chat, NULL, NULL);
}

/* ---- identities: guests resumed, the grace time, held privates ---- */

static uint64_t grace_now(void *ctx) {
    return ((fx_t *)ctx)->now;
}

static fx_t *fx_grace(void) {
    chat_config_t cfg;
    chat_config_defaults(&cfg);
    cfg.resume_ms = 120000;
    fx_t *fx = fx_new(&cfg);
    fx->now = 1000000;
    chat_set_clock(fx->chat, grace_now, fx);
    return fx;
}

/* Logs conn c in as nick, returning its resume token (static storage). */
static const char *login_guest(fx_t *fx, int c, const char *nick, const char *room) {
    static char token[128];
    open_conn(fx, c, true);
    say(fx, c, "{\"type\":\"login\",\"nickname\":\"%s\"}", nick);
    json_t *w = take(fx, c, "welcome");
    assert_true(json_is_false(json_object_get(w, "account")));
    assert_non_null(jstr(w, "resume"));
    snprintf(token, sizeof(token), "%s", jstr(w, "resume"));
    if (room != NULL)
        join(fx, c, room);
    return token;
}

static void resume(fx_t *fx, int c, const char *nick, const char *token) {
    open_conn(fx, c, true);
    say(fx, c, "{\"type\":\"login\",\"nickname\":\"%s\",\"resume\":\"%s\"}", nick, token);
    json_t *w = take(fx, c, "welcome");
    assert_string_equal(jstr(w, "nickname"), nick);
    assert_null(json_object_get(w, "resume")); /* the client has it */
}

static void test_chat_guest_resume_is_one_user(void **state) {
    (void)state;
    fx_t *fx = fx_grace();
    char token[128];
    snprintf(token, sizeof(token), "%s", login_guest(fx, 1, "alice", "r"));
    assert_int_equal(strlen(token), 47);
    login_v1(fx, 2, "bob", "r");
    take(fx, 1, "member_joined");
    /* A second tab: the same guest at once, while the first is connected. */
    resume(fx, 3, "alice", token);
    say(fx, 3, "{\"type\":\"join\",\"room\":\"r\"}");
    json_t *j = take(fx, 3, "joined");
    assert_int_equal(json_array_size(json_object_get(j, "members")), 2); /* alice once */
    assert_int_equal(jint(j, "member_count"), 2);
    say(fx, 2, "{\"type\":\"who\",\"room\":\"r\"}");
    assert_int_equal(jint(take(fx, 2, "members"), "count"), 2);
    none(fx, 2); /* no member_joined: alice was there */
    /* Room messages reach both tabs; privates reach both and echo to both. */
    send_room(fx, 2, "r", "hi");
    chat_flush(fx->chat);
    for (int c = 1; c <= 3; c++)
        assert_message(take(fx, c, "room"), "room", "bob", "r", "hi");
    say(fx, 2, "{\"type\":\"private\",\"to\":\"ALICE\",\"message\":{\"text\":\"psst\"}}");
    chat_flush(fx->chat);
    assert_message(take(fx, 1, "private"), "private", "bob", "alice", "psst");
    assert_message(take(fx, 3, "private"), "private", "bob", "alice", "psst");
    take(fx, 2, "private");
    say(fx, 3, "{\"type\":\"private\",\"to\":\"bob\",\"message\":{\"text\":\"back\"}}");
    chat_flush(fx->chat);
    assert_message(take(fx, 2, "private"), "private", "alice", "bob", "back");
    take(fx, 1, "private"); /* the echo reaches the other tab too */
    take(fx, 3, "private");
    /* The first tab dies: alice is still here through the second. */
    close_conn(fx, 1, "timeout");
    say(fx, 2, "{\"type\":\"ping\"}");
    take(fx, 2, "pong");
    /* A goodbye from the last one: gone at once, the nickname free. */
    close_conn(fx, 3, "quit");
    j = take(fx, 2, "member_left");
    assert_string_equal(jstr(j, "nickname"), "alice");
    assert_string_equal(jstr(j, "reason"), "quit");
    login_v1(fx, 4, "alice", NULL);
    fx_free(fx);
}

static void test_chat_resume_refused(void **state) {
    (void)state;
    fx_t *fx = fx_grace();
    char token[128];
    snprintf(token, sizeof(token), "%s", login_guest(fx, 1, "alice", NULL));
    login_guest(fx, 2, "bob", NULL);
    open_conn(fx, 3, true);
    /* Another guest's token, a made-up one, an unknown nickname: one answer. */
    say(fx, 3, "{\"type\":\"login\",\"nickname\":\"bob\",\"resume\":\"%s\"}", token);
    take_error(fx, 3, "auth_failed");
    say(fx, 3, "{\"type\":\"login\",\"nickname\":\"alice\",\"resume\":\"tt1.nope\"}");
    take_error(fx, 3, "auth_failed");
    say(fx, 3, "{\"type\":\"login\",\"nickname\":\"carol\",\"resume\":\"%s\"}", token);
    take_error(fx, 3, "auth_failed");
    say(fx, 3, "{\"type\":\"login\",\"nickname\":\"alice\",\"resume\":5}");
    take_error(fx, 3, "bad_request");
    /* Without a token the nickname is taken, as before. */
    say(fx, 3, "{\"type\":\"login\",\"nickname\":\"Alice\"}");
    take_error(fx, 3, "nickname_taken");
    fx_free(fx);
}

static void test_chat_grace_time(void **state) {
    (void)state;
    fx_t *fx = fx_grace();
    char token[128];
    snprintf(token, sizeof(token), "%s", login_guest(fx, 1, "alice", "r"));
    login_v1(fx, 2, "bob", "r");
    take(fx, 1, "member_joined");
    /* A drop without goodbye: alice stays, in the room too. */
    close_conn(fx, 1, "disconnect");
    say(fx, 2, "{\"type\":\"who\",\"room\":\"r\"}");
    assert_int_equal(jint(take(fx, 2, "members"), "count"), 2);
    open_conn(fx, 3, true);
    say(fx, 3, "{\"type\":\"login\",\"nickname\":\"alice\"}");
    take_error(fx, 3, "nickname_taken");
    /* A private meanwhile is held, then delivered on resume. */
    say(fx, 2, "{\"type\":\"private\",\"to\":\"alice\",\"message\":{\"text\":\"held\"}}");
    chat_flush(fx->chat);
    take(fx, 2, "private"); /* the echo */
    fx->now += 60000;
    chat_tick(fx->chat);
    none(fx, 2);
    resume(fx, 4, "alice", token);
    assert_message(take(fx, 4, "private"), "private", "bob", "alice", "held");
    join(fx, 4, "r");
    none(fx, 2); /* back without noise */
    /* The grace time counts from the drop; a rejoin clears it. */
    fx->now += 200000;
    chat_tick(fx->chat);
    none(fx, 2);
    /* Dropped again; a private held; the grace time runs out. */
    close_conn(fx, 4, "timeout");
    say(fx, 2,
        "{\"type\":\"private\",\"to\":\"alice\",\"id\":\"p1\",\"message\":{\"text\":\"lost\"}}");
    chat_flush(fx->chat);
    uint64_t id = (uint64_t)jint(take(fx, 2, "ack"), "message_id");
    take(fx, 2, "private");
    fx->now += 119999;
    chat_tick(fx->chat);
    none(fx, 2);
    fx->now += 1;
    chat_tick(fx->chat);
    json_t *j = take(fx, 2, "member_left");
    assert_string_equal(jstr(j, "nickname"), "alice");
    assert_string_equal(jstr(j, "reason"), "timeout");
    j = take(fx, 2, "undelivered");
    assert_int_equal(jint(j, "message_id"), (long long)id);
    assert_string_equal(jstr(j, "to"), "alice");
    /* Now the nickname is free and the old token dead. */
    open_conn(fx, 5, true);
    say(fx, 5, "{\"type\":\"login\",\"nickname\":\"alice\",\"resume\":\"%s\"}", token);
    take_error(fx, 5, "auth_failed");
    say(fx, 5, "{\"type\":\"login\",\"nickname\":\"alice\"}");
    take(fx, 5, "welcome");
    fx_free(fx);
}

static void test_chat_grace_held_bound(void **state) {
    (void)state;
    chat_config_t cfg;
    chat_config_defaults(&cfg);
    cfg.rate_limit = 0;
    cfg.resume_ms = 120000;
    fx_t *fx = fx_new(&cfg);
    login_guest(fx, 1, "alice", NULL);
    login_v1(fx, 2, "bob", NULL);
    close_conn(fx, 1, "disconnect");
    for (int i = 0; i < 101; i++)
        say(fx, 2, "{\"type\":\"private\",\"to\":\"alice\",\"message\":{\"text\":\"m%d\"}}", i);
    chat_flush(fx->chat);
    /* 100 held; the 101st is undelivered at once (told before its echo). */
    for (int i = 0; i < 100; i++)
        take(fx, 2, "private");
    take(fx, 2, "undelivered");
    take(fx, 2, "private");
    none(fx, 2);
    fx_free(fx);
}

static void test_chat_legacy_has_no_grace(void **state) {
    (void)state;
    fx_t *fx = fx_grace();
    login_v1(fx, 1, "watcher", "r");
    login_legacy(fx, 2, "old", "r");
    take(fx, 1, "member_joined");
    close_conn(fx, 2, "disconnect");
    assert_string_equal(jstr(take(fx, 1, "member_left"), "nickname"), "old");
    login_legacy(fx, 3, "old", "r"); /* the original client's reload works at once */
    take(fx, 1, "member_joined");
    fx_free(fx);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_chat_login_welcome, setup, teardown),
        cmocka_unit_test(test_chat_guest_resume_is_one_user),
        cmocka_unit_test(test_chat_resume_refused),
        cmocka_unit_test(test_chat_grace_time),
        cmocka_unit_test(test_chat_grace_held_bound),
        cmocka_unit_test(test_chat_legacy_has_no_grace),
        cmocka_unit_test_setup_teardown(test_chat_login_with_room_joins, setup, teardown),
        cmocka_unit_test_setup_teardown(test_chat_nickname_validity, setup, teardown),
        cmocka_unit_test_setup_teardown(test_chat_room_name_validity, setup, teardown),
        cmocka_unit_test_setup_teardown(test_chat_nickname_taken_case_insensitive, setup, teardown),
        cmocka_unit_test_setup_teardown(test_chat_already_logged_in, setup, teardown),
        cmocka_unit_test_setup_teardown(test_chat_not_logged_in, setup, teardown),
        cmocka_unit_test_setup_teardown(test_chat_join_leave_presence, setup, teardown),
        cmocka_unit_test_setup_teardown(test_chat_rejoin_is_idempotent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_chat_rooms_ignore_case_and_the_hash, setup, teardown),
        cmocka_unit_test_setup_teardown(test_chat_rooms_lists_counts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_chat_who_any_room, setup, teardown),
        cmocka_unit_test_setup_teardown(test_chat_max_rooms, setup, teardown),
        cmocka_unit_test_setup_teardown(test_chat_four_tabs_legacy, setup, teardown),
        cmocka_unit_test_setup_teardown(test_chat_four_tabs_v1, setup, teardown),
        cmocka_unit_test_setup_teardown(test_chat_four_tabs_mixed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_chat_broadcast_shares_one_buffer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_chat_sender_must_be_member, setup, teardown),
        cmocka_unit_test_setup_teardown(test_chat_private, setup, teardown),
        cmocka_unit_test_setup_teardown(test_chat_private_to_legacy_and_from_legacy, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_chat_from_is_server_assigned, setup, teardown),
        cmocka_unit_test_setup_teardown(test_chat_ids_increase_and_ts_is_now, setup, teardown),
        cmocka_unit_test_setup_teardown(test_chat_ack_only_with_id, setup, teardown),
        cmocka_unit_test_setup_teardown(test_chat_text_limits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_chat_error_precedence, setup, teardown),
        cmocka_unit_test_setup_teardown(test_chat_long_message_frames, setup, teardown),
        cmocka_unit_test_setup_teardown(test_chat_bad_json_and_bad_request, setup, teardown),
        cmocka_unit_test_setup_teardown(test_chat_deep_nesting, setup, teardown),
        cmocka_unit_test_setup_teardown(test_chat_since_and_history_validation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_chat_legacy_receives_only_messages, setup, teardown),
        cmocka_unit_test_setup_teardown(test_chat_legacy_refusals_logged_with_a_bound, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_chat_close_tells_members, setup, teardown),
        cmocka_unit_test_setup_teardown(test_chat_pending_delivered_before_membership_changes,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_chat_store_group_commit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_chat_ids_resync_after_a_refused_batch, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_chat_free_with_pending, setup, teardown),
        cmocka_unit_test_setup_teardown(test_chat_text_control_and_blank, setup, teardown),
        cmocka_unit_test_setup_teardown(test_chat_history_fits_the_reply_budget, setup, teardown),
        cmocka_unit_test_setup_teardown(test_chat_reply_budget_holds_one_largest_message, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_chat_rooms_are_paged_in_folded_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_chat_members_are_capped_with_a_count, setup, teardown),
        cmocka_unit_test_setup_teardown(test_chat_store_failures_are_logged_once_per_window, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
