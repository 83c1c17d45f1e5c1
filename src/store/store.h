/* Message history and accounts: every accepted chat message is appended
 * here before anyone receives it, and read back for joined.history, join
 * since and history; accounts, their login tokens, read markers and each
 * account's list of private conversations live beside it (schema v2).
 * Backed by SQLite (store_sqlite.c; accounts and the rest in
 * store_accounts.c) with a background maintenance thread for retention,
 * token expiry and WAL checkpoints (store_maint.c). Rooms are keyed by a
 * folded name (store_room_key): every room-taking function folds what it is
 * given. Not responsible for what is allowed to be stored, for whom it is
 * readable, or for checking passwords and tokens (it keeps hashes made by
 * the caller): that is chat's job.
 *
 * Threads: a store_t is used by one thread at a time, except the
 * maintenance thread it starts itself (store_maint_start), which has its own
 * SQLite connection and synchronises with the other user internally. That
 * one thread is the event loop, or, once store_async_start
 * (store_async.h) has handed the store to it, the asynchronous front's
 * worker: from then until store_async_stop returns, the loop calls none of
 * the functions below on that store_t except store_path and store_stats,
 * and store_retention_run on a file database. Every call that can wait for
 * a lock or the disk then runs off the loop. */
#ifndef TT_STORE_STORE_H
#define TT_STORE_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct store_s store_t;

/* The database path used when none is given. Its parent directory is created
 * on open if it is missing. */
#define STORE_DEFAULT_PATH "./data/tertulia.db"

/* The schema version this code writes (PRAGMA user_version). Older databases
 * are migrated on open; a newer one is refused with STORE_E_VERSION. */
#define STORE_SCHEMA_VERSION 4

/* Errors: negative values, far from libuv's (-errno, above -4096), so both
 * can travel through one int. store_strerror() names them. */
#define STORE_ERRNO_MAP(XX)                                                                        \
    XX(INVALID, -7001, "invalid argument")                                                         \
    XX(CANTOPEN, -7002, "cannot open or create the database")                                      \
    XX(CORRUPT, -7003, "the database is damaged or not a database")                                \
    XX(VERSION, -7004, "the database was written by a newer server")                               \
    XX(UNAVAILABLE, -7005, "storage unavailable (disk full, I/O error or locked)")                 \
    XX(INTERNAL, -7006, "internal storage error")                                                  \
    XX(INUSE, -7007, "the database is in use by another process")                                  \
    XX(BUSY, -7008, "the store's queue is full")                                                   \
    XX(EXISTS, -7009, "already exists")                                                            \
    XX(NOTFOUND, -7010, "not found")

enum {
#define STORE_XX(name, value, text) STORE_E_##name = (value),
    STORE_ERRNO_MAP(STORE_XX)
#undef STORE_XX
};

/* A static sentence for a STORE_E_* code ("unknown store error" otherwise). */
const char *store_strerror(int err);

/* ------------------------------------------------------------------------ */
/* Opening */

/* A cluster's Redis (store_config_t.redis): accounts, login tokens, read
 * markers (store_redis.c) and moderation (store_redis_mod.c) are kept
 * there, so every node of the cluster has the same ones; the rest stays
 * in SQLite. */
typedef struct store_redis_config_s {
    const char *host; /* TCP, or */
    int port;
    const char *path; /* a unix socket (host NULL) */
    const char *password;
    int db;
    /* A login token unused this long expires (Redis drops it; 0: never). */
    int64_t token_idle_ms;
    /* This node's name: the moderation changes it publishes carry it
     * (store_mod.h), so it knows its own when they come back. */
    const char *node;
} store_redis_config_t;

