/* Typing indicators (PROTOCOL.md, "Typing, editing, deleting, mentions"):
 * `typing` with `to` (a room the sender is in, or a nickname) and `state`.
 * Nothing is stored. A session keeps one entry per target it is typing to
 * (at most CHAT_TYPING_MAX); every entry is also on one chat-wide list in
 * deadline order (every start sets now + CHAT_TYPING_MS, so appending at
 * the tail keeps the order), which chat_tick walks from the head: a start
 * not refreshed in time ends with a `stop` sent by the server, as does a
 * message from the typist to the same target, leaving a room, and the
 * session's close. The frames go through io.send_droppable: a recipient
 * whose queue is half full does not get them (chat messages are never
 * dropped). */
#include "chat/chat_int.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/xmalloc.h"

struct chat_typing_s {
    chat_typing_t *next; /* the session's entries */
    tt_link_t link;      /* chat->typing, by deadline */
    chat_session_t *s;   /* the typist */
    bool room;           /* target is a room's name (else a nickname) */
    char target[CHAT_ROOM_MAX + 1];
    size_t target_len;
    uint64_t last_start; /* ms of the last start that counted */
    uint64_t deadline;   /* ms: the server sends the stop */
};

static bool same_target(const chat_typing_t *t, bool room, const char *name, size_t len) {
    /* Names are ASCII (checked): compared as the nicks and rooms maps do. */
    return t->room == room && t->target_len == len && strncasecmp(t->target, name, len) == 0;
}

static chat_typing_t *find(chat_session_t *s, bool room, const char *name, size_t len) {
    for (chat_typing_t *t = s->typing; t != NULL; t = t->next)
        if (same_target(t, room, name, len))
            return t;
    return NULL;
}

static void send_droppable(chat_t *chat, chat_session_t *s, tt_msg_t *m) {
    if (s->close_queued)
        return;
    if (chat->io.send_droppable != NULL)
        chat->io.send_droppable(chat->io_ctx, s->conn, m);
    else
        chat->io.send(chat->io_ctx, s->conn, m);
}

/* Sends the typing frame of t's typist with state to its target's other
 * people (a room's v1 members but the typist's own connections; a
 * person's v1 connections). */
static void tell(chat_t *chat, const chat_typing_t *t, const char *state) {
    chat_session_t *s = t->s;
    chat_room_t *room = NULL;
    chat_user_t *u = NULL;
    if (t->room)
        room = chat__room_find(chat, t->target, t->target_len);
    else
        u = chat__user_find(chat, t->target, t->target_len);
    if (t->room && room == NULL)
        return;
    bool relay = chat->bus.typing != NULL;
    /* With a bus, the room's members and the person may be on other nodes
     * too: they hear it from there. */
    if (room == NULL && !relay && (u == NULL || u == s->user))
        return;
    if (room == NULL && u == s->user)
        return;
    if (u != NULL && u->kind == CHAT_USER_REMOTE)
        u = NULL; /* only the bus reaches it */
    json_t *o = json_object();
    json_object_set_new(o, "type", json_string_nocheck("typing"));
    json_object_set_new(o, room != NULL ? "room" : "from",
                        room != NULL ? json_stringn_nocheck(room->name, room->name_len)
                                     : json_stringn_nocheck(s->nick, s->nick_len));
    json_object_set_new(o, "nickname", json_stringn_nocheck(s->nick, s->nick_len));
    json_object_set_new(o, "state", json_string_nocheck(state));
    tt_msg_t *m = chat__msg_json(o, 96);
    json_decref(o);
    if (room != NULL) {
        for (uint32_t i = 0; i < room->count; i++) {
            chat_session_t *r = room->members[i]->session;
            if (r->v1 && r->user != s->user)
                send_droppable(chat, r, m);
        }
    } else if (u != NULL) {
        for (uint32_t i = 0; i < u->nsess; i++)
            if (u->sess[i]->v1)
                send_droppable(chat, u->sess[i], m);
    }
    if (relay && (room != NULL || u == NULL))
        chat->bus.typing(chat->bus_ctx, room != NULL, room != NULL ? room->name : t->target,
                         room != NULL ? room->name_len : t->target_len, s->nick, s->nick_len,
                         (const char *)tt_msg_payload(m), m->payload_len);
    tt_msg_unref(m);
}

