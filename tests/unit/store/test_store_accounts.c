/* Unit tests of src/store/store_accounts.c: accounts (unique without case,
 * hashes), login tokens (idle expiry with an injected clock, revoke, revoke
 * all, a password change that revokes in its own transaction, the chunked
 * housekeeping on the loop's connection and in the maintenance pass), read
 * markers (forward only, room keys folded), and conversation lists (kept by
 * store_append_batch in the message's transaction, newest first, unread
 * counts and their cap, the limit, retention). */
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
#include "store_test.h"

#define NOW INT64_C(1790000000000)
#define HOUR INT64_C(3600000)

/* ------------------------------------------------------------------------ */
/* Helpers */

static int64_t new_account(store_t *st, const char *nick, const char *hash) {
    store_account_t a;
    assert_int_equal(store_account_create(st, nick, strlen(nick), hash, NOW, &a), 0);
    assert_true(a.id > 0);
    return a.id;
}

/* A token's hash: 32 bytes from a number. */
static const uint8_t *tok(unsigned n) {
    static uint8_t buf[8][32];
    static unsigned next;
    uint8_t *h = buf[next++ % 8];
    memset(h, 0xa5, 32);
    memcpy(h, &n, sizeof(n));
    return h;
}

static int64_t dm(store_t *st, const char *from, const char *to, const char *text) {
    char key[2 * STORE_NICK_MAX + 3];
    assert_true(store_dm_key(from, to, key, sizeof(key)) > 0);
    store_msg_t m = {.kind = STORE_KIND_PRIVATE,
                     .room = key,
                     .room_len = strlen(key),
                     .from = from,
                     .from_len = strlen(from),
                     .to = to,
                     .to_len = strlen(to),
                     .text = text,
                     .text_len = strlen(text),
                     .ts = NOW};
    assert_int_equal(store_append_batch(st, &m, 1), 0);
    return m.id;
}

/* What store_conversations delivered, copied. */
typedef struct {
    int n;
    char with[16][STORE_NICK_MAX + 1];
    char key[16][2 * STORE_NICK_MAX + 3];
    int64_t last_id[16];
    uint32_t unread[16];
} convs_t;

static void on_conv(void *ctx, const store_conv_t *c) {
    convs_t *g = ctx;
    assert_true(g->n < 16);
    assert_int_equal(strlen(c->with), c->with_len);
    assert_int_equal(strlen(c->key), c->key_len);
    snprintf(g->with[g->n], sizeof(g->with[0]), "%s", c->with);
    snprintf(g->key[g->n], sizeof(g->key[0]), "%s", c->key);
    g->last_id[g->n] = c->last_id;
    g->unread[g->n] = c->unread;
    g->n++;
}

static convs_t list(store_t *st, int64_t account, const char *nick, unsigned limit) {
    convs_t g = {0};
    int n = store_conversations(st, account, nick, strlen(nick), limit, on_conv, &g);
    assert_int_equal(n, g.n);
    return g;
}

/* ------------------------------------------------------------------------ */
/* Accounts */

static void test_accounts_unique_without_case(void **state) {
    (void)state;
    store_t *st = open_or_fail(":memory:");
    store_account_t a, b;
    assert_int_equal(store_account_create(st, "Ana_B", 5, "$argon2id$v=19$h", NOW, &a), 0);
    assert_string_equal(a.nick, "Ana_B");
    assert_string_equal(a.hash, "$argon2id$v=19$h");
    assert_int_equal(a.created, NOW);
    assert_int_equal(a.updated, NOW);
    /* Taken in any case; the first stays as it was. */
    assert_int_equal(store_account_create(st, "ana_b", 5, "$other", NOW + 1, &b), STORE_E_EXISTS);
    assert_int_equal(store_account_create(st, "ANA_B", 5, NULL, NOW + 1, NULL), STORE_E_EXISTS);
    assert_int_equal(store_account_get(st, "aNa_b", 5, &b), 0);
    assert_int_equal(b.id, a.id);
    assert_string_equal(b.nick, "Ana_B");
    assert_string_equal(b.hash, "$argon2id$v=19$h");
    /* Without a password (an operator's token): "". */
    assert_int_equal(store_account_create(st, "op", 2, NULL, NOW, &b), 0);
    assert_true(b.id != a.id);
    assert_int_equal(store_account_get(st, "OP", 2, &b), 0);
    assert_string_equal(b.hash, "");
    assert_int_equal(store_account_get(st, "nobody", 6, &b), STORE_E_NOTFOUND);
    store_close(st);
}

