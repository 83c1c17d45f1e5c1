/* Tests for src/auth/auth_jwt.c. The keys are made here with OpenSSL (an
 * RSA 2048 key, an EC P-256 key, a random HS256 secret), written to a
 * temporary directory for auth_jwt_keys_load, and tokens are signed here
 * (sign() below); one fixed vector, RFC 7515 appendix A.1, checks the HMAC
 * against a signature made elsewhere. Then acceptance with each algorithm,
 * and each refusal with its own code. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/rand.h>

#include "auth/auth_int.h"
#include "auth/auth_jwt.h"

#define NOW 1700000000
#define SUBCAP 33

static char dir[] = "/tmp/test_auth_jwt.XXXXXX";
static EVP_PKEY *rsa, *ec, *ec_other;
static uint8_t secret[32];
static char rsa_pem[512]; /* the RSA public key's PEM, for key confusion */
static auth_jwt_keys_t *k_rsa, *k_ec, *k_hs, *k_ec_hs;

typedef enum { HS, RS, ES, NONE } signer_t;

/* ------------------------------------------------------------------------ */
/* Files and keys */

static char *path(const char *name) {
    static char p[4][128];
    static int i;
    char *out = p[i++ % 4];
    snprintf(out, sizeof p[0], "%s/%s", dir, name);
    return out;
}

static void write_file(const char *name, const void *data, size_t len) {
    FILE *f = fopen(path(name), "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    fclose(f);
}

static void write_pubkey(const char *name, EVP_PKEY *key) {
    FILE *f = fopen(path(name), "wb");
    assert_non_null(f);
    assert_int_equal(PEM_write_PUBKEY(f, key), 1);
    fclose(f);
}

static auth_jwt_keys_t *load(const char *pem, const char *sec) {
    auth_jwt_keys_t *k = NULL;
    char err[256];
    int rc =
        auth_jwt_keys_load(pem ? path(pem) : NULL, sec ? path(sec) : NULL, &k, err, sizeof err);
    if (rc != 0)
        fail_msg("keys_load: %s", err);
    return k;
}

/* Loading must fail; returns the message. */
static const char *load_fails(const char *pem, const char *sec) {
    static char err[256];
    auth_jwt_keys_t *k = (auth_jwt_keys_t *)1;
    assert_int_equal(
        auth_jwt_keys_load(pem ? path(pem) : NULL, sec ? path(sec) : NULL, &k, err, sizeof err),
        AUTH_E_INVALID);
    assert_null(k);
    assert_true(strlen(err) > 0);
    return err;
}

static int setup(void **state) {
    if (mkdtemp(dir) == NULL)
        return -1;
    rsa = EVP_RSA_gen(2048);
    ec = EVP_EC_gen("P-256");
    ec_other = EVP_EC_gen("P-256");
    if (rsa == NULL || ec == NULL || ec_other == NULL || RAND_bytes(secret, sizeof secret) != 1)
        return -1;
    write_pubkey("rsa.pem", rsa);
    write_pubkey("ec.pem", ec);
    write_file("secret", secret, sizeof secret);
    FILE *f = fopen(path("rsa.pem"), "rb");
    size_t n = fread(rsa_pem, 1, sizeof rsa_pem - 1, f);
    fclose(f);
    rsa_pem[n] = '\0';
    k_rsa = load("rsa.pem", NULL);
    k_ec = load("ec.pem", NULL);
    k_hs = load(NULL, "secret");
    k_ec_hs = load("ec.pem", "secret");
    return 0;
}

static int teardown(void **state) {
    auth_jwt_keys_free(k_rsa);
    auth_jwt_keys_free(k_ec);
    auth_jwt_keys_free(k_hs);
    auth_jwt_keys_free(k_ec_hs);
    EVP_PKEY_free(rsa);
    EVP_PKEY_free(ec);
    EVP_PKEY_free(ec_other);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd);
}

/* ------------------------------------------------------------------------ */
/* Signing */

static char *b64(const void *data, size_t n, char *out) {
    auth__b64url_encode(data, n, out);
    out[AUTH_B64URL_LEN(n)] = '\0';
    return out;
}

