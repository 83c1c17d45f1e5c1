/* Unit tests of src/store/: appends and ids, paging backwards, since
 * recovery, retention by count and by age, ids across reopen and retention,
 * room keys (case and '#' folded in appends and reads), schema migration
 * (from nothing and from the previous release's v1 fixture), and the failures a server meets at
 * start-up (damaged, foreign or unreachable files) and while running (full disk, I/O errors). */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "core/log.h"
#include "store/store.h"
#include "store_test.h"

#define DAY_MS INT64_C(86400000)
#define NOW_MS INT64_C(1790000000000) /* a fixed "now" for retention by age */

/* ------------------------------------------------------------------------ */
/* Helpers */

static store_msg_t room_msg(const char *room, const char *from, const char *text, size_t text_len,
                            int64_t ts) {
    return (store_msg_t){.kind = STORE_KIND_ROOM,
                         .room = room,
                         .room_len = strlen(room),
                         .from = from,
                         .from_len = strlen(from),
                         .text = text,
                         .text_len = text_len,
                         .ts = ts};
}

static store_msg_t dm_msg(const char *key, const char *from, const char *to, const char *text,
                          int64_t ts) {
    store_msg_t m = room_msg(key, from, text, strlen(text), ts);
    m.kind = STORE_KIND_PRIVATE;
    m.to = to;
    m.to_len = strlen(to);
    return m;
}

/* Appends one room message; returns its id. */
static int64_t put(store_t *st, const char *room, const char *from, const char *text, int64_t ts) {
    store_msg_t m = room_msg(room, from, text, strlen(text), ts);
    assert_int_equal(store_append_batch(st, &m, 1), 0);
    assert_true(m.id > 0);
    return m.id;
}

/* What a read delivered, copied. */
typedef struct {
    size_t n;
    int64_t ids[1024];
    int64_t ts[1024];
    char text[1024][64];
    char room[1024][72];
} got_t;

static void collect(void *ctx, const store_rec_t *r) {
    got_t *g = ctx;
    assert_true(g->n < 1024);
    g->ids[g->n] = r->id;
    g->ts[g->n] = r->ts;
    size_t len = r->text_len < 63 ? r->text_len : 63; /* a prefix of long texts */
    memcpy(g->text[g->n], r->text, len);
    g->text[g->n][len] = '\0';
    assert_true(r->room_len < 72);
    assert_int_equal(strlen(r->room), r->room_len);
    memcpy(g->room[g->n], r->room, r->room_len + 1);
    g->n++;
}

static got_t *got_new(void) {
    got_t *g = calloc(1, sizeof(*g));
    assert_non_null(g);
    return g;
}

static void count_rec(void *ctx, const store_rec_t *r) {
    (void)r;
    (*(size_t *)ctx)++;
}

/* How many messages the room holds, read through the paging API. */
static size_t room_count(store_t *st, const char *room) {
    size_t count = 0;
    bool more = true;
    int n = store_history(st, room, 0, 100000, count_rec, &count, &more);
    assert_int_equal(n, (int)count);
    assert_false(more);
    return count;
}

static int raw_int(const char *path, const char *sql) {
    sqlite3 *db;
    sqlite3_stmt *s;
    int v = -1;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &s, NULL), SQLITE_OK);
    if (sqlite3_step(s) == SQLITE_ROW)
        v = sqlite3_column_int(s, 0);
    sqlite3_finalize(s);
    sqlite3_close(db);
    return v;
}

static void write_file(const char *path, const void *data, size_t n, off_t at, bool trunc) {
    int fd = open(path, O_WRONLY | O_CREAT | (trunc ? O_TRUNC : 0), 0644);
    assert_true(fd >= 0);
    assert_int_equal(pwrite(fd, data, n, at), (ssize_t)n);
    close(fd);
}

static void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* ------------------------------------------------------------------------ */
/* Appends */

static void test_store_append_batch_ids_increase(void **state) {
    (void)state;
    store_t *st = open_or_fail(":memory:");
    static const char nul_text[] = {'a', '\0', 'b'};
    store_msg_t batch[5] = {
        room_msg("#a", "ana", "one", 3, 10),          room_msg("#b", "bob", "two", 3, 11),
        room_msg("#a", "ana", nul_text, 3, 12),       room_msg("#a", "eve", "", 0, 13),
        dm_msg("@ana@bob", "ana", "bob", "psst", 14),
    };
    assert_int_equal(store_last_id(st), 0);
    assert_int_equal(store_append_batch(st, batch, 5), 0);
    for (size_t i = 0; i < 5; i++) {
        assert_true(batch[i].id > 0);
        if (i > 0)
            assert_true(batch[i].id > batch[i - 1].id);
    }
    int64_t last = batch[4].id;
    assert_int_equal(store_last_id(st), last);
    assert_true(put(st, "#b", "bob", "later", 20) > last);
    assert_int_equal(store_append_batch(st, batch, 0), 0);

    /* Fields come back as stored, embedded NUL included. */
    got_t *g = got_new();
    assert_int_equal(store_last(st, "#a", 10, collect, g), 3);
    assert_int_equal(g->ids[0], batch[0].id);
    assert_string_equal(g->text[0], "one");
    assert_int_equal(g->ts[0], 10);
    assert_memory_equal(g->text[1], nul_text, 3);
    assert_string_equal(g->text[2], "");
    free(g);

    /* The private message is under its conversation key only. */
    g = got_new();
    assert_int_equal(store_last(st, "@ana@bob", 5, collect, g), 1);
    assert_int_equal(g->ids[0], batch[4].id);
    free(g);
    store_close(st);
}

static void on_rec_check_private(void *ctx, const store_rec_t *r) {
    int *n = ctx;
    assert_int_equal(r->kind, STORE_KIND_PRIVATE);
    assert_non_null(r->to);
    assert_int_equal(r->to_len, 3);
    assert_string_equal(r->to, "bob");
    assert_string_equal(r->from, "ana");
    assert_int_equal(r->from_len, 3);
    (*n)++;
}

static void on_rec_check_room(void *ctx, const store_rec_t *r) {
    int *n = ctx;
    assert_int_equal(r->kind, STORE_KIND_ROOM);
    assert_null(r->to);
    assert_int_equal(r->to_len, 0);
    (*n)++;
}

static void test_store_append_kind_and_recipient(void **state) {
    (void)state;
    store_t *st = open_or_fail(":memory:");
    store_msg_t m[2] = {dm_msg("@ana@bob", "ana", "bob", "x", 1),
                        room_msg("lobby", "ana", "y", 1, 1)};
    assert_int_equal(store_append_batch(st, m, 2), 0);
    int n = 0;
    assert_int_equal(store_last(st, "@ana@bob", 5, on_rec_check_private, &n), 1);
    assert_int_equal(n, 1);
    n = 0;
    assert_int_equal(store_last(st, "lobby", 5, on_rec_check_room, &n), 1);
    assert_int_equal(n, 1);
    store_close(st);
}

/* Each case spoils the second message of an otherwise valid batch. */
static void spoil(store_msg_t *m, int which) {
    switch (which) {
    case 0:
        m->room = NULL;
        break;
    case 1:
        m->room_len = 0;
        break;
    case 2:
        m->from = NULL;
        break;
    case 3:
        m->from_len = 0;
        break;
    case 4:
        m->text = NULL;
        break; /* with text_len 1 */
    case 5:
        m->to = "bob", m->to_len = 3;
        break; /* a room message with a recipient */
    case 6:
        m->kind = STORE_KIND_PRIVATE;
        break; /* a private one without */
    case 7:
        m->kind = (store_kind_t)7;
        break;
    case 8:
        m->id = 1;
        break; /* not after the first message's id */
    case 9:
        m->id = STORE_ID_MAX + 1;
        break;
    }
}

