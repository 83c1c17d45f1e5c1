/* The WebSocket endpoint: frames from the codec (src/ws) become chat
 * messages (src/chat) or, on /echo, are sent back. Unfragmented messages
 * are handed over in place, straight from the read buffer; only fragmented
 * messages are assembled, in a buffer freed when the message is done.
 * A compressed message (permessage-deflate) is inflated whole, once its
 * last frame is in, by the loop's one inflater into the inflater's buffer,
 * and handed over from there. */
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/xmalloc.h"
#include "server/server_int.h"
#include "ws/ws_msg.h"

static ws_conn_t *ws_of(tt_stream_t *s) {
    return &((conn_ext_t *)tt_stream_ext(s))->ws;
}

static void send_frame(ws_conn_t *c, uint8_t opcode, const uint8_t *payload, size_t len) {
    size_t h = ws_frame_header_len(len);
    tt_buf_t *b = tt_buf_new(h + len);
    ws_frame_header_write(b->data, true, opcode, len);
    if (len)
        memcpy(b->data + h, payload, len);
    b->len = (uint32_t)(h + len);
    tt_stream_send_buf(c->base.s, b);
    tt_buf_unref(b);
}

/* Puts the connection on the reap list so its chat session is closed at a
 * safe point (never inside a chat callback). */
static void mark_reap(ws_conn_t *c) {
    if (c->session == NULL || tt_link_is_linked(&c->reap))
        return;
    tt_list_insert_tail(&c->base.srv->reap, &c->reap);
}

/* The first close code of the connection, and who sent it. */
static void note_close(ws_conn_t *c, uint16_t code, uint8_t by) {
    if (c->close_by == WS_BY_NONE) {
        c->close_code = code;
        c->close_by = by;
    }
}

#define SERVER_CLOSE_CASE_(n)                                                                      \
    case n:                                                                                        \
        return WS_CODE_##n;
static int close_index(uint16_t code) {
    switch (code) { SERVER_WS_CLOSE_CODES(SERVER_CLOSE_CASE_) }
    return WS_CODE_OTHER;
}

static void close_frame(ws_conn_t *c, uint16_t code, const char *reason) {
    if (c->flags & WSC_CLOSE_SENT)
        return;
    note_close(c, code, WS_BY_SERVER);
    c->flags |= WSC_CLOSE_SENT;
    uint8_t frame[WS_MAX_SERVER_HEADER + WS_MAX_CONTROL];
    size_t n = ws_frame_close_write(frame, code, reason);
    tt_stream_send_final(c->base.s, frame, n);
}

void ws_conn_close(ws_conn_t *c, uint16_t code, const char *reason) {
    if (!(c->flags & WSC_CLOSE_SENT) && !tt_stream_is_closing(c->base.s)) {
        if (code != WS_CLOSE_NORMAL && code != WS_CLOSE_GOING_AWAY)
            server_log_refusal(c->base.srv, "%s: closing with %u: %s", tt_stream_peer(c->base.s),
                               code, reason);
    }
    close_frame(c, code, reason);
    tt_stream_close_after_flush(c->base.s, reason);
    mark_reap(c);
}

void ws_conn_adopt(server_t *srv, tt_stream_t *s, bool v1, bool echo, ip_count_t *ip,
                   const ws_deflate_params_t *deflate) {
    ws_conn_t *c = ws_of(s);
    uint64_t id = c->base.id; /* the HTTP endpoint's: the connection's number */
    memset(c, 0, sizeof(*c));
    c->base.id = id;
    c->base.s = s;
    c->base.srv = srv;
    c->base.kind = EP_WS;
    c->ip = ip;
    c->last_active = c->opened = tt_loop_now(srv->loop);
    ws_parser_init(&c->wsp, srv->cfg.max_message);
    size_t in = srv->cfg.max_message + WS_MAX_HEADER;
    if (deflate->on && srv->inflater != NULL) {
        c->deflate_bits = deflate->server_max_bits;
        c->wsp.deflate = true;
        in = ws_deflate_wire_max(srv->cfg.max_message) + WS_MAX_HEADER;
    }
    tt_stream_set_handler(s, &ws_conn_handler);
    tt_stream_set_max_queue(s, srv->cfg.max_queue);
    tt_stream_set_max_input(s, (in > 16384 ? in : 16384) + 65536);
    if (v1)
        c->flags |= WSC_V1;
    srv->counters.ws_opened[echo ? 2 : v1 ? 0 : 1]++;
    if (echo)
        c->flags |= WSC_ECHO;
    else
        c->session = chat_session_open(srv->chat, c, v1, tt_stream_peer(s));
}

