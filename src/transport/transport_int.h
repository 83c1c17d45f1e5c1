/* Internals of src/transport: the loop and stream structures. Only the
 * files of src/transport include this (and <uv.h>). */
#ifndef TT_TRANSPORT_INT_H
#define TT_TRANSPORT_INT_H

#include <uv.h>

#include "core/list.h"
#include "transport/transport.h"

/* One queued piece of output: a reference on a shared buffer, or a static
 * byte range (embedded web assets) when buf is NULL. Entries come from a
 * loop-wide free list over mapped slabs (stream.c), so queuing a broadcast
 * allocates nothing. */
typedef struct tt_wq_entry_s {
    struct tt_wq_entry_s *next;
    tt_buf_t *buf;
    const uint8_t *ptr;
    size_t len;
} tt_wq_entry_t;

/* A write queue: the endpoint's output (plaintext) on every stream, and on
 * a TLS stream also the ciphertext waiting for the socket. */
typedef struct tt_wq_s {
    tt_wq_entry_t *head, *tail;
    size_t bytes; /* unsent bytes queued */
    size_t off;   /* bytes of head already written (or encrypted) */
} tt_wq_t;

/* The TLS state of a TLS stream (stream_tls.c), allocated at accept; plain
 * streams have none. */
typedef struct tt_tls_conn_s {
    struct ssl_st *ssl;
    tt_wq_t wire;      /* ciphertext not yet written */
    uint64_t deadline; /* loop time by which the handshake must finish (0: none) */
    const char *plain_reply;
} tt_tls_conn_t;

enum {
    TT_S_CLOSING = 1 << 0,    /* no more input is processed; closes after the flush */
    TT_S_FINAL = 1 << 1,      /* the final bytes are queued: nothing may follow */
    TT_S_HARD_CLOSE = 1 << 2, /* close the socket as soon as the queue is flushed */
    TT_S_SHUT = 1 << 3,       /* uv_shutdown issued */
    TT_S_WRITING = 1 << 4,    /* a uv_write is in flight */
    TT_S_DEAD = 1 << 5,       /* uv_close called */
    TT_S_PAUSED = 1 << 6,     /* the endpoint stopped reading */
    TT_S_TLS_SEEN = 1 << 7,   /* TLS: the first input byte was checked */
    TT_S_TLS_UP = 1 << 8,     /* TLS: the handshake is done */
    TT_S_TLS_BYE = 1 << 9,    /* TLS: our close_notify is queued */
};

/* Every open connection has one, so its layout counts (432 bytes, 248 of
 * them libuv's handle): the 32-bit fields are packed together, and the
 * peer's address is kept as bytes and formatted only when asked for. */
struct tt_stream_s {
    uv_tcp_t tcp; /* first: the handle's address is the stream's */
    tt_loop_t *loop;
    const tt_stream_handler_t *handler;
    tt_link_t all;     /* loop->streams */
    tt_link_t pending; /* loop->pending: output to write this iteration */
    tt_link_t resume;  /* loop->resume: kept input to present again */
    uint32_t flags;
    unsigned inflight; /* entries covered by the uv_write in flight */
    /* Input not yet consumed (partial head or frame); NULL while empty, so
     * an idle stream holds no input buffer. */
    uint8_t *in;
    uint32_t in_len, in_cap;
    uint32_t max_input;
    /* The peer: AF_INET or AF_INET6 (0: unknown), port, address bytes. */
    uint16_t peer_family, peer_port;
    uint8_t peer_addr[16];
    /* Output: what the endpoint queued; on a TLS stream, plaintext. */
    tt_wq_t q;
    tt_tls_conn_t *tls; /* NULL: plain TCP */
    size_t max_queue;
    uint64_t written; /* bytes handed to the kernel */
    /* No uv_write_t or uv_shutdown_t here: they are allocated only for a
     * short write or a close (192 and 80 bytes an idle stream keeps none of). */
    uint64_t close_deadline; /* loop time after which a closing stream is dropped */
    const char *close_reason;
    /* The endpoint's memory follows (ext_size bytes), max-aligned. */
    _Alignas(max_align_t) unsigned char ext[];
};

