/* Accounts, login tokens and read markers in Redis, for a cluster (store.h:
 * store_config_t.redis): the same functions as store_accounts.c, so every
 * node sees one set of accounts. They run where the SQLite ones do, on the
 * thread that owns the store (the asynchronous front's worker), on a
 * blocking hiredis connection of that thread's with a timeout, opened at
 * the first call and again after a failure; never on the event loop.
 *
 * Each function is one Lua script (EVAL: Redis caches it by its SHA), so
 * it is one atomic step, as each SQLite one is one transaction:
 *
 *   tt:acct:next            the last account id given
 *   tt:acct:nick:<folded>   an account's id by its nickname (any case)
 *   tt:acct:<id>            hash: nick, hash (password, "" for none), created, updated
 *   tt:acct:<id>:tokens     set: its tokens' hashes (hex)
 *   tt:token:<hex>          hash: acct, created, last (ms); expires unused
 *   tt:read:<id>            hash: marker key -> message id */
#include "store/store_int.h"

#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "core/hex.h"
#include "core/log.h"
#include "core/xmalloc.h"

#define REDIS_TIMEOUT_MS 2000

struct store_redis_s {
    store_redis_config_t cfg;
    char *host, *path, *password, *node;
    char mod_channel[32];
    redisContext *ctx;
    uint64_t failures_logged;
};

int store__redis_open(store_t *st, const store_redis_config_t *cfg) {
    store_redis_t *r = xcalloc(1, sizeof(*r));
    r->cfg = *cfg;
    r->host = cfg->host != NULL ? xstrdup(cfg->host) : NULL;
    r->path = cfg->path != NULL ? xstrdup(cfg->path) : NULL;
    r->password = cfg->password != NULL ? xstrdup(cfg->password) : NULL;
    r->node = xstrdup(cfg->node != NULL ? cfg->node : "");
    /* Channels are one namespace for every database of a Redis: with
     * another database than 0 the name carries its number (as the
     * cluster's room channels do). */
    if (cfg->db != 0)
        snprintf(r->mod_channel, sizeof(r->mod_channel), "tt:%d:mod", cfg->db);
    else
        snprintf(r->mod_channel, sizeof(r->mod_channel), "tt:mod");
    st->redis = r;
    return 0;
}

void store__redis_close(store_t *st) {
    store_redis_t *r = st->redis;
    if (r == NULL)
        return;
    if (r->ctx != NULL)
        redisFree(r->ctx);
    free(r->host);
    free(r->path);
    free(r->password);
    free(r->node);
    free(r);
    st->redis = NULL;
}

const char *store__redis_mod_channel(const store_redis_t *r) {
    return r->mod_channel;
}

const char *store__redis_node(const store_redis_t *r) {
    return r->node;
}

static void fail(store_redis_t *r, const char *what, const char *why) {
    /* A Redis that is down fails every call: one line in a while. */
    if (r->failures_logged++ % 100 == 0)
        tt_log_error("store: cannot %s in redis: %s", what, why);
}

static void drop(store_redis_t *r) {
    if (r->ctx != NULL)
        redisFree(r->ctx);
    r->ctx = NULL;
}

/* A set-up command's reply (freed here): false, with the connection
 * dropped, when it failed. */
static bool setup(store_redis_t *r, const char *what, redisReply *rep) {
    bool ok = rep != NULL && rep->type != REDIS_REPLY_ERROR;
    if (!ok)
        fail(r, what, rep != NULL ? rep->str : r->ctx->errstr);
    freeReplyObject(rep);
    if (!ok)
        drop(r);
    return ok;
}

static bool connected(store_redis_t *r, const char *what) {
    if (r->ctx != NULL)
        return true;
    struct timeval tv = {.tv_sec = REDIS_TIMEOUT_MS / 1000,
                         .tv_usec = (REDIS_TIMEOUT_MS % 1000) * 1000};
    redisContext *c = r->path != NULL ? redisConnectUnixWithTimeout(r->path, tv)
                                      : redisConnectWithTimeout(r->host, r->cfg.port, tv);
    if (c == NULL || c->err) {
        fail(r, what, c != NULL ? c->errstr : "out of memory");
        if (c != NULL)
            redisFree(c);
        return false;
    }
    redisSetTimeout(c, tv);
    r->ctx = c;
    if (r->password != NULL && r->password[0] != '\0' &&
        !setup(r, what, redisCommand(c, "AUTH %s", r->password)))
        return false;
    if (r->cfg.db != 0 && !setup(r, what, redisCommand(c, "SELECT %d", r->cfg.db)))
        return false;
    return true;
}

