/* JWT verification (auth_jwt.h) with OpenSSL's EVP API and jansson. The
 * order of the checks matters: the header is read only as far as choosing
 * and checking the algorithm, the signature is checked before anything of
 * the payload is parsed, and the claims are read from a payload that the
 * key's owner signed. */
#include "auth/auth_jwt.h"

#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>
#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/objects.h>
#include <openssl/pem.h>

#include "auth/auth_int.h"

/* A public key file is a few hundred bytes (RSA 4096: 800); anything near
 * this is not one. */
#define PEM_FILE_MAX (64 * 1024)
/* ES256 signatures are r || s, 32 bytes each (RFC 7518 section 3.4); their
 * DER form for OpenSSL is at most 2 + 2 * (2 + 33) bytes. */
#define ES256_SIG_LEN 64
#define ES256_DER_MAX 72
/* Times are clamped to +-2^53 seconds (far past any real date, and where
 * doubles are still exact), so adding the skew cannot overflow. */
#define TIME_LIMIT ((int64_t)1 << 53)

struct auth_jwt_keys_s {
    EVP_PKEY *pkey; /* NULL, or an RSA or EC P-256 public key */
    bool pkey_is_ec;
    uint8_t *secret; /* NULL, or the HS256 secret */
    size_t secret_len;
};

typedef enum { ALG_HS256, ALG_RS256, ALG_ES256 } alg_t;

/* Reads at most cap bytes of path into a fresh *buf (freed by the caller,
 * also on failure). Returns 0, or -1 with a sentence in err. */
static int read_file(const char *path, const char *what, size_t cap, uint8_t **buf, size_t *len,
                     char *err, size_t errlen) {
    *buf = NULL;
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        snprintf(err, errlen, "%s %s: %s", what, path, strerror(errno));
        return -1;
    }
    /* One byte more than allowed tells a file over the bound from one that
     * fills it. */
    *buf = malloc(cap + 1);
    if (*buf == NULL) {
        fclose(f);
        snprintf(err, errlen, "%s %s: out of memory", what, path);
        return -1;
    }
    *len = fread(*buf, 1, cap + 1, f);
    int failed = ferror(f);
    fclose(f);
    if (failed) {
        snprintf(err, errlen, "%s %s: read error", what, path);
        return -1;
    }
    if (*len > cap) {
        snprintf(err, errlen, "%s %s: larger than %zu bytes", what, path, cap);
        return -1;
    }
    return 0;
}

static int load_pubkey(auth_jwt_keys_t *k, const char *path, char *err, size_t errlen) {
    uint8_t *pem;
    size_t len;
    int ret = -1;
    if (read_file(path, "JWT public key", PEM_FILE_MAX, &pem, &len, err, errlen) != 0)
        goto out;
    BIO *bio = BIO_new_mem_buf(pem, (int)len);
    k->pkey = bio != NULL ? PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL) : NULL;
    BIO_free(bio);
    if (k->pkey == NULL) {
        snprintf(err, errlen,
                 "JWT public key %s: no PEM public key (\"BEGIN PUBLIC KEY\") in it; "
                 "`openssl pkey -pubout` writes one from a private key",
                 path);
        goto out;
    }
    if (EVP_PKEY_is_a(k->pkey, "RSA")) {
        int bits = EVP_PKEY_get_bits(k->pkey);
        if (bits < AUTH_JWT_RSA_MIN_BITS) {
            snprintf(err, errlen, "JWT public key %s: RSA key of %d bits, at least %d needed", path,
                     bits, AUTH_JWT_RSA_MIN_BITS);
            goto out;
        }
        k->pkey_is_ec = false;
    } else if (EVP_PKEY_is_a(k->pkey, "EC")) {
        char group[64];
        if (EVP_PKEY_get_group_name(k->pkey, group, sizeof group, NULL) != 1 ||
            OBJ_txt2nid(group) != NID_X9_62_prime256v1) {
            snprintf(err, errlen, "JWT public key %s: EC key not on P-256 (ES256 needs P-256)",
                     path);
            goto out;
        }
        k->pkey_is_ec = true;
    } else {
        snprintf(err, errlen, "JWT public key %s: neither an RSA nor an EC P-256 key", path);
        goto out;
    }
    ret = 0;