static void test_accounts_refuse_malformed(void **state) {
    (void)state;
    store_t *st = open_or_fail(":memory:");
    char nick[STORE_NICK_MAX + 1];
    memset(nick, 'n', sizeof(nick));
    char hash[STORE_HASH_MAX + 1];
    memset(hash, 'h', sizeof(hash));
    hash[STORE_HASH_MAX] = '\0'; /* one too long */
    store_account_t a;
    assert_int_equal(store_account_create(st, nick, STORE_NICK_MAX + 1, NULL, NOW, &a),
                     STORE_E_INVALID);
    assert_int_equal(store_account_create(st, nick, 0, NULL, NOW, &a), STORE_E_INVALID);
    assert_int_equal(store_account_create(st, NULL, 3, NULL, NOW, &a), STORE_E_INVALID);
    assert_int_equal(store_account_create(st, "ana", 3, "", NOW, &a), STORE_E_INVALID);
    assert_int_equal(store_account_create(st, "ana", 3, hash, NOW, &a), STORE_E_INVALID);
    hash[STORE_HASH_MAX - 1] = '\0'; /* the longest that fits */
    assert_int_equal(store_account_create(st, nick, STORE_NICK_MAX, hash, NOW, &a), 0);
    assert_int_equal(store_account_get(st, nick, STORE_NICK_MAX, &a), 0);
    assert_int_equal(strlen(a.nick), STORE_NICK_MAX);
    assert_int_equal(strlen(a.hash), STORE_HASH_MAX - 1);
    assert_int_equal(store_account_get(st, nick, STORE_NICK_MAX + 1, &a), STORE_E_INVALID);
    store_close(st);
}

/* ------------------------------------------------------------------------ */
/* Tokens */

static void test_tokens_expire_by_idle_time(void **state) {
    (void)state;
    store_t *st = open_or_fail(":memory:");
    int64_t ana = new_account(st, "Ana", "$h");
    assert_int_equal(store_token_add(st, ana, tok(1), NOW), 0);
    assert_int_equal(store_token_add(st, ana, tok(1), NOW), STORE_E_EXISTS);
    assert_int_equal(store_token_add(st, ana + 100, tok(2), NOW), STORE_E_NOTFOUND);

    store_account_t a;
    /* Used exactly max_idle later: still good, and last_used moves. */
    assert_int_equal(store_token_use(st, tok(1), NOW + 24 * HOUR, 24 * HOUR, &a), 0);
    assert_int_equal(a.id, ana);
    assert_string_equal(a.nick, "Ana");
    /* So 24 h after that use it is good again, though 48 h after creation. */
    assert_int_equal(store_token_use(st, tok(1), NOW + 48 * HOUR, 24 * HOUR, &a), 0);
    /* One millisecond too idle: gone, and stays gone. */
    assert_int_equal(store_token_use(st, tok(1), NOW + 72 * HOUR + 1, 24 * HOUR, &a),
                     STORE_E_NOTFOUND);
    assert_int_equal(store_token_use(st, tok(1), NOW + 48 * HOUR, 24 * HOUR, &a), STORE_E_NOTFOUND);
    assert_int_equal(store_token_use(st, tok(3), NOW, 24 * HOUR, &a), STORE_E_NOTFOUND);
    assert_int_equal(store_token_use(st, tok(3), NOW, 0, &a), STORE_E_INVALID);
    store_close(st);
}

