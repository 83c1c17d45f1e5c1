/* Request-head parsing: the blank-line scan (also when the head arrives a
 * byte at a time), the fields the server uses, joined repeated headers,
 * the statuses for bad heads, and a table of RFC 9112's MUSTs for request
 * heads, each case re-run split at every byte. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

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
                                   "authorization: Bearer abc\r\n"
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
    assert_true(http_slice_eq(req.authorization, "Bearer abc"));
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
        {"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", false},
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
    const char *post = "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\n";
    assert_int_equal(http_req_parse(post, strlen(post), &req), 0);
    assert_true(req.has_body);
    const char *chunked = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n";
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

/* RFC 9112's MUSTs for request heads, picohttpparser style: one row per
 * case, with the status http_req_parse must return. end is what
 * http_head_end finds over the whole input when that is not all of it. */
typedef struct head_case_s {
    const char *name;
    const char *head;
    size_t len;
    int status;
    size_t end; /* 0: the whole input is one head */
} head_case_t;

#define CASE(name, head, status)                                                                   \
    { name, head, sizeof(head) - 1, status, 0 }
#define CASE_END(name, head, status, end)                                                          \
    { name, head, sizeof(head) - 1, status, end }

#define UPGRADE_FIELDS                                                                             \
    "Upgrade: websocket\r\nConnection: Upgrade\r\n"                                                \
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"

