/* Tests for src/auth/auth_pool.c: jobs run off the calling thread and their
 * callbacks on it, the bound on jobs (AUTH_E_BUSY until the callback has
 * run, not just the work), callbacks that submit again, and stop: every
 * callback runs exactly once, cancelled exactly when its work never ran. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "auth/auth_pool.h"

/* The test's side of notify: a counter the test waits on. */
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static unsigned notified;
static bool gate_open;
static unsigned started;

static void on_notify(void *ctx) {
    (void)ctx;
    pthread_mutex_lock(&mu);
    notified++;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
}

typedef struct {
    pthread_t worker;
    bool ran, done, gated;
    int rc;
    unsigned order;
    auth_pool_t *resubmit; /* done submits one more job there */
} job_t;

static unsigned done_count;
static job_t extra;

static void work(void *arg) {
    job_t *j = arg;
    j->worker = pthread_self();
    pthread_mutex_lock(&mu);
    started++;
    pthread_cond_broadcast(&cv);
    while (j->gated && !gate_open)
        pthread_cond_wait(&cv, &mu);
    pthread_mutex_unlock(&mu);
    j->ran = true;
}

static void done(void *arg, int rc) {
    job_t *j = arg;
    assert_false(j->done);
    j->done = true;
    j->rc = rc;
    j->order = ++done_count;
    if (j->resubmit != NULL) {
        memset(&extra, 0, sizeof extra);
        assert_int_equal(auth_pool_submit(j->resubmit, work, done, &extra), 0);
    }
}

static void reset(void) {
    notified = 0;
    gate_open = false;
    started = 0;
    done_count = 0;
}

/* Drains until `want` callbacks ran, waiting for notifications between. */
static void drain_until(auth_pool_t *p, unsigned want) {
    while (done_count < want) {
        pthread_mutex_lock(&mu);
        unsigned seen = notified;
        pthread_mutex_unlock(&mu);
        if (auth_pool_drain(p) > 0)
            continue;
        pthread_mutex_lock(&mu);
        while (notified == seen)
            pthread_cond_wait(&cv, &mu);
        pthread_mutex_unlock(&mu);
    }
}

static void wait_started(unsigned n) {
    pthread_mutex_lock(&mu);
    while (started < n)
        pthread_cond_wait(&cv, &mu);
    pthread_mutex_unlock(&mu);
}

static void open_gate(void) {
    pthread_mutex_lock(&mu);
    gate_open = true;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
}

static void test_auth_pool_bounds(void **state) {
    (void)state;
    auth_pool_t *p = (auth_pool_t *)1;
    assert_int_equal(auth_pool_start(0, 8, NULL, NULL, &p), AUTH_E_INVALID);
    assert_null(p);
    assert_int_equal(auth_pool_start(AUTH_POOL_THREADS_MAX + 1, 8, NULL, NULL, &p), AUTH_E_INVALID);
    assert_int_equal(auth_pool_start(1, 0, NULL, NULL, &p), AUTH_E_INVALID);
    assert_int_equal(auth_pool_start(1, AUTH_POOL_JOBS_MAX + 1, NULL, NULL, &p), AUTH_E_INVALID);
    assert_int_equal(auth_pool_start(2, 4, on_notify, NULL, &p), 0);
    job_t j = {0};
    assert_int_equal(auth_pool_submit(p, NULL, done, &j), AUTH_E_INVALID);
    assert_int_equal(auth_pool_submit(p, work, NULL, &j), AUTH_E_INVALID);
    assert_int_equal(auth_pool_submit(NULL, work, done, &j), AUTH_E_INVALID);
    assert_int_equal(auth_pool_drain(NULL), 0);
    assert_int_equal(auth_pool_pending(p), 0);
    auth_pool_stop(p);
    auth_pool_stop(NULL);
    assert_false(j.done);
}

