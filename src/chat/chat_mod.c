/* Moderation (PROTOCOL.md, "Moderation"): a room's owner and ops, its
 * topic, kicks, bans by room and server-wide, and the audit log.
 *
 * Roles belong to accounts: the owner of a room is the account that
 * created it (or one an admin named), the ops are accounts the owner
 * chose, and the server's admins (--admin) count as owners of every room.
 * One may act only on someone of a lower rank (admin > owner > op >
 * everyone else).
 *
 * What a room keeps (its owner, ops, topic and bans) lives here, on the
 * room (room->mod), and in the store, which loads it all when the chat
 * starts: a room that keeps anything exists while empty, as the contract
 * says, up to CHAT_KEPT_ROOMS_MAX rooms. Every action changes the state
 * here at once (a ban holds from the moment it is given) and is written to
 * the store, with its audit entry, in one step the executor waits for; the
 * actor's `done` (or `unavailable`, when the write failed: the change
 * holds until a restart) comes once it is written. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "chat/chat_int.h"
#include "core/log.h"
#include "core/xmalloc.h"

typedef struct chat_nick_s {
    char s[CHAT_NICK_MAX + 1];
    uint8_t len;
} chat_nick_t;

typedef struct chat_ban_s {
    char target[CHAT_ADDRESS_MAX + 1]; /* a nickname or an address */
    uint8_t target_len;
    bool address;
    int64_t until; /* ms since the epoch; 0: for ever */
    int64_t ts;
    chat_nick_t by;
    char *reason; /* NULL: none */
    size_t reason_len;
} chat_ban_t;

typedef struct chat_roommod_s {
    chat_nick_t owner; /* len 0: none */
    chat_nick_t *ops;
    uint32_t nops;
    char *topic; /* NULL: none */
    size_t topic_len;
    chat_nick_t topic_by;
    int64_t topic_ts;
    chat_ban_t *bans;
    uint32_t nbans, bans_cap;
    bool kept;   /* counted in chat->kept_rooms */
    bool synced; /* seen by the bus's sync in progress (chat_bus_mod_sync_*) */
} chat_roommod_t;

static bool name_eq(const char *a, size_t alen, const char *b, size_t blen) {
    return alen == blen && strncasecmp(a, b, alen) == 0;
}

static void nick_set(chat_nick_t *n, const char *s, size_t len) {
    memcpy(n->s, s, len);
    n->s[len] = '\0';
    n->len = (uint8_t)len;
}

/* The address part of a peer ("1.2.3.4:5678", "[::1]:5678"). */
static size_t peer_address(const char *peer, const char **addr) {
    if (peer[0] == '[') {
        const char *e = strchr(peer, ']');
        *addr = peer + 1;
        return e ? (size_t)(e - peer - 1) : strlen(peer + 1);
    }
    const char *e = strrchr(peer, ':');
    *addr = peer;
    return e ? (size_t)(e - peer) : strlen(peer);
}

/* ---- ranks ---- */

static bool admin_named(const chat_t *chat, const char *nick, size_t len) {
    for (size_t i = 0; i < chat->cfg.nadmins; i++)
        if (name_eq(chat->cfg.admins[i], strlen(chat->cfg.admins[i]), nick, len))
            return true;
    return false;
}

bool chat__is_admin(const chat_t *chat, const chat_session_t *s) {
    return s->logged_in && s->user->kind == CHAT_USER_ACCOUNT &&
           admin_named(chat, s->nick, s->nick_len);
}

static bool is_op(const chat_roommod_t *m, const char *nick, size_t len) {
    for (uint32_t i = 0; m != NULL && i < m->nops; i++)
        if (name_eq(m->ops[i].s, m->ops[i].len, nick, len))
            return true;
    return false;
}

/* The rank of an account named nick (not checked to be one). */
static int rank_of_name(const chat_t *chat, const char *nick, size_t len, const chat_room_t *room) {
    if (admin_named(chat, nick, len))
        return 3;
    const chat_roommod_t *m = room != NULL ? room->mod : NULL;
    if (m != NULL && name_eq(m->owner.s, m->owner.len, nick, len))
        return 2;
    return is_op(m, nick, len) ? 1 : 0;
}

int chat__rank(const chat_t *chat, const chat_session_t *s, const chat_room_t *room) {
    if (!s->logged_in || s->user->kind != CHAT_USER_ACCOUNT)
        return 0; /* guests hold no role */
    return rank_of_name(chat, s->nick, s->nick_len, room);
}

/* The rank of whoever goes by nick: a guest online holds none. */
static int target_rank(chat_t *chat, const char *nick, size_t len, const chat_room_t *room) {
    const chat_user_t *u = chat__user_find(chat, nick, len);
    /* Another node's user may be either: a guest never goes by an
     * account's name, so its name tells. */
    if (u != NULL && u->kind != CHAT_USER_ACCOUNT && u->kind != CHAT_USER_REMOTE)
        return 0;
    return rank_of_name(chat, nick, len, room);
}

/* ---- the room's state ---- */

bool chat__mod_keeps(const chat_room_t *room) {
    const chat_roommod_t *m = room->mod;
    return m != NULL && (m->owner.len > 0 || m->nops > 0 || m->topic != NULL || m->nbans > 0);
}

static chat_roommod_t *mod_get(chat_room_t *room) {
    if (room->mod == NULL)
        room->mod = xcalloc(1, sizeof(*room->mod));
    return room->mod;
}

/* chat->owned's values: the key lives in them. */
typedef struct owned_s {
    chat_nick_t nick;
    uint32_t rooms;
} owned_t;

static uint32_t owned_count(chat_t *chat, const char *nick, size_t len) {
    const owned_t *o = tt_map_get(&chat->owned, nick, len);
    return o != NULL ? o->rooms : 0;
}

static void owned_add(chat_t *chat, const char *nick, size_t len, int delta) {
    owned_t *o = tt_map_get(&chat->owned, nick, len);
    if (o == NULL) {
        if (delta < 0)
            return;
        o = xcalloc(1, sizeof(*o));
        nick_set(&o->nick, nick, len);
        tt_map_put(&chat->owned, o->nick.s, o->nick.len, o);
    }
    if (delta > 0) {
        o->rooms++;
    } else if (--o->rooms == 0) {
        tt_map_remove(&chat->owned, o->nick.s, o->nick.len);
        free(o);
    }
}

static void owner_set(chat_t *chat, chat_roommod_t *m, const char *nick, size_t len) {
    if (m->owner.len > 0)
        owned_add(chat, m->owner.s, m->owner.len, -1);
    m->owner.len = 0;
    m->owner.s[0] = '\0';
    if (len > 0) {
        nick_set(&m->owner, nick, len);
        owned_add(chat, nick, len, +1);
    }
}

/* Keeps chat->kept_rooms true after a change of room's state. */
static void kept_update(chat_t *chat, chat_room_t *room) {
    if (room->mod == NULL)
        return;
    bool k = chat__mod_keeps(room);
    if (k != room->mod->kept) {
        if (k)
            chat->kept_rooms++;
        else
            chat->kept_rooms--;
        room->mod->kept = k;
    }
}

/* A change would make room one more kept room: refused past the bound. */
static bool kept_room_ok(chat_t *chat, const chat_req_t *req, const chat_room_t *room) {
    if (chat__mod_keeps(room) || chat->kept_rooms < CHAT_KEPT_ROOMS_MAX)
        return true;
    chat__refuse(chat, req, "limit_reached",
                 "This server keeps %u rooms already, the most it keeps.", CHAT_KEPT_ROOMS_MAX);
    return false;
}

