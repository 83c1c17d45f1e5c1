/* What store_sqlite.c (open, schema, appends, reads) and store_maint.c (the
 * maintenance thread) share: the store_t itself and a few helpers. Not part
 * of the store's interface; nothing outside src/store/ includes it. */
#ifndef TT_STORE_STORE_INT_H
#define TT_STORE_STORE_INT_H

#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>

#include "chat/chat.h"
#include "store/store.h"

/* How often a repeated failure may be logged. */
#define STORE_LOG_EVERY_MS UINT64_C(10000)

/* A rate limit for one kind of log line. */
typedef struct store_log_limit_s {
    uint64_t next_ms;  /* monotonic ms before which no line is logged (0: any time) */
    uint64_t unlogged; /* events since the last line that did not get one */
} store_log_limit_t;

typedef struct store_redis_s store_redis_t;

struct store_s {
    char *path;
    /* A cluster's: accounts, tokens, read markers (store_redis.c),
     * moderation (store_redis_mod.c) and the private conversations between
     * accounts (store_redis_dm.c) there. */
    store_redis_t *redis;
    /* ":memory:": one connection only (a second one would be a different,
     * empty database), shared by the loop and the maintenance thread. */
    bool shared;
    bool sync_full;
    /* The descriptor holding flock(LOCK_EX) on the file (-1: none), closed
     * only after the last SQLite connection: closing any descriptor of a
     * file drops every fcntl lock the process holds on it, SQLite's own. */
    int lock_fd;

    /* The loop's connection and its statements, prepared once at open. */
    sqlite3 *db;
    sqlite3_stmt *st_begin_write; /* BEGIN IMMEDIATE */
    sqlite3_stmt *st_begin_read;  /* BEGIN (deferred: a read snapshot) */
    sqlite3_stmt *st_commit;
    sqlite3_stmt *st_rollback;
    sqlite3_stmt *st_insert;
    sqlite3_stmt *st_bound;       /* the (limit+1)-th newest id of a range */
    sqlite3_stmt *st_rows;        /* a range, oldest first */
    sqlite3_stmt *st_conv_upsert; /* a private message's conversation row */
    /* store_accounts.c's statements (accounts, tokens, markers, lists). */
    sqlite3_stmt *st_acc_insert;
    sqlite3_stmt *st_acc_get;
    sqlite3_stmt *st_acc_set_hash;
    sqlite3_stmt *st_tok_insert;
    sqlite3_stmt *st_tok_get;
    sqlite3_stmt *st_tok_touch;
    sqlite3_stmt *st_tok_del;
    sqlite3_stmt *st_tok_del_account;
    sqlite3_stmt *st_tok_expire;
    sqlite3_stmt *st_read_set;
    sqlite3_stmt *st_read_get;
    sqlite3_stmt *st_conv_list;
    sqlite3_stmt *st_conv_unread;
    int64_t last_id; /* the largest id ever committed (sqlite_sequence) */

    /* Failure lines, at most one of each kind per STORE_LOG_EVERY_MS (a
     * failing store must not flood the log): append failures, the first
     * success after them, read failures. */
    store_log_limit_t log_append_fail;
    store_log_limit_t log_append_ok;
    store_log_limit_t log_read_fail;
    store_log_limit_t log_account_fail; /* store_accounts.c's calls */
    uint64_t failed_since_ok;           /* failed appends since the last "writing again" line */

    /* The asynchronous front (store_async.c). async is set by
     * store_async_start before it creates the worker and cleared by
     * store_async_stop after joining it, so both threads see it in order;
     * while it is set only the worker uses db, its statements and the
     * fields from db to here. async_thread is the worker's id, set by the
     * worker itself before its first job; store__is_owner compares it. */
    bool async;
    pthread_t async_thread;

    /* Serialises write transactions between the loop and the maintenance
     * thread (and every use of the connection when it is shared). SQLite's
     * own lock would also serialise them, but a writer that finds it taken
     * sleeps in the busy handler for whole milliseconds; this mutex hands
     * over as soon as the other transaction ends. */
    pthread_mutex_t write_mu;

    /* The maintenance connection (== db when shared) and its statements. */
    sqlite3 *mdb;
    sqlite3_stmt *ms_del_age;
    sqlite3_stmt *ms_next_room;
    sqlite3_stmt *ms_room_span;
    sqlite3_stmt *ms_room_bound;
    sqlite3_stmt *ms_del_room;
    sqlite3_stmt *ms_tok_expire;

    /* The thread and what the loop tells it, under ctl_mu. */
    pthread_mutex_t ctl_mu;
    pthread_cond_t ctl_cv;
    pthread_t thread;
    bool running;
    atomic_bool stop;
    atomic_bool want_checkpoint;
    store_maint_config_t mcfg;
    store_stats_t stats;
};