out:
    free(pem);
    ERR_clear_error();
    return ret;
}

static int load_secret(auth_jwt_keys_t *k, const char *path, char *err, size_t errlen) {
    uint8_t *buf;
    size_t len;
    /* The +1 leaves room for the newline an editor adds. */
    if (read_file(path, "HS256 secret", AUTH_JWT_SECRET_MAX + 1, &buf, &len, err, errlen) != 0) {
        free(buf);
        return -1;
    }
    if (len > 0 && buf[len - 1] == '\n')
        len--;
    if (len < AUTH_JWT_SECRET_MIN || len > AUTH_JWT_SECRET_MAX) {
        snprintf(err, errlen, "HS256 secret %s: %zu bytes, it must have %d to %d", path, len,
                 AUTH_JWT_SECRET_MIN, AUTH_JWT_SECRET_MAX);
        OPENSSL_cleanse(buf, len);
        free(buf);
        return -1;
    }
    k->secret = buf;
    k->secret_len = len;
    return 0;
}

int auth_jwt_keys_load(const char *pubkey_pem_path, const char *hs256_secret_path,
                       auth_jwt_keys_t **out, char *err, size_t errlen) {
    if (errlen > 0)
        err[0] = '\0';
    if (out == NULL)
        return AUTH_E_INVALID;
    *out = NULL;
    if (pubkey_pem_path == NULL && hs256_secret_path == NULL) {
        snprintf(err, errlen, "JWT: neither a public key nor an HS256 secret given");
        return AUTH_E_INVALID;
    }
    auth_jwt_keys_t *k = calloc(1, sizeof *k);
    if (k == NULL) {
        snprintf(err, errlen, "JWT keys: out of memory");
        return AUTH_E_NOMEM;
    }
    if ((pubkey_pem_path != NULL && load_pubkey(k, pubkey_pem_path, err, errlen) != 0) ||
        (hs256_secret_path != NULL && load_secret(k, hs256_secret_path, err, errlen) != 0)) {
        auth_jwt_keys_free(k);
        return AUTH_E_INVALID;
    }
    *out = k;
    return 0;
}

void auth_jwt_keys_free(auth_jwt_keys_t *k) {
    if (k == NULL)
        return;
    EVP_PKEY_free(k->pkey);
    if (k->secret != NULL) {
        OPENSSL_cleanse(k->secret, k->secret_len);
        free(k->secret);
    }
    free(k);
}

/* True when v is the string s. Strings cannot hold a NUL: the parser
 * refuses \u0000 without JSON_ALLOW_NUL. */
static bool json_str_is(const json_t *v, const char *s, bool nocase) {
    if (!json_is_string(v))
        return false;
    return nocase ? strcasecmp(json_string_value(v), s) == 0 : strcmp(json_string_value(v), s) == 0;
}

/* The algorithm the header names, if the loaded keys allow it. */
static int header_alg(const auth_jwt_keys_t *k, const json_t *alg, alg_t *out) {
    if (json_str_is(alg, "HS256", false) && k->secret != NULL)
        *out = ALG_HS256;
    else if (json_str_is(alg, "RS256", false) && k->pkey != NULL && !k->pkey_is_ec)
        *out = ALG_RS256;
    else if (json_str_is(alg, "ES256", false) && k->pkey != NULL && k->pkey_is_ec)
        *out = ALG_ES256;
    else
        return AUTH_E_JWT_ALG;
    return 0;
}

/* EVP_DigestVerify of SHA-256 with the public key: 0, AUTH_E_JWT_SIGNATURE
 * or AUTH_E_NOMEM. */
static int verify_pkey(EVP_PKEY *pkey, const uint8_t *sig, size_t siglen, const char *in,
                       size_t inlen) {
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (ctx == NULL)
        return AUTH_E_NOMEM;
    int ok = EVP_DigestVerifyInit(ctx, NULL, EVP_sha256(), NULL, pkey) == 1 &&
             EVP_DigestVerify(ctx, sig, siglen, (const unsigned char *)in, inlen) == 1;
    EVP_MD_CTX_free(ctx);
    /* A refused signature leaves reasons in this thread's error queue;
     * nothing else here reads them. */
    ERR_clear_error();
    return ok ? 0 : AUTH_E_JWT_SIGNATURE;
}

