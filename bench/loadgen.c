/* loadgen — the benchmark load generator for tertulia and its peers.
 *
 * Drives a chat server that speaks the original's legacy protocol at /talking (login, room,
 * private) with many client connections, verifies every delivery (type, room or addressee,
 * sender, exact text, no duplicate, per-sender order), and prints one JSON line: throughput,
 * latency percentiles, loss, and the CPU of generator and server. A coordinator process forks
 * --procs workers; each is one libuv loop that owns whole rooms or whole pairs, so every check
 * is local to a worker. The coordinator alone reads the server's CPU and memory from /proc.
 * Sockets are driven with uv_poll and plain send/recvmsg rather than libuv streams, so that
 * each read carries the kernel's receive timestamp (SO_TIMESTAMPNS): latency is measured to
 * the moment a delivery reached the client's socket, not to the moment this single-core
 * generator got round to reading the 5,000th socket (that later time is reported as well).
 * It shares no code with the server it measures: its own WebSocket client codec (lg_codec.c),
 * texts (lg_text.c) and histogram (lg_hist.c). Every loop is bounded in time and in count.
 *
 * --tls speaks TLS (OpenSSL, a client SSL object per connection on two memory BIOs: the socket
 * reads are fed in, the ciphertext written out is sent with the same send/recvmsg path, so the
 * receive timestamps stay the kernel's). Every connection makes a full handshake: the client
 * keeps no session. --deflate offers permessage-deflate with no context takeover on either
 * side and inflates compressed messages with one raw inflate stream per worker (reset per
 * message), before the same byte-for-byte verification. */
#include "lg_codec.h"
#include "lg_hist.h"
#include "lg_text.h"

#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>
#include <zlib.h>

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

#define TEXT_MAX 4000             /* the server's default limit is 4,096 bytes of text */
#define SEND_MAX (TEXT_MAX + 256) /* a JSON request around the largest text */
#define RECV_MAX (1u << 20)       /* a server frame larger than this is an error */
#define READ_BUF (256u * 1024u)   /* one read buffer per worker, not per connection */
#define SYNC_EVERY_MS 100
/* --typing: a typist's typing start to its room comes this often (the server drops a start
 * less than 2 s after the last one to the same target, and ends one not refreshed in 6 s);
 * the timer that sends them wakes every TYPING_TICK_MS. */
#define TYPING_EVERY_MS 2500
#define TYPING_TICK_MS 50
#define CLOSE_WAIT_NS (2ull * 1000000000ull)
#define NS 1000000000.0
/* --deflate: inflated messages remembered per worker, keyed by their compressed bytes */
#define ZCACHE_SLOTS 1024
#define ZCACHE_CMAX 2048
#define ZCACHE_PMAX 8192

/* Exit codes: what the run says about the server. */
enum {
    EXIT_OK = 0,
    EXIT_INTEGRITY = 1, /* wrong, duplicated, reordered or skipped deliveries: a failed run */
    EXIT_SHORTFALL = 2, /* only explained loss: undelivered at the drain deadline, or lost on
                           connections the server closed: the server did not keep up */
    EXIT_SETUP = 3,     /* could not connect, handshake, log in or synchronise in time */
    EXIT_USAGE = 64,
};

#define LG_PORTS_MAX 8
#define LG_AUX_MAX 4

typedef enum { SC_FANOUT, SC_BIGROOM, SC_PRIVATE, SC_IDLE, SC_CONNECT, SC_CHURN } scenario_t;
static const char *const SC_NAMES[] = {"fanout", "bigroom", "private", "idle", "connect", "churn"};

typedef struct opts_s {
    scenario_t sc;
    const char *host, *path, *label, *nick_prefix, *tls_ca;
    bool tls, deflate, words, no_inflate_cache;
    bool v1;             /* offer tertulia.v1 and speak it (--v1, implied by --typing) */
    uint32_t typing_ppm; /* --typing: the typists' share of each room, in millionths */
    double typing;       /* the same as given */
    int port;            /* the first of ports */
    /* --port A,B,...: a cluster's nodes; a client's node is conn_port(), so every room and
     * every pair spans them */
    int ports[LG_PORTS_MAX];
    uint32_t nports;
    uint32_t clients, rooms, pairs, window, size, procs, src_ips, connect_window, cycles;
    double rate, duration, drain, setup_timeout, settle;
    double quiet; /* fanout/bigroom/private: wait this long idle after the run, then sample RSS */
    uint64_t max_messages;
    int server_pid; /* the first of server_pids: RSS is sampled from it */
    /* --server-pid P1,P2: the nodes; server CPU is their sum */
    int server_pids[LG_PORTS_MAX];
    uint32_t nserver_pids;
    /* --aux-pid NAME=PID: other processes the servers rely on (Redis), CPU reported apart */
    const char *aux_names[LG_AUX_MAX];
    int aux_pids[LG_AUX_MAX];
    uint32_t naux;
} opts_t;

/* What a worker reports to the coordinator, as raw bytes through a pipe (same binary). */
#define CHURN_MAX 32
typedef struct lg_result_s {
    char error[200];      /* first failure, human readable; empty when none */
    uint64_t established; /* connections that completed the handshake */
    uint64_t sent, delivered, sync_delivered;
    uint64_t skipped, dup, corrupt, misrouted, unexpected; /* integrity failures */
    uint64_t dropped_on_close, late;                       /* explained shortfall */
    uint64_t closed_by_server, connect_errors, connects, incomplete, close_timeouts;
    uint64_t id_regressions, write_blocked;
    /* bytes and messages received while the run phase lasted (sending and drain) */
    uint64_t rx_wire_run, rx_payload_run, rx_msgs_run, rx_compressed_run;
    uint64_t tls_handshakes, tls_resumed;
    uint64_t inflates, inflate_cache_hits;
    /* --v1: frames of other types than room, private and typing (welcome, joined,
     * member_joined, ...), read and set aside; --typing: typists, starts sent, the typing
     * frames those starts call for (the room's other live members at the time), and the
     * typing frames received (starts, stops) */
    uint64_t v1_other, v1_setup_errors, typists, typing_sent, typing_expected, typing_rx_start,
        typing_rx_stop;
    char tls_version[16], tls_cipher[48];
    uint32_t first_close_code;
    char close_reason[64];
    uint64_t t_go, t_end; /* CLOCK_REALTIME ns, the workers' common clock */
    double cpu_s;         /* this worker's user+system CPU between t_go and t_end */
    uint32_t churn_n;
    int64_t churn_open_kb[CHURN_MAX], churn_closed_kb[CHURN_MAX];
    /* server CPU (all threads) from the first close to the end of the settle:
     * what a mass disconnect costs it */
    double churn_close_cpu_s[CHURN_MAX];
    lg_hist_t lat;      /* ns: send to kernel receive; connect-to-confirmed for connect/churn */
    lg_hist_t lat_read; /* ns: send to the generator's read of it */
} lg_result_t;

typedef struct lg_worker_s lg_worker_t;
typedef struct lg_conn_s lg_conn_t;

/* One sender's sync messages: at most one in flight, answered by its own copy coming back
 * (proof the server has handled it); resent after a backoff that doubles, so a slow server is
 * never buried under syncs while it works through a backlog of logins. */
typedef struct lg_sync_s {
    bool inflight;
    uint64_t sent_at, backoff;
} lg_sync_t;

typedef struct lg_room_s {
    char name[24];
    uint32_t nlen, k;  /* k: the room's index among all rooms (its name is r<k>) */
    lg_conn_t *sender; /* the one member that sends (and sends the sync messages) */
    uint32_t members, live, synced;
    lg_sync_t sync;
} lg_room_t;

enum { CS_IDLE, CS_CONNECTING, CS_TLS, CS_HANDSHAKE, CS_OPEN, CS_CLOSING, CS_CLOSED };

struct lg_conn_s {
    uv_poll_t poll;
    int fd, events;
    lg_worker_t *w;
    lg_room_t *room;    /* room scenarios */
    lg_conn_t *partner; /* private */
    uint32_t gid;
    uint8_t state, nicklen;
    bool got_sync, got_partner_sync, we_closed, in_frag, frag_rsv1;
    bool typist; /* --typing: sends typing starts to its room during the run */
    uint16_t close_code;
    char nick[24];
    char key[LG_WS_KEY_LEN + 1];
    uint8_t *in; /* bytes of a partial frame (or handshake) carried to the next read */
    uint32_t in_len, in_cap;
    uint8_t *frag; /* a fragmented message being assembled */
    uint32_t frag_len, frag_cap;
    uint8_t *out; /* bytes the socket did not take yet, in order */
    uint32_t out_len, out_cap;
    uint64_t expect[2]; /* next sequence awaited: [0] the room's sender or self, [1] partner */
    uint64_t sent;      /* sequence of the last message this connection sent */
    uint32_t inflight;
    uint64_t t_start, last_id;
    uint64_t typing_next; /* --typing: when this typist's next start is due */
    lg_sync_t sync;       /* private: this side's syncs to its partner */
    SSL *ssl;             /* --tls: owns its two memory BIOs */
    BIO *rbio, *wbio;
};

typedef enum { PH_SETUP, PH_READY, PH_RUN, PH_DONE, PH_CLOSING } phase_t;
typedef enum { CH_OPENING, CH_CLOSING, CH_SETTLE } churn_state_t;

struct lg_worker_s {
    uv_loop_t loop;
    const opts_t *o;
    int index, ctl_in, ctl_out;
    uv_pipe_t ctl;
    uv_timer_t tick;
    uv_timer_t typing; /* --typing: sends the typists' starts while the run sends */
    lg_conn_t **typists;
    uint32_t ntypists;
    struct sockaddr_in dst[LG_PORTS_MAX];
    char hostport[LG_PORTS_MAX][64];
    lg_conn_t *conns;
    uint32_t nconns, next_connect, connecting, handles_open;
    lg_room_t *rooms;
    uint32_t nrooms;
    phase_t phase;
    uint64_t rng;
    uint64_t max_msgs;
    uint64_t t_setup_deadline, t_stop, t_run_deadline, t_close_started;
    bool stopped;
    uint64_t outstanding; /* deliveries still awaited */
    uint64_t bigroom_next, bigroom_t0;
    churn_state_t churn;
    uint64_t churn_t;
    struct rusage ru_go;
    char ctlbuf[16];
    lg_result_t r;
    SSL_CTX *tls;  /* --tls */
    z_stream z;    /* --deflate: one raw inflate stream, reset per message */
    uint8_t *zbuf; /* --deflate: what a message inflates to (RECV_MAX) */
    /* --deflate: the server compresses a room message once for all its members, so the same
     * compressed bytes arrive up to a room's size times; a message whose compressed bytes equal
     * a remembered one's (memcmp) takes the remembered inflation, which inflate, a pure
     * function of its input here (no context takeover), would make again. */
    struct {
        uint32_t clen, plen;
        uint8_t *c, *p;
    } zc[ZCACHE_SLOTS];
    uint8_t rbuf[READ_BUF];
    uint8_t pbuf[READ_BUF]; /* --tls: the plaintext of one read */
};

/* --- small helpers ---------------------------------------------------------------------- */

/* Workers keep time on CLOCK_REALTIME: the kernel's receive timestamps use it, and it is the
 * same in every process, so a text stamped by one worker can be timed by another. */
static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void die(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "loadgen: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    exit(EXIT_USAGE);
}

static void *xmalloc(size_t n) {
    void *p = malloc(n ? n : 1);
    if (!p) {
        fprintf(stderr, "loadgen: out of memory\n");
        abort();
    }
    return p;
}

static void note_error(lg_worker_t *w, const char *fmt, ...) {
    if (w->r.error[0])
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(w->r.error, sizeof w->r.error, fmt, ap);
    va_end(ap);
}

static double rusage_s(const struct rusage *ru) {
    return (double)ru->ru_utime.tv_sec + (double)ru->ru_utime.tv_usec / 1e6 +
           (double)ru->ru_stime.tv_sec + (double)ru->ru_stime.tv_usec / 1e6;
}

static size_t json_msg(char *out, const char *type, const char *to, size_t tol, const char *text,
                       size_t tl) {
    size_t n = 0;
    n += (size_t)sprintf(out, "{\"type\":\"%s\",\"to\":\"", type);
    memcpy(out + n, to, tol);
    n += tol;
    memcpy(out + n, "\",\"message\":{\"text\":\"", 21);
    n += 21;
    memcpy(out + n, text, tl);
    n += tl;
    memcpy(out + n, "\"}}", 3);
    return n + 3;
}

/* --- sending ---------------------------------------------------------------------------- */

static void on_poll(uv_poll_t *h, int status, int events);

static void conn_poll_set(lg_conn_t *c, int events) {
    if (c->events != events && c->state != CS_CLOSED) {
        c->events = events;
        uv_poll_start(&c->poll, events, on_poll);
    }
}

static void out_append(lg_conn_t *c, const uint8_t *p, size_t n) {
    if (c->out_len + n > c->out_cap) {
        size_t cap = c->out_cap ? c->out_cap : 4096;
        while (cap < c->out_len + n)
            cap *= 2;
        uint8_t *nb = realloc(c->out, cap);
        if (!nb)
            abort();
        c->out = nb;
        c->out_cap = (uint32_t)cap;
    }
    memcpy(c->out + c->out_len, p, n);
    c->out_len += (uint32_t)n;
}

/* Writes now if the socket takes it all; keeps the rest, in order behind anything already
 * waiting, for the next writeable event. A failed send shows up on the next poll event. */
