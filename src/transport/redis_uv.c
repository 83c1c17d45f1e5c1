/* hiredis' libuv adapter on the loop (transport.h: tt_loop_attach_redis).
 * The adapter is a header of static functions that watch the connection's
 * descriptor with a uv_poll_t; it lives here because <uv.h> is this
 * folder's alone, and the cluster (src/cluster) sees only the loop. */
#include <hiredis/adapters/libuv.h>
#include <hiredis/async.h>

#include "transport/transport.h"
#include "transport/transport_int.h"

int tt_loop_attach_redis(tt_loop_t *loop, struct redisAsyncContext *ac) {
    return redisLibuvAttach(ac, &loop->uv) == REDIS_OK ? 0 : -1;
}
