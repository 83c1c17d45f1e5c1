/* Moderation in Redis, for a cluster (store_mod.h's functions when
 * st->redis is set): every node reads and writes one set of owners, ops,
 * topics, bans and one audit log. On the store's worker thread, on its
 * blocking connection (store_redis.c), one Lua script per function.
 *
 *   tt:mod:rooms            set: the keys of the rooms that keep something
 *   tt:mod:room:<key>       hash: name, owner, ops (nicknames joined by
 *                           spaces), topic, topic_by, topic_ts
 *   tt:mod:bans:<key>       hash: a room's bans, "n:<nick folded>" → JSON
 *                           {t, a, u, ts, by, r} (target, address "1"/"0",
 *                           until, ts, by, reason)
 *   tt:mod:sbans            hash: the server-wide bans, "n:…" or "a:<address>"
 *   tt:mod:seq              the number of the last change
 *   tt:audit:next           the last audit id given
 *   tt:audit:<key> / :*     list: a room's (the server's) audit entries,
 *                           newest first, JSON, the newest STORE_AUDIT_KEEP
 *
 * A write applies the action, not the row the writing node computed: its
 * audit entry names it (create: the owner if the room has none; owner,
 * op, deop: the target; topic: the text; ban, unban: the ban), so two
 * nodes acting on one room at once both take effect, in the order Redis
 * ran them. The script then publishes the change on the moderation
 * channel with its number (tt:mod:seq) and the room's state after it;
 * every node applies that (cluster.c → chat_bus_mod), so all converge on
 * Redis's order, and a node that missed a number reads everything again
 * (the cluster's sync, which reads these keys too). */
#include "store/store_int.h"

#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/xmalloc.h"
#include "store/store_mod.h"

/* ---- writing ---- */

/* ARGV: 1 channel, 2 node, 3 scope (a room's key, '' server-wide), 4 the
 * room's name, 5 action, 6 by, 7 target, 8 reason, 9 until, 10 ts, 11 text,
 * 12 ban ('', 'put', 'drop'), 13 address ('1', '0'), 14 audit entries
 * kept, 15 ops at most, 16 audit ('1': write an entry). Returns the
 * change's number. */
static const char write_script[] =
    "local scope, act, by, target = ARGV[3], ARGV[5], ARGV[6], ARGV[7] "
    "local rk = 'tt:mod:room:' .. scope "
    "local bk = scope == '' and 'tt:mod:sbans' or ('tt:mod:bans:' .. scope) "
    "local function lower(s) return string.lower(s) end "
    "if scope ~= '' then "
    "  redis.call('HSETNX', rk, 'name', ARGV[4]) "
    "  local owner = redis.call('HGET', rk, 'owner') or '' "
    "  local ops = redis.call('HGET', rk, 'ops') or '' "
    "  if act == 'create' then "
    "    if owner == '' then redis.call('HSET', rk, 'owner', by) end "
    "  elseif act == 'owner' then "
    "    redis.call('HSET', rk, 'owner', target) "
    "  elseif act == 'op' or act == 'deop' then "
    "    local list, found = {}, false "
    "    for n in string.gmatch(ops, '[^ ]+') do "
    "      if lower(n) == lower(target) then found = true "
    "        if act == 'op' then list[#list + 1] = n end "
    "      else list[#list + 1] = n end "
    "    end "
    "    if act == 'op' and not found and lower(owner) ~= lower(target) and "
    "       #list < tonumber(ARGV[15]) then list[#list + 1] = target end "
    "    redis.call('HSET', rk, 'ops', table.concat(list, ' ')) "
    "  elseif act == 'topic' then "
    "    redis.call('HSET', rk, 'topic', ARGV[11], 'topic_by', by, 'topic_ts', ARGV[10]) "
    "  end "
    "end "
    "local field = (ARGV[13] == '1' and 'a:' or 'n:') .. lower(target) "
    "if ARGV[12] == 'put' then "
    "  redis.call('HSET', bk, field, cjson.encode({t = target, a = ARGV[13], u = ARGV[9], "
    "    ts = ARGV[10], by = by, r = ARGV[8]})) "
    "elseif ARGV[12] == 'drop' then "
    "  redis.call('HDEL', bk, field) "
    "end "
    "local row, keep = false, false "
    "if scope ~= '' then "
    "  local v = redis.call('HMGET', rk, 'name', 'owner', 'ops', 'topic', 'topic_by', 'topic_ts') "
    "  keep = (v[2] or '') ~= '' or (v[3] or '') ~= '' or (v[4] or '') ~= '' or "
    "    redis.call('HLEN', bk) > 0 "
    "  if keep then "
    "    redis.call('SADD', 'tt:mod:rooms', scope) "
    "    row = {name = v[1], owner = v[2] or '', ops = v[3] or '', topic = v[4] or '', "
    "      topic_by = v[5] or '', topic_ts = v[6] or '0'} "
    "  else "
    "    redis.call('DEL', rk) redis.call('SREM', 'tt:mod:rooms', scope) "
    "  end "
    "end "
    "if ARGV[16] == '1' then "
    "  local id = redis.call('INCR', 'tt:audit:next') "
    "  local ak = 'tt:audit:' .. (scope == '' and '*' or scope) "
    "  redis.call('LPUSH', ak, cjson.encode({id = id, ts = ARGV[10], by = by, action = act, "
    "    target = target, reason = ARGV[8], ['until'] = ARGV[9], text = ARGV[11]})) "
    "  redis.call('LTRIM', ak, 0, tonumber(ARGV[14]) - 1) "
    "end "
    "local seq = redis.call('INCR', 'tt:mod:seq') "
    "local ev = {seq = seq, node = ARGV[2], action = act, by = by, target = target, "
    "  reason = ARGV[8], ['until'] = ARGV[9], ts = ARGV[10], text = ARGV[11], "
    "  ban = ARGV[12], address = ARGV[13], keep = keep, row = row} "
    "if scope ~= '' then ev.room = ARGV[4] end "
    "redis.call('PUBLISH', ARGV[1], cjson.encode(ev)) "
    "return seq";

