/* Outgoing messages: JSON serialized once, straight into a refcounted
 * buffer behind the message struct and reserved headroom (where src/ws writes the frame header in
 * place when a recipient needs the plain frame). This is the only place
 * that turns JSON into bytes, so every message the chat sends is built the
 * same way and shared by reference. */
#include "chat/chat_int.h"

#include <assert.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "core/log.h"
#include "core/xmalloc.h"

#define CHAT_LEGACY_LOG_MAX 20 /* refusals logged per legacy session */

int64_t chat__now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* json_dump_callback hands over the text in many small pieces; append them,
 * moving to a bigger pooled buffer when the guess was short. */
static int dump_cb(const char *data, size_t size, void *arg) {
    tt_buf_t **bp = arg;
    tt_buf_t *b = *bp;
    size_t need = (size_t)b->off + b->len + size;
    if (need > b->cap) {
        size_t cap = (size_t)b->cap * 2;
        if (cap < need)
            cap = need;
        if (cap > UINT32_MAX)
            return -1;
        tt_buf_t *nb = tt_buf_new(cap);
        nb->off = b->off;
        nb->len = b->len;
        memcpy(nb->data + nb->off, b->data + b->off, b->len);
        tt_buf_unref(b);
        *bp = b = nb;
    }
    memcpy(b->data + b->off + b->len, data, size);
    b->len += (uint32_t)size;
    return 0;
}

tt_msg_t *chat__msg_json(const json_t *obj, size_t size_hint) {
    tt_buf_t *b = tt_buf_new(TT_MSG_RESERVE + size_hint);
    b->off = TT_MSG_RESERVE;
    /* Only an impossible 4 GiB frame or jansson running out of memory can
     * fail here; both are our bugs or a dying process, not peer input. */
    int rc = json_dump_callback(obj, dump_cb, &b, JSON_COMPACT);
    assert(rc == 0);
    (void)rc;
    return tt_msg_new(b);
}

tt_msg_t *chat__msg_raw(const char *json, size_t len) {
    tt_buf_t *b = tt_buf_new(TT_MSG_RESERVE + len);
    b->off = TT_MSG_RESERVE;
    dump_cb(json, len, &b);
    return tt_msg_new(b);
}

void chat__reply(chat_t *chat, chat_session_t *s, const chat_req_t *req, json_t *obj) {
    if (s->v1 && !s->close_queued) {
        if (req != NULL && req->ref != NULL)
            json_object_set_new(obj, "ref", json_stringn_nocheck(req->ref, req->ref_len));
        tt_msg_t *m = chat__msg_json(obj, 128);
        chat->io.send(chat->io_ctx, s->conn, m);
        tt_msg_unref(m);
    }
    json_decref(obj);
}

static void refuse(chat_t *chat, const chat_req_t *req, json_t *extra, const char *code,
                   const char *fmt, va_list ap) __attribute__((format(printf, 5, 0)));

void chat__refuse(chat_t *chat, const chat_req_t *req, const char *code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    refuse(chat, req, NULL, code, fmt, ap);
    va_end(ap);
}

void chat__refuse_extra(chat_t *chat, const chat_req_t *req, json_t *extra, const char *code,
                        const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    refuse(chat, req, extra, code, fmt, ap);
    va_end(ap);
}

static void refuse(chat_t *chat, const chat_req_t *req, json_t *extra, const char *code,
                   const char *fmt, va_list ap) {
    char msg[256];
    vsnprintf(msg, sizeof(msg), fmt, ap);
    size_t k = 0;
    while (k < CHAT_REFUSAL_other && strcmp(chat_refusal_names[k], code) != 0)
        k++;
    chat->counters.refusals[k]++;
    chat_session_t *s = req->s;
    if (!s->v1) {
        /* The original client shows message.text of every frame it gets, so
         * an error frame would read as a chat line: drop and log instead.
         * A client that keeps sending junk must not flood the log: after
         * the first few, one line says the rest go unlogged. */
        if (s->refusals_logged < CHAT_LEGACY_LOG_MAX)
            tt_log_info("chat: legacy %s (%s): %s dropped: %s (%s)", s->peer,
                        s->logged_in ? s->nick : "not logged in", req->type ? req->type : "message",
                        msg, code);
        else if (s->refusals_logged == CHAT_LEGACY_LOG_MAX)
            tt_log_info("chat: legacy %s: more requests dropped; no longer logged", s->peer);
        if (s->refusals_logged <= CHAT_LEGACY_LOG_MAX)
            s->refusals_logged++;
        json_decref(extra);
        return;
    }
    tt_log_debug("chat: %s (%s): %s refused: %s (%s)", s->peer,
                 s->logged_in ? s->nick : "not logged in", req->type ? req->type : "message", msg,
                 code);
    json_t *err = json_object();
    json_object_set_new(err, "type", json_string_nocheck("error"));
    json_object_set_new(err, "code", json_string_nocheck(code));
    /* Messages quote only validated (ASCII) names, so this is valid UTF-8;
     * fall back to the code rather than send an error without a message. */
    json_t *text = json_string(msg);
    json_object_set_new(err, "message", text ? text : json_string_nocheck(code));
    if (extra != NULL) {
        json_object_update(err, extra);
        json_decref(extra);
    }
    chat__reply(chat, s, req, err);
}

