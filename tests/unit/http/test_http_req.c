/* Request-head parsing: the blank-line scan (also when the head arrives a
 * byte at a time), the fields the server uses, joined repeated headers,
 * and the statuses for bad heads. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "http/http_req.h"
#include "http/http_resp.h"
#include "http/static.h"

static const char upgrade_head[] = "GET /ws?x=1 HTTP/1.1\r\n"
                                   "Host: 127.0.0.1:9090\r\n"
                                   "Upgrade: websocket\r\n"
                                   "Connection: keep-alive, Upgrade\r\n"
                                   "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                                   "Sec-WebSocket-Version: 13\r\n"
                                   "Sec-WebSocket-Protocol: chat\r\n"
                                   "sec-websocket-protocol: tertulia.v1\r\n"
                                   "Origin: http://127.0.0.1:9090\r\n"
                                   "\r\n";

static void test_http_head_end_whole(void **state) {
    (void)state;
    size_t len = strlen(upgrade_head);
    assert_int_equal(http_head_end(upgrade_head, len, 0), len);
    assert_int_equal(http_head_end(upgrade_head, len - 1, 0), 0);
    /* Bare LF line ends are accepted, as http_parser accepts them. */
    assert_int_equal(http_head_end("GET / HTTP/1.1\n\n", 16, 0), 16);
}

static void test_http_head_end_byte_by_byte(void **state) {
    (void)state;
    size_t len = strlen(upgrade_head);
    size_t scanned = 0;
    for (size_t have = 1; have <= len; have++) {
        size_t end = http_head_end(upgrade_head, have, scanned);
        if (have < len) {
            assert_int_equal(end, 0);
            scanned = have;
        } else {
            assert_int_equal(end, len);
        }
    }
}

static void test_http_req_parse_upgrade(void **state) {
    (void)state;
    http_req_t req;
    assert_int_equal(http_req_parse(upgrade_head, strlen(upgrade_head), &req), 0);
    assert_string_equal(req.method_name, "GET");
    assert_true(http_slice_eq(req.path, "/ws"));
    assert_true(http_slice_eq(req.query, "x=1"));
    assert_true(http_slice_eq(req.host, "127.0.0.1:9090"));
    assert_true(http_slice_eq(req.ws_key, "dGhlIHNhbXBsZSBub25jZQ=="));
    assert_true(http_slice_eq(req.ws_version, "13"));
    /* Two Sec-WebSocket-Protocol headers are one list. */
    assert_true(http_slice_eq(req.ws_protocol, "chat, tertulia.v1"));
    assert_true(http_list_has_token(req.connection, "upgrade"));
    assert_true(http_list_has_token(req.connection, "keep-alive"));
    assert_false(http_list_has_token(req.connection, "close"));
    /* An absent header (found by fuzz_http: NULL + 0 is undefined). */
    http_slice_t absent = {NULL, 0};
    assert_false(http_list_has_token(absent, "upgrade"));
    assert_true(http_list_has_token(req.upgrade, "WebSocket"));
    assert_int_equal(req.http_major, 1);
    assert_int_equal(req.http_minor, 1);
}

static void test_http_req_parse_keep_alive(void **state) {
    (void)state;
    static const struct {
        const char *head;
        bool keep_alive;
    } cases[] = {
        {"GET / HTTP/1.1\r\nHost: a\r\n\r\n", true},
        {"GET / HTTP/1.1\r\nConnection: close\r\n\r\n", false},
        {"GET / HTTP/1.0\r\n\r\n", false},
        {"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", true},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        http_req_t req;
        assert_int_equal(http_req_parse(cases[i].head, strlen(cases[i].head), &req), 0);
        assert_int_equal(req.keep_alive, cases[i].keep_alive);
        assert_false(req.has_body);
    }
}

static void test_http_req_parse_body_flags(void **state) {
    (void)state;
    http_req_t req;
    const char *post = "POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\n";
    assert_int_equal(http_req_parse(post, strlen(post), &req), 0);
    assert_true(req.has_body);
    const char *chunked = "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n";
    assert_int_equal(http_req_parse(chunked, strlen(chunked), &req), 0);
    assert_true(req.has_body);
}

static void test_http_req_parse_refusals(void **state) {
    (void)state;
    static const struct {
        const char *head;
        int status;
    } cases[] = {
        {"GARBAGE\r\n\r\n", 400},
        {"GET / HTTP/1.1\r\nBad Header\r\n\r\n", 400},
        {"GET / HTTP/2.0\r\n\r\n", 505},
        {"GET  HTTP/1.1\r\n\r\n", 400},
        {"GET / HTTP/1.1\r\nContent-Length: x\r\n\r\n", 400},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        http_req_t req;
        assert_int_equal(http_req_parse(cases[i].head, strlen(cases[i].head), &req),
                         cases[i].status);
    }
}

static void test_http_req_parse_too_large(void **state) {
    (void)state;
    static char head[HTTP_MAX_HEAD + 200];
    size_t n = (size_t)snprintf(head, sizeof(head), "GET / HTTP/1.1\r\nX: ");
    memset(head + n, 'a', HTTP_MAX_HEAD);
    n += HTTP_MAX_HEAD;
    memcpy(head + n, "\r\n\r\n", 4);
    n += 4;
    http_req_t req;
    assert_int_equal(http_req_parse(head, n, &req), 431);
}

static void test_http_resp_head(void **state) {
    (void)state;
    char out[512];
    size_t n = http_resp_head(out, sizeof(out), 404, "Tue, 24 Nov 2026 19:52:32 GMT",
                              "text/plain", 10, true, "X-A: b\r\n");
    out[n] = '\0';
    assert_non_null(strstr(out, "HTTP/1.1 404 Not Found\r\n"));
    assert_non_null(strstr(out, "Content-Length: 10\r\n"));
    assert_non_null(strstr(out, "Connection: keep-alive\r\n"));
    assert_non_null(strstr(out, "X-A: b\r\n\r\n"));
    assert_int_equal(http_resp_head(out, 40, 200, "x", NULL, 0, false, NULL), 0);
    char date[30];
    http_date_format(0, date);
    assert_string_equal(date, "Thu, 01 Jan 1970 00:00:00 GMT");
}

static void test_http_asset_find(void **state) {
    (void)state;
    const http_asset_t *a = http_asset_find("/", 1);
    assert_non_null(a);
    assert_string_equal(a->path, "/index.html");
    assert_non_null(strstr(a->content_type, "text/html"));
    assert_int_equal(a->etag[0], '"');
    assert_null(http_asset_find("/no-such-file", 13));
    assert_null(http_asset_find("/index.htm", 10));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_http_head_end_whole),
        cmocka_unit_test(test_http_head_end_byte_by_byte),
        cmocka_unit_test(test_http_req_parse_upgrade),
        cmocka_unit_test(test_http_req_parse_keep_alive),
        cmocka_unit_test(test_http_req_parse_body_flags),
        cmocka_unit_test(test_http_req_parse_refusals),
        cmocka_unit_test(test_http_req_parse_too_large),
        cmocka_unit_test(test_http_resp_head),
        cmocka_unit_test(test_http_asset_find),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
