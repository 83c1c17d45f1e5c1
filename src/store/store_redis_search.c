/* store_search on a cluster's streams (st->redis): the readable rooms'
 * streams (tt:room:<key>:log) and the account's conversations'
 * (tt:dm:<key>:log), read newest first and merged by id, at most
 * STORE_SEARCH_SCAN_MAX entries a call; each batch of them is matched by
 * SQLite's FTS5 with the same tokenizer ("tt") and highlight() as the
 * single node's index, in a temporary table on the store's connection,
 * so a word finds in a cluster what it finds on one node. Edits are in
 * the streams already (an edited entry holds its new text and `e`, a
 * deleted one is a marker `d` with no text, which no search finds).
 *
 * What is readable is what it is on one node: the rooms the chat names,
 * and for an account its record of rooms (tt:joins:<account>, a sorted
 * set by the time of the last join, at most STORE_JOINS_MAX, which
 * store_room_joined keeps here in a cluster) and its stored
 * conversations (tt:dms:<nick>).
 * Runs on the store's worker, on its blocking Redis connection: one
 * pipelined XREVRANGE per key to start, one more per key whose chunk ran
 * out. The cost is the scan: it reads up to 20,000 entries, where the
 * index of one node reads only what matches. */
#include "store/store_int.h"

#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/xmalloc.h"
#include "store/store_search.h"

#define CHUNK 32  /* entries a key's read brings */
#define BATCH 256 /* entries matched at once */

typedef struct src_s {
    char stream[STORE_ROOM_MAX + 16];
    const char *key;
    redisReply *rep; /* the current chunk, newest first */
    size_t pos;
    int64_t head; /* the id at pos (0: none left) */
} src_t;

typedef struct cand_s {
    int64_t id, ts, edited_ts;
    const char *key;
    char *buf; /* from, to, text: NUL-terminated, one after the other */
    size_t from_len, to_len, text_len;
} cand_t;

typedef struct scan_s {
    store_t *st;
    const store_search_req_t *q;
    char *match;
    store_hit_cb cb;
    void *ctx;
    cand_t cands[BATCH];
    size_t ncands;
    int count;
    bool done, more;
    int64_t next_before;
} scan_t;

static int64_t entry_id(const redisReply *e) {
    if (e->type != REDIS_REPLY_ARRAY || e->elements != 2 ||
        e->element[0]->type != REDIS_REPLY_STRING)
        return 0;
    return strtoll(e->element[0]->str, NULL, 10);
}

/* src's head after its chunk moved: the next entry, or 0. */
static void src_head(src_t *s) {
    s->head = 0;
    while (s->rep != NULL && s->pos < s->rep->elements) {
        s->head = entry_id(s->rep->element[s->pos]);
        if (s->head > 0)
            return;
        s->pos++; /* malformed: skipped */
    }
}

static void read_cmd(redisContext *ctx, const src_t *s, int64_t before) {
    char from[32];
    if (before > 0)
        snprintf(from, sizeof(from), "(%" PRId64 "-0", before);
    else
        snprintf(from, sizeof(from), "+");
    const char *argv[] = {"XREVRANGE", s->stream, from, "-", "COUNT", "32"};
    redisAppendCommandArgv(ctx, 6, argv, NULL);
}

/* A chunk for each of srcs[0..n) (pipelined). False: Redis failed. */
static bool fill(store_redis_t *r, src_t **srcs, size_t n, int64_t before) {
    redisContext *ctx = store__redis_conn(r, "search");
    if (ctx == NULL)
        return false;
    for (size_t i = 0; i < n; i++)
        read_cmd(ctx, srcs[i], srcs[i]->rep != NULL ? srcs[i]->head : before);
    bool ok = true;
    for (size_t i = 0; i < n; i++) {
        void *rep = NULL;
        if (!ok || redisGetReply(ctx, &rep) != REDIS_OK) {
            ok = false;
            continue;
        }
        src_t *s = srcs[i];
        if (s->rep != NULL)
            freeReplyObject(s->rep);
        s->rep = rep;
        s->pos = 0;
        if (s->rep->type != REDIS_REPLY_ARRAY) {
            freeReplyObject(s->rep);
            s->rep = NULL; /* an error (not a stream): nothing there */
        }
        src_head(s);
    }
    if (!ok)
        store__redis_drop(r);
    return ok;
}