static void test_store_append_invalid_stores_nothing(void **state) {
    (void)state;
    store_t *st = open_or_fail(":memory:");
    for (int which = 0; which < 10; which++) {
        store_msg_t m[2] = {room_msg("#a", "ana", "ok", 2, 1), room_msg("#a", "ana", "x", 1, 1)};
        spoil(&m[1], which);
        if (store_append_batch(st, m, 2) != STORE_E_INVALID)
            fail_msg("case %d was accepted", which);
        assert_int_equal(m[0].id, 0);
        assert_int_equal(m[1].id, 0);
    }
    assert_int_equal(room_count(st, "#a"), 0);
    assert_int_equal(store_last_id(st), 0);
    assert_string_equal(store_strerror(STORE_E_INVALID), "invalid argument");
    assert_string_equal(store_strerror(-1), "unknown store error");
    store_close(st);
}

/* Chat gives ids when it accepts a message; the store keeps them, refuses
 * any that would go back, and continues after them with its own. */
static void test_store_append_keeps_caller_ids(void **state) {
    (void)state;
    store_t *st = open_or_fail(":memory:");
    store_msg_t m[3] = {room_msg("#a", "ana", "x", 1, 1), room_msg("#a", "ana", "y", 1, 1),
                        room_msg("#a", "ana", "z", 1, 1)};
    m[0].id = 5;
    m[1].id = 9;
    assert_int_equal(store_append_batch(st, m, 3), 0);
    assert_int_equal(m[0].id, 5);
    assert_int_equal(m[1].id, 9);
    assert_int_equal(m[2].id, 10);
    assert_int_equal(store_last_id(st), 10);
    store_msg_t back = room_msg("#a", "ana", "old", 3, 1);
    back.id = 10;
    assert_int_equal(store_append_batch(st, &back, 1), STORE_E_INVALID);
    back.id = 7; /* unused, but behind */
    assert_int_equal(store_append_batch(st, &back, 1), STORE_E_INVALID);
    back.id = STORE_ID_MAX;
    assert_int_equal(store_append_batch(st, &back, 1), 0);
    assert_int_equal(store_last_id(st), STORE_ID_MAX);
    got_t *g = got_new();
    assert_int_equal(store_last(st, "#a", 10, collect, g), 4);
    assert_int_equal(g->ids[3], STORE_ID_MAX);
    free(g);
    store_close(st);
}

/* ------------------------------------------------------------------------ */
/* Reads */

/* Fills #main with n messages and #other with some between them. */
static void fill_two_rooms(store_t *st, int n, int64_t *main_ids) {
    for (int i = 0; i < n; i++) {
        char text[32];
        snprintf(text, sizeof(text), "m%d", i);
        main_ids[i] = put(st, "#main", "ana", text, 1000 + i);
        if (i % 3 == 0)
            put(st, "#other", "bob", "noise", 1000 + i);
    }
}

static void test_store_history_pages_every_message_once_in_order(void **state) {
    (void)state;
    store_t *st = open_or_fail(":memory:");
    enum { N = 237 };
    int64_t ids[N];
    fill_two_rooms(st, N, ids);

    const unsigned limits[] = {1, 7, 10, 50, 200, 236, 237, 238, 500};
    for (size_t li = 0; li < sizeof(limits) / sizeof(limits[0]); li++) {
        unsigned limit = limits[li];
        int64_t before = 0;
        int expect_end = N; /* ids[expect_end - 1] is the next expected newest */
        for (int pages = 0;; pages++) {
            assert_true(pages <= N);
            got_t *g = got_new();
            bool more = false;
            int n = store_history(st, "#main", before, limit, collect, g, &more);
            int want = expect_end < (int)limit ? expect_end : (int)limit;
            assert_int_equal(n, want);
            /* The page is the newest `want` before `before`, oldest first. */
            for (int k = 0; k < n; k++) {
                assert_int_equal(g->ids[k], ids[expect_end - want + k]);
                assert_string_equal(g->room[k], "main"); /* the stored key */
                char text[32];
                snprintf(text, sizeof(text), "m%d", expect_end - want + k);
                assert_string_equal(g->text[k], text);
            }
            expect_end -= want;
            assert_int_equal(more, expect_end > 0);
            before = n > 0 ? g->ids[0] : before;
            free(g);
            if (!more)
                break;
        }
        assert_int_equal(expect_end, 0);
    }

    /* limit 0 delivers nothing but still tells whether there is history. */
    bool more = false;
    got_t *g = got_new();
    assert_int_equal(store_history(st, "#main", 0, 0, collect, g, &more), 0);
    assert_true(more);
    assert_int_equal(store_history(st, "#nobody", 0, 10, collect, g, &more), 0);
    assert_false(more);
    assert_int_equal(store_history(st, "#main", ids[0], 10, collect, g, &more), 0);
    assert_false(more);
    assert_int_equal(g->n, 0);
    assert_int_equal(store_history(st, "#main", -1, 10, collect, g, &more), STORE_E_INVALID);
    free(g);
    store_close(st);
}

static void test_store_since_exact_and_more(void **state) {
    (void)state;
    store_t *st = open_or_fail(":memory:");
    enum { N = 40 };
    int64_t ids[N];
    fill_two_rooms(st, N, ids);

    /* Every possible "last seen" id, with a limit that fits and one that does not. */
    for (int seen = -1; seen < N; seen++) {
        int64_t after = seen < 0 ? 0 : ids[seen];
        int missed = N - 1 - seen;

        got_t *g = got_new();
        bool more = true;
        assert_int_equal(store_since(st, "#main", after, 200, collect, g, &more), missed);
        assert_false(more);
        for (int k = 0; k < missed; k++)
            assert_int_equal(g->ids[k], ids[seen + 1 + k]);
        free(g);

        /* Limit 5: the newest 5, and more when more were missed... */
        g = got_new();
        int n = store_since(st, "#main", after, 5, collect, g, &more);
        int want = missed < 5 ? missed : 5;
        assert_int_equal(n, want);
        assert_int_equal(more, missed > 5);
        for (int k = 0; k < want; k++)
            assert_int_equal(g->ids[k], ids[N - want + k]);
        /* ...and history before the first fills the gap exactly. */
        if (more) {
            got_t *h = got_new();
            bool hmore = false;
            int gap = missed - 5;
            assert_int_equal(
                store_history(st, "#main", g->ids[0], (unsigned)gap, collect, h, &hmore), gap);
            for (int k = 0; k < gap; k++)
                assert_int_equal(h->ids[k], ids[seen + 1 + k]);
            assert_int_equal(hmore, seen >= 0);
            free(h);
        }
        free(g);
    }
    bool more;
    got_t *g = got_new();
    assert_int_equal(store_since(st, "#main", -5, 5, collect, g, &more), STORE_E_INVALID);
    assert_int_equal(store_since(st, "#main", ids[N - 1] + 1000, 5, collect, g, &more), 0);
    assert_false(more);
    free(g);
    store_close(st);
}

