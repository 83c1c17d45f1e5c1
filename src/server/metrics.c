/* GET /metrics, /healthz and /readyz: the text of each is built on request
 * from counters the loop keeps as plain integers (the chat's
 * chat_counters_t, the server's own fields), so reading them costs the hot
 * path nothing. */
#include <stdio.h>
#include <string.h>
#include <time.h>

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

int server_metrics_text(server_t *srv, tt_prom_t *p) {
    tt_prom_init(p, METRICS_MAX);
    const chat_counters_t *k = chat_counters(srv->chat);
    chat_stats_t st;
    chat_stats(srv->chat, &st);

    tt_prom_family(p, "tertulia_start_time_seconds", "gauge",
                   "When the server started, in seconds since the Unix epoch.");
    tt_prom_double(p, "tertulia_start_time_seconds", NULL, srv->start_time_s);
    tt_prom_family(p, "tertulia_websocket_connections", "gauge", "Open WebSocket connections.");
    tt_prom_uint(p, "tertulia_websocket_connections", NULL, srv->nws);
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
    /* A cluster's Redis link will be checked here. */
    return true;
}
