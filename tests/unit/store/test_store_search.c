/* Unit tests of src/store/store_search.c: edit and delete (the row kept,
 * the text erased from the file and the WAL, not found twice), the
 * account's record of rooms and its bound, search (readable keys only,
 * newest first, the markers, paging, a conversation's sides, the
 * tokenizer on Cyrillic, Greek and CJK) and the migration that indexes
 * what a v2 database already holds. */
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "core/log.h"
#include "store/store.h"
#include "store/store_search.h"
#include "store_test.h"

#define NOW INT64_C(1790000000000)

static int64_t put(store_t *st, const char *room, const char *from, const char *text) {
    store_msg_t m = {.kind = STORE_KIND_ROOM,
                     .room = room,
                     .room_len = strlen(room),
                     .from = from,
                     .from_len = strlen(from),
                     .text = text,
                     .text_len = strlen(text),
                     .ts = NOW};
    assert_int_equal(store_append_batch(st, &m, 1), 0);
    return m.id;
}

static int64_t dm(store_t *st, const char *from, const char *to, const char *text) {
    char key[2 * STORE_NICK_MAX + 3];
    assert_true(store_dm_key(from, to, key, sizeof(key)) > 0);
    store_msg_t m = {.kind = STORE_KIND_PRIVATE,
                     .room = key,
                     .room_len = strlen(key),
                     .from = from,
                     .from_len = strlen(from),
                     .to = to,
                     .to_len = strlen(to),
                     .text = text,
                     .text_len = strlen(text),
                     .ts = NOW};
    assert_int_equal(store_append_batch(st, &m, 1), 0);
    return m.id;
}

/* What a search delivered, copied. */
typedef struct {
    int n;
    int64_t ids[64];
    char marked[64][256];
    char text[64][256];
} hits_t;

static void on_hit(void *ctx, const store_hit_t *h) {
    hits_t *g = ctx;
    assert_true(g->n < 64);
    g->ids[g->n] = h->rec.id;
    snprintf(g->marked[g->n], sizeof(g->marked[0]), "%.*s", (int)h->marked_len, h->marked);
    snprintf(g->text[g->n], sizeof(g->text[0]), "%.*s", (int)h->rec.text_len, h->rec.text);
    g->n++;
}

/* A search of one query (split at spaces) over rooms (NULL-terminated). */
static int find(store_t *st, const char *query, const char *const *rooms, int64_t account,
                const char *nick, const char *only, unsigned limit, int64_t before, hits_t *g,
                bool *more, int64_t *next) {
    static char buf[512];
    snprintf(buf, sizeof(buf), "%s", query);
    const char *words[STORE_SEARCH_WORDS_MAX];
    size_t lens[STORE_SEARCH_WORDS_MAX];
    size_t n = 0;
    for (char *w = strtok(buf, " "); w != NULL && n < STORE_SEARCH_WORDS_MAX;
         w = strtok(NULL, " ")) {
        words[n] = w;
        lens[n++] = strlen(w);
    }
    size_t nrooms = 0, room_lens[16];
    while (rooms != NULL && rooms[nrooms] != NULL) {
        room_lens[nrooms] = strlen(rooms[nrooms]);
        nrooms++;
    }
    store_search_req_t q = {.words = words,
                            .word_lens = lens,
                            .nwords = n,
                            .account = account,
                            .nick = nick,
                            .nick_len = nick ? strlen(nick) : 0,
                            .rooms = rooms,
                            .room_lens = room_lens,
                            .nrooms = nrooms,
                            .only = only,
                            .only_len = only ? strlen(only) : 0,
                            .before_id = before,
                            .limit = limit};
    memset(g, 0, sizeof(*g));
    return store_search(st, &q, on_hit, g, more, next);
}

static size_t grep(const char *path, const char *word) {
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return 0;
    static char buf[1 << 22];
    size_t n = fread(buf, 1, sizeof(buf), f);
    fclose(f);
    size_t count = 0, wl = strlen(word);
    for (size_t i = 0; i + wl <= n; i++)
        if (memcmp(buf + i, word, wl) == 0)
            count++;
    return count;
}

/* ------------------------------------------------------------------------ */

