/* Requests: JSON text in, validated commands out. Each request type has one
 * handler; fields are checked in a fixed order (shape first, then names and
 * limits, then state) so a request with several faults always gets the same
 * error code. Nothing here sends bytes itself: replies go through chat_out.c
 * and state changes through chat.c. */
#include "chat/chat_int.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "auth/auth_token.h"
#include "core/log.h"
#include "core/utf8.h"
#include "core/xmalloc.h"

/* Reads the string field key of o. Returns 1 and fills str/len if present,
 * 0 if absent or null (null counts as absent: clients often serialize an
 * unset optional field that way), -1 if present with another type. */
int chat__get_str(const json_t *o, const char *key, const char **str, size_t *len) {
    json_t *v = json_object_get(o, key);
    if (v == NULL || json_is_null(v))
        return 0;
    if (!json_is_string(v))
        return -1;
    *str = json_string_value(v);
    *len = json_string_length(v);
    return 1;
}

/* A required string field; refuses the request with bad_request if it is
 * absent or not a string. */
bool chat__need_str(chat_t *chat, const chat_req_t *req, const char *key, const char **str,
                    size_t *len) {
    int rc = chat__get_str(req->root, key, str, len);
    if (rc == 1)
        return true;
    chat__refuse(chat, req, "bad_request",
                 rc == 0 ? "The field '%s' is required." : "The field '%s' must be a string.", key);
    return false;
}

/* An optional message id (since, before): a JSON integer with
 * 1 <= n < 2^53. Returns 1 (set), 0 (absent or null) or -1 (invalid;
 * refused with bad_request). Integers too large for jansson never get here:
 * the whole request is refused while parsing. */
static int opt_id(chat_t *chat, const chat_req_t *req, const char *key, uint64_t *out) {
    json_t *v = json_object_get(req->root, key);
    if (v == NULL || json_is_null(v))
        return 0;
    if (json_is_integer(v)) {
        json_int_t n = json_integer_value(v);
        if (n >= 1 && (uint64_t)n < CHAT_ID_MAX) {
            *out = (uint64_t)n;
            return 1;
        }
    }
    chat__refuse(chat, req, "bad_request",
                 "The field '%s' must be a message id: an integer from 1 to 2^53 - 1.", key);
    return -1;
}

/* An optional page size: a positive JSON integer, served as at most max
 * (asking for more is not an error: it gets the most the server gives, and
 * `more` says whether there is more to page). Returns 1 (set), 0 (absent or
 * null: *out = def) or -1 (invalid; refused with bad_request). */
static int opt_limit(chat_t *chat, const chat_req_t *req, unsigned def, unsigned max,
                     unsigned *out) {
    json_t *v = json_object_get(req->root, "limit");
    *out = def;
    if (v == NULL || json_is_null(v))
        return 0;
    if (!json_is_integer(v) || json_integer_value(v) < 1) {
        chat__refuse(chat, req, "bad_request", "The field 'limit' must be a positive integer.");
        return -1;
    }
    json_int_t n = json_integer_value(v);
    *out = n > (json_int_t)max ? max : (unsigned)n;
    return 1;
}

/* An optional string field (a paging cursor): 1 (set), 0 (absent or null)
 * or -1 (not a string; refused with bad_request). */
int chat__opt_str(chat_t *chat, const chat_req_t *req, const char *key, const char **str,
                  size_t *len) {
    int rc = chat__get_str(req->root, key, str, len);
    if (rc < 0)
        chat__refuse(chat, req, "bad_request", "The field '%s' must be a string.", key);
    return rc;
}

/* Refuses with room_invalid unless name[0..len) is a valid room name. */
bool chat__room_ok(chat_t *chat, const chat_req_t *req, const char *name, size_t len) {
    if (chat_room_name_is_valid(name, len))
        return true;
    chat__refuse(chat, req, "room_invalid",
                 "A room name has 1 to 64 letters, digits, '_', '-' or '.', "
                 "optionally after a leading '#'.");
    return false;
}

/* One pass over message.text (UTF-8 that jansson validated):
 * TEXT_CONTROL if it holds a control character other than tab, line feed
 * and carriage return (U+0000-U+001F, U+007F, U+0080-U+009F): they mean
 * nothing in chat and JSON escapes each in six bytes; otherwise TEXT_BLANK
 * if it holds nothing but blanks: ASCII space, tab, line feed, carriage
 * return, and U+00A0, U+1680, U+180E, U+2000-U+200F, U+2028, U+2029,
 * U+202F, U+205F, U+2060, U+3000, U+FEFF (Unicode's spaces and the
 * invisible zero-width characters and marks); otherwise TEXT_OK. */
text_kind_t chat__text_kind(const char *text, size_t len) {
    const unsigned char *p = (const unsigned char *)text;
    bool visible = false;
    size_t i = 0;
    while (i < len) {
        /* Eight plain printable ASCII bytes at a time (none below 0x21, none
         * 0x7F or above): the common case of chat text. */
        if (len - i >= 8) {
            uint64_t w;
            memcpy(&w, p + i, 8);
            uint64_t high = w & UINT64_C(0x8080808080808080);
            uint64_t low = (w - UINT64_C(0x2121212121212121)) & ~w & UINT64_C(0x8080808080808080);
            uint64_t del = ((w ^ UINT64_C(0x7F7F7F7F7F7F7F7F)) - UINT64_C(0x0101010101010101)) &
                           ~(w ^ UINT64_C(0x7F7F7F7F7F7F7F7F)) & UINT64_C(0x8080808080808080);
            if ((high | low | del) == 0) {
                visible = true;
                i += 8;
                continue;
            }
        }
        unsigned char c = p[i];
        if (c < 0x80) {
            if (c < 0x20 || c == 0x7F) {
                if (c != '\t' && c != '\n' && c != '\r')
                    return TEXT_CONTROL;
            } else if (c != ' ') {
                visible = true;
            }
            i++;
            continue;
        }
        /* The length of the sequence from its lead byte; jansson checked
         * that it is complete, the bound is for safety. */
        size_t n = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : 2;
        if (n > len - i)
            n = len - i;
        unsigned char c1 = n > 1 ? p[i + 1] : 0, c2 = n > 2 ? p[i + 2] : 0;
        bool blank = false;
        if (c == 0xC2) {
            if (c1 < 0xA0)
                return TEXT_CONTROL; /* C1: U+0080-U+009F */
            blank = c1 == 0xA0;      /* U+00A0 */
        } else if (c == 0xE1) {
            blank = (c1 == 0x9A && c2 == 0x80) || (c1 == 0xA0 && c2 == 0x8E); /* U+1680 U+180E */
        } else if (c == 0xE2) {
            /* U+2000-U+200F, U+2028, U+2029, U+202F; U+205F, U+2060 */
            blank = (c1 == 0x80 && (c2 <= 0x8F || c2 == 0xA8 || c2 == 0xA9 || c2 == 0xAF)) ||
                    (c1 == 0x81 && (c2 == 0x9F || c2 == 0xA0));
        } else if (c == 0xE3) {
            blank = c1 == 0x80 && c2 == 0x80; /* U+3000 */
        } else if (c == 0xEF) {
            blank = c1 == 0xBB && c2 == 0xBF; /* U+FEFF */
        }
        visible |= !blank;
        i += n;
    }
    return visible ? TEXT_OK : TEXT_BLANK;
}

