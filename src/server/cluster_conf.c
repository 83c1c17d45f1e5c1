/* --redis, --redis-password-file and --node into a cluster_config_t
 * (server.h: server_cluster_load), checked before anything starts, so a
 * mistyped URL is a usage error (exit status 2), not a node that never
 * joins. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cluster/cluster.h"
#include "core/xmalloc.h"
#include "server/server.h"

static int read_password(const char *path, char *out, size_t cap, char *err, size_t errlen) {
    FILE *f = fopen(path, "re");
    if (f == NULL) {
        snprintf(err, errlen, "cannot read the redis password file %s: %s", path, strerror(errno));
        return -1;
    }
    char line[CLUSTER_SECRET_MAX + 64];
    bool got = fgets(line, sizeof(line), f) != NULL;
    fclose(f);
    size_t n = got ? strcspn(line, "\r\n") : 0;
    if (n == 0 || n >= cap) {
        snprintf(err, errlen,
                 "the redis password file %s must hold the password (1 to %d bytes) "
                 "on its first line",
                 path, CLUSTER_SECRET_MAX);
        return -1;
    }
    memcpy(out, line, n);
    out[n] = '\0';
    return 0;
}

int server_cluster_load(server_config_t *cfg, char *err, size_t errlen) {
    cfg->cluster = NULL;
    if (cfg->redis_url == NULL) {
        if (cfg->node != NULL || cfg->redis_password_file != NULL) {
            snprintf(err, errlen, "--node and --redis-password-file need --redis URL");
            return -1;
        }
        return 0;
    }
    cluster_config_t *cc = xcalloc(1, sizeof(*cc));
    char why[160];
    if (!cluster_url_parse(cfg->redis_url, &cc->url, why, sizeof(why))) {
        snprintf(err, errlen, "--redis %s: %s", cfg->redis_url, why);
        free(cc);
        return -1;
    }
    if (cfg->redis_password_file != NULL &&
        read_password(cfg->redis_password_file, cc->url.password, sizeof(cc->url.password), err,
                      errlen) < 0) {
        free(cc);
        return -1;
    }
    if (cfg->node != NULL) {
        if (!cluster_node_name_valid(cfg->node, strlen(cfg->node))) {
            snprintf(err, errlen,
                     "--node %s: a node name is 1 to %d of the characters A-Z a-z 0-9 . _ : -",
                     cfg->node, CLUSTER_NODE_MAX);
            free(cc);
            return -1;
        }
        snprintf(cc->node, sizeof(cc->node), "%s", cfg->node);
    } else {
        /* The host name and the first chat port: unique on one machine, and
         * readable in logs. */
        char host[CLUSTER_NODE_MAX + 1] = "node";
        gethostname(host, sizeof(host));
        host[CLUSTER_NODE_MAX - 6] = '\0';
        int port = 0;
        for (size_t i = 0; i < cfg->nlisten && port == 0; i++)
            if (!cfg->listen[i].admin)
                port = cfg->listen[i].port;
        snprintf(cc->node, sizeof(cc->node), "%.57s:%d", host, port); /* 57 + 1 + 5 + NUL */
        for (char *p = cc->node; *p != '\0'; p++)
            if (!cluster_node_name_valid(p, 1))
                *p = '-';
        if (port == 0)
            /* Port 0 picks a free port: the name must still be unique. */
            snprintf(cc->node, sizeof(cc->node), "%.40s:pid%ld", host, (long)getpid());
    }
    cc->retain = cfg->retain_messages;
    cc->retain_days = cfg->retain_days;
    cfg->cluster = cc;
    return 0;
}

void server_cluster_free(server_config_t *cfg) {
    free(cfg->cluster);
    cfg->cluster = NULL;
}
