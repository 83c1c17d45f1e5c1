/* Moderation's tables (schema v4): the rooms that keep an owner, ops or a
 * topic, the bans, and the audit log (a cluster's are in Redis:
 * store_redis_mod.c). The chat holds the state in memory
 * and loads it once (store_mod_load); every action is one transaction
 * (store_mod_write) with its audit entry. Moderation is rare: statements
 * are prepared per call. */
#include "store/store_mod.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/xmalloc.h"
#include "store/store_int.h"

static void bind_text(sqlite3_stmt *s, int i, const char *p, size_t len) {
    if (p != NULL && len > 0)
        sqlite3_bind_text(s, i, p, (int)len, SQLITE_STATIC);
    else
        sqlite3_bind_null(s, i);
}

/* The scope of a room name ('' server-wide), in buf. */
static int scope_of(const char *room, size_t len, char *buf, size_t cap) {
    if (room == NULL) {
        buf[0] = '\0';
        return 0;
    }
    return store_room_key(room, len, buf, cap);
}

static int run(sqlite3 *db, const char *sql, sqlite3_stmt **s) {
    return sqlite3_prepare_v2(db, sql, -1, s, NULL);
}

/* ---- loading ---- */

typedef struct {
    int64_t now;
    chat_mod_room_cb room;
    chat_mod_ban_cb ban;
    void *arg;
} load_args_t;

static int expire_body(store_t *st, void *arg, int *res) {
    load_args_t *a = arg;
    sqlite3_stmt *s;
    int rc = run(st->db, "DELETE FROM bans WHERE until != 0 AND until <= ?1", &s);
    if (rc != SQLITE_OK)
        return rc;
    sqlite3_bind_int64(s, 1, a->now);
    rc = sqlite3_step(s);
    sqlite3_finalize(s);
    *res = 0;
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

static const char *col(sqlite3_stmt *s, int i, size_t *len) {
    const char *p = (const char *)sqlite3_column_text(s, i);
    *len = p ? (size_t)sqlite3_column_bytes(s, i) : 0;
    return p;
}

static int load_body(store_t *st, void *arg, int *res) {
    load_args_t *a = arg;
    sqlite3_stmt *s;
    int rc = run(st->db, "SELECT name, owner, ops, topic, topic_by, topic_ts FROM rooms", &s);
    if (rc != SQLITE_OK)
        return rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        chat_mod_room_t r = {0};
        r.name = col(s, 0, &r.name_len);
        r.owner = col(s, 1, &r.owner_len);
        r.ops = col(s, 2, &r.ops_len);
        r.topic = col(s, 3, &r.topic_len);
        r.topic_by = col(s, 4, &r.topic_by_len);
        r.topic_ts = sqlite3_column_int64(s, 5);
        if (r.name != NULL)
            a->room(a->arg, &r);
    }
    sqlite3_finalize(s);
    if (rc != SQLITE_DONE)
        return rc;
    rc = run(st->db,
             "SELECT r.name, b.address, b.target, b.until, b.ts, b.by, b.reason FROM bans b"
             " LEFT JOIN rooms r ON r.key = b.scope WHERE b.scope = '' OR r.key IS NOT NULL",
             &s);
    if (rc != SQLITE_OK)
        return rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        chat_mod_ban_t b = {0};
        b.room = col(s, 0, &b.room_len);
        b.address = sqlite3_column_int(s, 1) != 0;
        b.target = col(s, 2, &b.target_len);
        b.until = sqlite3_column_int64(s, 3);
        b.ts = sqlite3_column_int64(s, 4);
        b.by = col(s, 5, &b.by_len);
        b.reason = col(s, 6, &b.reason_len);
        if (b.target != NULL && b.by != NULL)
            a->ban(a->arg, &b);
    }
    sqlite3_finalize(s);
    *res = 0;
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

int store_mod_load(store_t *st, int64_t now_ms, chat_mod_room_cb room, chat_mod_ban_cb ban,
                   void *arg) {
    if (room == NULL || ban == NULL)
        return STORE_E_INVALID;
    if (st->redis != NULL)
        return store__redis_mod_load(st, now_ms, room, ban, arg);
    load_args_t a = {.now = now_ms, .room = room, .ban = ban, .arg = arg};
    int rc = store__write_tx(st, "drop ended bans", expire_body, &a);
    if (rc < 0)
        return rc;
    return store__read_tx(st, "load moderation", load_body, &a);
}

/* ---- writing ---- */

