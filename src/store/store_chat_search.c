/* The chat's hooks for edit, delete, the record of rooms and search
 * (chat_store_hooks_t, chat.h) on store_search.h: each one a job of the
 * asynchronous front (store_async_call), or run at once without one. The
 * job holds copies of what it needs and of its results. */
#include <stdlib.h>
#include <string.h>

#include "chat/chat.h"
#include "core/xmalloc.h"
#include "store/store_async.h"
#include "store/store_int.h"
#include "store/store_search.h"

/* store_chat.c's wrappers call these with its store and front. */
int store__chat_message_get(store_t *st, store_async_t *a, uint64_t id, int64_t account,
                            chat_msg_info_done_cb done, void *arg);
int store__chat_message_change(store_t *st, store_async_t *a, uint64_t id, const char *text,
                               size_t len, int64_t edited_ts, chat_store_done_cb done, void *arg);
int store__chat_room_joined(store_t *st, store_async_t *a, int64_t account, const char *room,
                            size_t room_len, chat_store_done_cb done, void *arg);
int store__chat_search(store_t *st, store_async_t *a, const chat_search_t *q,
                       chat_search_done_cb done, void *arg);

/* ---- message_get ---- */

typedef struct get_job_s {
    chat_msg_info_done_cb done;
    void *arg;
    int64_t id, account;
    store_msg_info_t info;
} get_job_t;

static int run_get(store_t *st, void *arg) {
    get_job_t *j = arg;
    return store_message_get(st, j->id, j->account, &j->info);
}

static void done_get(void *arg, int rc) {
    get_job_t *j = arg;
    if (rc == STORE_E_NOTFOUND) {
        j->done(j->arg, 1, NULL);
    } else if (rc < 0) {
        j->done(j->arg, rc, NULL);
    } else {
        const store_msg_info_t *o = &j->info;
        bool dm = o->kind == STORE_KIND_PRIVATE;
        chat_msg_info_t info = {
            .msg = {.id = (uint64_t)o->id,
                    .ts = o->ts,
                    .kind = dm ? CHAT_MSG_PRIVATE : CHAT_MSG_ROOM,
                    .from = o->from,
                    .from_len = o->from_len,
                    .to = dm ? o->to : o->room,
                    .to_len = dm ? o->to_len : o->room_len,
                    .text = "",
                    .edited_ts = o->edited_ts,
                    .deleted = o->deleted},
            .joined = o->joined,
        };
        j->done(j->arg, 0, &info);
    }
    free(j);
}

int store__chat_message_get(store_t *st, store_async_t *a, uint64_t id, int64_t account,
                            chat_msg_info_done_cb done, void *arg) {
    if (id == 0 || id > STORE_ID_MAX)
        return STORE_E_INVALID;
    get_job_t *j = xcalloc(1, sizeof(*j));
    j->done = done;
    j->arg = arg;
    j->id = (int64_t)id;
    j->account = account;
    return store_async_submit(a, st, sizeof(*j), run_get, done_get, j);
}

/* ---- message_change ---- */

typedef struct change_job_s {
    chat_store_done_cb done;
    void *arg;
    int64_t id, edited_ts;
    char *text; /* NULL: delete */
    size_t len;
} change_job_t;

static int run_change(store_t *st, void *arg) {
    change_job_t *j = arg;
    return j->text != NULL ? store_message_edit(st, j->id, j->text, j->len, j->edited_ts)
                           : store_message_delete(st, j->id);
}

static void done_change(void *arg, int rc) {
    change_job_t *j = arg;
    j->done(j->arg, rc == STORE_E_NOTFOUND ? 1 : rc, 0);
    free(j->text);
    free(j);
}

int store__chat_message_change(store_t *st, store_async_t *a, uint64_t id, const char *text,
                               size_t len, int64_t edited_ts, chat_store_done_cb done, void *arg) {
    if (id == 0 || id > STORE_ID_MAX || (text != NULL && len == 0))
        return STORE_E_INVALID;
    change_job_t *j = xcalloc(1, sizeof(*j));
    j->done = done;
    j->arg = arg;
    j->id = (int64_t)id;
    j->edited_ts = edited_ts;
    if (text != NULL) {
        j->text = xmalloc(len);
        memcpy(j->text, text, len);
        j->len = len;
    }
    return store_async_submit(a, st, sizeof(*j) + len, run_change, done_change, j);
}

