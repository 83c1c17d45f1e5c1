/* The chat context: sessions, rooms, the membership records that link them
 * both ways, presence, the executor that runs requests in order (waiting
 * for the store when a step is in flight), and the batches that chat_flush
 * hands to the store and delivers once they are written. Request parsing
 * lives in chat_proto.c and serialization in chat_out.c. */
#include "chat/chat_int.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/log.h"
#include "core/xmalloc.h"
#include "ws/ws_frame.h"

#ifndef TT_VERSION
#define TT_VERSION "0"
#endif

void chat_config_defaults(chat_config_t *cfg) {
    cfg->server_name = "tertulia";
    cfg->server_version = TT_VERSION;
    cfg->max_text = CHAT_MAX_TEXT_DEFAULT;
    cfg->max_message = CHAT_MAX_MESSAGE_DEFAULT;
    cfg->max_rooms = CHAT_MAX_ROOMS_DEFAULT;
    cfg->reply_budget = CHAT_REPLY_BUDGET_DEFAULT;
    cfg->history_on_join = CHAT_HISTORY_DEFAULT;
    cfg->rate_burst = CHAT_RATE_BURST_DEFAULT;
    cfg->rate_limit = CHAT_RATE_LIMIT_DEFAULT;
    cfg->resume_ms = CHAT_RESUME_MS_DEFAULT;
    cfg->guests_off = false;
    cfg->nadmins = 0;
    cfg->nlimits_extra = 0;
}

size_t chat_reply_budget_min(size_t max_text) {
    return 6 * max_text + CHAT_MESSAGE_JSON_OVERHEAD + CHAT_MENTIONS_JSON_MAX + CHAT_AWAY_JSON_MAX +
           CHAT_ROLES_JSON_MAX + CHAT_TOPIC_JSON_MAX + CHAT_NICK_MAX + CHAT_ROOM_MAX + 6 +
           (size_t)CHAT_MEMBERS_MAX * (CHAT_NICK_MAX + 3) + CHAT_REPLY_JSON_OVERHEAD;
}

bool chat_config_add_limit(chat_config_t *cfg, const char *name, int64_t value) {
    if (cfg->nlimits_extra >= CHAT_LIMITS_EXTRA_MAX)
        return false;
    cfg->limits_extra[cfg->nlimits_extra].name = name;
    cfg->limits_extra[cfg->nlimits_extra].value = value;
    cfg->nlimits_extra++;
    return true;
}

/* The settings derived from cfg, at chat_new and at every reconfigure. */
static void apply_config(chat_t *chat) {
    if (chat->cfg.history_on_join > CHAT_HISTORY_MAX)
        chat->cfg.history_on_join = CHAT_HISTORY_MAX;
    /* One message of the largest size must fit a reply, or a room holding
     * one could never be read back. */
    chat->reply_budget =
        chat->cfg.reply_budget ? chat->cfg.reply_budget : CHAT_REPLY_BUDGET_DEFAULT;
    if (chat->reply_budget < chat_reply_budget_min(chat->cfg.max_text))
        chat->reply_budget = chat_reply_budget_min(chat->cfg.max_text);
}

void chat_reconfigure(chat_t *chat, const chat_config_t *cfg) {
    chat->cfg.max_text = cfg->max_text;
    chat->cfg.max_rooms = cfg->max_rooms;
    chat->cfg.history_on_join = cfg->history_on_join;
    chat->cfg.rate_burst = cfg->rate_burst;
    chat->cfg.rate_limit = cfg->rate_limit;
    chat->cfg.resume_ms = cfg->resume_ms;
    chat->cfg.reply_budget = cfg->reply_budget;
    for (size_t i = 0; i < chat->cfg.nlimits_extra && i < cfg->nlimits_extra; i++)
        chat->cfg.limits_extra[i].value = cfg->limits_extra[i].value;
    apply_config(chat);
}

chat_t *chat_new(const chat_config_t *cfg, const chat_io_t *io, void *io_ctx) {
    chat_t *chat = xcalloc(1, sizeof(*chat));
    if (cfg != NULL)
        chat->cfg = *cfg;
    else
        chat_config_defaults(&chat->cfg);
    chat->server_name = xstrdup(chat->cfg.server_name ? chat->cfg.server_name : "tertulia");
    chat->server_version =
        xstrdup(chat->cfg.server_version ? chat->cfg.server_version : TT_VERSION);
    chat->cfg.server_name = chat->server_name;
    chat->cfg.server_version = chat->server_version;
    apply_config(chat);
    /* A message costs request tokens by its size: the largest costs
     * 1 + CHAT_RATE_FRAME_PARTS, whatever the transport's limit. */
    chat->frame_unit = chat->cfg.max_message / CHAT_RATE_FRAME_PARTS;
    if (chat->frame_unit < CHAT_RATE_FRAME_MIN)
        chat->frame_unit = CHAT_RATE_FRAME_MIN;
    chat->io = *io;
    chat->io_ctx = io_ctx;
    tt_map_init(&chat->nicks, TT_MAP_NOCASE);
    tt_map_init(&chat->rooms, TT_MAP_NOCASE);
    tt_map_init(&chat->by_sid, 0);
    tt_map_init(&chat->registering, TT_MAP_NOCASE);
    tt_map_init(&chat->owned, TT_MAP_NOCASE);
    tt_list_init(&chat->parked);
    tt_list_init(&chat->typing);
    tt_hist_init(&chat->counters.commit_us, tt_hist_latency_us, tt_hist_latency_us_n);
    tt_hist_init(&chat->counters.delivery_us, tt_hist_latency_us, tt_hist_latency_us_n);
    return chat;
}

static void pending_drop(chat_pending_t *p) {
    tt_msg_unref(p->out);
    tt_msg_unref(p->out_plain);
    json_decref(p->req);
    free(p->mentions);
}

static void batch_free(chat_batch_t *b) {
    for (size_t i = 0; i < b->n; i++)
        pending_drop(&b->items[i]);
    free(b->items);
    free(b->msgs);
    free(b->bus_msgs);
    free(b);
}

void chat_free(chat_t *chat) {
    if (chat == NULL)
        return;
    for (size_t i = 0; i < chat->npending; i++)
        pending_drop(&chat->pending[i]);
    while (chat->batches != NULL) {
        chat_batch_t *b = chat->batches;
        chat->batches = b->next;
        batch_free(b);
    }
    while (chat->free_batches != NULL) {
        chat_batch_t *b = chat->free_batches;
        chat->free_batches = b->next;
        b->n = 0;
        batch_free(b);
    }
    for (int list = 0; list < 2; list++) {
        chat_job_t *j = list == 0 ? chat->jobs : chat->free_jobs;
        while (j != NULL) {
            chat_job_t *next = j->next;
            json_decref(j->root);
            free(j->auth);
            free(j);
            j = next;
        }
    }
    /* Every presence is in exactly one user's array, and every membership
     * record in exactly one session's: freed there; the rooms' arrays only
     * point at them. */
    chat__user_free_all(chat);
    chat_session_t *s = chat->sessions;
    while (s != NULL) {
        chat_session_t *next = s->next;
        chat__auth_drop_held(chat, s);
        chat__typing_end_all(chat, s, false);
        for (uint32_t i = 0; i < s->nrooms; i++)
            free(s->rooms[i]);
        free(s->rooms);
        free(s->peer);
        free(s);
        s = next;
    }
    size_t pos = 0;
    void *v;
    while (tt_map_next(&chat->rooms, &pos, NULL, NULL, &v)) {
        chat_room_t *room = v;
        chat__mod_free(chat, room);
        free(room->members);
        free(room->people);
        free(room);
    }
    chat__mod_free_all(chat);
    tt_map_dispose(&chat->rooms);
    tt_map_dispose(&chat->nicks);
    tt_map_dispose(&chat->by_sid);
    tt_map_dispose(&chat->registering);
    free(chat->pending);
    free(chat->node);
    free(chat->server_name);
    free(chat->server_version);
    free(chat);
}

