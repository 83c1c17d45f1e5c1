/* The admin page and its API, under /admin/: the page is static (admin/,
 * embedded like the chat client) and holds no secret; every API call
 * carries the admin token (--admin-token-file) as a Bearer credential.
 * A browser never sends that header by itself, so no other site can make
 * a signed-in admin's browser call the API (a cross-site fetch with it
 * needs a CORS preflight, which is answered 405). Answers are JSON built
 * with jansson from the counters the loop keeps and one walk over the
 * streams or rooms, bounded to ADMIN_LIST_MAX entries. */
#include <errno.h>
#include <http_parser.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "core/log.h"
#include "core/xmalloc.h"
#include "http/http_req.h"
#include "http/static.h"
#include "server/server_int.h"

#define ADMIN_LIST_MAX 1000 /* rooms or connections in one answer */

/* ---- the token ---- */

#define TOKEN_MIN 16

int admin_token_read(const char *path, char *out, size_t *len, char *err, size_t errlen) {
    FILE *f = fopen(path, "re");
    if (f == NULL) {
        snprintf(err, errlen, "cannot read the admin token file %s: %s", path, strerror(errno));
        return -1;
    }
    char line[SERVER_ADMIN_TOKEN_MAX + 64];
    bool got = fgets(line, sizeof(line), f) != NULL;
    bool whole = got && (strchr(line, '\n') != NULL || feof(f));
    fclose(f);
    if (!got) {
        snprintf(err, errlen, "the admin token file %s is empty", path);
        return -1;
    }
    size_t a = 0, b = strlen(line);
    while (a < b && (line[a] == ' ' || line[a] == '\t'))
        a++;
    while (b > a && (line[b - 1] == '\n' || line[b - 1] == '\r' || line[b - 1] == ' ' ||
                     line[b - 1] == '\t'))
        b--;
    size_t n = b - a;
    if (!whole || n > SERVER_ADMIN_TOKEN_MAX || n < TOKEN_MIN) {
        snprintf(err, errlen,
                 "the admin token in %s must be %d to %d characters on its first line (make "
                 "one with: openssl rand -hex 32 > %s)",
                 path, TOKEN_MIN, SERVER_ADMIN_TOKEN_MAX, path);
        return -1;
    }
    for (size_t i = a; i < b; i++)
        if ((unsigned char)line[i] < 0x21 || (unsigned char)line[i] > 0x7e) {
            snprintf(err, errlen,
                     "the admin token in %s has a character that is not printable ASCII "
                     "(spaces included)",
                     path);
            return -1;
        }
    memcpy(out, line + a, n);
    out[n] = '\0';
    *len = n;
    return 0;
}

int server_admin_load(server_config_t *cfg, char *err, size_t errlen) {
    cfg->admin_token[0] = '\0';
    cfg->admin_token_len = 0;
    if (cfg->admin_token_file == NULL)
        return 0;
    return admin_token_read(cfg->admin_token_file, cfg->admin_token, &cfg->admin_token_len, err,
                            errlen);
}

/* ---- answers ---- */

static void send_json(http_conn_t *c, const http_req_t *req, int status, json_t *body,
                      const char *extra) {
    char *text = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    char hdrs[256];
    snprintf(hdrs, sizeof(hdrs), "Cache-Control: no-store\r\n%s", extra ? extra : "");
    http_conn_respond(c, status, req->keep_alive, hdrs, "application/json", text, strlen(text),
                      req->method == HTTP_HEAD);
    free(text);
    if (!req->keep_alive)
        tt_stream_close_after_flush(c->base.s, "http done");
}

static void send_error(http_conn_t *c, const http_req_t *req, int status, const char *error,
                       const char *message, const char *extra) {
    send_json(c, req, status, json_pack("{s:s, s:s}", "error", error, "message", message), extra);
}

/* True if the request carries the admin token; otherwise it was answered
 * 401 (no credential) or 403 (a wrong one). Both tokens are hashed first,
 * so the comparison takes the same time whatever the length. */
