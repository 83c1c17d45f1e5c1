/* Tests for src/ws/ws_handshake.c: the RFC 6455 sample key, each refusal and
 * its status, token lists in Upgrade/Connection/Sec-WebSocket-Protocol, and
 * the exact bytes of the 101 response. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "ws/ws_handshake.h"

#define SAMPLE_KEY "dGhlIHNhbXBsZSBub25jZQ=="
#define SAMPLE_ACCEPT "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="

static ws_slice_t sl(const char *s) {
    return (ws_slice_t){s, s ? strlen(s) : 0};
}

/* A valid request; each test changes one field. */
static ws_handshake_req_t good_req(void) {
    ws_handshake_req_t r;
    memset(&r, 0, sizeof(r));
    r.method = sl("GET");
    r.upgrade = sl("websocket");
    r.connection = sl("Upgrade");
    r.key = sl(SAMPLE_KEY);
    r.version = sl("13");
    r.http_major = 1;
    r.http_minor = 1;
    return r;
}

static void test_ws_handshake_accept_rfc_sample(void **state) {
    (void)state;
    char out[29];
    memset(out, 'x', sizeof(out));
    ws_handshake_accept(SAMPLE_KEY, strlen(SAMPLE_KEY), out);
    assert_string_equal(out, SAMPLE_ACCEPT);
}

static void test_ws_handshake_check_accepts_the_rfc_sample(void **state) {
    (void)state;
    ws_handshake_req_t r = good_req();
    ws_handshake_res_t res;
    assert_int_equal(ws_handshake_check(&r, &res), 0);
    assert_int_equal(res.status, 101);
    assert_false(res.v1);
    assert_string_equal(res.accept, SAMPLE_ACCEPT);
}

typedef struct {
    const char *name;
    const char *method, *upgrade, *connection, *key, *version;
    int major, minor;
    int status; /* 101: accepted */
} hs_case_t;

/* NULL fields keep good_req's value; "<absent>" removes the header. */
#define ABSENT "<absent>"
static const hs_case_t hs_cases[] = {
    {"valid", NULL, NULL, NULL, NULL, NULL, 1, 1, 101},
    {"HTTP/2.0 is fine", NULL, NULL, NULL, NULL, NULL, 2, 0, 101},
    {"Upgrade in any case", NULL, "WebSocket", NULL, NULL, NULL, 1, 1, 101},
    {"Upgrade list", NULL, "h2c, WEBSOCKET", NULL, NULL, NULL, 1, 1, 101},
    {"Connection list", NULL, NULL, "keep-alive, Upgrade", NULL, NULL, 1, 1, 101},
    {"Connection lower case, no space", NULL, NULL, "keep-alive,upgrade", NULL, NULL, 1, 1, 101},
    {"Connection with tabs", NULL, NULL, "\tupgrade\t", NULL, NULL, 1, 1, 101},
    {"key with surrounding spaces", NULL, NULL, NULL, "  " SAMPLE_KEY " ", NULL, 1, 1, 101},
    {"version with spaces", NULL, NULL, NULL, NULL, " 13 ", 1, 1, 101},
    {"POST", "POST", NULL, NULL, NULL, NULL, 1, 1, 405},
    {"lower-case get", "get", NULL, NULL, NULL, NULL, 1, 1, 405},
    {"HEAD", "HEAD", NULL, NULL, NULL, NULL, 1, 1, 405},
    {"HTTP/1.0", NULL, NULL, NULL, NULL, NULL, 1, 0, 400},
    {"HTTP/0.9", NULL, NULL, NULL, NULL, NULL, 0, 9, 400},
    {"no Upgrade", NULL, ABSENT, NULL, NULL, NULL, 1, 1, 400},
    {"Upgrade: h2c", NULL, "h2c", NULL, NULL, NULL, 1, 1, 400},
    {"Upgrade: websockets", NULL, "websockets", NULL, NULL, NULL, 1, 1, 400},
    {"Upgrade: empty", NULL, "", NULL, NULL, NULL, 1, 1, 400},
    {"no Connection", NULL, NULL, ABSENT, NULL, NULL, 1, 1, 400},
    {"Connection: keep-alive", NULL, NULL, "keep-alive", NULL, NULL, 1, 1, 400},
    {"Connection: upgraded", NULL, NULL, "upgraded", NULL, NULL, 1, 1, 400},
    {"Connection: close, keep-upgrade", NULL, NULL, "close, keep-upgrade", NULL, NULL, 1, 1, 400},
    {"no key", NULL, NULL, NULL, ABSENT, NULL, 1, 1, 400},
    {"empty key", NULL, NULL, NULL, "", NULL, 1, 1, 400},
    {"key of 15 bytes", NULL, NULL, NULL, "AAAAAAAAAAAAAAAAAAAA", NULL, 1, 1, 400},
    {"key of 17 bytes", NULL, NULL, NULL, "AAAAAAAAAAAAAAAAAAAAAAA=", NULL, 1, 1, 400},
    {"key of 18 bytes", NULL, NULL, NULL, "AAAAAAAAAAAAAAAAAAAAAAAA", NULL, 1, 1, 400},
    {"key without padding", NULL, NULL, NULL, "dGhlIHNhbXBsZSBub25jZQ", NULL, 1, 1, 400},
    {"key with a bad character", NULL, NULL, NULL, "dGhlIHNhbXBsZSBub25j*Q==", NULL, 1, 1, 400},
    /* fuzz/regressions/fuzz_ws_handshake/key-inner-padding: EVP_DecodeBlock
     * alone accepts this one. */
    {"key with '=' inside", NULL, NULL, NULL, "dGhlIHNhbXBsZS=ub25jZQ==", NULL, 1, 1, 400},
    {"key with '-' (base64url)", NULL, NULL, NULL, "dGhlIHNhbXBsZS-ub25jZQ==", NULL, 1, 1, 400},
    {"key with inner space", NULL, NULL, NULL, "dGhlIHNhbXBs ZSBub25jQ==", NULL, 1, 1, 400},
    {"key of three padding chars", NULL, NULL, NULL, "dGhlIHNhbXBsZSBub25jZ===", NULL, 1, 1, 400},
    {"no version", NULL, NULL, NULL, NULL, ABSENT, 1, 1, 426},
    {"version 8", NULL, NULL, NULL, NULL, "8", 1, 1, 426},
    {"version 130", NULL, NULL, NULL, NULL, "130", 1, 1, 426},
    {"version 13, 8", NULL, NULL, NULL, NULL, "13, 8", 1, 1, 426},
};