int chat_set_store(chat_t *chat, const chat_store_hooks_t *hooks, void *store_ctx) {
    if (hooks == NULL) {
        memset(&chat->store, 0, sizeof(chat->store));
        chat->store_ctx = NULL;
        return 0;
    }
    if (hooks->last_id != NULL) {
        uint64_t last = 0;
        int rc = hooks->last_id(store_ctx, &last);
        if (rc < 0)
            return rc;
        if (last > chat->last_id)
            chat->last_id = last;
        chat->reserved_id = chat->last_id;
    }
    chat->store = *hooks;
    chat->store_ctx = store_ctx;
    /* What moderation keeps: rooms with their roles, topics and bans. */
    return chat__mod_load(chat);
}

void chat_set_bus(chat_t *chat, const chat_bus_hooks_t *hooks, void *ctx, const char *node) {
    free(chat->node);
    chat->node = NULL;
    if (hooks == NULL) {
        memset(&chat->bus, 0, sizeof(chat->bus));
        chat->bus_ctx = NULL;
        return;
    }
    chat->bus = *hooks;
    chat->bus_ctx = ctx;
    if (node != NULL)
        chat->node = xstrdup(node);
    /* Rooms that exist already (kept by moderation) are followed now. */
    size_t pos = 0;
    void *v;
    while (tt_map_next(&chat->rooms, &pos, NULL, NULL, &v)) {
        chat_room_t *room = v;
        chat->bus.room_watch(chat->bus_ctx, room->name, room->name_len, true);
    }
}

#define CHAT_REFUSAL_NAME_(code) #code,
const char *const chat_refusal_names[CHAT_REFUSAL_COUNT] = {CHAT_REFUSAL_CODES(CHAT_REFUSAL_NAME_)};

const chat_counters_t *chat_counters(const chat_t *chat) {
    return &chat->counters;
}

void chat_stats(const chat_t *chat, chat_stats_t *out) {
    out->sessions = chat->nsessions;
    out->rooms = tt_map_count(&chat->rooms);
    out->kept = chat->kept_rooms;
    out->users = tt_map_count(&chat->nicks);
    out->messages = chat->messages;
}

void chat_rooms_each(const chat_t *chat, chat_room_cb cb, void *ctx) {
    size_t pos = 0;
    void *v;
    while (tt_map_next(&chat->rooms, &pos, NULL, NULL, &v)) {
        const chat_room_t *r = v;
        chat_room_info_t info = {.name = r->name,
                                 .name_len = r->name_len,
                                 .members = r->npeople,
                                 .connections = r->count};
        if (!cb(ctx, &info))
            return;
    }
}

/* ---- names ---- */

static bool is_name_char(unsigned char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '-' || c == '.';
}

bool chat_nickname_is_valid(const char *name, size_t len) {
    if (len < 1 || len > CHAT_NICK_MAX)
        return false;
    for (size_t i = 0; i < len; i++)
        if (!is_name_char((unsigned char)name[i]))
            return false;
    return true;
}

bool chat_room_name_is_valid(const char *name, size_t len) {
    if (len < 1 || len > CHAT_ROOM_MAX)
        return false;
    size_t i = name[0] == '#' ? 1 : 0;
    if (i == len)
        return false;
    for (; i < len; i++)
        if (!is_name_char((unsigned char)name[i]))
            return false;
    return true;
}

/* ---- sessions ---- */

chat_session_t *chat_session_open(chat_t *chat, void *conn, bool v1, const char *peer) {
    chat_session_t *s = xcalloc(1, sizeof(*s));
    s->sid = ++chat->next_sid;
    s->conn = conn;
    s->v1 = v1;
    s->peer = xstrdup(peer ? peer : "?");
    chat__rate_session_init(chat, s);
    s->next = chat->sessions;
    if (chat->sessions != NULL)
        chat->sessions->prev = s;
    chat->sessions = s;
    chat->nsessions++;
    tt_map_put(&chat->by_sid, &s->sid, sizeof(s->sid), s);
    tt_log_debug("chat: %s: session %llu open (%s)", s->peer, (unsigned long long)s->sid,
                 v1 ? "tertulia.v1" : "legacy");
    return s;
}

chat_session_t *chat__session_find(chat_t *chat, uint64_t sid) {
    return tt_map_get(&chat->by_sid, &sid, sizeof(sid));
}

const char *chat_session_nickname(const chat_session_t *s) {
    return s->logged_in ? s->nick : NULL;
}

/* Runs a close in its turn: with nothing pending or in flight, so every
 * message the session (or anyone) sent before reaches the others before
 * the member_left. Returns false when it must wait. */
static bool close_now(chat_t *chat, chat_session_t *s, const char *reason) {
    if (!chat__settled(chat))
        return false;
    /* A v1 connection that drops without a goodbye leaves its user's
     * presence parked and the user alive for the grace time: a reload or
     * a reconnect comes back without any noise. A legacy client cannot
     * resume (it has no token): it goes at once, as does a goodbye. */
    /* `logout` is a goodbye whatever closed the connection after it. */
    if (s->logged_out)
        reason = "quit";
    /* Banned from the server: gone at once, whatever closed it. */
    if (s->banned)
        reason = "ban";
    bool park = s->logged_in && s->v1 && chat->cfg.resume_ms > 0 && strcmp(reason, "quit") != 0 &&
                !s->banned;
    chat__auth_drop_held(chat, s);
    chat__typing_end_all(chat, s, true);
    while (s->nrooms > 0)
        chat__leave(chat, s->rooms[s->nrooms - 1], reason, park);
    if (s->logged_in)
        chat__user_detach(chat, s, reason, park);
    tt_map_remove(&chat->by_sid, &s->sid, sizeof(s->sid));
    if (s->prev != NULL)
        s->prev->next = s->next;
    else
        chat->sessions = s->next;
    if (s->next != NULL)
        s->next->prev = s->prev;
    chat->nsessions--;
    tt_log_debug("chat: %s: session %llu closed (%s)", s->peer, (unsigned long long)s->sid, reason);
    free(s->rooms);
    free(s->peer);
    free(s);
    return true;
}

chat_job_t *chat__job_new(chat_t *chat, chat_job_kind_t kind, uint64_t sid) {
    chat_job_t *j = chat->free_jobs;
    if (j != NULL)
        chat->free_jobs = j->next;
    else
        j = xmalloc(sizeof(*j));
    memset(j, 0, sizeof(*j));
    j->kind = kind;
    j->sid = sid;
    return j;
}

void chat__job_put(chat_t *chat, chat_job_t *j) {
    j->root = NULL; /* handed to chat__execute, which released it */
    j->next = chat->free_jobs;
    chat->free_jobs = j;
}

void chat__job_push(chat_t *chat, chat_job_t *j, bool front) {
    if (front) {
        j->next = chat->jobs;
        chat->jobs = j;
        if (chat->jobs_tail == NULL)
            chat->jobs_tail = j;
    } else {
        j->next = NULL;
        if (chat->jobs_tail != NULL)
            chat->jobs_tail->next = j;
        else
            chat->jobs = j;
        chat->jobs_tail = j;
    }
    chat->njobs++;
}

static chat_job_t *job_pop(chat_t *chat) {
    chat_job_t *j = chat->jobs;
    if (j == NULL)
        return NULL;
    chat->jobs = j->next;
    if (chat->jobs == NULL)
        chat->jobs_tail = NULL;
    chat->njobs--;
    return j;
}

void chat__enqueue(chat_t *chat, chat_session_t *s, json_t *root, int parse_error) {
    chat_job_t *j = chat__job_new(chat, CHAT_JOB_REQUEST, s->sid);
    j->root = root;
    j->parse_error = parse_error;
    chat__job_push(chat, j, false);
}

void chat_session_close(chat_t *chat, chat_session_t *s, const char *reason) {
    if (s == NULL || s->close_queued)
        return;
    /* Detached at once: the connection is going, nothing more reaches it. */
    s->conn = NULL;
    s->closing = true; /* (close_queued, set below, is what chat__send checks) */
    s->close_queued = true;
    chat_job_t *j = chat__job_new(chat, CHAT_JOB_CLOSE, s->sid);
    j->reason = reason != NULL ? reason : "disconnect";
    chat__job_push(chat, j, false);
    chat__pump(chat);
}

void chat_session_end_of_input(chat_t *chat, chat_session_t *s) {
    if (s == NULL || s->close_queued)
        return;
    s->closing = true; /* nothing more comes; what came still runs */
    chat__job_push(chat, chat__job_new(chat, CHAT_JOB_EOF, s->sid), false);
    chat__pump(chat);
}