static void ban_free(chat_ban_t *b) {
    free(b->reason);
}

void chat__mod_free(chat_t *chat, chat_room_t *room) {
    chat_roommod_t *m = room->mod;
    if (m == NULL)
        return;
    if (m->kept)
        chat->kept_rooms--;
    if (m->owner.len > 0)
        owned_add(chat, m->owner.s, m->owner.len, -1);
    for (uint32_t i = 0; i < m->nbans; i++)
        ban_free(&m->bans[i]);
    free(m->bans);
    free(m->ops);
    free(m->topic);
    free(m);
    room->mod = NULL;
}

void chat__mod_free_all(chat_t *chat) {
    for (uint32_t i = 0; i < chat->nbans; i++)
        ban_free(&chat->bans[i]);
    free(chat->bans);
    chat->bans = NULL;
    chat->nbans = chat->bans_cap = 0;
    size_t pos = 0;
    void *v;
    while (tt_map_next(&chat->owned, &pos, NULL, NULL, &v))
        free(v);
    tt_map_dispose(&chat->owned);
}

/* ---- bans ---- */

static bool ban_active(const chat_ban_t *b, int64_t now) {
    return b->until == 0 || b->until > now;
}

/* The ban of target in bans[0..*n) (an ended one is dropped on the way). */
static chat_ban_t *ban_find(chat_ban_t *bans, uint32_t *n, bool address, const char *target,
                            size_t len, int64_t now) {
    for (uint32_t i = 0; i < *n;) {
        chat_ban_t *b = &bans[i];
        if (!ban_active(b, now)) {
            ban_free(b);
            bans[i] = bans[--*n];
            continue;
        }
        if (b->address == address && name_eq(b->target, b->target_len, target, len))
            return b;
        i++;
    }
    return NULL;
}

static void ban_remove(chat_ban_t *bans, uint32_t *n, chat_ban_t *b) {
    ban_free(b);
    *b = bans[--*n];
}

/* Adds (or renews) a ban in *bans; NULL when max are held already. */
static chat_ban_t *ban_put(chat_ban_t **bans, uint32_t *n, uint32_t *cap, uint32_t max,
                           const chat_mod_ban_t *in, int64_t now) {
    chat_ban_t *b = ban_find(*bans, n, in->address, in->target, in->target_len, now);
    if (b == NULL) {
        if (*n >= max)
            return NULL;
        if (*n == *cap) {
            *cap = *cap ? *cap * 2 : 4;
            *bans = xrealloc(*bans, *cap * sizeof(**bans));
        }
        b = &(*bans)[(*n)++];
        memset(b, 0, sizeof(*b));
    }
    free(b->reason);
    memcpy(b->target, in->target, in->target_len);
    b->target[in->target_len] = '\0';
    b->target_len = (uint8_t)in->target_len;
    b->address = in->address;
    b->until = in->until;
    b->ts = in->ts;
    nick_set(&b->by, in->by, in->by_len);
    b->reason = in->reason_len > 0 ? xstrndup(in->reason, in->reason_len) : NULL;
    b->reason_len = in->reason_len;
    return b;
}

static void refuse_banned(chat_t *chat, const chat_req_t *req, const chat_room_t *room,
                          const chat_ban_t *b) {
    json_t *extra = json_object();
    if (room != NULL)
        json_object_set_new(extra, "room", json_stringn_nocheck(room->name, room->name_len));
    if (b->until > 0)
        json_object_set_new(extra, "until", json_integer((json_int_t)b->until));
    if (b->reason != NULL)
        json_object_set_new(extra, "reason", json_stringn_nocheck(b->reason, b->reason_len));
    if (room != NULL)
        chat__refuse_extra(chat, req, extra, "banned", "You are banned from the room %s%s.",
                           room->name, b->until > 0 ? " for now" : "");
    else
        chat__refuse_extra(chat, req, extra, "banned", "You are banned from this server%s.",
                           b->until > 0 ? " for now" : "");
}

bool chat__mod_refuse_banned(chat_t *chat, const chat_req_t *req, const char *nick, size_t len,
                             const chat_room_t *room) {
    int64_t now = chat__now_ms();
    const char *addr;
    size_t alen = peer_address(req->s->peer, &addr);
    if (room == NULL) {
        /* An admin cannot be locked out by a ban on its name (set before
         * it was one); an address ban holds for everyone. */
        chat_ban_t *b = admin_named(chat, nick, len)
                            ? NULL
                            : ban_find(chat->bans, &chat->nbans, false, nick, len, now);
        if (b == NULL)
            b = ban_find(chat->bans, &chat->nbans, true, addr, alen, now);
        if (b != NULL) {
            tt_log_info("chat: %s: login as %.*s refused: banned from the server", req->s->peer,
                        (int)len, nick);
            refuse_banned(chat, req, NULL, b);
            return true;
        }
        return false;
    }
    chat_roommod_t *m = room->mod;
    if (m == NULL || m->nbans == 0 || chat__rank(chat, req->s, room) == 3)
        return false;
    chat_ban_t *b = ban_find(m->bans, &m->nbans, false, nick, len, now);
    if (b == NULL)
        return false;
    refuse_banned(chat, req, room, b);
    return true;
}

/* ---- frames ---- */

static json_t *roles_json(const chat_room_t *room) {
    const chat_roommod_t *m = room->mod;
    json_t *ops = json_array();
    for (uint32_t i = 0; m != NULL && i < m->nops; i++)
        json_array_append_new(ops, json_stringn_nocheck(m->ops[i].s, m->ops[i].len));
    json_t *owner = m != NULL && m->owner.len > 0 ? json_stringn_nocheck(m->owner.s, m->owner.len)
                                                  : json_null();
    return json_pack("{s:o,s:o}", "owner", owner, "ops", ops);
}

void chat__mod_joined(const chat_t *chat, const chat_room_t *room, json_t *o) {
    (void)chat;
    json_object_set_new(o, "roles", roles_json(room));
    if (room->mod != NULL && room->mod->topic != NULL)
        json_object_set_new(o, "topic",
                            json_stringn_nocheck(room->mod->topic, room->mod->topic_len));
}

/* obj (stolen) to every v1 member of room, serialized once. */
static void to_members(chat_t *chat, const chat_room_t *room, json_t *obj) {
    if (room->v1_count > 0) {
        tt_msg_t *msg = chat__msg_json(obj, 256);
        for (uint32_t i = 0; i < room->count; i++) {
            chat_session_t *m = room->members[i]->session;
            if (m->v1)
                chat__send(chat, m, msg);
        }
        tt_msg_unref(msg);
    }
    json_decref(obj);
}

static void send_roles(chat_t *chat, const chat_room_t *room) {
    json_t *o = roles_json(room);
    json_object_set_new(o, "type", json_string_nocheck("roles"));
    json_object_set_new(o, "room", json_stringn_nocheck(room->name, room->name_len));
    to_members(chat, room, o);
}

/* ---- writing: the room's row, a ban, the audit entry ---- */

typedef struct mod_wait_s {
    chat_t *chat;
    uint64_t sid;
    char ref[CHAT_REF_MAX * 4 + 1];
    size_t ref_len;
    bool has_ref;
    const char *action; /* static */
} mod_wait_t;

