/* tertulia: command line and configuration, then server_run(). */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "core/log.h"
#include "core/xmalloc.h"
#include "server/server.h"

static void usage(FILE *out, const server_config_t *d) {
    fprintf(out,
            "Usage: tertulia [options]\n"
            "A real-time chat server: a web client at /, WebSocket chat at /talking and /ws.\n"
            "\n"
            "Options:\n"
            "  --listen HOST:PORT     address to listen on (repeatable; default %s:%d; port 0\n"
            "                         picks a free port, logged as 'listening on HOST:PORT')\n"
            "  --listen-tls HOST:PORT serve TLS (https://, wss://) on this address (repeatable;\n"
            "                         needs --tls-cert and --tls-key)\n"
            "  --tls-cert FILE        PEM certificate, with its chain (SIGHUP reloads it)\n"
            "  --tls-key FILE         PEM private key of the certificate\n"
            "  --max-message BYTES    largest WebSocket message (default %zu); over it: close 1009\n"
            "                         (compressed messages: counted inflated)\n"
            "  --deflate on|off       negotiate permessage-deflate (default on)\n"
            "  --deflate-min BYTES    shorter messages are sent uncompressed (default %zu)\n"
            "  --max-text BYTES       largest chat message text (default %zu, lowered to fit a\n"
            "                         smaller --max-message)\n"
            "  --max-queue BYTES      unsent bytes per connection before it is closed with 1008\n"
            "                         (default %zu; never less than one --max-message)\n"
            "  --max-rooms N          rooms one connection may be in (default %zu)\n"
            "  --max-connections N    WebSockets at once; past it upgrades get 503\n"
            "                         (default: the open-file limit less 64)\n"
            "  --max-per-ip N         WebSockets from one client address (default %zu; 0: no cap)\n"
            "  --head-timeout SECONDS a request head or idle keep-alive must arrive within\n"
            "                         (default %u)\n"
            "  --ping-interval SECONDS  idle WebSockets are pinged after this, and closed when\n"
            "                         no answer comes within as long again (default %u; 0: off)\n"
            "  --rate-burst N         chat messages (room, private) a client may send at once\n"
            "                         (default %u); every request counts against a budget %d\n"
            "                         times this size\n"
            "  --rate-limit PER_SECOND  chat messages a second a client may keep sending\n"
            "                         (default %g; other requests: %d times as many). Over it:\n"
            "                         error rate_limited; a client that keeps flooding is\n"
            "                         closed with 1008. 0 turns flood control off\n"
            "  --allowed-origin ORIGIN  also accept WebSocket upgrades from this Origin\n"
            "                         (repeatable; '*' accepts any). By default only pages of\n"
            "                         this server and clients sending no Origin are accepted\n"
            "  --echo                 mount /echo, a WebSocket that returns every message\n"
            "                         (for conformance suites; off by default)\n"
            "  --db PATH              message history database, created on first run (default\n"
            "                         %s); ':memory:' keeps history only while the\n"
            "                         process runs\n"
            "  --history-on-join N    messages a joiner gets in joined.history (default %u, at\n"
            "                         most %u)\n"
            "  --retain-messages N    keep at most N messages per room (default 0: all)\n"
            "  --retain-days D        delete messages older than D days (default 0: keep\n"
            "                         forever); both applied in the background every minute\n"
            "  --db-max-bytes BYTES   cap on the database size; past it new messages are refused\n"
            "                         with the error 'unavailable', as on a full disk (default\n"
            "                         0: no cap)\n"
            "  --log-level LEVEL      debug, info, warn, error or off (default info)\n"
            "  --help                 this text\n"
            "  --version              the version\n",
            d->host, d->port, d->max_message, d->deflate_min, d->chat.max_text, d->max_queue,
            d->chat.max_rooms, d->max_per_ip, d->head_timeout_ms / 1000, d->ping_ms / 1000, d->chat.rate_burst,
            CHAT_RATE_REQUEST_FACTOR, d->chat.rate_limit, CHAT_RATE_REQUEST_FACTOR, d->db_path,
            d->chat.history_on_join, CHAT_HISTORY_MAX);
}