typedef struct store_config_s {
    /* A file path, or ":memory:" for history that lives as long as the
     * store_t. Borrowed during store_open only. Default STORE_DEFAULT_PATH. */
    const char *path;
    /* How long a write waits for a lock held by another process (e.g. the
     * sqlite3 shell, a backup) before failing with STORE_E_UNAVAILABLE.
     * Default 2000. The thread that called the write waits that long: with
     * the asynchronous front (store_async.h) that is its worker, never the
     * event loop, so the default can stay generous; a store used
     * synchronously on the loop stalls the loop for as long as the lock
     * is held, up to this. */
    unsigned busy_timeout_ms;
    /* false (default): PRAGMA synchronous=NORMAL in WAL mode. A committed
     * message survives a crash or kill -9 of the process (the WAL write has
     * reached the kernel before store_append_batch returns), which is the
     * durability rule; the last commits may be lost if the machine itself
     * loses power. true: synchronous=FULL, an fsync per commit, which also
     * survives power loss; a one-message commit then costs about ten times
     * more (tests/unit/store/test_store_perf.c measures both). */
    bool sync_full;
    /* Skip PRAGMA quick_check on open. The check reads the whole file once
     * (about 0.1 s for 200,000 messages, 29 MB, on our test machine) and
     * turns a damaged file into a clear error at start-up instead of
     * failures later. Default false. */
    bool skip_check;
    /* A cap on the database size in bytes (0 = none, the default). Appends
     * that would grow it beyond the cap fail with STORE_E_UNAVAILABLE, as on
     * a full disk. */
    uint64_t max_bytes;
    /* NULL (default): everything in SQLite. Borrowed during store_open. */
    const store_redis_config_t *redis;
} store_config_t;

/* Fills cfg with the defaults above. */
void store_config_defaults(store_config_t *cfg);

/* Opens (creating if needed) the database at cfg->path: creates the missing
 * parent directory (one level, e.g. ./data/), takes the file for this store
 * alone, sets WAL mode and the synchronous level, checks integrity, creates
 * or migrates the schema.
 * One store per file: a file that another store_t (in this process or
 * another, e.g. a second server started on the same --db) has open is
 * refused with STORE_E_INUSE, because two writers giving ids of their own
 * would refuse each other's batches. Other programs (the sqlite3 shell, a
 * backup) may still read it; a lock they hold delays writes (busy_timeout).
 * On success *out is the store (store_close frees it) and 0 is returned. On
 * failure *out is NULL, a negative STORE_E_* is returned and err (if errlen
 * > 0) holds one line naming the path and SQLite's or the OS's reason, e.g.
 *   database "./data/tertulia.db": file is not a database
 * Never aborts on a bad file. */
int store_open(const store_config_t *cfg, store_t **out, char *err, size_t errlen);

/* Stops the maintenance thread if it runs, then closes the database (the
 * last connection checkpoints the WAL into the main file). NULL is a no-op.
 * An asynchronous front must have been stopped (store_async_stop). */
void store_close(store_t *st);

/* The path the store was opened with (owned by the store). */
const char *store_path(const store_t *st);

/* ------------------------------------------------------------------------ */
/* Backup (store_backup.c) */

/* Pages copied per step of the online backup, and the pause between steps. */
#define STORE_BACKUP_STEP_PAGES 256
#define STORE_BACKUP_PAUSE_MS 5

/* Copies the database file at path into out with SQLite's online backup
 * (tertulia backup): consistent as of one moment, while a server may be
 * running on path and writing. It reads on a connection of its own inside
 * one read transaction (in WAL mode writers go on meanwhile; the WAL is not
 * checkpointed past that moment until the copy ends), in steps of
 * STORE_BACKUP_STEP_PAGES pages with STORE_BACKUP_PAUSE_MS between them.
 * The copy is written next to out, checked (quick_check, its message
 * count), put in rollback-journal mode so it is one self-contained file,
 * synced, and only then renamed to out: out is never half written. An
 * existing out is an error unless overwrite. On success returns 0 and
 * *messages is the count of messages copied; on failure a negative STORE_E_*
 * with err naming the file and the reason. */
int store_backup(const char *path, const char *out, bool overwrite, int64_t *messages, char *err,
                 size_t errlen);

/* ------------------------------------------------------------------------ */
/* Writing */

typedef enum {
    STORE_KIND_ROOM = 0,    /* a message to a room */
    STORE_KIND_PRIVATE = 1, /* a private message (stored only once identity is proven) */
} store_kind_t;

/* The largest id: ids travel as JSON numbers, exact below 2^53. */
#define STORE_ID_MAX ((INT64_C(1) << 53) - 1)

/* One message to append. Every pointer is borrowed for the duration of the
 * store_append_batch call only; strings need not be NUL-terminated. */
