/* lws_peer — the original chat's protocol on libwebsockets, the established C library, as its
 * own examples shape a server: lws owns the loop; a message is queued to each recipient and
 * written when lws reports the connection writeable, one message per callback. One message
 * buffer (with LWS_PRE headroom) is shared by reference among its recipients; rooms are found
 * by filtering the client list per message, as the original did. JSON via jansson.
 *   lws_peer PORT        listens on 127.0.0.1:PORT, WebSocket at /talking
 * lws's own poll() loop is used: its libuv event-library plugin measured slower here. */
#include <jansson.h>
#include <libwebsockets.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

typedef struct msg_s {
    int refs;
    size_t len;
    unsigned char buf[]; /* LWS_PRE bytes of headroom, then the JSON text */
} msg_t;

typedef struct client_s {
    struct client_s *next; /* the list of logged-in clients */
    struct lws *wsi;
    int logged_in;
    char nick[64], room[80];
    msg_t **q; /* a ring of messages waiting for a writeable callback */
    size_t qhead, qlen, qcap;
    char *rx; /* a message arriving in fragments */
    size_t rxlen, rxcap;
} client_t;

static client_t *clients;
static unsigned long long next_id = 1;
static volatile sig_atomic_t interrupted;

static void msg_unref(msg_t *m) {
    if (--m->refs == 0)
        free(m);
}

static void enqueue(client_t *c, msg_t *m) {
    if (c->qlen == c->qcap) {
        size_t cap = c->qcap ? 2 * c->qcap : 8;
        msg_t **nq = malloc(cap * sizeof *nq);
        if (!nq)
            abort();
        for (size_t i = 0; i < c->qlen; i++)
            nq[i] = c->q[(c->qhead + i) % c->qcap];
        free(c->q);
        c->q = nq;
        c->qhead = 0;
        c->qcap = cap;
    }
    c->q[(c->qhead + c->qlen++) % c->qcap] = m;
    m->refs++;
    lws_callback_on_writable(c->wsi);
}

static msg_t *msg_make(const char *type, const char *from, const char *to, const char *text) {
    struct timeval tv;
    gettimeofday(&tv, NULL);
    json_t *o =
        json_pack("{s:s, s:I, s:I, s:s, s:s, s:{s:s}}", "type", type, "id", (json_int_t)next_id++,
                  "ts", (json_int_t)tv.tv_sec * 1000 + tv.tv_usec / 1000, "from", from, "to", to,
                  "message", "text", text);
    if (!o)
        return NULL;
    char *s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    if (!s)
        return NULL;
    size_t n = strlen(s);
    msg_t *m = malloc(sizeof *m + LWS_PRE + n);
    if (!m)
        abort();
    m->refs = 1; /* the sender's own reference, dropped once it is queued everywhere */
    m->len = n;
    memcpy(m->buf + LWS_PRE, s, n);
    free(s);
    return m;
}

static void handle(client_t *self, const char *data, size_t len) {
    json_t *msg = json_loadb(data, len, 0, NULL);
    if (!json_is_object(msg)) {
        json_decref(msg);
        return;
    }
    const char *type = json_string_value(json_object_get(msg, "type"));
    if (type && strcmp(type, "login") == 0) {
        const char *nick = json_string_value(json_object_get(msg, "nickname"));
        const char *room = json_string_value(json_object_get(msg, "room"));
        if (!self->logged_in && nick && strlen(nick) < sizeof self->nick &&
            (!room || strlen(room) < sizeof self->room)) {
            snprintf(self->nick, sizeof self->nick, "%s", nick);
            snprintf(self->room, sizeof self->room, "%s", room ? room : "");
            self->logged_in = 1;
            self->next = clients;
            clients = self;
        }
    } else if (type && self->logged_in &&
               (strcmp(type, "room") == 0 || strcmp(type, "private") == 0)) {
        const char *to = json_string_value(json_object_get(msg, "to"));
        const char *text =
            json_string_value(json_object_get(json_object_get(msg, "message"), "text"));
        msg_t *m = to && text ? msg_make(type, self->nick, to, text) : NULL;
        if (m) {
            int room = type[0] == 'r';
            for (client_t *c = clients; c; c = c->next)
                if (room ? strcmp(c->room, to) == 0 : (c == self || strcmp(c->nick, to) == 0))
                    enqueue(c, m);
            msg_unref(m);
        }
    }
    json_decref(msg);
}

