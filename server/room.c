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
    size_t parts = rs->nloops > 0 ? (size_t)rs->nloops : 1;
    struct room *r = calloc(1, sizeof(*r) + parts * sizeof(r->part[0]));
    if (!r) return NULL;
    strcpy(r->name, name);
    r->nparts = (uint32_t)parts;
    size_t i = hash(name) & (rs->nbuckets - 1);
    r->next_in_bucket = rs->buckets[i];
    rs->buckets[i] = r;
    rs->count++;
    return r;
}

void rooms_unlink(struct rooms *rs, struct room *r)
{
    struct room **pp = &rs->buckets[hash(r->name) & (rs->nbuckets - 1)];
    while (*pp && *pp != r)
        pp = &(*pp)->next_in_bucket;
    if (!*pp) return;
    *pp = r->next_in_bucket;
    r->next_in_bucket = NULL;
    rs->count--;
}

void room_free(struct room *r)
{
    for (size_t p = 0; p < r->nparts; p++)
        free(r->part[p].members);
    free(r);
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
            room_free(r);
        }
    free(rs->buckets);
    rs->buckets = NULL;
    rs->nbuckets = rs->count = 0;
}

int room_add(struct room *r, int loop, struct session *s)
{
    struct room_part *p = &r->part[loop];
    if (p->n == p->cap) {
        uint32_t cap = p->cap ? p->cap * 2 : 8;
        struct session **m = realloc(p->members, cap * sizeof(*m));
        if (!m) return -1;
        p->members = m;
        p->cap = cap;
    }
    p->members[p->n++] = s;
    r->nmembers++;
    return 0;
}

void room_remove(struct room *r, int loop, struct session *s)
{
    struct room_part *p = &r->part[loop];
    for (uint32_t i = 0; i < p->n; i++)
        if (p->members[i] == s) {
            /* Order of members does not matter; fan-out order is per message. */
            p->members[i] = p->members[--p->n];
            r->nmembers--;
            if (!p->n) {
                free(p->members);
                p->members = NULL;
                p->cap = 0;
            }
            return;
        }
}
