/* Fuzzes request-head handling the way a connection does it: the input
 * arrives in chunks (sizes taken from the first bytes), the blank line is
 * searched incrementally, each complete head is parsed, and an upgrade
 * request goes through the WebSocket handshake checks. Every slice the
 * parser returns must lie inside the head, and an accepted head must pass
 * RFC 9112's line rules as checked here independently of the parser. */
/* The checks below are the point of the harness: keep them in the
 * RelWithDebInfo build that the fuzz configuration gets by default. */
#undef NDEBUG
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http/http_req.h"
#include "ws/ws_handshake.h"

static void check_slice(http_slice_t s, const char *buf, size_t len, const http_req_t *req) {
    if (s.ptr == NULL)
        return;
    bool in_head = s.ptr >= buf && s.ptr + s.len <= buf + len;
    bool in_joined = s.ptr >= req->joined && s.ptr + s.len <= req->joined + sizeof(req->joined);
    assert(in_head || in_joined);
}

/* An accepted head, from the end of its skipped empty lines to its blank
 * line, has no CR but right before LF and no line starting with SP or HTAB;
 * and it has a Host unless it is HTTP/1.0. */
static void check_lines(const char *buf, size_t len, const http_req_t *req) {
    size_t skip = http_leading_empty_lines(buf, len);
    assert(skip <= 2 * HTTP_MAX_EMPTY_LINES);
    bool line_start = true;
    for (size_t i = skip; i < len; i++) {
        if (buf[i] == '\r')
            assert(i + 1 < len && buf[i + 1] == '\n');
        if (line_start && (buf[i] == '\r' || buf[i] == '\n'))
            break; /* the blank line that ends the head */
        if (line_start)
            assert(buf[i] != ' ' && buf[i] != '\t');
        line_start = buf[i] == '\n';
    }
    assert(req->host.ptr != NULL || (req->http_major == 1 && req->http_minor == 0));
}

static void handle_head(const char *buf, size_t len) {
    http_req_t req;
    int st = http_req_parse(buf, len, &req);
    if (st != 0) {
        assert(st == 400 || st == 431 || st == 505);
        return;
    }
    check_lines(buf, len, &req);
    check_slice(req.path, buf, len, &req);
    check_slice(req.query, buf, len, &req);
    check_slice(req.host, buf, len, &req);
    check_slice(req.upgrade, buf, len, &req);
    check_slice(req.connection, buf, len, &req);
    check_slice(req.origin, buf, len, &req);
    check_slice(req.if_none_match, buf, len, &req);
    check_slice(req.ws_key, buf, len, &req);
    check_slice(req.ws_version, buf, len, &req);
    check_slice(req.ws_protocol, buf, len, &req);
    assert(req.path.ptr != NULL && req.path.len > 0);
    ws_handshake_req_t hr = {
        .method = {req.method_name, strlen(req.method_name)},
        .upgrade = {req.upgrade.ptr, req.upgrade.len},
        .connection = {req.connection.ptr, req.connection.len},
        .key = {req.ws_key.ptr, req.ws_key.len},
        .version = {req.ws_version.ptr, req.ws_version.len},
        .protocol = {req.ws_protocol.ptr, req.ws_protocol.len},
        .http_major = req.http_major,
        .http_minor = req.http_minor,
    };
    ws_handshake_res_t res;
    if (ws_handshake_check(&hr, &res) == 0) {
        char out[512];
        size_t n = ws_handshake_response_write(&res, out, sizeof(out));
        assert(n > 0 && n < sizeof(out));
        assert(memcmp(out, "HTTP/1.1 101", 12) == 0);
    } else {
        assert(res.status >= 400 && res.status < 500 && res.reason != NULL);
    }
    (void)http_list_has_token(req.connection, "upgrade");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 2)
        return 0;
    /* First byte: chunk size (1..256); the rest is the byte stream. */
    size_t chunk = (size_t)data[0] + 1;
    data++;
    size--;
    char *buf = malloc(size + 1);
    size_t have = 0, scanned = 0, fed = 0;
    while (fed < size) {
        size_t n = size - fed < chunk ? size - fed : chunk;
        memcpy(buf + have, data + fed, n);
        have += n;
        fed += n;
        for (;;) {
            size_t end = http_head_end(buf, have, scanned);
            if (end == 0) {
                scanned = have;
                if (have > HTTP_MAX_HEAD)
                    goto out; /* the connection answers 431 and closes */
                break;
            }
            assert(end <= have);
            handle_head(buf, end);
            memmove(buf, buf + end, have - end);
            have -= end;
            scanned = 0;
        }
    }
out:
    free(buf);
    return 0;
}
