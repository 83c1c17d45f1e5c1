/* The maintenance thread: retention passes (by count per room and by age),
 * the expiry of idle login tokens, and WAL checkpoints, on a connection of
 * its own, so the loop's commits only ever append to the WAL. Deletes run
 * in small transactions; between them the loop can commit. Not responsible
 * for deciding retention policy (the caller's config) nor for the loop's
 * reads and writes.
 *
 * Retention deletes messages only. A conversation row (schema v2) keeps
 * its last_id when that message goes: the list stays in the order of the
 * conversations' activity, its unread counts read the messages and so
 * count only what is left, and correcting last_id would mean a lookup per
 * conversation for every chunk deleted, under the write lock. Rooms are
 * the folded keys (store_room_key), so retain_messages counts a room's
 * messages whatever spelling they were sent under. */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/log.h"
#include "core/xmalloc.h"
#include "store/store_int.h"
#include "store/store_search.h"

#define MS_PER_DAY INT64_C(86400000)

void store_maint_config_defaults(store_maint_config_t *cfg) {
    memset(cfg, 0, sizeof(*cfg));
    cfg->interval_ms = 60000;
    cfg->chunk_rows = 500;
    cfg->checkpoint_pages = 1000;
}

static void fill_defaults(store_maint_config_t *cfg) {
    if (cfg->interval_ms == 0)
        cfg->interval_ms = 60000;
    if (cfg->chunk_rows == 0)
        cfg->chunk_rows = 500;
    if (cfg->checkpoint_pages == 0)
        cfg->checkpoint_pages = 1000;
}

static uint64_t mono_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* ------------------------------------------------------------------------ */
/* Checkpoints */

/* The WAL hook of both connections, called after each commit with the
 * WAL's size. It replaces SQLite's autocheckpoint, which would checkpoint
 * (and fsync) right inside the commit: on the loop, or on the thread while
 * it holds the write mutex. It only raises a flag and wakes the thread. */
static int on_wal_commit(void *arg, sqlite3 *db, const char *name, int pages) {
    store_t *st = arg;
    (void)db;
    (void)name;
    if (pages >= (int)st->mcfg.checkpoint_pages && !atomic_load(&st->want_checkpoint)) {
        pthread_mutex_lock(&st->ctl_mu);
        atomic_store(&st->want_checkpoint, true);
        pthread_cond_signal(&st->ctl_cv);
        pthread_mutex_unlock(&st->ctl_mu);
    }
    return SQLITE_OK;
}

static void checkpoint(store_t *st) {
    int log_frames = 0, done_frames = 0;
    int rc = sqlite3_wal_checkpoint_v2(st->mdb, "main", SQLITE_CHECKPOINT_PASSIVE, &log_frames,
                                       &done_frames);
    if (rc != SQLITE_OK && (rc & 0xff) != SQLITE_BUSY)
        tt_log_warn("store: %s: checkpoint failed: %s", st->path, sqlite3_errmsg(st->mdb));
    pthread_mutex_lock(&st->ctl_mu);
    st->stats.checkpoints++;
    pthread_mutex_unlock(&st->ctl_mu);
}

/* ------------------------------------------------------------------------ */
/* The maintenance connection */

static int mprepare(store_t *st, const char *sql, sqlite3_stmt **out) {
    return sqlite3_prepare_v3(st->mdb, sql, -1, SQLITE_PREPARE_PERSISTENT, out, NULL);
}

/* Opens the maintenance connection (for a file database; a shared one uses
 * the loop's) and prepares its statements, once. */
