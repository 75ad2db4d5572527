/* ranks.c -- the roles of the open connections (ranks.h). Any thread. */
#include "ranks.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "hash.h"
#include "jwt.h"

#define RANKS_BUCKETS 1024

struct rank {
    struct rank *next;
    int n[JWT_ROLE_ADMIN + 1]; /* connections by role */
    char user[];
};

struct ranks {
    pthread_mutex_t lock;
    struct rank *bucket[RANKS_BUCKETS];
};

struct ranks *ranks_new(void)
{
    struct ranks *t = calloc(1, sizeof(*t));
    if (t) pthread_mutex_init(&t->lock, NULL);
    return t;
}

void ranks_free(struct ranks *t)
{
    if (!t) return;
    for (int i = 0; i < RANKS_BUCKETS; i++)
        for (struct rank *e = t->bucket[i], *next; e; e = next) {
            next = e->next;
            free(e);
        }
    pthread_mutex_destroy(&t->lock);
    free(t);
}

/* The link that points at user's entry, or at its chain's end. */
static struct rank **slot(struct ranks *t, const char *user)
{
    struct rank **e = &t->bucket[hash_str(user) % RANKS_BUCKETS];
    while (*e && strcmp((*e)->user, user))
        e = &(*e)->next;
    return e;
}

int ranks_add(struct ranks *t, const char *user, int role)
{
    if (role <= JWT_ROLE_NONE || role > JWT_ROLE_ADMIN) return 0;
    pthread_mutex_lock(&t->lock);
    struct rank **e = slot(t, user);
    size_t len = strlen(user) + 1;
    if (!*e && (*e = calloc(1, sizeof(**e) + len))) memcpy((*e)->user, user, len);
    int rc = *e ? ((*e)->n[role]++, 0) : -1;
    pthread_mutex_unlock(&t->lock);
    return rc;
}

void ranks_remove(struct ranks *t, const char *user, int role)
{
    if (role <= JWT_ROLE_NONE || role > JWT_ROLE_ADMIN) return;
    pthread_mutex_lock(&t->lock);
    struct rank **e = slot(t, user), *gone = NULL;
    if (*e && (*e)->n[role] > 0 && !--(*e)->n[role] && !(*e)->n[JWT_ROLE_MOD] &&
        !(*e)->n[JWT_ROLE_ADMIN]) {
        gone = *e;
        *e = gone->next;
    }
    pthread_mutex_unlock(&t->lock);
    free(gone);
}

int ranks_highest(struct ranks *t, const char *user)
{
    pthread_mutex_lock(&t->lock);
    struct rank *e = *slot(t, user);
    int role = !e                     ? JWT_ROLE_NONE
               : e->n[JWT_ROLE_ADMIN] ? JWT_ROLE_ADMIN
               : e->n[JWT_ROLE_MOD]   ? JWT_ROLE_MOD
                                      : JWT_ROLE_NONE;
    pthread_mutex_unlock(&t->lock);
    return role;
}
