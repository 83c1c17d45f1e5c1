/* The error sentences of auth.h. */
#include "auth/auth.h"

const char *auth_strerror(int err) {
    switch (err) {
#define AUTH_XX(name, value, text)                                                                 \
    case AUTH_E_##name:                                                                            \
        return text;
        AUTH_ERRNO_MAP(AUTH_XX)
#undef AUTH_XX
    default:
        return "unknown auth error";
    }
}
