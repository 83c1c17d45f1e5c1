/* `edit` and `delete` of stored messages. Each is two store steps the
 * executor waits for (chat->inflight), so nothing else runs in between and
 * everything sent before it (messages, history) comes first: the message
 * is read back (who wrote it, where), checked here (may the requester see
 * it, change it), then changed in the store, which erases the old text;
 * only then do the room's members (or both sides of a conversation) hear
 * `edited` or `deleted`. Whatever is pending is handed to the store first,
 * so the change is ordered after every message accepted before it: a
 * client that sees `deleted` never receives that message afterwards, live
 * or in history. Privates to or from a guest are never stored: editing or
 * deleting one finds nothing (`not_found`).
 *
 * In a cluster the bus serves both steps (chat_bus_hooks_t.message_get and
 * message_change) on its link to Redis, after the messages published
 * before, and the change carries its events: every node, this one too,
 * hands them out from the room's channel (chat_bus_change), in order with
 * the room's messages, so the order holds there as well. */
#include "chat/chat_int.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/log.h"
#include "core/xmalloc.h"

bool chat__edit_numeric_id(const json_t *root) {
    const char *t = json_string_value(json_object_get(root, "type"));
    return t != NULL && (strcmp(t, "edit") == 0 || strcmp(t, "delete") == 0) &&
           json_is_integer(json_object_get(root, "id"));
}

static bool nick_eq(const char *a, size_t alen, const char *b, size_t blen) {
    return alen == blen && strncasecmp(a, b, alen) == 0;
}

bool chat__is_author(const chat_session_t *s, const chat_msg_info_t *info) {
    const chat_user_t *u = s->user;
    if (!nick_eq(info->msg.from, info->msg.from_len, s->nick, s->nick_len))
        return false;
    /* A guest's nickname may have been another guest's: only what it
     * wrote since it logged in is its own (welcome.since_id). */
    return u->kind == CHAT_USER_ACCOUNT || info->msg.id > u->since_id;
}

bool chat__may_delete(chat_t *chat, const chat_session_t *s, const chat_room_t *room,
                      const chat_msg_info_t *info) {
    if (chat__is_author(s, info))
        return true;
    /* A room's ops, its owner and the server's admins delete any message
     * of the room (an admin's rank holds without the room, too). */
    return info->msg.kind == CHAT_MSG_ROOM && chat__rank(chat, s, room) >= 1;
}

/* A guest's remembered rooms hold key (a room's stored key). */
static bool seen_has(const chat_user_t *u, const char *key, size_t len) {
    for (uint32_t i = 0; i < u->nseen; i++) {
        const char *n = u->seen[i];
        if (n[0] == '#')
            n++;
        if (strlen(n) == len && strncasecmp(n, key, len) == 0)
            return true;
    }
    return false;
}

bool chat__may_read(chat_t *chat, const chat_session_t *s, const chat_msg_info_t *info) {
    const chat_user_t *u = s->user;
    if (info->msg.kind == CHAT_MSG_PRIVATE)
        return u->kind == CHAT_USER_ACCOUNT &&
               (nick_eq(info->msg.from, info->msg.from_len, s->nick, s->nick_len) ||
                nick_eq(info->msg.to, info->msg.to_len, s->nick, s->nick_len));
    if (info->joined || seen_has(u, info->msg.to, info->msg.to_len))
        return true;
    const chat_room_t *room = chat__room_find(chat, info->msg.to, info->msg.to_len);
    return room != NULL && chat__presence_find(u, room) != NULL;
}

json_t *chat__stored_message_json(chat_t *chat, const chat_message_t *m, const char *room,
                                  size_t room_len) {
    chat_message_t c = *m;
    if (room != NULL && m->kind == CHAT_MSG_ROOM) {
        c.to = room;
        c.to_len = room_len;
    }
    if (m->deleted) {
        json_t *o = json_object();
        json_object_set_new(o, "type",
                            json_string_nocheck(m->kind == CHAT_MSG_ROOM ? "room" : "private"));
        json_object_set_new(o, "id", json_integer((json_int_t)m->id));
        json_object_set_new(o, "ts", json_integer((json_int_t)m->ts));
        json_object_set_new(o, "from", json_stringn_nocheck(c.from, c.from_len));
        json_object_set_new(o, "to", json_stringn_nocheck(c.to, c.to_len));
        json_object_set_new(o, "deleted", json_true());
        return o;
    }
    json_t *o = chat__message_json(&c);
    json_object_set_new(o, "edited_ts", json_integer((json_int_t)m->edited_ts));
    if (room != NULL && m->kind == CHAT_MSG_ROOM) {
        json_t *mentions =
            chat__mentions(chat, chat__room_find(chat, room, room_len), m->text, m->text_len);
        if (mentions != NULL)
            json_object_set_new(o, "mentions", mentions);
    }
    return o;
}

