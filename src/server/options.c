/* The table of options and what is generated from it (options.h). */
#include "server/options.h"

#include <errno.h>
#include <getopt.h>
#include <ini.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/xmalloc.h"
#include "store/store.h"

#define TT_STR_(x) #x
#define TT_STR(x) TT_STR_(x)

/* Where a value lands: the member's offset and size in server_config_t. */
#define AT(member)                                                                                 \
    .off = offsetof(server_config_t, member), .size = sizeof(((server_config_t *)0)->member)

static const char *const log_levels[] = {"debug", "info", "warn", "error", "off", NULL};
static const char *const log_formats[] = {"text", "json", NULL};

/* Every option. To add one: a row here (and the member it lands in), the
 * README's options table, and OPT_LIVE if SIGHUP may apply it. Defaults a
 * lower module also needs (the chat's, the store's) are its constants. */
const opt_desc_t options_table[] = {
    {.name = "listen",
     .type = OPT_ADDRS,
     .def = "127.0.0.1:9090",
     .arg = "HOST:PORT",
     .help = "address to listen on (repeatable; 0.0.0.0:9090 serves other machines; port 0 "
             "picks a free port, logged as 'listening on HOST:PORT'). Without it but with "
             "--listen-tls, only TLS is served",
     .off = offsetof(server_config_t, listen)},
    {.name = "listen-tls",
     .type = OPT_ADDRS,
     .none = "none",
     .arg = "HOST:PORT",
     .tls = true,
     .help = "serve TLS (https://, wss://) on this address (repeatable; needs --tls-cert and "
             "--tls-key)",
     .off = offsetof(server_config_t, listen)},
    {.name = "admin-listen",
     .type = OPT_ADDRS,
     .none = "none",
     .arg = "HOST:PORT",
     .admin = true,
     .help = "serve /metrics, /healthz, /readyz and the admin page on this address only "
             "(repeatable; plain HTTP: keep it on loopback, e.g. 127.0.0.1:9091, or behind a "
             "proxy). Without it they are served on every --listen address",
     .off = offsetof(server_config_t, listen)},
    {.name = "admin-token-file",
     .type = OPT_STRING,
     .none = "none",
     .arg = "FILE",
     AT(admin_token_file),
     .help = "file holding the admin token (its first line, 16 to 256 printable characters): "
             "the credential of the admin page and API (Authorization: Bearer TOKEN). Without "
             "it there is no admin page. SIGHUP reads the file again"},
    {.name = "tls-cert",
     .type = OPT_STRING,
     .none = "none",
     .arg = "FILE",
     AT(tls_cert),
     .help = "PEM certificate, with its chain (SIGHUP reloads it)"},
    {.name = "tls-key",
     .type = OPT_STRING,
     .none = "none",
     .arg = "FILE",
     AT(tls_key),
     .help = "PEM private key of the certificate (SIGHUP reloads it)"},
    {.name = "max-message",
     .type = OPT_SIZE,
     .def = "64K",
     .min = 125,
     .max = (size_t)1 << 30,
     .arg = "BYTES",
     AT(max_message),
     .help = "largest WebSocket message; over it: close 1009 (compressed messages: counted "
             "inflated)"},
    {.name = "deflate",
     .type = OPT_BOOL,
     .def = "on",
     .arg = "on|off",
     AT(deflate),
     .help = "negotiate permessage-deflate with clients that offer it"},
    {.name = "deflate-min",
     .type = OPT_SIZE,
     .def = "256",
     .max = (size_t)1 << 30,
     .arg = "BYTES",
     AT(deflate_min),
     .help = "shorter messages are sent uncompressed",
     .flags = OPT_LIVE},
    {.name = "max-text",
     .type = OPT_SIZE,
     .def = TT_STR(CHAT_MAX_TEXT_DEFAULT),
     .min = 1,
     .max = (size_t)1 << 24,
     .arg = "BYTES",
     AT(chat.max_text),
     .help = "largest chat message text (lowered to fit a smaller --max-message; 512 bytes "
             "are left for the JSON around it)",
     .flags = OPT_LIVE},
    {.name = "max-queue",
     .type = OPT_SIZE,
     .def = "1M",
     .min = 1024,
     .max = (size_t)1 << 31,
     .arg = "BYTES",
     AT(max_queue),
     .help = "unsent bytes per connection before it is closed with 1008 (never less than one "
             "--max-message)",
     .flags = OPT_LIVE},
    {.name = "max-rooms",
     .type = OPT_INT,
     .def = TT_STR(CHAT_MAX_ROOMS_DEFAULT),
     .min = 1,
     .max = 100000,
     .arg = "N",
     AT(chat.max_rooms),
     .help = "rooms one connection may be in",
     .flags = OPT_LIVE},
    {.name = "max-connections",
     .type = OPT_INT,
     .none = "the open-file limit less 64",
     .min = 1,
     .max = 10000000,
     .arg = "N",
     AT(max_connections),
     .help = "WebSockets at once; past it upgrades get 503",
     .flags = OPT_LIVE},
    {.name = "max-per-ip",
     .type = OPT_INT,
     .def = "1000",
     .max = 10000000,
     .arg = "N",
     AT(max_per_ip),
     .help = "WebSockets from one client address (0: no cap)",
     .flags = OPT_LIVE},
    {.name = "head-timeout",
     .type = OPT_SECONDS,
     .def = "10",
     .min = 1,
     .max = 86400,
     .arg = "SECONDS",
     AT(head_timeout_ms),
     .help = "a request head must be complete this long after its first byte; also how long "
             "a keep-alive connection may stay idle and a response may go unread"},
    {.name = "ping-interval",
     .type = OPT_SECONDS,
     .def = "30",
     .max = 86400,
     .arg = "SECONDS",
     AT(ping_ms),
     .help = "idle WebSockets are pinged after this, and closed when no answer comes within "
             "as long again (0: off)",
     .flags = OPT_LIVE},
    {.name = "rate-burst",
     .type = OPT_INT,
     .def = TT_STR(CHAT_RATE_BURST_DEFAULT),
     .min = 1,
     .max = 1000000,
     .arg = "N",
     AT(chat.rate_burst),
     .help = "chat messages (room, private) a client may send at once; every request counts "
             "against a budget " TT_STR(CHAT_RATE_REQUEST_FACTOR) " times this size",
     .flags = OPT_LIVE},
    {.name = "rate-limit",
     .type = OPT_DECIMAL,
     .def = TT_STR(CHAT_RATE_LIMIT_DEFAULT),
     .min = 1,
     .max = 1000000,
     .arg = "PER_SECOND",
     AT(chat.rate_limit),
     .help =
         "chat messages a second a client may keep sending (decimals allowed; other "
         "requests: " TT_STR(CHAT_RATE_REQUEST_FACTOR) " times as many). Over it: error "
                                                       "rate_limited; a client that keeps flooding "
                                                       "is closed with 1008. 0 turns flood "
                                                       "control off",
     .flags = OPT_LIVE},
    {.name = "allowed-origin",
     .type = OPT_STRINGS,
     .none = "this server's own origin",
     .arg = "ORIGIN",
     .off = offsetof(server_config_t, origins),
     .help = "also accept WebSocket upgrades from this Origin (repeatable; '*' accepts any). "
             "Clients sending no Origin are always accepted"},
    {.name = "reuse-port",
     .type = OPT_FLAG,
     .def = "off",
     AT(reuse_port),
     .help = "set SO_REUSEPORT on every listening socket, so that several tertulia processes "
             "(each started with it) listen on the same address and the kernel spreads new "
             "connections among them; each process is its own chat unless they form a cluster"},
    {.name = "redis",
     .type = OPT_STRING,
     .none = "none: one process",
     .arg = "URL",
     AT(redis_url),
     .help = "join a cluster over Redis: redis://[:PASSWORD@]HOST[:PORT][/DB] or unix:PATH. Every "
             "node on the same Redis serves one chat (ids, room messages and history shared)"},
    {.name = "redis-password-file",
     .type = OPT_STRING,
     .none = "none (or the URL's)",
     .arg = "FILE",
     AT(redis_password_file),
     .help = "Redis's password, from the first line of this file (so it is not on the command "
             "line)"},
    {.name = "node",
     .type = OPT_STRING,
     .none = "HOST:PORT (host name and first --listen port)",
     .arg = "NAME",
     AT(node),
     .help = "this node's name in a cluster (1-64 of A-Z a-z 0-9 . _ : -), unique among the "
             "nodes; in welcome.server.node"},
    {.name = "echo",
     .type = OPT_FLAG,
     .def = "off",
     AT(echo),
     .help = "mount /echo, a WebSocket that returns every message (for conformance suites)"},
    {.name = "db",
     .type = OPT_STRING,
     .def = STORE_DEFAULT_PATH,
     .arg = "PATH",
     AT(db_path),
     .help = "message history database, created on first run; ':memory:' keeps history only "
             "while the process runs"},
    {.name = "history-on-join",
     .type = OPT_INT,
     .def = TT_STR(CHAT_HISTORY_DEFAULT),
     .max = CHAT_HISTORY_MAX,
     .arg = "N",
     AT(chat.history_on_join),
     .help = "messages a joiner gets in joined.history",
     .flags = OPT_LIVE},
    {.name = "resume-seconds",
     .type = OPT_SECONDS,
     .def = TT_STR(CHAT_RESUME_SECONDS_DEFAULT),
     .max = 86400,
     .arg = "SECONDS",
     AT(chat.resume_ms),
     .help = "the grace time: a tertulia.v1 user whose connections dropped without a goodbye "
             "keeps its nickname and its place in rooms this long, and privates to it wait; a "
             "reload or another tab comes back with the guest's resume token (0: none)",
     .flags = OPT_LIVE},
    {.name = "guests",
     .type = OPT_BOOL,
     .def = "on",
     .arg = "on|off",
     AT(guests),
     .help = "let people in with a nickname only, as guests (off: accounts only, a guest login "
             "gets guests_closed)"},
    {.name = "registration",
     .type = OPT_BOOL,
     .def = "on",
     .arg = "on|off",
     AT(registration),
     .help = "let people make accounts with register (off: registration_closed; existing "
             "accounts still log in)"},
    {.name = "admin",
     .type = OPT_NICKS,
     .none = "none",
     .arg = "NICK",
     .help = "a server admin: the account of this nickname counts as the owner of every room, "
             "may ban from the server (by nickname or client address) and read the server-wide "
             "audit log (repeatable, at most " TT_STR(
                 CHAT_ADMINS_MAX) "; accounts only: a "
                                  "guest of that name holds no role)"},
    {.name = "jwt-key",
     .type = OPT_STRING,
     .none = "none",
     .arg = "FILE",
     AT(jwt_key),
     .help = "PEM public key (RSA of 2048 bits or more, or EC P-256) that checks the RS256 or "
             "ES256 JWTs of an operator's own user system: login with jwt logs in the account "
             "its sub names"},
    {.name = "jwt-secret-file",
     .type = OPT_STRING,
     .none = "none",
     .arg = "FILE",
     AT(jwt_secret_file),
     .help = "file holding the HS256 secret (32 bytes or more) of such JWTs"},
    {.name = "token-days",
     .type = OPT_INT,
     .def = "30",
     .min = 1,
     .max = 3650,
     .arg = "DAYS",
     AT(token_days),
     .help = "a login token unused this long no longer logs in (every use starts the time "
             "again); logout and a password change end tokens at once"},
    {.name = "password-workers",
     .type = OPT_INT,
     .def = "0",
     .max = 64,
     .arg = "N",
     AT(password_workers),
     .help = "threads that hash and check passwords (Argon2id: about 100 ms and 64 MiB each), "
             "off the event loop (0: one less than the CPUs, at least 1, so a flood of logins "
             "leaves a core to the chat)"},
    {.name = "password-queue",
     .type = OPT_INT,
     .def = "64",
     .min = 1,
     .max = 65536,
     .arg = "N",
     AT(password_queue),
     .help = "password checks that may wait for a worker; past it logins and registrations are "
             "refused with rate_limited"},
    {.name = "retain-messages",
     .type = OPT_INT,
     .def = "0",
     .max = (uint64_t)1 << 40,
     .arg = "N",
     AT(retain_messages),
     .help = "keep at most N messages per room, applied in the background every minute (0: "
             "all)"},
    {.name = "retain-days",
     .type = OPT_INT,
     .def = "0",
     .max = 1000000,
     .arg = "D",
     AT(retain_days),
     .help = "delete messages older than D days, applied in the background every minute (0: "
             "keep forever)"},
    {.name = "db-max-bytes",
     .type = OPT_SIZE,
     .def = "0",
     .max = (uint64_t)1 << 50,
     .arg = "BYTES",
     AT(db_max_bytes),
     .help = "cap on the database size; past it new messages are refused with the error "
             "'unavailable', as on a full disk (0: no cap)"},
    {.name = "log-level",
     .type = OPT_ENUM,
     .def = "info",
     .arg = "LEVEL",
     AT(log_level),
     .choices = log_levels,
     .flags = OPT_LIVE,
     .help = "debug, info, warn, error or off (logs go to stderr)"},
    {.name = "log-format",
     .type = OPT_ENUM,
     .def = "text",
     .arg = "FORMAT",
     AT(log_format),
     .choices = log_formats,
     .flags = OPT_LIVE,
     .help = "text (a time, a level and a sentence a line) or json (one JSON object a line: "
             "time, level, event, and where known peer, conn, nick and room, then msg)"},
};
const size_t options_count = sizeof(options_table) / sizeof(options_table[0]);

