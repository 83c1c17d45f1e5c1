/* Loop-level tests of src/transport/stream.c: a real listener on
 * 127.0.0.1, clients on plain non-blocking sockets, and the loop stepped
 * with tt_loop_run_nowait until what a test waits for has happened (with a
 * bound on the steps, never a sleep). Endpoints are small handlers written
 * here: echo, pause-after-each-line, and one with a tiny queue bound. */
#include <errno.h>
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

#include "core/list.h"
#include "transport/transport.h"

typedef struct ep_s {
    int mode;         /* MODE_* */
    size_t reads;     /* on_read calls */
    size_t lines;     /* lines consumed (MODE_LINES) */
    size_t drains;    /* on_drain calls */
    size_t overflows; /* on_overflow calls */
    int closed;       /* on_close seen */
    int eof;          /* on_eof seen */
    tt_stream_t *s;
} ep_t;

enum { MODE_ECHO = 0, MODE_LINES, MODE_SMALL_QUEUE };

static ep_t *last_ep; /* the endpoint of the last accepted stream */
static int mode_next;

static size_t ep_read(tt_stream_t *s, uint8_t *data, size_t len) {
    ep_t *e = tt_stream_ext(s);
    e->reads++;
    if (e->mode == MODE_LINES) {
        /* One line at a time: answer it, then stop reading until the answer
         * is written (what HTTP does with requests). */
        uint8_t *nl = memchr(data, '\n', len);
        if (nl == NULL)
            return 0;
        size_t n = (size_t)(nl - data) + 1;
        tt_stream_send_copy(s, data, n);
        e->lines++;
        tt_stream_read_stop(s);
        return n;
    }
    tt_stream_send_copy(s, data, len);
    return len;
}

static void ep_drain(tt_stream_t *s) {
    ep_t *e = tt_stream_ext(s);
    e->drains++;
    if (e->mode == MODE_LINES)
        tt_stream_read_start(s);
}

static void ep_overflow(tt_stream_t *s, size_t want) {
    (void)want;
    ep_t *e = tt_stream_ext(s);
    e->overflows++;
    tt_stream_abort(s, "over");
}

static void ep_eof(tt_stream_t *s) {
    ep_t *e = tt_stream_ext(s);
    e->eof = 1;
    tt_stream_close_after_flush(s, "eof");
    tt_stream_set_hard_close(s);
}

static int closed_count;
static void ep_close(tt_stream_t *s) {
    ep_t *e = tt_stream_ext(s);
    e->closed = 1;
    closed_count++;
    if (last_ep == e)
        last_ep = NULL;
}

static const tt_stream_handler_t handler = {
    .on_read = ep_read,
    .on_eof = ep_eof,
    .on_drain = ep_drain,
    .on_overflow = ep_overflow,
    .on_close = ep_close,
};

static void on_accept(void *ctx, tt_stream_t *s) {
    (void)ctx;
    ep_t *e = tt_stream_ext(s);
    e->mode = mode_next;
    e->s = s;
    if (e->mode == MODE_SMALL_QUEUE)
        tt_stream_set_max_queue(s, 100);
    last_ep = e;
}

typedef struct fixture_s {
    tt_loop_t *loop;
    tt_listener_t *l;
    int port;
} fixture_t;

static int setup(void **state) {
    fixture_t *f = calloc(1, sizeof(*f));
    f->loop = tt_loop_new();
    tt_listener_config_t lc = {
        .host = "127.0.0.1",
        .port = 0,
        .ext_size = sizeof(ep_t),
        .max_queue = 1 << 20,
        .max_input = 4096,
        .handler = &handler,
        .on_accept = on_accept,
    };
    char err[256];
    assert_int_equal(tt_listen(f->loop, &lc, &f->l, err, sizeof(err)), 0);
    char addr[80];
    tt_listener_address(f->l, addr, sizeof(addr));
    f->port = atoi(strrchr(addr, ':') + 1);
    assert_true(f->port > 0);
    last_ep = NULL;
    closed_count = 0;
    mode_next = MODE_ECHO;
    *state = f;
    return 0;
}

static int teardown(void **state) {
    fixture_t *f = *state;
    tt_listener_close(f->l);
    for (tt_stream_t *s = tt_loop_first_stream(f->loop); s; s = tt_loop_next_stream(s))
        tt_stream_abort(s, "teardown");
    tt_loop_run(f->loop);
    tt_loop_free(f->loop);
    free(f);
    return 0;
}

static int client(const fixture_t *f) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)f->port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return fd;
}

/* Steps the loop (waiting on the client socket a little between steps, so
 * the kernel's loopback work gets done) until cond holds; bounded. */
#define STEP_UNTIL(f, sock_, cond)                                                                 \
    do {                                                                                           \
        for (int i_ = 0; i_ < 2000 && !(cond); i_++) {                                             \
            tt_loop_run_nowait((f)->loop);                                                         \
            struct pollfd p_ = {.fd = (sock_), .events = POLLIN};                                  \
            poll(&p_, 1, 1);                                                                       \
        }                                                                                          \
        assert_true(cond);                                                                         \
    } while (0)

