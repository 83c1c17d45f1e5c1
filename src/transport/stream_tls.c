/* TLS streams: the second implementation behind tt_stream_t. Ciphertext
 * read into the loop's buffer is fed to OpenSSL through the loop's shared
 * BIOs (tls.c) and decrypted into a loop-wide plaintext buffer, or behind
 * the stream's kept input, then presented to on_read exactly as a plain
 * stream's input. At flush, queued plaintext is encrypted a batch at a time
 * into the stream's wire queue, which is written with the same gathered
 * writes as a plain stream's output. An idle TLS stream holds its SSL
 * object and nothing else: no BIO, no buffer (SSL_MODE_RELEASE_BUFFERS). */
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/xmalloc.h"
#include "transport/tls_glue.h"
#include "transport/transport_int.h"

#define TLS_BATCH (64 * 1024) /* ciphertext made per flush step before writing it */
#define WIRE_CHUNK 16384      /* pooled buffer classes (core/buf.c) */
#define WIRE_SMALL 4096

typedef struct tt_tls_loop_s {
    tt_tls_io_t io;
    uint8_t *plain; /* decrypted input of one read: the read buffer's size and a record */
    size_t plain_cap;
    uint8_t scratch[16384]; /* small plaintext entries gathered into one record */
} tt_tls_loop_t;

static tt_tls_loop_t *tls_loop(tt_loop_t *loop) {
    if (loop->tls == NULL) {
        tt_tls_loop_t *tl = xcalloc(1, sizeof(*tl));
        tt__tls_io_init(&tl->io);
        tl->plain_cap = loop->readbuf_cap + TT_TLS_PLAIN_SLACK;
        tl->plain = xmalloc(tl->plain_cap);
        loop->tls = tl;
    }
    return loop->tls;
}

void tt__tls_loop_free(tt_loop_t *loop) {
    tt_tls_loop_t *tl = loop->tls;
    if (tl == NULL)
        return;
    tt__tls_io_dispose(&tl->io);
    free(tl->plain);
    free(tl);
    loop->tls = NULL;
}

void tt_loop_set_refusal_log(tt_loop_t *loop,
                             void (*cb)(void *ctx, tt_stream_t *s, const char *why), void *ctx) {
    loop->refusal_log = cb;
    loop->refusal_ctx = ctx;
}

static void refused(tt_stream_t *s, const char *why) {
    if (s->loop->refusal_log != NULL)
        s->loop->refusal_log(s->loop->refusal_ctx, s, why);
    else
        tt_log_debug("%s: %s", tt_stream_peer(s), why);
}

/* The sink of every record OpenSSL writes for stream ctx: appended to its
 * wire queue in pooled buffers (a record may span two). */
static void wire_out(void *ctx, const uint8_t *p, size_t len) {
    tt_stream_t *s = ctx;
    tt_wq_t *w = &s->tls->wire;
    while (len > 0) {
        tt_wq_entry_t *t = w->tail;
        /* The tail grows only while no write covers it: on_write counts
         * the entries' lengths as the bytes it wrote. */
        if (t == NULL || t->buf == NULL || t->buf->len == t->buf->cap ||
            (s->flags & TT_S_WRITING)) {
            t = tt__entry_get(s->loop);
            /* Handshake messages and small replies take a small pooled
             * buffer; bulk output full ones. */
            t->buf = tt_buf_new(len <= WIRE_SMALL ? WIRE_SMALL : WIRE_CHUNK);
            t->ptr = t->buf->data;
            t->len = 0;
            tt__wq_push(w, t);
        }
        tt_buf_t *b = t->buf;
        size_t n = b->cap - b->len < len ? b->cap - b->len : len;
        memcpy(b->data + b->len, p, n);
        b->len += (uint32_t)n;
        t->len += n;
        w->bytes += n;
        p += n;
        len -= n;
    }
}

static tt_tls_io_t *io_for(tt_stream_t *s) {
    tt_tls_io_t *io = &s->loop->tls->io;
    io->out = wire_out;
    io->out_ctx = s;
    return io;
}

void tt__tls_accept(tt_stream_t *s, tt_tls_ctx_t *ctx, unsigned handshake_ms,
                    const char *plain_reply) {
    tt_tls_loop_t *tl = tls_loop(s->loop);
    tt_tls_conn_t *t = xcalloc(1, sizeof(*t));
    t->ssl = tt__tls_new(&tl->io, tt__tls_ctx_ssl(ctx));
    t->deadline = handshake_ms ? uv_now(&s->loop->uv) + handshake_ms : 0;
    t->plain_reply = plain_reply;
    s->tls = t;
}

void tt__tls_free(tt_stream_t *s) {
    if (s->tls == NULL)
        return;
    tt__wq_clear(s->loop, &s->tls->wire);
    SSL_free(s->tls->ssl);
    free(s->tls);
    s->tls = NULL;
}

void tt__tls_sweep(tt_stream_t *s, uint64_t now) {
    tt_tls_conn_t *t = s->tls;
    if (t->deadline != 0 && !(s->flags & (TT_S_TLS_UP | TT_S_DEAD)) && now >= t->deadline) {
        refused(s, "TLS handshake timeout");
        tt_stream_abort(s, "TLS handshake timeout");
    }
}

/* A fatal TLS error: the alert OpenSSL wrote (if any) goes out, nothing
 * else, then the socket closes. */
