/* The SQLite store: opening and checking the file, the schema and its
 * migrations, group-committed appends and the paging reads, all on the
 * loop's connection with statements prepared once. Retention and WAL
 * checkpoints live in store_maint.c. */
#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/log.h"
#include "core/xmalloc.h"
#include "store/store_int.h"

const char *store_strerror(int err) {
    switch (err) {
#define STORE_XX(name, value, text)                                                                \
    case STORE_E_##name:                                                                           \
        return text;
        STORE_ERRNO_MAP(STORE_XX)
#undef STORE_XX
    default:
        return "unknown store error";
    }
}

void store_config_defaults(store_config_t *cfg) {
    memset(cfg, 0, sizeof(*cfg));
    cfg->path = STORE_DEFAULT_PATH;
    cfg->busy_timeout_ms = 2000;
}

const char *store_path(const store_t *st) {
    return st->path;
}

int64_t store__now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

uint64_t store__mono_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

bool store__log_allow(store_log_limit_t *l, uint64_t now_ms) {
    l->unlogged++;
    return now_ms >= l->next_ms;
}

void store__log_done(store_log_limit_t *l, uint64_t now_ms) {
    l->unlogged = 0;
    l->next_ms = now_ms + STORE_LOG_EVERY_MS;
}

bool store__is_owner(const store_t *st) {
    return !st->async || pthread_equal(st->async_thread, pthread_self());
}

void store__err(const store_t *st, char *err, size_t errlen, const char *fmt, ...) {
    if (err == NULL || errlen == 0)
        return;
    int n = snprintf(err, errlen, "database \"%s\": ", st->path);
    if (n < 0 || (size_t)n >= errlen)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err + n, errlen - (size_t)n, fmt, ap);
    va_end(ap);
}

int store__map_rc(int rc) {
    switch (rc & 0xff) {
    case SQLITE_FULL:
    case SQLITE_IOERR:
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
    case SQLITE_READONLY:
    case SQLITE_CANTOPEN:
    case SQLITE_NOMEM:
    case SQLITE_PROTOCOL:
        return STORE_E_UNAVAILABLE;
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
        return STORE_E_CORRUPT;
    default:
        return STORE_E_INTERNAL;
    }
}

/* e.g. "unable to open database file: Permission denied". */
void store__reason(sqlite3 *db, int rc, char *buf, size_t cap) {
    const char *msg = db ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
    int sys = db ? sqlite3_system_errno(db) : 0;
    int prim = rc & 0xff;
    if (sys != 0 && (prim == SQLITE_CANTOPEN || prim == SQLITE_IOERR || prim == SQLITE_FULL))
        snprintf(buf, cap, "%s: %s", msg, strerror(sys));
    else
        snprintf(buf, cap, "%s", msg);
}

/* ------------------------------------------------------------------------ */
/* Schema */

/* v0 -> v1: the first schema. AUTOINCREMENT (not a bare INTEGER PRIMARY KEY)
 * because ids must never go back: a bare rowid is max(rowid) + 1, which
 * drops when retention deletes the newest rows of a quiet database, while
 * AUTOINCREMENT remembers the largest id ever handed out in sqlite_sequence.
 * kind and recipient are for private messages (see store_dm_key). The
 * (room, id) index serves every read; the ts index lets retention by age
 * find old rows without scanning the table. */
static int migrate_v0_v1(sqlite3 *db) {
    return sqlite3_exec(db,
                        "CREATE TABLE messages ("
                        "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
                        "  room TEXT NOT NULL,"
                        "  kind INTEGER NOT NULL DEFAULT 0,"
                        "  sender TEXT NOT NULL,"
                        "  recipient TEXT,"
                        "  text TEXT NOT NULL,"
                        "  ts INTEGER NOT NULL);"
                        "CREATE INDEX messages_room_id ON messages (room, id);"
                        "CREATE INDEX messages_ts ON messages (ts);",
                        NULL, NULL, NULL);
}

/* tt_room_key(x): store_room_key of a text, for the migration below; a
 * value that has no room key (empty, '#', '@...', too long) comes back as
 * it is. */
static void sql_room_key(sqlite3_context *ctx, int argc, sqlite3_value **argv) {
    (void)argc;
    const char *name = (const char *)sqlite3_value_text(argv[0]);
    int len = sqlite3_value_bytes(argv[0]);
    char key[STORE_ROOM_MAX + 1];
    int n = name ? store_room_key(name, (size_t)len, key, sizeof(key)) : STORE_E_INVALID;
    if (n < 0)
        sqlite3_result_value(ctx, argv[0]);
    else
        sqlite3_result_text(ctx, key, n, SQLITE_TRANSIENT);
}

/* tt_lower(x): ASCII lower case, as the C code folds nicks (SQLite's
 * lower() folds more when built with ICU). */
static void sql_lower(sqlite3_context *ctx, int argc, sqlite3_value **argv) {
    (void)argc;
    const char *s = (const char *)sqlite3_value_text(argv[0]);
    int len = sqlite3_value_bytes(argv[0]);
    if (s == NULL) {
        sqlite3_result_value(ctx, argv[0]);
        return;
    }
    char *out = sqlite3_malloc(len + 1);
    if (out == NULL) {
        sqlite3_result_error_nomem(ctx);
        return;
    }
    store__ascii_lower(out, s, (size_t)len);
    sqlite3_result_text(ctx, out, len, sqlite3_free);
}

/* v1 -> v2: accounts. Rooms become case-insensitive with the '#' optional:
 * room rows (kind 0) are rewritten to their store_room_key, so rooms that
 * differed only in case or '#' merge, each row keeping its id (the (room,
 * id) index orders the merged room by id, as ever). Private rows keep
 * their conversation key, and their conversations are listed for both
 * sides from what is stored. tokens has an index on last_used for the
 * chunked expiry besides the one on account; conversations is WITHOUT
 * ROWID, clustered on (owner, key). The helpers are registered on this
 * connection for the migration only. */
