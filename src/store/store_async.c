/* The asynchronous front of the store: one worker thread, which owns the
 * store's loop connection, takes jobs from a FIFO and puts them, completed,
 * on a second FIFO that the loop drains. One mutex guards both lists and
 * every counter; the loop holds it for a few pointer moves per call, the
 * worker never while it runs a job. Not responsible for the SQL (store.h's
 * calls do it) nor for waking the loop (the notify callback does). */
#include "store/store_async.h"

#include <assert.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdalign.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/sigmask.h"
#include "core/xmalloc.h"
#include "store/store_int.h"

#define DEFAULT_MAX_JOBS 1024u
#define DEFAULT_MAX_BYTES ((size_t)64 << 20)

typedef struct job_s job_t;
struct job_s {
    job_t *next;
    store_async_kind_t kind;
    int rc;
    size_t bytes; /* counted against max_bytes while the job is held */
    uint64_t t_submit, t_start, t_done;
    void *arg;
    union {
        struct {
            store_append_done_cb cb;
            store_msg_t *msgs; /* in this job's allocation, after the job */
            size_t n;
        } append;
        struct {
            store_range_done_cb cb;
            char *room; /* in this job's allocation */
            size_t room_len;
            int64_t after_id, before_id;
            unsigned limit;
            store_rec_t *recs; /* the results: one allocation, or NULL */
            size_t n;
            bool more;
        } range;
        struct {
            store_reserve_done_cb cb;
            int64_t upto;
        } reserve;
        struct {
            store_call_run_fn run;
            store_call_done_cb done;
        } call;
    } u;
};

typedef struct {
    job_t *head, *tail;
} job_list_t;

/* A record of a read while it is collected: offsets into the worker's
 * string buffer, which may move as it grows. */
typedef struct {
    int64_t id, ts;
    store_kind_t kind;
    bool has_to;
    size_t room, from, to, text; /* offsets */
    size_t room_len, from_len, to_len, text_len;
    int64_t edited_ts;
    bool deleted;
} rec_off_t;

struct store_async_s {
    store_t *st;
    store_async_notify_cb notify;
    void *notify_ctx;
    unsigned max_jobs;
    size_t max_bytes;
    pthread_t thread;

    pthread_mutex_t mu;
    pthread_cond_t work_cv; /* the worker waits for jobs (or stop) */
    pthread_cond_t done_cv; /* store_async_stop waits for completions */
    /* Under mu. */
    job_list_t todo;     /* submitted, not yet taken by the worker */
    job_list_t done;     /* completed, callbacks not yet run */
    bool worker_idle;    /* waiting on work_cv: a submission signals it */
    bool stopping;       /* store_async_stop has begun: refuse submissions */
    bool exited;         /* the worker has left its loop */
    uint64_t held;       /* jobs submitted whose callback has not run */
    uint64_t held_bytes; /* their bytes */
    store_async_stats_t stats;

    int64_t last_id; /* store_last_id after the last job, under mu */

    /* The loop thread only. */
    bool draining; /* inside store_async_drain or stop: a nested drain does nothing */

    /* The worker only: the read being collected, reused across reads. */
    rec_off_t *recs;
    size_t nrecs, recs_cap;
    char *strs;
    size_t strs_len, strs_cap;
};

static uint64_t mono_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

unsigned store__hist_bucket(uint64_t us, unsigned n) {
    unsigned b = 0;
    while (us != 0 && b < n - 1) {
        us >>= 1;
        b++;
    }
    return b;
}

uint64_t store__hist_percentile(const uint64_t *hist, unsigned n, uint64_t max_us, double p) {
    uint64_t total = 0;
    for (unsigned i = 0; i < n; i++)
        total += hist[i];
    if (total == 0)
        return 0;
    /* The rank of the p-th percentile, rounded up, at least the first. */
    double want = p / 100.0 * (double)total;
    uint64_t rank = (uint64_t)want;
    if ((double)rank < want || rank == 0)
        rank++;
    uint64_t seen = 0;
    for (unsigned i = 0; i < n; i++) {
        seen += hist[i];
        if (seen >= rank) {
            /* Bucket i's durations are below 2^i µs; the last one is open. */
            uint64_t bound = i == 0 ? 0 : (UINT64_C(1) << i) - 1;
            return i == n - 1 || bound > max_us ? max_us : bound;
        }
    }
    return max_us;
}

