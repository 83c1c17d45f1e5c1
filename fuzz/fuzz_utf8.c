/* Differential fuzzer for src/core/utf8.c: the input is fed to tt_utf8_feed
 * in pieces chosen by its first byte, and after every piece the state must
 * agree with a slow reference written here from RFC 3629's definition
 * (decode, then check range, overlongs and surrogates). Any disagreement,
 * including a REJECT that comes later or earlier than the first byte that
 * makes the input invalid, aborts. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "core/utf8.h"

/* The reference. A code point is valid if it has the shortest encoding for
 * its value, is at most U+10FFFF and is not a surrogate. */
static bool cp_valid(uint32_t cp, size_t len) {
    static const uint32_t min[5] = {0, 0, 0x80, 0x800, 0x10000};
    return cp >= min[len] && cp <= 0x10FFFF && !(cp >= 0xD800 && cp <= 0xDFFF);
}

/* 1: p[0..n) is complete valid UTF-8; 0: it is a valid prefix (ends inside a
 * sequence that some continuation bytes would complete); -1: invalid. */
static int ref_check(const uint8_t *p, size_t n) {
    size_t i = 0;
    while (i < n) {
        uint8_t b = p[i];
        size_t len;
        uint32_t cp;
        if (b <= 0x7F) {
            i++;
            continue;
        } else if (b >= 0xC0 && b <= 0xDF) {
            len = 2, cp = b & 0x1Fu;
        } else if (b >= 0xE0 && b <= 0xEF) {
            len = 3, cp = b & 0x0Fu;
        } else if (b >= 0xF0 && b <= 0xF7) {
            len = 4, cp = b & 0x07u;
        } else {
            return -1; /* a continuation byte, or F8..FF */
        }
        size_t got = 1;
        while (got < len && i + got < n) {
            if ((p[i + got] & 0xC0) != 0x80)
                return -1;
            cp = (cp << 6) | (p[i + got] & 0x3Fu);
            got++;
        }
        if (got < len) {
            /* Truncated: the missing bits can make any value in [lo, hi];
             * a valid prefix if one of those is valid. Valid values are
             * [min, D7FF] and [E000, 10FFFF]: check each end of the range
             * and the two edges of the surrogate gap that fall inside. */
            unsigned bits = (unsigned)(len - got) * 6;
            uint32_t lo = cp << bits, hi = lo | ((1u << bits) - 1);
            const uint32_t probes[] = {lo, hi, 0xD7FF, 0xE000, 0x80, 0x800, 0x10000, 0x10FFFF};
            for (size_t k = 0; k < sizeof(probes) / sizeof(probes[0]); k++)
                if (probes[k] >= lo && probes[k] <= hi && cp_valid(probes[k], len))
                    return 0;
            return -1;
        }
        if (!cp_valid(cp, len))
            return -1;
        i += len;
    }
    return 1;
}

/* The index of the first byte after which the input can no longer be valid,
 * or n if there is none. Prefix validity is monotone, so bisect. */
static size_t ref_first_bad(const uint8_t *p, size_t n) {
    if (ref_check(p, n) >= 0)
        return n;
    size_t lo = 0, hi = n; /* prefix of lo bytes ok, of hi bytes not */
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (ref_check(p, mid) >= 0)
            lo = mid;
        else
            hi = mid;
    }
    return hi - 1;
}

static int classify(tt_utf8_state_t s) {
    return s == TT_UTF8_ACCEPT ? 1 : s == TT_UTF8_REJECT ? -1 : 0;
}

static void disagree(const char *what, size_t at, int want, int got) {
    fprintf(stderr, "fuzz_utf8: %s at %zu: reference %d, tt_utf8_feed %d\n", what, at, want, got);
    abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1)
        return 0;
    uint32_t seed = data[0] | 1u;
    const uint8_t *p = data + 1;
    /* The reference is quadratic over the pieces; 1 KiB is plenty to reach
     * every alignment of the eight-byte fast path. */
    size_t n = size - 1 < 1024 ? size - 1 : 1024;
    size_t bad = ref_first_bad(p, n);

    /* Whole, then in pieces of 1..(seed-chosen max) bytes. */
    int whole = classify(tt_utf8_feed(TT_UTF8_ACCEPT, p, n));
    if (whole != ref_check(p, n))
        disagree("whole input", n, ref_check(p, n), whole);
    if (tt_utf8_is_valid(p, n) != (whole == 1))
        disagree("tt_utf8_is_valid", n, whole, tt_utf8_is_valid(p, n));

    size_t maxpiece = (data[0] & 0x0F) + 1;
    tt_utf8_state_t s = TT_UTF8_ACCEPT;
    size_t done = 0;
    while (done < n) {
        seed = seed * 1103515245u + 12345u;
        size_t piece = 1 + (seed >> 16) % maxpiece;
        if (piece > n - done)
            piece = n - done;
        s = tt_utf8_feed(s, p + done, piece);
        done += piece;
        /* Fail fast: REJECT exactly when the first bad byte has been fed. */
        int want = bad < done ? -1 : ref_check(p, done);
        if (classify(s) != want)
            disagree("after a piece", done, want, classify(s));
    }
    return 0;
}
