/* `search`: a query of words over the stored messages the requester may
 * read, newest first, with the matches as offsets into each text. What is
 * readable: the rooms it is in, the rooms a guest joined since it logged
 * in (the last CHAT_SEARCH_GUEST_ROOMS of them, remembered here), and for
 * an account the rooms its record in the store holds (every room it ever
 * joined, up to the store's bound) and its stored conversations. The
 * store runs the query (store_search.h); the executor waits for it, as for
 * a history read, and the reply is cut to the reply budget. */
#include "chat/chat_int.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/xmalloc.h"

/* ---- the rooms a guest was in ---- */

static bool same_room(const char *a, const char *b, size_t blen) {
    if (a[0] == '#')
        a++;
    if (blen > 0 && b[0] == '#') {
        b++;
        blen--;
    }
    return strlen(a) == blen && strncasecmp(a, b, blen) == 0;
}

void chat__search_note_join(chat_t *chat, chat_session_t *s, const chat_room_t *room) {
    chat_user_t *u = s->user;
    /* An account's record, in order with everything else. Nobody waits for
     * it; a failure is the store's to log. A guest's rooms are readable
     * while it is in them, and remembered once it leaves (below). */
    if (u->kind == CHAT_USER_ACCOUNT && chat->store.room_joined != NULL)
        chat->store.room_joined(chat->store_ctx, u->account_id, room->name, room->name_len, NULL,
                                NULL);
}

void chat__search_note_left(chat_user_t *u, const chat_room_t *room) {
    if (u->kind != CHAT_USER_GUEST)
        return;
    for (uint32_t i = 0; i < u->nseen; i++)
        if (same_room(u->seen[i], room->name, room->name_len))
            return;
    /* Grown by doubling up to the bound, never made whole at once: at its
     * most the ring is 13 KB, and most guests leave a room or two (it was
     * most of an idle guest's memory; an idle guest in its rooms now holds
     * none). */
    if (u->nseen == u->seen_cap && u->seen_cap < CHAT_SEARCH_GUEST_ROOMS) {
        uint32_t cap = u->seen_cap ? u->seen_cap * 2u : 2u;
        u->seen_cap = (uint8_t)(cap < CHAT_SEARCH_GUEST_ROOMS ? cap : CHAT_SEARCH_GUEST_ROOMS);
        u->seen = xrealloc(u->seen, u->seen_cap * sizeof(*u->seen));
    }
    /* Full: the oldest is forgotten. */
    uint32_t at = u->nseen < CHAT_SEARCH_GUEST_ROOMS ? u->nseen++ : u->seen_next;
    u->seen_next = (at + 1) % CHAT_SEARCH_GUEST_ROOMS;
    memcpy(u->seen[at], room->name, room->name_len);
    u->seen[at][room->name_len] = '\0';
}

void chat__search_free(chat_user_t *u) {
    free(u->seen);
    u->seen = NULL;
    u->nseen = u->seen_cap = 0;
}

/* ---- the request ---- */

/* A space between words: ASCII blanks, U+00A0, U+3000. *n: its bytes. */
static bool is_space(const char *p, size_t left, size_t *n) {
    unsigned char c = (unsigned char)p[0];
    *n = 1;
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r')
        return true;
    if (c == 0xC2 && left >= 2 && (unsigned char)p[1] == 0xA0) {
        *n = 2;
        return true;
    }
    if (c == 0xE3 && left >= 3 && (unsigned char)p[1] == 0x80 && (unsigned char)p[2] == 0x80) {
        *n = 3;
        return true;
    }
    return false;
}

/* Splits q into words; false when there are more than the most. */
static bool split_words(const char *q, size_t len, chat_search_t *out) {
    size_t i = 0;
    out->nwords = 0;
    while (i < len) {
        size_t n;
        if (is_space(q + i, len - i, &n)) {
            i += n;
            continue;
        }
        size_t start = i;
        while (i < len && !is_space(q + i, len - i, &n))
            i++;
        if (out->nwords == CHAT_SEARCH_WORDS_MAX)
            return false;
        out->words[out->nwords] = q + start;
        out->word_lens[out->nwords++] = i - start;
    }
    return true;
}

