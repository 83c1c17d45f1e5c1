/* Moderation's tables (schema v4): what rooms keep (owner, ops, topic),
 * bans, and the audit log, in the chat's own types (chat.h). On the
 * store's connection (the worker's, with the asynchronous front). */
#ifndef TT_STORE_STORE_MOD_H
#define TT_STORE_STORE_MOD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "chat/chat.h"
#include "store/store.h"
#include "store/store_async.h"

#define STORE_AUDIT_KEEP CHAT_AUDIT_KEEP    /* entries kept per scope (a room, or the server) */
#define STORE_AUDIT_READ_MAX CHAT_AUDIT_MAX /* entries one read returns */

/* Deletes the bans that ended by now_ms, then calls room for every kept
 * room and ban for every other ban (a room's after its room). The
 * pointers are borrowed for the call. Returns 0 or a STORE_E_*. */
int store_mod_load(store_t *st, int64_t now_ms, chat_mod_room_cb room, chat_mod_ban_cb ban,
                   void *arg);

/* One action in one transaction: the room's row (upserted, or deleted with
 * room_drop), the ban (upserted, or deleted with ban_drop), the audit
 * entry (the scope's oldest beyond STORE_AUDIT_KEEP deleted). */
int store_mod_write(store_t *st, const chat_mod_write_t *w);

/* The newest `limit` (1 to STORE_AUDIT_READ_MAX) audit entries of a room
 * (NULL: the server-wide ones) with id < before (0: no bound), handed to
 * cb oldest first (borrowed for the call); *more: older ones exist. */
typedef void (*store_audit_cb)(void *ctx, const chat_audit_t *e);
int store_audit_read(store_t *st, const char *room, size_t room_len, uint64_t before,
                     unsigned limit, store_audit_cb cb, void *ctx, bool *more);

/* The chat's hooks (chat_store_hooks_t's mod_load, mod_write, audit_read)
 * on st, through async's worker when it is not NULL (store_chat.c). */
int store_mod_hook_load(store_t *st, store_async_t *async, int64_t now_ms, chat_mod_room_cb room,
                        chat_mod_ban_cb ban, void *arg);
int store_mod_hook_write(store_t *st, store_async_t *async, const chat_mod_write_t *w,
                         chat_store_done_cb done, void *arg);
int store_mod_hook_audit(store_t *st, store_async_t *async, const char *room, size_t room_len,
                         uint64_t before, unsigned limit, chat_audit_done_cb done, void *arg);

#endif