/* message.text of a room or private request: present, a string, not empty,
 * no control characters (JSON can carry "\u0000" and the like; C clients,
 * logs and the store cannot, and each costs six bytes in every reply that
 * carries it), not blank. Its length is checked separately (text_ok), with
 * the other limits. */
static bool need_text(chat_t *chat, const chat_req_t *req, const char **text, size_t *len) {
    json_t *msg = json_object_get(req->root, "message");
    json_t *t = json_is_object(msg) ? json_object_get(msg, "text") : NULL;
    if (!json_is_string(t)) {
        chat__refuse(chat, req, "bad_request",
                     "The field 'message' must be an object with a string 'text'.");
        return false;
    }
    *text = json_string_value(t);
    *len = json_string_length(t);
    if (*len == 0) {
        chat__refuse(chat, req, "bad_request", "The message text is empty.");
        return false;
    }
    switch (chat__text_kind(*text, *len)) {
    case TEXT_OK:
        return true;
    case TEXT_CONTROL:
        chat__refuse(chat, req, "bad_request",
                     "The message text must not contain control characters (other than tab, "
                     "line feed and carriage return).");
        return false;
    case TEXT_BLANK:
        chat__refuse(chat, req, "bad_request", "The message text is blank.");
        return false;
    }
    return false;
}

static bool text_ok(chat_t *chat, const chat_req_t *req, size_t len) {
    if (len <= chat->cfg.max_text)
        return true;
    chat__refuse(chat, req, "message_too_long",
                 "The message text is %zu bytes long; the limit is %zu.", len, chat->cfg.max_text);
    return false;
}

static void on_reserved(void *arg, int rc, uint64_t store_last_id) {
    (void)store_last_id;
    chat_t *chat = arg;
    chat->reserving = false;
    if (rc < 0)
        tt_log_warn("chat: reserving message ids failed (%d); ids stay unique while the server "
                    "runs, and are reserved again with the next message",
                    rc);
}

/* The next message id. Ids are reserved in the store in large steps, well
 * ahead of use, so a restart never reuses one, even of a private message
 * (not stored). The reservation completes in the background; the chat asks
 * for the next one when half of the current one is used. */
static uint64_t chat__next_id(chat_t *chat) {
    uint64_t id = ++chat->last_id;
    if (chat->store.reserve_ids != NULL && !chat->reserving &&
        id + CHAT_ID_RESERVE / 2 > chat->reserved_id) {
        uint64_t upto = id + CHAT_ID_RESERVE - 1;
        chat->reserving = true;
        /* Counted as reserved now: a failure is logged and retried once
         * the ids run out again. */
        uint64_t before = chat->reserved_id;
        chat->reserved_id = upto;
        if (chat->store.reserve_ids(chat->store_ctx, upto, on_reserved, chat) < 0) {
            chat->reserving = false;
            chat->reserved_id = before > id ? before : id;
        }
    }
    return id;
}

/* Gives the message its id and ts, frames it once and queues it for
 * chat_flush. */
static void accept_message(chat_t *chat, const chat_req_t *req, chat_msg_kind_t kind,
                           chat_room_t *room, chat_user_t *target, const char *nick,
                           size_t nick_len, bool stored, const char *text, size_t len) {
    chat_session_t *s = req->s;
    chat_pending_t *p = chat__pending_add(chat);
    p->msg = (chat_message_t){0}; /* a new message: not edited, not deleted */
    /* With a bus, the bus gives the id (cluster-wide) when it publishes. */
    p->msg.id = chat->bus.publish != NULL ? 0 : chat__next_id(chat);
    p->msg.ts = chat__now_ms();
    p->msg.kind = kind;
    /* Names are copied: the entry holds no pointer into sessions or rooms,
     * which are looked up again (by id, by name) when it is delivered. */
    memcpy(p->from, s->nick, s->nick_len + 1);
    p->from_len = (uint8_t)s->nick_len;
    const char *to = kind == CHAT_MSG_ROOM ? room->name : nick;
    size_t to_len = kind == CHAT_MSG_ROOM ? room->name_len : nick_len;
    p->stored = stored;
    p->from_account = s->user->kind == CHAT_USER_ACCOUNT;
    if (kind == CHAT_MSG_PRIVATE && target != NULL)
        chat__partners_note(chat, s->user, target);
    /* A message from the typist ends its typing to the same place. */
    if (s->typing != NULL)
        chat__typing_end(chat, s, kind == CHAT_MSG_ROOM, to, to_len);
    memcpy(p->to, to, to_len);
    p->to[to_len] = '\0';
    p->to_len = (uint8_t)to_len;
    p->msg.from = p->from; /* valid until the pending array moves: reset with the batch */
    p->msg.from_len = p->from_len;
    p->msg.to = p->to;
    p->msg.to_len = p->to_len;
    p->msg.text = text;
    p->msg.text_len = len;
    p->sender_sid = s->sid;
    p->sender_uid = s->user->uid;
    p->target_uid = target != NULL ? target->uid : 0;
    /* text and ref point into the parsed request: keep it until delivery. */
    p->req = json_incref(req->root);
    p->ref = req->ref;
    p->ref_len = req->ref_len;
    p->out_plain = NULL;
    p->out = NULL;
    p->acked = false;
    p->refused = false;
    p->no_user = false;
    p->token = 0;
    p->mentions = NULL;
    p->mentions_len = 0;
    json_t *mentions = kind == CHAT_MSG_ROOM ? chat__mentions(chat, room, text, len) : NULL;
    if (chat->bus.publish != NULL) {
        /* Framed once the bus has given the id: a private message by
         * chat_flush's completion, a room message by chat_bus_deliver on
         * every node. The mentions travel with it. */
        if (mentions != NULL)
            p->mentions = chat__mentions_join(mentions, &p->mentions_len);
        json_decref(mentions);
        chat->messages++;
        return;
    }
    if (mentions != NULL && room->v1_count < room->count) {
        p->out_plain = chat__msg_message(&p->msg, NULL);
        p->out_plain->id = p->msg.id;
    }
    p->out = chat__msg_message(&p->msg, mentions);
    p->out->id = p->msg.id;
    json_decref(mentions);
    chat->messages++;
}

