/* Edit, delete and search of stored messages (store_search.h): the "tt"
 * tokenizer of the search index, the erasing writes, each account's record
 * of rooms, and the search itself. Statements are prepared per call: these
 * are rare requests, next to the appends. */
#include "store/store_search.h"

#include <assert.h>
#include <inttypes.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/xmalloc.h"
#include "store/store_int.h"

/* ------------------------------------------------------------------------ */
/* The tokenizer: unicode61 (remove_diacritics 2), with every character of
 * the scripts written without spaces between words as a token of its own. */

typedef struct tt_tok_s {
    fts5_tokenizer inner;
    Fts5Tokenizer *inner_tok;
} tt_tok_t;

static int tt_create(void *ctx, const char **args, int nargs, Fts5Tokenizer **out) {
    (void)args;
    (void)nargs;
    fts5_api *api = ctx;
    void *uctx = NULL;
    tt_tok_t *t = sqlite3_malloc(sizeof(*t));
    if (t == NULL)
        return SQLITE_NOMEM;
    int rc = api->xFindTokenizer(api, "unicode61", &uctx, &t->inner);
    if (rc == SQLITE_OK) {
        const char *a[] = {"remove_diacritics", "2"};
        rc = t->inner.xCreate(uctx, a, 2, &t->inner_tok);
    }
    if (rc != SQLITE_OK) {
        sqlite3_free(t);
        return rc;
    }
    *out = (Fts5Tokenizer *)t;
    return SQLITE_OK;
}

static void tt_delete(Fts5Tokenizer *p) {
    tt_tok_t *t = (tt_tok_t *)p;
    t->inner.xDelete(t->inner_tok);
    sqlite3_free(t);
}

typedef int (*tt_token_fn)(void *, int, const char *, int, int, int);
typedef struct tt_cb_s {
    void *ctx;
    tt_token_fn token;
    const char *text;
} tt_cb_t;

/* Han (with its extensions and compatibility ideographs), Hiragana,
 * Katakana, Hangul syllables and jamo. */
static bool is_cjk(uint32_t c) {
    return (c >= 0x1100 && c <= 0x11FF) || (c >= 0x3040 && c <= 0x30FF) ||
           (c >= 0x3130 && c <= 0x318F) || (c >= 0x31F0 && c <= 0x31FF) ||
           (c >= 0x3400 && c <= 0x4DBF) || (c >= 0x4E00 && c <= 0x9FFF) ||
           (c >= 0xAC00 && c <= 0xD7AF) || (c >= 0xF900 && c <= 0xFAFF) ||
           (c >= 0x20000 && c <= 0x3FFFF);
}

/* One UTF-8 character at p (n > 0 bytes left): its code point, *len its
 * bytes (a malformed byte counts as one character of its own). */
static uint32_t utf8_next(const unsigned char *p, int n, int *len) {
    unsigned c = p[0];
    int k = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
    if (k > n)
        k = 1;
    uint32_t v = k == 1 ? c : k == 2 ? c & 0x1F : k == 3 ? c & 0x0F : c & 0x07;
    for (int i = 1; i < k; i++) {
        if ((p[i] & 0xC0) != 0x80) {
            *len = 1;
            return c;
        }
        v = (v << 6) | (p[i] & 0x3F);
    }
    *len = k;
    return v;
}

/* A token of unicode61: passed on, or, when it holds characters of those
 * scripts, split into them and the runs between them. The token is folded
 * (lower case, no diacritics), the offsets are the original text's: the
 * two are walked side by side (those scripts fold to themselves). */