static int maint_open(store_t *st, char *err, size_t errlen) {
    if (st->mdb != NULL)
        return 0;
    int rc = SQLITE_OK;
    if (st->shared) {
        st->mdb = st->db;
    } else {
        rc = sqlite3_open_v2(st->path, &st->mdb, SQLITE_OPEN_READWRITE | SQLITE_OPEN_EXRESCODE,
                             NULL);
        if (rc == SQLITE_OK) {
            /* synchronous is per connection: the same level as the loop's.
             * A short busy timeout: a delete waits for a lock (held by
             * another process) while holding the write mutex, so the loop
             * would wait too; better to give up and retry next pass. */
            sqlite3_busy_timeout(st->mdb, 100);
            rc = sqlite3_exec(st->mdb,
                              st->sync_full ? "PRAGMA synchronous = FULL"
                                            : "PRAGMA synchronous = NORMAL",
                              NULL, NULL, NULL);
            /* Its own deletes must not checkpoint inside their commit either:
             * that would hold the write mutex through an fsync. They ask
             * for a checkpoint like the loop's commits, and the thread runs
             * it after releasing the mutex. */
            if (rc == SQLITE_OK)
                sqlite3_wal_hook(st->mdb, on_wal_commit, st);
            /* Its deletes reindex (the search index's triggers) and zero. */
            if (rc == SQLITE_OK)
                rc = store__search_setup(st->mdb);
        }
    }
    if (rc == SQLITE_OK)
        rc = mprepare(st,
                      "DELETE FROM messages WHERE id IN"
                      " (SELECT id FROM messages WHERE ts < ?1 ORDER BY ts LIMIT ?2)",
                      &st->ms_del_age);
    if (rc == SQLITE_OK)
        rc = mprepare(st, "SELECT room FROM messages WHERE room > ?1 ORDER BY room LIMIT 1",
                      &st->ms_next_room);
    /* Two index probes; a room whose id span is within the limit cannot
     * hold more messages than the limit, and needs no walk. */
    if (rc == SQLITE_OK)
        rc = mprepare(st,
                      "SELECT (SELECT min(id) FROM messages WHERE room = ?1),"
                      " (SELECT max(id) FROM messages WHERE room = ?1)",
                      &st->ms_room_span);
    if (rc == SQLITE_OK)
        rc = mprepare(st,
                      "SELECT id FROM messages WHERE room = ?1 ORDER BY id DESC LIMIT 1 OFFSET ?2",
                      &st->ms_room_bound);
    if (rc == SQLITE_OK)
        rc = mprepare(st,
                      "DELETE FROM messages WHERE id IN (SELECT id FROM messages"
                      " WHERE room = ?1 AND id <= ?2 ORDER BY id LIMIT ?3)",
                      &st->ms_del_room);
    if (rc == SQLITE_OK)
        rc = mprepare(st, STORE__SQL_TOKENS_EXPIRE, &st->ms_tok_expire);
    if (rc != SQLITE_OK) {
        store__err(st, err, errlen, "maintenance connection: %s",
                   st->mdb ? sqlite3_errmsg(st->mdb) : sqlite3_errstr(rc));
        store__maint_close(st);
        return store__map_rc(rc);
    }
    return 0;
}

void store__maint_close(store_t *st) {
    sqlite3_stmt **all[] = {&st->ms_del_age,    &st->ms_next_room, &st->ms_room_span,
                            &st->ms_room_bound, &st->ms_del_room,  &st->ms_tok_expire};
    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
        sqlite3_finalize(*all[i]);
        *all[i] = NULL;
    }
    if (st->mdb != NULL && st->mdb != st->db)
        sqlite3_close(st->mdb);
    st->mdb = NULL;
}

/* ------------------------------------------------------------------------ */
/* Retention */

/* Reads on the maintenance connection need the write mutex only when the
 * connection is shared with the loop; on its own connection WAL gives it a
 * snapshot that never blocks the loop's commits. */
static void read_lock(store_t *st) {
    if (st->shared)
        pthread_mutex_lock(&st->write_mu);
}

static void read_unlock(store_t *st) {
    if (st->shared)
        pthread_mutex_unlock(&st->write_mu);
}

/* Runs one bound DELETE as its own (autocommit) transaction under the write
 * mutex, so the loop waits for at most one chunk. Returns rows deleted or a
 * negative SQLite code. */
static int64_t delete_chunk(store_t *st, sqlite3_stmt *s, store_retention_stats_t *acc) {
    pthread_mutex_lock(&st->write_mu);
    uint64_t t0 = mono_us();
    int rc = sqlite3_step(s);
    int64_t n = rc == SQLITE_DONE ? sqlite3_changes64(st->mdb) : -(int64_t)rc;
    uint64_t dt = mono_us() - t0;
    sqlite3_reset(s);
    pthread_mutex_unlock(&st->write_mu);
    if (atomic_load(&st->want_checkpoint)) {
        atomic_store(&st->want_checkpoint, false);
        checkpoint(st);
    }
    acc->transactions++;
    if (dt > acc->max_tx_us)
        acc->max_tx_us = dt;
    return n;
}

/* Runs the DELETE s (?1 the cutoff, ?2 the chunk) a chunk per transaction
 * until a chunk comes back short or the thread is told to stop, adding the
 * rows to *deleted. */