/* A rate as JSON: an integer when it is whole (10, not 10.0). */
static json_t *rate_number(double r) {
    if (r >= 0 && r < 1e15 && r == (double)(json_int_t)r)
        return json_integer((json_int_t)r);
    return json_real(r);
}

static json_t *typed(const char *type) {
    json_t *o = json_object();
    json_object_set_new(o, "type", json_string_nocheck(type));
    return o;
}

/* ---- handlers ---- */

void chat__welcome(chat_t *chat, const chat_req_t *req, json_t *extra) {
    chat_session_t *s = req->s;
    json_t *o = typed("welcome");
    json_object_set_new(o, "nickname", json_stringn_nocheck(s->nick, s->nick_len));
    json_object_set_new(o, "account", json_boolean(s->user->kind == CHAT_USER_ACCOUNT));
    /* A guest's nickname may have been another guest's before: only its
     * messages after this id are its own (an account's are all its own). */
    if (s->user->kind == CHAT_USER_GUEST)
        json_object_set_new(o, "since_id", json_integer((json_int_t)s->user->since_id));
    if (chat__is_admin(chat, s))
        json_object_set_new(o, "admin", json_true());
    if (extra != NULL) {
        json_object_update(o, extra);
        json_decref(extra);
    }
    json_t *server = json_object();
    json_object_set_new(server, "name", json_string(chat->cfg.server_name));
    json_object_set_new(server, "version", json_string(chat->cfg.server_version));
    if (chat->node != NULL)
        json_object_set_new(server, "node", json_string(chat->node));
    json_object_set_new(o, "server", server);
    json_t *limits = json_object();
    json_object_set_new(limits, "max_text", json_integer((json_int_t)chat->cfg.max_text));
    json_object_set_new(limits, "max_message", json_integer((json_int_t)chat->cfg.max_message));
    json_object_set_new(limits, "max_rooms", json_integer((json_int_t)chat->cfg.max_rooms));
    json_object_set_new(limits, "max_nickname", json_integer(CHAT_NICK_MAX));
    json_object_set_new(limits, "max_room_name", json_integer(CHAT_ROOM_MAX));
    json_object_set_new(limits, "max_id", json_integer(CHAT_REF_MAX));
    json_object_set_new(limits, "history_on_join",
                        json_integer((json_int_t)chat->cfg.history_on_join));
    json_object_set_new(limits, "history_max", json_integer(CHAT_HISTORY_MAX));
    json_object_set_new(limits, "reply_budget", json_integer((json_int_t)chat->reply_budget));
    json_object_set_new(limits, "rooms_max", json_integer(CHAT_ROOMS_MAX));
    json_object_set_new(limits, "members_max", json_integer(CHAT_MEMBERS_MAX));
    /* Flood control: rate_limit is chat messages a second (0: off), the
     * request bucket CHAT_RATE_REQUEST_FACTOR times both. */
    bool rate_on = chat->cfg.rate_limit > 0;
    double rate = rate_on ? chat->cfg.rate_limit : 0;
    json_int_t burst = rate_on ? (json_int_t)chat->cfg.rate_burst : 0;
    json_object_set_new(limits, "rate_burst", json_integer(burst));
    json_object_set_new(limits, "rate_limit", rate_number(rate));
    json_object_set_new(limits, "request_burst", json_integer(burst * CHAT_RATE_REQUEST_FACTOR));
    json_object_set_new(limits, "request_rate_limit", rate_number(rate * CHAT_RATE_REQUEST_FACTOR));
    json_object_set_new(limits, "flood_strikes", json_integer(rate_on ? CHAT_FLOOD_STRIKES : 0));
    json_object_set_new(limits, "flood_window_ms", json_integer(CHAT_FLOOD_WINDOW_MS));
    for (size_t i = 0; i < chat->cfg.nlimits_extra; i++)
        json_object_set_new(limits, chat->cfg.limits_extra[i].name,
                            json_integer((json_int_t)chat->cfg.limits_extra[i].value));
    json_object_set_new(o, "limits", limits);
    chat__reply(chat, s, req, o);
    /* What was sent to the user while none of its connections was there. */
    chat__user_release_held(chat, s->user, s);
}

void chat__guest_login(chat_t *chat, const chat_req_t *req, const char *nick, size_t nick_len,
                       const char *room, size_t room_len, bool has_room,
                       const uint8_t *resume_hash) {
    chat_session_t *s = req->s;
    chat_user_t *known = chat__user_find(chat, nick, nick_len);
    if (known != NULL && known->kind == CHAT_USER_REMOTE && resume_hash != NULL) {
        /* Another node's guest, resumed here: this node's own from now
         * on; chat__user_new adopts the mirror, presences and all, so its
         * rooms' members here hear nothing. */
        known = NULL;
    }
    if (known != NULL) {
        chat__refuse(chat, req, "nickname_taken", "The nickname %.*s is taken.", (int)nick_len,
                     nick);
        return;
    }
    if (tt_map_get(&chat->registering, nick, nick_len) != NULL) {
        chat__refuse(chat, req, "nickname_registered",
                     "The nickname %.*s belongs to an account: log in with its password.",
                     (int)nick_len, nick);
        return;
    }
    if (chat__mod_refuse_banned(chat, req, nick, nick_len, NULL))
        return;
    chat_user_t *u = chat__user_new(chat, nick, nick_len, CHAT_USER_GUEST);
    char token[AUTH_TOKEN_LEN + 1] = "";
    if (resume_hash != NULL) {
        memcpy(u->resume_hash, resume_hash, sizeof(u->resume_hash));
    } else if (s->v1 && auth_token_new(token, sizeof(token)) == 0) {
        auth_token_hash(token, strlen(token), u->resume_hash);
        /* So another node of the cluster takes the token too. */
        if (chat->bus.guest_token != NULL)
            chat->bus.guest_token(chat->bus_ctx, u->nick, u->nick_len, u->resume_hash);
    }
    chat__user_attach(chat, u, s);
    chat__log_event(chat, CHAT_EV_LOGIN, s, NULL,
                    resume_hash != NULL ? "resumed a guest session of another node"
                    : s->v1             ? "logged in as a guest"
                                        : "logged in (legacy client)");
    /* A new guest's token: `login` with it and the nickname joins this
     * guest again (a reload, another tab) within the grace time. */
    json_t *extra = NULL;
    if (token[0] != '\0')
        extra = json_pack("{s:s}", "resume", token);
    chat__welcome(chat, req, extra);
    if (has_room)
        chat__join(chat, req, room, room_len, 0);
}