typedef struct search_s {
    chat_t *chat;
    uint64_t sid;
    json_t *root;
    const char *ref;
    size_t ref_len;
    const char *query;
    size_t query_len;
} search_t;

/* The highlights of a hit: the marked spans of its text as [start, end)
 * in UTF-16 code units. NULL when marked does not match text (a text that
 * holds the markers itself: stored before such text was refused). */
static json_t *highlights(const chat_search_hit_t *h, size_t *size) {
    const chat_message_t *m = &h->msg;
    if (memchr(m->text, 1, m->text_len) != NULL || memchr(m->text, 2, m->text_len) != NULL)
        return NULL;
    json_t *a = json_array();
    size_t units = 0, bytes = 0, start = 0;
    bool open = false;
    *size = 16;
    for (size_t i = 0; i < h->marked_len; i++) {
        unsigned char c = (unsigned char)h->marked[i];
        if (c == 1) {
            open = true;
            start = units;
            continue;
        }
        if (c == 2) {
            if (open && json_array_size(a) < CHAT_SEARCH_HIGHLIGHTS_MAX) {
                json_array_append_new(a, json_pack("[I,I]", (json_int_t)start, (json_int_t)units));
                *size += 2 * 20 + 4;
            }
            open = false;
            continue;
        }
        bytes++;
        /* A lead byte starts a code point: one unit, two beyond the BMP. */
        if ((c & 0xC0) != 0x80)
            units += c >= 0xF0 ? 2 : 1;
    }
    if (bytes != m->text_len) {
        json_decref(a);
        return NULL;
    }
    return a;
}

static void on_search_done(void *arg, int rc, const chat_search_hit_t *hits, size_t n, bool more,
                           uint64_t next_before) {
    search_t *q = arg;
    chat_t *chat = q->chat;
    chat_session_t *s = chat__session_find(chat, q->sid);
    chat_req_t req = {
        .s = s, .root = q->root, .type = "search", .ref = q->ref, .ref_len = q->ref_len};
    if (s != NULL && rc < 0) {
        chat__refuse(chat, &req, "unavailable", "The search cannot be run now; try again later.");
    } else if (s != NULL) {
        size_t budget = chat__list_budget(chat, chat__json_string_size(q->query, q->query_len));
        size_t used = 0;
        json_t *results = json_array();
        for (size_t i = 0; i < n; i++) {
            chat_message_t m = hits[i].msg;
            /* A room by the name it has now, or its key. */
            char name[CHAT_ROOM_MAX + 2];
            if (m.kind == CHAT_MSG_ROOM) {
                const chat_room_t *room = chat__room_find(chat, m.to, m.to_len);
                if (room != NULL) {
                    m.to = room->name;
                    m.to_len = room->name_len;
                } else if (m.to_len < CHAT_ROOM_MAX) {
                    name[0] = '#';
                    memcpy(name + 1, m.to, m.to_len);
                    m.to = name;
                    m.to_len++;
                }
            }
            json_t *o = chat__message_json(&m);
            if (m.edited_ts != 0)
                json_object_set_new(o, "edited_ts", json_integer((json_int_t)m.edited_ts));
            size_t hsize = 0;
            json_t *hl = highlights(&hits[i], &hsize);
            json_object_set_new(o, "highlights", hl != NULL ? hl : json_array());
            size_t sz = chat__message_json_size(o) + hsize + 32;
            if (i > 0 && used + sz > budget) {
                json_decref(o);
                more = true;
                next_before = hits[i - 1].msg.id;
                break;
            }
            used += sz;
            json_array_append_new(results, o);
        }
        json_t *o = json_object();
        json_object_set_new(o, "type", json_string_nocheck("search"));
        json_object_set_new(o, "query", json_stringn_nocheck(q->query, q->query_len));
        json_object_set_new(o, "results", results);
        json_object_set_new(o, "more", json_boolean(more));
        if (more && next_before > 0)
            json_object_set_new(o, "next_before", json_integer((json_int_t)next_before));
        chat__reply(chat, s, &req, o);
    }
    json_decref(q->root);
    free(q);
    chat->inflight--;
    chat__pump(chat);
}

