/* Accounts, login tokens, read markers and conversation lists (schema v2),
 * on the loop's connection (the worker's, with the asynchronous front) with
 * statements prepared once at open. The conversation rows themselves are
 * written by store_append_batch (store_sqlite.c), in the message's
 * transaction; this file reads them. Not responsible for hashing passwords
 * or tokens: it keeps what the caller hashed. */
#include <assert.h>
#include <inttypes.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "core/log.h"
#include "store/store_int.h"

static const struct {
    size_t offset; /* of the sqlite3_stmt * in store_t */
    const char *sql;
} acc_stmts[] = {
    {offsetof(store_t, st_acc_insert),
     "INSERT INTO accounts (nick, nick_key, hash, created, updated) VALUES (?1, ?2, ?3, ?4, ?4)"},
    {offsetof(store_t, st_acc_get),
     "SELECT id, nick, hash, created, updated FROM accounts WHERE nick_key = ?1"},
    {offsetof(store_t, st_acc_set_hash),
     "UPDATE accounts SET hash = ?2, updated = ?3 WHERE id = ?1"},
    {offsetof(store_t, st_tok_insert),
     "INSERT INTO tokens (hash, account, created, last_used) VALUES (?1, ?2, ?3, ?3)"},
    {offsetof(store_t, st_tok_get),
     "SELECT t.last_used, a.id, a.nick, a.hash, a.created, a.updated"
     " FROM tokens t JOIN accounts a ON a.id = t.account WHERE t.hash = ?1"},
    {offsetof(store_t, st_tok_touch), "UPDATE tokens SET last_used = ?2 WHERE hash = ?1"},
    {offsetof(store_t, st_tok_del), "DELETE FROM tokens WHERE hash = ?1"},
    {offsetof(store_t, st_tok_del_account), "DELETE FROM tokens WHERE account = ?1"},
    {offsetof(store_t, st_tok_expire), STORE__SQL_TOKENS_EXPIRE},
    {offsetof(store_t, st_read_set),
     "INSERT INTO read_markers (account, key, up_to) VALUES (?1, ?2, ?3)"
     " ON CONFLICT (account, key) DO UPDATE SET up_to = excluded.up_to"
     " WHERE excluded.up_to > read_markers.up_to"},
    {offsetof(store_t, st_read_get),
     "SELECT up_to FROM read_markers WHERE account = ?1 AND key = ?2"},
    /* Walks the (owner, last_id) index backwards: no sort. */
    {offsetof(store_t, st_conv_list),
     "SELECT c.key, c.with_nick, c.last_id, coalesce(r.up_to, 0) FROM conversations c"
     " LEFT JOIN read_markers r ON r.account = ?2 AND r.key = c.key"
     " WHERE c.owner = ?1 ORDER BY c.last_id DESC LIMIT ?3"},
    /* A walk of the (room, id) index from the marker, stopped after ?4
     * rows: a conversation with a million unread costs no more than one
     * with STORE_UNREAD_MAX. NOCASE folds ASCII only, as nick keys do. */
    {offsetof(store_t, st_conv_unread),
     "SELECT count(*) FROM (SELECT 1 FROM messages WHERE room = ?1 AND id > ?2"
     " AND sender != ?3 COLLATE NOCASE LIMIT ?4)"},
};

static sqlite3_stmt **acc_stmt(store_t *st, size_t i) {
    return (sqlite3_stmt **)((char *)st + acc_stmts[i].offset);
}

int store__accounts_prepare(store_t *st) {
    int rc = SQLITE_OK;
    for (size_t i = 0; rc == SQLITE_OK && i < sizeof(acc_stmts) / sizeof(acc_stmts[0]); i++)
        rc = sqlite3_prepare_v3(st->db, acc_stmts[i].sql, -1, SQLITE_PREPARE_PERSISTENT,
                                acc_stmt(st, i), NULL);
    return rc;
}

void store__accounts_finalize(store_t *st) {
    for (size_t i = 0; i < sizeof(acc_stmts) / sizeof(acc_stmts[0]); i++) {
        sqlite3_finalize(*acc_stmt(st, i));
        *acc_stmt(st, i) = NULL;
    }
}

