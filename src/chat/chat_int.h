/* Internals shared by the chat's source files: the context, sessions, rooms
 * and the membership records that tie them together both ways. Not part of
 * the contract; only src/chat/ includes this. */
#ifndef TT_CHAT_CHAT_INT_H
#define TT_CHAT_CHAT_INT_H

#include <jansson.h>

#include "chat/chat.h"
#include "core/list.h"
#include "core/map.h"

typedef struct chat_room_s chat_room_t;
typedef struct chat_member_s chat_member_t;
typedef struct chat_user_s chat_user_t;
typedef struct chat_presence_s chat_presence_t;
typedef struct chat_held_s chat_held_t;

/* One session in one room. Both sides index it (session → rooms for cleanup
 * and the max_rooms limit, room → members for fan-out) and it remembers its
 * position in each array, so leaving is two swap-removes, O(1). */
struct chat_member_s {
    chat_room_t *room;
    chat_session_t *session;
    chat_presence_t *pres; /* its user's presence in the room */
    uint32_t room_idx;     /* in room->members */
    uint32_t sess_idx;     /* in session->rooms */
};

/* One user (a nickname: a guest or an account) in one room, however many
 * of its connections are in it (nsess). Presence is about users: the
 * others hear member_joined when the first connection of a user joins and
 * member_left when the last one leaves; `who` and the member counts list
 * users. A presence whose connections all dropped without saying goodbye
 * stays, with nsess 0, "parked", for the grace time: a reload or a
 * reconnect joins again without any noise. Indexed both ways, swap-removed
 * like memberships. */
struct chat_presence_s {
    chat_room_t *room;
    chat_user_t *user;
    /* In a cluster, a person may be in the room through several nodes (an
     * account logged in on two, a guest resumed on another): here is this
     * node's share (its connections, or parked), nodes the other nodes'
     * (bits of the bus's node slots, chat_bus_presence). The presence
     * lives while either holds, so the members here hear member_joined and
     * member_left once per person, whichever node it comes and goes by. */
    uint64_t nodes;
    uint32_t nsess;    /* the user's connections in the room */
    uint32_t room_idx; /* in room->people */
    uint32_t user_idx; /* in user->rooms */
    bool here;         /* parked: here with nsess 0 (user->parked counts them) */
};

struct chat_room_s {
    /* The canonical spelling (the one it was created under); the rooms map's
     * key is name + skip (without the '#'), compared ignoring case. */
    char name[CHAT_ROOM_MAX + 1];
    size_t name_len;
    uint8_t skip; /* 1 when name starts with '#' */
    chat_member_t **members;
    uint32_t count, cap;
    uint32_t v1_count; /* members that get presence events */
    chat_presence_t **people;
    uint32_t npeople, people_cap;
    struct chat_roommod_s *mod; /* roles, topic, bans (chat_mod.c); NULL: none ever set */
};

typedef enum {
    CHAT_USER_GUEST = 1,   /* a nickname held while connected, and for the grace time */
    CHAT_USER_ACCOUNT = 2, /* an account (a password, or an operator's JWT) */
    CHAT_USER_REMOTE = 3,  /* a user of another node of the cluster: presences only, each with
                              nsess 0, here false (chat_bus_presence) */
} chat_user_kind_t;

/* A private message waiting for a guest whose connections all dropped:
 * delivered when it resumes, or the sender is told `undelivered` when its
 * grace time ends. */
struct chat_held_s {
    chat_held_t *next;
    tt_msg_t *out; /* the private frame (one reference) */
    uint64_t id;
    char from[CHAT_NICK_MAX + 1];
    uint8_t from_len;
    uint64_t from_uid;
};

/* An identity: the nicks map's value. Its sessions are the connections
 * logged in as it (an account's tabs and devices, or a guest's resumed
 * ones); it lives while any does, and a guest for the grace time after. */
struct chat_user_s {
    char nick[CHAT_NICK_MAX + 1]; /* the nicks map's key */
    size_t nick_len;
    uint64_t uid; /* unique while the process lives: stale references find another */
    chat_user_kind_t kind;
    uint32_t parked;         /* presences with nsess 0 (here: it fills kind's padding) */
    int64_t account_id;      /* CHAT_USER_ACCOUNT: the store's id */
    uint8_t resume_hash[32]; /* CHAT_USER_GUEST: SHA-256 of its resume token */
    uint64_t since_id;       /* CHAT_USER_GUEST: the last message id when it began */
    chat_session_t **sess;   /* logged in as this user */
    uint32_t nsess, sess_cap;
    chat_presence_t **rooms; /* its presences (parked ones too) */
    uint32_t nrooms, rooms_cap;
    tt_link_t park;          /* chat->parked while parked > 0 or nsess == 0 */
    uint64_t park_until;     /* monotonic ms: the grace time ends */
    const char *park_reason; /* member_left's reason then (static) */
    chat_held_t *held, *held_tail;
    uint32_t nheld;
    /* Away status (chat_status.c) */
    bool away;
    uint8_t seen_cap; /* chat_search.c: room names `seen` has room for (<= 200) */
    char *away_text;  /* NULL: none */
    size_t away_len;
    struct chat_partner_s *partners; /* who it exchanged privates with, NULL until one */
    uint32_t npartners;
    /* Search (chat_search.c): the rooms a guest left since it logged in,
     * a ring of at most CHAT_SEARCH_GUEST_ROOMS names (NULL until one). */
    char (*seen)[CHAT_ROOM_MAX + 1];
    uint32_t nseen, seen_next;
};

