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
    bool relay = chat->bus.relay != NULL;
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
        chat->bus.relay(chat->bus_ctx, room != NULL, room != NULL ? room->name : t->target,
                        room != NULL ? room->name_len : t->target_len, s->nick, s->nick_len, 0,
                        (const char *)tt_msg_payload(m), m->payload_len);
    tt_msg_unref(m);
}

/* The stamp of a relayed event (chat_status.c's way of reaching each
 * connection once): the same for every copy of one event that comes
 * through another of its targets. */
static uint64_t relay_stamp(chat_t *chat, uint64_t evkey) {
    for (size_t i = 0; i < CHAT_RELAY_SEEN; i++)
        if (chat->relay_seen[i].key == evkey)
            return chat->relay_seen[i].stamp;
    chat->stamp++;
    chat->relay_seen[chat->relay_next] = (chat_relay_seen_t){.key = evkey, .stamp = chat->stamp};
    chat->relay_next = (chat->relay_next + 1) % CHAT_RELAY_SEEN;
    return chat->stamp;
}

/* A status frame of a user of another node: its away status here too, in
 * this node's mirror of it, or in its own user here (an account's other
 * device, a guest's tab on this node), for joined.away. */
static void remote_status(chat_t *chat, const char *nick, size_t nick_len, const json_t *o) {
    chat_user_t *u = chat__user_find(chat, nick, nick_len);
    if (u == NULL)
        return;
    const json_t *text = json_object_get(o, "text");
    u->away = json_is_true(json_object_get(o, "away"));
    free(u->away_text);
    u->away_text = NULL;
    u->away_len = 0;
    if (u->away && json_is_string(text) && json_string_length(text) > 0) {
        u->away_text = xstrndup(json_string_value(text), json_string_length(text));
        u->away_len = json_string_length(text);
    }
}

void chat_bus_relay(chat_t *chat, bool room_target, const char *target, size_t target_len,
                    const char *nick, size_t nick_len, uint64_t evkey, const char *frame,
                    size_t frame_len) {
    /* From outside the process: only the frames that travel so go on. */
    json_t *o = json_loadb(frame, frame_len, 0, NULL);
    const char *type = json_string_value(json_object_get(o, "type"));
    bool typing = type != NULL && strcmp(type, "typing") == 0;
    bool status = type != NULL && strcmp(type, "status") == 0;
    /* A read marker moved on another node: for that account's own
     * connections only. */
    bool read = type != NULL && strcmp(type, "read") == 0 && !room_target &&
                target_len == nick_len && strncasecmp(target, nick, nick_len) == 0;
    if (status && chat_nickname_is_valid(nick, nick_len))
        remote_status(chat, nick, nick_len, o);
    json_decref(o);
    if ((!typing && !status && !read) || !chat_nickname_is_valid(nick, nick_len))
        return;
    uint64_t stamp = evkey != 0 ? relay_stamp(chat, evkey) : 0;
    tt_msg_t *m = NULL;
    chat_session_t **to = NULL;
    uint32_t n = 0;
    chat_room_t *room = room_target ? chat__room_find(chat, target, target_len) : NULL;
    chat_user_t *u = room_target ? NULL : chat__user_find(chat, target, target_len);
    if (room != NULL) {
        n = room->count;
    } else if (u != NULL && u->kind != CHAT_USER_REMOTE &&
               (!read || u->kind == CHAT_USER_ACCOUNT)) {
        to = u->sess;
        n = u->nsess;
    }
    for (uint32_t i = 0; i < n; i++) {
        chat_session_t *r = room != NULL ? room->members[i]->session : to[i];
        if (!r->v1 || (stamp != 0 && r->stamp == stamp))
            continue;
        /* A typist does not hear its own typing. */
        if (typing && room != NULL && r->nick_len == nick_len &&
            strncasecmp(r->nick, nick, nick_len) == 0)
            continue;
        if (stamp != 0)
            r->stamp = stamp;
        if (m == NULL)
            m = chat__msg_raw(frame, frame_len);
        if (typing)
            send_droppable(chat, r, m);
        else
            chat__send(chat, r, m);
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
        if (u == NULL && chat->bus.relay != NULL && chat_nickname_is_valid(to, to_len)) {
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
