/* Tests for src/ws/ws_frame.c and ws_frame_write.c. The core is a table of
 * frame streams and the events they must produce; each is run whole, split in
 * two at every byte boundary, and fed byte by byte, by a driver that behaves
 * like a connection (it keeps the unconsumed, already unmasked bytes, appends
 * the next chunk and calls again). Then targeted tests for fail-fast
 * behaviour, sticky errors, masking and the writer. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ws/ws_frame.h"

#define FIN 0x80
#define MAX_FRAMES 8
#define MAX_EVENTS 8
#define DEFAULT_MAX (1u << 20)

/* One frame to put on the wire. payload NULL with big > 0: big bytes of a
 * printable pattern. raw: bytes used as they are (for malformed headers). */
typedef struct {
    uint8_t b0; /* FIN | RSV | opcode */
    const char *payload;
    size_t n;    /* payload length; 0 means strlen(payload) */
    size_t big;  /* pattern payload of this many bytes */
    int lenform; /* 0: minimal length encoding; 16 or 64 forces that form */
    bool unmasked;
    const char *raw;
    size_t raw_len;
} frame_t;

typedef struct {
    ws_event_type_t type; /* WS_EV_NEED_MORE (0) ends the list */
    uint8_t opcode;
    bool fin, first;
    const char *payload;
    size_t n;   /* 0 means strlen(payload) */
    size_t big; /* pattern payload */
    uint16_t code;
} expect_t;

typedef struct {
    const char *name;
    uint64_t max; /* 0: DEFAULT_MAX */
    frame_t f[MAX_FRAMES];
    expect_t ev[MAX_EVENTS];
} fcase_t;

#define T(s)                                                                                       \
    { .b0 = FIN | WS_OP_TEXT, .payload = (s) }
#define F(b0_, s)                                                                                  \
    { .b0 = (b0_), .payload = (s) }
#define FN(b0_, s, n_)                                                                             \
    { .b0 = (b0_), .payload = (s), .n = (n_) }
#define LENF(b0_, s, form)                                                                         \
    { .b0 = (b0_), .payload = (s), .lenform = (form) }
#define UNMASKED(b0_, s)                                                                           \
    { .b0 = (b0_), .payload = (s), .unmasked = true }
#define BIG(b0_, n_)                                                                               \
    { .b0 = (b0_), .big = (n_) }
#define RAW(s, n_)                                                                                 \
    { .raw = (s), .raw_len = (n_) }

#define E_DATA(op, fin_, first_, s)                                                                \
    { .type = WS_EV_DATA, .opcode = (op), .fin = (fin_), .first = (first_), .payload = (s) }
#define E_DATAN(op, fin_, first_, s, n_)                                                           \
    {                                                                                              \
        .type = WS_EV_DATA, .opcode = (op), .fin = (fin_), .first = (first_), .payload = (s),      \
        .n = (n_)                                                                                  \
    }
#define E_BIG(op, n_)                                                                              \
    { .type = WS_EV_DATA, .opcode = (op), .fin = true, .first = true, .big = (n_) }
#define E_TEXT(s) E_DATA(WS_OP_TEXT, true, true, s)
#define E_PING(s)                                                                                  \
    { .type = WS_EV_PING, .payload = (s) }
#define E_PING_BIG(n_)                                                                             \
    { .type = WS_EV_PING, .big = (n_) }
#define E_PONGN(s, n_)                                                                             \
    { .type = WS_EV_PONG, .payload = (s), .n = (n_) }
#define E_PONG(s)                                                                                  \
    { .type = WS_EV_PONG, .payload = (s) }
#define E_CLOSE(c, s)                                                                              \
    { .type = WS_EV_CLOSE, .payload = (s), .code = (c) }
#define E_ERR(c)                                                                                   \
    { .type = WS_EV_ERROR, .code = (c) }

