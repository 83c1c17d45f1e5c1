/* The store off the event loop: a worker thread that takes over a store_t's
 * loop connection and runs its appends, reads, id reservations and the
 * caller's own calls (accounts, tokens, markers: store_async_call) as jobs
 * from a bounded FIFO, and a completion queue whose callbacks the loop runs
 * when it drains it. Nothing here waits for SQLite's locks or the disk on
 * the calling thread: a lock held by another process (the sqlite3 shell, a
 * backup) for up to busy_timeout_ms delays the worker, never the loop.
 *
 * Not responsible for the event loop itself (no <uv.h>): the loop is told
 * that completions are ready through a notify callback, which the server
 * implements with uv_async_send. Not responsible for what is stored either:
 * the jobs are store.h's calls, with store.h's results.
 *
 * Threads: every function here is called on one thread, "the loop", except
 * the notify callback, which runs on the worker. Between store_async_start
 * and the return of store_async_stop the loop must not call store.h's
 * functions on the store_t (see store.h, "Threads"); before and after, it
 * may again.
 *
 * Ordering: jobs run one at a time, in submission order, on one connection,
 * and their callbacks run in the same order. So a read submitted after an
 * append sees that append (if it succeeded), appends commit in submission
 * order, and a job stalled on a lock holds up every job behind it (for at
 * most busy_timeout_ms). */
#ifndef TT_STORE_STORE_ASYNC_H
#define TT_STORE_STORE_ASYNC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store/store.h"

typedef struct store_async_s store_async_t;

/* Called on the WORKER thread after jobs complete: the loop must soon call
 * store_async_drain. Calls are coalesced: one call may stand for several
 * completions, and a completion that finds earlier ones not yet drained
 * makes no call of its own (their call is still to be answered). Must be
 * thread-safe and cheap, and must not call into the store: uv_async_send is
 * the intended one. It may be called until store_async_stop returns, so ctx
 * (borrowed) must stay valid that long. */
typedef void (*store_async_notify_cb)(void *ctx);

typedef struct store_async_config_s {
    /* Jobs submitted whose callback has not run yet: queued, running or
     * completed but not drained. Default 1024. */
    unsigned max_jobs;
    /* Bytes held by those jobs: their copies of the submitted messages and
     * rooms and, once a read has completed, its results. Default 64 MiB.
     * Besides, the worker keeps the buffers of its largest read so far
     * (at most STORE_ASYNC_RANGE_MAX records), reused by the next. */
    size_t max_bytes;
} store_async_config_t;

/* Fills cfg with the defaults above. */
void store_async_config_defaults(store_async_config_t *cfg);

/* Hands st to a new worker thread and returns the front in *out. st is
 * borrowed until store_async_stop returns; close it only after that. Call it
 * after store_maint_start if the maintenance thread is wanted (the two then
 * share the store's write mutex as the loop and the thread did), and read
 * store_last_id before it if the caller gives ids. cfg may be NULL (the
 * defaults); zero fields take the default; it is copied. notify may be NULL
 * when the caller polls store_async_drain. One front per store at a time.
 * Returns 0, or STORE_E_INVALID (NULL store, or a front already runs on it),
 * STORE_E_INTERNAL (no thread could be created, or SQLite was built
 * without thread support); then *out is NULL. */
int store_async_start(store_t *st, const store_async_config_t *cfg, store_async_notify_cb notify,
                      void *ctx, store_async_t **out);

/* Runs every job submitted so far to completion and their callbacks, on the
 * calling thread (the loop), in submission order; callbacks that submit
 * meanwhile are refused (STORE_E_BUSY). Then joins the worker and frees the
 * front: no callback and no notify ever runs again, and the loop owns st
 * again. It waits for the jobs, a stalled one included (busy_timeout_ms).
 * Not from inside a callback. NULL is a no-op. */
void store_async_stop(store_async_t *a);

/* ------------------------------------------------------------------------ */
/* Jobs
 *
 * Every submission returns 0 (the job is queued and its callback will run,
 * exactly once, from store_async_drain or store_async_stop) or a negative
 * code, and then nothing was queued and the callback is never called:
 *   STORE_E_INVALID  malformed arguments (what the synchronous call would
 *                    refuse before trying), or cb NULL
 *   STORE_E_BUSY     the queue is full (max_jobs or max_bytes): answer the
 *                    request with `unavailable` or try again after a drain.
 *                    A job larger than max_bytes by itself is always
 *                    refused; so is every submission during store_async_stop.
 * The arg of each call is borrowed by the front until its callback runs. */

/* rc is what store_append_batch returned: 0 when every message is durable,
 * or STORE_E_INVALID (an id not above the stored ones), STORE_E_UNAVAILABLE,
 * STORE_E_CORRUPT, STORE_E_INTERNAL. msgs[0..n) is the job's copy of the
 * batch, with each id set (0 after a failure); it and its strings are
 * borrowed until the callback returns. */
typedef void (*store_append_done_cb)(void *arg, int rc, const store_msg_t *msgs, size_t n);

/* Appends msgs[0..n) in one transaction, as store_append_batch, on the
 * worker. It copies the messages and their strings into the job, so the
 * caller's memory may go as soon as this returns. Ids as store_append_batch:
 * 0 lets the store choose; the caller's own must increase across batches in
 * submission order. Each message is checked as store_append_batch checks it
 * (STORE_E_INVALID at once), except the ids against the stored ones (rc of
 * the callback). n == 0 is a job like any other (rc 0). */
int store_async_append(store_async_t *a, const store_msg_t *msgs, size_t n, store_append_done_cb cb,
                       void *arg);

/* The largest limit of store_async_range: bounds what one read's results
 * may hold (the chat asks for at most 200). */
#define STORE_ASYNC_RANGE_MAX 1000