void chat_bus_typing(chat_t *chat, bool room_target, const char *target, size_t target_len,
                     const char *nick, size_t nick_len, const char *frame, size_t frame_len) {
    /* From outside the process: only a typing frame goes on. */
    json_t *o = json_loadb(frame, frame_len, 0, NULL);
    bool ok = json_is_object(o) && json_is_string(json_object_get(o, "type")) &&
              strcmp(json_string_value(json_object_get(o, "type")), "typing") == 0;
    json_decref(o);
    if (!ok || !chat_nickname_is_valid(nick, nick_len))
        return;
    tt_msg_t *m = NULL;
    if (room_target) {
        chat_room_t *room = chat__room_find(chat, target, target_len);
        for (uint32_t i = 0; room != NULL && i < room->count; i++) {
            chat_session_t *r = room->members[i]->session;
            if (!r->v1 || (r->nick_len == nick_len && strncasecmp(r->nick, nick, nick_len) == 0))
                continue;
            if (m == NULL)
                m = chat__msg_raw(frame, frame_len);
            send_droppable(chat, r, m);
        }
    } else {
        chat_user_t *u = chat__user_find(chat, target, target_len);
        for (uint32_t i = 0; u != NULL && u->kind != CHAT_USER_REMOTE && i < u->nsess; i++) {
            if (!u->sess[i]->v1)
                continue;
            if (m == NULL)
                m = chat__msg_raw(frame, frame_len);
            send_droppable(chat, u->sess[i], m);
        }
    }
    tt_msg_unref(m);
}

static void drop(chat_session_t *s, chat_typing_t *t) {
    for (chat_typing_t **pp = &s->typing; *pp != NULL; pp = &(*pp)->next)
        if (*pp == t) {
            *pp = t->next;
            break;
        }
    s->ntyping--;
    tt_link_unlink(&t->link);
    free(t);
}

void chat__typing_end(chat_t *chat, chat_session_t *s, bool room, const char *name, size_t len) {
    chat_typing_t *t = s->typing != NULL ? find(s, room, name, len) : NULL;
    if (t == NULL)
        return;
    tell(chat, t, "stop");
    drop(s, t);
}

void chat__typing_end_all(chat_t *chat, chat_session_t *s, bool tell_them) {
    while (s->typing != NULL) {
        if (tell_them)
            tell(chat, s->typing, "stop");
        drop(s, s->typing);
    }
}

void chat__typing_tick(chat_t *chat, uint64_t now) {
    tt_link_t *l;
    while ((l = tt_list_first(&chat->typing)) != NULL) {
        chat_typing_t *t = tt_container_of(l, chat_typing_t, link);
        if (t->deadline > now)
            break;
        tell(chat, t, "stop");
        drop(t->s, t);
    }
}

void chat__on_typing(chat_t *chat, const chat_req_t *req) {
    chat_session_t *s = req->s;
    const char *to, *state;
    size_t to_len, state_len;
    if (!chat__need_str(chat, req, "to", &to, &to_len) ||
        !chat__need_str(chat, req, "state", &state, &state_len))
        return;
    bool start = state_len == 5 && memcmp(state, "start", 5) == 0;
    if (!start && !(state_len == 4 && memcmp(state, "stop", 4) == 0)) {
        chat__refuse(chat, req, "bad_request", "The field 'state' is 'start' or 'stop'.");
        return;
    }
    if (!s->v1)
        return; /* a legacy client neither sends nor gets typing */
    /* A room the sender is in, else a person. */
    bool room = false;
    const char *name = to;
    size_t len = to_len;
    if (chat_room_name_is_valid(to, to_len)) {
        chat_room_t *r = chat__room_find(chat, to, to_len);
        if (r != NULL && chat__member_find(s, r) != NULL) {
            room = true;
            name = r->name;
            len = r->name_len;
        }
    }
    if (!room) {
        chat_user_t *u =
            chat_nickname_is_valid(to, to_len) ? chat__user_find(chat, to, to_len) : NULL;
        if (u == NULL && chat->bus.typing != NULL && chat_nickname_is_valid(to, to_len)) {
            /* Perhaps a user of another node: the bus takes it there (to
             * nobody, if nobody has the nickname). */
            name = to;
            len = to_len;
        } else if (u == NULL) {
            if (to_len > 0 && to[0] == '#')
                chat__refuse(chat, req, "not_in_room", "You are not in that room.");
            else
                chat__refuse(chat, req, "no_such_user", "There is nobody of that name here.");
            return;
        } else {
            name = u->nick;
            len = u->nick_len;
        }
    }
    uint64_t now = chat__clock_ms(chat);
    chat_typing_t *t = find(s, room, name, len);
    if (!start) {
        if (t != NULL) {
            tell(chat, t, "stop");
            drop(s, t);
        }
        return;
    }
    if (t != NULL && now - t->last_start < CHAT_TYPING_MIN_GAP_MS)
        return; /* too soon: dropped, without an error */
    if (t == NULL) {
        if (s->ntyping >= CHAT_TYPING_MAX)
            return; /* typing to that many at once: the rest is not shown */
        t = xcalloc(1, sizeof(*t));
        t->s = s;
        t->room = room;
        memcpy(t->target, name, len);
        t->target_len = len;
        t->next = s->typing;
        s->typing = t;
        s->ntyping++;
    } else {
        tt_link_unlink(&t->link);
    }
    t->last_start = now;
    t->deadline = now + CHAT_TYPING_MS;
    tt_list_insert_tail(&chat->typing, &t->link);
    tell(chat, t, "start");
}