typedef struct store_msg_s {
    store_kind_t kind;
    /* Room messages: the room name in any spelling (stored under
     * store_room_key of it, at most STORE_ROOM_MAX bytes). Private
     * messages: the conversation key from store_dm_key(), which can never
     * be a room key (it starts with '@'), so both kinds share one index and
     * one paging code; stored as given. Not empty. */
    const char *room;
    size_t room_len;
    const char *from; /* the sender's nickname, not empty (private: at most STORE_NICK_MAX) */
    size_t from_len;
    const char *to; /* private: the recipient, not empty, at most STORE_NICK_MAX; room: NULL */
    size_t to_len;
    const char *text; /* UTF-8 (may hold NUL bytes) */
    size_t text_len;
    int64_t ts; /* server time, milliseconds since the Unix epoch */
    /* In: 0 to let the store take the next id, or the caller's own id (chat
     * gives ids when it accepts a message), which must be greater than
     * store_last_id() and than the previous id in the batch, and at most
     * STORE_ID_MAX. Out: the message's id. */
    int64_t id;
} store_msg_t;

/* Appends n messages in ONE transaction (group commit) and sets each
 * msgs[i].id. Ids are strictly increasing, in array order, and never reused,
 * even after retention deleted the newest rows or across restarts. Each
 * private message also updates, in the same transaction, the conversation
 * lists (store_conversations) of its sender and of its recipient: last_id
 * becomes its id and with_nick the other side's spelling.
 * When this returns 0 every message is durable in the sense of
 * store_config_t.sync_full; the caller may fan them out.
 * On error nothing of the batch is stored (each id is set to 0), the store
 * stays usable, and the return is:
 *   STORE_E_INVALID      a message is malformed or an id out of order
 *                        (nothing was attempted)
 *   STORE_E_UNAVAILABLE  disk full, I/O error, read-only or locked database:
 *                        answer the senders with `unavailable` and keep going
 *   STORE_E_CORRUPT / STORE_E_INTERNAL  other SQLite failures
 * The SQLite reason is logged as an error, at most once every 10 s (the
 * failures in between are counted in the next such line and logged at
 * debug level), and the first success after failures is logged
 * ("writing again", with the count), at most once every 10 s too: a store
 * that keeps failing, or fails and recovers in turn, cannot flood the log.
 * n == 0 returns 0. */
int store_append_batch(store_t *st, store_msg_t *msgs, size_t n);

/* The largest id ever stored (0 for a new database), even if retention has
 * deleted that message since: a caller that gives ids itself starts after
 * it, so ids keep increasing across restarts. */
int64_t store_last_id(const store_t *st);

/* Records that ids up to `upto` may be given out without being stored
 * (private messages), so that after a restart store_last_id() is at least
 * upto and no id is ever issued twice. It raises SQLite's AUTOINCREMENT
 * counter (sqlite_sequence) and leaves the ids a batch may use as they are.
 * One small transaction; callers reserve in large steps. Returns 0 or a
 * negative STORE_E_* code. */
int store_reserve_ids(store_t *st, int64_t upto);

/* The longest room name the store takes, in bytes as given (a leading '#'
 * included); the chat's are shorter (CHAT_ROOM_MAX). */
#define STORE_ROOM_MAX 255

/* Writes the key a room is stored under into buf, NUL-terminated: name
 * without one leading '#', ASCII letters in lower case, so "#Python-Dev",
 * "python-dev" and "#python-dev" are one room (other bytes are kept as
 * they are). Returns the key's length, or STORE_E_INVALID when name is
 * NULL, longer than STORE_ROOM_MAX, has an empty key ("" or "#"), has a key
 * starting with '@' (which only conversation keys do), or buf is too small
 * (cap > len is enough). */
int store_room_key(const char *name, size_t len, char *buf, size_t cap);

/* Writes the conversation key of a private conversation between nicknames
 * a and b into buf: "@" + both names lower-cased, sorted, joined by "@"
 * (e.g. "@alice@bob"). Symmetric in a and b. Returns the length, or
 * STORE_E_INVALID if buf is too small (cap >= strlen(a) + strlen(b) + 3 is
 * enough) or a name is empty. */