void chat__on_search(chat_t *chat, const chat_req_t *req) {
    chat_session_t *s = req->s;
    chat_user_t *u = s->user;
    if (!s->v1) {
        chat__refuse(chat, req, "unknown_type", "The message type is not one this server knows.");
        return;
    }
    const char *query, *room = NULL, *with = NULL;
    size_t query_len, room_len = 0, with_len = 0;
    if (!chat__need_str(chat, req, "query", &query, &query_len))
        return;
    int has_room = chat__opt_str(chat, req, "room", &room, &room_len);
    if (has_room < 0)
        return;
    int has_with = chat__opt_str(chat, req, "with", &with, &with_len);
    if (has_with < 0)
        return;
    uint64_t before = 0;
    unsigned limit;
    if (chat__opt_id(chat, req, "before", &before) < 0 ||
        chat__opt_limit(chat, req, CHAT_SEARCH_DEFAULT, CHAT_SEARCH_MAX, &limit) < 0)
        return;
    size_t chars = chat__utf8_chars(query, query_len);
    if (chars == 0 || chars > CHAT_SEARCH_QUERY_MAX) {
        chat__refuse(chat, req, "bad_request", "A query has 1 to %d characters.",
                     CHAT_SEARCH_QUERY_MAX);
        return;
    }
    if (chat__text_kind(query, query_len) == TEXT_CONTROL) {
        chat__refuse(chat, req, "bad_request", "A query must not contain control characters.");
        return;
    }
    chat_search_t q = {0};
    if (!split_words(query, query_len, &q)) {
        chat__refuse(chat, req, "bad_request", "A query has at most %d words.",
                     CHAT_SEARCH_WORDS_MAX);
        return;
    }
    if (q.nwords == 0) {
        chat__refuse(chat, req, "bad_request", "The query has no words.");
        return;
    }
    if (has_room > 0 && has_with > 0) {
        chat__refuse(chat, req, "bad_request", "A search names 'room' or 'with', not both.");
        return;
    }
    if (has_room > 0 && !chat__room_ok(chat, req, room, room_len))
        return;
    if (has_with > 0 && !chat_nickname_is_valid(with, with_len)) {
        chat__refuse(chat, req, "nickname_invalid",
                     "A nickname has 1 to 32 letters, digits, '_', '-' or '.'.");
        return;
    }
    search_t *sq = xcalloc(1, sizeof(*sq));
    sq->chat = chat;
    sq->sid = s->sid;
    sq->root = json_incref(req->root);
    sq->ref = req->ref;
    sq->ref_len = req->ref_len;
    sq->query = query;
    sq->query_len = query_len;
    chat->inflight++;
    /* A guest's conversations are not stored: nothing to find there. */
    if (chat->store.search == NULL || (has_with > 0 && u->kind != CHAT_USER_ACCOUNT)) {
        on_search_done(sq, 0, NULL, 0, false, 0);
        return;
    }
    /* Readable: the rooms the user is in, and a guest's remembered ones. */
    size_t cap = (size_t)u->nrooms + u->nseen;
    const char **names = xmalloc((cap ? cap : 1) * sizeof(*names));
    size_t *lens = xmalloc((cap ? cap : 1) * sizeof(*lens));
    size_t k = 0;
    for (uint32_t i = 0; i < u->nrooms; i++) {
        names[k] = u->rooms[i]->room->name;
        lens[k++] = u->rooms[i]->room->name_len;
    }
    for (uint32_t i = 0; i < u->nseen; i++) {
        names[k] = u->seen[i];
        lens[k++] = strlen(u->seen[i]);
    }
    q.account = u->kind == CHAT_USER_ACCOUNT ? u->account_id : 0;
    q.nick = s->nick;
    q.nick_len = s->nick_len;
    q.rooms = names;
    q.room_lens = lens;
    q.nrooms = k;
    q.room = has_room > 0 ? room : NULL;
    q.room_len = room_len;
    q.with = has_with > 0 ? with : NULL;
    q.with_len = with_len;
    q.before = before;
    q.limit = limit;
    /* Messages accepted before the search are in the store first. */
    if (chat->npending > 0)
        chat_flush(chat);
    int rc = chat->store.search(chat->store_ctx, &q, on_search_done, sq);
    free(names);
    free(lens);
    if (rc < 0)
        on_search_done(sq, rc, NULL, 0, false, 0);
}