static void raw_write(lg_conn_t *c, const uint8_t *data, size_t len) {
    if (c->state < CS_TLS || c->state >= CS_CLOSED || !len)
        return;
    size_t n = 0;
    if (!c->out_len) {
        ssize_t k = send(c->fd, data, len, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (k == (ssize_t)len)
            return;
        n = k > 0 ? (size_t)k : 0;
    }
    c->w->r.write_blocked++;
    out_append(c, data + n, len - n);
    conn_poll_set(c, UV_READABLE | UV_WRITABLE);
}

/* Sends the ciphertext OpenSSL has written to the connection's memory BIO. */
static void tls_flush(lg_conn_t *c) {
    char *p = NULL;
    long n = BIO_get_mem_data(c->wbio, &p);
    if (n > 0) {
        raw_write(c, (const uint8_t *)p, (size_t)n);
        (void)BIO_reset(c->wbio);
    }
}

static const char *tls_err(void) {
    static char buf[160];
    unsigned long e = ERR_get_error();
    if (!e)
        return "TLS error";
    ERR_error_string_n(e, buf, sizeof buf);
    ERR_clear_error();
    return buf;
}

static void conn_write(lg_conn_t *c, const uint8_t *data, size_t len) {
    if (c->state < CS_HANDSHAKE || c->state >= CS_CLOSED)
        return;
    if (!c->ssl) {
        raw_write(c, data, len);
        return;
    }
    /* A memory BIO takes everything: SSL_write either writes it all or fails. */
    if (SSL_write(c->ssl, data, (int)len) != (int)len)
        note_error(c->w, "%s: SSL_write: %s", c->nick, tls_err());
    tls_flush(c);
}

static void conn_send_frame(lg_conn_t *c, uint8_t op, const void *payload, size_t len) {
    uint8_t frame[SEND_MAX + LG_WS_CLIENT_HEADER_MAX];
    uint32_t mask = (uint32_t)(lg_rand_next(&c->w->rng) >> 32);
    size_t fl = lg_ws_frame_encode(frame, op, payload, len, mask);
    conn_write(c, frame, fl);
}

static void conn_send_text(lg_conn_t *c, const char *type, const char *to, size_t tol,
                           const char *text, size_t tl) {
    char json[SEND_MAX];
    size_t n = json_msg(json, type, to, tol, text, tl);
    conn_send_frame(c, LG_OP_TEXT, json, n);
}

static void conn_send_login(lg_conn_t *c, const char *room, size_t rl) {
    char json[256];
    int n =
        snprintf(json, sizeof json, "{\"type\":\"login\",\"nickname\":\"%.*s\",\"room\":\"%.*s\"}",
                 (int)c->nicklen, c->nick, (int)rl, room);
    conn_send_frame(c, LG_OP_TEXT, json, (size_t)n);
}

static void conn_send_close(lg_conn_t *c, uint16_t code) {
    uint8_t p[2] = {(uint8_t)(code >> 8), (uint8_t)code};
    conn_send_frame(c, LG_OP_CLOSE, p, 2);
}

/* --typing: whether client gid types. Within each room the members are gid = k + j * rooms
 * (j = 0 is the sender); member j types when the running count floor(j' * share) steps up
 * at j' = j + 1, which spreads floor(members * share) typists evenly over the room, the
 * sender (j = 0) only at a share of 1. Integer arithmetic, so every worker agrees. */
static bool gid_is_typist(const opts_t *o, uint32_t gid) {
    if (!o->typing_ppm || !o->rooms)
        return false;
    uint64_t j = gid / o->rooms;
    return (j + 1) * o->typing_ppm / 1000000u > j * o->typing_ppm / 1000000u;
}

static void conn_send_typing(lg_conn_t *c) {
    char json[96];
    int n = snprintf(json, sizeof json, "{\"type\":\"typing\",\"to\":\"%.*s\",\"state\":\"start\"}",
                     (int)c->room->nlen, c->room->name);
    conn_send_frame(c, LG_OP_TEXT, json, (size_t)n);
    c->w->r.typing_sent++;
    /* the room's other members in this worker (a worker owns whole rooms) */
    c->w->r.typing_expected += c->room->live ? c->room->live - 1 : 0;
}

/* Sends chat message number ++c->sent, stamped t (the intended send time in open loop). */
static void conn_send_chat(lg_conn_t *c, uint64_t t) {
    lg_worker_t *w = c->w;
    char text[TEXT_MAX + 64];
    uint64_t seq = ++c->sent;
    size_t tl = lg_text_build(text, c->gid, seq, t, w->o->size);
    w->r.sent++;
    if (c->partner) {
        conn_send_text(c, "private", c->partner->nick, c->partner->nicklen, text, tl);
        w->outstanding += 1u + (c->partner->state == CS_OPEN);
    } else {
        conn_send_text(c, "room", c->room->name, c->room->nlen, text, tl);
        w->outstanding += c->room->live;
    }
    c->inflight++;
}

/* --- phases ----------------------------------------------------------------------------- */

static void worker_finish(lg_worker_t *w, uint64_t now);

static bool may_send(lg_worker_t *w, uint64_t now) {
    if (w->stopped)
        return false;
    if (w->r.sent >= w->max_msgs || now >= w->t_run_deadline) {
        w->stopped = true;
        w->t_stop = now;
        return false;
    }
    return true;
}

/* Closed loop: keeps the window of own messages in flight full. */
static void sender_fill(lg_conn_t *c, uint64_t now) {
    while (c->state == CS_OPEN && c->inflight < c->w->o->window && may_send(c->w, now))
        conn_send_chat(c, now);
}

static void maybe_finish(lg_worker_t *w, uint64_t now) {
    if (w->phase != PH_RUN || !w->stopped)
        return;
    if (w->outstanding == 0 || now >= w->t_stop + (uint64_t)(w->o->drain * NS))
        worker_finish(w, now);
}

static void ctl_send(lg_worker_t *w, char tag, bool with_result) {
    char t = tag;
    if (write(w->ctl_out, &t, 1) != 1)
        _exit(EXIT_SETUP);
    if (with_result) {
        const char *p = (const char *)&w->r;
        size_t left = sizeof w->r;
        while (left) {
            ssize_t n = write(w->ctl_out, p, left);
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0)
                _exit(EXIT_SETUP);
            p += n;
            left -= (size_t)n;
        }
    }
}

static void setup_fail(lg_worker_t *w, const char *fmt, ...) {
    if (w->phase != PH_SETUP)
        return;
    if (!w->r.error[0]) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(w->r.error, sizeof w->r.error, fmt, ap);
        va_end(ap);
    }
    w->phase = PH_DONE;
    ctl_send(w, 'F', true);
}

/* What a receiver will now never get: the rest of each stream it follows. */
static uint64_t conn_shortfall(const lg_conn_t *c) {
    uint64_t s = 0;
    if (c->partner) {
        s += c->sent - (c->expect[0] - 1);
        s += c->partner->sent - (c->expect[1] - 1);
    } else if (c->room && c->room->sender) {
        s += c->room->sender->sent - (c->expect[0] - 1);
    }
    return s;
}

static void on_handle_closed(uv_handle_t *h) {
    lg_conn_t *c = h->data;
    close(c->fd); /* the poll handle is gone; the socket is ours to close */
    c->fd = -1;
    c->w->handles_open--;
}

static void conn_close_handle(lg_conn_t *c) {
    if (c->state == CS_CLOSED || c->state == CS_IDLE)
        return;
    bool was_open = c->state == CS_OPEN || c->state == CS_CLOSING;
    c->state = CS_CLOSED;
    uv_close((uv_handle_t *)&c->poll, on_handle_closed);
    if (c->ssl)
        SSL_free(c->ssl); /* and its BIOs */
    c->ssl = NULL;
    c->rbio = c->wbio = NULL;
    free(c->in);
    free(c->frag);
    free(c->out);
    c->in = c->frag = c->out = NULL;
    c->in_len = c->in_cap = c->frag_len = c->frag_cap = c->out_len = c->out_cap = 0;
    if (c->room && was_open && c->room->live)
        c->room->live--;
}

/* The connection ended without our asking (EOF, reset, or the server's close frame). */
static void conn_lost(lg_conn_t *c, const char *why) {
    lg_worker_t *w = c->w;
    if (c->state == CS_CLOSED)
        return;
    if (c->we_closed || w->phase >= PH_CLOSING) {
        conn_close_handle(c);
        return;
    }
    uint16_t code = c->close_code ? c->close_code : 1006;
    bool counted = c->state == CS_OPEN || c->state == CS_CLOSING;
    if (w->o->sc == SC_CONNECT || w->o->sc == SC_CHURN) {
        if (c->state != CS_OPEN || !c->got_sync) {
            w->r.connect_errors++;
            if (w->connecting)
                w->connecting--;
            note_error(w, "connection u%u failed before its login was confirmed: %s", c->gid, why);
        } else {
            w->r.closed_by_server++;
        }
        conn_close_handle(c);
        return;
    }
    if (w->phase == PH_SETUP) {
        conn_close_handle(c);
        setup_fail(w, "connection %s lost during setup (%s, close code %u)", c->nick, why, code);
        return;
    }
    if (counted) {
        w->r.closed_by_server++;
        if (!w->r.first_close_code)
            w->r.first_close_code = code;
        uint64_t s = conn_shortfall(c);
        w->r.dropped_on_close += s;
        w->outstanding = w->outstanding > s ? w->outstanding - s : 0;
    }
    conn_close_handle(c);
    maybe_finish(w, now_ns());
}

/* --- receiving and verifying ------------------------------------------------------------ */

static void worker_ready_check(lg_worker_t *w);
static void pump_connects(lg_worker_t *w);

/* Times of one read: when the kernel received the bytes, and when the generator read them. */
typedef struct {
    uint64_t rx, rd;
} rx_times_t;

static void record_latency(lg_worker_t *w, uint64_t t, const rx_times_t *tm) {
    lg_hist_add(&w->r.lat, tm->rx > t ? tm->rx - t : 0);
    lg_hist_add(&w->r.lat_read, tm->rd > t ? tm->rd - t : 0);
}

/* A delivery of chat message seq, stamped t, from sender to c on stream slot. */
static void account(lg_worker_t *w, lg_conn_t *c, lg_conn_t *sender, int slot, uint64_t seq,
                    uint64_t t, const rx_times_t *tm) {
    uint64_t want = c->expect[slot];
    uint64_t now = tm->rd;
    if (seq == want) {
        c->expect[slot] = seq + 1;
        w->r.delivered++;
        if (w->outstanding)
            w->outstanding--;
        record_latency(w, t, tm);
    } else if (seq > want) {
        uint64_t gap = seq - want;
        w->r.skipped += gap;
        note_error(w, "%s got message %" PRIu64 " from %s while awaiting %" PRIu64 " (skipped)",
                   c->nick, seq, sender->nick, want);
        c->expect[slot] = seq + 1;
        w->r.delivered++;
        w->outstanding = w->outstanding > gap + 1 ? w->outstanding - gap - 1 : 0;
        record_latency(w, t, tm);
        if (sender == c)
            c->inflight = c->inflight > gap ? c->inflight - (uint32_t)gap : 0;
    } else {
        w->r.dup++;
        note_error(
            w, "%s got message %" PRIu64 " from %s again or out of order (awaiting %" PRIu64 ")",
            c->nick, seq, sender->nick, want);
        return;
    }
    if (sender == c && seq <= c->sent) {
        if (c->inflight)
            c->inflight--;
        if (w->o->sc != SC_BIGROOM)
            sender_fill(c, now);
    }
}

static void on_sync(lg_worker_t *w, lg_conn_t *c, const lg_msg_t *m, bool is_private) {
    const char *s = m->text.p + 1, *end = m->text.p + m->text.n;
    uint64_t gid, k;
    if (!lg_dec_parse(&s, end, &gid) || s >= end || *s++ != '-' || !lg_dec_parse(&s, end, &k) ||
        s != end) {
        w->r.corrupt++;
        note_error(w, "%s got a corrupt sync text", c->nick);
        return;
    }
    w->r.sync_delivered++;
    if (is_private) {
        lg_conn_t *p = c->partner;
        if (!p) {
            w->r.misrouted++;
            return;
        }
        bool from_partner = gid == p->gid && lg_str_is(&m->from, p->nick, p->nicklen) &&
                            lg_str_is(&m->to, c->nick, c->nicklen);
        bool echo = gid == c->gid && lg_str_is(&m->from, c->nick, c->nicklen) &&
                    lg_str_is(&m->to, p->nick, p->nicklen);
        if (!from_partner && !echo) {
            w->r.misrouted++;
            note_error(w, "%s got a private sync not from or to its partner", c->nick);
            return;
        }
        if (echo)
            c->sync.inflight = false;
        if (from_partner && !c->got_partner_sync) {
            c->got_partner_sync = true;
            worker_ready_check(w);
        }
        return;
    }
    lg_room_t *r = c->room;
    if (!r || !r->sender || gid != r->sender->gid ||
        !lg_str_is(&m->from, r->sender->nick, r->sender->nicklen) ||
        !lg_str_is(&m->to, r->name, r->nlen)) {
        w->r.misrouted++;
        note_error(w, "%s got a room sync from the wrong sender or room", c->nick);
        return;
    }
    if (c == r->sender)
        r->sync.inflight = false;
    if (!c->got_sync) {
        c->got_sync = true;
        r->synced++;
        worker_ready_check(w);
    }
}

static void on_confirm(lg_worker_t *w, lg_conn_t *c, const lg_msg_t *m, uint64_t now) {
    /* connect and churn time the whole setup, connect() to confirmed, as the client sees it */
    char room[24];
    int rl = snprintf(room, sizeof room, "c%u", c->gid);
    if (!lg_str_is(&m->type, "room", 4) || !lg_str_is(&m->from, c->nick, c->nicklen) ||
        !lg_str_is(&m->to, room, (size_t)rl) || !lg_str_is(&m->text, room, (size_t)rl)) {
        w->r.misrouted++;
        note_error(w, "%s got a wrong login confirmation", c->nick);
        return;
    }
    if (c->got_sync) {
        w->r.dup++;
        note_error(w, "%s got its login confirmation twice", c->nick);
        return;
    }
    c->got_sync = true;
    w->r.connects++;
    lg_hist_add(&w->r.lat, now - c->t_start);
    if (w->connecting)
        w->connecting--;
    pump_connects(w);
}

