/* The chat's auth hook (chat.h, "The accounts interface"): accounts and
 * tokens in the store, passwords checked with Argon2id on a small pool of
 * worker threads (src/auth/auth_pool.h), so the loop never hashes and
 * never waits. Each check is one job here that goes step by step, each
 * step off the loop:
 *
 *   password login   store: the account → pool: verify (a dummy verify
 *                    for an unknown nickname) → store: a new token
 *   register         pool: hash → store: create the account and its token
 *   token login      store: the token, used (its idle time restarts)
 *   guest check      store: is the nickname an account's?
 *   logout           store: revoke the token (or every token)
 *   password change  store: the account → pool: verify the old one and
 *                    hash the new → store: new hash, every token revoked,
 *                    a new token
 *
 * An unknown nickname and a wrong password cost the same steps (a store
 * read and one Argon2id verify), so the answer takes as long. Failures are
 * rate limited per client address and per nickname (token buckets in two
 * fixed tables: no allocation per key, a bounded memory whatever the
 * number of names tried). A full pool queue is `rate_limited`, not an
 * unbounded wait. */
#include "server/accounts.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "auth/auth_jwt.h"
#include "auth/auth_pool.h"
#include "auth/auth_pw.h"
#include "auth/auth_token.h"
#include "core/log.h"
#include "core/map.h"
#include "core/xmalloc.h"
#include "store/store.h"
#include "store/store_async.h"

/* Failure buckets: a failure takes a token; with none left a check is
 * refused before it costs a hash. Per address: 20 at once, one back every
 * 3 s; per nickname: 10 at once, one back every 30 s (an attacker with many
 * addresses still gets 2 guesses a minute at one account). */
#define LIMIT_SLOTS 4096
#define ADDR_BURST 20
#define ADDR_REFILL_MS 3000
#define NICK_BURST 10
#define NICK_REFILL_MS 30000
#define BUSY_RETRY_MS 1000

typedef struct bucket_s {
    uint64_t key;     /* the key's hash (0: unused) */
    uint32_t tokens;  /* failures allowed now */
    uint64_t last_ms; /* when tokens were last refilled */
} bucket_t;

typedef struct limiter_s {
    bucket_t slot[LIMIT_SLOTS];
    uint32_t burst;
    uint64_t refill_ms;
} limiter_t;

struct accounts_s {
    tt_loop_t *loop;
    store_async_t *async;
    auth_pool_t *pool;
    tt_async_t *wake;
    accounts_config_t cfg;
    tt_map_t hasher; /* never holds a key: its keyed SipHash names buckets */
    limiter_t by_addr, by_nick;
    bool stopped;
    uint64_t inflight;
};

typedef struct acct_job_s {
    accounts_t *a;
    chat_auth_op_t op;
    chat_auth_done_cb done;
    void *arg;
    char nick[CHAT_NICK_MAX + 1];
    size_t nick_len;
    char secret[CHAT_PASSWORD_MAX + 1]; /* the password or token (wiped when done) */
    size_t secret_len;
    char new_secret[CHAT_PASSWORD_MAX + 1];
    size_t new_secret_len;
    char *jwt; /* JWT: the token (owned), checked on the pool */
    size_t jwt_len;
    int64_t account_id;
    uint8_t token_hash[AUTH_TOKEN_HASH_BYTES]; /* LOGOUT: the one to revoke; OK: the new one */
    bool has_token_hash;
    bool everywhere;
    uint64_t addr_key, nick_key;
    int64_t now_ms;
    /* Results of the steps */
    int rc;
    store_account_t acct;
    char hash[AUTH_PW_ENCODED_MAX]; /* REGISTER, CHANGE: the new hash */
    chat_auth_result_t result;
} acct_job_t;

static int64_t wall_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- rate limits ---- */

static bucket_t *bucket_of(limiter_t *l, uint64_t key, uint64_t now) {
    bucket_t *b = &l->slot[key % LIMIT_SLOTS];
    if (b->key != key) {
        /* Another key, or none: this one starts full (a colliding key may
         * so reset another's count; the table bounds memory, not guesses
         * at a colliding pair, which the per-address bucket still does). */
        b->key = key;
        b->tokens = l->burst;
        b->last_ms = now;
    }
    uint64_t back = (now - b->last_ms) / l->refill_ms;
    if (back > 0) {
        b->tokens = b->tokens + back > l->burst ? l->burst : b->tokens + (uint32_t)back;
        b->last_ms += back * l->refill_ms;
    }
    return b;
}

