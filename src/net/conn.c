/* Connections: accept, the read path, the write queue and the close
 * lifecycle. Reads land in one loop-wide buffer; only bytes of a partial
 * request head or frame are copied into the connection's own buffer, so an
 * idle connection holds none. Output is queued during the iteration and
 * written once per iteration (server_flush_all) with gathered writes. */
#include "net/net.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/xmalloc.h"

#define IOV_BATCH 64         /* buffers gathered into one write */
#define FREE_ENTRIES_KEEP 65536
#define CLOSE_LINGER_MS 2000
/* A request head is at most 8 KiB; allow a pipelined request after it. */
#define HTTP_INPUT_MAX (16 * 1024 + 4096) /* how long a closing connection waits for the peer */

static void on_close(uv_handle_t *h);

/* ---- write queue entries ---- */

static wq_entry_t *entry_get(server_t *srv) {
    wq_entry_t *e = srv->free_entries;
    if (e != NULL) {
        srv->free_entries = e->next;
        srv->nfree_entries--;
    } else {
        e = xmalloc(sizeof(*e));
    }
    e->next = NULL;
    return e;
}

static void entry_put(server_t *srv, wq_entry_t *e) {
    tt_buf_unref(e->buf);
    if (srv->nfree_entries >= FREE_ENTRIES_KEEP) {
        free(e);
        return;
    }
    e->next = srv->free_entries;
    srv->free_entries = e;
    srv->nfree_entries++;
}

static void queue_clear(conn_t *c) {
    while (c->q_head != NULL) {
        wq_entry_t *e = c->q_head;
        c->q_head = e->next;
        entry_put(c->srv, e);
    }
    c->q_tail = NULL;
    c->q_bytes = 0;
    c->q_off = 0;
}

/* Drops every entry no write has been handed to yet. Entries covered by
 * the uv_write in flight stay: libuv still reads their bytes. */
static void queue_drop_unsent(conn_t *c) {
    if (!(c->flags & CONN_F_WRITING)) {
        queue_clear(c);
        return;
    }
    wq_entry_t *last = c->q_head;
    size_t kept = last ? last->len - c->q_off : 0;
    for (unsigned i = 1; i < c->inflight && last != NULL && last->next != NULL; i++) {
        last = last->next;
        kept += last->len;
    }
    if (last == NULL)
        return;
    wq_entry_t *e = last->next;
    last->next = NULL;
    c->q_tail = last;
    c->q_bytes = kept;
    while (e != NULL) {
        wq_entry_t *next = e->next;
        entry_put(c->srv, e);
        e = next;
    }
}

static void mark_pending(conn_t *c) {
    if (c->flags & (CONN_F_PENDING | CONN_F_DEAD))
        return;
    c->flags |= CONN_F_PENDING;
    c->pending_next = c->srv->pending;
    c->srv->pending = c;
}

static bool queue_admit(conn_t *c, size_t len) {
    if (c->flags & (CONN_F_DEAD | CONN_F_HARD_CLOSE))
        return false;
    /* Once our close frame is queued nothing may follow it. */
    if (c->flags & CONN_F_CLOSE_SENT)
        return false;
    if (c->q_bytes + len > c->srv->cfg.max_queue && c->proto == CONN_WS) {
        server_log_refusal(c->srv, "%s: closing slow consumer (%zu bytes unsent, limit %zu)",
                           c->peer, c->q_bytes + len, c->srv->cfg.max_queue);
        /* The client is not reading: a close frame queued behind a
         * megabyte would never arrive, so drop the backlog first. */
        queue_drop_unsent(c);
        conn_ws_close(c, WS_CLOSE_POLICY, "too slow: unsent data over the limit");
        c->flags |= CONN_F_HARD_CLOSE;
        return false;
    }
    return true;
}

static void queue_push(conn_t *c, tt_buf_t *buf, const uint8_t *p, size_t len) {
    wq_entry_t *e = entry_get(c->srv);
    e->buf = buf;
    e->ptr = p;
    e->len = len;
    if (c->q_tail)
        c->q_tail->next = e;
    else
        c->q_head = e;
    c->q_tail = e;
    c->q_bytes += len;
    mark_pending(c);
}

void conn_send_buf(conn_t *c, tt_buf_t *buf) {
    if (!queue_admit(c, buf->len))
        return;
    queue_push(c, tt_buf_ref(buf), tt_buf_ptr(buf), buf->len);
}

void conn_send_static(conn_t *c, const uint8_t *p, size_t len) {
    if (len == 0 || !queue_admit(c, len))
        return;
    queue_push(c, NULL, p, len);
}

