/* lg_codec — client-side RFC 6455 framing and handshake check, and the JSON field scan.
 * See lg_codec.h for the contract. Only OpenSSL is used, for SHA-1 and base64 of the accept
 * key, and zlib to inflate permessage-deflate messages; everything else is a few loops over
 * bytes. */
#include "lg_codec.h"

#include <openssl/evp.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <zlib.h>

#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#define HEAD_MAX 8192

uint64_t lg_rand_next(uint64_t *state) {
    uint64_t x = *state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    return x * 0x2545F4914F6CDD1DULL;
}

void lg_ws_key_make(char key[LG_WS_KEY_LEN + 1], uint64_t *rng) {
    unsigned char raw[16];
    uint64_t a = lg_rand_next(rng), b = lg_rand_next(rng);
    memcpy(raw, &a, 8);
    memcpy(raw + 8, &b, 8);
    EVP_EncodeBlock((unsigned char *)key, raw, 16);
    key[LG_WS_KEY_LEN] = '\0';
}

int lg_ws_request_build(char *out, size_t cap, const char *hostport, const char *path,
                        const char *key, bool deflate, const char *protocol) {
    int n = snprintf(out, cap,
                     "GET %s HTTP/1.1\r\n"
                     "Host: %s\r\n"
                     "Upgrade: websocket\r\n"
                     "Connection: Upgrade\r\n"
                     "Sec-WebSocket-Key: %s\r\n"
                     "Sec-WebSocket-Version: 13\r\n"
                     "%s%s%s%s"
                     "\r\n",
                     path, hostport, key,
                     deflate ? "Sec-WebSocket-Extensions: " LG_PMD_OFFER "\r\n" : "",
                     protocol ? "Sec-WebSocket-Protocol: " : "", protocol ? protocol : "",
                     protocol ? "\r\n" : "");
    return (n < 0 || (size_t)n >= cap) ? -1 : n;
}

static void accept_for(const char *key, char out[29]) {
    char cat[LG_WS_KEY_LEN + sizeof WS_GUID];
    unsigned char digest[SHA_DIGEST_LENGTH];
    memcpy(cat, key, LG_WS_KEY_LEN);
    memcpy(cat + LG_WS_KEY_LEN, WS_GUID, sizeof WS_GUID - 1);
    SHA1((const unsigned char *)cat, LG_WS_KEY_LEN + sizeof WS_GUID - 1, digest);
    EVP_EncodeBlock((unsigned char *)out, digest, SHA_DIGEST_LENGTH);
}

