/* lg_codec — the load generator's client half of RFC 6455, and a scan of the few JSON fields
 * it verifies in what a server sends. Pure functions of bytes: no I/O, no allocation.
 * Written apart from the server's src/ws on purpose: an instrument that shared the codec of
 * what it measures would share its bugs and could not catch them. */
#ifndef LG_CODEC_H
#define LG_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

enum {
    LG_OP_CONT = 0x0,
    LG_OP_TEXT = 0x1,
    LG_OP_BINARY = 0x2,
    LG_OP_CLOSE = 0x8,
    LG_OP_PING = 0x9,
    LG_OP_PONG = 0xA,
};

/* Returned by the decoders when the bytes so far are a valid prefix and more are needed. */
#define LG_INCOMPLETE 0
#define LG_WS_KEY_LEN 24
/* The largest header a client frame can carry: 2 + 8 (length) + 4 (mask). */
#define LG_WS_CLIENT_HEADER_MAX 14

/* xorshift64*: cheap randomness for masks and keys. It need not be cryptographic here: the
 * mask protects intermediaries from chosen plaintext, and on loopback there are none. *state
 * must be seeded non-zero. */
uint64_t lg_rand_next(uint64_t *state);

/* Fills key with the base64 of 16 random bytes and a terminating NUL. */
void lg_ws_key_make(char key[LG_WS_KEY_LEN + 1], uint64_t *rng);

/* The permessage-deflate offer of --deflate (RFC 7692): no context kept on either side, so
 * every message inflates alone and one inflate stream serves every connection of a worker. */
#define LG_PMD_OFFER "permessage-deflate; client_no_context_takeover; server_no_context_takeover"

/* The subprotocol of --v1 (and --typing): tertulia's own protocol rather than the legacy one. */
#define LG_V1_PROTOCOL "tertulia.v1"

/* Writes the HTTP upgrade request for path on hostport into out (no NUL). Returns its length,
 * or -1 when cap is too small. With protocol NULL no subprotocol is offered (a legacy client);
 * otherwise the request carries Sec-WebSocket-Protocol: protocol. With deflate, it carries
 * Sec-WebSocket-Extensions: LG_PMD_OFFER. */
int lg_ws_request_build(char *out, size_t cap, const char *hostport, const char *path,
                        const char *key, bool deflate, const char *protocol);

/* Checks the server's handshake response at the start of buf: status 101, Upgrade: websocket,
 * Connection: upgrade and the Sec-WebSocket-Accept that key calls for. When deflate was
 * offered, the response must accept it (lg_pmd_response_check); when it was not, the response
 * must name no extension. When protocol was offered, the response must select exactly it (one
 * Sec-WebSocket-Protocol, that value); when none was (NULL), it must name none. Returns the
 * length of the response head (bytes consumed; frames may follow), LG_INCOMPLETE, or -1 with
 * *err set to a static reason. Heads longer than 8 KiB are refused. */
long lg_ws_response_check(const char *buf, size_t len, const char *key, bool deflate,
                          const char *protocol, const char **err);

/* Checks a server's Sec-WebSocket-Extensions value (v, n bytes) against LG_PMD_OFFER: exactly
 * one extension, permessage-deflate, with server_no_context_takeover (the generator inflates
 * every message alone, so it needs it), and otherwise only client_no_context_takeover and
 * server_max_window_bits=8..15, each at most once (a client_max_window_bits answer to an offer
 * that did not carry it is refused, as RFC 7692 section 7.1.2.2 says). 0, or -1 with *err. */
int lg_pmd_response_check(const char *v, size_t n, const char **err);

typedef struct lg_frame_s {
    bool fin;
    bool rsv1; /* permessage-deflate: the message this frame begins is compressed */
    uint8_t opcode;
    const uint8_t *payload; /* borrowed: points into the decoded buffer */
    uint64_t len;
} lg_frame_t;

/* Encodes one masked client frame with FIN set. out must hold len + LG_WS_CLIENT_HEADER_MAX
 * bytes. Returns the frame's length. */
size_t lg_ws_frame_encode(uint8_t *out, uint8_t opcode, const void *payload, size_t len,
                          uint32_t mask);

/* Decodes one server frame at the start of buf. Strict, as an instrument should be: a masked
 * server frame, reserved bits, an unknown opcode, a non-minimal length, a fragmented or long
 * control frame, or a payload over max_payload is an error. RSV1 is allowed only when
 * permessage-deflate was negotiated (rsv1_ok), and then only on the first frame of a data
 * message (never on a control or continuation frame, RFC 7692 section 6). Returns bytes
 * consumed with *f filled, LG_INCOMPLETE, or -1 with *err set to a static reason. */
long lg_ws_frame_decode(const uint8_t *buf, size_t len, uint64_t max_payload, bool rsv1_ok,
                        lg_frame_t *f, const char **err);

typedef struct z_stream_s z_stream;

/* Inflates one whole compressed message (the payloads of its frames, concatenated) with z, a
 * raw inflate stream (inflateInit2 with -15 window bits) that is reset first, so one stream
 * serves every message of every connection (no context takeover). Appends the 00 00 ff ff the
 * sender dropped (RFC 7692 section 7.2.2). Writes at most cap bytes to out: a message that
 * inflates to more, a corrupt stream, or data after a final block is an error. 0 with *outn
 * set, or -1 with *err. */
int lg_pmd_inflate(z_stream *z, const uint8_t *in, size_t n, uint8_t *out, size_t cap, size_t *outn,
                   const char **err);

typedef struct lg_str_s {
    const char *p; /* borrowed: the raw bytes between the quotes */
    uint32_t n;
    bool present;
    bool escaped; /* holds a backslash escape: compared raw, so it never equals our texts */
} lg_str_t;

typedef struct lg_msg_s {
    lg_str_t type, from, to, text;  /* text is message.text */
    lg_str_t room, nickname, state; /* a v1 typing frame's fields */
    bool has_id;
    uint64_t id;
} lg_msg_t;

/* Scans one JSON object for "type", "from", "to", "room", "nickname", "state" (string values
 * only), "id" and "message": {"text"}, skipping any
 * other member whatever its value. Whitespace and member order are free. Returns 0, or -1 when
 * the bytes are not one well-formed object as far as the scan reads them (it checks structure,
 * not the contents of strings: raw control characters are left to the exact comparisons). */
int lg_msg_scan(const char *json, size_t len, lg_msg_t *m);

/* True when s holds exactly the n bytes at p. */
static inline bool lg_str_is(const lg_str_t *s, const char *p, size_t n) {
    return s->present && !s->escaped && s->n == n && memcmp(s->p, p, n) == 0;
}

#endif
