/* Editing, deleting and searching stored messages (schema v3), on the
 * thread that owns the store like the rest of store.h (in the server, the
 * asynchronous front's worker, through store_async_call).
 *
 * Erasure. A deleted message keeps its row (id, ts, room, sender,
 * recipient) with deleted = 1 and text "", so history can show where it
 * was; its text is gone from the database file, not merely hidden: every
 * connection runs with PRAGMA secure_delete = ON (freed space and pages are
 * zeroed), the search index drops it (the triggers' 'delete', then an FTS5
 * 'optimize', which rewrites the index without the deleted entries: SQLite
 * 3.40 has no FTS5 secure-delete, and a 'delete' alone only adds a
 * tombstone beside the old entry), and a TRUNCATE checkpoint empties the
 * WAL, which held older copies of the pages. An edit erases the old text
 * the same way. What a backup or another copy of the file holds is out of
 * reach (docs/SECURITY.md).
 *
 * Search. messages_fts is an FTS5 index over every stored text (rooms and
 * conversations), tokenized by "tt": SQLite's unicode61 with
 * remove_diacritics 2 (case and diacritics folded: "cafe" finds "Café",
 * "ΕΛΛΑΔΑ" finds "Ελλάδα"), except that every Han, Hiragana, Katakana and
 * Hangul character is a token of its own, so a word of those scripts
 * matches as a phrase of its characters anywhere in a text ("東京" finds
 * "東京タワー"), since such texts have no spaces between words. Words of
 * other scripts match whole words only (no prefixes, no stemming). */
#ifndef TT_STORE_STORE_SEARCH_H
#define TT_STORE_STORE_SEARCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store/store.h"

/* What store_message_get tells of one message. */
typedef struct store_msg_info_s {
    int64_t id, ts;
    store_kind_t kind;
    char room[STORE_ROOM_MAX + 1]; /* the stored key (a room's, or a conversation's) */
    size_t room_len;
    char from[STORE_NICK_MAX + 1]; /* as spelled (longer ones are cut: never an account's) */
    size_t from_len;
    char to[STORE_NICK_MAX + 1]; /* private: the recipient; room: "" */
    size_t to_len;
    int64_t edited_ts;
    bool deleted;
    bool joined; /* a room message: account (when given) is recorded in its room */
} store_msg_info_t;

/* The message id in *out; with account > 0 also whether room_joins records
 * the account in its room. STORE_E_NOTFOUND when there is no such row. */
int store_message_get(store_t *st, int64_t id, int64_t account, store_msg_info_t *out);

/* Sets the text of message id (not deleted) to text[0..len) and edited_ts,
 * reindexes it and erases the old text (see above). STORE_E_NOTFOUND when
 * there is no such message or it is deleted (nothing changed). */
int store_message_edit(store_t *st, int64_t id, const char *text, size_t len, int64_t edited_ts);

/* Deletes message id: deleted = 1, text "", out of the index, erased.
 * STORE_E_NOTFOUND when there is none or it is deleted already. */
int store_message_delete(store_t *st, int64_t id);

/* Rooms one account's record keeps; past it, the least recently joined
 * is forgotten (search then no longer reads it). */
#define STORE_JOINS_MAX 10000

/* Records that the account joined room[0..len) (any spelling) at ts. */
int store_room_joined(store_t *st, int64_t account, const char *room, size_t len, int64_t ts);

/* Bounds of a search. */
#define STORE_SEARCH_WORDS_MAX 10   /* words of a query */
#define STORE_SEARCH_LIMIT_MAX 50   /* results of one call */
#define STORE_SEARCH_KEYS_MAX 20000 /* readable keys (rooms, conversations) considered */
/* Index matches looked at in one call, readable or not: past it the call
 * stops, with *more true and *next_before where to go on. */
#define STORE_SEARCH_SCAN_MAX 20000

typedef struct store_search_req_s {
    const char *const *words; /* all must match (each folded and tokenized as the texts) */
    const size_t *word_lens;
    size_t nwords; /* 1..STORE_SEARCH_WORDS_MAX */
    /* > 0: the account's record of rooms (room_joins) and its stored
     * conversations (nick's) are readable. */
    int64_t account;
    const char *nick;
    size_t nick_len;
    /* Rooms readable besides (names in any spelling): a guest's, and the
     * rooms one is in now. */
    const char *const *rooms;
    const size_t *room_lens;
    size_t nrooms;
    /* Only this room (a name) or conversation (a key from store_dm_key), or NULL. */
    const char *only;
    size_t only_len;
    int64_t before_id; /* 0: from the newest */
    unsigned limit;    /* 1..STORE_SEARCH_LIMIT_MAX */
} store_search_req_t;

/* One result: rec as store_range's, and marked, its text with every match
 * between the bytes 0x01 and 0x02 (as FTS5's highlight()). */
typedef struct store_hit_s {
    store_rec_t rec;
    const char *marked;
    size_t marked_len;
} store_hit_t;
typedef void (*store_hit_cb)(void *ctx, const store_hit_t *hit);

/* The messages of readable keys that match every word, newest first, at
 * most limit, read in one snapshot. *more: there may be more (older) ones;
 * go on with before_id = *next_before. Returns how many were delivered, or
 * STORE_E_INVALID / the failing database's code. */
int store_search(store_t *st, const store_search_req_t *q, store_hit_cb cb, void *ctx, bool *more,
                 int64_t *next_before);

#endif