static const fcase_t cases[] = {
    /* Lengths and their three encodings. */
    {"text, 7-bit length", 0, {T("hello")}, {E_TEXT("hello")}},
    {"empty text", 0, {T("")}, {E_TEXT("")}},
    {"125 bytes: 7-bit", 0, {BIG(FIN | WS_OP_TEXT, 125)}, {E_BIG(WS_OP_TEXT, 125)}},
    {"126 bytes: 16-bit", 0, {BIG(FIN | WS_OP_BINARY, 126)}, {E_BIG(WS_OP_BINARY, 126)}},
    {"65535 bytes: 16-bit", 0, {BIG(FIN | WS_OP_TEXT, 65535)}, {E_BIG(WS_OP_TEXT, 65535)}},
    {"65536 bytes: 64-bit", 0, {BIG(FIN | WS_OP_TEXT, 65536)}, {E_BIG(WS_OP_TEXT, 65536)}},
    {"non-minimal 16-bit length", 0, {LENF(FIN | WS_OP_TEXT, "abc", 16)}, {E_TEXT("abc")}},
    {"non-minimal 64-bit length",
     0,
     {LENF(FIN | WS_OP_TEXT, "abcdefgh", 64)},
     {E_TEXT("abcdefgh")}},
    {"multibyte text",
     0,
     {T("a\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80")},
     {E_TEXT("a\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80")}},
    {"binary is not validated as UTF-8",
     0,
     {FN(FIN | WS_OP_BINARY, "\xFF\xFE\x00\xC0\x80", 5)},
     {E_DATAN(WS_OP_BINARY, true, true, "\xFF\xFE\x00\xC0\x80", 5)}},
    /* Fragmentation. */
    {"fragmented text in three frames",
     0,
     {F(WS_OP_TEXT, "Hel"), F(WS_OP_CONT, "lo, "), F(FIN | WS_OP_CONT, "world")},
     {E_DATA(WS_OP_TEXT, false, true, "Hel"), E_DATA(WS_OP_TEXT, false, false, "lo, "),
      E_DATA(WS_OP_TEXT, true, false, "world")}},
    {"fragmented binary",
     0,
     {FN(WS_OP_BINARY, "\x01\x02", 2), FN(FIN | WS_OP_CONT, "\xFF", 1)},
     {E_DATAN(WS_OP_BINARY, false, true, "\x01\x02", 2),
      E_DATAN(WS_OP_BINARY, true, false, "\xFF", 1)}},
    {"empty fragments",
     0,
     {F(WS_OP_TEXT, ""), F(WS_OP_CONT, ""), F(FIN | WS_OP_CONT, "")},
     {E_DATA(WS_OP_TEXT, false, true, ""), E_DATA(WS_OP_TEXT, false, false, ""),
      E_DATA(WS_OP_TEXT, true, false, "")}},
    {"a character split across fragments",
     0,
     {F(WS_OP_TEXT, "\xE2\x82"), F(WS_OP_CONT, "\xAC\xF0\x9F"), F(FIN | WS_OP_CONT, "\x98\x80")},
     {E_DATA(WS_OP_TEXT, false, true, "\xE2\x82"), E_DATA(WS_OP_TEXT, false, false, "\xAC\xF0\x9F"),
      E_DATA(WS_OP_TEXT, true, false, "\x98\x80")}},
    {"control frames interleaved in a fragmented message",
     0,
     {F(WS_OP_TEXT, "a\xE2"), F(FIN | WS_OP_PING, "p1"), F(WS_OP_CONT, "\x82"),
      F(FIN | WS_OP_PONG, ""), F(FIN | WS_OP_CLOSE, "\x03\xE8\xC3\xA9"),
      F(FIN | WS_OP_CONT, "\xAC!")},
     {E_DATA(WS_OP_TEXT, false, true, "a\xE2"), E_PING("p1"),
      E_DATA(WS_OP_TEXT, false, false, "\x82"), E_PONG(""), E_CLOSE(1000, "\xC3\xA9"),
      E_DATA(WS_OP_TEXT, true, false, "\xAC!")}},
    {"a new message after a fragmented one",
     0,
     {F(WS_OP_BINARY, "x"), F(FIN | WS_OP_CONT, "y"), T("z")},
     {E_DATA(WS_OP_BINARY, false, true, "x"), E_DATA(WS_OP_BINARY, true, false, "y"), E_TEXT("z")}},
    /* Control frames. */
    {"ping payload returned", 0, {F(FIN | WS_OP_PING, "are you there")}, {E_PING("are you there")}},
    {"empty ping", 0, {F(FIN | WS_OP_PING, "")}, {E_PING("")}},
    {"ping of 125 bytes", 0, {BIG(FIN | WS_OP_PING, 125)}, {E_PING_BIG(125)}},
    {"pong", 0, {FN(FIN | WS_OP_PONG, "\x00\x01", 2)}, {E_PONGN("\x00\x01", 2)}},
    {"close with no payload", 0, {F(FIN | WS_OP_CLOSE, "")}, {E_CLOSE(WS_CLOSE_NO_STATUS, "")}},
    {"close with code only", 0, {F(FIN | WS_OP_CLOSE, "\x03\xE9")}, {E_CLOSE(1001, "")}},
    {"close with code and reason",
     0,
     {F(FIN | WS_OP_CLOSE, "\x03\xE8"
                           "bye now")},
     {E_CLOSE(1000, "bye now")}},
    {"close 1011 with UTF-8 reason",
     0,
     {F(FIN | WS_OP_CLOSE, "\x03\xF3\xE2\x82\xAC")},
     {E_CLOSE(1011, "\xE2\x82\xAC")}},
    {"close 3000", 0, {F(FIN | WS_OP_CLOSE, "\x0B\xB8")}, {E_CLOSE(3000, "")}},
    {"close 4999", 0, {F(FIN | WS_OP_CLOSE, "\x13\x87")}, {E_CLOSE(4999, "")}},
    {"close with 123-byte reason",
     0,
     {F(FIN | WS_OP_CLOSE, "\x03\xE8"
                           "0123456789012345678901234567890123456789012345678901234567890123456789"
                           "01234567890123456789012345678901234567890123456789012")},
     {E_CLOSE(1000, "0123456789012345678901234567890123456789012345678901234567890123456789"
                    "01234567890123456789012345678901234567890123456789012")}},
    /* Several frames in one buffer. */
    {"many frames in one buffer",
     0,
     {T("one"), F(FIN | WS_OP_PING, "two"), F(FIN | WS_OP_BINARY, "three"), T("four"),
      BIG(FIN | WS_OP_TEXT, 300), T("six")},
     {E_TEXT("one"), E_PING("two"), E_DATA(WS_OP_BINARY, true, true, "three"), E_TEXT("four"),
      E_BIG(WS_OP_TEXT, 300), E_TEXT("six")}},
    /* The size limit. */
    {"a frame exactly at max_message", 10, {T("0123456789")}, {E_TEXT("0123456789")}},
    {"fragments summing exactly to max_message",
     10,
     {F(WS_OP_TEXT, "01234"), F(FIN | WS_OP_CONT, "56789"), T("abcdefghij")},
     {E_DATA(WS_OP_TEXT, false, true, "01234"), E_DATA(WS_OP_TEXT, true, false, "56789"),
      E_TEXT("abcdefghij")}},
    {"control frames do not count toward max_message",
     4,
     {F(WS_OP_TEXT, "ab"), F(FIN | WS_OP_PING, "0123456789"), F(FIN | WS_OP_CONT, "cd")},
     {E_DATA(WS_OP_TEXT, false, true, "ab"), E_PING("0123456789"),
      E_DATA(WS_OP_TEXT, true, false, "cd")}},
    {"a frame over max_message: 1009", 10, {T("0123456789A")}, {E_ERR(1009)}},
    {"a 64-bit length over max_message: 1009",
     1000,
     {BIG(FIN | WS_OP_BINARY, 70000)},
     {E_ERR(1009)}},
    {"fragments summing over max_message: 1009",
     10,
     {F(WS_OP_TEXT, "012345"), F(WS_OP_CONT, "6789"), F(FIN | WS_OP_CONT, "A")},
     {E_DATA(WS_OP_TEXT, false, true, "012345"), E_DATA(WS_OP_TEXT, false, false, "6789"),
      E_ERR(1009)}},
    /* Header violations: 1002. */
    {"RSV1 set", 0, {F(FIN | 0x40 | WS_OP_TEXT, "x")}, {E_ERR(1002)}},
    {"RSV2 set", 0, {F(FIN | 0x20 | WS_OP_TEXT, "x")}, {E_ERR(1002)}},
    {"RSV3 set", 0, {F(FIN | 0x10 | WS_OP_BINARY, "x")}, {E_ERR(1002)}},
    {"RSV on a ping", 0, {F(FIN | 0x40 | WS_OP_PING, "x")}, {E_ERR(1002)}},
    {"reserved opcode 3", 0, {F(FIN | 0x3, "x")}, {E_ERR(1002)}},
    {"reserved opcode 7", 0, {F(FIN | 0x7, "")}, {E_ERR(1002)}},
    {"reserved opcode 0xB", 0, {F(FIN | 0xB, "x")}, {E_ERR(1002)}},
    {"reserved opcode 0xF", 0, {F(FIN | 0xF, "")}, {E_ERR(1002)}},
    {"unmasked frame", 0, {UNMASKED(FIN | WS_OP_TEXT, "hi")}, {E_ERR(1002)}},
    {"ping over 125 bytes", 0, {BIG(FIN | WS_OP_PING, 126)}, {E_ERR(1002)}},
    {"close over 125 bytes", 0, {BIG(FIN | WS_OP_CLOSE, 200)}, {E_ERR(1002)}},
    {"fragmented ping", 0, {F(WS_OP_PING, "x")}, {E_ERR(1002)}},
    {"fragmented close", 0, {F(WS_OP_CLOSE, "\x03\xE8")}, {E_ERR(1002)}},
    {"continuation with no message", 0, {F(FIN | WS_OP_CONT, "x")}, {E_ERR(1002)}},
    {"continuation after a complete message",
     0,
     {T("done"), F(WS_OP_CONT, "x")},
     {E_TEXT("done"), E_ERR(1002)}},
    {"a new text message inside a fragmented one",
     0,
     {F(WS_OP_TEXT, "a"), T("b")},
     {E_DATA(WS_OP_TEXT, false, true, "a"), E_ERR(1002)}},
    {"a new binary message inside a fragmented one",
     0,
     {F(WS_OP_TEXT, "a"), F(FIN | WS_OP_BINARY, "b")},
     {E_DATA(WS_OP_TEXT, false, true, "a"), E_ERR(1002)}},
    {"64-bit length with the top bit set",
     0,
     {RAW("\x82\xFF\x80\x00\x00\x00\x00\x00\x00\x01\x01\x02\x03\x04", 14)},
     {E_ERR(1002)}},
    {"valid frames, then a violation",
     0,
     {T("ok"), F(FIN | WS_OP_PING, ""), F(FIN | 0x40 | WS_OP_TEXT, "x")},
     {E_TEXT("ok"), E_PING(""), E_ERR(1002)}},
    /* Close payload checks. */
    {"close payload of 1 byte", 0, {F(FIN | WS_OP_CLOSE, "\x03")}, {E_ERR(1002)}},
    {"close code 0", 0, {FN(FIN | WS_OP_CLOSE, "\x00\x00", 2)}, {E_ERR(1002)}},
    {"close code 999", 0, {F(FIN | WS_OP_CLOSE, "\x03\xE7")}, {E_ERR(1002)}},
    {"close code 1004", 0, {F(FIN | WS_OP_CLOSE, "\x03\xEC")}, {E_ERR(1002)}},
    {"close code 1005", 0, {F(FIN | WS_OP_CLOSE, "\x03\xED")}, {E_ERR(1002)}},
    {"close code 1006", 0, {F(FIN | WS_OP_CLOSE, "\x03\xEE")}, {E_ERR(1002)}},
    {"close code 1015", 0, {F(FIN | WS_OP_CLOSE, "\x03\xF7")}, {E_ERR(1002)}},
    {"close code 1016", 0, {F(FIN | WS_OP_CLOSE, "\x03\xF8")}, {E_ERR(1002)}},
    {"close code 2999", 0, {F(FIN | WS_OP_CLOSE, "\x0B\xB7")}, {E_ERR(1002)}},
    {"close code 5000", 0, {F(FIN | WS_OP_CLOSE, "\x13\x88")}, {E_ERR(1002)}},
    {"close reason with invalid UTF-8",
     0,
     {F(FIN | WS_OP_CLOSE, "\x03\xE8\xC0\x80")},
     {E_ERR(1007)}},
    {"close reason with a truncated character",
     0,
     {F(FIN | WS_OP_CLOSE, "\x03\xE8"
                           "a\xE2\x82")},
     {E_ERR(1007)}},
    /* UTF-8 in text: 1007. */
    {"invalid UTF-8 in text", 0, {T("abc\xFF")}, {E_ERR(1007)}},
    {"surrogate in text", 0, {T("\xED\xA0\x80")}, {E_ERR(1007)}},
    {"text ending inside a character", 0, {T("abc\xE2\x82")}, {E_ERR(1007)}},
    {"fragmented text ending inside a character",
     0,
     {F(WS_OP_TEXT, "ab"), F(FIN | WS_OP_CONT, "\xF0\x9F\x98")},
     {E_DATA(WS_OP_TEXT, false, true, "ab"), E_ERR(1007)}},
    {"invalid UTF-8 across fragments",
     0,
     {F(WS_OP_TEXT, "ok\xE2\x82"), F(FIN | WS_OP_CONT, "x")},
     {E_DATA(WS_OP_TEXT, false, true, "ok\xE2\x82"), E_ERR(1007)}},
    {"invalid UTF-8 in a continuation after a ping",
     0,
     {F(WS_OP_TEXT, "\xC3"), F(FIN | WS_OP_PING, "\xFF"), F(FIN | WS_OP_CONT, "\xC3")},
     {E_DATA(WS_OP_TEXT, false, true, "\xC3"), E_PING("\xFF"), E_ERR(1007)}},
    {"a new text message starts a fresh validation",
     0,
     {F(WS_OP_TEXT, "a"), F(FIN | WS_OP_CONT, "b"), T("\xC3\xA9")},
     {E_DATA(WS_OP_TEXT, false, true, "a"), E_DATA(WS_OP_TEXT, true, false, "b"),
      E_TEXT("\xC3\xA9")}},
};