static void on_login(chat_t *chat, const chat_req_t *req) {
    chat_session_t *s = req->s;
    if (s->logged_in) {
        chat__refuse(chat, req, "already_logged_in", "You are already logged in as %s.", s->nick);
        return;
    }
    /* An account's password or token (chat_auth.c). */
    if (chat__login_credentials(chat, req))
        return;
    const char *nick, *room = NULL;
    size_t nick_len, room_len = 0;
    if (!chat__need_str(chat, req, "nickname", &nick, &nick_len))
        return;
    int has_room = chat__get_str(req->root, "room", &room, &room_len);
    if (has_room < 0) {
        chat__refuse(chat, req, "bad_request", "The field 'room' must be a string.");
        return;
    }
    if (!chat_nickname_is_valid(nick, nick_len)) {
        chat__refuse(chat, req, "nickname_invalid",
                     "A nickname has 1 to 32 letters, digits, '_', '-' or '.'.");
        return;
    }
    if (has_room && !chat__room_ok(chat, req, room, room_len))
        return;
    const char *resume = NULL;
    size_t resume_len = 0;
    int has_resume = chat__get_str(req->root, "resume", &resume, &resume_len);
    if (has_resume < 0) {
        chat__refuse(chat, req, "bad_request", "The field 'resume' must be a string.");
        return;
    }
    if (has_resume > 0 && s->v1) {
        /* The same guest, from a reload or another tab: its token, held
         * only as a hash, must match. Anything else is one answer. */
        chat_user_t *u = chat__user_find(chat, nick, nick_len);
        uint8_t hash[AUTH_TOKEN_HASH_BYTES];
        auth_token_hash(resume, resume_len, hash);
        if ((u == NULL || u->kind == CHAT_USER_REMOTE) && chat->bus.publish != NULL &&
            chat->auth.authenticate != NULL && auth_token_wellformed(resume, resume_len)) {
            /* Perhaps another node's guest (a reload that reached this
             * node, or its node is lost): the cluster knows the token. */
            chat__auth_guest(chat, req, nick, nick_len, room, room_len, has_room > 0, hash);
            return;
        }
        if (u == NULL || u->kind != CHAT_USER_GUEST || !auth_token_wellformed(resume, resume_len) ||
            CRYPTO_memcmp(hash, u->resume_hash, sizeof(hash)) != 0) {
            chat__refuse(chat, req, "auth_failed",
                         "That guest session is over (or the token is not its): log in anew.");
            return;
        }
        if (chat__mod_refuse_banned(chat, req, u->nick, u->nick_len, NULL))
            return;
        chat__user_attach(chat, u, s);
        chat__log_event(chat, CHAT_EV_LOGIN, s, NULL, "resumed a guest session");
        chat__welcome(chat, req, NULL);
        if (has_room)
            chat__join(chat, req, room, room_len, 0);
        return;
    }
    if (chat->cfg.guests_off) {
        chat__refuse(chat, req, "guests_closed",
                     "This server takes accounts only: register, or log in with a password.");
        return;
    }
    if (chat__user_find(chat, nick, nick_len) != NULL) {
        chat__refuse(chat, req, "nickname_taken", "The nickname %.*s is taken.", (int)nick_len,
                     nick);
        return;
    }
    /* With accounts, a guest may not take an account's nickname: the hook
     * says (the store is read off the loop), and the login ends there. */
    if (chat->auth.authenticate != NULL)
        chat__auth_guest(chat, req, nick, nick_len, room, room_len, has_room > 0, NULL);
    else
        chat__guest_login(chat, req, nick, nick_len, room, room_len, has_room > 0, NULL);
}

static void on_join(chat_t *chat, const chat_req_t *req) {
    const char *name;
    size_t len;
    uint64_t since = 0;
    if (!chat__need_str(chat, req, "room", &name, &len) || opt_id(chat, req, "since", &since) < 0 ||
        !chat__room_ok(chat, req, name, len))
        return;
    chat__join(chat, req, name, len, since);
}

static void on_leave(chat_t *chat, const chat_req_t *req) {
    const char *name;
    size_t len;
    if (!chat__need_str(chat, req, "room", &name, &len) || !chat__room_ok(chat, req, name, len))
        return;
    chat_member_t *m = chat__member_find(req->s, chat__room_find(chat, name, len));
    if (m == NULL) {
        chat__refuse(chat, req, "not_in_room", "You are not in the room %.*s.", (int)len, name);
        return;
    }
    /* Named as the room is, whatever spelling the request used; the room
     * may be gone once left. */
    json_t *o = typed("left");
    json_object_set_new(o, "room", json_stringn_nocheck(m->room->name, m->room->name_len));
    chat__leave(chat, m, "leave", false);
    chat__reply(chat, req->s, req, o);
}

static void on_room(chat_t *chat, const chat_req_t *req) {
    const char *name, *text;
    size_t len, text_len;
    if (!chat__need_str(chat, req, "to", &name, &len) || !need_text(chat, req, &text, &text_len) ||
        !chat__room_ok(chat, req, name, len) || !text_ok(chat, req, text_len))
        return;
    chat_room_t *room = chat__room_find(chat, name, len);
    if (chat__member_find(req->s, room) == NULL) {
        chat__refuse(chat, req, "not_in_room", "You are not in the room %.*s; join it first.",
                     (int)len, name);
        return;
    }
    accept_message(chat, req, CHAT_MSG_ROOM, room, NULL, NULL, 0, false, text, text_len);
}

static void on_private(chat_t *chat, const chat_req_t *req) {
    const char *to, *text;
    size_t to_len, text_len;
    if (!chat__need_str(chat, req, "to", &to, &to_len) || !need_text(chat, req, &text, &text_len) ||
        !text_ok(chat, req, text_len))
        return;
    chat_user_t *target = chat__user_find(chat, to, to_len);
    /* Between accounts a private is stored (and may wait for an offline
     * recipient); to or from a guest it is live only. */
    bool can_store = chat->store.history_with != NULL && req->s->user->kind == CHAT_USER_ACCOUNT &&
                     chat->bus.publish == NULL;
    if (target == NULL && chat->bus.publish != NULL && chat_nickname_is_valid(to, to_len)) {
        /* Perhaps a user of another node: the bus finds out (no_such_user
         * when nobody has the nickname). */
        accept_message(chat, req, CHAT_MSG_PRIVATE, NULL, NULL, to, to_len, false, text, text_len);
        return;
    }
    if (target == NULL && can_store && chat->auth.authenticate != NULL &&
        chat_nickname_is_valid(to, to_len)) {
        chat__auth_lookup(chat, req, to, to_len);
        return;
    }
    if (target == NULL) {
        /* Quote the name only when it is a valid one: anything else could be
         * long or hold characters that do not belong in a sentence. */
        if (chat_nickname_is_valid(to, to_len))
            chat__refuse(chat, req, "no_such_user", "There is no user named %.*s.", (int)to_len,
                         to);
        else
            chat__refuse(chat, req, "no_such_user", "There is no user with that name.");
        return;
    }
    accept_message(chat, req, CHAT_MSG_PRIVATE, NULL, target, target->nick, target->nick_len,
                   can_store && target->kind == CHAT_USER_ACCOUNT, text, text_len);
}