/* ------------------------------------------------------------------------ */
/* Transactions and failures */

/* The outcome of a constraint: a name or a token taken, or an account that
 * does not exist (tokens.account); expected results, not failures. */
static int constraint_result(int rc) {
    if (rc == SQLITE_CONSTRAINT_FOREIGNKEY)
        return STORE_E_NOTFOUND;
    if (rc == SQLITE_CONSTRAINT_UNIQUE || rc == SQLITE_CONSTRAINT_PRIMARYKEY)
        return STORE_E_EXISTS;
    return 0;
}

/* Logs a failure of `what` (at most once per STORE_LOG_EVERY_MS, like the
 * appends) and maps it. why was taken before the connection went on. */
static int failed(store_t *st, int rc, const char *what, const char *why) {
    int res = constraint_result(rc);
    if (res != 0)
        return res;
    uint64_t now = store__mono_ms();
    if (store__log_allow(&st->log_account_fail, now)) {
        tt_log_error("store: %s: cannot %s: %s (%" PRIu64
                     " more failed account call(s) since the last such line)",
                     st->path, what, why, st->log_account_fail.unlogged - 1);
        store__log_done(&st->log_account_fail, now);
    } else {
        tt_log_debug("store: %s: cannot %s: %s", st->path, what, why);
    }
    return store__map_rc(rc);
}

/* Runs body in BEGIN IMMEDIATE ... COMMIT under the write mutex (the
 * maintenance thread's deletes wait, and it waits for theirs). */
int store__write_tx(store_t *st, const char *what, store_tx_body body, void *arg) {
    assert(store__is_owner(st) && "the store belongs to its asynchronous front");
    int res = 0;
    pthread_mutex_lock(&st->write_mu);
    int rc = store__step_done(st->st_begin_write);
    if (rc == SQLITE_OK)
        rc = body(st, arg, &res);
    if (rc == SQLITE_OK)
        rc = store__step_done(st->st_commit);
    if (rc == SQLITE_OK) {
        pthread_mutex_unlock(&st->write_mu);
        return res;
    }
    char why[512];
    store__reason(st->db, rc, why, sizeof(why));
    if (!sqlite3_get_autocommit(st->db))
        store__step_done(st->st_rollback);
    pthread_mutex_unlock(&st->write_mu);
    return failed(st, rc, what, why);
}

/* Runs body in one read snapshot (BEGIN ... COMMIT); the mutex only when
 * the connection is shared with the maintenance thread, as store_range. */
int store__read_tx(store_t *st, const char *what, store_tx_body body, void *arg) {
    assert(store__is_owner(st) && "the store belongs to its asynchronous front");
    int res = 0;
    if (st->shared)
        pthread_mutex_lock(&st->write_mu);
    int rc = store__step_done(st->st_begin_read);
    if (rc == SQLITE_OK)
        rc = body(st, arg, &res);
    char why[512] = "";
    if (rc != SQLITE_OK)
        store__reason(st->db, rc, why, sizeof(why));
    if (!sqlite3_get_autocommit(st->db)) {
        int rc2 = store__step_done(rc == SQLITE_OK ? st->st_commit : st->st_rollback);
        if (rc == SQLITE_OK && rc2 != SQLITE_OK) {
            rc = rc2;
            store__reason(st->db, rc, why, sizeof(why));
        }
    }
    if (st->shared)
        pthread_mutex_unlock(&st->write_mu);
    return rc == SQLITE_OK ? res : failed(st, rc, what, why);
}

/* ------------------------------------------------------------------------ */
/* Accounts */

static bool nick_ok(const char *nick, size_t len) {
    return nick != NULL && len >= 1 && len <= STORE_NICK_MAX;
}

/* A hash argument: NULL (none) or a string that fits store_account_t. */
static bool hash_ok(const char *hash) {
    return hash == NULL || (hash[0] != '\0' && strnlen(hash, STORE_HASH_MAX) < STORE_HASH_MAX);
}