/* The JWS signature of in[0..n) as raw bytes into sig. */
static size_t signature(signer_t how, EVP_PKEY *key, const uint8_t *hkey, size_t hkeylen,
                        const char *in, size_t n, uint8_t *sig) {
    if (how == NONE)
        return 0;
    if (how == HS) {
        unsigned int len = 0;
        assert_non_null(HMAC(EVP_sha256(), hkey, (int)hkeylen, (const uint8_t *)in, n, sig, &len));
        return len;
    }
    uint8_t der[512];
    size_t derlen = sizeof der;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    assert_int_equal(EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, key), 1);
    assert_int_equal(EVP_DigestSign(ctx, der, &derlen, (const uint8_t *)in, n), 1);
    EVP_MD_CTX_free(ctx);
    if (how == RS) {
        memcpy(sig, der, derlen);
        return derlen;
    }
    /* ES256: OpenSSL's DER ECDSA-Sig-Value to JWS's r || s. */
    const uint8_t *p = der;
    ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &p, (long)derlen);
    assert_non_null(es);
    assert_int_equal(BN_bn2binpad(ECDSA_SIG_get0_r(es), sig, 32), 32);
    assert_int_equal(BN_bn2binpad(ECDSA_SIG_get0_s(es), sig + 32, 32), 32);
    ECDSA_SIG_free(es);
    return 64;
}

/* A token: the header and payload JSON base64url-encoded (or taken as they
 * are when raw), signed as told. Returned in a static buffer. */
static char *sign_full(signer_t how, EVP_PKEY *key, const uint8_t *hkey, size_t hkeylen,
                       const char *header, const char *payload, bool raw) {
    static char tok[4][3 * AUTH_JWT_MAX];
    static int i;
    char *t = tok[i++ % 4];
    if (raw)
        snprintf(t, sizeof tok[0], "%s.%s", header, payload);
    else {
        char h[AUTH_JWT_MAX], p[2 * AUTH_JWT_MAX];
        snprintf(t, sizeof tok[0], "%s.%s", b64(header, strlen(header), h),
                 b64(payload, strlen(payload), p));
    }
    uint8_t sig[512];
    size_t n = signature(how, key, hkey, hkeylen, t, strlen(t), sig);
    size_t at = strlen(t);
    t[at++] = '.';
    b64(sig, n, t + at);
    return t;
}

static char *sign(signer_t how, const char *header, const char *payload) {
    EVP_PKEY *key = how == RS ? rsa : how == ES ? ec : NULL;
    return sign_full(how, key, secret, sizeof secret, header, payload, false);
}

#define H_HS "{\"alg\":\"HS256\",\"typ\":\"JWT\"}"
#define H_RS "{\"alg\":\"RS256\",\"typ\":\"JWT\"}"
#define H_ES "{\"alg\":\"ES256\"}"
#define P_OK "{\"sub\":\"ana\",\"exp\":1700000600,\"iat\":1700000000}"

/* The verdict on a token at NOW. */
static int check(const auth_jwt_keys_t *k, const char *tok) {
    char sub[SUBCAP];
    int64_t exp = 0;
    int rc = auth_jwt_verify(k, tok, strlen(tok), NOW, sub, sizeof sub, &exp);
    if (rc != 0)
        assert_string_equal(sub, "");
    return rc;
}

/* A payload with sub "ana" and the given claims. */
static char *claims(const char *fmt, ...) {
    static char p[4][256];
    static int i;
    char *out = p[i++ % 4];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(out, sizeof p[0], fmt, ap);
    va_end(ap);
    return out;
}

/* ------------------------------------------------------------------------ */
/* Acceptance */

static void accepted(const auth_jwt_keys_t *k, const char *tok, const char *want_sub,
                     int64_t want_exp) {
    char sub[SUBCAP];
    int64_t exp = 0;
    assert_int_equal(auth_jwt_verify(k, tok, strlen(tok), NOW, sub, sizeof sub, &exp), 0);
    assert_string_equal(sub, want_sub);
    assert_int_equal(exp, want_exp);
}

