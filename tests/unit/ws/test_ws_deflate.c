/* permessage-deflate: the negotiation (every parameter, every malformed
 * offer), the loop-wide compressor and inflater (round trips, the bomb
 * limit, bad data, UTF-8), and the parser's RSV1 rules with compressed and
 * fragmented compressed messages. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <zlib.h>

#include "ws/ws_deflate.h"
#include "ws/ws_frame.h"
#include "ws/ws_handshake.h"

/* ---- Negotiation ------------------------------------------------------ */

typedef struct ncase_s {
    const char *offer;
    int on;        /* accepted */
    int bits;      /* server_max_bits agreed */
    int bits_back; /* answered with server_max_window_bits */
} ncase_t;

static const ncase_t ncases[] = {
    /* Plain offers, and every parameter. */
    {"permessage-deflate", 1, 15, 0},
    {"PerMessage-Deflate", 1, 15, 0},
    {"permessage-deflate; client_max_window_bits", 1, 15, 0},
    {"permessage-deflate; client_max_window_bits=10", 1, 15, 0},
    {"permessage-deflate; client_max_window_bits=\"12\"", 1, 15, 0},
    {"permessage-deflate; server_no_context_takeover", 1, 15, 0},
    {"permessage-deflate; client_no_context_takeover", 1, 15, 0},
    {"permessage-deflate; server_max_window_bits=10", 1, 10, 1},
    {"permessage-deflate; server_max_window_bits=8", 1, 8, 1},
    {"permessage-deflate; server_max_window_bits=15", 1, 15, 1},
    {"permessage-deflate; server_max_window_bits=\"9\"", 1, 9, 1},
    {"permessage-deflate;server_max_window_bits=9;client_max_window_bits", 1, 9, 1},
    {"permessage-deflate ; server_no_context_takeover ;\tclient_no_context_takeover ; "
     "server_max_window_bits = 11 ; client_max_window_bits = 13",
     1, 11, 1},
    /* Bad values. */
    {"permessage-deflate; server_max_window_bits", 0, 15, 0},
    {"permessage-deflate; server_max_window_bits=7", 0, 15, 0},
    {"permessage-deflate; server_max_window_bits=16", 0, 15, 0},
    {"permessage-deflate; server_max_window_bits=08", 0, 15, 0},
    {"permessage-deflate; server_max_window_bits=0", 0, 15, 0},
    {"permessage-deflate; server_max_window_bits=-9", 0, 15, 0},
    {"permessage-deflate; server_max_window_bits=9.0", 0, 15, 0},
    {"permessage-deflate; server_max_window_bits=\"\"", 0, 15, 0},
    {"permessage-deflate; server_max_window_bits=\"1 0\"", 0, 15, 0},
    {"permessage-deflate; server_max_window_bits=", 0, 15, 0},
    {"permessage-deflate; server_max_window_bits=\"10", 0, 15, 0},
    {"permessage-deflate; client_max_window_bits=7", 0, 15, 0},
    {"permessage-deflate; client_max_window_bits=16", 0, 15, 0},
    {"permessage-deflate; client_max_window_bits=010", 0, 15, 0},
    {"permessage-deflate; client_max_window_bits=\"\"", 0, 15, 0},
    {"permessage-deflate; server_no_context_takeover=1", 0, 15, 0},
    {"permessage-deflate; client_no_context_takeover=\"x\"", 0, 15, 0},
    /* Unknown parameters, duplicates, syntax. */
    {"permessage-deflate; foo", 0, 15, 0},
    {"permessage-deflate; foo=1", 0, 15, 0},
    {"permessage-deflate; server_no_context_takeover; server_no_context_takeover", 0, 15, 0},
    {"permessage-deflate; client_no_context_takeover; client_no_context_takeover", 0, 15, 0},
    {"permessage-deflate; server_max_window_bits=10; server_max_window_bits=10", 0, 15, 0},
    {"permessage-deflate; client_max_window_bits; client_max_window_bits=9", 0, 15, 0},
    {"permessage-deflate;", 0, 15, 0},
    {"permessage-deflate; ; server_no_context_takeover", 0, 15, 0},
    {"permessage-deflate x", 0, 15, 0},
    {"permessage-deflate; =9", 0, 15, 0},
    {"permessage-deflatex", 0, 15, 0},
    {"x-webkit-deflate-frame", 0, 15, 0},
    {"", 0, 15, 0},
    {",,,", 0, 15, 0},
    {"\"permessage-deflate\"", 0, 15, 0},
    /* Several offers: the first acceptable one wins. */
    {"permessage-deflate; server_max_window_bits=7, permessage-deflate; server_max_window_bits=12",
     1, 12, 1},
    {"permessage-deflate; server_max_window_bits=10, permessage-deflate", 1, 10, 1},
    {"permessage-deflate; foo, permessage-deflate", 1, 15, 0},
    {"x-webkit-deflate-frame, permessage-deflate; client_max_window_bits", 1, 15, 0},
    {"foo; bar=\"a,b\", permessage-deflate", 1, 15, 0},
    {"permessage-deflate; server_max_window_bits=\"1,0\", permessage-deflate", 1, 15, 0},
    {"permessage-deflate; server_max_window_bits=\"10, permessage-deflate", 0, 15, 0},
    {"foo bar, permessage-deflate; server_max_window_bits=9", 1, 9, 1},
    {"permessage-deflate; x, permessage-deflate; y", 0, 15, 0},
    /* Several header lines, joined by the HTTP layer with ", ". */
    {"x-foo, permessage-deflate; client_max_window_bits=16, permessage-deflate; "
     "server_max_window_bits=13",
     1, 13, 1},
};

