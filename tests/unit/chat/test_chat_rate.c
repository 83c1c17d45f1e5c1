/* Tests for flood control (src/chat/chat_rate.c) and welcome.limits, driven
 * through the public API with a fake transport and an injected clock
 * (chat_set_clock), so every refill and window is exact. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "chat/chat.h"
#include "core/log.h"
#include "ws/ws_msg.h"

#define CONNS 8
#define MAX_FRAMES 16384

typedef struct fx_s {
    chat_t *chat;
    chat_session_t *s[CONNS];
    /* recorded frames, decoded at once */
    json_t *frames[MAX_FRAMES];
    int conn_of[MAX_FRAMES];
    size_t nframes;
    size_t cursor[CONNS];
    int closes[CONNS];
    uint16_t close_code[CONNS];
    uint64_t now;
} fx_t;

static json_t *decode(const tt_buf_t *b) {
    const uint8_t *p = tt_buf_ptr(b);
    assert_true(b->len >= 2);
    assert_int_equal(p[0], 0x81);
    size_t len = p[1] & 0x7F, h = 2;
    assert_true(len != 127); /* nothing here is that long */
    if (len == 126) {
        len = (size_t)p[2] << 8 | p[3];
        h = 4;
    }
    assert_int_equal(b->len, h + len);
    json_t *j = json_loadb((const char *)p + h, len, 0, NULL);
    assert_non_null(j);
    return j;
}

static void fake_send(void *ctx, void *conn, tt_msg_t *msg) {
    tt_buf_t *frame = ws_msg_frame(msg);
    fx_t *fx = ctx;
    assert_true(fx->nframes < MAX_FRAMES);
    fx->conn_of[fx->nframes] = (int)(uintptr_t)conn;
    fx->frames[fx->nframes++] = decode(frame);
}

static void fake_close(void *ctx, void *conn, uint16_t code, const char *reason) {
    fx_t *fx = ctx;
    int c = (int)(uintptr_t)conn;
    fx->closes[c]++;
    fx->close_code[c] = code;
    assert_non_null(reason);
    assert_true(strlen(reason) > 0 && strlen(reason) <= 123);
}

static uint64_t fake_now(void *ctx) {
    return ((fx_t *)ctx)->now;
}

static const chat_io_t fake_io = {.send = fake_send, .close = fake_close};

static fx_t *fx_new(unsigned burst, double rate) {
    fx_t *fx = calloc(1, sizeof(*fx));
    chat_config_t cfg;
    chat_config_defaults(&cfg);
    cfg.resume_ms = 0; /* a closed session is gone at once */
    cfg.rate_burst = burst;
    cfg.rate_limit = rate;
    fx->now = 1000000; /* an arbitrary start: the clock's epoch means nothing */
    fx->chat = chat_new(&cfg, &fake_io, fx);
    chat_set_clock(fx->chat, fake_now, fx);
    return fx;
}

static void fx_free(fx_t *fx) {
    chat_free(fx->chat);
    for (size_t i = 0; i < fx->nframes; i++)
        json_decref(fx->frames[i]);
    free(fx);
    tt_buf_pool_drain();
}

static int setup(void **state) {
    tt_log_set_level(TT_LOG_OFF);
    (void)state;
    return 0;
}

static const char *jstr(const json_t *o, const char *key) {
    return json_string_value(json_object_get(o, key));
}

static long long jint(const json_t *o, const char *key) {
    json_t *v = json_object_get(o, key);
    if (!json_is_integer(v))
        fail_msg("field '%s' is not an integer", key);
    return json_integer_value(v);
}

/* The next frame for conn c not yet looked at, or NULL. */
static json_t *next_frame(fx_t *fx, int c) {
    for (size_t i = fx->cursor[c]; i < fx->nframes; i++)
        if (fx->conn_of[i] == c) {
            fx->cursor[c] = i + 1;
            return fx->frames[i];
        }
    fx->cursor[c] = fx->nframes;
    return NULL;
}

static json_t *take(fx_t *fx, int c, const char *type) {
    json_t *j = next_frame(fx, c);
    if (j == NULL)
        fail_msg("conn %d: expected a '%s' frame, got none", c, type);
    if (jstr(j, "type") == NULL || strcmp(jstr(j, "type"), type) != 0) {
        char *dump = json_dumps(j, JSON_COMPACT);
        fail_msg("conn %d: expected '%s', got %s", c, type, dump);
    }
    return j;
}

static void none(fx_t *fx, int c) {
    json_t *j = next_frame(fx, c);
    if (j != NULL) {
        char *dump = json_dumps(j, JSON_COMPACT);
        fail_msg("conn %d: expected no more frames, got %s", c, dump);
    }
}

/* Frames of this type left for c (consumes them all). */
static size_t count(fx_t *fx, int c, const char *type) {
    size_t n = 0;
    json_t *j;
    while ((j = next_frame(fx, c)) != NULL)
        n += strcmp(jstr(j, "type"), type) == 0;
    return n;
}

