/* Fuzzer for the TLS record glue under every TLS stream
 * (src/transport/tls.c: tt__tls_feed, tt__tls_write, tt__tls_shutdown on
 * the loop-wide shared BIOs), the functions stream_tls.c calls with what
 * the socket read. The key and a self-signed certificate are made in memory
 * at start (no files). The first input byte picks the mode:
 *
 *  - even: raw records. The rest is cut into chunks (a length byte, then
 *    the bytes) fed to a fresh server, as reads from a hostile client.
 *  - odd: a real client (OpenSSL, memory BIOs) completes a handshake with
 *    the server first; then the rest is a list of steps (op, length, bytes):
 *    the client sends application data, the server sends some, raw bytes
 *    are injected into the client's stream, or a byte of the client's next
 *    records is flipped.
 *
 * Invariants: plaintext never exceeds its buffer; a feed that did not fail
 * consumed every input byte; without injection or corruption every byte
 * the client sent arrives at the server exactly, and every byte the server
 * sent arrives at the client; after a failure nothing more is fed. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include "transport/tls_glue.h"

#include "fuzz_check.h"

#define OUT_MAX (1 << 20)
#define PLAIN_MAX (64 * 1024)

static SSL_CTX *server_ctx, *client_ctx;
static tt_tls_io_t io;

/* What the server wrote (to the client). */
static uint8_t *out_buf;
static size_t out_len;

static void sink(void *ctx, const uint8_t *p, size_t len) {
    (void)ctx;
    CHECK(out_len + len <= OUT_MAX);
    memcpy(out_buf + out_len, p, len);
    out_len += len;
}

static void make_contexts(void) {
    EVP_PKEY *key = EVP_EC_gen("P-256");
    CHECK(key != NULL);
    X509 *x = X509_new();
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), 0);
    X509_gmtime_adj(X509_getm_notAfter(x), 86400);
    X509_set_pubkey(x, key);
    X509_NAME *name = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"fuzz", -1, -1, 0);
    X509_set_issuer_name(x, name);
    CHECK(X509_sign(x, key, EVP_sha256()) > 0);
    server_ctx = SSL_CTX_new(TLS_server_method());
    CHECK(server_ctx != NULL && tt__tls_ctx_setup(server_ctx) == 0);
    CHECK(SSL_CTX_use_certificate(server_ctx, x) == 1);
    CHECK(SSL_CTX_use_PrivateKey(server_ctx, key) == 1);
    X509_free(x);
    EVP_PKEY_free(key);
    client_ctx = SSL_CTX_new(TLS_client_method());
    CHECK(client_ctx != NULL);
    SSL_CTX_set_verify(client_ctx, SSL_VERIFY_NONE, NULL);
    tt__tls_io_init(&io);
    io.out = sink;
    out_buf = malloc(OUT_MAX);
}

typedef struct server_s {
    SSL *ssl;
    bool up, failed, eof;
    uint8_t plain[PLAIN_MAX + 4 * TT_TLS_PLAIN_SLACK];
    size_t plain_len;
} server_t;

/* One read from the socket, as stream_tls.c does it. */
static void server_feed(server_t *s, const uint8_t *p, size_t len) {
    if (s->failed || s->eof || len == 0)
        return;
    /* Like the stream: room for this input and one record behind what the
     * endpoint kept; here the "endpoint" keeps nothing past PLAIN_MAX. */
    if (s->plain_len > PLAIN_MAX)
        s->plain_len = 0;
    size_t cap = len + TT_TLS_PLAIN_SLACK;
    if (cap > sizeof(s->plain) - s->plain_len)
        cap = sizeof(s->plain) - s->plain_len;
    size_t got = 0;
    const char *why = NULL;
    int r = tt__tls_feed(&io, s->ssl, p, len, s->plain + s->plain_len, cap, &got, &s->up, &why);
    CHECK(got <= cap);
    if (r == TT_TLS_ERROR) {
        CHECK(why != NULL && why[0] != '\0');
        s->failed = true;
    } else {
        CHECK(io.in_len == 0); /* every byte consumed */
        if (r == TT_TLS_EOF)
            s->eof = true;
    }
    s->plain_len += got;
}

static void raw_mode(const uint8_t *data, size_t size) {
    server_t *s = calloc(1, sizeof(*s));
    s->ssl = tt__tls_new(&io, server_ctx);
    out_len = 0;
    size_t pos = 0;
    while (pos < size && !s->failed) {
        size_t n = data[pos++];
        if (n > size - pos)
            n = size - pos;
        server_feed(s, data + pos, n);
        pos += n;
    }
    if (s->up && !s->failed) {
        const char *why;
        CHECK(tt__tls_write(&io, s->ssl, (const uint8_t *)"bye", 3, &why) == 0);
        tt__tls_shutdown(&io, s->ssl);
    }
    SSL_free(s->ssl);
    free(s);
    ERR_clear_error();
}

