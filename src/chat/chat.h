/* The chat protocol of PROTOCOL.md: sessions, nicknames, rooms, presence and
 * fan-out. Pure of I/O: it reads JSON text messages handed to it by the
 * transport and hands back messages (core/msg.h) through chat_io_t, which
 * picks their encoding (src/ws frames them).
 *
 * One event-loop thread owns a chat_t and everything in it; nothing here
 * locks. State lives in the chat_t context object, never in globals, so
 * several loops can later each own one.
 *
 * Delivery model. The chat executes requests one at a time, in the order
 * they arrived, and everything it sends follows that order. Chat messages
 * (room, private) are accepted when executed (validated, given their id and
 * ts) but delivered by chat_flush(), which the transport calls once per loop
 * iteration: with a store attached, the iteration's room messages are
 * written in one batch before anyone receives them, and that write may
 * complete later (the store's worker). While a store step is in flight, the
 * requests that arrive are parsed and queued, and run when it completes;
 * any membership change (join, leave, login with a room, session close)
 * first waits for what is pending to be delivered. So every recipient sees
 * messages and presence in the order they happened (a "bye" sent just
 * before disconnecting arrives before the member_left), a joiner finds
 * every earlier message in its history and every later one live, and the
 * loop never waits for the store. */
#ifndef TT_CHAT_CHAT_H
#define TT_CHAT_CHAT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "auth/auth_token.h"
#include "core/buf.h"
#include "core/hist.h"
#include "core/msg.h"

typedef struct chat_s chat_t;
typedef struct chat_session_s chat_session_t;

/* Fixed limits of the protocol (PROTOCOL.md, "Identity" and "Client → server"). */
#define CHAT_NICK_MAX 32                /* characters of a nickname */
#define CHAT_ROOM_MAX 64                /* characters of a room name, '#' included */
#define CHAT_REF_MAX 64                 /* characters of a request's "id" */
#define CHAT_HISTORY_DEFAULT 50         /* history.limit when absent */
#define CHAT_ID_RESERVE 10000           /* ids reserved in the store at a time */
#define CHAT_HISTORY_MAX 200            /* history.limit is clamped to this */
#define CHAT_ID_MAX ((uint64_t)1 << 53) /* ids and since/before stay below (exact in a double) */
#define CHAT_ROOMS_DEFAULT 100          /* rooms.limit when absent */
#define CHAT_ROOMS_MAX 500              /* rooms.limit is clamped to this */
#define CHAT_MEMBERS_MAX 1000           /* who.limit (default and clamp) and joined.members */
#define CHAT_REPLY_BUDGET_DEFAULT (256 * 1024)
/* Defaults of the chat's settings (chat_config_defaults), which the
 * server's option table (src/server/options.c) also gives as its
 * defaults: plain numbers, so the table can spell them. */
#define CHAT_MAX_TEXT_DEFAULT 4096
#define CHAT_MAX_MESSAGE_DEFAULT 65536
#define CHAT_MAX_ROOMS_DEFAULT 100
#define CHAT_RATE_BURST_DEFAULT 20
#define CHAT_RATE_LIMIT_DEFAULT 10
#define CHAT_RESUME_SECONDS_DEFAULT 120
#define CHAT_RESUME_MS_DEFAULT (CHAT_RESUME_SECONDS_DEFAULT * 1000)

/* Bounded replies. A reply carrying many messages (joined.history, history)
 * is cut to fit reply_budget bytes: the oldest messages are dropped first and
 * `more` turns true, so paging back with `before` gets them. The budget is
 * raised to what the largest possible message needs in its reply
 * (chat_reply_budget_min), so one message always fits. Lists of rooms and
 * members are paged in the folded byte order of their names (ASCII letters
 * compared as lower case, ties broken by the raw bytes). */
#define CHAT_MESSAGE_JSON_OVERHEAD 104 /* a message's JSON around its three strings */
/* A room message's `mentions`: the members it names with @nickname, each
 * once, at most CHAT_MENTIONS_MAX; its JSON is at most this many bytes. */
#define CHAT_MENTIONS_MAX 10
#define CHAT_MENTIONS_JSON_MAX (14 + CHAT_MENTIONS_MAX * (CHAT_NICK_MAX + 3))
/* Away status: `status` with `away` and a `text` of at most this many
 * characters; `joined` and `members` list at most CHAT_AWAY_LIST_MAX of
 * the members they name who are away. */
#define CHAT_STATUS_TEXT_MAX 100
#define CHAT_AWAY_LIST_MAX 100
#define CHAT_AWAY_JSON_MAX (12 + CHAT_AWAY_LIST_MAX * (CHAT_NICK_MAX + 3))
/* Moderation (PROTOCOL.md, "Moderation"; chat_mod.c). */
#define CHAT_ADMINS_MAX 32         /* --admin nicknames */
#define CHAT_OPS_MAX 50            /* ops of one room */
#define CHAT_TOPIC_MAX 300         /* characters of a topic */
#define CHAT_REASON_MAX 200        /* characters of a kick's or ban's reason */
#define CHAT_ROOM_BANS_MAX 1000    /* bans of one room */
#define CHAT_SERVER_BANS_MAX 10000 /* server-wide bans (nicknames and addresses) */
#define CHAT_OWNED_MAX 100         /* rooms one account owns; past it, new rooms have no owner */
#define CHAT_KEPT_ROOMS_MAX 100000 /* rooms kept while empty (an owner, ops, a topic, bans) */
#define CHAT_AUDIT_DEFAULT 50      /* audit.limit when absent */
#define CHAT_AUDIT_MAX 200         /* audit.limit is clamped to this */
#define CHAT_AUDIT_KEEP 10000      /* entries kept per room (and server-wide) */
#define CHAT_ADDRESS_MAX 45        /* characters of a client address (IPv6 text) */
#define CHAT_BAN_SECONDS_MAX (10LL * 365 * 86400)
/* joined's roles and topic: at most this many bytes of JSON. */
#define CHAT_ROLES_JSON_MAX (40 + (CHAT_OPS_MAX + 1) * (CHAT_NICK_MAX + 3))
#define CHAT_TOPIC_JSON_MAX (12 + 6 * CHAT_TOPIC_MAX)
#define CHAT_REPLY_JSON_OVERHEAD 640 /* a reply's JSON around its lists, ref included */