int store__redis_mod_write(store_t *st, const chat_mod_write_t *w) {
    const chat_audit_t *a = w->audit;
    const chat_mod_ban_t *b = w->ban;
    char scope[STORE_ROOM_MAX + 1] = "";
    const char *name = "";
    size_t name_len = 0;
    if (w->room != NULL || (b != NULL && b->room != NULL) || (a != NULL && a->room != NULL)) {
        name = w->room != NULL ? w->room->name : b != NULL && b->room != NULL ? b->room : a->room;
        name_len = w->room != NULL                ? w->room->name_len
                   : b != NULL && b->room != NULL ? b->room_len
                                                  : a->room_len;
        if (store_room_key(name, name_len, scope, sizeof(scope)) < 0)
            return STORE_E_INVALID;
    }
    /* The action and its fields: the audit entry's, else the ban's. */
    const char *act = a != NULL ? a->action : b != NULL ? (w->ban_drop ? "unban" : "ban") : "";
    size_t act_len = a != NULL ? a->action_len : strlen(act);
    const char *by = a != NULL ? a->by : b != NULL ? b->by : NULL;
    size_t by_len = a != NULL ? a->by_len : b != NULL ? b->by_len : 0;
    const char *target = b != NULL ? b->target : a != NULL ? a->target : NULL;
    size_t target_len = b != NULL ? b->target_len : a != NULL ? a->target_len : 0;
    const char *reason = b != NULL && !w->ban_drop ? b->reason : a != NULL ? a->reason : NULL;
    size_t reason_len = b != NULL && !w->ban_drop ? b->reason_len : a != NULL ? a->reason_len : 0;
    int64_t until = b != NULL ? b->until : a != NULL ? a->until : 0;
    int64_t ts = a != NULL ? a->ts : b != NULL ? b->ts : 0;
    char until_s[24], ts_s[24], keep_s[16], ops_s[16];
    snprintf(until_s, sizeof(until_s), "%" PRId64, until);
    snprintf(ts_s, sizeof(ts_s), "%" PRId64, ts);
    snprintf(keep_s, sizeof(keep_s), "%d", STORE_AUDIT_KEEP);
    snprintf(ops_s, sizeof(ops_s), "%d", CHAT_OPS_MAX);
    const char *ban = b == NULL ? "" : w->ban_drop ? "drop" : "put";
    const char *chan = store__redis_mod_channel(st->redis);
    const char *node = store__redis_node(st->redis);
    const char *argv[] = {chan,
                          node,
                          scope,
                          name,
                          act,
                          by != NULL ? by : "",
                          target != NULL ? target : "",
                          reason != NULL ? reason : "",
                          until_s,
                          ts_s,
                          a != NULL && a->text != NULL ? a->text : "",
                          ban,
                          b != NULL && b->address ? "1" : "0",
                          keep_s,
                          ops_s,
                          a != NULL ? "1" : "0"};
    size_t lens[] = {strlen(chan),
                     strlen(node),
                     strlen(scope),
                     name_len,
                     act_len,
                     by != NULL ? by_len : 0,
                     target != NULL ? target_len : 0,
                     reason != NULL ? reason_len : 0,
                     strlen(until_s),
                     strlen(ts_s),
                     a != NULL && a->text != NULL ? a->text_len : 0,
                     strlen(ban),
                     1,
                     strlen(keep_s),
                     strlen(ops_s),
                     1};
    redisReply *rep =
        store__redis_eval(st->redis, "store a moderation action", write_script, 16, argv, lens);
    if (rep == NULL)
        return STORE_E_UNAVAILABLE;
    freeReplyObject(rep);
    return 0;
}

