/* Lookup of embedded web assets by request path. The table is small (a
 * dozen files), so a linear scan costs less than building an index. */
#include "http/static.h"

#include <string.h>

const http_asset_t *http_asset_find(const char *path, size_t len) {
    if (len == 1 && path[0] == '/') {
        path = "/index.html";
        len = strlen(path);
    }
    for (const http_asset_t *a = http_assets; a->path != NULL; a++)
        if (strlen(a->path) == len && memcmp(a->path, path, len) == 0)
            return a;
    return NULL;
}
