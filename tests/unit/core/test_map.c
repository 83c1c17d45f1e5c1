/* Tests for src/core/map.c: the basic operations, case folding, growth and
 * shrinking, iteration, and a long random sequence of puts and removes checked
 * against a plain array (which exercises backward-shift deletion across
 * wrapped probe chains). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/map.h"

static void test_tt_map_empty(void **state) {
    tt_map_t m;
    tt_map_init(&m, 0);
    assert_null(tt_map_get(&m, "a", 1));
    assert_null(tt_map_remove(&m, "a", 1));
    assert_int_equal(tt_map_count(&m), 0);
    size_t pos = 0;
    assert_false(tt_map_next(&m, &pos, NULL, NULL, NULL));
    tt_map_dispose(&m);
}

static void test_tt_map_put_get_remove(void **state) {
    tt_map_t m;
    tt_map_init(&m, 0);
    int a = 1, b = 2, c = 3;
    assert_null(tt_map_put(&m, "alpha", 5, &a));
    assert_null(tt_map_put(&m, "beta", 4, &b));
    assert_int_equal(tt_map_count(&m), 2);
    assert_ptr_equal(tt_map_get(&m, "alpha", 5), &a);
    assert_ptr_equal(tt_map_get(&m, "beta", 4), &b);
    /* A prefix or an extension of a key is another key. */
    assert_null(tt_map_get(&m, "alph", 4));
    assert_null(tt_map_get(&m, "alphabet", 8));
    /* Replacing returns the old value and keeps the count. */
    assert_ptr_equal(tt_map_put(&m, "alpha", 5, &c), &a);
    assert_int_equal(tt_map_count(&m), 2);
    assert_ptr_equal(tt_map_get(&m, "alpha", 5), &c);
    assert_ptr_equal(tt_map_remove(&m, "alpha", 5), &c);
    assert_null(tt_map_get(&m, "alpha", 5));
    assert_null(tt_map_remove(&m, "alpha", 5));
    assert_int_equal(tt_map_count(&m), 1);
    assert_ptr_equal(tt_map_get(&m, "beta", 4), &b);
    tt_map_dispose(&m);
}

static void test_tt_map_binary_and_empty_keys(void **state) {
    tt_map_t m;
    tt_map_init(&m, 0);
    int a, b, c;
    tt_map_put(&m, "", 0, &a);
    tt_map_put(&m, "x\0y", 3, &b);
    tt_map_put(&m, "x\0z", 3, &c);
    assert_ptr_equal(tt_map_get(&m, "", 0), &a);
    assert_ptr_equal(tt_map_get(&m, "x\0y", 3), &b);
    assert_ptr_equal(tt_map_get(&m, "x\0z", 3), &c);
    assert_null(tt_map_get(&m, "x", 1));
    tt_map_dispose(&m);
}

static void test_tt_map_nocase(void **state) {
    tt_map_t m;
    tt_map_init(&m, TT_MAP_NOCASE);
    int a;
    tt_map_put(&m, "Alice_01.x-Y", 12, &a);
    assert_ptr_equal(tt_map_get(&m, "alice_01.x-y", 12), &a);
    assert_ptr_equal(tt_map_get(&m, "ALICE_01.X-Y", 12), &a);
    assert_int_equal(tt_map_hash(&m, "Alice_01.x-Y", 12), tt_map_hash(&m, "aLICE_01.X-y", 12));
    /* Only ASCII letters fold: '@' (0x40) is not '`' (0x60), and É is not é. */
    assert_null(tt_map_get(&m, "Alice_01.x-Y ", 13));
    tt_map_put(&m, "@", 1, &a);
    assert_null(tt_map_get(&m, "`", 1));
    tt_map_put(&m, "\xC3\x89", 2, &a);
    assert_null(tt_map_get(&m, "\xC3\xA9", 2));
    assert_ptr_equal(tt_map_remove(&m, "aLiCe_01.X-y", 12), &a);
    assert_null(tt_map_get(&m, "Alice_01.x-Y", 12));
    tt_map_dispose(&m);
}

static void test_tt_map_case_sensitive(void **state) {
    tt_map_t m;
    tt_map_init(&m, 0);
    int a, b;
    tt_map_put(&m, "Room", 4, &a);
    tt_map_put(&m, "room", 4, &b);
    assert_int_equal(tt_map_count(&m), 2);
    assert_ptr_equal(tt_map_get(&m, "Room", 4), &a);
    assert_ptr_equal(tt_map_get(&m, "room", 4), &b);
    assert_null(tt_map_get(&m, "ROOM", 4));
    tt_map_dispose(&m);
}

