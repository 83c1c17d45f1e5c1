/* WebSocket connections: frames from the codec (src/ws) become chat
 * messages (src/chat) or, on /echo, are sent back. Unfragmented messages
 * are handed over in place, straight from the read buffer; only fragmented
 * messages are assembled, in a buffer freed when the message is done. */
#include "net/net.h"

#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/xmalloc.h"

static void send_frame(conn_t *c, uint8_t opcode, const uint8_t *payload, size_t len) {
    size_t h = ws_frame_header_len(len);
    tt_buf_t *b = tt_buf_new(h + len);
    ws_frame_header_write(b->data, true, opcode, len);
    if (len)
        memcpy(b->data + h, payload, len);
    b->len = (uint32_t)(h + len);
    conn_send_buf(c, b);
    tt_buf_unref(b);
}

void conn_ws_close(conn_t *c, uint16_t code, const char *reason) {
    if (!(c->flags & CONN_F_CLOSE_SENT) && !(c->flags & CONN_F_DEAD)) {
        uint8_t frame[WS_MAX_SERVER_HEADER + WS_MAX_CONTROL];
        size_t n = ws_frame_close_write(frame, code, reason);
        conn_send_close_frame(c, frame, n);
        if (code != WS_CLOSE_NORMAL && code != WS_CLOSE_GOING_AWAY)
            server_log_refusal(c->srv, "%s: closing with %u: %s", c->peer, code, reason);
    }
    conn_close_after_flush(c, reason);
}

void conn_ws_ping(conn_t *c) {
    send_frame(c, WS_OP_PING, (const uint8_t *)"tertulia", 8);
}

void conn_ws_start(conn_t *c, bool v1, bool echo) {
    c->proto = CONN_WS;
    ws_parser_init(&c->wsp, c->srv->cfg.max_message);
    if (echo)
        c->flags |= CONN_F_ECHO;
    else
        c->session = chat_session_open(c->srv->chat, c, v1, c->peer);
}

static void deliver(conn_t *c, uint8_t opcode, uint8_t *data, size_t len) {
    if (c->flags & CONN_F_ECHO) {
        send_frame(c, opcode, data, len);
        return;
    }
    if (opcode == WS_OP_BINARY) {
        conn_ws_close(c, WS_CLOSE_UNSUPPORTED, "binary messages are not accepted");
        return;
    }
    if (c->session != NULL)
        chat_session_on_text(c->srv->chat, c->session, (const char *)data, len);
}

static void on_data(conn_t *c, const ws_event_t *ev) {
    if (ev->first && ev->fin) {
        deliver(c, ev->opcode, ev->payload, ev->len); /* in place, no copy */
        return;
    }
    /* The parser has checked the total against max_message already. */
    if (c->msg_len + ev->len > c->msg_cap) {
        size_t cap = c->msg_cap ? c->msg_cap : 4096;
        while (cap < c->msg_len + ev->len)
            cap *= 2;
        c->msg = xrealloc(c->msg, cap);
        c->msg_cap = cap;
    }
    if (ev->len)
        memcpy(c->msg + c->msg_len, ev->payload, ev->len);
    c->msg_len += ev->len;
    if (!ev->fin)
        return;
    deliver(c, ev->opcode, c->msg, c->msg_len);
    free(c->msg);
    c->msg = NULL;
    c->msg_len = c->msg_cap = 0;
}

size_t conn_ws_process(conn_t *c, uint8_t *data, size_t len) {
    if (c->flags & CONN_F_CLOSING) {
        /* After our close frame only the peer's close matters; anything
         * else is read and dropped until it arrives or the linger ends. */
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
            c->flags |= CONN_F_HARD_CLOSE;
            return len;
        }
        return n;
    }
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
        c->ping_sent = 0;
        break;
    case WS_EV_CLOSE: {
        if (c->close_reason == NULL)
            c->close_reason = "closed by client";
        /* Echo the peer's code (none if it sent none), then close TCP. */
        if (ev.close_code == WS_CLOSE_NO_STATUS) {
            uint8_t frame[WS_MAX_SERVER_HEADER];
            size_t h = ws_frame_header_write(frame, true, WS_OP_CLOSE, 0);
            conn_send_close_frame(c, frame, h);
        } else {
            conn_ws_close(c, ev.close_code, "");
        }
        c->flags |= CONN_F_HARD_CLOSE;
        conn_close_after_flush(c, "closed by client");
        return len;
    }
    case WS_EV_ERROR:
        tt_log_debug("%s: websocket protocol error: %s", c->peer, ev.reason); /* and below */
        conn_ws_close(c, ev.close_code, ev.reason);
        return len;
    }
    return n;
}

static void io_send(void *io_ctx, void *conn, tt_buf_t *frame) {
    (void)io_ctx;
    conn_send_buf(conn, frame);
}

static void io_close(void *io_ctx, void *conn, uint16_t code, const char *reason) {
    (void)io_ctx;
    conn_ws_close(conn, code, reason);
}

const chat_io_t conn_chat_io = {.send = io_send, .close = io_close};