/* Parses a byte count or count in [min, max]; K/M suffixes (KiB, MiB).
 * Digits only: strtoull alone would skip leading spaces and negate a '-'.
 * A value that does not fit 64 bits, before or after its suffix, is
 * refused as too large instead of wrapping around into the range. */
static int parse_size(const char *opt, const char *s, size_t min, size_t max, size_t *out) {
    if (!(s[0] >= '0' && s[0] <= '9'))
        goto bad;
    errno = 0;
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno == ERANGE)
        goto too_large;
    if (end == s || errno != 0)
        goto bad;
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
    if (v > max)
        goto too_large;
    if (v < min)
        goto bad;
    *out = (size_t)v;
    return 0;
too_large:
    fprintf(stderr, "tertulia: %s: '%s' is too large (at most %zu)\n", opt, s, max);
    return -1;
bad:
    fprintf(stderr, "tertulia: %s: '%s' is not a number from %zu to %zu\n", opt, s, min, max);
    return -1;
}

static int parse_listen(const char *opt, const char *s, server_config_t *cfg, bool tls) {
    if (cfg->nlisten == SERVER_MAX_LISTEN) {
        fprintf(stderr, "tertulia: %s: at most %d addresses\n", opt, SERVER_MAX_LISTEN);
        return -1;
    }
    server_listen_t *l = &cfg->listen[cfg->nlisten];
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
    l->tls = tls;
    cfg->nlisten++;
    return 0;
bad:
    fprintf(stderr, "tertulia: %s: '%s' is not HOST:PORT (e.g. 127.0.0.1:9090)\n", opt, s);
    return -1;
}

/* --listen-tls needs a certificate and a key, and they need it; a file
 * that does not load is a usage error, found before anything starts. */
static int check_tls(server_config_t *cfg) {
    bool any_tls = false;
    for (size_t i = 0; i < cfg->nlisten; i++)
        any_tls |= cfg->listen[i].tls;
    if (any_tls && (cfg->tls_cert == NULL || cfg->tls_key == NULL)) {
        fprintf(stderr, "tertulia: --listen-tls needs --tls-cert FILE and --tls-key FILE\n");
        return -1;
    }
    if (!any_tls && (cfg->tls_cert != NULL || cfg->tls_key != NULL)) {
        fprintf(stderr, "tertulia: --tls-cert and --tls-key need a --listen-tls address\n");
        return -1;
    }
    char err[600];
    if (any_tls && server_tls_load(cfg, err, sizeof(err)) < 0) {
        fprintf(stderr, "tertulia: %s\n", err);
        return -1;
    }
    return 0;
}

