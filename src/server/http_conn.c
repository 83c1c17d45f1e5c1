/* The HTTP/1.1 endpoint, every stream's first: request heads are parsed
 * (src/http), then a request either upgrades to WebSocket at /talking, /ws
 * (and /echo when enabled) or is served from the embedded web client. One
 * request at a time: while a response is unsent the stream stops reading,
 * and pipelined requests wait (in the kernel, or the few bytes already
 * read) until it is written. */
#include <http_parser.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "core/log.h"
#include "core/prom.h"
#include "http/http_req.h"
#include "http/http_resp.h"
#include "http/static.h"
#include "server/server_int.h"
#include "ws/ws_handshake.h"

/* Sent with HTML pages: the client runs only its own scripts and styles
 * and talks only to this origin's WebSocket. */
#define HTML_SECURITY_HEADERS                                                                      \
    "Content-Security-Policy: default-src 'self'; connect-src 'self' ws: wss:; "                   \
    "img-src 'self' data:; style-src 'self'; base-uri 'none'; frame-ancestors 'none'; "            \
    "form-action 'self'\r\n"                                                                       \
    "X-Frame-Options: DENY\r\n"                                                                    \
    "Referrer-Policy: no-referrer\r\n"

#define COMMON_HEADERS "X-Content-Type-Options: nosniff\r\n"

#define SERVER_STATUS_CASE_(n)                                                                     \
    case n:                                                                                        \
        return HTTP_STATUS_##n;
static int status_index(int status) {
    switch (status) { SERVER_HTTP_STATUSES(SERVER_STATUS_CASE_) }
    return HTTP_STATUS_OTHER;
}

void server_count_status(server_t *srv, int status) {
    srv->counters.http_responses[status_index(status)]++;
}

/* A response with a short body. Refusals close the connection (the
 * request may have left unread bytes behind it). */
void http_conn_respond(http_conn_t *c, int status, bool keep_alive, const char *extra,
                       const char *ctype, const char *body, size_t blen, bool head_only) {
    char head[1024];
    char hdrs[512];
    snprintf(hdrs, sizeof(hdrs), COMMON_HEADERS "%s", extra ? extra : "");
    size_t n = http_resp_head(head, sizeof(head), status, c->base.srv->date, ctype, (long long)blen,
                              keep_alive, hdrs);
    server_count_status(c->base.srv, status);
    tt_stream_send_copy(c->base.s, head, n);
    if (!head_only)
        tt_stream_send_copy(c->base.s, body, blen);
}

static void respond_text(http_conn_t *c, int status, bool keep_alive, const char *extra,
                         const char *body, bool head_only) {
    http_conn_respond(c, status, keep_alive, extra, "text/plain; charset=utf-8", body, strlen(body),
                      head_only);
}