static void test_auth_jwt_accepts_each_algorithm(void **state) {
    accepted(k_hs, sign(HS, H_HS, P_OK), "ana", 1700000600);
    accepted(k_rsa, sign(RS, H_RS, P_OK), "ana", 1700000600);
    accepted(k_ec, sign(ES, H_ES, P_OK), "ana", 1700000600);
    /* Both keys loaded: either algorithm the keys allow. */
    accepted(k_ec_hs, sign(HS, H_HS, P_OK), "ana", 1700000600);
    accepted(k_ec_hs, sign(ES, H_ES, P_OK), "ana", 1700000600);
    /* typ compared ignoring case; other header members ignored (jwk, kid:
     * the key never comes from the token). */
    accepted(k_hs, sign(HS, "{\"alg\":\"HS256\",\"typ\":\"jwt\",\"kid\":\"x\",\"jwk\":{}}", P_OK),
             "ana", 1700000600);
    /* A fractional exp rounds down; a UTF-8 sub comes back as it is;
     * exp_out may be NULL. */
    accepted(k_hs, sign(HS, H_HS, "{\"sub\":\"jos\\u00e9\",\"exp\":1700000100.9}"), "jos\xc3\xa9",
             1700000100);
    char sub[4];
    const char *t = sign(HS, H_HS, claims("{\"sub\":\"abc\",\"exp\":%d}", NOW + 10));
    assert_int_equal(auth_jwt_verify(k_hs, t, strlen(t), NOW, sub, sizeof sub, NULL), 0);
    assert_string_equal(sub, "abc");
}

/* RFC 7515 appendix A.1: an HS256 token and its key, signed by the RFC's
 * authors. It has no sub, so it is refused for that, after the signature
 * was found good; one character of the signature changed, it is refused
 * for the signature. */
static void test_auth_jwt_rfc7515_vector(void **state) {
    static const uint8_t KEY[64] = {
        0x03, 0x23, 0x35, 0x4b, 0x2b, 0x0f, 0xa5, 0xbc, 0x83, 0x7e, 0x06, 0x65, 0x77,
        0x7b, 0xa6, 0x8f, 0x5a, 0xb3, 0x28, 0xe6, 0xf0, 0x54, 0xc9, 0x28, 0xa9, 0x0f,
        0x84, 0xb2, 0xd2, 0x50, 0x2e, 0xbf, 0xd3, 0xfb, 0x5a, 0x92, 0xd2, 0x06, 0x47,
        0xef, 0x96, 0x8a, 0xb4, 0xc3, 0x77, 0x62, 0x3d, 0x22, 0x3d, 0x2e, 0x21, 0x72,
        0x05, 0x2e, 0x4f, 0x08, 0xc0, 0xcd, 0x9a, 0xf5, 0x67, 0xd0, 0x80, 0xa3};
    char tok[] = "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9"
                 ".eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9p"
                 "c19yb290Ijp0cnVlfQ"
                 ".dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    write_file("rfc-key", KEY, sizeof KEY);
    auth_jwt_keys_t *k = load(NULL, "rfc-key");
    char sub[SUBCAP];
    assert_int_equal(auth_jwt_verify(k, tok, strlen(tok), 1300819380 - 60, sub, sizeof sub, NULL),
                     AUTH_E_JWT_NO_SUB);
    /* The same token an hour later: expired, also after the signature. */
    assert_int_equal(auth_jwt_verify(k, tok, strlen(tok), 1300819380 + 3600, sub, sizeof sub, NULL),
                     AUTH_E_JWT_EXPIRED);
    tok[strlen(tok) - 10] ^= 'a' ^ 'b'; /* '4' -> '7': still base64url */
    assert_int_equal(auth_jwt_verify(k, tok, strlen(tok), 1300819380 - 60, sub, sizeof sub, NULL),
                     AUTH_E_JWT_SIGNATURE);
    auth_jwt_keys_free(k);
}

/* ------------------------------------------------------------------------ */
/* Signature and algorithm */

/* tok with the character at i replaced by another of the alphabet. */
static char *flip(const char *tok, size_t i) {
    static char t[3 * AUTH_JWT_MAX];
    snprintf(t, sizeof t, "%s", tok);
    t[i] = t[i] == 'A' ? 'B' : 'A';
    return t;
}

