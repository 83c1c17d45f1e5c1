/* JWT login for operators who run their own user system: their service
 * signs a short-lived token naming the user (sub), and the server checks it
 * with a key it was given. Compact JWS only (RFC 7515 section 7.1, RFC
 * 7519), one of HS256, RS256 or ES256, with the rules of RFC 8725 (JWT Best
 * Current Practices):
 *
 *  - The algorithms a token may use follow from the keys loaded, never from
 *    the token: HS256 only with a secret, RS256 only with an RSA public key,
 *    ES256 only with an EC P-256 public key. "none" and every other value
 *    are refused, so a token cannot pick "HS256" with the RSA public key as
 *    its HMAC secret (key confusion).
 *  - typ, when present, must be "JWT"; a header with crit is refused (no
 *    extension is understood).
 *  - exp is required; exp, nbf and iat are honoured with a clock skew of
 *    AUTH_JWT_SKEW_S either way: refused when now >= exp + skew, when
 *    now + skew < nbf, or when iat > now + skew.
 *  - sub is required, a non-empty string without NUL bytes; the caller
 *    checks it as a nickname.
 *  - Every length is bounded: a token over AUTH_JWT_MAX bytes is refused
 *    unread; header and payload must be JSON objects without duplicate
 *    members.
 *
 * Threads: a loaded key set is read-only; any number of threads may verify
 * with one at once. */
#ifndef TT_AUTH_AUTH_JWT_H
#define TT_AUTH_AUTH_JWT_H

#include <stddef.h>
#include <stdint.h>

#include "auth/auth.h"

#define AUTH_JWT_MAX 8192  /* bytes of a token */
#define AUTH_JWT_SKEW_S 30 /* seconds of clock difference tolerated */
/* An HS256 secret: at least the hash's 32 bytes (RFC 7518 section 3.2),
 * and a file of at most 4 KiB. */
#define AUTH_JWT_SECRET_MIN 32
#define AUTH_JWT_SECRET_MAX 4096
#define AUTH_JWT_RSA_MIN_BITS 2048

typedef struct auth_jwt_keys_s auth_jwt_keys_t;

/* Loads the verification keys: a PEM public key (RSA of at least
 * AUTH_JWT_RSA_MIN_BITS, or EC on P-256), an HS256 secret file (its raw
 * bytes, one trailing "\n" dropped), or both; either path may be NULL, not
 * both. Returns 0 and *out, or AUTH_E_INVALID with a sentence in err
 * (naming the file and what is wrong with it). */
int auth_jwt_keys_load(const char *pubkey_pem_path, const char *hs256_secret_path,
                       auth_jwt_keys_t **out, char *err, size_t errlen);
void auth_jwt_keys_free(auth_jwt_keys_t *k);

/* Verifies tok[0..len) at time now_s (Unix seconds) by the rules above.
 * Returns 0 with the subject and its NUL in sub and the expiry (seconds,
 * rounded down) in *exp_out (may be NULL), or one AUTH_E_JWT_* code per
 * reason (AUTH_E_JWT_SUB also for a sub that does not fit subcap); sub
 * then holds "" if subcap > 0. AUTH_E_INVALID for NULL arguments or
 * subcap 0; AUTH_E_NOMEM, AUTH_E_CRYPTO when OpenSSL or jansson fail. */
int auth_jwt_verify(const auth_jwt_keys_t *k, const char *tok, size_t len, int64_t now_s, char *sub,
                    size_t subcap, int64_t *exp_out);

#endif
