/* HTTP/1.1 on a connection: request heads are parsed (src/http), then a
 * request either upgrades to WebSocket at /talking, /ws (and /echo when
 * enabled) or is served from the embedded web client. Requests are
 * answered in order; keep-alive is honoured. */
#include "net/net.h"

#include <http_parser.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "core/log.h"
#include "http/http_req.h"
#include "http/http_resp.h"
#include "http/static.h"
#include "ws/ws_handshake.h"

/* Sent with HTML pages: the client runs only its own scripts and styles
 * and talks only to this origin's WebSocket. */
#define HTML_SECURITY_HEADERS                                                                     \
    "Content-Security-Policy: default-src 'self'; connect-src 'self' ws: wss:; "                 \
    "img-src 'self' data:; style-src 'self'; base-uri 'none'; frame-ancestors 'none'; "          \
    "form-action 'self'\r\n"                                                                      \
    "X-Frame-Options: DENY\r\n"                                                                   \
    "Referrer-Policy: no-referrer\r\n"

#define COMMON_HEADERS "X-Content-Type-Options: nosniff\r\n"

/* A response with a short text body. Refusals close the connection (the
 * request may have left unread bytes behind it). */
static void respond_text(conn_t *c, int status, bool keep_alive, const char *extra,
                         const char *body, bool head_only) {
    char head[1024];
    char hdrs[512];
    snprintf(hdrs, sizeof(hdrs), COMMON_HEADERS "%s", extra ? extra : "");
    size_t blen = strlen(body);
    size_t n = http_resp_head(head, sizeof(head), status, c->srv->date,
                              "text/plain; charset=utf-8", (long long)blen, keep_alive, hdrs);
    conn_send_copy(c, head, n);
    if (!head_only)
        conn_send_copy(c, body, blen);
}

static void refuse(conn_t *c, int status, const char *extra, const char *why) {
    char body[256];
    snprintf(body, sizeof(body), "%s\n", why);
    server_log_refusal(c->srv, "%s: refused with %d: %s", c->peer, status, why);
    respond_text(c, status, false, extra, body, false);
    conn_close_after_flush(c, "refused");
}

static bool etag_matches(http_slice_t inm, const char *etag) {
    if (inm.ptr == NULL)
        return false;
    if (http_slice_eq(inm, "*"))
        return true;
    /* A list of entity tags; a weak one (W/"x") matches for GET/HEAD. */
    size_t elen = strlen(etag);
    const char *p = inm.ptr, *end = inm.ptr + inm.len;
    while (p < end) {
        while (p < end && (*p == ' ' || *p == ','))
            p++;
        if (end - p >= 2 && p[0] == 'W' && p[1] == '/')
            p += 2;
        if ((size_t)(end - p) >= elen && memcmp(p, etag, elen) == 0)
            return true;
        while (p < end && *p != ',')
            p++;
    }
    return false;
}

static void serve_static(conn_t *c, const http_req_t *req) {
    bool head_only = req->method == HTTP_HEAD;
    if (req->method != HTTP_GET && req->method != HTTP_HEAD) {
        refuse(c, 405, "Allow: GET, HEAD\r\n", "method not allowed: use GET or HEAD");
        return;
    }
    const http_asset_t *a = http_asset_find(req->path.ptr, req->path.len);
    if (a == NULL) {
        tt_log_debug("%s: 404 %.*s", c->peer, (int)req->path.len, req->path.ptr);
        respond_text(c, 404, req->keep_alive, NULL, "not found\n", head_only);
        if (!req->keep_alive)
            conn_close_after_flush(c, "http done");
        return;
    }
    bool html = strncmp(a->content_type, "text/html", 9) == 0;
    char extra[768];
    snprintf(extra, sizeof(extra),
             COMMON_HEADERS "ETag: %s\r\nCache-Control: no-cache\r\n%s", a->etag,
             html ? HTML_SECURITY_HEADERS : "");
    char head[1536];
    size_t n;
    if (etag_matches(req->if_none_match, a->etag)) {
        n = http_resp_head(head, sizeof(head), 304, c->srv->date, NULL, -1, req->keep_alive,
                           extra);
        conn_send_copy(c, head, n);
    } else {
        n = http_resp_head(head, sizeof(head), 200, c->srv->date, a->content_type,
                           (long long)a->len, req->keep_alive, extra);
        conn_send_copy(c, head, n);
        if (!head_only)
            conn_send_static(c, a->data, a->len);
    }
    if (!req->keep_alive)
        conn_close_after_flush(c, "http done");
}

static bool is_ws_path(const conn_t *c, http_slice_t path, bool *echo) {
    *echo = false;
    if (http_slice_eq(path, "/talking") || http_slice_eq(path, "/ws"))
        return true;
    if (c->srv->cfg.echo && http_slice_eq(path, "/echo")) {
        *echo = true;
        return true;
    }
    return false;
}

/* The default policy: clients that send no Origin (programs) and pages
 * served by this server (Origin's host:port equals Host) are allowed;
 * --allowed-origin adds exact origins, or "*" for any. */
