/* A cluster node over Redis (cluster.h). */
#include "cluster/cluster.h"

#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cluster/cluster_mod.h"
#include "core/hex.h"
#include "core/log.h"
#include "core/map.h"
#include "core/xmalloc.h"

/* publish.lua and presence.lua, embedded by CMake */
extern const char cluster_publish_lua[];
extern const char cluster_presence_lua[];
extern const char cluster_mod_lua[];

#define TICK_MS 250
#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 2000
#define HEARTBEAT_MS 1000
#define UNWATCH_LINGER_MS 10000 /* a room no longer watched stays subscribed this long */
#define FETCH_COUNT 512         /* stream entries per read that fills a gap */
#define INBOX_MAX 8192          /* messages a room holds while it syncs or a join reads */
#define INBOX_BYTES (4u << 20)  /* and their bytes */
#define READS_MAX 1024          /* chat reads waiting for their room's subscription */
#define KEY_PREFIX "tt:room:"   /* a room's keys: tt:room:<key>:seq and :log */
#define KEY_ID "tt:id"
#define NODE_LEASE_MS 10000 /* a node silent this long is lost: its people leave */
#define NODE_SLOTS 64       /* other nodes told apart in a person's presence */
#define ALIVE_MS 2000       /* how often a node renews its lease (and looks for lost ones) */
#define AGE_TRIM_MS 60000   /* how often a node trims its rooms' streams by age */
#define AGE_TRIM_COUNT 500  /* entries one age check reads, at most */
#define MOD_QUEUE_MAX 256   /* moderation changes held while the sync reads */
/* The index of stored messages (publish.lua writes it): the stream that
 * holds message id is field id % IDX_BUCKET of hash tt:idx:<id / IDX_BUCKET>. */
#define IDX_BUCKET 100
/* A change rewrites the entries after the message, in one step: at most
 * this many (about 8 ms of Redis per thousand); further back it is
 * refused (CHANGE_LUA). */
#define CHANGE_TAIL_MAX 5000

typedef enum { LINK_DOWN, LINK_CONNECTING, LINK_READY } link_state_t;

typedef struct link_s {
    struct cluster_s *c;
    redisAsyncContext *ac;
    link_state_t state;
    bool sub;
    const char *what; /* "command" or "subscription" */
    uint64_t next_try_ms;
    uint64_t backoff_ms;
    uint64_t since_ms;    /* CONNECTING: when it began */
    uint64_t progress_ms; /* the last reply or message, or the first command after none */
    unsigned outstanding; /* commands sent whose reply has not come */
} link_t;

typedef enum { R_UNSUB, R_SUBSCRIBING, R_SYNCING, R_LIVE, R_UNSUBSCRIBING } room_state_t;

typedef struct cread_s cread_t;

typedef enum { MOD_UNSUB, MOD_SUBSCRIBING, MOD_SYNCING, MOD_LIVE } mod_state_t;

typedef struct inbox_item_s {
    size_t len;
    char data[]; /* the payload */
} inbox_item_t;

/* A channel the node follows: a room's (messages and presence, in order,
 * with gaps filled from the stream) or, with user, a user's of this node
 * (its private messages: nothing to fill, as they are not stored). */
typedef struct croom_s {
    bool user;
    char key[65];
    size_t key_len;
    char name[65]; /* the chat's spelling */
    size_t name_len;
    room_state_t state;
    bool watched;
    bool known;    /* last_id and last_seq are the room's position */
    bool fetching; /* a sync read is in flight */
    bool overflowed;
    bool people_ok;  /* the other nodes' people are read since it subscribed */
    bool first_sync; /* new here: its first joiner's `joined` lists them */
    bool known_live; /* has been live since it was created here (retention ran) */
    uint64_t unwatched_ms;
    uint64_t last_id, last_seq;
    unsigned hold; /* joins' reads in flight: deliveries wait in the inbox */
    inbox_item_t **inbox;
    size_t in_head, in_n, in_cap, in_bytes;
    cread_t *reads, *reads_tail; /* waiting for R_LIVE */
} croom_t;

struct cread_s {
    struct cluster_s *c;
    cread_t *next;
    char key[65];
    size_t key_len;
    uint64_t after, before;
    unsigned limit;
    bool fence;
    uint64_t queued_ms;
    chat_history_done_cb done;
    void *arg;
};

struct cluster_s {
    tt_loop_t *loop;
    chat_t *chat;
    cluster_config_t cfg;
    link_t cmd, sub;
    size_t node_len; /* strlen(cfg.node) */
    char sha[41];    /* publish.lua */
    char sha_p[41];  /* presence.lua */
    bool script;     /* both loaded, and the node's lease taken */
    uint64_t last_alive_ms;
    uint64_t last_age_trim_ms;
    bool ready; /* as last logged */
    bool ever_ready;
    tt_timer_t *tick;
    tt_map_t rooms; /* key → croom_t */
    tt_map_t users; /* folded nickname → croom_t (user) */
    /* Channels are one namespace for every database of a Redis: with a
     * database other than 0 their names carry its number (tt:<db>:room:),
     * so two chats on two databases of one Redis stay two. */
    char rchan[32]; /* a room's channel: rchan + key */
    char uchan[32]; /* a user's (its private messages): uchan + folded nickname */
    char hb_chan[CLUSTER_NODE_MAX + 48];
    uint64_t last_hb_ms;
    uint64_t max_id; /* the highest id seen: the script's floor */
    /* The loop time past the deadline of the last publish sent: the command
     * link is not given up before it, so a message refused as
     * `unavailable` is one Redis refuses too (TT_LATE), whenever it runs. */
    uint64_t pub_deadline_ms;
    unsigned nreads; /* queued chat reads, every room */
    char *scratch;   /* a body being formatted */
    size_t scratch_cap;
    uint64_t bad_logged_ms;
    chat_auth_hooks_t inner; /* the accounts' hook, which cluster_authenticate wraps */
    void *inner_ctx;
    cluster_stats_t stats;
    /* The other nodes named by presence, each a small number for the chat
     * (chat_bus_presence: a person's shares, one bit a node). Slots stay:
     * a node back under its name takes its slot again; past NODE_SLOTS
     * names, the last slot is shared (logged once). */
    char slot_name[NODE_SLOTS][CLUSTER_NODE_MAX + 1];
    unsigned nslots;
    bool slots_full_logged;
    bool restated; /* an earlier process's shares under this name are ended */
    /* Moderation (store_redis_mod.c writes it; every change comes on
     * mchan, numbered): the node applies them in order, and reads the
     * whole state again (mod.lua, a page at a time) when it subscribes or
     * sees a number missing; changes that come meanwhile wait in mq. */
    char mchan[32];
    char sha_m[41];
    mod_state_t mod_state;
    bool mod_reading; /* a page is asked for */
    bool mod_overflow;
    uint64_t mod_seq; /* the last change applied */
    uint64_t mod_sync_seq;
    uint64_t mod_logged_ms; /* the last failed read logged */
    char mod_cursor[CLUSTER_MOD_CURSOR_MAX];
    inbox_item_t *mq[MOD_QUEUE_MAX];
    size_t mq_n;
};

static uint64_t now_ms(const cluster_t *c) {
    return tt_loop_now(c->loop);
}

static int64_t wall_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void link_lost(link_t *l, const char *why);
static void room_subscribe(cluster_t *c, croom_t *r);
static void room_fetch(cluster_t *c, croom_t *r);
static void room_drain(cluster_t *c, struct croom_s *r);
static void age_trim_room(cluster_t *c, const struct croom_s *r);
static void read_issue(cluster_t *c, cread_t *rd);
static void read_fail(cluster_t *c, cread_t *rd);
static cread_t *reads_pop(cluster_t *c, struct croom_s *r);
static void room_people(cluster_t *c, struct croom_s *r);
static void mod_subscribe(cluster_t *c);
static void mod_read(cluster_t *c);
static void mod_in(cluster_t *c, const char *p, size_t len);
static void mod_queue_clear(cluster_t *c);
static size_t fold_nick(const char *nick, size_t len, char *out);

/* ---- readiness ---- */

static void note_ready(cluster_t *c) {
    /* Moderation read too: a node that took logins before knowing the
     * bans would let the banned in. */
    bool ready = c->cmd.state == LINK_READY && c->sub.state == LINK_READY && c->script &&
                 c->mod_state == MOD_LIVE;
    if (ready == c->ready)
        return;
    c->ready = ready;
    const cluster_url_t *u = &c->cfg.url;
    if (ready) {
        if (u->path[0] != '\0')
            tt_log_info("cluster: node %s connected to redis %s", c->cfg.node, u->path);
        else
            tt_log_info("cluster: node %s connected to redis %s:%d", c->cfg.node, u->host, u->port);
        c->ever_ready = true;
    }
}

bool cluster_ready(const cluster_t *c) {
    return c != NULL && c->ready;
}

/* ---- commands ---- */

/* Every command goes through here, so the link knows what it waits for. */
static bool command_argv(link_t *l, redisCallbackFn *cb, void *priv, int argc, const char **argv,
                         const size_t *lens) {
    if (l->ac == NULL)
        return false;
    if (redisAsyncCommandArgv(l->ac, cb, priv, argc, argv, lens) != REDIS_OK)
        return false;
    if (l->outstanding++ == 0)
        l->progress_ms = now_ms(l->c);
    return true;
}

/* A reply came (reply NULL: the link went away with the command in it). */
static void replied(link_t *l, const void *reply) {
    if (l->outstanding > 0)
        l->outstanding--;
    if (reply != NULL)
        l->progress_ms = now_ms(l->c);
}

/* An operation of presence.lua: EVALSHA with no keys, the operation, the
 * room channels' prefix, then args[0..n). */
#define PRESENCE_ARGS_MAX 6
static bool presence_call(cluster_t *c, redisCallbackFn *cb, void *priv, const char *op, size_t n,
                          const char *const *args, const size_t *lens) {
    const char *argv[4 + PRESENCE_ARGS_MAX + 1] = {"EVALSHA", c->sha_p, "0", op, c->rchan};
    size_t alens[4 + PRESENCE_ARGS_MAX + 1] = {7, 40, 1, strlen(op), strlen(c->rchan)};
    for (size_t i = 0; i < n && i < PRESENCE_ARGS_MAX; i++) {
        argv[5 + i] = args[i];
        alens[5 + i] = lens[i];
    }
    return command_argv(&c->cmd, cb, priv, (int)(5 + n), argv, alens);
}

static link_t *link_of(const redisAsyncContext *ac) {
    return ac->data;
}

static bool reply_ok(const redisReply *r) {
    return r != NULL && r->type != REDIS_REPLY_ERROR;
}

/* ---- connecting ---- */

static void on_setup(redisAsyncContext *ac, void *reply, void *priv) {
    link_t *l = priv;
    replied(l, reply);
    const redisReply *r = reply;
    if (r == NULL || l->ac != ac)
        return;
    if (r->type == REDIS_REPLY_ERROR) {
        char why[160];
        snprintf(why, sizeof(why), "redis refused the %s link's set-up: %.100s", l->what, r->str);
        link_lost(l, why);
    }
}

/* A link is up: the rooms that waited for it subscribe (the subscription
 * link) or read their streams (the command link). */
static void link_up(link_t *l) {
    cluster_t *c = l->c;
    l->state = LINK_READY;
    l->backoff_ms = BACKOFF_MIN_MS;
    if (l->sub)
        mod_subscribe(c);
    else if (c->mod_state == MOD_SYNCING && !c->mod_reading)
        mod_read(c);
    for (int m = 0; m < 2; m++) {
        size_t pos = 0;
        void *v;
        while (tt_map_next(m == 0 ? &c->rooms : &c->users, &pos, NULL, NULL, &v)) {
            croom_t *room = v;
            if (l->sub && room->state == R_UNSUB && room->watched)
                room_subscribe(c, room);
            else if (!l->sub && room->state == R_SYNCING && !room->fetching)
                room_fetch(c, room);
        }
    }
    note_ready(c);
}

/* A script's SHA from SCRIPT LOAD into sha; false (and the link lost) when
 * Redis did not load it. */
static bool script_loaded(redisAsyncContext *ac, const redisReply *r, link_t *l, char *sha,
                          const char *what) {
    replied(l, r);
    if (r == NULL || l->ac != ac)
        return false;
    if (r->type != REDIS_REPLY_STRING || r->len != 40) {
        char why[160];
        snprintf(why, sizeof(why), "redis did not load the %s script: %.100s", what,
                 r->type == REDIS_REPLY_ERROR ? r->str : "an unexpected reply");
        link_lost(l, why);
        return false;
    }
    memcpy(sha, r->str, 40);
    sha[40] = '\0';
    return true;
}

static void on_script(redisAsyncContext *ac, void *reply, void *priv) {
    link_t *l = priv;
    script_loaded(ac, reply, l, l->c->sha, "publish");
}

static void on_mod_script(redisAsyncContext *ac, void *reply, void *priv) {
    link_t *l = priv;
    script_loaded(ac, reply, l, l->c->sha_m, "moderation");
}