static bool authorized(http_conn_t *c, const http_req_t *req) {
    server_t *srv = c->base.srv;
    static const char challenge[] = "WWW-Authenticate: Bearer realm=\"tertulia admin\"\r\n";
    http_slice_t a = req->authorization;
    if (a.ptr == NULL) {
        send_error(c, req, 401, "unauthorized", "the admin API needs Authorization: Bearer TOKEN",
                   challenge);
        return false;
    }
    if (a.len < 7 || strncasecmp(a.ptr, "Bearer ", 7) != 0) {
        send_error(c, req, 401, "unauthorized",
                   "the admin API takes a Bearer token: Authorization: Bearer TOKEN", challenge);
        return false;
    }
    const char *t = a.ptr + 7;
    size_t tlen = a.len - 7;
    while (tlen > 0 && *t == ' ')
        t++, tlen--;
    unsigned char given[SHA256_DIGEST_LENGTH], want[SHA256_DIGEST_LENGTH];
    SHA256((const unsigned char *)t, tlen, given);
    SHA256((const unsigned char *)srv->cfg.admin_token, srv->cfg.admin_token_len, want);
    if (CRYPTO_memcmp(given, want, sizeof(given)) != 0) {
        server_log_refusal(srv, "%s: admin API: wrong token", tt_stream_peer(c->base.s));
        send_error(c, req, 403, "forbidden", "wrong admin token", NULL);
        return false;
    }
    return true;
}

static const char *const level_names[] = {"debug", "info", "warn", "error", "off"};

static json_t *hist_json(const tt_hist_t *h) {
    return json_pack("{s:I, s:I}", "count", (json_int_t)h->count, "sum_us", (json_int_t)h->sum);
}

static void api_stats(http_conn_t *c, const http_req_t *req) {
    server_t *srv = c->base.srv;
    const chat_counters_t *k = chat_counters(srv->chat);
    const tt_loop_stats_t *ls = tt_loop_stats(srv->loop);
    chat_stats_t st;
    chat_stats(srv->chat, &st);
    server_conn_census_t cc;
    server_conn_census(srv, &cc);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    double now = (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
    json_t *o = json_object();
    json_object_set_new(o, "time_ms", json_integer((json_int_t)(now * 1000)));
    json_object_set_new(o, "uptime_s", json_real(now - srv->start_time_s));
    json_object_set_new(o, "version", json_string(TT_VERSION));
    json_object_set_new(o, "log_level", json_string(level_names[tt_log_get_level()]));
    json_object_set_new(o, "connections",
                        json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "websocket",
                                  (json_int_t)srv->nws, "v1", (json_int_t)cc.kind[SERVER_CONN_V1],
                                  "legacy", (json_int_t)cc.kind[SERVER_CONN_LEGACY], "echo",
                                  (json_int_t)cc.kind[SERVER_CONN_ECHO], "http",
                                  (json_int_t)cc.kind[SERVER_CONN_HTTP], "closing",
                                  (json_int_t)cc.kind[SERVER_CONN_CLOSING], "tls",
                                  (json_int_t)cc.tls));
    json_object_set_new(o, "sessions", json_integer((json_int_t)st.sessions));
    json_object_set_new(o, "users", json_integer((json_int_t)st.users));
    json_object_set_new(o, "rooms", json_integer((json_int_t)st.rooms));
    json_object_set_new(o, "messages",
                        json_pack("{s:{s:I, s:I}, s:{s:I, s:I}}", "accepted", "room",
                                  (json_int_t)k->accepted[0], "private", (json_int_t)k->accepted[1],
                                  "delivered", "room", (json_int_t)k->delivered[0], "private",
                                  (json_int_t)k->delivered[1]));
    json_object_set_new(
        o, "bytes",
        json_pack("{s:I, s:I}", "in", (json_int_t)ls->bytes_in, "out", (json_int_t)ls->bytes_out));
    json_object_set_new(o, "queue_bytes", json_integer((json_int_t)cc.queued));
    json_object_set_new(o, "delivery", hist_json(&k->delivery_us));
    json_object_set_new(o, "commit", hist_json(&k->commit_us));
    json_object_set_new(o, "loop", hist_json(&ls->iteration_us));
    send_json(c, req, 200, o, NULL);
}