/* A token bucket (chat_rate.c). Tokens are counted in millionths so that
 * fractional rates refill exactly with integer arithmetic. */
typedef struct chat_bucket_s {
    uint64_t units; /* CHAT_RATE_UNIT per token */
    uint64_t last_ms;
} chat_bucket_t;

struct chat_session_s {
    chat_session_t *prev, *next; /* chat->sessions */
    uint64_t sid;                /* its id: the by_sid map's key, and in logs */
    void *conn;                  /* the transport's handle; unused once detached */
    char *peer;
    bool v1;
    bool logged_in;
    uint32_t refusals_logged;     /* legacy refusals are logged, up to a bound */
    chat_user_t *user;            /* once logged in */
    uint32_t user_idx;            /* in user->sess */
    char nick[CHAT_NICK_MAX + 1]; /* the user's nickname, copied (read per message) */
    size_t nick_len;
    chat_member_t **rooms;
    uint32_t nrooms, rooms_cap;
    /* Flood control (chat_rate.c) */
    chat_bucket_t msg_bucket, req_bucket;
    uint64_t retry_at_ms;     /* the latest retry_after hint given ends then */
    uint64_t strike_start_ms; /* the first strike of the current flood window */
    uint32_t strikes;         /* refusals in that window that ignored a hint */
    uint32_t ntyping;         /* entries of `typing` below (here: it fills a hole) */
    uint64_t logged_ms;       /* when going over the limit was last logged */
    bool rate_logged;         /* logged_ms is set */
    bool closing;             /* io->close was asked for: further input is ignored */
    bool close_queued;        /* detached (chat_session_close): closed in its turn, sent nothing */
    /* Accounts (chat_auth.c) */
    bool authing;    /* a check of the auth hook runs: its later jobs wait in `held` */
    bool logged_out; /* `logout`: its close is a goodbye (no grace time) */
    bool banned;     /* banned from the server: closed with 4003, no grace time */
    bool has_token;  /* logged in to an account with a token: token_hash is its hash */
    uint8_t token_hash[AUTH_TOKEN_HASH_BYTES];
    struct chat_job_s *held, *held_tail; /* jobs that came while authing, in order */
    uint32_t nheld;
    struct chat_typing_s *typing; /* what it is typing to (chat_typing.c): ntyping of them */
    uint64_t stamp;               /* chat_status.c: the broadcast that reached it last */
};

/* Error lines held back (chat.c): at most one line per CHAT_LOG_WINDOW_MS,
 * counting what was not logged in between. */
typedef struct chat_logwin_s {
    uint64_t last_ms; /* when the last line was written */
    bool logged;      /* last_ms is set */
    uint64_t events;  /* failures since the last line, not logged */
    uint64_t items;   /* messages those failures concerned */
    int rc;           /* the latest failure's code */
} chat_logwin_t;

/* Logins, joins and leaves are logged at info, at most CHAT_EVENT_LOG_PER_S
 * lines a second; past that they are counted and one summary line says how
 * many were not logged (chat_user.c). */
#define CHAT_EVENT_LOG_PER_S 20
typedef enum { CHAT_EV_LOGIN, CHAT_EV_JOIN, CHAT_EV_LEAVE, CHAT_EV_COUNT } chat_ev_t;
typedef struct chat_evlog_s {
    uint64_t window_ms;           /* the current one-second window began then */
    bool started;                 /* window_ms is set */
    unsigned lines;               /* lines written in the window */
    uint64_t held[CHAT_EV_COUNT]; /* events not written since the last summary */
    uint64_t held_since_ms;       /* the first of them */
} chat_evlog_t;

/* A chat message accepted but not yet delivered. It names its sender and
 * target by session id and its room by name (copied here), looked up again
 * when it is delivered, so it holds no pointer into chat state. Its text and
 * ref point into `req` (the parsed request, referenced). */