int store_dm_key(const char *a, const char *b, char *buf, size_t cap);

/* ------------------------------------------------------------------------ */
/* Reading */

/* One stored message, as handed to a read callback. Every pointer is
 * borrowed until the callback returns; strings are NUL-terminated and their
 * lengths are given too (text may hold NUL bytes). room is the stored key:
 * store_room_key of the room (not the spelling a writer used), or the
 * conversation key. */
typedef struct store_rec_s {
    int64_t id;
    int64_t ts;
    store_kind_t kind;
    const char *room;
    size_t room_len;
    const char *from;
    size_t from_len;
    const char *to; /* NULL for room messages */
    size_t to_len;
    const char *text;
    size_t text_len;
    int64_t edited_ts; /* 0, or when the text was last edited (store_search.h) */
    bool deleted;      /* deleted (store_search.h): text is "" */
} store_rec_t;

/* Called once per message, oldest first. Must not call back into the store. */
typedef void (*store_rec_cb)(void *ctx, const store_rec_t *rec);

/* The general read, which the three below are made of: the messages of
 * room[0..room_len) (a room name in any spelling, folded by store_room_key,
 * or a conversation key, which starts with '@' and is used as given) with after_id < id < before_id
 * (after_id 0 and before_id 0 mean unbounded), at most limit of them: the NEWEST such ones,
 * delivered oldest first. *more (if more != NULL) is true when older
 * messages of the range were left out. Read in one snapshot. Returns how
 * many were delivered, or a negative STORE_E_* (then cb may have been
 * called for some; discard them). */
int store_range(store_t *st, const char *room, size_t room_len, int64_t after_id, int64_t before_id,
                unsigned limit, store_rec_cb cb, void *ctx, bool *more);

/* store_history, store_since and store_last take a NUL-terminated room. */

/* The room's messages older than before_id (0 = the newest), at most limit
 * of them: the newest such ones, delivered oldest first ("newest last").
 * *more tells whether older messages remain: page on with before_id = the
 * first delivered id. Returns the count delivered or STORE_E_*. */
int store_history(store_t *st, const char *room, int64_t before_id, unsigned limit, store_rec_cb cb,
                  void *ctx, bool *more);

/* The room's messages with an id greater than after_id, oldest first. If
 * there are more than limit, the NEWEST limit of them are delivered and
 * *more is true: the gap between after_id and the first delivered id can be
 * filled with store_history(before_id = first delivered id), so a
 * reconnecting client recovers exactly what it missed, with no duplicates,
 * and sees the latest first. Returns the count delivered or STORE_E_*. */
int store_since(store_t *st, const char *room, int64_t after_id, unsigned limit, store_rec_cb cb,
                void *ctx, bool *more);

/* The room's last n messages, oldest first (joined.history): the same as
 * store_history(st, room, 0, n, cb, ctx, NULL). */
int store_last(store_t *st, const char *room, unsigned n, store_rec_cb cb, void *ctx);

/* ------------------------------------------------------------------------ */
/* Accounts, login tokens, read markers, conversations
 *
 * Synchronous, like the rest of this file: they run on the thread that owns
 * the store, which in the server is the asynchronous front's worker
 * (store_async_call). Each is one statement or one transaction. Results:
 * 0 (or what is said), STORE_E_INVALID for malformed arguments (nothing
 * was attempted), STORE_E_EXISTS / STORE_E_NOTFOUND where said, and for a
 * failing database the same as store_append_batch: STORE_E_UNAVAILABLE
 * (disk full, I/O error, locked), STORE_E_CORRUPT or STORE_E_INTERNAL,
 * logged at most once every 10 s with the count of those left out. Nicks
 * are compared without ASCII case; a nick is 1..STORE_NICK_MAX bytes. */

#define STORE_NICK_MAX 32
#define STORE_HASH_MAX 256 /* bytes of an encoded password hash, NUL included */

typedef struct store_account_s {
    int64_t id;
    char nick[STORE_NICK_MAX + 1]; /* as registered */
    char hash[STORE_HASH_MAX];     /* "" when the account has no password */
    int64_t created, updated;
} store_account_t;

