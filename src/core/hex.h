/* Lower-case hexadecimal of bytes (what Redis keys and logs carry of
 * hashes). */
#ifndef TT_CORE_HEX_H
#define TT_CORE_HEX_H

#include <stddef.h>
#include <stdint.h>

/* Writes 2 * n hex digits of b[0..n) and a NUL to out (2 * n + 1 bytes). */
static inline void tt_hex(const uint8_t *b, size_t n, char *out) {
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[b[i] >> 4];
        out[2 * i + 1] = digits[b[i] & 15];
    }
    out[2 * n] = '\0';
}

#endif
