/* lg_text — see lg_text.h. */
#include "lg_text.h"

#include <string.h>

size_t lg_u64_dec(char *out, uint64_t v) {
    char tmp[20];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    for (size_t i = 0; i < n; i++)
        out[i] = tmp[n - 1 - i];
    return n;
}

bool lg_dec_parse(const char **p, const char *end, uint64_t *v) {
    const char *s = *p;
    if (s >= end || *s < '0' || *s > '9')
        return false;
    if (*s == '0' && s + 1 < end && s[1] >= '0' && s[1] <= '9')
        return false;
    uint64_t x = 0;
    int digits = 0;
    while (s < end && *s >= '0' && *s <= '9') {
        if (++digits > 19)
            return false;
        x = x * 10 + (uint64_t)(*s++ - '0');
    }
    *p = s;
    *v = x;
    return true;
}

/* The pad of message seq is the alphabet from letter seq % 26 on, repeated: one period of it
 * is the 26 bytes of ALPHA2 from that letter, so it is copied and compared 26 at a time. */
static const char ALPHA2[] = "abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyz";

static void pad_fill(char *o, size_t len, uint64_t seq) {
    const char *period = ALPHA2 + seq % 26;
    for (; len >= 26; o += 26, len -= 26)
        memcpy(o, period, 26);
    memcpy(o, period, len);
}

static bool pad_is(const char *p, size_t len, uint64_t seq) {
    const char *period = ALPHA2 + seq % 26;
    for (; len >= 26; p += 26, len -= 26)
        if (memcmp(p, period, 26) != 0)
            return false;
    return memcmp(p, period, len) == 0;
}

size_t lg_text_build(char *out, uint32_t gid, uint64_t seq, uint64_t t, uint32_t size) {
    size_t n = 0;
    out[n++] = 'm';
    n += lg_u64_dec(out + n, gid);
    out[n++] = '-';
    n += lg_u64_dec(out + n, seq);
    out[n++] = '-';
    n += lg_u64_dec(out + n, t);
    out[n++] = '-';
    size_t total = size > n ? size : n + 1;
    pad_fill(out + n, total - n, seq);
    return total;
}

bool lg_text_check(const char *p, size_t n, uint32_t size, uint64_t *gid, uint64_t *seq,
                   uint64_t *t) {
    const char *s = p + 1, *end = p + n;
    if (n < 2 || *p != 'm' || !lg_dec_parse(&s, end, gid) || s >= end || *s++ != '-' ||
        !lg_dec_parse(&s, end, seq) || s >= end || *s++ != '-' || !lg_dec_parse(&s, end, t) ||
        s >= end || *s++ != '-')
        return false;
    size_t head = (size_t)(s - p);
    if (n != (size > head ? size : head + 1))
        return false;
    return pad_is(s, (size_t)(end - s), *seq);
}
