/* Opaque session tokens: AUTH_TOKEN_BYTES random bytes from OpenSSL's
 * CSPRNG, written "tt1." + base64url without padding. The server keeps
 * only auth_token_hash() of a token: a token has 256 bits of entropy, so
 * a plain SHA-256 cannot be reversed or guessed and needs no slow hash
 * (unlike a password); a stolen table of hashes logs nobody in.
 * "tt1." names the format, so a later one can be told apart.
 *
 * Threads: every function may be called from any thread at once. */
#ifndef TT_AUTH_AUTH_TOKEN_H
#define TT_AUTH_AUTH_TOKEN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "auth/auth.h"

#define AUTH_TOKEN_PREFIX "tt1."
#define AUTH_TOKEN_BYTES 32
/* The exact length of a token, without its NUL: 4 + 43. */
#define AUTH_TOKEN_LEN (sizeof AUTH_TOKEN_PREFIX - 1 + (AUTH_TOKEN_BYTES * 4 + 2) / 3)
#define AUTH_TOKEN_HASH_BYTES 32

/* Writes a new token and its NUL into out. 0, AUTH_E_NOSPACE when cap is
 * under AUTH_TOKEN_LEN + 1 (out then holds "" if cap > 0), or
 * AUTH_E_RANDOM. */
int auth_token_new(char *out, size_t cap);

/* out = SHA-256(tok[0..len)), what the store keeps and looks up. Aborts
 * if OpenSSL cannot compute a SHA-256 (it fails only when its default
 * provider cannot be loaded): there is no hash to give back, and any fixed
 * substitute would be a hash that many tokens share. */
void auth_token_hash(const char *tok, size_t len, uint8_t out[AUTH_TOKEN_HASH_BYTES]);

/* Makes and hashes one token, for nothing: OpenSSL sets up its random
 * generator and its digests at their first use (about 2 MiB of libcrypto
 * paged in, and its provider state). Called once at start, so that this
 * happens there, not at the first login, on the loop. 0, or what
 * auth_token_new returned. */
int auth_token_warm_up(void);

/* True when tok[0..len) has the form of a token: the prefix, the exact
 * length, the base64url alphabet, and a last character whose unused bits
 * are zero (the one spelling auth_token_new writes). Lets junk be refused
 * before any lookup. */
bool auth_token_wellformed(const char *tok, size_t len);

#endif
