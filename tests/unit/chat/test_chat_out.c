/* Unit tests of src/chat/chat_out.c's direct writer of a message's frame:
 * byte for byte what jansson writes for the same message (built as a JSON
 * tree and dumped compactly), for texts of every kind of character (quotes,
 * backslashes, each control character, multibyte UTF-8, long runs), both
 * kinds, negative and large numbers, with and without mentions. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "chat/chat_int.h"
#include "core/buf.h"
#include "core/msg.h"

static void expect_same(const chat_message_t *m, json_t *mentions) {
    json_t *o = chat__message_json(m);
    if (mentions != NULL)
        json_object_set(o, "mentions", mentions);
    tt_msg_t *want = chat__msg_json(o, 64);
    tt_msg_t *got = chat__msg_message(m, mentions);
    if (got->payload_len != want->payload_len ||
        memcmp(tt_msg_payload(got), tt_msg_payload(want), got->payload_len) != 0)
        fail_msg("direct: %.*s\njansson: %.*s", (int)got->payload_len,
                 (const char *)tt_msg_payload(got), (int)want->payload_len,
                 (const char *)tt_msg_payload(want));
    tt_msg_unref(got);
    tt_msg_unref(want);
    json_decref(o);
}

static chat_message_t msg(chat_msg_kind_t kind, uint64_t id, int64_t ts, const char *from,
                          const char *to, const char *text, size_t text_len) {
    return (chat_message_t){.kind = kind,
                            .id = id,
                            .ts = ts,
                            .from = from,
                            .from_len = strlen(from),
                            .to = to,
                            .to_len = strlen(to),
                            .text = text,
                            .text_len = text_len};
}

static void test_fixed_cases(void **state) {
    (void)state;
    const char *texts[] = {"hola",
                           "say \"hi\"",
                           "back\\slash",
                           "tab\there",
                           "a\nb\r\nc",
                           "\b\f",
                           "\x01\x02\x1f",
                           "ñandú 🦤 日本語",
                           "/slash/ <b>&amp;",
                           "",
                           "\x7f del"};
    for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
        chat_message_t m = msg(CHAT_MSG_ROOM, 1 + i, 1764013952123, "ana", "#swift-dev", texts[i],
                               strlen(texts[i]));
        expect_same(&m, NULL);
        m.kind = CHAT_MSG_PRIVATE;
        expect_same(&m, NULL);
    }
    chat_message_t big = msg(CHAT_MSG_ROOM, (1ULL << 53) - 1, -5, "a", "r", "x", 1);
    expect_same(&big, NULL);
    big.ts = INT64_MAX;
    big.id = 0;
    expect_same(&big, NULL);
    json_t *mentions = json_pack("[s,s]", "ana", "Ben.x");
    chat_message_t m = msg(CHAT_MSG_ROOM, 7, 8, "cleo", "r", "@ana @Ben.x", 11);
    expect_same(&m, mentions);
    json_decref(mentions);
    json_t *empty = json_array();
    expect_same(&m, empty);
    json_decref(empty);
}

/* Random texts: any byte below 0x80, and valid multibyte sequences. */
static void test_random_texts(void **state) {
    (void)state;
    srand(12345);
    char text[4096];
    for (int round = 0; round < 2000; round++) {
        size_t n = 0, want = (size_t)(rand() % 300);
        while (n < want && n + 4 < sizeof(text)) {
            int k = rand() % 10;
            if (k < 6) {
                text[n++] = (char)(rand() % 0x80);
            } else if (k < 8) {
                text[n++] = (char)(0xC2 + rand() % 30);
                text[n++] = (char)(0x80 + rand() % 64);
            } else if (k < 9) {
                text[n++] = (char)0xE6;
                text[n++] = (char)(0x80 + rand() % 64);
                text[n++] = (char)(0x80 + rand() % 64);
            } else {
                text[n++] = (char)0xF0;
                text[n++] = (char)(0x90 + rand() % 32);
                text[n++] = (char)(0x80 + rand() % 64);
                text[n++] = (char)(0x80 + rand() % 64);
            }
        }
        /* The chat refuses NUL in a text: none here. */
        for (size_t i = 0; i < n; i++)
            if (text[i] == 0)
                text[i] = ' ';
        chat_message_t m = msg(round % 2 ? CHAT_MSG_ROOM : CHAT_MSG_PRIVATE, (uint64_t)round * 997,
                               (int64_t)round * 1000003, "u_1.x", "#Room-9", text, n);
        expect_same(&m, NULL);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fixed_cases),
        cmocka_unit_test(test_random_texts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