static const head_case_t rfc9112_cases[] = {
    /* Accepted. */
    CASE("a normal GET", "GET / HTTP/1.1\r\nHost: x\r\n\r\n", 0),
    CASE("Host with no space after the colon", "GET / HTTP/1.1\r\nHost:x\r\n\r\n", 0),
    CASE("Host with SP and HTAB around the value", "GET / HTTP/1.1\r\nHost: \t x \t\r\n\r\n", 0),
    CASE("an empty Host (a target without authority)", "GET / HTTP/1.1\r\nHost:\r\n\r\n", 0),
    CASE("Host with a port", "GET / HTTP/1.1\r\nHost: chat.example.org:9090\r\n\r\n", 0),
    CASE("Host with an IPv6 literal", "GET / HTTP/1.1\r\nHost: [::1]:9090\r\n\r\n", 0),
    CASE("host in lower case", "GET / HTTP/1.1\r\nhost: x\r\n\r\n", 0),
    CASE("HTTP/1.0 without Host", "GET / HTTP/1.0\r\n\r\n", 0),
    CASE("HTTP/1.0 with Host", "GET / HTTP/1.0\r\nHost: x\r\n\r\n", 0),
    CASE("a query and other fields", "GET /a?b=c HTTP/1.1\r\nHost: x\r\nAccept: */*\r\n\r\n", 0),
    CASE("bare LF line ends", "GET / HTTP/1.1\nHost: x\n\n", 0),
    CASE("an empty field value", "GET / HTTP/1.1\r\nHost: x\r\nX-Empty:\r\n\r\n", 0),
    CASE("obs-text in a field value", "GET / HTTP/1.1\r\nHost: x\r\nX-Name: caf\xc3\xa9\r\n\r\n",
         0),
    CASE("a field name with every tchar kind",
         "GET / HTTP/1.1\r\nHost: x\r\n!#$%&'*+-.^_`|~09az: v\r\n\r\n", 0),
    CASE("the absolute-form", "GET http://x/ws HTTP/1.1\r\nHost: x\r\n\r\n", 0),
    CASE("an upgrade request", "GET /ws HTTP/1.1\r\nHost: x\r\n" UPGRADE_FIELDS "\r\n", 0),
    CASE("one Content-Length (the body is the caller's to refuse)",
         "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n", 0),
    CASE("Transfer-Encoding ending in chunked",
         "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 0),
    CASE("one leading CRLF", "\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n", 0),
    CASE("two leading CRLFs", "\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n", 0),
    CASE("two leading bare LFs", "\n\nGET / HTTP/1.1\r\nHost: x\r\n\r\n", 0),
    CASE("four leading empty lines, the most skipped",
         "\r\n\n\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n", 0),
    CASE("an upgrade after a leading CRLF",
         "\r\nGET /ws HTTP/1.1\r\nHost: x\r\n" UPGRADE_FIELDS "\r\n", 0),

    /* Host (section 3.2). */
    CASE("HTTP/1.1 without Host", "GET / HTTP/1.1\r\n\r\n", 400),
    CASE("HTTP/1.1 without Host but other fields", "GET / HTTP/1.1\r\nAccept: */*\r\n\r\n", 400),
    CASE("an upgrade without Host", "GET /ws HTTP/1.1\r\n" UPGRADE_FIELDS "\r\n", 400),
    CASE("HTTP/1.9 without Host (a 1.x minor is 1.1 to us)", "GET / HTTP/1.9\r\n\r\n", 400),
    CASE("two Host lines", "GET / HTTP/1.1\r\nHost: x\r\nHost: x\r\n\r\n", 400),
    CASE("two Host lines differing in case", "GET / HTTP/1.1\r\nHost: x\r\nhost: y\r\n\r\n", 400),
    CASE("two Host lines in HTTP/1.0", "GET / HTTP/1.0\r\nHost: x\r\nHost: y\r\n\r\n", 400),
    CASE("Host with a space inside", "GET / HTTP/1.1\r\nHost: x y\r\n\r\n", 400),
    CASE("Host with a path", "GET / HTTP/1.1\r\nHost: x/y\r\n\r\n", 400),
    CASE("Host with userinfo", "GET / HTTP/1.1\r\nHost: u@x\r\n\r\n", 400),

    /* Field names (section 5.1). */
    CASE("SP between name and colon", "GET / HTTP/1.1\r\nHost : x\r\n\r\n", 400),
    CASE("HTAB between name and colon", "GET / HTTP/1.1\r\nHost\t: x\r\n\r\n", 400),
    CASE("SP before another name's colon", "GET / HTTP/1.1\r\nHost: x\r\nX-A : b\r\n\r\n", 400),
    CASE("a line without a colon", "GET / HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n", 400),
    CASE("an empty field name", "GET / HTTP/1.1\r\nHost: x\r\n: v\r\n\r\n", 400),
    CASE("'@' in a field name", "GET / HTTP/1.1\r\nHost: x\r\nX@Y: v\r\n\r\n", 400),
    CASE("'\"' in a field name", "GET / HTTP/1.1\r\nHost: x\r\nX\"Y: v\r\n\r\n", 400),
    CASE("'{' in a field name", "GET / HTTP/1.1\r\nHost: x\r\nX{: v\r\n\r\n", 400),
    CASE("a non-ASCII field name", "GET / HTTP/1.1\r\nHost: x\r\n\xc3\x84: v\r\n\r\n", 400),

    /* Line folding and stray whitespace (sections 5.2, 2.2). */
    CASE("an obs-fold with SP", "GET / HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\n\r\n", 400),
    CASE("an obs-fold with HTAB", "GET / HTTP/1.1\r\nHost: x\r\nX-A: a\r\n\tb\r\n\r\n", 400),
    CASE("an obs-fold continuing Host", "GET / HTTP/1.1\r\nHost: x\r\n y\r\n\r\n", 400),
    CASE("whitespace before the first field", "GET / HTTP/1.1\r\n Host: x\r\n\r\n", 400),
    CASE("a whitespace-only line before the request line", " \r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n",
         400),

    /* Bare CR and control characters (section 2.2; RFC 9110 section 5.5). */
    CASE("a bare CR inside a value", "GET / HTTP/1.1\r\nHost: x\r\nX-A: a\rb\r\n\r\n", 400),
    CASE("a bare CR as a line end", "GET / HTTP/1.1\r\nHost: x\rX-A: b\r\n\r\n", 400),
    CASE("CR CR LF ending a field line", "GET / HTTP/1.1\r\nHost: x\r\r\n\r\n", 400),
    CASE("a bare CR in the request line", "GET /\r HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    CASE("a bare CR before the request line", "\r\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    CASE("NUL in a value", "GET / HTTP/1.1\r\nHost: x\r\nX-A: a\0b\r\n\r\n", 400),
    CASE("a control character in a value", "GET / HTTP/1.1\r\nHost: x\r\nX-A: a\x01z\r\n\r\n", 400),
    CASE("DEL in a value", "GET / HTTP/1.1\r\nHost: x\r\nX-A: a\x7fz\r\n\r\n", 400),

    /* Message framing (sections 6.1, 6.3). */
    CASE("Content-Length and Transfer-Encoding",
         "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
         400),
    CASE("Transfer-Encoding and Content-Length",
         "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 0\r\n\r\n",
         400),
    CASE("Transfer-Encoding not ending in chunked",
         "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", 400),
    CASE("Transfer-Encoding gzip alone",
         "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", 400),
    CASE("Transfer-Encoding on two lines, chunked first",
         "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: "
         "gzip\r\n\r\n",
         400),
    CASE("an empty Content-Length", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length:\r\n\r\n", 400),
    CASE("a Content-Length that is not a number",
         "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n", 400),
    CASE("a negative Content-Length", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
         400),
    CASE("a Content-Length with a sign", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: +5\r\n\r\n",
         400),
    CASE("a hexadecimal Content-Length",
         "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0x5\r\n\r\n", 400),
    CASE("two numbers in one Content-Length",
         "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5 5\r\n\r\n", 400),
    CASE("a Content-Length list", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5, 5\r\n\r\n",
         400),
    CASE("a Content-Length of 2^64",
         "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 18446744073709551616\r\n\r\n", 400),
    CASE("two different Content-Length lines",
         "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", 400),
    CASE("two equal Content-Length lines",
         "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n", 400),

    /* The request line and its target (sections 3, 3.2). */
    CASE("two spaces after the method", "GET  / HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    CASE("a space after the version", "GET / HTTP/1.1 \r\nHost: x\r\n\r\n", 400),
    CASE("HTAB as a separator", "GET\t/\tHTTP/1.1\r\nHost: x\r\n\r\n", 400),
    CASE("a lower-case version", "GET / http/1.1\r\nHost: x\r\n\r\n", 400),
    CASE("a two-digit minor version", "GET / HTTP/1.10\r\nHost: x\r\n\r\n", 400),
    CASE("a version without minor", "GET / HTTP/1\r\nHost: x\r\n\r\n", 400),
    CASE("a method that is not a token", "G@T / HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    CASE("an unknown method", "BREW / HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    CASE("a relative target", "GET ws HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    CASE("a target that is only a query", "GET ?a=b HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    CASE("a scheme starting with a digit", "GET 1http://x/ HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    CASE("the authority-form outside CONNECT", "GET x:80 HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    CASE("the origin-form with CONNECT", "CONNECT / HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    CASE("the absolute-form with CONNECT", "CONNECT http://x/ HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    CASE("the asterisk-form outside OPTIONS", "GET * HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    CASE("the asterisk-form (valid, not served)", "OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    CASE("a non-ASCII byte in the target", "GET /caf\xc3\xa9 HTTP/1.1\r\nHost: x\r\n\r\n", 400),

    /* Empty lines before the request line (section 2.2): at most 4. */
    CASE("five leading empty lines", "\r\n\r\n\r\n\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    CASE_END("six leading empty lines: a head of nothing",
             "\r\n\r\n\r\n\r\n\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n", 400, 12),
    CASE_END("six leading bare LFs", "\n\n\n\n\n\nGET / HTTP/1.1\r\nHost: x\r\n\r\n", 400, 6),
    CASE("a leading CRLF then garbage", "\r\nGARBAGE\r\n\r\n", 400),
};

/* Runs http_head_end as a connection does, with the bytes arriving in two
 * reads split at k: the first read must not end the head early, the
 * second must find it where the whole input does. Returns the failures. */
static int check_head_end_split(const head_case_t *c, size_t end, size_t k) {
    size_t first = http_head_end(c->head, k, 0);
    size_t want = k < end ? 0 : end;
    if (first != want) {
        print_error("%s: split at %zu: the first read found %zu, want %zu\n", c->name, k, first,
                    want);
        return 1;
    }
    size_t second = k < end ? http_head_end(c->head, c->len, k) : end;
    if (second != end) {
        print_error("%s: split at %zu: the second read found %zu, want %zu\n", c->name, k, second,
                    end);
        return 1;
    }
    return 0;
}

/* One row: the blank-line scan whole, split in two at every byte and
 * trickled a byte at a time, then the status; then the same as a caller
 * that strips the leading empty lines itself. Returns the failures. */
static int check_head_case(const head_case_t *c) {
    int failures = 0;
    size_t end = c->end ? c->end : c->len;
    for (size_t k = 0; k <= c->len; k++)
        failures += check_head_end_split(c, end, k);
    size_t scanned = 0;
    for (size_t have = 1; have <= end; have++) {
        size_t got = http_head_end(c->head, have, scanned);
        if (got != (have < end ? 0 : end)) {
            print_error("%s: byte by byte: found %zu after %zu bytes\n", c->name, got, have);
            failures++;
            break;
        }
        scanned = have;
    }
    http_req_t req;
    int st = http_req_parse(c->head, end, &req);
    if (st != c->status) {
        print_error("%s: http_req_parse returned %d, want %d\n", c->name, st, c->status);
        failures++;
    } else if (st == 0 && (req.path.ptr == NULL || (req.host.ptr == NULL && req.http_minor != 0))) {
        print_error("%s: accepted without a path, or HTTP/1.1 without a Host\n", c->name);
        failures++;
    }
    /* Stripped once by the caller: the same head and status (unless there
     * are more empty lines than the limit: then the functions skip more
     * themselves, see http_req.h). */
    size_t skip = http_leading_empty_lines(c->head, c->len);
    if (skip <= end && http_leading_empty_lines(c->head + skip, c->len - skip) == 0) {
        size_t got = http_head_end(c->head + skip, c->len - skip, 0);
        int st2 = http_req_parse(c->head + skip, end - skip, &req);
        if (got != end - skip || st2 != c->status) {
            print_error("%s: stripped by the caller: head %zu, status %d\n", c->name, got, st2);
            failures++;
        }
    }
    return failures;
}

static void test_http_req_parse_rfc9112(void **state) {
    (void)state;
    int failures = 0;
    for (size_t i = 0; i < sizeof(rfc9112_cases) / sizeof(rfc9112_cases[0]); i++)
        failures += check_head_case(&rfc9112_cases[i]);
    assert_int_equal(failures, 0);
}

static void test_http_leading_empty_lines(void **state) {
    (void)state;
    static const struct {
        const char *buf;
        size_t skip;
    } cases[] = {
        {"", 0},
        {"GET", 0},
        {"\r", 0},
        {"\r\n", 2},
        {"\n", 1},
        {"\r\nGET", 2},
        {"\r\n\r", 2},
        {"\r\n\nG", 3},
        {"\r\r\n", 0},
        {" \r\n", 0},
        {"\r\n\r\n\r\n\r\n", 8},
        {"\r\n\r\n\r\n\r\n\r\n", 8},
        {"\n\n\n\n\n\n", 4},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        assert_int_equal(http_leading_empty_lines(cases[i].buf, strlen(cases[i].buf)),
                         cases[i].skip);
}

static void test_http_req_parse_after_empty_lines(void **state) {
    (void)state;
    /* The fields are the same as without the empty lines. */
    char head[sizeof(upgrade_head) + 4];
    memcpy(head, "\r\n\r\n", 4);
    memcpy(head + 4, upgrade_head, sizeof(upgrade_head));
    size_t len = strlen(head);
    assert_int_equal(http_head_end(head, len, 0), len);
    http_req_t req;
    assert_int_equal(http_req_parse(head, len, &req), 0);
    assert_string_equal(req.method_name, "GET");
    assert_true(http_slice_eq(req.path, "/ws"));
    assert_true(http_slice_eq(req.host, "127.0.0.1:9090"));
    assert_true(http_slice_eq(req.ws_protocol, "chat, tertulia.v1"));
    /* "\r\n" then "\r\n" is two empty lines, never a head's end. */
    assert_int_equal(http_head_end("\r\n\r\n", 4, 0), 0);
    assert_int_equal(http_head_end("\r\n\r\n", 4, 2), 0);
    assert_int_equal(http_head_end("\n\n", 2, 0), 0);
}

static void test_http_resp_head(void **state) {
    (void)state;
    char out[512];
    size_t n = http_resp_head(out, sizeof(out), 404, "Tue, 24 Nov 2026 19:52:32 GMT", "text/plain",
                              10, true, "X-A: b\r\n");
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
    /* Only "/" is a directory of the chat client. */
    assert_null(http_asset_find("/admin/", 7));
}

/* A table like the admin page's: a path ending in '/' is its index.html,
 * other paths match exactly, prefixes and near misses do not. */
static void test_http_asset_find_in(void **state) {
    (void)state;
    static const unsigned char x[] = "x";
    const http_asset_t table[] = {
        {"/admin/admin.js", "text/javascript", "\"1\"", x, 1},
        {"/admin/index.html", "text/html", "\"2\"", x, 1},
        {"/admin/sub/index.html", "text/html", "\"3\"", x, 1},
        {NULL, NULL, NULL, NULL, 0},
    };
    const struct {
        const char *path;
        const char *want; /* NULL: not found */
    } cases[] = {
        {"/admin/", "/admin/index.html"},
        {"/admin/index.html", "/admin/index.html"},
        {"/admin/admin.js", "/admin/admin.js"},
        {"/admin/sub/", "/admin/sub/index.html"},
        {"/admin", NULL},
        {"/admin/admin.j", NULL},
        {"/admin/admin.jsx", NULL},
        {"/admin/sub", NULL},
        {"/admin//", NULL},
        {"/", NULL},
        {"", NULL},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const http_asset_t *a = http_asset_find_in(table, cases[i].path, strlen(cases[i].path));
        if (cases[i].want == NULL) {
            assert_null(a);
        } else {
            assert_non_null(a);
            assert_string_equal(a->path, cases[i].want);
        }
    }
    /* The embedded admin table is terminated like the chat client's. */
    size_t n = 0;
    for (const http_asset_t *a = admin_assets; a->path != NULL; a++, n++)
        assert_int_equal(strncmp(a->path, "/admin/", 7), 0);
    assert_true(n < 100);
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
        cmocka_unit_test(test_http_req_parse_rfc9112),
        cmocka_unit_test(test_http_leading_empty_lines),
        cmocka_unit_test(test_http_req_parse_after_empty_lines),
        cmocka_unit_test(test_http_resp_head),
        cmocka_unit_test(test_http_asset_find),
        cmocka_unit_test(test_http_asset_find_in),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