static void list_push(job_list_t *l, job_t *j) {
    j->next = NULL;
    if (l->tail != NULL)
        l->tail->next = j;
    else
        l->head = j;
    l->tail = j;
}

static job_t *list_pop(job_list_t *l) {
    job_t *j = l->head;
    if (j != NULL) {
        l->head = j->next;
        if (l->head == NULL)
            l->tail = NULL;
    }
    return j;
}

/* a + b, or SIZE_MAX when it does not fit (then over any max_bytes). */
static size_t add_sat(size_t a, size_t b) {
    return a > SIZE_MAX - b ? SIZE_MAX : a + b;
}

static size_t align_up(size_t n, size_t to) {
    return add_sat(n, to - 1) / to * to;
}

/* ------------------------------------------------------------------------ */
/* The worker */

static bool grow_strs(store_async_t *a, size_t more) {
    size_t need = add_sat(a->strs_len, more);
    if (need == SIZE_MAX)
        return false;
    if (need > a->strs_cap) {
        size_t cap = a->strs_cap ? a->strs_cap : 4096;
        while (cap < need)
            cap = add_sat(cap, cap);
        a->strs = xrealloc(a->strs, cap);
        a->strs_cap = cap;
    }
    return true;
}

/* Copies s[0..len) and a NUL into the string buffer; returns its offset. */
static size_t put_str(store_async_t *a, const char *s, size_t len) {
    size_t at = a->strs_len;
    if (len > 0)
        memcpy(a->strs + at, s, len);
    a->strs[at + len] = '\0';
    a->strs_len = at + len + 1;
    return at;
}

static void on_rec(void *ctx, const store_rec_t *r) {
    store_async_t *a = ctx;
    if (a->nrecs == a->recs_cap) {
        a->recs_cap = a->recs_cap ? 2 * a->recs_cap : 64;
        a->recs = xrealloc(a->recs, a->recs_cap * sizeof(*a->recs));
    }
    /* SQLite's strings are at most SQLITE_MAX_LENGTH (1e9) each. */
    size_t need = r->room_len + r->from_len + r->to_len + r->text_len + 4;
    if (!grow_strs(a, need))
        abort();
    rec_off_t *o = &a->recs[a->nrecs++];
    o->id = r->id;
    o->ts = r->ts;
    o->kind = r->kind;
    o->room = put_str(a, r->room, r->room_len);
    o->room_len = r->room_len;
    o->from = put_str(a, r->from, r->from_len);
    o->from_len = r->from_len;
    o->has_to = r->to != NULL;
    o->to = o->has_to ? put_str(a, r->to, r->to_len) : 0;
    o->to_len = o->has_to ? r->to_len : 0;
    o->text = put_str(a, r->text, r->text_len);
    o->text_len = r->text_len;
    o->edited_ts = r->edited_ts;
    o->deleted = r->deleted;
}

/* Runs a read and moves its results into one allocation: the records,
 * then their strings. */