static const uint8_t masks[4][4] = {
    {0x37, 0xFA, 0x21, 0x3D}, {0x00, 0x00, 0x00, 0x00}, {0xFF, 0x01, 0x80, 0x7E}, {1, 2, 3, 4}};

static uint8_t pattern(size_t i) {
    return (uint8_t)('a' + i % 26);
}

static size_t frame_payload_len(const frame_t *f) {
    if (!f->payload)
        return f->big;
    return f->n ? f->n : strlen(f->payload);
}

/* Appends one client frame to out; returns its length. */
static size_t frame_build(const frame_t *f, size_t index, uint8_t *out) {
    if (f->raw) {
        memcpy(out, f->raw, f->raw_len);
        return f->raw_len;
    }
    size_t n = frame_payload_len(f);
    size_t h = 0;
    out[h++] = f->b0;
    uint8_t mbit = f->unmasked ? 0 : 0x80;
    if (f->lenform == 64 || (f->lenform == 0 && n > 0xFFFF)) {
        out[h++] = mbit | 127;
        for (int i = 7; i >= 0; i--)
            out[h++] = (uint8_t)((uint64_t)n >> (8 * i));
    } else if (f->lenform == 16 || n >= 126) {
        out[h++] = mbit | 126;
        out[h++] = (uint8_t)(n >> 8);
        out[h++] = (uint8_t)n;
    } else {
        out[h++] = (uint8_t)(mbit | n);
    }
    const uint8_t *m = masks[index % 4];
    if (!f->unmasked) {
        memcpy(out + h, m, 4);
        h += 4;
    }
    for (size_t i = 0; i < n; i++) {
        uint8_t b = f->payload ? (uint8_t)f->payload[i] : pattern(i);
        out[h + i] = f->unmasked ? b : (uint8_t)(b ^ m[i % 4]);
    }
    return h + n;
}

