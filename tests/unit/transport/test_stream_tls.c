/* Loop-level tests of src/transport/stream_tls.c: a TLS listener on
 * 127.0.0.1 with a key and certificate made in memory, an OpenSSL client
 * on a non-blocking socket, and the loop stepped until what a test waits
 * for has happened (bounded steps, no sleeps). The endpoint answers each
 * line and stops reading until the answer is written, so kept plaintext
 * and backpressure are exercised exactly as on a plain stream. */
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include "transport/tls_glue.h"
#include "transport/transport.h"

static const char PLAIN_REPLY[] = "not TLS\n";

typedef struct conn_s {
    tt_stream_t *s;
    size_t lines, overflows;
    bool small_queue;
} conn_t;

static conn_t *accepted;
static int nclosed;
static bool small_next;

static size_t line_read(tt_stream_t *s, uint8_t *data, size_t len) {
    conn_t *c = tt_stream_ext(s);
    uint8_t *nl = memchr(data, '\n', len);
    if (nl == NULL)
        return 0;
    size_t n = (size_t)(nl - data) + 1;
    tt_stream_send_copy(s, data, n);
    c->lines++;
    tt_stream_read_stop(s);
    return n;
}

static void line_drain(tt_stream_t *s) {
    tt_stream_read_start(s);
}

static void line_overflow(tt_stream_t *s, size_t want) {
    (void)want;
    conn_t *c = tt_stream_ext(s);
    c->overflows++;
    tt_stream_abort(s, "over");
}

static void line_close(tt_stream_t *s) {
    if (accepted == tt_stream_ext(s))
        accepted = NULL;
    nclosed++;
}

static const tt_stream_handler_t line_handler = {
    .on_read = line_read,
    .on_drain = line_drain,
    .on_overflow = line_overflow,
    .on_close = line_close,
};

static void accept_cb(void *ctx, tt_stream_t *s) {
    (void)ctx;
    conn_t *c = tt_stream_ext(s);
    c->s = s;
    if (small_next)
        tt_stream_set_max_queue(s, 100);
    accepted = c;
}

typedef struct fix_s {
    tt_loop_t *loop;
    tt_listener_t *l;
    tt_tls_ctx_t *tls;
    SSL_CTX *client_ctx;
    int port;
} fix_t;

static tt_tls_ctx_t *memory_ctx(void) {
    EVP_PKEY *key = EVP_EC_gen("P-256");
    X509 *x = X509_new();
    ASN1_INTEGER_set(X509_get_serialNumber(x), 7);
    X509_gmtime_adj(X509_getm_notBefore(x), 0);
    X509_gmtime_adj(X509_getm_notAfter(x), 3600);
    X509_set_pubkey(x, key);
    X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
                               (const unsigned char *)"unit", -1, -1, 0);
    X509_set_issuer_name(x, X509_get_subject_name(x));
    assert_true(X509_sign(x, key, EVP_sha256()) > 0);
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    assert_int_equal(tt__tls_ctx_setup(ctx), 0);
    assert_int_equal(SSL_CTX_use_certificate(ctx, x), 1);
    assert_int_equal(SSL_CTX_use_PrivateKey(ctx, key), 1);
    X509_free(x);
    EVP_PKEY_free(key);
    return tt__tls_ctx_wrap(ctx);
}

static int fix_setup(void **state) {
    fix_t *f = calloc(1, sizeof(*f));
    f->loop = tt_loop_new();
    f->tls = memory_ctx();
    tt_listener_config_t lc = {
        .host = "127.0.0.1",
        .ext_size = sizeof(conn_t),
        .max_queue = 1 << 20,
        .max_input = 4096,
        .handler = &line_handler,
        .on_accept = accept_cb,
        .tls = f->tls,
        .tls_handshake_ms = 50,
        .tls_plain_reply = PLAIN_REPLY,
    };
    char err[256];
    assert_int_equal(tt_listen(f->loop, &lc, &f->l, err, sizeof(err)), 0);
    assert_true(tt_listener_is_tls(f->l));
    char addr[80];
    tt_listener_address(f->l, addr, sizeof(addr));
    f->port = atoi(strrchr(addr, ':') + 1);
    f->client_ctx = SSL_CTX_new(TLS_client_method());
    accepted = NULL;
    nclosed = 0;
    small_next = false;
    *state = f;
    return 0;
}

