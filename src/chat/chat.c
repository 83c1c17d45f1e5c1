/* The chat context: sessions, rooms, the membership records that link them
 * both ways, presence, and the pending list that chat_flush delivers (after
 * the store has written it). Request parsing lives in chat_proto.c and frame
 * building in chat_out.c. */
#include "chat/chat_int.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/xmalloc.h"

#ifndef TT_VERSION
#define TT_VERSION "0"
#endif

void chat_config_defaults(chat_config_t *cfg) {
    cfg->server_name = "tertulia";
    cfg->server_version = TT_VERSION;
    cfg->max_text = 4096;
    cfg->max_message = 65536;
    cfg->max_rooms = 100;
    cfg->reply_budget = CHAT_REPLY_BUDGET_DEFAULT;
    cfg->history_on_join = CHAT_HISTORY_DEFAULT;
    cfg->rate_burst = 20;
    cfg->rate_limit = 10;
    cfg->nlimits_extra = 0;
}

size_t chat_reply_budget_min(size_t max_text) {
    return 6 * max_text + CHAT_MESSAGE_JSON_OVERHEAD + CHAT_NICK_MAX + CHAT_ROOM_MAX + 6 +
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
    if (chat->cfg.history_on_join > CHAT_HISTORY_MAX)
        chat->cfg.history_on_join = CHAT_HISTORY_MAX;
    /* One message of the largest size must fit a reply, or a room holding
     * one could never be read back. */
    chat->reply_budget =
        chat->cfg.reply_budget ? chat->cfg.reply_budget : CHAT_REPLY_BUDGET_DEFAULT;
    if (chat->reply_budget < chat_reply_budget_min(chat->cfg.max_text))
        chat->reply_budget = chat_reply_budget_min(chat->cfg.max_text);
    /* A message costs request tokens by its size: the largest costs
     * 1 + CHAT_RATE_FRAME_PARTS, whatever the transport's limit. */
    chat->frame_unit = chat->cfg.max_message / CHAT_RATE_FRAME_PARTS;
    if (chat->frame_unit < CHAT_RATE_FRAME_MIN)
        chat->frame_unit = CHAT_RATE_FRAME_MIN;
    chat->io = *io;
    chat->io_ctx = io_ctx;
    tt_map_init(&chat->nicks, TT_MAP_NOCASE);
    tt_map_init(&chat->rooms, 0);
    return chat;
}

static void pending_drop(chat_pending_t *p) {
    tt_buf_unref(p->frame);
    json_decref(p->req);
}

void chat_free(chat_t *chat) {
    if (chat == NULL)
        return;
    for (size_t i = 0; i < chat->npending; i++)
        pending_drop(&chat->pending[i]);
    /* Every membership record is in exactly one session's array: free it
     * there; the rooms' arrays only point at them. */
    chat_session_t *s = chat->sessions;
    while (s != NULL) {
        chat_session_t *next = s->next;
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
        free(room->members);
        free(room);
    }
    tt_map_dispose(&chat->rooms);
    tt_map_dispose(&chat->nicks);
    free(chat->pending);
    free(chat->batch);
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
    return 0;
}

void chat_stats(const chat_t *chat, chat_stats_t *out) {
    out->sessions = chat->nsessions;
    out->rooms = tt_map_count(&chat->rooms);
    out->messages = chat->messages;
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
    tt_log_debug("chat: %s: session %llu open (%s)", s->peer, (unsigned long long)s->sid,
                 v1 ? "tertulia.v1" : "legacy");
    return s;
}

const char *chat_session_nickname(const chat_session_t *s) {
    return s->logged_in ? s->nick : NULL;
}

void chat_session_close(chat_t *chat, chat_session_t *s, const char *reason) {
    if (s == NULL)
        return;
    if (reason == NULL)
        reason = "disconnect";
    /* Pending messages may point at this session (as sender or recipient)
     * and should reach everyone before the member_left they precede. */
    chat_flush(chat);
    while (s->nrooms > 0)
        chat__leave(chat, s->rooms[s->nrooms - 1], reason);
    if (s->logged_in)
        tt_map_remove(&chat->nicks, s->nick, s->nick_len);
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
}