/* A message's frame for this connection: the compressed one when it
 * negotiated permessage-deflate (made once per message, for everyone). */
static void send_msg(ws_conn_t *c, tt_msg_t *msg) {
    tt_buf_t *b = c->deflate_bits
                      ? ws_msg_frame_deflate(msg, &c->base.srv->deflate, c->deflate_bits)
                      : ws_msg_frame(msg);
    tt_stream_send_buf(c->base.s, b);
}

/* /echo: the message goes back through the same path as the chat's. */
static void echo(ws_conn_t *c, uint8_t opcode, const uint8_t *data, size_t len) {
    tt_buf_t *b = tt_buf_new(TT_MSG_RESERVE + len);
    b->off = TT_MSG_RESERVE;
    b->len = (uint32_t)len;
    if (len)
        memcpy(b->data + b->off, data, len);
    tt_msg_t *m = tt_msg_new(b);
    m->binary = opcode == WS_OP_BINARY;
    send_msg(c, m);
    tt_msg_unref(m);
}

static void deliver(ws_conn_t *c, uint8_t opcode, const uint8_t *data, size_t len) {
    c->messages_in++;
    if (c->flags & WSC_ECHO) {
        echo(c, opcode, data, len);
        return;
    }
    if (opcode == WS_OP_BINARY) {
        ws_conn_close(c, WS_CLOSE_UNSUPPORTED, "binary messages are not accepted");
        return;
    }
    if (c->session != NULL)
        chat_session_on_text(c->base.srv->chat, c->session, (const char *)data, len);
}

/* A compressed message, whole: inflated (at most max_message bytes, the
 * rest never inflated), validated, delivered. */
static void deliver_compressed(ws_conn_t *c, uint8_t opcode, const uint8_t *data, size_t len) {
    server_t *srv = c->base.srv;
    const uint8_t *out;
    size_t n;
    switch (ws_inflater_run(srv->inflater, data, len, opcode == WS_OP_TEXT, srv->cfg.max_message,
                            &out, &n)) {
    case WS_INFLATE_OK:
        deliver(c, opcode, out, n);
        break;
    case WS_INFLATE_TOO_BIG:
        ws_conn_close(c, WS_CLOSE_TOO_BIG, "message too big");
        break;
    case WS_INFLATE_BAD:
        ws_conn_close(c, WS_CLOSE_INVALID_DATA, "invalid compressed data");
        break;
    case WS_INFLATE_UTF8:
        ws_conn_close(c, WS_CLOSE_INVALID_DATA, "invalid UTF-8 in text");
        break;
    }
}

static void on_data(ws_conn_t *c, const ws_event_t *ev) {
    if (ev->first && ev->fin) {
        if (ev->compressed)
            deliver_compressed(c, ev->opcode, ev->payload, ev->len);
        else
            deliver(c, ev->opcode, ev->payload, ev->len); /* in place, no copy */
        return;
    }
    /* The parser has checked the total against max_message already: at most
     * ws_deflate_wire_max(max_message), and --max-message is at
     * most 1 GiB: the sizes, and a capacity doubled past them, fit in 32 bits. */
    size_t need = (size_t)c->msg_len + ev->len;
    if (need > c->msg_cap) {
        size_t cap = c->msg_cap ? c->msg_cap : 4096;
        while (cap < need)
            cap *= 2;
        c->msg = xrealloc(c->msg, cap);
        c->msg_cap = (uint32_t)cap;
    }
    if (ev->len)
        memcpy(c->msg + c->msg_len, ev->payload, ev->len);
    c->msg_len = (uint32_t)need;
    if (!ev->fin)
        return;
    if (ev->compressed)
        deliver_compressed(c, ev->opcode, c->msg, c->msg_len);
    else
        deliver(c, ev->opcode, c->msg, c->msg_len);
    free(c->msg);
    c->msg = NULL;
    c->msg_len = c->msg_cap = 0;
}

