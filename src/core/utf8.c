/* Incremental UTF-8 validation: a small table-driven automaton over byte
 * classes, with a fast path that skips ASCII eight bytes at a time. It only
 * says valid / invalid / inside a sequence; it never decodes code points. */
#include "core/utf8.h"

#include <string.h>

/* Byte classes. The lead bytes E0, ED, F0 and F4 get classes of their own
 * because they narrow the range of the next byte: that is how overlongs
 * (E0 80..9F, F0 80..8F), surrogates (ED A0..BF) and code points above
 * U+10FFFF (F4 90..BF) are refused at their second byte. */
enum {
    C_ASCII, /* 00..7F */
    C_C80,   /* 80..8F continuation */
    C_C90,   /* 90..9F continuation */
    C_CA0,   /* A0..BF continuation */
    C_BAD,   /* C0, C1 (always overlong), F5..FF (above U+10FFFF) */
    C_L2,    /* C2..DF: one continuation follows */
    C_E0,    /* E0: A0..BF, then one continuation */
    C_L3,    /* E1..EC, EE, EF: two continuations */
    C_ED,    /* ED: 80..9F (no surrogates), then one continuation */
    C_F0,    /* F0: 90..BF, then two continuations */
    C_L4,    /* F1..F3: three continuations */
    C_F4,    /* F4: 80..8F, then two continuations */
    C_COUNT
};

/* States. ACCEPT (0) and REJECT (1) are fixed by the header; the others
 * name what the automaton still expects. */
enum {
    S_OK = TT_UTF8_ACCEPT,
    S_BAD = TT_UTF8_REJECT,
    S_1,  /* one continuation byte left */
    S_2,  /* two left */
    S_3,  /* three left */
    S_E0, /* after E0 */
    S_ED, /* after ED */
    S_F0, /* after F0 */
    S_F4, /* after F4 */
    S_COUNT
};

/* Byte → class, one row per high nibble. With the transition table below,
 * the hot loop is two loads per byte. */
#define AS C_ASCII
#define C8 C_C80
#define C9 C_C90
#define CA C_CA0
#define XX C_BAD
#define L2 C_L2
#define L3 C_L3
#define L4 C_L4
#define E0 C_E0
#define ED C_ED
#define F0 C_F0
#define F4 C_F4
/* clang-format off */
static const uint8_t classes[256] = {
    AS, AS, AS, AS, AS, AS, AS, AS, AS, AS, AS, AS, AS, AS, AS, AS, /* 00..0F */
    AS, AS, AS, AS, AS, AS, AS, AS, AS, AS, AS, AS, AS, AS, AS, AS, /* 10..1F */
    AS, AS, AS, AS, AS, AS, AS, AS, AS, AS, AS, AS, AS, AS, AS, AS, /* 20..2F */
    AS, AS, AS, AS, AS, AS, AS, AS, AS, AS, AS, AS, AS, AS, AS, AS, /* 30..3F */
    AS, AS, AS, AS, AS, AS, AS, AS, AS, AS, AS, AS, AS, AS, AS, AS, /* 40..4F */
    AS, AS, AS, AS, AS, AS, AS, AS, AS, AS, AS, AS, AS, AS, AS, AS, /* 50..5F */
    AS, AS, AS, AS, AS, AS, AS, AS, AS, AS, AS, AS, AS, AS, AS, AS, /* 60..6F */
    AS, AS, AS, AS, AS, AS, AS, AS, AS, AS, AS, AS, AS, AS, AS, AS, /* 70..7F */
    C8, C8, C8, C8, C8, C8, C8, C8, C8, C8, C8, C8, C8, C8, C8, C8, /* 80..8F */
    C9, C9, C9, C9, C9, C9, C9, C9, C9, C9, C9, C9, C9, C9, C9, C9, /* 90..9F */
    CA, CA, CA, CA, CA, CA, CA, CA, CA, CA, CA, CA, CA, CA, CA, CA, /* A0..AF */
    CA, CA, CA, CA, CA, CA, CA, CA, CA, CA, CA, CA, CA, CA, CA, CA, /* B0..BF */
    XX, XX, L2, L2, L2, L2, L2, L2, L2, L2, L2, L2, L2, L2, L2, L2, /* C0..CF */
    L2, L2, L2, L2, L2, L2, L2, L2, L2, L2, L2, L2, L2, L2, L2, L2, /* D0..DF */
    E0, L3, L3, L3, L3, L3, L3, L3, L3, L3, L3, L3, L3, ED, L3, L3, /* E0..EF */
    F0, L4, L4, L4, F4, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, /* F0..FF */
};
/* clang-format on */
#undef AS
#undef C8
#undef C9
#undef CA
#undef XX
#undef L2
#undef L3
#undef L4
#undef E0
#undef ED
#undef F0
#undef F4

