/* ws_msg_frame: the plain frame of a message, written in place before its
 * payload, for every header length, once. ws_msg_frame_deflate: the
 * compressed frame, made once and shared, and the cases that go plain. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "core/msg.h"
#include "ws/ws_frame.h"
#include "ws/ws_msg.h"

static tt_msg_t *msg_of(size_t len, uint8_t fill) {
    tt_buf_t *b = tt_buf_new(TT_MSG_RESERVE + len);
    b->off = TT_MSG_RESERVE;
    b->len = (uint32_t)len;
    memset(b->data + b->off, fill, len);
    return tt_msg_new(b);
}

static void test_ws_msg_frame_header_lengths(void **state) {
    (void)state;
    static const struct {
        size_t len, hlen;
    } cases[] = {{0, 2}, {1, 2}, {125, 2}, {126, 4}, {65535, 4}, {65536, 10}, {70000, 10}};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        tt_msg_t *m = msg_of(cases[i].len, 'a');
        assert_false(ws_msg_is_framed(m) && cases[i].len > 0);
        tt_buf_t *f = ws_msg_frame(m);
        assert_ptr_equal(f, m->buf);
        assert_int_equal(f->len, cases[i].len + cases[i].hlen);
        const uint8_t *p = tt_buf_ptr(f);
        assert_int_equal(p[0], 0x81); /* FIN, text, no RSV */
        uint8_t want[WS_MAX_SERVER_HEADER];
        size_t h = ws_frame_header_write(want, true, WS_OP_TEXT, cases[i].len);
        assert_int_equal(h, cases[i].hlen);
        assert_memory_equal(p, want, h);
        /* The payload did not move. */
        assert_ptr_equal(tt_msg_payload(m), p + h);
        if (cases[i].len)
            assert_int_equal(tt_msg_payload(m)[cases[i].len - 1], 'a');
        tt_msg_unref(m);
    }
}

static void test_ws_msg_frame_is_idempotent(void **state) {
    (void)state;
    tt_msg_t *m = msg_of(300, 'z');
    tt_buf_t *f1 = ws_msg_frame(m);
    uint32_t off = f1->off, len = f1->len;
    tt_buf_t *f2 = ws_msg_frame(m);
    assert_ptr_equal(f1, f2);
    assert_int_equal(f2->off, off);
    assert_int_equal(f2->len, len);
    /* A reference taken by a recipient outlives the message's own. */
    tt_buf_ref(f1);
    tt_msg_unref(m);
    assert_int_equal(tt_buf_ptr(f1)[0], 0x81);
    tt_buf_unref(f1);
    tt_buf_pool_drain();
}

static tt_msg_t *text_msg(size_t len) {
    tt_msg_t *m = msg_of(len, 'x');
    uint8_t *p = m->buf->data + m->payload_off;
    static const char pat[] = "{\"type\":\"message\",\"text\":\"hola\"} ";
    for (size_t i = 0; i < len; i++)
        p[i] = (uint8_t)pat[i % (sizeof(pat) - 1)];
    return m;
}

/* The payload of a server frame (header of 2, 4 or 10 bytes, no mask). */
static const uint8_t *frame_payload(const tt_buf_t *b, size_t *n) {
    uint8_t l7 = tt_buf_ptr(b)[1] & 0x7F;
    size_t h = l7 < 126 ? 2 : l7 == 126 ? 4 : 10;
    *n = b->len - h;
    /* The header is the one ws_frame_header_write makes for that length. */
    uint8_t want[WS_MAX_SERVER_HEADER];
    assert_int_equal(ws_frame_header_write(want, true, WS_OP_TEXT, *n), h);
    assert_memory_equal(tt_buf_ptr(b) + 1, want + 1, h - 1);
    return tt_buf_ptr(b) + h;
}

