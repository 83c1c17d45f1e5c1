/* Away status: `status` with `away` (a boolean) and an optional `text`
 * (at most CHAT_STATUS_TEXT_MAX characters) is the user's, for all its
 * connections, while it lives. The members of every room the user is in,
 * its conversation partners (the users it exchanged privates with while it
 * has been here, the last CHAT_PARTNERS_MAX) and its own other connections
 * get `status` with `nickname`, `away` and `text`; each connection once,
 * however many of those it is. `joined` and `members` list the away
 * members among those they name (`away`). Never stored; never sent to
 * legacy clients. */
#include "chat/chat_int.h"

#include <stdlib.h>
#include <string.h>

#include "core/xmalloc.h"

typedef struct chat_partner_s {
    uint64_t uid;
    char nick[CHAT_NICK_MAX + 1];
    uint8_t len;
} chat_partner_t;

void chat__status_free(chat_user_t *u) {
    free(u->away_text);
    u->away_text = NULL;
    free(u->partners);
    u->partners = NULL;
    u->npartners = 0;
}

static void partner_add(chat_user_t *u, const chat_user_t *other) {
    if (u->partners == NULL)
        u->partners = xcalloc(CHAT_PARTNERS_MAX, sizeof(*u->partners));
    for (uint32_t i = 0; i < u->npartners; i++)
        if (u->partners[i].uid == other->uid)
            return;
    /* The oldest goes when the list is full. */
    if (u->npartners == CHAT_PARTNERS_MAX) {
        memmove(&u->partners[0], &u->partners[1], (CHAT_PARTNERS_MAX - 1) * sizeof(*u->partners));
        u->npartners--;
    }
    chat_partner_t *p = &u->partners[u->npartners++];
    p->uid = other->uid;
    memcpy(p->nick, other->nick, other->nick_len);
    p->len = (uint8_t)other->nick_len;
}

void chat__partners_note(chat_t *chat, chat_user_t *a, chat_user_t *b) {
    (void)chat;
    if (a == b)
        return;
    partner_add(a, b);
    partner_add(b, a);
}

void chat__away_add(json_t **away, const chat_user_t *u, size_t *size) {
    if (u == NULL || !u->away)
        return;
    if (*away == NULL)
        *away = json_array();
    if (json_array_size(*away) >= CHAT_AWAY_LIST_MAX)
        return;
    json_array_append_new(*away, json_stringn_nocheck(u->nick, u->nick_len));
    *size += u->nick_len + 3;
}

static void reach(chat_t *chat, chat_session_t *r, tt_msg_t *m) {
    if (!r->v1 || r->stamp == chat->stamp)
        return;
    r->stamp = chat->stamp;
    chat__send(chat, r, m);
}

void chat__on_status(chat_t *chat, const chat_req_t *req) {
    chat_session_t *s = req->s;
    json_t *away = json_object_get(req->root, "away");
    if (!json_is_boolean(away)) {
        chat__refuse(chat, req, "bad_request", "The field 'away' must be true or false.");
        return;
    }
    const char *text = NULL;
    size_t len = 0;
    if (chat__opt_str(chat, req, "text", &text, &len) < 0)
        return;
    if (text != NULL && chat__utf8_chars(text, len) > CHAT_STATUS_TEXT_MAX) {
        chat__refuse(chat, req, "message_too_long", "A status text has at most %d characters.",
                     CHAT_STATUS_TEXT_MAX);
        return;
    }
    if (text != NULL && len > 0 && chat__text_kind(text, len) == TEXT_CONTROL) {
        chat__refuse(chat, req, "bad_request", "A status text holds no control characters.");
        return;
    }
    chat_user_t *u = s->user;
    u->away = json_is_true(away);
    free(u->away_text);
    u->away_text = NULL;
    u->away_len = 0;
    if (u->away && text != NULL && len > 0 && chat__text_kind(text, len) == TEXT_OK) {
        u->away_text = xstrndup(text, len);
        u->away_len = len;
    }
    json_t *o = json_object();
    json_object_set_new(o, "type", json_string_nocheck("status"));
    json_object_set_new(o, "nickname", json_stringn_nocheck(u->nick, u->nick_len));
    json_object_set_new(o, "away", json_boolean(u->away));
    if (u->away_text != NULL)
        json_object_set_new(o, "text", json_stringn_nocheck(u->away_text, u->away_len));
    tt_msg_t *m = chat__msg_json(o, 96 + len);
    json_decref(o);
    /* Each connection once: the sender's is marked first, so it gets none. */
    chat->stamp++;
    s->stamp = chat->stamp;
    for (uint32_t i = 0; i < u->nsess; i++)
        reach(chat, u->sess[i], m);
    for (uint32_t i = 0; i < u->nrooms; i++) {
        const chat_room_t *room = u->rooms[i]->room;
        for (uint32_t k = 0; k < room->count; k++)
            reach(chat, room->members[k]->session, m);
    }
    for (uint32_t i = 0; i < u->npartners; i++) {
        chat_user_t *p =
            chat__user_check(chat, u->partners[i].nick, u->partners[i].len, u->partners[i].uid);
        for (uint32_t k = 0; p != NULL && k < p->nsess; k++)
            reach(chat, p->sess[k], m);
    }
    if (chat->bus.relay != NULL) {
        /* The same on the other nodes: its rooms' members, its own other
         * connections, its partners; each connection once (one event id). */
        uint64_t evid = ++chat->bus_evid;
        const char *frame = (const char *)tt_msg_payload(m);
        for (uint32_t i = 0; i < u->nrooms; i++) {
            const chat_room_t *room = u->rooms[i]->room;
            chat->bus.relay(chat->bus_ctx, true, room->name, room->name_len, u->nick, u->nick_len,
                            evid, frame, m->payload_len);
        }
        chat->bus.relay(chat->bus_ctx, false, u->nick, u->nick_len, u->nick, u->nick_len, evid,
                        frame, m->payload_len);
        for (uint32_t i = 0; i < u->npartners; i++)
            chat->bus.relay(chat->bus_ctx, false, u->partners[i].nick, u->partners[i].len, u->nick,
                            u->nick_len, evid, frame, m->payload_len);
    }
    tt_msg_unref(m);
}