/* Deletes at most ?2 tokens last used before ?1: store_tokens_expire on the
 * loop's connection and the maintenance pass on its own. The ORDER BY walks
 * the last_used index, so a chunk costs its own rows, not the table. */
#define STORE__SQL_TOKENS_EXPIRE                                                                   \
    "DELETE FROM tokens WHERE rowid IN"                                                            \
    " (SELECT rowid FROM tokens WHERE last_used < ?1 ORDER BY last_used LIMIT ?2)"

/* Writes "database \"PATH\": " + the formatted text into err. */
void store__err(const store_t *st, char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* The STORE_E_* for a failed SQLite call on a connection that was working. */
int store__map_rc(int rc);

/* SQLite's reason for the last failure on db, with the OS's when the
 * failure came from a system call. */
void store__reason(sqlite3 *db, int rc, char *buf, size_t cap);

/* Steps a statement that returns no row, and resets it for the next use. */
static inline int store__step_done(sqlite3_stmt *s) {
    int rc = sqlite3_step(s);
    sqlite3_reset(s);
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

/* Writes the ASCII lower case of src[0..len) to dst (may be src). */
void store__ascii_lower(char *dst, const char *src, size_t len);

/* The stored key of key[0..len) in *out and *out_len: a conversation key
 * (starting with '@') as given, anything else store_room_key of it, in buf
 * (STORE_ROOM_MAX + 1 bytes). Returns 0 or STORE_E_INVALID. */
int store__key(const char *key, size_t len, char *buf, const char **out, size_t *out_len);

/* Prepares and finalises store_accounts.c's statements on the loop's
 * connection (SQLite codes). */
/* The body of a transaction: SQLite's code (anything but SQLITE_OK rolls
 * back), and in *res the result when it commits. */
typedef int (*store_tx_body)(store_t *st, void *arg, int *res);
/* store_accounts.c: body in BEGIN IMMEDIATE ... COMMIT under the write
 * mutex, or in one read snapshot; a failure is logged (`what`) and mapped
 * to a STORE_E_*. */
int store__write_tx(store_t *st, const char *what, store_tx_body body, void *arg);
int store__read_tx(store_t *st, const char *what, store_tx_body body, void *arg);

int store__accounts_prepare(store_t *st);
void store__accounts_finalize(store_t *st);

/* store_search.c: a set of keys (rooms' and conversations'), sorted
 * before store__keys_has; at most STORE_SEARCH_KEYS_MAX. */
typedef struct store__keys_s {
    char **keys;
    size_t n, cap;
} store__keys_t;
void store__keys_add(store__keys_t *k, const char *key, size_t len);
void store__keys_sort(store__keys_t *k);
bool store__keys_has(const store__keys_t *k, const char *key);
void store__keys_free(store__keys_t *k);
struct store_search_req_s;
/* Adds the stored keys of q's rooms to k. */
void store__keys_rooms(const struct store_search_req_s *q, store__keys_t *k);
/* Sorts k, and with q->only keeps only that key (when readable). */
void store__keys_only(const struct store_search_req_s *q, store__keys_t *k);
/* q's words as an FTS5 expression (free it). */
char *store__search_match(const struct store_search_req_s *q);
/* body in a read transaction on the store's connection (its temp tables
 * are written in it), logged as what. 0 or a STORE_E_*. */
int store__search_tx(store_t *st, const char *what, store_tx_body body, void *arg);

/* store_redis_search.c: store_search on a cluster's streams, and
 * store_room_joined's record of rooms in Redis (key: a room's stored key). */
int store__redis_room_joined(store_t *st, int64_t account, const char *key, size_t len, int64_t ts);
struct store_hit_s;
int store__redis_search(store_t *st, const struct store_search_req_s *q,
                        void (*cb)(void *ctx, const struct store_hit_s *hit), void *ctx, bool *more,
                        int64_t *next_before);
/* store_redis.c: the store's connection to Redis, opened if need be
 * (NULL, logged, when it cannot be), for pipelines; drop it after a
 * failed reply. */
struct redisContext;
struct redisContext *store__redis_conn(store_redis_t *r, const char *what);
void store__redis_drop(store_redis_t *r);

/* store_search.c: on a new connection, PRAGMA secure_delete = ON and the
 * search index's tokenizer "tt". An SQLite code. */
int store__search_setup(sqlite3 *db);

/* store_search.c: indexes up to max_rows of the messages not in the search
 * index yet, in one write transaction on db (the loop's or the
 * maintenance connection) under the write mutex. Returns true when more
 * may be waiting; *rc (if not NULL) is SQLite's result. */
#define STORE_INDEX_CHUNK 512    /* rows a step indexes (about 2 ms of the write mutex) */
#define STORE_INDEX_EVERY_MS 100 /* the maintenance thread looks this often */
bool store__search_index_step(store_t *st, sqlite3 *db, unsigned max_rows, int *rc);

/* Finalises the maintenance statements and closes its connection if it is
 * its own. Only with the thread stopped. */
void store__maint_close(store_t *st);

/* Realtime clock in milliseconds since the Unix epoch (message ts). */
int64_t store__now_ms(void);

/* Monotonic clock in milliseconds (log limits). */
uint64_t store__mono_ms(void);

/* Counts an event and returns true when it may be logged now: then the
 * caller logs it with l->unlogged - 1 events left out since the last line,
 * and calls store__log_done. */
bool store__log_allow(store_log_limit_t *l, uint64_t now_ms);
void store__log_done(store_log_limit_t *l, uint64_t now_ms);

/* Whether msg is well formed (pointers, lengths, kind): what
 * store_append_batch checks first, shared with store_async_append so a
 * malformed batch is refused when it is submitted. Ids are not checked. */
bool store__msg_is_valid(const store_msg_t *m);

/* Whether the calling thread may use the loop's connection: no
 * asynchronous front runs, or this is its worker. For asserts. */
bool store__is_owner(const store_t *st);

/* Latency histograms in power-of-two buckets of microseconds (store_chat.h
 * and store_async.h describe them): the bucket of us among n, and an upper
 * bound of the p-th percentile (0 < p <= 100) of hist[0..n), within a
 * factor of two (max_us for the open last bucket; 0 when it is empty). */
unsigned store__hist_bucket(uint64_t us, unsigned n);
uint64_t store__hist_percentile(const uint64_t *hist, unsigned n, uint64_t max_us, double p);

/* store_redis.c: the accounts functions of store_accounts.c on Redis,
 * which they hand over to when st->redis is set (same arguments, checked
 * already; same results). */
int store__redis_open(store_t *st, const store_redis_config_t *cfg);
void store__redis_close(store_t *st);
int store__redis_account_create(store_t *st, const char *nick, size_t len, const char *hash,
                                int64_t now_ms, store_account_t *out);
int store__redis_account_get(store_t *st, const char *nick, size_t len, store_account_t *out);
int store__redis_account_set_hash(store_t *st, int64_t account, const char *hash, int64_t now_ms,
                                  bool revoke_tokens);
int store__redis_token_add(store_t *st, int64_t account, const uint8_t hash[32], int64_t now_ms);
int store__redis_token_use(store_t *st, const uint8_t hash[32], int64_t now_ms, int64_t max_idle_ms,
                           store_account_t *out);
int store__redis_token_revoke(store_t *st, const uint8_t hash[32]);
int store__redis_tokens_revoke_all(store_t *st, int64_t account, uint64_t *revoked);
int store__redis_read_set(store_t *st, int64_t account, const char *key, size_t key_len,
                          int64_t up_to);
int store__redis_read_get(store_t *st, int64_t account, const char *key, size_t key_len,
                          int64_t *up_to);

/* The most ARGV one store__redis_eval call passes. */
#define STORE_REDIS_ARGS_MAX 16
struct redisReply;
/* Runs script (EVAL, no keys: the script names them) with argv[0..argc)
 * on the store's connection (opened if needed; once more on a new one
 * when a stale one fails). Returns the reply (freeReplyObject it), or
 * NULL after logging (at most once in 100 failures) when Redis cannot be
 * reached or answered with an error. */
struct redisReply *store__redis_eval(store_redis_t *r, const char *what, const char *script,
                                     int argc, const char **argv, const size_t *lens);
/* An integer reply, or a string of digits, as a number (0 otherwise). */
int64_t store__redis_int(const struct redisReply *r);
/* The channel moderation changes are published on (store_redis_mod.c). */
const char *store__redis_mod_channel(const store_redis_t *r);
const char *store__redis_node(const store_redis_t *r);

/* store_redis_mod.c: store_mod.h's functions on Redis (a cluster's). */
int store__redis_mod_load(store_t *st, int64_t now_ms, chat_mod_room_cb room, chat_mod_ban_cb ban,
                          void *arg);
int store__redis_mod_write(store_t *st, const chat_mod_write_t *w);
typedef void (*store__audit_cb)(void *ctx, const chat_audit_t *e);
int store__redis_audit_read(store_t *st, const char *scope, uint64_t before, unsigned limit,
                            store__audit_cb cb, void *ctx, bool *more);
/* store_redis_dm.c: a cluster's private conversations, which store_range
 * (on a conversation key) and store_conversations hand over to when
 * st->redis is set (same arguments, checked already; same results;
 * owner is the account's nickname folded). */
int store__redis_dm_range(store_t *st, const char *key, size_t key_len, int64_t after_id,
                          int64_t before_id, unsigned limit, store_rec_cb cb, void *ctx,
                          bool *more);
int store__redis_conversations(store_t *st, int64_t account, const char *owner, size_t owner_len,
                               unsigned limit, store_conv_cb cb, void *ctx);

#endif
