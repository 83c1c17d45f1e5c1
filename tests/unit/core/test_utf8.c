/* Tests for src/core/utf8.c: a table of valid and invalid inputs, each also
 * fed split at every byte boundary and byte by byte; fail-fast positions; the
 * ASCII fast path with a bad byte at every offset; and exhaustive agreement
 * with a decoding reference over all one-, two- and three-byte inputs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "core/utf8.h"

typedef struct {
    const char *name;
    const char *bytes;
    size_t len; /* 0: strlen(bytes) */
    bool valid; /* complete and valid */
    int bad_at; /* invalid: index of the first byte that makes it invalid; -1 truncated */
} utf8_case_t;

#define OK(n, s)                                                                                   \
    { n, s, 0, true, 0 }
#define BAD(n, s, at)                                                                              \
    { n, s, 0, false, at }
#define TRUNC(n, s)                                                                                \
    { n, s, 0, false, -1 }

static const utf8_case_t cases[] = {
    OK("empty", ""),
    OK("ascii", "hello, world"),
    OK("two-byte", "\xC3\xA9t\xC3\xA9"),                   /* été */
    OK("three-byte", "\xE2\x82\xAC"),                      /* € */
    OK("four-byte", "\xF0\x9F\x98\x80"),                   /* 😀 */
    OK("mixed", "a\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80z"), /* aé€😀z */
    OK("U+007F", "\x7F"),
    OK("U+0080", "\xC2\x80"),
    OK("U+07FF", "\xDF\xBF"),
    OK("U+0800", "\xE0\xA0\x80"),
    OK("U+D7FF", "\xED\x9F\xBF"),
    OK("U+E000", "\xEE\x80\x80"),
    OK("U+FFFD", "\xEF\xBF\xBD"),
    OK("U+FFFF", "\xEF\xBF\xBF"),
    OK("U+10000", "\xF0\x90\x80\x80"),
    OK("U+FFFFF", "\xF3\xBF\xBF\xBF"),
    OK("U+100000", "\xF4\x80\x80\x80"),
    OK("U+10FFFF", "\xF4\x8F\xBF\xBF"),
    OK("long ascii then multibyte", "0123456789abcdefghijklmnop\xC3\xA9qrstuvwxyz0123456789"),
    BAD("lone continuation", "\x80", 0),
    BAD("continuation BF", "a\xBF", 1),
    BAD("overlong C0 80", "\xC0\x80", 0),
    BAD("overlong C1 BF", "\xC1\xBF", 0),
    BAD("overlong E0 80 80", "\xE0\x80\x80", 1),
    BAD("overlong E0 9F BF", "\xE0\x9F\xBF", 1),
    BAD("overlong F0 80 80 80", "\xF0\x80\x80\x80", 1),
    BAD("overlong F0 8F BF BF", "\xF0\x8F\xBF\xBF", 1),
    BAD("surrogate ED A0 80", "\xED\xA0\x80", 1),
    BAD("surrogate ED BF BF", "\xED\xBF\xBF", 1),
    BAD("above U+10FFFF F4 90 80 80", "\xF4\x90\x80\x80", 1),
    BAD("F5", "\xF5\x80\x80\x80", 0),
    BAD("F8", "\xF8\x88\x80\x80\x80", 0),
    BAD("FE", "\xFE", 0),
    BAD("FF", "a\xFF", 1),
    BAD("ascii where continuation expected",
        "\xC3"
        "a",
        1),
    BAD("lead where continuation expected", "\xE2\x82\xE2\x82\xAC", 2),
    BAD("fifth byte continuation", "\xF0\x9F\x98\x80\x80", 4),
    BAD("bad after long ascii", "0123456789abcdefghijklmnopqrstu\xFFvwxyz", 31),
    TRUNC("truncated two-byte", "\xC3"),
    TRUNC("truncated three-byte", "\xE2\x82"),
    TRUNC("truncated four-byte", "\xF0\x9F\x98"),
    TRUNC("truncated after ascii", "abc\xF4\x8F\xBF"),
};

static size_t case_len(const utf8_case_t *c) {
    return c->len ? c->len : strlen(c->bytes);
}

static void check_final(const utf8_case_t *c, tt_utf8_state_t s, const char *how) {
    if (c->valid && s != TT_UTF8_ACCEPT)
        fail_msg("%s (%s): expected valid, state %u", c->name, how, s);
    if (!c->valid && c->bad_at >= 0 && s != TT_UTF8_REJECT)
        fail_msg("%s (%s): expected reject, state %u", c->name, how, s);
    if (!c->valid && c->bad_at < 0 && (s == TT_UTF8_ACCEPT || s == TT_UTF8_REJECT))
        fail_msg("%s (%s): expected inside a sequence, state %u", c->name, how, s);
}

