/* The Prometheus text exposition format (version 0.0.4), written into a
 * growing buffer with a cap: families (# HELP and # TYPE), samples with
 * optional labels, and histograms (core/hist.h) as _bucket, _sum and
 * _count. Past the cap nothing more is written and tt_prom_overflowed
 * says so; the caller answers with an error instead of a cut-off text.
 * Label strings are passed preformatted (kind="room"); values put in them
 * must be escaped by the caller (tt_prom_label_escape). */
#ifndef TT_CORE_PROM_H
#define TT_CORE_PROM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/hist.h"

typedef struct tt_prom_s {
    char *buf; /* owned; NUL-terminated while not overflowed */
    size_t len, cap, max;
    bool overflow;
} tt_prom_t;

#define TT_PROM_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

/* An empty text of at most max bytes. */
void tt_prom_init(tt_prom_t *p, size_t max);
void tt_prom_dispose(tt_prom_t *p);
bool tt_prom_overflowed(const tt_prom_t *p);

/* # HELP name help, then # TYPE name type ("counter", "gauge",
 * "histogram"). Every sample of the family follows it. */
void tt_prom_family(tt_prom_t *p, const char *name, const char *type, const char *help);

/* name{labels} value; labels NULL or "" for none. */
void tt_prom_uint(tt_prom_t *p, const char *name, const char *labels, uint64_t v);
void tt_prom_double(tt_prom_t *p, const char *name, const char *labels, double v);

/* A histogram's samples: name_bucket{labels,le="..."} for every bound and
 * +Inf, name_sum and name_count. Bounds and the sum are multiplied by
 * scale (1e-6 turns microseconds into seconds). */
void tt_prom_hist(tt_prom_t *p, const char *name, const char *labels, const tt_hist_t *h,
                  double scale);

/* Writes s[0..len) escaped for a label value (\\, \" and \n) into out,
 * NUL-terminated, cut at cap. Returns out. */
char *tt_prom_label_escape(const char *s, size_t len, char *out, size_t cap);

#endif
