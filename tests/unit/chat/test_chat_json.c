/* Unit tests of src/chat/chat_json.c, the fast reader of requests: it takes
 * the shapes clients send (and builds what jansson builds for them: the
 * same tree, a later duplicate key winning), and leaves everything else to
 * jansson (arrays, reals, big or odd numbers, \u escapes, control
 * characters, invalid UTF-8, deep nesting, trailing bytes, malformed
 * input). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "chat/chat_int.h"

static void taken(const char *text) {
    json_t *fast = chat__json_fast(text, strlen(text));
    if (fast == NULL)
        fail_msg("not taken: %s", text);
    json_t *slow = json_loadb(text, strlen(text), JSON_ALLOW_NUL, NULL);
    assert_non_null(slow);
    if (!json_equal(fast, slow))
        fail_msg("not what jansson reads: %s", text);
    json_decref(fast);
    json_decref(slow);
}

static void left(const char *text, size_t len) {
    json_t *fast = chat__json_fast(text, len);
    if (fast != NULL)
        fail_msg("taken, but it is jansson's: %.*s", (int)len, text);
}
#define LEFT(s) left((s), sizeof(s) - 1)

static void test_takes_what_clients_send(void **state) {
    (void)state;
    taken(
        "{\"type\":\"room\",\"to\":\"#swift-dev\",\"message\":{\"text\":\"hola\"},\"id\":\"c1\"}");
    taken("{\"type\":\"private\",\"to\":\"ben\",\"message\":{\"text\":\"a \\\"b\\\" \\\\ \\/ "
          "\\b\\f\\n\\r\\t\"}}");
    taken(" {\n\t\"type\" : \"join\" , \"room\" : \"r\", \"since\": 1207 }\r\n");
    taken("{\"type\":\"history\",\"room\":\"r\",\"before\":-12,\"limit\":0,\"x\":true,\"y\":false,"
          "\"z\":null,\"w\":{}}");
    taken("{}");
    taken("{\"type\":\"login\",\"nickname\":\"ana\",\"nickname\":\"ben\"}");
    taken("{\"t\":\"ñandú 🦤 日本語\",\"n\":999999999999999,\"m\":-999999999999999}");
    taken("{\"a\":{\"b\":{\"c\":{\"d\":{\"e\":{\"f\":{\"g\":1}}}}}}}");
    /* The duplicate wins as in jansson. */
    json_t *o = chat__json_fast("{\"k\":1,\"k\":\"two\"}", 17);
    assert_non_null(o);
    assert_string_equal(json_string_value(json_object_get(o, "k")), "two");
    json_decref(o);
}

static void test_leaves_the_rest_to_jansson(void **state) {
    (void)state;
    LEFT("[1,2]");
    LEFT("\"s\"");
    LEFT("12");
    LEFT("{\"a\":[1]}");
    LEFT("{\"a\":1.5}");
    LEFT("{\"a\":1e3}");
    LEFT("{\"a\":1234567890123456}"); /* 16 digits */
    LEFT("{\"a\":01}");
    LEFT("{\"a\":-0}");
    LEFT("{\"a\":-}");
    LEFT("{\"a\":\"\\u00e9\"}");
    LEFT("{\"a\\u0000\":1}");
    LEFT("{\"a\":\"\\x\"}");
    LEFT("{\"a\":\"tab\there\"}"); /* a raw control character */
    LEFT("{\"a\":\"\xff\"}");      /* not UTF-8 */
    LEFT("{\"a\":1} x");
    LEFT("{\"a\":1}{}");
    LEFT("{\"a\":1,}");
    LEFT("{\"a\" 1}");
    LEFT("{a:1}");
    LEFT("{\"a\":tru}");
    LEFT("{\"a\":\"open");
    LEFT("{\"a\":{\"b\":{\"c\":{\"d\":{\"e\":{\"f\":{\"g\":{\"h\":{\"i\":1}}}}}}}}}");
    LEFT("");
    LEFT("   ");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_takes_what_clients_send),
        cmocka_unit_test(test_leaves_the_rest_to_jansson),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
