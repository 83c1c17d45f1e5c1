/* Unit tests of src/store/store_mod.c: a room's row written, replaced and
 * dropped; bans by room and server-wide, by nickname (folded) and address,
 * replaced and lifted; ended bans deleted at load; the audit log read back
 * by scope, oldest first, paged, and cut to its newest STORE_AUDIT_KEEP;
 * bad arguments refused. */
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "core/log.h"
#include "store/store.h"
#include "store/store_mod.h"
#include "store_test.h"

#define NOW INT64_C(1790000000000)

typedef struct {
    int nrooms, nbans;
    char room[8][CHAT_ROOM_MAX + 1];
    char owner[8][CHAT_NICK_MAX + 1];
    char ops[8][256];
    char topic[8][64];
    char ban_room[8][CHAT_ROOM_MAX + 1]; /* "" server-wide */
    char ban_target[8][64];
    bool ban_address[8];
    int64_t ban_until[8];
    char ban_reason[8][64];
} loaded_t;

static void cp(char *dst, size_t cap, const char *s, size_t len) {
    snprintf(dst, cap, "%.*s", (int)len, s ? s : "");
}

static void on_room(void *arg, const chat_mod_room_t *r) {
    loaded_t *l = arg;
    assert_true(l->nrooms < 8);
    int i = l->nrooms++;
    cp(l->room[i], sizeof(l->room[i]), r->name, r->name_len);
    cp(l->owner[i], sizeof(l->owner[i]), r->owner, r->owner_len);
    cp(l->ops[i], sizeof(l->ops[i]), r->ops, r->ops_len);
    cp(l->topic[i], sizeof(l->topic[i]), r->topic, r->topic_len);
}

static void on_ban(void *arg, const chat_mod_ban_t *b) {
    loaded_t *l = arg;
    assert_true(l->nbans < 8);
    int i = l->nbans++;
    cp(l->ban_room[i], sizeof(l->ban_room[i]), b->room, b->room_len);
    cp(l->ban_target[i], sizeof(l->ban_target[i]), b->target, b->target_len);
    l->ban_address[i] = b->address;
    l->ban_until[i] = b->until;
    cp(l->ban_reason[i], sizeof(l->ban_reason[i]), b->reason, b->reason_len);
}

static loaded_t load(store_t *st, int64_t now) {
    loaded_t l;
    memset(&l, 0, sizeof(l));
    assert_int_equal(store_mod_load(st, now, on_room, on_ban, &l), 0);
    return l;
}

#define S(x) (x), strlen(x)

/* One integer SQL answers, on a connection of its own. */
static int count_of(const char *path, const char *sql) {
    sqlite3 *db;
    sqlite3_stmt *s;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &s, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(s), SQLITE_ROW);
    int n = sqlite3_column_int(s, 0);
    sqlite3_finalize(s);
    sqlite3_close(db);
    return n;
}

static void write_room(store_t *st, const char *name, const char *owner, const char *ops,
                       const char *topic, bool drop) {
    chat_mod_room_t r = {.name = name, .name_len = strlen(name)};
    if (owner) {
        r.owner = owner;
        r.owner_len = strlen(owner);
    }
    if (ops) {
        r.ops = ops;
        r.ops_len = strlen(ops);
    }
    if (topic) {
        r.topic = topic;
        r.topic_len = strlen(topic);
        r.topic_by = "ana";
        r.topic_by_len = 3;
        r.topic_ts = NOW;
    }
    chat_mod_write_t w = {.room = &r, .room_drop = drop};
    assert_int_equal(store_mod_write(st, &w), 0);
}

static void write_ban(store_t *st, const char *room, bool address, const char *target,
                      int64_t until, const char *reason, bool drop) {
    chat_mod_ban_t b = {.room = room,
                        .room_len = room ? strlen(room) : 0,
                        .address = address,
                        .target = target,
                        .target_len = strlen(target),
                        .until = until,
                        .ts = NOW,
                        .by = "ana",
                        .by_len = 3,
                        .reason = reason,
                        .reason_len = reason ? strlen(reason) : 0};
    chat_mod_write_t w = {.ban = &b, .ban_drop = drop};
    assert_int_equal(store_mod_write(st, &w), 0);
}

static void test_rooms_written_replaced_dropped(void **state) {
    (void)state;
    store_t *st = open_or_fail(tmp_path("rooms.db"));
    write_room(st, "#Swift-Dev", "ana", "ben cleo", "Swift", false);
    write_room(st, "lobby", "ben", NULL, NULL, false);
    /* The same room in another spelling: one row, the new spelling. */
    write_room(st, "#swift-DEV", "ana", "ben", NULL, false);
    loaded_t l = load(st, NOW);
    assert_int_equal(l.nrooms, 2);
    int sw = strcmp(l.room[0], "#swift-DEV") == 0 ? 0 : 1;
    assert_string_equal(l.room[sw], "#swift-DEV");
    assert_string_equal(l.owner[sw], "ana");
    assert_string_equal(l.ops[sw], "ben");
    assert_string_equal(l.topic[sw], "");
    assert_string_equal(l.owner[1 - sw], "ben");
    write_room(st, "lobby", NULL, NULL, NULL, true);
    l = load(st, NOW);
    assert_int_equal(l.nrooms, 1);
    store_close(st);
}

