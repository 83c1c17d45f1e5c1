/* Internals shared by the files of src/server: the server, and the two
 * protocol endpoints that live in a stream's ext area (HTTP/1.1 until an
 * upgrade, WebSocket after it). Only src/server includes this. */
#ifndef TT_SERVER_INT_H
#define TT_SERVER_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "chat/chat.h"
#include "core/list.h"
#include "core/map.h"
#include "server/server.h"
#include "transport/transport.h"
#include "ws/ws_frame.h"
#include "ws/ws_msg.h"

typedef struct server_s server_t;

/* What every endpoint starts with, so the sweep can tell them apart. */
enum { EP_HTTP = 1, EP_WS = 2 };
typedef struct ep_base_s {
    tt_stream_t *s;
    server_t *srv;
    uint8_t kind;
    bool admin;  /* accepted on an --admin-listen address */
    uint64_t id; /* the connection's number, from 1 (the admin page names it) */
} ep_base_t;

/* HTTP/1.1 serves one request at a time: while a response is unsent the
 * stream stops reading, so a pipelining client cannot make the server
 * buffer responses it never reads (h2o's http1.c does the same). The one
 * deadline is measured from the start of the current phase. */
typedef enum {
    HTTP_PHASE_IDLE = 0,   /* waiting for a request: keep-alive idleness */
    HTTP_PHASE_HEAD,       /* bytes of a head have arrived: it must be complete in time */
    HTTP_PHASE_RESPONDING, /* a response is unsent: the peer must keep reading it */
} http_phase_t;

typedef struct http_conn_s {
    ep_base_t base;
    uint8_t phase;         /* http_phase_t */
    uint8_t empty_lines;   /* empty lines skipped before the current request */
    uint32_t head_scanned; /* bytes of the current head already searched for its end */
    uint64_t since;        /* loop time the phase began (RESPONDING: last write progress) */
    uint64_t written;      /* the stream's bytes written at `since` */
} http_conn_t;

/* WebSockets per client address, for --max-per-ip. */
typedef struct ip_count_s {
    size_t count;
    size_t len;
    char addr[46];
} ip_count_t;

enum {
    WSC_ECHO = 1 << 0,       /* the /echo endpoint */
    WSC_CLOSE_SENT = 1 << 1, /* our close frame is queued */
    WSC_V1 = 1 << 2,         /* negotiated tertulia.v1 */
};

/* Who ended a WebSocket, for tertulia_websocket_closes_total. */
enum { WS_BY_NONE = 0, WS_BY_SERVER, WS_BY_CLIENT };

/* In every WebSocket's stream block, so its layout counts (184 bytes): the
 * small fields share the word after flags, and the assembly's sizes are 32
 * bits (--max-message is at most 1 GiB). */
typedef struct ws_conn_s {
    ep_base_t base;
    uint32_t flags;
    uint8_t deflate_bits; /* permessage-deflate: the client's server_max_window_bits; 0: off */
    uint8_t close_by;     /* WS_BY_*: who sent close_code */
    uint16_t close_code;  /* the first close code sent or received; 0: none yet */
    tt_link_t reap;       /* server->reap: its chat session is to be closed */
    ws_parser_t wsp;
    uint8_t *msg; /* assembly of a fragmented message (compressed bytes if it is) */
    uint32_t msg_len, msg_cap;
    chat_session_t *session;
    uint64_t last_active;        /* loop time of the last input */
    uint64_t ping_sent;          /* loop time of our unanswered keepalive ping, or 0 */
    ip_count_t *ip;              /* this WebSocket's entry in the per-address count */
    const char *presence_reason; /* member_left's reason; NULL is "disconnect" */
    uint64_t opened;             /* loop time of the upgrade */
    uint64_t messages_in;        /* messages received (the admin page's rate) */
} ws_conn_t;

/* The ext area of every stream. */
typedef union conn_ext_u {
    ep_base_t base;
    http_conn_t http;
    ws_conn_t ws;
} conn_ext_t;

/* HTTP statuses counted by tertulia_http_responses_total; the last counts
 * any other. */
