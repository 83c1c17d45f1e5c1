/* Accounts' crypto primitives: password hashing (auth_pw.h), opaque
 * session tokens (auth_token.h) and JWT verification (auth_jwt.h). Pure
 * functions on caller-owned buffers: no network, no event loop, no global
 * state but what OpenSSL and libargon2 keep, so every function may be
 * called from any thread at once (they run on worker threads: one password
 * hash costs about 100 ms of CPU).
 *
 * This header holds the error codes shared by the three. */
#ifndef TT_AUTH_AUTH_H
#define TT_AUTH_AUTH_H

/* Errors: negative values, far from libuv's (-errno, above -4096) and the
 * store's (-7001...), so all three can travel through one int.
 * auth_strerror() names them. The JWT codes are one per reason a token is
 * refused so tests can tell them apart; a caller answers every one of them
 * with the same "authentication failed" and tells the client nothing more. */
#define AUTH_ERRNO_MAP(XX)                                                                         \
    XX(INVALID, -7101, "invalid argument")                                                         \
    XX(PASSWORD, -7102, "password length out of bounds")                                           \
    XX(MISMATCH, -7103, "wrong password")                                                          \
    XX(MALFORMED, -7104, "malformed password hash")                                                \
    XX(PARAMS, -7105, "password hash parameters beyond what this server verifies")                 \
    XX(NOSPACE, -7106, "output buffer too small")                                                  \
    XX(NOMEM, -7107, "out of memory")                                                              \
    XX(RANDOM, -7108, "random number generator failed")                                            \
    XX(CRYPTO, -7109, "internal crypto error")                                                     \
    XX(JWT_TOO_LONG, -7120, "token too long")                                                      \
    XX(JWT_FORMAT, -7121, "token is not three dot-separated parts")                                \
    XX(JWT_BASE64, -7122, "token part is not base64url")                                           \
    XX(JWT_JSON, -7123, "token header or payload is not a JSON object")                            \
    XX(JWT_ALG, -7124, "token algorithm not allowed with the configured keys")                     \
    XX(JWT_TYP, -7125, "token typ is not JWT")                                                     \
    XX(JWT_CRIT, -7126, "token has critical header parameters")                                    \
    XX(JWT_SIGNATURE, -7127, "token signature does not verify")                                    \
    XX(JWT_NO_EXP, -7128, "token has no exp")                                                      \
    XX(JWT_CLAIM, -7129, "token exp, nbf or iat is not a number")                                  \
    XX(JWT_EXPIRED, -7130, "token expired")                                                        \
    XX(JWT_NOT_YET, -7131, "token not valid yet (nbf)")                                            \
    XX(JWT_IAT, -7132, "token issued in the future (iat)")                                         \
    XX(JWT_NO_SUB, -7133, "token has no sub")                                                      \
    XX(JWT_SUB, -7134, "token sub is not a usable string")                                         \
    XX(BUSY, -7140, "too many jobs waiting for a worker")                                          \
    XX(CANCELLED, -7141, "the worker pool stopped before the job ran")

enum {
#define AUTH_XX(name, value, text) AUTH_E_##name = (value),
    AUTH_ERRNO_MAP(AUTH_XX)
#undef AUTH_XX
};

/* A static sentence for an AUTH_E_* code ("unknown auth error" otherwise). */
const char *auth_strerror(int err);

#endif