/* Moves what the client wrote to the server (corrupting one byte if
 * asked), and what the server wrote to the client. */
static void pump(SSL *c, BIO *c_in, BIO *c_out, server_t *s, int flip) {
    uint8_t buf[16384];
    int n;
    while ((n = BIO_read(c_out, buf, sizeof(buf))) > 0) {
        if (flip >= 0)
            buf[(size_t)flip % (size_t)n] ^= 0x5a;
        flip = -1;
        server_feed(s, buf, (size_t)n);
    }
    if (out_len > 0) {
        BIO_write(c_in, out_buf, (int)out_len);
        out_len = 0;
    }
    (void)c;
}

static void guided_mode(const uint8_t *data, size_t size) {
    server_t *s = calloc(1, sizeof(*s));
    s->ssl = tt__tls_new(&io, server_ctx);
    out_len = 0;
    SSL *c = SSL_new(client_ctx);
    BIO *c_in = BIO_new(BIO_s_mem()), *c_out = BIO_new(BIO_s_mem());
    SSL_set_bio(c, c_in, c_out);
    SSL_set_connect_state(c);
    if (size > 0 && (data[0] & 2))
        SSL_set_max_proto_version(c, TLS1_2_VERSION);
    for (int i = 0; i < 10 && !(s->up && SSL_is_init_finished(c)); i++) {
        SSL_do_handshake(c);
        pump(c, c_in, c_out, s, -1);
    }
    CHECK(s->up && !s->failed);
    bool damaged = false;
    size_t sent_to_server = 0, sent_to_client = 0, got_by_client = 0;
    static uint8_t expect_c[PLAIN_MAX * 2], got_c[PLAIN_MAX * 2];
    size_t pos = 0;
    s->plain_len = 0;
    while (pos + 2 <= size && !s->failed && !s->eof) {
        uint8_t op = data[pos] & 3;
        size_t n = data[pos + 1];
        pos += 2;
        if (n > size - pos)
            n = size - pos;
        const uint8_t *p = data + pos;
        pos += n;
        const char *why;
        switch (op) {
        case 0: /* the client sends n bytes */
            if (n > 0 && SSL_write(c, p, (int)n) == (int)n) {
                if (!damaged && sent_to_server + n <= PLAIN_MAX)
                    CHECK(s->plain_len == sent_to_server);
                sent_to_server += n;
            }
            pump(c, c_in, c_out, s, -1);
            if (!damaged && !s->failed && sent_to_server <= PLAIN_MAX) {
                CHECK(s->plain_len == sent_to_server);
                CHECK(memcmp(s->plain + s->plain_len - n, p, n) == 0);
            }
            break;
        case 1: /* the server sends n bytes */
            if (n > 0 && sent_to_client + n <= sizeof(expect_c)) {
                CHECK(tt__tls_write(&io, s->ssl, p, n, &why) == 0);
                memcpy(expect_c + sent_to_client, p, n);
                sent_to_client += n;
            }
            pump(c, c_in, c_out, s, -1);
            int k;
            while (got_by_client < sizeof(got_c) &&
                   (k = SSL_read(c, got_c + got_by_client, (int)(sizeof(got_c) - got_by_client))) >
                       0)
                got_by_client += (size_t)k;
            if (!damaged)
                CHECK(got_by_client == sent_to_client &&
                      memcmp(got_c, expect_c, got_by_client) == 0);
            break;
        case 2: /* raw bytes injected into the client's stream */
            damaged = true;
            server_feed(s, p, n);
            break;
        case 3: /* the client's next records, with one byte flipped */
            if (n > 0 && SSL_write(c, p, (int)n) == (int)n) {
                damaged = true;
                pump(c, c_in, c_out, s, n > 1 ? p[0] : 0);
            }
            break;
        }
    }
    if (!s->failed && !s->eof) {
        tt__tls_shutdown(&io, s->ssl);
        pump(c, c_in, c_out, s, -1);
    }
    SSL_free(c);
    SSL_free(s->ssl);
    free(s);
    ERR_clear_error();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (server_ctx == NULL)
        make_contexts();
    if (size == 0)
        return 0;
    if (data[0] & 1)
        guided_mode(data + 1, size - 1);
    else
        raw_mode(data + 1, size - 1);
    return 0;
}