#define SERVER_HTTP_STATUSES(X)                                                                    \
    X(200) X(304) X(308) X(400) X(401) X(403) X(404) X(405) X(426) X(431) X(500) X(503) X(505)
#define SERVER_STATUS_ENUM_(n) HTTP_STATUS_##n,
enum { SERVER_HTTP_STATUSES(SERVER_STATUS_ENUM_) HTTP_STATUS_OTHER, HTTP_STATUS_COUNT };
/* WebSocket close codes counted by tertulia_websocket_closes_total; 1006
 * is a connection that ended without a close frame; the last, any other. */
#define SERVER_WS_CLOSE_CODES(X)                                                                   \
    X(1000) X(1001) X(1002) X(1003) X(1005) X(1006) X(1007) X(1008) X(1009) X(1010) X(1011)
#define SERVER_CLOSE_ENUM_(n) WS_CODE_##n,
enum { SERVER_WS_CLOSE_CODES(SERVER_CLOSE_ENUM_) WS_CODE_OTHER, WS_CODE_COUNT };

/* What the server counts for /metrics, beside the chat's and the loop's
 * counters: plain integers on the loop thread. */
typedef struct server_counters_s {
    uint64_t http_responses[HTTP_STATUS_COUNT];
    uint64_t http_head_timeouts;          /* a request head not complete in time */
    uint64_t http_response_timeouts;      /* a response the peer did not read */
    uint64_t ws_opened[3];                /* [0] tertulia.v1, [1] legacy, [2] echo */
    uint64_t ws_closes[2][WS_CODE_COUNT]; /* [0] by the server, [1] by the client */
    uint64_t transport_refusals;          /* failed or stalled TLS handshakes, plain on TLS */
    uint64_t accept_refusals;             /* at the open-file limit, accept errors */
} server_counters_t;

struct server_s {
    tt_loop_t *loop;
    server_config_t cfg;
    tt_listener_t *listeners[SERVER_MAX_LISTEN];
    bool listener_admin[SERVER_MAX_LISTEN]; /* listeners[i] is an --admin-listen address */
    size_t nlisteners;
    tt_tls_ctx_t *tls;       /* the pair new TLS handshakes use */
    bool tls_reloading;      /* a SIGHUP's load is running */
    bool config_reloading;   /* a SIGHUP's read of --config is running */
    server_config_t running; /* the options as resolved, live changes applied */
    tt_signal_t *sigint, *sigterm, *sighup;
    tt_timer_t *sweep;      /* one coarse timer for every connection's deadlines */
    tt_timer_t *stop_timer; /* shutdown: waits for close handshakes */
    tt_timer_t *watchdog;   /* pings systemd's watchdog from the loop (NULL: not asked) */
    char status[256];       /* systemd's STATUS=: where the server listens */
    chat_t *chat;
    size_t fd_limit;             /* RLIMIT_NOFILE at start */
    struct store_async_s *async; /* the store's worker (SQLite off the loop) */
    struct accounts_s *accounts; /* the chat's auth hook (accounts.c) */
    struct cluster_s *cluster;   /* with --redis: the chat's bus (src/cluster) */
    tt_async_t *wake;            /* its completions wake the loop */
    tt_link_t reap;              /* ws_conn_t whose chat session must be closed */
    bool stopping;
    uint64_t stop_deadline;
    char date[30];         /* the HTTP Date header, refreshed by the sweep timer */
    size_t nws;            /* open WebSocket connections */
    size_t max_sockets;    /* connections the open-file limit leaves room for */
    size_t http_max_queue; /* one response: the largest asset and its head */
    tt_map_t per_ip;       /* client address -> ip_count_t */
    /* permessage-deflate: the loop's compressor and inflater (NULL when
     * --deflate off), shared by every connection. */
    ws_msg_deflate_t deflate;
    ws_inflater_t *inflater;
    /* Refusal logging is rate-limited so a flood cannot fill the disk. */
    unsigned log_budget;
    unsigned log_suppressed;
    double start_time_s; /* CLOCK_REALTIME at start (metrics.c) */
    uint64_t next_conn_id;
    server_counters_t counters;
    bool admin_reloading; /* a SIGHUP's read of --admin-token-file is running */
    bool admin_listener;  /* an --admin-listen address is open: ops paths live only there */
};