#define NOPT (sizeof(options_table) / sizeof(options_table[0]))

typedef struct {
    opt_layer_t layer; /* the layer the values come from */
    char **v;
    size_t n;
} opt_slot_t;

struct options_s {
    opt_slot_t slot[NOPT];
    const char **origins; /* the resolved --allowed-origin list */
    char err[1024];
};

static bool is_list(const opt_desc_t *d) {
    return d->type == OPT_ADDRS || d->type == OPT_STRINGS || d->type == OPT_NICKS;
}

options_t *options_new(void) {
    return xcalloc(1, sizeof(options_t));
}

static void slot_clear(opt_slot_t *s) {
    for (size_t i = 0; i < s->n; i++)
        free(s->v[i]);
    free(s->v);
    s->v = NULL;
    s->n = 0;
}

void options_free(options_t *o) {
    if (o == NULL)
        return;
    for (size_t i = 0; i < NOPT; i++)
        slot_clear(&o->slot[i]);
    free(o->origins);
    free(o);
}

const char *options_error(const options_t *o) {
    return o->err;
}

static int fail(options_t *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(options_t *o, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(o->err, sizeof(o->err), fmt, ap);
    va_end(ap);
    return -1;
}

int options_find(const char *name) {
    for (size_t i = 0; i < NOPT; i++)
        if (strcmp(options_table[i].name, name) == 0)
            return (int)i;
    return -1;
}

/* ---- values ---- */

typedef union {
    bool b;
    unsigned long long u;
    double d;
    int e;
    server_listen_t addr;
} opt_value_t;

/* A byte count or count in [min, max]; K/M suffixes (KiB, MiB). Digits
 * only: strtoull alone would skip leading spaces and negate a '-'. A value
 * that does not fit 64 bits, before or after its suffix, is refused as too
 * large instead of wrapping around into the range. */
static int parse_count(const opt_desc_t *d, const char *s, unsigned long long *out, char *why,
                       size_t wlen) {
    if (!(s[0] >= '0' && s[0] <= '9'))
        goto bad;
    errno = 0;
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno == ERANGE)
        goto too_large;
    unsigned long long unit = 1;
    if (*end == 'K' || *end == 'k')
        unit = 1024;
    else if (*end == 'M' || *end == 'm')
        unit = 1024 * 1024;
    if (unit != 1)
        end++;
    if (*end != '\0')
        goto bad;
    if (v > ULLONG_MAX / unit)
        goto too_large;
    v *= unit;
    if (v > d->max)
        goto too_large;
    if (v < d->min)
        goto bad;
    *out = v;
    return 0;
too_large:
    snprintf(why, wlen, "'%s' is too large (at most %llu)", s, d->max);
    return -1;
bad:
    snprintf(why, wlen, "'%s' is not a number from %llu to %llu", s, d->min, d->max);
    return -1;
}