struct tt_loop_s {
    uv_loop_t uv;
    uv_prepare_t prepare; /* before each poll: before_flush, then the flush pass */
    uv_check_t check;     /* after each poll: the iteration's clock starts */
    uint64_t iter_start;  /* uv_hrtime() when the poll returned; 0 before the first */
    tt_loop_stats_t stats;
    uv_idle_t idle; /* keeps the poll from blocking while input waits to resume */
    bool idle_on;
    tt_loop_cb before_flush;
    void *before_flush_ctx;
    tt_link_t streams; /* every open stream */
    size_t nstreams;
    tt_link_t pending; /* streams with output */
    tt_link_t resume;  /* streams whose kept input must be presented again */
    tt_wq_entry_t *free_entries;
    size_t nfree_entries;
    struct entry_slab_s *entry_slabs; /* where every entry lives (stream.c) */
    size_t nentries;                  /* in all the slabs, free or not */
    /* Giving memory back when the loop goes quiet (tt_loop_sweep): the
     * bytes moved by the last sweep, and whether a busy sweep came since
     * the last time memory was given back. */
    uint64_t sweep_bytes;
    bool release_due;
    uint8_t *readbuf; /* the loop-wide read buffer */
    size_t readbuf_cap;
    /* Where a stream's small queued frames are copied to go out in one
     * send() (stream.c, TT_CORK_BYTES): one per loop, reused stream after
     * stream, so it stays in the cache. */
    uint8_t *cork;
    struct tt_tls_loop_s *tls; /* TLS streams' shared state, made with the first */
    void (*refusal_log)(void *ctx, tt_stream_t *s, const char *why);
    void *refusal_ctx;
};

/* The loop's cork buffer, and the largest queued piece copied into it:
 * longer ones go out by reference (writev). */
#define TT_CORK_BYTES (16u * 1024)
#define TT_CORK_PIECE 1024u

/* stream.c: the resume pass, run from the loop's idle/prepare handles. */
void tt__stream_resume_all(tt_loop_t *loop);
void tt__loop_free_entries(tt_loop_t *loop);
/* loop.c: keeps the poll from blocking until the resume pass ran. */
void tt__loop_idle_start(tt_loop_t *loop);

/* stream.c, for stream_tls.c: queues and the read path's tail. */
tt_wq_entry_t *tt__entry_get(tt_loop_t *loop);
void tt__wq_push(tt_wq_t *q, tt_wq_entry_t *e);
void tt__wq_consume(tt_loop_t *loop, tt_wq_t *q, size_t n);
void tt__wq_clear(tt_loop_t *loop, tt_wq_t *q);
/* Presents decrypted input data[0..len) (own: it lies in s->in) as a read. */
void tt__stream_input(tt_stream_t *s, uint8_t *data, size_t len, bool own);
/* The peer ended its input (EOF or close_notify). */
void tt__stream_eof(tt_stream_t *s);
void tt__stream_mark_pending(tt_stream_t *s);
/* Room for `need` more input bytes behind s->in. */
void tt__stream_in_reserve(tt_stream_t *s, size_t need);

/* stream_tls.c: the TLS stream. */
void tt__tls_accept(tt_stream_t *s, tt_tls_ctx_t *ctx, unsigned handshake_ms,
                    const char *plain_reply);
/* Ciphertext just read into data[0..len) (the loop's read buffer). */
void tt__tls_on_read(tt_stream_t *s, uint8_t *data, size_t len);
/* Moves plaintext from s->q into records on s->tls->wire, as much as one
 * batch, and close_notify once a closing stream's plaintext is done. */
void tt__tls_encrypt(tt_stream_t *s);
void tt__tls_free(tt_stream_t *s);
void tt__tls_sweep(tt_stream_t *s, uint64_t now);
void tt__tls_loop_free(tt_loop_t *loop);

#endif