struct redisContext *store__redis_conn(store_redis_t *r, const char *what) {
    return connected(r, what) ? r->ctx : NULL;
}

void store__redis_drop(store_redis_t *r) {
    drop(r);
}

/* Runs script with argv[0..argc) as its ARGV (no keys: the script names
 * them). Returns the reply (free it), or NULL after logging (the
 * connection is dropped, and opened again next time). */
redisReply *store__redis_eval(store_redis_t *r, const char *what, const char *script, int argc,
                              const char **argv, const size_t *lens) {
    if (!connected(r, what))
        return NULL;
    const char *av[3 + STORE_REDIS_ARGS_MAX];
    size_t al[3 + STORE_REDIS_ARGS_MAX];
    av[0] = "EVAL";
    al[0] = 4;
    av[1] = script;
    al[1] = strlen(script);
    av[2] = "0";
    al[2] = 1;
    for (int i = 0; i < argc && i < STORE_REDIS_ARGS_MAX; i++) {
        av[3 + i] = argv[i];
        al[3 + i] = lens[i];
    }
    if (argc > STORE_REDIS_ARGS_MAX)
        argc = STORE_REDIS_ARGS_MAX;
    redisReply *rep = redisCommandArgv(r->ctx, 3 + argc, av, al);
    if (rep == NULL) {
        /* A connection that went stale (Redis restarted, an idle link cut)
         * fails its first command: once more, on a new one. */
        drop(r);
        if (connected(r, what))
            rep = redisCommandArgv(r->ctx, 3 + argc, av, al);
        if (rep == NULL) {
            fail(r, what, r->ctx != NULL ? r->ctx->errstr : "not connected");
            drop(r);
            return NULL;
        }
    }
    if (rep->type == REDIS_REPLY_ERROR) {
        fail(r, what, rep->str);
        freeReplyObject(rep);
        return NULL;
    }
    return rep;
}

int64_t store__redis_int(const redisReply *r) {
    if (r->type == REDIS_REPLY_INTEGER)
        return r->integer;
    if (r->type == REDIS_REPLY_STRING)
        return strtoll(r->str, NULL, 10);
    return 0;
}

/* An account from a reply of {id, nick, hash, created, updated}. */
static int read_account(const redisReply *rep, store_account_t *out) {
    if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 5 ||
        rep->element[1]->type != REDIS_REPLY_STRING || rep->element[2]->type != REDIS_REPLY_STRING)
        return STORE_E_INTERNAL;
    if (out == NULL)
        return 0;
    memset(out, 0, sizeof(*out));
    out->id = store__redis_int(rep->element[0]);
    snprintf(out->nick, sizeof(out->nick), "%s", rep->element[1]->str);
    snprintf(out->hash, sizeof(out->hash), "%s", rep->element[2]->str);
    out->created = store__redis_int(rep->element[3]);
    out->updated = store__redis_int(rep->element[4]);
    return 0;
}

#define ACCOUNT_FIELDS                                                                             \
    "local function account(id) "                                                                  \
    "local a = redis.call('HMGET', 'tt:acct:' .. id, 'nick', 'hash', 'created', 'updated') "       \
    "return {tonumber(id), a[1], a[2], a[3], a[4]} end "

int store__redis_account_create(store_t *st, const char *nick, size_t len, const char *hash,
                                int64_t now_ms, store_account_t *out) {
    static const char script[] =
        "local f = 'tt:acct:nick:' .. string.lower(ARGV[1]) "
        "if redis.call('EXISTS', f) == 1 then return 0 end "
        "local id = redis.call('INCR', 'tt:acct:next') "
        "redis.call('SET', f, id) "
        "redis.call('HSET', 'tt:acct:' .. id, 'nick', ARGV[1], 'hash', ARGV[2], "
        "'created', ARGV[3], 'updated', ARGV[3]) "
        "return id";
    char now[24];
    snprintf(now, sizeof(now), "%" PRId64, now_ms);
    const char *h = hash != NULL ? hash : "";
    const char *argv[] = {nick, h, now};
    size_t lens[] = {len, strlen(h), strlen(now)};
    redisReply *rep = store__redis_eval(st->redis, "create an account", script, 3, argv, lens);
    if (rep == NULL)
        return STORE_E_UNAVAILABLE;
    int64_t id = store__redis_int(rep);
    freeReplyObject(rep);
    if (id == 0)
        return STORE_E_EXISTS;
    if (out != NULL) {
        memset(out, 0, sizeof(*out));
        out->id = id;
        memcpy(out->nick, nick, len);
        snprintf(out->hash, sizeof(out->hash), "%s", h);
        out->created = out->updated = now_ms;
    }
    return 0;
}

