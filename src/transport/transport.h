/* The transport: byte streams under the protocols, and the few loop services
 * the server needs (a pass before each poll, timers, signals, wake-ups from
 * other threads). The only code on <uv.h>; nothing here parses a protocol.
 *
 * A stream moves bytes. Its protocol endpoint (HTTP/1.1, then WebSocket
 * after an upgrade) is a table of callbacks, tt_stream_handler_t, and a
 * memory area inside the stream (tt_stream_ext), so adopting a new endpoint
 * on upgrade is a move (uSockets' us_socket_context_adopt_socket), not a
 * switch on a protocol field, and costs no allocation. A stream is plain
 * TCP or TLS (a listener with a tt_tls_ctx_t): the same calls, the same
 * plaintext to on_read and from the send calls, so HTTP, WebSocket and chat
 * code do not know which (stream_tls.c: ciphertext is fed to OpenSSL from
 * the loop's read buffer through one loop-wide BIO pair, and queued
 * plaintext is encrypted at flush, as much as the socket takes).
 *
 * Output is a queue of references on shared buffers (tt_buf_t) or static
 * ranges: queuing a broadcast allocates nothing per recipient. A stream
 * with output joins the loop's flush list once; before the loop polls,
 * every queued stream is written with one gathered write (up to 64
 * buffers), and only what the kernel did not take waits for writability.
 * Every stream has a bound on unsent bytes (tt_stream_set_max_queue); a
 * send past it is refused and reported to the endpoint (on_overflow).
 *
 * Input is read into one loop-wide buffer; only the bytes of a partial
 * head or frame that the endpoint did not consume are kept, in the
 * stream's own buffer, bounded by tt_stream_set_max_input. An endpoint may
 * stop reading (backpressure: HTTP serves one request at a time) and start
 * again; input already received is then presented again before any new
 * read.
 *
 * Lifetimes: a stream is never freed inside its own callbacks. Closing is
 * asynchronous; on_close is the last call an endpoint gets, after which
 * the stream and its ext area are gone. One loop thread owns everything
 * here; only tt_async_send may be called from another thread. */
#ifndef TT_TRANSPORT_TRANSPORT_H
#define TT_TRANSPORT_TRANSPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/hist.h"

typedef struct tt_loop_s tt_loop_t;
typedef struct tt_stream_s tt_stream_t;
typedef struct tt_listener_s tt_listener_t;
typedef struct tt_timer_s tt_timer_t;
typedef struct tt_signal_s tt_signal_t;
typedef struct tt_async_s tt_async_t;
typedef struct tt_tls_ctx_s tt_tls_ctx_t;

typedef void (*tt_loop_cb)(void *ctx);

/* ---- the loop ---------------------------------------------------------- */

/* A new loop. Aborts on out-of-memory. Ignores SIGPIPE process-wide (a
 * write to a peer that went away is an error of that stream). */
tt_loop_t *tt_loop_new(void);
/* Runs until no handle is left (every listener, timer, signal, async and
 * stream closed). Returns 0. */
int tt_loop_run(tt_loop_t *loop);
/* Runs one iteration without blocking (for tests and tools). Returns
 * non-zero while handles remain. */
int tt_loop_run_nowait(tt_loop_t *loop);
/* Frees the loop once tt_loop_run returned (runs pending close callbacks first). */
void tt_loop_free(tt_loop_t *loop);
/* Loop time in milliseconds (monotonic, read once per iteration). */
uint64_t tt_loop_now(const tt_loop_t *loop);

/* Called once per iteration before the loop polls, then every stream with
 * output is written. The server completes its chat work here. */
void tt_loop_set_before_flush(tt_loop_t *loop, tt_loop_cb cb, void *ctx);

/* Writes every stream with output now (also done after before_flush). */
void tt_loop_flush(tt_loop_t *loop);

/* Streams open now (accepted and not yet closed). */
size_t tt_loop_stream_count(const tt_loop_t *loop);

/* Iteration over every open stream, for sweeps and shutdown. A stream may
 * be closed (not freed) during the walk. */