static void test_tt_utf8_feed_table_whole(void **state) {
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const utf8_case_t *c = &cases[i];
        size_t n = case_len(c);
        check_final(c, tt_utf8_feed(TT_UTF8_ACCEPT, (const uint8_t *)c->bytes, n), "whole");
        assert_int_equal(tt_utf8_is_valid((const uint8_t *)c->bytes, n), c->valid);
    }
}

static void test_tt_utf8_feed_table_split_everywhere(void **state) {
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const utf8_case_t *c = &cases[i];
        const uint8_t *b = (const uint8_t *)c->bytes;
        size_t n = case_len(c);
        for (size_t cut = 0; cut <= n; cut++) {
            tt_utf8_state_t s = tt_utf8_feed(TT_UTF8_ACCEPT, b, cut);
            s = tt_utf8_feed(s, b + cut, n - cut);
            check_final(c, s, "split");
        }
        /* Two cuts as well: a four-byte character in three pieces. */
        for (size_t a = 0; a <= n; a++)
            for (size_t z = a; z <= n; z++) {
                tt_utf8_state_t s = tt_utf8_feed(TT_UTF8_ACCEPT, b, a);
                s = tt_utf8_feed(s, b + a, z - a);
                s = tt_utf8_feed(s, b + z, n - z);
                check_final(c, s, "two cuts");
            }
    }
}

/* Byte by byte, the state turns REJECT exactly at bad_at, not before and not
 * later: fail fast. */
static void test_tt_utf8_feed_fails_at_first_bad_byte(void **state) {
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const utf8_case_t *c = &cases[i];
        const uint8_t *b = (const uint8_t *)c->bytes;
        size_t n = case_len(c);
        tt_utf8_state_t s = TT_UTF8_ACCEPT;
        for (size_t k = 0; k < n; k++) {
            s = tt_utf8_feed(s, b + k, 1);
            bool should_reject = !c->valid && c->bad_at >= 0 && (int)k >= c->bad_at;
            if ((s == TT_UTF8_REJECT) != should_reject)
                fail_msg("%s: byte %zu: state %u", c->name, k, s);
        }
        check_final(c, s, "byte by byte");
    }
}

static void test_tt_utf8_feed_reject_is_sticky(void **state) {
    (void)state;
    const uint8_t ascii[] = "plain ascii";
    assert_int_equal(tt_utf8_feed(TT_UTF8_REJECT, ascii, sizeof(ascii) - 1), TT_UTF8_REJECT);
    assert_int_equal(tt_utf8_feed(TT_UTF8_REJECT, ascii, 0), TT_UTF8_REJECT);
    tt_utf8_state_t s = tt_utf8_feed(TT_UTF8_ACCEPT, (const uint8_t *)"\xC0", 1);
    assert_int_equal(s, TT_UTF8_REJECT);
    assert_int_equal(tt_utf8_feed(s, (const uint8_t *)"\x80", 1), TT_UTF8_REJECT);
    /* Feeding nothing keeps a mid-sequence state. */
    s = tt_utf8_feed(TT_UTF8_ACCEPT, (const uint8_t *)"\xE2", 1);
    assert_int_equal(tt_utf8_feed(s, NULL, 0), s);
}

/* The fast path reads eight bytes at a time; put one bad byte (and, in a
 * second pass, one valid two-byte character) at every offset of ASCII runs of
 * every length, so every alignment of the word loop meets it. */
static void test_tt_utf8_feed_ascii_fast_path_every_offset(void **state) {
    (void)state;
    uint8_t buf[80];
    for (size_t n = 1; n <= 64; n++) {
        for (size_t at = 0; at < n; at++) {
            memset(buf, 'x', sizeof(buf));
            buf[at] = 0xFF;
            assert_false(tt_utf8_is_valid(buf, n));
            memset(buf, 'x', sizeof(buf));
            buf[at] = 0x80; /* a stray continuation */
            assert_false(tt_utf8_is_valid(buf, n));
            if (at + 1 < n) {
                buf[at] = 0xC3;
                buf[at + 1] = 0xA9;
                assert_true(tt_utf8_is_valid(buf, n));
            }
        }
        memset(buf, 'x', sizeof(buf));
        assert_true(tt_utf8_is_valid(buf, n));
        buf[n - 1] = 0xE2; /* truncated at the very end */
        assert_false(tt_utf8_is_valid(buf, n));
    }
}