static void run_range(store_async_t *a, job_t *j) {
    a->nrecs = 0;
    a->strs_len = 0;
    bool more = false;
    int rc = store_range(a->st, j->u.range.room, j->u.range.room_len, j->u.range.after_id,
                         j->u.range.before_id, j->u.range.limit, on_rec, a, &more);
    j->rc = rc;
    j->u.range.recs = NULL;
    j->u.range.n = 0;
    j->u.range.more = false;
    if (rc <= 0)
        return;
    size_t n = a->nrecs;
    size_t recs_size = n * sizeof(store_rec_t);
    size_t size = recs_size + a->strs_len;
    store_rec_t *recs = xmalloc(size);
    char *strs = (char *)recs + recs_size;
    memcpy(strs, a->strs, a->strs_len);
    for (size_t i = 0; i < n; i++) {
        const rec_off_t *o = &a->recs[i];
        recs[i] = (store_rec_t){
            .id = o->id,
            .ts = o->ts,
            .kind = o->kind,
            .room = strs + o->room,
            .room_len = o->room_len,
            .from = strs + o->from,
            .from_len = o->from_len,
            .to = o->has_to ? strs + o->to : NULL,
            .to_len = o->to_len,
            .text = strs + o->text,
            .text_len = o->text_len,
            .edited_ts = o->edited_ts,
            .deleted = o->deleted,
        };
    }
    j->u.range.recs = recs;
    j->u.range.n = n;
    j->u.range.more = more;
    j->bytes += size;
}

static void run_job(store_async_t *a, job_t *j) {
    switch (j->kind) {
    case STORE_ASYNC_APPEND:
        j->rc = store_append_batch(a->st, j->u.append.msgs, j->u.append.n);
        break;
    case STORE_ASYNC_RANGE:
        run_range(a, j);
        break;
    case STORE_ASYNC_RESERVE:
        j->rc = store_reserve_ids(a->st, j->u.reserve.upto);
        break;
    case STORE_ASYNC_CALL:
        j->rc = j->u.call.run(a->st, j->arg);
        break;
    default:
        assert(!"unknown job kind");
        j->rc = STORE_E_INTERNAL;
    }
}

/* Under mu. */
static void note_done(store_async_t *a, job_t *j, size_t result_bytes) {
    store_async_kind_stats_t *k = &a->stats.kind[j->kind];
    uint64_t lat = j->t_done - j->t_submit, run = j->t_done - j->t_start;
    k->jobs++;
    if (j->rc < 0)
        k->failures++;
    k->total_us += lat;
    if (lat > k->max_us)
        k->max_us = lat;
    k->run_us += run;
    if (run > k->run_max_us)
        k->run_max_us = run;
    k->hist[store__hist_bucket(lat, STORE_ASYNC_HIST_BUCKETS)]++;
    a->held_bytes += result_bytes;
    if (a->held_bytes > a->stats.max_queued_bytes)
        a->stats.max_queued_bytes = a->held_bytes;
}

static void *worker_main(void *arg) {
    store_async_t *a = arg;
    /* Before the first job: store__is_owner compares with it. */
    a->st->async_thread = pthread_self();
    pthread_mutex_lock(&a->mu);
    for (;;) {
        job_t *j = list_pop(&a->todo);
        if (j == NULL) {
            /* Stop only with the queue empty: every job submitted before
             * store_async_stop runs. */
            if (a->stopping)
                break;
            a->worker_idle = true;
            pthread_cond_wait(&a->work_cv, &a->mu);
            a->worker_idle = false;
            continue;
        }
        pthread_mutex_unlock(&a->mu);

        j->t_start = mono_us();
        size_t before = j->bytes;
        run_job(a, j);
        j->t_done = mono_us();

        int64_t last = store_last_id(a->st);
        pthread_mutex_lock(&a->mu);
        a->last_id = last;
        note_done(a, j, j->bytes - before);
        /* One notify per batch of completions: the first one to find the
         * done list empty calls it, and the drain that answers it takes
         * every completion queued behind. */
        bool first = a->done.head == NULL;
        list_push(&a->done, j);
        if (a->stopping)
            pthread_cond_signal(&a->done_cv);
        if (first && a->notify != NULL) {
            pthread_mutex_unlock(&a->mu);
            a->notify(a->notify_ctx);
            pthread_mutex_lock(&a->mu);
        }
    }
    a->exited = true;
    pthread_cond_signal(&a->done_cv);
    pthread_mutex_unlock(&a->mu);
    return NULL;
}

/* ------------------------------------------------------------------------ */
/* Lifetime */

void store_async_config_defaults(store_async_config_t *cfg) {
    cfg->max_jobs = DEFAULT_MAX_JOBS;
    cfg->max_bytes = DEFAULT_MAX_BYTES;
}