/* One edit or delete in flight. */
typedef struct edit_s {
    bool bus; /* the bus serves it (a cluster) */
    chat_t *chat;
    uint64_t sid;
    json_t *root; /* the request (one reference): ref and text point into it */
    const char *ref;
    size_t ref_len;
    bool del;
    uint64_t id;
    const char *text;
    size_t text_len;
    int64_t edited_ts;
    /* The message, as read back. */
    chat_msg_kind_t kind;
    char key[CHAT_ROOM_MAX + 1]; /* a room's stored key */
    size_t key_len;
    char from[CHAT_NICK_MAX + 1], to[CHAT_NICK_MAX + 1];
    size_t from_len, to_len;
} edit_t;

static void edit_finish(edit_t *e) {
    chat_t *chat = e->chat;
    json_decref(e->root);
    free(e);
    chat->inflight--;
    chat__pump(chat);
}

static chat_req_t edit_req(edit_t *e, chat_session_t *s) {
    return (chat_req_t){.s = s,
                        .root = e->root,
                        .type = e->del ? "delete" : "edit",
                        .ref = e->ref,
                        .ref_len = e->ref_len};
}

/* The frame for one receiver: `with` names the other side of a private. */
static tt_msg_t *change_frame(const edit_t *e, const char *where_key, const char *where,
                              size_t where_len, const char *by, size_t by_len) {
    json_t *o = json_object();
    json_object_set_new(o, "type", json_string_nocheck(e->del ? "deleted" : "edited"));
    json_object_set_new(o, "id", json_integer((json_int_t)e->id));
    json_object_set_new(o, where_key, json_stringn_nocheck(where, where_len));
    if (e->del) {
        json_object_set_new(o, "by", json_stringn_nocheck(by, by_len));
    } else {
        json_object_set_new(o, "from", json_stringn_nocheck(e->from, e->from_len));
        json_t *body = json_object();
        json_object_set_new(body, "text", json_stringn_nocheck(e->text, e->text_len));
        json_object_set_new(o, "message", body);
        json_object_set_new(o, "edited_ts", json_integer((json_int_t)e->edited_ts));
    }
    tt_msg_t *m = chat__msg_json(o, 128 + e->text_len + e->text_len / 8);
    json_decref(o);
    return m;
}

static void send_user(chat_t *chat, chat_user_t *u, tt_msg_t *m) {
    for (uint32_t i = 0; i < u->nsess; i++)
        if (u->sess[i]->v1)
            chat__send(chat, u->sess[i], m);
}

static void send_room(chat_t *chat, chat_room_t *room, tt_msg_t *m) {
    for (uint32_t i = 0; i < room->count; i++) {
        chat_session_t *ms = room->members[i]->session;
        if (ms->v1)
            chat__send(chat, ms, m);
    }
}

static void broadcast(chat_t *chat, const edit_t *e, const char *by, size_t by_len) {
    if (e->kind == CHAT_MSG_ROOM) {
        chat_room_t *room = chat__room_find(chat, e->key, e->key_len);
        if (room == NULL || room->v1_count == 0)
            return;
        tt_msg_t *m = change_frame(e, "room", room->name, room->name_len, by, by_len);
        send_room(chat, room, m);
        tt_msg_unref(m);
        return;
    }
    /* Both sides, each told of the other. */
    chat_user_t *a = chat__user_find(chat, e->from, e->from_len);
    chat_user_t *b = chat__user_find(chat, e->to, e->to_len);
    if (a != NULL && a->kind == CHAT_USER_ACCOUNT) {
        tt_msg_t *m = change_frame(e, "with", e->to, e->to_len, by, by_len);
        send_user(chat, a, m);
        tt_msg_unref(m);
    }
    if (b != NULL && b != a && b->kind == CHAT_USER_ACCOUNT) {
        tt_msg_t *m = change_frame(e, "with", e->from, e->from_len, by, by_len);
        send_user(chat, b, m);
        tt_msg_unref(m);
    }
}

