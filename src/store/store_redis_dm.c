/* Private conversations between accounts in Redis, for a cluster: what
 * store_range (on a conversation key) and store_conversations read from
 * SQLite on one node, read here from what the cluster's publish script
 * (src/cluster/publish.lua) stores with each such private, so every node
 * sees the same conversations, histories and unread counts:
 *
 *   tt:dm:<key>:log          stream: the conversation (key: store_dm_key's,
 *                            "@a@b"), entry <id>-0, field m = the payload
 *                            "0 <id> <ts> <node> <token> <from> <to> - <text>"
 *   tt:dm:<key>:by:<folded>  sorted set: the ids one side sent (unread counts)
 *   tt:dms:<folded>          sorted set: an account's conversations by last id
 *   tt:dms:<folded>:with     hash: conversation key -> the other side's spelling
 *   tt:read:<account>        hash: the read markers (store_redis.c writes them)
 *
 * Like store_redis.c, it runs on the thread that owns the store, on its
 * blocking connection (store__redis_eval), one atomic script per call. --retain-days
 * trims a conversation's oldest entries when it is read (and a few at each
 * new message): a reply never holds a message older than the cutoff. */
#include "store/store_int.h"

#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/xmalloc.h"

/* v in decimal in buf (24 bytes): its length. */
static size_t dm_num(char *buf, int64_t v) {
    return (size_t)snprintf(buf, 24, "%" PRId64, v);
}

/* The age cutoff of --retain-days (ms since the epoch), or 0. */
static int64_t dm_cutoff(const store_t *st) {
    uint32_t days = st->mcfg.retain_days;
    return days > 0 ? store__now_ms() - (int64_t)days * 86400 * 1000 : 0;
}

/* trim(key, cutoff): the conversation loses its entries older than cutoff
 * (0: none), in bounded steps (what is left stays out of replies, and the
 * next read goes on), and its unread sets what the stream lost. Returns
 * the two folded sides of the key (nil for a malformed one). */
#define DM_TRIM                                                                                    \
    "local function forget(eid) "                                                                  \
    "local old = tonumber(string.match(eid, '^%d+')) "                                             \
    "redis.call('HDEL', 'tt:idx:' .. math.floor(old / 100), old % 100) end "                       \
    "local function ts_of(e) "                                                                     \
    "return tonumber(string.match(e[2][2], '^%d+ %d+ (%-?%d+) ')) end "                            \
    "local function trim(key, cutoff) "                                                            \
    "local a, b = string.match(key, '^@([^@]+)@([^@]+)$') "                                        \
    "if a == nil then return nil end "                                                             \
    "local base = 'tt:dm:' .. key "                                                                \
    "local log = base .. ':log' "                                                                  \
    "local old = redis.call('XRANGE', log, '-', '+', 'COUNT', 1)[1] "                              \
    "if cutoff > 0 and old ~= nil and (ts_of(old) or cutoff) < cutoff then "                       \
    "for _ = 1, 16 do "                                                                            \
    "local es = redis.call('XRANGE', log, '-', '+', 'COUNT', 64) "                                 \
    "if #es == 0 then break end "                                                                  \
    "local keep = nil "                                                                            \
    "for _, e in ipairs(es) do "                                                                   \
    "if (ts_of(e) or cutoff) >= cutoff then keep = e[1] break end forget(e[1]) end "               \
    "if keep then redis.call('XTRIM', log, 'MINID', keep) break end "                              \
    "redis.call('XTRIM', log, 'MINID', "                                                           \
    "(tonumber(string.match(es[#es][1], '^%d+')) + 1) .. '-0') end "                               \
    "local first = redis.call('XRANGE', log, '-', '+', 'COUNT', 1)[1] "                            \
    "local floor = first and ('(' .. string.match(first[1], '^%d+')) or '+inf' "                   \
    "redis.call('ZREMRANGEBYSCORE', base .. ':by:' .. a, '-inf', floor) "                          \
    "redis.call('ZREMRANGEBYSCORE', base .. ':by:' .. b, '-inf', floor) end "                      \
    "return a, b end "