static void test_tokens_revoke_and_revoke_all(void **state) {
    (void)state;
    store_t *st = open_or_fail(":memory:");
    int64_t ana = new_account(st, "ana", "$h"), bob = new_account(st, "bob", "$h");
    for (unsigned i = 0; i < 3; i++)
        assert_int_equal(store_token_add(st, ana, tok(i), NOW), 0);
    assert_int_equal(store_token_add(st, bob, tok(9), NOW), 0);
    store_account_t a;
    assert_int_equal(store_token_revoke(st, tok(0)), 0);
    assert_int_equal(store_token_revoke(st, tok(0)), 0); /* absent: still 0 */
    assert_int_equal(store_token_use(st, tok(0), NOW, HOUR, &a), STORE_E_NOTFOUND);
    uint64_t revoked = 99;
    assert_int_equal(store_tokens_revoke_all(st, ana, &revoked), 0);
    assert_int_equal(revoked, 2);
    assert_int_equal(store_token_use(st, tok(1), NOW, HOUR, &a), STORE_E_NOTFOUND);
    assert_int_equal(store_tokens_revoke_all(st, ana, &revoked), 0);
    assert_int_equal(revoked, 0);
    /* Another account's tokens are not touched. */
    assert_int_equal(store_token_use(st, tok(9), NOW, HOUR, &a), 0);
    assert_int_equal(a.id, bob);
    store_close(st);
}

static void test_password_change_revokes_in_one_transaction(void **state) {
    (void)state;
    const char *path = tmp_path("password.db");
    store_t *st = open_or_fail(path);
    int64_t ana = new_account(st, "ana", "$old");
    assert_int_equal(store_token_add(st, ana, tok(1), NOW), 0);
    assert_int_equal(store_token_add(st, ana, tok(2), NOW), 0);
    store_account_t a;

    /* Without revoking: the hash changes, the tokens stay. */
    assert_int_equal(store_account_set_hash(st, ana, "$new", NOW + 5, false), 0);
    assert_int_equal(store_account_get(st, "ana", 3, &a), 0);
    assert_string_equal(a.hash, "$new");
    assert_int_equal(a.updated, NOW + 5);
    assert_int_equal(a.created, NOW);
    assert_int_equal(store_token_use(st, tok(1), NOW + 5, HOUR, &a), 0);

    /* When deleting the tokens fails, the hash does not change either. */
    assert_int_equal(raw_exec(path, "CREATE TRIGGER keep_tokens BEFORE DELETE ON tokens"
                                    " BEGIN SELECT RAISE(ABORT, 'kept'); END;"),
                     SQLITE_OK);
    tt_log_set_level(TT_LOG_OFF);
    int rc = store_account_set_hash(st, ana, "$newer", NOW + 6, true);
    tt_log_set_level(TT_LOG_INFO);
    assert_true(rc < 0 && rc != STORE_E_NOTFOUND);
    assert_int_equal(store_account_get(st, "ana", 3, &a), 0);
    assert_string_equal(a.hash, "$new");
    assert_int_equal(raw_exec(path, "DROP TRIGGER keep_tokens"), SQLITE_OK);

    /* With revoking: both, and the old tokens no longer log in. */
    assert_int_equal(store_account_set_hash(st, ana, "$newer", NOW + 7, true), 0);
    assert_int_equal(store_token_use(st, tok(1), NOW + 7, HOUR, &a), STORE_E_NOTFOUND);
    assert_int_equal(store_token_use(st, tok(2), NOW + 7, HOUR, &a), STORE_E_NOTFOUND);
    assert_int_equal(store_account_get(st, "ana", 3, &a), 0);
    assert_string_equal(a.hash, "$newer");
    /* To no password (NULL), and an unknown account. */
    assert_int_equal(store_account_set_hash(st, ana, NULL, NOW + 8, false), 0);
    assert_int_equal(store_account_get(st, "ana", 3, &a), 0);
    assert_string_equal(a.hash, "");
    assert_int_equal(store_account_set_hash(st, ana + 1, "$x", NOW, true), STORE_E_NOTFOUND);
    store_close(st);
}