static bool origin_allowed(const conn_t *c, const http_req_t *req) {
    http_slice_t o = req->origin;
    if (o.ptr == NULL)
        return true;
    const server_config_t *cfg = &c->srv->cfg;
    for (size_t i = 0; i < cfg->norigins; i++) {
        if (strcmp(cfg->origins[i], "*") == 0 || http_slice_eq(o, cfg->origins[i]))
            return true;
    }
    const char *p = memchr(o.ptr, ':', o.len);
    if (p == NULL || (size_t)(o.ptr + o.len - p) < 3 || p[1] != '/' || p[2] != '/')
        return false;
    http_slice_t hostport = {p + 3, (size_t)(o.ptr + o.len - (p + 3))};
    return req->host.ptr != NULL && hostport.len == req->host.len &&
           strncasecmp(hostport.ptr, req->host.ptr, hostport.len) == 0;
}

static void upgrade(conn_t *c, const http_req_t *req, bool echo) {
    ws_handshake_req_t hr = {
        .method = {req->method_name, strlen(req->method_name)},
        .upgrade = {req->upgrade.ptr, req->upgrade.len},
        .connection = {req->connection.ptr, req->connection.len},
        .key = {req->ws_key.ptr, req->ws_key.len},
        .version = {req->ws_version.ptr, req->ws_version.len},
        .protocol = {req->ws_protocol.ptr, req->ws_protocol.len},
        .http_major = req->http_major,
        .http_minor = req->http_minor,
    };
    ws_handshake_res_t res;
    if (ws_handshake_check(&hr, &res) != 0) {
        const char *extra = res.status == 426   ? "Sec-WebSocket-Version: 13\r\n"
                            : res.status == 405 ? "Allow: GET\r\n"
                                                : NULL;
        refuse(c, res.status, extra, res.reason);
        return;
    }
    if (!origin_allowed(c, req)) {
        char why[160];
        int olen = (int)(req->origin.len > 100 ? 100 : req->origin.len);
        snprintf(why, sizeof(why), "origin not allowed: %.*s", olen, req->origin.ptr);
        refuse(c, 403, NULL, why);
        return;
    }
    const char *full;
    int st = server_ws_admit(c->srv, c, &full);
    if (st != 0) {
        refuse(c, st, "Retry-After: 10\r\n", full);
        return;
    }
    char out[512];
    size_t n = ws_handshake_response_write(&res, out, sizeof(out));
    conn_send_copy(c, out, n);
    tt_log_debug("%s: websocket %.*s (%s)", c->peer, (int)req->path.len, req->path.ptr,
                 echo ? "echo" : res.v1 ? WS_SUBPROTOCOL : "legacy");
    conn_ws_start(c, res.v1, echo);
}

/* True if bytes that cannot be part of a request head arrived (a request
 * starts with a method token; heads hold no control characters but CR, LF
 * and tab), so a non-HTTP client is answered at once instead of waiting
 * for a blank line that never comes. */
static bool head_is_garbage(const uint8_t *p, size_t from, size_t len) {
    if (len > 0 && !(p[0] >= 'A' && p[0] <= 'Z'))
        return true;
    for (size_t i = from; i < len; i++)
        if ((p[i] < 0x20 && p[i] != '\r' && p[i] != '\n' && p[i] != '\t') || p[i] == 0x7F)
            return true;
    return false;
}

size_t conn_http_process(conn_t *c, uint8_t *data, size_t len) {
    const char *buf = (const char *)data;
    size_t head_len = http_head_end(buf, len, c->head_scanned);
    if (head_len == 0) {
        if (head_is_garbage(data, c->head_scanned, len))
            refuse(c, 400, NULL, "malformed request");
        else if (len > HTTP_MAX_HEAD)
            refuse(c, 431, NULL, "request head too large (limit 8 KiB)");
        c->head_scanned = len;
        return c->flags & CONN_F_CLOSING ? len : 0;
    }
    c->head_scanned = 0;
    /* A whole head: the next one (keep-alive), or the WebSocket's idle
     * time, is measured from here. */
    c->last_active = uv_now(c->srv->loop);
    http_req_t req;
    int status = http_req_parse(buf, head_len, &req);
    if (status != 0) {
        refuse(c, status, NULL,
               status == 431   ? "request head too large (limit 8 KiB)"
               : status == 505 ? "HTTP version not supported"
                               : "malformed request");
        return len;
    }
    bool echo;
    bool ws = is_ws_path(c, req.path, &echo);
    if (req.has_body) {
        /* No resource here takes a request body; refuse rather than
         * parse and discard one. */
        if (ws || req.method == HTTP_GET || req.method == HTTP_HEAD)
            refuse(c, 400, NULL, "request bodies are not accepted");
        else
            refuse(c, 405, "Allow: GET, HEAD\r\n", "method not allowed: use GET or HEAD");
        return len;
    }
    if (ws) {
        upgrade(c, &req, echo);
        return head_len;
    }
    serve_static(c, &req);
    return head_len;
}