/* ---- loading ---- */

/* A page of kept rooms with their bans: ARGV[1] the SSCAN cursor, ARGV[2]
 * now (ended bans are dropped on the way). Returns {cursor, {room, bans}
 * ...}: room {name, owner, ops, topic, topic_by, topic_ts}, each ban
 * {address, target, until, ts, by, reason}. With scope '*' (ARGV[1]
 * ignored) the server-wide bans: {'0', {{}, bans}}. */
#define LOAD_BANS                                                                                  \
    "local function bans(bk, now) "                                                                \
    "  local out, all = {}, redis.call('HGETALL', bk) "                                            \
    "  for i = 1, #all, 2 do "                                                                     \
    "    local ok, b = pcall(cjson.decode, all[i + 1]) "                                           \
    "    if not ok or type(b) ~= 'table' then redis.call('HDEL', bk, all[i]) "                     \
    "    elseif tonumber(b.u) ~= 0 and tonumber(b.u) <= now then redis.call('HDEL', bk, all[i]) "  \
    "    else out[#out + 1] = {b.a, b.t, b.u, b.ts, b.by, b.r} end "                               \
    "  end "                                                                                       \
    "  return out "                                                                                \
    "end "

static const char load_script[] =
    LOAD_BANS "local now = tonumber(ARGV[2]) "
              "if ARGV[3] == '*' then return {'0', {{}, bans('tt:mod:sbans', now)}} end "
              "local r = redis.call('SSCAN', 'tt:mod:rooms', ARGV[1], 'COUNT', 100) "
              "local out = {r[1]} "
              "for _, k in ipairs(r[2]) do "
              "  local v = redis.call('HMGET', 'tt:mod:room:' .. k, 'name', 'owner', 'ops', "
              "    'topic', 'topic_by', 'topic_ts') "
              "  if v[1] then "
              "    out[#out + 1] = {{v[1], v[2] or '', v[3] or '', v[4] or '', v[5] or '', "
              "      v[6] or '0'}, bans('tt:mod:bans:' .. k, now)} "
              "  end "
              "end "
              "return out";

static bool str_at(const redisReply *r, size_t i, const char **p, size_t *len) {
    if (r == NULL || r->type != REDIS_REPLY_ARRAY || i >= r->elements ||
        r->element[i]->type != REDIS_REPLY_STRING)
        return false;
    *p = r->element[i]->str;
    *len = r->element[i]->len;
    return true;
}

/* Hands page's rooms and bans (room: NULL for the server-wide ones) over. */
static void load_page(const redisReply *page, bool server, chat_mod_room_cb room_cb,
                      chat_mod_ban_cb ban_cb, void *arg) {
    for (size_t i = 1; i < page->elements; i++) {
        const redisReply *e = page->element[i];
        if (e->type != REDIS_REPLY_ARRAY || e->elements != 2)
            continue;
        const redisReply *row = e->element[0], *bl = e->element[1];
        chat_mod_room_t r = {0};
        if (!server) {
            const char *ts = NULL;
            size_t ts_len;
            if (!str_at(row, 0, &r.name, &r.name_len) || !str_at(row, 1, &r.owner, &r.owner_len) ||
                !str_at(row, 2, &r.ops, &r.ops_len) || !str_at(row, 3, &r.topic, &r.topic_len) ||
                !str_at(row, 4, &r.topic_by, &r.topic_by_len) || !str_at(row, 5, &ts, &ts_len))
                continue;
            r.topic_ts = strtoll(ts, NULL, 10);
            room_cb(arg, &r);
        }
        for (size_t j = 0; bl->type == REDIS_REPLY_ARRAY && j < bl->elements; j++) {
            const redisReply *b = bl->element[j];
            chat_mod_ban_t ban = {.room = server ? NULL : r.name, .room_len = r.name_len};
            const char *addr, *until, *ts;
            size_t addr_len, until_len, ts_len;
            if (!str_at(b, 0, &addr, &addr_len) || !str_at(b, 1, &ban.target, &ban.target_len) ||
                !str_at(b, 2, &until, &until_len) || !str_at(b, 3, &ts, &ts_len) ||
                !str_at(b, 4, &ban.by, &ban.by_len) || !str_at(b, 5, &ban.reason, &ban.reason_len))
                continue;
            ban.address = addr_len == 1 && addr[0] == '1';
            ban.until = strtoll(until, NULL, 10);
            ban.ts = strtoll(ts, NULL, 10);
            ban_cb(arg, &ban);
        }
    }
}