static void say(fx_t *fx, int c, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void say(fx_t *fx, int c, const char *fmt, ...) {
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    assert_true(n > 0 && (size_t)n < sizeof(buf));
    chat_session_on_text(fx->chat, fx->s[c], buf, (size_t)n);
}

static void open_conn(fx_t *fx, int c, bool v1) {
    fx->s[c] = chat_session_open(fx->chat, (void *)(uintptr_t)c, v1, "127.0.0.1:1");
}

/* A v1 session logged in to room; welcome and joined consumed. */
static void login_v1(fx_t *fx, int c, const char *nick, const char *room) {
    open_conn(fx, c, true);
    say(fx, c, "{\"type\":\"login\",\"nickname\":\"%s\",\"room\":\"%s\"}", nick, room);
    take(fx, c, "welcome");
    take(fx, c, "joined");
}

static void send_room(fx_t *fx, int c, const char *room, int i) {
    say(fx, c, "{\"type\":\"room\",\"to\":\"%s\",\"message\":{\"text\":\"m%d\"},\"id\":\"m%d\"}",
        room, i, i);
}

/* Sends room message i and expects it to be refused with rate_limited
 * carrying its ref and this retry hint; returns nothing else. */
static void expect_limited(fx_t *fx, int c, const char *room, int i, long long retry_ms) {
    send_room(fx, c, room, i);
    chat_flush(fx->chat);
    json_t *e = take(fx, c, "error");
    assert_string_equal(jstr(e, "code"), "rate_limited");
    char ref[16];
    snprintf(ref, sizeof(ref), "m%d", i);
    assert_string_equal(jstr(e, "ref"), ref);
    assert_int_equal(jint(e, "retry_after_ms"), retry_ms);
    assert_true(strlen(jstr(e, "message")) > 10);
    none(fx, c);
}

/* ---- the message bucket ---- */

static void test_chat_rate_burst_then_refill(void **state) {
    (void)state;
    fx_t *fx = fx_new(20, 10);
    login_v1(fx, 1, "flood", "r");
    login_v1(fx, 2, "calm", "r");
    take(fx, 1, "member_joined");
    for (int i = 0; i < 20; i++)
        send_room(fx, 1, "r", i);
    chat_flush(fx->chat);
    assert_int_equal(count(fx, 1, "room"), 20);
    /* The 21st at the same instant: refused, one token is 100 ms away. */
    expect_limited(fx, 1, "r", 20, 100);
    fx->now += 30;
    expect_limited(fx, 1, "r", 21, 70);
    fx->now += 70;
    send_room(fx, 1, "r", 22);
    chat_flush(fx->chat);
    take(fx, 1, "ack");
    take(fx, 1, "room");
    expect_limited(fx, 1, "r", 23, 100);
    /* The other member got exactly the accepted messages, in order. */
    for (int i = 0; i < 20; i++) {
        json_t *m = take(fx, 2, "room");
        char text[16];
        snprintf(text, sizeof(text), "m%d", i);
        assert_string_equal(jstr(json_object_get(m, "message"), "text"), text);
    }
    assert_string_equal(jstr(json_object_get(take(fx, 2, "room"), "message"), "text"), "m22");
    none(fx, 2);
    /* A long pause refills the bucket to its size, not beyond. */
    fx->now += 3600 * 1000;
    for (int i = 100; i < 120; i++)
        send_room(fx, 1, "r", i);
    chat_flush(fx->chat);
    assert_int_equal(count(fx, 1, "room"), 20);
    expect_limited(fx, 1, "r", 120, 100);
    assert_int_equal(fx->closes[1], 0);
    fx_free(fx);
}

static void test_chat_rate_private_counts_and_buckets_are_per_session(void **state) {
    (void)state;
    fx_t *fx = fx_new(3, 1);
    login_v1(fx, 1, "ana", "r");
    login_v1(fx, 2, "ben", "r");
    take(fx, 1, "member_joined");
    say(fx, 1, "{\"type\":\"private\",\"to\":\"ben\",\"message\":{\"text\":\"a\"}}");
    send_room(fx, 1, "r", 1);
    say(fx, 1, "{\"type\":\"private\",\"to\":\"ben\",\"message\":{\"text\":\"b\"}}");
    say(fx, 1, "{\"type\":\"private\",\"to\":\"ben\",\"message\":{\"text\":\"c\"},\"id\":\"p\"}");
    chat_flush(fx->chat);
    json_t *e = NULL, *j;
    while ((j = next_frame(fx, 1)) != NULL)
        if (strcmp(jstr(j, "type"), "error") == 0)
            e = j;
    assert_non_null(e);
    assert_string_equal(jstr(e, "code"), "rate_limited");
    assert_string_equal(jstr(e, "ref"), "p");
    assert_int_equal(jint(e, "retry_after_ms"), 1000);
    /* ben has his own bucket: ana's flood costs him nothing. */
    for (int i = 0; i < 3; i++)
        send_room(fx, 2, "r", i);
    chat_flush(fx->chat);
    size_t rooms = 0, privates = 0, errors = 0;
    while ((j = next_frame(fx, 2)) != NULL) {
        rooms += strcmp(jstr(j, "type"), "room") == 0;
        privates += strcmp(jstr(j, "type"), "private") == 0;
        errors += strcmp(jstr(j, "type"), "error") == 0;
    }
    assert_int_equal(privates, 2); /* "c" was refused */
    assert_int_equal(rooms, 1 + 3);
    assert_int_equal(errors, 0);
    fx_free(fx);
}

static void test_chat_rate_fractional_rate(void **state) {
    (void)state;
    fx_t *fx = fx_new(1, 0.5); /* one message every two seconds */
    login_v1(fx, 1, "slow", "r");
    send_room(fx, 1, "r", 0);
    chat_flush(fx->chat);
    take(fx, 1, "ack");
    take(fx, 1, "room");
    expect_limited(fx, 1, "r", 1, 2000);
    fx->now += 1999;
    expect_limited(fx, 1, "r", 2, 1);
    fx->now += 1;
    send_room(fx, 1, "r", 3);
    chat_flush(fx->chat);
    take(fx, 1, "ack");
    take(fx, 1, "room");
    fx_free(fx);

    /* A hint never undershoots: 3 a second is a token every 333⅓ ms. */
    fx = fx_new(1, 3);
    login_v1(fx, 1, "thirds", "r");
    send_room(fx, 1, "r", 0);
    chat_flush(fx->chat);
    take(fx, 1, "ack");
    take(fx, 1, "room");
    expect_limited(fx, 1, "r", 1, 334);
    fx->now += 333;
    expect_limited(fx, 1, "r", 2, 1);
    fx->now += 1;
    send_room(fx, 1, "r", 3);
    chat_flush(fx->chat);
    take(fx, 1, "ack");
    fx_free(fx);
}

static void test_chat_rate_off(void **state) {
    (void)state;
    fx_t *fx = fx_new(1, 0);
    login_v1(fx, 1, "bench", "r");
    for (int i = 0; i < 1000; i++) {
        say(fx, 1, "{\"type\":\"room\",\"to\":\"r\",\"message\":{\"text\":\"x\"}}");
        say(fx, 1, "{\"type\":\"ping\"}");
        if (i % 100 == 99)
            chat_flush(fx->chat);
    }
    chat_flush(fx->chat);
    size_t rooms = 0, pongs = 0;
    json_t *j;
    while ((j = next_frame(fx, 1)) != NULL) {
        assert_string_not_equal(jstr(j, "type"), "error");
        rooms += strcmp(jstr(j, "type"), "room") == 0;
        pongs += strcmp(jstr(j, "type"), "pong") == 0;
    }
    assert_int_equal(rooms, 1000);
    assert_int_equal(pongs, 1000);
    assert_int_equal(fx->closes[1], 0);
    fx_free(fx);
}

/* ---- the request bucket ---- */

static void test_chat_rate_every_request_counts(void **state) {
    (void)state;
    fx_t *fx = fx_new(2, 1); /* requests: a burst of 10, 5 a second */
    open_conn(fx, 1, true);
    for (int i = 0; i < 10; i++)
        say(fx, 1, i % 2 ? "not json at all" : "{\"type\":\"ping\"}");
    for (int i = 0; i < 10; i++)
        take(fx, 1, i % 2 ? "error" : "pong");
    say(fx, 1, "{\"type\":\"ping\",\"id\":\"p10\"}");
    json_t *e = take(fx, 1, "error");
    assert_string_equal(jstr(e, "code"), "rate_limited");
    assert_string_equal(jstr(e, "ref"), "p10");
    assert_int_equal(jint(e, "retry_after_ms"), 200);
    /* Junk over the budget is refused the same way, without a ref. */
    say(fx, 1, "[1, 2");
    e = take(fx, 1, "error");
    assert_string_equal(jstr(e, "code"), "rate_limited");
    assert_null(json_object_get(e, "ref"));
    /* A refused login claims nothing. */
    say(fx, 1, "{\"type\":\"login\",\"nickname\":\"late\",\"id\":\"L\"}");
    assert_string_equal(jstr(take(fx, 1, "error"), "code"), "rate_limited");
    assert_null(chat_session_nickname(fx->s[1]));
    fx->now += 200;
    say(fx, 1, "{\"type\":\"login\",\"nickname\":\"late\",\"id\":\"L\"}");
    take(fx, 1, "welcome");
    none(fx, 1);
    fx_free(fx);
}

/* ---- persistent flooding ---- */

static void test_chat_rate_persistent_flooder_is_closed(void **state) {
    (void)state;
    fx_t *fx = fx_new(5, 1);
    login_v1(fx, 1, "flood", "r");
    login_v1(fx, 2, "calm", "r");
    take(fx, 1, "member_joined");
    for (int i = 0; i < 5; i++)
        send_room(fx, 1, "r", i);
    /* The first refusal, and CHAT_FLOOD_STRIKES more that ignore its hint
     * (strikes) within the window, are tolerated... */
    for (int i = 0; i < 1 + CHAT_FLOOD_STRIKES; i++) {
        fx->now += 1; /* well under the refill time */
        send_room(fx, 1, "r", 5 + i);
    }
    chat_flush(fx->chat);
    assert_int_equal(fx->closes[1], 0);
    /* ...one more is not: close 1008, asked for once. */
    send_room(fx, 1, "r", 999);
    assert_int_equal(fx->closes[1], 1);
    assert_int_equal(fx->close_code[1], 1008);
    /* After that, its input is ignored: no frame, no second close. */
    size_t before = fx->nframes;
    send_room(fx, 1, "r", 1000);
    say(fx, 1, "{\"type\":\"ping\"}");
    assert_int_equal(fx->nframes, before);
    assert_int_equal(fx->closes[1], 1);
    chat_flush(fx->chat);
    /* The other member got the five accepted messages, nothing refused. */
    assert_int_equal(count(fx, 2, "room"), 5);
    chat_session_close(fx->chat, fx->s[1], "disconnect");
    json_t *left = take(fx, 2, "member_left");
    assert_string_equal(jstr(left, "nickname"), "flood");
    fx_free(fx);
}

static void test_chat_rate_flood_window_resets(void **state) {
    (void)state;
    fx_t *fx = fx_new(5, 1);
    login_v1(fx, 1, "pulse", "r");
    for (int round = 0; round < 3; round++) {
        /* Each round: the bucket's worth, then as many refusals as the
         * window tolerates (the first, then strikes); a new window starts
         * CHAT_FLOOD_WINDOW_MS after the first strike of the last one. */
        for (int i = 0; i < 5 + 1 + CHAT_FLOOD_STRIKES; i++)
            send_room(fx, 1, "r", i);
        chat_flush(fx->chat);
        assert_int_equal(fx->closes[1], 0);
        fx->now += CHAT_FLOOD_WINDOW_MS;
    }
    fx_free(fx);
}

/* Refused, waits the hint, sends again: however eager, never a strike. */
static void test_chat_rate_client_that_waits_is_never_closed(void **state) {
    (void)state;
    fx_t *fx = fx_new(2, 50); /* hints of 20 ms: hundreds of refusals within one window */
    login_v1(fx, 1, "eager", "r");
    int sent = 0, refused = 0;
    for (int i = 0; i < 400; i++) {
        for (;;) {
            /* pings in between: the request bucket runs out too */
            say(fx, 1, "{\"type\":\"ping\",\"id\":\"p\"}");
            send_room(fx, 1, "r", i);
            chat_flush(fx->chat);
            json_t *j, *e = NULL;
            bool acked = false;
            while ((j = next_frame(fx, 1)) != NULL) {
                if (strcmp(jstr(j, "type"), "ack") == 0)
                    acked = true;
                else if (strcmp(jstr(j, "type"), "error") == 0) {
                    assert_string_equal(jstr(j, "code"), "rate_limited");
                    if (e == NULL || jint(j, "retry_after_ms") > jint(e, "retry_after_ms"))
                        e = j;
                }
            }
            if (acked) {
                sent++;
                break;
            }
            assert_non_null(e);
            refused++;
            fx->now += (uint64_t)jint(e, "retry_after_ms");
        }
    }
    assert_int_equal(sent, 400);
    assert_true(refused > 300); /* it pushed as hard as it could */
    assert_int_equal(fx->closes[1], 0);
    fx_free(fx);
}

/* One that retries at half the hint is not waiting as told: closed. */
static void test_chat_rate_client_that_ignores_hints_is_closed(void **state) {
    (void)state;
    fx_t *fx = fx_new(2, 3);
    login_v1(fx, 1, "pushy", "r");
    int refusals = 0;
    for (int i = 0; i < 1000 && fx->closes[1] == 0; i++) {
        send_room(fx, 1, "r", i);
        chat_flush(fx->chat);
        json_t *j;
        while ((j = next_frame(fx, 1)) != NULL)
            if (strcmp(jstr(j, "type"), "error") == 0) {
                refusals++;
                fx->now += (uint64_t)jint(j, "retry_after_ms") / 2;
            }
    }
    assert_int_equal(fx->closes[1], 1);
    assert_int_equal(fx->close_code[1], 1008);
    /* Every other try comes early: about twice the strikes tolerated. */
    assert_true(refusals > CHAT_FLOOD_STRIKES && refusals < 4 * CHAT_FLOOD_STRIKES);
    fx_free(fx);
}

static void test_chat_rate_legacy_refusals_are_dropped(void **state) {
    (void)state;
    fx_t *fx = fx_new(2, 1);
    login_v1(fx, 1, "watcher", "r");
    open_conn(fx, 2, false);
    say(fx, 2, "{\"type\":\"login\",\"nickname\":\"old\",\"room\":\"r\"}");
    take(fx, 1, "member_joined");
    for (int i = 0; i < 5; i++)
        say(fx, 2, "{\"type\":\"room\",\"to\":\"r\",\"message\":{\"text\":\"t%d\"}}", i);
    chat_flush(fx->chat);
    /* Two delivered to both; the refusals send the legacy client nothing. */
    assert_int_equal(count(fx, 1, "room"), 2);
    size_t n = 0;
    json_t *j;
    while ((j = next_frame(fx, 2)) != NULL) {
        assert_string_equal(jstr(j, "type"), "room");
        n++;
    }
    assert_int_equal(n, 2);
    /* A legacy flooder is closed like any other. */
    for (int i = 0; i < CHAT_FLOOD_STRIKES; i++)
        say(fx, 2, "{\"type\":\"room\",\"to\":\"r\",\"message\":{\"text\":\"x\"}}");
    assert_int_equal(fx->closes[2], 1);
    assert_int_equal(fx->close_code[2], 1008);
    fx_free(fx);
}

/* ---- charged by size, before parsing ---- */

static void say_len(fx_t *fx, int c, const char *data, size_t len) {
    chat_session_on_text(fx->chat, fx->s[c], data, len);
}

/* A frame of exactly len bytes: {"type":"ping","pad":"xxx…"<tail>} where
 * tail is e.g. ,"id":"p1" (or empty). Returns a malloc'd buffer. */
static char *padded_ping(size_t len, const char *tail) {
    char *b = malloc(len + 1);
    int h = snprintf(b, len + 1, "{\"type\":\"ping\",\"pad\":\"");
    size_t t = strlen(tail) + 2; /* "} */
    assert_true((size_t)h + t <= len);
    memset(b + h, 'x', len - (size_t)h - t);
    snprintf(b + len - t, t + 1, "\"%s}", tail);
    assert_int_equal(strlen(b), len);
    return b;
}

static void test_chat_rate_frames_cost_by_size_before_parsing(void **state) {
    (void)state;
    fx_t *fx = fx_new(4, 1); /* requests: a burst of 20, 5 a second */
    open_conn(fx, 1, true);
    /* 1 + len / 16384 tokens: 16,383 bytes cost 1, 16,384 cost 2. */
    char *small = padded_ping(16383, ",\"id\":\"s\""), *two = padded_ping(16384, ",\"id\":\"t\"");
    for (int i = 0; i < 4; i++)
        say_len(fx, 1, small, 16383);
    for (int i = 0; i < 8; i++)
        say_len(fx, 1, two, 16384);
    for (int i = 0; i < 12; i++)
        assert_string_equal(jstr(take(fx, 1, "pong"), "ref"), i < 4 ? "s" : "t");
    /* 20 tokens spent: the next is refused, with its ref read at the end of
     * the frame, and the hint is for the two tokens it needs. */
    say_len(fx, 1, two, 16384);
    json_t *e = take(fx, 1, "error");
    assert_string_equal(jstr(e, "code"), "rate_limited");
    assert_string_equal(jstr(e, "ref"), "t");
    assert_int_equal(jint(e, "retry_after_ms"), 400);
    fx->now += 200;
    say_len(fx, 1, small, 16383);
    take(fx, 1, "pong");
    free(small);
    free(two);

    /* 160 KiB of junk costs 11 tokens: accepted while the bucket holds them
     * (and judged: bad_json), refused before parsing once it does not. */
    fx->now += 4000;
    size_t n = 160 * 1024;
    char *junk = malloc(n);
    memset(junk, '[', n);
    memcpy(junk, "{\"id\":\"j\",\"type\":\"ping\",\"x\":", 28);
    say_len(fx, 1, junk, n);
    e = take(fx, 1, "error");
    assert_string_equal(jstr(e, "code"), "bad_json");
    say_len(fx, 1, junk, n); /* 9 tokens left */
    e = take(fx, 1, "error");
    assert_string_equal(jstr(e, "code"), "rate_limited");
    /* Not parsed: its id (at the start) is not read, and it was not judged. */
    assert_null(json_object_get(e, "ref"));
    assert_int_equal(jint(e, "retry_after_ms"), 400);
    /* The refusal took nothing: the 9 tokens pay for 9 pings. */
    for (int i = 0; i < 9; i++)
        say(fx, 1, "{\"type\":\"ping\",\"id\":\"q%d\"}", i);
    for (int i = 0; i < 9; i++)
        take(fx, 1, "pong");
    /* A small refused frame is parsed for its id, wherever it is. */
    say(fx, 1, "{\"id\":\"first\",\"type\":\"ping\"}");
    e = take(fx, 1, "error");
    assert_string_equal(jstr(e, "code"), "rate_limited");
    assert_string_equal(jstr(e, "ref"), "first");
    /* A large one only when the id ends it, as JSON.stringify puts it. */
    memcpy(junk, "{\"id\":\"j\",\"type\":\"ping\",\"x\":\"", 29);
    memset(junk + 29, 'y', n - 29);
    static const char *tails[] = {"\",\"id\":\"end\"}", "\" , \"id\" : \"end\" }\n"};
    for (size_t k = 0; k < 2; k++) {
        memcpy(junk + n - strlen(tails[k]), tails[k], strlen(tails[k]));
        say_len(fx, 1, junk, n);
        e = take(fx, 1, "error");
        assert_string_equal(jstr(e, "code"), "rate_limited");
        assert_string_equal(jstr(e, "ref"), "end");
    }
    /* Anything else at the end: no ref rather than a wrong one. */
    static const char *no_ref[] = {
        "\",\"id\":\"e\\\"d\"}",      /* an escape in the value */
        "\",\"xid\":\"end\"}",        /* another key */
        "\",\"m\":{\"id\":\"e\"}}",   /* a nested id */
        "\\\",\\\"id\\\":\\\"end\"}", /* in a string: "x":"…\",\"id\":\"end"} */
        "\",\"id\":\"\xc3(\"}",       /* not UTF-8 (never from the transport, but) */
        "\",\"id\":5}",
        "\",\"id\":\"end\"]",
    };
    for (size_t k = 0; k < sizeof(no_ref) / sizeof(no_ref[0]); k++) {
        memset(junk + 29, 'y', n - 29);
        memcpy(junk + n - strlen(no_ref[k]), no_ref[k], strlen(no_ref[k]));
        say_len(fx, 1, junk, n);
        e = take(fx, 1, "error");
        assert_string_equal(jstr(e, "code"), "rate_limited");
        if (json_object_get(e, "ref") != NULL)
            fail_msg("tail %zu: unexpected ref %s", k, jstr(e, "ref"));
    }
    none(fx, 1);
    free(junk);
    fx_free(fx);

    /* The unit is a quarter of max_message: with 1 MiB, 300,000 bytes cost
     * 2 tokens. */
    chat_config_t cfg;
    chat_config_defaults(&cfg);
    cfg.resume_ms = 0;  /* a closed session is gone at once */
    cfg.rate_burst = 1; /* requests: 5 */
    cfg.rate_limit = 1;
    cfg.max_message = 1024 * 1024;
    fx = calloc(1, sizeof(*fx));
    fx->now = 1000000;
    fx->chat = chat_new(&cfg, &fake_io, fx);
    chat_set_clock(fx->chat, fake_now, fx);
    open_conn(fx, 1, true);
    junk = padded_ping(300000, ",\"id\":\"q\"");
    say_len(fx, 1, junk, 300000);
    say_len(fx, 1, junk, 300000);
    say(fx, 1, "{\"type\":\"ping\",\"id\":\"last\"}");
    say(fx, 1, "{\"type\":\"ping\",\"id\":\"over\"}");
    take(fx, 1, "pong");
    take(fx, 1, "pong");
    assert_string_equal(jstr(take(fx, 1, "pong"), "ref"), "last");
    assert_string_equal(jstr(take(fx, 1, "error"), "ref"), "over");
    free(junk);
    fx_free(fx);

    /* A frame larger than the whole bucket takes the whole bucket. */
    fx = fx_new(1, 1); /* requests: 5 */
    open_conn(fx, 1, true);
    junk = padded_ping(200000, ",\"id\":\"big\"");
    say_len(fx, 1, junk, 200000);
    take(fx, 1, "pong");
    say(fx, 1, "{\"type\":\"ping\",\"id\":\"after\"}");
    e = take(fx, 1, "error");
    assert_string_equal(jstr(e, "ref"), "after");
    fx->now += 1000;
    say_len(fx, 1, junk, 200000);
    take(fx, 1, "pong");
    free(junk);
    fx_free(fx);
}

/* A room message costs the request bucket and one token of the message
 * bucket; refused by either, a message of any size the web client sends
 * gets its ref back (the web client matches its pending line by it). */
static void test_chat_rate_large_room_messages_keep_their_ref(void **state) {
    (void)state;
    fx_t *fx = fx_new(4, 1);     /* messages: 4; requests: 20 */
    login_v1(fx, 1, "ana", "r"); /* 19 request tokens left */
    size_t text = 4096;          /* every byte a '"': 8 KiB escaped, past the parse limit */
    char *req = malloc(2 * text + 128);
    int h = snprintf(req, 128, "{\"type\":\"room\",\"to\":\"r\",\"message\":{\"text\":\"");
    for (size_t i = 0; i < text; i++)
        memcpy(req + h + 2 * i, "\\\"", 2);
    int t = snprintf(req + h + 2 * text, 64, "\"},\"id\":\"m1\"}");
    size_t len = (size_t)h + 2 * text + (size_t)t;
    assert_true(len > CHAT_RATE_REF_PARSE_MAX);
    for (int i = 0; i < 5; i++)
        say_len(fx, 1, req, len); /* the fifth: over the message bucket */
    chat_flush(fx->chat);
    json_t *e = take(fx, 1, "error"); /* at once; the others at the flush */
    assert_string_equal(jstr(e, "code"), "rate_limited");
    assert_string_equal(jstr(e, "ref"), "m1");
    assert_non_null(strstr(jstr(e, "message"), "Too many messages"));
    for (int i = 0; i < 4; i++) {
        take(fx, 1, "ack");
        take(fx, 1, "room");
    }
    for (int i = 0; i < 14; i++) /* the request bucket's last 14 */
        say(fx, 1, "{\"type\":\"ping\"}");
    assert_int_equal(count(fx, 1, "pong"), 14);
    fx->now += 1000; /* a token for the message bucket, 5 for the request bucket */
    for (int i = 0; i < 6; i++)
        say_len(fx, 1, req, len); /* 1 sent, 4 over the message bucket, 1 over both */
    chat_flush(fx->chat);
    size_t acks = 0;
    json_t *j;
    e = NULL;
    while ((j = next_frame(fx, 1)) != NULL) {
        acks += strcmp(jstr(j, "type"), "ack") == 0;
        if (strcmp(jstr(j, "type"), "error") == 0)
            e = j;
    }
    assert_int_equal(acks, 1);
    assert_non_null(e); /* the last refusal: the request bucket's, before parsing */
    assert_string_equal(jstr(e, "code"), "rate_limited");
    assert_string_equal(jstr(e, "ref"), "m1");
    assert_non_null(strstr(jstr(e, "message"), "Too many requests"));
    free(req);
    fx_free(fx);
}

/* rooms and who take ceil(N / 1000) more tokens for the N rooms or members
 * they scan, so one connection cannot keep the loop busy with them. */
static void test_chat_rate_scans_cost_in_proportion(void **state) {
    (void)state;
    chat_config_t cfg;
    chat_config_defaults(&cfg);
    cfg.resume_ms = 0; /* a closed session is gone at once */
    cfg.rate_burst = 4;
    cfg.rate_limit = 1;
    cfg.max_rooms = 3000;
    fx_t *fx = calloc(1, sizeof(*fx));
    fx->now = 1000000;
    fx->chat = chat_new(&cfg, &fake_io, fx);
    chat_set_clock(fx->chat, fake_now, fx);
    open_conn(fx, 2, false);
    say(fx, 2, "{\"type\":\"login\",\"nickname\":\"maker\"}");
    for (int i = 0; i < 2500; i++) {
        fx->now += 200;
        say(fx, 2, "{\"type\":\"join\",\"room\":\"room%04d\"}", i);
    }
    chat_stats_t st;
    chat_stats(fx->chat, &st);
    assert_int_equal(st.rooms, 2500);
    fx->now += 10000;
    login_v1(fx, 1, "ana", "room0000"); /* 1 token; 19 left */
    /* A listing costs 1 + 3: four of them, then a refusal with its ref. */
    for (int i = 0; i < 4; i++)
        say(fx, 1, "{\"type\":\"rooms\",\"limit\":1,\"id\":\"r%d\"}", i);
    for (int i = 0; i < 4; i++)
        take(fx, 1, "rooms");
    say(fx, 1, "{\"type\":\"rooms\",\"limit\":1,\"id\":\"r4\"}"); /* 3 left: 1 + 3 is too many */
    json_t *e = take(fx, 1, "error");
    assert_string_equal(jstr(e, "code"), "rate_limited");
    assert_string_equal(jstr(e, "ref"), "r4");
    assert_int_equal(jint(e, "retry_after_ms"), 200); /* the one token short */
    /* The base token was spent; the scan's were not: two pings pass. */
    say(fx, 1, "{\"type\":\"ping\"}");
    say(fx, 1, "{\"type\":\"ping\"}");
    take(fx, 1, "pong");
    take(fx, 1, "pong");
    none(fx, 1);
    /* who scans the room: 1,002 members (ana, maker and 1,000 more) cost 2 more. */
    fx->now += 10000;
    for (int i = 0; i < 1000; i++) {
        char req[96];
        int n = snprintf(req, sizeof(req),
                         "{\"type\":\"login\",\"nickname\":\"c%04d\",\"room\":\"room0000\"}", i);
        chat_session_t *c = chat_session_open(fx->chat, (void *)(uintptr_t)(100 + i), false, "c");
        chat_session_on_text(fx->chat, c, req, (size_t)n);
    }
    assert_int_equal(count(fx, 1, "member_joined"), 1000);
    fx->now += 10000;
    for (int i = 0; i < 6; i++)
        say(fx, 1, "{\"type\":\"who\",\"room\":\"room0000\",\"limit\":1,\"id\":\"w%d\"}", i);
    for (int i = 0; i < 6; i++) {
        json_t *m = take(fx, 1, "members");
        assert_int_equal(jint(m, "count"), 1002);
    }
    say(fx, 1, "{\"type\":\"who\",\"room\":\"room0000\",\"limit\":1,\"id\":\"w6\"}");
    e = take(fx, 1, "error");
    assert_string_equal(jstr(e, "ref"), "w6");
    /* A room nobody is in costs nothing more. */
    say(fx, 1, "{\"type\":\"who\",\"room\":\"nobody\",\"id\":\"w7\"}");
    take(fx, 1, "members");
    fx_free(fx);
}

/* However many rooms there are, a full bucket pays for a listing: the scan
 * costs at most the bucket's size less the request's own token. */
static void test_chat_rate_a_scan_never_costs_more_than_a_full_bucket(void **state) {
    (void)state;
    chat_config_t cfg;
    chat_config_defaults(&cfg);
    cfg.resume_ms = 0;  /* a closed session is gone at once */
    cfg.rate_burst = 1; /* requests: 5 at once, 5 a second */
    cfg.rate_limit = 1;
    cfg.max_rooms = 6000;
    fx_t *fx = calloc(1, sizeof(*fx));
    fx->now = 1000000;
    fx->chat = chat_new(&cfg, &fake_io, fx);
    chat_set_clock(fx->chat, fake_now, fx);
    open_conn(fx, 2, false);
    say(fx, 2, "{\"type\":\"login\",\"nickname\":\"maker\"}");
    for (int i = 0; i < 5000; i++) { /* 5 more tokens' worth of scanning than the bucket */
        fx->now += 200;
        say(fx, 2, "{\"type\":\"join\",\"room\":\"room%04d\"}", i);
    }
    chat_stats_t st;
    chat_stats(fx->chat, &st);
    assert_int_equal(st.rooms, 5000);
    login_v1(fx, 1, "ana", "room0000");
    for (int round = 0; round < 3; round++) {
        fx->now += 1000; /* full again */
        say(fx, 1, "{\"type\":\"rooms\",\"limit\":2,\"id\":\"a%d\"}", round);
        assert_int_equal(jint(take(fx, 1, "rooms"), "count"), 5000);
        say(fx, 1, "{\"type\":\"ping\",\"id\":\"b%d\"}", round); /* the bucket is empty */
        json_t *e = take(fx, 1, "error");
        assert_string_equal(jstr(e, "code"), "rate_limited");
        assert_int_equal(jint(e, "retry_after_ms"), 200);
    }
    none(fx, 1);
    fx_free(fx);
}

/* ---- welcome.limits ---- */

static void test_chat_rate_welcome_limits(void **state) {
    (void)state;
    chat_config_t cfg;
    chat_config_defaults(&cfg);
    cfg.resume_ms = 0; /* a closed session is gone at once */
    assert_int_equal(cfg.rate_burst, 20);
    assert_true(cfg.rate_limit == 10);
    cfg.rate_limit = 2.5;
    assert_true(chat_config_add_limit(&cfg, "max_queue", 1048576));
    assert_true(chat_config_add_limit(&cfg, "ping_interval_ms", 30000));
    fx_t *fx = calloc(1, sizeof(*fx));
    fx->chat = chat_new(&cfg, &fake_io, fx);
    open_conn(fx, 1, true);
    say(fx, 1, "{\"type\":\"login\",\"nickname\":\"ana\"}");
    json_t *limits = json_object_get(take(fx, 1, "welcome"), "limits");
    assert_int_equal(jint(limits, "rate_burst"), 20);
    assert_true(json_real_value(json_object_get(limits, "rate_limit")) == 2.5);
    assert_int_equal(jint(limits, "request_burst"), 20 * CHAT_RATE_REQUEST_FACTOR);
    assert_true(json_number_value(json_object_get(limits, "request_rate_limit")) ==
                2.5 * CHAT_RATE_REQUEST_FACTOR);
    assert_int_equal(jint(limits, "flood_strikes"), CHAT_FLOOD_STRIKES);
    assert_int_equal(jint(limits, "flood_window_ms"), CHAT_FLOOD_WINDOW_MS);
    assert_int_equal(jint(limits, "max_queue"), 1048576);
    assert_int_equal(jint(limits, "ping_interval_ms"), 30000);
    assert_int_equal(jint(limits, "max_text"), 4096);
    fx_free(fx);

    /* Off: every rate limit reads 0; whole rates are integers. */
    fx = fx_new(20, 0);
    open_conn(fx, 1, true);
    say(fx, 1, "{\"type\":\"login\",\"nickname\":\"ben\"}");
    limits = json_object_get(take(fx, 1, "welcome"), "limits");
    assert_int_equal(jint(limits, "rate_limit"), 0);
    assert_int_equal(jint(limits, "rate_burst"), 0);
    assert_int_equal(jint(limits, "request_rate_limit"), 0);
    fx_free(fx);

    /* The extra list is bounded. */
    chat_config_defaults(&cfg);
    cfg.resume_ms = 0; /* a closed session is gone at once */
    for (int i = 0; i < CHAT_LIMITS_EXTRA_MAX; i++)
        assert_true(chat_config_add_limit(&cfg, "x", i));
    assert_false(chat_config_add_limit(&cfg, "y", 1));
    assert_int_equal(cfg.nlimits_extra, CHAT_LIMITS_EXTRA_MAX);
}

/* Without an injected clock the chat reads CLOCK_MONOTONIC_COARSE: a burst
 * sent at once is still cut at the bucket's size. */
static void test_chat_rate_default_clock(void **state) {
    (void)state;
    chat_config_t cfg;
    chat_config_defaults(&cfg);
    cfg.resume_ms = 0; /* a closed session is gone at once */
    cfg.rate_burst = 3;
    cfg.rate_limit = 0.001; /* one token every 1000 s: no refill during the test */
    fx_t *fx = calloc(1, sizeof(*fx));
    fx->chat = chat_new(&cfg, &fake_io, fx);
    login_v1(fx, 1, "ana", "r");
    for (int i = 0; i < 5; i++)
        send_room(fx, 1, "r", i);
    chat_flush(fx->chat);
    size_t rooms = 0, limited = 0;
    json_t *j;
    while ((j = next_frame(fx, 1)) != NULL) {
        rooms += strcmp(jstr(j, "type"), "room") == 0;
        if (strcmp(jstr(j, "type"), "error") == 0) {
            assert_string_equal(jstr(j, "code"), "rate_limited");
            assert_true(jint(j, "retry_after_ms") > 990000);
            limited++;
        }
    }
    assert_int_equal(rooms, 3);
    assert_int_equal(limited, 2);
    fx_free(fx);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_chat_rate_burst_then_refill, setup),
        cmocka_unit_test_setup(test_chat_rate_private_counts_and_buckets_are_per_session, setup),
        cmocka_unit_test_setup(test_chat_rate_fractional_rate, setup),
        cmocka_unit_test_setup(test_chat_rate_off, setup),
        cmocka_unit_test_setup(test_chat_rate_every_request_counts, setup),
        cmocka_unit_test_setup(test_chat_rate_persistent_flooder_is_closed, setup),
        cmocka_unit_test_setup(test_chat_rate_flood_window_resets, setup),
        cmocka_unit_test_setup(test_chat_rate_client_that_waits_is_never_closed, setup),
        cmocka_unit_test_setup(test_chat_rate_client_that_ignores_hints_is_closed, setup),
        cmocka_unit_test_setup(test_chat_rate_legacy_refusals_are_dropped, setup),
        cmocka_unit_test_setup(test_chat_rate_frames_cost_by_size_before_parsing, setup),
        cmocka_unit_test_setup(test_chat_rate_large_room_messages_keep_their_ref, setup),
        cmocka_unit_test_setup(test_chat_rate_scans_cost_in_proportion, setup),
        cmocka_unit_test_setup(test_chat_rate_a_scan_never_costs_more_than_a_full_bucket, setup),
        cmocka_unit_test_setup(test_chat_rate_welcome_limits, setup),
        cmocka_unit_test_setup(test_chat_rate_default_clock, setup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