static void test_ws_msg_frame_deflate_once_for_everyone(void **state) {
    (void)state;
    ws_msg_deflate_t cfg = {.deflater = ws_deflater_new(6), .min = 100};
    ws_inflater_t *inf = ws_inflater_new();
    static const size_t sizes[] = {100, 500, 5000, 70000};
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        tt_msg_t *m = text_msg(sizes[i]);
        tt_buf_t *d = ws_msg_frame_deflate(m, &cfg, 15);
        assert_ptr_not_equal(d, m->buf);
        assert_ptr_equal(d, m->deflated);
        /* Every other recipient gets the same buffer, whatever its bits
         * as long as the payload fits its window. */
        assert_ptr_equal(ws_msg_frame_deflate(m, &cfg, 15), d);
        if (sizes[i] <= 1024)
            assert_ptr_equal(ws_msg_frame_deflate(m, &cfg, 10), d);
        assert_int_equal(tt_buf_ptr(d)[0], 0xC1); /* FIN, RSV1, text */
        size_t n;
        const uint8_t *pl = frame_payload(d, &n);
        assert_true(n < (sizes[i] >= 500 ? sizes[i] / 4 : sizes[i]));
        const uint8_t *out;
        size_t olen;
        assert_int_equal(ws_inflater_run(inf, pl, n, true, 1 << 20, &out, &olen), WS_INFLATE_OK);
        assert_int_equal(olen, sizes[i]);
        assert_memory_equal(out, tt_msg_payload(m), olen);
        /* A recipient without the extension still gets the plain frame. */
        tt_buf_t *plain = ws_msg_frame(m);
        assert_int_equal(tt_buf_ptr(plain)[0], 0x81);
        assert_int_equal(plain->len, sizes[i] + ws_frame_header_len(sizes[i]));
        /* A queue's reference outlives the message. */
        tt_buf_ref(d);
        tt_msg_unref(m);
        assert_int_equal(tt_buf_ptr(d)[0], 0xC1);
        tt_buf_unref(d);
    }
    ws_inflater_free(inf);
    ws_deflater_free(cfg.deflater);
    tt_buf_pool_drain();
}

static void test_ws_msg_frame_deflate_goes_plain(void **state) {
    (void)state;
    ws_msg_deflate_t cfg = {.deflater = ws_deflater_new(6), .min = 100};
    /* Under --deflate-min. */
    tt_msg_t *m = text_msg(99);
    assert_ptr_equal(ws_msg_frame_deflate(m, &cfg, 15), m->buf);
    assert_null(m->deflated);
    assert_int_equal(tt_buf_ptr(m->buf)[0], 0x81);
    tt_msg_unref(m);
    /* Longer than the client's server_max_window_bits allows: plain for
     * it, compressed for a 15-bit client. 2^8 bytes is still compressed. */
    m = text_msg(257);
    assert_ptr_equal(ws_msg_frame_deflate(m, &cfg, 8), m->buf);
    assert_ptr_not_equal(ws_msg_frame_deflate(m, &cfg, 15), m->buf);
    assert_ptr_not_equal(ws_msg_frame_deflate(m, &cfg, 9), m->buf);
    tt_msg_unref(m);
    m = text_msg(256);
    tt_buf_t *d = ws_msg_frame_deflate(m, &cfg, 8);
    assert_ptr_not_equal(d, m->buf);
    assert_int_equal(tt_buf_ptr(d)[0], 0xC1);
    tt_msg_unref(m);
    /* Incompressible: the plain frame, cached as such (compressed once,
     * not again for the next recipient). */
    m = msg_of(1000, 0);
    uint8_t *p = m->buf->data + m->payload_off;
    uint32_t x = 7;
    for (size_t i = 0; i < 1000; i++) {
        x = x * 1103515245u + 12345u;
        p[i] = (uint8_t)(x >> 24);
    }
    m->binary = true;
    assert_ptr_equal(ws_msg_frame_deflate(m, &cfg, 15), m->buf);
    assert_ptr_equal(m->deflated, m->buf);
    assert_int_equal(tt_buf_ptr(m->buf)[0], 0x82); /* FIN, binary, no RSV */
    tt_msg_unref(m);
    /* A binary message compresses with its own opcode. */
    m = text_msg(1000);
    m->binary = true;
    assert_int_equal(tt_buf_ptr(ws_msg_frame_deflate(m, &cfg, 15))[0], 0xC2);
    tt_msg_unref(m);
    ws_deflater_free(cfg.deflater);
    tt_buf_pool_drain();
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ws_msg_frame_header_lengths),
        cmocka_unit_test(test_ws_msg_frame_is_idempotent),
        cmocka_unit_test(test_ws_msg_frame_deflate_once_for_everyone),
        cmocka_unit_test(test_ws_msg_frame_deflate_goes_plain),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