int store_async_start(store_t *st, const store_async_config_t *cfg, store_async_notify_cb notify,
                      void *ctx, store_async_t **out) {
    *out = NULL;
    if (st == NULL || st->async)
        return STORE_E_INVALID;
    /* The worker and the maintenance thread use connections from threads
     * other than the one that opened them. */
    if (sqlite3_threadsafe() == 0)
        return STORE_E_INTERNAL;
    store_async_t *a = xcalloc(1, sizeof(*a));
    a->st = st;
    a->last_id = store_last_id(st);
    a->notify = notify;
    a->notify_ctx = ctx;
    a->max_jobs = cfg != NULL && cfg->max_jobs != 0 ? cfg->max_jobs : DEFAULT_MAX_JOBS;
    a->max_bytes = cfg != NULL && cfg->max_bytes != 0 ? cfg->max_bytes : DEFAULT_MAX_BYTES;
    pthread_mutex_init(&a->mu, NULL);
    pthread_cond_init(&a->work_cv, NULL);
    pthread_cond_init(&a->done_cv, NULL);

    /* The worker takes no process signals (core/sigmask.h): they never
     * interrupt SQLite's system calls. */
    sigset_t old;
    tt_sigmask_block_for_workers(&old);
    /* The handover: the store's fields are the worker's from here on. The
     * flag is set before the thread exists, so the worker sees it. */
    st->async = true;
    int e = pthread_create(&a->thread, NULL, worker_main, a);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (e != 0) {
        st->async = false;
        pthread_cond_destroy(&a->done_cv);
        pthread_cond_destroy(&a->work_cv);
        pthread_mutex_destroy(&a->mu);
        free(a);
        return STORE_E_INTERNAL;
    }
    *out = a;
    return 0;
}

/* Runs the callback of a job and frees it. On the loop thread. */
static void complete(job_t *j) {
    switch (j->kind) {
    case STORE_ASYNC_APPEND:
        j->u.append.cb(j->arg, j->rc, j->u.append.msgs, j->u.append.n);
        break;
    case STORE_ASYNC_RANGE:
        j->u.range.cb(j->arg, j->rc, j->u.range.recs, j->u.range.n, j->u.range.more);
        free(j->u.range.recs);
        break;
    case STORE_ASYNC_RESERVE:
        j->u.reserve.cb(j->arg, j->rc);
        break;
    case STORE_ASYNC_CALL:
        j->u.call.done(j->arg, j->rc);
        break;
    default:
        break;
    }
    free(j);
}

/* Takes the done list, under mu, releasing its jobs from the bounds. */
static job_t *take_done(store_async_t *a) {
    job_t *list = a->done.head;
    a->done.head = a->done.tail = NULL;
    for (job_t *j = list; j != NULL; j = j->next) {
        a->held--;
        a->held_bytes -= j->bytes;
    }
    return list;
}

static size_t run_list(store_async_t *a, job_t *list) {
    size_t n = 0;
    a->draining = true;
    while (list != NULL) {
        job_t *next = list->next;
        complete(list);
        list = next;
        n++;
    }
    a->draining = false;
    return n;
}

size_t store_async_drain(store_async_t *a) {
    if (a->draining)
        return 0;
    pthread_mutex_lock(&a->mu);
    job_t *list = take_done(a);
    pthread_mutex_unlock(&a->mu);
    return run_list(a, list);
}

void store_async_stop(store_async_t *a) {
    if (a == NULL)
        return;
    assert(!a->draining && "store_async_stop from inside a callback");
    pthread_mutex_lock(&a->mu);
    a->stopping = true;
    pthread_cond_signal(&a->work_cv);
    /* Callbacks run as their jobs complete, not all at the end: a long
     * queue behind a stalled job is answered as it goes. */
    for (;;) {
        while (a->done.head == NULL && !a->exited)
            pthread_cond_wait(&a->done_cv, &a->mu);
        bool last = a->exited;
        job_t *list = take_done(a);
        pthread_mutex_unlock(&a->mu);
        run_list(a, list);
        if (last)
            break;
        pthread_mutex_lock(&a->mu);
    }
    pthread_join(a->thread, NULL);
    assert(a->held == 0 && a->todo.head == NULL);
    /* The loop owns the store again. */
    a->st->async = false;
    pthread_cond_destroy(&a->done_cv);
    pthread_cond_destroy(&a->work_cv);
    pthread_mutex_destroy(&a->mu);
    free(a->recs);
    free(a->strs);
    free(a);
}

