/* The server loop: listener, signals, the once-per-iteration pass that
 * completes chat work and writes every queue, and the coarse sweep timer
 * that enforces deadlines for all connections (no timer per connection). */
#include "net/net.h"

#include <stdarg.h>
#include <stdio.h>
#include <sys/resource.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/xmalloc.h"
#include "http/http_req.h"
#include "http/http_resp.h"
#include "store/store.h"
#include "store/store_chat.h"

#define READBUF_SIZE (64 * 1024)
#define SWEEP_MS 1000

void server_config_defaults(server_config_t *cfg) {
    memset(cfg, 0, sizeof(*cfg));
    snprintf(cfg->host, sizeof(cfg->host), "127.0.0.1");
    cfg->port = 9090;
    cfg->max_message = 64 * 1024;
    cfg->max_queue = 1024 * 1024;
    cfg->shutdown_ms = 3000;
    cfg->max_per_ip = 1000;
    cfg->head_timeout_ms = 10000;
    cfg->ping_ms = 30000;
    cfg->db_path = STORE_DEFAULT_PATH;
    chat_config_defaults(&cfg->chat);
}

/* Flood control's clock: the loop time, read once per iteration by libuv,
 * so it costs nothing per request. */
static uint64_t loop_now_ms(void *ctx) {
    server_t *srv = ctx;
    return uv_now(srv->loop);
}

static void refresh_date(server_t *srv) {
    http_date_now(srv->date);
}

/* Before the loop blocks: finish the iteration's chat work (group commit,
 * fan-out), close sessions of dropped connections, then write every queue
 * once, gathering each connection's output into one write. */
static void on_prepare(uv_prepare_t *h) {
    server_t *srv = h->data;
    chat_flush(srv->chat);
    server_reap_all(srv);
    server_flush_all(srv);
}

#define LOG_BUDGET 50 /* refusal lines per second */

void server_log_refusal(server_t *srv, const char *fmt, ...) {
    if (srv->log_budget == 0) {
        srv->log_suppressed++;
        return;
    }
    srv->log_budget--;
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    tt_log_info("%s", line);
}

int server_ws_admit(server_t *srv, conn_t *c, const char **why) {
    if (srv->nws >= srv->cfg.max_connections) {
        *why = "server full: too many connections";
        return 503;
    }
    /* The address is the peer string without its port. */
    const char *colon = strrchr(c->peer, ':');
    size_t len = colon ? (size_t)(colon - c->peer) : strlen(c->peer);
    ip_count_t *ip = tt_map_get(&srv->per_ip, c->peer, len);
    if (ip != NULL && srv->cfg.max_per_ip && ip->count >= srv->cfg.max_per_ip) {
        *why = "too many connections from this address";
        return 503;
    }
    if (ip == NULL) {
        ip = xcalloc(1, sizeof(*ip));
        ip->len = len < sizeof(ip->addr) ? len : sizeof(ip->addr) - 1;
        memcpy(ip->addr, c->peer, ip->len);
        tt_map_put(&srv->per_ip, ip->addr, ip->len, ip);
    }
    ip->count++;
    c->ip = ip;
    srv->nws++;
    return 0;
}

void server_ws_release(server_t *srv, conn_t *c) {
    ip_count_t *ip = c->ip;
    if (ip == NULL)
        return;
    c->ip = NULL;
    srv->nws--;
    if (--ip->count == 0) {
        tt_map_remove(&srv->per_ip, ip->addr, ip->len);
        free(ip);
    }
}

/* Once a second, over every connection: close deadlines, request-head and
 * keep-alive timeouts, and WebSocket keepalive pings. One timer for all
 * instead of one per connection. */