static void done_reply(chat_t *chat, chat_session_t *s, const char *ref, size_t ref_len,
                       bool has_ref, const char *action) {
    if (s == NULL || !has_ref || !s->v1)
        return;
    json_t *o = json_pack("{s:s,s:s,s:s#}", "type", "done", "action", action, "ref", ref, ref_len);
    tt_msg_t *msg = chat__msg_json(o, 96);
    chat__send(chat, s, msg);
    tt_msg_unref(msg);
    json_decref(o);
}

static void on_written(void *arg, int rc, uint64_t last) {
    (void)last;
    mod_wait_t *w = arg;
    chat_t *chat = w->chat;
    chat_session_t *s = chat__session_find(chat, w->sid);
    if (rc < 0) {
        chat->counters.store_errors++;
        tt_log_warn("chat: moderation: a %s could not be stored (%d): it holds until a restart",
                    w->action, rc);
        if (s != NULL) {
            chat_req_t req = {.s = s, .type = w->action};
            if (w->has_ref) {
                req.ref = w->ref;
                req.ref_len = w->ref_len;
            }
            chat__refuse(chat, &req, "unavailable",
                         "The %s holds now but could not be saved: it ends with a restart.",
                         w->action);
        }
    } else {
        done_reply(chat, s, w->ref, w->ref_len, w->has_ref, w->action);
    }
    free(w);
    chat->inflight--;
    chat__pump(chat);
}

/* A room's row, for the store (ops joined by spaces into buf). */
static void room_row(const chat_room_t *room, chat_mod_room_t *r, char *buf, size_t cap) {
    const chat_roommod_t *m = room->mod;
    memset(r, 0, sizeof(*r));
    r->name = room->name;
    r->name_len = room->name_len;
    if (m == NULL)
        return;
    r->owner = m->owner.s;
    r->owner_len = m->owner.len;
    size_t n = 0;
    for (uint32_t i = 0; i < m->nops && n + m->ops[i].len + 1 < cap; i++) {
        if (n > 0)
            buf[n++] = ' ';
        memcpy(buf + n, m->ops[i].s, m->ops[i].len);
        n += m->ops[i].len;
    }
    r->ops = buf;
    r->ops_len = n;
    r->topic = m->topic;
    r->topic_len = m->topic_len;
    r->topic_by = m->topic_by.s;
    r->topic_by_len = m->topic_by.len;
    r->topic_ts = m->topic_ts;
}

/* Writes what an action changed (room: its row, NULL for a server-wide
 * action) and answers the actor once written; logs the action. */
static void persist(chat_t *chat, const chat_req_t *req, chat_room_t *room,
                    const chat_mod_ban_t *ban, bool ban_drop, const chat_audit_t *audit) {
    const char *action = audit->action;
    tt_log_info(
        "chat: moderation: %.*s: %s%s%.*s%s%s%.*s%s%.*s", (int)audit->by_len, audit->by, action,
        audit->target ? " " : "", (int)audit->target_len, audit->target ? audit->target : "",
        room ? " in " : "", room ? "" : "", room ? (int)room->name_len : 0, room ? room->name : "",
        audit->reason_len ? ": " : "", (int)audit->reason_len, audit->reason ? audit->reason : "");
    if (chat->store.mod_write == NULL) {
        done_reply(chat, req->s, req->ref, req->ref_len, req->ref != NULL, action);
        return;
    }
    static char ops[(CHAT_NICK_MAX + 1) * CHAT_OPS_MAX + 1];
    chat_mod_room_t row;
    chat_mod_write_t w = {.ban = ban, .ban_drop = ban_drop, .audit = audit};
    if (room != NULL) {
        room_row(room, &row, ops, sizeof(ops));
        w.room = &row;
        w.room_drop = !chat__mod_keeps(room);
    }
    mod_wait_t *mw = xcalloc(1, sizeof(*mw));
    mw->chat = chat;
    mw->sid = req->s->sid;
    mw->action = action;
    if (req->ref != NULL && req->ref_len < sizeof(mw->ref)) {
        memcpy(mw->ref, req->ref, req->ref_len);
        mw->ref_len = req->ref_len;
        mw->has_ref = true;
    }
    chat->inflight++;
    int rc = chat->store.mod_write(chat->store_ctx, &w, on_written, mw);
    if (rc < 0)
        on_written(mw, rc, 0);
}

static chat_audit_t audit_of(const chat_session_t *s, const chat_room_t *room, const char *action) {
    return (chat_audit_t){.ts = chat__now_ms(),
                          .room = room ? room->name : NULL,
                          .room_len = room ? room->name_len : 0,
                          .by = s->nick,
                          .by_len = s->nick_len,
                          .action = action,
                          .action_len = strlen(action)};
}

/* ---- request fields ---- */

/* An optional short text (reason, topic): at most max characters, no
 * control characters. Returns 1 (given), 0 (absent), -1 (refused). */
static int opt_text(chat_t *chat, const chat_req_t *req, const char *key, size_t max,
                    const char **str, size_t *len) {
    int r = chat__opt_str(chat, req, key, str, len);
    if (r <= 0)
        return r;
    if (chat__utf8_chars(*str, *len) > max) {
        chat__refuse(chat, req, "message_too_long", "The %s has at most %zu characters.", key, max);
        return -1;
    }
    for (size_t i = 0; i < *len; i++)
        if ((unsigned char)(*str)[i] < 0x20 || (*str)[i] == 0x7f) {
            chat__refuse(chat, req, "bad_request", "The %s holds a control character.", key);
            return -1;
        }
    return 1;
}

/* The room a moderation request names: it must exist. */
static chat_room_t *mod_room(chat_t *chat, const chat_req_t *req) {
    const char *name;
    size_t len;
    if (!chat__need_str(chat, req, "room", &name, &len) || !chat__room_ok(chat, req, name, len))
        return NULL;
    chat_room_t *room = chat__room_find(chat, name, len);
    if (room == NULL)
        chat__refuse(chat, req, "no_such_room", "There is no room named %.*s.", (int)len, name);
    return room;
}

static bool need_nick(chat_t *chat, const chat_req_t *req, const char **nick, size_t *len) {
    if (!chat__need_str(chat, req, "nickname", nick, len))
        return false;
    if (!chat_nickname_is_valid(*nick, *len)) {
        chat__refuse(chat, req, "nickname_invalid",
                     "A nickname has 1 to 32 letters, digits, '_', '-' or '.'.");
        return false;
    }
    return true;
}

static bool need_rank(chat_t *chat, const chat_req_t *req, const chat_room_t *room, int min) {
    if (chat__rank(chat, req->s, room) >= min)
        return true;
    if (room != NULL)
        chat__refuse(chat, req, "not_permitted", "Only %s of %s may do that.",
                     min >= 3   ? "server admins"
                     : min == 2 ? "the owner"
                                : "the ops",
                     room->name);
    else
        chat__refuse(chat, req, "not_permitted", "Only server admins may do that.");
    return false;
}

/* One may act only on someone of a lower rank. */
static bool outranks(chat_t *chat, const chat_req_t *req, const chat_room_t *room, const char *nick,
                     size_t len) {
    if (target_rank(chat, nick, len, room) < chat__rank(chat, req->s, room))
        return true;
    chat__refuse(chat, req, "not_permitted", "You may not do that to %.*s.", (int)len, nick);
    return false;
}

/* ---- topic ---- */