static void fail(tt_stream_t *s, const char *why) {
    s->flags |= TT_S_TLS_BYE; /* no close_notify after a fatal alert */
    tt__wq_clear(s->loop, &s->q);
    tt_stream_close_after_flush(s, why);
    tt_stream_set_hard_close(s);
}

/* The first byte of a TLS client is a handshake record (22). Anything else
 * (a plain HTTP request, a scanner) gets the plain reply and a close, at
 * once, instead of a handshake that never completes. */
static bool first_byte_ok(tt_stream_t *s, const uint8_t *data) {
    s->flags |= TT_S_TLS_SEEN;
    if (data[0] == 22)
        return true;
    refused(s, "plain bytes sent to a TLS port");
    const char *reply = s->tls->plain_reply;
    if (reply != NULL) {
        tt_wq_entry_t *e = tt__entry_get(s->loop);
        e->buf = NULL;
        e->ptr = (const uint8_t *)reply;
        e->len = strlen(reply);
        tt__wq_push(&s->tls->wire, e);
    }
    s->flags |= TT_S_TLS_BYE;
    tt_stream_close_after_flush(s, "plain bytes on a TLS port");
    tt_stream_set_hard_close(s);
    return false;
}

void tt__tls_on_read(tt_stream_t *s, uint8_t *data, size_t len) {
    tt_tls_conn_t *t = s->tls;
    if (!(s->flags & TT_S_TLS_SEEN) && !first_byte_ok(s, data))
        return;
    /* A stream closed before its handshake ended (or after a fatal error)
     * has nothing to read. */
    if ((s->flags & TT_S_CLOSING) && !(s->flags & TT_S_TLS_UP))
        return;
    tt_tls_loop_t *tl = s->loop->tls;
    /* Plaintext goes where a plain read would have landed: the loop's
     * buffer, or behind the input the endpoint kept. */
    uint8_t *dst;
    size_t cap;
    bool own = s->in_len > 0;
    if (own) {
        tt__stream_in_reserve(s, len + TT_TLS_PLAIN_SLACK);
        dst = s->in + s->in_len;
        cap = s->in_cap - s->in_len;
    } else {
        dst = tl->plain;
        cap = tl->plain_cap;
    }
    bool up = (s->flags & TT_S_TLS_UP) != 0;
    size_t got = 0;
    const char *why = NULL;
    int r = tt__tls_feed(io_for(s), t->ssl, data, len, dst, cap, &got, &up, &why);
    if (up && !(s->flags & TT_S_TLS_UP)) {
        s->flags |= TT_S_TLS_UP;
        unsigned alen;
        const char *alpn = tt__tls_alpn(t->ssl, &alen);
        tt_log_debug("%s: TLS %s, %s, ALPN %.*s", tt_stream_peer(s), SSL_get_version(t->ssl),
                     SSL_get_cipher_name(t->ssl), alpn ? (int)alen : 4, alpn ? alpn : "none");
    }
    /* Handshake messages, tickets, alerts. */
    if (t->wire.head != NULL)
        tt__stream_mark_pending(s);
    if (r == TT_TLS_ERROR) {
        if (!(s->flags & TT_S_TLS_UP))
            refused(s, why);
        fail(s, why);
        return;
    }
    if (got > 0) {
        if (own) {
            s->in_len += (uint32_t)got;
            tt__stream_input(s, s->in, s->in_len, true);
        } else {
            tt__stream_input(s, dst, got, false);
        }
    }
    if (r == TT_TLS_EOF && !(s->flags & TT_S_DEAD))
        tt__stream_eof(s);
}

void tt__tls_encrypt(tt_stream_t *s) {
    /* Nothing is encrypted before the handshake is done. */
    if (!(s->flags & TT_S_TLS_UP))
        return;
    tt_tls_conn_t *t = s->tls;
    tt_tls_loop_t *tl = s->loop->tls;
    tt_tls_io_t *io = io_for(s);
    while (s->q.head != NULL && t->wire.bytes < TLS_BATCH) {
        tt_wq_entry_t *e = s->q.head;
        size_t left = e->len - s->q.off;
        const uint8_t *src;
        size_t n;
        if (left >= sizeof(tl->scratch)) {
            /* A large entry (a big frame, an asset) is encrypted from where
             * it lies. */
            src = e->ptr + s->q.off;
            n = left < TLS_BATCH ? left : TLS_BATCH;
        } else {
            /* Small entries (chat frames) are gathered into full records:
             * one record per frame would cost a header, a tag and a cipher
             * call for every few dozen bytes. */
            n = 0;
            size_t off = s->q.off;
            for (; e != NULL && n < sizeof(tl->scratch); e = e->next, off = 0) {
                size_t k = e->len - off;
                if (k > sizeof(tl->scratch) - n)
                    k = sizeof(tl->scratch) - n;
                memcpy(tl->scratch + n, e->ptr + off, k);
                n += k;
            }
            src = tl->scratch;
        }
        const char *why;
        if (tt__tls_write(io, t->ssl, src, n, &why) < 0) {
            tt_stream_abort(s, why);
            return;
        }
        tt__wq_consume(s->loop, &s->q, n);
    }
    if (s->q.head == NULL && (s->flags & TT_S_CLOSING) && !(s->flags & TT_S_TLS_BYE)) {
        s->flags |= TT_S_TLS_BYE;
        tt__tls_shutdown(io, t->ssl);
    }
}