static int parse_addr(const char *s, server_listen_t *l, char *why, size_t wlen) {
    const char *colon = strrchr(s, ':');
    if (colon == NULL)
        goto bad;
    size_t hlen = (size_t)(colon - s);
    const char *host = s;
    if (hlen >= 2 && s[0] == '[' && s[hlen - 1] == ']') {
        host++;
        hlen -= 2;
    }
    if (hlen == 0 || hlen >= sizeof(l->host))
        goto bad;
    char *end;
    errno = 0;
    long port = strtol(colon + 1, &end, 10);
    if (*(colon + 1) == '\0' || *end != '\0' || errno || port < 0 || port > 65535)
        goto bad;
    memcpy(l->host, host, hlen);
    l->host[hlen] = '\0';
    l->port = (int)port;
    return 0;
bad:
    snprintf(why, wlen, "'%s' is not HOST:PORT (e.g. 127.0.0.1:9090)", s);
    return -1;
}

/* Parses one value (one item of a list) of option d. */
static int parse_value(const opt_desc_t *d, const char *s, opt_value_t *v, char *why, size_t wlen) {
    switch (d->type) {
    case OPT_FLAG:
    case OPT_BOOL:
        if (strcmp(s, "on") != 0 && strcmp(s, "off") != 0) {
            snprintf(why, wlen, "'%s' is not on or off", s);
            return -1;
        }
        v->b = strcmp(s, "on") == 0;
        return 0;
    case OPT_INT:
    case OPT_SIZE:
    case OPT_SECONDS:
        return parse_count(d, s, &v->u, why, wlen);
    case OPT_DECIMAL: {
        /* 0 or a number in [min / 1000, max]: 0.5 is one every two seconds. */
        errno = 0;
        char *end;
        double r = strtod(s, &end);
        double lo = (double)d->min / 1000, hi = (double)d->max;
        if (end == s || *end != '\0' || errno != 0 || !(r == 0 || (r >= lo && r <= hi))) {
            snprintf(why, wlen, "'%s' is not 0 or a number from %g to %.0f", s, lo, hi);
            return -1;
        }
        v->d = r;
        return 0;
    }
    case OPT_STRING:
        if (s[0] == '\0') {
            snprintf(why, wlen, "the path is empty");
            return -1;
        }
        return 0;
    case OPT_STRINGS:
        return 0;
    case OPT_NICKS:
        if (!chat_nickname_is_valid(s, strlen(s))) {
            snprintf(why, wlen, "'%s' is not a nickname (1 to %d letters, digits, '_', '-', '.')",
                     s, CHAT_NICK_MAX);
            return -1;
        }
        return 0;
    case OPT_ADDRS:
        v->addr.tls = d->tls;
        v->addr.admin = d->admin;
        return parse_addr(s, &v->addr, why, wlen);
    case OPT_ENUM:
        for (int i = 0; d->choices[i] != NULL; i++)
            if (strcmp(s, d->choices[i]) == 0) {
                v->e = i;
                return 0;
            }
        size_t n = (size_t)snprintf(why, wlen, "'%s' is not one of", s);
        for (int i = 0; d->choices[i] != NULL && n < wlen; i++)
            n += (size_t)snprintf(why + n, wlen - n, "%s %s", i ? "," : "", d->choices[i]);
        return -1;
    }
    return -1;
}