static void test_auth_jwt_bad_signature(void **state) {
    const char *toks[] = {sign(HS, H_HS, P_OK), sign(RS, H_RS, P_OK), sign(ES, H_ES, P_OK)};
    const auth_jwt_keys_t *keys[] = {k_hs, k_rsa, k_ec};
    for (int i = 0; i < 3; i++) {
        const char *sig = strrchr(toks[i], '.') + 1;
        /* A character in the middle of the signature. */
        assert_int_equal(check(keys[i], flip(toks[i], (size_t)(sig - toks[i]) + 5)),
                         AUTH_E_JWT_SIGNATURE);
        /* The signature cut to its first 6 bytes (8 characters), and none
         * at all. */
        char t[3 * AUTH_JWT_MAX];
        snprintf(t, sizeof t, "%.*s", (int)(sig - toks[i]) + 8, toks[i]);
        assert_int_equal(check(keys[i], t), AUTH_E_JWT_SIGNATURE);
        snprintf(t, sizeof t, "%.*s", (int)(sig - toks[i]), toks[i]);
        assert_int_equal(check(keys[i], t), AUTH_E_JWT_SIGNATURE);
    }
    /* Signed by another key of the right kind, or another secret. */
    assert_int_equal(check(k_ec, sign_full(ES, ec_other, NULL, 0, H_ES, P_OK, false)),
                     AUTH_E_JWT_SIGNATURE);
    uint8_t other[32] = {0};
    assert_int_equal(check(k_hs, sign_full(HS, NULL, other, sizeof other, H_HS, P_OK, false)),
                     AUTH_E_JWT_SIGNATURE);
    /* ES256 r || s of the wrong length: DER where raw is expected. */
    assert_int_equal(check(k_ec, sign_full(RS, ec, NULL, 0, H_ES, P_OK, false)),
                     AUTH_E_JWT_SIGNATURE);
}

/* The payload of a good token swapped for another (sub "root"), the
 * signature kept. */
static void test_auth_jwt_tampered_payload(void **state) {
    const char *toks[] = {sign(HS, H_HS, P_OK), sign(RS, H_RS, P_OK), sign(ES, H_ES, P_OK)};
    const auth_jwt_keys_t *keys[] = {k_hs, k_rsa, k_ec};
    const char *evil = "{\"sub\":\"root\",\"exp\":1700000600,\"iat\":1700000000}";
    char p[256], t[3 * AUTH_JWT_MAX];
    b64(evil, strlen(evil), p);
    for (int i = 0; i < 3; i++) {
        const char *d1 = strchr(toks[i], '.'), *d2 = strrchr(toks[i], '.');
        snprintf(t, sizeof t, "%.*s.%s%s", (int)(d1 - toks[i]), toks[i], p, d2);
        assert_int_equal(check(keys[i], t), AUTH_E_JWT_SIGNATURE);
    }
}

static void test_auth_jwt_alg_none(void **state) {
    const auth_jwt_keys_t *keys[] = {k_hs, k_rsa, k_ec, k_ec_hs};
    for (int i = 0; i < 4; i++) {
        assert_int_equal(check(keys[i], sign(NONE, "{\"alg\":\"none\"}", P_OK)), AUTH_E_JWT_ALG);
        assert_int_equal(check(keys[i], sign(NONE, "{\"alg\":\"None\"}", P_OK)), AUTH_E_JWT_ALG);
        /* none with an HMAC anyway. */
        assert_int_equal(check(keys[i], sign(HS, "{\"alg\":\"none\"}", P_OK)), AUTH_E_JWT_ALG);
    }
}

/* The classic attack: HS256 with the server's RSA (or EC) public key, which
 * is public, as the HMAC secret. */
static void test_auth_jwt_key_confusion(void **state) {
    const char *t =
        sign_full(HS, NULL, (const uint8_t *)rsa_pem, strlen(rsa_pem), H_HS, P_OK, false);
    assert_int_equal(check(k_rsa, t), AUTH_E_JWT_ALG);
    assert_int_equal(check(k_ec, t), AUTH_E_JWT_ALG);
}

static void test_auth_jwt_wrong_alg(void **state) {
    /* An algorithm the loaded keys do not allow, properly signed. */
    assert_int_equal(check(k_ec, sign(RS, H_RS, P_OK)), AUTH_E_JWT_ALG);
    assert_int_equal(check(k_rsa, sign(ES, H_ES, P_OK)), AUTH_E_JWT_ALG);
    assert_int_equal(check(k_hs, sign(RS, H_RS, P_OK)), AUTH_E_JWT_ALG);
    assert_int_equal(check(k_ec_hs, sign(RS, H_RS, P_OK)), AUTH_E_JWT_ALG);
    /* Names that are no algorithm here. */
    const char *headers[] = {
        "{\"alg\":\"HS512\"}", "{\"alg\":\"PS256\"}", "{\"alg\":\"hs256\"}",   "{\"alg\":\"\"}",
        "{\"alg\":256}",       "{\"alg\":null}",      "{\"alg\":[\"HS256\"]}", "{\"typ\":\"JWT\"}",
    };
    for (size_t i = 0; i < sizeof headers / sizeof headers[0]; i++)
        assert_int_equal(check(k_hs, sign(HS, headers[i], P_OK)), AUTH_E_JWT_ALG);
}