static ws_slice_t pick(ws_slice_t dflt, const char *v) {
    if (!v)
        return dflt;
    if (strcmp(v, ABSENT) == 0)
        return (ws_slice_t){NULL, 0};
    return sl(v);
}

static void test_ws_handshake_check_table(void **state) {
    (void)state;
    for (size_t i = 0; i < sizeof(hs_cases) / sizeof(hs_cases[0]); i++) {
        const hs_case_t *c = &hs_cases[i];
        ws_handshake_req_t r = good_req();
        r.method = pick(r.method, c->method);
        r.upgrade = pick(r.upgrade, c->upgrade);
        r.connection = pick(r.connection, c->connection);
        r.key = pick(r.key, c->key);
        r.version = pick(r.version, c->version);
        r.http_major = c->major;
        r.http_minor = c->minor;
        ws_handshake_res_t res;
        int rc = ws_handshake_check(&r, &res);
        if (res.status != c->status || rc != (c->status == 101 ? 0 : -1))
            fail_msg("%s: status %d rc %d, want %d (%s)", c->name, res.status, rc, c->status,
                     res.reason ? res.reason : "-");
        if (c->status == 101) {
            assert_string_equal(res.accept, SAMPLE_ACCEPT);
        } else if (!res.reason || !res.reason[0] || strchr(res.reason, '\n')) {
            fail_msg("%s: reason must be one non-empty line", c->name);
        }
    }
}

/* Slices are not NUL-terminated: a value followed by more bytes in the same
 * buffer must be read only up to its length. */
static void test_ws_handshake_check_reads_only_the_slices(void **state) {
    (void)state;
    const char *buf = "GETX websocketX UpgradeX " SAMPLE_KEY "X 13X";
    ws_handshake_req_t r = good_req();
    r.method = (ws_slice_t){buf, 3};
    r.upgrade = (ws_slice_t){buf + 5, 9};
    r.connection = (ws_slice_t){buf + 16, 7};
    r.key = (ws_slice_t){buf + 25, 24};
    r.version = (ws_slice_t){buf + 51, 2};
    ws_handshake_res_t res;
    assert_int_equal(ws_handshake_check(&r, &res), 0);
    assert_string_equal(res.accept, SAMPLE_ACCEPT);
    r.version = (ws_slice_t){buf + 51, 3}; /* "13X" */
    assert_int_equal(ws_handshake_check(&r, &res), -1);
    assert_int_equal(res.status, 426);
}

