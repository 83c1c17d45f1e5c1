/* The Prometheus text writer (prom.h). */
#include "core/prom.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "core/xmalloc.h"

void tt_prom_init(tt_prom_t *p, size_t max) {
    p->cap = max < 4096 ? max : 4096;
    p->buf = xmalloc(p->cap + 1);
    p->buf[0] = '\0';
    p->len = 0;
    p->max = max;
    p->overflow = false;
}

void tt_prom_dispose(tt_prom_t *p) {
    free(p->buf);
    p->buf = NULL;
}

bool tt_prom_overflowed(const tt_prom_t *p) {
    return p->overflow;
}

static void add(tt_prom_t *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void add(tt_prom_t *p, const char *fmt, ...) {
    if (p->overflow)
        return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(p->buf + p->len, p->cap + 1 - p->len, fmt, ap);
        va_end(ap);
        if (n < 0) {
            p->overflow = true;
            return;
        }
        if (p->len + (size_t)n <= p->cap) {
            p->len += (size_t)n;
            return;
        }
        if (p->len + (size_t)n > p->max) {
            p->overflow = true;
            p->buf[p->len] = '\0';
            return;
        }
        size_t cap = p->cap * 2;
        if (cap < p->len + (size_t)n)
            cap = p->len + (size_t)n;
        if (cap > p->max)
            cap = p->max;
        p->buf = xrealloc(p->buf, cap + 1);
        p->cap = cap;
    }
}

void tt_prom_family(tt_prom_t *p, const char *name, const char *type, const char *help) {
    add(p, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static const char *open_brace(const char *labels) {
    return labels != NULL && labels[0] ? "{" : "";
}

static const char *close_brace(const char *labels) {
    return labels != NULL && labels[0] ? "}" : "";
}

void tt_prom_uint(tt_prom_t *p, const char *name, const char *labels, uint64_t v) {
    add(p, "%s%s%s%s %llu\n", name, open_brace(labels), labels ? labels : "", close_brace(labels),
        (unsigned long long)v);
}

void tt_prom_double(tt_prom_t *p, const char *name, const char *labels, double v) {
    add(p, "%s%s%s%s %.15g\n", name, open_brace(labels), labels ? labels : "", close_brace(labels),
        v);
}

void tt_prom_hist(tt_prom_t *p, const char *name, const char *labels, const tt_hist_t *h,
                  double scale) {
    const char *l = labels != NULL ? labels : "";
    const char *sep = l[0] ? "," : "";
    for (size_t i = 0; i <= h->n; i++) {
        uint64_t c = tt_hist_cumulative(h, i);
        if (i < h->n)
            add(p, "%s_bucket{%s%sle=\"%.6g\"} %llu\n", name, l, sep, (double)h->le[i] * scale,
                (unsigned long long)c);
        else
            add(p, "%s_bucket{%s%sle=\"+Inf\"} %llu\n", name, l, sep, (unsigned long long)c);
    }
    add(p, "%s_sum%s%s%s %.15g\n", name, open_brace(l), l, close_brace(l), (double)h->sum * scale);
    add(p, "%s_count%s%s%s %llu\n", name, open_brace(l), l, close_brace(l),
        (unsigned long long)h->count);
}

char *tt_prom_label_escape(const char *s, size_t len, char *out, size_t cap) {
    size_t o = 0;
    for (size_t i = 0; i < len && o + 3 < cap; i++) {
        char c = s[i];
        if (c == '\\' || c == '"') {
            out[o++] = '\\';
            out[o++] = c;
        } else if (c == '\n') {
            out[o++] = '\\';
            out[o++] = 'n';
        } else {
            out[o++] = c;
        }
    }
    if (cap > 0)
        out[o < cap ? o : cap - 1] = '\0';
    return out;
}