/* --typing: a typing frame must name the receiver's room, a typist of that room other than
 * the receiver, and start or stop. */
static void on_typing(lg_worker_t *w, lg_conn_t *c, const lg_msg_t *m) {
    const opts_t *o = w->o;
    lg_room_t *r = c->room;
    bool start = lg_str_is(&m->state, "start", 5), stop = lg_str_is(&m->state, "stop", 4);
    size_t pl = strlen(o->nick_prefix);
    uint64_t gid = 0;
    bool nick_ok = false;
    if (m->nickname.present && !m->nickname.escaped && m->nickname.n > pl &&
        memcmp(m->nickname.p, o->nick_prefix, pl) == 0) {
        const char *s = m->nickname.p + pl, *end = m->nickname.p + m->nickname.n;
        nick_ok = lg_dec_parse(&s, end, &gid) && s == end && gid < o->clients;
    }
    if (!r || !lg_str_is(&m->room, r->name, r->nlen) || (!start && !stop) || !nick_ok ||
        gid % o->rooms != r->k || !gid_is_typist(o, (uint32_t)gid) || gid == c->gid) {
        w->r.misrouted++;
        note_error(w,
                   "%s got a typing frame not from a typist of its room: room %.*s, nickname %.*s",
                   c->nick, (int)m->room.n, m->room.p, (int)m->nickname.n, m->nickname.p);
        return;
    }
    if (start)
        w->r.typing_rx_start++;
    else
        w->r.typing_rx_stop++;
}

/* --v1: what a tertulia.v1 client gets besides room and private messages. Typing frames are
 * checked and counted (never as deliveries); an error is a fault once the run has begun (the
 * generator sends nothing the server should refuse), and counted apart during setup;
 * everything else (welcome, joined, member_joined, member_left,
 * status, ...) is counted and set aside. */
static void on_v1_frame(lg_worker_t *w, lg_conn_t *c, const lg_msg_t *m) {
    if (lg_str_is(&m->type, "typing", 6) && w->o->typing_ppm && c->room) {
        on_typing(w, c, m);
        return;
    }
    if (lg_str_is(&m->type, "error", 5) && w->phase == PH_SETUP) {
        /* a sync sent before its addressee's login was handled: a v1 client hears
         * no_such_user where a legacy one hears nothing; the sync is sent again */
        w->r.v1_setup_errors++;
        return;
    }
    if (lg_str_is(&m->type, "typing", 6) || lg_str_is(&m->type, "error", 5)) {
        w->r.unexpected++;
        note_error(w, "%s got a frame of type %.*s", c->nick, (int)m->type.n, m->type.p);
        return;
    }
    w->r.v1_other++;
}

static void on_message(lg_conn_t *c, const uint8_t *p, size_t n, bool compressed,
                       const rx_times_t *tm) {
    lg_worker_t *w = c->w;
    lg_msg_t m;
    if (w->phase == PH_RUN) {
        w->r.rx_msgs_run++;
        w->r.rx_payload_run += n;
        w->r.rx_compressed_run += compressed;
    }
    if (lg_msg_scan((const char *)p, n, &m) < 0 || !m.type.present) {
        w->r.corrupt++;
        note_error(w, "%s got a frame that is not a JSON object with a type: %.*s", c->nick,
                   (int)(n < 80 ? n : 80), (const char *)p);
        return;
    }
    bool is_room = lg_str_is(&m.type, "room", 4), is_priv = lg_str_is(&m.type, "private", 7);
    if (!is_room && !is_priv && w->o->v1) {
        on_v1_frame(w, c, &m);
        return;
    }
    if (!is_room && !is_priv) {
        /* A legacy client must receive only room and private frames (PROTOCOL.md). */
        w->r.unexpected++;
        note_error(w, "%s (legacy client) got a frame of type %.*s", c->nick, (int)m.type.n,
                   m.type.p);
        return;
    }
    if (!m.text.present || m.text.escaped || !m.from.present || !m.to.present || m.text.n < 2) {
        w->r.corrupt++;
        note_error(w, "%s got a %.*s frame without from, to or plain message.text", c->nick,
                   (int)m.type.n, m.type.p);
        return;
    }
    if (m.has_id) {
        if (m.id <= c->last_id)
            w->r.id_regressions++;
        c->last_id = m.id;
    }
    char kind = m.text.p[0];
    if (kind == 's') {
        on_sync(w, c, &m, is_priv);
        return;
    }
    if (kind == 'c') {
        on_confirm(w, c, &m, tm->rd);
        return;
    }
    uint64_t gid, seq, t;
    if (!lg_text_check(m.text.p, m.text.n, w->o->size, &gid, &seq, &t)) {
        w->r.corrupt++;
        note_error(w, "%s got a text that is not one we sent: %.*s", c->nick,
                   (int)(m.text.n < 60 ? m.text.n : 60), m.text.p);
        return;
    }
    if (is_priv) {
        lg_conn_t *pt = c->partner;
        if (pt && gid == pt->gid && lg_str_is(&m.from, pt->nick, pt->nicklen) &&
            lg_str_is(&m.to, c->nick, c->nicklen) && seq <= pt->sent) {
            account(w, c, pt, 1, seq, t, tm);
            return;
        }
        if (pt && gid == c->gid && lg_str_is(&m.from, c->nick, c->nicklen) &&
            lg_str_is(&m.to, pt->nick, pt->nicklen) && seq <= c->sent) {
            account(w, c, c, 0, seq, t, tm);
            return;
        }
    } else {
        lg_room_t *r = c->room;
        lg_conn_t *s = r ? r->sender : NULL;
        if (s && gid == s->gid && lg_str_is(&m.from, s->nick, s->nicklen) &&
            lg_str_is(&m.to, r->name, r->nlen) && seq <= s->sent) {
            account(w, c, s, 0, seq, t, tm);
            return;
        }
    }
    w->r.misrouted++;
    note_error(w, "%s got a %.*s message from %.*s to %.*s that was not meant for it", c->nick,
               (int)m.type.n, m.type.p, (int)m.from.n, m.from.p, (int)m.to.n, m.to.p);
}

static void frag_append(lg_conn_t *c, const uint8_t *p, size_t n) {
    if (c->frag_len + n > c->frag_cap) {
        size_t cap = c->frag_cap ? c->frag_cap : 4096;
        while (cap < c->frag_len + n)
            cap *= 2;
        uint8_t *nb = realloc(c->frag, cap);
        if (!nb)
            abort();
        c->frag = nb;
        c->frag_cap = (uint32_t)cap;
    }
    memcpy(c->frag + c->frag_len, p, n);
    c->frag_len += (uint32_t)n;
}

static void on_established(lg_conn_t *c);

/* Delivers a whole message: inflated first when it came compressed (RSV1). False when it did
 * not inflate; the connection is then lost. */
static bool deliver(lg_conn_t *c, const uint8_t *p, size_t n, bool compressed,
                    const rx_times_t *tm) {
    lg_worker_t *w = c->w;
    if (!compressed) {
        on_message(c, p, n, false, tm);
        return true;
    }
    size_t out = 0;
    const char *err = NULL;
    unsigned slot = ZCACHE_SLOTS;
    if (!w->o->no_inflate_cache && n >= 16 && n <= ZCACHE_CMAX) {
        uint64_t a, b;
        memcpy(&a, p, 8);
        memcpy(&b, p + n - 8, 8);
        uint64_t h = (a ^ (b * 0x9E3779B97F4A7C15ULL) ^ n) * 0xff51afd7ed558ccdULL;
        slot = (unsigned)(h >> 54); /* 1024 slots */
        if (w->zc[slot].clen == n && memcmp(w->zc[slot].c, p, n) == 0) {
            w->r.inflate_cache_hits++;
            on_message(c, w->zc[slot].p, w->zc[slot].plen, true, tm);
            return true;
        }
    }
    w->r.inflates++;
    if (lg_pmd_inflate(&w->z, p, n, w->zbuf, RECV_MAX, &out, &err) < 0) {
        w->r.corrupt++;
        note_error(w, "%s: %s", c->nick, err);
        conn_lost(c, err);
        return false;
    }
    if (slot < ZCACHE_SLOTS && out <= ZCACHE_PMAX) {
        if (!w->zc[slot].c) {
            w->zc[slot].c = xmalloc(ZCACHE_CMAX);
            w->zc[slot].p = xmalloc(ZCACHE_PMAX);
        }
        memcpy(w->zc[slot].c, p, n);
        memcpy(w->zc[slot].p, w->zbuf, out);
        w->zc[slot].clen = (uint32_t)n;
        w->zc[slot].plen = (uint32_t)out;
    }
    on_message(c, w->zbuf, out, true, tm);
    return true;
}

/* Consumes what it can of data: the handshake response, then whole frames. Returns the
 * number of bytes used; stops early when the connection closes. */
static size_t conn_consume(lg_conn_t *c, const uint8_t *data, size_t len, const rx_times_t *tm) {
    lg_worker_t *w = c->w;
    size_t off = 0;
    if (c->state == CS_HANDSHAKE) {
        const char *err = NULL;
        long h = lg_ws_response_check((const char *)data, len, c->key, w->o->deflate,
                                      w->o->v1 ? LG_V1_PROTOCOL : NULL, &err);
        if (h == LG_INCOMPLETE)
            return 0;
        if (h < 0) {
            /* A refusal (a 503 at the connection limit, say) is a failed connection, counted
             * by conn_lost, not a wrong delivery. */
            note_error(w, "%s: %s", c->nick, err);
            conn_lost(c, err);
            return len;
        }
        off = (size_t)h;
        on_established(c);
    }
    while (off < len && (c->state == CS_OPEN || c->state == CS_CLOSING)) {
        lg_frame_t f;
        const char *err = NULL;
        long used = lg_ws_frame_decode(data + off, len - off, RECV_MAX, w->o->deflate, &f, &err);
        if (used == LG_INCOMPLETE)
            break;
        if (used < 0) {
            w->r.corrupt++;
            note_error(w, "%s: %s", c->nick, err);
            conn_lost(c, err);
            return len;
        }
        off += (size_t)used;
        switch (f.opcode) {
        case LG_OP_TEXT:
            if (c->in_frag) {
                w->r.corrupt++;
                note_error(w, "%s: a new text frame inside a fragmented message", c->nick);
                break;
            }
            if (f.fin) {
                if (!deliver(c, f.payload, f.len, f.rsv1, tm))
                    return len;
            } else {
                c->in_frag = true;
                c->frag_rsv1 = f.rsv1;
                c->frag_len = 0;
                frag_append(c, f.payload, f.len);
            }
            break;
        case LG_OP_CONT:
            if (!c->in_frag) {
                w->r.corrupt++;
                note_error(w, "%s: a continuation frame with nothing to continue", c->nick);
                break;
            }
            if (c->frag_len + f.len > RECV_MAX) {
                w->r.corrupt++;
                note_error(w, "%s: fragmented message over %u bytes", c->nick, RECV_MAX);
                conn_lost(c, "message too big");
                return len;
            }
            frag_append(c, f.payload, f.len);
            if (f.fin) {
                c->in_frag = false;
                if (!deliver(c, c->frag, c->frag_len, c->frag_rsv1, tm))
                    return len;
            }
            break;
        case LG_OP_BINARY:
            w->r.unexpected++;
            note_error(w, "%s got a binary frame", c->nick);
            break;
        case LG_OP_PING:
            conn_send_frame(c, LG_OP_PONG, f.payload, f.len);
            break;
        case LG_OP_PONG:
            break;
        case LG_OP_CLOSE: {
            uint16_t code = f.len >= 2 ? (uint16_t)((f.payload[0] << 8) | f.payload[1]) : 1005;
            c->close_code = code;
            if (!c->we_closed && w->phase < PH_CLOSING) {
                if (!w->r.close_reason[0] && f.len > 2)
                    snprintf(w->r.close_reason, sizeof w->r.close_reason, "%.*s", (int)(f.len - 2),
                             (const char *)f.payload + 2);
                conn_send_close(c, code == 1005 ? 1000 : code);
                conn_lost(c, "server sent a close frame");
                return len;
            }
            c->state = CS_CLOSING; /* our close was answered; the server closes TCP next */
            break;
        }
        }
    }
    return off;
}

static void in_append(lg_conn_t *c, const uint8_t *p, size_t n) {
    if (c->in_len + n > c->in_cap) {
        size_t cap = c->in_cap ? c->in_cap : 1024;
        while (cap < c->in_len + n)
            cap *= 2;
        uint8_t *nb = realloc(c->in, cap);
        if (!nb)
            abort();
        c->in = nb;
        c->in_cap = (uint32_t)cap;
    }
    memcpy(c->in + c->in_len, p, n);
    c->in_len += (uint32_t)n;
}

/* Feeds one read's bytes to the connection. The read buffer is the worker's; only the
 * unconsumed tail of a partial frame is copied to the connection, so idle connections cost no
 * buffer at all. */
static void conn_input(lg_conn_t *c, const uint8_t *data, size_t len, const rx_times_t *tm) {
    if (c->in_len) {
        if (c->in_len + len > RECV_MAX + 64) {
            conn_lost(c, "input over the frame limit");
            return;
        }
        in_append(c, data, len);
        data = c->in;
        len = c->in_len;
    }
    size_t used = conn_consume(c, data, len, tm);
    if (c->state == CS_CLOSED)
        return;
    size_t left = len - used;
    if (data == c->in) {
        memmove(c->in, c->in + used, left);
        c->in_len = (uint32_t)left;
    } else if (left) {
        in_append(c, data + used, left);
    }
}