/* server.c */
/* Logs a refusal (peer and reason), at most a few dozen lines a second;
 * what is held back is counted and reported by the sweep timer. */
void server_log_refusal(server_t *srv, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Counts a new WebSocket against --max-connections and --max-per-ip;
 * returns 0 and *ip, or an HTTP status (503) and sets *why. */
int server_ws_admit(server_t *srv, tt_stream_t *s, ip_count_t **ip, const char **why);
void server_ws_release(server_t *srv, ip_count_t *ip);
/* Closes the chat sessions of every connection on the reap list. */
void server_reap_all(server_t *srv);

/* metrics.c: /metrics, /healthz, /readyz. */
struct tt_prom_s;
void server_metrics_init(server_t *srv);
/* Open connections by kind, TLS ones, and their queued bytes: one walk
 * over every stream (when metrics or the admin page are read, not on the
 * hot path). */
enum {
    SERVER_CONN_HTTP,
    SERVER_CONN_V1,
    SERVER_CONN_LEGACY,
    SERVER_CONN_ECHO,
    SERVER_CONN_CLOSING,
    SERVER_CONN_KINDS
};
typedef struct server_conn_census_s {
    uint64_t kind[SERVER_CONN_KINDS];
    uint64_t tls;
    uint64_t queued;
} server_conn_census_t;
void server_conn_census(server_t *srv, server_conn_census_t *out);
/* Writes the Prometheus text into p (initialised here; the caller disposes
 * of it). Returns 0, or -1 when it went over its bound. */
int server_metrics_text(server_t *srv, struct tt_prom_s *p);
/* True when the server can serve: the store open and writing, not shutting
 * down. Otherwise the reason goes into why (may be NULL). */
bool server_ready(server_t *srv, char *why, size_t cap);

/* http_conn.c: the HTTP/1.1 endpoint, every stream's first. */
extern const tt_stream_handler_t http_conn_handler;
/* A response with a body of blen bytes (copied), counted by status. extra
 * holds more header lines (each ending "\r\n") or is NULL. */
void http_conn_respond(http_conn_t *c, int status, bool keep_alive, const char *extra,
                       const char *ctype, const char *body, size_t blen, bool head_only);
/* Counts a response by status. */
void server_count_status(server_t *srv, int status);
struct http_asset_s;
struct http_req_s;
/* 404 "not found", keeping the connection. */
void http_conn_not_found(http_conn_t *c, const struct http_req_s *req);
/* Serves an embedded asset (GET or HEAD; ETag, no-cache; NULL: 404). */
void http_conn_serve_asset(http_conn_t *c, const struct http_req_s *req,
                           const struct http_asset_s *a);
void http_conn_init(http_conn_t *c, server_t *srv, tt_stream_t *s);
void http_conn_sweep(http_conn_t *c, uint64_t now);

/* admin.c: the admin page and its API (under /admin/). */
void admin_serve(http_conn_t *c, const struct http_req_s *req);
/* Reads the token from path (blocking) into out (SERVER_ADMIN_TOKEN_MAX + 1
 * bytes). Returns 0, or -1 with err filled. */
int admin_token_read(const char *path, char *out, size_t *len, char *err, size_t errlen);

/* ws_conn.c: the WebSocket endpoint, adopted on upgrade. */
extern const tt_stream_handler_t ws_conn_handler;
extern const chat_io_t ws_conn_chat_io;
/* zlib's compression level for outgoing messages. */
#define TT_DEFLATE_LEVEL 6
/* Moves stream s (whose ext held an HTTP endpoint) to WebSocket, with the
 * permessage-deflate parameters agreed in its handshake. */
void ws_conn_adopt(server_t *srv, tt_stream_t *s, bool v1, bool echo, ip_count_t *ip,
                   const ws_deflate_params_t *deflate);
/* Sends a close frame (once) and closes after the flush. */
void ws_conn_close(ws_conn_t *c, uint16_t code, const char *reason);
void ws_conn_sweep(ws_conn_t *c, uint64_t now);

#endif
