/* Response heads. Every response says whether the connection stays open, so
 * clients never have to guess. */
#include "http/http_resp.h"

#include <stdio.h>

const char *http_status_text(int status) {
    switch (status) {
    case 101: return "Switching Protocols";
    case 200: return "OK";
    case 204: return "No Content";
    case 304: return "Not Modified";
    case 308: return "Permanent Redirect";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 413: return "Content Too Large";
    case 426: return "Upgrade Required";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 503: return "Service Unavailable";
    case 505: return "HTTP Version Not Supported";
    default: return "Unknown";
    }
}

void http_date_format(time_t t, char out[30]) {
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, 30, "%a, %d %b %Y %H:%M:%S GMT", &tm);
}

void http_date_now(char out[30]) {
    http_date_format(time(NULL), out);
}

size_t http_resp_head(char *out, size_t cap, int status, const char *date,
                      const char *content_type, long long content_len, bool keep_alive,
                      const char *extra) {
    int n = snprintf(out, cap, "HTTP/1.1 %d %s\r\nDate: %s\r\nServer: tertulia/%s\r\n", status,
                     http_status_text(status), date, TT_VERSION);
    if (n < 0 || (size_t)n >= cap)
        return 0;
    size_t len = (size_t)n;
    if (content_type != NULL) {
        n = snprintf(out + len, cap - len, "Content-Type: %s\r\n", content_type);
        if (n < 0 || (size_t)n >= cap - len)
            return 0;
        len += (size_t)n;
    }
    if (content_len >= 0) {
        n = snprintf(out + len, cap - len, "Content-Length: %lld\r\n", content_len);
        if (n < 0 || (size_t)n >= cap - len)
            return 0;
        len += (size_t)n;
    }
    n = snprintf(out + len, cap - len, "Connection: %s\r\n%s\r\n",
                 keep_alive ? "keep-alive" : "close", extra ? extra : "");
    if (n < 0 || (size_t)n >= cap - len)
        return 0;
    return len + (size_t)n;
}
