/* base64url without padding (auth_int.h). Small enough to write here, and
 * stricter than EVP_DecodeBlock, which wants the standard alphabet and
 * padding and skips white space. */
#include "auth/auth_int.h"

#include <limits.h>
#include <string.h>

static const char ALPHABET[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* The value of a character, or -1 (a NUL is not in the alphabet, though
 * strchr would find the terminator). */
static int value(char c) {
    const char *p = c != '\0' ? strchr(ALPHABET, c) : NULL;
    return p != NULL ? (int)(p - ALPHABET) : -1;
}

size_t auth__b64url_decoded_len(size_t n) {
    return n % 4 == 1 ? 0 : n / 4 * 3 + (n % 4 ? n % 4 - 1 : 0);
}

void auth__b64url_encode(const uint8_t *in, size_t n, char *out) {
    uint32_t acc = 0;
    unsigned bits = 0;
    for (size_t i = 0; i < n; i++) {
        acc = (acc << 8 | in[i]) & 0xFFFF;
        bits += 8;
        while (bits >= 6) {
            bits -= 6;
            *out++ = ALPHABET[acc >> bits & 63];
        }
    }
    if (bits > 0)
        *out = ALPHABET[acc << (6 - bits) & 63];
}

long auth__b64url_decode(const char *in, size_t n, uint8_t *out, size_t cap) {
    if (n % 4 == 1 || auth__b64url_decoded_len(n) > cap || n > (size_t)LONG_MAX)
        return -1;
    uint32_t acc = 0;
    unsigned bits = 0;
    size_t len = 0;
    for (size_t i = 0; i < n; i++) {
        int v = value(in[i]);
        if (v < 0)
            return -1;
        acc = (acc << 6 | (uint32_t)v) & 0xFFFFFF;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[len++] = (uint8_t)(acc >> bits);
        }
    }
    /* Left over: 2 or 4 bits of the last character, which must be zero. */
    if (acc & ((1u << bits) - 1))
        return -1;
    return (long)len;
}
