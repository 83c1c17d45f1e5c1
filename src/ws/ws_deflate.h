/* permessage-deflate (RFC 7692): the negotiation, the loop-wide compressor
 * and the loop-wide inflater. Pure: no I/O; zlib does the compression.
 *
 * The server's choices, which make one compressed frame valid for every
 * recipient and keep no zlib state per connection:
 *   - it sends with no context takeover (server_no_context_takeover in
 *     every response): each message is compressed alone, so the frame made
 *     for the first recipient serves every other one;
 *   - it asks the client to do the same (client_no_context_takeover in every
 *     response: RFC 7692 section 7.1.1.2 lets a server include it whether
 *     or not the offer had it), so no inflate window outlives a message and
 *     one inflater per loop serves every connection;
 *   - it honours the client's server_max_window_bits=N by compressing only
 *     payloads of at most 2^N bytes (a back-reference never reaches outside
 *     its own message, so a 15-bit encoding of such a payload is valid for
 *     an N-bit window) and sending longer ones plain. */
#ifndef TT_WS_DEFLATE_H
#define TT_WS_DEFLATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/utf8.h"

/* What was agreed for one connection. */
typedef struct ws_deflate_params_s {
    bool on;                  /* permessage-deflate negotiated */
    uint8_t server_max_bits;  /* the client's server_max_window_bits (8..15); 15 if it set none */
    bool server_bits_offered; /* the accepted offer had server_max_window_bits: answer it */
} ws_deflate_params_t;

/* Goes through the offers of a Sec-WebSocket-Extensions value (several
 * header lines joined with ", "), in order, and accepts the first
 * permessage-deflate offer whose parameters are well formed:
 * server_no_context_takeover, client_no_context_takeover (no value),
 * server_max_window_bits (a value 8..15 required), client_max_window_bits
 * (a value 8..15 optional); values as tokens or quoted strings, decimal
 * without leading zeros. An offer with an unknown parameter, a duplicated
 * one or a bad value is declined and the next one considered; other
 * extensions are skipped. A value that is not a list of extensions at all
 * declines everything. Never fails: the handshake goes on without the
 * extension. Returns out->on. */
bool ws_deflate_negotiate(const char *value, size_t len, ws_deflate_params_t *out);

/* Writes the response header line ("Sec-WebSocket-Extensions: ...\r\n")
 * for p into out; returns its length, 0 when p is not on (no header) or if
 * cap is too small (callers give WS_DEFLATE_RESPONSE_MAX bytes); out is
 * then the empty string. */
#define WS_DEFLATE_RESPONSE_MAX 160
size_t ws_deflate_response_write(const ws_deflate_params_t *p, char *out, size_t cap);

/* The loop-wide compressor: one raw-deflate stream, reset per message. */
typedef struct ws_deflater_s ws_deflater_t;

/* level: zlib's 1..9. Aborts on out-of-memory. */
ws_deflater_t *ws_deflater_new(int level);
void ws_deflater_free(ws_deflater_t *d);

/* Compresses in[0..n) alone (no context from earlier messages) into out,
 * which holds cap bytes, and strips the final 00 00 ff ff as RFC 7692
 * section 7.2.1 says. Returns the compressed length, or 0 when it would not
 * fit in cap (the caller sends the payload plain: give cap = n to compress
 * only when that saves bytes). */
size_t ws_deflater_compress(ws_deflater_t *d, const uint8_t *in, size_t n, uint8_t *out,
                            size_t cap);

/* The loop-wide inflater. The client compresses each message alone (the
 * agreed client_no_context_takeover), so a message is inflated whole once
 * its last frame arrived, with one stream reset per message. Its output
 * buffer grows by doubling up to the limit and is kept for the next
 * message (at most max_message + 1 bytes per loop). */
typedef struct ws_inflater_s ws_inflater_t;

typedef enum {
    WS_INFLATE_OK = 0,
    WS_INFLATE_TOO_BIG, /* more than max bytes: close 1009 */
    WS_INFLATE_BAD,     /* not valid raw deflate data: close 1007 */
    WS_INFLATE_UTF8,    /* text that is not UTF-8: close 1007 */
} ws_inflate_result_t;

/* Aborts on out-of-memory. */
ws_inflater_t *ws_inflater_new(void);
void ws_inflater_free(ws_inflater_t *inf);

/* Inflates one whole message, in[0..n) (its frames' payloads, concatenated),
 * appending the 00 00 ff ff trailer itself. Inflates in bounded chunks and
 * never produces more than max + 1 bytes: past max it stops at once and
 * returns WS_INFLATE_TOO_BIG without reading the rest of the input. When
 * text, the output is validated as UTF-8 chunk by chunk (fail fast) and at
 * the end. On WS_INFLATE_OK, *out and *out_len are the message (borrowed:
 * valid until the next call). */
ws_inflate_result_t ws_inflater_run(ws_inflater_t *inf, const uint8_t *in, size_t n, bool text,
                                    size_t max, const uint8_t **out, size_t *out_len);

/* Of the last run: input bytes consumed and bytes produced (tests assert a
 * bomb stops at the limit), and the output buffer's capacity. */
size_t ws_inflater_last_in(const ws_inflater_t *inf);
size_t ws_inflater_last_out(const ws_inflater_t *inf);
size_t ws_inflater_capacity(const ws_inflater_t *inf);

/* The largest compressed message a parser accepts for a max_message limit
 * on the inflated bytes: incompressible data grows a little when deflated
 * (5 bytes per stored block of at most 64 KiB); this allows more. */
static inline uint64_t ws_deflate_wire_max(uint64_t max_message) {
    return max_message + (max_message >> 8) + 64;
}

#endif
