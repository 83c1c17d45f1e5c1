/* Worker threads take no process signals: a thread created while this mask
 * is set inherits it, so SIGINT, SIGTERM, SIGHUP and libuv's handlers are
 * taken by the loop and never interrupt a worker's system calls. Faults
 * (SIGSEGV, SIGBUS, SIGFPE, SIGILL) still reach the thread that caused them. */
#ifndef TT_CORE_SIGMASK_H
#define TT_CORE_SIGMASK_H

#include <pthread.h>
#include <signal.h>

/* Blocks every other signal on the calling thread; *old receives the mask
 * to restore with pthread_sigmask(SIG_SETMASK, old, NULL) once the workers
 * exist. */
static inline void tt_sigmask_block_for_workers(sigset_t *old) {
    sigset_t all;
    sigfillset(&all);
    sigdelset(&all, SIGSEGV);
    sigdelset(&all, SIGBUS);
    sigdelset(&all, SIGFPE);
    sigdelset(&all, SIGILL);
    pthread_sigmask(SIG_SETMASK, &all, old);
}

#endif