static void on_changed(void *arg, int rc, uint64_t last) {
    (void)last;
    edit_t *e = arg;
    chat_t *chat = e->chat;
    chat_session_t *s = chat__session_find(chat, e->sid);
    chat_req_t req = edit_req(e, s);
    if (rc < 0) {
        if (s != NULL)
            chat__refuse(chat, &req, "unavailable",
                         "The message cannot be changed now; try again.");
    } else if (rc == 1) {
        if (s != NULL)
            chat__refuse(chat, &req, "not_found", "There is no such message.");
    } else if (rc == 2) {
        if (s != NULL)
            chat__refuse(chat, &req, "not_permitted",
                         "The message is too far back in its history to be changed.");
    } else {
        /* The requester may be gone: the others hear of it anyway (then
         * by its author, the only one who may delete today). With a bus
         * they hear it from there, this node's members included. */
        if (!e->bus)
            broadcast(chat, e, s != NULL ? s->nick : e->from,
                      s != NULL ? s->nick_len : e->from_len);
        if (s != NULL && e->ref != NULL) {
            json_t *o = json_object();
            json_object_set_new(o, "type", json_string_nocheck("done"));
            json_object_set_new(o, "action", json_string_nocheck(e->del ? "delete" : "edit"));
            json_object_set_new(o, "id", json_integer((json_int_t)e->id));
            chat__reply(chat, s, &req, o);
        }
    }
    edit_finish(e);
}

/* The change through the bus, with its events: the room's members, or
 * both sides of a conversation (each told of the other). */
static int bus_change(chat_t *chat, edit_t *e, const chat_session_t *s) {
    chat_bus_event_t ev[2];
    tt_msg_t *m[2] = {NULL, NULL};
    size_t n = 0;
    if (e->kind == CHAT_MSG_ROOM) {
        /* Each node names the room as it does (chat_bus_change). */
        m[n] = change_frame(e, "room", e->key, e->key_len, s->nick, s->nick_len);
        ev[n++] = (chat_bus_event_t){.room = true, .target = e->key, .target_len = e->key_len};
    } else {
        m[n] = change_frame(e, "with", e->to, e->to_len, s->nick, s->nick_len);
        ev[n++] = (chat_bus_event_t){.target = e->from, .target_len = e->from_len};
        if (!nick_eq(e->from, e->from_len, e->to, e->to_len)) {
            m[n] = change_frame(e, "with", e->from, e->from_len, s->nick, s->nick_len);
            ev[n++] = (chat_bus_event_t){.target = e->to, .target_len = e->to_len};
        }
    }
    for (size_t i = 0; i < n; i++) {
        ev[i].frame = (const char *)tt_msg_payload(m[i]);
        ev[i].frame_len = m[i]->payload_len;
    }
    int rc = chat->bus.message_change(chat->bus_ctx, e->id, e->del ? NULL : e->text, e->text_len,
                                      e->edited_ts, ev, n, on_changed, e);
    for (size_t i = 0; i < n; i++)
        tt_msg_unref(m[i]);
    return rc;
}

static void on_got(void *arg, int rc, const chat_msg_info_t *info) {
    edit_t *e = arg;
    chat_t *chat = e->chat;
    chat_session_t *s = chat__session_find(chat, e->sid);
    chat_req_t req = edit_req(e, s);
    if (s == NULL || !s->logged_in) {
        edit_finish(e);
        return;
    }
    if (rc < 0) {
        chat__refuse(chat, &req, "unavailable", "The message cannot be read now; try again.");
        edit_finish(e);
        return;
    }
    /* Nothing tells a message one may not read from one that does not
     * exist. */
    if (rc == 1 || info->msg.deleted || !chat__may_read(chat, s, info)) {
        chat__refuse(chat, &req, "not_found", "There is no such message.");
        edit_finish(e);
        return;
    }
    const chat_room_t *room = info->msg.kind == CHAT_MSG_ROOM
                                  ? chat__room_find(chat, info->msg.to, info->msg.to_len)
                                  : NULL;
    bool ok = e->del ? chat__may_delete(chat, s, room, info) : chat__is_author(s, info);
    if (!ok) {
        chat__refuse(chat, &req, "not_permitted",
                     e->del ? "Only its author or the room's ops may delete a message."
                            : "Only its author may edit a message.");
        edit_finish(e);
        return;
    }
    e->kind = info->msg.kind;
    size_t kl = info->msg.to_len <= CHAT_ROOM_MAX ? info->msg.to_len : CHAT_ROOM_MAX;
    memcpy(e->key, info->msg.to, kl);
    e->key[kl] = '\0';
    e->key_len = kl;
    e->from_len = info->msg.from_len <= CHAT_NICK_MAX ? info->msg.from_len : CHAT_NICK_MAX;
    memcpy(e->from, info->msg.from, e->from_len);
    e->from[e->from_len] = '\0';
    e->to_len = info->msg.kind == CHAT_MSG_PRIVATE && info->msg.to_len <= CHAT_NICK_MAX
                    ? info->msg.to_len
                    : 0;
    memcpy(e->to, info->msg.to, e->to_len);
    e->to[e->to_len] = '\0';
    e->edited_ts = chat__now_ms();
    int src = e->bus ? bus_change(chat, e, s)
                     : chat->store.message_change(chat->store_ctx, e->id, e->del ? NULL : e->text,
                                                  e->text_len, e->edited_ts, on_changed, e);
    if (src < 0)
        on_changed(e, src, 0);
}