static uint8_t *stream_build(const fcase_t *c, size_t *len) {
    size_t cap = 0;
    for (size_t i = 0; i < MAX_FRAMES; i++)
        cap += WS_MAX_HEADER + frame_payload_len(&c->f[i]) + c->f[i].raw_len;
    uint8_t *out = malloc(cap + 1);
    assert_non_null(out);
    size_t n = 0;
    for (size_t i = 0; i < MAX_FRAMES; i++) {
        const frame_t *f = &c->f[i];
        if (!f->payload && !f->big && !f->raw)
            break; /* the rest of the array is zeroed */
        n += frame_build(f, i, out + n);
    }
    *len = n;
    return out;
}

static size_t expect_count(const fcase_t *c) {
    size_t k = 0;
    while (k < MAX_EVENTS && c->ev[k].type != WS_EV_NEED_MORE)
        k++;
    return k;
}

/* Checks one event against the table; fails with the case name and how the
 * input was cut. */
static void event_check(const fcase_t *c, const char *how, size_t k, const ws_event_t *ev,
                        const uint8_t *buf, size_t len, size_t used) {
    if (k >= expect_count(c))
        fail_msg("%s (%s): unexpected event %zu of type %d", c->name, how, k, ev->type);
    const expect_t *x = &c->ev[k];
    if (ev->type != x->type)
        fail_msg("%s (%s): event %zu: type %d, want %d (reason %s)", c->name, how, k, ev->type,
                 x->type, ev->reason ? ev->reason : "-");
    if (x->type == WS_EV_ERROR) {
        if (ev->close_code != x->code || !ev->reason || !ev->reason[0] || used != 0)
            fail_msg("%s (%s): error code %u (want %u), used %zu", c->name, how, ev->close_code,
                     x->code, used);
        return;
    }
    if (used == 0 || used > len)
        fail_msg("%s (%s): event %zu consumed %zu of %zu", c->name, how, k, used, len);
    if (ev->len && (ev->payload < buf || ev->payload + ev->len > buf + used))
        fail_msg("%s (%s): event %zu payload outside the frame", c->name, how, k);
    if (x->type == WS_EV_DATA &&
        (ev->opcode != x->opcode || ev->fin != x->fin || ev->first != x->first))
        fail_msg("%s (%s): event %zu: opcode %u fin %d first %d", c->name, how, k, ev->opcode,
                 ev->fin, ev->first);
    if (x->type == WS_EV_CLOSE && ev->close_code != x->code)
        fail_msg("%s (%s): close code %u, want %u", c->name, how, ev->close_code, x->code);
    size_t want_len = x->payload ? (x->n ? x->n : strlen(x->payload)) : x->big;
    if (ev->len != want_len)
        fail_msg("%s (%s): event %zu: len %zu, want %zu", c->name, how, k, ev->len, want_len);
    for (size_t i = 0; i < want_len; i++) {
        uint8_t want = x->payload ? (uint8_t)x->payload[i] : pattern(i);
        if (ev->payload[i] != want)
            fail_msg("%s (%s): event %zu: payload byte %zu is %02X, want %02X", c->name, how, k, i,
                     ev->payload[i], want);
    }
}