static void test_store_range_between_bounds(void **state) {
    (void)state;
    store_t *st = open_or_fail(":memory:");
    int64_t ids[30];
    fill_two_rooms(st, 30, ids);
    const char room_buf[] = "#mainXYZ"; /* room names come with a length */
    got_t *g = got_new();
    bool more = false;
    assert_int_equal(store_range(st, room_buf, 5, ids[5], ids[20], 10, collect, g, &more), 10);
    assert_true(more);
    for (int k = 0; k < 10; k++)
        assert_int_equal(g->ids[k], ids[10 + k]);
    free(g);
    g = got_new();
    assert_int_equal(store_range(st, room_buf, 5, ids[5], ids[20], 14, collect, g, &more), 14);
    assert_false(more);
    assert_int_equal(g->ids[0], ids[6]);
    assert_int_equal(g->ids[13], ids[19]);
    free(g);
    g = got_new();
    assert_int_equal(store_range(st, room_buf, 8, 0, 0, 10, collect, g, &more), 0);
    assert_int_equal(store_range(st, NULL, 0, 0, 0, 10, collect, g, &more), STORE_E_INVALID);
    assert_int_equal(store_range(st, room_buf, 5, 0, 0, 10, NULL, g, &more), STORE_E_INVALID);
    free(g);
    store_close(st);
}

static void test_store_last_returns_newest_oldest_first(void **state) {
    (void)state;
    store_t *st = open_or_fail(":memory:");
    int64_t ids[60];
    fill_two_rooms(st, 60, ids);
    got_t *g = got_new();
    assert_int_equal(store_last(st, "#main", 50, collect, g), 50);
    for (int k = 0; k < 50; k++)
        assert_int_equal(g->ids[k], ids[10 + k]);
    free(g);
    store_close(st);
}

static void test_store_dm_key_is_symmetric(void **state) {
    (void)state;
    char a[32], b[32];
    assert_int_equal(store_dm_key("Bob", "ana", a, sizeof(a)), 8);
    assert_string_equal(a, "@ana@bob");
    assert_int_equal(store_dm_key("ANA", "bob", b, sizeof(b)), 8);
    assert_string_equal(a, b);
    char small[8];
    assert_int_equal(store_dm_key("ana", "bob", small, sizeof(small)), STORE_E_INVALID);
    char exact[9];
    assert_int_equal(store_dm_key("ana", "bob", exact, sizeof(exact)), 8);
    assert_int_equal(store_dm_key("", "bob", a, sizeof(a)), STORE_E_INVALID);
}

/* ------------------------------------------------------------------------ */
/* Retention */

static void test_store_retention_by_count_keeps_newest_per_room(void **state) {
    (void)state;
    store_t *st = open_or_fail(":memory:");
    int64_t a[30], c[12];
    for (int i = 0; i < 30; i++) {
        a[i] = put(st, "#a", "ana", "a", NOW_MS);
        if (i < 3)
            put(st, "#b", "bob", "b", NOW_MS);
        if (i < 12)
            c[i] = put(st, "#c", "cy", "c", NOW_MS);
    }
    store_maint_config_t cfg;
    store_maint_config_defaults(&cfg);
    cfg.retain_messages = 10;
    cfg.chunk_rows = 4; /* several small transactions */
    store_retention_stats_t rs = {0};
    assert_int_equal(store_retention_run(st, &cfg, NOW_MS, &rs), 0);
    assert_int_equal(rs.deleted_by_count, 20 + 2);
    assert_int_equal(rs.deleted_by_age, 0);
    assert_true(rs.transactions >= 22 / 4);

    got_t *g = got_new();
    assert_int_equal(store_history(st, "#a", 0, 100, collect, g, NULL), 10);
    for (int k = 0; k < 10; k++)
        assert_int_equal(g->ids[k], a[20 + k]);
    free(g);
    assert_int_equal(room_count(st, "#b"), 3);
    g = got_new();
    assert_int_equal(store_history(st, "#c", 0, 100, collect, g, NULL), 10);
    assert_int_equal(g->ids[0], c[2]);
    free(g);

    /* A second pass has nothing to do. */
    memset(&rs, 0, sizeof(rs));
    assert_int_equal(store_retention_run(st, &cfg, NOW_MS, &rs), 0);
    assert_int_equal(rs.deleted_by_count, 0);

    store_stats_t stats;
    store_stats(st, &stats);
    assert_int_equal(stats.passes, 2);
    assert_int_equal(stats.retention.deleted_by_count, 22);
    store_close(st);
}

static void test_store_retention_by_age_uses_injected_now(void **state) {
    (void)state;
    store_t *st = open_or_fail(":memory:");
    const int64_t ages_days[] = {30, 10, 8, 7, 6, 1, 0};
    int64_t ids[7];
    for (int i = 0; i < 7; i++)
        ids[i] = put(st, i % 2 ? "#x" : "#y", "ana", "t", NOW_MS - ages_days[i] * DAY_MS + 1);
    store_maint_config_t cfg;
    store_maint_config_defaults(&cfg);
    cfg.retain_days = 7;
    cfg.chunk_rows = 2;
    store_retention_stats_t rs = {0};
    assert_int_equal(store_retention_run(st, &cfg, NOW_MS, &rs), 0);
    /* 30, 10 and 8 days old go; exactly 7 days (plus 1 ms) stays. */
    assert_int_equal(rs.deleted_by_age, 3);
    got_t *g = got_new();
    assert_int_equal(store_since(st, "#x", 0, 100, collect, g, NULL), 2);
    assert_int_equal(g->ids[0], ids[3]);
    assert_int_equal(g->ids[1], ids[5]);
    free(g);
    g = got_new();
    assert_int_equal(store_since(st, "#y", 0, 100, collect, g, NULL), 2);
    assert_int_equal(g->ids[0], ids[4]);
    assert_int_equal(g->ids[1], ids[6]);
    free(g);

    /* A day later, the 7-day-old one goes too. */
    memset(&rs, 0, sizeof(rs));
    assert_int_equal(store_retention_run(st, &cfg, NOW_MS + DAY_MS, &rs), 0);
    assert_int_equal(rs.deleted_by_age, 1);
    assert_int_equal(room_count(st, "#x"), 1);
    store_close(st);
}

/* Ids never go back: not after retention removed the newest rows, not after
 * a restart. */
static void test_store_ids_increase_across_retention_and_reopen(void **state) {
    (void)state;
    const char *path = tmp_path("ids.db");
    store_t *st = open_or_fail(path);
    int64_t last = 0;
    for (int i = 0; i < 10; i++)
        last = put(st, "#r", "ana", "old", NOW_MS - 100 * DAY_MS);
    store_maint_config_t cfg;
    store_maint_config_defaults(&cfg);
    cfg.retain_days = 1;
    assert_int_equal(store_retention_run(st, &cfg, NOW_MS, NULL), 0);
    assert_int_equal(room_count(st, "#r"), 0);
    int64_t id = put(st, "#r", "ana", "new", NOW_MS);
    assert_true(id > last);
    store_close(st);

    st = open_or_fail(path);
    got_t *g = got_new();
    assert_int_equal(store_last(st, "#r", 10, collect, g), 1);
    assert_int_equal(g->ids[0], id);
    assert_string_equal(g->text[0], "new");
    free(g);
    /* Delete everything again, restart, and append. */
    assert_int_equal(store_retention_run(st, &cfg, NOW_MS + 2 * DAY_MS, NULL), 0);
    assert_int_equal(room_count(st, "#r"), 0);
    store_close(st);
    st = open_or_fail(path);
    assert_int_equal(store_last_id(st), id); /* though that message is gone */
    assert_true(put(st, "#r", "ana", "newer", NOW_MS) > id);
    store_close(st);
}

