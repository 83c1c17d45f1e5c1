/* RFC 6455 frame parsing, server side: client frames in the caller's buffer,
 * unmasked in place, one event per call. Protocol checks happen as early as
 * the bytes allow (the first two header bytes, then the length, then each
 * payload byte for text), so a misbehaving peer is refused before it has sent
 * a whole frame. Message assembly and I/O belong to the caller. */
#include "ws/ws_frame.h"

#include "ws/ws_deflate.h"

#include <assert.h>
#include <string.h>

void ws_parser_init(ws_parser_t *p, uint64_t max_message) {
    memset(p, 0, sizeof(*p));
    p->max_message = max_message;
    p->utf8 = TT_UTF8_ACCEPT;
}

bool ws_close_code_is_valid(uint16_t code) {
    return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1011) ||
           (code >= 3000 && code <= 4999);
}

void ws_mask_apply(uint8_t *p, size_t n, const uint8_t mask[4], size_t offset) {
    /* Rotate the key so that byte 0 of p lines up with key byte offset % 4,
     * then XOR eight bytes per step with a word built from it. */
    uint8_t k[8];
    for (size_t i = 0; i < 8; i++)
        k[i] = mask[(offset + i) & 3];
    uint64_t kw;
    memcpy(&kw, k, 8);
    size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        uint64_t w[4];
        memcpy(w, p + i, 32);
        w[0] ^= kw;
        w[1] ^= kw;
        w[2] ^= kw;
        w[3] ^= kw;
        memcpy(p + i, w, 32);
    }
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, p + i, 8);
        w ^= kw;
        memcpy(p + i, &w, 8);
    }
    for (; i < n; i++)
        p[i] ^= k[i & 7];
}

/* Latches the error: the connection is going down, and every later call must
 * say the same thing rather than parse bytes from a desynchronised stream. */
static size_t fail(ws_parser_t *p, ws_event_t *ev, uint16_t code, const char *reason) {
    p->failed = true;
    p->fail_code = code;
    p->fail_reason = reason;
    ev->type = WS_EV_ERROR;
    ev->close_code = code;
    ev->reason = reason;
    return 0;
}

static bool opcode_is_known(uint8_t op) {
    return op == WS_OP_CONT || op == WS_OP_TEXT || op == WS_OP_BINARY || op == WS_OP_CLOSE ||
           op == WS_OP_PING || op == WS_OP_PONG;
}

/* Checks a complete close payload and fills the event. */
static size_t close_event(ws_parser_t *p, ws_event_t *ev, uint8_t *pl, size_t n, size_t used) {
    if (n == 0) {
        ev->type = WS_EV_CLOSE;
        ev->close_code = WS_CLOSE_NO_STATUS;
        ev->payload = pl;
        ev->len = 0;
        return used;
    }
    if (n == 1)
        return fail(p, ev, WS_CLOSE_PROTOCOL, "close payload of 1 byte");
    uint16_t code = (uint16_t)((pl[0] << 8) | pl[1]);
    if (!ws_close_code_is_valid(code))
        return fail(p, ev, WS_CLOSE_PROTOCOL, "invalid close code");
    if (!tt_utf8_is_valid(pl + 2, n - 2))
        return fail(p, ev, WS_CLOSE_INVALID_DATA, "invalid UTF-8 in close reason");
    ev->type = WS_EV_CLOSE;
    ev->close_code = code;
    ev->payload = pl + 2;
    ev->len = n - 2;
    return used;
}