/* ---- room_joined ---- */

typedef struct joined_job_s {
    chat_store_done_cb done;
    void *arg;
    int64_t account, ts;
    char room[CHAT_ROOM_MAX + 1];
    size_t room_len;
} joined_job_t;

static int run_joined(store_t *st, void *arg) {
    joined_job_t *j = arg;
    return store_room_joined(st, j->account, j->room, j->room_len, j->ts);
}

static void done_joined(void *arg, int rc) {
    joined_job_t *j = arg;
    if (j->done != NULL)
        j->done(j->arg, rc, 0);
    free(j);
}

int store__chat_room_joined(store_t *st, store_async_t *a, int64_t account, const char *room,
                            size_t room_len, chat_store_done_cb done, void *arg) {
    if (account <= 0 || room_len == 0 || room_len > CHAT_ROOM_MAX)
        return STORE_E_INVALID;
    joined_job_t *j = xcalloc(1, sizeof(*j));
    j->done = done;
    j->arg = arg;
    j->account = account;
    j->ts = store__now_ms();
    memcpy(j->room, room, room_len);
    j->room_len = room_len;
    return store_async_submit(a, st, sizeof(*j), run_joined, done_joined, j);
}

/* ---- search ---- */

typedef struct search_job_s {
    chat_search_done_cb done;
    void *arg;
    /* The request, copied: every string in strs, back to back. */
    const char *words[CHAT_SEARCH_WORDS_MAX];
    size_t word_lens[CHAT_SEARCH_WORDS_MAX];
    size_t nwords;
    int64_t account;
    char nick[CHAT_NICK_MAX + 1];
    size_t nick_len;
    const char **rooms;
    size_t *room_lens;
    size_t nrooms;
    char only[2 * STORE_NICK_MAX + CHAT_ROOM_MAX + 4];
    size_t only_len; /* 0: none */
    int64_t before;
    unsigned limit;
    char *strs;
    /* The results, copied on the worker. */
    chat_search_hit_t hits[STORE_SEARCH_LIMIT_MAX];
    size_t nhits;
    bool more;
    int64_t next_before;
} search_job_t;