typedef struct chat_pending_s {
    chat_message_t msg; /* from/to are set when its batch is formed */
    uint64_t sender_sid;
    uint64_t sender_uid; /* CHAT_MSG_PRIVATE: echoed to all the sender's connections */
    uint64_t target_uid; /* CHAT_MSG_PRIVATE: the recipient (named by `to`) */
    char from[CHAT_NICK_MAX + 1];
    char to[CHAT_ROOM_MAX + 1]; /* room name, or the target's nickname */
    uint8_t from_len, to_len;
    tt_msg_t *out;       /* the room/private message, serialized once; one reference */
    tt_msg_t *out_plain; /* with mentions: the same without them, for legacy members */
    json_t *req;         /* one reference */
    const char *ref;     /* the request's id, or NULL */
    size_t ref_len;
    bool stored;       /* CHAT_MSG_PRIVATE between accounts: written to their conversation first */
    bool from_account; /* its sender is an account (with a bus: a private it may store) */
    /* With a bus (chat_set_bus): */
    bool acked;     /* its sender has its ack */
    bool refused;   /* the bus refused it: its sender gets `unavailable` */
    bool no_user;   /* refused as a private to a nickname nobody has: `no_such_user` */
    uint64_t token; /* its publish token */
    char *mentions; /* a room message's mentions, joined by ',' (owned), or NULL */
    size_t mentions_len;
} chat_pending_t;

/* One chat_flush's messages, from their submission to the store until they
 * are delivered (or refused). Batches complete in submission order. */
typedef struct chat_batch_s {
    struct chat_batch_s *next;
    chat_pending_t *items;
    size_t n, cap;
    chat_message_t *msgs; /* the room messages, as handed to append_batch */
    size_t msgs_cap;
    uint64_t formed_us;       /* tt_clock_us() when chat_flush formed it */
    chat_bus_msg_t *bus_msgs; /* with a bus: what publish was handed */
    size_t bus_cap;
    bool done;
    int rc;
} chat_batch_t;

/* A request waiting for its turn (a store step is in flight), or a session
 * to close in its turn. */
typedef enum {
    CHAT_JOB_REQUEST = 1,
    CHAT_JOB_CLOSE = 2,
    CHAT_JOB_EOF = 3,
    CHAT_JOB_AUTH = 4, /* an auth hook's answer, applied in its turn */
} chat_job_kind_t;
typedef struct chat_auth_wait_s chat_auth_wait_t;
typedef struct chat_job_s {
    struct chat_job_s *next;
    chat_job_kind_t kind;
    uint64_t sid;
    json_t *root;           /* REQUEST: the parsed request (one reference), or NULL */
    int parse_error;        /* REQUEST: CHAT_PARSE_* when root is NULL */
    const char *reason;     /* CLOSE: member_left's reason (static) */
    chat_auth_wait_t *auth; /* AUTH: the check and its answer (owned) */
} chat_job_t;

/* A check of the auth hook in flight (chat_auth.c): what the request asked
 * for, kept until its answer is applied. */
struct chat_auth_wait_s {
    chat_t *chat;
    uint64_t sid;
    chat_auth_op_t op;
    const char *type; /* the request's type (static), for logs */
    char ref[CHAT_REF_MAX + 1];
    size_t ref_len;
    bool has_ref;
    char nick[CHAT_NICK_MAX + 1]; /* REGISTER, PASSWORD, GUEST: as asked */
    size_t nick_len;
    char room[CHAT_ROOM_MAX + 1]; /* login's room */
    size_t room_len;
    bool has_room;
    bool registering; /* nick is in chat->registering until the answer */
    bool resuming;    /* GUEST: with resume_hash, a guest another node holds */
    uint8_t resume_hash[AUTH_TOKEN_HASH_BYTES];
    json_t *root;    /* LOOKUP: the `private` request (one reference), run once answered */
    bool everywhere; /* LOGOUT */
    chat_auth_result_t result;
};

enum { CHAT_PARSE_OK = 0, CHAT_PARSE_BAD_JSON, CHAT_PARSE_BIG_NUMBER };

#define CHAT_RELAY_SEEN 8
typedef struct chat_relay_seen_s chat_relay_seen_t;

struct chat_s {
    chat_config_t cfg;
    char *server_name, *server_version;
    chat_io_t io;
    void *io_ctx;
    chat_clock_cb clock; /* flood control's clock, or NULL */
    void *clock_ctx;

    tt_map_t nicks; /* folded nickname → chat_user_t (TT_MAP_NOCASE) */
    tt_map_t rooms; /* name without '#', folded → chat_room_t (TT_MAP_NOCASE) */
    uint64_t next_uid;
    tt_link_t parked;    /* users with parked presences or no session, by park_until */
    uint64_t held_total; /* held private messages, every user */
    chat_session_t *sessions;
    uint64_t nsessions;
    uint64_t next_sid;
    uint64_t last_id;     /* the last message id given out */
    uint64_t reserved_id; /* ids up to this are reserved in the store */
    uint64_t messages;    /* accepted since start */

    tt_map_t by_sid; /* session id (8 bytes) → session */
    chat_pending_t *pending;
    size_t npending, pending_cap;
    chat_batch_t *batches, *batches_tail; /* in flight, oldest first */
    chat_batch_t *free_batches;
    bool flushing;