/* JWS's r || s as the DER ECDSA-Sig-Value OpenSSL verifies. Returns the DER
 * length, or 0. */
static size_t es256_der(const uint8_t raw[ES256_SIG_LEN], uint8_t der[ES256_DER_MAX]) {
    ECDSA_SIG *sig = ECDSA_SIG_new();
    BIGNUM *r = BN_bin2bn(raw, ES256_SIG_LEN / 2, NULL);
    BIGNUM *s = BN_bin2bn(raw + ES256_SIG_LEN / 2, ES256_SIG_LEN / 2, NULL);
    size_t n = 0;
    if (sig != NULL && r != NULL && s != NULL && ECDSA_SIG_set0(sig, r, s) == 1) {
        r = s = NULL; /* owned by sig now */
        int need = i2d_ECDSA_SIG(sig, NULL);
        if (need > 0 && need <= ES256_DER_MAX) {
            unsigned char *p = der;
            n = (size_t)i2d_ECDSA_SIG(sig, &p);
        }
    }
    BN_free(r);
    BN_free(s);
    ECDSA_SIG_free(sig);
    return n;
}

static int verify_signature(const auth_jwt_keys_t *k, alg_t alg, const uint8_t *sig, size_t siglen,
                            const char *in, size_t inlen) {
    switch (alg) {
    case ALG_HS256: {
        uint8_t mac[EVP_MAX_MD_SIZE];
        unsigned int maclen = 0;
        if (HMAC(EVP_sha256(), k->secret, (int)k->secret_len, (const unsigned char *)in, inlen, mac,
                 &maclen) == NULL)
            return AUTH_E_CRYPTO;
        return siglen == maclen && CRYPTO_memcmp(sig, mac, maclen) == 0 ? 0 : AUTH_E_JWT_SIGNATURE;
    }
    case ALG_RS256:
        return verify_pkey(k->pkey, sig, siglen, in, inlen);
    case ALG_ES256: {
        uint8_t der[ES256_DER_MAX];
        size_t derlen = siglen == ES256_SIG_LEN ? es256_der(sig, der) : 0;
        if (derlen == 0)
            return AUTH_E_JWT_SIGNATURE;
        return verify_pkey(k->pkey, der, derlen, in, inlen);
    }
    }
    return AUTH_E_JWT_ALG;
}

/* Decodes one part and parses it as a JSON object. */
static int part_json(const char *b64, size_t n, uint8_t *buf, size_t cap, json_t **out) {
    long len = auth__b64url_decode(b64, n, buf, cap);
    if (len < 0)
        return AUTH_E_JWT_BASE64;
    json_error_t jerr;
    /* Duplicate members are refused (RFC 7515 section 4: "MUST reject or
     * use only the lexically last"): two readers of one token must not see
     * two different claims. */
    *out = json_loadb((const char *)buf, (size_t)len, JSON_REJECT_DUPLICATES, &jerr);
    if (*out != NULL && json_is_object(*out))
        return 0;
    json_decref(*out);
    *out = NULL;
    return AUTH_E_JWT_JSON;
}

/* A NumericDate (RFC 7519 section 2): a JSON number, possibly with a
 * fraction, rounded down to whole seconds and clamped to +-TIME_LIMIT. */
static int claim_time(const json_t *v, int64_t *out) {
    double d;
    if (json_is_integer(v)) {
        json_int_t i = json_integer_value(v);
        *out = i > TIME_LIMIT ? TIME_LIMIT : i < -TIME_LIMIT ? -TIME_LIMIT : (int64_t)i;
        return 0;
    }
    if (!json_is_real(v) || !isfinite(d = json_real_value(v)))
        return AUTH_E_JWT_CLAIM;
    if (d >= (double)TIME_LIMIT)
        *out = TIME_LIMIT;
    else if (d <= -(double)TIME_LIMIT)
        *out = -TIME_LIMIT;
    else {
        *out = (int64_t)d;
        if ((double)*out > d)
            (*out)--;
    }
    return 0;
}

/* The optional time claim name: 0 when absent (*present false), or its
 * value. */
static int optional_time(const json_t *payload, const char *name, bool *present, int64_t *out) {
    const json_t *v = json_object_get(payload, name);
    *present = v != NULL;
    return v != NULL ? claim_time(v, out) : 0;
}