/* The max-heap of sources by head id. */
static bool above(src_t **h, size_t i, size_t j) {
    return h[i]->head > h[j]->head;
}

static void heap_down(src_t **h, size_t n, size_t i) {
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < n && above(h, l, m))
            m = l;
        if (r < n && above(h, r, m))
            m = r;
        if (m == i)
            return;
        src_t *t = h[i];
        h[i] = h[m];
        h[m] = t;
        i = m;
    }
}

/* One field of a stream entry's field list, or NULL. */
static const redisReply *field(const redisReply *e, const char *name) {
    const redisReply *f = e->element[1];
    for (size_t i = 0; f->type == REDIS_REPLY_ARRAY && i + 1 < f->elements; i += 2)
        if (f->element[i]->type == REDIS_REPLY_STRING && strcmp(f->element[i]->str, name) == 0)
            return f->element[i + 1];
    return NULL;
}

/* A candidate from entry e of key: false when it is no message (a
 * deleted one's marker, a malformed entry). The payload is "<seq> <id>
 * <ts> <node> <token> <from> <room or recipient> <mentions> <text>". */
static bool cand_of(const redisReply *e, const char *key, int64_t id, cand_t *c) {
    const redisReply *m = field(e, "m");
    if (field(e, "d") != NULL || m == NULL || m->type != REDIS_REPLY_STRING)
        return false;
    const char *f[9];
    size_t fl[9];
    const char *p = m->str, *end = m->str + m->len;
    for (int i = 0; i < 8; i++) {
        const char *sp = memchr(p, ' ', (size_t)(end - p));
        if (sp == NULL)
            return false;
        f[i] = p;
        fl[i] = (size_t)(sp - p);
        p = sp + 1;
    }
    f[8] = p;
    fl[8] = (size_t)(end - p);
    if (fl[5] == 0 || fl[5] > STORE_NICK_MAX || fl[6] == 0 || fl[6] > STORE_ROOM_MAX)
        return false;
    bool private = key[0] == '@';
    c->id = id;
    c->ts = strtoll(f[2], NULL, 10);
    const redisReply *ed = field(e, "e");
    c->edited_ts = ed != NULL && ed->type == REDIS_REPLY_STRING ? strtoll(ed->str, NULL, 10) : 0;
    c->key = key;
    c->from_len = fl[5];
    c->to_len = private ? fl[6] : 0;
    c->text_len = fl[8];
    c->buf = xmalloc(c->from_len + c->to_len + c->text_len + 3);
    memcpy(c->buf, f[5], c->from_len);
    c->buf[c->from_len] = '\0';
    memcpy(c->buf + c->from_len + 1, f[6], c->to_len);
    c->buf[c->from_len + 1 + c->to_len] = '\0';
    memcpy(c->buf + c->from_len + c->to_len + 2, f[8], c->text_len);
    c->buf[c->from_len + c->to_len + 2 + c->text_len] = '\0';
    return true;
}