static void test_auth_jwt_typ_and_crit(void **state) {
    const char *bad_typ[] = {
        "{\"alg\":\"HS256\",\"typ\":\"JWS\"}",
        "{\"alg\":\"HS256\",\"typ\":\"at+jwt\"}",
        "{\"alg\":\"HS256\",\"typ\":1}",
    };
    for (size_t i = 0; i < sizeof bad_typ / sizeof bad_typ[0]; i++)
        assert_int_equal(check(k_hs, sign(HS, bad_typ[i], P_OK)), AUTH_E_JWT_TYP);
    assert_int_equal(check(k_hs, sign(HS, "{\"alg\":\"HS256\",\"crit\":[\"exp\"]}", P_OK)),
                     AUTH_E_JWT_CRIT);
    assert_int_equal(check(k_hs, sign(HS, "{\"alg\":\"HS256\",\"crit\":[]}", P_OK)),
                     AUTH_E_JWT_CRIT);
}

/* ------------------------------------------------------------------------ */
/* Claims */

static int check_claims(const char *payload) {
    return check(k_hs, sign(HS, H_HS, payload));
}

static void test_auth_jwt_exp(void **state) {
    assert_int_equal(check_claims("{\"sub\":\"ana\"}"), AUTH_E_JWT_NO_EXP);
    assert_int_equal(check_claims("{\"sub\":\"ana\",\"exp\":\"1700000600\"}"), AUTH_E_JWT_CLAIM);
    assert_int_equal(check_claims("{\"sub\":\"ana\",\"exp\":null}"), AUTH_E_JWT_CLAIM);
    assert_int_equal(check_claims("{\"sub\":\"ana\",\"exp\":true}"), AUTH_E_JWT_CLAIM);
    assert_int_equal(check_claims(claims("{\"sub\":\"ana\",\"exp\":%d}", NOW - 3600)),
                     AUTH_E_JWT_EXPIRED);
    /* Huge and negative times are clamped, not overflowed. */
    assert_int_equal(check_claims("{\"sub\":\"ana\",\"exp\":-9223372036854775807}"),
                     AUTH_E_JWT_EXPIRED);
    assert_int_equal(check_claims("{\"sub\":\"ana\",\"exp\":-1e300}"), AUTH_E_JWT_EXPIRED);
    assert_int_equal(check_claims("{\"sub\":\"ana\",\"exp\":9223372036854775807}"), 0);
    assert_int_equal(check_claims("{\"sub\":\"ana\",\"exp\":1e300}"), 0);
}

/* 30 s of skew each way: 29 s past exp accepted, 30 and 31 refused; nbf
 * and iat 29 s ahead accepted, 31 refused. */
static void test_auth_jwt_skew_edges(void **state) {
    assert_int_equal(AUTH_JWT_SKEW_S, 30);
    assert_int_equal(check_claims(claims("{\"sub\":\"ana\",\"exp\":%d}", NOW - 29)), 0);
    assert_int_equal(check_claims(claims("{\"sub\":\"ana\",\"exp\":%d}", NOW - 30)),
                     AUTH_E_JWT_EXPIRED);
    assert_int_equal(check_claims(claims("{\"sub\":\"ana\",\"exp\":%d}", NOW - 31)),
                     AUTH_E_JWT_EXPIRED);
    assert_int_equal(
        check_claims(claims("{\"sub\":\"ana\",\"exp\":%d,\"nbf\":%d}", NOW + 600, NOW + 29)), 0);
    assert_int_equal(
        check_claims(claims("{\"sub\":\"ana\",\"exp\":%d,\"nbf\":%d}", NOW + 600, NOW + 30)), 0);
    assert_int_equal(
        check_claims(claims("{\"sub\":\"ana\",\"exp\":%d,\"nbf\":%d}", NOW + 600, NOW + 31)),
        AUTH_E_JWT_NOT_YET);
    assert_int_equal(
        check_claims(claims("{\"sub\":\"ana\",\"exp\":%d,\"iat\":%d}", NOW + 600, NOW + 29)), 0);
    assert_int_equal(
        check_claims(claims("{\"sub\":\"ana\",\"exp\":%d,\"iat\":%d}", NOW + 600, NOW + 31)),
        AUTH_E_JWT_IAT);
    /* Past nbf and iat are fine, however old. */
    assert_int_equal(
        check_claims(claims("{\"sub\":\"ana\",\"exp\":%d,\"nbf\":0,\"iat\":0}", NOW + 600)), 0);
}