/* A list's items: separated by commas (with optional spaces). */
static size_t split_items(const char *s, char ***out) {
    char **items = NULL;
    size_t n = 0;
    const char *p = s;
    for (;;) {
        while (*p == ' ' || *p == '\t')
            p++;
        const char *e = strchr(p, ',');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        while (len > 0 && (p[len - 1] == ' ' || p[len - 1] == '\t'))
            len--;
        items = xrealloc(items, (n + 1) * sizeof(*items));
        items[n++] = xstrndup(p, len);
        if (e == NULL)
            break;
        p = e + 1;
    }
    *out = items;
    return n;
}

static int set_value(options_t *o, int i, opt_layer_t layer, const char *value, char *why,
                     size_t wlen) {
    const opt_desc_t *d = &options_table[i];
    opt_slot_t *s = &o->slot[i];
    char **items;
    size_t n = is_list(d) ? split_items(value, &items) : 1;
    if (!is_list(d)) {
        items = xmalloc(sizeof(*items));
        items[0] = xstrdup(value);
    }
    int r = 0;
    for (size_t k = 0; k < n && r == 0; k++) {
        opt_value_t v;
        r = parse_value(d, items[k], &v, why, wlen);
    }
    size_t have = layer == s->layer ? s->n : 0;
    if (r == 0 && d->type == OPT_ADDRS && have + n > SERVER_MAX_LISTEN) {
        snprintf(why, wlen, "at most %d addresses", SERVER_MAX_LISTEN);
        r = -1;
    }
    if (r == 0 && d->type == OPT_NICKS && have + n > CHAT_ADMINS_MAX) {
        snprintf(why, wlen, "at most %d nicknames", CHAT_ADMINS_MAX);
        r = -1;
    }
    if (r < 0 || layer < s->layer) {
        /* Refused, or set already by a higher layer: checked, not kept. */
        for (size_t k = 0; k < n; k++)
            free(items[k]);
        free(items);
        return r;
    }
    if (layer > s->layer || !is_list(d))
        slot_clear(s); /* a higher layer replaces the lower one's values */
    s->layer = layer;
    s->v = xrealloc(s->v, (s->n + n) * sizeof(*s->v));
    memcpy(s->v + s->n, items, n * sizeof(*items));
    s->n += n;
    free(items);
    return 0;
}

int options_set(options_t *o, int i, opt_layer_t layer, const char *where, const char *value) {
    char why[600];
    if (set_value(o, i, layer, value, why, sizeof(why)) < 0)
        return fail(o, "%s: %s", where, why);
    return 0;
}

/* ---- the config file and the environment ---- */

typedef struct {
    options_t *o;
    char why[800]; /* the first error: "key: why" */
} file_ctx_t;

static int on_ini(void *user, const char *section, const char *name, const char *value) {
    file_ctx_t *f = user;
    if (f->why[0] != '\0')
        return 0; /* only the first error is reported */
    if (section[0] != '\0') {
        snprintf(f->why, sizeof(f->why), "[%s]: sections are not used; put every key at the top",
                 section);
        return 0;
    }
    int i = options_find(name);
    if (i < 0) {
        snprintf(f->why, sizeof(f->why), "%s: unknown option", name);
        return 0;
    }
    char why[600];
    if (set_value(f->o, i, OPT_LAYER_FILE, value, why, sizeof(why)) < 0) {
        snprintf(f->why, sizeof(f->why), "%s: %s", name, why);
        return 0;
    }
    return 1;
}

int options_read_file(options_t *o, const char *path) {
    FILE *fp = fopen(path, "r");
    if (fp == NULL)
        return fail(o, "%s: cannot read: %s", path, strerror(errno));
    file_ctx_t f = {.o = o};
    int line = ini_parse_file(fp, on_ini, &f);
    fclose(fp);
    if (line == 0)
        return 0;
    if (line < 0)
        return fail(o, "%s: out of memory", path);
    if (f.why[0] == '\0')
        return fail(o, "%s:%d: not a 'key = value' line", path, line);
    return fail(o, "%s:%d: %s", path, line, f.why);
}

#define ENV_PREFIX "TERTULIA_"