static void test_ws_deflate_negotiate_table(void **state) {
    (void)state;
    for (size_t i = 0; i < sizeof(ncases) / sizeof(ncases[0]); i++) {
        const ncase_t *c = &ncases[i];
        ws_deflate_params_t p;
        bool on = ws_deflate_negotiate(c->offer, strlen(c->offer), &p);
        if (on != (bool)c->on || p.on != on || p.server_max_bits != c->bits ||
            p.server_bits_offered != (bool)c->bits_back)
            fail_msg("offer '%s': on %d bits %u answered %d; want %d %d %d", c->offer, on,
                     p.server_max_bits, p.server_bits_offered, c->on, c->bits, c->bits_back);
    }
}

static void test_ws_deflate_negotiate_absent_header(void **state) {
    (void)state;
    ws_deflate_params_t p;
    assert_false(ws_deflate_negotiate(NULL, 0, &p));
    assert_false(p.on);
    char out[WS_DEFLATE_RESPONSE_MAX];
    assert_int_equal(ws_deflate_response_write(&p, out, sizeof(out)), 0);
}

/* The value is a slice: bytes after len are not read. */
static void test_ws_deflate_negotiate_reads_only_the_slice(void **state) {
    (void)state;
    const char *v = "permessage-deflate; server_max_window_bits=9";
    ws_deflate_params_t p;
    /* Cut after "=": the value is missing, the offer declined. */
    assert_false(
        ws_deflate_negotiate(v, strlen("permessage-deflate; server_max_window_bits="), &p));
    assert_true(ws_deflate_negotiate(v, strlen("permessage-deflate"), &p));
    assert_false(p.server_bits_offered);
}

static void test_ws_deflate_response(void **state) {
    (void)state;
    char out[WS_DEFLATE_RESPONSE_MAX];
    ws_deflate_params_t p;
    assert_true(ws_deflate_negotiate("permessage-deflate", 18, &p));
    size_t n = ws_deflate_response_write(&p, out, sizeof(out));
    assert_string_equal(out, "Sec-WebSocket-Extensions: permessage-deflate; "
                             "server_no_context_takeover; client_no_context_takeover\r\n");
    assert_int_equal(n, strlen(out));
    const char *o = "permessage-deflate; server_max_window_bits=8";
    assert_true(ws_deflate_negotiate(o, strlen(o), &p));
    ws_deflate_response_write(&p, out, sizeof(out));
    assert_string_equal(out, "Sec-WebSocket-Extensions: permessage-deflate; "
                             "server_no_context_takeover; client_no_context_takeover; "
                             "server_max_window_bits=8\r\n");
    /* Too small a buffer: nothing rather than a cut header. */
    assert_int_equal(ws_deflate_response_write(&p, out, 20), 0);
    assert_string_equal(out, "");
    /* In the 101 response. */
    ws_handshake_res_t res = {.status = 101, .v1 = true, .accept = "abc", .deflate = p};
    char r[640];
    assert_true(ws_handshake_response_write(&res, r, sizeof(r)) > 0);
    assert_non_null(strstr(r, "Sec-WebSocket-Protocol: tertulia.v1\r\nSec-WebSocket-Extensions: "
                              "permessage-deflate; server_no_context_takeover"));
    assert_non_null(strstr(r, "=8\r\n\r\n"));
    res.deflate.on = false;
    ws_handshake_response_write(&res, r, sizeof(r));
    assert_null(strstr(r, "Extensions"));
}