static const cand_t *cand_find(const scan_t *sc, int64_t id) {
    size_t lo = 0, hi = sc->ncands; /* ids descending */
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (sc->cands[mid].id == id)
            return &sc->cands[mid];
        if (sc->cands[mid].id > id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

static void hit_of(const cand_t *c, const char *marked, size_t marked_len, store_hit_t *h) {
    memset(h, 0, sizeof(*h));
    store_rec_t *r = &h->rec;
    r->id = c->id;
    r->ts = c->ts;
    r->kind = c->key[0] == '@' ? STORE_KIND_PRIVATE : STORE_KIND_ROOM;
    r->room = c->key;
    r->room_len = strlen(c->key);
    r->from = c->buf;
    r->from_len = c->from_len;
    if (r->kind == STORE_KIND_PRIVATE) {
        r->to = c->buf + c->from_len + 1;
        r->to_len = c->to_len;
    }
    r->text = c->buf + c->from_len + c->to_len + 2;
    r->text_len = c->text_len;
    r->edited_ts = c->edited_ts;
    h->marked = marked;
    h->marked_len = marked_len;
}

/* Matches the batch (a read transaction that writes only its temporary
 * table): its hits, newest first, to the callback. */
static int match_body(store_t *st, void *arg, int *res) {
    scan_t *sc = arg;
    *res = 0;
    int rc = sqlite3_exec(st->db,
                          "CREATE VIRTUAL TABLE IF NOT EXISTS temp.tt_scan USING fts5(text,"
                          " tokenize = 'tt'); DELETE FROM temp.tt_scan;",
                          NULL, NULL, NULL);
    sqlite3_stmt *ins = NULL, *sel = NULL;
    if (rc == SQLITE_OK)
        rc = sqlite3_prepare_v2(st->db, "INSERT INTO temp.tt_scan (rowid, text) VALUES (?1, ?2)",
                                -1, &ins, NULL);
    for (size_t i = 0; rc == SQLITE_OK && i < sc->ncands; i++) {
        const cand_t *c = &sc->cands[i];
        sqlite3_bind_int64(ins, 1, c->id);
        sqlite3_bind_text(ins, 2, c->buf + c->from_len + c->to_len + 2, (int)c->text_len,
                          SQLITE_STATIC);
        rc = store__step_done(ins);
    }
    sqlite3_finalize(ins);
    if (rc == SQLITE_OK)
        rc = sqlite3_prepare_v2(st->db,
                                "SELECT rowid, highlight(tt_scan, 0, char(1), char(2))"
                                " FROM temp.tt_scan WHERE tt_scan MATCH ?1 ORDER BY rowid DESC",
                                -1, &sel, NULL);
    if (rc == SQLITE_OK) {
        sqlite3_bind_text(sel, 1, sc->match, -1, SQLITE_STATIC);
        while ((rc = sqlite3_step(sel)) == SQLITE_ROW) {
            const cand_t *c = cand_find(sc, sqlite3_column_int64(sel, 0));
            const char *marked = (const char *)sqlite3_column_text(sel, 1);
            if (c == NULL || marked == NULL)
                continue;
            if (sc->count == (int)sc->q->limit) {
                sc->more = true; /* one more matches: the caller pages on */
                sc->done = true;
                break;
            }
            store_hit_t h;
            hit_of(c, marked, (size_t)sqlite3_column_bytes(sel, 1), &h);
            sc->cb(sc->ctx, &h);
            sc->count++;
            sc->next_before = c->id;
        }
        rc = rc == SQLITE_ROW || rc == SQLITE_DONE ? SQLITE_OK : rc;
    }
    sqlite3_finalize(sel);
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(st->db, "DELETE FROM temp.tt_scan", NULL, NULL, NULL);
    return rc;
}

static int flush(scan_t *sc) {
    int rc = sc->ncands > 0 ? store__search_tx(sc->st, "search", match_body, sc) : 0;
    for (size_t i = 0; i < sc->ncands; i++)
        free(sc->cands[i].buf);
    sc->ncands = 0;
    return rc;
}

int store__redis_room_joined(store_t *st, int64_t account, const char *key, size_t len,
                             int64_t ts) {
    /* Past the bound, the least recently joined go, as on one node. */
    static const char script[] = "local k = 'tt:joins:' .. ARGV[1] "
                                 "redis.call('ZADD', k, ARGV[3], ARGV[2]) "
                                 "redis.call('ZREMRANGEBYRANK', k, 0, -1 - tonumber(ARGV[4])) "
                                 "return 1";
    char id[24], t[24], max[16];
    snprintf(id, sizeof(id), "%" PRId64, account);
    snprintf(t, sizeof(t), "%" PRId64, ts);
    snprintf(max, sizeof(max), "%d", STORE_JOINS_MAX);
    const char *argv[] = {id, key, t, max};
    size_t lens[] = {strlen(id), len, strlen(t), strlen(max)};
    redisReply *rep = store__redis_eval(st->redis, "record a join", script, 4, argv, lens);
    if (rep == NULL)
        return STORE_E_UNAVAILABLE;
    freeReplyObject(rep);
    return 0;
}

/* The readable keys of q: its rooms, and for an account its record of
 * rooms (tt:joins:<id>) and its stored conversations (tt:dms:<nick>). */
static int keys_load(store_t *st, const store_search_req_t *q, store__keys_t *k) {
    store__keys_rooms(q, k);
    if (q->account <= 0)
        return 0;
    static const char script[] =
        "local out = redis.call('ZRANGE', 'tt:joins:' .. ARGV[1], 0, -1) "
        "for _, c in ipairs(redis.call('ZRANGE', 'tt:dms:' .. ARGV[2], 0, ARGV[3])) do "
        "  out[#out + 1] = c end "
        "return out";
    char id[24], owner[STORE_NICK_MAX], last[16];
    snprintf(id, sizeof(id), "%" PRId64, q->account);
    size_t olen = q->nick_len <= STORE_NICK_MAX ? q->nick_len : STORE_NICK_MAX;
    store__ascii_lower(owner, q->nick, olen);
    snprintf(last, sizeof(last), "%d", STORE_SEARCH_KEYS_MAX - 1);
    const char *argv[] = {id, owner, last};
    size_t lens[] = {strlen(id), olen, strlen(last)};
    redisReply *rep = store__redis_eval(st->redis, "read the readable keys", script, 3, argv, lens);
    if (rep == NULL)
        return STORE_E_UNAVAILABLE;
    for (size_t i = 0; rep->type == REDIS_REPLY_ARRAY && i < rep->elements; i++)
        if (rep->element[i]->type == REDIS_REPLY_STRING && rep->element[i]->len > 0 &&
            rep->element[i]->len <= STORE_ROOM_MAX)
            store__keys_add(k, rep->element[i]->str, rep->element[i]->len);
    freeReplyObject(rep);
    return 0;
}

int store__redis_search(store_t *st, const store_search_req_t *q, store_hit_cb cb, void *ctx,
                        bool *more, int64_t *next_before) {
    store__keys_t k = {0};
    int rc = keys_load(st, q, &k);
    if (rc < 0) {
        store__keys_free(&k);
        return rc;
    }
    store__keys_only(q, &k);
    src_t *srcs = xcalloc(k.n > 0 ? k.n : 1, sizeof(*srcs));
    src_t **heap = xcalloc(k.n > 0 ? k.n : 1, sizeof(*heap));
    for (size_t i = 0; i < k.n; i++) {
        srcs[i].key = k.keys[i];
        snprintf(srcs[i].stream, sizeof(srcs[i].stream), "%s:%s:log",
                 k.keys[i][0] == '@' ? "tt:dm" : "tt:room", k.keys[i]);
        heap[i] = &srcs[i];
    }
    scan_t *sc = xcalloc(1, sizeof(*sc));
    *sc = (scan_t){.st = st, .q = q, .match = store__search_match(q), .cb = cb, .ctx = ctx};
    size_t n = 0;
    if (k.n > 0 && !fill(st->redis, heap, k.n, q->before_id))
        rc = STORE_E_UNAVAILABLE;
    for (size_t i = 0; rc == 0 && i < k.n; i++)
        if (srcs[i].head > 0)
            heap[n++] = &srcs[i];
    for (size_t i = n / 2; i-- > 0;)
        heap_down(heap, n, i);
    unsigned scanned = 0;
    while (rc == 0 && n > 0 && !sc->done) {
        src_t *s = heap[0];
        if (scanned++ == STORE_SEARCH_SCAN_MAX) {
            /* Looked at enough: the caller goes on from here. */
            rc = flush(sc);
            if (!sc->done) {
                sc->more = true;
                sc->next_before = s->head + 1;
            }
            break;
        }
        cand_t *c = &sc->cands[sc->ncands];
        if (cand_of(s->rep->element[s->pos], s->key, s->head, c) && ++sc->ncands == BATCH)
            rc = flush(sc);
        s->pos++;
        src_head(s);
        if (s->head == 0 && s->rep != NULL && s->rep->elements == CHUNK) {
            /* Its chunk ran out: the next one, older than its last. */
            s->head = entry_id(s->rep->element[CHUNK - 1]);
            if (!fill(st->redis, &s, 1, 0))
                rc = STORE_E_UNAVAILABLE;
        }
        if (s->head == 0)
            heap[0] = heap[--n];
        heap_down(heap, n, 0);
    }
    if (rc == 0 && !sc->done)
        rc = flush(sc);
    for (size_t i = 0; i < sc->ncands; i++)
        free(sc->cands[i].buf);
    int count = sc->count;
    if (more != NULL)
        *more = rc == 0 && sc->more;
    if (next_before != NULL)
        *next_before = rc == 0 && sc->more ? sc->next_before : 0;
    for (size_t i = 0; i < k.n; i++)
        if (srcs[i].rep != NULL)
            freeReplyObject(srcs[i].rep);
    free(sc->match);
    free(sc);
    free(heap);
    free(srcs);
    store__keys_free(&k);
    return rc < 0 ? rc : count;
}