static void client_drop(client_t *self) {
    for (client_t **p = &clients; *p; p = &(*p)->next)
        if (*p == self) {
            *p = self->next;
            break;
        }
    for (size_t i = 0; i < self->qlen; i++)
        msg_unref(self->q[(self->qhead + i) % self->qcap]);
    free(self->q);
    free(self->rx);
    self->q = NULL;
    self->rx = NULL;
    self->qlen = 0;
}

static int on_event(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                    size_t len) {
    client_t *self = user;
    switch (reason) {
    case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION: {
        char uri[64];
        if (lws_hdr_copy(wsi, uri, sizeof uri, WSI_TOKEN_GET_URI) < 0 ||
            strcmp(uri, "/talking") != 0)
            return 1; /* refuse upgrades anywhere else */
        return 0;
    }
    case LWS_CALLBACK_ESTABLISHED:
        memset(self, 0, sizeof *self);
        self->wsi = wsi;
        return 0;
    case LWS_CALLBACK_RECEIVE:
        if (lws_frame_is_binary(wsi))
            return 0;
        if (lws_is_first_fragment(wsi))
            self->rxlen = 0;
        if (self->rxlen + len > 1 << 16)
            return -1;
        if (self->rxlen + len > self->rxcap) {
            size_t cap = self->rxcap ? self->rxcap : 1024;
            while (cap < self->rxlen + len)
                cap *= 2;
            char *nb = realloc(self->rx, cap);
            if (!nb)
                abort();
            self->rx = nb;
            self->rxcap = cap;
        }
        memcpy(self->rx + self->rxlen, in, len);
        self->rxlen += len;
        if (lws_is_final_fragment(wsi) && !lws_remaining_packet_payload(wsi)) {
            handle(self, self->rx, self->rxlen);
            self->rxlen = 0;
        }
        return 0;
    case LWS_CALLBACK_SERVER_WRITEABLE: {
        if (!self->qlen)
            return 0;
        msg_t *m = self->q[self->qhead];
        self->qhead = (self->qhead + 1) % self->qcap;
        self->qlen--;
        int n = lws_write(wsi, m->buf + LWS_PRE, m->len, LWS_WRITE_TEXT);
        msg_unref(m);
        if (n < (int)0)
            return -1;
        if (self->qlen)
            lws_callback_on_writable(wsi);
        return 0;
    }
    case LWS_CALLBACK_CLOSED:
        client_drop(self);
        return 0;
    default:
        return lws_callback_http_dummy(wsi, reason, user, in, len);
    }
}

static const struct lws_protocols protocols[] = {
    /* First, so that clients offering no subprotocol (the original's) are bound to it. */
    {"chat", on_event, sizeof(client_t), 0, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

static void on_signal(int sig) {
    (void)sig;
    interrupted = 1;
}

int main(int argc, char **argv) {
    struct lws_context_creation_info info;
    memset(&info, 0, sizeof info);
    info.port = argc > 1 ? atoi(argv[1]) : 9090;
    info.iface = "127.0.0.1";
    info.protocols = protocols;
    info.options = LWS_SERVER_OPTION_DISABLE_IPV6;
    lws_set_log_level(LLL_ERR | LLL_WARN, NULL);
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    struct lws_context *ctx = lws_create_context(&info);
    if (!ctx) {
        lwsl_err("lws_peer: cannot create the context\n");
        return 1;
    }
    while (!interrupted)
        if (lws_service(ctx, 0) < 0)
            break;
    lws_context_destroy(ctx);
    return 0;
}