/* The simulated connection: a read buffer that receives the stream in the
 * given chunks, is parsed after each chunk until the parser needs more, and
 * is compacted by moving unconsumed bytes to the front (as they are: a partial
 * frame's payload stays unmasked). */
static void run_chunked(const fcase_t *c, const uint8_t *stream, size_t len, const size_t *cuts,
                        size_t ncuts, const char *how) {
    ws_parser_t p;
    ws_parser_init(&p, c->max ? c->max : DEFAULT_MAX);
    uint8_t *rb = malloc(len + 1);
    assert_non_null(rb);
    size_t have = 0, fed = 0, k = 0;
    bool failed = false;
    for (size_t ci = 0; ci <= ncuts && !failed; ci++) {
        size_t upto = ci < ncuts ? cuts[ci] : len;
        memcpy(rb + have, stream + fed, upto - fed);
        have += upto - fed;
        fed = upto;
        for (;;) {
            ws_event_t ev;
            size_t used = ws_parser_execute(&p, rb, have, &ev);
            if (ev.type == WS_EV_NEED_MORE) {
                if (used != 0)
                    fail_msg("%s (%s): NEED_MORE consumed %zu", c->name, how, used);
                break;
            }
            event_check(c, how, k, &ev, rb, have, used);
            k++;
            if (ev.type == WS_EV_ERROR) {
                failed = true;
                break;
            }
            memmove(rb, rb + used, have - used);
            have -= used;
        }
    }
    if (k != expect_count(c))
        fail_msg("%s (%s): %zu events, want %zu", c->name, how, k, expect_count(c));
    if (!failed &&
        (have != 0 || p.in_message != (c->ev[k - 1].type == WS_EV_DATA && !c->ev[k - 1].fin) ||
         p.frame_done != 0))
        fail_msg("%s (%s): left %zu bytes, frame_done %zu", c->name, how, have, p.frame_done);
    free(rb);
}

static void test_ws_parser_execute_table_whole(void **state) {
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        size_t len;
        uint8_t *s = stream_build(&cases[i], &len);
        run_chunked(&cases[i], s, len, NULL, 0, "whole");
        free(s);
    }
}

/* Two chunks, cut at every byte boundary (long streams: every boundary near
 * the start and the end, and a stride through the middle, to stay quick). */
static void test_ws_parser_execute_table_split_everywhere(void **state) {
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        size_t len;
        uint8_t *s = stream_build(&cases[i], &len);
        for (size_t cut = 0; cut <= len; cut++) {
            if (len > 4096 && cut > 600 && cut + 600 < len && cut % 97 != 0)
                continue;
            run_chunked(&cases[i], s, len, &cut, 1, "split in two");
        }
        free(s);
    }
}

static void test_ws_parser_execute_table_byte_by_byte(void **state) {
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        size_t len;
        uint8_t *s = stream_build(&cases[i], &len);
        size_t *cuts = malloc((len + 1) * sizeof(*cuts));
        assert_non_null(cuts);
        for (size_t k = 0; k <= len; k++)
            cuts[k] = k;
        run_chunked(&cases[i], s, len, cuts, len + 1, "byte by byte");
        /* Three-byte chunks as well: cuts that land on other offsets of
         * the mask rotation than single bytes and halves do. */
        size_t n3 = 0;
        for (size_t k = 3; k < len; k += 3)
            cuts[n3++] = k;
        run_chunked(&cases[i], s, len, cuts, n3, "3-byte chunks");
        free(cuts);
        free(s);
    }
}