static void test_tokens_expire_in_chunks(void **state) {
    (void)state;
    const char *path = tmp_path("expire.db");
    store_t *st = open_or_fail(path);
    int64_t ana = new_account(st, "ana", "$h");
    /* 1,100 idle for two hours, 50 fresh. */
    for (unsigned i = 0; i < 1150; i++)
        assert_int_equal(store_token_add(st, ana, tok(i), i < 1100 ? NOW - 2 * HOUR : NOW), 0);
    uint64_t deleted = 0;
    assert_int_equal(store_tokens_expire(st, NOW, HOUR, &deleted), 0);
    assert_int_equal(deleted, STORE_TOKENS_EXPIRE_CHUNK);
    assert_int_equal(store_tokens_expire(st, NOW, HOUR, &deleted), 0);
    assert_int_equal(deleted, STORE_TOKENS_EXPIRE_CHUNK);
    assert_int_equal(store_tokens_expire(st, NOW, HOUR, &deleted), 0);
    assert_int_equal(deleted, 100);
    assert_int_equal(store_tokens_expire(st, NOW, HOUR, &deleted), 0);
    assert_int_equal(deleted, 0);
    store_account_t a;
    assert_int_equal(store_token_use(st, tok(1100), NOW, HOUR, &a), 0);
    assert_int_equal(store_tokens_expire(st, NOW, 0, &deleted), STORE_E_INVALID);

    /* The maintenance pass does the same, a chunk_rows per transaction. */
    for (unsigned i = 2000; i < 2030; i++)
        assert_int_equal(store_token_add(st, ana, tok(i), NOW - 3 * HOUR), 0);
    store_maint_config_t mc;
    store_maint_config_defaults(&mc);
    mc.chunk_rows = 7;
    mc.token_max_idle_ms = HOUR;
    store_retention_stats_t rs = {0};
    assert_int_equal(store_retention_run(st, &mc, NOW, &rs), 0);
    assert_int_equal(rs.tokens_expired, 30);
    assert_int_equal(rs.transactions, 5); /* 7, 7, 7, 7, 2 */
    assert_int_equal(rs.deleted_by_age + rs.deleted_by_count, 0);
    assert_int_equal(store_token_use(st, tok(2000), NOW, 4 * HOUR, &a), STORE_E_NOTFOUND);
    assert_int_equal(store_token_use(st, tok(1101), NOW, HOUR, &a), 0);
    store_stats_t ss;
    store_stats(st, &ss);
    assert_int_equal(ss.retention.tokens_expired, 30);
    store_close(st);
}

/* ------------------------------------------------------------------------ */
/* Read markers */

static void test_read_markers_only_move_forward(void **state) {
    (void)state;
    store_t *st = open_or_fail(":memory:");
    int64_t up = -1;
    assert_int_equal(store_read_get(st, 1, "#Python-Dev", 11, &up), 0);
    assert_int_equal(up, 0); /* none */
    assert_int_equal(store_read_set(st, 1, "#Python-Dev", 11, 40), 0);
    assert_int_equal(store_read_set(st, 1, "python-dev", 10, 30), 0); /* ignored */
    assert_int_equal(store_read_get(st, 1, "PYTHON-DEV", 10, &up), 0);
    assert_int_equal(up, 40);
    assert_int_equal(store_read_set(st, 1, "python-dev", 10, 41), 0);
    assert_int_equal(store_read_get(st, 1, "#python-dev", 11, &up), 0);
    assert_int_equal(up, 41);
    /* Per account and per key; a conversation key as given. */
    assert_int_equal(store_read_get(st, 2, "#python-dev", 11, &up), 0);
    assert_int_equal(up, 0);
    assert_int_equal(store_read_set(st, 1, "@ana@bob", 8, 7), 0);
    assert_int_equal(store_read_get(st, 1, "@ana@bob", 8, &up), 0);
    assert_int_equal(up, 7);
    assert_int_equal(store_read_get(st, 1, "ana@bob", 7, &up), 0);
    assert_int_equal(up, 0);
    assert_int_equal(store_read_set(st, 1, "#", 1, 7), STORE_E_INVALID);
    assert_int_equal(store_read_set(st, 1, "x", 1, -1), STORE_E_INVALID);
    store_close(st);
}

