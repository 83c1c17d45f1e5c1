/* RFC 6455 section 4.2: the server's checks of an opening handshake and its
 * 101 response. Header values arrive as slices (not NUL-terminated); SHA-1
 * and base64 come from OpenSSL. Parsing the HTTP request is not done here. */
#include "ws/ws_handshake.h"

#include <openssl/evp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

static bool is_ows(char c) {
    return c == ' ' || c == '\t';
}

static char lower(char c) {
    return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

static ws_slice_t trim(ws_slice_t s) {
    while (s.len && is_ows(s.ptr[0])) {
        s.ptr++;
        s.len--;
    }
    while (s.len && is_ows(s.ptr[s.len - 1]))
        s.len--;
    return s;
}

static bool slice_eq(ws_slice_t s, const char *lit, bool nocase) {
    size_t n = strlen(lit);
    if (s.len != n)
        return false;
    for (size_t i = 0; i < n; i++) {
        char a = nocase ? lower(s.ptr[i]) : s.ptr[i];
        char b = nocase ? lower(lit[i]) : lit[i];
        if (a != b)
            return false;
    }
    return true;
}

/* Walks a list of tokens separated by commas and/or whitespace: the shape of
 * Connection, Upgrade and Sec-WebSocket-Protocol alike (RFC 9110 5.6.1 says
 * commas; some clients also separate subprotocols with bare spaces). */
static bool list_has(ws_slice_t list, const char *token, bool nocase) {
    if (!list.ptr)
        return false;
    size_t i = 0;
    while (i < list.len) {
        while (i < list.len && (list.ptr[i] == ',' || is_ows(list.ptr[i])))
            i++;
        size_t start = i;
        while (i < list.len && list.ptr[i] != ',' && !is_ows(list.ptr[i]))
            i++;
        if (i > start && slice_eq((ws_slice_t){list.ptr + start, i - start}, token, nocase))
            return true;
    }
    return false;
}

static bool is_base64_char(char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' ||
           c == '/';
}

/* The key must be the base64 form of exactly 16 bytes: 22 alphabet characters
 * and the padding "==". The alphabet is checked here because EVP_DecodeBlock
 * lets a '=' through in the middle of its input (found by fuzz_ws_handshake);
 * it does not strip padding either (24 characters always give 18 bytes). */
static bool key_is_valid(ws_slice_t key) {
    if (key.len != 24 || key.ptr[22] != '=' || key.ptr[23] != '=')
        return false;
    for (size_t i = 0; i < 22; i++)
        if (!is_base64_char(key.ptr[i]))
            return false;
    unsigned char out[18];
    return EVP_DecodeBlock(out, (const unsigned char *)key.ptr, 24) == 18;
}

static int refuse(ws_handshake_res_t *res, int status, const char *reason) {
    res->status = status;
    res->reason = reason;
    return -1;
}

int ws_handshake_check(const ws_handshake_req_t *req, ws_handshake_res_t *res) {
    memset(res, 0, sizeof(*res));
    if (!req->method.ptr || !slice_eq(req->method, "GET", false))
        return refuse(res, 405, "WebSocket handshake must use GET");
    if (req->http_major < 1 || (req->http_major == 1 && req->http_minor < 1))
        return refuse(res, 400, "WebSocket handshake needs HTTP/1.1 or later");
    if (!list_has(req->upgrade, "websocket", true))
        return refuse(res, 400, "missing Upgrade: websocket");
    if (!list_has(req->connection, "upgrade", true))
        return refuse(res, 400, "missing Connection: Upgrade");
    ws_slice_t version = trim(req->version);
    if (!version.ptr || !slice_eq(version, "13", false))
        return refuse(res, 426, "unsupported Sec-WebSocket-Version (need 13)");
    ws_slice_t key = trim(req->key);
    if (!key.ptr || !key_is_valid(key))
        return refuse(res, 400, "invalid Sec-WebSocket-Key");
    /* Subprotocol names are case-sensitive (RFC 6455 section 11.3.4);
     * offers we do not know are ignored: the client is then a legacy one. */
    res->v1 = list_has(req->protocol, WS_SUBPROTOCOL, false);
    ws_handshake_accept(key.ptr, key.len, res->accept);
    res->status = 101;
    return 0;
}

void ws_handshake_accept(const char *key, size_t key_len, char out[29]) {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    /* SHA-1 cannot fail on valid input; only allocation can, and out of
     * memory for our own bookkeeping aborts (as xmalloc does). */
    if (!ctx || !EVP_DigestInit_ex(ctx, EVP_sha1(), NULL) || !EVP_DigestUpdate(ctx, key, key_len) ||
        !EVP_DigestUpdate(ctx, WS_GUID, sizeof(WS_GUID) - 1) ||
        !EVP_DigestFinal_ex(ctx, md, &mdlen) || mdlen != 20) {
        fputs("tertulia: SHA-1 unavailable\n", stderr);
        abort();
    }
    EVP_MD_CTX_free(ctx);
    /* 20 bytes → 28 base64 characters, and EVP_EncodeBlock adds the NUL. */
    EVP_EncodeBlock((unsigned char *)out, md, 20);
}

size_t ws_handshake_response_write(const ws_handshake_res_t *res, char *out, size_t cap) {
    char ext[WS_DEFLATE_RESPONSE_MAX];
    ws_deflate_response_write(&res->deflate, ext, sizeof(ext));
    int n =
        snprintf(out, cap,
                 "HTTP/1.1 101 Switching Protocols\r\n"
                 "Upgrade: websocket\r\n"
                 "Connection: Upgrade\r\n"
                 "Sec-WebSocket-Accept: %s\r\n"
                 "%s%s"
                 "\r\n",
                 res->accept, res->v1 ? "Sec-WebSocket-Protocol: " WS_SUBPROTOCOL "\r\n" : "", ext);
    if (n < 0 || (size_t)n >= cap)
        return 0;
    return (size_t)n;
}