static void on_alive(redisAsyncContext *ac, void *reply, void *priv);

static void announce(cluster_t *c) {
    char lease[16];
    snprintf(lease, sizeof(lease), "%d", NODE_LEASE_MS);
    const char *args[] = {c->cfg.node, lease};
    size_t lens[] = {strlen(c->cfg.node), strlen(lease)};
    presence_call(c, on_alive, &c->cmd, "alive", 2, args, lens);
    c->last_alive_ms = now_ms(c);
}

/* The people and nicknames node held end (op "reap": it is lost;
 * "restart": this node, in its first lease, ends what an earlier process
 * under its name left). */
static void drop_node(cluster_t *c, link_t *l, const char *op, const char *node, size_t len) {
    char ts[24], grace[24];
    snprintf(ts, sizeof(ts), "%" PRId64, wall_ms());
    snprintf(grace, sizeof(grace), "%" PRIu64, c->cfg.grace_ms);
    const char *args[] = {node, ts, grace};
    size_t lens[] = {len, strlen(ts), strlen(grace)};
    presence_call(c, on_setup, l, op, 3, args, lens);
}

static void on_presence_script(redisAsyncContext *ac, void *reply, void *priv) {
    link_t *l = priv;
    cluster_t *c = l->c;
    if (!script_loaded(ac, reply, l, c->sha_p, "presence"))
        return;
    /* A process killed and started again within its lease was never
     * reaped: its people would stay in the others' rooms, and its
     * nicknames taken. Before the first lease, so before any user here. */
    if (!c->restated)
        drop_node(c, l, "restart", c->cfg.node, c->node_len);
    /* The node's lease comes first: another node's claim takes over
     * nicknames of nodes without one. */
    announce(c);
}

/* ---- restating this node's presence after a lost link ---- */

/* A presence.lua call of any length, its arguments copied. */
typedef struct pargs_s {
    char **v;
    size_t *l;
    size_t n, cap;
} pargs_t;

static void pargs_add(pargs_t *a, const char *s, size_t len) {
    if (a->n == a->cap) {
        a->cap = a->cap ? 2 * a->cap : 16;
        a->v = xrealloc(a->v, a->cap * sizeof(*a->v));
        a->l = xrealloc(a->l, a->cap * sizeof(*a->l));
    }
    a->v[a->n] = xmalloc(len + 1);
    memcpy(a->v[a->n], s, len);
    a->v[a->n][len] = '\0';
    a->l[a->n++] = len;
}

static void pargs_start(cluster_t *c, pargs_t *a, const char *op) {
    const char *head[] = {"EVALSHA", c->sha_p, "0", op, c->rchan};
    for (size_t i = 0; i < 5; i++)
        pargs_add(a, head[i], strlen(head[i]));
}

static void on_restated(redisAsyncContext *ac, void *reply, void *priv) {
    const redisReply *r = reply;
    if (r != NULL && r->type == REDIS_REPLY_INTEGER && r->integer > 1)
        tt_log_warn("cluster: %lld nicknames of this node's users were taken by other nodes while "
                    "its link was lost",
                    (long long)r->integer - 1);
    on_setup(ac, reply, priv);
}

/* Sends the call (hiredis copies it) and empties a. */
static void pargs_send(cluster_t *c, pargs_t *a) {
    command_argv(&c->cmd, on_restated, &c->cmd, (int)a->n, (const char **)a->v, a->l);
    for (size_t i = 0; i < a->n; i++)
        free(a->v[i]);
    a->n = 0;
}

static void pargs_free(pargs_t *a) {
    free(a->v);
    free(a->l);
}

typedef struct restate_s {
    cluster_t *c;
    pargs_t one, rooms, nicks;
    char ts[24];
} restate_t;

static void restate_room(void *ctx, const char *room, size_t room_len, const char *const *nicks,
                         const size_t *nick_lens, size_t n) {
    restate_t *st = ctx;
    cluster_t *c = st->c;
    char key[65];
    size_t klen = cluster_room_key(room, room_len, key);
    pargs_start(c, &st->one, "restate_room");
    pargs_add(&st->one, key, klen);
    pargs_add(&st->one, c->cfg.node, c->node_len);
    pargs_add(&st->one, st->ts, strlen(st->ts));
    pargs_add(&st->one, room, room_len);
    for (size_t i = 0; i < n; i++)
        pargs_add(&st->one, nicks[i], nick_lens[i]);
    pargs_send(c, &st->one);
    pargs_add(&st->rooms, key, klen);
}

static void restate_user(void *ctx, const char *nick, size_t nick_len, const uint8_t *hash) {
    restate_t *st = ctx;
    char folded[CHAT_NICK_MAX + 1], h[2 * AUTH_TOKEN_HASH_BYTES + 1] = "-";
    size_t flen = fold_nick(nick, nick_len < CHAT_NICK_MAX ? nick_len : CHAT_NICK_MAX, folded);
    if (hash != NULL)
        tt_hex(hash, AUTH_TOKEN_HASH_BYTES, h);
    pargs_add(&st->nicks, folded, flen);
    pargs_add(&st->nicks, hash != NULL ? "g" : "a", 1);
    pargs_add(&st->nicks, h, strlen(h));
}

/* The link is back after a loss: what the node told Redis meanwhile was
 * lost (presence calls are dropped while it is down), so it says again
 * what it has: its people in each room, and its users' nicknames. Each
 * room one call (as large as its people here), then the rest at once. */
static void restate(cluster_t *c) {
    restate_t st = {.c = c};
    snprintf(st.ts, sizeof(st.ts), "%" PRId64, wall_ms());
    pargs_start(c, &st.rooms, "restate_rooms");
    pargs_add(&st.rooms, c->cfg.node, c->node_len);
    pargs_add(&st.rooms, st.ts, strlen(st.ts));
    pargs_start(c, &st.nicks, "restate_nicks");
    pargs_add(&st.nicks, c->cfg.node, c->node_len);
    static const chat_bus_shares_t cb = {.room = restate_room, .user = restate_user};
    chat_bus_shares(c->chat, &cb, &st);
    pargs_send(c, &st.rooms);
    pargs_send(c, &st.nicks);
    pargs_free(&st.one);
    pargs_free(&st.rooms);
    pargs_free(&st.nicks);
}

/* Our lease is renewed; the nodes whose lease ran out lose their people
 * and nicknames (reap: the first node to ask does it, once). */
static void on_alive(redisAsyncContext *ac, void *reply, void *priv) {
    link_t *l = priv;
    cluster_t *c = l->c;
    replied(l, reply);
    const redisReply *r = reply;
    if (r == NULL || l->ac != ac)
        return;
    if (r->type != REDIS_REPLY_ARRAY) {
        char why[160];
        snprintf(why, sizeof(why), "redis refused the node's lease: %.100s",
                 r->type == REDIS_REPLY_ERROR ? r->str : "an unexpected reply");
        link_lost(l, why);
        return;
    }
    if (l->state == LINK_CONNECTING) {
        c->script = true;
        if (c->restated)
            restate(c);     /* back after a loss */
        c->restated = true; /* else the restart ran first, on this link */
        link_up(l);
    }
    for (size_t i = 0; i < r->elements; i++) {
        const redisReply *d = r->element[i];
        if (d->type != REDIS_REPLY_STRING || !cluster_node_name_valid(d->str, d->len) ||
            strcmp(d->str, c->cfg.node) == 0)
            continue;
        tt_log_info("cluster: node %s is lost (no lease): its people leave its rooms", d->str);
        drop_node(c, l, "reap", d->str, d->len);
    }
}

static void on_sub_message(redisAsyncContext *ac, void *reply, void *priv);

static void on_connect(const redisAsyncContext *ac, int status) {
    link_t *l = link_of(ac);
    if (status == REDIS_OK || l->ac != ac)
        return;
    /* hiredis frees the context after this. */
    char why[160];
    snprintf(why, sizeof(why), "cannot connect the %s link: %.100s", l->what, ac->errstr);
    l->ac = NULL;
    link_lost(l, why);
}

static void on_disconnect(const redisAsyncContext *ac, int status) {
    link_t *l = link_of(ac);
    if (l->ac != ac)
        return; /* given up on already (link_lost) */
    char why[160];
    snprintf(why, sizeof(why), "the %s link closed: %.100s", l->what,
             status == REDIS_OK ? "by redis" : ac->errstr);
    l->ac = NULL;
    link_lost(l, why);
}

static void link_connect(link_t *l) {
    cluster_t *c = l->c;
    const cluster_url_t *u = &c->cfg.url;
    redisAsyncContext *ac =
        u->path[0] != '\0' ? redisAsyncConnectUnix(u->path) : redisAsyncConnect(u->host, u->port);
    l->since_ms = now_ms(c);
    l->outstanding = 0;
    if (ac == NULL || ac->err) {
        tt_log_debug("cluster: cannot connect the %s link: %s", l->what,
                     ac != NULL ? ac->errstr : "out of memory");
        if (ac != NULL)
            redisAsyncFree(ac);
        l->next_try_ms = now_ms(c) + l->backoff_ms;
        l->backoff_ms = l->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : l->backoff_ms * 2;
        return;
    }
    ac->data = l;
    if (tt_loop_attach_redis(c->loop, ac) != 0) {
        redisAsyncFree(ac);
        l->next_try_ms = now_ms(c) + l->backoff_ms;
        return;
    }
    l->ac = ac;
    l->state = LINK_CONNECTING;
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    /* Commands queue until the connection is made; their replies come in
     * order: the set-up, then the script or the subscription. */
    if (u->password[0] != '\0') {
        const char *argv[] = {"AUTH", u->password};
        size_t lens[] = {4, strlen(u->password)};
        command_argv(l, on_setup, l, 2, argv, lens);
    }
    if (!l->sub && u->db != 0) {
        char db[16];
        int n = snprintf(db, sizeof(db), "%d", u->db);
        const char *argv[] = {"SELECT", db};
        size_t lens[] = {6, (size_t)n};
        command_argv(l, on_setup, l, 2, argv, lens);
    }
    if (l->sub) {
        /* Our own channel first: its confirmation makes the link ready. */
        const char *argv[] = {"SUBSCRIBE", c->hb_chan};
        size_t lens[] = {9, strlen(c->hb_chan)};
        if (l->ac != NULL && redisAsyncCommandArgv(l->ac, on_sub_message, c, 2, argv, lens) == 0)
            l->progress_ms = now_ms(c);
    } else {
        const char *argv[] = {"SCRIPT", "LOAD", cluster_publish_lua};
        size_t lens[] = {6, 4, strlen(cluster_publish_lua)};
        command_argv(l, on_script, l, 3, argv, lens);
        const char *argv2[] = {"SCRIPT", "LOAD", cluster_presence_lua};
        size_t lens2[] = {6, 4, strlen(cluster_presence_lua)};
        command_argv(l, on_presence_script, l, 3, argv2, lens2);
        const char *argv3[] = {"SCRIPT", "LOAD", cluster_mod_lua};
        size_t lens3[] = {6, 4, strlen(cluster_mod_lua)};
        command_argv(l, on_mod_script, l, 3, argv3, lens3);
    }
}

/* A link found down or silent: forget it (what was in flight completes as
 * refused), and try again after the backoff. */
static void link_lost(link_t *l, const char *why) {
    cluster_t *c = l->c;
    bool was_ready = c->ready;
    if (l->state != LINK_DOWN)
        c->stats.link_losses++;
    redisAsyncContext *ac = l->ac;
    l->ac = NULL;
    l->state = LINK_DOWN;
    l->outstanding = 0;
    l->next_try_ms = now_ms(c) + l->backoff_ms;
    l->backoff_ms = l->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : l->backoff_ms * 2;
    if (!l->sub)
        c->script = false;
    note_ready(c);
    if (was_ready && l->sub)
        tt_log_warn("cluster: %s; room messages reach this node's members once it is back", why);
    else if (was_ready)
        tt_log_warn("cluster: %s; chat messages are refused until redis is back", why);
    else
        tt_log_debug("cluster: %s", why);
    if (l->sub) {
        /* Moderation is read again once subscribed. */
        c->mod_state = MOD_UNSUB;
        mod_queue_clear(c);
        /* Every channel subscribes again; a room fills what it missed. */
        for (int m = 0; m < 2; m++) {
            size_t pos = 0;
            void *v;
            while (tt_map_next(m == 0 ? &c->rooms : &c->users, &pos, NULL, NULL, &v))
                ((croom_t *)v)->state = R_UNSUB;
        }
    }
    if (ac != NULL)
        redisAsyncFree(ac); /* runs the pending callbacks with no reply */
    if (!l->sub) {
        c->mod_reading = false; /* its page, if one was asked for, is lost */
        /* Reads waiting for a subscription fail now, not later. */
        size_t pos = 0;
        void *v;
        while (tt_map_next(&c->rooms, &pos, NULL, NULL, &v)) {
            croom_t *r = v;
            r->fetching = false;
            cread_t *rd;
            while ((rd = reads_pop(c, r)) != NULL)
                read_fail(c, rd);
        }
    }
}

/* ---- rooms ---- */