void chat__pump(chat_t *chat) {
    if (chat->pumping)
        return;
    chat->pumping = true;
    while (chat->jobs != NULL && chat->inflight == 0) {
        chat_job_t *j = job_pop(chat);
        chat_session_t *s = chat__session_find(chat, j->sid);
        bool done = true;
        if (j->kind == CHAT_JOB_AUTH) {
            /* An answer changes who is logged in (and may join a room):
             * like a login, it waits until what is pending is delivered. */
            done = chat__settled(chat);
            if (done) {
                chat__auth_apply(chat, j->auth);
                j->auth = NULL;
            }
        } else if (s != NULL && s->authing && j->kind != CHAT_JOB_CLOSE) {
            /* The session waits for its check: its jobs run after it. */
            chat__auth_hold(chat, s, j);
            continue;
        } else if (j->kind == CHAT_JOB_CLOSE) {
            done = s == NULL || close_now(chat, s, j->reason);
        } else if (j->kind == CHAT_JOB_EOF) {
            /* Every request the client sent has run: now the close. */
            if (s != NULL && !s->close_queued)
                chat->io.close(chat->io_ctx, s->conn, WS_CLOSE_NORMAL, "end of input");
        } else if (s != NULL) {
            chat__execute(chat, s, j->root, j->parse_error);
            done = !chat->defer;
            chat->defer = false;
        } else {
            json_decref(j->root);
        }
        if (!done) {
            /* It waits for what it just handed to the store: first again. */
            chat__job_push(chat, j, true);
            break;
        }
        chat__job_put(chat, j);
    }
    chat->pumping = false;
}

void chat_session_on_text(chat_t *chat, chat_session_t *s, const char *data, size_t len) {
    /* A session being closed for flooding reads nothing more: the transport
     * may still hand over what arrived in the same read. */
    if (s->closing)
        return;
    chat__dispatch(chat, s, data, len);
}

/* ---- rooms and membership ---- */

/* Rooms are one whatever the case and the leading '#' (PROTOCOL.md,
 * "Identity"): the map's key is the name without its '#', compared ignoring
 * case, and the room keeps the spelling it was created under. */
chat_room_t *chat__room_find(chat_t *chat, const char *name, size_t len) {
    if (len > 0 && name[0] == '#') {
        name++;
        len--;
    }
    return tt_map_get(&chat->rooms, name, len);
}

chat_member_t *chat__member_find(const chat_session_t *s, const chat_room_t *room) {
    if (room == NULL)
        return NULL;
    for (uint32_t i = 0; i < s->nrooms; i++)
        if (s->rooms[i]->room == room)
            return s->rooms[i];
    return NULL;
}

/* joined.members: every member, or in a room of more than CHAT_MEMBERS_MAX
 * the joiner and CHAT_MEMBERS_MAX - 1 others (which ones is unspecified:
 * `who` pages through them all). *size is what the names take in JSON. */
static json_t *joined_members_json(const chat_room_t *room, const chat_session_t *self,
                                   size_t *size, json_t **away) {
    /* Users, once each, however many of their connections are here. */
    json_t *a = json_array();
    *size = 0;
    *away = NULL;
    bool cut = room->npeople > CHAT_MEMBERS_MAX;
    if (cut) {
        json_array_append_new(a, json_stringn_nocheck(self->nick, self->nick_len));
        *size += self->nick_len + 3;
    }
    for (uint32_t i = 0; i < room->npeople && json_array_size(a) < CHAT_MEMBERS_MAX; i++) {
        const chat_user_t *u = room->people[i]->user;
        if (cut && u == self->user)
            continue;
        json_array_append_new(a, json_stringn_nocheck(u->nick, u->nick_len));
        *size += u->nick_len + 3;
        chat__away_add(away, u, size);
    }
    if (cut)
        chat__away_add(away, self->user, size);
    return a;
}

/* Sends obj (reference stolen) to every v1 member of room but `except`,
 * serialized once. */
static void room_presence(chat_t *chat, const chat_room_t *room, const chat_session_t *except,
                          json_t *obj) {
    uint32_t others = room->v1_count - (except != NULL && except->v1 ? 1 : 0);
    if (others > 0) {
        tt_msg_t *msg = chat__msg_json(obj, 128);
        for (uint32_t i = 0; i < room->count; i++) {
            chat_session_t *m = room->members[i]->session;
            if (m->v1 && m != except)
                chat__send(chat, m, msg);
        }
        tt_msg_unref(msg);
    }
    json_decref(obj);
}

static json_t *presence_json(const char *type, const chat_room_t *room, const chat_user_t *u,
                             const char *reason) {
    json_t *o = json_object();
    json_object_set_new(o, "type", json_string_nocheck(type));
    json_object_set_new(o, "room", json_stringn_nocheck(room->name, room->name_len));
    json_object_set_new(o, "nickname", json_stringn_nocheck(u->nick, u->nick_len));
    json_object_set_new(o, "ts", json_integer((json_int_t)chat__now_ms()));
    if (reason != NULL)
        json_object_set_new(o, "reason", json_string(reason));
    return o;
}

/* ---- history ---- */

/* msgs[0..n) (oldest first) as a JSON array, cut to the newest messages
 * whose JSON fits budget bytes (never fewer than one); *cut tells whether
 * any were left out. Only large pages are measured; the common one is not. */
static json_t *history_message_json(chat_t *chat, const chat_message_t *m, const char *room,
                                    size_t room_len) {
    if (m->deleted || m->edited_ts != 0)
        return chat__stored_message_json(chat, m, room, room_len);
    if (room == NULL || m->kind != CHAT_MSG_ROOM)
        return chat__message_json(m);
    /* Stored under any spelling of the room (or its folded key): named as
     * the room is named now, so clients match it exactly. */
    chat_message_t c = *m;
    c.to = room;
    c.to_len = room_len;
    json_t *o = chat__message_json(&c);
    /* Its mentions: the members it names, as the room is now. */
    json_t *mentions =
        chat__mentions(chat, chat__room_find(chat, room, room_len), m->text, m->text_len);
    if (mentions != NULL)
        json_object_set_new(o, "mentions", mentions);
    return o;
}

/* room (NULL: as stored) names the room in every message. */
static json_t *history_array(chat_t *chat, const chat_message_t *msgs, size_t n, size_t budget,
                             const char *room, size_t room_len, bool *cut) {
    size_t bound = 0; /* an upper bound of the array's JSON: every byte escaped in six */
    for (size_t i = 0; i < n; i++)
        bound += CHAT_MESSAGE_JSON_OVERHEAD + CHAT_MENTIONS_JSON_MAX +
                 6 * (msgs[i].text_len + msgs[i].from_len + msgs[i].to_len + 3);
    size_t first = 0;
    *cut = false;
    if (bound > budget) {
        size_t total = 0, k = n;
        while (k > 0) {
            json_t *m = history_message_json(chat, &msgs[k - 1], room, room_len);
            size_t sz = chat__message_json_size(m);
            json_decref(m);
            if (total + sz > budget && k < n)
                break;
            total += sz;
            k--;
        }
        first = k;
        *cut = k > 0;
    }
    json_t *a = json_array();
    for (size_t i = first; i < n; i++)
        json_array_append_new(a, history_message_json(chat, &msgs[i], room, room_len));
    return a;
}

/* A history read the executor waits for, and what its reply needs. */
typedef enum { READ_JOINED = 1, READ_HISTORY = 2, READ_WITH = 3 } read_kind_t;
typedef struct read_s {
    chat_t *chat;
    read_kind_t kind;
    uint64_t sid;
    json_t *root; /* the request (one reference): its ref points into it */
    const char *ref;
    size_t ref_len;
    char room[CHAT_ROOM_MAX + 1]; /* READ_WITH: the other side's nickname */
    size_t room_len;
    bool fresh; /* READ_JOINED: a new member, whom the others are told of */
} read_t;

static void log_history_failure(chat_t *chat, const chat_session_t *s, const char *room, int rc);

