/* Tests for src/auth/auth_token.c: the form of new tokens (prefix, exact
 * length, alphabet, canonical last character), their uniqueness, the
 * buffer bound, SHA-256 against known vectors, and what wellformed
 * refuses. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "auth/auth_token.h"

#define MANY 1000

static bool url_char(char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_';
}

static int cmp_tokens(const void *a, const void *b) {
    return memcmp(a, b, AUTH_TOKEN_LEN + 1);
}

static void test_auth_token_form_and_uniqueness(void **state) {
    assert_int_equal(AUTH_TOKEN_LEN, 47);
    static char toks[MANY][AUTH_TOKEN_LEN + 1];
    for (int i = 0; i < MANY; i++) {
        char *t = toks[i];
        assert_int_equal(auth_token_new(t, sizeof toks[i]), 0);
        assert_int_equal(strlen(t), AUTH_TOKEN_LEN);
        assert_memory_equal(t, "tt1.", 4);
        for (size_t j = 4; j < AUTH_TOKEN_LEN; j++)
            assert_true(url_char(t[j]));
        /* 256 bits in 43 characters: the last one carries 4 bits and two
         * zeros, so it is one of 16 characters. */
        assert_non_null(strchr("AEIMQUYcgkosw048", t[AUTH_TOKEN_LEN - 1]));
        assert_true(auth_token_wellformed(t, AUTH_TOKEN_LEN));
    }
    qsort(toks, MANY, sizeof toks[0], cmp_tokens);
    for (int i = 1; i < MANY; i++)
        assert_string_not_equal(toks[i - 1], toks[i]);
}

static void test_auth_token_buffer_bound(void **state) {
    char out[AUTH_TOKEN_LEN + 1];
    memset(out, 'x', sizeof out);
    assert_int_equal(auth_token_new(out, AUTH_TOKEN_LEN), AUTH_E_NOSPACE);
    assert_string_equal(out, "");
    assert_int_equal(auth_token_new(out, 0), AUTH_E_NOSPACE);
    assert_int_equal(auth_token_new(NULL, sizeof out), AUTH_E_INVALID);
    assert_int_equal(auth_token_new(out, sizeof out), 0);
    assert_int_equal(strlen(out), AUTH_TOKEN_LEN);
}

/* FIPS 180-2's "abc" and the empty string, and a token-shaped string
 * (checked against sha256sum). */
static void test_auth_token_hash_vectors(void **state) {
    static const uint8_t ABC[32] = {0xba, 0x78, 0x16, 0xbf, 0x8f, 0x01, 0xcf, 0xea,
                                    0x41, 0x41, 0x40, 0xde, 0x5d, 0xae, 0x22, 0x23,
                                    0xb0, 0x03, 0x61, 0xa3, 0x96, 0x17, 0x7a, 0x9c,
                                    0xb4, 0x10, 0xff, 0x61, 0xf2, 0x00, 0x15, 0xad};
    static const uint8_t EMPTY[32] = {0xe3, 0xb0, 0xc4, 0x42, 0x98, 0xfc, 0x1c, 0x14,
                                      0x9a, 0xfb, 0xf4, 0xc8, 0x99, 0x6f, 0xb9, 0x24,
                                      0x27, 0xae, 0x41, 0xe4, 0x64, 0x9b, 0x93, 0x4c,
                                      0xa4, 0x95, 0x99, 0x1b, 0x78, 0x52, 0xb8, 0x55};
    static const char TOKEN_TEXT[] = "tt1.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    static const uint8_t TOKEN[32] = {0x6c, 0x4f, 0xc3, 0x0c, 0xd1, 0xe5, 0xcd, 0x08,
                                      0xd3, 0xe1, 0x97, 0x1a, 0x9d, 0x27, 0xf8, 0xf6,
                                      0xa1, 0x61, 0xc3, 0xc6, 0x02, 0x83, 0x47, 0x32,
                                      0x6f, 0x59, 0x71, 0xa5, 0xbb, 0x3d, 0x65, 0x28};
    uint8_t out[AUTH_TOKEN_HASH_BYTES];
    auth_token_hash("abc", 3, out);
    assert_memory_equal(out, ABC, 32);
    auth_token_hash(NULL, 0, out);
    assert_memory_equal(out, EMPTY, 32);
    assert_true(auth_token_wellformed(TOKEN_TEXT, AUTH_TOKEN_LEN));
    auth_token_hash(TOKEN_TEXT, AUTH_TOKEN_LEN, out);
    assert_memory_equal(out, TOKEN, 32);
    /* The length counts, not a NUL. */
    auth_token_hash("abcd", 3, out);
    assert_memory_equal(out, ABC, 32);
}

static void test_auth_token_wellformed_refusals(void **state) {
    char t[AUTH_TOKEN_LEN + 2];
    assert_int_equal(auth_token_new(t, sizeof t), 0);
    assert_true(auth_token_wellformed(t, AUTH_TOKEN_LEN));
    /* Length: one short, one long. */
    assert_false(auth_token_wellformed(t, AUTH_TOKEN_LEN - 1));
    t[AUTH_TOKEN_LEN] = 'A';
    assert_false(auth_token_wellformed(t, AUTH_TOKEN_LEN + 1));
    t[AUTH_TOKEN_LEN] = '\0';
    assert_false(auth_token_wellformed(t, 0));
    assert_false(auth_token_wellformed(NULL, AUTH_TOKEN_LEN));
    /* Prefix. */
    char c = t[2];
    t[2] = '2';
    assert_false(auth_token_wellformed(t, AUTH_TOKEN_LEN));
    t[2] = c;
    /* Alphabet: the standard one's '+' and '/', padding, a NUL, a space. */
    const char bad[] = {'+', '/', '=', '\0', ' ', '.', (char)0xc3};
    for (size_t i = 0; i < sizeof bad; i++) {
        c = t[10];
        t[10] = bad[i];
        assert_false(auth_token_wellformed(t, AUTH_TOKEN_LEN));
        t[10] = c;
    }
    /* The last character with its unused bits set: decodes to the same
     * bytes, but is not the spelling auth_token_new writes. */
    c = t[AUTH_TOKEN_LEN - 1];
    t[AUTH_TOKEN_LEN - 1] = 'B';
    assert_false(auth_token_wellformed(t, AUTH_TOKEN_LEN));
    t[AUTH_TOKEN_LEN - 1] = 'A';
    assert_true(auth_token_wellformed(t, AUTH_TOKEN_LEN));
    t[AUTH_TOKEN_LEN - 1] = c;
    assert_true(auth_token_wellformed(t, AUTH_TOKEN_LEN));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_auth_token_form_and_uniqueness),
        cmocka_unit_test(test_auth_token_buffer_bound),
        cmocka_unit_test(test_auth_token_hash_vectors),
        cmocka_unit_test(test_auth_token_wellformed_refusals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
