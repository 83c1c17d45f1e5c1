/* A fast reader for the requests clients send most: JSON objects of
 * strings, small integers, booleans, null and nested objects, with no
 * \u escapes. It builds the same jansson tree json_loadb(data, len,
 * JSON_ALLOW_NUL) builds for them (a later duplicate key replaces an
 * earlier one, as there), or gives up (NULL) on anything else: arrays,
 * reals and large or oddly written numbers, \u escapes, control characters
 * in strings, deep nesting, anything malformed. The caller then parses
 * with jansson, which decides (and words the error), so giving up is
 * always safe. jansson's own reader spends about 100 instructions a byte
 * (it reads through a stream of one character at a time); this one a few.
 * fuzz/fuzz_json.c checks that both agree on every input this one takes.
 *
 * The text is valid UTF-8 (checked first), and the escapes accepted here
 * make ASCII only: the strings need no further check. */
#include <stdlib.h>
#include <string.h>

#include "chat/chat_int.h"
#include "core/utf8.h"

#define FAST_DEPTH_MAX 8
#define FAST_DIGITS_MAX 15 /* an integer of more digits goes to jansson */

typedef struct {
    const char *p, *end;
} rd_t;

static void skip_ws(rd_t *r) {
    while (r->p < r->end && (*r->p == ' ' || *r->p == '\t' || *r->p == '\n' || *r->p == '\r'))
        r->p++;
}

/* A string at r->p (at its opening quote): returns its bytes, unescaped
 * into *tmp when it had escapes (the caller frees *tmp), or NULL. */
static const char *read_string(rd_t *r, size_t *len, char **tmp) {
    *tmp = NULL;
    const char *start = ++r->p;
    const char *q = start;
    while (q < r->end && *q != '"' && *q != '\\' && (unsigned char)*q >= 0x20)
        q++;
    if (q < r->end && *q == '"') {
        *len = (size_t)(q - start);
        r->p = q + 1;
        return start;
    }
    if (q >= r->end || (unsigned char)*q < 0x20)
        return NULL;
    /* Escapes: copied out, unescaped. */
    char *out = malloc((size_t)(r->end - start));
    if (out == NULL)
        return NULL;
    size_t n = (size_t)(q - start);
    memcpy(out, start, n);
    for (;;) {
        if (q >= r->end || (unsigned char)*q < 0x20)
            break;
        char c = *q++;
        if (c == '"') {
            *len = n;
            *tmp = out;
            r->p = q;
            return out;
        }
        if (c != '\\') {
            out[n++] = c;
            continue;
        }
        if (q >= r->end)
            break;
        switch (*q++) {
        case '"':
            out[n++] = '"';
            continue;
        case '\\':
            out[n++] = '\\';
            continue;
        case '/':
            out[n++] = '/';
            continue;
        case 'b':
            out[n++] = '\b';
            continue;
        case 'f':
            out[n++] = '\f';
            continue;
        case 'n':
            out[n++] = '\n';
            continue;
        case 'r':
            out[n++] = '\r';
            continue;
        case 't':
            out[n++] = '\t';
            continue;
        default: /* \u, or not an escape: jansson's */
            break;
        }
        break;
    }
    free(out);
    return NULL;
}

static bool literal(rd_t *r, const char *word, size_t n) {
    if ((size_t)(r->end - r->p) < n || memcmp(r->p, word, n) != 0)
        return false;
    r->p += n;
    return true;
}

static bool is_digit(char c) {
    return c >= '0' && c <= '9';
}

static json_t *read_value(rd_t *r, int depth);

static json_t *read_object(rd_t *r, int depth) {
    if (depth > FAST_DEPTH_MAX)
        return NULL;
    r->p++; /* '{' */
    json_t *o = json_object();
    skip_ws(r);
    if (r->p < r->end && *r->p == '}') {
        r->p++;
        return o;
    }
    for (;;) {
        skip_ws(r);
        if (r->p >= r->end || *r->p != '"')
            break;
        size_t klen;
        char *ktmp;
        const char *key = read_string(r, &klen, &ktmp);
        if (key == NULL)
            break;
        skip_ws(r);
        json_t *v = NULL;
        if (r->p < r->end && *r->p == ':') {
            r->p++;
            v = read_value(r, depth);
        }
        /* A key is a C string in jansson: one made of its bytes (no NUL
         * can be in them: that takes a \u escape). */
        int rc = v != NULL ? json_object_setn_new_nocheck(o, key, klen, v) : -1;
        free(ktmp);
        if (rc != 0)
            break;
        skip_ws(r);
        if (r->p < r->end && *r->p == ',') {
            r->p++;
            continue;
        }
        if (r->p < r->end && *r->p == '}') {
            r->p++;
            return o;
        }
        break;
    }
    json_decref(o);
    return NULL;
}

static json_t *read_value(rd_t *r, int depth) {
    skip_ws(r);
    if (r->p >= r->end)
        return NULL;
    switch (*r->p) {
    case '{':
        return read_object(r, depth + 1);
    case '"': {
        size_t len;
        char *tmp;
        const char *s = read_string(r, &len, &tmp);
        if (s == NULL)
            return NULL;
        json_t *v = json_stringn_nocheck(s, len);
        free(tmp);
        return v;
    }
    case 't':
        return literal(r, "true", 4) ? json_true() : NULL;
    case 'f':
        return literal(r, "false", 5) ? json_false() : NULL;
    case 'n':
        return literal(r, "null", 4) ? json_null() : NULL;
    default:
        break;
    }
    /* An integer as jansson reads one: -?(0|[1-9][0-9]*), not followed by
     * a fraction or an exponent (a real: jansson's). */
    const char *q = r->p;
    bool neg = *q == '-';
    if (neg)
        q++;
    const char *digits = q;
    while (q < r->end && is_digit(*q))
        q++;
    size_t nd = (size_t)(q - digits);
    if (nd == 0 || nd > FAST_DIGITS_MAX || (digits[0] == '0' && nd > 1) ||
        (neg && nd == 1 && digits[0] == '0'))
        return NULL;
    if (q < r->end && (*q == '.' || *q == 'e' || *q == 'E'))
        return NULL;
    json_int_t v = 0;
    for (const char *d = digits; d < q; d++)
        v = v * 10 + (*d - '0');
    r->p = q;
    return json_integer(neg ? -v : v);
}

json_t *chat__json_fast(const char *data, size_t len) {
    /* The transport hands over valid UTF-8 only; checked again (it is
     * cheap) so that no string here can be anything else, whoever calls. */
    if (!tt_utf8_is_valid((const uint8_t *)data, len))
        return NULL;
    rd_t r = {data, data + len};
    skip_ws(&r);
    if (r.p >= r.end || *r.p != '{')
        return NULL;
    json_t *root = read_object(&r, 1);
    if (root == NULL)
        return NULL;
    skip_ws(&r);
    if (r.p != r.end) {
        json_decref(root);
        return NULL;
    }
    return root;
}