static void joined_reply(chat_t *chat, chat_session_t *s, const chat_req_t *req, chat_room_t *room,
                         const chat_message_t *msgs, size_t n, bool more, bool fresh);

static void on_read_done(void *arg, int rc, const chat_message_t *msgs, size_t n, bool more) {
    read_t *r = arg;
    chat_t *chat = r->chat;
    /* Looked up again: the read outlived the call that started it. */
    chat_session_t *s = chat__session_find(chat, r->sid);
    chat_room_t *room = r->kind == READ_WITH ? NULL : chat__room_find(chat, r->room, r->room_len);
    chat_req_t req = {.s = s,
                      .root = r->root,
                      .ref = r->ref,
                      .ref_len = r->ref_len,
                      .type = r->kind == READ_JOINED ? "join" : "history"};
    if (rc < 0) {
        n = 0;
        more = false;
    }
    if (s != NULL && r->kind == READ_JOINED) {
        if (rc < 0)
            log_history_failure(chat, s, r->room, rc);
        if (room != NULL)
            joined_reply(chat, s, &req, room, msgs, n, more, r->fresh);
    } else if (s != NULL) {
        if (rc < 0) {
            chat__refuse(chat, &req, "unavailable",
                         "The history cannot be read now; try again later.");
        } else {
            bool cut;
            /* The room's spelling now (r->room is the one it had when asked). */
            bool with = r->kind == READ_WITH;
            const char *name = room != NULL && !with ? room->name : r->room;
            size_t name_len = room != NULL && !with ? room->name_len : r->room_len;
            json_t *a = history_array(chat, msgs, n, chat__list_budget(chat, 0), with ? NULL : name,
                                      name_len, &cut);
            json_t *o = json_object();
            json_object_set_new(o, "type", json_string_nocheck("history"));
            json_object_set_new(o, with ? "with" : "room", json_stringn_nocheck(name, name_len));
            json_object_set_new(o, "messages", a);
            json_object_set_new(o, "more", json_boolean(more || cut));
            chat__reply(chat, s, &req, o);
        }
    }
    json_decref(r->root);
    free(r);
    chat->inflight--;
    chat__pump(chat);
}

/* Starts the read for req; its reply is sent when it completes (at once,
 * with no store). The executor waits for it. */
static void read_start(chat_t *chat, const chat_req_t *req, read_kind_t kind, const char *name,
                       size_t len, uint64_t after, uint64_t before, unsigned limit, bool fresh) {
    read_t *r = xcalloc(1, sizeof(*r));
    r->chat = chat;
    r->kind = kind;
    r->sid = req->s->sid;
    r->root = json_incref(req->root);
    r->ref = req->ref;
    r->ref_len = req->ref_len;
    memcpy(r->room, name, len);
    r->room_len = len;
    r->fresh = fresh;
    chat->inflight++;
    if (kind == READ_WITH) {
        const chat_session_t *s = req->s;
        int rc = chat->store.history_with(chat->store_ctx, s->nick, s->nick_len, name, len, after,
                                          before, limit, on_read_done, r);
        if (rc < 0)
            on_read_done(r, rc, NULL, 0, false);
        return;
    }
    if (chat->bus.history != NULL && limit > 0) {
        int rc = chat->bus.history(chat->bus_ctx, name, len, after, before, limit, on_read_done, r);
        if (rc < 0)
            on_read_done(r, rc, NULL, 0, false);
        return;
    }
    if (chat->store.history == NULL || limit == 0) {
        on_read_done(r, 0, NULL, 0, false);
        return;
    }
    int rc = chat->store.history(chat->store_ctx, name, len, after, before, limit, on_read_done, r);
    if (rc < 0)
        on_read_done(r, rc, NULL, 0, false); /* refused at once (a full queue) */
}

void chat__history_reply(chat_t *chat, const chat_req_t *req, const char *name, size_t len,
                         uint64_t before, unsigned limit) {
    /* With no store, read_start answers an empty page at once. */
    read_start(chat, req, READ_HISTORY, name, len, 0, before, limit, false);
}

void chat__history_with_reply(chat_t *chat, const chat_req_t *req, const char *nick, size_t len,
                              uint64_t before, unsigned limit) {
    read_start(chat, req, READ_WITH, nick, len, 0, before, limit, false);
}

/* `conversations`: the executor waits for the store's answer, as for a read. */
typedef struct convs_s {
    chat_t *chat;
    uint64_t sid;
    json_t *root;
    const char *ref;
    size_t ref_len;
} convs_t;

static void on_convs_done(void *arg, int rc, const chat_conv_t *convs, size_t n) {
    convs_t *c = arg;
    chat_t *chat = c->chat;
    chat_session_t *s = chat__session_find(chat, c->sid);
    chat_req_t req = {
        .s = s, .root = c->root, .ref = c->ref, .ref_len = c->ref_len, .type = "conversations"};
    if (s != NULL && rc < 0) {
        chat__refuse(chat, &req, "unavailable", "The conversations cannot be read now.");
    } else if (s != NULL) {
        json_t *a = json_array();
        for (size_t i = 0; i < n; i++)
            json_array_append_new(a, json_pack("{s:s%, s:I, s:i}", "with", convs[i].with,
                                               convs[i].with_len, "last_id",
                                               (json_int_t)convs[i].last_id, "unread",
                                               (int)convs[i].unread));
        json_t *o = json_object();
        json_object_set_new(o, "type", json_string_nocheck("conversations"));
        json_object_set_new(o, "conversations", a);
        chat__reply(chat, s, &req, o);
    }
    json_decref(c->root);
    free(c);
    chat->inflight--;
    chat__pump(chat);
}

void chat__conversations_reply(chat_t *chat, const chat_req_t *req, unsigned limit) {
    convs_t *c = xcalloc(1, sizeof(*c));
    c->chat = chat;
    c->sid = req->s->sid;
    c->root = json_incref(req->root);
    c->ref = req->ref;
    c->ref_len = req->ref_len;
    chat->inflight++;
    const chat_user_t *u = req->s->user;
    int rc = chat->store.conversations(chat->store_ctx, u->account_id, u->nick, u->nick_len, limit,
                                       on_convs_done, c);
    if (rc < 0)
        on_convs_done(c, rc, NULL, 0);
}

size_t chat__list_budget(const chat_t *chat, size_t used) {
    size_t own = CHAT_REPLY_JSON_OVERHEAD + used;
    return chat->reply_budget > own ? chat->reply_budget - own : 0;
}

/* ---- error lines held back ---- */

/* Counts a failure concerning `items` messages. Returns true when it is to
 * be logged now (no line within the window); *held_events and *held_items
 * are then the failures held back since the last line (and are reset). */
static bool logwin_count(chat_t *chat, chat_logwin_t *w, uint64_t items, int rc,
                         uint64_t *held_events, uint64_t *held_items) {
    uint64_t now = chat__clock_ms(chat);
    w->rc = rc;
    if (w->logged && now - w->last_ms < CHAT_LOG_WINDOW_MS) {
        w->events++;
        w->items += items;
        return false;
    }
    *held_events = w->events;
    *held_items = w->items;
    w->events = w->items = 0;
    w->logged = true;
    w->last_ms = now;
    return true;
}

/* True, once a window has passed since the last line, when failures were
 * held back meanwhile: the caller logs their summary. */
static bool logwin_due(chat_t *chat, chat_logwin_t *w) {
    if (w->events == 0)
        return false;
    uint64_t now = chat__clock_ms(chat);
    if (now - w->last_ms < CHAT_LOG_WINDOW_MS)
        return false;
    w->last_ms = now;
    return true;
}

static void logwin_summaries(chat_t *chat) {
    chat_logwin_t *w = &chat->log_append;
    if (logwin_due(chat, w)) {
        tt_log_error("chat: storing failed %llu more times since the last line (%llu messages, "
                     "not delivered); last error %d",
                     (unsigned long long)w->events, (unsigned long long)w->items, w->rc);
        w->events = w->items = 0;
    }
    w = &chat->log_history;
    if (logwin_due(chat, w)) {
        tt_log_error("chat: reading history for a join failed %llu more times since the last "
                     "line (joined without it); last error %d",
                     (unsigned long long)w->events, w->rc);
        w->events = w->items = 0;
    }
}

