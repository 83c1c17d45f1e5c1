/* Tests for src/store/store_chat.c: a real chat_t on a real store through the
 * adapter, with a fake transport that decodes every frame. Ids given by the
 * chat become row ids and continue after the stored ones; joined, since and
 * history read the store; private messages are not stored; a full store
 * turns into `unavailable` for the sender and nothing delivered; and the
 * commit-time statistics. */
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>
#include <jansson.h>

#include "chat/chat.h"
#include "core/log.h"
#include "store/store.h"
#include "store/store_chat.h"
#include "ws/ws_msg.h"

#define CONNS 4
#define MAX_FRAMES 1024

typedef struct fx_s {
    char dir[64];
    char path[128];
    store_t *st;
    chat_t *chat;
    store_chat_t *sc;
    chat_session_t *s[CONNS];
    json_t *frames[CONNS][MAX_FRAMES]; /* decoded, in order, per conn */
    size_t nframes[CONNS];
    size_t cursor[CONNS];
} fx_t;

/* Decodes one unmasked FIN text frame into its JSON object. */
static json_t *decode(const tt_buf_t *b) {
    const uint8_t *p = tt_buf_ptr(b);
    assert_true(b->len >= 2);
    assert_int_equal(p[0], 0x81);
    uint64_t len = p[1] & 0x7F;
    size_t h = 2;
    if (len == 126) {
        len = (uint64_t)p[2] << 8 | p[3];
        h = 4;
    } else if (len == 127) {
        len = 0;
        for (int i = 0; i < 8; i++)
            len = len << 8 | p[2 + i];
        h = 10;
    }
    assert_int_equal(b->len, h + len);
    json_t *j = json_loadb((const char *)p + h, (size_t)len, 0, NULL);
    assert_non_null(j);
    return j;
}

static void fake_send(void *ctx, void *conn, tt_msg_t *msg) {
    tt_buf_t *frame = ws_msg_frame(msg);
    fx_t *fx = ctx;
    uintptr_t c = (uintptr_t)conn;
    assert_true(c < CONNS && fx->nframes[c] < MAX_FRAMES);
    fx->frames[c][fx->nframes[c]++] = decode(frame);
}

static void fake_close(void *ctx, void *conn, uint16_t code, const char *reason) {
    (void)ctx;
    fail_msg("unexpected close of conn %p: %u %s", conn, code, reason);
}

static const chat_io_t fake_io = {.send = fake_send, .close = fake_close};

static store_t *open_store(const char *path, uint64_t max_bytes) {
    store_config_t cfg;
    store_config_defaults(&cfg);
    cfg.path = path;
    cfg.max_bytes = max_bytes;
    store_t *st = NULL;
    char err[512];
    int rc = store_open(&cfg, &st, err, sizeof(err));
    if (rc != 0)
        fail_msg("store_open: %d %s", rc, err);
    return st;
}

/* A chat on the fixture's store, with sessions 0..CONNS-1 opened (v1). */
static void chat_up(fx_t *fx) {
    fx->chat = chat_new(NULL, &fake_io, fx);
    assert_int_equal(store_chat_attach(fx->chat, fx->st, &fx->sc), 0);
    for (uintptr_t c = 0; c < CONNS; c++)
        fx->s[c] = chat_session_open(fx->chat, (void *)c, true, "test");
}

static void chat_down(fx_t *fx) {
    chat_flush(fx->chat);
    chat_free(fx->chat);
    store_chat_free(fx->sc);
    fx->chat = NULL;
    fx->sc = NULL;
    for (int c = 0; c < CONNS; c++) {
        for (size_t i = 0; i < fx->nframes[c]; i++)
            json_decref(fx->frames[c][i]);
        fx->nframes[c] = 0;
        fx->cursor[c] = 0;
    }
}

