/* The chat's store hooks on store.h: one transaction per chat_flush (the
 * chat hands over the iteration's room messages as one batch), reads through
 * store_range, and a stopwatch around every commit. */
#include "store/store_chat.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/log.h"
#include "core/xmalloc.h"

#define SLOW_LOG_EVERY_US UINT64_C(10000000) /* at most one slow-commit line per 10 s */

struct store_chat_s {
    store_t *st;
    /* The batch translated for store_append_batch, reused across commits
     * so a commit allocates nothing once the largest batch was seen. */
    store_msg_t *msgs;
    size_t cap;
    store_chat_stats_t stats;
    uint64_t slow_logged_at; /* monotonic µs of the last slow-commit line (0: never) */
    uint64_t slow_unlogged;  /* slow commits since then that were not logged */
};

static uint64_t mono_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static unsigned bucket_of(uint64_t us) {
    unsigned b = 0;
    while (us != 0 && b < STORE_CHAT_HIST_BUCKETS - 1) {
        us >>= 1;
        b++;
    }
    return b;
}

static void note_slow(store_chat_t *sc, uint64_t now, uint64_t us, size_t n, int rc) {
    if (sc->slow_logged_at != 0 && now - sc->slow_logged_at < SLOW_LOG_EVERY_US) {
        sc->slow_unlogged++;
        return;
    }
    tt_log_warn("store: a commit of %zu message(s) took %" PRIu64 " ms%s (the event loop waited "
                "for it); %" PRIu64 " more slow commits since the last such line",
                n, us / 1000, rc < 0 ? " and failed" : "", sc->slow_unlogged);
    sc->slow_logged_at = now;
    sc->slow_unlogged = 0;
}

/* ---- the hooks ---- */

static int hook_last_id(void *ctx, uint64_t *out) {
    store_chat_t *sc = ctx;
    *out = (uint64_t)store_last_id(sc->st);
    return 0;
}

static int hook_reserve_ids(void *ctx, uint64_t upto) {
    store_chat_t *sc = ctx;
    return store_reserve_ids(sc->st, (int64_t)upto);
}

static int hook_append_batch(void *ctx, const chat_message_t *msgs, size_t n) {
    store_chat_t *sc = ctx;
    if (n == 0)
        return 0;
    if (sc->cap < n) {
        sc->cap = n > 2 * sc->cap ? n : 2 * sc->cap;
        sc->msgs = xrealloc(sc->msgs, sc->cap * sizeof(*sc->msgs));
    }
    for (size_t i = 0; i < n; i++) {
        const chat_message_t *m = &msgs[i];
        /* The chat never passes private messages (hooks contract); storing
         * one as a room row would make it readable by a room's members. */
        if (m->kind != CHAT_MSG_ROOM)
            return STORE_E_INVALID;
        sc->msgs[i] = (store_msg_t){
            .kind = STORE_KIND_ROOM,
            .room = m->to,
            .room_len = m->to_len,
            .from = m->from,
            .from_len = m->from_len,
            .text = m->text,
            .text_len = m->text_len,
            .ts = m->ts,
            .id = (int64_t)m->id, /* the chat's id becomes the row's id */
        };
    }
    uint64_t t0 = mono_us();
    int rc = store_append_batch(sc->st, sc->msgs, n);
    uint64_t t1 = mono_us();
    uint64_t us = t1 - t0;
    store_chat_stats_t *s = &sc->stats;
    s->hist[bucket_of(us)]++;
    if (us > s->max_us)
        s->max_us = us;
    if (rc < 0) {
        s->failures++;
    } else {
        s->commits++;
        s->messages += n;
        s->total_us += us;
        if (n > s->max_batch)
            s->max_batch = n;
    }
    if (us >= STORE_CHAT_SLOW_US)
        note_slow(sc, t1, us, n, rc);
    return rc < 0 ? rc : 0;
}

