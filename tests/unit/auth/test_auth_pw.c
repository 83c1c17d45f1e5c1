/* Tests for src/auth/auth_pw.c. Each Argon2id hash or verify costs about
 * 100 ms, so the suite makes three hashes and five verifies in all; every
 * refusal that needs no hashing is checked freely. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "auth/auth_pw.h"

/* "$argon2id$v=19$m=65536,t=2,p=1$" + 22 salt + "$" + 43 hash characters. */
#define ENCODED_LEN 97

static const char PW8[] = "hunter22";
static char stored[AUTH_PW_ENCODED_MAX]; /* PW8, hashed once for the suite */
static double hash_ms;

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int setup(void **state) {
    double t0 = now_ms();
    int rc = auth_pw_hash(PW8, 8, stored, sizeof stored);
    hash_ms = now_ms() - t0;
    printf("one hash: %.0f ms\n", hash_ms);
    return rc;
}

static void test_auth_pw_encoded_carries_the_parameters(void **state) {
    char prefix[64];
    snprintf(prefix, sizeof prefix, "$argon2id$v=19$m=%d,t=%d,p=%d$", AUTH_PW_M_COST_KIB,
             AUTH_PW_T_COST, AUTH_PW_PARALLELISM);
    assert_string_equal(prefix, "$argon2id$v=19$m=65536,t=2,p=1$");
    assert_int_equal(strncmp(stored, prefix, strlen(prefix)), 0);
    assert_int_equal(strlen(stored), ENCODED_LEN);
    assert_true(ENCODED_LEN < AUTH_PW_ENCODED_MAX);
    /* The salt and the hash: 16 and 32 bytes in unpadded base64. */
    const char *salt = stored + strlen(prefix), *dollar = strchr(salt, '$');
    assert_non_null(dollar);
    assert_int_equal(dollar - salt, 22);
    assert_int_equal(strlen(dollar + 1), 43);
    assert_true(auth_pw_params_current(stored));
}

static void test_auth_pw_round_trip_and_wrong_password(void **state) {
    assert_int_equal(auth_pw_verify(stored, PW8, 8), 0);
    assert_int_equal(auth_pw_verify(stored, "hunter23", 8), AUTH_E_MISMATCH);
}

/* 7 and 1025 bytes are refused before any work; 8 (the suite's hash) and
 * 1024 are hashed. The same password hashed again gets another salt. The
 * 1024-byte hash goes into a buffer of exactly its length plus the NUL. */
static void test_auth_pw_length_bounds(void **state) {
    static char big[AUTH_PW_MAX + 1];
    memset(big, 'p', sizeof big);
    char out[AUTH_PW_ENCODED_MAX];
    strcpy(out, "x");
    assert_int_equal(auth_pw_hash(big, AUTH_PW_MIN - 1, out, sizeof out), AUTH_E_PASSWORD);
    assert_string_equal(out, "");
    assert_int_equal(auth_pw_hash(big, AUTH_PW_MAX + 1, out, sizeof out), AUTH_E_PASSWORD);
    assert_int_equal(auth_pw_hash(big, 0, out, sizeof out), AUTH_E_PASSWORD);
    assert_int_equal(auth_pw_verify(stored, big, AUTH_PW_MAX + 1), AUTH_E_PASSWORD);

    /* One byte short of room: refused before hashing, nothing written. */
    assert_int_equal(auth_pw_hash(big, AUTH_PW_MAX, out, ENCODED_LEN), AUTH_E_NOSPACE);
    assert_string_equal(out, "");
    assert_int_equal(auth_pw_hash(big, AUTH_PW_MAX, out, ENCODED_LEN + 1), 0);
    assert_int_equal(strlen(out), ENCODED_LEN);
    assert_int_equal(auth_pw_verify(out, big, AUTH_PW_MAX), 0);

    char again[AUTH_PW_ENCODED_MAX];
    assert_int_equal(auth_pw_hash(PW8, 8, again, sizeof again), 0);
    assert_string_not_equal(again, stored);
    /* Same parameters, so the first 31 characters agree; the salts do not. */
    assert_memory_equal(again, stored, 31);
    assert_memory_not_equal(again + 31, stored + 31, 22);
}

/* The dummy never matches, not even the password that would match a real
 * hash, and costs what a verify costs (a dummy that skipped the work would
 * take microseconds; the bound is loose for sanitizer builds and a busy
 * machine). */
static void test_auth_pw_verify_dummy(void **state) {
    double t0 = now_ms();
    assert_int_equal(auth_pw_verify_dummy(PW8, 8), AUTH_E_MISMATCH);
    double dummy_ms = now_ms() - t0;
    printf("dummy verify: %.0f ms (hash %.0f ms)\n", dummy_ms, hash_ms);
    assert_true(dummy_ms > hash_ms / 4);
    /* Refusals stay refusals. */
    assert_int_equal(auth_pw_verify_dummy(NULL, 8), AUTH_E_MISMATCH);
    assert_int_equal(auth_pw_verify_dummy(PW8, AUTH_PW_MAX + 1), AUTH_E_MISMATCH);
}