/* A node name from Redis is this node's. */
static bool is_ours(const cluster_t *c, const char *node, size_t len) {
    return len == c->node_len && memcmp(node, c->cfg.node, len) == 0;
}

/* The chat's view of a parsed payload (borrowing its bytes). */
static chat_message_t chat_msg_of(const cluster_msg_t *m, chat_msg_kind_t kind) {
    return (chat_message_t){.id = m->id,
                            .ts = m->ts,
                            .kind = kind,
                            .from = m->from,
                            .from_len = m->from_len,
                            .to = m->room,
                            .to_len = m->room_len,
                            .text = m->text,
                            .text_len = m->text_len};
}

/* The oldest chat read waiting for the room's subscription, taken off. */
static cread_t *reads_pop(cluster_t *c, croom_t *r) {
    cread_t *rd = r->reads;
    if (rd == NULL)
        return NULL;
    r->reads = rd->next;
    if (r->reads == NULL)
        r->reads_tail = NULL;
    c->nreads--;
    return rd;
}

static croom_t *room_get(cluster_t *c, const char *key, size_t len) {
    return tt_map_get(&c->rooms, key, len);
}

static tt_map_t *map_of(cluster_t *c, const croom_t *r) {
    return r->user ? &c->users : &c->rooms;
}

/* The channel's name into buf (80 bytes): its length. */
static size_t chan_name(const cluster_t *c, const croom_t *r, char *buf) {
    int n = snprintf(buf, 80, "%s%.*s", r->user ? c->uchan : c->rchan, (int)r->key_len, r->key);
    return (size_t)n;
}

static void inbox_clear(croom_t *r) {
    for (size_t i = 0; i < r->in_n; i++)
        free(r->inbox[(r->in_head + i) % r->in_cap]);
    r->in_head = r->in_n = r->in_bytes = 0;
}

static void room_free(cluster_t *c, croom_t *r) {
    tt_map_remove(map_of(c, r), r->key, r->key_len);
    inbox_clear(r);
    free(r->inbox);
    if (!r->user)
        c->stats.rooms--;
    free(r);
}

static void inbox_push(croom_t *r, const char *p, size_t len) {
    if (r->overflowed)
        return;
    if (r->in_n == INBOX_MAX || r->in_bytes + len > INBOX_BYTES) {
        /* Everything held is in the stream: read it from there instead. */
        inbox_clear(r);
        r->overflowed = true;
        return;
    }
    if (r->in_n == r->in_cap) {
        size_t cap = r->in_cap ? r->in_cap * 2 : 16;
        inbox_item_t **a = xmalloc(cap * sizeof(*a));
        for (size_t i = 0; i < r->in_n; i++)
            a[i] = r->inbox[(r->in_head + i) % r->in_cap];
        free(r->inbox);
        r->inbox = a;
        r->in_cap = cap;
        r->in_head = 0;
    }
    inbox_item_t *it = xmalloc(sizeof(*it) + len);
    it->len = len;
    memcpy(it->data, p, len);
    r->inbox[(r->in_head + r->in_n) % r->in_cap] = it;
    r->in_n++;
    r->in_bytes += len;
}

static void bad_payload(cluster_t *c, const char *where) {
    uint64_t now = now_ms(c);
    if (c->bad_logged_ms != 0 && now - c->bad_logged_ms < 10000)
        return;
    c->bad_logged_ms = now;
    tt_log_warn("cluster: a malformed message in %s was skipped (logged once per 10 s)", where);
}

/* The room's next message: to the chat, and the room's position past it. */
static void room_deliver(cluster_t *c, croom_t *r, const cluster_msg_t *m) {
    r->last_id = m->id;
    r->last_seq = m->seq;
    r->known = true;
    if (m->id > c->max_id)
        c->max_id = m->id;
    if (!r->watched)
        return;
    bool ours = is_ours(c, m->node, m->node_len);
    chat_message_t msg = chat_msg_of(m, CHAT_MSG_ROOM);
    msg.to = r->name; /* the chat's spelling */
    msg.to_len = r->name_len;
    chat_bus_deliver(c->chat, &msg, m->mentions, m->mentions_len, ours ? m->token : 0);
}

typedef enum { IN_DONE, IN_GAP } in_result_t;

/* "E <node> <evid> <nick> <frame>": an event frame (typing, status) of
 * another node's user, for this node's members of the room (r) or the
 * user r (r->user). */
static void event_in(cluster_t *c, const croom_t *r, const char *p, size_t len) {
    const char *end = p + len, *node = p + 2;
    const char *f[3];
    size_t fl[3];
    const char *q = node;
    for (int i = 0; i < 3; i++) {
        const char *sp = q < end ? memchr(q, ' ', (size_t)(end - q)) : NULL;
        if (sp == NULL || sp == q) {
            bad_payload(c, r->user ? "a user's channel" : "a room's channel");
            return;
        }
        f[i] = q;
        fl[i] = (size_t)(sp - q);
        q = sp + 1;
    }
    if (is_ours(c, f[0], fl[0]))
        return; /* ours: told here already */
    uint64_t evid = strtoull(f[1], NULL, 10), key = 0;
    if (evid != 0) {
        /* The event's name in the cluster: its node and its number there. */
        key = 1469598103934665603ull;
        for (size_t i = 0; i < fl[0]; i++)
            key = (key ^ (uint8_t)f[0][i]) * 1099511628211ull;
        key ^= evid * 0x9E3779B97F4A7C15ull;
        key |= 1;
    }
    if (r->watched)
        chat_bus_relay(c->chat, !r->user, r->user ? r->key : r->name,
                       r->user ? r->key_len : r->name_len, f[2], fl[2], key, q, (size_t)(end - q));
}

/* The slot of another node's name (chat_bus_presence). */
static unsigned node_slot(cluster_t *c, const char *node, size_t len) {
    for (unsigned i = 0; i < c->nslots; i++)
        if (strncmp(c->slot_name[i], node, len) == 0 && c->slot_name[i][len] == '\0')
            return i;
    if (c->nslots == NODE_SLOTS || len > CLUSTER_NODE_MAX) {
        if (!c->slots_full_logged)
            tt_log_warn("cluster: more than %d other nodes named: some share a presence slot (a "
                        "person on two of them may leave early)",
                        NODE_SLOTS);
        c->slots_full_logged = true;
        return NODE_SLOTS - 1;
    }
    memcpy(c->slot_name[c->nslots], node, len);
    c->slot_name[c->nslots][len] = '\0';
    return c->nslots++;
}

/* "P+ <node> <nick> <ts>" or "P- <node> <nick> <reason> <ts>": another
 * node's share of a person in the room began or ended. */
static void room_presence_in(cluster_t *c, croom_t *r, const char *p, size_t len) {
    char buf[200];
    if (len >= sizeof(buf) || len < 4 || p[0] != 'P' || (p[1] != '+' && p[1] != '-') ||
        p[2] != ' ') {
        bad_payload(c, "a room's channel");
        return;
    }
    memcpy(buf, p, len);
    buf[len] = '\0';
    char *save = NULL;
    char *node = strtok_r(buf + 3, " ", &save);
    char *nick = node != NULL ? strtok_r(NULL, " ", &save) : NULL;
    char *reason = nick != NULL && p[1] == '-' ? strtok_r(NULL, " ", &save) : NULL;
    if (node == NULL || nick == NULL || (p[1] == '-' && reason == NULL)) {
        bad_payload(c, "a room's channel");
        return;
    }
    if (is_ours(c, node, strlen(node)) || !r->watched)
        return; /* ours: the chat knows its own share */
    /* A reason is a word of the protocol's (node_lost, timeout, ...). */
    for (char *q = reason; q != NULL && *q != '\0'; q++)
        if (!((*q >= 'a' && *q <= 'z') || *q == '_'))
            reason = "disconnect";
    chat_bus_presence(c->chat, r->name, r->name_len, nick, strlen(nick),
                      node_slot(c, node, strlen(node)), p[1] == '+', reason);
}

/* One message from the subscription, in a live room: delivered, dropped as
 * a duplicate, or a gap (then nothing is consumed). */
static in_result_t room_in(cluster_t *c, croom_t *r, const char *p, size_t len) {
    if (len > 0 && p[0] == 'P') {
        room_presence_in(c, r, p, len);
        return IN_DONE;
    }
    if (len > 1 && p[0] == 'E' && p[1] == ' ') {
        event_in(c, r, p, len);
        return IN_DONE;
    }
    if (len > 1 && p[0] == 'X' && p[1] == ' ') {
        /* An edit or delete (CHANGE_LUA), every node's own included: after
         * the message it changes, as the channel carries them. */
        if (r->watched)
            chat_bus_change(c->chat, true, r->name, r->name_len, p + 2, len - 2);
        return IN_DONE;
    }
    cluster_msg_t m;
    if (!cluster_msg_parse(p, len, &m)) {
        bad_payload(c, "a room's channel");
        return IN_DONE;
    }
    if (m.seq <= r->last_seq && r->known) {
        c->stats.duplicates++;
        return IN_DONE;
    }
    if (r->known && m.seq != r->last_seq + 1) {
        c->stats.gaps++;
        return IN_GAP;
    }
    c->stats.received++;
    room_deliver(c, r, &m);
    return IN_DONE;
}

/* Delivers what the room holds, in order, while it is live and no join
 * reads; a gap starts a sync read and leaves the rest held. */
static void room_drain(cluster_t *c, croom_t *r) {
    while (r->state == R_LIVE && r->hold == 0 && r->in_n > 0) {
        inbox_item_t *it = r->inbox[r->in_head];
        if (room_in(c, r, it->data, it->len) == IN_GAP) {
            r->state = R_SYNCING;
            room_fetch(c, r);
            return;
        }
        r->in_head = (r->in_head + 1) % r->in_cap;
        r->in_n--;
        r->in_bytes -= it->len;
        free(it);
    }
}

static void room_live(cluster_t *c, croom_t *r) {
    if (!r->people_ok) {
        room_people(c, r);
        return;
    }
    if (r->overflowed) {
        /* What overflowed the inbox is in the stream: read on. */
        r->overflowed = false;
        r->known = true;
        room_fetch(c, r);
        return;
    }
    if (r->state != R_LIVE && !r->known_live && c->cfg.retain_days > 0)
        age_trim_room(c, r);
    r->known_live = true;
    r->state = R_LIVE;
    cread_t *rd;
    while ((rd = reads_pop(c, r)) != NULL)
        read_issue(c, rd);
    room_drain(c, r);
}

typedef struct fetch_s {
    cluster_t *c;
    char key[65];
    size_t key_len;
    bool newest; /* only the room's position, nothing delivered */
} fetch_t;

static bool entry_payload(const redisReply *e, const char **p, size_t *len) {
    if (e->type != REDIS_REPLY_ARRAY || e->elements != 2 ||
        e->element[1]->type != REDIS_REPLY_ARRAY || e->element[1]->elements < 2)
        return false;
    const redisReply *f = e->element[1];
    for (size_t i = 0; i + 1 < f->elements; i += 2)
        if (f->element[i]->type == REDIS_REPLY_STRING && f->element[i]->len == 1 &&
            f->element[i]->str[0] == 'm' && f->element[i + 1]->type == REDIS_REPLY_STRING) {
            *p = f->element[i + 1]->str;
            *len = f->element[i + 1]->len;
            return true;
        }
    return false;
}

/* What a change left in a stream entry (CHANGE_LUA): field e, its edit
 * time; field d, a deleted message's marker (its text is gone). */
static void entry_state(const redisReply *e, int64_t *edited_ts, bool *deleted) {
    *edited_ts = 0;
    *deleted = false;
    const redisReply *f = e->element[1];
    for (size_t i = 0; i + 1 < f->elements; i += 2) {
        const redisReply *k = f->element[i], *v = f->element[i + 1];
        if (k->type != REDIS_REPLY_STRING || k->len != 1 || v->type != REDIS_REPLY_STRING)
            continue;
        if (k->str[0] == 'e')
            *edited_ts = strtoll(v->str, NULL, 10);
        else if (k->str[0] == 'd')
            *deleted = true;
    }
}

/* A stream entry's message in *m, or false (logged: a malformed one is
 * skipped). */
static bool stream_entry(cluster_t *c, const redisReply *e, cluster_msg_t *m) {
    const char *p;
    size_t len;
    if (entry_payload(e, &p, &len) && cluster_msg_parse(p, len, m))
        return true;
    bad_payload(c, "a room's stream");
    return false;
}