/* Flood control. Every session has two token buckets: one for chat messages
 * (room, private) holding rate_burst tokens and refilled at rate_limit tokens
 * a second, and one for every request of any kind (chat messages, the other
 * requests, even malformed ones), CHAT_RATE_REQUEST_FACTOR times larger and
 * faster.
 *
 * A text message of len bytes costs the request bucket 1 + len / unit
 * tokens, unit = max_message / CHAT_RATE_FRAME_PARTS (at least
 * CHAT_RATE_FRAME_MIN): one of the largest size costs 1 +
 * CHAT_RATE_FRAME_PARTS. It is charged before the message is parsed. A
 * `rooms` or `who` request that is about to scan N rooms or members takes
 * ceil(N / CHAT_RATE_SCAN_ITEMS) more (at most the bucket's size less one).
 * A chat message also takes one token from the message bucket. No charge is
 * more than a full bucket holds.
 *
 * A request finding its bucket short is refused with rate_limited (and a
 * retry_after_ms hint) and has no other effect. The refusal of a message up
 * to CHAT_RATE_REF_PARSE_MAX bytes carries the request's id as ref (the
 * message is parsed only for that); a larger message's only when it ends
 * with a plain "id":"..." member (as JSON.stringify({...req, id}) writes
 * it). A refusal that comes before the hint of an earlier one has passed is
 * a strike: the client is not waiting as told. A session with more than
 * CHAT_FLOOD_STRIKES strikes within CHAT_FLOOD_WINDOW_MS (counted from the
 * first strike of the window) is closed with 1008 through io->close; a
 * client that waits the hints is never closed, however hard it pushes. */
#define CHAT_RATE_REQUEST_FACTOR 5
#define CHAT_RATE_FRAME_PARTS 4
#define CHAT_RATE_FRAME_MIN 4096
#define CHAT_RATE_SCAN_ITEMS 1000
#define CHAT_RATE_REF_PARSE_MAX 1024
#define CHAT_FLOOD_STRIKES 100
#define CHAT_FLOOD_WINDOW_MS 10000

/* Errors the chat logs about its store (failed writes, failed history reads
 * of joins) are written at most once per CHAT_LOG_WINDOW_MS each; what is
 * held back is counted and summarized in the next line. */
#define CHAT_LOG_WINDOW_MS 10000

/* A limit of the transport that welcome.limits reports next to the chat's
 * own (e.g. max_queue, ping_interval_ms). */
typedef struct chat_limit_s {
    const char *name; /* the key; borrowed for the chat's lifetime (a string literal) */
    int64_t value;
} chat_limit_t;
#define CHAT_LIMITS_EXTRA_MAX 16

typedef struct chat_config_s {
    const char *server_name;    /* welcome.server.name (copied by chat_new) */
    const char *server_version; /* welcome.server.version (copied by chat_new) */
    size_t max_text;            /* bytes of message.text (default 4096) */
    /* The transport's WebSocket message limit, reported in welcome.limits
     * (default 65536), and the measure of a message's cost in request
     * tokens (see flood control). Keep it above ~6 × max_text: JSON escapes
     * can make a text six times longer on the wire. */
    size_t max_message;
    size_t max_rooms; /* rooms one connection may be in (default 100) */
    /* Bytes of one reply frame carrying many messages or names (default
     * CHAT_REPLY_BUDGET_DEFAULT; 0 means the default). Raised to
     * chat_reply_budget_min(max_text) when lower. Set it well under the
     * transport's per-connection output cap (e.g. a quarter of it). */
    size_t reply_budget;
    unsigned history_on_join; /* messages sent in joined.history (default 50, at most 200) */
    /* The grace time (PROTOCOL.md, "Accounts and sessions"): a v1 user
     * whose connections dropped without a goodbye lives this long, its
     * presence in rooms kept and privates to it held; a guest's nickname
     * stays its own (`login` with its `resume` token comes back). Default
     * CHAT_RESUME_MS_DEFAULT; 0: none (gone with its last connection). */
    uint64_t resume_ms;
    unsigned rate_burst; /* chat messages a session may send at once (default 20, ≥ 1) */
    double rate_limit;   /* chat messages a second, sustained (default 10); 0 turns
                            flood control off (both buckets) */
    /* Guests (a `login` with a nickname only): on by default; off, such a
     * login is refused with `guests_closed` (accounts only). */
    bool guests_off;
    /* Server admins (`--admin`): accounts of these nicknames count as
     * owners of every room and may ban server-wide. */
    char admins[CHAT_ADMINS_MAX][CHAT_NICK_MAX + 1];
    size_t nadmins;
    /* Reported in welcome.limits after the chat's own; names must differ from
     * them. Fill with chat_config_add_limit. */
    chat_limit_t limits_extra[CHAT_LIMITS_EXTRA_MAX];
    size_t nlimits_extra;
} chat_config_t;

/* Fills cfg with the defaults above (server name "tertulia", version TT_VERSION). */
void chat_config_defaults(chat_config_t *cfg);

/* The smallest reply budget for max_text: room for the largest message's
 * JSON in a `joined` reply with a full members list. The largest message is
 * max_text control characters of six bytes each in JSON (texts stored before
 * such text was refused): 6 × max_text + CHAT_MESSAGE_JSON_OVERHEAD + its
 * names (CHAT_NICK_MAX + CHAT_ROOM_MAX + 6) and mentions
 * (CHAT_MENTIONS_JSON_MAX); the list is CHAT_MEMBERS_MAX × (CHAT_NICK_MAX +
 * 3), with the away list (CHAT_AWAY_JSON_MAX), the roles
 * (CHAT_ROLES_JSON_MAX) and the topic (CHAT_TOPIC_JSON_MAX); the reply's own
 * JSON CHAT_REPLY_JSON_OVERHEAD. With the default max_text (4096) that is
 * 67,935 bytes. */
size_t chat_reply_budget_min(size_t max_text);

/* Adds a limit to report in welcome.limits (name borrowed, see chat_limit_t).
 * Returns false, adding nothing, when CHAT_LIMITS_EXTRA_MAX are already set. */
bool chat_config_add_limit(chat_config_t *cfg, const char *name, int64_t value);

/* What the chat needs from the transport. Calls happen synchronously from
 * inside chat_* functions. The callbacks must not call back into any chat_*
 * function for the same chat_t (a slow consumer is marked and closed after
 * the call returns, as io->close already promises). */