void chat_session_on_text(chat_t *chat, chat_session_t *s, const char *data, size_t len) {
    /* A session being closed for flooding reads nothing more: the transport
     * may still hand over what arrived in the same read. */
    if (s->closing)
        return;
    chat__dispatch(chat, s, data, len);
}

/* ---- rooms and membership ---- */

chat_room_t *chat__room_find(chat_t *chat, const char *name, size_t len) {
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
                                   size_t *size) {
    json_t *a = json_array();
    *size = 0;
    bool cut = room->count > CHAT_MEMBERS_MAX;
    if (cut) {
        json_array_append_new(a, json_stringn_nocheck(self->nick, self->nick_len));
        *size += self->nick_len + 3;
    }
    for (uint32_t i = 0; i < room->count && json_array_size(a) < CHAT_MEMBERS_MAX; i++) {
        const chat_session_t *m = room->members[i]->session;
        if (cut && m == self)
            continue;
        json_array_append_new(a, json_stringn_nocheck(m->nick, m->nick_len));
        *size += m->nick_len + 3;
    }
    return a;
}

/* Sends obj (reference stolen) to every v1 member of room but `except`,
 * serialized once. */
static void room_presence(chat_t *chat, const chat_room_t *room, const chat_session_t *except,
                          json_t *obj) {
    uint32_t others = room->v1_count - (except != NULL && except->v1 ? 1 : 0);
    if (others > 0) {
        tt_buf_t *frame = chat__frame_json(obj, 128);
        for (uint32_t i = 0; i < room->count; i++) {
            const chat_session_t *m = room->members[i]->session;
            if (m->v1 && m != except)
                chat->io.send(chat->io_ctx, m->conn, frame);
        }
        tt_buf_unref(frame);
    }
    json_decref(obj);
}

static json_t *presence_json(const char *type, const chat_room_t *room, const chat_session_t *s,
                             const char *reason) {
    json_t *o = json_object();
    json_object_set_new(o, "type", json_string_nocheck(type));
    json_object_set_new(o, "room", json_stringn_nocheck(room->name, room->name_len));
    json_object_set_new(o, "nickname", json_stringn_nocheck(s->nick, s->nick_len));
    json_object_set_new(o, "ts", json_integer((json_int_t)chat__now_ms()));
    if (reason != NULL)
        json_object_set_new(o, "reason", json_string(reason));
    return o;
}

/* ---- history ---- */

typedef struct hist_acc_s {
    json_t *a;
    size_t bound; /* an upper bound of the array's JSON: every byte escaped in six */
} hist_acc_t;

static void history_emit(void *arg, const chat_message_t *msg) {
    hist_acc_t *h = arg;
    json_array_append_new(h->a, chat__message_json(msg));
    h->bound += CHAT_MESSAGE_JSON_OVERHEAD + 6 * (msg->text_len + msg->from_len + msg->to_len + 3);
}

/* Drops the oldest messages of a (oldest first) until the rest fits budget
 * bytes, keeping at least the newest. Returns the array to use (a, or a new
 * one holding the newest) and whether anything was dropped. */
static json_t *history_cut(json_t *a, size_t budget, bool *cut) {
    size_t n = json_array_size(a), k = n, total = 0;
    while (k > 0) {
        size_t sz = chat__message_json_size(json_array_get(a, k - 1));
        if (total + sz > budget && k < n)
            break;
        total += sz;
        k--;
    }
    *cut = k > 0;
    if (k == 0)
        return a;
    json_t *kept = json_array();
    for (size_t i = k; i < n; i++)
        json_array_append(kept, json_array_get(a, i));
    json_decref(a);
    return kept;
}