/* The reference: decodes one sequence the textbook way (RFC 3629 section 4)
 * and says how many bytes of p[0..n) it takes: > 0 valid, 0 truncated but a
 * valid prefix, -1 invalid. A truncated sequence fixes the high bits of the
 * code point; it is a valid prefix when the range of code points its
 * completions could reach holds a valid one. */
static bool ref_cp_ok(uint32_t cp, uint32_t min) {
    return cp >= min && cp <= 0x10FFFF && !(cp >= 0xD800 && cp <= 0xDFFF);
}

static int ref_decode(const uint8_t *p, size_t n) {
    uint8_t b = p[0];
    size_t need;
    uint32_t cp, min;
    if (b < 0x80)
        return 1;
    if ((b & 0xE0) == 0xC0) {
        need = 1, cp = b & 0x1F, min = 0x80;
    } else if ((b & 0xF0) == 0xE0) {
        need = 2, cp = b & 0x0F, min = 0x800;
    } else if ((b & 0xF8) == 0xF0) {
        need = 3, cp = b & 0x07, min = 0x10000;
    } else {
        return -1;
    }
    size_t k = 1;
    for (; k <= need && k < n; k++) {
        if ((p[k] & 0xC0) != 0x80)
            return -1;
        cp = (cp << 6) | (p[k] & 0x3F);
    }
    if (k <= need) {
        unsigned missing = (unsigned)(need + 1 - k) * 6;
        uint32_t lo = cp << missing, hi = lo | ((1u << missing) - 1);
        for (uint32_t c = lo; c <= hi; c++)
            if (ref_cp_ok(c, min))
                return 0;
        return -1;
    }
    return ref_cp_ok(cp, min) ? (int)need + 1 : -1;
}

/* 1: valid and complete, 0: valid prefix, -1: invalid. */
static int ref_validate(const uint8_t *p, size_t n) {
    size_t i = 0;
    while (i < n) {
        int r = ref_decode(p + i, n - i);
        if (r <= 0)
            return r;
        i += (size_t)r;
    }
    return 1;
}

static void agree(const uint8_t *p, size_t n) {
    int want = ref_validate(p, n);
    tt_utf8_state_t s = tt_utf8_feed(TT_UTF8_ACCEPT, p, n);
    int got = s == TT_UTF8_ACCEPT ? 1 : s == TT_UTF8_REJECT ? -1 : 0;
    if (got != want)
        fail_msg("disagree on %zu bytes %02X %02X %02X %02X: ref %d, got %d (state %u)", n, p[0],
                 n > 1 ? p[1] : 0, n > 2 ? p[2] : 0, n > 3 ? p[3] : 0, want, got, s);
}

static void test_tt_utf8_feed_agrees_with_reference_exhaustively(void **state) {
    (void)state;
    uint8_t b[4];
    for (unsigned x = 0; x < 256; x++) {
        b[0] = (uint8_t)x;
        agree(b, 1);
        for (unsigned y = 0; y < 256; y++) {
            b[1] = (uint8_t)y;
            agree(b, 2);
            /* Three bytes: all of them for leads that start a sequence of
             * three or four; the others are decided by the first two. */
            if (x >= 0xE0)
                for (unsigned z = 0; z < 256; z++) {
                    b[2] = (uint8_t)z;
                    agree(b, 3);
                }
        }
    }
    /* Four bytes: every lead from F0, the interesting second bytes, and the
     * edges of the continuation range for the last two. */
    static const uint8_t edges[] = {0x00, 0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF, 0xC0, 0xFF};
    for (unsigned x = 0xF0; x < 256; x++)
        for (unsigned y = 0; y < 256; y++)
            for (size_t z = 0; z < sizeof(edges); z++)
                for (size_t w = 0; w < sizeof(edges); w++) {
                    b[0] = (uint8_t)x, b[1] = (uint8_t)y, b[2] = edges[z], b[3] = edges[w];
                    agree(b, 4);
                }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tt_utf8_feed_table_whole),
        cmocka_unit_test(test_tt_utf8_feed_table_split_everywhere),
        cmocka_unit_test(test_tt_utf8_feed_fails_at_first_bad_byte),
        cmocka_unit_test(test_tt_utf8_feed_reject_is_sticky),
        cmocka_unit_test(test_tt_utf8_feed_ascii_fast_path_every_offset),
        cmocka_unit_test(test_tt_utf8_feed_agrees_with_reference_exhaustively),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