typedef struct chat_io_s {
    /* Deliver msg (one JSON text, its payload) to conn. The same message
     * goes to every recipient of a broadcast: the callee picks the encoding
     * conn needs (src/ws builds and caches it in msg, e.g. ws_msg_frame),
     * takes its own reference on what it keeps, and never modifies the
     * payload. The caller keeps (and later drops) its reference on msg. */
    void (*send)(void *io_ctx, void *conn, tt_msg_t *msg);
    /* Ask the transport to close conn with a WebSocket close code and a
     * short reason. The transport calls chat_session_close later, never
     * from inside this call. */
    void (*close)(void *io_ctx, void *conn, uint16_t code, const char *reason);
    /* As send, for what may be left out when conn is behind (typing):
     * the transport drops it for a connection whose queue is half full.
     * NULL: such frames go through send. Never used for chat messages. */
    void (*send_droppable)(void *io_ctx, void *conn, tt_msg_t *msg);
} chat_io_t;

/* A new chat context. io is copied; io_ctx is passed back to every call.
 * cfg is copied (its strings too); NULL means chat_config_defaults. */
chat_t *chat_new(const chat_config_t *cfg, const chat_io_t *io, void *io_ctx);

/* Applies new settings to a running chat (a configuration reload): max_text,
 * max_rooms, history_on_join, rate_burst, rate_limit, reply_budget and the
 * values of limits_extra (the same names, in the same order, as chat_new
 * had). Every request from now on is held to them; sessions keep their
 * rooms and their buckets (holding at most the new burst), and the next
 * welcome reports them. The server name and version and max_message are
 * fixed at chat_new and not changed. */
void chat_reconfigure(chat_t *chat, const chat_config_t *cfg);

/* A clock for flood control: now_ms(ctx) returns the current time in
 * milliseconds on a monotonic clock. The transport's loop time suits (cheap,
 * one value for a whole iteration); tests inject their own. Without one (or
 * now_ms = NULL) the chat reads CLOCK_MONOTONIC_COARSE. Set it before the
 * first session opens. */
typedef uint64_t (*chat_clock_cb)(void *ctx);
void chat_set_clock(chat_t *chat, chat_clock_cb now_ms, void *ctx);

/* Frees the context, its sessions and rooms without any io call and without
 * telling anyone. Messages still pending and requests still queued are
 * dropped: call chat_flush, then let the store complete everything, first.
 * No store step may be in flight. NULL is a no-op. */
void chat_free(chat_t *chat);

/* A WebSocket connection completed its handshake. conn is the transport's
 * handle (borrowed until chat_session_close). v1 is true when the client
 * negotiated the tertulia.v1 subprotocol; false means a legacy client.
 * peer is a printable address for logs (copied). Never returns NULL. */
chat_session_t *chat_session_open(chat_t *chat, void *conn, bool v1, const char *peer);

/* One complete, UTF-8-valid text message from the session's client. data is
 * borrowed for the duration of the call. Any content is safe: malformed
 * requests get an error reply (v1) or are dropped and logged (legacy). */
void chat_session_on_text(chat_t *chat, chat_session_t *s, const char *data, size_t len);

/* The connection is gone (or going): the session is detached from conn at
 * once (no io call for conn happens after this returns; what it would have
 * been sent is dropped), and closed in its turn, after the requests it sent
 * before: it leaves its rooms and nickname, the remaining members get
 * member_left with reason (e.g. "disconnect", "timeout", "leave"; NULL
 * means "disconnect"; a static string), and it is freed. s must not be used
 * by the caller afterwards. */
void chat_session_close(chat_t *chat, chat_session_t *s, const char *reason);

/* The client ended its side of the connection (EOF) and will send nothing
 * more, but may still read. Once every request it sent has run (their
 * replies are sent as usual), the chat asks the transport to close conn
 * (io->close with 1000 "end of input"), which then closes the session as
 * any close does. */
void chat_session_end_of_input(chat_t *chat, chat_session_t *s);

/* The session's nickname, or NULL before a successful login. Borrowed: valid
 * until chat_session_close. */
const char *chat_session_nickname(const chat_session_t *s);

/* A room as the admin page lists it. */
typedef struct chat_room_info_s {
    const char *name; /* its canonical spelling (borrowed for the call) */
    size_t name_len;
    uint32_t members;     /* people (an account or guest counts once, grace time included) */
    uint32_t connections; /* sessions in it */
} chat_room_info_t;
/* Calls cb for every room, in no order, until it returns false. The chat
 * must not change during the walk. */
typedef bool (*chat_room_cb)(void *ctx, const chat_room_info_t *room);
void chat_rooms_each(const chat_t *chat, chat_room_cb cb, void *ctx);

/* Called once per loop iteration, before the transport writes its queues:
 * hands the messages accepted during the iteration to the store as one
 * batch (or, with no store, delivers them at once); they are delivered
 * when the store reports them written. Cheap when nothing is pending. */
/* Returns true if a batch went to the store to be written (its delivery
 * then waits for the store's completion). */
bool chat_flush(chat_t *chat);

/* Ends what has waited out its grace time (users and presences whose
 * connections dropped): the transport calls it about once a second. */
void chat_tick(chat_t *chat);

/* Counters for logs and benchmarks. */
typedef struct chat_stats_s {
    uint64_t sessions; /* open sessions */
    uint64_t rooms;    /* rooms that exist now */
    uint64_t kept;     /* of them, rooms kept while empty (an owner, ops, a topic, bans) */
    uint64_t users;    /* nicknames held (guests within their grace time too) */
    uint64_t messages; /* chat messages accepted since start */
} chat_stats_t;
void chat_stats(const chat_t *chat, chat_stats_t *out);

/* The error codes the chat sends (error.code), the index of each in
 * chat_counters_t.refusals; the last, "other", counts a code not listed. */
/* clang-format off */
#define CHAT_REFUSAL_CODES(X) \
    X(bad_request) \
    X(bad_json) \
    X(unknown_type) \
    X(not_logged_in) \
    X(rate_limited) \
    X(unavailable) \
    X(too_many_rooms) \
    X(room_invalid) \
    X(message_too_long) \
    X(already_logged_in) \
    X(nickname_invalid) \
    X(auth_failed) \
    X(nickname_taken) \
    X(not_in_room) \
    X(no_such_user) \
    X(nickname_registered) \
    X(password_invalid) \
    X(registration_closed) \
    X(guests_closed) \
    X(not_permitted) \
    X(banned) \
    X(no_such_room) \
    X(limit_reached) \
    X(not_found) \
    X(other)
