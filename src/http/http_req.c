/* Request-head parsing on http_parser: callbacks record slices of the head;
 * headers the server does not use are skipped. A strict pass over the raw
 * head runs first (head_check), for the refusals RFC 9112 requires that
 * http_parser's lenient defaults do not make. */
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

size_t http_leading_empty_lines(const char *buf, size_t len) {
    size_t n = 0;
    for (int lines = 0; lines < HTTP_MAX_EMPTY_LINES; lines++) {
        if (n < len && buf[n] == '\n')
            n += 1;
        else if (n + 1 < len && buf[n] == '\r' && buf[n + 1] == '\n')
            n += 2;
        else
            break;
    }
    return n;
}

size_t http_head_end(const char *buf, size_t len, size_t from) {
    /* Back up so a terminator split across two reads is still found, but
     * never into the leading empty lines: their line ends are not a blank
     * line after a head. */
    size_t i = from > 3 ? from - 3 : 0;
    size_t skip = http_leading_empty_lines(buf, len);
    if (i < skip)
        i = skip;
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
    else if (field_is(ctx, "Authorization"))
        dst = &r->authorization;
    else if (field_is(ctx, "Sec-WebSocket-Key"))
        dst = &r->ws_key;
    else if (field_is(ctx, "Sec-WebSocket-Version"))
        dst = &r->ws_version;
    else if (field_is(ctx, "Sec-WebSocket-Protocol"))
        dst = &r->ws_protocol;
    else if (field_is(ctx, "Sec-WebSocket-Extensions"))
        dst = &r->ws_extensions;
    if (dst != NULL)
        set_header(r, dst, at, len, &ctx->failed);
    return ctx->failed ? -1 : 0;
}

static int on_headers_complete(http_parser *p) {
    parse_ctx_t *ctx = p->data;
    http_req_t *r = ctx->req;
    r->keep_alive = http_should_keep_alive(p) != 0;
    r->has_body =
        (p->flags & F_CHUNKED) || (p->content_length > 0 && p->content_length != ULLONG_MAX);
    /* Stop here: the head is all we parse, a body is refused by the caller. */
    http_parser_pause(p, 1);
    return 0;
}

/* RFC 9110 section 5.6.2: tchar, the characters of a token (method, field
 * name). */
static bool is_tchar(unsigned char c) {
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return true;
    return c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

/* The characters of uri-host [":" port] (RFC 3986: reg-name, IP literals,
 * percent-encoding); a Host value with any other is invalid (RFC 9112
 * section 3.2). Only the characters are checked, not the structure. */
static bool is_host_char(unsigned char c) {
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return true;
    return c != '\0' && strchr("-._~%!$&'()*+,;=:[]", c) != NULL;
}

static bool slice_ieq(const char *p, size_t n, const char *lit) {
    return strlen(lit) == n && strncasecmp(p, lit, n) == 0;
}

/* What head_check learns about the fields it polices. */
typedef struct head_facts_s {
    int http_major, http_minor;
    unsigned hosts;
    bool has_length, has_te, te_chunked_last;
    unsigned long long length;
} head_facts_t;

/* The request line: method SP request-target SP HTTP-version, single spaces
 * (RFC 9112 section 3). The version's digits are kept for the Host rule;
 * whether it is supported is http_parser's and http_req_parse's business. */
static bool request_line_ok(const char *p, size_t n, head_facts_t *f) {
    size_t i = 0;
    while (i < n && is_tchar((unsigned char)p[i]))
        i++;
    size_t mlen = i;
    if (mlen == 0 || i >= n || p[i] != ' ')
        return false;
    i++;
    const char *t = p + i;
    while (i < n && (unsigned char)p[i] > 0x20 && (unsigned char)p[i] < 0x7F)
        i++;
    size_t tlen = (size_t)(p + i - t);
    if (tlen == 0 || i >= n || p[i] != ' ')
        return false;
    i++;
    if (n - i != 8 || memcmp(p + i, "HTTP/", 5) != 0 || p[i + 6] != '.' || p[i + 5] < '0' ||
        p[i + 5] > '9' || p[i + 7] < '0' || p[i + 7] > '9')
        return false;
    f->http_major = p[i + 5] - '0';
    f->http_minor = p[i + 7] - '0';

    /* The request-target's form (section 3.2). CONNECT takes only the
     * authority-form (host:port, so no "/"); the others the origin-form or
     * the absolute-form, whose scheme is checked here and the rest by
     * http_parser_parse_url. */
    if (mlen == 7 && memcmp(p, "CONNECT", 7) == 0)
        return memchr(t, '/', tlen) == NULL && !(tlen == 1 && t[0] == '*');
    if (t[0] == '/')
        return true;
    if (tlen == 1 && t[0] == '*')
        return true; /* the asterisk-form: valid, refused later as not served */
    if (!((t[0] >= 'a' && t[0] <= 'z') || (t[0] >= 'A' && t[0] <= 'Z')))
        return false;
    for (size_t k = 1; k < tlen; k++) {
        unsigned char c = (unsigned char)t[k];
        if (c == ':')
            return true;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '+' || c == '-' || c == '.'))
            return false;
    }
    return false;
}