static int fix_teardown(void **state) {
    fix_t *f = *state;
    tt_listener_close(f->l);
    for (tt_stream_t *s = tt_loop_first_stream(f->loop); s; s = tt_loop_next_stream(s))
        tt_stream_abort(s, "teardown");
    tt_loop_run(f->loop);
    tt_loop_free(f->loop);
    tt_tls_ctx_unref(f->tls);
    SSL_CTX_free(f->client_ctx);
    free(f);
    return 0;
}

static int dial(const fix_t *f) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)f->port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connect(fd, (struct sockaddr *)&a, sizeof(a));
    return fd;
}

/* Steps the loop (and runs the tt_loop_sweep the server's timer runs)
 * until cond holds; bounded. */
#define SPIN(f, fd_, cond)                                                                         \
    do {                                                                                           \
        for (int i_ = 0; i_ < 3000 && !(cond); i_++) {                                             \
            tt_loop_run_nowait((f)->loop);                                                         \
            tt_loop_sweep((f)->loop);                                                              \
            struct pollfd p_ = {.fd = (fd_), .events = POLLIN};                                    \
            poll(&p_, 1, 1);                                                                       \
        }                                                                                          \
        assert_true(cond);                                                                         \
    } while (0)

static bool handshake_done(SSL *c) {
    int r = SSL_do_handshake(c);
    return r == 1;
}

static SSL *tls_dial(fix_t *f, int *fd) {
    *fd = dial(f);
    SSL *c = SSL_new(f->client_ctx);
    SSL_set_fd(c, *fd);
    SSL_set_connect_state(c);
    SPIN(f, *fd, handshake_done(c));
    SPIN(f, *fd, accepted != NULL);
    return c;
}

static void read_tls(SSL *c, char *buf, size_t cap, size_t *have) {
    int n = SSL_read(c, buf + *have, (int)(cap - *have));
    if (n > 0)
        *have += (size_t)n;
    ERR_clear_error();
}

static void test_tls_stream_lines_in_one_record_come_back_in_order(void **state) {
    fix_t *f = *state;
    int fd;
    SSL *c = tls_dial(f, &fd);
    assert_true(tt_stream_is_tls(accepted->s));
    /* Three lines in one record: each answer waits for the previous one to
     * be written, so the rest is kept plaintext presented again. */
    const char *msg = "one\ntwo\nthree\n";
    assert_int_equal(SSL_write(c, msg, (int)strlen(msg)), (int)strlen(msg));
    char buf[64];
    size_t have = 0;
    SPIN(f, fd, (read_tls(c, buf, sizeof(buf), &have), have >= strlen(msg)));
    assert_memory_equal(buf, msg, strlen(msg));
    assert_int_equal(accepted->lines, 3);
    /* Ciphertext was written: more bytes than the plaintext. */
    assert_true(tt_stream_bytes_written(accepted->s) > strlen(msg));
    assert_int_equal(tt_stream_queued(accepted->s), 0);
    SSL_free(c);
    close(fd);
    SPIN(f, fd, nclosed == 1);
}

static void test_tls_stream_a_line_split_over_records_is_kept_until_complete(void **state) {
    fix_t *f = *state;
    int fd;
    SSL *c = tls_dial(f, &fd);
    SSL_write(c, "hal", 3);
    for (int i = 0; i < 20; i++)
        tt_loop_run_nowait(f->loop);
    assert_int_equal(accepted->lines, 0);
    SSL_write(c, "f\n", 2);
    char buf[16];
    size_t have = 0;
    SPIN(f, fd, (read_tls(c, buf, sizeof(buf), &have), have >= 5));
    assert_memory_equal(buf, "half\n", 5);
    SSL_free(c);
    close(fd);
    SPIN(f, fd, nclosed == 1);
}