/* ------------------------------------------------------------------------ */
/* Submissions */

/* Queues j, or frees it and returns STORE_E_BUSY when it does not fit. */
static int submit(store_async_t *a, job_t *j) {
    j->t_submit = mono_us();
    pthread_mutex_lock(&a->mu);
    if (a->stopping || a->held >= a->max_jobs || j->bytes > a->max_bytes ||
        a->held_bytes > a->max_bytes - j->bytes) {
        a->stats.busy++;
        pthread_mutex_unlock(&a->mu);
        free(j);
        return STORE_E_BUSY;
    }
    a->held++;
    a->held_bytes += j->bytes;
    if (a->held > a->stats.max_queued)
        a->stats.max_queued = a->held;
    if (a->held_bytes > a->stats.max_queued_bytes)
        a->stats.max_queued_bytes = a->held_bytes;
    a->stats.submitted++;
    list_push(&a->todo, j);
    if (a->worker_idle)
        pthread_cond_signal(&a->work_cv);
    pthread_mutex_unlock(&a->mu);
    return 0;
}

/* The ids a batch can be refused for without knowing the stored ones:
 * each caller's id must exceed the previous id of the batch, and a store's
 * id is at least the previous one plus one. */
static bool batch_is_valid(const store_msg_t *msgs, size_t n) {
    int64_t lower = 0; /* an id below which none of the next can be */
    for (size_t i = 0; i < n; i++) {
        const store_msg_t *m = &msgs[i];
        if (!store__msg_is_valid(m) || m->id < 0 || m->id > STORE_ID_MAX)
            return false;
        if (m->id == 0) {
            lower++;
        } else {
            if (m->id <= lower)
                return false;
            lower = m->id;
        }
    }
    return true;
}

static char *copy_str(char **at, const char *s, size_t len) {
    char *p = *at;
    if (len > 0)
        memcpy(p, s, len);
    *at = p + len;
    return p;
}

int store_async_append(store_async_t *a, const store_msg_t *msgs, size_t n, store_append_done_cb cb,
                       void *arg) {
    if (cb == NULL || (msgs == NULL && n > 0) || !batch_is_valid(msgs, n))
        return STORE_E_INVALID;
    /* One allocation: the job, the messages, their strings. The size is
     * known before anything is copied, so a batch over max_bytes costs
     * nothing but this sum. */
    size_t head = align_up(sizeof(job_t), alignof(store_msg_t));
    size_t size =
        add_sat(head, n > SIZE_MAX / sizeof(store_msg_t) ? SIZE_MAX : n * sizeof(store_msg_t));
    for (size_t i = 0; i < n && size <= a->max_bytes; i++) {
        size = add_sat(size, msgs[i].room_len);
        size = add_sat(size, msgs[i].from_len);
        size = add_sat(size, msgs[i].to_len);
        size = add_sat(size, msgs[i].text_len);
    }
    if (size == SIZE_MAX || size > a->max_bytes) {
        pthread_mutex_lock(&a->mu);
        a->stats.busy++;
        pthread_mutex_unlock(&a->mu);
        return STORE_E_BUSY;
    }
    job_t *j = xmalloc(size);
    memset(j, 0, sizeof(*j));
    j->kind = STORE_ASYNC_APPEND;
    j->bytes = size;
    j->arg = arg;
    j->u.append.cb = cb;
    j->u.append.n = n;
    j->u.append.msgs = n > 0 ? (store_msg_t *)((char *)j + head) : NULL;
    char *at = (char *)j + head + n * sizeof(store_msg_t);
    for (size_t i = 0; i < n; i++) {
        const store_msg_t *m = &msgs[i];
        store_msg_t *c = &j->u.append.msgs[i];
        *c = *m;
        c->room = copy_str(&at, m->room, m->room_len);
        c->from = copy_str(&at, m->from, m->from_len);
        /* NULL stays NULL: it is what tells a room message. */
        c->to = m->to != NULL ? copy_str(&at, m->to, m->to_len) : NULL;
        c->text = m->text != NULL ? copy_str(&at, m->text, m->text_len) : NULL;
    }
    return submit(a, j);
}