static int tt_split(tt_cb_t *c, int tflags, const char *tok, int ntok, int start, int end) {
    bool any = false;
    for (int i = 0; i < ntok && !any; i++)
        any = (unsigned char)tok[i] >= 0xE1;
    if (!any)
        return c->token(c->ctx, tflags, tok, ntok, start, end);
    const unsigned char *f = (const unsigned char *)tok, *o = (const unsigned char *)c->text;
    int fi = 0, fseg = 0, oi = start, oseg = start, rc = SQLITE_OK;
    while (fi < ntok && rc == SQLITE_OK) {
        int fl;
        uint32_t fc = utf8_next(f + fi, ntok - fi, &fl);
        if (!is_cjk(fc)) {
            fi += fl;
            continue;
        }
        int pos = oi, ol = 0;
        bool found = false;
        while (pos < end) {
            uint32_t oc = utf8_next(o + pos, end - pos, &ol);
            if (oc == fc) {
                found = true;
                break;
            }
            pos += ol;
        }
        if (!found)
            break; /* not as expected: the rest goes as one token */
        if (fi > fseg)
            rc = c->token(c->ctx, tflags, tok + fseg, fi - fseg, oseg, pos);
        if (rc == SQLITE_OK)
            rc = c->token(c->ctx, tflags, tok + fi, fl, pos, pos + ol);
        fi += fl;
        fseg = fi;
        oi = oseg = pos + ol;
    }
    if (rc == SQLITE_OK && ntok > fseg)
        rc = c->token(c->ctx, tflags, tok + fseg, ntok - fseg, oseg, end);
    return rc;
}

/* Greek, after unicode61's lower case: the tonos and dialytika go (it
 * removes the diacritics of Latin letters only) and a final sigma is a
 * sigma. Each such letter is two bytes, as its plain one. */
static bool greek_plain(unsigned char a, unsigned char b, unsigned char *x, unsigned char *y) {
    static const struct {
        unsigned char a, b, x, y;
    } map[] = {
        {0xCE, 0xAC, 0xCE, 0xB1}, /* ά α */
        {0xCE, 0xAD, 0xCE, 0xB5}, /* έ ε */
        {0xCE, 0xAE, 0xCE, 0xB7}, /* ή η */
        {0xCE, 0xAF, 0xCE, 0xB9}, /* ί ι */
        {0xCE, 0x90, 0xCE, 0xB9}, /* ΐ ι */
        {0xCE, 0xB0, 0xCF, 0x85}, /* ΰ υ */
        {0xCF, 0x8A, 0xCE, 0xB9}, /* ϊ ι */
        {0xCF, 0x8B, 0xCF, 0x85}, /* ϋ υ */
        {0xCF, 0x8C, 0xCE, 0xBF}, /* ό ο */
        {0xCF, 0x8D, 0xCF, 0x85}, /* ύ υ */
        {0xCF, 0x8E, 0xCF, 0x89}, /* ώ ω */
        {0xCF, 0x82, 0xCF, 0x83}, /* ς σ */
    };
    for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
        if (map[i].a == a && map[i].b == b) {
            *x = map[i].x;
            *y = map[i].y;
            return true;
        }
    return false;
}

#define TT_TOKEN_MAX 256 /* longer tokens are passed on as they are */

static int tt_token(void *pctx, int tflags, const char *tok, int ntok, int start, int end) {
    tt_cb_t *c = pctx;
    bool greek = false;
    for (int i = 0; i + 1 < ntok && !greek; i++)
        greek = (unsigned char)tok[i] == 0xCE || (unsigned char)tok[i] == 0xCF;
    if (!greek || ntok > TT_TOKEN_MAX)
        return tt_split(c, tflags, tok, ntok, start, end);
    char buf[TT_TOKEN_MAX];
    memcpy(buf, tok, (size_t)ntok);
    for (int i = 0; i + 1 < ntok; i++) {
        unsigned char x, y;
        if (greek_plain((unsigned char)buf[i], (unsigned char)buf[i + 1], &x, &y)) {
            buf[i] = (char)x;
            buf[i + 1] = (char)y;
            i++;
        }
    }
    return tt_split(c, tflags, buf, ntok, start, end);
}

static int tt_tokenize(Fts5Tokenizer *p, void *ctx, int flags, const char *text, int ntext,
                       tt_token_fn token) {
    tt_tok_t *t = (tt_tok_t *)p;
    tt_cb_t c = {ctx, token, text};
    return t->inner.xTokenize(t->inner_tok, &c, flags, text, ntext, tt_token);
}

