/* HTTP/1.1 request heads, parsed with http_parser (Debian libhttp-parser).
 * Pure: bytes in, a request description out; no I/O, no allocation.
 *
 * The connection buffers a request head until its blank line has arrived
 * (found by an incremental scan, so a client trickling bytes costs O(n)),
 * then http_parser runs once over the whole head and every field below is a
 * slice of that buffer. */
#ifndef TT_HTTP_REQ_H
#define TT_HTTP_REQ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HTTP_MAX_HEAD 8192 /* a longer request head is refused with 431 */

typedef struct http_slice_s {
    const char *ptr; /* NULL when absent */
    size_t len;
} http_slice_t;

typedef struct http_req_s {
    int method;          /* enum http_method */
    const char *method_name;
    int http_major, http_minor;
    http_slice_t path;   /* the URL's path, without query or fragment */
    http_slice_t query;
    http_slice_t host, upgrade, connection, origin, if_none_match;
    http_slice_t ws_key, ws_version, ws_protocol;
    bool keep_alive;     /* http_should_keep_alive(): 1.1 default, Connection: close, 1.0 keep-alive */
    bool has_body;       /* Content-Length > 0 or chunked: we serve no request bodies */
    /* Repeated headers that are comma lists (Connection, Upgrade,
     * Sec-WebSocket-Protocol, ...) are joined here with ", ". */
    char joined[1024];
    size_t joined_len;
} http_req_t;

enum {
    HTTP_REQ_INCOMPLETE = 0, /* no blank line yet: keep the bytes, read more */
};

/* Scans buf[from..len) for the end of a request head ("\r\n\r\n", or the
 * "\n\n" http_parser also accepts). Returns the head's length including the
 * blank line, or 0 if not there yet. Pass from = bytes already scanned
 * (callers remember it so that trickled input is scanned once). */
size_t http_head_end(const char *buf, size_t len, size_t from);

/* Parses a complete head buf[0..head_len). Returns 0 and fills req, or an
 * HTTP status to refuse with (400 malformed, 431 too large, 505 version). */
int http_req_parse(const char *buf, size_t head_len, http_req_t *req);

/* True if the comma-separated header value contains token (case-insensitive). */
bool http_list_has_token(http_slice_t value, const char *token);

/* True if s equals the NUL-terminated string lit exactly. */
bool http_slice_eq(http_slice_t s, const char *lit);

#endif
