/* Differential fuzzer for src/chat/chat_json.c: whenever the fast reader
 * takes an input (returns a tree), jansson's json_loadb(JSON_ALLOW_NUL)
 * must take it too and build an equal tree (json_equal: the same objects,
 * keys, strings byte for byte, integers, literals). Inputs it gives up on
 * are jansson's alone, so they need no check. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <jansson.h>

#include "chat/chat_int.h"

#include "fuzz_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    json_t *fast = chat__json_fast((const char *)data, size);
    if (fast == NULL)
        return 0;
    json_t *slow = json_loadb((const char *)data, size, JSON_ALLOW_NUL, NULL);
    CHECK(slow != NULL);
    CHECK(json_equal(fast, slow));
    CHECK(json_is_object(fast));
    json_decref(fast);
    json_decref(slow);
    return 0;
}