static int delete_chunks(store_t *st, sqlite3_stmt *s, int64_t cutoff,
                         const store_maint_config_t *cfg, uint64_t *deleted,
                         store_retention_stats_t *acc) {
    sqlite3_bind_int64(s, 1, cutoff);
    sqlite3_bind_int64(s, 2, cfg->chunk_rows);
    for (;;) {
        int64_t n = delete_chunk(st, s, acc);
        if (n < 0)
            return (int)-n;
        *deleted += (uint64_t)n;
        if (n < (int64_t)cfg->chunk_rows || atomic_load(&st->stop))
            return SQLITE_OK;
    }
}

static int retain_by_age(store_t *st, const store_maint_config_t *cfg, int64_t now_ms,
                         store_retention_stats_t *acc) {
    int64_t cutoff = now_ms - (int64_t)cfg->retain_days * MS_PER_DAY;
    return delete_chunks(st, st->ms_del_age, cutoff, cfg, &acc->deleted_by_age, acc);
}

/* Deletes the tokens idle for more than token_max_idle_ms, a chunk per
 * transaction, as store_tokens_expire does on the loop's connection. */
static int expire_tokens(store_t *st, const store_maint_config_t *cfg, int64_t now_ms,
                         store_retention_stats_t *acc) {
    return delete_chunks(st, st->ms_tok_expire, now_ms - cfg->token_max_idle_ms, cfg,
                         &acc->tokens_expired, acc);
}

/* Finds the newest id of room that must go to keep retain_messages: 0 when
 * the room is within the limit. */
static int room_cutoff(store_t *st, const store_maint_config_t *cfg, const char *room,
                       int64_t *cutoff) {
    *cutoff = 0;
    read_lock(st);
    sqlite3_stmt *s = st->ms_room_span;
    sqlite3_bind_text(s, 1, room, -1, SQLITE_TRANSIENT);
    int rc = sqlite3_step(s);
    bool need_walk = false;
    if (rc == SQLITE_ROW) {
        int64_t lo = sqlite3_column_int64(s, 0), hi = sqlite3_column_int64(s, 1);
        need_walk = (uint64_t)(hi - lo) >= cfg->retain_messages;
        rc = SQLITE_OK;
    }
    sqlite3_reset(s);
    if (rc == SQLITE_OK && need_walk) {
        s = st->ms_room_bound;
        sqlite3_bind_text(s, 1, room, -1, SQLITE_TRANSIENT);
        sqlite3_bind_int64(s, 2, (sqlite3_int64)cfg->retain_messages);
        rc = sqlite3_step(s);
        if (rc == SQLITE_ROW) {
            *cutoff = sqlite3_column_int64(s, 0);
            rc = SQLITE_OK;
        } else if (rc == SQLITE_DONE) {
            rc = SQLITE_OK;
        }
        sqlite3_reset(s);
    }
    read_unlock(st);
    return rc;
}

static int retain_by_count(store_t *st, const store_maint_config_t *cfg,
                           store_retention_stats_t *acc) {
    /* Rooms are visited in name order by seeking past the previous one in
     * the (room, id) index: one probe per room, however many rows. */
    char *room = xstrdup("");
    int rc = SQLITE_OK;
    while (rc == SQLITE_OK && !atomic_load(&st->stop)) {
        read_lock(st);
        sqlite3_stmt *s = st->ms_next_room;
        sqlite3_bind_text(s, 1, room, -1, SQLITE_TRANSIENT);
        rc = sqlite3_step(s);
        bool found = rc == SQLITE_ROW && sqlite3_column_text(s, 0) != NULL;
        if (found) {
            free(room);
            room = xstrdup((const char *)sqlite3_column_text(s, 0));
        }
        rc = rc == SQLITE_ROW || rc == SQLITE_DONE ? SQLITE_OK : rc;
        sqlite3_reset(s);
        read_unlock(st);
        if (rc != SQLITE_OK || !found)
            break;

        int64_t cutoff;
        rc = room_cutoff(st, cfg, room, &cutoff);
        if (rc != SQLITE_OK || cutoff == 0)
            continue;
        sqlite3_stmt *d = st->ms_del_room;
        sqlite3_bind_text(d, 1, room, -1, SQLITE_TRANSIENT);
        sqlite3_bind_int64(d, 2, cutoff);
        sqlite3_bind_int64(d, 3, cfg->chunk_rows);
        for (;;) {
            int64_t n = delete_chunk(st, d, acc);
            if (n < 0) {
                rc = (int)-n;
                break;
            }
            acc->deleted_by_count += (uint64_t)n;
            if (n < (int64_t)cfg->chunk_rows || atomic_load(&st->stop))
                break;
        }
    }
    free(room);
    return rc;
}

