/* Accounts in the chat: `register`, `login` with a password or a token,
 * the guest check (no guest takes an account's nickname), `logout` and
 * `password`. The checks themselves are the auth hook's (chat.h): the chat
 * asks, the session waits, and the answer comes back as a job of the
 * executor (CHAT_JOB_AUTH), applied in its turn like any request. While a
 * session waits, its later jobs are kept on the session (held, in order,
 * at most CHAT_AUTH_WAIT_MAX) and put back at the head of the executor's
 * queue once the answer is applied, so they run after it and before
 * anything the session sends later; every other session goes on. */
#include "chat/chat_int.h"

#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/xmalloc.h"
#include "ws/ws_frame.h"

void chat_set_auth(chat_t *chat, const chat_auth_hooks_t *hooks, void *ctx) {
    if (hooks == NULL) {
        memset(&chat->auth, 0, sizeof(chat->auth));
        chat->auth_ctx = NULL;
        return;
    }
    chat->auth = *hooks;
    chat->auth_ctx = ctx;
}

/* ---- holding a session's jobs ---- */

bool chat__auth_hold(chat_t *chat, chat_session_t *s, chat_job_t *j) {
    if (j->kind == CHAT_JOB_REQUEST && s->nheld >= CHAT_AUTH_WAIT_MAX) {
        chat_req_t req = {.s = s};
        chat__refuse(chat, &req, "rate_limited",
                     "Too many requests while logging in: wait for the login's answer.");
        json_decref(j->root);
        chat__job_put(chat, j);
        return false;
    }
    j->next = NULL;
    if (s->held_tail != NULL)
        s->held_tail->next = j;
    else
        s->held = j;
    s->held_tail = j;
    s->nheld++;
    return true;
}

void chat__auth_drop_held(chat_t *chat, chat_session_t *s) {
    while (s->held != NULL) {
        chat_job_t *j = s->held;
        s->held = j->next;
        json_decref(j->root);
        chat__job_put(chat, j);
    }
    s->held_tail = NULL;
    s->nheld = 0;
}

/* The held jobs go first in the executor's queue, in their order. */
static void release_held(chat_t *chat, chat_session_t *s) {
    if (s->held == NULL)
        return;
    s->held_tail->next = chat->jobs;
    if (chat->jobs == NULL)
        chat->jobs_tail = s->held_tail;
    chat->jobs = s->held;
    chat->njobs += s->nheld;
    s->held = s->held_tail = NULL;
    s->nheld = 0;
}

/* ---- asking the hook ---- */

static void auth_done(void *arg, const chat_auth_result_t *r) {
    chat_auth_wait_t *w = arg;
    chat_t *chat = w->chat;
    w->result = *r;
    chat_job_t *j = chat__job_new(chat, CHAT_JOB_AUTH, w->sid);
    j->auth = w;
    chat__job_push(chat, j, false);
    chat__pump(chat);
}

static chat_auth_wait_t *wait_new(chat_t *chat, const chat_req_t *req, chat_auth_op_t op) {
    chat_auth_wait_t *w = xcalloc(1, sizeof(*w));
    w->chat = chat;
    w->sid = req->s->sid;
    w->op = op;
    w->type = req->type;
    if (req->ref != NULL) {
        memcpy(w->ref, req->ref, req->ref_len);
        w->ref_len = req->ref_len;
        w->has_ref = true;
    }
    return w;
}

static void wait_free(chat_t *chat, chat_auth_wait_t *w) {
    json_decref(w->root);
    if (w->registering && tt_map_get(&chat->registering, w->nick, w->nick_len) == w)
        tt_map_remove(&chat->registering, w->nick, w->nick_len);
    explicit_bzero(&w->result, sizeof(w->result));
    free(w);
}

/* Hands the check to the hook; the session waits for its answer. */
static void auth_start(chat_t *chat, const chat_req_t *req, chat_auth_wait_t *w,
                       chat_auth_req_t *ar) {
    ar->peer = req->s->peer;
    if (w->registering)
        tt_map_put(&chat->registering, w->nick, w->nick_len, w);
    if (chat->auth.authenticate(chat->auth_ctx, ar, auth_done, w) < 0) {
        wait_free(chat, w);
        chat__refuse(chat, req, "unavailable", "Accounts cannot be checked right now: try again.");
        return;
    }
    req->s->authing = true;
    chat->auth_inflight++;
}

static void copy_room(chat_auth_wait_t *w, const char *room, size_t room_len, bool has_room) {
    if (!has_room)
        return;
    memcpy(w->room, room, room_len);
    w->room_len = room_len;
    w->has_room = true;
}

