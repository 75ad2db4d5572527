/* assets.c -- lookup in the embedded web files. */
#include "assets.h"

#include <string.h>

const struct asset *assets_find(const char *path)
{
    char alt[256];
    if (!strcmp(path, "/")) path = "/index.html";
    for (const struct asset *a = assets_web; a->path; a++)
        if (!strcmp(a->path, path)) return a;
    /* "/embed" serves "/embed.html": clean URLs for the pages. */
    if (strlen(path) + 6 > sizeof alt || strchr(path, '.')) return NULL;
    strcpy(alt, path);
    strcat(alt, ".html");
    for (const struct asset *a = assets_web; a->path; a++)
        if (!strcmp(a->path, alt)) return a;
    return NULL;
}