static void test_edit_and_delete_keep_the_row_and_erase_the_text(void **state) {
    (void)state;
    const char *path = tmp_path("erase.db");
    char wal[300];
    snprintf(wal, sizeof(wal), "%s-wal", path);
    store_t *st = open_or_fail(path);
    int64_t a = put(st, "#r", "ana", "the word xylophonic here");
    int64_t b = put(st, "#r", "ana", "the word quetzalish there");
    put(st, "#r", "ana", "filler");
    assert_true(grep(path, "xylophonic") + grep(wal, "xylophonic") > 0);
    /* Indexed first (a search catches the index up), so the index has
     * the words to lose. */
    const char *rooms[] = {"#r", NULL};
    hits_t g;
    bool more;
    int64_t next;
    assert_int_equal(find(st, "xylophonic", rooms, 0, NULL, NULL, 10, 0, &g, &more, &next), 1);

    assert_int_equal(store_message_delete(st, a), 0);
    assert_int_equal(store_message_edit(st, b, "plain now", 9, NOW + 5), 0);
    assert_int_equal(grep(path, "xylophonic") + grep(wal, "xylophonic"), 0);
    assert_int_equal(grep(path, "quetzalish") + grep(wal, "quetzalish"), 0);

    store_msg_info_t info;
    assert_int_equal(store_message_get(st, a, 0, &info), 0);
    assert_true(info.deleted);
    assert_string_equal(info.room, "r");
    assert_string_equal(info.from, "ana");
    assert_int_equal(store_message_get(st, b, 0, &info), 0);
    assert_false(info.deleted);
    assert_int_equal(info.edited_ts, NOW + 5);
    /* Gone is gone: neither can be changed again; a missing id is not found. */
    assert_int_equal(store_message_delete(st, a), STORE_E_NOTFOUND);
    assert_int_equal(store_message_edit(st, a, "x", 1, NOW), STORE_E_NOTFOUND);
    assert_int_equal(store_message_get(st, 999999, 0, &info), STORE_E_NOTFOUND);
    assert_int_equal(store_message_edit(st, b, "", 0, NOW), STORE_E_INVALID);
    store_close(st);
    assert_int_equal(grep(path, "xylophonic"), 0);
    assert_true(grep(path, "filler") > 0);
}

static void test_search_reads_only_readable_keys(void **state) {
    (void)state;
    store_t *st = open_or_fail(":memory:");
    store_account_t acc;
    assert_int_equal(store_account_create(st, "Ana", 3, NULL, NOW, &acc), 0);
    int64_t r1 = put(st, "#One", "bob", "walrus one");
    int64_t r2 = put(st, "two", "bob", "walrus two");
    int64_t p1 = dm(st, "Ana", "Bob", "walrus private");
    dm(st, "Bob", "Cid", "walrus not hers");
    hits_t g;
    bool more;
    int64_t next;
    const char *one[] = {"one", NULL};
    /* A guest in #one only. */
    assert_int_equal(find(st, "walrus", one, 0, NULL, NULL, 10, 0, &g, &more, &next), 1);
    assert_int_equal(g.ids[0], r1);
    assert_string_equal(g.marked[0], "\001walrus\002 one");
    /* The account: its conversations, and the rooms of its record. */
    assert_int_equal(find(st, "walrus", NULL, acc.id, "ANA", NULL, 10, 0, &g, &more, &next), 1);
    assert_int_equal(g.ids[0], p1);
    assert_int_equal(store_room_joined(st, acc.id, "#TWO", 4, NOW), 0);
    assert_int_equal(find(st, "walrus", one, acc.id, "ana", NULL, 10, 0, &g, &more, &next), 3);
    assert_int_equal(g.ids[0], p1); /* newest first */
    assert_int_equal(g.ids[1], r2);
    assert_int_equal(g.ids[2], r1);
    /* One key: a readable one, or nothing. */
    assert_int_equal(find(st, "walrus", one, acc.id, "ana", "#two", 10, 0, &g, &more, &next), 1);
    assert_int_equal(g.ids[0], r2);
    assert_int_equal(find(st, "walrus", one, acc.id, "ana", "@bob@cid", 10, 0, &g, &more, &next),
                     0);
    assert_int_equal(find(st, "walrus", NULL, 0, NULL, "#two", 10, 0, &g, &more, &next), 0);
    /* message_get tells whether the record holds the room. */
    store_msg_info_t info;
    assert_int_equal(store_message_get(st, r2, acc.id, &info), 0);
    assert_true(info.joined);
    assert_int_equal(store_message_get(st, r1, acc.id, &info), 0);
    assert_false(info.joined);
    store_close(st);
}