/* Builds a masked client frame header for a payload of n bytes into out;
 * returns its length (the payload is not written). */
static size_t client_header(uint8_t *out, uint8_t b0, uint64_t n, const uint8_t mask[4]) {
    size_t h = ws_frame_header_write(out, (b0 & FIN) != 0, b0 & 0x0F, n);
    out[1] |= 0x80;
    memcpy(out + h, mask, 4);
    return h + 4;
}

static void put_masked(uint8_t *out, const char *s, size_t n, const uint8_t mask[4]) {
    for (size_t i = 0; i < n; i++)
        out[i] = (uint8_t)s[i] ^ mask[i % 4];
}

/* An invalid byte in the first half of a text frame is reported while the
 * second half has not arrived. */
static void test_ws_parser_execute_fails_fast_on_utf8_in_a_partial_frame(void **state) {
    (void)state;
    uint8_t buf[300];
    char text[200];
    memset(text, 'a', sizeof(text));
    text[40] = (char)0xC0;
    size_t h = client_header(buf, FIN | WS_OP_TEXT, sizeof(text), masks[0]);
    put_masked(buf + h, text, sizeof(text), masks[0]);
    ws_parser_t p;
    ws_parser_init(&p, DEFAULT_MAX);
    ws_event_t ev;
    /* Up to the byte before the bad one: nothing to report yet. */
    assert_int_equal(ws_parser_execute(&p, buf, h + 40, &ev), 0);
    assert_int_equal(ev.type, WS_EV_NEED_MORE);
    assert_int_equal(p.frame_done, 40);
    /* 60 of 200 payload bytes, bad byte included: refused now. */
    assert_int_equal(ws_parser_execute(&p, buf, h + 60, &ev), 0);
    assert_int_equal(ev.type, WS_EV_ERROR);
    assert_int_equal(ev.close_code, WS_CLOSE_INVALID_DATA);
}

/* Same across fragments: the first fragment is complete and valid so far; a
 * bad byte early in the second (partial) fragment is refused at once. */
static void test_ws_parser_execute_fails_fast_across_fragments(void **state) {
    (void)state;
    uint8_t buf[300];
    size_t h = client_header(buf, WS_OP_TEXT, 3, masks[2]);
    put_masked(buf + h, "ab\xE2", 3, masks[2]);
    size_t first = h + 3;
    ws_parser_t p;
    ws_parser_init(&p, DEFAULT_MAX);
    ws_event_t ev;
    assert_int_equal(ws_parser_execute(&p, buf, first, &ev), first);
    assert_int_equal(ev.type, WS_EV_DATA);
    assert_false(ev.fin);
    char cont[100];
    memset(cont, 'z', sizeof(cont));
    cont[0] = (char)0x82;
    cont[1] = 'x'; /* E2 82 then 'x': invalid */
    h = client_header(buf, FIN | WS_OP_CONT, sizeof(cont), masks[3]);
    put_masked(buf + h, cont, sizeof(cont), masks[3]);
    assert_int_equal(ws_parser_execute(&p, buf, h + 1, &ev), 0);
    assert_int_equal(ev.type, WS_EV_NEED_MORE);
    assert_int_equal(ws_parser_execute(&p, buf, h + 2, &ev), 0);
    assert_int_equal(ev.type, WS_EV_ERROR);
    assert_int_equal(ev.close_code, WS_CLOSE_INVALID_DATA);
}

/* 1009 as soon as the header announces the size: before the mask key and
 * before any payload. */
static void test_ws_parser_execute_1009_from_the_length_alone(void **state) {
    (void)state;
    ws_parser_t p;
    ws_event_t ev;
    uint8_t b64[] = {FIN | WS_OP_BINARY, 0x80 | 127, 0, 0, 0, 1, 0, 0, 0, 0};
    ws_parser_init(&p, 1 << 20);
    assert_int_equal(ws_parser_execute(&p, b64, 9, &ev), 0);
    assert_int_equal(ev.type, WS_EV_NEED_MORE);
    assert_int_equal(ws_parser_execute(&p, b64, 10, &ev), 0);
    assert_int_equal(ev.type, WS_EV_ERROR);
    assert_int_equal(ev.close_code, WS_CLOSE_TOO_BIG);

    uint8_t b16[] = {FIN | WS_OP_TEXT, 0x80 | 126, 0x01, 0x00};
    ws_parser_init(&p, 255);
    assert_int_equal(ws_parser_execute(&p, b16, 3, &ev), 0);
    assert_int_equal(ev.type, WS_EV_NEED_MORE);
    ws_parser_execute(&p, b16, 4, &ev);
    assert_int_equal(ev.type, WS_EV_ERROR);
    assert_int_equal(ev.close_code, WS_CLOSE_TOO_BIG);

    uint8_t b7[] = {FIN | WS_OP_TEXT, 0x80 | 11};
    ws_parser_init(&p, 10);
    ws_parser_execute(&p, b7, 2, &ev);
    assert_int_equal(ev.type, WS_EV_ERROR);
    assert_int_equal(ev.close_code, WS_CLOSE_TOO_BIG);
}