static void ws_request_send(lg_conn_t *c);

/* --tls: the ciphertext of one read is in rbio; runs the handshake, then decrypts all it can
 * and feeds the plaintext to the WebSocket side. */
static void tls_input(lg_conn_t *c, const rx_times_t *tm) {
    lg_worker_t *w = c->w;
    if (c->state == CS_TLS) {
        int rc = SSL_do_handshake(c->ssl);
        if (rc != 1) {
            int e = SSL_get_error(c->ssl, rc);
            tls_flush(c);
            if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE)
                conn_lost(c, tls_err());
            return;
        }
        tls_flush(c);
        w->r.tls_handshakes++;
        w->r.tls_resumed += SSL_session_reused(c->ssl) != 0;
        if (!w->r.tls_version[0]) {
            snprintf(w->r.tls_version, sizeof w->r.tls_version, "%s", SSL_get_version(c->ssl));
            snprintf(w->r.tls_cipher, sizeof w->r.tls_cipher, "%s", SSL_get_cipher_name(c->ssl));
        }
        ws_request_send(c);
    }
    while (c->state != CS_CLOSED) {
        int k = SSL_read(c->ssl, w->pbuf, (int)sizeof w->pbuf);
        if (k > 0) {
            conn_input(c, w->pbuf, (size_t)k, tm);
            continue;
        }
        int e = SSL_get_error(c->ssl, k);
        tls_flush(c);
        if (e == SSL_ERROR_WANT_READ)
            return;
        conn_lost(c, e == SSL_ERROR_ZERO_RETURN ? "TLS close_notify" : tls_err());
        return;
    }
}

/* Reads what the socket holds (a few reads at most, to stay fair to the other sockets). */
static void conn_read(lg_conn_t *c) {
    lg_worker_t *w = c->w;
    for (int i = 0; i < 4 && c->state != CS_CLOSED; i++) {
        union {
            char buf[CMSG_SPACE(sizeof(struct timespec))];
            struct cmsghdr align;
        } ctl;
        struct iovec iov = {w->rbuf, READ_BUF};
        struct msghdr mh = {.msg_iov = &iov,
                            .msg_iovlen = 1,
                            .msg_control = ctl.buf,
                            .msg_controllen = sizeof ctl.buf};
        ssize_t n = recvmsg(c->fd, &mh, MSG_DONTWAIT);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                conn_lost(c, strerror(errno));
            return;
        }
        if (n == 0) {
            conn_lost(c, "end of stream");
            return;
        }
        rx_times_t tm = {.rd = now_ns()};
        tm.rx = tm.rd;
        for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm))
            if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_TIMESTAMPNS) {
                struct timespec ts;
                memcpy(&ts, CMSG_DATA(cm), sizeof ts);
                tm.rx = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
            }
        if (w->phase == PH_RUN)
            w->r.rx_wire_run += (uint64_t)n;
        if (c->ssl) {
            if (BIO_write(c->rbio, w->rbuf, (int)n) != (int)n) {
                conn_lost(c, "BIO_write failed");
                return;
            }
            tls_input(c, &tm);
        } else {
            conn_input(c, w->rbuf, (size_t)n, &tm);
        }
        if (w->phase == PH_RUN)
            maybe_finish(w, tm.rd);
        if ((size_t)n < READ_BUF)
            return;
    }
}

/* Which of --port's servers client gid talks to. In a room scenario gid's room is gid % R
 * and gid / R its place in the room (0: the sender), so counting from the room's number
 * spreads every room's members, and the rooms' senders, over the servers; in the private
 * scenario the two sides of a pair (2q, 2q+1) are on different servers. With one port, 0. */
static uint32_t conn_port(const opts_t *o, uint32_t gid) {
    if (o->nports < 2)
        return 0;
    uint32_t R = o->rooms ? o->rooms : 1;
    if (o->sc == SC_FANOUT || o->sc == SC_IDLE || o->sc == SC_BIGROOM)
        return (gid / R + gid % R) % o->nports;
    return gid % o->nports;
}

static void conn_flush(lg_conn_t *c) {
    while (c->out_len) {
        ssize_t k = send(c->fd, c->out, c->out_len, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (k < 0) {
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                conn_lost(c, strerror(errno));
            return;
        }
        memmove(c->out, c->out + k, c->out_len - (size_t)k);
        c->out_len -= (uint32_t)k;
    }
    conn_poll_set(c, UV_READABLE);
}

static void ws_request_send(lg_conn_t *c) {
    lg_worker_t *w = c->w;
    char head[512];
    lg_ws_key_make(c->key, &w->rng);
    int n = lg_ws_request_build(head, sizeof head, w->hostport[conn_port(w->o, c->gid)], w->o->path,
                                c->key, w->o->deflate, w->o->v1 ? LG_V1_PROTOCOL : NULL);
    c->state = CS_HANDSHAKE;
    conn_write(c, (const uint8_t *)head, (size_t)n);
}

static void on_connected(lg_conn_t *c) {
    lg_worker_t *w = c->w;
    conn_poll_set(c, UV_READABLE);
    if (!w->tls) {
        ws_request_send(c);
        return;
    }
    c->ssl = SSL_new(w->tls);
    c->rbio = BIO_new(BIO_s_mem());
    c->wbio = BIO_new(BIO_s_mem());
    if (!c->ssl || !c->rbio || !c->wbio) {
        BIO_free(c->rbio);
        BIO_free(c->wbio);
        conn_lost(c, "out of memory for TLS");
        return;
    }
    BIO_set_mem_eof_return(c->rbio, -1); /* empty means "more to come", not EOF */
    SSL_set_bio(c->ssl, c->rbio, c->wbio);
    if (w->o->tls_ca)
        X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(c->ssl), w->o->host);
    SSL_set_connect_state(c->ssl);
    c->state = CS_TLS;
    int rc = SSL_do_handshake(c->ssl); /* the ClientHello */
    if (rc != 1 && SSL_get_error(c->ssl, rc) != SSL_ERROR_WANT_READ) {
        conn_lost(c, tls_err());
        return;
    }
    tls_flush(c);
}

static void on_poll(uv_poll_t *h, int status, int events) {
    lg_conn_t *c = h->data;
    if (c->state == CS_CLOSED)
        return;
    if (status < 0) {
        /* libuv reports POLLERR as UV_EBADF; the socket knows the real error. */
        int err = 0;
        socklen_t len = sizeof err;
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
        conn_lost(c, err ? strerror(err) : uv_strerror(status));
        return;
    }
    if (c->state == CS_CONNECTING) {
        int err = 0;
        socklen_t len = sizeof err;
        if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
            err = errno;
        if (err) {
            conn_lost(c, strerror(err));
            return;
        }
        if (!(events & UV_WRITABLE))
            return;
        on_connected(c);
        return;
    }
    if (events & UV_WRITABLE)
        conn_flush(c);
    if ((events & UV_READABLE) && c->state != CS_CLOSED)
        conn_read(c);
}

static void conn_start(lg_worker_t *w, lg_conn_t *c) {
    c->state = CS_CONNECTING;
    c->got_sync = c->got_partner_sync = c->we_closed = c->in_frag = c->frag_rsv1 = false;
    c->close_code = 0;
    c->events = 0;
    c->t_start = now_ns();
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        c->state = CS_IDLE;
        w->r.connect_errors++;
        if (w->connecting)
            w->connecting--;
        note_error(w, "socket: %s", strerror(errno));
        setup_fail(w, "socket: %s", strerror(errno));
        return;
    }
    c->fd = fd;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    setsockopt(fd, SOL_SOCKET, SO_TIMESTAMPNS, &one, sizeof one);
    uv_poll_init_socket(&w->loop, &c->poll, fd);
    c->poll.data = c;
    w->handles_open++;
    int rc = 0;
    if (w->o->src_ips) {
        /* Source addresses 127.0.0.2.. spread the connections, since one (source address,
         * destination) pair offers only the ephemeral port range; the port is chosen at
         * connect time so it need only be unique per 4-tuple. */
        setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
        struct sockaddr_in src = {.sin_family = AF_INET};
        src.sin_addr.s_addr = htonl(0x7F000002u + c->gid % w->o->src_ips);
        rc = bind(fd, (const struct sockaddr *)&src, sizeof src);
    }
    if (rc == 0)
        rc = connect(fd, (const struct sockaddr *)&w->dst[conn_port(w->o, c->gid)],
                     sizeof w->dst[0]);
    if (rc < 0 && errno != EINPROGRESS) {
        conn_lost(c, strerror(errno));
        return;
    }
    conn_poll_set(c, UV_WRITABLE);
}

static bool sc_connects_in_run(const opts_t *o) {
    return o->sc == SC_CONNECT || o->sc == SC_CHURN;
}

/* Starts connections while fewer than --connect-window are between connect() and logged in
 * (connect/churn: confirmed), and, in the connect scenario, while the run has time left. */
static void pump_connects(lg_worker_t *w) {
    uint64_t now = now_ns();
    while (w->connecting < w->o->connect_window && w->next_connect < w->nconns) {
        if (sc_connects_in_run(w->o) && (w->phase != PH_RUN || now >= w->t_run_deadline))
            break;
        if (w->phase == PH_DONE)
            break;
        lg_conn_t *c = &w->conns[w->next_connect++];
        w->connecting++;
        conn_start(w, c);
    }
}

static void on_established(lg_conn_t *c) {
    lg_worker_t *w = c->w;
    c->state = CS_OPEN;
    w->r.established++;
    c->expect[0] = c->expect[1] = 1;
    c->sent = 0;
    c->inflight = 0;
    c->last_id = 0;
    if (sc_connects_in_run(w->o)) {
        /* A legacy login gets no reply; a message to the connection's own room comes back
         * only once the login is done, so it confirms it. */
        char room[24];
        int rl = snprintf(room, sizeof room, "c%u", c->gid);
        conn_send_login(c, room, (size_t)rl);
        conn_send_text(c, "room", room, (size_t)rl, room, (size_t)rl);
        return;
    }
    if (c->partner)
        conn_send_login(c, "lobby", 5);
    else
        conn_send_login(c, c->room->name, c->room->nlen);
    if (c->room)
        c->room->live++;
    if (w->connecting)
        w->connecting--;
    pump_connects(w);
}

/* --- readiness: every member has seen a sync message ------------------------------------ */

static void worker_ready_check(lg_worker_t *w) {
    if (w->phase != PH_SETUP || w->r.established < w->nconns)
        return;
    for (uint32_t i = 0; i < w->nrooms; i++)
        if (w->rooms[i].synced < w->rooms[i].members)
            return;
    for (uint32_t i = 0; i < w->nconns; i++)
        if (w->conns[i].partner && !w->conns[i].got_partner_sync)
            return;
    w->phase = PH_READY;
    ctl_send(w, 'R', false);
}

/* Whether a sync is due: none in flight and the last one at least SYNC_EVERY_MS ago, or the
 * one in flight unanswered for its backoff (its sender's login may not have been handled). */
static bool sync_due(lg_sync_t *s, uint64_t now) {
    const uint64_t base = SYNC_EVERY_MS * 1000000ull;
    if (!s->sent_at)
        return true;
    if (!s->inflight)
        return now - s->sent_at >= base;
    if (now - s->sent_at < s->backoff)
        return false;
    s->backoff = s->backoff * 2 > 50 * base ? 50 * base : s->backoff * 2;
    return true;
}

static void sync_mark(lg_sync_t *s, uint64_t now) {
    if (!s->backoff)
        s->backoff = SYNC_EVERY_MS * 1000000ull;
    s->inflight = true;
    s->sent_at = now;
}

/* Until every member has a sync: the room's sender (or each side of a pair) says something.
 * A member whose login the server has not yet processed misses it and gets the next one. */
static void sync_send(lg_worker_t *w, uint64_t now) {
    if (w->r.established < w->nconns)
        return;
    char text[48];
    for (uint32_t i = 0; i < w->nrooms; i++) {
        lg_room_t *r = &w->rooms[i];
        if (r->synced < r->members && r->sender && r->sender->state == CS_OPEN &&
            sync_due(&r->sync, now)) {
            int tl = snprintf(text, sizeof text, "s%u-%" PRIu64, r->sender->gid, now);
            conn_send_text(r->sender, "room", r->name, r->nlen, text, (size_t)tl);
            sync_mark(&r->sync, now);
        }
    }
    for (uint32_t i = 0; w->o->sc == SC_PRIVATE && i < w->nconns; i++) {
        lg_conn_t *c = &w->conns[i];
        if (c->partner && !c->partner->got_partner_sync && c->state == CS_OPEN &&
            sync_due(&c->sync, now)) {
            int tl = snprintf(text, sizeof text, "s%u-%" PRIu64, c->gid, now);
            conn_send_text(c, "private", c->partner->nick, c->partner->nicklen, text, (size_t)tl);
            sync_mark(&c->sync, now);
        }
    }
}

/* --- the run ---------------------------------------------------------------------------- */

static void close_all(lg_worker_t *w) {
    for (uint32_t i = 0; i < w->nconns; i++) {
        lg_conn_t *c = &w->conns[i];
        if (c->state == CS_OPEN) {
            c->we_closed = true;
            conn_send_close(c, 1000);
            c->state = CS_CLOSING;
        } else if (c->state == CS_CONNECTING || c->state == CS_TLS || c->state == CS_HANDSHAKE) {
            c->we_closed = true;
            conn_close_handle(c);
        }
    }
    w->t_close_started = now_ns();
}

static void close_force_late(lg_worker_t *w, uint64_t now) {
    if (now - w->t_close_started < CLOSE_WAIT_NS)
        return;
    for (uint32_t i = 0; i < w->nconns; i++) {
        lg_conn_t *c = &w->conns[i];
        if (c->state != CS_CLOSED && c->state != CS_IDLE) {
            w->r.close_timeouts++;
            conn_close_handle(c);
        }
    }
}

