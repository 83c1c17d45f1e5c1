/* Shared inside src/auth only: base64url (RFC 4648 section 5) without
 * padding, as JWS (RFC 7515 section 2) and the tokens use it. */
#ifndef TT_AUTH_AUTH_INT_H
#define TT_AUTH_AUTH_INT_H

#include <stddef.h>
#include <stdint.h>

/* Characters that n bytes encode to, and bytes that n characters decode to
 * (n % 4 == 1 is no encoding; it gives 0 here and fails to decode). */
#define AUTH_B64URL_LEN(n) ((n) / 3 * 4 + ((n) % 3 ? (n) % 3 + 1 : 0))
size_t auth__b64url_decoded_len(size_t n);

/* Writes AUTH_B64URL_LEN(n) characters to out (no NUL). */
void auth__b64url_encode(const uint8_t *in, size_t n, char *out);

/* Decodes in[0..n) into out (cap bytes). Only the canonical encoding is
 * accepted: the url alphabet, no padding, no white space, unused trailing
 * bits zero, so every byte string has exactly one accepted spelling (a
 * token cannot be varied without changing what it says). Returns the
 * decoded length, or -1 for anything else, including out too small. */
long auth__b64url_decode(const char *in, size_t n, uint8_t *out, size_t cap);

#endif
