/* lg_hist — a log-bucket latency histogram in the manner of HdrHistogram: 64 linear buckets
 * below 64, then 64 sub-buckets per power of two, so any recorded value is known to within
 * 1/64 (1.6 %) of itself from 1 ns to over an hour. Fixed size, no allocation, mergeable by
 * addition, so worker processes can ship theirs to the coordinator through a pipe. */
#ifndef LG_HIST_H
#define LG_HIST_H

#include <stdint.h>

#define LG_HIST_SUB_BITS 6
#define LG_HIST_SUB (1u << LG_HIST_SUB_BITS)
#define LG_HIST_TOP_BIT 42 /* values from 2^42 ns (about 73 minutes) up share the last bucket */
#define LG_HIST_BUCKETS (LG_HIST_SUB + (LG_HIST_TOP_BIT - LG_HIST_SUB_BITS) * LG_HIST_SUB)

typedef struct lg_hist_s {
    uint64_t count;
    uint64_t min, max; /* exact */
    double sum;
    uint64_t b[LG_HIST_BUCKETS];
} lg_hist_t;

void lg_hist_init(lg_hist_t *h);
void lg_hist_add(lg_hist_t *h, uint64_t v);
/* Adds every count of from into into. */
void lg_hist_merge(lg_hist_t *into, const lg_hist_t *from);
/* The value at quantile q (0..1): the highest value of the bucket holding the ceil(q*count)-th
 * smallest recording, capped at the exact maximum, so it never reports less than the truth
 * by more than a bucket's width and never more than was seen. 0 when empty. */
uint64_t lg_hist_quantile(const lg_hist_t *h, double q);

/* Bucket arithmetic, exposed for the self-test. */
uint32_t lg_hist_index(uint64_t v);
uint64_t lg_hist_bucket_high(uint32_t idx);

#endif