int options_read_env(options_t *o, char *const *envp, FILE *warn) {
    for (char *const *e = envp; e != NULL && *e != NULL; e++) {
        if (strncmp(*e, ENV_PREFIX, strlen(ENV_PREFIX)) != 0)
            continue;
        const char *eq = strchr(*e, '=');
        if (eq == NULL)
            continue;
        char var[128], key[128];
        size_t vlen = (size_t)(eq - *e);
        size_t klen = vlen - strlen(ENV_PREFIX);
        if (vlen >= sizeof(var))
            continue; /* no option has so long a name */
        memcpy(var, *e, vlen);
        var[vlen] = '\0';
        for (size_t k = 0; k < klen; k++) {
            char c = var[strlen(ENV_PREFIX) + k];
            key[k] = c == '_' ? '-' : (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : '\0';
            if (key[k] == '\0')
                key[k] = '?'; /* lower case or other characters: no option's name */
        }
        key[klen] = '\0';
        int i = options_find(key);
        if (i < 0) {
            if (warn != NULL)
                fprintf(warn, "tertulia: %s: not an option, ignored\n", var);
            continue;
        }
        if (options_set(o, i, OPT_LAYER_ENV, var, eq + 1) < 0)
            return -1;
    }
    return 0;
}

/* ---- the command line ---- */

enum {
    CLI_BASE = 256,
    CLI_CONFIG = 1000,
    CLI_CHECK,
    CLI_PRINT,
    CLI_GENCONFIG,
    CLI_HELP,
    CLI_HELP_MAN,
    CLI_VERSION
};

/* The command line's own options, besides the table's: for getopt, --help
 * and the manual page. */
static const struct {
    struct option opt;
    const char *arg, *help;
} cli_extra[] = {
    {{"config", required_argument, 0, CLI_CONFIG},
     "FILE",
     "read options from FILE (INI: key = value, # comments); SIGHUP reads it again"},
    {{"check-config", no_argument, 0, CLI_CHECK},
     NULL,
     "check the options (and load the TLS files), then exit"},
    {{"print-config", no_argument, 0, CLI_PRINT},
     NULL,
     "print the effective options as a config file, then exit"},
    {{"genconfig", no_argument, 0, CLI_GENCONFIG},
     NULL,
     "print a config file of every option with its default commented out (options given "
     "on this command line are set in it), then exit"},
    {{"help", no_argument, 0, CLI_HELP}, NULL, "this text"},
    {{"help-man", no_argument, 0, CLI_HELP_MAN}, NULL, "this text as a manual page (roff)"},
    {{"version", no_argument, 0, CLI_VERSION}, NULL, "the version"},
};
#define NEXTRA (sizeof(cli_extra) / sizeof(cli_extra[0]))

int options_parse_cli(options_t *o, int argc, char **argv, options_cli_t *out) {
    memset(out, 0, sizeof(*out));
    o->err[0] = '\0';
    struct option opts[NOPT + NEXTRA + 1];
    size_t n = 0;
    for (size_t i = 0; i < NOPT; i++)
        opts[n++] =
            (struct option){options_table[i].name,
                            options_table[i].type == OPT_FLAG ? no_argument : required_argument, 0,
                            CLI_BASE + (int)i};
    for (size_t i = 0; i < NEXTRA; i++)
        opts[n++] = cli_extra[i].opt;
    opts[n] = (struct option){0, 0, 0, 0};
    optind = 0; /* glibc: start afresh (options_parse_cli may run again) */
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case CLI_CONFIG:
            out->config = optarg;
            break;
        case CLI_CHECK:
            out->check = true;
            break;
        case CLI_PRINT:
            out->print = true;
            break;
        case CLI_GENCONFIG:
            out->genconfig = true;
            break;
        case CLI_HELP:
            out->help = true;
            return 0;
        case CLI_HELP_MAN:
            out->help_man = true;
            return 0;
        case CLI_VERSION:
            out->version = true;
            return 0;
        default: {
            if (c < CLI_BASE || c >= CLI_BASE + (int)NOPT) {
                o->err[0] = '\0'; /* getopt said why */
                return -1;
            }
            const opt_desc_t *d = &options_table[c - CLI_BASE];
            char where[64];
            snprintf(where, sizeof(where), "--%s", d->name);
            if (options_set(o, c - CLI_BASE, OPT_LAYER_CLI, where,
                            d->type == OPT_FLAG ? "on" : optarg) < 0)
                return -1;
        }
        }
    }
    if (optind < argc)
        return fail(o, "unexpected argument '%s'\nTry 'tertulia --help'.", argv[optind]);
    return 0;
}

void options_copy_cli(options_t *o, const options_t *src) {
    for (size_t i = 0; i < NOPT; i++) {
        const opt_slot_t *s = &src->slot[i];
        if (s->layer != OPT_LAYER_CLI)
            continue;
        slot_clear(&o->slot[i]);
        o->slot[i].layer = OPT_LAYER_CLI;
        o->slot[i].v = xmalloc((s->n ? s->n : 1) * sizeof(char *));
        for (size_t k = 0; k < s->n; k++)
            o->slot[i].v[k] = xstrdup(s->v[k]);
        o->slot[i].n = s->n;
    }
}

/* ---- resolving into a server_config_t ---- */

static void store_uint(const opt_desc_t *d, server_config_t *cfg, unsigned long long u) {
    char *p = (char *)cfg + d->off;
    if (d->size == sizeof(uint64_t)) {
        uint64_t x = u;
        memcpy(p, &x, sizeof(x));
    } else {
        unsigned x = (unsigned)u;
        memcpy(p, &x, sizeof(x));
    }
}

static unsigned long long load_uint(const opt_desc_t *d, const server_config_t *cfg) {
    const char *p = (const char *)cfg + d->off;
    if (d->size == sizeof(uint64_t)) {
        uint64_t x;
        memcpy(&x, p, sizeof(x));
        return x;
    }
    unsigned x;
    memcpy(&x, p, sizeof(x));
    return x;
}

/* Writes one (already checked) value of option d into cfg. */
static void store_value(options_t *o, const opt_desc_t *d, server_config_t *cfg, const char *s) {
    opt_value_t v;
    char why[600];
    if (parse_value(d, s, &v, why, sizeof(why)) < 0)
        abort(); /* checked when it was set; a bad default is a bug */
    char *p = (char *)cfg + d->off;
    switch (d->type) {
    case OPT_FLAG:
    case OPT_BOOL:
        *(bool *)p = v.b;
        break;
    case OPT_INT:
    case OPT_SIZE:
        store_uint(d, cfg, v.u);
        break;
    case OPT_SECONDS:
        store_uint(d, cfg, v.u * 1000);
        break;
    case OPT_DECIMAL:
        *(double *)p = v.d;
        break;
    case OPT_STRING:
        *(const char **)p = s;
        break;
    case OPT_ENUM:
        *(int *)p = v.e;
        break;
    case OPT_ADDRS:
        cfg->listen[cfg->nlisten++] = v.addr;
        break;
    case OPT_STRINGS:
        o->origins = xrealloc(o->origins, (cfg->norigins + 2) * sizeof(*o->origins));
        o->origins[cfg->norigins++] = s;
        o->origins[cfg->norigins] = NULL;
        cfg->origins = o->origins;
        break;
    case OPT_NICKS:
        if (cfg->chat.nadmins < CHAT_ADMINS_MAX)
            snprintf(cfg->chat.admins[cfg->chat.nadmins++], sizeof(cfg->chat.admins[0]), "%s", s);
        break;
    }
}

static bool is_set(const options_t *o, const char *name) {
    return o->slot[options_find(name)].layer > OPT_LAYER_DEFAULT;
}

