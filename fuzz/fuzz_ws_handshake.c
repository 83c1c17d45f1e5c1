/* Fuzzer for the handshake checks (src/ws/ws_handshake.c). The input is a
 * request in a compact form: two bytes of HTTP version and a response buffer
 * size, then the header values method, Upgrade, Connection, Key, Version and
 * Protocol separated by '\n' (a missing line is an absent header). Each value
 * is copied into a heap block of exactly its length, so reading past a slice
 * is caught by ASan.
 *
 * Invariants: 0 exactly with status 101; a refusal has status 400, 405 or
 * 426 and a one-line reason; on success the accept value is 28 base64
 * characters equal to ws_handshake_accept of the trimmed key, and the key
 * decodes to 16 bytes by the independent decoder below; v1 only if the offer
 * contains "tertulia.v1"; the response fits or is refused with 0. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ws/ws_handshake.h"

#include "fuzz_check.h"

#define NFIELDS 6

static int b64val(char c) {
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

/* Base64 of exactly 16 bytes: 22 alphabet characters and "==". */
static bool ref_key_ok(const char *s, size_t n) {
    while (n && (s[0] == ' ' || s[0] == '\t'))
        s++, n--;
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t'))
        n--;
    if (n != 24 || s[22] != '=' || s[23] != '=')
        return false;
    for (size_t i = 0; i < 22; i++)
        if (b64val(s[i]) < 0)
            return false;
    return true;
}

static bool contains(const char *s, size_t n, const char *needle) {
    size_t m = strlen(needle);
    for (size_t i = 0; i + m <= n; i++)
        if (memcmp(s + i, needle, m) == 0)
            return true;
    return false;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 3)
        return 0;
    ws_handshake_req_t req;
    memset(&req, 0, sizeof(req));
    req.http_major = data[0] & 3;
    req.http_minor = data[0] >> 2 & 3;
    size_t cap = data[1] | (size_t)(data[2] & 1) << 8;
    const char *rest = (const char *)data + 3;
    size_t n = size - 3;

    char *copies[NFIELDS] = {0};
    ws_slice_t *fields[NFIELDS] = {&req.method, &req.upgrade, &req.connection,
                                   &req.key,    &req.version, &req.protocol};
    size_t at = 0;
    for (size_t f = 0; f < NFIELDS && at <= n; f++) {
        const char *nl = memchr(rest + at, '\n', n - at);
        size_t len = nl ? (size_t)(nl - (rest + at)) : n - at;
        copies[f] = malloc(len ? len : 1);
        CHECK(copies[f]);
        memcpy(copies[f], rest + at, len);
        *fields[f] = (ws_slice_t){copies[f], len};
        at += len + 1;
        if (!nl)
            break;
    }

    ws_handshake_res_t res;
    memset(&res, 0xA5, sizeof(res));
    int rc = ws_handshake_check(&req, &res);
    if (rc == 0) {
        CHECK(res.status == 101);
        CHECK(req.method.len == 3 && memcmp(req.method.ptr, "GET", 3) == 0);
        CHECK(req.http_major > 1 || (req.http_major == 1 && req.http_minor >= 1));
        CHECK(ref_key_ok(req.key.ptr, req.key.len));
        CHECK(strlen(res.accept) == 28);
        for (size_t i = 0; i < 28; i++)
            CHECK(b64val(res.accept[i]) >= 0 || (i == 27 && res.accept[i] == '='));
        /* The accept value is the digest of the key as sent, trimmed. */
        const char *k = req.key.ptr;
        size_t kn = req.key.len;
        while (kn && (*k == ' ' || *k == '\t'))
            k++, kn--;
        char acc[29];
        ws_handshake_accept(k, 24, acc);
        CHECK(strcmp(acc, res.accept) == 0);
        CHECK(!res.v1 ||
              (req.protocol.ptr && contains(req.protocol.ptr, req.protocol.len, WS_SUBPROTOCOL)));
        char *out = malloc(cap ? cap : 1);
        CHECK(out);
        size_t w = ws_handshake_response_write(&res, out, cap);
        if (w) {
            CHECK(w < cap && out[w] == '\0');
            CHECK(memcmp(out, "HTTP/1.1 101 ", 13) == 0);
            CHECK(memcmp(out + w - 4, "\r\n\r\n", 4) == 0);
            CHECK(contains(out, w, res.accept));
            CHECK(res.v1 == contains(out, w, "Sec-WebSocket-Protocol: " WS_SUBPROTOCOL "\r\n"));
        }
        free(out);
    } else {
        CHECK(rc == -1);
        CHECK(res.status == 400 || res.status == 405 || res.status == 426);
        CHECK(res.reason && res.reason[0] && !strchr(res.reason, '\n'));
        if (res.status == 405)
            CHECK(!(req.method.len == 3 && memcmp(req.method.ptr, "GET", 3) == 0));
    }
    for (size_t f = 0; f < NFIELDS; f++)
        free(copies[f]);
    return 0;
}