static fts5_api *fts5_api_of(sqlite3 *db) {
    fts5_api *api = NULL;
    sqlite3_stmt *s;
    if (sqlite3_prepare_v2(db, "SELECT fts5(?1)", -1, &s, NULL) != SQLITE_OK)
        return NULL;
    sqlite3_bind_pointer(s, 1, (void *)&api, "fts5_api_ptr", NULL);
    sqlite3_step(s);
    sqlite3_finalize(s);
    return api;
}

int store__search_setup(sqlite3 *db) {
    int rc = sqlite3_exec(db, "PRAGMA secure_delete = ON", NULL, NULL, NULL);
    if (rc != SQLITE_OK)
        return rc;
    fts5_api *api = fts5_api_of(db);
    if (api == NULL)
        return SQLITE_ERROR; /* SQLite without FTS5 */
    fts5_tokenizer t = {tt_create, tt_delete, tt_tokenize};
    return api->xCreateTokenizer(api, "tt", api, &t, NULL);
}

/* ------------------------------------------------------------------------ */
/* Transactions */

static void log_fail(store_t *st, const char *what, int rc) {
    char why[512];
    store__reason(st->db, rc, why, sizeof(why));
    uint64_t now = store__mono_ms();
    if (store__log_allow(&st->log_account_fail, now)) {
        tt_log_error("store: %s: cannot %s: %s (%" PRIu64
                     " more such failures since the last line)",
                     st->path, what, why, st->log_account_fail.unlogged - 1);
        store__log_done(&st->log_account_fail, now);
    }
}

typedef int (*body_fn)(store_t *st, void *arg, int *res);

/* body in one transaction (write: BEGIN IMMEDIATE under the write mutex);
 * body's *res (0 or a STORE_E_*) is returned when the transaction
 * succeeded, and a *res < 0 rolls it back. */
static int run_tx(store_t *st, bool write, const char *what, body_fn body, void *arg) {
    assert(store__is_owner(st));
    bool lock = write || st->shared;
    if (lock)
        pthread_mutex_lock(&st->write_mu);
    int res = 0;
    int rc = sqlite3_exec(st->db, write ? "BEGIN IMMEDIATE" : "BEGIN", NULL, NULL, NULL);
    if (rc == SQLITE_OK)
        rc = body(st, arg, &res);
    if (rc == SQLITE_OK && res >= 0)
        rc = sqlite3_exec(st->db, "COMMIT", NULL, NULL, NULL);
    if (rc != SQLITE_OK)
        log_fail(st, what, rc);
    if (!sqlite3_get_autocommit(st->db))
        sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
    if (lock)
        pthread_mutex_unlock(&st->write_mu);
    return rc != SQLITE_OK ? store__map_rc(rc) : res;
}

static int exec1(store_t *st, const char *sql, sqlite3_stmt **out) {
    return sqlite3_prepare_v2(st->db, sql, -1, out, NULL);
}

/* ------------------------------------------------------------------------ */
/* Indexing, off the commit: the rows above search_state.indexed_to are
 * not in the index yet (the triggers leave them alone); a step indexes
 * the next ones and moves the watermark, in one write transaction. */