void conn_send_close_frame(conn_t *c, const uint8_t *frame, size_t len) {
    /* Not subject to the queue cap: it is what ends an over-full queue. */
    if (c->flags & (CONN_F_DEAD | CONN_F_CLOSE_SENT))
        return;
    c->flags |= CONN_F_CLOSE_SENT;
    tt_buf_t *b = tt_buf_new(len);
    memcpy(b->data, frame, len);
    b->len = (uint32_t)len;
    queue_push(c, b, b->data, len);
}

void conn_send_copy(conn_t *c, const void *p, size_t len) {
    if (len == 0 || !queue_admit(c, len))
        return;
    tt_buf_t *b = tt_buf_new(len);
    memcpy(b->data, p, len);
    b->len = (uint32_t)len;
    queue_push(c, b, b->data, len);
}

/* Removes n written bytes from the front of the queue. */
static void queue_consume(conn_t *c, size_t n) {
    c->q_bytes -= n;
    while (n > 0) {
        wq_entry_t *e = c->q_head;
        size_t left = e->len - c->q_off;
        if (n < left) {
            c->q_off += n;
            return;
        }
        n -= left;
        c->q_off = 0;
        c->q_head = e->next;
        if (c->q_head == NULL)
            c->q_tail = NULL;
        entry_put(c->srv, e);
    }
}

static unsigned queue_iov(conn_t *c, uv_buf_t *iov, unsigned max) {
    unsigned n = 0;
    size_t off = c->q_off;
    for (wq_entry_t *e = c->q_head; e != NULL && n < max; e = e->next) {
        iov[n++] = uv_buf_init((char *)e->ptr + off, (unsigned)(e->len - off));
        off = 0;
    }
    return n;
}

/* ---- close lifecycle ---- */

static void conn_finish(conn_t *c) {
    if (c->flags & CONN_F_DEAD)
        return;
    c->flags |= CONN_F_DEAD;
    uv_close((uv_handle_t *)&c->tcp, on_close);
}

static void on_shutdown(uv_shutdown_t *req, int status) {
    conn_t *c = req->data;
    /* The peer sees our FIN; we now wait for its EOF (or the deadline). */
    if (status < 0)
        conn_finish(c);
}

/* Called when the queue is empty on a closing connection. */
static void conn_closing_flushed(conn_t *c) {
    if (c->flags & CONN_F_HARD_CLOSE) {
        conn_finish(c);
        return;
    }
    if (!(c->flags & CONN_F_SHUT)) {
        c->flags |= CONN_F_SHUT;
        c->sreq.data = c;
        if (uv_shutdown(&c->sreq, (uv_stream_t *)&c->tcp, on_shutdown) < 0)
            conn_finish(c);
    }
}

void conn_mark_reap(conn_t *c, const char *reason) {
    if (c->close_reason == NULL)
        c->close_reason = reason;
    if (c->session == NULL || (c->flags & CONN_F_REAP))
        return;
    c->flags |= CONN_F_REAP;
    c->reap_next = c->srv->reap;
    c->srv->reap = c;
}

void conn_close_after_flush(conn_t *c, const char *reason) {
    if (c->flags & CONN_F_CLOSING)
        return;
    c->flags |= CONN_F_CLOSING;
    c->close_deadline = uv_now(c->srv->loop) + CLOSE_LINGER_MS;
    conn_mark_reap(c, reason);
    mark_pending(c);
}

void conn_abort(conn_t *c, const char *reason) {
    if (c->flags & CONN_F_DEAD)
        return;
    c->flags |= CONN_F_CLOSING;
    if (c->close_reason == NULL)
        c->close_reason = reason;
    conn_mark_reap(c, reason);
    queue_clear(c);
    /* A write in flight still references the queue's first entries; its
     * callback sees CONN_F_DEAD and only releases them. */
    conn_finish(c);
}

static void list_unlink(conn_t **head, conn_t *c, size_t link_off) {
    for (conn_t **pp = head; *pp != NULL;) {
        conn_t **next = (conn_t **)(void *)((char *)*pp + link_off);
        if (*pp == c) {
            *pp = *next;
            return;
        }
        pp = next;
    }
}

static void on_close(uv_handle_t *h) {
    conn_t *c = (conn_t *)h;
    server_t *srv = c->srv;
    /* Close callbacks run after the iteration's callbacks, which may have
     * left the connection on the flush or reap list: take it off first. */
    if (c->flags & CONN_F_PENDING)
        list_unlink(&srv->pending, c, offsetof(conn_t, pending_next));
    if (c->flags & CONN_F_REAP)
        list_unlink(&srv->reap, c, offsetof(conn_t, reap_next));
    /* Outside any chat callback here, so the session can be closed now. */
    if (c->session != NULL) {
        chat_session_close(srv->chat, c->session,
                           c->presence_reason ? c->presence_reason : "disconnect");
        c->session = NULL;
    }
    server_ws_release(srv, c);
    /* Debug: one line per connection would let a connection flood fill the
     * log; refusals are logged (rate-limited) where they happen. */
    tt_log_debug("%s: closed (%s)", c->peer, c->close_reason ? c->close_reason : "done");
    queue_clear(c);
    if (c->prev)
        c->prev->next = c->next;
    else
        srv->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    srv->nconns--;
    free(c->in);
    free(c->msg);
    free(c);
}