static void refuse(http_conn_t *c, int status, const char *extra, const char *why) {
    char body[256];
    snprintf(body, sizeof(body), "%s\n", why);
    server_log_refusal(c->base.srv, "%s: refused with %d: %s", tt_stream_peer(c->base.s), status,
                       why);
    respond_text(c, status, false, extra, body, false);
    tt_stream_close_after_flush(c->base.s, "refused");
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

void http_conn_not_found(http_conn_t *c, const http_req_t *req) {
    tt_log_debug("%s: 404 %.*s", tt_stream_peer(c->base.s), (int)req->path.len, req->path.ptr);
    respond_text(c, 404, req->keep_alive, NULL, "not found\n", req->method == HTTP_HEAD);
    if (!req->keep_alive)
        tt_stream_close_after_flush(c->base.s, "http done");
}

void http_conn_serve_asset(http_conn_t *c, const http_req_t *req, const http_asset_t *a) {
    bool head_only = req->method == HTTP_HEAD;
    if (req->method != HTTP_GET && req->method != HTTP_HEAD) {
        refuse(c, 405, "Allow: GET, HEAD\r\n", "method not allowed: use GET or HEAD");
        return;
    }
    if (a == NULL) {
        http_conn_not_found(c, req);
        return;
    }
    bool html = strncmp(a->content_type, "text/html", 9) == 0;
    char extra[768];
    snprintf(extra, sizeof(extra), COMMON_HEADERS "ETag: %s\r\nCache-Control: no-cache\r\n%s",
             a->etag, html ? HTML_SECURITY_HEADERS : "");
    char head[1536];
    size_t n;
    if (etag_matches(req->if_none_match, a->etag)) {
        n = http_resp_head(head, sizeof(head), 304, c->base.srv->date, NULL, -1, req->keep_alive,
                           extra);
        server_count_status(c->base.srv, 304);
        tt_stream_send_copy(c->base.s, head, n);
    } else {
        n = http_resp_head(head, sizeof(head), 200, c->base.srv->date, a->content_type,
                           (long long)a->len, req->keep_alive, extra);
        server_count_status(c->base.srv, 200);
        tt_stream_send_copy(c->base.s, head, n);
        if (!head_only)
            tt_stream_send_static(c->base.s, a->data, a->len);
    }
    if (!req->keep_alive)
        tt_stream_close_after_flush(c->base.s, "http done");
}

static bool is_ops_path(http_slice_t path) {
    return http_slice_eq(path, "/metrics") || http_slice_eq(path, "/healthz") ||
           http_slice_eq(path, "/readyz");
}

static bool is_admin_path(http_slice_t path) {
    return http_slice_eq(path, "/admin") || (path.len >= 7 && memcmp(path.ptr, "/admin/", 7) == 0);
}

/* /metrics, /healthz and /readyz (metrics.c): GET or HEAD, never cached. */
static void serve_ops(http_conn_t *c, const http_req_t *req) {
    bool metrics = http_slice_eq(req->path, "/metrics");
    bool health = http_slice_eq(req->path, "/healthz");
    if (req->method != HTTP_GET && req->method != HTTP_HEAD) {
        refuse(c, 405, "Allow: GET, HEAD\r\n", "method not allowed: use GET or HEAD");
        return;
    }
    server_t *srv = c->base.srv;
    bool head_only = req->method == HTTP_HEAD;
    const char *nocache = "Cache-Control: no-store\r\n";
    if (metrics) {
        tt_prom_t p;
        if (server_metrics_text(srv, &p) == 0)
            http_conn_respond(c, 200, req->keep_alive, nocache, TT_PROM_CONTENT_TYPE, p.buf, p.len,
                              head_only);
        else
            respond_text(c, 500, req->keep_alive, nocache, "metrics too large\n", head_only);
        tt_prom_dispose(&p);
    } else if (health) {
        /* Answered by the loop: it is alive. */
        respond_text(c, 200, req->keep_alive, nocache, "ok\n", head_only);
    } else {
        char why[200], body[224];
        if (server_ready(srv, why, sizeof(why))) {
            respond_text(c, 200, req->keep_alive, nocache, "ready\n", head_only);
        } else {
            snprintf(body, sizeof(body), "not ready: %s\n", why);
            respond_text(c, 503, req->keep_alive, nocache, body, head_only);
        }
    }
    if (!req->keep_alive)
        tt_stream_close_after_flush(c->base.s, "http done");
}

static bool is_ws_path(const http_conn_t *c, http_slice_t path, bool *echo) {
    *echo = false;
    if (http_slice_eq(path, "/talking") || http_slice_eq(path, "/ws"))
        return true;
    if (c->base.srv->cfg.echo && http_slice_eq(path, "/echo")) {
        *echo = true;
        return true;
    }
    return false;
}

/* The default policy: clients that send no Origin (programs) and pages
 * served by this server (Origin's host:port equals Host) are allowed;
 * --allowed-origin adds exact origins, or "*" for any. */
static bool origin_allowed(const http_conn_t *c, const http_req_t *req) {
    http_slice_t o = req->origin;
    if (o.ptr == NULL)
        return true;
    const server_config_t *cfg = &c->base.srv->cfg;
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

static void upgrade(http_conn_t *c, const http_req_t *req, bool echo) {
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
    ip_count_t *ip;
    int st = server_ws_admit(c->base.srv, c->base.s, &ip, &full);
    if (st != 0) {
        refuse(c, st, "Retry-After: 10\r\n", full);
        return;
    }
    if (c->base.srv->cfg.deflate)
        ws_deflate_negotiate(req->ws_extensions.ptr, req->ws_extensions.len, &res.deflate);
    char out[640];
    size_t n = ws_handshake_response_write(&res, out, sizeof(out));
    tt_stream_send_copy(c->base.s, out, n);
    tt_log_debug("%s: websocket %.*s (%s%s)", tt_stream_peer(c->base.s), (int)req->path.len,
                 req->path.ptr,
                 echo     ? "echo"
                 : res.v1 ? WS_SUBPROTOCOL
                          : "legacy",
                 res.deflate.on ? ", permessage-deflate" : "");
    /* The move: from the next byte on, the stream is a WebSocket (frames
     * sent right behind the request are read as such). */
    ws_conn_adopt(c->base.srv, c->base.s, res.v1, echo, ip, &res.deflate);
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

static size_t on_read(tt_stream_t *s, uint8_t *data, size_t len) {
    http_conn_t *c = &((conn_ext_t *)tt_stream_ext(s))->http;
    server_t *srv = c->base.srv;
    /* A refused request's leftovers are discarded. */
    if (tt_stream_is_closing(s))
        return len;
    if (c->phase == HTTP_PHASE_IDLE) {
        /* Empty lines before a request line are ignored (RFC 9112 section
         * 2.2), a few of them per request; they do not start the head's
         * clock. */
        size_t skip = http_leading_empty_lines((const char *)data, len);
        for (size_t i = 0; i < skip; i++)
            c->empty_lines += data[i] == '\n';
        if (c->empty_lines > HTTP_MAX_EMPTY_LINES) {
            refuse(c, 400, NULL, "malformed request");
            return len;
        }
        if (skip > 0)
            return skip;
        if (len == 1 && data[0] == '\r')
            return 0; /* the LF of an empty line may follow */
        /* The first byte of a head: it must be complete within the head
         * timeout from now, however slowly the rest trickles in. */
        c->phase = HTTP_PHASE_HEAD;
        c->since = tt_loop_now(srv->loop);
        c->head_scanned = 0;
    }
    const char *buf = (const char *)data;
    size_t head_len = http_head_end(buf, len, c->head_scanned);
    if (head_len == 0) {
        if (head_is_garbage(data, c->head_scanned, len))
            refuse(c, 400, NULL, "malformed request");
        else if (len > HTTP_MAX_HEAD)
            refuse(c, 431, NULL, "request head too large (limit 8 KiB)");
        c->head_scanned = (uint32_t)len;
        return tt_stream_is_closing(s) ? len : 0;
    }
    c->head_scanned = 0;
    c->empty_lines = 0;
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
    bool ops = is_ops_path(req.path), admin = is_admin_path(req.path);
    if (req.has_body) {
        /* No resource here takes a request body; refuse rather than
         * parse and discard one. */
        if (ws || admin || req.method == HTTP_GET || req.method == HTTP_HEAD)
            refuse(c, 400, NULL, "request bodies are not accepted");
        else
            refuse(c, 405, "Allow: GET, HEAD\r\n", "method not allowed: use GET or HEAD");
        return len;
    }
    /* With --admin-listen, metrics, health and admin live there and
     * nowhere else; an admin address serves nothing more. */
    if (c->base.admin ? !(ops || admin) : srv->admin_listener && (ops || admin)) {
        if (ws)
            refuse(c, 404, NULL, "not found");
        else
            http_conn_not_found(c, &req);
    } else if (ws) {
        upgrade(c, &req, echo);
        return head_len;
    } else if (ops) {
        serve_ops(c, &req);
    } else if (admin) {
        admin_serve(c, &req);
    } else {
        http_conn_serve_asset(c, &req, http_asset_find(req.path.ptr, req.path.len));
    }
    if (!tt_stream_is_closing(s)) {
        /* One request at a time: read the next only once this response is
         * written (on_drain). */
        c->phase = HTTP_PHASE_RESPONDING;
        c->since = tt_loop_now(srv->loop);
        c->written = tt_stream_bytes_written(s);
        tt_stream_read_stop(s);
    }
    return head_len;
}

static void on_drain(tt_stream_t *s) {
    http_conn_t *c = &((conn_ext_t *)tt_stream_ext(s))->http;
    if (c->phase != HTTP_PHASE_RESPONDING)
        return;
    /* Idle from now on: the keep-alive timer measures idleness. */
    c->phase = HTTP_PHASE_IDLE;
    c->since = tt_loop_now(c->base.srv->loop);
    tt_stream_read_start(s);
}

static void on_eof(tt_stream_t *s) {
    /* The client is done sending (it may still read): finish the response
     * in progress, then close. */
    tt_stream_close_after_flush(s, "http done");
    tt_stream_set_hard_close(s);
}

const tt_stream_handler_t http_conn_handler = {
    .on_read = on_read,
    .on_eof = on_eof,
    .on_drain = on_drain,
};

void http_conn_init(http_conn_t *c, server_t *srv, tt_stream_t *s) {
    c->base.s = s;
    c->base.srv = srv;
    c->base.kind = EP_HTTP;
    c->phase = HTTP_PHASE_IDLE;
    c->since = tt_loop_now(srv->loop);
}

void http_conn_sweep(http_conn_t *c, uint64_t now) {
    server_t *srv = c->base.srv;
    tt_stream_t *s = c->base.s;
    unsigned limit = srv->cfg.head_timeout_ms;
    switch (c->phase) {
    case HTTP_PHASE_IDLE:
        /* An idle keep-alive connection is ordinary browser behaviour, not
         * a refusal: closed quietly. */
        if (now - c->since >= limit) {
            tt_log_debug("%s: keep-alive idle for %u ms: closing", tt_stream_peer(s), limit);
            tt_stream_abort(s, "keep-alive idle");
        }
        break;
    case HTTP_PHASE_HEAD:
        if (now - c->since >= limit) {
            srv->counters.http_head_timeouts++;
            server_log_refusal(srv, "%s: request head timeout (%u ms)", tt_stream_peer(s), limit);
            tt_stream_abort(s, "request head timeout");
        }
        break;
    case HTTP_PHASE_RESPONDING:
        if (tt_stream_bytes_written(s) != c->written) {
            c->written = tt_stream_bytes_written(s);
            c->since = now;
        } else if (now - c->since >= limit) {
            srv->counters.http_response_timeouts++;
            server_log_refusal(srv, "%s: response not read for %u ms: closing", tt_stream_peer(s),
                               limit);
            tt_stream_abort(s, "response not read");
        }
        break;
    }
}
