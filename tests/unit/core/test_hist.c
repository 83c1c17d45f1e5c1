/* Tests for src/core/hist.c and src/core/prom.c: bucket boundaries
 * (a value equal to a bound counts in that bucket), the cumulative counts
 * and the sum; the exposition writer's families, labels, a histogram's
 * _bucket/_sum/_count lines, label escaping, and the cap (an overflowed
 * text says so instead of being cut). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "core/hist.h"
#include "core/prom.h"

static const uint64_t bounds[] = {10, 100, 1000};

static void test_hist_observe_boundaries(void **state) {
    (void)state;
    tt_hist_t h;
    tt_hist_init(&h, bounds, 3);
    uint64_t vals[] = {0, 10, 11, 100, 1000, 1001, 50000};
    for (size_t i = 0; i < sizeof(vals) / sizeof(vals[0]); i++)
        tt_hist_observe(&h, vals[i]);
    assert_int_equal(h.counts[0], 2); /* 0, 10 */
    assert_int_equal(h.counts[1], 2); /* 11, 100 */
    assert_int_equal(h.counts[2], 1); /* 1000 */
    assert_int_equal(h.counts[3], 2); /* over the last bound */
    assert_int_equal(tt_hist_cumulative(&h, 0), 2);
    assert_int_equal(tt_hist_cumulative(&h, 1), 4);
    assert_int_equal(tt_hist_cumulative(&h, 2), 5);
    assert_int_equal(tt_hist_cumulative(&h, 3), 7);
    assert_int_equal(h.count, 7);
    assert_int_equal(h.sum, 0 + 10 + 11 + 100 + 1000 + 1001 + 50000);
}

static void test_hist_latency_bounds_increase(void **state) {
    (void)state;
    assert_true(tt_hist_latency_us_n <= TT_HIST_MAX_BUCKETS);
    for (size_t i = 1; i < tt_hist_latency_us_n; i++)
        assert_true(tt_hist_latency_us[i] > tt_hist_latency_us[i - 1]);
}

static void test_prom_family_and_samples(void **state) {
    (void)state;
    tt_prom_t p;
    tt_prom_init(&p, 1 << 16);
    tt_prom_family(&p, "tertulia_x_total", "counter", "Things.");
    tt_prom_uint(&p, "tertulia_x_total", "kind=\"room\"", 3);
    tt_prom_uint(&p, "tertulia_x_total", NULL, 4);
    tt_prom_double(&p, "tertulia_y", "", 1.5);
    assert_false(tt_prom_overflowed(&p));
    assert_string_equal(p.buf, "# HELP tertulia_x_total Things.\n"
                               "# TYPE tertulia_x_total counter\n"
                               "tertulia_x_total{kind=\"room\"} 3\n"
                               "tertulia_x_total 4\n"
                               "tertulia_y 1.5\n");
    tt_prom_dispose(&p);
}

static void test_prom_hist_lines(void **state) {
    (void)state;
    tt_hist_t h;
    tt_hist_init(&h, bounds, 3);
    tt_hist_observe(&h, 5);
    tt_hist_observe(&h, 500);
    tt_hist_observe(&h, 5000);
    tt_prom_t p;
    tt_prom_init(&p, 1 << 16);
    tt_prom_hist(&p, "tertulia_t_seconds", "kind=\"a\"", &h, 1e-3);
    assert_string_equal(p.buf, "tertulia_t_seconds_bucket{kind=\"a\",le=\"0.01\"} 1\n"
                               "tertulia_t_seconds_bucket{kind=\"a\",le=\"0.1\"} 1\n"
                               "tertulia_t_seconds_bucket{kind=\"a\",le=\"1\"} 2\n"
                               "tertulia_t_seconds_bucket{kind=\"a\",le=\"+Inf\"} 3\n"
                               "tertulia_t_seconds_sum{kind=\"a\"} 5.505\n"
                               "tertulia_t_seconds_count{kind=\"a\"} 3\n");
    tt_prom_dispose(&p);
}

static void test_prom_grows_then_overflows(void **state) {
    (void)state;
    tt_prom_t p;
    tt_prom_init(&p, 10000);
    for (int i = 0; i < 200; i++)
        tt_prom_uint(&p, "tertulia_counter_with_a_long_name", NULL, (uint64_t)i);
    assert_false(tt_prom_overflowed(&p)); /* grew past its first 4096 bytes */
    assert_true(p.len > 4096);
    for (int i = 0; i < 1000; i++)
        tt_prom_uint(&p, "tertulia_counter_with_a_long_name", NULL, (uint64_t)i);
    assert_true(tt_prom_overflowed(&p));
    assert_true(p.len <= 10000);
    tt_prom_dispose(&p);
}

static void test_prom_label_escape(void **state) {
    (void)state;
    char out[32];
    assert_string_equal(tt_prom_label_escape("a\"b\\c\nd", 7, out, sizeof(out)), "a\\\"b\\\\c\\nd");
    assert_string_equal(tt_prom_label_escape("abcdefgh", 8, out, 5), "ab");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hist_observe_boundaries),
        cmocka_unit_test(test_hist_latency_bounds_increase),
        cmocka_unit_test(test_prom_family_and_samples),
        cmocka_unit_test(test_prom_hist_lines),
        cmocka_unit_test(test_prom_grows_then_overflows),
        cmocka_unit_test(test_prom_label_escape),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