/* ---- a chat message's frame, written directly ----
 *
 * The one frame of every accepted message is written here without building
 * a JSON tree: the same bytes json_dump_callback(chat__message_json(m) +
 * mentions, JSON_COMPACT) writes (the same keys in the same order, strings
 * escaped as jansson escapes them: '"', '\\', \b \f \n \r \t, other
 * control characters as \u00XX, everything else as it is). The unit test
 * compares the two byte for byte. */

static char *put(char *p, const char *s, size_t len) {
    memcpy(p, s, len);
    return p + len;
}
#define PUT_LIT(p, lit) put((p), (lit), sizeof(lit) - 1)

static char *put_string(char *p, const char *s, size_t len) {
    static const char hex[] = "0123456789ABCDEF";
    *p++ = '"';
    size_t run = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\')
            continue;
        p = put(p, s + run, i - run);
        run = i + 1;
        *p++ = '\\';
        switch (c) {
        case '"':
        case '\\':
            *p++ = (char)c;
            break;
        case '\b':
            *p++ = 'b';
            break;
        case '\f':
            *p++ = 'f';
            break;
        case '\n':
            *p++ = 'n';
            break;
        case '\r':
            *p++ = 'r';
            break;
        case '\t':
            *p++ = 't';
            break;
        default:
            p = PUT_LIT(p, "u00");
            *p++ = hex[c >> 4];
            *p++ = hex[c & 15];
        }
    }
    p = put(p, s + run, len - run);
    *p++ = '"';
    return p;
}

static char *put_uint(char *p, uint64_t v) {
    char tmp[24];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v > 0);
    while (n > 0)
        *p++ = tmp[--n];
    return p;
}

tt_msg_t *chat__msg_message(const chat_message_t *m, const json_t *mentions) {
    /* The exact size is not needed, a bound is: every string at its
     * escaped size, numbers at 20 digits. */
    size_t cap = 96 + 40 + chat__json_string_size(m->from, m->from_len) +
                 chat__json_string_size(m->to, m->to_len) +
                 chat__json_string_size(m->text, m->text_len);
    for (size_t i = 0; i < json_array_size(mentions); i++) {
        const json_t *n = json_array_get(mentions, i);
        cap += 1 + chat__json_string_size(json_string_value(n), json_string_length(n));
    }
    if (mentions != NULL)
        cap += 14;
    tt_buf_t *b = tt_buf_new(TT_MSG_RESERVE + cap);
    b->off = TT_MSG_RESERVE;
    char *start = (char *)b->data + b->off, *p = start;
    p = m->kind == CHAT_MSG_ROOM ? PUT_LIT(p, "{\"type\":\"room\",\"id\":")
                                 : PUT_LIT(p, "{\"type\":\"private\",\"id\":");
    p = put_uint(p, m->id);
    p = PUT_LIT(p, ",\"ts\":");
    if (m->ts < 0) {
        *p++ = '-';
        p = put_uint(p, (uint64_t)0 - (uint64_t)m->ts);
    } else {
        p = put_uint(p, (uint64_t)m->ts);
    }
    p = PUT_LIT(p, ",\"from\":");
    p = put_string(p, m->from, m->from_len);
    p = PUT_LIT(p, ",\"to\":");
    p = put_string(p, m->to, m->to_len);
    p = PUT_LIT(p, ",\"message\":{\"text\":");
    p = put_string(p, m->text, m->text_len);
    *p++ = '}';
    if (mentions != NULL) {
        p = PUT_LIT(p, ",\"mentions\":[");
        for (size_t i = 0; i < json_array_size(mentions); i++) {
            const json_t *n = json_array_get(mentions, i);
            if (i > 0)
                *p++ = ',';
            p = put_string(p, json_string_value(n), json_string_length(n));
        }
        *p++ = ']';
    }
    *p++ = '}';
    assert((size_t)(p - start) <= cap);
    b->len = (uint32_t)(p - start);
    return tt_msg_new(b);
}

