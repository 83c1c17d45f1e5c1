/* The loop and its small services: the pass before each poll, timers,
 * signals and cross-thread wake-ups, each a thin wrapper over libuv so
 * that nothing outside src/transport includes <uv.h>. */
#include <signal.h>
#include <stdlib.h>

#include "core/xmalloc.h"
#include "transport/transport_int.h"

#define READBUF_SIZE (64 * 1024)

/* Before the loop blocks: the server's work (chat flush, reaps), then every
 * queue written once, gathering each stream's output into one write. */
static void on_prepare(uv_prepare_t *h) {
    tt_loop_t *loop = h->data;
    tt__stream_resume_all(loop);
    if (loop->before_flush != NULL)
        loop->before_flush(loop->before_flush_ctx);
    tt_loop_flush(loop);
    /* The iteration's work is done: the poll waits next. */
    if (loop->iter_start != 0)
        tt_hist_observe(&loop->stats.iteration_us, (uv_hrtime() - loop->iter_start) / 1000);
}

/* The poll returned: the iteration's work starts. */
static void on_check(uv_check_t *h) {
    tt_loop_t *loop = h->data;
    loop->iter_start = uv_hrtime();
}

/* Iterations are mostly tens of microseconds; a stuck one is seconds. */
static const uint64_t iteration_le_us[] = {10,     25,     50,     100,    250,   500,
                                           1000,   2500,   5000,   10000,  25000, 50000,
                                           100000, 250000, 500000, 1000000};

static void on_idle(uv_idle_t *h) {
    tt_loop_t *loop = h->data;
    tt__stream_resume_all(loop);
}

void tt__loop_idle_start(tt_loop_t *loop) {
    if (!loop->idle_on) {
        loop->idle_on = true;
        uv_idle_start(&loop->idle, on_idle);
    }
}

tt_loop_t *tt_loop_new(void) {
    /* A write to a peer that has gone must be an error (EPIPE) for the
     * stream, not a signal that kills the process. Process-wide, as every
     * server needs it. */
    signal(SIGPIPE, SIG_IGN);
    tt_loop_t *loop = xcalloc(1, sizeof(*loop));
    uv_loop_init(&loop->uv);
    loop->uv.data = loop;
    tt_list_init(&loop->streams);
    tt_list_init(&loop->pending);
    tt_list_init(&loop->resume);
    loop->readbuf_cap = READBUF_SIZE;
    loop->readbuf = xmalloc(READBUF_SIZE);
    loop->cork = xmalloc(TT_CORK_BYTES);
    uv_prepare_init(&loop->uv, &loop->prepare);
    loop->prepare.data = loop;
    uv_prepare_start(&loop->prepare, on_prepare);
    /* The prepare handle must not keep the loop alive by itself. */
    uv_unref((uv_handle_t *)&loop->prepare);
    uv_check_init(&loop->uv, &loop->check);
    loop->check.data = loop;
    uv_check_start(&loop->check, on_check);
    uv_unref((uv_handle_t *)&loop->check);
    tt_hist_init(&loop->stats.iteration_us, iteration_le_us,
                 sizeof(iteration_le_us) / sizeof(iteration_le_us[0]));
    uv_idle_init(&loop->uv, &loop->idle);
    loop->idle.data = loop;
    return loop;
}

int tt_loop_run(tt_loop_t *loop) {
    uv_run(&loop->uv, UV_RUN_DEFAULT);
    return 0;
}

int tt_loop_run_nowait(tt_loop_t *loop) {
    return uv_run(&loop->uv, UV_RUN_NOWAIT);
}

static void on_noop_close(uv_handle_t *h) {
    (void)h;
}

void tt_loop_free(tt_loop_t *loop) {
    if (loop == NULL)
        return;
    uv_close((uv_handle_t *)&loop->prepare, on_noop_close);
    uv_close((uv_handle_t *)&loop->check, on_noop_close);
    uv_close((uv_handle_t *)&loop->idle, on_noop_close);
    uv_run(&loop->uv, UV_RUN_DEFAULT); /* let close callbacks run */
    uv_loop_close(&loop->uv);
    tt__loop_free_entries(loop);
    tt__tls_loop_free(loop);
    free(loop->readbuf);
    free(loop->cork);
    free(loop);
}