static int64_t proc_rss_kb(int pid);
static double proc_sched_cpu_s(int pid);

static void churn_step(lg_worker_t *w, uint64_t now) {
    const opts_t *o = w->o;
    switch (w->churn) {
    case CH_OPENING:
        if (now >= w->t_run_deadline && w->connecting) {
            w->r.incomplete += w->connecting;
            note_error(w, "%u connections did not confirm their login in time", w->connecting);
            worker_finish(w, now);
            return;
        }
        if (w->next_connect == w->nconns && w->connecting == 0) {
            w->r.churn_open_kb[w->r.churn_n] = proc_rss_kb(o->server_pid);
            w->r.churn_close_cpu_s[w->r.churn_n] = proc_sched_cpu_s(o->server_pid);
            close_all(w);
            w->churn = CH_CLOSING;
        }
        break;
    case CH_CLOSING:
        close_force_late(w, now);
        if (w->handles_open == 0) {
            w->churn = CH_SETTLE;
            w->churn_t = now;
        }
        break;
    case CH_SETTLE:
        if (now - w->churn_t < (uint64_t)(o->settle * NS))
            break;
        w->r.churn_close_cpu_s[w->r.churn_n] =
            proc_sched_cpu_s(o->server_pid) - w->r.churn_close_cpu_s[w->r.churn_n];
        w->r.churn_closed_kb[w->r.churn_n++] = proc_rss_kb(o->server_pid);
        if (w->r.churn_n >= o->cycles || w->r.churn_n >= CHURN_MAX || now >= w->t_run_deadline ||
            w->r.error[0]) {
            worker_finish(w, now);
            return;
        }
        for (uint32_t i = 0; i < w->nconns; i++)
            w->conns[i].state = CS_IDLE;
        w->next_connect = 0;
        w->churn = CH_OPENING;
        pump_connects(w);
        break;
    }
}

/* Open loop: every message has an intended send time t0 + k/rate; a generator that falls
 * behind sends the late ones at once, stamped with the intended time, so its lag shows up as
 * latency instead of hiding as a lower rate. */
static void bigroom_send_due(lg_worker_t *w, uint64_t now) {
    lg_conn_t *s = w->rooms[0].sender;
    double gap = NS / w->o->rate;
    for (;;) {
        uint64_t due = w->bigroom_t0 + (uint64_t)((double)w->bigroom_next * gap);
        if (due > now || s->state != CS_OPEN || !may_send(w, due))
            break;
        conn_send_chat(s, due);
        w->bigroom_next++;
    }
}

static void on_tick(uv_timer_t *t) {
    lg_worker_t *w = t->data;
    uint64_t now = now_ns();
    switch (w->phase) {
    case PH_SETUP:
        if (now >= w->t_setup_deadline) {
            uint32_t unsynced = 0;
            for (uint32_t i = 0; i < w->nrooms; i++)
                unsynced += w->rooms[i].members - w->rooms[i].synced;
            for (uint32_t i = 0; i < w->nconns; i++)
                unsynced += w->conns[i].partner && !w->conns[i].got_partner_sync;
            setup_fail(w,
                       "setup timed out: %" PRIu64 " of %u connections up, %u members never "
                       "saw a sync message (login not processed?)",
                       w->r.established, w->nconns, unsynced);
            return;
        }
        sync_send(w, now);
        break;
    case PH_RUN:
        switch (w->o->sc) {
        case SC_BIGROOM:
            bigroom_send_due(w, now);
            if (now >= w->t_run_deadline)
                may_send(w, now);
            maybe_finish(w, now);
            break;
        case SC_FANOUT:
        case SC_PRIVATE:
            if (now >= w->t_run_deadline)
                may_send(w, now);
            maybe_finish(w, now);
            break;
        case SC_IDLE:
            if (now >= w->t_run_deadline)
                worker_finish(w, now);
            break;
        case SC_CONNECT: {
            bool all = w->next_connect == w->nconns || now >= w->t_run_deadline;
            if (all && w->connecting == 0) {
                worker_finish(w, now);
            } else if (now >= w->t_run_deadline + (uint64_t)(w->o->drain * NS)) {
                w->r.incomplete += w->connecting;
                note_error(w, "%u connections did not confirm their login in time", w->connecting);
                worker_finish(w, now);
            }
            break;
        }
        case SC_CHURN:
            churn_step(w, now);
            break;
        }
        break;
    case PH_CLOSING:
        close_force_late(w, now);
        if (w->handles_open == 0)
            _exit(EXIT_OK);
        break;
    default:
        break;
    }
}

/* --typing: every typist whose turn has come sends a start to its room, while the run sends;
 * the timer stops with the sending (each typist at most one start per wake). */
static void on_typing_tick(uv_timer_t *t) {
    lg_worker_t *w = t->data;
    uint64_t now = now_ns();
    if (w->phase != PH_RUN || w->stopped || now >= w->t_run_deadline) {
        uv_timer_stop(&w->typing);
        return;
    }
    for (uint32_t i = 0; i < w->ntypists; i++) {
        lg_conn_t *c = w->typists[i];
        if (c->state != CS_OPEN || now < c->typing_next)
            continue;
        conn_send_typing(c);
        /* from now, not from when it was due: a late wake never makes two starts closer than
         * TYPING_EVERY_MS, which the server would drop */
        c->typing_next = now + TYPING_EVERY_MS * 1000000ull;
    }
}

static void typing_begin(lg_worker_t *w, uint64_t now) {
    if (!w->ntypists)
        return;
    /* the first starts spread over one period, so the typists do not all start together */
    for (uint32_t i = 0; i < w->ntypists; i++)
        w->typists[i]->typing_next = now + (uint64_t)i * TYPING_EVERY_MS * 1000000ull / w->ntypists;
    uv_timer_start(&w->typing, on_typing_tick, 0, TYPING_TICK_MS);
}

static void worker_go(lg_worker_t *w) {
    uint64_t now = now_ns();
    const opts_t *o = w->o;
    w->phase = PH_RUN;
    w->r.t_go = now;
    getrusage(RUSAGE_SELF, &w->ru_go);
    w->t_run_deadline = now + (uint64_t)(o->duration * NS);
    switch (o->sc) {
    case SC_FANOUT:
        for (uint32_t i = 0; i < w->nrooms; i++)
            sender_fill(w->rooms[i].sender, now);
        typing_begin(w, now);
        break;
    case SC_PRIVATE:
        for (uint32_t i = 0; i < w->nconns; i++)
            sender_fill(&w->conns[i], now);
        break;
    case SC_BIGROOM:
        w->bigroom_t0 = now;
        w->bigroom_next = 0;
        bigroom_send_due(w, now);
        break;
    case SC_CONNECT:
    case SC_CHURN:
        w->churn = CH_OPENING;
        pump_connects(w);
        break;
    case SC_IDLE:
        break;
    }
}

static void worker_finish(lg_worker_t *w, uint64_t now) {
    if (w->phase != PH_RUN)
        return;
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    w->r.cpu_s = rusage_s(&ru) - rusage_s(&w->ru_go);
    w->r.t_end = now;
    w->r.late = w->outstanding;
    uv_timer_stop(&w->typing);
    if (sc_connects_in_run(w->o))
        w->r.late = 0;
    w->phase = PH_DONE;
    ctl_send(w, 'D', true);
}

static void on_ctl_alloc(uv_handle_t *h, size_t s, uv_buf_t *b) {
    lg_worker_t *w = h->data;
    (void)s;
    b->base = w->ctlbuf; /* control bytes are acted on at once; nothing is kept */
    b->len = sizeof w->ctlbuf;
}

static void on_ctl(uv_stream_t *s, ssize_t n, const uv_buf_t *b) {
    lg_worker_t *w = s->data;
    if (n < 0) /* the coordinator is gone */
        _exit(EXIT_SETUP);
    for (ssize_t i = 0; i < n; i++) {
        if (b->base[i] == 'G' && w->phase == PH_READY) {
            worker_go(w);
        } else if (b->base[i] == 'Q') {
            w->phase = PH_CLOSING;
            close_all(w);
            if (w->handles_open == 0)
                _exit(EXIT_OK);
        }
    }
}

/* --- planning: which clients and rooms a worker owns ------------------------------------ */

static void conn_init(lg_worker_t *w, lg_conn_t *c, uint32_t gid) {
    memset(c, 0, sizeof *c);
    c->w = w;
    c->gid = gid;
    c->nicklen = (uint8_t)snprintf(c->nick, sizeof c->nick, "%s%u", w->o->nick_prefix, gid);
    c->expect[0] = c->expect[1] = 1;
}

static void worker_plan(lg_worker_t *w) {
    const opts_t *o = w->o;
    uint32_t P = o->procs, p = (uint32_t)w->index;
    switch (o->sc) {
    case SC_FANOUT:
    case SC_IDLE:
    case SC_BIGROOM: {
        uint32_t R = o->sc == SC_BIGROOM ? 1 : o->rooms;
        uint32_t k0 = (uint32_t)((uint64_t)p * R / P), k1 = (uint32_t)((uint64_t)(p + 1) * R / P);
        w->nrooms = k1 - k0;
        w->rooms = calloc(w->nrooms ? w->nrooms : 1, sizeof *w->rooms);
        uint32_t count = 0;
        for (uint32_t i = 0; i < o->clients; i++)
            if (i % R >= k0 && i % R < k1)
                count++;
        w->conns = xmalloc((size_t)count * sizeof *w->conns);
        for (uint32_t i = 0, j = 0; i < o->clients; i++) {
            uint32_t k = i % R;
            if (k < k0 || k >= k1)
                continue;
            lg_conn_t *c = &w->conns[j++];
            conn_init(w, c, i);
            lg_room_t *r = &w->rooms[k - k0];
            c->room = r;
            if (!r->members) {
                r->nlen = (uint32_t)snprintf(r->name, sizeof r->name, "r%u", k);
                r->k = k;
                r->sender = c; /* the room's first client, gid k */
            }
            r->members++;
            if (o->sc == SC_FANOUT && gid_is_typist(o, i)) {
                c->typist = true;
                w->ntypists++;
            }
        }
        w->nconns = count;
        w->typists = xmalloc((size_t)w->ntypists * sizeof *w->typists);
        w->r.typists = w->ntypists;
        for (uint32_t i = 0, j = 0; i < count; i++)
            if (w->conns[i].typist)
                w->typists[j++] = &w->conns[i];
        break;
    }
    case SC_PRIVATE: {
        uint32_t q0 = (uint32_t)((uint64_t)p * o->pairs / P);
        uint32_t q1 = (uint32_t)((uint64_t)(p + 1) * o->pairs / P);
        w->nconns = 2 * (q1 - q0);
        w->conns = xmalloc((size_t)w->nconns * sizeof *w->conns);
        for (uint32_t q = q0; q < q1; q++) {
            lg_conn_t *a = &w->conns[2 * (q - q0)], *b = a + 1;
            conn_init(w, a, 2 * q);
            conn_init(w, b, 2 * q + 1);
            a->partner = b;
            b->partner = a;
        }
        break;
    }
    case SC_CONNECT:
    case SC_CHURN: {
        uint32_t count = 0;
        for (uint32_t i = 0; i < o->clients; i++)
            count += i % P == p;
        w->conns = xmalloc((size_t)count * sizeof *w->conns);
        for (uint32_t i = 0, j = 0; i < o->clients; i++)
            if (i % P == p)
                conn_init(w, &w->conns[j++], i);
        w->nconns = count;
        break;
    }
    }
}

static int worker_main(const opts_t *o, int index, int ctl_in, int ctl_out) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    lg_worker_t *w = calloc(1, sizeof *w);
    if (!w)
        abort();
    w->o = o;
    w->index = index;
    w->ctl_in = ctl_in;
    w->ctl_out = ctl_out;
    lg_hist_init(&w->r.lat);
    lg_hist_init(&w->r.lat_read);
    if (getrandom(&w->rng, sizeof w->rng, 0) != sizeof w->rng || !w->rng)
        w->rng = 0x9E3779B97F4A7C15ULL ^ (uint64_t)getpid();
    w->max_msgs = (o->max_messages + o->procs - 1) / o->procs;
    if (o->words)
        lg_text_use_words();
    if (o->tls) {
        w->tls = SSL_CTX_new(TLS_client_method());
        if (!w->tls)
            _exit(EXIT_SETUP);
        SSL_CTX_set_min_proto_version(w->tls, TLS1_2_VERSION);
        /* No session kept or offered: every connection is a full handshake. */
        SSL_CTX_set_session_cache_mode(w->tls, SSL_SESS_CACHE_OFF);
        SSL_CTX_set_mode(w->tls, SSL_MODE_RELEASE_BUFFERS);
        static const unsigned char alpn[] = "\x08http/1.1";
        SSL_CTX_set_alpn_protos(w->tls, alpn, sizeof alpn - 1);
        if (o->tls_ca) {
            if (SSL_CTX_load_verify_locations(w->tls, o->tls_ca, NULL) != 1) {
                fprintf(stderr, "loadgen: cannot load --tls-ca %s: %s\n", o->tls_ca, tls_err());
                _exit(EXIT_SETUP);
            }
            SSL_CTX_set_verify(w->tls, SSL_VERIFY_PEER, NULL);
        } else {
            SSL_CTX_set_verify(w->tls, SSL_VERIFY_NONE, NULL);
        }
    }
    if (o->deflate) {
        if (inflateInit2(&w->z, -15) != Z_OK)
            _exit(EXIT_SETUP);
        w->zbuf = xmalloc(RECV_MAX);
    }
    uv_loop_init(&w->loop);
    for (uint32_t i = 0; i < o->nports; i++) {
        uv_ip4_addr(o->host, o->ports[i], &w->dst[i]);
        snprintf(w->hostport[i], sizeof w->hostport[i], "%s:%d", o->host, o->ports[i]);
    }
    worker_plan(w);
    uv_pipe_init(&w->loop, &w->ctl, 0);
    uv_pipe_open(&w->ctl, ctl_in);
    w->ctl.data = w;
    uv_read_start((uv_stream_t *)&w->ctl, on_ctl_alloc, on_ctl);
    uv_timer_init(&w->loop, &w->tick);
    w->tick.data = w;
    uv_timer_start(&w->tick, on_tick, 1, 1);
    uv_timer_init(&w->loop, &w->typing);
    w->typing.data = w;
    w->t_setup_deadline = now_ns() + (uint64_t)(o->setup_timeout * NS);
    w->phase = PH_SETUP;
    if (sc_connects_in_run(o)) {
        w->phase = PH_READY;
        ctl_send(w, 'R', false);
    } else {
        pump_connects(w);
    }
    uv_run(&w->loop, UV_RUN_DEFAULT);
    return EXIT_OK;
}