/* After our close frame only the peer's close matters; anything else is
 * read and dropped until it arrives or the linger ends. */
static size_t read_closing(ws_conn_t *c, uint8_t *data, size_t len) {
    if (c->wsp.failed)
        return len;
    ws_event_t ev;
    size_t n = ws_parser_execute(&c->wsp, data, len, &ev);
    if (ev.type == WS_EV_NEED_MORE)
        return n; /* keep the partial frame: the parser has unmasked part of it */
    if (ev.type == WS_EV_ERROR)
        return len;
    if (ev.type == WS_EV_CLOSE) {
        /* Close handshake complete: the server closes TCP first. */
        tt_stream_set_hard_close(c->base.s);
        return len;
    }
    return n;
}

static size_t on_read(tt_stream_t *s, uint8_t *data, size_t len) {
    ws_conn_t *c = ws_of(s);
    /* Any input shows the peer is alive. */
    c->last_active = tt_loop_now(c->base.srv->loop);
    c->ping_sent = 0;
    if (tt_stream_is_closing(s))
        return read_closing(c, data, len);
    ws_event_t ev;
    size_t n = ws_parser_execute(&c->wsp, data, len, &ev);
    switch (ev.type) {
    case WS_EV_NEED_MORE:
        return n;
    case WS_EV_DATA:
        on_data(c, &ev);
        break;
    case WS_EV_PING:
        send_frame(c, WS_OP_PONG, ev.payload, ev.len);
        break;
    case WS_EV_PONG:
        break;
    case WS_EV_CLOSE:
        /* Echo the peer's code (none if it sent none), then close TCP. Not
         * a refusal of ours, whatever the code (4000 included): no log. */
        /* 1000 is a goodbye on purpose: the user ends now (PROTOCOL.md,
         * "Accounts and sessions"), without the grace time of a drop. */
        if (ev.close_code == WS_CLOSE_NORMAL)
            c->presence_reason = "quit";
        note_close(c, ev.close_code, WS_BY_CLIENT);
        if (ev.close_code == WS_CLOSE_NO_STATUS) {
            uint8_t frame[WS_MAX_SERVER_HEADER];
            size_t h = ws_frame_header_write(frame, true, WS_OP_CLOSE, 0);
            c->flags |= WSC_CLOSE_SENT;
            tt_stream_send_final(s, frame, h);
        } else {
            close_frame(c, ev.close_code, "");
        }
        tt_stream_close_after_flush(s, "closed by client");
        tt_stream_set_hard_close(s);
        mark_reap(c);
        return len;
    case WS_EV_ERROR:
        tt_log_debug("%s: websocket protocol error: %s", tt_stream_peer(s), ev.reason);
        ws_conn_close(c, ev.close_code, ev.reason);
        return len;
    }
    return n;
}

static void on_eof(tt_stream_t *s) {
    /* The peer ended its side without a close frame; it may still read.
     * A chat session first runs every request that came (their replies go
     * out), then asks for the close (io_close). Otherwise: what is queued
     * goes out, then the socket closes. */
    ws_conn_t *c = ws_of(s);
    if (c->session != NULL && !tt_stream_is_closing(s)) {
        chat_session_end_of_input(c->base.srv->chat, c->session);
        return;
    }
    tt_stream_close_after_flush(s, "disconnect");
    tt_stream_set_hard_close(s);
    mark_reap(c);
}

