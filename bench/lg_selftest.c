/* lg_selftest — checks the load generator's own codec and histogram, so a benchmark number
 * never rests on an untested instrument. Table-driven; every decoder case is re-run with the
 * input split at every byte (the first part must read as incomplete). Exit status 0 = pass. */
#include "lg_codec.h"
#include "lg_hist.h"
#include "lg_text.h"

#include <openssl/evp.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

static int failures, checks;

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        checks++;                                                                                  \
        if (!(cond)) {                                                                             \
            failures++;                                                                            \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);                                   \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fprintf(stderr, "\n");                                                                 \
        }                                                                                          \
    } while (0)

typedef struct {
    const char *name;
    const unsigned char *bytes;
    size_t len;
    long want; /* consumed, or -1 */
    int opcode;
    int fin;
    size_t plen;
} frame_case_t;

static void test_frame_decode(void) {
    static const unsigned char text[] = {0x81, 0x05, 'h', 'e', 'l', 'l', 'o'};
    static const unsigned char frag[] = {0x01, 0x02, 'h', 'e'};
    static const unsigned char cont[] = {0x80, 0x01, 'x'};
    static const unsigned char ping[] = {0x89, 0x00};
    static const unsigned char close[] = {0x88, 0x02, 0x03, 0xE8};
    unsigned char mid[4 + 200];
    mid[0] = 0x81;
    mid[1] = 126;
    mid[2] = 0;
    mid[3] = 200;
    memset(mid + 4, 'a', 200);
    unsigned char big[10 + 70000];
    big[0] = 0x82;
    big[1] = 127;
    memset(big + 2, 0, 8);
    big[7] = 0x01;
    big[8] = 0x11;
    big[9] = 0x70; /* 70000 */
    memset(big + 10, 'b', 70000);
    static const unsigned char masked[] = {0x81, 0x81, 1, 2, 3, 4, 'x'};
    static const unsigned char rsv[] = {0xC1, 0x00};
    static const unsigned char badop[] = {0x83, 0x00};
    static const unsigned char nonmin[] = {0x81, 126, 0x00, 0x05, 'a', 'b', 'c', 'd', 'e'};
    static const unsigned char longctl[] = {0x89, 126, 0x00, 0x7E};
    static const unsigned char fragctl[] = {0x09, 0x00};
    const frame_case_t cases[] = {
        {"text", text, sizeof text, 7, 1, 1, 5},
        {"fragment", frag, sizeof frag, 4, 1, 0, 2},
        {"continuation", cont, sizeof cont, 3, 0, 1, 1},
        {"ping", ping, sizeof ping, 2, 9, 1, 0},
        {"close", close, sizeof close, 4, 8, 1, 2},
        {"16-bit length", mid, sizeof mid, (long)sizeof mid, 1, 1, 200},
        {"64-bit length", big, sizeof big, (long)sizeof big, 2, 1, 70000},
        {"masked server frame", masked, sizeof masked, -1, 0, 0, 0},
        {"reserved bits", rsv, sizeof rsv, -1, 0, 0, 0},
        {"unknown opcode", badop, sizeof badop, -1, 0, 0, 0},
        {"non-minimal length", nonmin, sizeof nonmin, -1, 0, 0, 0},
        {"long control frame", longctl, sizeof longctl, -1, 0, 0, 0},
        {"fragmented control frame", fragctl, sizeof fragctl, -1, 0, 0, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        const frame_case_t *c = &cases[i];
        lg_frame_t f;
        const char *err = NULL;
        long got = lg_ws_frame_decode(c->bytes, c->len, 1u << 20, false, &f, &err);
        CHECK(got == c->want, "%s: consumed %ld, want %ld", c->name, got, c->want);
        if (c->want > 0 && got == c->want) {
            CHECK(f.opcode == c->opcode && f.fin == (c->fin != 0) && f.len == c->plen, "%s: fields",
                  c->name);
            CHECK(f.payload == c->bytes + (c->len - c->plen), "%s: payload pointer", c->name);
        }
        if (c->want < 0)
            CHECK(err != NULL, "%s: no reason given", c->name);
        /* Every strict prefix of a valid frame is incomplete; of an invalid one, incomplete
         * until the header shows the fault. */
        for (size_t cut = 0; cut < c->len; cut++) {
            long p = lg_ws_frame_decode(c->bytes, cut, 1u << 20, false, &f, &err);
            if (c->want > 0)
                CHECK(p == LG_INCOMPLETE, "%s split at %zu: got %ld", c->name, cut, p);
            else
                CHECK(p == LG_INCOMPLETE || p == -1, "%s split at %zu: got %ld", c->name, cut, p);
        }
    }
    lg_frame_t f;
    const char *err = NULL;
    CHECK(lg_ws_frame_decode(big, sizeof big, 1000, false, &f, &err) == -1, "max_payload enforced");
    /* RSV1: only with permessage-deflate, only on the first frame of a data message. */
    static const unsigned char c_text[] = {0xC1, 0x01, 0x00};
    static const unsigned char c_first[] = {0x41, 0x01, 0x00};
    static const unsigned char c_cont[] = {0xC0, 0x01, 0x00};
    static const unsigned char c_ping[] = {0xC9, 0x00};
    static const unsigned char c_rsv2[] = {0xA1, 0x00};
    err = NULL;
    CHECK(lg_ws_frame_decode(c_text, 3, 100, false, &f, &err) == -1 && err,
          "RSV1 without deflate refused");
    CHECK(lg_ws_frame_decode(c_text, 3, 100, true, &f, &err) == 3 && f.rsv1 && f.fin,
          "RSV1 text with deflate");
    CHECK(lg_ws_frame_decode(c_first, 3, 100, true, &f, &err) == 3 && f.rsv1 && !f.fin,
          "RSV1 first fragment with deflate");
    CHECK(lg_ws_frame_decode(text, sizeof text, 100, true, &f, &err) == 7 && !f.rsv1,
          "plain text with deflate");
    CHECK(lg_ws_frame_decode(c_cont, 3, 100, true, &f, &err) == -1, "RSV1 continuation refused");
    CHECK(lg_ws_frame_decode(c_ping, 2, 100, true, &f, &err) == -1, "RSV1 ping refused");
    CHECK(lg_ws_frame_decode(c_rsv2, 2, 100, true, &f, &err) == -1, "RSV2 refused");
}

static void test_frame_encode_roundtrip(void) {
    static const size_t lens[] = {0, 1, 7, 8, 9, 125, 126, 127, 65535, 65536, 100000};
    uint64_t rng = 12345;
    for (size_t i = 0; i < sizeof lens / sizeof *lens; i++) {
        size_t n = lens[i];
        unsigned char *src = malloc(n + 1), *out = malloc(n + LG_WS_CLIENT_HEADER_MAX);
        for (size_t j = 0; j < n; j++)
            src[j] = (unsigned char)lg_rand_next(&rng);
        uint32_t mask = 0xA1B2C3D4u;
        size_t fl = lg_ws_frame_encode(out, LG_OP_TEXT, src, n, mask);
        size_t h = n < 126 ? 2 : n <= 0xFFFF ? 4 : 10;
        CHECK(fl == h + 4 + n, "len %zu: frame length %zu", n, fl);
        CHECK(out[0] == 0x81 && (out[1] & 0x80), "len %zu: FIN, text, mask bit", n);
        size_t got = out[1] & 0x7F;
        if (got == 126)
            got = ((size_t)out[2] << 8) | out[3];
        else if (got == 127)
            for (int k = 2, s = 0; k < 10; k++, s++)
                got = s == 0 ? out[k] : (got << 8) | out[k];
        CHECK(got == n, "len %zu: encoded length %zu", n, got);
        unsigned char m[4];
        memcpy(m, out + h, 4);
        int bad = 0;
        for (size_t j = 0; j < n; j++)
            bad += (out[h + 4 + j] ^ m[j & 3]) != src[j];
        CHECK(bad == 0, "len %zu: %d bytes unmask wrong", n, bad);
        free(src);
        free(out);
    }
}

static void test_handshake(void) {
    /* RFC 6455 section 1.3's example key and accept. */
    const char *key = "dGhlIHNhbXBsZSBub25jZQ==";
    const char *ok = "HTTP/1.1 101 Switching Protocols\r\n"
                     "Upgrade: WebSocket\r\n"
                     "Connection: keep-alive, Upgrade\r\n"
                     "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
                     "\r\n\x81\x00";
    size_t len = strlen(ok) + 1; /* the head, then a frame \x81 \x00 */
    const char *err = NULL;
    long head = lg_ws_response_check(ok, len, key, false, NULL, &err);
    CHECK(head == (long)len - 2, "valid response: got %ld (%s)", head, err ? err : "");
    for (size_t cut = 0; cut < len - 2; cut++)
        CHECK(lg_ws_response_check(ok, cut, key, false, NULL, &err) == LG_INCOMPLETE,
              "split at %zu", cut);
    CHECK(lg_ws_response_check(ok, len, key, true, NULL, &err) == -1 && err,
          "a response without the extension fails a deflate offer");
    const char *bad[] = {
        "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Accept: AAAAAAAAAAAAAAAAAAAAAAAAAAA=\r\n\r\n",
        "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n",
        "HTTP/1.0 101 Switching Protocols\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        err = NULL;
        CHECK(lg_ws_response_check(bad[i], strlen(bad[i]), key, false, NULL, &err) == -1 && err,
              "bad response %zu accepted", i);
    }
    char req[512];
    int n = lg_ws_request_build(req, sizeof req, "127.0.0.1:9", "/talking", key, false, NULL);
    CHECK(n > 0 && strstr(req, "GET /talking HTTP/1.1\r\n") == req &&
              strstr(req, "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n") &&
              !strstr(req, "Extensions") && memcmp(req + n - 4, "\r\n\r\n", 4) == 0,
          "request");
    n = lg_ws_request_build(req, sizeof req, "127.0.0.1:9", "/talking", key, true, NULL);
    CHECK(n > 0 &&
              strstr(req, "\r\nSec-WebSocket-Extensions: permessage-deflate; "
                          "client_no_context_takeover; server_no_context_takeover\r\n") &&
              memcmp(req + n - 4, "\r\n\r\n", 4) == 0,
          "request with the deflate offer");
    CHECK(lg_ws_request_build(req, 10, "h", "/", key, false, NULL) == -1, "small buffer refused");
    /* The same valid response with an extension answer: accepted for a deflate offer only. */
    char withext[512];
    int wl =
        snprintf(withext, sizeof withext,
                 "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                 "Connection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
                 "Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; "
                 "client_no_context_takeover\r\n\r\n");
    CHECK(lg_ws_response_check(withext, (size_t)wl, key, true, NULL, &err) == wl,
          "deflate accepted");
    for (int cut = 0; cut < wl; cut++)
        CHECK(lg_ws_response_check(withext, (size_t)cut, key, true, NULL, &err) == LG_INCOMPLETE,
              "deflate response split at %d", cut);
    CHECK(lg_ws_response_check(withext, (size_t)wl, key, false, NULL, &err) == -1,
          "an extension that was not offered refused");
    /* --v1: the subprotocol offered, and the answer that must select exactly it. */
    n = lg_ws_request_build(req, sizeof req, "127.0.0.1:9", "/talking", key, false, LG_V1_PROTOCOL);
    CHECK(n > 0 && strstr(req, "\r\nSec-WebSocket-Protocol: tertulia.v1\r\n") &&
              !strstr(req, "Extensions") && memcmp(req + n - 4, "\r\n\r\n", 4) == 0,
          "request with the subprotocol");
    n = lg_ws_request_build(req, sizeof req, "127.0.0.1:9", "/talking", key, false, NULL);
    CHECK(n > 0 && !strstr(req, "Protocol"), "no subprotocol offered without one");
    const char *head101 = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                          "Connection: Upgrade\r\nSec-WebSocket-Accept: "
                          "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n";
    char pr[512];
    int pl = snprintf(pr, sizeof pr, "%sSec-WebSocket-Protocol: tertulia.v1\r\n\r\n", head101);
    CHECK(lg_ws_response_check(pr, (size_t)pl, key, false, LG_V1_PROTOCOL, &err) == pl,
          "subprotocol selected");
    for (int cut = 0; cut < pl; cut++)
        CHECK(lg_ws_response_check(pr, (size_t)cut, key, false, LG_V1_PROTOCOL, &err) ==
                  LG_INCOMPLETE,
              "subprotocol response split at %d", cut);
    err = NULL;
    CHECK(lg_ws_response_check(pr, (size_t)pl, key, false, NULL, &err) == -1 && err,
          "a subprotocol that was not offered refused");
    pl = snprintf(pr, sizeof pr, "%s\r\n", head101);
    err = NULL;
    CHECK(lg_ws_response_check(pr, (size_t)pl, key, false, LG_V1_PROTOCOL, &err) == -1 && err,
          "an offered subprotocol not selected refused");
    pl = snprintf(pr, sizeof pr, "%sSec-WebSocket-Protocol: chat\r\n\r\n", head101);
    err = NULL;
    CHECK(lg_ws_response_check(pr, (size_t)pl, key, false, LG_V1_PROTOCOL, &err) == -1 && err,
          "another subprotocol refused");
    pl = snprintf(pr, sizeof pr,
                  "%sSec-WebSocket-Protocol: tertulia.v1\r\nSec-WebSocket-Protocol: "
                  "tertulia.v1\r\n\r\n",
                  head101);
    err = NULL;
    CHECK(lg_ws_response_check(pr, (size_t)pl, key, false, LG_V1_PROTOCOL, &err) == -1 && err,
          "two subprotocol headers refused");
    uint64_t rng = 99;
    char k1[LG_WS_KEY_LEN + 1], k2[LG_WS_KEY_LEN + 1];
    lg_ws_key_make(k1, &rng);
    lg_ws_key_make(k2, &rng);
    CHECK(strlen(k1) == 24 && k1[22] == '=' && strcmp(k1, k2) != 0, "keys");
}

typedef struct {
    const char *json;
    int rc;
    const char *type, *from, *to, *text;
    long id;
} scan_case_t;

static void test_scan(void) {
    const scan_case_t cases[] = {
        {"{\"type\":\"room\",\"id\":7,\"ts\":1700000000000,\"from\":\"u1\",\"to\":\"r0\","
         "\"message\":{\"text\":\"m1-2-3-abc\"}}",
         0, "room", "u1", "r0", "m1-2-3-abc", 7},
        {"{ \"message\" : { \"x\": [1, {\"text\": \"no\"}], \"text\" : \"hi\" } , \"to\": "
         "\"bob\", \"type\": \"private\", \"from\": \"al\" }",
         0, "private", "al", "bob", "hi", -1},
        {"{\"type\":\"room\",\"extra\":{\"from\":\"evil\",\"a\":[true,false,null,-1.5e3]},"
         "\"from\":\"ok\"}",
         0, "room", "ok", NULL, NULL, -1},
        {"{\"type\":\"room\",\"message\":{\"text\":\"a\\\"b\"}}", 0, "room", NULL, NULL, NULL, -1},
        {"{\"type\":\"welcome\"}", 0, "welcome", NULL, NULL, NULL, -1},
        {"{\"type\":\"room\"", -1, NULL, NULL, NULL, NULL, -1},
        {"{\"type\":\"room\"}x", -1, NULL, NULL, NULL, NULL, -1},
        {"[1,2]", -1, NULL, NULL, NULL, NULL, -1},
        {"{\"type\" \"room\"}", -1, NULL, NULL, NULL, NULL, -1},
        {"", -1, NULL, NULL, NULL, NULL, -1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        const scan_case_t *c = &cases[i];
        lg_msg_t m;
        int rc = lg_msg_scan(c->json, strlen(c->json), &m);
        CHECK(rc == c->rc, "case %zu: rc %d", i, rc);
        if (rc != 0)
            continue;
#define FIELD(f)                                                                                   \
    CHECK(c->f ? lg_str_is(&m.f, c->f, strlen(c->f)) : !m.f.present || m.f.escaped,                \
          "case %zu: field " #f, i)
        FIELD(type);
        FIELD(from);
        FIELD(to);
        FIELD(text);
#undef FIELD
        CHECK(c->id < 0 ? !m.has_id : (m.has_id && m.id == (uint64_t)c->id), "case %zu: id", i);
        /* A truncated object never scans as complete. */
        size_t n = strlen(c->json);
        for (size_t cut = 0; cut < n; cut++)
            CHECK(lg_msg_scan(c->json, cut, &m) == -1, "case %zu cut at %zu scanned", i, cut);
    }
    /* The fields of a v1 typing frame; "room" as a field, not as the type; a non-string room
     * or state (an object or array, as in other frames) is skipped, not taken. */
    const struct {
        const char *json, *type, *from, *room, *nickname, *state;
    } typing[] = {
        {"{\"type\":\"typing\",\"room\":\"r3\",\"nickname\":\"u13\",\"state\":\"start\"}", "typing",
         NULL, "r3", "u13", "start"},
        {"{\"state\":\"stop\",\"nickname\":\"u7\",\"from\":\"u7\",\"type\":\"typing\"}", "typing",
         "u7", NULL, "u7", "stop"},
        {"{\"type\":\"x\",\"room\":{\"room\":\"r1\"},\"state\":[\"a\"]}", "x", NULL, NULL, NULL,
         NULL},
    };
    for (size_t i = 0; i < sizeof typing / sizeof *typing; i++) {
        lg_msg_t t;
        CHECK(lg_msg_scan(typing[i].json, strlen(typing[i].json), &t) == 0, "typing %zu scan", i);
#define TFIELD(f)                                                                                  \
    CHECK(typing[i].f ? lg_str_is(&t.f, typing[i].f, strlen(typing[i].f)) : !t.f.present,          \
          "typing %zu: field " #f, i)
        TFIELD(type);
        TFIELD(from);
        TFIELD(room);
        TFIELD(nickname);
        TFIELD(state);
#undef TFIELD
        for (size_t cut = 0; cut < strlen(typing[i].json); cut++)
            CHECK(lg_msg_scan(typing[i].json, cut, &t) == -1, "typing %zu cut at %zu", i, cut);
    }
    lg_msg_t m;
    const char *esc = "{\"type\":\"room\",\"message\":{\"text\":\"a\\\"b\"}}";
    lg_msg_scan(esc, strlen(esc), &m);
    CHECK(m.text.present && m.text.escaped, "escaped text flagged");
}

static void test_hist(void) {
    for (uint64_t v = 0; v < 200000; v += 1 + v / 100) {
        uint32_t i = lg_hist_index(v);
        uint64_t hi = lg_hist_bucket_high(i);
        CHECK(hi >= v && (double)(hi - v) <= (double)v / 64.0 + 1, "value %llu -> high %llu",
              (unsigned long long)v, (unsigned long long)hi);
        if (i > 0)
            CHECK(lg_hist_bucket_high(i - 1) < v, "value %llu above previous bucket",
                  (unsigned long long)v);
    }
    CHECK(lg_hist_index(UINT64_MAX) == LG_HIST_BUCKETS - 1, "top bucket");
    lg_hist_t h, h2;
    lg_hist_init(&h);
    lg_hist_init(&h2);
    CHECK(lg_hist_quantile(&h, 0.5) == 0, "empty");
    for (uint64_t v = 1; v <= 1000; v++)
        lg_hist_add(v <= 500 ? &h : &h2, v * 1000);
    lg_hist_merge(&h, &h2);
    CHECK(h.count == 1000 && h.min == 1000 && h.max == 1000000, "merge");
    uint64_t p50 = lg_hist_quantile(&h, 0.5), p99 = lg_hist_quantile(&h, 0.99);
    uint64_t p999 = lg_hist_quantile(&h, 0.999), p100 = lg_hist_quantile(&h, 1.0);
    CHECK(p50 >= 500000 && p50 <= 500000 * 65 / 64, "p50 %llu", (unsigned long long)p50);
    CHECK(p99 >= 990000 && p99 <= 990000 * 65 / 64, "p99 %llu", (unsigned long long)p99);
    CHECK(p999 >= 999000 && p999 <= 1000000, "p99.9 %llu", (unsigned long long)p999);
    CHECK(p100 == 1000000, "p100 is the max");
}

static void test_text(void) {
    static const uint32_t sizes[] = {1, 16, 40, 64, 100, 1000, 4000};
    static const uint64_t seqs[] = {1, 2, 25, 26, 27, 1000003, UINT64_C(9999999999999999999)};
    char buf[4200];
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
        for (size_t j = 0; j < sizeof seqs / sizeof *seqs; j++) {
            uint64_t t = UINT64_C(1795000000123456789);
            size_t n = lg_text_build(buf, 4242, seqs[j], t, sizes[i]);
            CHECK(n >= sizes[i] && (n == sizes[i] || sizes[i] < 64), "size %u: length %zu",
                  sizes[i], n);
            uint64_t g, q, tt;
            CHECK(lg_text_check(buf, n, sizes[i], &g, &q, &tt) && g == 4242 && q == seqs[j] &&
                      tt == t,
                  "size %u seq %llu: round trip", sizes[i], (unsigned long long)seqs[j]);
            /* Any changed byte, a missing or an extra byte, is caught. */
            int missed = 0;
            for (size_t k = 0; k < n; k++) {
                char old = buf[k];
                buf[k] = old == 'a' ? 'b' : 'a';
                uint64_t g2, q2, t2;
                if (lg_text_check(buf, n, sizes[i], &g2, &q2, &t2) &&
                    (g2 == 4242 && q2 == seqs[j] && t2 == t))
                    missed++;
                buf[k] = old;
            }
            CHECK(missed == 0, "size %u: %d corruptions passed", sizes[i], missed);
            CHECK(!lg_text_check(buf, n - 1, sizes[i], &g, &q, &tt), "truncated text passed");
            buf[n] = buf[n - 1];
            CHECK(!lg_text_check(buf, n + 1, sizes[i], &g, &q, &tt), "longer text passed");
            CHECK(!lg_text_check(buf, n, sizes[i] + 1, &g, &q, &tt) || n > sizes[i] + 1,
                  "size mismatch passed");
        }
    }
    const char *bad[] = {"m01-1-1-b", "m1-01-1-b", "m-1-1-b", "m1-1-1", "x1-1-1-b", "m1--1-b"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        uint64_t g, q, t;
        CHECK(!lg_text_check(bad[i], strlen(bad[i]), 1, &g, &q, &t), "accepted %s", bad[i]);
    }
    char d[24];
    size_t n = lg_u64_dec(d, UINT64_MAX);
    CHECK(n == 20 && memcmp(d, "18446744073709551615", 20) == 0, "u64 max");
    const char *p = d, *end = d + n;
    uint64_t v;
    CHECK(!lg_dec_parse(&p, end, &v), "20 digits refused (over the parser's 19)");
    n = lg_u64_dec(d, 0);
    p = d;
    CHECK(n == 1 && lg_dec_parse(&p, d + 1, &v) && v == 0 && p == d + 1, "zero");
}

static void test_pmd_answer(void) {
    static const struct {
        const char *v;
        int rc;
    } cases[] = {
        {"permessage-deflate; server_no_context_takeover", 0},
        {"permessage-deflate;server_no_context_takeover;client_no_context_takeover", 0},
        {"Permessage-Deflate; Server_No_Context_Takeover", 0},
        {"permessage-deflate; server_no_context_takeover; server_max_window_bits=10", 0},
        {"permessage-deflate; server_no_context_takeover; server_max_window_bits=\"15\"", 0},
        {"permessage-deflate", -1},                             /* context kept: not ours */
        {"permessage-deflate; client_no_context_takeover", -1}, /* idem */
        {"x-webkit-deflate-frame", -1},
        {"permessage-deflate; server_no_context_takeover, permessage-deflate", -1},
        {"permessage-deflate; server_no_context_takeover; server_no_context_takeover", -1},
        {"permessage-deflate; server_no_context_takeover; client_max_window_bits=15", -1},
        {"permessage-deflate; server_no_context_takeover; server_max_window_bits=7", -1},
        {"permessage-deflate; server_no_context_takeover; server_max_window_bits=16", -1},
        {"permessage-deflate; server_no_context_takeover; server_max_window_bits=010", -1},
        {"permessage-deflate; server_no_context_takeover; server_max_window_bits", -1},
        {"permessage-deflate; server_no_context_takeover=1", -1},
        {"permessage-deflate; server_no_context_takeover; mystery", -1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        const char *err = NULL;
        int rc = lg_pmd_response_check(cases[i].v, strlen(cases[i].v), &err);
        CHECK(rc == cases[i].rc && (rc == 0 || err), "answer \"%s\": got %d", cases[i].v, rc);
    }
}

/* Compresses src as one permessage-deflate message: raw deflate, sync flush, the trailing
 * 00 00 ff ff dropped (or, with final, a final block and nothing dropped). */
static size_t pmd_compress(const uint8_t *src, size_t n, uint8_t *out, size_t cap, bool final) {
    z_stream z;
    memset(&z, 0, sizeof z);
    deflateInit2(&z, 6, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY);
    z.next_in = (Bytef *)src;
    z.avail_in = (uInt)n;
    z.next_out = out;
    z.avail_out = (uInt)cap;
    deflate(&z, final ? Z_FINISH : Z_SYNC_FLUSH);
    size_t len = cap - z.avail_out;
    deflateEnd(&z);
    if (!final && len >= 4 && memcmp(out + len - 4, "\x00\x00\xff\xff", 4) == 0)
        len -= 4;
    return len;
}

/* A server frame: unmasked, FIN as given, RSV1 as given, the minimal length. */
static size_t server_frame(uint8_t *out, uint8_t op, bool fin, bool rsv1, const uint8_t *p,
                           size_t n) {
    size_t h = 0;
    out[h++] = (uint8_t)((fin ? 0x80 : 0) | (rsv1 ? 0x40 : 0) | op);
    if (n < 126) {
        out[h++] = (uint8_t)n;
    } else {
        out[h++] = 126;
        out[h++] = (uint8_t)(n >> 8);
        out[h++] = (uint8_t)n;
    }
    memcpy(out + h, p, n);
    return h + n;
}

static void test_pmd_inflate(void) {
    z_stream z;
    memset(&z, 0, sizeof z);
    CHECK(inflateInit2(&z, -15) == Z_OK, "inflateInit2");
    /* A room message as a server sends it, with words text (compressible, not trivially). */
    char text[600];
    lg_text_use_words();
    size_t tl = lg_text_build(text, 7, 12345, UINT64_C(1795000000123456789), 512);
    char msg[800];
    int ml = snprintf(
        msg, sizeof msg,
        "{\"type\":\"room\",\"from\":\"u7\",\"to\":\"r0\",\"message\":{\"text\":\"%.*s\"}}",
        (int)tl, text);
    uint8_t comp[1024], frame[1100], out[1024];
    const char *err = NULL;
    for (int final = 0; final < 2; final++) {
        size_t cl = pmd_compress((const uint8_t *)msg, (size_t)ml, comp, sizeof comp, final);
        CHECK(cl > 0 && cl < (size_t)ml, "compressed %d to %zu", ml, cl);
        size_t fl = server_frame(frame, LG_OP_TEXT, true, true, comp, cl);
        /* The frame split at every byte: incomplete until the last, then one message that
         * inflates to exactly what was sent. */
        for (size_t cut = 0; cut < fl; cut++) {
            lg_frame_t f;
            CHECK(lg_ws_frame_decode(frame, cut, 1u << 20, true, &f, &err) == LG_INCOMPLETE,
                  "compressed frame split at %zu", cut);
        }
        lg_frame_t f;
        CHECK(lg_ws_frame_decode(frame, fl, 1u << 20, true, &f, &err) == (long)fl && f.rsv1 &&
                  f.fin && f.len == cl,
              "compressed frame decodes");
        size_t on = 0;
        CHECK(lg_pmd_inflate(&z, f.payload, f.len, out, sizeof out, &on, &err) == 0 &&
                  on == (size_t)ml && memcmp(out, msg, on) == 0,
              "final %d: inflates to the message (%s)", final, err ? err : "");
        lg_msg_t m;
        CHECK(lg_msg_scan((const char *)out, on, &m) == 0 && lg_str_is(&m.text, text, tl),
              "the inflated message scans to its text");
        /* Fragmented at every byte of the compressed payload: RSV1 on the first frame only,
         * the payloads concatenated inflate to the message. */
        int bad = 0;
        for (size_t k = 0; k <= cl; k++) {
            uint8_t two[1200], cat[1100];
            size_t a = server_frame(two, LG_OP_TEXT, false, true, comp, k);
            size_t b = server_frame(two + a, LG_OP_CONT, true, false, comp + k, cl - k);
            lg_frame_t f1, f2;
            long u1 = lg_ws_frame_decode(two, a + b, 1u << 20, true, &f1, &err);
            long u2 =
                u1 > 0 ? lg_ws_frame_decode(two + u1, a + b - (size_t)u1, 1u << 20, true, &f2, &err)
                       : -1;
            if (u1 != (long)a || u2 != (long)b || !f1.rsv1 || f1.fin || f2.rsv1 || !f2.fin) {
                bad++;
                continue;
            }
            memcpy(cat, f1.payload, f1.len);
            memcpy(cat + f1.len, f2.payload, f2.len);
            if (lg_pmd_inflate(&z, cat, f1.len + f2.len, out, sizeof out, &on, &err) != 0 ||
                on != (size_t)ml || memcmp(out, msg, on) != 0)
                bad++;
        }
        CHECK(bad == 0, "final %d: %d fragmentations went wrong", final, bad);
        /* Exactly the limit inflates; one byte less of room is refused. */
        CHECK(lg_pmd_inflate(&z, comp, cl, out, (size_t)ml, &on, &err) == 0 && on == (size_t)ml,
              "final %d: inflates into exactly its size", final);
        err = NULL;
        CHECK(lg_pmd_inflate(&z, comp, cl, out, (size_t)ml - 1, &on, &err) == -1 && err,
              "final %d: one byte over the limit refused", final);
        /* Any changed byte is caught: by inflate, or by the comparison after it. */
        int missed = 0;
        for (size_t k = 0; k < cl; k++) {
            uint8_t c2[1024];
            memcpy(c2, comp, cl);
            c2[k] ^= 0x10;
            if (lg_pmd_inflate(&z, c2, cl, out, sizeof out, &on, &err) == 0 && on == (size_t)ml &&
                memcmp(out, msg, on) == 0)
                missed++;
        }
        CHECK(missed == 0, "final %d: %d corruptions passed", final, missed);
    }
    /* A bomb: 1 MiB of one letter in a few KB; the limit stops it. */
    uint8_t *zeros = calloc(1, 1u << 20), *bomb = malloc(1u << 16), *big = malloc(4096);
    size_t bl = pmd_compress(zeros, 1u << 20, bomb, 1u << 16, false);
    size_t on = 0;
    CHECK(bl < 8192 && lg_pmd_inflate(&z, bomb, bl, big, 4096, &on, &err) == -1,
          "bomb of %zu bytes refused at the limit", bl);
    /* Data after a final block is refused. */
    uint8_t two[2048];
    size_t a = pmd_compress((const uint8_t *)msg, (size_t)ml, two, sizeof two, true);
    memcpy(two + a, "junk", 4);
    CHECK(lg_pmd_inflate(&z, two, a + 4, out, sizeof out, &on, &err) == -1,
          "data after the final block refused");
    free(zeros);
    free(bomb);
    free(big);
    inflateEnd(&z);
}

int main(void) {
    test_text();
    test_frame_decode();
    test_frame_encode_roundtrip();
    test_handshake();
    test_scan();
    test_hist();
    test_pmd_answer();
    test_pmd_inflate();
    /* Last: switches the texts of this process to the words pad for good. */
    test_text();
    printf("lg_selftest: %d checks, %d failures\n", checks, failures);
    return failures ? 1 : 0;
}
