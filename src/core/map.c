/* Open-addressing hash map (see map.h). The load factor stays between 1/8
 * and 3/4: growing keeps probe chains short, shrinking keeps a map that once
 * held a burst of rooms from being scanned slot by slot forever after. */
#include "core/map.h"
#include "core/xmalloc.h"

#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#define MIN_CAP 16

static inline uint8_t fold(uint8_t c) {
    return (c >= 'A' && c <= 'Z') ? (uint8_t)(c | 0x20) : c;
}

static inline uint64_t rotl(uint64_t x, int b) {
    return (x << b) | (x >> (64 - b));
}

#define SIPROUND                                                                                   \
    do {                                                                                           \
        v0 += v1;                                                                                  \
        v1 = rotl(v1, 13);                                                                         \
        v1 ^= v0;                                                                                  \
        v0 = rotl(v0, 32);                                                                         \
        v2 += v3;                                                                                  \
        v3 = rotl(v3, 16);                                                                         \
        v3 ^= v2;                                                                                  \
        v0 += v3;                                                                                  \
        v3 = rotl(v3, 21);                                                                         \
        v3 ^= v0;                                                                                  \
        v2 += v1;                                                                                  \
        v1 = rotl(v1, 17);                                                                         \
        v1 ^= v2;                                                                                  \
        v2 = rotl(v2, 32);                                                                         \
    } while (0)

/* SipHash-1-3 (one compression round, three finalization rounds), reading
 * the input little-endian byte by byte so that case folding costs nothing
 * extra and alignment does not matter. */
static uint64_t siphash13(uint64_t k0, uint64_t k1, const uint8_t *p, size_t len, bool nocase) {
    uint64_t v0 = 0x736f6d6570736575ULL ^ k0;
    uint64_t v1 = 0x646f72616e646f6dULL ^ k1;
    uint64_t v2 = 0x6c7967656e657261ULL ^ k0;
    uint64_t v3 = 0x7465646279746573ULL ^ k1;
    size_t whole = len & ~(size_t)7;
    for (size_t i = 0; i < whole; i += 8) {
        uint64_t m = 0;
        for (int j = 7; j >= 0; j--)
            m = (m << 8) | (nocase ? fold(p[i + (size_t)j]) : p[i + (size_t)j]);
        v3 ^= m;
        SIPROUND;
        v0 ^= m;
    }
    uint64_t b = (uint64_t)len << 56;
    for (size_t j = 0; j < (len & 7); j++)
        b |= (uint64_t)(nocase ? fold(p[whole + j]) : p[whole + j]) << (8 * j);
    v3 ^= b;
    SIPROUND;
    v0 ^= b;
    v2 ^= 0xff;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    return v0 ^ v1 ^ v2 ^ v3;
}

void tt_map_init(tt_map_t *m, unsigned flags) {
    memset(m, 0, sizeof(*m));
    m->flags = flags;
    uint64_t key[2];
    if (getrandom(key, sizeof(key), GRND_NONBLOCK) != (ssize_t)sizeof(key)) {
        /* Early boot with no entropy yet: still vary the key per map and per
         * run, which is all the flooding defence needs to start with. */
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        key[0] = (uint64_t)ts.tv_nsec * 0x9E3779B97F4A7C15ULL ^ (uint64_t)(uintptr_t)m;
        key[1] = (uint64_t)ts.tv_sec * 0xC2B2AE3D27D4EB4FULL ^ rotl(key[0], 29);
    }
    m->k0 = key[0];
    m->k1 = key[1];
}

void tt_map_dispose(tt_map_t *m) {
    free(m->slots);
    m->slots = NULL;
    m->cap = m->count = 0;
}

uint64_t tt_map_hash(const tt_map_t *m, const void *key, size_t len) {
    return siphash13(m->k0, m->k1, key, len, (m->flags & TT_MAP_NOCASE) != 0);
}