/* NULL is SQL NULL: an account without a password. */
static void bind_hash(sqlite3_stmt *s, int i, const char *hash) {
    if (hash != NULL)
        sqlite3_bind_text(s, i, hash, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(s, i);
}

/* Copies an account row (id, nick, hash, created, updated from column at). */
static int read_account(sqlite3_stmt *s, int at, store_account_t *out) {
    const char *nick = (const char *)sqlite3_column_text(s, at + 1);
    size_t nick_len = (size_t)sqlite3_column_bytes(s, at + 1);
    const char *hash = (const char *)sqlite3_column_text(s, at + 2);
    size_t hash_len = hash ? (size_t)sqlite3_column_bytes(s, at + 2) : 0;
    /* What another program may have written must still fit the struct. */
    if (nick == NULL || nick_len > STORE_NICK_MAX || hash_len >= STORE_HASH_MAX)
        return SQLITE_CORRUPT;
    out->id = sqlite3_column_int64(s, at);
    memcpy(out->nick, nick, nick_len);
    out->nick[nick_len] = '\0';
    if (hash_len > 0)
        memcpy(out->hash, hash, hash_len);
    out->hash[hash_len] = '\0';
    out->created = sqlite3_column_int64(s, at + 3);
    out->updated = sqlite3_column_int64(s, at + 4);
    return SQLITE_OK;
}

/* The arguments of the account calls, each using what it needs. */
typedef struct {
    int64_t account;
    const char *nick;
    size_t len;
    const char *hash;
    int64_t now;
    bool revoke;
    store_account_t *out;
} acc_args_t;

static int create_body(store_t *st, void *arg, int *res) {
    acc_args_t *a = arg;
    char key[STORE_NICK_MAX];
    store__ascii_lower(key, a->nick, a->len);
    sqlite3_stmt *s = st->st_acc_insert;
    sqlite3_bind_text(s, 1, a->nick, (int)a->len, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, key, (int)a->len, SQLITE_STATIC);
    bind_hash(s, 3, a->hash);
    sqlite3_bind_int64(s, 4, a->now);
    int rc = store__step_done(s);
    if (rc == SQLITE_OK && a->out != NULL) {
        a->out->id = sqlite3_last_insert_rowid(st->db);
        memcpy(a->out->nick, a->nick, a->len);
        a->out->nick[a->len] = '\0';
        snprintf(a->out->hash, sizeof(a->out->hash), "%s", a->hash ? a->hash : "");
        a->out->created = a->out->updated = a->now;
    }
    *res = 0;
    return rc;
}

int store_account_create(store_t *st, const char *nick, size_t len, const char *hash,
                         int64_t now_ms, store_account_t *out) {
    if (!nick_ok(nick, len) || !hash_ok(hash))
        return STORE_E_INVALID;
    if (st->redis != NULL)
        return store__redis_account_create(st, nick, len, hash, now_ms, out);
    acc_args_t a = {.nick = nick, .len = len, .hash = hash, .now = now_ms, .out = out};
    return store__write_tx(st, "create an account", create_body, &a);
}

static int get_body(store_t *st, void *arg, int *res) {
    acc_args_t *a = arg;
    char key[STORE_NICK_MAX];
    store__ascii_lower(key, a->nick, a->len);
    sqlite3_stmt *s = st->st_acc_get;
    sqlite3_bind_text(s, 1, key, (int)a->len, SQLITE_STATIC);
    int rc = sqlite3_step(s);
    *res = STORE_E_NOTFOUND;
    if (rc == SQLITE_ROW) {
        rc = read_account(s, 0, a->out);
        *res = 0;
    } else if (rc == SQLITE_DONE) {
        rc = SQLITE_OK;
    }
    sqlite3_reset(s);
    return rc;
}

int store_account_get(store_t *st, const char *nick, size_t len, store_account_t *out) {
    if (!nick_ok(nick, len) || out == NULL)
        return STORE_E_INVALID;
    if (st->redis != NULL)
        return store__redis_account_get(st, nick, len, out);
    acc_args_t a = {.nick = nick, .len = len, .out = out};
    return store__read_tx(st, "read an account", get_body, &a);
}

static int set_hash_body(store_t *st, void *arg, int *res) {
    acc_args_t *a = arg;
    sqlite3_stmt *s = st->st_acc_set_hash;
    sqlite3_bind_int64(s, 1, a->account);
    bind_hash(s, 2, a->hash);
    sqlite3_bind_int64(s, 3, a->now);
    int rc = store__step_done(s);
    if (rc != SQLITE_OK)
        return rc;
    if (sqlite3_changes64(st->db) == 0) {
        *res = STORE_E_NOTFOUND;
        return SQLITE_OK; /* nothing was written: committing is a no-op */
    }
    *res = 0;
    if (a->revoke) {
        s = st->st_tok_del_account;
        sqlite3_bind_int64(s, 1, a->account);
        rc = store__step_done(s);
    }
    return rc;
}

int store_account_set_hash(store_t *st, int64_t account, const char *hash, int64_t now_ms,
                           bool revoke_tokens) {
    if (!hash_ok(hash))
        return STORE_E_INVALID;
    if (st->redis != NULL)
        return store__redis_account_set_hash(st, account, hash, now_ms, revoke_tokens);
    acc_args_t a = {.account = account, .hash = hash, .now = now_ms, .revoke = revoke_tokens};
    return store__write_tx(st, "change a password", set_hash_body, &a);
}

/* ------------------------------------------------------------------------ */
/* Tokens */

typedef struct {
    const uint8_t *hash;
    int64_t account;
    int64_t now, max_idle;
    store_account_t *out;
    uint64_t count;
} tok_args_t;

static int tok_add_body(store_t *st, void *arg, int *res) {
    tok_args_t *a = arg;
    sqlite3_stmt *s = st->st_tok_insert;
    sqlite3_bind_blob(s, 1, a->hash, 32, SQLITE_STATIC);
    sqlite3_bind_int64(s, 2, a->account);
    sqlite3_bind_int64(s, 3, a->now);
    *res = 0;
    return store__step_done(s);
}

int store_token_add(store_t *st, int64_t account, const uint8_t hash[32], int64_t now_ms) {
    if (hash == NULL)
        return STORE_E_INVALID;
    if (st->redis != NULL)
        return store__redis_token_add(st, account, hash, now_ms);
    tok_args_t a = {.hash = hash, .account = account, .now = now_ms};
    return store__write_tx(st, "store a token", tok_add_body, &a);
}

static int tok_use_body(store_t *st, void *arg, int *res) {
    tok_args_t *a = arg;
    sqlite3_stmt *s = st->st_tok_get;
    sqlite3_bind_blob(s, 1, a->hash, 32, SQLITE_STATIC);
    int rc = sqlite3_step(s);
    *res = STORE_E_NOTFOUND;
    if (rc == SQLITE_DONE) {
        sqlite3_reset(s);
        return SQLITE_OK;
    }
    if (rc != SQLITE_ROW) {
        sqlite3_reset(s);
        return rc;
    }
    int64_t last_used = sqlite3_column_int64(s, 0);
    /* A clock that went back makes a token younger, never expired. */
    bool expired = a->now > last_used && a->now - last_used > a->max_idle;
    rc = expired ? SQLITE_OK : read_account(s, 1, a->out);
    sqlite3_reset(s);
    if (rc != SQLITE_OK)
        return rc;
    s = expired ? st->st_tok_del : st->st_tok_touch;
    sqlite3_bind_blob(s, 1, a->hash, 32, SQLITE_STATIC);
    if (!expired)
        sqlite3_bind_int64(s, 2, a->now > last_used ? a->now : last_used);
    rc = store__step_done(s);
    if (rc == SQLITE_OK && !expired)
        *res = 0;
    return rc;
}

int store_token_use(store_t *st, const uint8_t hash[32], int64_t now_ms, int64_t max_idle_ms,
                    store_account_t *out) {
    if (hash == NULL || out == NULL || now_ms < 0 || max_idle_ms <= 0)
        return STORE_E_INVALID;
    if (st->redis != NULL)
        return store__redis_token_use(st, hash, now_ms, max_idle_ms, out);
    tok_args_t a = {.hash = hash, .now = now_ms, .max_idle = max_idle_ms, .out = out};
    return store__write_tx(st, "use a token", tok_use_body, &a);
}

/* One bound delete: the statement, its first parameter (the blob or the
 * account) and, for the expiry, the cutoff and the chunk. */
static int tok_del_body(store_t *st, void *arg, int *res) {
    tok_args_t *a = arg;
    sqlite3_stmt *s;
    if (a->hash != NULL) {
        s = st->st_tok_del;
        sqlite3_bind_blob(s, 1, a->hash, 32, SQLITE_STATIC);
    } else if (a->max_idle > 0) {
        s = st->st_tok_expire;
        sqlite3_bind_int64(s, 1, a->now - a->max_idle);
        sqlite3_bind_int64(s, 2, STORE_TOKENS_EXPIRE_CHUNK);
    } else {
        s = st->st_tok_del_account;
        sqlite3_bind_int64(s, 1, a->account);
    }
    int rc = store__step_done(s);
    a->count = rc == SQLITE_OK ? (uint64_t)sqlite3_changes64(st->db) : 0;
    *res = 0;
    return rc;
}

int store_token_revoke(store_t *st, const uint8_t hash[32]) {
    if (hash == NULL)
        return STORE_E_INVALID;
    if (st->redis != NULL)
        return store__redis_token_revoke(st, hash);
    tok_args_t a = {.hash = hash};
    return store__write_tx(st, "revoke a token", tok_del_body, &a);
}

int store_tokens_revoke_all(store_t *st, int64_t account, uint64_t *revoked) {
    if (st->redis != NULL)
        return store__redis_tokens_revoke_all(st, account, revoked);
    tok_args_t a = {.account = account};
    int rc = store__write_tx(st, "revoke tokens", tok_del_body, &a);
    if (revoked != NULL)
        *revoked = rc == 0 ? a.count : 0;
    return rc;
}

int store_tokens_expire(store_t *st, int64_t now_ms, int64_t max_idle_ms, uint64_t *deleted) {
    if (deleted != NULL)
        *deleted = 0;
    if (now_ms < 0 || max_idle_ms <= 0)
        return STORE_E_INVALID;
    if (st->redis != NULL)
        return 0; /* Redis expires them itself (store_redis.c) */
    tok_args_t a = {.now = now_ms, .max_idle = max_idle_ms};
    int rc = store__write_tx(st, "expire tokens", tok_del_body, &a);
    if (deleted != NULL && rc == 0)
        *deleted = a.count;
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Read markers */

typedef struct {
    int64_t account;
    const char *key;
    size_t key_len;
    int64_t up_to;
} mark_args_t;

static int read_set_body(store_t *st, void *arg, int *res) {
    mark_args_t *a = arg;
    sqlite3_stmt *s = st->st_read_set;
    sqlite3_bind_int64(s, 1, a->account);
    sqlite3_bind_text(s, 2, a->key, (int)a->key_len, SQLITE_STATIC);
    sqlite3_bind_int64(s, 3, a->up_to);
    *res = 0;
    return store__step_done(s);
}

int store_read_set(store_t *st, int64_t account, const char *key, size_t key_len, int64_t up_to) {
    char buf[STORE_ROOM_MAX + 1];
    mark_args_t a = {.account = account, .up_to = up_to};
    if (up_to < 0 || store__key(key, key_len, buf, &a.key, &a.key_len) != 0)
        return STORE_E_INVALID;
    if (st->redis != NULL)
        return store__redis_read_set(st, account, a.key, a.key_len, up_to);
    return store__write_tx(st, "set a read marker", read_set_body, &a);
}

static int read_get_body(store_t *st, void *arg, int *res) {
    mark_args_t *a = arg;
    sqlite3_stmt *s = st->st_read_get;
    sqlite3_bind_int64(s, 1, a->account);
    sqlite3_bind_text(s, 2, a->key, (int)a->key_len, SQLITE_STATIC);
    int rc = sqlite3_step(s);
    a->up_to = rc == SQLITE_ROW ? sqlite3_column_int64(s, 0) : 0;
    sqlite3_reset(s);
    *res = 0;
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? SQLITE_OK : rc;
}

int store_read_get(store_t *st, int64_t account, const char *key, size_t key_len, int64_t *up_to) {
    char buf[STORE_ROOM_MAX + 1];
    mark_args_t a = {.account = account};
    if (up_to == NULL || store__key(key, key_len, buf, &a.key, &a.key_len) != 0)
        return STORE_E_INVALID;
    *up_to = 0;
    if (st->redis != NULL)
        return store__redis_read_get(st, account, a.key, a.key_len, up_to);
    int rc = store__read_tx(st, "read a read marker", read_get_body, &a);
    if (rc == 0)
        *up_to = a.up_to;
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Conversations */

typedef struct {
    int64_t account;
    const char *owner; /* the nick's key */
    const char *nick;
    size_t nick_len;
    unsigned limit;
    store_conv_cb cb;
    void *ctx;
} conv_args_t;

/* Unread messages of one conversation: at most STORE_UNREAD_MAX. */
static int count_unread(store_t *st, const conv_args_t *a, const char *key, int key_len,
                        int64_t marker, uint32_t *unread) {
    sqlite3_stmt *u = st->st_conv_unread;
    sqlite3_bind_text(u, 1, key, key_len, SQLITE_STATIC);
    sqlite3_bind_int64(u, 2, marker);
    sqlite3_bind_text(u, 3, a->nick, (int)a->nick_len, SQLITE_STATIC);
    sqlite3_bind_int(u, 4, STORE_UNREAD_MAX);
    int rc = sqlite3_step(u);
    *unread = rc == SQLITE_ROW ? (uint32_t)sqlite3_column_int(u, 0) : 0;
    sqlite3_reset(u);
    return rc == SQLITE_ROW ? SQLITE_OK : rc;
}

static int conv_body(store_t *st, void *arg, int *res) {
    conv_args_t *a = arg;
    sqlite3_stmt *s = st->st_conv_list;
    sqlite3_bind_text(s, 1, a->owner, (int)a->nick_len, SQLITE_STATIC);
    sqlite3_bind_int64(s, 2, a->account);
    sqlite3_bind_int(s, 3, (int)a->limit);
    int rc, count = 0;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        store_conv_t c;
        c.key = (const char *)sqlite3_column_text(s, 0);
        c.key_len = (size_t)sqlite3_column_bytes(s, 0);
        c.with = (const char *)sqlite3_column_text(s, 1);
        c.with_len = (size_t)sqlite3_column_bytes(s, 1);
        c.last_id = sqlite3_column_int64(s, 2);
        if (c.key == NULL || c.with == NULL) {
            rc = SQLITE_NOMEM;
            break;
        }
        rc = count_unread(st, a, c.key, (int)c.key_len, sqlite3_column_int64(s, 3), &c.unread);
        if (rc != SQLITE_OK)
            break;
        a->cb(a->ctx, &c);
        count++;
    }
    sqlite3_reset(s);
    *res = count;
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

int store_conversations(store_t *st, int64_t account, const char *nick, size_t nick_len,
                        unsigned limit, store_conv_cb cb, void *ctx) {
    if (!nick_ok(nick, nick_len) || cb == NULL || limit == 0 || limit > STORE_CONV_MAX)
        return STORE_E_INVALID;
    char owner[STORE_NICK_MAX];
    store__ascii_lower(owner, nick, nick_len);
    if (st->redis != NULL)
        return store__redis_conversations(st, account, owner, nick_len, limit, cb, ctx);
    conv_args_t a = {.account = account,
                     .owner = owner,
                     .nick = nick,
                     .nick_len = nick_len,
                     .limit = limit,
                     .cb = cb,
                     .ctx = ctx};
    return store__read_tx(st, "list conversations", conv_body, &a);
}
