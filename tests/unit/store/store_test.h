/* What the store's unit tests share: a temporary directory for the test
 * program's databases (made by setup_tmpdir, removed with everything in it
 * by teardown_tmpdir: cmocka's group setup and teardown), paths in it,
 * opening a store or failing the test, and SQL run on a file behind the
 * store's back. Included by the test files after <cmocka.h>; static
 * inline, so a file uses what it needs. */
#ifndef TT_TESTS_UNIT_STORE_STORE_TEST_H
#define TT_TESTS_UNIT_STORE_STORE_TEST_H

#include <ftw.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "store/store.h"
#include "store/store_int.h"

static char tmpdir[64];

static inline int store_test_rm_entry(const char *path, const struct stat *sb, int flag,
                                      struct FTW *ftw) {
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static inline int setup_tmpdir(void **state) {
    (void)state;
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/tt-store-test-XXXXXX");
    return mkdtemp(tmpdir) == NULL ? -1 : 0;
}

static inline int teardown_tmpdir(void **state) {
    (void)state;
    nftw(tmpdir, store_test_rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    return 0;
}

/* tmpdir/name, in one of four rotating buffers (so a call may take two). */
static inline const char *tmp_path(const char *name) {
    static char buf[4][256];
    static int next;
    char *p = buf[next++ % 4];
    snprintf(p, 256, "%s/%s", tmpdir, name);
    return p;
}

/* Opens the store of cfg, or fails the test with the store's error. */
static inline store_t *open_cfg_or_fail(const store_config_t *cfg) {
    store_t *st = NULL;
    char err[512];
    int rc = store_open(cfg, &st, err, sizeof(err));
    if (rc != 0)
        fail_msg("store_open(%s): %d %s", cfg->path, rc, err);
    assert_non_null(st);
    return st;
}

/* The store at path with the default configuration. */
static inline store_t *open_or_fail(const char *path) {
    store_config_t cfg;
    store_config_defaults(&cfg);
    cfg.path = path;
    return open_cfg_or_fail(&cfg);
}

/* sql on its own connection to the file at path: SQLite's result. */
static inline int raw_exec(const char *path, const char *sql) {
    sqlite3 *db;
    int rc = sqlite3_open(path, &db);
    /* The search index's triggers need its tokenizer (store_search.c). */
    if (rc == SQLITE_OK)
        rc = store__search_setup(db);
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(db, sql, NULL, NULL, NULL);
    sqlite3_close(db);
    return rc;
}

#endif
