/* The chat's store hooks on store.h: one transaction per chat_flush (the
 * chat hands over the iteration's room messages as one batch), reads through
 * store_range, and a stopwatch around every commit. With a store_async_t the
 * hooks submit jobs to its worker and complete from its drain, on the loop;
 * without one they run synchronously and complete before they return. */
#include "store/store_chat.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/log.h"
#include "core/xmalloc.h"
#include "store/store_int.h"
#include "store/store_mod.h"

#define SLOW_LOG_EVERY_US UINT64_C(10000000) /* at most one slow-commit line per 10 s */
/* A conversation key: "@" + two nicknames + "@" and its NUL. */
#define STORE_DM_KEY_MAX (2 * STORE_NICK_MAX + 3)

struct store_chat_s {
    store_t *st;
    store_async_t *async; /* NULL: every hook runs synchronously */
    chat_message_t *out;  /* a read's records as chat messages, reused */
    size_t out_cap;
    /* The batch translated for store_append_batch, reused across commits
     * so a commit allocates nothing once the largest batch was seen. */
    store_msg_t *msgs;
    char (*keys)[STORE_DM_KEY_MAX]; /* the conversation key of each private in msgs */
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

static void note_slow(store_chat_t *sc, uint64_t now, uint64_t us, size_t n, int rc) {
    if (sc->slow_logged_at != 0 && now - sc->slow_logged_at < SLOW_LOG_EVERY_US) {
        sc->slow_unlogged++;
        return;
    }
    tt_log_warn("store: a commit of %zu message(s) took %" PRIu64 " ms%s (its delivery waited "
                "for it); %" PRIu64 " more slow commits since the last such line",
                n, us / 1000, rc < 0 ? " and failed" : "", sc->slow_unlogged);
    sc->slow_logged_at = now;
    sc->slow_unlogged = 0;
}

/* ---- the hooks ---- */

static uint64_t last_id_now(const store_chat_t *sc) {
    return sc->async ? (uint64_t)store_async_last_id(sc->async) : (uint64_t)store_last_id(sc->st);
}

static int hook_last_id(void *ctx, uint64_t *out) {
    *out = last_id_now(ctx);
    return 0;
}

/* One submission in flight: what its completion needs. */
typedef struct job_s {
    store_chat_t *sc;
    chat_store_done_cb append_done;
    chat_history_done_cb history_done;
    chat_store_done_cb reserve_done;
    void *arg;
    uint64_t t0;
    size_t n;
    /* A read: the room as the chat named it. The store keys rooms by
     * store_room_key, and its records carry that key; the chat's messages
     * carry the chat's own name of the room, as the live ones do. */
    char room[CHAT_ROOM_MAX + 1];
    size_t room_len;
} job_t;

static job_t *job_new(store_chat_t *sc, void *arg) {
    job_t *j = xcalloc(1, sizeof(*j));
    j->sc = sc;
    j->arg = arg;
    return j;
}

static void note_commit(store_chat_t *sc, uint64_t t0, size_t n, int rc) {
    uint64_t t1 = mono_us();
    uint64_t us = t1 - t0;
    store_chat_stats_t *s = &sc->stats;
    s->hist[store__hist_bucket(us, STORE_CHAT_HIST_BUCKETS)]++;
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
}

static void on_append_done(void *arg, int rc, const store_msg_t *msgs, size_t n) {
    (void)msgs;
    job_t *j = arg;
    note_commit(j->sc, j->t0, n, rc);
    j->append_done(j->arg, rc < 0 ? rc : 0, last_id_now(j->sc));
    free(j);
}

static int hook_append_batch(void *ctx, const chat_message_t *msgs, size_t n,
                             chat_store_done_cb done, void *arg) {
    store_chat_t *sc = ctx;
    if (sc->cap < n) {
        sc->cap = n > 2 * sc->cap ? n : 2 * sc->cap;
        sc->msgs = xrealloc(sc->msgs, sc->cap * sizeof(*sc->msgs));
        sc->keys = xrealloc(sc->keys, sc->cap * sizeof(*sc->keys));
    }
    for (size_t i = 0; i < n; i++) {
        const chat_message_t *m = &msgs[i];
        if (m->kind == CHAT_MSG_PRIVATE) {
            /* Between accounts: stored under the pair's conversation key,
             * which no room name can be, so no room's reader reaches it. */
            char a[CHAT_NICK_MAX + 1], b[CHAT_NICK_MAX + 1];
            if (m->from_len > CHAT_NICK_MAX || m->to_len > CHAT_NICK_MAX)
                return STORE_E_INVALID;
            memcpy(a, m->from, m->from_len);
            a[m->from_len] = '\0';
            memcpy(b, m->to, m->to_len);
            b[m->to_len] = '\0';
            int klen = store_dm_key(a, b, sc->keys[i], sizeof(sc->keys[i]));
            if (klen < 0)
                return klen;
            sc->msgs[i] = (store_msg_t){
                .kind = STORE_KIND_PRIVATE,
                .room = sc->keys[i],
                .room_len = (size_t)klen,
                .from = m->from,
                .from_len = m->from_len,
                .to = m->to,
                .to_len = m->to_len,
                .text = m->text,
                .text_len = m->text_len,
                .ts = m->ts,
                .id = (int64_t)m->id,
            };
            continue;
        }
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
    job_t *j = job_new(sc, arg);
    j->append_done = done;
    j->t0 = mono_us();
    if (sc->async != NULL) {
        /* The worker copies the batch: the chat's strings may go at once. */
        int rc = store_async_append(sc->async, sc->msgs, n, on_append_done, j);
        if (rc < 0)
            free(j);
        return rc;
    }
    int rc = store_append_batch(sc->st, sc->msgs, n);
    on_append_done(j, rc, sc->msgs, n);
    return 0;
}

static void on_range_done(void *arg, int rc, const store_rec_t *recs, size_t n, bool more) {
    job_t *j = arg;
    store_chat_t *sc = j->sc;
    if (sc->out_cap < n) {
        sc->out_cap = n;
        sc->out = xrealloc(sc->out, n * sizeof(*sc->out));
    }
    /* A room's range reads room rows only: a private conversation's key
     * ("@a@b") is never a valid room name. A conversation's range reads
     * its private rows, each with its own sender and recipient. */
    for (size_t i = 0; i < n; i++) {
        bool dm = recs[i].kind == STORE_KIND_PRIVATE;
        sc->out[i] = (chat_message_t){
            .id = (uint64_t)recs[i].id,
            .ts = recs[i].ts,
            .kind = dm ? CHAT_MSG_PRIVATE : CHAT_MSG_ROOM,
            .from = recs[i].from,
            .from_len = recs[i].from_len,
            .to = dm ? recs[i].to : j->room,
            .to_len = dm ? recs[i].to_len : j->room_len,
            .text = recs[i].text,
            .text_len = recs[i].text_len,
            .edited_ts = recs[i].edited_ts,
            .deleted = recs[i].deleted,
        };
    }
    j->history_done(j->arg, rc < 0 ? rc : 0, sc->out, rc < 0 ? 0 : n, rc < 0 ? false : more);
    free(j);
}

/* The synchronous read collects records into one array, as the worker does. */
typedef struct collect_s {
    store_rec_t *recs;
    size_t n, cap;
    char *strings; /* every string of the read, back to back */
    size_t slen, scap;
} collect_t;

static void collect_rec(void *ctx, const store_rec_t *rec) {
    collect_t *c = ctx;
    if (c->n == c->cap) {
        c->cap = c->cap ? c->cap * 2 : 16;
        c->recs = xrealloc(c->recs, c->cap * sizeof(*c->recs));
    }
    size_t need = rec->room_len + rec->from_len + rec->text_len + 3;
    if (c->slen + need > c->scap) {
        c->scap = (c->slen + need) * 2;
        c->strings = xrealloc(c->strings, c->scap);
    }
    store_rec_t *r = &c->recs[c->n++];
    *r = *rec;
    /* Offsets now, pointers once the strings stop moving. */
    r->room = (const char *)(uintptr_t)c->slen;
    memcpy(c->strings + c->slen, rec->room, rec->room_len + 1);
    c->slen += rec->room_len + 1;
    r->from = (const char *)(uintptr_t)c->slen;
    memcpy(c->strings + c->slen, rec->from, rec->from_len + 1);
    c->slen += rec->from_len + 1;
    r->text = (const char *)(uintptr_t)c->slen;
    memcpy(c->strings + c->slen, rec->text, rec->text_len);
    c->strings[c->slen + rec->text_len] = '\0';
    c->slen += rec->text_len + 1;
}

/* A range of key (a room's name, or a conversation key); name is what the
 * chat calls it (a room's messages are named so). */
static int read_range(store_chat_t *sc, const char *room, size_t room_len, const char *name,
                      size_t name_len, uint64_t after, uint64_t before, unsigned limit,
                      chat_history_done_cb done, void *arg) {
    if (name_len > CHAT_ROOM_MAX)
        return STORE_E_INVALID;
    job_t *j = job_new(sc, arg);
    j->history_done = done;
    memcpy(j->room, name, name_len);
    j->room_len = name_len;
    /* The chat only asks for ids below 2^53, which fit an int64_t. */
    if (sc->async != NULL) {
        int rc = store_async_range(sc->async, room, room_len, (int64_t)after, (int64_t)before,
                                   limit, on_range_done, j);
        if (rc < 0)
            free(j);
        return rc;
    }
    collect_t c = {0};
    bool more = false;
    int rc = store_range(sc->st, room, room_len, (int64_t)after, (int64_t)before, limit,
                         collect_rec, &c, &more);
    for (size_t i = 0; i < c.n; i++) {
        c.recs[i].room = c.strings + (uintptr_t)c.recs[i].room;
        c.recs[i].from = c.strings + (uintptr_t)c.recs[i].from;
        c.recs[i].text = c.strings + (uintptr_t)c.recs[i].text;
    }
    on_range_done(j, rc, c.recs, c.n, more);
    free(c.recs);
    free(c.strings);
    return 0;
}

static int hook_history(void *ctx, const char *room, size_t room_len, uint64_t after,
                        uint64_t before, unsigned limit, chat_history_done_cb done, void *arg) {
    return read_range(ctx, room, room_len, room, room_len, after, before, limit, done, arg);
}

/* The conversation key of a and b (NUL-terminated copies made here). */
static int dm_key(const char *a, size_t a_len, const char *b, size_t b_len, char *key, size_t cap) {
    char x[CHAT_NICK_MAX + 1], y[CHAT_NICK_MAX + 1];
    if (a_len == 0 || b_len == 0 || a_len > CHAT_NICK_MAX || b_len > CHAT_NICK_MAX)
        return STORE_E_INVALID;
    memcpy(x, a, a_len);
    x[a_len] = '\0';
    memcpy(y, b, b_len);
    y[b_len] = '\0';
    return store_dm_key(x, y, key, cap);
}

static int hook_history_with(void *ctx, const char *a, size_t a_len, const char *b, size_t b_len,
                             uint64_t after, uint64_t before, unsigned limit,
                             chat_history_done_cb done, void *arg) {
    char key[STORE_DM_KEY_MAX];
    int klen = dm_key(a, a_len, b, b_len, key, sizeof(key));
    if (klen < 0)
        return klen;
    return read_range(ctx, key, (size_t)klen, b, b_len, after, before, limit, done, arg);
}

/* `conversations`: store_conversations on the worker, collected into the
 * job (at most CHAT_CONVERSATIONS_MAX entries, names copied), handed to
 * the chat on the loop. */
typedef struct convs_job_s {
    chat_convs_done_cb done;
    void *arg;
    int64_t account;
    char nick[CHAT_NICK_MAX + 1];
    size_t nick_len;
    unsigned limit;
    size_t n;
    chat_conv_t convs[CHAT_CONVERSATIONS_MAX];
    char names[CHAT_CONVERSATIONS_MAX][STORE_NICK_MAX + 1];
} convs_job_t;

static void collect_conv(void *ctx, const store_conv_t *c) {
    convs_job_t *j = ctx;
    if (j->n >= j->limit || j->n >= CHAT_CONVERSATIONS_MAX)
        return;
    size_t len = c->with_len <= STORE_NICK_MAX ? c->with_len : STORE_NICK_MAX;
    memcpy(j->names[j->n], c->with, len);
    j->names[j->n][len] = '\0';
    j->convs[j->n] = (chat_conv_t){.with = j->names[j->n],
                                   .with_len = len,
                                   .last_id = (uint64_t)c->last_id,
                                   .unread = c->unread};
    j->n++;
}

static int run_convs(store_t *st, void *arg) {
    convs_job_t *j = arg;
    j->n = 0;
    return store_conversations(st, j->account, j->nick, j->nick_len, j->limit, collect_conv, j);
}

static void done_convs(void *arg, int rc) {
    convs_job_t *j = arg;
    j->done(j->arg, rc < 0 ? rc : 0, j->convs, rc < 0 ? 0 : j->n);
    free(j);
}

static int hook_conversations(void *ctx, int64_t account, const char *nick, size_t nick_len,
                              unsigned limit, chat_convs_done_cb done, void *arg) {
    store_chat_t *sc = ctx;
    if (nick_len == 0 || nick_len > CHAT_NICK_MAX || limit == 0)
        return STORE_E_INVALID;
    convs_job_t *j = xcalloc(1, sizeof(*j));
    j->done = done;
    j->arg = arg;
    j->account = account;
    memcpy(j->nick, nick, nick_len);
    j->nick_len = nick_len;
    j->limit = limit > CHAT_CONVERSATIONS_MAX ? CHAT_CONVERSATIONS_MAX : limit;
    return store_async_submit(sc->async, sc->st, sizeof(*j), run_convs, done_convs, j);
}

/* `read`: the marker, stored in order with the messages. */
typedef struct read_job_s {
    chat_store_done_cb done;
    void *arg;
    store_chat_t *sc;
    int64_t account;
    char key[STORE_DM_KEY_MAX > CHAT_ROOM_MAX + 1 ? STORE_DM_KEY_MAX : CHAT_ROOM_MAX + 1];
    size_t key_len;
    int64_t up_to;
} read_job_t;

static int run_read(store_t *st, void *arg) {
    read_job_t *j = arg;
    return store_read_set(st, j->account, j->key, j->key_len, j->up_to);
}

static void done_read(void *arg, int rc) {
    read_job_t *j = arg;
    if (j->done != NULL)
        j->done(j->arg, rc, last_id_now(j->sc));
    free(j);
}

static int hook_read_set(void *ctx, int64_t account, const char *nick, size_t nick_len,
                         const char *name, size_t name_len, bool with, uint64_t up_to,
                         chat_store_done_cb done, void *arg) {
    store_chat_t *sc = ctx;
    read_job_t *j = xcalloc(1, sizeof(*j));
    j->done = done;
    j->arg = arg;
    j->sc = sc;
    j->account = account;
    j->up_to = (int64_t)up_to;
    if (with) {
        int klen = dm_key(nick, nick_len, name, name_len, j->key, sizeof(j->key));
        if (klen < 0) {
            free(j);
            return klen;
        }
        j->key_len = (size_t)klen;
    } else {
        if (name_len > CHAT_ROOM_MAX) {
            free(j);
            return STORE_E_INVALID;
        }
        memcpy(j->key, name, name_len);
        j->key_len = name_len;
    }
    return store_async_submit(sc->async, sc->st, sizeof(*j), run_read, done_read, j);
}

static void on_reserve_done(void *arg, int rc) {
    job_t *j = arg;
    j->reserve_done(j->arg, rc, last_id_now(j->sc));
    free(j);
}

static int hook_reserve_ids(void *ctx, uint64_t upto, chat_store_done_cb done, void *arg) {
    store_chat_t *sc = ctx;
    job_t *j = job_new(sc, arg);
    j->reserve_done = done;
    if (sc->async != NULL) {
        int rc = store_async_reserve_ids(sc->async, (int64_t)upto, on_reserve_done, j);
        if (rc < 0)
            free(j);
        return rc;
    }
    on_reserve_done(j, store_reserve_ids(sc->st, (int64_t)upto));
    return 0;
}

/* Moderation (store_mod.c). */
static int hook_mod_load(void *ctx, int64_t now_ms, chat_mod_room_cb room, chat_mod_ban_cb ban,
                         void *arg) {
    store_chat_t *sc = ctx;
    return store_mod_hook_load(sc->st, sc->async, now_ms, room, ban, arg);
}

static int hook_mod_write(void *ctx, const chat_mod_write_t *w, chat_store_done_cb done,
                          void *arg) {
    store_chat_t *sc = ctx;
    return store_mod_hook_write(sc->st, sc->async, w, done, arg);
}

static int hook_audit_read(void *ctx, const char *room, size_t room_len, uint64_t before,
                           unsigned limit, chat_audit_done_cb done, void *arg) {
    store_chat_t *sc = ctx;
    return store_mod_hook_audit(sc->st, sc->async, room, room_len, before, limit, done, arg);
}

/* Edit, delete, the record of rooms, search: store_chat_search.c. */
int store__chat_message_get(store_t *st, store_async_t *a, uint64_t id, int64_t account,
                            chat_msg_info_done_cb done, void *arg);
int store__chat_message_change(store_t *st, store_async_t *a, uint64_t id, const char *text,
                               size_t len, int64_t edited_ts, chat_store_done_cb done, void *arg);
int store__chat_room_joined(store_t *st, store_async_t *a, int64_t account, const char *room,
                            size_t room_len, chat_store_done_cb done, void *arg);
int store__chat_search(store_t *st, store_async_t *a, const chat_search_t *q,
                       chat_search_done_cb done, void *arg);

static int hook_message_get(void *ctx, uint64_t id, int64_t account, chat_msg_info_done_cb done,
                            void *arg) {
    store_chat_t *sc = ctx;
    return store__chat_message_get(sc->st, sc->async, id, account, done, arg);
}

static int hook_message_change(void *ctx, uint64_t id, const char *text, size_t len,
                               int64_t edited_ts, chat_store_done_cb done, void *arg) {
    store_chat_t *sc = ctx;
    return store__chat_message_change(sc->st, sc->async, id, text, len, edited_ts, done, arg);
}

static int hook_room_joined(void *ctx, int64_t account, const char *room, size_t room_len,
                            chat_store_done_cb done, void *arg) {
    store_chat_t *sc = ctx;
    return store__chat_room_joined(sc->st, sc->async, account, room, room_len, done, arg);
}

static int hook_search(void *ctx, const chat_search_t *q, chat_search_done_cb done, void *arg) {
    store_chat_t *sc = ctx;
    return store__chat_search(sc->st, sc->async, q, done, arg);
}

static const chat_store_hooks_t hooks = {
    .last_id = hook_last_id,
    .reserve_ids = hook_reserve_ids,
    .append_batch = hook_append_batch,
    .history = hook_history,
    .history_with = hook_history_with,
    .conversations = hook_conversations,
    .read_set = hook_read_set,
    .mod_load = hook_mod_load,
    .mod_write = hook_mod_write,
    .audit_read = hook_audit_read,
    .message_get = hook_message_get,
    .message_change = hook_message_change,
    .room_joined = hook_room_joined,
    .search = hook_search,
};

/* ---- lifetime and stats ---- */

int store_chat_attach(chat_t *chat, store_t *st, store_chat_t **out) {
    return store_chat_attach_async(chat, st, NULL, out);
}

int store_chat_attach_async(chat_t *chat, store_t *st, store_async_t *async, store_chat_t **out) {
    *out = NULL;
    if (chat == NULL || st == NULL)
        return STORE_E_INVALID;
    store_chat_t *sc = xcalloc(1, sizeof(*sc));
    sc->st = st;
    sc->async = async;
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
    free(sc->keys);
    free(sc->out);
    free(sc);
}

void store_chat_stats(const store_chat_t *sc, store_chat_stats_t *out) {
    *out = sc->stats;
}

uint64_t store_chat_stats_percentile(const store_chat_stats_t *s, double p) {
    return store__hist_percentile(s->hist, STORE_CHAT_HIST_BUCKETS, s->max_us, p);
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