static void test_ws_handshake_check_subprotocols(void **state) {
    (void)state;
    static const struct {
        const char *offer; /* NULL: no header */
        bool v1;
    } t[] = {
        {NULL, false},
        {"", false},
        {"tertulia.v1", true},
        {"chat, tertulia.v1", true},
        {"tertulia.v1,chat", true},
        {"chat tertulia.v1", true},
        {"  tertulia.v1  ", true},
        {"chat, superchat", false}, /* unknown only: accepted as legacy */
        {"tertulia.v2", false},
        {"tertulia.v1x", false},
        {"xtertulia.v1", false},
        {"Tertulia.V1", false}, /* subprotocol names are case-sensitive */
        {"tertulia", false},
        {",,,", false},
    };
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        ws_handshake_req_t r = good_req();
        r.protocol = t[i].offer ? sl(t[i].offer) : (ws_slice_t){NULL, 0};
        ws_handshake_res_t res;
        if (ws_handshake_check(&r, &res) != 0 || res.status != 101)
            fail_msg("offer '%s' refused: %s", t[i].offer ? t[i].offer : "(none)", res.reason);
        if (res.v1 != t[i].v1)
            fail_msg("offer '%s': v1 %d", t[i].offer ? t[i].offer : "(none)", res.v1);
    }
}

static void test_ws_handshake_response_write_bytes(void **state) {
    (void)state;
    ws_handshake_req_t r = good_req();
    ws_handshake_res_t res;
    char out[512];
    assert_int_equal(ws_handshake_check(&r, &res), 0);
    static const char plain[] = "HTTP/1.1 101 Switching Protocols\r\n"
                                "Upgrade: websocket\r\n"
                                "Connection: Upgrade\r\n"
                                "Sec-WebSocket-Accept: " SAMPLE_ACCEPT "\r\n"
                                "\r\n";
    size_t n = ws_handshake_response_write(&res, out, sizeof(out));
    assert_int_equal(n, sizeof(plain) - 1);
    assert_memory_equal(out, plain, n);

    r.protocol = sl("chat, tertulia.v1");
    assert_int_equal(ws_handshake_check(&r, &res), 0);
    static const char v1[] = "HTTP/1.1 101 Switching Protocols\r\n"
                             "Upgrade: websocket\r\n"
                             "Connection: Upgrade\r\n"
                             "Sec-WebSocket-Accept: " SAMPLE_ACCEPT "\r\n"
                             "Sec-WebSocket-Protocol: tertulia.v1\r\n"
                             "\r\n";
    n = ws_handshake_response_write(&res, out, sizeof(out));
    assert_int_equal(n, sizeof(v1) - 1);
    assert_memory_equal(out, v1, n);

    /* Too small a buffer: 0, whatever the shortfall. */
    assert_int_equal(ws_handshake_response_write(&res, out, sizeof(v1) - 1), 0);
    assert_int_equal(ws_handshake_response_write(&res, out, 10), 0);
    assert_int_equal(ws_handshake_response_write(&res, out, sizeof(v1)), sizeof(v1) - 1);
}

/* A second published example (MDN's "Writing WebSocket servers"), so the
 * RFC sample is not the only key the digest is checked on. */
static void test_ws_handshake_accept_second_key(void **state) {
    (void)state;
    char out[29];
    const char *key = "x3JJHMbDL1EzLkh9GBhXDw==";
    ws_handshake_accept(key, strlen(key), out);
    assert_string_equal(out, "HSmrc0sMlYUkAGmm5OPpG2HaGWk=");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ws_handshake_accept_rfc_sample),
        cmocka_unit_test(test_ws_handshake_accept_second_key),
        cmocka_unit_test(test_ws_handshake_check_accepts_the_rfc_sample),
        cmocka_unit_test(test_ws_handshake_check_table),
        cmocka_unit_test(test_ws_handshake_check_reads_only_the_slices),
        cmocka_unit_test(test_ws_handshake_check_subprotocols),
        cmocka_unit_test(test_ws_handshake_response_write_bytes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