/* A copy of the suite's hash with one piece replaced. */
static void replace(char *out, size_t cap, const char *from, const char *to) {
    const char *at = strstr(stored, from);
    assert_non_null(at);
    snprintf(out, cap, "%.*s%s%s", (int)(at - stored), stored, to, at + strlen(from));
}

static void test_auth_pw_params_current(void **state) {
    char s[256];
    /* Each piece of today's parameters changed on its own. */
    static const char *const CHANGES[][2] = {
        {"m=65536", "m=65537"}, {"m=65536", "m=32768"}, {"t=2", "t=3"},
        {"p=1", "p=2"},         {"v=19", "v=16"},       {"$argon2id$", "$argon2i$"},
    };
    assert_true(auth_pw_params_current(stored));
    for (size_t i = 0; i < sizeof CHANGES / sizeof CHANGES[0]; i++) {
        replace(s, sizeof s, CHANGES[i][0], CHANGES[i][1]);
        assert_false(auth_pw_params_current(s));
    }
    /* A shorter salt (12 bytes, 16 characters): another shape of hash. */
    const char *salt = strchr(stored + 30, '$');
    snprintf(s, sizeof s, "%.*s%s", (int)(salt + 17 - stored), stored, salt + 23);
    assert_false(auth_pw_params_current(s));
    assert_false(auth_pw_params_current(""));
    assert_false(auth_pw_params_current(NULL));
    assert_false(auth_pw_params_current("$argon2id$v=19$m=65536,t=2,p=1$"));
}

/* What verify refuses without hashing: not an Argon2id string, parameters
 * past the bounds, a string past AUTH_PW_ENCODED_MAX. */
static void test_auth_pw_verify_malformed(void **state) {
    char s[512];
    const char *bad[] = {
        "",
        "garbage",
        "$argon2i$v=19$m=65536,t=2,p=1$c2FsdHNhbHRzYWx0c2FsdA$aGFzaA",
        "$argon2id$v=19$m=65536,t=2$c2FsdHNhbHRzYWx0c2FsdA$aGFzaA",
        "$argon2id$v=19$m=065536,t=2,p=1$c2FsdHNhbHRzYWx0c2FsdA$aGFzaA",
        "$argon2id$v=19$m=,t=2,p=1$c2FsdHNhbHRzYWx0c2FsdA$aGFzaA",
        "$argon2id$v=19$m=4294967296,t=2,p=1$c2FsdHNhbHRzYWx0c2FsdA$aGFzaA",
        "$argon2id$v=19$m=65536,t=2,p=1$c2FsdHNhbHRzYWx0c2FsdA==$aGFzaA",
        "$argon2id$v=19$m=65536,t=2,p=1$c2Fsd-NhbHRzYWx0c2FsdA$aGFzaA",
        "$argon2id$v=19$m=65536,t=2,p=1$c2FsdHNhbHRzYWx0c2FsdA$",
        "$argon2id$v=19$m=65536,t=2,p=1$c2FsdHNhbHRzYWx0c2FsdA$aGFzaA$",
        "$argon2id$v=19$m=65536,t=2,p=1$$aGFzaA",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(auth_pw_verify(bad[i], PW8, 8), AUTH_E_MALFORMED);
    /* Well-formed, but a login would cost gigabytes or minutes. */
    replace(s, sizeof s, "m=65536", "m=4194304");
    assert_int_equal(auth_pw_verify(s, PW8, 8), AUTH_E_PARAMS);
    replace(s, sizeof s, "t=2", "t=4000");
    assert_int_equal(auth_pw_verify(s, PW8, 8), AUTH_E_PARAMS);
    replace(s, sizeof s, "p=1", "p=64");
    assert_int_equal(auth_pw_verify(s, PW8, 8), AUTH_E_PARAMS);
    /* A long hash segment: past the bound, refused unread. */
    snprintf(s, sizeof s, "%s%0*d", stored, AUTH_PW_ENCODED_MAX - ENCODED_LEN, 0);
    memset(s + ENCODED_LEN, 'A', strlen(s) - ENCODED_LEN);
    assert_int_equal(strlen(s), AUTH_PW_ENCODED_MAX);
    assert_int_equal(auth_pw_verify(s, PW8, 8), AUTH_E_MALFORMED);
    assert_int_equal(auth_pw_verify(NULL, PW8, 8), AUTH_E_INVALID);
    assert_int_equal(auth_pw_verify(stored, NULL, 8), AUTH_E_INVALID);
    assert_int_equal(auth_pw_hash(NULL, 8, s, sizeof s), AUTH_E_INVALID);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_auth_pw_encoded_carries_the_parameters),
        cmocka_unit_test(test_auth_pw_round_trip_and_wrong_password),
        cmocka_unit_test(test_auth_pw_length_bounds),
        cmocka_unit_test(test_auth_pw_verify_dummy),
        cmocka_unit_test(test_auth_pw_params_current),
        cmocka_unit_test(test_auth_pw_verify_malformed),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
