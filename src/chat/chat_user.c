/* Identities: the users that sessions log in as (a guest or an account),
 * their presence in rooms (counted once per user, however many of its
 * connections are there), the grace time a user outlives its connections,
 * and the private messages held for a guest meanwhile. */
#include "chat/chat_int.h"

#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/xmalloc.h"

chat_user_t *chat__user_find(chat_t *chat, const char *nick, size_t len) {
    return tt_map_get(&chat->nicks, nick, len);
}

chat_user_t *chat__user_check(chat_t *chat, const char *nick, size_t len, uint64_t uid) {
    chat_user_t *u = chat__user_find(chat, nick, len);
    return u != NULL && u->uid == uid ? u : NULL;
}

chat_user_t *chat__user_new(chat_t *chat, const char *nick, size_t len, chat_user_kind_t kind) {
    chat_user_t *u = chat__user_find(chat, nick, len);
    if (u != NULL && u->kind == CHAT_USER_REMOTE && kind != CHAT_USER_REMOTE) {
        /* The person is in rooms through other nodes and now here too (a
         * guest resumed here): one user, so its rooms' members see no
         * change; its joins here add this node's share quietly. A new uid:
         * nothing that named the remote user is one of its connections. */
        u->kind = kind;
        u->uid = ++chat->next_uid;
        u->since_id = chat->last_id;
        return u;
    }
    u = xcalloc(1, sizeof(*u));
    memcpy(u->nick, nick, len);
    u->nick_len = len;
    u->uid = ++chat->next_uid;
    u->kind = kind;
    u->since_id = chat->last_id;
    tt_map_put(&chat->nicks, u->nick, u->nick_len, u);
    return u;
}

/* From one: a user mostly has one connection, in one room (a 24-byte block each). */
static uint32_t grow(uint32_t cap) {
    return cap ? cap * 2 : 1;
}

void chat__user_attach(chat_t *chat, chat_user_t *u, chat_session_t *s) {
    (void)chat;
    if (u->nsess == u->sess_cap) {
        u->sess_cap = grow(u->sess_cap);
        u->sess = xrealloc(u->sess, u->sess_cap * sizeof(*u->sess));
    }
    s->user_idx = u->nsess;
    u->sess[u->nsess++] = s;
    s->user = u;
    memcpy(s->nick, u->nick, u->nick_len + 1);
    s->nick_len = u->nick_len;
    s->logged_in = true;
    chat->counters.logins++;
    /* Back within the grace time: nothing is waiting to expire but the
     * presences still parked (they expire at the same deadline). */
    if (u->parked == 0)
        tt_link_unlink(&u->park);
}

/* ---- presence ---- */

chat_presence_t *chat__presence_find(const chat_user_t *u, const chat_room_t *room) {
    for (uint32_t i = 0; i < u->nrooms; i++)
        if (u->rooms[i]->room == room)
            return u->rooms[i];
    return NULL;
}

chat_presence_t *chat__presence_add(chat_user_t *u, chat_room_t *room) {
    chat_presence_t *p = xcalloc(1, sizeof(*p));
    p->room = room;
    p->user = u;
    if (room->npeople == room->people_cap) {
        room->people_cap = grow(room->people_cap);
        room->people = xrealloc(room->people, room->people_cap * sizeof(*room->people));
    }
    p->room_idx = room->npeople;
    room->people[room->npeople++] = p;
    if (u->nrooms == u->rooms_cap) {
        u->rooms_cap = grow(u->rooms_cap);
        u->rooms = xrealloc(u->rooms, u->rooms_cap * sizeof(*u->rooms));
    }
    p->user_idx = u->nrooms;
    u->rooms[u->nrooms++] = p;
    return p;
}

void chat__presence_remove(chat_presence_t *p) {
    chat_room_t *room = p->room;
    chat_user_t *u = p->user;
    chat_presence_t *last = room->people[--room->npeople];
    room->people[p->room_idx] = last;
    last->room_idx = p->room_idx;
    last = u->rooms[--u->nrooms];
    u->rooms[p->user_idx] = last;
    last->user_idx = p->user_idx;
    if (p->here && p->nsess == 0)
        u->parked--;
    free(p);
}

/* ---- grace ---- */