uint64_t tt_loop_now(const tt_loop_t *loop) {
    return uv_now(&loop->uv);
}

void tt_loop_set_before_flush(tt_loop_t *loop, tt_loop_cb cb, void *ctx) {
    loop->before_flush = cb;
    loop->before_flush_ctx = ctx;
}

const tt_loop_stats_t *tt_loop_stats(const tt_loop_t *loop) {
    return &loop->stats;
}

size_t tt_loop_stream_count(const tt_loop_t *loop) {
    return loop->nstreams;
}

const char *tt_strerror(int err) {
    return uv_strerror(err);
}

/* ---- timers, signals, wake-ups ---- */

struct tt_timer_s {
    uv_timer_t h;
    tt_loop_cb cb;
    void *ctx;
};

static void on_timer(uv_timer_t *h) {
    tt_timer_t *t = (tt_timer_t *)h;
    t->cb(t->ctx);
}

static void on_free_close(uv_handle_t *h) {
    free(h);
}

tt_timer_t *tt_timer_new(tt_loop_t *loop, tt_loop_cb cb, void *ctx) {
    tt_timer_t *t = xcalloc(1, sizeof(*t));
    uv_timer_init(&loop->uv, &t->h);
    t->cb = cb;
    t->ctx = ctx;
    return t;
}

void tt_timer_start(tt_timer_t *t, uint64_t first_ms, uint64_t repeat_ms) {
    uv_timer_start(&t->h, on_timer, first_ms, repeat_ms);
}

void tt_timer_free(tt_timer_t *t) {
    if (t != NULL)
        uv_close((uv_handle_t *)&t->h, on_free_close);
}

struct tt_signal_s {
    uv_signal_t h;
    tt_loop_cb cb;
    void *ctx;
};

static void on_signal(uv_signal_t *h, int signum) {
    (void)signum;
    tt_signal_t *s = (tt_signal_t *)h;
    s->cb(s->ctx);
}

tt_signal_t *tt_signal_new(tt_loop_t *loop, int signum, tt_loop_cb cb, void *ctx) {
    tt_signal_t *s = xcalloc(1, sizeof(*s));
    uv_signal_init(&loop->uv, &s->h);
    s->cb = cb;
    s->ctx = ctx;
    uv_signal_start(&s->h, on_signal, signum);
    return s;
}

void tt_signal_free(tt_signal_t *s) {
    if (s != NULL)
        uv_close((uv_handle_t *)&s->h, on_free_close);
}

struct tt_async_s {
    uv_async_t h;
    tt_loop_cb cb;
    void *ctx;
};

static void on_async(uv_async_t *h) {
    tt_async_t *a = (tt_async_t *)h;
    a->cb(a->ctx);
}

tt_async_t *tt_async_new(tt_loop_t *loop, tt_loop_cb cb, void *ctx) {
    tt_async_t *a = xcalloc(1, sizeof(*a));
    uv_async_init(&loop->uv, &a->h, on_async);
    a->cb = cb;
    a->ctx = ctx;
    return a;
}

void tt_async_send(tt_async_t *a) {
    uv_async_send(&a->h);
}

void tt_async_free(tt_async_t *a) {
    if (a != NULL)
        uv_close((uv_handle_t *)&a->h, on_free_close);
}

typedef struct work_job_s {
    uv_work_t req;
    tt_work_cb work, done;
    void *ctx;
} work_job_t;

static void work_run(uv_work_t *req) {
    work_job_t *j = req->data;
    j->work(j->ctx);
}

static void work_done(uv_work_t *req, int status) {
    (void)status; /* never cancelled: uv_cancel is not called */
    work_job_t *j = req->data;
    j->done(j->ctx);
    free(j);
}

void tt_loop_work(tt_loop_t *loop, tt_work_cb work, tt_work_cb done, void *ctx) {
    work_job_t *j = xcalloc(1, sizeof(*j));
    j->req.data = j;
    j->work = work;
    j->done = done;
    j->ctx = ctx;
    if (uv_queue_work(&loop->uv, &j->req, work_run, work_done) < 0) {
        work(ctx);
        work_done(&j->req, 0);
    }
}