/* clang-format on */
#define CHAT_REFUSAL_ENUM_(code) CHAT_REFUSAL_##code,
enum { CHAT_REFUSAL_CODES(CHAT_REFUSAL_ENUM_) CHAT_REFUSAL_COUNT };
extern const char *const chat_refusal_names[CHAT_REFUSAL_COUNT];

/* What the chat counts for /metrics: plain integers, updated on the loop
 * thread that owns the chat (no atomics). Index 0 of the per-kind arrays
 * is CHAT_MSG_ROOM, 1 CHAT_MSG_PRIVATE. */
typedef struct chat_counters_s {
    uint64_t logins;       /* successful logins (guests, resumes, accounts) */
    uint64_t accepted[2];  /* chat messages accepted */
    uint64_t delivered[2]; /* copies handed to connections (a private's echoes too) */
    uint64_t refusals[CHAT_REFUSAL_COUNT]; /* error replies sent (or dropped, legacy) */
    uint64_t store_errors;                 /* failed batch writes and history reads */
    bool store_failing;                    /* the latest batch write failed */
    char store_error[128];                 /* its reason, while store_failing */
    tt_hist_t commit_us;   /* a batch: handed to the store until its write completed */
    tt_hist_t delivery_us; /* a batch: formed (end of the iteration that accepted its
                              messages) until handed to the recipients' queues */
} chat_counters_t;

/* The chat's counters (borrowed: live as long as the chat). */
const chat_counters_t *chat_counters(const chat_t *chat);

/* True if name[0..len) is a valid nickname: 1–32 of [A-Za-z0-9_.-]. */
bool chat_nickname_is_valid(const char *name, size_t len);

/* True if name[0..len) is a valid room name: 1–64 of [A-Za-z0-9_.-] in all,
 * optionally after one leading '#'; "#" alone is not a name. */
bool chat_room_name_is_valid(const char *name, size_t len);

/* ---- The store interface --------------------------------------------------
 *
 * History is not the chat's business: a store (src/store/) is attached with
 * chat_set_store. With no store, joined.history and history.messages are
 * empty and `since`/`before` are validated and otherwise ignored.
 *
 * All hooks are called on the loop thread, from inside chat_* functions;
 * every pointer they receive is borrowed until they return. Their
 * completions run on the loop thread too. */

typedef enum {
    CHAT_MSG_ROOM = 1,
    CHAT_MSG_PRIVATE = 2,
} chat_msg_kind_t;

/* One accepted chat message. Strings are not NUL-terminated (text may not
 * contain NUL either: the chat refuses it). */
typedef struct chat_message_s {
    uint64_t id; /* strictly increasing, 1 ≤ id < 2^53 */
    int64_t ts;  /* ms since the Unix epoch (CLOCK_REALTIME) */
    chat_msg_kind_t kind;
    const char *from; /* sender's nickname */
    size_t from_len;
    const char *to; /* room name or recipient's nickname */
    size_t to_len;
    const char *text; /* message.text, UTF-8 */
    size_t text_len;
    /* Read back from the store only (history, search); accepted messages
     * leave them unset. */
    int64_t edited_ts; /* 0, or when its text was last edited */
    bool deleted;      /* deleted: text is empty, and shown without it */
} chat_message_t;

/* A store step finished (on the loop thread): rc is 0 or a negative code;
 * store_last_id is the highest id the store holds now (for resynchronising
 * the chat's ids after a refused batch). */
typedef void (*chat_store_done_cb)(void *arg, int rc, uint64_t store_last_id);

/* A history read finished: msgs[0..n), oldest first, borrowed until the
 * callback returns; more: older messages in the range were left out. On
 * failure rc < 0 and n == 0. */
typedef void (*chat_history_done_cb)(void *arg, int rc, const chat_message_t *msgs, size_t n,
                                     bool more);

/* One private conversation of an account (the `conversations` reply). */
typedef struct chat_conv_s {
    const char *with; /* the other side's nickname, as last spelled */
    size_t with_len;
    uint64_t last_id; /* its newest message */
    uint32_t unread;  /* messages from the other side after the read marker (capped) */
} chat_conv_t;
typedef void (*chat_convs_done_cb)(void *arg, int rc, const chat_conv_t *convs, size_t n);

/* Moderation as the store keeps it (see chat_mod.c). Strings are not
 * NUL-terminated; a length of 0 means none. */
typedef struct chat_mod_room_s {
    const char *name; /* the room's canonical spelling */
    size_t name_len;
    const char *owner;
    size_t owner_len;
    const char *ops; /* the ops' nicknames, separated by one space */
    size_t ops_len;
    const char *topic;
    size_t topic_len;
    const char *topic_by;
    size_t topic_by_len;
    int64_t topic_ts;
} chat_mod_room_t;

typedef struct chat_mod_ban_s {
    const char *room; /* NULL: server-wide */
    size_t room_len;
    bool address; /* target is a client address, not a nickname */
    const char *target;
    size_t target_len;
    int64_t until; /* ms since the epoch; 0: for ever */
    int64_t ts;
    const char *by;
    size_t by_len;
    const char *reason;
    size_t reason_len;
} chat_mod_ban_t;

/* One moderation action, as the audit log keeps it. */
typedef struct chat_audit_s {
    uint64_t id; /* given by the store (read back); 0 when written */
    int64_t ts;
    const char *room; /* NULL: server-wide */
    size_t room_len;
    const char *by;
    size_t by_len;
    const char *action; /* "topic", "kick", "ban", "unban", "op", "deop", "owner", "create" */
    size_t action_len;
    const char *target; /* a nickname or an address; NULL: none */
    size_t target_len;
    const char *reason;
    size_t reason_len;
    const char *text; /* a topic's text */
    size_t text_len;
    int64_t until; /* a ban's end (0: for ever, or not a ban) */
} chat_audit_t;

/* What one action changes, written in one transaction: the room's row
 * (room_drop: deleted, the room keeps nothing), a ban added or lifted, and
 * the audit entry (NULL: none). */
