/* online.c -- this loop's connections by user id (online.h). */
#include "online.h"

#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hash.h"
#include "hub.h"
#include "jwt.h"
#include "ranks.h"
#include "session_impl.h"
#include "wire.h"

#define ONLINE_MIN_BUCKETS 64u

/* Rehashes into n buckets (a power of two). Returns 0, or -1 (unchanged). */
static int resize(struct server *srv, uint32_t n)
{
    struct session **t = calloc(n, sizeof(*t));
    if (!t) return -1;
    for (uint32_t i = 0; i < srv->online_cap; i++)
        for (struct session *s = srv->online[i], *next; s; s = next) {
            next = s->online_next;
            uint32_t b = hash_str(s->user_id) & (n - 1);
            s->online_next = t[b];
            t[b] = s;
        }
    free(srv->online);
    srv->online = t;
    srv->online_cap = n;
    return 0;
}

int online_add(struct session *s)
{
    struct server *srv = s->srv;
    assert(!s->online && s->user_id);
    int role = s->claims ? s->claims->role : JWT_ROLE_NONE;
    if (ranks_add(srv->hub->ranks, s->user_id, role)) return -1;
    if (srv->online_n >= srv->online_cap &&
        resize(srv, srv->online_cap ? srv->online_cap * 2 : ONLINE_MIN_BUCKETS) &&
        !srv->online_cap) {
        ranks_remove(srv->hub->ranks, s->user_id, role);
        return -1; /* a full table still takes entries: only an empty one fails */
    }
    s->ranked = role; /* what to uncount, whatever an `auth` makes of claims */
    uint32_t b = hash_str(s->user_id) & (srv->online_cap - 1);
    s->online_next = srv->online[b];
    srv->online[b] = s;
    s->online = 1;
    srv->online_n++;
    return 0;
}

void online_remove(struct session *s)
{
    struct server *srv = s->srv;
    if (!s->online) return;
    struct session **p = &srv->online[hash_str(s->user_id) & (srv->online_cap - 1)];
    while (*p != s)
        p = &(*p)->online_next;
    *p = s->online_next;
    s->online_next = NULL;
    s->online = 0;
    srv->online_n--;
    ranks_remove(srv->hub->ranks, s->user_id, s->ranked);
}

void online_push(struct server *srv, const char *id, struct buf *b,
                 struct session *except)
{
    if (!srv->online_cap) return;
    struct session *s = srv->online[hash_str(id) & (srv->online_cap - 1)];
    for (; s; s = s->online_next)
        if (s != except && !strcmp(s->user_id, id)) wire_push(s, b);
}

void online_each(struct server *srv, const char *id,
                 void (*fn)(struct session *s, void *arg), void *arg)
{
    if (!srv->online_cap) return;
    struct session *s = srv->online[hash_str(id) & (srv->online_cap - 1)];
    for (; s; s = s->online_next)
        if (!strcmp(s->user_id, id)) fn(s, arg);
}

void online_free(struct server *srv)
{
    assert(srv->online_n == 0);
    free(srv->online);
    srv->online = NULL;
    srv->online_cap = 0;
}
