/* TLS contexts (certificate and key, the server's protocol settings) and
 * the record glue under every TLS stream: two BIOs per loop shared by all
 * its SSL objects, reading the ciphertext the caller is feeding and handing
 * every record written to the caller's sink. Nothing here touches a socket
 * (stream_tls.c does); contexts load on any thread. */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "core/xmalloc.h"
#include "transport/tls_glue.h"
#include "transport/transport_int.h"

struct tt_tls_ctx_s {
    atomic_uint refs;
    SSL_CTX *ctx;
    char desc[320];
};

/* ---- the shared BIOs ---- */

static BIO_METHOD *glue_method;
static CRYPTO_ONCE glue_once = CRYPTO_ONCE_STATIC_INIT;

static int glue_read(BIO *b, char *out, int len) {
    tt_tls_io_t *io = BIO_get_data(b);
    BIO_clear_retry_flags(b);
    if (io->in_len == 0) {
        BIO_set_retry_read(b);
        return -1;
    }
    size_t n = (size_t)len < io->in_len ? (size_t)len : io->in_len;
    memcpy(out, io->in, n);
    io->in += n;
    io->in_len -= n;
    return (int)n;
}

static int glue_write(BIO *b, const char *p, int len) {
    tt_tls_io_t *io = BIO_get_data(b);
    BIO_clear_retry_flags(b);
    /* The sink always takes everything: the stream's queue bound is
     * checked on the plaintext before it is encrypted. */
    io->out(io->out_ctx, (const uint8_t *)p, (size_t)len);
    return len;
}

static long glue_ctrl(BIO *b, int cmd, long num, void *ptr) {
    (void)b, (void)num, (void)ptr;
    return cmd == BIO_CTRL_FLUSH ? 1 : 0;
}

static void glue_method_init(void) {
    glue_method = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "tertulia");
    BIO_meth_set_read(glue_method, glue_read);
    BIO_meth_set_write(glue_method, glue_write);
    BIO_meth_set_ctrl(glue_method, glue_ctrl);
}

void tt__tls_io_init(tt_tls_io_t *io) {
    memset(io, 0, sizeof(*io));
    CRYPTO_THREAD_run_once(&glue_once, glue_method_init);
    io->rbio = BIO_new(glue_method);
    io->wbio = BIO_new(glue_method);
    if (io->rbio == NULL || io->wbio == NULL)
        abort();
    BIO_set_data(io->rbio, io);
    BIO_set_data(io->wbio, io);
    BIO_set_init(io->rbio, 1);
    BIO_set_init(io->wbio, 1);
}

void tt__tls_io_dispose(tt_tls_io_t *io) {
    BIO_free(io->rbio);
    BIO_free(io->wbio);
    io->rbio = io->wbio = NULL;
}

SSL *tt__tls_new(tt_tls_io_t *io, SSL_CTX *ctx) {
    SSL *ssl = SSL_new(ctx);
    if (ssl == NULL)
        abort();
    /* Each SSL takes a reference on the shared pair: no BIO per socket. */
    BIO_up_ref(io->rbio);
    BIO_up_ref(io->wbio);
    SSL_set_bio(ssl, io->rbio, io->wbio);
    SSL_set_accept_state(ssl);
    return ssl;
}

/* ---- records ---- */

static const char *error_reason(const char *fallback) {
    unsigned long e = ERR_peek_last_error();
    const char *r = e ? ERR_reason_error_string(e) : NULL;
    ERR_clear_error();
    return r ? r : fallback;
}

