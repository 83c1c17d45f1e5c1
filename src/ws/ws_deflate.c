/* permessage-deflate (RFC 7692): the offer parser, and the two zlib streams
 * a loop needs (see ws_deflate.h for why one of each is enough). */
#include "ws/ws_deflate.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "core/xmalloc.h"

/* ---- Negotiation ------------------------------------------------------ */

/* A cursor over the header value. */
typedef struct cur_s {
    const char *p, *end;
} cur_t;

static bool is_tchar(unsigned char c) {
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return true;
    return c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static void skip_ows(cur_t *c) {
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\t'))
        c->p++;
}

/* A token at the cursor into tok (len 0 if none). */
static size_t take_token(cur_t *c, const char **tok) {
    *tok = c->p;
    while (c->p < c->end && is_tchar((unsigned char)*c->p))
        c->p++;
    return (size_t)(c->p - *tok);
}

/* A token or a quoted string, unescaped into out (cap bytes); returns its
 * length, or -1 if malformed or longer than cap. */
static int take_value(cur_t *c, char *out, size_t cap) {
    size_t n = 0;
    if (c->p < c->end && *c->p == '"') {
        c->p++;
        for (;;) {
            if (c->p >= c->end)
                return -1; /* unterminated */
            char ch = *c->p++;
            if (ch == '"')
                break;
            if (ch == '\\') {
                if (c->p >= c->end)
                    return -1;
                ch = *c->p++;
            }
            if ((unsigned char)ch < 0x20 && ch != '\t')
                return -1;
            if (n == cap)
                return -1;
            out[n++] = ch;
        }
        return (int)n;
    }
    const char *tok;
    size_t len = take_token(c, &tok);
    if (len == 0 || len > cap)
        return -1;
    memcpy(out, tok, len);
    return (int)len;
}

static bool name_is(const char *s, size_t n, const char *lit) {
    return strlen(lit) == n && strncasecmp(s, lit, n) == 0;
}

/* A window size: 8..15, decimal, no leading zero (RFC 7692 section 7.1.2). */
static int window_bits(const char *v, int n) {
    if (n == 1 && v[0] == '8')
        return 8;
    if (n == 1 && v[0] == '9')
        return 9;
    if (n == 2 && v[0] == '1' && v[1] >= '0' && v[1] <= '5')
        return 10 + (v[1] - '0');
    return -1;
}

enum { P_SNCT = 1, P_CNCT = 2, P_SMWB = 4, P_CMWB = 8 };

/* One parameter of a permessage-deflate offer; false declines the offer. */
static bool offer_param(const char *name, size_t nlen, const char *val, int vlen, unsigned *seen,
                        ws_deflate_params_t *o) {
    unsigned bit;
    if (name_is(name, nlen, "server_no_context_takeover"))
        bit = P_SNCT;
    else if (name_is(name, nlen, "client_no_context_takeover"))
        bit = P_CNCT;
    else if (name_is(name, nlen, "server_max_window_bits"))
        bit = P_SMWB;
    else if (name_is(name, nlen, "client_max_window_bits"))
        bit = P_CMWB;
    else
        return false; /* an unknown parameter declines the offer (section 7) */
    if (*seen & bit)
        return false; /* duplicated */
    *seen |= bit;
    if (bit == P_SNCT || bit == P_CNCT)
        return vlen < 0; /* these take no value */
    if (bit == P_CMWB)
        return vlen < 0 || window_bits(val, vlen) > 0; /* the value is optional */
    int bits = vlen < 0 ? -1 : window_bits(val, vlen);
    if (bits < 0)
        return false; /* server_max_window_bits needs a value */
    o->server_max_bits = (uint8_t)bits;
    o->server_bits_offered = true;
    return true;
}

/* After a syntax error: the next offer starts after the next comma outside
 * a quoted string. */
static void skip_offer(cur_t *c) {
    bool quoted = false;
    while (c->p < c->end) {
        char ch = *c->p++;
        if (quoted && ch == '\\' && c->p < c->end)
            c->p++;
        else if (ch == '"')
            quoted = !quoted;
        else if (ch == ',' && !quoted)
            return;
    }
}

/* Parses one extension at the cursor, up to and including its comma.
 * Returns true if it is an acceptable permessage-deflate offer (filled
 * into o). */
static bool parse_offer(cur_t *c, ws_deflate_params_t *o) {
    skip_ows(c);
    const char *name;
    size_t nlen = take_token(c, &name);
    bool ours = name_is(name, nlen, "permessage-deflate");
    bool ok = nlen > 0;
    unsigned seen = 0;
    *o = (ws_deflate_params_t){.server_max_bits = 15};
    for (;;) {
        skip_ows(c);
        if (!ok || c->p >= c->end || *c->p != ';')
            break;
        c->p++;
        skip_ows(c);
        const char *pname;
        size_t plen = take_token(c, &pname);
        if (plen == 0) {
            ok = false;
            break;
        }
        skip_ows(c);
        char val[16];
        int vlen = -1;
        if (c->p < c->end && *c->p == '=') {
            c->p++;
            skip_ows(c);
            vlen = take_value(c, val, sizeof(val));
            if (vlen < 0) {
                ok = false;
                break;
            }
        }
        if (ours && !offer_param(pname, plen, val, vlen, &seen, o))
            ours = false; /* declined; the rest of it is still parsed */
    }
    if (ok && c->p < c->end && *c->p != ',')
        ok = false;
    if (!ok) {
        skip_offer(c);
        return false;
    }
    if (c->p < c->end)
        c->p++; /* the comma */
    return ours;
}

bool ws_deflate_negotiate(const char *value, size_t len, ws_deflate_params_t *out) {
    *out = (ws_deflate_params_t){.server_max_bits = 15};
    if (value == NULL)
        return false;
    cur_t c = {value, value + len};
    while (c.p < c.end) {
        ws_deflate_params_t o;
        if (parse_offer(&c, &o)) {
            o.on = true;
            *out = o;
            return true;
        }
    }
    return false;
}

size_t ws_deflate_response_write(const ws_deflate_params_t *p, char *out, size_t cap) {
    if (cap > 0)
        out[0] = '\0';
    if (!p->on)
        return 0;
    char bits[32] = "";
    if (p->server_bits_offered)
        snprintf(bits, sizeof(bits), "; server_max_window_bits=%u", p->server_max_bits);
    int n = snprintf(out, cap,
                     "Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; "
                     "client_no_context_takeover%s\r\n",
                     bits);
    if (n < 0 || (size_t)n >= cap) {
        if (cap > 0)
            out[0] = '\0';
        return 0;
    }
    return (size_t)n;
}

/* ---- Compression ------------------------------------------------------ */

struct ws_deflater_s {
    z_stream z;
};

ws_deflater_t *ws_deflater_new(int level) {
    ws_deflater_t *d = xcalloc(1, sizeof(*d));
    /* Raw deflate (negative bits: no zlib header), the full 32 KiB window:
     * messages are compressed alone, so the window never outlives one. */
    if (deflateInit2(&d->z, level, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        abort(); /* out of memory (zlib's only failure here) */
    return d;
}

void ws_deflater_free(ws_deflater_t *d) {
    if (d == NULL)
        return;
    deflateEnd(&d->z);
    free(d);
}

size_t ws_deflater_compress(ws_deflater_t *d, const uint8_t *in, size_t n, uint8_t *out,
                            size_t cap) {
    z_stream *z = &d->z;
    deflateReset(z); /* no context takeover: every message starts empty */
    z->next_in = (Bytef *)(uintptr_t)in;
    z->avail_in = (uInt)n;
    z->next_out = out;
    z->avail_out = (uInt)cap;
    int r = deflate(z, Z_SYNC_FLUSH);
    /* Out of room (avail_out 0: more may be pending) means the compressed
     * form is no smaller than the caller was willing to send. */
    if ((r != Z_OK && r != Z_BUF_ERROR) || z->avail_in != 0 || z->avail_out == 0)
        return 0;
    size_t len = cap - z->avail_out;
    /* A sync flush ends with an empty stored block, 00 00 ff ff: the
     * receiver appends it again (section 7.2.1). */
    if (len < 4 || memcmp(out + len - 4, "\x00\x00\xff\xff", 4) != 0)
        return 0;
    return len - 4;
}

/* ---- Decompression ---------------------------------------------------- */

struct ws_inflater_s {
    z_stream z;
    uint8_t *buf;
    size_t cap;
    size_t last_in, last_out;
};

ws_inflater_t *ws_inflater_new(void) {
    ws_inflater_t *inf = xcalloc(1, sizeof(*inf));
    /* 15 bits whatever the client's client_max_window_bits: a larger window
     * inflates every smaller one (and zlib clients asked for 8 use 9). */
    if (inflateInit2(&inf->z, -15) != Z_OK)
        abort(); /* out of memory (zlib's only failure here) */
    return inf;
}

void ws_inflater_free(ws_inflater_t *inf) {
    if (inf == NULL)
        return;
    inflateEnd(&inf->z);
    free(inf->buf);
    free(inf);
}

size_t ws_inflater_last_in(const ws_inflater_t *inf) {
    return inf->last_in;
}

size_t ws_inflater_last_out(const ws_inflater_t *inf) {
    return inf->last_out;
}

size_t ws_inflater_capacity(const ws_inflater_t *inf) {
    return inf->cap;
}

/* Room for more output: doubles the buffer, never past limit bytes. */
static void grow(ws_inflater_t *inf, size_t limit) {
    size_t cap = inf->cap < 4096 ? 4096 : inf->cap * 2;
    if (cap > limit)
        cap = limit;
    inf->buf = xrealloc(inf->buf, cap);
    inf->cap = cap;
}

ws_inflate_result_t ws_inflater_run(ws_inflater_t *inf, const uint8_t *in, size_t n, bool text,
                                    size_t max, const uint8_t **out, size_t *out_len) {
    static const uint8_t trailer[4] = {0x00, 0x00, 0xff, 0xff};
    z_stream *z = &inf->z;
    inflateReset(z);
    z->next_in = (Bytef *)(uintptr_t)in;
    z->avail_in = (uInt)n;
    bool tail_fed = false;
    tt_utf8_state_t utf8 = TT_UTF8_ACCEPT;
    size_t len = 0, limit = max + 1; /* one byte past max shows it is too big */
    ws_inflate_result_t res = WS_INFLATE_OK;
    inf->last_in = 0;
    if (inf->cap == 0)
        grow(inf, limit);
    /* An empty payload is an empty message (some senders skip the one byte
     * 00 that an empty compressed message is). */
    for (; n > 0;) {
        if (len == inf->cap)
            grow(inf, limit); /* len < limit here: at limit the loop has ended */
        size_t room = (inf->cap < limit ? inf->cap : limit) - len;
        z->next_out = inf->buf + len;
        z->avail_out = (uInt)room;
        size_t before_in = z->avail_in;
        int r = inflate(z, Z_SYNC_FLUSH);
        size_t made = room - z->avail_out;
        if (!tail_fed)
            inf->last_in += before_in - z->avail_in;
        if (text && made) {
            utf8 = tt_utf8_feed(utf8, inf->buf + len, made);
            if (utf8 == TT_UTF8_REJECT) {
                len += made;
                res = WS_INFLATE_UTF8;
                break;
            }
        }
        len += made;
        if (len > max) {
            res = WS_INFLATE_TOO_BIG;
            break;
        }
        if (r == Z_STREAM_END)
            break; /* a final block: what follows it is not part of the message */
        if (r != Z_OK && r != Z_BUF_ERROR) {
            res = WS_INFLATE_BAD;
            break;
        }
        if (z->avail_out == 0)
            continue; /* more may come: make room */
        if (z->avail_in != 0) {
            res = WS_INFLATE_BAD; /* no progress with input and room left */
            break;
        }
        if (tail_fed) {
            /* The trailer must end the message at a block boundary (zlib
             * adds 128 to data_type there): otherwise it was truncated. */
            if (!(z->data_type & 128))
                res = WS_INFLATE_BAD;
            break;
        }
        z->next_in = (Bytef *)(uintptr_t)trailer;
        z->avail_in = sizeof(trailer);
        tail_fed = true;
    }
    inf->last_out = len;
    if (res == WS_INFLATE_OK && text && utf8 != TT_UTF8_ACCEPT)
        res = WS_INFLATE_UTF8;
    *out = inf->buf;
    *out_len = res == WS_INFLATE_OK ? len : 0;
    return res;
}
