/* A hash map from byte-string keys to pointers: open addressing with linear
 * probing and backward-shift deletion (no tombstones), so lookups stay O(1)
 * however many entries come and go. Keys are hashed with SipHash-1-3 under a
 * per-map random key, because rooms and nicknames are chosen by peers and a
 * predictable hash would let them pile every name into one probe chain.
 *
 * The map stores pointers only: it never copies or frees keys or values.
 * A map created with TT_MAP_NOCASE compares and hashes keys with ASCII
 * letters folded to lower case ("Alice" and "ALICE" are the same key); other
 * bytes compare exactly. One thread owns a map; nothing here locks. */
#ifndef TT_CORE_MAP_H
#define TT_CORE_MAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum {
    TT_MAP_NOCASE = 1u << 0, /* ASCII case-insensitive keys */
};

typedef struct tt_map_slot_s {
    const char *key; /* NULL: empty slot */
    size_t len;
    uint64_t hash;
    void *value;
} tt_map_slot_t;

typedef struct tt_map_s {
    tt_map_slot_t *slots; /* cap slots, or NULL before the first insert */
    size_t cap;           /* a power of two, or 0 */
    size_t count;
    unsigned flags;
    uint64_t k0, k1; /* SipHash key */
} tt_map_t;

/* An empty map in the caller's memory; allocates nothing until the first
 * insert. flags: 0 or TT_MAP_NOCASE. */
void tt_map_init(tt_map_t *m, unsigned flags);

/* Frees the slot array. Keys and values are the caller's; free them first
 * (tt_map_next) if the map was their only index. */
void tt_map_dispose(tt_map_t *m);

/* The value stored under key[0..len), or NULL. */
void *tt_map_get(const tt_map_t *m, const void *key, size_t len);

/* Stores value (not NULL) under key[0..len). The key is borrowed: its bytes
 * must stay valid and unchanged while the entry is in the map (usually the
 * key lives inside the value). If the key was present, its entry now points
 * at the new key bytes and value, and the old value is returned; otherwise
 * returns NULL. May move entries: iteration positions become invalid. */
void *tt_map_put(tt_map_t *m, const void *key, size_t len, void *value);

/* Removes key[0..len); returns the value it held, or NULL if absent. May move
 * entries: iteration positions become invalid. */
void *tt_map_remove(tt_map_t *m, const void *key, size_t len);

static inline size_t tt_map_count(const tt_map_t *m) {
    return m->count;
}

/* Iteration in no particular order. Start with *pos = 0; each call that
 * returns true fills the outputs that are not NULL and advances *pos. The map
 * must not change during an iteration. */
bool tt_map_next(const tt_map_t *m, size_t *pos, const char **key, size_t *len, void **value);

/* The map's hash of key[0..len) (exposed for tests of case folding). */
uint64_t tt_map_hash(const tt_map_t *m, const void *key, size_t len);

#endif