static void test_tls_stream_queue_bound_calls_on_overflow(void **state) {
    fix_t *f = *state;
    small_next = true;
    int fd;
    SSL *c = tls_dial(f, &fd);
    char big[80] = {0};
    assert_true(tt_stream_send_copy(accepted->s, big, 60));
    assert_false(tt_stream_send_copy(accepted->s, big, 60));
    SPIN(f, fd, nclosed == 1);
    SSL_free(c);
    close(fd);
}

/* Reads what is there; true once the peer closed. */
static bool recv_to_eof(int fd, char *buf, size_t cap, size_t *have) {
    ssize_t n = recv(fd, buf + *have, cap - *have, MSG_DONTWAIT);
    if (n > 0)
        *have += (size_t)n;
    return n == 0;
}

static void test_tls_stream_plain_bytes_get_the_plain_reply_and_a_close(void **state) {
    fix_t *f = *state;
    int fd = dial(f);
    SPIN(f, fd, accepted != NULL);
    assert_int_equal(send(fd, "GET / HTTP/1.1\r\n\r\n", 18, 0), 18);
    char buf[64];
    size_t have = 0;
    SPIN(f, fd, recv_to_eof(fd, buf, sizeof(buf), &have));
    assert_int_equal(have, strlen(PLAIN_REPLY));
    assert_memory_equal(buf, PLAIN_REPLY, have);
    SPIN(f, fd, nclosed == 1);
    close(fd);
}

static void test_tls_stream_stalled_handshake_is_dropped_at_its_deadline(void **state) {
    fix_t *f = *state;
    int fd = dial(f);
    SPIN(f, fd, accepted != NULL);
    assert_int_equal(send(fd, "\x16\x03\x01\x00", 4, 0), 4); /* a record header, then nothing */
    SPIN(f, fd, nclosed == 1);
    close(fd);
}

static void test_tls_stream_close_sends_close_notify(void **state) {
    fix_t *f = *state;
    int fd;
    SSL *c = tls_dial(f, &fd);
    /* A line answered: the server's side of the handshake is done. */
    SSL_write(c, "hi\n", 3);
    char buf[16];
    size_t have = 0;
    SPIN(f, fd, (read_tls(c, buf, sizeof(buf), &have), have >= 3));
    have = 0;
    tt_stream_send_copy(accepted->s, "bye\n", 4);
    tt_stream_close_after_flush(accepted->s, "done");
    SPIN(f, fd,
         (read_tls(c, buf, sizeof(buf), &have), SSL_get_shutdown(c) & SSL_RECEIVED_SHUTDOWN));
    assert_int_equal(have, 4);
    assert_memory_equal(buf, "bye\n", 4);
    SSL_free(c);
    close(fd);
    SPIN(f, fd, nclosed == 1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_tls_stream_lines_in_one_record_come_back_in_order,
                                        fix_setup, fix_teardown),
        cmocka_unit_test_setup_teardown(
            test_tls_stream_a_line_split_over_records_is_kept_until_complete, fix_setup,
            fix_teardown),
        cmocka_unit_test_setup_teardown(test_tls_stream_queue_bound_calls_on_overflow, fix_setup,
                                        fix_teardown),
        cmocka_unit_test_setup_teardown(test_tls_stream_plain_bytes_get_the_plain_reply_and_a_close,
                                        fix_setup, fix_teardown),
        cmocka_unit_test_setup_teardown(
            test_tls_stream_stalled_handshake_is_dropped_at_its_deadline, fix_setup, fix_teardown),
        cmocka_unit_test_setup_teardown(test_tls_stream_close_sends_close_notify, fix_setup,
                                        fix_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
