/* A node of a cluster over Redis: the chat's bus (chat_bus_hooks_t, chat.h)
 * on two hiredis connections attached to the loop. One sends commands: the
 * publish script (every chat message's id, and a room message's sequence
 * number, stream entry and channel message), the room streams' reads, the
 * heartbeat. The other subscribes: to the channel of every room the chat
 * has, and to this node's own channel (its heartbeat comes back there, so a
 * silent subscription is noticed). Every room message reaches the chat
 * from the subscription, in the room's order, each once: a jump in a
 * room's sequence numbers (a dropped subscription, a restarted Redis) is
 * filled from the room's stream before anything newer is delivered.
 *
 * While Redis does not answer (a link down or silent for timeout_ms), chat
 * messages are refused (the chat answers `unavailable`); the links
 * reconnect with backoff (100 ms doubling up to 2 s), resubscribe and
 * recover, then serve again. Used on the loop thread only. */
#ifndef TT_CLUSTER_CLUSTER_H
#define TT_CLUSTER_CLUSTER_H

#include <stdbool.h>
#include <stdint.h>

#include "chat/chat.h"
#include "cluster/cluster_wire.h"
#include "transport/transport.h"

typedef struct cluster_s cluster_t;

#define CLUSTER_RETAIN_DEFAULT 100000 /* a room stream's entries when retention keeps all */
#define CLUSTER_TIMEOUT_DEFAULT_MS 2000

typedef struct cluster_config_s {
    cluster_url_t url;
    char node[CLUSTER_NODE_MAX + 1];
    uint64_t retain;     /* entries a room's stream keeps (0: CLUSTER_RETAIN_DEFAULT) */
    unsigned timeout_ms; /* Redis silent this long: the link is down (0: the default) */
    uint64_t grace_ms; /* a lost node's guests keep their nicknames this long (--resume-seconds) */
    unsigned retain_days; /* room messages older than this leave the streams (0: never) */
} cluster_config_t;

/* Starts connecting (the links come up from the loop) and attaches itself
 * to chat as its bus (chat_set_bus, after chat_set_store). Returns 0 and the
 * node in *out, or -1 (out of memory). */
int cluster_start(tt_loop_t *loop, chat_t *chat, const cluster_config_t *cfg, cluster_t **out);

/* Puts the nickname claims in the chat's accounts hook: every login that
 * the accounts (inner, borrowed) accept claims its nickname in Redis, where
 * a guest's is its node's alone, so two nodes never both have one (the
 * loser gets `nickname_taken`). Replaces the chat's auth hook. */
void cluster_set_auth(cluster_t *c, const chat_auth_hooks_t *inner, void *inner_ctx);

/* Closes both links and the timer (what is in flight completes as
 * refused; what is published later is refused at once), so the loop can
 * end. The bus stays attached. NULL is a no-op. */
void cluster_stop(cluster_t *c);

/* Stops (cluster_stop) and frees the node. Call before chat_free. NULL is a
 * no-op. */
void cluster_free(cluster_t *c);

/* Both links are up and the script is loaded: chat messages are taken. */
bool cluster_ready(const cluster_t *c);

typedef struct cluster_stats_s {
    uint64_t published; /* messages Redis took */
    uint64_t refused;   /* messages refused: no link, too late, a Redis error */
    uint64_t received;  /* room messages from the subscription */
    uint64_t fetched;   /* room messages read from a stream to fill a gap */
    uint64_t gaps;      /* jumps in a room's sequence numbers */
    uint64_t duplicates;
    uint64_t link_losses; /* links found down or silent */
    uint64_t rooms;       /* rooms followed now */
} cluster_stats_t;

void cluster_stats(const cluster_t *c, cluster_stats_t *out);

#endif