static void test_store_reopen_keeps_history(void **state) {
    (void)state;
    const char *path = tmp_path("reopen.db");
    store_t *st = open_or_fail(path);
    assert_string_equal(store_path(st), path);
    int64_t ids[25];
    fill_two_rooms(st, 25, ids);
    store_close(st);
    st = open_or_fail(path);
    got_t *g = got_new();
    assert_int_equal(store_last(st, "#main", 100, collect, g), 25);
    for (int k = 0; k < 25; k++)
        assert_int_equal(g->ids[k], ids[k]);
    free(g);
    store_close(st);
    assert_int_equal(
        raw_int(path, "SELECT count(*) FROM pragma_journal_mode WHERE journal_mode = 'wal'"), 1);
}

/* ------------------------------------------------------------------------ */
/* Room keys */

static void test_store_room_key_folds_case_and_hash(void **state) {
    (void)state;
    char buf[STORE_ROOM_MAX + 1];
    assert_int_equal(store_room_key("#Python-Dev", 11, buf, sizeof(buf)), 10);
    assert_string_equal(buf, "python-dev");
    assert_int_equal(store_room_key("python-dev", 10, buf, sizeof(buf)), 10);
    assert_string_equal(buf, "python-dev");
    /* One '#' only; other bytes as they are. */
    assert_int_equal(store_room_key("##A\xc3\x89", 5, buf, sizeof(buf)), 4);
    assert_string_equal(buf, "#a\xc3\x89");
    assert_int_equal(store_room_key("", 0, buf, sizeof(buf)), STORE_E_INVALID);
    assert_int_equal(store_room_key("#", 1, buf, sizeof(buf)), STORE_E_INVALID);
    assert_int_equal(store_room_key("@ana@bob", 8, buf, sizeof(buf)), STORE_E_INVALID);
    assert_int_equal(store_room_key("#@x", 3, buf, sizeof(buf)), STORE_E_INVALID);
    assert_int_equal(store_room_key(NULL, 0, buf, sizeof(buf)), STORE_E_INVALID);
    assert_int_equal(store_room_key("#abc", 4, buf, 3), STORE_E_INVALID); /* no room for NUL */
    assert_int_equal(store_room_key("#abc", 4, buf, 4), 3);
    char longest[STORE_ROOM_MAX + 2];
    memset(longest, 'R', sizeof(longest));
    assert_int_equal(store_room_key(longest, STORE_ROOM_MAX, buf, sizeof(buf)), STORE_ROOM_MAX);
    assert_int_equal(store_room_key(longest, STORE_ROOM_MAX + 1, buf, sizeof(buf)),
                     STORE_E_INVALID);
}

/* Every spelling writes to and reads from one room; records carry the key;
 * a conversation key is not folded into a room. */
static void test_store_rooms_fold_in_append_and_reads(void **state) {
    (void)state;
    store_t *st = open_or_fail(":memory:");
    int64_t a = put(st, "#Python-Dev", "ana", "uno", 1);
    int64_t b = put(st, "python-dev", "bob", "dos", 2);
    int64_t c = put(st, "#python-dev", "cy", "tres", 3);
    put(st, "#python-devs", "cy", "other room", 4);
    const char *spellings[] = {"#Python-Dev", "python-dev", "#PYTHON-DEV", "Python-Dev"};
    for (size_t k = 0; k < 4; k++) {
        got_t *g = got_new();
        assert_int_equal(store_last(st, spellings[k], 10, collect, g), 3);
        assert_int_equal(g->ids[0], a);
        assert_int_equal(g->ids[1], b);
        assert_int_equal(g->ids[2], c);
        for (int i = 0; i < 3; i++)
            assert_string_equal(g->room[i], "python-dev");
        free(g);
    }
    got_t *g = got_new();
    bool more = true;
    assert_int_equal(store_since(st, "#PYTHON-dev", a, 10, collect, g, &more), 2);
    assert_false(more);
    assert_int_equal(store_history(st, "python-DEV", c, 1, collect, g, &more), 1);
    assert_true(more);
    assert_int_equal(g->ids[2], b);
    assert_int_equal(store_range(st, "#Python-Dev", 11, a, c, 10, collect, g, NULL), 1);
    free(g);
    /* Names that have no key are refused, by writes and reads alike. */
    store_msg_t bad = room_msg("#", "ana", "x", 1, 1);
    assert_int_equal(store_append_batch(st, &bad, 1), STORE_E_INVALID);
    bad = room_msg("@ana@bob", "ana", "x", 1, 1);
    assert_int_equal(store_append_batch(st, &bad, 1), STORE_E_INVALID);
    g = got_new();
    assert_int_equal(store_last(st, "#", 10, collect, g), STORE_E_INVALID);
    free(g);
    /* A conversation key reads its own rows, as given. */
    store_msg_t dm = dm_msg("@ana@bob", "Ana", "bob", "hola", 5);
    assert_int_equal(store_append_batch(st, &dm, 1), 0);
    assert_int_equal(room_count(st, "@ana@bob"), 1);
    assert_int_equal(room_count(st, "#python-dev"), 3);
    store_close(st);
}

/* ------------------------------------------------------------------------ */
/* Schema */

static void test_store_migrates_v0_database(void **state) {
    (void)state;
    /* A database from before the store had a schema: no user_version, and
     * a table of someone else's, which must survive. */
    const char *path = tmp_path("v0.db");
    assert_int_equal(raw_exec(path, "CREATE TABLE notes (x TEXT); INSERT INTO notes VALUES ('hi');"
                                    "PRAGMA user_version = 0;"),
                     SQLITE_OK);
    store_t *st = open_or_fail(path);
    assert_int_equal(put(st, "#r", "ana", "first", 1), 1);
    store_close(st);
    assert_int_equal(raw_int(path, "PRAGMA user_version"), STORE_SCHEMA_VERSION);
    assert_int_equal(raw_int(path, "SELECT count(*) FROM notes"), 1);
    assert_int_equal(raw_int(path, "SELECT count(*) FROM messages"), 1);
    assert_int_equal(
        raw_int(path, "SELECT count(*) FROM sqlite_master WHERE name = 'messages_room_id'"), 1);
}

/* The fixture tests/unit/store/fixtures/NAME into a new database file at
 * path: v1.sql (made by make-v1.sh there), or v1-c0e3830.sql (a database
 * the release before schema v2 wrote, dumped). */
static void load_fixture(const char *path, const char *name) {
    const char *src = getenv("TT_SOURCE_DIR");
    if (src == NULL)
        fail_msg("TT_SOURCE_DIR is not set (ctest sets it)");
    char fixture[512];
    snprintf(fixture, sizeof(fixture), "%s/tests/unit/store/fixtures/%s", src, name);
    FILE *f = fopen(fixture, "r");
    if (f == NULL)
        fail_msg("%s: %s", fixture, strerror(errno));
    static char sql[16384];
    size_t n = fread(sql, 1, sizeof(sql) - 1, f);
    assert_true(feof(f)); /* all of it */
    fclose(f);
    sql[n] = '\0';
    sqlite3 *db;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    char *msg = NULL;
    int rc = sqlite3_exec(db, sql, NULL, NULL, &msg);
    if (rc != SQLITE_OK)
        fail_msg("loading %s: %s", fixture, msg ? msg : "?");
    sqlite3_close(db);
}

static void expect_v1_rooms_merged(store_t *st) {
    got_t *g = got_new();
    assert_int_equal(store_last(st, "#Python-Dev", 10, collect, g), 4);
    const int64_t ids[] = {1, 2, 4, 6};
    const char *texts[] = {"uno", "dos", "tres", "cuatro"};
    for (int k = 0; k < 4; k++) {
        assert_int_equal(g->ids[k], ids[k]);
        assert_string_equal(g->text[k], texts[k]);
        assert_string_equal(g->room[k], "python-dev");
    }
    free(g);
    g = got_new();
    assert_int_equal(store_last(st, "other", 10, collect, g), 1);
    assert_int_equal(g->ids[0], 3);
    free(g);
    g = got_new();
    assert_int_equal(store_last(st, "@ana@bob", 10, collect, g), 1);
    assert_int_equal(g->ids[0], 5);
    assert_string_equal(g->text[0], "secreto");
    free(g);
}