static void on_fetch(redisAsyncContext *ac, void *reply, void *priv) {
    fetch_t *f = priv;
    cluster_t *c = f->c;
    replied(&c->cmd, reply);
    croom_t *r = room_get(c, f->key, f->key_len);
    bool newest = f->newest;
    free(f);
    if (r == NULL)
        return;
    r->fetching = false;
    const redisReply *rep = reply;
    if (r->state != R_SYNCING)
        return; /* the subscription went away meanwhile: it syncs again */
    if (!reply_ok(rep) || rep->type != REDIS_REPLY_ARRAY)
        return; /* the tick tries again once the link is back */
    if (newest) {
        cluster_msg_t m;
        const char *p;
        size_t len;
        r->last_id = r->last_seq = 0;
        if (rep->elements > 0 && entry_payload(rep->element[0], &p, &len) &&
            cluster_msg_parse(p, len, &m)) {
            r->last_id = m.id;
            r->last_seq = m.seq;
            if (m.id > c->max_id)
                c->max_id = m.id;
        }
        r->known = true;
        room_live(c, r);
        return;
    }
    for (size_t i = 0; i < rep->elements; i++) {
        cluster_msg_t m;
        if (!stream_entry(c, rep->element[i], &m))
            continue;
        if (m.id <= r->last_id)
            continue;
        int64_t edited_ts;
        bool deleted;
        entry_state(rep->element[i], &edited_ts, &deleted);
        if (deleted) {
            /* A deleted message keeps its place (and its sequence number)
             * as a marker: the room moves past it, delivering nothing. */
            r->last_id = m.id;
            r->last_seq = m.seq;
            continue;
        }
        /* The stream is the room's history: whatever follows the last
         * message delivered is next, even where sequence numbers jump
         * (a Redis that lost them restarted above the floor). An edited
         * one comes with its new text. */
        c->stats.fetched++;
        room_deliver(c, r, &m);
    }
    if (rep->elements >= FETCH_COUNT)
        room_fetch(c, r);
    else
        room_live(c, r);
}

/* Reads the room's position (a new subscription) or what follows it (a
 * gap, a resubscription) from its stream. */
static void room_fetch(cluster_t *c, croom_t *r) {
    if (r->fetching || c->cmd.state != LINK_READY)
        return; /* on_script or the tick issue it once the link is up */
    fetch_t *f = xmalloc(sizeof(*f));
    f->c = c;
    memcpy(f->key, r->key, r->key_len);
    f->key_len = r->key_len;
    f->newest = !r->known;
    char log[80], start[32], count[16];
    snprintf(log, sizeof(log), KEY_PREFIX "%.*s:log", (int)r->key_len, r->key);
    snprintf(count, sizeof(count), "%d", f->newest ? 1 : FETCH_COUNT);
    bool ok;
    if (f->newest) {
        const char *argv[] = {"XREVRANGE", log, "+", "-", "COUNT", count};
        size_t lens[] = {9, strlen(log), 1, 1, 5, strlen(count)};
        ok = command_argv(&c->cmd, on_fetch, f, 6, argv, lens);
    } else {
        snprintf(start, sizeof(start), "%" PRIu64, r->last_id + 1);
        const char *argv[] = {"XRANGE", log, start, "+", "COUNT", count};
        size_t lens[] = {6, strlen(log), strlen(start), 1, 5, strlen(count)};
        ok = command_argv(&c->cmd, on_fetch, f, 6, argv, lens);
    }
    if (!ok) {
        free(f);
        return;
    }
    r->fetching = true;
}

/* "U <id> <to>": a private the user sent was not delivered (the node
 * that held it for `to` says so). */
static void user_undelivered_in(cluster_t *c, croom_t *u, const char *p, size_t len) {
    char buf[64];
    if (len >= sizeof(buf)) {
        bad_payload(c, "a user's channel");
        return;
    }
    memcpy(buf, p, len);
    buf[len] = '\0';
    char *end;
    unsigned long long id = strtoull(buf + 2, &end, 10);
    if (id == 0 || *end != ' ') {
        bad_payload(c, "a user's channel");
        return;
    }
    chat_bus_undelivered(c->chat, u->key, u->key_len, id, end + 1, strlen(end + 1));
}

/* A private message on a user's channel. */
static void user_in(cluster_t *c, croom_t *u, const char *p, size_t len) {
    if (len > 2 && p[0] == 'U' && p[1] == ' ') {
        user_undelivered_in(c, u, p, len);
        return;
    }
    if (len > 2 && p[0] == 'E' && p[1] == ' ') {
        event_in(c, u, p, len);
        return;
    }
    if (len > 2 && p[0] == 'X' && p[1] == ' ') {
        chat_bus_change(c->chat, false, u->key, u->key_len, p + 2, len - 2);
        return;
    }
    cluster_msg_t m;
    if (!cluster_msg_parse(p, len, &m) || m.seq > 1 || m.room[0] == '#') {
        bad_payload(c, "a user's channel");
        return;
    }
    if (m.id > c->max_id)
        c->max_id = m.id;
    bool ours = is_ours(c, m.node, m.node_len);
    chat_message_t msg = chat_msg_of(&m, CHAT_MSG_PRIVATE);
    c->stats.received++;
    chat_bus_private(c->chat, &msg, ours ? m.token : 0, u->key, u->key_len, m.seq == 1);
}

static void on_sub_message(redisAsyncContext *ac, void *reply, void *priv) {
    cluster_t *c = priv;
    link_t *l = &c->sub;
    const redisReply *r = reply;
    if (r == NULL || l->ac != ac)
        return;
    l->progress_ms = now_ms(c);
    if (r->type != REDIS_REPLY_ARRAY || r->elements < 3 ||
        r->element[0]->type != REDIS_REPLY_STRING || r->element[1]->type != REDIS_REPLY_STRING)
        return;
    const char *kind = r->element[0]->str;
    const char *chan = r->element[1]->str;
    size_t chan_len = r->element[1]->len;
    if (chan_len == strlen(c->hb_chan) && memcmp(chan, c->hb_chan, chan_len) == 0) {
        if (strcmp(kind, "subscribe") == 0)
            link_up(l);
        return;
    }
    if (chan_len == strlen(c->mchan) && memcmp(chan, c->mchan, chan_len) == 0) {
        if (strcmp(kind, "subscribe") == 0 && c->mod_state == MOD_SUBSCRIBING) {
            c->mod_state = MOD_SYNCING;
            mod_read(c);
        } else if (strcmp(kind, "message") == 0 && r->element[2]->type == REDIS_REPLY_STRING) {
            mod_in(c, r->element[2]->str, r->element[2]->len);
        }
        return;
    }
    size_t plen = strlen(c->rchan); /* as long as uchan */
    bool user = chan_len > plen && memcmp(chan, c->uchan, plen) == 0;
    if (chan_len <= plen || (!user && memcmp(chan, c->rchan, plen) != 0))
        return;
    croom_t *room = tt_map_get(user ? &c->users : &c->rooms, chan + plen, chan_len - plen);
    if (room == NULL)
        return;
    if (strcmp(kind, "subscribe") == 0) {
        if (room->state == R_SUBSCRIBING && user) {
            room->state = R_LIVE;
        } else if (room->state == R_SUBSCRIBING) {
            room->state = R_SYNCING;
            room_fetch(c, room);
        }
    } else if (user && strcmp(kind, "message") == 0 && r->element[2]->type == REDIS_REPLY_STRING) {
        if (room->watched)
            user_in(c, room, r->element[2]->str, r->element[2]->len);
    } else if (strcmp(kind, "unsubscribe") == 0) {
        if (room->state != R_UNSUBSCRIBING)
            return;
        room->state = R_UNSUB;
        room->known = false; /* it no longer follows the room */
        inbox_clear(room);
        if (room->watched)
            room_subscribe(c, room);
        else if (room->hold == 0 && room->reads == NULL)
            room_free(c, room);
    } else if (strcmp(kind, "message") == 0 && r->element[2]->type == REDIS_REPLY_STRING) {
        const char *p = r->element[2]->str;
        size_t len = r->element[2]->len;
        if (room->state != R_LIVE || room->hold > 0 || room->in_n > 0) {
            inbox_push(room, p, len);
            return;
        }
        if (room_in(c, room, p, len) == IN_GAP) {
            inbox_push(room, p, len);
            room->state = R_SYNCING;
            room_fetch(c, room);
        }
    }
}

static void room_subscribe(cluster_t *c, croom_t *r) {
    if (c->sub.state != LINK_READY)
        return; /* the heartbeat's confirmation subscribes every room */
    char chan[80];
    size_t n = chan_name(c, r, chan);
    const char *argv[] = {"SUBSCRIBE", chan};
    size_t lens[] = {9, n};
    if (redisAsyncCommandArgv(c->sub.ac, on_sub_message, c, 2, argv, lens) == REDIS_OK) {
        r->state = R_SUBSCRIBING;
        r->people_ok = false;
        r->first_sync = !r->known;
    }
}

static void room_unsubscribe(cluster_t *c, croom_t *r) {
    if (c->sub.state != LINK_READY || r->state == R_UNSUB) {
        /* Nothing to unsubscribe from (hiredis would not even route the
         * answer): the link is down, or it never subscribed on this one. */
        r->state = R_UNSUB;
        r->known = false;
        inbox_clear(r);
        room_free(c, r);
        return;
    }
    char chan[80];
    size_t n = chan_name(c, r, chan);
    const char *argv[] = {"UNSUBSCRIBE", chan};
    size_t lens[] = {11, n};
    if (redisAsyncCommandArgv(c->sub.ac, on_sub_message, c, 2, argv, lens) == REDIS_OK)
        r->state = R_UNSUBSCRIBING;
}

/* Follows a channel while on (a room the chat has, a user of this node);
 * off: it stays subscribed a while (UNWATCH_LINGER_MS), so coming back soon
 * costs nothing, and is then given up by the tick. */
static void channel_watch(cluster_t *c, bool user, const char *key, size_t klen, const char *name,
                          size_t len, bool on) {
    tt_map_t *map = user ? &c->users : &c->rooms;
    croom_t *r = tt_map_get(map, key, klen);
    if (!on) {
        if (r != NULL) {
            r->watched = false;
            r->unwatched_ms = now_ms(c);
        }
        return;
    }
    if (r == NULL) {
        r = xcalloc(1, sizeof(*r));
        r->user = user;
        memcpy(r->key, key, klen);
        r->key_len = klen;
        tt_map_put(map, r->key, r->key_len, r);
        if (!user)
            c->stats.rooms++;
    }
    size_t n = len < 64 ? len : 64;
    memcpy(r->name, name, n);
    r->name_len = n;
    bool again = r->watched && !user;
    r->watched = true;
    if (r->state == R_UNSUB) {
        room_subscribe(c, r);
    } else if (again && (r->state == R_LIVE || r->state == R_SYNCING)) {
        /* Watched already: the chat has its first member again and had
         * forgotten the other nodes' people (or never had them): read
         * them again, quietly, before the joiner's read is answered. */
        r->people_ok = false;
        r->first_sync = true;
        r->state = R_SYNCING;
        if (!r->fetching)
            room_people(c, r);
    }
    /* R_UNSUBSCRIBING: subscribes again when the unsubscription is done. */
}

static void bus_room_watch(void *ctx, const char *name, size_t len, bool on) {
    char key[65];
    size_t klen = cluster_room_key(name, len, key);
    channel_watch(ctx, false, key, klen, name, len, on);
}

/* ---- publishing ---- */

/* In ids[] until the reply comes: the message is a private one. */
#define PUB_PRIVATE 1

typedef struct pub_s {
    cluster_t *c;
    chat_bus_done_cb done;
    void *arg;
    size_t n;      /* messages: ids[0..n) */
    size_t expect; /* replies to wait for (the messages queued) */
    size_t got;
    uint64_t ids[];
} pub_t;

static void pub_complete(pub_t *pub) {
    pub->done(pub->arg, pub->ids, pub->n);
    free(pub);
}

static void on_publish(redisAsyncContext *ac, void *reply, void *priv) {
    pub_t *pub = priv;
    cluster_t *c = pub->c;
    replied(&c->cmd, reply);
    const redisReply *r = reply;
    uint64_t id = 0;
    bool private = pub->ids[pub->got] == PUB_PRIVATE;
    /* A private's reply has a third element: 1 when it was stored. */
    bool stored = r != NULL && r->type == REDIS_REPLY_ARRAY && r->elements == 3 &&
                  r->element[2]->type == REDIS_REPLY_INTEGER && r->element[2]->integer == 1;
    if (r != NULL && r->type == REDIS_REPLY_ARRAY && (r->elements == 2 || r->elements == 3) &&
        r->element[0]->type == REDIS_REPLY_INTEGER && r->element[0]->integer > 0 &&
        r->element[1]->type == REDIS_REPLY_INTEGER) {
        id = (uint64_t)r->element[0]->integer;
        if (id > c->max_id)
            c->max_id = id;
        c->stats.published++;
        /* A private that reached no one's channel and was not stored for
         * an account: no such nickname. */
        if (private && r->element[1]->integer == 0 && !stored)
            id = CHAT_BUS_NO_USER;
    } else {
        c->stats.refused++;
        if (r != NULL && r->type == REDIS_REPLY_ERROR && strncmp(r->str, "NOSCRIPT", 8) == 0 &&
            c->cmd.ac == ac) {
            /* Its scripts were flushed: connect again, which loads them. */
            link_lost(&c->cmd, "redis forgot the scripts");
        } else if (r != NULL && r->type == REDIS_REPLY_ERROR &&
                   strncmp(r->str, "TT_LATE", 7) != 0) {
            tt_log_warn("cluster: redis refused a message: %.200s", r->str);
        }
    }
    pub->ids[pub->got++] = id;
    if (pub->got == pub->expect)
        pub_complete(pub);
}