/* ---- writing ---- */

static void conn_flush(conn_t *c);

static void on_write(uv_write_t *req, int status) {
    conn_t *c = req->data;
    unsigned n = c->inflight;
    c->inflight = 0;
    c->flags &= ~(uint32_t)CONN_F_WRITING;
    if (c->flags & CONN_F_DEAD) {
        queue_clear(c);
        return;
    }
    if (status < 0) {
        conn_abort(c, "write failed");
        return;
    }
    /* The write covered the first n entries from q_off on. */
    size_t bytes = 0, off = c->q_off;
    wq_entry_t *e = c->q_head;
    for (unsigned i = 0; i < n && e != NULL; i++, e = e->next) {
        bytes += e->len - off;
        off = 0;
    }
    queue_consume(c, bytes);
    conn_flush(c);
}

static void conn_flush(conn_t *c) {
    uv_buf_t iov[IOV_BATCH];
    while (c->q_head != NULL && !(c->flags & (CONN_F_WRITING | CONN_F_DEAD))) {
        unsigned n = queue_iov(c, iov, IOV_BATCH);
        int r = uv_try_write((uv_stream_t *)&c->tcp, iov, n);
        if (r == UV_EAGAIN || r == UV_ENOSYS)
            r = 0;
        if (r < 0) {
            conn_abort(c, "write failed");
            return;
        }
        queue_consume(c, (size_t)r);
        if (c->q_head == NULL)
            break;
        /* Did the kernel take everything offered? Then gather the next batch. */
        size_t offered = 0;
        for (unsigned i = 0; i < n; i++)
            offered += iov[i].len;
        if ((size_t)r == offered)
            continue;
        /* Short write: hand the rest of this batch to libuv, which writes
         * it when the socket becomes writable. */
        n = queue_iov(c, iov, IOV_BATCH);
        c->inflight = n;
        c->wreq.data = c;
        c->flags |= CONN_F_WRITING;
        if (uv_write(&c->wreq, (uv_stream_t *)&c->tcp, iov, n, on_write) < 0) {
            c->flags &= ~(uint32_t)CONN_F_WRITING;
            c->inflight = 0;
            conn_abort(c, "write failed");
        }
        return;
    }
    if (c->q_head == NULL && !(c->flags & CONN_F_WRITING) && (c->flags & CONN_F_CLOSING) &&
        !(c->flags & CONN_F_DEAD))
        conn_closing_flushed(c);
}

void server_flush_all(server_t *srv) {
    while (srv->pending != NULL) {
        conn_t *list = srv->pending;
        srv->pending = NULL;
        while (list != NULL) {
            conn_t *c = list;
            list = c->pending_next;
            c->flags &= ~(uint32_t)CONN_F_PENDING;
            if (!(c->flags & CONN_F_DEAD))
                conn_flush(c);
        }
    }
}

void server_reap_all(server_t *srv) {
    /* Closing a session tells the others (member_left), which can overflow
     * another slow queue and add it to the list: loop until empty. */
    while (srv->reap != NULL) {
        conn_t *c = srv->reap;
        srv->reap = c->reap_next;
        c->flags &= ~(uint32_t)CONN_F_REAP;
        if (c->session != NULL) {
            chat_session_t *s = c->session;
            c->session = NULL;
            chat_session_close(srv->chat, s,
                               c->presence_reason ? c->presence_reason : "disconnect");
        }
    }
}

/* ---- reading ---- */

static size_t input_limit(const conn_t *c) {
    if (c->proto == CONN_HTTP)
        return HTTP_INPUT_MAX;
    size_t ws = c->srv->cfg.max_message + WS_MAX_HEADER;
    return (ws > 16384 ? ws : 16384) + 65536;
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
    conn_t *c = (conn_t *)h;
    server_t *srv = c->srv;
    if (c->in_len == 0) {
        *buf = uv_buf_init((char *)srv->readbuf, (unsigned)srv->readbuf_cap);
        return;
    }
    /* A partial head or frame is waiting: read behind it, growing the
     * connection's buffer (the parser bounds how far it may grow). */
    size_t want_free = c->proto == CONN_HTTP ? 1024 : 16384;
    if (c->in_cap - c->in_len < want_free) {
        size_t cap = c->in_cap * 2;
        if (cap < c->in_len + 65536)
            cap = c->in_len + 65536;
        if (cap > input_limit(c))
            cap = input_limit(c);
        if (cap > c->in_cap) {
            c->in = xrealloc(c->in, cap);
            c->in_cap = cap;
        }
    }
    *buf = uv_buf_init((char *)c->in + c->in_len, (unsigned)(c->in_cap - c->in_len));
}