static void on_conv_count(void *ctx, const store_conv_t *c) {
    assert_string_equal(c->key, "@ana@bob");
    assert_int_equal(c->last_id, 5);
    (*(int *)ctx)++;
}

/* A database written by the previous release (schema v1): the three
 * spellings of one room merge with their ids, the private row stays, the
 * new tables work, ids go on after the reserved ones, and opening again
 * changes nothing. */
/* A database the previous release itself wrote (its server, its rooms
 * #Python-Dev, python-dev, #python-dev and Other): the spellings merge,
 * ids kept, in order, and ids go on after the ones it reserved. */
static void test_store_migrates_the_previous_release(void **state) {
    (void)state;
    const char *path = tmp_path("c0e3830.db");
    load_fixture(path, "v1-c0e3830.sql");
    assert_int_equal(raw_int(path, "PRAGMA user_version"), 1);
    store_t *st = open_or_fail(path);
    assert_int_equal(raw_int(path, "PRAGMA user_version"), STORE_SCHEMA_VERSION);
    got_t *g = got_new();
    assert_int_equal(store_last(st, "#python-dev", 50, collect, g), 6);
    const int64_t want[] = {1, 2, 3, 5, 6, 7};
    for (int i = 0; i < 6; i++)
        assert_int_equal(g->ids[i], want[i]);
    assert_string_equal(g->text[0], "#Python-Dev 0");
    assert_string_equal(g->text[5], "#python-dev 1");
    free(g);
    assert_int_equal(room_count(st, "other"), 2);
    assert_true(store_last_id(st) >= 10000);
    store_close(st);
    st = open_or_fail(path); /* again: nothing changes */
    assert_int_equal(room_count(st, "Python-Dev"), 6);
    store_close(st);
}

static void test_store_migrates_v1_database(void **state) {
    (void)state;
    const char *path = tmp_path("v1.db");
    load_fixture(path, "v1.sql");
    assert_int_equal(raw_int(path, "PRAGMA user_version"), 1);
    assert_int_equal(raw_int(path, "SELECT count(DISTINCT room) FROM messages"), 5);

    store_t *st = open_or_fail(path);
    assert_int_equal(raw_int(path, "PRAGMA user_version"), STORE_SCHEMA_VERSION);
    assert_int_equal(store_last_id(st), 10);
    expect_v1_rooms_merged(st);
    /* The private row to the letter: its key, sender and recipient. */
    assert_int_equal(raw_int(path,
                             "SELECT count(*) FROM messages WHERE id = 5 AND kind = 1"
                             " AND room = '@ana@bob' AND sender = 'Ana' AND recipient = 'Bob'"),
                     1);
    /* Its conversation is listed on both sides, from the stored row. */
    int n = 0;
    assert_int_equal(store_conversations(st, 1, "ana", 3, 10, on_conv_count, &n), 1);
    assert_int_equal(store_conversations(st, 2, "BOB", 3, 10, on_conv_count, &n), 1);
    assert_int_equal(n, 2);
    /* The new tables are there and usable. */
    store_account_t acc;
    assert_int_equal(store_account_create(st, "Ana", 3, "$argon2id$x", 7, &acc), 0);
    uint8_t tok[32] = {1};
    assert_int_equal(store_token_add(st, acc.id, tok, 7), 0);
    assert_int_equal(store_read_set(st, acc.id, "#Python-Dev", 11, 4), 0);
    assert_int_equal(put(st, "#PYTHON-DEV", "ana", "cinco", 8), 11);
    store_close(st);

    /* A second open is a no-op: the schema is not touched again (its
     * cookie moves with every DDL statement), nor are the rooms. */
    int cookie = raw_int(path, "PRAGMA schema_version");
    st = open_or_fail(path);
    assert_int_equal(raw_int(path, "PRAGMA user_version"), STORE_SCHEMA_VERSION);
    assert_int_equal(raw_int(path, "PRAGMA schema_version"), cookie);
    assert_int_equal(raw_int(path, "SELECT count(*) FROM messages WHERE room = 'python-dev'"), 5);
    got_t *g = got_new();
    assert_int_equal(store_last(st, "python-dev", 10, collect, g), 5);
    assert_int_equal(g->ids[4], 11);
    free(g);
    assert_int_equal(store_account_get(st, "ANA", 3, &acc), 0);
    assert_string_equal(acc.hash, "$argon2id$x");
    int64_t up_to = 0;
    assert_int_equal(store_read_get(st, acc.id, "python-dev", 10, &up_to), 0);
    assert_int_equal(up_to, 4);
    store_close(st);
    assert_int_equal(raw_int(path, "SELECT count(*) FROM sqlite_master WHERE name IN"
                                   " ('accounts', 'tokens', 'read_markers', 'conversations')"),
                     4);
}

static void test_store_failed_migration_leaves_database_untouched(void **state) {
    (void)state;
    const char *path = tmp_path("foreign.db");
    assert_int_equal(raw_exec(path, "CREATE TABLE messages (body BLOB);"), SQLITE_OK);
    store_config_t cfg;
    store_config_defaults(&cfg);
    cfg.path = path;
    store_t *st = (store_t *)&cfg; /* must come back NULL */
    char err[512];
    int rc = store_open(&cfg, &st, err, sizeof(err));
    assert_int_equal(rc, STORE_E_CORRUPT);
    assert_null(st);
    assert_non_null(strstr(err, path));
    assert_non_null(strstr(err, "migrating the schema from v0 to v1"));
    assert_non_null(strstr(err, "already exists"));
    assert_int_equal(raw_int(path, "PRAGMA user_version"), 0);
    assert_int_equal(raw_int(path, "SELECT count(*) FROM sqlite_master WHERE type = 'index'"), 0);
}

static void expect_refused_version(const char *name, int version) {
    const char *path = tmp_path(name);
    char sql[64];
    snprintf(sql, sizeof(sql), "PRAGMA user_version = %d;", version);
    assert_int_equal(raw_exec(path, sql), SQLITE_OK);
    store_config_t cfg;
    store_config_defaults(&cfg);
    cfg.path = path;
    store_t *st = NULL;
    char err[512];
    assert_int_equal(store_open(&cfg, &st, err, sizeof(err)), STORE_E_VERSION);
    assert_null(st);
    assert_non_null(strstr(err, path));
    snprintf(sql, sizeof(sql), "schema version %d", version);
    assert_non_null(strstr(err, sql));
    assert_int_equal(raw_int(path, "PRAGMA user_version"), version);
}

static void test_store_refuses_newer_schema(void **state) {
    (void)state;
    /* The next version (a newer server's v5) and a far one. */
    assert_int_equal(STORE_SCHEMA_VERSION, 4);
    expect_refused_version("v5.db", 5);
    expect_refused_version("v99.db", 99);
}

/* ------------------------------------------------------------------------ */
/* Start-up failures: a clear error with the path and the reason */

static void expect_open_error(const char *path, int want_rc, const char *want_reason) {
    store_config_t cfg;
    store_config_defaults(&cfg);
    cfg.path = path;
    store_t *st = NULL;
    char err[512] = "unchanged";
    int rc = store_open(&cfg, &st, err, sizeof(err));
    if (rc != want_rc || strstr(err, path) == NULL || strstr(err, want_reason) == NULL)
        fail_msg("open(%s): got %d \"%s\", want %d and \"%s\"", path, rc, err, want_rc,
                 want_reason);
    assert_null(st);
    print_message("  error: %s\n", err);
}

