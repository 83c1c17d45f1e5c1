/* Argon2id password hashes (auth_pw.h). libargon2 does the hashing and the
 * constant-time comparison; this file bounds what goes in: password
 * lengths, output space, and the parameters of a stored hash, which are read
 * here before libargon2 sees them because its verify would allocate
 * whatever memory the string asks for. */
#include "auth/auth_pw.h"

#include <stdint.h>
#include <string.h>

#include <argon2.h>
#include <openssl/rand.h>

#define STR_(x) #x
#define STR(x) STR_(x)

/* A hash of nothing anyone knows (the salt and "hash" are fixed bytes, not
 * the result of hashing a password), in today's parameters: verifying
 * against it costs what a real verify costs and never matches, whatever
 * the password, barring a 2^-256 chance. Built from the macros, so it
 * follows them. */
static const char DUMMY_ENCODED[] = "$argon2id$v=19$m=" STR(AUTH_PW_M_COST_KIB) ",t=" STR(
    AUTH_PW_T_COST) ",p=" STR(AUTH_PW_PARALLELISM) "$dGVydHVsaWE6IGR1bW15Lg"
                                                   "$I+i9BFP6HM16kReB/isTL19NMdqkFFTi0dh2K40XTqQ";

typedef struct pw_params_s {
    uint32_t version, m_kib, t, p;
    size_t salt_len, hash_len; /* decoded bytes */
} pw_params_t;

/* Reads "<prefix><decimal>" at *s: digits without a leading zero, at most
 * UINT32_MAX. Advances *s past them. */
static bool read_field(const char **s, const char *prefix, uint32_t *out) {
    size_t n = strlen(prefix);
    if (strncmp(*s, prefix, n) != 0)
        return false;
    const char *start = *s + n, *p = start;
    uint64_t v = 0;
    size_t digits = 0;
    while (*p >= '0' && *p <= '9' && digits < 11) {
        v = v * 10 + (uint64_t)(*p - '0');
        p++;
        digits++;
    }
    if (digits == 0 || digits > 10 || (digits > 1 && *start == '0') || v > UINT32_MAX)
        return false;
    *out = (uint32_t)v;
    *s = p;
    return true;
}

static bool is_b64(char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' ||
           c == '/';
}

/* Reads an unpadded base64 run ending at '$' or the NUL (stop) and gives its
 * decoded length. Its trailing bits are libargon2's to check. */
static bool read_b64(const char **s, char stop, size_t *bytes) {
    const char *p = *s;
    while (is_b64(*p))
        p++;
    size_t n = (size_t)(p - *s);
    if (*p != stop || n == 0 || n % 4 == 1)
        return false;
    *bytes = n / 4 * 3 + (n % 4 ? n % 4 - 1 : 0);
    *s = p;
    return true;
}

/* Parses "$argon2id$v=V$m=M,t=T,p=P$SALT$HASH", the only form libargon2
 * writes for Argon2id. 0 or AUTH_E_MALFORMED. */
static int pw_parse(const char *enc, pw_params_t *out) {
    const char *s = enc;
    if (strncmp(s, "$argon2id", 9) != 0)
        return AUTH_E_MALFORMED;
    s += 9;
    if (!read_field(&s, "$v=", &out->version) || !read_field(&s, "$m=", &out->m_kib) ||
        !read_field(&s, ",t=", &out->t) || !read_field(&s, ",p=", &out->p) || *s++ != '$' ||
        !read_b64(&s, '$', &out->salt_len) || *s++ != '$' || !read_b64(&s, '\0', &out->hash_len))
        return AUTH_E_MALFORMED;
    return 0;
}