/* ------------------------------------------------------------------------ */
/* Conversations */

static void test_conversations_kept_by_append(void **state) {
    (void)state;
    store_t *st = open_or_fail(":memory:");
    int64_t ana = new_account(st, "Ana", "$h"), bob = new_account(st, "bob", "$h");
    int64_t m1 = dm(st, "Ana", "bob", "hola");
    int64_t m2 = dm(st, "Ana", "Cy", "hi");
    int64_t m3 = dm(st, "BOB", "ana", "que tal");
    (void)m1;

    /* Ana's: newest first, the other side as last spelled. */
    convs_t g = list(st, ana, "ana", 10);
    assert_int_equal(g.n, 2);
    assert_string_equal(g.key[0], "@ana@bob");
    assert_string_equal(g.with[0], "BOB");
    assert_int_equal(g.last_id[0], m3);
    assert_int_equal(g.unread[0], 1); /* bob's, not her own */
    assert_string_equal(g.key[1], "@ana@cy");
    assert_string_equal(g.with[1], "Cy");
    assert_int_equal(g.last_id[1], m2);
    assert_int_equal(g.unread[1], 0);
    /* Bob's and Cy's (who has no account: the list is by nick). */
    g = list(st, bob, "Bob", 10);
    assert_int_equal(g.n, 1);
    assert_string_equal(g.with[0], "ana");
    assert_int_equal(g.unread[0], 1);
    g = list(st, 99, "cy", 10);
    assert_int_equal(g.n, 1);
    assert_string_equal(g.with[0], "Ana");
    assert_int_equal(g.unread[0], 1);
    /* Reading moves the count. */
    assert_int_equal(store_read_set(st, ana, "@ana@bob", 8, m3), 0);
    g = list(st, ana, "ana", 10);
    assert_int_equal(g.unread[0], 0);
    /* To oneself: one row. */
    dm(st, "ana", "ANA", "nota");
    g = list(st, ana, "ana", 10);
    assert_int_equal(g.n, 3);
    assert_string_equal(g.key[0], "@ana@ana");
    assert_int_equal(g.unread[0], 0);
    /* Room messages are no conversation. */
    store_msg_t r = {.kind = STORE_KIND_ROOM,
                     .room = "#x",
                     .room_len = 2,
                     .from = "ana",
                     .from_len = 3,
                     .text = "t",
                     .text_len = 1};
    assert_int_equal(store_append_batch(st, &r, 1), 0);
    assert_int_equal(list(st, ana, "ana", 10).n, 3);
    store_close(st);
}

/* A batch that fails leaves no conversation row behind (same transaction). */
static void test_conversations_roll_back_with_the_batch(void **state) {
    (void)state;
    const char *path = tmp_path("conv-rollback.db");
    store_t *st = open_or_fail(path);
    int64_t first = dm(st, "ana", "bob", "one");
    /* Another writer takes the next id: the batch fails on its second row. */
    char sql[200];
    snprintf(sql, sizeof(sql),
             "INSERT INTO messages (id, room, sender, text, ts) VALUES (%lld, 'r', 'x', 't', 1)",
             (long long)first + 2);
    assert_int_equal(raw_exec(path, sql), SQLITE_OK);
    store_msg_t m[2];
    for (int i = 0; i < 2; i++)
        m[i] = (store_msg_t){.kind = STORE_KIND_PRIVATE,
                             .room = i == 0 ? "@ana@dee" : "@bob@eve",
                             .room_len = 8,
                             .from = i == 0 ? "dee" : "eve",
                             .from_len = 3,
                             .to = i == 0 ? "ana" : "bob",
                             .to_len = 3,
                             .text = "x",
                             .text_len = 1};
    tt_log_set_level(TT_LOG_OFF);
    assert_true(store_append_batch(st, m, 2) < 0);
    tt_log_set_level(TT_LOG_INFO);
    assert_int_equal(list(st, 1, "ana", 10).n, 1);
    assert_int_equal(list(st, 1, "dee", 10).n, 0);
    assert_int_equal(list(st, 1, "eve", 10).n, 0);
    store_close(st);
}