/* Reads what is available (non-blocking) into buf at *have. */
static void read_some(int fd, char *buf, size_t cap, size_t *have) {
    ssize_t n = recv(fd, buf + *have, cap - *have, MSG_DONTWAIT);
    if (n > 0)
        *have += (size_t)n;
}

static void test_stream_echoes_and_counts_written_bytes(void **state) {
    fixture_t *f = *state;
    int fd = client(f);
    STEP_UNTIL(f, fd, last_ep != NULL);
    ep_t *e = last_ep;
    assert_int_equal(send(fd, "hello", 5, 0), 5);
    char buf[64];
    size_t have = 0;
    STEP_UNTIL(f, fd, (read_some(fd, buf, sizeof(buf), &have), have >= 5));
    assert_memory_equal(buf, "hello", 5);
    assert_int_equal(tt_stream_bytes_written(e->s), 5);
    assert_int_equal(tt_stream_queued(e->s), 0);
    assert_true(e->drains >= 1);
    /* The loop's counters for /metrics: what this one stream moved. */
    const tt_loop_stats_t *st = tt_loop_stats(f->loop);
    assert_int_equal(st->bytes_in, 5);
    assert_int_equal(st->bytes_out, 5);
    assert_int_equal(st->accepted[0], 1);
    assert_int_equal(st->accepted[1], 0);
    /* Every iteration after the first poll is timed, each in one bucket. */
    assert_true(st->iteration_us.count >= 1);
    assert_int_equal(tt_hist_cumulative(&st->iteration_us, st->iteration_us.n),
                     st->iteration_us.count);
    close(fd);
    STEP_UNTIL(f, fd, closed_count == 1);
}

static void test_stream_read_stop_holds_input_until_read_start(void **state) {
    fixture_t *f = *state;
    mode_next = MODE_LINES;
    int fd = client(f);
    STEP_UNTIL(f, fd, last_ep != NULL);
    ep_t *e = last_ep;
    /* Three lines in one send: each is answered only after the previous
     * answer was written, and all three come back, in order. */
    const char *msg = "one\ntwo\nthree\n";
    assert_int_equal(send(fd, msg, strlen(msg), 0), (ssize_t)strlen(msg));
    char buf[64];
    size_t have = 0;
    STEP_UNTIL(f, fd, (read_some(fd, buf, sizeof(buf), &have), have >= strlen(msg)));
    assert_memory_equal(buf, msg, strlen(msg));
    assert_int_equal(e->lines, 3);
    /* Paused after each line, resumed by each drain. */
    assert_true(e->drains >= 3);
    close(fd);
    STEP_UNTIL(f, fd, closed_count == 1);
}

static void test_stream_paused_reads_nothing(void **state) {
    fixture_t *f = *state;
    mode_next = MODE_ECHO;
    int fd = client(f);
    STEP_UNTIL(f, fd, last_ep != NULL);
    ep_t *e = last_ep;
    tt_stream_read_stop(e->s);
    assert_int_equal(send(fd, "abc", 3, 0), 3);
    for (int i = 0; i < 50; i++)
        tt_loop_run_nowait(f->loop);
    assert_int_equal(e->reads, 0);
    tt_stream_read_start(e->s);
    char buf[8];
    size_t have = 0;
    STEP_UNTIL(f, fd, (read_some(fd, buf, sizeof(buf), &have), have >= 3));
    assert_int_equal(e->reads, 1);
    close(fd);
    STEP_UNTIL(f, fd, closed_count == 1);
}

static void test_stream_over_max_queue_calls_on_overflow(void **state) {
    fixture_t *f = *state;
    mode_next = MODE_SMALL_QUEUE;
    int fd = client(f);
    STEP_UNTIL(f, fd, last_ep != NULL);
    ep_t *e = last_ep;
    tt_stream_t *s = e->s;
    char big[200] = {0};
    assert_true(tt_stream_send_copy(s, big, 60));
    assert_false(tt_stream_send_copy(s, big, 60)); /* 120 > 100 */
    assert_int_equal(e->overflows, 1);
    STEP_UNTIL(f, fd, closed_count == 1);
    close(fd);
}

static void test_stream_eof_keeps_queued_output(void **state) {
    fixture_t *f = *state;
    int fd = client(f);
    STEP_UNTIL(f, fd, last_ep != NULL);
    ep_t *e = last_ep;
    /* Output queued, then the peer half-closes in the same breath: the
     * queue still reaches it before the close. */
    static char payload[50000];
    memset(payload, 'x', sizeof(payload));
    tt_stream_send_static(e->s, (const uint8_t *)payload, sizeof(payload));
    shutdown(fd, SHUT_WR);
    static char buf[60000];
    size_t have = 0;
    STEP_UNTIL(f, fd, (read_some(fd, buf, sizeof(buf), &have), have >= sizeof(payload)));
    assert_int_equal(have, sizeof(payload));
    STEP_UNTIL(f, fd, closed_count == 1);
    close(fd);
}

/* Small pieces go out corked (copied into the loop's buffer, one send),
 * larger ones by reference: mixed, to a client that reads slowly (so that
 * writes come up short, at any byte of a piece), every byte arrives once,
 * in order. */