static void on_sweep(uv_timer_t *t) {
    server_t *srv = t->data;
    const server_config_t *cfg = &srv->cfg;
    uint64_t now = uv_now(srv->loop);
    refresh_date(srv);
    if (srv->log_suppressed) {
        tt_log_warn("%u more refusals not logged in the last second", srv->log_suppressed);
        srv->log_suppressed = 0;
    }
    srv->log_budget = LOG_BUDGET;
    for (conn_t *c = srv->conns, *next; c != NULL; c = next) {
        next = c->next;
        if (c->flags & CONN_F_DEAD)
            continue;
        if (c->flags & CONN_F_CLOSING) {
            if (now >= c->close_deadline)
                conn_abort(c, "close timed out");
        } else if (c->proto == CONN_HTTP) {
            if (now - c->last_active >= cfg->head_timeout_ms) {
                server_log_refusal(srv, "%s: request head timeout (%u ms)", c->peer,
                                   cfg->head_timeout_ms);
                conn_abort(c, "request head timeout");
            }
        } else if (cfg->ping_ms) {
            if (c->ping_sent != 0 && now - c->ping_sent >= cfg->ping_ms) {
                server_log_refusal(srv, "%s: no answer to keepalive ping: closing", c->peer);
                c->presence_reason = "timeout";
                conn_ws_close(c, WS_CLOSE_GOING_AWAY, "idle timeout");
                c->flags |= CONN_F_HARD_CLOSE;
            } else if (c->ping_sent == 0 && now - c->last_active >= cfg->ping_ms) {
                conn_ws_ping(c);
                c->ping_sent = now;
            }
        }
    }
    server_reap_all(srv);
    server_flush_all(srv);
}

static void on_connection(uv_stream_t *listener, int status) {
    server_t *srv = listener->data;
    if (status < 0) {
        /* EMFILE: libuv has already accepted and closed the waiting
         * connections with its reserve descriptor, so the loop does not
         * spin; existing clients are unaffected, and accepting resumes by
         * itself once descriptors are free. */
        server_log_refusal(srv, "cannot accept: %s", uv_strerror(status));
        return;
    }
    if (srv->stopping)
        return;
    conn_accept(srv);
    if (srv->nconns > srv->max_sockets && srv->conns != NULL) {
        conn_t *c = srv->conns; /* the one just accepted is at the head */
        server_log_refusal(srv, "%s: refused: at the open-file limit (%zu connections)", c->peer,
                           srv->nconns - 1);
        conn_abort(c, "open-file limit");
    }
}

static void on_handle_closed(uv_handle_t *h) {
    (void)h;
}

static void finish_shutdown(server_t *srv) {
    uv_close((uv_handle_t *)&srv->sweep, on_handle_closed);
    uv_close((uv_handle_t *)&srv->prepare, on_handle_closed);
    uv_close((uv_handle_t *)&srv->sigint, on_handle_closed);
    uv_close((uv_handle_t *)&srv->sigterm, on_handle_closed);
}

static void on_shutdown_tick(uv_timer_t *t) {
    server_t *srv = t->data;
    if (srv->conns == NULL || uv_now(srv->loop) >= srv->stop_deadline) {
        for (conn_t *c = srv->conns; c != NULL; c = c->next)
            conn_abort(c, "shutdown");
        server_reap_all(srv);
        uv_close((uv_handle_t *)t, on_handle_closed);
        finish_shutdown(srv);
    }
}

static void on_signal(uv_signal_t *sig, int signum) {
    server_t *srv = sig->data;
    if (srv->stopping)
        return;
    srv->stopping = true;
    tt_log_info("signal %d: shutting down (%zu connections)", signum, srv->nconns);
    uv_close((uv_handle_t *)&srv->listener, on_handle_closed);
    for (conn_t *c = srv->conns; c != NULL; c = c->next) {
        if (c->flags & CONN_F_DEAD)
            continue;
        if (c->proto == CONN_WS) {
            c->presence_reason = "shutdown";
            conn_ws_close(c, WS_CLOSE_GOING_AWAY, "server shutting down");
        } else {
            conn_close_after_flush(c, "shutdown");
        }
    }
    server_reap_all(srv);
    server_flush_all(srv);
    srv->stop_deadline = uv_now(srv->loop) + srv->cfg.shutdown_ms;
    uv_timer_init(srv->loop, &srv->stop_timer);
    srv->stop_timer.data = srv;
    uv_timer_start(&srv->stop_timer, on_shutdown_tick, 20, 20);
}

