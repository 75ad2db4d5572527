/* hash.h -- FNV-1a of a string: the bucket of a user id in the tables
 * keyed by user (online.c, sanction.c, ranks.c). Any thread.
 */
#ifndef PARLEY_HASH_H
#define PARLEY_HASH_H

#include <stdint.h>

static inline uint32_t hash_str(const char *s)
{
    uint32_t h = 2166136261u;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    return h;
}

#endif
