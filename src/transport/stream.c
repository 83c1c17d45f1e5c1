/* Streams: accept, the read path with backpressure, the write queue with
 * its bound, and the close lifecycle. Reads land in the loop's one buffer;
 * only bytes the endpoint did not consume are copied into the stream's own
 * buffer, so an idle stream holds none. Output is queued during the
 * iteration and written once per iteration (tt_loop_flush). A TLS stream
 * (stream_tls.c) differs only in two places: what is read is ciphertext,
 * decrypted before the endpoint sees it, and what is written is the wire
 * queue its plaintext was encrypted into. */
#include <arpa/inet.h>
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>

#include "core/log.h"
#include "core/xmalloc.h"
#include "transport/transport_int.h"

#define IOV_BATCH 64         /* buffers gathered into one write */
#define CLOSE_LINGER_MS 2000 /* how long a closing stream waits for the peer's EOF */

static void on_close(uv_handle_t *h);
static void on_listener_close(uv_handle_t *h);
static void stream_flush(tt_stream_t *s);
static void start_reading(tt_stream_t *s);

/* ---- write queue entries ---- */

/* Entries come from slabs of ENTRY_SLAB_BYTES mapped for the purpose, not
 * one malloc each: a fan-out burst queues one entry per frame per
 * recipient (16,000 at once in the benchmark's fan-out), and entries
 * malloc'ed one by one end up scattered among longer-lived blocks, so the
 * heap cannot give their pages back once the burst is over. A slab is
 * unmapped whole, when the loop is quiet and no entry is in use. */
#define ENTRY_SLAB_BYTES (64u * 1024)

typedef struct entry_slab_s {
    struct entry_slab_s *next;
    _Alignas(tt_wq_entry_t) unsigned char entries[];
} entry_slab_t;

#define ENTRIES_PER_SLAB                                                                           \
    ((ENTRY_SLAB_BYTES - offsetof(entry_slab_t, entries)) / sizeof(tt_wq_entry_t))