void chat__on_topic(chat_t *chat, const chat_req_t *req) {
    const char *topic;
    size_t len;
    chat_room_t *room = mod_room(chat, req);
    if (room == NULL)
        return;
    int r = opt_text(chat, req, "topic", CHAT_TOPIC_MAX, &topic, &len);
    if (r < 0)
        return;
    if (r == 0) {
        chat__refuse(chat, req, "bad_request", "The field 'topic' is required (\"\" clears it).");
        return;
    }
    if (!need_rank(chat, req, room, 1) || (len > 0 && !kept_room_ok(chat, req, room)))
        return;
    chat_roommod_t *m = mod_get(room);
    free(m->topic);
    m->topic = len > 0 ? xstrndup(topic, len) : NULL;
    m->topic_len = len;
    nick_set(&m->topic_by, req->s->nick, req->s->nick_len);
    m->topic_ts = chat__now_ms();
    kept_update(chat, room);
    to_members(chat, room,
               json_pack("{s:s,s:s#,s:s#,s:s#,s:I}", "type", "topic", "room", room->name,
                         room->name_len, "topic", topic, len, "by", req->s->nick, req->s->nick_len,
                         "ts", (json_int_t)m->topic_ts));
    chat_audit_t a = audit_of(req->s, room, "topic");
    a.ts = m->topic_ts; /* the bus brings it back: the same topic, not a new one */
    a.text = topic;
    a.text_len = len;
    persist(chat, req, room, NULL, false, &a);
}

/* ---- kick, ban ---- */

/* Takes every connection of u out of room: `kicked` to them, member_left
 * (reason) to the others. The room may be gone afterwards. */
static void kick_out(chat_t *chat, chat_room_t *room, chat_user_t *u, json_t *kicked,
                     const char *reason) {
    /* Another node's user is its node's to take out (chat_bus_mod there);
     * its members here hear member_left from that node. */
    chat_presence_t *p = u->kind == CHAT_USER_REMOTE ? NULL : chat__presence_find(u, room);
    if (p == NULL) {
        json_decref(kicked);
        return;
    }
    tt_msg_t *msg = chat__msg_json(kicked, 160);
    json_decref(kicked);
    if (p->nsess == 0) {
        /* Parked (its connections dropped): it ends now. */
        chat__presence_gone(chat, p, reason);
        p = NULL;
    }
    while (p != NULL && p->nsess > 0) {
        chat_member_t *m = NULL;
        for (uint32_t i = room->count; i-- > 0 && m == NULL;)
            if (room->members[i]->session->user == u)
                m = room->members[i];
        if (m == NULL)
            break; /* cannot be: nsess counts them */
        if (m->session->v1)
            chat__send(chat, m->session, msg);
        /* The last one ends the presence (member_left with reason), and
         * may free the room: nothing of it is read after. */
        bool last = p->nsess == 1;
        chat__leave(chat, m, reason, false);
        if (last)
            p = NULL;
    }
    tt_msg_unref(msg);
}

static json_t *kicked_json(const chat_room_t *room, const char *by, size_t by_len,
                           const char *reason, size_t reason_len, bool ban, int64_t until) {
    json_t *o = json_pack("{s:s,s:s#,s:s#}", "type", "kicked", "room", room->name, room->name_len,
                          "by", by, by_len);
    if (reason_len > 0)
        json_object_set_new(o, "reason", json_stringn_nocheck(reason, reason_len));
    if (ban) {
        json_object_set_new(o, "ban", json_true());
        if (until > 0)
            json_object_set_new(o, "until", json_integer((json_int_t)until));
    }
    return o;
}

void chat__on_kick(chat_t *chat, const chat_req_t *req) {
    const char *nick, *reason = NULL;
    size_t len, reason_len = 0;
    chat_room_t *room = mod_room(chat, req);
    if (room == NULL || !need_nick(chat, req, &nick, &len) ||
        opt_text(chat, req, "reason", CHAT_REASON_MAX, &reason, &reason_len) < 0 ||
        !need_rank(chat, req, room, 1))
        return;
    chat_user_t *u = chat__user_find(chat, nick, len);
    if (u == NULL || chat__presence_find(u, room) == NULL) {
        chat__refuse(chat, req, "no_such_user", "%.*s is not in %s.", (int)len, nick, room->name);
        return;
    }
    if (!outranks(chat, req, room, nick, len))
        return;
    chat_audit_t a = audit_of(req->s, room, "kick");
    a.target = u->nick;
    a.target_len = u->nick_len;
    a.reason = reason;
    a.reason_len = reason_len;
    persist(chat, req, room, NULL, false, &a);
    kick_out(chat, room, u,
             kicked_json(room, req->s->nick, req->s->nick_len, reason, reason_len, false, 0),
             "kick");
}

/* `seconds`: absent for ever, else 1 to CHAT_BAN_SECONDS_MAX. */
static bool ban_until(chat_t *chat, const chat_req_t *req, int64_t *until) {
    json_t *v = json_object_get(req->root, "seconds");
    *until = 0;
    if (v == NULL || json_is_null(v))
        return true;
    if (!json_is_integer(v) || json_integer_value(v) < 1 ||
        json_integer_value(v) > CHAT_BAN_SECONDS_MAX) {
        chat__refuse(chat, req, "bad_request",
                     "The field 'seconds' is a whole number from 1 to %lld (none: for ever).",
                     (long long)CHAT_BAN_SECONDS_MAX);
        return false;
    }
    *until = chat__now_ms() + (int64_t)json_integer_value(v) * 1000;
    return true;
}

/* Closes every connection of u with 4003. */
static void close_banned(chat_t *chat, chat_session_t *s) {
    if (s->closing)
        return;
    s->closing = true;
    s->banned = true;
    chat->io.close(chat->io_ctx, s->conn, 4003, "banned");
}

/* A ban req gives now (room NULL: server-wide), as the store keeps it. */
static chat_mod_ban_t ban_record(const chat_req_t *req, const chat_room_t *room, bool address,
                                 const char *target, size_t tlen, int64_t until, const char *reason,
                                 size_t reason_len) {
    return (chat_mod_ban_t){.room = room ? room->name : NULL,
                            .room_len = room ? room->name_len : 0,
                            .address = address,
                            .target = target,
                            .target_len = tlen,
                            .until = until,
                            .ts = chat__now_ms(),
                            .by = req->s->nick,
                            .by_len = req->s->nick_len,
                            .reason = reason,
                            .reason_len = reason_len};
}

/* The target of a ban or unban: `nickname`, or (allow_address: a
 * server-wide one) one `address` instead, checked. False: refused. */
static bool ban_target(chat_t *chat, const chat_req_t *req, bool allow_address, const char **target,
                       size_t *len, bool *address) {
    const char *nick = NULL, *addr = NULL;
    size_t nlen = 0, alen = 0;
    int has_nick = chat__opt_str(chat, req, "nickname", &nick, &nlen);
    int has_addr = allow_address ? chat__opt_str(chat, req, "address", &addr, &alen) : 0;
    if (has_nick < 0 || has_addr < 0)
        return false;
    if ((has_nick > 0) == (has_addr > 0)) {
        chat__refuse(chat, req, "bad_request",
                     allow_address ? "A server-wide ban or unban names one 'nickname' or one "
                                     "'address' (a room's, a 'room' and a 'nickname')."
                                   : "A room's ban or unban names a 'nickname'.");
        return false;
    }
    if (has_nick > 0 && !chat_nickname_is_valid(nick, nlen)) {
        chat__refuse(chat, req, "nickname_invalid",
                     "A nickname has 1 to 32 letters, digits, '_', '-' or '.'.");
        return false;
    }
    if (has_addr > 0) {
        bool ok = alen >= 2 && alen <= CHAT_ADDRESS_MAX;
        for (size_t i = 0; ok && i < alen; i++)
            ok = (addr[i] >= '0' && addr[i] <= '9') || (addr[i] >= 'a' && addr[i] <= 'f') ||
                 (addr[i] >= 'A' && addr[i] <= 'F') || addr[i] == '.' || addr[i] == ':';
        if (!ok) {
            chat__refuse(chat, req, "bad_request",
                         "The field 'address' is an IPv4 or IPv6 address, as 203.0.113.7.");
            return false;
        }
    }
    *address = has_addr > 0;
    *target = *address ? addr : nick;
    *len = *address ? alen : nlen;
    return true;
}