/* The conversation key of two folded nicknames, as store_dm_key writes it
 * ("@" + both, in byte order, joined by "@"): out holds 2 * CHAT_NICK_MAX
 * + 3 bytes. */
static size_t dm_key(const char *a, size_t alen, const char *b, size_t blen, char *out) {
    int cmp = memcmp(a, b, alen < blen ? alen : blen);
    bool b_first = cmp > 0 || (cmp == 0 && alen > blen);
    return (size_t)snprintf(out, 2 * CHAT_NICK_MAX + 3, "@%.*s@%.*s", (int)(b_first ? blen : alen),
                            b_first ? b : a, (int)(b_first ? alen : blen), b_first ? a : b);
}

static int bus_publish(void *ctx, const chat_bus_msg_t *msgs, size_t n, chat_bus_done_cb done,
                       void *arg) {
    cluster_t *c = ctx;
    /* The command link is enough: what is published while the subscription
     * is down reaches everyone once it is back (from the stream). */
    if (c->cmd.state != LINK_READY || !c->script || n == 0)
        return -1;
    pub_t *pub = xcalloc(1, sizeof(*pub) + n * sizeof(uint64_t));
    pub->c = c;
    pub->done = done;
    pub->arg = arg;
    pub->n = n;
    pub->expect = n;
    /* Past this, Redis refuses the message: a node that gave up on it has
     * told its sender `unavailable`, so it must never appear later. */
    char deadline[24], floor[24];
    snprintf(deadline, sizeof(deadline), "%" PRId64, wall_ms() + (int64_t)c->cfg.timeout_ms);
    c->pub_deadline_ms = now_ms(c) + c->cfg.timeout_ms + 50;
    snprintf(floor, sizeof(floor), "%" PRIu64, c->max_id);
    size_t sent = 0;
    for (size_t i = 0; i < n; i++) {
        const chat_message_t *m = msgs[i].msg;
        bool ok;
        size_t need = m->text_len + CLUSTER_BODY_OVERHEAD + msgs[i].mentions_len;
        if (c->scratch_cap < need) {
            c->scratch_cap = need;
            c->scratch = xrealloc(c->scratch, need);
        }
        if (m->kind == CHAT_MSG_PRIVATE) {
            /* To the recipient's channel (whoever has it, on any node) and
             * the sender's (its other connections). */
            char to[80], from[80], fto[CHAT_NICK_MAX + 1], ffrom[CHAT_NICK_MAX + 1];
            size_t tlen = fold_nick(m->to, m->to_len, fto),
                   flen = fold_nick(m->from, m->from_len, ffrom);
            int tn = snprintf(to, sizeof(to), "%s%.*s", c->uchan, (int)tlen, fto);
            int fn = snprintf(from, sizeof(from), "%s%.*s", c->uchan, (int)flen, ffrom);
            size_t blen = cluster_body_format(c->scratch, c->scratch_cap, m->ts, c->cfg.node,
                                              msgs[i].token, m->from, m->from_len, m->to, m->to_len,
                                              NULL, 0, m->text, m->text_len);
            /* Between accounts the script stores it too, in their
             * conversation (it knows whether the recipient is one); a
             * guest's it need not look at. */
            char dkey[2 * CHAT_NICK_MAX + 3] = "", maxlen[24], cutoff[24];
            size_t dlen = msgs[i].from_account ? dm_key(ffrom, flen, fto, tlen, dkey) : 0;
            snprintf(maxlen, sizeof(maxlen), "%" PRIu64, c->cfg.retain);
            snprintf(cutoff, sizeof(cutoff), "%" PRId64,
                     c->cfg.retain_days > 0 ? wall_ms() - (int64_t)c->cfg.retain_days * 86400 * 1000
                                            : 0);
            const char *argv[] = {"EVALSHA", c->sha, "1",         KEY_ID,     deadline,
                                  floor,     to,     from,        c->scratch, dkey,
                                  ffrom,     fto,    c->cfg.node, maxlen,     cutoff};
            size_t lens[] = {7,
                             40,
                             1,
                             strlen(KEY_ID),
                             strlen(deadline),
                             strlen(floor),
                             (size_t)tn,
                             (size_t)fn,
                             blen,
                             dlen,
                             flen,
                             tlen,
                             c->node_len,
                             strlen(maxlen),
                             strlen(cutoff)};
            pub->ids[i] = PUB_PRIVATE;
            ok = blen > 0 && command_argv(&c->cmd, on_publish, pub, 15, argv, lens);
        } else {
            char key[65], kseq[96], klog[96], chan[96], maxlen[24], sfloor[24];
            size_t klen = cluster_room_key(m->to, m->to_len, key);
            croom_t *r = room_get(c, key, klen);
            snprintf(kseq, sizeof(kseq), KEY_PREFIX "%.*s:seq", (int)klen, key);
            snprintf(klog, sizeof(klog), KEY_PREFIX "%.*s:log", (int)klen, key);
            snprintf(chan, sizeof(chan), "%s%.*s", c->rchan, (int)klen, key);
            snprintf(maxlen, sizeof(maxlen), "%" PRIu64, c->cfg.retain);
            snprintf(sfloor, sizeof(sfloor), "%" PRIu64, r != NULL && r->known ? r->last_seq : 0);
            size_t blen = cluster_body_format(
                c->scratch, c->scratch_cap, m->ts, c->cfg.node, msgs[i].token, m->from, m->from_len,
                m->to, m->to_len, msgs[i].mentions, msgs[i].mentions_len, m->text, m->text_len);
            const char *argv[] = {"EVALSHA", c->sha, "3",  KEY_ID,     kseq,   klog,
                                  deadline,  floor,  chan, c->scratch, maxlen, sfloor};
            size_t lens[] = {7,
                             40,
                             1,
                             strlen(KEY_ID),
                             strlen(kseq),
                             strlen(klog),
                             strlen(deadline),
                             strlen(floor),
                             strlen(chan),
                             blen,
                             strlen(maxlen),
                             strlen(sfloor)};
            ok = blen > 0 && command_argv(&c->cmd, on_publish, pub, 12, argv, lens);
        }
        if (!ok)
            break;
        sent++;
    }
    if (sent == 0) {
        c->stats.refused += n;
        free(pub);
        return -1;
    }
    /* What could not even be queued is refused (its id 0), after the
     * replies of what was. */
    c->stats.refused += n - sent;
    for (size_t i = sent; i < n; i++)
        pub->ids[i] = 0;
    pub->expect = sent;
    return 0;
}

/* ---- history ---- */

/* A read answered: its room delivers again, and the read is freed. */
static void read_release(cluster_t *c, croom_t *r, cread_t *rd) {
    if (rd->fence && r != NULL && r->hold > 0) {
        r->hold--;
        room_drain(c, r);
    }
    free(rd);
}

static void read_fail(cluster_t *c, cread_t *rd) {
    croom_t *r = room_get(c, rd->key, rd->key_len);
    rd->done(rd->arg, -1, NULL, 0, false);
    read_release(c, r, rd);
}

static void on_read(redisAsyncContext *ac, void *reply, void *priv) {
    cread_t *rd = priv;
    cluster_t *c = rd->c;
    replied(&c->cmd, reply);
    const redisReply *rep = reply;
    if (!reply_ok(rep) || rep->type != REDIS_REPLY_ARRAY) {
        read_fail(c, rd);
        return;
    }
    croom_t *r = room_get(c, rd->key, rd->key_len);
    /* A join's read holds nothing the room has not delivered here: the
     * rest reaches the joiner live, after its reply. */
    uint64_t fence = rd->fence && r != NULL && r->known ? r->last_id : UINT64_MAX;
    size_t n = rep->elements;
    chat_message_t *msgs = xmalloc((n > 0 ? n : 1) * sizeof(*msgs));
    size_t k = 0;
    bool more = n > rd->limit;
    bool cut = false;
    /* Newest first: keep at most limit, then hand them oldest first. */
    for (size_t i = 0; i < n && k < rd->limit; i++) {
        cluster_msg_t m;
        if (!stream_entry(c, rep->element[i], &m))
            continue;
        if (m.id > fence) {
            cut = true;
            continue;
        }
        msgs[k] = chat_msg_of(&m, CHAT_MSG_ROOM);
        entry_state(rep->element[i], &msgs[k].edited_ts, &msgs[k].deleted);
        if (msgs[k].deleted) {
            msgs[k].text = "";
            msgs[k].text_len = 0;
        }
        k++;
    }
    if (cut && n > rd->limit)
        more = true;
    for (size_t i = 0; i < k / 2; i++) {
        chat_message_t t = msgs[i];
        msgs[i] = msgs[k - 1 - i];
        msgs[k - 1 - i] = t;
    }
    rd->done(rd->arg, 0, msgs, k, more);
    free(msgs);
    read_release(c, r, rd);
}

static void read_issue(cluster_t *c, cread_t *rd) {
    char log[96], hi[32], lo[32], count[16];
    croom_t *r = room_get(c, rd->key, rd->key_len);
    snprintf(log, sizeof(log), KEY_PREFIX "%.*s:log", (int)rd->key_len, rd->key);
    if (rd->before > 0)
        snprintf(hi, sizeof(hi), "%" PRIu64, rd->before - 1);
    else
        snprintf(hi, sizeof(hi), "+");
    if (rd->after > 0)
        snprintf(lo, sizeof(lo), "%" PRIu64, rd->after + 1);
    else
        snprintf(lo, sizeof(lo), "-");
    /* One more than asked tells whether there are more; a join's also
     * what the fence may cut. */
    unsigned want = rd->limit + 1;
    if (rd->fence && r != NULL && r->in_n > 0)
        want += (unsigned)(r->in_n < 1000 ? r->in_n : 1000);
    snprintf(count, sizeof(count), "%u", want);
    const char *argv[] = {"XREVRANGE", log, hi, lo, "COUNT", count};
    size_t lens[] = {9, strlen(log), strlen(hi), strlen(lo), 5, strlen(count)};
    if ((rd->before > 0 && rd->before <= rd->after + 1) ||
        !command_argv(&c->cmd, on_read, rd, 6, argv, lens))
        read_fail(c, rd);
}

static int bus_history(void *ctx, const char *room, size_t room_len, uint64_t after,
                       uint64_t before, unsigned limit, chat_history_done_cb done, void *arg) {
    cluster_t *c = ctx;
    if (c->cmd.state != LINK_READY)
        return -1;
    cread_t *rd = xcalloc(1, sizeof(*rd));
    rd->c = c;
    rd->key_len = cluster_room_key(room, room_len, rd->key);
    rd->after = after;
    rd->before = before;
    rd->limit = limit;
    rd->done = done;
    rd->arg = arg;
    croom_t *r = room_get(c, rd->key, rd->key_len);
    /* A read up to the newest message (a join's) is fenced: the room's
     * deliveries wait until it is answered. */
    rd->fence = before == 0 && r != NULL;
    if (rd->fence) {
        r->hold++;
        if (r->state != R_LIVE) {
            if (c->nreads >= READS_MAX) {
                r->hold--;
                free(rd);
                return -1;
            }
            rd->queued_ms = now_ms(c);
            if (r->reads_tail != NULL)
                r->reads_tail->next = rd;
            else
                r->reads = rd;
            r->reads_tail = rd;
            c->nreads++;
            return 0;
        }
    }
    read_issue(c, rd);
    return 0;
}

/* ---- edit and delete ---- */

/* A stored message by id: its stream (the index publish.lua writes), then
 * its entry. Returns 0 (none), or {stream, payload, edited_ts, deleted}. */
#define LUA_INDEX                                                                                  \
    "local id = tonumber(ARGV[1]) "                                                                \
    "local key = redis.call('HGET', 'tt:idx:' .. math.floor(id / 100), id % 100) "                 \
    "if not key then return 0 end "                                                                \
    "local eid = ARGV[1] .. '-0' "                                                                 \
    "local cur = redis.call('XRANGE', key, eid, eid) "                                             \
    "if #cur == 0 then return 0 end "                                                              \
    "local f = cur[1][2] "                                                                         \
    "local m, ed, del = nil, '0', '0' "                                                            \
    "for i = 1, #f, 2 do "                                                                         \
    "if f[i] == 'm' then m = f[i + 1] elseif f[i] == 'e' then ed = f[i + 1] "                      \
    "elseif f[i] == 'd' then del = '1' end end "                                                   \
    "if not m then return 0 end "
/* With ARGV[2] an account (0: none), also whether its record of rooms
 * (tt:joins:<account>, store_redis_search.c) holds the message's room. */
static const char GET_LUA[] = LUA_INDEX
    "local joined = 0 "
    "local room = string.match(key, '^tt:room:(.*):log$') "
    "if room and ARGV[2] ~= '0' and redis.call('ZSCORE', 'tt:joins:' .. ARGV[2], room) then "
    "joined = 1 end "
    "return {key, m, ed, del, joined}";

