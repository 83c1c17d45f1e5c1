/* Server-side frame writing: headers for unmasked frames, close frames. */
#include "ws/ws_frame.h"

#include <string.h>

size_t ws_frame_header_len(uint64_t len) {
    return len < 126 ? 2 : len <= 0xFFFF ? 4 : 10;
}

size_t ws_frame_header_write(uint8_t out[WS_MAX_SERVER_HEADER], bool fin, uint8_t opcode,
                             uint64_t len) {
    out[0] = (uint8_t)((fin ? 0x80 : 0) | (opcode & 0x0F));
    if (len < 126) {
        out[1] = (uint8_t)len;
        return 2;
    }
    if (len <= 0xFFFF) {
        out[1] = 126;
        out[2] = (uint8_t)(len >> 8);
        out[3] = (uint8_t)len;
        return 4;
    }
    out[1] = 127;
    for (int i = 0; i < 8; i++)
        out[2 + i] = (uint8_t)(len >> (56 - 8 * i));
    return 10;
}

size_t ws_frame_close_write(uint8_t *out, uint16_t code, const char *reason) {
    size_t rlen = reason ? strlen(reason) : 0;
    if (rlen > WS_MAX_CONTROL - 2) {
        rlen = WS_MAX_CONTROL - 2;
        /* Never cut inside a UTF-8 sequence: back up over continuation bytes. */
        while (rlen > 0 && ((uint8_t)reason[rlen] & 0xC0) == 0x80)
            rlen--;
    }
    size_t h = ws_frame_header_write(out, true, WS_OP_CLOSE, rlen + 2);
    out[h] = (uint8_t)(code >> 8);
    out[h + 1] = (uint8_t)code;
    if (rlen)
        memcpy(out + h + 2, reason, rlen);
    return h + 2 + rlen;
}