/* Content-Length = 1*DIGIT (RFC 9110 section 8.6), below 2^64. A list such
 * as "5, 5" is refused too: one value per field, as clients send it. */
static bool parse_length(const char *v, size_t n, unsigned long long *out) {
    if (n == 0)
        return false;
    unsigned long long x = 0;
    for (size_t i = 0; i < n; i++) {
        if (v[i] < '0' || v[i] > '9')
            return false;
        unsigned d = (unsigned)(v[i] - '0');
        if (x > (ULLONG_MAX - d) / 10)
            return false;
        x = x * 10 + d;
    }
    *out = x;
    return true;
}

/* One field line: field-name ":" OWS field-value OWS (RFC 9112 section 5). */
static bool field_line_ok(const char *p, size_t n, head_facts_t *f) {
    /* A leading SP or HTAB is an obsolete line fold (section 5.2), or, on
     * the first field line, whitespace after the request line (section
     * 2.2): both refused rather than unfolded. */
    if (p[0] == ' ' || p[0] == '\t')
        return false;
    size_t i = 0;
    while (i < n && is_tchar((unsigned char)p[i]))
        i++;
    size_t nlen = i;
    /* No whitespace before the colon (section 5.1), no empty name. */
    if (nlen == 0 || i >= n || p[i] != ':')
        return false;
    for (size_t k = i + 1; k < n; k++) {
        unsigned char c = (unsigned char)p[k];
        if ((c < 0x20 && c != '\t') || c == 0x7F)
            return false; /* CTLs such as NUL are never field content */
    }
    const char *v = p + i + 1, *end = p + n;
    while (v < end && (*v == ' ' || *v == '\t'))
        v++;
    while (end > v && (end[-1] == ' ' || end[-1] == '\t'))
        end--;
    size_t vlen = (size_t)(end - v);

    if (slice_ieq(p, nlen, "Host")) {
        f->hosts++;
        for (size_t k = 0; k < vlen; k++)
            if (!is_host_char((unsigned char)v[k]))
                return false;
    } else if (slice_ieq(p, nlen, "Content-Length")) {
        unsigned long long len;
        if (!parse_length(v, vlen, &len) || (f->has_length && len != f->length))
            return false;
        f->has_length = true;
        f->length = len;
    } else if (slice_ieq(p, nlen, "Transfer-Encoding")) {
        /* Lines of a list field add up in order: the last coding of the
         * last line is the final one. */
        const char *last = v;
        for (const char *q = v; q < end; q++)
            if (*q == ',')
                last = q + 1;
        while (last < end && (*last == ' ' || *last == '\t'))
            last++;
        f->has_te = true;
        f->te_chunked_last = slice_ieq(last, (size_t)(end - last), "chunked");
    }
    return true;
}

/* The strict pass: walks the head line by line once (O(n)), up to and
 * including its blank line. Returns 0 or 400. */
static int head_check(const char *buf, size_t len) {
    head_facts_t f = {0};
    const char *p = buf, *end = buf + len;
    bool first = true;
    for (;;) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        if (nl == NULL)
            return 400; /* no blank line: not a whole head */
        size_t n = (size_t)(nl - p);
        if (n > 0 && p[n - 1] == '\r')
            n--;
        /* The only CR allowed is the one right before LF (section 2.2). */
        if (memchr(p, '\r', n) != NULL)
            return 400;
        if (n == 0) {
            if (first)
                return 400; /* an empty line beyond HTTP_MAX_EMPTY_LINES */
            break;
        }
        if (first ? !request_line_ok(p, n, &f) : !field_line_ok(p, n, &f))
            return 400;
        first = false;
        p = nl + 1;
    }
    if (f.hosts > 1 || (f.hosts == 0 && f.http_major == 1 && f.http_minor >= 1))
        return 400; /* section 3.2 */
    if (f.has_te && (f.has_length || !f.te_chunked_last))
        return 400; /* sections 6.1 and 6.3: the body's length would be ambiguous */
    return 0;
}

int http_req_parse(const char *buf, size_t head_len, http_req_t *req) {
    if (head_len > HTTP_MAX_HEAD)
        return 431;
    memset(req, 0, sizeof(*req));
    size_t skip = http_leading_empty_lines(buf, head_len);
    buf += skip;
    head_len -= skip;
    int st = head_check(buf, head_len);
    if (st != 0)
        return st;
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
