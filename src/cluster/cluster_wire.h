/* What a cluster node writes to Redis and reads back, with no I/O: the
 * Redis URL, the body of a published message and the payload every node
 * reads (from the room's channel and from its stream). Pure functions, so
 * the unit tests and the fuzzer run them alone; the payload comes from
 * outside the process and is checked field by field. */
#ifndef TT_CLUSTER_CLUSTER_WIRE_H
#define TT_CLUSTER_CLUSTER_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CLUSTER_NODE_MAX 64  /* bytes of a node name */
#define CLUSTER_HOST_MAX 255 /* bytes of a host name */
#define CLUSTER_PATH_MAX 107 /* a unix socket path (sun_path) */
#define CLUSTER_SECRET_MAX 512

typedef struct cluster_url_s {
    char host[CLUSTER_HOST_MAX + 1]; /* empty with a unix socket */
    int port;                        /* default 6379 */
    char path[CLUSTER_PATH_MAX + 1]; /* unix: socket path, or empty */
    char password[CLUSTER_SECRET_MAX + 1];
    int db; /* 0..15 by default configuration; any 0..1000 is taken */
} cluster_url_t;

/* Parses `redis://[:password@]host[:port][/db]` or `unix:PATH` into out.
 * Returns true, or false with a sentence in err. */
bool cluster_url_parse(const char *url, cluster_url_t *out, char *err, size_t errlen);

/* A node name: 1..CLUSTER_NODE_MAX characters of A-Z a-z 0-9 . _ : - */
bool cluster_node_name_valid(const char *name, size_t len);

/* A room's key in Redis: its name without a leading '#', in ASCII lower
 * case (as the chat compares rooms). Writes at most 64 bytes to out and
 * returns the length. */
size_t cluster_room_key(const char *name, size_t len, char *out);

/* One message as every node reads it: "<seq> <id> <ts> <node> <token>
 * <from> <room> <mentions> <text>", where mentions is "-" or nicknames
 * joined by ','. A private message has seq 0 (on a user's channel: 1
 * when it is stored in its conversation) and its recipient's nickname
 * for room. Slices point into the parsed payload. */
typedef struct cluster_msg_s {
    uint64_t seq, id, token;
    int64_t ts;
    const char *node, *from, *room, *mentions, *text;
    size_t node_len, from_len, room_len, mentions_len, text_len;
} cluster_msg_t;

/* The body a node publishes (the script puts "<seq> <id> " before it):
 * written into out (cap bytes); returns its length, or 0 when it does not
 * fit. */
size_t cluster_body_format(char *out, size_t cap, int64_t ts, const char *node, uint64_t token,
                           const char *from, size_t from_len, const char *room, size_t room_len,
                           const char *mentions, size_t mentions_len, const char *text,
                           size_t text_len);

/* The bytes a body of text_len bytes of text may need, at most. */
#define CLUSTER_BODY_OVERHEAD (20 + 1 + CLUSTER_NODE_MAX + 1 + 20 + 1 + 32 + 1 + 64 + 1 + 1)

/* Parses a payload. Returns false when any field is malformed: numbers
 * (decimal, no sign, below 2^53 for ids), names of the chat's characters
 * (the text is not checked: the chat checked it when it accepted it). */
bool cluster_msg_parse(const char *p, size_t len, cluster_msg_t *out);

#endif