static void test_auth_pool_runs_off_thread(void **state) {
    (void)state;
    reset();
    auth_pool_t *p;
    assert_int_equal(auth_pool_start(2, 64, on_notify, NULL, &p), 0);
    job_t jobs[50];
    memset(jobs, 0, sizeof jobs);
    for (int i = 0; i < 50; i++)
        assert_int_equal(auth_pool_submit(p, work, done, &jobs[i]), 0);
    assert_int_equal(auth_pool_pending(p), 50);
    drain_until(p, 50);
    assert_int_equal(auth_pool_pending(p), 0);
    for (int i = 0; i < 50; i++) {
        assert_true(jobs[i].ran);
        assert_true(jobs[i].done);
        assert_int_equal(jobs[i].rc, 0);
        assert_false(pthread_equal(jobs[i].worker, pthread_self()));
    }
    auth_pool_stop(p);
}

static void test_auth_pool_busy_until_callback(void **state) {
    (void)state;
    reset();
    auth_pool_t *p;
    assert_int_equal(auth_pool_start(1, 2, on_notify, NULL, &p), 0);
    job_t a = {.gated = true}, b = {0}, c = {0};
    assert_int_equal(auth_pool_submit(p, work, done, &a), 0);
    assert_int_equal(auth_pool_submit(p, work, done, &b), 0);
    assert_int_equal(auth_pool_submit(p, work, done, &c), AUTH_E_BUSY);
    wait_started(1);
    open_gate();
    /* Both works finish; until their callbacks run they still count. */
    wait_started(2);
    pthread_mutex_lock(&mu);
    while (notified == 0)
        pthread_cond_wait(&cv, &mu);
    pthread_mutex_unlock(&mu);
    assert_int_equal(auth_pool_pending(p), 2);
    assert_int_equal(auth_pool_submit(p, work, done, &c), AUTH_E_BUSY);
    drain_until(p, 2);
    assert_true(a.order < b.order);
    assert_int_equal(auth_pool_pending(p), 0);
    assert_int_equal(auth_pool_submit(p, work, done, &c), 0);
    drain_until(p, 3);
    assert_true(c.ran);
    auth_pool_stop(p);
    assert_false(c.rc);
}

static void test_auth_pool_callback_submits(void **state) {
    (void)state;
    reset();
    auth_pool_t *p;
    /* A full pool: the job being completed no longer counts, so its
     * callback may submit the next one. */
    assert_int_equal(auth_pool_start(1, 1, on_notify, NULL, &p), 0);
    job_t a = {.resubmit = p};
    assert_int_equal(auth_pool_submit(p, work, done, &a), 0);
    drain_until(p, 2);
    assert_true(extra.ran);
    assert_int_equal(extra.rc, 0);
    auth_pool_stop(p);
}

typedef struct {
    auth_pool_t *p;
} stopper_t;

static void *stopper(void *arg) {
    auth_pool_stop(((stopper_t *)arg)->p);
    return NULL;
}

static void test_auth_pool_stop_runs_every_callback_once(void **state) {
    (void)state;
    reset();
    auth_pool_t *p;
    assert_int_equal(auth_pool_start(1, 16, on_notify, NULL, &p), 0);
    job_t jobs[10];
    memset(jobs, 0, sizeof jobs);
    jobs[0].gated = true;
    for (int i = 0; i < 10; i++)
        assert_int_equal(auth_pool_submit(p, work, done, &jobs[i]), 0);
    wait_started(1);
    /* Stop while the first job is stuck in its work: it finishes, the
     * rest may or may not start, and stop runs every callback. */
    stopper_t st = {p};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, stopper, &st), 0);
    open_gate();
    pthread_join(t, NULL);
    assert_int_equal(done_count, 10);
    assert_true(jobs[0].ran);
    assert_int_equal(jobs[0].rc, 0);
    for (int i = 0; i < 10; i++) {
        assert_true(jobs[i].done);
        assert_int_equal(jobs[i].rc, jobs[i].ran ? 0 : AUTH_E_CANCELLED);
    }
    assert_string_equal(auth_strerror(AUTH_E_BUSY), "too many jobs waiting for a worker");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_auth_pool_bounds),
        cmocka_unit_test(test_auth_pool_runs_off_thread),
        cmocka_unit_test(test_auth_pool_busy_until_callback),
        cmocka_unit_test(test_auth_pool_callback_submits),
        cmocka_unit_test(test_auth_pool_stop_runs_every_callback_once),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