static int step_once(sqlite3_stmt *s) {
    int rc = sqlite3_step(s);
    sqlite3_finalize(s);
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

static int write_room(store_t *st, const chat_mod_room_t *r, bool drop) {
    char key[STORE_ROOM_MAX + 1];
    int klen = store_room_key(r->name, r->name_len, key, sizeof(key));
    if (klen < 0)
        return SQLITE_MISUSE;
    sqlite3_stmt *s;
    int rc;
    if (drop) {
        rc = run(st->db, "DELETE FROM rooms WHERE key = ?1", &s);
        if (rc != SQLITE_OK)
            return rc;
        sqlite3_bind_text(s, 1, key, klen, SQLITE_STATIC);
        return step_once(s);
    }
    rc = run(st->db,
             "INSERT INTO rooms (key, name, owner, ops, topic, topic_by, topic_ts)"
             " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT (key) DO UPDATE SET"
             " name = excluded.name, owner = excluded.owner, ops = excluded.ops,"
             " topic = excluded.topic, topic_by = excluded.topic_by, topic_ts = excluded.topic_ts",
             &s);
    if (rc != SQLITE_OK)
        return rc;
    sqlite3_bind_text(s, 1, key, klen, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, r->name, (int)r->name_len, SQLITE_STATIC);
    bind_text(s, 3, r->owner, r->owner_len);
    sqlite3_bind_text(s, 4, r->ops ? r->ops : "", (int)r->ops_len, SQLITE_STATIC);
    bind_text(s, 5, r->topic, r->topic_len);
    bind_text(s, 6, r->topic_by, r->topic_by_len);
    sqlite3_bind_int64(s, 7, r->topic_ts);
    return step_once(s);
}

static int write_ban(store_t *st, const chat_mod_ban_t *b, bool drop) {
    char scope[STORE_ROOM_MAX + 1];
    if (scope_of(b->room, b->room_len, scope, sizeof(scope)) < 0 || b->target_len == 0 ||
        b->target_len > STORE_ROOM_MAX)
        return SQLITE_MISUSE;
    char tkey[STORE_ROOM_MAX + 1];
    store__ascii_lower(tkey, b->target, b->target_len);
    sqlite3_stmt *s;
    int rc = run(st->db,
                 drop ? "DELETE FROM bans WHERE scope = ?1 AND address = ?2 AND target_key = ?3"
                      : "INSERT INTO bans (scope, address, target_key, target, until, by, reason,"
                        " ts) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"
                        " ON CONFLICT (scope, address, target_key) DO UPDATE SET"
                        " target = excluded.target, until = excluded.until, by = excluded.by,"
                        " reason = excluded.reason, ts = excluded.ts",
                 &s);
    if (rc != SQLITE_OK)
        return rc;
    sqlite3_bind_text(s, 1, scope, -1, SQLITE_STATIC);
    sqlite3_bind_int(s, 2, b->address ? 1 : 0);
    sqlite3_bind_text(s, 3, tkey, (int)b->target_len, SQLITE_STATIC);
    if (!drop) {
        sqlite3_bind_text(s, 4, b->target, (int)b->target_len, SQLITE_STATIC);
        sqlite3_bind_int64(s, 5, b->until);
        sqlite3_bind_text(s, 6, b->by ? b->by : "", (int)b->by_len, SQLITE_STATIC);
        bind_text(s, 7, b->reason, b->reason_len);
        sqlite3_bind_int64(s, 8, b->ts);
    }
    return step_once(s);
}

static int write_audit(store_t *st, const chat_audit_t *e) {
    char scope[STORE_ROOM_MAX + 1];
    if (scope_of(e->room, e->room_len, scope, sizeof(scope)) < 0)
        return SQLITE_MISUSE;
    sqlite3_stmt *s;
    int rc = run(st->db,
                 "INSERT INTO audit (scope, ts, actor, action, target, reason, until, text)"
                 " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                 &s);
    if (rc != SQLITE_OK)
        return rc;
    sqlite3_bind_text(s, 1, scope, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 2, e->ts);
    sqlite3_bind_text(s, 3, e->by ? e->by : "", (int)e->by_len, SQLITE_STATIC);
    sqlite3_bind_text(s, 4, e->action, (int)e->action_len, SQLITE_STATIC);
    bind_text(s, 5, e->target, e->target_len);
    bind_text(s, 6, e->reason, e->reason_len);
    sqlite3_bind_int64(s, 7, e->until);
    bind_text(s, 8, e->text, e->text_len);
    rc = step_once(s);
    if (rc != SQLITE_OK)
        return rc;
    /* The newest STORE_AUDIT_KEEP of the scope stay. */
    rc = run(st->db,
             "DELETE FROM audit WHERE scope = ?1 AND id <= (SELECT id FROM audit WHERE scope = ?1"
             " ORDER BY id DESC LIMIT 1 OFFSET ?2)",
             &s);
    if (rc != SQLITE_OK)
        return rc;
    sqlite3_bind_text(s, 1, scope, -1, SQLITE_STATIC);
    sqlite3_bind_int(s, 2, STORE_AUDIT_KEEP);
    return step_once(s);
}

static int write_body(store_t *st, void *arg, int *res) {
    const chat_mod_write_t *w = arg;
    int rc = SQLITE_OK;
    if (w->room != NULL)
        rc = write_room(st, w->room, w->room_drop);
    if (rc == SQLITE_OK && w->ban != NULL)
        rc = write_ban(st, w->ban, w->ban_drop);
    if (rc == SQLITE_OK && w->audit != NULL)
        rc = write_audit(st, w->audit);
    *res = 0;
    return rc;
}

int store_mod_write(store_t *st, const chat_mod_write_t *w) {
    if (w == NULL)
        return STORE_E_INVALID;
    if (st->redis != NULL)
        return store__redis_mod_write(st, w);
    return store__write_tx(st, "store a moderation action", write_body, (void *)w);
}

/* ---- the audit log ---- */

typedef struct {
    const char *scope;
    uint64_t before;
    unsigned limit;
    store_audit_cb cb;
    void *ctx;
    bool more;
} audit_args_t;

static int audit_body(store_t *st, void *arg, int *res) {
    audit_args_t *a = arg;
    sqlite3_stmt *s;
    /* The newest limit + 1 (one more says `more`), read back newest first
     * and handed over oldest first. */
    int rc = run(st->db,
                 "SELECT id, ts, actor, action, target, reason, until, text FROM audit"
                 " WHERE scope = ?1 AND (?2 = 0 OR id < ?2) ORDER BY id DESC LIMIT ?3",
                 &s);
    if (rc != SQLITE_OK)
        return rc;
    sqlite3_bind_text(s, 1, a->scope, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 2, (sqlite3_int64)a->before);
    sqlite3_bind_int(s, 3, (int)a->limit + 1);
    chat_audit_t *rows = xcalloc(a->limit + 1, sizeof(*rows));
    char **bufs = xcalloc(a->limit + 1, sizeof(*bufs));
    size_t n = 0;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW && n <= a->limit) {
        if (n == a->limit) {
            a->more = true;
            break;
        }
        /* Copies: the row's text lives only until the next step. */
        size_t lens[5];
        const char *p[5];
        for (int i = 0; i < 5; i++)
            p[i] = col(s, i == 4 ? 7 : 2 + i, &lens[i]);
        size_t total = lens[0] + lens[1] + lens[2] + lens[3] + lens[4] + 5;
        char *b = xmalloc(total);
        bufs[n] = b;
        const char *q[5];
        for (int i = 0; i < 5; i++) {
            memcpy(b, p[i] ? p[i] : "", lens[i]);
            b[lens[i]] = '\0';
            q[i] = p[i] ? b : NULL;
            b += lens[i] + 1;
        }
        chat_audit_t *e = &rows[n++];
        e->id = (uint64_t)sqlite3_column_int64(s, 0);
        e->ts = sqlite3_column_int64(s, 1);
        e->by = q[0] ? q[0] : "";
        e->by_len = lens[0];
        e->action = q[1] ? q[1] : "";
        e->action_len = lens[1];
        e->target = q[2];
        e->target_len = lens[2];
        e->reason = q[3];
        e->reason_len = lens[3];
        e->until = sqlite3_column_int64(s, 6);
        e->text = q[4];
        e->text_len = lens[4];
    }
    sqlite3_finalize(s);
    if (rc == SQLITE_ROW || rc == SQLITE_DONE) {
        rc = SQLITE_OK;
        for (size_t i = n; i-- > 0;)
            a->cb(a->ctx, &rows[i]);
    }
    for (size_t i = 0; i < n; i++)
        free(bufs[i]);
    free(bufs);
    free(rows);
    *res = 0;
    return rc;
}

int store_audit_read(store_t *st, const char *room, size_t room_len, uint64_t before,
                     unsigned limit, store_audit_cb cb, void *ctx, bool *more) {
    char scope[STORE_ROOM_MAX + 1];
    if (cb == NULL || limit == 0 || limit > STORE_AUDIT_READ_MAX ||
        scope_of(room, room_len, scope, sizeof(scope)) < 0)
        return STORE_E_INVALID;
    if (st->redis != NULL)
        return store__redis_audit_read(st, scope, before, limit, cb, ctx, more);
    audit_args_t a = {.scope = scope, .before = before, .limit = limit, .cb = cb, .ctx = ctx};
    int rc = store__read_tx(st, "read the audit log", audit_body, &a);
    if (more != NULL)
        *more = a.more;
    return rc;
}

/* ------------------------------------------------------------------------ */
/* The chat's hooks: with an asynchronous front, on its worker */

/* Copies of borrowed strings, freed with their job. */
typedef struct {
    char **v;
    size_t n;
} pool_t;

static const char *pool_dup(pool_t *p, const char *s, size_t len) {
    if (s == NULL)
        return NULL;
    p->v = xrealloc(p->v, (p->n + 1) * sizeof(*p->v));
    char *c = xmalloc(len + 1);
    memcpy(c, s, len);
    c[len] = '\0';
    p->v[p->n++] = c;
    return c;
}

static void pool_free(pool_t *p) {
    for (size_t i = 0; i < p->n; i++)
        free(p->v[i]);
    free(p->v);
    p->v = NULL;
    p->n = 0;
}

/* ---- loading: collected on the worker, handed over on the loop ---- */

typedef struct {
    int64_t now;
    pool_t pool;
    chat_mod_room_t *rooms;
    size_t nrooms;
    chat_mod_ban_t *bans;
    size_t nbans;
    bool done;
    int rc;
} load_job_t;

static void collect_room(void *arg, const chat_mod_room_t *r) {
    load_job_t *j = arg;
    j->rooms = xrealloc(j->rooms, (j->nrooms + 1) * sizeof(*j->rooms));
    chat_mod_room_t *c = &j->rooms[j->nrooms++];
    *c = *r;
    c->name = pool_dup(&j->pool, r->name, r->name_len);
    c->owner = pool_dup(&j->pool, r->owner, r->owner_len);
    c->ops = pool_dup(&j->pool, r->ops, r->ops_len);
    c->topic = pool_dup(&j->pool, r->topic, r->topic_len);
    c->topic_by = pool_dup(&j->pool, r->topic_by, r->topic_by_len);
}

static void collect_ban(void *arg, const chat_mod_ban_t *b) {
    load_job_t *j = arg;
    j->bans = xrealloc(j->bans, (j->nbans + 1) * sizeof(*j->bans));
    chat_mod_ban_t *c = &j->bans[j->nbans++];
    *c = *b;
    c->room = pool_dup(&j->pool, b->room, b->room_len);
    c->target = pool_dup(&j->pool, b->target, b->target_len);
    c->by = pool_dup(&j->pool, b->by, b->by_len);
    c->reason = pool_dup(&j->pool, b->reason, b->reason_len);
}

static int run_load(store_t *st, void *arg) {
    load_job_t *j = arg;
    return store_mod_load(st, j->now, collect_room, collect_ban, j);
}

static void done_load(void *arg, int rc) {
    load_job_t *j = arg;
    j->rc = rc;
    j->done = true;
}

int store_mod_hook_load(store_t *st, store_async_t *async, int64_t now_ms, chat_mod_room_cb room,
                        chat_mod_ban_cb ban, void *arg) {
    if (async == NULL)
        return store_mod_load(st, now_ms, room, ban, arg);
    /* Once, at start, before any connection: the loop waits for it. */
    load_job_t *j = xcalloc(1, sizeof(*j));
    j->now = now_ms;
    int rc = store_async_call(async, sizeof(*j), run_load, done_load, j);
    if (rc < 0) {
        free(j);
        return rc;
    }
    while (!j->done) {
        if (store_async_drain(async) == 0) {
            struct timespec ts = {0, 1000000};
            nanosleep(&ts, NULL);
        }
    }
    rc = j->rc;
    if (rc == 0) {
        for (size_t i = 0; i < j->nrooms; i++)
            room(arg, &j->rooms[i]);
        for (size_t i = 0; i < j->nbans; i++)
            ban(arg, &j->bans[i]);
    }
    pool_free(&j->pool);
    free(j->rooms);
    free(j->bans);
    free(j);
    return rc;
}

/* ---- writing ---- */

typedef struct {
    pool_t pool;
    chat_mod_room_t room;
    chat_mod_ban_t ban;
    chat_audit_t audit;
    chat_mod_write_t w;
    chat_store_done_cb done;
    void *arg;
} write_job_t;

static int run_write(store_t *st, void *arg) {
    write_job_t *j = arg;
    return store_mod_write(st, &j->w);
}

static void done_write(void *arg, int rc) {
    write_job_t *j = arg;
    j->done(j->arg, rc < 0 ? rc : 0, 0);
    pool_free(&j->pool);
    free(j);
}

int store_mod_hook_write(store_t *st, store_async_t *async, const chat_mod_write_t *w,
                         chat_store_done_cb done, void *arg) {
    write_job_t *j = xcalloc(1, sizeof(*j));
    pool_t *p = &j->pool;
    j->done = done;
    j->arg = arg;
    j->w = *w;
    if (w->room != NULL) {
        j->room = *w->room;
        j->room.name = pool_dup(p, w->room->name, w->room->name_len);
        j->room.owner = pool_dup(p, w->room->owner, w->room->owner_len);
        j->room.ops = pool_dup(p, w->room->ops, w->room->ops_len);
        j->room.topic = pool_dup(p, w->room->topic, w->room->topic_len);
        j->room.topic_by = pool_dup(p, w->room->topic_by, w->room->topic_by_len);
        j->w.room = &j->room;
    }
    if (w->ban != NULL) {
        j->ban = *w->ban;
        j->ban.room = pool_dup(p, w->ban->room, w->ban->room_len);
        j->ban.target = pool_dup(p, w->ban->target, w->ban->target_len);
        j->ban.by = pool_dup(p, w->ban->by, w->ban->by_len);
        j->ban.reason = pool_dup(p, w->ban->reason, w->ban->reason_len);
        j->w.ban = &j->ban;
    }
    if (w->audit != NULL) {
        j->audit = *w->audit;
        j->audit.room = pool_dup(p, w->audit->room, w->audit->room_len);
        j->audit.by = pool_dup(p, w->audit->by, w->audit->by_len);
        j->audit.action = pool_dup(p, w->audit->action, w->audit->action_len);
        j->audit.target = pool_dup(p, w->audit->target, w->audit->target_len);
        j->audit.reason = pool_dup(p, w->audit->reason, w->audit->reason_len);
        j->audit.text = pool_dup(p, w->audit->text, w->audit->text_len);
        j->w.audit = &j->audit;
    }
    if (async != NULL) {
        int rc = store_async_call(async, sizeof(*j) + 4096, run_write, done_write, j);
        if (rc < 0) {
            pool_free(&j->pool);
            free(j);
        }
        return rc;
    }
    done_write(j, run_write(st, j));
    return 0;
}

/* ---- the audit log ---- */

typedef struct {
    char room[STORE_ROOM_MAX + 2];
    size_t room_len;
    bool has_room;
    uint64_t before;
    unsigned limit;
    pool_t pool;
    chat_audit_t *rows;
    size_t n;
    bool more;
    chat_audit_done_cb done;
    void *arg;
} audit_job_t;

static void collect_audit(void *ctx, const chat_audit_t *e) {
    audit_job_t *j = ctx;
    chat_audit_t *c = &j->rows[j->n++];
    *c = *e;
    c->by = pool_dup(&j->pool, e->by, e->by_len);
    c->action = pool_dup(&j->pool, e->action, e->action_len);
    c->target = pool_dup(&j->pool, e->target, e->target_len);
    c->reason = pool_dup(&j->pool, e->reason, e->reason_len);
    c->text = pool_dup(&j->pool, e->text, e->text_len);
}

static int run_audit(store_t *st, void *arg) {
    audit_job_t *j = arg;
    j->n = 0;
    return store_audit_read(st, j->has_room ? j->room : NULL, j->room_len, j->before, j->limit,
                            collect_audit, j, &j->more);
}

static void done_audit(void *arg, int rc) {
    audit_job_t *j = arg;
    j->done(j->arg, rc < 0 ? rc : 0, j->rows, rc < 0 ? 0 : j->n, rc < 0 ? false : j->more);
    pool_free(&j->pool);
    free(j->rows);
    free(j);
}

int store_mod_hook_audit(store_t *st, store_async_t *async, const char *room, size_t room_len,
                         uint64_t before, unsigned limit, chat_audit_done_cb done, void *arg) {
    if (limit == 0 || limit > STORE_AUDIT_READ_MAX || room_len > STORE_ROOM_MAX + 1)
        return STORE_E_INVALID;
    audit_job_t *j = xcalloc(1, sizeof(*j));
    if (room != NULL) {
        memcpy(j->room, room, room_len);
        j->room_len = room_len;
        j->has_room = true;
    }
    j->before = before;
    j->limit = limit;
    j->rows = xcalloc(limit, sizeof(*j->rows));
    j->done = done;
    j->arg = arg;
    if (async != NULL) {
        int rc = store_async_call(async, sizeof(*j) + limit * 512, run_audit, done_audit, j);
        if (rc < 0) {
            free(j->rows);
            free(j);
        }
        return rc;
    }
    done_audit(j, run_audit(st, j));
    return 0;
}