static void test_stream_small_and_large_pieces_arrive_in_order_through_short_writes(void **state) {
    fixture_t *f = *state;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    int small = 4096;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)f->port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    STEP_UNTIL(f, fd, last_ep != NULL);
    ep_t *e = last_ep;
    /* More than the socket buffers hold (tcp_wmem's 4 MiB at the most). */
    enum { PIECES = 60000, EVERY = 40, LARGE = 3000 };
    tt_stream_set_max_queue(e->s, 16u << 20);
    static uint8_t want[PIECES * 120 + (PIECES / EVERY) * LARGE];
    static uint8_t large[PIECES / EVERY][LARGE];
    size_t total = 0;
    for (int i = 0; i < PIECES; i++) {
        char piece[120];
        int n = snprintf(piece, sizeof(piece), "<%d:%.*s>", i, i % 90,
                         "0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz0"
                         "123456789abcdefghijklmn");
        assert_true(tt_stream_send_copy(e->s, piece, (size_t)n));
        memcpy(want + total, piece, (size_t)n);
        total += (size_t)n;
        if (i % EVERY == EVERY - 1) {
            uint8_t *l = large[i / EVERY];
            for (int k = 0; k < LARGE; k++)
                l[k] = (uint8_t)('A' + (i + k) % 26);
            assert_true(tt_stream_send_static(e->s, l, LARGE));
            memcpy(want + total, l, LARGE);
            total += LARGE;
        }
    }
    assert_int_equal(tt_stream_queued(e->s), total);
    /* One iteration writes what the socket takes: not all of it. */
    tt_loop_run_nowait(f->loop);
    assert_true(tt_stream_queued(e->s) > 0);
    assert_true(tt_stream_queued(e->s) < total);
    static uint8_t got[sizeof(want)];
    size_t have = 0;
    for (int i = 0; i < 2000000 && have < total; i++) {
        tt_loop_run_nowait(f->loop);
        ssize_t n = recv(fd, got + have, 65536, MSG_DONTWAIT);
        if (n > 0)
            have += (size_t)n;
        else {
            struct pollfd p = {.fd = fd, .events = POLLIN};
            poll(&p, 1, 1);
        }
    }
    assert_int_equal(have, total);
    assert_memory_equal(got, want, total);
    assert_int_equal(tt_stream_bytes_written(e->s), total);
    assert_int_equal(tt_stream_queued(e->s), 0);
    close(fd);
    STEP_UNTIL(f, fd, closed_count == 1);
}

static void test_stream_many_closes_unlink_in_any_order(void **state) {
    fixture_t *f = *state;
    enum { N = 64 };
    int fds[N];
    for (int i = 0; i < N; i++) {
        fds[i] = client(f);
        STEP_UNTIL(f, fds[i], tt_loop_stream_count(f->loop) == (size_t)i + 1);
    }
    /* Every stream has output pending (on the flush list) when it closes:
     * taking it off the list must not depend on its position. */
    for (tt_stream_t *s = tt_loop_first_stream(f->loop); s; s = tt_loop_next_stream(s))
        tt_stream_send_copy(s, "z", 1);
    int i = 0;
    for (tt_stream_t *s = tt_loop_first_stream(f->loop); s; s = tt_loop_next_stream(s), i++)
        if (i % 2 == 0)
            tt_stream_abort(s, "even");
    for (tt_stream_t *s = tt_loop_first_stream(f->loop); s; s = tt_loop_next_stream(s))
        tt_stream_abort(s, "rest");
    STEP_UNTIL(f, fds[0], closed_count == N);
    assert_int_equal(tt_loop_stream_count(f->loop), 0);
    for (i = 0; i < N; i++)
        close(fds[i]);
}

static void test_list_unlink_is_independent_of_position(void **state) {
    (void)state;
    tt_link_t list, links[5];
    tt_list_init(&list);
    memset(links, 0, sizeof(links));
    for (int i = 0; i < 5; i++)
        tt_list_insert_tail(&list, &links[i]);
    tt_link_unlink(&links[2]);
    tt_link_unlink(&links[2]); /* twice: a no-op */
    tt_link_unlink(&links[0]);
    tt_link_unlink(&links[4]);
    assert_ptr_equal(tt_list_first(&list), &links[1]);
    assert_ptr_equal(links[1].next, &links[3]);
    assert_ptr_equal(links[3].next, &list);
    tt_link_unlink(&links[1]);
    tt_link_unlink(&links[3]);
    assert_true(tt_list_is_empty(&list));
    assert_false(tt_link_is_linked(&links[3]));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_stream_echoes_and_counts_written_bytes, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_stream_read_stop_holds_input_until_read_start, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_stream_paused_reads_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stream_over_max_queue_calls_on_overflow, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_stream_eof_keeps_queued_output, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_stream_small_and_large_pieces_arrive_in_order_through_short_writes, setup,
            teardown),
        cmocka_unit_test_setup_teardown(test_stream_many_closes_unlink_in_any_order, setup,
                                        teardown),
        cmocka_unit_test(test_list_unlink_is_independent_of_position),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
