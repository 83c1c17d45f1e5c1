/* ws_msg_frame: the plain frame of a message, written in place before its
 * payload, for every header length, once. */
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

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ws_msg_frame_header_lengths),
        cmocka_unit_test(test_ws_msg_frame_is_idempotent),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
