/* Password hashing with Argon2id (libargon2, RFC 9106), stored as the
 * standard encoded string "$argon2id$v=19$m=65536,t=2,p=1$<salt>$<hash>"
 * (salt and hash in unpadded base64), which carries its own parameters, so
 * hashes made with older parameters still verify and can be replaced on the
 * next login (auth_pw_params_current).
 *
 * Cost. One hash is tuned to about 100 ms of one core on the project's
 * machine (2 cores, Debian 12, libargon2 0~20171227): measured with the
 * reference CLI (Debian's argon2 package), best of three runs,
 *     echo -n 'correct horse' | argon2 saltsaltsaltsalt -id -t 2 -m 16 -p 1 -l 32
 *     -> 0.096 s (0.096-0.116 s); two at once 0.100 and 0.103 s each
 * and with this library's own call (argon2id_hash_encoded, 5 runs):
 *     t=2 m=64 MiB p=1: best 103 ms, mean 105 ms
 *     t=3 m=64 MiB p=1: best 130 ms, mean 160 ms
 *     t=2 m=46 MiB p=1: best 59 ms
 * Memory is the point of Argon2 (it makes GPU and ASIC guessing costly), so
 * it stays at RFC 9106's second recommended option (64 MiB) and t=2 brings
 * the time to ~100 ms. p=1: the server runs hashes on worker threads, one
 * per core, so lanes would only make concurrent logins compete; two hashes
 * at once hold 128 MiB.
 *
 * Threads: every function may be called from any thread at once. */
#ifndef TT_AUTH_AUTH_PW_H
#define TT_AUTH_AUTH_PW_H

#include <stdbool.h>
#include <stddef.h>

#include "auth/auth.h"

/* Password length in bytes (any bytes: the caller decides about UTF-8). */
#define AUTH_PW_MIN 8
#define AUTH_PW_MAX 1024

/* Today's parameters: iterations, memory in KiB, lanes. */
#define AUTH_PW_T_COST 2
#define AUTH_PW_M_COST_KIB 65536
#define AUTH_PW_PARALLELISM 1
#define AUTH_PW_SALT_BYTES 16 /* from RAND_bytes */
#define AUTH_PW_HASH_BYTES 32

/* A bound for an encoded hash with its NUL, for today's parameters and any
 * a verify accepts: today's string is 97 characters (tested against
 * argon2_encodedlen). Longer strings are refused by verify unread. */
#define AUTH_PW_ENCODED_MAX 128

/* What auth_pw_verify will spend on a stored hash: a hash whose parameters
 * go past these is refused with AUTH_E_PARAMS without being computed, so a
 * damaged or planted row cannot make one login allocate gigabytes. Four
 * times today's memory, five times its iterations. */
#define AUTH_PW_VERIFY_M_MAX_KIB (4 * AUTH_PW_M_COST_KIB)
#define AUTH_PW_VERIFY_T_MAX (5 * AUTH_PW_T_COST)
#define AUTH_PW_VERIFY_P_MAX 8

/* Hashes pw[0..len) with a fresh salt into out (NUL-terminated). Returns 0,
 * AUTH_E_PASSWORD when len is outside AUTH_PW_MIN..AUTH_PW_MAX,
 * AUTH_E_NOSPACE when cap is under the encoded length plus its NUL,
 * AUTH_E_RANDOM, AUTH_E_NOMEM or AUTH_E_CRYPTO (out then holds ""). */
int auth_pw_hash(const char *pw, size_t len, char *out, size_t cap);

/* Checks pw against an encoded hash: 0 when it matches, AUTH_E_MISMATCH when
 * it does not (compared in constant time by libargon2), AUTH_E_MALFORMED
 * for a string that is not an Argon2id hash (or longer than
 * AUTH_PW_ENCODED_MAX), AUTH_E_PARAMS (above), AUTH_E_PASSWORD for len over
 * AUTH_PW_MAX (refused before hashing, like auth_pw_hash). Lengths under
 * AUTH_PW_MIN are verified, not refused: raising the minimum one day must
 * not lock out the accounts made before. */
int auth_pw_verify(const char *encoded, const char *pw, size_t len);

/* For a login to an account that does not exist: does the work of
 * auth_pw_verify against a fixed hash made with today's parameters and
 * returns AUTH_E_MISMATCH, so the reply takes as long as a wrong password
 * for an existing account. Over AUTH_PW_MAX nothing is hashed, as in
 * auth_pw_verify. */
int auth_pw_verify_dummy(const char *pw, size_t len);

/* True when encoded is a well-formed Argon2id hash with exactly today's
 * version, parameters, salt and hash lengths; false otherwise, so a login
 * that verified can rehash the password. */
bool auth_pw_params_current(const char *encoded);

#endif