/* Changes message ARGV[1] (ARGV[2] '1': deletes it; else its text becomes
 * ARGV[4], edited at ARGV[3]) and publishes ARGV[6..] (channel, payload
 * pairs). Returns 0, 1 (no such message, or deleted) or 2 (more than
 * ARGV[5] entries follow it).
 *
 * A stream entry cannot change, and XDEL only flags one: its bytes stay in
 * the stream's node (a listpack of up to stream-node-max-entries, 100 by
 * default) in memory and in every RDB snapshot or AOF rewrite, until
 * every entry of that node is gone. So the change deletes every entry of
 * the message's node (the 100 valid ones before it cover it) and all that
 * follow, which frees the node, moves the stream's last id back
 * (XSETID: allowed once those are gone) and adds them again with their
 * ids, the message in its new form: the new text with field e, or a
 * marker with field d and no text, which keeps its place and sequence
 * number. Every read then sees the change with no merge, and a node
 * filling a gap skips the marker. */
static const char CHANGE_LUA[] =
    LUA_INDEX "if del == '1' then return 1 end "
              "local head = string.match(m, '^%S+ %S+ %S+ %S+ %S+ %S+ %S+') "
              "if not head then return 1 end "
              "local tail = redis.call('XRANGE', key, eid, '+', 'COUNT', tonumber(ARGV[5]) + 2) "
              "if #tail > tonumber(ARGV[5]) + 1 then return 2 end "
              "local before = redis.call('XREVRANGE', key, '(' .. eid, '-', 'COUNT', 100) "
              "local ids = {} "
              "local function flush() if #ids > 0 then redis.call('XDEL', key, unpack(ids)) "
              "ids = {} end end "
              "local function gone(e) ids[#ids + 1] = e[1] if #ids == 500 then flush() end end "
              "for _, e in ipairs(before) do gone(e) end "
              "for _, e in ipairs(tail) do gone(e) end "
              "flush() "
              "local top = redis.call('XREVRANGE', key, '+', '-', 'COUNT', 1) "
              "redis.call('XSETID', key, #top > 0 and top[1][1] or '0-1') "
              "for i = #before, 1, -1 do redis.call('XADD', key, before[i][1], "
              "unpack(before[i][2])) end "
              "if ARGV[2] == '1' then redis.call('XADD', key, eid, 'm', head .. ' - -', 'd', '1') "
              "else redis.call('XADD', key, eid, 'm', head .. ' - ' .. ARGV[4], 'e', ARGV[3]) end "
              "for i = 2, #tail do redis.call('XADD', key, tail[i][1], unpack(tail[i][2])) end "
              "for i = 6, #ARGV - 1, 2 do redis.call('PUBLISH', ARGV[i], ARGV[i + 1]) end "
              "return 0";

typedef struct get_q_s {
    cluster_t *c;
    chat_msg_info_done_cb done;
    void *arg;
} get_q_t;

static void on_message_get(redisAsyncContext *ac, void *reply, void *priv) {
    (void)ac;
    get_q_t *q = priv;
    cluster_t *c = q->c;
    replied(&c->cmd, reply);
    const redisReply *rep = reply;
    chat_msg_info_t info = {0};
    cluster_msg_t m;
    char key[65];
    int rc = 0;
    if (!reply_ok(rep)) {
        rc = -1;
    } else if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 5 ||
               rep->element[0]->type != REDIS_REPLY_STRING ||
               rep->element[1]->type != REDIS_REPLY_STRING ||
               rep->element[2]->type != REDIS_REPLY_STRING ||
               !cluster_msg_parse(rep->element[1]->str, rep->element[1]->len, &m)) {
        rc = 1;
    } else {
        /* The stream names the kind: a room's, or (seq 0) a conversation's. */
        bool room = strncmp(rep->element[0]->str, KEY_PREFIX, strlen(KEY_PREFIX)) == 0;
        info.msg = chat_msg_of(&m, room ? CHAT_MSG_ROOM : CHAT_MSG_PRIVATE);
        if (room) {
            info.msg.to = key;
            info.msg.to_len = cluster_room_key(m.room, m.room_len, key);
        }
        info.msg.edited_ts = strtoll(rep->element[2]->str, NULL, 10);
        info.msg.deleted =
            rep->element[3]->type == REDIS_REPLY_STRING && rep->element[3]->str[0] == '1';
        if (info.msg.deleted)
            info.msg.text_len = 0;
        info.joined = rep->element[4]->type == REDIS_REPLY_INTEGER && rep->element[4]->integer == 1;
    }
    q->done(q->arg, rc, rc == 0 ? &info : NULL);
    free(q);
}

static int bus_message_get(void *ctx, uint64_t id, int64_t account, chat_msg_info_done_cb done,
                           void *arg) {
    cluster_t *c = ctx;
    if (!c->script)
        return -1;
    get_q_t *q = xmalloc(sizeof(*q));
    *q = (get_q_t){.c = c, .done = done, .arg = arg};
    char sid[24], acct[24];
    snprintf(sid, sizeof(sid), "%" PRIu64, id);
    snprintf(acct, sizeof(acct), "%" PRId64, account > 0 ? account : 0);
    const char *argv[] = {"EVAL", GET_LUA, "0", sid, acct};
    size_t lens[] = {4, sizeof(GET_LUA) - 1, 1, strlen(sid), strlen(acct)};
    if (!command_argv(&c->cmd, on_message_get, q, 5, argv, lens)) {
        free(q);
        return -1;
    }
    return 0;
}

typedef struct change_q_s {
    cluster_t *c;
    chat_store_done_cb done;
    void *arg;
} change_q_t;

static void on_message_change(redisAsyncContext *ac, void *reply, void *priv) {
    (void)ac;
    change_q_t *q = priv;
    replied(&q->c->cmd, reply);
    const redisReply *rep = reply;
    int rc = -1;
    if (rep != NULL && rep->type == REDIS_REPLY_INTEGER && rep->integer >= 0 && rep->integer <= 2)
        rc = (int)rep->integer;
    else if (rep != NULL && rep->type == REDIS_REPLY_ERROR)
        tt_log_warn("cluster: redis refused a change of a message: %.200s", rep->str);
    q->done(q->arg, rc, 0);
    free(q);
}

#define CHANGE_EVENTS_MAX 2

static int bus_message_change(void *ctx, uint64_t id, const char *text, size_t len,
                              int64_t edited_ts, const chat_bus_event_t *events, size_t n,
                              chat_store_done_cb done, void *arg) {
    cluster_t *c = ctx;
    if (!c->script || n > CHANGE_EVENTS_MAX)
        return -1;
    char sid[24], ts[24], tail[16], chans[CHANGE_EVENTS_MAX][80];
    snprintf(sid, sizeof(sid), "%" PRIu64, id);
    snprintf(ts, sizeof(ts), "%" PRId64, edited_ts);
    snprintf(tail, sizeof(tail), "%d", CHANGE_TAIL_MAX);
    const char *argv[8 + 2 * CHANGE_EVENTS_MAX] = {
        "EVAL", CHANGE_LUA, "0", sid, text == NULL ? "1" : "0", ts, text != NULL ? text : "", tail};
    size_t lens[8 + 2 * CHANGE_EVENTS_MAX] = {
        4,          sizeof(CHANGE_LUA) - 1, 1,           strlen(sid), 1,
        strlen(ts), text != NULL ? len : 0, strlen(tail)};
    /* Each frame as "X <frame>", on the room's channel or the user's. */
    size_t need = 0;
    for (size_t i = 0; i < n; i++)
        need += 2 + events[i].frame_len;
    char *payloads = xmalloc(need > 0 ? need : 1), *p = payloads;
    int argc = 8;
    for (size_t i = 0; i < n; i++) {
        char key[65];
        size_t klen = events[i].room
                          ? cluster_room_key(events[i].target, events[i].target_len, key)
                          : fold_nick(events[i].target,
                                      events[i].target_len < CHAT_NICK_MAX ? events[i].target_len
                                                                           : CHAT_NICK_MAX,
                                      key);
        int cn = snprintf(chans[i], sizeof(chans[i]), "%s%.*s",
                          events[i].room ? c->rchan : c->uchan, (int)klen, key);
        p[0] = 'X';
        p[1] = ' ';
        memcpy(p + 2, events[i].frame, events[i].frame_len);
        argv[argc] = chans[i];
        lens[argc++] = (size_t)cn;
        argv[argc] = p;
        lens[argc++] = 2 + events[i].frame_len;
        p += 2 + events[i].frame_len;
    }
    change_q_t *q = xmalloc(sizeof(*q));
    *q = (change_q_t){.c = c, .done = done, .arg = arg};
    bool ok = command_argv(&c->cmd, on_message_change, q, argc, argv, lens);
    free(payloads);
    if (!ok) {
        free(q);
        return -1;
    }
    return 0;
}

/* ---- presence ---- */

static void bus_presence(void *ctx, const char *room, size_t room_len, const char *nick,
                         size_t nick_len, bool joined, const char *reason) {
    cluster_t *c = ctx;
    char key[65], ts[24];
    size_t klen = cluster_room_key(room, room_len, key);
    snprintf(ts, sizeof(ts), "%" PRId64, wall_ms());
    /* A join names the room's spelling (the cluster's list of rooms keeps
     * the first), a leave its reason. */
    const char *fifth = joined ? room : reason != NULL ? reason : "leave";
    const char *args[] = {key, nick, c->cfg.node, ts, fifth};
    size_t lens[] = {klen, nick_len, strlen(c->cfg.node), strlen(ts),
                     joined ? room_len : strlen(fifth)};
    /* With the link down the others do not hear of it: a node away longer
     * than its lease is lost to them anyway. */
    if (c->script)
        presence_call(c, on_setup, &c->cmd, joined ? "join" : "leave", 5, args, lens);
}

static size_t fold_nick(const char *nick, size_t len, char *out) {
    for (size_t i = 0; i < len; i++)
        out[i] = nick[i] >= 'A' && nick[i] <= 'Z' ? (char)(nick[i] - 'A' + 'a') : nick[i];
    return len;
}

static void bus_release(void *ctx, const char *nick, size_t nick_len) {
    cluster_t *c = ctx;
    char folded[CHAT_NICK_MAX + 1];
    fold_nick(nick, nick_len, folded);
    const char *args[] = {folded, c->cfg.node};
    size_t lens[] = {nick_len, strlen(c->cfg.node)};
    if (c->script)
        presence_call(c, on_setup, &c->cmd, "release", 2, args, lens);
    channel_watch(c, true, folded, nick_len, folded, nick_len, false);
}

static void bus_undelivered(void *ctx, const char *from, size_t from_len, uint64_t id,
                            const char *to, size_t to_len) {
    cluster_t *c = ctx;
    char folded[CHAT_NICK_MAX + 1], chan[80], payload[64];
    size_t flen = fold_nick(from, from_len < CHAT_NICK_MAX ? from_len : CHAT_NICK_MAX, folded);
    int cn = snprintf(chan, sizeof(chan), "%s%.*s", c->uchan, (int)flen, folded);
    int pn = snprintf(payload, sizeof(payload), "U %" PRIu64 " %.*s", id, (int)to_len, to);
    const char *argv[] = {"PUBLISH", chan, payload};
    size_t lens[] = {7, (size_t)cn, (size_t)pn};
    if (c->script)
        command_argv(&c->cmd, on_setup, &c->cmd, 3, argv, lens);
}

static void bus_relay(void *ctx, bool room, const char *target, size_t target_len, const char *nick,
                      size_t nick_len, uint64_t evid, const char *frame, size_t frame_len) {
    cluster_t *c = ctx;
    char chan[80], key[65];
    size_t klen =
        room ? cluster_room_key(target, target_len, key)
             : fold_nick(target, target_len < CHAT_NICK_MAX ? target_len : CHAT_NICK_MAX, key);
    int cn = snprintf(chan, sizeof(chan), "%s%.*s", room ? c->rchan : c->uchan, (int)klen, key);
    size_t need = 2 + strlen(c->cfg.node) + 22 + nick_len + 1 + frame_len;
    if (!c->script || need > 4096)
        return; /* ephemeral: dropped while Redis is away */
    if (c->scratch_cap < need) {
        c->scratch_cap = need;
        c->scratch = xrealloc(c->scratch, need);
    }
    int n = snprintf(c->scratch, c->scratch_cap, "E %s %" PRIu64 " %.*s ", c->cfg.node, evid,
                     (int)nick_len, nick);
    memcpy(c->scratch + n, frame, frame_len);
    const char *argv[] = {"PUBLISH", chan, c->scratch};
    size_t lens[] = {7, (size_t)cn, (size_t)n + frame_len};
    command_argv(&c->cmd, on_setup, &c->cmd, 3, argv, lens);
}

