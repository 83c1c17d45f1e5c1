/* tertulia backup: a consistent copy of a live database with SQLite's
 * online backup API (store.h: store_backup). */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/xmalloc.h"
#include "store/store_int.h"

typedef struct backup_s {
    const char *path, *out;
    char *tmp; /* the copy until it is complete: out + ".partial" */
    sqlite3 *src, *dst;
    char *err;
    size_t errlen;
} backup_t;

static int backup_fail(backup_t *b, int ret, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int backup_fail(backup_t *b, int ret, const char *fmt, ...) {
    if (b->err != NULL && b->errlen > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(b->err, b->errlen, fmt, ap);
        va_end(ap);
    }
    return ret;
}

/* A failed SQLite call on db, about file. */
static int sqlite_fail(backup_t *b, sqlite3 *db, int rc, const char *file, const char *what) {
    char why[512];
    store__reason(db, rc, why, sizeof(why));
    int prim = rc & 0xff;
    int ret = prim == SQLITE_NOTADB || prim == SQLITE_CORRUPT ? STORE_E_CORRUPT
              : prim == SQLITE_CANTOPEN                       ? STORE_E_CANTOPEN
                                                              : store__map_rc(rc);
    return backup_fail(b, ret, "database \"%s\": %s: %s", file, what, why);
}

/* The single integer a query returns, or -1 with *rc set. */
static int64_t query_int(sqlite3 *db, const char *sql, int *rc) {
    sqlite3_stmt *s;
    int64_t v = -1;
    *rc = sqlite3_prepare_v2(db, sql, -1, &s, NULL);
    if (*rc == SQLITE_OK) {
        *rc = sqlite3_step(s);
        if (*rc == SQLITE_ROW) {
            v = sqlite3_column_int64(s, 0);
            *rc = SQLITE_OK;
        }
    }
    sqlite3_finalize(s);
    return v;
}

/* Opens the source and starts the read transaction that fixes the moment
 * copied; *messages is its count. Read-write (it writes nothing) so that,
 * when no server runs, closing it removes the -wal and -shm files it made:
 * left behind, owned by whoever ran the backup, they could keep the server's
 * own user from opening the database. Without write access to the file
 * SQLite opens it read-only. */
static int open_source(backup_t *b, int64_t *messages) {
    int rc = sqlite3_open_v2(b->path, &b->src, SQLITE_OPEN_READWRITE | SQLITE_OPEN_EXRESCODE, NULL);
    if (rc != SQLITE_OK)
        return sqlite_fail(b, b->src, rc, b->path, "cannot open");
    sqlite3_busy_timeout(b->src, 5000);
    rc = sqlite3_exec(b->src, "BEGIN", NULL, NULL, NULL);
    if (rc == SQLITE_OK)
        *messages = query_int(b->src, "SELECT count(*) FROM messages", &rc);
    if (rc != SQLITE_OK)
        return sqlite_fail(b, b->src, rc, b->path, "cannot read the messages");
    return 0;
}

/* Copies every page in steps, pausing between them. */
static int copy_pages(backup_t *b) {
    unlink(b->tmp); /* a copy an earlier run left unfinished */
    int rc = sqlite3_open_v2(
        b->tmp, &b->dst, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_EXRESCODE, NULL);
    if (rc != SQLITE_OK)
        return sqlite_fail(b, b->dst, rc, b->tmp, "cannot create");
    sqlite3_backup *bk = sqlite3_backup_init(b->dst, "main", b->src, "main");
    if (bk == NULL)
        return sqlite_fail(b, b->dst, sqlite3_errcode(b->dst), b->tmp, "cannot start the backup");
    do {
        rc = sqlite3_backup_step(bk, STORE_BACKUP_STEP_PAGES);
        if (rc == SQLITE_OK || rc == SQLITE_BUSY || rc == SQLITE_LOCKED)
            sqlite3_sleep(STORE_BACKUP_PAUSE_MS);
    } while (rc == SQLITE_OK || rc == SQLITE_BUSY || rc == SQLITE_LOCKED);
    sqlite3_backup_finish(bk);
    if (rc != SQLITE_DONE)
        return sqlite_fail(b, b->dst, rc, b->tmp, "backup");
    /* The moment is copied: the server's WAL may be checkpointed again. */
    sqlite3_exec(b->src, "COMMIT", NULL, NULL, NULL);
    return 0;
}

/* The copy as one file (no -wal beside it), checked and counted. */
static int check_copy(backup_t *b, int64_t messages) {
    int rc = sqlite3_exec(b->dst, "PRAGMA journal_mode = DELETE", NULL, NULL, NULL);
    if (rc != SQLITE_OK)
        return sqlite_fail(b, b->dst, rc, b->tmp, "cannot leave WAL mode");
    sqlite3_stmt *s;
    rc = sqlite3_prepare_v2(b->dst, "PRAGMA quick_check(1)", -1, &s, NULL);
    if (rc == SQLITE_OK && (rc = sqlite3_step(s)) == SQLITE_ROW) {
        const char *res = (const char *)sqlite3_column_text(s, 0);
        bool ok = res != NULL && strcmp(res, "ok") == 0;
        char first[256];
        snprintf(first, sizeof(first), "%s", res ? res : "?");
        sqlite3_finalize(s);
        if (!ok)
            return backup_fail(b, STORE_E_CORRUPT, "database \"%s\": the copy is damaged: %s",
                               b->tmp, first);
    } else {
        sqlite3_finalize(s);
        return sqlite_fail(b, b->dst, rc, b->tmp, "cannot check the copy");
    }
    int64_t n = query_int(b->dst, "SELECT count(*) FROM messages", &rc);
    if (rc != SQLITE_OK)
        return sqlite_fail(b, b->dst, rc, b->tmp, "cannot count the copy's messages");
    if (n != messages)
        return backup_fail(b, STORE_E_INTERNAL,
                           "database \"%s\": the copy holds %lld messages, the source %lld", b->tmp,
                           (long long)n, (long long)messages);
    return 0;
}

static int fsync_path(const char *path, int flags) {
    int fd = open(path, flags | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int r = fsync(fd);
    close(fd);
    return r;
}

/* The complete copy on disk, then under its name: renamed over out, or
 * linked where no out may be replaced (an out created meanwhile wins). */
static int publish(backup_t *b, bool overwrite) {
    if (fsync_path(b->tmp, O_RDONLY) != 0)
        return backup_fail(b, STORE_E_UNAVAILABLE, "\"%s\": cannot sync: %s", b->tmp,
                           strerror(errno));
    if (overwrite ? rename(b->tmp, b->out) != 0 : link(b->tmp, b->out) != 0) {
        int e = errno;
        if (e == EEXIST)
            return backup_fail(b, STORE_E_INVALID, "\"%s\" exists (--force replaces it)", b->out);
        return backup_fail(b, STORE_E_CANTOPEN, "\"%s\": %s", b->out, strerror(e));
    }
    if (!overwrite)
        unlink(b->tmp);
    char *copy = xstrdup(b->out);
    fsync_path(dirname(copy), O_RDONLY | O_DIRECTORY);
    free(copy);
    return 0;
}

int store_backup(const char *path, const char *out, bool overwrite, int64_t *messages, char *err,
                 size_t errlen) {
    backup_t b = {.path = path, .out = out, .err = err, .errlen = errlen};
    if (err != NULL && errlen > 0)
        err[0] = '\0';
    *messages = 0;
    if (path == NULL || path[0] == '\0' || strcmp(path, ":memory:") == 0 || out == NULL ||
        out[0] == '\0')
        return backup_fail(&b, STORE_E_INVALID,
                           "a backup needs a database file and an output file");
    struct stat st;
    if (!overwrite && stat(out, &st) == 0)
        return backup_fail(&b, STORE_E_INVALID, "\"%s\" exists (--force replaces it)", out);
    size_t n = strlen(out) + sizeof(".partial");
    b.tmp = xmalloc(n);
    snprintf(b.tmp, n, "%s.partial", out);
    int64_t count = 0;
    int r = open_source(&b, &count);
    bool made = false;
    if (r == 0) {
        made = true;
        r = copy_pages(&b);
    }
    if (r == 0)
        r = check_copy(&b, count);
    sqlite3_close(b.src);
    if (b.dst != NULL && sqlite3_close(b.dst) != SQLITE_OK && r == 0)
        r = backup_fail(&b, STORE_E_UNAVAILABLE, "database \"%s\": cannot close the copy", b.tmp);
    if (r == 0)
        r = publish(&b, overwrite);
    if (r != 0 && made)
        unlink(b.tmp);
    free(b.tmp);
    if (r == 0)
        *messages = count;
    return r;
}
