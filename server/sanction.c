/* sanction.c -- the mutes and bans in force (sanction.h). */
#include "sanction.h"

#include "db.h"
#include "log.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "hash.h"
#include "protocol.h"

#define NBUCKETS 1024 /* a power of two; entries chain per user */

struct entry {
    struct entry *next;
    int64_t until; /* Unix ms; 0: until lifted */
    enum sanction_kind kind;
    char room[PROTO_MAX_ROOM + 1]; /* "": server-wide */
    char user[];
};

struct sanctions {
    pthread_mutex_t lock;
    struct entry *bucket[NBUCKETS]; /* guarded by lock */
    /* Entries in the table: written under lock, read without it, so that
     * a server with no mute or ban takes no lock per request (a stale 0
     * only misses an action committed this instant, as a check made a
     * moment earlier would). */
    int n;
};

struct sanctions *sanctions_new(void)
{
    struct sanctions *t = calloc(1, sizeof(*t));
    if (t) pthread_mutex_init(&t->lock, NULL);
    return t;
}

void sanctions_free(struct sanctions *t)
{
    if (!t) return;
    for (int i = 0; i < NBUCKETS; i++)
        for (struct entry *e = t->bucket[i], *n; e; e = n) {
            n = e->next;
            free(e);
        }
    pthread_mutex_destroy(&t->lock);
    free(t);
}

static struct entry **slot(struct sanctions *t, const char *user)
{
    return &t->bucket[hash_str(user) & (NBUCKETS - 1)];
}

/* The link that points at (user, room, kind), or at the chain's end. */
static struct entry **find(struct entry **at, const char *user, const char *room,
                           enum sanction_kind kind)
{
    for (; *at; at = &(*at)->next)
        if ((*at)->kind == kind && !strcmp((*at)->user, user) &&
            !strcmp((*at)->room, room))
            break;
    return at;
}

int sanctions_set(struct sanctions *t, const char *user, const char *room,
                  enum sanction_kind kind, int64_t until)
{
    size_t n = strlen(user) + 1;
    if (strlen(room) > PROTO_MAX_ROOM) return -1;
    pthread_mutex_lock(&t->lock);
    struct entry **at = find(slot(t, user), user, room, kind), *e = *at;
    if (!e && (e = calloc(1, sizeof(*e) + n))) {
        memcpy(e->user, user, n);
        strcpy(e->room, room);
        e->kind = kind;
        *at = e;
        __atomic_add_fetch(&t->n, 1, __ATOMIC_RELEASE);
    }
    if (e) e->until = until;
    pthread_mutex_unlock(&t->lock);
    return e ? 0 : -1;
}

void sanctions_lift(struct sanctions *t, const char *user, const char *room,
                    enum sanction_kind kind)
{
    pthread_mutex_lock(&t->lock);
    struct entry **at = find(slot(t, user), user, room, kind), *e = *at;
    if (e) *at = e->next, __atomic_sub_fetch(&t->n, 1, __ATOMIC_RELEASE);
    pthread_mutex_unlock(&t->lock);
    free(e);
}

static int in_force(const struct entry *e, int64_t now_ms)
{
    return e->until == 0 || e->until > now_ms;
}

int sanctions_active(struct sanctions *t, const char *user, const char *room,
                     enum sanction_kind kind, int64_t now_ms, int64_t *until)
{
    int hit = 0;
    *until = 0;
    if (!__atomic_load_n(&t->n, __ATOMIC_ACQUIRE)) return 0;
    pthread_mutex_lock(&t->lock);
    struct entry **chain = slot(t, user);
    struct entry *e = *find(chain, user, room, kind);
    if (e && in_force(e, now_ms)) hit = 1, *until = e->until;
    if (!hit && kind == SANCTION_BAN && room[0]) {
        e = *find(chain, user, "", kind);
        if (e && in_force(e, now_ms)) hit = 1, *until = e->until;
    }
    pthread_mutex_unlock(&t->lock);
    return hit;
}

int sanctions_banned_rooms(struct sanctions *t, const char *user, int64_t now_ms,
                           char (*rooms)[PROTO_MAX_ROOM + 1], int max)
{
    int n = 0;
    if (!__atomic_load_n(&t->n, __ATOMIC_ACQUIRE)) return 0;
    pthread_mutex_lock(&t->lock);
    for (struct entry *e = *slot(t, user); e && n < max; e = e->next)
        if (e->kind == SANCTION_BAN && e->room[0] && !strcmp(e->user, user) &&
            in_force(e, now_ms))
            strcpy(rooms[n++], e->room);
    pthread_mutex_unlock(&t->lock);
    return n;
}

void sanctions_follow(struct sanctions *t, const struct db_req *r)
{
    const char *room = r->room ? r->room : "";
    enum sanction_kind k = r->mod_action == DB_MOD_MUTE || r->mod_action == DB_MOD_UNMUTE
                               ? SANCTION_MUTE
                               : SANCTION_BAN;
    if (r->mod_action == DB_MOD_MUTE || r->mod_action == DB_MOD_BAN) {
        if (sanctions_set(t, r->peer_id, room, k, r->msg_id))
            plog(LOG_ERROR, "sanction-lost", "user=%s room=%s reason=\"out of memory\"",
                 r->peer_id, room);
    } else if (r->mod_action != DB_MOD_KICK)
        sanctions_lift(t, r->peer_id, room, k);
}