static void log_history_failure(chat_t *chat, const chat_session_t *s, const char *room, int rc) {
    chat->counters.store_errors++;
    uint64_t held, held_items;
    if (!logwin_count(chat, &chat->log_history, 0, rc, &held, &held_items))
        return;
    if (held > 0)
        tt_log_error("chat: history of %s for %s failed (%d); joined without it "
                     "(and %llu more such failures since the last line)",
                     room, s->peer, rc, (unsigned long long)held);
    else
        tt_log_error("chat: history of %s for %s failed (%d); joined without it "
                     "(such failures are logged once per %u s)",
                     room, s->peer, rc, CHAT_LOG_WINDOW_MS / 1000);
}

static uint32_t next_cap(uint32_t cap) {
    return cap ? cap * 2 : 4;
}

/* The joined reply (members, history) and, for a new member, the others'
 * member_joined after it. */
static void joined_reply(chat_t *chat, chat_session_t *s, const chat_req_t *req, chat_room_t *room,
                         const chat_message_t *msgs, size_t n, bool more, bool fresh) {
    if (s->v1) {
        size_t names;
        json_t *away;
        json_t *members = joined_members_json(room, s, &names, &away);
        bool cut;
        json_t *hist = history_array(chat, msgs, n, chat__list_budget(chat, names), room->name,
                                     room->name_len, &cut);
        json_t *o = json_object();
        json_object_set_new(o, "type", json_string_nocheck("joined"));
        json_object_set_new(o, "room", json_stringn_nocheck(room->name, room->name_len));
        json_object_set_new(o, "members", members);
        if (away != NULL)
            json_object_set_new(o, "away", away);
        json_object_set_new(o, "member_count", json_integer(room->npeople));
        chat__mod_joined(chat, room, o);
        json_object_set_new(o, "history", hist);
        json_object_set_new(o, "more", json_boolean(more || cut));
        chat__reply(chat, s, req, o);
    }
    if (fresh)
        room_presence(chat, room, s, presence_json("member_joined", room, s->user, NULL));
}

chat_room_t *chat__room_new(chat_t *chat, const char *name, size_t len) {
    chat_room_t *room = xcalloc(1, sizeof(*room));
    memcpy(room->name, name, len);
    room->name_len = len;
    room->skip = name[0] == '#';
    tt_map_put(&chat->rooms, room->name + room->skip, room->name_len - room->skip, room);
    if (chat->bus.room_watch != NULL)
        chat->bus.room_watch(chat->bus_ctx, room->name, room->name_len, true);
    return room;
}

void chat__join(chat_t *chat, const chat_req_t *req, const char *name, size_t len, uint64_t since) {
    chat_session_t *s = req->s;
    chat_user_t *u = s->user;
    chat_room_t *room = chat__room_find(chat, name, len);
    bool fresh = chat__member_find(s, room) == NULL;
    bool newcomer = false; /* the user was not in the room: the others hear of it */
    if (fresh) {
        if (room != NULL && chat__mod_refuse_banned(chat, req, s->nick, s->nick_len, room))
            return;
        if (s->nrooms >= chat->cfg.max_rooms) {
            chat__refuse(chat, req, "too_many_rooms",
                         "You are already in %zu rooms, the most a connection may join.",
                         chat->cfg.max_rooms);
            return;
        }
        /* A membership change: the join handlers run only once what was
         * pending is delivered (chat__settled), so the joiner's history
         * holds it and no live copy follows. */
        if (room == NULL) {
            room = chat__room_new(chat, name, len);
            chat__mod_room_created(chat, s, room);
        } else if (room->count == 0 && chat->bus.room_watch != NULL) {
            /* A room kept here with no member (moderation keeps it) knows
             * no other node's people: its first member asks for them
             * again, and its `joined` waits for them. */
            chat->bus.room_watch(chat->bus_ctx, room->name, room->name_len, true);
        }
        chat_presence_t *p = chat__presence_find(u, room);
        if (p == NULL || !p->here) {
            /* This node's share begins; the members here hear of the
             * person only if no other node has it in the room already. */
            newcomer = p == NULL;
            if (p == NULL)
                p = chat__presence_add(u, room);
            p->here = true;
            if (chat->bus.presence != NULL)
                chat->bus.presence(chat->bus_ctx, room->name, room->name_len, u->nick, u->nick_len,
                                   true, NULL);
        } else if (p->nsess == 0) {
            /* Parked (a connection of this user dropped): back, quietly. */
            u->parked--;
            if (u->parked == 0 && u->nsess > 0)
                tt_link_unlink(&u->park);
        }
        p->nsess++;
        chat_member_t *m = xmalloc(sizeof(*m));
        m->room = room;
        m->session = s;
        m->pres = p;
        if (room->count == room->cap) {
            room->cap = next_cap(room->cap);
            room->members = xrealloc(room->members, room->cap * sizeof(*room->members));
        }
        m->room_idx = room->count;
        room->members[room->count++] = m;
        if (s->nrooms == s->rooms_cap) {
            /* From one: most sessions are in one room (a 24-byte block, not 48). */
            s->rooms_cap = s->rooms_cap ? s->rooms_cap * 2 : 1;
            s->rooms = xrealloc(s->rooms, s->rooms_cap * sizeof(*s->rooms));
        }
        m->sess_idx = s->nrooms;
        s->rooms[s->nrooms++] = m;
        if (s->v1)
            room->v1_count++;
        chat__log_event(chat, CHAT_EV_JOIN, s, room, newcomer ? "joined" : "joined (again)");
        chat__search_note_join(chat, s, room);
    }
    if (!s->v1) {
        /* A legacy client gets no joined: nothing to read. */
        if (newcomer)
            room_presence(chat, room, s, presence_json("member_joined", room, u, NULL));
        return;
    }
    /* The reply (and the member_joined after it) waits for the history. */
    read_start(chat, req, READ_JOINED, room->name, room->name_len, since, 0,
               chat->cfg.history_on_join, newcomer);
}

void chat__room_free_if_empty(chat_t *chat, chat_room_t *room) {
    /* A room that keeps an owner, ops, a topic or bans stays, empty. */
    if (room->count > 0 || room->npeople > 0 || chat__mod_keeps(room))
        return;
    tt_map_remove(&chat->rooms, room->name + room->skip, room->name_len - room->skip);
    if (chat->bus.room_watch != NULL)
        chat->bus.room_watch(chat->bus_ctx, room->name, room->name_len, false);
    chat__mod_free(chat, room);
    free(room->members);
    free(room->people);
    free(room);
}

/* Every person in the room is there through other nodes only (or nobody
 * is). */
static bool remote_only(const chat_room_t *room) {
    for (uint32_t i = 0; i < room->npeople; i++)
        if (room->people[i]->here)
            return false;
    return true;
}

/* A presence through other nodes only ends; so does a remote user once it
 * is in no room here. */
static void remote_gone(chat_t *chat, chat_presence_t *p) {
    chat_user_t *u = p->user;
    chat__presence_remove(p);
    if (u->nrooms == 0 && u->kind == CHAT_USER_REMOTE)
        chat__user_end(chat, u, "disconnect");
}

/* The room has no member here any more: the other nodes' people are
 * forgotten quietly, and the room goes (unless moderation keeps it). */
static void drop_remote(chat_t *chat, chat_room_t *room) {
    while (room->npeople > 0)
        remote_gone(chat, room->people[room->npeople - 1]);
}

void chat__presence_gone(chat_t *chat, chat_presence_t *p, const char *reason) {
    if (!p->here)
        return; /* in the room through other nodes only: theirs to end */
    chat_room_t *room = p->room;
    chat_user_t *u = p->user;
    if (chat->bus.presence != NULL)
        chat->bus.presence(chat->bus_ctx, room->name, room->name_len, u->nick, u->nick_len, false,
                           reason);
    chat__search_note_left(u, room);
    bool elsewhere = p->nodes != 0;
    if (elsewhere) {
        /* Still in the room through another node: the members here see
         * no change, and hear member_left when that node's share ends. */
        p->here = false;
        if (p->nsess == 0)
            u->parked--;
    } else {
        chat__presence_remove(p);
    }
    if (room->count == 0 && remote_only(room))
        drop_remote(chat, room);
    if (room->count == 0 && room->npeople == 0) {
        chat__room_free_if_empty(chat, room);
        return;
    }
    if (!elsewhere)
        room_presence(chat, room, NULL, presence_json("member_left", room, u, reason));
}

