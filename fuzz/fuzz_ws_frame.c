/* Fuzzer for the frame parser (src/ws/ws_frame.c), driven the way a
 * connection drives it: bytes arrive in chunks, unconsumed bytes (already
 * unmasked in place) stay at the front of the read buffer, and the parser is
 * called until it needs more. The first two input bytes choose the chunking
 * and max_message; the rest is the stream.
 *
 * Invariants (abort on violation): consumed <= available; NEED_MORE and ERROR
 * consume nothing; an event's payload ends exactly at the end of its frame and
 * equals the original bytes XOR the frame's mask; control payloads fit 125
 * bytes; close codes are valid; fragments form well-ordered messages whose
 * total stays within max_message; after an error every call returns the same
 * error; and the whole event trace is the same whatever the chunking (the
 * stream is also parsed in one piece and the two traces compared). */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ws/ws_frame.h"

#include "fuzz_check.h"

#define MAX_EVENTS 4096

typedef struct {
    ws_event_type_t type;
    uint8_t opcode;
    bool fin, first;
    uint16_t code;
    const char *reason;
    size_t len;
    uint64_t hash; /* of the payload */
} trace_ev_t;

typedef struct {
    trace_ev_t ev[MAX_EVENTS];
    size_t n;
    size_t left; /* bytes left unconsumed at the end */
} trace_t;

static uint64_t hash(const uint8_t *p, size_t n) {
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 1099511628211ull;
    return h;
}

/* What the caller knows about the open message, kept independently of the
 * parser's own state. */
typedef struct {
    bool open;
    uint8_t opcode;
    uint64_t len;
} msg_t;

/* Checks one event against the original (still masked) bytes of its frame. */
static void check_event(const ws_event_t *ev, const uint8_t *rb, size_t have, size_t used,
                        const uint8_t *orig, uint64_t max, msg_t *msg) {
    CHECK(used >= 6 && used <= have);
    CHECK(ev->payload != NULL);
    CHECK(ev->payload >= rb && ev->payload + ev->len == rb + used);
    size_t plen =
        ev->type == WS_EV_CLOSE && ev->close_code != WS_CLOSE_NO_STATUS ? ev->len + 2 : ev->len;
    size_t hlen = used - plen;
    CHECK(hlen == 6 || hlen == 8 || hlen == 14);
    CHECK((orig[1] & 0x80) != 0);          /* masked */
    CHECK((orig[0] & 0x70) == 0);          /* no RSV bits */
    const uint8_t *mask = orig + hlen - 4; /* the key, from the untouched copy */
    size_t skip = plen - ev->len;          /* the close code precedes the reason */
    for (size_t i = 0; i < ev->len; i++)
        CHECK(ev->payload[i] == (orig[hlen + skip + i] ^ mask[(skip + i) % 4]));
    uint8_t op = orig[0] & 0x0F;
    bool fin = (orig[0] & 0x80) != 0;
    switch (ev->type) {
    case WS_EV_PING:
    case WS_EV_PONG:
        CHECK(op == (ev->type == WS_EV_PING ? WS_OP_PING : WS_OP_PONG));
        CHECK(fin && ev->len <= WS_MAX_CONTROL);
        break;
    case WS_EV_CLOSE:
        CHECK(op == WS_OP_CLOSE && fin && plen <= WS_MAX_CONTROL);
        if (ev->close_code == WS_CLOSE_NO_STATUS)
            CHECK(plen == 0);
        else
            CHECK(ws_close_code_is_valid(ev->close_code));
        CHECK(tt_utf8_is_valid(ev->payload, ev->len));
        break;
    case WS_EV_DATA:
        CHECK(ev->fin == fin);
        CHECK(ev->opcode == WS_OP_TEXT || ev->opcode == WS_OP_BINARY);
        if (ev->first) {
            CHECK(!msg->open && op == ev->opcode);
            msg->len = 0;
        } else {
            CHECK(msg->open && op == WS_OP_CONT && ev->opcode == msg->opcode);
        }
        msg->len += ev->len;
        CHECK(msg->len <= max);
        msg->open = !fin;
        msg->opcode = ev->opcode;
        break;
    default:
        CHECK(false);
    }
}

/* Runs the stream through the parser in chunks of sizes drawn from seed
 * (maxchunk 0: the whole stream at once) and records the trace. */