/* 0, or how long until a failure is allowed again. */
static uint64_t limited_for(limiter_t *l, uint64_t key, uint64_t now) {
    bucket_t *b = bucket_of(l, key, now);
    return b->tokens > 0 ? 0 : l->refill_ms - (now - b->last_ms);
}

static void charge(limiter_t *l, uint64_t key, uint64_t now) {
    bucket_t *b = bucket_of(l, key, now);
    if (b->tokens > 0)
        b->tokens--;
}

static uint64_t key_of(accounts_t *a, const char *s, size_t len) {
    uint64_t h = tt_map_hash(&a->hasher, s, len);
    return h != 0 ? h : 1;
}

/* ---- finishing ---- */

static void finish(acct_job_t *j, chat_auth_status_t status) {
    accounts_t *a = j->a;
    free(j->jwt);
    j->jwt = NULL;
    j->result.status = status;
    if (status == CHAT_AUTH_FAILED) {
        uint64_t now = tt_loop_now(a->loop);
        charge(&a->by_addr, j->addr_key, now);
        if (j->nick_key != 0)
            charge(&a->by_nick, j->nick_key, now);
    }
    a->inflight--;
    j->done(j->arg, &j->result);
    explicit_bzero(j, sizeof(*j));
    free(j);
}

static void finish_limited(acct_job_t *j, uint64_t retry_ms) {
    j->result.retry_ms = retry_ms;
    finish(j, CHAT_AUTH_LIMITED);
}

static chat_auth_status_t store_status(int rc) {
    return rc == STORE_E_NOTFOUND ? CHAT_AUTH_FAILED : CHAT_AUTH_UNAVAILABLE;
}

/* The account found (or made) is the result, with a new token. */
static void result_account(acct_job_t *j) {
    j->result.account_id = j->acct.id;
    size_t n = strlen(j->acct.nick);
    memcpy(j->result.nick, j->acct.nick, n + 1);
    j->result.nick_len = n;
}

/* A new token into the result; its hash into j->token_hash. */
static int new_token(acct_job_t *j) {
    if (auth_token_new(j->result.token, sizeof(j->result.token)) != 0)
        return -1;
    auth_token_hash(j->result.token, strlen(j->result.token), j->token_hash);
    memcpy(j->result.token_hash, j->token_hash, sizeof(j->token_hash));
    return 0;
}

/* ---- steps ---- */

static void pool_submit(acct_job_t *j, auth_pool_work_fn work, auth_pool_done_fn done) {
    if (j->a->stopped) {
        finish(j, CHAT_AUTH_UNAVAILABLE);
        return;
    }
    int rc = auth_pool_submit(j->a->pool, work, done, j);
    if (rc == AUTH_E_BUSY)
        finish_limited(j, BUSY_RETRY_MS);
    else if (rc < 0)
        finish(j, CHAT_AUTH_UNAVAILABLE);
}

/* A store step from a completion (already off authenticate's stack). */
static void store_step(acct_job_t *j, store_call_run_fn run, store_call_done_cb done) {
    if (store_async_call(j->a->async, sizeof(*j), run, done, j) < 0)
        finish(j, CHAT_AUTH_UNAVAILABLE);
}

/* -- password login: account → verify → token -- */

static int run_token_add(store_t *st, void *arg) {
    acct_job_t *j = arg;
    return store_token_add(st, j->acct.id, j->token_hash, j->now_ms);
}

static void done_token_add(void *arg, int rc) {
    acct_job_t *j = arg;
    finish(j, rc == 0 ? CHAT_AUTH_OK : CHAT_AUTH_UNAVAILABLE);
}

static void work_verify(void *arg) {
    acct_job_t *j = arg;
    if (j->rc == 0 && j->acct.hash[0] != '\0')
        j->rc = auth_pw_verify(j->acct.hash, j->secret, j->secret_len);
    else
        j->rc = (auth_pw_verify_dummy(j->secret, j->secret_len), AUTH_E_MISMATCH);
    explicit_bzero(j->secret, sizeof(j->secret));
}