void chat__leave(chat_t *chat, chat_member_t *m, const char *reason, bool park) {
    chat_room_t *room = m->room;
    chat_session_t *s = m->session;
    chat_presence_t *p = m->pres;
    chat__typing_end(chat, s, true, room->name, room->name_len);
    chat__log_event(chat, CHAT_EV_LEAVE, s, room, reason);
    /* Swap-remove from both arrays, fixing the index of the record moved. */
    chat_member_t *last = room->members[--room->count];
    room->members[m->room_idx] = last;
    last->room_idx = m->room_idx;
    last = s->rooms[--s->nrooms];
    s->rooms[m->sess_idx] = last;
    last->sess_idx = m->sess_idx;
    if (s->v1)
        room->v1_count--;
    free(m);
    if (--p->nsess > 0)
        return; /* another connection of the user is still here */
    /* nsess 0: parked, counted so until it ends (now, or at the grace's end) */
    p->user->parked++;
    if (park) {
        chat__user_park(chat, p->user, reason);
        return;
    }
    chat__presence_gone(chat, p, reason);
}

chat_pending_t *chat__pending_add(chat_t *chat) {
    if (chat->npending == chat->pending_cap) {
        chat->pending_cap = chat->pending_cap ? chat->pending_cap * 2 : 64;
        chat->pending = xrealloc(chat->pending, chat->pending_cap * sizeof(*chat->pending));
    }
    /* Not zeroed: accept_message sets every field (the names alone are a
     * hundred bytes, and this runs for every message). */
    return &chat->pending[chat->npending++];
}

/* ---- delivery ---- */

static void send_ack(chat_t *chat, chat_session_t *sender, const chat_pending_t *p) {
    json_t *o = json_object();
    json_object_set_new(o, "type", json_string_nocheck("ack"));
    json_object_set_new(o, "ref", json_stringn_nocheck(p->ref, p->ref_len));
    json_object_set_new(o, "message_id", json_integer((json_int_t)p->msg.id));
    chat__reply(chat, sender, NULL, o);
}

static void deliver(chat_t *chat, const chat_pending_t *p) {
    /* Everything is looked up again, by id and by name: the message was
     * accepted some time ago. */
    chat_session_t *sender = chat__session_find(chat, p->sender_sid);
    /* The ack first: a client that shows its own line at once learns the
     * id before the echo carrying it arrives. */
    if (sender != NULL && p->ref != NULL && sender->v1 && !p->acked)
        send_ack(chat, sender, p);
    if (p->msg.kind == CHAT_MSG_ROOM) {
        /* The same message serves v1 and legacy members: the shape is shared. */
        chat_room_t *room = chat__room_find(chat, p->to, p->to_len);
        if (room != NULL) {
            if (p->out_plain == NULL) {
                for (uint32_t i = 0; i < room->count; i++)
                    chat__send(chat, room->members[i]->session, p->out);
            } else {
                /* Legacy clients get none of the newer fields (mentions). */
                for (uint32_t i = 0; i < room->count; i++) {
                    chat_session_t *m = room->members[i]->session;
                    chat__send(chat, m, m->v1 ? p->out : p->out_plain);
                }
            }
            chat->counters.delivered[0] += room->count;
        }
    } else {
        /* Every connection of the recipient, and of the sender (its echo). */
        chat_user_t *target = chat__user_check(chat, p->to, p->to_len, p->target_uid);
        chat_user_t *from = chat__user_check(chat, p->from, p->from_len, p->sender_uid);
        if (target == NULL) {
            /* Gone since it was accepted; a stored one waits in the
             * account's conversation for its next login. */
            if (!p->stored)
                chat__undelivered(chat, p);
        } else if (target->nsess == 0) {
            /* Within its grace time: held for its return, or the sender is
             * told now when too much is held already (a stored one is in
             * the conversation anyway). */
            if (!chat__user_hold(chat, target, p) && !p->stored)
                chat__undelivered(chat, p);
        } else {
            for (uint32_t i = 0; i < target->nsess; i++)
                chat__send(chat, target->sess[i], p->out);
            chat->counters.delivered[1] += target->nsess;
        }
        if (from != NULL && from != target) {
            for (uint32_t i = 0; i < from->nsess; i++)
                chat__send(chat, from->sess[i], p->out);
            chat->counters.delivered[1] += from->nsess;
        }
    }
}

static void log_append_failure(chat_t *chat, size_t stored, int rc) {
    /* A failing store fails every batch: log one line per window, with
     * the count of what was held back since the last one. */
    uint64_t held, held_items;
    if (!logwin_count(chat, &chat->log_append, stored, rc, &held, &held_items))
        return;
    if (held > 0)
        tt_log_error("chat: storing %zu messages failed (%d); they are not delivered "
                     "(and %llu more batches, %llu messages, since the last line)",
                     stored, rc, (unsigned long long)held, (unsigned long long)held_items);
    else
        tt_log_error("chat: storing %zu messages failed (%d); they are not delivered "
                     "(such failures are logged once per %u s)",
                     stored, rc, CHAT_LOG_WINDOW_MS / 1000);
}

/* Delivers (or refuses) every completed batch at the head of the list, in
 * order, then lets the queued requests run. */
static void deliver_batches(chat_t *chat) {
    if (chat->flushing)
        return; /* the outer call goes on */
    chat->flushing = true;
    while (chat->batches != NULL && chat->batches->done) {
        chat_batch_t *b = chat->batches;
        chat->batches = b->next;
        if (chat->batches == NULL)
            chat->batches_tail = NULL;
        if (b->n > 0)
            tt_hist_observe(&chat->counters.delivery_us, tt_clock_us() - b->formed_us);
        for (size_t i = 0; i < b->n; i++) {
            chat_pending_t *p = &b->items[i];
            if ((b->rc < 0 && p->msg.kind == CHAT_MSG_ROOM) || p->refused) {
                chat_session_t *sender = chat__session_find(chat, p->sender_sid);
                chat_req_t req = {.s = sender,
                                  .type = p->msg.kind == CHAT_MSG_ROOM ? "room" : "private",
                                  .ref = p->ref,
                                  .ref_len = p->ref_len};
                if (sender != NULL && p->no_user)
                    chat__refuse(chat, &req, "no_such_user", "There is no user named %.*s.",
                                 (int)p->to_len, p->to);
                else if (sender != NULL)
                    chat__refuse(chat, &req, "unavailable",
                                 "The message could not be stored, so it was not delivered; "
                                 "try again later.");
            } else if (chat->bus.publish == NULL) {
                /* With a bus, the copies come from the bus (chat_bus_deliver,
                 * chat_bus_private); the ack went out already. */
                deliver(chat, p);
            }
            pending_drop(p);
        }
        b->n = 0;
        b->next = chat->free_batches;
        chat->free_batches = b;
        chat->inflight--;
    }
    chat->flushing = false;
    chat__pump(chat);
}

/* A batch write's outcome, for /metrics and /readyz. */
static void note_store_result(chat_t *chat, int rc) {
    chat_counters_t *k = &chat->counters;
    k->store_failing = rc < 0;
    if (rc < 0) {
        k->store_errors++;
        snprintf(k->store_error, sizeof(k->store_error), "writing the history failed (%d)", rc);
    }
}

/* The batch callback needs the chat: a small context per submission. */
typedef struct batch_ctx_s {
    chat_t *chat;
    chat_batch_t *batch;
} batch_ctx_t;

