/* Session tokens (auth_token.h). */
#include "auth/auth_token.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/rand.h>

#include "auth/auth_int.h"

#define PREFIX_LEN (sizeof AUTH_TOKEN_PREFIX - 1)

_Static_assert(AUTH_TOKEN_LEN == PREFIX_LEN + AUTH_B64URL_LEN(AUTH_TOKEN_BYTES),
               "AUTH_TOKEN_LEN is the prefix and the unpadded base64url of the bytes");

int auth_token_new(char *out, size_t cap) {
    if (out == NULL)
        return AUTH_E_INVALID;
    if (cap > 0)
        out[0] = '\0';
    if (cap < AUTH_TOKEN_LEN + 1)
        return AUTH_E_NOSPACE;
    uint8_t raw[AUTH_TOKEN_BYTES];
    if (RAND_bytes(raw, sizeof raw) != 1)
        return AUTH_E_RANDOM;
    memcpy(out, AUTH_TOKEN_PREFIX, PREFIX_LEN);
    auth__b64url_encode(raw, sizeof raw, out + PREFIX_LEN);
    out[AUTH_TOKEN_LEN] = '\0';
    OPENSSL_cleanse(raw, sizeof raw);
    return 0;
}

void auth_token_hash(const char *tok, size_t len, uint8_t out[AUTH_TOKEN_HASH_BYTES]) {
    unsigned int n = 0;
    if (EVP_Digest(len > 0 ? tok : "", len, out, &n, EVP_sha256(), NULL) != 1 ||
        n != AUTH_TOKEN_HASH_BYTES) {
        fprintf(stderr, "auth_token_hash: OpenSSL cannot compute SHA-256\n");
        abort();
    }
}

int auth_token_warm_up(void) {
    char tok[AUTH_TOKEN_LEN + 1];
    int r = auth_token_new(tok, sizeof tok);
    if (r != 0)
        return r;
    uint8_t hash[AUTH_TOKEN_HASH_BYTES];
    auth_token_hash(tok, AUTH_TOKEN_LEN, hash);
    OPENSSL_cleanse(tok, sizeof tok);
    return 0;
}

bool auth_token_wellformed(const char *tok, size_t len) {
    if (tok == NULL || len != AUTH_TOKEN_LEN || memcmp(tok, AUTH_TOKEN_PREFIX, PREFIX_LEN) != 0)
        return false;
    /* Decoding checks the alphabet and the trailing bits in one pass. */
    uint8_t raw[AUTH_TOKEN_BYTES];
    return auth__b64url_decode(tok + PREFIX_LEN, len - PREFIX_LEN, raw, sizeof raw) ==
           AUTH_TOKEN_BYTES;
}