tt_stream_t *tt_loop_first_stream(tt_loop_t *loop);
tt_stream_t *tt_loop_next_stream(tt_stream_t *s);

/* What the loop counts for /metrics: plain integers, updated on the loop
 * thread where the event happens, read by the server when it builds a
 * metrics text (so the hot path pays an addition, never a lock). */
typedef struct tt_loop_stats_s {
    uint64_t bytes_in;    /* read from sockets (ciphertext on TLS streams) */
    uint64_t bytes_out;   /* handed to the kernel (ciphertext on TLS streams) */
    uint64_t accepted[2]; /* streams accepted: [0] plain, [1] TLS */
    /* The work of one iteration, in microseconds: from the return of the
     * poll to the end of the flush before the next poll (timers, input,
     * chat work, writes). Time spent waiting in the poll is not counted. */
    tt_hist_t iteration_us;
} tt_loop_stats_t;
const tt_loop_stats_t *tt_loop_stats(const tt_loop_t *loop);

/* Closes streams whose close has lingered past its deadline (a peer that
 * never answers our FIN); the server calls it from its sweep timer. */
void tt_loop_sweep(tt_loop_t *loop);

/* Timers, signals and wake-ups. *_free closes asynchronously; the callback
 * is never called after it. */
tt_timer_t *tt_timer_new(tt_loop_t *loop, tt_loop_cb cb, void *ctx);
void tt_timer_start(tt_timer_t *t, uint64_t first_ms, uint64_t repeat_ms);
void tt_timer_free(tt_timer_t *t);

tt_signal_t *tt_signal_new(tt_loop_t *loop, int signum, tt_loop_cb cb, void *ctx);
void tt_signal_free(tt_signal_t *sig);

/* cb runs on the loop thread some time after tt_async_send (calls coalesce). */
tt_async_t *tt_async_new(tt_loop_t *loop, tt_loop_cb cb, void *ctx);
/* Thread-safe. */
void tt_async_send(tt_async_t *a);
void tt_async_free(tt_async_t *a);

/* Runs work(ctx) on libuv's thread pool, then done(ctx) on the loop thread
 * (also when the job could not be queued: then work runs on the loop,
 * first). The loop keeps running until done has been called. */
typedef void (*tt_work_cb)(void *ctx);
void tt_loop_work(tt_loop_t *loop, tt_work_cb work, tt_work_cb done, void *ctx);

/* Watches a hiredis asynchronous connection on the loop (hiredis' libuv
 * adapter): its reads and writes run from the loop's poll. Returns 0, or -1
 * when the adapter refused (out of memory, attached already). The adapter's
 * handle closes with the connection (redisAsyncFree). */
struct redisAsyncContext;
int tt_loop_attach_redis(tt_loop_t *loop, struct redisAsyncContext *ac);

/* ---- streams ----------------------------------------------------------- */

/* An endpoint: what a stream's bytes mean. Every callback is optional but
 * on_read. They run on the loop thread, never re-entrantly for one stream. */
typedef struct tt_stream_handler_s {
    /* Input: data[0..len) is borrowed until the call returns (the endpoint
     * may modify it in place, e.g. unmask). Returns the bytes consumed; the
     * rest is kept and presented again, with what arrives next, at the
     * start of a later call. Returning 0 means "need more". The endpoint
     * may stop reading, change handler or close the stream inside. */
    size_t (*on_read)(tt_stream_t *s, uint8_t *data, size_t len);
    /* The peer finished sending (EOF) on a stream that is not closing.
     * Without the callback the stream is closed after its queue is
     * written: output already queued is never dropped by an EOF. */
    void (*on_eof)(tt_stream_t *s);
    /* The queue became empty (everything queued reached the kernel). */
    void (*on_drain)(tt_stream_t *s);
    /* A send of `want` more bytes was refused: it would put the unsent
     * bytes over the stream's max_queue. The endpoint decides (drop the
     * backlog and close with a reason, or abort). */
    void (*on_overflow)(tt_stream_t *s, size_t want);
    /* The stream is closed: the last call; free what the endpoint owns. */
    void (*on_close)(tt_stream_t *s);
} tt_stream_handler_t;