static int setup(void **state) {
    tt_log_set_level(TT_LOG_OFF); /* the full-store test logs failures on purpose */
    fx_t *fx = calloc(1, sizeof(*fx));
    snprintf(fx->dir, sizeof(fx->dir), "/tmp/tt-store-chat-XXXXXX");
    assert_non_null(mkdtemp(fx->dir));
    snprintf(fx->path, sizeof(fx->path), "%s/h.db", fx->dir);
    *state = fx;
    return 0;
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static int teardown(void **state) {
    fx_t *fx = *state;
    if (fx->chat != NULL)
        chat_down(fx);
    store_close(fx->st);
    nftw(fx->dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
    free(fx);
    tt_buf_pool_drain();
    return 0;
}

static void say(fx_t *fx, int c, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void say(fx_t *fx, int c, const char *fmt, ...) {
    char text[8192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    chat_session_on_text(fx->chat, fx->s[c], text, strlen(text));
}

/* The next frame of conn c whose type is `type`, skipping others; fails if none. */
static json_t *next_of(fx_t *fx, int c, const char *type) {
    while (fx->cursor[c] < fx->nframes[c]) {
        json_t *j = fx->frames[c][fx->cursor[c]++];
        if (strcmp(json_string_value(json_object_get(j, "type")), type) == 0)
            return j;
    }
    fail_msg("conn %d: no %s frame", c, type);
    return NULL;
}

static int64_t jint(json_t *o, const char *key) {
    json_t *v = json_object_get(o, key);
    assert_true(json_is_integer(v));
    return (int64_t)json_integer_value(v);
}

static void nop_rec(void *ctx, const store_rec_t *rec) {
    (void)ctx;
    (void)rec;
}

static int count_rows(store_t *st, const char *room) {
    return store_range(st, room, strlen(room), 0, 0, 200, nop_rec, NULL, NULL);
}

/* ------------------------------------------------------------------------ */

static void test_store_chat_ids_are_row_ids_and_continue_after_stored_ones(void **state) {
    fx_t *fx = *state;
    fx->st = open_store(fx->path, 0);
    /* Three rows written before the chat starts (a previous run). */
    store_msg_t m[3];
    for (int i = 0; i < 3; i++)
        m[i] = (store_msg_t){.kind = STORE_KIND_ROOM,
                             .room = "#r",
                             .room_len = 2,
                             .from = "old",
                             .from_len = 3,
                             .text = "before",
                             .text_len = 6,
                             .ts = 1};
    assert_int_equal(store_append_batch(fx->st, m, 3), 0);
    assert_int_equal(m[2].id, 3);

    chat_up(fx);
    say(fx, 0, "{\"type\":\"login\",\"nickname\":\"ana\",\"room\":\"#r\"}");
    json_t *joined = next_of(fx, 0, "joined");
    json_t *hist = json_object_get(joined, "history");
    assert_int_equal(json_array_size(hist), 3);
    assert_int_equal(jint(json_array_get(hist, 2), "id"), 3);
    assert_string_equal(json_string_value(json_object_get(json_array_get(hist, 0), "from")), "old");
    assert_string_equal(json_string_value(json_object_get(json_array_get(hist, 0), "to")), "#r");

    say(fx, 0, "{\"type\":\"room\",\"to\":\"#r\",\"message\":{\"text\":\"hola\"},\"id\":\"a\"}");
    chat_flush(fx->chat);
    json_t *ack = next_of(fx, 0, "ack");
    json_t *echo = next_of(fx, 0, "room");
    assert_int_equal(jint(ack, "message_id"), 4);
    assert_int_equal(jint(echo, "id"), 4);
    assert_int_equal(store_last_id(fx->st), 4);
    int64_t echo_ts = jint(echo, "ts");
    chat_down(fx);

    /* A new chat on the same store (a restart): ids go on after 4. */
    store_close(fx->st);
    fx->st = open_store(fx->path, 0);
    chat_up(fx);
    say(fx, 1, "{\"type\":\"login\",\"nickname\":\"ben\",\"room\":\"#r\"}");
    hist = json_object_get(next_of(fx, 1, "joined"), "history");
    assert_int_equal(json_array_size(hist), 4);
    json_t *last = json_array_get(hist, 3);
    assert_int_equal(jint(last, "id"), 4);
    assert_int_equal(jint(last, "ts"), echo_ts);
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(last, "message"), "text")), "hola");
    say(fx, 1, "{\"type\":\"room\",\"to\":\"#r\",\"message\":{\"text\":\"otra\"}}");
    chat_flush(fx->chat);
    /* Ids continue above the block reserved before the restart (gaps are
     * allowed; reuse is not), and the stored row has the id delivered. */
    int64_t id5 = jint(next_of(fx, 1, "room"), "id");
    assert_true(id5 > 4);
    assert_int_equal(store_last_id(fx->st), id5);
}

/* Private messages are not stored, yet their ids are never given out again
 * after a restart: the chat reserves ids in the store ahead of use. */
static void test_store_chat_private_ids_not_reused_after_restart(void **state) {
    fx_t *fx = *state;
    fx->st = open_store(fx->path, 0);
    chat_up(fx);
    say(fx, 0, "{\"type\":\"login\",\"nickname\":\"ana\"}");
    say(fx, 1, "{\"type\":\"login\",\"nickname\":\"ben\"}");
    say(fx, 0, "{\"type\":\"private\",\"to\":\"ben\",\"message\":{\"text\":\"psst\"}}");
    chat_flush(fx->chat);
    int64_t pid = jint(next_of(fx, 1, "private"), "id");
    assert_int_equal(count_rows(fx->st, "#x"), 0);
    chat_down(fx);
    store_close(fx->st);
    fx->st = open_store(fx->path, 0);
    chat_up(fx);
    say(fx, 0, "{\"type\":\"login\",\"nickname\":\"ana\",\"room\":\"#x\"}");
    say(fx, 0, "{\"type\":\"room\",\"to\":\"#x\",\"message\":{\"text\":\"later\"}}");
    chat_flush(fx->chat);
    assert_true(jint(next_of(fx, 0, "room"), "id") > pid);
}

static void test_store_chat_one_commit_per_flush(void **state) {
    fx_t *fx = *state;
    fx->st = open_store(fx->path, 0);
    chat_up(fx);
    say(fx, 0, "{\"type\":\"login\",\"nickname\":\"ana\",\"room\":\"#g\"}");
    say(fx, 1, "{\"type\":\"login\",\"nickname\":\"ben\",\"room\":\"#g\"}");
    for (int i = 0; i < 5; i++)
        say(fx, i % 2, "{\"type\":\"room\",\"to\":\"#g\",\"message\":{\"text\":\"m%d\"}}", i);
    /* Accepted, not yet stored nor delivered. */
    assert_int_equal(store_last_id(fx->st), 0);
    assert_int_equal(count_rows(fx->st, "#g"), 0);
    chat_flush(fx->chat);
    assert_int_equal(count_rows(fx->st, "#g"), 5);
    store_chat_stats_t s;
    store_chat_stats(fx->sc, &s);
    assert_int_equal(s.commits, 1);
    assert_int_equal(s.messages, 5);
    assert_int_equal(s.max_batch, 5);
    assert_int_equal(s.failures, 0);
    uint64_t total = 0;
    for (int i = 0; i < STORE_CHAT_HIST_BUCKETS; i++)
        total += s.hist[i];
    assert_int_equal(total, 1);
    /* Nothing pending: no empty transaction. */
    chat_flush(fx->chat);
    store_chat_stats(fx->sc, &s);
    assert_int_equal(s.commits, 1);
}

static void test_store_chat_since_and_history_read_the_store(void **state) {
    fx_t *fx = *state;
    fx->st = open_store(fx->path, 0);
    chat_up(fx);
    say(fx, 0, "{\"type\":\"login\",\"nickname\":\"ana\",\"room\":\"#s\"}");
    for (int i = 0; i < 12; i++) {
        say(fx, 0, "{\"type\":\"room\",\"to\":\"#s\",\"message\":{\"text\":\"t%d\"}}", i);
        chat_flush(fx->chat);
    }
    say(fx, 1, "{\"type\":\"login\",\"nickname\":\"ben\"}");
    say(fx, 1, "{\"type\":\"join\",\"room\":\"#s\",\"since\":9}");
    json_t *j = next_of(fx, 1, "joined");
    json_t *hist = json_object_get(j, "history");
    assert_int_equal(json_array_size(hist), 3);
    assert_int_equal(jint(json_array_get(hist, 0), "id"), 10);
    assert_true(json_is_false(json_object_get(j, "more")));
    say(fx, 1, "{\"type\":\"history\",\"room\":\"#s\",\"before\":10,\"limit\":4}");
    json_t *h = next_of(fx, 1, "history");
    json_t *msgs = json_object_get(h, "messages");
    assert_int_equal(json_array_size(msgs), 4);
    for (int i = 0; i < 4; i++)
        assert_int_equal(jint(json_array_get(msgs, (size_t)i), "id"), 6 + i);
    assert_true(json_is_true(json_object_get(h, "more")));
}

static void test_store_chat_private_messages_are_not_stored(void **state) {
    fx_t *fx = *state;
    fx->st = open_store(fx->path, 0);
    chat_up(fx);
    say(fx, 0, "{\"type\":\"login\",\"nickname\":\"ana\",\"room\":\"#p\"}");
    say(fx, 1, "{\"type\":\"login\",\"nickname\":\"ben\",\"room\":\"#p\"}");
    say(fx, 0, "{\"type\":\"private\",\"to\":\"ben\",\"message\":{\"text\":\"psst\"}}");
    chat_flush(fx->chat);
    json_t *p = next_of(fx, 1, "private");
    assert_string_equal(json_string_value(json_object_get(json_object_get(p, "message"), "text")),
                        "psst");
    assert_int_equal(store_last_id(fx->st), 0);
    store_chat_stats_t s;
    store_chat_stats(fx->sc, &s);
    assert_int_equal(s.commits, 0);
    /* Nor is it readable through any room or conversation key. */
    char key[80];
    assert_true(store_dm_key("ana", "ben", key, sizeof(key)) > 0);
    assert_int_equal(store_range(fx->st, key, strlen(key), 0, 0, 10, nop_rec, NULL, NULL), 0);
}

static void test_store_chat_full_store_refuses_with_unavailable(void **state) {
    fx_t *fx = *state;
    fx->st = open_store(fx->path, 64 * 1024);
    chat_up(fx);
    say(fx, 0, "{\"type\":\"login\",\"nickname\":\"ana\",\"room\":\"#f\"}");
    say(fx, 1, "{\"type\":\"login\",\"nickname\":\"ben\",\"room\":\"#f\"}");
    static char big[3001];
    memset(big, 'x', 3000);
    int stored = 0;
    json_t *err = NULL;
    for (int i = 0; i < 19 && err == NULL; i++) {
        say(fx, 0,
            "{\"type\":\"room\",\"to\":\"#f\",\"message\":{\"text\":\"%d %s\"},\"id\":\"m%d\"}", i,
            big, i);
        chat_flush(fx->chat);
        while (fx->cursor[0] < fx->nframes[0] && err == NULL) {
            json_t *j = fx->frames[0][fx->cursor[0]++];
            const char *type = json_string_value(json_object_get(j, "type"));
            if (strcmp(type, "error") == 0)
                err = j;
            else if (strcmp(type, "ack") == 0)
                stored++;
        }
    }
    assert_non_null(err);
    assert_string_equal(json_string_value(json_object_get(err, "code")), "unavailable");
    assert_true(stored > 0);
    /* ben got exactly the stored ones. */
    int live = 0;
    for (size_t i = 0; i < fx->nframes[1]; i++)
        if (strcmp(json_string_value(json_object_get(fx->frames[1][i], "type")), "room") == 0)
            live++;
    assert_int_equal(live, stored);
    assert_int_equal(count_rows(fx->st, "#f"), stored);
    store_chat_stats_t s;
    store_chat_stats(fx->sc, &s);
    assert_int_equal(s.failures, 1);
    assert_int_equal(s.commits, (uint64_t)stored);
}

/* Table: histograms and the percentile bounds they give. */
static void test_store_chat_stats_percentile(void **state) {
    (void)state;
    static const struct {
        uint64_t us[8]; /* durations to count (0-terminated unless the first) */
        size_t n;
        double p;
        uint64_t want;
    } cases[] = {
        {{0}, 0, 50, 0},        /* nothing committed */
        {{0}, 1, 50, 0},        /* one 0 µs commit */
        {{1}, 1, 99, 1},        /* bucket 1: [1, 2) */
        {{28}, 1, 50, 28},      /* bound 31, but never above max */
        {{28, 40}, 2, 50, 31},  /* 28 is in [16, 32) */
        {{28, 40}, 2, 100, 40}, /* the max */
        {{10, 10, 10, 10, 10, 10, 10, 900}, 8, 50, 15},
        {{10, 10, 10, 10, 10, 10, 10, 900}, 8, 99, 900},
        {{10, 10, 10, 10, 10, 10, 10, 900}, 8, 87.5, 15},
        {{UINT64_C(1) << 40}, 1, 50, UINT64_C(1) << 40}, /* the open last bucket */
    };
    for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
        store_chat_stats_t s;
        memset(&s, 0, sizeof(s));
        for (size_t i = 0; i < cases[k].n; i++) {
            uint64_t us = cases[k].us[i];
            unsigned b = 0;
            for (uint64_t v = us; v != 0 && b < STORE_CHAT_HIST_BUCKETS - 1; v >>= 1)
                b++;
            s.hist[b]++;
            if (us > s.max_us)
                s.max_us = us;
        }
        uint64_t got = store_chat_stats_percentile(&s, cases[k].p);
        if (got != cases[k].want)
            fail_msg("case %zu: p%.1f = %llu, want %llu", k, cases[k].p, (unsigned long long)got,
                     (unsigned long long)cases[k].want);
    }
    char line[256];
    store_chat_stats_t s = {.commits = 2, .messages = 7, .total_us = 60, .max_us = 40};
    s.hist[5] = 1;
    s.hist[6] = 1;
    store_chat_stats_format(&s, line, sizeof(line));
    assert_non_null(strstr(line, "2 commits of 7 messages"));
    assert_non_null(strstr(line, "mean 30 us"));
    assert_non_null(strstr(line, "max 40 us"));
}

static void test_store_chat_attach_refuses_null(void **state) {
    (void)state;
    store_chat_t *sc = (store_chat_t *)1;
    assert_int_equal(store_chat_attach(NULL, NULL, &sc), STORE_E_INVALID);
    assert_null(sc);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(
            test_store_chat_ids_are_row_ids_and_continue_after_stored_ones, setup, teardown),
        cmocka_unit_test_setup_teardown(test_store_chat_private_ids_not_reused_after_restart, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_store_chat_one_commit_per_flush, setup, teardown),
        cmocka_unit_test_setup_teardown(test_store_chat_since_and_history_read_the_store, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_store_chat_private_messages_are_not_stored, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_store_chat_full_store_refuses_with_unavailable, setup,
                                        teardown),
        cmocka_unit_test(test_store_chat_stats_percentile),
        cmocka_unit_test(test_store_chat_attach_refuses_null),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