static void edit_start(chat_t *chat, const chat_req_t *req, bool del) {
    chat_session_t *s = req->s;
    if (!s->v1) {
        chat__refuse(chat, req, "unknown_type", "The message type is not one this server knows.");
        return;
    }
    /* The message id: message_id, or id when it is a number. */
    json_t *v = json_object_get(req->root, "message_id");
    if (v == NULL || json_is_null(v))
        v = json_object_get(req->root, "id");
    json_int_t n = json_is_integer(v) ? json_integer_value(v) : 0;
    if (n < 1 || (uint64_t)n >= CHAT_ID_MAX) {
        chat__refuse(chat, req, "bad_request",
                     "The field 'id' (or 'message_id') must be a message id: an integer from 1 "
                     "to 2^53 - 1.");
        return;
    }
    const char *text = NULL;
    size_t text_len = 0;
    if (!del && !chat__message_text(chat, req, &text, &text_len))
        return;
    bool bus = chat->bus.message_get != NULL && chat->bus.message_change != NULL;
    if (!bus && (chat->store.message_get == NULL || chat->store.message_change == NULL)) {
        chat__refuse(chat, req, "not_found", "There is no such message (nothing is stored).");
        return;
    }
    edit_t *e = xcalloc(1, sizeof(*e));
    e->chat = chat;
    e->sid = s->sid;
    e->root = json_incref(req->root);
    e->ref = req->ref;
    e->ref_len = req->ref_len;
    e->del = del;
    e->bus = bus;
    e->id = (uint64_t)n;
    e->text = text;
    e->text_len = text_len;
    /* Counted first: nothing queued runs while the batch below delivers. */
    chat->inflight++;
    /* What was accepted before goes to the store first: the change is
     * ordered after it there, and delivered after it here. */
    if (chat->npending > 0)
        chat_flush(chat);
    int64_t account = s->user->kind == CHAT_USER_ACCOUNT ? s->user->account_id : 0;
    int rc = bus ? chat->bus.message_get(chat->bus_ctx, e->id, account, on_got, e)
                 : chat->store.message_get(chat->store_ctx, e->id, account, on_got, e);
    if (rc < 0)
        on_got(e, rc, NULL);
}

void chat__on_edit(chat_t *chat, const chat_req_t *req) {
    edit_start(chat, req, false);
}

void chat__on_delete(chat_t *chat, const chat_req_t *req) {
    edit_start(chat, req, true);
}

void chat_bus_change(chat_t *chat, bool room_target, const char *target, size_t target_len,
                     const char *frame, size_t frame_len) {
    /* From outside the process: only an `edited` or `deleted` goes on. */
    json_t *o = json_loadb(frame, frame_len, 0, NULL);
    const char *type = json_string_value(json_object_get(o, "type"));
    if (type == NULL || (strcmp(type, "edited") != 0 && strcmp(type, "deleted") != 0)) {
        json_decref(o);
        return;
    }
    if (room_target) {
        chat_room_t *room = chat__room_find(chat, target, target_len);
        if (room != NULL && room->v1_count > 0) {
            /* Named as this node names the room. */
            json_object_set_new(o, "room", json_stringn_nocheck(room->name, room->name_len));
            tt_msg_t *m = chat__msg_json(o, frame_len + 64);
            send_room(chat, room, m);
            tt_msg_unref(m);
        }
    } else {
        chat_user_t *u = chat__user_find(chat, target, target_len);
        if (u != NULL && u->kind == CHAT_USER_ACCOUNT) {
            tt_msg_t *m = chat__msg_raw(frame, frame_len);
            send_user(chat, u, m);
            tt_msg_unref(m);
        }
    }
    json_decref(o);
}