/* An optional `room` (absent or null: server-wide): false when refused
 * (not a string, not a name, no such room). */
static bool opt_room(chat_t *chat, const chat_req_t *req, chat_room_t **room) {
    *room = NULL;
    const json_t *v = json_object_get(req->root, "room");
    if (v == NULL || json_is_null(v))
        return true;
    *room = mod_room(chat, req);
    return *room != NULL;
}

/* Closes this node's connections that a server-wide ban of target (an
 * address, or a nickname) covers, but spare's (the admin's own). */
static void ban_server_out(chat_t *chat, const chat_session_t *spare, bool address,
                           const char *target, size_t len) {
    if (address) {
        for (chat_session_t *s = chat->sessions; s != NULL; s = s->next) {
            const char *pa;
            size_t plen = peer_address(s->peer, &pa);
            if (s != spare && name_eq(pa, plen, target, len))
                close_banned(chat, s);
        }
        return;
    }
    chat_user_t *u = chat__user_find(chat, target, len);
    if (u == NULL || u->kind == CHAT_USER_REMOTE)
        return; /* another node's: that node closes them (chat_bus_mod) */
    for (uint32_t i = 0; i < u->nsess; i++)
        close_banned(chat, u->sess[i]);
    /* A guest parked in its grace time goes now. */
    if (u->nsess == 0)
        chat__user_end(chat, u, "ban");
}

static void ban_server(chat_t *chat, const chat_req_t *req, int64_t until, const char *reason,
                       size_t reason_len) {
    const char *target;
    size_t tlen;
    bool address;
    if (!ban_target(chat, req, true, &target, &tlen, &address) || !need_rank(chat, req, NULL, 3))
        return;
    if (!address && admin_named(chat, target, tlen)) {
        chat__refuse(chat, req, "not_permitted", "You may not do that to %.*s.", (int)tlen, target);
        return;
    }
    chat_mod_ban_t in = ban_record(req, NULL, address, target, tlen, until, reason, reason_len);
    if (ban_put(&chat->bans, &chat->nbans, &chat->bans_cap, CHAT_SERVER_BANS_MAX, &in, in.ts) ==
        NULL) {
        chat__refuse(chat, req, "limit_reached", "The server holds %u bans already, the most.",
                     CHAT_SERVER_BANS_MAX);
        return;
    }
    chat_audit_t a = audit_of(req->s, NULL, "ban");
    a.target = target;
    a.target_len = tlen;
    a.reason = reason;
    a.reason_len = reason_len;
    a.until = until;
    persist(chat, req, NULL, &in, false, &a);
    ban_server_out(chat, req->s, address, target, tlen);
}

void chat__on_ban(chat_t *chat, const chat_req_t *req) {
    const char *nick, *reason = NULL, *rname;
    size_t len, reason_len = 0, rlen;
    int64_t until;
    int has_room = chat__get_str(req->root, "room", &rname, &rlen);
    if (has_room < 0) {
        chat__refuse(chat, req, "bad_request", "The field 'room' must be a string.");
        return;
    }
    if (has_room == 0) {
        if (opt_text(chat, req, "reason", CHAT_REASON_MAX, &reason, &reason_len) >= 0 &&
            ban_until(chat, req, &until))
            ban_server(chat, req, until, reason, reason_len);
        return;
    }
    chat_room_t *room = mod_room(chat, req);
    if (room == NULL || !need_nick(chat, req, &nick, &len) ||
        opt_text(chat, req, "reason", CHAT_REASON_MAX, &reason, &reason_len) < 0 ||
        !ban_until(chat, req, &until) || !need_rank(chat, req, room, 1) ||
        !outranks(chat, req, room, nick, len) || !kept_room_ok(chat, req, room))
        return;
    chat_roommod_t *m = mod_get(room);
    /* The spelling of whoever holds the name now, else as given. */
    chat_user_t *u = chat__user_find(chat, nick, len);
    if (u != NULL) {
        nick = u->nick;
        len = u->nick_len;
    }
    chat_mod_ban_t in = ban_record(req, room, false, nick, len, until, reason, reason_len);
    if (ban_put(&m->bans, &m->nbans, &m->bans_cap, CHAT_ROOM_BANS_MAX, &in, in.ts) == NULL) {
        chat__refuse(chat, req, "limit_reached", "%s holds %u bans already, the most.", room->name,
                     CHAT_ROOM_BANS_MAX);
        return;
    }
    kept_update(chat, room);
    chat_audit_t a = audit_of(req->s, room, "ban");
    a.target = nick;
    a.target_len = len;
    a.reason = reason;
    a.reason_len = reason_len;
    a.until = until;
    persist(chat, req, room, &in, false, &a);
    if (u != NULL && chat__presence_find(u, room) != NULL)
        kick_out(chat, room, u,
                 kicked_json(room, req->s->nick, req->s->nick_len, reason, reason_len, true, until),
                 "ban");
}

void chat__on_unban(chat_t *chat, const chat_req_t *req) {
    chat_room_t *room;
    const char *target;
    size_t tlen;
    bool address;
    if (!opt_room(chat, req, &room) ||
        !ban_target(chat, req, room == NULL, &target, &tlen, &address) ||
        !need_rank(chat, req, room, room ? 1 : 3))
        return;
    int64_t now = chat__now_ms();
    chat_ban_t *bans = room ? (room->mod ? room->mod->bans : NULL) : chat->bans;
    uint32_t *n = room ? (room->mod ? &room->mod->nbans : NULL) : &chat->nbans;
    chat_ban_t *b = n != NULL ? ban_find(bans, n, address, target, tlen, now) : NULL;
    if (b == NULL) {
        chat__refuse(chat, req, "no_such_user", "%.*s is not banned%s%s.", (int)tlen, target,
                     room ? " from " : "", room ? room->name : "");
        return;
    }
    char tbuf[CHAT_ADDRESS_MAX + 1];
    memcpy(tbuf, b->target, b->target_len);
    size_t tbuf_len = b->target_len;
    ban_remove(bans, n, b);
    if (room != NULL)
        kept_update(chat, room);
    chat_mod_ban_t out = {.room = room ? room->name : NULL,
                          .room_len = room ? room->name_len : 0,
                          .address = address,
                          .target = tbuf,
                          .target_len = tbuf_len};
    chat_audit_t a = audit_of(req->s, room, "unban");
    a.target = tbuf;
    a.target_len = tbuf_len;
    persist(chat, req, room, &out, true, &a);
}

/* ---- op, deop, owner ---- */

