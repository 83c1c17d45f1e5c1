/* The cluster's formats: the Redis URL, node names, room keys, and the
 * payload every node reads back (cluster_wire.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "cluster/cluster_wire.h"

static void test_url_tcp(void **state) {
    (void)state;
    cluster_url_t u;
    char err[160];
    assert_true(cluster_url_parse("redis://127.0.0.1:6380/3", &u, err, sizeof(err)));
    assert_string_equal(u.host, "127.0.0.1");
    assert_int_equal(u.port, 6380);
    assert_int_equal(u.db, 3);
    assert_string_equal(u.password, "");
    assert_true(cluster_url_parse("redis://cache.example", &u, err, sizeof(err)));
    assert_int_equal(u.port, 6379);
    assert_int_equal(u.db, 0);
    assert_true(cluster_url_parse("redis://:s%40cret@localhost:1/", &u, err, sizeof(err)));
    assert_string_equal(u.password, "s@cret");
    assert_string_equal(u.host, "localhost");
    assert_int_equal(u.port, 1);
}

static void test_url_unix(void **state) {
    (void)state;
    cluster_url_t u;
    char err[160];
    assert_true(cluster_url_parse("unix:/run/redis/redis.sock", &u, err, sizeof(err)));
    assert_string_equal(u.path, "/run/redis/redis.sock");
    assert_true(cluster_url_parse("unix:///tmp/r.sock", &u, err, sizeof(err)));
    assert_string_equal(u.path, "/tmp/r.sock");
    assert_false(cluster_url_parse("unix:relative.sock", &u, err, sizeof(err)));
    assert_non_null(strstr(err, "absolute"));
}

static void test_url_bad(void **state) {
    (void)state;
    cluster_url_t u;
    char err[160];
    const char *bad[] = {"http://x",
                         "redis://",
                         "redis://host:0",
                         "redis://host:65536",
                         "redis://host:port",
                         "redis://host/db",
                         "redis://ho st:1",
                         "redis://pw@host",
                         "redis://:%4@host",
                         "redis://host:1/1001",
                         "",
                         "redis://:@host"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        assert_false(cluster_url_parse(bad[i], &u, err, sizeof(err)));
        assert_true(strlen(err) > 0); /* a sentence for the operator */
    }
}

static void test_node_names_and_keys(void **state) {
    (void)state;
    assert_true(cluster_node_name_valid("web-1:9090", 10));
    assert_false(cluster_node_name_valid("", 0));
    assert_false(cluster_node_name_valid("a b", 3));
    char big[CLUSTER_NODE_MAX + 1];
    memset(big, 'n', sizeof(big));
    assert_true(cluster_node_name_valid(big, CLUSTER_NODE_MAX));
    assert_false(cluster_node_name_valid(big, CLUSTER_NODE_MAX + 1));
    char key[65];
    size_t n = cluster_room_key("#Python-Dev", 11, key);
    assert_int_equal(n, 10);
    assert_memory_equal(key, "python-dev", 10);
}

static void test_body_roundtrip(void **state) {
    (void)state;
    char body[256], payload[300];
    const char *text = "hello  world\nwith @bob";
    size_t n = cluster_body_format(body, sizeof(body), 1700000000123, "n1", 42, "ana", 3, "Lobby",
                                   5, "bob,cid", 7, text, strlen(text));
    assert_true(n > 0);
    int m = snprintf(payload, sizeof(payload), "7 1234 %.*s", (int)n, body);
    cluster_msg_t msg;
    assert_true(cluster_msg_parse(payload, (size_t)m, &msg));
    assert_int_equal(msg.seq, 7);
    assert_int_equal(msg.id, 1234);
    assert_int_equal(msg.ts, 1700000000123);
    assert_int_equal(msg.token, 42);
    assert_memory_equal(msg.node, "n1", 2);
    assert_int_equal(msg.from_len, 3);
    assert_memory_equal(msg.room, "Lobby", 5);
    assert_int_equal(msg.mentions_len, 7);
    assert_int_equal(msg.text_len, strlen(text));
    assert_memory_equal(msg.text, text, strlen(text));
    /* No mentions: "-" on the wire, none when read. */
    n = cluster_body_format(body, sizeof(body), 1, "n1", 1, "ana", 3, "#r", 2, NULL, 0, "x", 1);
    m = snprintf(payload, sizeof(payload), "1 1 %.*s", (int)n, body);
    assert_true(cluster_msg_parse(payload, (size_t)m, &msg));
    assert_int_equal(msg.mentions_len, 0);
    /* Too small a buffer: nothing. */
    assert_int_equal(cluster_body_format(body, 10, 1, "n1", 1, "ana", 3, "r", 1, NULL, 0, "x", 1),
                     0);
}

static void test_payload_bad(void **state) {
    (void)state;
    cluster_msg_t m;
    const char *bad[] = {
        "",
        "1 2 3 n1 4 ana room - ",                  /* empty text */
        "1 0 3 n1 4 ana room - hi",                /* id 0 */
        "1 9007199254740992 3 n1 4 ana room - hi", /* id 2^53 */
        "-1 2 3 n1 4 ana room - hi",
        "1 2 3 n1 4 ana room",      /* fields missing */
        "1 2 3 n1 4 a&a room - hi", /* nickname */
        "1 2 3 n1 4 #ana room - hi",
        "1 2 3 n1 4 ana ro/om - hi",
        "1 2 3 n1 4 ana # - hi",
        /* "#" alone (found by fuzz_cluster) */ /* room */
        "1 2 3 n1 4 ana room b;c hi",           /* mentions */
        "1 2 3 n1 4 ana room -",                /* no text field */
        "1 2 3 n1 x ana room - hi",             /* token */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_false(cluster_msg_parse(bad[i], strlen(bad[i]), &m));
    const char *good = "1 9007199254740991 3 n1 4 ana #room - hi there";
    assert_true(cluster_msg_parse(good, strlen(good), &m));
    assert_int_equal(m.text_len, 8);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_url_tcp),        cmocka_unit_test(test_url_unix),
        cmocka_unit_test(test_url_bad),        cmocka_unit_test(test_node_names_and_keys),
        cmocka_unit_test(test_body_roundtrip), cmocka_unit_test(test_payload_bad),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
