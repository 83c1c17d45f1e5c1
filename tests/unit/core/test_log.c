/* Tests for src/core/log.c: the text and JSON formats, an event's fields,
 * escaping (every JSON line parses, whatever the message holds), the cut
 * of an over-long line (still one valid object), and the level filter.
 * stderr is redirected to a temporary file and read back. */
#include <jansson.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/log.h"

static char captured[65536];

/* Runs fn with stderr going to a file; returns what it wrote. */
static const char *capture(void (*fn)(void)) {
    fflush(stderr);
    int saved = dup(STDERR_FILENO);
    FILE *f = tmpfile();
    assert_non_null(f);
    dup2(fileno(f), STDERR_FILENO);
    fn();
    fflush(stderr);
    dup2(saved, STDERR_FILENO);
    close(saved);
    rewind(f);
    size_t n = fread(captured, 1, sizeof(captured) - 1, f);
    captured[n] = '\0';
    fclose(f);
    return captured;
}

static void emit_event(void) {
    tt_log_ctx_t ctx = {.peer = "127.0.0.1:5555", .conn = 42, .nick = "ana", .room = "#Dev"};
    tt_log_event(TT_LOG_INFO, "join", &ctx, "joined (%d members)", 3);
}

static void emit_plain(void) {
    tt_log_info("listening on %s", "127.0.0.1:9090");
    tt_log_debug("not shown at info");
}

static void emit_nasty(void) {
    tt_log_ctx_t ctx = {.nick = "a\"b\\c"};
    tt_log_event(TT_LOG_WARN, "odd", &ctx, "quote \" backslash \\ newline \n tab \t bell \a end");
}

static char big[5000];
static void emit_long(void) {
    memset(big, '\x01', sizeof(big) - 1); /* six bytes each once escaped */
    big[sizeof(big) - 1] = '\0';
    tt_log_event(TT_LOG_ERROR, "long", NULL, "%s", big);
}

static json_t *one_object(const char *text) {
    size_t n = strlen(text);
    assert_true(n > 0);
    assert_int_equal(text[n - 1], '\n');
    assert_null(memchr(text, '\n', n - 1)); /* one line */
    json_error_t err;
    json_t *o = json_loadb(text, n - 1, 0, &err);
    if (o == NULL)
        fail_msg("not JSON (%s): %s", err.text, text);
    assert_true(json_is_object(o));
    return o;
}

static void test_log_text(void **state) {
    (void)state;
    tt_log_set_format(TT_LOG_TEXT);
    tt_log_set_level(TT_LOG_INFO);
    const char *out = capture(emit_event);
    /* 2026-11-24T19:52:32.123Z INFO  join peer=... conn=42 nick=ana room=#Dev joined (3 members) */
    assert_int_equal(strlen(out) > 25, 1);
    assert_int_equal(out[10], 'T');
    assert_int_equal(out[23], 'Z');
    assert_string_equal(out + 24,
                        " INFO  join peer=127.0.0.1:5555 conn=42 nick=ana room=#Dev joined (3 "
                        "members)\n");
    out = capture(emit_plain);
    assert_string_equal(out + 24, " INFO  listening on 127.0.0.1:9090\n");
}

static void test_log_json(void **state) {
    (void)state;
    tt_log_set_format(TT_LOG_JSON);
    tt_log_set_level(TT_LOG_INFO);
    json_t *o = one_object(capture(emit_event));
    assert_string_equal(json_string_value(json_object_get(o, "level")), "info");
    assert_string_equal(json_string_value(json_object_get(o, "event")), "join");
    assert_string_equal(json_string_value(json_object_get(o, "peer")), "127.0.0.1:5555");
    assert_int_equal(json_integer_value(json_object_get(o, "conn")), 42);
    assert_string_equal(json_string_value(json_object_get(o, "nick")), "ana");
    assert_string_equal(json_string_value(json_object_get(o, "room")), "#Dev");
    assert_string_equal(json_string_value(json_object_get(o, "msg")), "joined (3 members)");
    const char *t = json_string_value(json_object_get(o, "time"));
    assert_int_equal(strlen(t), 24);
    assert_int_equal(t[23], 'Z');
    json_decref(o);

    o = one_object(capture(emit_plain));
    assert_string_equal(json_string_value(json_object_get(o, "event")), "log");
    assert_string_equal(json_string_value(json_object_get(o, "msg")), "listening on 127.0.0.1:9090");
    assert_null(json_object_get(o, "peer"));
    json_decref(o);

    o = one_object(capture(emit_nasty));
    assert_string_equal(json_string_value(json_object_get(o, "level")), "warn");
    assert_string_equal(json_string_value(json_object_get(o, "nick")), "a\"b\\c");
    assert_string_equal(json_string_value(json_object_get(o, "msg")),
                        "quote \" backslash \\ newline \n tab \t bell \a end");
    json_decref(o);

    /* Cut, and still one valid object that says what it could. */
    const char *out = capture(emit_long);
    assert_true(strlen(out) <= 2048);
    o = one_object(out);
    const char *msg = json_string_value(json_object_get(o, "msg"));
    assert_true(strlen(msg) > 100 && strlen(msg) < sizeof(big) - 1);
    json_decref(o);
    tt_log_set_format(TT_LOG_TEXT);
}

static void test_log_level_filter(void **state) {
    (void)state;
    tt_log_set_format(TT_LOG_TEXT);
    tt_log_set_level(TT_LOG_WARN);
    assert_string_equal(capture(emit_event), "");
    assert_string_equal(capture(emit_plain), "");
    assert_true(strstr(capture(emit_nasty), " WARN  odd nick=a\"b\\c quote") != NULL);
    tt_log_set_level(TT_LOG_OFF);
    assert_string_equal(capture(emit_nasty), "");
    tt_log_set_level(TT_LOG_INFO);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_log_text),
        cmocka_unit_test(test_log_json),
        cmocka_unit_test(test_log_level_filter),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
