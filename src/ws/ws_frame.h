/* RFC 6455 frame codec: pure, no I/O, no allocation.
 *
 * The parser reads server-side input (client frames, which must be masked)
 * from a buffer the caller owns, unmasks payloads in place, validates text as
 * UTF-8 incrementally across fragments and across partial reads (fail fast),
 * and enforces the size limit. It reports one event per call. The caller owns
 * message assembly of fragmented messages (it appends each WS_EV_DATA payload
 * when fin is false or a message is already in progress).
 *
 * The writer produces server frames (never masked). */
#ifndef TT_WS_FRAME_H
#define TT_WS_FRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/utf8.h"

enum {
    WS_OP_CONT = 0x0,
    WS_OP_TEXT = 0x1,
    WS_OP_BINARY = 0x2,
    WS_OP_CLOSE = 0x8,
    WS_OP_PING = 0x9,
    WS_OP_PONG = 0xA,
};

/* Close codes (RFC 6455 section 7.4.1). */
enum {
    WS_CLOSE_NORMAL = 1000,
    WS_CLOSE_GOING_AWAY = 1001,
    WS_CLOSE_PROTOCOL = 1002,
    WS_CLOSE_UNSUPPORTED = 1003,
    WS_CLOSE_NO_STATUS = 1005, /* never sent on the wire */
    WS_CLOSE_ABNORMAL = 1006,  /* never sent on the wire */
    WS_CLOSE_INVALID_DATA = 1007,
    WS_CLOSE_POLICY = 1008,
    WS_CLOSE_TOO_BIG = 1009,
    WS_CLOSE_INTERNAL = 1011,
};

#define WS_MAX_HEADER 14        /* 2 + 8 (64-bit length) + 4 (mask) */
#define WS_MAX_SERVER_HEADER 10 /* server frames carry no mask */
#define WS_MAX_CONTROL 125

typedef enum {
    WS_EV_NEED_MORE = 0, /* nothing complete: keep buf from the returned offset, read more */
    WS_EV_DATA,          /* a complete text/binary/continuation frame */
    WS_EV_PING,
    WS_EV_PONG,
    WS_EV_CLOSE,
    WS_EV_ERROR, /* protocol violation: close with ev.close_code, ev.reason */
} ws_event_type_t;

typedef struct ws_event_s {
    ws_event_type_t type;
    /* WS_EV_DATA: the message's opcode (WS_OP_TEXT or WS_OP_BINARY, also
     * for continuation frames), whether this frame ends the message, and
     * whether it is the message's first frame. */
    uint8_t opcode;
    bool fin;
    bool first;
    /* WS_EV_DATA: the message is compressed (permessage-deflate: RSV1 on
     * its first frame); its payload is raw deflate data, not yet validated
     * as UTF-8: the caller inflates the whole message and validates that. */
    bool compressed;
    /* Unmasked payload, pointing into the caller's buffer (borrowed: valid
     * until the caller moves or overwrites those bytes). For WS_EV_CLOSE it
     * is the reason text (after the 2-byte code). */
    uint8_t *payload;
    size_t len;
    /* WS_EV_CLOSE: the peer's code (WS_CLOSE_NO_STATUS if the payload was
     * empty). WS_EV_ERROR: the code to close with. */
    uint16_t close_code;
    /* WS_EV_ERROR: a short static reason for the close frame and the log. */
    const char *reason;
} ws_event_t;

typedef struct ws_parser_s {
    /* Configuration: the largest message (sum of fragments) accepted; a
     * frame or message that would exceed it is WS_EV_ERROR with 1009. */
    uint64_t max_message;
    /* permessage-deflate was negotiated: RSV1 is allowed on the first frame
     * of a data message, whose compressed size may then reach
     * ws_deflate_wire_max(max_message) (the inflated size is the caller's
     * to limit). Set after ws_parser_init. */
    bool deflate;
    /* State; zeroed by ws_parser_init. */
    bool in_message;      /* a fragmented data message is open */
    uint8_t msg_opcode;   /* its opcode */
    bool msg_compressed;  /* its first frame had RSV1 */
    uint64_t msg_len;     /* payload bytes of the open message so far */
    tt_utf8_state_t utf8; /* validator state of the open text message */
    size_t frame_done;    /* payload bytes of the current (partial) frame already unmasked */
    bool failed;          /* after WS_EV_ERROR every call returns the same error */
    uint16_t fail_code;
    const char *fail_reason;
} ws_parser_t;

void ws_parser_init(ws_parser_t *p, uint64_t max_message);

/* Parses at most one frame from buf[0..len). buf must start at a frame
 * boundary, except that a frame reported as incomplete by the previous call
 * is presented again from its first byte (with more bytes after it): the
 * parser remembers how much of its payload it already unmasked and validated.
 *
 * Returns the number of bytes consumed from the front of buf (a whole frame
 * for an event; 0 with WS_EV_NEED_MORE, in which case the caller must keep
 * all of buf and call again when more bytes arrived). Partial frames are
 * unmasked and, for text, validated as far as they go, so invalid UTF-8 is
 * reported before the frame completes. The bytes of a partial frame are left
 * unmasked in buf: the caller keeps them as they are (it may move them, as a
 * whole, to the front of its buffer) and must not present a partial frame
 * with fewer bytes than before.
 *
 * WS_EV_ERROR consumes 0 bytes; the caller sends a close frame with
 * ev.close_code and ev.reason and stops reading. Violations are reported as
 * soon as the bytes that show them have arrived: those of the first two
 * header bytes with only those two bytes, a size over max_message as soon as
 * the length field is complete (before the mask key and the payload).
 * An event's payload, even an empty one, points into buf and ends exactly at
 * the end of the frame (buf + return value).
 *
 * Checks, each a WS_EV_ERROR with its close code: reserved bits set (1002;
 * RSV1 is allowed only with deflate, on the first frame of a data message),
 * reserved opcode (1002), unmasked frame (1002), control frame over 125
 * bytes or fragmented (1002), continuation with no open message or a new
 * data frame inside an open message (1002), 64-bit length with the top bit
 * set (1002), message over max_message (1009; compressed: over
 * ws_deflate_wire_max), invalid UTF-8 in uncompressed text (1007),
 * close payload of 1 byte, invalid close code or invalid UTF-8 reason (1002
 * for code/length, 1007 for the reason). */
size_t ws_parser_execute(ws_parser_t *p, uint8_t *buf, size_t len, ws_event_t *ev);

/* Writes a server frame header (FIN as given, no mask) for a payload of len
 * bytes into out; returns the header length (2, 4 or 10). */
size_t ws_frame_header_write(uint8_t out[WS_MAX_SERVER_HEADER], bool fin, uint8_t opcode,
                             uint64_t len);

/* Header length ws_frame_header_write would produce for len. */
size_t ws_frame_header_len(uint64_t len);

/* Writes a complete close frame (code in network order + reason, reason cut
 * to fit 125 bytes at a UTF-8 boundary) into out; returns its length.
 * out must hold WS_MAX_SERVER_HEADER + WS_MAX_CONTROL bytes. */
size_t ws_frame_close_write(uint8_t *out, uint16_t code, const char *reason);

/* True if code may appear in a close frame on the wire (1000-1003, 1007-1011,
 * 3000-4999). */
bool ws_close_code_is_valid(uint16_t code);

/* XORs p[0..n) with the mask, starting at mask byte (offset % 4). */
void ws_mask_apply(uint8_t *p, size_t n, const uint8_t mask[4], size_t offset);

#endif