size_t ws_parser_execute(ws_parser_t *p, uint8_t *buf, size_t len, ws_event_t *ev) {
    memset(ev, 0, sizeof(*ev));
    if (p->failed)
        return fail(p, ev, p->fail_code, p->fail_reason);
    ev->type = WS_EV_NEED_MORE;
    if (len < 2)
        return 0;

    /* Everything the first two bytes can refuse, refused now. */
    uint8_t b0 = buf[0], b1 = buf[1];
    bool fin = (b0 & 0x80) != 0;
    uint8_t op = b0 & 0x0F;
    bool control = (op & 0x08) != 0;
    if (b0 & 0x30)
        return fail(p, ev, WS_CLOSE_PROTOCOL, "reserved bits set");
    if (!opcode_is_known(op))
        return fail(p, ev, WS_CLOSE_PROTOCOL, "reserved opcode");
    bool rsv1 = (b0 & 0x40) != 0;
    if (rsv1 && !p->deflate)
        return fail(p, ev, WS_CLOSE_PROTOCOL, "reserved bits set");
    if (rsv1 && control)
        return fail(p, ev, WS_CLOSE_PROTOCOL, "RSV1 on a control frame");
    if (rsv1 && op == WS_OP_CONT)
        return fail(p, ev, WS_CLOSE_PROTOCOL, "RSV1 on a continuation frame");
    if (!(b1 & 0x80))
        return fail(p, ev, WS_CLOSE_PROTOCOL, "unmasked frame");
    if (control && !fin)
        return fail(p, ev, WS_CLOSE_PROTOCOL, "fragmented control frame");
    if (control && (b1 & 0x7F) > WS_MAX_CONTROL)
        return fail(p, ev, WS_CLOSE_PROTOCOL, "control frame over 125 bytes");
    if (op == WS_OP_CONT && !p->in_message)
        return fail(p, ev, WS_CLOSE_PROTOCOL, "continuation with no message");
    if ((op == WS_OP_TEXT || op == WS_OP_BINARY) && p->in_message)
        return fail(p, ev, WS_CLOSE_PROTOCOL, "new message inside a fragmented message");

    /* The length, and the size limit as soon as the length is known (before
     * the mask key, so an oversized frame is refused at the earliest byte). */
    size_t ext = (b1 & 0x7F) == 126 ? 2 : (b1 & 0x7F) == 127 ? 8 : 0;
    if (len < 2 + ext)
        return 0;
    uint64_t plen = b1 & 0x7F;
    if (ext) {
        plen = 0;
        for (size_t i = 0; i < ext; i++)
            plen = (plen << 8) | buf[2 + i];
        if (plen >> 63)
            return fail(p, ev, WS_CLOSE_PROTOCOL, "64-bit length with the top bit set");
    }
    /* Of a data frame: does its message travel compressed? */
    bool compressed = op == WS_OP_CONT ? p->msg_compressed : rsv1;
    if (!control) {
        /* msg_len never exceeds the limit, so the subtraction is safe. */
        uint64_t limit = compressed ? ws_deflate_wire_max(p->max_message) : p->max_message;
        uint64_t so_far = p->in_message ? p->msg_len : 0;
        if (plen > limit - so_far)
            return fail(p, ev, WS_CLOSE_TOO_BIG, "message too big");
    }
    size_t hlen = 2 + ext + 4;
    if (len < hlen)
        return 0;

    /* Unmask (and for text, validate) whatever payload arrived that the
     * previous calls have not already seen. */
    const uint8_t *mask = buf + 2 + ext;
    uint8_t *pl = buf + hlen;
    size_t avail = len - hlen;
    size_t have = plen < avail ? (size_t)plen : avail;
    uint8_t msg_op = op == WS_OP_CONT ? p->msg_opcode : op;
    assert(p->frame_done <= have); /* the caller re-presents the frame, never less of it */
    /* p->utf8 is ACCEPT whenever no text message is open (a message resets
     * it when it ends), so a new text frame needs no reset here. */
    if (have > p->frame_done) {
        ws_mask_apply(pl + p->frame_done, have - p->frame_done, mask, p->frame_done);
        if (msg_op == WS_OP_TEXT && !compressed) {
            p->utf8 = tt_utf8_feed(p->utf8, pl + p->frame_done, have - p->frame_done);
            if (p->utf8 == TT_UTF8_REJECT)
                return fail(p, ev, WS_CLOSE_INVALID_DATA, "invalid UTF-8 in text");
        }
        p->frame_done = have;
    }
    if (have < plen)
        return 0;

    /* The frame is complete. */
    size_t used = hlen + (size_t)plen;
    p->frame_done = 0;
    if (op == WS_OP_CLOSE)
        return close_event(p, ev, pl, (size_t)plen, used);
    if (control) {
        ev->type = op == WS_OP_PING ? WS_EV_PING : WS_EV_PONG;
        ev->payload = pl;
        ev->len = (size_t)plen;
        return used;
    }
    if (fin && msg_op == WS_OP_TEXT && p->utf8 != TT_UTF8_ACCEPT)
        return fail(p, ev, WS_CLOSE_INVALID_DATA, "truncated UTF-8 at the end of a text message");
    ev->type = WS_EV_DATA;
    ev->opcode = msg_op;
    ev->fin = fin;
    ev->first = !p->in_message;
    ev->compressed = compressed;
    ev->payload = pl;
    ev->len = (size_t)plen;
    if (fin) {
        p->in_message = false;
        p->msg_opcode = 0;
        p->msg_compressed = false;
        p->msg_len = 0;
        p->utf8 = TT_UTF8_ACCEPT;
    } else {
        p->in_message = true;
        p->msg_opcode = msg_op;
        p->msg_compressed = compressed;
        p->msg_len += plen;
    }
    return used;
}