void chat__private_to_account(chat_t *chat, const chat_req_t *req, const char *nick, size_t len) {
    const char *text;
    size_t text_len;
    if (!need_text(chat, req, &text, &text_len))
        return; /* checked when it came: cannot fail now */
    /* Online meanwhile, perhaps: then delivered live too. */
    chat_user_t *target = chat__user_find(chat, nick, len);
    if (target != NULL && target->kind != CHAT_USER_ACCOUNT) {
        chat__refuse(chat, req, "no_such_user", "There is no user named %.*s.", (int)len, nick);
        return;
    }
    accept_message(chat, req, CHAT_MSG_PRIVATE, NULL, target, nick, len, true, text, text_len);
}

/* Stored conversations are an account's, between accounts. */
static bool conversations_ok(chat_t *chat, const chat_req_t *req) {
    if (chat->store.history_with == NULL || chat->store.conversations == NULL) {
        chat__refuse(chat, req, "bad_request", "This server keeps no private conversations.");
        return false;
    }
    if (req->s->user->kind != CHAT_USER_ACCOUNT) {
        chat__refuse(chat, req, "bad_request",
                     "Only accounts keep their private conversations: register to keep yours.");
        return false;
    }
    return true;
}

static void on_history(chat_t *chat, const chat_req_t *req) {
    const char *name;
    size_t len;
    uint64_t before = 0; /* no bound */
    const char *with = NULL;
    size_t with_len = 0;
    int has_with = chat__opt_str(chat, req, "with", &with, &with_len);
    if (has_with < 0)
        return;
    if (has_with > 0) {
        unsigned limit;
        if (opt_id(chat, req, "before", &before) < 0 ||
            opt_limit(chat, req, CHAT_HISTORY_DEFAULT, CHAT_HISTORY_MAX, &limit) < 0)
            return;
        if (!chat_nickname_is_valid(with, with_len)) {
            chat__refuse(chat, req, "nickname_invalid",
                         "A nickname has 1 to 32 letters, digits, '_', '-' or '.'.");
            return;
        }
        if (conversations_ok(chat, req))
            chat__history_with_reply(chat, req, with, with_len, before, limit);
        return;
    }
    if (!chat__need_str(chat, req, "room", &name, &len) || opt_id(chat, req, "before", &before) < 0)
        return;
    unsigned limit;
    if (opt_limit(chat, req, CHAT_HISTORY_DEFAULT, CHAT_HISTORY_MAX, &limit) < 0 ||
        !chat__room_ok(chat, req, name, len))
        return;
    const chat_room_t *room = chat__room_find(chat, name, len);
    if (chat__member_find(req->s, room) == NULL) {
        chat__refuse(chat, req, "not_in_room", "You are not in the room %.*s.", (int)len, name);
        return;
    }
    chat__history_reply(chat, req, room->name, room->name_len, before, limit);
}

static void on_conversations(chat_t *chat, const chat_req_t *req) {
    unsigned limit;
    if (opt_limit(chat, req, CHAT_CONVERSATIONS_DEFAULT, CHAT_CONVERSATIONS_MAX, &limit) < 0 ||
        !conversations_ok(chat, req))
        return;
    chat__conversations_reply(chat, req, limit);
}

static void on_read_done_cb(void *arg, int rc, uint64_t last) {
    (void)arg;
    (void)last;
    if (rc < 0)
        tt_log_warn("chat: a read marker could not be stored (%d)", rc);
}

/* `read`: the account's marker moves, and its other connections hear it. */
static void on_read(chat_t *chat, const chat_req_t *req) {
    chat_session_t *s = req->s;
    const char *with = NULL, *room = NULL;
    size_t with_len = 0, room_len = 0;
    int has_with = chat__opt_str(chat, req, "with", &with, &with_len);
    int has_room = has_with < 0 ? -1 : chat__opt_str(chat, req, "room", &room, &room_len);
    if (has_with < 0 || has_room < 0)
        return;
    uint64_t up_to = 0;
    int has_up_to = opt_id(chat, req, "up_to", &up_to);
    if (has_up_to < 0)
        return;
    if ((has_with > 0) == (has_room > 0) || has_up_to == 0) {
        chat__refuse(chat, req, "bad_request",
                     "A read names 'with' (a nickname) or 'room', and 'up_to' (a message id).");
        return;
    }
    if (has_with > 0 && !chat_nickname_is_valid(with, with_len)) {
        chat__refuse(chat, req, "nickname_invalid",
                     "A nickname has 1 to 32 letters, digits, '_', '-' or '.'.");
        return;
    }
    if (has_room > 0 && !chat__room_ok(chat, req, room, room_len))
        return;
    if (chat->store.read_set == NULL || !conversations_ok(chat, req))
        return;
    chat_user_t *u = s->user;
    const char *name = has_with > 0 ? with : room;
    size_t name_len = has_with > 0 ? with_len : room_len;
    /* The store keeps the marker (forward only), in order with the
     * messages; nobody waits for it. */
    if (chat->store.read_set(chat->store_ctx, u->account_id, u->nick, u->nick_len, name, name_len,
                             has_with > 0, up_to, on_read_done_cb, NULL) < 0)
        tt_log_warn("chat: a read marker was not stored (the store's queue is full)");
    json_t *o = json_object();
    json_object_set_new(o, "type", json_string_nocheck("read"));
    json_object_set_new(o, has_with > 0 ? "with" : "room", json_stringn_nocheck(name, name_len));
    json_object_set_new(o, "up_to", json_integer((json_int_t)up_to));
    tt_msg_t *m = chat__msg_json(o, 96);
    /* The account's connections on the other nodes hear it too. */
    char *frame = chat->bus.relay != NULL ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    for (uint32_t i = 0; i < u->nsess; i++)
        if (u->sess[i] != s && u->sess[i]->v1)
            chat__send(chat, u->sess[i], m);
    tt_msg_unref(m);
    if (frame != NULL)
        chat->bus.relay(chat->bus_ctx, false, u->nick, u->nick_len, u->nick, u->nick_len, 0, frame,
                        strlen(frame));
    free(frame);
}

/* ---- pages of names ----
 *
 * `rooms` and `who` answer with a page of names in folded byte order: ASCII
 * letters compared as lower case, ties (names differing only in case)
 * broken by the raw bytes, so the order is total and a cursor (`after`)
 * pages through every name once. The page is selected with a bounded
 * max-heap of `limit` entries: O(N log limit) for N names, no full sort. */

static int name_order(const char *a, size_t alen, const char *b, size_t blen) {
    size_t n = alen < blen ? alen : blen;
    for (size_t i = 0; i < n; i++) {
        unsigned char x = (unsigned char)a[i], y = (unsigned char)b[i];
        x = x >= 'A' && x <= 'Z' ? (unsigned char)(x + 32) : x;
        y = y >= 'A' && y <= 'Z' ? (unsigned char)(y + 32) : y;
        if (x != y)
            return x < y ? -1 : 1;
    }
    if (alen != blen)
        return alen < blen ? -1 : 1;
    int c = memcmp(a, b, n);
    return c < 0 ? -1 : c > 0;
}