typedef struct room_list_s {
    chat_room_info_t *v;
    char (*names)[CHAT_ROOM_MAX + 1];
    size_t n, cap;
} room_list_t;

/* Keeps the ADMIN_LIST_MAX rooms with the most members seen so far: the
 * list is a min-heap on members, so a walk over every room costs
 * O(rooms log ADMIN_LIST_MAX) and ADMIN_LIST_MAX entries of memory. */
static bool room_less(const chat_room_info_t *a, const chat_room_info_t *b) {
    return a->members < b->members || (a->members == b->members && a->connections < b->connections);
}

static void heap_swap(room_list_t *l, size_t i, size_t j) {
    chat_room_info_t t = l->v[i];
    l->v[i] = l->v[j];
    l->v[j] = t;
    char name[CHAT_ROOM_MAX + 1];
    memcpy(name, l->names[i], sizeof(name));
    memcpy(l->names[i], l->names[j], sizeof(name));
    memcpy(l->names[j], name, sizeof(name));
    l->v[i].name = l->names[i];
    l->v[j].name = l->names[j];
}

static void heap_down(room_list_t *l, size_t i) {
    for (;;) {
        size_t m = i, a = 2 * i + 1, b = a + 1;
        if (a < l->n && room_less(&l->v[a], &l->v[m]))
            m = a;
        if (b < l->n && room_less(&l->v[b], &l->v[m]))
            m = b;
        if (m == i)
            return;
        heap_swap(l, i, m);
        i = m;
    }
}

static void heap_set(room_list_t *l, size_t i, const chat_room_info_t *r) {
    size_t len = r->name_len < CHAT_ROOM_MAX ? r->name_len : CHAT_ROOM_MAX;
    memcpy(l->names[i], r->name, len);
    l->names[i][len] = '\0';
    l->v[i] = *r;
    l->v[i].name = l->names[i];
    l->v[i].name_len = len;
}

static bool collect_room(void *ctx, const chat_room_info_t *r) {
    room_list_t *l = ctx;
    if (l->n < l->cap) {
        size_t i = l->n++;
        heap_set(l, i, r);
        while (i > 0 && room_less(&l->v[i], &l->v[(i - 1) / 2])) {
            heap_swap(l, i, (i - 1) / 2);
            i = (i - 1) / 2;
        }
    } else if (room_less(&l->v[0], r)) {
        heap_set(l, 0, r);
        heap_down(l, 0);
    }
    return true;
}

static int by_members_desc(const void *a, const void *b) {
    const chat_room_info_t *x = a, *y = b;
    if (room_less(x, y))
        return 1;
    if (room_less(y, x))
        return -1;
    return strcmp(x->name, y->name);
}

static void api_rooms(http_conn_t *c, const http_req_t *req) {
    server_t *srv = c->base.srv;
    chat_stats_t st;
    chat_stats(srv->chat, &st);
    room_list_t l = {.cap = ADMIN_LIST_MAX};
    l.v = xcalloc(l.cap, sizeof(*l.v));
    l.names = xcalloc(l.cap, sizeof(*l.names));
    chat_rooms_each(srv->chat, collect_room, &l);
    /* The heap's entries point into l.names, which outlives the sort. */
    chat_room_info_t *sorted = xcalloc(l.n ? l.n : 1, sizeof(*sorted));
    memcpy(sorted, l.v, l.n * sizeof(*sorted));
    qsort(sorted, l.n, sizeof(*sorted), by_members_desc);
    json_t *rooms = json_array();
    for (size_t i = 0; i < l.n; i++)
        json_array_append_new(rooms, json_pack("{s:s%, s:I, s:I}", "name", sorted[i].name,
                                               sorted[i].name_len, "members",
                                               (json_int_t)sorted[i].members, "connections",
                                               (json_int_t)sorted[i].connections));
    free(sorted);
    free(l.v);
    free(l.names);
    send_json(c, req, 200,
              json_pack("{s:o, s:I, s:b}", "rooms", rooms, "total", (json_int_t)st.rooms,
                        "truncated", st.rooms > l.n),
              NULL);
}

