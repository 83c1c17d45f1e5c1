/* stderr logger: a timestamp, a level and one line, as text or as JSON. */
#include "core/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static tt_log_level_t log_level = TT_LOG_INFO;

void tt_log_set_level(tt_log_level_t level) {
    log_level = level;
}

tt_log_level_t tt_log_get_level(void) {
    return log_level;
}

int tt_log_level_parse(const char *s) {
    static const char *names[] = {"debug", "info", "warn", "error", "off"};
    for (int i = 0; i < 5; i++)
        if (strcmp(s, names[i]) == 0)
            return i;
    return -1;
}

static tt_log_format_t log_format = TT_LOG_TEXT;

void tt_log_set_format(tt_log_format_t format) {
    log_format = format;
}

/* A line under construction: what does not fit is cut, never overflowed. */
typedef struct {
    char buf[2048];
    size_t len;
} line_t;

static void put(line_t *l, const char *s, size_t n) {
    size_t room = sizeof(l->buf) - 3 - l->len; /* room for the closing quote, brace, newline */
    if (n > room)
        n = room;
    memcpy(l->buf + l->len, s, n);
    l->len += n;
}

static void puts_(line_t *l, const char *s) {
    put(l, s, strlen(s));
}

/* s as the inside of a JSON string: quotes, backslashes and control bytes
 * escaped; other bytes as they are (the server's strings are UTF-8). */
static void put_json_str(line_t *l, const char *s, size_t n) {
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        /* Whole escapes only, with room left to close the line: a cut
         * line is still valid JSON. */
        if (l->len + 6 + 4 > sizeof(l->buf))
            break;
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            char e[2] = {'\\', (char)c};
            put(l, e, 2);
        } else if (c == '\n') {
            put(l, "\\n", 2);
        } else if (c < 0x20 || c == 0x7f) {
            char e[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
            put(l, e, 6);
        } else {
            put(l, (const char *)&c, 1);
        }
    }
}

static void put_field(line_t *l, const char *key, const char *value) {
    size_t n = strnlen(value, 256);
    if (log_format == TT_LOG_JSON) {
        puts_(l, ",\"");
        puts_(l, key);
        puts_(l, "\":\"");
        put_json_str(l, value, n);
        puts_(l, "\"");
    } else {
        puts_(l, key);
        puts_(l, "=");
        put(l, value, n);
        puts_(l, " ");
    }
}

static void log_v(tt_log_level_t level, const char *event, const tt_log_ctx_t *ctx, const char *fmt,
                  va_list ap) {
    static const char *tags[] = {"DEBUG", "INFO ", "WARN ", "ERROR"};
    static const char *names[] = {"debug", "info", "warn", "error"};
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    char when[64];
    snprintf(when, sizeof(when), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000);
    char msg[1024];
    int m = vsnprintf(msg, sizeof(msg), fmt, ap);
    size_t mlen = m < 0 ? 0 : (size_t)m < sizeof(msg) ? (size_t)m : sizeof(msg) - 1;
    line_t l = {.len = 0};
    char conn[24] = "";
    if (ctx != NULL && ctx->conn != 0)
        snprintf(conn, sizeof(conn), "%llu", (unsigned long long)ctx->conn);
    if (log_format == TT_LOG_JSON) {
        puts_(&l, "{\"time\":\"");
        puts_(&l, when);
        puts_(&l, "\",\"level\":\"");
        puts_(&l, names[level]);
        puts_(&l, "\",\"event\":\"");
        put_json_str(&l, event, strlen(event));
        puts_(&l, "\"");
        if (ctx != NULL && ctx->peer != NULL)
            put_field(&l, "peer", ctx->peer);
        if (conn[0] != '\0') {
            puts_(&l, ",\"conn\":");
            puts_(&l, conn);
        }
        if (ctx != NULL && ctx->nick != NULL)
            put_field(&l, "nick", ctx->nick);
        if (ctx != NULL && ctx->room != NULL)
            put_field(&l, "room", ctx->room);
        puts_(&l, ",\"msg\":\"");
        put_json_str(&l, msg, mlen);
        memcpy(l.buf + l.len, "\"}", 2);
        l.len += 2;
    } else {
        puts_(&l, when);
        puts_(&l, " ");
        puts_(&l, tags[level]);
        puts_(&l, " ");
        if (strcmp(event, "log") != 0) {
            puts_(&l, event);
            puts_(&l, " ");
        }
        if (ctx != NULL) {
            if (ctx->peer != NULL)
                put_field(&l, "peer", ctx->peer);
            if (conn[0] != '\0')
                put_field(&l, "conn", conn);
            if (ctx->nick != NULL)
                put_field(&l, "nick", ctx->nick);
            if (ctx->room != NULL)
                put_field(&l, "room", ctx->room);
        }
        put(&l, msg, mlen);
    }
    l.buf[l.len++] = '\n';
    fwrite(l.buf, 1, l.len, stderr);
}

void tt_log_event(tt_log_level_t level, const char *event, const tt_log_ctx_t *ctx, const char *fmt,
                  ...) {
    if (level < log_level || level >= TT_LOG_OFF)
        return;
    va_list ap;
    va_start(ap, fmt);
    log_v(level, event, ctx, fmt, ap);
    va_end(ap);
}

void tt_log(tt_log_level_t level, const char *fmt, ...) {
    if (level < log_level || level >= TT_LOG_OFF)
        return;
    va_list ap;
    va_start(ap, fmt);
    log_v(level, "log", NULL, fmt, ap);
    va_end(ap);
}

void tt_log_always(const char *fmt, ...) {
    if (log_level >= TT_LOG_OFF)
        return;
    va_list ap;
    va_start(ap, fmt);
    log_v(TT_LOG_INFO, "log", NULL, fmt, ap);
    va_end(ap);
}