static void entry_slab_new(tt_loop_t *loop) {
    entry_slab_t *slab =
        mmap(NULL, ENTRY_SLAB_BYTES, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (slab == MAP_FAILED) {
        fprintf(stderr, "tertulia: out of memory mapping %u bytes\n", ENTRY_SLAB_BYTES);
        abort();
    }
    slab->next = loop->entry_slabs;
    loop->entry_slabs = slab;
    tt_wq_entry_t *e = (tt_wq_entry_t *)(void *)slab->entries;
    for (size_t i = 0; i < ENTRIES_PER_SLAB; i++) {
        e[i].next = loop->free_entries;
        loop->free_entries = &e[i];
    }
    loop->nfree_entries += ENTRIES_PER_SLAB;
    loop->nentries += ENTRIES_PER_SLAB;
}

tt_wq_entry_t *tt__entry_get(tt_loop_t *loop) {
    if (loop->free_entries == NULL)
        entry_slab_new(loop);
    tt_wq_entry_t *e = loop->free_entries;
    loop->free_entries = e->next;
    loop->nfree_entries--;
    e->next = NULL;
    /* The next one is wanted by the next frame queued, a recipient later:
     * fetched meanwhile, it is no cache miss then (a broadcast's entries
     * outgrow the cache). */
    if (loop->free_entries != NULL)
        __builtin_prefetch(loop->free_entries, 1);
    return e;
}

static void entry_put(tt_loop_t *loop, tt_wq_entry_t *e) {
    tt_buf_unref(e->buf);
    e->next = loop->free_entries;
    loop->free_entries = e;
    loop->nfree_entries++;
}

/* Unmaps every slab; only when no entry is in use (all are free). */
static void entry_slabs_unmap(tt_loop_t *loop) {
    while (loop->entry_slabs != NULL) {
        entry_slab_t *slab = loop->entry_slabs;
        loop->entry_slabs = slab->next;
        munmap(slab, ENTRY_SLAB_BYTES);
    }
    loop->free_entries = NULL;
    loop->nfree_entries = loop->nentries = 0;
}

void tt__loop_free_entries(tt_loop_t *loop) {
    entry_slabs_unmap(loop);
}

void tt__wq_clear(tt_loop_t *loop, tt_wq_t *q) {
    while (q->head != NULL) {
        tt_wq_entry_t *e = q->head;
        q->head = e->next;
        entry_put(loop, e);
    }
    q->tail = NULL;
    q->bytes = 0;
    q->off = 0;
}

/* What the socket writes: the endpoint's queue, or a TLS stream's records. */
static tt_wq_t *wire_of(tt_stream_t *s) {
    return s->tls != NULL ? &s->tls->wire : &s->q;
}

static void queue_clear(tt_stream_t *s) {
    tt__wq_clear(s->loop, &s->q);
    if (s->tls != NULL)
        tt__wq_clear(s->loop, &s->tls->wire);
}

void tt_stream_drop_unsent(tt_stream_t *s) {
    /* Entries covered by the uv_write in flight stay: libuv still reads
     * their bytes. On a TLS stream no write covers plaintext, but the
     * records already made must all go out (dropping one would break the
     * sequence of the rest), and so must the rest of an entry they began. */
    unsigned keep = s->tls != NULL ? (s->q.off > 0) : (s->flags & TT_S_WRITING) ? s->inflight : 0;
    if (keep == 0) {
        tt__wq_clear(s->loop, &s->q);
        return;
    }
    tt_wq_entry_t *last = s->q.head;
    size_t kept = last ? last->len - s->q.off : 0;
    for (unsigned i = 1; i < keep && last != NULL && last->next != NULL; i++) {
        last = last->next;
        kept += last->len;
    }
    if (last == NULL)
        return;
    tt_wq_entry_t *e = last->next;
    last->next = NULL;
    s->q.tail = last;
    s->q.bytes = kept;
    while (e != NULL) {
        tt_wq_entry_t *next = e->next;
        entry_put(s->loop, e);
        e = next;
    }
}

static void mark_pending(tt_stream_t *s) {
    if (tt_link_is_linked(&s->pending) || (s->flags & TT_S_DEAD))
        return;
    tt_list_insert_tail(&s->loop->pending, &s->pending);
}

void tt__stream_mark_pending(tt_stream_t *s) {
    mark_pending(s);
}

/* Every unsent byte: plaintext and, on a TLS stream, records. */
static size_t unsent(const tt_stream_t *s) {
    return s->q.bytes + (s->tls != NULL ? s->tls->wire.bytes : 0);
}

static bool queue_admit(tt_stream_t *s, size_t len) {
    if (s->flags & (TT_S_DEAD | TT_S_HARD_CLOSE | TT_S_FINAL))
        return false;
    if (unsent(s) + len > s->max_queue) {
        if (s->handler->on_overflow != NULL)
            s->handler->on_overflow(s, len);
        else
            tt_stream_abort(s, "unsent output over the limit");
        return false;
    }
    return true;
}

void tt__wq_push(tt_wq_t *q, tt_wq_entry_t *e) {
    if (q->tail)
        q->tail->next = e;
    else
        q->head = e;
    q->tail = e;
    q->bytes += e->len;
}

static void queue_push(tt_stream_t *s, tt_buf_t *buf, const uint8_t *p, size_t len) {
    tt_wq_entry_t *e = tt__entry_get(s->loop);
    e->buf = buf;
    e->ptr = p;
    e->len = len;
    tt__wq_push(&s->q, e);
    mark_pending(s);
}

bool tt_stream_send_buf(tt_stream_t *s, tt_buf_t *buf) {
    if (!queue_admit(s, buf->len))
        return false;
    queue_push(s, tt_buf_ref(buf), tt_buf_ptr(buf), buf->len);
    return true;
}

bool tt_stream_send_static(tt_stream_t *s, const uint8_t *p, size_t len) {
    if (len == 0)
        return true;
    if (!queue_admit(s, len))
        return false;
    queue_push(s, NULL, p, len);
    return true;
}

static tt_buf_t *buf_copy(const void *p, size_t len) {
    tt_buf_t *b = tt_buf_new(len);
    memcpy(b->data, p, len);
    b->len = (uint32_t)len;
    return b;
}

bool tt_stream_send_copy(tt_stream_t *s, const void *p, size_t len) {
    if (len == 0)
        return true;
    if (!queue_admit(s, len))
        return false;
    tt_buf_t *b = buf_copy(p, len);
    queue_push(s, b, b->data, len);
    return true;
}

void tt_stream_send_final(tt_stream_t *s, const void *p, size_t len) {
    /* Not subject to the queue cap: it is what ends an over-full queue. */
    if (s->flags & (TT_S_DEAD | TT_S_FINAL))
        return;
    s->flags |= TT_S_FINAL;
    tt_buf_t *b = buf_copy(p, len);
    queue_push(s, b, b->data, len);
}

size_t tt_stream_queued(const tt_stream_t *s) {
    return unsent(s);
}

uint64_t tt_stream_bytes_written(const tt_stream_t *s) {
    return s->written;
}

/* Removes n bytes (written, or encrypted) from the front of a queue. */
void tt__wq_consume(tt_loop_t *loop, tt_wq_t *q, size_t n) {
    q->bytes -= n;
    while (n > 0) {
        tt_wq_entry_t *e = q->head;
        size_t left = e->len - q->off;
        if (n < left) {
            q->off += n;
            return;
        }
        n -= left;
        q->off = 0;
        q->head = e->next;
        if (q->head == NULL)
            q->tail = NULL;
        entry_put(loop, e);
    }
}

/* n bytes of the wire queue reached the kernel. */
static void wire_consume(tt_stream_t *s, size_t n) {
    s->written += n;
    s->loop->stats.bytes_out += n;
    tt__wq_consume(s->loop, wire_of(s), n);
}

static unsigned queue_iov(const tt_wq_t *q, uv_buf_t *iov, unsigned max, size_t *bytes) {
    unsigned n = 0;
    size_t off = q->off, total = 0;
    for (tt_wq_entry_t *e = q->head; e != NULL && n < max; e = e->next) {
        iov[n++] = uv_buf_init((char *)e->ptr + off, (unsigned)(e->len - off));
        total += e->len - off;
        off = 0;
    }
    *bytes = total;
    return n;
}

/* ---- accessors ---- */

void *tt_stream_ext(tt_stream_t *s) {
    return s->ext;
}

tt_loop_t *tt_stream_loop(const tt_stream_t *s) {
    return s->loop;
}

/* Formatted on each call, into one of a few buffers per thread, so that a
 * log line may name two streams: 56 bytes an idle stream does not carry. */
#define PEER_RING 8
#define PEER_CAP 56 /* "[" INET6_ADDRSTRLEN "]:65535" */

const char *tt_stream_peer(const tt_stream_t *s) {
    static _Thread_local char ring[PEER_RING][PEER_CAP];
    static _Thread_local unsigned next;
    char *out = ring[next++ % PEER_RING];
    char ip[INET6_ADDRSTRLEN] = "?";
    if (s->peer_family == AF_INET) {
        inet_ntop(AF_INET, s->peer_addr, ip, sizeof(ip));
        snprintf(out, PEER_CAP, "%s:%u", ip, (unsigned)s->peer_port);
    } else if (s->peer_family == AF_INET6) {
        inet_ntop(AF_INET6, s->peer_addr, ip, sizeof(ip));
        snprintf(out, PEER_CAP, "[%s]:%u", ip, (unsigned)s->peer_port);
    } else {
        snprintf(out, PEER_CAP, "?");
    }
    return out;
}

size_t tt_stream_peer_addr(const tt_stream_t *s, const char **addr) {
    const char *peer = tt_stream_peer(s);
    *addr = peer;
    if (peer[0] == '[') {
        const char *end = strchr(peer, ']');
        *addr = peer + 1;
        return end ? (size_t)(end - peer - 1) : strlen(peer + 1);
    }
    const char *colon = strrchr(peer, ':');
    return colon ? (size_t)(colon - peer) : strlen(peer);
}

void tt_stream_set_handler(tt_stream_t *s, const tt_stream_handler_t *h) {
    s->handler = h;
}

void tt_stream_set_max_input(tt_stream_t *s, size_t bytes) {
    s->max_input = bytes > UINT32_MAX ? UINT32_MAX : (uint32_t)bytes;
}

void tt_stream_set_max_queue(tt_stream_t *s, size_t bytes) {
    s->max_queue = bytes;
}

bool tt_stream_is_tls(const tt_stream_t *s) {
    return s->tls != NULL;
}

bool tt_stream_is_closing(const tt_stream_t *s) {
    return (s->flags & (TT_S_CLOSING | TT_S_DEAD)) != 0;
}

/* ---- close lifecycle ---- */

static void stream_finish(tt_stream_t *s) {
    if (s->flags & TT_S_DEAD)
        return;
    s->flags |= TT_S_DEAD;
    tt_link_unlink(&s->pending);
    tt_link_unlink(&s->resume);
    uv_close((uv_handle_t *)&s->tcp, on_close);
}

static void on_shutdown(uv_shutdown_t *req, int status) {
    tt_stream_t *s = req->data;
    free(req);
    /* The peer sees our FIN; we now wait for its EOF (or the deadline).
     * libuv runs this (UV_ECANCELED) before the close callback frees s. */
    if (status < 0)
        stream_finish(s);
}

/* Called when the queue is empty on a closing stream. */
static void closing_flushed(tt_stream_t *s) {
    if (s->flags & TT_S_HARD_CLOSE) {
        stream_finish(s);
        return;
    }
    if (!(s->flags & TT_S_SHUT)) {
        s->flags |= TT_S_SHUT;
        uv_shutdown_t *req = xmalloc(sizeof(*req));
        req->data = s;
        if (uv_shutdown(req, (uv_stream_t *)&s->tcp, on_shutdown) < 0) {
            free(req);
            stream_finish(s);
        }
    }
}

static void set_reason(tt_stream_t *s, const char *reason) {
    if (s->close_reason == NULL)
        s->close_reason = reason;
}

void tt_stream_close_after_flush(tt_stream_t *s, const char *reason) {
    set_reason(s, reason);
    if (s->flags & (TT_S_CLOSING | TT_S_DEAD))
        return;
    s->flags |= TT_S_CLOSING;
    s->close_deadline = uv_now(&s->loop->uv) + CLOSE_LINGER_MS;
    tt_link_unlink(&s->resume);
    /* Keep reading, even if the endpoint had paused: the peer's EOF (or
     * its close frame) is what ends a graceful close. */
    if (s->flags & TT_S_PAUSED) {
        s->flags &= ~(uint32_t)TT_S_PAUSED;
        start_reading(s);
    }
    mark_pending(s);
}

void tt_stream_set_hard_close(tt_stream_t *s) {
    s->flags |= TT_S_HARD_CLOSE;
    mark_pending(s);
}

void tt_stream_abort(tt_stream_t *s, const char *reason) {
    if (s->flags & TT_S_DEAD)
        return;
    s->flags |= TT_S_CLOSING;
    set_reason(s, reason);
    queue_clear(s);
    /* A write in flight still references the queue's first entries; its
     * callback sees TT_S_DEAD and only releases them. */
    stream_finish(s);
}

static void on_close(uv_handle_t *h) {
    tt_stream_t *s = (tt_stream_t *)h;
    tt_loop_t *loop = s->loop;
    /* Outside any of the stream's callbacks: the endpoint may release its
     * state (the chat session) now. */
    if (s->handler->on_close != NULL)
        s->handler->on_close(s);
    /* Debug: one line per connection would let a connection flood fill the
     * log; refusals are logged (rate-limited) by the endpoints. */
    tt_log_debug("%s: closed (%s)", tt_stream_peer(s), s->close_reason ? s->close_reason : "done");
    queue_clear(s);
    tt__tls_free(s);
    tt_link_unlink(&s->all);
    loop->nstreams--;
    free(s->in);
    free(s);
}

/* A sweep interval (a second, the server's sweep) that moved fewer bytes
 * than this is quiet; one that moved more is a burst, whose leftovers the
 * next quiet one gives back. Keepalive pings of every idle connection stay
 * under it up to ~10,000 connections a second. */
#define QUIET_BYTES (256u * 1024)
/* What a quiet loop keeps of each buffer pool: enough for the next few
 * broadcasts to allocate nothing, not a burst's worth (up to 1024 buffers
 * per size class, 16 MiB of the largest). Entries: one slab, when that is
 * all there is. */
#define QUIET_KEEP_POOL_BYTES (64u * 1024)

/* After a burst (connections opening, a fan-out), once the loop is quiet:
 * the free lists are cut down and the allocator hands the free pages back.
 * Under the fan-out load these pools and the holes the burst left in the
 * heap are most of what a connection seems to cost beyond its own state;
 * they would stay resident until the next burst otherwise. Once per burst:
 * the trim walks the heap's free lists (60-120 us measured after the
 * benchmark's fan-out and at 19,000 idle connections). */
static void release_if_quiet(tt_loop_t *loop) {
    uint64_t moved = loop->stats.bytes_in + loop->stats.bytes_out;
    uint64_t delta = moved - loop->sweep_bytes;
    loop->sweep_bytes = moved;
    if (delta >= QUIET_BYTES) {
        loop->release_due = true;
        return;
    }
    if (!loop->release_due)
        return;
    loop->release_due = false;
    /* Output still queued somewhere (a slow reader) keeps the slabs: its
     * entries are in them. */
    if (loop->nfree_entries == loop->nentries && loop->nentries > ENTRIES_PER_SLAB)
        entry_slabs_unmap(loop);
    tt_buf_pool_trim(QUIET_KEEP_POOL_BYTES);
    xmalloc_release();
}

void tt_loop_sweep(tt_loop_t *loop) {
    uint64_t now = uv_now(&loop->uv);
    release_if_quiet(loop);
    for (tt_link_t *l = loop->streams.next; l != &loop->streams; l = l->next) {
        tt_stream_t *s = tt_container_of(l, tt_stream_t, all);
        if ((s->flags & (TT_S_CLOSING | TT_S_DEAD)) == TT_S_CLOSING && now >= s->close_deadline)
            tt_stream_abort(s, "close timed out");
        else if (s->tls != NULL)
            tt__tls_sweep(s, now);
    }
}

tt_stream_t *tt_loop_first_stream(tt_loop_t *loop) {
    tt_link_t *l = tt_list_first(&loop->streams);
    return l ? tt_container_of(l, tt_stream_t, all) : NULL;
}

tt_stream_t *tt_loop_next_stream(tt_stream_t *s) {
    tt_link_t *l = s->all.next;
    return l == &s->loop->streams ? NULL : tt_container_of(l, tt_stream_t, all);
}

/* ---- writing ---- */

static void on_write(uv_write_t *req, int status) {
    tt_stream_t *s = req->data;
    free(req);
    unsigned n = s->inflight;
    s->inflight = 0;
    s->flags &= ~(uint32_t)TT_S_WRITING;
    if (s->flags & TT_S_DEAD) {
        queue_clear(s);
        return;
    }
    if (status < 0) {
        tt_stream_abort(s, "write failed");
        return;
    }
    /* The write covered the first n entries from off on. */
    tt_wq_t *w = wire_of(s);
    size_t bytes = 0, off = w->off;
    tt_wq_entry_t *e = w->head;
    for (unsigned i = 0; i < n && e != NULL; i++, e = e->next) {
        bytes += e->len - off;
        off = 0;
    }
    wire_consume(s, bytes);
    stream_flush(s);
}

/* Small pieces at the head of a plain stream's queue, corked: copied into
 * the loop's one buffer (as many as fit in TT_CORK_BYTES) and written with
 * one send(). A chat frame is 100-200 bytes and a recipient gets several an
 * iteration; from one buffer that stays in the cache the kernel copies one
 * segment, with no iovec to import and no file position to lock, where a
 * writev of references walked one per frame. Longer pieces (past
 * TT_CORK_PIECE) go by reference. Returns the bytes the kernel took (0: none
 * now) or -1 on an error; *offered is what was gathered (0: the head is not
 * small, so the writev path is the one to take). */
static ssize_t cork_send(tt_stream_t *s, const tt_wq_t *w, size_t *offered) {
    uint8_t *cork = s->loop->cork;
    const uint8_t *from = NULL;
    size_t n = 0, off = w->off;
    unsigned pieces = 0;
    for (const tt_wq_entry_t *e = w->head; e != NULL; e = e->next, off = 0) {
        size_t len = e->len - off;
        if (len > TT_CORK_PIECE || n + len > TT_CORK_BYTES)
            break;
        if (pieces++ == 0)
            from = e->ptr + off; /* one piece alone goes out from where it is */
        else {
            if (pieces == 2)
                memcpy(cork, from, n);
            memcpy(cork + n, e->ptr + off, len);
        }
        n += len;
    }
    *offered = n;
    if (n == 0)
        return 0;
    uv_os_fd_t fd;
    if (uv_fileno((const uv_handle_t *)&s->tcp, &fd) != 0)
        return -1;
    ssize_t r;
    do
        r = send(fd, pieces == 1 ? from : cork, n, MSG_DONTWAIT | MSG_NOSIGNAL);
    while (r < 0 && errno == EINTR);
    if (r < 0)
        return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -1;
    return r;
}

static void stream_flush(tt_stream_t *s) {
    uv_buf_t iov[IOV_BATCH];
    bool had_output = unsent(s) != 0;
    tt_wq_t *w = wire_of(s);
    while (!(s->flags & (TT_S_WRITING | TT_S_DEAD))) {
        /* TLS: encrypt a batch of plaintext whenever the records made
         * before are written, so a client that reads slowly holds
         * references on shared plaintext, not copies in ciphertext. */
        if (s->tls != NULL && w->head == NULL) {
            tt__tls_encrypt(s);
            if (s->flags & TT_S_DEAD)
                return;
        }
        if (w->head == NULL)
            break;
        size_t offered = 0;
        ssize_t r = s->tls == NULL ? cork_send(s, w, &offered) : 0;
        if (offered == 0) {
            unsigned n = queue_iov(w, iov, IOV_BATCH, &offered);
            r = uv_try_write((uv_stream_t *)&s->tcp, iov, n);
            if (r == UV_EAGAIN || r == UV_ENOSYS)
                r = 0;
        }
        if (r < 0) {
            tt_stream_abort(s, "write failed");
            return;
        }
        wire_consume(s, (size_t)r);
        /* Did the kernel take everything offered? Then gather the next batch. */
        if ((size_t)r == offered)
            continue;
        /* Short write: hand the rest of this batch to libuv, which writes
         * it when the socket becomes writable. */
        unsigned n = queue_iov(w, iov, IOV_BATCH, &offered);
        s->inflight = n;
        uv_write_t *req = xmalloc(sizeof(*req));
        req->data = s;
        s->flags |= TT_S_WRITING;
        if (uv_write(req, (uv_stream_t *)&s->tcp, iov, n, on_write) < 0) {
            free(req);
            s->flags &= ~(uint32_t)TT_S_WRITING;
            s->inflight = 0;
            tt_stream_abort(s, "write failed");
        }
        return;
    }
    if (unsent(s) != 0 || (s->flags & (TT_S_WRITING | TT_S_DEAD)))
        return;
    if (s->flags & TT_S_CLOSING) {
        closing_flushed(s);
        return;
    }
    if (had_output && s->handler->on_drain != NULL)
        s->handler->on_drain(s);
}

void tt_loop_flush(tt_loop_t *loop) {
    /* A drain callback may queue more output (the next pipelined response)
     * and so add streams to the list: loop until it is empty. */
    tt_link_t *l;
    while ((l = tt_list_first(&loop->pending)) != NULL) {
        tt_link_unlink(l);
        tt_stream_t *s = tt_container_of(l, tt_stream_t, pending);
        /* The next stream's state and first entry, fetched while this one
         * is written: after a broadcast to thousands they are cache misses. */
        tt_link_t *n = tt_list_first(&loop->pending);
        if (n != NULL) {
            tt_stream_t *next = tt_container_of(n, tt_stream_t, pending);
            __builtin_prefetch(&next->flags);
            __builtin_prefetch(next->q.head);
            __builtin_prefetch(&next->tcp.io_watcher);
        }
        if (!(s->flags & TT_S_DEAD))
            stream_flush(s);
    }
}

/* ---- reading ---- */

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
    (void)suggested;
    tt_stream_t *s = (tt_stream_t *)h;
    tt_loop_t *loop = s->loop;
    /* Ciphertext always lands in the loop's buffer: OpenSSL takes all of
     * it before the read returns, and s->in holds plaintext. */
    if (s->in_len == 0 || s->tls != NULL) {
        *buf = uv_buf_init((char *)loop->readbuf, (unsigned)loop->readbuf_cap);
        return;
    }
    /* A partial head or frame is waiting: read behind it, growing the
     * stream's buffer up to max_input (a full buffer reads nothing, and
     * libuv reports UV_ENOBUFS). */
    if (s->in_cap - s->in_len < 16384 && s->in_cap < s->max_input) {
        size_t cap = (size_t)s->in_cap * 2;
        if (cap < (size_t)s->in_len + 65536)
            cap = (size_t)s->in_len + 65536;
        if (cap > s->max_input)
            cap = s->max_input;
        s->in = xrealloc(s->in, cap);
        s->in_cap = (uint32_t)cap;
    }
    *buf = uv_buf_init((char *)s->in + s->in_len, s->in_cap - s->in_len);
}