    /* The executor (chat.c): requests run one at a time, in order. While a
     * store step is in flight (inflight > 0), requests and closes wait in
     * the job queue and run when it completes. */
    chat_job_t *jobs, *jobs_tail;
    size_t njobs;
    chat_job_t *free_jobs;
    unsigned inflight; /* store steps the executor waits for */
    bool pumping;      /* inside chat__pump */
    bool defer;        /* the job being run must wait: put it back */
    bool reserving;    /* a reserve_ids is in flight */

    chat_store_hooks_t store;
    void *store_ctx;
    chat_bus_hooks_t bus; /* a cluster's (chat_set_bus), or none: publish NULL */
    void *bus_ctx;
    uint64_t bus_token; /* the last publish token given */
    char *node;         /* this node's name in the cluster, or NULL */
    /* Moderation (chat_mod.c) */
    struct chat_ban_s *bans; /* server-wide bans (nicknames and addresses) */
    uint32_t nbans, bans_cap;
    uint32_t kept_rooms; /* rooms whose mod keeps them while empty */
    tt_map_t owned;      /* folded owner nickname → rooms it owns (uintptr_t) */
    tt_link_t typing;    /* every session's typing entries, by deadline (chat_typing.c) */
    uint64_t stamp;      /* chat_status.c: the last broadcast's number */
    /* chat_typing.c: the stamps of the last events relayed by the bus
     * (chat_bus_relay), by their cluster-wide key. */
    struct chat_relay_seen_s {
        uint64_t key, stamp;
    } relay_seen[CHAT_RELAY_SEEN];
    uint32_t relay_next;
    uint64_t bus_evid; /* the last event id this chat relayed (chat_status.c) */
    chat_auth_hooks_t auth;
    void *auth_ctx;
    unsigned auth_inflight; /* checks started whose answer has not been applied */
    /* Nicknames being registered (folded → chat_auth_wait_t): a guest cannot
     * take one meanwhile (`nickname_registered`). */
    tt_map_t registering;
    size_t reply_budget;       /* cfg.reply_budget, raised to chat_reply_budget_min */
    size_t frame_unit;         /* bytes of a text message per request token (chat.h) */
    chat_logwin_t log_append;  /* failed append_batch calls */
    chat_logwin_t log_history; /* failed history reads of joins */
    chat_evlog_t evlog;        /* logins, joins, leaves */
    chat_counters_t counters;  /* for /metrics (chat.h) */
};

/* A request being handled: who sent it and the "id" to echo as "ref". */
typedef struct chat_req_s {
    chat_session_t *s;
    json_t *root;
    const char *type;
    const char *ref; /* NULL when the request carried no id */
    size_t ref_len;
} chat_req_t;

/* ---- chat_out.c: serialization --------------------------------------- */

/* Serializes obj (borrowed) compactly, once, into a new message: the JSON
 * is dumped behind the message struct and TT_MSG_HEADROOM bytes of headroom, where src/ws writes
 * a frame header in place. size_hint is a guess of the JSON length.
 * Returns one reference. */
tt_msg_t *chat__msg_json(const json_t *obj, size_t size_hint);
/* The same for JSON already serialized (json[0..len), copied). */
tt_msg_t *chat__msg_raw(const char *json, size_t len);

/* Hands msg to s's connection (io->send), unless s is detached. Inline:
 * it runs once per recipient of every broadcast. */
static inline void chat__send(chat_t *chat, chat_session_t *s, tt_msg_t *msg) {
    if (!s->close_queued)
        chat->io.send(chat->io_ctx, s->conn, msg);
}

/* Sends obj (reference stolen) to s if s speaks v1, with "ref" added from
 * req when it has one. Legacy sessions get nothing. */
void chat__reply(chat_t *chat, chat_session_t *s, const chat_req_t *req, json_t *obj);

/* Refuses req: an error frame {code, message, ref} to a v1 session; for a
 * legacy session the request is dropped and the refusal logged. */