json_t *chat__message_json(const chat_message_t *m) {
    json_t *o = json_object();
    json_object_set_new(o, "type",
                        json_string_nocheck(m->kind == CHAT_MSG_ROOM ? "room" : "private"));
    json_object_set_new(o, "id", json_integer((json_int_t)m->id));
    json_object_set_new(o, "ts", json_integer((json_int_t)m->ts));
    json_object_set_new(o, "from", json_stringn_nocheck(m->from, m->from_len));
    json_object_set_new(o, "to", json_stringn_nocheck(m->to, m->to_len));
    json_t *body = json_object();
    json_object_set_new(body, "text", json_stringn_nocheck(m->text, m->text_len));
    json_object_set_new(o, "message", body);
    return o;
}

size_t chat__json_string_size(const char *s, size_t len) {
    size_t n = len + 2;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\' || c == '\b' || c == '\f' || c == '\n' || c == '\r' || c == '\t')
            n += 1;
        else if (c < 0x20)
            n += 5;
    }
    return n;
}

static size_t string_size(const json_t *s) {
    return json_is_string(s) ? chat__json_string_size(json_string_value(s), json_string_length(s))
                             : 2;
}

size_t chat__message_json_size(const json_t *m) {
    size_t n = CHAT_MESSAGE_JSON_OVERHEAD + string_size(json_object_get(m, "from")) +
               string_size(json_object_get(m, "to")) +
               string_size(json_object_get(json_object_get(m, "message"), "text"));
    const json_t *mentions = json_object_get(m, "mentions");
    if (mentions != NULL) {
        n += 14;
        for (size_t i = 0; i < json_array_size(mentions); i++)
            n += string_size(json_array_get(mentions, i)) + 1;
    }
    return n;
}

static bool name_char(unsigned char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '-' || c == '.';
}

json_t *chat__mentions(chat_t *chat, const chat_room_t *room, const char *text, size_t len) {
    if (room == NULL)
        return NULL;
    json_t *a = NULL;
    const char *p = text, *end = text + len;
    while (p < end && (p = memchr(p, '@', (size_t)(end - p))) != NULL) {
        /* "@ana" at the start or after a character that is not a name's
         * (so "me@ana.org" names nobody); the name runs to the first
         * character that is not a name's, without a trailing '.'. */
        bool starts = p == text || !name_char((unsigned char)p[-1]);
        const char *q = ++p;
        while (q < end && q - p <= CHAT_NICK_MAX && name_char((unsigned char)*q))
            q++;
        size_t n = (size_t)(q - p);
        while (n > 0 && p[n - 1] == '.')
            n--;
        if (!starts || n == 0 || n > CHAT_NICK_MAX)
            continue;
        chat_user_t *u = chat__user_find(chat, p, n);
        if (u == NULL || chat__presence_find(u, room) == NULL)
            continue;
        if (a == NULL)
            a = json_array();
        bool seen = false;
        for (size_t i = 0; i < json_array_size(a) && !seen; i++)
            seen = strcmp(json_string_value(json_array_get(a, i)), u->nick) == 0;
        if (!seen)
            json_array_append_new(a, json_stringn_nocheck(u->nick, u->nick_len));
        if (json_array_size(a) == CHAT_MENTIONS_MAX)
            break;
        p = q;
    }
    return a;
}

char *chat__mentions_join(const json_t *mentions, size_t *len) {
    size_t n = 0;
    for (size_t i = 0; i < json_array_size(mentions); i++)
        n += json_string_length(json_array_get(mentions, i)) + 1;
    char *s = xmalloc(n + 1);
    size_t at = 0;
    for (size_t i = 0; i < json_array_size(mentions); i++) {
        const json_t *v = json_array_get(mentions, i);
        if (at > 0)
            s[at++] = ',';
        memcpy(s + at, json_string_value(v), json_string_length(v));
        at += json_string_length(v);
    }
    s[at] = '\0';
    *len = at;
    return s;
}

json_t *chat__mentions_split(const char *s, size_t len) {
    json_t *a = NULL;
    const char *p = s, *end = s + len;
    while (p < end) {
        const char *c = memchr(p, ',', (size_t)(end - p));
        const char *q = c != NULL ? c : end;
        /* Names are checked again: the list came from outside the chat. */
        if (chat_nickname_is_valid(p, (size_t)(q - p)) &&
            (a == NULL || json_array_size(a) < CHAT_MENTIONS_MAX)) {
            if (a == NULL)
                a = json_array();
            json_array_append_new(a, json_stringn_nocheck(p, (size_t)(q - p)));
        }
        p = q + 1;
    }
    return a;
}