/* next[state][class]. Rows are padded to 16 so the index is a shift. */
#define XX S_BAD
/* clang-format off */
static const uint8_t next[S_COUNT][16] = {
    /*          ASCII C80   C90   CA0   BAD  L2   E0    L3   ED    F0    L4   F4 */
    [S_OK]  = {S_OK, XX,   XX,   XX,   XX,  S_1, S_E0, S_2, S_ED, S_F0, S_3, S_F4},
    [S_BAD] = {XX,   XX,   XX,   XX,   XX,  XX,  XX,   XX,  XX,   XX,   XX,  XX},
    [S_1]   = {XX,   S_OK, S_OK, S_OK, XX,  XX,  XX,   XX,  XX,   XX,   XX,  XX},
    [S_2]   = {XX,   S_1,  S_1,  S_1,  XX,  XX,  XX,   XX,  XX,   XX,   XX,  XX},
    [S_3]   = {XX,   S_2,  S_2,  S_2,  XX,  XX,  XX,   XX,  XX,   XX,   XX,  XX},
    [S_E0]  = {XX,   XX,   XX,   S_1,  XX,  XX,  XX,   XX,  XX,   XX,   XX,  XX}, /* no overlong */
    [S_ED]  = {XX,   S_1,  S_1,  XX,   XX,  XX,  XX,   XX,  XX,   XX,   XX,  XX}, /* no surrogate */
    [S_F0]  = {XX,   XX,   S_2,  S_2,  XX,  XX,  XX,   XX,  XX,   XX,   XX,  XX}, /* no overlong */
    [S_F4]  = {XX,   S_2,  XX,   XX,   XX,  XX,  XX,   XX,  XX,   XX,   XX,  XX}, /* <= U+10FFFF */
};
/* clang-format on */
#undef XX

#define HIGH_BITS 0x8080808080808080ull

tt_utf8_state_t tt_utf8_feed(tt_utf8_state_t state, const uint8_t *p, size_t n) {
    const uint8_t *end = p + n;
    if (state >= S_COUNT)
        return TT_UTF8_REJECT; /* not a state we hand out: treat as poisoned */
    while (p < end) {
        if (state == S_OK) {
            /* Chat text is mostly ASCII: skip it a word at a time. memcpy
             * is the portable unaligned load; compilers emit one mov. */
            while ((size_t)(end - p) >= 8) {
                uint64_t w;
                memcpy(&w, p, 8);
                if (w & HIGH_BITS)
                    break;
                p += 8;
            }
            while (p < end && *p < 0x80)
                p++;
            if (p == end)
                break;
        }
        state = next[state][classes[*p++]];
        if (state == S_BAD)
            return TT_UTF8_REJECT; /* fail fast: nothing after this matters */
    }
    return state;
}

bool tt_utf8_is_valid(const uint8_t *p, size_t n) {
    return tt_utf8_feed(TT_UTF8_ACCEPT, p, n) == TT_UTF8_ACCEPT;
}
