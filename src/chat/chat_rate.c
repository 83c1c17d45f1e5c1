/* Flood control: two token buckets per session (chat messages, and every
 * request) and the rule that closes a client that keeps flooding. Pure
 * arithmetic on a millisecond clock that the transport provides (loop time)
 * or, without one, CLOCK_MONOTONIC_COARSE: cheap enough to read for every
 * request, and tests inject their own. The contract is in chat.h. */
#include "chat/chat_int.h"

#include <time.h>

#include "core/log.h"
#include "ws/ws_frame.h"

void chat_set_clock(chat_t *chat, chat_clock_cb now_ms, void *ctx) {
    chat->clock = now_ms;
    chat->clock_ctx = ctx;
}

uint64_t chat__clock_ms(const chat_t *chat) {
    if (chat->clock != NULL)
        return chat->clock(chat->clock_ctx);
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* A bucket's size and refill rate in units (CHAT_RATE_UNIT per token). A
 * rate of r tokens a second is r × 1000 units a millisecond, so rates down
 * to 0.001 a second refill exactly. */
typedef struct rate_s {
    uint64_t cap;    /* units */
    uint64_t per_ms; /* units a millisecond, ≥ 1 */
} rate_t;

static bool rate_of(const chat_t *chat, bool message, rate_t *r) {
    double per_s = chat->cfg.rate_limit;
    if (!(per_s > 0))
        return false; /* off (0, or NaN from a careless caller) */
    uint64_t burst = chat->cfg.rate_burst ? chat->cfg.rate_burst : 1;
    uint64_t factor = message ? 1 : CHAT_RATE_REQUEST_FACTOR;
    double per_ms = per_s * 1000.0 * (double)factor;
    r->per_ms = per_ms >= 1e15 ? (uint64_t)1e15 : per_ms < 1 ? 1 : (uint64_t)(per_ms + 0.5);
    r->cap = burst * factor * CHAT_RATE_UNIT;
    return true;
}

static void bucket_fill(chat_bucket_t *b, const rate_t *r, uint64_t now) {
    b->units = r->cap;
    b->last_ms = now;
}

/* Refills b for the time since its last use, then takes `units` if it
 * holds them (units ≤ r->cap). Otherwise *retry_ms is how long until it
 * will. */
static bool bucket_take(chat_bucket_t *b, const rate_t *r, uint64_t now, uint64_t units,
                        uint64_t *retry_ms) {
    if (b->units > r->cap)
        b->units = r->cap; /* the burst was lowered by a reload */
    if (now > b->last_ms) {
        uint64_t elapsed = now - b->last_ms;
        uint64_t room = b->units < r->cap ? r->cap - b->units : 0;
        /* Compare before multiplying: a long idle time must not overflow. */
        if (elapsed >= room / r->per_ms + 1)
            b->units = r->cap;
        else
            b->units += elapsed * r->per_ms;
        b->last_ms = now;
    }
    if (b->units >= units) {
        b->units -= units;
        return true;
    }
    *retry_ms = (units - b->units + r->per_ms - 1) / r->per_ms;
    return false;
}

void chat__rate_session_init(chat_t *chat, chat_session_t *s) {
    rate_t r;
    uint64_t now = chat__clock_ms(chat);
    if (rate_of(chat, true, &r))
        bucket_fill(&s->msg_bucket, &r, now);
    if (rate_of(chat, false, &r))
        bucket_fill(&s->req_bucket, &r, now);
}

bool chat__rate_try(chat_t *chat, chat_session_t *s, bool message, uint64_t tokens,
                    uint64_t *retry_ms) {
    rate_t r;
    if (!rate_of(chat, message, &r))
        return true;
    /* A charge beyond the bucket's size could never be met: it takes the
     * whole bucket instead (one such request per refill of the bucket). */
    uint64_t units = tokens > r.cap / CHAT_RATE_UNIT ? r.cap : tokens * CHAT_RATE_UNIT;
    *retry_ms = 0;
    return bucket_take(message ? &s->msg_bucket : &s->req_bucket, &r, chat__clock_ms(chat), units,
                       retry_ms);
}

bool chat__rate_take(chat_t *chat, const chat_req_t *req, bool message, uint64_t tokens) {
    uint64_t retry_ms;
    if (chat__rate_try(chat, req->s, message, tokens, &retry_ms))
        return true;
    chat__rate_refuse(chat, req, message, retry_ms);
    return false;
}

bool chat__rate_take_scan(chat_t *chat, const chat_req_t *req, size_t n) {
    rate_t r;
    uint64_t tokens = (n + CHAT_RATE_SCAN_ITEMS - 1) / CHAT_RATE_SCAN_ITEMS;
    if (tokens == 0 || !rate_of(chat, false, &r))
        return true;
    uint64_t most = r.cap / CHAT_RATE_UNIT - 1; /* the bucket holds ≥ 5 tokens */
    return chat__rate_take(chat, req, false, tokens < most ? tokens : most);
}

void chat__rate_refuse(chat_t *chat, const chat_req_t *req, bool message, uint64_t retry_ms) {
    chat_session_t *s = req->s;
    uint64_t now = chat__clock_ms(chat);

    /* Going over is logged once per window, so a flood cannot fill the log. */
    if (!s->rate_logged || now - s->logged_ms >= CHAT_FLOOD_WINDOW_MS) {
        s->rate_logged = true;
        s->logged_ms = now;
        tt_log_info("chat: %s (%s): over the %s rate limit: refusing for now", s->peer,
                    s->logged_in ? s->nick : "not logged in", message ? "message" : "request");
    }
    /* A refusal before an earlier hint has run out is a strike: the client
     * is not waiting as told. One that waits and is refused again (the
     * other bucket, or a busy moment) is not flooding. */
    if (now < s->retry_at_ms) {
        if (s->strikes == 0 || now - s->strike_start_ms >= CHAT_FLOOD_WINDOW_MS) {
            s->strike_start_ms = now;
            s->strikes = 0;
        }
        s->strikes++;
    }
    if (now + retry_ms > s->retry_at_ms)
        s->retry_at_ms = now + retry_ms;

    json_t *extra = json_object();
    json_object_set_new(extra, "retry_after_ms", json_integer((json_int_t)retry_ms));
    chat__refuse_extra(chat, req, extra, "rate_limited",
                       message ? "Too many messages: this one was not sent; wait %llu ms "
                                 "before sending again."
                               : "Too many requests: this one was refused; wait %llu ms "
                                 "before sending again.",
                       (unsigned long long)retry_ms);

    if (s->strikes > CHAT_FLOOD_STRIKES && !s->closing) {
        s->closing = true;
        tt_log_info("chat: %s (%s): closing: kept flooding (%u requests within %u s before "
                    "the retry time)",
                    s->peer, s->logged_in ? s->nick : "not logged in", s->strikes,
                    CHAT_FLOOD_WINDOW_MS / 1000);
        if (!s->close_queued)
            chat->io.close(chat->io_ctx, s->conn, WS_CLOSE_POLICY, "flooding: too many requests");
    }
}
