/* Unit tests of src/store/store_async.c: callbacks in submission order, a
 * read after an append sees it, the bounds (max_jobs, max_bytes, read
 * results while held), a lock held by another connection delays the worker
 * and never the caller, stop runs every queued job, callbacks that submit,
 * ":memory:" and file stores beside the maintenance thread, a full store,
 * ten thousand jobs through a small queue, and the caller's own calls
 * (store_async_call: in order with the rest, bounded, run by stop). No sleeps: the tests wait for
 * the notify callback on a condition variable. */
#include <errno.h>
#include <ftw.h>
#include <pthread.h>
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
#include "store/store_async.h"
#include "store_test.h"

#define NOW_MS INT64_C(1790000000000)

/* ------------------------------------------------------------------------ */
/* Helpers */

static store_t *open_store(const char *path, unsigned busy_ms, uint64_t max_bytes) {
    store_config_t cfg;
    store_config_defaults(&cfg);
    cfg.path = path;
    if (busy_ms > 0)
        cfg.busy_timeout_ms = busy_ms;
    cfg.max_bytes = max_bytes;
    return open_cfg_or_fail(&cfg);
}

static store_msg_t room_msg(const char *room, const char *text, size_t text_len) {
    return (store_msg_t){.kind = STORE_KIND_ROOM,
                         .room = room,
                         .room_len = strlen(room),
                         .from = "ana",
                         .from_len = 3,
                         .text = text,
                         .text_len = text_len,
                         .ts = NOW_MS};
}

/* The notify callback counts; the test thread waits for the count to move.
 * A drain empties the done list, and the next completion into an empty
 * list notifies, so "drain, then wait for a notify newer than the one seen
 * before the drain" never misses a completion. */
static struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    uint64_t count;
} notes = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0};

static void on_notify(void *ctx) {
    (void)ctx;
    pthread_mutex_lock(&notes.mu);
    notes.count++;
    pthread_cond_broadcast(&notes.cv);
    pthread_mutex_unlock(&notes.mu);
}

static uint64_t notes_now(void) {
    pthread_mutex_lock(&notes.mu);
    uint64_t n = notes.count;
    pthread_mutex_unlock(&notes.mu);
    return n;
}

/* Waits for a notify after `seen`. The deadline only turns a hang (a bug)
 * into a failure; no test waits for it. */
static void wait_note_after(uint64_t seen) {
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += 60;
    pthread_mutex_lock(&notes.mu);
    while (notes.count == seen) {
        if (pthread_cond_timedwait(&notes.cv, &notes.mu, &dl) == ETIMEDOUT) {
            pthread_mutex_unlock(&notes.mu);
            fail_msg("no completion within 60 s");
        }
    }
    pthread_mutex_unlock(&notes.mu);
}

/* One callback's record. */
typedef struct slot_s {
    int index; /* submission index */
    bool ran;
    int order; /* among the callbacks that ran in the test */
    int rc;
    size_t n;
    int64_t first_id, last_id; /* appends: the batch's ids; reads: the records' */
    bool more;
    char last_text[64]; /* reads: the newest record's text (a prefix) */
    /* For callbacks that submit. */
    store_async_t *a;
    int submit_rc;
    int nested_drain;
} slot_t;

static int ran; /* callbacks run in the current test */

static void slot_ran(slot_t *s, int rc) {
    assert_false(s->ran); /* exactly once */
    s->ran = true;
    s->order = ran++;
    s->rc = rc;
}

static void on_append(void *arg, int rc, const store_msg_t *msgs, size_t n) {
    slot_t *s = arg;
    slot_ran(s, rc);
    s->n = n;
    s->first_id = n > 0 ? msgs[0].id : 0;
    s->last_id = n > 0 ? msgs[n - 1].id : 0;
    for (size_t i = 0; i < n; i++) {
        if (rc == 0)
            assert_true(msgs[i].id > 0 && (i == 0 || msgs[i].id > msgs[i - 1].id));
        else
            assert_int_equal(msgs[i].id, 0);
    }
}

static void on_range(void *arg, int rc, const store_rec_t *recs, size_t n, bool more) {
    slot_t *s = arg;
    slot_ran(s, rc);
    s->n = n;
    s->more = more;
    assert_true(rc < 0 ? n == 0 : (size_t)rc == n);
    for (size_t i = 0; i < n; i++) {
        const store_rec_t *r = &recs[i];
        assert_true(i == 0 || r->id > recs[i - 1].id);
        assert_int_equal(strlen(r->room), r->room_len);
        assert_int_equal(strlen(r->from), r->from_len);
        assert_int_equal(r->text[r->text_len], '\0');
        assert_null(r->to);
    }
    s->first_id = n > 0 ? recs[0].id : 0;
    s->last_id = n > 0 ? recs[n - 1].id : 0;
    if (n > 0) {
        size_t len = recs[n - 1].text_len < 63 ? recs[n - 1].text_len : 63;
        memcpy(s->last_text, recs[n - 1].text, len);
        s->last_text[len] = '\0';
    }
}

static void on_reserve(void *arg, int rc) {
    slot_ran(arg, rc);
}

/* Drains until `want` callbacks of the test have run. */
static void drain_until(store_async_t *a, int want) {
    for (;;) {
        uint64_t seen = notes_now();
        store_async_drain(a);
        if (ran >= want)
            return;
        wait_note_after(seen);
    }
}

static slot_t *slots_new(size_t n) {
    slot_t *s = calloc(n, sizeof(*s));
    assert_non_null(s);
    for (size_t i = 0; i < n; i++)
        s[i].index = (int)i;
    ran = 0;
    return s;
}