/* The checks between options. */
static int check_text_fits(options_t *o, server_config_t *cfg) {
    if (!is_set(o, "max-text") && cfg->chat.max_text + 512 > cfg->max_message) {
        /* A smaller message limit lowers the default text limit with it. */
        cfg->chat.max_text =
            cfg->max_message > 1024 ? cfg->max_message - 512 : cfg->max_message / 2;
    }
    if (cfg->chat.max_text + 512 > cfg->max_message)
        return fail(o,
                    "--max-text %zu does not fit in --max-message %zu (allow 512 bytes for the "
                    "JSON around it)",
                    cfg->chat.max_text, cfg->max_message);
    return 0;
}

static int check_tls_options(options_t *o, server_config_t *cfg) {
    bool any_tls = false;
    for (size_t i = 0; i < cfg->nlisten; i++)
        any_tls |= cfg->listen[i].tls;
    if (any_tls && (cfg->tls_cert == NULL || cfg->tls_key == NULL))
        return fail(o, "--listen-tls needs --tls-cert FILE and --tls-key FILE");
    if (!any_tls && (cfg->tls_cert != NULL || cfg->tls_key != NULL))
        return fail(o, "--tls-cert and --tls-key need a --listen-tls address");
    return 0;
}

int options_resolve(options_t *o, server_config_t *cfg) {
    memset(cfg, 0, sizeof(*cfg));
    chat_config_defaults(&cfg->chat);
    cfg->shutdown_ms = 3000;
    free(o->origins);
    o->origins = NULL;
    bool any_addr = false;
    size_t naddrs = 0;
    for (size_t i = 0; i < NOPT; i++) {
        if (options_table[i].type != OPT_ADDRS)
            continue;
        any_addr |= !options_table[i].admin && o->slot[i].n > 0;
        naddrs += o->slot[i].n;
    }
    /* Every kind of address shares one array of listeners (the default
     * address too, when no address to chat on is given). */
    if (naddrs + !any_addr > SERVER_MAX_LISTEN)
        return fail(o, "at most %d addresses in all (--listen, --listen-tls, --admin-listen)",
                    SERVER_MAX_LISTEN);
    for (size_t i = 0; i < NOPT; i++) {
        const opt_desc_t *d = &options_table[i];
        const opt_slot_t *s = &o->slot[i];
        if (s->n > 0) {
            for (size_t k = 0; k < s->n; k++)
                store_value(o, d, cfg, s->v[k]);
        } else if (d->def != NULL && !(d->type == OPT_ADDRS && any_addr)) {
            /* The default address only when no address to chat on is given. */
            store_value(o, d, cfg, d->def);
        }
    }
    o->err[0] = '\0';
    if (check_text_fits(o, cfg) < 0 || check_tls_options(o, cfg) < 0)
        return -1;
    return 0;
}

/* ---- printing ---- */

static void format_size(unsigned long long u, char *buf, size_t len) {
    if (u != 0 && u % (1024 * 1024) == 0)
        snprintf(buf, len, "%lluM", u / (1024 * 1024));
    else if (u != 0 && u % 1024 == 0)
        snprintf(buf, len, "%lluK", u / 1024);
    else
        snprintf(buf, len, "%llu", u);
}

/* The items of option i in cfg, each formatted, separated by sep. */
static void format_items(int i, const server_config_t *cfg, const char *sep, char *buf,
                         size_t len) {
    const opt_desc_t *d = &options_table[i];
    const char *p = (const char *)cfg + d->off;
    size_t n = 0;
    buf[0] = '\0';
    switch (d->type) {
    case OPT_FLAG:
    case OPT_BOOL:
        snprintf(buf, len, "%s", *(const bool *)p ? "on" : "off");
        break;
    case OPT_INT:
        /* An option without a default has no value at 0 (max-connections). */
        if (d->def != NULL || load_uint(d, cfg) != 0)
            snprintf(buf, len, "%llu", load_uint(d, cfg));
        break;
    case OPT_SIZE:
        format_size(load_uint(d, cfg), buf, len);
        break;
    case OPT_SECONDS:
        snprintf(buf, len, "%llu", load_uint(d, cfg) / 1000);
        break;
    case OPT_DECIMAL:
        snprintf(buf, len, "%.15g", *(const double *)p);
        break;
    case OPT_STRING:
        snprintf(buf, len, "%s", *(const char *const *)p ? *(const char *const *)p : "");
        break;
    case OPT_ENUM:
        snprintf(buf, len, "%s", d->choices[*(const int *)p]);
        break;
    case OPT_ADDRS:
        for (size_t k = 0; k < cfg->nlisten && n < len; k++) {
            const server_listen_t *l = &cfg->listen[k];
            if (l->tls != d->tls || l->admin != d->admin)
                continue;
            bool v6 = strchr(l->host, ':') != NULL;
            n += (size_t)snprintf(buf + n, len - n, "%s%s%s%s:%d", n ? sep : "", v6 ? "[" : "",
                                  l->host, v6 ? "]" : "", l->port);
        }
        break;
    case OPT_STRINGS:
        for (size_t k = 0; k < cfg->norigins && n < len; k++)
            n += (size_t)snprintf(buf + n, len - n, "%s%s", n ? sep : "", cfg->origins[k]);
        break;
    case OPT_NICKS:
        for (size_t k = 0; k < cfg->chat.nadmins && n < len; k++)
            n += (size_t)snprintf(buf + n, len - n, "%s%s", n ? sep : "", cfg->chat.admins[k]);
        break;
    }
}

void options_format(int i, const server_config_t *cfg, char *buf, size_t len) {
    format_items(i, cfg, ", ", buf, len);
}

