/* The wiring: a listener whose streams start as HTTP endpoints, the chat
 * on its store, signals, the once-per-iteration pass that completes chat
 * work before the transport writes every queue, and the coarse sweep timer
 * that enforces deadlines for all connections (no timer per connection). */
#include "server/server_int.h"

#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <systemd/sd-daemon.h>
#include <time.h>
#include <unistd.h>

#include "auth/auth.h"
#include "auth/auth_jwt.h"
#include "auth/auth_token.h"
#include "cluster/cluster.h"
#include "core/log.h"
#include "core/xmalloc.h"
#include "http/http_req.h"
#include "http/http_resp.h"
#include "http/static.h"
#include "server/accounts.h"
#include "server/options.h"
#include "store/store.h"
#include "store/store_async.h"
#include "store/store_chat.h"

#define SWEEP_MS 1000

void server_config_defaults(server_config_t *cfg) {
    /* Nothing set: every value is the table's default (a string literal
     * where it is a string), so the options may go at once. */
    options_t *o = options_new();
    if (options_resolve(o, cfg) < 0)
        abort(); /* the defaults contradict each other: a bug in the table */
    options_free(o);
}

/* Flood control's clock: the loop time, read once per iteration by libuv,
 * so it costs nothing per request. */
static uint64_t loop_now_ms(void *ctx) {
    server_t *srv = ctx;
    return tt_loop_now(srv->loop);
}

static void refresh_date(server_t *srv) {
    http_date_now(srv->date);
}

/* Before the loop blocks: finish the iteration's chat work (group commit,
 * fan-out), close sessions of dropped connections, then write every queue
 * once, gathering each connection's output into one write. */
/* The store's worker finished jobs (worker thread: only wake the loop). */
static void on_store_notify(void *ctx) {
    tt_async_send(ctx);
}

/* On the loop: run the completions, in submission order (deliveries, joins
 * waiting for their history), then write what they queued. */
static void on_store_wake(void *ctx) {
    server_t *srv = ctx;
    if (srv->async != NULL)
        store_async_drain(srv->async);
}

