/* Fuzzer for the permessage-deflate input path (src/ws/ws_deflate.c and the
 * RSV1 rules of ws_frame.c), three ways over each input. The first byte
 * chooses max_message (the inflated limit) and whether messages are text.
 *
 *  1. The rest inflated as one compressed message: the result is OK, TOO_BIG,
 *     BAD or UTF8; never more than max + 1 bytes produced, and the output
 *     buffer never larger (a bomb costs the limit); OK means at most max
 *     bytes, valid UTF-8 for text.
 *  2. The rest compressed by the loop's deflater and inflated again: the
 *     same bytes come back, and the verdict on text is the validator's.
 *  3. The rest as a client's frame stream, parsed with deflate negotiated
 *     and assembled as the WebSocket endpoint does it: RSV1 only on the
 *     first frame of a data message (else an error 1002), every frame of a
 *     compressed message reported compressed, the compressed total within
 *     ws_deflate_wire_max, and each whole compressed message inflated with
 *     the invariants of 1.
 *  4. The rest as a Sec-WebSocket-Extensions value: negotiation accepts or
 *     declines, never anything else; an accepted window is 8..15 and its
 *     response line fits the buffer callers give. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/utf8.h"
#include "ws/ws_deflate.h"
#include "ws/ws_frame.h"

#include "fuzz_check.h"

static const size_t maxes[] = {0, 1, 16, 125, 1000, 4096, 65536, 1 << 20};

/* Inflates one message with the one inflater (reused, as the loop reuses
 * it) and checks the invariants. */
static ws_inflate_result_t inflate_checked(const uint8_t *in, size_t n, bool text, size_t max,
                                           const uint8_t **out, size_t *olen) {
    static ws_inflater_t *inf;
    if (inf == NULL)
        inf = ws_inflater_new();
    ws_inflate_result_t r = ws_inflater_run(inf, in, n, text, max, out, olen);
    CHECK(ws_inflater_last_out(inf) <= max + 1);
    CHECK(ws_inflater_last_in(inf) <= n);
    switch (r) {
    case WS_INFLATE_OK:
        CHECK(*olen <= max && *olen == ws_inflater_last_out(inf));
        if (text)
            CHECK(tt_utf8_is_valid(*out, *olen));
        break;
    case WS_INFLATE_TOO_BIG:
        CHECK(ws_inflater_last_out(inf) == max + 1);
        CHECK(*olen == 0);
        break;
    case WS_INFLATE_UTF8:
        CHECK(text);
        break;
    case WS_INFLATE_BAD:
        break;
    default:
        CHECK(false);
    }
    return r;
}

static void round_trip(const uint8_t *data, size_t n, bool text) {
    static ws_deflater_t *d;
    if (d == NULL)
        d = ws_deflater_new(6);
    uint8_t *c = malloc(n + 64);
    size_t clen = ws_deflater_compress(d, data, n, c, n + 64);
    if (clen > 0) {
        const uint8_t *out;
        size_t olen;
        ws_inflate_result_t r = inflate_checked(c, clen, text, n, &out, &olen);
        if (text && !tt_utf8_is_valid(data, n)) {
            CHECK(r == WS_INFLATE_UTF8);
        } else {
            CHECK(r == WS_INFLATE_OK && olen == n);
            CHECK(n == 0 || memcmp(out, data, n) == 0);
        }
    }
    free(c);
}

static void frames(const uint8_t *stream, size_t len, size_t max) {
    uint8_t *rb = malloc(len ? len : 1);
    memcpy(rb, stream, len);
    ws_parser_t p;
    ws_parser_init(&p, max);
    p.deflate = true;
    uint8_t *msg = NULL;
    size_t mlen = 0;
    bool compressed = false;
    size_t off = 0;
    for (;;) {
        ws_event_t ev;
        const uint8_t *orig = stream + off; /* the frame's first bytes, as sent */
        size_t used = ws_parser_execute(&p, rb + off, len - off, &ev);
        if (ev.type == WS_EV_NEED_MORE || ev.type == WS_EV_ERROR)
            break;
        CHECK(used > 0 && off + used <= len);
        bool rsv1 = (orig[0] & 0x40) != 0;
        CHECK((orig[0] & 0x30) == 0);
        if (ev.type != WS_EV_DATA) {
            CHECK(!rsv1); /* never on a control frame */
        } else {
            CHECK(!rsv1 || ev.first); /* only on a message's first frame */
            if (ev.first)
                compressed = rsv1;
            CHECK(ev.compressed == compressed);
            msg = realloc(msg, mlen + ev.len + 1);
            memcpy(msg + mlen, ev.payload, ev.len);
            mlen += ev.len;
            CHECK(mlen <= (compressed ? ws_deflate_wire_max(max) : max));
            if (ev.fin) {
                if (compressed) {
                    const uint8_t *out;
                    size_t olen;
                    inflate_checked(msg, mlen, ev.opcode == WS_OP_TEXT, max, &out, &olen);
                } else if (ev.opcode == WS_OP_TEXT) {
                    CHECK(tt_utf8_is_valid(msg, mlen));
                }
                mlen = 0;
            }
        }
        off += used;
    }
    free(msg);
    free(rb);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1)
        return 0;
    size_t max = maxes[data[0] & 7];
    bool text = (data[0] & 0x80) != 0;
    data++;
    size--;
    const uint8_t *out;
    size_t olen;
    inflate_checked(data, size, text, max, &out, &olen);
    round_trip(data, size, text);
    frames(data, size, max);
    ws_deflate_params_t dp;
    if (ws_deflate_negotiate((const char *)data, size, &dp)) {
        CHECK(dp.on && dp.server_max_bits >= 8 && dp.server_max_bits <= 15);
        char line[WS_DEFLATE_RESPONSE_MAX];
        CHECK(ws_deflate_response_write(&dp, line, sizeof(line)) > 0);
    } else {
        CHECK(!dp.on);
    }
    return 0;
}