static void test_conversations_unread_cap_and_limit(void **state) {
    (void)state;
    store_t *st = open_or_fail(":memory:");
    int64_t ana = new_account(st, "ana", "$h");
    /* Many unread from bob, in batches. */
    store_msg_t m[100];
    for (int i = 0; i < 100; i++)
        m[i] = (store_msg_t){.kind = STORE_KIND_PRIVATE,
                             .room = "@ana@bob",
                             .room_len = 8,
                             .from = "bob",
                             .from_len = 3,
                             .to = "ana",
                             .to_len = 3,
                             .text = "x",
                             .text_len = 1};
    int64_t mid = 0;
    for (int b = 0; b < 11; b++) {
        for (int i = 0; i < 100; i++)
            m[i].id = 0;
        assert_int_equal(store_append_batch(st, m, 100), 0);
        if (b == 5)
            mid = m[99].id;
    }
    convs_t g = list(st, ana, "ana", 10);
    assert_int_equal(g.unread[0], STORE_UNREAD_MAX);
    assert_int_equal(store_read_set(st, ana, "@ana@bob", 8, mid), 0);
    assert_int_equal(list(st, ana, "ana", 10).unread[0], 500);
    /* Twelve conversations; the limit takes the newest. */
    char other[16];
    for (int i = 0; i < 12; i++) {
        snprintf(other, sizeof(other), "p%02d", i);
        dm(st, other, "ana", "x");
    }
    g = list(st, ana, "ana", 5);
    assert_int_equal(g.n, 5);
    assert_string_equal(g.with[0], "p11");
    assert_string_equal(g.with[4], "p07");
    for (int i = 1; i < 5; i++)
        assert_true(g.last_id[i] < g.last_id[i - 1]);
    convs_t dummy = {0};
    assert_int_equal(store_conversations(st, ana, "ana", 3, 0, on_conv, &dummy), STORE_E_INVALID);
    assert_int_equal(store_conversations(st, ana, "ana", 3, STORE_CONV_MAX + 1, on_conv, &dummy),
                     STORE_E_INVALID);
    assert_int_equal(store_conversations(st, ana, "ana", 3, STORE_CONV_MAX, NULL, &dummy),
                     STORE_E_INVALID);
    assert_int_equal(dummy.n, 0);
    store_close(st);
}

/* Retention deletes messages, never conversation rows: last_id stays, the
 * unread count follows what is left. */
static void test_conversations_after_retention(void **state) {
    (void)state;
    const char *path = tmp_path("conv-retention.db");
    store_t *st = open_or_fail(path);
    int64_t ana = new_account(st, "ana", "$h");
    int64_t last = 0;
    for (int i = 0; i < 10; i++)
        last = dm(st, "bob", "ana", "x");
    store_maint_config_t mc;
    store_maint_config_defaults(&mc);
    mc.retain_messages = 3;
    store_retention_stats_t rs = {0};
    assert_int_equal(store_retention_run(st, &mc, NOW, &rs), 0);
    assert_int_equal(rs.deleted_by_count, 7);
    convs_t g = list(st, ana, "ana", 10);
    assert_int_equal(g.n, 1);
    assert_int_equal(g.last_id[0], last);
    assert_int_equal(g.unread[0], 3);
    store_close(st);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_accounts_unique_without_case),
        cmocka_unit_test(test_accounts_refuse_malformed),
        cmocka_unit_test(test_tokens_expire_by_idle_time),
        cmocka_unit_test(test_tokens_revoke_and_revoke_all),
        cmocka_unit_test(test_password_change_revokes_in_one_transaction),
        cmocka_unit_test(test_tokens_expire_in_chunks),
        cmocka_unit_test(test_read_markers_only_move_forward),
        cmocka_unit_test(test_conversations_kept_by_append),
        cmocka_unit_test(test_conversations_roll_back_with_the_batch),
        cmocka_unit_test(test_conversations_unread_cap_and_limit),
        cmocka_unit_test(test_conversations_after_retention),
    };
    return cmocka_run_group_tests(tests, setup_tmpdir, teardown_tmpdir);
}