typedef struct chat_mod_write_s {
    const chat_mod_room_t *room;
    bool room_drop;
    const chat_mod_ban_t *ban;
    bool ban_drop;
    const chat_audit_t *audit;
} chat_mod_write_t;

typedef void (*chat_mod_room_cb)(void *arg, const chat_mod_room_t *room);
typedef void (*chat_mod_ban_cb)(void *arg, const chat_mod_ban_t *ban);
typedef void (*chat_audit_done_cb)(void *arg, int rc, const chat_audit_t *entries, size_t n,
                                   bool more);
/* A stored message as message_get reads it (no text). For a room message
 * msg.to is the room's stored key (folded, without '#'). */
typedef struct chat_msg_info_s {
    chat_message_t msg;
    bool joined; /* the account's record of rooms holds its room */
} chat_msg_info_t;
typedef void (*chat_msg_info_done_cb)(void *arg, int rc, const chat_msg_info_t *info);

/* A search (chat_search.c): words (all must match), over the readable
 * rooms and, for an account, its record of rooms and its stored
 * conversations; only: one room (a name) or conversation (with: the other
 * side's nickname), or NULL. Everything is borrowed for the call. */
#define CHAT_SEARCH_WORDS_MAX 10
typedef struct chat_search_s {
    const char *words[CHAT_SEARCH_WORDS_MAX];
    size_t word_lens[CHAT_SEARCH_WORDS_MAX];
    size_t nwords;
    int64_t account; /* 0: a guest */
    const char *nick;
    size_t nick_len;
    const char *const *rooms; /* names */
    const size_t *room_lens;
    size_t nrooms;
    const char *room; /* only this room, or NULL */
    size_t room_len;
    const char *with; /* only the conversation with this nickname, or NULL */
    size_t with_len;
    uint64_t before; /* 0: from the newest */
    unsigned limit;
} chat_search_t;
/* One result: msg (to: a room's stored key, or the recipient) and its text
 * with each match between the bytes 0x01 and 0x02. */
typedef struct chat_search_hit_s {
    chat_message_t msg;
    const char *marked;
    size_t marked_len;
} chat_search_hit_t;
/* hits[0..n) newest first, borrowed for the call; more: older ones may
 * match, from before = next_before. */
typedef void (*chat_search_done_cb)(void *arg, int rc, const chat_search_hit_t *hits, size_t n,
                                    bool more, uint64_t next_before);

/* The hooks may complete synchronously (the callback runs before the hook
 * returns) or later, from the loop (a store on a worker thread). A hook
 * that returns a negative code (e.g. a full queue) never calls its
 * callback. Completions must come in the order the hooks were called. */
typedef struct chat_store_hooks_s {
    /* The highest id ever stored (0 if none), read once by chat_set_store
     * so ids keep increasing across restarts. Returns 0 or a negative code.
     * May be NULL (ids then start at 1). */
    int (*last_id)(void *store_ctx, uint64_t *out);

    /* Durably writes msgs[0..n) (room messages only, in id order, ids
     * chosen by the chat) as one batch, typically one transaction. Called by
     * chat_flush; none of them is delivered before done reports rc 0. The
     * messages and their strings are borrowed only during the call. On
     * failure (returned or reported) none of them is delivered and each v1
     * sender gets an error `unavailable` (with its ref). */
    int (*append_batch)(void *store_ctx, const chat_message_t *msgs, size_t n,
                        chat_store_done_cb done, void *arg);

    /* Room history: the newest `limit` messages of room with
     * after < id < before (after = 0 and before = 0 mean no bound), oldest
     * first. Serves `history` (before), the history of `joined` (no bounds)
     * and `join` with `since` (after; the client fills any gap with
     * `history` before the first id it got). On failure joined.history is
     * empty and a `history` request gets the error `unavailable`. */
    int (*history)(void *store_ctx, const char *room, size_t room_len, uint64_t after,
                   uint64_t before, unsigned limit, chat_history_done_cb done, void *arg);

    /* Ids up to `upto` may be given out (private messages are not stored):
     * makes last_id return at least upto after a restart, so no id is
     * issued twice. Called rarely (every CHAT_ID_RESERVE ids), ahead of
     * use. May be NULL. Failures are logged; ids stay unique while the
     * process lives. */
    int (*reserve_ids)(void *store_ctx, uint64_t upto, chat_store_done_cb done, void *arg);

    /* Private conversations between accounts (all three may be NULL: then
     * privates are not stored, as without a store). With history_with set,
     * append_batch also receives CHAT_MSG_PRIVATE messages, both of whose
     * sides are accounts, to store in their conversation. */

    /* The conversation of nicknames a and b (either order), as history. */
    int (*history_with)(void *store_ctx, const char *a, size_t a_len, const char *b, size_t b_len,
                        uint64_t after, uint64_t before, unsigned limit, chat_history_done_cb done,
                        void *arg);

    /* The account's conversations, newest first, at most limit: convs[0..n)
     * borrowed until the callback returns. */
    int (*conversations)(void *store_ctx, int64_t account, const char *nick, size_t nick_len,
                         unsigned limit, chat_convs_done_cb done, void *arg);

    /* Moves the account's read marker of a room (with false: name is the
     * room) or of its conversation with the nickname name (with true) up
     * to up_to; a lower value than the stored one changes nothing. */
    int (*read_set)(void *store_ctx, int64_t account, const char *nick, size_t nick_len,
                    const char *name, size_t name_len, bool with, uint64_t up_to,
                    chat_store_done_cb done, void *arg);

    /* Moderation (all three may be NULL: then roles, topics and bans live
     * only while the process does). mod_load is called once, by
     * chat_set_store, and completes before it returns: every kept room,
     * then every ban that has not ended (now_ms: the time). */
    int (*mod_load)(void *store_ctx, int64_t now_ms, chat_mod_room_cb room, chat_mod_ban_cb ban,
                    void *arg);
    int (*mod_write)(void *store_ctx, const chat_mod_write_t *w, chat_store_done_cb done,
                     void *arg);
    /* The audit log of a room (room NULL: the server-wide actions), the
     * newest `limit` entries with id < before (0: no bound), oldest first. */
    int (*audit_read)(void *store_ctx, const char *room, size_t room_len, uint64_t before,
                      unsigned limit, chat_audit_done_cb done, void *arg);
    /* Edit, delete, search (chat_edit.c, chat_search.c); all NULL: those
     * requests find nothing (`not_found`, no results). */

    /* The stored message id: done gets rc 0 and info, rc 1 (no such
     * message) or rc < 0. account > 0: info->joined tells whether the
     * account's record of rooms holds the message's room. */
    int (*message_get)(void *store_ctx, uint64_t id, int64_t account, chat_msg_info_done_cb done,
                       void *arg);
    /* Sets the message's text (text NULL: deletes it) and erases the old
     * one from the store; done gets rc 0, rc 1 (no such message, or
     * deleted meanwhile: nothing changed) or rc < 0. */
    int (*message_change)(void *store_ctx, uint64_t id, const char *text, size_t len,
                          int64_t edited_ts, chat_store_done_cb done, void *arg);
    /* Records that the account joined room (a name): search reads it. */
    int (*room_joined)(void *store_ctx, int64_t account, const char *room, size_t room_len,
                       chat_store_done_cb done, void *arg);
    /* A search (chat_search_t); results newest first. */
    int (*search)(void *store_ctx, const chat_search_t *q, chat_search_done_cb done, void *arg);
} chat_store_hooks_t;