int main(int argc, char **argv) {
    /* jansson allocates like the rest of the server: out of memory aborts
     * instead of leaving a reply half built. */
    json_set_alloc_funcs(xmalloc, free);
    server_config_t cfg;
    server_config_defaults(&cfg);
    server_config_t defaults = cfg;
    enum { O_LISTEN = 256, O_MAX_MESSAGE, O_MAX_TEXT, O_MAX_QUEUE, O_MAX_ROOMS, O_ECHO,
           O_MAX_CONNS, O_MAX_PER_IP, O_HEAD_TIMEOUT, O_PING, O_ORIGIN, O_RATE_BURST, O_RATE_LIMIT,
           O_DB, O_HISTORY_ON_JOIN, O_RETAIN_MESSAGES, O_RETAIN_DAYS, O_DB_MAX_BYTES,
           O_LOG_LEVEL, O_DEFLATE, O_DEFLATE_MIN, O_HELP, O_VERSION, O_LISTEN_TLS, O_TLS_CERT,
           O_TLS_KEY };
    static const struct option opts[] = {
        {"listen", required_argument, 0, O_LISTEN},
        {"listen-tls", required_argument, 0, O_LISTEN_TLS},
        {"tls-cert", required_argument, 0, O_TLS_CERT},
        {"tls-key", required_argument, 0, O_TLS_KEY},
        {"max-message", required_argument, 0, O_MAX_MESSAGE},
        {"max-text", required_argument, 0, O_MAX_TEXT},
        {"max-queue", required_argument, 0, O_MAX_QUEUE},
        {"max-rooms", required_argument, 0, O_MAX_ROOMS},
        {"echo", no_argument, 0, O_ECHO},
        {"max-connections", required_argument, 0, O_MAX_CONNS},
        {"max-per-ip", required_argument, 0, O_MAX_PER_IP},
        {"head-timeout", required_argument, 0, O_HEAD_TIMEOUT},
        {"ping-interval", required_argument, 0, O_PING},
        {"allowed-origin", required_argument, 0, O_ORIGIN},
        {"rate-burst", required_argument, 0, O_RATE_BURST},
        {"rate-limit", required_argument, 0, O_RATE_LIMIT},
        {"db", required_argument, 0, O_DB},
        {"history-on-join", required_argument, 0, O_HISTORY_ON_JOIN},
        {"retain-messages", required_argument, 0, O_RETAIN_MESSAGES},
        {"retain-days", required_argument, 0, O_RETAIN_DAYS},
        {"db-max-bytes", required_argument, 0, O_DB_MAX_BYTES},
        {"log-level", required_argument, 0, O_LOG_LEVEL},
        {"deflate", required_argument, 0, O_DEFLATE},
        {"deflate-min", required_argument, 0, O_DEFLATE_MIN},
        {"help", no_argument, 0, O_HELP},
        {"version", no_argument, 0, O_VERSION},
        {0, 0, 0, 0},
    };
    bool text_set = false;
    const char **origins = NULL;
    size_t norigins = 0;
    int o;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (o) {
        case O_LISTEN:
        case O_LISTEN_TLS:
            if (parse_listen(o == O_LISTEN ? "--listen" : "--listen-tls", optarg, &cfg,
                             o == O_LISTEN_TLS) < 0)
                return 2;
            break;
        case O_TLS_CERT:
            cfg.tls_cert = optarg;
            break;
        case O_TLS_KEY:
            cfg.tls_key = optarg;
            break;
        case O_MAX_MESSAGE:
            if (parse_size("--max-message", optarg, 125, (size_t)1 << 30, &cfg.max_message) < 0)
                return 2;
            break;
        case O_MAX_TEXT:
            if (parse_size("--max-text", optarg, 1, (size_t)1 << 24, &cfg.chat.max_text) < 0)
                return 2;
            text_set = true;
            break;
        case O_MAX_QUEUE:
            if (parse_size("--max-queue", optarg, 1024, (size_t)1 << 31, &cfg.max_queue) < 0)
                return 2;
            break;
        case O_MAX_ROOMS:
            if (parse_size("--max-rooms", optarg, 1, 100000, &cfg.chat.max_rooms) < 0)
                return 2;
            break;
        case O_ECHO:
            cfg.echo = true;
            break;
        case O_MAX_CONNS:
            if (parse_size("--max-connections", optarg, 1, 10000000, &cfg.max_connections) < 0)
                return 2;
            break;
        case O_MAX_PER_IP:
            if (parse_size("--max-per-ip", optarg, 0, 10000000, &cfg.max_per_ip) < 0)
                return 2;
            break;
        case O_HEAD_TIMEOUT:
        case O_PING: {
            size_t secs;
            if (parse_size(o == O_PING ? "--ping-interval" : "--head-timeout", optarg,
                           o == O_PING ? 0 : 1, 86400, &secs) < 0)
                return 2;
            if (o == O_PING)
                cfg.ping_ms = (unsigned)secs * 1000;
            else
                cfg.head_timeout_ms = (unsigned)secs * 1000;
            break;
        }
        case O_RATE_BURST: {
            size_t n;
            if (parse_size("--rate-burst", optarg, 1, 1000000, &n) < 0)
                return 2;
            cfg.chat.rate_burst = (unsigned)n;
            break;
        }
        case O_RATE_LIMIT: {
            /* A decimal: 0.5 is one message every two seconds. */
            errno = 0;
            char *end;
            double r = strtod(optarg, &end);
            if (end == optarg || *end != '\0' || errno != 0 ||
                !(r == 0 || (r >= 0.001 && r <= 1e6))) {
                fprintf(stderr,
                        "tertulia: --rate-limit: '%s' is not 0 or a number from 0.001 to 1000000\n",
                        optarg);
                return 2;
            }
            cfg.chat.rate_limit = r;
            break;
        }
        case O_ORIGIN:
            origins = realloc(origins, (norigins + 2) * sizeof(*origins));
            if (origins == NULL)
                return 1;
            origins[norigins++] = optarg;
            origins[norigins] = NULL;
            cfg.origins = origins;
            cfg.norigins = norigins;
            break;
        case O_DB:
            if (optarg[0] == '\0') {
                fprintf(stderr, "tertulia: --db: the path is empty\n");
                return 2;
            }
            cfg.db_path = optarg;
            break;
        case O_HISTORY_ON_JOIN: {
            size_t n;
            if (parse_size("--history-on-join", optarg, 0, CHAT_HISTORY_MAX, &n) < 0)
                return 2;
            cfg.chat.history_on_join = (unsigned)n;
            break;
        }
        case O_RETAIN_MESSAGES:
        case O_RETAIN_DAYS:
        case O_DB_MAX_BYTES: {
            size_t n;
            if (o == O_RETAIN_DAYS) {
                if (parse_size("--retain-days", optarg, 0, 1000000, &n) < 0)
                    return 2;
                cfg.retain_days = (unsigned)n;
            } else if (o == O_RETAIN_MESSAGES) {
                if (parse_size("--retain-messages", optarg, 0, (size_t)1 << 40, &n) < 0)
                    return 2;
                cfg.retain_messages = n;
            } else {
                if (parse_size("--db-max-bytes", optarg, 0, (size_t)1 << 50, &n) < 0)
                    return 2;
                cfg.db_max_bytes = n;
            }
            break;
        }
        case O_LOG_LEVEL: {
            int level = tt_log_level_parse(optarg);
            if (level < 0) {
                fprintf(stderr, "tertulia: --log-level: '%s' is not one of debug, info, warn, "
                                "error, off\n", optarg);
                return 2;
            }
            tt_log_set_level((tt_log_level_t)level);
            break;
        }
        case O_DEFLATE:
            if (strcmp(optarg, "on") != 0 && strcmp(optarg, "off") != 0) {
                fprintf(stderr, "tertulia: --deflate: '%s' is not on or off\n", optarg);
                return 2;
            }
            cfg.deflate = strcmp(optarg, "on") == 0;
            break;
        case O_DEFLATE_MIN:
            if (parse_size("--deflate-min", optarg, 0, (size_t)1 << 30, &cfg.deflate_min) < 0)
                return 2;
            break;
        case O_HELP:
            usage(stdout, &defaults);
            return 0;
        case O_VERSION:
            printf("tertulia %s\n", TT_VERSION);
            return 0;
        default:
            fprintf(stderr, "Try 'tertulia --help'.\n");
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "tertulia: unexpected argument '%s'\nTry 'tertulia --help'.\n",
                argv[optind]);
        return 2;
    }
    if (!text_set && cfg.chat.max_text + 512 > cfg.max_message) {
        /* A smaller message limit lowers the default text limit with it. */
        cfg.chat.max_text = cfg.max_message > 1024 ? cfg.max_message - 512 : cfg.max_message / 2;
    }
    if (cfg.chat.max_text + 512 > cfg.max_message) {
        fprintf(stderr, "tertulia: --max-text %zu does not fit in --max-message %zu (allow 512 "
                        "bytes for the JSON around it)\n", cfg.chat.max_text, cfg.max_message);
        return 2;
    }
    if (check_tls(&cfg) < 0)
        return 2;
    int r = server_run(&cfg);
    free(origins);
    return r == 0 ? 0 : 1;
}
