/* Fuzzer for JWT verification (src/auth/auth_jwt.c: auth_jwt_verify) with
 * the keys an operator could load at once: an HS256 secret (fixed, so
 * fuzz/make_corpus.py can sign seeds with it) and an EC P-256 public key
 * made at start, whose private half is thrown away. The first input byte
 * gives the subject buffer's size (1 + its low 6 bits); the rest is the
 * token, checked at a fixed time (NOW).
 *
 * Invariants: no crash, leak or overrun; a refusal leaves sub empty; and
 * the harness signs nothing, so an accepted token must carry the HS256
 * signature of its first two parts, as computed here with OpenSSL's HMAC
 * and base64 (not the library's base64url): no ES256 token can be accepted
 * at all, no token with a wrong signature, and no other algorithm. An
 * accepted token's sub is a non-empty NUL-terminated string within the
 * buffer and its exp is not past NOW by more than the skew. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>

#include "auth/auth_jwt.h"

#include "fuzz_check.h"

#define NOW 1700000000
/* Also in fuzz/make_corpus.py, which signs the seeds with it. */
static const char SECRET[] = "tertulia fuzz_jwt HS256 secret, 32+ bytes";

static auth_jwt_keys_t *keys;

static void make_keys(void) {
    char dir[] = "/tmp/fuzz_jwt.XXXXXX", pem[64], sec[64], err[256];
    CHECK(mkdtemp(dir) != NULL);
    snprintf(pem, sizeof pem, "%s/ec.pem", dir);
    snprintf(sec, sizeof sec, "%s/secret", dir);
    EVP_PKEY *ec = EVP_EC_gen("P-256");
    CHECK(ec != NULL);
    FILE *f = fopen(pem, "wb");
    CHECK(f != NULL && PEM_write_PUBKEY(f, ec) == 1);
    fclose(f);
    EVP_PKEY_free(ec);
    f = fopen(sec, "wb");
    CHECK(f != NULL && fwrite(SECRET, 1, sizeof SECRET - 1, f) == sizeof SECRET - 1);
    fclose(f);
    int rc = auth_jwt_keys_load(pem, sec, &keys, err, sizeof err);
    if (rc != 0)
        fprintf(stderr, "fuzz_jwt: %s\n", err);
    CHECK(rc == 0);
    unlink(pem);
    unlink(sec);
    rmdir(dir);
}

/* True when sig[0..n) is the base64url of HMAC-SHA256(SECRET, in[0..len)),
 * the way RFC 7515 writes it: EVP_EncodeBlock's standard base64 with
 * '+' '/' turned into '-' '_' and the padding dropped. */
static bool hs256_signed(const char *in, size_t len, const char *sig, size_t n) {
    uint8_t mac[32];
    unsigned int maclen = 0;
    CHECK(HMAC(EVP_sha256(), SECRET, sizeof SECRET - 1, (const uint8_t *)in, len, mac, &maclen) !=
          NULL);
    char b64[48];
    int m = EVP_EncodeBlock((uint8_t *)b64, mac, (int)maclen);
    while (m > 0 && b64[m - 1] == '=')
        m--;
    for (int i = 0; i < m; i++)
        b64[i] = b64[i] == '+' ? '-' : b64[i] == '/' ? '_' : b64[i];
    return n == (size_t)m && memcmp(sig, b64, n) == 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (keys == NULL)
        make_keys();
    if (size < 1)
        return 0;
    size_t subcap = 1 + (data[0] & 63);
    const char *tok = (const char *)data + 1;
    size_t len = size - 1;
    char sub[64 + 1];
    memset(sub, 'x', sizeof sub);
    int64_t exp = 0;
    int rc = auth_jwt_verify(keys, tok, len, NOW, sub, subcap, &exp);
    /* Nothing past subcap is ever written. */
    CHECK(sub[subcap] == 'x');
    if (rc != 0) {
        CHECK(rc < 0 && sub[0] == '\0');
        return 0;
    }
    const char *dot = memchr(tok, '.', len);
    CHECK(dot != NULL);
    dot = memchr(dot + 1, '.', len - (size_t)(dot + 1 - tok));
    CHECK(dot != NULL);
    CHECK(hs256_signed(tok, (size_t)(dot - tok), dot + 1, len - (size_t)(dot + 1 - tok)));
    size_t n = strnlen(sub, subcap);
    CHECK(n > 0 && n < subcap);
    CHECK(exp > NOW - AUTH_JWT_SKEW_S);
    return 0;
}