/* Attaches a store (hooks copied; store_ctx borrowed until chat_free or the
 * next chat_set_store). hooks = NULL detaches. Call before the first session
 * opens. Returns 0, or the negative code of last_id (then nothing changed). */
int chat_set_store(chat_t *chat, const chat_store_hooks_t *hooks, void *store_ctx);

/* ---- The cluster interface -----------------------------------------------
 *
 * With a bus (a cluster's link to Redis, src/cluster), several servers
 * serve one chat. The bus gives every chat message its id (cluster-wide),
 * and room messages are delivered only from what the bus brings back
 * (chat_bus_deliver), the sender's own node included, so every member on
 * every node sees one order. Accepted messages wait for the bus as they
 * wait for the store without one: chat_flush publishes the iteration's
 * messages in one call; its completion acks their senders and delivers the
 * private messages; a room message's copies come with chat_bus_deliver,
 * and its sender's ack always before its own copy. */

typedef struct chat_bus_msg_s {
    const chat_message_t *msg; /* id 0: the bus gives it */
    const char *mentions;      /* a room message's mentions: nicknames joined by ',' (NULL: none) */
    size_t mentions_len;
    uint64_t token; /* this chat's publish counter: comes back with the message */
    /* A private's sender is an account: the bus stores it when the
     * recipient is one too (a guest's never are). */
    bool from_account;
} chat_bus_msg_t;

/* ids[i] is the id the bus gave msgs[i], or 0 when it was refused (the bus
 * is unreachable, or the message was too late): that one is stored nowhere
 * and delivered to nobody, and its sender gets `unavailable`. Called once,
 * on the loop thread, in the order of the publish calls. */
typedef void (*chat_bus_done_cb)(void *arg, const uint64_t *ids, size_t n);
/* In ids: a private message to a nickname nobody in the cluster has; its
 * sender gets `no_such_user`. */
#define CHAT_BUS_NO_USER UINT64_MAX

/* names[0..n) (with their lengths) and members[0..n), borrowed for the
 * call. */
typedef void (*chat_bus_rooms_cb)(void *arg, int rc, const char *const *names,
                                  const size_t *name_lens, const uint32_t *members, size_t n);

/* The most rooms the bus lists for `rooms` (the page is cut from them). */
#define CHAT_BUS_ROOMS_MAX 10000

/* An event for message_change: frame (JSON, borrowed) to the members of
 * the room named target (room true) or to the user target's connections. */
typedef struct chat_bus_event_s {
    bool room;
    const char *target;
    size_t target_len;
    const char *frame;
    size_t frame_len;
} chat_bus_event_t;

typedef struct chat_bus_hooks_s {
    /* Publishes msgs[0..n) (borrowed for the call), in order. Returns 0
     * (done will be called) or a negative code (it will not: every one is
     * refused). */
    int (*publish)(void *ctx, const chat_bus_msg_t *msgs, size_t n, chat_bus_done_cb done,
                   void *arg);
    /* The chat has the room now (on: its first member is joining, or it is
     * kept) or no longer (off): the bus follows its messages while on. name
     * is the room's spelling, borrowed for the call. On again for a room
     * it has: a kept room with no member here got its first one, and the
     * bus brings the other nodes' people again (chat_bus_people, quiet). */
    void (*room_watch)(void *ctx, const char *name, size_t len, bool on);
    /* A room's history, as the store's history hook (which it replaces),
     * in step with chat_bus_deliver: a read without `before` (a join's)
     * holds nothing the chat has not been given, and what comes after it
     * reaches the reader through chat_bus_deliver. */
    int (*history)(void *ctx, const char *room, size_t room_len, uint64_t after, uint64_t before,
                   unsigned limit, chat_history_done_cb done, void *arg);
    /* A user of this node is in the room now (joined true) or no longer
     * (reason: member_left's); the other nodes' members hear of it from
     * the bus (chat_bus_presence). May be NULL. */
    void (*presence)(void *ctx, const char *room, size_t room_len, const char *nick,
                     size_t nick_len, bool joined, const char *reason);
    /* A user of this node ended: its nickname is free in the cluster. May
     * be NULL. */
    void (*release)(void *ctx, const char *nick, size_t nick_len);
    /* A new guest's resume token (its hash): a login with it on another
     * node resumes the guest there (the auth hook's GUEST check then
     * carries the hash). May be NULL. */
    void (*guest_token)(void *ctx, const char *nick, size_t nick_len,
                        const uint8_t hash[AUTH_TOKEN_HASH_BYTES]);
    /* The cluster's rooms with people in them and their member counts (at
     * most max), for `rooms`; done gets rc < 0 when the bus cannot tell
     * (the reply is then this node's view). Returns 0 (done will be
     * called) or a negative code. May be NULL. */
    int (*rooms)(void *ctx, unsigned max, chat_bus_rooms_cb done, void *arg);
    /* A private message from `from`, a user of another node, held here for
     * `to` was not delivered: the bus tells the sender's node
     * (chat_bus_undelivered there). May be NULL. */
    void (*undelivered)(void *ctx, const char *from, size_t from_len, uint64_t id, const char *to,
                        size_t to_len);
    /* An event frame (frame[0..frame_len), JSON, borrowed: `typing`,
     * `status`, or an account's `read` to itself) of user nick for the
     * other nodes: to the room's members
     * there (room true: target is the room's name) or to the user target's
     * connections there (false); chat_bus_relay there. evid (not 0): one
     * event sent to several targets, which a connection gets once. Nothing
     * is stored. May be NULL. */
    void (*relay)(void *ctx, bool room, const char *target, size_t target_len, const char *nick,
                  size_t nick_len, uint64_t evid, const char *frame, size_t frame_len);
    /* Edit and delete in a cluster (chat_edit.c; both NULL: the store's
     * message_get and message_change serve them). message_get is the
     * store's hook of that name, read where the messages are (with the
     * account's record of rooms there too). */
    int (*message_get)(void *ctx, uint64_t id, int64_t account, chat_msg_info_done_cb done,
                       void *arg);
    /* Sets the stored message's text (text NULL: deletes it), erasing the
     * old one, and in the same step sends events[0..n) (`edited` or
     * `deleted` frames) to every node, this one included, where
     * chat_bus_change hands them out: in order with the room's messages,
     * so a member that gets `deleted` never gets the message afterwards.
     * done: rc 0, 1 (no such message, or deleted meanwhile), 2 (it cannot
     * be changed in place: too many messages follow it) or rc < 0. */
    int (*message_change)(void *ctx, uint64_t id, const char *text, size_t len, int64_t edited_ts,
                          const chat_bus_event_t *events, size_t n, chat_store_done_cb done,
                          void *arg);
} chat_bus_hooks_t;