static void copy_nick(chat_auth_wait_t *w, const char *nick, size_t len) {
    memcpy(w->nick, nick, len);
    w->nick_len = len;
}

/* Accounts speak tertulia.v1 (a legacy client cannot read a welcome) and
 * need the hook. */
static bool accounts_ok(chat_t *chat, const chat_req_t *req, const char *closed_code) {
    if (!req->s->v1) {
        chat__refuse(chat, req, "bad_request", "Accounts need the tertulia.v1 subprotocol.");
        return false;
    }
    if (chat->auth.authenticate == NULL) {
        chat__refuse(chat, req, closed_code, "This server has no accounts.");
        return false;
    }
    return true;
}

void chat__auth_guest(chat_t *chat, const chat_req_t *req, const char *nick, size_t nick_len,
                      const char *room, size_t room_len, bool has_room,
                      const uint8_t *resume_hash) {
    if (tt_map_get(&chat->registering, nick, nick_len) != NULL) {
        chat__refuse(chat, req, "nickname_registered",
                     "The nickname %.*s belongs to an account: log in with its password.",
                     (int)nick_len, nick);
        return;
    }
    chat_auth_wait_t *w = wait_new(chat, req, CHAT_AUTH_GUEST);
    copy_nick(w, nick, nick_len);
    copy_room(w, room, room_len, has_room);
    chat_auth_req_t ar = {.op = CHAT_AUTH_GUEST, .nick = w->nick, .nick_len = nick_len};
    if (resume_hash != NULL) {
        w->resuming = true;
        memcpy(w->resume_hash, resume_hash, sizeof(w->resume_hash));
        ar.token_hash = w->resume_hash;
    }
    auth_start(chat, req, w, &ar);
}

void chat__auth_lookup(chat_t *chat, const chat_req_t *req, const char *nick, size_t nick_len) {
    chat_auth_wait_t *w = wait_new(chat, req, CHAT_AUTH_LOOKUP);
    copy_nick(w, nick, nick_len);
    w->root = json_incref(req->root);
    chat_auth_req_t ar = {.op = CHAT_AUTH_LOOKUP, .nick = w->nick, .nick_len = nick_len};
    auth_start(chat, req, w, &ar);
}

bool chat__login_credentials(chat_t *chat, const chat_req_t *req) {
    const char *pw = NULL, *tok = NULL, *room = NULL, *nick = NULL;
    size_t pw_len = 0, tok_len = 0, room_len = 0, nick_len = 0;
    const char *jwt = NULL;
    size_t jwt_len = 0;
    int has_pw = chat__get_str(req->root, "password", &pw, &pw_len);
    int has_tok = chat__get_str(req->root, "token", &tok, &tok_len);
    int has_jwt = chat__get_str(req->root, "jwt", &jwt, &jwt_len);
    if (has_pw < 0 || has_tok < 0 || has_jwt < 0) {
        chat__refuse(chat, req, "bad_request",
                     "The fields 'password', 'token' and 'jwt' are strings.");
        return true;
    }
    if (has_pw == 0 && has_tok == 0 && has_jwt == 0)
        return false;
    if (!accounts_ok(chat, req, "auth_failed"))
        return true;
    int has_room = chat__opt_str(chat, req, "room", &room, &room_len);
    if (has_room < 0 || (has_room > 0 && !chat__room_ok(chat, req, room, room_len)))
        return true;
    chat_auth_wait_t *w;
    chat_auth_req_t ar = {0};
    if (has_jwt > 0) {
        /* An operator's signed token: its sub is the nickname. */
        w = wait_new(chat, req, CHAT_AUTH_JWT);
        ar.op = CHAT_AUTH_JWT;
        ar.secret = jwt;
        ar.secret_len = jwt_len > CHAT_JWT_MAX ? CHAT_JWT_MAX + 1 : jwt_len;
    } else if (has_tok > 0) {
        /* A token from an earlier welcome: a reload, a tab, a device. One
         * that cannot be one gets the answer a wrong one gets (the hook's,
         * so it takes as long). */
        w = wait_new(chat, req, CHAT_AUTH_TOKEN);
        ar.op = CHAT_AUTH_TOKEN;
        ar.secret = tok;
        ar.secret_len = tok_len > CHAT_TOKEN_MAX ? CHAT_TOKEN_MAX + 1 : tok_len;
    } else {
        if (!chat__need_str(chat, req, "nickname", &nick, &nick_len))
            return true;
        if (!chat_nickname_is_valid(nick, nick_len)) {
            chat__refuse(chat, req, "nickname_invalid",
                         "A nickname has 1 to 32 letters, digits, '_', '-' or '.'.");
            return true;
        }
        w = wait_new(chat, req, CHAT_AUTH_PASSWORD);
        copy_nick(w, nick, nick_len);
        ar.op = CHAT_AUTH_PASSWORD;
        ar.nick = w->nick;
        ar.nick_len = nick_len;
        ar.secret = pw;
        ar.secret_len = pw_len;
    }
    copy_room(w, room, room_len, has_room > 0);
    auth_start(chat, req, w, &ar);
    return true;
}