static void done_verify(void *arg, int rc) {
    acct_job_t *j = arg;
    if (rc != 0) {
        finish(j, CHAT_AUTH_UNAVAILABLE);
        return;
    }
    if (j->rc != 0) {
        finish(j, CHAT_AUTH_FAILED);
        return;
    }
    result_account(j);
    if (new_token(j) != 0) {
        finish(j, CHAT_AUTH_UNAVAILABLE);
        return;
    }
    j->now_ms = wall_ms();
    store_step(j, run_token_add, done_token_add);
}

static int run_get(store_t *st, void *arg) {
    acct_job_t *j = arg;
    return store_account_get(st, j->nick, j->nick_len, &j->acct);
}

static void done_get_for_login(void *arg, int rc) {
    acct_job_t *j = arg;
    if (rc != 0 && rc != STORE_E_NOTFOUND) {
        finish(j, CHAT_AUTH_UNAVAILABLE);
        return;
    }
    /* Found or not, one verify: the same time either way. */
    j->rc = rc;
    pool_submit(j, work_verify, done_verify);
}

/* -- register: hash → create with its token -- */

static int run_create(store_t *st, void *arg) {
    acct_job_t *j = arg;
    int rc = store_account_create(st, j->nick, j->nick_len, j->hash, j->now_ms, &j->acct);
    if (rc == 0)
        rc = store_token_add(st, j->acct.id, j->token_hash, j->now_ms);
    return rc;
}

static void done_create(void *arg, int rc) {
    acct_job_t *j = arg;
    if (rc == STORE_E_EXISTS) {
        finish(j, CHAT_AUTH_TAKEN);
        return;
    }
    if (rc != 0) {
        finish(j, CHAT_AUTH_UNAVAILABLE);
        return;
    }
    result_account(j);
    tt_log_info("accounts: %s registered (account %lld)", j->acct.nick, (long long)j->acct.id);
    finish(j, CHAT_AUTH_OK);
}

static void work_hash(void *arg) {
    acct_job_t *j = arg;
    j->rc = auth_pw_hash(j->secret, j->secret_len, j->hash, sizeof(j->hash));
    explicit_bzero(j->secret, sizeof(j->secret));
}

static void done_hash(void *arg, int rc) {
    acct_job_t *j = arg;
    if (rc != 0 || j->rc != 0 || new_token(j) != 0) {
        finish(j, CHAT_AUTH_UNAVAILABLE);
        return;
    }
    j->now_ms = wall_ms();
    store_step(j, run_create, done_create);
}

/* -- token login -- */

static int run_token_use(store_t *st, void *arg) {
    acct_job_t *j = arg;
    return store_token_use(st, j->token_hash, j->now_ms, j->a->cfg.token_idle_ms, &j->acct);
}

static void done_token_use(void *arg, int rc) {
    acct_job_t *j = arg;
    if (rc != 0) {
        finish(j, store_status(rc));
        return;
    }
    result_account(j);
    memcpy(j->result.token_hash, j->token_hash, sizeof(j->token_hash));
    finish(j, CHAT_AUTH_OK);
}

/* Nothing to run: a step that only makes the answer asynchronous (a token
 * that cannot be one, registrations closed). */
static int run_nothing(store_t *st, void *arg) {
    (void)st;
    (void)arg;
    return 0;
}

static void done_failed(void *arg, int rc) {
    (void)rc;
    finish(arg, CHAT_AUTH_FAILED);
}

static void done_closed(void *arg, int rc) {
    (void)rc;
    finish(arg, CHAT_AUTH_CLOSED);
}

static void done_unavailable(void *arg, int rc) {
    (void)rc;
    finish(arg, CHAT_AUTH_UNAVAILABLE);
}

static void done_limited(void *arg, int rc) {
    (void)rc;
    acct_job_t *j = arg;
    finish_limited(j, j->result.retry_ms);
}

/* -- JWT: verify (pool) → the account its sub names, made if new (store) -- */

static int run_jwt_account(store_t *st, void *arg) {
    acct_job_t *j = arg;
    int rc = store_account_get(st, j->nick, j->nick_len, &j->acct);
    /* An operator's user is an account: its nickname is reserved from its
     * first login on, without a password of ours. */
    if (rc == STORE_E_NOTFOUND)
        rc = store_account_create(st, j->nick, j->nick_len, NULL, j->now_ms, &j->acct);
    if (rc == STORE_E_EXISTS) /* made meanwhile by another login */
        rc = store_account_get(st, j->nick, j->nick_len, &j->acct);
    return rc;
}