/* Runs the protocol over data; returns bytes consumed. */
static size_t conn_process(conn_t *c, uint8_t *data, size_t len) {
    size_t pos = 0;
    while (pos < len && !(c->flags & CONN_F_DEAD)) {
        size_t n;
        if (c->proto == CONN_HTTP) {
            if (c->flags & CONN_F_CLOSING)
                return len; /* a refused request's leftovers are discarded */
            n = conn_http_process(c, data + pos, len - pos);
        } else {
            n = conn_ws_process(c, data + pos, len - pos);
        }
        if (n == 0)
            break;
        pos += n;
    }
    return pos;
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf) {
    conn_t *c = (conn_t *)stream;
    server_t *srv = c->srv;
    if (nread == 0)
        return;
    if (nread < 0) {
        if (nread == UV_ENOBUFS) {
            conn_abort(c, "input over the limit");
        } else if (c->flags & CONN_F_CLOSING) {
            conn_finish(c); /* the peer's EOF ends a close we started */
        } else {
            conn_abort(c, nread == UV_EOF ? "disconnect" : uv_strerror((int)nread));
        }
        server_reap_all(srv);
        return;
    }
    /* Any input shows a WebSocket peer is alive. A request head, though,
     * must be complete within --head-timeout of its start however slowly
     * it trickles in (slowloris), so for HTTP the clock restarts only when
     * a head is complete (conn_http_process). */
    if (c->proto == CONN_WS) {
        c->last_active = uv_now(srv->loop);
        c->ping_sent = 0;
    }
    uint8_t *data;
    size_t len;
    bool own = (uint8_t *)buf->base != srv->readbuf;
    if (own) {
        c->in_len += (size_t)nread;
        data = c->in;
        len = c->in_len;
    } else {
        data = (uint8_t *)buf->base;
        len = (size_t)nread;
    }
    size_t used = conn_process(c, data, len);
    if (c->flags & CONN_F_DEAD) {
        server_reap_all(srv);
        return;
    }
    size_t left = len - used;
    if (left == 0) {
        /* Nothing pending: an idle connection keeps no input buffer. */
        free(c->in);
        c->in = NULL;
        c->in_len = c->in_cap = 0;
        c->head_scanned = 0;
    } else if (own) {
        if (used > 0) {
            memmove(c->in, c->in + used, left);
            c->head_scanned = 0;
        }
        c->in_len = left;
    } else {
        /* Keep the partial head or frame out of the shared buffer. */
        size_t cap = left + (c->proto == CONN_HTTP ? 4096 : 16384);
        c->in = xmalloc(cap);
        c->in_cap = cap;
        memcpy(c->in, data + used, left);
        c->in_len = left;
    }
    server_reap_all(srv);
}

/* ---- accepting ---- */

void conn_accept(server_t *srv) {
    conn_t *c = xcalloc(1, sizeof(*c));
    c->srv = srv;
    uv_tcp_init(srv->loop, &c->tcp);
    int r = uv_accept((uv_stream_t *)&srv->listener, (uv_stream_t *)&c->tcp);
    if (r < 0) {
        tt_log_warn("accept failed: %s", uv_strerror(r));
        c->flags |= CONN_F_DEAD;
        /* Not on the list yet: close the bare handle and free it. */
        uv_close((uv_handle_t *)&c->tcp, (uv_close_cb)free);
        return;
    }
    struct sockaddr_storage ss;
    int sslen = sizeof(ss);
    strcpy(c->peer, "?");
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &sslen) == 0) {
        char ip[46] = "?";
        int port = 0;
        if (ss.ss_family == AF_INET) {
            struct sockaddr_in *a = (struct sockaddr_in *)&ss;
            uv_ip4_name(a, ip, sizeof(ip));
            port = ntohs(a->sin_port);
            snprintf(c->peer, sizeof(c->peer), "%s:%d", ip, port);
        } else if (ss.ss_family == AF_INET6) {
            struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
            uv_ip6_name(a, ip, sizeof(ip));
            port = ntohs(a->sin6_port);
            snprintf(c->peer, sizeof(c->peer), "[%s]:%d", ip, port);
        }
    }
    uv_tcp_nodelay(&c->tcp, 1);
    c->last_active = uv_now(srv->loop);
    c->next = srv->conns;
    if (srv->conns)
        srv->conns->prev = c;
    srv->conns = c;
    srv->nconns++;
    tt_log_debug("%s: open", c->peer);
    r = uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
    if (r < 0)
        conn_abort(c, uv_strerror(r));
}