int store__redis_account_get(store_t *st, const char *nick, size_t len, store_account_t *out) {
    static const char script[] =
        ACCOUNT_FIELDS "local id = redis.call('GET', 'tt:acct:nick:' .. string.lower(ARGV[1])) "
                       "if not id then return 0 end "
                       "return account(id)";
    const char *argv[] = {nick};
    size_t lens[] = {len};
    redisReply *rep = store__redis_eval(st->redis, "read an account", script, 1, argv, lens);
    if (rep == NULL)
        return STORE_E_UNAVAILABLE;
    int rc = rep->type == REDIS_REPLY_INTEGER ? STORE_E_NOTFOUND : read_account(rep, out);
    freeReplyObject(rep);
    return rc;
}

int store__redis_account_set_hash(store_t *st, int64_t account, const char *hash, int64_t now_ms,
                                  bool revoke_tokens) {
    static const char script[] = "local a = 'tt:acct:' .. ARGV[1] "
                                 "if redis.call('EXISTS', a) == 0 then return 0 end "
                                 "redis.call('HSET', a, 'hash', ARGV[2], 'updated', ARGV[3]) "
                                 "if ARGV[4] == '1' then "
                                 "for _, t in ipairs(redis.call('SMEMBERS', a .. ':tokens')) do "
                                 "redis.call('DEL', 'tt:token:' .. t) end "
                                 "redis.call('DEL', a .. ':tokens') end "
                                 "return 1";
    char id[24], now[24];
    snprintf(id, sizeof(id), "%" PRId64, account);
    snprintf(now, sizeof(now), "%" PRId64, now_ms);
    const char *h = hash != NULL ? hash : "";
    const char *argv[] = {id, h, now, revoke_tokens ? "1" : "0"};
    size_t lens[] = {strlen(id), strlen(h), strlen(now), 1};
    redisReply *rep = store__redis_eval(st->redis, "change a password", script, 4, argv, lens);
    if (rep == NULL)
        return STORE_E_UNAVAILABLE;
    int64_t ok = store__redis_int(rep);
    freeReplyObject(rep);
    return ok == 1 ? 0 : STORE_E_NOTFOUND;
}

int store__redis_token_add(store_t *st, int64_t account, const uint8_t hash[32], int64_t now_ms) {
    /* An unused token expires by itself: the maintenance pass SQLite needs
     * is Redis's key expiry here. */
    static const char script[] =
        "local a = 'tt:acct:' .. ARGV[1] "
        "if redis.call('EXISTS', a) == 0 then return 0 end "
        "local t = 'tt:token:' .. ARGV[2] "
        "if redis.call('EXISTS', t) == 1 then return -1 end "
        "redis.call('HSET', t, 'acct', ARGV[1], 'created', ARGV[3], 'last', ARGV[3]) "
        "if tonumber(ARGV[4]) > 0 then redis.call('PEXPIRE', t, ARGV[4]) end "
        "redis.call('SADD', a .. ':tokens', ARGV[2]) "
        "return 1";
    char id[24], h[65], now[24], ttl[24];
    snprintf(id, sizeof(id), "%" PRId64, account);
    tt_hex(hash, 32, h);
    snprintf(now, sizeof(now), "%" PRId64, now_ms);
    snprintf(ttl, sizeof(ttl), "%" PRId64, st->redis->cfg.token_idle_ms);
    const char *argv[] = {id, h, now, ttl};
    size_t lens[] = {strlen(id), 64, strlen(now), strlen(ttl)};
    redisReply *rep = store__redis_eval(st->redis, "store a token", script, 4, argv, lens);
    if (rep == NULL)
        return STORE_E_UNAVAILABLE;
    int64_t ok = store__redis_int(rep);
    freeReplyObject(rep);
    return ok == 1 ? 0 : ok == 0 ? STORE_E_NOTFOUND : STORE_E_EXISTS;
}

