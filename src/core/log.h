/* Leveled logging to stderr, one line per event, in one of two formats:
 *   text: 2026-11-24T19:52:32.123Z INFO  message
 *   json: {"time":"2026-11-24T19:52:32.123Z","level":"info","event":"log","msg":"message"}
 * (one JSON object a line, for log shippers). tt_log_event adds an event
 * name and what it is about (peer, connection id, nickname, room): as
 * fields in JSON, as key=value words in text. The level and the format are
 * process-wide, set at start-up and on a reload, from the loop thread. */
#ifndef TT_CORE_LOG_H
#define TT_CORE_LOG_H

#include <stdint.h>

typedef enum {
    TT_LOG_DEBUG = 0,
    TT_LOG_INFO = 1,
    TT_LOG_WARN = 2,
    TT_LOG_ERROR = 3,
    TT_LOG_OFF = 4,
} tt_log_level_t;

typedef enum { TT_LOG_TEXT = 0, TT_LOG_JSON = 1 } tt_log_format_t;

void tt_log_set_level(tt_log_level_t level);
void tt_log_set_format(tt_log_format_t format);
tt_log_level_t tt_log_get_level(void);
/* Parses "debug", "info", "warn", "error", "off"; returns -1 if unknown. */
int tt_log_level_parse(const char *s);
void tt_log(tt_log_level_t level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Logs at INFO whatever the level (unless off): for the few lines an
 * operator always needs, like the address the server listens on. */
void tt_log_always(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* What an event is about; every member is optional (NULL / 0: absent).
 * Strings are written escaped, cut at 256 bytes. */
typedef struct tt_log_ctx_s {
    const char *peer; /* the client's address */
    uint64_t conn;    /* the connection's (session's) id */
    const char *nick; /* NUL-terminated */
    const char *room; /* NUL-terminated */
} tt_log_ctx_t;

/* Logs event (a short snake_case name: "login", "join") at level. */
void tt_log_event(tt_log_level_t level, const char *event, const tt_log_ctx_t *ctx, const char *fmt,
                  ...) __attribute__((format(printf, 4, 5)));

#define tt_log_debug(...) tt_log(TT_LOG_DEBUG, __VA_ARGS__)
#define tt_log_info(...) tt_log(TT_LOG_INFO, __VA_ARGS__)
#define tt_log_warn(...) tt_log(TT_LOG_WARN, __VA_ARGS__)
#define tt_log_error(...) tt_log(TT_LOG_ERROR, __VA_ARGS__)

#endif