static int map_argon2(int rc) {
    switch (rc) {
    case ARGON2_OK:
        return 0;
    case ARGON2_VERIFY_MISMATCH:
        return AUTH_E_MISMATCH;
    case ARGON2_MEMORY_ALLOCATION_ERROR:
        return AUTH_E_NOMEM;
    case ARGON2_DECODING_FAIL:
    case ARGON2_DECODING_LENGTH_FAIL:
    case ARGON2_SALT_TOO_SHORT:
    case ARGON2_OUTPUT_TOO_SHORT:
    case ARGON2_OUTPUT_TOO_LONG:
    case ARGON2_TIME_TOO_SMALL:
    case ARGON2_MEMORY_TOO_LITTLE:
    case ARGON2_LANES_TOO_FEW:
    case ARGON2_THREADS_TOO_FEW:
    case ARGON2_INCORRECT_TYPE:
    case ARGON2_INCORRECT_PARAMETER:
        return AUTH_E_MALFORMED;
    default:
        return AUTH_E_CRYPTO;
    }
}

int auth_pw_hash(const char *pw, size_t len, char *out, size_t cap) {
    if (out == NULL || (pw == NULL && len > 0))
        return AUTH_E_INVALID;
    if (cap > 0)
        out[0] = '\0';
    if (len < AUTH_PW_MIN || len > AUTH_PW_MAX)
        return AUTH_E_PASSWORD;
    size_t need = argon2_encodedlen(AUTH_PW_T_COST, AUTH_PW_M_COST_KIB, AUTH_PW_PARALLELISM,
                                    AUTH_PW_SALT_BYTES, AUTH_PW_HASH_BYTES, Argon2_id);
    if (cap < need)
        return AUTH_E_NOSPACE;
    uint8_t salt[AUTH_PW_SALT_BYTES];
    if (RAND_bytes(salt, sizeof salt) != 1)
        return AUTH_E_RANDOM;
    int rc = argon2id_hash_encoded(AUTH_PW_T_COST, AUTH_PW_M_COST_KIB, AUTH_PW_PARALLELISM, pw, len,
                                   salt, sizeof salt, AUTH_PW_HASH_BYTES, out, cap);
    if (rc != ARGON2_OK) {
        out[0] = '\0';
        /* Every input was checked above: whatever libargon2 still refuses is
         * its own trouble, not a malformed hash. */
        return rc == ARGON2_MEMORY_ALLOCATION_ERROR ? AUTH_E_NOMEM : AUTH_E_CRYPTO;
    }
    return 0;
}

int auth_pw_verify(const char *encoded, const char *pw, size_t len) {
    if (encoded == NULL || (pw == NULL && len > 0))
        return AUTH_E_INVALID;
    if (len > AUTH_PW_MAX)
        return AUTH_E_PASSWORD;
    if (strnlen(encoded, AUTH_PW_ENCODED_MAX) >= AUTH_PW_ENCODED_MAX)
        return AUTH_E_MALFORMED;
    pw_params_t p;
    if (pw_parse(encoded, &p) != 0)
        return AUTH_E_MALFORMED;
    if (p.m_kib > AUTH_PW_VERIFY_M_MAX_KIB || p.t > AUTH_PW_VERIFY_T_MAX ||
        p.p > AUTH_PW_VERIFY_P_MAX)
        return AUTH_E_PARAMS;
    /* libargon2 reads a NULL password of length 0 as empty; give it a
     * pointer anyway. */
    return map_argon2(argon2id_verify(encoded, pw != NULL ? pw : "", len));
}

int auth_pw_verify_dummy(const char *pw, size_t len) {
    (void)auth_pw_verify(DUMMY_ENCODED, pw, len);
    return AUTH_E_MISMATCH;
}

bool auth_pw_params_current(const char *encoded) {
    pw_params_t p;
    if (encoded == NULL || strnlen(encoded, AUTH_PW_ENCODED_MAX) >= AUTH_PW_ENCODED_MAX ||
        pw_parse(encoded, &p) != 0)
        return false;
    return p.version == ARGON2_VERSION_NUMBER && p.m_kib == AUTH_PW_M_COST_KIB &&
           p.t == AUTH_PW_T_COST && p.p == AUTH_PW_PARALLELISM &&
           p.salt_len == AUTH_PW_SALT_BYTES && p.hash_len == AUTH_PW_HASH_BYTES;
}
