/* GET /metrics, /healthz and /readyz: the text of each is built on request
 * from counters the loop keeps as plain integers (the chat's
 * chat_counters_t, the server's own fields), so reading them costs the hot
 * path nothing. */
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "cluster/cluster.h"
#include "core/prom.h"
#include "server/server_int.h"

/* A /metrics text is a few KiB; this bound only stops a bug from growing it. */
#define METRICS_MAX (1024 * 1024)

void server_metrics_init(server_t *srv) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    srv->start_time_s = (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static const char *const kind_labels[2] = {"kind=\"room\"", "kind=\"private\""};

#define SERVER_CODE_VALUE_(n) n,

void server_conn_census(server_t *srv, server_conn_census_t *out) {
    memset(out, 0, sizeof(*out));
    for (tt_stream_t *s = tt_loop_first_stream(srv->loop); s != NULL; s = tt_loop_next_stream(s)) {
        const conn_ext_t *e = tt_stream_ext(s);
        int kind = SERVER_CONN_HTTP;
        if (tt_stream_is_closing(s))
            kind = SERVER_CONN_CLOSING;
        else if (e->base.kind == EP_WS)
            kind = (e->ws.flags & WSC_ECHO) ? SERVER_CONN_ECHO
                   : (e->ws.flags & WSC_V1) ? SERVER_CONN_V1
                                            : SERVER_CONN_LEGACY;
        out->kind[kind]++;
        out->tls += tt_stream_is_tls(s);
        out->queued += tt_stream_queued(s);
    }
}

int server_metrics_text(server_t *srv, tt_prom_t *p) {
    tt_prom_init(p, METRICS_MAX);
    const chat_counters_t *k = chat_counters(srv->chat);
    chat_stats_t st;
    chat_stats(srv->chat, &st);

    tt_prom_family(p, "tertulia_start_time_seconds", "gauge",
                   "When the server started, in seconds since the Unix epoch.");
    tt_prom_double(p, "tertulia_start_time_seconds", NULL, srv->start_time_s);
    server_conn_census_t cc;
    server_conn_census(srv, &cc);
    tt_prom_family(p, "tertulia_websocket_connections", "gauge", "Open WebSocket connections.");
    tt_prom_uint(p, "tertulia_websocket_connections", NULL, srv->nws);
    tt_prom_family(p, "tertulia_connections", "gauge",
                   "Open connections by kind: http (not upgraded), v1 (tertulia.v1 WebSocket), "
                   "legacy (WebSocket without a subprotocol), echo; and closing ones.");
    static const char *const census_labels[SERVER_CONN_KINDS] = {
        "kind=\"http\"", "kind=\"v1\"", "kind=\"legacy\"", "kind=\"echo\"", "kind=\"closing\""};
    for (int i = 0; i < SERVER_CONN_KINDS; i++)
        tt_prom_uint(p, "tertulia_connections", census_labels[i], cc.kind[i]);
    tt_prom_family(p, "tertulia_tls_connections", "gauge", "Open connections that are TLS.");
    tt_prom_uint(p, "tertulia_tls_connections", NULL, cc.tls);
    tt_prom_family(p, "tertulia_queued_bytes", "gauge",
                   "Bytes queued for connections and not yet written to the kernel.");
    tt_prom_uint(p, "tertulia_queued_bytes", NULL, cc.queued);

    const tt_loop_stats_t *ls = tt_loop_stats(srv->loop);
    const server_counters_t *sc = &srv->counters;
    tt_prom_family(p, "tertulia_connections_accepted_total", "counter",
                   "Connections accepted, plain and TLS.");
    tt_prom_uint(p, "tertulia_connections_accepted_total", "tls=\"false\"", ls->accepted[0]);
    tt_prom_uint(p, "tertulia_connections_accepted_total", "tls=\"true\"", ls->accepted[1]);
    tt_prom_family(p, "tertulia_websockets_opened_total", "counter",
                   "WebSocket upgrades, by protocol.");
    static const char *const opened_labels[3] = {"protocol=\"v1\"", "protocol=\"legacy\"",
                                                 "protocol=\"echo\""};
    for (int i = 0; i < 3; i++)
        tt_prom_uint(p, "tertulia_websockets_opened_total", opened_labels[i], sc->ws_opened[i]);
    tt_prom_family(p, "tertulia_websocket_closes_total", "counter",
                   "WebSocket connections ended, by the first close code and who sent it (1006: "
                   "no close frame, the connection dropped).");
    static const unsigned close_codes[] = {SERVER_WS_CLOSE_CODES(SERVER_CODE_VALUE_) 0};
    for (int by = 0; by < 2; by++)
        for (int i = 0; i < WS_CODE_COUNT; i++) {
            char labels[64];
            if (close_codes[i] != 0)
                snprintf(labels, sizeof(labels), "code=\"%u\",by=\"%s\"", close_codes[i],
                         by ? "client" : "server");
            else
                snprintf(labels, sizeof(labels), "code=\"other\",by=\"%s\"",
                         by ? "client" : "server");
            tt_prom_uint(p, "tertulia_websocket_closes_total", labels, sc->ws_closes[by][i]);
        }
    tt_prom_family(p, "tertulia_http_responses_total", "counter",
                   "HTTP responses by status (refusals included; upgrades are not counted).");
    static const unsigned statuses[] = {SERVER_HTTP_STATUSES(SERVER_CODE_VALUE_) 0};
    for (int i = 0; i < HTTP_STATUS_COUNT; i++) {
        char labels[32];
        if (statuses[i] != 0)
            snprintf(labels, sizeof(labels), "status=\"%u\"", statuses[i]);
        else
            snprintf(labels, sizeof(labels), "status=\"other\"");
        tt_prom_uint(p, "tertulia_http_responses_total", labels, sc->http_responses[i]);
    }
    tt_prom_family(p, "tertulia_http_timeouts_total", "counter",
                   "HTTP connections closed for a request head not complete in time, or a "
                   "response the client did not read.");
    tt_prom_uint(p, "tertulia_http_timeouts_total", "phase=\"head\"", sc->http_head_timeouts);
    tt_prom_uint(p, "tertulia_http_timeouts_total", "phase=\"response\"",
                 sc->http_response_timeouts);
    tt_prom_family(p, "tertulia_transport_refusals_total", "counter",
                   "Connections refused before HTTP: failed or stalled TLS handshakes, plain HTTP "
                   "on a TLS port; and accepts refused at the open-file limit.");
    tt_prom_uint(p, "tertulia_transport_refusals_total", "reason=\"tls\"", sc->transport_refusals);
    tt_prom_uint(p, "tertulia_transport_refusals_total", "reason=\"accept\"", sc->accept_refusals);
    tt_prom_family(p, "tertulia_received_bytes_total", "counter",
                   "Bytes read from sockets (on TLS, the encrypted bytes).");
    tt_prom_uint(p, "tertulia_received_bytes_total", NULL, ls->bytes_in);
    tt_prom_family(p, "tertulia_sent_bytes_total", "counter",
                   "Bytes written to sockets (on TLS, the encrypted bytes).");
    tt_prom_uint(p, "tertulia_sent_bytes_total", NULL, ls->bytes_out);
    tt_prom_family(p, "tertulia_loop_iteration_seconds", "histogram",
                   "The work of one event-loop iteration: from the return of the poll to the end "
                   "of the writes before the next poll (waiting is not counted).");
    tt_prom_hist(p, "tertulia_loop_iteration_seconds", NULL, &ls->iteration_us, 1e-6);
    tt_prom_family(p, "tertulia_sessions", "gauge", "Open chat sessions.");
    tt_prom_uint(p, "tertulia_sessions", NULL, st.sessions);
    tt_prom_family(p, "tertulia_users", "gauge",
                   "Nicknames held, guests within their grace time included.");
    tt_prom_uint(p, "tertulia_users", NULL, st.users);
    tt_prom_family(p, "tertulia_rooms", "gauge", "Rooms that exist now.");
    tt_prom_uint(p, "tertulia_rooms", NULL, st.rooms);

    tt_prom_family(p, "tertulia_logins_total", "counter",
                   "Successful logins (guests, resumed guests, accounts).");
    tt_prom_uint(p, "tertulia_logins_total", NULL, k->logins);
    tt_prom_family(p, "tertulia_messages_accepted_total", "counter",
                   "Chat messages accepted, by kind.");
    for (int i = 0; i < 2; i++)
        tt_prom_uint(p, "tertulia_messages_accepted_total", kind_labels[i], k->accepted[i]);
    tt_prom_family(p, "tertulia_messages_delivered_total", "counter",
                   "Copies of chat messages handed to recipients' connections, by kind.");
    for (int i = 0; i < 2; i++)
        tt_prom_uint(p, "tertulia_messages_delivered_total", kind_labels[i], k->delivered[i]);
    tt_prom_family(p, "tertulia_refusals_total", "counter",
                   "Requests refused with an error, by error code.");
    for (int i = 0; i < CHAT_REFUSAL_COUNT; i++) {
        char labels[64];
        snprintf(labels, sizeof(labels), "code=\"%s\"", chat_refusal_names[i]);
        tt_prom_uint(p, "tertulia_refusals_total", labels, k->refusals[i]);
    }
    tt_prom_family(p, "tertulia_store_errors_total", "counter", "Failed history writes and reads.");
    tt_prom_uint(p, "tertulia_store_errors_total", NULL, k->store_errors);
    tt_prom_family(p, "tertulia_store_commit_seconds", "histogram",
                   "Time from handing a batch of messages to the store until it was written.");
    tt_prom_hist(p, "tertulia_store_commit_seconds", NULL, &k->commit_us, 1e-6);
    tt_prom_family(p, "tertulia_delivery_seconds", "histogram",
                   "Time from the end of the loop iteration that accepted a batch of messages "
                   "until it was handed to the recipients' queues.");
    tt_prom_hist(p, "tertulia_delivery_seconds", NULL, &k->delivery_us, 1e-6);
    if (srv->cluster != NULL) {
        /* A cluster node's traffic with Redis (cluster.h: cluster_stats_t). */
        cluster_stats_t cs;
        cluster_stats(srv->cluster, &cs);
        static const struct {
            const char *name, *help;
            size_t off;
        } cf[] = {
            {"tertulia_cluster_published_total",
             "Chat messages Redis took (the publish script ran).",
             offsetof(cluster_stats_t, published)},
            {"tertulia_cluster_refused_total",
             "Chat messages refused: no link to Redis, past their deadline, or a Redis error.",
             offsetof(cluster_stats_t, refused)},
            {"tertulia_cluster_received_total",
             "Messages that came from the subscription (room and private).",
             offsetof(cluster_stats_t, received)},
            {"tertulia_cluster_fetched_total",
             "Room messages read from a room's stream to fill a gap.",
             offsetof(cluster_stats_t, fetched)},
            {"tertulia_cluster_gaps_total", "Jumps in a room's sequence numbers (then filled).",
             offsetof(cluster_stats_t, gaps)},
            {"tertulia_cluster_duplicates_total", "Room messages seen twice and dropped.",
             offsetof(cluster_stats_t, duplicates)},
            {"tertulia_cluster_link_losses_total",
             "Links to Redis found closed or silent (then connected again).",
             offsetof(cluster_stats_t, link_losses)},
        };
        for (size_t i = 0; i < sizeof(cf) / sizeof(cf[0]); i++) {
            tt_prom_family(p, cf[i].name, "counter", cf[i].help);
            tt_prom_uint(p, cf[i].name, NULL, *(const uint64_t *)((const char *)&cs + cf[i].off));
        }
        tt_prom_family(p, "tertulia_cluster_rooms", "gauge",
                       "Rooms whose channel this node follows.");
        tt_prom_uint(p, "tertulia_cluster_rooms", NULL, cs.rooms);
        tt_prom_family(p, "tertulia_cluster_redis_up", "gauge",
                       "1 when both links to Redis are up and the scripts loaded, 0 otherwise.");
        tt_prom_uint(p, "tertulia_cluster_redis_up", NULL, cluster_ready(srv->cluster) ? 1 : 0);
    }
    tt_prom_family(p, "tertulia_ready", "gauge",
                   "1 when the server is ready to serve (see /readyz), 0 otherwise.");
    tt_prom_uint(p, "tertulia_ready", NULL, server_ready(srv, NULL, 0) ? 1 : 0);
    return tt_prom_overflowed(p) ? -1 : 0;
}

bool server_ready(server_t *srv, char *why, size_t cap) {
    const chat_counters_t *k = chat_counters(srv->chat);
    if (srv->stopping) {
        if (why != NULL)
            snprintf(why, cap, "shutting down");
        return false;
    }
    if (srv->async == NULL) {
        if (why != NULL)
            snprintf(why, cap, "the message store is not open");
        return false;
    }
    if (k->store_failing) {
        if (why != NULL)
            snprintf(why, cap, "the message store cannot write: %s", k->store_error);
        return false;
    }
    if (srv->cluster != NULL && !cluster_ready(srv->cluster)) {
        if (why != NULL)
            snprintf(why, cap, "the cluster's redis is not reachable");
        return false;
    }
    return true;
}