typedef struct {
    chat_history_cb emit;
    void *arg;
} emit_ctx_t;

static void on_rec(void *ctx, const store_rec_t *rec) {
    emit_ctx_t *e = ctx;
    /* Only room rows are read: a private conversation's key ("@a@b") is
     * never a valid room name, so a room's range cannot reach one. */
    chat_message_t m = {
        .id = (uint64_t)rec->id,
        .ts = rec->ts,
        .kind = CHAT_MSG_ROOM,
        .from = rec->from,
        .from_len = rec->from_len,
        .to = rec->room,
        .to_len = rec->room_len,
        .text = rec->text,
        .text_len = rec->text_len,
    };
    e->emit(e->arg, &m);
}

static int hook_history(void *ctx, const char *room, size_t room_len, uint64_t after,
                        uint64_t before, unsigned limit, chat_history_cb emit, void *emit_arg,
                        bool *more) {
    store_chat_t *sc = ctx;
    emit_ctx_t e = {.emit = emit, .arg = emit_arg};
    /* The chat only asks for ids below 2^53, which fit an int64_t. */
    return store_range(sc->st, room, room_len, (int64_t)after, (int64_t)before, limit, on_rec, &e,
                       more);
}

static const chat_store_hooks_t hooks = {
    .last_id = hook_last_id,
    .reserve_ids = hook_reserve_ids,
    .append_batch = hook_append_batch,
    .history = hook_history,
};

/* ---- lifetime and stats ---- */

int store_chat_attach(chat_t *chat, store_t *st, store_chat_t **out) {
    *out = NULL;
    if (chat == NULL || st == NULL)
        return STORE_E_INVALID;
    store_chat_t *sc = xcalloc(1, sizeof(*sc));
    sc->st = st;
    int rc = chat_set_store(chat, &hooks, sc);
    if (rc < 0) {
        free(sc);
        return rc;
    }
    *out = sc;
    return 0;
}

void store_chat_free(store_chat_t *sc) {
    if (sc == NULL)
        return;
    free(sc->msgs);
    free(sc);
}

void store_chat_stats(const store_chat_t *sc, store_chat_stats_t *out) {
    *out = sc->stats;
}

uint64_t store_chat_stats_percentile(const store_chat_stats_t *s, double p) {
    uint64_t total = 0;
    for (unsigned i = 0; i < STORE_CHAT_HIST_BUCKETS; i++)
        total += s->hist[i];
    if (total == 0)
        return 0;
    /* The rank of the p-th percentile, rounded up, at least the first. */
    double want = p / 100.0 * (double)total;
    uint64_t rank = (uint64_t)want;
    if ((double)rank < want || rank == 0)
        rank++;
    uint64_t seen = 0;
    for (unsigned i = 0; i < STORE_CHAT_HIST_BUCKETS; i++) {
        seen += s->hist[i];
        if (seen >= rank) {
            /* Bucket i's durations are below 2^i µs; the last one is open. */
            uint64_t bound = i == 0 ? 0 : (UINT64_C(1) << i) - 1;
            return i == STORE_CHAT_HIST_BUCKETS - 1 || bound > s->max_us ? s->max_us : bound;
        }
    }
    return s->max_us;
}

int store_chat_stats_format(const store_chat_stats_t *s, char *buf, size_t cap) {
    uint64_t mean = s->commits ? s->total_us / s->commits : 0;
    return snprintf(buf, cap,
                    "%" PRIu64 " commits of %" PRIu64 " messages (largest %" PRIu64 "), %" PRIu64
                    " failed; commit time mean %" PRIu64 " us, p50 <= %" PRIu64
                    " us, p99 <= %" PRIu64 " us, max %" PRIu64 " us",
                    s->commits, s->messages, s->max_batch, s->failures, mean,
                    store_chat_stats_percentile(s, 50), store_chat_stats_percentile(s, 99),
                    s->max_us);
}