void chat__refuse(chat_t *chat, const chat_req_t *req, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* chat__refuse with more fields for the error object (extra: a JSON object
 * whose members are added; reference stolen). */
void chat__refuse_extra(chat_t *chat, const chat_req_t *req, json_t *extra, const char *code,
                        const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* The members of room that text names with @nickname (canonical spelling,
 * each once, at most CHAT_MENTIONS_MAX), as a JSON array; NULL when none. */
json_t *chat__mentions(chat_t *chat, const chat_room_t *room, const char *text, size_t len);

/* Mentions (a JSON array of nicknames) as one string of them joined by ','
 * (allocated, NUL-terminated; its length in *len), and back: the valid
 * nicknames of such a string, at most CHAT_MENTIONS_MAX, as an array (NULL
 * when none). The bus carries them so. */
char *chat__mentions_join(const json_t *mentions, size_t *len);

json_t *chat__mentions_split(const char *s, size_t len);

/* An accepted message's frame (room/private shape, with `mentions` when
 * not NULL: a JSON array of strings), written directly: the same bytes as
 * chat__msg_json of chat__message_json(m) with mentions added. */
tt_msg_t *chat__msg_message(const chat_message_t *m, const json_t *mentions);

/* The JSON object of an accepted message (room/private shape). */
json_t *chat__message_json(const chat_message_t *m);

/* Bytes of the compact JSON string jansson writes for s[0..len), quotes
 * included (exact: '"', '\\' and \b \f \n \r \t take two bytes, other
 * control characters six, everything else itself). */
size_t chat__json_string_size(const char *s, size_t len);
/* An upper bound of the bytes of m's JSON (chat__message_json, compact). */
size_t chat__message_json_size(const json_t *m);

/* ms since the Unix epoch. */
int64_t chat__now_ms(void);

/* ---- chat.c: rooms and membership -------------------------------------- */

chat_room_t *chat__room_find(chat_t *chat, const char *name, size_t len);
/* A new, empty room under that name (not taken: the caller checked). */
chat_room_t *chat__room_new(chat_t *chat, const char *name, size_t len);
/* Frees room when nobody is in it and it keeps nothing (chat__mod_keeps). */
void chat__room_free_if_empty(chat_t *chat, chat_room_t *room);
/* s's membership in room, or NULL. Scans s's rooms (at most max_rooms). */
chat_member_t *chat__member_find(const chat_session_t *s, const chat_room_t *room);
/* Joins s to the room (created if needed) and tells everyone: joined to s,
 * member_joined to the others. A session already in the room gets joined
 * again and nobody else hears of it. */
void chat__join(chat_t *chat, const chat_req_t *req, const char *name, size_t len, uint64_t since);
/* Removes s from m's room. When it was the user's last connection there,
 * the user's presence is parked (park: the connection dropped, the user
 * may come back within the grace time) or gone: the remaining v1 members
 * get member_left with reason, and the room is freed when it empties.
 * Does not reply to s. */
void chat__leave(chat_t *chat, chat_member_t *m, const char *reason, bool park);
/* The presence ends: removed, the room told (member_left with reason) or
 * freed when nobody is left. */
void chat__presence_gone(chat_t *chat, chat_presence_t *p, const char *reason);

/* ---- chat_user.c: identities, presence, grace, held privates ------------ */

#define CHAT_HELD_MAX 100          /* privates held for one guest in its grace time */
#define CHAT_HELD_TOTAL_MAX 100000 /* and for every guest together */

chat_user_t *chat__user_find(chat_t *chat, const char *nick, size_t len);
/* The user named nick if it is still the one with this uid, or NULL. */
chat_user_t *chat__user_check(chat_t *chat, const char *nick, size_t len, uint64_t uid);
/* A new user under nick (not taken: the caller checked), in the nicks map;
 * a remote user (CHAT_USER_REMOTE) of that nick becomes it, keeping the
 * presences it has through other nodes. */
chat_user_t *chat__user_new(chat_t *chat, const char *nick, size_t len, chat_user_kind_t kind);
/* s logs in as u: it becomes one of u's connections. */
void chat__user_attach(chat_t *chat, chat_user_t *u, chat_session_t *s);
/* s (which left its rooms) is no longer one of its user's connections. The
 * last one going parks the user for the grace time (park) or ends it. */
void chat__user_detach(chat_t *chat, chat_session_t *s, const char *reason, bool park);
/* The user waits for the grace time from now: then its parked presences
 * end with member_left (reason) and, with no connection back, the user. */
void chat__user_park(chat_t *chat, chat_user_t *u, const char *reason);
/* The user ends now: its parked presences (member_left with reason), its
 * held messages (`undelivered` to their senders), its nickname. One still
 * in rooms through other nodes stays, as a remote user. */
void chat__user_end(chat_t *chat, chat_user_t *u, const char *reason);
void chat__user_free_all(chat_t *chat);
/* Logs a login, join or leave of s (room: NULL for a login) at info, or
 * counts it for the next summary past CHAT_EVENT_LOG_PER_S a second. */
void chat__log_event(chat_t *chat, chat_ev_t ev, const chat_session_t *s, const chat_room_t *room,
                     const char *what);
chat_presence_t *chat__presence_find(const chat_user_t *u, const chat_room_t *room);
chat_presence_t *chat__presence_add(chat_user_t *u, chat_room_t *room);
void chat__presence_remove(chat_presence_t *p);
/* Holds a private for u (no connection now); false when u holds
 * CHAT_HELD_MAX or every guest CHAT_HELD_TOTAL_MAX already. */
bool chat__user_hold(chat_t *chat, chat_user_t *u, const chat_pending_t *p);
/* Tells sender's v1 connections that its message id to `to` was not
 * delivered (`undelivered`). */
void chat__undelivered_to(chat_t *chat, chat_user_t *sender, uint64_t id, const char *to,
                          size_t to_len);
/* Sends u's held messages to s, in order, and forgets them. */
void chat__user_release_held(chat_t *chat, chat_user_t *u, chat_session_t *s);
/* Tells p's sender (every v1 connection of it) that p did not arrive. */
void chat__undelivered(chat_t *chat, const chat_pending_t *p);
/* Appends a pending entry and returns it (not zeroed: the caller sets every field). */
chat_pending_t *chat__pending_add(chat_t *chat);
/* Answers a `history` request for room name[0..len) (before, limit) when
 * the store's read completes: the reply's messages are the newest that fit
 * the reply budget (more: true when any were left out); a failed read is
 * refused with `unavailable`. The executor waits for the read. */
/* history with `with`: the requester's conversation with nick. */
void chat__history_with_reply(chat_t *chat, const chat_req_t *req, const char *nick, size_t len,
                              uint64_t before, unsigned limit);
/* `conversations` of the requester's account, at most limit. */
void chat__conversations_reply(chat_t *chat, const chat_req_t *req, unsigned limit);
void chat__history_reply(chat_t *chat, const chat_req_t *req, const char *name, size_t len,
                         uint64_t before, unsigned limit);
/* True when nothing is pending or in flight, after handing what is pending
 * to the store. A membership change runs only then; otherwise its handler
 * returns at once with chat->defer set, and runs again later. */
bool chat__settled(chat_t *chat);
/* The session with id sid, or NULL (closed). */
chat_session_t *chat__session_find(chat_t *chat, uint64_t sid);
/* The bytes left for a list in a reply to req whose other lists take
 * `used` bytes: the reply budget less the reply's own JSON. */
size_t chat__list_budget(const chat_t *chat, size_t used);

/* ---- chat_rate.c: flood control ------------------------------------------ */

#define CHAT_RATE_UNIT 1000000 /* bucket units per token */

/* Fills both of a new session's buckets. */
void chat__rate_session_init(chat_t *chat, chat_session_t *s);
/* Takes `tokens` tokens (at most the bucket's size) from the request
 * bucket (message = false) or the chat message bucket (true). Returns true
 * if it held them; otherwise takes none, refuses req with rate_limited,
 * counts the refusal and, for a persistent flooder, asks io->close for
 * 1008, and returns false. Always true when flood control is off. */
bool chat__rate_take(chat_t *chat, const chat_req_t *req, bool message, uint64_t tokens);
/* chat__rate_take without the refusal: true if the tokens were taken;
 * otherwise *retry_ms is when they will be there. */
bool chat__rate_try(chat_t *chat, chat_session_t *s, bool message, uint64_t tokens,
                    uint64_t *retry_ms);
/* Refuses req with rate_limited after chat__rate_try said no. */
void chat__rate_refuse(chat_t *chat, const chat_req_t *req, bool message, uint64_t retry_ms);
/* The extra charge of a request (its own token already taken) that is
 * about to scan n rooms or members: ceil(n / CHAT_RATE_SCAN_ITEMS) request
 * tokens, at most the bucket's size less one, so that a full bucket always
 * pays for it. chat__rate_take's result and refusal. */
bool chat__rate_take_scan(chat_t *chat, const chat_req_t *req, size_t n);
/* The flood-control clock (ms, monotonic; injected or CLOCK_MONOTONIC_COARSE). */
uint64_t chat__clock_ms(const chat_t *chat);

/* ---- chat_json.c: the fast reader --------------------------------------- */

/* The tree json_loadb(data, len, JSON_ALLOW_NUL) makes of a request of
 * strings, small integers, booleans, null and objects without \u escapes,
 * or NULL for anything else (then parse with jansson). */
json_t *chat__json_fast(const char *data, size_t len);

/* ---- chat_proto.c ------------------------------------------------------ */

/* Request fields. chat__get_str: 1 and the string of key, 0 if absent or
 * null, -1 if another type. chat__need_str: a required string (refused
 * with bad_request otherwise); chat__opt_str: an optional one (-1:
 * refused). chat__room_ok: refuses with room_invalid unless valid. */
int chat__get_str(const json_t *o, const char *key, const char **str, size_t *len);
bool chat__need_str(chat_t *chat, const chat_req_t *req, const char *key, const char **str,
                    size_t *len);
int chat__opt_str(chat_t *chat, const chat_req_t *req, const char *key, const char **str,
                  size_t *len);
bool chat__room_ok(chat_t *chat, const chat_req_t *req, const char *name, size_t len);

/* A text message from s's client: charges flood control by its size and
 * parses it at once, then runs it (chat__execute) now or, while the chat
 * waits for the store, in its turn. */
void chat__dispatch(chat_t *chat, chat_session_t *s, const char *data, size_t len);
/* Runs one parsed request (root: one reference, taken over; NULL with
 * parse_error CHAT_PARSE_* for a frame that is not JSON). */
void chat__execute(chat_t *chat, chat_session_t *s, json_t *root, int parse_error);
/* ---- chat_auth.c -------------------------------------------------------- */

/* `register`, `logout`, `password`, and `login` with a password or a token
 * (chat_auth.c); `login` as a guest stays in chat_proto.c and calls
 * chat__auth_guest when a hook is attached. */
void chat__on_register(chat_t *chat, const chat_req_t *req);
void chat__on_logout(chat_t *chat, const chat_req_t *req);
void chat__on_password(chat_t *chat, const chat_req_t *req);
/* login with `password` or `token` (true: it was one of those, handled). */
bool chat__login_credentials(chat_t *chat, const chat_req_t *req);
/* A private from an account to nick, whom no connection holds: asks the
 * hook whether nick is an account (then the message is stored for it). */
void chat__auth_lookup(chat_t *chat, const chat_req_t *req, const char *nick, size_t nick_len);
/* chat_proto.c: accepts req (a checked `private`) for the account nick,
 * stored in their conversation (the recipient may be offline). */
void chat__private_to_account(chat_t *chat, const chat_req_t *req, const char *nick, size_t len);
/* A guest login for nick: asks the hook whether an account holds it.
 * resume_hash: the hash of the resume token it came with, for a guest of
 * another node of the cluster (NULL: a new guest). */
void chat__auth_guest(chat_t *chat, const chat_req_t *req, const char *nick, size_t nick_len,
                      const char *room, size_t room_len, bool has_room, const uint8_t *resume_hash);
/* Logs s in as a new guest nick (free, checked) and welcomes it; with
 * resume_hash, as the guest of that token that another node holds too
 * (the cluster checked the token). */
void chat__guest_login(chat_t *chat, const chat_req_t *req, const char *nick, size_t nick_len,
                       const char *room, size_t room_len, bool has_room,
                       const uint8_t *resume_hash);
/* The welcome frame of s (logged in now), with its extra fields (stolen;
 * NULL: none), then what was held for its user, then the join of room. */
void chat__welcome(chat_t *chat, const chat_req_t *req, json_t *extra);
/* Applies an AUTH job's answer (frees it). */
void chat__auth_apply(chat_t *chat, chat_auth_wait_t *w);
/* A job for s while s->authing: kept in s->held until the answer is applied.
 * Returns false when CHAT_AUTH_WAIT_MAX are held already (not kept). */
bool chat__auth_hold(chat_t *chat, chat_session_t *s, chat_job_t *j);
/* Frees what s holds (it is closing). */
void chat__auth_drop_held(chat_t *chat, chat_session_t *s);

/* ---- chat_status.c ------------------------------------------------------ */

#define CHAT_PARTNERS_MAX 16 /* conversation partners a user's status reaches */
void chat__on_status(chat_t *chat, const chat_req_t *req);
/* a and b exchanged a private: each is the other's partner from now on. */
void chat__partners_note(chat_t *chat, chat_user_t *a, chat_user_t *b);
/* Appends u's nickname to *away (made on first use) when u is away, at
 * most CHAT_AWAY_LIST_MAX, adding its JSON size to *size. u may be NULL. */
void chat__away_add(json_t **away, const chat_user_t *u, size_t *size);
/* Frees what u's status holds (it ends). */
void chat__status_free(chat_user_t *u);

typedef enum { TEXT_OK, TEXT_CONTROL, TEXT_BLANK } text_kind_t;
/* chat_proto.c: the kind of a text (control characters, blank), and its
 * length in characters (UTF-8 that jansson validated). */
text_kind_t chat__text_kind(const char *text, size_t len);
size_t chat__utf8_chars(const char *p, size_t len);

/* ---- chat_typing.c ------------------------------------------------------ */

#define CHAT_TYPING_MS 6000         /* a start not refreshed within this ends */
#define CHAT_TYPING_MIN_GAP_MS 2000 /* starts to one target more often are dropped */
#define CHAT_TYPING_MAX 16          /* targets one session may be typing to at once */
typedef struct chat_typing_s chat_typing_t;
void chat__on_typing(chat_t *chat, const chat_req_t *req);
/* s stops typing to that room (room) or person: the others get `stop`. */
void chat__typing_end(chat_t *chat, chat_session_t *s, bool room, const char *name, size_t len);
/* Ends everything s is typing to (telling the others when tell_them). */
void chat__typing_end_all(chat_t *chat, chat_session_t *s, bool tell_them);
/* Starts not refreshed in time end (from chat_tick). */
void chat__typing_tick(chat_t *chat, uint64_t now);

/* ---- chat_mod.c: roles, topics, kicks, bans, the audit log ------------- */

void chat__on_topic(chat_t *chat, const chat_req_t *req);
void chat__on_kick(chat_t *chat, const chat_req_t *req);
void chat__on_ban(chat_t *chat, const chat_req_t *req);
void chat__on_unban(chat_t *chat, const chat_req_t *req);
void chat__on_op(chat_t *chat, const chat_req_t *req);
void chat__on_owner(chat_t *chat, const chat_req_t *req);
void chat__on_audit(chat_t *chat, const chat_req_t *req);
void chat__on_bans(chat_t *chat, const chat_req_t *req);
/* The answer of the auth hook's LOOKUP for an `op` or `owner` request
 * (nick is the account's spelling). */
void chat__mod_account_found(chat_t *chat, const chat_req_t *req, const char *nick, size_t len);
/* True when s is logged in to an account named by --admin. */
bool chat__is_admin(const chat_t *chat, const chat_session_t *s);
/* The rank of s in room: 3 admin, 2 owner, 1 op, 0 none. */
int chat__rank(const chat_t *chat, const chat_session_t *s, const chat_room_t *room);
/* A room about to be created by s: gives it its owner when s is an account
 * (and the bounds allow). */
void chat__mod_room_created(chat_t *chat, chat_session_t *s, chat_room_t *room);
/* True (refusing req with `banned`) when nick, or s's address, is banned
 * from the server; room: also from that room (NULL: the server only). */
bool chat__mod_refuse_banned(chat_t *chat, const chat_req_t *req, const char *nick, size_t len,
                             const chat_room_t *room);
/* joined's roles and topic, added to o (a v1 joined reply). */
void chat__mod_joined(const chat_t *chat, const chat_room_t *room, json_t *o);
/* True when the room must be kept while empty. */
bool chat__mod_keeps(const chat_room_t *room);
/* Loads what the store keeps (from chat_set_store). */
int chat__mod_load(chat_t *chat);
void chat__mod_free(chat_t *chat, chat_room_t *room);
void chat__mod_free_all(chat_t *chat);
/* ---- chat_edit.c, chat_search.c ------------------------------------------ */

void chat__on_edit(chat_t *chat, const chat_req_t *req);
void chat__on_delete(chat_t *chat, const chat_req_t *req);
void chat__on_search(chat_t *chat, const chat_req_t *req);
/* True when root is an `edit` or `delete` whose "id" is a number (the
 * message id, not a correlation id). */
bool chat__edit_numeric_id(const json_t *root);
/* Whether s may delete the stored message info (of room, NULL when it is
 * a private or the room is gone now): its author (an account's nickname,
 * or a guest's messages since it logged in), or, for a room message, the
 * room's ops, its owner and the server's admins (chat__rank). */
bool chat__may_delete(chat_t *chat, const chat_session_t *s, const chat_room_t *room,
                      const chat_msg_info_t *info);
/* Whether s wrote info (the author check of edit and delete). */
bool chat__is_author(const chat_session_t *s, const chat_msg_info_t *info);
/* Whether s may read info: a room it is in, a guest's room since login, a
 * room in its account's record (info->joined), or its own conversation. */
bool chat__may_read(chat_t *chat, const chat_session_t *s, const chat_msg_info_t *info);

#define CHAT_SEARCH_QUERY_MAX 200   /* characters of a query */
#define CHAT_SEARCH_DEFAULT 20      /* results when limit is absent */
#define CHAT_SEARCH_MAX 50          /* limit is clamped to this */
#define CHAT_SEARCH_GUEST_ROOMS 200 /* rooms a guest's search remembers */
_Static_assert(CHAT_SEARCH_GUEST_ROOMS <= 255, "chat_user_s.seen_cap is a uint8_t");
#define CHAT_SEARCH_HIGHLIGHTS_MAX 50 /* highlights of one result */
/* chat.c's chat__join: s joined room (a new membership); an account's
 * record of rooms notes it. */
void chat__search_note_join(chat_t *chat, chat_session_t *s, const chat_room_t *room);
/* chat.c's chat__presence_gone: guest u is no longer in room, whose
 * messages its search still reads (at most CHAT_SEARCH_GUEST_ROOMS). */
void chat__search_note_left(chat_user_t *u, const chat_room_t *room);
/* A stored message that was edited or deleted, as history shows it
 * (chat_edit.c): a deleted one {type, id, ts, from, to, deleted: true},
 * an edited one with its edited_ts. room: the room's name now (NULL: as
 * stored). */
json_t *chat__stored_message_json(chat_t *chat, const chat_message_t *m, const char *room,
                                  size_t room_len);
/* Frees what u's search holds (it ends). */
void chat__search_free(chat_user_t *u);

/* chat_proto.c, for the above: message.text checked as a chat message's
 * (present, not empty, no control characters, not blank, max_text), and
 * the id and limit fields as history's. */
bool chat__message_text(chat_t *chat, const chat_req_t *req, const char **text, size_t *len);
int chat__opt_id(chat_t *chat, const chat_req_t *req, const char *key, uint64_t *out);
int chat__opt_limit(chat_t *chat, const chat_req_t *req, unsigned def, unsigned max, unsigned *out);

/* chat.c: job plumbing, for chat_auth.c. */
chat_job_t *chat__job_new(chat_t *chat, chat_job_kind_t kind, uint64_t sid);
void chat__job_put(chat_t *chat, chat_job_t *j);
/* Queues j at the tail, or at the head (front). */
void chat__job_push(chat_t *chat, chat_job_t *j, bool front);

/* chat.c: runs queued jobs while nothing is in flight. */
void chat__pump(chat_t *chat);
/* chat.c: queues a request of s for its turn. */
void chat__enqueue(chat_t *chat, chat_session_t *s, json_t *root, int parse_error);

#endif