static void api_connections(http_conn_t *c, const http_req_t *req) {
    server_t *srv = c->base.srv;
    uint64_t now = tt_loop_now(srv->loop);
    json_t *list = json_array();
    size_t total = 0;
    for (tt_stream_t *s = tt_loop_first_stream(srv->loop); s != NULL; s = tt_loop_next_stream(s)) {
        const conn_ext_t *e = tt_stream_ext(s);
        if (e->base.kind != EP_WS || tt_stream_is_closing(s))
            continue;
        total++;
        if (json_array_size(list) >= ADMIN_LIST_MAX)
            continue;
        const ws_conn_t *w = &e->ws;
        const char *nick = w->session != NULL ? chat_session_nickname(w->session) : NULL;
        const char *kind = (w->flags & WSC_ECHO) ? "echo" : (w->flags & WSC_V1) ? "v1" : "legacy";
        json_array_append_new(
            list, json_pack("{s:I, s:s, s:o, s:s, s:b, s:f, s:I, s:I, s:I}", "id",
                            (json_int_t)w->base.id, "address", tt_stream_peer(s), "nick",
                            nick != NULL ? json_string(nick) : json_null(), "kind", kind, "tls",
                            tt_stream_is_tls(s), "age_s", (double)(now - w->opened) / 1000.0,
                            "queue_bytes", (json_int_t)tt_stream_queued(s), "messages_in",
                            (json_int_t)w->messages_in, "bytes_out",
                            (json_int_t)tt_stream_bytes_written(s)));
    }
    send_json(c, req, 200,
              json_pack("{s:o, s:I, s:b}", "connections", list, "total", (json_int_t)total,
                        "truncated", total > json_array_size(list)),
              NULL);
}

/* POST api/connections/ID/close: the WebSocket numbered ID gets 1008. */
static void api_close(http_conn_t *c, const http_req_t *req, const char *id_text, size_t len) {
    server_t *srv = c->base.srv;
    uint64_t id = 0;
    bool ok = len > 0 && len <= 19;
    for (size_t i = 0; ok && i < len; i++) {
        ok = id_text[i] >= '0' && id_text[i] <= '9';
        id = id * 10 + (uint64_t)(id_text[i] - '0');
    }
    for (tt_stream_t *s = ok ? tt_loop_first_stream(srv->loop) : NULL; s != NULL;
         s = tt_loop_next_stream(s)) {
        conn_ext_t *e = tt_stream_ext(s);
        if (e->base.kind != EP_WS || e->base.id != id || tt_stream_is_closing(s))
            continue;
        const char *nick = e->ws.session != NULL ? chat_session_nickname(e->ws.session) : NULL;
        tt_log_always("%s: connection %llu (%s, %s) closed by the admin API",
                      tt_stream_peer(c->base.s), (unsigned long long)id, tt_stream_peer(s),
                      nick != NULL ? nick : "not logged in");
        ws_conn_close(&e->ws, WS_CLOSE_POLICY, "closed by an administrator");
        send_json(c, req, 200, json_pack("{s:I}", "closed", (json_int_t)id), NULL);
        return;
    }
    send_error(c, req, 404, "not_found", "no open WebSocket has that id", NULL);
}

/* The value of name in a query string ("a=1&level=debug"), or a NULL slice. */
static http_slice_t query_param(http_slice_t q, const char *name) {
    size_t nlen = strlen(name);
    const char *p = q.ptr, *end = q.ptr + q.len;
    while (p != NULL && p < end) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *stop = amp ? amp : end;
        if ((size_t)(stop - p) > nlen && memcmp(p, name, nlen) == 0 && p[nlen] == '=')
            return (http_slice_t){p + nlen + 1, (size_t)(stop - p - nlen - 1)};
        p = amp ? amp + 1 : NULL;
    }
    return (http_slice_t){NULL, 0};
}

