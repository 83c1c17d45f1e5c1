/* Allocation for our own bookkeeping: out of memory aborts with a message.
 * Sizes a peer controls are checked against limits before they get here. */
#ifndef TT_CORE_XMALLOC_H
#define TT_CORE_XMALLOC_H

#include <stddef.h>

void *xmalloc(size_t n);
void *xcalloc(size_t count, size_t n);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);

/* Hands the allocator's free memory back to the kernel (glibc's
 * malloc_trim: the free pages inside the heap too, not only its top, which
 * is all that M_TRIM_THRESHOLD covers, and in every thread's arena). What a
 * burst freed among blocks still in use stays resident otherwise, in RSS,
 * until the next burst. It walks the free lists: call it when the process
 * has gone quiet, not per operation. */
void xmalloc_release(void);

#endif
