/* The moderation channel's messages and the moderation sync's pages (JSON
 * made by src/store/store_redis_mod.c's write script and by mod.lua), read
 * into the chat's types with no I/O, so the fuzzer runs them alone. They
 * come from outside the process: every field is checked, a malformed one
 * refuses the whole message. */
#ifndef TT_CLUSTER_CLUSTER_MOD_H
#define TT_CLUSTER_CLUSTER_MOD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "chat/chat.h"

/* One change as published. ev's strings and ev.row / ev.ban point into
 * this struct and into root (freed by cluster_mod_ev_free). */
typedef struct cluster_mod_ev_s {
    uint64_t seq;
    const char *node;
    size_t node_len;
    chat_bus_mod_t ev;
    chat_mod_room_t row;
    chat_mod_ban_t ban;
    void *root; /* the parsed JSON */
} cluster_mod_ev_t;

bool cluster_mod_parse(const char *p, size_t len, cluster_mod_ev_t *out);
void cluster_mod_ev_free(cluster_mod_ev_t *e);

/* A page of the sync. The first page (cursor "0" asked for) has the
 * change number (*has_seq) and the server-wide bans; begin is called
 * first on it, once the page is known good. room is called for
 * every room with its bans, ban for every server-wide ban (borrowed for
 * the call); cursor gets the next page's cursor ("0": none). False when
 * the page is malformed (then nothing was called). */
typedef void (*cluster_mod_room_fn)(void *arg, const chat_mod_room_t *row,
                                    const chat_mod_ban_t *bans, size_t n);
typedef void (*cluster_mod_ban_fn)(void *arg, const chat_mod_ban_t *ban);
#define CLUSTER_MOD_CURSOR_MAX 24
bool cluster_mod_page(const char *p, size_t len, bool *has_seq, uint64_t *seq, char *cursor,
                      void (*begin)(void *arg), cluster_mod_room_fn room, cluster_mod_ban_fn ban,
                      void *arg);

#endif