typedef struct named_s {
    const char *name;
    size_t len;
    uint32_t value; /* a room's member count */
} named_t;

typedef struct page_s {
    named_t *heap; /* a max-heap by name_order while selecting; sorted after */
    size_t n, limit;
    size_t after_cursor; /* names offered that come after the cursor */
    const char *after;   /* NULL: no cursor */
    size_t after_len;
} page_t;

static bool named_less(const named_t *x, const named_t *y) {
    return name_order(x->name, x->len, y->name, y->len) < 0;
}

static void heap_down(named_t *h, size_t n, size_t i) {
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, top = i;
        if (l < n && named_less(&h[top], &h[l]))
            top = l;
        if (r < n && named_less(&h[top], &h[r]))
            top = r;
        if (top == i)
            return;
        named_t t = h[i];
        h[i] = h[top];
        h[top] = t;
        i = top;
    }
}

static void page_init(page_t *p, unsigned limit, size_t total, const char *after,
                      size_t after_len) {
    p->limit = limit < total ? limit : total;
    p->heap = xmalloc((p->limit ? p->limit : 1) * sizeof(*p->heap));
    p->n = 0;
    p->after_cursor = 0;
    p->after = after;
    p->after_len = after_len;
}

/* Offers a name: kept if it comes after the cursor and is among the
 * `limit` first so far. */
static void page_offer(page_t *p, const char *name, size_t len, uint32_t value) {
    if (p->after != NULL && name_order(name, len, p->after, p->after_len) <= 0)
        return;
    p->after_cursor++;
    named_t e = {name, len, value};
    if (p->n < p->limit) {
        /* sift up */
        size_t i = p->n++;
        while (i > 0 && named_less(&p->heap[(i - 1) / 2], &e)) {
            p->heap[i] = p->heap[(i - 1) / 2];
            i = (i - 1) / 2;
        }
        p->heap[i] = e;
    } else if (p->n > 0 && named_less(&e, &p->heap[0])) {
        p->heap[0] = e;
        heap_down(p->heap, p->n, 0);
    }
}

/* Sorts the page (heapsort of the heap) and tells whether names after it
 * were left out. */
static bool page_finish(page_t *p) {
    for (size_t end = p->n; end > 1; end--) {
        named_t t = p->heap[0];
        p->heap[0] = p->heap[end - 1];
        p->heap[end - 1] = t;
        heap_down(p->heap, end - 1, 0);
    }
    return p->after_cursor > p->n;
}

/* The optional `limit` and `after` of a page request; false if refused. */
static bool page_fields(chat_t *chat, const chat_req_t *req, unsigned def, unsigned max,
                        unsigned *limit, const char **after, size_t *after_len) {
    *after = NULL;
    *after_len = 0;
    if (opt_limit(chat, req, def, max, limit) < 0)
        return false;
    const char *a;
    size_t alen;
    int rc = chat__opt_str(chat, req, "after", &a, &alen);
    if (rc < 0)
        return false;
    if (rc > 0) {
        *after = a;
        *after_len = alen;
    }
    return true;
}

static void on_who(chat_t *chat, const chat_req_t *req) {
    const char *name, *after;
    size_t len, after_len;
    unsigned limit;
    if (!chat__need_str(chat, req, "room", &name, &len) ||
        !page_fields(chat, req, CHAT_MEMBERS_MAX, CHAT_MEMBERS_MAX, &limit, &after, &after_len) ||
        !chat__room_ok(chat, req, name, len))
        return;
    /* Rooms are public: anyone logged in may look, and a room nobody is in
     * simply has no members (it is not an error to ask). */
    const chat_room_t *room = chat__room_find(chat, name, len);
    uint32_t count = room != NULL ? room->npeople : 0;
    /* The scan costs in proportion to the room. */
    if (!chat__rate_take_scan(chat, req, count))
        return;
    if (!req->s->v1)
        return; /* nothing to build: a legacy client would not get the reply */
    page_t page;
    page_init(&page, limit, count, after, after_len);
    for (uint32_t i = 0; i < count; i++) {
        const chat_user_t *u = room->people[i]->user;
        page_offer(&page, u->nick, u->nick_len, 0);
    }
    bool more = page_finish(&page);
    json_t *members = json_array();
    json_t *away = NULL;
    size_t away_size = 0;
    for (size_t i = 0; i < page.n; i++) {
        json_array_append_new(members, json_stringn_nocheck(page.heap[i].name, page.heap[i].len));
        chat__away_add(&away, chat__user_find(chat, page.heap[i].name, page.heap[i].len),
                       &away_size);
    }
    free(page.heap);
    json_t *o = typed("members");
    if (away != NULL)
        json_object_set_new(o, "away", away);
    /* The room's own spelling when it exists; otherwise the one asked for. */
    json_object_set_new(o, "room",
                        room != NULL ? json_stringn_nocheck(room->name, room->name_len)
                                     : json_stringn_nocheck(name, len));
    json_object_set_new(o, "members", members);
    json_object_set_new(o, "count", json_integer(count));
    json_object_set_new(o, "more", json_boolean(more));
    chat__reply(chat, req->s, req, o);
}

/* The `rooms` page: this node's rooms, and with a bus the cluster's
 * (names[0..nb), members[0..nb)) besides: a room both know counts the
 * cluster's members. */
static void rooms_reply(chat_t *chat, const chat_req_t *req, unsigned limit, const char *after,
                        size_t after_len, const char *const *names, const size_t *lens,
                        const uint32_t *members, size_t nb) {
    tt_map_t seen;
    tt_map_init(&seen, TT_MAP_NOCASE);
    for (size_t i = 0; i < nb; i++) {
        size_t skip = lens[i] > 0 && names[i][0] == '#';
        tt_map_put(&seen, names[i] + skip, lens[i] - skip, (void *)(uintptr_t)(i + 1));
    }
    size_t local_only = 0;
    size_t pos = 0;
    void *v;
    while (tt_map_next(&chat->rooms, &pos, NULL, NULL, &v)) {
        const chat_room_t *room = v;
        if (tt_map_get(&seen, room->name + room->skip, room->name_len - room->skip) == NULL)
            local_only++;
    }
    size_t n = nb + local_only;
    page_t page;
    page_init(&page, limit, n, after, after_len);
    for (size_t i = 0; i < nb; i++)
        page_offer(&page, names[i], lens[i], members[i]);
    pos = 0;
    while (tt_map_next(&chat->rooms, &pos, NULL, NULL, &v)) {
        const chat_room_t *room = v;
        if (tt_map_get(&seen, room->name + room->skip, room->name_len - room->skip) == NULL)
            page_offer(&page, room->name, room->name_len, room->npeople);
    }
    tt_map_dispose(&seen);
    bool more = page_finish(&page);
    json_t *rooms = json_array();
    for (size_t i = 0; i < page.n; i++) {
        json_t *r = json_object();
        json_object_set_new(r, "name", json_stringn_nocheck(page.heap[i].name, page.heap[i].len));
        json_object_set_new(r, "members", json_integer(page.heap[i].value));
        json_array_append_new(rooms, r);
    }
    free(page.heap);
    json_t *o = typed("rooms");
    json_object_set_new(o, "rooms", rooms);
    json_object_set_new(o, "count", json_integer((json_int_t)n));
    json_object_set_new(o, "more", json_boolean(more));
    chat__reply(chat, req->s, req, o);
}