static void on_append_done(void *arg, int rc, uint64_t store_last_id) {
    batch_ctx_t *c = arg;
    chat_t *chat = c->chat;
    chat_batch_t *b = c->batch;
    free(c);
    b->done = true;
    b->rc = rc;
    tt_hist_observe(&chat->counters.commit_us, tt_clock_us() - b->formed_us);
    note_store_result(chat, rc);
    if (rc < 0) {
        size_t stored = 0;
        uint64_t first = 0;
        for (size_t i = 0; i < b->n; i++)
            if (b->items[i].msg.kind == CHAT_MSG_ROOM) {
                if (stored++ == 0)
                    first = b->items[i].msg.id;
            }
        log_append_failure(chat, stored, rc);
        /* The store already holds ids the chat gave out as new (it refuses
         * ids that do not increase): continue after the ones it holds, so
         * the next batch is not refused too. */
        if (store_last_id >= first && store_last_id > chat->last_id) {
            tt_log_warn("chat: message ids resynchronised with the store (%llu -> %llu)",
                        (unsigned long long)chat->last_id, (unsigned long long)store_last_id);
            chat->last_id = store_last_id;
            if (chat->reserved_id < store_last_id)
                chat->reserved_id = store_last_id;
        }
    }
    deliver_batches(chat);
}

/* ---- with a bus ---- */

#define BUS_REFUSED (-1) /* the code logged and shown in /readyz for refused publishes */

static void bus_ack(chat_t *chat, chat_pending_t *p) {
    p->acked = true;
    chat_session_t *sender = chat__session_find(chat, p->sender_sid);
    if (sender != NULL && p->ref != NULL && sender->v1)
        send_ack(chat, sender, p);
}

static void on_bus_done(void *arg, const uint64_t *ids, size_t n) {
    batch_ctx_t *c = arg;
    chat_t *chat = c->chat;
    chat_batch_t *b = c->batch;
    free(c);
    b->done = true;
    b->rc = 0;
    tt_hist_observe(&chat->counters.commit_us, tt_clock_us() - b->formed_us);
    size_t refused = 0;
    for (size_t i = 0; i < b->n; i++) {
        chat_pending_t *p = &b->items[i];
        uint64_t id = i < n ? ids[i] : 0;
        if (id == CHAT_BUS_NO_USER) {
            p->refused = p->no_user = true;
            continue;
        }
        if (id == 0) {
            p->refused = true;
            refused++;
            continue;
        }
        if (p->msg.id == 0)
            p->msg.id = id; /* a room message delivered already has it */
        if (id > chat->last_id)
            chat->last_id = id;
        /* Its copies come from the bus (chat_bus_deliver, chat_bus_private),
         * after the ack. */
        if (!p->acked)
            bus_ack(chat, p);
    }
    /* Counted and logged, but /readyz follows the bus's own link (the
     * server asks it), not the last batch: a node is ready again as soon
     * as Redis is, before anyone sends. */
    if (refused > 0) {
        chat->counters.store_errors++;
        log_append_failure(chat, refused, BUS_REFUSED);
    }
    deliver_batches(chat);
}

/* Hands the batch's messages to the bus, each with its publish token. */
static bool bus_publish(chat_t *chat, chat_batch_t *b) {
    if (b->bus_cap < b->n) {
        b->bus_cap = b->cap > b->n ? b->cap : b->n;
        b->bus_msgs = xrealloc(b->bus_msgs, b->bus_cap * sizeof(*b->bus_msgs));
    }
    for (size_t i = 0; i < b->n; i++) {
        chat_pending_t *p = &b->items[i];
        p->msg.from = p->from;
        p->msg.to = p->to;
        p->token = ++chat->bus_token;
        b->bus_msgs[i] = (chat_bus_msg_t){.msg = &p->msg,
                                          .mentions = p->mentions,
                                          .mentions_len = p->mentions_len,
                                          .token = p->token,
                                          .from_account = p->from_account};
    }
    batch_ctx_t *c = xmalloc(sizeof(*c));
    c->chat = chat;
    c->batch = b;
    if (chat->bus.publish(chat->bus_ctx, b->bus_msgs, b->n, on_bus_done, c) < 0) {
        /* Refused at once (the link is down): every one is refused. */
        on_bus_done(c, NULL, 0);
        return false;
    }
    return true;
}

/* The pending entry of this chat's publish token, while its batch is in
 * flight. */
static chat_pending_t *bus_pending(chat_t *chat, uint64_t token) {
    for (chat_batch_t *b = chat->batches; b != NULL; b = b->next) {
        if (b->n == 0 || token < b->items[0].token || token > b->items[b->n - 1].token)
            continue;
        chat_pending_t *p = &b->items[token - b->items[0].token];
        return p->token == token ? p : NULL;
    }
    return NULL;
}

/* A message id from the bus: the chat's last id follows it, and when it is
 * ours (token), its sender learns the id before its own copy arrives, even
 * when the bus brings the copy before the publish's answer. */
static void bus_seen(chat_t *chat, uint64_t id, uint64_t token) {
    if (id > chat->last_id)
        chat->last_id = id;
    if (token == 0)
        return;
    chat_pending_t *p = bus_pending(chat, token);
    if (p != NULL && !p->acked) {
        p->msg.id = id;
        bus_ack(chat, p);
    }
}

void chat_bus_deliver(chat_t *chat, const chat_message_t *m, const char *mentions,
                      size_t mentions_len, uint64_t token) {
    bus_seen(chat, m->id, token);
    chat_room_t *room = chat__room_find(chat, m->to, m->to_len);
    if (room == NULL || room->count == 0)
        return;
    json_t *mj = mentions_len > 0 ? chat__mentions_split(mentions, mentions_len) : NULL;
    chat_message_t msg = *m;
    /* The room's spelling here (the same on every node, unless a node
     * created it under another since). */
    msg.to = room->name;
    msg.to_len = room->name_len;
    tt_msg_t *out = chat__msg_message(&msg, mj);
    out->id = msg.id;
    tt_msg_t *plain = NULL;
    if (mj != NULL && room->v1_count < room->count) {
        plain = chat__msg_message(&msg, NULL);
        plain->id = msg.id;
    }
    json_decref(mj);
    for (uint32_t i = 0; i < room->count; i++) {
        chat_session_t *s = room->members[i]->session;
        chat__send(chat, s, plain == NULL || s->v1 ? out : plain);
    }
    chat->counters.delivered[0] += room->count;
    tt_msg_unref(out);
    tt_msg_unref(plain);
}

void chat_bus_private(chat_t *chat, const chat_message_t *m, uint64_t token, const char *for_nick,
                      size_t for_len, bool stored) {
    bus_seen(chat, m->id, token);
    chat_user_t *u = chat__user_find(chat, for_nick, for_len);
    if (u == NULL || u->kind == CHAT_USER_REMOTE)
        return;
    bool to_it = m->to_len == u->nick_len && strncasecmp(m->to, u->nick, u->nick_len) == 0;
    bool from_it = m->from_len == u->nick_len && strncasecmp(m->from, u->nick, u->nick_len) == 0;
    chat_message_t msg = *m;
    if (to_it) {
        /* The recipient's spelling, as its own connections know it. */
        msg.to = u->nick;
        msg.to_len = u->nick_len;
    }
    tt_msg_t *out = chat__msg_message(&msg, NULL);
    out->id = msg.id;
    if (to_it && u->nsess == 0) {
        /* Within its grace time: held for its return (the sender, when it
         * is here, hears `undelivered` if too much is held). */
        chat_pending_t h = {.msg = msg, .out = out, .from_len = (uint8_t)m->from_len};
        memcpy(h.from, m->from, m->from_len);
        chat_user_t *sender = chat__user_find(chat, m->from, m->from_len);
        h.sender_uid = sender != NULL ? sender->uid : 0;
        memcpy(h.to, u->nick, u->nick_len);
        h.to_len = (uint8_t)u->nick_len;
        if (!chat__user_hold(chat, u, &h) && !stored)
            chat__undelivered(chat, &h);
    } else if (to_it || from_it) {
        for (uint32_t i = 0; i < u->nsess; i++)
            chat__send(chat, u->sess[i], out);
        chat->counters.delivered[1] += u->nsess;
    }
    tt_msg_unref(out);
}

void chat_bus_undelivered(chat_t *chat, const char *for_nick, size_t for_len, uint64_t id,
                          const char *to, size_t to_len) {
    chat_user_t *u = chat__user_find(chat, for_nick, for_len);
    if (u != NULL && u->kind != CHAT_USER_REMOTE && chat_nickname_is_valid(to, to_len))
        chat__undelivered_to(chat, u, id, to, to_len);
}

/* Bit of a node slot (the bus's; slots past 63 share the last bit). */
static uint64_t node_bit(unsigned node) {
    return 1ull << (node < 63 ? node : 63);
}