static void bus_guest_token(void *ctx, const char *nick, size_t nick_len,
                            const uint8_t hash[AUTH_TOKEN_HASH_BYTES]) {
    cluster_t *c = ctx;
    char folded[CHAT_NICK_MAX + 1], h[2 * AUTH_TOKEN_HASH_BYTES + 1];
    fold_nick(nick, nick_len, folded);
    tt_hex(hash, AUTH_TOKEN_HASH_BYTES, h);
    const char *args[] = {folded, h};
    size_t lens[] = {nick_len, 2 * AUTH_TOKEN_HASH_BYTES};
    if (c->script)
        presence_call(c, on_setup, &c->cmd, "token", 2, args, lens);
}

typedef struct rooms_q_s {
    cluster_t *c;
    chat_bus_rooms_cb done;
    void *arg;
} rooms_q_t;

static void on_rooms(redisAsyncContext *ac, void *reply, void *priv) {
    rooms_q_t *q = priv;
    replied(&q->c->cmd, reply);
    const redisReply *rep = reply;
    if (!reply_ok(rep) || rep->type != REDIS_REPLY_ARRAY) {
        q->done(q->arg, -1, NULL, NULL, NULL, 0);
        free(q);
        return;
    }
    size_t n = rep->elements / 2;
    const char **names = xmalloc((n > 0 ? n : 1) * sizeof(*names));
    size_t *lens = xmalloc((n > 0 ? n : 1) * sizeof(*lens));
    uint32_t *members = xmalloc((n > 0 ? n : 1) * sizeof(*members));
    size_t k = 0;
    for (size_t i = 0; i + 1 < rep->elements; i += 2) {
        const redisReply *name = rep->element[i], *count = rep->element[i + 1];
        if (name->type != REDIS_REPLY_STRING || count->type != REDIS_REPLY_INTEGER ||
            !chat_room_name_is_valid(name->str, name->len))
            continue;
        names[k] = name->str;
        lens[k] = name->len;
        members[k++] = (uint32_t)count->integer;
    }
    q->done(q->arg, 0, names, lens, members, k);
    free(names);
    free(lens);
    free(members);
    free(q);
}

static int bus_rooms(void *ctx, unsigned max, chat_bus_rooms_cb done, void *arg) {
    cluster_t *c = ctx;
    if (!c->script)
        return -1;
    rooms_q_t *q = xmalloc(sizeof(*q));
    *q = (rooms_q_t){.c = c, .done = done, .arg = arg};
    char m[16];
    snprintf(m, sizeof(m), "%u", max);
    const char *args[] = {m};
    size_t lens[] = {strlen(m)};
    if (!presence_call(c, on_rooms, q, "rooms", 1, args, lens)) {
        free(q);
        return -1;
    }
    return 0;
}

typedef struct people_s {
    cluster_t *c;
    char key[65];
    size_t key_len;
} people_t;

static void on_people(redisAsyncContext *ac, void *reply, void *priv) {
    people_t *pp = priv;
    cluster_t *c = pp->c;
    replied(&c->cmd, reply);
    croom_t *r = room_get(c, pp->key, pp->key_len);
    free(pp);
    if (r == NULL)
        return;
    r->fetching = false;
    const redisReply *rep = reply;
    if (r->state != R_SYNCING || !reply_ok(rep) || rep->type != REDIS_REPLY_ARRAY)
        return; /* the tick asks again */
    size_t n = rep->elements / 2;
    const char **nicks = xmalloc((n > 0 ? n : 1) * sizeof(*nicks));
    size_t *lens = xmalloc((n > 0 ? n : 1) * sizeof(*lens));
    unsigned *slots = xmalloc((n > 0 ? n : 1) * sizeof(*slots));
    size_t k = 0;
    for (size_t i = 0; i + 1 < rep->elements; i += 2) {
        const redisReply *node = rep->element[i], *nick = rep->element[i + 1];
        if (node->type != REDIS_REPLY_STRING || nick->type != REDIS_REPLY_STRING ||
            is_ours(c, node->str, node->len) || !cluster_node_name_valid(node->str, node->len))
            continue;
        nicks[k] = nick->str;
        lens[k] = nick->len;
        slots[k++] = node_slot(c, node->str, node->len);
    }
    r->people_ok = true;
    if (r->watched)
        chat_bus_people(c->chat, r->name, r->name_len, nicks, lens, slots, k, r->first_sync);
    r->first_sync = false;
    free(nicks);
    free(lens);
    free(slots);
    room_live(c, r);
}

/* The room's people on the other nodes, read once its subscription is in
 * place (new, or again after a loss). */
static void room_people(cluster_t *c, croom_t *r) {
    if (r->fetching || !c->script)
        return;
    people_t *pp = xmalloc(sizeof(*pp));
    pp->c = c;
    memcpy(pp->key, r->key, r->key_len);
    pp->key_len = r->key_len;
    const char *args[] = {r->key};
    size_t lens[] = {r->key_len};
    if (!presence_call(c, on_people, pp, "people", 1, args, lens)) {
        free(pp);
        return;
    }
    r->fetching = true;
}

/* ---- nicknames: the accounts' hook, with a claim in Redis ---- */

typedef struct claim_s {
    cluster_t *c;
    chat_auth_done_cb done;
    void *arg;
    chat_auth_op_t op;
    char folded[CHAT_NICK_MAX + 1];
    size_t len;
    char hash[2 * AUTH_TOKEN_HASH_BYTES + 1]; /* GUEST resuming: its token's hash; "": none */
    chat_auth_result_t result;
} claim_t;

static void claim_finish(claim_t *cl) {
    cl->done(cl->arg, &cl->result);
    free(cl);
}

static void on_claim(redisAsyncContext *ac, void *reply, void *priv) {
    claim_t *cl = priv;
    replied(&cl->c->cmd, reply);
    const redisReply *r = reply;
    if (r == NULL || r->type != REDIS_REPLY_INTEGER)
        cl->result.status = CHAT_AUTH_UNAVAILABLE;
    else if (r->integer != 1)
        cl->result.status = CHAT_AUTH_IN_USE;
    else
        channel_watch(cl->c, true, cl->folded, cl->len, cl->folded, cl->len, true);
    claim_finish(cl);
}

/* The accounts' answer: a login that got its nickname claims it in the
 * cluster (exactly one node wins a guest's), then the chat hears. */
static void on_inner_auth(void *arg, const chat_auth_result_t *res) {
    claim_t *cl = arg;
    cluster_t *c = cl->c;
    cl->result = *res;
    bool claims =
        res->status == CHAT_AUTH_OK &&
        (cl->op == CHAT_AUTH_GUEST || cl->op == CHAT_AUTH_REGISTER ||
         cl->op == CHAT_AUTH_PASSWORD || cl->op == CHAT_AUTH_TOKEN || cl->op == CHAT_AUTH_JWT);
    if (!claims) {
        claim_finish(cl);
        return;
    }
    if (cl->op != CHAT_AUTH_GUEST)
        cl->len = fold_nick(res->nick, res->nick_len, cl->folded);
    const char *args[] = {cl->folded, c->cfg.node, cl->op == CHAT_AUTH_GUEST ? "g" : "a",
                          cl->hash[0] != '\0' ? cl->hash : "-"};
    size_t lens[] = {cl->len, strlen(c->cfg.node), 1, cl->hash[0] != '\0' ? 64u : 1u};
    if (!c->script || c->mod_state != MOD_LIVE ||
        !presence_call(c, on_claim, cl, "claim", 4, args, lens)) {
        cl->result.status = CHAT_AUTH_UNAVAILABLE;
        claim_finish(cl);
    }
}

static int cluster_authenticate(void *ctx, const chat_auth_req_t *req, chat_auth_done_cb done,
                                void *arg) {
    cluster_t *c = ctx;
    if (c->inner.authenticate == NULL)
        return -1;
    claim_t *cl = xcalloc(1, sizeof(*cl));
    cl->c = c;
    cl->done = done;
    cl->arg = arg;
    cl->op = req->op;
    if (req->op == CHAT_AUTH_GUEST && req->token_hash != NULL)
        tt_hex(req->token_hash, AUTH_TOKEN_HASH_BYTES, cl->hash);
    if (req->op == CHAT_AUTH_GUEST)
        cl->len = fold_nick(
            req->nick, req->nick_len < CHAT_NICK_MAX ? req->nick_len : CHAT_NICK_MAX, cl->folded);
    int rc = c->inner.authenticate(c->inner_ctx, req, on_inner_auth, cl);
    if (rc < 0)
        free(cl);
    return rc;
}

void cluster_set_auth(cluster_t *c, const chat_auth_hooks_t *inner, void *inner_ctx) {
    static const chat_auth_hooks_t hooks = {.authenticate = cluster_authenticate};
    c->inner = *inner;
    c->inner_ctx = inner_ctx;
    chat_set_auth(c->chat, &hooks, c);
}

/* ---- retention by age ---- */

typedef struct age_s {
    cluster_t *c;
    char key[65];
    size_t key_len;
    int64_t cutoff; /* ms since the epoch: older ones go */
} age_t;

/* The index forgets the entries of rep (a stream read, oldest first)
 * below id `below`: one HDEL per bucket they share. */
static void index_forget(cluster_t *c, const redisReply *rep, uint64_t below) {
    const char *argv[2 + AGE_TRIM_COUNT];
    size_t lens[2 + AGE_TRIM_COUNT];
    char bucket[40], fields[AGE_TRIM_COUNT][4];
    uint64_t cur = UINT64_MAX;
    int argc = 0;
    size_t n = rep->elements < AGE_TRIM_COUNT ? rep->elements : AGE_TRIM_COUNT;
    for (size_t i = 0; i <= n; i++) {
        cluster_msg_t m;
        bool more = i < n && stream_entry(c, rep->element[i], &m) && m.id < below;
        if (argc > 2 && (!more || m.id / IDX_BUCKET != cur)) {
            command_argv(&c->cmd, on_setup, &c->cmd, argc, argv, lens);
            argc = 0;
        }
        if (!more)
            break;
        if (argc == 0) {
            cur = m.id / IDX_BUCKET;
            int bn = snprintf(bucket, sizeof(bucket), "tt:idx:%" PRIu64, cur);
            argv[0] = "HDEL";
            lens[0] = 4;
            argv[1] = bucket;
            lens[1] = (size_t)bn;
            argc = 2;
        }
        int fn = snprintf(fields[i], sizeof(fields[i]), "%u", (unsigned)(m.id % IDX_BUCKET));
        argv[argc] = fields[i];
        lens[argc++] = (size_t)fn;
    }
}

static void on_age_read(redisAsyncContext *ac, void *reply, void *priv) {
    age_t *a = priv;
    cluster_t *c = a->c;
    replied(&c->cmd, reply);
    const redisReply *rep = reply;
    if (reply_ok(rep) && rep->type == REDIS_REPLY_ARRAY && rep->elements > 0) {
        /* The oldest entries, oldest first: trim up to the first one young
         * enough (or past all of them; the next pass goes on). */
        uint64_t keep_from = 0;
        for (size_t i = 0; i < rep->elements && keep_from == 0; i++) {
            cluster_msg_t m;
            if (stream_entry(c, rep->element[i], &m) && m.ts >= a->cutoff)
                keep_from = m.id;
        }
        if (keep_from == 0) {
            cluster_msg_t m;
            if (stream_entry(c, rep->element[rep->elements - 1], &m))
                keep_from = m.id + 1;
        }
        char log[96], minid[24];
        snprintf(log, sizeof(log), KEY_PREFIX "%.*s:log", (int)a->key_len, a->key);
        snprintf(minid, sizeof(minid), "%" PRIu64, keep_from);
        const char *argv[] = {"XTRIM", log, "MINID", minid};
        size_t lens[] = {5, strlen(log), 5, strlen(minid)};
        if (keep_from > 0) {
            command_argv(&c->cmd, on_setup, &c->cmd, 4, argv, lens);
            index_forget(c, rep, keep_from);
        }
    }
    free(a);
}

/* --retain-days: the room's stream loses its entries older than the
 * cutoff, AGE_TRIM_COUNT at a time (a bounded read, then an XTRIM by id:
 * ids grow with time). */
static void age_trim_room(cluster_t *c, const croom_t *r) {
    age_t *a = xmalloc(sizeof(*a));
    *a = (age_t){.c = c,
                 .key_len = r->key_len,
                 .cutoff = wall_ms() - (int64_t)c->cfg.retain_days * 86400 * 1000};
    memcpy(a->key, r->key, r->key_len);
    char log[96], count[16];
    snprintf(log, sizeof(log), KEY_PREFIX "%.*s:log", (int)r->key_len, r->key);
    snprintf(count, sizeof(count), "%d", AGE_TRIM_COUNT);
    const char *argv[] = {"XRANGE", log, "-", "+", "COUNT", count};
    size_t lens[] = {6, strlen(log), 1, 1, 5, strlen(count)};
    if (!command_argv(&c->cmd, on_age_read, a, 6, argv, lens))
        free(a);
}

/* Every room this node follows, once a minute (and each when it starts
 * following it: room_live). */
static void age_trim(cluster_t *c) {
    size_t pos = 0;
    void *v;
    while (tt_map_next(&c->rooms, &pos, NULL, NULL, &v)) {
        const croom_t *r = v;
        if (r->state == R_LIVE)
            age_trim_room(c, r);
    }
}

/* ---- moderation ---- */