/* A `rooms` waiting for the cluster's list: the executor waits for it, as
 * for a history read. */
typedef struct rooms_wait_s {
    chat_t *chat;
    uint64_t sid;
    json_t *root;
    const char *ref;
    size_t ref_len;
    unsigned limit;
    char after[CHAT_ROOM_MAX + 1];
    size_t after_len;
    bool has_after;
} rooms_wait_t;

static void on_bus_rooms(void *arg, int rc, const char *const *names, const size_t *lens,
                         const uint32_t *members, size_t n) {
    rooms_wait_t *w = arg;
    chat_t *chat = w->chat;
    chat_session_t *s = chat__session_find(chat, w->sid);
    if (s != NULL) {
        chat_req_t req = {
            .s = s, .root = w->root, .type = "rooms", .ref = w->ref, .ref_len = w->ref_len};
        if (rc < 0)
            n = 0; /* this node's view */
        rooms_reply(chat, &req, w->limit, w->has_after ? w->after : NULL, w->after_len, names, lens,
                    members, n);
    }
    json_decref(w->root);
    free(w);
    chat->inflight--;
    chat__pump(chat);
}

static void on_rooms(chat_t *chat, const chat_req_t *req) {
    const char *after;
    size_t after_len;
    unsigned limit;
    if (!page_fields(chat, req, CHAT_ROOMS_DEFAULT, CHAT_ROOMS_MAX, &limit, &after, &after_len))
        return;
    size_t n = tt_map_count(&chat->rooms);
    if (!chat__rate_take_scan(chat, req, n))
        return;
    if (!req->s->v1)
        return; /* nothing to build: a legacy client would not get the reply */
    if (chat->bus.rooms != NULL && after_len <= CHAT_ROOM_MAX) {
        rooms_wait_t *w = xcalloc(1, sizeof(*w));
        w->chat = chat;
        w->sid = req->s->sid;
        w->root = json_incref(req->root);
        w->ref = req->ref;
        w->ref_len = req->ref_len;
        w->limit = limit;
        if (after != NULL) {
            memcpy(w->after, after, after_len);
            w->after_len = after_len;
            w->has_after = true;
        }
        chat->inflight++;
        if (chat->bus.rooms(chat->bus_ctx, CHAT_BUS_ROOMS_MAX, on_bus_rooms, w) < 0)
            on_bus_rooms(w, -1, NULL, NULL, NULL, 0);
        return;
    }
    rooms_reply(chat, req, limit, after, after_len, NULL, NULL, NULL, 0);
}

static void on_ping(chat_t *chat, const chat_req_t *req) {
    chat__reply(chat, req->s, req, typed("pong"));
}

typedef struct handler_s {
    const char *type;
    bool needs_login;
    void (*fn)(chat_t *chat, const chat_req_t *req);
    bool is_message; /* a chat message: also takes a token from the message bucket */
    bool settles;    /* a membership change: runs only with nothing pending or in flight */
} handler_t;

static const handler_t handlers[] = {
    {"login", false, on_login, false, true},
    {"join", true, on_join, false, true},
    {"leave", true, on_leave, false, true},
    {"room", true, on_room, true, false},
    {"private", true, on_private, true, false},
    {"history", true, on_history, false, false},
    {"who", true, on_who, false, false},
    {"rooms", true, on_rooms, false, false},
    {"ping", false, on_ping, false, false},
    {"typing", true, chat__on_typing, false, false},
    {"status", true, chat__on_status, false, false},
    {"conversations", true, on_conversations, false, false},
    {"read", true, on_read, false, false},
    {"register", false, chat__on_register, false, true},
    {"logout", true, chat__on_logout, false, true},
    {"password", true, chat__on_password, false, false},
    /* Moderation (chat_mod.c): in order with membership changes. */
    {"topic", true, chat__on_topic, false, true},
    {"kick", true, chat__on_kick, false, true},
    {"ban", true, chat__on_ban, false, true},
    {"unban", true, chat__on_unban, false, true},
    {"op", true, chat__on_op, false, true},
    {"deop", true, chat__on_op, false, true},
    {"owner", true, chat__on_owner, false, true},
    {"audit", true, chat__on_audit, false, false},
    {"bans", true, chat__on_bans, false, false},
    {"edit", true, chat__on_edit, true, false},
    {"delete", true, chat__on_delete, true, false},
    {"search", true, chat__on_search, true, false},
};

static const handler_t *find_handler(const char *type, size_t len) {
    for (size_t i = 0; i < sizeof(handlers) / sizeof(handlers[0]); i++)
        if (strlen(handlers[i].type) == len && memcmp(handlers[i].type, type, len) == 0)
            return &handlers[i];
    return NULL;
}

/* Characters (code points) in UTF-8 text that jansson already validated. */
size_t chat__utf8_chars(const char *p, size_t len) {
    size_t n = 0;
    for (size_t i = 0; i < len; i++)
        n += ((unsigned char)p[i] & 0xC0) != 0x80;
    return n;
}