/* ---- Compression and inflation ----------------------------------------- */

/* What a client sends: raw deflate with a sync flush, trailer stripped. */
static size_t client_compress(const uint8_t *in, size_t n, uint8_t *out, size_t cap, int final) {
    z_stream z;
    memset(&z, 0, sizeof(z));
    assert_int_equal(deflateInit2(&z, 9, Z_DEFLATED, -15, 9, Z_DEFAULT_STRATEGY), Z_OK);
    z.next_in = (Bytef *)(uintptr_t)in;
    z.avail_in = (uInt)n;
    z.next_out = out;
    z.avail_out = (uInt)cap;
    int r = deflate(&z, final ? Z_FINISH : Z_SYNC_FLUSH);
    assert_true(r == Z_OK || r == Z_STREAM_END);
    assert_int_equal(z.avail_in, 0);
    size_t len = cap - z.avail_out;
    deflateEnd(&z);
    if (!final) {
        assert_memory_equal(out + len - 4, "\x00\x00\xff\xff", 4);
        len -= 4;
    }
    return len;
}

static uint8_t *text_of(size_t n) {
    uint8_t *t = malloc(n + 1);
    assert_non_null(t);
    for (size_t i = 0; i < n; i++)
        t[i] = (uint8_t)("the quick brown fox jumps over the lazy dog, "[i % 45]);
    return t;
}

/* The inflater tests' fixture: a fresh loop-wide inflater in *state. */
static int inflater_setup(void **state) {
    *state = ws_inflater_new();
    return 0;
}

static int inflater_teardown(void **state) {
    ws_inflater_free(*state);
    return 0;
}

static void test_ws_deflater_round_trip(void **state) {
    (void)state;
    ws_deflater_t *d = ws_deflater_new(6);
    ws_inflater_t *inf = ws_inflater_new();
    static const size_t sizes[] = {1, 10, 300, 4096, 70000};
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        size_t n = sizes[i];
        uint8_t *t = text_of(n);
        uint8_t *c = malloc(n + 64);
        size_t clen = ws_deflater_compress(d, t, n, c, n + 64);
        assert_true(clen > 0);
        if (n >= 300)
            assert_true(clen < n / 4); /* repetitive text compresses */
        /* No context takeover: the same input compresses to the same bytes
         * again (nothing of the previous message is referenced). */
        uint8_t *c2 = malloc(n + 64);
        assert_int_equal(ws_deflater_compress(d, t, n, c2, n + 64), clen);
        assert_memory_equal(c, c2, clen);
        const uint8_t *out;
        size_t olen;
        assert_int_equal(ws_inflater_run(inf, c, clen, true, 1 << 20, &out, &olen), WS_INFLATE_OK);
        assert_int_equal(olen, n);
        assert_memory_equal(out, t, n);
        /* zlib itself agrees (the trailer restored, a fresh stream). */
        uint8_t *plain = malloc(n + 8);
        memcpy(c + clen, "\x00\x00\xff\xff", 4);
        z_stream z;
        memset(&z, 0, sizeof(z));
        assert_int_equal(inflateInit2(&z, -15), Z_OK);
        z.next_in = c;
        z.avail_in = (uInt)clen + 4;
        z.next_out = plain;
        z.avail_out = (uInt)n + 8;
        inflate(&z, Z_SYNC_FLUSH);
        assert_int_equal(z.total_out, n);
        assert_memory_equal(plain, t, n);
        inflateEnd(&z);
        free(plain);
        free(c2);
        free(c);
        free(t);
    }
    ws_inflater_free(inf);
    ws_deflater_free(d);
}

