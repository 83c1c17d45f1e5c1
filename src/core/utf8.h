/* Incremental UTF-8 validation (RFC 3629): a message may arrive in pieces,
 * so the validator carries a small state from one piece to the next and
 * rejects at the first byte that can no longer start or continue a valid
 * sequence (fail fast). Overlong forms, UTF-16 surrogates (U+D800..U+DFFF)
 * and code points above U+10FFFF are invalid. */
#ifndef TT_CORE_UTF8_H
#define TT_CORE_UTF8_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The state between pieces. Start with TT_UTF8_ACCEPT. */
typedef uint32_t tt_utf8_state_t;
#define TT_UTF8_ACCEPT 0u /* at a character boundary: everything so far is valid */
#define TT_UTF8_REJECT 1u /* invalid: stays rejected */

/* Feeds n bytes; returns the new state. Any other value than ACCEPT or
 * REJECT means "inside a multi-byte sequence". */
tt_utf8_state_t tt_utf8_feed(tt_utf8_state_t state, const uint8_t *p, size_t n);

/* True if p[0..n) is complete, valid UTF-8. */
bool tt_utf8_is_valid(const uint8_t *p, size_t n);

#endif
