/* A small pool of worker threads for the slow part of logging in: an
 * Argon2id hash costs about 100 ms of a core (auth_pw.h), so it must never
 * run on the event loop. Jobs are the caller's (a function run on a
 * worker, a callback run on the loop), queued in a bounded FIFO: a flood
 * of logins finds the queue full (AUTH_E_BUSY, answered `rate_limited`)
 * instead of growing it without end.
 *
 * Not responsible for the event loop (no <uv.h>): like store_async.h, the
 * pool tells the loop that completions are ready through a notify
 * callback (uv_async_send in the server), and the loop runs their
 * callbacks with auth_pool_drain.
 *
 * Threads: every function here is called on one thread, "the loop"; the
 * work functions run on the workers, the notify callback on a worker too.
 * Jobs start in submission order; with more than one worker they may
 * finish in any order, and their callbacks run in the order they finished. */
#ifndef TT_AUTH_AUTH_POOL_H
#define TT_AUTH_AUTH_POOL_H

#include <stddef.h>

#include "auth/auth.h"

#define AUTH_POOL_THREADS_MAX 64
#define AUTH_POOL_JOBS_MAX 65536

typedef struct auth_pool_s auth_pool_t;

/* On a WORKER, after a job finished and found no earlier completion still
 * waiting for its drain (calls are coalesced). Thread-safe and cheap;
 * must not call into the pool. */
typedef void (*auth_pool_notify_cb)(void *ctx);

/* The slow part, on a worker. It may touch only what arg holds: the loop
 * does not look at arg until done runs. */
typedef void (*auth_pool_work_fn)(void *arg);

/* On the loop, from auth_pool_drain or auth_pool_stop: rc is 0 when work
 * ran, AUTH_E_CANCELLED when the pool stopped before it started. */
typedef void (*auth_pool_done_fn)(void *arg, int rc);

/* Starts `threads` workers (1..AUTH_POOL_THREADS_MAX) taking at most
 * max_jobs (1..AUTH_POOL_JOBS_MAX) submitted jobs whose callback has not
 * run yet. notify and ctx are borrowed until auth_pool_stop returns.
 * Returns 0 and *out, AUTH_E_INVALID for bounds outside those, or
 * AUTH_E_NOMEM when a thread cannot be made (none is left running). */
int auth_pool_start(unsigned threads, unsigned max_jobs, auth_pool_notify_cb notify, void *ctx,
                    auth_pool_t **out);

/* Queues a job. Returns 0 (done will run exactly once), AUTH_E_BUSY when
 * max_jobs are queued, running or waiting for their drain (done will not
 * run), AUTH_E_INVALID for a NULL function or a stopped pool. */
int auth_pool_submit(auth_pool_t *p, auth_pool_work_fn work, auth_pool_done_fn done, void *arg);

/* Runs the callbacks of the jobs finished so far, on the calling thread.
 * A callback may submit new jobs (the job being completed no longer counts
 * against max_jobs). Called from inside a callback it does nothing.
 * Returns how many callbacks ran. */
size_t auth_pool_drain(auth_pool_t *p);

/* Jobs submitted whose callback has not run: what counts against max_jobs. */
unsigned auth_pool_pending(const auth_pool_t *p);

/* Stops the pool: jobs not started yet are cancelled, the running ones
 * finish, the workers are joined, and every remaining callback runs here
 * (rc 0 or AUTH_E_CANCELLED) before the pool is freed. Callbacks may not
 * submit then (AUTH_E_INVALID). NULL is a no-op. */
void auth_pool_stop(auth_pool_t *p);

#endif