static int listen_on(server_t *srv) {
    struct sockaddr_storage addr;
    const server_config_t *cfg = &srv->cfg;
    int r = uv_ip4_addr(cfg->host, cfg->port, (struct sockaddr_in *)&addr);
    if (r < 0)
        r = uv_ip6_addr(cfg->host, cfg->port, (struct sockaddr_in6 *)&addr);
    if (r < 0) {
        tt_log_error("invalid listen address '%s'", cfg->host);
        return r;
    }
    uv_tcp_init(srv->loop, &srv->listener);
    srv->listener.data = srv;
    r = uv_tcp_bind(&srv->listener, (struct sockaddr *)&addr, 0);
    if (r == 0)
        r = uv_listen((uv_stream_t *)&srv->listener, 1024, on_connection);
    if (r < 0) {
        tt_log_error("cannot listen on %s:%d: %s", cfg->host, cfg->port, uv_strerror(r));
        uv_close((uv_handle_t *)&srv->listener, NULL);
        return r;
    }
    struct sockaddr_storage bound;
    int len = sizeof(bound);
    uv_tcp_getsockname(&srv->listener, (struct sockaddr *)&bound, &len);
    char ip[64] = "?";
    int port = 0;
    if (bound.ss_family == AF_INET6) {
        uv_ip6_name((struct sockaddr_in6 *)&bound, ip, sizeof(ip));
        port = ntohs(((struct sockaddr_in6 *)&bound)->sin6_port);
        tt_log_always("listening on [%s]:%d", ip, port);
    } else {
        uv_ip4_name((struct sockaddr_in *)&bound, ip, sizeof(ip));
        port = ntohs(((struct sockaddr_in *)&bound)->sin_port);
        tt_log_always("listening on %s:%d", ip, port);
    }
    return 0;
}

/* Opens the history database and starts its maintenance thread (retention,
 * WAL checkpoints). A damaged or unreachable file is a clear log line with
 * the path and SQLite's reason, and the server does not start. */
static int open_history(const server_config_t *cfg, store_t **out) {
    store_config_t sc;
    store_config_defaults(&sc);
    sc.path = cfg->db_path;
    sc.max_bytes = cfg->db_max_bytes;
    char err[768];
    int r = store_open(&sc, out, err, sizeof(err));
    if (r < 0) {
        tt_log_error("cannot open the message history: %s", err[0] ? err : store_strerror(r));
        return r;
    }
    store_maint_config_t mc;
    store_maint_config_defaults(&mc);
    mc.retain_messages = cfg->retain_messages;
    mc.retain_days = cfg->retain_days;
    r = store_maint_start(*out, &mc, err, sizeof(err));
    if (r < 0) {
        tt_log_error("cannot start the history maintenance thread: %s", err);
        store_close(*out);
        *out = NULL;
        return r;
    }
    char keep[96] = "kept forever";
    if (cfg->retain_messages || cfg->retain_days)
        snprintf(keep, sizeof(keep), "kept: %llu per room (0: all), %u days (0: forever)",
                 (unsigned long long)cfg->retain_messages, cfg->retain_days);
    tt_log_info("message history in %s (last id %lld; %s)", store_path(*out),
                (long long)store_last_id(*out), keep);
    return 0;
}

