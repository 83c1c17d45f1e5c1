/* lg_hist — see lg_hist.h. */
#include "lg_hist.h"

#include <math.h>
#include <string.h>

void lg_hist_init(lg_hist_t *h) {
    memset(h, 0, sizeof *h);
    h->min = UINT64_MAX;
}

uint32_t lg_hist_index(uint64_t v) {
    if (v < LG_HIST_SUB)
        return (uint32_t)v;
    unsigned e = 63u - (unsigned)__builtin_clzll(v); /* position of the leading one, >= 6 */
    if (e >= LG_HIST_TOP_BIT)
        return LG_HIST_BUCKETS - 1;
    unsigned shift = e - LG_HIST_SUB_BITS;
    uint32_t sub = (uint32_t)(v >> shift) & (LG_HIST_SUB - 1);
    return LG_HIST_SUB + shift * LG_HIST_SUB + sub;
}

uint64_t lg_hist_bucket_high(uint32_t idx) {
    if (idx < LG_HIST_SUB)
        return idx;
    uint32_t shift = (idx - LG_HIST_SUB) / LG_HIST_SUB;
    uint64_t sub = (idx - LG_HIST_SUB) % LG_HIST_SUB;
    uint64_t low = (LG_HIST_SUB + sub) << shift;
    return low + ((uint64_t)1 << shift) - 1;
}

void lg_hist_add(lg_hist_t *h, uint64_t v) {
    h->b[lg_hist_index(v)]++;
    h->count++;
    h->sum += (double)v;
    if (v < h->min)
        h->min = v;
    if (v > h->max)
        h->max = v;
}

void lg_hist_merge(lg_hist_t *into, const lg_hist_t *from) {
    for (uint32_t i = 0; i < LG_HIST_BUCKETS; i++)
        into->b[i] += from->b[i];
    into->count += from->count;
    into->sum += from->sum;
    if (from->count && from->min < into->min)
        into->min = from->min;
    if (from->count && from->max > into->max)
        into->max = from->max;
}

uint64_t lg_hist_quantile(const lg_hist_t *h, double q) {
    if (!h->count)
        return 0;
    uint64_t rank = (uint64_t)ceil(q * (double)h->count);
    if (rank < 1)
        rank = 1;
    uint64_t seen = 0;
    for (uint32_t i = 0; i < LG_HIST_BUCKETS; i++) {
        seen += h->b[i];
        if (seen >= rank) {
            uint64_t hi = lg_hist_bucket_high(i);
            return hi < h->max ? hi : h->max;
        }
    }
    return h->max;
}