/* Creates the account nick[0..len) with the encoded password hash (a
 * NUL-terminated string shorter than STORE_HASH_MAX, e.g. Argon2id's; NULL:
 * none, as for an account that comes from an operator's token; "" is
 * STORE_E_INVALID), created = updated = now_ms. STORE_E_EXISTS when an
 * account of the same nick in any case exists. *out (if not NULL) is the
 * new account. */
int store_account_create(store_t *st, const char *nick, size_t len, const char *hash,
                         int64_t now_ms, store_account_t *out);

/* The account nick[0..len) (any case) in *out, or STORE_E_NOTFOUND. */
int store_account_get(store_t *st, const char *nick, size_t len, store_account_t *out);

/* Sets the account's hash (NULL: none) and updated = now_ms. With
 * revoke_tokens every token of the account is deleted in the same
 * transaction (a password change logs out every device: nobody sees the
 * new hash with the old tokens). STORE_E_NOTFOUND for an unknown account
 * (nothing changed). */
int store_account_set_hash(store_t *st, int64_t account, const char *hash, int64_t now_ms,
                           bool revoke_tokens);

/* Stores a login token of the account by its SHA-256 (the token itself is
 * never stored), created = last_used = now_ms. STORE_E_NOTFOUND for an
 * unknown account, STORE_E_EXISTS for a hash already stored. */
int store_token_add(store_t *st, int64_t account, const uint8_t hash[32], int64_t now_ms);

/* The account of a token used within max_idle_ms (now_ms - last_used <=
 * max_idle_ms; max_idle_ms > 0) in *out, and its last_used set to now_ms,
 * in one transaction. An expired one is deleted and STORE_E_NOTFOUND
 * returned, as for an unknown one. */
int store_token_use(store_t *st, const uint8_t hash[32], int64_t now_ms, int64_t max_idle_ms,
                    store_account_t *out);

/* Deletes one token (logout). 0 even if absent. */
int store_token_revoke(store_t *st, const uint8_t hash[32]);

/* Deletes every token of the account; *revoked (if not NULL) is how many. */
int store_tokens_revoke_all(store_t *st, int64_t account, uint64_t *revoked);

/* How many tokens one store_tokens_expire call deletes at most. */
#define STORE_TOKENS_EXPIRE_CHUNK 500

/* Housekeeping: deletes tokens unused for more than max_idle_ms (> 0), at
 * most STORE_TOKENS_EXPIRE_CHUNK of them in one transaction, so a call
 * holds the write lock briefly; *deleted (if not NULL) is how many: call
 * again while it equals the chunk. The maintenance thread does the same in
 * its passes (store_maint_config_t.token_max_idle_ms). */
int store_tokens_expire(store_t *st, int64_t now_ms, int64_t max_idle_ms, uint64_t *deleted);

/* A read marker: the account has read key[0..key_len) up to message id
 * up_to (>= 0). key is a room name in any spelling (folded as
 * store_room_key) or a conversation key (store_dm_key). The marker only
 * moves forward: a lower up_to than the stored one is ignored (returns 0).
 * The account is not checked. */
int store_read_set(store_t *st, int64_t account, const char *key, size_t key_len, int64_t up_to);

/* The account's marker for key in *up_to; 0 when there is none. */
int store_read_get(store_t *st, int64_t account, const char *key, size_t key_len, int64_t *up_to);

/* One private conversation of an account, as handed to store_conv_cb: the
 * strings are NUL-terminated and borrowed until the callback returns. */
typedef struct store_conv_s {
    const char *with; /* the other side, as last spelled in the conversation */
    size_t with_len;
    const char *key; /* the conversation key (store_dm_key) */
    size_t key_len;
    int64_t last_id; /* the newest message's id */
    uint32_t unread; /* 0..STORE_UNREAD_MAX */
} store_conv_t;

#define STORE_UNREAD_MAX 999 /* unread counts stop here (a bounded count per conversation) */
#define STORE_CONV_MAX 200   /* the largest limit of store_conversations */

/* Called once per conversation. Must not call back into the store. */
typedef void (*store_conv_cb)(void *ctx, const store_conv_t *c);