static int index_body(sqlite3 *db, unsigned max_rows, bool *more) {
    sqlite3_stmt *s;
    *more = false;
    int rc = sqlite3_prepare_v2(db,
                                "SELECT (SELECT indexed_to FROM search_state), max(id), count(*)"
                                " FROM (SELECT id FROM messages WHERE id >"
                                " (SELECT indexed_to FROM search_state) ORDER BY id LIMIT ?1)",
                                -1, &s, NULL);
    if (rc != SQLITE_OK)
        return rc;
    sqlite3_bind_int(s, 1, (int)max_rows);
    rc = sqlite3_step(s);
    int64_t lo = sqlite3_column_int64(s, 0), hi = sqlite3_column_int64(s, 1);
    int64_t n = sqlite3_column_int64(s, 2);
    sqlite3_finalize(s);
    if (rc != SQLITE_ROW)
        return rc;
    if (n == 0)
        return SQLITE_OK;
    *more = n == (int64_t)max_rows;
    rc = sqlite3_prepare_v2(db,
                            "INSERT INTO messages_fts (rowid, text) SELECT id, text FROM messages"
                            " WHERE id > ?1 AND id <= ?2 AND deleted = 0",
                            -1, &s, NULL);
    if (rc != SQLITE_OK)
        return rc;
    sqlite3_bind_int64(s, 1, lo);
    sqlite3_bind_int64(s, 2, hi);
    rc = sqlite3_step(s);
    sqlite3_finalize(s);
    if (rc != SQLITE_DONE)
        return rc;
    rc = sqlite3_prepare_v2(db, "UPDATE search_state SET indexed_to = ?1", -1, &s, NULL);
    if (rc != SQLITE_OK)
        return rc;
    sqlite3_bind_int64(s, 1, hi);
    rc = sqlite3_step(s);
    sqlite3_finalize(s);
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

bool store__search_index_step(store_t *st, sqlite3 *db, unsigned max_rows, int *rc_out) {
    bool more = false;
    pthread_mutex_lock(&st->write_mu);
    /* Nothing waiting (the common case when idle): no write transaction. */
    sqlite3_stmt *p;
    int rc = sqlite3_prepare_v2(db,
                                "SELECT EXISTS (SELECT 1 FROM messages WHERE id >"
                                " (SELECT indexed_to FROM search_state))",
                                -1, &p, NULL);
    bool pending = false;
    if (rc == SQLITE_OK) {
        rc = sqlite3_step(p);
        pending = rc == SQLITE_ROW && sqlite3_column_int(p, 0) == 1;
        rc = rc == SQLITE_ROW ? SQLITE_OK : rc;
        sqlite3_finalize(p);
    }
    if (rc != SQLITE_OK || !pending) {
        pthread_mutex_unlock(&st->write_mu);
        if (rc_out != NULL)
            *rc_out = rc;
        return false;
    }
    rc = sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
    if (rc == SQLITE_OK)
        rc = index_body(db, max_rows, &more);
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
    if (rc != SQLITE_OK) {
        more = false;
        if (!sqlite3_get_autocommit(db))
            sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
    }
    pthread_mutex_unlock(&st->write_mu);
    if (rc_out != NULL)
        *rc_out = rc;
    return more;
}

/* ------------------------------------------------------------------------ */
/* One message */

typedef struct get_args_s {
    int64_t id, account;
    store_msg_info_t *out;
} get_args_t;

static void copy_col(sqlite3_stmt *s, int col, char *buf, size_t cap, size_t *len) {
    const char *v = (const char *)sqlite3_column_text(s, col);
    size_t n = v ? (size_t)sqlite3_column_bytes(s, col) : 0;
    if (n >= cap)
        n = cap - 1;
    if (n > 0)
        memcpy(buf, v, n);
    buf[n] = '\0';
    *len = n;
}

static int get_body(store_t *st, void *arg, int *res) {
    get_args_t *a = arg;
    sqlite3_stmt *s;
    int rc = exec1(st,
                   "SELECT id, ts, kind, room, sender, recipient, edited_ts, deleted,"
                   " (SELECT 1 FROM room_joins WHERE account = ?2 AND room = messages.room)"
                   " FROM messages WHERE id = ?1",
                   &s);
    if (rc != SQLITE_OK)
        return rc;
    sqlite3_bind_int64(s, 1, a->id);
    sqlite3_bind_int64(s, 2, a->account);
    rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        store_msg_info_t *o = a->out;
        o->id = sqlite3_column_int64(s, 0);
        o->ts = sqlite3_column_int64(s, 1);
        o->kind =
            sqlite3_column_int(s, 2) == STORE_KIND_PRIVATE ? STORE_KIND_PRIVATE : STORE_KIND_ROOM;
        copy_col(s, 3, o->room, sizeof(o->room), &o->room_len);
        copy_col(s, 4, o->from, sizeof(o->from), &o->from_len);
        copy_col(s, 5, o->to, sizeof(o->to), &o->to_len);
        o->edited_ts = sqlite3_column_int64(s, 6);
        o->deleted = sqlite3_column_int(s, 7) != 0;
        o->joined = a->account > 0 && sqlite3_column_int(s, 8) == 1;
        rc = SQLITE_OK;
    } else if (rc == SQLITE_DONE) {
        *res = STORE_E_NOTFOUND;
        rc = SQLITE_OK;
    }
    sqlite3_finalize(s);
    return rc;
}