/* Violations visible in the first two bytes are refused with two bytes. */
static void test_ws_parser_execute_refuses_from_two_bytes(void **state) {
    (void)state;
    static const uint8_t heads[][2] = {
        {FIN | 0x40 | WS_OP_TEXT, 0x80 | 5},
        {FIN | 0x3, 0x80},
        {FIN | WS_OP_TEXT, 5},
        {WS_OP_PING, 0x80},
        {FIN | WS_OP_PING, 0x80 | 126},
        {FIN | WS_OP_CONT, 0x80 | 1},
    };
    for (size_t i = 0; i < sizeof(heads) / sizeof(heads[0]); i++) {
        ws_parser_t p;
        ws_event_t ev;
        uint8_t b[2] = {heads[i][0], heads[i][1]};
        ws_parser_init(&p, DEFAULT_MAX);
        assert_int_equal(ws_parser_execute(&p, b, 1, &ev), 0);
        assert_int_equal(ev.type, WS_EV_NEED_MORE);
        assert_int_equal(ws_parser_execute(&p, b, 2, &ev), 0);
        assert_int_equal(ev.type, WS_EV_ERROR);
        assert_int_equal(ev.close_code, WS_CLOSE_PROTOCOL);
    }
}

static void test_ws_parser_execute_error_is_sticky(void **state) {
    (void)state;
    ws_parser_t p;
    ws_event_t ev;
    uint8_t bad[] = {FIN | 0x40 | WS_OP_TEXT, 0x80, 1, 2, 3, 4};
    ws_parser_init(&p, DEFAULT_MAX);
    ws_parser_execute(&p, bad, sizeof(bad), &ev);
    assert_int_equal(ev.type, WS_EV_ERROR);
    const char *reason = ev.reason;
    assert_non_null(reason);
    /* A perfectly good frame afterwards, and an empty buffer: same error. */
    uint8_t good[6 + 2];
    size_t h = client_header(good, FIN | WS_OP_TEXT, 2, masks[0]);
    put_masked(good + h, "ok", 2, masks[0]);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(ws_parser_execute(&p, good, h + 2, &ev), 0);
        assert_int_equal(ev.type, WS_EV_ERROR);
        assert_int_equal(ev.close_code, WS_CLOSE_PROTOCOL);
        assert_ptr_equal(ev.reason, reason);
        assert_int_equal(ws_parser_execute(&p, good, 0, &ev), 0);
        assert_int_equal(ev.type, WS_EV_ERROR);
    }
}

/* A partial frame is unmasked once: presenting it again (moved, with more
 * bytes) must not unmask the first part a second time. */
static void test_ws_parser_execute_partial_frame_unmasked_once(void **state) {
    (void)state;
    const char *msg = "The quick brown fox jumps over the lazy dog";
    size_t n = strlen(msg);
    uint8_t buf[128], moved[128];
    size_t h = client_header(buf, FIN | WS_OP_BINARY, n, masks[2]);
    put_masked(buf + h, msg, n, masks[2]);
    ws_parser_t p;
    ws_event_t ev;
    ws_parser_init(&p, DEFAULT_MAX);
    assert_int_equal(ws_parser_execute(&p, buf, h + 7, &ev), 0);
    assert_int_equal(ev.type, WS_EV_NEED_MORE);
    assert_memory_equal(buf + h, msg, 7); /* unmasked in place already */
    memcpy(moved + 1, buf, h + n);        /* the caller moves its buffer */
    assert_int_equal(ws_parser_execute(&p, moved + 1, h + 20, &ev), 0);
    assert_int_equal(ws_parser_execute(&p, moved + 1, h + n, &ev), h + n);
    assert_int_equal(ev.type, WS_EV_DATA);
    assert_int_equal(ev.len, n);
    assert_memory_equal(ev.payload, msg, n);
    assert_int_equal(p.frame_done, 0);
}

static void test_ws_parser_execute_every_reserved_opcode(void **state) {
    (void)state;
    for (uint8_t op = 0; op < 16; op++) {
        ws_parser_t p;
        ws_event_t ev;
        uint8_t b[6] = {(uint8_t)(FIN | op), 0x80, 9, 9, 9, 9};
        ws_parser_init(&p, DEFAULT_MAX);
        ws_parser_execute(&p, b, sizeof(b), &ev);
        bool known = op <= 2 || (op >= 8 && op <= 10);
        if (!known || op == WS_OP_CONT) {
            assert_int_equal(ev.type, WS_EV_ERROR);
            assert_int_equal(ev.close_code, WS_CLOSE_PROTOCOL);
        } else {
            assert_int_not_equal(ev.type, WS_EV_ERROR);
        }
    }
}

