/* lg_text — see lg_text.h. */
#include "lg_text.h"

#include <string.h>

size_t lg_u64_dec(char *out, uint64_t v) {
    char tmp[20];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    for (size_t i = 0; i < n; i++)
        out[i] = tmp[n - 1 - i];
    return n;
}

bool lg_dec_parse(const char **p, const char *end, uint64_t *v) {
    const char *s = *p;
    if (s >= end || *s < '0' || *s > '9')
        return false;
    if (*s == '0' && s + 1 < end && s[1] >= '0' && s[1] <= '9')
        return false;
    uint64_t x = 0;
    int digits = 0;
    while (s < end && *s >= '0' && *s <= '9') {
        if (++digits > 19)
            return false;
        x = x * 10 + (uint64_t)(*s++ - '0');
    }
    *p = s;
    *v = x;
    return true;
}

/* The pad of message seq is the alphabet from letter seq % 26 on, repeated: one period of it
 * is the 26 bytes of ALPHA2 from that letter, so it is copied and compared 26 at a time. */
static const char ALPHA2[] = "abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyz";

static void pad_fill(char *o, size_t len, uint64_t seq) {
    const char *period = ALPHA2 + seq % 26;
    for (; len >= 26; o += 26, len -= 26)
        memcpy(o, period, 26);
    memcpy(o, period, len);
}

static bool pad_is(const char *p, size_t len, uint64_t seq) {
    const char *period = ALPHA2 + seq % 26;
    for (; len >= 26; p += 26, len -= 26)
        if (memcmp(p, period, 26) != 0)
            return false;
    return memcmp(p, period, len) == 0;
}

/* The words pad: one stretch of prose, made once; the pad of message seq is the stretch from
 * offset (seq * K) % WORDS_SPAN on, compared with one memcmp. */
#define WORDS_SPAN 4096
#define WORDS_LEN (WORDS_SPAN + 4096)
static char words_text[WORDS_LEN];
static bool use_words;

static const char *const WORDS[] = {
    "the",    "a",       "to",      "and",     "I",        "you",    "it",      "is",
    "that",   "of",      "in",      "for",     "on",       "we",     "this",    "with",
    "be",     "just",    "not",     "have",    "but",      "so",     "do",      "was",
    "are",    "if",      "at",      "can",     "what",     "my",     "me",      "they",
    "think",  "yeah",    "ok",      "know",    "like",     "get",    "will",    "would",
    "there",  "about",   "one",     "all",     "from",     "now",    "here",    "time",
    "good",   "see",     "then",    "out",     "up",       "when",   "how",     "no",
    "yes",    "thanks",  "right",   "maybe",   "need",     "should", "could",   "build",
    "test",   "tests",   "branch",  "merge",   "commit",   "server", "client",  "message",
    "room",   "people",  "today",   "morning", "tomorrow", "later",  "meeting", "lunch",
    "coffee", "release", "bug",     "fix",     "fixed",    "issue",  "review",  "patch",
    "deploy", "logs",    "error",   "works",   "broken",   "again",  "still",   "already",
    "really", "sure",    "sorry",   "please",  "look",     "looks",  "check",   "try",
    "tried",  "run",     "running", "wait",    "done",     "new",    "old",     "last",
    "next",   "week",    "because", "some",    "more",     "than",   "only",    "also",
    "any",    "our",     "your",    "their",   "which",    "who",    "where",   "why",
    "did",    "does",    "had",     "has",     "been",     "going",  "got",     "make",
    "made",   "take",    "give",    "back",    "over",     "into",   "after",   "before",
};

static void words_make(void) {
    uint64_t x = 0x9E3779B97F4A7C15ULL; /* xorshift64*, a fixed seed: the same prose everywhere */
    size_t n = 0, nw = sizeof WORDS / sizeof *WORDS;
    bool cap = true;
    while (n < WORDS_LEN) {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        uint64_t r = x * 0x2545F4914F6CDD1DULL;
        const char *w = WORDS[(r >> 33) % nw];
        for (size_t i = 0; w[i] && n < WORDS_LEN; i++)
            words_text[n++] = (char)(i == 0 && cap && w[0] >= 'a' ? w[0] - 32 : w[i]);
        cap = false;
        unsigned p = (unsigned)(r >> 20) % 16;
        const char *sep = p == 0 ? ". " : p == 1 ? ", " : p == 2 ? "? " : p == 3 ? "! " : " ";
        for (size_t i = 0; sep[i] && n < WORDS_LEN; i++)
            words_text[n++] = sep[i];
        cap = p == 0 || p == 2 || p == 3;
    }
}

void lg_text_use_words(void) {
    if (!use_words)
        words_make();
    use_words = true;
}

static const char *words_at(uint64_t seq) {
    return words_text + (seq * 2654435761u) % WORDS_SPAN;
}

size_t lg_text_build(char *out, uint32_t gid, uint64_t seq, uint64_t t, uint32_t size) {
    size_t n = 0;
    out[n++] = 'm';
    n += lg_u64_dec(out + n, gid);
    out[n++] = '-';
    n += lg_u64_dec(out + n, seq);
    out[n++] = '-';
    n += lg_u64_dec(out + n, t);
    out[n++] = '-';
    size_t total = size > n ? size : n + 1;
    if (use_words)
        memcpy(out + n, words_at(seq), total - n);
    else
        pad_fill(out + n, total - n, seq);
    return total;
}

bool lg_text_check(const char *p, size_t n, uint32_t size, uint64_t *gid, uint64_t *seq,
                   uint64_t *t) {
    const char *s = p + 1, *end = p + n;
    if (n < 2 || *p != 'm' || !lg_dec_parse(&s, end, gid) || s >= end || *s++ != '-' ||
        !lg_dec_parse(&s, end, seq) || s >= end || *s++ != '-' || !lg_dec_parse(&s, end, t) ||
        s >= end || *s++ != '-')
        return false;
    size_t head = (size_t)(s - p);
    if (n != (size > head ? size : head + 1))
        return false;
    if (use_words)
        return memcmp(s, words_at(*seq), (size_t)(end - s)) == 0;
    return pad_is(s, (size_t)(end - s), *seq);
}