static void test_bans_by_scope_target_and_time(void **state) {
    (void)state;
    store_t *st = open_or_fail(tmp_path("bans.db"));
    write_room(st, "#r", "ana", NULL, NULL, false);
    write_ban(st, "#r", false, "Sam", 0, "spam", false);
    write_ban(st, "#R", false, "sam", NOW + 1000, "again", false); /* the same ban, replaced */
    write_ban(st, NULL, false, "eve", 0, NULL, false);
    write_ban(st, NULL, true, "203.0.113.7", NOW + 10, NULL, false);
    /* A ban for a room that keeps no row is not loaded. */
    write_ban(st, "#gone", false, "x", 0, NULL, false);
    loaded_t l = load(st, NOW);
    assert_int_equal(l.nbans, 3);
    for (int i = 0; i < l.nbans; i++) {
        if (strcmp(l.ban_target[i], "sam") == 0) {
            assert_string_equal(l.ban_room[i], "#r");
            assert_int_equal(l.ban_until[i], NOW + 1000);
            assert_string_equal(l.ban_reason[i], "again");
        } else if (l.ban_address[i]) {
            assert_string_equal(l.ban_target[i], "203.0.113.7");
            assert_string_equal(l.ban_room[i], "");
        } else {
            assert_string_equal(l.ban_target[i], "eve");
        }
    }
    /* Later: the ended ones are deleted when loading. */
    l = load(st, NOW + 100);
    assert_int_equal(l.nbans, 2);
    assert_int_equal(count_of(tmp_path("bans.db"), "SELECT count(*) FROM bans WHERE address = 1"),
                     0);
    write_ban(st, "#r", false, "SAM", 0, NULL, true);
    write_ban(st, NULL, false, "Eve", 0, NULL, true);
    l = load(st, NOW + 100);
    assert_int_equal(l.nbans, 0);
    store_close(st);
}

typedef struct {
    int n;
    uint64_t id[STORE_AUDIT_READ_MAX];
    char action[STORE_AUDIT_READ_MAX][16];
    char target[STORE_AUDIT_READ_MAX][16];
} audit_got_t;

static void on_entry(void *ctx, const chat_audit_t *e) {
    audit_got_t *g = ctx;
    g->id[g->n] = e->id;
    cp(g->action[g->n], sizeof(g->action[0]), e->action, e->action_len);
    cp(g->target[g->n], sizeof(g->target[0]), e->target, e->target_len);
    g->n++;
}

static void audit(store_t *st, const char *room, const char *action, const char *target) {
    chat_audit_t a = {.ts = NOW,
                      .room = room,
                      .room_len = room ? strlen(room) : 0,
                      .by = "ana",
                      .by_len = 3,
                      .action = action,
                      .action_len = strlen(action),
                      .target = target,
                      .target_len = target ? strlen(target) : 0};
    chat_mod_write_t w = {.audit = &a};
    assert_int_equal(store_mod_write(st, &w), 0);
}

static void test_audit_by_scope_paged_and_kept(void **state) {
    (void)state;
    const char *path = tmp_path("audit.db");
    store_t *st = open_or_fail(path);
    audit(st, "#r", "create", NULL);
    audit(st, "#R", "kick", "sam");
    audit(st, NULL, "ban", "eve");
    audit(st, "r", "ban", "sam");
    audit_got_t g = {0};
    bool more = true;
    assert_int_equal(store_audit_read(st, S("#r"), 0, 10, on_entry, &g, &more), 0);
    assert_int_equal(g.n, 3);
    assert_false(more);
    assert_string_equal(g.action[0], "create");
    assert_string_equal(g.action[2], "ban");
    assert_string_equal(g.target[1], "sam");
    assert_true(g.id[0] < g.id[1] && g.id[1] < g.id[2]);
    audit_got_t p = {0};
    assert_int_equal(store_audit_read(st, S("#r"), g.id[2], 1, on_entry, &p, &more), 0);
    assert_int_equal(p.n, 1);
    assert_true(more);
    assert_string_equal(p.action[0], "kick");
    audit_got_t srv = {0};
    assert_int_equal(store_audit_read(st, NULL, 0, 0, 5, on_entry, &srv, &more), 0);
    assert_int_equal(srv.n, 1);
    assert_string_equal(srv.target[0], "eve");
    /* Only the newest STORE_AUDIT_KEEP of a scope stay. */
    assert_int_equal(raw_exec(path, "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1"
                                    " FROM n WHERE i < 10005) INSERT INTO audit (scope, ts,"
                                    " actor, action) SELECT 'big', i, 'x', 'kick' FROM n"),
                     SQLITE_OK);
    audit(st, "big", "ban", "last");
    assert_int_equal(count_of(path, "SELECT count(*) FROM audit WHERE scope = 'big'"),
                     STORE_AUDIT_KEEP);
    assert_int_equal(store_audit_read(st, S("big"), 0, 0, on_entry, &g, &more), STORE_E_INVALID);
    assert_int_equal(store_audit_read(st, S("#"), 0, 1, on_entry, &g, &more), STORE_E_INVALID);
    store_close(st);
}

int main(void) {
    tt_log_set_level(TT_LOG_WARN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rooms_written_replaced_dropped),
        cmocka_unit_test(test_bans_by_scope_target_and_time),
        cmocka_unit_test(test_audit_by_scope_paged_and_kept),
    };
    return cmocka_run_group_tests(tests, setup_tmpdir, teardown_tmpdir);
}