/* The endpoint's memory inside the stream (ext_size bytes, from the
 * listener; zeroed at accept, not touched by the transport afterwards). */
void *tt_stream_ext(tt_stream_t *s);
tt_loop_t *tt_stream_loop(const tt_stream_t *s);
/* "1.2.3.4:5678" or "[::1]:5678" ("?" when unknown). Formatted by each
 * call into a small per-thread ring: valid until the 8th next call on this
 * thread, so a log line may name a few streams; copy it to keep it. */
const char *tt_stream_peer(const tt_stream_t *s);
/* The address part of the peer (no port), and its length; as borrowed as
 * tt_stream_peer's. */
size_t tt_stream_peer_addr(const tt_stream_t *s, const char **addr);

/* Adopts a new endpoint (HTTP → WebSocket). Takes effect for the next
 * bytes (the rest of the current read goes to the new handler). */
void tt_stream_set_handler(tt_stream_t *s, const tt_stream_handler_t *h);

/* The most bytes of unconsumed input the stream keeps (a partial head or
 * frame); more closes the stream ("input over the limit"). */
void tt_stream_set_max_input(tt_stream_t *s, size_t bytes);
/* The most unsent bytes the queue may hold; default from the listener. */
void tt_stream_set_max_queue(tt_stream_t *s, size_t bytes);

/* Backpressure on input. While stopped nothing is read from the socket and
 * no on_read is called. Starting again presents input already received
 * first (in a later loop iteration, never inside this call). */
void tt_stream_read_stop(tt_stream_t *s);
void tt_stream_read_start(tt_stream_t *s);

/* Output. Each returns true if queued; false if the stream is closing (or
 * its final bytes are queued), or over max_queue (on_overflow was called). */
bool tt_stream_send_buf(tt_stream_t *s, tt_buf_t *buf); /* takes its own reference */
bool tt_stream_send_static(tt_stream_t *s, const uint8_t *p, size_t len); /* p outlives s */
bool tt_stream_send_copy(tt_stream_t *s, const void *p, size_t len);
/* Queues a copy of the stream's last bytes (a WebSocket close frame), once,
 * whatever the queue holds: not subject to max_queue, nothing may follow. */
void tt_stream_send_final(tt_stream_t *s, const void *p, size_t len);
/* Drops every queued byte that no write has been handed yet. */
void tt_stream_drop_unsent(tt_stream_t *s);
/* Unsent bytes queued (the bound on output counts these; on a TLS stream,
 * plaintext not yet encrypted plus ciphertext not yet written). */
size_t tt_stream_queued(const tt_stream_t *s);
/* Bytes written to the kernel since accept (write completion in bytes; on
 * a TLS stream these are ciphertext bytes: a measure of progress). */
uint64_t tt_stream_bytes_written(const tt_stream_t *s);
/* True if the stream is TLS (for logs; endpoints behave the same). */
bool tt_stream_is_tls(const tt_stream_t *s);

/* Stops input and closes once the queue is written: half-close (FIN), then
 * wait for the peer's EOF, up to a linger deadline. reason is static, for
 * the log. Idempotent. */
void tt_stream_close_after_flush(tt_stream_t *s, const char *reason);
/* After the flush, close the socket at once instead of waiting for the
 * peer (the peer already closed its side, or it is not reading). */
void tt_stream_set_hard_close(tt_stream_t *s);
/* Closes now, discarding unsent output. */
void tt_stream_abort(tt_stream_t *s, const char *reason);
/* True once a close of any kind began: no more input is processed. */
bool tt_stream_is_closing(const tt_stream_t *s);

/* ---- listeners --------------------------------------------------------- */