/* The request's target is an account: nick is its spelling. */
static void roles_apply(chat_t *chat, const chat_req_t *req, const char *nick, size_t len) {
    chat_room_t *room = mod_room(chat, req);
    if (room == NULL)
        return;
    bool owner = strcmp(req->type, "owner") == 0;
    bool deop = strcmp(req->type, "deop") == 0;
    if (!need_rank(chat, req, room, owner ? 3 : 2) || !kept_room_ok(chat, req, room))
        return;
    chat_roommod_t *m = mod_get(room);
    bool changed = false;
    if (owner) {
        changed = !name_eq(m->owner.s, m->owner.len, nick, len);
        if (changed)
            owner_set(chat, m, nick, len);
    } else if (deop) {
        for (uint32_t i = 0; i < m->nops; i++)
            if (name_eq(m->ops[i].s, m->ops[i].len, nick, len)) {
                m->ops[i] = m->ops[--m->nops];
                changed = true;
                break;
            }
    } else if (!is_op(m, nick, len) && !name_eq(m->owner.s, m->owner.len, nick, len)) {
        if (m->nops >= CHAT_OPS_MAX) {
            chat__refuse(chat, req, "limit_reached", "%s has %d ops already, the most.", room->name,
                         CHAT_OPS_MAX);
            return;
        }
        m->ops = xrealloc(m->ops, (m->nops + 1) * sizeof(*m->ops));
        nick_set(&m->ops[m->nops++], nick, len);
        changed = true;
    }
    kept_update(chat, room);
    if (changed)
        send_roles(chat, room);
    chat_audit_t a = audit_of(req->s, room, req->type);
    a.target = nick;
    a.target_len = len;
    persist(chat, req, room, NULL, false, &a);
}

void chat__mod_account_found(chat_t *chat, const chat_req_t *req, const char *nick, size_t len) {
    roles_apply(chat, req, nick, len);
}

static void roles_request(chat_t *chat, const chat_req_t *req, bool owner) {
    const char *nick;
    size_t len;
    chat_room_t *room = mod_room(chat, req);
    if (room == NULL)
        return;
    if (owner && json_is_null(json_object_get(req->root, "nickname"))) {
        /* An admin takes the owner away: the room keeps its ops, topic and
         * bans, and is no longer kept when none is left. */
        if (!need_rank(chat, req, room, 3))
            return;
        chat_roommod_t *m = mod_get(room);
        bool changed = m->owner.len > 0;
        owner_set(chat, m, NULL, 0);
        kept_update(chat, room);
        if (changed)
            send_roles(chat, room);
        chat_audit_t a = audit_of(req->s, room, "owner");
        persist(chat, req, room, NULL, false, &a);
        if (room->count == 0 && room->npeople == 0 && !chat__mod_keeps(room))
            chat__room_free_if_empty(chat, room);
        return;
    }
    if (!need_nick(chat, req, &nick, &len) || !need_rank(chat, req, room, owner ? 3 : 2))
        return;
    chat_user_t *u = chat__user_find(chat, nick, len);
    if (u != NULL && u->kind == CHAT_USER_ACCOUNT) {
        roles_apply(chat, req, u->nick, u->nick_len);
        return;
    }
    /* Another node's user may be a guest or an account: the accounts
     * tell, as for someone offline. */
    if ((u != NULL && u->kind != CHAT_USER_REMOTE) || chat->auth.authenticate == NULL) {
        chat__refuse(chat, req, "not_permitted", "Roles are for accounts: %.*s is a guest.",
                     (int)len, nick);
        return;
    }
    /* Not online: the hook says whether an account holds the name. */
    chat__auth_lookup(chat, req, nick, len);
}

void chat__on_op(chat_t *chat, const chat_req_t *req) {
    roles_request(chat, req, false);
}

void chat__on_owner(chat_t *chat, const chat_req_t *req) {
    roles_request(chat, req, true);
}

void chat__mod_room_created(chat_t *chat, chat_session_t *s, chat_room_t *room) {
    if (s->user->kind != CHAT_USER_ACCOUNT)
        return;
    if (chat->kept_rooms >= CHAT_KEPT_ROOMS_MAX ||
        owned_count(chat, s->nick, s->nick_len) >= CHAT_OWNED_MAX) {
        tt_log_info("chat: %s (%s): %s has no owner (%s)", s->peer, s->nick, room->name,
                    chat->kept_rooms >= CHAT_KEPT_ROOMS_MAX ? "the server keeps the most rooms"
                                                            : "the account owns the most rooms");
        return;
    }
    owner_set(chat, mod_get(room), s->nick, s->nick_len);
    kept_update(chat, room);
    chat_audit_t a = audit_of(s, room, "create");
    chat_req_t req = {.s = s, .type = "create"};
    persist(chat, &req, room, NULL, false, &a);
}

/* ---- reading back: audit, bans ---- */

typedef struct audit_wait_s {
    chat_t *chat;
    uint64_t sid;
    json_t *root; /* the request (its ref points into it) */
    const char *ref;
    size_t ref_len;
    char room[CHAT_ROOM_MAX + 1];
    size_t room_len;
    bool has_room;
} audit_wait_t;

static json_t *audit_entry_json(const chat_audit_t *e) {
    json_t *o = json_pack("{s:I,s:I,s:s#,s:s#}", "id", (json_int_t)e->id, "ts", (json_int_t)e->ts,
                          "by", e->by, e->by_len, "action", e->action, e->action_len);
    if (e->target_len > 0)
        json_object_set_new(o, "target", json_stringn(e->target, e->target_len));
    if (e->reason_len > 0)
        json_object_set_new(o, "reason", json_stringn(e->reason, e->reason_len));
    if (strcmp(e->action, "topic") == 0)
        json_object_set_new(o, "topic", json_stringn(e->text ? e->text : "", e->text_len));
    if (e->until > 0)
        json_object_set_new(o, "until", json_integer((json_int_t)e->until));
    return o;
}

static void on_audit_done(void *arg, int rc, const chat_audit_t *entries, size_t n, bool more) {
    audit_wait_t *w = arg;
    chat_t *chat = w->chat;
    chat_session_t *s = chat__session_find(chat, w->sid);
    if (s != NULL) {
        chat_req_t req = {
            .s = s, .root = w->root, .type = "audit", .ref = w->ref, .ref_len = w->ref_len};
        if (rc < 0) {
            chat__refuse(chat, &req, "unavailable",
                         "The audit log cannot be read now; try again later.");
        } else {
            /* Newest kept when the page is larger than a reply may be. */
            size_t budget = chat__list_budget(chat, 0), used = 0;
            size_t first = n;
            json_t *tmp[CHAT_AUDIT_MAX];
            while (first > 0) {
                json_t *e = audit_entry_json(&entries[first - 1]);
                size_t sz = json_dumpb(e, NULL, 0, JSON_COMPACT) + 1;
                if (used + sz > budget && first < n) {
                    json_decref(e);
                    more = true;
                    break;
                }
                used += sz;
                tmp[--first] = e;
            }
            json_t *a = json_array();
            for (size_t i = first; i < n; i++)
                json_array_append_new(a, tmp[i]);
            json_t *o = json_pack("{s:s,s:o,s:b}", "type", "audit", "entries", a, "more", more);
            if (w->has_room)
                json_object_set_new(o, "room", json_stringn_nocheck(w->room, w->room_len));
            chat__reply(chat, s, &req, o);
        }
    }
    json_decref(w->root);
    free(w);
    chat->inflight--;
    chat__pump(chat);
}