static int check_claims(const json_t *payload, int64_t now, char *sub, size_t subcap,
                        int64_t *exp_out) {
    now = now > TIME_LIMIT ? TIME_LIMIT : now < -TIME_LIMIT ? -TIME_LIMIT : now;
    int64_t exp, nbf, iat;
    bool has_exp, has_nbf, has_iat;
    int rc = optional_time(payload, "exp", &has_exp, &exp);
    if (rc == 0 && !has_exp)
        rc = AUTH_E_JWT_NO_EXP;
    if (rc == 0)
        rc = optional_time(payload, "nbf", &has_nbf, &nbf);
    if (rc == 0)
        rc = optional_time(payload, "iat", &has_iat, &iat);
    if (rc != 0)
        return rc;
    if (now >= exp + AUTH_JWT_SKEW_S)
        return AUTH_E_JWT_EXPIRED;
    if (has_nbf && now + AUTH_JWT_SKEW_S < nbf)
        return AUTH_E_JWT_NOT_YET;
    if (has_iat && iat > now + AUTH_JWT_SKEW_S)
        return AUTH_E_JWT_IAT;
    const json_t *s = json_object_get(payload, "sub");
    if (s == NULL)
        return AUTH_E_JWT_NO_SUB;
    if (!json_is_string(s))
        return AUTH_E_JWT_SUB;
    size_t n = json_string_length(s);
    if (n == 0 || n >= subcap)
        return AUTH_E_JWT_SUB;
    memcpy(sub, json_string_value(s), n + 1);
    if (exp_out != NULL)
        *exp_out = exp;
    return 0;
}

int auth_jwt_verify(const auth_jwt_keys_t *k, const char *tok, size_t len, int64_t now_s, char *sub,
                    size_t subcap, int64_t *exp_out) {
    if (k == NULL || (tok == NULL && len > 0) || sub == NULL || subcap == 0)
        return AUTH_E_INVALID;
    sub[0] = '\0';
    if (len > AUTH_JWT_MAX)
        return AUTH_E_JWT_TOO_LONG;
    /* header.payload.signature: exactly two dots. */
    const char *end = tok + len;
    const char *d1 = len > 0 ? memchr(tok, '.', len) : NULL;
    const char *d2 = d1 != NULL ? memchr(d1 + 1, '.', (size_t)(end - d1 - 1)) : NULL;
    if (d2 == NULL || memchr(d2 + 1, '.', (size_t)(end - d2 - 1)) != NULL)
        return AUTH_E_JWT_FORMAT;

    /* A part decodes to 3/4 of its characters, so any part fits in
     * AUTH_JWT_MAX bytes; the buffer is reused part after part. */
    uint8_t buf[AUTH_JWT_MAX];
    json_t *header = NULL, *payload = NULL;
    alg_t alg;
    int rc = part_json(tok, (size_t)(d1 - tok), buf, sizeof buf, &header);
    if (rc == 0)
        rc = header_alg(k, json_object_get(header, "alg"), &alg);
    if (rc == 0) {
        const json_t *typ = json_object_get(header, "typ");
        /* typ is a media type: compared ignoring case (RFC 7515 section
         * 4.1.9). */
        if (typ != NULL && !json_str_is(typ, "JWT", true))
            rc = AUTH_E_JWT_TYP;
        else if (json_object_get(header, "crit") != NULL)
            rc = AUTH_E_JWT_CRIT;
    }
    json_decref(header);
    if (rc != 0)
        return rc;

    long siglen = auth__b64url_decode(d2 + 1, (size_t)(end - d2 - 1), buf, sizeof buf);
    if (siglen < 0)
        return AUTH_E_JWT_BASE64;
    rc = verify_signature(k, alg, buf, (size_t)siglen, tok, (size_t)(d2 - tok));
    if (rc != 0)
        return rc;

    rc = part_json(d1 + 1, (size_t)(d2 - d1 - 1), buf, sizeof buf, &payload);
    if (rc == 0)
        rc = check_claims(payload, now_s, sub, subcap, exp_out);
    json_decref(payload);
    if (rc != 0)
        sub[0] = '\0';
    return rc;
}