/* Attaches a bus (hooks copied, ctx borrowed until chat_free); node, this
 * server's name in the cluster, goes into welcome.server.node. Call before
 * the first session opens, after chat_set_store. */
void chat_set_bus(chat_t *chat, const chat_bus_hooks_t *hooks, void *ctx, const char *node);

/* A room message from the bus: the bus calls it for each of a room's
 * messages once, in the room's order, while the chat watches the room.
 * m->to is the room's spelling; mentions as in chat_bus_msg_t; token: this
 * chat's publish token when it published the message, else 0. */
void chat_bus_deliver(chat_t *chat, const chat_message_t *m, const char *mentions,
                      size_t mentions_len, uint64_t token);

/* A private message from the bus, for the user of this node named
 * for_nick: its copies to that user's connections when it is m->to (the
 * recipient: held while it has none, within its grace time) and when it
 * is m->from (the sender's echo). token as for chat_bus_deliver. stored:
 * it is in its conversation, so one past what is held for the recipient
 * waits there and is not reported `undelivered`. */
void chat_bus_private(chat_t *chat, const chat_message_t *m, uint64_t token, const char *for_nick,
                      size_t for_len, bool stored);

/* The bus says a private message this node's user for_nick sent (id, to
 * `to`) was not delivered: its v1 connections hear `undelivered`. */
void chat_bus_undelivered(chat_t *chat, const char *for_nick, size_t for_len, uint64_t id,
                          const char *to, size_t to_len);

/* An event frame from another node (chat_bus_hooks_t.relay): to the
 * room's v1 members here (room true; a `typing` frame not to the typist's
 * own connections), or to the v1 connections of the user target (false).
 * evkey (not 0) names the event cluster-wide: a connection it reached
 * already through another target gets it no more. A `status` frame also
 * sets the away status of the user it names here. A `read` frame goes
 * only to the account target's connections, and only when target is
 * nick (its own marker). Frames of any other type are dropped. */
void chat_bus_relay(chat_t *chat, bool room, const char *target, size_t target_len,
                    const char *nick, size_t nick_len, uint64_t evkey, const char *frame,
                    size_t frame_len);

/* An `edited` or `deleted` frame from the bus (message_change's event, on
 * every node): to the v1 members of the room named target (room true) or
 * to the v1 connections of the user target. Frames of any other type are
 * dropped. */
void chat_bus_change(chat_t *chat, bool room, const char *target, size_t target_len,
                     const char *frame, size_t frame_len);

/* Another node's share of a person in room begins (joined) or ends
 * (reason): node is that node's slot (the bus's small number for it; 0 to
 * 63, slots past 63 share one). The room's members here hear
 * member_joined when the person comes into the room and member_left when
 * its last share ends, this node's included (a user of this node in the
 * room through two nodes leaves nobody's view when one of them lets it
 * go), and `who`, joined.members and the member counts list it once
 * meanwhile. Rooms the chat does not have are ignored. */
void chat_bus_presence(chat_t *chat, const char *room, size_t room_len, const char *nick,
                       size_t nick_len, unsigned node, bool joined, const char *reason);

/* The other nodes' people of room, all of them (after the bus subscribed
 * to it, or again after losing it): nicks[k] through node slot nodes[k]
 * (a person on two nodes is listed twice). The shares the chat counts and
 * are not listed end (member_left, reason "disconnect", for a person left
 * with none); those missing join, quietly when quiet (the room was just
 * created here: its joiner's `joined` lists them). */
void chat_bus_people(chat_t *chat, const char *room, size_t room_len, const char *const *nicks,
                     const size_t *nick_lens, const unsigned *nodes, size_t n, bool quiet);

/* This node's own shares of presence, for the bus to restate them when
 * its link was gone a while (what it told the cluster meanwhile was
 * lost): room once per room that has people of this node (here: its
 * connections, or parked), with their nicknames; user once per user of
 * this node. Everything borrowed for the call. */
typedef struct chat_bus_shares_s {
    void (*room)(void *ctx, const char *room, size_t room_len, const char *const *nicks,
                 const size_t *nick_lens, size_t n);
    void (*user)(void *ctx, const char *nick, size_t nick_len,
                 const uint8_t *resume_hash /* a guest's (AUTH_TOKEN_HASH_BYTES), else NULL */);
} chat_bus_shares_t;
void chat_bus_shares(chat_t *chat, const chat_bus_shares_t *cb, void *ctx);

/* A moderation change from the bus: every one made in the cluster, this
 * node's own too (ours), in the order Redis stored them. row is the
 * room's state after it (NULL: it keeps nothing now); ban the ban given
 * (or, with ban_drop, lifted). The chat takes the state (its members
 * hear `roles` and `topic` when they changed) and, when not ours, does
 * the change's kick or ban to this node's users. Strings are borrowed
 * for the call, not NUL-terminated; a length of 0 means none. */