/* Incompressible bytes do not fit in as many bytes: 0, the caller sends
 * them plain. */
static void test_ws_deflater_incompressible_is_refused(void **state) {
    (void)state;
    ws_deflater_t *d = ws_deflater_new(6);
    uint8_t in[1000], out[1000];
    uint32_t x = 12345;
    for (size_t i = 0; i < sizeof(in); i++) {
        x = x * 1103515245u + 12345u;
        in[i] = (uint8_t)(x >> 24);
    }
    assert_int_equal(ws_deflater_compress(d, in, sizeof(in), out, sizeof(out)), 0);
    /* And the stream is still usable afterwards. */
    uint8_t *t = text_of(500);
    assert_true(ws_deflater_compress(d, t, 500, out, 500) > 0);
    free(t);
    ws_deflater_free(d);
}

static void test_ws_inflater_client_messages(void **state) {
    ws_inflater_t *inf = *state;
    const uint8_t *out;
    size_t olen;
    /* RFC 7692 section 7.2.3.1: "Hello", one compressed block. */
    static const uint8_t hello[] = {0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00};
    assert_int_equal(ws_inflater_run(inf, hello, sizeof(hello), true, 100, &out, &olen),
                     WS_INFLATE_OK);
    assert_int_equal(olen, 5);
    assert_memory_equal(out, "Hello", 5);
    /* Section 7.2.3.3: "Hello" in a stored block. */
    static const uint8_t stored[] = {0x00, 0x05, 0x00, 0xfa, 0xff, 'H', 'e', 'l', 'l', 'o', 0x00};
    assert_int_equal(ws_inflater_run(inf, stored, sizeof(stored), true, 100, &out, &olen),
                     WS_INFLATE_OK);
    assert_int_equal(olen, 5);
    /* Section 7.2.3.4: "Hello" with BFINAL set: the message ends there. */
    static const uint8_t final[] = {0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00};
    assert_int_equal(ws_inflater_run(inf, final, sizeof(final), true, 100, &out, &olen),
                     WS_INFLATE_OK);
    assert_int_equal(olen, 5);
    /* An empty message: the one byte 00, or nothing at all. */
    static const uint8_t empty[] = {0x00};
    assert_int_equal(ws_inflater_run(inf, empty, 1, true, 100, &out, &olen), WS_INFLATE_OK);
    assert_int_equal(olen, 0);
    assert_int_equal(ws_inflater_run(inf, empty, 0, true, 100, &out, &olen), WS_INFLATE_OK);
    assert_int_equal(olen, 0);
    /* Exactly the limit is allowed. */
    assert_int_equal(ws_inflater_run(inf, hello, sizeof(hello), true, 5, &out, &olen),
                     WS_INFLATE_OK);
    assert_int_equal(ws_inflater_run(inf, hello, sizeof(hello), true, 4, &out, &olen),
                     WS_INFLATE_TOO_BIG);
}

static void test_ws_inflater_bad_data(void **state) {
    ws_inflater_t *inf = *state;
    const uint8_t *out;
    size_t olen;
    /* BTYPE 11 is reserved. */
    static const uint8_t reserved[] = {0x07, 0x00};
    assert_int_equal(ws_inflater_run(inf, reserved, sizeof(reserved), false, 100, &out, &olen),
                     WS_INFLATE_BAD);
    /* A stored block whose NLEN is not the complement of LEN. */
    static const uint8_t nlen[] = {0x00, 0x05, 0x00, 0x00, 0x00, 'H', 'e', 'l', 'l', 'o'};
    assert_int_equal(ws_inflater_run(inf, nlen, sizeof(nlen), false, 100, &out, &olen),
                     WS_INFLATE_BAD);
    /* A message cut in the middle of a block. */
    uint8_t *t = text_of(2000);
    uint8_t c[2100];
    size_t clen = client_compress(t, 2000, c, sizeof(c), 0);
    assert_int_equal(ws_inflater_run(inf, c, clen / 2, false, 1 << 20, &out, &olen),
                     WS_INFLATE_BAD);
    /* The same stream still inflates a good message afterwards. */
    assert_int_equal(ws_inflater_run(inf, c, clen, false, 1 << 20, &out, &olen), WS_INFLATE_OK);
    assert_int_equal(olen, 2000);
    free(t);
}

