/* Fixed-bucket histograms (hist.h). */
#include "core/hist.h"

#include <assert.h>
#include <string.h>
#include <time.h>

const uint64_t tt_hist_latency_us[] = {50,    100,   250,   500,    1000,   2500,   5000,
                                       10000, 25000, 50000, 100000, 250000, 500000, 1000000};
const size_t tt_hist_latency_us_n = sizeof(tt_hist_latency_us) / sizeof(tt_hist_latency_us[0]);

void tt_hist_init(tt_hist_t *h, const uint64_t *le, size_t n) {
    assert(n <= TT_HIST_MAX_BUCKETS);
    memset(h, 0, sizeof(*h));
    h->le = le;
    h->n = n;
}

void tt_hist_observe(tt_hist_t *h, uint64_t v) {
    /* A linear scan: at most 16 comparisons, and the small values that
     * are the common case end it early. */
    size_t i = 0;
    while (i < h->n && v > h->le[i])
        i++;
    h->counts[i]++;
    h->count++;
    h->sum += v;
}

uint64_t tt_hist_cumulative(const tt_hist_t *h, size_t i) {
    uint64_t c = 0;
    for (size_t k = 0; k <= i && k <= h->n; k++)
        c += h->counts[k];
    return c;
}

uint64_t tt_clock_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}
