/* remote.c -- other nodes' room members (remote.h). A small chained hash
 * table of rooms, each with a list of (node, user, count); the lists are
 * short (a room's members on other nodes), so they are walked. */
#include "remote.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NBUCKETS 1024

struct entry {
    struct entry *next;
    struct buf *user; /* the USER JSON */
    char node[24];
    char conn[24]; /* the connection's id on its node */
    int stale;     /* remote_mark_node: not read again yet */
};

struct rroom {
    struct rroom *next;
    struct entry *ents;
    uint32_t n;
    char name[];
};

struct remote {
    pthread_mutex_t lock;
    struct rroom *b[NBUCKETS]; /* guarded by lock */
    size_t nrooms;             /* guarded by lock */
};

static size_t hash(const char *s)
{
    size_t h = 5381;
    while (*s)
        h = h * 33 + (unsigned char)*s++;
    return h % NBUCKETS;
}

struct remote *remote_new(void)
{
    struct remote *m = calloc(1, sizeof(*m));
    if (m) pthread_mutex_init(&m->lock, NULL);
    return m;
}

static void entry_free(struct entry *e)
{
    buf_unref(e->user);
    free(e);
}

void remote_free(struct remote *m)
{
    if (!m) return;
    for (int i = 0; i < NBUCKETS; i++)
        while (m->b[i]) {
            struct rroom *r = m->b[i];
            m->b[i] = r->next;
            while (r->ents) {
                struct entry *e = r->ents;
                r->ents = e->next;
                entry_free(e);
            }
            free(r);
        }
    pthread_mutex_destroy(&m->lock);
    free(m);
}

/* The room's slot in its bucket (*slot NULL when absent). Under the lock. */
static struct rroom **find(struct remote *m, const char *room)
{
    struct rroom **p = &m->b[hash(room)];
    while (*p && strcmp((*p)->name, room))
        p = &(*p)->next;
    return p;
}

static int same(const struct entry *e, const char *node, const char *conn)
{
    return !strcmp(e->conn, conn) && !strcmp(e->node, node);
}

/* A room with no entries goes. */
static void tidy(struct remote *m, struct rroom **slot)
{
    struct rroom *r = *slot;
    if (r->ents) return;
    *slot = r->next;
    free(r);
    m->nrooms--;
}

int remote_set(struct remote *m, const char *node, const char *room, const char *conn,
               const char *user, size_t len, int join)
{
    int rc = 1;
    pthread_mutex_lock(&m->lock);
    struct rroom **slot = find(m, room);
    if (!*slot && join) {
        size_t n = strlen(room) + 1;
        struct rroom *r = calloc(1, sizeof(*r) + n);
        if (!r) goto oom;
        memcpy(r->name, room, n);
        *slot = r;
        m->nrooms++;
    }
    if (!*slot) {
        rc = 0;
        goto out;
    }
    struct entry **e = &(*slot)->ents;
    while (*e && !same(*e, node, conn))
        e = &(*e)->next;
    if (*e && join) {
        (*e)->stale = rc = 0;
    } else if (!*e && join) {
        struct entry *n = calloc(1, sizeof(*n));
        if (!n || !(n->user = buf_new(len))) {
            free(n);
            tidy(m, slot);
            goto oom;
        }
        buf_put(&n->user, user, len);
        snprintf(n->node, sizeof n->node, "%s", node);
        snprintf(n->conn, sizeof n->conn, "%s", conn);
        *e = n;
        (*slot)->n++;
    } else if (*e && !join) {
        struct entry *gone = *e;
        *e = gone->next;
        entry_free(gone);
        (*slot)->n--;
        tidy(m, slot);
    } else
        rc = 0;
out:
    pthread_mutex_unlock(&m->lock);
    return rc;
oom:
    rc = -1;
    goto out;
}

/* Takes out node's entries (only the stale ones when stale_only), calling
 * fn on each first. */
static void drop(struct remote *m, const char *node, int stale_only,
                 void (*fn)(void *arg, const char *room, struct buf *user), void *arg)
{
    pthread_mutex_lock(&m->lock);
    for (int i = 0; i < NBUCKETS; i++)
        for (struct rroom **slot = &m->b[i]; *slot;) {
            struct rroom *r = *slot;
            for (struct entry **e = &r->ents; *e;) {
                if (strcmp((*e)->node, node) || (stale_only && !(*e)->stale)) {
                    e = &(*e)->next;
                    continue;
                }
                struct entry *gone = *e;
                *e = gone->next;
                r->n--;
                if (fn) fn(arg, r->name, gone->user);
                entry_free(gone);
            }
            if (r->ents)
                slot = &r->next;
            else
                tidy(m, slot);
        }
    pthread_mutex_unlock(&m->lock);
}

void remote_drop_node(struct remote *m, const char *node,
                      void (*fn)(void *arg, const char *room, struct buf *user),
                      void *arg)
{
    drop(m, node, 0, fn, arg);
}

void remote_drop_stale(struct remote *m, const char *node,
                       void (*fn)(void *arg, const char *room, struct buf *user),
                       void *arg)
{
    drop(m, node, 1, fn, arg);
}

void remote_mark_node(struct remote *m, const char *node)
{
    pthread_mutex_lock(&m->lock);
    for (int i = 0; i < NBUCKETS; i++)
        for (struct rroom *r = m->b[i]; r; r = r->next)
            for (struct entry *e = r->ents; e; e = e->next)
                if (!strcmp(e->node, node)) e->stale = 1;
    pthread_mutex_unlock(&m->lock);
}

int remote_users(struct remote *m, const char *room, struct buf **stack, int nstack,
                 struct buf ***out)
{
    struct buf **u = stack;
    int n = 0;
    pthread_mutex_lock(&m->lock);
    struct rroom *r = *find(m, room);
    if (r && (int)r->n > nstack && !(u = malloc(r->n * sizeof(*u)))) n = -1;
    for (struct entry *e = r && n == 0 ? r->ents : NULL; e; e = e->next)
        u[n++] = buf_ref(e->user);
    pthread_mutex_unlock(&m->lock);
    *out = u;
    return n;
}

uint32_t remote_count(struct remote *m, const char *room)
{
    pthread_mutex_lock(&m->lock);
    struct rroom *r = *find(m, room);
    uint32_t n = r ? r->n : 0;
    pthread_mutex_unlock(&m->lock);
    return n;
}

size_t remote_nrooms(struct remote *m)
{
    pthread_mutex_lock(&m->lock);
    size_t n = m->nrooms;
    pthread_mutex_unlock(&m->lock);
    return n;
}

void remote_each_room(struct remote *m, void (*fn)(void *arg, const char *room),
                      void *arg)
{
    pthread_mutex_lock(&m->lock);
    for (int i = 0; i < NBUCKETS; i++)
        for (struct rroom *r = m->b[i]; r; r = r->next)
            fn(arg, r->name);
    pthread_mutex_unlock(&m->lock);
}
