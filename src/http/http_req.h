/* HTTP/1.1 request heads, parsed with http_parser (Debian libhttp-parser).
 * Pure: bytes in, a request description out; no I/O, no allocation.
 *
 * The connection buffers a request head until its blank line has arrived
 * (found by an incremental scan, so a client trickling bytes costs O(n)),
 * then http_parser runs once over the whole head and every field below is a
 * slice of that buffer. Before http_parser, one O(n) pass over the head
 * refuses what RFC 9112 says a server must refuse and http_parser's lenient
 * defaults let through (see http_req_parse). */
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
    int method; /* enum http_method */
    const char *method_name;
    int http_major, http_minor;
    http_slice_t path; /* the URL's path, without query or fragment */
    http_slice_t query;
    http_slice_t host, upgrade, connection, origin, if_none_match, authorization;
    http_slice_t ws_key, ws_version, ws_protocol, ws_extensions;
    bool keep_alive; /* http_should_keep_alive(): 1.1 default, Connection: close, 1.0 keep-alive */
    bool has_body;   /* Content-Length > 0 or chunked: we serve no request bodies */
    /* Repeated headers that are comma lists (Connection, Upgrade,
     * Sec-WebSocket-Protocol, Sec-WebSocket-Extensions, ...) are joined here with ", ". */
    char joined[1024];
    size_t joined_len;
} http_req_t;

enum {
    HTTP_REQ_INCOMPLETE = 0, /* no blank line yet: keep the bytes, read more */
};

/* Empty lines before a request line (RFC 9112 section 2.2: a server SHOULD
 * ignore at least one, as some clients send CRLF after a request body) are
 * skipped, up to this many; a further empty line is part of the head, which
 * http_req_parse then refuses with 400 (no request line starts with CR/LF). */
#define HTTP_MAX_EMPTY_LINES 4 /* so at most 8 bytes are skipped */

/* Returns how many bytes at the start of buf are empty lines ("\r\n" or a
 * bare "\n"), counting at most HTTP_MAX_EMPTY_LINES of them and only complete
 * ones (a trailing lone "\r" is not counted until its "\n" arrives). Reads at
 * most 2 * HTTP_MAX_EMPTY_LINES bytes. As buf grows the result never shrinks,
 * and it is final once buf holds a byte after it.
 *
 * Callers need not use it: http_head_end and http_req_parse skip these lines
 * themselves (see below). It is for a caller that looks at the first byte of
 * the request line, e.g. to refuse non-HTTP bytes early: that byte is
 * buf[http_leading_empty_lines(buf, len)], not buf[0] (a check of buf[0]
 * refuses every request that starts with an empty line). */
size_t http_leading_empty_lines(const char *buf, size_t len);

/* Scans buf[from..len) for the end of a request head ("\r\n\r\n", or the
 * "\n\n" http_parser also accepts). Returns the head's length including any
 * leading empty lines and the blank line, or 0 if not there yet. Pass
 * from = bytes already scanned (callers remember it so that trickled input is
 * scanned once).
 *
 * buf must start where the request starts (right after the previous head,
 * with the leading empty lines still in it): the leading empty lines counted
 * by http_leading_empty_lines are never taken for the blank line that ends a
 * head, so "\r\n\r\nGET ..." is one head, not an empty one. The simplest
 * use is the one conn_http makes today: keep the request's bytes buffered
 * from its first byte until its head is complete and pass them all, then
 * consume the returned length. A caller that strips the leading lines
 * itself (skip = http_leading_empty_lines(); buf + skip, len - skip, from
 * relative to buf + skip) gets the same head, skip bytes shorter, and the
 * same status from http_req_parse, but both functions then skip up to
 * HTTP_MAX_EMPTY_LINES more themselves; it must strip once per request, not
 * once per read, or no limit holds at all. */
size_t http_head_end(const char *buf, size_t len, size_t from);

/* Parses a complete head buf[0..head_len), as delimited by http_head_end
 * (leading empty lines included or already stripped: both work). Returns 0
 * and fills req, or an HTTP status to refuse with (400 malformed, 431 too
 * large, 505 version).
 *
 * 400 is returned, besides for what http_parser refuses, for everything
 * RFC 9112 says a server must refuse, checked in one pass before it runs:
 *   - an HTTP/1.1 request (1.x, x >= 1) without a Host line, any request
 *     with more than one, or a Host value with characters no host[:port]
 *     has (section 3.2; HTTP/1.0 may omit Host);
 *   - whitespace between a field name and its colon (section 5.1), a field
 *     name that is not a token, a line without a colon;
 *   - a line starting with SP or HTAB: an obsolete line fold, or whitespace
 *     before the first field line (sections 5.2 and 2.2);
 *   - a CR not followed by LF anywhere (section 2.2), and control characters
 *     other than HTAB in a field value (RFC 9110 section 5.5);
 *   - both Content-Length and Transfer-Encoding (section 6.1), a
 *     Transfer-Encoding whose last coding is not chunked (section 6.3), a
 *     Content-Length that is not one decimal number below 2^64, or two
 *     Content-Length lines (http_parser refuses even equal ones);
 *   - a request line that is not method SP request-target SP HTTP/d.d with
 *     single spaces, a method that is not a token, a request-target with
 *     bytes outside VCHAR or in none of the forms RFC 9112 section 3.2
 *     allows: origin-form ("/..."), absolute-form ("scheme:..."), and, for
 *     CONNECT only, authority-form (no "/"). The asterisk-form ("OPTIONS *")
 *     is valid but not served: 400 as well.
 * Bare LF line ends stay accepted (section 2.2 allows it). */
int http_req_parse(const char *buf, size_t head_len, http_req_t *req);

/* True if the comma-separated header value contains token (case-insensitive). */
bool http_list_has_token(http_slice_t value, const char *token);

/* True if s equals the NUL-terminated string lit exactly. */
bool http_slice_eq(http_slice_t s, const char *lit);

#endif
