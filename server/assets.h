/* assets.h -- files compiled into the binary (tools/embed.cmake): the static
 * page from web/ and the numbered migrations from schema/. Read-only. */
#ifndef PARLEY_ASSETS_H
#define PARLEY_ASSETS_H

#include <stddef.h>

struct asset {
    const char *path; /* web: "/index.html"; schema: "001_init.sql" */
    const char *mime;
    const unsigned char *data; /* NUL-terminated for convenience */
    size_t size;
};

/* Both tables end with an entry whose path is NULL; schema is sorted by name. */
extern const struct asset assets_web[];
extern const struct asset assets_schema[];

/* Returns the web asset for a request path ("/" means "/index.html"), or NULL. */
const struct asset *assets_find(const char *path);

#endif
