/* Request-head parsing on http_parser: callbacks record slices of the head;
 * headers the server does not use are skipped. */
#include "http/http_req.h"

#include <http_parser.h>
#include <limits.h>
#include <string.h>
#include <strings.h>

typedef struct parse_ctx_s {
    http_req_t *req;
    http_slice_t field; /* current header name */
    http_slice_t url;
    bool failed;
} parse_ctx_t;

size_t http_head_end(const char *buf, size_t len, size_t from) {
    /* Back up so a terminator split across two reads is still found. */
    size_t i = from > 3 ? from - 3 : 0;
    for (; i < len; i++) {
        if (buf[i] != '\n')
            continue;
        if (i + 1 < len && buf[i + 1] == '\n')
            return i + 2;
        if (i + 2 < len && buf[i + 1] == '\r' && buf[i + 2] == '\n')
            return i + 3;
    }
    return 0;
}

static bool field_is(const parse_ctx_t *ctx, const char *name) {
    size_t n = strlen(name);
    return ctx->field.len == n && strncasecmp(ctx->field.ptr, name, n) == 0;
}

/* Sets a header slice; a second occurrence is joined to the first with ", "
 * in req->joined (RFC 9110 section 5.3), so list headers sent twice count. */
static void set_header(http_req_t *req, http_slice_t *dst, const char *at, size_t len,
                       bool *failed) {
    if (dst->ptr == NULL) {
        dst->ptr = at;
        dst->len = len;
        return;
    }
    size_t need = dst->len + 2 + len;
    if (req->joined_len + need > sizeof(req->joined)) {
        *failed = true;
        return;
    }
    char *out = req->joined + req->joined_len;
    memmove(out, dst->ptr, dst->len);
    memcpy(out + dst->len, ", ", 2);
    memcpy(out + dst->len + 2, at, len);
    req->joined_len += need;
    dst->ptr = out;
    dst->len = need;
}

static int on_url(http_parser *p, const char *at, size_t len) {
    parse_ctx_t *ctx = p->data;
    ctx->url.ptr = at;
    ctx->url.len = len;
    return 0;
}

static int on_header_field(http_parser *p, const char *at, size_t len) {
    parse_ctx_t *ctx = p->data;
    ctx->field.ptr = at;
    ctx->field.len = len;
    return 0;
}

static int on_header_value(http_parser *p, const char *at, size_t len) {
    parse_ctx_t *ctx = p->data;
    http_req_t *r = ctx->req;
    http_slice_t *dst = NULL;
    if (field_is(ctx, "Host"))
        dst = &r->host;
    else if (field_is(ctx, "Upgrade"))
        dst = &r->upgrade;
    else if (field_is(ctx, "Connection"))
        dst = &r->connection;
    else if (field_is(ctx, "Origin"))
        dst = &r->origin;
    else if (field_is(ctx, "If-None-Match"))
        dst = &r->if_none_match;
    else if (field_is(ctx, "Sec-WebSocket-Key"))
        dst = &r->ws_key;
    else if (field_is(ctx, "Sec-WebSocket-Version"))
        dst = &r->ws_version;
    else if (field_is(ctx, "Sec-WebSocket-Protocol"))
        dst = &r->ws_protocol;
    if (dst != NULL)
        set_header(r, dst, at, len, &ctx->failed);
    return ctx->failed ? -1 : 0;
}

static int on_headers_complete(http_parser *p) {
    parse_ctx_t *ctx = p->data;
    http_req_t *r = ctx->req;
    r->keep_alive = http_should_keep_alive(p) != 0;
    r->has_body = (p->flags & F_CHUNKED) ||
                  (p->content_length > 0 && p->content_length != ULLONG_MAX);
    /* Stop here: the head is all we parse, a body is refused by the caller. */
    http_parser_pause(p, 1);
    return 0;
}

int http_req_parse(const char *buf, size_t head_len, http_req_t *req) {
    if (head_len > HTTP_MAX_HEAD)
        return 431;
    memset(req, 0, sizeof(*req));
    parse_ctx_t ctx = {.req = req};
    http_parser_settings settings;
    http_parser_settings_init(&settings);
    settings.on_url = on_url;
    settings.on_header_field = on_header_field;
    settings.on_header_value = on_header_value;
    settings.on_headers_complete = on_headers_complete;
    http_parser parser;
    http_parser_init(&parser, HTTP_REQUEST);
    parser.data = &ctx;
    http_parser_execute(&parser, &settings, buf, head_len);
    enum http_errno err = HTTP_PARSER_ERRNO(&parser);
    if (err != HPE_PAUSED && err != HPE_OK)
        return ctx.failed ? 431 : 400;
    if (err == HPE_OK && !parser.upgrade)
        return 400; /* the head ended without the parser seeing its end */
    if (ctx.url.ptr == NULL)
        return 400;
    req->method = (int)parser.method;
    req->method_name = http_method_str(parser.method);
    req->http_major = parser.http_major;
    req->http_minor = parser.http_minor;
    if (parser.http_major != 1)
        return 505;
    if (err == HPE_OK) {
        /* An upgrade request stops the parser before on_headers_complete's
         * pause takes effect; keep-alive does not matter once upgraded. */
        req->keep_alive = http_should_keep_alive(&parser) != 0;
    }

    struct http_parser_url u;
    http_parser_url_init(&u);
    if (ctx.url.len == 1 && ctx.url.ptr[0] == '*')
        return 400;
    if (http_parser_parse_url(ctx.url.ptr, ctx.url.len, 0, &u) != 0)
        return 400;
    if (!(u.field_set & (1 << UF_PATH)))
        return 400;
    req->path.ptr = ctx.url.ptr + u.field_data[UF_PATH].off;
    req->path.len = u.field_data[UF_PATH].len;
    if (u.field_set & (1 << UF_QUERY)) {
        req->query.ptr = ctx.url.ptr + u.field_data[UF_QUERY].off;
        req->query.len = u.field_data[UF_QUERY].len;
    }
    return 0;
}

bool http_list_has_token(http_slice_t value, const char *token) {
    if (value.ptr == NULL)
        return false;
    size_t tlen = strlen(token);
    const char *p = value.ptr, *end = value.ptr + value.len;
    while (p < end) {
        while (p < end && (*p == ' ' || *p == '\t' || *p == ','))
            p++;
        const char *start = p;
        while (p < end && *p != ',')
            p++;
        const char *stop = p;
        while (stop > start && (stop[-1] == ' ' || stop[-1] == '\t'))
            stop--;
        if ((size_t)(stop - start) == tlen && strncasecmp(start, token, tlen) == 0)
            return true;
    }
    return false;
}

bool http_slice_eq(http_slice_t s, const char *lit) {
    size_t n = strlen(lit);
    return s.ptr != NULL && s.len == n && memcmp(s.ptr, lit, n) == 0;
}