void options_apply_live(server_config_t *running, const server_config_t *next, char *changed,
                        size_t clen, char *restart, size_t rlen) {
    size_t nc = 0, nr = 0;
    changed[0] = restart[0] = '\0';
    for (size_t i = 0; i < NOPT; i++) {
        const opt_desc_t *d = &options_table[i];
        char was[1024], now[1024];
        options_format((int)i, running, was, sizeof(was));
        options_format((int)i, next, now, sizeof(now));
        if (strcmp(was, now) == 0)
            continue;
        if (d->flags & OPT_SECRET) {
            snprintf(was, sizeof(was), "(not shown)");
            snprintf(now, sizeof(now), "(not shown)");
        }
        if (d->flags & OPT_LIVE) {
            memcpy((char *)running + d->off, (const char *)next + d->off, d->size);
            if (nc < clen)
                nc += (size_t)snprintf(changed + nc, clen - nc, "%s%s %s (was %s)", nc ? "; " : "",
                                       d->name, now[0] ? now : "none", was[0] ? was : "none");
        } else if (nr < rlen) {
            nr += (size_t)snprintf(restart + nr, rlen - nr, "%s%s %s (running %s)", nr ? "; " : "",
                                   d->name, now[0] ? now : "none", was[0] ? was : "none");
        }
    }
}

void options_copy_live(server_config_t *to, const server_config_t *from) {
    for (size_t i = 0; i < NOPT; i++) {
        const opt_desc_t *d = &options_table[i];
        if (d->flags & OPT_LIVE)
            memcpy((char *)to + d->off, (const char *)from + d->off, d->size);
    }
}

/* The default of d as --help and --print-config show it. */
static void format_default(const opt_desc_t *d, char *buf, size_t len) {
    if (d->def == NULL) {
        snprintf(buf, len, "%s", d->none ? d->none : "none");
        return;
    }
    if (d->type == OPT_SIZE) {
        opt_value_t v;
        char why[600];
        if (parse_value(d, d->def, &v, why, sizeof(why)) == 0) {
            format_size(v.u, buf, len);
            return;
        }
    }
    snprintf(buf, len, "%s", d->def);
}

/* Writes text wrapped at width; the first line starts at column col (its
 * indent already written), the next ones with indent. */
static void wrap(FILE *out, const char *text, const char *indent, size_t col, size_t width) {
    const char *p = text;
    while (*p) {
        const char *e = p;
        const char *last = NULL;
        while (*e && (size_t)(e - p) + col <= width) {
            if (*e == ' ')
                last = e;
            e++;
        }
        if (*e && last != NULL)
            e = last;
        fprintf(out, "%.*s\n", (int)(e - p), p);
        p = *e == ' ' ? e + 1 : e;
        if (*p)
            fputs(indent, out);
        col = strlen(indent);
    }
}

/* One option of --help: its head, then its text wrapped at the indent. */
static void usage_item(FILE *out, const char *name, const char *arg, const char *text) {
    static const char indent[] = "                         ";
    char head[64];
    int n = snprintf(head, sizeof(head), "  --%s%s%s", name, arg ? " " : "", arg ? arg : "");
    fputs(head, out);
    size_t col = (size_t)n;
    if (col + 1 >= strlen(indent)) {
        fputc('\n', out);
        col = 0;
    }
    fprintf(out, "%*s", (int)(strlen(indent) - col), "");
    wrap(out, text, indent, strlen(indent), 80);
}

/* The help of d with its default, as --help and the manual page give it. */
static void help_text(const opt_desc_t *d, char *buf, size_t len) {
    char def[96];
    format_default(d, def, sizeof(def));
    snprintf(buf, len, "%s (default %s)%s", d->help, def,
             d->flags & OPT_LIVE ? "; SIGHUP applies a new value" : "");
}

void options_usage(FILE *out) {
    fputs("Usage: tertulia [options]\n"
          "       tertulia backup --db FILE [--force] OUT\n"
          "A real-time chat server: a web client at /, WebSocket chat at /talking and /ws.\n"
          "Options come from the command line, then TERTULIA_<OPTION> environment variables\n"
          "(TERTULIA_MAX_MESSAGE=1M), then the --config file (max-message = 1M), then the\n"
          "defaults.\n"
          "\n"
          "Options:\n",
          out);
    for (size_t i = 0; i < NOPT; i++) {
        const opt_desc_t *d = &options_table[i];
        char text[1024];
        help_text(d, text, sizeof(text));
        usage_item(out, d->name, d->arg, text);
    }
    for (size_t i = 0; i < NEXTRA; i++)
        usage_item(out, cli_extra[i].opt.name, cli_extra[i].arg, cli_extra[i].help);
}

/* ---- the manual page ---- */

/* Text for roff: a backslash spelled \e, a dash that starts an option
 * (after a space, a dash or an opening bracket; every dash with minus) a
 * real minus \-, and \& before a line's leading '.' or '\'' so it is
 * never a request. */
static void roff_text(FILE *out, const char *s, bool minus) {
    if (*s == '.' || *s == '\'')
        fputs("\\&", out);
    for (const char *p = s; *p; p++) {
        if (*p == '\\')
            fputs("\\e", out);
        else if (*p == '-' && (minus || p == s || strchr(" -([", p[-1]) != NULL))
            fputs("\\-", out);
        else
            fputc(*p, out);
    }
}

static void man_item(FILE *out, const char *name, const char *arg, const char *text) {
    fputs(".TP\n\\fB", out);
    roff_text(out, "--", true);
    roff_text(out, name, true);
    fputs("\\fR", out);
    if (arg != NULL) {
        fputs(" \\fI", out);
        roff_text(out, arg, false);
        fputs("\\fR", out);
    }
    fputc('\n', out);
    roff_text(out, text, false);
    fputs(".\n", out);
}