/* Hands data to the endpoint until it consumes nothing more, pauses or
 * closes; returns bytes consumed. The handler may change in between (an
 * upgrade), so it is read through s each time. */
static size_t stream_process(tt_stream_t *s, uint8_t *data, size_t len) {
    size_t pos = 0;
    while (pos < len && !(s->flags & (TT_S_DEAD | TT_S_PAUSED))) {
        size_t n = s->handler->on_read(s, data + pos, len - pos);
        if (n == 0)
            break;
        pos += n;
    }
    return pos;
}

/* Keeps data[used..len) as the stream's pending input. */
static void keep_input(tt_stream_t *s, const uint8_t *data, size_t len, size_t used, bool own) {
    size_t left = len - used;
    if (left == 0) {
        /* Nothing pending: an idle stream keeps no input buffer. */
        free(s->in);
        s->in = NULL;
        s->in_len = s->in_cap = 0;
    } else if (own) {
        if (used > 0)
            memmove(s->in, s->in + used, left);
        s->in_len = (uint32_t)left;
    } else {
        /* Keep the partial head or frame out of the shared buffer. */
        size_t cap = left + 16384;
        if (cap > s->max_input && left <= s->max_input)
            cap = s->max_input;
        s->in = xmalloc(cap);
        s->in_cap = (uint32_t)cap;
        memcpy(s->in, data + used, left);
        s->in_len = (uint32_t)left;
    }
}