int tt__tls_feed(tt_tls_io_t *io, SSL *ssl, const uint8_t *in, size_t len, uint8_t *dst, size_t cap,
                 size_t *got, bool *up, const char **why) {
    io->in = in;
    io->in_len = len;
    ERR_clear_error();
    if (!*up) {
        int r = SSL_do_handshake(ssl);
        if (r != 1) {
            int e = SSL_get_error(ssl, r);
            if (e == SSL_ERROR_WANT_READ && io->in_len == 0)
                return TT_TLS_AGAIN;
            *why = error_reason("TLS handshake failed");
            return TT_TLS_ERROR;
        }
        *up = true;
    }
    /* Until the input is consumed and OpenSSL holds no decrypted bytes: a
     * record read from the input is always fully delivered here. */
    for (;;) {
        if (*got >= cap) {
            *why = "input over the limit";
            return TT_TLS_ERROR;
        }
        int n = SSL_read(ssl, dst + *got, (int)(cap - *got > INT32_MAX ? INT32_MAX : cap - *got));
        if (n > 0) {
            *got += (size_t)n;
            continue;
        }
        int e = SSL_get_error(ssl, n);
        if (e == SSL_ERROR_WANT_READ && io->in_len == 0)
            return TT_TLS_AGAIN;
        if (e == SSL_ERROR_ZERO_RETURN)
            return TT_TLS_EOF;
        *why = error_reason("TLS read failed");
        return TT_TLS_ERROR;
    }
}

int tt__tls_write(tt_tls_io_t *io, SSL *ssl, const uint8_t *p, size_t len, const char **why) {
    (void)io;
    ERR_clear_error();
    while (len > 0) {
        int chunk = len > (1u << 30) ? (1 << 30) : (int)len;
        int n = SSL_write(ssl, p, chunk);
        if (n <= 0) {
            *why = error_reason("TLS write failed");
            return TT_TLS_ERROR;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

void tt__tls_shutdown(tt_tls_io_t *io, SSL *ssl) {
    (void)io;
    ERR_clear_error();
    /* Sends close_notify; the peer's answer, if any, arrives as EOF. */
    SSL_shutdown(ssl);
    ERR_clear_error();
}

const char *tt__tls_alpn(SSL *ssl, unsigned *len) {
    const unsigned char *p = NULL;
    SSL_get0_alpn_selected(ssl, &p, len);
    return *len ? (const char *)p : NULL;
}

/* ---- contexts ---- */

static const unsigned char ALPN_HTTP11[] = "\x08http/1.1";

/* ALPN: http/1.1 when the client offers it; otherwise go on without ALPN
 * (a client that offers only h2 still gets HTTP/1.1, as before ALPN). */
static int on_alpn(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                   const unsigned char *in, unsigned int inlen, void *arg) {
    (void)ssl, (void)arg;
    unsigned char *sel;
    if (SSL_select_next_proto(&sel, outlen, ALPN_HTTP11, sizeof(ALPN_HTTP11) - 1, in, inlen) ==
        OPENSSL_NPN_NEGOTIATED) {
        *out = sel;
        return SSL_TLSEXT_ERR_OK;
    }
    return SSL_TLSEXT_ERR_NOACK;
}

int tt__tls_ctx_setup(SSL_CTX *ctx) {
    if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1 ||
        SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION) != 1)
        return -1;
    /* No renegotiation (a client could make the server redo the costly
     * part at will); the cipher server's order; tickets stay on. */
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
    /* An idle connection keeps no read or write buffer inside OpenSSL. */
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    /* Resumption by tickets only (stateless): no server-side cache that
     * grows with the number of clients. */
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_alpn_select_cb(ctx, on_alpn, NULL);
    return 0;
}

tt_tls_ctx_t *tt__tls_ctx_wrap(SSL_CTX *ctx) {
    tt_tls_ctx_t *c = xcalloc(1, sizeof(*c));
    atomic_init(&c->refs, 1);
    c->ctx = ctx;
    X509 *x = SSL_CTX_get0_certificate(ctx);
    snprintf(c->desc, sizeof(c->desc), "no certificate");
    if (x != NULL) {
        char subj[160] = "?", serial[80] = "?", until[40] = "?";
        X509_NAME_oneline(X509_get_subject_name(x), subj, sizeof(subj));
        BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(x), NULL);
        char *hex = bn ? BN_bn2hex(bn) : NULL;
        if (hex != NULL)
            snprintf(serial, sizeof(serial), "%s", hex);
        OPENSSL_free(hex);
        BN_free(bn);
        BIO *m = BIO_new(BIO_s_mem());
        if (m != NULL && ASN1_TIME_print(m, X509_get0_notAfter(x)) == 1) {
            int n = BIO_read(m, until, sizeof(until) - 1);
            until[n > 0 ? n : 0] = '\0';
        }
        BIO_free(m);
        snprintf(c->desc, sizeof(c->desc), "subject %s, serial %s, expires %s", subj, serial,
                 until);
    }
    return c;
}