/* --- the coordinator: /proc samples, forking, aggregation ------------------------------- */

static int64_t proc_rss_kb(int pid) {
    if (pid <= 0)
        return -1;
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    int64_t kb = -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "VmRSS: %" SCNd64, &kb) == 1)
            break;
    fclose(f);
    return kb;
}

/* Time on a CPU of every thread of the process, in seconds, from
 * /proc/PID/task/TID/schedstat (nanoseconds): fine enough for a burst of
 * work of a few milliseconds, where utime + stime count 10 ms ticks. */
static double proc_sched_cpu_s(int pid) {
    if (pid <= 0)
        return -1;
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/task", pid);
    DIR *d = opendir(path);
    if (!d)
        return -1;
    unsigned long long total = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        char p2[300]; /* "/proc/PID/task/" + a d_name of up to 255 bytes */
        snprintf(p2, sizeof p2, "/proc/%d/task/%s/schedstat", pid, e->d_name);
        FILE *f = fopen(p2, "r");
        if (!f)
            continue;
        unsigned long long ns = 0;
        if (fscanf(f, "%llu", &ns) == 1)
            total += ns;
        fclose(f);
    }
    closedir(d);
    return (double)total / 1e9;
}

/* utime + stime of the whole process (all threads), in seconds. */
static double proc_cpu_s(int pid) {
    if (pid <= 0)
        return -1;
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *p = strrchr(buf, ')'); /* the command name may hold spaces and parentheses */
    if (!p)
        return -1;
    unsigned long long ut = 0, st = 0;
    if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
        return -1;
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

/* utime and stime of one process (all threads), in seconds; false if unreadable. */
static bool proc_ut_st(int pid, double *ut_s, double *st_s) {
    if (pid <= 0)
        return false;
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return false;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *p = strrchr(buf, ')');
    unsigned long long ut = 0, st = 0;
    if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
        return false;
    *ut_s = (double)ut / (double)sysconf(_SC_CLK_TCK);
    *st_s = (double)st / (double)sysconf(_SC_CLK_TCK);
    return true;
}

/* The one CPU a process is pinned to, or -1 (not pinned to exactly one). */
static int pinned_cpu(int pid) {
    cpu_set_t set;
    if (pid <= 0 || sched_getaffinity(pid, sizeof set, &set) != 0 || CPU_COUNT(&set) != 1)
        return -1;
    for (int c = 0; c < CPU_SETSIZE; c++)
        if (CPU_ISSET(c, &set))
            return c;
    return -1;
}

/* The softirq time of one CPU so far (/proc/stat), in seconds, or -1. On loopback the
 * receiving socket's TCP work runs as softirq on the sending CPU: the server's, for
 * everything it writes to the generator. */
static double cpu_softirq_s(int cpu) {
    if (cpu < 0)
        return -1;
    FILE *f = fopen("/proc/stat", "r");
    if (!f)
        return -1;
    char line[512], want[16];
    snprintf(want, sizeof want, "cpu%d ", cpu);
    double v = -1;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, want, strlen(want)) == 0) {
            unsigned long long x[7];
            if (sscanf(line + strlen(want), "%llu %llu %llu %llu %llu %llu %llu", &x[0], &x[1],
                       &x[2], &x[3], &x[4], &x[5], &x[6]) == 7)
                v = (double)x[6] / (double)sysconf(_SC_CLK_TCK);
            break;
        }
    fclose(f);
    return v;
}

typedef struct {
    int64_t inuse, orphan, tw, alloc, mem_pages;
} sockstat_t;

static sockstat_t sockstat_read(void) {
    sockstat_t s = {-1, -1, -1, -1, -1};
    FILE *f = fopen("/proc/net/sockstat", "r");
    if (!f)
        return s;
    char line[256];
    while (fgets(line, sizeof line, f))
        if (sscanf(line,
                   "TCP: inuse %" SCNd64 " orphan %" SCNd64 " tw %" SCNd64 " alloc %" SCNd64
                   " mem %" SCNd64,
                   &s.inuse, &s.orphan, &s.tw, &s.alloc, &s.mem_pages) == 5)
            break;
    fclose(f);
    return s;
}

/* The kernel's slab memory (socket structures live there), machine-wide, in KiB. */
static int64_t meminfo_slab_kb(void) {
    FILE *f = fopen("/proc/meminfo", "r");
    if (!f)
        return -1;
    char line[256];
    int64_t kb = -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "Slab: %" SCNd64, &kb) == 1)
            break;
    fclose(f);
    return kb;
}

static uint64_t mono_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

typedef struct {
    pid_t pid;
    int to, from;
    bool ready, done, failed;
    lg_result_t r;
} child_t;

static bool read_full(int fd, void *buf, size_t n) {
    char *p = buf;
    while (n) {
        ssize_t k = read(fd, p, n);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return false;
        p += k;
        n -= (size_t)k;
    }
    return true;
}

/* Waits until every child has sent one of the wanted tags; a child's 'F' ends the wait.
 * Returns false on timeout or a dead child. */
static bool await_children(child_t *ch, uint32_t n, bool want_done, double timeout_s, char *err,
                           size_t errn) {
    uint64_t deadline = mono_ns() + (uint64_t)(timeout_s * NS);
    for (;;) {
        uint32_t pending = 0;
        struct pollfd pf[n];
        for (uint32_t i = 0; i < n; i++) {
            pf[i].fd = ch[i].from;
            pf[i].events = POLLIN;
            pf[i].revents = 0;
            bool got = want_done ? ch[i].done : ch[i].ready;
            if (ch[i].failed)
                return false;
            if (got)
                pf[i].fd = -1;
            else
                pending++;
        }
        if (!pending)
            return true;
        uint64_t now = mono_ns();
        if (now >= deadline) {
            snprintf(err, errn, "timed out waiting for %u of %u workers to %s", pending, n,
                     want_done ? "finish" : "get ready");
            return false;
        }
        int ms = (int)((deadline - now) / 1000000) + 1;
        if (poll(pf, n, ms) < 0 && errno != EINTR)
            return false;
        for (uint32_t i = 0; i < n; i++) {
            if (pf[i].fd < 0 || !(pf[i].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            char tag;
            if (read(ch[i].from, &tag, 1) != 1) {
                snprintf(err, errn, "worker %u died", i);
                ch[i].failed = true;
                return false;
            }
            if (tag == 'R') {
                ch[i].ready = true;
            } else if (tag == 'D' || tag == 'F') {
                if (!read_full(ch[i].from, &ch[i].r, sizeof ch[i].r)) {
                    snprintf(err, errn, "worker %u died mid-report", i);
                    ch[i].failed = true;
                    return false;
                }
                ch[i].ready = ch[i].done = true;
                if (tag == 'F') {
                    snprintf(err, errn, "worker %u: %s", i, ch[i].r.error);
                    ch[i].failed = true;
                    return false;
                }
            }
        }
    }
}

static void children_quit(child_t *ch, uint32_t n) {
    for (uint32_t i = 0; i < n; i++)
        if (write(ch[i].to, "Q", 1) != 1) {
            /* already gone */
        }
    uint64_t deadline = mono_ns() + 5 * (uint64_t)NS;
    for (uint32_t i = 0; i < n; i++) {
        for (;;) {
            int st;
            pid_t r = waitpid(ch[i].pid, &st, WNOHANG);
            if (r == ch[i].pid || r < 0)
                break;
            if (mono_ns() >= deadline) {
                kill(ch[i].pid, SIGKILL);
                waitpid(ch[i].pid, &st, 0);
                break;
            }
            usleep(10000);
        }
    }
}

static void json_str(FILE *f, const char *s) {
    fputc('"', f);
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\')
            fprintf(f, "\\%c", ch);
        else if (ch < 0x20)
            fprintf(f, "\\u%04x", ch);
        else
            fputc(ch, f);
    }
    fputc('"', f);
}

static void usage(void) {
    fprintf(
        stderr,
        "usage: loadgen --port N[,N2...] --scenario fanout|bigroom|private|idle|connect|churn "
        "[options]\n"
        "  --port N[,N2...]    the server's port; several: a cluster's nodes, each room's members\n"
        "                      and senders spread over them, the two sides of a pair apart\n"
        "  --host A            server address (127.0.0.1)\n"
        "  --path P            WebSocket path (/talking)\n"
        "  --clients N         connections (fanout 1000, bigroom 5000, idle 10000, connect 2000)\n"
        "  --rooms R           rooms (fanout 10, idle 100)\n"
        "  --pairs P           private: pairs (500)\n"
        "  --window W          closed loop: own messages in flight per sender (16)\n"
        "  --rate X            bigroom: messages per second, open loop (100)\n"
        "  --size B            text bytes (64)\n"
        "  --duration S        run phase: sending / holding / connecting (5)\n"
        "  --max-messages M    cap on messages sent in all (2000000)\n"
        "  --drain S           wait for in-flight deliveries after sending stops (5)\n"
        "  --setup-timeout S   bound on connecting and logging in (60)\n"
        "  --settle S          idle/churn: wait before sampling memory (1)\n"
        "  --quiet S           after the run, hold every connection open and idle for S\n"
        "                      seconds, then sample the server's RSS again (\"quiet\"):\n"
        "                      what it keeps of a burst once its connections go quiet (0)\n"
        "  --procs P           worker processes (1)\n"
        "  --src-ips K         spread sources over 127.0.0.2..127.0.0.(K+1); 0: no bind (32)\n"
        "  --connect-window C  connection setups in flight (128)\n"
        "  --cycles K          churn: open-all/close-all cycles (3)\n"
        "  --server-pid PID    sample the server's CPU and memory from /proc; P1,P2,...: the\n"
        "                      nodes of a cluster (CPU summed and listed per node, RSS of P1)\n"
        "  --aux-pid NAME=PID  also sample this process's CPU (e.g. redis=PID), reported apart\n"
        "                      in aux_cpu_s, not in the server's (repeatable, 4 at most)\n"
        "  --label NAME        server name in the output\n"
        "  --nick-prefix S     nicknames are S<index> (u)\n"
        "  --text alpha|words  pad texts with the alphabet (alpha) or chat-like prose (words)\n"
        "  --tls               speak TLS (TLS 1.3 unless the server offers only 1.2); a full\n"
        "                      handshake per connection, no session resumption\n"
        "  --tls-ca FILE       verify the server's certificate against this CA (default: no\n"
        "                      verification)\n"
        "  --deflate           offer permessage-deflate (no context takeover either way); the\n"
        "                      server must accept it\n"
        "  --no-inflate-cache  inflate every compressed delivery, even one whose compressed\n"
        "                      bytes equal those of one inflated before\n"
        "  --v1                offer the subprotocol tertulia.v1 (the server must select it) and\n"
        "                      log in as a tertulia.v1 client: frames other than room, private\n"
        "                      and typing (welcome, joined, member_joined, ...) are counted and\n"
        "                      set aside; an error frame is a fault once the run has begun\n"
        "                      (tertulia only: the peers speak the legacy protocol)\n"
        "  --typing F          fanout: the share F (0 < F <= 1) of each room's members, spread\n"
        "                      evenly (every 10th member for 0.1; the sender only at 1), sends\n"
        "                      {\"type\":\"typing\",\"to\":ROOM,\"state\":\"start\"} every 2.5 s\n"
        "                      while the run sends (the first ones spread over 2.5 s); typing\n"
        "                      frames received are checked (room, a typist of it, start/stop)\n"
        "                      and counted, never as deliveries. Implies --v1\n"
        "exit: 0 ok, 1 integrity failure, 2 explained shortfall, 3 setup failure\n");
    exit(EXIT_USAGE);
}

/* "A" or "A,B,...": positive integers, at most LG_PORTS_MAX; returns how many. */
static uint32_t parse_int_list(const char *arg, int *out, const char *what) {
    uint32_t n = 0;
    const char *p = arg;
    while (*p) {
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p || v <= 0 || v > INT32_MAX || n >= LG_PORTS_MAX || (*end && *end != ','))
            die("%s takes up to %d positive numbers, comma-separated", what, LG_PORTS_MAX);
        out[n++] = (int)v;
        p = *end ? end + 1 : end;
    }
    if (!n)
        die("%s needs a number", what);
    return n;
}

