/* Tests for src/auth/auth.c and the base64url of src/auth/auth_b64.c: the
 * error codes are distinct, negative, clear of libuv's and the store's, and
 * named; base64url gives RFC 4648's vectors (in the url alphabet) and
 * accepts only the canonical spelling. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "auth/auth.h"
#include "auth/auth_int.h"

static const int CODES[] = {
#define AUTH_XX(name, value, text) AUTH_E_##name,
    AUTH_ERRNO_MAP(AUTH_XX)
#undef AUTH_XX
};
#define NCODES (sizeof CODES / sizeof CODES[0])

static void test_auth_codes_distinct_and_named(void **state) {
    for (size_t i = 0; i < NCODES; i++) {
        /* libuv's errors are above -4096, the store's -7001..-7099. */
        assert_true(CODES[i] <= -7101 && CODES[i] >= -7199);
        assert_string_not_equal(auth_strerror(CODES[i]), "unknown auth error");
        for (size_t j = 0; j < i; j++) {
            assert_int_not_equal(CODES[i], CODES[j]);
            assert_string_not_equal(auth_strerror(CODES[i]), auth_strerror(CODES[j]));
        }
    }
    assert_string_equal(auth_strerror(0), "unknown auth error");
    assert_string_equal(auth_strerror(-7001), "unknown auth error");
    assert_string_equal(auth_strerror(AUTH_E_MISMATCH), "wrong password");
}

/* RFC 4648 section 10, whose vectors use no character outside the shared
 * alphabet, with the padding removed; then bytes that give '-' and '_'. */
static const struct {
    const char *raw;
    size_t rawlen;
    const char *b64;
} VECTORS[] = {
    {"", 0, ""},
    {"f", 1, "Zg"},
    {"fo", 2, "Zm8"},
    {"foo", 3, "Zm9v"},
    {"foob", 4, "Zm9vYg"},
    {"fooba", 5, "Zm9vYmE"},
    {"foobar", 6, "Zm9vYmFy"},
    {"\xfb\xff\xbf", 3, "-_-_"},
    {"\x00\x10\x83\x10\x51\x87", 6, "ABCDEFGH"},
};

static void test_auth_b64url_vectors(void **state) {
    for (size_t i = 0; i < sizeof VECTORS / sizeof VECTORS[0]; i++) {
        char enc[16] = {0};
        size_t n = strlen(VECTORS[i].b64);
        assert_int_equal(AUTH_B64URL_LEN(VECTORS[i].rawlen), n);
        auth__b64url_encode((const uint8_t *)VECTORS[i].raw, VECTORS[i].rawlen, enc);
        assert_string_equal(enc, VECTORS[i].b64);
        uint8_t dec[16];
        assert_int_equal(auth__b64url_decoded_len(n), VECTORS[i].rawlen);
        assert_int_equal(auth__b64url_decode(VECTORS[i].b64, n, dec, sizeof dec),
                         (long)VECTORS[i].rawlen);
        assert_memory_equal(dec, VECTORS[i].raw, VECTORS[i].rawlen);
        /* One byte less room than needed is refused, not overrun. */
        if (VECTORS[i].rawlen > 0)
            assert_int_equal(auth__b64url_decode(VECTORS[i].b64, n, dec, VECTORS[i].rawlen - 1),
                             -1);
    }
}

static void test_auth_b64url_refuses_the_rest(void **state) {
    uint8_t dec[16];
    const char *bad[] = {
        "Zm9v=",  /* padding */
        "Zg==",   /* padding */
        "Zm9+",   /* standard alphabet */
        "Zm9/",   /* standard alphabet */
        "Zm 9v",  /* white space */
        "Zm9vY",  /* 4k+1 characters: no encoding */
        "Zh",     /* "f" with a low bit set: not canonical */
        "Zm9",    /* "fo" with low bits set */
        "Zm\x80v" /* not ASCII */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(auth__b64url_decode(bad[i], strlen(bad[i]), dec, sizeof dec), -1);
    /* A NUL inside is a character like another, refused. */
    assert_int_equal(auth__b64url_decode("Zm\0v", 4, dec, sizeof dec), -1);
}

/* Every byte value through encode and decode. */
static void test_auth_b64url_round_trip(void **state) {
    uint8_t raw[256], dec[256];
    char enc[AUTH_B64URL_LEN(256)];
    for (int i = 0; i < 256; i++)
        raw[i] = (uint8_t)(255 - i);
    for (size_t n = 0; n <= sizeof raw; n += 1 + n / 8) {
        auth__b64url_encode(raw, n, enc);
        assert_int_equal(auth__b64url_decode(enc, AUTH_B64URL_LEN(n), dec, sizeof dec), (long)n);
        assert_memory_equal(dec, raw, n);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_auth_codes_distinct_and_named),
        cmocka_unit_test(test_auth_b64url_vectors),
        cmocka_unit_test(test_auth_b64url_refuses_the_rest),
        cmocka_unit_test(test_auth_b64url_round_trip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