void tt__stream_input(tt_stream_t *s, uint8_t *data, size_t len, bool own) {
    size_t used = stream_process(s, data, len);
    if (s->flags & TT_S_DEAD)
        return;
    keep_input(s, data, len, used, own);
    if (s->in_len > 0 && s->in_len >= s->max_input && !(s->flags & TT_S_PAUSED))
        tt_stream_abort(s, "input over the limit");
}

void tt__stream_in_reserve(tt_stream_t *s, size_t need) {
    if (s->in_cap - s->in_len >= need)
        return;
    s->in = xrealloc(s->in, (size_t)s->in_len + need);
    s->in_cap = (uint32_t)(s->in_len + need);
}

void tt__stream_eof(tt_stream_t *s) {
    if (s->flags & TT_S_CLOSING) {
        stream_finish(s); /* the peer's EOF ends a close we started */
        return;
    }
    /* The peer is done sending, maybe not reading: what is queued still
     * goes out before the close. */
    uv_read_stop((uv_stream_t *)&s->tcp);
    if (s->handler->on_eof != NULL) {
        s->handler->on_eof(s);
    } else {
        tt_stream_close_after_flush(s, "disconnect");
        tt_stream_set_hard_close(s);
    }
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf) {
    tt_stream_t *s = (tt_stream_t *)stream;
    tt_loop_t *loop = s->loop;
    if (nread == 0)
        return;
    if (nread < 0) {
        if (nread == UV_ENOBUFS) {
            tt_stream_abort(s, "input over the limit");
        } else if (s->tls != NULL && !(s->flags & (TT_S_TLS_UP | TT_S_CLOSING))) {
            tt_stream_abort(s, "disconnect during the TLS handshake");
        } else if (nread == UV_EOF || (s->flags & TT_S_CLOSING)) {
            tt__stream_eof(s);
        } else {
            tt_stream_abort(s, uv_strerror((int)nread));
        }
        return;
    }
    loop->stats.bytes_in += (uint64_t)nread;
    if (s->tls != NULL) {
        tt__tls_on_read(s, (uint8_t *)buf->base, (size_t)nread);
        return;
    }
    bool own = (uint8_t *)buf->base != loop->readbuf;
    if (own) {
        s->in_len += (uint32_t)nread;
        tt__stream_input(s, s->in, s->in_len, true);
    } else {
        tt__stream_input(s, (uint8_t *)buf->base, (size_t)nread, false);
    }
}

