/* The worker pool of auth_pool.h: one mutex, a list of jobs to start and
 * one of jobs finished (core/list.h), and `pending` counting every job from its
 * submission until its callback has run (the bound). */
#include "auth/auth_pool.h"

#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>

#include "core/list.h"
#include "core/sigmask.h"
#include "core/xmalloc.h"

typedef struct job_s {
    tt_link_t link; /* on todo, then on done */
    auth_pool_work_fn work;
    auth_pool_done_fn done;
    void *arg;
    int rc;
} job_t;

struct auth_pool_s {
    pthread_mutex_t mu;
    pthread_cond_t work_cv;
    tt_link_t todo, done;
    unsigned pending, max_jobs;
    unsigned nthreads;
    pthread_t *threads;
    bool stopping;
    bool draining;
    auth_pool_notify_cb notify;
    void *notify_ctx;
};

static job_t *pop(tt_link_t *list) {
    tt_link_t *l = tt_list_first(list);
    if (l == NULL)
        return NULL;
    tt_link_unlink(l);
    return tt_container_of(l, job_t, link);
}

static void *worker_main(void *arg) {
    auth_pool_t *p = arg;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        job_t *j = p->stopping ? NULL : pop(&p->todo);
        if (j == NULL) {
            if (p->stopping)
                break;
            pthread_cond_wait(&p->work_cv, &p->mu);
            continue;
        }
        pthread_mutex_unlock(&p->mu);
        j->work(j->arg);
        j->rc = 0;
        pthread_mutex_lock(&p->mu);
        bool first = tt_list_is_empty(&p->done);
        tt_list_insert_tail(&p->done, &j->link);
        if (first && p->notify != NULL && !p->stopping) {
            pthread_mutex_unlock(&p->mu);
            p->notify(p->notify_ctx);
            pthread_mutex_lock(&p->mu);
        }
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

int auth_pool_start(unsigned threads, unsigned max_jobs, auth_pool_notify_cb notify, void *ctx,
                    auth_pool_t **out) {
    *out = NULL;
    if (threads < 1 || threads > AUTH_POOL_THREADS_MAX || max_jobs < 1 ||
        max_jobs > AUTH_POOL_JOBS_MAX)
        return AUTH_E_INVALID;
    auth_pool_t *p = xcalloc(1, sizeof(*p));
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->work_cv, NULL);
    tt_list_init(&p->todo);
    tt_list_init(&p->done);
    p->max_jobs = max_jobs;
    p->notify = notify;
    p->notify_ctx = ctx;
    p->threads = xcalloc(threads, sizeof(*p->threads));
    /* Workers take no process signals (core/sigmask.h). */
    sigset_t old;
    tt_sigmask_block_for_workers(&old);
    for (unsigned i = 0; i < threads; i++) {
        if (pthread_create(&p->threads[i], NULL, worker_main, p) != 0) {
            pthread_sigmask(SIG_SETMASK, &old, NULL);
            auth_pool_stop(p);
            return AUTH_E_NOMEM;
        }
        p->nthreads++;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    *out = p;
    return 0;
}

int auth_pool_submit(auth_pool_t *p, auth_pool_work_fn work, auth_pool_done_fn done, void *arg) {
    if (p == NULL || work == NULL || done == NULL || p->stopping)
        return AUTH_E_INVALID;
    /* pending changes only on this thread: no lock needed to read it. */
    if (p->pending >= p->max_jobs)
        return AUTH_E_BUSY;
    job_t *j = xcalloc(1, sizeof(*j));
    j->work = work;
    j->done = done;
    j->arg = arg;
    p->pending++;
    pthread_mutex_lock(&p->mu);
    tt_list_insert_tail(&p->todo, &j->link);
    pthread_cond_signal(&p->work_cv);
    pthread_mutex_unlock(&p->mu);
    return 0;
}

size_t auth_pool_drain(auth_pool_t *p) {
    if (p == NULL || p->draining)
        return 0;
    p->draining = true;
    tt_link_t list;
    tt_list_init(&list);
    pthread_mutex_lock(&p->mu);
    tt_list_move_all(&list, &p->done);
    pthread_mutex_unlock(&p->mu);
    size_t n = 0;
    job_t *j;
    while ((j = pop(&list)) != NULL) {
        p->pending--;
        j->done(j->arg, j->rc);
        free(j);
        n++;
    }
    p->draining = false;
    return n;
}

unsigned auth_pool_pending(const auth_pool_t *p) {
    return p != NULL ? p->pending : 0;
}

void auth_pool_stop(auth_pool_t *p) {
    if (p == NULL)
        return;
    pthread_mutex_lock(&p->mu);
    p->stopping = true;
    pthread_cond_broadcast(&p->work_cv);
    pthread_mutex_unlock(&p->mu);
    for (unsigned i = 0; i < p->nthreads; i++)
        pthread_join(p->threads[i], NULL);
    /* Finished jobs first (in the order they finished), then the ones that
     * never started. */
    p->draining = false;
    auth_pool_drain(p);
    p->draining = true;
    job_t *j;
    while ((j = pop(&p->todo)) != NULL) {
        p->pending--;
        j->done(j->arg, AUTH_E_CANCELLED);
        free(j);
    }
    pthread_cond_destroy(&p->work_cv);
    pthread_mutex_destroy(&p->mu);
    free(p->threads);
    free(p);
}