static void done_jwt_account(void *arg, int rc) {
    acct_job_t *j = arg;
    if (rc != 0) {
        finish(j, CHAT_AUTH_UNAVAILABLE);
        return;
    }
    result_account(j);
    finish(j, CHAT_AUTH_OK);
}

static void work_jwt(void *arg) {
    acct_job_t *j = arg;
    char sub[CHAT_NICK_MAX + 2];
    j->rc = auth_jwt_verify(j->a->cfg.jwt, j->jwt, j->jwt_len, j->now_ms / 1000, sub, sizeof(sub),
                            NULL);
    if (j->rc == 0 && !chat_nickname_is_valid(sub, strlen(sub)))
        j->rc = AUTH_E_JWT_SUB;
    if (j->rc == 0) {
        j->nick_len = strlen(sub);
        memcpy(j->nick, sub, j->nick_len + 1);
    }
}

static void done_work_jwt(void *arg, int rc) {
    acct_job_t *j = arg;
    if (rc != 0) {
        finish(j, CHAT_AUTH_UNAVAILABLE);
        return;
    }
    if (j->rc != 0) {
        tt_log_debug("accounts: a JWT refused: %s", auth_strerror(j->rc));
        finish(j, CHAT_AUTH_FAILED);
        return;
    }
    store_step(j, run_jwt_account, done_jwt_account);
}

/* -- lookup: is nick an account? (a private to it) -- */

static void done_lookup(void *arg, int rc) {
    acct_job_t *j = arg;
    if (rc == 0)
        result_account(j);
    finish(j, rc == 0                  ? CHAT_AUTH_OK
              : rc == STORE_E_NOTFOUND ? CHAT_AUTH_NOTFOUND
                                       : CHAT_AUTH_UNAVAILABLE);
}

/* -- guest check -- */

static void done_guest(void *arg, int rc) {
    acct_job_t *j = arg;
    finish(j, rc == 0                  ? CHAT_AUTH_REGISTERED
              : rc == STORE_E_NOTFOUND ? CHAT_AUTH_OK
                                       : CHAT_AUTH_UNAVAILABLE);
}

/* -- logout -- */

static int run_logout(store_t *st, void *arg) {
    acct_job_t *j = arg;
    if (j->everywhere)
        return store_tokens_revoke_all(st, j->account_id, NULL);
    return j->has_token_hash ? store_token_revoke(st, j->token_hash) : 0;
}

static void done_logout(void *arg, int rc) {
    finish(arg, rc == 0 ? CHAT_AUTH_OK : CHAT_AUTH_UNAVAILABLE);
}

/* -- password change: account → verify old, hash new → store -- */

static int run_change(store_t *st, void *arg) {
    acct_job_t *j = arg;
    int rc = store_account_set_hash(st, j->acct.id, j->hash, j->now_ms, true);
    if (rc == 0)
        rc = store_token_add(st, j->acct.id, j->token_hash, j->now_ms);
    return rc;
}

static void done_change(void *arg, int rc) {
    acct_job_t *j = arg;
    if (rc == 0) {
        result_account(j);
        tt_log_info("accounts: %s changed its password (every other token revoked)", j->acct.nick);
    }
    finish(j, rc == 0 ? CHAT_AUTH_OK : CHAT_AUTH_UNAVAILABLE);
}

static void work_change(void *arg) {
    acct_job_t *j = arg;
    if (j->acct.hash[0] == '\0')
        j->rc = (auth_pw_verify_dummy(j->secret, j->secret_len), AUTH_E_MISMATCH);
    else
        j->rc = auth_pw_verify(j->acct.hash, j->secret, j->secret_len);
    if (j->rc == AUTH_E_PASSWORD)
        j->rc = AUTH_E_MISMATCH; /* longer than any password can be */
    if (j->rc == 0)
        j->rc = auth_pw_hash(j->new_secret, j->new_secret_len, j->hash, sizeof(j->hash));
    explicit_bzero(j->secret, sizeof(j->secret));
    explicit_bzero(j->new_secret, sizeof(j->new_secret));
}

static void done_work_change(void *arg, int rc) {
    acct_job_t *j = arg;
    if (rc != 0) {
        finish(j, CHAT_AUTH_UNAVAILABLE);
        return;
    }
    if (j->rc == AUTH_E_MISMATCH) {
        finish(j, CHAT_AUTH_FAILED);
        return;
    }
    if (j->rc != 0 || new_token(j) != 0) {
        finish(j, CHAT_AUTH_UNAVAILABLE);
        return;
    }
    j->now_ms = wall_ms();
    store_step(j, run_change, done_change);
}