/* rc is what store_range returned: the count delivered (== n) or a negative
 * STORE_E_* (then n == 0). recs[0..n), oldest first, and their strings are
 * owned by the job, in one allocation, and borrowed by the callback until
 * it returns; more as store_range's *more. */
typedef void (*store_range_done_cb)(void *arg, int rc, const store_rec_t *recs, size_t n,
                                    bool more);

/* store_range(room[0..room_len), after_id, before_id, limit) on the worker.
 * room (any spelling of a room, or a conversation key) is copied and
 * folded on the worker. limit above STORE_ASYNC_RANGE_MAX, a room that
 * store_range refuses (NULL, too long, no key) or a negative id:
 * STORE_E_INVALID. The results count against max_bytes from the moment
 * the read completes until its callback has run. */
int store_async_range(store_async_t *a, const char *room, size_t room_len, int64_t after_id,
                      int64_t before_id, unsigned limit, store_range_done_cb cb, void *arg);

/* rc is what store_reserve_ids returned. */
typedef void (*store_reserve_done_cb)(void *arg, int rc);

/* store_reserve_ids(upto) on the worker. upto outside 1..STORE_ID_MAX:
 * STORE_E_INVALID. */
int store_async_reserve_ids(store_async_t *a, int64_t upto, store_reserve_done_cb cb, void *arg);

/* What store_async_call runs on the worker: any of store.h's synchronous
 * functions on st (the store_t the front was started on), and what it
 * returns is handed to done. It must not touch the front (store_async_*)
 * nor anything of the loop's that the loop may change meanwhile: arg is
 * the only thing the two share, the worker until run returns and then the
 * loop. */
typedef int (*store_call_run_fn)(store_t *st, void *arg);

/* rc is what run returned. On the loop, like every callback here. */
typedef void (*store_call_done_cb)(void *arg, int rc);

/* A job of the caller's own: run(st, arg) on the worker, then done(arg, rc)
 * on the loop from store_async_drain (or store_async_stop), in submission
 * order with every other job, so a call submitted after an append sees it
 * and a read submitted after a call sees what it wrote. bytes is what arg
 * holds (its copies of the request and room for the results): it counts
 * against max_bytes, with the job itself, from submission until done has
 * run, so a flood of large calls is bounded like one of large appends.
 * run or done NULL: STORE_E_INVALID. */
int store_async_call(store_async_t *a, size_t bytes, store_call_run_fn run, store_call_done_cb done,
                     void *arg);

/* The chat's hooks' way to run a job of their own: with a front (a not
 * NULL), store_async_call, and when that refuses, job is freed (one
 * free()) and the code returned; without one, run(st, job) and done now,
 * on the calling thread. Returns 0 or the refusal's code. */
int store_async_submit(store_async_t *a, store_t *st, size_t bytes, store_call_run_fn run,
                       store_call_done_cb done, void *job);

/* ------------------------------------------------------------------------ */
/* Completions */

/* Runs the callbacks of the jobs completed so far, in submission order, on
 * the calling thread (the loop), and frees those jobs. Returns how many ran
 * (0 when none had completed). Callbacks may submit new jobs, whose
 * callbacks run in a later drain (a new notify comes for them); the jobs
 * being drained no longer count against the bounds while their callbacks
 * run, so a callback may resubmit into a queue that was full. Called from
 * inside a callback, it does nothing and returns 0. */
size_t store_async_drain(store_async_t *a);

/* store_last_id as of the last job the worker finished (thread-safe): a
 * caller that gives ids resynchronises with it after an append failed
 * with STORE_E_INVALID. */
int64_t store_async_last_id(store_async_t *a);

/* ------------------------------------------------------------------------ */
/* Counters */

typedef enum {
    STORE_ASYNC_APPEND = 0,
    STORE_ASYNC_RANGE = 1,
    STORE_ASYNC_RESERVE = 2,
    STORE_ASYNC_CALL = 3,
    STORE_ASYNC_KINDS = 4,
} store_async_kind_t;

/* Latencies d (µs) are counted in power-of-two buckets as in
 * store_chat_stats_t: bucket 0 holds d = 0, bucket i holds
 * 2^(i-1) <= d < 2^i, the last one everything from 2^22 µs (4.2 s) up. */
#define STORE_ASYNC_HIST_BUCKETS 24

typedef struct store_async_kind_stats_s {
    uint64_t jobs;     /* completed */
    uint64_t failures; /* completed with rc < 0 */
    uint64_t total_us; /* submission to completion (worker done), summed */
    uint64_t max_us;   /* the longest submission to completion */
    uint64_t run_us;   /* time the worker spent running them, summed */
    uint64_t run_max_us;
    uint64_t hist[STORE_ASYNC_HIST_BUCKETS]; /* submission to completion */
} store_async_kind_stats_t;

typedef struct store_async_stats_s {
    uint64_t queued;           /* jobs whose callback has not run, now */
    uint64_t queued_bytes;     /* the bytes they hold, now */
    uint64_t max_queued;       /* the most jobs ever held at once */
    uint64_t max_queued_bytes; /* the most bytes ever held at once */
    uint64_t submitted;        /* jobs accepted */
    uint64_t busy;             /* submissions refused with STORE_E_BUSY */
    store_async_kind_stats_t kind[STORE_ASYNC_KINDS];
} store_async_stats_t;

/* A snapshot of the counters since start (thread-safe, cheap: one mutex). */
void store_async_stats(store_async_t *a, store_async_stats_t *out);

/* An upper bound of the p-th percentile (0 < p <= 100) of one kind's
 * latencies in µs, from its histogram (within a factor of two); 0 when no
 * job of that kind completed. */
uint64_t store_async_stats_percentile(const store_async_kind_stats_t *k, double p);

#endif