void options_man(FILE *out) {
    fprintf(out,
            ".\\\" Generated by tertulia --help-man from the option table (src/server/options.c).\n"
            ".TH TERTULIA 8 \"\" \"tertulia %s\" \"System Administration\"\n"
            ".SH NAME\n"
            "tertulia \\- a real\\-time chat server with a web client\n"
            ".SH SYNOPSIS\n"
            ".B tertulia\n"
            "[\\fIoptions\\fR]\n"
            ".br\n"
            ".B tertulia backup\n"
            "\\fB\\-\\-db\\fR \\fIFILE\\fR [\\fB\\-\\-force\\fR] \\fIOUT\\fR\n"
            ".SH DESCRIPTION\n"
            "\\fBtertulia\\fR serves a chat web client at \\fI/\\fR and WebSocket chat at\n"
            "\\fI/talking\\fR and \\fI/ws\\fR, over plain HTTP and TLS, and keeps the message\n"
            "history in an SQLite database.\n"
            "It runs in the foreground and logs to standard error; under systemd\n"
            "(\\fBType=notify\\fR) it reports readiness, reloads and shutdown, and pings\n"
            "the watchdog when \\fBWatchdogSec=\\fR is set.\n"
            ".PP\n"
            "Options come from the command line, then the \\fBTERTULIA_\\fR\\fIOPTION\\fR\n"
            "environment variables (the option's name in capitals, dashes as\n"
            "underscores: \\fBTERTULIA_MAX_MESSAGE=1M\\fR), then the \\fB\\-\\-config\\fR file\n"
            "(INI lines \\fIkey\\fR = \\fIvalue\\fR, \\fB#\\fR and \\fB;\\fR start comments:\n"
            "\\fBmax\\-message = 1M\\fR), then the defaults.\n"
            "A repeatable option given in a higher layer replaces the lower layer's list.\n"
            "Sizes take K and M suffixes (KiB, MiB).\n"
            ".PP\n"
            "\\fBtertulia backup\\fR copies the history database \\fIFILE\\fR into \\fIOUT\\fR\n"
            "with SQLite's online backup, consistently, while a server may be running and\n"
            "writing to it; it refuses to overwrite \\fIOUT\\fR without \\fB\\-\\-force\\fR, and\n"
            "prints how many messages it copied.\n"
            "To restore, stop the server, replace its database file with the copy\n"
            "(and remove the old file's \\fI\\-wal\\fR and \\fI\\-shm\\fR files), and start it.\n"
            ".SH OPTIONS\n",
            TT_VERSION);
    for (size_t i = 0; i < NOPT; i++) {
        char text[1024];
        help_text(&options_table[i], text, sizeof(text));
        man_item(out, options_table[i].name, options_table[i].arg, text);
    }
    for (size_t i = 0; i < NEXTRA; i++)
        man_item(out, cli_extra[i].opt.name, cli_extra[i].arg, cli_extra[i].help);
    fputs(".SH SIGNALS\n"
          ".TP\n"
          ".B SIGHUP\n"
          "Reloads: reads the \\fB\\-\\-config\\fR file and the environment again and applies\n"
          "the options marked so above (the log says which changed values need a\n"
          "restart), and loads the TLS certificate and key again for new connections.\n"
          "A file with an error is logged and the running configuration kept.\n"
          ".TP\n"
          ".BR SIGTERM \", \" SIGINT\n"
          "Shuts down: stops listening, closes every WebSocket with 1001 (going away),\n"
          "waits up to 3 seconds for the close handshakes, and exits 0.\n"
          ".SH FILES\n"
          ".TP\n"
          ".I /etc/tertulia/tertulia.conf\n"
          "The configuration file of the packaged service, every option in it with its\n"
          "default (generated by \\fBtertulia \\-\\-genconfig\\fR).\n"
          ".TP\n"
          ".I /var/lib/tertulia/tertulia.db\n"
          "The packaged service's message history (systemd's \\fBStateDirectory=\\fR).\n"
          "Without \\fB\\-\\-db\\fR the server uses \\fI./data/tertulia.db\\fR.\n"
          ".TP\n"
          ".I /lib/systemd/system/tertulia.service\n"
          "The systemd unit.\n"
          ".SH EXIT STATUS\n"
          ".TP\n"
          ".B 0\n"
          "A clean shutdown, or a subcommand or check that succeeded.\n"
          ".TP\n"
          ".B 1\n"
          "The server could not start (an address in use, a database that cannot be\n"
          "opened), or a backup failed.\n"
          ".TP\n"
          ".B 2\n"
          "A usage error: a bad option or value, on the command line, in the\n"
          "environment or in the \\fB\\-\\-config\\fR file (named with its line), or a\n"
          "TLS file that does not load.\n"
          ".SH SEE ALSO\n"
          ".BR systemd.service (5),\n"
          ".BR systemd.exec (5),\n"
          ".BR sqlite3 (1)\n",
          out);
}

/* An option's help and default as comments, before its lines. */
static void print_comment(FILE *out, const opt_desc_t *d) {
    char def[96];
    format_default(d, def, sizeof(def));
    fputs("\n# ", out);
    wrap(out, d->help, "# ", 2, 78);
    fprintf(out, "# default: %s%s%s\n", def, is_list(d) ? "; repeatable" : "",
            d->flags & OPT_LIVE ? "; SIGHUP applies a new value" : "");
}

/* Option i's value in cfg as `key = value` lines (one per item of a list),
 * each after prefix; a commented `# key =` when it has none. */
static void print_value(FILE *out, int i, const server_config_t *cfg, const char *prefix) {
    const opt_desc_t *d = &options_table[i];
    char val[4096];
    format_items(i, cfg, "\n", val, sizeof(val));
    if (val[0] == '\0') {
        fprintf(out, "# %s =\n", d->name);
        return;
    }
    if (d->flags & OPT_SECRET) {
        fprintf(out, "# %s = (set; not shown)\n", d->name);
        return;
    }
    for (char *line = val, *nl; line != NULL; line = nl ? nl + 1 : NULL) {
        nl = strchr(line, '\n');
        fprintf(out, "%s%s = %.*s\n", prefix, d->name, nl ? (int)(nl - line) : (int)strlen(line),
                line);
    }
}

void options_print(FILE *out, const server_config_t *cfg) {
    fprintf(out,
            "# tertulia %s: the effective configuration (--print-config).\n"
            "# Usable as a --config file; '#' starts a comment.\n",
            TT_VERSION);
    for (size_t i = 0; i < NOPT; i++) {
        print_comment(out, &options_table[i]);
        print_value(out, (int)i, cfg, "");
    }
}

void options_genconfig(FILE *out, const options_t *o, const server_config_t *cfg) {
    fprintf(out,
            "# tertulia %s: every option, with its help and default (tertulia --genconfig).\n"
            "# A line 'key = value' sets an option; remove the '#' in front of one to\n"
            "# change it. '#' and ';' start comments. Sizes take K and M suffixes.\n"
            "# TERTULIA_<OPTION> variables and the command line override this file;\n"
            "# SIGHUP reads it again (what needs a restart is logged).\n",
            TT_VERSION);
    server_config_t defaults;
    server_config_defaults(&defaults);
    for (size_t i = 0; i < NOPT; i++) {
        print_comment(out, &options_table[i]);
        if (o->slot[i].layer == OPT_LAYER_CLI)
            print_value(out, (int)i, cfg, "");
        else
            print_value(out, (int)i, &defaults, "#");
    }
}
