/* The cluster's formats (cluster_wire.h). */
#include "cluster/cluster_wire.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void say(char *err, size_t errlen, const char *what) {
    if (errlen > 0)
        snprintf(err, errlen, "%s", what);
}

static bool digits_int(const char *p, size_t n, long max, long *out) {
    if (n == 0 || n > 9)
        return false;
    long v = 0;
    for (size_t i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9')
            return false;
        v = v * 10 + (p[i] - '0');
    }
    if (v > max)
        return false;
    *out = v;
    return true;
}

/* %XX escapes in the password part, so any byte can be written. */
static bool unescape(const char *p, size_t n, char *out, size_t cap) {
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        char c = p[i];
        if (c == '%') {
            if (i + 2 >= n)
                return false;
            char hex[3] = {p[i + 1], p[i + 2], 0};
            char *end;
            long v = strtol(hex, &end, 16);
            if (*end != '\0' || v == 0)
                return false;
            c = (char)v;
            i += 2;
        }
        if (o + 1 >= cap)
            return false;
        out[o++] = c;
    }
    out[o] = '\0';
    return true;
}

bool cluster_url_parse(const char *url, cluster_url_t *out, char *err, size_t errlen) {
    memset(out, 0, sizeof(*out));
    out->port = 6379;
    if (strncmp(url, "unix:", 5) == 0) {
        const char *path = url + 5;
        /* unix:///run/redis.sock and unix:/run/redis.sock alike. */
        if (strncmp(path, "//", 2) == 0)
            path += 2;
        size_t n = strlen(path);
        if (n == 0 || path[0] != '/') {
            say(err, errlen, "a unix: URL needs an absolute socket path (unix:/run/redis.sock)");
            return false;
        }
        if (n > CLUSTER_PATH_MAX) {
            say(err, errlen, "the socket path is too long");
            return false;
        }
        memcpy(out->path, path, n + 1);
        return true;
    }
    if (strncmp(url, "redis://", 8) != 0) {
        say(err, errlen, "the URL must start with redis:// or unix:");
        return false;
    }
    const char *p = url + 8;
    const char *at = strrchr(p, '@');
    if (at != NULL) {
        /* [user]:password@ — Redis 6's ACL user names are not used. */
        const char *colon = memchr(p, ':', (size_t)(at - p));
        if (colon == NULL || colon + 1 == at) {
            say(err, errlen, "write the password as redis://:PASSWORD@host");
            return false;
        }
        if (!unescape(colon + 1, (size_t)(at - colon - 1), out->password, sizeof(out->password))) {
            say(err, errlen, "the password is too long or badly escaped");
            return false;
        }
        p = at + 1;
    }
    const char *slash = strchr(p, '/');
    const char *hostend = slash != NULL ? slash : p + strlen(p);
    const char *colon = NULL;
    for (const char *q = p; q < hostend; q++)
        if (*q == ':')
            colon = q;
    const char *hend = colon != NULL ? colon : hostend;
    size_t hn = (size_t)(hend - p);
    if (hn == 0 || hn > CLUSTER_HOST_MAX) {
        say(err, errlen, "the URL names no host (redis://host:port/db)");
        return false;
    }
    for (size_t i = 0; i < hn; i++) {
        char c = p[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '-' || c == '_')) {
            say(err, errlen, "the host name holds a character a host name cannot");
            return false;
        }
    }
    memcpy(out->host, p, hn);
    out->host[hn] = '\0';
    if (colon != NULL) {
        long port;
        if (!digits_int(colon + 1, (size_t)(hostend - colon - 1), 65535, &port) || port == 0) {
            say(err, errlen, "the port must be a number from 1 to 65535");
            return false;
        }
        out->port = (int)port;
    }
    if (slash != NULL && slash[1] != '\0') {
        long db;
        if (!digits_int(slash + 1, strlen(slash + 1), 1000, &db)) {
            say(err, errlen, "the database must be a number (redis://host:port/0)");
            return false;
        }
        out->db = (int)db;
    }
    return true;
}