static void on_overflow(tt_stream_t *s, size_t want) {
    ws_conn_t *c = ws_of(s);
    if (c->flags & WSC_CLOSE_SENT)
        return;
    server_log_refusal(c->base.srv, "%s: closing slow consumer (%zu bytes unsent, limit %zu)",
                       tt_stream_peer(s), tt_stream_queued(s) + want, c->base.srv->cfg.max_queue);
    /* The client is not reading: a close frame queued behind a megabyte
     * would never arrive, so drop the backlog first. */
    tt_stream_drop_unsent(s);
    ws_conn_close(c, WS_CLOSE_POLICY, "too slow: unsent data over the limit");
    tt_stream_set_hard_close(s);
}

static void on_close(tt_stream_t *s) {
    ws_conn_t *c = ws_of(s);
    server_t *srv = c->base.srv;
    /* No close frame either way: 1006, the connection dropped. */
    note_close(c, 1006, WS_BY_CLIENT);
    srv->counters.ws_closes[c->close_by == WS_BY_SERVER ? 0 : 1][close_index(c->close_code)]++;
    tt_link_unlink(&c->reap);
    /* Outside any chat callback here, so the session can be closed now. */
    if (c->session != NULL) {
        chat_session_t *session = c->session;
        c->session = NULL;
        chat_session_close(srv->chat, session,
                           c->presence_reason ? c->presence_reason : "disconnect");
    }
    server_ws_release(srv, c->ip);
    c->ip = NULL;
    free(c->msg);
    c->msg = NULL;
}

const tt_stream_handler_t ws_conn_handler = {
    .on_read = on_read,
    .on_eof = on_eof,
    .on_overflow = on_overflow,
    .on_close = on_close,
};

void ws_conn_sweep(ws_conn_t *c, uint64_t now) {
    server_t *srv = c->base.srv;
    if (srv->cfg.ping_ms == 0)
        return;
    if (c->ping_sent != 0 && now - c->ping_sent >= srv->cfg.ping_ms) {
        server_log_refusal(srv, "%s: no answer to keepalive ping: closing",
                           tt_stream_peer(c->base.s));
        c->presence_reason = "timeout";
        ws_conn_close(c, WS_CLOSE_GOING_AWAY, "idle timeout");
        tt_stream_set_hard_close(c->base.s);
    } else if (c->ping_sent == 0 && now - c->last_active >= srv->cfg.ping_ms) {
        send_frame(c, WS_OP_PING, (const uint8_t *)"tertulia", 8);
        c->ping_sent = now;
    }
}

void server_reap_all(server_t *srv) {
    /* Closing a session tells the others (member_left), which can overflow
     * another slow queue and add it to the list: loop until empty. */
    tt_link_t *l;
    while ((l = tt_list_first(&srv->reap)) != NULL) {
        tt_link_unlink(l);
        ws_conn_t *c = tt_container_of(l, ws_conn_t, reap);
        if (c->session != NULL) {
            chat_session_t *session = c->session;
            c->session = NULL;
            chat_session_close(srv->chat, session,
                               c->presence_reason ? c->presence_reason : "disconnect");
        }
    }
}

static void io_send(void *io_ctx, void *conn, tt_msg_t *msg) {
    (void)io_ctx;
    /* Each encoding is built once per message, for every recipient. */
    send_msg(conn, msg);
}

/* What may be left out (typing) is, for a connection whose queue is half
 * full: it is behind, and chat messages come first. */
static void io_send_droppable(void *io_ctx, void *conn, tt_msg_t *msg) {
    (void)io_ctx;
    ws_conn_t *c = conn;
    if (tt_stream_queued(c->base.s) > c->base.srv->cfg.max_queue / 2)
        return;
    send_msg(conn, msg);
}

static void io_close(void *io_ctx, void *conn, uint16_t code, const char *reason) {
    (void)io_ctx;
    ws_conn_close(conn, code, reason);
}

const chat_io_t ws_conn_chat_io = {
    .send = io_send, .close = io_close, .send_droppable = io_send_droppable};