static bool opt_uint(chat_t *chat, const chat_req_t *req, const char *key, uint64_t max,
                     uint64_t *out) {
    json_t *v = json_object_get(req->root, key);
    if (v == NULL || json_is_null(v))
        return true;
    if (!json_is_integer(v) || json_integer_value(v) < 1 || (uint64_t)json_integer_value(v) > max) {
        chat__refuse(chat, req, "bad_request", "The field '%s' is a whole number from 1 to %llu.",
                     key, (unsigned long long)max);
        return false;
    }
    *out = (uint64_t)json_integer_value(v);
    return true;
}

void chat__on_audit(chat_t *chat, const chat_req_t *req) {
    chat_room_t *room;
    if (!opt_room(chat, req, &room))
        return;
    uint64_t before = 0, limit = CHAT_AUDIT_DEFAULT;
    if (!opt_uint(chat, req, "before", CHAT_ID_MAX - 1, &before) ||
        !opt_uint(chat, req, "limit", UINT32_MAX, &limit) ||
        !need_rank(chat, req, room, room ? 1 : 3))
        return;
    if (limit > CHAT_AUDIT_MAX)
        limit = CHAT_AUDIT_MAX;
    audit_wait_t *w = xcalloc(1, sizeof(*w));
    w->chat = chat;
    w->sid = req->s->sid;
    w->root = json_incref(req->root);
    w->ref = req->ref;
    w->ref_len = req->ref_len;
    if (room != NULL) {
        memcpy(w->room, room->name, room->name_len);
        w->room_len = room->name_len;
        w->has_room = true;
    }
    chat->inflight++;
    if (chat->store.audit_read == NULL) {
        on_audit_done(w, 0, NULL, 0, false);
        return;
    }
    int rc =
        chat->store.audit_read(chat->store_ctx, room ? room->name : NULL, room ? room->name_len : 0,
                               before, (unsigned)limit, on_audit_done, w);
    if (rc < 0)
        on_audit_done(w, rc, NULL, 0, false);
}

void chat__on_bans(chat_t *chat, const chat_req_t *req) {
    chat_room_t *room;
    if (!opt_room(chat, req, &room))
        return;
    if (!need_rank(chat, req, room, room ? 1 : 3))
        return;
    int64_t now = chat__now_ms();
    chat_ban_t *bans = room ? (room->mod ? room->mod->bans : NULL) : chat->bans;
    uint32_t zero = 0;
    uint32_t *n = room ? (room->mod ? &room->mod->nbans : &zero) : &chat->nbans;
    json_t *a = json_array();
    size_t budget = chat__list_budget(chat, 0), used = 0;
    bool more = false;
    for (uint32_t i = 0; i < *n;) {
        chat_ban_t *b = &bans[i];
        if (!ban_active(b, now)) {
            ban_free(b);
            bans[i] = bans[--*n];
            continue;
        }
        json_t *o = json_pack("{s:s#,s:I,s:s#}", b->address ? "address" : "nickname", b->target,
                              (size_t)b->target_len, "ts", (json_int_t)b->ts, "by", b->by.s,
                              (size_t)b->by.len);
        if (b->until > 0)
            json_object_set_new(o, "until", json_integer((json_int_t)b->until));
        if (b->reason != NULL)
            json_object_set_new(o, "reason", json_stringn_nocheck(b->reason, b->reason_len));
        size_t sz = json_dumpb(o, NULL, 0, JSON_COMPACT) + 1;
        if (used + sz > budget) {
            json_decref(o);
            more = true;
            break;
        }
        used += sz;
        json_array_append_new(a, o);
        i++;
    }
    if (room != NULL)
        kept_update(chat, room);
    json_t *o = json_pack("{s:s,s:o,s:b}", "type", "bans", "bans", a, "more", more);
    if (room != NULL)
        json_object_set_new(o, "room", json_stringn_nocheck(room->name, room->name_len));
    chat__reply(chat, req->s, req, o);
}

/* ---- loading ---- */

/* Sets room's owner, ops and topic to r's (NULL: none of them), as the
 * store or the bus has them. Its members hear `roles` and `topic` when
 * they changed (at start, before anyone is in a room, nobody does). */
static void state_set(chat_t *chat, chat_room_t *room, const chat_mod_room_t *r) {
    chat_roommod_t *m = mod_get(room);
    json_t *roles_before = room->count > 0 ? roles_json(room) : NULL;
    if (r != NULL && r->owner_len > 0 && chat_nickname_is_valid(r->owner, r->owner_len)) {
        if (!name_eq(m->owner.s, m->owner.len, r->owner, r->owner_len))
            owner_set(chat, m, r->owner, r->owner_len);
    } else if (m->owner.len > 0) {
        owner_set(chat, m, NULL, 0);
    }
    m->nops = 0;
    for (size_t i = 0; r != NULL && i < r->ops_len && m->nops < CHAT_OPS_MAX;) {
        size_t j = i;
        while (j < r->ops_len && r->ops[j] != ' ')
            j++;
        if (chat_nickname_is_valid(r->ops + i, j - i)) {
            m->ops = xrealloc(m->ops, (m->nops + 1) * sizeof(*m->ops));
            nick_set(&m->ops[m->nops++], r->ops + i, j - i);
        }
        i = j + 1;
    }
    size_t tlen = r != NULL ? r->topic_len : 0;
    bool topic_changed =
        tlen != m->topic_len ||
        (tlen > 0 && (memcmp(m->topic, r->topic, tlen) != 0 || r->topic_ts != m->topic_ts));
    if (topic_changed) {
        free(m->topic);
        m->topic = tlen > 0 ? xstrndup(r->topic, tlen) : NULL;
        m->topic_len = tlen;
        m->topic_by.len = 0;
        m->topic_by.s[0] = '\0';
        if (tlen > 0 && r->topic_by_len <= CHAT_NICK_MAX)
            nick_set(&m->topic_by, r->topic_by, r->topic_by_len);
        m->topic_ts = tlen > 0 ? r->topic_ts : 0;
    }
    kept_update(chat, room);
    if (roles_before != NULL) {
        json_t *roles_after = roles_json(room);
        if (!json_equal(roles_before, roles_after))
            send_roles(chat, room);
        json_decref(roles_after);
        json_decref(roles_before);
    }
    if (topic_changed && room->count > 0)
        to_members(chat, room,
                   json_pack("{s:s,s:s#,s:s#,s:s#,s:I}", "type", "topic", "room", room->name,
                             room->name_len, "topic", m->topic ? m->topic : "", m->topic_len, "by",
                             m->topic_by.s, (size_t)m->topic_by.len, "ts",
                             (json_int_t)m->topic_ts));
}

static void load_room(void *arg, const chat_mod_room_t *r) {
    chat_t *chat = arg;
    if (!chat_room_name_is_valid(r->name, r->name_len) || chat->kept_rooms >= CHAT_KEPT_ROOMS_MAX)
        return;
    chat_room_t *room = chat__room_find(chat, r->name, r->name_len);
    if (room == NULL)
        room = chat__room_new(chat, r->name, r->name_len);
    state_set(chat, room, r);
}