typedef struct tt_listener_config_s {
    const char *host;                   /* IPv4 or IPv6 literal */
    int port;                           /* 0 picks a free one */
    size_t ext_size;                    /* bytes of endpoint memory in each stream */
    size_t max_queue;                   /* initial max_queue of each stream */
    size_t max_input;                   /* initial max_input of each stream */
    const tt_stream_handler_t *handler; /* initial endpoint */
    /* Called for each accepted stream (its ext zeroed), before any read. */
    void (*on_accept)(void *ctx, tt_stream_t *s);
    /* Called when accepting failed (e.g. EMFILE); may be NULL. */
    void (*on_accept_error)(void *ctx, int err, const char *what);
    void *ctx;
    /* TLS: non-NULL makes every accepted stream a TLS server stream with
     * this context (the listener takes its own reference). Its handshake
     * must finish within tls_handshake_ms of the accept (0: no deadline,
     * enforced by tt_loop_sweep). A client whose first byte is not a TLS
     * handshake record gets tls_plain_reply (static bytes, sent as they
     * are, unencrypted; NULL: nothing) and is closed. */
    tt_tls_ctx_t *tls;
    unsigned tls_handshake_ms;
    const char *tls_plain_reply;
    /* SO_REUSEPORT before bind: other sockets that set it too (other
     * processes of the same user) may listen on the same address, and the
     * kernel spreads connections among them. */
    bool reuse_port;
} tt_listener_config_t;

/* Binds and listens. Returns 0 and *out, or a negative libuv error with err
 * filled ("cannot listen on HOST:PORT: reason"). */
int tt_listen(tt_loop_t *loop, const tt_listener_config_t *cfg, tt_listener_t **out, char *err,
              size_t errlen);
/* The bound address as "HOST:PORT" ("[::1]:PORT" for IPv6). */
void tt_listener_address(const tt_listener_t *l, char *out, size_t cap);
/* Stops accepting and frees the listener (asynchronously). */
void tt_listener_close(tt_listener_t *l);
/* New handshakes on this TLS listener use ctx (a reference is taken and
 * the previous one dropped); streams already accepted keep theirs. */
void tt_listener_set_tls(tt_listener_t *l, tt_tls_ctx_t *ctx);
bool tt_listener_is_tls(const tt_listener_t *l);

/* ---- TLS contexts ------------------------------------------------------ */

/* A server context: certificate chain and key from PEM files, TLS 1.2 and
 * 1.3 only, OpenSSL's default ciphers, ALPN http/1.1 (chosen when offered;
 * clients that offer none or others go on without ALPN), session tickets,
 * no renegotiation. Blocking file I/O: call it at start-up or on a thread
 * (any thread). Returns 0 and *out (one reference), or -1 with err filled
 * ("cannot load the certificate FILE: reason"). */
int tt_tls_ctx_load(const char *cert_file, const char *key_file, tt_tls_ctx_t **out, char *err,
                    size_t errlen);
/* "subject CN=…, serial …, expires …" of the certificate, for the log. */
const char *tt_tls_ctx_describe(const tt_tls_ctx_t *c);
/* Reference counting (loop thread). A context lives on while any
 * connection made with it is open (OpenSSL counts those). */
tt_tls_ctx_t *tt_tls_ctx_ref(tt_tls_ctx_t *c);
void tt_tls_ctx_unref(tt_tls_ctx_t *c);

/* Loads a context off the loop (libuv's thread pool) and calls cb on the
 * loop thread with the new context (a reference the callee owns) or NULL
 * and the error. The paths are copied. */
typedef void (*tt_tls_load_cb)(void *ctx, tt_tls_ctx_t *tls, const char *err);
void tt_tls_ctx_load_async(tt_loop_t *loop, const char *cert_file, const char *key_file,
                           tt_tls_load_cb cb, void *ctx);

/* Refusals the transport decides by itself (a failed or stalled TLS
 * handshake, plain bytes on a TLS port) are reported here, for the
 * server's rate-limited log. why is static or valid for the call. */
void tt_loop_set_refusal_log(tt_loop_t *loop,
                             void (*cb)(void *ctx, tt_stream_t *s, const char *why), void *ctx);

/* A printable libuv/errno error. */
const char *tt_strerror(int err);

#endif