/* True when the comma-separated header value v (length n) lists token, case-insensitively. */
static bool list_has(const char *v, size_t n, const char *token) {
    size_t tl = strlen(token), i = 0;
    while (i < n) {
        while (i < n && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
            i++;
        size_t s = i;
        while (i < n && v[i] != ',')
            i++;
        size_t e = i;
        while (e > s && (v[e - 1] == ' ' || v[e - 1] == '\t'))
            e--;
        if (e - s == tl && strncasecmp(v + s, token, tl) == 0)
            return true;
    }
    return false;
}

/* Trims spaces and tabs from both ends of [*s, *e). */
static void trim(const char **s, const char **e) {
    while (*s < *e && (**s == ' ' || **s == '\t'))
        (*s)++;
    while (*e > *s && ((*e)[-1] == ' ' || (*e)[-1] == '\t'))
        (*e)--;
}

static bool token_is(const char *s, const char *e, const char *t) {
    size_t n = strlen(t);
    return (size_t)(e - s) == n && strncasecmp(s, t, n) == 0;
}

int lg_pmd_response_check(const char *v, size_t n, const char **err) {
    const char *end = v + n;
    if (memchr(v, ',', n)) {
        *err = "server accepted more than one extension";
        return -1;
    }
    const char *s = v, *e = memchr(v, ';', n);
    if (!e)
        e = end;
    trim(&s, &e);
    if (!token_is(s, e, "permessage-deflate")) {
        *err = "server accepted an extension that is not permessage-deflate";
        return -1;
    }
    bool snct = false, cnct = false, smwb = false;
    while (e < end) {
        s = e + 1;
        e = memchr(s, ';', (size_t)(end - s));
        if (!e)
            e = end;
        const char *ps = s, *pe = e;
        trim(&ps, &pe);
        const char *eq = memchr(ps, '=', (size_t)(pe - ps));
        const char *ne = eq ? eq : pe, *vs = eq ? eq + 1 : pe, *ve = pe;
        trim(&ps, &ne);
        trim(&vs, &ve);
        if (ve - vs >= 2 && *vs == '"' && ve[-1] == '"') {
            vs++;
            ve--;
        }
        bool *seen = NULL;
        if (token_is(ps, ne, "server_no_context_takeover"))
            seen = &snct;
        else if (token_is(ps, ne, "client_no_context_takeover"))
            seen = &cnct;
        else if (token_is(ps, ne, "server_max_window_bits"))
            seen = &smwb;
        if (!seen) {
            *err = "server answered permessage-deflate with a parameter not offered";
            return -1;
        }
        if (*seen) {
            *err = "server answered permessage-deflate with a duplicated parameter";
            return -1;
        }
        *seen = true;
        bool valued = seen == &smwb;
        if (valued != (eq != NULL)) {
            *err = "server answered a permessage-deflate parameter with a wrong value";
            return -1;
        }
        if (valued) {
            int bits = 0;
            for (const char *q = vs; q < ve; q++)
                bits = (*q >= '0' && *q <= '9' && bits < 100) ? bits * 10 + (*q - '0') : 1000;
            if (ve == vs || *vs == '0' || bits < 8 || bits > 15) {
                *err = "server answered server_max_window_bits out of 8..15";
                return -1;
            }
        }
    }
    if (!snct) {
        *err = "server accepted permessage-deflate without server_no_context_takeover";
        return -1;
    }
    return 0;
}

long lg_ws_response_check(const char *buf, size_t len, const char *key, bool deflate,
                          const char *protocol, const char **err) {
    const char *end = memmem(buf, len < HEAD_MAX ? len : HEAD_MAX, "\r\n\r\n", 4);
    if (!end) {
        if (len >= HEAD_MAX) {
            *err = "handshake response head too long";
            return -1;
        }
        return LG_INCOMPLETE;
    }
    size_t head = (size_t)(end - buf) + 4;
    if (head < 12 || memcmp(buf, "HTTP/1.1 ", 9) != 0) {
        *err = "handshake response is not HTTP/1.1";
        return -1;
    }
    if (memcmp(buf + 9, "101", 3) != 0) {
        *err = "handshake refused (status is not 101)";
        return -1;
    }
    char want[29];
    accept_for(key, want);
    bool upgrade = false, connection = false, accept = false;
    const char *ext = NULL;
    size_t ext_len = 0;
    int exts = 0, protos = 0;
    bool proto_ok = false;
    const char *line = (const char *)memchr(buf, '\n', head) + 1;
    while (line < end) {
        const char *eol = memchr(line, '\r', (size_t)(end + 2 - line));
        const char *colon = memchr(line, ':', (size_t)(eol - line));
        if (colon) {
            size_t nl = (size_t)(colon - line);
            const char *v = colon + 1;
            while (v < eol && (*v == ' ' || *v == '\t'))
                v++;
            size_t vl = (size_t)(eol - v);
            while (vl && (v[vl - 1] == ' ' || v[vl - 1] == '\t'))
                vl--;
            if (nl == 7 && strncasecmp(line, "upgrade", 7) == 0)
                upgrade = vl == 9 && strncasecmp(v, "websocket", 9) == 0;
            else if (nl == 10 && strncasecmp(line, "connection", 10) == 0)
                connection = list_has(v, vl, "upgrade");
            else if (nl == 20 && strncasecmp(line, "sec-websocket-accept", 20) == 0)
                accept = vl == 28 && memcmp(v, want, 28) == 0;
            else if (nl == 24 && strncasecmp(line, "sec-websocket-extensions", 24) == 0) {
                ext = v;
                ext_len = vl;
                exts++;
            } else if (nl == 22 && strncasecmp(line, "sec-websocket-protocol", 22) == 0) {
                protos++;
                proto_ok = protocol && vl == strlen(protocol) && memcmp(v, protocol, vl) == 0;
            }
        }
        line = eol + 2;
    }
    if (!upgrade || !connection) {
        *err = "handshake response lacks Upgrade: websocket / Connection: upgrade";
        return -1;
    }
    if (!accept) {
        *err = "handshake response has a wrong or missing Sec-WebSocket-Accept";
        return -1;
    }
    if (!protocol && protos) {
        *err = "handshake response selects a subprotocol that was not offered";
        return -1;
    }
    if (protocol && (protos != 1 || !proto_ok)) {
        *err = protos ? "handshake response selects another subprotocol than the one offered"
                      : "server did not select the subprotocol offered";
        return -1;
    }
    if (!deflate && exts) {
        *err = "handshake response names an extension that was not offered";
        return -1;
    }
    if (deflate && exts != 1) {
        *err = exts ? "handshake response has more than one Sec-WebSocket-Extensions"
                    : "server declined permessage-deflate";
        return -1;
    }
    if (deflate && lg_pmd_response_check(ext, ext_len, err) < 0)
        return -1;
    return (long)head;
}

size_t lg_ws_frame_encode(uint8_t *out, uint8_t opcode, const void *payload, size_t len,
                          uint32_t mask) {
    size_t h = 0;
    out[h++] = (uint8_t)(0x80 | opcode);
    if (len < 126) {
        out[h++] = (uint8_t)(0x80 | len);
    } else if (len <= 0xFFFF) {
        out[h++] = 0x80 | 126;
        out[h++] = (uint8_t)(len >> 8);
        out[h++] = (uint8_t)len;
    } else {
        out[h++] = 0x80 | 127;
        for (int i = 7; i >= 0; i--)
            out[h++] = (uint8_t)((uint64_t)len >> (8 * i));
    }
    uint8_t m[4];
    memcpy(m, &mask, 4);
    memcpy(out + h, m, 4);
    h += 4;
    const uint8_t *p = payload;
    uint8_t *o = out + h;
    size_t i = 0;
    /* Eight bytes at a time: the mask repeats every four, so a doubled mask word covers it. */
    uint64_t m8 = (uint64_t)mask | ((uint64_t)mask << 32);
    for (; i + 8 <= len; i += 8) {
        uint64_t v;
        memcpy(&v, p + i, 8);
        v ^= m8;
        memcpy(o + i, &v, 8);
    }
    for (; i < len; i++)
        o[i] = p[i] ^ m[i & 3];
    return h + len;
}

long lg_ws_frame_decode(const uint8_t *buf, size_t len, uint64_t max_payload, bool rsv1_ok,
                        lg_frame_t *f, const char **err) {
    if (len < 2)
        return LG_INCOMPLETE;
    uint8_t b0 = buf[0], b1 = buf[1];
    uint8_t op = b0 & 0x0F;
    bool rsv1 = b0 & 0x40;
    if ((b0 & 0x30) || (rsv1 && !rsv1_ok)) {
        *err = "server frame has reserved bits set";
        return -1;
    }
    if (rsv1 && (op == LG_OP_CONT || op >= LG_OP_CLOSE)) {
        *err = "server set RSV1 on a continuation or control frame";
        return -1;
    }
    if (b1 & 0x80) {
        *err = "server frame is masked";
        return -1;
    }
    if (!(op <= LG_OP_BINARY || (op >= LG_OP_CLOSE && op <= LG_OP_PONG))) {
        *err = "server frame has an unknown opcode";
        return -1;
    }
    uint64_t plen = b1 & 0x7F;
    size_t h = 2;
    if (plen == 126) {
        if (len < 4)
            return LG_INCOMPLETE;
        plen = ((uint64_t)buf[2] << 8) | buf[3];
        h = 4;
        if (plen < 126) {
            *err = "server frame length is not minimally encoded";
            return -1;
        }
    } else if (plen == 127) {
        if (len < 10)
            return LG_INCOMPLETE;
        plen = 0;
        for (int i = 2; i < 10; i++)
            plen = (plen << 8) | buf[i];
        h = 10;
        if (plen >> 63 || plen <= 0xFFFF) {
            *err = "server frame length is not minimally encoded";
            return -1;
        }
    }
    bool fin = b0 & 0x80;
    if (op >= LG_OP_CLOSE && (!fin || plen > 125)) {
        *err = "server control frame is fragmented or longer than 125 bytes";
        return -1;
    }
    if (plen > max_payload) {
        *err = "server frame is larger than the generator accepts";
        return -1;
    }
    if (len - h < plen)
        return LG_INCOMPLETE;
    f->fin = fin;
    f->rsv1 = rsv1;
    f->opcode = op;
    f->payload = buf + h;
    f->len = plen;
    return (long)(h + plen);
}

int lg_pmd_inflate(z_stream *z, const uint8_t *in, size_t n, uint8_t *out, size_t cap, size_t *outn,
                   const char **err) {
    static const uint8_t tail[4] = {0x00, 0x00, 0xff, 0xff};
    if (inflateReset(z) != Z_OK) {
        *err = "inflateReset failed";
        return -1;
    }
    z->next_out = out;
    z->avail_out = (uInt)cap;
    /* The message, then the tail: two calls, so the payload is never copied. */
    for (int part = 0; part < 2; part++) {
        z->next_in = (Bytef *)(part ? tail : in);
        z->avail_in = (uInt)(part ? sizeof tail : n);
        while (z->avail_in) {
            int rc = inflate(z, Z_SYNC_FLUSH);
            if (rc == Z_STREAM_END) {
                /* A final block (BFINAL) is allowed; only the tail may follow it. */
                if (part == 0 && z->avail_in) {
                    *err = "compressed message has data after its final block";
                    return -1;
                }
                *outn = cap - z->avail_out;
                return 0;
            }
            if (rc == Z_BUF_ERROR && z->avail_out == 0) {
                *err = "compressed message inflates past the generator's limit";
                return -1;
            }
            if (rc != Z_OK) {
                *err = "compressed message does not inflate";
                return -1;
            }
        }
    }
    /* Everything consumed; output may still be pending if out filled exactly. */
    if (z->avail_out == 0) {
        uint8_t probe;
        z->next_out = &probe;
        z->avail_out = 1;
        int rc = inflate(z, Z_SYNC_FLUSH);
        if (z->avail_out == 0 || (rc != Z_BUF_ERROR && rc != Z_OK && rc != Z_STREAM_END)) {
            *err = "compressed message inflates past the generator's limit";
            return -1;
        }
        z->avail_out = 0;
    }
    *outn = cap - z->avail_out;
    return 0;
}

/* --- JSON scan ------------------------------------------------------------------------- */

typedef struct {
    const char *p, *end;
} cur_t;

static void ws_skip(cur_t *c) {
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r'))
        c->p++;
}

/* At an opening quote: records the raw span up to the closing quote and steps past it.
 * memchr does the scanning (this is the generator's hottest loop); a span holding a backslash
 * is walked again byte by byte, since an escaped quote does not end it. */
static int scan_string(cur_t *c, lg_str_t *s) {
    if (c->p >= c->end || *c->p != '"')
        return -1;
    const char *start = ++c->p;
    const char *q = memchr(start, '"', (size_t)(c->end - start));
    if (!q)
        return -1;
    bool esc = memchr(start, '\\', (size_t)(q - start)) != NULL;
    if (esc) {
        const char *p = start;
        while (p < c->end && *p != '"')
            p += *p == '\\' ? 2 : 1;
        if (p >= c->end)
            return -1;
        q = p;
    }
    /* Raw control characters are not looked for: every string the generator reads it compares
     * byte for byte with what it expects, which catches them as well. */
    s->p = start;
    s->n = (uint32_t)(q - start);
    s->present = true;
    s->escaped = esc;
    c->p = q + 1;
    return 0;
}

static bool is_number_char(char ch) {
    return (ch >= '0' && ch <= '9') || ch == '-' || ch == '+' || ch == '.' || ch == 'e' ||
           ch == 'E';
}

/* Skips any one JSON value. Nesting is bounded so hostile input cannot run the stack down. */
static int skip_value(cur_t *c, int depth) {
    ws_skip(c);
    if (c->p >= c->end || depth > 32)
        return -1;
    char ch = *c->p;
    if (ch == '"') {
        lg_str_t s;
        return scan_string(c, &s);
    }
    if (ch == '{' || ch == '[') {
        char close = ch == '{' ? '}' : ']';
        c->p++;
        ws_skip(c);
        if (c->p < c->end && *c->p == close) {
            c->p++;
            return 0;
        }
        for (;;) {
            if (ch == '{') {
                lg_str_t k;
                ws_skip(c);
                if (scan_string(c, &k) < 0)
                    return -1;
                ws_skip(c);
                if (c->p >= c->end || *c->p != ':')
                    return -1;
                c->p++;
            }
            if (skip_value(c, depth + 1) < 0)
                return -1;
            ws_skip(c);
            if (c->p >= c->end)
                return -1;
            if (*c->p == ',') {
                c->p++;
                continue;
            }
            if (*c->p == close) {
                c->p++;
                return 0;
            }
            return -1;
        }
    }
    /* true, false, null, or a number: a run of the characters numbers are made of */
    static const char *const words[] = {"true", "false", "null"};
    for (int i = 0; i < 3; i++) {
        size_t n = strlen(words[i]);
        if ((size_t)(c->end - c->p) >= n && memcmp(c->p, words[i], n) == 0) {
            c->p += n;
            return 0;
        }
    }
    const char *s = c->p;
    while (c->p < c->end && is_number_char(*c->p))
        c->p++;
    return c->p > s ? 0 : -1;
}

static bool key_is(const lg_str_t *k, const char *name) {
    size_t n = strlen(name);
    return k->n == n && memcmp(k->p, name, n) == 0;
}

/* Scans an object; at depth 0 it records the top-level fields, at depth 1 (inside "message")
 * only "text". */
static int scan_object(cur_t *c, lg_msg_t *m, int depth) {
    ws_skip(c);
    if (c->p >= c->end || *c->p != '{')
        return -1;
    c->p++;
    ws_skip(c);
    if (c->p < c->end && *c->p == '}') {
        c->p++;
        return 0;
    }
    for (;;) {
        lg_str_t k = {0};
        ws_skip(c);
        if (scan_string(c, &k) < 0)
            return -1;
        ws_skip(c);
        if (c->p >= c->end || *c->p != ':')
            return -1;
        c->p++;
        ws_skip(c);
        if (c->p >= c->end)
            return -1;
        int rc;
        lg_str_t *field = NULL;
        if (depth == 0 && *c->p == '"')
            field = key_is(&k, "type")       ? &m->type
                    : key_is(&k, "from")     ? &m->from
                    : key_is(&k, "to")       ? &m->to
                    : key_is(&k, "room")     ? &m->room
                    : key_is(&k, "nickname") ? &m->nickname
                    : key_is(&k, "state")    ? &m->state
                                             : NULL;
        if (field) {
            rc = scan_string(c, field);
        } else if (depth == 1 && *c->p == '"' && key_is(&k, "text")) {
            rc = scan_string(c, &m->text);
        } else if (depth == 0 && *c->p == '{' && key_is(&k, "message")) {
            rc = scan_object(c, m, 1);
        } else if (depth == 0 && *c->p >= '0' && *c->p <= '9' && key_is(&k, "id")) {
            uint64_t v = 0;
            while (c->p < c->end && *c->p >= '0' && *c->p <= '9')
                v = v * 10 + (uint64_t)(*c->p++ - '0');
            m->has_id = true;
            m->id = v;
            rc = 0;
            if (c->p < c->end && (*c->p == '.' || *c->p == 'e' || *c->p == 'E')) {
                m->has_id = false; /* not an integer id; step over the rest of the number */
                while (c->p < c->end && is_number_char(*c->p))
                    c->p++;
            }
        } else {
            rc = skip_value(c, depth + 1);
        }
        if (rc < 0)
            return -1;
        ws_skip(c);
        if (c->p >= c->end)
            return -1;
        if (*c->p == ',') {
            c->p++;
            continue;
        }
        if (*c->p == '}') {
            c->p++;
            return 0;
        }
        return -1;
    }
}

int lg_msg_scan(const char *json, size_t len, lg_msg_t *m) {
    memset(m, 0, sizeof *m);
    cur_t c = {json, json + len};
    if (scan_object(&c, m, 0) < 0)
        return -1;
    ws_skip(&c);
    return c.p == c.end ? 0 : -1;
}