SSL_CTX *tt__tls_ctx_ssl(const tt_tls_ctx_t *c) {
    return c->ctx;
}

int tt_tls_ctx_load(const char *cert_file, const char *key_file, tt_tls_ctx_t **out, char *err,
                    size_t errlen) {
    *out = NULL;
    ERR_clear_error();
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (ctx == NULL || tt__tls_ctx_setup(ctx) < 0) {
        snprintf(err, errlen, "cannot set up TLS: %s", error_reason("?"));
        SSL_CTX_free(ctx);
        return -1;
    }
    if (SSL_CTX_use_certificate_chain_file(ctx, cert_file) != 1) {
        snprintf(err, errlen, "cannot load the certificate %s: %s", cert_file,
                 error_reason("not a PEM certificate"));
        goto fail;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, key_file, SSL_FILETYPE_PEM) != 1) {
        snprintf(err, errlen, "cannot load the private key %s: %s", key_file,
                 error_reason("not a PEM private key"));
        goto fail;
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
        snprintf(err, errlen, "the private key %s does not match the certificate %s: %s", key_file,
                 cert_file, error_reason("mismatch"));
        goto fail;
    }
    *out = tt__tls_ctx_wrap(ctx);
    return 0;
fail:
    SSL_CTX_free(ctx);
    return -1;
}

const char *tt_tls_ctx_describe(const tt_tls_ctx_t *c) {
    return c->desc;
}

tt_tls_ctx_t *tt_tls_ctx_ref(tt_tls_ctx_t *c) {
    atomic_fetch_add(&c->refs, 1);
    return c;
}

void tt_tls_ctx_unref(tt_tls_ctx_t *c) {
    if (c == NULL || atomic_fetch_sub(&c->refs, 1) != 1)
        return;
    /* OpenSSL's own count keeps the SSL_CTX while connections use it. */
    SSL_CTX_free(c->ctx);
    free(c);
}

/* ---- loading off the loop ---- */

typedef struct load_job_s {
    uv_work_t req;
    tt_tls_load_cb cb;
    void *ctx;
    tt_tls_ctx_t *result;
    char err[512];
    char *cert, *key;
} load_job_t;

static void load_work(uv_work_t *req) {
    load_job_t *j = req->data;
    tt_tls_ctx_load(j->cert, j->key, &j->result, j->err, sizeof(j->err));
}

static void load_done(uv_work_t *req, int status) {
    load_job_t *j = req->data;
    if (status < 0 && j->result == NULL)
        snprintf(j->err, sizeof(j->err), "%s", uv_strerror(status));
    j->cb(j->ctx, j->result, j->result ? NULL : j->err);
    free(j->cert);
    free(j->key);
    free(j);
}

void tt_tls_ctx_load_async(tt_loop_t *loop, const char *cert_file, const char *key_file,
                           tt_tls_load_cb cb, void *ctx) {
    load_job_t *j = xcalloc(1, sizeof(*j));
    j->req.data = j;
    j->cb = cb;
    j->ctx = ctx;
    j->cert = xstrdup(cert_file);
    j->key = xstrdup(key_file);
    int r = uv_queue_work(&loop->uv, &j->req, load_work, load_done);
    if (r < 0) {
        snprintf(j->err, sizeof(j->err), "%s", uv_strerror(r));
        load_done(&j->req, r);
    }
}