static void test_ws_close_code_is_valid_all_codes(void **state) {
    (void)state;
    for (unsigned c = 0; c <= 0xFFFF; c++) {
        bool want =
            (c >= 1000 && c <= 1003) || (c >= 1007 && c <= 1011) || (c >= 3000 && c <= 4999);
        if (ws_close_code_is_valid((uint16_t)c) != want)
            fail_msg("code %u", c);
    }
    static const uint16_t bad[] = {0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_false(ws_close_code_is_valid(bad[i]));
}

static void test_ws_mask_apply_matches_bytewise(void **state) {
    (void)state;
    uint8_t a[200], b[200], orig[200];
    for (size_t i = 0; i < sizeof(orig); i++)
        orig[i] = (uint8_t)(i * 7 + 3);
    for (size_t off = 0; off < 9; off++)
        for (size_t start = 0; start < 8; start++) /* unaligned starts */
            for (size_t n = 0; n + start <= 150; n++) {
                memcpy(a, orig, sizeof(a));
                memcpy(b, orig, sizeof(b));
                ws_mask_apply(a + start, n, masks[2], off);
                for (size_t i = 0; i < n; i++)
                    b[start + i] ^= masks[2][(off + i) % 4];
                assert_memory_equal(a, b, sizeof(a));
                ws_mask_apply(a + start, n, masks[2], off);
                assert_memory_equal(a, orig, sizeof(a));
            }
}

static void test_ws_frame_header_write_lengths(void **state) {
    (void)state;
    static const struct {
        uint64_t len;
        size_t hlen;
        uint8_t bytes[10];
    } t[] = {
        {0, 2, {0x81, 0}},
        {125, 2, {0x81, 125}},
        {126, 4, {0x81, 126, 0, 126}},
        {65535, 4, {0x81, 126, 0xFF, 0xFF}},
        {65536, 10, {0x81, 127, 0, 0, 0, 0, 0, 1, 0, 0}},
        {0x0102030405060708ull, 10, {0x81, 127, 1, 2, 3, 4, 5, 6, 7, 8}},
    };
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        uint8_t out[WS_MAX_SERVER_HEADER];
        assert_int_equal(ws_frame_header_len(t[i].len), t[i].hlen);
        assert_int_equal(ws_frame_header_write(out, true, WS_OP_TEXT, t[i].len), t[i].hlen);
        assert_memory_equal(out, t[i].bytes, t[i].hlen);
    }
    uint8_t out[WS_MAX_SERVER_HEADER];
    ws_frame_header_write(out, false, WS_OP_BINARY, 3);
    assert_int_equal(out[0], 0x02);
    ws_frame_header_write(out, true, WS_OP_PONG, 3);
    assert_int_equal(out[0], 0x8A);
}

/* A server frame, masked as a client would send it, parses back. */
static void parse_server_frame(const uint8_t *frame, size_t len, ws_event_t *ev, uint8_t *work) {
    size_t h = (frame[1] & 0x7F) == 126 ? 4 : (frame[1] & 0x7F) == 127 ? 10 : 2;
    memcpy(work, frame, h);
    work[1] |= 0x80;
    memcpy(work + h, masks[0], 4);
    for (size_t i = h; i < len; i++)
        work[i + 4] = frame[i] ^ masks[0][(i - h) % 4];
    ws_parser_t p;
    ws_parser_init(&p, DEFAULT_MAX);
    assert_int_equal(ws_parser_execute(&p, work, len + 4, ev), len + 4);
}

static void test_ws_frame_close_write_round_trip(void **state) {
    (void)state;
    uint8_t out[WS_MAX_SERVER_HEADER + WS_MAX_CONTROL], work[sizeof(out) + 4];
    ws_event_t ev;
    size_t n = ws_frame_close_write(out, 1000, "bye");
    assert_int_equal(n, 2 + 2 + 3);
    assert_memory_equal(out,
                        "\x88\x05\x03\xE8"
                        "bye",
                        n);
    parse_server_frame(out, n, &ev, work);
    assert_int_equal(ev.type, WS_EV_CLOSE);
    assert_int_equal(ev.close_code, 1000);
    assert_int_equal(ev.len, 3);

    n = ws_frame_close_write(out, 1011, NULL);
    assert_int_equal(n, 4);
    assert_memory_equal(out, "\x88\x02\x03\xF3", 4);

    /* A long reason is cut to 123 bytes, never inside a character: 61 "é"
     * (122 bytes) fit, the 62nd would end at byte 124. */
    char reason[200] = "";
    for (int i = 0; i < 70; i++)
        strcat(reason, "\xC3\xA9");
    n = ws_frame_close_write(out, 1009, reason);
    assert_int_equal(out[1], 2 + 122);
    assert_int_equal(n, 2 + 2 + 122);
    parse_server_frame(out, n, &ev, work);
    assert_int_equal(ev.type, WS_EV_CLOSE); /* valid UTF-8 reason */
    assert_int_equal(ev.close_code, 1009);
    assert_int_equal(ev.len, 122);

    /* ASCII is cut at exactly 123 bytes. */
    memset(reason, 'r', 150);
    reason[150] = 0;
    n = ws_frame_close_write(out, 1008, reason);
    assert_int_equal(n, 2 + WS_MAX_CONTROL);
    parse_server_frame(out, n, &ev, work);
    assert_int_equal(ev.len, 123);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ws_parser_execute_table_whole),
        cmocka_unit_test(test_ws_parser_execute_table_split_everywhere),
        cmocka_unit_test(test_ws_parser_execute_table_byte_by_byte),
        cmocka_unit_test(test_ws_parser_execute_fails_fast_on_utf8_in_a_partial_frame),
        cmocka_unit_test(test_ws_parser_execute_fails_fast_across_fragments),
        cmocka_unit_test(test_ws_parser_execute_1009_from_the_length_alone),
        cmocka_unit_test(test_ws_parser_execute_refuses_from_two_bytes),
        cmocka_unit_test(test_ws_parser_execute_error_is_sticky),
        cmocka_unit_test(test_ws_parser_execute_partial_frame_unmasked_once),
        cmocka_unit_test(test_ws_parser_execute_every_reserved_opcode),
        cmocka_unit_test(test_ws_close_code_is_valid_all_codes),
        cmocka_unit_test(test_ws_mask_apply_matches_bytewise),
        cmocka_unit_test(test_ws_frame_header_write_lengths),
        cmocka_unit_test(test_ws_frame_close_write_round_trip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