void chat__user_park(chat_t *chat, chat_user_t *u, const char *reason) {
    tt_link_unlink(&u->park);
    u->park_until = chat__clock_ms(chat) + chat->cfg.resume_ms;
    u->park_reason = reason;
    /* Every deadline is now + the same grace: the list stays in order. */
    tt_list_insert_tail(&chat->parked, &u->park);
}

/* Tells the sender of a held message (all its connections that speak v1)
 * that it was not delivered. */
static void tell_undelivered(chat_t *chat, const chat_held_t *h, const char *to, size_t to_len) {
    chat_user_t *sender = chat__user_check(chat, h->from, h->from_len, h->from_uid);
    if (sender == NULL && h->from_uid == 0 && chat->bus.undelivered != NULL) {
        /* Sent from another node of the cluster: its node tells it. */
        chat->bus.undelivered(chat->bus_ctx, h->from, h->from_len, h->id, to, to_len);
        return;
    }
    if (sender != NULL)
        chat__undelivered_to(chat, sender, h->id, to, to_len);
}

void chat__undelivered_to(chat_t *chat, chat_user_t *sender, uint64_t id, const char *to,
                          size_t to_len) {
    json_t *o = json_object();
    json_object_set_new(o, "type", json_string_nocheck("undelivered"));
    json_object_set_new(o, "message_id", json_integer((json_int_t)id));
    json_object_set_new(o, "to", json_stringn_nocheck(to, to_len));
    tt_msg_t *msg = chat__msg_json(o, 96);
    json_decref(o);
    for (uint32_t i = 0; i < sender->nsess; i++)
        if (sender->sess[i]->v1)
            chat__send(chat, sender->sess[i], msg);
    tt_msg_unref(msg);
}

static void held_drop(chat_t *chat, chat_user_t *u, bool tell) {
    while (u->held != NULL) {
        chat_held_t *h = u->held;
        u->held = h->next;
        if (tell)
            tell_undelivered(chat, h, u->nick, u->nick_len);
        tt_msg_unref(h->out);
        free(h);
        chat->held_total--;
    }
    u->held_tail = NULL;
    u->nheld = 0;
}

bool chat__user_hold(chat_t *chat, chat_user_t *u, const chat_pending_t *p) {
    if (u->nheld >= CHAT_HELD_MAX || chat->held_total >= CHAT_HELD_TOTAL_MAX)
        return false;
    chat_held_t *h = xcalloc(1, sizeof(*h));
    h->out = tt_msg_ref(p->out);
    h->id = p->msg.id;
    memcpy(h->from, p->from, p->from_len);
    h->from_len = p->from_len;
    h->from_uid = p->sender_uid;
    if (u->held_tail != NULL)
        u->held_tail->next = h;
    else
        u->held = h;
    u->held_tail = h;
    u->nheld++;
    chat->held_total++;
    return true;
}

void chat__user_release_held(chat_t *chat, chat_user_t *u, chat_session_t *s) {
    for (chat_held_t *h = u->held; h != NULL; h = h->next)
        chat__send(chat, s, h->out);
    held_drop(chat, u, false);
}

void chat__undelivered(chat_t *chat, const chat_pending_t *p) {
    chat_held_t h = {.id = p->msg.id, .from_len = p->from_len, .from_uid = p->sender_uid};
    memcpy(h.from, p->from, p->from_len);
    tell_undelivered(chat, &h, p->to, p->to_len);
}

/* The parked presences of u end: the others hear member_left. */
static void presences_expire(chat_t *chat, chat_user_t *u, const char *reason) {
    for (uint32_t i = u->nrooms; i-- > 0;) {
        chat_presence_t *p = u->rooms[i];
        if (p->here && p->nsess == 0)
            chat__presence_gone(chat, p, reason);
    }
}

void chat__user_end(chat_t *chat, chat_user_t *u, const char *reason) {
    presences_expire(chat, u, reason);
    if (chat->bus.release != NULL && u->kind != CHAT_USER_REMOTE)
        chat->bus.release(chat->bus_ctx, u->nick, u->nick_len);
    held_drop(chat, u, true);
    tt_link_unlink(&u->park);
    if (u->nrooms > 0) {
        /* Still in rooms through other nodes: their members here keep
         * it (no member_left), as another node's user now; its status
         * is the person's, and stays. */
        u->kind = CHAT_USER_REMOTE;
        u->uid = ++chat->next_uid; /* none of its connections any more */
        u->account_id = 0;
        chat__search_free(u);
        return;
    }
    tt_map_remove(&chat->nicks, u->nick, u->nick_len);
    chat__status_free(u);
    chat__search_free(u);
    free(u->sess);
    free(u->rooms);
    free(u);
}

