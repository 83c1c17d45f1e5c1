/* The moderation channel's JSON (cluster_mod.h). */
#include "cluster/cluster_mod.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "core/xmalloc.h"

/* A string field of o (absent: "" when optional). */
static bool str(const json_t *o, const char *key, bool optional, const char **p, size_t *len) {
    const json_t *v = json_object_get(o, key);
    if (v == NULL && optional) {
        *p = "";
        *len = 0;
        return true;
    }
    if (!json_is_string(v))
        return false;
    *p = json_string_value(v);
    *len = json_string_length(v);
    return true;
}

/* A number: a JSON integer, or a string of digits (the scripts keep the
 * chat's numbers as they got them, as strings). */
static bool num(const json_t *o, const char *key, int64_t *out) {
    const json_t *v = json_object_get(o, key);
    if (json_is_integer(v)) {
        *out = json_integer_value(v);
        return *out >= 0;
    }
    if (!json_is_string(v))
        return false;
    const char *s = json_string_value(v);
    size_t n = json_string_length(v);
    if (n == 0 || n > 18)
        return false;
    int64_t x = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        x = x * 10 + (s[i] - '0');
    }
    *out = x;
    return true;
}

static bool room_row(const json_t *o, chat_mod_room_t *r) {
    memset(r, 0, sizeof(*r));
    return json_is_object(o) && str(o, "name", false, &r->name, &r->name_len) && r->name_len > 0 &&
           str(o, "owner", true, &r->owner, &r->owner_len) &&
           str(o, "ops", true, &r->ops, &r->ops_len) &&
           str(o, "topic", true, &r->topic, &r->topic_len) &&
           str(o, "topic_by", true, &r->topic_by, &r->topic_by_len) &&
           num(o, "topic_ts", &r->topic_ts);
}

/* A ban as the store keeps it: {t, a, u, ts, by, r}. */
static bool stored_ban(const json_t *o, const char *room, size_t room_len, chat_mod_ban_t *b) {
    memset(b, 0, sizeof(*b));
    const char *a;
    size_t alen;
    if (!json_is_object(o) || !str(o, "t", false, &b->target, &b->target_len) ||
        b->target_len == 0 || !str(o, "a", false, &a, &alen) || alen != 1 ||
        !num(o, "u", &b->until) || !num(o, "ts", &b->ts) ||
        !str(o, "by", true, &b->by, &b->by_len) || !str(o, "r", true, &b->reason, &b->reason_len))
        return false;
    b->address = a[0] == '1';
    b->room = room;
    b->room_len = room_len;
    return true;
}

/* cjson writes an empty table as {}: an empty list too. */
static bool list(const json_t *v) {
    return json_is_array(v) || (json_is_object(v) && json_object_size(v) == 0);
}

bool cluster_mod_parse(const char *p, size_t len, cluster_mod_ev_t *out) {
    memset(out, 0, sizeof(*out));
    json_t *o = json_loadb(p, len, JSON_REJECT_DUPLICATES, NULL);
    if (!json_is_object(o)) {
        json_decref(o);
        return false;
    }
    out->root = o;
    chat_bus_mod_t *ev = &out->ev;
    int64_t seq;
    const char *ban, *addr, *text;
    size_t ban_len, addr_len, text_len;
    int64_t ts;
    const json_t *keep = json_object_get(o, "keep");
    bool ok = num(o, "seq", &seq) && seq > 0 && str(o, "node", false, &out->node, &out->node_len) &&
              str(o, "action", false, &ev->action, &ev->action_len) &&
              str(o, "by", true, &ev->by, &ev->by_len) &&
              str(o, "target", true, &ev->target, &ev->target_len) &&
              str(o, "reason", true, &ev->reason, &ev->reason_len) &&
              str(o, "text", true, &text, &text_len) && num(o, "until", &ev->until) &&
              num(o, "ts", &ts) && str(o, "ban", true, &ban, &ban_len) &&
              str(o, "address", true, &addr, &addr_len) && json_is_boolean(keep);
    if (ok && json_object_get(o, "room") != NULL) {
        ok = str(o, "room", false, &ev->room, &ev->room_len) && ev->room_len > 0;
        if (ok && json_is_true(keep)) {
            ok = room_row(json_object_get(o, "row"), &out->row);
            ev->row = &out->row;
        }
    }
    if (ok && ban_len > 0) {
        ok = (ban_len == 3 && memcmp(ban, "put", 3) == 0) ||
             (ban_len == 4 && memcmp(ban, "drop", 4) == 0);
        ev->ban_drop = ban_len == 4;
        out->ban = (chat_mod_ban_t){.room = ev->room,
                                    .room_len = ev->room_len,
                                    .address = addr_len == 1 && addr[0] == '1',
                                    .target = ev->target,
                                    .target_len = ev->target_len,
                                    .until = ev->until,
                                    .ts = ts,
                                    .by = ev->by,
                                    .by_len = ev->by_len,
                                    .reason = ev->reason,
                                    .reason_len = ev->reason_len};
        ok = ok && ev->target_len > 0;
        ev->ban = &out->ban;
    }
    if (!ok) {
        cluster_mod_ev_free(out);
        return false;
    }
    out->seq = (uint64_t)seq;
    return true;
}

