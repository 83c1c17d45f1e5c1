/* Accounts for the chat: the auth hook (chat.h) on the store's worker and
 * a pool of password-hashing threads (accounts.c). */
#ifndef TT_SERVER_ACCOUNTS_H
#define TT_SERVER_ACCOUNTS_H

#include <stdbool.h>
#include <stdint.h>

#include "chat/chat.h"
#include "transport/transport.h"

struct store_async_s;
struct auth_jwt_keys_s;

typedef struct accounts_config_s {
    bool registration;     /* `register` makes accounts (off: registration_closed) */
    int64_t token_idle_ms; /* a token unused this long is dead (--token-days) */
    unsigned workers;      /* password-hashing threads (--password-workers) */
    unsigned queue;        /* checks waiting for one, at most (--password-queue) */
    /* JWT logins (--jwt-key, --jwt-secret-file): the keys, borrowed for the
     * life of the accounts; NULL: `login` with `jwt` is auth_failed. */
    const struct auth_jwt_keys_s *jwt;
} accounts_config_t;

void accounts_config_defaults(accounts_config_t *cfg);

typedef struct accounts_s accounts_t;

/* The hooks to attach with chat_set_auth(chat, &accounts_hooks, a). */
extern const chat_auth_hooks_t accounts_hooks;

/* Starts the pool; checks go through async (borrowed until accounts_free).
 * Returns 0 and *out, or an AUTH_E_* code. */
int accounts_start(tt_loop_t *loop, struct store_async_s *async, const accounts_config_t *cfg,
                   accounts_t **out);
/* Stops the pool (checks waiting for a worker answer `unavailable`, on
 * this thread) and frees its wake-up handle: call it on the loop while it
 * runs, before its handles are closed. Checks still in the store complete
 * through the store's drain. Idempotent. */
void accounts_stop(accounts_t *a);
/* After the store's front has stopped (every check answered). */
void accounts_free(accounts_t *a);

#endif