static void test_ws_inflater_utf8(void **state) {
    ws_inflater_t *inf = *state;
    const uint8_t *out;
    size_t olen;
    uint8_t c[64];
    static const uint8_t bad[] = "caf\xc3\x28 ok";
    size_t clen = client_compress(bad, sizeof(bad) - 1, c, sizeof(c), 0);
    assert_int_equal(ws_inflater_run(inf, c, clen, true, 100, &out, &olen), WS_INFLATE_UTF8);
    /* Binary messages are not text. */
    assert_int_equal(ws_inflater_run(inf, c, clen, false, 100, &out, &olen), WS_INFLATE_OK);
    /* A sequence cut at the end of the message. */
    static const uint8_t cut[] = "caf\xc3";
    clen = client_compress(cut, sizeof(cut) - 1, c, sizeof(c), 0);
    assert_int_equal(ws_inflater_run(inf, c, clen, true, 100, &out, &olen), WS_INFLATE_UTF8);
    static const uint8_t good[] = "caf\xc3\xa9 \xe2\x82\xac";
    clen = client_compress(good, sizeof(good) - 1, c, sizeof(c), 0);
    assert_int_equal(ws_inflater_run(inf, c, clen, true, 100, &out, &olen), WS_INFLATE_OK);
    assert_int_equal(olen, sizeof(good) - 1);
}

/* The bomb: 64 MiB of zeros compress to about 64 KiB; a client may send a
 * few KB of it. Over a 64 KiB limit, the inflater produces at most the
 * limit and one byte, reads only the start of the input, and its buffer
 * never grows past the limit. */
static void test_ws_inflater_bomb_stops_at_the_limit(void **state) {
    (void)state;
    size_t big = 8u << 20; /* 8 MiB of zeros */
    uint8_t *zeros = calloc(1, big);
    uint8_t *c = malloc(64 * 1024);
    size_t clen = client_compress(zeros, big, c, 64 * 1024, 0);
    assert_true(clen < 16 * 1024); /* a few KB */
    ws_inflater_t *inf = ws_inflater_new();
    const uint8_t *out;
    size_t olen = 99;
    size_t max = 64 * 1024;
    assert_int_equal(ws_inflater_run(inf, c, clen, false, max, &out, &olen), WS_INFLATE_TOO_BIG);
    assert_int_equal(olen, 0);
    assert_true(ws_inflater_last_out(inf) <= max + 1);
    assert_true(ws_inflater_last_out(inf) > max);
    assert_true(ws_inflater_capacity(inf) <= max + 1);
    /* It stopped: most of the input was never read. */
    assert_true(ws_inflater_last_in(inf) < clen / 8);
    /* Text too (validation does not change the limit). */
    assert_int_equal(ws_inflater_run(inf, c, clen, true, max, &out, &olen), WS_INFLATE_TOO_BIG);
    assert_true(ws_inflater_last_out(inf) <= max + 1);
    /* A tiny limit. */
    assert_int_equal(ws_inflater_run(inf, c, clen, false, 10, &out, &olen), WS_INFLATE_TOO_BIG);
    assert_true(ws_inflater_last_out(inf) <= 11);
    ws_inflater_free(inf);
    free(c);
    free(zeros);
}

/* ---- The parser with permessage-deflate ------------------------------- */

