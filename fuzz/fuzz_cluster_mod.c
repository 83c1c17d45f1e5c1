/* Fuzzer for the moderation JSON a cluster node reads from Redis
 * (src/cluster/cluster_mod.c): a change from the moderation channel and a
 * page of the moderation sync. What either accepts must be what the chat
 * may take: a change number above 0, a ban with a target, a kept room's
 * row with a name, a cursor of digits, server-wide bans on a first page
 * only, begin before anything; and every string it hands over is whole
 * (its length ends at the NUL jansson gives it). */
#include <stdint.h>
#include <string.h>

#include "cluster/cluster_mod.h"
#include "fuzz_check.h"

/* A string handed over is jansson's: its length ends at its NUL. */
static void whole(const char *p, size_t n) {
    CHECK(p != NULL);
    CHECK(p[n] == '\0');
}

static size_t rooms_seen, bans_seen;

static void on_begin(void *arg) {
    (void)arg;
    CHECK(rooms_seen == 0 && bans_seen == 0);
}

static void on_room(void *arg, const chat_mod_room_t *row, const chat_mod_ban_t *bans, size_t n) {
    (void)arg;
    rooms_seen++;
    CHECK(row->name_len > 0);
    whole(row->name, row->name_len);
    whole(row->owner, row->owner_len);
    whole(row->ops, row->ops_len);
    whole(row->topic, row->topic_len);
    CHECK(row->topic_ts >= 0);
    for (size_t i = 0; i < n; i++) {
        CHECK(bans[i].target_len > 0 && bans[i].room == row->name);
        whole(bans[i].target, bans[i].target_len);
        CHECK(bans[i].until >= 0 && bans[i].ts >= 0);
    }
}

static void on_ban(void *arg, const chat_mod_ban_t *b) {
    (void)arg;
    bans_seen++;
    CHECK(b->room == NULL && b->target_len > 0);
    whole(b->target, b->target_len);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    cluster_mod_ev_t e;
    if (cluster_mod_parse((const char *)data, size, &e)) {
        CHECK(e.seq > 0 && e.ev.action != NULL);
        whole(e.ev.action, e.ev.action_len);
        whole(e.node, e.node_len);
        if (e.ev.row != NULL) {
            CHECK(e.ev.room != NULL && e.ev.row->name_len > 0);
            whole(e.ev.row->name, e.ev.row->name_len);
        }
        if (e.ev.ban != NULL) {
            CHECK(e.ev.ban->target_len > 0 && e.ev.ban->room == e.ev.room);
            whole(e.ev.ban->target, e.ev.ban->target_len);
        }
        cluster_mod_ev_free(&e);
    }
    bool has_seq;
    uint64_t seq;
    char cursor[CLUSTER_MOD_CURSOR_MAX];
    rooms_seen = bans_seen = 0;
    if (cluster_mod_page((const char *)data, size, &has_seq, &seq, cursor, on_begin, on_room,
                         on_ban, NULL)) {
        size_t n = strlen(cursor);
        CHECK(n > 0 && n < CLUSTER_MOD_CURSOR_MAX);
        for (size_t i = 0; i < n; i++)
            CHECK(cursor[i] >= '0' && cursor[i] <= '9');
        CHECK(has_seq || bans_seen == 0);
    }
    return 0;
}
