/* lg_text — the texts the load generator sends, built so that a receiver can check every byte
 * of a delivery without remembering what was sent. A chat text is
 * "m<sender>-<seq>-<send time ns>-" padded to the configured size with the alphabet starting
 * at letter seq % 26 (the default), or, with lg_text_use_words, with a stretch of chat-like
 * prose (common words, spaces, punctuation) starting at an offset that seq picks; sync texts
 * are "s<sender>-<k>" and login confirmations "c<sender>". The alphabet compresses to almost
 * nothing (a 26-byte period), so permessage-deflate is measured on the words. Pure functions,
 * no allocation. */
#ifndef LG_TEXT_H
#define LG_TEXT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Writes v in decimal (no NUL); returns the digit count (at most 20). */
size_t lg_u64_dec(char *out, uint64_t v);

/* Parses a canonical decimal at *p (no sign, no leading zero, at most 19 digits) and advances
 * *p past it. False when there is none. */
bool lg_dec_parse(const char **p, const char *end, uint64_t *v);

/* Switches every later build and check of this process to the words pad. The prose is made
 * from a fixed seed, so every process (and every worker) makes the same. */
void lg_text_use_words(void);

/* Builds the chat text of message seq from sender, stamped t, into out (which must hold
 * max(size, 64) bytes). Returns its length: size, or one more than the head when the head
 * alone reaches size. */
size_t lg_text_build(char *out, uint32_t sender, uint64_t seq, uint64_t t, uint32_t size);

/* True when the n bytes at p are exactly what lg_text_build makes for some sender, seq and t
 * at this size; those are then returned. */
bool lg_text_check(const char *p, size_t n, uint32_t size, uint64_t *sender, uint64_t *seq,
                   uint64_t *t);

#endif