static void test_store_open_garbage_file(void **state) {
    (void)state;
    const char *path = tmp_path("garbage.db");
    char junk[8192];
    for (size_t i = 0; i < sizeof(junk); i++)
        junk[i] = (char)(i * 7919 % 251);
    write_file(path, junk, sizeof(junk), 0, true);
    expect_open_error(path, STORE_E_CORRUPT, "file is not a database");
}

static void test_store_open_damaged_database(void **state) {
    (void)state;
    const char *path = tmp_path("damaged.db");
    store_t *st = open_or_fail(path);
    for (int b = 0; b < 20; b++) {
        store_msg_t m[50];
        for (int i = 0; i < 50; i++)
            m[i] = room_msg(b % 2 ? "#odd" : "#even", "ana",
                            "a message long enough to fill some pages of the file", 52, i);
        assert_int_equal(store_append_batch(st, m, 50), 0);
    }
    store_close(st); /* checkpoints everything into the main file */
    struct stat sb;
    assert_int_equal(stat(path, &sb), 0);
    assert_true(sb.st_size > 8 * 4096);
    /* Overwrite pages 3..6 with junk, keeping the header valid. */
    char junk[4 * 4096];
    memset(junk, 0x5a, sizeof(junk));
    write_file(path, junk, sizeof(junk), 2 * 4096, false);
    expect_open_error(path, STORE_E_CORRUPT, "damaged");
}

static void test_store_open_unreachable_paths(void **state) {
    (void)state;
    /* The parent is a file. */
    const char *file = tmp_path("plain-file");
    write_file(file, "x", 1, 0, true);
    char path[300];
    snprintf(path, sizeof(path), "%s/x.db", file);
    expect_open_error(path, STORE_E_CANTOPEN, "is not a directory");
    /* The grandparent is missing: only one level is created. */
    snprintf(path, sizeof(path), "%s/no/such/x.db", tmpdir);
    expect_open_error(path, STORE_E_CANTOPEN, "cannot create directory");
    /* The path is a directory. */
    expect_open_error(tmpdir, STORE_E_CANTOPEN, "unable to open database file");
}

/* One store per file: a second open of the same file (here in the same
 * process, as a second server would in another) is refused, and works again
 * once the first is closed. A ":memory:" database is never shared. */
static void test_store_open_refuses_a_file_in_use(void **state) {
    (void)state;
    const char *path = tmp_path("inuse.db");
    store_t *first = open_or_fail(path);
    put(first, "#u", "ana", "mine", NOW_MS);
    store_config_t cfg;
    store_config_defaults(&cfg);
    cfg.path = path;
    store_t *second = NULL;
    char err[512];
    assert_int_equal(store_open(&cfg, &second, err, sizeof(err)), STORE_E_INUSE);
    assert_null(second);
    assert_non_null(strstr(err, path));
    assert_non_null(strstr(err, "in use by another process"));
    assert_string_equal(store_strerror(STORE_E_INUSE), "the database is in use by another process");
    /* The refused open disturbed nothing: the first store still writes. */
    assert_true(put(first, "#u", "ana", "still mine", NOW_MS) > 0);
    store_close(first);
    second = open_or_fail(path);
    assert_int_equal(room_count(second, "#u"), 2);
    store_close(second);

    store_t *m1 = open_or_fail(":memory:");
    store_t *m2 = open_or_fail(":memory:");
    store_close(m1);
    store_close(m2);
}

static void test_store_open_creates_parent_dir(void **state) {
    (void)state;
    const char *path = tmp_path("data/tertulia.db");
    store_t *st = open_or_fail(path);
    put(st, "#r", "ana", "hi", 1);
    store_close(st);
    struct stat sb;
    assert_int_equal(stat(tmp_path("data"), &sb), 0);
    assert_true(S_ISDIR(sb.st_mode));
}

/* Permission denied, as an unprivileged user (the test drops root in a
 * child if it has it: root ignores file permissions). */
static void test_store_open_permission_denied(void **state) {
    (void)state;
    const char *dir = tmp_path("locked");
    assert_int_equal(mkdir(dir, 0555), 0);
    const char *path = tmp_path("locked/x.db");
    int pipefd[2];
    assert_int_equal(pipe(pipefd), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(pipefd[0]);
        if (geteuid() == 0 && (setgid(65534) != 0 || setuid(65534) != 0))
            _exit(3);
        store_config_t cfg;
        store_config_defaults(&cfg);
        cfg.path = path;
        store_t *st = NULL;
        char err[512] = "";
        int rc = store_open(&cfg, &st, err, sizeof(err));
        dprintf(pipefd[1], "%d %s", rc, err);
        _exit(0);
    }
    close(pipefd[1]);
    char buf[600] = "";
    ssize_t n, total = 0;
    while ((n = read(pipefd[0], buf + total, sizeof(buf) - 1 - (size_t)total)) > 0)
        total += n;
    close(pipefd[0]);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    int rc = atoi(buf);
    if (rc != STORE_E_CANTOPEN || strstr(buf, path) == NULL ||
        strstr(buf, "Permission denied") == NULL)
        fail_msg("child got: %s", buf);
}

/* ------------------------------------------------------------------------ */
/* Failures while running: refuse, stay usable */

static int append_until_error(store_t *st, int64_t *last_ok, int *batches_ok) {
    static char text[1000];
    memset(text, 'z', sizeof(text));
    for (int b = 0; b < 10000; b++) {
        store_msg_t m[20];
        for (int i = 0; i < 20; i++)
            m[i] = room_msg("#full", "ana", text, sizeof(text), NOW_MS);
        int rc = store_append_batch(st, m, 20);
        if (rc != 0) {
            for (int i = 0; i < 20; i++)
                assert_int_equal(m[i].id, 0);
            return rc;
        }
        *last_ok = m[19].id;
        (*batches_ok)++;
    }
    return 0;
}

static void test_store_full_disk_refuses_and_keeps_working(void **state) {
    (void)state;
    store_config_t cfg;
    store_config_defaults(&cfg);
    cfg.path = tmp_path("full.db");
    cfg.max_bytes = 256 * 1024;
    store_t *st = NULL;
    char err[512];
    assert_int_equal(store_open(&cfg, &st, err, sizeof(err)), 0);

    tt_log_set_level(TT_LOG_OFF); /* the expected failures would log errors */
    int64_t last_ok = 0;
    int batches = 0;
    assert_int_equal(append_until_error(st, &last_ok, &batches), STORE_E_UNAVAILABLE);
    assert_true(batches > 2);
    /* Reads still work and hold exactly what was committed. */
    assert_int_equal(room_count(st, "#full"), (size_t)batches * 20);
    got_t *g = got_new();
    assert_int_equal(store_last(st, "#full", 1, collect, g), 1);
    assert_int_equal(g->ids[0], last_ok);
    free(g);
    /* Still full: refused again, cleanly. */
    int more_batches = 0;
    assert_int_equal(append_until_error(st, &last_ok, &more_batches), STORE_E_UNAVAILABLE);
    assert_int_equal(more_batches, 0);
    tt_log_set_level(TT_LOG_INFO);

    /* Retention frees pages; appends succeed again, with higher ids. */
    store_maint_config_t mc;
    store_maint_config_defaults(&mc);
    mc.retain_messages = 20;
    assert_int_equal(store_retention_run(st, &mc, NOW_MS, NULL), 0);
    assert_true(put(st, "#full", "ana", "room again", NOW_MS) > last_ok);
    store_close(st);
}