static void stats_add(store_t *st, const store_retention_stats_t *pass) {
    pthread_mutex_lock(&st->ctl_mu);
    store_retention_stats_t *t = &st->stats.retention;
    t->deleted_by_count += pass->deleted_by_count;
    t->deleted_by_age += pass->deleted_by_age;
    t->transactions += pass->transactions;
    t->tokens_expired += pass->tokens_expired;
    if (pass->max_tx_us > t->max_tx_us)
        t->max_tx_us = pass->max_tx_us;
    st->stats.passes++;
    pthread_mutex_unlock(&st->ctl_mu);
}

/* One retention pass; age first, as it removes the most for the least
 * work. Returns 0 or STORE_E_*. */
static int retention_pass(store_t *st, const store_maint_config_t *cfg, int64_t now_ms,
                          store_retention_stats_t *pass) {
    int rc = SQLITE_OK;
    if (cfg->retain_days > 0)
        rc = retain_by_age(st, cfg, now_ms, pass);
    if (rc == SQLITE_OK && cfg->retain_messages > 0)
        rc = retain_by_count(st, cfg, pass);
    if (rc == SQLITE_OK && cfg->token_max_idle_ms > 0)
        rc = expire_tokens(st, cfg, now_ms, pass);
    stats_add(st, pass);
    if (pass->tokens_expired > 0)
        tt_log_info("store: expired %llu idle login token(s)",
                    (unsigned long long)pass->tokens_expired);
    if (pass->deleted_by_age + pass->deleted_by_count > 0)
        tt_log_info("store: retention deleted %llu message(s) (%llu by age, %llu by count)"
                    " in %llu transaction(s), longest %llu us",
                    (unsigned long long)(pass->deleted_by_age + pass->deleted_by_count),
                    (unsigned long long)pass->deleted_by_age,
                    (unsigned long long)pass->deleted_by_count,
                    (unsigned long long)pass->transactions, (unsigned long long)pass->max_tx_us);
    if (rc != SQLITE_OK) {
        tt_log_error("store: %s: retention failed: %s", st->path, sqlite3_errmsg(st->mdb));
        return store__map_rc(rc);
    }
    return 0;
}

int store_retention_run(store_t *st, const store_maint_config_t *cfg_in, int64_t now_ms,
                        store_retention_stats_t *stats) {
    pthread_mutex_lock(&st->ctl_mu);
    bool running = st->running;
    pthread_mutex_unlock(&st->ctl_mu);
    /* A shared connection is the front's worker's: opening the maintenance
     * side on it (prepare) would use it from this thread. */
    if (running || cfg_in == NULL || (st->shared && st->async))
        return STORE_E_INVALID;
    store_maint_config_t cfg = *cfg_in;
    fill_defaults(&cfg);
    st->mcfg = cfg; /* for on_wal_commit; the thread is not running */
    int ret = maint_open(st, NULL, 0);
    if (ret != 0)
        return ret;
    store_retention_stats_t pass = {0};
    ret = retention_pass(st, &cfg, now_ms, &pass);
    if (stats != NULL) {
        stats->deleted_by_count += pass.deleted_by_count;
        stats->deleted_by_age += pass.deleted_by_age;
        stats->transactions += pass.transactions;
        stats->tokens_expired += pass.tokens_expired;
        if (pass.max_tx_us > stats->max_tx_us)
            stats->max_tx_us = pass.max_tx_us;
    }
    return ret;
}

void store_stats(store_t *st, store_stats_t *out) {
    pthread_mutex_lock(&st->ctl_mu);
    *out = st->stats;
    pthread_mutex_unlock(&st->ctl_mu);
}

/* ------------------------------------------------------------------------ */
/* The thread */