int store_message_get(store_t *st, int64_t id, int64_t account, store_msg_info_t *out) {
    if (out == NULL || id <= 0)
        return STORE_E_INVALID;
    memset(out, 0, sizeof(*out));
    get_args_t a = {.id = id, .account = account, .out = out};
    return run_tx(st, false, "read a message", get_body, &a);
}

typedef struct change_args_s {
    int64_t id;
    const char *text; /* NULL: delete */
    size_t len;
    int64_t edited_ts;
} change_args_t;

static int change_body(store_t *st, void *arg, int *res) {
    change_args_t *a = arg;
    sqlite3_stmt *s;
    int rc =
        exec1(st,
              a->text != NULL
                  ? "UPDATE messages SET text = ?2, edited_ts = ?3 WHERE id = ?1 AND deleted = 0"
                  : "UPDATE messages SET text = '', edited_ts = 0, deleted = 1"
                    " WHERE id = ?1 AND deleted = 0",
              &s);
    if (rc != SQLITE_OK)
        return rc;
    sqlite3_bind_int64(s, 1, a->id);
    if (a->text != NULL) {
        sqlite3_bind_text(s, 2, a->text, (int)a->len, SQLITE_STATIC);
        sqlite3_bind_int64(s, 3, a->edited_ts);
    }
    rc = sqlite3_step(s);
    sqlite3_finalize(s);
    if (rc != SQLITE_DONE)
        return rc;
    if (sqlite3_changes(st->db) == 0) {
        *res = STORE_E_NOTFOUND;
        return SQLITE_OK;
    }
    /* The trigger's 'delete' leaves the old entry in its segment beside a
     * tombstone; rewriting the index into one segment drops both (and
     * secure_delete zeroes the pages it frees). */
    return sqlite3_exec(st->db, "INSERT INTO messages_fts (messages_fts) VALUES ('optimize')", NULL,
                        NULL, NULL);
}

static int change(store_t *st, change_args_t *a, const char *what) {
    int rc = run_tx(st, true, what, change_body, a);
    if (rc != 0 || st->shared)
        return rc;
    /* The WAL still holds the pages as they were: copy it into the file
     * and empty it. A reader holding an old snapshot (a backup running)
     * makes it wait, at most the busy timeout; then the WAL is emptied at
     * a later checkpoint, and the change itself stands. */
    pthread_mutex_lock(&st->write_mu);
    int crc = sqlite3_wal_checkpoint_v2(st->db, "main", SQLITE_CHECKPOINT_TRUNCATE, NULL, NULL);
    pthread_mutex_unlock(&st->write_mu);
    if (crc != SQLITE_OK)
        tt_log_warn("store: %s: the checkpoint after an erasure did not complete (%s); the WAL "
                    "keeps the old text until the next one",
                    st->path, sqlite3_errstr(crc));
    return 0;
}

int store_message_edit(store_t *st, int64_t id, const char *text, size_t len, int64_t edited_ts) {
    if (id <= 0 || text == NULL || len == 0 || len > INT_MAX)
        return STORE_E_INVALID;
    change_args_t a = {.id = id, .text = text, .len = len, .edited_ts = edited_ts};
    return change(st, &a, "edit a message");
}

int store_message_delete(store_t *st, int64_t id) {
    if (id <= 0)
        return STORE_E_INVALID;
    change_args_t a = {.id = id};
    return change(st, &a, "delete a message");
}

/* ------------------------------------------------------------------------ */
/* Rooms an account joined */

typedef struct join_args_s {
    int64_t account, ts;
    const char *key;
    size_t key_len;
} join_args_t;