static void test_search_pages_newest_first(void **state) {
    (void)state;
    store_t *st = open_or_fail(":memory:");
    int64_t ids[7];
    for (int i = 0; i < 7; i++)
        ids[i] = put(st, "#p", "ana", i % 2 ? "gnu odd" : "gnu even");
    const char *rooms[] = {"#p", NULL};
    hits_t g;
    bool more;
    int64_t next;
    assert_int_equal(find(st, "gnu", rooms, 0, NULL, NULL, 3, 0, &g, &more, &next), 3);
    assert_true(more);
    assert_int_equal(next, ids[4]);
    assert_int_equal(g.ids[0], ids[6]);
    assert_int_equal(find(st, "gnu", rooms, 0, NULL, NULL, 3, next, &g, &more, &next), 3);
    assert_int_equal(g.ids[0], ids[3]);
    assert_int_equal(find(st, "GNU odd", rooms, 0, NULL, NULL, 10, 0, &g, &more, &next), 3);
    assert_false(more);
    /* FTS5 syntax is only words. */
    assert_int_equal(find(st, "gnu OR \"x", rooms, 0, NULL, NULL, 10, 0, &g, &more, &next), 0);
    assert_int_equal(find(st, "gnu NEAR(odd)", rooms, 0, NULL, NULL, 10, 0, &g, &more, &next), 0);
    store_close(st);
}

