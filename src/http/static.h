/* The web client, embedded at build time by cmake/embed_web.cmake. */
#ifndef TT_HTTP_STATIC_H
#define TT_HTTP_STATIC_H

#include <stddef.h>

typedef struct http_asset_s {
    const char *path;         /* "/index.html" */
    const char *content_type; /* "text/html; charset=utf-8" */
    const char *etag;         /* a quoted strong ETag */
    const unsigned char *data;
    size_t len;
} http_asset_t;

/* Terminated by an entry whose path is NULL: the chat client (web/), and
 * the admin page (admin/, its paths under /admin/). */
extern const http_asset_t http_assets[];
extern const http_asset_t admin_assets[];

/* The chat client's asset for a request path ("/" is "/index.html"), or NULL. */
const http_asset_t *http_asset_find(const char *path, size_t len);
/* The asset of table for a path (a path ending in '/' means its
 * index.html), or NULL. */
const http_asset_t *http_asset_find_in(const http_asset_t *table, const char *path, size_t len);

#endif