static void run(const uint8_t *stream, size_t len, uint64_t max, uint32_t seed, size_t maxchunk,
                trace_t *t) {
    uint8_t *rb = malloc(len ? len : 1);
    uint8_t *orig = malloc(len ? len : 1); /* the same bytes, never unmasked */
    CHECK(rb && orig);
    ws_parser_t p;
    ws_parser_init(&p, max);
    msg_t msg = {0};
    size_t have = 0, fed = 0;
    t->n = 0;
    bool failed = false;
    while (!failed) {
        size_t chunk = len - fed;
        if (maxchunk) {
            seed = seed * 1103515245u + 12345u;
            size_t c = 1 + (seed >> 16) % maxchunk;
            if (c < chunk)
                chunk = c;
        }
        memcpy(rb + have, stream + fed, chunk);
        memcpy(orig + have, stream + fed, chunk);
        have += chunk;
        fed += chunk;
        for (;;) {
            ws_event_t ev;
            size_t used = ws_parser_execute(&p, rb, have, &ev);
            CHECK(used <= have);
            if (ev.type == WS_EV_NEED_MORE) {
                CHECK(used == 0);
                CHECK(!p.failed);
                break;
            }
            CHECK(t->n < MAX_EVENTS);
            trace_ev_t *te = &t->ev[t->n++];
            te->type = ev.type;
            te->opcode = ev.opcode;
            te->fin = ev.fin;
            te->first = ev.first;
            te->code = ev.close_code;
            te->reason = ev.reason;
            te->len = ev.len;
            te->hash = ev.len ? hash(ev.payload, ev.len) : 0;
            if (ev.type == WS_EV_ERROR) {
                CHECK(used == 0);
                CHECK(ev.reason && ev.reason[0]);
                CHECK(ev.close_code == WS_CLOSE_PROTOCOL ||
                      ev.close_code == WS_CLOSE_INVALID_DATA || ev.close_code == WS_CLOSE_TOO_BIG);
                /* Sticky: the same error for the same bytes, for none, and
                 * for a different (valid) frame. */
                static uint8_t ping[] = {0x89, 0x80, 1, 2, 3, 4};
                const struct {
                    uint8_t *b;
                    size_t n;
                } again[] = {{rb, have}, {rb, 0}, {ping, sizeof(ping)}};
                for (size_t k = 0; k < 3; k++) {
                    ws_event_t ev2;
                    CHECK(ws_parser_execute(&p, again[k].b, again[k].n, &ev2) == 0);
                    CHECK(ev2.type == WS_EV_ERROR && ev2.close_code == ev.close_code &&
                          ev2.reason == ev.reason);
                }
                failed = true;
                break;
            }
            check_event(&ev, rb, have, used, orig, max, &msg);
            memmove(rb, rb + used, have - used);
            memmove(orig, orig + used, have - used);
            have -= used;
        }
        if (fed == len)
            break;
    }
    if (!failed) {
        /* Whatever is left is an incomplete frame, and the parser's own
         * message state matches the caller's. */
        CHECK(p.in_message == msg.open);
        CHECK(p.frame_done <= have);
    }
    t->left = failed ? 0 : have;
    free(rb);
    free(orig);
}

static trace_t whole, chunked;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 2)
        return 0;
    static const uint64_t maxes[8] = {0, 1, 10, 125, 126, 1000, 65536, UINT64_MAX};
    uint64_t max = maxes[data[1] & 7];
    size_t maxchunk;
    switch (data[0] & 3) {
    case 0:
        maxchunk = 1; /* byte by byte */
        break;
    case 1:
        maxchunk = 7;
        break;
    case 2:
        maxchunk = 64;
        break;
    default:
        maxchunk = 1024;
        break;
    }
    uint32_t seed = (uint32_t)data[0] << 8 | data[1];
    const uint8_t *stream = data + 2;
    size_t len = size - 2;

    run(stream, len, max, 0, 0, &whole);
    run(stream, len, max, seed, maxchunk, &chunked);
    CHECK(whole.n == chunked.n);
    CHECK(whole.left == chunked.left);
    for (size_t i = 0; i < whole.n; i++) {
        const trace_ev_t *a = &whole.ev[i], *b = &chunked.ev[i];
        CHECK(a->type == b->type && a->opcode == b->opcode && a->fin == b->fin &&
              a->first == b->first && a->code == b->code && a->reason == b->reason &&
              a->len == b->len && a->hash == b->hash);
    }
    return 0;
}