int store__redis_dm_range(store_t *st, const char *key, size_t key_len, int64_t after_id,
                          int64_t before_id, unsigned limit, store_rec_cb cb, void *ctx,
                          bool *more) {
    /* ARGV: key, after, before (0: none), limit, cutoff. Returns {more,
     * then id, ts, from, to, text, edited_ts, deleted of each, newest
     * first}: an edited entry has field e (its edit time), a deleted one
     * is a marker with field d (cluster.c's change script). */
    static const char script[] = DM_TRIM
        "local cutoff = tonumber(ARGV[5]) "
        "trim(ARGV[1], cutoff) "
        "local hi = ARGV[3] == '0' and '+' or ('(' .. ARGV[3] .. '-0') "
        "local lo = ARGV[2] == '0' and '-' or ('(' .. ARGV[2] .. '-0') "
        "local limit = tonumber(ARGV[4]) "
        "local es = redis.call('XREVRANGE', 'tt:dm:' .. ARGV[1] .. ':log', hi, lo, "
        "'COUNT', limit + 1) "
        "local out = {0} "
        "for i, e in ipairs(es) do "
        "local id, ts, from, to, text = string.match(e[2][2], "
        "'^%d+ (%d+) (%-?%d+) %S+ %S+ (%S+) (%S+) %S+ (.*)$') "
        "if id ~= nil and tonumber(ts) < cutoff then break end "
        "if i > limit then out[1] = 1 break end "
        "if id ~= nil then "
        "local ed, del = '0', '0' "
        "for j = 3, #e[2], 2 do "
        "if e[2][j] == 'e' then ed = e[2][j + 1] elseif e[2][j] == 'd' then del = '1' end end "
        "if del == '1' then text = '' end "
        "out[#out + 1] = id out[#out + 1] = ts out[#out + 1] = from "
        "out[#out + 1] = to out[#out + 1] = text out[#out + 1] = ed "
        "out[#out + 1] = del end end "
        "return out";
    char k[STORE_ROOM_MAX + 1], lo[24], hi[24], lim[24], cut[24];
    if (key_len > STORE_ROOM_MAX)
        return STORE_E_INVALID;
    memcpy(k, key, key_len);
    k[key_len] = '\0';
    const char *args[] = {k, lo, hi, lim, cut};
    size_t lens[] = {key_len, dm_num(lo, after_id), dm_num(hi, before_id), dm_num(lim, limit),
                     dm_num(cut, dm_cutoff(st))};
    redisReply *rep = store__redis_eval(st->redis, "read a conversation", script, 5, args, lens);
    if (rep == NULL)
        return STORE_E_UNAVAILABLE;
    int rc = STORE_E_INTERNAL;
    if (rep->type == REDIS_REPLY_ARRAY && rep->elements >= 1 && rep->elements % 7 == 1) {
        size_t n = rep->elements / 7;
        rc = 0;
        for (size_t i = 0; i < n && rc == 0; i++)
            for (size_t f = 0; f < 7; f++)
                if (rep->element[1 + 7 * i + f]->type != REDIS_REPLY_STRING)
                    rc = STORE_E_INTERNAL;
        /* Oldest first, as store_range delivers. */
        for (size_t i = n; i-- > 0 && rc == 0;) {
            redisReply *const *e = &rep->element[1 + 7 * i];
            store_rec_t r = {.id = strtoll(e[0]->str, NULL, 10),
                             .ts = strtoll(e[1]->str, NULL, 10),
                             .kind = STORE_KIND_PRIVATE,
                             .room = k,
                             .room_len = key_len,
                             .from = e[2]->str,
                             .from_len = e[2]->len,
                             .to = e[3]->str,
                             .to_len = e[3]->len,
                             .text = e[4]->str,
                             .text_len = e[4]->len,
                             .edited_ts = strtoll(e[5]->str, NULL, 10),
                             .deleted = e[6]->str[0] == '1'};
            cb(ctx, &r);
        }
        if (rc == 0) {
            if (more != NULL)
                *more = rep->element[0]->type == REDIS_REPLY_INTEGER && rep->element[0]->integer;
            rc = (int)n;
        }
    }
    freeReplyObject(rep);
    return rc;
}

int store__redis_conversations(store_t *st, int64_t account, const char *owner, size_t owner_len,
                               unsigned limit, store_conv_cb cb, void *ctx) {
    /* ARGV: the owner's folded nickname, its account, limit, cutoff, the
     * unread cap. Returns {key, with, last id, unread} of each, newest
     * first. */
    static const char script[] =
        DM_TRIM "local owner, cutoff, cap = ARGV[1], tonumber(ARGV[4]), tonumber(ARGV[5]) "
                "local list = 'tt:dms:' .. owner "
                "local ks = redis.call('ZREVRANGE', list, 0, tonumber(ARGV[3]) - 1, 'WITHSCORES') "
                "local out = {} "
                "for i = 1, #ks, 2 do "
                "local key = ks[i] "
                "local a, b = trim(key, cutoff) "
                "if a ~= nil then "
                "local other = a == owner and b or a "
                "local unread = 0 "
                "if a ~= b then "
                "local mark = redis.call('HGET', 'tt:read:' .. ARGV[2], key) or '0' "
                "unread = redis.call('ZCOUNT', 'tt:dm:' .. key .. ':by:' .. other, "
                "'(' .. mark, '+inf') "
                "if unread > cap then unread = cap end end "
                "out[#out + 1] = key "
                "out[#out + 1] = redis.call('HGET', list .. ':with', key) or other "
                "out[#out + 1] = ks[i + 1] "
                "out[#out + 1] = unread end end "
                "return out";
    char acct[24], lim[24], cut[24], cap[24];
    const char *args[] = {owner, acct, lim, cut, cap};
    size_t lens[] = {owner_len, dm_num(acct, account), dm_num(lim, limit),
                     dm_num(cut, dm_cutoff(st)), dm_num(cap, STORE_UNREAD_MAX)};
    redisReply *rep = store__redis_eval(st->redis, "list conversations", script, 5, args, lens);
    if (rep == NULL)
        return STORE_E_UNAVAILABLE;
    int rc = STORE_E_INTERNAL;
    if (rep->type == REDIS_REPLY_ARRAY && rep->elements % 4 == 0) {
        rc = 0;
        for (size_t i = 0; i + 4 <= rep->elements && rc >= 0; i += 4) {
            redisReply *const *e = &rep->element[i];
            if (e[0]->type != REDIS_REPLY_STRING || e[1]->type != REDIS_REPLY_STRING ||
                e[2]->type != REDIS_REPLY_STRING || e[3]->type != REDIS_REPLY_INTEGER) {
                rc = STORE_E_INTERNAL;
                break;
            }
            store_conv_t c = {.key = e[0]->str,
                              .key_len = e[0]->len,
                              .with = e[1]->str,
                              .with_len = e[1]->len,
                              .last_id = strtoll(e[2]->str, NULL, 10),
                              .unread = (uint32_t)e[3]->integer};
            cb(ctx, &c);
            rc++;
        }
    }
    freeReplyObject(rep);
    return rc;
}