/* Lines of the file at path that contain needle; the first is kept. */
static int count_lines(const char *path, const char *needle, char *first, size_t cap) {
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    char line[1200];
    int n = 0;
    while (fgets(line, sizeof(line), f) != NULL) {
        if (strstr(line, needle) == NULL)
            continue;
        if (n++ == 0 && first != NULL)
            snprintf(first, cap, "%s", line);
    }
    fclose(f);
    return n;
}

/* A full disk fails every batch; a nearly full one fails and recovers in
 * turn. Either way the store logs at most one failure line and one
 * recovery line every 10 s, with counts, instead of one per batch. */
static void test_store_append_failures_do_not_flood_the_log(void **state) {
    (void)state;
    store_config_t cfg;
    store_config_defaults(&cfg);
    cfg.path = tmp_path("flood.db");
    cfg.max_bytes = 256 * 1024;
    store_t *st = NULL;
    char err[512];
    assert_int_equal(store_open(&cfg, &st, err, sizeof(err)), 0);
    store_maint_config_t mc;
    store_maint_config_defaults(&mc);
    mc.retain_messages = 20;

    const char *log = tmp_path("flood.log");
    fflush(stderr);
    int saved = dup(2);
    int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    assert_true(saved >= 0 && fd >= 0);
    dup2(fd, 2);
    close(fd);
    static char text[1000];
    memset(text, 'f', sizeof(text));
    store_msg_t m[20];
    for (int run = 0; run < 2; run++) {
        int64_t last_ok = 0;
        int batches = 0;
        assert_int_equal(append_until_error(st, &last_ok, &batches), STORE_E_UNAVAILABLE);
        for (int i = 0; i < 300; i++) {
            for (int k = 0; k < 20; k++)
                m[k] = room_msg("#full", "ana", text, sizeof(text), NOW_MS);
            assert_int_equal(store_append_batch(st, m, 20), STORE_E_UNAVAILABLE);
        }
        assert_int_equal(store_retention_run(st, &mc, NOW_MS, NULL), 0);
        put(st, "#full", "ana", "writing", NOW_MS);
    }
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    store_close(st);

    char first[1200] = "";
    /* Two runs of 301 failures: one line, the first failure's. */
    assert_int_equal(count_lines(log, "cannot store", first, sizeof(first)), 1);
    assert_non_null(strstr(first, "ERROR"));
    assert_null(strstr(first, "since the last such line"));
    /* Two recoveries: the first is logged, with its count; the second,
     * within 10 s of it, is not. */
    assert_int_equal(count_lines(log, "writing again", first, sizeof(first)), 1);
    assert_non_null(strstr(first, "(301 failed commit(s) since the last such line)"));
}

/* A real I/O error: the process may not grow files past a size
 * (RLIMIT_FSIZE), so the WAL write fails with EFBIG. */
static void test_store_io_error_refuses_and_keeps_working(void **state) {
    (void)state;
    const char *path = tmp_path("ioerr.db");
    store_t *st = open_or_fail(path);
    put(st, "#io", "ana", "before", NOW_MS);

    struct rlimit old, lim;
    assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
    void (*old_handler)(int) = signal(SIGXFSZ, SIG_IGN);
    lim = old;
    lim.rlim_cur = 512 * 1024;
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
    tt_log_set_level(TT_LOG_OFF);
    int64_t last_ok = 0;
    int batches = 0;
    int rc = append_until_error(st, &last_ok, &batches);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
    signal(SIGXFSZ, old_handler);
    tt_log_set_level(TT_LOG_INFO);
    assert_int_equal(rc, STORE_E_UNAVAILABLE);

    assert_int_equal(room_count(st, "#io"), 1);
    assert_int_equal(room_count(st, "#full"), (size_t)batches * 20);
    /* The limit is lifted: writing works again on the same store. */
    int64_t id = put(st, "#io", "ana", "after", NOW_MS);
    assert_true(id > last_ok);
    store_close(st);
    st = open_or_fail(path);
    assert_int_equal(room_count(st, "#io"), 2);
    store_close(st);
}

/* Another process wrote to the file behind the store's back (ids the store
 * meant to use are taken): the batch fails, the transaction is rolled
 * back, and the next batch goes on after the intruder's ids. */
static void test_store_recovers_from_foreign_writer(void **state) {
    (void)state;
    const char *path = tmp_path("foreign-writer.db");
    store_t *st = open_or_fail(path);
    int64_t first = put(st, "#r", "ana", "mine", 1);
    /* Under the room's key, as the store writes it (store_room_key). */
    assert_int_equal(raw_exec(path, "INSERT INTO messages (room, sender, text, ts)"
                                    " VALUES ('r', 'cli', 'theirs', 2)"),
                     SQLITE_OK);
    tt_log_set_level(TT_LOG_OFF);
    store_msg_t m[2] = {room_msg("#r", "ana", "a", 1, 3), room_msg("#r", "ana", "b", 1, 3)};
    assert_int_equal(store_append_batch(st, m, 2), STORE_E_INTERNAL);
    tt_log_set_level(TT_LOG_INFO);
    assert_int_equal(store_last_id(st), first + 1);
    int64_t next = put(st, "#r", "ana", "again", 4);
    assert_int_equal(next, first + 2);
    got_t *g = got_new();
    assert_int_equal(store_last(st, "#r", 10, collect, g), 3);
    assert_string_equal(g->text[0], "mine");
    assert_string_equal(g->text[1], "theirs");
    assert_string_equal(g->text[2], "again");
    free(g);
    store_close(st);
}

/* The durability rule at the store's level: a child process appends
 * batches and reports each committed id only after store_append_batch
 * returned; it is killed with SIGKILL mid-stream (its maintenance thread
 * checkpointing meanwhile). Every reported id must be in the file, and the
 * room must hold exactly ids 1..last, with no gap. */
static void test_store_survives_kill9(void **state) {
    (void)state;
    const char *path = tmp_path("kill9.db");
    int64_t reported = 0;
    for (int round = 0; round < 3; round++) {
        int pipefd[2];
        assert_int_equal(pipe(pipefd), 0);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            close(pipefd[0]);
            tt_log_set_level(TT_LOG_OFF);
            store_t *st = NULL;
            store_config_t cfg;
            store_config_defaults(&cfg);
            cfg.path = path;
            char err[512];
            if (store_open(&cfg, &st, err, sizeof(err)) != 0)
                _exit(2);
            store_maint_config_t mc;
            store_maint_config_defaults(&mc);
            mc.checkpoint_pages = 16; /* checkpoint often: kill during some */
            if (store_maint_start(st, &mc, err, sizeof(err)) != 0)
                _exit(3);
            static const char text[] = "durable or not sent: the id is reported after commit";
            for (;;) {
                store_msg_t m[10];
                for (int i = 0; i < 10; i++)
                    m[i] = room_msg("#k", "ana", text, sizeof(text) - 1, i);
                if (store_append_batch(st, m, 10) != 0)
                    _exit(4);
                if (write(pipefd[1], &m[9].id, sizeof(m[9].id)) != sizeof(m[9].id))
                    _exit(5);
            }
        }
        close(pipefd[1]);
        sleep_ms(50 + 40 * round);
        kill(pid, SIGKILL);
        int status;
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFSIGNALED(status));
        int64_t id;
        while (read(pipefd[0], &id, sizeof(id)) == (ssize_t)sizeof(id)) {
            assert_true(id > reported);
            reported = id;
        }
        close(pipefd[0]);

        store_t *st = open_or_fail(path);
        assert_true(store_last_id(st) >= reported);
        assert_true(reported > 0);
        /* Every message up to the last committed one, each id once. */
        int64_t last = store_last_id(st), expect = 1;
        for (int64_t lo = 0; lo < last; lo += 1000) {
            got_t *g = got_new();
            int n = store_range(st, "#k", 2, lo, lo + 1001, 1000, collect, g, NULL);
            assert_int_equal(n, last - lo < 1000 ? last - lo : 1000);
            for (int k = 0; k < n; k++)
                assert_int_equal(g->ids[k], expect++);
            free(g);
        }
        assert_true(expect - 1 >= reported);
        assert_int_equal(expect - 1, store_last_id(st));
        store_close(st);
    }
}