void chat__user_free_all(chat_t *chat) {
    size_t pos = 0;
    void *v;
    while (tt_map_next(&chat->nicks, &pos, NULL, NULL, &v)) {
        chat_user_t *u = v;
        for (uint32_t i = 0; i < u->nrooms; i++)
            free(u->rooms[i]);
        for (chat_held_t *h = u->held; h != NULL;) {
            chat_held_t *next = h->next;
            tt_msg_unref(h->out);
            free(h);
            h = next;
        }
        chat__status_free(u);
        chat__search_free(u);
        free(u->sess);
        free(u->rooms);
        free(u);
    }
}

/* ---- logins, joins and leaves in the log ---- */

static uint64_t evlog_held(const chat_evlog_t *e) {
    return e->held[CHAT_EV_LOGIN] + e->held[CHAT_EV_JOIN] + e->held[CHAT_EV_LEAVE];
}

static void evlog_summary(chat_t *chat, uint64_t now) {
    chat_evlog_t *e = &chat->evlog;
    uint64_t *h = e->held;
    if (evlog_held(e) == 0)
        return;
    unsigned long long secs = (now - e->held_since_ms + 999) / 1000;
    tt_log_event(TT_LOG_INFO, "summary", NULL,
                 "not logged one by one (over %d lines a second): %llu logins, %llu joins, %llu "
                 "leaves in the last %llu s",
                 CHAT_EVENT_LOG_PER_S, (unsigned long long)h[CHAT_EV_LOGIN],
                 (unsigned long long)h[CHAT_EV_JOIN], (unsigned long long)h[CHAT_EV_LEAVE],
                 secs ? secs : 1);
    memset(h, 0, sizeof(e->held));
}

void chat__log_event(chat_t *chat, chat_ev_t ev, const chat_session_t *s, const chat_room_t *room,
                     const char *what) {
    if (tt_log_get_level() > TT_LOG_INFO)
        return;
    static const char *const names[CHAT_EV_COUNT] = {"login", "join", "leave"};
    chat_evlog_t *e = &chat->evlog;
    uint64_t now = chat__clock_ms(chat);
    if (!e->started || now - e->window_ms >= 1000) {
        e->started = true;
        e->window_ms = now;
        e->lines = 0;
    }
    if (e->lines >= CHAT_EVENT_LOG_PER_S) {
        if (evlog_held(e) == 0)
            e->held_since_ms = now;
        e->held[ev]++;
        return;
    }
    e->lines++;
    tt_log_ctx_t ctx = {.peer = s->peer,
                        .conn = s->sid,
                        .nick = s->logged_in ? s->nick : NULL,
                        .room = room != NULL ? room->name : NULL};
    tt_log_event(TT_LOG_INFO, names[ev], &ctx, "%s", what);
}

void chat_tick(chat_t *chat) {
    uint64_t now = chat__clock_ms(chat);
    chat__typing_tick(chat, now);
    /* What was held back is summarized once its window has passed. */
    if (chat->evlog.started && now - chat->evlog.window_ms >= 1000)
        evlog_summary(chat, now);
    tt_link_t *l;
    while ((l = tt_list_first(&chat->parked)) != NULL) {
        chat_user_t *u = tt_container_of(l, chat_user_t, park);
        if (u->park_until > now)
            break;
        tt_link_unlink(l);
        if (u->nsess == 0) {
            tt_log_debug("chat: %s: grace time over", u->nick);
            chat__user_end(chat, u, u->park_reason);
        } else {
            presences_expire(chat, u, u->park_reason);
        }
    }
}

void chat__user_detach(chat_t *chat, chat_session_t *s, const char *reason, bool park) {
    chat_user_t *u = s->user;
    chat_session_t *last = u->sess[--u->nsess];
    u->sess[s->user_idx] = last;
    last->user_idx = s->user_idx;
    s->user = NULL;
    s->logged_in = false;
    if (u->nsess > 0)
        return;
    if (park)
        chat__user_park(chat, u, reason);
    else
        chat__user_end(chat, u, reason);
}