static int migrate_v1_v2(sqlite3 *db) {
    int flags = SQLITE_UTF8 | SQLITE_DETERMINISTIC;
    int rc = sqlite3_create_function(db, "tt_room_key", 1, flags, NULL, sql_room_key, NULL, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_create_function(db, "tt_lower", 1, flags, NULL, sql_lower, NULL, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(
            db,
            "CREATE TABLE accounts ("
            "  id INTEGER PRIMARY KEY,"
            "  nick TEXT NOT NULL,"
            "  nick_key TEXT NOT NULL UNIQUE,"
            "  hash TEXT,"
            "  created INTEGER NOT NULL,"
            "  updated INTEGER NOT NULL);"
            "CREATE TABLE tokens ("
            "  hash BLOB PRIMARY KEY,"
            "  account INTEGER NOT NULL REFERENCES accounts(id),"
            "  created INTEGER NOT NULL,"
            "  last_used INTEGER NOT NULL);"
            "CREATE INDEX tokens_account ON tokens (account);"
            "CREATE INDEX tokens_last_used ON tokens (last_used);"
            "CREATE TABLE read_markers ("
            "  account INTEGER NOT NULL,"
            "  key TEXT NOT NULL,"
            "  up_to INTEGER NOT NULL,"
            "  PRIMARY KEY (account, key)) WITHOUT ROWID;"
            "CREATE TABLE conversations ("
            "  owner TEXT NOT NULL,"
            "  key TEXT NOT NULL,"
            "  with_nick TEXT NOT NULL,"
            "  last_id INTEGER NOT NULL,"
            "  PRIMARY KEY (owner, key)) WITHOUT ROWID;"
            "CREATE INDEX conversations_owner_last ON conversations (owner, last_id);"
            "UPDATE messages SET room = tt_room_key(room)"
            "  WHERE kind = 0 AND room != tt_room_key(room);"
            /* The bare column beside max(id) comes from the newest row. */
            "INSERT INTO conversations (owner, key, with_nick, last_id)"
            "  SELECT tt_lower(sender), room, recipient, max(id) FROM messages"
            "  WHERE kind = 1 GROUP BY tt_lower(sender), room;"
            "INSERT INTO conversations (owner, key, with_nick, last_id)"
            "  SELECT tt_lower(recipient), room, sender, max(id) FROM messages"
            "  WHERE kind = 1 GROUP BY tt_lower(recipient), room"
            "  ON CONFLICT (owner, key) DO UPDATE SET with_nick = excluded.with_nick,"
            "  last_id = excluded.last_id WHERE excluded.last_id > conversations.last_id;",
            NULL, NULL, NULL);
    sqlite3_create_function(db, "tt_room_key", 1, flags, NULL, NULL, NULL, NULL);
    sqlite3_create_function(db, "tt_lower", 1, flags, NULL, NULL, NULL, NULL);
    return rc;
}

/* v2 -> v3: edit, delete and search (store_search.h). A message keeps its
 * row when deleted (deleted = 1, text "") so history shows where it was;
 * edited_ts is when its text last changed. room_joins is each account's
 * record of the rooms it ever joined (search reads only those), seeded
 * from the rooms its nickname wrote in and the rooms it has read markers
 * of. messages_fts indexes every text (external content: the text lives
 * once, in messages); 'rebuild' indexes what is stored. New messages are
 * indexed later, off the commit (store_search.c): search_state.indexed_to
 * is how far, and the triggers keep the index in step with edits, deletes
 * and retention for the rows below it. The tokenizer "tt" is registered on
 * the connection before the migration runs. */
static int migrate_v2_v3(sqlite3 *db) {
    return sqlite3_exec(
        db,
        "ALTER TABLE messages ADD COLUMN edited_ts INTEGER NOT NULL DEFAULT 0;"
        "ALTER TABLE messages ADD COLUMN deleted INTEGER NOT NULL DEFAULT 0;"
        "CREATE TABLE room_joins ("
        "  account INTEGER NOT NULL,"
        "  room TEXT NOT NULL,"
        "  last_ts INTEGER NOT NULL,"
        "  PRIMARY KEY (account, room)) WITHOUT ROWID;"
        "CREATE INDEX room_joins_last ON room_joins (account, last_ts);"
        "INSERT OR IGNORE INTO room_joins (account, room, last_ts)"
        "  SELECT a.id, m.room, max(m.ts) FROM messages m JOIN accounts a"
        "  ON a.nick_key = lower(m.sender) WHERE m.kind = 0 GROUP BY a.id, m.room;"
        "INSERT OR IGNORE INTO room_joins (account, room, last_ts)"
        "  SELECT account, key, 0 FROM read_markers WHERE substr(key, 1, 1) != '@';"
        "CREATE VIRTUAL TABLE messages_fts USING fts5(text, content = 'messages',"
        "  content_rowid = 'id', tokenize = 'tt');"
        "INSERT INTO messages_fts (messages_fts) VALUES ('rebuild');"
        "CREATE TABLE search_state (id INTEGER PRIMARY KEY CHECK (id = 1),"
        "  indexed_to INTEGER NOT NULL);"
        "INSERT INTO search_state VALUES (1, (SELECT coalesce(max(id), 0) FROM messages));"
        "CREATE TRIGGER messages_fts_ad AFTER DELETE ON messages"
        "  WHEN old.id <= (SELECT indexed_to FROM search_state) BEGIN"
        "  INSERT INTO messages_fts (messages_fts, rowid, text)"
        "  VALUES ('delete', old.id, old.text); END;"
        "CREATE TRIGGER messages_fts_au AFTER UPDATE OF text ON messages"
        "  WHEN old.id <= (SELECT indexed_to FROM search_state) BEGIN"
        "  INSERT INTO messages_fts (messages_fts, rowid, text)"
        "  VALUES ('delete', old.id, old.text);"
        "  INSERT INTO messages_fts (rowid, text) VALUES (new.id, new.text); END;",
        NULL, NULL, NULL);
}

/* v3 -> v4: moderation. rooms holds what a room keeps (its canonical
 * spelling, owner, ops separated by spaces, topic), keyed by its room key;
 * bans are per room (scope: the room key) or server-wide (scope ''), by
 * nickname (address 0, target_key folded) or client address; audit keeps
 * every action, read back by scope, newest first. */
static int migrate_v3_v4(sqlite3 *db) {
    return sqlite3_exec(db,
                        "CREATE TABLE rooms ("
                        "  key TEXT PRIMARY KEY,"
                        "  name TEXT NOT NULL,"
                        "  owner TEXT,"
                        "  ops TEXT NOT NULL DEFAULT '',"
                        "  topic TEXT,"
                        "  topic_by TEXT,"
                        "  topic_ts INTEGER) WITHOUT ROWID;"
                        "CREATE TABLE bans ("
                        "  scope TEXT NOT NULL,"
                        "  address INTEGER NOT NULL,"
                        "  target_key TEXT NOT NULL,"
                        "  target TEXT NOT NULL,"
                        "  until INTEGER NOT NULL,"
                        "  by TEXT NOT NULL,"
                        "  reason TEXT,"
                        "  ts INTEGER NOT NULL,"
                        "  PRIMARY KEY (scope, address, target_key)) WITHOUT ROWID;"
                        "CREATE TABLE audit ("
                        "  id INTEGER PRIMARY KEY,"
                        "  scope TEXT NOT NULL,"
                        "  ts INTEGER NOT NULL,"
                        "  actor TEXT NOT NULL,"
                        "  action TEXT NOT NULL,"
                        "  target TEXT,"
                        "  reason TEXT,"
                        "  until INTEGER NOT NULL DEFAULT 0,"
                        "  text TEXT);"
                        "CREATE INDEX audit_scope_id ON audit (scope, id);",
                        NULL, NULL, NULL);
}

/* migrations[v] takes a database from schema version v to v + 1. A new
 * schema version is one more function here (and STORE_SCHEMA_VERSION + 1). */
typedef int (*migration_fn)(sqlite3 *db);
static const migration_fn migrations[] = {migrate_v0_v1, migrate_v1_v2, migrate_v2_v3,
                                          migrate_v3_v4};
_Static_assert(sizeof(migrations) / sizeof(migrations[0]) == STORE_SCHEMA_VERSION,
               "one migration per schema version");

static int pragma_int(sqlite3 *db, const char *sql, int *out) {
    sqlite3_stmt *s;
    int rc = sqlite3_prepare_v2(db, sql, -1, &s, NULL);
    if (rc != SQLITE_OK)
        return rc;
    rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        *out = sqlite3_column_int(s, 0);
        rc = SQLITE_OK;
    }
    sqlite3_finalize(s);
    return rc;
}

/* Brings the schema to STORE_SCHEMA_VERSION in one transaction: another
 * process opening the file sees either the old schema or the new one. */
static int schema_migrate(store_t *st, char *err, size_t errlen) {
    char why[512];
    int version = 0;
    int rc = pragma_int(st->db, "PRAGMA user_version", &version);
    if (rc != SQLITE_OK) {
        store__reason(st->db, rc, why, sizeof(why));
        store__err(st, err, errlen, "%s", why);
        return (rc & 0xff) == SQLITE_NOTADB || (rc & 0xff) == SQLITE_CORRUPT ? STORE_E_CORRUPT
                                                                             : STORE_E_CANTOPEN;
    }
    if (version > STORE_SCHEMA_VERSION) {
        store__err(st, err, errlen, "schema version %d is newer than this server's (%d)", version,
                   STORE_SCHEMA_VERSION);
        return STORE_E_VERSION;
    }
    if (version == STORE_SCHEMA_VERSION)
        return 0;

    rc = sqlite3_exec(st->db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
    int v = version;
    for (; rc == SQLITE_OK && v < STORE_SCHEMA_VERSION; v++)
        rc = migrations[v](st->db);
    if (rc == SQLITE_OK) {
        char sql[64];
        snprintf(sql, sizeof(sql), "PRAGMA user_version = %d", STORE_SCHEMA_VERSION);
        rc = sqlite3_exec(st->db, sql, NULL, NULL, NULL);
    }
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(st->db, "COMMIT", NULL, NULL, NULL);
    if (rc == SQLITE_OK) {
        if (version == 0)
            tt_log_info("store: %s: created the schema (v%d)", st->path, STORE_SCHEMA_VERSION);
        else
            tt_log_info("store: %s: migrated the schema from v%d to v%d", st->path, version,
                        STORE_SCHEMA_VERSION);
        return 0;
    }
    store__reason(st->db, rc, why, sizeof(why));
    if (!sqlite3_get_autocommit(st->db))
        sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
    store__err(st, err, errlen, "migrating the schema from v%d to v%d failed: %s",
               v > version ? v - 1 : v, v > version ? v : v + 1, why);
    int mapped = store__map_rc(rc);
    return mapped == STORE_E_INTERNAL ? STORE_E_CORRUPT : mapped;
}

/* ------------------------------------------------------------------------ */
/* Opening */

/* Creates the parent directory of path if it is missing (one level: the
 * usual case is ./data/ on a first run; a missing grandparent is more
 * likely a typo than a wish). */
static int ensure_parent_dir(store_t *st, char *err, size_t errlen) {
    const char *slash = strrchr(st->path, '/');
    if (slash == NULL || slash == st->path)
        return 0;
    char *dir = xstrndup(st->path, (size_t)(slash - st->path));
    struct stat sb;
    int ret = 0;
    if (stat(dir, &sb) == 0) {
        if (!S_ISDIR(sb.st_mode)) {
            store__err(st, err, errlen, "\"%s\" is not a directory", dir);
            ret = STORE_E_CANTOPEN;
        }
    } else if (errno != ENOENT || mkdir(dir, 0750) != 0) {
        store__err(st, err, errlen, "cannot create directory \"%s\": %s", dir, strerror(errno));
        ret = STORE_E_CANTOPEN;
    }
    free(dir);
    return ret;
}

/* Takes the file for this store alone with flock(), which on Linux neither
 * sees nor disturbs SQLite's own (fcntl) locks, and is dropped by the kernel
 * when the process dies, kill -9 included: no stale lock file to clean. */
static int lock_file(store_t *st, char *err, size_t errlen) {
    int fd = open(st->path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        store__err(st, err, errlen, "cannot open for locking: %s", strerror(errno));
        return STORE_E_CANTOPEN;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        int e = errno;
        close(fd);
        if (e == EWOULDBLOCK) {
            store__err(st, err, errlen,
                       "in use by another process (is another server running on it?)");
            return STORE_E_INUSE;
        }
        store__err(st, err, errlen, "cannot lock: %s", strerror(e));
        return STORE_E_CANTOPEN;
    }
    st->lock_fd = fd;
    return 0;
}

/* Runs PRAGMA quick_check: a damaged file is reported now, with SQLite's
 * first complaint, rather than as failed appends later. */
static int check_integrity(store_t *st, char *err, size_t errlen) {
    sqlite3_stmt *s;
    char why[512];
    int rc = sqlite3_prepare_v2(st->db, "PRAGMA quick_check(1)", -1, &s, NULL);
    if (rc == SQLITE_OK) {
        rc = sqlite3_step(s);
        if (rc == SQLITE_ROW) {
            const char *res = (const char *)sqlite3_column_text(s, 0);
            if (res != NULL && strcmp(res, "ok") == 0) {
                sqlite3_finalize(s);
                return 0;
            }
            /* One line: without SQLite's "*** in database main ***" header. */
            char first[256];
            const char *body = res ? res : "?";
            const char *hdr = "*** in database main ***\n";
            if (strncmp(body, hdr, strlen(hdr)) == 0)
                body += strlen(hdr);
            snprintf(first, sizeof(first), "%s", body);
            for (char *c = first; *c != '\0'; c++)
                if (*c == '\n')
                    *c = ' ';
            store__err(st, err, errlen, "the file is damaged: %s", first);
            sqlite3_finalize(s);
            return STORE_E_CORRUPT;
        }
    }
    store__reason(st->db, rc, why, sizeof(why));
    sqlite3_finalize(s);
    store__err(st, err, errlen, "integrity check failed: %s", why);
    int mapped = store__map_rc(rc);
    return mapped == STORE_E_UNAVAILABLE ? STORE_E_CANTOPEN : STORE_E_CORRUPT;
}

static int prepare(store_t *st, const char *sql, sqlite3_stmt **out) {
    /* SQLITE_PREPARE_PERSISTENT: these live as long as the store. */
    return sqlite3_prepare_v3(st->db, sql, -1, SQLITE_PREPARE_PERSISTENT, out, NULL);
}

/* The loop connection's own statements (store_accounts.c prepares its
 * own), in one table so that opening and closing cannot miss one. */
static const struct {
    size_t offset; /* of the sqlite3_stmt * in store_t */
    const char *sql;
} loop_stmts[] = {
    {offsetof(store_t, st_begin_write), "BEGIN IMMEDIATE"},
    {offsetof(store_t, st_begin_read), "BEGIN"},
    {offsetof(store_t, st_commit), "COMMIT"},
    {offsetof(store_t, st_rollback), "ROLLBACK"},
    {offsetof(store_t, st_insert),
     "INSERT INTO messages (id, room, kind, sender, recipient, text, ts)"
     " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"},
    /* A page is the ids in (lo, hi) of one room, newest limit of them. The
     * bound is the (limit+1)-th newest id of the range: when it exists there
     * is more, and the page is (bound, hi). Both are walks of the
     * (room, id) index, with no sort. */
    {offsetof(store_t, st_bound), "SELECT id FROM messages WHERE room = ?1 AND id > ?2 AND id < ?3"
                                  " ORDER BY id DESC LIMIT 1 OFFSET ?4"},
    {offsetof(store_t, st_rows),
     "SELECT id, ts, kind, room, sender, recipient, text, edited_ts, deleted FROM messages"
     " WHERE room = ?1 AND id > ?2 AND id < ?3 ORDER BY id ASC LIMIT ?4"},
    /* Ids only grow within a batch and across batches, but a conversation
     * row may have been written by the migration or another process: never
     * move last_id back. */
    {offsetof(store_t, st_conv_upsert),
     "INSERT INTO conversations (owner, key, with_nick, last_id) VALUES (?1, ?2, ?3, ?4)"
     " ON CONFLICT (owner, key) DO UPDATE SET with_nick = excluded.with_nick,"
     " last_id = excluded.last_id WHERE excluded.last_id > conversations.last_id"},
};

static sqlite3_stmt **loop_stmt(store_t *st, size_t i) {
    return (sqlite3_stmt **)((char *)st + loop_stmts[i].offset);
}

static int prepare_all(store_t *st) {
    int rc = SQLITE_OK;
    for (size_t i = 0; rc == SQLITE_OK && i < sizeof(loop_stmts) / sizeof(loop_stmts[0]); i++)
        rc = prepare(st, loop_stmts[i].sql, loop_stmt(st, i));
    if (rc == SQLITE_OK)
        rc = store__accounts_prepare(st);
    return rc;
}

/* Reads the largest id ever handed out, which sqlite_sequence keeps whether
 * or not that message still exists. */
static int load_last_id(store_t *st) {
    sqlite3_stmt *s;
    int rc = sqlite3_prepare_v2(st->db, "SELECT seq FROM sqlite_sequence WHERE name = 'messages'",
                                -1, &s, NULL);
    if (rc == SQLITE_OK) {
        rc = sqlite3_step(s);
        if (rc == SQLITE_ROW && sqlite3_column_int64(s, 0) > st->last_id)
            st->last_id = sqlite3_column_int64(s, 0);
        rc = rc == SQLITE_ROW || rc == SQLITE_DONE ? SQLITE_OK : rc;
    }
    sqlite3_finalize(s);
    return rc;
}

static int open_fail(store_t *st, int rc, const char *what, char *err, size_t errlen) {
    char why[512];
    store__reason(st->db, rc, why, sizeof(why));
    if (what != NULL)
        store__err(st, err, errlen, "%s: %s", what, why);
    else
        store__err(st, err, errlen, "%s", why);
    switch (rc & 0xff) {
    case SQLITE_NOTADB:
    case SQLITE_CORRUPT:
        return STORE_E_CORRUPT;
    case SQLITE_NOMEM:
    case SQLITE_ERROR:
    case SQLITE_MISUSE:
        return STORE_E_INTERNAL;
    default:
        return STORE_E_CANTOPEN;
    }
}

static int open_db(store_t *st, const store_config_t *cfg, char *err, size_t errlen) {
    int rc =
        sqlite3_open_v2(st->path, &st->db,
                        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_EXRESCODE, NULL);
    if (rc != SQLITE_OK)
        return open_fail(st, rc, "cannot open", err, errlen);
    /* SQLite silently opens a write-protected file read-only. */
    if (sqlite3_db_readonly(st->db, "main") == 1) {
        store__err(st, err, errlen, "cannot open for writing: the file is read-only");
        return STORE_E_CANTOPEN;
    }
    /* sqlite3_open_v2 has created the file (it reads nothing yet). */
    if (!st->shared) {
        int ret = lock_file(st, err, errlen);
        if (ret != 0)
            return ret;
    }
    sqlite3_busy_timeout(st->db,
                         (int)(cfg->busy_timeout_ms > INT_MAX ? INT_MAX : cfg->busy_timeout_ms));

    /* The first statement is the first read of the file: a file that is
     * not a database fails here. */
    if (!st->shared) {
        sqlite3_stmt *s;
        rc = sqlite3_prepare_v2(st->db, "PRAGMA journal_mode = WAL", -1, &s, NULL);
        if (rc == SQLITE_OK)
            rc = sqlite3_step(s);
        if (rc == SQLITE_ROW) {
            const char *mode = (const char *)sqlite3_column_text(s, 0);
            if (mode == NULL || strcmp(mode, "wal") != 0) {
                store__err(st, err, errlen, "cannot use WAL mode (journal mode is %s)",
                           mode ? mode : "?");
                sqlite3_finalize(s);
                return STORE_E_CANTOPEN;
            }
            rc = SQLITE_OK;
        }
        sqlite3_finalize(s);
        if (rc != SQLITE_OK)
            return open_fail(st, rc, NULL, err, errlen);
    }
    /* NORMAL in WAL mode: see store_config_t.sync_full. Checkpoints still
     * fsync, and they run on the maintenance thread once it is started.
     * journal_size_limit truncates a WAL that a burst made large. */
    rc = sqlite3_exec(st->db,
                      st->sync_full ? "PRAGMA synchronous = FULL; PRAGMA journal_size_limit = "
                                      "67108864"
                                    : "PRAGMA synchronous = NORMAL; PRAGMA journal_size_limit = "
                                      "67108864",
                      NULL, NULL, NULL);
    if (rc != SQLITE_OK)
        return open_fail(st, rc, NULL, err, errlen);

    /* tokens.account must name an account (store_token_add relies on it).
     * Per connection, and outside any transaction. */
    rc = sqlite3_exec(st->db, "PRAGMA foreign_keys = ON", NULL, NULL, NULL);
    if (rc != SQLITE_OK)
        return open_fail(st, rc, NULL, err, errlen);
    /* Erasure (store_search.h): freed space is zeroed, and the search
     * index's tokenizer is there before the schema needs it. */
    rc = store__search_setup(st->db);
    if (rc != SQLITE_OK)
        return open_fail(st, rc, "setting up search", err, errlen);

    if (!cfg->skip_check && !st->shared) {
        int ret = check_integrity(st, err, errlen);
        if (ret != 0)
            return ret;
    }
    int ret = schema_migrate(st, err, errlen);
    if (ret != 0)
        return ret;

    if (cfg->max_bytes > 0) {
        int page_size = 4096;
        rc = pragma_int(st->db, "PRAGMA page_size", &page_size);
        uint64_t pages = cfg->max_bytes / (uint64_t)(page_size > 0 ? page_size : 4096);
        char sql[80];
        snprintf(sql, sizeof(sql), "PRAGMA max_page_count = %" PRIu64, pages ? pages : 1);
        if (rc == SQLITE_OK)
            rc = sqlite3_exec(st->db, sql, NULL, NULL, NULL);
        if (rc != SQLITE_OK)
            return open_fail(st, rc, NULL, err, errlen);
    }
    rc = load_last_id(st);
    if (rc == SQLITE_OK)
        rc = prepare_all(st);
    if (rc != SQLITE_OK)
        return open_fail(st, rc, "preparing statements", err, errlen);
    return 0;
}

static void finalize_loop_stmts(store_t *st) {
    for (size_t i = 0; i < sizeof(loop_stmts) / sizeof(loop_stmts[0]); i++) {
        sqlite3_finalize(*loop_stmt(st, i));
        *loop_stmt(st, i) = NULL;
    }
    store__accounts_finalize(st);
}

static void store_free(store_t *st) {
    store__redis_close(st);
    finalize_loop_stmts(st);
    if (st->db != NULL)
        sqlite3_close(st->db);
    if (st->lock_fd >= 0)
        close(st->lock_fd);
    pthread_cond_destroy(&st->ctl_cv);
    pthread_mutex_destroy(&st->ctl_mu);
    pthread_mutex_destroy(&st->write_mu);
    free(st->path);
    free(st);
}

int store_open(const store_config_t *cfg, store_t **out, char *err, size_t errlen) {
    *out = NULL;
    if (err != NULL && errlen > 0)
        err[0] = '\0';
    const char *path = cfg->path != NULL ? cfg->path : STORE_DEFAULT_PATH;
    if (path[0] == '\0') {
        if (err != NULL && errlen > 0)
            snprintf(err, errlen, "database path is empty");
        return STORE_E_INVALID;
    }
    store_t *st = xcalloc(1, sizeof(*st));
    st->path = xstrdup(path);
    st->lock_fd = -1;
    st->shared = strcmp(path, ":memory:") == 0;
    st->sync_full = cfg->sync_full;
    pthread_mutex_init(&st->write_mu, NULL);
    pthread_mutex_init(&st->ctl_mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&st->ctl_cv, &ca);
    pthread_condattr_destroy(&ca);
    atomic_init(&st->stop, false);
    atomic_init(&st->want_checkpoint, false);

    int ret = st->shared ? 0 : ensure_parent_dir(st, err, errlen);
    if (ret == 0)
        ret = open_db(st, cfg, err, errlen);
    if (ret == 0 && cfg->redis != NULL)
        ret = store__redis_open(st, cfg->redis);
    if (ret != 0) {
        store_free(st);
        return ret;
    }
    *out = st;
    return 0;
}

void store_close(store_t *st) {
    if (st == NULL)
        return;
    assert(!st->async && "store_async_stop before store_close");
    store_maint_stop(st);
    store__maint_close(st);
    store_free(st);
}

/* ------------------------------------------------------------------------ */
/* Writing */

bool store__msg_is_valid(const store_msg_t *m) {
    if (m->room == NULL || m->room_len == 0 || m->from == NULL || m->from_len == 0)
        return false;
    if (m->text == NULL && m->text_len > 0)
        return false;
    if (m->room_len > INT_MAX || m->from_len > INT_MAX || m->to_len > INT_MAX ||
        m->text_len > INT_MAX)
        return false;
    if (m->kind == STORE_KIND_ROOM) {
        char key[STORE_ROOM_MAX + 1];
        return m->to == NULL && store_room_key(m->room, m->room_len, key, sizeof(key)) > 0;
    }
    /* Nicks are bounded: the conversation rows are keyed by them. */
    return m->kind == STORE_KIND_PRIVATE && m->to != NULL && m->to_len > 0 &&
           m->to_len <= STORE_NICK_MAX && m->from_len <= STORE_NICK_MAX;
}

/* One side's row of a private message's conversation: owner's list gets
 * key, with the other side as spelled. */
static int conv_upsert(store_t *st, const char *owner, size_t owner_len, const store_msg_t *m,
                       const char *with, size_t with_len) {
    char key[STORE_NICK_MAX];
    store__ascii_lower(key, owner, owner_len);
    sqlite3_stmt *s = st->st_conv_upsert;
    sqlite3_bind_text(s, 1, key, (int)owner_len, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, m->room, (int)m->room_len, SQLITE_STATIC);
    sqlite3_bind_text(s, 3, with, (int)with_len, SQLITE_STATIC);
    sqlite3_bind_int64(s, 4, m->id);
    return store__step_done(s);
}

static int insert_one(store_t *st, const store_msg_t *m) {
    sqlite3_stmt *s = st->st_insert;
    /* A room row is stored under its key; checked by store__msg_is_valid. */
    char key[STORE_ROOM_MAX + 1];
    const char *room = m->room;
    size_t room_len = m->room_len;
    if (m->kind == STORE_KIND_ROOM) {
        int n = store_room_key(m->room, m->room_len, key, sizeof(key));
        if (n < 0)
            return SQLITE_MISUSE;
        room = key;
        room_len = (size_t)n;
    }
    /* SQLITE_STATIC: the strings outlive the step, and every parameter is
     * bound again on the next call. */
    sqlite3_bind_int64(s, 1, m->id);
    sqlite3_bind_text(s, 2, room, (int)room_len, SQLITE_STATIC);
    sqlite3_bind_int(s, 3, (int)m->kind);
    sqlite3_bind_text(s, 4, m->from, (int)m->from_len, SQLITE_STATIC);
    if (m->to != NULL)
        sqlite3_bind_text(s, 5, m->to, (int)m->to_len, SQLITE_STATIC);
    else
        sqlite3_bind_null(s, 5);
    sqlite3_bind_text(s, 6, m->text != NULL ? m->text : "", (int)m->text_len, SQLITE_STATIC);
    sqlite3_bind_int64(s, 7, m->ts);
    int rc = store__step_done(s);
    /* The conversation lists change with the message, in its transaction. */
    if (rc == SQLITE_OK && m->kind == STORE_KIND_PRIVATE)
        rc = conv_upsert(st, m->from, m->from_len, m, m->to, m->to_len);
    if (rc == SQLITE_OK && m->kind == STORE_KIND_PRIVATE)
        rc = conv_upsert(st, m->to, m->to_len, m, m->from, m->from_len);
    return rc;
}

/* A failed append is logged as an error at most once per
 * STORE_LOG_EVERY_MS, with the count of those left out (at debug level)
 * since the previous line: a full disk under load fails every loop
 * iteration, and a nearly full one fails and recovers in turn. */
static void note_append_failure(store_t *st, size_t n, const char *why) {
    uint64_t now = store__mono_ms();
    st->failed_since_ok++;
    if (!store__log_allow(&st->log_append_fail, now)) {
        tt_log_debug("store: %s: cannot store %zu message(s): %s", st->path, n, why);
        return;
    }
    uint64_t more = st->log_append_fail.unlogged - 1;
    if (more == 0)
        tt_log_error("store: %s: cannot store %zu message(s): %s", st->path, n, why);
    else
        tt_log_error("store: %s: cannot store %zu message(s): %s (%" PRIu64
                     " more failed commit(s) since the last such line)",
                     st->path, n, why, more);
    store__log_done(&st->log_append_fail, now);
}

/* The first success after failures says so, with the same limit; when the
 * limit holds it back, a later success says it (the count goes on). */
static void note_append_success(store_t *st) {
    uint64_t now = store__mono_ms();
    if (now < st->log_append_ok.next_ms)
        return;
    tt_log_info("store: %s: writing again (%" PRIu64 " failed commit(s) since the last such line)",
                st->path, st->failed_since_ok);
    st->failed_since_ok = 0;
    store__log_done(&st->log_append_ok, now);
}

int store_append_batch(store_t *st, store_msg_t *msgs, size_t n) {
    assert(store__is_owner(st) && "the store belongs to its asynchronous front");
    /* Ids are decided before the transaction: the store's own are the next
     * after the previous one, exactly what AUTOINCREMENT would pick, and
     * binding them keeps one code path for both kinds. */
    int64_t prev = st->last_id;
    for (size_t i = 0; i < n; i++) {
        store_msg_t *m = &msgs[i];
        if (m->id == 0)
            m->id = prev + 1;
        if (!store__msg_is_valid(m) || m->id <= prev || m->id > STORE_ID_MAX) {
            for (size_t k = 0; k < n; k++)
                msgs[k].id = 0;
            return STORE_E_INVALID;
        }
        prev = m->id;
    }
    if (n == 0)
        return 0;

    pthread_mutex_lock(&st->write_mu);
    int rc = store__step_done(st->st_begin_write);
    for (size_t i = 0; rc == SQLITE_OK && i < n; i++)
        rc = insert_one(st, &msgs[i]);
    if (rc == SQLITE_OK)
        rc = store__step_done(st->st_commit);
    if (rc == SQLITE_OK) {
        pthread_mutex_unlock(&st->write_mu);
        st->last_id = prev;
        if (st->failed_since_ok > 0)
            note_append_success(st);
        return 0;
    }

    /* Keep SQLite's reason before ROLLBACK replaces it. SQLite may already
     * have rolled back by itself (e.g. after SQLITE_FULL in COMMIT). */
    char why[512];
    store__reason(st->db, rc, why, sizeof(why));
    if (!sqlite3_get_autocommit(st->db))
        store__step_done(st->st_rollback);
    /* An id already taken means another process wrote to the file: catch
     * up with it, so that the next batch can succeed. */
    if ((rc & 0xff) == SQLITE_CONSTRAINT)
        load_last_id(st);
    pthread_mutex_unlock(&st->write_mu);
    for (size_t i = 0; i < n; i++)
        msgs[i].id = 0;
    note_append_failure(st, n, why);
    return store__map_rc(rc);
}

int64_t store_last_id(const store_t *st) {
    return st->last_id;
}

int store_reserve_ids(store_t *st, int64_t upto) {
    assert(store__is_owner(st) && "the store belongs to its asynchronous front");
    if (upto <= 0 || upto > STORE_ID_MAX)
        return STORE_E_INVALID;
    char sql[512];
    /* sqlite_sequence has no key: update the row, or add it for a new file. */
    snprintf(sql, sizeof(sql),
             "BEGIN IMMEDIATE;"
             "UPDATE sqlite_sequence SET seq = %lld WHERE name = 'messages' AND seq < %lld;"
             "INSERT INTO sqlite_sequence(name, seq) SELECT 'messages', %lld"
             " WHERE NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = 'messages');"
             "COMMIT;",
             (long long)upto, (long long)upto, (long long)upto);
    pthread_mutex_lock(&st->write_mu);
    char *msg = NULL;
    int rc = sqlite3_exec(st->db, sql, NULL, NULL, &msg);
    if (rc != SQLITE_OK && !sqlite3_get_autocommit(st->db))
        sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
    pthread_mutex_unlock(&st->write_mu);
    if (rc != SQLITE_OK) {
        tt_log_error("store: %s: cannot reserve ids: %s", st->path, msg ? msg : "?");
        sqlite3_free(msg);
        return store__map_rc(rc);
    }
    return 0;
}

void store__ascii_lower(char *dst, const char *src, size_t len) {
    /* Not tolower(): the folding must not depend on the locale. */
    for (size_t i = 0; i < len; i++) {
        char c = src[i];
        dst[i] = c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
    }
}

int store_room_key(const char *name, size_t len, char *buf, size_t cap) {
    if (name == NULL || len > STORE_ROOM_MAX)
        return STORE_E_INVALID;
    if (len > 0 && name[0] == '#') {
        name++;
        len--;
    }
    if (len == 0 || name[0] == '@' || cap <= len)
        return STORE_E_INVALID;
    store__ascii_lower(buf, name, len);
    buf[len] = '\0';
    return (int)len;
}

int store__key(const char *key, size_t len, char *buf, const char **out, size_t *out_len) {
    if (key != NULL && len > 0 && key[0] == '@') {
        if (len > INT_MAX)
            return STORE_E_INVALID;
        *out = key;
        *out_len = len;
        return 0;
    }
    int n = store_room_key(key, len, buf, STORE_ROOM_MAX + 1);
    if (n < 0)
        return n;
    *out = buf;
    *out_len = (size_t)n;
    return 0;
}

int store_dm_key(const char *a, const char *b, char *buf, size_t cap) {
    size_t la = a ? strlen(a) : 0, lb = b ? strlen(b) : 0;
    if (la == 0 || lb == 0 || cap < la + lb + 3 || la + lb + 2 > INT_MAX)
        return STORE_E_INVALID;
    if (strcasecmp(a, b) > 0) {
        const char *t = a;
        a = b;
        b = t;
        size_t tl = la;
        la = lb;
        lb = tl;
    }
    size_t k = 0;
    buf[k++] = '@';
    for (size_t i = 0; i < la; i++)
        buf[k++] = (char)tolower((unsigned char)a[i]);
    buf[k++] = '@';
    for (size_t i = 0; i < lb; i++)
        buf[k++] = (char)tolower((unsigned char)b[i]);
    buf[k] = '\0';
    return (int)k;
}

/* ------------------------------------------------------------------------ */
/* Reading */

/* Hands one row to cb; SQLITE_NOMEM if SQLite could not convert a column. */
static int deliver_row(sqlite3_stmt *s, store_rec_cb cb, void *ctx) {
    store_rec_t r;
    r.id = sqlite3_column_int64(s, 0);
    r.ts = sqlite3_column_int64(s, 1);
    r.kind = sqlite3_column_int(s, 2) == STORE_KIND_PRIVATE ? STORE_KIND_PRIVATE : STORE_KIND_ROOM;
    r.room = (const char *)sqlite3_column_text(s, 3);
    r.room_len = (size_t)sqlite3_column_bytes(s, 3);
    r.from = (const char *)sqlite3_column_text(s, 4);
    r.from_len = (size_t)sqlite3_column_bytes(s, 4);
    r.to = NULL;
    r.to_len = 0;
    if (sqlite3_column_type(s, 5) != SQLITE_NULL) {
        r.to = (const char *)sqlite3_column_text(s, 5);
        r.to_len = (size_t)sqlite3_column_bytes(s, 5);
        if (r.to == NULL)
            return SQLITE_NOMEM;
    }
    r.text = (const char *)sqlite3_column_text(s, 6);
    r.text_len = (size_t)sqlite3_column_bytes(s, 6);
    if (r.room == NULL || r.from == NULL || r.text == NULL)
        return SQLITE_NOMEM;
    r.edited_ts = sqlite3_column_int64(s, 7);
    r.deleted = sqlite3_column_int(s, 8) != 0;
    cb(ctx, &r);
    return SQLITE_OK;
}

/* A range is read in one snapshot so that the bound and the page agree
 * even while the maintenance thread deletes. */
int store_range(store_t *st, const char *room, size_t room_len, int64_t after_id, int64_t before_id,
                unsigned limit, store_rec_cb cb, void *ctx, bool *more) {
    if (more != NULL)
        *more = false;
    assert(store__is_owner(st) && "the store belongs to its asynchronous front");
    char key[STORE_ROOM_MAX + 1];
    if (cb == NULL || after_id < 0 || before_id < 0 ||
        store__key(room, room_len, key, &room, &room_len) != 0)
        return STORE_E_INVALID;
    if (st->redis != NULL && room[0] == '@')
        return store__redis_dm_range(st, room, room_len, after_id, before_id, limit, cb, ctx, more);
    int64_t lo = after_id, hi = before_id == 0 ? INT64_MAX : before_id;
    if (st->shared)
        pthread_mutex_lock(&st->write_mu);

    int count = 0;
    bool has_more = false;
    int rc = store__step_done(st->st_begin_read);
    if (rc == SQLITE_OK) {
        sqlite3_stmt *b = st->st_bound;
        sqlite3_bind_text(b, 1, room, (int)room_len, SQLITE_STATIC);
        sqlite3_bind_int64(b, 2, lo);
        sqlite3_bind_int64(b, 3, hi);
        sqlite3_bind_int64(b, 4, (sqlite3_int64)limit);
        rc = sqlite3_step(b);
        if (rc == SQLITE_ROW) {
            has_more = true;
            lo = sqlite3_column_int64(b, 0);
            rc = SQLITE_OK;
        } else if (rc == SQLITE_DONE) {
            rc = SQLITE_OK;
        }
        sqlite3_reset(b);
    }
    if (rc == SQLITE_OK && limit > 0) {
        sqlite3_stmt *s = st->st_rows;
        sqlite3_bind_text(s, 1, room, (int)room_len, SQLITE_STATIC);
        sqlite3_bind_int64(s, 2, lo);
        sqlite3_bind_int64(s, 3, hi);
        sqlite3_bind_int64(s, 4, (sqlite3_int64)limit);
        while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
            rc = deliver_row(s, cb, ctx);
            if (rc != SQLITE_OK)
                break;
            count++;
        }
        rc = rc == SQLITE_DONE ? SQLITE_OK : rc;
        sqlite3_reset(s);
    }
    /* SQLite's reason is taken before the mutex goes: a shared connection
     * is the maintenance thread's as soon as it is released. */
    char why[512] = "";
    if (rc != SQLITE_OK)
        store__reason(st->db, rc, why, sizeof(why));
    if (!sqlite3_get_autocommit(st->db)) {
        int rc2 = store__step_done(rc == SQLITE_OK ? st->st_commit : st->st_rollback);
        if (rc == SQLITE_OK) {
            rc = rc2;
            if (rc != SQLITE_OK)
                store__reason(st->db, rc, why, sizeof(why));
        }
    }
    if (st->shared)
        pthread_mutex_unlock(&st->write_mu);
    if (rc != SQLITE_OK) {
        /* Reads fail together (a join and a history request each read):
         * the same limit as for appends. */
        uint64_t now = store__mono_ms();
        if (store__log_allow(&st->log_read_fail, now)) {
            tt_log_error("store: %s: cannot read the history of %.*s: %s (%" PRIu64
                         " more failed read(s) since the last such line)",
                         st->path, (int)room_len, room, why, st->log_read_fail.unlogged - 1);
            store__log_done(&st->log_read_fail, now);
        }
        return store__map_rc(rc);
    }
    if (more != NULL)
        *more = has_more;
    return count;
}

int store_history(store_t *st, const char *room, int64_t before_id, unsigned limit, store_rec_cb cb,
                  void *ctx, bool *more) {
    return store_range(st, room, room ? strlen(room) : 0, 0, before_id, limit, cb, ctx, more);
}

int store_since(store_t *st, const char *room, int64_t after_id, unsigned limit, store_rec_cb cb,
                void *ctx, bool *more) {
    return store_range(st, room, room ? strlen(room) : 0, after_id, 0, limit, cb, ctx, more);
}

int store_last(store_t *st, const char *room, unsigned n, store_rec_cb cb, void *ctx) {
    return store_range(st, room, room ? strlen(room) : 0, 0, 0, n, cb, ctx, NULL);
}