void cluster_mod_ev_free(cluster_mod_ev_t *e) {
    json_decref(e->root);
    e->root = NULL;
}

bool cluster_mod_page(const char *p, size_t len, bool *has_seq, uint64_t *seq, char *cursor,
                      void (*begin)(void *arg), cluster_mod_room_fn room, cluster_mod_ban_fn ban,
                      void *arg) {
    json_t *o = json_loadb(p, len, 0, NULL);
    const char *cur = NULL;
    size_t cur_len = 0;
    const json_t *rooms = json_object_get(o, "rooms"), *sbans = json_object_get(o, "sbans");
    int64_t s = 0;
    *has_seq = json_object_get(o, "seq") != NULL;
    bool ok = json_is_object(o) && str(o, "cursor", false, &cur, &cur_len) && cur_len > 0 &&
              cur_len < CLUSTER_MOD_CURSOR_MAX && list(rooms) && list(sbans) &&
              (!*has_seq || num(o, "seq", &s));
    /* The server-wide bans come with the first page alone: once begin has
     * cleared them. */
    ok = ok && (*has_seq || !json_is_array(sbans) || json_array_size(sbans) == 0);
    for (size_t i = 0; ok && i < cur_len; i++)
        ok = cur[i] >= '0' && cur[i] <= '9';
    /* Checked whole before anything is handed over. */
    size_t nrooms = json_is_array(rooms) ? json_array_size(rooms) : 0;
    size_t nsbans = json_is_array(sbans) ? json_array_size(sbans) : 0;
    chat_mod_ban_t b;
    chat_mod_room_t r;
    for (size_t i = 0; ok && i < nrooms; i++) {
        const json_t *ro = json_array_get(rooms, i), *bl = json_object_get(ro, "bans");
        ok = room_row(ro, &r) && list(bl);
        for (size_t j = 0; ok && json_is_array(bl) && j < json_array_size(bl); j++)
            ok = stored_ban(json_array_get(bl, j), r.name, r.name_len, &b);
    }
    for (size_t i = 0; ok && i < nsbans; i++)
        ok = stored_ban(json_array_get(sbans, i), NULL, 0, &b);
    if (!ok) {
        json_decref(o);
        return false;
    }
    *seq = (uint64_t)s;
    memcpy(cursor, cur, cur_len);
    cursor[cur_len] = '\0';
    if (*has_seq)
        begin(arg);
    for (size_t i = 0; i < nsbans; i++) {
        stored_ban(json_array_get(sbans, i), NULL, 0, &b);
        ban(arg, &b);
    }
    chat_mod_ban_t *bans = NULL;
    size_t cap = 0;
    for (size_t i = 0; i < nrooms; i++) {
        const json_t *ro = json_array_get(rooms, i), *bl = json_object_get(ro, "bans");
        room_row(ro, &r);
        size_t n = json_is_array(bl) ? json_array_size(bl) : 0;
        if (n > cap) {
            cap = n;
            bans = xrealloc(bans, cap * sizeof(*bans));
        }
        for (size_t j = 0; j < n; j++)
            stored_ban(json_array_get(bl, j), r.name, r.name_len, &bans[j]);
        room(arg, &r, bans, n);
    }
    free(bans);
    json_decref(o);
    return true;
}
