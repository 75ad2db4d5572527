/* cluster_note.c -- what the event loops ask of the cluster: a join, a
 * leave or a typing queued for the presence thread (cluster_presence.c),
 * which it wakes; the other nodes' members for the listings; the node's
 * state for /healthz, /metrics and upgrades. Event loop threads. Apart
 * from the rest of the cluster, so code that only tells, lists and checks
 * (and the fuzzers and tests that drive it over a stand-in database) links
 * without the log's threads.
 */
#include "cluster_impl.h"

#include <inttypes.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SEP "\x1f"

static void queue_note(struct cluster *c, char kind, const char *a, size_t alen,
                       const char *b, size_t blen, const char *d, size_t dlen)
{
    struct note *n = malloc(sizeof(*n) + alen + blen + dlen + 3);
    pthread_mutex_lock(&c->lock);
    if (!n || c->n_len >= CLUSTER_NOTES_MAX) {
        c->n_lost = 1; /* the others read our whole hash again later */
        pthread_mutex_unlock(&c->lock);
        free(n);
        return;
    }
    n->next = NULL;
    n->kind = kind;
    char *p = n->data;
    memcpy(p, a, alen), p += alen, *p++ = SEP[0];
    if (b) memcpy(p, b, blen), p += blen, *p++ = SEP[0];
    memcpy(p, d, dlen), p += dlen;
    n->len = (size_t)(p - n->data);
    if (c->n_tail)
        c->n_tail->next = n;
    else
        c->n_head = n;
    c->n_tail = n;
    c->n_len++;
    pthread_mutex_unlock(&c->lock);
    uint64_t one = 1;
    if (write(c->wake_fd, &one, sizeof one) < 0) { /* full counter: it is awake */
    }
}

static void member_note(struct cluster *c, char kind, const char *room, const void *conn,
                        const struct buf *user)
{
    char id[24];
    int n = snprintf(id, sizeof id, "%" PRIxPTR, (uintptr_t)conn);
    queue_note(c, kind, room, strlen(room), id, (size_t)n,
               (const char *)BUF_PAYLOAD(user), user->len);
}

void cluster_presence(struct cluster *c, const char *room, const void *conn,
                      const struct buf *user, int join)
{
    member_note(c, join ? 'J' : 'L', room, conn, user);
}

void cluster_member(struct cluster *c, const char *room, const void *conn,
                    const struct buf *user, int join)
{
    member_note(c, join ? 'j' : 'l', room, conn, user);
}

void cluster_typing(struct cluster *c, const char *room, const struct buf *user)
{
    queue_note(c, 'T', room, strlen(room), NULL, 0, (const char *)BUF_PAYLOAD(user),
               user->len);
}

struct remote *cluster_remote(struct cluster *c)
{
    return c ? c->remote : NULL;
}

void cluster_status(struct cluster *c, struct cluster_status *out)
{
    pthread_mutex_lock(&c->lock);
    *out = c->st;
    pthread_mutex_unlock(&c->lock);
}

int cluster_serving(struct cluster *c)
{
    if (!c) return 1;
    pthread_mutex_lock(&c->lock);
    int ok = c->st.ready && !c->st.behind;
    pthread_mutex_unlock(&c->lock);
    return ok;
}