json_t *chat__history_json(chat_t *chat, const char *name, size_t name_len, uint64_t after,
                           uint64_t before, unsigned limit, size_t budget, bool *more, int *rc) {
    hist_acc_t h = {.a = json_array(), .bound = 0};
    *more = false;
    *rc = 0;
    if (chat->store.history != NULL && limit > 0) {
        *rc = chat->store.history(chat->store_ctx, name, name_len, after, before, limit,
                                  history_emit, &h, more);
        if (*rc < 0) {
            json_array_clear(h.a);
            *more = false;
        } else if (h.bound > budget) {
            /* Only large pages are measured; the common one is not. */
            bool cut;
            h.a = history_cut(h.a, budget, &cut);
            *more = *more || cut;
        }
    }
    return h.a;
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

static uint32_t next_cap(uint32_t cap) {
    return cap ? cap * 2 : 4;
}

void chat__join(chat_t *chat, const chat_req_t *req, const char *name, size_t len, uint64_t since) {
    chat_session_t *s = req->s;
    chat_room_t *room = chat__room_find(chat, name, len);
    bool fresh = chat__member_find(s, room) == NULL;
    if (fresh) {
        if (s->nrooms >= chat->cfg.max_rooms) {
            chat__refuse(chat, req, "too_many_rooms",
                         "You are already in %zu rooms, the most a connection may join.",
                         chat->cfg.max_rooms);
            return;
        }
        /* A membership change: deliver (and store) what is pending first, so
         * the joiner's history holds it and no live copy follows. */
        chat_flush(chat);
        if (room == NULL) {
            room = xcalloc(1, sizeof(*room));
            memcpy(room->name, name, len);
            room->name_len = len;
            tt_map_put(&chat->rooms, room->name, room->name_len, room);
        }
        chat_member_t *m = xmalloc(sizeof(*m));
        m->room = room;
        m->session = s;
        if (room->count == room->cap) {
            room->cap = next_cap(room->cap);
            room->members = xrealloc(room->members, room->cap * sizeof(*room->members));
        }
        m->room_idx = room->count;
        room->members[room->count++] = m;
        if (s->nrooms == s->rooms_cap) {
            s->rooms_cap = next_cap(s->rooms_cap);
            s->rooms = xrealloc(s->rooms, s->rooms_cap * sizeof(*s->rooms));
        }
        m->sess_idx = s->nrooms;
        s->rooms[s->nrooms++] = m;
        if (s->v1)
            room->v1_count++;
    }
    if (s->v1) {
        bool more;
        int rc;
        size_t names;
        json_t *members = joined_members_json(room, s, &names);
        unsigned limit = chat->cfg.history_on_join;
        json_t *hist = chat__history_json(chat, room->name, room->name_len, since, 0, limit,
                                          chat__list_budget(chat, names), &more, &rc);
        uint64_t held, held_items;
        if (rc < 0 && logwin_count(chat, &chat->log_history, 0, rc, &held, &held_items)) {
            if (held > 0)
                tt_log_error("chat: history of %s for %s failed (%d); joined without it "
                             "(and %llu more such failures since the last line)",
                             room->name, s->peer, rc, (unsigned long long)held);
            else
                tt_log_error("chat: history of %s for %s failed (%d); joined without it "
                             "(such failures are logged once per %u s)",
                             room->name, s->peer, rc, CHAT_LOG_WINDOW_MS / 1000);
        }
        json_t *o = json_object();
        json_object_set_new(o, "type", json_string_nocheck("joined"));
        json_object_set_new(o, "room", json_stringn_nocheck(room->name, room->name_len));
        json_object_set_new(o, "members", members);
        json_object_set_new(o, "member_count", json_integer(room->count));
        json_object_set_new(o, "history", hist);
        json_object_set_new(o, "more", json_boolean(more));
        chat__reply(chat, s, req, o);
    }
    if (fresh)
        room_presence(chat, room, s, presence_json("member_joined", room, s, NULL));
}

void chat__leave(chat_t *chat, chat_member_t *m, const char *reason) {
    chat_flush(chat);
    chat_room_t *room = m->room;
    chat_session_t *s = m->session;
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
    if (room->count == 0) {
        tt_map_remove(&chat->rooms, room->name, room->name_len);
        free(room->members);
        free(room);
        return;
    }
    room_presence(chat, room, NULL, presence_json("member_left", room, s, reason));
}

chat_pending_t *chat__pending_add(chat_t *chat) {
    if (chat->npending == chat->pending_cap) {
        chat->pending_cap = chat->pending_cap ? chat->pending_cap * 2 : 64;
        chat->pending = xrealloc(chat->pending, chat->pending_cap * sizeof(*chat->pending));
    }
    chat_pending_t *p = &chat->pending[chat->npending++];
    memset(p, 0, sizeof(*p));
    return p;
}

/* ---- delivery ---- */

static void send_ack(chat_t *chat, const chat_pending_t *p) {
    json_t *o = json_object();
    json_object_set_new(o, "type", json_string_nocheck("ack"));
    json_object_set_new(o, "ref", json_stringn_nocheck(p->ref, p->ref_len));
    json_object_set_new(o, "message_id", json_integer((json_int_t)p->msg.id));
    chat__reply(chat, p->sender, NULL, o);
}

static void deliver(chat_t *chat, const chat_pending_t *p) {
    /* The ack first: a client that shows its own line at once learns the
     * id before the echo carrying it arrives. */
    if (p->ref != NULL && p->sender->v1)
        send_ack(chat, p);
    if (p->msg.kind == CHAT_MSG_ROOM) {
        /* The same bytes serve v1 and legacy members: the shape is shared. */
        const chat_room_t *room = p->room;
        for (uint32_t i = 0; i < room->count; i++)
            chat->io.send(chat->io_ctx, room->members[i]->session->conn, p->frame);
    } else {
        chat->io.send(chat->io_ctx, p->target->conn, p->frame);
        if (p->sender != p->target)
            chat->io.send(chat->io_ctx, p->sender->conn, p->frame);
    }
}

void chat_flush(chat_t *chat) {
    /* Failures held back from the log are summarized once their window has
     * passed, even if nothing else happens. */
    if ((chat->log_append.events | chat->log_history.events) != 0)
        logwin_summaries(chat);
    /* io callbacks must not re-enter the chat; the flag turns a violation
     * into a harmless no-op instead of a recursive delivery. */
    if (chat->npending == 0 || chat->flushing)
        return;
    chat->flushing = true;
    int rc = 0;
    size_t stored = 0;
    if (chat->store.append_batch != NULL) {
        if (chat->batch_cap < chat->npending) {
            chat->batch_cap = chat->pending_cap;
            chat->batch = xrealloc(chat->batch, chat->batch_cap * sizeof(*chat->batch));
        }
        /* Private messages are delivered live and never stored. */
        for (size_t i = 0; i < chat->npending; i++)
            if (chat->pending[i].msg.kind == CHAT_MSG_ROOM)
                chat->batch[stored++] = chat->pending[i].msg;
        if (stored > 0)
            rc = chat->store.append_batch(chat->store_ctx, chat->batch, stored);
        /* A failing store fails every batch: log one line per window, with
         * the count of what was held back since the last one. */
        uint64_t held, held_items;
        if (rc < 0 && logwin_count(chat, &chat->log_append, stored, rc, &held, &held_items)) {
            if (held > 0)
                tt_log_error("chat: storing %zu messages failed (%d); they are not delivered "
                             "(and %llu more batches, %llu messages, since the last line)",
                             stored, rc, (unsigned long long)held, (unsigned long long)held_items);
            else
                tt_log_error("chat: storing %zu messages failed (%d); they are not delivered "
                             "(such failures are logged once per %u s)",
                             stored, rc, CHAT_LOG_WINDOW_MS / 1000);
        }
    }
    for (size_t i = 0; i < chat->npending; i++) {
        chat_pending_t *p = &chat->pending[i];
        if (rc < 0 && p->msg.kind == CHAT_MSG_ROOM) {
            chat_req_t req = {.s = p->sender, .type = "room", .ref = p->ref, .ref_len = p->ref_len};
            chat__refuse(chat, &req, "unavailable",
                         "The message could not be stored, so it was not delivered; "
                         "try again later.");
        } else {
            deliver(chat, p);
        }
        pending_drop(p);
    }
    chat->npending = 0;
    chat->flushing = false;
}