static void test_tokenizer_scripts(void **state) {
    (void)state;
    store_t *st = open_or_fail(":memory:");
    const char *rooms[] = {"#i", NULL};
    int64_t ru = put(st, "#i", "a", "Привет, Мир");
    int64_t el = put(st, "#i", "a", "Καλημέρα κόσμε, Ελλάς");
    int64_t ja = put(st, "#i", "a", "東京タワーへ");
    int64_t ko = put(st, "#i", "a", "서울에서 만나요");
    int64_t fr = put(st, "#i", "a", "Crème Brûlée");
    hits_t g;
    bool more;
    int64_t next;
    struct {
        const char *q;
        int64_t id;
        const char *marked;
    } cases[] = {
        {"мир", ru, "Привет, \001Мир\002"},
        {"ПРИВЕТ", ru, "\001Привет\002, Мир"},
        {"καλημερα", el, "\001Καλημέρα\002 κόσμε, Ελλάς"},
        {"ελλασ", el, "Καλημέρα κόσμε, \001Ελλάς\002"},
        {"東京", ja, "\001東京\002タワーへ"},
        {"タワー", ja, "東京\001タワー\002へ"},
        {"서울", ko, "\001서울\002에서 만나요"},
        {"brulee", fr, "Crème \001Brûlée\002"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        assert_int_equal(find(st, cases[i].q, rooms, 0, NULL, NULL, 10, 0, &g, &more, &next), 1);
        assert_int_equal(g.ids[0], cases[i].id);
        assert_string_equal(g.marked[0], cases[i].marked);
    }
    assert_int_equal(find(st, "京東", rooms, 0, NULL, NULL, 10, 0, &g, &more, &next), 0);
    store_close(st);
}

static void test_joins_record_is_bounded(void **state) {
    (void)state;
    store_t *st = open_or_fail(":memory:");
    store_account_t acc;
    assert_int_equal(store_account_create(st, "Ana", 3, NULL, NOW, &acc), 0);
    char room[32];
    for (int i = 0; i < STORE_JOINS_MAX + 5; i++) {
        int n = snprintf(room, sizeof(room), "#r%d", i);
        assert_int_equal(store_room_joined(st, acc.id, room, (size_t)n, NOW + i), 0);
    }
    int64_t old = put(st, "#r0", "bob", "anchovy");
    int64_t fresh = put(st, "#r10004", "bob", "anchovy");
    hits_t g;
    bool more;
    int64_t next;
    assert_int_equal(find(st, "anchovy", NULL, acc.id, "ana", NULL, 10, 0, &g, &more, &next), 1);
    assert_int_equal(g.ids[0], fresh);
    (void)old;
    store_close(st);
}

/* A v1 database (the fixture) migrated to v3: what it held is indexed. */
static void test_migration_indexes_what_is_stored(void **state) {
    (void)state;
    const char *src = getenv("TT_SOURCE_DIR");
    if (src == NULL)
        fail_msg("TT_SOURCE_DIR is not set (ctest sets it)");
    char fixture[512];
    snprintf(fixture, sizeof(fixture), "%s/tests/unit/store/fixtures/v1.sql", src);
    FILE *f = fopen(fixture, "r");
    assert_non_null(f);
    static char sql[16384];
    size_t n = fread(sql, 1, sizeof(sql) - 1, f);
    fclose(f);
    sql[n] = '\0';
    const char *path = tmp_path("v1-search.db");
    assert_int_equal(raw_exec(path, sql), SQLITE_OK);
    store_t *st = open_or_fail(path);
    const char *rooms[] = {"#python-dev", NULL};
    hits_t g;
    bool more;
    int64_t next;
    assert_int_equal(find(st, "dos", rooms, 0, NULL, NULL, 10, 0, &g, &more, &next), 1);
    assert_int_equal(g.ids[0], 2);
    /* And new messages go on being indexed. */
    int64_t id = put(st, "#Python-Dev", "ana", "dos más");
    assert_int_equal(find(st, "dos", rooms, 0, NULL, NULL, 10, 0, &g, &more, &next), 2);
    assert_int_equal(g.ids[0], id);
    store_close(st);
}

/* ------------------------------------------------------------------------ */
/* The costs (docs/BENCHMARKS.md, "Edit, delete, search"): with
 * TT_SEARCH_BENCH_MESSAGES=100000 a file database of that many messages
 * (8 words each from 5000) is filled in 100-message commits, indexed, then
 * deletes, edits and searches are timed. By default a small run checks
 * only that it works. */

static uint64_t now_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static uint64_t fill(store_t *st, int total) {
    static char texts[100][128];
    store_msg_t m[100];
    uint64_t spent = 0;
    unsigned seed = 7;
    for (int done = 0; done < total; done += 100) {
        for (int i = 0; i < 100; i++) {
            char *p = texts[i];
            p[0] = '\0';
            for (int w = 0; w < 8; w++) {
                seed = seed * 1103515245u + 12345u;
                size_t len = strlen(p);
                snprintf(p + len, 128 - len, "%sw%u", w ? " " : "", (seed >> 8) % 5000);
            }
            m[i] = (store_msg_t){.kind = STORE_KIND_ROOM,
                                 .room = "#bench",
                                 .room_len = 6,
                                 .from = "ana",
                                 .from_len = 3,
                                 .text = p,
                                 .text_len = strlen(p),
                                 .ts = NOW};
        }
        uint64_t t0 = now_us();
        assert_int_equal(store_append_batch(st, m, 100), 0);
        spent += now_us() - t0;
    }
    return spent;
}

static void test_costs(void **state) {
    (void)state;
    const char *env = getenv("TT_SEARCH_BENCH_MESSAGES");
    int total = env != NULL && atoi(env) >= 1000 ? atoi(env) / 100 * 100 : 2000;
    store_t *st = open_or_fail(tmp_path("bench.db"));
    uint64_t commits = fill(st, total);
    uint64_t t0 = now_us();
    int irc = SQLITE_OK;
    while (store__search_index_step(st, st->db, STORE_INDEX_CHUNK, &irc))
        ;
    assert_int_equal(irc, SQLITE_OK);
    uint64_t indexing = now_us() - t0;
    printf("  %d messages in 100-message commits: %.0f us a commit; indexing them afterwards "
           "(the maintenance thread's work): %.1f us a message\n",
           total, (double)commits / (total / 100), (double)indexing / total);
    uint64_t del = 0, edit = 0;
    for (int i = 1; i <= 10; i++) {
        t0 = now_us();
        assert_int_equal(store_message_delete(st, i * (total / 20)), 0);
        del += now_us() - t0;
        t0 = now_us();
        assert_int_equal(store_message_edit(st, i * (total / 20) + 1, "edited text", 11, NOW), 0);
        edit += now_us() - t0;
    }
    printf("  delete %.1f ms, edit %.1f ms (each: the update, the index rewritten, a TRUNCATE "
           "checkpoint)\n",
           (double)del / 10000, (double)edit / 10000);
    const char *rooms[] = {"#bench", NULL};
    hits_t g;
    bool more;
    int64_t next;
    const char *queries[] = {"w17", "w17 w42", "nothingatall"};
    for (size_t q = 0; q < 3; q++) {
        t0 = now_us();
        for (int i = 0; i < 10; i++)
            assert_true(find(st, queries[q], rooms, 0, NULL, NULL, 20, 0, &g, &more, &next) >= 0);
        printf("  search \"%s\", limit 20: %.2f ms (%d results)\n", queries[q],
               (double)(now_us() - t0) / 10000, g.n);
    }
    /* A room nobody may read: the scan stops at its bound. */
    const char *none[] = {"#other", NULL};
    t0 = now_us();
    assert_int_equal(find(st, "w17", none, 0, NULL, NULL, 20, 0, &g, &more, &next), 0);
    printf("  search \"w17\" over a room without matches: %.2f ms (more: %d)\n",
           (double)(now_us() - t0) / 1000, more);
    store_close(st);
}

int main(void) {
    tt_log_set_level(TT_LOG_WARN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_edit_and_delete_keep_the_row_and_erase_the_text),
        cmocka_unit_test(test_search_reads_only_readable_keys),
        cmocka_unit_test(test_search_pages_newest_first),
        cmocka_unit_test(test_tokenizer_scripts),
        cmocka_unit_test(test_joins_record_is_bounded),
        cmocka_unit_test(test_migration_indexes_what_is_stored),
        cmocka_unit_test(test_costs),
    };
    return cmocka_run_group_tests(tests, setup_tmpdir, teardown_tmpdir);
}