/* Long keys cross SipHash's 8-byte blocks; folding must apply in every block. */
static void test_tt_map_nocase_long_keys(void **state) {
    tt_map_t m;
    tt_map_init(&m, TT_MAP_NOCASE);
    char up[40], low[40];
    int v[40];
    for (size_t len = 1; len < sizeof(up); len++) {
        for (size_t i = 0; i < len; i++) {
            up[i] = (char)('A' + (i + len) % 26);
            low[i] = (char)(up[i] | 0x20);
        }
        char *key = malloc(len);
        memcpy(key, up, len);
        tt_map_put(&m, key, len, &v[len]);
        assert_ptr_equal(tt_map_get(&m, low, len), &v[len]);
    }
    size_t pos = 0;
    const char *key;
    while (tt_map_next(&m, &pos, &key, NULL, NULL))
        free((void *)key);
    tt_map_dispose(&m);
}

#define MANY 20000

static void test_tt_map_grow_iterate_shrink(void **state) {
    tt_map_t m;
    tt_map_init(&m, 0);
    char(*keys)[16] = malloc(sizeof(char[16]) * MANY);
    uint8_t *seen = calloc(MANY, 1);
    for (size_t i = 0; i < MANY; i++) {
        snprintf(keys[i], sizeof(keys[i]), "k%zu", i);
        assert_null(tt_map_put(&m, keys[i], strlen(keys[i]), keys[i]));
    }
    assert_int_equal(tt_map_count(&m), MANY);
    /* Load factor at most 3/4. */
    assert_true(m.count * 4 <= m.cap * 3);
    size_t pos = 0, n = 0, len;
    const char *key;
    void *value;
    while (tt_map_next(&m, &pos, &key, &len, &value)) {
        assert_ptr_equal(key, value);
        size_t i = (size_t)(((char(*)[16])value) - keys);
        assert_true(i < MANY);
        assert_int_equal(seen[i], 0);
        seen[i] = 1;
        n++;
    }
    assert_int_equal(n, MANY);
    size_t peak = m.cap;
    for (size_t i = 0; i < MANY - 10; i++)
        assert_ptr_equal(tt_map_remove(&m, keys[i], strlen(keys[i])), keys[i]);
    assert_int_equal(tt_map_count(&m), 10);
    assert_true(m.cap < peak / 64);
    for (size_t i = MANY - 10; i < MANY; i++)
        assert_ptr_equal(tt_map_get(&m, keys[i], strlen(keys[i])), keys[i]);
    free(keys);
    free(seen);
    tt_map_dispose(&m);
}

/* Random puts, replaces and removes over a small key space, with a fixed
 * seed, compared after every step with a plain array of expected values. */
static void test_tt_map_random_against_reference(void **state) {
    enum { KEYS = 300, STEPS = 200000 };
    static char keys[KEYS][8];
    static void *expect[KEYS];
    static int values[KEYS * 2];
    tt_map_t m;
    tt_map_init(&m, TT_MAP_NOCASE);
    for (int i = 0; i < KEYS; i++)
        snprintf(keys[i], sizeof(keys[i]), "K%d", i);
    memset(expect, 0, sizeof(expect));
    srand(12345);
    size_t count = 0;
    for (int step = 0; step < STEPS; step++) {
        int k = rand() % KEYS;
        size_t len = strlen(keys[k]);
        if (rand() % 3 == 0) {
            assert_ptr_equal(tt_map_remove(&m, keys[k], len), expect[k]);
            count -= expect[k] != NULL;
            expect[k] = NULL;
        } else {
            void *v = &values[k * 2 + rand() % 2];
            assert_ptr_equal(tt_map_put(&m, keys[k], len, v), expect[k]);
            count += expect[k] == NULL;
            expect[k] = v;
        }
        assert_int_equal(tt_map_count(&m), count);
        if (step % 1000 == 0)
            for (int i = 0; i < KEYS; i++) {
                char low[8];
                strcpy(low, keys[i]);
                low[0] = 'k';
                assert_ptr_equal(tt_map_get(&m, low, strlen(low)), expect[i]);
            }
    }
    tt_map_dispose(&m);
}

/* Two maps hash with different keys, so a name that collides in one server
 * does not collide the same way in another (the flooding defence). */
static void test_tt_map_hash_is_keyed(void **state) {
    tt_map_t a, b;
    tt_map_init(&a, 0);
    tt_map_init(&b, 0);
    int differ = 0;
    for (int i = 0; i < 8; i++) {
        char k[8];
        snprintf(k, sizeof(k), "n%d", i);
        differ += tt_map_hash(&a, k, strlen(k)) != tt_map_hash(&b, k, strlen(k));
    }
    assert_true(differ > 0);
    tt_map_dispose(&a);
    tt_map_dispose(&b);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tt_map_empty),
        cmocka_unit_test(test_tt_map_put_get_remove),
        cmocka_unit_test(test_tt_map_binary_and_empty_keys),
        cmocka_unit_test(test_tt_map_nocase),
        cmocka_unit_test(test_tt_map_case_sensitive),
        cmocka_unit_test(test_tt_map_nocase_long_keys),
        cmocka_unit_test(test_tt_map_grow_iterate_shrink),
        cmocka_unit_test(test_tt_map_random_against_reference),
        cmocka_unit_test(test_tt_map_hash_is_keyed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