static bool password_ok(chat_t *chat, const chat_req_t *req, size_t len) {
    if (len >= CHAT_PASSWORD_MIN && len <= CHAT_PASSWORD_MAX)
        return true;
    chat__refuse(chat, req, "password_invalid", "A password has %d to %d bytes.", CHAT_PASSWORD_MIN,
                 CHAT_PASSWORD_MAX);
    return false;
}

void chat__on_register(chat_t *chat, const chat_req_t *req) {
    chat_session_t *s = req->s;
    if (s->logged_in) {
        chat__refuse(chat, req, "already_logged_in", "You are already logged in as %s.", s->nick);
        return;
    }
    if (!accounts_ok(chat, req, "registration_closed"))
        return;
    const char *nick, *pw;
    size_t nick_len, pw_len;
    if (!chat__need_str(chat, req, "nickname", &nick, &nick_len) ||
        !chat__need_str(chat, req, "password", &pw, &pw_len))
        return;
    if (!chat_nickname_is_valid(nick, nick_len)) {
        chat__refuse(chat, req, "nickname_invalid",
                     "A nickname has 1 to 32 letters, digits, '_', '-' or '.'.");
        return;
    }
    if (!password_ok(chat, req, pw_len))
        return;
    /* A nickname in use now (a guest's, or an account's online) or being
     * registered by someone else is taken; one registered before is the
     * hook's answer. */
    if (chat__user_find(chat, nick, nick_len) != NULL ||
        tt_map_get(&chat->registering, nick, nick_len) != NULL) {
        chat__refuse(chat, req, "nickname_taken", "The nickname %.*s is taken.", (int)nick_len,
                     nick);
        return;
    }
    chat_auth_wait_t *w = wait_new(chat, req, CHAT_AUTH_REGISTER);
    copy_nick(w, nick, nick_len);
    w->registering = true;
    chat_auth_req_t ar = {.op = CHAT_AUTH_REGISTER,
                          .nick = w->nick,
                          .nick_len = nick_len,
                          .secret = pw,
                          .secret_len = pw_len};
    auth_start(chat, req, w, &ar);
}

/* Ends s on purpose: `logged_out`, then a close 1000 that is a goodbye
 * (the user ends with its last connection, no grace time). */
static void say_goodbye(chat_t *chat, chat_session_t *s, const chat_req_t *req) {
    json_t *o = json_object();
    json_object_set_new(o, "type", json_string_nocheck("logged_out"));
    chat__reply(chat, s, req, o);
    s->logged_out = true;
    if (!s->closing) {
        s->closing = true;
        chat->io.close(chat->io_ctx, s->conn, WS_CLOSE_NORMAL, "logged out");
    }
}

/* s's logout is done: s, and with everywhere every connection of its user. */
static void logout_finish(chat_t *chat, chat_session_t *s, const chat_req_t *req, bool everywhere) {
    chat__log_event(chat, CHAT_EV_LOGIN, s, NULL,
                    everywhere ? "logged out everywhere" : "logged out");
    if (everywhere) {
        chat_user_t *u = s->user;
        for (uint32_t i = 0; i < u->nsess; i++)
            if (u->sess[i] != s && !u->sess[i]->close_queued)
                say_goodbye(chat, u->sess[i], NULL);
    }
    say_goodbye(chat, s, req);
}

void chat__on_logout(chat_t *chat, const chat_req_t *req) {
    chat_session_t *s = req->s;
    json_t *ev = json_object_get(req->root, "everywhere");
    if (ev != NULL && !json_is_boolean(ev) && !json_is_null(ev)) {
        chat__refuse(chat, req, "bad_request", "The field 'everywhere' must be true or false.");
        return;
    }
    bool everywhere = json_is_true(ev);
    /* A guest holds no token the store knows: its goodbye is all. */
    if (s->user->kind != CHAT_USER_ACCOUNT || chat->auth.authenticate == NULL) {
        logout_finish(chat, s, req, everywhere);
        return;
    }
    chat_auth_wait_t *w = wait_new(chat, req, CHAT_AUTH_LOGOUT);
    w->everywhere = everywhere;
    chat_auth_req_t ar = {.op = CHAT_AUTH_LOGOUT,
                          .account_id = s->user->account_id,
                          .token_hash = s->has_token ? s->token_hash : NULL,
                          .everywhere = everywhere};
    auth_start(chat, req, w, &ar);
}