/* p's share of other nodes is now nodes (none: it leaves, with reason,
 * unless this node holds it). */
static void remote_share(chat_t *chat, chat_presence_t *p, uint64_t nodes, const char *reason) {
    p->nodes = nodes;
    if (nodes != 0 || p->here)
        return;
    chat_room_t *room = p->room;
    room_presence(chat, room, NULL, presence_json("member_left", room, p->user, reason));
    remote_gone(chat, p);
}

/* The person nick is in room through another node (nodes, not 0), and
 * was not here before: its members hear of it unless quiet. */
static void remote_arrive(chat_t *chat, chat_room_t *room, chat_user_t *u, const char *nick,
                          size_t nick_len, uint64_t nodes, bool quiet) {
    if (u == NULL)
        u = chat__user_new(chat, nick, nick_len, CHAT_USER_REMOTE);
    chat__presence_add(u, room)->nodes = nodes;
    if (!quiet)
        room_presence(chat, room, NULL, presence_json("member_joined", room, u, NULL));
}

void chat_bus_presence(chat_t *chat, const char *room_name, size_t room_len, const char *nick,
                       size_t nick_len, unsigned node, bool joined, const char *reason) {
    chat_room_t *room = chat__room_find(chat, room_name, room_len);
    if (room == NULL || !chat_nickname_is_valid(nick, nick_len))
        return;
    chat_user_t *u = chat__user_find(chat, nick, nick_len);
    chat_presence_t *p = u != NULL ? chat__presence_find(u, room) : NULL;
    uint64_t bit = node_bit(node);
    if (!joined) {
        if (p != NULL && (p->nodes & bit) != 0)
            remote_share(chat, p, p->nodes & ~bit, reason);
        return;
    }
    if (p != NULL)
        p->nodes |= bit; /* known already: through this node too now */
    else if (room->count > 0)
        remote_arrive(chat, room, u, nick, nick_len, bit, false);
    /* else nobody here to tell: the room's people are read when it has */
}

void chat_bus_people(chat_t *chat, const char *room_name, size_t room_len, const char *const *nicks,
                     const size_t *nick_lens, const unsigned *nodes, size_t n, bool quiet) {
    chat_room_t *room = chat__room_find(chat, room_name, room_len);
    if (room == NULL)
        return;
    /* Each person's nodes as the bus lists them, by its place in
     * room->people; those it does not list are the room's new people. */
    uint32_t np = room->npeople;
    uint64_t *share = xcalloc(np > 0 ? np : 1, sizeof(*share));
    bool *fresh = xcalloc(n > 0 ? n : 1, sizeof(*fresh));
    for (size_t k = 0; k < n; k++) {
        if (!chat_nickname_is_valid(nicks[k], nick_lens[k]))
            continue;
        chat_user_t *u = chat__user_find(chat, nicks[k], nick_lens[k]);
        chat_presence_t *p = u != NULL ? chat__presence_find(u, room) : NULL;
        if (p != NULL)
            share[p->room_idx] |= node_bit(nodes[k]);
        else
            fresh[k] = true;
    }
    /* Those that left while the bus could not tell leave (swap-removal
     * moves only people already seen, from the end). */
    for (uint32_t i = np; i-- > 0;)
        remote_share(chat, room->people[i], share[i], "disconnect");
    free(share);
    for (size_t k = 0; k < n; k++) {
        if (!fresh[k])
            continue;
        /* A person listed twice (on two nodes) is one presence. */
        chat_user_t *u = chat__user_find(chat, nicks[k], nick_lens[k]);
        chat_presence_t *p = u != NULL ? chat__presence_find(u, room) : NULL;
        if (p != NULL)
            p->nodes |= node_bit(nodes[k]);
        else if (room->count > 0 || quiet)
            remote_arrive(chat, room, u, nicks[k], nick_lens[k], node_bit(nodes[k]), quiet);
    }
    free(fresh);
}

void chat_bus_shares(chat_t *chat, const chat_bus_shares_t *cb, void *ctx) {
    size_t pos = 0, cap = 0;
    void *v;
    const char **nicks = NULL;
    size_t *lens = NULL;
    while (tt_map_next(&chat->rooms, &pos, NULL, NULL, &v)) {
        const chat_room_t *room = v;
        if (room->npeople > cap) {
            cap = room->npeople;
            nicks = xrealloc(nicks, cap * sizeof(*nicks));
            lens = xrealloc(lens, cap * sizeof(*lens));
        }
        size_t n = 0;
        for (uint32_t i = 0; i < room->npeople; i++) {
            const chat_user_t *u = room->people[i]->user;
            if (!room->people[i]->here)
                continue;
            nicks[n] = u->nick;
            lens[n++] = u->nick_len;
        }
        if (n > 0)
            cb->room(ctx, room->name, room->name_len, nicks, lens, n);
    }
    free(nicks);
    free(lens);
    pos = 0;
    while (tt_map_next(&chat->nicks, &pos, NULL, NULL, &v)) {
        const chat_user_t *u = v;
        if (u->kind != CHAT_USER_REMOTE)
            cb->user(ctx, u->nick, u->nick_len, u->kind == CHAT_USER_GUEST ? u->resume_hash : NULL);
    }
}

static chat_batch_t *batch_take(chat_t *chat) {
    chat_batch_t *b = chat->free_batches;
    if (b != NULL)
        chat->free_batches = b->next;
    else
        b = xcalloc(1, sizeof(*b));
    b->next = NULL;
    b->done = false;
    b->rc = 0;
    /* The pending array becomes the batch's; the batch's old array (as
     * large as an earlier iteration needed) becomes the next pending one,
     * so steady traffic allocates nothing. */
    chat_pending_t *items = b->items;
    size_t cap = b->cap;
    b->items = chat->pending;
    b->cap = chat->pending_cap;
    b->n = chat->npending;
    chat->pending = items;
    chat->pending_cap = cap;
    chat->npending = 0;
    return b;
}

bool chat_flush(chat_t *chat) {
    /* Failures held back from the log are summarized once their window has
     * passed, even if nothing else happens. */
    if ((chat->log_append.events | chat->log_history.events) != 0)
        logwin_summaries(chat);
    if (chat->npending == 0)
        return false;
    chat_batch_t *b = batch_take(chat);
    b->formed_us = tt_clock_us();
    for (size_t i = 0; i < b->n; i++)
        chat->counters.accepted[b->items[i].msg.kind == CHAT_MSG_ROOM ? 0 : 1]++;
    if (chat->batches_tail != NULL)
        chat->batches_tail->next = b;
    else
        chat->batches = b;
    chat->batches_tail = b;
    chat->inflight++;
    if (chat->bus.publish != NULL)
        return bus_publish(chat, b);
    size_t stored = 0;
    if (chat->store.append_batch != NULL) {
        if (b->msgs_cap < b->n) {
            b->msgs_cap = b->cap > b->n ? b->cap : b->n;
            b->msgs = xrealloc(b->msgs, b->msgs_cap * sizeof(*b->msgs));
        }
        /* Private messages between accounts are stored; others are
         * delivered live only. The names are the entries' own copies,
         * which stay put from now on. */
        for (size_t i = 0; i < b->n; i++) {
            chat_pending_t *p = &b->items[i];
            p->msg.from = p->from;
            p->msg.to = p->to;
            if (p->msg.kind == CHAT_MSG_ROOM || p->stored)
                b->msgs[stored++] = p->msg;
        }
    }
    if (stored == 0) {
        b->done = true;
        deliver_batches(chat);
        return false;
    }
    batch_ctx_t *c = xmalloc(sizeof(*c));
    c->chat = chat;
    c->batch = b;
    int rc = chat->store.append_batch(chat->store_ctx, b->msgs, stored, on_append_done, c);
    if (rc < 0) {
        /* Refused at once (the store's queue is full): as a failed write. */
        free(c);
        b->done = true;
        b->rc = rc;
        note_store_result(chat, rc);
        log_append_failure(chat, stored, rc);
        deliver_batches(chat);
        return false;
    }
    return true;
}

bool chat__settled(chat_t *chat) {
    if (chat->npending > 0)
        chat_flush(chat);
    return chat->npending == 0 && chat->inflight == 0;
}
