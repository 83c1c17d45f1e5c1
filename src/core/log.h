/* Leveled logging to stderr, one line per event:
 *   2026-11-24T19:52:32.123Z INFO  message
 * The level is process-wide and set once at start-up. */
#ifndef TT_CORE_LOG_H
#define TT_CORE_LOG_H

typedef enum {
    TT_LOG_DEBUG = 0,
    TT_LOG_INFO = 1,
    TT_LOG_WARN = 2,
    TT_LOG_ERROR = 3,
    TT_LOG_OFF = 4,
} tt_log_level_t;

void tt_log_set_level(tt_log_level_t level);
tt_log_level_t tt_log_get_level(void);
/* Parses "debug", "info", "warn", "error", "off"; returns -1 if unknown. */
int tt_log_level_parse(const char *s);
void tt_log(tt_log_level_t level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Logs at INFO whatever the level (unless off): for the few lines an
 * operator always needs, like the address the server listens on. */
void tt_log_always(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#define tt_log_debug(...) tt_log(TT_LOG_DEBUG, __VA_ARGS__)
#define tt_log_info(...) tt_log(TT_LOG_INFO, __VA_ARGS__)
#define tt_log_warn(...) tt_log(TT_LOG_WARN, __VA_ARGS__)
#define tt_log_error(...) tt_log(TT_LOG_ERROR, __VA_ARGS__)

#endif