static void test_auth_jwt_nbf_iat_types(void **state) {
    assert_int_equal(check_claims(claims("{\"sub\":\"ana\",\"exp\":%d,\"nbf\":\"0\"}", NOW + 60)),
                     AUTH_E_JWT_CLAIM);
    assert_int_equal(check_claims(claims("{\"sub\":\"ana\",\"exp\":%d,\"iat\":{}}", NOW + 60)),
                     AUTH_E_JWT_CLAIM);
    assert_int_equal(
        check_claims(claims("{\"sub\":\"ana\",\"exp\":%d,\"nbf\":%d}", NOW + 60, NOW + 3600)),
        AUTH_E_JWT_NOT_YET);
    assert_int_equal(
        check_claims(claims("{\"sub\":\"ana\",\"exp\":%d,\"iat\":%d}", NOW + 60, NOW + 3600)),
        AUTH_E_JWT_IAT);
}

static void test_auth_jwt_sub(void **state) {
    assert_int_equal(check_claims(claims("{\"exp\":%d}", NOW + 60)), AUTH_E_JWT_NO_SUB);
    const char *bad[] = {"42", "null", "true", "[\"ana\"]", "{}", "\"\""};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(check_claims(claims("{\"exp\":%d,\"sub\":%s}", NOW + 60, bad[i])),
                         AUTH_E_JWT_SUB);
    /* SUBCAP - 1 characters fit, SUBCAP do not. */
    char longsub[SUBCAP + 1];
    memset(longsub, 's', SUBCAP);
    longsub[SUBCAP - 1] = '\0';
    assert_int_equal(check_claims(claims("{\"exp\":%d,\"sub\":\"%s\"}", NOW + 60, longsub)), 0);
    longsub[SUBCAP - 1] = 's';
    longsub[SUBCAP] = '\0';
    assert_int_equal(check_claims(claims("{\"exp\":%d,\"sub\":\"%s\"}", NOW + 60, longsub)),
                     AUTH_E_JWT_SUB);
}

/* ------------------------------------------------------------------------ */
/* Form */

/* The longest well-signed token that fits is accepted, the next refused
 * unread (its signature is good too). */
static void test_auth_jwt_too_long(void **state) {
    static char pad[AUTH_JWT_MAX];
    char *best = NULL, *over = NULL;
    for (size_t n = AUTH_JWT_MAX * 3 / 4 - 200; n < AUTH_JWT_MAX && over == NULL; n++) {
        memset(pad, 'x', n);
        pad[n] = '\0';
        static char payload[AUTH_JWT_MAX + 100];
        snprintf(payload, sizeof payload, "{\"sub\":\"ana\",\"exp\":%d,\"pad\":\"%s\"}", NOW + 60,
                 pad);
        char *t = sign(HS, H_HS, payload);
        if (strlen(t) <= AUTH_JWT_MAX)
            best = t;
        else
            over = t;
    }
    assert_non_null(best);
    assert_non_null(over);
    assert_true(strlen(best) > AUTH_JWT_MAX - 4);
    assert_int_equal(check(k_hs, best), 0);
    assert_int_equal(check(k_hs, over), AUTH_E_JWT_TOO_LONG);
    char sub[SUBCAP];
    assert_int_equal(auth_jwt_verify(k_hs, best, AUTH_JWT_MAX + 1, NOW, sub, sizeof sub, NULL),
                     AUTH_E_JWT_TOO_LONG);
}

static void test_auth_jwt_not_three_parts(void **state) {
    const char *good = sign(HS, H_HS, P_OK);
    char t[3 * AUTH_JWT_MAX];
    const char *bad[] = {"", ".", "abc", "a.b", "a.b.c.d", "...."};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(check(k_hs, bad[i]), AUTH_E_JWT_FORMAT);
    /* Three empty parts are three parts: the empty header is no JSON. */
    assert_int_equal(check(k_hs, ".."), AUTH_E_JWT_JSON);
    snprintf(t, sizeof t, "%s.", good);
    assert_int_equal(check(k_hs, t), AUTH_E_JWT_FORMAT);
    snprintf(t, sizeof t, "%s", good);
    *strrchr(t, '.') = '\0';
    assert_int_equal(check(k_hs, t), AUTH_E_JWT_FORMAT);
    char sub[SUBCAP];
    assert_int_equal(auth_jwt_verify(k_hs, NULL, 0, NOW, sub, sizeof sub, NULL), AUTH_E_JWT_FORMAT);
}