static bool name_char(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '-' || c == '.';
}

bool cluster_node_name_valid(const char *name, size_t len) {
    if (len == 0 || len > CLUSTER_NODE_MAX)
        return false;
    for (size_t i = 0; i < len; i++)
        if (!name_char(name[i]) && name[i] != ':')
            return false;
    return true;
}

size_t cluster_room_key(const char *name, size_t len, char *out) {
    if (len > 0 && name[0] == '#') {
        name++;
        len--;
    }
    if (len > 64)
        len = 64;
    for (size_t i = 0; i < len; i++) {
        char c = name[i];
        out[i] = c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
    }
    return len;
}

size_t cluster_body_format(char *out, size_t cap, int64_t ts, const char *node, uint64_t token,
                           const char *from, size_t from_len, const char *room, size_t room_len,
                           const char *mentions, size_t mentions_len, const char *text,
                           size_t text_len) {
    int n = snprintf(out, cap, "%lld %s %llu %.*s %.*s ", (long long)ts, node,
                     (unsigned long long)token, (int)from_len, from, (int)room_len, room);
    if (n < 0 || (size_t)n >= cap)
        return 0;
    size_t at = (size_t)n;
    if (mentions_len == 0) {
        mentions = "-";
        mentions_len = 1;
    }
    if (at + mentions_len + 1 + text_len > cap)
        return 0;
    memcpy(out + at, mentions, mentions_len);
    at += mentions_len;
    out[at++] = ' ';
    memcpy(out + at, text, text_len);
    return at + text_len;
}

/* The next field: up to the next space, which must be there. */
static bool field(const char **p, const char *end, const char **f, size_t *n) {
    const char *sp = memchr(*p, ' ', (size_t)(end - *p));
    if (sp == NULL || sp == *p)
        return false;
    *f = *p;
    *n = (size_t)(sp - *p);
    *p = sp + 1;
    return true;
}

static bool number(const char **p, const char *end, uint64_t max, uint64_t *out) {
    const char *f;
    size_t n;
    if (!field(p, end, &f, &n) || n > 19)
        return false;
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (f[i] < '0' || f[i] > '9')
            return false;
        v = v * 10 + (uint64_t)(f[i] - '0');
    }
    if (v > max)
        return false;
    *out = v;
    return true;
}

static bool names(const char *f, size_t n, size_t max, bool list) {
    if (n == 0 || n > max || (n == 1 && f[0] == '#'))
        return false; /* "#" alone is no room's name */
    for (size_t i = 0; i < n; i++)
        if (!name_char(f[i]) && !(list && f[i] == ',') && !(i == 0 && f[i] == '#'))
            return false;
    return true;
}

bool cluster_msg_parse(const char *p, size_t len, cluster_msg_t *m) {
    const char *end = p + len;
    const uint64_t id_max = (1ull << 53) - 1;
    uint64_t ts;
    memset(m, 0, sizeof(*m));
    if (!number(&p, end, id_max, &m->seq) || !number(&p, end, id_max, &m->id) ||
        !number(&p, end, (uint64_t)INT64_MAX, &ts) || !field(&p, end, &m->node, &m->node_len) ||
        !cluster_node_name_valid(m->node, m->node_len) || !number(&p, end, UINT64_MAX, &m->token) ||
        !field(&p, end, &m->from, &m->from_len) || !names(m->from, m->from_len, 32, false) ||
        m->from[0] == '#' || !field(&p, end, &m->room, &m->room_len) ||
        !names(m->room, m->room_len, 64, false) || !field(&p, end, &m->mentions, &m->mentions_len))
        return false;
    if (m->id == 0)
        return false; /* seq 0: a private message's (room messages start at 1) */
    if (m->mentions_len == 1 && m->mentions[0] == '-')
        m->mentions_len = 0;
    else if (!names(m->mentions, m->mentions_len, 34 * 10, true))
        return false;
    m->ts = (int64_t)ts;
    m->text = p;
    m->text_len = (size_t)(end - p);
    return m->text_len > 0;
}
