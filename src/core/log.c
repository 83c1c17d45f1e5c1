/* stderr logger: a timestamp, a level and one line. */
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

static void log_v(tt_log_level_t level, const char *fmt, va_list ap) {
    static const char *tags[] = {"DEBUG", "INFO ", "WARN ", "ERROR"};
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    char line[1024];
    int n = snprintf(line, sizeof(line), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s ",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                     tm.tm_sec, ts.tv_nsec / 1000000, tags[level]);
    int m = vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
    size_t len = (size_t)n + (m < 0 ? 0 : (size_t)m);
    if (len > sizeof(line) - 2)
        len = sizeof(line) - 2;
    line[len++] = '\n';
    fwrite(line, 1, len, stderr);
}

void tt_log(tt_log_level_t level, const char *fmt, ...) {
    if (level < log_level || level >= TT_LOG_OFF)
        return;
    va_list ap;
    va_start(ap, fmt);
    log_v(level, fmt, ap);
    va_end(ap);
}

void tt_log_always(const char *fmt, ...) {
    if (log_level >= TT_LOG_OFF)
        return;
    va_list ap;
    va_start(ap, fmt);
    log_v(TT_LOG_INFO, fmt, ap);
    va_end(ap);
}
