/* Encodings of an outgoing message: the plain frame, in place, and the
 * permessage-deflate frame, compressed once. */
#include "ws/ws_msg.h"

#include "ws/ws_frame.h"

_Static_assert(TT_MSG_HEADROOM >= WS_MAX_SERVER_HEADER, "headroom for the longest header");

static uint8_t msg_opcode(const tt_msg_t *m) {
    return m->binary ? WS_OP_BINARY : WS_OP_TEXT;
}

tt_buf_t *ws__msg_frame_now(tt_msg_t *m) {
    uint8_t hdr[WS_MAX_SERVER_HEADER];
    size_t hlen = ws_frame_header_write(hdr, true, msg_opcode(m), m->payload_len);
    tt_buf_t *b = m->buf;
    b->off = (uint32_t)(m->payload_off - hlen);
    for (size_t i = 0; i < hlen; i++)
        b->data[b->off + i] = hdr[i];
    b->len = (uint32_t)(m->payload_len + hlen);
    return b;
}

/* Compresses m once: its own buffer, the header written in front of the
 * compressed bytes (the headroom reserved for the longest header), or the
 * plain frame when that would be no larger. */
static tt_buf_t *deflate_now(tt_msg_t *m, ws_deflater_t *d) {
    size_t n = m->payload_len;
    tt_buf_t *b = tt_buf_new(WS_MAX_SERVER_HEADER + n);
    uint8_t *out = b->data + WS_MAX_SERVER_HEADER;
    /* At most n bytes: a compressed payload as long as the plain one (its
     * header may be longer, never shorter) is not worth the RSV1 bit. */
    size_t clen = ws_deflater_compress(d, tt_msg_payload(m), n, out, n);
    if (clen == 0 || ws_frame_header_len(clen) + clen >= ws_frame_header_len(n) + n) {
        tt_buf_unref(b);
        return tt_buf_ref(ws_msg_frame(m));
    }
    uint8_t hdr[WS_MAX_SERVER_HEADER];
    size_t hlen = ws_frame_header_write(hdr, true, msg_opcode(m), clen);
    hdr[0] |= 0x40; /* RSV1: this message is compressed (RFC 7692 section 6) */
    b->off = (uint32_t)(WS_MAX_SERVER_HEADER - hlen);
    for (size_t i = 0; i < hlen; i++)
        b->data[b->off + i] = hdr[i];
    b->len = (uint32_t)(hlen + clen);
    return b;
}

tt_buf_t *ws_msg_frame_deflate(tt_msg_t *m, const ws_msg_deflate_t *cfg, unsigned bits) {
    /* Our encoding uses a 15-bit window: valid as such for a 15-bit client,
     * and for a smaller window N when no distance can reach 2^N. */
    if (m->payload_len < cfg->min || (bits < 15 && m->payload_len > (1u << bits)))
        return ws_msg_frame(m);
    if (m->deflated == NULL)
        m->deflated = deflate_now(m, cfg->deflater);
    return m->deflated;
}