static void done_get_for_change(void *arg, int rc) {
    acct_job_t *j = arg;
    if (rc != 0 || j->acct.id != j->account_id) {
        finish(j, rc == 0 || rc == STORE_E_NOTFOUND ? CHAT_AUTH_FAILED : CHAT_AUTH_UNAVAILABLE);
        return;
    }
    pool_submit(j, work_change, done_work_change);
}

/* ---- the hook ---- */

/* A check whose first step is on the pool: true when it was queued there.
 * Otherwise (a full queue, or a stopped pool) its answer comes through a
 * store step that does nothing, so it is never given inside authenticate:
 * rate_limited, or unavailable. */
static bool pool_first(acct_job_t *j, auth_pool_work_fn work, auth_pool_done_fn done,
                       store_call_run_fn *run, store_call_done_cb *cb) {
    int rc = auth_pool_submit(j->a->pool, work, done, j);
    if (rc == 0) {
        j->a->inflight++;
        return true;
    }
    j->result.retry_ms = BUSY_RETRY_MS;
    *run = run_nothing;
    *cb = rc == AUTH_E_BUSY ? done_limited : done_unavailable;
    return false;
}

static int authenticate(void *ctx, const chat_auth_req_t *req, chat_auth_done_cb done, void *arg) {
    accounts_t *a = ctx;
    if (a->stopped)
        return -1;
    if (req->new_secret_len > CHAT_PASSWORD_MAX)
        return -1; /* the chat checks a new password's length first: a bug */
    acct_job_t *j = xcalloc(1, sizeof(*j));
    j->a = a;
    j->op = req->op;
    j->done = done;
    j->arg = arg;
    if (req->nick != NULL) {
        memcpy(j->nick, req->nick, req->nick_len);
        j->nick_len = req->nick_len;
    }
    /* A password longer than any account can have is wrong whoever it is
     * for: it goes the same way (a store read, a verify that refuses it
     * unhashed) without being copied. */
    bool too_long = req->secret_len > CHAT_PASSWORD_MAX;
    if (req->op == CHAT_AUTH_JWT) {
        too_long = req->secret_len > AUTH_JWT_MAX;
        if (!too_long) {
            j->jwt = xstrndup(req->secret, req->secret_len);
            j->jwt_len = req->secret_len;
        }
    } else if (req->secret != NULL && !too_long) {
        memcpy(j->secret, req->secret, req->secret_len);
    }
    j->secret_len = too_long ? CHAT_PASSWORD_MAX + 1 : req->secret_len;
    if (req->new_secret != NULL) {
        memcpy(j->new_secret, req->new_secret, req->new_secret_len);
        j->new_secret_len = req->new_secret_len;
    }
    j->account_id = req->account_id;
    j->everywhere = req->everywhere;
    if (req->token_hash != NULL) {
        memcpy(j->token_hash, req->token_hash, sizeof(j->token_hash));
        j->has_token_hash = true;
    }
    /* The client's address without its port names its bucket. */
    const char *peer = req->peer != NULL ? req->peer : "";
    const char *colon = strrchr(peer, ':');
    j->addr_key = key_of(a, peer, colon != NULL ? (size_t)(colon - peer) : strlen(peer));
    if (j->nick_len > 0 && (j->op == CHAT_AUTH_PASSWORD || j->op == CHAT_AUTH_CHANGE))
        j->nick_key = key_of(a, j->nick, j->nick_len);

    store_call_run_fn run = NULL;
    store_call_done_cb cb = NULL;
    uint64_t now = tt_loop_now(a->loop);
    uint64_t wait = 0;
    if (j->op == CHAT_AUTH_PASSWORD || j->op == CHAT_AUTH_TOKEN || j->op == CHAT_AUTH_CHANGE ||
        j->op == CHAT_AUTH_JWT) {
        wait = limited_for(&a->by_addr, j->addr_key, now);
        if (j->nick_key != 0) {
            uint64_t w2 = limited_for(&a->by_nick, j->nick_key, now);
            wait = w2 > wait ? w2 : wait;
        }
    }
    if (wait > 0) {
        j->result.retry_ms = wait;
        run = run_nothing, cb = done_limited;
    } else {
        switch (j->op) {
        case CHAT_AUTH_PASSWORD:
            run = run_get, cb = done_get_for_login;
            break;
        case CHAT_AUTH_CHANGE:
            run = run_get, cb = done_get_for_change;
            break;
        case CHAT_AUTH_GUEST:
            run = run_get, cb = done_guest;
            break;
        case CHAT_AUTH_LOOKUP:
            run = run_get, cb = done_lookup;
            break;
        case CHAT_AUTH_TOKEN:
            if (auth_token_wellformed(j->secret, j->secret_len)) {
                auth_token_hash(j->secret, j->secret_len, j->token_hash);
                j->now_ms = wall_ms();
                run = run_token_use, cb = done_token_use;
            } else {
                run = run_nothing, cb = done_failed;
            }
            explicit_bzero(j->secret, sizeof(j->secret));
            break;
        case CHAT_AUTH_LOGOUT:
            run = run_logout, cb = done_logout;
            break;
        case CHAT_AUTH_JWT: {
            if (a->cfg.jwt == NULL || j->jwt == NULL) {
                run = run_nothing, cb = done_failed;
                break;
            }
            j->now_ms = wall_ms();
            if (pool_first(j, work_jwt, done_work_jwt, &run, &cb))
                return 0;
            break;
        }
        case CHAT_AUTH_REGISTER:
            if (!a->cfg.registration) {
                run = run_nothing, cb = done_closed;
                break;
            }
            /* The hash first (on the pool), then the store. */
            if (pool_first(j, work_hash, done_hash, &run, &cb))
                return 0;
            break;
        }
    }
    if (store_async_call(a->async, sizeof(*j) + j->jwt_len, run, cb, j) < 0) {
        free(j->jwt);
        explicit_bzero(j, sizeof(*j));
        free(j);
        return -1;
    }
    a->inflight++;
    return 0;
}