static void parse_args(int argc, char **argv, opts_t *o) {
    static const struct option lo[] = {{"host", 1, 0, 'h'},
                                       {"port", 1, 0, 'p'},
                                       {"path", 1, 0, 'P'},
                                       {"scenario", 1, 0, 's'},
                                       {"clients", 1, 0, 'c'},
                                       {"rooms", 1, 0, 'r'},
                                       {"pairs", 1, 0, 'a'},
                                       {"window", 1, 0, 'w'},
                                       {"rate", 1, 0, 'R'},
                                       {"size", 1, 0, 'z'},
                                       {"duration", 1, 0, 'd'},
                                       {"max-messages", 1, 0, 'm'},
                                       {"drain", 1, 0, 'D'},
                                       {"setup-timeout", 1, 0, 'T'},
                                       {"settle", 1, 0, 'S'},
                                       {"quiet", 1, 0, 'Q'},
                                       {"procs", 1, 0, 'n'},
                                       {"src-ips", 1, 0, 'i'},
                                       {"connect-window", 1, 0, 'C'},
                                       {"cycles", 1, 0, 'y'},
                                       {"server-pid", 1, 0, 'k'},
                                       {"aux-pid", 1, 0, 'X'},
                                       {"label", 1, 0, 'l'},
                                       {"nick-prefix", 1, 0, 'x'},
                                       {"help", 0, 0, '?'},
                                       {"tls", 0, 0, 'L'},
                                       {"tls-ca", 1, 0, 'A'},
                                       {"deflate", 0, 0, 'Z'},
                                       {"text", 1, 0, 't'},
                                       {"no-inflate-cache", 0, 0, 'N'},
                                       {"v1", 0, 0, 'V'},
                                       {"typing", 1, 0, 'G'},
                                       {0, 0, 0, 0}};
    *o = (opts_t){.host = "127.0.0.1",
                  .path = "/talking",
                  .label = "server",
                  .nick_prefix = "u",
                  .window = 16,
                  .size = 64,
                  .procs = 1,
                  .src_ips = 32,
                  .connect_window = 128,
                  .cycles = 3,
                  .rate = 100,
                  .duration = 5,
                  .drain = 5,
                  .setup_timeout = 60,
                  .settle = 1,
                  .max_messages = 2000000};
    int sc = -1, ch;
    uint32_t clients = 0, rooms = 0;
    while ((ch = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (ch) {
        case 'h':
            o->host = optarg;
            break;
        case 'p':
            o->nports = parse_int_list(optarg, o->ports, "--port");
            o->port = o->ports[0];
            break;
        case 'P':
            o->path = optarg;
            break;
        case 's':
            for (int i = 0; i < (int)(sizeof SC_NAMES / sizeof *SC_NAMES); i++)
                if (strcmp(optarg, SC_NAMES[i]) == 0)
                    sc = i;
            if (sc < 0)
                die("unknown scenario %s", optarg);
            break;
        case 'c':
            clients = (uint32_t)strtoul(optarg, NULL, 10);
            break;
        case 'r':
            rooms = (uint32_t)strtoul(optarg, NULL, 10);
            break;
        case 'a':
            o->pairs = (uint32_t)strtoul(optarg, NULL, 10);
            break;
        case 'w':
            o->window = (uint32_t)strtoul(optarg, NULL, 10);
            break;
        case 'R':
            o->rate = atof(optarg);
            break;
        case 'z':
            o->size = (uint32_t)strtoul(optarg, NULL, 10);
            break;
        case 'd':
            o->duration = atof(optarg);
            break;
        case 'm':
            o->max_messages = strtoull(optarg, NULL, 10);
            break;
        case 'D':
            o->drain = atof(optarg);
            break;
        case 'T':
            o->setup_timeout = atof(optarg);
            break;
        case 'S':
            o->settle = atof(optarg);
            break;
        case 'Q':
            o->quiet = atof(optarg);
            break;
        case 'n':
            o->procs = (uint32_t)strtoul(optarg, NULL, 10);
            break;
        case 'i':
            o->src_ips = (uint32_t)strtoul(optarg, NULL, 10);
            break;
        case 'C':
            o->connect_window = (uint32_t)strtoul(optarg, NULL, 10);
            break;
        case 'y':
            o->cycles = (uint32_t)strtoul(optarg, NULL, 10);
            break;
        case 'k':
            o->nserver_pids = parse_int_list(optarg, o->server_pids, "--server-pid");
            o->server_pid = o->server_pids[0];
            break;
        case 'X': {
            const char *eq = strchr(optarg, '=');
            if (!eq || eq == optarg || o->naux >= LG_AUX_MAX || atoi(eq + 1) <= 0)
                die("--aux-pid is NAME=PID, at most %d times", LG_AUX_MAX);
            o->aux_names[o->naux] = strndup(optarg, (size_t)(eq - optarg));
            o->aux_pids[o->naux++] = atoi(eq + 1);
            break;
        }
        case 'l':
            o->label = optarg;
            break;
        case 'x':
            o->nick_prefix = optarg;
            break;
        case 'L':
            o->tls = true;
            break;
        case 'A':
            o->tls_ca = optarg;
            o->tls = true;
            break;
        case 'Z':
            o->deflate = true;
            break;
        case 'N':
            o->no_inflate_cache = true;
            break;
        case 'V':
            o->v1 = true;
            break;
        case 'G': {
            char *end = NULL;
            o->typing = strtod(optarg, &end);
            if (!end || *end || !(o->typing > 0 && o->typing <= 1))
                die("--typing is a share of the clients, 0 < F <= 1");
            o->typing_ppm = (uint32_t)(o->typing * 1e6 + 0.5);
            if (!o->typing_ppm)
                die("--typing is at least 0.000001");
            o->v1 = true; /* only a tertulia.v1 client may send typing */
            break;
        }
        case 't':
            if (strcmp(optarg, "words") == 0)
                o->words = true;
            else if (strcmp(optarg, "alpha") != 0)
                die("--text is alpha or words");
            break;
        default:
            usage();
        }
    }
    if (sc < 0 || !o->nports)
        usage();
    for (uint32_t i = 0; i < o->nports; i++)
        if (o->ports[i] > 65535)
            usage();
    o->sc = (scenario_t)sc;
    static const uint32_t def_clients[] = {1000, 5000, 0, 10000, 2000, 2000};
    o->clients = clients ? clients : def_clients[sc];
    o->rooms = rooms ? rooms : (o->sc == SC_IDLE ? 100 : 10);
    if (o->sc == SC_PRIVATE) {
        if (!o->pairs)
            o->pairs = clients ? clients / 2 : 500;
        o->clients = 2 * o->pairs;
    }
    if (o->sc == SC_BIGROOM)
        o->rooms = 1;
    if (o->sc == SC_CONNECT || o->sc == SC_CHURN)
        o->rooms = 0;
    if (!o->clients || !o->procs || !o->window || !o->connect_window || o->rate <= 0 ||
        o->duration <= 0 || o->drain < 0 || !o->max_messages)
        die("counts, window, rate and duration must be positive");
    if (o->size > TEXT_MAX)
        die("--size is at most %d", TEXT_MAX);
    if (strlen(o->nick_prefix) > 12 || strlen(o->path) > 200)
        die("--nick-prefix is at most 12 characters");
    if ((o->sc == SC_FANOUT || o->sc == SC_IDLE) && (o->rooms > o->clients || o->rooms < o->procs))
        die("need procs <= rooms <= clients");
    if (o->typing_ppm && o->sc != SC_FANOUT)
        die("--typing is for the fanout scenario");
    if (o->sc == SC_PRIVATE && o->pairs < o->procs)
        die("need procs <= pairs");
    if ((o->sc == SC_BIGROOM || o->sc == SC_CHURN) && o->procs != 1)
        die("%s runs in one process (one room / one RSS timeline)", SC_NAMES[sc]);
    if (o->sc == SC_CHURN && (o->cycles < 1 || o->cycles > CHURN_MAX))
        die("--cycles is 1..%d", CHURN_MAX);
    if (o->src_ips > 250)
        die("--src-ips is at most 250");
    if (strncmp(o->host, "127.", 4) != 0)
        o->src_ips = 0;
    /* A worker must stay under the per-process open-file limit with some to spare. */
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    uint64_t per = (o->clients + o->procs - 1) / o->procs;
    if (per + 32 > rl.rlim_cur)
        die("%" PRIu64 " connections per worker exceed the open-file limit %llu; use --procs", per,
            (unsigned long long)rl.rlim_cur);
}

/* The CPU of each of n processes (each[i], -1 if unreadable) and their sum (-1 if any is
 * unreadable, or n is 0). */
static double pids_cpu_s(const int *pids, uint32_t n, double *each) {
    double sum = n ? 0 : -1;
    for (uint32_t i = 0; i < n; i++) {
        each[i] = proc_cpu_s(pids[i]);
        sum = each[i] < 0 || sum < 0 ? -1 : sum + each[i];
    }
    return sum;
}

int main(int argc, char **argv) {
    opts_t o;
    parse_args(argc, argv, &o);
    signal(SIGPIPE, SIG_IGN);

    int64_t rss_before = proc_rss_kb(o.server_pid);
    sockstat_t ss_before = sockstat_read();
    int64_t slab_before = meminfo_slab_kb(), slab_after = -1;
    uint64_t t_begin = mono_ns();

    child_t *ch = calloc(o.procs, sizeof *ch);
    for (uint32_t i = 0; i < o.procs; i++) {
        int down[2], up[2];
        if (pipe(down) < 0 || pipe(up) < 0)
            die("pipe: %s", strerror(errno));
        fflush(NULL);
        pid_t pid = fork();
        if (pid < 0)
            die("fork: %s", strerror(errno));
        if (pid == 0) {
            for (uint32_t j = 0; j < i; j++) {
                close(ch[j].to);
                close(ch[j].from);
            }
            close(down[1]);
            close(up[0]);
            _exit(worker_main(&o, (int)i, down[0], up[1]));
        }
        close(down[0]);
        close(up[1]);
        ch[i] = (child_t){.pid = pid, .to = down[1], .from = up[0]};
    }

    char err[256] = "";
    int code = EXIT_OK;
    bool ok = await_children(ch, o.procs, false, o.setup_timeout + 10, err, sizeof err);
    int64_t rss_ready = -1, rss_after = -1, rss_quiet = -1;
    sockstat_t ss_ready = {0}, ss_after = {0};
    double cpu0 = -1, cpu1 = -1;
    /* The server's user and system time apart, and its CPU's softirq time (-1: unknown). */
    double ut0 = 0, st0 = 0, ut1 = 0, st1 = 0, sirq0 = -1, sirq1 = -1;
    bool ut_ok = false;
    int sirq_cpu = pinned_cpu(o.server_pid);
    double node0[LG_PORTS_MAX], node1[LG_PORTS_MAX], aux0[LG_AUX_MAX], aux1[LG_AUX_MAX];
    uint64_t t_go = 0, t_done = 0;
    if (ok) {
        if (o.sc == SC_IDLE)
            usleep((useconds_t)(o.settle * 1e6));
        rss_ready = proc_rss_kb(o.server_pid);
        ss_ready = sockstat_read();
        cpu0 = pids_cpu_s(o.server_pids, o.nserver_pids, node0);
        pids_cpu_s(o.aux_pids, o.naux, aux0);
        ut_ok = proc_ut_st(o.server_pid, &ut0, &st0);
        sirq0 = cpu_softirq_s(sirq_cpu);
        t_go = mono_ns();
        for (uint32_t i = 0; i < o.procs; i++)
            if (write(ch[i].to, "G", 1) != 1)
                ok = false;
        double bound =
            o.duration + o.drain + 30 + (o.sc == SC_CHURN ? o.cycles * (o.settle + 3) : 0);
        ok = ok && await_children(ch, o.procs, true, bound, err, sizeof err);
        t_done = mono_ns();
        cpu1 = pids_cpu_s(o.server_pids, o.nserver_pids, node1);
        pids_cpu_s(o.aux_pids, o.naux, aux1);
        ut_ok = ut_ok && proc_ut_st(o.server_pid, &ut1, &st1);
        sirq1 = cpu_softirq_s(sirq_cpu);
        rss_after = proc_rss_kb(o.server_pid);
        ss_after = sockstat_read();
        slab_after = meminfo_slab_kb();
        if (ok && o.quiet > 0) {
            /* The workers keep their connections until told to quit. */
            usleep((useconds_t)(o.quiet * 1e6));
            rss_quiet = proc_rss_kb(o.server_pid);
        }
    }
    children_quit(ch, o.procs);

    lg_result_t tot;
    memset(&tot, 0, sizeof tot);
    lg_hist_init(&tot.lat);
    lg_hist_init(&tot.lat_read);
    uint64_t g0 = UINT64_MAX, g1 = 0;
    for (uint32_t i = 0; i < o.procs; i++) {
        lg_result_t *r = &ch[i].r;
        if (!ch[i].done)
            continue;
#define SUM(f) tot.f += r->f
        SUM(established);
        SUM(sent);
        SUM(delivered);
        SUM(sync_delivered);
        SUM(skipped);
        SUM(dup);
        SUM(corrupt);
        SUM(misrouted);
        SUM(unexpected);
        SUM(dropped_on_close);
        SUM(late);
        SUM(closed_by_server);
        SUM(connect_errors);
        SUM(connects);
        SUM(incomplete);
        SUM(close_timeouts);
        SUM(id_regressions);
        SUM(write_blocked);
        SUM(rx_wire_run);
        SUM(rx_payload_run);
        SUM(rx_msgs_run);
        SUM(rx_compressed_run);
        SUM(tls_handshakes);
        SUM(tls_resumed);
        SUM(inflates);
        SUM(inflate_cache_hits);
        SUM(v1_other);
        SUM(v1_setup_errors);
        SUM(typists);
        SUM(typing_sent);
        SUM(typing_expected);
        SUM(typing_rx_start);
        SUM(typing_rx_stop);
        SUM(cpu_s);
#undef SUM
        lg_hist_merge(&tot.lat, &r->lat);
        lg_hist_merge(&tot.lat_read, &r->lat_read);
        if (!tot.first_close_code && r->first_close_code) {
            tot.first_close_code = r->first_close_code;
            memcpy(tot.close_reason, r->close_reason, sizeof tot.close_reason);
        }
        if (!tot.tls_version[0] && r->tls_version[0]) {
            memcpy(tot.tls_version, r->tls_version, sizeof tot.tls_version);
            memcpy(tot.tls_cipher, r->tls_cipher, sizeof tot.tls_cipher);
        }
        if (!tot.error[0] && r->error[0])
            memcpy(tot.error, r->error, sizeof tot.error);
        if (r->t_go && r->t_go < g0)
            g0 = r->t_go;
        if (r->t_end > g1)
            g1 = r->t_end;
        if (i == 0) {
            tot.churn_n = r->churn_n;
            memcpy(tot.churn_open_kb, r->churn_open_kb, sizeof tot.churn_open_kb);
            memcpy(tot.churn_closed_kb, r->churn_closed_kb, sizeof tot.churn_closed_kb);
            memcpy(tot.churn_close_cpu_s, r->churn_close_cpu_s, sizeof tot.churn_close_cpu_s);
        }
    }
    double elapsed = g1 > g0 ? (double)(g1 - g0) / NS : 0;
    double window = t_done > t_go ? (double)(t_done - t_go) / NS : 0;
    uint64_t integrity = tot.skipped + tot.dup + tot.corrupt + tot.misrouted + tot.unexpected +
                         tot.connect_errors + tot.incomplete;
    uint64_t shortfall = tot.late + tot.dropped_on_close +
                         (o.sc == SC_IDLE || sc_connects_in_run(&o) ? tot.closed_by_server : 0);
    const char *verdict;
    char vbuf[400];
    if (!ok) {
        code = EXIT_SETUP;
        snprintf(vbuf, sizeof vbuf, "FAILED setup: %s", err[0] ? err : tot.error);
        verdict = vbuf;
    } else if (integrity) {
        code = EXIT_INTEGRITY;
        snprintf(vbuf, sizeof vbuf,
                 "FAILED: unexplained loss or wrong deliveries (%" PRIu64 " faults); first: %s",
                 integrity, tot.error);
        verdict = vbuf;
    } else if (shortfall) {
        code = EXIT_SHORTFALL;
        snprintf(vbuf, sizeof vbuf,
                 "SHORTFALL: %" PRIu64 " undelivered at the drain deadline, %" PRIu64
                 " lost on %" PRIu64 " connections the server closed (code %u%s%s)",
                 tot.late, tot.dropped_on_close, tot.closed_by_server, tot.first_close_code,
                 tot.close_reason[0] ? ": " : "", tot.close_reason);
        verdict = vbuf;
    } else {
        verdict = "ok: every delivery verified";
    }

    double server_cpu = (cpu0 >= 0 && cpu1 >= 0) ? cpu1 - cpu0 : -1;
    double server_share = server_cpu >= 0 && window > 0 ? server_cpu / window : -1;
    double gen_share = window > 0 ? tot.cpu_s / window : 0;
    double rate = elapsed > 0 ? (double)tot.delivered / elapsed : 0;

    FILE *f = stdout;
    fprintf(f, "{\"tool\":\"loadgen\",\"scenario\":\"%s\",\"label\":", SC_NAMES[o.sc]);
    json_str(f, o.label);
    fprintf(f,
            ",\"clients\":%u,\"rooms\":%u,\"pairs\":%u,\"window\":%u,\"rate\":%g,\"size\":%u,"
            "\"procs\":%u,\"src_ips\":%u",
            o.clients, o.rooms, o.pairs, o.window, o.sc == SC_BIGROOM ? o.rate : 0, o.size, o.procs,
            o.src_ips);
    fprintf(f, ",\"text\":\"%s\",\"tls\":%s,\"deflate\":%s,\"v1\":%s", o.words ? "words" : "alpha",
            o.tls ? "true" : "false", o.deflate ? "true" : "false", o.v1 ? "true" : "false");
    fprintf(f, ",\"ok\":%s,\"exit\":%d,\"verdict\":", code == EXIT_OK ? "true" : "false", code);
    json_str(f, verdict);
    fprintf(f, ",\"elapsed_s\":%.3f,\"setup_s\":%.3f,\"established\":%" PRIu64, elapsed,
            t_go > t_begin ? (double)(t_go - t_begin) / NS : 0, tot.established);
    fprintf(f, ",\"sent\":%" PRIu64 ",\"delivered\":%" PRIu64 ",\"delivered_per_s\":%.1f", tot.sent,
            tot.delivered, rate);
    if (sc_connects_in_run(&o))
        fprintf(f,
                ",\"connects\":%" PRIu64 ",\"connects_per_s\":%.1f,"
                "\"connects_per_server_cpu_s\":%.1f",
                tot.connects, elapsed > 0 ? (double)tot.connects / elapsed : 0,
                server_cpu > 0 ? (double)tot.connects / server_cpu : -1);
    if (o.tls) {
        fprintf(f, ",\"tls_handshakes\":%" PRIu64 ",\"tls_resumed\":%" PRIu64 ",\"tls_version\":",
                tot.tls_handshakes, tot.tls_resumed);
        json_str(f, tot.tls_version);
        fprintf(f, ",\"tls_cipher\":");
        json_str(f, tot.tls_cipher);
    }
    /* What came in while the run lasted: bytes off the socket (ciphertext with --tls) and
     * message payloads (inflated), per verified delivery. */
    fprintf(f,
            ",\"rx_wire_bytes_run\":%" PRIu64 ",\"rx_payload_bytes_run\":%" PRIu64
            ",\"rx_msgs_run\":%" PRIu64 ",\"rx_compressed_msgs_run\":%" PRIu64,
            tot.rx_wire_run, tot.rx_payload_run, tot.rx_msgs_run, tot.rx_compressed_run);
    fprintf(f, ",\"wire_bytes_per_delivery\":%.1f,\"payload_bytes_per_delivery\":%.1f",
            tot.delivered ? (double)tot.rx_wire_run / (double)tot.delivered : -1,
            tot.delivered ? (double)tot.rx_payload_run / (double)tot.delivered : -1);
    if (o.v1)
        fprintf(f, ",\"v1_other_frames\":%" PRIu64 ",\"v1_setup_errors\":%" PRIu64, tot.v1_other,
                tot.v1_setup_errors);
    /* typing frames: never deliveries; expected is what the starts sent call for (the room's
     * other members), received falls short of it by those the server left out for a
     * recipient whose queue was half full, and by any still in flight at the end */
    if (o.typing_ppm)
        fprintf(f,
                ",\"typing\":{\"share\":%g,\"typists\":%" PRIu64 ",\"sent\":%" PRIu64
                ",\"expected\":%" PRIu64 ",\"received_start\":%" PRIu64
                ",\"received_stop\":%" PRIu64 ",\"received_share\":%.4f}",
                o.typing, tot.typists, tot.typing_sent, tot.typing_expected, tot.typing_rx_start,
                tot.typing_rx_stop,
                tot.typing_expected ? (double)tot.typing_rx_start / (double)tot.typing_expected
                                    : -1);
    if (o.deflate)
        fprintf(f, ",\"inflates\":%" PRIu64 ",\"inflate_cache_hits\":%" PRIu64, tot.inflates,
                tot.inflate_cache_hits);
    fprintf(f, ",\"gen_cpu_ns_per_delivery\":%.0f",
            tot.delivered ? tot.cpu_s * 1e9 / (double)tot.delivered : -1);
    const lg_hist_t *hs[2] = {&tot.lat, &tot.lat_read};
    const char *hn[2] = {"latency_us", "read_latency_us"};
    for (int i = 0; i < 2; i++)
        fprintf(f,
                ",\"%s\":{\"count\":%" PRIu64 ",\"p50\":%.1f,\"p90\":%.1f,\"p99\":%.1f,"
                "\"p999\":%.1f,\"max\":%.1f,\"mean\":%.1f}",
                hn[i], hs[i]->count, lg_hist_quantile(hs[i], 0.5) / 1e3,
                lg_hist_quantile(hs[i], 0.9) / 1e3, lg_hist_quantile(hs[i], 0.99) / 1e3,
                lg_hist_quantile(hs[i], 0.999) / 1e3, hs[i]->count ? hs[i]->max / 1e3 : 0,
                hs[i]->count ? hs[i]->sum / (double)hs[i]->count / 1e3 : 0);
    fprintf(f,
            ",\"loss\":{\"skipped\":%" PRIu64 ",\"dup_or_reordered\":%" PRIu64
            ",\"corrupt\":%" PRIu64 ",\"misrouted\":%" PRIu64 ",\"unexpected\":%" PRIu64
            ",\"late\":%" PRIu64 ",\"dropped_on_close\":%" PRIu64 ",\"connect_errors\":%" PRIu64
            ",\"incomplete\":%" PRIu64 "}",
            tot.skipped, tot.dup, tot.corrupt, tot.misrouted, tot.unexpected, tot.late,
            tot.dropped_on_close, tot.connect_errors, tot.incomplete);
    fprintf(f,
            ",\"closed_by_server\":%" PRIu64 ",\"close_code\":%u,\"close_timeouts\":%" PRIu64
            ",\"sync_delivered\":%" PRIu64 ",\"id_regressions\":%" PRIu64
            ",\"write_blocked\":%" PRIu64,
            tot.closed_by_server, tot.first_close_code, tot.close_timeouts, tot.sync_delivered,
            tot.id_regressions, tot.write_blocked);
    fprintf(f, ",\"gen_cpu_s\":%.3f,\"gen_core_share\":%.3f,\"gen_saturated\":%s", tot.cpu_s,
            gen_share, gen_share >= 0.9 ? "true" : "false");
    fprintf(f, ",\"server_pid\":%d,\"server_cpu_s\":%.3f,\"server_core_share\":%.3f", o.server_pid,
            server_cpu, server_share);
    fprintf(f, ",\"server_utime_s\":%.3f,\"server_stime_s\":%.3f,\"server_cpu_softirq_s\":%.3f",
            ut_ok ? ut1 - ut0 : -1.0, ut_ok ? st1 - st0 : -1.0,
            sirq0 >= 0 && sirq1 >= 0 ? sirq1 - sirq0 : -1.0);
    /* the wall time over which server and aux CPU were sampled */
    fprintf(f, ",\"cpu_window_s\":%.3f", window);
    fprintf(f, ",\"delivered_per_server_cpu_s\":%.1f",
            server_cpu > 0 ? (double)tot.delivered / server_cpu : -1);
    if (o.nserver_pids > 1) {
        fprintf(f, ",\"server_pids\":[");
        for (uint32_t i = 0; i < o.nserver_pids; i++)
            fprintf(f, "%s%d", i ? "," : "", o.server_pids[i]);
        fprintf(f, "],\"node_cpu_s\":[");
        for (uint32_t i = 0; i < o.nserver_pids; i++)
            fprintf(f, "%s%.3f", i ? "," : "", cpu0 >= 0 && cpu1 >= 0 ? node1[i] - node0[i] : -1.0);
        fprintf(f, "]");
    }
    if (o.naux) {
        fprintf(f, ",\"aux_cpu_s\":{");
        for (uint32_t i = 0; i < o.naux; i++) {
            fprintf(f, "%s", i ? "," : "");
            json_str(f, o.aux_names[i]);
            fprintf(f, ":%.3f",
                    cpu0 >= 0 && aux0[i] >= 0 && aux1[i] >= 0 ? aux1[i] - aux0[i] : -1.0);
        }
        fprintf(f, "}");
    }
    fprintf(f,
            ",\"server_rss_kb\":{\"before\":%" PRId64 ",\"ready\":%" PRId64 ",\"after\":%" PRId64
            ",\"quiet\":%" PRId64 "}",
            rss_before, rss_ready, rss_after, rss_quiet);
    if (o.sc == SC_IDLE || o.sc == SC_CONNECT) {
        uint64_t n = o.sc == SC_IDLE ? tot.established : tot.connects;
        fprintf(f, ",\"rss_per_conn_bytes\":%.0f",
                n && rss_after >= 0 && rss_before >= 0
                    ? (double)(rss_after - rss_before) * 1024.0 / (double)n
                    : -1);
        fprintf(f, ",\"kernel_tcp_mem_per_conn_bytes\":%.0f",
                n && ss_after.mem_pages >= 0
                    ? (double)(ss_after.mem_pages - ss_before.mem_pages) * 4096.0 / (double)n
                    : -1);
        /* Both ends of every connection are on this machine: this is per pair of sockets. */
        fprintf(f, ",\"kernel_slab_per_conn_bytes\":%.0f",
                n && slab_before >= 0 && slab_after >= 0
                    ? (double)(slab_after - slab_before) * 1024.0 / (double)n
                    : -1);
    }
    fprintf(f, ",\"sockstat_tcp\":{");
    const sockstat_t *sv[3] = {&ss_before, &ss_ready, &ss_after};
    const char *sn[3] = {"before", "ready", "after"};
    for (int i = 0; i < 3; i++)
        fprintf(f,
                "%s\"%s\":{\"inuse\":%" PRId64 ",\"tw\":%" PRId64 ",\"alloc\":%" PRId64
                ",\"mem_pages\":%" PRId64 "}",
                i ? "," : "", sn[i], sv[i]->inuse, sv[i]->tw, sv[i]->alloc, sv[i]->mem_pages);
    fprintf(f, "}");
    if (o.sc == SC_CHURN) {
        fprintf(f, ",\"churn\":[");
        for (uint32_t i = 0; i < tot.churn_n; i++)
            fprintf(f,
                    "%s{\"rss_open_kb\":%" PRId64 ",\"rss_closed_kb\":%" PRId64
                    ",\"close_cpu_ms\":%.1f}",
                    i ? "," : "", tot.churn_open_kb[i], tot.churn_closed_kb[i],
                    tot.churn_close_cpu_s[i] * 1000.0);
        fprintf(f, "]");
    }
    fprintf(f, "}\n");
    fflush(f);
    if (code != EXIT_OK)
        fprintf(stderr, "loadgen: %s\n", verdict);
    free(ch);
    return code;
}
