/* The fuzzers' oracle: a failed check prints where and aborts, which
 * libFuzzer reports as a crash and saves the input for. Kept in every build
 * type (the harnesses are compiled with -UNDEBUG). */
#ifndef TT_FUZZ_CHECK_H
#define TT_FUZZ_CHECK_H

#include <stdio.h>
#include <stdlib.h>

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);               \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

#endif