static char *dup_n(const char *s, size_t n) {
    char *p = xmalloc(n + 1);
    if (n > 0)
        memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

static void on_hit(void *ctx, const store_hit_t *h) {
    search_job_t *j = ctx;
    if (j->nhits >= STORE_SEARCH_LIMIT_MAX)
        return;
    const store_rec_t *r = &h->rec;
    bool dm = r->kind == STORE_KIND_PRIVATE;
    chat_search_hit_t *o = &j->hits[j->nhits++];
    const char *to = dm ? (r->to != NULL ? r->to : "") : r->room;
    size_t to_len = dm ? (r->to != NULL ? r->to_len : 0) : r->room_len;
    o->msg = (chat_message_t){.id = (uint64_t)r->id,
                              .ts = r->ts,
                              .kind = dm ? CHAT_MSG_PRIVATE : CHAT_MSG_ROOM,
                              .from = dup_n(r->from, r->from_len),
                              .from_len = r->from_len,
                              .to = dup_n(to, to_len),
                              .to_len = to_len,
                              .text = dup_n(r->text, r->text_len),
                              .text_len = r->text_len,
                              .edited_ts = r->edited_ts,
                              .deleted = r->deleted};
    o->marked = dup_n(h->marked, h->marked_len);
    o->marked_len = h->marked_len;
}

static int run_search(store_t *st, void *arg) {
    search_job_t *j = arg;
    store_search_req_t q = {.words = j->words,
                            .word_lens = j->word_lens,
                            .nwords = j->nwords,
                            .account = j->account,
                            .nick = j->nick,
                            .nick_len = j->nick_len,
                            .rooms = j->rooms,
                            .room_lens = j->room_lens,
                            .nrooms = j->nrooms,
                            .only = j->only_len > 0 ? j->only : NULL,
                            .only_len = j->only_len,
                            .before_id = j->before,
                            .limit = j->limit};
    return store_search(st, &q, on_hit, j, &j->more, &j->next_before);
}

static void done_search(void *arg, int rc) {
    search_job_t *j = arg;
    j->done(j->arg, rc < 0 ? rc : 0, j->hits, rc < 0 ? 0 : j->nhits, rc >= 0 && j->more,
            (uint64_t)j->next_before);
    for (size_t i = 0; i < j->nhits; i++) {
        free((char *)j->hits[i].msg.from);
        free((char *)j->hits[i].msg.to);
        free((char *)j->hits[i].msg.text);
        free((char *)j->hits[i].marked);
    }
    free(j->rooms);
    free(j->room_lens);
    free(j->strs);
    free(j);
}

/* The conversation key of a and b ("@" + both folded, sorted). */
static int dm_key(const char *a, size_t a_len, const char *b, size_t b_len, char *key, size_t cap) {
    char x[CHAT_NICK_MAX + 1], y[CHAT_NICK_MAX + 1];
    if (a_len == 0 || b_len == 0 || a_len > CHAT_NICK_MAX || b_len > CHAT_NICK_MAX)
        return STORE_E_INVALID;
    memcpy(x, a, a_len);
    x[a_len] = '\0';
    memcpy(y, b, b_len);
    y[b_len] = '\0';
    return store_dm_key(x, y, key, cap);
}

int store__chat_search(store_t *st, store_async_t *a, const chat_search_t *q,
                       chat_search_done_cb done, void *arg) {
    if (q->nwords == 0 || q->nwords > CHAT_SEARCH_WORDS_MAX || q->limit == 0 ||
        q->limit > STORE_SEARCH_LIMIT_MAX || q->nick_len > CHAT_NICK_MAX ||
        q->room_len > CHAT_ROOM_MAX || q->before > STORE_ID_MAX)
        return STORE_E_INVALID;
    search_job_t *j = xcalloc(1, sizeof(*j));
    j->done = done;
    j->arg = arg;
    j->account = q->account;
    memcpy(j->nick, q->nick, q->nick_len);
    j->nick_len = q->nick_len;
    j->before = (int64_t)q->before;
    j->limit = q->limit;
    if (q->room != NULL) {
        memcpy(j->only, q->room, q->room_len);
        j->only_len = q->room_len;
    } else if (q->with != NULL) {
        int n = dm_key(q->nick, q->nick_len, q->with, q->with_len, j->only, sizeof(j->only));
        if (n < 0) {
            free(j);
            return n;
        }
        j->only_len = (size_t)n;
    }
    size_t total = 0;
    for (size_t i = 0; i < q->nwords; i++)
        total += q->word_lens[i] + 1;
    for (size_t i = 0; i < q->nrooms; i++)
        total += q->room_lens[i] + 1;
    j->strs = xmalloc(total + 1);
    char *p = j->strs;
    for (size_t i = 0; i < q->nwords; i++) {
        memcpy(p, q->words[i], q->word_lens[i]);
        j->words[i] = p;
        j->word_lens[i] = q->word_lens[i];
        p += q->word_lens[i];
        *p++ = '\0';
    }
    j->nwords = q->nwords;
    j->rooms = xmalloc((q->nrooms + 1) * sizeof(*j->rooms));
    j->room_lens = xmalloc((q->nrooms + 1) * sizeof(*j->room_lens));
    for (size_t i = 0; i < q->nrooms; i++) {
        memcpy(p, q->rooms[i], q->room_lens[i]);
        j->rooms[i] = p;
        j->room_lens[i] = q->room_lens[i];
        p += q->room_lens[i];
        *p++ = '\0';
    }
    j->nrooms = q->nrooms;
    /* The results count too: at most limit texts (and their marked copy). */
    size_t bytes = sizeof(*j) + total + (size_t)q->limit * 2 * 8192;
    return store_async_submit(a, st, bytes, run_search, done_search, j);
}