int store__redis_token_use(store_t *st, const uint8_t hash[32], int64_t now_ms, int64_t max_idle_ms,
                           store_account_t *out) {
    static const char script[] = ACCOUNT_FIELDS
        "local t = 'tt:token:' .. ARGV[1] "
        "local v = redis.call('HMGET', t, 'acct', 'last') "
        "if not v[1] then return 0 end "
        "if tonumber(ARGV[2]) - tonumber(v[2]) > tonumber(ARGV[3]) then "
        "redis.call('DEL', t) redis.call('SREM', 'tt:acct:' .. v[1] .. ':tokens', ARGV[1]) "
        "return 0 end "
        "if redis.call('EXISTS', 'tt:acct:' .. v[1]) == 0 then return 0 end "
        "redis.call('HSET', t, 'last', ARGV[2]) "
        "redis.call('PEXPIRE', t, ARGV[3]) "
        "return account(v[1])";
    char h[65], now[24], idle[24];
    tt_hex(hash, 32, h);
    snprintf(now, sizeof(now), "%" PRId64, now_ms);
    snprintf(idle, sizeof(idle), "%" PRId64, max_idle_ms);
    const char *argv[] = {h, now, idle};
    size_t lens[] = {64, strlen(now), strlen(idle)};
    redisReply *rep = store__redis_eval(st->redis, "use a token", script, 3, argv, lens);
    if (rep == NULL)
        return STORE_E_UNAVAILABLE;
    int rc = rep->type == REDIS_REPLY_INTEGER ? STORE_E_NOTFOUND : read_account(rep, out);
    freeReplyObject(rep);
    return rc;
}

int store__redis_token_revoke(store_t *st, const uint8_t hash[32]) {
    static const char script[] =
        "local t = 'tt:token:' .. ARGV[1] "
        "local a = redis.call('HGET', t, 'acct') "
        "if a then redis.call('SREM', 'tt:acct:' .. a .. ':tokens', ARGV[1]) end "
        "redis.call('DEL', t) return 1";
    char h[65];
    tt_hex(hash, 32, h);
    const char *argv[] = {h};
    size_t lens[] = {64};
    redisReply *rep = store__redis_eval(st->redis, "revoke a token", script, 1, argv, lens);
    if (rep == NULL)
        return STORE_E_UNAVAILABLE;
    freeReplyObject(rep);
    return 0;
}

int store__redis_tokens_revoke_all(store_t *st, int64_t account, uint64_t *revoked) {
    static const char script[] = "local s = 'tt:acct:' .. ARGV[1] .. ':tokens' "
                                 "local n = 0 "
                                 "for _, t in ipairs(redis.call('SMEMBERS', s)) do "
                                 "n = n + redis.call('DEL', 'tt:token:' .. t) end "
                                 "redis.call('DEL', s) return n";
    char id[24];
    snprintf(id, sizeof(id), "%" PRId64, account);
    const char *argv[] = {id};
    size_t lens[] = {strlen(id)};
    redisReply *rep = store__redis_eval(st->redis, "revoke tokens", script, 1, argv, lens);
    if (revoked != NULL)
        *revoked = 0;
    if (rep == NULL)
        return STORE_E_UNAVAILABLE;
    if (revoked != NULL)
        *revoked = (uint64_t)store__redis_int(rep);
    freeReplyObject(rep);
    return 0;
}

int store__redis_read_set(store_t *st, int64_t account, const char *key, size_t key_len,
                          int64_t up_to) {
    static const char script[] = "local m = 'tt:read:' .. ARGV[1] "
                                 "local cur = redis.call('HGET', m, ARGV[2]) "
                                 "if cur and tonumber(cur) >= tonumber(ARGV[3]) then return 0 end "
                                 "redis.call('HSET', m, ARGV[2], ARGV[3]) return 1";
    char id[24], up[24];
    snprintf(id, sizeof(id), "%" PRId64, account);
    snprintf(up, sizeof(up), "%" PRId64, up_to);
    const char *argv[] = {id, key, up};
    size_t lens[] = {strlen(id), key_len, strlen(up)};
    redisReply *rep = store__redis_eval(st->redis, "set a read marker", script, 3, argv, lens);
    if (rep == NULL)
        return STORE_E_UNAVAILABLE;
    freeReplyObject(rep);
    return 0;
}

int store__redis_read_get(store_t *st, int64_t account, const char *key, size_t key_len,
                          int64_t *up_to) {
    static const char script[] = "return redis.call('HGET', 'tt:read:' .. ARGV[1], ARGV[2])";
    char id[24];
    snprintf(id, sizeof(id), "%" PRId64, account);
    const char *argv[] = {id, key};
    size_t lens[] = {strlen(id), key_len};
    redisReply *rep = store__redis_eval(st->redis, "read a read marker", script, 2, argv, lens);
    if (rep == NULL)
        return STORE_E_UNAVAILABLE;
    *up_to = rep->type == REDIS_REPLY_STRING ? strtoll(rep->str, NULL, 10) : 0;
    freeReplyObject(rep);
    return 0;
}