static void load_ban(void *arg, const chat_mod_ban_t *b) {
    chat_t *chat = arg;
    int64_t now = chat__now_ms();
    if (b->target_len == 0 || b->target_len > CHAT_ADDRESS_MAX || b->by_len > CHAT_NICK_MAX ||
        (b->until != 0 && b->until <= now))
        return;
    if (b->room == NULL) {
        ban_put(&chat->bans, &chat->nbans, &chat->bans_cap, CHAT_SERVER_BANS_MAX, b, now);
        return;
    }
    chat_room_t *room = chat__room_find(chat, b->room, b->room_len);
    if (room == NULL)
        return; /* its room was not loaded (past the bound) */
    chat_roommod_t *m = mod_get(room);
    ban_put(&m->bans, &m->nbans, &m->bans_cap, CHAT_ROOM_BANS_MAX, b, now);
    kept_update(chat, room);
}

int chat__mod_load(chat_t *chat) {
    if (chat->store.mod_load == NULL)
        return 0;
    int rc = chat->store.mod_load(chat->store_ctx, chat__now_ms(), load_room, load_ban, chat);
    if (rc == 0 && (chat->kept_rooms > 0 || chat->nbans > 0))
        tt_log_info("chat: moderation: %u kept rooms and %u server-wide bans loaded",
                    chat->kept_rooms, chat->nbans);
    return rc;
}

/* ---- the bus: the cluster's changes ----
 *
 * In a cluster every change comes back from Redis (chat_bus_mod), this
 * node's own included, with the room's state after it: applied in Redis's
 * order, every node ends with the same state. Only another node's change
 * has effects here (its kicks and bans of this node's users): this
 * node's own had them when it was made. */

static chat_ban_t **bans_of(chat_t *chat, chat_room_t *room, uint32_t **n, uint32_t **cap,
                            uint32_t *max) {
    if (room == NULL) {
        *n = &chat->nbans;
        *cap = &chat->bans_cap;
        *max = CHAT_SERVER_BANS_MAX;
        return &chat->bans;
    }
    chat_roommod_t *m = mod_get(room);
    *n = &m->nbans;
    *cap = &m->bans_cap;
    *max = CHAT_ROOM_BANS_MAX;
    return &m->bans;
}

static void bans_clear(chat_t *chat, chat_room_t *room) {
    uint32_t *n, *cap, max;
    chat_ban_t **bans = bans_of(chat, room, &n, &cap, &max);
    for (uint32_t i = 0; i < *n; i++)
        ban_free(&(*bans)[i]);
    *n = 0;
}

static void ban_apply(chat_t *chat, chat_room_t *room, const chat_mod_ban_t *b, bool drop) {
    if (b->target_len == 0 || b->target_len > CHAT_ADDRESS_MAX || b->by_len > CHAT_NICK_MAX)
        return;
    int64_t now = chat__now_ms();
    uint32_t *n, *cap, max;
    chat_ban_t **bans = bans_of(chat, room, &n, &cap, &max);
    chat_ban_t *old = ban_find(*bans, n, b->address, b->target, b->target_len, now);
    if (drop) {
        if (old != NULL)
            ban_remove(*bans, n, old);
    } else if (b->until == 0 || b->until > now) {
        ban_put(bans, n, cap, max, b, now);
    }
}

/* The room ev names, made here when the change keeps something. */
static chat_room_t *bus_room(chat_t *chat, const char *name, size_t len, bool keeps) {
    if (!chat_room_name_is_valid(name, len))
        return NULL;
    chat_room_t *room = chat__room_find(chat, name, len);
    if (room == NULL && keeps && chat->kept_rooms < CHAT_KEPT_ROOMS_MAX)
        room = chat__room_new(chat, name, len);
    return room;
}

/* Another node's kick or ban, for this node's users. */
static void bus_effects(chat_t *chat, chat_room_t *room, const chat_bus_mod_t *ev) {
    bool kick = ev->action_len == 4 && memcmp(ev->action, "kick", 4) == 0;
    bool ban = ev->action_len == 3 && memcmp(ev->action, "ban", 3) == 0;
    if ((!kick && !ban) || ev->target_len == 0 || ev->by_len > CHAT_NICK_MAX)
        return;
    if (room == NULL) {
        if (ban && ev->ban != NULL)
            ban_server_out(chat, NULL, ev->ban->address, ev->target, ev->target_len);
        return;
    }
    chat_user_t *u = chat__user_find(chat, ev->target, ev->target_len);
    if (u == NULL || u->kind == CHAT_USER_REMOTE || chat__presence_find(u, room) == NULL)
        return;
    kick_out(chat, room, u,
             kicked_json(room, ev->by, ev->by_len, ev->reason, ev->reason_len, ban, ev->until),
             kick ? "kick" : "ban");
}

void chat_bus_mod(chat_t *chat, const chat_bus_mod_t *ev) {
    chat_room_t *room = NULL;
    char name[CHAT_ROOM_MAX + 1];
    size_t name_len = 0;
    if (ev->room != NULL) {
        room = bus_room(chat, ev->room, ev->room_len, ev->row != NULL);
        if (room == NULL)
            return; /* not here, and nothing to keep: nobody here to tell */
        memcpy(name, room->name, room->name_len);
        name_len = room->name_len;
        state_set(chat, room, ev->row);
        if (ev->row == NULL)
            bans_clear(chat, room);
    }
    if (ev->ban != NULL && (room != NULL || ev->room == NULL))
        ban_apply(chat, room, ev->ban, ev->ban_drop);
    if (room != NULL)
        kept_update(chat, room);
    if (!ev->ours)
        bus_effects(chat, room, ev);
    /* A kick may have taken the last member out, and the room may keep
     * nothing any more. */
    if (room != NULL && (room = chat__room_find(chat, name, name_len)) != NULL &&
        room->count == 0 && room->npeople == 0 && !chat__mod_keeps(room))
        chat__room_free_if_empty(chat, room);
}

void chat_bus_mod_sync_begin(chat_t *chat) {
    bans_clear(chat, NULL);
    size_t pos = 0;
    void *v;
    while (tt_map_next(&chat->rooms, &pos, NULL, NULL, &v)) {
        chat_room_t *room = v;
        if (room->mod != NULL)
            room->mod->synced = false;
    }
}

void chat_bus_mod_sync_room(chat_t *chat, const chat_mod_room_t *row, const chat_mod_ban_t *bans,
                            size_t n) {
    chat_room_t *room = bus_room(chat, row->name, row->name_len, true);
    if (room == NULL)
        return;
    state_set(chat, room, row);
    bans_clear(chat, room);
    for (size_t i = 0; i < n; i++)
        ban_apply(chat, room, &bans[i], false);
    kept_update(chat, room);
    room->mod->synced = true;
}

void chat_bus_mod_sync_ban(chat_t *chat, const chat_mod_ban_t *ban) {
    ban_apply(chat, NULL, ban, false);
}

void chat_bus_mod_sync_end(chat_t *chat) {
    /* What Redis no longer keeps is kept here no more: collected first, as
     * freeing a room changes the map. */
    size_t pos = 0, n = 0, cap = 0;
    void *v;
    chat_room_t **gone = NULL;
    while (tt_map_next(&chat->rooms, &pos, NULL, NULL, &v)) {
        chat_room_t *room = v;
        if (room->mod == NULL || room->mod->synced)
            continue;
        state_set(chat, room, NULL);
        bans_clear(chat, room);
        kept_update(chat, room);
        if (room->count == 0 && room->npeople == 0 && !chat__mod_keeps(room)) {
            if (n == cap) {
                cap = cap ? cap * 2 : 16;
                gone = xrealloc(gone, cap * sizeof(*gone));
            }
            gone[n++] = room;
        }
    }
    for (size_t i = 0; i < n; i++)
        chat__room_free_if_empty(chat, gone[i]);
    free(gone);
}