void chat__on_password(chat_t *chat, const chat_req_t *req) {
    chat_session_t *s = req->s;
    const char *old, *new_pw;
    size_t old_len, new_len;
    if (!chat__need_str(chat, req, "old", &old, &old_len) ||
        !chat__need_str(chat, req, "new", &new_pw, &new_len))
        return;
    if (s->user->kind != CHAT_USER_ACCOUNT || chat->auth.authenticate == NULL) {
        chat__refuse(chat, req, "bad_request", "A guest has no password: register an account.");
        return;
    }
    if (!password_ok(chat, req, new_len))
        return;
    chat_auth_wait_t *w = wait_new(chat, req, CHAT_AUTH_CHANGE);
    chat_auth_req_t ar = {.op = CHAT_AUTH_CHANGE,
                          .nick = s->nick,
                          .nick_len = s->nick_len,
                          .account_id = s->user->account_id,
                          .secret = old,
                          .secret_len = old_len,
                          .new_secret = new_pw,
                          .new_secret_len = new_len};
    auth_start(chat, req, w, &ar);
}

/* ---- applying an answer ---- */

static void refuse_status(chat_t *chat, const chat_req_t *req, const chat_auth_wait_t *w) {
    const chat_auth_result_t *r = &w->result;
    switch (r->status) {
    case CHAT_AUTH_LIMITED:
        chat__refuse_extra(chat, req, json_pack("{s:I}", "retry_after_ms", (json_int_t)r->retry_ms),
                           "rate_limited", "Too many attempts: try again in %llu ms.",
                           (unsigned long long)r->retry_ms);
        break;
    case CHAT_AUTH_TAKEN:
        chat__refuse(chat, req, "nickname_taken", "The nickname %.*s is an account already.",
                     (int)w->nick_len, w->nick);
        break;
    case CHAT_AUTH_REGISTERED:
        chat__refuse(chat, req, "nickname_registered",
                     "The nickname %.*s belongs to an account: log in with its password.",
                     (int)w->nick_len, w->nick);
        break;
    case CHAT_AUTH_CLOSED:
        chat__refuse(chat, req, "registration_closed", "This server takes no new accounts.");
        break;
    case CHAT_AUTH_IN_USE:
        chat__refuse(chat, req, "nickname_taken", "The nickname %.*s is taken.", (int)w->nick_len,
                     w->nick);
        break;
    case CHAT_AUTH_FAILED:
        if (w->op == CHAT_AUTH_CHANGE)
            chat__refuse(chat, req, "auth_failed", "The old password is wrong.");
        else
            chat__refuse(chat, req, "auth_failed",
                         w->op == CHAT_AUTH_TOKEN
                             ? "That token is not valid (expired, revoked or wrong): log in with "
                               "the password."
                         : w->op == CHAT_AUTH_JWT ? "That JWT is not accepted here."
                                                  : "Wrong nickname or password.");
        break;
    case CHAT_AUTH_OK:
    case CHAT_AUTH_UNAVAILABLE:
    default:
        chat__refuse(chat, req, "unavailable", "Accounts cannot be checked right now: try again.");
        break;
    }
}

/* An account's login succeeded: s joins its user (many connections may). */
static void account_login(chat_t *chat, chat_session_t *s, const chat_req_t *req,
                          const chat_auth_wait_t *w) {
    const chat_auth_result_t *r = &w->result;
    chat_user_t *u = chat__user_find(chat, r->nick, r->nick_len);
    if (u != NULL && u->kind != CHAT_USER_REMOTE &&
        (u->kind != CHAT_USER_ACCOUNT || u->account_id != r->account_id)) {
        /* Only a guest from before the account existed can hold it: the
         * guest check and the registering names keep guests off
         * accounts' nicknames otherwise. (Another node's user of that
         * name is this account there: chat__user_new adopts it.) */
        chat__refuse(chat, req, "nickname_taken",
                     "The nickname %.*s is in use by a guest right now: try again once it is "
                     "free.",
                     (int)r->nick_len, r->nick);
        return;
    }
    /* Every login to an account (a password, a token, a JWT) meets the
     * server's bans, by name and by address. */
    if (chat__mod_refuse_banned(chat, req, r->nick, r->nick_len, NULL))
        return;
    if (u == NULL || u->kind == CHAT_USER_REMOTE) {
        u = chat__user_new(chat, r->nick, r->nick_len, CHAT_USER_ACCOUNT);
        u->account_id = r->account_id;
    }
    chat__user_attach(chat, u, s);
    /* An operator's JWT is its own credential: no token of ours to revoke. */
    s->has_token = w->op != CHAT_AUTH_JWT;
    memcpy(s->token_hash, r->token_hash, sizeof(s->token_hash));
    chat__log_event(chat, CHAT_EV_LOGIN, s, NULL,
                    w->op == CHAT_AUTH_REGISTER ? "registered an account"
                    : w->op == CHAT_AUTH_TOKEN  ? "logged in to an account with a token"
                    : w->op == CHAT_AUTH_JWT    ? "logged in with an operator's JWT"
                                                : "logged in to an account with its password");
    json_t *extra = r->token[0] != '\0' ? json_pack("{s:s}", "token", r->token) : NULL;
    chat__welcome(chat, req, extra);
    if (w->has_room)
        chat__join(chat, req, w->room, w->room_len, 0);
}