void tt_stream_read_stop(tt_stream_t *s) {
    if (s->flags & (TT_S_PAUSED | TT_S_DEAD))
        return;
    s->flags |= TT_S_PAUSED;
    tt_link_unlink(&s->resume);
    uv_read_stop((uv_stream_t *)&s->tcp);
}

static void start_reading(tt_stream_t *s) {
    if (uv_read_start((uv_stream_t *)&s->tcp, on_alloc, on_read) < 0)
        tt_stream_abort(s, "cannot read");
}

void tt_stream_read_start(tt_stream_t *s) {
    if (!(s->flags & TT_S_PAUSED) || (s->flags & TT_S_DEAD))
        return;
    s->flags &= ~(uint32_t)TT_S_PAUSED;
    if (s->in_len == 0) {
        start_reading(s);
        return;
    }
    /* Input received before the pause goes first, in a later pass (never
     * from inside this call, which may come from the endpoint's own
     * callback); the socket is read again only once it is consumed. */
    if (!tt_link_is_linked(&s->resume))
        tt_list_insert_tail(&s->loop->resume, &s->resume);
    tt__loop_idle_start(s->loop);
}

void tt__stream_resume_all(tt_loop_t *loop) {
    tt_link_t *l;
    while ((l = tt_list_first(&loop->resume)) != NULL) {
        tt_link_unlink(l);
        tt_stream_t *s = tt_container_of(l, tt_stream_t, resume);
        if (s->flags & (TT_S_DEAD | TT_S_PAUSED | TT_S_CLOSING))
            continue;
        /* In place: reads land in s->in only in on_read, and the socket is
         * not being read while input waits here. */
        size_t used = stream_process(s, s->in, s->in_len);
        if (s->flags & TT_S_DEAD)
            continue;
        keep_input(s, s->in, s->in_len, used, true);
        if (!(s->flags & (TT_S_PAUSED | TT_S_CLOSING)))
            start_reading(s);
    }
    if (loop->idle_on) {
        loop->idle_on = false;
        uv_idle_stop(&loop->idle);
    }
}

