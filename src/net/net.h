/* Internals shared by the files of src/net: the server and connection
 * structures, the write queue and the close lifecycle. Nothing outside
 * src/net includes this (or <uv.h>). */
#ifndef TT_NET_NET_H
#define TT_NET_NET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "chat/chat.h"
#include "core/buf.h"
#include "core/map.h"
#include "net/server.h"
#include "ws/ws_frame.h"

typedef struct conn_s conn_t;
typedef struct server_s server_t;

/* One queued piece of output: a reference on a shared buffer, or a static
 * byte range (embedded web assets) when buf is NULL. Entries come from a
 * server-wide free list, so queuing a broadcast allocates nothing. */
typedef struct wq_entry_s {
    struct wq_entry_s *next;
    tt_buf_t *buf;
    const uint8_t *ptr;
    size_t len;
} wq_entry_t;

typedef enum {
    CONN_HTTP = 0, /* reading request heads */
    CONN_WS,       /* upgraded */
} conn_proto_t;

enum {
    CONN_F_CLOSING = 1 << 0,        /* no more input is processed; closes after the flush */
    CONN_F_CLOSE_SENT = 1 << 1,     /* our close frame is queued */
    CONN_F_HARD_CLOSE = 1 << 2,     /* close the socket as soon as the queue is flushed */
    CONN_F_SHUT = 1 << 3,           /* uv_shutdown issued */
    CONN_F_PENDING = 1 << 4,        /* on the server's flush list */
    CONN_F_WRITING = 1 << 5,        /* a uv_write is in flight */
    CONN_F_REAP = 1 << 6,           /* on the reap list: its chat session is to be closed */
    CONN_F_DEAD = 1 << 7,           /* uv_close called */
    CONN_F_ECHO = 1 << 8,           /* the /echo endpoint */
};

struct conn_s {
    uv_tcp_t tcp; /* first: the handle's address is the connection's */
    server_t *srv;
    conn_t *prev, *next;     /* all connections */
    conn_t *pending_next;    /* flush list */
    conn_t *reap_next;       /* reap list */
    uint32_t flags;
    uint8_t proto;           /* conn_proto_t */
    /* Input not yet consumed (partial head or frame); NULL while empty, so
     * an idle connection holds no input buffer. */
    uint8_t *in;
    size_t in_len, in_cap;
    size_t head_scanned;     /* HTTP: bytes of in already searched for the blank line */
    /* WebSocket */
    ws_parser_t wsp;
    uint8_t *msg;            /* assembly of a fragmented message */
    size_t msg_len, msg_cap;
    chat_session_t *session;
    /* Output */
    wq_entry_t *q_head, *q_tail;
    size_t q_bytes;          /* unsent bytes queued */
    size_t q_off;            /* bytes of q_head already written */
    unsigned inflight;       /* entries covered by the uv_write in flight */
    uv_write_t wreq;
    uv_shutdown_t sreq;
    uint64_t close_deadline; /* loop time after which a closing connection is dropped */
    const char *close_reason;/* for the log */
    const char *presence_reason; /* member_left's reason; NULL is "disconnect" */
    uint64_t last_active;    /* WebSocket: loop time of the last input. HTTP: when the
                                current request head began (accept, or the previous head
                                complete), however its bytes trickle in */
    uint64_t ping_sent;      /* loop time of our unanswered keepalive ping, or 0 */
    struct ip_count_s *ip;   /* this WebSocket's entry in the per-address count */
    char peer[56];
};

/* WebSockets per client address, for --max-per-ip. */
typedef struct ip_count_s {
    size_t count;
    size_t len;
    char addr[46];
} ip_count_t;

struct server_s {
    uv_loop_t *loop;
    server_config_t cfg;
    uv_tcp_t listener;
    uv_signal_t sigint, sigterm;
    uv_prepare_t prepare;    /* before each poll: chat_flush, reap, write queues */
    uv_timer_t sweep;        /* one coarse timer for every connection's deadlines */
    chat_t *chat;
    conn_t *conns;           /* all connections (doubly linked) */
    size_t nconns;
    conn_t *pending;         /* connections with output to write this iteration */
    conn_t *reap;            /* connections whose chat session must be closed */
    wq_entry_t *free_entries;
    size_t nfree_entries;
    uint8_t *readbuf;        /* the loop-wide read buffer */
    size_t readbuf_cap;
    bool stopping;
    uv_timer_t stop_timer;   /* shutdown: waits for close handshakes */
    uint64_t stop_deadline;
    char date[30];           /* the HTTP Date header, refreshed by the sweep timer */
    size_t nws;              /* open WebSocket connections */
    size_t max_sockets;      /* connections the open-file limit leaves room for */
    tt_map_t per_ip;         /* client address -> ip_count_t */
    /* Refusal logging is rate-limited so a flood cannot fill the disk. */
    unsigned log_budget;
    unsigned log_suppressed;
};

/* conn.c: I/O and the close lifecycle */
void conn_accept(server_t *srv);
/* Queues a reference on buf (off/len give the bytes). Dropped if the
 * connection is closing; over max_queue the connection is closed with 1008. */
void conn_send_buf(conn_t *c, tt_buf_t *buf);
/* Queues a static byte range that outlives the connection. */
void conn_send_static(conn_t *c, const uint8_t *p, size_t len);
/* Queues a copy of a close frame, once, whatever the queue holds. */
void conn_send_close_frame(conn_t *c, const uint8_t *frame, size_t len);
/* Queues a copy of bytes. */
void conn_send_copy(conn_t *c, const void *p, size_t len);
/* Stops processing input and closes after the queue is flushed (HTTP
 * Connection: close, or after a WebSocket close frame). reason is static. */
void conn_close_after_flush(conn_t *c, const char *reason);
/* Drops the connection now, discarding unsent output. */
void conn_abort(conn_t *c, const char *reason);
/* Puts the connection on the reap list so its chat session is closed at a
 * safe point (never inside a chat callback). */
void conn_mark_reap(conn_t *c, const char *reason);
void server_flush_all(server_t *srv);
void server_reap_all(server_t *srv);

/* Logs a refusal (peer and reason), at most a few dozen lines a second;
 * what is held back is counted and reported by the sweep timer. */
void server_log_refusal(server_t *srv, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Counts a new WebSocket against --max-connections and --max-per-ip;
 * returns 0, or an HTTP status (503) and sets *why. */
int server_ws_admit(server_t *srv, conn_t *c, const char **why);
void server_ws_release(server_t *srv, conn_t *c);

/* conn_http.c: request heads. Returns bytes consumed (0: need more). */
size_t conn_http_process(conn_t *c, uint8_t *data, size_t len);

/* conn_ws.c: WebSocket frames. Returns bytes consumed (0: need more). */
size_t conn_ws_process(conn_t *c, uint8_t *data, size_t len);
/* Sends a close frame (once) and closes after the flush. */
void conn_ws_close(conn_t *c, uint16_t code, const char *reason);
/* Sends a keepalive ping. */
void conn_ws_ping(conn_t *c);
/* Called when the HTTP layer accepted an upgrade. */
void conn_ws_start(conn_t *c, bool v1, bool echo);
extern const chat_io_t conn_chat_io;

#endif
