/* Fuzzer for what a cluster node reads from Redis (src/cluster/cluster_wire.c):
 * the input is a payload as it arrives on a room's or a user's channel or
 * in a room's stream. cluster_msg_parse must never read outside it, and
 * what it accepts must hold only what the chat may deliver: ids and
 * sequence numbers in range, names of the chat's characters, the text the
 * rest of the payload. Formatting the parsed fields again
 * (cluster_body_format, behind "<seq> <id> ") must give a payload that
 * parses to the same fields: the node's writer and reader agree. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat/chat.h"
#include "cluster/cluster_wire.h"
#include "fuzz_check.h"

static void same(const char *a, size_t an, const char *b, size_t bn) {
    CHECK(an == bn);
    CHECK(an == 0 || memcmp(a, b, an) == 0);
}

static int inside(const uint8_t *data, size_t size, const char *p, size_t n) {
    const char *base = (const char *)data;
    return p >= base && p + n <= base + size;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    cluster_msg_t m;
    if (!cluster_msg_parse((const char *)data, size, &m))
        return 0;
    CHECK(m.id >= 1 && m.id < (1ull << 53) && m.seq < (1ull << 53));
    CHECK(inside(data, size, m.node, m.node_len) && inside(data, size, m.from, m.from_len) &&
          inside(data, size, m.room, m.room_len) && inside(data, size, m.text, m.text_len));
    CHECK(m.mentions_len == 0 || inside(data, size, m.mentions, m.mentions_len));
    CHECK(cluster_node_name_valid(m.node, m.node_len));
    CHECK(chat_nickname_is_valid(m.from, m.from_len));
    CHECK(chat_room_name_is_valid(m.room, m.room_len) ||
          chat_nickname_is_valid(m.room, m.room_len));
    CHECK(m.text_len > 0 && m.text + m.text_len == (const char *)data + size);
    /* The writer's form of the same fields reads back the same. */
    size_t cap = m.text_len + m.mentions_len + CLUSTER_BODY_OVERHEAD + 48;
    char *buf = malloc(cap);
    CHECK(buf != NULL);
    int head =
        snprintf(buf, cap, "%llu %llu ", (unsigned long long)m.seq, (unsigned long long)m.id);
    char node[CLUSTER_NODE_MAX + 1];
    memcpy(node, m.node, m.node_len);
    node[m.node_len] = '\0';
    size_t body =
        cluster_body_format(buf + head, cap - (size_t)head, m.ts, node, m.token, m.from, m.from_len,
                            m.room, m.room_len, m.mentions, m.mentions_len, m.text, m.text_len);
    CHECK(body > 0);
    cluster_msg_t r;
    CHECK(cluster_msg_parse(buf, (size_t)head + body, &r));
    CHECK(r.seq == m.seq && r.id == m.id && r.ts == m.ts && r.token == m.token);
    same(r.node, r.node_len, m.node, m.node_len);
    same(r.from, r.from_len, m.from, m.from_len);
    same(r.room, r.room_len, m.room, m.room_len);
    same(r.mentions, r.mentions_len, m.mentions, m.mentions_len);
    same(r.text, r.text_len, m.text, m.text_len);
    free(buf);
    return 0;
}