typedef struct chat_bus_mod_s {
    bool ours;
    const char *action; /* "topic", "kick", "ban", "unban", "op", "deop", "owner", "create" */
    size_t action_len;
    const char *by;
    size_t by_len;
    const char *target;
    size_t target_len;
    const char *reason;
    size_t reason_len;
    int64_t until;
    const char *room; /* NULL: server-wide */
    size_t room_len;
    const chat_mod_room_t *row;
    const chat_mod_ban_t *ban;
    bool ban_drop;
} chat_bus_mod_t;

void chat_bus_mod(chat_t *chat, const chat_bus_mod_t *ev);

/* The whole moderation state again, after the bus may have missed
 * changes: begin; every kept room with its bans (sync_room) and every
 * server-wide ban (sync_ban); end, which drops whatever was not named. */
void chat_bus_mod_sync_begin(chat_t *chat);
void chat_bus_mod_sync_room(chat_t *chat, const chat_mod_room_t *row, const chat_mod_ban_t *bans,
                            size_t n);
void chat_bus_mod_sync_ban(chat_t *chat, const chat_mod_ban_t *ban);
void chat_bus_mod_sync_end(chat_t *chat);

/* ---- The accounts interface ----------------------------------------------
 *
 * Accounts are not the chat's business either: the chat parses `register`,
 * `login` with a password or a token, `logout` and `password`, and hands
 * the check to the auth hook (the server's, which hashes passwords on
 * worker threads and keeps accounts in the store); it applies the answer
 * in its turn. While a session's check runs, that session's later
 * requests wait (at most CHAT_AUTH_WAIT_MAX; more are refused with
 * `rate_limited`), and every other session goes on. Without a hook only
 * guests exist (and nicknames are not checked against accounts). */

#define CHAT_AUTH_WAIT_MAX 32
#define CHAT_PASSWORD_MIN 8           /* bytes; `password_invalid` outside */
#define CHAT_PASSWORD_MAX 1024        /* bytes */
#define CHAT_TOKEN_MAX 512            /* bytes of a `token` (an account's) */
#define CHAT_JWT_MAX 8192             /* bytes of a `jwt` (an operator's signed token) */
#define CHAT_CONVERSATIONS_DEFAULT 50 /* conversations in one reply */
#define CHAT_CONVERSATIONS_MAX 200

typedef enum {
    CHAT_AUTH_REGISTER = 1, /* nick, secret = password: a new account and a token */
    CHAT_AUTH_PASSWORD,     /* nick, secret = password: a token */
    CHAT_AUTH_TOKEN,        /* secret = token: the account it belongs to */
    CHAT_AUTH_GUEST,        /* nick: is it free of accounts? */
    CHAT_AUTH_LOGOUT,       /* token_hash (or none); everywhere: every token of account */
    CHAT_AUTH_CHANGE,       /* account, secret = old password, new_secret: a new token */
    CHAT_AUTH_JWT,          /* secret = an operator's JWT: the account its sub names */
    CHAT_AUTH_LOOKUP,       /* nick: the account of that name (a private to it) */
} chat_auth_op_t;

typedef struct chat_auth_req_s {
    chat_auth_op_t op;
    const char *nick; /* REGISTER, PASSWORD, GUEST; CHANGE: the account's */
    size_t nick_len;
    const char *secret; /* the password or the token */
    size_t secret_len;
    const char *new_secret; /* CHANGE: the new password */
    size_t new_secret_len;
    int64_t account_id;        /* LOGOUT, CHANGE: the session's account */
    const uint8_t *token_hash; /* LOGOUT, CHANGE: the token the session holds (NULL: none) */
    bool everywhere;           /* LOGOUT: revoke every token of the account */
    const char *peer;          /* the client's address ("1.2.3.4:5678"), for rate limits */
} chat_auth_req_t;

typedef enum {
    CHAT_AUTH_OK = 0,
    CHAT_AUTH_FAILED,      /* `auth_failed`: wrong nickname, password or token */
    CHAT_AUTH_LIMITED,     /* `rate_limited` (retry_ms): too many failures, or too many
                              checks waiting for a worker */
    CHAT_AUTH_TAKEN,       /* REGISTER: the nickname is an account already */
    CHAT_AUTH_REGISTERED,  /* GUEST: the nickname is an account's */
    CHAT_AUTH_CLOSED,      /* REGISTER: the server takes no new accounts */
    CHAT_AUTH_UNAVAILABLE, /* `unavailable`: the store failed */
    CHAT_AUTH_NOTFOUND,    /* LOOKUP: no account of that name */
    CHAT_AUTH_IN_USE,      /* `nickname_taken`: held elsewhere (another node of the cluster) */
} chat_auth_status_t;

typedef struct chat_auth_result_s {
    chat_auth_status_t status;
    int64_t account_id;           /* OK (not GUEST, LOGOUT) */
    char nick[CHAT_NICK_MAX + 1]; /* OK: the account's spelling of its nickname */
    size_t nick_len;
    char token[AUTH_TOKEN_LEN + 1];            /* OK of REGISTER, PASSWORD, CHANGE: a new token */
    uint8_t token_hash[AUTH_TOKEN_HASH_BYTES]; /* OK: the hash of the token now held */
    uint64_t retry_ms;                         /* LIMITED */
} chat_auth_result_t;

/* Called exactly once per accepted check, on the loop thread, never from
 * inside authenticate; r is borrowed for the call. */
typedef void (*chat_auth_done_cb)(void *arg, const chat_auth_result_t *r);

typedef struct chat_auth_hooks_s {
    /* Starts a check. Every pointer in req is borrowed for the call only.
     * Returns 0 (done will be called), or a negative code (done will not
     * be; the client gets `unavailable`). */
    int (*authenticate)(void *ctx, const chat_auth_req_t *req, chat_auth_done_cb done, void *arg);
} chat_auth_hooks_t;

/* Attaches the accounts (hooks copied, ctx borrowed until chat_free);
 * NULL detaches. Call before the first session opens. Every check started
 * must have completed before chat_free. */
void chat_set_auth(chat_t *chat, const chat_auth_hooks_t *hooks, void *ctx);

#endif
