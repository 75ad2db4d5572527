/* room.c -- a chained hash table of rooms, each with a member array. */
#include "room.h"

#include <stdlib.h>
#include <string.h>

static size_t hash(const char *s)
{
    size_t h = 1469598103934665603ull; /* FNV-1a */
    while (*s)
        h = (h ^ (unsigned char)*s++) * 1099511628211ull;
    return h;
}

static int rooms_grow(struct rooms *rs)
{
    size_t n = rs->nbuckets ? rs->nbuckets * 2 : 64;
    struct room **b = calloc(n, sizeof(*b));
    if (!b) return -1;
    for (size_t i = 0; i < rs->nbuckets; i++)
        for (struct room *r = rs->buckets[i], *next; r; r = next) {
            next = r->next_in_bucket;
            r->next_in_bucket = b[hash(r->name) & (n - 1)];
            b[hash(r->name) & (n - 1)] = r;
        }
    free(rs->buckets);
    rs->buckets = b;
    rs->nbuckets = n;
    return 0;
}

struct room *rooms_get(struct rooms *rs, const char *name, int create)
{
    if (rs->nbuckets) {
        for (struct room *r = rs->buckets[hash(name) & (rs->nbuckets - 1)]; r;
             r = r->next_in_bucket)
            if (!strcmp(r->name, name)) return r;
    }
    if (!create || strlen(name) > PROTO_MAX_ROOM) return NULL;
    if (rs->count >= rs->nbuckets && rooms_grow(rs)) return NULL;
    struct room *r = calloc(1, sizeof(*r));
    if (!r) return NULL;
    strcpy(r->name, name);
    size_t i = hash(name) & (rs->nbuckets - 1);
    r->next_in_bucket = rs->buckets[i];
    rs->buckets[i] = r;
    rs->count++;
    return r;
}

void rooms_each(struct rooms *rs, void (*fn)(struct room *r, void *arg), void *arg)
{
    for (size_t i = 0; i < rs->nbuckets; i++)
        for (struct room *r = rs->buckets[i]; r; r = r->next_in_bucket)
            fn(r, arg);
}

void rooms_free(struct rooms *rs)
{
    for (size_t i = 0; i < rs->nbuckets; i++)
        for (struct room *r = rs->buckets[i], *next; r; r = next) {
            next = r->next_in_bucket;
            free(r->members);
            free(r);
        }
    free(rs->buckets);
    memset(rs, 0, sizeof(*rs));
}

int room_add(struct room *r, struct session *s)
{
    if (r->nmembers == r->cap) {
        uint32_t cap = r->cap ? r->cap * 2 : 8;
        struct session **m = realloc(r->members, cap * sizeof(*m));
        if (!m) return -1;
        r->members = m;
        r->cap = cap;
    }
    r->members[r->nmembers++] = s;
    return 0;
}

void room_remove(struct room *r, struct session *s)
{
    for (uint32_t i = 0; i < r->nmembers; i++)
        if (r->members[i] == s) {
            /* Order of members does not matter; fan-out order is per message. */
            r->members[i] = r->members[--r->nmembers];
            return;
        }
}
