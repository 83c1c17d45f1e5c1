/* A small fixed-bucket histogram for latencies: counts per bucket, the
 * number of observations and their sum, in whole units (microseconds for
 * every histogram tertulia keeps). Plain integers updated on the thread
 * that owns it (the loop): no atomics, no locks. Cumulative counts, the
 * form Prometheus exposes, are computed when the histogram is read
 * (core/prom.h writes one). */
#ifndef TT_CORE_HIST_H
#define TT_CORE_HIST_H

#include <stddef.h>
#include <stdint.h>

#define TT_HIST_MAX_BUCKETS 16

typedef struct tt_hist_s {
    const uint64_t *le; /* upper bounds, increasing (borrowed: static) */
    size_t n;           /* buckets, at most TT_HIST_MAX_BUCKETS; +Inf is implied */
    uint64_t counts[TT_HIST_MAX_BUCKETS + 1]; /* counts[n]: over the last bound */
    uint64_t count;
    uint64_t sum;
} tt_hist_t;

/* Latency bounds in microseconds, 50 us to 1 s (14 buckets). */
extern const uint64_t tt_hist_latency_us[];
extern const size_t tt_hist_latency_us_n;

/* An empty histogram over le[0..n) (borrowed; n <= TT_HIST_MAX_BUCKETS). */
void tt_hist_init(tt_hist_t *h, const uint64_t *le, size_t n);

/* Counts one observation v, in the first bucket whose bound is >= v. */
void tt_hist_observe(tt_hist_t *h, uint64_t v);

/* Observations <= le[i] (cumulative); i == n gives every observation. */
uint64_t tt_hist_cumulative(const tt_hist_t *h, size_t i);

/* The monotonic clock in microseconds (CLOCK_MONOTONIC), for durations. */
uint64_t tt_clock_us(void);

#endif
