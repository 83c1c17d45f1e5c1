/* RFC 6455 opening handshake, server side: pure checks of an HTTP request's
 * fields and the 101 (or refusal) response bytes. No I/O; the HTTP layer
 * collects the header values and writes what this returns. */
#ifndef TT_WS_HANDSHAKE_H
#define TT_WS_HANDSHAKE_H

#include <stdbool.h>
#include <stddef.h>

#include "ws/ws_deflate.h"

#define WS_SUBPROTOCOL "tertulia.v1"

/* A header value as a slice of the request; ptr NULL if the header is absent.
 * Repeated headers are joined by the caller with ", " (RFC 9110 5.3). */
typedef struct ws_slice_s {
    const char *ptr;
    size_t len;
} ws_slice_t;

typedef struct ws_handshake_req_s {
    ws_slice_t method;     /* "GET" */
    ws_slice_t upgrade;    /* Upgrade: must contain the token "websocket" (any case) */
    ws_slice_t connection; /* Connection: must contain the token "upgrade" (any case) */
    ws_slice_t key;        /* Sec-WebSocket-Key: base64 of exactly 16 bytes */
    ws_slice_t version;    /* Sec-WebSocket-Version: "13" */
    ws_slice_t protocol;   /* Sec-WebSocket-Protocol: comma list, optional */
    int http_major, http_minor; /* must be >= 1.1 */
} ws_handshake_req_t;

typedef struct ws_handshake_res_s {
    int status;          /* 101 on success; else 400, 405 or 426 */
    const char *reason;  /* refusal: one line for the body and the log */
    bool v1;             /* the client offered tertulia.v1 (echo it back) */
    char accept[29];     /* Sec-WebSocket-Accept, NUL-terminated, on success */
    /* permessage-deflate, when the caller negotiated it (ws_deflate_negotiate;
     * ws_handshake_check leaves it off). */
    ws_deflate_params_t deflate;
} ws_handshake_res_t;

/* Checks the request; fills res. Returns 0 on success (status 101), -1 on
 * refusal (res->status and res->reason say why). */
int ws_handshake_check(const ws_handshake_req_t *req, ws_handshake_res_t *res);

/* Computes the accept value for a key (base64(SHA-1(key + GUID))). */
void ws_handshake_accept(const char *key, size_t key_len, char out[29]);

/* Writes the 101 response into out (at most cap bytes); returns its length,
 * or 0 if cap is too small. Headers: Upgrade, Connection,
 * Sec-WebSocket-Accept, Sec-WebSocket-Protocol when res->v1, and
 * Sec-WebSocket-Extensions when res->deflate.on. */
size_t ws_handshake_response_write(const ws_handshake_res_t *res, char *out, size_t cap);

#endif
