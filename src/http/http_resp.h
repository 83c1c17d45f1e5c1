/* HTTP/1.1 response heads: status lines and the headers every response
 * carries. Pure: writes into the caller's buffer. */
#ifndef TT_HTTP_RESP_H
#define TT_HTTP_RESP_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

/* The reason phrase for a status ("Not Found"). */
const char *http_status_text(int status);

/* Formats an IMF-fixdate ("Tue, 24 Nov 2026 19:52:32 GMT") into out[30]. */
void http_date_format(time_t t, char out[30]);

/* http_date_format of the current time. */
void http_date_now(char out[30]);

/* Writes a response head into out (at most cap bytes): status line, Date,
 * Server, Content-Length (content_len, unless content_len < 0), Content-Type
 * (if not NULL), Connection (keep-alive or close), then extra (whole header
 * lines each ending in CRLF, or NULL), then the blank line. Returns the
 * length, or 0 if cap is too small. */
size_t http_resp_head(char *out, size_t cap, int status, const char *date,
                      const char *content_type, long long content_len, bool keep_alive,
                      const char *extra);

#endif