/* A masked client frame: b0 given whole (FIN, RSV, opcode). */
static size_t client_frame(uint8_t *out, uint8_t b0, const uint8_t *pl, size_t n) {
    static const uint8_t mask[4] = {0x11, 0x22, 0x33, 0x44};
    size_t h = 0;
    out[h++] = b0;
    if (n < 126) {
        out[h++] = (uint8_t)(0x80 | n);
    } else {
        assert_true(n <= 0xFFFF);
        out[h++] = 0x80 | 126;
        out[h++] = (uint8_t)(n >> 8);
        out[h++] = (uint8_t)n;
    }
    memcpy(out + h, mask, 4);
    h += 4;
    for (size_t i = 0; i < n; i++)
        out[h + i] = pl[i] ^ mask[i & 3];
    return h + n;
}

static ws_event_t parse_one(ws_parser_t *p, uint8_t *buf, size_t len) {
    ws_event_t ev;
    size_t used = ws_parser_execute(p, buf, len, &ev);
    if (ev.type != WS_EV_ERROR)
        assert_int_equal(used, len);
    return ev;
}

static void test_ws_parser_rsv1_rules(void **state) {
    (void)state;
    static const uint8_t pl[] = {0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00};
    uint8_t f[64];
    ws_parser_t p;
    ws_event_t ev;
    static const struct {
        bool deflate;
        uint8_t b0;
        uint16_t code; /* 0: accepted */
        const char *reason;
    } cases[] = {
        {true, 0xC1, 0, NULL}, /* FIN RSV1 text */
        {true, 0xC2, 0, NULL}, /* FIN RSV1 binary */
        {true, 0x82, 0, NULL}, /* uncompressed on a compressed connection */
        {false, 0xC1, 1002, "reserved bits set"},
        {true, 0xA1, 1002, "reserved bits set"}, /* RSV2 */
        {true, 0x91, 1002, "reserved bits set"}, /* RSV3 */
        {true, 0xE1, 1002, "reserved bits set"}, /* RSV1 + RSV2 */
        {true, 0xC9, 1002, "RSV1 on a control frame"},
        {true, 0xCA, 1002, "RSV1 on a control frame"},
        {true, 0xC8, 1002, "RSV1 on a control frame"},
        {false, 0xC9, 1002, "reserved bits set"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        ws_parser_init(&p, 1000);
        p.deflate = cases[i].deflate;
        size_t n = client_frame(f, cases[i].b0, pl, (cases[i].b0 & 0x08) ? 2 : sizeof(pl));
        ev = parse_one(&p, f, n);
        if (cases[i].code == 0) {
            assert_int_equal(ev.type, WS_EV_DATA);
            assert_int_equal(ev.compressed, (cases[i].b0 & 0x40) != 0);
            assert_int_equal(ev.len, sizeof(pl));
        } else {
            assert_int_equal(ev.type, WS_EV_ERROR);
            assert_int_equal(ev.close_code, cases[i].code);
            assert_string_equal(ev.reason, cases[i].reason);
        }
    }
    /* RSV1 on a continuation frame, with and without deflate. */
    for (int deflate = 0; deflate < 2; deflate++) {
        ws_parser_init(&p, 1000);
        p.deflate = deflate;
        size_t n = client_frame(f, deflate ? 0x42 : 0x02, pl, 3);
        ev = parse_one(&p, f, n);
        assert_int_equal(ev.type, WS_EV_DATA);
        n = client_frame(f, 0xC0, pl + 3, 4);
        ev = parse_one(&p, f, n);
        assert_int_equal(ev.type, WS_EV_ERROR);
        assert_int_equal(ev.close_code, 1002);
        assert_string_equal(ev.reason,
                            deflate ? "RSV1 on a continuation frame" : "reserved bits set");
    }
}

/* Compressed payloads are not UTF-8 and are not checked as such; a ping
 * between the fragments of a compressed message is fine; the continuation
 * frames carry compressed = true and the next message starts afresh. */
static void test_ws_parser_fragmented_compressed_message(void **state) {
    (void)state;
    uint8_t *t = text_of(3000);
    uint8_t c[3100];
    size_t clen = client_compress(t, 3000, c, sizeof(c), 0);
    ws_parser_t p;
    ws_parser_init(&p, 3000);
    p.deflate = true;
    ws_inflater_t *inf = ws_inflater_new();
    uint8_t f[4096];
    uint8_t msg[3100];
    size_t mlen = 0;
    size_t cuts[] = {0, 1, clen / 3, clen - 1, clen};
    /* Frames: [0,1) [1,clen/3) ping [clen/3,clen-1) [clen-1,clen). */
    for (size_t k = 0; k + 1 < sizeof(cuts) / sizeof(cuts[0]); k++) {
        bool first = k == 0, last = k + 2 == sizeof(cuts) / sizeof(cuts[0]);
        uint8_t b0 = (uint8_t)((last ? 0x80 : 0) | (first ? 0x41 : 0x00));
        size_t n = client_frame(f, b0, c + cuts[k], cuts[k + 1] - cuts[k]);
        ws_event_t ev = parse_one(&p, f, n);
        assert_int_equal(ev.type, WS_EV_DATA);
        assert_true(ev.compressed);
        assert_int_equal(ev.opcode, WS_OP_TEXT);
        assert_int_equal(ev.first, first);
        assert_int_equal(ev.fin, last);
        memcpy(msg + mlen, ev.payload, ev.len);
        mlen += ev.len;
        if (k == 1) {
            n = client_frame(f, 0x89, (const uint8_t *)"hi", 2);
            assert_int_equal(parse_one(&p, f, n).type, WS_EV_PING);
        }
    }
    const uint8_t *out;
    size_t olen;
    assert_int_equal(ws_inflater_run(inf, msg, mlen, true, 3000, &out, &olen), WS_INFLATE_OK);
    assert_int_equal(olen, 3000);
    assert_memory_equal(out, t, 3000);
    /* The next message is plain, and checked as UTF-8 again. */
    size_t n = client_frame(f, 0x81, (const uint8_t *)"\xc3\x28", 2);
    ws_event_t ev = parse_one(&p, f, n);
    assert_int_equal(ev.type, WS_EV_ERROR);
    assert_int_equal(ev.close_code, 1007);
    ws_inflater_free(inf);
    free(t);
}

/* The wire limit of a compressed message is a little over max_message
 * (incompressible data grows when deflated); a plain one's is exact. */
static void test_ws_parser_compressed_wire_limit(void **state) {
    (void)state;
    uint8_t f[1200];
    uint8_t pl[1100];
    memset(pl, 0, sizeof(pl));
    ws_parser_t p;
    ws_parser_init(&p, 1000);
    p.deflate = true;
    size_t wire = (size_t)ws_deflate_wire_max(1000);
    assert_true(wire > 1000 && wire < 1100);
    size_t n = client_frame(f, 0xC2, pl, wire);
    assert_int_equal(parse_one(&p, f, n).type, WS_EV_DATA);
    n = client_frame(f, 0xC2, pl, wire + 1);
    ws_event_t ev = parse_one(&p, f, n);
    assert_int_equal(ev.type, WS_EV_ERROR);
    assert_int_equal(ev.close_code, 1009);
    ws_parser_init(&p, 1000);
    p.deflate = true;
    n = client_frame(f, 0x82, pl, 1001);
    ev = parse_one(&p, f, n);
    assert_int_equal(ev.type, WS_EV_ERROR);
    assert_int_equal(ev.close_code, 1009);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ws_deflate_negotiate_table),
        cmocka_unit_test(test_ws_deflate_negotiate_absent_header),
        cmocka_unit_test(test_ws_deflate_negotiate_reads_only_the_slice),
        cmocka_unit_test(test_ws_deflate_response),
        cmocka_unit_test(test_ws_deflater_round_trip),
        cmocka_unit_test(test_ws_deflater_incompressible_is_refused),
        cmocka_unit_test_setup_teardown(test_ws_inflater_client_messages, inflater_setup,
                                        inflater_teardown),
        cmocka_unit_test_setup_teardown(test_ws_inflater_bad_data, inflater_setup,
                                        inflater_teardown),
        cmocka_unit_test_setup_teardown(test_ws_inflater_utf8, inflater_setup, inflater_teardown),
        cmocka_unit_test(test_ws_inflater_bomb_stops_at_the_limit),
        cmocka_unit_test(test_ws_parser_rsv1_rules),
        cmocka_unit_test(test_ws_parser_fragmented_compressed_message),
        cmocka_unit_test(test_ws_parser_compressed_wire_limit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