int store__redis_mod_load(store_t *st, int64_t now_ms, chat_mod_room_cb room, chat_mod_ban_cb ban,
                          void *arg) {
    char now[24], cursor[32] = "0";
    snprintf(now, sizeof(now), "%" PRId64, now_ms);
    /* The server-wide bans, then the rooms a page at a time (SSCAN: every
     * room kept all along is seen at least once). */
    for (int server = 1;; server = 0) {
        const char *argv[] = {cursor, now, server ? "*" : ""};
        size_t lens[] = {strlen(cursor), strlen(now), server ? 1 : 0};
        redisReply *rep =
            store__redis_eval(st->redis, "load moderation", load_script, 3, argv, lens);
        if (rep == NULL) {
            /* Not fatal: a node may start before its Redis. The cluster
             * reads moderation once it is up (cluster.c, its sync), and
             * takes no login before. */
            tt_log_warn("store: moderation is read from redis once it answers");
            return 0;
        }
        const char *next;
        size_t next_len;
        if (!str_at(rep, 0, &next, &next_len) || next_len >= sizeof(cursor)) {
            freeReplyObject(rep);
            return STORE_E_INTERNAL;
        }
        load_page(rep, server, room, ban, arg);
        memcpy(cursor, next, next_len);
        cursor[next_len] = '\0';
        freeReplyObject(rep);
        if (!server && strcmp(cursor, "0") == 0)
            return 0;
    }
}

/* ---- the audit log ---- */

/* ARGV: 1 scope ('*' server-wide), 2 before (0: none), 3 limit. The
 * newest limit + 1 entries with id < before, newest first, each {id, ts,
 * by, action, target, reason, until, text}. */
static const char audit_script[] =
    "local ak, before, want = 'tt:audit:' .. ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]) + 1 "
    "local out, pos = {}, 0 "
    "while #out < want do "
    "  local page = redis.call('LRANGE', ak, pos, pos + 255) "
    "  if #page == 0 then break end "
    "  pos = pos + #page "
    "  for _, j in ipairs(page) do "
    "    local ok, e = pcall(cjson.decode, j) "
    "    if ok and type(e) == 'table' and (before == 0 or tonumber(e.id) < before) then "
    "      out[#out + 1] = {tostring(e.id), e.ts, e.by, e.action, e.target, e.reason, "
    "        e['until'], e.text} "
    "      if #out == want then break end "
    "    end "
    "  end "
    "end "
    "return out";

int store__redis_audit_read(store_t *st, const char *scope, uint64_t before, unsigned limit,
                            store__audit_cb cb, void *ctx, bool *more) {
    char before_s[24], limit_s[16];
    snprintf(before_s, sizeof(before_s), "%" PRIu64, before);
    snprintf(limit_s, sizeof(limit_s), "%u", limit);
    const char *sc = scope[0] != '\0' ? scope : "*";
    const char *argv[] = {sc, before_s, limit_s};
    size_t lens[] = {strlen(sc), strlen(before_s), strlen(limit_s)};
    redisReply *rep =
        store__redis_eval(st->redis, "read the audit log", audit_script, 3, argv, lens);
    if (rep == NULL)
        return STORE_E_UNAVAILABLE;
    if (rep->type != REDIS_REPLY_ARRAY) {
        freeReplyObject(rep);
        return STORE_E_INTERNAL;
    }
    size_t n = rep->elements > limit ? limit : rep->elements;
    if (more != NULL)
        *more = rep->elements > limit;
    /* Oldest first, as the SQLite one hands them over. */
    for (size_t i = n; i-- > 0;) {
        const redisReply *e = rep->element[i];
        const char *f[8];
        size_t l[8];
        bool ok = true;
        for (size_t k = 0; k < 8 && ok; k++)
            ok = str_at(e, k, &f[k], &l[k]);
        if (!ok)
            continue;
        chat_audit_t a = {.id = strtoull(f[0], NULL, 10),
                          .ts = strtoll(f[1], NULL, 10),
                          .room = NULL,
                          .by = f[2],
                          .by_len = l[2],
                          .action = f[3],
                          .action_len = l[3],
                          .target = l[4] > 0 ? f[4] : NULL,
                          .target_len = l[4],
                          .reason = l[5] > 0 ? f[5] : NULL,
                          .reason_len = l[5],
                          .until = strtoll(f[6], NULL, 10),
                          .text = l[7] > 0 ? f[7] : NULL,
                          .text_len = l[7]};
        cb(ctx, &a);
    }
    freeReplyObject(rep);
    return 0;
}
