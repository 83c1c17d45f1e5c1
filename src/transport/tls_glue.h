/* The TLS record glue, with no socket: OpenSSL server objects fed from a
 * caller's buffer and writing their records to a caller's sink, through
 * one pair of BIOs shared by every connection of a loop (as uSockets'
 * src/crypto/openssl.c does), so a connection holds no BIO memory of its
 * own. stream_tls.c drives it from the socket; fuzz/fuzz_tls.c drives the
 * same functions with random records. Internal to src/transport (and the
 * fuzzer): the one place that includes OpenSSL's ssl.h. */
#ifndef TT_TRANSPORT_TLS_GLUE_H
#define TT_TRANSPORT_TLS_GLUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/ssl.h>

#include "transport/transport.h"

/* One per loop (or per fuzzer). in/in_len is the ciphertext being fed,
 * consumed by OpenSSL as it reads; out receives every record OpenSSL writes
 * (handshake messages, alerts, tickets, application data), for out_ctx.
 * Both are set by the caller around each call. */
typedef struct tt_tls_io_s {
    BIO *rbio, *wbio;
    const uint8_t *in;
    size_t in_len;
    void (*out)(void *ctx, const uint8_t *p, size_t len);
    void *out_ctx;
} tt_tls_io_t;

void tt__tls_io_init(tt_tls_io_t *io);
void tt__tls_io_dispose(tt_tls_io_t *io);

/* The common server settings (versions, ALPN, tickets, modes) on ctx.
 * Returns 0, or -1 (OpenSSL's error queue says why). */
int tt__tls_ctx_setup(SSL_CTX *ctx);
/* Wraps a set-up SSL_CTX (takes its reference) into a tt_tls_ctx_t. */
tt_tls_ctx_t *tt__tls_ctx_wrap(SSL_CTX *ctx);
SSL_CTX *tt__tls_ctx_ssl(const tt_tls_ctx_t *c);

/* A server SSL object on the io's shared BIOs. */
SSL *tt__tls_new(tt_tls_io_t *io, SSL_CTX *ctx);

enum {
    TT_TLS_AGAIN = 0,  /* every input byte consumed; more input needed */
    TT_TLS_EOF = 1,    /* the peer sent close_notify */
    TT_TLS_ERROR = -1, /* fatal: *why says what (static); an alert may be in out */
};

/* Feeds in[0..len): runs the handshake while it is not done (*up becomes
 * true when it completes), then decrypts application data into
 * dst[0..cap), adding to *got. dst needs room for len + one record
 * (TT_TLS_PLAIN_SLACK): OpenSSL may hold the start of a record from an
 * earlier feed. */
#define TT_TLS_PLAIN_SLACK (16384 + 256)
int tt__tls_feed(tt_tls_io_t *io, SSL *ssl, const uint8_t *in, size_t len, uint8_t *dst, size_t cap,
                 size_t *got, bool *up, const char **why);
/* Encrypts p[0..len) into records (to out). Returns 0 or TT_TLS_ERROR. */
int tt__tls_write(tt_tls_io_t *io, SSL *ssl, const uint8_t *p, size_t len, const char **why);
/* Writes close_notify (to out). */
void tt__tls_shutdown(tt_tls_io_t *io, SSL *ssl);
/* The protocol chosen by ALPN, or NULL. */
const char *tt__tls_alpn(SSL *ssl, unsigned *len);

#endif