/* ------------------------------------------------------------------------ */
/* The maintenance thread */

static void test_store_maint_thread_applies_retention(void **state) {
    (void)state;
    store_t *st = open_or_fail(tmp_path("maint.db"));
    int64_t now = NOW_MS; /* the thread uses the real clock: use recent ts */
    struct timespec rt;
    clock_gettime(CLOCK_REALTIME, &rt);
    now = (int64_t)rt.tv_sec * 1000;
    for (int i = 0; i < 30; i++)
        put(st, "#t", "ana", "x", now);
    put(st, "#old", "ana", "x", now - 40 * DAY_MS);

    store_maint_config_t cfg;
    store_maint_config_defaults(&cfg);
    cfg.retain_messages = 5;
    cfg.retain_days = 30;
    cfg.interval_ms = 20;
    char err[256];
    assert_int_equal(store_maint_start(st, &cfg, err, sizeof(err)), 0);
    assert_int_equal(store_maint_start(st, &cfg, err, sizeof(err)), STORE_E_INVALID);
    assert_int_equal(store_retention_run(st, &cfg, now, NULL), STORE_E_INVALID);

    /* The loop keeps appending while the thread deletes... */
    for (int i = 0; i < 50; i++) {
        put(st, "#t", "ana", "y", now);
        sleep_ms(2);
    }
    /* ...and once it stops, the room settles to the newest 5. */
    size_t left = 0;
    for (int tries = 0; tries < 500; tries++) {
        left = room_count(st, "#t");
        if (left == 5 && room_count(st, "#old") == 0)
            break;
        sleep_ms(10);
    }
    assert_int_equal(left, 5);
    assert_int_equal(room_count(st, "#old"), 0);
    store_stats_t stats;
    store_stats(st, &stats);
    assert_true(stats.passes >= 1);
    assert_int_equal(stats.retention.deleted_by_count, 30 + 50 - 5);
    assert_int_equal(stats.retention.deleted_by_age, 1);
    store_maint_stop(st);
    store_maint_stop(st); /* idempotent */
    store_close(st);
}

static void test_store_maint_thread_checkpoints_the_wal(void **state) {
    (void)state;
    const char *path = tmp_path("wal.db");
    char wal[300];
    snprintf(wal, sizeof(wal), "%s-wal", path);
    store_t *st = open_or_fail(path);
    store_maint_config_t cfg;
    store_maint_config_defaults(&cfg);
    cfg.checkpoint_pages = 8;
    char err[256];
    assert_int_equal(store_maint_start(st, &cfg, err, sizeof(err)), 0);
    store_stats_t stats = {0};
    static char text[2000];
    memset(text, 'w', sizeof(text));
    for (int i = 0; i < 500 && stats.checkpoints < 3; i++) {
        store_msg_t m[4];
        for (int k = 0; k < 4; k++)
            m[k] = room_msg("#w", "ana", text, sizeof(text), 1);
        assert_int_equal(store_append_batch(st, m, 4), 0);
        sleep_ms(2);
        store_stats(st, &stats);
    }
    assert_true(stats.checkpoints >= 3);
    assert_int_equal(stats.passes, 0); /* no retention configured */
    store_maint_stop(st);
    store_close(st);
    /* The main file holds everything without the WAL. */
    struct stat sb;
    assert_true(stat(wal, &sb) != 0 || sb.st_size == 0);
    assert_true(raw_int(path, "SELECT count(*) FROM messages") >= 12);
}

static void test_store_maint_thread_on_memory_database(void **state) {
    (void)state;
    store_t *st = open_or_fail(":memory:");
    store_maint_config_t cfg;
    store_maint_config_defaults(&cfg);
    cfg.retain_messages = 3;
    cfg.interval_ms = 10;
    cfg.chunk_rows = 2;
    char err[256];
    assert_int_equal(store_maint_start(st, &cfg, err, sizeof(err)), 0);
    size_t left = 0;
    for (int tries = 0; tries < 500; tries++) {
        store_msg_t m[5];
        for (int k = 0; k < 5; k++)
            m[k] = room_msg("#m", "ana", "t", 1, 1);
        assert_int_equal(store_append_batch(st, m, 5), 0);
        sleep_ms(15);
        left = room_count(st, "#m");
        if (left <= 3)
            break;
    }
    assert_true(left <= 3);
    store_close(st); /* stops the thread itself */
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_store_append_batch_ids_increase),
        cmocka_unit_test(test_store_append_kind_and_recipient),
        cmocka_unit_test(test_store_append_invalid_stores_nothing),
        cmocka_unit_test(test_store_append_keeps_caller_ids),
        cmocka_unit_test(test_store_history_pages_every_message_once_in_order),
        cmocka_unit_test(test_store_since_exact_and_more),
        cmocka_unit_test(test_store_range_between_bounds),
        cmocka_unit_test(test_store_last_returns_newest_oldest_first),
        cmocka_unit_test(test_store_dm_key_is_symmetric),
        cmocka_unit_test(test_store_retention_by_count_keeps_newest_per_room),
        cmocka_unit_test(test_store_retention_by_age_uses_injected_now),
        cmocka_unit_test(test_store_ids_increase_across_retention_and_reopen),
        cmocka_unit_test(test_store_reopen_keeps_history),
        cmocka_unit_test(test_store_room_key_folds_case_and_hash),
        cmocka_unit_test(test_store_rooms_fold_in_append_and_reads),
        cmocka_unit_test(test_store_migrates_v0_database),
        cmocka_unit_test(test_store_migrates_v1_database),
        cmocka_unit_test(test_store_migrates_the_previous_release),
        cmocka_unit_test(test_store_failed_migration_leaves_database_untouched),
        cmocka_unit_test(test_store_refuses_newer_schema),
        cmocka_unit_test(test_store_open_garbage_file),
        cmocka_unit_test(test_store_open_damaged_database),
        cmocka_unit_test(test_store_open_unreachable_paths),
        cmocka_unit_test(test_store_open_refuses_a_file_in_use),
        cmocka_unit_test(test_store_open_creates_parent_dir),
        cmocka_unit_test(test_store_open_permission_denied),
        cmocka_unit_test(test_store_full_disk_refuses_and_keeps_working),
        cmocka_unit_test(test_store_append_failures_do_not_flood_the_log),
        cmocka_unit_test(test_store_io_error_refuses_and_keeps_working),
        cmocka_unit_test(test_store_recovers_from_foreign_writer),
        cmocka_unit_test(test_store_survives_kill9),
        cmocka_unit_test(test_store_maint_thread_applies_retention),
        cmocka_unit_test(test_store_maint_thread_checkpoints_the_wal),
        cmocka_unit_test(test_store_maint_thread_on_memory_database),
    };
    return cmocka_run_group_tests(tests, setup_tmpdir, teardown_tmpdir);
}