static void api_log_level(http_conn_t *c, const http_req_t *req) {
    server_t *srv = c->base.srv;
    if (req->method != HTTP_POST) {
        send_json(c, req, 200, json_pack("{s:s}", "log_level", level_names[tt_log_get_level()]),
                  NULL);
        return;
    }
    http_slice_t v =
        req->query.ptr != NULL ? query_param(req->query, "level") : (http_slice_t){NULL, 0};
    int level = -1;
    for (int i = 0; v.ptr != NULL && i < (int)(sizeof(level_names) / sizeof(level_names[0])); i++)
        if (http_slice_eq(v, level_names[i]))
            level = i;
    if (level < 0) {
        send_error(c, req, 400, "bad_request", "give ?level= one of debug, info, warn, error, off",
                   NULL);
        return;
    }
    tt_log_set_level((tt_log_level_t)level);
    /* What the running configuration says now: a SIGHUP that reads a file
     * names the change it makes back. */
    srv->cfg.log_level = level;
    srv->running.log_level = level;
    tt_log_always("log level set to %s by the admin API (%s)", level_names[level],
                  tt_stream_peer(c->base.s));
    send_json(c, req, 200, json_pack("{s:s}", "log_level", level_names[level]), NULL);
}

static bool method_ok(http_conn_t *c, const http_req_t *req, bool get, bool post,
                      const char *allow) {
    bool is_get = req->method == HTTP_GET || req->method == HTTP_HEAD;
    if ((is_get && get) || (req->method == HTTP_POST && post))
        return true;
    char extra[64];
    snprintf(extra, sizeof(extra), "Allow: %s\r\n", allow);
    send_error(c, req, 405, "method_not_allowed", "method not allowed here", extra);
    return false;
}

static void serve_api(http_conn_t *c, const http_req_t *req, const char *p, size_t len) {
    if (!authorized(c, req))
        return;
    http_slice_t path = {p, len};
    if (http_slice_eq(path, "stats")) {
        if (method_ok(c, req, true, false, "GET, HEAD"))
            api_stats(c, req);
    } else if (http_slice_eq(path, "rooms")) {
        if (method_ok(c, req, true, false, "GET, HEAD"))
            api_rooms(c, req);
    } else if (http_slice_eq(path, "connections")) {
        if (method_ok(c, req, true, false, "GET, HEAD"))
            api_connections(c, req);
    } else if (http_slice_eq(path, "log-level")) {
        if (method_ok(c, req, true, true, "GET, HEAD, POST"))
            api_log_level(c, req);
    } else if (len > 12 && memcmp(p, "connections/", 12) == 0 && len > 18 &&
               memcmp(p + len - 6, "/close", 6) == 0) {
        if (method_ok(c, req, false, true, "POST"))
            api_close(c, req, p + 12, len - 18);
    } else {
        send_error(c, req, 404, "not_found", "no such admin API resource", NULL);
    }
}

void admin_serve(http_conn_t *c, const http_req_t *req) {
    server_t *srv = c->base.srv;
    /* Without a token there is no admin page at all. */
    if (srv->cfg.admin_token_len == 0) {
        http_conn_not_found(c, req);
        return;
    }
    const char *p = req->path.ptr;
    size_t len = req->path.len;
    if (len == 6) { /* "/admin": the page is "/admin/", where its relative URLs work */
        http_conn_respond(c, 308, req->keep_alive, "Location: /admin/\r\n",
                          "text/plain; charset=utf-8", "see /admin/\n", 12,
                          req->method == HTTP_HEAD);
        if (!req->keep_alive)
            tt_stream_close_after_flush(c->base.s, "http done");
        return;
    }
    static const char api[] = "/admin/api/";
    if (len >= sizeof(api) - 1 && memcmp(p, api, sizeof(api) - 1) == 0) {
        serve_api(c, req, p + sizeof(api) - 1, len - (sizeof(api) - 1));
        return;
    }
    http_conn_serve_asset(c, req, http_asset_find_in(admin_assets, p, len));
}