int server_run(const server_config_t *cfg) {
    server_t *srv = xcalloc(1, sizeof(*srv));
    srv->cfg = *cfg;
    srv->cfg.chat.max_message = cfg->max_message;
    /* Leave room under the open-file limit for the listener, the loop's
     * own descriptors, the database and logs: sockets past max_sockets are
     * accepted and closed at once, with a log line, so the loop never runs
     * into EMFILE in normal operation. */
    struct rlimit rl;
    size_t lim = 1024;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
        lim = (size_t)rl.rlim_cur;
    srv->max_sockets = lim > 64 ? lim - 32 : lim / 2;
    if (srv->cfg.max_connections == 0)
        srv->cfg.max_connections = lim > 128 ? lim - 64 : lim / 2;
    /* A queue must hold at least one message of the largest size. */
    size_t one = cfg->max_message + WS_MAX_HEADER + 4096;
    if (srv->cfg.max_queue < one)
        srv->cfg.max_queue = one;
    /* welcome.limits reports the transport's limits next to the chat's. */
    chat_config_t *cc = &srv->cfg.chat;
    chat_config_add_limit(cc, "max_queue", (int64_t)srv->cfg.max_queue);
    chat_config_add_limit(cc, "max_connections", (int64_t)srv->cfg.max_connections);
    chat_config_add_limit(cc, "max_per_ip", (int64_t)srv->cfg.max_per_ip);
    chat_config_add_limit(cc, "max_head", HTTP_MAX_HEAD);
    chat_config_add_limit(cc, "head_timeout_ms", srv->cfg.head_timeout_ms);
    chat_config_add_limit(cc, "ping_interval_ms", srv->cfg.ping_ms);
    tt_map_init(&srv->per_ip, 0);
    srv->log_budget = LOG_BUDGET;
    srv->loop = xmalloc(sizeof(*srv->loop));
    uv_loop_init(srv->loop);
    srv->readbuf_cap = READBUF_SIZE;
    srv->readbuf = xmalloc(READBUF_SIZE);
    refresh_date(srv);

    store_t *store = NULL;
    store_chat_t *history = NULL;
    int r = open_history(&srv->cfg, &store);
    if (r < 0)
        goto out_loop;
    r = listen_on(srv);
    if (r < 0)
        goto out_loop;
    srv->chat = chat_new(&srv->cfg.chat, &conn_chat_io, srv);
    chat_set_clock(srv->chat, loop_now_ms, srv);
    /* The chat's ids continue after the last stored one. */
    r = store_chat_attach(srv->chat, store, &history);
    if (r < 0) {
        tt_log_error("cannot read the message history: %s", store_strerror(r));
        chat_free(srv->chat);
        uv_close((uv_handle_t *)&srv->listener, on_handle_closed);
        goto out_loop;
    }

    uv_prepare_init(srv->loop, &srv->prepare);
    srv->prepare.data = srv;
    uv_prepare_start(&srv->prepare, on_prepare);
    uv_timer_init(srv->loop, &srv->sweep);
    srv->sweep.data = srv;
    uv_timer_start(&srv->sweep, on_sweep, SWEEP_MS, SWEEP_MS);
    uv_signal_init(srv->loop, &srv->sigint);
    uv_signal_init(srv->loop, &srv->sigterm);
    srv->sigint.data = srv->sigterm.data = srv;
    uv_signal_start(&srv->sigint, on_signal, SIGINT);
    uv_signal_start(&srv->sigterm, on_signal, SIGTERM);

    uv_run(srv->loop, UV_RUN_DEFAULT);
    tt_log_info("stopped");
    chat_flush(srv->chat);
    chat_free(srv->chat);
    store_chat_stats_t hs;
    store_chat_stats(history, &hs);
    char line[256];
    store_chat_stats_format(&hs, line, sizeof(line));
    tt_log_info("message history: %s", line);
out_loop:
    /* After the chat: it may commit until chat_free. */
    store_chat_free(history);
    store_close(store);
    uv_run(srv->loop, UV_RUN_DEFAULT); /* let close callbacks run */
    uv_loop_close(srv->loop);
    while (srv->free_entries != NULL) {
        wq_entry_t *e = srv->free_entries;
        srv->free_entries = e->next;
        free(e);
    }
    tt_map_dispose(&srv->per_ip);
    free(srv->readbuf);
    free(srv->loop);
    free(srv);
    tt_buf_pool_drain();
    return r;
}