static bool is_ws(char c) {
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* The request's id, read without parsing, for refusing a frame that is too
 * large to parse: found when the frame ends with an "id" member whose value
 * is a string without escapes (`... ,"id":"c42"}`, how JavaScript's
 * JSON.stringify({...req, id}) writes it). In valid JSON such a member
 * belongs to the top-level object and, being the last, is the one a parser
 * keeps; in anything else the ref is merely echoed. Looks at the last
 * bytes only. */
static bool tail_id(const char *data, size_t len, const char **ref, size_t *ref_len) {
    size_t i = len;
    while (i > 0 && is_ws(data[i - 1]))
        i--;
    if (i == 0 || data[--i] != '}')
        return false;
    while (i > 0 && is_ws(data[i - 1]))
        i--;
    if (i == 0 || data[--i] != '"')
        return false;
    size_t end = i;
    /* The value: at most CHAT_REF_MAX characters of up to 4 bytes. */
    while (i > 0 && end - i <= 4 * CHAT_REF_MAX && data[i - 1] != '"') {
        unsigned char c = (unsigned char)data[i - 1];
        if (c == '\\' || c < 0x20)
            return false;
        i--;
    }
    if (i == 0 || data[i - 1] != '"')
        return false;
    size_t start = i--;
    while (i > 0 && is_ws(data[i - 1]))
        i--;
    if (i == 0 || data[--i] != ':')
        return false;
    while (i > 0 && is_ws(data[i - 1]))
        i--;
    if (i < 4 || memcmp(data + i - 4, "\"id\"", 4) != 0)
        return false;
    i -= 4;
    while (i > 0 && is_ws(data[i - 1]))
        i--;
    if (i == 0 || (data[i - 1] != ',' && data[i - 1] != '{'))
        return false;
    /* The transport hands over valid UTF-8 only, but nothing read without
     * a parser is trusted: the value goes into an error frame as it is. */
    if (!tt_utf8_is_valid((const uint8_t *)data + start, end - start) ||
        chat__utf8_chars(data + start, end - start) > CHAT_REF_MAX)
        return false;
    *ref = data + start;
    *ref_len = end - start;
    return true;
}

/* The id of a parsed request: *ok is false when it is present but not a
 * string of at most CHAT_REF_MAX characters (null counts as absent). */
static void req_id(const json_t *root, chat_req_t *req, bool *ok) {
    json_t *id = json_is_object(root) ? json_object_get(root, "id") : NULL;
    *ok = id == NULL || json_is_null(id) ||
          (json_is_string(id) &&
           chat__utf8_chars(json_string_value(id), json_string_length(id)) <= CHAT_REF_MAX);
    if (*ok && json_is_string(id)) {
        req->ref = json_string_value(id);
        req->ref_len = json_string_length(id);
    }
}

/* Refuses a frame the request bucket cannot pay for, before parsing it (so
 * a flood costs almost nothing): with its ref when the frame is small
 * enough to parse for it cheaply, or its id can be read at its end. */
static void refuse_unparsed(chat_t *chat, chat_session_t *s, const char *data, size_t len,
                            uint64_t retry_ms) {
    chat_req_t req = {.s = s};
    json_t *root = NULL;
    if (!tail_id(data, len, &req.ref, &req.ref_len) && len <= CHAT_RATE_REF_PARSE_MAX) {
        root = json_loadb(data, len, JSON_ALLOW_NUL, NULL);
        bool ok;
        req_id(root, &req, &ok);
    }
    chat__rate_refuse(chat, &req, false, retry_ms);
    json_decref(root);
}

void chat__dispatch(chat_t *chat, chat_session_t *s, const char *data, size_t len) {
    /* Every message costs request tokens by its size, whatever it holds
     * (junk too), charged before it is parsed; refused, it has no other
     * effect. */
    uint64_t retry_ms;
    if (!chat__rate_try(chat, s, false, 1 + len / chat->frame_unit, &retry_ms)) {
        refuse_unparsed(chat, s, data, len, retry_ms);
        return;
    }
    json_error_t err;
    /* JSON_ALLOW_NUL: "\u0000" is valid JSON, so it is not a bad_json; the
     * fields that cannot hold it refuse it themselves. Duplicate keys are
     * allowed (the last wins), as in most JSON parsers. jansson bounds the
     * nesting depth (2048) and refuses numbers it cannot hold. */
    json_t *root = chat__json_fast(data, len);
    if (root == NULL)
        root = json_loadb(data, len, JSON_ALLOW_NUL, &err);
    int parse_error = CHAT_PARSE_OK;
    if (root == NULL) {
        /* An object with a number jansson cannot hold is a bad field; a
         * bare number is not an object at all, so it stays bad_json. */
        size_t i = 0;
        while (i < len && (data[i] == ' ' || data[i] == '\t' || data[i] == '\r' || data[i] == '\n'))
            i++;
        parse_error =
            json_error_code(&err) == json_error_numeric_overflow && i < len && data[i] == '{'
                ? CHAT_PARSE_BIG_NUMBER
                : CHAT_PARSE_BAD_JSON;
    }
    /* The request runs now, or in its turn after what the chat is waiting
     * for: either way after every request that came before it. */
    if (chat->jobs == NULL && chat->inflight == 0 && !chat->pumping && !s->authing) {
        chat__execute(chat, s, root, parse_error);
        if (!chat->defer)
            return;
        chat->defer = false;
    }
    chat__enqueue(chat, s, root, parse_error);
}

void chat__execute(chat_t *chat, chat_session_t *s, json_t *root, int parse_error) {
    chat_req_t req = {.s = s, .root = root};
    bool id_ok;
    req_id(req.root, &req, &id_ok);
    if (req.root == NULL) {
        if (parse_error == CHAT_PARSE_BIG_NUMBER)
            chat__refuse(chat, &req, "bad_request", "A number in the request is too large.");
        else
            chat__refuse(chat, &req, "bad_json", "The message is not valid JSON.");
        return;
    }
    if (!json_is_object(req.root)) {
        chat__refuse(chat, &req, "bad_json", "The message must be a JSON object.");
        goto out;
    }
    if (!id_ok && !chat__edit_numeric_id(req.root)) {
        chat__refuse(chat, &req, "bad_request",
                     "The field 'id' must be a string of at most 64 characters.");
        goto out;
    }
    json_t *type = json_object_get(req.root, "type");
    if (!json_is_string(type)) {
        chat__refuse(chat, &req, "bad_request", "The field 'type' is missing or not a string.");
        goto out;
    }
    const handler_t *h = find_handler(json_string_value(type), json_string_length(type));
    if (h == NULL) {
        chat__refuse(chat, &req, "unknown_type", "The message type is not one this server knows.");
        goto out;
    }
    req.type = h->type;
    if (h->needs_login && !s->logged_in) {
        chat__refuse(chat, &req, "not_logged_in", "Log in first.");
        goto out;
    }
    if (h->settles && !chat__settled(chat)) {
        /* A membership change waits for what is pending: the executor puts
         * the request back and runs it again once that is delivered. It has
         * had no effect yet (the message bucket is charged below). */
        chat->defer = true;
        return;
    }
    if (h->is_message && !chat__rate_take(chat, &req, true, 1))
        goto out;
    h->fn(chat, &req);
out:
    if (!chat->defer)
        json_decref(req.root);
}

bool chat__message_text(chat_t *chat, const chat_req_t *req, const char **text, size_t *len) {
    return need_text(chat, req, text, len) && text_ok(chat, req, *len);
}

int chat__opt_id(chat_t *chat, const chat_req_t *req, const char *key, uint64_t *out) {
    return opt_id(chat, req, key, out);
}

int chat__opt_limit(chat_t *chat, const chat_req_t *req, unsigned def, unsigned max,
                    unsigned *out) {
    return opt_limit(chat, req, def, max, out);
}