int store_async_range(store_async_t *a, const char *room, size_t room_len, int64_t after_id,
                      int64_t before_id, unsigned limit, store_range_done_cb cb, void *arg) {
    /* What store_range would refuse, refused now (the key is folded there). */
    char key[STORE_ROOM_MAX + 1];
    const char *k;
    size_t klen;
    if (cb == NULL || after_id < 0 || before_id < 0 || limit > STORE_ASYNC_RANGE_MAX ||
        store__key(room, room_len, key, &k, &klen) != 0)
        return STORE_E_INVALID;
    size_t size = sizeof(job_t) + room_len + 1;
    job_t *j = xmalloc(size);
    memset(j, 0, sizeof(*j));
    j->kind = STORE_ASYNC_RANGE;
    j->bytes = size;
    j->arg = arg;
    j->u.range.cb = cb;
    j->u.range.room = (char *)(j + 1);
    memcpy(j->u.range.room, room, room_len);
    j->u.range.room[room_len] = '\0';
    j->u.range.room_len = room_len;
    j->u.range.after_id = after_id;
    j->u.range.before_id = before_id;
    j->u.range.limit = limit;
    return submit(a, j);
}

int store_async_reserve_ids(store_async_t *a, int64_t upto, store_reserve_done_cb cb, void *arg) {
    if (cb == NULL || upto <= 0 || upto > STORE_ID_MAX)
        return STORE_E_INVALID;
    job_t *j = xcalloc(1, sizeof(*j));
    j->kind = STORE_ASYNC_RESERVE;
    j->bytes = sizeof(*j);
    j->arg = arg;
    j->u.reserve.cb = cb;
    j->u.reserve.upto = upto;
    return submit(a, j);
}

int store_async_call(store_async_t *a, size_t bytes, store_call_run_fn run, store_call_done_cb done,
                     void *arg) {
    if (run == NULL || done == NULL)
        return STORE_E_INVALID;
    /* submit refuses what is over max_bytes (SIZE_MAX included). */
    job_t *j = xcalloc(1, sizeof(*j));
    j->kind = STORE_ASYNC_CALL;
    j->bytes = add_sat(sizeof(*j), bytes);
    j->arg = arg;
    j->u.call.run = run;
    j->u.call.done = done;
    return submit(a, j);
}

int store_async_submit(store_async_t *a, store_t *st, size_t bytes, store_call_run_fn run,
                       store_call_done_cb done, void *job) {
    if (a != NULL) {
        int rc = store_async_call(a, bytes, run, done, job);
        if (rc < 0)
            free(job);
        return rc;
    }
    done(job, run(st, job));
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Counters */

void store_async_stats(store_async_t *a, store_async_stats_t *out) {
    pthread_mutex_lock(&a->mu);
    *out = a->stats;
    out->queued = a->held;
    out->queued_bytes = a->held_bytes;
    pthread_mutex_unlock(&a->mu);
}

uint64_t store_async_stats_percentile(const store_async_kind_stats_t *k, double p) {
    return store__hist_percentile(k->hist, STORE_ASYNC_HIST_BUCKETS, k->max_us, p);
}

int64_t store_async_last_id(store_async_t *a) {
    pthread_mutex_lock(&a->mu);
    int64_t v = a->last_id;
    pthread_mutex_unlock(&a->mu);
    return v;
}
