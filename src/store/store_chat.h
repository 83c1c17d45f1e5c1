/* The store as the chat's history: chat_store_hooks_t (chat.h) implemented on
 * store.h. It maps the chat's messages to store rows and back, keeps the
 * chat's ids (so a message's id is its row's id, and ids continue after the
 * highest stored one across restarts), and measures every group commit, so
 * the time the event loop spends writing is known under real load.
 *
 * Not responsible for what is stored: the chat passes only room messages
 * (private messages are delivered live and never stored until accounts
 * prove who may read them). Used on the loop thread only, like the chat. */
#ifndef TT_STORE_STORE_CHAT_H
#define TT_STORE_STORE_CHAT_H

#include <stddef.h>
#include <stdint.h>

#include "chat/chat.h"
#include "store/store.h"
#include "store/store_async.h"

typedef struct store_chat_s store_chat_t;

/* Attaches st to chat (chat_set_store) and returns the adapter in *out.
 * The chat's id counter starts after store_last_id(st). Call before the
 * first session opens. st is borrowed: free the chat first, then the
 * adapter (store_chat_free), then close the store. Returns 0, or a negative
 * STORE_E_* (then *out is NULL and the chat has no store). */
int store_chat_attach(chat_t *chat, store_t *st, store_chat_t **out);

/* The same, with every store step submitted to the worker of async (whose
 * drain completes them on the loop), so SQLite never runs on the loop. st
 * is read (its last id) before use; async is borrowed like st. */
int store_chat_attach_async(chat_t *chat, store_t *st, store_async_t *async, store_chat_t **out);

/* Frees the adapter (not the store, not the chat). NULL is a no-op. */
void store_chat_free(store_chat_t *sc);

/* Commit durations d (µs) are counted in power-of-two buckets: bucket 0
 * holds d = 0, bucket i holds 2^(i-1) <= d < 2^i, and the last bucket
 * everything from 2^22 µs (4.2 s) up. */
#define STORE_CHAT_HIST_BUCKETS 24

/* A commit slower than this is logged as a warning (at most once every ten
 * seconds, with the number of slow commits not logged): it stalled the
 * event loop noticeably. */
#define STORE_CHAT_SLOW_US 20000

/* What the group commits cost the loop, since attach. */
typedef struct store_chat_stats_s {
    uint64_t commits;   /* successful append_batch calls (one transaction each) */
    uint64_t failures;  /* failed ones: their messages were refused with `unavailable` */
    uint64_t messages;  /* messages committed */
    uint64_t max_batch; /* the most messages in one commit */
    uint64_t total_us;  /* time in successful commits, microseconds */
    uint64_t max_us;    /* the slowest commit (failed ones included) */
    uint64_t hist[STORE_CHAT_HIST_BUCKETS]; /* every commit, by duration */
} store_chat_stats_t;

void store_chat_stats(const store_chat_t *sc, store_chat_stats_t *out);

/* An upper bound of the p-th percentile (0 < p <= 100) of commit durations
 * in microseconds, from the histogram (so within a factor of two); 0 when
 * nothing was committed. */
uint64_t store_chat_stats_percentile(const store_chat_stats_t *s, double p);

/* One line for the log: commits, messages, mean, p50, p99 and max commit
 * time. Returns what snprintf returns. */
int store_chat_stats_format(const store_chat_stats_t *s, char *buf, size_t cap);

#endif