/* ---- listening and accepting ---- */

struct tt_listener_s {
    uv_tcp_t tcp;
    tt_loop_t *loop;
    tt_listener_config_t cfg; /* cfg.tls: the listener's own reference */
    char addr[80];
};

static void peer_get(tt_stream_t *s) {
    struct sockaddr_storage ss;
    int sslen = sizeof(ss);
    s->peer_family = 0;
    if (uv_tcp_getpeername(&s->tcp, (struct sockaddr *)&ss, &sslen) != 0)
        return;
    if (ss.ss_family == AF_INET) {
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;
        s->peer_family = AF_INET;
        s->peer_port = ntohs(a->sin_port);
        memcpy(s->peer_addr, &a->sin_addr, 4);
    } else if (ss.ss_family == AF_INET6) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
        s->peer_family = AF_INET6;
        s->peer_port = ntohs(a->sin6_port);
        memcpy(s->peer_addr, &a->sin6_addr, 16);
    }
}

static void on_bare_close(uv_handle_t *h) {
    free(h);
}

static void on_connection(uv_stream_t *server, int status) {
    tt_listener_t *l = server->data;
    tt_loop_t *loop = l->loop;
    if (status < 0) {
        /* EMFILE: libuv has already accepted and closed the waiting
         * connections with its reserve descriptor, so the loop does not
         * spin; accepting resumes by itself once descriptors are free. */
        if (l->cfg.on_accept_error != NULL)
            l->cfg.on_accept_error(l->cfg.ctx, status, uv_strerror(status));
        return;
    }
    tt_stream_t *s = xcalloc(1, sizeof(*s) + l->cfg.ext_size);
    uv_tcp_init(&loop->uv, &s->tcp);
    int r = uv_accept(server, (uv_stream_t *)&s->tcp);
    if (r < 0) {
        if (l->cfg.on_accept_error != NULL)
            l->cfg.on_accept_error(l->cfg.ctx, r, uv_strerror(r));
        /* Not a stream yet: close the bare handle and free it. */
        uv_close((uv_handle_t *)&s->tcp, on_bare_close);
        return;
    }
    s->loop = loop;
    s->handler = l->cfg.handler;
    s->max_queue = l->cfg.max_queue;
    tt_stream_set_max_input(s, l->cfg.max_input);
    peer_get(s);
    uv_tcp_nodelay(&s->tcp, 1);
    tt_list_insert_tail(&loop->streams, &s->all);
    loop->nstreams++;
    if (l->cfg.tls != NULL)
        tt__tls_accept(s, l->cfg.tls, l->cfg.tls_handshake_ms, l->cfg.tls_plain_reply);
    tt_log_debug("%s: open%s", tt_stream_peer(s), s->tls ? " (TLS)" : "");
    loop->stats.accepted[s->tls != NULL]++;
    l->cfg.on_accept(l->cfg.ctx, s);
    if (s->flags & TT_S_DEAD)
        return;
    r = uv_read_start((uv_stream_t *)&s->tcp, on_alloc, on_read);
    if (r < 0)
        tt_stream_abort(s, uv_strerror(r));
}