static void before_flush(void *ctx) {
    server_t *srv = ctx;
    bool submitted = chat_flush(srv->chat);
    server_reap_all(srv);
    if (submitted && srv->async != NULL) {
        /* The batch waits for the store's worker. Where both threads share
         * one CPU (one core, or a pinned process) the worker would run only
         * once the loop blocks, after writing every queue, and the batch
         * would be delivered an iteration later. Yield once so the commit
         * runs now, and take its completion if it is there, so the batch
         * goes out in this iteration's writes, as an inline commit did.
         * With a core to spare the worker already runs and this costs a
         * system call; the completion then comes with a later poll. */
        sched_yield();
        if (store_async_drain(srv->async) > 0)
            server_reap_all(srv);
    }
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

int server_ws_admit(server_t *srv, tt_stream_t *s, ip_count_t **out, const char **why) {
    if (srv->nws >= srv->cfg.max_connections) {
        *why = "server full: too many connections";
        return 503;
    }
    const char *addr;
    size_t len = tt_stream_peer_addr(s, &addr);
    ip_count_t *ip = tt_map_get(&srv->per_ip, addr, len);
    if (ip != NULL && srv->cfg.max_per_ip && ip->count >= srv->cfg.max_per_ip) {
        *why = "too many connections from this address";
        return 503;
    }
    if (ip == NULL) {
        ip = xcalloc(1, sizeof(*ip));
        ip->len = len < sizeof(ip->addr) ? len : sizeof(ip->addr) - 1;
        memcpy(ip->addr, addr, ip->len);
        tt_map_put(&srv->per_ip, ip->addr, ip->len, ip);
    }
    ip->count++;
    *out = ip;
    srv->nws++;
    return 0;
}

void server_ws_release(server_t *srv, ip_count_t *ip) {
    if (ip == NULL)
        return;
    srv->nws--;
    if (--ip->count == 0) {
        tt_map_remove(&srv->per_ip, ip->addr, ip->len);
        free(ip);
    }
}

/* Once a second, over every connection: close deadlines, request-head,
 * response and keep-alive timeouts, and WebSocket keepalive pings. One
 * timer for all instead of one per connection. */
static void on_sweep(void *ctx) {
    server_t *srv = ctx;
    uint64_t now = tt_loop_now(srv->loop);
    refresh_date(srv);
    if (srv->log_suppressed) {
        tt_log_warn("%u more refusals not logged in the last second", srv->log_suppressed);
        srv->log_suppressed = 0;
    }
    srv->log_budget = LOG_BUDGET;
    tt_loop_sweep(srv->loop);
    for (tt_stream_t *s = tt_loop_first_stream(srv->loop); s != NULL; s = tt_loop_next_stream(s)) {
        if (tt_stream_is_closing(s))
            continue;
        conn_ext_t *e = tt_stream_ext(s);
        if (e->base.kind == EP_HTTP)
            http_conn_sweep(&e->http, now);
        else if (e->base.kind == EP_WS)
            ws_conn_sweep(&e->ws, now);
    }
    server_reap_all(srv);
    /* Grace times that ran out: their member_left, undelivered. */
    chat_tick(srv->chat);
    tt_loop_flush(srv->loop);
}

static void accept_stream(server_t *srv, tt_stream_t *s, bool admin) {
    conn_ext_t *e = tt_stream_ext(s);
    http_conn_init(&e->http, srv, s);
    e->base.admin = admin;
    e->base.id = ++srv->next_conn_id;
    tt_stream_set_max_queue(s, srv->http_max_queue);
    if (srv->stopping) {
        tt_stream_abort(s, "shutdown");
        return;
    }
    /* This stream, not another: the count includes it. */
    if (tt_loop_stream_count(srv->loop) > srv->max_sockets) {
        srv->counters.accept_refusals++;
        server_log_refusal(srv, "%s: refused: at the open-file limit (%zu connections)",
                           tt_stream_peer(s), tt_loop_stream_count(srv->loop) - 1);
        tt_stream_abort(s, "open-file limit");
    }
}

static void on_accept(void *ctx, tt_stream_t *s) {
    accept_stream(ctx, s, false);
}

/* An --admin-listen address: metrics, health and the admin page only. */
static void on_accept_admin(void *ctx, tt_stream_t *s) {
    accept_stream(ctx, s, true);
}

static void on_accept_error(void *ctx, int err, const char *what) {
    (void)err;
    server_t *srv = ctx;
    srv->counters.accept_refusals++;
    server_log_refusal(srv, "cannot accept: %s", what);
}

/* ---- systemd (sd_notify): every call is a no-op without NOTIFY_SOCKET ---- */

/* WATCHDOG=1 from a timer on the loop: a loop that is stuck stops pinging,
 * and systemd (WatchdogSec=) kills and restarts the server. */
static void on_watchdog(void *ctx) {
    (void)ctx;
    sd_notify(0, "WATCHDOG=1");
}

/* Pings at half of the interval systemd asks for (WATCHDOG_USEC), when it
 * asks: sd_watchdog_enabled is 0 without the variable, or when
 * WATCHDOG_PID names another process. */
static void watchdog_start(server_t *srv) {
    uint64_t usec = 0;
    if (sd_watchdog_enabled(0, &usec) <= 0 || usec == 0)
        return;
    uint64_t ms = usec / 2000;
    if (ms == 0)
        ms = 1;
    srv->watchdog = tt_timer_new(srv->loop, on_watchdog, srv);
    tt_timer_start(srv->watchdog, ms, ms);
    sd_notify(0, "WATCHDOG=1");
    tt_log_info("systemd watchdog: pinging every %llu ms", (unsigned long long)ms);
}

static void notify_ready(server_t *srv) {
    sd_notifyf(0, "READY=1\nSTATUS=%s", srv->status);
}

/* A SIGHUP's reloads are all done (or there was none to do). */
static void reload_finished(server_t *srv) {
    if (!srv->config_reloading && !srv->tls_reloading && !srv->admin_reloading && !srv->stopping)
        notify_ready(srv);
}

static void close_handles(server_t *srv) {
    /* The password workers first: none may wake a freed handle. */
    accounts_stop(srv->accounts);
    cluster_stop(srv->cluster);
    tt_async_free(srv->wake);
    srv->wake = NULL;
    tt_timer_free(srv->watchdog);
    srv->watchdog = NULL;
    tt_timer_free(srv->sweep);
    tt_signal_free(srv->sigint);
    tt_signal_free(srv->sigterm);
    tt_signal_free(srv->sighup);
    srv->sweep = NULL;
    srv->sigint = srv->sigterm = srv->sighup = NULL;
}

static void on_shutdown_tick(void *ctx) {
    server_t *srv = ctx;
    if (tt_loop_stream_count(srv->loop) == 0 || tt_loop_now(srv->loop) >= srv->stop_deadline) {
        for (tt_stream_t *s = tt_loop_first_stream(srv->loop); s; s = tt_loop_next_stream(s))
            tt_stream_abort(s, "shutdown");
        tt_timer_free(srv->stop_timer);
        srv->stop_timer = NULL;
        close_handles(srv);
    }
}

static void close_listeners(server_t *srv);

static void on_signal(void *ctx) {
    server_t *srv = ctx;
    if (srv->stopping)
        return;
    srv->stopping = true;
    sd_notify(0, "STOPPING=1");
    tt_log_info("shutting down (%zu connections)", tt_loop_stream_count(srv->loop));
    close_listeners(srv);
    for (tt_stream_t *s = tt_loop_first_stream(srv->loop); s; s = tt_loop_next_stream(s)) {
        if (tt_stream_is_closing(s))
            continue;
        conn_ext_t *e = tt_stream_ext(s);
        if (e->base.kind == EP_WS) {
            e->ws.presence_reason = "shutdown";
            ws_conn_close(&e->ws, WS_CLOSE_GOING_AWAY, "server shutting down");
        } else {
            tt_stream_close_after_flush(s, "shutdown");
        }
    }
    server_reap_all(srv);
    tt_loop_flush(srv->loop);
    srv->stop_deadline = tt_loop_now(srv->loop) + srv->cfg.shutdown_ms;
    srv->stop_timer = tt_timer_new(srv->loop, on_shutdown_tick, srv);
    tt_timer_start(srv->stop_timer, 20, 20);
}

/* What a client that speaks plain HTTP to a TLS port gets (as nginx
 * answers it), unencrypted, before the close. */
#define PLAIN_ON_TLS_BODY "plain HTTP sent to a TLS port: use https:// or wss://\n"
static const char plain_on_tls[] = "HTTP/1.1 400 Bad Request\r\n"
                                   "Content-Type: text/plain; charset=utf-8\r\n"
                                   "Content-Length: 54\r\n"
                                   "Connection: close\r\n"
                                   "\r\n" PLAIN_ON_TLS_BODY;
_Static_assert(sizeof(PLAIN_ON_TLS_BODY) - 1 == 54, "Content-Length of the plain reply");

static void close_listeners(server_t *srv) {
    for (size_t i = 0; i < srv->nlisteners; i++)
        tt_listener_close(srv->listeners[i]);
    srv->nlisteners = 0;
}

/* Refusals decided in the transport (TLS handshakes), in the same
 * rate-limited log as the endpoints'. */
static void on_transport_refusal(void *ctx, tt_stream_t *s, const char *why) {
    server_t *srv = ctx;
    srv->counters.transport_refusals++;
    server_log_refusal(srv, "%s: refused: %s", tt_stream_peer(s), why);
}

int server_jwt_load(server_config_t *cfg, char *err, size_t errlen) {
    cfg->jwt = NULL;
    if (cfg->jwt_key == NULL && cfg->jwt_secret_file == NULL)
        return 0;
    return auth_jwt_keys_load(cfg->jwt_key, cfg->jwt_secret_file, &cfg->jwt, err, errlen) == 0 ? 0
                                                                                               : -1;
}

void server_jwt_free(server_config_t *cfg) {
    auth_jwt_keys_free(cfg->jwt);
    cfg->jwt = NULL;
}

int server_tls_load(server_config_t *cfg, char *err, size_t errlen) {
    return tt_tls_ctx_load(cfg->tls_cert, cfg->tls_key, &cfg->tls, err, errlen);
}

void server_tls_free(server_config_t *cfg) {
    tt_tls_ctx_unref(cfg->tls);
    cfg->tls = NULL;
}

/* SIGHUP: a new certificate and key, read and parsed on a thread; new
 * handshakes use it, connections keep the pair they started with. */
static void on_tls_loaded(void *ctx, tt_tls_ctx_t *tls, const char *err) {
    server_t *srv = ctx;
    srv->tls_reloading = false;
    if (tls == NULL) {
        tt_log_error("TLS reload failed, keeping the previous certificate: %s", err);
        reload_finished(srv);
        return;
    }
    if (srv->stopping) {
        tt_tls_ctx_unref(tls);
        return;
    }
    for (size_t i = 0; i < srv->nlisteners; i++)
        if (tt_listener_is_tls(srv->listeners[i]))
            tt_listener_set_tls(srv->listeners[i], tls);
    tt_tls_ctx_unref(srv->tls);
    srv->tls = tls;
    tt_log_always("TLS certificate reloaded: %s", tt_tls_ctx_describe(tls));
    reload_finished(srv);
}

/* SIGHUP with --config: the file and the environment are read and
 * resolved again on a thread (under the same command line); the loop then
 * applies what may change live and names what needs a restart. */
typedef struct reload_job_s {
    server_t *srv;
    options_t *opts;
    server_config_t cfg;
    int r;
} reload_job_t;

static void reload_work(void *ctx) {
    reload_job_t *j = ctx;
    j->opts = options_new();
    options_copy_cli(j->opts, j->srv->cfg.options);
    j->r = options_read_file(j->opts, j->srv->cfg.config_path);
    if (j->r == 0)
        j->r = options_read_env(j->opts, environ, NULL);
    if (j->r == 0)
        j->r = options_resolve(j->opts, &j->cfg);
}

static void derive_limits(server_t *srv);

/* The running configuration's live values, into everything that uses them:
 * the log level, the connection limits (checked at each accept), the chat
 * (its next request), and every open WebSocket's queue bound (a queue now
 * over it closes that slow consumer, as any overflow does). */
static void apply_live(server_t *srv) {
    options_copy_live(&srv->cfg, &srv->running);
    derive_limits(srv);
    tt_log_set_level((tt_log_level_t)srv->cfg.log_level);
    tt_log_set_format((tt_log_format_t)srv->cfg.log_format);
    chat_reconfigure(srv->chat, &srv->cfg.chat);
    for (tt_stream_t *s = tt_loop_first_stream(srv->loop); s != NULL; s = tt_loop_next_stream(s)) {
        conn_ext_t *e = tt_stream_ext(s);
        if (e->base.kind == EP_WS && !tt_stream_is_closing(s))
            tt_stream_set_max_queue(s, srv->cfg.max_queue);
    }
}

static void reload_done(void *ctx) {
    reload_job_t *j = ctx;
    server_t *srv = j->srv;
    const char *path = srv->cfg.config_path;
    srv->config_reloading = false;
    if (j->r < 0) {
        tt_log_error("SIGHUP: %s not applied, keeping the running configuration: %s", path,
                     options_error(j->opts));
    } else if (!srv->stopping) {
        char changed[2048], restart[2048];
        options_apply_live(&srv->running, &j->cfg, changed, sizeof(changed), restart,
                           sizeof(restart));
        apply_live(srv);
        tt_log_always("SIGHUP: %s: applied: %s", path, changed[0] ? changed : "no change");
        if (restart[0])
            tt_log_always("SIGHUP: %s: changed but needs a restart: %s", path, restart);
    }
    options_free(j->opts);
    free(j);
    reload_finished(srv);
}

/* SIGHUP with --admin-token-file: the file is read again on a thread; a
 * bad file keeps the token in use. */
typedef struct token_job_s {
    server_t *srv;
    char token[SERVER_ADMIN_TOKEN_MAX + 1];
    size_t len;
    char err[600];
    int r;
} token_job_t;

static void token_work(void *ctx) {
    token_job_t *j = ctx;
    j->r =
        admin_token_read(j->srv->cfg.admin_token_file, j->token, &j->len, j->err, sizeof(j->err));
}

static void token_done(void *ctx) {
    token_job_t *j = ctx;
    server_t *srv = j->srv;
    srv->admin_reloading = false;
    if (j->r < 0) {
        tt_log_error("SIGHUP: keeping the admin token in use: %s", j->err);
    } else if (j->len != srv->cfg.admin_token_len ||
               memcmp(j->token, srv->cfg.admin_token, j->len) != 0) {
        memcpy(srv->cfg.admin_token, j->token, j->len + 1);
        srv->cfg.admin_token_len = j->len;
        tt_log_always("SIGHUP: admin token read again from %s: changed", srv->cfg.admin_token_file);
    } else {
        tt_log_info("SIGHUP: admin token in %s unchanged", srv->cfg.admin_token_file);
    }
    explicit_bzero(j->token, sizeof(j->token));
    free(j);
    reload_finished(srv);
}

static void on_sighup(void *ctx) {
    server_t *srv = ctx;
    if (srv->stopping)
        return;
    /* systemd: reloading since now (CLOCK_MONOTONIC), READY=1 again when
     * every reload below has finished, failed ones included. */
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    sd_notifyf(0, "RELOADING=1\nMONOTONIC_USEC=%llu",
               (unsigned long long)ts.tv_sec * 1000000ull + (unsigned long long)ts.tv_nsec / 1000);
    if (srv->cfg.config_path != NULL && !srv->config_reloading) {
        srv->config_reloading = true;
        tt_log_info("SIGHUP: reading %s", srv->cfg.config_path);
        reload_job_t *j = xcalloc(1, sizeof(*j));
        j->srv = srv;
        tt_loop_work(srv->loop, reload_work, reload_done, j);
    }
    if (srv->cfg.admin_token_file != NULL && !srv->admin_reloading) {
        srv->admin_reloading = true;
        token_job_t *j = xcalloc(1, sizeof(*j));
        j->srv = srv;
        tt_loop_work(srv->loop, token_work, token_done, j);
    }
    if (srv->tls == NULL) {
        if (srv->cfg.config_path == NULL)
            tt_log_info("SIGHUP: no TLS certificate to reload");
        reload_finished(srv);
        return;
    }
    if (srv->tls_reloading)
        return; /* the running load reads the files afresh anyway */
    srv->tls_reloading = true;
    tt_log_info("SIGHUP: reloading %s and %s", srv->cfg.tls_cert, srv->cfg.tls_key);
    tt_tls_ctx_load_async(srv->loop, srv->cfg.tls_cert, srv->cfg.tls_key, on_tls_loaded, srv);
}

static int listen_one(server_t *srv, const server_listen_t *a) {
    const server_config_t *cfg = &srv->cfg;
    bool tls = a->tls;
    tt_listener_config_t lc = {
        .host = a->host,
        .port = a->port,
        .ext_size = sizeof(conn_ext_t),
        .max_queue = srv->http_max_queue,
        .max_input = HTTP_MAX_HEAD * 2 + 4096,
        .handler = &http_conn_handler,
        .on_accept = a->admin ? on_accept_admin : on_accept,
        .on_accept_error = on_accept_error,
        .ctx = srv,
        .tls = tls ? srv->tls : NULL,
        /* The handshake has the head's deadline: a client that stalls it
         * holds a socket and an SSL object no longer than a slow head. */
        .tls_handshake_ms = cfg->head_timeout_ms,
        .tls_plain_reply = plain_on_tls,
        .reuse_port = cfg->reuse_port,
    };
    char err[320];
    tt_listener_t *l;
    int r = tt_listen(srv->loop, &lc, &l, err, sizeof(err));
    if (r < 0) {
        tt_log_error("%s", err);
        return r;
    }
    srv->listener_admin[srv->nlisteners] = a->admin;
    srv->listeners[srv->nlisteners++] = l;
    srv->admin_listener |= a->admin;
    return 0;
}

/* Every --listen and --listen-tls address, or the default one. */
static int listen_on(server_t *srv) {
    const server_config_t *cfg = &srv->cfg;
    if (srv->tls != NULL)
        tt_log_info("TLS certificate: %s", tt_tls_ctx_describe(srv->tls));
    tt_loop_set_refusal_log(srv->loop, on_transport_refusal, srv);
    for (size_t i = 0; i < cfg->nlisten; i++) {
        int r = listen_one(srv, &cfg->listen[i]);
        if (r < 0) {
            close_listeners(srv);
            return r;
        }
    }
    return 0;
}

/* "open http://127.0.0.1:9090/": listener i's address, with a wildcard
 * host spelled as this machine's loopback. */
static void log_url(server_t *srv, size_t i, const char *what, const char *path) {
    char addr[80];
    tt_listener_address(srv->listeners[i], addr, sizeof(addr));
    const char *port = strrchr(addr, ':');
    const char *host = addr;
    int hlen = (int)(port - addr);
    if (strncmp(addr, "0.0.0.0:", 8) == 0)
        host = "127.0.0.1", hlen = 9;
    else if (strncmp(addr, "[::]:", 5) == 0)
        host = "[::1]", hlen = 5;
    tt_log_always("%s %s://%.*s%s%s", what,
                  tt_listener_is_tls(srv->listeners[i]) ? "https" : "http", hlen, host, port, path);
}

/* Says where the server listens, once everything is ready, signals
 * included: whoever waits for these lines (a person, a test, a service
 * manager) may stop the server at once, and SIGTERM then shuts it down
 * cleanly instead of killing it. */
static void announce(server_t *srv) {
    char addr[80];
    size_t n = (size_t)snprintf(srv->status, sizeof(srv->status), "listening on ");
    size_t first_chat = SIZE_MAX, first_admin = SIZE_MAX;
    for (size_t i = 0; i < srv->nlisteners; i++) {
        tt_listener_address(srv->listeners[i], addr, sizeof(addr));
        const char *kind = srv->listener_admin[i]                  ? "admin"
                           : tt_listener_is_tls(srv->listeners[i]) ? "TLS"
                                                                   : "plain";
        if (srv->listener_admin[i]) {
            /* Its own words, so a reader waiting for the chat's address
             * ("listening on") never takes this one. */
            tt_log_always("admin address %s (metrics, health, admin page)", addr);
            if (first_admin == SIZE_MAX)
                first_admin = i;
        } else {
            tt_log_always("listening on %s (%s)", addr, kind);
            if (first_chat == SIZE_MAX)
                first_chat = i;
        }
        if (n < sizeof(srv->status))
            n += (size_t)snprintf(srv->status + n, sizeof(srv->status) - n, "%s%s (%s)",
                                  i ? ", " : "", addr, kind);
    }
    /* The addresses a person opens: the first chat listener's, and the
     * admin page's when there is one. */
    log_url(srv, first_chat, "open", "/");
    if (srv->cfg.admin_token_len > 0)
        log_url(srv, first_admin != SIZE_MAX ? first_admin : first_chat, "admin page:", "/admin/");
    else
        tt_log_info("no admin page: no --admin-token-file");
    /* systemd (Type=notify): started once these lines are out. */
    notify_ready(srv);
}

/* Opens the history database and starts its maintenance thread (retention,
 * WAL checkpoints). A damaged or unreachable file is a clear log line with
 * the path and SQLite's reason, and the server does not start. */
static int open_history(const server_config_t *cfg, store_t **out) {
    store_config_t sc;
    store_config_defaults(&sc);
    sc.path = cfg->db_path;
    sc.max_bytes = cfg->db_max_bytes;
    /* A cluster keeps its accounts in Redis, so they are every node's. */
    store_redis_config_t rc;
    if (cfg->cluster != NULL) {
        const cluster_url_t *u = &cfg->cluster->url;
        rc = (store_redis_config_t){.host = u->path[0] != '\0' ? NULL : u->host,
                                    .port = u->port,
                                    .path = u->path[0] != '\0' ? u->path : NULL,
                                    .password = u->password,
                                    .db = u->db,
                                    .token_idle_ms = (int64_t)cfg->token_days * 86400 * 1000,
                                    .node = cfg->cluster->node};
        sc.redis = &rc;
    }
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
    mc.token_max_idle_ms = (int64_t)cfg->token_days * 86400 * 1000;
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

/* The limits that follow from the configured ones, at start and after a
 * reload applied new values (SIGHUP). */
static void derive_limits(server_t *srv) {
    size_t lim = srv->fd_limit;
    if (srv->cfg.max_connections == 0)
        srv->cfg.max_connections = lim > 128 ? lim - 64 : lim / 2;
    /* A queue must hold at least one message of the largest size. */
    size_t one = srv->cfg.max_message + WS_MAX_HEADER + 4096;
    if (srv->cfg.max_queue < one)
        srv->cfg.max_queue = one;
    /* A reply carrying many messages stays well under what a queue holds. */
    srv->cfg.chat.reply_budget = srv->cfg.max_queue / 4;
    /* welcome.limits reports the transport's limits next to the chat's. */
    chat_config_t *cc = &srv->cfg.chat;
    cc->nlimits_extra = 0;
    chat_config_add_limit(cc, "max_queue", (int64_t)srv->cfg.max_queue);
    chat_config_add_limit(cc, "max_connections", (int64_t)srv->cfg.max_connections);
    chat_config_add_limit(cc, "max_per_ip", (int64_t)srv->cfg.max_per_ip);
    chat_config_add_limit(cc, "max_head", HTTP_MAX_HEAD);
    chat_config_add_limit(cc, "head_timeout_ms", srv->cfg.head_timeout_ms);
    chat_config_add_limit(cc, "ping_interval_ms", srv->cfg.ping_ms);
    /* An HTTP connection holds one response at a time: the largest asset
     * (queued by reference, never copied) and its head. */
    srv->http_max_queue = srv->cfg.max_queue;
    for (const http_asset_t *a = http_assets; a->path != NULL; a++)
        if (a->len + 8192 > srv->http_max_queue)
            srv->http_max_queue = a->len + 8192;
    for (const http_asset_t *a = admin_assets; a->path != NULL; a++)
        if (a->len + 8192 > srv->http_max_queue)
            srv->http_max_queue = a->len + 8192;
    /* The admin API's longest answer: a list of 1,000 connections. */
    if (srv->cfg.admin_token_len > 0 && srv->http_max_queue < 512 * 1024)
        srv->http_max_queue = 512 * 1024;
    srv->deflate.min = srv->cfg.deflate_min;
}

int server_run(const server_config_t *cfg) {
    server_t *srv = xcalloc(1, sizeof(*srv));
    srv->cfg = *cfg;
    srv->running = *cfg; /* what SIGHUP compares a re-read file with */
    tt_log_set_level((tt_log_level_t)cfg->log_level);
    tt_log_set_format((tt_log_format_t)cfg->log_format);
    srv->tls = cfg->tls; /* ours now */
    srv->cfg.tls = NULL;
    srv->cfg.chat.max_message = cfg->max_message;
    /* Leave room under the open-file limit for the listener, the loop's
     * own descriptors, the database and logs: sockets past max_sockets are
     * accepted and closed at once, with a log line, so the loop never runs
     * into EMFILE in normal operation. */
    struct rlimit rl;
    size_t lim = 1024;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
        lim = (size_t)rl.rlim_cur;
    srv->fd_limit = lim;
    srv->max_sockets = lim > 64 ? lim - 32 : lim / 2;
    derive_limits(srv);
    tt_map_init(&srv->per_ip, 0);
    tt_list_init(&srv->reap);
    srv->log_budget = LOG_BUDGET;
    srv->loop = tt_loop_new();
    refresh_date(srv);
    /* OpenSSL's first token, at start rather than at the first login. */
    int wr = auth_token_warm_up();
    if (wr != 0)
        tt_log_warn("making a session token failed: %s", auth_strerror(wr));
    if (srv->cfg.deflate) {
        /* One compressor and one inflater for the loop (ws_deflate.h). */
        srv->deflate.deflater = ws_deflater_new(TT_DEFLATE_LEVEL);
        srv->inflater = ws_inflater_new();
    }

    store_t *store = NULL;
    store_chat_t *history = NULL;
    int r = open_history(&srv->cfg, &store);
    if (r < 0)
        goto out_loop;
    r = listen_on(srv);
    if (r < 0)
        goto out_loop;
    srv->cfg.chat.guests_off = !srv->cfg.guests;
    srv->chat = chat_new(&srv->cfg.chat, &ws_conn_chat_io, srv);
    server_metrics_init(srv);
    chat_set_clock(srv->chat, loop_now_ms, srv);
    /* SQLite runs on the store's worker, never on the loop: its completions
     * wake the loop (tt_async) and are drained there, in order. */
    srv->wake = tt_async_new(srv->loop, on_store_wake, srv);
    r = store_async_start(store, NULL, on_store_notify, srv->wake, &srv->async);
    if (r == 0) {
        /* The chat's ids continue after the last stored one. */
        r = store_chat_attach_async(srv->chat, store, srv->async, &history);
    }
    if (r == 0) {
        /* Accounts: passwords on their own threads, the rest on the store's. */
        accounts_config_t ac;
        accounts_config_defaults(&ac);
        ac.registration = srv->cfg.registration;
        ac.token_idle_ms = (int64_t)srv->cfg.token_days * 86400 * 1000;
        ac.workers = srv->cfg.password_workers;
        if (ac.workers == 0) {
            long cpus = sysconf(_SC_NPROCESSORS_ONLN);
            ac.workers = cpus > 2 ? (unsigned)(cpus - 1) : 1;
        }
        ac.queue = srv->cfg.password_queue;
        ac.jwt = srv->cfg.jwt;
        int ar = accounts_start(srv->loop, srv->async, &ac, &srv->accounts);
        if (ar != 0) {
            tt_log_error("cannot start the password workers: %s", auth_strerror(ar));
            r = ar;
        } else {
            chat_set_auth(srv->chat, &accounts_hooks, srv->accounts);
        }
    }
    if (r == 0 && srv->cfg.cluster != NULL) {
        /* A cluster: ids, room messages and their history go through Redis
         * (the links come up from the loop; /readyz waits for them). */
        srv->cfg.cluster->grace_ms = srv->cfg.chat.resume_ms;
        r = cluster_start(srv->loop, srv->chat, srv->cfg.cluster, &srv->cluster);
        if (r == 0)
            cluster_set_auth(srv->cluster, &accounts_hooks, srv->accounts);
        if (r == 0)
            tt_log_info("cluster: node %s, redis %s", srv->cfg.cluster->node, srv->cfg.redis_url);
    }
    if (r < 0) {
        tt_log_error("cannot use the message history: %s", store_strerror(r));
        accounts_free(srv->accounts);
        srv->accounts = NULL;
        store_async_stop(srv->async);
        srv->async = NULL;
        chat_free(srv->chat);
        tt_async_free(srv->wake);
        srv->wake = NULL;
        close_listeners(srv);
        goto out_loop;
    }

    tt_loop_set_before_flush(srv->loop, before_flush, srv);
    srv->sweep = tt_timer_new(srv->loop, on_sweep, srv);
    tt_timer_start(srv->sweep, SWEEP_MS, SWEEP_MS);
    srv->sigint = tt_signal_new(srv->loop, SIGINT, on_signal, srv);
    srv->sigterm = tt_signal_new(srv->loop, SIGTERM, on_signal, srv);
    srv->sighup = tt_signal_new(srv->loop, SIGHUP, on_sighup, srv);
    watchdog_start(srv);
    announce(srv);

    tt_loop_run(srv->loop);
    tt_log_info("stopped");
    /* The last batch, then every store job to completion (its callbacks
     * deliver to connections that are gone, which drops them), and only
     * then the chat. */
    chat_flush(srv->chat);
    if (srv->async != NULL) {
        store_async_stats_t as;
        store_async_stats(srv->async, &as);
        const store_async_kind_stats_t *k = &as.kind[STORE_ASYNC_APPEND];
        tt_log_info(
            "store worker: %llu appends, from submission to completion mean %llu us "
            "(running %llu us), p99 <= %llu us; %llu reads; %llu refused as busy",
            (unsigned long long)k->jobs, (unsigned long long)(k->jobs ? k->total_us / k->jobs : 0),
            (unsigned long long)(k->jobs ? k->run_us / k->jobs : 0),
            (unsigned long long)store_async_stats_percentile(k, 99),
            (unsigned long long)as.kind[STORE_ASYNC_RANGE].jobs, (unsigned long long)as.busy);
    }
    /* What is still being published completes as refused. */
    cluster_free(srv->cluster);
    srv->cluster = NULL;
    store_async_stop(srv->async);
    srv->async = NULL;
    /* Every check has been answered by now (the pool stopped with the
     * loop's handles, the store just now). */
    accounts_free(srv->accounts);
    srv->accounts = NULL;
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
    tt_loop_free(srv->loop); /* runs the last close callbacks */
    tt_tls_ctx_unref(srv->tls);
    tt_map_dispose(&srv->per_ip);
    ws_deflater_free(srv->deflate.deflater);
    ws_inflater_free(srv->inflater);
    free(srv);
    tt_buf_pool_drain();
    return r;
}