/* The conversations of nick[0..nick_len) (the account's nick, any case),
 * newest (last_id) first, at most limit (1..STORE_CONV_MAX, else
 * STORE_E_INVALID); unread = the messages in it with an id above the
 * account's read marker for its key and not sent by nick, counted up to
 * STORE_UNREAD_MAX. Read in one snapshot. Returns how many were delivered
 * (cb may have been called for some before a failure: discard them). A
 * conversation's last_id stays when retention deletes its messages: the
 * order is the order of activity, and unread counts only what is left. */
int store_conversations(store_t *st, int64_t account, const char *nick, size_t nick_len,
                        unsigned limit, store_conv_cb cb, void *ctx);

/* ------------------------------------------------------------------------ */
/* Maintenance: retention and WAL checkpoints, in the background */

typedef struct store_maint_config_s {
    /* Keep at most this many messages per room (a private conversation
     * counts as a room); 0 = all. */
    uint64_t retain_messages;
    uint32_t retain_days; /* delete messages older than this; 0 = keep forever */
    unsigned interval_ms; /* between retention passes; default 60000 */
    /* Rows deleted per transaction; default 500. Each delete transaction
     * holds the write lock, so this bounds how long a loop commit can wait:
     * about 0.5 ms here for 500 rows, against 140 ms for one transaction
     * deleting 99,000 (test_store_perf.c). */
    unsigned chunk_rows;
    /* The WAL size in pages (4 KiB) at which the thread checkpoints it into
     * the main file; default 1000, SQLite's own default. */
    unsigned checkpoint_pages;
    /* Each pass also deletes the login tokens unused for longer than this
     * (store_tokens_expire, chunk_rows per transaction); 0 = none. */
    int64_t token_max_idle_ms;
} store_maint_config_t;

/* Fills cfg with the defaults above (no retention, no token expiry). */
void store_maint_config_defaults(store_maint_config_t *cfg);

/* Starts the maintenance thread with its own SQLite connection (":memory:"
 * shares the loop's, under the store's mutex). From then on the thread, not
 * the loop, runs retention passes (the first at once, then every
 * interval_ms) and WAL checkpoints (which fsync the database file) whenever
 * a commit has grown the WAL past checkpoint_pages, so the loop's commits
 * only ever write the WAL: a checkpoint on the loop costs it 5-10 ms every
 * 4 MB of messages. Recommended even without retention. cfg is copied.
 * It hooks the loop's connection, so start it before store_async_start
 * (STORE_E_INVALID while an asynchronous front runs); it then works beside
 * the front's worker exactly as beside the loop.
 * Returns 0, or STORE_E_* with err filled (e.g. already running). */
int store_maint_start(store_t *st, const store_maint_config_t *cfg, char *err, size_t errlen);

/* Stops and joins the thread (within one delete transaction). Idempotent.
 * It unhooks the loop's connection: call it (or store_close) only after
 * store_async_stop. */
void store_maint_stop(store_t *st);

typedef struct store_retention_stats_s {
    uint64_t deleted_by_count; /* rows deleted by retain_messages */
    uint64_t deleted_by_age;   /* rows deleted by retain_days */
    uint64_t transactions;     /* delete transactions run */
    uint64_t max_tx_us;        /* the longest one held the write lock this long */
    uint64_t tokens_expired;   /* login tokens deleted by token_max_idle_ms */
} store_retention_stats_t;

/* Runs one retention pass now, synchronously, as if the clock read now_ms:
 * what the thread does every interval_ms, exposed for tests and tools. It
 * uses the maintenance connection and the same small transactions. Adds to
 * *stats (if not NULL). Returns 0 or STORE_E_*; STORE_E_INVALID while the
 * thread runs, and on a ":memory:" store (whose maintenance connection is
 * the loop's) while an asynchronous front runs. */
int store_retention_run(store_t *st, const store_maint_config_t *cfg, int64_t now_ms,
                        store_retention_stats_t *stats);

/* Totals of every retention pass and checkpoint since open (thread-safe). */
typedef struct store_stats_s {
    store_retention_stats_t retention;
    uint64_t passes;      /* retention passes completed */
    uint64_t checkpoints; /* WAL checkpoints run by the maintenance thread */
} store_stats_t;
void store_stats(store_t *st, store_stats_t *out);

#endif