static void format_addr(const struct sockaddr_storage *ss, char *out, size_t cap) {
    char ip[64] = "?";
    if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;
        uv_ip6_name(a, ip, sizeof(ip));
        snprintf(out, cap, "[%s]:%d", ip, ntohs(a->sin6_port));
    } else {
        const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
        uv_ip4_name(a, ip, sizeof(ip));
        snprintf(out, cap, "%s:%d", ip, ntohs(a->sin_port));
    }
}

int tt_listen(tt_loop_t *loop, const tt_listener_config_t *cfg, tt_listener_t **out, char *err,
              size_t errlen) {
    *out = NULL;
    struct sockaddr_storage addr;
    int r = uv_ip4_addr(cfg->host, cfg->port, (struct sockaddr_in *)&addr);
    if (r < 0)
        r = uv_ip6_addr(cfg->host, cfg->port, (struct sockaddr_in6 *)&addr);
    if (r < 0) {
        snprintf(err, errlen, "invalid listen address '%s'", cfg->host);
        return r;
    }
    tt_listener_t *l = xcalloc(1, sizeof(*l));
    l->loop = loop;
    l->cfg = *cfg;
    if (cfg->tls != NULL)
        tt_tls_ctx_ref(cfg->tls);
    /* With reuse_port the socket is made now (libuv 1.44 has no bind flag
     * for SO_REUSEPORT), so the option is set before uv_tcp_bind binds. */
    if (cfg->reuse_port) {
        r = uv_tcp_init_ex(&loop->uv, &l->tcp, addr.ss_family);
        if (r < 0) {
            snprintf(err, errlen, "cannot listen on %s:%d: %s", cfg->host, cfg->port,
                     uv_strerror(r));
            tt_tls_ctx_unref(l->cfg.tls);
            free(l);
            return r;
        }
        uv_os_fd_t fd;
        int one = 1;
        r = uv_fileno((uv_handle_t *)&l->tcp, &fd);
        if (r == 0 && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0)
            r = uv_translate_sys_error(errno);
    } else {
        r = uv_tcp_init(&loop->uv, &l->tcp);
    }
    l->tcp.data = l;
    if (r == 0)
        r = uv_tcp_bind(&l->tcp, (struct sockaddr *)&addr, 0);
    if (r == 0)
        r = uv_listen((uv_stream_t *)&l->tcp, 1024, on_connection);
    if (r < 0) {
        snprintf(err, errlen, "cannot listen on %s:%d: %s", cfg->host, cfg->port, uv_strerror(r));
        uv_close((uv_handle_t *)&l->tcp, on_listener_close);
        return r;
    }
    struct sockaddr_storage bound;
    int len = sizeof(bound);
    uv_tcp_getsockname(&l->tcp, (struct sockaddr *)&bound, &len);
    format_addr(&bound, l->addr, sizeof(l->addr));
    *out = l;
    return 0;
}

void tt_listener_address(const tt_listener_t *l, char *out, size_t cap) {
    snprintf(out, cap, "%s", l->addr);
}

static void on_listener_close(uv_handle_t *h) {
    tt_listener_t *l = (tt_listener_t *)h;
    tt_tls_ctx_unref(l->cfg.tls);
    free(l);
}

void tt_listener_close(tt_listener_t *l) {
    if (l != NULL)
        uv_close((uv_handle_t *)&l->tcp, on_listener_close);
}

void tt_listener_set_tls(tt_listener_t *l, tt_tls_ctx_t *ctx) {
    tt_tls_ctx_ref(ctx);
    tt_tls_ctx_unref(l->cfg.tls);
    l->cfg.tls = ctx;
}

bool tt_listener_is_tls(const tt_listener_t *l) {
    return l->cfg.tls != NULL;
}