void chat__auth_apply(chat_t *chat, chat_auth_wait_t *w) {
    chat->auth_inflight--;
    /* The name is no longer being registered: an account now, or free. */
    if (w->registering && tt_map_get(&chat->registering, w->nick, w->nick_len) == w)
        tt_map_remove(&chat->registering, w->nick, w->nick_len);
    w->registering = false;
    chat_session_t *s = chat__session_find(chat, w->sid);
    if (s == NULL || s->close_queued) {
        /* The connection went meanwhile; what the hook did stays done (an
         * account made, a token that nobody holds and that expires). */
        if (s != NULL)
            s->authing = false;
        wait_free(chat, w);
        return;
    }
    s->authing = false;
    /* What the replies point into must outlive them (a join's history
     * read keeps the request, and its ref, until it completes): a JSON
     * object holding the id, or the request itself. */
    json_t *root = w->root != NULL ? json_incref(w->root) : json_object();
    if (w->root == NULL && w->has_ref)
        json_object_set_new(root, "id", json_stringn_nocheck(w->ref, w->ref_len));
    json_t *id = w->has_ref ? json_object_get(root, "id") : NULL;
    chat_req_t req = {.s = s,
                      .root = root,
                      .type = w->type,
                      .ref = json_is_string(id) ? json_string_value(id) : NULL,
                      .ref_len = json_is_string(id) ? json_string_length(id) : 0};
    const chat_auth_result_t *r = &w->result;
    if (w->op == CHAT_AUTH_LOOKUP && r->status == CHAT_AUTH_NOTFOUND) {
        chat__refuse(chat, &req, "no_such_user",
                     strcmp(w->type, "private") == 0 ? "There is no user named %.*s."
                                                     : "There is no account named %.*s.",
                     (int)w->nick_len, w->nick);
    } else if (r->status != CHAT_AUTH_OK) {
        refuse_status(chat, &req, w);
    } else {
        switch (w->op) {
        case CHAT_AUTH_GUEST:
            chat__guest_login(chat, &req, w->nick, w->nick_len, w->room, w->room_len, w->has_room,
                              w->resuming ? w->resume_hash : NULL);
            break;
        case CHAT_AUTH_REGISTER:
        case CHAT_AUTH_PASSWORD:
        case CHAT_AUTH_TOKEN:
        case CHAT_AUTH_JWT:
            account_login(chat, s, &req, w);
            break;
        case CHAT_AUTH_LOOKUP:
            /* A private to an offline account, or a role for one. */
            if (strcmp(w->type, "private") == 0)
                chat__private_to_account(chat, &req, r->nick, r->nick_len);
            else
                chat__mod_account_found(chat, &req, r->nick, r->nick_len);
            break;
        case CHAT_AUTH_LOGOUT:
            if (s->logged_in)
                logout_finish(chat, s, &req, w->everywhere);
            break;
        case CHAT_AUTH_CHANGE: {
            /* Every other token of the account is revoked; this
             * connection holds the new one. */
            memcpy(s->token_hash, r->token_hash, sizeof(s->token_hash));
            s->has_token = true;
            json_t *o = json_object();
            json_object_set_new(o, "type", json_string_nocheck("password_changed"));
            json_object_set_new(o, "token", json_string(r->token));
            chat__reply(chat, s, &req, o);
            tt_log_info("chat: %s (%s): password changed", s->peer, s->nick);
            break;
        }
        }
    }
    release_held(chat, s);
    json_decref(root);
    wait_free(chat, w);
}
