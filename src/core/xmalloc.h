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

#endif