static int joined_body(store_t *st, void *arg, int *res) {
    (void)res;
    join_args_t *a = arg;
    sqlite3_stmt *s;
    int rc = exec1(st,
                   "INSERT INTO room_joins (account, room, last_ts) VALUES (?1, ?2, ?3)"
                   " ON CONFLICT (account, room) DO UPDATE SET last_ts = excluded.last_ts",
                   &s);
    if (rc != SQLITE_OK)
        return rc;
    sqlite3_bind_int64(s, 1, a->account);
    sqlite3_bind_text(s, 2, a->key, (int)a->key_len, SQLITE_STATIC);
    sqlite3_bind_int64(s, 3, a->ts);
    rc = sqlite3_step(s);
    sqlite3_finalize(s);
    if (rc != SQLITE_DONE)
        return rc;
    /* Past the bound, the least recently joined go (the newest row is
     * never among them). */
    rc = exec1(st,
               "DELETE FROM room_joins WHERE account = ?1 AND room IN (SELECT room FROM"
               " room_joins WHERE account = ?1 ORDER BY last_ts DESC LIMIT -1 OFFSET ?2)",
               &s);
    if (rc != SQLITE_OK)
        return rc;
    sqlite3_bind_int64(s, 1, a->account);
    sqlite3_bind_int(s, 2, STORE_JOINS_MAX);
    rc = sqlite3_step(s);
    sqlite3_finalize(s);
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

int store_room_joined(store_t *st, int64_t account, const char *room, size_t len, int64_t ts) {
    char key[STORE_ROOM_MAX + 1];
    int n = store_room_key(room, len, key, sizeof(key));
    if (account <= 0 || n < 0)
        return STORE_E_INVALID;
    if (st->redis != NULL)
        return store__redis_room_joined(st, account, key, (size_t)n, ts);
    join_args_t a = {.account = account, .ts = ts, .key = key, .key_len = (size_t)n};
    return run_tx(st, true, "record a join", joined_body, &a);
}

/* ------------------------------------------------------------------------ */
/* Search */

void store__keys_add(store__keys_t *k, const char *key, size_t len) {
    if (k->n >= STORE_SEARCH_KEYS_MAX)
        return;
    if (k->n == k->cap) {
        k->cap = k->cap ? 2 * k->cap : 32;
        k->keys = xrealloc(k->keys, k->cap * sizeof(*k->keys));
    }
    k->keys[k->n++] = xstrndup(key, len);
}

static int key_cmp(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

bool store__keys_has(const store__keys_t *k, const char *key) {
    return k->n > 0 && bsearch(&key, k->keys, k->n, sizeof(*k->keys), key_cmp) != NULL;
}

void store__keys_sort(store__keys_t *k) {
    if (k->n > 1)
        qsort(k->keys, k->n, sizeof(*k->keys), key_cmp);
}

void store__keys_free(store__keys_t *k) {
    for (size_t i = 0; i < k->n; i++)
        free(k->keys[i]);
    free(k->keys);
}

typedef struct search_args_s {
    const store_search_req_t *q;
    char *match; /* the FTS5 expression */
    store_hit_cb cb;
    void *ctx;
    bool more;
    int64_t next_before;
    int count;
} search_args_t;

/* The readable keys of q: its rooms, and for an account its record of
 * rooms and its conversations. */
void store__keys_rooms(const store_search_req_t *q, store__keys_t *k) {
    char key[STORE_ROOM_MAX + 1];
    for (size_t i = 0; i < q->nrooms; i++) {
        int n = store_room_key(q->rooms[i], q->room_lens[i], key, sizeof(key));
        if (n > 0)
            store__keys_add(k, key, (size_t)n);
    }
}

static int keys_load(store_t *st, const store_search_req_t *q, store__keys_t *k) {
    store__keys_rooms(q, k);
    if (q->account <= 0)
        return SQLITE_OK;
    sqlite3_stmt *s;
    int rc = exec1(st,
                   "SELECT room FROM room_joins WHERE account = ?1 UNION ALL"
                   " SELECT key FROM conversations WHERE owner = ?2",
                   &s);
    if (rc != SQLITE_OK)
        return rc;
    char owner[STORE_NICK_MAX];
    size_t olen = q->nick_len <= STORE_NICK_MAX ? q->nick_len : STORE_NICK_MAX;
    store__ascii_lower(owner, q->nick, olen);
    sqlite3_bind_int64(s, 1, q->account);
    sqlite3_bind_text(s, 2, owner, (int)olen, SQLITE_STATIC);
    while ((rc = sqlite3_step(s)) == SQLITE_ROW)
        store__keys_add(k, (const char *)sqlite3_column_text(s, 0),
                        (size_t)sqlite3_column_bytes(s, 0));
    sqlite3_finalize(s);
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

void store__keys_only(const store_search_req_t *q, store__keys_t *k) {
    store__keys_sort(k);
    if (q->only == NULL)
        return;
    /* One room or conversation: readable, or nothing is. */
    char buf[STORE_ROOM_MAX + 1];
    const char *key;
    size_t key_len;
    bool ok = store__key(q->only, q->only_len, buf, &key, &key_len) == 0;
    char *only = ok ? xstrndup(key, key_len) : NULL;
    ok = ok && store__keys_has(k, only);
    store__keys_free(k);
    *k = (store__keys_t){0};
    if (ok)
        store__keys_add(k, only, strlen(only));
    free(only);
}

int store__search_tx(store_t *st, const char *what, store_tx_body body, void *arg) {
    return run_tx(st, false, what, body, arg);
}

static int search_body(store_t *st, void *arg, int *res) {
    search_args_t *a = arg;
    const store_search_req_t *q = a->q;
    store__keys_t k = {0};
    int rc = keys_load(st, q, &k);
    if (rc == SQLITE_OK)
        store__keys_only(q, &k);
    int64_t *ids = xmalloc((q->limit + 1) * sizeof(*ids));
    size_t nids = 0;
    sqlite3_stmt *s = NULL;
    if (rc == SQLITE_OK && k.n > 0)
        rc = exec1(st,
                   "SELECT messages_fts.rowid, m.room FROM messages_fts JOIN messages m"
                   " ON m.id = messages_fts.rowid WHERE messages_fts MATCH ?1"
                   " AND messages_fts.rowid < ?2 ORDER BY messages_fts.rowid DESC",
                   &s);
    if (rc == SQLITE_OK && s != NULL) {
        sqlite3_bind_text(s, 1, a->match, -1, SQLITE_STATIC);
        sqlite3_bind_int64(s, 2, q->before_id > 0 ? q->before_id : INT64_MAX);
        unsigned scanned = 0;
        while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
            int64_t id = sqlite3_column_int64(s, 0);
            if (++scanned > STORE_SEARCH_SCAN_MAX) {
                a->more = true;
                a->next_before = id + 1; /* id itself not looked at yet */
                break;
            }
            const char *room = (const char *)sqlite3_column_text(s, 1);
            if (room == NULL || !store__keys_has(&k, room))
                continue;
            if (nids == q->limit) {
                a->more = true;
                a->next_before = ids[nids - 1];
                break;
            }
            ids[nids++] = id;
        }
        rc = rc == SQLITE_ROW || rc == SQLITE_DONE ? SQLITE_OK : rc;
        sqlite3_finalize(s);
        s = NULL;
    }
    if (rc == SQLITE_OK && nids > 0)
        rc = exec1(st,
                   "SELECT m.id, m.ts, m.kind, m.room, m.sender, m.recipient, m.text, m.edited_ts,"
                   " m.deleted, highlight(messages_fts, 0, char(1), char(2)) FROM messages_fts"
                   " JOIN messages m ON m.id = messages_fts.rowid"
                   " WHERE messages_fts MATCH ?1 AND messages_fts.rowid = ?2",
                   &s);
    for (size_t i = 0; rc == SQLITE_OK && i < nids; i++) {
        sqlite3_bind_text(s, 1, a->match, -1, SQLITE_STATIC);
        sqlite3_bind_int64(s, 2, ids[i]);
        rc = sqlite3_step(s);
        if (rc == SQLITE_ROW) {
            store_hit_t h = {0};
            store_rec_t *r = &h.rec;
            r->id = sqlite3_column_int64(s, 0);
            r->ts = sqlite3_column_int64(s, 1);
            r->kind = sqlite3_column_int(s, 2) == STORE_KIND_PRIVATE ? STORE_KIND_PRIVATE
                                                                     : STORE_KIND_ROOM;
            r->room = (const char *)sqlite3_column_text(s, 3);
            r->room_len = (size_t)sqlite3_column_bytes(s, 3);
            r->from = (const char *)sqlite3_column_text(s, 4);
            r->from_len = (size_t)sqlite3_column_bytes(s, 4);
            if (sqlite3_column_type(s, 5) != SQLITE_NULL) {
                r->to = (const char *)sqlite3_column_text(s, 5);
                r->to_len = (size_t)sqlite3_column_bytes(s, 5);
            }
            r->text = (const char *)sqlite3_column_text(s, 6);
            r->text_len = (size_t)sqlite3_column_bytes(s, 6);
            r->edited_ts = sqlite3_column_int64(s, 7);
            r->deleted = sqlite3_column_int(s, 8) != 0;
            h.marked = (const char *)sqlite3_column_text(s, 9);
            h.marked_len = (size_t)sqlite3_column_bytes(s, 9);
            if (r->room == NULL || r->from == NULL || r->text == NULL || h.marked == NULL) {
                rc = SQLITE_NOMEM;
                break;
            }
            a->cb(a->ctx, &h);
            a->count++;
            rc = SQLITE_OK;
        } else if (rc == SQLITE_DONE) {
            rc = SQLITE_OK; /* cannot happen in one snapshot; skipped */
        }
        sqlite3_reset(s);
    }
    sqlite3_finalize(s);
    free(ids);
    store__keys_free(&k);
    *res = 0;
    return rc;
}

/* Each word as an FTS5 string ("..." with '"' doubled), joined by spaces:
 * all must match, and nothing in a word is FTS5 syntax. */
char *store__search_match(const store_search_req_t *q) {
    size_t cap = 1;
    for (size_t i = 0; i < q->nwords; i++)
        cap += 2 * q->word_lens[i] + 3;
    char *m = xmalloc(cap), *p = m;
    for (size_t i = 0; i < q->nwords; i++) {
        if (i > 0)
            *p++ = ' ';
        *p++ = '"';
        for (size_t j = 0; j < q->word_lens[i]; j++) {
            if (q->words[i][j] == '"')
                *p++ = '"';
            *p++ = q->words[i][j];
        }
        *p++ = '"';
    }
    *p = '\0';
    return m;
}

int store_search(store_t *st, const store_search_req_t *q, store_hit_cb cb, void *ctx, bool *more,
                 int64_t *next_before) {
    if (more != NULL)
        *more = false;
    if (next_before != NULL)
        *next_before = 0;
    if (q == NULL || cb == NULL || q->nwords == 0 || q->nwords > STORE_SEARCH_WORDS_MAX ||
        q->limit == 0 || q->limit > STORE_SEARCH_LIMIT_MAX || q->before_id < 0 ||
        (q->account > 0 && (q->nick == NULL || q->nick_len == 0)))
        return STORE_E_INVALID;
    for (size_t i = 0; i < q->nwords; i++)
        if (q->words[i] == NULL || q->word_lens[i] == 0 || memchr(q->words[i], 0, q->word_lens[i]))
            return STORE_E_INVALID;
    /* A cluster's messages are in Redis: searched there. */
    if (st->redis != NULL)
        return store__redis_search(st, q, cb, ctx, more, next_before);
    /* What is not indexed yet first (the maintenance thread keeps up
     * with the messages, a step behind at most). */
    int irc = SQLITE_OK;
    while (store__search_index_step(st, st->db, STORE_INDEX_CHUNK, &irc))
        ;
    if (irc != SQLITE_OK) {
        log_fail(st, "index new messages", irc);
        return store__map_rc(irc);
    }
    search_args_t a = {.q = q, .match = store__search_match(q), .cb = cb, .ctx = ctx};
    int rc = run_tx(st, false, "search", search_body, &a);
    free(a.match);
    if (rc < 0)
        return rc;
    if (more != NULL)
        *more = a.more;
    if (next_before != NULL)
        *next_before = a.more ? a.next_before : 0;
    return a.count;
}