static void test_auth_jwt_bad_base64(void **state) {
    const char *good = sign(HS, H_HS, P_OK);
    char t[3 * AUTH_JWT_MAX];
    /* In the header: padding, the standard alphabet. */
    snprintf(t, sizeof t, "%s", good);
    t[3] = '+';
    assert_int_equal(check(k_hs, t), AUTH_E_JWT_BASE64);
    snprintf(t, sizeof t, "%s", good);
    t[3] = '=';
    assert_int_equal(check(k_hs, t), AUTH_E_JWT_BASE64);
    /* In the signature. */
    snprintf(t, sizeof t, "%s", good);
    t[strlen(t) - 3] = '/';
    assert_int_equal(check(k_hs, t), AUTH_E_JWT_BASE64);
    snprintf(t, sizeof t, "%s==", good);
    assert_int_equal(check(k_hs, t), AUTH_E_JWT_BASE64);
    /* In the payload, signed as it is: found once the signature passes. */
    char h[64];
    b64(H_HS, strlen(H_HS), h);
    assert_int_equal(check(k_hs, sign_full(HS, NULL, secret, sizeof secret, h, "eyJz*dWIi", true)),
                     AUTH_E_JWT_BASE64);
    assert_int_equal(check(k_hs, sign_full(HS, NULL, secret, sizeof secret, h, "eyJzdWIi=", true)),
                     AUTH_E_JWT_BASE64);
}

static void test_auth_jwt_not_json_objects(void **state) {
    const char *headers[] = {
        "not json",
        "[\"HS256\"]",
        "\"HS256\"",
        "",
        "{\"alg\":\"HS256\",\"alg\":\"HS256\"}", /* duplicate member */
        "{\"alg\":\"HS256\"} x",
    };
    for (size_t i = 0; i < sizeof headers / sizeof headers[0]; i++)
        assert_int_equal(check(k_hs, sign(HS, headers[i], P_OK)), AUTH_E_JWT_JSON);
    const char *payloads[] = {
        "[]", "42", "", "{\"sub\":\"ana\"", "{\"sub\":\"ana\",\"sub\":\"root\",\"exp\":1700000600}",
    };
    for (size_t i = 0; i < sizeof payloads / sizeof payloads[0]; i++)
        assert_int_equal(check(k_hs, sign(HS, H_HS, payloads[i])), AUTH_E_JWT_JSON);
}

/* A NUL in a string would let "HS256\0x" pass for "HS256", or a sub be
 * cut short: jansson refuses \u0000 in strings (JSON_ALLOW_NUL is not
 * given), so such a header or payload is no JSON at all. */
static void test_auth_jwt_nul_in_strings(void **state) {
    assert_int_equal(check(k_hs, sign(HS, "{\"alg\":\"HS256\\u0000\"}", P_OK)), AUTH_E_JWT_JSON);
    assert_int_equal(check(k_hs, sign(HS, "{\"alg\":\"HS256\",\"typ\":\"JWT\\u0000\"}", P_OK)),
                     AUTH_E_JWT_JSON);
    assert_int_equal(check_claims(claims("{\"exp\":%d,\"sub\":\"ana\\u0000root\"}", NOW + 60)),
                     AUTH_E_JWT_JSON);
}

static void test_auth_jwt_invalid_arguments(void **state) {
    const char *t = sign(HS, H_HS, P_OK);
    char sub[SUBCAP];
    assert_int_equal(auth_jwt_verify(NULL, t, strlen(t), NOW, sub, sizeof sub, NULL),
                     AUTH_E_INVALID);
    assert_int_equal(auth_jwt_verify(k_hs, t, strlen(t), NOW, NULL, 8, NULL), AUTH_E_INVALID);
    assert_int_equal(auth_jwt_verify(k_hs, t, strlen(t), NOW, sub, 0, NULL), AUTH_E_INVALID);
    assert_int_equal(auth_jwt_verify(k_hs, NULL, 5, NOW, sub, sizeof sub, NULL), AUTH_E_INVALID);
}