static bool key_eq(const tt_map_t *m, const tt_map_slot_t *s, uint64_t h, const uint8_t *key,
                   size_t len) {
    if (s->hash != h || s->len != len)
        return false;
    if (!(m->flags & TT_MAP_NOCASE))
        return memcmp(s->key, key, len) == 0;
    const uint8_t *a = (const uint8_t *)s->key;
    for (size_t i = 0; i < len; i++)
        if (fold(a[i]) != fold(key[i]))
            return false;
    return true;
}

/* The slot holding key, or the empty slot where it would go. cap > 0. */
static size_t find_slot(const tt_map_t *m, uint64_t h, const uint8_t *key, size_t len) {
    size_t mask = m->cap - 1;
    size_t i = (size_t)h & mask;
    while (m->slots[i].key != NULL && !key_eq(m, &m->slots[i], h, key, len))
        i = (i + 1) & mask;
    return i;
}

static void rehash(tt_map_t *m, size_t cap) {
    tt_map_slot_t *old = m->slots;
    size_t old_cap = m->cap;
    m->slots = xcalloc(cap, sizeof(*m->slots));
    m->cap = cap;
    for (size_t i = 0; i < old_cap; i++) {
        if (old[i].key == NULL)
            continue;
        size_t j = (size_t)old[i].hash & (cap - 1);
        while (m->slots[j].key != NULL)
            j = (j + 1) & (cap - 1);
        m->slots[j] = old[i];
    }
    free(old);
}

void *tt_map_get(const tt_map_t *m, const void *key, size_t len) {
    if (m->count == 0)
        return NULL;
    uint64_t h = tt_map_hash(m, key, len);
    size_t i = find_slot(m, h, key, len);
    return m->slots[i].key != NULL ? m->slots[i].value : NULL;
}

void *tt_map_put(tt_map_t *m, const void *key, size_t len, void *value) {
    if ((m->count + 1) * 4 > m->cap * 3)
        rehash(m, m->cap ? m->cap * 2 : MIN_CAP);
    uint64_t h = tt_map_hash(m, key, len);
    size_t i = find_slot(m, h, key, len);
    tt_map_slot_t *s = &m->slots[i];
    void *old = s->key != NULL ? s->value : NULL;
    if (s->key == NULL)
        m->count++;
    s->key = key;
    s->len = len;
    s->hash = h;
    s->value = value;
    return old;
}

void *tt_map_remove(tt_map_t *m, const void *key, size_t len) {
    if (m->count == 0)
        return NULL;
    uint64_t h = tt_map_hash(m, key, len);
    size_t i = find_slot(m, h, key, len);
    if (m->slots[i].key == NULL)
        return NULL;
    void *value = m->slots[i].value;
    /* Backward-shift deletion: pull later members of the probe chain into
     * the hole, so that no lookup ever stops early at a false empty slot. */
    size_t mask = m->cap - 1;
    size_t j = i;
    for (;;) {
        j = (j + 1) & mask;
        if (m->slots[j].key == NULL)
            break;
        size_t home = (size_t)m->slots[j].hash & mask;
        /* The entry at j may move to the hole at i only if its home slot is
         * not cyclically within (i, j]. */
        bool in_between = (i <= j) ? (home > i && home <= j) : (home > i || home <= j);
        if (!in_between) {
            m->slots[i] = m->slots[j];
            i = j;
        }
    }
    m->slots[i].key = NULL;
    m->count--;
    if (m->cap > MIN_CAP && m->count * 8 < m->cap)
        rehash(m, m->cap / 2);
    return value;
}

bool tt_map_next(const tt_map_t *m, size_t *pos, const char **key, size_t *len, void **value) {
    while (*pos < m->cap) {
        const tt_map_slot_t *s = &m->slots[(*pos)++];
        if (s->key == NULL)
            continue;
        if (key)
            *key = s->key;
        if (len)
            *len = s->len;
        if (value)
            *value = s->value;
        return true;
    }
    return false;
}