static void mod_subscribe(cluster_t *c) {
    const char *argv[] = {"SUBSCRIBE", c->mchan};
    size_t lens[] = {9, strlen(c->mchan)};
    snprintf(c->mod_cursor, sizeof(c->mod_cursor), "0");
    if (redisAsyncCommandArgv(c->sub.ac, on_sub_message, c, 2, argv, lens) == REDIS_OK)
        c->mod_state = MOD_SUBSCRIBING;
}

static void mod_queue_clear(cluster_t *c) {
    for (size_t i = 0; i < c->mq_n; i++)
        free(c->mq[i]);
    c->mq_n = 0;
    c->mod_overflow = false;
}

/* A change that is next (or already applied, then nothing). False: a
 * number is missing, or it is malformed: read everything again. */
static bool mod_apply(cluster_t *c, const char *p, size_t len) {
    cluster_mod_ev_t e;
    if (!cluster_mod_parse(p, len, &e)) {
        bad_payload(c, "the moderation channel");
        return true; /* dropped: the next change's number shows it missing */
    }
    bool ok = true;
    if (e.seq == c->mod_seq + 1) {
        e.ev.ours = is_ours(c, e.node, e.node_len);
        c->mod_seq = e.seq;
        chat_bus_mod(c->chat, &e.ev);
    } else if (e.seq > c->mod_seq) {
        ok = false;
    }
    cluster_mod_ev_free(&e);
    return ok;
}

static void mod_resync(cluster_t *c) {
    c->mod_state = MOD_SYNCING;
    note_ready(c);
    snprintf(c->mod_cursor, sizeof(c->mod_cursor), "0");
    if (!c->mod_reading)
        mod_read(c);
}

static void mod_hold(cluster_t *c, const char *p, size_t len) {
    if (c->mq_n == MOD_QUEUE_MAX) {
        c->mod_overflow = true; /* read everything once more after this */
        return;
    }
    inbox_item_t *it = xmalloc(sizeof(*it) + len);
    it->len = len;
    memcpy(it->data, p, len);
    c->mq[c->mq_n++] = it;
}

static void mod_in(cluster_t *c, const char *p, size_t len) {
    if (c->mod_state != MOD_LIVE) {
        mod_hold(c, p, len);
        return;
    }
    if (!mod_apply(c, p, len)) {
        tt_log_info("cluster: a moderation change is missing: reading moderation again");
        mod_hold(c, p, len);
        mod_resync(c);
    }
}

static void mod_begin(void *arg) {
    chat_bus_mod_sync_begin(((cluster_t *)arg)->chat);
}

static void mod_room(void *arg, const chat_mod_room_t *row, const chat_mod_ban_t *bans, size_t n) {
    chat_bus_mod_sync_room(((cluster_t *)arg)->chat, row, bans, n);
}

static void mod_ban(void *arg, const chat_mod_ban_t *ban) {
    chat_bus_mod_sync_ban(((cluster_t *)arg)->chat, ban);
}

/* The sync is read: the changes that came meanwhile, in order. */
static void mod_synced(cluster_t *c) {
    chat_bus_mod_sync_end(c->chat);
    c->mod_seq = c->mod_sync_seq;
    c->mod_state = MOD_LIVE;
    note_ready(c);
    bool again = c->mod_overflow;
    size_t n = c->mq_n;
    c->mq_n = 0;
    c->mod_overflow = false;
    for (size_t i = 0; i < n; i++) {
        if (!again && !mod_apply(c, c->mq[i]->data, c->mq[i]->len)) {
            again = true;
            mod_hold(c, c->mq[i]->data, c->mq[i]->len);
        } else if (again) {
            mod_hold(c, c->mq[i]->data, c->mq[i]->len);
        }
        free(c->mq[i]);
    }
    if (again)
        mod_resync(c);
}

static void on_mod_page(redisAsyncContext *ac, void *reply, void *priv) {
    link_t *l = priv;
    cluster_t *c = l->c;
    replied(l, reply);
    const redisReply *r = reply;
    if (r == NULL || l->ac != ac)
        return; /* the link is gone: link_up asks again */
    c->mod_reading = false;
    if (c->mod_state != MOD_SYNCING)
        return; /* the subscription went meanwhile: it reads again once back */
    bool has_seq;
    uint64_t seq;
    char cursor[CLUSTER_MOD_CURSOR_MAX];
    if (r->type != REDIS_REPLY_STRING ||
        !cluster_mod_page(r->str, r->len, &has_seq, &seq, cursor, mod_begin, mod_room, mod_ban,
                          c) ||
        has_seq != (strcmp(c->mod_cursor, "0") == 0)) {
        snprintf(c->mod_cursor, sizeof(c->mod_cursor), "0");
        if (r->type == REDIS_REPLY_ERROR && strncmp(r->str, "NOSCRIPT", 8) == 0) {
            /* Its scripts were flushed: connect again, which loads them. */
            link_lost(&c->cmd, "redis forgot the scripts");
            return;
        }
        /* Asked again every tick: one line in ten seconds. */
        if (r->type == REDIS_REPLY_ERROR && now_ms(c) - c->mod_logged_ms >= 10000) {
            c->mod_logged_ms = now_ms(c);
            tt_log_warn("cluster: cannot read moderation from redis: %.100s", r->str);
        } else if (r->type != REDIS_REPLY_ERROR) {
            bad_payload(c, "a moderation page");
        }
        return; /* the tick asks again, from the start */
    }
    if (has_seq)
        c->mod_sync_seq = seq;
    snprintf(c->mod_cursor, sizeof(c->mod_cursor), "%s", cursor);
    if (strcmp(cursor, "0") == 0)
        mod_synced(c);
    else
        mod_read(c);
}

/* Asks for the sync's next page (the first when mod_cursor is "0"). */
static void mod_read(cluster_t *c) {
    if (c->cmd.state != LINK_READY || c->sha_m[0] == '\0')
        return; /* link_up or the tick asks once it is */
    char now[24];
    snprintf(now, sizeof(now), "%" PRId64, wall_ms());
    const char *argv[] = {"EVALSHA", c->sha_m, "0", c->mod_cursor, now};
    size_t lens[] = {7, 40, 1, strlen(c->mod_cursor), strlen(now)};
    if (command_argv(&c->cmd, on_mod_page, &c->cmd, 5, argv, lens))
        c->mod_reading = true;
}

/* ---- the tick ---- */

static void heartbeat(cluster_t *c) {
    const char *argv[] = {"PUBLISH", c->hb_chan, "hb"};
    size_t lens[] = {7, strlen(c->hb_chan), 2};
    command_argv(&c->cmd, on_setup, &c->cmd, 3, argv, lens);
}

static void link_tick(cluster_t *c, link_t *l, uint64_t now) {
    switch (l->state) {
    case LINK_DOWN:
        if (now >= l->next_try_ms)
            link_connect(l);
        break;
    case LINK_CONNECTING:
        if (now - l->since_ms > c->cfg.timeout_ms)
            link_lost(l, l->sub ? "the subscription link did not come up in time"
                                : "the command link did not come up in time");
        break;
    case LINK_READY:
        /* The command link waits for a reply; the subscription hears our
         * heartbeat every second. */
        if (!l->sub && l->outstanding > 0 && now - l->progress_ms > c->cfg.timeout_ms &&
            now > c->pub_deadline_ms)
            link_lost(l, "redis stopped answering the command link");
        else if (l->sub && now - l->progress_ms > c->cfg.timeout_ms + HEARTBEAT_MS)
            link_lost(l, "redis stopped sending on the subscription link");
        break;
    }
}

static void channels_tick(cluster_t *c, tt_map_t *map, uint64_t now);

static void on_tick(void *ctx) {
    cluster_t *c = ctx;
    uint64_t now = now_ms(c);
    link_tick(c, &c->cmd, now);
    link_tick(c, &c->sub, now);
    if (c->cmd.state == LINK_READY && now - c->last_hb_ms >= HEARTBEAT_MS) {
        c->last_hb_ms = now;
        heartbeat(c);
    }
    if (c->cmd.state == LINK_READY && now - c->last_alive_ms >= ALIVE_MS)
        announce(c);
    if (c->cfg.retain_days > 0 && c->script && now - c->last_age_trim_ms >= AGE_TRIM_MS) {
        c->last_age_trim_ms = now;
        age_trim(c);
    }
    for (int m = 0; m < 2; m++)
        channels_tick(c, m == 0 ? &c->rooms : &c->users, now);
    if (c->mod_state == MOD_SYNCING && !c->mod_reading && c->cmd.state == LINK_READY)
        mod_read(c); /* a page that failed: again */
}

static void channels_tick(cluster_t *c, tt_map_t *map, uint64_t now) {
    size_t pos = 0;
    void *v;
    while (tt_map_next(map, &pos, NULL, NULL, &v)) {
        croom_t *r = v;
        if (r->state == R_SYNCING && !r->fetching)
            room_fetch(c, r);
        /* Reads waiting for a subscription that does not come. */
        while (r->reads != NULL && now - r->reads->queued_ms > c->cfg.timeout_ms)
            read_fail(c, reads_pop(c, r));
        if (!r->watched && r->hold == 0 && r->reads == NULL &&
            now - r->unwatched_ms > UNWATCH_LINGER_MS &&
            (r->state == R_LIVE || r->state == R_UNSUB || r->state == R_SYNCING) && !r->fetching) {
            /* Removing during the walk: start over (rarely more than one). */
            room_unsubscribe(c, r);
            pos = 0;
        }
    }
}

/* ---- life ---- */

int cluster_start(tt_loop_t *loop, chat_t *chat, const cluster_config_t *cfg, cluster_t **out) {
    cluster_t *c = xcalloc(1, sizeof(*c));
    c->loop = loop;
    c->chat = chat;
    c->cfg = *cfg;
    if (c->cfg.retain == 0)
        c->cfg.retain = CLUSTER_RETAIN_DEFAULT;
    if (c->cfg.timeout_ms == 0)
        c->cfg.timeout_ms = CLUSTER_TIMEOUT_DEFAULT_MS;
    c->node_len = strlen(c->cfg.node);
    char db[16] = "";
    if (c->cfg.url.db != 0)
        snprintf(db, sizeof(db), "%d:", c->cfg.url.db);
    snprintf(c->rchan, sizeof(c->rchan), "tt:%sroom:", db);
    snprintf(c->uchan, sizeof(c->uchan), "tt:%suser:", db);
    snprintf(c->hb_chan, sizeof(c->hb_chan), "tt:%snode:%s", db, c->cfg.node);
    snprintf(c->mchan, sizeof(c->mchan), "tt:%smod", db);
    tt_map_init(&c->rooms, 0);
    tt_map_init(&c->users, 0);
    for (int i = 0; i < 2; i++) {
        link_t *l = i == 0 ? &c->cmd : &c->sub;
        l->c = c;
        l->sub = i == 1;
        l->what = l->sub ? "subscription" : "command";
        l->backoff_ms = BACKOFF_MIN_MS;
        link_connect(l);
    }
    c->tick = tt_timer_new(loop, on_tick, c);
    tt_timer_start(c->tick, TICK_MS, TICK_MS);
    static const chat_bus_hooks_t hooks = {.publish = bus_publish,
                                           .room_watch = bus_room_watch,
                                           .history = bus_history,
                                           .presence = bus_presence,
                                           .release = bus_release,
                                           .guest_token = bus_guest_token,
                                           .rooms = bus_rooms,
                                           .undelivered = bus_undelivered,
                                           .relay = bus_relay,
                                           .message_get = bus_message_get,
                                           .message_change = bus_message_change};
    chat_set_bus(chat, &hooks, c, c->cfg.node);
    *out = c;
    return 0;
}

void cluster_stop(cluster_t *c) {
    if (c == NULL || c->tick == NULL)
        return;
    tt_timer_free(c->tick);
    c->tick = NULL;
    for (int i = 0; i < 2; i++) {
        link_t *l = i == 0 ? &c->cmd : &c->sub;
        redisAsyncContext *ac = l->ac;
        l->ac = NULL;
        l->state = LINK_DOWN;
        if (ac != NULL)
            redisAsyncFree(ac);
    }
    c->script = false;
    note_ready(c);
}

void cluster_free(cluster_t *c) {
    if (c == NULL)
        return;
    cluster_stop(c);
    size_t pos = 0;
    void *v;
    while (tt_map_next(&c->rooms, &pos, NULL, NULL, &v)) {
        croom_t *r = v;
        cread_t *rd;
        while ((rd = reads_pop(c, r)) != NULL) {
            rd->done(rd->arg, -1, NULL, 0, false);
            free(rd);
        }
        inbox_clear(r);
        free(r->inbox);
        free(r);
    }
    pos = 0;
    while (tt_map_next(&c->users, &pos, NULL, NULL, &v))
        free(v);
    tt_map_dispose(&c->users);
    tt_map_dispose(&c->rooms);
    mod_queue_clear(c);
    free(c->scratch);
    free(c);
}

void cluster_stats(const cluster_t *c, cluster_stats_t *out) {
    *out = c->stats;
}