/* ------------------------------------------------------------------------ */
/* Loading keys */

static void test_auth_jwt_keys_load(void **state) {
    assert_non_null(strstr(load_fails(NULL, NULL), "neither"));
    assert_non_null(strstr(load_fails("missing.pem", NULL), "No such file"));
    assert_non_null(strstr(load_fails(NULL, "missing"), "No such file"));

    /* The secret: 32 bytes and one newline is the 32 bytes; 31 is short,
     * even with a newline; only one newline is dropped. */
    uint8_t s[AUTH_JWT_SECRET_MAX + 2];
    memcpy(s, secret, 32);
    s[32] = '\n';
    write_file("secret-nl", s, 33);
    auth_jwt_keys_t *k = load(NULL, "secret-nl");
    const char *t = sign(HS, H_HS, P_OK);
    assert_int_equal(check(k, t), 0);
    auth_jwt_keys_free(k);
    write_file("short", s, 31);
    assert_non_null(strstr(load_fails(NULL, "short"), "31 bytes"));
    s[31] = '\n';
    write_file("short-nl", s, 32);
    assert_non_null(strstr(load_fails(NULL, "short-nl"), "31 bytes"));
    memset(s, '\n', 34);
    write_file("newlines", s, 33); /* 32 newlines and one more: 32 bytes */
    k = load(NULL, "newlines");
    auth_jwt_keys_free(k);
    memset(s, 'k', sizeof s);
    write_file("big", s, AUTH_JWT_SECRET_MAX + 2);
    assert_non_null(strstr(load_fails(NULL, "big"), "larger than"));

    /* Keys of other kinds and sizes, and not keys at all. */
    EVP_PKEY *small = EVP_RSA_gen(1024), *p384 = EVP_EC_gen("P-384");
    EVP_PKEY *ed = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    assert_non_null(small);
    assert_non_null(p384);
    assert_non_null(ed);
    write_pubkey("small.pem", small);
    write_pubkey("p384.pem", p384);
    write_pubkey("ed.pem", ed);
    assert_non_null(strstr(load_fails("small.pem", NULL), "1024 bits"));
    assert_non_null(strstr(load_fails("p384.pem", NULL), "P-256"));
    assert_non_null(strstr(load_fails("ed.pem", NULL), "neither"));
    /* A private key where the public one belongs. */
    FILE *f = fopen(path("private.pem"), "wb");
    assert_int_equal(PEM_write_PrivateKey(f, ec, NULL, NULL, 0, NULL, NULL), 1);
    fclose(f);
    assert_non_null(strstr(load_fails("private.pem", NULL), "BEGIN PUBLIC KEY"));
    write_file("junk.pem", "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n", 57);
    assert_non_null(strstr(load_fails("junk.pem", NULL), "BEGIN PUBLIC KEY"));
    /* A good key and a bad secret: refused as a whole. */
    assert_non_null(strstr(load_fails("ec.pem", "short"), "31 bytes"));
    EVP_PKEY_free(small);
    EVP_PKEY_free(p384);
    EVP_PKEY_free(ed);
    auth_jwt_keys_free(NULL);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_auth_jwt_accepts_each_algorithm),
        cmocka_unit_test(test_auth_jwt_rfc7515_vector),
        cmocka_unit_test(test_auth_jwt_bad_signature),
        cmocka_unit_test(test_auth_jwt_tampered_payload),
        cmocka_unit_test(test_auth_jwt_alg_none),
        cmocka_unit_test(test_auth_jwt_key_confusion),
        cmocka_unit_test(test_auth_jwt_wrong_alg),
        cmocka_unit_test(test_auth_jwt_typ_and_crit),
        cmocka_unit_test(test_auth_jwt_exp),
        cmocka_unit_test(test_auth_jwt_skew_edges),
        cmocka_unit_test(test_auth_jwt_nbf_iat_types),
        cmocka_unit_test(test_auth_jwt_sub),
        cmocka_unit_test(test_auth_jwt_too_long),
        cmocka_unit_test(test_auth_jwt_not_three_parts),
        cmocka_unit_test(test_auth_jwt_bad_base64),
        cmocka_unit_test(test_auth_jwt_not_json_objects),
        cmocka_unit_test(test_auth_jwt_nul_in_strings),
        cmocka_unit_test(test_auth_jwt_invalid_arguments),
        cmocka_unit_test(test_auth_jwt_keys_load),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
