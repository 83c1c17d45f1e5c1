/* Lookup of embedded web assets by request path. The table is small (a
 * dozen files), so a linear scan costs less than building an index. */
#include "http/static.h"

#include <stdbool.h>
#include <string.h>

const http_asset_t *http_asset_find_in(const http_asset_t *table, const char *path, size_t len) {
    static const char index[] = "index.html";
    bool dir = len > 0 && path[len - 1] == '/';
    for (const http_asset_t *a = table; a->path != NULL; a++) {
        size_t alen = strlen(a->path);
        if (dir ? alen == len + sizeof(index) - 1 && memcmp(a->path, path, len) == 0 &&
                      memcmp(a->path + len, index, sizeof(index) - 1) == 0
                : alen == len && memcmp(a->path, path, len) == 0)
            return a;
    }
    return NULL;
}

const http_asset_t *http_asset_find(const char *path, size_t len) {
    /* Only "/" is a directory of the chat client. */
    if (len > 1 && path[len - 1] == '/')
        return NULL;
    return http_asset_find_in(http_assets, path, len);
}