static void deadline_after(struct timespec *ts, unsigned ms) {
    clock_gettime(CLOCK_MONOTONIC, ts);
    ts->tv_sec += ms / 1000;
    ts->tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

static bool is_before(const struct timespec *a, const struct timespec *b) {
    return a->tv_sec < b->tv_sec || (a->tv_sec == b->tv_sec && a->tv_nsec < b->tv_nsec);
}

static void *maint_main(void *arg) {
    store_t *st = arg;
    const store_maint_config_t *cfg = &st->mcfg;
    bool retain = cfg->retain_days > 0 || cfg->retain_messages > 0 || cfg->token_max_idle_ms > 0;
    struct timespec next_pass, next_index;
    deadline_after(&next_pass, 0); /* the first pass runs at once */
    deadline_after(&next_index, 0);

    pthread_mutex_lock(&st->ctl_mu);
    while (!atomic_load(&st->stop)) {
        /* One checkpoint, then a due pass: not back to the flag first. A
         * writer that commits back to back (the asynchronous front's worker
         * under load) keeps the WAL past checkpoint_pages while a PASSIVE
         * checkpoint cannot finish, and sets the flag after every commit;
         * checking it first would starve retention for as long. */
        if (atomic_load(&st->want_checkpoint)) {
            atomic_store(&st->want_checkpoint, false);
            pthread_mutex_unlock(&st->ctl_mu);
            checkpoint(st);
            pthread_mutex_lock(&st->ctl_mu);
            if (atomic_load(&st->stop))
                break;
        }
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        if (retain && !is_before(&now, &next_pass)) {
            pthread_mutex_unlock(&st->ctl_mu);
            store_retention_stats_t pass = {0};
            retention_pass(st, cfg, store__now_ms(), &pass);
            deadline_after(&next_pass, cfg->interval_ms);
            pthread_mutex_lock(&st->ctl_mu);
            continue;
        }
        /* The search index, off the commits (store_search.c): a step of
         * STORE_INDEX_CHUNK rows at a time, the write mutex free between
         * steps. */
        if (!is_before(&now, &next_index)) {
            pthread_mutex_unlock(&st->ctl_mu);
            bool more = store__search_index_step(st, st->mdb, STORE_INDEX_CHUNK, NULL);
            deadline_after(&next_index, more ? 1 : STORE_INDEX_EVERY_MS);
            pthread_mutex_lock(&st->ctl_mu);
            continue;
        }
        if (atomic_load(&st->want_checkpoint))
            continue;
        struct timespec until = next_index;
        if (retain && is_before(&next_pass, &until))
            until = next_pass;
        pthread_cond_timedwait(&st->ctl_cv, &st->ctl_mu, &until);
    }
    pthread_mutex_unlock(&st->ctl_mu);
    return NULL;
}

int store_maint_start(store_t *st, const store_maint_config_t *cfg_in, char *err, size_t errlen) {
    if (err != NULL && errlen > 0)
        err[0] = '\0';
    pthread_mutex_lock(&st->ctl_mu);
    bool running = st->running;
    pthread_mutex_unlock(&st->ctl_mu);
    if (running) {
        store__err(st, err, errlen, "the maintenance thread is already running");
        return STORE_E_INVALID;
    }
    /* It hooks the loop's connection, which the front's worker owns. */
    if (st->async) {
        store__err(st, err, errlen, "start the maintenance thread before the asynchronous front");
        return STORE_E_INVALID;
    }
    st->mcfg = cfg_in != NULL ? *cfg_in : (store_maint_config_t){0};
    fill_defaults(&st->mcfg);
    int ret = maint_open(st, err, errlen);
    if (ret != 0)
        return ret;
    atomic_store(&st->stop, false);
    atomic_store(&st->want_checkpoint, false);
    pthread_mutex_lock(&st->ctl_mu);
    int e = pthread_create(&st->thread, NULL, maint_main, st);
    st->running = e == 0;
    pthread_mutex_unlock(&st->ctl_mu);
    if (e != 0) {
        store__err(st, err, errlen, "cannot start the maintenance thread: %s", strerror(e));
        return STORE_E_INTERNAL;
    }
    /* From now on the loop's commits leave checkpoints to the thread. */
    if (!st->shared)
        sqlite3_wal_hook(st->db, on_wal_commit, st);
    return 0;
}

void store_maint_stop(store_t *st) {
    pthread_mutex_lock(&st->ctl_mu);
    bool running = st->running;
    if (running) {
        atomic_store(&st->stop, true);
        pthread_cond_signal(&st->ctl_cv);
    }
    pthread_mutex_unlock(&st->ctl_mu);
    if (!running)
        return;
    assert(!st->async && "store_async_stop before store_maint_stop");
    pthread_join(st->thread, NULL);
    pthread_mutex_lock(&st->ctl_mu);
    st->running = false;
    pthread_mutex_unlock(&st->ctl_mu);
    /* Back to SQLite's own checkpoints on the loop's commits. */
    if (!st->shared)
        sqlite3_wal_autocheckpoint(st->db, 1000);
}
