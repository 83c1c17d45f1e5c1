/* The server: one libuv loop that owns the listener, every connection and
 * the chat state. server_run() returns when the server has shut down. */
#ifndef TT_SERVER_SERVER_H
#define TT_SERVER_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "chat/chat.h"

#define SERVER_MAX_LISTEN 16

/* One address to listen on. */
typedef struct server_listen_s {
    char host[256]; /* IPv4 or IPv6 literal */
    int port;       /* 0 picks a free port (logged) */
    bool tls;       /* serve TLS (https://, wss://) with tls_cert and tls_key */
    bool admin;     /* --admin-listen: /metrics, health and the admin page, nothing else */
} server_listen_t;

#define SERVER_ADMIN_TOKEN_MAX 256

struct tt_tls_ctx_s;

typedef struct server_config_s {
    bool echo;            /* mount /echo, the conformance endpoint */
    bool reuse_port;      /* SO_REUSEPORT on every listener: processes share a port */
    size_t max_message;   /* largest WebSocket message (default 64 KiB), inflated bytes when
                             compressed */
    bool deflate;         /* negotiate permessage-deflate (default on) */
    size_t deflate_min;   /* payloads shorter than this are sent uncompressed (default 256) */
    size_t max_queue;     /* unsent bytes per connection before 1008 (default 1 MiB) */
    unsigned shutdown_ms; /* how long shutdown waits for close handshakes (default 3000) */
    size_t
        max_connections; /* WebSockets at once; past it upgrades get 503 (0: from the fd limit) */
    size_t max_per_ip;   /* WebSockets per client address (default 1000; 0: no cap) */
    unsigned head_timeout_ms; /* a request head (or an idle keep-alive) must arrive within (10 s) */
    unsigned ping_ms;         /* idle WebSockets are pinged after this (30 s); no answer within
                                 another ping_ms closes them (member_left reason "timeout") */
    const char **origins;     /* extra allowed Origin values ("*" allows any); NULL-terminated */
    size_t norigins;
    /* Message history (src/store), opened before the server listens. */
    const char *db_path;      /* SQLite file (default ./data/tertulia.db); ":memory:" keeps
                                 history for the life of the process */
    uint64_t db_max_bytes;    /* cap on the database size; past it new messages are refused
                                 with `unavailable`, as on a full disk (0: none) */
    uint64_t retain_messages; /* keep this many messages per room (0: all) */
    unsigned retain_days;     /* delete messages older than this (0: keep forever) */
    /* --listen addresses, then --listen-tls ones (at least one). */
    server_listen_t listen[SERVER_MAX_LISTEN];
    size_t nlisten;
    const char *tls_cert;     /* PEM certificate chain, for the TLS listeners */
    const char *tls_key;      /* PEM private key */
    struct tt_tls_ctx_s *tls; /* loaded by server_tls_load; server_run takes it */
    /* The admin API's credential: the content of admin_token_file, read by
     * server_admin_load (again on SIGHUP); empty: no admin page or API. */
    const char *admin_token_file;
    char admin_token[SERVER_ADMIN_TOKEN_MAX + 1];
    size_t admin_token_len;
    /* Accounts (server/accounts.c) */
    bool guests;                      /* guests may log in (chat.guests_off is its opposite) */
    bool registration;                /* `register` makes accounts */
    unsigned token_days;              /* a token unused this long is dead */
    unsigned password_workers;        /* password-hashing threads */
    unsigned password_queue;          /* checks that may wait for one */
    const char *redis_url;            /* --redis: a cluster's Redis, or NULL */
    const char *redis_password_file;  /* its password */
    const char *node;                 /* this node's name */
    struct cluster_config_s *cluster; /* loaded by server_cluster_load; server_run borrows it */
    const char *jwt_key;              /* PEM public key for RS256/ES256 JWT logins */
    const char *jwt_secret_file;      /* HS256 secret for them */
    struct auth_jwt_keys_s *jwt;      /* loaded by server_jwt_load; server_run borrows it */
    int log_level;                    /* tt_log_level_t; server_run sets it */
    int log_format;                   /* tt_log_format_t: text or json; server_run sets it */
    /* With --config: the file SIGHUP reads again, and the options (their
     * command-line layer) it was resolved from; both outlive server_run. */
    const char *config_path;
    const struct options_s *options;
    chat_config_t chat;
} server_config_t;

/* The defaults of the option table (server/options.h). */
void server_config_defaults(server_config_t *cfg);

/* Loads tls_cert and tls_key into cfg->tls (blocking: at start-up, before
 * server_run). Returns 0, or -1 with err filled. */
int server_tls_load(server_config_t *cfg, char *err, size_t errlen);
/* Drops cfg->tls (a --check-config that loaded it). */
void server_tls_free(server_config_t *cfg);
/* Loads jwt_key and jwt_secret_file into cfg->jwt (blocking: at start-up);
 * 0 also without either. Returns 0, or -1 with err filled. */
int server_jwt_load(server_config_t *cfg, char *err, size_t errlen);
void server_jwt_free(server_config_t *cfg);
/* Parses redis_url, reads redis_password_file and names the node (node,
 * or the host name and the first --listen port) into cfg->cluster (NULL
 * without --redis). Returns 0, or -1 with err filled. */
int server_cluster_load(server_config_t *cfg, char *err, size_t errlen);
void server_cluster_free(server_config_t *cfg);
/* Reads admin_token_file into cfg->admin_token (blocking: at start-up).
 * The token is the file's first line without surrounding white space: 16
 * to SERVER_ADMIN_TOKEN_MAX printable ASCII characters. Returns 0 (also
 * without a file: the token stays empty), or -1 with err filled. */
int server_admin_load(server_config_t *cfg, char *err, size_t errlen);

/* Runs the server until SIGINT or SIGTERM; SIGHUP reloads the TLS
 * certificate and key (off the loop). Returns 0 after a clean
 * shutdown, or a negative libuv error or STORE_E_* (the history database
 * could not be opened) if it could not start (logged). */
int server_run(const server_config_t *cfg);

#endif