const chat_auth_hooks_t accounts_hooks = {.authenticate = authenticate};

/* ---- the pool's completions ---- */

static void on_pool_notify(void *ctx) {
    tt_async_send(ctx); /* a worker: only wake the loop */
}

static void on_pool_wake(void *ctx) {
    accounts_t *a = ctx;
    if (a->pool != NULL)
        auth_pool_drain(a->pool);
}

void accounts_config_defaults(accounts_config_t *cfg) {
    cfg->registration = true;
    cfg->token_idle_ms = (int64_t)30 * 24 * 3600 * 1000;
    cfg->workers = 1;
    cfg->queue = 64;
}

int accounts_start(tt_loop_t *loop, store_async_t *async, const accounts_config_t *cfg,
                   accounts_t **out) {
    accounts_t *a = xcalloc(1, sizeof(*a));
    a->loop = loop;
    a->async = async;
    a->cfg = *cfg;
    tt_map_init(&a->hasher, TT_MAP_NOCASE);
    a->by_addr.burst = ADDR_BURST;
    a->by_addr.refill_ms = ADDR_REFILL_MS;
    a->by_nick.burst = NICK_BURST;
    a->by_nick.refill_ms = NICK_REFILL_MS;
    a->wake = tt_async_new(loop, on_pool_wake, a);
    int rc = auth_pool_start(cfg->workers, cfg->queue, on_pool_notify, a->wake, &a->pool);
    if (rc != 0) {
        tt_async_free(a->wake);
        tt_map_dispose(&a->hasher);
        free(a);
        return rc;
    }
    tt_log_info("accounts: %u password workers, at most %u checks waiting; registration %s; "
                "tokens last %lld days unused",
                cfg->workers, cfg->queue, cfg->registration ? "open" : "closed",
                (long long)(cfg->token_idle_ms / (24 * 3600 * 1000)));
    *out = a;
    return 0;
}

void accounts_stop(accounts_t *a) {
    if (a == NULL || a->stopped)
        return;
    /* Checks waiting for a worker end here (unavailable); their store
     * steps still complete through the store's own drain. */
    a->stopped = true;
    auth_pool_stop(a->pool);
    a->pool = NULL;
    tt_async_free(a->wake);
    a->wake = NULL;
}

void accounts_free(accounts_t *a) {
    if (a == NULL)
        return;
    accounts_stop(a);
    tt_map_dispose(&a->hasher);
    free(a);
}