static store_async_t *start(store_t *st, unsigned max_jobs, size_t max_bytes) {
    store_async_config_t cfg;
    store_async_config_defaults(&cfg);
    if (max_jobs > 0)
        cfg.max_jobs = max_jobs;
    if (max_bytes > 0)
        cfg.max_bytes = max_bytes;
    store_async_t *a = NULL;
    assert_int_equal(store_async_start(st, &cfg, on_notify, NULL, &a), 0);
    assert_non_null(a);
    return a;
}

static int append_text(store_async_t *a, const char *room, const char *text, slot_t *s) {
    store_msg_t m = room_msg(room, text, strlen(text));
    return store_async_append(a, &m, 1, on_append, s);
}

static int raw_open(const char *path, sqlite3 **db) {
    int rc = sqlite3_open_v2(path, db, SQLITE_OPEN_READWRITE, NULL);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Order */

static void test_store_async_completes_in_submission_order(void **state) {
    (void)state;
    store_t *st = open_store(":memory:", 0, 0);
    store_async_t *a = start(st, 0, 0);
    enum { N = 300 };
    slot_t *s = slots_new(N);
    char text[32];
    for (int i = 0; i < N; i++) {
        int rc;
        if (i % 3 == 0) {
            snprintf(text, sizeof(text), "m%d", i);
            rc = append_text(a, "#o", text, &s[i]);
        } else if (i % 3 == 1) {
            rc = store_async_range(a, "#o", 2, 0, 0, 5, on_range, &s[i]);
        } else {
            rc = store_async_reserve_ids(a, 1000 + i, on_reserve, &s[i]);
        }
        assert_int_equal(rc, 0);
    }
    drain_until(a, N);
    int64_t prev_id = 0;
    for (int i = 0; i < N; i++) {
        assert_true(s[i].ran);
        assert_int_equal(s[i].order, i);
        assert_true(s[i].rc >= 0);
        if (i % 3 == 0) {
            assert_true(s[i].first_id > prev_id);
            prev_id = s[i].first_id;
        } else if (i % 3 == 1) {
            /* The read right after an append ends with that append. */
            snprintf(text, sizeof(text), "m%d", i - 1);
            assert_string_equal(s[i].last_text, text);
            assert_int_equal(s[i].last_id, s[i - 1].first_id);
        }
    }
    store_async_stats_t stats;
    store_async_stats(a, &stats);
    assert_int_equal(stats.queued, 0);
    assert_int_equal(stats.queued_bytes, 0);
    assert_int_equal(stats.submitted, N);
    assert_int_equal(stats.kind[STORE_ASYNC_APPEND].jobs, N / 3);
    assert_int_equal(stats.kind[STORE_ASYNC_RANGE].jobs, N / 3);
    assert_int_equal(stats.kind[STORE_ASYNC_RESERVE].jobs, N / 3);
    assert_int_equal(stats.busy, 0);
    assert_true(store_async_stats_percentile(&stats.kind[STORE_ASYNC_APPEND], 99) <=
                stats.kind[STORE_ASYNC_APPEND].max_us);
    assert_int_equal(store_async_drain(a), 0);
    store_async_stop(a);
    free(s);
    store_close(st);
}

/* Caller-chosen ids on a file: every read submitted after an append sees
 * it, although nothing was drained in between. */
static void test_store_async_read_after_append_sees_it(void **state) {
    (void)state;
    const char *path = tmp_path("read-after-append.db");
    store_t *st = open_store(path, 0, 0);
    int64_t next_id = store_last_id(st) + 1; /* read before the handover */
    store_async_t *a = start(st, 0, 0);
    enum { ROUNDS = 50 };
    slot_t *s = slots_new(2 * ROUNDS);
    for (int i = 0; i < ROUNDS; i++) {
        /* The caller's memory goes at once: the job holds a copy. */
        char *room = strdup("#r"), *text = malloc(16);
        snprintf(text, 16, "r%d", i);
        store_msg_t m = room_msg(room, text, strlen(text));
        m.id = next_id + 2 * i; /* gaps are allowed */
        assert_int_equal(store_async_append(a, &m, 1, on_append, &s[2 * i]), 0);
        memset(text, 'X', 3);
        memset(room, 'X', 2);
        free(text);
        free(room);
        assert_int_equal(store_async_range(a, "#r", 2, 0, 0, 200, on_range, &s[2 * i + 1]), 0);
    }
    drain_until(a, 2 * ROUNDS);
    for (int i = 0; i < ROUNDS; i++) {
        char want[16];
        snprintf(want, sizeof(want), "r%d", i);
        assert_int_equal(s[2 * i].rc, 0);
        assert_int_equal(s[2 * i].first_id, next_id + 2 * i);
        assert_int_equal(s[2 * i + 1].rc, i + 1);
        assert_int_equal(s[2 * i + 1].last_id, next_id + 2 * i);
        assert_string_equal(s[2 * i + 1].last_text, want);
    }
    store_async_stop(a);
    /* The loop has the store back. */
    assert_int_equal(store_last_id(st), next_id + 2 * (ROUNDS - 1));
    free(s);
    store_close(st);
}

/* ------------------------------------------------------------------------ */
/* Bounds */

static void test_store_async_refuses_over_max_jobs(void **state) {
    (void)state;
    store_t *st = open_store(":memory:", 0, 0);
    store_async_t *a = start(st, 8, 0);
    slot_t *s = slots_new(10);
    /* Completed jobs count until drained, so the ninth is refused whatever
     * the worker has done meanwhile. */
    for (int i = 0; i < 8; i++)
        assert_int_equal(append_text(a, "#j", "x", &s[i]), 0);
    assert_int_equal(append_text(a, "#j", "x", &s[8]), STORE_E_BUSY);
    assert_int_equal(store_async_range(a, "#j", 2, 0, 0, 1, on_range, &s[8]), STORE_E_BUSY);
    assert_int_equal(store_async_reserve_ids(a, 100, on_reserve, &s[8]), STORE_E_BUSY);
    store_async_stats_t stats;
    store_async_stats(a, &stats);
    assert_int_equal(stats.queued, 8);
    assert_int_equal(stats.max_queued, 8);
    assert_int_equal(stats.busy, 3);
    drain_until(a, 8);
    assert_false(s[8].ran); /* refused: never called */
    /* Drained: room again. */
    assert_int_equal(append_text(a, "#j", "x", &s[9]), 0);
    drain_until(a, 9);
    assert_false(s[8].ran);
    assert_int_equal(s[9].rc, 0);
    store_async_stop(a);
    free(s);
    store_close(st);
}

static void test_store_async_refuses_over_max_bytes(void **state) {
    (void)state;
    enum { MAX = 64 * 1024, TEXT = 8 * 1024, BIG = 4 * 1024 };
    store_t *st = open_store(tmp_path("bytes.db"), 0, 0);
    store_async_t *a = start(st, 0, MAX);
    slot_t *s = slots_new(64);
    char *text = malloc(MAX + 1);
    memset(text, 'b', MAX + 1);

    /* A job larger than max_bytes alone: refused, whatever the queue. */
    store_msg_t huge = room_msg("#b", text, MAX + 1);
    assert_int_equal(store_async_append(a, &huge, 1, on_append, &s[0]), STORE_E_BUSY);

    /* 8 KiB messages fill 64 KiB after fewer than 8 (each job also holds
     * its bookkeeping). */
    int k = 0;
    for (; k < 16; k++) {
        store_msg_t m = room_msg("#b", text, TEXT);
        int rc = store_async_append(a, &m, 1, on_append, &s[k]);
        if (rc == STORE_E_BUSY)
            break;
        assert_int_equal(rc, 0);
    }
    assert_true(k >= 1 && k < MAX / TEXT);
    store_async_stats_t stats;
    store_async_stats(a, &stats);
    assert_true(stats.queued_bytes <= MAX && stats.queued_bytes > (uint64_t)k * TEXT);
    assert_int_equal(stats.busy, 2);
    drain_until(a, k);
    assert_false(s[k].ran);
    for (int i = 0; i < k; i++)
        assert_int_equal(s[i].rc, 0);

    /* Read results count while they wait for the drain: 20 records of
     * 4 KiB exceed 64 KiB, so a tiny job is refused until the drain. */
    slot_t *w = slots_new(8);
    for (int b = 0; b < 4; b++) {
        store_msg_t m[5];
        for (int i = 0; i < 5; i++)
            m[i] = room_msg("#big", text, BIG);
        assert_int_equal(store_async_append(a, m, 5, on_append, &w[b]), 0);
        drain_until(a, b + 1);
    }
    uint64_t seen = notes_now();
    assert_int_equal(store_async_range(a, "#big", 4, 0, 0, 20, on_range, &w[4]), 0);
    wait_note_after(seen); /* completed, not drained */
    store_async_stats(a, &stats);
    assert_int_equal(stats.queued, 1);
    assert_true(stats.queued_bytes > 20 * BIG);
    assert_int_equal(store_async_reserve_ids(a, 1000, on_reserve, &w[5]), STORE_E_BUSY);
    assert_int_equal(store_async_drain(a), 1);
    assert_int_equal(w[4].rc, 20);
    assert_int_equal(w[4].n, 20);
    assert_false(w[5].ran);
    assert_int_equal(store_async_reserve_ids(a, 1000, on_reserve, &w[5]), 0);
    drain_until(a, 6);
    assert_int_equal(w[5].rc, 0);
    store_async_stats(a, &stats);
    assert_int_equal(stats.queued_bytes, 0);
    assert_true(stats.max_queued_bytes > 20 * BIG);
    store_async_stop(a);
    free(w);
    free(s);
    free(text);
    store_close(st);
}

static void test_store_async_refuses_malformed_jobs(void **state) {
    (void)state;
    store_t *st = open_store(":memory:", 0, 0);
    store_async_t *a = start(st, 0, 0);
    assert_int_equal(store_async_start(st, NULL, NULL, NULL, &(store_async_t *){NULL}),
                     STORE_E_INVALID); /* one front per store */
    char err[256];
    store_maint_config_t mc;
    store_maint_config_defaults(&mc);
    assert_int_equal(store_maint_start(st, &mc, err, sizeof(err)), STORE_E_INVALID);
    assert_int_equal(store_retention_run(st, &mc, NOW_MS, NULL), STORE_E_INVALID);

    slot_t *s = slots_new(5);
    store_msg_t m = room_msg("#v", "x", 1);
    assert_int_equal(store_async_append(a, &m, 1, NULL, &s[0]), STORE_E_INVALID);
    m.room_len = 0;
    assert_int_equal(store_async_append(a, &m, 1, on_append, &s[0]), STORE_E_INVALID);
    m = room_msg("#v", "x", 1);
    m.to = "bob"; /* a room message has no recipient */
    m.to_len = 3;
    assert_int_equal(store_async_append(a, &m, 1, on_append, &s[0]), STORE_E_INVALID);
    store_msg_t two[2] = {room_msg("#v", "x", 1), room_msg("#v", "y", 1)};
    two[0].id = 10;
    two[1].id = 10; /* not increasing */
    assert_int_equal(store_async_append(a, two, 2, on_append, &s[0]), STORE_E_INVALID);
    two[0].id = 0;
    two[1].id = STORE_ID_MAX + 1;
    assert_int_equal(store_async_append(a, two, 2, on_append, &s[0]), STORE_E_INVALID);
    assert_int_equal(store_async_range(a, NULL, 0, 0, 0, 1, on_range, &s[0]), STORE_E_INVALID);
    assert_int_equal(store_async_range(a, "#v", 2, -1, 0, 1, on_range, &s[0]), STORE_E_INVALID);
    /* A name with no room key: refused at once, as store_range would. */
    assert_int_equal(store_async_range(a, "#", 1, 0, 0, 1, on_range, &s[0]), STORE_E_INVALID);
    m = room_msg("#", "x", 1);
    assert_int_equal(store_async_append(a, &m, 1, on_append, &s[0]), STORE_E_INVALID);
    assert_int_equal(
        store_async_range(a, "#v", 2, 0, 0, STORE_ASYNC_RANGE_MAX + 1, on_range, &s[0]),
        STORE_E_INVALID);
    assert_int_equal(store_async_reserve_ids(a, 0, on_reserve, &s[0]), STORE_E_INVALID);
    assert_int_equal(store_async_reserve_ids(a, STORE_ID_MAX + 1, on_reserve, &s[0]),
                     STORE_E_INVALID);

    /* An id below the stored ones is known only to the worker: the
     * callback says so, and the store goes on. */
    store_async_stop(a);
    tt_log_set_level(TT_LOG_OFF); /* set with no worker running: it reads the level */
    a = start(st, 0, 0);
    assert_int_equal(store_async_reserve_ids(a, 50, on_reserve, &s[0]), 0);
    m = room_msg("#v", "late", 4);
    m.id = 20;
    assert_int_equal(store_async_append(a, &m, 1, on_append, &s[1]), 0);
    assert_int_equal(store_async_append(a, NULL, 0, on_append, &s[2]), 0); /* empty: a job */
    m.id = 0;
    assert_int_equal(store_async_append(a, &m, 1, on_append, &s[3]), 0);
    m.id = 5; /* below the stored 21 */
    assert_int_equal(store_async_append(a, &m, 1, on_append, &s[4]), 0);
    drain_until(a, 5);
    store_async_stop(a);
    tt_log_set_level(TT_LOG_INFO);
    assert_int_equal(s[0].rc, 0);
    assert_int_equal(s[1].rc, 0); /* a reservation does not move the batches' ids */
    assert_int_equal(s[1].first_id, 20);
    assert_int_equal(s[2].rc, 0);
    assert_int_equal(s[2].n, 0);
    assert_int_equal(s[3].rc, 0);
    assert_int_equal(s[3].first_id, 21);
    assert_int_equal(s[4].rc, STORE_E_INVALID);
    assert_int_equal(s[4].first_id, 0);
    free(s);
    store_close(st);
}

/* ------------------------------------------------------------------------ */
/* A lock held by another connection */

/* A read before the append completes while the lock is held (WAL readers
 * do not wait for writers); the append, submitted at once, waits on the
 * worker until the lock goes, then completes, and the read behind it sees
 * it. */
static void test_store_async_outside_lock_delays_the_worker_not_the_caller(void **state) {
    (void)state;
    const char *path = tmp_path("lock.db");
    store_t *st = open_store(path, 60000, 0);
    store_async_t *a = start(st, 0, 0);
    slot_t *s = slots_new(4);
    assert_int_equal(append_text(a, "#l", "before", &s[0]), 0);
    drain_until(a, 1);

    sqlite3 *raw;
    assert_int_equal(raw_open(path, &raw), SQLITE_OK);
    assert_int_equal(sqlite3_exec(raw, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);

    assert_int_equal(store_async_range(a, "#l", 2, 0, 0, 10, on_range, &s[1]), 0);
    struct timespec t0, t1, t2;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    assert_int_equal(append_text(a, "#l", "during", &s[2]), 0);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    assert_int_equal(store_async_range(a, "#l", 2, 0, 0, 10, on_range, &s[3]), 0);
    drain_until(a, 2); /* the first read, while the lock is held */
    assert_int_equal(s[1].rc, 1);
    assert_false(s[2].ran);
    store_async_stats_t stats;
    store_async_stats(a, &stats);
    assert_int_equal(stats.kind[STORE_ASYNC_APPEND].jobs, 1); /* only "before" */
    assert_int_equal(stats.queued, 2);

    assert_int_equal(sqlite3_exec(raw, "ROLLBACK", NULL, NULL, NULL), SQLITE_OK);
    drain_until(a, 4);
    clock_gettime(CLOCK_MONOTONIC, &t2);
    assert_int_equal(s[2].rc, 0);
    assert_int_equal(s[3].rc, 2);
    assert_string_equal(s[3].last_text, "during");
    print_message("submission under the lock: %ld ns; its completion: %ld us later\n",
                  (t1.tv_sec - t0.tv_sec) * 1000000000L + (t1.tv_nsec - t0.tv_nsec),
                  ((t2.tv_sec - t1.tv_sec) * 1000000000L + (t2.tv_nsec - t1.tv_nsec)) / 1000);
    sqlite3_close(raw);
    store_async_stop(a);
    free(s);
    store_close(st);
}

/* A lock held longer than busy_timeout: the append fails with
 * STORE_E_UNAVAILABLE on the worker (so it did wait on the lock, and the
 * caller did not), and the next one succeeds once the lock is gone. */
static void test_store_async_outside_lock_past_busy_timeout_fails_unavailable(void **state) {
    (void)state;
    const char *path = tmp_path("lock-timeout.db");
    store_t *st = open_store(path, 50, 0);
    tt_log_set_level(TT_LOG_OFF);
    store_async_t *a = start(st, 0, 0);
    slot_t *s = slots_new(3);
    sqlite3 *raw;
    assert_int_equal(raw_open(path, &raw), SQLITE_OK);
    assert_int_equal(sqlite3_exec(raw, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
    uint64_t seen = notes_now();
    assert_int_equal(append_text(a, "#t", "locked out", &s[0]), 0);
    assert_int_equal(notes_now(), seen); /* returned before the worker was done */
    assert_int_equal(store_async_drain(a), 0);
    drain_until(a, 1); /* after busy_timeout, the lock still held */
    assert_int_equal(s[0].rc, STORE_E_UNAVAILABLE);
    assert_int_equal(s[0].first_id, 0);
    assert_int_equal(sqlite3_exec(raw, "ROLLBACK", NULL, NULL, NULL), SQLITE_OK);
    assert_int_equal(append_text(a, "#t", "let in", &s[1]), 0);
    assert_int_equal(store_async_range(a, "#t", 2, 0, 0, 10, on_range, &s[2]), 0);
    drain_until(a, 3);
    assert_int_equal(s[1].rc, 0);
    assert_int_equal(s[2].rc, 1);
    assert_string_equal(s[2].last_text, "let in");
    store_async_stats_t stats;
    store_async_stats(a, &stats);
    assert_int_equal(stats.kind[STORE_ASYNC_APPEND].failures, 1);
    assert_true(stats.kind[STORE_ASYNC_APPEND].max_us >= 50000);
    store_async_stop(a);
    tt_log_set_level(TT_LOG_INFO);
    sqlite3_close(raw);
    free(s);
    store_close(st);
}

/* ------------------------------------------------------------------------ */
/* Stop and callbacks that submit */

static void on_append_submit(void *arg, int rc, const store_msg_t *msgs, size_t n) {
    slot_t *s = arg;
    on_append(arg, rc, msgs, n);
    s->submit_rc = append_text(s->a, "#s", "too late", s);
}

static void test_store_async_stop_runs_every_queued_job(void **state) {
    (void)state;
    const char *path = tmp_path("stop.db");
    store_t *st = open_store(path, 0, 0);
    store_async_t *a = start(st, 0, 0);
    enum { N = 200 };
    slot_t *s = slots_new(N + 1);
    for (int i = 0; i < N; i++)
        assert_int_equal(append_text(a, "#s", "queued", &s[i]), 0);
    s[N].a = a;
    store_msg_t m = room_msg("#s", "last", 4);
    assert_int_equal(store_async_append(a, &m, 1, on_append_submit, &s[N]), 0);
    store_async_stop(a); /* nothing drained before */
    assert_int_equal(ran, N + 1);
    for (int i = 0; i <= N; i++) {
        assert_int_equal(s[i].order, i);
        assert_int_equal(s[i].rc, 0);
    }
    assert_int_equal(s[N].submit_rc, STORE_E_BUSY); /* refused during stop */
    /* The loop owns the store again, and it holds every job's message. */
    assert_int_equal(store_last_id(st), s[N].first_id);
    store_close(st);
    st = open_store(path, 0, 0);
    a = start(st, 0, 0);
    slot_t *r = slots_new(1);
    assert_int_equal(store_async_range(a, "#s", 2, 0, 0, 1000, on_range, &r[0]), 0);
    drain_until(a, 1);
    assert_int_equal(r[0].rc, N + 1);
    assert_string_equal(r[0].last_text, "last");
    store_async_stop(a);
    store_async_stop(NULL);
    free(r);
    free(s);
    store_close(st);
}

/* Each append's callback submits a read, whose callback submits the next
 * append, through a queue of one job: a drained job no longer counts. */
static void on_chain_range(void *arg, int rc, const store_rec_t *recs, size_t n, bool more);

static void on_chain_append(void *arg, int rc, const store_msg_t *msgs, size_t n) {
    slot_t *s = arg;
    on_append(arg, rc, msgs, n);
    s->nested_drain = (int)store_async_drain(s->a); /* does nothing */
    s[1].a = s->a;
    s->submit_rc = store_async_range(s->a, "#c", 2, 0, 0, 1, on_chain_range, &s[1]);
}

static void on_chain_range(void *arg, int rc, const store_rec_t *recs, size_t n, bool more) {
    slot_t *s = arg;
    on_range(arg, rc, recs, n, more);
    if (s->index + 1 >= 100)
        return;
    s[1].a = s->a;
    char text[16];
    snprintf(text, sizeof(text), "c%d", s->index + 1);
    store_msg_t m = room_msg("#c", text, strlen(text));
    s->submit_rc = store_async_append(s->a, &m, 1, on_chain_append, &s[1]);
}

static void test_store_async_callbacks_submit_from_drain(void **state) {
    (void)state;
    store_t *st = open_store(":memory:", 0, 0);
    store_async_t *a = start(st, 1, 0);
    slot_t *s = slots_new(100);
    s[0].a = a;
    store_msg_t m = room_msg("#c", "c0", 2);
    assert_int_equal(store_async_append(a, &m, 1, on_chain_append, &s[0]), 0);
    assert_int_equal(append_text(a, "#c", "full", &s[99]), STORE_E_BUSY);
    drain_until(a, 100);
    for (int i = 0; i < 100; i++) {
        assert_int_equal(s[i].order, i);
        assert_true(s[i].rc >= 0);
        if (i < 99)
            assert_int_equal(s[i].submit_rc, 0);
        if (i % 2 == 0) {
            assert_int_equal(s[i].nested_drain, 0);
        } else {
            /* The read submitted by an append's callback sees it. */
            char want[16];
            snprintf(want, sizeof(want), "c%d", i - 1);
            assert_int_equal(s[i].last_id, s[i - 1].first_id);
            assert_string_equal(s[i].last_text, want);
        }
    }
    store_async_stats_t stats;
    store_async_stats(a, &stats);
    assert_int_equal(stats.max_queued, 1);
    store_async_stop(a);
    free(s);
    store_close(st);
}

/* ------------------------------------------------------------------------ */
/* Beside the maintenance thread */

static void count_rec(void *ctx, const store_rec_t *r) {
    (void)r;
    (*(size_t *)ctx)++;
}

static void with_maintenance(const char *path) {
    enum { ROUNDS = 400, BATCH = 5, KEEP = 10 };
    store_t *st = open_store(path, 0, 0);
    store_maint_config_t mc;
    store_maint_config_defaults(&mc);
    mc.retain_messages = KEEP;
    mc.interval_ms = 1;
    mc.chunk_rows = 3;
    mc.checkpoint_pages = 128;
    char err[256];
    assert_int_equal(store_maint_start(st, &mc, err, sizeof(err)), 0);
    store_async_t *a = start(st, 16, 0);
    slot_t *s = slots_new(2 * ROUNDS);
    static char text[600];
    memset(text, 'm', sizeof(text));
    int submitted = 0;
    while (submitted < 2 * ROUNDS) {
        int rc;
        if (submitted % 2 == 0) {
            store_msg_t m[BATCH];
            for (int k = 0; k < BATCH; k++)
                m[k] = room_msg("#maint", text, sizeof(text));
            rc = store_async_append(a, m, BATCH, on_append, &s[submitted]);
        } else {
            rc = store_async_range(a, "#maint", 6, 0, 0, 5, on_range, &s[submitted]);
        }
        if (rc == STORE_E_BUSY) {
            drain_until(a, ran + 1);
            continue;
        }
        assert_int_equal(rc, 0);
        submitted++;
    }
    drain_until(a, 2 * ROUNDS);
    store_async_stop(a);
    store_maint_stop(st);
    for (int i = 0; i < 2 * ROUNDS; i++) {
        assert_int_equal(s[i].order, i);
        if (i % 2 == 0) {
            assert_int_equal(s[i].rc, 0); /* the write mutex, not SQLITE_BUSY */
            assert_int_equal(s[i].last_id - s[i].first_id, BATCH - 1);
        } else {
            /* Retention deletes the oldest only: the newest is the append
             * just before, whatever the thread has deleted meanwhile. */
            assert_int_equal(s[i].rc, 5);
            assert_int_equal(s[i].last_id, s[i - 1].last_id);
        }
    }
    /* Every row is either still there or counted as deleted (read on the
     * loop: the store is the loop's again). */
    store_stats_t stats;
    store_stats(st, &stats);
    size_t left = 0;
    bool more = true;
    assert_true(store_history(st, "#maint", 0, 100000, count_rec, &left, &more) >= 0);
    assert_false(more);
    assert_int_equal(left + stats.retention.deleted_by_count, ROUNDS * BATCH);
    print_message("%s: %llu retention passes, %llu checkpoints, %zu rows left\n", path,
                  (unsigned long long)stats.passes, (unsigned long long)stats.checkpoints, left);
    free(s);
    store_close(st);
}

static void test_store_async_memory_database_beside_maintenance(void **state) {
    (void)state;
    with_maintenance(":memory:");
}

static void test_store_async_file_database_beside_maintenance(void **state) {
    (void)state;
    with_maintenance(tmp_path("maint.db"));
}

/* ------------------------------------------------------------------------ */
/* Failures */

/* A size cap (--db-max-bytes): appends fail with STORE_E_UNAVAILABLE, reads
 * keep working and see exactly what was committed, and once retention has
 * freed pages, appends succeed again, on the same front. */
static void test_store_async_full_store_fails_and_keeps_working(void **state) {
    (void)state;
    store_t *st = open_store(tmp_path("full.db"), 0, 256 * 1024);
    tt_log_set_level(TT_LOG_OFF); /* before the worker exists: no racing reads of the level */
    store_async_t *a = start(st, 0, 0);
    static char text[1000];
    memset(text, 'z', sizeof(text));
    slot_t *s = slots_new(2000);
    int b = 0, ok = 0;
    int64_t last_ok = 0;
    store_msg_t m[20];
    for (int i = 0; i < 20; i++)
        m[i] = room_msg("#full", text, sizeof(text));
    for (; b < 1000; b++) {
        assert_int_equal(store_async_append(a, m, 20, on_append, &s[b]), 0);
        drain_until(a, b + 1);
        if (s[b].rc != 0)
            break;
        ok++;
        last_ok = s[b].last_id;
    }
    assert_int_equal(s[b].rc, STORE_E_UNAVAILABLE);
    assert_true(ok > 2);
    int base = b + 1;
    /* Still full: refused again, cleanly; reads see what was committed. */
    assert_int_equal(store_async_append(a, m, 20, on_append, &s[base]), 0);
    assert_int_equal(store_async_range(a, "#full", 5, 0, 0, 1, on_range, &s[base + 1]), 0);
    drain_until(a, base + 2);
    assert_int_equal(s[base].rc, STORE_E_UNAVAILABLE);
    assert_int_equal(s[base + 1].rc, 1);
    assert_true(s[base + 1].more);
    assert_int_equal(s[base + 1].last_id, last_ok);

    /* Retention on the maintenance connection, beside the front. */
    store_maint_config_t mc;
    store_maint_config_defaults(&mc);
    mc.retain_messages = 20;
    assert_int_equal(store_retention_run(st, &mc, NOW_MS, NULL), 0);
    assert_int_equal(append_text(a, "#full", "room again", &s[base + 2]), 0);
    drain_until(a, base + 3);
    assert_int_equal(s[base + 2].rc, 0);
    assert_true(s[base + 2].first_id > last_ok);
    store_async_stats_t stats;
    store_async_stats(a, &stats);
    assert_int_equal(stats.kind[STORE_ASYNC_APPEND].failures, 2);
    store_async_stop(a);
    tt_log_set_level(TT_LOG_INFO);
    free(s);
    store_close(st);
}

/* ------------------------------------------------------------------------ */
/* Many jobs */

static void test_store_async_ten_thousand_jobs_through_a_small_queue(void **state) {
    (void)state;
    enum { N = 10000, MAX_JOBS = 64 };
    store_t *st = open_store(tmp_path("many.db"), 0, 0);
    int64_t next_id = store_last_id(st) + 1;
    store_async_t *a = start(st, MAX_JOBS, 0);
    slot_t *s = slots_new(N);
    int appends = 0;
    for (int i = 0; i < N;) {
        int rc;
        if (i % 10 == 9) {
            rc = store_async_range(a, "#many", 5, 0, 0, 3, on_range, &s[i]);
        } else {
            char text[24];
            snprintf(text, sizeof(text), "n%d", i);
            store_msg_t m = room_msg("#many", text, strlen(text));
            m.id = next_id + appends;
            rc = store_async_append(a, &m, 1, on_append, &s[i]);
        }
        if (rc == STORE_E_BUSY) {
            drain_until(a, ran + 1);
            continue;
        }
        assert_int_equal(rc, 0);
        if (i % 10 != 9)
            appends++;
        i++;
    }
    drain_until(a, N);
    store_async_stats_t stats;
    store_async_stats(a, &stats);
    assert_true(stats.max_queued <= MAX_JOBS);
    assert_int_equal(stats.submitted, N);
    assert_int_equal(stats.queued, 0);
    int seen_appends = 0;
    for (int i = 0; i < N; i++) {
        assert_int_equal(s[i].order, i);
        if (i % 10 == 9) {
            assert_int_equal(s[i].rc, 3);
            assert_int_equal(s[i].last_id, next_id + seen_appends - 1);
        } else {
            assert_int_equal(s[i].rc, 0);
            assert_int_equal(s[i].first_id, next_id + seen_appends);
            seen_appends++;
        }
    }
    const store_async_kind_stats_t *k = &stats.kind[STORE_ASYNC_APPEND];
    print_message("%d jobs, at most %llu held, %llu refused busy; append latency p50 <= %llu us, "
                  "p99 <= %llu us, max %llu us; worker time per append %llu us\n",
                  N, (unsigned long long)stats.max_queued, (unsigned long long)stats.busy,
                  (unsigned long long)store_async_stats_percentile(k, 50),
                  (unsigned long long)store_async_stats_percentile(k, 99),
                  (unsigned long long)k->max_us, (unsigned long long)(k->run_us / k->jobs));
    store_async_stop(a);
    assert_int_equal(store_last_id(st), next_id + appends - 1);
    free(s);
    store_close(st);
}

/* ------------------------------------------------------------------------ */
/* Calls of the caller's own */

/* What a call did on the worker, and what it is to do. */
typedef struct call_s {
    slot_t *slot;
    const char *room; /* counts this room's messages */
    bool append;      /* then appends one to it */
    int ret;          /* returned when not counting (room NULL) */
    pthread_t thread;
    int seen;
    store_async_t *a; /* done: submits another call (refused during stop) */
    int submit_rc;
} call_t;

static void count_one(void *ctx, const store_rec_t *r) {
    (void)r;
    (*(int *)ctx)++;
}

static int call_run(store_t *st, void *arg) {
    call_t *c = arg;
    c->thread = pthread_self();
    if (c->room == NULL)
        return c->ret;
    int n = 0;
    c->seen = store_last(st, c->room, 1000, count_one, &n);
    assert_int_equal(c->seen, n);
    if (c->append) {
        store_msg_t m = room_msg(c->room, "by a call", 9);
        int rc = store_append_batch(st, &m, 1);
        if (rc < 0)
            return rc;
    }
    return c->seen;
}

static void call_done(void *arg, int rc) {
    call_t *c = arg;
    slot_ran(c->slot, rc);
    if (c->a != NULL)
        c->submit_rc = store_async_call(c->a, 0, call_run, call_done, c + 1);
}

/* Calls take their turn among appends and reads, both ways: a call sees
 * the appends before it, a read sees what a call wrote. */
static void test_store_async_call_runs_in_order_with_appends_and_reads(void **state) {
    (void)state;
    store_t *st = open_store(":memory:", 0, 0);
    store_async_t *a = start(st, 0, 0);
    slot_t *s = slots_new(7);
    call_t c[3] = {{.slot = &s[1], .room = "#C"},
                   {.slot = &s[3], .room = "c", .append = true},
                   {.slot = &s[6], .ret = STORE_E_NOTFOUND}};
    assert_int_equal(append_text(a, "#c", "one", &s[0]), 0);
    assert_int_equal(store_async_call(a, sizeof(c[0]), call_run, call_done, &c[0]), 0);
    assert_int_equal(append_text(a, "#c", "two", &s[2]), 0);
    assert_int_equal(store_async_call(a, sizeof(c[1]), call_run, call_done, &c[1]), 0);
    assert_int_equal(store_async_range(a, "#c", 2, 0, 0, 10, on_range, &s[4]), 0);
    assert_int_equal(append_text(a, "#c", "three", &s[5]), 0);
    assert_int_equal(store_async_call(a, 0, call_run, call_done, &c[2]), 0);
    drain_until(a, 7);
    for (int i = 0; i < 7; i++)
        assert_int_equal(s[i].order, i);
    assert_int_equal(s[1].rc, 1); /* saw "one" */
    assert_int_equal(s[3].rc, 2); /* saw "one", "two", then wrote */
    assert_int_equal(s[4].rc, 3); /* the read sees the call's message */
    assert_string_equal(s[4].last_text, "by a call");
    assert_int_equal(s[5].rc, 0);
    assert_int_equal(s[6].rc, STORE_E_NOTFOUND); /* run's result, as it was */
    for (int i = 0; i < 3; i++)
        assert_false(pthread_equal(c[i].thread, pthread_self())); /* on the worker */
    store_async_stats_t stats;
    store_async_stats(a, &stats);
    assert_int_equal(stats.kind[STORE_ASYNC_CALL].jobs, 3);
    assert_int_equal(stats.kind[STORE_ASYNC_CALL].failures, 1);
    assert_int_equal(stats.queued_bytes, 0);
    store_async_stop(a);
    free(s);
    store_close(st);
}

static void test_store_async_call_busy_when_full(void **state) {
    (void)state;
    enum { MAX = 64 * 1024 };
    store_t *st = open_store(":memory:", 0, 0);
    store_async_t *a = start(st, 4, MAX);
    slot_t *s = slots_new(8);
    call_t c[8] = {0};
    for (int i = 0; i < 8; i++)
        c[i].slot = &s[i];
    assert_int_equal(store_async_call(a, 0, NULL, call_done, &c[0]), STORE_E_INVALID);
    assert_int_equal(store_async_call(a, 0, call_run, NULL, &c[0]), STORE_E_INVALID);
    /* bytes count: one call over max_bytes alone, then two halves that
     * cannot both be held, and SIZE_MAX. */
    assert_int_equal(store_async_call(a, MAX + 1, call_run, call_done, &c[0]), STORE_E_BUSY);
    assert_int_equal(store_async_call(a, SIZE_MAX, call_run, call_done, &c[0]), STORE_E_BUSY);
    assert_int_equal(store_async_call(a, MAX / 2, call_run, call_done, &c[0]), 0);
    assert_int_equal(store_async_call(a, MAX / 2, call_run, call_done, &c[1]), STORE_E_BUSY);
    store_async_stats_t stats;
    store_async_stats(a, &stats);
    assert_true(stats.queued_bytes > MAX / 2);
    /* max_jobs: three more small ones fit, the fifth job does not. */
    for (int i = 1; i < 4; i++)
        assert_int_equal(store_async_call(a, 16, call_run, call_done, &c[i]), 0);
    assert_int_equal(store_async_call(a, 16, call_run, call_done, &c[4]), STORE_E_BUSY);
    store_async_stats(a, &stats);
    assert_int_equal(stats.busy, 4);
    assert_int_equal(stats.queued, 4);
    drain_until(a, 4);
    assert_false(s[4].ran);
    assert_int_equal(store_async_call(a, MAX / 2, call_run, call_done, &c[5]), 0);
    drain_until(a, 5);
    store_async_stop(a);
    free(s);
    store_close(st);
}

/* Stop runs every call to completion and its done, in order; a done that
 * submits meanwhile is refused. */
static void test_store_async_stop_runs_pending_calls(void **state) {
    (void)state;
    store_t *st = open_store(tmp_path("stop-calls.db"), 0, 0);
    store_async_t *a = start(st, 0, 0);
    enum { N = 50 };
    slot_t *s = slots_new(N + 1);
    call_t *c = calloc(N + 1, sizeof(*c));
    assert_non_null(c);
    for (int i = 0; i < N; i++) {
        c[i].slot = &s[i];
        c[i].room = "#stop";
        c[i].append = true;
        assert_int_equal(store_async_call(a, 0, call_run, call_done, &c[i]), 0);
    }
    c[N - 1].a = a; /* its done tries to submit c[N] */
    c[N].slot = &s[N];
    store_async_stop(a); /* nothing drained before */
    assert_int_equal(ran, N);
    for (int i = 0; i < N; i++) {
        assert_int_equal(s[i].order, i);
        assert_int_equal(s[i].rc, i); /* each saw the ones before */
    }
    assert_int_equal(c[N - 1].submit_rc, STORE_E_BUSY);
    assert_false(s[N].ran);
    /* The loop has the store back, with every call's message. */
    assert_int_equal(store_last_id(st), N);
    free(c);
    free(s);
    store_close(st);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_store_async_completes_in_submission_order),
        cmocka_unit_test(test_store_async_read_after_append_sees_it),
        cmocka_unit_test(test_store_async_refuses_over_max_jobs),
        cmocka_unit_test(test_store_async_refuses_over_max_bytes),
        cmocka_unit_test(test_store_async_refuses_malformed_jobs),
        cmocka_unit_test(test_store_async_outside_lock_delays_the_worker_not_the_caller),
        cmocka_unit_test(test_store_async_outside_lock_past_busy_timeout_fails_unavailable),
        cmocka_unit_test(test_store_async_stop_runs_every_queued_job),
        cmocka_unit_test(test_store_async_callbacks_submit_from_drain),
        cmocka_unit_test(test_store_async_memory_database_beside_maintenance),
        cmocka_unit_test(test_store_async_file_database_beside_maintenance),
        cmocka_unit_test(test_store_async_full_store_fails_and_keeps_working),
        cmocka_unit_test(test_store_async_ten_thousand_jobs_through_a_small_queue),
        cmocka_unit_test(test_store_async_call_runs_in_order_with_appends_and_reads),
        cmocka_unit_test(test_store_async_call_busy_when_full),
        cmocka_unit_test(test_store_async_stop_runs_pending_calls),
    };
    return cmocka_run_group_tests(tests, setup_tmpdir, teardown_tmpdir);
}
